//! Host-side logic of a tiled batch search, kept free of CUDA so `cargo test` checks it on any
//! machine: how queries are batched and the base tiled to fit a scratch budget
//! ([`TilePlan`]), the loop that folds every tile into a running top-k ([`search_tiled`], generic
//! over a [`TileBackend`]), and the conversion of "smaller is better" keys to vq scores.
//!
//! The device backend (`crate::flat`) and a CPU reference backend (the tests below) run the same
//! loop, so the reference proves tiling, batching and key conversion against `knn_exact`.

use std::ops::Range;

use vq_distance::{Metric, Neighbors};

use crate::error::{Error, Result};

/// The most queries one batch holds (bounds the selection grid and the running top-k buffer).
pub const MAX_QUERY_BATCH: usize = 4096;
/// The most base rows one tile holds: cuBLAS takes `i32` sizes and leading dimensions.
pub const MAX_BASE_TILE: usize = 1 << 24;

/// How a batch search is cut: queries in batches of `query_batch`, the base in tiles of
/// `base_tile` rows. The device holds one batch of queries, its running top-k and one
/// `query_batch x base_tile` score tile at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePlan {
    /// Queries per batch (at least 1).
    pub query_batch: usize,
    /// Base rows per tile (at least 1).
    pub base_tile: usize,
}

impl TilePlan {
    /// The largest batches and tiles whose scratch fits in `budget` bytes for `nq` queries over
    /// `n` base rows of `dim` components stored in `elem_bytes` bytes, with `k` results each.
    /// Query batches shrink (halving) only when a batch would leave room for less than a
    /// 1,024-row tile.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] naming the scratch when even one query against one base row does
    /// not fit.
    pub fn new(nq: usize, n: usize, dim: usize, k: usize, elem_bytes: usize, budget: usize) -> Result<Self> {
        Self::with_costs(nq, n, Self::fixed_bytes(1, dim, k, elem_bytes), 4, budget)
    }

    /// The largest batches and tiles whose scratch fits in `budget` bytes, when each query of a
    /// batch costs `per_query` bytes and each (query, base row) cell of a tile `per_cell`
    /// (4 for an f32 score tile; an IVF scan's candidate tile holds a key and an id, 12).
    /// Query batches shrink (halving) only when a batch would leave room for less than a
    /// 1,024-row tile.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] naming the scratch when even one query against one row does not
    /// fit.
    pub(crate) fn with_costs(nq: usize, n: usize, per_query: usize, per_cell: usize, budget: usize) -> Result<Self> {
        let n = n.max(1);
        let mut qb = nq.clamp(1, MAX_QUERY_BATCH);
        let want_tile = n.min(1024);
        loop {
            if let Some(rest) = budget.checked_sub(qb * per_query) {
                let tile = (rest / (qb * per_cell)).min(n).min(MAX_BASE_TILE);
                if tile >= want_tile || (qb == 1 && tile >= 1) {
                    return Ok(Self { query_batch: qb, base_tile: tile });
                }
            }
            if qb == 1 {
                return Err(Error::OutOfMemory {
                    what: "search scratch (one query, one base row)",
                    requested: per_query + per_cell,
                    free: budget,
                    total: budget,
                });
            }
            qb = qb.div_ceil(2);
        }
    }

    /// Bytes of everything but the score tile for `qb` queries: the queries (f32, plus the
    /// storage type's copy), their norms and the running top-k (f32 key + u64 id).
    fn fixed_bytes(qb: usize, dim: usize, k: usize, elem_bytes: usize) -> usize {
        let per_query = dim * 4 + if elem_bytes == 4 { 0 } else { dim * elem_bytes } + 4 + k * 12;
        qb * per_query
    }

    /// Device scratch this plan allocates, in bytes.
    pub fn scratch_bytes(&self, dim: usize, k: usize, elem_bytes: usize) -> usize {
        Self::fixed_bytes(self.query_batch, dim, k, elem_bytes) + self.query_batch * self.base_tile * 4
    }

