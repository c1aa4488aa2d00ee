//! RaBitQ (Gao and Long, "RaBitQ: Quantizing High-Dimensional Vectors with a Theoretical
//! Error Bound for Approximate Nearest Neighbor Search", SIGMOD 2024): one bit per dimension
//! and three floats per vector, with an unbiased estimate of inner products (Faiss'
//! `IndexRaBitQ` / `IndexIVFRaBitQ`, factory `RaBitQ`).
//!
//! A vector `x` is coded relative to a centre `c` (the sample's mean, or an inverted list's
//! centroid): `r = x − c` is rotated by a fixed random orthogonal `P` (drawn once from a
//! seed, saved with the quantizer) and its signs kept, `b_j = [(P r)_j > 0]`. Writing
//! `ō = (2b − 1)/√d` (a unit vector), the paper's estimator of `⟨r, v⟩` for any `v` is
//! `‖r‖² / ℓ · ⟨ō, P v⟩` with `ℓ = ⟨ō, P r⟩ = Σ|(P r)_j| / √d` (the length of `r` along
//! `Pᵀ ō`); its error falls as `1/√d` and does not depend on the data's distribution, which
//! the random rotation buys (Faiss' `IndexRaBitQ` leaves the rotation to the caller, an
//! `RR{d}` transform in front; vq always rotates).
//!
//! vq estimates `⟨r, q − c⟩` (the residual of the query, as the paper and Faiss do) but
//! folds every term that depends only on the vector and its centre into the code, so that a
//! query's scan needs the rotated query `P q` alone, once for every list: with `s = Σ_{b_j=1}
//! (P q)_j`, the key of a code is `offset + a − w · (2 s − Σ_j (P q)_j)` where
//!
//! - L2: `‖x − q‖² = ‖r‖² + ‖q − c‖² − 2⟨r, q − c⟩`, so `offset = ‖q − c‖²`,
//!   `w = 2m/√d`, `a = ‖r‖² − 2 m t`;
//! - inner product: `⟨x, q⟩ = ⟨c, q⟩ + ⟨r, c⟩ + ⟨r, q − c⟩` negated, so `offset = −⟨q, c⟩`,
//!   `w = m/√d`, `a = −⟨r, c⟩ − m t`;
//!
//! with `m = ‖r‖² / ℓ` and `t = (Σ_j (P c)_j − 2 Σ_{b_j=1} (P c)_j) / √d`. The offset is an
//! inverted file's coarse key of the list. An estimate, not a distance: an L2 key can come out
//! below 0 for a vector very near the query (a range search at radius 0 may return it), as an
//! inner product can exceed the true one. `s` is summed exactly in the query (no query
//! quantization), by masked adds at AVX-512 and a per-query table of each byte's 256 partial
//! sums elsewhere ([`bits`]).
//!
//! With `B` bits per dimension (extended RaBitQ, Gao et al., SIGMOD 2025; Faiss'
//! `RaBitQ{B}`) the code's direction is `ō = o / ‖o‖` for odd integers `o_j` up to
//! `±(2^B − 1)` whose signs are the one-bit code's and whose magnitudes are chosen per vector to
//! bring `ō` closest to `P r` ([`levels`]); the estimator and the folding are the same with
//! `√d` replaced by `‖o‖`, and `s` sums the query over every bit plane, each weighted by its
//! power of two (see `encode_rotated`).

mod bits;
mod bounds;
mod levels;

use std::cell::{Cell, RefCell};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_distance::{Kernels, Metric};
use vq_io::{ContainerReader, ContainerWriter};

use self::bits::{SetSums, subset_sums};
use self::bounds::SumBounds;
use self::levels::LevelSearch;
use crate::linear::{
    DenseMap, LINEAR_MAX_DIM, check_finite, check_linear_dim, check_projection, project_back, random_rotation,
    to_row_major,
};
use crate::sections::{self, corrupt};
use crate::{CodeScorer, Error, Quantizer, Result, prepare_row_into, prepare_rows};

/// The seed of every RaBitQ rotation: codes of the same dimension are comparable between
/// indexes (merges check the saved matrices, not the seed).
const ROTATION_SEED: u64 = 0x5241_4269_7451; // "RaBitQ"
/// Floats after the bits of a code: `a`, `w` and `ℓ`.
const FACTORS: usize = 3;
/// Floats after them in a multi-bit code: the sign bits' own one-bit factors `a₁`, `w₁` and
/// their key's error bound per unit of `‖q − c‖`, `ε₁` (the first stage of a flat scan).
const FIRST_STAGE_FACTORS: usize = 3;
/// The paper's confidence: an estimate's error stays below `ε₀` of its standard deviations
/// (Gao and Long's Theorem 3.2; Faiss and the authors' library take 1.9 too).
const FIRST_STAGE_EPSILON: f64 = 1.9;
/// Flat scans of multi-bit codes below this dimension skip the first stage: the one-bit
/// bound is an asymptotic one, loose (and so rarely pruning) in few dimensions.
const FIRST_STAGE_MIN_DIM: usize = 64;
/// Rows encoded per parallel task.
const ENCODE_CHUNK: usize = 256;
/// Bytes of residuals a flat quantizer's encode holds at once (rows of many parallel tasks).
const RESIDUAL_BLOCK_BYTES: usize = 4 << 20;
/// The largest dimension: the rotation is dense, `d × d` (64 MiB and about 10 s to draw at
/// 4,096; 0.6 s at 1,536), as every dense map's ([`LINEAR_MAX_DIM`]).
pub const RABITQ_MAX_DIM: usize = LINEAR_MAX_DIM;
/// The most bits per dimension (Faiss' limit too): 9 bits at d = 4,096 are 4.5 KiB a code.
pub const RABITQ_MAX_BITS: u8 = 9;
/// One-bit quantizers' meta; multi-bit ones write [`META_VERSION_BITS`] (with `bits`), which
/// readers from before multi-bit codes refuse by its version instead of misreading the codes,
/// and residual multi-bit ones whose codes carry the sign bits' factors
/// [`META_VERSION_SIGN_FACTORS`] (their codes are 12 bytes longer than version 2 readers expect).
const META_VERSION: u32 = 1;
const META_VERSION_BITS: u32 = 2;
const META_VERSION_SIGN_FACTORS: u32 = 3;
const ARRAY_VERSION: u32 = 1;

/// One bit per dimension plus three floats (`⌈d/8⌉ + 12` bytes), or `bits` and six floats (three
/// for residuals; [`RaBitQuantizer::with_bits`]), scored by RaBitQ's estimate.
///
/// Two kinds: [`RaBitQuantizer::new`] codes vectors about the training sample's mean (Faiss'
/// `IndexRaBitQ`; [`Quantizer::train`] learns the mean), [`RaBitQuantizer::for_residuals`]
/// codes residuals about centres given per row ([`RaBitQuantizer::encode_about`]: an inverted
/// file's centroids) and has nothing to learn. Cosine quantizers normalize vectors and
/// queries and score by the inner product.
///
/// ```
/// use vq_distance::Metric;
/// use vq_quant::{CodeScorer, Quantizer, RaBitQuantizer};
///
/// let data: Vec<f32> = (0..64 * 200).map(|i| ((i * 37 % 101) as f32).sin()).collect();
/// let mut q = RaBitQuantizer::new(64, Metric::L2)?;
/// q.train(&data)?;
/// let mut codes = vec![0u8; 200 * q.code_size()];
/// q.encode(&data, &mut codes)?;
/// assert_eq!(q.code_size(), 8 + 12);
/// let scorer = q.scorer(&data[..64])?;
/// let mut keys = vec![0f32; 200];
/// scorer.distances(&codes, &mut keys);
/// assert!(keys.iter().all(|k| k.is_finite()));
/// # Ok::<(), vq_quant::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RaBitQuantizer {
    dim: usize,
    metric: Metric,
    /// Codes vectors about the trained mean (`true`) or residuals about given centres.
    centered: bool,
    /// Multi-bit codes carry their sign bits' own factors (a first stage's): always about the
    /// mean, by choice for residuals ([`RaBitQuantizer::with_sign_factors`]).
    sign_factors: bool,
    trained: bool,
    /// Bits per dimension, `1 ..= RABITQ_MAX_BITS`.
    bits: u8,
    /// `P`, `dim × dim` row-major, orthonormal.
    rotation: DenseMap,
    /// The mean (zeros until trained, and always for residual quantizers).
    center: Vec<f32>,
    /// `P · center`.
    rotated_center: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    quantizer: String,
    dim: usize,
    metric: String,
    centered: bool,
    trained: bool,
    /// Absent for one bit (version 1 meta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bits: Option<u8>,
    /// `Some(true)` for residual codes with the sign bits' factors (version 3 meta), absent
    /// otherwise (codes about the mean always carry them from two bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sign_factors: Option<bool>,
}

impl RaBitQuantizer {
    /// A quantizer of `dim`-dimensional vectors scored by `metric` that codes them about the
    /// mean [`Quantizer::train`] learns.
    pub fn new(dim: usize, metric: Metric) -> Result<Self> {
        Self::with_centering(dim, metric, true)
    }

    /// A quantizer of residuals about centres given at encoding time
    /// ([`RaBitQuantizer::encode_about`]), trained from the start. An inverted file's codec.
    pub fn for_residuals(dim: usize, metric: Metric) -> Result<Self> {
        Self::with_centering(dim, metric, false)
    }

    fn with_centering(dim: usize, metric: Metric, centered: bool) -> Result<Self> {
        check_linear_dim(dim, "RaBitQ's rotation (project first: PCA{d},…)")?;
        let rotation = DenseMap::new(to_row_major(&random_rotation(dim, ROTATION_SEED)), dim);
        Ok(RaBitQuantizer {
            dim,
            metric,
            centered,
            sign_factors: centered,
            trained: !centered,
            bits: 1,
            rotation,
            center: vec![0.0; dim],
            rotated_center: vec![0.0; dim],
        })
    }

    /// The same quantizer coding `bits` bits per dimension (`1 ..= 9`; one by default):
    /// extended RaBitQ (Gao et al., SIGMOD 2025; Faiss' `RaBitQ{bits}`), `bits · ⌈d/8⌉ + 24`
    /// bytes a code about the trained mean (three floats more than one bit's: the sign bits'
    /// own factors, for a flat scan's first stage), `bits · ⌈d/8⌉ + 12` for residuals (`+ 24`
    /// [`with_sign_factors`](RaBitQuantizer::with_sign_factors)). The sign bits are one-bit
    /// RaBitQ's; the other `bits − 1` refine each coordinate's magnitude, chosen per vector to point the code closest to the
    /// residual, so the estimate's error falls about twofold per bit.
    pub fn with_bits(mut self, bits: u8) -> Result<Self> {
        if !(1..=RABITQ_MAX_BITS).contains(&bits) {
            return Err(Error::Parameter { name: "bits", what: format!("{bits} bits, not 1..={RABITQ_MAX_BITS}") });
        }
        self.bits = bits;
        Ok(self)
    }

