//! The scalar quantizers' asymmetric-distance kernels: what they compute, and the table of
//! one SIMD level's implementations, chosen once per process.
//!
//! Every kernel scores a prepared query ([`Prepared`]) against a block of codes. The query is
//! folded so that the inner loop only decodes a code component `c_j` (an integer level, or the
//! f16/bf16 value) and does one or two fused multiply-adds:
//!
//! | form | key |
//! |---|---|
//! | [`Form::L2`] | `offset + scale · Σ (a_j − c_j·b_j)²` |
//! | [`Form::L2Unit`] | `offset + scale · Σ (a_j − c_j)²` (no per-dimension scale to load) |
//! | [`Form::Ip`] | `offset + scale · Σ a_j·c_j` |
//!
//! `a` and `b` are padded with zeros to a multiple of [`PAD`] so that a SIMD tail chunk adds
//! exactly zero for the padding lanes, whatever bits the code holds there.

use std::sync::OnceLock;

use vq_distance::SimdLevel;

/// The component layout a kernel decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// One byte per component.
    U8,
    /// 6 bits per component, 4 components in 3 bytes (component `j` at bit `6j`).
    U6,
    /// 4 bits per component, component `2i` in the low nibble of byte `i`.
    U4,
    /// IEEE half precision, little-endian.
    F16,
    /// bfloat16, little-endian.
    Bf16,
}

impl Code {
    /// Bytes of a code of `dim` components.
    pub(crate) fn code_size(self, dim: usize) -> usize {
        match self {
            Code::U8 => dim,
            Code::U6 => (dim * 6).div_ceil(8),
            Code::U4 => dim.div_ceil(2),
            Code::F16 | Code::Bf16 => 2 * dim,
        }
    }

    /// Component `j` of `code` (the scalar decoder every SIMD decoder is tested against).
    #[inline(always)]
    pub(crate) fn component(self, code: &[u8], j: usize) -> f32 {
        match self {
            Code::U8 => f32::from(code[j]),
            Code::U6 => {
                let bit = 6 * j;
                let lo = code[bit / 8] as u32;
                let hi = code.get(bit / 8 + 1).copied().unwrap_or(0) as u32;
                (((lo | (hi << 8)) >> (bit % 8)) & 63) as f32
            }
            Code::U4 => f32::from((code[j / 2] >> ((j & 1) * 4)) & 15),
            Code::F16 => half::f16::from_le_bytes([code[2 * j], code[2 * j + 1]]).to_f32(),
            Code::Bf16 => half::bf16::from_le_bytes([code[2 * j], code[2 * j + 1]]).to_f32(),
        }
    }
}

/// Which sum a kernel computes (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `Σ (a_j − c_j·b_j)²`.
    L2,
    /// `Σ (a_j − c_j)²`.
    L2Unit,
    /// `Σ a_j·c_j`.
    Ip,
}

/// Lanes the query arrays are padded to (the widest kernel's chunk).
pub(crate) const PAD: usize = 16;

/// A query folded for one quantizer: the kernels' only input besides the codes.
///
/// Invariants the kernels rely on for memory safety (kept by [`Prepared::new`], the only
/// constructor): `a.len() == b.len() == dim.next_multiple_of(PAD)`, and
/// `code_size == code.code_size(dim)`.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) code: Code,
    pub(crate) form: Form,
    pub(crate) dim: usize,
    pub(crate) code_size: usize,
    pub(crate) a: Vec<f32>,
    pub(crate) b: Vec<f32>,
    pub(crate) scale: f32,
    pub(crate) offset: f32,
}

impl Prepared {
    /// `a` and `b` hold `dim` values each (`b` is ignored by [`Form::Ip`]; for
    /// [`Form::L2Unit`] it must be all ones: SIMD tails use it to zero the padding lanes).
    pub(crate) fn new(code: Code, form: Form, mut a: Vec<f32>, mut b: Vec<f32>, scale: f32, offset: f32) -> Self {
        let dim = a.len();
        debug_assert_eq!(b.len(), dim);
        b.resize(dim, 0.0);
        a.resize(dim.next_multiple_of(PAD), 0.0);
        b.resize(dim.next_multiple_of(PAD), 0.0);
        Prepared { code, form, dim, code_size: code.code_size(dim), a, b, scale, offset }
    }
}

/// One level's block kernel: `out[i]` = the key of code `i` of `codes` (`code_size` bytes
/// each). Scores `min(out.len(), codes.len() / code_size)` codes and leaves the rest of `out`
/// untouched.
pub(crate) type BlockFn = fn(q: &Prepared, codes: &[u8], out: &mut [f32]);

