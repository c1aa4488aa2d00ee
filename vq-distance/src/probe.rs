//! The `k` nearest of a fixed set of centroids for batches of queries: the flat coarse search
//! of an inverted file ("which `nprobe` lists does each query probe").
//!
//! [`PackedCentroids`] packs the centroids once (when an index is trained or read) into the
//! panels of the blocked micro-kernel, with their squared norms folded into the per-column
//! bias, so a search pays for the multiply-adds only. The selection is fused into the kernel:
//! each query row keeps a [`TopK`], and the kernel calls back only for the lanes whose key is at
//! or under the row's threshold, instead of writing the `nq × n` score matrix and sorting every
//! row of it (what `score_many_to_many` followed by a selection does: about half of the time of
//! a coarse search at `n = 1024`, `dim = 128` went to that matrix and its selection).
//!
//! The keys are bit for bit those of [`score_many_to_many`](crate::score_many_to_many) (the same
//! kernel, packing and arithmetic), and the selection is exact on them: the threshold the kernel
//! tests is that of the final key `‖q‖² + (‖c‖² − 2q·c)` translated back to the kernel's key
//! `‖c‖² − 2q·c` with a margin that covers the rounding of both additions, so the kernel only
//! skips lanes the selection would have refused.

use rayon::prelude::*;

use crate::assign::{CentroidBlock, l2_shift, pack_centroids, translate, translated};
use crate::error::{Error, Result};
use crate::gemm::{BaseTerms, ScanArgs, pack_queries};
use crate::metric::Metric;
use crate::rows::{check_shape, scale_to_unit, validate_rows};
use crate::simd::{Kernels, kernels};
use crate::topk::TopK;

/// Queries per parallel task: one packing of the queries, one set of selections.
const QUERY_CHUNK: usize = 256;

/// Relative margin of the kernel's threshold over the exact translation of a final-key
/// threshold (a few units in the last place of f32, whose unit roundoff is 2⁻²⁴).
const THRESHOLD_MARGIN: f32 = 1.0 / (1u32 << 20) as f32;

/// Centroids packed once for repeated top-`k` searches by batches of queries: the flat coarse
/// quantizer's scan (Faiss' `IndexFlatL2` / `IndexFlatIP` as an IVF quantizer).
///
/// ```
/// use vq_distance::{Metric, PackedCentroids};
/// let centroids = [0.0f32, 0.0, 10.0, 10.0, 1.0, 1.0];
/// let packed = PackedCentroids::new(&centroids, 2, Metric::L2)?;
/// let (mut ids, mut keys) = (vec![0; 4], vec![0.0; 4]);
/// packed.search(&[1.0, 2.0, 9.0, 9.0], 2, &mut ids, &mut keys)?;
/// assert_eq!(ids, [2, 0, 1, 2]);
/// assert_eq!(keys, [1.0, 5.0, 2.0, 128.0]);
/// # Ok::<(), vq_distance::Error>(())
/// ```
#[derive(Clone)]
pub struct PackedCentroids<'k> {
    kern: &'k Kernels,
    dim: usize,
    n: usize,
    metric: Metric,
    alpha: f32,
    blocks: Vec<CentroidBlock>,
    /// The translation the centroids were packed under (L2 only, see `l2_shift`); queries are
    /// moved by it too.
    shift: Option<Vec<f32>>,
}

impl std::fmt::Debug for PackedCentroids<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedCentroids")
            .field("level", &self.kern.level)
            .field("dim", &self.dim)
            .field("n", &self.n)
            .field("metric", &self.metric)
            .finish_non_exhaustive()
    }
}

