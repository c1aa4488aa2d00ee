//! The one validation and normalization path for vectors entering vq.
//!
//! Every crate that takes vectors from a user (queries, training samples, vectors to encode or
//! insert) passes them through [`prepare_rows`] or [`prepare_row_into`], so that a given input
//! is accepted or refused the same way everywhere and cosine rows are normalized with one
//! numerics (f64 accumulation, one rounding to f32 per component).

use std::borrow::Cow;

use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Error, Result};
use crate::metric::Metric;

/// The largest squared Euclidean norm (computed in f64) a row may have: 2¹⁰⁰ ≈ 1.27e30, so a
/// norm of at most 2⁵⁰ ≈ 1.13e15.
///
/// Why this bound: for two rows within it, `‖x − y‖² ≤ (‖x‖ + ‖y‖)² ≤ 4·2¹⁰⁰ = 2¹⁰²` and
/// `|x·y| ≤ ‖x‖‖y‖ ≤ 2¹⁰⁰`, and every partial sum of the kernels (including the blocked
/// `‖x‖² − 2x·y + ‖y‖²` form, whose terms reach `2·2¹⁰⁰`) stays below `2¹⁰³`, far from
/// `f32::MAX ≈ 2¹²⁸`. The remaining 2²⁵ of headroom covers vectors built from accepted rows
/// that are not rows themselves: a scalar quantizer's reconstruction takes each component from
/// a per-dimension range, so its squared norm can reach `dim · 2¹⁰⁰` (still finite against an
/// accepted row up to dim ≈ 2²⁵), a PQ reconstruction concatenates `m` sub-centroids, and
/// k-means sums many rows. A tighter bound such as `f32::MAX / 4` would keep row-to-row
/// distances finite but let those derived vectors overflow. Real data sits many orders of
/// magnitude below this (unit vectors, pixel values, embeddings).
pub const MAX_SQUARED_NORM: f64 = 1_267_650_600_228_229_401_496_703_205_376.0; // 2^100

/// A row whose squared norm is within this of 1 counts as already unit length and is left
/// as given: rows normalized here have `|‖x‖² − 1| ≤ ~2⁻²³` (one f32 rounding per component),
/// so normalizing is idempotent and pre-normalized data is borrowed, not copied. The cosine
/// this can change is below 5e-7 relative, a few f32 ulps.
const UNIT_TOLERANCE: f64 = 1.0 / (1u64 << 20) as f64;

/// Below this many values the checks run on the calling thread: a single query must not pay
/// for a rayon round trip.
const PARALLEL_MIN: usize = 1 << 16;

/// Rows that passed [`prepare_rows`]: whole rows of finite values, each with a squared norm
/// within [`MAX_SQUARED_NORM`] and, for [`Metric::Cosine`], of unit length.
///
/// Borrows the caller's buffer when validation changed nothing (every metric but cosine, and
/// cosine rows that were already unit length); owns a normalized copy otherwise. Only
/// [`prepare_rows`] makes one, so holding a `Rows` proves the checks ran: code that takes
/// `Rows` does not re-check.
///
/// `len()` counts rows, not values ([`Rows::as_slice`] gives the values). `Rows` deliberately
/// does not deref to `[f32]`, where `len()` would silently mean the value count.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows<'a> {
    data: Cow<'a, [f32]>,
    dim: usize,
    metric: Metric,
}

impl<'a> Rows<'a> {
    /// All values, row-major (`len() × dim()`).
    #[inline]
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The width of a row (at least 1).
    #[inline]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric the rows were prepared for (cosine rows are unit length).
    #[inline]
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The number of rows.
    #[inline]
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Whether there are no rows.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row `i`.
    ///
    /// # Panics
    /// If `i >= len()`, like slice indexing; [`Rows::get`] is the checked form.
    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Row `i`, or `None` if `i >= len()`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&[f32]> {
        self.data.get(i.checked_mul(self.dim)?..(i.checked_add(1)?).checked_mul(self.dim)?)
    }

