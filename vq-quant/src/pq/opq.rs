//! OPQ: a learned rotation in front of a product quantizer (Ge, He, Ke & Sun, "Optimized
//! Product Quantization for Approximate Nearest Neighbor Search", CVPR 2013, the
//! non-parametric solution of §3.1).
//!
//! Training alternates two steps that each lower the reconstruction error
//! `Σᵢ ‖R xᵢ − ŷᵢ‖²` of the rotated training vectors:
//! 1. with `R` fixed, train the PQ codebooks on `R x` and reconstruct (`ŷᵢ`);
//! 2. with the reconstructions fixed, the best orthogonal `R` is the orthogonal Procrustes
//!    solution: with `Xᵀ Ŷ = U S Vᵀ` (SVD of a `d × d` matrix), `R = V Uᵀ`.
//!
//! The schedule is Faiss' `OPQMatrix::train`: 40 k-means iterations in the first round then 4
//! per round, each round's codebooks starting from the previous round's (a hot start), up to
//! 1,000 points per centroid, the training set sampled down to 65,536 vectors and centred for
//! the rounds (a translation is absorbed by the codebooks, so the rotation should not spend
//! itself on the mean). vq runs 25 rounds by default where Faiss runs 50. The codebooks used
//! for encoding are then trained from scratch on the whole training set rotated by the final
//! `R` (not centred: `R` is applied to vectors as they come), as Faiss' `OPQ16,PQ16` trains its
//! `IndexPQ` after the rotation.
//!
//! One departure from Faiss: vq starts from the identity, Faiss from a random rotation
//! ([`OpqParams::random_init`] restores that). From the identity the first round is plain PQ
//! and every later round lowers the error from there (up to k-means noise). From a random
//! rotation OPQ can end worse than plain PQ: on SIFT descriptors (imgsift100k, 20,000
//! learn vectors, PQ16x8) a random rotation starts at 3.1× the error of the natural
//! coordinates (33,119 vs 10,534 per vector) and six rounds only bring it to 23,953, where the
//! identity start reaches 9,753. (Ge et al. also start the non-parametric method from a chosen
//! rotation — their parametric solution — rather than a random one.)

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_distance::Metric;
use vq_io::{ContainerReader, ContainerWriter};

use super::{PqParams, PqScorer, ProductQuantizer, check_params};
use crate::linear::{
    DenseMap, check_linear_dim, check_projection, project_back, project_rows, random_rotation, sample_rows,
    to_row_major,
};
use crate::sections::{self, corrupt};
use crate::{CodeScorer, Error, Quantizer, Result, prepare_row_into, prepare_rows};
use crate::{PcaMatrix, PcaParams};

fn default_niter() -> usize {
    25
}
fn default_niter_pq() -> usize {
    4
}
fn default_niter_pq_0() -> usize {
    40
}
fn default_max_train_points() -> usize {
    256 * 256
}
fn default_max_points_per_centroid() -> usize {
    1000
}
fn default_seed() -> u64 {
    123
}

/// How an [`OpqQuantizer`] is trained (names and defaults from Faiss' `OPQMatrix`, except
/// `niter`: 25 rounds where Faiss runs 50).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpqParams {
    /// The product quantizer behind the rotation (and how its final codebooks are trained).
    pub pq: PqParams,
    /// Rounds of (PQ training, Procrustes).
    #[serde(default = "default_niter")]
    pub niter: usize,
    /// k-means iterations per codebook in every round but the first.
    #[serde(default = "default_niter_pq")]
    pub niter_pq: usize,
    /// k-means iterations per codebook in the first round.
    #[serde(default = "default_niter_pq_0")]
    pub niter_pq_0: usize,
    /// Larger training sets are sampled down to this many vectors to learn the rotation.
    #[serde(default = "default_max_train_points")]
    pub max_train_points: usize,
    /// `max_points_per_centroid` of the k-means runs inside the rounds.
    #[serde(default = "default_max_points_per_centroid")]
    pub max_points_per_centroid: usize,
    /// Seed of the sampling and of the random starting rotation.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Start from a random rotation (Faiss) rather than the identity (vq's default; see
    /// [`OpqQuantizer`]).
    #[serde(default)]
    pub random_init: bool,
}

