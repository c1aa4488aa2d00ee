//! Range search: every base vector within a radius of each query (Faiss' `range_search`), and
//! its result type.

use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Error, Result};
use crate::gemm::{self, BaseTerms};
use crate::knn::{DIRECT_BLOCK, pair_score};
use crate::metric::Metric;
use crate::rows::{check_rows_scored, check_shape, prepare_rows};
use crate::simd::{Kernels, kernels};

/// The results of a range search: every hit of every query, best first, ties to the smaller
/// id. Queries hold different numbers of hits, so the hits are stored end to end, Faiss'
/// `RangeSearchResult` layout: query `q`'s hits are `ids()[lims()[q]..lims()[q + 1]]` (and the
/// same range of `scores()`).
///
/// ```
/// use vq_distance::{range_exact, Metric};
/// let base = [0.0f32, 0.0, 1.0, 0.0, 3.0, 0.0];
/// let hits = range_exact(&base, &[0.9f32, 0.0, 5.0, 5.0], 2, 1.0, Metric::L2)?;
/// assert_eq!(hits.lims(), &[0, 2, 2]);          // query 0: two hits, query 1: none
/// assert_eq!(hits.get(0).unwrap().0, &[1, 0]); // squared distances 0.01 and 0.81
/// # Ok::<(), vq_distance::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RangeResult {
    lims: Vec<usize>,
    ids: Vec<u64>,
    scores: Vec<f32>,
}

impl Default for RangeResult {
    fn default() -> Self {
        RangeResult { lims: vec![0], ids: Vec::new(), scores: Vec::new() }
    }
}

impl RangeResult {
    /// A result with no queries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the result from per-query lists of `(id, score)` in any order; each is sorted
    /// best first by `metric` (ties to the smaller id).
    pub fn from_rows(metric: Metric, rows: impl IntoIterator<Item = Vec<(u64, f32)>>) -> Result<Self> {
        let mut out = RangeResult::new();
        out.push_rows(metric, rows)?;
        Ok(out)
    }

    /// Appends the hits of more queries (as [`RangeResult::from_rows`] takes them). When the
    /// allocator refuses the room they need, returns [`Error::RangeTooLarge`] and appends
    /// nothing.
    pub fn push_rows(&mut self, metric: Metric, rows: impl IntoIterator<Item = Vec<(u64, f32)>>) -> Result<()> {
        let mut rows: Vec<Vec<(u64, f32)>> = rows.into_iter().collect();
        let added: usize = rows.iter().map(Vec::len).sum();
        let hits = self.ids.len().saturating_add(added);
        let too_large = || Error::RangeTooLarge { hits };
        self.ids.try_reserve_exact(added).map_err(|_| too_large())?;
        self.scores.try_reserve_exact(added).map_err(|_| too_large())?;
        self.lims.try_reserve_exact(rows.len()).map_err(|_| too_large())?;
        let start = self.ids.len();
        self.ids.resize(hits, 0);
        self.scores.resize(hits, 0.0);
        // Each query's slices of the two arrays, so that the rows sort and move in parallel
        // (a wide radius gives millions of hits).
        let (mut ids, mut scores) = (&mut self.ids[start..], &mut self.scores[start..]);
        let mut slots = Vec::with_capacity(rows.len());
        for row in &rows {
            let (i, rest_i) = ids.split_at_mut(row.len());
            let (s, rest_s) = scores.split_at_mut(row.len());
            (ids, scores) = (rest_i, rest_s);
            slots.push((i, s));
        }
        rows.par_iter_mut().zip(slots).for_each(|(row, (ids, scores))| {
            metric.sort_hits(row);
            for (&(id, score), (i, s)) in row.iter().zip(ids.iter_mut().zip(scores.iter_mut())) {
                (*i, *s) = (id, score);
            }
        });
        for row in &rows {
            let end = self.lims.last().copied().unwrap_or(0) + row.len();
            self.lims.push(end);
        }
        Ok(())
    }

    /// The three arrays, moved out: `(lims, ids, scores)`.
    pub fn into_parts(self) -> (Vec<usize>, Vec<u64>, Vec<f32>) {
        (self.lims, self.ids, self.scores)
    }

