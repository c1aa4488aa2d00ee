//! x86-64 fast-scan block kernels: AVX2 (two sub-quantizers per 256-bit register, one per
//! 128-bit lane) and AVX-512 BW (four per 512-bit register).
//!
//! Per sub-quantizer group the shuffles' bytes are added in 16-bit lanes: a lane's low byte is
//! an even byte of the shuffle result (vectors `0..8` or `16..24`, see the module layout) and
//! its high byte an odd one (`8..16`, `24..32`). Adding whole lanes sums both at once
//! (wrapping); a second accumulator of the lanes shifted right by 8 sums the odd bytes alone,
//! and `all − (odd << 8)` recovers the even ones. At most [`GROUP_PAIRS`] pairs per group keep
//! every 16-bit sum below 2¹⁶; the groups' sums are widened to 32 bits and added.
//!
//! Also the two passes of quantizing a look-up table ([`LutKernels`]): a row of 16 keys is one
//! 512-bit register (two 256-bit ones on AVX2); minima and maxima are reduced per row, and
//! the bytes are `((key − min) · scale + 0.5)` truncated and packed with unsigned saturation,
//! the portable twin's operations in its order (no fused multiply-add), so the bytes are equal.
//!
//! And the column kernels ([`ColumnFn`]) that unpack one vector's code from a block, 16 rows a
//! group: four rows a load at AVX-512 BW, two at AVX2; and, at AVX2, the packing kernel
//! ([`PackFn`]) that lays 32 codes into a block, 16 bytes of each at a time.

use std::arch::x86_64::*;

use super::{BLOCK, BlockSumsFn, ColumnFn, GROUP_PAIRS, LutKernels, PackFn, SUB_BYTES, column_portable, pack_portable};

/// The AVX2 kernel, if this CPU has AVX2.
pub(super) fn avx2_checked() -> Option<BlockSumsFn> {
    is_x86_feature_detected!("avx2").then_some(avx2_entry as BlockSumsFn)
}

/// The AVX-512 kernel, if this CPU has AVX-512 F and BW (and AVX2 for the odd pair).
pub(super) fn avx512_checked() -> Option<BlockSumsFn> {
    (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx2"))
        .then_some(avx512_entry as BlockSumsFn)
}

fn avx2_entry(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    // SAFETY: only reachable through `avx2_checked`, after checking the CPU has AVX2.
    unsafe { avx2_sums(lut, block, max_sum, out) }
}

fn avx512_entry(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    // SAFETY: only reachable through `avx512_checked`, after checking the features.
    unsafe { avx512_sums(lut, block, max_sum, out) }
}

/// 16-bit lanes of `all` (both bytes summed, wrapping) and `odd` (high bytes summed) to the
/// 32-bit sums of the low and high bytes, lanes of one 128-bit half added to the other's.
#[inline]
#[target_feature(enable = "avx2")]
fn widen_halves(all: __m256i, odd: __m256i) -> (__m256i, __m256i) {
    let even = _mm256_sub_epi16(all, _mm256_slli_epi16::<8>(odd));
    let add_halves = |x: __m256i| {
        _mm256_add_epi32(
            _mm256_cvtepu16_epi32(_mm256_castsi256_si128(x)),
            _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(x)),
        )
    };
    (add_halves(even), add_halves(odd))
}

/// Pairs `pairs` of the block summed in 16-bit lanes (at most [`GROUP_PAIRS`] of them):
/// `[lo_all, lo_odd, hi_all, hi_odd]`, the low and the high nibbles' bytes, both bytes of a lane
/// (wrapping) and its high bytes alone.
#[inline]
#[target_feature(enable = "avx2")]
fn avx2_group(lut: &[u8], block: &[u8], pairs: std::ops::Range<usize>) -> [__m256i; 4] {
    let mask = _mm256_set1_epi8(0x0f);
    let zero = _mm256_setzero_si256();
    let (mut lo_all, mut lo_odd, mut hi_all, mut hi_odd) = (zero, zero, zero, zero);
    for q in pairs {
        let at = q * 32;
        assert!(at + 32 <= lut.len() && at + 32 <= block.len());
        // SAFETY: `at + 32` is within both slices (checked above); unaligned loads.
        let (c, l) = unsafe {
            (_mm256_loadu_si256(block.as_ptr().add(at).cast()), _mm256_loadu_si256(lut.as_ptr().add(at).cast()))
        };
        let lo = _mm256_shuffle_epi8(l, _mm256_and_si256(c, mask));
        let hi = _mm256_shuffle_epi8(l, _mm256_and_si256(_mm256_srli_epi16::<4>(c), mask));
        lo_all = _mm256_add_epi16(lo_all, lo);
        lo_odd = _mm256_add_epi16(lo_odd, _mm256_srli_epi16::<8>(lo));
        hi_all = _mm256_add_epi16(hi_all, hi);
        hi_odd = _mm256_add_epi16(hi_odd, _mm256_srli_epi16::<8>(hi));
    }
    [lo_all, lo_odd, hi_all, hi_odd]
}

/// The AVX2 sums of pairs `pairs` of the block into `acc` (vectors 0..8, 8..16, 16..24, 24..32).
#[inline]
#[target_feature(enable = "avx2")]
fn avx2_pairs(lut: &[u8], block: &[u8], pairs: std::ops::Range<usize>, acc: &mut [__m256i; 4]) {
    let mut p = pairs.start;
    while p < pairs.end {
        let end = (p + GROUP_PAIRS).min(pairs.end);
        let [lo_all, lo_odd, hi_all, hi_odd] = avx2_group(lut, block, p..end);
        let (v0, v8) = widen_halves(lo_all, lo_odd);
        let (v16, v24) = widen_halves(hi_all, hi_odd);
        acc[0] = _mm256_add_epi32(acc[0], v0);
        acc[1] = _mm256_add_epi32(acc[1], v8);
        acc[2] = _mm256_add_epi32(acc[2], v16);
        acc[3] = _mm256_add_epi32(acc[3], v24);
        p = end;
    }
}

