//! AVX-512 (F + BW + VL) kernels: 16 f32 lanes, masked loads for the tails, a 12 × 32 register
//! tile for the many-to-many kernel.
//!
//! Run `cargo bench -p vq-distance --bench kernels` with and without `VQ_SIMD=avx2` before
//! changing anything here.

use std::arch::x86_64::*;

use half::{bf16, f16};

use crate::gemm::{ScanArgs, TileHit};
use crate::simd::{FloatKernels, GemmKernel, IntKernels, Kernels, SimdLevel};

/// `true` when this CPU has every feature the kernels of this module use.
pub(crate) fn is_available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// The AVX-512 kernel table.
///
/// # Safety
/// The caller must have checked [`is_available`].
pub(crate) unsafe fn kernels() -> Kernels {
    Kernels {
        level: SimdLevel::Avx512,
        f32: FloatKernels { l2_sq: l2_sq_f32, dot: dot_f32, cos_parts: cos_parts_f32 },
        f16: FloatKernels { l2_sq: l2_sq_f16, dot: dot_f16, cos_parts: cos_parts_f16 },
        bf16: FloatKernels { l2_sq: l2_sq_bf16, dot: dot_bf16, cos_parts: cos_parts_bf16 },
        u8: IntKernels { l2_sq: l2_sq_u8, dot: dot_u8 },
        i8: IntKernels { l2_sq: l2_sq_i8, dot: dot_i8 },
        gemm: GemmKernel { mr: MR, nr: NR, scan },
    }
}

entry!(l2_sq_f32 => l2_sq_f32_imp(a: &[f32], b: &[f32]) -> f32);
entry!(dot_f32 => dot_f32_imp(a: &[f32], b: &[f32]) -> f32);
entry!(cos_parts_f32 => cos_parts_f32_imp(a: &[f32], b: &[f32]) -> [f32; 3]);
entry!(l2_sq_f16 => l2_sq_f16_imp(a: &[f16], b: &[f16]) -> f32);
entry!(dot_f16 => dot_f16_imp(a: &[f16], b: &[f16]) -> f32);
entry!(cos_parts_f16 => cos_parts_f16_imp(a: &[f16], b: &[f16]) -> [f32; 3]);
entry!(l2_sq_bf16 => l2_sq_bf16_imp(a: &[bf16], b: &[bf16]) -> f32);
entry!(dot_bf16 => dot_bf16_imp(a: &[bf16], b: &[bf16]) -> f32);
entry!(cos_parts_bf16 => cos_parts_bf16_imp(a: &[bf16], b: &[bf16]) -> [f32; 3]);
entry!(l2_sq_u8 => l2_sq_u8_imp(a: &[u8], b: &[u8]) -> u32);
entry!(dot_u8 => dot_u8_imp(a: &[u8], b: &[u8]) -> i32);
entry!(l2_sq_i8 => l2_sq_i8_imp(a: &[i8], b: &[i8]) -> u32);
entry!(dot_i8 => dot_i8_imp(a: &[i8], b: &[i8]) -> i32);
entry!(scan => scan_imp(args: &ScanArgs<'_>, thresholds: &mut [f32], hit: TileHit<'_>) -> ());

/// Loaders: 16 elements from `p` (all of them when `m` is `None`, else the lanes in `m`,
/// the rest zero) as f32.
trait Load16: Copy {
    unsafe fn load(p: *const Self, m: __mmask16) -> __m512;
}

impl Load16 for f32 {
    #[inline(always)]
    unsafe fn load(p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: the caller guarantees the lanes in `m` are readable.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
}

impl Load16 for f16 {
    #[inline(always)]
    unsafe fn load(p: *const f16, m: __mmask16) -> __m512 {
        // SAFETY: the caller guarantees the lanes in `m` are readable (2 bytes each).
        unsafe { _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p.cast())) }
    }
}

impl Load16 for bf16 {
    #[inline(always)]
    unsafe fn load(p: *const bf16, m: __mmask16) -> __m512 {
        // SAFETY: the caller guarantees the lanes in `m` are readable (2 bytes each).
        // bf16 is the upper half of an f32: widen and shift.
        unsafe {
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p.cast()))))
        }
    }
}

#[inline(always)]
fn tail_mask(n: usize) -> __mmask16 {
    debug_assert!(n < 16);
    ((1u32 << n) - 1) as __mmask16
}