impl OpqParams {
    /// OPQ in front of `m` sub-quantizers of `nbits` bits, every other field at its default.
    pub fn new(m: usize, nbits: u32) -> Self {
        OpqParams {
            pq: PqParams::new(m, nbits),
            niter: default_niter(),
            niter_pq: default_niter_pq(),
            niter_pq_0: default_niter_pq_0(),
            max_train_points: default_max_train_points(),
            max_points_per_centroid: default_max_points_per_centroid(),
            seed: default_seed(),
            random_init: false,
        }
    }
}

/// A product quantizer over vectors rotated by a learned orthogonal `d × d` matrix `R`
/// (factory string `OPQ{m},PQ{m}x{nbits}`): codes are PQ codes of `R x`, queries are rotated
/// the same way before their look-up table is built. `R` preserves distances and inner
/// products, so keys are those of [`ProductQuantizer`] for every metric.
///
/// Training (Ge et al. 2013, non-parametric OPQ, with Faiss' `OPQMatrix` schedule): rounds of
/// PQ training on the rotated, centred sample and the orthogonal Procrustes update of `R`
/// (`R = V Uᵀ` from the SVD `Xᵀ Ŷ = U S Vᵀ`), then codebooks trained from scratch on the whole
/// training set rotated by the final `R`. It starts from the identity where Faiss starts from a
/// random rotation ([`OpqParams::random_init`]): from the identity the first round is plain PQ
/// and the rounds improve on it, while on SIFT descriptors a random start costs 3.1× the error
/// of the natural coordinates and 25 rounds do not recover it (OPQ16 ends at 1.7× plain PQ's
/// error on imgsift100k, see BENCHMARKS.md).
///
/// Errors are those of [`ProductQuantizer`], plus `niter`, `niter_pq_0`, `max_train_points` or
/// `max_points_per_centroid` zero.
#[derive(Debug, Clone)]
pub struct OpqQuantizer {
    params: OpqParams,
    /// Row-major `d × d`; empty until trained.
    rotation: DenseMap,
    pq: ProductQuantizer,
    objective: Vec<f64>,
}

impl OpqQuantizer {
    /// An untrained OPQ quantizer of `m` sub-quantizers of `nbits` bits, default training.
    pub fn new(dim: usize, metric: Metric, m: usize, nbits: u32) -> Result<Self> {
        Self::with_params(dim, metric, OpqParams::new(m, nbits))
    }

    /// An untrained OPQ quantizer with these parameters.
    pub fn with_params(dim: usize, metric: Metric, params: OpqParams) -> Result<Self> {
        check_opq_params(dim, &params)?;
        let pq = ProductQuantizer::with_params(dim, metric, params.pq.clone())?;
        Ok(OpqQuantizer { params, rotation: DenseMap::default(), pq, objective: Vec::new() })
    }

    /// The parameters.
    pub fn params(&self) -> &OpqParams {
        &self.params
    }

    /// The rotation `R`, row-major `d × d` (a code is the PQ code of `R x`); empty before
    /// training.
    pub fn rotation(&self) -> &[f32] {
        &self.rotation
    }

    /// The product quantizer of the rotated space.
    pub fn pq(&self) -> &ProductQuantizer {
        &self.pq
    }

    /// The mean squared reconstruction error (per vector, in the rotated space) of the
    /// training sample at each round of the last [`train`](Quantizer::train); empty after a load.
    pub fn training_objective(&self) -> &[f64] {
        &self.objective
    }

    fn check_trained(&self) -> Result<()> {
        if self.rotation.is_empty() { Err(Error::NotTrained { quantizer: self.name() }) } else { Ok(()) }
    }

    /// `R x` of every row.
    fn rotate(&self, x: &[f32]) -> Vec<f32> {
        self.rotation.apply(x)
    }
}

/// The checks of [`OpqQuantizer::with_params`] and [`OpqRotation::new`].
fn check_opq_params(dim: usize, params: &OpqParams) -> Result<()> {
    check_linear_dim(dim, "OPQ's rotation")?;
    check_params(dim, &params.pq)?;
    for (name, v) in [
        ("niter", params.niter),
        ("niter_pq_0", params.niter_pq_0),
        ("max_train_points", params.max_train_points),
        ("max_points_per_centroid", params.max_points_per_centroid),
    ] {
        if v == 0 {
            return Err(Error::Parameter { name, what: "must be at least 1".into() });
        }
    }
    Ok(())
}

