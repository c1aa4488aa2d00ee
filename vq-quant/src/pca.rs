//! PCA (Faiss' `PCAMatrix`, factory strings `PCA{d}` and `PCAR{d}`): a learned projection of
//! `d_in`-dimensional vectors onto the `d_out` directions of largest variance, so an index
//! behind it stores and scores fewer dimensions.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_distance::Metric;
use vq_io::{ContainerReader, ContainerWriter};

use crate::linear::{
    DenseMap, check_finite, check_linear_dim, check_projection, project_back, random_rotation, sample_rows,
    to_row_major,
};
use crate::sections::corrupt;
use crate::{Error, Result, prepare_rows};

/// Training rows per block of the second-moment sum: each block's `Xᵀ X` is summed in f32
/// (short sums), the blocks in f64.
const MOMENT_BLOCK: usize = 4096;

/// Section layout versions.
const META_VERSION: u32 = 1;
const ARRAY_VERSION: u32 = 1;

fn default_max_train_points() -> usize {
    1 << 18
}

fn default_seed() -> u64 {
    0x5eed_0fca
}

/// How a [`PcaMatrix`] is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaParams {
    /// Output dimension, 1 to the input dimension.
    pub d_out: usize,
    /// Subtract the training mean before projecting (Faiss always does). Right for L2, where a
    /// translation changes no distance. For inner products it does change the ranking (a
    /// shift by `μ` adds `−⟨μ, x⟩` to every score), so there the projection is uncentred: the
    /// top directions of the second moment `E[x xᵀ]`, whose projection keeps inner products
    /// best.
    pub centered: bool,
    /// Follow the projection by a random rotation of the `d_out` dimensions (Faiss' `PCAR`):
    /// the variance, concentrated in the first components, is spread over all of them, which
    /// suits a product quantizer behind it.
    #[serde(default)]
    pub random_rotation: bool,
    /// Larger training sets are sampled down to this many vectors.
    #[serde(default = "default_max_train_points")]
    pub max_train_points: usize,
    /// Seed of the sampling and of the random rotation.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl PcaParams {
    /// A projection to `d_out` dimensions, centred or not, every other field at its default.
    pub fn new(d_out: usize, centered: bool) -> Self {
        PcaParams {
            d_out,
            centered,
            random_rotation: false,
            max_train_points: default_max_train_points(),
            seed: default_seed(),
        }
    }
}

/// `y = M (x − μ)`: `M` (`d_out × d_in`, orthonormal rows) holds the eigenvectors of the
/// training sample's covariance (or second moment, uncentred) with the `d_out` largest
/// eigenvalues, largest first, each signed so that its largest component is positive (then
/// rotated at random for `PCAR`); `μ` is the sample mean (zero, uncentred).
///
/// Projecting loses what lies outside the kept directions: distances and inner products
/// between projections are at most those between the vectors (L2), and equal them for
/// vectors inside the kept subspace. [`apply_inverse`](PcaMatrix::apply_inverse) maps a
/// projection back to the nearest point of that subspace.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaMatrix {
    d_in: usize,
    params: PcaParams,
    /// `d_in` values (zeros when uncentred); empty until trained.
    mean: Vec<f32>,
    /// Row-major `d_out × d_in`; empty until trained.
    matrix: DenseMap,
    /// The kept eigenvalues (variances along the kept directions), largest first.
    eigenvalues: Vec<f32>,
    /// `M μ`, subtracted from every projection.
    shift: Vec<f32>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PcaMeta {
    transform: String,
    d_in: usize,
    params: PcaParams,
    trained: bool,
}

impl PcaMatrix {
    /// An untrained projection of `d_in` dimensions. `d_out` must be 1 to `d_in`, and
    /// `max_train_points` at least 2.
    pub fn new(d_in: usize, params: PcaParams) -> Result<Self> {
        check_linear_dim(d_in, "PCA's covariance")?;
        if params.d_out == 0 || params.d_out > d_in {
            return Err(Error::Parameter {
                name: "d_out",
                what: format!("PCA projects {d_in} dimensions to 1 to {d_in}, not {}", params.d_out),
            });
        }
        if params.max_train_points < 2 {
            return Err(Error::Parameter { name: "max_train_points", what: "must be at least 2".into() });
        }
        Ok(PcaMatrix {
            d_in,
            params,
            mean: Vec::new(),
            matrix: DenseMap::default(),
            eigenvalues: Vec::new(),
            shift: Vec::new(),
        })
    }

