//! AVX2 + FMA (+ F16C) kernels: 8 components per step, four codes in flight (each with its
//! own accumulator), one combined horizontal sum per four codes.
//!
//! Run `cargo bench -p vq-quant --bench sq` with `VQ_SIMD=avx2` before changing anything here.

use std::arch::x86_64::*;

use crate::sq::kernels::{
    BlockFn, Code, Form, INT_SEGMENT_STEPS, IntBlockFn, IntQuery, PairFn, PairParams, Prepared, SelectBlock, SelectInt,
    SelectPair,
};

/// `true` when this CPU has every feature the kernels of this module use.
pub(crate) fn is_available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// The kernel selector of this level. Panics if the CPU lacks the features: callers check
/// [`is_available`] first.
pub(crate) fn select_checked() -> (SelectBlock, SelectPair, SelectInt) {
    assert!(is_available(), "AVX2 kernels requested on a CPU without AVX2/FMA/F16C");
    (select, pair, int)
}

/// Components per step.
const W: usize = 8;

/// Decodes 8 components starting at `p` into f32 lanes.
trait Dec {
    /// Bytes 8 components take.
    const BYTES: usize;
    /// # Safety
    /// `p` must be readable for [`Dec::BYTES`] bytes, and the CPU must have this module's
    /// features.
    unsafe fn dec(p: *const u8) -> __m256;
}

struct U8;
struct U6;
struct U4;
struct F16;
struct Bf16;

impl Dec for U8 {
    const BYTES: usize = 8;
    #[inline(always)]
    unsafe fn dec(p: *const u8) -> __m256 {
        // SAFETY: 8 readable bytes.
        unsafe { _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast()))) }
    }
}

/// `pshufb` control for [`U6`]: the low 128-bit lane spreads bytes `0..3` (components 0..4)
/// over its four 32-bit elements, the high lane bytes `3..6` (components 4..8).
static U6_SHUFFLE: [i8; 32] = [
    0, 1, 2, -1, 0, 1, 2, -1, 0, 1, 2, -1, 0, 1, 2, -1, //
    3, 4, 5, -1, 3, 4, 5, -1, 3, 4, 5, -1, 3, 4, 5, -1,
];
static U6_SHIFTS: [u32; 8] = [0, 6, 12, 18, 0, 6, 12, 18];

impl Dec for U6 {
    const BYTES: usize = 6;
    #[inline(always)]
    unsafe fn dec(p: *const u8) -> __m256 {
        // SAFETY: reads exactly the 6 bytes the caller guarantees (a u32 and a u16); the rest
        // is register arithmetic and loads of the statics above.
        unsafe {
            let lo = u64::from(p.cast::<u32>().read_unaligned());
            let hi = u64::from(p.add(4).cast::<u16>().read_unaligned());
            let x = _mm_cvtsi64_si128((lo | (hi << 32)) as i64);
            let groups =
                _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(x), _mm256_loadu_si256(U6_SHUFFLE.as_ptr().cast()));
            let shifted = _mm256_srlv_epi32(groups, _mm256_loadu_si256(U6_SHIFTS.as_ptr().cast()));
            _mm256_cvtepi32_ps(_mm256_and_si256(shifted, _mm256_set1_epi32(63)))
        }
    }
}

impl Dec for U4 {
    const BYTES: usize = 4;
    #[inline(always)]
    unsafe fn dec(p: *const u8) -> __m256 {
        // SAFETY: reads exactly 4 bytes; the rest is register arithmetic (each byte `0xHL`
        // becomes the bytes `L, H`, see the AVX-512 twin).
        unsafe {
            let x = _mm_cvtepu8_epi16(_mm_cvtsi32_si128(p.cast::<i32>().read_unaligned()));
            let nibbles = _mm_and_si128(_mm_or_si128(x, _mm_slli_epi16::<4>(x)), _mm_set1_epi16(0x0f0f));
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(nibbles))
        }
    }
}

impl Dec for F16 {
    const BYTES: usize = 16;
    #[inline(always)]
    unsafe fn dec(p: *const u8) -> __m256 {
        // SAFETY: 16 readable bytes.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
}

impl Dec for Bf16 {
    const BYTES: usize = 16;
    #[inline(always)]
    unsafe fn dec(p: *const u8) -> __m256 {
        // SAFETY: 16 readable bytes. bf16 is the upper half of an f32: widen and shift.
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())))) }
    }
}

