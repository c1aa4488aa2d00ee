//! Nearest-centroid assignment: the top-1 of every point among a set of f32 vectors, written
//! into caller-owned buffers (the inner step of k-means, IVF assignment and PQ encoding).
//!
//! [`PackedPoints`] validates, converts and packs the points once for the micro-kernel, so that
//! repeated searches against changing centroids (Lloyd iterations) pay only for the scan. The
//! selection is an exact running minimum per point, fused into the blocked kernel: its threshold
//! is always the best key so far, so almost every tile is rejected by one comparison.
//!
//! Small dimensions (`dim ≤ SMALL_DIM`, PQ's 4–16-dimensional sub-vectors) take another
//! kernel where the CPU has one: the blocked kernel's tile does `dim` steps of arithmetic and
//! then, per row, a compare, a mask and often a callback, which at `dim = 8` cost more than the
//! arithmetic. The small kernel keeps a running minimum and its panel number per lane in
//! registers (a compare and two masked moves per row and panel) and reduces across lanes once
//! per point. It computes every key exactly as the blocked kernel does (the same fused
//! multiply-adds in the same order, then `bias + alpha · dot`), so both give the same labels
//! and scores, ties included; a property test holds them to that.

use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Error, Result};
use crate::gemm::{BaseTerms, PackedBase, ScanArgs, pack_queries};
use crate::metric::Metric;
use crate::rows::{check_shape, scale_to_unit, validate_rows};
use crate::simd::{Kernels, kernels};

/// Points converted (and, for cosine, normalized) per step by [`nearest_centroids`], so that a
/// non-f32 input never needs a full f32 copy.
const POINT_BLOCK: usize = 16 * 1024;

/// Rows [`l2_shift`] reads at most.
const SHIFT_SAMPLE: usize = 256;

/// Centroids are packed in blocks of about this many bytes, so a block stays in L2.
const CENTROID_BLOCK_BYTES: usize = 256 * 1024;

/// Points per parallel task (rounded to whole register-tile groups).
const MAX_CHUNK_ROWS: usize = 1024;

/// Largest dimension served by the small-dimension kernel ([`crate::simd::SmallKernel`]).
pub(crate) const SMALL_DIM: usize = 16;

/// What the small-dimension kernel scans: every point of `groups` packed groups (the layout of
/// [`PackedPoints`], `mr` points per group, k-major) against `panels` panels of `lanes`
/// centroids (k-major, scaled for cosine), whose first centroid has id `first`. Only x86-64 has
/// such a kernel today.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct SmallArgs<'a> {
    pub(crate) qpack: &'a [f32],
    pub(crate) groups: usize,
    pub(crate) cpack: &'a [f32],
    pub(crate) bias: &'a [f32],
    pub(crate) panels: usize,
    pub(crate) dim: usize,
    pub(crate) alpha: f32,
    pub(crate) first: u32,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl SmallArgs<'_> {
    /// Checks the buffer sizes the kernels' pointer arithmetic relies on.
    pub(crate) fn check(&self, mr: usize, lanes: usize, best: &[(f32, u32)]) {
        assert!(self.qpack.len() >= self.groups * self.dim * mr, "point pack too short");
        assert!(self.cpack.len() >= self.panels * self.dim * lanes, "centroid pack too short");
        assert!(self.bias.len() >= self.panels * lanes, "bias too short");
        assert!(best.len() <= self.groups * mr, "more results than points");
        assert!(self.panels * lanes <= u32::MAX as usize - self.first as usize, "centroid ids overflow u32");
    }
}

/// Signature of a level's small-dimension kernel: for every point `r < best.len()`, replaces
/// `best[r]` by `(key, id)` of the block's best centroid when its key is strictly smaller
/// (so earlier blocks keep ties); ties inside the block go to the smaller id; NaN keys
/// (skipped centroids, padding) never win.
pub(crate) type SmallFn = fn(&SmallArgs<'_>, &mut [(f32, u32)]);

/// Points prepared once for repeated nearest-centroid searches: validated, converted to f32
/// (normalized for cosine) and packed in the layout of the SIMD micro-kernel of one level.
///
/// ```
/// use vq_distance::{Metric, PackedPoints};
/// let points = PackedPoints::new(&[1u8, 2, 9, 9, 4, 4], 2, Metric::L2)?;
/// let (mut labels, mut scores) = (vec![0; 3], vec![0.0; 3]);
/// for centroids in [[0.0f32, 0.0, 10.0, 10.0], [10.0, 10.0, 0.0, 0.0]] {
///     points.nearest(&centroids, &mut labels, &mut scores)?;
///     assert_eq!(scores, [5.0, 2.0, 32.0]);
/// }
/// assert_eq!(labels, [1, 0, 1]);
/// # Ok::<(), vq_distance::Error>(())
/// ```
pub struct PackedPoints<'k> {
    kern: &'k Kernels,
    dim: usize,
    n: usize,
    metric: Metric,
    /// Groups of `mr` points, k-major, zero-padded.
    pack: Vec<f32>,
    /// `‖x − shift‖²` of every point (L2 only; empty otherwise).
    sq_norms: Vec<f32>,
    /// The translation the points were packed under (L2 only, see [`l2_shift`]: the points'
    /// mean, or the centroids' for [`nearest_centroids`]); centroids are moved by it too before
    /// a search.
    shift: Option<Vec<f32>>,
}