impl PackedCentroids<'static> {
    /// Packs `centroids` (row-major, `dim` wide) for searches by `metric` with the kernels of
    /// this process ([`simd_level`](crate::simd_level)).
    ///
    /// The centroids are checked by [`validate_rows`](crate::validate_rows) (errors name
    /// `"centroids"`): finite, nonzero for cosine (they are scaled to unit length), and within
    /// [`MAX_SQUARED_NORM`](crate::MAX_SQUARED_NORM); [`Error::TooManyVectors`] above
    /// `u32::MAX` of them.
    pub fn new(centroids: &[f32], dim: usize, metric: Metric) -> Result<Self> {
        Self::new_with(kernels(), centroids, dim, metric)
    }
}

impl<'k> PackedCentroids<'k> {
    /// [`PackedCentroids::new`] with the kernels of a chosen level.
    pub fn new_with(kern: &'k Kernels, centroids: &[f32], dim: usize, metric: Metric) -> Result<Self> {
        let n = check_shape("centroids", centroids, dim)?;
        if n > u32::MAX as usize {
            return Err(Error::TooManyVectors { n, max: u32::MAX as usize });
        }
        validate_rows("centroids", centroids, dim, metric)?;
        let shift = if metric == Metric::L2 { l2_shift(centroids, dim) } else { None };
        let centroids = &translated(centroids, shift.as_deref())[..];
        let terms = BaseTerms::new(kern, centroids, dim, metric, false);
        let blocks = pack_centroids(centroids, dim, kern.gemm.nr, &terms);
        Ok(PackedCentroids { kern, dim, n, metric, alpha: terms.alpha, blocks, shift })
    }

    /// Number of centroids.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no centroids.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric the centroids were packed for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Bytes of the packed copy (panels and biases).
    pub fn memory_bytes(&self) -> usize {
        self.blocks.iter().map(|b| 4 * (b.packed.data.capacity() + b.packed.bias.capacity())).sum()
    }

    /// For every row of `queries` (f32, `dim` wide), the `k` nearest centroids, best first,
    /// into `ids[i · k..][..k]`, with their selection keys (smaller is better) in `keys`.
    ///
    /// Keys are those of the blocked form, as [`score_many_to_many`](crate::score_many_to_many)
    /// computes them: for [`Metric::L2`] `‖q‖² − 2q·c + ‖c‖²` clamped at 0, for inner product
    /// and cosine the negated similarity. (L2 centroids far from the origin next to their spread
    /// are packed moved by their rounded mean, and queries with them, so that the form keeps its
    /// precision; the keys are then the distances computed that way.) Ties go to the smaller
    /// id. A query with fewer than `k` centroids to rank (`k > len`, or a non-finite query,
    /// which ranks none) is padded with `u32::MAX` and `+∞`. Queries are not checked (an index
    /// prepares them once per search); for cosine they are scaled to unit length here. Parallel over blocks of queries on the
    /// current rayon pool; the result does not depend on the thread count.
    ///
    /// [`Error::RaggedBuffer`] if `queries` is not a whole number of rows, and
    /// [`Error::OutputLength`] unless `ids` and `keys` hold `k` entries per query.
    pub fn search(&self, queries: &[f32], k: usize, ids: &mut [u32], keys: &mut [f32]) -> Result<()> {
        let nq = check_shape("queries", queries, self.dim)?;
        let want = nq.checked_mul(k).ok_or(Error::ResultTooLarge { queries: nq, k })?;
        for (what, got) in [("ids", ids.len()), ("keys", keys.len())] {
            if got != want {
                return Err(Error::OutputLength { what, got, expected: want });
            }
        }
        if want == 0 {
            return Ok(());
        }
        let dim = self.dim;
        let mr = self.kern.gemm.mr;
        let chunk = QUERY_CHUNK.min(nq.div_ceil(rayon::current_num_threads().max(1))).div_ceil(mr) * mr;
        queries
            .par_chunks(chunk * dim)
            .zip(ids.par_chunks_mut(chunk * k))
            .zip(keys.par_chunks_mut(chunk * k))
            .for_each_init(Scratch::default, |scratch, ((queries, ids), keys)| {
                self.search_chunk(scratch, queries, k, ids, keys)
            });
        Ok(())
    }

