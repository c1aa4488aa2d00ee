//! [`RaBitQFastScan`]: the exhaustive search over RaBitQ codes whose bits are scanned in the
//! fast-scan layout (Faiss' `IndexRaBitQFastScan`, factory string `RaBitQfs`).
//!
//! A RaBitQ code's sign bits, read four at a time, are a 4-bit PQ code of `2⌈d/8⌉`
//! sub-quantizers whose "codebook" is the 16 subsets of four dimensions: the sum
//! `s = Σ_{b_j = 1} (P q)_j` the key needs is `Σ_g T_g[nibble_g]` with `T_g[v]` the rotated query
//! summed over the bits of `v`. So the bits go into [`PackedCodes`] unchanged and the query's
//! nibble tables into a [`QuantizedLut`]; the block kernels return `s` as byte sums for 32
//! codes at once, within [`QuantizedLut::max_error`] of the float sum. The per-code factors
//! (`a`, `w`; `ℓ` for decoding) live beside the blocks, one array each, and turn 32 sums into
//! 32 keys in one vectorized pass: `offset + a − w · (2 s − Σ_j (P q)_j)`.
//!
//! Unlike a PQ fast scan the top-k's threshold cannot be tested on the integer sums (each code
//! scales its sum by its own `w`), so every block's keys are computed and compared as floats;
//! that pass costs a few instructions per code beside the kernel's shuffles.
//!
//! Multi-bit codes (`RaBitQfs{b}`, Faiss' `IndexRaBitQFastScan` with `nb_bits`) keep their sign
//! plane packed so, with the sign bits' own factors `a₁`, `w₁` and error bound `ε₁` in the
//! arrays, and the rest of each code (its other planes and factors) beside them. The block's
//! keys are then the one-bit estimates: less the table's error (`2 |w₁|` times the table's
//! bound) and `ε₁ ‖q − c‖` they bound each code's key from below (Gao and Long's bound at
//! `ε₀ = 1.9`, as [`FlatCodes`](crate::FlatCodes)' first stage), and only the codes whose bound
//! can reach the threshold are put together and scored over every plane, exactly as the plain
//! layout scores them.

use rayon::prelude::*;
use vq_distance::{Neighbors, RangeResult, TopK};
use vq_io::{ContainerReader, ContainerWriter};

use super::{BLOCK, PackedCodes, QuantizedLut, Rows, active_block_sums};
use crate::rabitq::{NibbleTerms, Passed, SecondStage, factors_at};
use crate::sections::corrupt;
use crate::{Error, Quantizer, RaBitQuantizer, Result, ScanSink, WithinKey, validate_codes};

/// Layout version of the `{prefix}.codes` section (standard RaBitQ codes, split on load).
const CODES_VERSION: u32 = 1;

/// RaBitQ codes in the fast-scan layout: the bits of each code packed in blocks of 32
/// ([`PackedCodes`] of `2⌈d/8⌉` nibbles), its factors `a`, `w` (and `ℓ`, for decoding) in
/// arrays beside them. Row `i` is the `i`-th code appended. What [`RaBitQFastScan`] scans, and
/// an inverted file's lists.
#[derive(Debug, Clone, PartialEq)]
pub struct RaBitQPacked {
    bits: PackedCodes,
    /// Bytes of a standard code: the bits, then `a`, `w`, `ℓ` as little-endian f32.
    code_size: usize,
    /// Per row, the key's constant term `a`.
    a: Vec<f32>,
    /// Per row, the weight `w` of the query's sum.
    w: Vec<f32>,
    /// Per row, the length `ℓ` (decoding only); for multi-bit codes, the first stage's error
    /// bound `ε₁` instead.
    ell: Vec<f32>,
    /// Bytes of each code after its sign plane and three floats: a multi-bit code's other
    /// planes and factors (none for one bit).
    tail: usize,
    /// Per row, those bytes.
    tails: Vec<u8>,
}

impl RaBitQPacked {
    /// Empty, for the codes of `quantizer`.
    ///
    /// Multi-bit codes keep their sign plane here, its own factors `a₁`, `w₁`, `ε₁` in the
    /// arrays, and the rest of each code beside them: their scan bounds each code by its sign
    /// bits and scores the codes it passes over every plane. Multi-bit codes without the sign
    /// bits' factors (residual codes not [`RaBitQuantizer::with_sign_factors`]) are an error.
    pub fn new(quantizer: &RaBitQuantizer) -> Result<Self> {
        if quantizer.bits() > 1 && !quantizer.sign_factors() {
            let what = format!(
                "{} bits per dimension without the sign bits' own factors: the fast-scan layout bounds multi-bit \
                 codes by them (RaBitQuantizer::with_sign_factors)",
                quantizer.bits()
            );
            return Err(Error::Parameter { name: "bits", what });
        }
        let head = quantizer.plane_bytes() + 4 * 3;
        Ok(RaBitQPacked {
            bits: PackedCodes::new(2 * quantizer.plane_bytes())?,
            code_size: quantizer.code_size(),
            a: Vec::new(),
            w: Vec::new(),
            ell: Vec::new(),
            tail: quantizer.code_size() - head,
            tails: Vec::new(),
        })
    }

    /// Codes held.
    pub fn len(&self) -> usize {
        self.bits.len()
    }