    /// The rows in order.
    #[inline]
    pub fn iter(&self) -> std::slice::ChunksExact<'_, f32> {
        self.data.chunks_exact(self.dim)
    }

    /// The rows in chunks of up to `rows` rows (the last may be shorter), each row-major.
    ///
    /// # Panics
    /// If `rows` is 0, like [`slice::chunks`].
    #[inline]
    pub fn chunks(&self, rows: usize) -> std::slice::Chunks<'_, f32> {
        // Saturating: a chunk of more rows than exist is simply all of them.
        self.data.chunks(rows.saturating_mul(self.dim))
    }

    /// Whether the values are the caller's buffer (nothing had to change).
    #[inline]
    pub fn is_borrowed(&self) -> bool {
        matches!(self.data, Cow::Borrowed(_))
    }

    /// The same rows, owning their values (copies only if borrowed).
    pub fn into_owned(self) -> Rows<'static> {
        Rows { data: Cow::Owned(self.data.into_owned()), dim: self.dim, metric: self.metric }
    }

    /// The values, borrowed or owned as they are.
    pub fn into_cow(self) -> Cow<'a, [f32]> {
        self.data
    }
}

impl AsRef<[f32]> for Rows<'_> {
    fn as_ref(&self) -> &[f32] {
        &self.data
    }
}

impl<'r> IntoIterator for &'r Rows<'_> {
    type Item = &'r [f32];
    type IntoIter = std::slice::ChunksExact<'r, f32>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Validates `data` (row-major, `dim` wide) for use with `metric` and, for
/// [`Metric::Cosine`], scales every row to unit length.
///
/// Checks, in this order, each error naming `what` (`"queries"`, `"vectors"`, …):
/// - `dim ≥ 1` ([`Error::ZeroDimension`]) and a whole number of rows ([`Error::RaggedBuffer`]);
/// - every value finite ([`Error::NonFinite`] with the first bad row and component);
/// - for cosine, a nonzero norm ([`Error::ZeroNorm`]); for the other metrics, a squared norm
///   (computed in f64) of at most [`MAX_SQUARED_NORM`] ([`Error::NormOverflow`]), so that no
///   squared distance or inner product between accepted rows overflows f32. Cosine rows are
///   normalized, so any finite nonzero row is accepted.
///
/// Cosine rows are scaled in f64 (sum of squares, then each component times `1/‖x‖`, rounded
/// once); rows already unit length (within 2⁻²⁰ in squared norm) are kept as they are, so a
/// second pass changes nothing. Nothing is copied unless a row changes. An empty `data` is
/// accepted (zero rows). Parallel on the current rayon pool for large inputs.
///
/// ```
/// use vq_distance::{Error, Metric, prepare_rows};
/// let rows = prepare_rows("vectors", &[3.0, 4.0, 0.0, 2.0], 2, Metric::Cosine)?;
/// assert_eq!(rows.len(), 2);
/// assert_eq!(rows.row(0), &[0.6, 0.8]);
/// assert_eq!(rows.row(1), &[0.0, 1.0]);
/// assert!(prepare_rows("vectors", &[1.0, 2.0], 2, Metric::L2)?.is_borrowed());
/// assert_eq!(
///     prepare_rows("queries", &[1.0, f32::NAN], 2, Metric::L2).unwrap_err(),
///     Error::NonFinite { what: "queries", row: 0, component: 1 },
/// );
/// # Ok::<(), vq_distance::Error>(())
/// ```
pub fn prepare_rows<'a>(what: &'static str, data: &'a [f32], dim: usize, metric: Metric) -> Result<Rows<'a>> {
    check_rows_scored(what, data, dim, metric, metric != Metric::Cosine)?;
    let cosine = metric == Metric::Cosine;
    let needs_scaling = |row: &[f32]| cosine && (squared_norm(row) - 1.0).abs() > UNIT_TOLERANCE;
    let any_change = if data.len() < PARALLEL_MIN {
        data.chunks_exact(dim).any(needs_scaling)
    } else {
        data.par_chunks_exact(dim).any(needs_scaling)
    };
    if !any_change {
        return Ok(Rows { data: Cow::Borrowed(data), dim, metric });
    }
    let mut out = data.to_vec();
    if out.len() < PARALLEL_MIN {
        out.chunks_exact_mut(dim).for_each(scale_to_unit);
    } else {
        out.par_chunks_exact_mut(dim).for_each(scale_to_unit);
    }
    Ok(Rows { data: Cow::Owned(out), dim, metric })
}