/// Stores the sums and returns the mask of those at most `max_sum`. Sums are below 2³¹
/// (`255 · MAX_M`), so a signed compare against `max_sum` clamped to `i32::MAX` is exact.
#[inline]
#[target_feature(enable = "avx2")]
fn store(acc: &[__m256i; 4], max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    let limit = _mm256_set1_epi32(max_sum.min(i32::MAX as u32) as i32);
    let mut above = 0u32;
    for (i, a) in acc.iter().enumerate() {
        // SAFETY: `out` holds 32 u32, and `8 · i + 8 ≤ 32`; unaligned store.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(8 * i).cast(), *a) };
        let gt = _mm256_castsi256_ps(_mm256_cmpgt_epi32(*a, limit));
        above |= (_mm256_movemask_ps(gt) as u32) << (8 * i);
    }
    !above
}

/// Sub-quantizer pairs whose every sum fits a 16-bit lane (`255 · 2 · 128 < 2¹⁶`): the kernels
/// add and compare such blocks in 16 bits and widen only those some row of which passes.
const NARROW_PAIRS: usize = 128;

/// `max_sum` as the threshold the narrow kernels compare with (every narrow sum is below 2¹⁶).
fn narrow_limit(max_sum: u32) -> i16 {
    max_sum.min(u32::from(u16::MAX)) as u16 as i16
}

#[target_feature(enable = "avx2")]
fn avx2_sums(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    let pairs = block.len().min(lut.len()) / 32;
    if pairs <= NARROW_PAIRS {
        return avx2_narrow(lut, block, pairs, max_sum, out);
    }
    let mut acc = [_mm256_setzero_si256(); 4];
    avx2_pairs(lut, block, 0..pairs, &mut acc);
    store(&acc, max_sum, out)
}

/// [`avx2_sums`] of at most [`NARROW_PAIRS`] pairs, whose every sum fits 16 bits: the two
/// 128-bit halves (one sub-quantizer each) are added and compared in 16-bit lanes, and only a
/// block some row of which passes is widened and stored.
#[target_feature(enable = "avx2")]
fn avx2_narrow(lut: &[u8], block: &[u8], pairs: usize, max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    let [lo_all, lo_odd, hi_all, hi_odd] = avx2_group(lut, block, 0..pairs);
    // [l.lo, h.lo] + [l.hi, h.hi]: the sums of the low nibbles' vectors, then the high ones'.
    let fold = |l: __m256i, h: __m256i| {
        _mm256_add_epi16(_mm256_permute2x128_si256::<0x20>(l, h), _mm256_permute2x128_si256::<0x31>(l, h))
    };
    let odd = fold(lo_odd, hi_odd); // vectors 8..16 | 24..32
    // Exact: the folded even sums are below 2¹⁶, and `all ≡ even + 256 · odd`.
    let even = _mm256_sub_epi16(fold(lo_all, hi_all), _mm256_slli_epi16::<8>(odd)); // 0..8 | 16..24
    let limit = _mm256_set1_epi16(narrow_limit(max_sum));
    let at_most = |x: __m256i| _mm256_cmpeq_epi16(_mm256_min_epu16(x, limit), x);
    // Bytes 0..8 even's low half, 8..16 odd's, 16..24 even's high half, 24..32 odd's: vector order.
    let pass = _mm256_movemask_epi8(_mm256_packs_epi16(at_most(even), at_most(odd))) as u32;
    if pass != 0 {
        let halves = [
            _mm256_castsi256_si128(even),
            _mm256_castsi256_si128(odd),
            _mm256_extracti128_si256::<1>(even),
            _mm256_extracti128_si256::<1>(odd),
        ];
        for (i, h) in halves.into_iter().enumerate() {
            // SAFETY: `out` holds 32 u32, and `8 · i + 8 ≤ 32`; unaligned store.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(8 * i).cast(), _mm256_cvtepu16_epi32(h)) };
        }
    }
    pass
}

#[target_feature(enable = "avx512f,avx512bw,avx2")]
fn avx512_sums(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    let pairs = block.len().min(lut.len()) / 32;
    if pairs <= NARROW_PAIRS {
        return avx512_narrow(lut, block, pairs, max_sum, out);
    }
    let quads = pairs / 2;
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut p = 0;
    // Each quad adds one byte per 16-bit lane, as a pair does in AVX2.
    while p < quads {
        let end = (p + GROUP_PAIRS).min(quads);
        let [lo_all, lo_odd, hi_all, hi_odd] = avx512_group(lut, block, p..end, false);
        // Two 256-bit halves, each a pair of lanes as in AVX2.
        for (all, odd, at) in [(lo_all, lo_odd, 0), (hi_all, hi_odd, 2)] {
            for half in [_mm512_castsi512_si256, |x| _mm512_extracti64x4_epi64::<1>(x)] {
                let (even_sums, odd_sums) = widen_halves(half(all), half(odd));
                acc[at] = _mm256_add_epi32(acc[at], even_sums);
                acc[at + 1] = _mm256_add_epi32(acc[at + 1], odd_sums);
            }
        }
        p = end;
    }
    // An odd pair count leaves one pair for the 256-bit path.
    avx2_pairs(lut, block, 2 * quads..pairs, &mut acc);
    store(&acc, max_sum, out)
}

