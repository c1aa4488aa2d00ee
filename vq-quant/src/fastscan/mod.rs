//! 4-bit PQ "fast scan" (André, Kermarrec, Le Scouarnec, *Cache locality is not enough:
//! high-performance nearest neighbor search with product quantization fast scan*, VLDB 2015;
//! Faiss' `IndexPQFastScan`): codes of 4-bit product quantizers laid out so that one byte
//! shuffle (`vpshufb`) looks up 16 or 32 codes of a sub-quantizer at once in a look-up table
//! held in a register.
//!
//! - [`PackedCodes`]: the codes in blocks of [`BLOCK`] = 32 vectors, transposed (one
//!   sub-quantizer after the other) and nibble-packed: for sub-quantizer `j` a block holds
//!   16 bytes, byte `t` carrying vector `t/2 + 8·(t mod 2)` in its low nibble and that vector
//!   `+ 16` in its high nibble. The order is chosen so that the kernels' even and odd bytes
//!   are vectors `0..8` and `8..16` (and `16..24`, `24..32` for the high nibbles): their sums
//!   come out in vector order without a permutation. The sub-quantizer count is padded to
//!   even with zero codes, since the kernels take them in pairs (one per 128-bit lane).
//! - [`QuantizedLut`]: a query's float table (`m × 16` keys) as bytes: each row shifted by
//!   its minimum and all rows scaled by one factor into `0..=255`, so a code's key is
//!   `bias + Σ bytes / scale`, within [`QuantizedLut::max_error`] of the float sum.
//! - Block kernels: `Σ_j lut[j][code_j]` for all 32 vectors of a block, as exact integers.
//!   Bytes are added in 16-bit lanes (each lane of a 256-bit register adds two bytes at once;
//!   a second accumulator of the odd bytes separates them at the end), in groups of at most
//!   [`GROUP_PAIRS`] sub-quantizer pairs so that no 16-bit lane can overflow, then widened to
//!   32 bits. AVX-512 BW (four sub-quantizers per register), AVX2, NEON (one per register,
//!   looked up with `tbl`), and a portable twin that every level must equal exactly.
//! - Moving codes in and out of blocks: packing 32 codes into a block (AVX2, by 16 × 16 byte
//!   transposes; what adds and reads pay) and unpacking one vector's code from its block
//!   (AVX-512 BW and AVX2; what the two-stage multi-bit RaBitQ scans pay for each code they
//!   score in full), each with a portable twin.
//!
//! What this module does not do: train the quantizer or encode vectors (a 4-bit
//! [`ProductQuantizer`](crate::ProductQuantizer) does; [`PackedCodes`] repacks its codes), or
//! decide what to do with the candidates (a flat scan or an inverted list above it re-ranks).

use std::sync::OnceLock;

use vq_distance::SimdLevel;

use crate::pq::unpack_index;
use crate::{Error, Result, ScanSink};

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod index;
mod rabitq;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use index::FastScanCodes;
pub use rabitq::{RaBitQFastScan, RaBitQLut, RaBitQPacked};

/// Vectors per block.
pub const BLOCK: usize = 32;

/// Sub-quantizer pairs a kernel adds in 16-bit lanes before widening: each lane gains at most
/// one byte (≤ 255) per pair, and `256 · 255 < 2¹⁶`.
pub const GROUP_PAIRS: usize = 256;

/// The most sub-quantizers: sums stay far below `u32::MAX` (`255 · 2¹⁶`).
pub const MAX_M: usize = 1 << 16;

/// Bytes of one sub-quantizer in a block (32 nibbles).
const SUB_BYTES: usize = BLOCK / 2;

/// The vector held by the low nibble of byte `t` of a sub-quantizer's 16 bytes (the high
/// nibble holds this `+ 16`).
#[inline]
fn vector_of_byte(t: usize) -> usize {
    t / 2 + 8 * (t % 2)
}

