//! The portable baseline: `wide` vectors for floats, plain loops (which LLVM vectorizes for
//! the compile-time baseline, SSE2 on x86-64) for integers. Runs on every target.

use half::{bf16, f16};
use wide::f32x8;

use crate::gemm::{ScanArgs, TileHit};
use crate::matrix::GemvArgs;
use crate::simd::{FloatKernels, GemmKernel, IntKernels, Kernels, SimdLevel};

pub(crate) fn kernels() -> Kernels {
    Kernels {
        level: SimdLevel::Portable,
        f32: FloatKernels { l2_sq: l2_sq_f32, dot: dot_f32, cos_parts: cos_parts_f32 },
        f16: FloatKernels { l2_sq: l2_sq_f16, dot: dot_f16, cos_parts: cos_parts_f16 },
        bf16: FloatKernels { l2_sq: l2_sq_bf16, dot: dot_bf16, cos_parts: cos_parts_bf16 },
        u8: IntKernels { l2_sq: l2_sq_u8, dot: dot_u8 },
        i8: IntKernels { l2_sq: l2_sq_i8, dot: dot_i8 },
        gemm: GemmKernel { mr: MR, nr: NR, scan, gemv },
        small: None,
        rows4: None,
    }
}

/// Feeds 8-lane f32 chunks of two same-length vectors to `step`, zero-padding the tail
/// (zeros add nothing to any of the sums computed here).
#[inline(always)]
fn for_each_chunk<T: Copy>(a: &[T], b: &[T], conv: impl Fn(T) -> f32, mut step: impl FnMut(f32x8, f32x8)) {
    debug_assert_eq!(a.len(), b.len());
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        step(f32x8::new(std::array::from_fn(|i| conv(x[i]))), f32x8::new(std::array::from_fn(|i| conv(y[i]))));
    }
    let (ra, rb) = (ca.remainder(), cb.remainder());
    if !ra.is_empty() {
        let pad = |r: &[T]| f32x8::new(std::array::from_fn(|i| r.get(i).map_or(0.0, |&v| conv(v))));
        step(pad(ra), pad(rb));
    }
}

#[inline(always)]
fn l2_sq_by<T: Copy>(a: &[T], b: &[T], conv: impl Fn(T) -> f32) -> f32 {
    let mut acc = f32x8::ZERO;
    for_each_chunk(a, b, conv, |x, y| {
        let d = x - y;
        acc = d.mul_add(d, acc);
    });
    acc.reduce_add()
}

#[inline(always)]
fn dot_by<T: Copy>(a: &[T], b: &[T], conv: impl Fn(T) -> f32) -> f32 {
    let mut acc = f32x8::ZERO;
    for_each_chunk(a, b, conv, |x, y| acc = x.mul_add(y, acc));
    acc.reduce_add()
}

#[inline(always)]
fn cos_parts_by<T: Copy>(a: &[T], b: &[T], conv: impl Fn(T) -> f32) -> [f32; 3] {
    let (mut ab, mut aa, mut bb) = (f32x8::ZERO, f32x8::ZERO, f32x8::ZERO);
    for_each_chunk(a, b, conv, |x, y| {
        ab = x.mul_add(y, ab);
        aa = x.mul_add(x, aa);
        bb = y.mul_add(y, bb);
    });
    [ab.reduce_add(), aa.reduce_add(), bb.reduce_add()]
}

#[inline(always)]
fn bf16_to_f32(x: bf16) -> f32 {
    f32::from_bits(u32::from(x.to_bits()) << 16)
}