/// Quads `quads` of the block summed in 16-bit lanes (at most [`GROUP_PAIRS`] of them), as
/// [`avx2_group`] sums pairs, and, if `and_pair`, the pair after them through masked loads of its
/// 32 bytes (the upper half's table bytes are zero, so it adds nothing there).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
fn avx512_group(lut: &[u8], block: &[u8], quads: std::ops::Range<usize>, and_pair: bool) -> [__m512i; 4] {
    let mask = _mm512_set1_epi8(0x0f);
    let zero = _mm512_setzero_si512();
    let (mut lo_all, mut lo_odd, mut hi_all, mut hi_odd) = (zero, zero, zero, zero);
    let mut add = |c: __m512i, l: __m512i| {
        let lo = _mm512_shuffle_epi8(l, _mm512_and_si512(c, mask));
        let hi = _mm512_shuffle_epi8(l, _mm512_and_si512(_mm512_srli_epi16::<4>(c), mask));
        lo_all = _mm512_add_epi16(lo_all, lo);
        lo_odd = _mm512_add_epi16(lo_odd, _mm512_srli_epi16::<8>(lo));
        hi_all = _mm512_add_epi16(hi_all, hi);
        hi_odd = _mm512_add_epi16(hi_odd, _mm512_srli_epi16::<8>(hi));
    };
    let end = quads.end;
    for q in quads {
        let at = q * 64;
        assert!(at + 64 <= lut.len() && at + 64 <= block.len());
        // SAFETY: `at + 64` is within both slices (checked above); unaligned loads.
        let (c, l) = unsafe {
            (_mm512_loadu_si512(block.as_ptr().add(at).cast()), _mm512_loadu_si512(lut.as_ptr().add(at).cast()))
        };
        add(c, l);
    }
    if and_pair {
        let at = end * 64;
        assert!(at + 32 <= lut.len() && at + 32 <= block.len());
        // SAFETY: the 32 bytes loaded, `at .. at + 32`, are within both slices (checked above);
        // the masked-off upper 32 are not read.
        let (c, l) = unsafe {
            (
                _mm512_maskz_loadu_epi8(0xffff_ffff, block.as_ptr().add(at).cast()),
                _mm512_maskz_loadu_epi8(0xffff_ffff, lut.as_ptr().add(at).cast()),
            )
        };
        add(c, l);
    }
    [lo_all, lo_odd, hi_all, hi_odd]
}

/// [`avx512_sums`] of at most [`NARROW_PAIRS`] pairs, as [`avx2_narrow`]: an odd pair count's
/// last pair joins the quads through masked loads (the upper half's table bytes are zero, so it
/// adds nothing), the four 128-bit quarters are added in 16-bit lanes, and only a block some row
/// of which passes is widened and stored.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
fn avx512_narrow(lut: &[u8], block: &[u8], pairs: usize, max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    let [lo_all, lo_odd, hi_all, hi_odd] = avx512_group(lut, block, 0..pairs / 2, pairs % 2 == 1);
    // Quarters [l0 + l2, l1 + l3, h0 + h2, h1 + h3], then each pair's two added: [l, l, h, h].
    let fold = |l: __m512i, h: __m512i| {
        let x =
            _mm512_add_epi16(_mm512_shuffle_i64x2::<0b01_00_01_00>(l, h), _mm512_shuffle_i64x2::<0b11_10_11_10>(l, h));
        _mm512_add_epi16(x, _mm512_shuffle_i64x2::<0b10_11_00_01>(x, x))
    };
    let odd = fold(lo_odd, hi_odd);
    // Exact: the folded even sums are below 2¹⁶, and `all ≡ even + 256 · odd`.
    let even = _mm512_sub_epi16(fold(lo_all, hi_all), _mm512_slli_epi16::<8>(odd));
    // Quarters [even l, odd l, even h, odd h]: vectors 0..8, 8..16, 16..24, 24..32.
    let sums = _mm512_mask_blend_epi64(0b1100_1100, even, odd);
    let pass = _mm512_cmple_epu16_mask(sums, _mm512_set1_epi16(narrow_limit(max_sum)));
    if pass != 0 {
        // SAFETY: `out` holds 32 u32: two unaligned stores of 16.
        unsafe {
            _mm512_storeu_si512(out.as_mut_ptr().cast(), _mm512_cvtepu16_epi32(_mm512_castsi512_si256(sums)));
            _mm512_storeu_si512(
                out.as_mut_ptr().add(16).cast(),
                _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64::<1>(sums)),
            );
        }
    }
    pass
}

/// The AVX2 table-quantization kernels, if this CPU has AVX2.
pub(super) fn lut_avx2_checked() -> Option<LutKernels> {
    is_x86_feature_detected!("avx2")
        .then_some(LutKernels { row_stats: avx2_row_stats_entry, quantize_rows: avx2_quantize_entry })
}

