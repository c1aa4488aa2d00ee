//! Scalar quantizers: every component coded on its own, in 8, 6 or 4 bits over a trained
//! range, or as a 16-bit float (Faiss' `IndexScalarQuantizer`, Milvus' `sq_type`).
//!
//! | [`SqType`] | bits per component | range | code bytes (`d` components) |
//! |---|---|---|---|
//! | `SQ8` | 8 | per dimension | `d` |
//! | `SQ6` | 6 (4 components in 3 bytes) | per dimension | `⌈6d / 8⌉` |
//! | `SQ4` | 4 (2 components per byte) | per dimension | `⌈d / 2⌉` |
//! | `SQ4U` | 4 | one for all dimensions | `⌈d / 2⌉` |
//! | `FP16` | IEEE half | none (nothing to train) | `2d` |
//! | `BF16` | bfloat16 | none (nothing to train) | `2d` |
//!
//! An integer type with `b` bits splits the trained range `[vmin, vmin + 2^b · step]` into
//! `2^b` cells of width `step`; a value is coded by its cell (values outside the range by the
//! nearest cell) and reconstructed at the cell's centre, `vmin + (code + 0.5) · step`, so the
//! error of a value inside the range is at most `step / 2`. Training takes the sample's min
//! and max per dimension (Faiss' `RangeStat_minmax`), or quantiles with
//! [`ScalarQuantizer::with_clip`], and places the cell centres evenly from min to max
//! (`step = (max − min) / (2^b − 1)`, `vmin = min − step / 2`), so both ends are
//! reconstructed exactly. (Faiss uses the same cell width with `vmin = min`, centres shifted by
//! half a cell. On imgsift100k this grid measured better than `2^b` cells spanning exactly
//! `[min, max]`: SQ8 reconstruction error 5.26 against 7.45 per vector, exhaustive recall@10
//! 0.9912 against 0.9898; see BENCHMARKS.md.)
//!
//! Distances are asymmetric: the f32 query against the codes, decoded in registers (see
//! [`SqScorer`]). For cosine, vectors and queries are normalized before coding, and keys are
//! negated inner products between the unit query and the reconstructed (nearly unit) vectors.

mod kernels;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::OnceLock;

use half::{bf16, f16};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_distance::{Metric, SimdLevel};
use vq_io::{ContainerReader, ContainerWriter};

use self::kernels::{BlockFn, Code, Form, IntBlockFn, IntQuery, PairFn, PairParams, Prepared, SqKernels};
use crate::sections::{self, corrupt};
use crate::{CodeScorer, Error, Quantizer, Result, prepare_row_into, prepare_rows};

/// The kind of scalar quantizer; serialized as, and parsed from, the names Milvus and Faiss
/// users know.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SqType {
    /// 8 bits per component, per-dimension range (Faiss `QT_8bit`).
    SQ8,
    /// 6 bits per component, per-dimension range, 4 components packed in 3 bytes
    /// (Faiss `QT_6bit`).
    SQ6,
    /// 4 bits per component, per-dimension range, 2 components per byte (Faiss `QT_4bit`).
    SQ4,
    /// 4 bits per component, one range for every dimension (Faiss `QT_4bit_uniform`): the
    /// distance kernels load no per-dimension scale. Best on data whose dimensions share a
    /// scale, such as normalized embeddings.
    SQ4U,
    /// IEEE 754 half precision (Faiss `QT_fp16`); nothing to train. A vector with a component
    /// beyond half precision's range, ±65,504, is refused (Faiss stores ±∞, which makes every
    /// distance to it infinite; storing ±65,504 would rank it wrongly): for data that large, use
    /// `SQbf16` (f32's range, 8 bits of precision) or a trained `SQ8`.
    FP16,
    /// bfloat16 (Faiss `QT_bf16`); nothing to train.
    BF16,
}

impl SqType {
    /// Every type, in the order of the table above.
    pub const ALL: [SqType; 6] = [SqType::SQ8, SqType::SQ6, SqType::SQ4, SqType::SQ4U, SqType::FP16, SqType::BF16];

