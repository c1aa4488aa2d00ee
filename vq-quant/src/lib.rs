//! Vector quantizers: the compression layer under vq's quantized indexes.
//!
//! **Owns:** the [`Quantizer`] trait (train on a sample, encode to fixed-size byte codes,
//! decode, score a query against codes without decoding, code-to-code distance, save/load
//! through vq-io sections), the quantizers themselves, and [`FlatCodes`], the exhaustive scan
//! over a code buffer (Faiss' `IndexScalarQuantizer` / `IndexPQ`).
//!
//! **Quantizers:**
//! - [`F32Quantizer`]: the identity (codes are the f32 vectors), so indexes generic over a
//!   quantizer also hold full-precision vectors (IVF-Flat).
//! - [`ScalarQuantizer`]: each component on its own, [`SqType`] `SQ8`, `SQ6`, `SQ4` (per-dimension
//!   ranges), `SQ4U` (one range), `FP16`, `BF16`; SIMD asymmetric distances (AVX-512, AVX2+FMA
//!   and a portable twin) that decode codes in registers.
//! - [`ProductQuantizer`] (`PQ{m}x{nbits}`) and [`OpqQuantizer`] (a learned rotation first):
//!   sub-space codebooks, look-up-table scoring.
//! - [`RaBitQuantizer`] (`RaBitQ`, `RaBitQ{bits}`): one (to nine) bits per dimension after a
//!   random rotation, plus three floats, scored by RaBitQ's unbiased estimate (Faiss'
//!   `IndexRaBitQ`).
//! - [`fastscan`]: 4-bit PQ codes packed in blocks of 32 for a byte-shuffle scan
//!   ([`fastscan::FastScanCodes`], Faiss' `PQ{m}x4fs`), and RaBitQ's bits in the same layout
//!   ([`fastscan::RaBitQFastScan`], Faiss' `RaBitQfs`).
//!
//! Beside them, [`PcaMatrix`]: a learned projection to fewer dimensions (Faiss' `PCAMatrix`),
//! which vq puts in front of any index (`PCA64,IVF1024,Flat`).
//!
//! **Does not own:** the float distance kernels and top-k (`vq-distance`), k-means
//! (`vq-cluster`), the container format (`vq-io`), or any index structure beyond the flat scan
//! (graphs and inverted lists build on these codes in `vq-graph` and `vq-ivf`).
//!
//! Distances follow vq's key convention inside the crate: a [`CodeScorer`] returns a key where
//! smaller is better (squared L2, or the negated inner product / cosine); [`FlatCodes::search`]
//! turns keys back into the metric's score (`Metric::score_from_key`) at the boundary.

mod error;
pub mod fastscan;
mod flat;
mod identity;
mod linear;
mod pca;
mod pq;
mod rabitq;
mod sections;
mod sink;
mod sq;

pub use error::{Error, Result};
pub use flat::FlatCodes;
pub use identity::{F32Quantizer, F32Scorer};
pub use linear::LINEAR_MAX_DIM;
pub use pca::{PcaMatrix, PcaParams};
pub use pq::{
    OpqParams, OpqQuantizer, OpqRotation, OpqScorer, PqParams, PqScorer, ProductQuantizer, SDC_MAX_ENTRIES, pack_index,
    unpack_index,
};
pub use rabitq::{RABITQ_MAX_BITS, RABITQ_MAX_DIM, RaBitQScorer, RaBitQuantizer};
pub use sections::{validate_code_blocks, validate_codes};
pub use sink::{ScanSink, WithinKey};
pub use sq::{ScalarQuantizer, SqInt8Scorer, SqScorer, SqType};
/// The shared check and cosine normalization of every vector a quantizer takes.
pub(crate) use vq_distance::{prepare_row_into, prepare_rows};

use vq_distance::Metric;
use vq_io::{ContainerReader, ContainerWriter};