impl std::fmt::Debug for PackedPoints<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedPoints")
            .field("level", &self.kern.level)
            .field("dim", &self.dim)
            .field("n", &self.n)
            .field("metric", &self.metric)
            .finish_non_exhaustive()
    }
}

impl PackedPoints<'static> {
    /// Prepares `points` (row-major, `dim` wide) for searches by `metric` with the kernels of
    /// this process ([`simd_level`](crate::simd_level)).
    ///
    /// Points are checked by [`validate_rows`](crate::validate_rows) (errors name `"points"`):
    /// finite, nonzero for cosine, and within [`MAX_SQUARED_NORM`](crate::MAX_SQUARED_NORM)
    /// for L2 and inner product. Parallel on the current rayon pool.
    pub fn new<T: Element>(points: &[T], dim: usize, metric: Metric) -> Result<Self> {
        Self::new_with(kernels(), points, dim, metric)
    }
}

impl<'k> PackedPoints<'k> {
    /// [`PackedPoints::new`] with the kernels of a chosen level.
    pub fn new_with<T: Element>(kern: &'k Kernels, points: &[T], dim: usize, metric: Metric) -> Result<Self> {
        validate_rows("points", points, dim, metric)?;
        let shift = if metric == Metric::L2 { l2_shift(points, dim) } else { None };
        Ok(Self::new_unchecked(kern, points, dim, metric, shift))
    }

