//! x86-64 kernels, one module per instruction-set level.

/// Makes a safe entry point for a `#[target_feature]` kernel of the module that uses it.
macro_rules! entry {
    ($name:ident => $imp:ident ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: this function is only reachable through the module's kernel table, built
            // by its `kernels()`, whose contract is that the CPU has the features `$imp` is
            // compiled for.
            unsafe { $imp($($arg),*) }
        }
    };
}

pub(crate) mod avx2;
pub(crate) mod avx512;