    /// The same residual quantizer whose multi-bit codes also carry their sign bits' own
    /// factors `a₁`, `w₁`, `ε₁` (12 bytes more a code), as codes about the mean always do: what
    /// a fast scan's first stage bounds each code by (an inverted file's `RaBitQfs{b}` lists).
    /// One-bit codes are unchanged (their factors are the sign bits').
    pub fn with_sign_factors(mut self) -> Self {
        self.sign_factors = true;
        self
    }

    /// Whether multi-bit codes carry their sign bits' own factors (always about the mean).
    pub fn sign_factors(&self) -> bool {
        self.sign_factors
    }

    /// Bits per dimension.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Whether vectors are coded about the trained mean (`true`) or about given centres.
    pub fn centered(&self) -> bool {
        self.centered
    }

    /// The rotation `P` (`dim × dim`, row-major).
    pub fn rotation(&self) -> &[f32] {
        &self.rotation
    }

    /// Bytes of one bit per dimension (`⌈d/8⌉`): a plane of a code's bits.
    pub(crate) fn plane_bytes(&self) -> usize {
        self.dim.div_ceil(8)
    }

    /// Bytes of bits in a code, before its factors: `bits · ⌈d/8⌉`, and the first stage's
    /// factors after the sign plane where codes have them.
    pub(crate) fn bit_bytes(&self) -> usize {
        usize::from(self.bits) * self.plane_bytes() + self.first_stage_bytes()
    }

    /// Bytes of the first stage's factors, between the sign plane and the others: a flat
    /// scan's first stage reads the start of each code only (its factors at the end of a
    /// 216-byte code, 4 bits at d = 384, cost the scan 2.4× its time).
    fn first_stage_bytes(&self) -> usize {
        if self.has_first_stage() { 4 * FIRST_STAGE_FACTORS } else { 0 }
    }

    /// Where plane `p` of a code's bits starts (the sign plane first, then the first stage's
    /// factors if any, then the others).
    fn plane_offset(&self, p: usize) -> usize {
        p * self.plane_bytes() + if p > 0 { self.first_stage_bytes() } else { 0 }
    }

    /// [`plane_offset`](Self::plane_offset) of every plane (the first `bits` entries), on the
    /// stack: encoding and decoding ask per code.
    fn plane_offsets(&self) -> [usize; RABITQ_MAX_BITS as usize] {
        std::array::from_fn(|p| self.plane_offset(p))
    }

    /// `P v` for every row of `rows`.
    pub fn rotate(&self, rows: &[f32]) -> Vec<f32> {
        self.rotation.apply(rows)
    }

    /// Codes checked (prepared) `rows` about the trained mean, `block` rows' residuals at a
    /// time; `codes` holds one code per row.
    fn encode_in_blocks(&self, rows: &[f32], codes: &mut [u8], block: usize) -> Result<()> {
        let (dim, cs) = (self.dim, self.code_size());
        let mut r = Vec::with_capacity((block * dim).min(rows.len()));
        let labels = vec![0u32; block.min(rows.len() / dim.max(1))];
        for (rows, out) in rows.chunks(block * dim).zip(codes.chunks_mut(block * cs)) {
            r.clear();
            r.extend_from_slice(rows);
            for row in r.chunks_exact_mut(dim) {
                row.iter_mut().zip(&self.center).for_each(|(v, c)| *v -= c);
            }
            self.encode_about(&r, &self.rotated_center, &labels[..rows.len() / dim], out)?;
        }
        Ok(())
    }

    /// Encodes residuals `r = x − c` whose centres, rotated (`P c`, from
    /// [`RaBitQuantizer::rotate`]), are row `labels[i]` of `rotated_centers`: the codes an
    /// inverted file stores, whose scorer's offset is then the list's coarse key. Vectors are
    /// taken as given (an inverted file normalizes cosine rows before taking residuals).
    pub fn encode_about(
        &self,
        residuals: &[f32],
        rotated_centers: &[f32],
        labels: &[u32],
        codes: &mut [u8],
    ) -> Result<()> {
        let x = prepare_rows("residuals", residuals, self.dim, self.inner_metric())?;
        let n = x.len();
        if labels.len() != n {
            return Err(Error::Parameter { name: "labels", what: format!("{} labels for {n} rows", labels.len()) });
        }
        let centers = rotated_centers.len() / self.dim;
        if rotated_centers.len() != centers * self.dim {
            return Err(Error::Parameter {
                name: "rotated_centers",
                what: format!("{} values, not whole rows of {}", rotated_centers.len(), self.dim),
            });
        }
        if let Some(&l) = labels.iter().find(|&&l| l as usize >= centers) {
            return Err(Error::Parameter { name: "labels", what: format!("centre {l} of {centers}") });
        }
        let expected = n * self.code_size();
        if codes.len() != expected {
            return Err(Error::CodeLength { what: "codes", len: codes.len(), expected });
        }
        let (dim, cs) = (self.dim, self.code_size());
        codes
            .par_chunks_mut(ENCODE_CHUNK * cs)
            .zip(x.as_slice().par_chunks(ENCODE_CHUNK * dim))
            .zip(labels.par_chunks(ENCODE_CHUNK))
            .for_each(|((codes, rows), labels)| {
                let rotated = self.rotate(rows);
                let (mut search, mut levels) = (LevelSearch::default(), Vec::with_capacity(dim));
                for ((code, y), &l) in codes.chunks_exact_mut(cs).zip(rotated.chunks_exact(dim)).zip(labels) {
                    search.levels(y, self.max_level(), &mut levels);
                    self.encode_rotated(y, &levels, &rotated_centers[l as usize * dim..][..dim], code);
                }
            });
        Ok(())
    }

    /// The metric of the sums: cosine rows are unit vectors scored by their inner product.
    fn inner_metric(&self) -> Metric {
        match self.metric {
            Metric::L2 => Metric::L2,
            Metric::InnerProduct | Metric::Cosine => Metric::InnerProduct,
        }
    }

    /// The highest level of a coordinate's magnitude, `2^{bits−1} − 1` (0 for one bit).
    fn max_level(&self) -> u16 {
        (1u16 << (self.bits - 1)) - 1
    }

