//! [`IvfFastScan`]: an inverted file whose lists hold 4-bit PQ codes in vq-quant's fast-scan
//! layout (Faiss' `IndexIVFPQFastScan`, factory string `IVF{nlist},PQ{m}x4fs`; with a refine
//! stage above it, the ScaNN / Milvus SCANN index: `IVF{nlist},PQ{m}x4fs,RFlat`), or RaBitQ
//! residual codes whose bits are packed the same way (Faiss' `IndexIVFRaBitQFastScan`,
//! `IVF{nlist},RaBitQfs`: [`RaBitQPacked`] lists, one [`RaBitQLut`] per query for every list,
//! since the codes fold their centroid's terms in; each block's 32 keys come from its byte sums
//! and the codes' factors, the top-k threshold tested on the floats).
//!
//! Each list keeps its ids and a [`PackedCodes`] (blocks of 32 codes, transposed and
//! nibble-packed), so a probed list is scanned 32 codes per shuffle against the query's
//! look-up table quantized to bytes ([`QuantizedLut`]), rows whose byte sum cannot beat the
//! current top-k dropped as integers. It is its own type rather than an [`IvfCodec`](crate::IvfCodec)
//! because that trait scores contiguous fixed-size codes one block of keys at a time, while a
//! fast scan needs the packed layout and the top-k threshold inside the kernel loop.
//!
//! Tables (keys are "smaller is better"; cosine scores with the inner product of normalized vectors):
//! - inner product and cosine: one table per query, `−⟨q, r̂⟩`; over residuals a list adds its
//!   coarse key `−⟨q, c⟩` as an offset of the quantized table (no re-quantization per list);
//! - L2 without residuals: one table per query, `‖q − x̂‖²` per sub-space;
//! - L2 over residuals: Faiss' precomputed table — per list `‖r̂‖² + 2⟨c, r̂⟩` (kept, `nlist ×
//!   m × 16` floats) plus the query's `−2⟨q, r̂⟩`, quantized per probed list, offset by
//!   `‖q − c‖²`.
//!
//! Scores are the de-quantized keys: within the quantized table's bound
//! ([`QuantizedLut::max_error`]) of the float asymmetric distance. A refine stage gives exact
//! final scores.

use std::collections::HashSet;
use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_cluster::KMeans;
use vq_distance::{IdFilter, Kernels, Metric, Neighbors, RangeResult, TopK, prepare_rows, validate_rows};
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::fastscan::{BLOCK, PackedCodes, QuantizedLut, RaBitQLut, RaBitQPacked, Rows};
use vq_quant::{PqParams, ProductQuantizer, Quantizer, RaBitQuantizer, ScanSink, WithinKey, validate_codes};

use crate::coarse::{CoarseQuantizer, FlatCoarse, HnswCoarse, assign_rows, subtract_lists};
use crate::codec::{RotatedCentroids, inner_metric, mapped_row};
use crate::error::{Error, Result};
use crate::filter::{filtered_rows, lists_holding, pass_rate, widened_nprobe};
use crate::ids::{IdTracker, Locations, positions_in_lists, repeated_id};
use crate::index::{
    Coarse, CoarseKind, EncodedAdd, IvfMemory, IvfParams, IvfSearch, ListStats, QueryHits, checked_encoding,
    encode_add_in, range_keys, resolved_nprobe,
};

const META_VERSION: u32 = 1;
const ARRAY_VERSION: u32 = 1;

/// One inverted list: ids, and their codes packed for the fast scan (row `i` is id `i`).
#[derive(Debug, Clone)]
struct FsList {
    ids: Vec<u64>,
    codes: ListCodes,
}

/// The quantizer of the lists' codes and what it precomputes over the coarse centroids.
#[derive(Debug, Clone)]
enum FsCodec {
    /// 4-bit PQ; L2 over residuals: per list, `m × 16` terms `‖c_jk‖² + 2⟨centroid_j, c_jk⟩`.
    Pq { pq: ProductQuantizer, list_terms: Vec<f32> },
    /// RaBitQ residual codes (Faiss' `IVF{n},RaBitQfs`), which fold their centroid's terms in:
    /// the centroids rotated, `P c`, for encoding; one table per query serves every list.
    RaBitQ { q: RaBitQuantizer, rotated_centroids: RotatedCentroids },
}

impl FsCodec {
    /// Bytes of a standard code.
    fn code_size(&self) -> usize {
        match self {
            FsCodec::Pq { pq, .. } => pq.code_size(),
            FsCodec::RaBitQ { q, .. } => q.code_size(),
        }
    }

    /// The sub-quantizers (PQ) or nibbles of bits (RaBitQ) a block sums.
    fn m(&self) -> usize {
        match self {
            FsCodec::Pq { pq, .. } => pq.m(),
            FsCodec::RaBitQ { q, .. } => q.dim().div_ceil(8) * 2,
        }
    }

    /// The table-moving terms of L2 over PQ residuals (empty otherwise).
    fn list_terms(&self) -> &[f32] {
        match self {
            FsCodec::Pq { list_terms, .. } => list_terms,
            FsCodec::RaBitQ { .. } => &[],
        }
    }
}

/// A list's codes in the fast-scan layout of its codec.
#[derive(Debug, Clone)]
enum ListCodes {
    Pq(PackedCodes),
    RaBitQ(RaBitQPacked),
}

impl ListCodes {
    /// Appends standard codes of the codec.
    fn extend(&mut self, codes: &[u8]) -> Result<()> {
        match self {
            ListCodes::Pq(c) => c.extend(codes)?,
            ListCodes::RaBitQ(c) => c.extend(codes)?,
        }
        Ok(())
    }

    /// Row `i`'s standard code.
    fn code(&self, i: usize) -> Option<Vec<u8>> {
        match self {
            ListCodes::Pq(c) => c.code(i),
            ListCodes::RaBitQ(c) => c.code(i),
        }
    }

    fn unpack_all(&self) -> Vec<u8> {
        match self {
            ListCodes::Pq(c) => c.unpack_all(),
            ListCodes::RaBitQ(c) => c.unpack_all(),
        }
    }

    fn retain(&mut self, keep: impl FnMut(usize) -> bool) -> usize {
        match self {
            ListCodes::Pq(c) => c.retain(keep),
            ListCodes::RaBitQ(c) => c.retain(keep),
        }
    }

    fn reserve(&mut self, additional: usize) {
        match self {
            ListCodes::Pq(c) => c.reserve(additional),
            ListCodes::RaBitQ(c) => c.reserve(additional),
        }
    }

    fn memory_bytes(&self) -> usize {
        match self {
            ListCodes::Pq(c) => c.memory_bytes(),
            ListCodes::RaBitQ(c) => c.memory_bytes(),
        }
    }

    /// Makes room for `n` codes after the `len` held, `room` more when it must grow.
    fn make_room(&mut self, len: usize, n: usize, room: usize) {
        let full = match self {
            ListCodes::Pq(c) => (len + n).div_ceil(BLOCK) * c.block_bytes() > c.memory_bytes(),
            ListCodes::RaBitQ(c) => len + n > c.capacity(),
        };
        if full {
            self.reserve(room);
        }
    }

    /// Offers the rows `rows` allows to `sink`, keyed by the query's table in `s`.
    fn scan(&self, s: &Scratch, sink: &mut impl ScanSink, rows: Rows<'_>, id_of: impl Fn(usize) -> u64) -> Result<()> {
        match (self, &s.rabitq) {
            (ListCodes::Pq(c), _) => c.scan_rows(&s.lut, sink, rows, id_of)?,
            (ListCodes::RaBitQ(c), Some(lut)) => c.scan_rows(lut, sink, rows, id_of)?,
            (ListCodes::RaBitQ(_), None) => {
                return Err(Error::Parameter { name: "lut", what: "a RaBitQ list scanned without its table".into() });
            }
        }
        Ok(())
    }
}

/// An inverted file over 4-bit PQ codes or RaBitQ bits in the fast-scan layout (see the
/// module docs).
///
/// Scores follow [`Metric`]'s convention; cosine indexes normalize vectors and queries. Scores
/// are the quantized tables' keys (within [`QuantizedLut::max_error`] of the float ADC
/// distance; RaBitQ: within `2|w|` times [`RaBitQLut::max_error`] of the float estimate), so
/// near-ties may order differently than an `IvfIndex<PqCodec>` (`IvfIndex<RaBitQCodec>`) of the
/// same quantizer would. Searches run in parallel over queries; `&self` methods may be called from
/// several threads at once.
#[derive(Debug, Clone)]
pub struct IvfFastScan {
    dim: usize,
    metric: Metric,
    params: IvfParams,
    by_residual: bool,
    /// The coarse quantizer (its centroids), once trained.
    coarse: Option<Coarse>,
    codec: FsCodec,
    lists: Vec<FsList>,
    ids: IdTracker,
    fingerprint: u64,
    /// Where each id's entry is: built by the first search that scores a filter's listed ids,
    /// dropped whenever the lists change.
    locations: OnceLock<Locations>,
}

impl IvfFastScan {
    /// An empty, untrained index: `params.nlist` lists, codes of `pq.m` 4-bit sub-quantizers
    /// (`pq.nbits` must be 4) trained on residuals when `by_residual` (Faiss' default) or on the
    /// vectors themselves.
    pub fn new(dim: usize, metric: Metric, params: IvfParams, pq: PqParams, by_residual: bool) -> Result<Self> {
        params.check()?;
        if pq.nbits != 4 {
            return Err(Error::Parameter {
                name: "nbits",
                what: format!("fast-scan lists hold 4-bit codes, not {}-bit", pq.nbits),
            });
        }
        let m = pq.m;
        let pq = ProductQuantizer::with_params(dim, inner_metric(metric), pq)?;
        // Checks m against the fast-scan limits up front, not at the first add.
        PackedCodes::new(m)?;
        Ok(Self::with_codec(dim, metric, params, by_residual, FsCodec::Pq { pq, list_terms: Vec::new() }))
    }

    /// An empty, untrained index whose lists hold RaBitQ codes of residuals in the fast-scan
    /// layout (Faiss' `IVF{nlist},RaBitQfs`): the codes of `IVF{nlist},RaBitQ`, scanned 32 at
    /// a time against one byte-quantized table per query (the codes fold their centroid's
    /// terms in, so no list moves the table: it only takes the list's coarse key).
    pub fn with_rabitq(dim: usize, metric: Metric, params: IvfParams) -> Result<Self> {
        Self::with_rabitq_bits(dim, metric, params, 1)
    }