/// OPQ's rounds on the (prepared) training rows `x`: the rotation `R` (row-major `d × d`) and
/// the mean squared reconstruction error of each round. See [`OpqQuantizer`] for the schedule.
fn train_rotation(x: &[f32], dim: usize, p: &OpqParams) -> Result<(Vec<f32>, Vec<f64>)> {
    train_projection(x, dim, dim, p)
}

/// [`train_rotation`] to `d_out ≤ dim` dimensions: `R` is `d_out × dim` with orthonormal rows,
/// and each round's Procrustes step takes the thin SVD. Below `dim` it starts from the
/// sample's top `d_out` principal directions rotated at random among themselves (`PCAR`: the
/// most variance kept, spread evenly over the sub-spaces), or from `d_out` rows of a random
/// rotation with `random_init` (Faiss). From the principal directions alone the rounds stay
/// near their axes, which put most of the variance in the first sub-spaces: on imgsift100k,
/// `OPQ16_64,IVF1024,PQ16` reached recall@10 0.678 at nprobe 64 from PCA, 0.706 from a random
/// projection and 0.711 from PCAR (Faiss 0.709; BENCHMARKS.md).
fn train_projection(x: &[f32], dim: usize, d_out: usize, p: &OpqParams) -> Result<(Vec<f32>, Vec<f64>)> {
    let mut xs = sample_rows(x, dim, p.max_train_points, p.seed).into_owned();
    let ns = xs.len() / dim;
    // Centred, as Faiss does: a translation of the data is absorbed by the codebooks, so
    // the rotation should not spend itself on the mean.
    let mut mean = vec![0f64; dim];
    for row in xs.chunks_exact(dim) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += f64::from(v));
    }
    let mean: Vec<f32> = mean.iter().map(|m| (m / ns as f64) as f32).collect();
    xs.par_chunks_mut(dim).for_each(|row| row.iter_mut().zip(&mean).for_each(|(v, m)| *v -= m));
    // The rounds' quantizer reconstructs in L2 whatever the metric (cosine rows are
    // already unit length).
    let mut round_pq = ProductQuantizer::with_params(d_out, Metric::L2, p.pq.clone())?;
    let mut r = if d_out < dim && p.random_init {
        let full = random_rotation(dim, p.seed);
        Mat::<f64>::from_fn(d_out, dim, |i, j| full[(i, j)])
    } else if d_out < dim {
        // The sample is centred already: an uncentred PCA of it is the centred one.
        let params = PcaParams {
            max_train_points: ns.max(2),
            random_rotation: true,
            seed: p.seed,
            ..PcaParams::new(d_out, false)
        };
        let mut pca = PcaMatrix::new(dim, params)?;
        pca.train(&xs)?;
        Mat::<f64>::from_fn(d_out, dim, |i, j| f64::from(pca.matrix()[i * dim + j]))
    } else if p.random_init {
        random_rotation(dim, p.seed)
    } else {
        Mat::<f64>::identity(dim, dim)
    };
    let mut codes = vec![0u8; ns * round_pq.code_size];
    let mut yhat = vec![0f32; ns * d_out];
    let mut objective = Vec::with_capacity(p.niter);
    for round in 0..p.niter {
        let rm = to_row_major(&r);
        let y = project_rows(&rm, dim, &xs);
        let (iters, init) =
            if round == 0 { (p.niter_pq_0, None) } else { (p.niter_pq.max(1), Some(round_pq.centroids())) };
        let books = round_pq.fit_codebooks(&y, init, iters, p.max_points_per_centroid)?;
        round_pq.set_centroids(books)?;
        round_pq.encode_prepared(&y, &mut codes)?;
        yhat.par_chunks_mut(d_out)
            .zip(codes.par_chunks(round_pq.code_size))
            .for_each(|(o, c)| round_pq.decode_one(c, o));
        let err: f64 = y
            .par_chunks(d_out)
            .zip(yhat.par_chunks(d_out))
            .map(|(a, b)| a.iter().zip(b).map(|(u, v)| f64::from(u - v).powi(2)).sum::<f64>())
            .sum();
        objective.push(err / ns as f64);
        r = procrustes(&xs, &yhat, dim, d_out)?;
    }
    Ok((to_row_major(&r), objective))
}

