//! NEON kernels. NEON is part of the aarch64 baseline, so the portable kernels already compile
//! to NEON for the element types where LLVM vectorizes them well (f16/bf16 conversion loops,
//! integers); this module adds hand-written f32 kernels and an 8 × 8 register tile for the
//! many-to-many kernel (16 of the 32 vector registers as accumulators).

use std::arch::aarch64::*;

use crate::gemm::{ScanArgs, TileHit};
use crate::matrix::GemvArgs;
use crate::portable;
use crate::simd::{FloatKernels, GemmKernel, Kernels, SimdLevel};

pub(crate) fn kernels() -> Kernels {
    let base = portable::kernels();
    Kernels {
        level: SimdLevel::Neon,
        f32: FloatKernels { l2_sq: l2_sq_f32, dot: dot_f32, cos_parts: cos_parts_f32 },
        gemm: GemmKernel { mr: MR, nr: NR, scan, gemv },
        ..base
    }
}

/// Runs `step` over 4-lane chunks (4 accumulators), then a zero-padded tail.
#[inline(always)]
fn drive(a: &[f32], b: &[f32], mut step: impl FnMut(usize, float32x4_t, float32x4_t)) {
    let n = a.len().min(b.len());
    let mut i = 0;
    // SAFETY: NEON is always present on aarch64; every load reads `i .. i + 4 <= n` or a
    // 4-element padded copy.
    unsafe {
        while i + 16 <= n {
            for j in 0..4 {
                step(j, vld1q_f32(a.as_ptr().add(i + 4 * j)), vld1q_f32(b.as_ptr().add(i + 4 * j)));
            }
            i += 16;
        }
        while i + 4 <= n {
            step(0, vld1q_f32(a.as_ptr().add(i)), vld1q_f32(b.as_ptr().add(i)));
            i += 4;
        }
        if i < n {
            let (mut ta, mut tb) = ([0f32; 4], [0f32; 4]);
            ta[..n - i].copy_from_slice(&a[i..n]);
            tb[..n - i].copy_from_slice(&b[i..n]);
            step(1, vld1q_f32(ta.as_ptr()), vld1q_f32(tb.as_ptr()));
        }
    }
}

#[inline(always)]
fn sum4(acc: [float32x4_t; 4]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    unsafe { vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]))) }
}

fn l2_sq_f32(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    let mut acc = [unsafe { vdupq_n_f32(0.0) }; 4];
    drive(a, b, |j, x, y| {
        // SAFETY: as above.
        unsafe {
            let d = vsubq_f32(x, y);
            acc[j] = vfmaq_f32(acc[j], d, d);
        }
    });
    sum4(acc)
}

fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    let mut acc = [unsafe { vdupq_n_f32(0.0) }; 4];
    // SAFETY: as above.
    drive(a, b, |j, x, y| acc[j] = unsafe { vfmaq_f32(acc[j], x, y) });
    sum4(acc)
}

fn cos_parts_f32(a: &[f32], b: &[f32]) -> [f32; 3] {
    // SAFETY: NEON is always present on aarch64.
    let z = unsafe { vdupq_n_f32(0.0) };
    let (mut ab, mut aa, mut bb) = ([z; 4], [z; 4], [z; 4]);
    drive(a, b, |j, x, y| {
        // SAFETY: as above.
        unsafe {
            ab[j] = vfmaq_f32(ab[j], x, y);
            aa[j] = vfmaq_f32(aa[j], x, x);
            bb[j] = vfmaq_f32(bb[j], y, y);
        }
    });
    [sum4(ab), sum4(aa), sum4(bb)]
}

/// One row against every panel, four panels (of 8 columns) at a time: each lane is the chain
/// `acc = fma(x[k], m[k], acc)` over `k` from zero, as in `scan`'s tile.
fn gemv(args: &GemvArgs<'_>, out: &mut [f32]) {
    args.check(NR, out);
    let dim = args.dim;
    let mut p = 0;
    while p < args.panels {
        let used = (args.panels - p).min(4);
        // SAFETY: NEON is always present on aarch64; `check` proved `bpack` holds
        // `panels * dim * NR` values, `out` `panels * NR` and `x` `dim`; panels `p .. p + used`
        // are inside them.
        unsafe {
            let b = args.bpack.as_ptr().add(p * dim * NR);
            let mut acc = [[vdupq_n_f32(0.0); 2]; 4];
            for k in 0..dim {
                let xk = *args.x.get_unchecked(k);
                for (j, acc) in acc[..used].iter_mut().enumerate() {
                    let bj = b.add((j * dim + k) * NR);
                    acc[0] = vfmaq_n_f32(acc[0], vld1q_f32(bj), xk);
                    acc[1] = vfmaq_n_f32(acc[1], vld1q_f32(bj.add(4)), xk);
                }
            }
            for (j, acc) in acc[..used].iter().enumerate() {
                let o = out.as_mut_ptr().add((p + j) * NR);
                vst1q_f32(o, acc[0]);
                vst1q_f32(o.add(4), acc[1]);
            }
        }
        p += used;
    }
}

const MR: usize = 8;
const NR: usize = 8;

/// The 8 × 8 register tile.
fn scan(args: &ScanArgs<'_>, thresholds: &mut [f32], hit: TileHit<'_>) {
    args.check(MR, NR, thresholds);
    let dim = args.dim;
    let mut keys = [0f32; NR];
    for g in 0..args.groups {
        // SAFETY: NEON is always present on aarch64; `check` proved `qpack`, `bpack` and
        // `bias` hold `groups * dim * MR`, `panels * dim * NR` and `panels * NR` values, and
        // every offset below stays inside them.
        unsafe {
            let alpha = vdupq_n_f32(args.alpha);
            let a = args.qpack.as_ptr().add(g * dim * MR);
            for p in 0..args.panels {
                let b = args.bpack.as_ptr().add(p * dim * NR);
                let mut acc = [[vdupq_n_f32(0.0); 2]; MR];
                for k in 0..dim {
                    let b0 = vld1q_f32(b.add(k * NR));
                    let b1 = vld1q_f32(b.add(k * NR + 4));
                    let ak = a.add(k * MR);
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let av = *ak.add(i);
                        acc[0] = vfmaq_n_f32(acc[0], b0, av);
                        acc[1] = vfmaq_n_f32(acc[1], b1, av);
                    }
                }
                let bias0 = vld1q_f32(args.bias.as_ptr().add(p * NR));
                let bias1 = vld1q_f32(args.bias.as_ptr().add(p * NR + 4));
                for (i, acc) in acc.iter().enumerate() {
                    let row = g * MR + i;
                    let k0 = vfmaq_f32(bias0, acc[0], alpha);
                    let k1 = vfmaq_f32(bias1, acc[1], alpha);
                    vst1q_f32(keys.as_mut_ptr(), k0);
                    vst1q_f32(keys.as_mut_ptr().add(4), k1);
                    let mask = if args.keep_all {
                        u64::MAX
                    } else {
                        let thr = thresholds[row];
                        keys.iter().enumerate().fold(0u64, |m, (j, &v)| m | (u64::from(v <= thr) << j))
                    };
                    if mask != 0 {
                        thresholds[row] = hit(row, p * NR, &keys, mask);
                    }
                }
            }
        }
    }
}
