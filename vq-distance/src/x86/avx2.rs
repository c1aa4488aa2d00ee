//! AVX2 + FMA (+ F16C) kernels: 8 f32 lanes, f32 tails by masked loads (f16 / bf16 tails
//! through a zero-padded copy), a 6 × 16 register tile for the many-to-many kernel (the
//! classic Haswell GEMM shape: 12 accumulators of the 16 ymm registers).
//!
//! Run `cargo bench -p vq-distance --bench kernels` with `VQ_SIMD=avx2` before changing
//! anything here.

use std::arch::x86_64::*;

use half::{bf16, f16};

use crate::assign::SmallArgs;
use crate::gemm::{ScanArgs, TileHit};
use crate::matrix::GemvArgs;
use crate::simd::{FloatKernels, GemmKernel, IntKernels, Kernels, Rows4Kernels, SimdLevel, SmallKernel};

/// `true` when this CPU has every feature the kernels of this module use.
pub(crate) fn is_available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// The AVX2 kernel table.
///
/// # Safety
/// The caller must have checked [`is_available`].
pub(crate) unsafe fn kernels() -> Kernels {
    Kernels {
        level: SimdLevel::Avx2,
        f32: FloatKernels { l2_sq: l2_sq_f32, dot: dot_f32, cos_parts: cos_parts_f32 },
        f16: FloatKernels { l2_sq: l2_sq_f16, dot: dot_f16, cos_parts: cos_parts_f16 },
        bf16: FloatKernels { l2_sq: l2_sq_bf16, dot: dot_bf16, cos_parts: cos_parts_bf16 },
        u8: IntKernels { l2_sq: l2_sq_u8, dot: dot_u8 },
        i8: IntKernels { l2_sq: l2_sq_i8, dot: dot_i8 },
        gemm: GemmKernel { mr: MR, nr: NR, scan, gemv },
        small: Some(SmallKernel { lanes: 8, nearest: nearest_small }),
        // 16 accumulators fill AVX2's 16 registers, so the four-row pass spills two of them:
        // at 384 dimensions it lost 11 % of HNSW QPS against one row at a time, at 768 and
        // 1536 (rows from memory) it gained 13 % and 37 % (BENCHMARKS.md).
        rows4: Some(Rows4Kernels { l2_sq: l2_sq_f32_rows4, dot: dot_f32_rows4, min_dim: 512 }),
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
entry!(l2_sq_i8 => l2_sq_i8_imp(a: &[i8], b: &[i8]) -> u32);
entry!(dot_i8 => dot_i8_imp(a: &[i8], b: &[i8]) -> i32);
entry!(scan => scan_imp(args: &ScanArgs<'_>, thresholds: &mut [f32], hit: TileHit<'_>) -> ());
entry!(gemv => gemv_imp(args: &GemvArgs<'_>, out: &mut [f32]) -> ());
entry!(nearest_small => nearest_small_imp(args: &SmallArgs<'_>, best: &mut [(f32, u32)]) -> ());

/// Loads 8 elements from `p` as f32.
trait Load8: Copy {
    const ZERO: Self;
    unsafe fn load(p: *const Self) -> __m256;

    /// The `n` (1..8) elements from `p`, the other lanes zero: through a zero-padded copy.
    #[inline(always)]
    unsafe fn load_tail(p: *const Self, n: usize) -> __m256 {
        let mut t = [Self::ZERO; 8];
        // SAFETY: the caller guarantees `n < 8` readable elements at `p`; `t` holds 8.
        unsafe {
            std::ptr::copy_nonoverlapping(p, t.as_mut_ptr(), n);
            Self::load(t.as_ptr())
        }
    }
}

/// `HIGH_LANES[r..r + 8]` is `8 - r` zero lanes, then `r` all-ones lanes (as f32 bits): the
/// last `r` lanes of a load kept by `and`.
static HIGH_LANES: [u32; 16] = [0, 0, 0, 0, 0, 0, 0, 0, !0, !0, !0, !0, !0, !0, !0, !0];

/// `MASK_WINDOW[8 - n..16 - n]` is `n` all-ones lanes, then zeros: a `maskload` mask.
static MASK_WINDOW: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

impl Load8 for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable elements.
        unsafe { _mm256_loadu_ps(p) }
    }

    /// A masked load, not a copy: the copy of a variable length is a `memcpy` call per
    /// distance, a large share of a 50-d distance.
    #[inline(always)]
    unsafe fn load_tail(p: *const f32, n: usize) -> __m256 {
        debug_assert!((1..8).contains(&n));
        // SAFETY: `8 - n .. 16 - n` lies inside the 16-lane window for `n` in 1..8; `maskload`
        // reads only the lanes whose mask is set (masked lanes never fault), the `n` elements
        // the caller guarantees readable.
        unsafe {
            let mask = _mm256_loadu_si256(MASK_WINDOW.as_ptr().add(8 - n).cast());
            _mm256_maskload_ps(p, mask)
        }
    }
}

impl Load8 for f16 {
    const ZERO: Self = f16::ZERO;
    #[inline(always)]
    unsafe fn load(p: *const f16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable elements (16 bytes).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
}

impl Load8 for bf16 {
    const ZERO: Self = bf16::ZERO;
    #[inline(always)]
    unsafe fn load(p: *const bf16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable elements (16 bytes). bf16 is the upper
        // half of an f32: widen and shift.
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())))) }
    }
}

