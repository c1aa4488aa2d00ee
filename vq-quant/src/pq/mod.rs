//! Product quantization (Jégou, Douze & Schmid, "Product quantization for nearest neighbor
//! search", TPAMI 2011) and OPQ ([`OpqQuantizer`], Ge et al. 2013).
//!
//! A vector of `d` components is cut into `m` sub-vectors of `d / m` components; each is
//! replaced by the id of its nearest centroid in its own codebook of `2^nbits` centroids
//! (trained by k-means on the sub-vectors of a sample). A code holds the `m` ids as a
//! little-endian bit stream: id `j` occupies bits `j·nbits .. (j+1)·nbits`, bit `i` of the code
//! being bit `i % 8` of byte `i / 8` (Faiss' `PQEncoderGeneric` layout), so at 8 bits id `j` is
//! byte `j` and at 4 bits two ids share a byte, the even one in the low nibble.
//!
//! A query is scored against codes by asymmetric distance: one `m × 2^nbits` table of the
//! query's sub-distances to every centroid, then one table look-up per sub-quantizer and code
//! (see [`PqScorer`]). Two codes are compared with a symmetric table of centroid-to-centroid
//! distances, built on first use.

mod aniso;
mod lut;
mod opq;
mod residual;

use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_cluster::{Init, KMeans};
use vq_distance::{Metric, nearest_centroids};
use vq_io::{ContainerReader, ContainerWriter};

use crate::sections::{self, corrupt};
use crate::{CodeScorer, Error, Quantizer, Result, prepare_row_into, prepare_rows};

pub use opq::{OpqParams, OpqQuantizer, OpqRotation, OpqScorer};

/// Rows encoded per parallel task.
const ENCODE_CHUNK: usize = 4096;

/// Smallest and largest bits per sub-quantizer id.
const NBITS_RANGE: std::ops::RangeInclusive<u32> = 4..=8;

fn default_iterations() -> usize {
    25
}
fn default_seed() -> u64 {
    1234
}
fn default_max_points_per_centroid() -> usize {
    256
}

/// How a [`ProductQuantizer`] is shaped and trained. The training fields and defaults are
/// Faiss' (`ProductQuantizer::cp`: 25 k-means iterations, at most 256 points per centroid, so
/// 65,536 sampled sub-vectors per codebook at 8 bits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PqParams {
    /// Number of sub-quantizers; must divide the dimension.
    pub m: usize,
    /// Bits per sub-quantizer id, 4 to 8 (`2^nbits` centroids per codebook).
    #[serde(default = "default_nbits")]
    pub nbits: u32,
    /// k-means iterations per codebook.
    #[serde(default = "default_iterations", alias = "niter")]
    pub iterations: usize,
    /// Seed of k-means' sampling and initialization (the same for every codebook, as in Faiss).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Training sets larger than `2^nbits ×` this are sampled down to it (per codebook).
    #[serde(default = "default_max_points_per_centroid")]
    pub max_points_per_centroid: usize,
    /// Score-aware training and encoding (ScaNN's `anisotropic_quantization_threshold` `T`,
    /// 0.2 for unit vectors): the loss weighs the error along each datapoint by
    /// `η = (d − 1)·(T²/‖x‖²)/(1 − T²/‖x‖²)` against the error across it (Guo et al. 2020; see
    /// [`ProductQuantizer::train_with_directions`]). `None` (the default): plain
    /// reconstruction loss (k-means codebooks, nearest-centroid codes). Meant for inner-product
    /// and cosine search.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "anisotropic_quantization_threshold")]
    pub anisotropic_threshold: Option<f32>,
}

fn default_nbits() -> u32 {
    8
}

impl PqParams {
    /// `m` sub-quantizers of `nbits` bits, Faiss' training defaults.
    pub fn new(m: usize, nbits: u32) -> Self {
        PqParams {
            m,
            nbits,
            iterations: default_iterations(),
            seed: default_seed(),
            max_points_per_centroid: default_max_points_per_centroid(),
            anisotropic_threshold: None,
        }
    }
}

