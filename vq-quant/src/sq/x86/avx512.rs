//! AVX-512 (F + BW + VL) kernels: 16 components per step, four codes in flight (each with
//! its own accumulator, so four FMA chains hide the latency), one combined horizontal sum per
//! four codes.
//!
//! Run `cargo bench -p vq-quant --bench sq` with and without `VQ_SIMD=avx2` before changing
//! anything here.

use std::arch::x86_64::*;

use crate::sq::kernels::{
    BlockFn, Code, Form, INT_SEGMENT_STEPS, IntBlockFn, IntQuery, PairFn, PairParams, Prepared, SelectBlock, SelectInt,
    SelectPair,
};

/// `true` when this CPU has every feature the kernels of this module use.
pub(crate) fn is_available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// The kernel selector of this level. Panics if the CPU lacks the features: callers check
/// [`is_available`] first.
pub(crate) fn select_checked() -> (SelectBlock, SelectPair, SelectInt) {
    assert!(is_available(), "AVX-512 kernels requested on a CPU without AVX-512");
    (select, pair, if is_x86_feature_detected!("avx512vnni") { int_vnni } else { int_plain })
}

/// Components per step.
const W: usize = 16;

/// Decodes 16 components starting at `p` into f32 lanes.
trait Dec {
    /// Bytes 16 components take.
    const BYTES: usize;
    /// # Safety
    /// `p` must be readable for [`Dec::BYTES`] bytes, and the CPU must have this module's
    /// features.
    unsafe fn dec(p: *const u8) -> __m512;
}

struct U8;
struct U6;
struct U4;
struct F16;
struct Bf16;

impl Dec for U8 {
    const BYTES: usize = 16;
    #[inline(always)]
    unsafe fn dec(p: *const u8) -> __m512 {
        // SAFETY: 16 readable bytes (the caller's contract).
        unsafe { _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast()))) }
    }
}

/// `pshufb` control for [`U6`]: in 128-bit lane `L`, every 32-bit element gets the three
/// bytes `3L..3L+3` of the group holding components `4L..4L+4` (and a zero byte).
static U6_SHUFFLE: [i8; 64] = {
    let mut t = [0i8; 64];
    let mut i = 0;
    while i < 64 {
        let (lane, byte) = (i / 16, i % 4);
        t[i] = if byte == 3 { -1 } else { (3 * lane + byte) as i8 };
        i += 1;
    }
    t
};
/// Right shifts that bring component `4L + k` of a 24-bit group to the bottom.
static U6_SHIFTS: [u32; 16] = [0, 6, 12, 18, 0, 6, 12, 18, 0, 6, 12, 18, 0, 6, 12, 18];

impl Dec for U6 {
    const BYTES: usize = 12;
    #[inline(always)]
    unsafe fn dec(p: *const u8) -> __m512 {
        // SAFETY: the masked load reads only the 12 bytes the caller guarantees; the rest is
        // register arithmetic and loads of the statics above.
        unsafe {
            let x = _mm_maskz_loadu_epi8(0x0fff, p.cast());
            let groups = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(x), _mm512_loadu_si512(U6_SHUFFLE.as_ptr().cast()));
            let shifted = _mm512_srlv_epi32(groups, _mm512_loadu_si512(U6_SHIFTS.as_ptr().cast()));
            _mm512_cvtepi32_ps(_mm512_and_si512(shifted, _mm512_set1_epi32(63)))
        }
    }
}

impl Dec for U4 {
    const BYTES: usize = 8;
    #[inline(always)]
    unsafe fn dec(p: *const u8) -> __m512 {
        // SAFETY: 8 readable bytes; the rest is register arithmetic. Each byte `0xHL` is
        // widened to the u16 `0x00HL`, then spread to `0x0H0L`: the bytes `L, H` in order.
        unsafe {
            let x = _mm_cvtepu8_epi16(_mm_loadl_epi64(p.cast()));
            let nibbles = _mm_and_si128(_mm_or_si128(x, _mm_slli_epi16::<4>(x)), _mm_set1_epi16(0x0f0f));
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(nibbles))
        }
    }
}

impl Dec for F16 {
    const BYTES: usize = 32;
    #[inline(always)]
    unsafe fn dec(p: *const u8) -> __m512 {
        // SAFETY: 32 readable bytes.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
}

impl Dec for Bf16 {
    const BYTES: usize = 32;
    #[inline(always)]
    unsafe fn dec(p: *const u8) -> __m512 {
        // SAFETY: 32 readable bytes. bf16 is the upper half of an f32: widen and shift.
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast())))) }
    }
}