/// Runs `step` over 8-lane chunks (4 independent chunks per iteration, one per accumulator),
/// then over the rest, also spread over the four accumulators, the tail zero-padded.
#[inline(always)]
unsafe fn drive<T: Load8>(a: &[T], b: &[T], mut step: impl FnMut(usize, __m256, __m256)) {
    // SAFETY: `drive_rows`' contract holds for any slices.
    unsafe { drive_rows(a, [b], |j, x, [y]| step(j, x, y)) }
}

/// [`drive`] for `a` against `N` rows at once, each chunk of `a` loaded once: the same chunk
/// order and accumulator slots as `drive` for one row, so a per-row sum computed through it is
/// `drive`'s to the bit. Reads up to the shortest slice's length.
#[inline(always)]
unsafe fn drive_rows<T: Load8, const N: usize>(
    a: &[T],
    rows: [&[T]; N],
    mut step: impl FnMut(usize, __m256, [__m256; N]),
) {
    let n = rows.iter().fold(a.len(), |n, r| n.min(r.len()));
    let pa = a.as_ptr();
    let pr = rows.map(<[T]>::as_ptr);
    let mut i = 0;
    // SAFETY: every full load reads `i + 8 * j .. i + 8 * j + 8 <= n`; the overlapping tail
    // reads `n - 8 .. n` (with `n >= 8`), and `HIGH_LANES[r..r + 8]` lies inside its 16
    // entries for `r` in 1..8; `n` is at most every slice's length.
    unsafe {
        let load = |at: usize| (T::load(pa.add(at)), pr.map(|p| T::load(p.add(at))));
        while i + 32 <= n {
            for j in 0..4 {
                let (x, ys) = load(i + 8 * j);
                step(j, x, ys);
            }
            i += 32;
        }
        // At most 3 full chunks and a tail remain: each into its own accumulator (constant
        // indices keep `acc` in registers), so at small dimensions the FMAs overlap.
        if i + 8 <= n {
            let (x, ys) = load(i);
            step(0, x, ys);
            i += 8;
            if i + 8 <= n {
                let (x, ys) = load(i);
                step(1, x, ys);
                i += 8;
                if i + 8 <= n {
                    let (x, ys) = load(i);
                    step(2, x, ys);
                    i += 8;
                }
            }
        }
        if i < n && n >= 8 {
            // The tail as the top `n - i` lanes of the last 8 elements, the others zeroed:
            // every byte read lies inside the vectors (a load past the end waits for a line
            // of some other vector; see the AVX-512 `drive`), and no copy.
            let keep = _mm256_loadu_ps(HIGH_LANES.as_ptr().add(n - i).cast());
            let (x, ys) = load(n - 8);
            step(3, _mm256_and_ps(x, keep), ys.map(|y| _mm256_and_ps(y, keep)));
        } else if i < n {
            // Elements `i..n` (1..8 of them) are readable.
            step(3, T::load_tail(pa.add(i), n - i), pr.map(|p| T::load_tail(p.add(i), n - i)));
        }
    }
}

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: register arithmetic; every caller enables avx.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }
}

#[inline(always)]
unsafe fn sum4(acc: [__m256; 4]) -> f32 {
    // SAFETY: register arithmetic; every caller enables avx.
    unsafe { hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))) }
}

