//! The linear algebra OPQ's rotation and the PCA projection share: applying a row-major
//! matrix with orthonormal rows to many vectors and back, checking a saved one, drawing a
//! random rotation, and sampling training rows.

use faer::Mat;
use rayon::prelude::*;
use vq_distance::Kernels;

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

/// Rows projected per parallel task.
const PROJECT_CHUNK: usize = 1024;

/// `y = M x` for every row of `x` (`d_in` values each), where `m` is row-major with `d_in`
/// columns (`d_out = m.len() / d_in` rows): `d_out` values per output row. Parallel over rows.
pub(crate) fn project_rows(m: &[f32], d_in: usize, x: &[f32]) -> Vec<f32> {
    let d_out = m.len() / d_in;
    let dot = Kernels::active().f32_dot_fn();
    let mut y = vec![0f32; x.len() / d_in * d_out];
    y.par_chunks_mut(PROJECT_CHUNK * d_out).zip(x.par_chunks(PROJECT_CHUNK * d_in)).for_each(|(y, x)| {
        for (yr, xr) in y.chunks_exact_mut(d_out).zip(x.chunks_exact(d_in)) {
            for (v, mi) in yr.iter_mut().zip(m.chunks_exact(d_in)) {
                *v = dot(mi, xr);
            }
        }
    });
    y
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
/// rows.
pub(crate) fn orthonormality_error(m: &[f32], d_in: usize) -> f64 {
    let mut worst = 0f64;
    for (i, mi) in m.chunks_exact(d_in).enumerate() {
        for (j, mj) in m.chunks_exact(d_in).enumerate() {
            let dot: f64 = mi.iter().zip(mj).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            worst = worst.max((dot - if i == j { 1.0 } else { 0.0 }).abs());
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

    proptest! {
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
            // Past a parallel chunk (`PROJECT_CHUNK` rows) now and then.
            let rows = if far { n + PROJECT_CHUNK } else { n };
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