    /// [`with_rabitq`](IvfFastScan::with_rabitq) with `bits` bits per dimension (`1 ..= 9`,
    /// Faiss' `IVF{nlist},RaBitQfs{bits}`): the lists keep each code's sign bits packed and
    /// their own factors beside them ([`RaBitQuantizer::with_sign_factors`], 12 bytes a code
    /// more than `IVF{nlist},RaBitQ{bits}`'s), bound each code by its one-bit key less its error
    /// (which scales with the query's distance to the list's centroid) and score the codes
    /// that bound passes over every plane, as `IVF{nlist},RaBitQ{bits}` scores them.
    pub fn with_rabitq_bits(dim: usize, metric: Metric, params: IvfParams, bits: u8) -> Result<Self> {
        params.check()?;
        let q = RaBitQuantizer::for_residuals(dim, inner_metric(metric))?.with_bits(bits)?.with_sign_factors();
        Ok(Self::with_codec(
            dim,
            metric,
            params,
            true,
            FsCodec::RaBitQ { q, rotated_centroids: RotatedCentroids::default() },
        ))
    }

    fn with_codec(dim: usize, metric: Metric, params: IvfParams, by_residual: bool, codec: FsCodec) -> Self {
        IvfFastScan {
            dim,
            metric,
            params,
            by_residual,
            coarse: None,
            codec,
            lists: Vec::new(),
            ids: IdTracker::default(),
            fingerprint: 0,
            locations: OnceLock::new(),
        }
    }

    /// Faiss-style name: `IVF{nlist},PQ{m}x4fs` (`IVF{nlist}_HNSW{m},…` over an HNSW coarse
    /// quantizer).
    pub fn name(&self) -> String {
        let (nlist, coarse) = (self.params.nlist, self.params.coarse.suffix());
        match &self.codec {
            FsCodec::Pq { pq, .. } => format!("IVF{nlist}{coarse},PQ{}x4fs", pq.m()),
            FsCodec::RaBitQ { q, .. } if q.bits() == 1 => format!("IVF{nlist}{coarse},RaBitQfs"),
            FsCodec::RaBitQ { q, .. } => format!("IVF{nlist}{coarse},RaBitQfs{}", q.bits()),
        }
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric scores follow.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The parameters.
    pub fn params(&self) -> &IvfParams {
        &self.params
    }

    /// Whether codes are of residuals `x − c` (else of the vectors).
    pub fn by_residual(&self) -> bool {
        self.by_residual
    }

    /// The product quantizer of `PQ…x4fs` lists (its metric is the inner metric: inner
    /// product for cosine); `None` for `RaBitQfs` lists.
    pub fn pq(&self) -> Option<&ProductQuantizer> {
        match &self.codec {
            FsCodec::Pq { pq, .. } => Some(pq),
            FsCodec::RaBitQ { .. } => None,
        }
    }

    /// The RaBitQ quantizer of `RaBitQfs` lists (residual codes, scored by the inner metric);
    /// `None` for `PQ…x4fs` lists.
    pub fn rabitq(&self) -> Option<&RaBitQuantizer> {
        match &self.codec {
            FsCodec::RaBitQ { q, .. } => Some(q),
            FsCodec::Pq { .. } => None,
        }
    }

    /// Sets the default `nprobe` (at least 1).
    pub fn set_nprobe(&mut self, nprobe: usize) -> Result<()> {
        if nprobe == 0 {
            return Err(Error::ZeroNprobe);
        }
        self.params.nprobe = nprobe;
        Ok(())
    }

    /// The coarse centroids (`nlist × dim`), empty before training.
    pub fn centroids(&self) -> &[f32] {
        self.coarse.as_ref().map_or(&[], |c| c.get().centroids())
    }

    /// The coarse quantizer, once trained.
    pub fn coarse(&self) -> Option<&dyn CoarseQuantizer> {
        self.coarse.as_ref().map(Coarse::get)
    }

    /// The HNSW coarse quantizer, mutable (its beam width), if the index has one.
    pub fn coarse_hnsw_mut(&mut self) -> Option<&mut HnswCoarse> {
        match &mut self.coarse {
            Some(Coarse::Hnsw(h)) => Some(h),
            _ => None,
        }
    }

    /// Whether [`train`](IvfFastScan::train) has run.
    pub fn is_trained(&self) -> bool {
        self.coarse.is_some()
    }

    /// The first id the next automatic `add` hands out: past every id ever given.
    pub fn next_id(&self) -> u64 {
        self.ids.added()
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.lists.iter().map(|l| l.ids.len()).sum()
    }

    /// `true` when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.lists.iter().all(|l| l.ids.is_empty())
    }

    /// The fingerprint of everything training produced; 0 before training.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The ids of list `list`, in insertion order (`None` past `nlist` or before training).
    pub fn list_ids(&self, list: usize) -> Option<&[u64]> {
        self.lists.get(list).map(|l| l.ids.as_slice())
    }

    fn not_trained(&self) -> Error {
        Error::NotTrained { index: self.name() }
    }

    fn empty_list(&self) -> FsList {
        let codes = match &self.codec {
            // `new` checked m against the fast-scan limits.
            FsCodec::Pq { pq, .. } => ListCodes::Pq(PackedCodes::new(pq.m()).expect("m checked by new")),
            // `with_rabitq_bits` checked the dimension (at most 4,096: 1,024 nibbles) and gave
            // multi-bit codes their sign bits' factors (`read_sections` checks them).
            FsCodec::RaBitQ { q, .. } => ListCodes::RaBitQ(RaBitQPacked::new(q).expect("dim checked by with_rabitq")),
        };
        FsList { ids: Vec::new(), codes }
    }

    /// Learns the coarse centroids (k-means), then the quantizer on the training set's
    /// residuals (or vectors). Allowed only while the index is empty.
    pub fn train(&mut self, data: &[f32]) -> Result<()> {
        if !self.is_empty() {
            return Err(Error::Parameter {
                name: "train",
                what: "the index holds vectors; train before adding".into(),
            });
        }
        let x = prepare_rows("training data", data, self.dim, self.metric)?;
        let n = x.len();
        if n < self.params.nlist {
            return Err(Error::TooFewTrainingPoints { index: self.name(), nlist: self.params.nlist, got: n });
        }
        let centroids = KMeans::new(self.params.nlist)
            .iterations(self.params.iterations)
            .seed(self.params.seed)
            .max_points_per_centroid(self.params.max_points_per_centroid)
            .spherical(self.metric != Metric::L2)
            .fit(x.as_slice(), self.dim)?
            .into_centroids();
        let coarse = Coarse::build(self.params.coarse, centroids, self.dim, self.metric)?;
        // RaBitQ has nothing to learn: its rotation is drawn, its codes about each centroid.
        if let FsCodec::Pq { pq, .. } = &mut self.codec {
            if self.by_residual {
                let mut sample = x.as_slice().to_vec();
                let labels = assign_rows(coarse.get(), &sample, self.dim)?;
                subtract_lists(&mut sample, &labels, coarse.get().centroids(), self.dim);
                // Score-aware training (when the quantizer has a threshold) protects the error
                // along each full vector, not along its residual.
                pq.train_with_directions(&sample, x.as_slice())?;
            } else {
                pq.train(x.as_slice())?;
            }
        }
        self.coarse = Some(coarse);
        self.prepare();
        self.lists = (0..self.params.nlist).map(|_| self.empty_list()).collect();
        self.locations = OnceLock::new();
        self.fingerprint = self.compute_fingerprint();
        Ok(())
    }

    /// What the codec precomputes over the centroids (after training and after reading): the
    /// list terms of L2 over PQ residuals; RaBitQ's rotated centroids are forgotten, made again
    /// on the first add.
    fn prepare(&mut self) {
        let Some(coarse) = &self.coarse else { return };
        let (pq, list_terms) = match &mut self.codec {
            FsCodec::RaBitQ { rotated_centroids, .. } => {
                rotated_centroids.reset();
                return;
            }
            FsCodec::Pq { pq, list_terms } => (pq, list_terms),
        };
        list_terms.clear();
        if self.metric != Metric::L2 || !self.by_residual || !pq.is_trained() {
            return;
        }
        let (dim, t) = (self.dim, pq.m() * 16);
        let dsub = pq.dsub();
        let norms: Vec<f32> = pq.centroids().chunks_exact(dsub).map(|c| c.iter().map(|v| v * v).sum::<f32>()).collect();
        let mut terms = vec![0f32; self.params.nlist * t];
        let pq = &*pq;
        terms.par_chunks_mut(t).zip(coarse.get().centroids().par_chunks(dim)).for_each(|(terms, c)| {
            // −⟨c_j, c_jk⟩ per entry; the centroid passed the input checks, the length is dim.
            if pq.inner_product_table(c, terms).is_ok() {
                for (v, n) in terms.iter_mut().zip(&norms) {
                    *v = n - 2.0 * *v;
                }
            }
        });
        *list_terms = terms;
    }

    fn compute_fingerprint(&self) -> u64 {
        use xxhash_rust::xxh3::Xxh3;
        let mut h = Xxh3::new();
        h.update(b"vq-ivf fast-scan trained state v1\0");
        h.update(self.name().as_bytes());
        h.update(self.metric.name().as_bytes());
        h.update(&(self.dim as u64).to_le_bytes());
        h.update(&[u8::from(self.by_residual)]);
        let trained = match &self.codec {
            FsCodec::Pq { pq, .. } => pq.centroids(),
            FsCodec::RaBitQ { q, .. } => q.rotation(),
        };
        for v in self.centroids().iter().chain(trained) {
            h.update(&v.to_le_bytes());
        }
        h.digest()
    }

    /// Adds `data` (row-major) under ids continuing from the number of vectors ever added.
    pub fn add(&mut self, data: &[f32]) -> Result<()> {
        let ids = self.ids.next_ids(data.len() / self.dim)?;
        self.add_with_ids(data, &ids)
    }