#[inline(always)]
unsafe fn l2_sq_generic<T: Load8>(a: &[T], b: &[T]) -> f32 {
    // SAFETY: register arithmetic and `drive`, whose contract holds for any two slices.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        drive(a, b, |j, x, y| {
            let d = _mm256_sub_ps(x, y);
            acc[j] = _mm256_fmadd_ps(d, d, acc[j]);
        });
        sum4(acc)
    }
}

#[inline(always)]
unsafe fn dot_generic<T: Load8>(a: &[T], b: &[T]) -> f32 {
    // SAFETY: as in `l2_sq_generic`.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        drive(a, b, |j, x, y| acc[j] = _mm256_fmadd_ps(x, y, acc[j]));
        sum4(acc)
    }
}

#[inline(always)]
unsafe fn cos_parts_generic<T: Load8>(a: &[T], b: &[T]) -> [f32; 3] {
    // SAFETY: as in `l2_sq_generic`.
    unsafe {
        let z = _mm256_setzero_ps();
        let (mut ab, mut aa, mut bb) = ([z; 4], [z; 4], [z; 4]);
        drive(a, b, |j, x, y| {
            ab[j] = _mm256_fmadd_ps(x, y, ab[j]);
            aa[j] = _mm256_fmadd_ps(x, x, aa[j]);
            bb[j] = _mm256_fmadd_ps(y, y, bb[j]);
        });
        [sum4(ab), sum4(aa), sum4(bb)]
    }
}

