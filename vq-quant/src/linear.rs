//! The linear algebra OPQ's rotation and the PCA projection share: applying a row-major
//! matrix with orthonormal rows to many vectors and back, checking a saved one, drawing a
//! random rotation, and sampling training rows.

use faer::Mat;
use vq_distance::PackedMatrix;

use crate::sections::corrupt;
use crate::{Error, Result};

/// The largest input dimension of a dense `d × d` map (OPQ's rotation, PCA's covariance,
/// RaBitQ's rotation): 128 MiB of f64 at 4,096, and an eigendecomposition or SVD of minutes;
/// above it a dimension a caller can pass (vq-io allows 2^24) would abort on allocation.
pub const LINEAR_MAX_DIM: usize = 4096;

/// `Ok` when `dim` is 1 to [`LINEAR_MAX_DIM`]; otherwise an error naming `what` (the map that
/// refuses it).
pub(crate) fn check_linear_dim(dim: usize, what: &str) -> Result<()> {
    if dim == 0 || dim > LINEAR_MAX_DIM {
        return Err(Error::Parameter {
            name: "dim",
            what: format!("{dim} is outside 1..={LINEAR_MAX_DIM}: {what} is a dense d × d matrix"),
        });
    }
    Ok(())
}

/// `y = M x` for every whole row of `x` (`d_in` values each), where `m` is row-major with
/// `d_in` columns (`d_out = m.len() / d_in` rows): `d_out` values per output row. Parallel over
/// rows; each output is [`PackedMatrix`]'s multiply-add chain, so it does not depend on the
/// rows beside it. For a map applied more than once, [`DenseMap`] packs `m` once.
pub(crate) fn project_rows(m: &[f32], d_in: usize, x: &[f32]) -> Vec<f32> {
    DenseMap::pack(m, d_in).map_or_else(Vec::new, |p| apply_whole_rows(&p, x))
}

/// `p` applied to the whole rows of `x` (a ragged tail is left out, as `chunks_exact` would).
fn apply_whole_rows(p: &PackedMatrix<'static>, x: &[f32]) -> Vec<f32> {
    // Whole rows in: the only error `apply_to_vec` has (ragged rows) cannot occur.
    p.apply_to_vec(&x[..x.len() / p.cols() * p.cols()]).expect("whole rows")
}

/// A dense map (OPQ's rotation or projection, PCA's projection, RaBitQ's rotation) kept
/// row-major (as saved, and for `Mᵀ y`) and packed once for applying it to rows: without the
/// packed copy a single query paid for packing `d × d` values, and with a per-output dot
/// product instead a batch paid a horizontal sum per output (2.2–2.5× the time at d = 128 and
/// 384; `cargo bench -p vq-distance --bench matrix`). Dereferences to the row-major values;
/// empty until trained.
#[derive(Clone, Default)]
pub(crate) struct DenseMap {
    m: Vec<f32>,
    packed: Option<PackedMatrix<'static>>,
}

impl DenseMap {
    /// `m`, row-major with `d_in` columns (callers have checked the shape: `d_in ≥ 1`, whole
    /// rows).
    pub(crate) fn new(m: Vec<f32>, d_in: usize) -> DenseMap {
        let packed = Self::pack(&m, d_in);
        DenseMap { m, packed }
    }

    /// The packed copy, `None` for an empty matrix.
    fn pack(m: &[f32], d_in: usize) -> Option<PackedMatrix<'static>> {
        if m.is_empty() || d_in == 0 {
            return None;
        }
        // Whole rows: the only shape `PackedMatrix` refuses is ragged (or zero columns).
        Some(PackedMatrix::new(&m[..m.len() / d_in * d_in], d_in).expect("whole rows"))
    }

    /// `y = M x` for every whole row of `x` (nothing before the map is trained).
    pub(crate) fn apply(&self, x: &[f32]) -> Vec<f32> {
        self.packed.as_ref().map_or_else(Vec::new, |p| apply_whole_rows(p, x))
    }

    /// Bytes of both copies.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.m.capacity() * size_of::<f32>() + self.packed.as_ref().map_or(0, PackedMatrix::memory_bytes)
    }
}

impl std::ops::Deref for DenseMap {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.m
    }
}

impl PartialEq for DenseMap {
    /// The same matrix (the packed copy follows from it).
    fn eq(&self, other: &DenseMap) -> bool {
        self.m == other.m
    }
}

impl std::fmt::Debug for DenseMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseMap").field("len", &self.m.len()).field("packed", &self.packed).finish()
    }
}