/// One term of the sum, for full steps and for the zero-padded tail step.
trait Term {
    const USES_B: bool;
    /// # Safety
    /// The CPU must have this module's features.
    unsafe fn step(acc: __m256, a: __m256, b: __m256, x: __m256) -> __m256;
    /// # Safety
    /// As [`Term::step`].
    unsafe fn tail(acc: __m256, a: __m256, b: __m256, x: __m256) -> __m256 {
        // SAFETY: forwarded contract.
        unsafe { Self::step(acc, a, b, x) }
    }
}

struct L2;
struct L2Unit;
struct Ip;

impl Term for L2 {
    const USES_B: bool = true;
    #[inline(always)]
    unsafe fn step(acc: __m256, a: __m256, b: __m256, x: __m256) -> __m256 {
        // SAFETY: register arithmetic.
        unsafe {
            let d = _mm256_fnmadd_ps(x, b, a);
            _mm256_fmadd_ps(d, d, acc)
        }
    }
}

impl Term for L2Unit {
    const USES_B: bool = false;
    #[inline(always)]
    unsafe fn step(acc: __m256, a: __m256, _b: __m256, x: __m256) -> __m256 {
        // SAFETY: register arithmetic.
        unsafe {
            let d = _mm256_sub_ps(a, x);
            _mm256_fmadd_ps(d, d, acc)
        }
    }
    #[inline(always)]
    unsafe fn tail(acc: __m256, a: __m256, b: __m256, x: __m256) -> __m256 {
        // SAFETY: register arithmetic. `b` is 1 on real lanes and 0 on padding lanes.
        unsafe { L2::step(acc, a, b, x) }
    }
}

impl Term for Ip {
    const USES_B: bool = false;
    #[inline(always)]
    unsafe fn step(acc: __m256, a: __m256, _b: __m256, x: __m256) -> __m256 {
        // SAFETY: register arithmetic.
        unsafe { _mm256_fmadd_ps(a, x, acc) }
    }
}

/// The unreduced sums of `N` consecutive codes starting at `p`.
///
/// # Safety
/// `p` must be readable for `N * q.code_size` bytes, `q` must keep [`Prepared`]'s
/// invariants, and the CPU must have this module's features.
#[inline(always)]
unsafe fn sums<D: Dec, T: Term, const N: usize>(q: &Prepared, p: *const u8) -> [__m256; N] {
    let cs = q.code_size;
    let full = q.dim / W;
    let (pa, pb) = (q.a.as_ptr(), q.b.as_ptr());
    // SAFETY: `a` and `b` hold `dim.next_multiple_of(16)` values, so every 8-lane load at
    // `8 * c` for `c <= full` is in bounds. Step `c < full` of code `k` reads bytes
    // `k * cs + c * BYTES ..+ BYTES`, all below `(k + 1) * cs`. The tail copies the code's
    // remaining `cs - full * BYTES <= BYTES` bytes into a zeroed buffer and decodes that.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        for c in 0..full {
            let a = _mm256_loadu_ps(pa.add(W * c));
            let b = if T::USES_B { _mm256_loadu_ps(pb.add(W * c)) } else { _mm256_setzero_ps() };
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = D::dec(p.add(k * cs + c * D::BYTES));
                *acc = T::step(*acc, a, b, x);
            }
        }
        if !q.dim.is_multiple_of(W) {
            let a = _mm256_loadu_ps(pa.add(W * full));
            let b = _mm256_loadu_ps(pb.add(W * full));
            let rest = cs - full * D::BYTES;
            for (k, acc) in acc.iter_mut().enumerate() {
                let mut buf = [0u8; 32];
                std::ptr::copy_nonoverlapping(p.add(k * cs + full * D::BYTES), buf.as_mut_ptr(), rest);
                *acc = T::tail(*acc, a, b, D::dec(buf.as_ptr()));
            }
        }
        acc
    }
}