    /// Number of queries.
    pub fn num_queries(&self) -> usize {
        self.lims.len() - 1
    }

    /// Where each query's hits start, plus the end: `num_queries() + 1` offsets into
    /// [`RangeResult::ids`] and [`RangeResult::scores`].
    pub fn lims(&self) -> &[usize] {
        &self.lims
    }

    /// Every query's hit ids, end to end.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// Every query's hit scores, end to end.
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }

    /// Hits over all queries.
    pub fn total_hits(&self) -> usize {
        self.ids.len()
    }

    /// The hits of query `q` (ids and scores, best first), or `None` if `q` is out of range.
    pub fn get(&self, q: usize) -> Option<(&[u64], &[f32])> {
        let (&start, &end) = (self.lims.get(q)?, self.lims.get(q + 1)?);
        Some((&self.ids[start..end], &self.scores[start..end]))
    }

    /// The hits of every query, in query order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u64], &[f32])> + '_ {
        (0..self.num_queries()).map(|q| self.get(q).expect("q < num_queries"))
    }
}

/// `Ok` unless `radius` is NaN. Infinite radii are allowed: `+∞` for L2 (`−∞` for inner
/// product and cosine) keeps every vector, the other sign none.
pub fn check_radius(radius: f32) -> Result<()> {
    if radius.is_nan() { Err(Error::NanRadius) } else { Ok(()) }
}

/// `Ok` when `radii` holds one radius per query (`num_queries`), none NaN: per-query radii as
/// a batched range search takes them.
pub fn check_radii(radii: &[f32], num_queries: usize) -> Result<()> {
    if radii.len() != num_queries {
        return Err(Error::Dimension { what: "radii (one per query)", got: radii.len(), expected: num_queries });
    }
    radii.iter().try_for_each(|&r| check_radius(r))
}

/// Queries range-searched per pass: the hits of one pass are gathered before they are moved
/// into the result, so this bounds the memory held twice.
const RANGE_BATCH: usize = 4096;

/// Exact range search of `queries` in `base` (both row-major, `dim` wide): for every query,
/// every base vector whose score is within `radius` ([`Metric::within`]: squared L2 below it,
/// inner product or cosine above it), best first, ties to the smaller id (ids are row numbers
/// of `base`). Scores are the per-pair kernels' scores, as [`knn_exact`](crate::knn_exact)
/// returns them. Runs in parallel on the current rayon pool.
///
/// Rows are checked as [`knn_exact`](crate::knn_exact) checks them; a NaN radius is
/// [`Error::NanRadius`]. The result grows with the hits: a radius that keeps everything returns
/// `num_queries × n` of them (a refused allocation is [`Error::RangeTooLarge`]).
///
/// Batches of queries are scanned in the blocked form with a per-query key threshold raised by
/// a bound on both forms' rounding error, so the candidates are a superset of the hits; each
/// candidate is then scored with the per-pair kernels and kept only if that score is within
/// `radius`. The result is therefore exactly the set the per-pair kernels put within it.
pub fn range_exact<T: Element>(
    base: &[T],
    queries: &[T],
    dim: usize,
    radius: f32,
    metric: Metric,
) -> Result<RangeResult> {
    range_exact_with(kernels(), base, queries, dim, radius, metric)
}

/// [`range_exact`] with the kernels of a chosen level.
pub fn range_exact_with<T: Element>(
    kern: &Kernels,
    base: &[T],
    queries: &[T],
    dim: usize,
    radius: f32,
    metric: Metric,
) -> Result<RangeResult> {
    let nb = check_shape("base", base, dim)?;
    let nq = check_shape("queries", queries, dim)?;
    check_radius(radius)?;
    check_rows_scored("queries", queries, dim, metric, true)?;
    check_rows_scored("base", base, dim, metric, true)?;
    let mut out = RangeResult::new();
    if nb == 0 {
        out.push_rows(metric, vec![Vec::new(); nq])?;
        return Ok(out);
    }
    // The blocked form pays once there is a register tile of queries (as in knn_exact).
    let blocked = (nq >= kern.gemm.mr).then(|| Blocked::new(kern, base, dim, metric));
    for qbatch in queries.chunks(RANGE_BATCH * dim) {
        let rows = match &blocked {
            Some(blocked) => blocked.search(kern, qbatch, base, radius)?,
            None => qbatch.chunks_exact(dim).map(|q| within_direct(kern, q, base, dim, radius, metric)).collect(),
        };
        out.push_rows(metric, rows)?;
    }
    Ok(out)
}