    /// The code of a rotated residual `y = P r`, its magnitudes at `levels` (from
    /// [`LevelSearch`]), about a centre rotated to `pc = P c`.
    ///
    /// Coordinate `j` is coded as the odd integer `o_j = ±(2 e_j + 1)` (the sign of `y_j`),
    /// stored as `u_j = (o_j + 2^B − 1) / 2 ∈ 0 .. 2^B`, whose top bit is the sign: bit
    /// `B − 1 − i` of every `u_j` makes plane `i` of the bits, the sign plane first. The
    /// direction is `ō = o / ‖o‖`, with `ℓ = ⟨ō, P r⟩` and `t = −⟨ō, P c⟩`; a scorer sums
    /// `⟨o, P q⟩ = 2 Σ u_j (P q)_j − (2^B − 1) Σ_j (P q)_j`. With one bit `o_j = ±1`,
    /// `‖o‖ = √d`, and every sum below is the one-bit sum term for term.
    fn encode_rotated(&self, y: &[f32], levels: &[u16], pc: &[f32], code: &mut [u8]) {
        let (bits, factors) = code.split_at_mut(self.bit_bytes());
        bits.fill(0);
        let planes = usize::from(self.bits);
        let half = 1u16 << (planes - 1);
        let offsets = &self.plane_offsets()[..planes];
        let (mut abs_dot, mut o_sq, mut norm_sq, mut r_dot_c, mut pc_sum, mut u_dot_pc) =
            (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
        // The sign bits' own sums, for a multi-bit code's one-bit factors.
        let (mut abs_sum, mut pc_set) = (0f64, 0f64);
        for (j, ((&v, &c), &e)) in y.iter().zip(pc).zip(levels).enumerate() {
            let (v, c) = (f64::from(v), f64::from(c));
            let o = 2.0 * f64::from(e) + 1.0;
            abs_dot += o * v.abs();
            abs_sum += v.abs();
            if v > 0.0 {
                pc_set += c;
            }
            o_sq += o * o;
            norm_sq += v * v;
            r_dot_c += v * c;
            pc_sum += c;
            let u = if v > 0.0 { half + e } else { half - 1 - e };
            if u != 0 {
                u_dot_pc += f64::from(u) * c;
            }
            for (plane, &at) in offsets.iter().enumerate() {
                if u >> (planes - 1 - plane) & 1 == 1 {
                    bits[at + j / 8] |= 1 << (j % 8);
                }
            }
        }
        let o_norm = o_sq.sqrt();
        let ell = abs_dot / o_norm;
        // A residual of zero (the vector is its centre) has no direction: its estimate of
        // ⟨r, v⟩ is the exact 0.
        let m = if ell > 0.0 { norm_sq / ell } else { 0.0 };
        let t = ((f64::from(2 * half) - 1.0) * pc_sum - 2.0 * u_dot_pc) / o_norm;
        let (a, w) = self.folded(m, t, o_norm, norm_sq, r_dot_c);
        if self.has_first_stage() {
            // The sign plane alone is a one-bit code of the same residual: its factors, and the
            // bound on its key's error per unit of ‖q − c‖: the paper's `ε₀ σ`, with
            // `σ = ‖r‖ √(1 − c²) / (c √(d − 1))` for `c = ⟨ō₁, r / ‖r‖⟩ = ℓ₁ / ‖r‖`, doubled for
            // L2 (its key holds `−2⟨r, q − c⟩`).
            let sqrt_d = (self.dim as f64).sqrt();
            let ell1 = abs_sum / sqrt_d;
            let m1 = if ell1 > 0.0 { norm_sq / ell1 } else { 0.0 };
            let (a1, w1) = self.folded(m1, (pc_sum - 2.0 * pc_set) / sqrt_d, sqrt_d, norm_sq, r_dot_c);
            let norm = norm_sq.sqrt();
            let err1 = if ell1 <= 0.0 {
                0.0
            } else if self.dim < 2 {
                f64::INFINITY
            } else {
                let c = (ell1 / norm).min(1.0);
                let per = if self.inner_metric() == Metric::L2 { 2.0 } else { 1.0 };
                per * norm * (1.0 - c * c).sqrt() / c * FIRST_STAGE_EPSILON / (self.dim as f64 - 1.0).sqrt()
            };
            write_floats(&mut bits[self.plane_bytes()..offsets[1]], [a1, w1, err1]);
        }
        write_floats(factors, [a, w, ell]);
    }

    /// `(a, w)` of a code from `m = ‖r‖² / ℓ`, `t = −⟨ō, P c⟩`, `‖o‖`, `‖r‖²` and `⟨r, c⟩`.
    fn folded(&self, m: f64, t: f64, o_norm: f64, norm_sq: f64, r_dot_c: f64) -> (f64, f64) {
        match self.inner_metric() {
            Metric::L2 => (norm_sq - 2.0 * m * t, 2.0 * m / o_norm),
            _ => (-r_dot_c - m * t, m / o_norm),
        }
    }

    /// Whether codes carry the sign bits' own factors for a first stage: multi-bit codes
    /// about the trained mean, or residual ones [`RaBitQuantizer::with_sign_factors`] asked for.
    fn has_first_stage(&self) -> bool {
        self.bits > 1 && self.sign_factors
    }

    /// A query's scorer with no offset (an inverted file adds each list's coarse key).
    pub fn residual_scorer(&self, query: &[f32]) -> Result<RaBitQScorer> {
        let mut buf = Vec::new();
        let q = prepare_row_into("query", query, self.dim, self.metric, &mut buf)?;
        Ok(self.residual_scorer_of(&self.rotate(q)))
    }

    /// [`RaBitQuantizer::residual_scorer`] of `query` from its rotation `rotated` (`P q`, from
    /// [`RaBitQuantizer::rotate`], which maps a batch of queries at about 1.7× a row's speed
    /// alone at d = 384, to the same bits): the same scorer. `query` is checked as there.
    pub fn residual_scorer_rotated(&self, query: &[f32], rotated: &[f32]) -> Result<RaBitQScorer> {
        let mut buf = Vec::new();
        prepare_row_into("query", query, self.dim, self.metric, &mut buf)?;
        if rotated.len() != self.dim {
            let e = vq_distance::Error::Dimension { what: "rotated", got: rotated.len(), expected: self.dim };
            return Err(e.into());
        }
        Ok(self.residual_scorer_of(rotated))
    }

    /// A residual scorer from the rotated query: one-bit codes also get the popcount bounds,
    /// which list scans use while they pass few codes.
    fn residual_scorer_of(&self, pq: &[f32]) -> RaBitQScorer {
        let mut scorer = self.scorer_of_rotated(pq, 0.0);
        if self.bits == 1 {
            scorer.bounds = SumBounds::new(pq);
        }
        scorer
    }

    /// The scorer of a query whose rotation is `pq` (`P q`): `s = Σ u_j (P q)_j` is the sum
    /// over the set bits of every plane, plane `i` weighted `2^{B−1−i}` ([`SetSums::refill`];
    /// bytes between planes, the first stage's factors, add nothing).
    fn scorer_of_rotated(&self, pq: &[f32], offset: f32) -> RaBitQScorer {
        let sums = SetSums::unfilled();
        let mut scorer = RaBitQScorer {
            sums,
            sum: 0.0,
            offset,
            nbytes: 0,
            first: None,
            bounds: None,
            pass_rate: Cell::new(1.0),
            passed: RefCell::default(),
        };
        self.refill_scorer(&mut scorer, pq, offset);
        scorer
    }

    /// [`RaBitQuantizer::scorer_of_rotated`] into `scorer` (of any RaBitQ quantizer), reusing
    /// its memory (one plane is the planes' case with one offset, 0, and `⌈d/8⌉` bytes).
    fn refill_scorer(&self, scorer: &mut RaBitQScorer, pq: &[f32], offset: f32) {
        let planes = usize::from(self.bits);
        scorer.sums.refill(pq, &self.plane_offsets()[..planes], self.bit_bytes());
        scorer.sum = total(pq) * ((1u32 << planes) - 1) as f32;
        (scorer.offset, scorer.nbytes, scorer.first, scorer.bounds) = (offset, self.bit_bytes(), None, None);
        scorer.pass_rate.set(1.0);
    }

    /// A fast-scan table's second stage for the query rotated to `pq`, with `offset` and
    /// `‖q − c‖` = `center_distance`, into `second` (refilled where it holds one): `None` for
    /// one-bit codes.
    fn second_stage_into(&self, second: &mut Option<SecondStage>, pq: &[f32], offset: f32, center_distance: f32) {
        match second {
            _ if self.bits == 1 => *second = None,
            Some(stage) => {
                self.refill_scorer(&mut stage.scorer, pq, offset);
                stage.center_distance = center_distance;
            }
            None => *second = Some(SecondStage { scorer: self.scorer_of_rotated(pq, offset), center_distance }),
        }
    }

    /// The first stage of a flat scan of multi-bit codes about the trained mean, for the query
    /// `q` rotated to `pq`: the sign plane's sums and `‖q − c‖`. `None` for one bit, residual
    /// codes and few dimensions.
    fn first_stage(&self, q: &[f32], pq: &[f32]) -> Option<FirstStage> {
        self.first_stage_head().map(|_| FirstStage {
            sign: SetSums::new(pq),
            sum: total(pq),
            center_distance: self.center_distance(q),
            factors_at: self.plane_bytes(),
        })
    }

    /// `‖q − c‖` for the trained mean `c`: the scale of a first stage's error bounds.
    fn center_distance(&self, q: &[f32]) -> f32 {
        Kernels::active().f32_l2_sq_fn()(q, &self.center).sqrt()
    }

    /// Bytes of a code that a flat scan's first stage reads: the sign plane and its factors.
    /// `None` where there is no first stage.
    fn first_stage_head(&self) -> Option<usize> {
        (self.has_first_stage() && self.dim >= FIRST_STAGE_MIN_DIM)
            .then(|| self.plane_bytes() + 4 * FIRST_STAGE_FACTORS)
    }

    /// A query's terms for codes in the fast-scan layout
    /// ([`RaBitQFastScan`](crate::fastscan::RaBitQFastScan)), whose sign bits are read four at
    /// a time: into `table`, per nibble of the sign plane (`2⌈d/8⌉` of them), the 16 sums of
    /// the rotated query over each subset of its four dimensions; into `second`, for multi-bit
    /// codes, the second stage (every plane's scorer and `‖q − c‖`; refilled where it holds
    /// one); returned, `Σ_j (P q)_j` and the offset of the key
    /// `offset + a − w · (2 s − Σ_j (P q)_j)`. Checks (and, for cosine, normalizes) the query
    /// before writing anything.
    pub(crate) fn nibble_terms(
        &self,
        query: &[f32],
        table: &mut Vec<f32>,
        second: &mut Option<SecondStage>,
    ) -> Result<NibbleTerms> {
        if !self.trained {
            return Err(Error::NotTrained { quantizer: self.name() });
        }
        let mut buf = Vec::new();
        let q = prepare_row_into("query", query, self.dim, self.metric, &mut buf)?;
        let pq = self.rotate(q);
        let offset = self.mean_offset(q);
        let center_distance = if self.bits > 1 { self.center_distance(q) } else { f32::INFINITY };
        self.second_stage_into(second, &pq, offset, center_distance);
        Ok(NibbleTerms { total: self.nibble_table(&pq, table), offset })
    }

    /// [`RaBitQuantizer::nibble_terms`] of a residual query already checked and rotated (`pq`,
    /// `P q`), offset by nothing: an inverted file sets each list's coarse key, and for
    /// multi-bit codes the second stage's `‖q − c‖` per list (infinite until then: every code
    /// passes the first stage, slow but never wrong). Multi-bit codes without their sign bits'
    /// factors are an error: their first stage has nothing to bound by.
    pub(crate) fn residual_nibble_terms(
        &self,
        pq: &[f32],
        table: &mut Vec<f32>,
        second: &mut Option<SecondStage>,
    ) -> Result<NibbleTerms> {
        if self.bits > 1 && !self.has_first_stage() {
            let what = format!("{} bits per dimension without the sign bits' factors: no first stage", self.bits);
            return Err(Error::Parameter { name: "quantizer", what });
        }
        self.second_stage_into(second, pq, 0.0, f32::INFINITY);
        Ok(NibbleTerms { total: self.nibble_table(pq, table), offset: 0.0 })
    }

    /// [`RaBitQuantizer::nibble_terms`]' table from the rotated query `pq` (`P q`, `dim`
    /// values); returns `Σ_j (P q)_j`.
    pub(crate) fn nibble_table(&self, pq: &[f32], table: &mut Vec<f32>) -> f32 {
        table.clear();
        table.resize(2 * self.plane_bytes() * 16, 0.0);
        // A last nibble past the dimension (d mod 8 in 1..=4) sums over no dimensions: zeros.
        for (t, dims) in table.chunks_exact_mut(16).zip(pq.chunks(4)) {
            subset_sums(dims, t);
        }
        total(pq)
    }

    /// `offset` of a query about the trained mean: `‖q − c‖²` for L2, `−⟨q, c⟩` otherwise.
    fn mean_offset(&self, q: &[f32]) -> f32 {
        let k = Kernels::active();
        match self.inner_metric() {
            Metric::L2 => k.f32_l2_sq_fn()(q, &self.center),
            _ => -k.f32_dot_fn()(q, &self.center),
        }
    }

    /// `(a, w, ℓ)` of a code.
    pub(crate) fn factors(&self, code: &[u8]) -> [f32; FACTORS] {
        factors_at(code, self.bit_bytes())
    }

    /// The code's reconstruction: the centre plus `ℓ · Pᵀ ō`, the residual's projection on its
    /// code's direction.
    /// `y` is scratch (`dim` values once filled), kept across the codes of a call.
    fn decode_one(&self, code: &[u8], out: &mut [f32], y: &mut Vec<f32>) -> Result<()> {
        let [a, w, ell] = self.factors(code);
        if !(a.is_finite() && w.is_finite() && ell.is_finite()) {
            return Err(Error::Parameter { name: "codes", what: "a code holds a non-finite factor".into() });
        }
        let planes = usize::from(self.bits);
        let offsets = &self.plane_offsets()[..planes];
        let odd = (1i32 << planes) - 1;
        y.clear();
        y.extend((0..self.dim).map(|j| {
            let u = offsets.iter().fold(0i32, |u, &at| u << 1 | i32::from(code[at + j / 8] >> (j % 8) & 1));
            (2 * u - odd) as f32
        }));
        // `‖o‖²` summed exactly (`d` for one bit, as before multi-bit codes), rounded once.
        let o_sq = y.iter().map(|&o| (o * o) as u64).sum::<u64>();
        let scale = ell / (o_sq as f32).sqrt();
        y.iter_mut().for_each(|o| *o *= scale);
        project_back(&self.rotation, y, out);
        out.iter_mut().zip(&self.center).for_each(|(o, c)| *o += c);
        Ok(())
    }
}

/// `values` as little-endian f32s at the start of `out`.
fn write_floats<const N: usize>(out: &mut [u8], values: [f64; N]) {
    for (out, v) in out.chunks_exact_mut(4).zip(values) {
        out.copy_from_slice(&(v as f32).to_le_bytes());
    }
}

/// `Σ v` in f64.
fn total(v: &[f32]) -> f32 {
    v.iter().map(|&v| f64::from(v)).sum::<f64>() as f32
}

/// [`RaBitQuantizer::nibble_terms`]: a query's terms besides its nibble table.
#[derive(Debug, Clone)]
pub(crate) struct NibbleTerms {
    /// `Σ_j (P q)_j`.
    pub(crate) total: f32,
    /// Added to every key.
    pub(crate) offset: f32,
}

/// A fast scan's second stage over multi-bit codes: the scorer of every plane (of whole codes,
/// put together) and `‖q − c‖`, by which a code's first-stage error bound `ε₁` is scaled.
#[derive(Debug, Clone)]
pub(crate) struct SecondStage {
    pub(crate) scorer: RaBitQScorer,
    pub(crate) center_distance: f32,
}

/// A query against RaBitQ codes: the rotated query prepared for sums over set bits, its
/// total, and the offset.
#[derive(Debug, Clone)]
pub struct RaBitQScorer {
    /// `Σ_{b_j = 1} (P q)_j` of a code's bits (every plane's, weighted).
    sums: SetSums,
    /// `(2^B − 1) Σ_j (P q)_j`.
    sum: f32,
    offset: f32,
    /// Bytes of bits in a code.
    nbytes: usize,
    /// Multi-bit codes scanned flat: the one-bit estimate first.
    first: Option<FirstStage>,
    /// A scan at a byte-table level (flat, or of one-bit residual codes in lists): popcount
    /// estimates of the sign plane's sums, which decide the codes whose one-bit key (or
    /// first-stage bound) is summed exactly.
    bounds: Option<SumBounds>,
    /// One-bit codes: the share of a block's codes the bounds pass, a running estimate from 1
    /// (a scan's first blocks, whose threshold is loose). While it is ½ or more the bounds are
    /// not used (their popcounts cost about half a look-up): an inverted list's codes lie
    /// close to the query, and at nprobe 8 most pass.
    pass_rate: Cell<f32>,
    /// The codes a first stage passed, put together for the full sums: a flat scan's, or, in a
    /// fast-scan table's second stage, the fast scan's (kept between blocks, lists and
    /// queries).
    pub(crate) passed: RefCell<Passed>,
}

/// Rows of a block that a two-stage scan's first stage passed (a flat scan's, and the
/// multi-bit fast scan's), scored over every plane with their codes put together.
#[derive(Debug, Clone, Default)]
pub(crate) struct Passed {
    /// The rows, as the caller numbers them.
    pub(crate) rows: Vec<usize>,
    codes: Vec<u8>,
    keys: Vec<f32>,
}

impl Passed {
    /// Every row of `rows` with its key by `scorer`, `code(row, out)` writing the row's whole
    /// code into `out`: the codes summed as one block, as [`CodeScorer::distances`] sums a
    /// block of stored codes (so the keys are the same to the bit).
    pub(crate) fn score(
        &mut self,
        scorer: &RaBitQScorer,
        mut code: impl FnMut(usize, &mut [u8]),
    ) -> impl Iterator<Item = (usize, f32)> + '_ {
        let cs = scorer.nbytes + 4 * FACTORS;
        self.codes.resize(self.rows.len() * cs, 0);
        for (&row, out) in self.rows.iter().zip(self.codes.chunks_exact_mut(cs)) {
            code(row, out);
        }
        self.keys.resize(self.rows.len(), 0.0);
        scorer.distances(&self.codes, &mut self.keys);
        self.rows.iter().copied().zip(self.keys.iter().copied())
    }
}

