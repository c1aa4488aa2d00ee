//! x86-64 fast-scan block kernels: AVX2 (two sub-quantizers per 256-bit register, one per
//! 128-bit lane) and AVX-512 BW (four per 512-bit register).
//!
//! Per sub-quantizer group the shuffles' bytes are added in 16-bit lanes: a lane's low byte is
//! an even byte of the shuffle result (vectors `0..8` or `16..24`, see the module layout) and
//! its high byte an odd one (`8..16`, `24..32`). Adding whole lanes sums both at once
//! (wrapping); a second accumulator of the lanes shifted right by 8 sums the odd bytes alone,
//! and `all − (odd << 8)` recovers the even ones. At most [`GROUP_PAIRS`] pairs per group keep
//! every 16-bit sum below 2¹⁶; the groups' sums are widened to 32 bits and added.

use std::arch::x86_64::*;

use super::{BLOCK, BlockSumsFn, GROUP_PAIRS};

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

/// The AVX2 sums of pairs `pairs` of the block into `acc` (vectors 0..8, 8..16, 16..24, 24..32).
#[inline]
#[target_feature(enable = "avx2")]
fn avx2_pairs(lut: &[u8], block: &[u8], pairs: std::ops::Range<usize>, acc: &mut [__m256i; 4]) {
    let mask = _mm256_set1_epi8(0x0f);
    let mut p = pairs.start;
    while p < pairs.end {
        let end = (p + GROUP_PAIRS).min(pairs.end);
        let zero = _mm256_setzero_si256();
        let (mut lo_all, mut lo_odd, mut hi_all, mut hi_odd) = (zero, zero, zero, zero);
        for q in p..end {
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

#[target_feature(enable = "avx2")]
fn avx2_sums(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    let pairs = block.len().min(lut.len()) / 32;
    let mut acc = [_mm256_setzero_si256(); 4];
    avx2_pairs(lut, block, 0..pairs, &mut acc);
    store(&acc, max_sum, out)
}

#[target_feature(enable = "avx512f,avx512bw,avx2")]
fn avx512_sums(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    let pairs = block.len().min(lut.len()) / 32;
    let quads = pairs / 2;
    let mask = _mm512_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut p = 0;
    // Each quad adds one byte per 16-bit lane, as a pair does in AVX2.
    while p < quads {
        let end = (p + GROUP_PAIRS).min(quads);
        let zero = _mm512_setzero_si512();
        let (mut lo_all, mut lo_odd, mut hi_all, mut hi_odd) = (zero, zero, zero, zero);
        for q in p..end {
            let at = q * 64;
            assert!(at + 64 <= lut.len() && at + 64 <= block.len());
            // SAFETY: `at + 64` is within both slices (checked above); unaligned loads.
            let (c, l) = unsafe {
                (_mm512_loadu_si512(block.as_ptr().add(at).cast()), _mm512_loadu_si512(lut.as_ptr().add(at).cast()))
            };
            let lo = _mm512_shuffle_epi8(l, _mm512_and_si512(c, mask));
            let hi = _mm512_shuffle_epi8(l, _mm512_and_si512(_mm512_srli_epi16::<4>(c), mask));
            lo_all = _mm512_add_epi16(lo_all, lo);
            lo_odd = _mm512_add_epi16(lo_odd, _mm512_srli_epi16::<8>(lo));
            hi_all = _mm512_add_epi16(hi_all, hi);
            hi_odd = _mm512_add_epi16(hi_odd, _mm512_srli_epi16::<8>(hi));
        }
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