/// The parameters of a code-to-code distance: `key = scale · Σ ((c_j − c'_j)·s_j)²` for L2
/// ([`Form::L2`]), `key = scale · Σ (o_j + c_j·s_j)(o_j + c'_j·s_j)` for inner product
/// ([`Form::Ip`], `scale = −1`).
///
/// Invariants the kernels rely on (kept by [`PairParams::new`]): `s.len() == o.len() ==
/// dim.next_multiple_of(PAD)` with zeros in the padding, `code_size == code.code_size(dim)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PairParams {
    pub(crate) code: Code,
    pub(crate) form: Form,
    pub(crate) dim: usize,
    pub(crate) code_size: usize,
    pub(crate) s: Vec<f32>,
    pub(crate) o: Vec<f32>,
    pub(crate) scale: f32,
}

impl PairParams {
    /// `s` and `o` hold `dim` values each; `form` is [`Form::L2`] or [`Form::Ip`].
    pub(crate) fn new(code: Code, form: Form, mut s: Vec<f32>, mut o: Vec<f32>) -> Self {
        let dim = s.len();
        debug_assert_eq!(o.len(), dim);
        debug_assert_ne!(form, Form::L2Unit);
        o.resize(dim, 0.0);
        s.resize(dim.next_multiple_of(PAD), 0.0);
        o.resize(dim.next_multiple_of(PAD), 0.0);
        let scale = if form == Form::Ip { -1.0 } else { 1.0 };
        PairParams { code, form, dim, code_size: code.code_size(dim), s, o, scale }
    }

    /// Bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        (self.s.capacity() + self.o.capacity()) * std::mem::size_of::<f32>()
    }
}

/// One level's code-to-code kernel. `a` and `b` hold at least `code_size` bytes each.
pub(crate) type PairFn = fn(p: &PairParams, a: &[u8], b: &[u8]) -> f32;

/// A level's choice of [`BlockFn`] per code layout and form.
pub(crate) type SelectBlock = fn(Code, Form) -> BlockFn;
/// A level's choice of [`PairFn`] per code layout and form.
pub(crate) type SelectPair = fn(Code, Form) -> PairFn;

/// Components the integer query arrays are padded to (the widest integer step).
pub(crate) const IPAD: usize = 64;

/// Integer steps a kernel may accumulate in 32-bit lanes before widening: each lane gains at
/// most `2 · 127 · 255²` (L2, two products per lane per step) or `4 · 255 · 127` (inner
/// product) per step, and `128 · 2 · 127 · 255² < 2³¹`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // the integer kernels are x86-64 only
pub(crate) const INT_SEGMENT_STEPS: usize = 128;

/// A query quantized to 8-bit integers against SQ8 codes:
///
/// | form | key |
/// |---|---|
/// | [`Form::L2`] | `offset + scale · Σ m_j (r_j − c_j)²` |
/// | [`Form::Ip`] | `offset + scale · Σ w_j c_j` |
///
/// The integer sum is exact (64-bit across segments); the key is then computed in f64 and
/// rounded, the same way at every level, so every level gives bit-identical keys.
///
/// Invariants (kept by [`IntQuery::new`]): every array holds `dim.next_multiple_of(IPAD)`
/// values with zeros in the padding; `0 ≤ r_j ≤ 255`, `0 ≤ m_j ≤ 127`, `|w_j| ≤ 127`.
#[derive(Debug, Clone)]
pub(crate) struct IntQuery {
    pub(crate) form: Form,
    pub(crate) dim: usize,
    pub(crate) r: Vec<i16>,
    pub(crate) m: Vec<i16>,
    pub(crate) w: Vec<i8>,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) w16: Vec<i16>,
    pub(crate) scale: f64,
    pub(crate) offset: f64,
}

impl IntQuery {
    /// `r`/`m` for [`Form::L2`] or `w` for [`Form::Ip`] (the other ones empty); values outside
    /// the invariant's ranges are clamped.
    pub(crate) fn new(form: Form, dim: usize, r: &[i16], m: &[i16], w: &[i8], scale: f64, offset: f64) -> Self {
        let padded = dim.next_multiple_of(IPAD);
        let fill = |v: &[i16], lo: i16, hi: i16| {
            let mut out: Vec<i16> = v.iter().take(dim).map(|&x| x.clamp(lo, hi)).collect();
            out.resize(padded, 0);
            out
        };
        let (r, m) =
            if form == Form::Ip { (vec![0; padded], vec![0; padded]) } else { (fill(r, 0, 255), fill(m, 0, 127)) };
        let mut w: Vec<i8> =
            if form == Form::Ip { w.iter().take(dim).map(|&x| x.max(-127)).collect() } else { Vec::new() };
        w.resize(padded, 0);
        let w16 = w.iter().map(|&x| i16::from(x)).collect();
        IntQuery { form, dim, r, m, w, w16, scale, offset }
    }