/// A rotation read from section `name`: `dim²` finite values of an orthogonal matrix.
fn check_rotation(name: &str, rotation: &[f32], dim: usize) -> Result<()> {
    check_projection(name, rotation, dim, dim)
}

/// `R = V Uᵀ` where `xᵀ ŷ = U S Vᵀ` (thin SVD): the `d_out × dim` `R` with orthonormal rows
/// minimizing `Σ ‖R xᵢ − ŷᵢ‖²` (orthogonal when `d_out = dim`).
fn procrustes(x: &[f32], yhat: &[f32], dim: usize, d_out: usize) -> Result<Mat<f64>> {
    let n = x.len() / dim;
    let xm = MatRef::from_row_major_slice(x, n, dim);
    let ym = MatRef::from_row_major_slice(yhat, n, d_out);
    let mut xty = Mat::<f32>::zeros(dim, d_out);
    matmul(xty.as_mut(), Accum::Replace, xm.transpose(), ym, 1.0f32, Par::Seq);
    let xty = Mat::<f64>::from_fn(dim, d_out, |i, j| f64::from(xty[(i, j)]));
    let svd = xty.thin_svd().map_err(|e| Error::Parameter {
        name: "sample",
        what: format!("the SVD of OPQ's Procrustes step did not converge ({e:?})"),
    })?;
    Ok(svd.V() * svd.U().transpose())
}

/// A rotated query against OPQ codes: the query is rotated by `R`, then scored by the product
/// quantizer's look-up table ([`PqScorer`]).
#[derive(Debug, Clone)]
pub struct OpqScorer<'a> {
    inner: PqScorer<'a>,
}

impl<'a> OpqScorer<'a> {
    /// The look-up table of the rotated query.
    pub fn pq_scorer(&self) -> &PqScorer<'a> {
        &self.inner
    }
}