/// A trained mapping from `dim`-dimensional f32 vectors to `code_size()`-byte codes.
///
/// Cosine quantizers normalize every vector they encode and every query they score, so the
/// codes approximate unit vectors and scores are inner products of unit vectors.
pub trait Quantizer: Send + Sync + Sized {
    /// The per-query distance object (look-up tables, a converted query, …).
    type Scorer<'a>: CodeScorer
    where
        Self: 'a;

    /// A short name in factory-string style: `"SQ8"`, `"PQ16x8"`, `"OPQ16,PQ16x8"`.
    fn name(&self) -> String;
    /// The vector dimension.
    fn dim(&self) -> usize;
    /// The metric that scorers and [`Quantizer::code_distance`] compute.
    fn metric(&self) -> Metric;
    /// Bytes per encoded vector.
    fn code_size(&self) -> usize;
    /// Whether `train` has run (quantizers with nothing to learn are always trained).
    fn is_trained(&self) -> bool;
    /// Learns the quantizer's parameters from `sample` (row-major, `dim` columns).
    fn train(&mut self, sample: &[f32]) -> Result<()>;
    /// Encodes `vectors` (row-major) into `codes` (`code_size()` bytes per row), in parallel
    /// over rows on the current rayon pool.
    fn encode(&self, vectors: &[f32], codes: &mut [u8]) -> Result<()>;
    /// Refuses vectors that pass the shared checks (`validate_rows`) but that this quantizer
    /// cannot code faithfully (SQfp16: a component beyond ±65,504); [`encode`](Quantizer::encode)
    /// runs it too. For a caller that must know before it commits to storing them (a graph
    /// claims slots first). Accepts everything by default.
    fn check_encodable(&self, vectors: &[f32]) -> Result<()> {
        let _ = vectors;
        Ok(())
    }
    /// Reconstructs vectors from `codes` into `out` (`dim` values per code).
    fn decode(&self, codes: &[u8], out: &mut [f32]) -> Result<()>;
    /// Prepares a query for asymmetric distance: the f32 query against codes.
    fn scorer(&self, query: &[f32]) -> Result<Self::Scorer<'_>>;
    /// The key (smaller is better) between two encoded vectors: symmetric distance, used by
    /// graphs built over codes. `a` and `b` are `code_size()` bytes each.
    fn code_distance(&self, a: &[u8], b: &[u8]) -> f32;
    /// Bytes of trained parameters held (tables, codebooks, rotation), for memory reports.
    fn memory_bytes(&self) -> usize;
    /// An upper bound on the squared L2 norm of the vector that *any* `code_size()` bytes
    /// decode to, when the trained parameters alone bound it (PQ codebooks, SQ ranges); `None`
    /// where a code can hold an arbitrary value (f32, FP16, BF16) or the quantizer is untrained.
    /// [`validate_codes`] skips decoding every code when this bound is finite and small.
    fn decoded_norm_sq_bound(&self) -> Option<f64> {
        None
    }
    /// The codes as the f32 values they decode to, where the codes are those values (raw f32
    /// storage) and `codes` is aligned for f32: [`validate_codes`] then reads them in place
    /// instead of decoding a copy. `None` by default.
    fn codes_as_f32<'a>(&self, codes: &'a [u8]) -> Option<&'a [f32]> {
        let _ = codes;
        None
    }
    /// Checks codes for values no encoder writes without decoding them, where the quantizer
    /// can: `Some(Err(i))` names the first bad code. `None` (the default): [`validate_codes`]
    /// decodes them (RaBitQ's decoding is a rotation per code; its factors tell enough).
    fn check_codes(&self, codes: &[u8]) -> Option<std::result::Result<(), usize>> {
        let _ = codes;
        None
    }
    /// Bytes at the front of each code that a flat scan reads for every code, where the
    /// scorer's [`distances_within`](CodeScorer::distances_within) reads the rest only for
    /// some (RaBitQ's multi-bit codes: the sign bits and their own factors, a first estimate
    /// that rules most codes out): [`FlatCodes`] then keeps the heads apart from the rest, so
    /// that the scan streams the heads alone. `None` (the default): whole codes.
    fn scan_head_bytes(&self) -> Option<usize> {
        None
    }
    /// Writes the trained parameters as sections named `{prefix}.*`.
    fn write_sections(&self, writer: &mut ContainerWriter, prefix: &str) -> Result<()>;
    /// Reads what [`Quantizer::write_sections`] wrote under `prefix`, validating it.
    fn read_sections(reader: &ContainerReader, prefix: &str) -> Result<Self>;
}