    /// Adds `data` under `ids` (one per row, none present); on error nothing is added.
    pub fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        let rows = validate_rows("vectors", data, self.dim, self.metric)?;
        if ids.len() != rows {
            return Err(Error::IdCount { ids: ids.len(), vectors: rows });
        }
        self.ids.check_new(ids)?;
        // Encode everything before touching the lists, so a failure adds nothing.
        let encoded = self.encode_add(data)?;
        self.append(encoded.parts, ids)
    }

    /// The `&self` half of an add, as [`IvfIndex::encode_add`](crate::IvfIndex::encode_add):
    /// `data` assigned to lists and encoded (standard 4-bit codes), for
    /// [`add_encoded`](IvfFastScan::add_encoded) to pack into the lists' blocks.
    pub fn encode_add(&self, data: &[f32]) -> Result<EncodedAdd> {
        encode_add_in(
            self.is_trained(),
            data,
            self.dim,
            self.fingerprint,
            || self.not_trained(),
            |chunk| self.encode(chunk),
        )
    }

    /// Adds `data` under `ids` (`None`: continuing ids) from its
    /// [`encode_add`](IvfFastScan::encode_add) encoding, redone if missing or made for another
    /// trained state or batch. Errors and effects as [`add_with_ids`](IvfFastScan::add_with_ids).
    pub fn add_encoded(&mut self, encoded: Option<EncodedAdd>, data: &[f32], ids: Option<&[u64]>) -> Result<()> {
        let (encoded, ids) =
            checked_encoding(encoded, data, (self.dim, self.fingerprint), ids, &self.ids, |d| self.encode_add(d))?;
        self.append(encoded.parts, &ids)
    }

    /// Packs encoded rows (checked) into their lists' blocks under `ids`.
    fn append(&mut self, encoded: Vec<(Vec<u32>, Vec<u8>)>, ids: &[u64]) -> Result<()> {
        let rows = ids.len();
        let cs = self.codec.code_size();
        // Rows grouped by list (a counting sort), so each list's codes are packed in one call.
        let mut counts = vec![0usize; self.lists.len()];
        encoded.iter().flat_map(|(labels, _)| labels).for_each(|&l| counts[l as usize] += 1);
        let mut start = vec![0usize; self.lists.len() + 1];
        for (l, &c) in counts.iter().enumerate() {
            start[l + 1] = start[l] + c;
        }
        let mut order_ids = vec![0u64; rows];
        let mut order_codes = vec![0u8; rows * cs];
        let mut at = start.clone();
        let mut next = ids.iter();
        for (labels, codes) in &encoded {
            for (&label, code) in labels.iter().zip(codes.chunks_exact(cs)) {
                let slot = &mut at[label as usize];
                // One id per row: `ids.len() == rows` was checked.
                order_ids[*slot] = *next.next().expect("one id per row");
                order_codes[*slot * cs..(*slot + 1) * cs].copy_from_slice(code);
                *slot += 1;
            }
        }
        drop(encoded);
        self.locations = OnceLock::new();
        self.lists.par_iter_mut().enumerate().try_for_each(|(l, list)| {
            let (a, b) = (start[l], start[l + 1]);
            if a == b {
                return Ok(());
            }
            let n = b - a;
            let len = list.ids.len();
            // Exactly on a list's first add; at least a quarter of the list when it grows
            // again, so repeated small adds stay amortized without Vec's doubling.
            let room = if len == 0 { n } else { n.max(len / 4) };
            if list.ids.capacity() - len < n {
                list.ids.reserve_exact(room);
            }
            list.codes.make_room(len, n, room);
            list.ids.extend_from_slice(&order_ids[a..b]);
            list.codes.extend(&order_codes[a * cs..b * cs])
        })?;
        self.ids.insert(ids);
        Ok(())
    }

    /// The list and the standard 4-bit code of every row of `chunk` (validated rows).
    fn encode(&self, chunk: &[f32]) -> Result<(Vec<u32>, Vec<u8>)> {
        let x = prepare_rows("vectors", chunk, self.dim, self.metric)?;
        let coarse = self.coarse().ok_or_else(|| self.not_trained())?;
        let labels = assign_rows(coarse, x.as_slice(), self.dim)?;
        let mut codes = vec![0u8; x.len() * self.codec.code_size()];
        let residuals = || {
            let mut r = x.as_slice().to_vec();
            subtract_lists(&mut r, &labels, coarse.centroids(), self.dim);
            r
        };
        match &self.codec {
            FsCodec::Pq { pq, .. } if self.by_residual => {
                pq.encode_with_directions(&residuals(), x.as_slice(), &mut codes)?
            }
            FsCodec::Pq { pq, .. } => pq.encode(x.as_slice(), &mut codes)?,
            FsCodec::RaBitQ { q, rotated_centroids } => {
                q.encode_about(&residuals(), rotated_centroids.get(q, coarse.centroids()), &labels, &mut codes)?
            }
        }
        Ok((labels, codes))
    }

    /// The `k` best matches of every query (row-major): `num_queries × k`, best first, ties
    /// to the smaller id, padded with `u64::MAX` when fewer than `k` entries are in the probed
    /// lists. Parallel over queries. A filter widens the probe as in [`IvfIndex::search`]; a
    /// filter that lists its ids ([`IdFilter::accepted_ids`]) and passes few vectors is
    /// answered from them when that costs less than the coarse search and the scan: each list
    /// holding passing entries scanned with a mask of them, the answer of `nprobe = nlist`
    /// (the map from ids to entries it needs is built on first use and counted in
    /// [`IvfFastScan::memory_usage`]).
    ///
    /// [`IvfIndex::search`]: crate::IvfIndex::search
    pub fn search(&self, queries: &[f32], k: usize, opts: &IvfSearch<'_>) -> Result<Neighbors> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        if k == 0 {
            return Err(vq_distance::Error::ZeroK.into());
        }
        let rows = match opts.filter {
            None => self.scan_probes(queries, opts, None, |_| TopK::new(k))?,
            Some(filter) => {
                let (nprobe, nlist) = (resolved_nprobe(opts, &self.params)?, self.params.nlist);
                let p = self.pass_rate(filter);
                match self.search_listed(queries, k, filter, widened_nprobe(nprobe, nlist, p))? {
                    Some(rows) => rows,
                    None => {
                        let test = FilterTest::at(filter, p);
                        filtered_rows(queries, self.dim, k, (nprobe, nlist, p), |q, nprobe| {
                            let opts = IvfSearch { nprobe: Some(nprobe), ..*opts };
                            self.scan_probes(q, &opts, Some(test), |_| TopK::new(k))
                        })?
                    }
                }
            }
        };
        Ok(Neighbors::from_rows(k, self.metric, rows)?)
    }

    /// The filtered search of `queries` from the filter's listed ids, when that costs less
    /// than the coarse search and the masked scan of `probed` lists ([`listed_is_cheaper`]);
    /// `None` otherwise. Each list holding passing entries is scanned as a search probing every
    /// list scans it (its table, then a mask of its passing rows, [`PackedCodes::scan_masked`]),
    /// so the answers are those of `nprobe = nlist`: every passing vector ranked by its
    /// fast-scan score, short only when fewer than `k` pass.
    fn search_listed(
        &self,
        queries: &[f32],
        k: usize,
        filter: &dyn IdFilter,
        probed: usize,
    ) -> Result<Option<QueryHits>> {
        let Some(count) = filter.accepted_count() else { return Ok(None) };
        let shape = (self.len(), self.params.nlist, self.dim, self.codec.m());
        let cheaper = listed_is_cheaper(count, probed, shape, self.list_table_cost());
        let Some(ids) = filter.accepted_ids().filter(|_| cheaper) else { return Ok(None) };
        let coarse = self.coarse.as_ref().ok_or_else(|| self.not_trained())?;
        let q = prepare_rows("queries", queries, self.dim, self.metric)?;
        let locations = self.locations.get_or_init(|| Locations::of(self.lists.iter().map(|l| l.ids.as_slice())));
        let mut at: Vec<(u32, u32)> = ids.iter().filter_map(|&id| locations.get(id)).collect();
        at.sort_unstable();
        // Per list holding passing entries, its masks up to its last passing block: `groups`
        // holds (list, range of `masks`).
        let (mut groups, mut masks) = (Vec::new(), Vec::new());
        for run in at.chunk_by(|a, b| a.0 == b.0) {
            let start = masks.len();
            push_row_masks(run.iter().map(|&(_, p)| p as usize), &mut masks);
            groups.push((run[0].0 as usize, start..masks.len()));
        }
        let (metric, nq, chunk) = (self.metric, q.len(), LISTED_QUERY_CHUNK);
        let rotated = self.rotated_queries(q.as_slice());
        let rows = (0..nq.div_ceil(chunk))
            .into_par_iter()
            .map_init(Vec::new, |scratch: &mut Vec<Scratch>, c| {
                let queries = c * chunk..((c + 1) * chunk).min(nq);
                // A worker's tables serve every chunk it scores.
                scratch.resize_with(queries.len().max(scratch.len()), || Scratch::new(self.codec.m()));
                let mut tops: Vec<TopK> = queries.clone().map(|_| TopK::new(k)).collect();
                for (i, s) in queries.clone().zip(scratch.iter_mut()) {
                    self.query_tables(q.row(i), mapped_row(&rotated, i, self.dim), s)?;
                }
                for (list, masks) in groups.iter().map(|(l, r)| (*l, &masks[r.clone()])) {
                    let l = &self.lists[list];
                    for ((i, s), top) in queries.clone().zip(scratch.iter_mut()).zip(&mut tops) {
                        let key = if self.by_residual { coarse.list_key(q.row(i), list) } else { 0.0 };
                        self.enter_list(list, key, q.row(i), s)?;
                        l.codes.scan(s, top, Rows::Masked(masks), |row| l.ids[row])?;
                    }
                }
                Ok(tops.into_iter().map(|top| top.into_hits(metric)).collect::<Vec<_>>())
            })
            .collect::<Result<Vec<_>>>()?
            .concat();
        Ok(Some(rows))
    }

    /// What moving the quantized table to a list costs ([`listed_is_cheaper`]'s units): L2
    /// over residuals adds and quantizes `m × 16` terms per list, the other tables only take
    /// an offset.
    fn list_table_cost(&self) -> usize {
        if self.codec.list_terms().is_empty() { 0 } else { self.codec.m() * 16 / LIST_TERMS_PER_UNIT }
    }

    /// Every entry of each query's `nprobe` probed lists whose fast-scan score (the one
    /// [`search`](IvfFastScan::search) ranks by, from the query's 8-bit tables) is within
    /// `radius` ([`Metric::within`]), in [`RangeResult`]'s layout. One scan of the lists,
    /// whose integer threshold is the radius'. Multi-bit RaBitQ codes are bounded by their sign
    /// bits against the radius (see [`RaBitQFastScan::range_filtered`]): one whose bound fails,
    /// a few in a hundred, may be left out though its score is inside.
    ///
    /// [`RaBitQFastScan::range_filtered`]: vq_quant::fastscan::RaBitQFastScan::range_filtered
    pub fn range_search(&self, queries: &[f32], radius: f32, opts: &IvfSearch<'_>) -> Result<RangeResult> {
        // (`range_rows` checks the trained state, the radius and the queries.)
        let nq = queries.len() / self.dim.max(1);
        Ok(RangeResult::from_rows(self.metric, self.range_rows(queries, &vec![radius; nq], opts)?)?)
    }

    /// [`IvfFastScan::range_search`] with a radius per query (`radii[i]` for the `i`-th), each
    /// query's hits in scan order, unsorted: the candidates a refine stage re-scores and sorts
    /// itself. `radii` must hold one radius per query, none NaN.
    pub fn range_rows(&self, queries: &[f32], radii: &[f32], opts: &IvfSearch<'_>) -> Result<Vec<Vec<(u64, f32)>>> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        let max_keys = range_keys(self.metric, queries.len(), self.dim, radii)?;
        let test = opts.filter.map(|f| FilterTest::at(f, self.pass_rate(f)));
        self.scan_probes(queries, opts, test, |i| WithinKey::new(max_keys[i]))
    }

    /// The fraction of the stored entries `filter` passes, from a fixed sample of them.
    fn pass_rate(&self, filter: &dyn IdFilter) -> f64 {
        pass_rate(self.lists.iter().map(|l| l.ids.as_slice()), filter)
    }

    /// The coarse search of `queries`, then every query's probed lists scanned into a
    /// collector from `collector`, given the query's position in the batch; parallel over
    /// queries, each entry tested by `test` (`opts.filter`'s, `None` without one).
    fn scan_probes<S: ScanSink + Send>(
        &self,
        queries: &[f32],
        opts: &IvfSearch<'_>,
        test: Option<FilterTest<'_>>,
        collector: impl Fn(usize) -> S + Sync,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let nprobe = resolved_nprobe(opts, &self.params)?;
        let q = prepare_rows("queries", queries, self.dim, self.metric)?;
        let nq = q.len();
        if nq == 0 {
            return Ok(Vec::new());
        }
        let coarse = self.coarse().ok_or_else(|| self.not_trained())?;
        let (mut lists, mut coarse_keys) = (vec![0u32; nq * nprobe], vec![0f32; nq * nprobe]);
        coarse.search_with_ef(q.as_slice(), nprobe, opts.coarse_ef, &mut lists, &mut coarse_keys)?;
        let metric = self.metric;
        let rotated = self.rotated_queries(q.as_slice());
        (0..nq)
            .into_par_iter()
            .map_init(
                || Scratch::new(self.codec.m()),
                |scratch, i| {
                    let probes = &lists[i * nprobe..][..nprobe];
                    let keys = &coarse_keys[i * nprobe..][..nprobe];
                    let mut found = collector(i);
                    let rotated = mapped_row(&rotated, i, self.dim);
                    self.scan_one(q.row(i), rotated, probes, keys, test, scratch, &mut found)?;
                    Ok(found.into_hits(metric))
                },
            )
            .collect()
    }

    /// The rotated rows of a batch of (prepared) queries when the lists hold RaBitQ codes
    /// (rotating them together is faster than one by one, and gives each row's own bits);
    /// empty for PQ lists.
    fn rotated_queries(&self, queries: &[f32]) -> Vec<f32> {
        match &self.codec {
            FsCodec::RaBitQ { q, .. } => q.rotate(queries),
            FsCodec::Pq { .. } => Vec::new(),
        }
    }

    /// Scans one query's probed lists into `sink`.
    #[allow(clippy::too_many_arguments)]
    fn scan_one(
        &self,
        query: &[f32],
        rotated: &[f32],
        lists: &[u32],
        coarse_keys: &[f32],
        test: Option<FilterTest<'_>>,
        s: &mut Scratch,
        sink: &mut impl ScanSink,
    ) -> Result<()> {
        self.query_tables(query, rotated, s)?;
        for (&list, &coarse_key) in lists.iter().zip(coarse_keys) {
            // An approximate coarse search pads with u32::MAX when it finds fewer lists.
            let Some(l) = self.lists.get(list as usize) else { continue };
            if l.ids.is_empty() {
                continue;
            }
            // A selective filter is tested on the list's ids up front, a block of 32 rows to a
            // mask: a list none of whose entries pass costs no table, and a block none of
            // whose rows pass is not summed.
            if let Some(FilterTest::Masked(f)) = test {
                s.positions.clear();
                f.accepted_positions(&l.ids, &mut s.positions);
                if s.positions.is_empty() {
                    continue;
                }
                s.masks.clear();
                push_row_masks(s.positions.iter().copied(), &mut s.masks);
            }
            self.enter_list(list as usize, coarse_key, query, s)?;
            let ids = &l.ids;
            match test {
                None => l.codes.scan(s, sink, Rows::All, |row| ids[row])?,
                Some(FilterTest::Masked(_)) => l.codes.scan(s, sink, Rows::Masked(&s.masks), |row| ids[row])?,
                Some(FilterTest::Lazy(f)) => {
                    let keep = |row: usize| f.accepts(ids[row]);
                    l.codes.scan(s, sink, Rows::Kept(&keep), |row| ids[row])?
                }
            }
        }
        Ok(())
    }

    /// The query's part of its tables, before any list: the quantized table itself, or (L2
    /// over residuals) the query's terms each list adds its own to. `rotated`: the query's
    /// row of [`IvfFastScan::rotated_queries`] (empty for PQ lists).
    fn query_tables(&self, query: &[f32], rotated: &[f32], s: &mut Scratch) -> Result<()> {
        let (pq, list_terms) = match &self.codec {
            FsCodec::Pq { pq, list_terms } => (pq, list_terms),
            // One table for every list: the codes fold their centroid's terms in.
            FsCodec::RaBitQ { q, .. } => {
                RaBitQLut::in_slot_rotated(&mut s.rabitq, q, rotated)?;
                return Ok(());
            }
        };
        if !list_terms.is_empty() {
            // −2⟨q_j, c_jk⟩; the list's terms are added per probed list.
            pq.inner_product_table(query, &mut s.query_terms)?;
            s.query_terms.iter_mut().for_each(|v| *v *= 2.0);
        } else {
            match pq.metric() {
                Metric::L2 => pq.l2_table(query, &mut s.table)?,
                _ => pq.inner_product_table(query, &mut s.table)?,
            }
            s.lut.fill(&s.table)?;
        }
        Ok(())
    }

    /// Moves the quantized table to `list`, whose coarse key is `coarse_key` (after
    /// [`query_tables`](IvfFastScan::query_tables) of `query`).
    fn enter_list(&self, list: usize, coarse_key: f32, query: &[f32], s: &mut Scratch) -> Result<()> {
        match &self.codec {
            FsCodec::RaBitQ { q, .. } => {
                if let Some(lut) = &mut s.rabitq {
                    lut.set_offset(coarse_key);
                    if q.bits() > 1 {
                        // Multi-bit codes' first-stage bounds scale with ‖q − c‖ (d flops a
                        // list: exact for every metric, where the coarse key is ‖q − c‖² for
                        // L2 only).
                        let centroid = &self.centroids()[list * self.dim..][..self.dim];
                        lut.set_center_distance(Kernels::active().f32_l2_sq_fn()(query, centroid).sqrt());
                    }
                }
            }
            FsCodec::Pq { pq, list_terms } if !list_terms.is_empty() => {
                // The per-list work: one add and quantize of m × 16 keys, in SIMD.
                let t = pq.m() * 16;
                s.lut.fill_sum(&list_terms[list * t..][..t], &s.query_terms)?;
                s.lut.set_offset(coarse_key);
            }
            FsCodec::Pq { .. } if self.by_residual => s.lut.set_offset(coarse_key),
            FsCodec::Pq { .. } => {}
        }
        Ok(())
    }

    /// Removes the given ids (unknown ids are skipped); returns how many were removed.
    pub fn remove_ids(&mut self, ids: &[u64]) -> usize {
        let set: HashSet<u64> = ids.iter().copied().filter(|&id| self.ids.contains(id)).collect();
        if set.is_empty() {
            return 0;
        }
        self.remove_where(|id| set.contains(&id))
    }

    /// Removes every entry (Faiss' `reset`), keeping the training: the index is as right after
    /// `train`, and `add` numbers ids from 0 again.
    pub fn reset(&mut self) {
        let empty = self.empty_list();
        self.lists.iter_mut().for_each(|list| *list = empty.clone());
        self.ids = IdTracker::default();
        self.locations = OnceLock::new();
    }

    /// Removes every id for which `remove` is `true`; returns how many were removed. The
    /// survivors keep their order within each list.
    pub fn remove_where(&mut self, remove: impl Fn(u64) -> bool + Sync) -> usize {
        let removed: Vec<Vec<u64>> = self
            .lists
            .par_iter_mut()
            .map(|l| {
                let gone: Vec<u64> = l.ids.iter().copied().filter(|&id| remove(id)).collect();
                if !gone.is_empty() {
                    let ids = &l.ids;
                    l.codes.retain(|row| !remove(ids[row]));
                    l.ids.retain(|&id| !remove(id));
                }
                gone
            })
            .collect();
        let removed = removed.concat();
        if !removed.is_empty() {
            self.locations = OnceLock::new();
        }
        self.ids.remove(&removed);
        removed.len()
    }

    /// The stored vector of `id` decoded (plus its centroid over residuals). Scans the lists:
    /// for many ids, [`IvfFastScan::reconstruct_batch`] scans once.
    pub fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        self.reconstruct_batch(&[id])
    }

    /// [`IvfFastScan::reconstruct`] of every id of `ids` (row-major, in their order) with one
    /// scan of the lists. An id not present is [`Error::UnknownId`].
    pub fn reconstruct_batch(&self, ids: &[u64]) -> Result<Vec<f32>> {
        if let Some(&id) = ids.iter().find(|&&id| !self.ids.contains(id)) {
            return Err(Error::UnknownId(id));
        }
        let at = positions_in_lists(ids, self.lists.iter().map(|l| l.ids.as_slice()));
        let mut out = vec![0f32; ids.len() * self.dim];
        for (row, &id) in out.chunks_exact_mut(self.dim).zip(ids) {
            let Some((list, pos)) = at[&id] else { return Err(Error::UnknownId(id)) };
            let code = self.lists[list].codes.code(pos).ok_or(Error::UnknownId(id))?;
            match &self.codec {
                FsCodec::Pq { pq, .. } => pq.decode(&code, row)?,
                FsCodec::RaBitQ { q, .. } => q.decode(&code, row)?,
            }
            if self.by_residual {
                let c = &self.centroids()[list * self.dim..][..self.dim];
                row.iter_mut().zip(c).for_each(|(v, c)| *v += c);
            }
        }
        Ok(out)
    }

    /// List sizes and their imbalance.
    pub fn list_stats(&self) -> ListStats {
        ListStats::from_sizes(self.params.nlist, self.lists.iter().map(|l| l.ids.len()))
    }

    /// Bytes held, by part (allocated capacity). Codes are `m / 2` bytes a vector plus the
    /// padding of each list's last block of 32.
    pub fn memory_usage(&self) -> IvfMemory {
        IvfMemory {
            codes: self.lists.iter().map(|l| l.codes.memory_bytes()).sum(),
            ids: self.lists.iter().map(|l| l.ids.capacity() * 8).sum::<usize>()
                + self.ids.memory_bytes()
                + self.lists.capacity() * size_of::<FsList>()
                + self.locations.get().map_or(0, Locations::memory_bytes),
            trained: self.coarse().map_or(0, |c| c.centroids().len() * 4 + c.extra_bytes())
                + match &self.codec {
                    FsCodec::Pq { pq, list_terms } => pq.memory_bytes() + list_terms.capacity() * 4,
                    FsCodec::RaBitQ { q, rotated_centroids } => q.memory_bytes() + rotated_centroids.memory_bytes(),
                },
            // Never mapped: the file holds plain codes and memory the packed fast-scan
            // layout, so a mapped read repacks every list into owned blocks.
            mapped: 0,
        }
    }

    /// Moves every entry of `other` into this index, each id plus `shift_ids` (Faiss'
    /// `merge_from`). Refused, with nothing moved, for every reason
    /// [`check_merge`](IvfFastScan::check_merge) names.
    pub fn merge_from(&mut self, other: IvfFastScan, shift_ids: u64) -> Result<()> {
        let moved = self.check_merge(&other, shift_ids)?;
        self.locations = OnceLock::new();
        for (mine, theirs) in self.lists.iter_mut().zip(other.lists) {
            mine.ids.extend(theirs.ids.iter().map(|&id| id + shift_ids));
            mine.codes.extend(&theirs.codes.unpack_all())?;
        }
        self.ids.insert(&moved);
        Ok(())
    }

    /// Every check of [`merge_from`](IvfFastScan::merge_from), with nothing moved, so that a
    /// caller who must keep `other` when the merge would be refused can ask first: refused
    /// with [`Error::NotTrained`] when either side is untrained, [`Error::Incompatible`] when
    /// the shapes differ, [`Error::TrainedStateMismatch`] when `other` was trained
    /// separately, [`Error::Parameter`] when a shifted id overflows and
    /// [`Error::DuplicateId`] naming the first (shifted) id already here. `Ok` holds `other`'s
    /// shifted ids, in list order.
    pub fn check_merge(&self, other: &IvfFastScan, shift_ids: u64) -> Result<Vec<u64>> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        if !other.is_trained() {
            return Err(other.not_trained());
        }
        if (self.dim, self.metric, self.name(), self.by_residual)
            != (other.dim, other.metric, other.name(), other.by_residual)
        {
            return Err(Error::Incompatible {
                what: format!(
                    "{} (dimension {}, {}) into {} (dimension {}, {})",
                    other.name(),
                    other.dim,
                    other.metric.name(),
                    self.name(),
                    self.dim,
                    self.metric.name()
                ),
            });
        }
        if self.fingerprint != other.fingerprint {
            return Err(Error::TrainedStateMismatch { ours: self.fingerprint, theirs: other.fingerprint });
        }
        self.ids.shifted_absent(other.lists.iter().flat_map(|l| &l.ids).copied(), other.len(), shift_ids)
    }
}