/// A block kernel: the mask of the vectors whose sum `Σ_j lut[j][code_j]` is at most `max_sum`
/// (bit `v` for vector `v`), and, when the mask is not empty, the 32 exact sums of the block in
/// `out` (a block no row of which passes may leave `out` as it was: most blocks of a scan, once
/// its threshold has settled). `lut` and `block` hold the same whole number of sub-quantizer
/// pairs (32 bytes each).
pub(crate) type BlockSumsFn = fn(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32;

/// The plain-Rust kernel every SIMD level must equal exactly.
pub(crate) fn block_sums_portable(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    *out = [0; BLOCK];
    for (row, sub) in lut.chunks_exact(16).zip(block.chunks_exact(SUB_BYTES)) {
        for (t, &byte) in sub.iter().enumerate() {
            let v = vector_of_byte(t);
            out[v] += u32::from(row[usize::from(byte & 15)]);
            out[v + 16] += u32::from(row[usize::from(byte >> 4)]);
        }
    }
    out.iter().enumerate().fold(0, |m, (v, &s)| m | (u32::from(s <= max_sum) << v))
}

/// A column kernel: the code of the vector at byte `t` of every 16-byte row of `block` (its
/// high nibbles when `high`), two rows a byte, row `2b` low, into `out[..block.len() / 32]`.
/// `block` holds a whole number of row pairs (32 bytes each), `t < 16`.
pub(crate) type ColumnFn = fn(block: &[u8], t: usize, high: bool, out: &mut [u8]);

/// The plain-Rust column kernel every SIMD level must equal.
pub(crate) fn column_portable(block: &[u8], t: usize, high: bool, out: &mut [u8]) {
    let shift = if high { 4 } else { 0 };
    for (out, rows) in out.iter_mut().zip(block.chunks_exact(2 * SUB_BYTES)) {
        *out = (rows[t] >> shift & 15) | (rows[SUB_BYTES + t] >> shift & 15) << 4;
    }
}

/// The column kernel of `level`, or `None` when this CPU cannot run it (or, NEON, there is
/// none: it uses the portable one).
pub(crate) fn column_for(level: SimdLevel) -> Option<ColumnFn> {
    match level {
        SimdLevel::Portable => Some(column_portable),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => x86::avx2_column_checked(),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => x86::avx512_column_checked(),
        _ => None,
    }
}

/// The column kernel of the level vq-distance uses in this process (`VQ_SIMD` applies).
fn active_column() -> ColumnFn {
    static ACTIVE: OnceLock<ColumnFn> = OnceLock::new();
    *ACTIVE.get_or_init(|| dispatched(column_for, column_portable))
}

/// The kernel `for_level` gives at the level vq-distance uses in this process (`VQ_SIMD`
/// applies), or at AVX2 where that level has none of its own, else `portable`.
fn dispatched<F>(for_level: fn(SimdLevel) -> Option<F>, portable: F) -> F {
    let wanted = vq_distance::simd_level();
    [wanted, SimdLevel::Avx2].into_iter().filter(|&l| l <= wanted).find_map(for_level).unwrap_or(portable)
}

/// A packing kernel: bytes `bytes` of 32 whole codes `stride` bytes apart (`codes`, code `v`
/// at `v · stride`) into rows `2b` and `2b + 1` of a block (`rows`), for each `b` in `bytes`:
/// byte `t` of row `2b` holds the low nibbles of byte `b` of vectors `vector_of_byte(t)` (low
/// nibble) and `+ 16` (high), row `2b + 1` their high nibbles. Every byte of those rows is
/// written. `bytes.end ≤ stride`, `codes` holds the 32 codes.
pub(crate) type PackFn = fn(codes: &[u8], stride: usize, bytes: std::ops::Range<usize>, rows: &mut [u8]);

/// The plain-Rust packing kernel every SIMD level must equal.
pub(crate) fn pack_portable(codes: &[u8], stride: usize, bytes: std::ops::Range<usize>, rows: &mut [u8]) {
    for b in bytes {
        let (low, high) = rows[2 * b * SUB_BYTES..][..2 * SUB_BYTES].split_at_mut(SUB_BYTES);
        for (t, (low, high)) in low.iter_mut().zip(high).enumerate() {
            let v = vector_of_byte(t);
            let (a, c) = (codes[v * stride + b], codes[(v + 16) * stride + b]);
            *low = (a & 0x0f) | (c << 4);
            *high = (a >> 4) | (c & 0xf0);
        }
    }
}

/// The packing kernel of `level`, or `None` when this CPU cannot run it (or, NEON and
/// AVX-512, there is none: they use AVX2's or the portable one).
pub(crate) fn pack_for(level: SimdLevel) -> Option<PackFn> {
    match level {
        SimdLevel::Portable => Some(pack_portable),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => x86::avx2_pack_checked(),
        _ => None,
    }
}

/// The packing kernel of the level vq-distance uses in this process (`VQ_SIMD` applies).
fn active_pack() -> PackFn {
    static ACTIVE: OnceLock<PackFn> = OnceLock::new();
    *ACTIVE.get_or_init(|| dispatched(pack_for, pack_portable))
}

/// The block kernel of `level`, or `None` when this CPU cannot run it.
pub(crate) fn block_sums_for(level: SimdLevel) -> Option<BlockSumsFn> {
    match level {
        SimdLevel::Portable => Some(block_sums_portable),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => x86::avx2_checked(),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => x86::avx512_checked(),
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => aarch64::neon_checked(),
        _ => None,
    }
}

/// The block kernel of the level vq-distance uses in this process (`VQ_SIMD` applies).
fn active_block_sums() -> BlockSumsFn {
    static ACTIVE: OnceLock<BlockSumsFn> = OnceLock::new();
    *ACTIVE.get_or_init(|| dispatched(block_sums_for, block_sums_portable))
}

/// Pass 1 of quantizing a table of `m` rows of 16 keys, each key `a[i]` or `a[i] + b[i]`:
/// every row's minimum into `mins[..m]`, and the largest row range `max − min` (`None` if a key
/// is not finite).
pub(crate) type RowStatsFn = fn(a: &[f32], b: Option<&[f32]>, mins: &mut [f32]) -> Option<f32>;

/// Pass 2: `out[i] = ((key_i − mins[row]) · scale + 0.5)` truncated to a byte (saturating),
/// the same float operations in the same order on every level (no fused multiply-add), so
/// every level writes the same bytes.
pub(crate) type QuantizeRowsFn = fn(a: &[f32], b: Option<&[f32]>, mins: &[f32], scale: f32, out: &mut [u8]);

/// The two passes of [`QuantizedLut::fill`] at one SIMD level.
#[derive(Clone, Copy)]
pub(crate) struct LutKernels {
    pub(crate) row_stats: RowStatsFn,
    pub(crate) quantize_rows: QuantizeRowsFn,
}

#[inline]
fn key_at(a: &[f32], b: Option<&[f32]>, i: usize) -> f32 {
    match b {
        Some(b) => a[i] + b[i],
        None => a[i],
    }
}

/// The plain-Rust row statistics every SIMD level must equal exactly.
pub(crate) fn row_stats_portable(a: &[f32], b: Option<&[f32]>, mins: &mut [f32]) -> Option<f32> {
    let mut range = 0f32;
    for (j, lo_out) in mins.iter_mut().enumerate().take(a.len() / 16) {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for i in j * 16..j * 16 + 16 {
            let k = key_at(a, b, i);
            if !k.is_finite() {
                return None;
            }
            lo = lo.min(k);
            hi = hi.max(k);
        }
        *lo_out = lo;
        range = range.max(hi - lo);
    }
    Some(range)
}

/// The plain-Rust quantization every SIMD level must equal exactly.
pub(crate) fn quantize_rows_portable(a: &[f32], b: Option<&[f32]>, mins: &[f32], scale: f32, out: &mut [u8]) {
    for (j, (&lo, out)) in mins.iter().zip(out.chunks_exact_mut(16)).enumerate() {
        for (t, o) in out.iter_mut().enumerate() {
            // Round half up by truncation (the value is at least 0): `f32::round` is a libm
            // call on baseline x86-64. The cast saturates at 255.
            *o = ((key_at(a, b, j * 16 + t) - lo) * scale + 0.5) as u8;
        }
    }
}

/// The table-quantization kernels of `level`, or `None` when this CPU cannot run them.
pub(crate) fn lut_kernels_for(level: SimdLevel) -> Option<LutKernels> {
    match level {
        SimdLevel::Portable => {
            Some(LutKernels { row_stats: row_stats_portable, quantize_rows: quantize_rows_portable })
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => x86::lut_avx2_checked(),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => x86::lut_avx512_checked(),
        _ => None,
    }
}

/// The table-quantization kernels of the level vq-distance uses in this process.
fn active_lut_kernels() -> LutKernels {
    static ACTIVE: OnceLock<LutKernels> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let wanted = vq_distance::simd_level();
        [wanted, SimdLevel::Avx2, SimdLevel::Portable]
            .into_iter()
            .filter(|&l| l <= wanted)
            .find_map(lut_kernels_for)
            .unwrap_or(LutKernels { row_stats: row_stats_portable, quantize_rows: quantize_rows_portable })
    })
}