/// One term of the sum, for full steps and for the zero-padded tail step.
trait Term {
    const USES_B: bool;
    /// # Safety
    /// The CPU must have this module's features.
    unsafe fn step(acc: __m512, a: __m512, b: __m512, x: __m512) -> __m512;
    /// # Safety
    /// As [`Term::step`].
    unsafe fn tail(acc: __m512, a: __m512, b: __m512, x: __m512) -> __m512 {
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
    unsafe fn step(acc: __m512, a: __m512, b: __m512, x: __m512) -> __m512 {
        // SAFETY: register arithmetic.
        unsafe {
            let d = _mm512_fnmadd_ps(x, b, a);
            _mm512_fmadd_ps(d, d, acc)
        }
    }
}

impl Term for L2Unit {
    const USES_B: bool = false;
    #[inline(always)]
    unsafe fn step(acc: __m512, a: __m512, _b: __m512, x: __m512) -> __m512 {
        // SAFETY: register arithmetic.
        unsafe {
            let d = _mm512_sub_ps(a, x);
            _mm512_fmadd_ps(d, d, acc)
        }
    }
    #[inline(always)]
    unsafe fn tail(acc: __m512, a: __m512, b: __m512, x: __m512) -> __m512 {
        // SAFETY: register arithmetic. `b` is 1 on real lanes and 0 on padding lanes.
        unsafe { L2::step(acc, a, b, x) }
    }
}

impl Term for Ip {
    const USES_B: bool = false;
    #[inline(always)]
    unsafe fn step(acc: __m512, a: __m512, _b: __m512, x: __m512) -> __m512 {
        // SAFETY: register arithmetic.
        unsafe { _mm512_fmadd_ps(a, x, acc) }
    }
}

/// The unreduced sums of `N` consecutive codes starting at `p`.
///
/// # Safety
/// `p` must be readable for `N * q.code_size` bytes, `q` must keep [`Prepared`]'s
/// invariants, and the CPU must have this module's features.
#[inline(always)]
unsafe fn sums<D: Dec, T: Term, const N: usize>(q: &Prepared, p: *const u8) -> [__m512; N] {
    let cs = q.code_size;
    let full = q.dim / W;
    let (pa, pb) = (q.a.as_ptr(), q.b.as_ptr());
    // SAFETY: `a` and `b` hold `dim.next_multiple_of(16)` values, so every 16-lane load at
    // `16 * c` for `c <= full` (the tail step included, when `dim % 16 != 0`) is in bounds.
    // Step `c < full` of code `k` reads bytes `k * cs + c * BYTES ..+ BYTES`, all below
    // `k * cs + code_size(16 * full) <= (k + 1) * cs`. The tail copies the code's remaining
    // `cs - full * BYTES <= BYTES` bytes into a zeroed buffer of 64 bytes and decodes that.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); N];
        for c in 0..full {
            let a = _mm512_loadu_ps(pa.add(W * c));
            let b = if T::USES_B { _mm512_loadu_ps(pb.add(W * c)) } else { _mm512_setzero_ps() };
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = D::dec(p.add(k * cs + c * D::BYTES));
                *acc = T::step(*acc, a, b, x);
            }
        }
        if !q.dim.is_multiple_of(W) {
            let a = _mm512_loadu_ps(pa.add(W * full));
            let b = _mm512_loadu_ps(pb.add(W * full));
            let rest = cs - full * D::BYTES;
            for (k, acc) in acc.iter_mut().enumerate() {
                let mut buf = [0u8; 64];
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
unsafe fn hsum4(acc: [__m512; 4]) -> __m128 {
    // SAFETY: register arithmetic.
    unsafe {
        let half = |v: __m512| {
            _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))))
        };
        let h01 = _mm256_hadd_ps(half(acc[0]), half(acc[1]));
        let h23 = _mm256_hadd_ps(half(acc[2]), half(acc[3]));
        let h = _mm256_hadd_ps(h01, h23);
        _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h))
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn block_imp<D: Dec, T: Term>(q: &Prepared, codes: &[u8], out: &mut [f32]) {
    let cs = q.code_size;
    if cs == 0 {
        return;
    }
    debug_assert_eq!(q.a.len(), q.dim.next_multiple_of(W));
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
        let s = unsafe { _mm512_reduce_add_ps(sums::<D, T, 1>(q, base.add(i * cs))[0]) };
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
    unsafe fn pair_step(acc: __m512, s: __m512, o: __m512, x: __m512, y: __m512) -> __m512;
}

impl PairTerm for L2 {
    #[inline(always)]
    unsafe fn pair_step(acc: __m512, s: __m512, _o: __m512, x: __m512, y: __m512) -> __m512 {
        // SAFETY: register arithmetic.
        unsafe {
            let d = _mm512_mul_ps(_mm512_sub_ps(x, y), s);
            _mm512_fmadd_ps(d, d, acc)
        }
    }
}