/// A flat scan's first stage over multi-bit codes (Faiss and the paper's two-stage search):
/// the sign plane's one-bit key, less its error bound `ε₁ ‖q − c‖`, bounds the code's distance
/// from below; a code whose bound is above the scan's threshold is not summed over its other
/// planes.
#[derive(Debug, Clone)]
struct FirstStage {
    /// `Σ_{b_j = 1} (P q)_j` over the sign plane.
    sign: SetSums,
    /// `Σ_j (P q)_j`.
    sum: f32,
    /// `‖q − c‖`.
    center_distance: f32,
    /// Where a code's first-stage factors start (after its sign plane).
    factors_at: usize,
}

/// Float `i` of the factors at `f` (the caller checked their length).
#[inline(always)]
fn factor(f: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([f[4 * i], f[4 * i + 1], f[4 * i + 2], f[4 * i + 3]])
}

/// The three floats at byte `at` of `code` (NaNs where the code is cut short), read with one
/// bounds check: a code's `(a, w, ℓ)` after its `bit_bytes()` bytes of bits, or its first
/// stage's after its sign plane.
#[inline(always)]
pub(crate) fn factors_at(code: &[u8], at: usize) -> [f32; 3] {
    match code.get(at..at + 12) {
        Some(&[a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3]) => [
            f32::from_le_bytes([a0, a1, a2, a3]),
            f32::from_le_bytes([b0, b1, b2, b3]),
            f32::from_le_bytes([c0, c1, c2, c3]),
        ],
        _ => [f32::NAN; 3],
    }
}

impl RaBitQScorer {
    /// Sets the term added to every key (an inverted list's coarse key).
    pub fn set_offset(&mut self, offset: f32) {
        self.offset = offset;
    }

    /// The key of a code from `s`, its factors `a` and `w` at `f` (`f32::INFINITY` when the
    /// code is cut short).
    #[inline(always)]
    fn key_of(&self, s: f32, f: &[u8]) -> f32 {
        let Some((a, w)) = f.get(..4).zip(f.get(4..8)) else { return f32::INFINITY };
        let (a, w) = (f32::from_le_bytes([a[0], a[1], a[2], a[3]]), f32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        self.offset + a - w * (2.0 * s - self.sum)
    }
}

impl CodeScorer for RaBitQScorer {
    /// The key of one code ([`Quantizer::code_size`] bytes; shorter is no code: infinity).
    fn distance(&self, code: &[u8]) -> f32 {
        let Some((bits, f)) = code.split_at_checked(self.nbytes) else { return f32::INFINITY };
        self.key_of(self.sums.one(bits), f)
    }

    fn distances(&self, codes: &[u8], out: &mut [f32]) {
        let cs = self.nbytes + 4 * FACTORS;
        let n = out.len().min(codes.len() / cs);
        out[n..].fill(f32::INFINITY);
        let nb = self.nbytes;
        self.sums.map(&codes[..n * cs], cs, &mut out[..n], |s, code| self.key_of(s, &code[nb..]));
    }

    /// Multi-bit codes scanned flat, heads apart: each code's one-bit key from its sign plane,
    /// less its error bound, first; only codes whose bound is not above `threshold` are summed
    /// over every plane (to the bit the key [`distances`](CodeScorer::distances) gives: put
    /// together and summed as it sums a block), the others are `+∞`. A code is missed only
    /// where the one-bit estimate erred by more than 1.9 of its standard deviations (the
    /// paper's bound) in its favour.
    ///
    /// At the byte-table levels (`SumBounds`) the sign plane's sums are estimated by
    /// popcounts first, and summed exactly only where the estimate's error bound leaves the
    /// one-bit key (of one-bit codes: the key itself, the others then `+∞`) or the first
    /// stage's bound not above `threshold`: the same keys, fewer table look-ups.
    fn distances_within(&self, heads: &[u8], tails: &[u8], out: &mut [f32], threshold: f32) {
        let bounds = self.bounds.as_ref().filter(|_| threshold < f32::INFINITY);
        let Some(first) = self.first.as_ref().filter(|_| !tails.is_empty()) else {
            return match bounds {
                Some(bounds) if self.pass_rate.get() < BOUNDS_WORTH_BELOW => {
                    self.one_bit_keys_within(bounds, heads, out, threshold)
                }
                Some(bounds) => {
                    self.distances(heads, out);
                    self.predict_pass_rate(bounds, heads, out, threshold);
                }
                None => self.distances(heads, out),
            };
        };
        // A head ([`Quantizer::scan_head_bytes`]): the sign plane and its factors.
        let (nb, hs) = (self.nbytes, first.factors_at + 4 * FIRST_STAGE_FACTORS);
        let ts = nb + 4 * FACTORS - hs;
        let n = out.len().min(heads.len() / hs).min(tails.len() / ts);
        out[n..].fill(f32::INFINITY);
        let (heads, out) = (&heads[..n * hs], &mut out[..n]);
        let terms = [self.offset, first.sum, first.center_distance];
        let first_bound = |s: f32, head: &[u8]| one_bit_key(terms, factors_at(head, first.factors_at), s);
        match bounds {
            Some(bounds) => {
                let factors = |head: &[u8]| factors_at(head, first.factors_at);
                one_bit_lower_bounds(bounds, heads, hs, terms, out, factors);
                for (head, o) in heads.chunks_exact(hs).zip(out.iter_mut()) {
                    // (A NaN, from a forged factor, is summed: as the exact bound would be.)
                    *o = if *o > threshold { f32::INFINITY } else { first_bound(first.sign.one(head), head) };
                }
            }
            None if threshold < f32::INFINITY => first.sign.map(heads, hs, out, first_bound),
            None => out.fill(f32::NEG_INFINITY),
        }
        let mut passed = self.passed.borrow_mut();
        passed.rows.clear();
        for (row, o) in out.iter_mut().enumerate() {
            // (A NaN bound, from a forged factor, is summed in full.)
            if *o > threshold {
                *o = f32::INFINITY;
            } else {
                passed.rows.push(row);
            }
        }
        let put_together = |row: usize, code: &mut [u8]| {
            code[..hs].copy_from_slice(&heads[row * hs..(row + 1) * hs]);
            code[hs..].copy_from_slice(&tails[row * ts..(row + 1) * ts]);
        };
        for (row, key) in passed.score(self, put_together) {
            out[row] = key;
        }
    }
}

impl RaBitQScorer {
    /// One-bit codes' keys where the popcount estimate cannot put them above `threshold`
    /// (exactly as [`CodeScorer::distances`] gives them: the same table sum), `+∞` elsewhere.
    fn one_bit_keys_within(&self, bounds: &SumBounds, codes: &[u8], out: &mut [f32], threshold: f32) {
        let (nb, cs) = (self.nbytes, self.nbytes + 4 * FACTORS);
        let n = out.len().min(codes.len() / cs);
        out[n..].fill(f32::INFINITY);
        let (codes, out) = (&codes[..n * cs], &mut out[..n]);
        let factors = |code: &[u8]| {
            let [a, w, _] = factors_at(code, nb);
            [a, w, 0.0]
        };
        one_bit_lower_bounds(bounds, codes, cs, [self.offset, self.sum, 0.0], out, factors);
        let mut passed = 0;
        for (code, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
            *o = if *o > threshold {
                f32::INFINITY
            } else {
                passed += 1;
                self.key_of(self.sums.one(&code[..nb]), &code[nb..])
            };
        }
        self.note_pass_rate(passed, n);
    }

    /// After a block keyed without the bounds (`keys`, exact): the share of its codes the
    /// bounds would have passed, taken as those whose key less `2 |w|` times the error bound
    /// (the bound's middle: `ŝ` is within it of `s`) is not above `threshold`.
    fn predict_pass_rate(&self, bounds: &SumBounds, codes: &[u8], keys: &[f32], threshold: f32) {
        let (nb, cs) = (self.nbytes, self.nbytes + 4 * FACTORS);
        let spread = 2.0 * bounds.error();
        let passed = codes
            .chunks_exact(cs)
            .zip(keys)
            .filter(|&(code, &key)| key - spread * factors_at(code, nb)[1].abs() <= threshold)
            .count();
        self.note_pass_rate(passed, keys.len().min(codes.len() / cs));
    }