/// Product quantizer: `m` codebooks of `2^nbits` centroids over `d / m`-dimensional
/// sub-vectors; codes of `ceil(m · nbits / 8)` bytes.
///
/// Errors at construction: `m = 0` or not dividing `dim`, `nbits` outside `4..=8`. Training
/// needs at least `2^nbits` vectors ([`Error::TooFewTrainingPoints`]); fewer than about
/// `39 · 2^nbits` train poor codebooks (Faiss prints a warning below that, vq-cluster's
/// `min_points_per_centroid`; vq accepts them silently). Encoding, decoding or scoring before
/// training gives [`Error::NotTrained`].
///
/// Code layout: the `m` ids as a little-endian bit stream, id `j` in bits
/// `j·nbits .. (j+1)·nbits`, bit `i` of the code being bit `i % 8` of byte `i / 8` (Faiss'
/// `PQEncoderGeneric` layout): at 8 bits id `j` is byte `j`; at 4 bits two ids share a byte,
/// the even one in the low nibble ([`pack_index`], [`unpack_index`]).
///
/// Keys (smaller is better): L2 — the squared distance from the query to the reconstruction;
/// inner product — minus the inner product with it; cosine — minus the inner product of the
/// normalized query with the reconstruction of the normalized vector (codebooks are trained on
/// normalized vectors).
///
/// ```
/// use vq_distance::Metric;
/// use vq_quant::{FlatCodes, ProductQuantizer, Quantizer};
/// let dim = 8;
/// let data: Vec<f32> = (0..64 * dim).map(|i| ((i * 37) % 101) as f32).collect();
/// let mut index = FlatCodes::new(ProductQuantizer::new(dim, Metric::L2, 2, 4)?);
/// index.train(&data)?;
/// index.add(&data)?;
/// assert_eq!(index.quantizer().name(), "PQ2x4");
/// assert_eq!(index.quantizer().code_size(), 1);
/// let hits = index.search(&data[..dim], 3)?;
/// assert_eq!(hits.get(0).unwrap().0.len(), 3);
/// # Ok::<(), vq_quant::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ProductQuantizer {
    dim: usize,
    metric: Metric,
    params: PqParams,
    dsub: usize,
    ksub: usize,
    code_size: usize,
    /// `m × ksub × dsub`: centroid `c` of codebook `j` at `(j · ksub + c) · dsub`. Empty until
    /// trained.
    centroids: Vec<f32>,
    /// The same, transposed per codebook (`m × dsub × ksub`), for the table build.
    centroids_t: Vec<f32>,
    /// Per codebook, the `ksub × ksub` keys between its centroids (symmetric distance).
    sdc: OnceLock<Vec<f32>>,
    kernels: lut::Kernels,
}

impl ProductQuantizer {
    /// An untrained quantizer of `m` sub-quantizers of `nbits` bits, Faiss' training defaults.
    pub fn new(dim: usize, metric: Metric, m: usize, nbits: u32) -> Result<Self> {
        Self::with_params(dim, metric, PqParams::new(m, nbits))
    }