/// Units of [`listed_is_cheaper`]'s costs: about a nanosecond each on the 2-core AVX-512
/// machine they were fit on (BENCHMARKS.md, "IVF fast scan from listed ids"). A listed id
/// found and sorted into its list.
const LISTED_LOOKUP_COST: f64 = 6.0;
/// Summing one block of 32 codes, per sub-quantizer.
const BLOCK_SUM_COST_PER_M: f64 = 0.16;
/// Entering a list beyond its table: its masks and the scan's set-up.
const LIST_SETUP_COST: f64 = 10.0;
/// Dimensions a unit of the coarse search scores (the blocked kernel over every centroid),
/// and of one list's coarse key on the listed path (the pair kernel, a centroid read).
const COARSE_DIMS_PER_UNIT: f64 = 20.0;
const KEY_DIMS_PER_UNIT: f64 = 6.0;
/// A scanned entry's filter test (a masked list's ids, one by one).
const ENTRY_TEST_COST: f64 = 1.8;
/// Table terms added and quantized per unit (L2 over residuals moves its table per list).
const LIST_TERMS_PER_UNIT: usize = 4;
/// Queries scored together on the listed path: a list's masked blocks are read once for them
/// all (1.15-1.2x over one query at a time on textemb100k, PQ96; 8 to 64 measured alike).
const LISTED_QUERY_CHUNK: usize = 16;