    /// The factory-string name: `SQ8`, `SQ6`, `SQ4`, `SQ4U`, `SQfp16`, `SQbf16`.
    pub fn factory_name(self) -> &'static str {
        match self {
            SqType::SQ8 => "SQ8",
            SqType::SQ6 => "SQ6",
            SqType::SQ4 => "SQ4",
            SqType::SQ4U => "SQ4U",
            SqType::FP16 => "SQfp16",
            SqType::BF16 => "SQbf16",
        }
    }

    /// Bits per component of the integer types; `None` for FP16 and BF16.
    pub fn bits(self) -> Option<u32> {
        match self {
            SqType::SQ8 => Some(8),
            SqType::SQ6 => Some(6),
            SqType::SQ4 | SqType::SQ4U => Some(4),
            SqType::FP16 | SqType::BF16 => None,
        }
    }

    /// Bytes per code of `dim` components.
    pub fn code_size(self, dim: usize) -> usize {
        self.code().code_size(dim)
    }

    /// Whether [`Quantizer::train`] learns anything (the integer types do).
    pub fn needs_training(self) -> bool {
        self.bits().is_some()
    }

    fn code(self) -> Code {
        match self {
            SqType::SQ8 => Code::U8,
            SqType::SQ6 => Code::U6,
            SqType::SQ4 | SqType::SQ4U => Code::U4,
            SqType::FP16 => Code::F16,
            SqType::BF16 => Code::Bf16,
        }
    }

    /// Number of trained ranges: one per dimension, one, or none.
    fn ranges(self, dim: usize) -> usize {
        match self {
            SqType::SQ8 | SqType::SQ6 | SqType::SQ4 => dim,
            SqType::SQ4U => 1,
            SqType::FP16 | SqType::BF16 => 0,
        }
    }
}

impl std::fmt::Display for SqType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.factory_name())
    }
}

impl FromStr for SqType {
    type Err = Error;

    /// Parses a factory name (`SQ8`, `SQ6`, `SQ4`, `SQ4U`, `SQfp16`, `SQbf16`); the serde
    /// names `FP16` and `BF16` are accepted too.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "SQ8" => Ok(SqType::SQ8),
            "SQ6" => Ok(SqType::SQ6),
            "SQ4" => Ok(SqType::SQ4),
            "SQ4U" => Ok(SqType::SQ4U),
            "SQfp16" | "FP16" => Ok(SqType::FP16),
            "SQbf16" | "BF16" => Ok(SqType::BF16),
            other => Err(Error::Parameter {
                name: "sq_type",
                what: format!("unknown scalar quantizer `{other}` (expected SQ8, SQ6, SQ4, SQ4U, SQfp16 or SQbf16)"),
            }),
        }
    }
}

/// A scalar quantizer of one [`SqType`] over `dim`-dimensional vectors.
///
/// ```
/// use vq_distance::Metric;
/// use vq_quant::{CodeScorer, Quantizer, ScalarQuantizer, SqType};
///
/// let data: Vec<f32> = (0..64 * 8).map(|i| ((i * 37) % 101) as f32).collect();
/// let mut sq = ScalarQuantizer::new(8, Metric::L2, SqType::SQ8)?;
/// sq.train(&data)?;
/// let mut codes = vec![0u8; 64 * sq.code_size()];
/// sq.encode(&data, &mut codes)?;
/// let scorer = sq.scorer(&data[..8])?;
/// assert!(scorer.distance(&codes[..8]) < 8.0 * 0.25); // within half a step per component
/// # Ok::<(), vq_quant::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ScalarQuantizer {
    dim: usize,
    metric: Metric,
    sq_type: SqType,
    clip: Option<f32>,
    trained: bool,
    /// Lower end of each range (`dim` values, one for SQ4U, none for the float types).
    vmin: Vec<f32>,
    /// Cell width of each range, `(max - min) / 2^bits`.
    step: Vec<f32>,
    /// The code-to-code kernel and its per-dimension parameters (`2 · dim` floats), once
    /// trained. Built by `new` and `train`; a quantizer read from a file builds it on the first
    /// [`Quantizer::code_distance`] instead, because the float types and SQ4U store nothing
    /// per dimension: their sections are a few bytes whatever `dim` they declare, and
    /// building it there would let a tiny file allocate 2^27 bytes (dim 2^24).
    pair: OnceLock<Pair>,
}

/// [`Quantizer::code_distance`]'s kernel, chosen once per quantizer.
#[derive(Debug, Clone)]
struct Pair {
    params: PairParams,
    kernel: PairFn,
}

impl PartialEq for ScalarQuantizer {
    /// Equal parameters (the derived code-to-code tables follow from them).
    fn eq(&self, other: &Self) -> bool {
        (self.dim, self.metric, self.sq_type, self.clip, self.trained, &self.vmin, &self.step)
            == (other.dim, other.metric, other.sq_type, other.clip, other.trained, &other.vmin, &other.step)
    }
}

/// Section layout versions.
const PARAMS_VERSION: u32 = 1;
const ARRAY_VERSION: u32 = 1;

/// What [`Quantizer::write_sections`] stores as JSON.
#[derive(Serialize, Deserialize)]
struct SavedParams {
    sq_type: SqType,
    dim: usize,
    metric: String,
    clip: Option<f32>,
    trained: bool,
}

