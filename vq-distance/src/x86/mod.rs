//! x86-64 kernels, one module per instruction-set level.

pub(crate) mod avx2;
pub(crate) mod avx512;