/// Whether scoring a filter's `count` listed entries, list by list, costs less than the
/// coarse search of `nlist` lists and the masked scan of `probed` of them over an index of
/// `len` entries, dimension `dim`, `m` sub-quantizers, moving the table to a list costing
/// `table`. The listed path enters every list holding a passing entry (with its coarse key),
/// the scan about `probed / nlist` of them, after testing every entry of the probed lists.
fn listed_is_cheaper(
    count: usize,
    probed: usize,
    (len, nlist, dim, m): (usize, usize, usize, usize),
    table: usize,
) -> bool {
    let hit = lists_holding(count, nlist);
    let (count, probed, len, nlist, dim) = (count as f64, probed as f64, len as f64, nlist.max(1) as f64, dim as f64);
    let per_list = LIST_SETUP_COST + table as f64;
    let blocks = count * BLOCK_SUM_COST_PER_M * m as f64;
    let listed = count * LISTED_LOOKUP_COST + blocks + hit * (per_list + dim / KEY_DIMS_PER_UNIT);
    let share = probed / nlist;
    let scan = nlist * dim / COARSE_DIMS_PER_UNIT + share * len * ENTRY_TEST_COST + share * (blocks + hit * per_list);
    listed < scan
}

/// Below this pass rate a filter is tested on every entry of a probed list up front, a mask
/// per block of 32 (`PackedCodes::scan_masked`), and blocks with no passing entry are not
/// summed; above it, only the rows whose sums could enter the top-k are tested, after the
/// sums. textemb100k, IVF1024,PQ96x4fs, 1,000 queries, nprobe 8 / 32, masks against rows:
/// 0.3 % 1.85 / 1.62×, 1 % 1.41 / 1.26×, 2 % 1.14 / 1.06×, 3 % 1.09 / 0.98×, 5 % 0.99 / 0.89×,
/// 20 % 0.89 / 0.79× (BENCHMARKS.md, session 19).
const MASKED_PASS_RATE: f64 = 0.03;