/// [`prepare_rows`] for one vector, reusing `buf` for a normalized copy: the form for a hot
/// path that must not allocate per call (a graph search, one insert).
///
/// Returns `row` itself when nothing changes (every metric but cosine, or a row already unit
/// length), else `buf`'s contents. The checks are [`prepare_rows`]'s, with `row.len() == dim`
/// ([`Error::Dimension`]) in place of the whole-rows check; errors name `what` and row 0.
///
/// ```
/// use vq_distance::{Metric, prepare_row_into};
/// let mut buf = Vec::new();
/// assert_eq!(prepare_row_into("query", &[0.0, 2.0], 2, Metric::Cosine, &mut buf)?, &[0.0, 1.0]);
/// assert!(prepare_row_into("query", &[0.0, 2.0, 1.0], 2, Metric::Cosine, &mut buf).is_err());
/// # Ok::<(), vq_distance::Error>(())
/// ```
pub fn prepare_row_into<'a>(
    what: &'static str,
    row: &'a [f32],
    dim: usize,
    metric: Metric,
    buf: &'a mut Vec<f32>,
) -> Result<&'a [f32]> {
    if dim == 0 {
        return Err(Error::ZeroDimension);
    }
    if row.len() != dim {
        return Err(Error::Dimension { what, got: row.len(), expected: dim });
    }
    let sq = check_row(what, 0, row, metric, metric != Metric::Cosine)?;
    if metric != Metric::Cosine || (sq - 1.0).abs() <= UNIT_TOLERANCE {
        return Ok(row);
    }
    buf.clear();
    buf.extend_from_slice(row);
    scale_to_unit(buf);
    Ok(buf)
}

/// Runs [`prepare_rows`]'s checks on `data` of any element type without converting or copying
/// it, and returns the number of rows.
///
/// For code that normalizes later, row by row (with [`prepare_row_into`] into a per-worker
/// buffer) but must refuse a whole batch before changing anything, and for integer or
/// half-precision input that is converted elsewhere.
pub fn validate_rows<T: Element>(what: &'static str, data: &[T], dim: usize, metric: Metric) -> Result<usize> {
    check_rows_scored(what, data, dim, metric, metric != Metric::Cosine)
}

/// Scales every row of `data` (row-major, `dim` wide) to unit length in place, with the
/// numerics of [`prepare_rows`]; a zero row stays zero (like Faiss' `normalize_L2`).
///
/// Errors: [`Error::ZeroDimension`], [`Error::RaggedBuffer`], and [`Error::NonFinite`] (then
/// nothing is changed).
pub fn normalize_l2(data: &mut [f32], dim: usize) -> Result<()> {
    check_shape("data", data, dim)?;
    first_error(data, dim, |i, r| match squared_norm(r) {
        s if s.is_finite() => Ok(()),
        _ => Err(non_finite("data", i, r)),
    })?;
    if data.len() < PARALLEL_MIN {
        data.chunks_exact_mut(dim).for_each(scale_to_unit);
    } else {
        data.par_chunks_exact_mut(dim).for_each(scale_to_unit);
    }
    Ok(())
}

/// Whole rows of `dim ≥ 1` values; returns the row count.
pub(crate) fn check_shape<T>(what: &'static str, data: &[T], dim: usize) -> Result<usize> {
    if dim == 0 {
        return Err(Error::ZeroDimension);
    }
    if !data.len().is_multiple_of(dim) {
        return Err(Error::RaggedBuffer { what, len: data.len(), dim });
    }
    Ok(data.len() / dim)
}

/// The shape and value checks of [`prepare_rows`]. `bounded`: whether the norm bound applies,
/// i.e. whether the rows are scored as given. Callers that score cosine rows unnormalized
/// (`knn_exact`'s per-pair cosine kernels) pass `true` for cosine too.
pub(crate) fn check_rows_scored<T: Element>(
    what: &'static str,
    data: &[T],
    dim: usize,
    metric: Metric,
    bounded: bool,
) -> Result<usize> {
    let n = check_shape(what, data, dim)?;
    first_error(data, dim, |i, r| check_row(what, i, r, metric, bounded).map(drop))?;
    Ok(n)
}