    /// `true` if none.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// Appends standard RaBitQ codes (`⌈d/8⌉` bytes of bits, then `a`, `w`, `ℓ`; multi-bit
    /// codes: the sign plane, `a₁`, `w₁`, `ε₁`, then the rest): the sign bits packed, the
    /// factors after them split off, the rest kept whole.
    pub fn extend(&mut self, codes: &[u8]) -> Result<()> {
        let (cs, nbytes) = (self.code_size, self.bits.code_size());
        if !codes.len().is_multiple_of(cs) {
            return Err(Error::CodeLength { what: "codes", len: codes.len(), expected: codes.len() / cs * cs });
        }
        self.bits.extend_strided(codes, cs);
        // Room for the batch first (the growth a `Vec` would pick; exact into an empty store):
        // pushed one at a time, a bulk load held up to twice its factors and tails.
        let n = codes.len() / cs;
        for v in [&mut self.a, &mut self.w, &mut self.ell] {
            v.reserve(n);
        }
        self.tails.reserve(n * self.tail);
        for code in codes.chunks_exact(cs) {
            let [a, w, ell] = factors_at(code, nbytes);
            self.a.push(a);
            self.w.push(w);
            self.ell.push(ell);
            self.tails.extend_from_slice(&code[cs - self.tail..]);
        }
        Ok(())
    }

    /// Row `row`'s standard code, `None` past the end.
    pub fn code(&self, row: usize) -> Option<Vec<u8>> {
        let mut code = vec![0u8; self.code_size];
        self.code_into(row, &mut code)?;
        Some(code)
    }

    /// Row `row`'s standard code into `code` (`code_size` bytes), `None` past the end.
    fn code_into(&self, row: usize, code: &mut [u8]) -> Option<()> {
        let nbytes = self.bits.code_size();
        self.bits.code_into(row, &mut code[..nbytes])?;
        for (out, v) in code[nbytes..].chunks_exact_mut(4).zip([self.a[row], self.w[row], self.ell[row]]) {
            out.copy_from_slice(&v.to_le_bytes());
        }
        let t = self.tail;
        code[self.code_size - t..].copy_from_slice(&self.tails[row * t..(row + 1) * t]);
        Some(())
    }

    /// Every code in the standard layout, in row order.
    pub fn unpack_all(&self) -> Vec<u8> {
        (0..self.len()).flat_map(|row| self.code(row).unwrap_or_default()).collect()
    }

    /// Codes held without reallocating.
    pub fn capacity(&self) -> usize {
        let blocks = self.bits.memory_bytes() / self.bits.block_bytes();
        let tails = self.tails.capacity().checked_div(self.tail).unwrap_or(usize::MAX);
        (blocks * BLOCK).min(self.a.capacity()).min(self.w.capacity()).min(self.ell.capacity()).min(tails)
    }

    /// Makes room for `additional` more codes. A hint: dropped when the memory cannot be had.
    pub fn reserve(&mut self, additional: usize) {
        self.bits.reserve(additional);
        for v in [&mut self.a, &mut self.w, &mut self.ell] {
            let _ = v.try_reserve_exact(additional);
        }
        let _ = self.tails.try_reserve_exact(additional.saturating_mul(self.tail));
    }