/// The AVX-512 table-quantization kernels, if this CPU has AVX-512 F (and AVX2).
pub(super) fn lut_avx512_checked() -> Option<LutKernels> {
    (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx2"))
        .then_some(LutKernels { row_stats: avx512_row_stats_entry, quantize_rows: avx512_quantize_entry })
}

fn avx2_row_stats_entry(a: &[f32], b: Option<&[f32]>, mins: &mut [f32]) -> Option<f32> {
    // SAFETY: only reachable through `lut_avx2_checked`, after checking the CPU has AVX2.
    unsafe { avx2_row_stats(a, b, mins) }
}

fn avx2_quantize_entry(a: &[f32], b: Option<&[f32]>, mins: &[f32], scale: f32, out: &mut [u8]) {
    // SAFETY: only reachable through `lut_avx2_checked`, after checking the CPU has AVX2.
    unsafe { avx2_quantize(a, b, mins, scale, out) }
}

fn avx512_row_stats_entry(a: &[f32], b: Option<&[f32]>, mins: &mut [f32]) -> Option<f32> {
    // SAFETY: only reachable through `lut_avx512_checked`, after checking the features.
    unsafe { avx512_row_stats(a, b, mins) }
}

fn avx512_quantize_entry(a: &[f32], b: Option<&[f32]>, mins: &[f32], scale: f32, out: &mut [u8]) {
    // SAFETY: only reachable through `lut_avx512_checked`, after checking the features.
    unsafe { avx512_quantize(a, b, mins, scale, out) }
}

/// Rows the kernels may touch: whole rows of `a`, of `b` (same length) and of `mins`/`out`.
fn rows_of(a: &[f32], b: Option<&[f32]>, per_row: usize, room: usize) -> usize {
    let rows = b.map_or(a.len(), |b| a.len().min(b.len())) / 16;
    rows.min(room / per_row)
}

/// Minimum and maximum of 8 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn min_max_8(lo: __m256, hi: __m256) -> (f32, f32) {
    let lo = _mm_min_ps(_mm256_castps256_ps128(lo), _mm256_extractf128_ps::<1>(lo));
    let hi = _mm_max_ps(_mm256_castps256_ps128(hi), _mm256_extractf128_ps::<1>(hi));
    let lo = _mm_min_ps(lo, _mm_movehl_ps(lo, lo));
    let hi = _mm_max_ps(hi, _mm_movehl_ps(hi, hi));
    let lo = _mm_min_ss(lo, _mm_shuffle_ps::<1>(lo, lo));
    let hi = _mm_max_ss(hi, _mm_shuffle_ps::<1>(hi, hi));
    (_mm_cvtss_f32(lo), _mm_cvtss_f32(hi))
}

/// `true` if every lane of `acc` is 0: keys were accumulated as `key · 0`, which is ±0 for a
/// finite key and NaN for an infinite or NaN one.
#[inline]
#[target_feature(enable = "avx2")]
fn all_zero(acc: __m256) -> bool {
    _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(acc, _mm256_setzero_ps())) == 0xff
}

#[target_feature(enable = "avx2")]
fn avx2_row_stats(a: &[f32], b: Option<&[f32]>, mins: &mut [f32]) -> Option<f32> {
    let rows = rows_of(a, b, 1, mins.len());
    let zero = _mm256_setzero_ps();
    let mut bad = zero;
    let mut ranges = zero;
    let mut j = 0;
    // 8 rows at a time (m = 8, 16, 32, 64, … are whole groups).
    while j + 8 <= rows {
        assert!(16 * (j + 8) <= a.len() && b.is_none_or(|b| 16 * (j + 8) <= b.len()) && j + 8 <= mins.len());
        let (mut lo, mut hi) = ([zero; 8], [zero; 8]);
        for t in 0..8 {
            // SAFETY: rows `j .. j + 8` are within `a` (and `b`), checked above.
            let (k0, k1) = unsafe { row_256(a, b, j + t) };
            bad = _mm256_add_ps(bad, _mm256_add_ps(_mm256_mul_ps(k0, zero), _mm256_mul_ps(k1, zero)));
            (lo[t], hi[t]) = (_mm256_min_ps(k0, k1), _mm256_max_ps(k0, k1));
        }
        let (lo, hi) = (reduce_8_rows::<false>(&lo), reduce_8_rows::<true>(&hi));
        // SAFETY: `j + 8 <= mins.len()`, checked above; unaligned store.
        unsafe { _mm256_storeu_ps(mins.as_mut_ptr().add(j), lo) };
        ranges = _mm256_max_ps(ranges, _mm256_sub_ps(hi, lo));
        j += 8;
    }
    let (_, mut range) = min_max_8(ranges, ranges);
    for (j, lo_out) in mins.iter_mut().enumerate().take(rows).skip(j) {
        assert!(16 * j + 16 <= a.len() && b.is_none_or(|b| 16 * j + 16 <= b.len()));
        // SAFETY: row `j` is within `a` (and `b`), checked above.
        let (k0, k1) = unsafe { row_256(a, b, j) };
        bad = _mm256_add_ps(bad, _mm256_add_ps(_mm256_mul_ps(k0, zero), _mm256_mul_ps(k1, zero)));
        let (lo, hi) = min_max_8(_mm256_min_ps(k0, k1), _mm256_max_ps(k0, k1));
        *lo_out = lo;
        range = range.max(hi - lo);
    }
    all_zero(bad).then_some(range)
}

/// Row `j`'s 16 keys, `a`'s plus `b`'s, as two halves.
///
/// # Safety
/// `16 · j + 16` is within `a` and, when given, `b`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn row_256(a: &[f32], b: Option<&[f32]>, j: usize) -> (__m256, __m256) {
    // SAFETY: the caller guarantees `16 · j + 16` is within both; unaligned loads.
    unsafe {
        let (k0, k1) = (_mm256_loadu_ps(a.as_ptr().add(16 * j)), _mm256_loadu_ps(a.as_ptr().add(16 * j + 8)));
        match b {
            Some(b) => (
                _mm256_add_ps(k0, _mm256_loadu_ps(b.as_ptr().add(16 * j))),
                _mm256_add_ps(k1, _mm256_loadu_ps(b.as_ptr().add(16 * j + 8))),
            ),
            None => (k0, k1),
        }
    }
}