/// One query against the base with the per-pair kernels, in parallel over blocks of the base.
fn within_direct<T: Element>(
    kern: &Kernels,
    q: &[T],
    base: &[T],
    dim: usize,
    radius: f32,
    metric: Metric,
) -> Vec<(u64, f32)> {
    base.par_chunks(DIRECT_BLOCK * dim)
        .enumerate()
        .flat_map_iter(|(b, rows)| {
            rows.chunks_exact(dim).enumerate().filter_map(move |(j, y)| {
                let score = pair_score(kern, metric, q, y);
                metric.within(score, radius).then_some(((b * DIRECT_BLOCK + j) as u64, score))
            })
        })
        .collect()
}

/// The blocked range search's per-base state: the key terms and the largest squared norm in
/// the base (for the rounding bound).
struct Blocked {
    dim: usize,
    metric: Metric,
    terms: BaseTerms,
    max_sq_norm: f32,
}

impl Blocked {
    fn new<T: Element>(kern: &Kernels, base: &[T], dim: usize, metric: Metric) -> Self {
        let terms = BaseTerms::new(kern, base, dim, metric, true);
        let max_sq_norm = match metric {
            // The L2 bias is the squared norm; the rows were checked finite.
            Metric::L2 => terms.bias.iter().copied().fold(0.0, f32::max),
            Metric::InnerProduct => {
                base.par_chunks_exact(dim).map(|y| T::dot_unchecked(kern, y, y)).reduce(|| 0.0, f32::max)
            }
            // Both sides are scaled to unit length.
            Metric::Cosine => 1.0,
        };
        Blocked { dim, metric, terms, max_sq_norm }
    }

    /// The key threshold of one query (f32, normalized for cosine) for `radius`: its key for a
    /// score of exactly `radius`, raised by a bound on the rounding of the blocked key and of
    /// the per-pair score together. Both are sums of `dim` products, each off by at most about
    /// `dim · ε/2` times `‖x‖² + ‖y‖²` (a dot product's error is bounded by `γ_dim · Σ|xᵢyᵢ|`,
    /// and `Σ|xᵢyᵢ| ≤ (‖x‖² + ‖y‖²) / 2`); the slack is four times that for L2 and inner
    /// product, eight for cosine, whose inputs are rescaled first.
    fn key_threshold(&self, kern: &Kernels, q: &[f32], radius: f32) -> f32 {
        let qq = kern.f32.dot_sq(q);
        let factor = if self.metric == Metric::Cosine { 8.0 } else { 4.0 };
        let slack = factor * self.dim as f32 * f32::EPSILON * (qq + self.max_sq_norm);
        match self.metric {
            // key = ‖y‖² − 2·x·y = score − ‖x‖²
            Metric::L2 => radius - qq + slack,
            // key = −score
            Metric::InnerProduct | Metric::Cosine => -radius + slack,
        }
    }

    /// The hits of a batch of queries: blocked candidates, rescored with the per-pair kernels.
    fn search<T: Element>(
        &self,
        kern: &Kernels,
        queries: &[T],
        base: &[T],
        radius: f32,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let dim = self.dim;
        let queries_f32 = T::slice_to_f32(queries);
        let q32 = prepare_rows("queries", &queries_f32, dim, self.metric)?;
        let thresholds: Vec<f32> = q32.iter().map(|q| self.key_threshold(kern, q, radius)).collect();
        let candidates = gemm::within_blocked(kern, q32.as_slice(), base, dim, &self.terms, &thresholds);
        Ok(candidates
            .into_par_iter()
            .zip(queries.par_chunks_exact(dim))
            .map(|(ids, q)| {
                ids.into_iter()
                    .filter_map(|id| {
                        let score = pair_score(kern, self.metric, q, &base[id as usize * dim..][..dim]);
                        self.metric.within(score, radius).then_some((id, score))
                    })
                    .collect()
            })
            .collect())
    }
}
