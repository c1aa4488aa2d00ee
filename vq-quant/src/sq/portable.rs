//! The portable kernels: the scalar twin of every SIMD kernel, and what runs where no SIMD
//! level is available (or `VQ_SIMD=portable` asks for it).

use super::kernels::{
    BlockFn, Code, Form, IntBlockFn, IntQuery, PairFn, PairParams, Prepared, reference_int, reference_one,
    reference_pair,
};

/// Scores each code with [`reference_one`], specialized for one code layout and form.
#[inline(always)]
fn block(code_kind: Code, form: Form, q: &Prepared, codes: &[u8], out: &mut [f32]) {
    debug_assert!(q.code == code_kind && q.form == form);
    if q.code_size == 0 {
        return;
    }
    for (o, code) in out.iter_mut().zip(codes.chunks_exact(q.code_size)) {
        *o = reference_one(code_kind, form, q, code);
    }
}

macro_rules! kernels {
    ($($name:ident => $code:ident, $form:ident;)*) => {
        $(
            fn $name(q: &Prepared, codes: &[u8], out: &mut [f32]) {
                block(Code::$code, Form::$form, q, codes, out)
            }
        )*

        /// The portable code-to-code kernel for `code` and `form`.
        pub(crate) fn pair(code: Code, form: Form) -> PairFn {
            mod pairs {
                use super::*;
                $(
                    pub(super) fn $name(p: &PairParams, a: &[u8], b: &[u8]) -> f32 {
                        if a.len() < p.code_size || b.len() < p.code_size {
                            return f32::INFINITY;
                        }
                        reference_pair(Code::$code, Form::$form, p, a, b)
                    }
                )*
            }
            match (code, form) {
                $((Code::$code, Form::$form) => pairs::$name,)*
            }
        }

        /// The portable kernel for `code` and `form`.
        pub(crate) fn select(code: Code, form: Form) -> BlockFn {
            match (code, form) {
                $((Code::$code, Form::$form) => $name,)*
            }
        }
    };
}

kernels! {
    u8_l2 => U8, L2; u8_l2u => U8, L2Unit; u8_ip => U8, Ip;
    u6_l2 => U6, L2; u6_l2u => U6, L2Unit; u6_ip => U6, Ip;
    u4_l2 => U4, L2; u4_l2u => U4, L2Unit; u4_ip => U4, Ip;
    f16_l2 => F16, L2; f16_l2u => F16, L2Unit; f16_ip => F16, Ip;
    bf16_l2 => Bf16, L2; bf16_l2u => Bf16, L2Unit; bf16_ip => Bf16, Ip;
}

fn int_block(q: &IntQuery, codes: &[u8], out: &mut [f32]) {
    if q.dim == 0 {
        return;
    }
    for (o, code) in out.iter_mut().zip(codes.chunks_exact(q.dim)) {
        *o = q.key(reference_int(q, code));
    }
}

/// The portable integer kernel (one for both forms: [`reference_int`] branches once per code).
pub(crate) fn int(_form: Form) -> IntBlockFn {
    int_block
}
