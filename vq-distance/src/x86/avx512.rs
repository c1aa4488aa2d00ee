//! AVX-512 (F + BW + VL) kernels: 16 f32 lanes, masked loads for the tails, a 12 × 32 register
//! tile for the many-to-many kernel.
//!
//! Run `cargo bench -p vq-distance --bench kernels` with and without `VQ_SIMD=avx2` before
//! changing anything here.

use std::arch::x86_64::*;

use half::{bf16, f16};

use crate::assign::SmallArgs;
use crate::gemm::{ScanArgs, TileHit};
use crate::matrix::GemvArgs;
use crate::simd::{FloatKernels, GemmKernel, IntKernels, Kernels, Rows4Kernels, SimdLevel, SmallKernel};

/// `true` when this CPU has every feature the kernels of this module use.
pub(crate) fn is_available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// `true` when the CPU also has AVX-512 VNNI (`vpdpbusd`, `vpdpwssd`), which the u8 kernels
/// use where present (checked once, when the table is built).
pub(crate) fn has_vnni() -> bool {
    is_x86_feature_detected!("avx512vnni")
}

/// The u8 kernels, with or without VNNI.
///
/// # Safety
/// The caller must have checked [`is_available`], and [`has_vnni`] when `vnni`.
unsafe fn u8_kernels(vnni: bool) -> IntKernels<u8> {
    if vnni {
        IntKernels { l2_sq: l2_sq_u8_vnni, dot: dot_u8_vnni }
    } else {
        IntKernels { l2_sq: l2_sq_u8, dot: dot_u8 }
    }
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
        // SAFETY: the caller checked `is_available`, and `has_vnni` is checked right here.
        u8: unsafe { u8_kernels(has_vnni()) },
        i8: IntKernels { l2_sq: l2_sq_i8, dot: dot_i8 },
        gemm: GemmKernel { mr: MR, nr: NR, scan, gemv },
        small: Some(SmallKernel { lanes: 16, nearest: nearest_small }),
        rows4: Some(Rows4Kernels { l2_sq: l2_sq_f32_rows4, dot: dot_f32_rows4, min_dim: 0 }),
    }
}