impl CodeScorer for OpqScorer<'_> {
    #[inline]
    fn distance(&self, code: &[u8]) -> f32 {
        self.inner.distance(code)
    }

    fn distances(&self, codes: &[u8], out: &mut [f32]) {
        self.inner.distances(codes, out);
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct OpqMeta {
    quantizer: String,
    dim: usize,
    metric: String,
    params: OpqParams,
    trained: bool,
}

const META_VERSION: u32 = 1;
const ROTATION_VERSION: u32 = 1;

impl Quantizer for OpqQuantizer {
    type Scorer<'a> = OpqScorer<'a>;

    fn name(&self) -> String {
        format!("OPQ{},{}", self.pq.m(), self.pq.name())
    }

    fn dim(&self) -> usize {
        self.pq.dim
    }

    fn metric(&self) -> Metric {
        self.pq.metric
    }

    fn code_size(&self) -> usize {
        self.pq.code_size
    }

    fn is_trained(&self) -> bool {
        !self.rotation.is_empty() && self.pq.is_trained()
    }

    fn train(&mut self, sample: &[f32]) -> Result<()> {
        let (dim, p) = (self.pq.dim, &self.params);
        let x = prepare_rows("sample", sample, dim, self.pq.metric)?.into_cow();
        let n = x.len() / dim;
        if n < self.pq.ksub {
            return Err(Error::TooFewTrainingPoints { quantizer: self.name(), needed: self.pq.ksub, got: n });
        }
        let (rotation, objective) = train_rotation(&x, dim, p)?;
        let rotation = DenseMap::new(rotation, dim);
        // The codebooks that encode: trained from scratch on the whole (rotated) training set.
        let y = rotation.apply(&x);
        let mut pq = ProductQuantizer::with_params(dim, self.pq.metric, p.pq.clone())?;
        let books = pq.fit_codebooks(&y, None, p.pq.iterations, p.pq.max_points_per_centroid)?;
        pq.set_centroids(books)?;
        self.pq = pq;
        self.rotation = rotation;
        self.objective = objective;
        Ok(())
    }

    fn encode(&self, vectors: &[f32], codes: &mut [u8]) -> Result<()> {
        self.check_trained()?;
        let dim = self.pq.dim;
        let x = prepare_rows("vectors", vectors, dim, self.pq.metric)?.into_cow();
        let expected = x.len() / dim * self.pq.code_size;
        if codes.len() != expected {
            return Err(Error::CodeLength { what: "codes", len: codes.len(), expected });
        }
        self.pq.encode_prepared(&self.rotate(&x), codes)
    }

    fn decode(&self, codes: &[u8], out: &mut [f32]) -> Result<()> {
        self.check_trained()?;
        let (dim, cs) = (self.pq.dim, self.pq.code_size);
        if !codes.len().is_multiple_of(cs) {
            return Err(Error::CodeLength { what: "codes", len: codes.len(), expected: codes.len() / cs * cs });
        }
        if out.len() != codes.len() / cs * dim {
            let expected = codes.len() / cs * dim;
            return Err(vq_distance::Error::OutputLength { what: "out", got: out.len(), expected }.into());
        }
        out.par_chunks_mut(dim).zip(codes.par_chunks(cs)).for_each_init(
            || vec![0f32; dim],
            |y, (o, c)| {
                self.pq.decode_one(c, y);
                project_back(&self.rotation, y, o);
            },
        );
        Ok(())
    }

    fn scorer(&self, query: &[f32]) -> Result<OpqScorer<'_>> {
        self.check_trained()?;
        let mut normalized = Vec::new();
        let q = prepare_row_into("query", query, self.pq.dim, self.pq.metric, &mut normalized)?;
        Ok(OpqScorer { inner: self.pq.scorer_prepared(&self.rotate(q)) })
    }

    /// The product quantizer's symmetric distance (the rotation preserves distances and inner
    /// products).
    fn code_distance(&self, a: &[u8], b: &[u8]) -> f32 {
        self.pq.code_distance(a, b)
    }

    fn decoded_norm_sq_bound(&self) -> Option<f64> {
        // Decoding rotates a PQ reconstruction: ‖Rᵀx‖² ≤ ‖R‖²_F ‖x‖² (loose for an orthogonal
        // R, where it is d times the truth, but it only has to rule out overflow).
        let frobenius: f64 = self.rotation.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let bound = self.pq.decoded_norm_sq_bound()? * frobenius;
        bound.is_finite().then_some(bound)
    }

    fn memory_bytes(&self) -> usize {
        self.rotation.memory_bytes() + self.pq.memory_bytes()
    }

    fn write_sections(&self, writer: &mut ContainerWriter, prefix: &str) -> Result<()> {
        let meta = OpqMeta {
            quantizer: "opq".into(),
            dim: self.pq.dim,
            metric: self.pq.metric.name().into(),
            params: self.params.clone(),
            trained: self.is_trained(),
        };
        writer.add_json(&format!("{prefix}.meta"), META_VERSION, &meta)?;
        writer.add_array(&format!("{prefix}.rotation"), ROTATION_VERSION, &self.rotation)?;
        self.pq.write_sections(writer, &format!("{prefix}.pq"))
    }

    fn read_sections(reader: &ContainerReader, prefix: &str) -> Result<Self> {
        let meta_name = format!("{prefix}.meta");
        let rot_name = format!("{prefix}.rotation");
        reader.check_versions(&[(&meta_name, META_VERSION), (&rot_name, ROTATION_VERSION)])?;
        let meta: OpqMeta = reader.json(&meta_name)?;
        if meta.quantizer != "opq" {
            return Err(corrupt(&meta_name, format!("holds a {:?} quantizer, not \"opq\"", meta.quantizer)));
        }
        let metric = sections::metric(&meta_name, &meta.metric)?;
        let mut opq =
            OpqQuantizer::with_params(meta.dim, metric, meta.params).map_err(|e| corrupt(&meta_name, e.to_string()))?;
        let pq = ProductQuantizer::read_sections(reader, &format!("{prefix}.pq"))?;
        if pq.dim != meta.dim || pq.metric != metric || pq.params != opq.params.pq {
            return Err(corrupt(&format!("{prefix}.pq.meta"), "does not match the OPQ parameters".into()));
        }
        let rotation: &[f32] = reader.array(&rot_name)?;
        if meta.trained != (pq.is_trained() && !rotation.is_empty()) {
            return Err(corrupt(&rot_name, "rotation and codebooks disagree on whether it is trained".into()));
        }
        if meta.trained {
            check_rotation(&rot_name, rotation, meta.dim)?;
            opq.rotation = DenseMap::new(rotation.to_vec(), meta.dim);
        }
        opq.pq = pq;
        Ok(opq)
    }
}