    /// Whether a whole code's sum fits in 32 bits (`dim · 127 · 255² < 2³¹` for L2,
    /// `dim · 255 · 127 < 2³¹` for inner product), so kernels may add lanes in 32 bits.
    #[inline(always)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn sum_fits_i32(&self) -> bool {
        let per_dim: u64 = if self.form == Form::Ip { 255 * 127 } else { 127 * 255 * 255 };
        (self.dim as u64).saturating_mul(per_dim) < (1u64 << 31)
    }

    /// The key from an exact integer sum.
    #[inline(always)]
    pub(crate) fn key(&self, sum: i64) -> f32 {
        (self.offset + self.scale * sum as f64) as f32
    }
}

/// One level's integer kernel: like [`BlockFn`], over SQ8 codes of `dim` bytes.
pub(crate) type IntBlockFn = fn(q: &IntQuery, codes: &[u8], out: &mut [f32]);
/// A level's choice of [`IntBlockFn`] per form ([`Form::L2`] or [`Form::Ip`]).
pub(crate) type SelectInt = fn(Form) -> IntBlockFn;

/// The exact integer sum of [`IntQuery`] for one code, plain Rust.
#[inline(always)]
pub(crate) fn reference_int(q: &IntQuery, code: &[u8]) -> i64 {
    let code = &code[..q.dim];
    if q.form == Form::Ip {
        code.iter().zip(&q.w).map(|(&c, &w)| i64::from(c) * i64::from(w)).sum()
    } else {
        code.iter()
            .zip(q.r.iter().zip(&q.m))
            .map(|(&c, (&r, &m))| {
                let d = i64::from(r) - i64::from(c);
                i64::from(m) * d * d
            })
            .sum()
    }
}

/// The kernels of one SIMD level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqKernels {
    pub(crate) level: SimdLevel,
    pub(crate) select: SelectBlock,
    pub(crate) pair: SelectPair,
    pub(crate) int: SelectInt,
}

impl SqKernels {
    /// The kernels of the level vq-distance uses in this process (`VQ_SIMD` applies).
    pub(crate) fn active() -> &'static SqKernels {
        static ACTIVE: OnceLock<SqKernels> = OnceLock::new();
        ACTIVE.get_or_init(|| {
            let wanted = vq_distance::simd_level();
            // vq-distance only reports levels the CPU has; fall back one level at a time in
            // case our feature set ever differs from its.
            [wanted, SimdLevel::Avx2, SimdLevel::Portable]
                .into_iter()
                .filter(|&l| l <= wanted)
                .find_map(SqKernels::for_level)
                .unwrap_or_else(SqKernels::portable)
        })
    }

    /// The kernels of `level`, or `None` if this CPU cannot run them (or none exist for it:
    /// NEON uses the portable kernels).
    pub(crate) fn for_level(level: SimdLevel) -> Option<SqKernels> {
        match level {
            SimdLevel::Portable => Some(SqKernels::portable()),
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 if super::x86::avx2::is_available() => {
                let (select, pair, int) = super::x86::avx2::select_checked();
                Some(SqKernels { level, select, pair, int })
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 if super::x86::avx512::is_available() => {
                let (select, pair, int) = super::x86::avx512::select_checked();
                Some(SqKernels { level, select, pair, int })
            }
            _ => None,
        }
    }

    fn portable() -> SqKernels {
        SqKernels {
            level: SimdLevel::Portable,
            select: super::portable::select,
            pair: super::portable::pair,
            int: super::portable::int,
        }
    }
}

/// The reference sum every kernel must match (up to float summation order): plain Rust, one
/// component at a time. `code_kind` and `form` are passed separately from `q` so that a
/// caller with constants gets a specialized loop after inlining.
#[inline(always)]
pub(crate) fn reference_one(code_kind: Code, form: Form, q: &Prepared, code: &[u8]) -> f32 {
    let mut acc = [0f32; 4];
    for j in 0..q.dim {
        let c = code_kind.component(code, j);
        let term = match form {
            Form::L2 => {
                let d = q.a[j] - c * q.b[j];
                d * d
            }
            Form::L2Unit => {
                let d = q.a[j] - c;
                d * d
            }
            Form::Ip => q.a[j] * c,
        };
        acc[j % 4] += term;
    }
    q.offset + q.scale * ((acc[0] + acc[1]) + (acc[2] + acc[3]))
}

/// The reference code-to-code key (see [`PairParams`]), plain Rust.
#[inline(always)]
pub(crate) fn reference_pair(code_kind: Code, form: Form, p: &PairParams, a: &[u8], b: &[u8]) -> f32 {
    let mut acc = [0f32; 4];
    for j in 0..p.dim {
        let (x, y) = (code_kind.component(a, j), code_kind.component(b, j));
        let term = match form {
            Form::L2 | Form::L2Unit => {
                let d = (x - y) * p.s[j];
                d * d
            }
            Form::Ip => (p.o[j] + x * p.s[j]) * (p.o[j] + y * p.s[j]),
        };
        acc[j % 4] += term;
    }
    p.scale * ((acc[0] + acc[1]) + (acc[2] + acc[3]))
}