impl ScalarQuantizer {
    /// An untrained quantizer (FP16 and BF16 are trained from the start).
    pub fn new(dim: usize, metric: Metric, sq_type: SqType) -> Result<Self> {
        if dim == 0 {
            return Err(Error::Parameter { name: "dim", what: "must be at least 1".into() });
        }
        let mut sq = ScalarQuantizer {
            dim,
            metric,
            sq_type,
            clip: None,
            trained: !sq_type.needs_training(),
            vmin: Vec::new(),
            step: Vec::new(),
            pair: OnceLock::new(),
        };
        sq.set_pair(SqKernels::active());
        Ok(sq)
    }

    /// Builds the code-to-code kernel's parameters from the trained ranges.
    fn set_pair(&mut self, kernels: &SqKernels) {
        self.pair = OnceLock::new();
        if self.trained {
            let _ = self.pair.set(self.build_pair(kernels));
        }
    }

    /// The code-to-code kernel of `kernels` for the trained ranges.
    fn build_pair(&self, kernels: &SqKernels) -> Pair {
        let form = if self.metric == Metric::L2 { Form::L2 } else { Form::Ip };
        let (s, o) = if self.sq_type.needs_training() {
            (0..self.dim)
                .map(|j| {
                    let (vmin, step) = self.range(j);
                    (step, vmin + 0.5 * step)
                })
                .unzip()
        } else {
            (vec![1.0; self.dim], vec![0.0; self.dim])
        };
        let params = PairParams::new(self.sq_type.code(), form, s, o);
        Pair { kernel: (kernels.pair)(params.code, params.form), params }
    }

    /// [`Quantizer::code_distance`] with the kernels of `level` (`None` if this CPU cannot
    /// run them), for tests against the portable twin.
    #[cfg(test)]
    fn code_distance_at(&self, a: &[u8], b: &[u8], level: SimdLevel) -> Option<f32> {
        let mut sq = self.clone();
        sq.set_pair(&SqKernels::for_level(level)?);
        Some(sq.code_distance(a, b))
    }

    /// Trains ranges on quantiles instead of min/max: with `Some(q)`, each range runs from
    /// the sample's `q` quantile to its `1 - q` quantile (`0 <= q < 0.5`), so a few outliers
    /// do not widen every cell. `None` (the default) uses min and max. Ignored by FP16/BF16.
    /// Takes effect at the next [`Quantizer::train`].
    pub fn with_clip(mut self, clip: Option<f32>) -> Result<Self> {
        check_clip(clip).map_err(|what| Error::Parameter { name: "clip", what })?;
        self.clip = clip;
        Ok(self)
    }

    /// The quantizer type.
    pub fn sq_type(&self) -> SqType {
        self.sq_type
    }

    /// The quantile clip (see [`ScalarQuantizer::with_clip`]).
    pub fn clip(&self) -> Option<f32> {
        self.clip
    }

    /// The trained ranges as `(vmin, step)`: one value per dimension (SQ8/SQ6/SQ4), one for
    /// all (SQ4U), or none (FP16/BF16, or not trained yet).
    pub fn ranges(&self) -> (&[f32], &[f32]) {
        (&self.vmin, &self.step)
    }