    /// Drops every row `keep` rejects (each position asked once, in order), keeping the others
    /// in order; returns how many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) -> usize {
        let kept: Vec<bool> = (0..self.len()).map(&mut keep).collect();
        for v in [&mut self.a, &mut self.w, &mut self.ell] {
            // `Vec::retain` visits every element once, in order.
            let mut flags = kept.iter();
            v.retain(|_| flags.next().is_some_and(|&k| k));
        }
        let t = self.tail;
        let mut write = 0;
        for (row, _) in kept.iter().enumerate().filter(|&(_, &k)| k) {
            self.tails.copy_within(row * t..(row + 1) * t, write * t);
            write += 1;
        }
        self.tails.truncate(write * t);
        self.bits.retain(|row| kept[row])
    }

    /// Bytes held (capacity included).
    pub fn memory_bytes(&self) -> usize {
        self.bits.memory_bytes()
            + (self.a.capacity() + self.w.capacity() + self.ell.capacity()) * size_of::<f32>()
            + self.tails.capacity()
    }

    /// Offers every row's key under `lut` to `top` as `(key, id_of(row))`, asking `keep` only
    /// of rows whose key passes the threshold.
    pub fn scan(
        &self,
        lut: &RaBitQLut,
        top: &mut impl ScanSink,
        keep: Option<&dyn Fn(usize) -> bool>,
        id_of: impl Fn(usize) -> u64,
    ) -> Result<()> {
        self.scan_rows(lut, top, keep.map_or(Rows::All, Rows::Kept), id_of)
    }

    /// [`scan`](RaBitQPacked::scan) of the rows a mask allows: bit `v` of `masks[b]` allows row
    /// `32 · b + v` (a block past the end of `masks` allows none); a block none of whose rows
    /// is allowed is not summed.
    pub fn scan_masked(
        &self,
        lut: &RaBitQLut,
        top: &mut impl ScanSink,
        masks: &[u32],
        id_of: impl Fn(usize) -> u64,
    ) -> Result<()> {
        self.scan_rows(lut, top, Rows::Masked(masks), id_of)
    }

    /// [`scan`](RaBitQPacked::scan) or [`scan_masked`](RaBitQPacked::scan_masked), as `rows`
    /// says: for a caller that holds either.
    pub fn scan_rows(
        &self,
        lut: &RaBitQLut,
        top: &mut impl ScanSink,
        rows: Rows<'_>,
        id_of: impl Fn(usize) -> u64,
    ) -> Result<()> {
        if lut.lut.m != self.bits.m() {
            return Err(Error::Parameter {
                name: "lut",
                what: format!("a table of {} nibbles for codes of {}", lut.lut.m, self.bits.m()),
            });
        }
        let second = match (&lut.second, self.tail) {
            (None, 0) => None,
            (Some(second), t) if t > 0 => Some(second),
            _ => {
                let what = "a table of one-bit terms for multi-bit codes, or the reverse".to_string();
                return Err(Error::Parameter { name: "lut", what });
            }
        };
        // s ≈ bias + sum / scale, so key = offset + a + w · (Σ − 2 bias) − w · (2 / scale) · sum.
        let (shift, step, offset) = (lut.total - 2.0 * lut.lut.bias, 2.0 / lut.lut.scale, lut.offset);
        let kernel = active_block_sums();
        let mut sums = [0u32; BLOCK];
        let mut keys = [0f32; BLOCK];
        // The rows the first stage passed: the table's own scratch, or a new one where a scan
        // of this table is already running on this thread (from inside a caller's filter).
        let mut held = second.and_then(|s| s.scorer.passed.try_borrow_mut().ok());
        let mut own = Passed::default();
        let mut passed: Option<&mut Passed> = match (second, held.as_deref_mut()) {
            (None, _) => None,
            (Some(_), Some(held)) => Some(held),
            (Some(_), None) => Some(&mut own),
        };
        // A block's passed rows are scored only once the next block's sums are made: the sums
        // do not depend on the threshold, and the rows' tails, asked for when they passed, have
        // that long to arrive (scored at once, their copies waited on memory: 18 % of an IVF
        // search at d = 128). The threshold each block's bounds meet is the one after the
        // previous block's codes were scored, as without the wait.
        let score_passed = |passed: &mut Passed, top: &mut _, second: &SecondStage| {
            // (The rows are in range: `code_into` writes each.)
            for (row, key) in passed.score(&second.scorer, |row, code| _ = self.code_into(row, code)) {
                ScanSink::push(top, key, id_of(row));
            }
            passed.rows.clear();
        };
        if let Some(passed) = passed.as_deref_mut() {
            passed.rows.clear();
        }
        for (b, block) in self.bits.blocks().chunks_exact(self.bits.block_bytes()).enumerate() {
            let allowed = match rows {
                Rows::Masked(masks) => masks.get(b).copied().unwrap_or(0),
                _ => u32::MAX,
            };
            if allowed == 0 {
                continue;
            }
            kernel(&lut.lut.bytes, block, u32::MAX, &mut sums);
            let first = b * BLOCK;
            let held = (self.len() - first).min(BLOCK);
            let (a, w) = (&self.a[first..first + held], &self.w[first..first + held]);
            for (((k, &s), &a), &w) in keys.iter_mut().zip(&sums).zip(a).zip(w) {
                *k = offset + a + w * (shift - step * s as f32);
            }
            // A lazy filter's verdict (masks were applied through `allowed`).
            let kept = |v: usize| match rows {
                Rows::Kept(keep) => keep(first + v),
                _ => true,
            };
            let (Some(second), Some(passed)) = (second, passed.as_deref_mut()) else {
                let threshold = top.threshold();
                for (v, &key) in keys[..held].iter().enumerate() {
                    if key <= threshold && allowed & (1 << v) != 0 && kept(v) {
                        top.push(key, id_of(first + v));
                    }
                }
                continue;
            };
            if !passed.rows.is_empty() {
                score_passed(passed, top, second);
            }
            let threshold = top.threshold();
            // Multi-bit codes: the sign bits' key is within `2 |w₁| · max_error` of their float
            // key, which is within `ε₁ ‖q − c‖` of the code's key (to the paper's confidence):
            // only codes whose lower bound is not above the threshold are scored in full
            // (a NaN bound, from a forged factor, is scored too).
            let (table_error, ell) = (2.0 * lut.max_error(), &self.ell[first..first + held]);
            // A mask of the rows that pass, built without branches (most blocks pass none).
            let mut pass = 0u32;
            for (v, ((&key, &w), &eps)) in keys[..held].iter().zip(w).zip(ell).enumerate() {
                let bound = key - (table_error * w.abs() + eps * second.center_distance);
                pass |= u32::from(bound <= threshold || bound.is_nan()) << v;
            }
            pass &= allowed;
            while pass != 0 {
                let v = pass.trailing_zeros() as usize;
                pass &= pass - 1;
                if kept(v) {
                    passed.rows.push(first + v);
                }
            }
            // The rows' tails asked for at once (scattered: their cache misses overlap instead
            // of following one another).
            let t = self.tail;
            for &row in &passed.rows {
                vq_distance::prefetch_l2(&self.tails[row * t..(row + 1) * t]);
            }
        }
        if let (Some(second), Some(passed)) = (second, passed)
            && !passed.rows.is_empty()
        {
            score_passed(passed, top, second);
        }
        Ok(())
    }
}

/// A query's table for [`RaBitQPacked`] codes: per nibble of the bits, the 16 sums of the
/// rotated query over the subsets of its four dimensions, quantized to bytes
/// ([`QuantizedLut`]), with the terms of the key (`Σ_j (P q)_j` and the offset).
#[derive(Debug, Clone)]
pub struct RaBitQLut {
    lut: QuantizedLut,
    /// `Σ_j (P q)_j`.
    total: f32,
    /// Added to every key: the quantizer's own (`‖q − μ‖²` or `−⟨q, μ⟩`), or a list's coarse key.
    offset: f32,
    /// For multi-bit codes, what scores the codes the sign bits pass.
    second: Option<SecondStage>,
    /// The float table, kept to refill without allocating.
    table: Vec<f32>,
}

impl RaBitQLut {
    /// The table of `query` under `quantizer` (checked, and normalized for cosine), offset by
    /// the quantizer's own term.
    pub fn new(quantizer: &RaBitQuantizer, query: &[f32]) -> Result<Self> {
        Self::with_terms(|table, second| quantizer.nibble_terms(query, table, second))
    }

