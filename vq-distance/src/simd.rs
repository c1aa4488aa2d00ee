//! Which SIMD instruction set the kernels use, decided once per process.
//!
//! Detection runs on first use and is cached in a `OnceLock`; no kernel checks CPU features
//! per call. `VQ_SIMD=portable|avx2|avx512|neon` forces a *lower* level (a request above what
//! the CPU has is clamped to the best available), which is how tests and benchmarks exercise
//! every path on one machine.

use std::sync::OnceLock;

use half::{bf16, f16};

/// An instruction-set level with its own kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Portable Rust (the `wide` crate): runs everywhere.
    Portable,
    /// aarch64 Advanced SIMD.
    Neon,
    /// x86-64 AVX2 + FMA (+ F16C).
    Avx2,
    /// x86-64 AVX-512 F + BW (+ VL).
    Avx512,
}

impl SimdLevel {
    /// Lowercase name, the same spelling `VQ_SIMD` accepts.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Neon => "neon",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// Parses the `VQ_SIMD` spelling.
    pub fn from_name(name: &str) -> Option<SimdLevel> {
        match name.trim().to_ascii_lowercase().as_str() {
            "portable" | "scalar" | "none" => Some(SimdLevel::Portable),
            "neon" => Some(SimdLevel::Neon),
            "avx2" => Some(SimdLevel::Avx2),
            "avx512" | "avx-512" => Some(SimdLevel::Avx512),
            _ => None,
        }
    }

    /// Every level this CPU can run, lowest first.
    pub fn available() -> Vec<SimdLevel> {
        let mut levels = vec![SimdLevel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if crate::x86::avx2::is_available() {
                levels.push(SimdLevel::Avx2);
            }
            if crate::x86::avx512::is_available() {
                levels.push(SimdLevel::Avx512);
            }
        }
        #[cfg(target_arch = "aarch64")]
        levels.push(SimdLevel::Neon);
        levels
    }