/// Runs `step` over 16-lane chunks of `a` and `b` (4 independent chunks per iteration when
/// `UNROLL4`, so four accumulators can hide the FMA latency), then the masked tail.
#[inline(always)]
unsafe fn drive<T: Load16>(a: &[T], b: &[T], mut step: impl FnMut(usize, __m512, __m512)) {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    // SAFETY: for the full loads `i + 16 * j + 16 <= n`, and the tail mask
    // selects only lanes below `n`.
    unsafe {
        while i + 64 <= n {
            for j in 0..4 {
                step(j, T::load(pa.add(i + 16 * j), !0), T::load(pb.add(i + 16 * j), !0));
            }
            i += 64;
        }
        while i + 16 <= n {
            step(0, T::load(pa.add(i), !0), T::load(pb.add(i), !0));
            i += 16;
        }
        if i < n {
            let m = tail_mask(n - i);
            step(1, T::load(pa.add(i), m), T::load(pb.add(i), m));
        }
    }
}

#[inline(always)]
unsafe fn sum4(acc: [__m512; 4]) -> f32 {
    // SAFETY: plain register arithmetic; the features are enabled by every caller.
    unsafe { _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]))) }
}

#[inline(always)]
unsafe fn l2_sq_generic<T: Load16>(a: &[T], b: &[T]) -> f32 {
    // SAFETY: register arithmetic and `drive`, whose contract holds for any two slices.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 4];
        drive(a, b, |j, x, y| {
            let d = _mm512_sub_ps(x, y);
            acc[j] = _mm512_fmadd_ps(d, d, acc[j]);
        });
        sum4(acc)
    }
}

#[inline(always)]
unsafe fn dot_generic<T: Load16>(a: &[T], b: &[T]) -> f32 {
    // SAFETY: as in `l2_sq_generic`.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 4];
        drive(a, b, |j, x, y| acc[j] = _mm512_fmadd_ps(x, y, acc[j]));
        sum4(acc)
    }
}

#[inline(always)]
unsafe fn cos_parts_generic<T: Load16>(a: &[T], b: &[T]) -> [f32; 3] {
    // SAFETY: as in `l2_sq_generic`.
    unsafe {
        let z = _mm512_setzero_ps();
        let (mut ab, mut aa, mut bb) = ([z; 4], [z; 4], [z; 4]);
        drive(a, b, |j, x, y| {
            ab[j] = _mm512_fmadd_ps(x, y, ab[j]);
            aa[j] = _mm512_fmadd_ps(x, x, aa[j]);
            bb[j] = _mm512_fmadd_ps(y, y, bb[j]);
        });
        [sum4(ab), sum4(aa), sum4(bb)]
    }
}

macro_rules! float_kernels {
    ($t:ty, $l2:ident, $dot:ident, $cos:ident) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
        unsafe fn $l2(a: &[$t], b: &[$t]) -> f32 {
            // SAFETY: the features the helper needs are enabled on this function.
            unsafe { l2_sq_generic(a, b) }
        }
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
        unsafe fn $dot(a: &[$t], b: &[$t]) -> f32 {
            // SAFETY: the features the helper needs are enabled on this function.
            unsafe { dot_generic(a, b) }
        }
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
        unsafe fn $cos(a: &[$t], b: &[$t]) -> [f32; 3] {
            // SAFETY: the features the helper needs are enabled on this function.
            unsafe { cos_parts_generic(a, b) }
        }
    };
}

float_kernels!(f32, l2_sq_f32_imp, dot_f32_imp, cos_parts_f32_imp);
float_kernels!(f16, l2_sq_f16_imp, dot_f16_imp, cos_parts_f16_imp);
float_kernels!(bf16, l2_sq_bf16_imp, dot_bf16_imp, cos_parts_bf16_imp);

/// 32 bytes widened to 32 i16 lanes (the lanes outside `m` are zero).
trait Widen32: Copy {
    unsafe fn widen(p: *const Self, m: __mmask32) -> __m512i;
}

impl Widen32 for u8 {
    #[inline(always)]
    unsafe fn widen(p: *const u8, m: __mmask32) -> __m512i {
        // SAFETY: the caller guarantees the lanes in `m` are readable.
        unsafe { _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, p.cast())) }
    }
}

impl Widen32 for i8 {
    #[inline(always)]
    unsafe fn widen(p: *const i8, m: __mmask32) -> __m512i {
        // SAFETY: the caller guarantees the lanes in `m` are readable.
        unsafe { _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, p.cast())) }
    }
}

/// Adds `madd` of the (masked) 32 elements at `pa`/`pb` to `acc`: squared differences when
/// `SQ_DIFF`, products otherwise.
#[inline(always)]
unsafe fn int_step<T: Widen32, const SQ_DIFF: bool>(pa: *const T, pb: *const T, m: __mmask32, acc: __m512i) -> __m512i {
    // SAFETY: the caller guarantees the lanes in `m` are readable at `pa` and `pb`.
    unsafe {
        let x = T::widen(pa, m);
        let y = T::widen(pb, m);
        let prod = if SQ_DIFF {
            let d = _mm512_sub_epi16(x, y);
            _mm512_madd_epi16(d, d)
        } else {
            _mm512_madd_epi16(x, y)
        };
        _mm512_add_epi32(acc, prod)
    }
}