/// The four horizontal sums of `acc`, in order.
///
/// # Safety
/// The CPU must have this module's features.
#[inline(always)]
unsafe fn hsum4(acc: [__m256; 4]) -> __m128 {
    // SAFETY: register arithmetic.
    unsafe {
        let h01 = _mm256_hadd_ps(acc[0], acc[1]);
        let h23 = _mm256_hadd_ps(acc[2], acc[3]);
        let h = _mm256_hadd_ps(h01, h23);
        _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h))
    }
}

/// The horizontal sum of `v`.
///
/// # Safety
/// The CPU must have this module's features.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: register arithmetic.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_hadd_ps(s, s);
        _mm_cvtss_f32(_mm_hadd_ps(s, s))
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn block_imp<D: Dec, T: Term>(q: &Prepared, codes: &[u8], out: &mut [f32]) {
    let cs = q.code_size;
    if cs == 0 {
        return;
    }
    debug_assert_eq!(q.a.len(), q.dim.next_multiple_of(16));
    let n = out.len().min(codes.len() / cs);
    let (scale, offset) = (q.scale, q.offset);
    let base = codes.as_ptr();
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: codes `i..i + 4` are in `codes` (`i + 4 <= n`), `out` has room for four
        // keys at `i`, and this function's features are those `sums` and `hsum4` need.
        unsafe {
            let s = hsum4(sums::<D, T, 4>(q, base.add(i * cs)));
            let keys = _mm_fmadd_ps(s, _mm_set1_ps(scale), _mm_set1_ps(offset));
            _mm_storeu_ps(out.as_mut_ptr().add(i), keys);
        }
        i += 4;
    }
    while i < n {
        // SAFETY: code `i` is in `codes`.
        let s = unsafe { hsum(sums::<D, T, 1>(q, base.add(i * cs))[0]) };
        out[i] = offset + scale * s;
        i += 1;
    }
}

fn entry<D: Dec, T: Term>(q: &Prepared, codes: &[u8], out: &mut [f32]) {
    // SAFETY: this function is only reachable through `select`, which only
    // `select_checked` hands out, after checking that the CPU has the features.
    unsafe { block_imp::<D, T>(q, codes, out) }
}

fn select(code: Code, form: Form) -> BlockFn {
    match (code, form) {
        (Code::U8, Form::L2) => entry::<U8, L2>,
        (Code::U8, Form::L2Unit) => entry::<U8, L2Unit>,
        (Code::U8, Form::Ip) => entry::<U8, Ip>,
        (Code::U6, Form::L2) => entry::<U6, L2>,
        (Code::U6, Form::L2Unit) => entry::<U6, L2Unit>,
        (Code::U6, Form::Ip) => entry::<U6, Ip>,
        (Code::U4, Form::L2) => entry::<U4, L2>,
        (Code::U4, Form::L2Unit) => entry::<U4, L2Unit>,
        (Code::U4, Form::Ip) => entry::<U4, Ip>,
        (Code::F16, Form::L2) => entry::<F16, L2>,
        (Code::F16, Form::L2Unit) => entry::<F16, L2Unit>,
        (Code::F16, Form::Ip) => entry::<F16, Ip>,
        (Code::Bf16, Form::L2) => entry::<Bf16, L2>,
        (Code::Bf16, Form::L2Unit) => entry::<Bf16, L2Unit>,
        (Code::Bf16, Form::Ip) => entry::<Bf16, Ip>,
    }
}

/// One term of a code-to-code sum (see [`PairParams`]).
trait PairTerm {
    /// # Safety
    /// The CPU must have this module's features.
    unsafe fn pair_step(acc: __m256, s: __m256, o: __m256, x: __m256, y: __m256) -> __m256;
}

impl PairTerm for L2 {
    #[inline(always)]
    unsafe fn pair_step(acc: __m256, s: __m256, _o: __m256, x: __m256, y: __m256) -> __m256 {
        // SAFETY: register arithmetic.
        unsafe {
            let d = _mm256_mul_ps(_mm256_sub_ps(x, y), s);
            _mm256_fmadd_ps(d, d, acc)
        }
    }
}