    /// The best level this CPU can run.
    pub fn detected() -> SimdLevel {
        *Self::available().last().expect("portable is always available")
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The level the kernels of this process use: the detected one, or lower if `VQ_SIMD` asks.
pub fn simd_level() -> SimdLevel {
    kernels().level
}

/// Float element kernels of one level.
pub(crate) struct FloatKernels<T> {
    pub(crate) l2_sq: fn(&[T], &[T]) -> f32,
    pub(crate) dot: fn(&[T], &[T]) -> f32,
    /// `[a·b, a·a, b·b]` in one pass.
    pub(crate) cos_parts: fn(&[T], &[T]) -> [f32; 3],
}

impl<T> FloatKernels<T> {
    /// `a·a`.
    #[inline]
    pub(crate) fn dot_sq(&self, a: &[T]) -> f32 {
        (self.dot)(a, a)
    }
}

/// Integer element kernels of one level. Exact for slices of at most
/// [`INT_CHUNK`] elements (the caller splits longer ones).
pub(crate) struct IntKernels<T> {
    pub(crate) l2_sq: fn(&[T], &[T]) -> u32,
    pub(crate) dot: fn(&[T], &[T]) -> i32,
}

/// Longest slice an integer kernel accumulates in 32 bits: 255² · 32,768 < 2³¹.
pub(crate) const INT_CHUNK: usize = 32_768;

/// The blocked many-to-many micro-kernel of one level; see [`crate::gemm`].
pub(crate) struct GemmKernel {
    /// Rows (queries) per register tile.
    pub(crate) mr: usize,
    /// Columns (base vectors) per register tile.
    pub(crate) nr: usize,
    pub(crate) scan: crate::gemm::ScanFn,
    /// One row against packed panels: the per-pair arithmetic of `scan` (one multiply-add
    /// chain over `k`, from zero) without its row padding; see [`crate::matrix`].
    pub(crate) gemv: crate::matrix::GemvFn,
}

/// The nearest-centroid kernel for small dimensions (see [`crate::assign`]): one register
/// per panel of `lanes` centroids, a running minimum per lane, no tile callbacks.
pub(crate) struct SmallKernel {
    /// Centroids per panel (the SIMD width in f32 lanes).
    pub(crate) lanes: usize,
    pub(crate) nearest: crate::assign::SmallFn,
}

/// A kernel scoring one f32 vector against four rows: see [`Kernels::f32_rows4_fn`].
pub type Rows4Fn = fn(&[f32], [&[f32]; 4]) -> [f32; 4];

/// One f32 vector against four rows in one pass, each sum equal to the bit to the one-pair
/// kernel's: a memory-bound caller (a graph search scoring a node's neighbours) gets four
/// streams of row loads in flight and loads the vector once for the four.
pub(crate) struct Rows4Kernels {
    pub(crate) l2_sq: Rows4Fn,
    pub(crate) dot: Rows4Fn,
    /// The fewest dimensions at which the four-row pass measured faster than four one-pair
    /// calls (in an HNSW search).
    pub(crate) min_dim: usize,
}

/// Every kernel of one SIMD level: built once, then called through plain function pointers
/// (no feature check per call): [`Kernels::active`] for this process, [`Kernels::for_level`]
/// for any level the CPU can run, then [`Kernels::l2_sq`], [`Kernels::dot`], … per pair.
pub struct Kernels {
    pub(crate) level: SimdLevel,
    pub(crate) f32: FloatKernels<f32>,
    pub(crate) f16: FloatKernels<f16>,
    pub(crate) bf16: FloatKernels<bf16>,
    pub(crate) u8: IntKernels<u8>,
    pub(crate) i8: IntKernels<i8>,
    pub(crate) gemm: GemmKernel,
    /// Nearest centroid at `dim ≤ SMALL_DIM` (`None`: the blocked `gemm` path serves every
    /// dimension).
    pub(crate) small: Option<SmallKernel>,
    /// One f32 vector against four rows at once (`None`: four calls of the one-pair kernel).
    pub(crate) rows4: Option<Rows4Kernels>,
}

/// The kernels of the level in use.
#[inline]
pub(crate) fn kernels() -> &'static Kernels {
    static KERNELS: OnceLock<Kernels> = OnceLock::new();
    KERNELS.get_or_init(|| {
        let wanted = std::env::var("VQ_SIMD").ok().and_then(|v| SimdLevel::from_name(&v));
        kernels_for(choose_level(wanted))
    })
}

/// The highest available level not above `wanted` (the detected one when `None`).
fn choose_level(wanted: Option<SimdLevel>) -> SimdLevel {
    let available = SimdLevel::available();
    match wanted {
        None => *available.last().expect("portable is always available"),
        Some(w) => available.into_iter().rfind(|&l| l <= w).unwrap_or(SimdLevel::Portable),
    }
}

/// The kernel table of `level`, or `None` if this CPU cannot run it. Benchmarks and tests use
/// this to compare levels inside one process.
pub(crate) fn kernels_for_checked(level: SimdLevel) -> Option<Kernels> {
    SimdLevel::available().contains(&level).then(|| kernels_for(level))
}

fn kernels_for(level: SimdLevel) -> Kernels {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if crate::x86::avx512::is_available() => {
            // SAFETY: the CPU features this table needs were just checked.
            unsafe { crate::x86::avx512::kernels() }
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 if crate::x86::avx2::is_available() => {
            // SAFETY: the CPU features this table needs were just checked.
            unsafe { crate::x86::avx2::kernels() }
        }
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => crate::aarch64::neon::kernels(),
        _ => crate::portable::kernels(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forcing_a_level_never_goes_above_the_cpu() {
        let detected = SimdLevel::detected();
        assert_eq!(choose_level(None), detected);
        assert_eq!(choose_level(Some(SimdLevel::Portable)), SimdLevel::Portable);
        assert!(choose_level(Some(SimdLevel::Avx512)) <= detected);
        for level in SimdLevel::available() {
            assert_eq!(choose_level(Some(level)), level);
            assert_eq!(kernels_for(level).level, level);
        }
    }

    #[test]
    fn names_round_trip() {
        for level in [SimdLevel::Portable, SimdLevel::Neon, SimdLevel::Avx2, SimdLevel::Avx512] {
            assert_eq!(SimdLevel::from_name(level.name()), Some(level));
        }
        assert_eq!(SimdLevel::from_name("sse9"), None);
    }
}