    /// A scorer that uses the kernels of `level` rather than the process's level, or `None`
    /// if this CPU cannot run them: tests and benchmarks compare levels with it.
    pub fn scorer_for_level(&self, query: &[f32], level: SimdLevel) -> Result<Option<SqScorer<'_>>> {
        match SqKernels::for_level(level) {
            Some(kernels) => self.scorer_with(query, &kernels).map(Some),
            None => Ok(None),
        }
    }

    /// An approximate SQ8 scorer with the query quantized to 8 bits, whose sums run in
    /// integers (`vpdpwssd`/`vpdpbusd` where the CPU has AVX-512 VNNI, `vpmaddwd` otherwise):
    /// a fast first pass to re-rank with [`Quantizer::scorer`] or the original vectors.
    ///
    /// - L2: the query is rounded to the code grid (`r_j`, clamped to `0..=255`) and the
    ///   per-dimension weights `step_j²` to 7 bits (`m_j`); the key is
    ///   `β · Σ m_j (r_j − c_j)²` (`β = max step² / 127`).
    /// - Inner product / cosine: `q_j · step_j` is rounded to 8 bits (`w_j`, scale `α`); the
    ///   key is the exact constant term minus `α · Σ w_j c_j`.
    ///
    /// Errors: [`Error::Parameter`] for a type other than SQ8, and the checks of
    /// [`Quantizer::scorer`].
    pub fn scorer_int8(&self, query: &[f32]) -> Result<SqInt8Scorer<'_>> {
        self.scorer_int8_with(query, SqKernels::active())
    }

    /// [`ScalarQuantizer::scorer_int8`] with the kernels of `level` (`None` if this CPU cannot
    /// run them).
    pub fn scorer_int8_for_level(&self, query: &[f32], level: SimdLevel) -> Result<Option<SqInt8Scorer<'_>>> {
        match SqKernels::for_level(level) {
            Some(kernels) => self.scorer_int8_with(query, &kernels).map(Some),
            None => Ok(None),
        }
    }

    fn scorer_int8_with(&self, query: &[f32], kernels: &SqKernels) -> Result<SqInt8Scorer<'_>> {
        if self.sq_type != SqType::SQ8 {
            return Err(Error::Parameter {
                name: "sq_type",
                what: format!("the 8-bit query path scores SQ8 codes, not {}", self.sq_type),
            });
        }
        if !self.trained {
            return Err(self.not_trained());
        }
        let mut normalized = Vec::new();
        let q = prepare_row_into("query", query, self.dim, self.metric, &mut normalized)?;
        let dim = self.dim;
        let query = if self.metric == Metric::L2 {
            let beta = self.step.iter().map(|&s| f64::from(s) * f64::from(s)).fold(0.0, f64::max) / 127.0;
            let (mut r, mut m) = (Vec::with_capacity(dim), Vec::with_capacity(dim));
            let mut offset = 0f64;
            for (j, &x) in q.iter().enumerate() {
                let (vmin, step) = (f64::from(self.vmin[j]), f64::from(self.step[j]));
                if step > 0.0 {
                    r.push(((f64::from(x) - vmin) / step - 0.5).round().clamp(0.0, 255.0) as i16);
                    m.push((step * step / beta).round() as i16);
                } else {
                    // Every code decodes to vmin here: a constant term.
                    offset += (f64::from(x) - vmin).powi(2);
                    r.push(0);
                    m.push(0);
                }
            }
            IntQuery::new(Form::L2, dim, &r, &m, &[], beta, offset)
        } else {
            let a: Vec<f64> = q.iter().zip(&self.step).map(|(&x, &s)| f64::from(x) * f64::from(s)).collect();
            let alpha = a.iter().fold(0f64, |m, v| m.max(v.abs())) / 127.0;
            let w: Vec<i8> = a
                .iter()
                .map(|&v| if alpha > 0.0 { (v / alpha).round().clamp(-127.0, 127.0) as i8 } else { 0 })
                .collect();
            let constant: f64 = q
                .iter()
                .zip(self.vmin.iter().zip(&self.step))
                .map(|(&x, (&vmin, &step))| f64::from(x) * (f64::from(vmin) + 0.5 * f64::from(step)))
                .sum();
            IntQuery::new(Form::Ip, dim, &[], &[], &w, -alpha, -constant)
        };
        let block = (kernels.int)(query.form);
        Ok(SqInt8Scorer { query, block, _quantizer: PhantomData })
    }

    /// The SIMD level the scorers of this process use (vq-distance's, `VQ_SIMD` included).
    pub fn simd_level() -> SimdLevel {
        SqKernels::active().level
    }

    fn not_trained(&self) -> Error {
        Error::NotTrained { quantizer: self.name() }
    }

    fn levels(&self) -> f32 {
        self.sq_type.bits().map_or(0.0, |b| (1u32 << b) as f32)
    }

    /// Range `j` as `(vmin, step)` (SQ4U has one for every `j`).
    #[inline(always)]
    fn range(&self, j: usize) -> (f32, f32) {
        let j = if self.sq_type == SqType::SQ4U { 0 } else { j };
        (self.vmin[j], self.step[j])
    }

    /// The cell of `x` in range `j`.
    #[inline(always)]
    fn level_of(&self, x: f32, j: usize, max_level: f32) -> u32 {
        let (vmin, step) = self.range(j);
        if step <= 0.0 {
            return 0;
        }
        ((x - vmin) / step).floor().clamp(0.0, max_level) as u32
    }

    fn encode_row(&self, x: &[f32], code: &mut [u8]) {
        code.fill(0);
        let max_level = self.levels() - 1.0;
        match self.sq_type {
            SqType::SQ8 => {
                for (j, (c, &v)) in code.iter_mut().zip(x).enumerate() {
                    *c = self.level_of(v, j, max_level) as u8;
                }
            }
            SqType::SQ6 => {
                for (j, &v) in x.iter().enumerate() {
                    let bits = (self.level_of(v, j, max_level) as u16) << (6 * j % 8);
                    code[6 * j / 8] |= bits as u8;
                    if let Some(next) = code.get_mut(6 * j / 8 + 1) {
                        *next |= (bits >> 8) as u8;
                    }
                }
            }
            SqType::SQ4 | SqType::SQ4U => {
                for (j, &v) in x.iter().enumerate() {
                    code[j / 2] |= (self.level_of(v, j, max_level) as u8) << ((j & 1) * 4);
                }
            }
            SqType::FP16 => {
                // (Within half precision's range: `encode` checked.)
                for (c, &v) in code.chunks_exact_mut(2).zip(x) {
                    let h = f16::from_f32(v);
                    c.copy_from_slice(&h.to_le_bytes());
                }
            }
            SqType::BF16 => {
                for (c, &v) in code.chunks_exact_mut(2).zip(x) {
                    let h = bf16::from_f32(v.clamp(bf16::MIN.to_f32(), bf16::MAX.to_f32()));
                    c.copy_from_slice(&h.to_le_bytes());
                }
            }
        }
    }

    #[inline(always)]
    fn decode_component(&self, code: &[u8], j: usize) -> f32 {
        let c = self.sq_type.code().component(code, j);
        if self.sq_type.needs_training() {
            let (vmin, step) = self.range(j);
            vmin + (c + 0.5) * step
        } else {
            c
        }
    }

    fn decode_row(&self, code: &[u8], out: &mut [f32]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.decode_component(code, j);
        }
    }

    /// Folds a checked (and, for cosine, normalized) query into the kernels' input.
    fn prepare(&self, q: &[f32]) -> Prepared {
        let code = self.sq_type.code();
        let dim = self.dim;
        let ip = self.metric != Metric::L2;
        match self.sq_type {
            SqType::FP16 | SqType::BF16 => {
                if ip {
                    Prepared::new(code, Form::Ip, q.iter().map(|&x| -x).collect(), vec![0.0; dim], 1.0, 0.0)
                } else {
                    Prepared::new(code, Form::L2Unit, q.to_vec(), vec![1.0; dim], 1.0, 0.0)
                }
            }
            SqType::SQ4U if !ip && self.step[0] > 0.0 && self.unit_form_fits(q) => {
                // (q - vmin - (c + 0.5) step)² = step² ((q - vmin) / step - 0.5 - c)².
                let (vmin, step) = (f64::from(self.vmin[0]), f64::from(self.step[0]));
                let a = q.iter().map(|&x| ((f64::from(x) - vmin) / step - 0.5) as f32).collect();
                Prepared::new(code, Form::L2Unit, a, vec![1.0; dim], (step * step) as f32, 0.0)
            }
            _ if ip => {
                // q · (vmin + (c + 0.5) step) = Σ q (vmin + step / 2) + Σ (q step) c; negated.
                let mut offset = 0f64;
                let mut a = Vec::with_capacity(dim);
                for (j, &x) in q.iter().enumerate() {
                    let (vmin, step) = self.range(j);
                    offset += f64::from(x) * (f64::from(vmin) + 0.5 * f64::from(step));
                    a.push(-(x * step));
                }
                Prepared::new(code, Form::Ip, a, vec![0.0; dim], 1.0, -offset as f32)
            }
            _ => {
                // q - (vmin + (c + 0.5) step) = (q - vmin - step / 2) - c step.
                let (mut a, mut b) = (Vec::with_capacity(dim), Vec::with_capacity(dim));
                for (j, &x) in q.iter().enumerate() {
                    let (vmin, step) = self.range(j);
                    a.push((f64::from(x) - f64::from(vmin) - 0.5 * f64::from(step)) as f32);
                    b.push(step);
                }
                Prepared::new(code, Form::L2, a, b, 1.0, 0.0)
            }
        }
    }

    /// Whether SQ4U's L2 form in steps, `Σ ((q − vmin) / step − 0.5 − c)²`, stays finite in f32
    /// for query `q`: not for a query far outside a tiny range (data spanning 10⁻³⁰, a query
    /// of 1: every key was +∞ and a search returned only padding). Otherwise the general form
    /// (differences, then steps) scores it.
    fn unit_form_fits(&self, q: &[f32]) -> bool {
        let (vmin, step) = (f64::from(self.vmin[0]), f64::from(self.step[0]));
        let worst: f64 = q.iter().map(|&x| ((f64::from(x) - vmin) / step).abs() + 16.0).map(|a| a * a).sum();
        worst < 1e36
    }

    fn scorer_with(&self, query: &[f32], kernels: &SqKernels) -> Result<SqScorer<'_>> {
        if !self.trained {
            return Err(self.not_trained());
        }
        let mut normalized = Vec::new();
        let q = prepare_row_into("query", query, self.dim, self.metric, &mut normalized)?;
        let prepared = self.prepare(q);
        let block = (kernels.select)(prepared.code, prepared.form);
        Ok(SqScorer { prepared, block, _quantizer: PhantomData })
    }

    fn check_codes(&self, what: &'static str, codes: &[u8], rows: usize) -> Result<()> {
        let expected = rows * self.code_size();
        if codes.len() != expected {
            return Err(Error::CodeLength { what, len: codes.len(), expected });
        }
        Ok(())
    }

    /// Trains the per-type ranges from a checked sample.
    fn fit(&self, sample: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let levels = f64::from(self.levels());
        let range = |values: &mut Vec<f32>| {
            // 2^b cells whose centres are evenly spaced from `lo` to `hi`: the ends of the
            // range are reconstructed exactly, and integers spanning 2^b consecutive values
            // (u8 data using all of 0..=255, under SQ8) are coded losslessly.
            let (lo, hi) = value_range(values, self.clip);
            let step = (f64::from(hi) - f64::from(lo)) / (levels - 1.0);
            ((f64::from(lo) - 0.5 * step) as f32, step as f32)
        };
        if self.sq_type == SqType::SQ4U {
            let (lo, step) = range(&mut sample.to_vec());
            return (vec![lo], vec![step]);
        }
        let rows = sample.len() / self.dim;
        (0..self.dim)
            .into_par_iter()
            .map(|j| {
                let mut column: Vec<f32> = (0..rows).map(|r| sample[r * self.dim + j]).collect();
                range(&mut column)
            })
            .unzip()
    }

    /// Checks parameters read from a file.
    fn validate(&self) -> std::result::Result<(), String> {
        check_clip(self.clip)?;
        if !self.sq_type.needs_training() && !self.trained {
            return Err(format!("{} needs no training but is marked untrained", self.sq_type));
        }
        let expected = if self.trained { self.sq_type.ranges(self.dim) } else { 0 };
        if self.vmin.len() != expected || self.step.len() != expected {
            return Err(format!(
                "{} ranges (vmin {}, step {}), expected {expected}",
                self.sq_type,
                self.vmin.len(),
                self.step.len()
            ));
        }
        let top = self.levels();
        for (j, (&vmin, &step)) in self.vmin.iter().zip(&self.step).enumerate() {
            if !vmin.is_finite() || !step.is_finite() || step < 0.0 || !(vmin + top * step).is_finite() {
                return Err(format!("range {j} (vmin {vmin}, step {step}) is not a finite, non-negative range"));
            }
        }
        Ok(())
    }
}