/// The first row (lowest index) for which `check` fails, on the calling thread for small
/// inputs and in parallel for large ones.
fn first_error<T: Sync>(data: &[T], dim: usize, check: impl Fn(usize, &[T]) -> Result<()> + Sync) -> Result<()> {
    if data.len() < PARALLEL_MIN {
        return data.chunks_exact(dim).enumerate().try_for_each(|(i, r)| check(i, r));
    }
    data.par_chunks_exact(dim).enumerate().map(|(i, r)| check(i, r)).find_first(Result::is_err).unwrap_or(Ok(()))
}

/// Checks one row and returns its squared norm (f64).
#[inline]
fn check_row<T: Element>(what: &'static str, i: usize, row: &[T], metric: Metric, bounded: bool) -> Result<f64> {
    let sq = squared_norm(row);
    if !sq.is_finite() {
        return Err(non_finite(what, i, row));
    }
    if metric == Metric::Cosine && sq == 0.0 {
        return Err(Error::ZeroNorm { what, row: i });
    }
    if bounded && sq > MAX_SQUARED_NORM {
        return Err(Error::NormOverflow { what, row: i, squared_norm: sq });
    }
    Ok(sq)
}

#[cold]
fn non_finite<T: Element>(what: &'static str, row: usize, values: &[T]) -> Error {
    // Only called when the squared norm is not finite, which (see `squared_norm`) means some
    // value is NaN or infinite; 0 is a fallback that cannot be reached.
    let component = values.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Error::NonFinite { what, row, component }
}

/// `Σ xᵢ²` in f64. Never overflows for finite input (`f32::MAX² ≈ 1.2e77`, and no slice holds
/// 1e231 values), and underflows to 0 only for a row that is exactly zero (the smallest f32
/// subnormal squared, 2⁻²⁹⁸, is a normal f64), so it is not finite exactly when a value is NaN
/// or infinite. Four independent sums, so each add need not wait for the previous one.
#[inline]
pub(crate) fn squared_norm<T: Element>(row: &[T]) -> f64 {
    let mut acc = [0f64; 4];
    let mut chunks = row.chunks_exact(4);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            let v = f64::from(v.to_f32());
            *a += v * v;
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for v in chunks.remainder() {
        let v = f64::from(v.to_f32());
        sum += v * v;
    }
    sum
}