/// The minima (`MAX` false) or maxima of 8 rows' 8 candidates each, lane `t` for row `t`: three
/// butterfly levels of two shuffles and one `min` (`max`) per pair of vectors, about 2.6
/// instructions a row instead of the six of a per-row horizontal reduction. Exact: `min` and
/// `max` are, in any order.
#[inline]
#[target_feature(enable = "avx2")]
fn reduce_8_rows<const MAX: bool>(v: &[__m256; 8]) -> __m256 {
    let f = |x: __m256, y: __m256| if MAX { _mm256_max_ps(x, y) } else { _mm256_min_ps(x, y) };
    // Level 1: floats 0, 1, 4, 5 of each 128-bit lane against 2, 3, 6, 7, rows 2i and 2i + 1
    // interleaved (lane halves: 2i, 2i + 1, 2i, 2i + 1).
    let l1: [__m256; 4] = core::array::from_fn(|i| {
        let (x, y) = (v[2 * i], v[2 * i + 1]);
        f(_mm256_unpacklo_ps(x, y), _mm256_unpackhi_ps(x, y))
    });
    // Level 2: per 128-bit lane, rows 4i, 4i + 1 (from l1[2i]) and 4i + 2, 4i + 3 (l1[2i + 1]).
    let l2: [__m256; 2] = core::array::from_fn(|i| {
        let (x, y) = (l1[2 * i], l1[2 * i + 1]);
        f(_mm256_shuffle_ps::<0b01_00_01_00>(x, y), _mm256_shuffle_ps::<0b11_10_11_10>(x, y))
    });
    // Level 3: the two 128-bit lanes (candidates from floats 0–3 and 4–7 of every row).
    f(_mm256_permute2f128_ps::<0x20>(l2[0], l2[1]), _mm256_permute2f128_ps::<0x31>(l2[0], l2[1]))
}

#[target_feature(enable = "avx2")]
fn avx2_quantize(a: &[f32], b: Option<&[f32]>, mins: &[f32], scale: f32, out: &mut [u8]) {
    let rows = rows_of(a, b, 1, mins.len()).min(out.len() / 16);
    let (vscale, half) = (_mm256_set1_ps(scale), _mm256_set1_ps(0.5));
    for (j, &lo) in mins.iter().enumerate().take(rows) {
        let at = j * 16;
        assert!(at + 16 <= a.len() && b.is_none_or(|b| at + 16 <= b.len()) && at + 16 <= out.len());
        let lo = _mm256_set1_ps(lo);
        // SAFETY: `at + 16` is within `a` (and `b`), checked above.
        let (k0, k1) = unsafe { row_256(a, b, j) };
        // Values are in 0..=255.5 (a key is at least its row's minimum); truncation rounds.
        let q0 = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(k0, lo), vscale), half));
        let q1 = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(k1, lo), vscale), half));
        // Keys 0..8 and 8..16 as 16-bit lanes in order, then bytes with unsigned saturation.
        let w0 = _mm_packs_epi32(_mm256_castsi256_si128(q0), _mm256_extracti128_si256::<1>(q0));
        let w1 = _mm_packs_epi32(_mm256_castsi256_si128(q1), _mm256_extracti128_si256::<1>(q1));
        // SAFETY: `at + 16 <= out.len()`, checked above; unaligned store.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(at).cast(), _mm_packus_epi16(w0, w1)) };
    }
}

/// Loads row `j`'s 16 keys (`a`, plus `b` when given); the caller checked the bounds.
///
/// # Safety
/// `16 · j + 16` must be within `a` and `b`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn row_512(a: &[f32], b: Option<&[f32]>, j: usize) -> __m512 {
    // SAFETY: the caller guarantees `16 · j + 16` is within both; unaligned loads.
    unsafe {
        let k = _mm512_loadu_ps(a.as_ptr().add(16 * j));
        match b {
            Some(b) => _mm512_add_ps(k, _mm512_loadu_ps(b.as_ptr().add(16 * j))),
            None => k,
        }
    }
}

/// The minima of 16 rows at once (lane `t` for row `t`) and their ranges `max − min` (in some
/// lane order): four butterfly levels,
/// each halving every row's candidates with two shuffles and one `min` (and one `max`), about
/// five instructions a row instead of the twelve of a per-row horizontal reduction. Exact:
/// `min` and `max` are, in any order.
#[inline]
#[target_feature(enable = "avx512f")]
fn min_max_16(k: &[__m512; 16]) -> (__m512, __m512) {
    // Level 1, rows 2i and 2i + 1 into one vector (128-bit lanes: 2i's folded halves, then
    // 2i + 1's); the shuffles are shared by the two trees.
    let mut lo = [_mm512_setzero_ps(); 8];
    let mut hi = [_mm512_setzero_ps(); 8];
    for i in 0..8 {
        let p = _mm512_shuffle_f32x4::<0b01_00_01_00>(k[2 * i], k[2 * i + 1]);
        let q = _mm512_shuffle_f32x4::<0b11_10_11_10>(k[2 * i], k[2 * i + 1]);
        (lo[i], hi[i]) = (_mm512_min_ps(p, q), _mm512_max_ps(p, q));
    }
    let (lo, hi) = (reduce_levels_2_to_4::<false>(&lo), reduce_levels_2_to_4::<true>(&hi));
    // Row r sits at float 4 (r mod 4) + r / 4 in both: the ranges' order does not matter,
    // the minima go back to row order.
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    (_mm512_permutexvar_ps(order, lo), _mm512_sub_ps(hi, lo))
}