    /// Folds a block's pass share into the running estimate (half old, half new: a scan's
    /// threshold tightens as it goes, and an inverted file's far lists pass fewer).
    fn note_pass_rate(&self, passed: usize, codes: usize) {
        if codes > 0 {
            self.pass_rate.set(0.5 * self.pass_rate.get() + 0.5 * passed as f32 / codes as f32);
        }
    }
}

/// Scans use the popcount bounds while the running share of codes they pass is below this:
/// a bounded code costs about half a look-up, a passed one a look-up more.
const BOUNDS_WORTH_BELOW: f32 = 0.5;

/// A one-bit key `offset + a − w (2 s − Σ) − ε ‖q − c‖`, as the scans compute it in f32, is
/// within this many of its terms' magnitude of its real value (six roundings of at most 2⁻²⁴
/// each), and so is its lower bound here: twice their sum keeps the bound below the key.
const KEY_ROUNDING: f32 = 2e-6;

/// The one-bit key `offset + a − w (2 s − Σ) − ε ‖q − c‖` of a code with factors `[a, w, ε]`
/// and sign-plane sum `s`, `terms` = `[offset, Σ_j (P q)_j, ‖q − c‖]`: a first stage's bound
/// (and, less its error bound, the popcount bounds' key).
#[inline(always)]
fn one_bit_key(terms: [f32; 3], [a, w, err]: [f32; 3], s: f32) -> f32 {
    let [offset, sum, center_distance] = terms;
    offset + a - w * (2.0 * s - sum) - err * center_distance
}

/// Lower bounds on the one-bit keys of `codes` (`stride` apart, sign plane first) from the
/// popcount estimates `ŝ` of their sign planes' sums: `terms` = `[offset, Σ_j (P q)_j,
/// ‖q − c‖]`, `factors(code)` = the code's `[a, w, ε]`. `s` is within `bounds.error()` of `ŝ`,
/// so the key is at least its value at `ŝ` less `2 |w|` times that, less the f32 rounding of
/// either computation.
fn one_bit_lower_bounds(
    bounds: &SumBounds,
    codes: &[u8],
    stride: usize,
    terms: [f32; 3],
    out: &mut [f32],
    factors: impl Fn(&[u8]) -> [f32; 3],
) {
    let [offset, sum, center_distance] = terms;
    let e = bounds.error();
    bounds.estimates(codes, stride, out);
    for (code, o) in codes.chunks_exact(stride).zip(out.iter_mut()) {
        let ([a, w, err], s) = (factors(code), *o);
        let key = one_bit_key(terms, [a, w, err], s);
        let magnitude =
            offset.abs() + a.abs() + (err * center_distance).abs() + w.abs() * (2.0 * (s.abs() + e) + sum.abs());
        *o = key - 2.0 * w.abs() * e - KEY_ROUNDING * magnitude;
    }
}

impl Quantizer for RaBitQuantizer {
    type Scorer<'a> = RaBitQScorer;

    fn name(&self) -> String {
        match self.bits {
            1 => "RaBitQ".into(),
            b => format!("RaBitQ{b}"),
        }
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn code_size(&self) -> usize {
        self.bit_bytes() + 4 * FACTORS
    }

    fn is_trained(&self) -> bool {
        self.trained
    }

    /// Learns the mean the vectors are coded about (a residual quantizer only checks the
    /// sample).
    fn train(&mut self, sample: &[f32]) -> Result<()> {
        let x = prepare_rows("sample", sample, self.dim, self.metric)?;
        if !self.centered {
            return Ok(());
        }
        let n = x.len();
        if n == 0 {
            return Err(Error::TooFewTrainingPoints { quantizer: self.name(), needed: 1, got: 0 });
        }
        let mut mean = vec![0f64; self.dim];
        for row in x.as_slice().chunks_exact(self.dim) {
            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += f64::from(v));
        }
        self.center = mean.iter().map(|&m| (m / n as f64) as f32).collect();
        self.rotated_center = self.rotate(&self.center);
        self.trained = true;
        Ok(())
    }

    /// Codes `vectors` about the trained mean (a residual quantizer: about the origin; an
    /// inverted file calls [`RaBitQuantizer::encode_about`] instead).
    fn encode(&self, vectors: &[f32], codes: &mut [u8]) -> Result<()> {
        if !self.trained {
            return Err(Error::NotTrained { quantizer: self.name() });
        }
        let x = prepare_rows("vectors", vectors, self.dim, self.metric)?;
        let expected = x.len() * self.code_size();
        if codes.len() != expected {
            return Err(Error::CodeLength { what: "codes", len: codes.len(), expected });
        }
        // Residuals a block of rows at a time: a copy of the whole batch would double an add's
        // peak memory (100,000 SIFT rows: 51 MB above the 3 MB of codes).
        let rows = (RESIDUAL_BLOCK_BYTES / (4 * self.dim).max(1)).max(ENCODE_CHUNK);
        self.encode_in_blocks(x.as_slice(), codes, rows)
    }

    fn decode(&self, codes: &[u8], out: &mut [f32]) -> Result<()> {
        let cs = self.code_size();
        let n = codes.len() / cs;
        if codes.len() != n * cs || out.len() != n * self.dim {
            return Err(Error::CodeLength { what: "codes", len: codes.len(), expected: out.len() / self.dim * cs });
        }
        let mut y = Vec::with_capacity(self.dim);
        for (code, row) in codes.chunks_exact(cs).zip(out.chunks_exact_mut(self.dim)) {
            self.decode_one(code, row, &mut y)?;
        }
        Ok(())
    }

    /// The sign plane and its own factors, for multi-bit codes about the trained mean (from
    /// 64 dimensions): what the first stage of a flat scan reads.
    fn scan_head_bytes(&self) -> Option<usize> {
        self.first_stage_head()
    }

    fn scorer(&self, query: &[f32]) -> Result<RaBitQScorer> {
        if !self.trained {
            return Err(Error::NotTrained { quantizer: self.name() });
        }
        let mut buf = Vec::new();
        let q = prepare_row_into("query", query, self.dim, self.metric, &mut buf)?;
        let pq = self.rotate(q);
        let mut scorer = self.scorer_of_rotated(&pq, self.mean_offset(q));
        scorer.first = self.first_stage(q, &pq);
        // Only a one-bit key, or a first stage's, is a function of the sign plane's sum.
        if self.bits == 1 || scorer.first.is_some() {
            scorer.bounds = SumBounds::new(&pq);
        }
        Ok(scorer)
    }

    /// Between the two codes' reconstructions (graphs do not build over RaBitQ codes; this
    /// serves callers that compare codes).
    fn code_distance(&self, a: &[u8], b: &[u8]) -> f32 {
        let (mut x, mut y) = (vec![0f32; self.dim], vec![0f32; self.dim]);
        let mut scratch = Vec::with_capacity(self.dim);
        if self.decode_one(a, &mut x, &mut scratch).is_err() || self.decode_one(b, &mut y, &mut scratch).is_err() {
            return f32::INFINITY;
        }
        let k = Kernels::active();
        match self.inner_metric() {
            Metric::L2 => k.f32_l2_sq_fn()(&x, &y),
            _ => -k.f32_dot_fn()(&x, &y),
        }
    }

    /// Finite factors, and a length `ℓ` (at most `‖r‖`) whose square fits in f32: what
    /// decoding needs, without its rotation per code.
    fn check_codes(&self, codes: &[u8]) -> Option<std::result::Result<(), usize>> {
        let limit = f32::MAX.sqrt() / 2.0;
        let first_stage = self.plane_bytes();
        let bad = codes.chunks_exact(self.code_size()).position(|code| {
            let [a, w, ell] = self.factors(code);
            // A multi-bit code's one-bit factors: finite, and an error bound not below 0.
            let first_ok = !self.has_first_stage() || {
                let f = &code[first_stage..];
                factor(f, 0).is_finite() && factor(f, 1).is_finite() && factor(f, 2) >= 0.0
            };
            !(a.is_finite() && w.is_finite() && (0.0..limit).contains(&ell) && first_ok)
        });
        Some(bad.map_or(Ok(()), Err))
    }

    fn memory_bytes(&self) -> usize {
        self.rotation.memory_bytes() + (self.center.capacity() + self.rotated_center.capacity()) * size_of::<f32>()
    }

    fn write_sections(&self, writer: &mut ContainerWriter, prefix: &str) -> Result<()> {
        let saved = Saved {
            quantizer: "rabitq".into(),
            dim: self.dim,
            metric: self.metric.name().into(),
            centered: self.centered,
            trained: self.trained,
            bits: (self.bits > 1).then_some(self.bits),
            sign_factors: (self.has_first_stage() && !self.centered).then_some(true),
        };
        let version = match (self.bits, saved.sign_factors) {
            (1, _) => META_VERSION,
            (_, None) => META_VERSION_BITS,
            (_, Some(_)) => META_VERSION_SIGN_FACTORS,
        };
        writer.add_json(&format!("{prefix}.meta"), version, &saved)?;
        writer.add_array(&format!("{prefix}.rotation"), ARRAY_VERSION, &self.rotation)?;
        writer.add_array(&format!("{prefix}.center"), ARRAY_VERSION, &self.center)?;
        Ok(())
    }