/// Scales a finite row to unit length in f64, rounding each component once; a zero row and a
/// row already unit length (see [`UNIT_TOLERANCE`]) are left as they are.
#[inline]
pub(crate) fn scale_to_unit(row: &mut [f32]) {
    let sq = squared_norm(row);
    if sq == 0.0 || (sq - 1.0).abs() <= UNIT_TOLERANCE {
        return;
    }
    let inv = 1.0 / sq.sqrt();
    row.iter_mut().for_each(|v| *v = (f64::from(*v) * inv) as f32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::kernels;
    use proptest::prelude::*;

    #[test]
    fn bound_is_two_to_the_hundred() {
        assert_eq!(MAX_SQUARED_NORM, 2f64.powi(100));
        // The headroom argument of the doc comment: the worst row-to-row distance is far from
        // overflowing f32.
        assert!((4.0 * MAX_SQUARED_NORM * (1u64 << 25) as f64) < f64::from(f32::MAX));
    }

    #[test]
    fn shape_errors() {
        assert_eq!(prepare_rows("v", &[1.0; 4], 0, Metric::L2).unwrap_err(), Error::ZeroDimension);
        assert_eq!(
            prepare_rows("v", &[1.0; 5], 2, Metric::L2).unwrap_err(),
            Error::RaggedBuffer { what: "v", len: 5, dim: 2 }
        );
        let mut buf = Vec::new();
        assert_eq!(
            prepare_row_into("query", &[1.0; 3], 2, Metric::L2, &mut buf).unwrap_err(),
            Error::Dimension { what: "query", got: 3, expected: 2 }
        );
        assert_eq!(prepare_row_into("query", &[], 0, Metric::L2, &mut buf).unwrap_err(), Error::ZeroDimension);
        let rows = prepare_rows("v", &[], 3, Metric::Cosine).unwrap();
        assert!(rows.is_empty() && rows.is_borrowed() && rows.iter().next().is_none());
    }

    #[test]
    fn value_errors_name_the_first_bad_row_and_component() {
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let data = [1.0, 2.0, 3.0, f32::NAN, f32::INFINITY, 0.0];
            assert_eq!(
                prepare_rows("base", &data, 2, metric).unwrap_err(),
                Error::NonFinite { what: "base", row: 1, component: 1 },
                "{metric}"
            );
            assert_eq!(
                validate_rows("base", &data, 2, metric).unwrap_err(),
                Error::NonFinite { what: "base", row: 1, component: 1 }
            );
        }
        assert_eq!(
            prepare_rows("q", &[1.0, 0.0, 0.0, 0.0], 2, Metric::Cosine).unwrap_err(),
            Error::ZeroNorm { what: "q", row: 1 }
        );
        // A zero row is fine for the metrics that do not normalize.
        assert!(prepare_rows("q", &[0.0; 4], 2, Metric::InnerProduct).is_ok());
        // 1e19 · √2 has a squared norm of 2e38: finite in f32, but distances would overflow.
        let huge = [1.0, 1.0, 1e19, -1e19];
        for metric in [Metric::L2, Metric::InnerProduct] {
            assert!(matches!(
                prepare_rows("v", &huge, 2, metric),
                Err(Error::NormOverflow { what: "v", row: 1, squared_norm }) if squared_norm > 1.9e38
            ));
        }
        // Cosine normalizes, so a huge row is fine (and an f32 norm would have overflowed).
        let rows = prepare_rows("v", &huge, 2, Metric::Cosine).unwrap();
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert_eq!(rows.row(1), &[s, -s]);
        // Just inside and just outside the bound.
        let edge = (MAX_SQUARED_NORM.sqrt()) as f32; // 2^50, exact
        assert!(prepare_rows("v", &[edge, 0.0], 2, Metric::L2).is_ok());
        assert!(prepare_rows("v", &[edge, edge / 1024.0 / 1024.0], 2, Metric::L2).is_err()); // 2^100 + 2^60
        // The smallest subnormal is not zero.
        let subnormal = [f32::from_bits(1), 0.0];
        let tiny = prepare_rows("v", &subnormal, 2, Metric::Cosine).unwrap();
        assert_eq!(tiny.row(0), &[1.0, 0.0]);
    }

    #[test]
    fn borrowed_when_nothing_changes() {
        let data = [3.0f32, 4.0, 1.0, 0.0];
        for metric in [Metric::L2, Metric::InnerProduct] {
            let rows = prepare_rows("v", &data, 2, metric).unwrap();
            assert!(rows.is_borrowed());
            assert_eq!(rows.as_slice().as_ptr(), data.as_ptr());
        }
        let cos = prepare_rows("v", &data, 2, Metric::Cosine).unwrap();
        assert!(!cos.is_borrowed());
        assert_eq!(cos.as_slice(), &[0.6, 0.8, 1.0, 0.0]);
        // Normalized rows come back borrowed the second time.
        let again = prepare_rows("v", cos.as_slice(), 2, Metric::Cosine).unwrap();
        assert!(again.is_borrowed());
        let mut buf = vec![9.0; 7];
        let unit = [0.0f32, 1.0];
        let r = prepare_row_into("q", &unit, 2, Metric::Cosine, &mut buf).unwrap();
        assert_eq!(r.as_ptr(), unit.as_ptr());
    }

    #[test]
    fn accessors() {
        let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let rows = prepare_rows("v", &data, 2, Metric::L2).unwrap();
        assert_eq!((rows.len(), rows.dim(), rows.metric()), (3, 2, Metric::L2));
        assert_eq!(rows.row(2), &[5.0, 6.0]);
        assert_eq!(rows.get(2), Some(&[5.0, 6.0][..]));
        assert_eq!(rows.get(3), None);
        assert_eq!(rows.get(usize::MAX), None);
        assert_eq!(rows.iter().count(), 3);
        assert_eq!((&rows).into_iter().nth(1), Some(&[3.0, 4.0][..]));
        assert_eq!(rows.chunks(2).map(<[f32]>::len).collect::<Vec<_>>(), [4, 2]);
        let owned = rows.clone().into_owned();
        assert!(!owned.is_borrowed());
        assert_eq!(owned, rows);
        assert_eq!(rows.into_cow().as_ref(), &data);
    }

    #[test]
    fn normalize_l2_keeps_zero_rows_and_refuses_non_finite() {
        let mut data = [3.0f32, 4.0, 0.0, 0.0];
        normalize_l2(&mut data, 2).unwrap();
        assert_eq!(data, [0.6, 0.8, 0.0, 0.0]);
        let mut bad = [1.0f32, 2.0, 3.0, f32::NAN];
        assert_eq!(normalize_l2(&mut bad, 2).unwrap_err(), Error::NonFinite { what: "data", row: 1, component: 1 });
        assert_eq!(bad[..2], [1.0, 2.0], "nothing changed");
    }

    #[test]
    fn large_inputs_take_the_parallel_path_with_the_same_answer() {
        let dim = 8;
        let n = PARALLEL_MIN / dim * 3;
        let mut data: Vec<f32> = (0..n * dim).map(|i| ((i * 7919) % 1000) as f32 - 500.0).collect();
        let rows = prepare_rows("v", &data, dim, Metric::Cosine).unwrap();
        for (i, r) in rows.iter().enumerate() {
            let mut one = Vec::new();
            assert_eq!(prepare_row_into("v", &data[i * dim..][..dim], dim, Metric::Cosine, &mut one).unwrap(), r);
        }
        data[(n - 2) * dim + 3] = f32::NEG_INFINITY;
        data[(n - 1) * dim] = f32::NAN;
        assert_eq!(
            prepare_rows("v", &data, dim, Metric::L2).unwrap_err(),
            Error::NonFinite { what: "v", row: n - 2, component: 3 }
        );
    }

    /// Finite f32 values of any magnitude, biased toward the edges of the range.
    fn value() -> impl Strategy<Value = f32> {
        prop_oneof![
            -10.0f32..10.0,
            any::<f32>().prop_filter("finite", |v| v.is_finite()),
            (-1e20f32..1e20).prop_map(|v| v),
            Just(0.0f32),
            Just(f32::MAX),
            Just(-f32::MAX),
            Just(f32::from_bits(1)),
        ]
    }

    fn metric() -> impl Strategy<Value = Metric> {
        prop_oneof![Just(Metric::L2), Just(Metric::InnerProduct), Just(Metric::Cosine)]
    }

    proptest! {
        #[test]
        fn normalized_rows_have_unit_norm_and_are_fixed_points(
            dim in 1usize..40,
            values in proptest::collection::vec(value(), 1..200),
        ) {
            let n = values.len() / dim;
            let data = &values[..n * dim];
            match prepare_rows("v", data, dim, Metric::Cosine) {
                Ok(rows) => {
                    prop_assert_eq!(rows.len(), n);
                    for r in rows.iter() {
                        prop_assert!((squared_norm(r) - 1.0).abs() <= 2.0 * f64::from(f32::EPSILON), "{:?}", r);
                    }
                    let again = prepare_rows("v", rows.as_slice(), dim, Metric::Cosine).unwrap();
                    prop_assert!(again.is_borrowed());
                }
                Err(e) => prop_assert!(matches!(e, Error::ZeroNorm { .. }), "{e}"),
            }
        }

        #[test]
        fn accepted_rows_never_give_non_finite_scores(
            dim in 1usize..24,
            values in proptest::collection::vec(value(), 2..120),
            metric in metric(),
        ) {
            let n = values.len() / dim;
            let data = &values[..n * dim];
            // Keep the rows that pass on their own, then score every pair of them.
            let mut kept = Vec::new();
            for r in data.chunks_exact(dim) {
                if let Ok(p) = prepare_rows("v", r, dim, metric) {
                    kept.extend_from_slice(p.as_slice());
                }
            }
            let rows = prepare_rows("v", &kept, dim, metric).unwrap();
            let kern = kernels();
            for a in rows.iter() {
                for b in rows.iter() {
                    for s in [kern.l2_sq(a, b).unwrap(), kern.dot(a, b).unwrap(), kern.cosine(a, b).unwrap()] {
                        prop_assert!(s.is_finite(), "{:?} {:?}", a, b);
                    }
                }
            }
            if !rows.is_empty() {
                let hits = crate::knn_exact(rows.as_slice(), rows.as_slice(), dim, 3, metric).unwrap();
                prop_assert!(hits.iter().all(|(ids, s)| ids.len() == 3.min(rows.len()) && s.iter().all(|v| v.is_finite())));
            }
        }
    }
}