/// Levels 2–4 of [`min_max_16`]'s minimum (`MAX` false) or maximum tree. After level 2,
/// 128-bit lane t of vector i holds 4 candidates of row 4i + t; after level 3, floats 0–1 of
/// lane t hold row 8i + t and floats 2–3 row 8i + 4 + t; after level 4, float c of lane t
/// holds row 4c + t.
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce_levels_2_to_4<const MAX: bool>(v: &[__m512; 8]) -> __m512 {
    let f = |x: __m512, y: __m512| if MAX { _mm512_max_ps(x, y) } else { _mm512_min_ps(x, y) };
    let l2: [__m512; 4] = core::array::from_fn(|i| {
        let (x, y) = (v[2 * i], v[2 * i + 1]);
        f(_mm512_shuffle_f32x4::<0b10_00_10_00>(x, y), _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y))
    });
    let l3: [__m512; 2] = core::array::from_fn(|i| {
        let (x, y) = (l2[2 * i], l2[2 * i + 1]);
        f(_mm512_shuffle_ps::<0b01_00_01_00>(x, y), _mm512_shuffle_ps::<0b11_10_11_10>(x, y))
    });
    f(_mm512_shuffle_ps::<0b10_00_10_00>(l3[0], l3[1]), _mm512_shuffle_ps::<0b11_01_11_01>(l3[0], l3[1]))
}

#[target_feature(enable = "avx512f,avx2")]
fn avx512_row_stats(a: &[f32], b: Option<&[f32]>, mins: &mut [f32]) -> Option<f32> {
    let rows = rows_of(a, b, 1, mins.len());
    let zero = _mm512_setzero_ps();
    let mut bad = zero;
    let mut ranges = zero;
    let mut j = 0;
    // 16 rows at a time (m = 16, 32, 64, 96, … are whole groups).
    while j + 16 <= rows {
        assert!(16 * (j + 16) <= a.len() && b.is_none_or(|b| 16 * (j + 16) <= b.len()) && j + 16 <= mins.len());
        // SAFETY: rows `j .. j + 16` are within `a` (and `b`), checked above.
        let k: [__m512; 16] = core::array::from_fn(|t| unsafe { row_512(a, b, j + t) });
        for &kt in &k {
            bad = _mm512_add_ps(bad, _mm512_mul_ps(kt, zero));
        }
        let (lo, range) = min_max_16(&k);
        // SAFETY: `j + 16 <= mins.len()`, checked above; unaligned store.
        unsafe { _mm512_storeu_ps(mins.as_mut_ptr().add(j), lo) };
        // Non-finite ranges come only from non-finite keys, which `bad` catches.
        ranges = _mm512_max_ps(ranges, range);
        j += 16;
    }
    let mut range = _mm512_reduce_max_ps(ranges);
    for (j, lo_out) in mins.iter_mut().enumerate().take(rows).skip(j) {
        assert!(16 * j + 16 <= a.len() && b.is_none_or(|b| 16 * j + 16 <= b.len()));
        // SAFETY: row `j` is within `a` (and `b`), checked above.
        let k = unsafe { row_512(a, b, j) };
        bad = _mm512_add_ps(bad, _mm512_mul_ps(k, zero));
        let halves =
            |x: __m512| (_mm512_castps512_ps256(x), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x))));
        let (k0, k1) = halves(k);
        let (lo, hi) = min_max_8(_mm256_min_ps(k0, k1), _mm256_max_ps(k0, k1));
        *lo_out = lo;
        range = range.max(hi - lo);
    }
    let (b0, b1) = (_mm512_castps512_ps256(bad), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(bad))));
    (all_zero(b0) && all_zero(b1)).then_some(range)
}

#[target_feature(enable = "avx512f,avx2")]
fn avx512_quantize(a: &[f32], b: Option<&[f32]>, mins: &[f32], scale: f32, out: &mut [u8]) {
    let rows = rows_of(a, b, 1, mins.len()).min(out.len() / 16);
    let (vscale, half) = (_mm512_set1_ps(scale), _mm512_set1_ps(0.5));
    for (j, &lo) in mins.iter().enumerate().take(rows) {
        assert!(16 * j + 16 <= a.len() && b.is_none_or(|b| 16 * j + 16 <= b.len()) && 16 * j + 16 <= out.len());
        // SAFETY: row `j` is within `a` (and `b`), checked above.
        let k = unsafe { row_512(a, b, j) };
        // Values are in 0..=255.5 (a key is at least its row's minimum); truncation rounds.
        let x = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(k, _mm512_set1_ps(lo)), vscale), half);
        let bytes = _mm512_cvtusepi32_epi8(_mm512_cvttps_epi32(x));
        // SAFETY: `16 · j + 16 <= out.len()`, checked above; unaligned store.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(16 * j).cast(), bytes) };
    }
}