macro_rules! float_kernels {
    ($t:ty, $l2:ident, $dot:ident, $cos:ident) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $l2(a: &[$t], b: &[$t]) -> f32 {
            // SAFETY: the features the helper needs are enabled on this function.
            unsafe { l2_sq_generic(a, b) }
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $dot(a: &[$t], b: &[$t]) -> f32 {
            // SAFETY: the features the helper needs are enabled on this function.
            unsafe { dot_generic(a, b) }
        }
        #[target_feature(enable = "avx2,fma,f16c")]
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
unsafe fn rows4_generic(a: &[f32], rows: [&[f32]; 4], fma: impl Fn(__m256, __m256, __m256) -> __m256) -> [f32; 4] {
    // SAFETY: register arithmetic and `drive_rows`, whose contract holds for any slices.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 4]; 4];
        drive_rows(a, rows, |j, x, ys| {
            for (acc, y) in acc.iter_mut().zip(ys) {
                acc[j] = fma(x, y, acc[j]);
            }
        });
        acc.map(|acc| sum4(acc))
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn l2_sq_f32_rows4_imp(a: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
    // SAFETY: the features `rows4_generic` needs are enabled on this function.
    unsafe {
        rows4_generic(a, rows, |x, y, acc| {
            let d = _mm256_sub_ps(x, y);
            _mm256_fmadd_ps(d, d, acc)
        })
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32_rows4_imp(a: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
    // SAFETY: the features `rows4_generic` needs are enabled on this function.
    unsafe { rows4_generic(a, rows, |x, y, acc| _mm256_fmadd_ps(x, y, acc)) }
}

float_kernels!(f16, l2_sq_f16_imp, dot_f16_imp, cos_parts_f16_imp);
float_kernels!(bf16, l2_sq_bf16_imp, dot_bf16_imp, cos_parts_bf16_imp);

/// 16 bytes widened to 16 i16 lanes; i8 only (u8 has [`u8_drive`]).
trait Widen16: Copy {
    const ZERO: Self;
    unsafe fn widen(p: *const Self) -> __m256i;
}

impl Widen16 for i8 {
    const ZERO: Self = 0;
    #[inline(always)]
    unsafe fn widen(p: *const i8) -> __m256i {
        // SAFETY: the caller guarantees 16 readable bytes.
        unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(p.cast())) }
    }
}

/// Adds `madd` of the 16 elements at `pa`/`pb` to `acc`: squared differences when
/// `SQ_DIFF`, products otherwise.
#[inline(always)]
unsafe fn int_step<T: Widen16, const SQ_DIFF: bool>(pa: *const T, pb: *const T, acc: __m256i) -> __m256i {
    // SAFETY: the caller guarantees 16 readable elements at `pa` and `pb`.
    unsafe {
        let x = T::widen(pa);
        let y = T::widen(pb);
        let prod = if SQ_DIFF {
            let d = _mm256_sub_epi16(x, y);
            _mm256_madd_epi16(d, d)
        } else {
            _mm256_madd_epi16(x, y)
        };
        _mm256_add_epi32(acc, prod)
    }
}

/// Sums [`int_step`] over 16-element chunks in i32 lanes: exact while the caller keeps slices
/// within `simd::INT_CHUNK`.
#[inline(always)]
unsafe fn int_drive<T: Widen16, const SQ_DIFF: bool>(a: &[T], b: &[T]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: full steps read `i .. i + 16 <= n`; the tail reads 16-element padded copies.
    unsafe {
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        let mut i = 0;
        while i + 32 <= n {
            acc0 = int_step::<T, SQ_DIFF>(pa.add(i), pb.add(i), acc0);
            acc1 = int_step::<T, SQ_DIFF>(pa.add(i + 16), pb.add(i + 16), acc1);
            i += 32;
        }
        if i + 16 <= n {
            acc0 = int_step::<T, SQ_DIFF>(pa.add(i), pb.add(i), acc0);
            i += 16;
        }
        if i < n {
            let mut ta = [T::ZERO; 16];
            let mut tb = [T::ZERO; 16];
            ta[..n - i].copy_from_slice(&a[i..n]);
            tb[..n - i].copy_from_slice(&b[i..n]);
            acc1 = int_step::<T, SQ_DIFF>(ta.as_ptr(), tb.as_ptr(), acc1);
        }
        let s = _mm256_add_epi32(acc0, acc1);
        let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }
}

/// One 32-byte step of the u8 kernels into `acc[j]` and `acc[j + 1]`.
///
/// No widening shuffles (the older kernel's `cvtepu8_epi16` ran on the one shuffle port and
/// bounded it): a 16-bit lane holds an even byte (`v & 0x00ff`) and an odd one (`v >> 8`), so
/// two `madd`s over those halves sum all 32 products exactly (at most 2 · 255² per i32 lane
/// and step). L2 first takes |a − b| in u8 as `max − min`.
#[inline(always)]
unsafe fn u8_step<const L2: bool>(x: __m256i, y: __m256i, acc: &mut [__m256i; 4], j: usize) {
    // SAFETY: register arithmetic; every caller enables avx2.
    unsafe {
        let lo = _mm256_set1_epi16(0x00ff);
        let (pl, ph) = if L2 {
            let d = _mm256_sub_epi8(_mm256_max_epu8(x, y), _mm256_min_epu8(x, y));
            let (dl, dh) = (_mm256_and_si256(d, lo), _mm256_srli_epi16::<8>(d));
            (_mm256_madd_epi16(dl, dl), _mm256_madd_epi16(dh, dh))
        } else {
            let (xl, xh) = (_mm256_and_si256(x, lo), _mm256_srli_epi16::<8>(x));
            let (yl, yh) = (_mm256_and_si256(y, lo), _mm256_srli_epi16::<8>(y));
            (_mm256_madd_epi16(xl, yl), _mm256_madd_epi16(xh, yh))
        };
        acc[j] = _mm256_add_epi32(acc[j], pl);
        acc[j + 1] = _mm256_add_epi32(acc[j + 1], ph);
    }
}

/// The u8 kernels over 64-byte iterations (two [`u8_step`]s into four accumulators), a
/// 32-byte step, then the tail from zero-padded copies (zeros add nothing). Exact within
/// `simd::INT_CHUNK`.
#[inline(always)]
unsafe fn u8_drive<const L2: bool>(a: &[u8], b: &[u8]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: full loads read `i .. i + 32 <= n`; the tail reads 32-byte local copies.
    unsafe {
        let mut acc = [_mm256_setzero_si256(); 4];
        let mut i = 0;
        while i + 64 <= n {
            u8_step::<L2>(_mm256_loadu_si256(pa.add(i).cast()), _mm256_loadu_si256(pb.add(i).cast()), &mut acc, 0);
            u8_step::<L2>(
                _mm256_loadu_si256(pa.add(i + 32).cast()),
                _mm256_loadu_si256(pb.add(i + 32).cast()),
                &mut acc,
                2,
            );
            i += 64;
        }
        if i + 32 <= n {
            u8_step::<L2>(_mm256_loadu_si256(pa.add(i).cast()), _mm256_loadu_si256(pb.add(i).cast()), &mut acc, 0);
            i += 32;
        }
        if i < n {
            let (mut ta, mut tb) = ([0u8; 32], [0u8; 32]);
            ta[..n - i].copy_from_slice(&a[i..n]);
            tb[..n - i].copy_from_slice(&b[i..n]);
            u8_step::<L2>(_mm256_loadu_si256(ta.as_ptr().cast()), _mm256_loadu_si256(tb.as_ptr().cast()), &mut acc, 2);
        }
        let s = _mm256_add_epi32(_mm256_add_epi32(acc[0], acc[1]), _mm256_add_epi32(acc[2], acc[3]));
        let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }
}

#[target_feature(enable = "avx2")]
unsafe fn l2_sq_u8_imp(a: &[u8], b: &[u8]) -> u32 {
    // SAFETY: the features `u8_drive` needs are enabled on this function.
    unsafe { u8_drive::<true>(a, b) as u32 }
}
#[target_feature(enable = "avx2")]
unsafe fn dot_u8_imp(a: &[u8], b: &[u8]) -> i32 {
    // SAFETY: as above.
    unsafe { u8_drive::<false>(a, b) }
}
#[target_feature(enable = "avx2")]
unsafe fn l2_sq_i8_imp(a: &[i8], b: &[i8]) -> u32 {
    // SAFETY: as above.
    unsafe { int_drive::<_, true>(a, b) as u32 }
}
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_imp(a: &[i8], b: &[i8]) -> i32 {
    // SAFETY: as above.
    unsafe { int_drive::<_, false>(a, b) }
}

/// One row against `P` panels of 16 columns at a time (`2P` accumulators): each lane is the
/// chain `acc = fma(x[k], m[k], acc)` over `k` from zero, as in `scan_imp`'s tile.
///
/// # Safety
/// `args.check(NR, out)` must hold, `first + P <= args.panels`, and the CPU must have AVX2 and FMA.
#[inline(always)]
unsafe fn gemv_panels<const P: usize>(args: &GemvArgs<'_>, first: usize, out: &mut [f32]) {
    let dim = args.dim;
    // SAFETY: the caller's contract: panels `first .. first + P` are inside `bpack` and their
    // `P * NR` outputs inside `out`; `x` holds `dim` values.
    unsafe {
        let b = args.bpack.as_ptr().add(first * dim * NR);
        let mut acc = [[_mm256_setzero_ps(); 2]; P];
        for k in 0..dim {
            let xv = _mm256_set1_ps(*args.x.get_unchecked(k));
            for (j, acc) in acc.iter_mut().enumerate() {
                let bj = b.add((j * dim + k) * NR);
                acc[0] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bj), acc[0]);
                acc[1] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bj.add(8)), acc[1]);
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            let o = out.as_mut_ptr().add((first + j) * NR);
            _mm256_storeu_ps(o, acc[0]);
            _mm256_storeu_ps(o.add(8), acc[1]);
        }
    }
}