    /// An untrained quantizer with these parameters.
    pub fn with_params(dim: usize, metric: Metric, params: PqParams) -> Result<Self> {
        check_params(dim, &params)?;
        let ksub = 1usize << params.nbits;
        let code_size = (params.m * params.nbits as usize).div_ceil(8);
        Ok(ProductQuantizer {
            dim,
            metric,
            dsub: dim / params.m,
            ksub,
            code_size,
            centroids: Vec::new(),
            centroids_t: Vec::new(),
            sdc: OnceLock::new(),
            kernels: lut::Kernels::new(params.m, params.nbits),
            params,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &PqParams {
        &self.params
    }

    /// Number of sub-quantizers.
    pub fn m(&self) -> usize {
        self.params.m
    }

    /// Bits per sub-quantizer id.
    pub fn nbits(&self) -> u32 {
        self.params.nbits
    }

    /// Centroids per codebook (`2^nbits`).
    pub fn ksub(&self) -> usize {
        self.ksub
    }

    /// Components per sub-vector (`dim / m`).
    pub fn dsub(&self) -> usize {
        self.dsub
    }

    /// The codebooks, `m × 2^nbits × dsub` values (centroid `c` of sub-quantizer `j` starts at
    /// `(j · 2^nbits + c) · dsub`); empty before training.
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    /// Replaces the codebooks (`m × 2^nbits × dsub` finite values, each `dsub`-wide centroid
    /// within [`MAX_SQUARED_NORM`](vq_distance::MAX_SQUARED_NORM)), as if trained.
    pub fn set_centroids(&mut self, centroids: Vec<f32>) -> Result<()> {
        let expected = self.dim * self.ksub;
        if centroids.len() != expected {
            return Err(Error::Parameter {
                name: "centroids",
                what: format!("{} values, expected m × 2^nbits × dsub = {expected}", centroids.len()),
            });
        }
        // The same check as every input: finite, and small enough that no distance to an
        // accepted vector overflows f32 (so encoding always finds a nearest centroid).
        vq_distance::validate_rows("centroids", &centroids, self.dsub, Metric::L2)?;
        self.centroids_t = transpose_codebooks(&centroids, self.params.m, self.ksub, self.dsub);
        self.centroids = centroids;
        self.sdc = OnceLock::new();
        Ok(())
    }

    fn not_trained(&self) -> Error {
        Error::NotTrained { quantizer: self.name() }
    }

    /// Trains on `rows` (what the codes approximate: residuals of an inverted file) whose
    /// datapoints are `directions` (the full vectors, prepared: normalized for cosine; same
    /// shape). With [`PqParams::anisotropic_threshold`] the score-aware loss protects the
    /// error along each direction (the error of `c + r̂` is the error of `r̂`); without, this
    /// is [`Quantizer::train`] on `rows`.
    pub fn train_with_directions(&mut self, rows: &[f32], directions: &[f32]) -> Result<()> {
        let Some(t) = self.params.anisotropic_threshold else { return self.train(rows) };
        let r = prepare_rows("sample", rows, self.dim, self.metric)?.into_cow();
        vq_distance::validate_rows("directions", directions, self.dim, Metric::L2)?;
        self.train_aniso_prepared(&r, directions, t)
    }

    /// Encodes `rows` whose datapoints are `directions` (see
    /// [`train_with_directions`](ProductQuantizer::train_with_directions)); without a threshold,
    /// [`Quantizer::encode`] of `rows`.
    pub fn encode_with_directions(&self, rows: &[f32], directions: &[f32], codes: &mut [u8]) -> Result<()> {
        let Some(t) = self.params.anisotropic_threshold else { return self.encode(rows, codes) };
        self.check_trained()?;
        let r = prepare_rows("vectors", rows, self.dim, self.metric)?.into_cow();
        vq_distance::validate_rows("directions", directions, self.dim, Metric::L2)?;
        self.encode_aniso_prepared(&r, directions, t, codes)
    }

    fn check_trained(&self) -> Result<()> {
        if self.centroids.is_empty() { Err(self.not_trained()) } else { Ok(()) }
    }

    fn codebook(&self, j: usize) -> &[f32] {
        &self.centroids[j * self.ksub * self.dsub..][..self.ksub * self.dsub]
    }

    /// Trains the `m` codebooks on `x` (already prepared rows), in parallel over sub-quantizers.
    /// `init` gives starting centroids (a hot start, as OPQ's inner iterations use).
    fn fit_codebooks(&self, x: &[f32], init: Option<&[f32]>, iterations: usize, max_ppc: usize) -> Result<Vec<f32>> {
        let (m, dsub, ksub, dim) = (self.params.m, self.dsub, self.ksub, self.dim);
        let n = x.len() / dim;
        if n < ksub {
            return Err(Error::TooFewTrainingPoints { quantizer: self.name(), needed: ksub, got: n });
        }
        let books = (0..m)
            .into_par_iter()
            .map(|j| {
                let mut sub = vec![0f32; n * dsub];
                for (dst, row) in sub.chunks_exact_mut(dsub).zip(x.chunks_exact(dim)) {
                    dst.copy_from_slice(&row[j * dsub..][..dsub]);
                }
                let mut km =
                    KMeans::new(ksub).iterations(iterations).seed(self.params.seed).max_points_per_centroid(max_ppc);
                if let Some(init) = init {
                    km = km.init(Init::Centroids(init[j * ksub * dsub..][..ksub * dsub].to_vec()));
                }
                Ok(km.fit(&sub, dsub)?.into_centroids())
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(books.concat())
    }

    /// Encodes prepared rows (validated, normalized for cosine) into `codes`.
    fn encode_prepared(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        let (dim, cs) = (self.dim, self.code_size);
        codes
            .par_chunks_mut(ENCODE_CHUNK * cs)
            .zip(x.par_chunks(ENCODE_CHUNK * dim))
            .try_for_each(|(codes, x)| self.encode_chunk(x, codes))
    }

    fn encode_chunk(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        let (dim, dsub, cs, nbits) = (self.dim, self.dsub, self.code_size, self.params.nbits);
        let n = x.len() / dim;
        codes.fill(0);
        let mut sub = vec![0f32; n * dsub];
        let (mut labels, mut scores) = (vec![0u32; n], vec![0f32; n]);
        for j in 0..self.params.m {
            for (dst, row) in sub.chunks_exact_mut(dsub).zip(x.chunks_exact(dim)) {
                dst.copy_from_slice(&row[j * dsub..][..dsub]);
            }
            // The blocked ‖x‖² − 2x·c + ‖c‖² kernel. Rows and centroids passed the shared
            // checks (`prepare_rows`, `set_centroids` or training on such rows), so every
            // distance is finite and each row gets a label.
            nearest_centroids(&sub, self.codebook(j), dsub, Metric::L2, &mut labels, &mut scores)?;
            for (row, (code, &label)) in codes.chunks_exact_mut(cs).zip(&labels).enumerate() {
                if label as usize >= self.ksub {
                    // Unreachable for checked inputs; refuse rather than write a bad index.
                    let squared_norm = x[row * dim..][..dim].iter().map(|&v| f64::from(v) * f64::from(v)).sum();
                    return Err(vq_distance::Error::NormOverflow { what: "vectors", row, squared_norm }.into());
                }
                pack_index(code, j, nbits, label);
            }
        }
        Ok(())
    }

    /// Reconstructs one code into `out` (`dim` values).
    fn decode_one(&self, code: &[u8], out: &mut [f32]) {
        let (dsub, ksub, nbits) = (self.dsub, self.ksub, self.params.nbits);
        for (j, dst) in out.chunks_exact_mut(dsub).enumerate() {
            let c = unpack_index(code, j, nbits) as usize;
            dst.copy_from_slice(&self.centroids[(j * ksub + c) * dsub..][..dsub]);
        }
    }

    /// The look-up table of a prepared query into `table` (`m × ksub`).
    fn fill_table(&self, query: &[f32], table: &mut [f32]) {
        lut::build_table(self.metric, query, &self.centroids_t, self.params.m, self.dsub, self.ksub, table);
    }

    /// The scorer of a query already prepared (validated; normalized for cosine).
    fn scorer_prepared(&self, query: &[f32]) -> PqScorer<'_> {
        let mut table = vec![0f32; self.params.m * self.ksub];
        self.fill_table(query, &mut table);
        PqScorer { pq: self, table }
    }

    /// The key between centroids `a` and `b` of sub-quantizer `j` (one symmetric-table entry).
    #[inline]
    fn centroid_key(&self, j: usize, a: usize, b: usize) -> f32 {
        let (book, dsub) = (self.codebook(j), self.dsub);
        let (ca, cb) = (&book[a * dsub..][..dsub], &book[b * dsub..][..dsub]);
        match self.metric {
            Metric::L2 => ca.iter().zip(cb).map(|(x, y)| (x - y) * (x - y)).sum(),
            Metric::InnerProduct | Metric::Cosine => -ca.iter().zip(cb).map(|(x, y)| x * y).sum::<f32>(),
        }
    }

    /// The symmetric table, built on first use, or `None` when it would hold more than
    /// [`SDC_MAX_ENTRIES`] (then each entry is computed from the codebooks when needed).
    fn sdc_table(&self) -> Option<&[f32]> {
        let (m, ksub) = (self.params.m, self.ksub);
        let entries = m.checked_mul(ksub)?.checked_mul(ksub)?;
        if entries > SDC_MAX_ENTRIES {
            return None;
        }
        let table = self.sdc.get_or_init(|| {
            let mut t = vec![0f32; entries];
            t.par_chunks_mut(ksub * ksub).enumerate().for_each(|(j, tj)| {
                for (a, row) in tj.chunks_exact_mut(ksub).enumerate() {
                    for (b, v) in row.iter_mut().enumerate() {
                        *v = self.centroid_key(j, a, b);
                    }
                }
            });
            t
        });
        Some(table)
    }
}

/// The most entries the symmetric table may hold (4 Mi floats, 16 MiB: PQ64 at 8 bits). Its
/// size is `m · 4^nbits`, unbounded by the codebooks it is made from (a 262 KB PQ256x8 file
/// would ask for 64 MiB), so above this the entries are computed from the codebooks per call:
/// the same values, at `dsub` operations instead of one look-up each.
pub const SDC_MAX_ENTRIES: usize = 1 << 22;

fn check_params(dim: usize, p: &PqParams) -> Result<()> {
    // The upper bound keeps every size derived from the parameters (`m · nbits`, `dim · 2^nbits`)
    // far from overflow, also for parameters read from a hostile file.
    if dim == 0 || dim > vq_io::MAX_DIM {
        return Err(Error::Parameter { name: "dim", what: format!("{dim} is outside 1..={}", vq_io::MAX_DIM) });
    }
    if p.m == 0 || !dim.is_multiple_of(p.m) {
        return Err(Error::Parameter { name: "m", what: format!("{} does not divide the dimension {dim}", p.m) });
    }
    if !NBITS_RANGE.contains(&p.nbits) {
        return Err(Error::Parameter { name: "nbits", what: format!("{} is outside 4..=8", p.nbits) });
    }
    if p.iterations == 0 {
        return Err(Error::Parameter { name: "iterations", what: "must be at least 1".into() });
    }
    if p.max_points_per_centroid == 0 {
        return Err(Error::Parameter { name: "max_points_per_centroid", what: "must be at least 1".into() });
    }
    if let Some(t) = p.anisotropic_threshold
        && !(t.is_finite() && t >= 0.0)
    {
        return Err(Error::Parameter {
            name: "anisotropic_threshold",
            what: format!("{t} is not a finite threshold of at least 0"),
        });
    }
    Ok(())
}

/// `m × ksub × dsub` → `m × dsub × ksub`.
fn transpose_codebooks(c: &[f32], m: usize, ksub: usize, dsub: usize) -> Vec<f32> {
    let mut t = vec![0f32; c.len()];
    for j in 0..m {
        let (src, dst) = (&c[j * ksub * dsub..][..ksub * dsub], &mut t[j * ksub * dsub..][..ksub * dsub]);
        for (k, cent) in src.chunks_exact(dsub).enumerate() {
            for (d, &v) in cent.iter().enumerate() {
                dst[d * ksub + k] = v;
            }
        }
    }
    t
}

/// Writes id `index` of sub-quantizer `j` into `code` (whose bits for it must be zero), in the
/// little-endian bit-stream layout of [`ProductQuantizer`] codes. Bits of `index` above `nbits`
/// are dropped.
#[inline]
pub fn pack_index(code: &mut [u8], j: usize, nbits: u32, index: u32) {
    let bit = j * nbits as usize;
    let (byte, shift) = (bit / 8, bit % 8);
    let v = (index & ((1u32 << nbits) - 1)) << shift;
    code[byte] |= v as u8;
    if shift + nbits as usize > 8 {
        code[byte + 1] |= (v >> 8) as u8;
    }
}

/// Reads id `j` of a code written by [`pack_index`].
#[inline]
pub fn unpack_index(code: &[u8], j: usize, nbits: u32) -> u32 {
    let bit = j * nbits as usize;
    let (byte, shift) = (bit / 8, bit % 8);
    let mut v = u32::from(code[byte]) >> shift;
    if shift + nbits as usize > 8 {
        v |= u32::from(code[byte + 1]) << (8 - shift);
    }
    v & ((1u32 << nbits) - 1)
}

/// A query prepared for asymmetric distance to [`ProductQuantizer`] codes: its `m × 2^nbits`
/// table of sub-distances (L2: squared sub-distances; inner product and cosine: negated
/// sub-dot-products).
///
/// [`CodeScorer::distances`] sums table entries over a contiguous block of codes, four codes
/// at a time so that their loads overlap, with a kernel chosen once per quantizer (8 bits: one
/// byte per id, unrolled for `m` = 8, 16, 32, 64; fewer bits: eight ids at a time from one
/// 64-bit word). Every path adds the entries in one fixed order — even sub-quantizers into one
/// sum, odd ones into another, then the two — so [`CodeScorer::distance`] on one code gives
/// bit-for-bit the same key.
#[derive(Debug, Clone)]
pub struct PqScorer<'a> {
    pq: &'a ProductQuantizer,
    table: Vec<f32>,
}

impl<'a> PqScorer<'a> {
    /// The look-up table: `m` rows of `2^nbits` keys, row `j` for sub-quantizer `j`.
    pub fn table(&self) -> &[f32] {
        &self.table
    }

    /// The quantizer whose codes this scores.
    pub fn quantizer(&self) -> &'a ProductQuantizer {
        self.pq
    }
}

impl CodeScorer for PqScorer<'_> {
    #[inline]
    fn distance(&self, code: &[u8]) -> f32 {
        if code.len() < self.pq.code_size {
            return f32::NAN;
        }
        (self.pq.kernels.one)(&self.table, code)
    }

    fn distances(&self, codes: &[u8], out: &mut [f32]) {
        (self.pq.kernels.many)(&self.table, codes, self.pq.code_size, out);
    }
}

/// The parameters as saved: `{prefix}.meta`.
#[derive(Debug, Serialize, Deserialize)]
struct PqMeta {
    quantizer: String,
    dim: usize,
    metric: String,
    params: PqParams,
    trained: bool,
}

const META_VERSION: u32 = 1;
const CENTROIDS_VERSION: u32 = 1;

impl Quantizer for ProductQuantizer {
    type Scorer<'a> = PqScorer<'a>;