/// A query's look-up table quantized to bytes for [`PackedCodes`].
///
/// Row `j` (16 keys of sub-quantizer `j`, smaller is better) is stored as
/// `round((key − min_j) · scale)` with one `scale = 255 / max_j (max_j − min_j)` for all rows,
/// so sums of bytes compare like sums of keys: `key ≈ bias + sum / scale` with
/// `bias = Σ_j min_j`, off by at most half a step per sub-quantizer.
#[derive(Debug, Clone)]
pub struct QuantizedLut {
    m: usize,
    /// `pairs · 32` bytes: rows of 16, padded with a zero row to an even count.
    bytes: Vec<u8>,
    /// `Σ_j min_j + offset`: the key of a zero sum.
    bias: f32,
    /// `Σ_j min_j`, before [`QuantizedLut::set_offset`].
    row_bias: f32,
    scale: f32,
    /// Scratch of [`QuantizedLut::fill`]: each row's minimum.
    mins: Vec<f32>,
}

impl QuantizedLut {
    /// Quantizes `table`, `m` rows of 16 keys (a 4-bit [`PqScorer`](crate::PqScorer)'s
    /// table). Errors if its length is not `16 · m` for some `m ≥ 1` or a key is not finite.
    pub fn new(table: &[f32]) -> Result<Self> {
        let mut lut = QuantizedLut { m: 0, bytes: Vec::new(), bias: 0.0, row_bias: 0.0, scale: 1.0, mins: Vec::new() };
        lut.fill(table)?;
        Ok(lut)
    }

    /// Quantizes `table` into this LUT, reusing its memory (an inverted file re-quantizes one
    /// table per probed list); the offset is reset to 0. Same errors as [`QuantizedLut::new`];
    /// on error the LUT is left as it was.
    pub fn fill(&mut self, table: &[f32]) -> Result<()> {
        self.fill_from(active_lut_kernels(), table, None)
    }

    /// Quantizes the table `a + b` (element by element) into this LUT, reusing its memory, as
    /// [`QuantizedLut::fill`] of the sum would, without writing the sum anywhere: an inverted
    /// file over L2 residuals adds a list's precomputed terms to the query's terms for every
    /// probed list. Errors if the lengths differ, are not `16 · m` for some `m ≥ 1`, or a sum
    /// is not finite; on error the LUT is left as it was.
    pub fn fill_sum(&mut self, a: &[f32], b: &[f32]) -> Result<()> {
        if a.len() != b.len() {
            return Err(Error::Parameter {
                name: "table",
                what: format!("terms of {} and {} keys cannot be added", a.len(), b.len()),
            });
        }
        self.fill_from(active_lut_kernels(), a, Some(b))
    }

    pub(crate) fn fill_from(&mut self, kernels: LutKernels, a: &[f32], b: Option<&[f32]>) -> Result<()> {
        if a.is_empty() || !a.len().is_multiple_of(16) {
            return Err(Error::Parameter {
                name: "table",
                what: format!("{} keys: a 4-bit look-up table holds 16 per sub-quantizer", a.len()),
            });
        }
        let m = a.len() / 16;
        // Pass 1: row minima and the largest row range (the scale needs all rows first).
        self.mins.resize(m, 0.0);
        let Some(range) = (kernels.row_stats)(a, b, &mut self.mins) else {
            // Cold: name the first bad key.
            let bad = (0..a.len()).find(|&i| !b.map_or(a[i], |b| a[i] + b[i]).is_finite()).unwrap_or(0);
            return Err(Error::Parameter { name: "table", what: format!("key {bad} is not finite") });
        };
        if !range.is_finite() {
            return Err(Error::Parameter { name: "table", what: format!("a row spans {range}, beyond f32") });
        }
        // All rows flat: every byte is 0 and any positive scale is exact.
        let scale = if range > 0.0 && (255.0 / range).is_finite() { 255.0 / range } else { 1.0 };
        // The same order on every level, so the bias is the same float everywhere: four
        // running sums (one serial chain of m additions was a visible share of an inverted
        // file's per-list cost), then those in order.
        let mut sums = [0f32; 4];
        for chunk in self.mins.chunks(4) {
            for (s, &x) in sums.iter_mut().zip(chunk) {
                *s += x;
            }
        }
        let bias = (sums[0] + sums[1]) + (sums[2] + sums[3]);
        self.bytes.clear();
        self.bytes.resize(m.next_multiple_of(2) * 16, 0);
        // Pass 2: the bytes (a padding row stays 0).
        (kernels.quantize_rows)(a, b, &self.mins, scale, &mut self.bytes[..m * 16]);
        self.m = m;
        self.scale = scale;
        self.row_bias = bias;
        self.bias = bias;
        Ok(())
    }

    /// Adds `offset` to every key (replacing any earlier offset): an inverted file over
    /// inner-product residuals shares one table across lists and offsets it by the list's
    /// coarse key, without quantizing again.
    pub fn set_offset(&mut self, offset: f32) {
        self.bias = self.row_bias + offset;
    }

    /// Sub-quantizers.
    pub fn m(&self) -> usize {
        self.m
    }

    /// The key of a byte sum: `bias + sum / scale`.
    #[inline]
    pub fn key(&self, sum: u32) -> f32 {
        self.bias + sum as f32 / self.scale
    }

    /// The largest sum whose key can be at or below `key` (`u32::MAX` for `+∞`, none below
    /// the bias): the integer form of a top-k threshold.
    #[inline]
    pub fn max_sum_for(&self, key: f32) -> Option<u32> {
        if key == f32::INFINITY {
            return Some(u32::MAX);
        }
        let steps = ((key - self.bias) * self.scale).floor();
        // One step of slack: `key()` rounds, so a sum one above the floor may still map to a
        // key equal to the threshold; TopK makes the exact decision.
        if steps.is_nan() || steps < -1.0 { None } else { Some((steps as u32).saturating_add(1)) }
    }