impl PairTerm for Ip {
    #[inline(always)]
    unsafe fn pair_step(acc: __m256, s: __m256, o: __m256, x: __m256, y: __m256) -> __m256 {
        // SAFETY: register arithmetic.
        unsafe { _mm256_fmadd_ps(_mm256_fmadd_ps(x, s, o), _mm256_fmadd_ps(y, s, o), acc) }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn pair_imp<D: Dec, P: PairTerm>(p: &PairParams, a: &[u8], b: &[u8]) -> f32 {
    let cs = p.code_size;
    if a.len() < cs || b.len() < cs {
        return f32::INFINITY;
    }
    debug_assert_eq!(p.s.len(), p.dim.next_multiple_of(16));
    let full = p.dim / W;
    let (ps, po, pa, pb) = (p.s.as_ptr(), p.o.as_ptr(), a.as_ptr(), b.as_ptr());
    // SAFETY: `s` and `o` hold `dim.next_multiple_of(16)` values, so the loads at `W * c` for
    // `c <= full` are in bounds; step `c < full` reads bytes `c * BYTES ..+ BYTES` of each
    // code, below `code_size`; the tail copies the remaining `cs - full * BYTES <= BYTES`
    // bytes of each code into zeroed buffers (padding lanes have `s = o = 0`).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 2];
        for c in 0..full {
            let (s, o) = (_mm256_loadu_ps(ps.add(W * c)), _mm256_loadu_ps(po.add(W * c)));
            let (x, y) = (D::dec(pa.add(c * D::BYTES)), D::dec(pb.add(c * D::BYTES)));
            acc[c & 1] = P::pair_step(acc[c & 1], s, o, x, y);
        }
        if !p.dim.is_multiple_of(W) {
            let rest = cs - full * D::BYTES;
            let (mut ba, mut bb) = ([0u8; 32], [0u8; 32]);
            std::ptr::copy_nonoverlapping(pa.add(full * D::BYTES), ba.as_mut_ptr(), rest);
            std::ptr::copy_nonoverlapping(pb.add(full * D::BYTES), bb.as_mut_ptr(), rest);
            let (s, o) = (_mm256_loadu_ps(ps.add(W * full)), _mm256_loadu_ps(po.add(W * full)));
            acc[0] = P::pair_step(acc[0], s, o, D::dec(ba.as_ptr()), D::dec(bb.as_ptr()));
        }
        p.scale * hsum(_mm256_add_ps(acc[0], acc[1]))
    }
}

fn pair_entry<D: Dec, P: PairTerm>(p: &PairParams, a: &[u8], b: &[u8]) -> f32 {
    // SAFETY: this function is only reachable through `pair`, which only `select_checked`
    // hands out, after checking that the CPU has the features.
    unsafe { pair_imp::<D, P>(p, a, b) }
}

fn pair(code: Code, form: Form) -> PairFn {
    match (code, form) {
        (Code::U8, Form::L2 | Form::L2Unit) => pair_entry::<U8, L2>,
        (Code::U8, Form::Ip) => pair_entry::<U8, Ip>,
        (Code::U6, Form::L2 | Form::L2Unit) => pair_entry::<U6, L2>,
        (Code::U6, Form::Ip) => pair_entry::<U6, Ip>,
        (Code::U4, Form::L2 | Form::L2Unit) => pair_entry::<U4, L2>,
        (Code::U4, Form::Ip) => pair_entry::<U4, Ip>,
        (Code::F16, Form::L2 | Form::L2Unit) => pair_entry::<F16, L2>,
        (Code::F16, Form::Ip) => pair_entry::<F16, Ip>,
        (Code::Bf16, Form::L2 | Form::L2Unit) => pair_entry::<Bf16, L2>,
        (Code::Bf16, Form::Ip) => pair_entry::<Bf16, Ip>,
    }
}

/// The 32-bit lane sums of an integer accumulator, added in 64 bits.
///
/// # Safety
/// The CPU must have this module's features.
#[inline(always)]
unsafe fn reduce_i32(acc: __m256i) -> i64 {
    // SAFETY: register arithmetic.
    unsafe {
        let lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc));
        let hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(acc));
        let s = _mm256_add_epi64(lo, hi);
        let s = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
        _mm_cvtsi128_si64(s) + _mm_extract_epi64::<1>(s)
    }
}