/// A row against every panel, four panels at a time (eight chains in flight).
#[target_feature(enable = "avx2,fma")]
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

const MR: usize = 6;
const NR: usize = 16;

/// The 6 × 16 register tile.
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_imp(args: &ScanArgs<'_>, thresholds: &mut [f32], hit: TileHit<'_>) {
    args.check(MR, NR, thresholds);
    let dim = args.dim;
    let alpha = _mm256_set1_ps(args.alpha);
    let mut keys = [0f32; NR];
    for g in 0..args.groups {
        // SAFETY: `check` proved `qpack` holds `groups * dim * MR` values, `bpack` holds
        // `panels * dim * NR` and `bias` holds `panels * NR`; every offset below stays inside.
        unsafe {
            let a = args.qpack.as_ptr().add(g * dim * MR);
            for p in 0..args.panels {
                let b = args.bpack.as_ptr().add(p * dim * NR);
                let mut acc = [[_mm256_setzero_ps(); 2]; MR];
                for k in 0..dim {
                    let b0 = _mm256_loadu_ps(b.add(k * NR));
                    let b1 = _mm256_loadu_ps(b.add(k * NR + 8));
                    let ak = a.add(k * MR);
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let av = _mm256_broadcast_ss(&*ak.add(i));
                        acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                        acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
                    }
                }
                let bias0 = _mm256_loadu_ps(args.bias.as_ptr().add(p * NR));
                let bias1 = _mm256_loadu_ps(args.bias.as_ptr().add(p * NR + 8));
                for (i, acc) in acc.iter().enumerate() {
                    let row = g * MR + i;
                    let k0 = _mm256_fmadd_ps(acc[0], alpha, bias0);
                    let k1 = _mm256_fmadd_ps(acc[1], alpha, bias1);
                    let mask = if args.keep_all {
                        u64::MAX
                    } else {
                        let thr = _mm256_set1_ps(*thresholds.get_unchecked(row));
                        let m0 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(k0, thr)) as u32;
                        let m1 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(k1, thr)) as u32;
                        u64::from(m0 | (m1 << 8))
                    };
                    if mask != 0 {
                        _mm256_storeu_ps(keys.as_mut_ptr(), k0);
                        _mm256_storeu_ps(keys.as_mut_ptr().add(8), k1);
                        thresholds[row] = hit(row, p * NR, &keys, mask);
                    }
                }
            }
        }
    }
}