/// Refuses a component half precision cannot hold (beyond ±65,504), naming its row.
fn check_half_range(vectors: &[f32], dim: usize) -> Result<()> {
    let limit = f16::MAX.to_f32();
    match vectors.iter().position(|v| v.abs() > limit) {
        None => Ok(()),
        Some(at) => Err(Error::Parameter {
            name: "vectors",
            what: format!(
                "row {}, component {} is {}, beyond SQfp16's range of ±65,504 (SQbf16 holds f32's range)",
                at / dim,
                at % dim,
                vectors[at]
            ),
        }),
    }
}

fn check_clip(clip: Option<f32>) -> std::result::Result<(), String> {
    match clip {
        Some(q) if !(0.0..0.5).contains(&q) => Err(format!("quantile {q} is outside [0, 0.5)")),
        _ => Ok(()),
    }
}

/// `(min, max)` of `values`, or the `clip` and `1 - clip` quantiles. `values` is not empty
/// and holds only finite numbers; it is reordered.
fn value_range(values: &mut [f32], clip: Option<f32>) -> (f32, f32) {
    match clip {
        Some(q) if q > 0.0 => {
            let last = values.len() - 1;
            let lo_at = (f64::from(q) * last as f64).floor() as usize;
            let hi_at = ((1.0 - f64::from(q)) * last as f64).ceil() as usize;
            let lo = *values.select_nth_unstable_by(lo_at, f32::total_cmp).1;
            let hi = *values.select_nth_unstable_by(hi_at.min(last), f32::total_cmp).1;
            (lo, hi.max(lo))
        }
        _ => values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v))),
    }
}