fn l2_sq_f32(a: &[f32], b: &[f32]) -> f32 {
    l2_sq_by(a, b, |x| x)
}
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    dot_by(a, b, |x| x)
}
fn cos_parts_f32(a: &[f32], b: &[f32]) -> [f32; 3] {
    cos_parts_by(a, b, |x| x)
}
fn l2_sq_f16(a: &[f16], b: &[f16]) -> f32 {
    l2_sq_by(a, b, f16::to_f32)
}
fn dot_f16(a: &[f16], b: &[f16]) -> f32 {
    dot_by(a, b, f16::to_f32)
}
fn cos_parts_f16(a: &[f16], b: &[f16]) -> [f32; 3] {
    cos_parts_by(a, b, f16::to_f32)
}
fn l2_sq_bf16(a: &[bf16], b: &[bf16]) -> f32 {
    l2_sq_by(a, b, bf16_to_f32)
}
fn dot_bf16(a: &[bf16], b: &[bf16]) -> f32 {
    dot_by(a, b, bf16_to_f32)
}
fn cos_parts_bf16(a: &[bf16], b: &[bf16]) -> [f32; 3] {
    cos_parts_by(a, b, bf16_to_f32)
}

// Integer kernels: i32 lanes are exact for the chunk lengths the caller guarantees
// (`simd::INT_CHUNK`); written as plain folds so the compiler vectorizes them.
fn l2_sq_u8(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(&x, &y)| (i32::from(x) - i32::from(y)).pow(2)).sum::<i32>() as u32
}
fn dot_u8(a: &[u8], b: &[u8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum()
}
fn l2_sq_i8(a: &[i8], b: &[i8]) -> u32 {
    a.iter().zip(b).map(|(&x, &y)| (i32::from(x) - i32::from(y)).pow(2)).sum::<i32>() as u32
}
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum()
}

/// One row against every panel, four panels (of 8 columns) at a time: each lane is the chain
/// `acc = x[k] · m[k] + acc` over `k` from zero, with `scan`'s own `mul_add`.
fn gemv(args: &GemvArgs<'_>, out: &mut [f32]) {
    args.check(NR, out);
    let (dim, panel) = (args.dim, args.dim * NR);
    let x = &args.x[..dim];
    for (panels, out) in args.bpack[..args.panels * panel].chunks(4 * panel).zip(out.chunks_mut(4 * NR)) {
        let mut acc = [f32x8::ZERO; 4];
        let used = panels.len() / panel;
        for (k, &xk) in x.iter().enumerate() {
            let xv = f32x8::splat(xk);
            for (j, acc) in acc[..used].iter_mut().enumerate() {
                let mk = &panels[j * panel + k * NR..][..NR];
                *acc = xv.mul_add(f32x8::from(mk), *acc);
            }
        }
        for (acc, o) in acc[..used].iter().zip(out.chunks_exact_mut(NR)) {
            o.copy_from_slice(&acc.to_array());
        }
    }
}

const MR: usize = 4;
const NR: usize = 8;

/// The portable register tile: 4 queries × 8 base vectors.
fn scan(args: &ScanArgs<'_>, thresholds: &mut [f32], hit: TileHit<'_>) {
    args.check(MR, NR, thresholds);
    let dim = args.dim;
    let alpha = f32x8::splat(args.alpha);
    for g in 0..args.groups {
        let a = &args.qpack[g * dim * MR..(g + 1) * dim * MR];
        for p in 0..args.panels {
            let b = &args.bpack[p * dim * NR..(p + 1) * dim * NR];
            let mut acc = [f32x8::ZERO; MR];
            for (ak, bk) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
                let bv = f32x8::from(bk);
                for i in 0..MR {
                    acc[i] = f32x8::splat(ak[i]).mul_add(bv, acc[i]);
                }
            }
            let bias = f32x8::from(&args.bias[p * NR..(p + 1) * NR]);
            for (i, acc) in acc.iter().enumerate() {
                let row = g * MR + i;
                let keys = acc.mul_add(alpha, bias);
                let mask = if args.keep_all {
                    u64::MAX
                } else {
                    u64::from(keys.simd_le(f32x8::splat(thresholds[row])).to_bitmask())
                };
                if mask != 0 {
                    thresholds[row] = hit(row, p * NR, &keys.to_array(), mask);
                }
            }
        }
    }
}