    /// The bound on `|key(sum) − float sum|` from rounding the table: half a step per
    /// sub-quantizer.
    pub fn max_error(&self) -> f32 {
        0.5 * self.m as f32 / self.scale
    }

    /// The quantized rows, `16` bytes per sub-quantizer, padded to an even count.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// 4-bit PQ codes in the fast-scan layout (see the module docs), appended in order; row `i`
/// is the `i`-th code pushed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedCodes {
    m: usize,
    len: usize,
    data: Vec<u8>,
}

impl PackedCodes {
    /// Empty, for codes of `m ≥ 1` 4-bit sub-quantizers.
    pub fn new(m: usize) -> Result<Self> {
        if m == 0 || m > MAX_M {
            return Err(Error::Parameter {
                name: "m",
                what: format!("{m} sub-quantizers: fast scan takes 1..={MAX_M}"),
            });
        }
        Ok(PackedCodes { m, len: 0, data: Vec::new() })
    }

    /// Sub-quantizers.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Codes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of one block: 16 per sub-quantizer, their count padded to even.
    pub fn block_bytes(&self) -> usize {
        self.m.next_multiple_of(2) * SUB_BYTES
    }

    /// Bytes of a standard 4-bit PQ code of this `m` (two sub-quantizers per byte).
    pub fn code_size(&self) -> usize {
        self.m.div_ceil(2)
    }

    /// The packed blocks (the last one padded with zero codes).
    pub fn blocks(&self) -> &[u8] {
        &self.data
    }

    /// Appends standard 4-bit PQ codes (`code_size()` bytes each, sub-quantizer `j` at bit
    /// `4j`, as [`ProductQuantizer`](crate::ProductQuantizer) encodes them).
    pub fn extend(&mut self, codes: &[u8]) -> Result<()> {
        let size = self.code_size();
        if !codes.len().is_multiple_of(size) {
            return Err(Error::Parameter {
                name: "codes",
                what: format!("{} bytes is not a whole number of {size}-byte codes", codes.len()),
            });
        }
        self.extend_strided(codes, size);
        Ok(())
    }

    /// [`extend`](PackedCodes::extend) from codes `stride ≥ code_size()` bytes apart, each
    /// code the first `code_size()` bytes of its stride (`codes` a whole number of strides):
    /// the sign planes of whole RaBitQ codes, packed where they lie.
    pub(crate) fn extend_strided(&mut self, codes: &[u8], stride: usize) {
        let n = codes.len() / stride;
        self.data.resize((self.len + n).div_ceil(BLOCK) * self.block_bytes(), 0);
        // The open last block a code at a time, then a block at a time from its boundary (a
        // bulk load or a file read: packed nibble by nibble, their codes were 22 % of reading
        // an IVF RaBitQfs file).
        let open = ((BLOCK - self.len % BLOCK) % BLOCK).min(n);
        let (first, rest) = codes.split_at(open * stride);
        let size = self.code_size();
        for code in first.chunks_exact(stride) {
            self.put_one(&code[..size]);
        }
        for block in rest.chunks(BLOCK * stride) {
            self.put_block(block, stride);
        }
    }

    /// Appends one code (`code_size()` bytes; `data` already holds its block), nibble by
    /// nibble into the bytes its block shares with the other codes.
    fn put_one(&mut self, code: &[u8]) {
        let (block, v) = (self.len / BLOCK, self.len % BLOCK);
        let (t, high) = byte_of_vector(v);
        let base = block * self.block_bytes();
        for j in 0..self.m {
            let nib = unpack_index(code, j, 4) as u8;
            let byte = &mut self.data[base + j * SUB_BYTES + t];
            *byte = if high { (*byte & 0x0f) | (nib << 4) } else { (*byte & 0xf0) | nib };
        }
        self.len += 1;
    }

    /// Appends up to a block of codes, `stride` bytes apart, at a block boundary (`data` holds
    /// the block): byte `b` of every code holds sub-quantizers `2b` (low nibble) and `2b + 1`,
    /// so it fills byte `t` of rows `2b` and `2b + 1` for the two vectors that byte holds, each
    /// row written once, whole ([`PackFn`]). Fewer than 32 codes are padded with zero codes
    /// (copied: their block is a list's last, one in three or four at 100 codes a list), an
    /// odd `m`'s padding row is zeros.
    fn put_block(&mut self, codes: &[u8], stride: usize) {
        let count = codes.len() / stride;
        let (m, size, block_bytes) = (self.m, self.code_size(), self.block_bytes());
        let padded;
        let (codes, stride) = if count < BLOCK {
            let mut whole = vec![0u8; BLOCK * size];
            for (out, code) in whole.chunks_exact_mut(size).zip(codes.chunks_exact(stride)) {
                out.copy_from_slice(&code[..size]);
            }
            padded = whole;
            (&padded[..], size)
        } else {
            (codes, stride)
        };
        let base = self.len / BLOCK * block_bytes;
        let rows = &mut self.data[base..base + block_bytes];
        active_pack()(codes, stride, 0..size, rows);
        // An odd m's last byte packs its high nibble, no sub-quantizer's, into the padding
        // row (the low row takes the low nibbles alone): the padding row is zeros.
        if !m.is_multiple_of(2) {
            rows[m * SUB_BYTES..].fill(0);
        }
        self.len += count;
    }

    /// The standard 4-bit PQ code of row `i` (`None` past the end).
    pub fn code(&self, i: usize) -> Option<Vec<u8>> {
        let mut code = vec![0u8; self.code_size()];
        self.code_into(i, &mut code)?;
        Some(code)
    }