/// How a scan tests a filter on the entries of a probed list.
#[derive(Clone, Copy)]
enum FilterTest<'a> {
    /// After the sums, only the rows whose sums could enter the top-k.
    Lazy(&'a dyn IdFilter),
    /// Up front, every entry, into a mask per block of 32: a block with no passing entry is
    /// not summed, a list with none costs no table.
    Masked(&'a dyn IdFilter),
}

impl<'a> FilterTest<'a> {
    /// The test for a filter passing a fraction `pass_rate` ([`MASKED_PASS_RATE`]).
    fn at(filter: &'a dyn IdFilter, pass_rate: f64) -> Self {
        if pass_rate < MASKED_PASS_RATE { FilterTest::Masked(filter) } else { FilterTest::Lazy(filter) }
    }
}

/// Appends to `masks` the masks of a list's rows `rows` (ascending) in
/// [`PackedCodes::scan_masked`]'s layout: bit `r % 32` of mask `r / 32`, up to the last row's
/// block.
fn push_row_masks(rows: impl Iterator<Item = usize>, masks: &mut Vec<u32>) {
    let start = masks.len();
    for r in rows {
        let at = start + r / BLOCK;
        if at >= masks.len() {
            masks.resize(at + 1, 0);
        }
        masks[at] |= 1 << (r % BLOCK);
    }
}

/// A query's reusable tables.
struct Scratch {
    /// The float table of the current list (or of the query), `m × 16`.
    table: Vec<f32>,
    /// L2 over residuals: the query's `−2⟨q_j, c_jk⟩`.
    query_terms: Vec<f32>,
    lut: QuantizedLut,
    /// RaBitQ lists: the query's table, made by the first query it serves.
    rabitq: Option<RaBitQLut>,
    /// A filter's passing positions in the current list, and as a mask per block of 32.
    positions: Vec<usize>,
    masks: Vec<u32>,
}

impl Scratch {
    fn new(m: usize) -> Self {
        let table = vec![0f32; m * 16];
        // A table of zeros quantizes (it is rewritten before any scan).
        let lut = QuantizedLut::new(&table).expect("m ≥ 1 rows of finite keys");
        Scratch { query_terms: table.clone(), table, lut, rabitq: None, positions: Vec::new(), masks: Vec::new() }
    }
}

#[derive(Serialize, Deserialize)]
struct Meta {
    dim: usize,
    metric: String,
    params: IvfParams,
    m: usize,
    by_residual: bool,
    added: u64,
    fingerprint: u64,
    /// What the lists hold: `"pq"` (4-bit PQ, the quantizer under `.pq`; files written before
    /// RaBitQ lists have no such field) or `"rabitq"` (under `.rabitq`).
    #[serde(default = "pq_codes")]
    codes: String,
}

fn pq_codes() -> String {
    "pq".into()
}

fn corrupt(section: &str, what: impl Into<String>) -> Error {
    Error::Corrupt { section: section.into(), what: what.into() }
}

impl IvfFastScan {
    /// Writes the index as sections named `{prefix}.*`: `.ivf_fs` (JSON: dimension, metric,
    /// parameters, m, by_residual, ids ever added, fingerprint), `.centroids`, `.pq.*` (the
    /// quantizer's sections), `.list_sizes`, `.list_ids`, and `.list_codes` as standard 4-bit
    /// PQ codes (the packing is a memory layout, not a file format).
    pub fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        let meta = Meta {
            dim: self.dim,
            metric: self.metric.name().into(),
            params: self.params.clone(),
            m: self.codec.m(),
            by_residual: self.by_residual,
            added: self.ids.added(),
            fingerprint: self.fingerprint,
            codes: match self.codec {
                FsCodec::Pq { .. } => pq_codes(),
                FsCodec::RaBitQ { .. } => "rabitq".into(),
            },
        };
        w.add_json(&format!("{prefix}.ivf_fs"), META_VERSION, &meta)?;
        w.add_array(&format!("{prefix}.centroids"), ARRAY_VERSION, self.centroids())?;
        match &self.codec {
            FsCodec::Pq { pq, .. } => pq.write_sections(w, &format!("{prefix}.pq"))?,
            FsCodec::RaBitQ { q, .. } => q.write_sections(w, &format!("{prefix}.rabitq"))?,
        }
        if let Some(Coarse::Hnsw(h)) = &self.coarse {
            let name = format!("{prefix}.coarse_hnsw");
            h.graph().write_to(w, &name).map_err(|e| corrupt(&name, e.to_string()))?;
        }
        let sizes: Vec<u64> = self.lists.iter().map(|l| l.ids.len() as u64).collect();
        w.add_array(&format!("{prefix}.list_sizes"), ARRAY_VERSION, &sizes)?;
        w.add_array_parts(&format!("{prefix}.list_ids"), ARRAY_VERSION, self.lists.iter().map(|l| &l.ids[..]))?;
        let all_codes: Vec<u8> = self.lists.iter().flat_map(|l| l.codes.unpack_all()).collect();
        w.add_array(&format!("{prefix}.list_codes"), ARRAY_VERSION, &all_codes)?;
        Ok(())
    }

    /// Reads what [`write_sections`](IvfFastScan::write_sections) wrote under `prefix`,
    /// validating shapes, centroids, codes, unique ids and the fingerprint.
    pub fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        let names = ["ivf_fs", "centroids", "list_sizes", "list_ids", "list_codes"].map(|s| format!("{prefix}.{s}"));
        let [meta_name, cent_name, sizes_name, ids_name, codes_name] = &names;
        r.check_versions(&[
            (meta_name, META_VERSION),
            (cent_name, ARRAY_VERSION),
            (sizes_name, ARRAY_VERSION),
            (ids_name, ARRAY_VERSION),
            (codes_name, ARRAY_VERSION),
        ])?;
        let meta: Meta = r.json(meta_name)?;
        let metric: Metric =
            meta.metric.parse().map_err(|_| corrupt(meta_name, format!("unknown metric {:?}", meta.metric)))?;
        if meta.dim == 0 || meta.dim > vq_io::MAX_DIM {
            return Err(corrupt(meta_name, format!("dimension {} is outside 1..={}", meta.dim, vq_io::MAX_DIM)));
        }
        meta.params.check().map_err(|e| corrupt(meta_name, e.to_string()))?;
        let mut index = match meta.codes.as_str() {
            "pq" => {
                let pq = ProductQuantizer::read_sections(r, &format!("{prefix}.pq"))?;
                if pq.dim() != meta.dim || pq.m() != meta.m || pq.nbits() != 4 || pq.metric() != inner_metric(metric) {
                    return Err(corrupt(
                        meta_name,
                        format!(
                            "the quantizer sections hold {} over dimension {}, not PQ{}x4",
                            pq.name(),
                            pq.dim(),
                            meta.m
                        ),
                    ));
                }
                let mut index = IvfFastScan::new(meta.dim, metric, meta.params, pq.params().clone(), meta.by_residual)
                    .map_err(|e| corrupt(meta_name, e.to_string()))?;
                index.codec = FsCodec::Pq { pq, list_terms: Vec::new() };
                index
            }
            "rabitq" => {
                let q = RaBitQuantizer::read_sections(r, &format!("{prefix}.rabitq"))?;
                let scannable = q.bits() == 1 || q.sign_factors();
                if q.dim() != meta.dim
                    || q.centered()
                    || !scannable
                    || q.metric() != inner_metric(metric)
                    || !meta.by_residual
                {
                    return Err(corrupt(
                        meta_name,
                        format!(
                            "the quantizer sections hold {} over dimension {} not coding residuals of {}{}",
                            q.name(),
                            q.dim(),
                            meta.dim,
                            if scannable { "" } else { " with their sign bits' factors" }
                        ),
                    ));
                }
                // Around the quantizer read, not a new one: a new one draws its rotation (a QR
                // of a d × d Gaussian matrix: 14 % of reading textemb100k's IVF1024,RaBitQfs4).
                let codec = FsCodec::RaBitQ { q, rotated_centroids: RotatedCentroids::default() };
                let index = IvfFastScan::with_codec(meta.dim, metric, meta.params, true, codec);
                if index.codec.m() != meta.m {
                    return Err(corrupt(meta_name, format!("{} nibbles of bits for dimension {}", meta.m, meta.dim)));
                }
                index
            }
            other => {
                return Err(corrupt(meta_name, format!("lists of {other:?} codes: vq writes \"pq\" or \"rabitq\"")));
            }
        };
        let centroids: &[f32] = r.array(cent_name)?;
        let nlist = index.params.nlist;
        let trained = !centroids.is_empty();
        if trained {
            if Some(centroids.len()) != nlist.checked_mul(meta.dim) {
                return Err(corrupt(
                    cent_name,
                    format!("{} values for nlist {nlist} × dimension {}", centroids.len(), meta.dim),
                ));
            }
            validate_rows("centroids", centroids, meta.dim, Metric::L2)
                .map_err(|e| corrupt(cent_name, e.to_string()))?;
            if index.pq().is_some_and(|pq| !pq.is_trained()) {
                return Err(corrupt(meta_name, "trained centroids with an untrained quantizer"));
            }
        }
        let sizes: &[u64] = r.array(sizes_name)?;
        let ids: &[u64] = r.array(ids_name)?;
        let codes: &[u8] = r.array(codes_name)?;
        let cs = index.codec.code_size();
        let expected_lists = if trained { nlist } else { 0 };
        if sizes.len() != expected_lists {
            return Err(corrupt(sizes_name, format!("{} lists, expected {expected_lists}", sizes.len())));
        }
        let total = sizes.iter().try_fold(0u64, |a, &s| a.checked_add(s));
        if total != Some(ids.len() as u64) {
            return Err(corrupt(sizes_name, format!("list sizes do not add up to the {} ids", ids.len())));
        }
        if Some(codes.len()) != ids.len().checked_mul(cs) {
            return Err(corrupt(codes_name, format!("{} bytes for {} codes of {cs} bytes", codes.len(), ids.len())));
        }
        match &index.codec {
            FsCodec::Pq { pq, .. } => validate_codes(pq, codes, codes_name)?,
            FsCodec::RaBitQ { q, .. } => validate_codes(q, codes, codes_name)?,
        }
        if let Some(id) = repeated_id(ids.iter().copied()) {
            return Err(corrupt(ids_name, format!("id {id} appears twice")));
        }
        if trained {
            let (c, coarse_metric) = (centroids.to_vec(), inner_metric(metric));
            index.coarse = Some(match index.params.coarse {
                CoarseKind::Flat => Coarse::Flat(
                    FlatCoarse::new(c, meta.dim, coarse_metric).map_err(|e| corrupt(cent_name, e.to_string()))?,
                ),
                CoarseKind::Hnsw { .. } => {
                    let name = format!("{prefix}.coarse_hnsw");
                    let graph = vq_graph::Hnsw::read_from(r, &name).map_err(|e| corrupt(&name, e.to_string()))?;
                    Coarse::Hnsw(
                        HnswCoarse::from_graph(c, meta.dim, coarse_metric, graph)
                            .map_err(|e| corrupt(&name, e.to_string()))?,
                    )
                }
            });
        }
        let mut lists = Vec::with_capacity(expected_lists);
        let mut at = 0usize;
        for &s in sizes {
            let s = s as usize;
            let mut list = index.empty_list();
            list.ids = ids[at..at + s].to_vec();
            list.codes.reserve(s);
            list.codes.extend(&codes[at * cs..(at + s) * cs])?;
            lists.push(list);
            at += s;
        }
        index.lists = lists;
        index.ids = IdTracker::from_ids(ids.iter().copied(), ids.len(), meta.added);
        if trained {
            index.prepare();
            index.fingerprint = index.compute_fingerprint();
        }
        if index.fingerprint != meta.fingerprint {
            return Err(corrupt(
                meta_name,
                format!(
                    "fingerprint {:016x} does not match the trained state read ({:016x})",
                    meta.fingerprint, index.fingerprint
                ),
            ));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use vq_distance::{IdBitset, IdSet};

    use super::*;

    /// A coarse quantizer whose search finds no list (pads with `u32::MAX`), as an HNSW coarse
    /// graph read from a damaged file can: the fuzzer's `read_index` finding of session 14,
    /// where `add` then indexed the centroids with `u32::MAX`.
    struct FindsNothing(Vec<f32>);

    impl CoarseQuantizer for FindsNothing {
        fn nlist(&self) -> usize {
            1
        }
        fn centroids(&self) -> &[f32] {
            &self.0
        }
        fn search(&self, _: &[f32], _: usize, lists: &mut [u32], keys: &mut [f32]) -> crate::Result<()> {
            lists.fill(u32::MAX);
            keys.fill(f32::INFINITY);
            Ok(())
        }
        fn extra_bytes(&self) -> usize {
            0
        }
    }

    #[test]
    fn a_row_the_coarse_search_files_nowhere_is_an_error() {
        let coarse = FindsNothing(vec![0.0; 4]);
        let got = assign_rows(&coarse, &[1.0; 8], 4);
        assert!(matches!(got, Err(Error::Parameter { name: "coarse", .. })), "{got:?}");
    }

    fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        (0..n)
            .flat_map(|i| {
                let centre = (i % 5) as f32 * 2.0 - 4.0;
                (0..dim).map(|d| centre * if d % 2 == 0 { 1.0 } else { -0.5 } + next() * 2.0).collect::<Vec<_>>()
            })
            .collect()
    }

    fn params(nlist: usize) -> IvfParams {
        IvfParams { iterations: 5, ..IvfParams::new(nlist) }
    }

    fn pq(m: usize) -> PqParams {
        PqParams { iterations: 5, ..PqParams::new(m, 4) }
    }

    fn built(metric: Metric, by_residual: bool, base: &[f32], dim: usize) -> IvfFastScan {
        let mut index = IvfFastScan::new(dim, metric, params(8), pq(dim / 2), by_residual).unwrap();
        index.train(base).unwrap();
        index.add(base).unwrap();
        index
    }

    /// The float key (smaller is better, the inner metric's) of the query against id's
    /// reconstruction: the slow twin of the fast scan (asymmetric distance to `c + r̂`).
    fn float_key(index: &IvfFastScan, q: &[f32], id: u64) -> f32 {
        let x = index.reconstruct(id).unwrap();
        match index.metric() {
            Metric::L2 => q.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum(),
            _ => -q.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>(),
        }
    }

    /// The quantization bound of any list's table for query `q`: half a step per
    /// sub-quantizer, a step being the largest row range of that table over 255.
    fn bound(index: &IvfFastScan, q: &[f32]) -> f32 {
        let pq = index.pq().expect("PQ lists");
        let (m, dsub, dim) = (pq.m(), pq.dsub(), index.dim);
        let books = pq.centroids();
        let mut worst = 0f32;
        for list in 0..index.params.nlist {
            let c = &index.centroids()[list * dim..][..dim];
            let r: Vec<f32> = match (index.metric, index.by_residual) {
                (Metric::L2, true) => q.iter().zip(c).map(|(a, b)| a - b).collect(),
                _ => q.to_vec(),
            };
            for j in 0..m {
                let keys: Vec<f32> = (0..16)
                    .map(|k| {
                        let cent = &books[(j * 16 + k) * dsub..][..dsub];
                        let rj = &r[j * dsub..][..dsub];
                        match index.metric {
                            Metric::L2 => rj.iter().zip(cent).map(|(a, b)| (a - b) * (a - b)).sum(),
                            _ => -rj.iter().zip(cent).map(|(a, b)| a * b).sum::<f32>(),
                        }
                    })
                    .collect();
                let (lo, hi) = keys.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &k| (l.min(k), h.max(k)));
                worst = worst.max(hi - lo);
            }
        }
        0.5 * m as f32 * worst / 255.0 * 1.01 + 1e-4
    }

    /// Against the slow twin with every list probed: each score is within the quantization
    /// bound of the float asymmetric distance of its id, and every id of the float top-10 is
    /// found unless it scores within twice the bound of the 10th.
    #[test]
    fn fast_scan_matches_the_float_distances_to_the_reconstructions() {
        let dim = 16;
        let base = data(1500, dim, 1);
        let queries = data(6, dim, 2);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            for by_residual in [true, false] {
                let index = built(metric, by_residual, &base, dim);
                assert_eq!(index.len(), 1500);
                let hits = index.search(&queries, 10, &IvfSearch { nprobe: Some(8), ..Default::default() }).unwrap();
                let prepared = prepare_rows("q", &queries, dim, metric).unwrap();
                for (i, (ids, scores)) in hits.iter().enumerate() {
                    let q = prepared.row(i);
                    let b = bound(&index, q);
                    let what = format!("{metric:?} residual {by_residual} query {i}");
                    assert_eq!(ids.len(), 10, "{what}");
                    for (&id, &score) in ids.iter().zip(scores) {
                        let key = float_key(&index, q, id);
                        let got = metric.key_from_score(score);
                        assert!(
                            (got - key).abs() <= b + 1e-5 * key.abs(),
                            "{what}: id {id}: {got} vs {key} (bound {b})"
                        );
                    }
                    let mut all: Vec<(f32, u64)> = (0..1500u64).map(|id| (float_key(&index, q, id), id)).collect();
                    all.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let last = all[9].0;
                    for &(key, id) in &all[..10] {
                        assert!(ids.contains(&id) || key >= last - 2.0 * b, "{what}: missed {id}");
                    }
                }
            }
        }
    }

    /// Recall@10 against exact search with every list probed is at least the float IVFADC's
    /// over codes of the same size.
    #[test]
    fn recall_against_exact_search() {
        let dim = 16;
        let base = data(2000, dim, 3);
        let queries = data(20, dim, 4);
        for metric in [Metric::L2, Metric::Cosine] {
            let index = built(metric, true, &base, dim);
            let truth = vq_distance::knn_exact(
                prepare_rows("b", &base, dim, metric).unwrap().as_slice(),
                prepare_rows("q", &queries, dim, metric).unwrap().as_slice(),
                dim,
                10,
                metric,
            )
            .unwrap();
            let hits = index.search(&queries, 10, &IvfSearch { nprobe: Some(8), ..Default::default() }).unwrap();
            let recall = |hits: &Neighbors| {
                let found: usize = hits
                    .iter()
                    .zip(truth.iter())
                    .map(|((h, _), (t, _))| h.iter().filter(|id| t.contains(id)).count())
                    .sum();
                found as f64 / 200.0
            };
            // The float twin: IVFADC over the same kind of codes (trained on its own).
            let mut twin =
                crate::IvfIndex::new(dim, metric, params(8), crate::PqCodec::new(dim, metric, dim / 2, 4).unwrap())
                    .unwrap();
            twin.train(&base).unwrap();
            twin.add(&base).unwrap();
            let want =
                recall(&twin.search(&queries, 10, &IvfSearch { nprobe: Some(8), ..Default::default() }).unwrap());
            let got = recall(&hits);
            // (This data's directions are close together: cosine recall of 4-bit codes is low
            // for both; the claim is that the fast scan loses nothing to the float scan.)
            assert!(got >= want - 0.05, "{metric:?}: recall@10 {got}, float ADC {want}");
            assert!(metric != Metric::L2 || got >= 0.6, "{metric:?}: recall@10 {got}");
        }
    }

    /// Range search against its slow twin, a k-NN search of every entry (`k = n`, so the
    /// threshold never prunes) cut at the radius: the same entries and scores, to the bit,
    /// for each metric, with and without residuals and a per-list table, with a filter, and
    /// at radii that keep nothing or everything.
    #[test]
    fn range_search_is_the_full_search_cut_at_the_radius() {
        let dim = 16;
        let base = data(1500, dim, 5);
        let queries = data(12, dim, 6);
        let odd = |id: u64| id % 2 == 1;
        // 2.5 % pass: below MASKED_PASS_RATE, so tested up front, a mask per block.
        let rare = |id: u64| id % 40 == 7;
        for (metric, by_residual) in
            [(Metric::L2, true), (Metric::L2, false), (Metric::InnerProduct, true), (Metric::Cosine, false)]
        {
            let index = built(metric, by_residual, &base, dim);
            for filter in [None, Some(&odd as &dyn IdFilter), Some(&rare)] {
                let opts = IvfSearch { nprobe: Some(3), filter, ..Default::default() };
                // The unfiltered search of every probed entry, then the filter (a filtered k-NN
                // search would probe more lists; range search does not).
                let every = index.search(&queries, 1500, &IvfSearch { filter: None, ..opts }).unwrap();
                let all: Vec<(Vec<u64>, Vec<f32>)> = every
                    .iter()
                    .map(|(ids, scores)| {
                        ids.iter().zip(scores).filter(|&(&id, _)| filter.is_none_or(|f| f.accepts(id))).unzip()
                    })
                    .collect();
                // The 30th score of the query with the most passing entries: 0 to a few hundred
                // hits a query (the rare filter passes a few dozen: the last of them).
                let most = all.iter().map(|(_, s)| s).max_by_key(|s| s.len()).unwrap();
                let radius = most[29.min(most.len() - 1)];
                let got = index.range_search(&queries, radius, &opts).unwrap();
                assert_eq!(got.num_queries(), 12);
                for (q, ((ids, scores), (gids, gscores))) in all.iter().zip(got.iter()).enumerate() {
                    let inside = scores.iter().take_while(|&&s| metric.within(s, radius)).count();
                    assert_eq!(gids, &ids[..inside], "{metric:?} residual {by_residual} query {q}");
                    let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(gscores), bits(&scores[..inside]), "{metric:?} query {q}: scores");
                    assert!(gids.iter().all(|&id| filter.is_none_or(|f| f.accepts(id))));
                }
                assert!(got.total_hits() > 12, "{metric:?}: radius too tight to test anything");
                let worst = metric.worst_score();
                assert_eq!(index.range_search(&queries, -worst, &opts).unwrap().total_hits(), 0, "keeps nothing");
                let everything = index.range_search(&queries, worst, &opts).unwrap();
                let probed: usize = all.iter().map(|(ids, _)| ids.iter().filter(|&&id| id != u64::MAX).count()).sum();
                assert_eq!(everything.total_hits(), probed, "{metric:?}: an infinite radius keeps every probed entry");
            }
        }
        let index = built(Metric::L2, true, &base, dim);
        assert!(index.range_search(&queries, f32::NAN, &IvfSearch::default()).is_err());
        let untrained = IvfFastScan::new(dim, Metric::L2, params(8), pq(dim / 2), true).unwrap();
        assert!(matches!(untrained.range_search(&queries, 1.0, &IvfSearch::default()), Err(Error::NotTrained { .. })));
    }

    #[test]
    fn filter_remove_merge_and_persistence() {
        let dim = 8;
        let base = data(600, dim, 5);
        let queries = data(4, dim, 6);
        for (metric, rabitq) in [Metric::L2, Metric::InnerProduct].into_iter().flat_map(|m| [(m, false), (m, true)]) {
            let make = |p: IvfParams| {
                if rabitq {
                    IvfFastScan::with_rabitq(dim, metric, p).unwrap()
                } else {
                    IvfFastScan::new(dim, metric, p, pq(4), true).unwrap()
                }
            };
            let mut index = make(params(4));
            index.train(&base).unwrap();
            let ids: Vec<u64> = (0..600u64).map(|i| 10 + 2 * i).collect();
            index.add_with_ids(&base[..300 * dim], &ids[..300]).unwrap();
            index.add_with_ids(&base[300 * dim..], &ids[300..]).unwrap();
            assert_eq!(index.len(), 600);
            let all = IvfSearch { nprobe: Some(4), ..Default::default() };
            let got = index.search(&queries, 5, &all).unwrap();

            // A filter: only accepted ids come back, and they are the unfiltered order's.
            let kept: Vec<u64> = ids.iter().copied().filter(|id| id % 4 == 0).collect();
            let odd_half = IdBitset::from_ids(&kept);
            let f = index.search(&queries, 5, &IvfSearch { filter: Some(&odd_half), ..all }).unwrap();
            assert!(f.ids().iter().all(|&id| id % 4 == 0), "{metric:?}");

            // Persistence: the same answers, bit for bit.
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("fs.vq");
            let mut w = ContainerWriter::create(&path).unwrap();
            index.write_sections(&mut w, "x").unwrap();
            w.finish().unwrap();
            let back = IvfFastScan::read_sections(&ContainerReader::open(&path).unwrap(), "x").unwrap();
            assert_eq!(back.fingerprint(), index.fingerprint());
            assert_eq!(back.search(&queries, 5, &all).unwrap(), got, "{metric:?}");

            // Removal: the removed ids never come back; the others keep their scores.
            let first: Vec<u64> = got.get(0).unwrap().0.to_vec();
            let mut smaller = index.clone();
            assert_eq!(smaller.remove_ids(&[first[0], 999_999]), 1);
            assert_eq!(smaller.len(), 599);
            let after = smaller.search(&queries, 5, &all).unwrap();
            assert!(!after.ids().contains(&first[0]));
            assert_eq!(after.get(0).unwrap().0[..4], first[1..5]);
            assert!(matches!(smaller.reconstruct(first[0]), Err(Error::UnknownId(_))));

            // Merge: a shard built from the same trained, empty index.
            let mut empty = IvfFastScan::read_sections(&ContainerReader::open(&path).unwrap(), "x").unwrap();
            empty.remove_where(|_| true);
            let mut a = empty.clone();
            let mut b = empty.clone();
            a.add_with_ids(&base[..300 * dim], &ids[..300]).unwrap();
            b.add_with_ids(&base[300 * dim..], &ids[300..]).unwrap();
            a.merge_from(b.clone(), 0).unwrap();
            assert_eq!(a.search(&queries, 5, &all).unwrap().ids(), got.ids());
            assert!(matches!(a.check_merge(&b, 0), Err(Error::DuplicateId(d)) if ids[300..].contains(&d)));
            assert_eq!(b.len(), 300, "check_merge moves nothing");
            assert!(matches!(a.merge_from(b, 0), Err(Error::DuplicateId(_))));
            let mut other = make(IvfParams { seed: 9, ..params(4) });
            other.train(&base[dim..]).unwrap();
            assert!(matches!(a.merge_from(other, 5000), Err(Error::TrainedStateMismatch { .. })));
            // PQ4 over 8 dimensions: 2 bytes a vector; RaBitQ: 1 byte of bits and 3 factors.
            let mem = index.memory_usage();
            let per = if rabitq { 1 + 12 } else { 2 };
            assert!(mem.codes >= 600 * per && mem.codes <= 4 * per * 32 + 600 * per, "{mem:?}");
            // The other kind of lists is not merged in.
            let kind = if rabitq {
                IvfFastScan::new(dim, metric, params(4), pq(4), true).unwrap()
            } else {
                IvfFastScan::with_rabitq(dim, metric, params(4)).unwrap()
            };
            assert!(matches!(empty.check_merge(&kind, 0), Err(Error::NotTrained { .. } | Error::Incompatible { .. })));
        }
    }

    /// RaBitQ lists against their slow twin, the float estimate of `IVF{n},RaBitQ`'s scorer:
    /// every entry (every list probed, k = n) keyed within the byte table's bound, `2 |w| ·`
    /// max_error, of the float key of its standard code offset by its list's coarse key; and
    /// the top-10 the float keys' top-10 up to twice that.
    #[test]
    fn rabitq_lists_key_every_entry_as_the_float_estimate_within_the_table_bound() {
        let (dim, n) = (20, 500);
        let base = data(n, dim, 21);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let mut index = IvfFastScan::with_rabitq(dim, metric, params(8)).unwrap();
            index.train(&base).unwrap();
            index.add(&base).unwrap();
            assert_eq!(index.name(), "IVF8,RaBitQfs");
            let q = index.rabitq().unwrap();
            let coarse = index.coarse.as_ref().unwrap();
            let all = IvfSearch { nprobe: Some(8), ..Default::default() };
            let ids: Vec<u64> = (0..n as u64).collect();
            let at = positions_in_lists(&ids, index.lists.iter().map(|l| l.ids.as_slice()));
            for query in data(3, dim, 22).chunks_exact(dim) {
                let got = index.search(query, n, &all).unwrap();
                let (hits, scores) = got.get(0).unwrap();
                assert_eq!(hits.len(), n, "{metric:?}");
                let qn = prepare_rows("q", query, dim, metric).unwrap();
                let qn = qn.row(0);
                let max_error = RaBitQLut::new(q, qn).unwrap().max_error();
                let mut scorer = q.residual_scorer(qn).unwrap();
                let mut float = Vec::new();
                for (&id, &score) in hits.iter().zip(scores) {
                    let (list, pos) = at[&id].unwrap();
                    let code = index.lists[list].codes.code(pos).unwrap();
                    scorer.set_offset(coarse.list_key(qn, list));
                    let want = vq_quant::CodeScorer::distance(&scorer, &code);
                    let w = f32::from_le_bytes(code[dim.div_ceil(8) + 4..][..4].try_into().unwrap());
                    let bound = 2.0 * w.abs() * max_error * 1.001 + 1e-4 * (1.0 + want.abs());
                    let key = metric.key_from_score(score);
                    assert!((key - want).abs() <= bound, "{metric:?} id {id}: {key} against {want} (bound {bound})");
                    float.push((want, id, bound));
                }
                float.sort_by(|a, b| a.0.total_cmp(&b.0));
                let last = metric.key_from_score(scores[9]);
                for &(want, id, bound) in &float[..10] {
                    assert!(hits[..10].contains(&id) || want >= last - 2.0 * bound, "{metric:?}: missed {id}");
                }
            }
        }
    }

    /// Multi-bit RaBitQ lists (`IVF{n},RaBitQfs{b}`) against their slow twin, the float keys of
    /// `IVF{n},RaBitQ{b}`'s scorer over every code of the probed lists: every hit keyed as that
    /// scorer keys its code (the table only bounds which codes are scored), the top 10 (all
    /// lists or two, with and without a filter) at least 97 % of the twin's, each list's
    /// first-stage scale the query's exact distance to its centroid; a file read back answers
    /// the same.
    #[test]
    fn multi_bit_rabitq_lists_score_as_the_float_estimate() {
        let (dim, n, nlist) = (72, 1500, 6);
        let base = data(n, dim, 31);
        let queries = data(8, dim, 32);
        let even = |id: u64| id.is_multiple_of(2);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            for bits in [2, 4, 9] {
                let mut index = IvfFastScan::with_rabitq_bits(dim, metric, params(nlist), bits).unwrap();
                index.train(&base).unwrap();
                index.add(&base).unwrap();
                assert_eq!(index.name(), format!("IVF{nlist},RaBitQfs{bits}"));
                let q = index.rabitq().unwrap();
                assert_eq!(q.code_size(), usize::from(bits) * 9 + 24, "sign plane, its factors, the rest");
                let coarse = index.coarse.as_ref().unwrap();
                let (mut found, mut wanted) = (0, 0);
                for (nprobe, filtered) in [(nlist, false), (2, false), (nlist, true)] {
                    let probe = IvfSearch { nprobe: Some(nprobe), ..Default::default() };
                    let keep = |id: u64| !filtered || even(id);
                    let got = if filtered {
                        index.search(&queries, 10, &IvfSearch { filter: Some(&even), ..probe }).unwrap()
                    } else {
                        index.search(&queries, 10, &probe).unwrap()
                    };
                    for (i, query) in queries.chunks_exact(dim).enumerate() {
                        let qn = prepare_rows("q", query, dim, metric).unwrap();
                        let qn = qn.row(0);
                        let (mut lists, mut keys) = (vec![0u32; nprobe], vec![0f32; nprobe]);
                        coarse.get().search(qn, nprobe, &mut lists, &mut keys).unwrap();
                        let mut scorer = q.residual_scorer(qn).unwrap();
                        let mut twin = Vec::new();
                        let mut s = Scratch::new(index.codec.m());
                        index.query_tables(qn, &q.rotate(qn), &mut s).unwrap();
                        for (&list, &key) in lists.iter().zip(&keys) {
                            let l = &index.lists[list as usize];
                            scorer.set_offset(key);
                            for (pos, &id) in l.ids.iter().enumerate().filter(|&(_, &id)| keep(id)) {
                                let code = l.codes.code(pos).unwrap();
                                twin.push((vq_quant::CodeScorer::distance(&scorer, &code), id));
                            }
                            index.enter_list(list as usize, key, qn, &mut s).unwrap();
                            let c = &index.centroids()[list as usize * dim..][..dim];
                            let exact = qn.iter().zip(c).map(|(&a, &b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt();
                            let scale = f64::from(s.rabitq.as_ref().unwrap().center_distance().unwrap());
                            assert!(
                                (scale - exact).abs() <= 1e-5 * (1.0 + exact),
                                "list {list}: {scale} against {exact}"
                            );
                        }
                        let (hits, scores) = got.get(i).unwrap();
                        for (&id, &score) in hits.iter().zip(scores) {
                            let want = twin.iter().find(|t| t.1 == id).unwrap_or_else(|| panic!("{id} not probed")).0;
                            let key = metric.key_from_score(score);
                            assert!(
                                (key - want).abs() <= 1e-5 * (1.0 + want.abs()),
                                "{metric:?} {bits}: {id} {key} {want}"
                            );
                            assert!(keep(id), "{id} did not pass the filter");
                        }
                        twin.sort_by(|a, b| a.0.total_cmp(&b.0));
                        found += twin[..10].iter().filter(|t| hits.contains(&t.1)).count();
                        wanted += 10;
                    }
                }
                assert!(found as f64 >= 0.97 * wanted as f64, "{metric:?} {bits} bits: {found} of {wanted}");
                let mut w = ContainerWriter::in_memory().unwrap();
                index.write_sections(&mut w, "x").unwrap();
                let bytes = w.finish_to_bytes().unwrap();
                let back =
                    IvfFastScan::read_sections(&ContainerReader::from_bytes(&bytes, true).unwrap(), "x").unwrap();
                let probe = IvfSearch { nprobe: Some(3), ..Default::default() };
                let (a, b) = (index.search(&queries, 10, &probe).unwrap(), back.search(&queries, 10, &probe).unwrap());
                assert_eq!((a.ids(), a.scores()), (b.ids(), b.scores()), "{metric:?} {bits}: read back");
                assert_eq!(back.name(), index.name());
            }
        }
    }

    #[test]
    fn a_listed_filter_is_answered_as_a_scan_of_every_list() {
        let dim = 16;
        let base = data(4000, dim, 11);
        let queries = data(12, dim, 12);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            // PQ lists over residuals or vectors, and RaBitQ lists (always residuals).
            for (by_residual, rabitq) in [(true, false), (false, false), (true, true)] {
                let mut index = if rabitq {
                    IvfFastScan::with_rabitq(dim, metric, params(16)).unwrap()
                } else {
                    IvfFastScan::new(dim, metric, params(16), pq(8), by_residual).unwrap()
                };
                index.train(&base).unwrap();
                index.add(&base[..3000 * dim]).unwrap();
                // About 0.5 % of the ids pass (and one id the index does not hold): nprobe 1
                // widens to 15 of the 16 lists, so listing the ids is the cheaper path.
                let check = |index: &IvfFastScan, passing: &[u64], what: &str| {
                    let set: IdSet = passing.iter().copied().chain([1 << 40]).collect();
                    let predicate = |id: u64| set.accepts(id);
                    let before = index.memory_usage().ids;
                    // k = 40 is more than pass: both answers are padded alike.
                    for k in [5, 40] {
                        let listed = IvfSearch { filter: Some(&set), nprobe: Some(1), ..Default::default() };
                        let scanned = IvfSearch { filter: Some(&predicate), nprobe: Some(16), ..Default::default() };
                        let (listed, scanned) =
                            (index.search(&queries, k, &listed), index.search(&queries, k, &scanned));
                        assert_eq!(listed.unwrap(), scanned.unwrap(), "{metric:?} {} {what} k {k}", index.name());
                    }
                    // The listed path ran: it built the map from ids to entries, and counts it.
                    assert!(index.memory_usage().ids > before, "{metric:?} {} {what}", index.name());
                };
                let passing: Vec<u64> = (0..4000).filter(|id| id % 197 == 3).collect();
                check(&index, &passing, "built");
                index.add(&base[3000 * dim..]).unwrap();
                check(&index, &passing, "after an add");
                assert_eq!(index.remove_ids(&passing[..4]), 4);
                check(&index, &passing[4..], "after a removal");
            }
        }
    }

    #[test]
    fn misuse_is_a_typed_error() {
        let dim = 8;
        assert!(matches!(
            IvfFastScan::new(dim, Metric::L2, params(4), PqParams::new(4, 8), true),
            Err(Error::Parameter { name: "nbits", .. })
        ));
        assert!(IvfFastScan::new(dim, Metric::L2, params(4), pq(3), true).is_err());
        let mut index = IvfFastScan::new(dim, Metric::L2, params(4), pq(4), true).unwrap();
        assert!(matches!(index.add(&[0.0; 8]), Err(Error::NotTrained { .. })));
        assert!(matches!(index.search(&[0.0; 8], 1, &IvfSearch::default()), Err(Error::NotTrained { .. })));
        assert!(matches!(index.train(&data(3, dim, 1)), Err(Error::TooFewTrainingPoints { .. })));
        index.train(&data(300, dim, 1)).unwrap();
        assert!(index.add(&[f32::NAN; 8]).is_err());
        assert!(matches!(index.add_with_ids(&[0.0; 16], &[1]), Err(Error::IdCount { .. })));
        assert!(matches!(index.add_with_ids(&[0.0; 16], &[1, 1]), Err(Error::DuplicateId(1))));
        assert!(index.is_empty(), "failed adds add nothing");
        let q = [0.5f32; 8];
        let empty = index.search(&q, 3, &IvfSearch::default()).unwrap();
        assert!(empty.ids().iter().all(|&id| id == u64::MAX), "an empty index pads");
        index.add(&data(5, dim, 2)).unwrap();
        assert!(matches!(index.search(&q, 0, &IvfSearch::default()), Err(Error::Input(_))));
        assert!(matches!(
            index.search(&q, 1, &IvfSearch { nprobe: Some(0), ..Default::default() }),
            Err(Error::ZeroNprobe)
        ));
        assert!(index.search(&q[..7], 1, &IvfSearch::default()).is_err());
        assert!(matches!(index.train(&data(300, dim, 1)), Err(Error::Parameter { name: "train", .. })));
        let all = index.search(&q, 10, &IvfSearch { nprobe: Some(100), ..Default::default() }).unwrap();
        assert_eq!(all.get(0).unwrap().0.len(), 5, "nprobe above nlist scans everything");
    }
}