/// The AVX-512 column kernel ([`ColumnFn`]), if this CPU has AVX-512 F and BW.
pub(super) fn avx512_column_checked() -> Option<ColumnFn> {
    (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw"))
        .then_some(avx512_column_entry as ColumnFn)
}

/// The AVX2 column kernel ([`ColumnFn`]), if this CPU has AVX2.
pub(super) fn avx2_column_checked() -> Option<ColumnFn> {
    is_x86_feature_detected!("avx2").then_some(avx2_column_entry as ColumnFn)
}

fn avx512_column_entry(block: &[u8], t: usize, high: bool, out: &mut [u8]) {
    let groups = column_groups(block, t, out);
    // SAFETY: only reachable through `avx512_column_checked`, after checking the features;
    // the kernel reads `groups · 256 ≤ block.len()` bytes and writes `groups · 8 ≤ out.len()`.
    unsafe { avx512_column(block, t, high, groups, out) };
    column_rest(block, t, high, groups, out);
}

fn avx2_column_entry(block: &[u8], t: usize, high: bool, out: &mut [u8]) {
    let groups = column_groups(block, t, out);
    // SAFETY: only reachable through `avx2_column_checked`, after checking the CPU has AVX2;
    // the kernel reads `groups · 256 ≤ block.len()` bytes and writes `groups · 8 ≤ out.len()`.
    unsafe { avx2_column(block, t, high, groups, out) };
    column_rest(block, t, high, groups, out);
}

/// Whole groups of sixteen rows (256 bytes, 8 output bytes) in `block`, after checking the
/// column kernels' preconditions (internal callers only).
fn column_groups(block: &[u8], t: usize, out: &[u8]) -> usize {
    assert!(t < SUB_BYTES && out.len() >= block.len() / (2 * SUB_BYTES), "a column of the block");
    block.len() / (16 * SUB_BYTES)
}

/// The rows after the whole groups, as the portable kernel.
fn column_rest(block: &[u8], t: usize, high: bool, groups: usize, out: &mut [u8]) {
    let done = groups * 16 * SUB_BYTES;
    column_portable(&block[done..], t, high, &mut out[done / (2 * SUB_BYTES)..]);
}

/// The 16 gathered bytes of a group (row `i`'s byte `t` at byte `i`) to its 8 output bytes:
/// the nibble, then pairs of rows to one byte by a multiply-add of `(1, 16)` and a saturating
/// pack (every value fits a byte).
#[inline]
#[target_feature(enable = "avx2")]
fn column_pairs(bytes: __m128i, high: bool) -> __m128i {
    let bytes = if high { _mm_srli_epi16::<4>(bytes) } else { bytes };
    let pairs = _mm_maddubs_epi16(_mm_and_si128(bytes, _mm_set1_epi8(0x0f)), _mm_set1_epi16(0x1001));
    _mm_packus_epi16(pairs, pairs)
}

/// Per load `k` of a group (rows `2k`, `2k + 1`, one per 128-bit lane), the shuffle that moves
/// byte `t` of lane 0 to byte `2k` and of lane 1 to byte `2k + 1`, zeroing every other byte: a
/// control byte with its top bit set writes zero, so `0x80` everywhere but those two bytes,
/// OR-ed with `t`.
const AVX2_COLUMN_SELECT: [[u8; 32]; 8] = {
    let mut select = [[0x80u8; 32]; 8];
    let mut k = 0;
    while k < 8 {
        select[k][2 * k] = 0;
        select[k][SUB_BYTES + 2 * k + 1] = 0;
        k += 1;
    }
    select
};

/// Byte `t` of each of 16 rows a group: a 64-byte load holds four rows, one per 128-bit lane;
/// a byte shuffle broadcasts each lane's byte `t` and a masked move keeps it at the row's
/// position in its lane (row `4k + i` of load `k` at byte `4k + i` of lane `i`), so the four
/// lanes OR-ed are the 16 rows' bytes in order, then [`column_pairs`].
#[target_feature(enable = "avx512f,avx512bw")]
fn avx512_column(block: &[u8], t: usize, high: bool, groups: usize, out: &mut [u8]) {
    let index = _mm512_set1_epi8(t as i8);
    // Byte `4k + i` of lane `i`, for i in 0..4.
    let lanes = 1u64 | 1 << 17 | 1 << 34 | 1 << 51;
    for g in 0..groups {
        let mut acc = _mm512_setzero_si512();
        for k in 0..4 {
            // SAFETY: the caller checked `groups · 256 ≤ block.len()`: bytes
            // `256 g + 64 k .. + 64` are in `block`.
            let rows = unsafe { _mm512_loadu_si512(block.as_ptr().add(256 * g + 64 * k).cast()) };
            acc = _mm512_mask_mov_epi8(acc, lanes << (4 * k), _mm512_shuffle_epi8(rows, index));
        }
        let bytes = _mm_or_si128(
            _mm_or_si128(_mm512_castsi512_si128(acc), _mm512_extracti32x4_epi32::<1>(acc)),
            _mm_or_si128(_mm512_extracti32x4_epi32::<2>(acc), _mm512_extracti32x4_epi32::<3>(acc)),
        );
        // SAFETY: the caller checked `groups · 8 ≤ out.len()`: bytes `8 g .. + 8` are in `out`.
        unsafe { _mm_storel_epi64(out.as_mut_ptr().add(8 * g).cast(), column_pairs(bytes, high)) };
    }
}

/// Byte `t` of each of 16 rows a group: a 32-byte load holds two rows, one per 128-bit lane;
/// a byte shuffle ([`AVX2_COLUMN_SELECT`]) keeps each lane's byte `t` at its row's position,
/// zeros elsewhere, so the loads OR-ed and the two lanes OR-ed are the 16 rows' bytes in order,
/// then [`column_pairs`].
#[target_feature(enable = "avx2")]
fn avx2_column(block: &[u8], t: usize, high: bool, groups: usize, out: &mut [u8]) {
    let index = _mm256_set1_epi8(t as i8);
    let select: [__m256i; 8] = std::array::from_fn(|k| {
        // SAFETY: a 32-byte row of the constant table; unaligned load.
        let row = unsafe { _mm256_loadu_si256(AVX2_COLUMN_SELECT[k].as_ptr().cast()) };
        _mm256_or_si256(row, index)
    });
    for g in 0..groups {
        let mut acc = _mm256_setzero_si256();
        for (k, &select) in select.iter().enumerate() {
            // SAFETY: the caller checked `groups · 256 ≤ block.len()`: bytes
            // `256 g + 32 k .. + 32` are in `block`.
            let rows = unsafe { _mm256_loadu_si256(block.as_ptr().add(256 * g + 32 * k).cast()) };
            acc = _mm256_or_si256(acc, _mm256_shuffle_epi8(rows, select));
        }
        let bytes = _mm_or_si128(_mm256_castsi256_si128(acc), _mm256_extracti128_si256::<1>(acc));
        // SAFETY: the caller checked `groups · 8 ≤ out.len()`: bytes `8 g .. + 8` are in `out`.
        unsafe { _mm_storel_epi64(out.as_mut_ptr().add(8 * g).cast(), column_pairs(bytes, high)) };
    }
}

/// The AVX2 packing kernel ([`PackFn`]), if this CPU has AVX2.
pub(super) fn avx2_pack_checked() -> Option<PackFn> {
    is_x86_feature_detected!("avx2").then_some(avx2_pack_entry as PackFn)
}

fn avx2_pack_entry(codes: &[u8], stride: usize, bytes: std::ops::Range<usize>, rows: &mut [u8]) {
    // Internal callers only: 32 codes of `stride ≥ bytes.end` bytes, rows for every byte.
    assert!(
        bytes.end <= stride
            && codes.len() >= (BLOCK - 1) * stride + bytes.end
            && rows.len() >= 2 * SUB_BYTES * bytes.end,
        "32 codes and their block"
    );
    let sixteens = bytes.len() / 16;
    let done = bytes.start + 16 * sixteens;
    // SAFETY: only reachable through `avx2_pack_checked`, after checking the CPU has AVX2;
    // the kernel reads bytes `start .. done ≤ bytes.end ≤ stride` of each of the 32 codes
    // (within `codes`, asserted) and writes rows `2 start .. 2 done` (within `rows`).
    unsafe { avx2_pack(codes, stride, bytes.start, sixteens, rows) };
    pack_portable(codes, stride, done..bytes.end, rows);
}

/// The 16 × 16 byte transpose: byte `i` of `out[j]` is byte `j` of `rows[i]`. Four rounds of
/// unpacks, each interleaving units twice as wide: after round `r` a register holds, per unit
/// of `2^r` bytes, `2^r` consecutive rows at one column.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose16(r: &[__m128i; 16]) -> [__m128i; 16] {
    // Round 1: rows 2k, 2k + 1; `a[k]` columns 0..8, `a[8 + k]` columns 8..16.
    let a: [__m128i; 16] = std::array::from_fn(|i| {
        let k = i % 8;
        if i < 8 { _mm_unpacklo_epi8(r[2 * k], r[2 * k + 1]) } else { _mm_unpackhi_epi8(r[2 * k], r[2 * k + 1]) }
    });
    // Round 2: rows 4p..4p + 4; `b[4 c + p]` columns 4c..4c + 4.
    let b: [__m128i; 16] = std::array::from_fn(|i| {
        let (c, p) = (i / 4, i % 4);
        let (x, y) = (a[(c / 2) * 8 + 2 * p], a[(c / 2) * 8 + 2 * p + 1]);
        if c % 2 == 0 { _mm_unpacklo_epi16(x, y) } else { _mm_unpackhi_epi16(x, y) }
    });
    // Round 3: rows 8q..8q + 8; `e[2 c + q]` columns 2c, 2c + 1.
    let e: [__m128i; 16] = std::array::from_fn(|i| {
        let (c, q) = (i / 2, i % 2);
        let (x, y) = (b[(c / 2) * 4 + 2 * q], b[(c / 2) * 4 + 2 * q + 1]);
        if c % 2 == 0 { _mm_unpacklo_epi32(x, y) } else { _mm_unpackhi_epi32(x, y) }
    });
    // Round 4: all 16 rows; `out[j]` column j.
    std::array::from_fn(|j| {
        let (x, y) = (e[(j / 2) * 2], e[(j / 2) * 2 + 1]);
        if j % 2 == 0 { _mm_unpacklo_epi64(x, y) } else { _mm_unpackhi_epi64(x, y) }
    })
}