    /// [`PackedPoints::new_with`] for points already validated, moved by `shift` (see
    /// [`l2_shift`]).
    fn new_unchecked<T: Element>(
        kern: &'k Kernels,
        points: &[T],
        dim: usize,
        metric: Metric,
        shift: Option<Vec<f32>>,
    ) -> Self {
        let n = points.len() / dim;
        let mr = kern.gemm.mr;
        let groups = n.div_ceil(mr);
        let mut pack = vec![0f32; groups * dim * mr];
        let mut sq_norms = if metric == Metric::L2 { vec![0f32; n] } else { Vec::new() };
        let chunk_groups = MAX_CHUNK_ROWS.div_ceil(mr);
        pack.par_chunks_mut(chunk_groups * dim * mr).enumerate().for_each_init(
            || (Vec::new(), Vec::new()),
            |(rows, tmp), (c, dst)| {
                let first = c * chunk_groups * mr;
                let last = (first + chunk_groups * mr).min(n);
                rows.clear();
                rows.extend(points[first * dim..last * dim].iter().map(|v| v.to_f32()));
                if metric == Metric::Cosine {
                    rows.chunks_exact_mut(dim).for_each(scale_to_unit);
                }
                if let Some(shift) = &shift {
                    translate(rows, shift);
                }
                pack_queries(rows, dim, mr, tmp);
                dst.copy_from_slice(&tmp[..dst.len()]);
            },
        );
        match (&shift, metric) {
            (Some(shift), _) => {
                sq_norms.par_iter_mut().zip(points.par_chunks(dim)).for_each_init(Vec::new, |row, (s, x)| {
                    row.clear();
                    row.extend(x.iter().map(|v| v.to_f32()));
                    translate(row, shift);
                    *s = kern.f32.dot_sq(row);
                })
            }
            (None, Metric::L2) => {
                sq_norms.par_iter_mut().zip(points.par_chunks(dim)).for_each(|(s, x)| *s = T::dot_unchecked(kern, x, x))
            }
            _ => {}
        }
        PackedPoints { kern, dim, n, metric, pack, sq_norms, shift }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric the points were prepared for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// For every point, writes the id of its best row of `centroids` into `labels` and that
    /// pair's score into `scores` (see [`nearest_centroids`] for the scores, ties and skipped
    /// centroids). Parallel over points on the current rayon pool; the result for a point does
    /// not depend on the thread count.
    pub fn nearest(&self, centroids: &[f32], labels: &mut [u32], scores: &mut [f32]) -> Result<()> {
        self.nearest_impl(centroids, labels, scores, true)
    }

    /// [`PackedPoints::nearest`]; `small_ok = false` keeps small dimensions on the blocked
    /// kernel (the property tests compare the two paths).
    fn nearest_impl(&self, centroids: &[f32], labels: &mut [u32], scores: &mut [f32], small_ok: bool) -> Result<()> {
        let (kern, dim, metric) = (self.kern, self.dim, self.metric);
        let nc = check_shape("centroids", centroids, dim)?;
        if nc > u32::MAX as usize {
            return Err(Error::TooManyVectors { n: nc, max: u32::MAX as usize });
        }
        if labels.len() != self.n {
            return Err(Error::OutputLength { what: "labels", got: labels.len(), expected: self.n });
        }
        if scores.len() != self.n {
            return Err(Error::OutputLength { what: "scores", got: scores.len(), expected: self.n });
        }
        if nc == 0 || self.n == 0 {
            labels.fill(u32::MAX);
            scores.fill(metric.worst_score());
            return Ok(());
        }
        let centroids = &translated(centroids, self.shift.as_deref())[..];
        match kern.small.as_ref().filter(|_| small_ok && dim <= SMALL_DIM) {
            Some(small) => self.nearest_small(small, centroids, labels, scores),
            None => self.nearest_blocked(centroids, labels, scores),
        }
        Ok(())
    }

    /// The blocked-kernel path of [`PackedPoints::nearest`] (arguments checked).
    fn nearest_blocked(&self, centroids: &[f32], labels: &mut [u32], scores: &mut [f32]) {
        let (kern, dim, metric) = (self.kern, self.dim, self.metric);
        let terms = BaseTerms::new(kern, centroids, dim, metric, true);
        let blocks = pack_centroids(centroids, dim, kern.gemm.nr, &terms);
        let mr = kern.gemm.mr;
        let threads = rayon::current_num_threads().max(1);
        let groups = self.n.div_ceil(mr);
        let chunk_groups = groups.div_ceil(4 * threads).clamp(1, MAX_CHUNK_ROWS.div_ceil(mr));
        self.pack
            .par_chunks(chunk_groups * dim * mr)
            .zip(labels.par_chunks_mut(chunk_groups * mr))
            .zip(scores.par_chunks_mut(chunk_groups * mr))
            .enumerate()
            .for_each(|(c, ((qpack, labels), scores))| {
                let groups = qpack.len() / (dim * mr);
                let rows = labels.len();
                // Padded rows get a NaN threshold: nothing is ever offered to them.
                let mut thresholds = vec![f32::NAN; groups * mr];
                thresholds[..rows].fill(f32::INFINITY);
                let mut best = vec![(f32::INFINITY, u32::MAX); rows];
                for block in &blocks {
                    let args = ScanArgs {
                        qpack,
                        groups,
                        bpack: &block.packed.data,
                        panels: block.packed.panels,
                        dim,
                        bias: &block.packed.bias,
                        alpha: terms.alpha,
                        keep_all: false,
                    };
                    (kern.gemm.scan)(&args, &mut thresholds, &mut |row, col, keys, mut mask| {
                        let Some(b) = best.get_mut(row) else { return f32::NAN };
                        // Base ids grow along the scan, so a strict `<` keeps the smaller id
                        // of equal keys.
                        while mask != 0 {
                            let j = mask.trailing_zeros() as usize;
                            mask &= mask - 1;
                            if keys[j] < b.0 {
                                *b = (keys[j], (block.first + col + j) as u32);
                            }
                        }
                        b.0
                    });
                }
                self.finish(c * chunk_groups * mr, &best, labels, scores);
            });
    }

    /// The small-dimension path of [`PackedPoints::nearest`] (arguments checked, `dim ≤
    /// SMALL_DIM`): the same chunks of points, each scanned against every block of centroids
    /// by the level's [`SmallKernel`](crate::simd::SmallKernel).
    fn nearest_small(
        &self,
        small: &crate::simd::SmallKernel,
        centroids: &[f32],
        labels: &mut [u32],
        scores: &mut [f32],
    ) {
        let (kern, dim, metric) = (self.kern, self.dim, self.metric);
        let terms = BaseTerms::new(kern, centroids, dim, metric, true);
        let blocks = pack_centroids(centroids, dim, small.lanes, &terms);
        let mr = kern.gemm.mr;
        let threads = rayon::current_num_threads().max(1);
        let groups = self.n.div_ceil(mr);
        let chunk_groups = groups.div_ceil(4 * threads).clamp(1, MAX_CHUNK_ROWS.div_ceil(mr));
        self.pack
            .par_chunks(chunk_groups * dim * mr)
            .zip(labels.par_chunks_mut(chunk_groups * mr))
            .zip(scores.par_chunks_mut(chunk_groups * mr))
            .enumerate()
            .for_each(|(c, ((qpack, labels), scores))| {
                let mut best = vec![(f32::INFINITY, u32::MAX); labels.len()];
                for block in &blocks {
                    let args = SmallArgs {
                        qpack,
                        groups: qpack.len() / (dim * mr),
                        cpack: &block.packed.data,
                        bias: &block.packed.bias,
                        panels: block.packed.panels,
                        dim,
                        alpha: terms.alpha,
                        first: block.first as u32,
                    };
                    (small.nearest)(&args, &mut best);
                }
                self.finish(c * chunk_groups * mr, &best, labels, scores);
            });
    }

    /// Writes the labels and scores of the points `first..` from their best `(key, id)`.
    fn finish(&self, first: usize, best: &[(f32, u32)], labels: &mut [u32], scores: &mut [f32]) {
        let metric = self.metric;
        for (i, ((label, score), &(key, id))) in labels.iter_mut().zip(scores.iter_mut()).zip(best).enumerate() {
            *label = id;
            *score = if id == u32::MAX {
                metric.worst_score()
            } else {
                match metric {
                    Metric::L2 => {
                        let d = key + self.sq_norms[first + i];
                        if d < 0.0 { 0.0 } else { d }
                    }
                    Metric::InnerProduct | Metric::Cosine => -key,
                }
            };
        }
    }
}

/// The translation under which an L2 scan of `rows` keeps its precision, if it needs one: their
/// mean, rounded to integers, where the rows sit far from the origin next to their spread (the
/// mean's squared norm above 16 times the mean squared distance to it). The blocked key
/// `‖c‖² − 2x·c` of rows around an offset of 10⁴ is about 10⁸ (d = 4), whose unit in the last
/// place is 8, while the keys of nearby centroids differ by about 1: the nearest centroid is
/// lost to rounding (k-means, PQ codes and inverted lists of such data were nearly random). L2
/// distances do not change under a translation, and an integer shift keeps integer rows
/// integers, so sums that were exact stay exact. `None` for data centred enough (SIFT and
/// embeddings) or all-zero means.
pub(crate) fn l2_shift<T: Element>(rows: &[T], dim: usize) -> Option<Vec<f32>> {
    if dim == 0 {
        return None;
    }
    let (mut mean, mut sq, mut n) = (vec![0f64; dim], 0f64, 0usize);
    // A strided sample of at most `SHIFT_SAMPLE` rows judges as well as all of them, and keeps
    // this O(d) beside the scan: `nearest_centroids` asks it of every call's centroids (an
    // IVF add of one vector asked it of all 4,096 lists: +50 % on the add). Rows holding NaN
    // or an infinity (centroids a search skips) are left out.
    let step = (rows.len() / dim).div_ceil(SHIFT_SAMPLE).max(1);
    for row in rows.chunks_exact(dim).step_by(step).filter(|row| row.iter().all(|v| v.to_f32().is_finite())) {
        n += 1;
        for (m, v) in mean.iter_mut().zip(row) {
            let v = f64::from(v.to_f32());
            *m += v;
            sq += v * v;
        }
    }
    if n == 0 {
        return None;
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mean_sq: f64 = mean.iter().map(|m| m * m).sum();
    let spread = (sq / n as f64 - mean_sq).max(0.0);
    if mean_sq <= 16.0 * spread {
        return None;
    }
    let shift: Vec<f32> = mean.iter().map(|m| m.round() as f32).collect();
    shift.iter().any(|&s| s != 0.0).then_some(shift)
}

/// `rows` moved by `shift` (a copy), or as they are.
pub(crate) fn translated<'a>(rows: &'a [f32], shift: Option<&[f32]>) -> std::borrow::Cow<'a, [f32]> {
    match shift {
        Some(shift) => {
            let mut moved = rows.to_vec();
            translate(&mut moved, shift);
            std::borrow::Cow::Owned(moved)
        }
        None => std::borrow::Cow::Borrowed(rows),
    }
}