/// OPQ's rotation on its own, for an index that rotates vectors before anything else sees
/// them (Faiss' `OPQMatrix` in an `IndexPreTransform`: `OPQ16,IVF1024,PQ16`, where the coarse
/// quantizer and the residual PQ both work on `R x`). Trained exactly as the rotation of an
/// [`OpqQuantizer`] with the same [`OpqParams`] (the same rounds on the same sample); the
/// codebooks of those rounds are dropped: what quantizes the rotated vectors is the index's
/// own business.
///
/// Rotations are in L2 terms: rows go in as given (a cosine index normalizes before), and `R`
/// preserves norms, distances and inner products, so a metric that held before holds after.
///
/// With an output dimension below the input's ([`with_output`](OpqRotation::with_output),
/// Faiss' `OPQMatrix(d, M, d2)`, factory `OPQ16_64`), `R` is `d_out × d` with orthonormal rows:
/// a projection that keeps the directions the rounds find best for PQ, starting from the
/// sample's principal directions. Distances and inner products are then those of the
/// projections.
#[derive(Debug, Clone, PartialEq)]
pub struct OpqRotation {
    dim: usize,
    d_out: usize,
    params: OpqParams,
    /// Row-major `d_out × d`; empty until trained.
    rotation: DenseMap,
    objective: Vec<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RotationMeta {
    transform: String,
    dim: usize,
    /// Absent (= `dim`) in files written before projections existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d_out: Option<usize>,
    params: OpqParams,
    trained: bool,
}

impl OpqRotation {
    /// An untrained rotation of `dim` dimensions for `params.pq.m` sub-spaces. Errors as
    /// [`OpqQuantizer::with_params`].
    pub fn new(dim: usize, params: OpqParams) -> Result<Self> {
        Self::with_output(dim, dim, params)
    }

    /// An untrained projection of `dim` dimensions to `d_out` (1 to `dim`) for `params.pq.m`
    /// sub-spaces of `d_out`. Errors as [`OpqQuantizer::with_params`] in `d_out` dimensions,
    /// and a `d_out` of 0 or above `dim`.
    pub fn with_output(dim: usize, d_out: usize, params: OpqParams) -> Result<Self> {
        if d_out == 0 || d_out > dim {
            return Err(Error::Parameter {
                name: "d_out",
                what: format!("OPQ maps {dim} dimensions to 1 to {dim}, not {d_out}"),
            });
        }
        check_linear_dim(dim, "OPQ's projection")?;
        check_opq_params(d_out, &params)?;
        Ok(OpqRotation { dim, d_out, params, rotation: DenseMap::default(), objective: Vec::new() })
    }

    /// The input dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The output dimension (`dim` for a rotation).
    pub fn d_out(&self) -> usize {
        self.d_out
    }

    /// The parameters.
    pub fn params(&self) -> &OpqParams {
        &self.params
    }

    /// Whether [`train`](OpqRotation::train) has run (or a trained rotation was read).
    pub fn is_trained(&self) -> bool {
        !self.rotation.is_empty()
    }

    /// `R`, row-major `d_out × d`; empty before training.
    pub fn matrix(&self) -> &[f32] {
        &self.rotation
    }

    /// The mean squared reconstruction error of the training sample at each round of the last
    /// [`train`](OpqRotation::train); empty after a load.
    pub fn training_objective(&self) -> &[f64] {
        &self.objective
    }

    /// Learns `R` from `sample` (row-major, at least `2^nbits` rows; sampled down to
    /// `max_train_points`). On error the previous rotation is kept.
    pub fn train(&mut self, sample: &[f32]) -> Result<()> {
        let x = prepare_rows("sample", sample, self.dim, Metric::L2)?;
        let x = x.as_slice();
        let n = x.len() / self.dim;
        let needed = 1usize << self.params.pq.nbits;
        if n < needed {
            return Err(Error::TooFewTrainingPoints { quantizer: self.name(), needed, got: n });
        }
        let (rotation, objective) = train_projection(x, self.dim, self.d_out, &self.params)?;
        self.rotation = DenseMap::new(rotation, self.dim);
        self.objective = objective;
        Ok(())
    }