/// The exact integer sums of `N` consecutive SQ8 codes at `p` (see [`IntQuery`]), 16
/// components per step.
///
/// # Safety
/// `p` readable for `N * q.dim` bytes, `q` keeping [`IntQuery`]'s invariants, and the CPU
/// having this module's features.
#[inline(always)]
unsafe fn int_n<const IP: bool, const N: usize>(q: &IntQuery, p: *const u8) -> [i64; N] {
    let dim = q.dim;
    let small = q.sum_fits_i32();
    let mut total = [0i64; N];
    // SAFETY: the query arrays hold `dim.next_multiple_of(64)` values, so 16-value loads at
    // any `i < dim` are in bounds; code bytes are read directly only for whole steps below
    // `dim`, the last partial step through a zeroed copy.
    unsafe {
        let mut acc = [_mm256_setzero_si256(); N];
        for (n, i) in (0..dim).step_by(16).enumerate() {
            let (x, m) = if IP {
                (_mm256_loadu_si256(q.w16.as_ptr().add(i).cast()), _mm256_setzero_si256())
            } else {
                (_mm256_loadu_si256(q.r.as_ptr().add(i).cast()), _mm256_loadu_si256(q.m.as_ptr().add(i).cast()))
            };
            for (k, acc) in acc.iter_mut().enumerate() {
                let c = if i + 16 <= dim {
                    _mm_loadu_si128(p.add(k * dim + i).cast())
                } else {
                    let mut buf = [0u8; 16];
                    std::ptr::copy_nonoverlapping(p.add(k * dim + i), buf.as_mut_ptr(), dim - i);
                    _mm_loadu_si128(buf.as_ptr().cast())
                };
                let c = _mm256_cvtepu8_epi16(c);
                let prod = if IP {
                    _mm256_madd_epi16(c, x)
                } else {
                    let d = _mm256_sub_epi16(x, c);
                    _mm256_madd_epi16(_mm256_mullo_epi16(d, m), d)
                };
                *acc = _mm256_add_epi32(*acc, prod);
            }
            if !small && (n + 1) % INT_SEGMENT_STEPS == 0 {
                for (t, acc) in total.iter_mut().zip(acc.iter_mut()) {
                    *t += reduce_i32(*acc);
                    *acc = _mm256_setzero_si256();
                }
            }
        }
        if small && N == 4 {
            // Every lane and every total fits in 32 bits: one combined horizontal sum.
            let h01 = _mm256_hadd_epi32(acc[0], acc[1 % N]);
            let h23 = _mm256_hadd_epi32(acc[2 % N], acc[3 % N]);
            let h = _mm256_hadd_epi32(h01, h23);
            let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            let mut sums = [0i32; 4];
            _mm_storeu_si128(sums.as_mut_ptr().cast(), s);
            for (t, s) in total.iter_mut().zip(sums) {
                *t = i64::from(s);
            }
        } else {
            for (t, acc) in total.iter_mut().zip(acc) {
                *t += reduce_i32(acc);
            }
        }
        total
    }
}

/// Keys of every whole code in `codes` (at most `out.len()`), four codes at a time.
///
/// # Safety
/// The CPU must have this module's features.
#[inline(always)]
unsafe fn int_block_generic<const IP: bool>(q: &IntQuery, codes: &[u8], out: &mut [f32]) {
    let dim = q.dim;
    if dim == 0 {
        return;
    }
    let n = out.len().min(codes.len() / dim);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: codes `i..i + 4` are in `codes`; the rest is the caller's contract.
        let sums = unsafe { int_n::<IP, 4>(q, codes.as_ptr().add(i * dim)) };
        for (o, s) in out[i..i + 4].iter_mut().zip(sums) {
            *o = q.key(s);
        }
        i += 4;
    }
    while i < n {
        // SAFETY: code `i` is in `codes`.
        out[i] = q.key(unsafe { int_n::<IP, 1>(q, codes.as_ptr().add(i * dim)) }[0]);
        i += 1;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn int_block(q: &IntQuery, codes: &[u8], out: &mut [f32]) {
    // SAFETY: the features are this function's.
    unsafe {
        if q.form == Form::Ip {
            int_block_generic::<true>(q, codes, out)
        } else {
            int_block_generic::<false>(q, codes, out)
        }
    }
}

fn int_entry(q: &IntQuery, codes: &[u8], out: &mut [f32]) {
    // SAFETY: only reachable through `int`, which `select_checked` hands out after checking
    // this module's features.
    unsafe { int_block(q, codes, out) }
}

fn int(_form: Form) -> IntBlockFn {
    int_entry
}