/// A query prepared by [`Quantizer::scorer`]: scores codes without decoding them.
pub trait CodeScorer: Send {
    /// The key (smaller is better) from the query to one code of `code_size()` bytes.
    fn distance(&self, code: &[u8]) -> f32;
    /// Keys for a contiguous block of codes (`out.len()` codes, `code_size()` bytes each).
    /// Implementations override this with their blocked SIMD scan.
    fn distances(&self, codes: &[u8], out: &mut [f32]) {
        if out.is_empty() {
            return;
        }
        let size = codes.len() / out.len();
        for (o, code) in out.iter_mut().zip(codes.chunks_exact(size)) {
            *o = self.distance(code);
        }
    }
    /// Keys for a block of `out.len()` codes held as [`FlatCodes`] holds them: each code's
    /// first [`Quantizer::scan_head_bytes`] bytes in `heads`, the rest in `tails` (whole codes
    /// in `heads` and nothing in `tails` where the quantizer does not split its codes), for a
    /// scan into a sink whose [`threshold`](ScanSink::threshold) is `threshold`. A scorer may
    /// give `+∞` instead of the key of a code it finds (to high probability) above the
    /// threshold from its head, so that it skips the rest of that code; every other key as
    /// [`distances`](CodeScorer::distances) gives it. By default every key, split codes put
    /// back together first.
    fn distances_within(&self, heads: &[u8], tails: &[u8], out: &mut [f32], threshold: f32) {
        let _ = threshold;
        let n = out.len();
        if tails.is_empty() || n == 0 {
            return self.distances(heads, out);
        }
        let (h, t) = (heads.len() / n, tails.len() / n);
        if h == 0 || t == 0 {
            // Fewer bytes than codes: no code (as `distance` of a short code).
            return out.fill(f32::INFINITY);
        }
        let mut code = Vec::with_capacity(h + t);
        for ((o, head), tail) in out.iter_mut().zip(heads.chunks_exact(h)).zip(tails.chunks_exact(t)) {
            code.clear();
            code.extend_from_slice(head);
            code.extend_from_slice(tail);
            *o = self.distance(&code);
        }
    }
}