/// Sums [`int_step`] over 32-element chunks in i32 lanes: exact while the caller keeps slices
/// within `simd::INT_CHUNK`.
#[inline(always)]
unsafe fn int_drive<T: Widen32, const SQ_DIFF: bool>(a: &[T], b: &[T]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: full steps read `i..i + 32 <= n`; the tail mask selects lanes below `n`.
    unsafe {
        let mut acc0 = _mm512_setzero_si512();
        let mut acc1 = _mm512_setzero_si512();
        let mut i = 0;
        while i + 64 <= n {
            acc0 = int_step::<T, SQ_DIFF>(pa.add(i), pb.add(i), !0, acc0);
            acc1 = int_step::<T, SQ_DIFF>(pa.add(i + 32), pb.add(i + 32), !0, acc1);
            i += 64;
        }
        if i + 32 <= n {
            acc0 = int_step::<T, SQ_DIFF>(pa.add(i), pb.add(i), !0, acc0);
            i += 32;
        }
        if i < n {
            let m = ((1u64 << (n - i)) - 1) as __mmask32;
            acc1 = int_step::<T, SQ_DIFF>(pa.add(i), pb.add(i), m, acc1);
        }
        _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1))
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn l2_sq_u8_imp(a: &[u8], b: &[u8]) -> u32 {
    // SAFETY: the features `int_drive` needs are enabled on this function.
    unsafe { int_drive::<_, true>(a, b) as u32 }
}
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn dot_u8_imp(a: &[u8], b: &[u8]) -> i32 {
    // SAFETY: as above.
    unsafe { int_drive::<_, false>(a, b) }
}
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn l2_sq_i8_imp(a: &[i8], b: &[i8]) -> u32 {
    // SAFETY: as above.
    unsafe { int_drive::<_, true>(a, b) as u32 }
}
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn dot_i8_imp(a: &[i8], b: &[i8]) -> i32 {
    // SAFETY: as above.
    unsafe { int_drive::<_, false>(a, b) }
}

const MR: usize = 12;
const NR: usize = 32;

/// The 12 × 32 register tile: 24 accumulators, two base loads and one broadcast per step.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn scan_imp(args: &ScanArgs<'_>, thresholds: &mut [f32], hit: TileHit<'_>) {
    args.check(MR, NR, thresholds);
    let dim = args.dim;
    let alpha = _mm512_set1_ps(args.alpha);
    let mut keys = [0f32; NR];
    for g in 0..args.groups {
        // SAFETY: `check` proved `qpack` holds `groups * dim * MR` values, `bpack` holds
        // `panels * dim * NR` and `bias` holds `panels * NR`; every offset below stays inside.
        unsafe {
            let a = args.qpack.as_ptr().add(g * dim * MR);
            for p in 0..args.panels {
                let b = args.bpack.as_ptr().add(p * dim * NR);
                let mut acc = [[_mm512_setzero_ps(); 2]; MR];
                for k in 0..dim {
                    let b0 = _mm512_loadu_ps(b.add(k * NR));
                    let b1 = _mm512_loadu_ps(b.add(k * NR + 16));
                    let ak = a.add(k * MR);
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let av = _mm512_set1_ps(*ak.add(i));
                        acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                        acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
                    }
                }
                let bias0 = _mm512_loadu_ps(args.bias.as_ptr().add(p * NR));
                let bias1 = _mm512_loadu_ps(args.bias.as_ptr().add(p * NR + 16));
                for (i, acc) in acc.iter().enumerate() {
                    let row = g * MR + i;
                    let k0 = _mm512_fmadd_ps(acc[0], alpha, bias0);
                    let k1 = _mm512_fmadd_ps(acc[1], alpha, bias1);
                    let mask = if args.keep_all {
                        u64::MAX
                    } else {
                        let thr = _mm512_set1_ps(*thresholds.get_unchecked(row));
                        let m0 = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(k0, thr);
                        let m1 = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(k1, thr);
                        u64::from(m0) | (u64::from(m1) << 16)
                    };
                    if mask != 0 {
                        _mm512_storeu_ps(keys.as_mut_ptr(), k0);
                        _mm512_storeu_ps(keys.as_mut_ptr().add(16), k1);
                        thresholds[row] = hit(row, p * NR, &keys, mask);
                    }
                }
            }
        }
    }
}