/// Subtracts `shift` from every row of `rows`.
pub(crate) fn translate(rows: &mut [f32], shift: &[f32]) {
    for row in rows.chunks_exact_mut(shift.len()) {
        row.iter_mut().zip(shift).for_each(|(v, s)| *v -= s);
    }
}

/// One block of centroids packed in `nr`-column panels, k-major, and the id of its first
/// centroid.
#[derive(Clone)]
pub(crate) struct CentroidBlock {
    pub(crate) first: usize,
    pub(crate) packed: PackedBase,
}

/// Packs the centroids (scaled for cosine) into L2-sized blocks of `nr`-column panels, the
/// packing of `knn_exact`'s base blocks; padded columns get a NaN bias.
pub(crate) fn pack_centroids(centroids: &[f32], dim: usize, nr: usize, terms: &BaseTerms) -> Vec<CentroidBlock> {
    let block_rows = ((CENTROID_BLOCK_BYTES / (4 * dim)) / nr).max(1) * nr;
    centroids
        .par_chunks(block_rows * dim)
        .enumerate()
        .map(|(b, rows)| {
            let first = b * block_rows;
            let n = rows.len() / dim;
            let mut packed = PackedBase::default();
            let scale = terms.scale.as_deref().map(|s| &s[first..first + n]);
            packed.pack(rows, dim, nr, scale, &terms.bias[first..first + n]);
            CentroidBlock { first, packed }
        })
        .collect()
}

