//! Exact k-nearest-neighbour search and the many-to-many score matrix.

use rayon::prelude::*;

use crate::element::{Element, cosine_from_parts};
use crate::error::{Error, Result};
use crate::gemm::{self, BaseTerms};
use crate::metric::Metric;
use crate::rows::{check_rows_scored, check_shape, prepare_rows, scale_to_unit};
use crate::simd::{Kernels, kernels};
use crate::topk::TopK;

/// The results of a batch search: up to `k` neighbours per query, best first.
///
/// Two views of the same data:
/// - per query ([`Neighbors::get`], [`Neighbors::iter`]): only the real hits;
/// - flat ([`Neighbors::ids`], [`Neighbors::scores`]): `num_queries × k`, row-major, where a
///   query with fewer than `k` hits is padded with `id = u64::MAX` and the metric's worst
///   score ([`Metric::worst_score`]) — the layout Faiss users expect.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbors {
    k: usize,
    ids: Vec<u64>,
    scores: Vec<f32>,
    lens: Vec<usize>,
}

impl Neighbors {
    /// Builds the result from per-query lists of `(id, score)`, each already best first and at
    /// most `k` long (longer lists are cut to `k`).
    ///
    /// The flat view holds `num_queries × k` entries whatever the lists' lengths, so a `k` far
    /// above the index size (`usize::MAX`, 2⁴⁰) cannot be padded: when that product overflows
    /// or the allocator refuses it, this returns [`Error::ResultTooLarge`] instead of aborting
    /// the process.
    pub fn from_rows(k: usize, metric: Metric, rows: impl IntoIterator<Item = Vec<(u64, f32)>>) -> Result<Self> {
        let rows: Vec<Vec<(u64, f32)>> = rows.into_iter().collect();
        let too_large = || Error::ResultTooLarge { queries: rows.len(), k };
        let total = rows.len().checked_mul(k).ok_or_else(too_large)?;
        let mut out = Neighbors { k, ids: Vec::new(), scores: Vec::new(), lens: Vec::with_capacity(rows.len()) };
        out.ids.try_reserve_exact(total).map_err(|_| too_large())?;
        out.scores.try_reserve_exact(total).map_err(|_| too_large())?;
        for row in &rows {
            let n = row.len().min(k);
            out.lens.push(n);
            out.ids.extend(row[..n].iter().map(|h| h.0));
            out.scores.extend(row[..n].iter().map(|h| h.1));
            out.ids.resize(out.lens.len() * k, u64::MAX);
            out.scores.resize(out.lens.len() * k, metric.worst_score());
        }
        Ok(out)
    }

    /// Number of queries.
    pub fn num_queries(&self) -> usize {
        self.lens.len()
    }

    /// The `k` the search was asked for (the width of the flat view).
    pub fn k(&self) -> usize {
        self.k
    }

    /// All ids, `num_queries × k`, padded with `u64::MAX`.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// All scores, `num_queries × k`, padded with the metric's worst score.
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }

    /// The hits of query `q` (ids and scores, best first), or `None` if `q` is out of range.
    pub fn get(&self, q: usize) -> Option<(&[u64], &[f32])> {
        let n = *self.lens.get(q)?;
        let start = q * self.k;
        Some((&self.ids[start..start + n], &self.scores[start..start + n]))
    }

    /// The hits of every query, in query order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u64], &[f32])> + '_ {
        (0..self.num_queries()).map(|q| self.get(q).expect("q < num_queries"))
    }
}

/// The queries as f32, scaled to unit length for cosine (a zero row stays zero). Unchecked:
/// for [`score_many_to_many`], which scores whatever it is given.
fn queries_as_f32<T: Element>(queries: &[T], dim: usize, metric: Metric) -> Vec<f32> {
    let mut out = T::slice_to_f32(queries).into_owned();
    if metric == Metric::Cosine {
        out.par_chunks_exact_mut(dim).for_each(scale_to_unit);
    }
    out
}

/// The exact score of one pair with the per-pair kernels of `kern` (the scores exact searches
/// return; cosine divides by both norms, so neither side needs normalizing).
#[inline]
pub(crate) fn pair_score<T: Element>(kern: &Kernels, metric: Metric, q: &[T], y: &[T]) -> f32 {
    match metric {
        Metric::L2 => T::l2_sq_unchecked(kern, q, y),
        Metric::InnerProduct => T::dot_unchecked(kern, q, y),
        Metric::Cosine => cosine_from_parts(T::cos_parts_unchecked(kern, q, y)),
    }
}

/// Extra candidates the blocked search selects for exact rescoring (see `knn_exact_with`).
const RESCORE_MARGIN: usize = 8;

/// Base vectors per parallel task of the direct search.
pub(crate) const DIRECT_BLOCK: usize = 4096;

/// One query against the base with the per-pair kernels, in parallel over blocks of the base.
fn top_k_direct<T: Element>(kern: &Kernels, q: &[T], base: &[T], dim: usize, k: usize, metric: Metric) -> TopK {
    base.par_chunks(DIRECT_BLOCK * dim)
        .enumerate()
        .map(|(b, rows)| {
            let mut top = TopK::new(k);
            for (j, y) in rows.chunks_exact(dim).enumerate() {
                top.push(metric.key_from_score(pair_score(kern, metric, q, y)), (b * DIRECT_BLOCK + j) as u64);
            }
            top
        })
        .reduce(|| TopK::new(k), TopK::merge)
}