    /// The query batches covering `0..nq`, in order.
    pub fn query_batches(&self, nq: usize) -> impl Iterator<Item = Range<usize>> + use<> {
        chunks(nq, self.query_batch)
    }

    /// The base tiles covering `0..n`, in order.
    pub fn base_tiles(&self, n: usize) -> impl Iterator<Item = Range<usize>> + use<> {
        chunks(n, self.base_tile)
    }
}

fn chunks(n: usize, size: usize) -> impl Iterator<Item = Range<usize>> {
    let size = size.max(1);
    (0..n.div_ceil(size)).map(move |i| i * size..((i + 1) * size).min(n))
}

/// One side of a tiled search: holds a batch of queries and their running top-k, folds base
/// tiles into it. Keys are "smaller is better" (the squared L2 distance, or the negated inner
/// product), ties to the smaller id, padding `(+inf, u64::MAX)`. The backend knows where the
/// search's query rows are (host rows, or rows already on the device).
pub(crate) trait TileBackend {
    /// Loads query rows `batch` of the search and resets their running top-k to padding.
    fn begin_batch(&mut self, batch: Range<usize>, k: usize) -> Result<()>;
    /// Scores base rows `tile` (for an IVF scan: candidate positions) against the loaded
    /// queries and folds them into the running top-k.
    fn fold_tile(&mut self, tile: Range<usize>) -> Result<()>;
    /// Copies the running top-k out: `keys` and `ids` are `[batch][k]`, sorted best first.
    fn finish_batch(&mut self, keys: &mut [f32], ids: &mut [u64]) -> Result<()>;
}

/// Searches the backend's `nq` queries against its `n` base rows (an IVF scan: the most
/// candidates any query has).
pub(crate) fn search_tiled<B: TileBackend>(
    backend: &mut B,
    nq: usize,
    n: usize,
    k: usize,
    metric: Metric,
    plan: TilePlan,
) -> Result<Neighbors> {
    let mut keys = vec![f32::INFINITY; nq * k];
    let mut ids = vec![u64::MAX; nq * k];
    for batch in plan.query_batches(nq) {
        backend.begin_batch(batch.clone(), k)?;
        for tile in plan.base_tiles(n) {
            backend.fold_tile(tile)?;
        }
        backend.finish_batch(&mut keys[batch.start * k..batch.end * k], &mut ids[batch.start * k..batch.end * k])?;
    }
    neighbors_from_keys(&keys, &ids, k, metric)
}

/// `[nq][k]` keys and ids (padding `u64::MAX`) as vq's result type with `metric`'s scores.
pub(crate) fn neighbors_from_keys(keys: &[f32], ids: &[u64], k: usize, metric: Metric) -> Result<Neighbors> {
    let rows = keys.chunks_exact(k).zip(ids.chunks_exact(k)).map(|(ks, is)| {
        ks.iter()
            .zip(is)
            .filter(|&(_, &id)| id != u64::MAX)
            .map(|(&key, &id)| (id, metric.score_from_key(key)))
            .collect::<Vec<_>>()
    });
    Ok(Neighbors::from_rows(k, metric, rows.collect::<Vec<_>>())?)
}

/// The key the selection kernel computes, on the host (the reference backend's).
#[cfg(test)]
pub(crate) fn key(metric: Metric, query_norm: f32, base_norm: f32, ip: f32) -> f32 {
    match metric {
        Metric::L2 => (query_norm + base_norm - 2.0 * ip).max(0.0),
        _ => -ip,
    }
}

#[cfg(test)]
pub(crate) mod reference {
    //! A CPU backend computing exactly what the device does (GEMM inner products, norms, the
    //! kernel's key and tie rule), for checking the host loop without a GPU.
    use super::*;