/// For every row of `points`, writes the id of its best row of `centroids` by `metric` into
/// `labels` and that pair's score into `scores` (both `points.len() / dim` long).
///
/// This is [`knn_exact`](crate::knn_exact) with `k = 1`, `base = centroids` and
/// `queries = points`, without the per-query result lists: the blocked
/// `‖x‖² − 2x·c + ‖c‖²` micro-kernel with a fused running minimum, parallel over points on the
/// current rayon pool, and no exact rescoring. Scores are therefore those of the blocked form
/// (as in a BLAS-based k-means): for [`Metric::L2`] `‖x‖² − 2x·c + ‖c‖²` clamped at 0, which
/// may differ from [`l2_sq`](crate::l2_sq) by rounding; similarities for inner product and
/// cosine. Ties go to the smaller id. The result for a point does not depend on the thread count.
/// To search the same points many times, prepare them once with [`PackedPoints`].
///
/// - Points are checked by [`validate_rows`](crate::validate_rows) (errors name `"points"`).
/// - Centroids holding NaN or an infinity are skipped. A point with no finite centroid (or with
///   no centroid at all) gets `u32::MAX` and [`Metric::worst_score`].
/// - [`Error::TooManyVectors`] if there are more than `u32::MAX` centroids;
///   [`Error::OutputLength`] if `labels` or `scores` do not have one entry per point.
///
/// ```
/// use vq_distance::{Metric, nearest_centroids};
/// let centroids = [0.0f32, 0.0, 10.0, 10.0];
/// let points = [1u8, 2, 9, 9, 4, 4];
/// let (mut labels, mut scores) = (vec![0; 3], vec![0.0; 3]);
/// nearest_centroids(&points, &centroids, 2, Metric::L2, &mut labels, &mut scores)?;
/// assert_eq!(labels, [0, 1, 0]);
/// assert_eq!(scores, [5.0, 2.0, 32.0]);
/// # Ok::<(), vq_distance::Error>(())
/// ```
pub fn nearest_centroids<T: Element>(
    points: &[T],
    centroids: &[f32],
    dim: usize,
    metric: Metric,
    labels: &mut [u32],
    scores: &mut [f32],
) -> Result<()> {
    nearest_centroids_with(kernels(), points, centroids, dim, metric, labels, scores)
}