    /// One block of queries (arguments checked).
    fn search_chunk(&self, s: &mut Scratch, queries: &[f32], k: usize, ids: &mut [u32], keys: &mut [f32]) {
        let (kern, dim) = (self.kern, self.dim);
        let nq = queries.len() / dim;
        let qrows = if self.metric == Metric::Cosine {
            s.rows.clear();
            s.rows.extend_from_slice(queries);
            s.rows.chunks_exact_mut(dim).for_each(scale_to_unit);
            &s.rows[..]
        } else if let Some(shift) = &self.shift {
            s.rows.clear();
            s.rows.extend_from_slice(queries);
            translate(&mut s.rows, shift);
            &s.rows[..]
        } else {
            queries
        };
        let groups = pack_queries(qrows, dim, kern.gemm.mr, &mut s.qpack);
        // The final key of L2 adds `‖q‖²` to the kernel's `‖c‖² − 2q·c`; the others use the
        // kernel's key as it is.
        s.norms.clear();
        if self.metric == Metric::L2 {
            s.norms.extend(qrows.chunks_exact(dim).map(|q| kern.f32.dot_sq(q)));
        }
        let norms = &s.norms;
        // Padded query rows get a NaN threshold: nothing is ever offered to them.
        s.thresholds.clear();
        s.thresholds.resize(groups * kern.gemm.mr, f32::NAN);
        s.thresholds[..nq].fill(f32::INFINITY);
        s.tops.resize_with(nq.max(s.tops.len()), || TopK::new(k));
        for top in &mut s.tops[..nq] {
            if top.k() == k {
                top.clear();
            } else {
                *top = TopK::new(k);
            }
        }
        let tops = &mut s.tops[..nq];
        for block in &self.blocks {
            let args = ScanArgs {
                qpack: &s.qpack,
                groups,
                bpack: &block.packed.data,
                panels: block.packed.panels,
                dim,
                bias: &block.packed.bias,
                alpha: self.alpha,
                keep_all: false,
            };
            (kern.gemm.scan)(&args, &mut s.thresholds, &mut |row, col, lanes, mut mask| {
                // Padded rows have a NaN threshold and padded lanes a NaN bias, so neither is
                // ever in `mask`.
                let top = &mut tops[row];
                let first = block.first + col;
                match norms.get(row) {
                    Some(&qq) => {
                        while mask != 0 {
                            let j = mask.trailing_zeros() as usize;
                            mask &= mask - 1;
                            top.push(l2_key(lanes[j], qq), (first + j) as u64);
                        }
                        kernel_threshold(top.threshold(), qq)
                    }
                    None => {
                        while mask != 0 {
                            let j = mask.trailing_zeros() as usize;
                            mask &= mask - 1;
                            top.push(lanes[j], (first + j) as u64);
                        }
                        top.threshold()
                    }
                }
            });
        }
        for ((top, ids), keys) in tops.iter_mut().zip(ids.chunks_exact_mut(k)).zip(keys.chunks_exact_mut(k)) {
            let hits = top.sorted();
            for (i, (id, key)) in ids.iter_mut().zip(keys.iter_mut()).enumerate() {
                (*id, *key) = hits.get(i).map_or((u32::MAX, f32::INFINITY), |&(key, id)| (id as u32, key));
            }
        }
    }
}

/// Buffers one search task reuses from block to block.
#[derive(Default)]
struct Scratch {
    /// The block's queries scaled to unit length (cosine only).
    rows: Vec<f32>,
    /// `‖q‖²` of the block's queries (L2 only).
    norms: Vec<f32>,
    qpack: Vec<f32>,
    thresholds: Vec<f32>,
    tops: Vec<TopK>,
}