entry!(l2_sq_f32 => l2_sq_f32_imp(a: &[f32], b: &[f32]) -> f32);
entry!(dot_f32 => dot_f32_imp(a: &[f32], b: &[f32]) -> f32);
entry!(cos_parts_f32 => cos_parts_f32_imp(a: &[f32], b: &[f32]) -> [f32; 3]);
entry!(l2_sq_f32_rows4 => l2_sq_f32_rows4_imp(a: &[f32], rows: [&[f32]; 4]) -> [f32; 4]);
entry!(dot_f32_rows4 => dot_f32_rows4_imp(a: &[f32], rows: [&[f32]; 4]) -> [f32; 4]);
entry!(l2_sq_f16 => l2_sq_f16_imp(a: &[f16], b: &[f16]) -> f32);
entry!(dot_f16 => dot_f16_imp(a: &[f16], b: &[f16]) -> f32);
entry!(cos_parts_f16 => cos_parts_f16_imp(a: &[f16], b: &[f16]) -> [f32; 3]);
entry!(l2_sq_bf16 => l2_sq_bf16_imp(a: &[bf16], b: &[bf16]) -> f32);
entry!(dot_bf16 => dot_bf16_imp(a: &[bf16], b: &[bf16]) -> f32);
entry!(cos_parts_bf16 => cos_parts_bf16_imp(a: &[bf16], b: &[bf16]) -> [f32; 3]);
entry!(l2_sq_u8 => l2_sq_u8_imp(a: &[u8], b: &[u8]) -> u32);
entry!(dot_u8 => dot_u8_imp(a: &[u8], b: &[u8]) -> i32);
entry!(l2_sq_u8_vnni => l2_sq_u8_vnni_imp(a: &[u8], b: &[u8]) -> u32);
entry!(dot_u8_vnni => dot_u8_vnni_imp(a: &[u8], b: &[u8]) -> i32);
entry!(l2_sq_i8 => l2_sq_i8_imp(a: &[i8], b: &[i8]) -> u32);
entry!(dot_i8 => dot_i8_imp(a: &[i8], b: &[i8]) -> i32);
entry!(scan => scan_imp(args: &ScanArgs<'_>, thresholds: &mut [f32], hit: TileHit<'_>) -> ());
entry!(gemv => gemv_imp(args: &GemvArgs<'_>, out: &mut [f32]) -> ());

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

/// Runs `step` over 16-lane chunks of `a` and `b` (4 independent chunks per iteration, so four
/// accumulators can hide the FMA latency), then the rest, also spread over the four.
#[inline(always)]
unsafe fn drive<T: Load16>(a: &[T], b: &[T], mut step: impl FnMut(usize, __m512, __m512)) {
    // SAFETY: `drive_rows`' contract holds for any slices.
    unsafe { drive_rows(a, [b], |j, x, [y]| step(j, x, y)) }
}

/// [`drive`] for `a` against `N` rows at once: each chunk of `a` is loaded once and handed to
/// `step` with the same chunk of every row, in the same chunk order and accumulator slots as
/// `drive` uses for one row, so a per-row sum computed through it is `drive`'s to the bit.
/// Rows shorter than `a` are read only up to the shortest length (as `drive` does).
#[inline(always)]
unsafe fn drive_rows<T: Load16, const N: usize>(
    a: &[T],
    rows: [&[T]; N],
    mut step: impl FnMut(usize, __m512, [__m512; N]),
) {
    let n = rows.iter().fold(a.len(), |n, r| n.min(r.len()));
    let pa = a.as_ptr();
    let pr = rows.map(<[T]>::as_ptr);
    let mut i = 0;
    // SAFETY: for the full loads `i + 16 * j + 16 <= n`; the tail mask selects only lanes
    // below `n`, and the overlapping tail reads `n - 16 .. n` (with `n >= 16`); `n` is at most
    // every slice's length.
    unsafe {
        let load = |at: usize, m: __mmask16| (T::load(pa.add(at), m), pr.map(|p| T::load(p.add(at), m)));
        while i + 64 <= n {
            for j in 0..4 {
                let (x, ys) = load(i + 16 * j, !0);
                step(j, x, ys);
            }
            i += 64;
        }
        // At most 3 full chunks and a tail remain: each into its own accumulator, so that at
        // small dimensions (d = 50: 3 chunks and 2 lanes, no 64-wide iteration at all) the
        // FMAs do not wait on each other. Constant indices keep `acc` in registers.
        if i + 16 <= n {
            let (x, ys) = load(i, !0);
            step(0, x, ys);
            i += 16;
            if i + 16 <= n {
                let (x, ys) = load(i, !0);
                step(1, x, ys);
                i += 16;
                if i + 16 <= n {
                    let (x, ys) = load(i, !0);
                    step(2, x, ys);
                    i += 16;
                }
            }
        }
        if i < n && n >= 16 {
            // The tail as the top `n - i` lanes of the last 16 elements, not as the low lanes of
            // a masked load at `i`: that load's 64-byte span runs past the end of the vector,
            // and (profiled at d = 50 in an HNSW search) waits for the line after it, which
            // belongs to some other vector and is not in cache: 60 % of the kernel's samples
            // sat on that load.
            let (x, ys) = load(n - 16, !tail_mask(16 - (n - i)));
            step(3, x, ys);
        } else if i < n {
            let (x, ys) = load(i, tail_mask(n - i));
            step(3, x, ys);
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

/// `a` against four rows through [`drive_rows`], each row's four accumulators updated by
/// `fma(x, y, acc)` as the one-pair kernels update theirs.
#[inline(always)]
unsafe fn rows4_generic(a: &[f32], rows: [&[f32]; 4], fma: impl Fn(__m512, __m512, __m512) -> __m512) -> [f32; 4] {
    // SAFETY: register arithmetic and `drive_rows`, whose contract holds for any slices.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 4]; 4];
        drive_rows(a, rows, |j, x, ys| {
            for (acc, y) in acc.iter_mut().zip(ys) {
                acc[j] = fma(x, y, acc[j]);
            }
        });
        acc.map(|acc| sum4(acc))
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn l2_sq_f32_rows4_imp(a: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
    // SAFETY: the features `rows4_generic` needs are enabled on this function.
    unsafe {
        rows4_generic(a, rows, |x, y, acc| {
            let d = _mm512_sub_ps(x, y);
            _mm512_fmadd_ps(d, d, acc)
        })
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn dot_f32_rows4_imp(a: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
    // SAFETY: the features `rows4_generic` needs are enabled on this function.
    unsafe { rows4_generic(a, rows, |x, y, acc| _mm512_fmadd_ps(x, y, acc)) }
}

float_kernels!(f16, l2_sq_f16_imp, dot_f16_imp, cos_parts_f16_imp);
float_kernels!(bf16, l2_sq_bf16_imp, dot_bf16_imp, cos_parts_bf16_imp);

/// 32 bytes widened to 32 i16 lanes (the lanes outside `m` are zero); i8 only (u8 has
/// [`u8_drive`]).
trait Widen32: Copy {
    unsafe fn widen(p: *const Self, m: __mmask32) -> __m512i;
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
    // SAFETY: full steps read `i..i + 32 <= n`; the tail's mask selects lanes in `i..n` (of a
    // load at `n - 32 >= 0`, or at `i` when `n < 32`).
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
        if i < n && n >= 32 {
            // The tail as the top `n - i` lanes of the last 32 elements, so that no load spans
            // past the end of the slice (see `drive`).
            let m = !0u32 << (32 - (n - i));
            acc1 = int_step::<T, SQ_DIFF>(pa.add(n - 32), pb.add(n - 32), m, acc1);
        } else if i < n {
            // Shorter than one load: the masked-off lanes past the end are never read (EVEX
            // masked loads suppress faults on masked-off elements; see the page-boundary test in
            // `tests/kernels.rs`).
            let m = ((1u64 << (n - i)) - 1) as __mmask32;
            acc1 = int_step::<T, SQ_DIFF>(pa.add(i), pb.add(i), m, acc1);
        }
        _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1))
    }
}

/// One 64-byte step of the u8 kernels, accumulated into `acc[j]` and `acc[j + 1]`.
///
/// No widening shuffles (the older kernel's `cvtepu8_epi16` ran on the one shuffle port and
/// bounded it): a 16-bit lane holds an even byte (`v & 0x00ff`) and an odd one (`v >> 8`), so
/// two `madd`s over those halves sum all 64 products exactly (at most 2 · 255² per i32 lane
/// and step). L2 first takes |a − b| in u8 as `max − min`. With VNNI, `vpdpwssd` fuses the
/// `madd` and the add, and the dot product uses `vpdpbusd` (u8 × i8) on `b − 128`
/// (`b ^ 0x80`), adding back `128 · Σa` from `vpsadbw` (`sum_a`, u64 lanes).
#[inline(always)]
unsafe fn u8_step<const L2: bool, const VNNI: bool>(
    x: __m512i,
    y: __m512i,
    acc: &mut [__m512i; 4],
    j: usize,
    sum_a: &mut __m512i,
) {
    // SAFETY: register arithmetic; every caller enables avx512f/bw (and avx512vnni for VNNI).
    unsafe {
        let lo = _mm512_set1_epi16(0x00ff);
        if L2 {
            let d = _mm512_sub_epi8(_mm512_max_epu8(x, y), _mm512_min_epu8(x, y));
            let (dl, dh) = (_mm512_and_si512(d, lo), _mm512_srli_epi16::<8>(d));
            if VNNI {
                acc[j] = _mm512_dpwssd_epi32(acc[j], dl, dl);
                acc[j + 1] = _mm512_dpwssd_epi32(acc[j + 1], dh, dh);
            } else {
                acc[j] = _mm512_add_epi32(acc[j], _mm512_madd_epi16(dl, dl));
                acc[j + 1] = _mm512_add_epi32(acc[j + 1], _mm512_madd_epi16(dh, dh));
            }
        } else if VNNI {
            acc[j] = _mm512_dpbusd_epi32(acc[j], x, _mm512_xor_si512(y, _mm512_set1_epi8(-128)));
            *sum_a = _mm512_add_epi64(*sum_a, _mm512_sad_epu8(x, _mm512_setzero_si512()));
        } else {
            let (xl, xh) = (_mm512_and_si512(x, lo), _mm512_srli_epi16::<8>(x));
            let (yl, yh) = (_mm512_and_si512(y, lo), _mm512_srli_epi16::<8>(y));
            acc[j] = _mm512_add_epi32(acc[j], _mm512_madd_epi16(xl, yl));
            acc[j + 1] = _mm512_add_epi32(acc[j + 1], _mm512_madd_epi16(xh, yh));
        }
    }
}

/// The u8 kernels over 128-byte iterations (two [`u8_step`]s into four accumulators, to hide
/// the latency of the multiply-adds), a 64-byte step, then a masked tail (zero bytes add
/// nothing to either sum). Exact within `simd::INT_CHUNK`.
#[inline(always)]
unsafe fn u8_drive<const L2: bool, const VNNI: bool>(a: &[u8], b: &[u8]) -> i64 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: full loads read `i .. i + 64 <= n`; the tail's mask selects bytes in `i..n` (of a
    // load at `n - 64 >= 0`, or at `i = 0` when `n < 64`).
    unsafe {
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut sum_a = _mm512_setzero_si512();
        let mut i = 0;
        while i + 128 <= n {
            u8_step::<L2, VNNI>(
                _mm512_loadu_si512(pa.add(i).cast()),
                _mm512_loadu_si512(pb.add(i).cast()),
                &mut acc,
                0,
                &mut sum_a,
            );
            u8_step::<L2, VNNI>(
                _mm512_loadu_si512(pa.add(i + 64).cast()),
                _mm512_loadu_si512(pb.add(i + 64).cast()),
                &mut acc,
                2,
                &mut sum_a,
            );
            i += 128;
        }
        if i + 64 <= n {
            u8_step::<L2, VNNI>(
                _mm512_loadu_si512(pa.add(i).cast()),
                _mm512_loadu_si512(pb.add(i).cast()),
                &mut acc,
                0,
                &mut sum_a,
            );
            i += 64;
        }
        if i < n {
            // With at least 64 bytes, the tail is the top `n - i` lanes of the last 64 bytes, so
            // no load spans past the end of the slice (see `drive`: such a span waits on a line
            // that belongs to some other vector). Shorter slices take the low `n` lanes of a load
            // at the start; its masked-off lanes are never read (EVEX masked loads suppress
            // faults on masked-off elements; see the page-boundary test in `tests/kernels.rs`).
            let (at, m): (usize, __mmask64) =
                if n >= 64 { (n - 64, !0u64 << (64 - (n - i))) } else { (i, (1u64 << n) - 1) };
            let (x, y) = (_mm512_maskz_loadu_epi8(m, pa.add(at).cast()), _mm512_maskz_loadu_epi8(m, pb.add(at).cast()));
            u8_step::<L2, VNNI>(x, y, &mut acc, 2, &mut sum_a);
        }
        let mut s = _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
        if !L2 && VNNI {
            // `vpsadbw` leaves each sum in the low 32 bits of its 64-bit lane (at most
            // 8 · 255 · INT_CHUNK / 64 < 2³¹), so the correction joins the i32 lanes before the
            // one horizontal sum. Lanes may wrap, but the total is a u8 dot product within
            // INT_CHUNK, below 2³¹, so the wrapping sum is exact.
            s = _mm512_add_epi32(s, _mm512_slli_epi32::<7>(sum_a));
        }
        i64::from(_mm512_reduce_add_epi32(s))
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn l2_sq_u8_imp(a: &[u8], b: &[u8]) -> u32 {
    // SAFETY: the features `u8_drive` needs without VNNI are enabled on this function.
    unsafe { u8_drive::<true, false>(a, b) as u32 }
}
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn dot_u8_imp(a: &[u8], b: &[u8]) -> i32 {
    // SAFETY: as above.
    unsafe { u8_drive::<false, false>(a, b) as i32 }
}
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,avx512vnni")]
unsafe fn l2_sq_u8_vnni_imp(a: &[u8], b: &[u8]) -> u32 {
    // SAFETY: the features `u8_drive` needs with VNNI are enabled on this function.
    unsafe { u8_drive::<true, true>(a, b) as u32 }
}
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,avx512vnni")]
unsafe fn dot_u8_vnni_imp(a: &[u8], b: &[u8]) -> i32 {
    // SAFETY: as above.
    unsafe { u8_drive::<false, true>(a, b) as i32 }
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

/// One row against `P` panels of 32 columns at a time (`2P` accumulators): each lane is the
/// chain `acc = fma(x[k], m[k], acc)` over `k` from zero, as in `scan_imp`'s tile.
///
/// # Safety
/// `args.check(NR, out)` must hold, `first + P <= args.panels`, and the CPU must have AVX-512F.
#[inline(always)]
unsafe fn gemv_panels<const P: usize>(args: &GemvArgs<'_>, first: usize, out: &mut [f32]) {
    let dim = args.dim;
    // SAFETY: the caller's contract: panels `first .. first + P` are inside `bpack` and their
    // `P * NR` outputs inside `out`; `x` holds `dim` values.
    unsafe {
        let b = args.bpack.as_ptr().add(first * dim * NR);
        let mut acc = [[_mm512_setzero_ps(); 2]; P];
        for k in 0..dim {
            let xv = _mm512_set1_ps(*args.x.get_unchecked(k));
            for (j, acc) in acc.iter_mut().enumerate() {
                let bj = b.add((j * dim + k) * NR);
                acc[0] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(bj), acc[0]);
                acc[1] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(bj.add(16)), acc[1]);
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            let o = out.as_mut_ptr().add((first + j) * NR);
            _mm512_storeu_ps(o, acc[0]);
            _mm512_storeu_ps(o.add(16), acc[1]);
        }
    }
}

/// A row against every panel, four panels at a time (eight chains in flight).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn gemv_imp(args: &GemvArgs<'_>, out: &mut [f32]) {
    args.check(NR, out);
    let mut p = 0;
    // SAFETY: `check` proved the sizes `gemv_panels` relies on; `p + P <= panels` below.
    unsafe {
        while p + 4 <= args.panels {
            gemv_panels::<4>(args, p, out);
            p += 4;
        }
        while p < args.panels {
            gemv_panels::<1>(args, p, out);
            p += 1;
        }
    }
}

entry!(nearest_small => nearest_small_imp(args: &SmallArgs<'_>, best: &mut [(f32, u32)]) -> ());

/// Points per tile of the small-dimension kernel: 6 accumulators, 6 running minima and 6
/// panel numbers stay in registers with the centroid row, alpha and bias (21 of 32); a
/// packed group of `MR` = 12 points is two tiles.
const SMALL_ROWS: usize = 6;

/// Nearest centroid at small dimensions (see `crate::assign`): per tile of points and panel
/// of 16 centroids, `dim` fused multiply-adds per point, then `key = bias + alpha · dot` (as
/// `scan_imp` computes it), and a strict running minimum per lane with the panel that set it.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn nearest_small_imp(args: &SmallArgs<'_>, best: &mut [(f32, u32)]) {
    const LANES: usize = 16;
    args.check(MR, LANES, best);
    let dim = args.dim;
    let alpha = _mm512_set1_ps(args.alpha);
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for g in 0..args.groups {
        for t in 0..MR / SMALL_ROWS {
            let r0 = g * MR + t * SMALL_ROWS;
            if r0 >= best.len() {
                return;
            }
            // SAFETY: `check` proved `qpack` holds `groups * dim * MR` values, `cpack` holds
            // `panels * dim * 16` and `bias` holds `panels * 16`; every offset below stays
            // inside (the tile's rows are `t * 6 .. t * 6 + 6 <= MR` of group `g`).
            unsafe {
                let a = args.qpack.as_ptr().add(g * dim * MR + t * SMALL_ROWS);
                let mut min = [_mm512_set1_ps(f32::INFINITY); SMALL_ROWS];
                let mut arg = [_mm512_setzero_si512(); SMALL_ROWS];
                for p in 0..args.panels {
                    let c = args.cpack.as_ptr().add(p * dim * LANES);
                    let mut acc = [_mm512_setzero_ps(); SMALL_ROWS];
                    for k in 0..dim {
                        let ck = _mm512_loadu_ps(c.add(k * LANES));
                        let ak = a.add(k * MR);
                        for (i, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm512_fmadd_ps(_mm512_set1_ps(*ak.add(i)), ck, *acc);
                        }
                    }
                    let bias = _mm512_loadu_ps(args.bias.as_ptr().add(p * LANES));
                    let panel = _mm512_set1_epi32(p as i32);
                    for i in 0..SMALL_ROWS {
                        let key = _mm512_fmadd_ps(acc[i], alpha, bias);
                        // Ordered `<`: a NaN key (skipped centroid, padding) never wins, and an
                        // equal key keeps the earlier panel, the smaller id.
                        let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(key, min[i]);
                        min[i] = _mm512_mask_mov_ps(min[i], m, key);
                        arg[i] = _mm512_mask_mov_epi32(arg[i], m, panel);
                    }
                }
                for i in 0..SMALL_ROWS {
                    let Some(b) = best.get_mut(r0 + i) else { break };
                    let key = _mm512_reduce_min_ps(min[i]);
                    // Not better than what earlier blocks found, or infinity: no finite key in
                    // this block (the lanes' ids are meaningless then).
                    let better = key < b.0;
                    if !better {
                        continue;
                    }
                    // The smallest id among the lanes holding the minimum.
                    let at = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(min[i], _mm512_set1_ps(key));
                    let ids = _mm512_add_epi32(_mm512_slli_epi32::<4>(arg[i]), lane);
                    *b = (key, args.first + _mm512_mask_reduce_min_epu32(at, ids));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The u8 kernels with and without VNNI against exact i64 sums (the public kernel tests
    /// reach only the variant this CPU's table holds), at every length 0..=800 with extreme
    /// bytes, then on random data.
    fn check(a: &[u8], b: &[u8]) {
        let l2: i64 = a.iter().zip(b).map(|(&x, &y)| (i64::from(x) - i64::from(y)).pow(2)).sum();
        let dot: i64 = a.iter().zip(b).map(|(&x, &y)| i64::from(x) * i64::from(y)).sum();
        let mut variants = vec![("plain", l2_sq_u8 as fn(&[u8], &[u8]) -> u32, dot_u8 as fn(&[u8], &[u8]) -> i32)];
        if has_vnni() {
            variants.push(("vnni", l2_sq_u8_vnni, dot_u8_vnni));
        } else {
            eprintln!("skipping the VNNI u8 kernels: this CPU has no avx512vnni");
        }
        for (name, l2_fn, dot_fn) in variants {
            assert_eq!(i64::from(l2_fn(a, b)), l2, "{name} l2 at n = {}", a.len());
            assert_eq!(i64::from(dot_fn(a, b)), dot, "{name} dot at n = {}", a.len());
        }
    }

    #[test]
    fn u8_kernels_are_exact_at_every_tail_and_at_the_extremes() {
        if !is_available() {
            eprintln!("skipping: this CPU has no AVX-512");
            return;
        }
        for n in 0..=800 {
            let a: Vec<u8> = (0..n).map(|i| if i % 3 == 0 { 255 } else { (i * 37 % 256) as u8 }).collect();
            let b: Vec<u8> = (0..n).map(|i| if i % 2 == 0 { 0 } else { (i * 91 % 256) as u8 }).collect();
            check(&a, &b);
            check(&a, &a);
        }
        // The longest exact slice, all differences and products at their largest.
        let (ones, zeros) = (vec![255u8; crate::simd::INT_CHUNK], vec![0u8; crate::simd::INT_CHUNK]);
        check(&ones, &zeros);
        check(&ones, &ones);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn u8_kernels_match_exact_sums(
            (a, b, off) in (1usize..1500, 0usize..64)
                .prop_flat_map(|(n, off)| (prop::collection::vec(any::<u8>(), n + off), prop::collection::vec(any::<u8>(), n), Just(off)))
        ) {
            if is_available() {
                check(&a[off..], &b);
            }
        }
    }
}