/// Points per tile of the small-dimension kernel: 3 accumulators, 3 running minima and 3
/// panel numbers stay in registers with the centroid row, alpha and bias (12 of 16); a packed
/// group of `MR` = 6 points is two tiles.
const SMALL_ROWS: usize = 3;

/// Nearest centroid at small dimensions (see `crate::assign`): per tile of points and panel
/// of 8 centroids, `dim` fused multiply-adds per point, then `key = bias + alpha · dot` (as
/// `scan_imp` computes it), and a strict running minimum per lane with the panel that set it.
#[target_feature(enable = "avx2,fma")]
unsafe fn nearest_small_imp(args: &SmallArgs<'_>, best: &mut [(f32, u32)]) {
    const LANES: usize = 8;
    args.check(MR, LANES, best);
    let dim = args.dim;
    let alpha = _mm256_set1_ps(args.alpha);
    let (mut keys, mut panels) = ([0f32; LANES], [0u32; LANES]);
    for g in 0..args.groups {
        for t in 0..MR / SMALL_ROWS {
            let r0 = g * MR + t * SMALL_ROWS;
            if r0 >= best.len() {
                return;
            }
            // SAFETY: `check` proved `qpack` holds `groups * dim * MR` values, `cpack` holds
            // `panels * dim * 8` and `bias` holds `panels * 8`; every offset below stays inside
            // (the tile's rows are `t * 3 .. t * 3 + 3 <= MR` of group `g`).
            unsafe {
                let a = args.qpack.as_ptr().add(g * dim * MR + t * SMALL_ROWS);
                let mut min = [_mm256_set1_ps(f32::INFINITY); SMALL_ROWS];
                // Panel numbers, carried in float registers for `blendv` (bits, never arithmetic).
                let mut arg = [_mm256_setzero_ps(); SMALL_ROWS];
                for p in 0..args.panels {
                    let c = args.cpack.as_ptr().add(p * dim * LANES);
                    let mut acc = [_mm256_setzero_ps(); SMALL_ROWS];
                    for k in 0..dim {
                        let ck = _mm256_loadu_ps(c.add(k * LANES));
                        let ak = a.add(k * MR);
                        for (i, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&*ak.add(i)), ck, *acc);
                        }
                    }
                    let bias = _mm256_loadu_ps(args.bias.as_ptr().add(p * LANES));
                    let panel = _mm256_castsi256_ps(_mm256_set1_epi32(p as i32));
                    for i in 0..SMALL_ROWS {
                        let key = _mm256_fmadd_ps(acc[i], alpha, bias);
                        // Ordered `<`: a NaN key (skipped centroid, padding) never wins, and an
                        // equal key keeps the earlier panel, the smaller id.
                        let m = _mm256_cmp_ps::<_CMP_LT_OQ>(key, min[i]);
                        min[i] = _mm256_blendv_ps(min[i], key, m);
                        arg[i] = _mm256_blendv_ps(arg[i], panel, m);
                    }
                }
                for i in 0..SMALL_ROWS {
                    let Some(b) = best.get_mut(r0 + i) else { break };
                    _mm256_storeu_ps(keys.as_mut_ptr(), min[i]);
                    _mm256_storeu_ps(panels.as_mut_ptr().cast(), arg[i]);
                    // Lanes in order, strict `<` across lanes of equal key by id: the smallest
                    // id of the minimum key (ids are `panel · 8 + lane`).
                    let mut here = (f32::INFINITY, u32::MAX);
                    for (l, (&key, &panel)) in keys.iter().zip(&panels).enumerate() {
                        let id = panel * LANES as u32 + l as u32;
                        if key < here.0 || (key == here.0 && id < here.1) {
                            here = (key, id);
                        }
                    }
                    if here.0 < b.0 {
                        *b = (here.0, args.first + here.1);
                    }
                }
            }
        }
    }
}