impl Quantizer for ScalarQuantizer {
    type Scorer<'a> = SqScorer<'a>;

    fn name(&self) -> String {
        self.sq_type.factory_name().to_string()
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn code_size(&self) -> usize {
        self.sq_type.code_size(self.dim)
    }

    fn is_trained(&self) -> bool {
        self.trained
    }

    fn train(&mut self, sample: &[f32]) -> Result<()> {
        let sample = prepare_rows("sample", sample, self.dim, self.metric)?.into_cow();
        if !self.sq_type.needs_training() {
            return Ok(());
        }
        if sample.is_empty() {
            return Err(Error::TooFewTrainingPoints { quantizer: self.name(), needed: 1, got: 0 });
        }
        let (vmin, step) = self.fit(&sample);
        self.vmin = vmin;
        self.step = step;
        self.trained = true;
        self.set_pair(SqKernels::active());
        Ok(())
    }

    /// SQfp16 refuses a component beyond ±65,504 (cosine rows are unit length once prepared).
    fn check_encodable(&self, vectors: &[f32]) -> Result<()> {
        match self.sq_type {
            SqType::FP16 if self.metric != Metric::Cosine => check_half_range(vectors, self.dim),
            _ => Ok(()),
        }
    }

    fn encode(&self, vectors: &[f32], codes: &mut [u8]) -> Result<()> {
        if !self.trained {
            return Err(self.not_trained());
        }
        let vectors = prepare_rows("vectors", vectors, self.dim, self.metric)?.into_cow();
        let rows = vectors.len() / self.dim;
        self.check_codes("codes", codes, rows)?;
        self.check_encodable(&vectors)?;
        codes
            .par_chunks_mut(self.code_size())
            .zip(vectors.par_chunks(self.dim))
            .with_min_len(64)
            .for_each(|(code, x)| self.encode_row(x, code));
        Ok(())
    }

    fn decode(&self, codes: &[u8], out: &mut [f32]) -> Result<()> {
        if !self.trained {
            return Err(self.not_trained());
        }
        if !codes.len().is_multiple_of(self.code_size()) {
            return Err(Error::CodeLength {
                what: "codes",
                len: codes.len(),
                expected: codes.len().next_multiple_of(self.code_size()),
            });
        }
        let rows = codes.len() / self.code_size();
        if out.len() != rows * self.dim {
            return Err(
                vq_distance::Error::OutputLength { what: "out", got: out.len(), expected: rows * self.dim }.into()
            );
        }
        codes
            .par_chunks(self.code_size())
            .zip(out.par_chunks_mut(self.dim))
            .with_min_len(64)
            .for_each(|(code, o)| self.decode_row(code, o));
        Ok(())
    }

    fn scorer(&self, query: &[f32]) -> Result<SqScorer<'_>> {
        self.scorer_with(query, SqKernels::active())
    }