/// `x = Mᵀ y` for one row (`x.len()` = `d_in`, `y.len()` = `d_out`): the inverse of
/// [`project_rows`] where `M` is square and orthonormal, the nearest point of `M`'s row space
/// where it has fewer rows.
pub(crate) fn project_back(m: &[f32], y: &[f32], x: &mut [f32]) {
    x.fill(0.0);
    for (&yi, mi) in y.iter().zip(m.chunks_exact(x.len())) {
        x.iter_mut().zip(mi).for_each(|(o, &v)| *o += yi * v);
    }
}

/// The largest `|(M Mᵀ)ᵢⱼ − δᵢⱼ|` of a row-major `m` with `d_in` columns: 0 for orthonormal
/// rows, infinite when a product overflows. `M Mᵀ` is [`PackedMatrix`]'s product in f32 (a
/// file's check at d = 384 took 40 ms as f64 dot products, minutes at 4,096): each entry is
/// one chain of `d_in` multiply-adds, within `d_in · 2⁻²⁴` of the exact value for rows of
/// unit norm (2.4e-4 at 4,096, under [`ORTHONORMALITY_TOLERANCE`]).
pub(crate) fn orthonormality_error(m: &[f32], d_in: usize) -> f64 {
    let Some(p) = DenseMap::pack(m, d_in) else { return 0.0 };
    let d_out = p.rows();
    // Row i of the product is M mᵢ: the dot products of row i with every row.
    let gram = apply_whole_rows(&p, m);
    let mut worst = 0f64;
    for (i, row) in gram.chunks_exact(d_out).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let e = (f64::from(v) - if i == j { 1.0 } else { 0.0 }).abs();
            // Overflow (±∞, or NaN from ∞ − ∞) is as far from I as it gets.
            worst = if e.is_nan() { f64::INFINITY } else { worst.max(e) };
        }
    }
    worst
}

/// Largest allowed `|(M Mᵀ)ᵢⱼ − δᵢⱼ|` of a saved matrix: f32 rounding of orthonormal rows
/// stays far below it at any dimension vq saves.
const ORTHONORMALITY_TOLERANCE: f64 = 1e-3;

/// A saved `d_out × d_in` matrix read from section `name`: its length, finite values,
/// orthonormal rows (OPQ's rotation or projection, PCA's projection, RaBitQ's rotation).
pub(crate) fn check_projection(name: &str, m: &[f32], d_in: usize, d_out: usize) -> Result<()> {
    if Some(m.len()) != d_in.checked_mul(d_out) {
        return Err(corrupt(name, format!("{} values, expected {d_out} × {d_in}", m.len())));
    }
    check_finite(name, m, m.len())?;
    let err = orthonormality_error(m, d_in);
    if err.is_nan() || err > ORTHONORMALITY_TOLERANCE {
        return Err(corrupt(name, format!("rows not orthonormal (M Mᵀ is {err:.2e} away from I)")));
    }
    Ok(())
}

/// A saved array read from section `name`: `len` finite values.
pub(crate) fn check_finite(name: &str, values: &[f32], len: usize) -> Result<()> {
    if values.len() != len {
        return Err(corrupt(name, format!("{} values, expected {len}", values.len())));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(corrupt(name, "non-finite value".into()));
    }
    Ok(())
}

/// `m` row-major, as f32.
pub(crate) fn to_row_major(m: &Mat<f64>) -> Vec<f32> {
    let cols = m.ncols();
    (0..m.nrows() * cols).map(|k| m[(k / cols, k % cols)] as f32).collect()
}

