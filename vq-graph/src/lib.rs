//! HNSW — hierarchical navigable small-world graphs — over pluggable vector storage.
//!
//! **Owns:** the graph (levels, link lists, neighbour selection, insertion, beam search,
//! deletes, filtered search) and the [`VectorStorage`] trait the graph reads vectors through,
//! with [`FlatStorage`] (full-precision f32) and [`QuantizedStorage`] (the codes of any
//! `vq-quant` quantizer: SQ8, FP16, BF16, PQ, …) as its implementations.
//!
//! **Does not own:** the distance kernels (`vq-distance`), the quantizers and their kernels
//! (`vq-quant`), files (`vq-io`).
//!
//! ```
//! use vq_graph::{Hnsw, HnswParams};
//! use vq_distance::Metric;
//!
//! let dim = 8;
//! let data: Vec<f32> = (0..dim * 500).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
//! let index = Hnsw::new(dim, Metric::L2, HnswParams::default())?;
//! index.add(&data)?;                               // ids 0..500, built in parallel
//! let hits = index.search(&data[..dim], 5, None)?; // (id, squared distance), best first
//! assert_eq!(hits[0].0, 0);
//! # Ok::<(), vq_graph::Error>(())
//! ```
//!
//! Files: [`Hnsw::save`] / [`Hnsw::load`] write and read one container for any storage;
//! [`Hnsw::write_to`] / [`Hnsw::read_from`] put the graph's sections under a prefix of a
//! container shared with other sections, and each storage writes its own
//! ([`VectorStorage::write_sections`]). Loading checks a file's structure before building
//! anything from it, so a corrupt or forged file is an error, not a panic.
//!
//! Thread safety: an [`Hnsw`] is `Sync`; searches and inserts may run from any number of
//! threads at once. Batch methods use the current rayon pool and spawn no threads of their own.

mod arena;
mod error;
mod hnsw;
mod persist;
mod quantized;
mod storage;
mod visited;

#[cfg(test)]
mod race_tests;

pub use error::{Error, Result};
pub use hnsw::{GraphReport, Hnsw, HnswParams, MemoryUsage};
pub use quantized::QuantizedStorage;
pub use storage::{FlatStorage, VectorStorage};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
