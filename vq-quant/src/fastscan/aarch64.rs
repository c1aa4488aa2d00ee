//! aarch64 fast-scan block kernel: NEON, one sub-quantizer (16 bytes of codes, 32 nibbles) per
//! 128-bit register, looked up with `tbl` (`vqtbl1q_u8`) in its 16-byte row of the table.
//!
//! A shuffle's byte `t` belongs to vector `t/2 + 8·(t mod 2)` (low nibbles; `+ 16` for the high
//! ones, see the module layout), so read as eight 16-bit lanes its even bytes are vectors
//! `0..8` and its odd bytes `8..16`. They are summed apart in 16-bit lanes (mask and shift),
//! at most [`GROUP_PAIRS`] sub-quantizers per group so that no lane can overflow (`256 · 255 <
//! 2¹⁶`), then widened to 32 bits.

use std::arch::aarch64::*;

use super::{BLOCK, BlockSumsFn, GROUP_PAIRS};

/// Bit `i` in lane `i`: an all-ones compare result ANDed with it and added across the
/// register gives a four-bit mask.
static LANE_BITS: [u32; 4] = [1, 2, 4, 8];

/// The NEON kernel (every aarch64 CPU Linux runs on has it; checked anyway).
pub(super) fn neon_checked() -> Option<BlockSumsFn> {
    std::arch::is_aarch64_feature_detected!("neon").then_some(neon_entry as BlockSumsFn)
}

fn neon_entry(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    // SAFETY: only reachable through `neon_checked`, after checking the CPU has NEON.
    unsafe { neon_sums(lut, block, max_sum, out) }
}

/// Adds the eight 16-bit lanes of `x` to the 32-bit sums of its vectors (`acc[0]` lanes 0..4,
/// `acc[1]` lanes 4..8).
#[inline]
#[target_feature(enable = "neon")]
fn widen_into(acc: &mut [uint32x4_t; 2], x: uint16x8_t) {
    acc[0] = vaddw_u16(acc[0], vget_low_u16(x));
    acc[1] = vaddw_high_u16(acc[1], x);
}

#[target_feature(enable = "neon")]
fn neon_sums(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    // Whole pairs, as the other levels take them (`lut` and `block` hold whole pairs).
    let subs = 2 * (block.len().min(lut.len()) / 32);
    let nibble = vdupq_n_u8(0x0f);
    let low_byte = vdupq_n_u16(0x00ff);
    // Vectors 0..8, 8..16, 16..24, 24..32, each as two registers of four sums.
    let mut acc = [[vdupq_n_u32(0); 2]; 4];
    let mut s = 0;
    while s < subs {
        let end = (s + GROUP_PAIRS).min(subs);
        let zero = vdupq_n_u16(0);
        let (mut v0, mut v8, mut v16, mut v24) = (zero, zero, zero, zero);
        for j in s..end {
            let at = j * 16;
            assert!(at + 16 <= lut.len() && at + 16 <= block.len());
            // SAFETY: `at + 16` is within both slices (checked above); `vld1q_u8` needs no
            // alignment.
            let (c, row) = unsafe { (vld1q_u8(block.as_ptr().add(at)), vld1q_u8(lut.as_ptr().add(at))) };
            let lo = vreinterpretq_u16_u8(vqtbl1q_u8(row, vandq_u8(c, nibble)));
            let hi = vreinterpretq_u16_u8(vqtbl1q_u8(row, vshrq_n_u8::<4>(c)));
            v0 = vaddq_u16(v0, vandq_u16(lo, low_byte));
            v8 = vaddq_u16(v8, vshrq_n_u16::<8>(lo));
            v16 = vaddq_u16(v16, vandq_u16(hi, low_byte));
            v24 = vaddq_u16(v24, vshrq_n_u16::<8>(hi));
        }
        widen_into(&mut acc[0], v0);
        widen_into(&mut acc[1], v8);
        widen_into(&mut acc[2], v16);
        widen_into(&mut acc[3], v24);
        s = end;
    }
    let limit = vdupq_n_u32(max_sum);
    // SAFETY: `LANE_BITS` holds four u32; `vld1q_u32` needs no alignment.
    let lane_bits = unsafe { vld1q_u32(LANE_BITS.as_ptr()) };
    let mut mask = 0u32;
    for (i, pair) in acc.iter().enumerate() {
        for (h, &a) in pair.iter().enumerate() {
            let first = 8 * i + 4 * h;
            // SAFETY: `out` holds 32 u32 and `first + 4 ≤ 32`; `vst1q_u32` needs no alignment.
            unsafe { vst1q_u32(out.as_mut_ptr().add(first), a) };
            // All-ones lanes where the sum is at most `max_sum`; one bit per lane.
            let at_most = vcleq_u32(a, limit);
            mask |= vaddvq_u32(vandq_u32(at_most, lane_bits)) << first;
        }
    }
    mask
}
