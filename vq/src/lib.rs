//! vq: vector similarity search. One [`Index`] trait over every index vq has, Faiss-style
//! factory strings ([`index_factory`]), and [`write_index`] / [`read_index`].
//!
//! **Owns:** the [`Index`] trait and its adapters over the lower crates' types (exact search,
//! flat code scans, HNSW over vectors or codes, inverted files, refine, transforms in front:
//! an OPQ rotation or projection before an inverted file, a PCA projection before any index),
//! [`SearchParams`], the typed
//! [`IndexSpec`] parsed from factory strings, [`Error`] wrapping every crate's error, and the
//! index file format's dispatch (`index.kind`).
//!
//! With the `gpu` feature, the `gpu` module adds GPU indexes behind the same trait
//! (`gpu::index_cpu_to_gpu`, Faiss' shape, and factory strings with a leading `GPU` /
//! `GPU{ordinal}` component: `"GPU,IVF1024,Flat"`; CUDA is loaded at run time, so the feature
//! builds anywhere and every entry point returns `Error::Gpu` where there is no device).
//!
//! **Does not own:** kernels, quantizers, graphs, file containers: those live in `vq-distance`,
//! `vq-quant`, `vq-graph`, `vq-ivf` and `vq-io`, re-exported here for direct use.
//!
//! ```
//! use vq::{Metric, SearchParams};
//!
//! let dim = 16;
//! let data: Vec<f32> = (0..dim * 1000).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
//! let mut index = vq::index_factory(dim, "HNSW16,SQ8,RFlat", Metric::L2)?;
//! index.train(&data)?;                 // learns SQ8's ranges
//! index.add(&data)?;                   // ids 0..1000
//! let hits = index.search_with(&data[..2 * dim], &SearchParams { k: 5, ef: Some(64), refine_k: Some(4), ..Default::default() })?;
//! assert_eq!(hits.ids()[0], 0);        // flat view: 2 queries × 5, best first
//! assert_eq!(hits.get(1).unwrap().0[0], 1);
//! # Ok::<(), vq::Error>(())
//! ```
//!
//! # Cosine
//! With [`Metric::Cosine`] every index normalizes what it stores and every query, so the
//! scores are true cosine similarities whatever the input's norms (behind a projection to
//! fewer dimensions, `PCA64,…` or `OPQ16_64,IVF…`, the inner products of the projected unit
//! vectors, which approximate them). Inner product on
//! unnormalized vectors is *not* cosine: long vectors win. Normalize with [`normalize_l2`] if
//! you want inner-product indexes to rank by angle.

mod codes;
mod error;
mod factory;
mod flat;
#[cfg(feature = "gpu")]
pub mod gpu;
mod graph;
mod ids;
mod index;
mod ivf;
mod milvus;
mod persist;
mod range;
mod refine;
mod spec;
mod transform;

pub use codes::CodesIndex;
pub use error::{Error, Result};
pub use factory::{IndexParams, build, index_factory, index_factory_with};
pub use flat::FlatIndex;
pub use graph::{HnswCodesIndex, HnswFlatIndex};
pub use index::{Index, MemoryUsage, PreparedAdd, SearchDefault, SearchParams};
pub use ivf::{IvfFastScanIndex, IvfIndex, IvfStorage};
pub use milvus::MilvusIndex;
pub use persist::{
    INDEX_FORMAT_VERSION, ReadOptions, read_index, read_index_from_bytes, read_index_from_container, read_index_with,
    write_index, write_index_to_bytes,
};
pub use refine::RefineIndex;
pub use spec::{ACCEPTED, BaseSpec, CodecSpec, IndexSpec, RefineSpec, SpecError, StorageSpec, TransformSpec};
pub use transform::PreTransformIndex;
pub use vq_distance::{
    IdBitset, IdFilter, IdSet, Metric, Neighbors, RangeResult, knn_exact, merge_topk, normalize_l2, range_exact,
};
#[cfg(feature = "gpu")]
pub use vq_gpu;
pub use {vq_cluster, vq_distance, vq_graph, vq_io, vq_ivf, vq_quant};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