    fn name(&self) -> String {
        format!("PQ{}x{}", self.params.m, self.params.nbits)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn code_size(&self) -> usize {
        self.code_size
    }

    fn is_trained(&self) -> bool {
        !self.centroids.is_empty()
    }

    fn train(&mut self, sample: &[f32]) -> Result<()> {
        let x = prepare_rows("sample", sample, self.dim, self.metric)?.into_cow();
        if let Some(t) = self.params.anisotropic_threshold {
            return self.train_aniso_prepared(&x, &x, t);
        }
        let books = self.fit_codebooks(&x, None, self.params.iterations, self.params.max_points_per_centroid)?;
        self.set_centroids(books)
    }

    fn encode(&self, vectors: &[f32], codes: &mut [u8]) -> Result<()> {
        self.check_trained()?;
        let x = prepare_rows("vectors", vectors, self.dim, self.metric)?.into_cow();
        let expected = x.len() / self.dim * self.code_size;
        if codes.len() != expected {
            return Err(Error::CodeLength { what: "codes", len: codes.len(), expected });
        }
        match self.params.anisotropic_threshold {
            Some(t) => self.encode_aniso_prepared(&x, &x, t, codes),
            None => self.encode_prepared(&x, codes),
        }
    }

    fn decode(&self, codes: &[u8], out: &mut [f32]) -> Result<()> {
        self.check_trained()?;
        let cs = self.code_size;
        if !codes.len().is_multiple_of(cs) {
            return Err(Error::CodeLength { what: "codes", len: codes.len(), expected: codes.len() / cs * cs });
        }
        let n = codes.len() / cs;
        if out.len() != n * self.dim {
            return Err(vq_distance::Error::OutputLength { what: "out", got: out.len(), expected: n * self.dim }.into());
        }
        out.par_chunks_mut(self.dim).zip(codes.par_chunks(cs)).for_each(|(o, c)| self.decode_one(c, o));
        Ok(())
    }

    fn scorer(&self, query: &[f32]) -> Result<PqScorer<'_>> {
        self.check_trained()?;
        let mut normalized = Vec::new();
        let q = prepare_row_into("query", query, self.dim, self.metric, &mut normalized)?;
        Ok(self.scorer_prepared(q))
    }