    /// [`RaBitQLut::new`] into this table, reusing its memory.
    pub fn fill(&mut self, quantizer: &RaBitQuantizer, query: &[f32]) -> Result<()> {
        self.fill_with(|table, second| quantizer.nibble_terms(query, table, second))
    }

    /// The table of `query` in `slot`: the one there refilled, or a new one (a worker's table,
    /// reused across the queries it scans).
    pub fn in_slot<'s>(slot: &'s mut Option<Self>, quantizer: &RaBitQuantizer, query: &[f32]) -> Result<&'s mut Self> {
        Self::in_slot_with(slot, |table, second| quantizer.nibble_terms(query, table, second))
    }

    /// [`RaBitQLut::in_slot`] for a residual query already checked and rotated (`P q`, from
    /// [`RaBitQuantizer::rotate`], which maps a batch of queries faster than one at a time),
    /// offset by nothing: an inverted file sets each list's coarse key
    /// ([`set_offset`](RaBitQLut::set_offset)) and, for multi-bit codes, the query's distance
    /// to the list's centroid ([`set_center_distance`](RaBitQLut::set_center_distance)). The
    /// table is the one `in_slot` makes from the query (the rotation does not depend on the
    /// batch).
    pub fn in_slot_rotated<'s>(
        slot: &'s mut Option<Self>,
        quantizer: &RaBitQuantizer,
        rotated: &[f32],
    ) -> Result<&'s mut Self> {
        if rotated.len() != quantizer.dim() {
            let e = vq_distance::Error::Dimension { what: "rotated", got: rotated.len(), expected: quantizer.dim() };
            return Err(e.into());
        }
        Self::in_slot_with(slot, |table, second| quantizer.residual_nibble_terms(rotated, table, second))
    }

    /// A table from `terms`, which writes the float table and the second stage and returns
    /// the other terms.
    fn with_terms(terms: impl FnOnce(&mut Vec<f32>, &mut Option<SecondStage>) -> Result<NibbleTerms>) -> Result<Self> {
        let (mut table, mut second) = (Vec::new(), None);
        let NibbleTerms { total, offset } = terms(&mut table, &mut second)?;
        Ok(RaBitQLut { lut: QuantizedLut::new(&table)?, total, offset, second, table })
    }

    /// [`RaBitQLut::with_terms`] into this table, reusing its memory (the second stage's too).
    fn fill_with(
        &mut self,
        terms: impl FnOnce(&mut Vec<f32>, &mut Option<SecondStage>) -> Result<NibbleTerms>,
    ) -> Result<()> {
        let NibbleTerms { total, offset } = terms(&mut self.table, &mut self.second)?;
        self.lut.fill(&self.table)?;
        (self.total, self.offset) = (total, offset);
        Ok(())
    }

    /// The table in `slot` refilled from `terms`, or a new one there.
    fn in_slot_with(
        slot: &mut Option<Self>,
        terms: impl FnOnce(&mut Vec<f32>, &mut Option<SecondStage>) -> Result<NibbleTerms>,
    ) -> Result<&mut Self> {
        match slot {
            Some(lut) => {
                lut.fill_with(terms)?;
                Ok(lut)
            }
            None => Ok(slot.insert(Self::with_terms(terms)?)),
        }
    }

    /// Replaces the term added to every key (an inverted list's coarse key).
    pub fn set_offset(&mut self, offset: f32) {
        self.offset = offset;
        if let Some(second) = &mut self.second {
            second.scorer.set_offset(offset);
        }
    }

    /// The `‖q − c‖` multi-bit codes' first-stage bounds are scaled by; `None` for one bit.
    pub fn center_distance(&self) -> Option<f32> {
        self.second.as_ref().map(|s| s.center_distance)
    }

    /// Sets `‖q − c‖`, the query's distance to the centre its codes are about, which scales
    /// multi-bit codes' first-stage error bounds (an inverted list's centroid; the table of
    /// [`RaBitQLut::new`] has the mean's). No effect on one-bit tables.
    pub fn set_center_distance(&mut self, distance: f32) {
        if let Some(second) = &mut self.second {
            second.center_distance = distance;
        }
    }

    /// The bound on `|s' − s|`, the quantized sum of the query over a code's bits against the
    /// float sum: [`QuantizedLut::max_error`]. A key is within `2 |w|` times it.
    pub fn max_error(&self) -> f32 {
        self.lut.max_error()
    }
}

/// A RaBitQ quantizer and the codes of every vector added, in the fast-scan layout
/// ([`RaBitQPacked`]).
///
/// Ids are the insertion positions `0..len()`. One-bit keys use the sum of the query over a
/// code's bits read from a byte-quantized table: within `2 w ·` [`RaBitQLut::max_error`] of the
/// key [`FlatCodes`](crate::FlatCodes) over the same quantizer computes, so near-ties may order
/// differently; put a refine stage above it for exact final scores. Multi-bit keys are the
/// plain layout's, to the bit (the table only bounds which codes are scored).
#[derive(Debug, Clone)]
pub struct RaBitQFastScan {
    quantizer: RaBitQuantizer,
    codes: RaBitQPacked,
}

impl RaBitQFastScan {
    /// An empty index over `quantizer` (trained or not).
    pub fn new(quantizer: RaBitQuantizer) -> Result<Self> {
        let codes = RaBitQPacked::new(&quantizer)?;
        Ok(RaBitQFastScan { quantizer, codes })
    }

    /// The quantizer.
    pub fn quantizer(&self) -> &RaBitQuantizer {
        &self.quantizer
    }

    /// The packed codes.
    pub fn codes(&self) -> &RaBitQPacked {
        &self.codes
    }