/// Exact k-nearest-neighbour search of `queries` in `base` (both row-major, `dim` wide).
///
/// Returns, per query, the `min(k, n)` best base vectors by `metric`, best first, ties to the
/// smaller id (ids are row numbers of `base`). Runs in parallel over queries on the current
/// rayon pool; call it inside `pool.install(..)` to choose the thread count.
///
/// The blocked search uses the `‖x‖² − 2x·y + ‖y‖²` form (like a BLAS-based search) to select
/// `k` plus a margin of candidates, which are then rescored exactly with the per-pair kernels
/// and cut to `k`: scores are the per-pair kernels' and near-ties are ordered by them.
///
/// - Queries, then the base, are checked like [`prepare_rows`](crate::prepare_rows) checks
///   rows: finite ([`Error::NonFinite`] naming `"queries"` or `"base"`, the row and the
///   component), nonzero for cosine ([`Error::ZeroNorm`]), and a squared norm of at most
///   [`MAX_SQUARED_NORM`](crate::MAX_SQUARED_NORM) ([`Error::NormOverflow`]) — for cosine too,
///   because the vectors are scored as given (the cosine kernels divide by the norms per pair,
///   in f32) rather than normalized copies. Scores are therefore always finite.
/// - `k > n` is not an error: each query gets `n` hits (see [`Neighbors`] for the padding).
///
/// ```
/// use vq_distance::{knn_exact, Metric};
/// let base = [0.0f32, 0.0, 1.0, 1.0, 5.0, 5.0];
/// let hits = knn_exact(&base, &[0.9f32, 1.2], 2, 2, Metric::L2).unwrap();
/// assert_eq!(hits.get(0).unwrap().0, &[1, 0]);
/// ```
pub fn knn_exact<T: Element>(base: &[T], queries: &[T], dim: usize, k: usize, metric: Metric) -> Result<Neighbors> {
    knn_exact_with(kernels(), base, queries, dim, k, metric)
}

/// [`knn_exact`] with the kernels of a chosen level.
pub fn knn_exact_with<T: Element>(
    kern: &Kernels,
    base: &[T],
    queries: &[T],
    dim: usize,
    k: usize,
    metric: Metric,
) -> Result<Neighbors> {
    let nb = check_shape("base", base, dim)?;
    check_shape("queries", queries, dim)?;
    if k == 0 {
        return Err(Error::ZeroK);
    }
    // Queries first: they are few, so a bad one is found without scanning the base.
    check_rows_scored("queries", queries, dim, metric, true)?;
    check_rows_scored("base", base, dim, metric, true)?;
    let queries_f32 = T::slice_to_f32(queries);
    let q32 = prepare_rows("queries", &queries_f32, dim, metric)?;
    let q32 = q32.as_slice();
    let k_eff = k.min(nb);
    let tops = if q32.len() / dim < kern.gemm.mr {
        // Fewer queries than one register tile: packing the base would cost more than it saves.
        queries.chunks_exact(dim).map(|q| top_k_direct(kern, q, base, dim, k_eff, metric)).collect()
    } else {
        let terms = BaseTerms::new(kern, base, dim, metric, true);
        // The blocked form rounds differently from the exact per-pair score, so a near-tie at
        // rank k could fall on the wrong side; select a few extra candidates, rescore them
        // exactly below, and keep the best k.
        let k_select = (k_eff + RESCORE_MARGIN + k_eff / 4).min(nb);
        gemm::top_k_blocked(kern, q32, base, dim, &terms, k_select)
    };
    let rows: Vec<Vec<(u64, f32)>> = tops
        .into_par_iter()
        .zip(queries.par_chunks_exact(dim))
        .map(|(top, q)| {
            let mut hits: Vec<(u64, f32)> = top
                .into_sorted()
                .into_iter()
                .map(|(_, id)| (id, pair_score(kern, metric, q, &base[id as usize * dim..][..dim])))
                .collect();
            // The exact scores can reorder near-ties of the blocked form.
            metric.sort_hits(&mut hits);
            hits.truncate(k_eff);
            hits
        })
        .collect();
    Neighbors::from_rows(k, metric, rows)
}

/// Writes the `nq × nb` matrix of scores of every query against every base vector into `out`
/// (row-major, one row per query), with the blocked `‖x‖² − 2x·y + ‖y‖²` form for L2.
///
/// L2 values are clamped at 0 (the blocked form can round a tiny distance below it).
/// Non-finite values give non-finite scores here (nothing is skipped). Parallel over queries.
pub fn score_many_to_many<T: Element>(
    metric: Metric,
    queries: &[T],
    base: &[T],
    dim: usize,
    out: &mut [f32],
) -> Result<()> {
    score_many_to_many_with(kernels(), metric, queries, base, dim, out)
}

/// [`score_many_to_many`] with the kernels of a chosen level (the slow twin of the fused
/// selections' property tests).
pub(crate) fn score_many_to_many_with<T: Element>(
    kern: &Kernels,
    metric: Metric,
    queries: &[T],
    base: &[T],
    dim: usize,
    out: &mut [f32],
) -> Result<()> {
    let nb = check_shape("base", base, dim)?;
    let nq = check_shape("queries", queries, dim)?;
    if out.len() != nq * nb {
        return Err(Error::OutputLength { what: "out", got: out.len(), expected: nq * nb });
    }
    let q32 = queries_as_f32(queries, dim, metric);
    let terms = BaseTerms::new(kern, base, dim, metric, false);
    gemm::keys_matrix(kern, &q32, base, dim, &terms, out);
    if nb == 0 {
        return Ok(());
    }
    out.par_chunks_mut(nb).zip(q32.par_chunks(dim)).for_each(|(row, q)| match metric {
        Metric::L2 => {
            let qq = kern.f32.dot_sq(q);
            // `max` would turn NaN into 0; keep non-finite values visible.
            row.iter_mut().for_each(|v| *v = if *v + qq < 0.0 { 0.0 } else { *v + qq });
        }
        Metric::InnerProduct | Metric::Cosine => row.iter_mut().for_each(|v| *v = -*v),
    });
    Ok(())
}
