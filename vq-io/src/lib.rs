//! Dataset formats and the checksummed index container: every file
//! [vq](https://github.com/vq-rs/vq) reads or writes goes through this crate.
//!
//! **Owns:** reading and writing texmex `fvecs`/`ivecs`/`bvecs`, big-ann
//! `fbin`/`ibin`/`u8bin`/`i8bin` and NumPy `.npy` ([`read`], [`read_first`], [`read_rows`],
//! [`DatasetReader`], [`map`](fn@map), [`write`](fn@write), [`DatasetWriter`]); the index container
//! ([`ContainerWriter`], [`ContainerReader`]): magic, format version, a table of named,
//! 64-byte-aligned, xxh3-checksummed sections holding JSON parameters or little-endian
//! arrays, written atomically and readable by memory map without copying.
//!
//! **Does not own:** what an index stores in its sections (each index crate names its
//! sections and versions them), distance computations (`vq-distance`).
//!
//! # Safety against bad bytes
//! No input makes a reader panic, hang or allocate more than the file's length implies:
//! headers are checked against the file's length before anything is allocated, and every
//! malformed file is an [`Error`] naming the file, the row or section, and what was wrong.
//! Files are little-endian; a big-endian host gets [`Error::BigEndianHost`]. The readers are
//! fuzzed (`cargo xtask fuzz`).
//!
//! # Example
//! ```
//! use vq_io::{ContainerReader, ContainerWriter, Format, Matrix};
//!
//! let dir = tempfile::tempdir().unwrap();
//! // A dataset file, written and read back converted to f32.
//! let path = dir.path().join("base.bvecs");
//! vq_io::write(&path, Format::Bvecs, &[1u8, 2, 3, 4, 5, 6], 3)?;
//! let base: Matrix<f32> = vq_io::read(&path)?;
//! assert_eq!(base.row(1), Some(&[4.0f32, 5.0, 6.0][..]));
//!
//! // An index container: parameters as JSON, bulk data as aligned arrays.
//! let index = dir.path().join("index.vq");
//! let mut w = ContainerWriter::create(&index)?;
//! w.add_json("params", 1, &serde_json::json!({ "m": 16 }))?;
//! w.add_array("vectors", 1, base.as_slice())?;
//! w.finish()?;
//! let r = ContainerReader::open(&index)?;
//! assert_eq!(r.array::<f32>("vectors")?, base.as_slice()); // zero-copy
//! # Ok::<(), vq_io::Error>(())
//! ```

pub mod container;
pub mod dataset;
mod element;
mod error;
mod hugepage;
mod matrix;

pub use container::{
    ContainerReader, ContainerWriter, INDEX_KIND_SECTION, IndexKind, MappedArray, OpenOptions, SectionInfo, SectionKind,
};
pub use dataset::{
    DatasetReader, DatasetWriter, Format, MAX_DIM, MappedMatrix, RowIter, map, read, read_first, read_rows, write,
};
pub use element::{Element, ElementType};
pub use error::{Error, Result};
pub use half::{bf16, f16};
pub use hugepage::advise_huge_pages;
pub use matrix::Matrix;

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