/// splitmix64.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in (0, 1] for counter `i` of stream `seed`.
fn unit(seed: u64, i: u64) -> f64 {
    ((mix(seed ^ mix(i)) >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// A random orthogonal `d × d` matrix: the Q of the QR factorization of a Gaussian matrix
/// (Box–Muller normals from a counter-based generator, so it depends only on `seed`).
pub(crate) fn random_rotation(d: usize, seed: u64) -> Mat<f64> {
    let g = Mat::<f64>::from_fn(d, d, |i, j| {
        let k = (i * d + j) as u64;
        let (u1, u2) = (unit(seed, 2 * k), unit(seed, 2 * k + 1));
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    });
    g.qr().compute_Q()
}

/// `n_keep` distinct rows of `x` chosen by `seed` (all of them if there are not more), in
/// their original order.
pub(crate) fn sample_rows(x: &[f32], dim: usize, n_keep: usize, seed: u64) -> std::borrow::Cow<'_, [f32]> {
    let n = x.len() / dim;
    if n <= n_keep {
        return std::borrow::Cow::Borrowed(x);
    }
    // Partial Fisher–Yates over row ids.
    let mut ids: Vec<usize> = (0..n).collect();
    for i in 0..n_keep {
        let j = i + (mix(seed ^ mix(i as u64 + 1)) % (n - i) as u64) as usize;
        ids.swap(i, j);
    }
    let mut keep = ids[..n_keep].to_vec();
    keep.sort_unstable();
    let mut out = Vec::with_capacity(n_keep * dim);
    for r in keep {
        out.extend_from_slice(&x[r * dim..][..dim]);
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The f64 dot products `orthonormality_error` replaced: its slow twin.
    fn orthonormality_error_f64(m: &[f32], d_in: usize) -> f64 {
        let mut worst = 0f64;
        for (i, mi) in m.chunks_exact(d_in).enumerate() {
            for (j, mj) in m.chunks_exact(d_in).enumerate() {
                let dot: f64 = mi.iter().zip(mj).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
                worst = worst.max((dot - if i == j { 1.0 } else { 0.0 }).abs());
            }
        }
        worst
    }

    /// Random rotations are orthonormal to f32 rounding at any size vq saves, one changed
    /// entry shows as its f64 twin sees it (past the tolerance), and values whose products overflow f32 are infinitely
    /// far from orthonormal (not NaN, which every comparison would let through).
    #[test]
    fn orthonormality_error_of_rotations_bent_ones_and_overflow() {
        for d in [1, 7, 64, 384] {
            let m = to_row_major(&random_rotation(d, 3));
            let err = orthonormality_error(&m, d);
            assert!(err < 1e-5, "d = {d}: {err}");
            let mut bent = m.clone();
            bent[d / 2] += 0.1;
            let (err, slow) = (orthonormality_error(&bent, d), orthonormality_error_f64(&bent, d));
            assert!(err > ORTHONORMALITY_TOLERANCE && (err - slow).abs() < 1e-5, "d = {d}: {err} vs {slow}");
        }
        let huge = [1e30f32, -1e30, 1e30, 1e30];
        assert_eq!(orthonormality_error(&huge, 2), f64::INFINITY);
        assert_eq!(orthonormality_error(&[], 3), 0.0);
    }

    proptest! {
        /// The f32 Gram matrix against its f64 twin, within the chain's rounding bound
        /// (`d · 2⁻²⁴ · Σ|products|`, the largest row norm product standing in for the sum).
        #[test]
        fn orthonormality_error_is_the_f64_one_within_rounding(
            d_in in 1usize..50, d_out in 1usize..50, seed in 0u64..1000,
        ) {
            let d_out = d_out.min(d_in);
            let mut state = seed | 1;
            let m: Vec<f32> = (0..d_out * d_in)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                })
                .collect();
            let norm2 = m.chunks_exact(d_in).map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>()).fold(0.0, f64::max);
            let bound = 2.0 * d_in as f64 * 2f64.powi(-24) * norm2;
            let (fast, slow) = (orthonormality_error(&m, d_in), orthonormality_error_f64(&m, d_in));
            prop_assert!((fast - slow).abs() <= bound, "{} vs {} (bound {})", fast, slow, bound);
        }

        /// The projection against its slow twin, one f64 dot product per row and output, for
        /// shapes on both sides of a parallel chunk; and a row projected alone is the same row
        /// projected in a batch, to the bit (queries are projected one at a time, the vectors
        /// they are scored against in batches: a blocked matrix product, faer's, broke this and
        /// a range search's batch-against-alone test; see BENCHMARKS.md, session 25).
        #[test]
        fn projection_is_the_dot_products_and_does_not_depend_on_the_batch(
            d_in in 1usize..70, d_out in 1usize..70, n in 1usize..40, seed in 0u64..1000, far in any::<bool>(),
        ) {
            let d_out = d_out.min(d_in);
            let mut state = seed | 1;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            };
            let m: Vec<f32> = (0..d_out * d_in).map(|_| next()).collect();
            // Past a parallel chunk (1,024 rows in vq-distance) now and then.
            let rows = if far { n + 1100 } else { n };
            let x: Vec<f32> = (0..rows * d_in).map(|_| next()).collect();
            let y = project_rows(&m, d_in, &x);
            prop_assert_eq!(y.len(), rows * d_out);
            for (i, (yr, xr)) in y.chunks_exact(d_out).zip(x.chunks_exact(d_in)).enumerate() {
                for (j, (&v, mj)) in yr.iter().zip(m.chunks_exact(d_in)).enumerate() {
                    let want: f64 = mj.iter().zip(xr).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
                    let scale: f64 = mj.iter().zip(xr).map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs()).sum();
                    prop_assert!((f64::from(v) - want).abs() <= 1e-5 * (1.0 + scale), "row {} output {}", i, j);
                }
                if i % 7 == 0 {
                    prop_assert_eq!(project_rows(&m, d_in, xr), yr.to_vec(), "row {} alone", i);
                }
            }
        }
    }
}