    /// `R x` of every row of `x` (row-major, whole rows; not re-checked for finite values:
    /// callers pass rows they prepared).
    pub fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        if !self.is_trained() {
            return Err(Error::NotTrained { quantizer: self.name() });
        }
        if !x.len().is_multiple_of(self.dim) {
            return Err(vq_distance::Error::RaggedBuffer { what: "vectors", len: x.len(), dim: self.dim }.into());
        }
        Ok(self.rotation.apply(x))
    }

    /// `Rᵀ y` of every row of `y` (row-major, whole rows of `d_out`): the inverse of
    /// [`apply`](OpqRotation::apply), `R` being orthonormal (an index's `reconstruct` maps
    /// rotated vectors back with it); for a projection, the point of `R`'s row space that
    /// projects to `y`.
    pub fn apply_inverse(&self, y: &[f32]) -> Result<Vec<f32>> {
        if !self.is_trained() {
            return Err(Error::NotTrained { quantizer: self.name() });
        }
        if !y.len().is_multiple_of(self.d_out) {
            return Err(vq_distance::Error::RaggedBuffer { what: "vectors", len: y.len(), dim: self.d_out }.into());
        }
        let mut x = vec![0f32; y.len() / self.d_out * self.dim];
        for (xr, yr) in x.chunks_exact_mut(self.dim).zip(y.chunks_exact(self.d_out)) {
            project_back(&self.rotation, yr, xr);
        }
        Ok(x)
    }

    /// What the rotation is called in errors: `OPQ{m}`, or `OPQ{m}_{d_out}` for a projection.
    pub fn name(&self) -> String {
        match self.d_out < self.dim {
            true => format!("OPQ{}_{}", self.params.pq.m, self.d_out),
            false => format!("OPQ{}", self.params.pq.m),
        }
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.rotation.memory_bytes()
    }

    /// Writes `{prefix}.meta` (parameters) and `{prefix}.rotation` (`R`).
    pub fn write_sections(&self, writer: &mut ContainerWriter, prefix: &str) -> Result<()> {
        let meta = RotationMeta {
            transform: "opq".into(),
            dim: self.dim,
            d_out: (self.d_out < self.dim).then_some(self.d_out),
            params: self.params.clone(),
            trained: self.is_trained(),
        };
        writer.add_json(&format!("{prefix}.meta"), META_VERSION, &meta)?;
        writer.add_array(&format!("{prefix}.rotation"), ROTATION_VERSION, &self.rotation)?;
        Ok(())
    }

    /// Reads what [`write_sections`](OpqRotation::write_sections) wrote; a matrix that is not
    /// `d_out × dim`, finite and of orthonormal rows is `Corrupt`.
    pub fn read_sections(reader: &ContainerReader, prefix: &str) -> Result<Self> {
        let meta_name = format!("{prefix}.meta");
        let rot_name = format!("{prefix}.rotation");
        reader.check_versions(&[(&meta_name, META_VERSION), (&rot_name, ROTATION_VERSION)])?;
        let meta: RotationMeta = reader.json(&meta_name)?;
        if meta.transform != "opq" {
            return Err(corrupt(&meta_name, format!("holds a {:?} transform, not \"opq\"", meta.transform)));
        }
        let mut r = OpqRotation::with_output(meta.dim, meta.d_out.unwrap_or(meta.dim), meta.params)
            .map_err(|e| corrupt(&meta_name, e.to_string()))?;
        let rotation: &[f32] = reader.array(&rot_name)?;
        if meta.trained == rotation.is_empty() {
            return Err(corrupt(
                &rot_name,
                "the rotation and the meta section disagree on whether it is trained".into(),
            ));
        }
        if meta.trained {
            check_projection(&rot_name, rotation, r.dim, r.d_out)?;
            r.rotation = DenseMap::new(rotation.to_vec(), r.dim);
        }
        Ok(r)
    }
}