/// The final L2 key of a kernel key: `‖q‖² + (‖c‖² − 2q·c)` clamped at 0, exactly as
/// `score_many_to_many` computes it (a NaN stays NaN and is never selected).
#[inline]
fn l2_key(kernel_key: f32, qq: f32) -> f32 {
    let d = kernel_key + qq;
    if d < 0.0 { 0.0 } else { d }
}

/// The kernel-key threshold under which every lane whose final L2 key could be at or under
/// `threshold` lies. `l2_key` is monotone in the kernel key, and `threshold − qq` is off from
/// the exact cut by at most a rounding of each addition; the margin, many units in the last
/// place of the larger operand, covers both, so the kernel never drops a lane the selection
/// would keep (it may pass a few it then refuses).
#[inline]
fn kernel_threshold(threshold: f32, qq: f32) -> f32 {
    (threshold - qq) + (threshold.abs() + qq.abs()) * THRESHOLD_MARGIN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knn::score_many_to_many_with;
    use crate::simd::SimdLevel;
    use proptest::prelude::*;

    /// The slow twin: the full score matrix of the same level, every row sorted by (key, id),
    /// cut to `k`.
    fn by_full_sort(
        kern: &Kernels,
        metric: Metric,
        queries: &[f32],
        centroids: &[f32],
        dim: usize,
        k: usize,
    ) -> (Vec<u32>, Vec<f32>) {
        let (nq, n) = (queries.len() / dim, centroids.len() / dim);
        let mut scores = vec![0f32; nq * n];
        score_many_to_many_with(kern, metric, queries, centroids, dim, &mut scores).unwrap();
        let (mut ids, mut keys) = (Vec::new(), Vec::new());
        for row in scores.chunks_exact(n.max(1)).take(nq) {
            let mut all: Vec<(f32, u32)> = row
                .iter()
                .enumerate()
                .map(|(j, &s)| (if metric == Metric::L2 { s } else { -s }, j as u32))
                .filter(|(key, _)| !key.is_nan())
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for i in 0..k {
                let (key, id) = all.get(i).copied().unwrap_or((f32::INFINITY, u32::MAX));
                ids.push(id);
                keys.push(key);
            }
        }
        (ids, keys)
    }

    fn packed_search(
        kern: &Kernels,
        metric: Metric,
        queries: &[f32],
        centroids: &[f32],
        dim: usize,
        k: usize,
    ) -> (Vec<u32>, Vec<f32>) {
        let packed = PackedCentroids::new_with(kern, centroids, dim, metric).unwrap();
        let nq = queries.len() / dim;
        let (mut ids, mut keys) = (vec![0; nq * k], vec![0.0; nq * k]);
        packed.search(queries, k, &mut ids, &mut keys).unwrap();
        (ids, keys)
    }

    fn metric_strategy() -> impl Strategy<Value = Metric> {
        prop_oneof![Just(Metric::L2), Just(Metric::InnerProduct), Just(Metric::Cosine)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The fused selection equals the full sort of the score matrix, ids and key bits, at
        /// every level, for shapes around the tile and block edges; small integer values make
        /// equal keys (ties) common.
        #[test]
        fn fused_selection_equals_the_full_sort(
            dim in 1usize..40,
            n in 1usize..140,
            nq in 1usize..40,
            k in 1usize..40,
            metric in metric_strategy(),
            seed in any::<u64>(),
            spread in prop_oneof![Just(3.0f32), Just(1000.0f32)],
        ) {
            let mut s = seed | 1;
            let mut next = move || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 * spread).round() - spread / 2.0
            };
            let mut centroids: Vec<f32> = (0..n * dim).map(|_| next()).collect();
            let queries: Vec<f32> = (0..nq * dim).map(|_| next()).collect();
            if metric == Metric::Cosine {
                // Cosine refuses zero centroids; a zero query is allowed (it ties everything).
                for row in centroids.chunks_exact_mut(dim) {
                    if row.iter().all(|&v| v == 0.0) { row[0] = 1.0; }
                }
            }
            for level in SimdLevel::available() {
                let kern = Kernels::for_level(level).unwrap();
                let want = by_full_sort(&kern, metric, &queries, &centroids, dim, k);
                let got = packed_search(&kern, metric, &queries, &centroids, dim, k);
                prop_assert_eq!(&got.0, &want.0, "level {} ids", level);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(&got.1), bits(&want.1), "level {} keys", level);
            }
        }
    }

    #[test]
    fn several_blocks_and_parallel_chunks_give_the_same_answer() {
        // dim 200: a packed block holds 320 centroids, so 1000 span four; 700 queries span
        // several chunks on two threads.
        let (dim, n, nq, k) = (200, 1000, 700, 16);
        let mut s = 99u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        let centroids: Vec<f32> = (0..n * dim).map(|_| next()).collect();
        let queries: Vec<f32> = (0..nq * dim).map(|_| next()).collect();
        let want = by_full_sort(kernels(), Metric::L2, &queries, &centroids, dim, k);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let got = pool.install(|| packed_search(kernels(), Metric::L2, &queries, &centroids, dim, k));
            assert_eq!(got, want, "{threads} threads");
        }
    }

    #[test]
    fn pads_short_answers_and_rejects_bad_buffers() {
        let packed = PackedCentroids::new(&[0.0f32, 0.0, 3.0, 4.0], 2, Metric::L2).unwrap();
        assert_eq!((packed.len(), packed.dim(), packed.metric(), packed.is_empty()), (2, 2, Metric::L2, false));
        let (mut ids, mut keys) = (vec![0; 6], vec![0.0; 6]);
        packed.search(&[0.0, 0.0, f32::NAN, 1.0], 3, &mut ids, &mut keys).unwrap();
        assert_eq!(ids, [0, 1, u32::MAX, u32::MAX, u32::MAX, u32::MAX]);
        assert_eq!(keys, [0.0, 25.0, f32::INFINITY, f32::INFINITY, f32::INFINITY, f32::INFINITY]);
        assert!(matches!(
            packed.search(&[0.0; 3], 1, &mut ids, &mut keys),
            Err(Error::RaggedBuffer { what: "queries", .. })
        ));
        assert!(matches!(
            packed.search(&[0.0; 2], 1, &mut ids, &mut keys),
            Err(Error::OutputLength { what: "ids", .. })
        ));
        assert!(matches!(
            packed.search(&[0.0; 2], 6, &mut ids, &mut keys[..5]),
            Err(Error::OutputLength { what: "keys", .. })
        ));
        assert!(packed.search(&[], 3, &mut [], &mut []).is_ok());
        assert_eq!(
            PackedCentroids::new(&[1.0f32, f32::INFINITY], 2, Metric::L2).unwrap_err(),
            Error::NonFinite { what: "centroids", row: 0, component: 1 }
        );
        assert!(matches!(PackedCentroids::new(&[1.0f32; 3], 2, Metric::L2), Err(Error::RaggedBuffer { .. })));
    }

    #[test]
    fn the_kernel_threshold_never_cuts_a_lane_the_selection_keeps() {
        // Exhaustive over neighbouring floats: every kernel key whose final key is at or under
        // the threshold passes the translated test.
        let mut s = 7u64;
        for _ in 0..2000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let qq = f32::from_bits(((s >> 8) as u32 % 0x3f00_0000) + 0x0080_0000);
            let c = f32::from_bits(((s >> 40) as u32 % 0x3f00_0000) + 0x0080_0000);
            let t = l2_key(c - qq, qq);
            let cut = kernel_threshold(t, qq);
            let mut key = c - qq;
            for _ in 0..64 {
                if l2_key(key, qq) <= t {
                    assert!(key <= cut, "qq {qq} t {t} key {key} cut {cut}");
                }
                key = f32::from_bits(key.to_bits().wrapping_add(if key >= 0.0 { 1 } else { u32::MAX }));
            }
        }
    }
}