    /// The key between the reconstructions of `a` and `b` (SIMD, decoding both in
    /// registers); `+∞` if either is shorter than `code_size()` or the quantizer is not
    /// trained.
    fn code_distance(&self, a: &[u8], b: &[u8]) -> f32 {
        if !self.trained {
            return f32::INFINITY;
        }
        let pair = self.pair.get_or_init(|| self.build_pair(SqKernels::active()));
        (pair.kernel)(&pair.params, a, b)
    }

    fn decoded_norm_sq_bound(&self) -> Option<f64> {
        // Trained types decode component j to `vmin + (c + 0.5) step` with `c` in
        // `0..levels`: the largest magnitude is at one of the two ends. FP16/BF16 codes can
        // hold anything (an infinity, a NaN), so they have no bound.
        if !self.trained || !self.sq_type.needs_training() {
            return None;
        }
        let last = f64::from(self.levels()) - 0.5;
        let mut bound = 0.0f64;
        for j in 0..self.dim {
            let (vmin, step) = self.range(j);
            let (vmin, step) = (f64::from(vmin), f64::from(step));
            let end = (vmin + 0.5 * step).abs().max((vmin + last * step).abs());
            bound += end * end;
        }
        bound.is_finite().then_some(bound)
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + (self.vmin.capacity() + self.step.capacity()) * std::mem::size_of::<f32>()
            + self.pair.get().map_or(0, |p| p.params.memory_bytes())
    }

    fn write_sections(&self, writer: &mut ContainerWriter, prefix: &str) -> Result<()> {
        let params = SavedParams {
            sq_type: self.sq_type,
            dim: self.dim,
            metric: self.metric.name().to_string(),
            clip: self.clip,
            trained: self.trained,
        };
        writer.add_json(&format!("{prefix}.sq"), PARAMS_VERSION, &params)?;
        writer.add_array(&format!("{prefix}.vmin"), ARRAY_VERSION, &self.vmin)?;
        writer.add_array(&format!("{prefix}.step"), ARRAY_VERSION, &self.step)?;
        Ok(())
    }

    fn read_sections(reader: &ContainerReader, prefix: &str) -> Result<Self> {
        let name = format!("{prefix}.sq");
        let (vmin_name, step_name) = (format!("{prefix}.vmin"), format!("{prefix}.step"));
        reader.check_versions(&[(&name, PARAMS_VERSION), (&vmin_name, ARRAY_VERSION), (&step_name, ARRAY_VERSION)])?;
        let params: SavedParams = reader.json(&name)?;
        let metric = sections::metric(&name, &params.metric)?;
        if params.dim == 0 || params.dim > vq_io::MAX_DIM {
            return Err(corrupt(&name, format!("dimension {} is outside 1..={}", params.dim, vq_io::MAX_DIM)));
        }
        let sq = ScalarQuantizer {
            dim: params.dim,
            metric,
            sq_type: params.sq_type,
            clip: params.clip,
            trained: params.trained,
            vmin: reader.array::<f32>(&vmin_name)?.to_vec(),
            step: reader.array::<f32>(&step_name)?.to_vec(),
            // Built on first use (see the field): nothing here is proportional to a `dim` that
            // no section's length backs.
            pair: OnceLock::new(),
        };
        sq.validate().map_err(|what| corrupt(&name, what))?;
        Ok(sq)
    }
}

