//! Inverted-file indexes: IVF-Flat, IVF-SQ and IVF-PQ (IVFADC), the Faiss family that scales
//! past one machine.
//!
//! A coarse quantizer (k-means centroids, trained with `vq-cluster` on at most 256 points per
//! centroid) splits the space into `nlist` cells; every vector is stored, as a code of the
//! index's [`IvfCodec`], in the list of its nearest centroid; a query scans the `nprobe` lists
//! nearest to it.
//!
//! **Owns:** [`IvfIndex`] (train, add, search with `nprobe` and an [`IdFilter`](vq_distance::IdFilter)
//! — the probe widened by the filter's pass rate, or its listed ids scored alone: [`filter`],
//! remove by ids, range or predicate, reconstruct, list statistics, memory report), the coarse
//! quantizers behind [`CoarseQuantizer`] ([`FlatCoarse`]: every centroid scored; [`HnswCoarse`]:
//! a `vq-graph` HNSW over the centroids, `IVF65536_HNSW32`, for very large `nlist`), the list
//! codecs ([`FlatCodec`] over `vq-quant`'s identity quantizer, [`SqCodec`] over residuals,
//! [`PqCodec`] over residuals with Faiss' precomputed L2 table, [`RaBitQCodec`]: one to nine bits a
//! dimension, the centroid's terms folded into each code), their container sections, the
//! trained-state fingerprint, and [`IvfIndex::merge_from`] for sharded builds; and
//! [`IvfFastScan`], lists of 4-bit PQ codes in the fast-scan layout (`IVF{nlist},PQ{m}x4fs`,
//! the base of the ScaNN-style index: with a refine stage above it in `vq`) or of RaBitQ codes
//! whose bits are packed the same way (`IVF{nlist},RaBitQfs`).
//!
//! **Does not own:** the `vq::Index` trait, factory strings and file dispatch (the `vq`
//! umbrella adapts [`IvfIndex`]), refine stages (`vq`'s `RefineIndex` wraps any index:
//! `IVF1024,PQ16,RFlat`), kernels and top-k (`vq-distance`), quantizers (`vq-quant`),
//! k-means (`vq-cluster`), graphs (`vq-graph`).
//!
//! # Memory-mapped lists
//! [`IvfIndex::read_sections`] from a container opened with `mmap: true` keeps every list as
//! a view into the file ([`vq_io::MappedArray`]; ids are u64 and every section starts
//! 64-byte aligned, so no copy is needed to align them) and copies a list into owned memory
//! only when an add, removal or merge writes to it; [`IvfMemory::mapped`] counts what is
//! still mapped. [`IvfFastScan`] is not mapped: its file holds plain codes and its memory
//! the packed fast-scan layout.
//!
//! # Sharded builds
//! Train once, write the trained and empty index ([`IvfIndex::write_sections`]); every worker
//! reads it, adds its shard (with its own ids), and the shards are merged with
//! [`IvfIndex::merge_from`]. Every trained artifact (centroids, quantizer parameters) is
//! covered by [`IvfIndex::fingerprint`], stored in the file and checked on read and on merge:
//! an index trained separately is refused ([`Error::TrainedStateMismatch`]), never merged into
//! silently wrong results. [`IvfIndex::check_merge`] runs every check of a merge (a duplicate
//! id included) with nothing moved, for a caller that must keep the other index when the merge
//! would be refused (`merge_from` takes it by value).
//!
//! ```
//! use vq_distance::Metric;
//! use vq_ivf::{FlatCodec, IvfIndex, IvfParams, IvfSearch};
//!
//! let dim = 8;
//! let data: Vec<f32> = (0..dim * 2000).map(|i| ((i * 7919) % 1009) as f32 / 100.0).collect();
//! let mut index = IvfIndex::new(dim, Metric::L2, IvfParams::new(16), FlatCodec::new(dim, Metric::L2)?)?;
//! index.train(&data)?;
//! index.add(&data)?;
//! // Every list probed: exact search.
//! let hits = index.search(&data[..2 * dim], 3, &IvfSearch { nprobe: Some(16), ..Default::default() })?;
//! assert_eq!(hits.get(1).unwrap().0[0], 1);
//! # Ok::<(), vq_ivf::Error>(())
//! ```

mod coarse;
mod codec;
mod error;
mod fastscan;
pub mod filter;
mod ids;
mod index;
mod persist;

pub use coarse::{CoarseQuantizer, DEFAULT_COARSE_EF, FlatCoarse, HnswCoarse};
pub use codec::{
    FlatCodec, IvfCodec, ListScanner, PqCodec, PqScanner, QuantizerScanner, RaBitQCodec, RaBitQScanner, SqCodec,
};
pub use error::{Error, Result};
pub use fastscan::IvfFastScan;
pub use ids::IdTracker;
pub use index::{CoarseKind, EncodedAdd, IvfIndex, IvfMemory, IvfParams, IvfSearch, ListStats, encode_in_lists};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