    /// [`code`](PackedCodes::code) into `code` (its first `code_size()` bytes, overwritten).
    pub(crate) fn code_into(&self, i: usize, code: &mut [u8]) -> Option<()> {
        if i >= self.len || code.len() < self.code_size() {
            return None;
        }
        let (block, v) = (i / BLOCK, i % BLOCK);
        let (t, high) = byte_of_vector(v);
        let data = &self.data[block * self.block_bytes()..][..self.block_bytes()];
        // Two nibbles a byte, sub-quantizer `2b` low (as `pq::pack_index` writes them): a
        // column of the block's rows (the two-stage multi-bit RaBitQ scan unpacks the sign
        // plane of every code its first stage passes, 48 bytes of 96 rows at d = 384).
        let cs = self.code_size();
        active_column()(data, t, high, &mut code[..cs]);
        // An odd last sub-quantizer alone (the padding row after it is not a code's).
        if !self.m.is_multiple_of(2) {
            code[cs - 1] &= 15;
        }
        Some(())
    }

    /// Bytes held (capacity included).
    pub fn memory_bytes(&self) -> usize {
        self.data.capacity()
    }

    /// Makes room for `additional` more codes, exactly (whole blocks). A hint: dropped when the
    /// memory cannot be had.
    pub fn reserve(&mut self, additional: usize) {
        let blocks = self.len.saturating_add(additional).div_ceil(BLOCK);
        let bytes = blocks.saturating_mul(self.block_bytes());
        let _ = self.data.try_reserve_exact(bytes.saturating_sub(self.data.len()));
    }

    /// Every code in the standard layout, `len() · code_size()` bytes in row order.
    pub fn unpack_all(&self) -> Vec<u8> {
        (0..self.len).flat_map(|i| self.code(i).unwrap_or_default()).collect()
    }

    /// Drops every row `keep` rejects (each position `0..len()` is asked once, in order),
    /// keeping the others in order; returns how many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) -> usize {
        let size = self.code_size();
        let before = self.len;
        let kept: Vec<u8> = (0..before).filter(|&i| keep(i)).flat_map(|i| self.code(i).unwrap_or_default()).collect();
        self.data.clear();
        self.len = 0;
        // Whole codes of this m: extend cannot fail.
        let _ = self.extend(&kept);
        debug_assert_eq!(self.len * size, kept.len());
        before - self.len
    }

    /// Offers every row's key under `lut` to `top` as `(key, id_of(row))`, skipping rows
    /// `keep` rejects. Rows whose byte sum cannot beat the current threshold are dropped as
    /// integers, before any float work.
    pub fn scan(
        &self,
        lut: &QuantizedLut,
        top: &mut impl ScanSink,
        keep: Option<&dyn Fn(usize) -> bool>,
        id_of: impl Fn(usize) -> u64,
    ) -> Result<()> {
        let rows = keep.map_or(Rows::All, Rows::Kept);
        self.scan_with(active_block_sums(), lut, top, rows, id_of)
    }

    /// [`scan`](PackedCodes::scan) of the rows a mask allows: bit `v` of `masks[b]` allows row
    /// `32 · b + v` (a block past the end of `masks` allows none). A block none of whose rows
    /// is allowed is not summed at all, so a selective filter, tested once per row up front,
    /// skips most of the scan's work.
    pub fn scan_masked(
        &self,
        lut: &QuantizedLut,
        top: &mut impl ScanSink,
        masks: &[u32],
        id_of: impl Fn(usize) -> u64,
    ) -> Result<()> {
        self.scan_with(active_block_sums(), lut, top, Rows::Masked(masks), id_of)
    }

    /// [`scan`](PackedCodes::scan) or [`scan_masked`](PackedCodes::scan_masked), as `rows`
    /// says: for a caller that holds either.
    pub fn scan_rows(
        &self,
        lut: &QuantizedLut,
        top: &mut impl ScanSink,
        rows: Rows<'_>,
        id_of: impl Fn(usize) -> u64,
    ) -> Result<()> {
        self.scan_with(active_block_sums(), lut, top, rows, id_of)
    }

    pub(crate) fn scan_with(
        &self,
        kernel: BlockSumsFn,
        lut: &QuantizedLut,
        top: &mut impl ScanSink,
        rows: Rows<'_>,
        id_of: impl Fn(usize) -> u64,
    ) -> Result<()> {
        if lut.m != self.m {
            return Err(Error::Parameter {
                name: "lut",
                what: format!("a table of {} sub-quantizers for codes of {}", lut.m, self.m),
            });
        }
        let mut sums = [0u32; BLOCK];
        // The integer threshold, recomputed only when the top-k's threshold moved.
        let mut threshold = top.threshold();
        let mut max_sum = lut.max_sum_for(threshold);
        for (b, block) in self.data.chunks_exact(self.block_bytes()).enumerate() {
            let allowed = match rows {
                Rows::Masked(masks) => masks.get(b).copied().unwrap_or(0),
                _ => u32::MAX,
            };
            if allowed == 0 {
                continue;
            }
            if top.threshold() != threshold {
                threshold = top.threshold();
                max_sum = lut.max_sum_for(threshold);
            }
            let Some(max_sum) = max_sum else { return Ok(()) };
            // Once the threshold has settled almost no row passes: the kernel tests all 32,
            // and only the passing bits are visited.
            let mut pass = kernel(&lut.bytes, block, max_sum, &mut sums) & allowed;
            let first = b * BLOCK;
            let held = (self.len - first).min(BLOCK);
            if held < BLOCK {
                pass &= (1u32 << held) - 1;
            }
            while pass != 0 {
                let v = pass.trailing_zeros() as usize;
                pass &= pass - 1;
                if let Rows::Kept(keep) = rows
                    && !keep(first + v)
                {
                    continue;
                }
                top.push(lut.key(sums[v]), id_of(first + v));
            }
        }
        Ok(())
    }
}