    /// The symmetric distance: the key between the two reconstructions, summed from a table of
    /// centroid-to-centroid keys built on first use (`m × 4^nbits` floats: 4 MiB at m = 16,
    /// 8 bits; above [`SDC_MAX_ENTRIES`] no table, the same keys computed per call). NaN when
    /// untrained or when a code is shorter than `code_size()`.
    fn code_distance(&self, a: &[u8], b: &[u8]) -> f32 {
        let cs = self.code_size;
        if self.centroids.is_empty() || a.len() < cs || b.len() < cs {
            return f32::NAN;
        }
        let (ksub, nbits) = (self.ksub, self.params.nbits);
        let sdc = self.sdc_table();
        let (mut s0, mut s1) = (0f32, 0f32);
        for j in 0..self.params.m {
            let (x, y) = (unpack_index(a, j, nbits) as usize, unpack_index(b, j, nbits) as usize);
            let v = match sdc {
                Some(t) => t[(j * ksub + x) * ksub + y],
                None => self.centroid_key(j, x, y),
            };
            if j % 2 == 0 {
                s0 += v;
            } else {
                s1 += v;
            }
        }
        s0 + s1
    }

    fn decoded_norm_sq_bound(&self) -> Option<f64> {
        // A code picks one centroid per codebook (every index below `ksub` is valid), so the
        // decoded norm² is at most the sum of each codebook's largest centroid norm².
        if !self.is_trained() {
            return None;
        }
        let mut bound = 0.0f64;
        for codebook in self.centroids.chunks_exact(self.ksub * self.dsub) {
            let mut largest = 0.0f64;
            for centroid in codebook.chunks_exact(self.dsub) {
                let norm: f64 = centroid.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
                if !norm.is_finite() {
                    return None;
                }
                largest = largest.max(norm);
            }
            bound += largest;
        }
        Some(bound)
    }