/// [`nearest_centroids`] with the kernels of a chosen level.
pub fn nearest_centroids_with<T: Element>(
    kern: &Kernels,
    points: &[T],
    centroids: &[f32],
    dim: usize,
    metric: Metric,
    labels: &mut [u32],
    scores: &mut [f32],
) -> Result<()> {
    let nc = check_shape("centroids", centroids, dim)?;
    let np = check_shape("points", points, dim)?;
    if nc > u32::MAX as usize {
        return Err(Error::TooManyVectors { n: nc, max: u32::MAX as usize });
    }
    if labels.len() != np {
        return Err(Error::OutputLength { what: "labels", got: labels.len(), expected: np });
    }
    if scores.len() != np {
        return Err(Error::OutputLength { what: "scores", got: scores.len(), expected: np });
    }
    validate_rows("points", points, dim, metric)?;
    // Moved by the centroids' mean: they are all at hand (a single point has no spread to
    // judge by, and an IVF add or a PQ code is often one).
    let shift = if metric == Metric::L2 { l2_shift(centroids, dim) } else { None };
    for ((block, labels), scores) in
        points.chunks(POINT_BLOCK * dim).zip(labels.chunks_mut(POINT_BLOCK)).zip(scores.chunks_mut(POINT_BLOCK))
    {
        PackedPoints::new_unchecked(kern, block, dim, metric, shift.clone()).nearest(centroids, labels, scores)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Naive nearest centroid: exact f64 scores, ties to the smaller id.
    fn naive(points: &[f32], centroids: &[f32], dim: usize, metric: Metric) -> Vec<(u32, f64)> {
        points
            .chunks(dim)
            .map(|x| {
                let mut best = (u32::MAX, f64::NAN);
                for (j, c) in centroids.chunks(dim).enumerate() {
                    let s = match metric {
                        Metric::L2 => x.iter().zip(c).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum(),
                        _ => x.iter().zip(c).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>(),
                    };
                    let better = best.0 == u32::MAX || if metric == Metric::L2 { s < best.1 } else { s > best.1 };
                    if better {
                        best = (j as u32, s);
                    }
                }
                best
            })
            .collect()
    }

    /// Points and centroids around a large common offset (10³ to 10⁶, unit spread): the
    /// nearest centroid of every point by both scans (assignment at every level, and the coarse
    /// search's top 1) is the true nearest, within a hundredth of the spread. Unshifted, the
    /// blocked keys `‖c‖² − 2x·c` lose those differences to rounding (most points got a wrong
    /// centroid at 10³). The scores are the true distances as closely.
    #[test]
    fn data_far_from_the_origin_is_assigned_by_its_true_distances() {
        let dim = 4;
        let unit = |i: usize| ((i.wrapping_mul(2_654_435_761) >> 7) % 1000) as f32 / 1000.0;
        for offset in [1e3f32, 1e4, 1e5, 1e6] {
            let points: Vec<f32> = (0..2000 * dim).map(|i| offset + unit(i)).collect();
            let centroids: Vec<f32> = (0..16 * dim).map(|i| offset + unit(i + 99_991)).collect();
            let want = naive(&points, &centroids, dim, Metric::L2);
            let probe = crate::PackedCentroids::new(&centroids, dim, Metric::L2).unwrap();
            let (mut top, mut keys) = (vec![0u32; 2000], vec![0f32; 2000]);
            probe.search(&points, 1, &mut top, &mut keys).unwrap();
            let distance = |i: usize, j: u32| {
                naive(&points[i * dim..][..dim], &centroids[j as usize * dim..][..dim], dim, Metric::L2)[0].1
            };
            for level in crate::SimdLevel::available() {
                let kern = Kernels::for_level(level).unwrap();
                let (mut labels, mut scores) = (vec![0u32; 2000], vec![0f32; 2000]);
                nearest_centroids_with(&kern, &points, &centroids, dim, Metric::L2, &mut labels, &mut scores).unwrap();
                for (i, &(_, best)) in want.iter().enumerate() {
                    for (what, label, score) in [("assigned", labels[i], scores[i]), ("probed", top[i], keys[i])] {
                        let got = distance(i, label);
                        assert!(
                            got <= best + 0.01,
                            "{what} at offset {offset}, {level:?}, point {i}: {got} over {best}"
                        );
                        assert!(
                            (f64::from(score) - got).abs() <= 0.01,
                            "{what} at offset {offset}: score {score}, distance {got}"
                        );
                    }
                }
            }
        }
    }

    fn run(points: &[f32], centroids: &[f32], dim: usize, metric: Metric) -> (Vec<u32>, Vec<f32>) {
        let n = points.len() / dim;
        let (mut labels, mut scores) = (vec![7; n], vec![-1.0; n]);
        nearest_centroids(points, centroids, dim, metric, &mut labels, &mut scores).unwrap();
        (labels, scores)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Small integers: every score is exact in f32, so labels (ties to the smaller id
        /// included) and scores must equal the naive search exactly, at every SIMD level.
        #[test]
        fn integer_data_matches_naive_exactly(
            dim in 1usize..40, np in 1usize..70, nc in 1usize..50, seed in any::<u64>(), ip in any::<bool>(),
        ) {
            let metric = if ip { Metric::InnerProduct } else { Metric::L2 };
            let mut s = seed | 1;
            let mut next = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 33) % 7) as f32 - 3.0 };
            let points: Vec<f32> = (0..np * dim).map(|_| next()).collect();
            let centroids: Vec<f32> = (0..nc * dim).map(|_| next()).collect();
            let want = naive(&points, &centroids, dim, metric);
            for level in crate::SimdLevel::available() {
                let kern = Kernels::for_level(level).unwrap();
                let (mut labels, mut scores) = (vec![7; np], vec![-1.0; np]);
                nearest_centroids_with(&kern, &points, &centroids, dim, metric, &mut labels, &mut scores).unwrap();
                for (i, (l, s)) in labels.iter().zip(&scores).enumerate() {
                    prop_assert_eq!(*l, want[i].0, "level {} point {}", level, i);
                    prop_assert_eq!(f64::from(*s), want[i].1);
                }
            }
        }

        /// Random floats: the chosen centroid is the best up to rounding, and its score is close
        /// to the exact one.
        #[test]
        fn float_data_is_nearest_up_to_rounding(
            dim in 1usize..70, np in 1usize..60, nc in 1usize..80, seed in any::<u64>(),
        ) {
            let mut s = seed | 1;
            let mut next = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5 };
            let points: Vec<f32> = (0..np * dim).map(|_| next()).collect();
            let centroids: Vec<f32> = (0..nc * dim).map(|_| next()).collect();
            let want = naive(&points, &centroids, dim, Metric::L2);
            let (labels, scores) = run(&points, &centroids, dim, Metric::L2);
            for (i, x) in points.chunks(dim).enumerate() {
                let c = &centroids[labels[i] as usize * dim..][..dim];
                let exact: f64 = x.iter().zip(c).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum();
                let tol = 1e-5 * (dim as f64);
                prop_assert!(exact <= want[i].1 + tol, "point {}: chose {} at {}, best {} at {}", i, labels[i], exact, want[i].0, want[i].1);
                prop_assert!((f64::from(scores[i]) - exact).abs() <= tol);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The small-dimension kernel against the blocked one, at every level that has it:
        /// the same labels and bit-identical scores (both compute each key with the same
        /// operations in the same order), on random floats with repeated values (ties), for
        /// every metric, with a skipped (NaN) centroid, over several panels and blocks of
        /// centroids (`blocks`: 270,000 centroids at `dim = 1` span two 256 KiB blocks).
        #[test]
        fn small_dimension_kernel_equals_the_blocked_one(
            dim in 1usize..=SMALL_DIM, np in 1usize..80, nc in 1usize..300, seed in any::<u64>(),
            metric in prop::sample::select(vec![Metric::L2, Metric::InnerProduct, Metric::Cosine]),
            nan_at in prop::option::of(0usize..300), blocks in any::<bool>(),
        ) {
            let nc = if blocks && dim == 1 { 270_000 } else { nc };
            let mut s = seed | 1;
            let mut next = move || {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                // Every fourth value from a small set, so some keys tie exactly.
                if s % 4 == 0 { ((s >> 40) % 3 + 1) as f32 } else { (s >> 40) as f32 / (1u64 << 22) as f32 - 2.0 }
            };
            let points: Vec<f32> = (0..np * dim).map(|_| next()).collect();
            let mut centroids: Vec<f32> = (0..nc * dim).map(|_| next()).collect();
            if let Some(at) = nan_at.filter(|&at| at < nc && nc > 1) {
                centroids[at * dim] = f32::NAN;
            }
            let mut checked = 0;
            for level in crate::SimdLevel::available() {
                let kern = Kernels::for_level(level).unwrap();
                if kern.small.is_none() {
                    continue;
                }
                checked += 1;
                let packed = PackedPoints::new_with(&kern, &points, dim, metric).unwrap();
                let (mut l1, mut s1) = (vec![7; np], vec![-1.0; np]);
                let (mut l2, mut s2) = (vec![7; np], vec![-1.0; np]);
                packed.nearest_impl(&centroids, &mut l1, &mut s1, true).unwrap();
                packed.nearest_impl(&centroids, &mut l2, &mut s2, false).unwrap();
                for i in 0..np {
                    prop_assert_eq!(l1[i], l2[i], "level {} point {}", level, i);
                    prop_assert_eq!(s1[i].to_bits(), s2[i].to_bits(), "level {} point {}", level, i);
                }
                prop_assert!(l1.iter().all(|&l| (l as usize) < nc && (nc == 1 || nan_at != Some(l as usize))));
            }
            if checked == 0 {
                eprintln!("skipping: no level of this CPU has a small-dimension kernel");
            }
        }
    }

    #[test]
    fn packed_points_are_reused_across_centroid_sets_spanning_several_blocks() {
        // dim 600: a centroid block holds 96 rows (AVX-512) or 96 (AVX2), so 300 centroids
        // span several blocks; 1500 points span several parallel chunks.
        let dim = 600;
        let mut s = 12345u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 33) % 5) as f32
        };
        let points: Vec<f32> = (0..1500 * dim).map(|_| next()).collect();
        for level in crate::SimdLevel::available() {
            let kern = Kernels::for_level(level).unwrap();
            let packed = PackedPoints::new_with(&kern, &points, dim, Metric::L2).unwrap();
            assert_eq!((packed.len(), packed.dim(), packed.metric()), (1500, dim, Metric::L2));
            for round in 0..2 {
                let centroids: Vec<f32> = (0..(300 + round * 7) * dim).map(|_| next()).collect();
                let (mut labels, mut scores) = (vec![0; 1500], vec![0.0; 1500]);
                packed.nearest(&centroids, &mut labels, &mut scores).unwrap();
                let want = naive(&points, &centroids, dim, Metric::L2);
                for (i, (l, sc)) in labels.iter().zip(&scores).enumerate() {
                    assert_eq!((*l, f64::from(*sc)), want[i], "level {level} round {round} point {i}");
                }
            }
        }
    }

    #[test]
    fn u8_points_equal_their_f32_copy_and_blocks_join_up() {
        let dim = 5;
        let n = POINT_BLOCK + 37; // two blocks
        let points: Vec<u8> = (0..n * dim).map(|i| ((i * 7919) % 251) as u8).collect();
        let as_f32: Vec<f32> = points.iter().map(|&v| f32::from(v)).collect();
        let centroids: Vec<f32> = (0..9 * dim).map(|i| ((i * 31) % 200) as f32).collect();
        let (mut labels, mut scores) = (vec![0; n], vec![0.0; n]);
        nearest_centroids(&points, &centroids, dim, Metric::L2, &mut labels, &mut scores).unwrap();
        let want = naive(&as_f32, &centroids, dim, Metric::L2);
        assert!(labels.iter().zip(&want).all(|(l, w)| *l == w.0));
        assert_eq!((labels, scores), run(&as_f32, &centroids, dim, Metric::L2));
    }

    #[test]
    fn cosine_normalizes_points_and_centroids() {
        let centroids = [1.0f32, 0.0, 0.0, 3.0];
        let (labels, scores) = run(&[5.0, 1.0, 0.5, 2.0], &centroids, 2, Metric::Cosine);
        assert_eq!(labels, [0, 1]);
        assert!((scores[0] - 5.0 / 26f32.sqrt()).abs() < 1e-6);
        assert!((scores[1] - 2.0 / 4.25f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn bad_input_is_an_error_and_non_finite_centroids_are_skipped() {
        let (mut l, mut s) = (vec![0; 2], vec![0.0; 2]);
        let c = [0.0f32, 0.0];
        assert_eq!(
            nearest_centroids(&[1.0f32, 2.0, 3.0, f32::NAN], &c, 2, Metric::L2, &mut l, &mut s),
            Err(Error::NonFinite { what: "points", row: 1, component: 1 })
        );
        assert_eq!(
            nearest_centroids(&[1.0f32, 2.0, 0.0, 0.0], &c, 2, Metric::Cosine, &mut l, &mut s),
            Err(Error::ZeroNorm { what: "points", row: 1 })
        );
        assert!(matches!(
            nearest_centroids(&[1.0f32, 2.0], &c, 2, Metric::L2, &mut l, &mut s),
            Err(Error::OutputLength { what: "labels", .. })
        ));
        assert!(matches!(
            nearest_centroids(&[1.0f32, 2.0, 3.0], &c, 2, Metric::L2, &mut l, &mut s),
            Err(Error::RaggedBuffer { what: "points", .. })
        ));
        let (labels, scores) = run(&[1.0, 1.0, 9.0, 9.0], &[f32::NAN, 0.0, 10.0, 10.0], 2, Metric::L2);
        assert_eq!(labels, [1, 1]);
        assert_eq!(scores, [162.0, 2.0]);
        let (labels, scores) = run(&[1.0, 1.0], &[f32::INFINITY, 0.0], 2, Metric::L2);
        assert_eq!((labels[0], scores[0]), (u32::MAX, Metric::L2.worst_score()));
        let (labels, _) = run(&[1.0, 1.0], &[], 2, Metric::InnerProduct);
        assert_eq!(labels, [u32::MAX]);
    }
}