    /// The input dimension.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// The output dimension.
    pub fn d_out(&self) -> usize {
        self.params.d_out
    }

    /// The parameters.
    pub fn params(&self) -> &PcaParams {
        &self.params
    }

    /// Whether [`train`](PcaMatrix::train) has run (or a trained projection was read).
    pub fn is_trained(&self) -> bool {
        !self.matrix.is_empty()
    }

    /// `M`, row-major `d_out × d_in`; empty before training.
    pub fn matrix(&self) -> &[f32] {
        &self.matrix
    }

    /// `μ` (zeros when uncentred); empty before training.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The variance of the training sample along each kept direction (before `PCAR`'s
    /// rotation), largest first; their sum over the sample's total is the variance kept.
    pub fn eigenvalues(&self) -> &[f32] {
        &self.eigenvalues
    }

    /// Learns `μ` and `M` from `sample` (row-major, at least 2 rows, sampled down to
    /// `max_train_points`). On error the previous projection is kept.
    pub fn train(&mut self, sample: &[f32]) -> Result<()> {
        let (d, d_out) = (self.d_in, self.params.d_out);
        let x = prepare_rows("sample", sample, d, Metric::L2)?;
        let n_all = x.as_slice().len() / d;
        if n_all < 2 {
            return Err(Error::TooFewTrainingPoints { quantizer: self.name(), needed: 2, got: n_all });
        }
        let xs = sample_rows(x.as_slice(), d, self.params.max_train_points, self.params.seed);
        let n = xs.len() / d;
        let mut mean = vec![0f64; d];
        if self.params.centered {
            for row in xs.chunks_exact(d) {
                mean.iter_mut().zip(row).for_each(|(m, &v)| *m += f64::from(v));
            }
            mean.iter_mut().for_each(|m| *m /= n as f64);
        }
        let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        // Σ (x − μ)(x − μ)ᵀ / n, block by block.
        let moment = xs
            .par_chunks(MOMENT_BLOCK * d)
            .map(|block| {
                let rows = block.len() / d;
                let centred: Vec<f32> =
                    block.chunks_exact(d).flat_map(|r| r.iter().zip(&mean32).map(|(v, m)| v - m)).collect();
                let b = MatRef::from_row_major_slice(&centred, rows, d);
                let mut btb = Mat::<f32>::zeros(d, d);
                matmul(btb.as_mut(), Accum::Replace, b.transpose(), b, 1.0f32, Par::Seq);
                Mat::<f64>::from_fn(d, d, |i, j| f64::from(btb[(i, j)]))
            })
            .reduce(|| Mat::<f64>::zeros(d, d), |a, b| a + b);
        let moment = Mat::<f64>::from_fn(d, d, |i, j| moment[(i, j)] / n as f64);
        let eig = moment.self_adjoint_eigen(Side::Lower).map_err(|e| Error::Parameter {
            name: "sample",
            what: format!("the eigendecomposition of the PCA sample's covariance did not converge ({e:?})"),
        })?;
        // Eigenvalues come in nondecreasing order: the kept directions are the last columns.
        let (u, s) = (eig.U(), eig.S().column_vector());
        let mut m = Mat::<f64>::from_fn(d_out, d, |i, j| u[(j, d - 1 - i)]);
        for i in 0..d_out {
            let row = m.row(i);
            let largest = (0..d).max_by(|&a, &b| row[a].abs().total_cmp(&row[b].abs())).unwrap_or(0);
            if row[largest] < 0.0 {
                for j in 0..d {
                    m[(i, j)] = -m[(i, j)];
                }
            }
        }
        let eigenvalues: Vec<f32> = (0..d_out).map(|i| s[d - 1 - i].max(0.0) as f32).collect();
        if self.params.random_rotation {
            m = random_rotation(d_out, self.params.seed) * m;
        }
        let matrix = to_row_major(&m);
        if matrix.iter().any(|v| !v.is_finite()) {
            return Err(Error::Parameter { name: "sample", what: "the PCA projection came out non-finite".into() });
        }
        let matrix = DenseMap::new(matrix, d);
        self.shift = matrix.apply(&mean32);
        self.mean = mean32;
        self.matrix = matrix;
        self.eigenvalues = eigenvalues;
        Ok(())
    }