impl PairTerm for Ip {
    #[inline(always)]
    unsafe fn pair_step(acc: __m512, s: __m512, o: __m512, x: __m512, y: __m512) -> __m512 {
        // SAFETY: register arithmetic.
        unsafe { _mm512_fmadd_ps(_mm512_fmadd_ps(x, s, o), _mm512_fmadd_ps(y, s, o), acc) }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
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
        let mut acc = [_mm512_setzero_ps(); 2];
        for c in 0..full {
            let (s, o) = (_mm512_loadu_ps(ps.add(W * c)), _mm512_loadu_ps(po.add(W * c)));
            let (x, y) = (D::dec(pa.add(c * D::BYTES)), D::dec(pb.add(c * D::BYTES)));
            acc[c & 1] = P::pair_step(acc[c & 1], s, o, x, y);
        }
        if !p.dim.is_multiple_of(W) {
            let rest = cs - full * D::BYTES;
            let (mut ba, mut bb) = ([0u8; 64], [0u8; 64]);
            std::ptr::copy_nonoverlapping(pa.add(full * D::BYTES), ba.as_mut_ptr(), rest);
            std::ptr::copy_nonoverlapping(pb.add(full * D::BYTES), bb.as_mut_ptr(), rest);
            let (s, o) = (_mm512_loadu_ps(ps.add(W * full)), _mm512_loadu_ps(po.add(W * full)));
            acc[0] = P::pair_step(acc[0], s, o, D::dec(ba.as_ptr()), D::dec(bb.as_ptr()));
        }
        p.scale * _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
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
unsafe fn reduce_i32(acc: __m512i) -> i64 {
    // SAFETY: register arithmetic.
    unsafe {
        let lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc));
        let hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(acc));
        _mm512_reduce_add_epi64(_mm512_add_epi64(lo, hi))
    }
}

/// The integer multiply-accumulate steps: with VNNI (`vpdpwssd`, `vpdpbusd`) or without.
trait IntDot {
    /// `acc + Σ pairs e·d` (i16 lanes into i32 lanes).
    ///
    /// # Safety
    /// The CPU must have this module's features (and VNNI for the VNNI variant).
    unsafe fn l2(acc: __m512i, e: __m512i, d: __m512i) -> __m512i;
    /// `acc + Σ c·w` over 64 u8 codes `c` and i8 weights at `w8` (i16 copies at `w16`).
    ///
    /// # Safety
    /// As [`IntDot::l2`]; `w8` readable for 64 bytes and `w16` for 64 values.
    unsafe fn ip(acc: __m512i, c: __m512i, w8: *const i8, w16: *const i16) -> __m512i;
}

struct Vnni;
struct Plain;

impl IntDot for Vnni {
    #[inline(always)]
    unsafe fn l2(acc: __m512i, e: __m512i, d: __m512i) -> __m512i {
        // SAFETY: register arithmetic (VNNI checked by the caller's contract).
        unsafe { _mm512_dpwssd_epi32(acc, e, d) }
    }
    #[inline(always)]
    unsafe fn ip(acc: __m512i, c: __m512i, w8: *const i8, _w16: *const i16) -> __m512i {
        // SAFETY: 64 readable bytes at `w8`.
        unsafe { _mm512_dpbusd_epi32(acc, c, _mm512_loadu_si512(w8.cast())) }
    }
}

impl IntDot for Plain {
    #[inline(always)]
    unsafe fn l2(acc: __m512i, e: __m512i, d: __m512i) -> __m512i {
        // SAFETY: register arithmetic.
        unsafe { _mm512_add_epi32(acc, _mm512_madd_epi16(e, d)) }
    }
    #[inline(always)]
    unsafe fn ip(acc: __m512i, c: __m512i, _w8: *const i8, w16: *const i16) -> __m512i {
        // SAFETY: 64 readable i16 at `w16`; the rest is register arithmetic.
        unsafe {
            let lo = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(c));
            let hi = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64::<1>(c));
            let a = _mm512_madd_epi16(lo, _mm512_loadu_si512(w16.cast()));
            let b = _mm512_madd_epi16(hi, _mm512_loadu_si512(w16.add(32).cast()));
            _mm512_add_epi32(acc, _mm512_add_epi32(a, b))
        }
    }
}