/// The rows a scan may offer ([`PackedCodes::scan_rows`], [`RaBitQPacked::scan_rows`]).
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    /// Every row.
    All,
    /// Those a predicate keeps, asked only of rows whose sum could enter the top-k.
    Kept(&'a dyn Fn(usize) -> bool),
    /// Those whose bit is set, a `u32` per block of 32 ([`PackedCodes::scan_masked`]).
    Masked(&'a [u32]),
}

/// The byte (`0..16`) of a sub-quantizer's 16 holding vector `v` of a block, and whether in
/// the high nibble: the inverse of [`vector_of_byte`].
#[inline]
fn byte_of_vector(v: usize) -> (usize, bool) {
    let (low, high) = (v % 16, v >= 16);
    (2 * (low % 8) + low / 8, high)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use vq_distance::TopK;

    use super::*;

    #[test]
    fn byte_and_vector_maps_are_inverse() {
        for v in 0..BLOCK {
            let (t, high) = byte_of_vector(v);
            assert!(t < 16);
            assert_eq!(vector_of_byte(t) + if high { 16 } else { 0 }, v);
        }
    }

    fn codes_strategy() -> impl Strategy<Value = (usize, Vec<u8>, Vec<u8>)> {
        (1usize..70, 0usize..100).prop_flat_map(|(m, n)| {
            let size = m.div_ceil(2);
            (
                Just(m),
                proptest::collection::vec(any::<u8>(), n * size),
                proptest::collection::vec(any::<u8>(), m.next_multiple_of(2) * 16),
            )
        })
    }

    proptest! {
        /// Codes appended in chunks (an open block filled first, then a block at a time), in
        /// place or strided, pack to the bytes that appending them one at a time (nibble by
        /// nibble) gives, and read back as written (an odd `m`'s unused last nibble as zero).
        #[test]
        fn extend_packs_chunks_as_one_code_at_a_time(
            (m, codes, _) in codes_strategy(),
            mut cuts in proptest::collection::vec(0usize..100, 0..3),
        ) {
            let size = m.div_ceil(2);
            let n = codes.len() / size;
            // The slow twin: every code nibble by nibble.
            let mut slow = PackedCodes::new(m).unwrap();
            slow.data.resize(n.div_ceil(BLOCK) * slow.block_bytes(), 0);
            for code in codes.chunks_exact(size) {
                slow.put_one(code);
            }
            cuts.iter_mut().for_each(|c| *c = (*c).min(n));
            cuts.sort_unstable();
            // And each code followed by bytes that are not its own, read in place.
            let stride = size + 3;
            let spaced: Vec<u8> = codes.chunks_exact(size).flat_map(|c| c.iter().copied().chain([0xab; 3])).collect();
            let (mut fast, mut strided) = (PackedCodes::new(m).unwrap(), PackedCodes::new(m).unwrap());
            let mut at = 0;
            for cut in cuts.into_iter().chain([n]) {
                fast.extend(&codes[at * size..cut * size]).unwrap();
                strided.extend_strided(&spaced[at * stride..cut * stride], stride);
                at = cut;
            }
            prop_assert_eq!(fast.len(), n);
            prop_assert_eq!(&fast.data, &slow.data);
            prop_assert_eq!(strided.len(), n);
            prop_assert_eq!(&strided.data, &slow.data);
            for (i, code) in codes.chunks_exact(size).enumerate() {
                let mut want = code.to_vec();
                if m % 2 == 1 {
                    want[size - 1] &= 15;
                }
                prop_assert_eq!(fast.code(i).unwrap(), want, "row {}", i);
            }
        }
    }

    proptest! {
        /// Every SIMD level's packing kernel writes the portable twin's rows for any range of
        /// bytes of 32 codes (whole sixteens and a rest), and nothing else.
        #[test]
        fn every_pack_level_equals_the_portable_twin(
            (stride, codes) in (1usize..120).prop_flat_map(|stride| (Just(stride), proptest::collection::vec(any::<u8>(), BLOCK * stride))),
            ends in (0usize..120, 0usize..120),
        ) {
            let (start, end) = (ends.0.min(ends.1).min(stride), ends.0.max(ends.1).min(stride));
            let mut want = vec![0x5au8; 2 * SUB_BYTES * stride + 7];
            pack_portable(&codes, stride, start..end, &mut want);
            prop_assert!(want[..2 * SUB_BYTES * start].iter().chain(&want[2 * SUB_BYTES * end..]).all(|&b| b == 0x5a));
            for level in SimdLevel::available() {
                let Some(kernel) = pack_for(level) else { continue };
                let mut got = vec![0x5au8; 2 * SUB_BYTES * stride + 7];
                kernel(&codes, stride, start..end, &mut got);
                prop_assert_eq!(&got, &want, "{:?}", level);
            }
        }

        /// Every SIMD level's column kernel writes the portable twin's bytes, for blocks of one to
        /// a few hundred row pairs (whole groups of 16 rows and a remainder), every byte and nibble.
        #[test]
        fn every_column_level_equals_the_portable_twin(
            block in (1usize..=200).prop_flat_map(|pairs| proptest::collection::vec(any::<u8>(), pairs * 2 * SUB_BYTES)),
            t in 0usize..SUB_BYTES,
            high in any::<bool>(),
        ) {
            let n = block.len() / (2 * SUB_BYTES);
            let mut want = vec![0xaau8; n + 3];
            column_portable(&block, t, high, &mut want);
            prop_assert!(want[n..].iter().all(|&b| b == 0xaa), "writes only its bytes");
            for level in SimdLevel::available() {
                let Some(kernel) = column_for(level) else { continue };
                let mut got = vec![0xaau8; n + 3];
                kernel(&block, t, high, &mut got);
                prop_assert_eq!(&got, &want, "{:?}", level);
            }
        }

        /// Every SIMD level's block sums equal the portable twin's exactly, which equal the
        /// sums of table bytes per unpacked code; packing round-trips.
        #[test]
        fn every_level_equals_the_portable_twin((m, mut codes, mut lut) in codes_strategy()) {
            let size = m.div_ceil(2);
            // A padding row is zero, as QuantizedLut makes it.
            lut[m * 16..].fill(0);
            if m % 2 == 1 {
                // The unused high nibble of an odd m's last byte: cleared, as the encoder does.
                codes.chunks_exact_mut(size).for_each(|c| c[size - 1] &= 0x0f);
            }
            let mut packed = PackedCodes::new(m).unwrap();
            packed.extend(&codes).unwrap();
            for (i, code) in codes.chunks_exact(size).enumerate() {
                prop_assert_eq!(packed.code(i).unwrap(), code.to_vec());
            }
            let levels: Vec<BlockSumsFn> = SimdLevel::available().into_iter().filter_map(block_sums_for).collect();
            for (b, block) in packed.blocks().chunks_exact(packed.block_bytes()).enumerate() {
                let mut want = [0u32; BLOCK];
                let max_sum = (m as u32 * 255) / 2;
                let want_mask = block_sums_portable(&lut, block, max_sum, &mut want);
                prop_assert_eq!(want_mask, (0..BLOCK).fold(0, |acc, v| acc | (u32::from(want[v] <= max_sum) << v)));
                for v in 0..BLOCK.min(packed.len() - b * BLOCK) {
                    let code = &codes[(b * BLOCK + v) * size..][..size];
                    let direct: u32 = (0..m).map(|j| u32::from(lut[j * 16 + unpack_index(code, j, 4) as usize])).sum();
                    prop_assert_eq!(want[v], direct, "row {}", b * BLOCK + v);
                }
                for kernel in &levels {
                    for threshold in [max_sum, 0, u32::MAX] {
                        // The sums are the kernel's to write only where some row passes.
                        let mut got = [u32::MAX; BLOCK];
                        let mask = kernel(&lut, block, threshold, &mut got);
                        prop_assert_eq!(mask, (0..BLOCK).fold(0, |acc, v| acc | (u32::from(want[v] <= threshold) << v)));
                        if mask != 0 {
                            prop_assert_eq!(got, want);
                        }
                    }
                }
            }
        }
    }

    /// Keys with ties, signed zeros and wide and narrow ranges; `m` rows, and sometimes a
    /// second table to add.
    fn table_strategy() -> impl Strategy<Value = (Vec<f32>, Option<Vec<f32>>)> {
        let key = prop_oneof![
            -1e3f32..1e3,
            (-3i32..3).prop_map(|v| v as f32 * 0.25),
            Just(0.0f32),
            Just(-0.0f32),
            -1e-3f32..1e-3,
        ];
        (1usize..70).prop_flat_map(move |m| {
            let keys = proptest::collection::vec(key.clone(), 16 * m);
            (keys.clone(), proptest::option::of(keys))
        })
    }

    proptest! {
        /// Every level's table quantization equals the portable twin's exactly (row minima,
        /// range, bytes), and a LUT filled from `a + b` equals one made from the summed table.
        #[test]
        fn lut_quantization_equals_the_portable_twin((a, b) in table_strategy()) {
            let m = a.len() / 16;
            let b = b.as_deref();
            let portable = lut_kernels_for(SimdLevel::Portable).unwrap();
            let mut want_mins = vec![0f32; m];
            let range = (portable.row_stats)(&a, b, &mut want_mins).unwrap();
            let summed: Vec<f32> = (0..a.len()).map(|i| key_at(&a, b, i)).collect();
            let want = QuantizedLut::new(&summed).unwrap();
            prop_assert!(range > 0.0 || want.bytes().iter().all(|&x| x == 0));
            for level in SimdLevel::available() {
                let Some(kernels) = lut_kernels_for(level) else { continue };
                let mut mins = vec![f32::NAN; m];
                prop_assert_eq!((kernels.row_stats)(&a, b, &mut mins), Some(range), "{:?}", level);
                prop_assert_eq!(&mins, &want_mins, "{:?}", level);
                let mut got = QuantizedLut::new(&[0.0; 16]).unwrap();
                got.fill_from(kernels, &a, b).unwrap();
                prop_assert_eq!(got.bytes(), want.bytes(), "{:?}", level);
                prop_assert_eq!((got.m(), got.key(0), got.key(1000)), (want.m(), want.key(0), want.key(1000)));
            }
            if let Some(b) = b {
                let mut got = QuantizedLut::new(&[0.0; 16]).unwrap();
                got.fill_sum(&a, b).unwrap();
                prop_assert_eq!(got.bytes(), want.bytes());
            }
        }
    }

    /// A key that is (or sums to) infinity or NaN is an error naming it on every level, and
    /// leaves the LUT as it was.
    #[test]
    fn lut_rejects_non_finite_keys_on_every_level() {
        // 4 rows (one at a time on every level) and 20 (a group of 16 where a level takes
        // rows in groups, then 4).
        for len in [64usize, 320] {
            let a: Vec<f32> = (0..len).map(|i| i as f32).collect();
            for level in SimdLevel::available() {
                let Some(kernels) = lut_kernels_for(level) else { continue };
                let bad_keys = [(0, f32::NAN), (17, f32::INFINITY), (len - 1, f32::NEG_INFINITY), (len / 2, f32::NAN)];
                for (at, bad) in bad_keys {
                    let mut t = a.clone();
                    t[at] = bad;
                    let mut lut = QuantizedLut::new(&a).unwrap();
                    let err = lut.fill_from(kernels, &t, None).unwrap_err().to_string();
                    assert!(err.contains(&format!("key {at} ")), "{level:?}: {err}");
                    assert_eq!(lut.bytes(), QuantizedLut::new(&a).unwrap().bytes());
                    // Finite terms whose sum overflows.
                    let mut big = vec![0f32; len];
                    big[at] = f32::MAX;
                    let mut t = a.clone();
                    t[at] = f32::MAX;
                    let err = lut.fill_from(kernels, &t, Some(&big)).unwrap_err().to_string();
                    assert!(err.contains(&format!("key {at} ")), "{level:?}: {err}");
                }
            }
        }
        let a: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let mut lut = QuantizedLut::new(&a).unwrap();
        assert!(lut.fill_sum(&a, &a[..48]).is_err());
        // A range beyond f32: finite keys, an infinite span.
        let mut wide = vec![0f32; 16];
        (wide[0], wide[1]) = (f32::MAX, -f32::MAX);
        assert!(lut.fill(&wide).is_err());
    }

    /// The largest m a group can hold and one past it, all table bytes 255: the 16-bit lanes
    /// are at their limit and the widening between groups must carry. And the largest m whose
    /// sums the x86 kernels add and compare in 16 bits (256: 65,280) and one pair past it.
    #[test]
    fn sums_at_the_lane_limit_are_exact() {
        // AVX2 groups pairs, AVX-512 quads: cover a whole group and one past for both.
        let groups = [2 * GROUP_PAIRS, 2 * GROUP_PAIRS + 2, 3 * GROUP_PAIRS + 1, 4 * GROUP_PAIRS, 4 * GROUP_PAIRS + 6];
        for m in [255, 256, 257, 258].into_iter().chain(groups) {
            let lut = vec![255u8; m.next_multiple_of(2) * 16];
            let mut packed = PackedCodes::new(m).unwrap();
            packed.extend(&vec![0xffu8; 40 * m.div_ceil(2)]).unwrap();
            for level in SimdLevel::available() {
                let Some(kernel) = block_sums_for(level) else { continue };
                // The padding sub-quantizer of an odd m has code 0 and byte 255 too.
                let sum = 255 * m.next_multiple_of(2) as u32;
                let block = &packed.blocks()[..packed.block_bytes()];
                for (threshold, passes) in [(u32::MAX, true), (sum, true), (65_535, sum <= 65_535), (sum - 1, false)] {
                    let mut got = [0u32; BLOCK];
                    let mask = kernel(&lut, block, threshold, &mut got);
                    assert_eq!(mask, if passes { u32::MAX } else { 0 }, "{level:?}, m = {m}, threshold {threshold}");
                    if passes {
                        assert_eq!(got, [sum; BLOCK], "{level:?}, m = {m}");
                    }
                }
            }
        }
    }

    #[test]
    fn quantized_keys_are_within_the_bound_of_the_float_sums() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        for m in [1, 2, 7, 16, 64] {
            let table: Vec<f32> = (0..16 * m).map(|_| next() * 50.0 - 10.0).collect();
            let lut = QuantizedLut::new(&table).unwrap();
            for _ in 0..200 {
                let code: Vec<usize> = (0..m).map(|_| (next() * 16.0) as usize % 16).collect();
                let float: f32 = code.iter().enumerate().map(|(j, &c)| table[j * 16 + c]).sum();
                let sum: u32 = code.iter().enumerate().map(|(j, &c)| u32::from(lut.bytes()[j * 16 + c])).sum();
                let err = (lut.key(sum) - float).abs();
                assert!(err <= lut.max_error() * 1.001 + 1e-4 * float.abs(), "m {m}: {err} > {}", lut.max_error());
                // The integer threshold never drops a sum whose key is at or below the key.
                assert!(lut.max_sum_for(lut.key(sum)).is_some_and(|max| sum <= max));
            }
        }
        assert!(QuantizedLut::new(&[1.0; 15]).is_err());
        assert!(QuantizedLut::new(&[f32::NAN; 16]).is_err());
        let flat = QuantizedLut::new(&[3.0; 32]).unwrap();
        assert_eq!(flat.key(0), 6.0);
        // Re-filling reuses the LUT and equals a new one; an offset shifts every key, and a
        // new fill drops it; a bad table leaves the LUT as it was.
        let table: Vec<f32> = (0..64).map(|i| (i * 37 % 11) as f32 * 0.5).collect();
        let mut lut = flat.clone();
        lut.fill(&table).unwrap();
        let fresh = QuantizedLut::new(&table).unwrap();
        assert_eq!((lut.bytes(), lut.m(), lut.key(100)), (fresh.bytes(), fresh.m(), fresh.key(100)));
        lut.set_offset(-2.5);
        assert_eq!(lut.key(100), fresh.key(100) - 2.5);
        assert_eq!(lut.max_sum_for(lut.key(100)), fresh.max_sum_for(fresh.key(100)));
        assert!(lut.fill(&[f32::NAN; 16]).is_err());
        assert_eq!(lut.key(100), fresh.key(100) - 2.5);
        lut.fill(&table).unwrap();
        assert_eq!(lut.key(100), fresh.key(100));
        assert_eq!(flat.max_error(), 1.0, "scale 1 when every row is flat");
    }

    /// The scan's top-k equals sorting every row's quantized key (same ids, same keys).
    #[test]
    fn scan_equals_sorting_every_key() {
        let m = 12;
        let mut state = 7u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let codes: Vec<u8> = (0..(1000 * m / 2)).map(|_| next() as u8).collect();
        let table: Vec<f32> = (0..16 * m).map(|_| (next() % 1000) as f32 * 0.37).collect();
        let lut = QuantizedLut::new(&table).unwrap();
        let mut packed = PackedCodes::new(m).unwrap();
        packed.extend(&codes[..500 * m / 2]).unwrap();
        packed.extend(&codes[500 * m / 2..]).unwrap();
        let keep = |row: usize| !row.is_multiple_of(3);
        // The same rows as a mask (block 31's rows 992.. are past the end, all allowed; none of
        // a block past the mask's end is).
        let mut masks = vec![0u32; 1000usize.div_ceil(BLOCK)];
        (0..1000).filter(|&r| keep(r)).for_each(|r| masks[r / BLOCK] |= 1 << (r % BLOCK));
        masks[31] |= !0 << (1000 % BLOCK);
        for level in SimdLevel::available() {
            let Some(kernel) = block_sums_for(level) else { continue };
            for (filter, masked) in [(None, false), (Some(&keep as &dyn Fn(usize) -> bool), false), (Some(&keep), true)]
            {
                let mut top = TopK::new(10);
                let rows = match filter {
                    Some(_) if masked => Rows::Masked(&masks),
                    Some(f) => Rows::Kept(f),
                    None => Rows::All,
                };
                packed.scan_with(kernel, &lut, &mut top, rows, |row| row as u64 + 100).unwrap();
                let got = top.into_sorted();
                let mut all: Vec<(f32, u64)> = (0..1000)
                    .filter(|&r| filter.is_none_or(|f| f(r)))
                    .map(|r| {
                        let code = &codes[r * m / 2..][..m / 2];
                        let sum: u32 =
                            (0..m).map(|j| u32::from(lut.bytes()[j * 16 + unpack_index(code, j, 4) as usize])).sum();
                        (lut.key(sum), r as u64 + 100)
                    })
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                all.truncate(10);
                assert_eq!(got, all, "{level:?}, filtered {}, masked {masked}", filter.is_some());
            }
        }
        // Masks that allow nothing, or stop short, scan nothing past them.
        let mut top = TopK::new(10);
        packed.scan_masked(&lut, &mut top, &[], |r| r as u64).unwrap();
        assert!(top.into_sorted().is_empty(), "an empty mask allows no block");
        let mut top = TopK::new(100);
        packed.scan_masked(&lut, &mut top, &[u32::MAX; 2], |r| r as u64).unwrap();
        let got = top.into_sorted();
        assert!(got.len() == 64 && got.iter().all(|&(_, id)| id < 64), "two blocks' masks: their 64 rows");
        let mut top = TopK::new(3);
        assert!(packed.scan(&QuantizedLut::new(&table[..16]).unwrap(), &mut top, None, |r| r as u64).is_err());
    }
}