    /// `M (x − μ)` of every row of `x` (row-major, whole rows of `d_in`; not re-checked for
    /// finite values: callers pass rows they prepared): `d_out` values per row.
    pub fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        self.check(x, self.d_in)?;
        let mut y = self.matrix.apply(x);
        if self.params.centered {
            y.par_chunks_mut(self.params.d_out)
                .for_each(|row| row.iter_mut().zip(&self.shift).for_each(|(v, s)| *v -= s));
        }
        Ok(y)
    }

    /// `Mᵀ y + μ` of every row of `y` (row-major, whole rows of `d_out`): the point of the kept
    /// subspace that projects to `y` (an index's `reconstruct` maps stored projections back
    /// with it).
    pub fn apply_inverse(&self, y: &[f32]) -> Result<Vec<f32>> {
        self.check(y, self.params.d_out)?;
        let mut x = vec![0f32; y.len() / self.params.d_out * self.d_in];
        for (xr, yr) in x.chunks_exact_mut(self.d_in).zip(y.chunks_exact(self.params.d_out)) {
            project_back(&self.matrix, yr, xr);
            xr.iter_mut().zip(&self.mean).for_each(|(v, m)| *v += m);
        }
        Ok(x)
    }

    fn check(&self, x: &[f32], dim: usize) -> Result<()> {
        if !self.is_trained() {
            return Err(Error::NotTrained { quantizer: self.name() });
        }
        // Whole, finite rows (a NaN would come out as a row of NaNs, silently).
        vq_distance::validate_rows("vectors", x, dim, Metric::L2)?;
        Ok(())
    }

    /// What the projection is called in errors: `PCA{d_out}` or `PCAR{d_out}`.
    pub fn name(&self) -> String {
        let r = if self.params.random_rotation { "R" } else { "" };
        format!("PCA{r}{}", self.params.d_out)
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.matrix.memory_bytes()
            + (self.mean.capacity() + self.eigenvalues.capacity() + self.shift.capacity()) * size_of::<f32>()
    }

    /// Writes `{prefix}.meta` (parameters), `{prefix}.mean`, `{prefix}.matrix` and
    /// `{prefix}.eigenvalues`.
    pub fn write_sections(&self, writer: &mut ContainerWriter, prefix: &str) -> Result<()> {
        let meta = PcaMeta {
            transform: "pca".into(),
            d_in: self.d_in,
            params: self.params.clone(),
            trained: self.is_trained(),
        };
        writer.add_json(&format!("{prefix}.meta"), META_VERSION, &meta)?;
        writer.add_array(&format!("{prefix}.mean"), ARRAY_VERSION, &self.mean)?;
        writer.add_array(&format!("{prefix}.matrix"), ARRAY_VERSION, &self.matrix)?;
        writer.add_array(&format!("{prefix}.eigenvalues"), ARRAY_VERSION, &self.eigenvalues)?;
        Ok(())
    }

    /// Reads what [`write_sections`](PcaMatrix::write_sections) wrote. A matrix that is not
    /// `d_out × d_in`, finite and of orthonormal rows, or a mean or eigenvalues of the wrong
    /// length or not finite, is `Corrupt`.
    pub fn read_sections(reader: &ContainerReader, prefix: &str) -> Result<Self> {
        let names = ["meta", "mean", "matrix", "eigenvalues"].map(|s| format!("{prefix}.{s}"));
        let [meta_name, mean_name, matrix_name, eig_name] = &names;
        reader.check_versions(&[
            (meta_name, META_VERSION),
            (mean_name, ARRAY_VERSION),
            (matrix_name, ARRAY_VERSION),
            (eig_name, ARRAY_VERSION),
        ])?;
        let meta: PcaMeta = reader.json(meta_name)?;
        if meta.transform != "pca" {
            return Err(corrupt(meta_name, format!("holds a {:?} transform, not \"pca\"", meta.transform)));
        }
        let mut p = PcaMatrix::new(meta.d_in, meta.params).map_err(|e| corrupt(meta_name, e.to_string()))?;
        let (mean, matrix, eigenvalues): (Vec<f32>, Vec<f32>, Vec<f32>) =
            (reader.array_vec(mean_name)?, reader.array_vec(matrix_name)?, reader.array_vec(eig_name)?);
        let (d, d_out) = (p.d_in, p.params.d_out);
        if !meta.trained {
            if !(mean.is_empty() && matrix.is_empty() && eigenvalues.is_empty()) {
                return Err(corrupt(meta_name, "an untrained projection with saved values".into()));
            }
            return Ok(p);
        }
        check_finite(mean_name, &mean, d)?;
        check_finite(eig_name, &eigenvalues, d_out)?;
        check_projection(matrix_name, &matrix, d, d_out)?;
        if !p.params.centered && mean.iter().any(|&m| m != 0.0) {
            return Err(corrupt(mean_name, "a mean saved for an uncentred projection".into()));
        }
        let matrix = DenseMap::new(matrix, d);
        p.shift = matrix.apply(&mean);
        (p.mean, p.matrix, p.eigenvalues) = (mean, matrix, eigenvalues);
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` points `c + Σ aᵢ bᵢ` in `d` dimensions, `b` an orthonormal basis of `k` directions
    /// with variances falling as `1 / (i + 1)²`, `c` a fixed offset.
    fn subspace_points(n: usize, d: usize, k: usize, offset: f32) -> Vec<f32> {
        let basis = to_row_major(&random_rotation(d, 7));
        let mut out = Vec::with_capacity(n * d);
        for p in 0..n {
            let mut x: Vec<f32> = (0..d).map(|j| offset * (1.0 + j as f32 / d as f32)).collect();
            for i in 0..k {
                let a = ((p * 31 + i * 17) % 101) as f32 / 101.0 - 0.5;
                let a = a * 10.0 / (i + 1) as f32;
                x.iter_mut().zip(&basis[i * d..(i + 1) * d]).for_each(|(v, b)| *v += a * b);
            }
            out.extend_from_slice(&x);
        }
        out
    }

    fn l2(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    #[test]
    fn points_in_a_subspace_keep_their_distances_and_come_back() {
        let (d, k, n) = (12, 4, 500);
        let x = subspace_points(n, d, k, 3.0);
        for random_rotation in [false, true] {
            let mut pca = PcaMatrix::new(d, PcaParams { random_rotation, ..PcaParams::new(k, true) }).unwrap();
            pca.train(&x).unwrap();
            assert!(crate::linear::orthonormality_error(pca.matrix(), d) < 1e-5);
            let y = pca.apply(&x).unwrap();
            assert_eq!(y.len(), n * k);
            for (i, j) in [(0, 1), (5, 77), (300, 499)] {
                let (dx, dy) = (l2(&x[i * d..][..d], &x[j * d..][..d]), l2(&y[i * k..][..k], &y[j * k..][..k]));
                assert!((dx - dy).abs() <= 1e-3 * dx.max(1.0), "{dx} vs {dy} (rotated: {random_rotation})");
            }
            let back = pca.apply_inverse(&y).unwrap();
            let worst = x.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-3, "reconstruction off by {worst}");
            // Centred: the projections have mean zero.
            for c in 0..k {
                let m: f32 = y.iter().skip(c).step_by(k).sum::<f32>() / n as f32;
                assert!(m.abs() < 1e-3, "component {c} has mean {m}");
            }
        }
    }

    #[test]
    fn eigenvalues_are_the_variances_along_the_kept_directions_largest_first() {
        let (d, n) = (10, 2000);
        // Independent coordinates with variances 9, 4, 1, and near nothing elsewhere.
        let x: Vec<f32> = (0..n)
            .flat_map(|p| {
                (0..d).map(move |j| {
                    let u = (crate::linear::mix((p * d + j) as u64) >> 11) as f32 / (1u64 << 53) as f32 - 0.5;
                    u * [3.0, 2.0, 1.0].get(j).copied().unwrap_or(0.01) * 12f32.sqrt()
                })
            })
            .collect();
        let mut pca = PcaMatrix::new(d, PcaParams::new(3, true)).unwrap();
        pca.train(&x).unwrap();
        let ev = pca.eigenvalues();
        for (got, want) in ev.iter().zip([9.0, 4.0, 1.0]) {
            assert!((got - want).abs() < 0.15 * want, "eigenvalues {ev:?}");
        }
        // The first direction is the first axis, signed positive.
        assert!(pca.matrix()[0] > 0.99, "first row {:?}", &pca.matrix()[..d]);
    }

    #[test]
    fn uncentred_projection_keeps_inner_products_in_the_subspace() {
        let (d, k, n) = (16, 5, 400);
        let x = subspace_points(n, d, k, 0.0);
        let mut pca = PcaMatrix::new(d, PcaParams::new(k, false)).unwrap();
        pca.train(&x).unwrap();
        assert!(pca.mean().iter().all(|&m| m == 0.0));
        let y = pca.apply(&x).unwrap();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f32>();
        for (i, j) in [(0, 3), (10, 200), (399, 1)] {
            let (gx, gy) = (dot(&x[i * d..][..d], &x[j * d..][..d]), dot(&y[i * k..][..k], &y[j * k..][..k]));
            assert!((gx - gy).abs() <= 1e-3 * gx.abs().max(1.0), "{gx} vs {gy}");
        }
    }

    #[test]
    fn bad_parameters_untrained_use_and_tiny_samples_are_errors() {
        assert!(matches!(PcaMatrix::new(8, PcaParams::new(0, true)), Err(Error::Parameter { name: "d_out", .. })));
        assert!(matches!(PcaMatrix::new(8, PcaParams::new(9, true)), Err(Error::Parameter { name: "d_out", .. })));
        // A covariance of (2^24)² f64 would abort on allocation: refused up front.
        for d_in in [crate::LINEAR_MAX_DIM + 1, 1 << 24] {
            assert!(matches!(PcaMatrix::new(d_in, PcaParams::new(8, true)), Err(Error::Parameter { name: "dim", .. })));
        }
        assert!(PcaMatrix::new(crate::LINEAR_MAX_DIM, PcaParams::new(8, true)).is_ok());
        let mut pca = PcaMatrix::new(4, PcaParams::new(2, true)).unwrap();
        assert!(matches!(pca.apply(&[0.0; 4]), Err(Error::NotTrained { .. })));
        assert!(matches!(pca.train(&[1.0; 4]), Err(Error::TooFewTrainingPoints { needed: 2, got: 1, .. })));
        assert!(matches!(pca.train(&[1.0; 7]), Err(Error::Input(_))));
        assert!(!pca.is_trained(), "a failed train leaves it untrained");
        pca.train(&[1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0, 2.0, 0.0, 1.0, 0.0, 5.0]).unwrap();
        assert!(matches!(pca.apply(&[0.0; 5]), Err(Error::Input(_))));
        assert!(matches!(pca.apply_inverse(&[0.0; 3]), Err(Error::Input(_))));
        // Non-finite rows are refused, not mapped to rows of NaNs.
        let nan = vq_distance::Error::NonFinite { what: "vectors", row: 1, component: 2 };
        for bad in [f32::NAN, f32::INFINITY] {
            let x = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, bad, 1.0];
            assert!(matches!(pca.apply(&x), Err(Error::Input(ref e)) if *e == nan), "{bad}");
            assert!(matches!(pca.apply_inverse(&x[4..]), Err(Error::Input(_))), "{bad}");
        }
    }

    #[test]
    fn saved_projections_read_back_and_damaged_ones_are_refused() {
        let (d, k) = (8, 3);
        let x = subspace_points(300, d, k, 1.0);
        let mut pca = PcaMatrix::new(d, PcaParams { random_rotation: true, ..PcaParams::new(k, true) }).unwrap();
        let untrained = pca.clone();
        pca.train(&x).unwrap();
        let save = |p: &PcaMatrix, tweak: &dyn Fn(&mut Vec<f32>)| {
            let mut w = ContainerWriter::in_memory().unwrap();
            let mut m = p.matrix.to_vec();
            tweak(&mut m);
            let q = PcaMatrix { matrix: DenseMap::new(m, p.d_in), ..p.clone() };
            q.write_sections(&mut w, "t").unwrap();
            ContainerReader::from_bytes(&w.finish_to_bytes().unwrap(), true).unwrap()
        };
        for p in [&pca, &untrained] {
            let back = PcaMatrix::read_sections(&save(p, &|_| ()), "t").unwrap();
            assert_eq!(&back, p);
        }
        assert_eq!(
            pca.apply(&x).unwrap(),
            PcaMatrix::read_sections(&save(&pca, &|_| ()), "t").unwrap().apply(&x).unwrap()
        );
        for (what, tweak) in [
            ("scaled", &(|m: &mut Vec<f32>| m[0] *= 1.5) as &dyn Fn(&mut Vec<f32>)),
            ("short", &|m: &mut Vec<f32>| m.truncate(m.len() - 1)),
            ("NaN", &|m: &mut Vec<f32>| m[2] = f32::NAN),
        ] {
            let err = PcaMatrix::read_sections(&save(&pca, tweak), "t").unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err}");
        }
    }
}