    fn memory_bytes(&self) -> usize {
        let sdc = self.sdc.get().map_or(0, |t| t.capacity());
        (self.centroids.capacity() + self.centroids_t.capacity() + sdc) * size_of::<f32>()
    }

    fn write_sections(&self, writer: &mut ContainerWriter, prefix: &str) -> Result<()> {
        let meta = PqMeta {
            quantizer: "pq".into(),
            dim: self.dim,
            metric: self.metric.name().into(),
            params: self.params.clone(),
            trained: self.is_trained(),
        };
        writer.add_json(&format!("{prefix}.meta"), META_VERSION, &meta)?;
        writer.add_array(&format!("{prefix}.centroids"), CENTROIDS_VERSION, &self.centroids)?;
        Ok(())
    }

    fn read_sections(reader: &ContainerReader, prefix: &str) -> Result<Self> {
        let meta_name = format!("{prefix}.meta");
        let cent_name = format!("{prefix}.centroids");
        reader.check_versions(&[(&meta_name, META_VERSION), (&cent_name, CENTROIDS_VERSION)])?;
        let meta: PqMeta = reader.json(&meta_name)?;
        if meta.quantizer != "pq" {
            return Err(corrupt(&meta_name, format!("holds a {:?} quantizer, not \"pq\"", meta.quantizer)));
        }
        let metric = sections::metric(&meta_name, &meta.metric)?;
        let mut pq = ProductQuantizer::with_params(meta.dim, metric, meta.params)
            .map_err(|e| corrupt(&meta_name, e.to_string()))?;
        let centroids: &[f32] = reader.array(&cent_name)?;
        if meta.trained {
            // `dim · ksub` cannot overflow a length that exists: compare before any allocation.
            let expected = meta.dim.checked_mul(pq.ksub);
            if expected != Some(centroids.len()) {
                return Err(corrupt(
                    &cent_name,
                    format!(
                        "{} values, expected dim × 2^nbits = {}",
                        centroids.len(),
                        meta.dim.saturating_mul(pq.ksub)
                    ),
                ));
            }
            pq.set_centroids(centroids.to_vec()).map_err(|e| corrupt(&cent_name, e.to_string()))?;
        } else if !centroids.is_empty() {
            return Err(corrupt(&cent_name, "centroids saved for an untrained quantizer".into()));
        }
        Ok(pq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_every_width() {
        for nbits in 1..=8u32 {
            for m in 1..20usize {
                let ids: Vec<u32> = (0..m).map(|j| (j as u32).wrapping_mul(2_654_435_761) >> (32 - nbits)).collect();
                let mut code = vec![0u8; (m * nbits as usize).div_ceil(8)];
                for (j, &id) in ids.iter().enumerate() {
                    pack_index(&mut code, j, nbits, id);
                }
                let back: Vec<u32> = (0..m).map(|j| unpack_index(&code, j, nbits)).collect();
                assert_eq!(back, ids, "nbits {nbits} m {m}");
            }
        }
        // The documented layout: at 4 bits the even id is the low nibble.
        let mut code = [0u8; 1];
        pack_index(&mut code, 0, 4, 0x3);
        pack_index(&mut code, 1, 4, 0xa);
        assert_eq!(code, [0xa3]);
    }

    #[test]
    fn parameters_are_checked() {
        assert!(matches!(ProductQuantizer::new(10, Metric::L2, 3, 8), Err(Error::Parameter { name: "m", .. })));
        assert!(matches!(ProductQuantizer::new(8, Metric::L2, 0, 8), Err(Error::Parameter { name: "m", .. })));
        assert!(matches!(ProductQuantizer::new(8, Metric::L2, 2, 3), Err(Error::Parameter { name: "nbits", .. })));
        assert!(matches!(ProductQuantizer::new(8, Metric::L2, 2, 9), Err(Error::Parameter { name: "nbits", .. })));
        let pq = ProductQuantizer::new(12, Metric::L2, 4, 6).unwrap();
        assert_eq!((pq.code_size(), pq.dsub(), pq.ksub(), pq.name()), (3, 3, 64, "PQ4x6".to_string()));
    }
}