    /// Reads what [`Quantizer::write_sections`] wrote. A rotation that is not `dim × dim`,
    /// finite and orthonormal, or a centre of the wrong length, not finite, or non-zero for a
    /// residual quantizer, is `Corrupt`.
    fn read_sections(reader: &ContainerReader, prefix: &str) -> Result<Self> {
        let names = ["meta", "rotation", "center"].map(|s| format!("{prefix}.{s}"));
        let [meta_name, rotation_name, center_name] = &names;
        let meta_version = reader.section(meta_name)?.version;
        let meta_version = match meta_version {
            META_VERSION_BITS | META_VERSION_SIGN_FACTORS => meta_version,
            _ => META_VERSION,
        };
        reader.check_versions(&[
            (meta_name, meta_version),
            (rotation_name, ARRAY_VERSION),
            (center_name, ARRAY_VERSION),
        ])?;
        let saved: Saved = reader.json(meta_name)?;
        if saved.quantizer != "rabitq" {
            return Err(corrupt(meta_name, format!("holds a {:?} quantizer, not \"rabitq\"", saved.quantizer)));
        }
        let multi = |b: u8| (2..=RABITQ_MAX_BITS).contains(&b);
        let bits = match (meta_version, saved.bits, saved.sign_factors, saved.centered) {
            (META_VERSION, None, None, _) => 1,
            (META_VERSION_BITS, Some(b), None, _) if multi(b) => b,
            (META_VERSION_SIGN_FACTORS, Some(b), Some(true), false) if multi(b) => b,
            (_, bits, sign_factors, centered) => {
                let what = format!(
                    "version {meta_version} meta with bits {bits:?}, sign factors {sign_factors:?}, centred {centered}"
                );
                return Err(corrupt(
                    meta_name,
                    format!(
                        "{what}: one bit is version 1 without bits, 2..=9 version 2, residual codes with their sign \
                         bits' factors version 3"
                    ),
                ));
            }
        };
        let metric = sections::metric(meta_name, &saved.metric)?;
        let dim = saved.dim;
        if dim == 0 || dim > RABITQ_MAX_DIM {
            return Err(corrupt(meta_name, format!("dimension {dim} is outside 1..={RABITQ_MAX_DIM}")));
        }
        if !saved.centered && !saved.trained {
            return Err(corrupt(meta_name, "a residual quantizer saved untrained".into()));
        }
        let (rotation, center): (Vec<f32>, Vec<f32>) =
            (reader.array_vec(rotation_name)?, reader.array_vec(center_name)?);
        check_finite(center_name, &center, dim)?;
        check_projection(rotation_name, &rotation, dim, dim)?;
        if (!saved.centered || !saved.trained) && center.iter().any(|&c| c != 0.0) {
            return Err(corrupt(center_name, "a centre saved for a quantizer that has none".into()));
        }
        let rotation = DenseMap::new(rotation, dim);
        let rotated_center = rotation.apply(&center);
        Ok(RaBitQuantizer {
            dim,
            metric,
            centered: saved.centered,
            sign_factors: saved.centered || saved.sign_factors == Some(true),
            trained: saved.trained,
            bits,
            rotation,
            center,
            rotated_center,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Rows with a common offset and per-dimension scales (skewed, as SIFT's are).
    fn rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        (0..n * dim)
            .map(|i| {
                let u = crate::linear::mix(seed ^ i as u64) as f64 / u64::MAX as f64;
                let j = i % dim;
                (3.0 + (u as f32 - 0.5) * (1.0 + j as f32 / 4.0)) * if j.is_multiple_of(3) { 2.0 } else { 1.0 }
            })
            .collect()
    }

    /// Coordinate `j`'s odd integer `o_j` in a code, read bit by bit: `u_j`'s bits from the
    /// sign plane down, `o_j = 2 u_j − (2^B − 1)`.
    fn odd_codes(q: &RaBitQuantizer, code: &[u8]) -> Vec<f64> {
        let (b, nb) = (usize::from(q.bits), q.dim.div_ceil(8));
        // The first stage's 12 bytes of factors follow the sign plane where codes carry them.
        let at = |p: usize| p * nb + if p > 0 && q.has_first_stage() { 12 } else { 0 };
        (0..q.dim)
            .map(|j| {
                let u = (0..b).map(|p| usize::from(code[at(p) + j / 8] >> (j % 8) & 1) << (b - 1 - p)).sum::<usize>();
                2.0 * u as f64 - ((1usize << b) - 1) as f64
            })
            .collect()
    }

    /// The paper's estimator computed the slow way: read the code's direction `o` bit by bit,
    /// form `⟨o, P(q − c)⟩ / ⟨o, P r⟩ · ‖r‖²`, and combine with the exact terms. Also checks
    /// the code points along the residual: its signs are the residual's and its cosine with
    /// it is the best the level search finds.
    fn slow_key(q: &RaBitQuantizer, x: &[f32], c: &[f32], query: &[f32], code: &[u8]) -> f64 {
        let r: Vec<f32> = x.iter().zip(c).map(|(a, b)| a - b).collect();
        let qc: Vec<f32> = query.iter().zip(c).map(|(a, b)| a - b).collect();
        let (pr, pq) = (q.rotate(&r), q.rotate(&qc));
        let o = odd_codes(q, code);
        let dot = |a: &[f64], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * f64::from(*y)).sum::<f64>();
        let norm = r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        let levels: Vec<u16> = o.iter().map(|&o| ((o.abs() - 1.0) / 2.0) as u16).collect();
        let mut best = Vec::new();
        LevelSearch::default().levels(&pr, q.max_level(), &mut best);
        if norm > 1e-3 {
            let (got, want) = (levels::cosine(&pr, &levels), levels::cosine(&pr, &best));
            assert!(got >= want - 1e-4, "the code's cosine {got} below the search's {want}");
            for (j, (&o, &v)) in o.iter().zip(&pr).enumerate() {
                assert!(v.abs() < 1e-4 * norm as f32 || (o > 0.0) == (v > 0.0), "sign {j}: {o} for {v}");
            }
        }
        let o_r = dot(&o, &pr);
        let est = if o_r > 0.0 { dot(&o, &pq) / o_r * norm * norm } else { 0.0 };
        let exact = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>();
        match q.inner_metric() {
            Metric::L2 => exact(&r, &r) + exact(&qc, &qc) - 2.0 * est,
            _ => -(exact(c, query) + exact(&r, c) + est),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The folded codes and the byte table give the estimator computed the slow way,
        /// about the trained mean and about given centres, for both metrics.
        #[test]
        fn table_keys_equal_the_slow_estimator(
            dim in 1usize..40,
            n in 1usize..20,
            seed in 0u64..1000,
            ip in any::<bool>(),
            bits in prop_oneof![Just(1u8), 2u8..=RABITQ_MAX_BITS],
        ) {
            let metric = if ip { Metric::InnerProduct } else { Metric::L2 };
            let data = rows(n, dim, seed);
            let query = rows(1, dim, seed + 7);
            let mut q = RaBitQuantizer::new(dim, metric).unwrap().with_bits(bits).unwrap();
            q.train(&data).unwrap();
            let mut codes = vec![0u8; n * q.code_size()];
            q.encode(&data, &mut codes).unwrap();
            let mut keys = vec![0f32; n];
            q.scorer(&query).unwrap().distances(&codes, &mut keys);
            let scale = query.iter().chain(&data).map(|v| v * v).sum::<f32>() as f64;
            let cs = q.code_size();
            prop_assert_eq!(cs, usize::from(bits) * dim.div_ceil(8) + if bits > 1 { 24 } else { 12 });
            let residual_size = RaBitQuantizer::for_residuals(dim, metric).unwrap().with_bits(bits).unwrap().code_size();
            prop_assert_eq!(residual_size, usize::from(bits) * dim.div_ceil(8) + 12);
            for (i, &k) in keys.iter().enumerate() {
                let want = slow_key(&q, &data[i * dim..][..dim], &q.center, &query, &codes[i * cs..][..cs]);
                prop_assert!((f64::from(k) - want).abs() <= 1e-4 * scale, "row {i}: {k} vs {want}");
            }
            // About centres per row (an inverted file's lists): the scorer's offset is the
            // list's exact term.
            let rq = RaBitQuantizer::for_residuals(dim, metric).unwrap().with_bits(bits).unwrap();
            let centers = rows(3, dim, seed + 11);
            let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
            let mut resid = data.clone();
            for (row, &l) in resid.chunks_exact_mut(dim).zip(&labels) {
                row.iter_mut().zip(&centers[l as usize * dim..]).for_each(|(v, c)| *v -= c);
            }
            let mut codes = vec![0u8; n * rq.code_size()];
            rq.encode_about(&resid, &rq.rotate(&centers), &labels, &mut codes).unwrap();
            let mut s = rq.residual_scorer(&query).unwrap();
            for (i, &l) in labels.iter().enumerate() {
                let c = &centers[l as usize * dim..][..dim];
                let offset = match metric {
                    Metric::L2 => query.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
                    _ => -query.iter().zip(c).map(|(a, b)| a * b).sum::<f32>(),
                };
                s.set_offset(offset);
                let code = &codes[i * rq.code_size()..][..rq.code_size()];
                let k = s.distance(code);
                let want = slow_key(&rq, &data[i * dim..][..dim], c, &query, code);
                prop_assert!((f64::from(k) - want).abs() <= 1e-4 * scale, "row {i} about {l}: {k} vs {want}");
            }
            // Scorers from a batch of queries rotated together are each query's own, to the
            // bit: queries of `data` (n rows) and the test query, last.
            let mut batch = data.clone();
            batch.extend_from_slice(&query);
            let rotated = rq.rotate(&batch);
            for (qi, (row, pq)) in batch.chunks_exact(dim).zip(rotated.chunks_exact(dim)).enumerate() {
                let mut together = rq.residual_scorer_rotated(row, pq).unwrap();
                let mut alone = rq.residual_scorer(row).unwrap();
                alone.set_offset(0.5);
                together.set_offset(0.5);
                for code in codes.chunks_exact(rq.code_size()) {
                    prop_assert_eq!(alone.distance(code).to_bits(), together.distance(code).to_bits(), "query {}", qi);
                }
            }
        }
    }

    /// The estimator is unbiased: averaged over many vectors at the same distance, its error
    /// vanishes, and each estimate's error is within the paper's bound (a few `1/√d`, shrinking
    /// with every bit: the extended paper's error falls as `2^{−B}`).
    #[test]
    fn estimates_are_close_and_unbiased() {
        let dim = 128;
        let n = 2000;
        let data = rows(n, dim, 3);
        let query = rows(1, dim, 99);
        for (metric, bits) in [Metric::L2, Metric::InnerProduct].into_iter().flat_map(|m| [1, 2, 4, 7].map(|b| (m, b)))
        {
            let mut q = RaBitQuantizer::new(dim, metric).unwrap().with_bits(bits).unwrap();
            q.train(&data).unwrap();
            let mut codes = vec![0u8; n * q.code_size()];
            q.encode(&data, &mut codes).unwrap();
            let s = q.scorer(&query).unwrap();
            let (mut sum_err, mut worst_rel) = (0f64, 0f64);
            for (i, row) in data.chunks_exact(dim).enumerate() {
                let est = f64::from(s.distance(&codes[i * q.code_size()..][..q.code_size()]));
                let r: Vec<f64> = row.iter().zip(&q.center).map(|(a, b)| f64::from(a - b)).collect();
                let qc: Vec<f64> = query.iter().zip(&q.center).map(|(a, b)| f64::from(a - b)).collect();
                let norms = r.iter().map(|v| v * v).sum::<f64>().sqrt() * qc.iter().map(|v| v * v).sum::<f64>().sqrt();
                let exact = match metric {
                    Metric::L2 => row.iter().zip(&query).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>(),
                    _ => -row.iter().zip(&query).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>(),
                };
                let scale = if metric == Metric::L2 { 2.0 * norms } else { norms };
                // Error of the ⟨r, q − c⟩ estimate relative to ‖r‖‖q − c‖.
                let rel = (est - exact) / scale;
                sum_err += rel;
                worst_rel = worst_rel.max(rel.abs());
            }
            let mean = sum_err / n as f64;
            let bound = 5.0 / (dim as f64).sqrt() / f64::from(1u32 << (bits - 1));
            assert!(mean.abs() < 0.01, "{metric}, {bits} bits: mean relative error {mean}");
            assert!(worst_rel < bound, "{metric}, {bits} bits: worst relative error {worst_rel}");
        }
    }

    /// Every kernel's popcount bounds on `exact` (a scorer without them) of the query rotated
    /// to `pq`, over `n` codes split as a flat store splits them (`head` bytes each in
    /// `heads`, the rest in `tails`): at thresholds from below every key to above them all,
    /// a multi-bit scan's output is the exact scan's to the bit, a one-bit scan's keys at or
    /// below the threshold are (the others may be `+∞`). Returns how many codes the bounds
    /// alone put above the tenth key, summed over the kernels.
    fn check_bounds(exact: &RaBitQScorer, pq: &[f32], heads: &[u8], tails: &[u8], head: usize, what: &str) -> usize {
        let n = heads.len() / head;
        let one_bit = exact.first.is_none();
        let mut keys = vec![0f32; n];
        exact.distances_within(heads, tails, &mut keys, f32::INFINITY);
        let mut sorted = keys.clone();
        sorted.sort_by(f32::total_cmp);
        let thresholds = [sorted[0] - 1.0, sorted[0], sorted[9], sorted[99], sorted[n / 2], f32::INFINITY];
        let mut skipped = 0;
        for bounds in bounds::every_kernel(pq) {
            let mut bounded = exact.clone();
            bounded.bounds = Some(bounds.clone());
            for t in thresholds {
                // Bounded whatever the blocks before passed.
                bounded.pass_rate.set(0.0);
                let (mut want, mut got) = (vec![0f32; n], vec![0f32; n]);
                exact.distances_within(heads, tails, &mut want, t);
                bounded.distances_within(heads, tails, &mut got, t);
                for (i, (&w, &g)) in want.iter().zip(&got).enumerate() {
                    let same = w.to_bits() == g.to_bits();
                    let ok = if one_bit && w > t { same || g == f32::INFINITY } else { same };
                    assert!(ok, "{what}, threshold {t}: code {i} {g}, exact {w}");
                }
            }
            let mut lower = vec![0f32; n];
            let (first_at, terms) = match &exact.first {
                Some(f) => (f.factors_at, [exact.offset, f.sum, f.center_distance]),
                None => (exact.nbytes, [exact.offset, exact.sum, 0.0]),
            };
            let factors = |code: &[u8]| {
                let [a, w, e] = factors_at(code, first_at);
                [a, w, if one_bit { 0.0 } else { e }]
            };
            one_bit_lower_bounds(&bounds, heads, head, terms, &mut lower, factors);
            skipped += lower.iter().filter(|&&l| l > sorted[9]).count();
        }
        skipped
    }

    /// The popcount bounds of the byte-table levels change no key of a flat scan
    /// ([`check_bounds`]), and alone put most codes above a top-10 threshold. Odd dimensions
    /// (a sign plane ending inside a 64-bit word), vectors far from the origin.
    #[test]
    fn popcount_bounds_change_no_key() {
        let n = 1500;
        let kernels = bounds::every_kernel(&[1.0, 2.0]).len();
        for (dim, metric, bits) in [
            (128, Metric::L2, 1),
            (100, Metric::InnerProduct, 1),
            (96, Metric::Cosine, 1),
            (128, Metric::L2, 4),
            (100, Metric::InnerProduct, 3),
            (72, Metric::Cosine, 2),
        ] {
            let data = rows(n, dim, 31);
            let queries = rows(4, dim, 32);
            let mut q = RaBitQuantizer::new(dim, metric).unwrap().with_bits(bits).unwrap();
            q.train(&data).unwrap();
            let mut codes = vec![0u8; n * q.code_size()];
            q.encode(&data, &mut codes).unwrap();
            let head = q.scan_head_bytes().unwrap_or(q.code_size());
            let (mut heads, mut tails) = (Vec::new(), Vec::new());
            for code in codes.chunks_exact(q.code_size()) {
                heads.extend_from_slice(&code[..head]);
                tails.extend_from_slice(&code[head..]);
            }
            let mut skipped = 0;
            for query in queries.chunks_exact(dim) {
                let mut exact = q.scorer(query).unwrap();
                exact.bounds = None;
                let mut buf = Vec::new();
                let pq = q.rotate(prepare_row_into("query", query, dim, metric, &mut buf).unwrap());
                skipped += check_bounds(&exact, &pq, &heads, &tails, head, &format!("{dim} {metric} {bits} bits"));
            }
            let skipped = skipped as f64 / (n * queries.len() / dim * kernels) as f64;
            assert!(skipped >= 0.5, "{dim} {metric} {bits} bits: the bounds skip {skipped} of the codes");
        }
    }

    /// The same for one-bit codes of residuals about several centres, as an inverted file's
    /// lists hold them, with a list's offset: residual scorers carry the bounds too.
    #[test]
    fn popcount_bounds_change_no_residual_key() {
        let n = 1500;
        let kernels = bounds::every_kernel(&[1.0, 2.0]).len();
        for (dim, metric) in [(128, Metric::L2), (100, Metric::InnerProduct)] {
            let data = rows(n, dim, 41);
            let centers = rows(4, dim, 42);
            let labels: Vec<u32> = (0..n as u32).map(|i| i % 4).collect();
            let q = RaBitQuantizer::for_residuals(dim, metric).unwrap();
            let mut resid = data.clone();
            for (row, &l) in resid.chunks_exact_mut(dim).zip(&labels) {
                row.iter_mut().zip(&centers[l as usize * dim..]).for_each(|(v, c)| *v -= c);
            }
            let mut codes = vec![0u8; n * q.code_size()];
            q.encode_about(&resid, &q.rotate(&centers), &labels, &mut codes).unwrap();
            let mut skipped = 0;
            for query in rows(4, dim, 43).chunks_exact(dim) {
                let mut exact = q.residual_scorer(query).unwrap();
                // As this process's level has them (AVX2, NEON).
                assert_eq!(exact.bounds.is_some(), SumBounds::new(&[1.0, 2.0]).is_some());
                (exact.bounds, exact.offset) = (None, 0.75);
                let mut buf = Vec::new();
                let pq = q.rotate(prepare_row_into("query", query, dim, metric, &mut buf).unwrap());
                skipped += check_bounds(&exact, &pq, &codes, &[], q.code_size(), &format!("residual {dim} {metric}"));
            }
            let skipped = skipped as f64 / (n * 4 * kernels) as f64;
            assert!(skipped >= 0.5, "residual {dim} {metric}: the bounds skip {skipped} of the codes");
        }
    }

    /// A one-bit scan stops using the bounds while they pass most codes (an inverted list's
    /// first, near blocks) and uses them again once its threshold rules most out: after two
    /// blocks that pass everything, a block at a threshold below every bound is keyed in full
    /// (no `+∞`), and the block after it is bounded again (all `+∞`).
    #[test]
    fn bounds_sit_out_while_they_pass_most_codes() {
        let (n, dim) = (600, 128);
        let data = rows(n, dim, 51);
        let mut q = RaBitQuantizer::new(dim, Metric::L2).unwrap();
        q.train(&data).unwrap();
        let mut codes = vec![0u8; n * q.code_size()];
        q.encode(&data, &mut codes).unwrap();
        let query = rows(1, dim, 52);
        let mut scorer = q.scorer(&query).unwrap();
        let mut buf = Vec::new();
        let pq = q.rotate(prepare_row_into("query", &query, dim, Metric::L2, &mut buf).unwrap());
        let mut keys = vec![0f32; n];
        scorer.distances(&codes, &mut keys);
        let highest = keys.iter().fold(f32::NEG_INFINITY, |h, &k| h.max(k));
        for bounds in bounds::every_kernel(&pq) {
            (scorer.bounds, scorer.pass_rate) = (Some(bounds), Cell::new(0.0));
            let mut out = vec![0f32; n];
            for _ in 0..2 {
                scorer.distances_within(&codes, &[], &mut out, highest);
                assert!(out.iter().zip(&keys).all(|(o, k)| o.to_bits() == k.to_bits()));
            }
            assert!(scorer.pass_rate.get() >= BOUNDS_WORTH_BELOW, "{}", scorer.pass_rate.get());
            scorer.distances_within(&codes, &[], &mut out, f32::MIN);
            assert!(out.iter().zip(&keys).all(|(o, k)| o.to_bits() == k.to_bits()), "keyed in full");
            assert!(scorer.pass_rate.get() < BOUNDS_WORTH_BELOW, "{}", scorer.pass_rate.get());
            scorer.distances_within(&codes, &[], &mut out, f32::MIN);
            assert!(out.iter().all(|&o| o == f32::INFINITY), "bounded again");
        }
    }

    /// A flat scan of multi-bit codes through the first stage keeps the top k of the full
    /// scan (the slow twin: every code's key, sorted), each hit's score to the bit, while
    /// skipping most codes' planes.
    #[test]
    fn the_first_stage_keeps_the_top_k_and_skips_most_codes() {
        let (dim, n, k) = (128, 3000, 10);
        let data = rows(n, dim, 21);
        let queries = rows(20, dim, 22);
        for (metric, bits) in [(Metric::L2, 2), (Metric::L2, 4), (Metric::InnerProduct, 3)] {
            let mut q = RaBitQuantizer::new(dim, metric).unwrap().with_bits(bits).unwrap();
            q.train(&data).unwrap();
            let mut flat = crate::FlatCodes::new(q.clone());
            flat.add(&data).unwrap();
            let mut codes = vec![0u8; n * q.code_size()];
            q.encode(&data, &mut codes).unwrap();
            assert_eq!(flat.codes(), codes, "{metric} {bits} bits: the flat store's codes, put together");
            // The store's layout: each code's sign plane and first-stage factors apart.
            let head = q.scan_head_bytes().unwrap();
            assert_eq!(head, dim / 8 + 12);
            let (mut heads, mut tails) = (Vec::new(), Vec::new());
            for code in codes.chunks_exact(q.code_size()) {
                heads.extend_from_slice(&code[..head]);
                tails.extend_from_slice(&code[head..]);
            }
            let hits = flat.search(&queries, k).unwrap();
            let (mut found, mut found_even, mut skipped) = (0, 0, 0);
            for (qi, (ids, scores)) in hits.iter().enumerate() {
                let scorer = q.scorer(&queries[qi * dim..][..dim]).unwrap();
                let mut keys = vec![0f32; n];
                scorer.distances(&codes, &mut keys);
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]).then(a.cmp(&b)));
                for (&id, &score) in ids.iter().zip(scores) {
                    let key = metric.key_from_score(score);
                    assert_eq!(key.to_bits(), keys[id as usize].to_bits(), "{metric} {bits} bits: id {id}");
                }
                found += ids.iter().filter(|&&id| order[..k].contains(&(id as usize))).count();
                // At the final threshold, most codes are skipped.
                let mut within = vec![0f32; n];
                scorer.distances_within(&heads, &tails, &mut within, keys[order[k - 1]]);
                skipped += within.iter().filter(|k| k.is_infinite()).count();
                // No threshold yet (a scan's first rows): every key, to the bit.
                let mut all = vec![0f32; n];
                scorer.distances_within(&heads, &tails, &mut all, f32::INFINITY);
                assert!(all.iter().zip(&keys).all(|(a, b)| a.to_bits() == b.to_bits()), "{metric} {bits} bits");
                for (i, (&w, &full)) in within.iter().zip(&keys).enumerate() {
                    assert!(w.is_infinite() || w.to_bits() == full.to_bits(), "code {i}: {w} vs {full}");
                }
            }
            // Filtered (the rows gathered into blocks): the same, over the rows kept.
            let even = |row: usize| row.is_multiple_of(2);
            let hits_even = flat.search_filtered(&queries, k, Some(&even)).unwrap();
            for (qi, (ids, scores)) in hits_even.iter().enumerate() {
                let scorer = q.scorer(&queries[qi * dim..][..dim]).unwrap();
                let mut keys = vec![0f32; n];
                scorer.distances(&codes, &mut keys);
                let mut order: Vec<usize> = (0..n).filter(|&r| even(r)).collect();
                order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]).then(a.cmp(&b)));
                for (&id, &score) in ids.iter().zip(scores) {
                    assert!(even(id as usize), "{metric} {bits} bits: id {id} filtered out");
                    assert_eq!(metric.key_from_score(score).to_bits(), keys[id as usize].to_bits());
                }
                found_even += ids.iter().filter(|&&id| order[..k].contains(&(id as usize))).count();
            }
            let recall = found as f64 / (queries.len() / dim * k) as f64;
            let recall_even = found_even as f64 / (queries.len() / dim * k) as f64;
            assert!(recall_even >= 0.97, "{metric} {bits} bits, filtered: {recall_even}");
            let skipped = skipped as f64 / (queries.len() / dim * n) as f64;
            assert!(recall >= 0.97, "{metric} {bits} bits: {recall} of the full scan's top {k}");
            assert!(skipped >= 0.8, "{metric} {bits} bits: skipped {skipped}");
        }
    }

    #[test]
    fn decoding_points_along_the_residual() {
        let dim = 64;
        let data = rows(300, dim, 5);
        for bits in 1..=RABITQ_MAX_BITS {
            decoding_points_along_the_residual_at(&data, dim, bits);
        }
    }

    fn decoding_points_along_the_residual_at(data: &[f32], dim: usize, bits: u8) {
        let mut q = RaBitQuantizer::new(dim, Metric::L2).unwrap().with_bits(bits).unwrap();
        q.train(data).unwrap();
        let mut codes = vec![0u8; 300 * q.code_size()];
        q.encode(data, &mut codes).unwrap();
        let mut out = vec![0f32; 300 * dim];
        q.decode(&codes, &mut out).unwrap();
        let mut worst = 1f32;
        for (x, y) in data.chunks_exact(dim).zip(out.chunks_exact(dim)) {
            let r: Vec<f32> = x.iter().zip(&q.center).map(|(a, b)| a - b).collect();
            let e: Vec<f32> = y.iter().zip(&q.center).map(|(a, b)| a - b).collect();
            let cos = r.iter().zip(&e).map(|(a, b)| a * b).sum::<f32>()
                / (r.iter().map(|v| v * v).sum::<f32>().sqrt() * e.iter().map(|v| v * v).sum::<f32>().sqrt());
            // ⟨ō, u⟩ concentrates near 0.8 with one bit (the paper); no code points away
            // from its vector. The decoded vector is the residual's projection on `ō`: its
            // length is `ℓ = ⟨ō, r⟩`.
            let norm = |v: &[f32]| v.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm(&e) - cos * norm(&r)).abs() <= 1e-4 * norm(&r), "length {} vs {}", norm(&e), cos * norm(&r));
            worst = worst.min(cos);
        }
        // Each extra bit about halves the angle's sine (0.6 → 0.88 → 0.97 → …).
        let floor = 1.0 - 0.4 / 3f32.powi(i32::from(bits) - 1);
        assert!(worst > floor, "{bits} bits: worst cosine {worst}, wanted above {floor}");
    }

    #[test]
    fn untrained_and_bad_inputs_are_errors() {
        let q = RaBitQuantizer::new(8, Metric::L2).unwrap();
        assert!(matches!(q.scorer(&[0.0; 8]), Err(Error::NotTrained { .. })));
        assert!(matches!(q.encode(&[0.0; 8], &mut [0u8; 13]), Err(Error::NotTrained { .. })));
        assert!(RaBitQuantizer::new(0, Metric::L2).is_err());
        let err = RaBitQuantizer::for_residuals(RABITQ_MAX_DIM + 1, Metric::L2).unwrap_err().to_string();
        assert!(err.contains("dense"), "{err}");
        let r = RaBitQuantizer::for_residuals(8, Metric::L2).unwrap();
        assert!(r.is_trained());
        let mut codes = vec![0u8; r.code_size()];
        assert!(r.encode_about(&[1.0; 8], &[0.0; 8], &[1], &mut codes).is_err(), "label past the centres");
        assert!(r.encode_about(&[1.0; 8], &[0.0; 8], &[0, 0], &mut codes).is_err(), "two labels for one row");
        assert!(r.encode_about(&[f32::NAN; 8], &[0.0; 8], &[0], &mut codes).is_err());
        r.encode_about(&[1.0; 8], &[0.0; 8], &[0], &mut codes).unwrap();
        assert!(crate::validate_codes(&r, &codes, "c").is_ok());
        for (at, bad) in [(1, f32::NAN), (5, f32::INFINITY), (9, -1.0), (9, f32::MAX)] {
            let mut forged = codes.clone();
            forged[at..at + 4].copy_from_slice(&bad.to_le_bytes());
            let err = crate::validate_codes(&r, &forged, "c").unwrap_err().to_string();
            assert!(err.contains("code 0 "), "{bad} at {at}: {err}");
            if !bad.is_finite() {
                assert!(r.decode(&forged, &mut [0f32; 8]).is_err(), "a non-finite factor");
            }
        }
    }

    #[test]
    fn blocks_of_residuals_code_as_the_whole_batch() {
        let (n, dim) = (50, 24);
        let x = rows(n, dim, 7);
        for metric in [Metric::L2, Metric::InnerProduct] {
            let mut q = RaBitQuantizer::new(dim, metric).unwrap().with_bits(4).unwrap();
            q.train(&x).unwrap();
            let mut whole = vec![0u8; n * q.code_size()];
            q.encode(&x, &mut whole).unwrap();
            for block in [1, 7, 16, 49] {
                let mut blocks = vec![0u8; n * q.code_size()];
                q.encode_in_blocks(&x, &mut blocks, block).unwrap();
                assert!(blocks == whole, "{metric:?}: blocks of {block} rows");
            }
        }
    }

    #[test]
    fn sections_round_trip_and_refuse_a_bent_rotation() {
        let dim = 16;
        let data = rows(50, dim, 9);
        let mut q = RaBitQuantizer::new(dim, Metric::Cosine).unwrap();
        q.train(&data).unwrap();
        let mut w = ContainerWriter::in_memory().unwrap();
        q.write_sections(&mut w, "q").unwrap();
        let r = ContainerReader::from_bytes(&w.finish_to_bytes().unwrap(), true).unwrap();
        let back = RaBitQuantizer::read_sections(&r, "q").unwrap();
        assert_eq!(
            (back.rotation.clone(), back.center.clone(), back.metric),
            (q.rotation.clone(), q.center.clone(), q.metric)
        );
        let mut bent = q.clone();
        let mut m = bent.rotation.to_vec();
        m[5] += 0.01;
        bent.rotation = DenseMap::new(m, dim);
        let mut w = ContainerWriter::in_memory().unwrap();
        bent.write_sections(&mut w, "q").unwrap();
        let r = ContainerReader::from_bytes(&w.finish_to_bytes().unwrap(), true).unwrap();
        let err = RaBitQuantizer::read_sections(&r, "q").unwrap_err().to_string();
        assert!(err.contains("orthonormal"), "{err}");
    }

    /// One-bit quantizers write the meta they always did (version 1, no `bits`), multi-bit
    /// ones version 2 with `bits`, residual multi-bit ones with their sign bits' factors
    /// version 3 with `sign_factors`; a meta that mixes them is refused.
    #[test]
    fn bits_round_trip_and_mixed_metas_are_refused() {
        type Forged = (u32, Option<u8>, Option<bool>);
        let write = |q: &RaBitQuantizer, version: Option<Forged>| {
            let mut w = ContainerWriter::in_memory().unwrap();
            q.write_sections(&mut w, "q").unwrap();
            let bytes = w.finish_to_bytes().unwrap();
            let Some((version, bits, sign_factors)) = version else { return bytes };
            // Rewrite the meta with another version and `bits`, keeping the arrays.
            let r = ContainerReader::from_bytes(&bytes, true).unwrap();
            let mut w = ContainerWriter::in_memory().unwrap();
            let mut saved: Saved = r.json("q.meta").unwrap();
            (saved.bits, saved.sign_factors) = (bits, sign_factors);
            w.add_json("q.meta", version, &saved).unwrap();
            for name in ["q.rotation", "q.center"] {
                w.add_array(name, ARRAY_VERSION, &r.array_vec::<f32>(name).unwrap()).unwrap();
            }
            w.finish_to_bytes().unwrap()
        };
        let read =
            |bytes: &[u8]| RaBitQuantizer::read_sections(&ContainerReader::from_bytes(bytes, true).unwrap(), "q");
        for (bits, sign_factors) in [(1, false), (2, false), (9, false), (1, true), (2, true), (9, true)] {
            let mut q = RaBitQuantizer::for_residuals(12, Metric::L2).unwrap().with_bits(bits).unwrap();
            if sign_factors {
                q = q.with_sign_factors();
            }
            let bytes = write(&q, None);
            let r = ContainerReader::from_bytes(&bytes, true).unwrap();
            let meta = std::str::from_utf8(r.bytes("q.meta").unwrap()).unwrap().to_owned();
            assert_eq!(meta.contains("bits"), bits > 1, "{meta}");
            // One bit has no factors apart: the flag is not written (nor read back).
            let version3 = bits > 1 && sign_factors;
            assert_eq!(meta.contains("sign_factors"), version3, "{meta}");
            assert_eq!(
                r.section("q.meta").unwrap().version,
                if version3 {
                    3
                } else if bits > 1 {
                    2
                } else {
                    1
                }
            );
            let back = read(&bytes).unwrap();
            assert_eq!((back.bits(), back.sign_factors(), back.code_size()), (bits, version3, q.code_size()));
        }
        let q = RaBitQuantizer::for_residuals(12, Metric::L2).unwrap();
        for forged in [
            (1, Some(4), None),
            (2, None, None),
            (2, Some(1), None),
            (2, Some(10), None),
            (3, Some(4), None),
            (2, Some(4), Some(true)),
            (3, Some(1), Some(true)),
            (3, Some(4), Some(false)),
            (1, None, Some(true)),
        ] {
            let err = read(&write(&q, Some(forged))).unwrap_err().to_string();
            assert!(err.contains("q.meta"), "{forged:?}: {err}");
        }
        // Version 3 is for residual codes: about a mean the factors are always there.
        let mut centered = RaBitQuantizer::new(12, Metric::L2).unwrap().with_bits(3).unwrap();
        centered.train(&rows(20, 12, 1)).unwrap();
        let err = read(&write(&centered, Some((3, Some(3), Some(true))))).unwrap_err().to_string();
        assert!(err.contains("q.meta"), "{err}");
        assert!(RaBitQuantizer::new(8, Metric::L2).unwrap().with_bits(0).is_err());
        assert!(RaBitQuantizer::new(8, Metric::L2).unwrap().with_bits(RABITQ_MAX_BITS + 1).is_err());
        let err = crate::fastscan::RaBitQFastScan::new(q.with_bits(2).unwrap()).unwrap_err().to_string();
        assert!(err.contains("sign bits"), "{err}");
    }
}