/// A searchable buffer of codes under one quantizer, row `i` the `i`-th vector added:
/// [`FlatCodes`] (any quantizer, its own scan), [`fastscan::FastScanCodes`] (4-bit PQ in
/// the fast-scan layout) and [`fastscan::RaBitQFastScan`] (RaBitQ's bits in it). Indexes that keep ids above the rows (vq's `CodesIndex`) are
/// generic over it.
pub trait CodeStore: Send + Sync + Sized {
    /// The quantizer the codes are made by.
    type Quantizer: Quantizer;
    /// An empty store over `quantizer` (trained or not); an error if the store cannot hold
    /// its codes (fast scan takes 4-bit PQ only).
    fn with_quantizer(quantizer: Self::Quantizer) -> Result<Self>;
    /// The quantizer.
    fn quantizer(&self) -> &Self::Quantizer;
    /// Rows held.
    fn len(&self) -> usize;
    /// `true` when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Trains the quantizer on `sample`; rows already held are dropped.
    fn train(&mut self, sample: &[f32]) -> Result<()>;
    /// Makes room for `additional` more rows.
    fn reserve(&mut self, additional: usize);
    /// Encodes and appends `vectors`; on error nothing is added.
    fn add(&mut self, vectors: &[f32]) -> Result<()>;
    /// The `k` best rows per query among those `keep` accepts, as `(row, score)`.
    fn search_filtered(
        &self,
        queries: &[f32],
        k: usize,
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Result<vq_distance::Neighbors>;
    /// Every row within `radius` of each query (`Metric::within`) among those `keep` accepts,
    /// as `(row, score)` in [`RangeResult`](vq_distance::RangeResult)'s layout: one scan.
    fn range_filtered(
        &self,
        queries: &[f32],
        radius: f32,
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Result<vq_distance::RangeResult>;
    /// Decodes row `row` into `out` (`dim` values): what the code says the vector is (Faiss'
    /// `reconstruct`). A row past the end is an error.
    fn decode_row(&self, row: usize, out: &mut [f32]) -> Result<()>;
    /// Drops the rows `keep` rejects (asked once per row, in order); returns how many.
    fn retain(&mut self, keep: impl FnMut(usize) -> bool) -> usize;
    /// Writes the quantizer and the codes under `prefix`.
    fn write_sections(&self, writer: &mut ContainerWriter, prefix: &str) -> Result<()>;
    /// Reads what [`CodeStore::write_sections`] wrote, validating it.
    fn read_sections(reader: &ContainerReader, prefix: &str) -> Result<Self>;
    /// Bytes held, the quantizer's parameters included.
    fn memory_usage(&self) -> usize;
}

/// Forwards every [`CodeStore`] method to the type's inherent method of the same name.
macro_rules! code_store_by_inherent_methods {
    () => {
        fn quantizer(&self) -> &Self::Quantizer {
            Self::quantizer(self)
        }
        fn len(&self) -> usize {
            Self::len(self)
        }
        fn train(&mut self, sample: &[f32]) -> Result<()> {
            Self::train(self, sample)
        }
        fn reserve(&mut self, additional: usize) {
            Self::reserve(self, additional)
        }
        fn add(&mut self, vectors: &[f32]) -> Result<()> {
            Self::add(self, vectors)
        }
        fn search_filtered(
            &self,
            queries: &[f32],
            k: usize,
            keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
        ) -> Result<vq_distance::Neighbors> {
            Self::search_filtered(self, queries, k, keep)
        }
        fn range_filtered(
            &self,
            queries: &[f32],
            radius: f32,
            keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
        ) -> Result<vq_distance::RangeResult> {
            Self::range_filtered(self, queries, radius, keep)
        }
        fn decode_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
            Self::decode_row(self, row, out)
        }
        fn retain(&mut self, keep: impl FnMut(usize) -> bool) -> usize {
            Self::retain(self, keep)
        }
        fn write_sections(&self, writer: &mut ContainerWriter, prefix: &str) -> Result<()> {
            Self::write_sections(self, writer, prefix)
        }
        fn read_sections(reader: &ContainerReader, prefix: &str) -> Result<Self> {
            Self::read_sections(reader, prefix)
        }
        fn memory_usage(&self) -> usize {
            Self::memory_usage(self)
        }
    };
}

impl<Q: Quantizer> CodeStore for FlatCodes<Q> {
    type Quantizer = Q;
    fn with_quantizer(quantizer: Q) -> Result<Self> {
        Ok(FlatCodes::new(quantizer))
    }
    code_store_by_inherent_methods!();
}

impl CodeStore for fastscan::RaBitQFastScan {
    type Quantizer = RaBitQuantizer;
    fn with_quantizer(quantizer: RaBitQuantizer) -> Result<Self> {
        fastscan::RaBitQFastScan::new(quantizer)
    }
    code_store_by_inherent_methods!();
}

impl CodeStore for fastscan::FastScanCodes {
    type Quantizer = ProductQuantizer;
    fn with_quantizer(quantizer: ProductQuantizer) -> Result<Self> {
        fastscan::FastScanCodes::new(quantizer)
    }
    code_store_by_inherent_methods!();
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