/// The exact integer sums of `N` consecutive SQ8 codes at `p` (see [`IntQuery`]).
///
/// # Safety
/// `p` readable for `N * q.dim` bytes, `q` keeping [`IntQuery`]'s invariants, and the CPU
/// having this module's features (and VNNI for [`Vnni`]).
#[inline(always)]
unsafe fn int_n<I: IntDot, const N: usize>(q: &IntQuery, p: *const u8) -> [i64; N] {
    let dim = q.dim;
    let mut total = [0i64; N];
    let small = q.sum_fits_i32();
    // SAFETY: the query arrays hold `dim.next_multiple_of(64)` values, so loads at any step
    // below `dim.div_ceil(step width)` are in bounds; code bytes are read directly only for
    // whole steps below `dim`, the last partial step through a zeroed copy.
    unsafe {
        let mut acc = [_mm512_setzero_si512(); N];
        let width = if q.form == Form::Ip { 64 } else { 32 };
        for (n, i) in (0..dim).step_by(width).enumerate() {
            if q.form == Form::Ip {
                let (w8, w16) = (q.w.as_ptr().add(i), q.w16.as_ptr().add(i));
                for (k, acc) in acc.iter_mut().enumerate() {
                    let c = if i + 64 <= dim {
                        _mm512_loadu_si512(p.add(k * dim + i).cast())
                    } else {
                        let mut buf = [0u8; 64];
                        std::ptr::copy_nonoverlapping(p.add(k * dim + i), buf.as_mut_ptr(), dim - i);
                        _mm512_loadu_si512(buf.as_ptr().cast())
                    };
                    *acc = I::ip(*acc, c, w8, w16);
                }
            } else {
                let r = _mm512_loadu_si512(q.r.as_ptr().add(i).cast());
                let m = _mm512_loadu_si512(q.m.as_ptr().add(i).cast());
                for (k, acc) in acc.iter_mut().enumerate() {
                    let c = if i + 32 <= dim {
                        _mm256_loadu_si256(p.add(k * dim + i).cast())
                    } else {
                        let mut buf = [0u8; 32];
                        std::ptr::copy_nonoverlapping(p.add(k * dim + i), buf.as_mut_ptr(), dim - i);
                        _mm256_loadu_si256(buf.as_ptr().cast())
                    };
                    let d = _mm512_sub_epi16(r, _mm512_cvtepu8_epi16(c));
                    *acc = I::l2(*acc, _mm512_mullo_epi16(d, m), d);
                }
            }
            if !small && (n + 1) % INT_SEGMENT_STEPS == 0 {
                for (t, acc) in total.iter_mut().zip(acc.iter_mut()) {
                    *t += reduce_i32(*acc);
                    *acc = _mm512_setzero_si512();
                }
            }
        }
        if small && N == 4 {
            // Every lane and every total fits in 32 bits: one combined horizontal sum.
            let half = |v: __m512i| _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
            let h01 = _mm256_hadd_epi32(half(acc[0]), half(acc[1 % N]));
            let h23 = _mm256_hadd_epi32(half(acc[2 % N]), half(acc[3 % N]));
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
/// As [`int_n`] (the code bounds are checked here).
#[inline(always)]
unsafe fn int_block_generic<I: IntDot>(q: &IntQuery, codes: &[u8], out: &mut [f32]) {
    let dim = q.dim;
    if dim == 0 {
        return;
    }
    let n = out.len().min(codes.len() / dim);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: codes `i..i + 4` are in `codes`; the rest is the caller's contract.
        let sums = unsafe { int_n::<I, 4>(q, codes.as_ptr().add(i * dim)) };
        for (o, s) in out[i..i + 4].iter_mut().zip(sums) {
            *o = q.key(s);
        }
        i += 4;
    }
    while i < n {
        // SAFETY: code `i` is in `codes`.
        out[i] = q.key(unsafe { int_n::<I, 1>(q, codes.as_ptr().add(i * dim)) }[0]);
        i += 1;
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c,avx512vnni")]
fn int_block_vnni(q: &IntQuery, codes: &[u8], out: &mut [f32]) {
    // SAFETY: the features (VNNI included) are this function's.
    unsafe { int_block_generic::<Vnni>(q, codes, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn int_block_plain(q: &IntQuery, codes: &[u8], out: &mut [f32]) {
    // SAFETY: the features are this function's.
    unsafe { int_block_generic::<Plain>(q, codes, out) }
}

fn int_entry_vnni(q: &IntQuery, codes: &[u8], out: &mut [f32]) {
    // SAFETY: only reachable through `int_vnni`, which `select_checked` hands out after
    // checking this module's features and VNNI.
    unsafe { int_block_vnni(q, codes, out) }
}

fn int_entry_plain(q: &IntQuery, codes: &[u8], out: &mut [f32]) {
    // SAFETY: only reachable through `int_plain`, which `select_checked` hands out after
    // checking this module's features.
    unsafe { int_block_plain(q, codes, out) }
}

fn int_vnni(_form: Form) -> IntBlockFn {
    int_entry_vnni
}

fn int_plain(_form: Form) -> IntBlockFn {
    int_entry_plain
}
