//! vq-quant's NEON fast-scan block kernel against the plain-Rust sums, interpreted by Miri for
//! aarch64, for machines without an aarch64 CPU or emulator (vq's own proptest covers it on
//! aarch64 hardware):
//!
//! ```text
//! rustup +nightly component add miri rust-src && rustup target add aarch64-unknown-linux-gnu
//! cd tools/neon-miri && cargo +nightly miri test --target aarch64-unknown-linux-gnu
//! ```
//!
//! The kernel file is included as it is; this crate supplies what it takes from its parent
//! module (the block size, the pair group, the function type) and the portable sums.

#![cfg_attr(not(test), allow(dead_code))]

pub const BLOCK: usize = 32;
pub const GROUP_PAIRS: usize = 256;
pub type BlockSumsFn = fn(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32;

#[cfg(all(test, target_arch = "aarch64"))]
#[path = "../../../vq-quant/src/fastscan/aarch64.rs"]
mod aarch64;

/// vq-quant's layout: byte `t` of a sub-quantizer's 16 holds vector `t/2 + 8·(t mod 2)` in its
/// low nibble and that `+ 16` in its high nibble.
#[cfg(test)]
fn portable(lut: &[u8], block: &[u8], max_sum: u32, out: &mut [u32; BLOCK]) -> u32 {
    *out = [0; BLOCK];
    for (row, sub) in lut.chunks_exact(16).zip(block.chunks_exact(16)) {
        for (t, &byte) in sub.iter().enumerate() {
            let v = t / 2 + 8 * (t % 2);
            out[v] += u32::from(row[usize::from(byte & 15)]);
            out[v + 16] += u32::from(row[usize::from(byte >> 4)]);
        }
    }
    out.iter().enumerate().fold(0, |m, (v, &s)| m | (u32::from(s <= max_sum) << v))
}

#[cfg(all(test, target_arch = "aarch64"))]
#[test]
fn neon_equals_the_portable_sums() {
    let neon = aarch64::neon_checked().expect("NEON");
    let mut x: u64 = 12345;
    let mut byte = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) as u8
    };
    // 300 pairs of all-255 rows: more than one group of 256 sub-quantizers, at the largest sums.
    for (pairs, saturated) in [(1, false), (2, false), (3, false), (130, false), (300, true)] {
        let lut: Vec<u8> = (0..pairs * 32).map(|_| if saturated { 255 } else { byte() }).collect();
        let block: Vec<u8> = (0..pairs * 32).map(|_| byte()).collect();
        let (mut want, mut got) = ([0u32; BLOCK], [0u32; BLOCK]);
        portable(&lut, &block, u32::MAX, &mut want);
        let mut sorted = want;
        sorted.sort_unstable();
        for max_sum in [0, sorted[BLOCK / 2], u32::MAX] {
            let want_mask = portable(&lut, &block, max_sum, &mut want);
            let got_mask = neon(&lut, &block, max_sum, &mut got);
            assert_eq!(got, want, "{pairs} pairs");
            assert_eq!(got_mask, want_mask, "{pairs} pairs, max_sum {max_sum}");
        }
    }
}
