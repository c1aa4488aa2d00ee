//! x86-64 kernels of the scalar quantizers, one module per instruction-set level.

pub(crate) mod avx2;
pub(crate) mod avx512;
