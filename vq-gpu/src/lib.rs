//! CUDA offload for [vq](https://github.com/vq-rs/vq): exact k-NN with the base vectors resident
//! on a GPU, through [cudarc](https://docs.rs/cudarc) with the CUDA libraries loaded at run time.
//!
//! **Owns:** device discovery that fails with an error, never a panic, where there is no driver,
//! library or device ([`Gpu`], [`device_count`], [`check_libraries`]); the CUDA C kernels
//! (compiled at run time by NVRTC, [`kernels`]); [`GpuFlat`] (cuBLAS GEMM inner products, norms
//! and a top-k selection kernel, for L2, inner product and cosine, f32 or f16 storage); the
//! host-side tiling of a batch search ([`TilePlan`]); filtered search (a bit per row on the
//! device) and removal (the rows that stay packed on the device) for both index types; [`GpuIvf`] ([`GpuIvfFlat`],
//! [`GpuIvfSq`] and [`GpuIvfPq`]: inverted lists on the device, a list-scan kernel per codec, `from_cpu` /
//! `to_cpu` of vq-ivf's index); [`GpuShards`] (a base split over several
//! GPUs or partitions of one, top-k merged on the host); both steps of k-means' Lloyd
//! iteration on the GPU ([`nearest_centroids`], the CPU one's signature, and [`GpuAssigner`],
//! the hook vq-cluster's Lloyd loop and vq-ivf's training take: it keeps the points on the
//! device for the whole fit and runs the update step there too).
//!
//! **Does not own:** CPU search, the `Index` trait or factory strings (`vq`), k-means and IVF
//! (`vq-cluster`, `vq-ivf`: a GPU runs Lloyd's two steps for them; seeding, sampling,
//! empty-cluster splits and runs stay vq-cluster's).
//!
//! # Without a GPU
//! The crate builds and its tests run everywhere: nothing links against CUDA. [`Gpu::new`]
//! returns [`Error::NoDevice`] naming what is missing; GPU tests print that reason and skip.
//! [`kernels::compile_ptx`] needs only libnvrtc, so the kernels are compiled (and checked) on
//! machines with NVRTC and no GPU (see the crate README).
//!
//! # Example
//! ```no_run
//! use vq_distance::Metric;
//! use vq_gpu::{Gpu, GpuFlat, GpuFlatOptions};
//!
//! let gpu = Gpu::new(0)?; // Err(Error::NoDevice { .. }) without a GPU
//! let mut index = GpuFlat::new(&gpu, 4, Metric::L2, GpuFlatOptions::default())?;
//! index.add(&[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])?;
//! let hits = index.search(&[0.9, 1.0, 1.0, 1.0], 1)?;
//! assert_eq!(hits.ids(), &[1]);
//! # Ok::<(), vq_gpu::Error>(())
//! ```

mod assign;
mod device;
mod error;
mod flat;
mod ivf;
pub mod kernels;
mod plan;
mod rows;
mod shards;

pub use assign::{GpuAssigner, nearest_centroids};
pub use device::{Gpu, check_libraries, device_count};
pub use error::{Error, Result};
pub use flat::{GpuFlat, GpuFlatOptions, GpuStorage};
pub use ivf::{GpuCodec, GpuIvf, GpuIvfFlat, GpuIvfPq, GpuIvfSq};
pub use kernels::MAX_K;
pub use plan::{MAX_BASE_TILE, MAX_QUERY_BATCH, TilePlan};
pub use shards::GpuShards;

/// This crate's version, as benchmark records carry it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