    /// Number of vectors added.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// `true` if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Decodes row `row` into `out` (`dim` values); a row past the end is
    /// [`Error::Parameter`].
    pub fn decode_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        let code = self
            .codes
            .code(row)
            .ok_or_else(|| Error::Parameter { name: "row", what: format!("row {row} of {}", self.len()) })?;
        self.quantizer.decode(&code, out)
    }

    /// Learns the quantizer's mean from `sample` (row-major); codes already added are dropped.
    pub fn train(&mut self, sample: &[f32]) -> Result<()> {
        self.quantizer.train(sample)?;
        self.codes = RaBitQPacked::new(&self.quantizer)?;
        Ok(())
    }

    /// Makes room for `additional` more vectors.
    pub fn reserve(&mut self, additional: usize) {
        self.codes.reserve(additional);
    }

    /// Encodes and appends `vectors` (row-major); their ids continue from `len()`. On error
    /// nothing is added.
    pub fn add(&mut self, vectors: &[f32]) -> Result<()> {
        let dim = self.quantizer.dim();
        if !vectors.len().is_multiple_of(dim) {
            return Err(Error::Input(vq_distance::Error::RaggedBuffer { what: "vectors", len: vectors.len(), dim }));
        }
        let mut codes = vec![0u8; vectors.len() / dim * self.quantizer.code_size()];
        self.quantizer.encode(vectors, &mut codes)?;
        self.codes.extend(&codes)
    }

    /// The `k` best codes for each query, best first, as `(id, score)` in the metric's
    /// convention (see the type's docs for the scores' precision). Parallel over queries.
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Neighbors> {
        self.search_filtered(queries, k, None)
    }

    /// [`search`](RaBitQFastScan::search) among the rows `keep` accepts (rows are the ids).
    pub fn search_filtered(
        &self,
        queries: &[f32],
        k: usize,
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Result<Neighbors> {
        if k == 0 {
            return Err(Error::Input(vq_distance::Error::ZeroK));
        }
        let rows = self.scan_queries(queries, keep, || TopK::new(k.min(self.len())))?;
        Ok(Neighbors::from_rows(k, self.quantizer.metric(), rows)?)
    }

    /// Every row within `radius` of each query (`Metric::within`) among those `keep` accepts,
    /// by the keys [`search`](RaBitQFastScan::search) ranks by. Rows are the ids. Multi-bit
    /// codes are bounded by their sign bits against the radius as a search bounds them against
    /// its k-th key: one whose bound fails (beyond `ε₀ = 1.9` standard deviations of the
    /// estimate, a few in a hundred) may be left out though its key is inside.
    pub fn range_filtered(
        &self,
        queries: &[f32],
        radius: f32,
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Result<RangeResult> {
        vq_distance::check_radius(radius)?;
        let metric = self.quantizer.metric();
        let max_key = metric.key_from_score(radius);
        let rows = self.scan_queries(queries, keep, || WithinKey::new(max_key))?;
        Ok(RangeResult::from_rows(metric, rows)?)
    }

    /// Every query of `queries` scanned into a sink from `sink`, in parallel: their hits. An
    /// empty store answers empty rows without looking at the queries.
    fn scan_queries<S: ScanSink>(
        &self,
        queries: &[f32],
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
        sink: impl Fn() -> S + Sync,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let dim = self.quantizer.dim();
        if !queries.len().is_multiple_of(dim) {
            return Err(Error::Input(vq_distance::Error::RaggedBuffer { what: "queries", len: queries.len(), dim }));
        }
        let metric = self.quantizer.metric();
        queries
            .par_chunks_exact(dim)
            .map_init(
                || None,
                |lut: &mut Option<RaBitQLut>, query| {
                    if self.codes.is_empty() {
                        return Ok(Vec::new());
                    }
                    // Checks (and, for cosine, normalizes) the query.
                    let lut = RaBitQLut::in_slot(lut, &self.quantizer, query)?;
                    let mut found = sink();
                    let keep = keep.map_or(Rows::All, |f| Rows::Kept(f as &dyn Fn(usize) -> bool));
                    self.codes.scan_rows(lut, &mut found, keep, |row| row as u64)?;
                    Ok(found.into_hits(metric))
                },
            )
            .collect()
    }

    /// Drops every row whose position `keep` rejects, keeping the others in order; returns how
    /// many were dropped.
    pub fn retain(&mut self, keep: impl FnMut(usize) -> bool) -> usize {
        self.codes.retain(keep)
    }

    /// Writes the quantizer (`{prefix}.quantizer.*`) and the codes as standard RaBitQ codes
    /// (`{prefix}.codes`, the layout `FlatCodes` writes: the packing is a memory layout, not a
    /// file format).
    pub fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.quantizer.write_sections(w, &format!("{prefix}.quantizer"))?;
        w.add_array(&format!("{prefix}.codes"), CODES_VERSION, &self.codes.unpack_all())?;
        Ok(())
    }

    /// Reads what [`write_sections`](RaBitQFastScan::write_sections) wrote: whole codes with
    /// factors an encoder writes ([`validate_codes`]), then packed.
    pub fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        let name = format!("{prefix}.codes");
        let quantizer = RaBitQuantizer::read_sections(r, &format!("{prefix}.quantizer"))?;
        r.check_versions(&[(&name, CODES_VERSION)])?;
        let codes: &[u8] = r.array(&name)?;
        validate_codes(&quantizer, codes, &name)?;
        let mut index = RaBitQFastScan::new(quantizer).map_err(|e| corrupt(&name, e.to_string()))?;
        index.codes.extend(codes)?;
        Ok(index)
    }

    /// Bytes held: the packed bits and the factors (capacity included) and the quantizer's
    /// rotation and mean.
    pub fn memory_usage(&self) -> usize {
        self.codes.memory_bytes() + self.quantizer.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use vq_distance::Metric;

    use super::*;
    use crate::{CodeScorer, FlatCodes};

    fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n * dim)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((i / dim) % 5) as f32 + (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn metric_of(i: u8) -> Metric {
        [Metric::L2, Metric::InnerProduct, Metric::Cosine][usize::from(i % 3)]
    }

    /// Both layouts over one trained quantizer, filled with the same rows.
    fn twins(dim: usize, n: usize, metric: Metric, seed: u64) -> (RaBitQFastScan, FlatCodes<RaBitQuantizer>) {
        let mut q = RaBitQuantizer::new(dim, metric).unwrap();
        q.train(&data(n.max(1), dim, seed)).unwrap();
        let (mut fast, mut slow) = (RaBitQFastScan::new(q.clone()).unwrap(), FlatCodes::new(q));
        let base = data(n, dim, seed + 1);
        fast.add(&base).unwrap();
        slow.add(&base).unwrap();
        (fast, slow)
    }

    proptest! {
        /// Against its slow twin, FlatCodes over the same quantizer (RaBitQ's float table
        /// scan): every row's key is within the byte table's bound, `2 w ·` max_error, of the
        /// float key, on dimensions that fill a nibble or a byte partly and across block
        /// boundaries; a row's standard code survives the packing.
        #[test]
        fn keys_are_the_float_keys_within_the_table_bound(
            dim in 1usize..40, n in 1usize..80, seed in 0u64..500, m in 0u8..3,
        ) {
            let metric = metric_of(m);
            let (fast, slow) = twins(dim, n, metric, seed);
            let q = fast.quantizer();
            let cs = q.code_size();
            for (row, code) in slow.codes().chunks_exact(cs).enumerate() {
                prop_assert_eq!(fast.codes().code(row).unwrap(), code.to_vec());
            }
            for query in data(3, dim, seed + 7).chunks_exact(dim) {
                let max_error = RaBitQLut::new(q, query).unwrap().max_error();
                let scorer = q.scorer(query).unwrap();
                let got = fast.search(query, n).unwrap();
                let (ids, scores) = got.get(0).unwrap();
                prop_assert_eq!(ids.len(), n);
                for (&id, &score) in ids.iter().zip(scores) {
                    let code = &slow.codes()[id as usize * cs..][..cs];
                    let want = scorer.distance(code);
                    let [_, w, _] = q.factors(code);
                    let bound = 2.0 * w.abs() * max_error * 1.001 + 1e-4 * (1.0 + want.abs());
                    let key = metric.key_from_score(score);
                    prop_assert!((key - want).abs() <= bound, "row {}: {} vs {} (bound {})", id, key, want, bound);
                }
            }
        }
    }

    /// The fast scan's top-10 holds the float scan's top-10 up to the bound, filters pass only
    /// accepted rows, `retain` keeps rows in order, decoding and persistence match.
    #[test]
    fn search_filter_retain_decode_and_persist_match_the_plain_layout() {
        let dim = 24;
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let (fast, slow) = twins(dim, 300, metric, 11);
            let queries = data(4, dim, 12);
            let (got, want) = (fast.search(&queries, 10).unwrap(), slow.search(&queries, 10).unwrap());
            for (query, ((ids, _), (wids, wscores))) in queries.chunks_exact(dim).zip(got.iter().zip(want.iter())) {
                let max_w = fast.codes.w.iter().fold(0f32, |m, w| m.max(w.abs()));
                let bound = 2.0 * max_w * RaBitQLut::new(fast.quantizer(), query).unwrap().max_error() * 1.001 + 1e-4;
                let last = metric.key_from_score(wscores[9]);
                for (&id, &score) in wids.iter().zip(wscores) {
                    assert!(
                        ids.contains(&id) || metric.key_from_score(score) >= last - 2.0 * bound,
                        "{metric:?}: missed {id}"
                    );
                }
            }
            let odd = |row: usize| row % 2 == 1;
            let f = fast.search_filtered(&queries, 10, Some(&odd)).unwrap();
            assert!(f.ids().iter().all(|&id| id % 2 == 1));
            assert_eq!(f.ids().len(), 40);
            agrees_with_the_plain_layout(&fast, &slow, &queries, &got);
            let within = fast.range_filtered(&queries, got.get(0).unwrap().1[4], None).unwrap();
            assert!(within.get(0).unwrap().0.len() >= 4, "{metric:?}: a radius at the 5th score holds the first four");
        }
    }

    /// `fast` against `slow` (the plain layout over the same rows): rows decode alike, `retain`
    /// keeps the codes in order, and the file `fast` writes reads back to the same answers
    /// (`got`, its top 10 for `queries`) and, by the plain layout, to the same codes.
    fn agrees_with_the_plain_layout(
        fast: &RaBitQFastScan,
        slow: &FlatCodes<RaBitQuantizer>,
        queries: &[f32],
        got: &Neighbors,
    ) {
        let (dim, n) = (fast.quantizer().dim(), fast.len());
        let (mut out, mut plain) = (vec![0f32; dim], vec![0f32; dim]);
        for row in [0, 31, 32, n - 1] {
            fast.decode_row(row, &mut out).unwrap();
            slow.decode_row(row, &mut plain).unwrap();
            assert_eq!(out, plain, "row {row}");
        }
        let mut kept = fast.clone();
        assert_eq!(kept.retain(|row| row % 3 != 0), n.div_ceil(3));
        for (i, row) in (0..n).filter(|r| r % 3 != 0).enumerate() {
            assert_eq!(kept.codes().code(i), fast.codes().code(row), "row {row}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rq.vq");
        let mut w = ContainerWriter::create(&path).unwrap();
        fast.write_sections(&mut w, "rq").unwrap();
        w.finish().unwrap();
        let back = RaBitQFastScan::read_sections(&ContainerReader::open(&path).unwrap(), "rq").unwrap();
        assert_eq!(&back.search(queries, 10).unwrap(), got);
        let plain = FlatCodes::<RaBitQuantizer>::read_sections(&ContainerReader::open(&path).unwrap(), "rq").unwrap();
        assert_eq!(plain.codes(), slow.codes());
    }

    /// Multi-bit codes in the fast-scan layout: the sign bits bound each code (the table's
    /// error added), the codes they pass are scored over every plane. Against the slow twin
    /// (every code's full key, sorted): the top 10 holds the twin's (a miss only where the
    /// bound erred), every hit's score is its full key to the bit, filtered too; codes,
    /// decoding, `retain` and persistence match the plain layout.
    #[test]
    fn multi_bit_codes_score_as_the_plain_layout() {
        let n = 600;
        for (dim, bits, metric) in
            [(24, 2, Metric::L2), (128, 4, Metric::L2), (100, 3, Metric::Cosine), (64, 9, Metric::InnerProduct)]
        {
            let mut q = RaBitQuantizer::new(dim, metric).unwrap().with_bits(bits).unwrap();
            q.train(&data(n, dim, 31)).unwrap();
            let (mut fast, mut slow) = (RaBitQFastScan::new(q.clone()).unwrap(), FlatCodes::new(q.clone()));
            let base = data(n, dim, 32);
            fast.add(&base).unwrap();
            slow.add(&base).unwrap();
            let (cs, codes) = (q.code_size(), slow.codes());
            for (row, code) in codes.chunks_exact(cs).enumerate() {
                assert_eq!(fast.codes().code(row).unwrap(), code, "{metric:?} {bits} bits: row {row}");
            }
            let queries = data(6, dim, 33);
            let odd = |row: usize| row % 2 == 1;
            let (got, got_odd) =
                (fast.search(&queries, 10).unwrap(), fast.search_filtered(&queries, 10, Some(&odd)).unwrap());
            let (mut found, mut found_odd) = (0, 0);
            for (qi, query) in queries.chunks_exact(dim).enumerate() {
                let mut keys = vec![0f32; n];
                q.scorer(query).unwrap().distances(&codes, &mut keys);
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]).then(a.cmp(&b)));
                let order_odd: Vec<usize> = order.iter().copied().filter(|&r| odd(r)).collect();
                for ((ids, scores), want, found) in
                    [(got.get(qi).unwrap(), &order, &mut found), (got_odd.get(qi).unwrap(), &order_odd, &mut found_odd)]
                {
                    for (&id, &score) in ids.iter().zip(scores) {
                        let key = metric.key_from_score(score);
                        assert_eq!(key.to_bits(), keys[id as usize].to_bits(), "{metric:?} {bits} bits: row {id}");
                    }
                    *found += ids.iter().filter(|&&id| want[..10].contains(&(id as usize))).count();
                }
            }
            assert!(got_odd.ids().iter().all(|&id| id % 2 == 1));
            for found in [found, found_odd] {
                assert!(found as f64 >= 0.97 * 60.0, "{metric:?} {bits} bits: {found} of the twin's 60");
            }
            agrees_with_the_plain_layout(&fast, &slow, &queries, &got);
            let (ids, scores) = got.get(0).unwrap();
            let within = fast.range_filtered(&queries[..dim], scores[4], None).unwrap();
            let (within_ids, _) = within.get(0).unwrap();
            let held = ids[..5].iter().filter(|id| within_ids.contains(id)).count();
            assert!(held >= 4, "{metric:?} {bits} bits: a radius at the 5th score holds {held} of the first five");
        }
    }

    /// A residual multi-bit table whose `‖q − c‖` was never set bounds nothing: every code is
    /// scored, so the top 5 is the plain scorer's exact top 5, keys to the bit (with the scale
    /// at 0, the one-bit keys alone, codes are left out and this fails).
    #[test]
    fn an_unset_center_distance_scores_every_code() {
        let (dim, n) = (64, 400);
        let q = RaBitQuantizer::for_residuals(dim, Metric::L2).unwrap().with_bits(3).unwrap().with_sign_factors();
        let mut codes = vec![0u8; n * q.code_size()];
        q.encode(&data(n, dim, 41), &mut codes).unwrap();
        let mut packed = RaBitQPacked::new(&q).unwrap();
        packed.extend(&codes).unwrap();
        for query in data(6, dim, 42).chunks_exact(dim) {
            let scorer = q.residual_scorer(query).unwrap();
            let mut plain: Vec<(f32, u64)> =
                codes.chunks_exact(q.code_size()).zip(0..).map(|(c, id)| (scorer.distance(c), id)).collect();
            plain.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut slot = None;
            let lut = RaBitQLut::in_slot_rotated(&mut slot, &q, &q.rotate(query)).unwrap();
            assert_eq!(lut.center_distance(), Some(f32::INFINITY));
            let mut top = TopK::new(5);
            packed.scan(lut, &mut top, None, |row| row as u64).unwrap();
            let got = top.into_hits(Metric::L2);
            assert_eq!(got.iter().map(|h| h.0).collect::<Vec<_>>(), plain[..5].iter().map(|p| p.1).collect::<Vec<_>>());
            for (hit, want) in got.iter().zip(&plain) {
                assert_eq!(hit.1, want.0, "the plain layout's key, to the bit");
            }
        }
    }

    /// A table refilled, from another quantizer's (other dimensions, bits, metric) or from one
    /// bit to several and back, scans every code to the bit as a new table does: its second
    /// stage is rebuilt in place, nothing of the last query's left.
    #[test]
    fn a_refilled_table_scores_as_a_new_one() {
        let n = 300;
        let stores: Vec<(RaBitQuantizer, RaBitQPacked)> =
            [(128, 4, Metric::L2), (24, 2, Metric::Cosine), (100, 1, Metric::InnerProduct), (64, 9, Metric::L2)]
                .into_iter()
                .enumerate()
                .map(|(i, (dim, bits, metric))| {
                    let mut q = RaBitQuantizer::new(dim, metric).unwrap().with_bits(bits).unwrap();
                    q.train(&data(n, dim, 50 + i as u64)).unwrap();
                    let mut codes = vec![0u8; n * q.code_size()];
                    q.encode(&data(n, dim, 60 + i as u64), &mut codes).unwrap();
                    let mut packed = RaBitQPacked::new(&q).unwrap();
                    packed.extend(&codes).unwrap();
                    (q, packed)
                })
                .collect();
        let top_of = |packed: &RaBitQPacked, lut: &RaBitQLut| {
            let mut top = TopK::new(20);
            packed.scan(lut, &mut top, None, |row| row as u64).unwrap();
            top.into_sorted().into_iter().map(|(key, id)| (key.to_bits(), id)).collect::<Vec<_>>()
        };
        let mut lut: Option<RaBitQLut> = None;
        // Every store after every other, twice over.
        for (step, (q, packed)) in stores.iter().chain(&stores).chain(stores.iter().rev()).enumerate() {
            let query = data(1, q.dim(), 70 + step as u64);
            let fresh = RaBitQLut::new(q, &query).unwrap();
            let refilled = RaBitQLut::in_slot(&mut lut, q, &query).unwrap();
            assert_eq!(top_of(packed, refilled), top_of(packed, &fresh), "step {step}: {} bits", q.bits());
        }
    }

    /// A scan of a multi-bit table run from inside the filter of a scan of the same table (its
    /// scratch in use) answers as a scan alone does, and so does the outer one.
    #[test]
    fn a_scan_inside_a_scan_of_the_same_table_answers_alike() {
        let (dim, n) = (64, 200);
        let mut q = RaBitQuantizer::new(dim, Metric::L2).unwrap().with_bits(3).unwrap();
        q.train(&data(n, dim, 80)).unwrap();
        let mut codes = vec![0u8; n * q.code_size()];
        q.encode(&data(n, dim, 81), &mut codes).unwrap();
        let mut packed = RaBitQPacked::new(&q).unwrap();
        packed.extend(&codes).unwrap();
        let lut = RaBitQLut::new(&q, &data(1, dim, 82)).unwrap();
        let scan = |keep: Option<&dyn Fn(usize) -> bool>| {
            let mut top = TopK::new(10);
            packed.scan(&lut, &mut top, keep, |row| row as u64).unwrap();
            top.into_sorted()
        };
        let alone = scan(None);
        let inner = std::cell::RefCell::new(None);
        let keep = |_: usize| {
            if inner.borrow().is_none() {
                let got = scan(None);
                *inner.borrow_mut() = Some(got);
            }
            true
        };
        assert_eq!(scan(Some(&keep)), alone);
        assert_eq!(inner.into_inner(), Some(alone));
    }

    #[test]
    fn misuse_is_a_typed_error() {
        // Multi-bit codes about a list's centroid carry no first-stage factors unless asked.
        let residual = RaBitQuantizer::for_residuals(16, Metric::L2).unwrap().with_bits(2).unwrap();
        assert!(matches!(RaBitQPacked::new(&residual), Err(Error::Parameter { name: "bits", .. })));
        let rotated = residual.rotate(&[0.5; 16]);
        let no_factors = RaBitQLut::in_slot_rotated(&mut None, &residual, &rotated).map(|_| ());
        assert!(matches!(no_factors, Err(Error::Parameter { name: "quantizer", .. })));
        let residual = residual.with_sign_factors();
        assert!(
            RaBitQPacked::new(&residual).is_ok() && RaBitQLut::in_slot_rotated(&mut None, &residual, &rotated).is_ok()
        );
        let mut fast = RaBitQFastScan::new(RaBitQuantizer::new(16, Metric::L2).unwrap()).unwrap();
        assert!(matches!(fast.add(&[0.0; 16]), Err(Error::NotTrained { .. })));
        assert!(fast.search(&[0.0; 16], 3).is_ok(), "an empty store answers without the quantizer");
        assert_eq!(fast.len(), 0);
        fast.train(&data(50, 16, 4)).unwrap();
        let empty = fast.search(&[0.5; 16], 3).unwrap();
        assert!(empty.ids().iter().all(|&id| id == u64::MAX), "an empty index pads");
        fast.add(&data(2, 16, 5)).unwrap();
        assert!(matches!(fast.search(&[0.5; 16], 0), Err(Error::Input(vq_distance::Error::ZeroK))));
        assert!(fast.search(&[0.5; 15], 3).is_err());
        assert!(fast.search(&[f32::NAN; 16], 3).is_err());
        assert!(fast.add(&[0.5; 15]).is_err());
        assert_eq!(fast.search(&[0.5; 16], 5).unwrap().get(0).unwrap().0.len(), 2, "k above the count");
        assert!(matches!(fast.decode_row(2, &mut [0.0; 16]), Err(Error::Parameter { name: "row", .. })));
        assert!(fast.range_filtered(&[0.5; 16], f32::NAN, None).is_err());
    }
}