/// A query prepared by a [`ScalarQuantizer`]: folded with the trained ranges so that the
/// kernel decodes each code component in registers and needs one or two fused multiply-adds
/// per component (L2: `(a_j − c_j·step_j)²` with `a_j = q_j − vmin_j − step_j / 2`; inner
/// product: `Σ (q_j·step_j)·c_j` plus a per-query constant).
///
/// A code shorter than the quantizer's code size gets the key `+∞`.
#[derive(Debug, Clone)]
pub struct SqScorer<'a> {
    prepared: Prepared,
    block: BlockFn,
    _quantizer: PhantomData<&'a ScalarQuantizer>,
}

impl CodeScorer for SqScorer<'_> {
    fn distance(&self, code: &[u8]) -> f32 {
        let mut out = [f32::INFINITY];
        (self.block)(&self.prepared, code, &mut out);
        out[0]
    }

    fn distances(&self, codes: &[u8], out: &mut [f32]) {
        let size = self.prepared.code_size;
        let n = out.len().min(codes.len().checked_div(size).unwrap_or(0));
        (self.block)(&self.prepared, codes, &mut out[..n]);
        out[n..].fill(f32::INFINITY);
    }
}

/// An SQ8 scorer with the query quantized to 8 bits: see [`ScalarQuantizer::scorer_int8`].
///
/// Approximate: its keys differ from [`SqScorer`]'s by the rounding of the query. Every SIMD
/// level gives bit-identical keys (the sums are exact integers). A code shorter than the
/// dimension gets the key `+∞`.
#[derive(Debug, Clone)]
pub struct SqInt8Scorer<'a> {
    query: IntQuery,
    block: IntBlockFn,
    _quantizer: PhantomData<&'a ScalarQuantizer>,
}

impl CodeScorer for SqInt8Scorer<'_> {
    fn distance(&self, code: &[u8]) -> f32 {
        let mut out = [f32::INFINITY];
        (self.block)(&self.query, code, &mut out);
        out[0]
    }

    fn distances(&self, codes: &[u8], out: &mut [f32]) {
        let n = out.len().min(codes.len().checked_div(self.query.dim).unwrap_or(0));
        (self.block)(&self.query, codes, &mut out[..n]);
        out[n..].fill(f32::INFINITY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every SIMD level's code-to-code kernel equals the portable twin, at dimensions around
    /// the lane boundaries, with garbage in the unused bits of the last byte.
    #[test]
    fn code_distance_levels_match_the_portable_twin() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 20.0 - 10.0
        };
        for dim in [1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 128] {
            let data: Vec<f32> = (0..20 * dim).map(|_| next()).collect();
            for sq_type in SqType::ALL {
                for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
                    let mut sq = ScalarQuantizer::new(dim, metric, sq_type).unwrap();
                    sq.train(&data).unwrap();
                    let size = sq.code_size();
                    let mut codes = vec![0u8; 20 * size];
                    sq.encode(&data, &mut codes).unwrap();
                    let bits = dim * sq_type.bits().map_or(16, |b| b as usize);
                    if bits % 8 != 0 {
                        for code in codes.chunks_mut(size) {
                            code[size - 1] |= 0xffu8 << (bits % 8);
                        }
                    }
                    for level in SimdLevel::available() {
                        for i in 0..20 {
                            let (a, b) = (&codes[i * size..][..size], &codes[(19 - i) * size..][..size]);
                            let want = sq.code_distance_at(a, b, SimdLevel::Portable).unwrap();
                            let got = sq.code_distance_at(a, b, level).unwrap();
                            let mut x = vec![0f32; 2 * dim];
                            sq.decode(&[a, b].concat(), &mut x).unwrap();
                            let size: f32 = x.iter().map(|v| v * v).sum();
                            assert!(
                                (got - want).abs() <= 1e-5 * size + 1e-5,
                                "{level} {sq_type} {metric} dim {dim}: {got} vs {want}"
                            );
                        }
                        assert_eq!(sq.code_distance_at(&codes[..size - 1], &codes, level), Some(f32::INFINITY));
                    }
                }
            }
        }
    }
}