    pub(crate) struct CpuBackend<'a> {
        pub(crate) base: &'a [f32],
        pub(crate) dim: usize,
        pub(crate) metric: Metric,
        /// Every query of the search.
        pub(crate) all_queries: &'a [f32],
        /// The loaded batch's.
        pub(crate) queries: Vec<f32>,
        pub(crate) k: usize,
        pub(crate) running: Vec<Vec<(f32, u64)>>,
        pub(crate) tiles_seen: Vec<Range<usize>>,
        /// The search's filter, as the selection kernel's `allowed` (`None`: every row).
        pub(crate) mask: Option<&'a crate::rows::RowMask>,
    }

    impl<'a> CpuBackend<'a> {
        pub(crate) fn new(base: &'a [f32], queries: &'a [f32], dim: usize, metric: Metric) -> Self {
            Self {
                base,
                dim,
                metric,
                all_queries: queries,
                queries: Vec::new(),
                k: 0,
                running: Vec::new(),
                tiles_seen: Vec::new(),
                mask: None,
            }
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    impl TileBackend for CpuBackend<'_> {
        fn begin_batch(&mut self, batch: Range<usize>, k: usize) -> Result<()> {
            self.queries = self.all_queries[batch.start * self.dim..batch.end * self.dim].to_vec();
            self.k = k;
            self.running = vec![Vec::new(); batch.len()];
            Ok(())
        }

        fn fold_tile(&mut self, tile: Range<usize>) -> Result<()> {
            self.tiles_seen.push(tile.clone());
            for (q, run) in self.queries.chunks_exact(self.dim).zip(&mut self.running) {
                let qn = dot(q, q);
                for id in tile.clone().filter(|&id| self.mask.is_none_or(|m| m.allows(id))) {
                    let b = &self.base[id * self.dim..(id + 1) * self.dim];
                    run.push((key(self.metric, qn, dot(b, b), dot(q, b)), id as u64));
                }
                // `partial_cmp`, as the kernel compares: -0.0 and 0.0 tie (keys are finite).
                run.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("finite keys").then(a.1.cmp(&b.1)));
                run.truncate(self.k);
            }
            Ok(())
        }

        fn finish_batch(&mut self, keys: &mut [f32], ids: &mut [u64]) -> Result<()> {
            write_running(&self.running, self.k, keys, ids);
            Ok(())
        }
    }

    /// A CPU backend's running top-k (`(key, id)` per query, best first) into `finish_batch`'s
    /// `[batch][k]` outputs.
    pub(crate) fn write_running(running: &[Vec<(f32, u64)>], k: usize, keys: &mut [f32], ids: &mut [u64]) {
        for (q, run) in running.iter().enumerate() {
            for (j, &(key, id)) in run.iter().enumerate() {
                keys[q * k + j] = key;
                ids[q * k + j] = id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reference::CpuBackend;
    use super::*;
    use crate::rows::RowMask;
    use proptest::prelude::*;

    /// Small integer components: every product and sum is exact in f32, so the GEMM form
    /// `|q|^2 + |b|^2 - 2 q.b` equals the direct squared distance and ids must match exactly.
    fn int_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n * dim)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) % 9) as f32 - 4.0
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn tiled_search_equals_knn_exact(
            n in 1usize..90, nq in 1usize..12, dim in 1usize..9, k in 1usize..20,
            qb in 1usize..6, tile in 1usize..40, ip in any::<bool>(), seed in any::<u64>(),
            every in prop::option::of(1u64..5),
        ) {
            let metric = if ip { Metric::InnerProduct } else { Metric::L2 };
            let base = int_rows(n, dim, seed);
            let queries = int_rows(nq, dim, seed ^ 0x9e37);
            let plan = TilePlan { query_batch: qb, base_tile: tile };
            // A filter keeping every `every`-th row, offset by the seed.
            let keep = |row: u64| every.is_none_or(|e| row.wrapping_add(seed).is_multiple_of(e));
            let mask = every.map(|_| RowMask::new(&keep, 0..n as u64));
            let mut cpu = CpuBackend::new(&base, &queries, dim, metric);
            cpu.mask = mask.as_ref();
            let got = search_tiled(&mut cpu, nq, n, k, metric, plan).unwrap();
            // The reference: knn_exact over the kept rows, its row numbers mapped back.
            let kept: Vec<usize> = (0..n).filter(|&r| keep(r as u64)).collect();
            let kept_base: Vec<f32> = kept.iter().flat_map(|&r| base[r * dim..(r + 1) * dim].to_vec()).collect();
            let want = vq_distance::knn_exact(&kept_base, &queries, dim, k, metric).unwrap();
            let want_ids: Vec<u64> =
                want.ids().iter().map(|&i| if i == u64::MAX { i } else { kept[i as usize] as u64 }).collect();
            prop_assert_eq!(got.ids(), &want_ids[..]);
            prop_assert_eq!(got.scores(), want.scores());
            let tiles_per_batch = n.div_ceil(tile);
            prop_assert_eq!(cpu.tiles_seen.len(), tiles_per_batch * nq.div_ceil(qb));
        }

        #[test]
        fn plans_cover_everything_and_fit_the_budget(
            nq in 1usize..20_000, n in 1usize..3_000_000, dim in 1usize..1024, k in 1usize..1025,
            half in any::<bool>(), budget_mib in 1usize..4096,
        ) {
            let elem = if half { 2 } else { 4 };
            let budget = budget_mib << 20;
            match TilePlan::new(nq, n, dim, k, elem, budget) {
                Ok(plan) => {
                    prop_assert!(plan.scratch_bytes(dim, k, elem) <= budget);
                    prop_assert!(plan.query_batch >= 1 && plan.query_batch <= MAX_QUERY_BATCH);
                    prop_assert!(plan.base_tile >= 1 && plan.base_tile <= MAX_BASE_TILE);
                    let qs: Vec<_> = plan.query_batches(nq).collect();
                    prop_assert_eq!(qs.first().map(|r| r.start), Some(0));
                    prop_assert_eq!(qs.last().map(|r| r.end), Some(nq));
                    prop_assert!(qs.windows(2).all(|w| w[0].end == w[1].start));
                    let ts: Vec<_> = plan.base_tiles(n).collect();
                    prop_assert_eq!(ts.last().map(|r| r.end), Some(n));
                    prop_assert!(ts.windows(2).all(|w| w[0].end == w[1].start && !w[0].is_empty()));
                }
                Err(Error::OutOfMemory { requested, free, .. }) => prop_assert!(requested > free),
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
    }

    #[test]
    fn cosine_keys_become_similarities_and_padding_is_dropped() {
        // Two queries, k = 3; the second has only one hit.
        let keys = [-0.9, -0.5, -0.1, -0.7, f32::INFINITY, f32::INFINITY];
        let ids = [4, 2, 9, 1, u64::MAX, u64::MAX];
        let hits = neighbors_from_keys(&keys, &ids, 3, Metric::Cosine).unwrap();
        assert_eq!(hits.get(0).unwrap(), (&[4u64, 2, 9][..], &[0.9f32, 0.5, 0.1][..]));
        assert_eq!(hits.get(1).unwrap(), (&[1u64][..], &[0.7f32][..]));
    }

    #[test]
    fn a_budget_too_small_for_one_query_is_an_out_of_memory_error_with_sizes() {
        let err = TilePlan::new(10, 100, 128, 10, 4, 100).unwrap_err();
        assert!(matches!(err, Error::OutOfMemory { requested, free: 100, .. } if requested > 100), "{err}");
    }

    #[test]
    fn a_large_search_keeps_big_query_batches() {
        // 10,000 queries over 1M x 128 with 1 GiB of scratch: 4,096-query batches, 64k-row tiles.
        let plan = TilePlan::new(10_000, 1_000_000, 128, 100, 4, 1 << 30).unwrap();
        assert_eq!(plan.query_batch, 4096);
        assert!(plan.base_tile >= 60_000, "{plan:?}");
    }
}