/// Sixteen bytes of each of the 32 codes at a time: two 16 × 16 transposes give, per byte
/// `b`, the byte of vectors 0..16 and of 16..32 in order; a byte shuffle puts each in its
/// block order (byte `t` ← vector `vector_of_byte(t)`) and the nibbles are paired into the two
/// rows.
#[target_feature(enable = "avx2")]
fn avx2_pack(codes: &[u8], stride: usize, start: usize, sixteens: usize, rows: &mut [u8]) {
    // Byte `t` ← vector `t / 2 + 8 (t % 2)`.
    let order = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    let (low4, high4) = (_mm_set1_epi8(0x0f), _mm_set1_epi8(0xf0u8 as i8));
    for s in 0..sixteens {
        let at = start + 16 * s;
        let load = |v: usize| {
            // SAFETY: the caller checked that code `v < 32` has bytes `at .. at + 16` within
            // `codes` (`at + 16 ≤ bytes.end ≤ stride`); unaligned load.
            unsafe { _mm_loadu_si128(codes.as_ptr().add(v * stride + at).cast()) }
        };
        let (first, second) =
            (transpose16(&std::array::from_fn(load)), transpose16(&std::array::from_fn(|v| load(v + 16))));
        for (j, (&x, &y)) in first.iter().zip(&second).enumerate() {
            let (a, c) = (_mm_shuffle_epi8(x, order), _mm_shuffle_epi8(y, order));
            let low = _mm_or_si128(_mm_and_si128(a, low4), _mm_and_si128(_mm_slli_epi16::<4>(c), high4));
            let high = _mm_or_si128(_mm_and_si128(_mm_srli_epi16::<4>(a), low4), _mm_and_si128(c, high4));
            let row = 2 * (at + j) * SUB_BYTES;
            // SAFETY: the caller checked `rows` holds rows `2 (at + j)` and `+ 1` (32 bytes
            // from `row`); unaligned stores.
            unsafe {
                _mm_storeu_si128(rows.as_mut_ptr().add(row).cast(), low);
                _mm_storeu_si128(rows.as_mut_ptr().add(row + SUB_BYTES).cast(), high);
            }
        }
    }
}
