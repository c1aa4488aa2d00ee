//! [`IvfIndex`]: the coarse quantizer, the inverted lists, and the verbs over them.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_cluster::KMeans;
use vq_distance::{IdFilter, Metric, Neighbors, RangeResult, TopK, prepare_rows, validate_rows};
use vq_io::MappedArray;
use vq_quant::{Quantizer, ScanSink, WithinKey};

use crate::coarse::{CoarseQuantizer, FlatCoarse, HnswCoarse, assign_rows, subtract_lists};
use crate::codec::{IvfCodec, ListScanner, mapped_row};
use crate::error::{Error, Result};
use crate::filter::{Gather, filtered_rows, lists_holding, pass_rate, widened_nprobe};
use crate::ids::{IdTracker, Locations, positions_in_lists};

/// Codes scored per call of the codec's block kernel.
const BLOCK: usize = 256;
/// Vectors assigned and encoded per step of `add`, bounding its scratch memory.
const ADD_CHUNK: usize = 65_536;
/// Most queries searched list-major together (one scanner each).
const MAX_LIST_MAJOR_CHUNK: usize = 2048;
/// A batch is searched list-major when its queries probe each list at least this many times
/// on average (`queries · nprobe ≥ this · nlist`); below, a list would rarely be read twice.
const MIN_SHARED_PROBES: usize = 2;
/// What the coarse search costs per list it scores, in scanned entries (the read of an id and
/// a filter's test): a filtered search scores the listed ids instead of scanning when
/// `listed · entry + keyed · LISTED_LIST_COST < scanned + nlist · COARSE_LIST_COST + probed ·
/// (move + per_probe)`, `entry` and `move` the codec's [`IvfCodec::listed_entry_cost`] and
/// [`IvfCodec::list_move_cost`], `keyed` the lists the listed entries fall in (residual codecs
/// only), `per_probe` [`QUERY_MAJOR_LIST_COST`] for a scan query by query. Fit on imgsift100k
/// (d = 128; BENCHMARKS.md "Filtered IVF search"), then on textemb100k (session 20).
const COARSE_LIST_COST: usize = 5;
/// What a residual codec's listed path pays per list holding listed entries (its coarse key
/// and the scanner's move), in scanned entries; and what a scan that goes query by query
/// ([`IvfCodec::scans_by_list`] false: IVF-PQ over inner product) pays per probed list beyond
/// its entries. Fit on forced runs of both paths, imgsift100k and textemb100k, IVF1024 Flat /
/// SQ8 / PQ16 / PQ48 / PQ96, 0.2-5 % passing, nprobe 8-128 (BENCHMARKS.md, session 20): the
/// time lost to the slower path's choice fell from 2.9 % to 0.9 % on average, at most
/// 1.63x to 1.37x.
const LISTED_LIST_COST: usize = 35;
const QUERY_MAJOR_LIST_COST: usize = 150;

/// Decoded rows of one block of a list.
struct Block<'a> {
    list: usize,
    ids: &'a [u64],
    rows: &'a [f32],
}

/// The lists a search with `opts` probes before a filter widens them: its `nprobe` or the
/// index's, at most `nlist`; 0 is an error.
pub(crate) fn resolved_nprobe(opts: &IvfSearch<'_>, params: &IvfParams) -> Result<usize> {
    match opts.nprobe.unwrap_or(params.nprobe) {
        0 => Err(Error::ZeroNprobe),
        p => Ok(p.min(params.nlist)),
    }
}

/// Each query's hits, `(id, score)`.
pub(crate) type QueryHits = Vec<Vec<(u64, f32)>>;

/// Offers a block of one list's entries (`ids`, at most [`BLOCK`], and their codes) to `top`,
/// keyed by `scanner`, already moved to that list.
fn offer_scanned(scanner: &impl ListScanner, ids: &[u64], codes: &[u8], top: &mut impl ScanSink, keys: &mut [f32]) {
    let keys = &mut keys[..ids.len()];
    scanner.keys_within(codes, keys, top.threshold());
    ids.iter().zip(keys.iter()).for_each(|(&id, &key)| top.push(key, id));
}

/// Per-thread scratch of a list scan: the codec's keys of one block, and the gathered
/// entries of a filtered one.
struct ScanScratch {
    keys: Vec<f32>,
    gather: Gather,
}

impl Default for ScanScratch {
    fn default() -> Self {
        ScanScratch { keys: vec![0.0; BLOCK], gather: Gather::default() }
    }
}

/// The coarse search's answer for a batch: `nprobe` lists and coarse keys per query.
struct Probes<'a> {
    queries: &'a [f32],
    nprobe: usize,
    lists: &'a [u32],
    coarse_keys: &'a [f32],
}

impl Probes<'_> {
    fn query(&self, i: usize, dim: usize) -> &[f32] {
        &self.queries[i * dim..][..dim]
    }

    /// Queries `range`, consecutive rows.
    fn queries(&self, range: std::ops::Range<usize>, dim: usize) -> &[f32] {
        &self.queries[range.start * dim..range.end * dim]
    }

    fn of(&self, i: usize) -> (&[u32], &[f32]) {
        (&self.lists[i * self.nprobe..][..self.nprobe], &self.coarse_keys[i * self.nprobe..][..self.nprobe])
    }
}

/// How an [`IvfIndex`] is shaped and trained (Faiss' names and defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IvfParams {
    /// Number of inverted lists (coarse centroids).
    pub nlist: usize,
    /// Lists scanned per query when a search does not say (Faiss' default 1).
    #[serde(default = "default_nprobe")]
    pub nprobe: usize,
    /// k-means iterations of the coarse quantizer (Faiss' 10 for IVF).
    #[serde(default = "default_iterations", alias = "niter")]
    pub iterations: usize,
    /// Training sets above `nlist ×` this are sampled down (Faiss' 256).
    #[serde(default = "default_max_points_per_centroid")]
    pub max_points_per_centroid: usize,
    /// Seed of the coarse k-means.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How lists are found: every centroid scored, or an HNSW graph over them.
    #[serde(default)]
    pub coarse: CoarseKind,
}

/// The coarse quantizer an [`IvfIndex`] trains (the `_HNSW{m}` of `IVF65536_HNSW32,Flat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoarseKind {
    /// Every centroid scored ([`FlatCoarse`]): exact, cost linear in `nlist`.
    #[default]
    Flat,
    /// An HNSW graph of `m` links per node over the centroids ([`HnswCoarse`]): approximate,
    /// for `nlist` in the tens of thousands.
    Hnsw {
        /// Links per node.
        m: usize,
    },
}

impl CoarseKind {
    /// The factory-string suffix of `IVF{nlist}`: empty or `_HNSW{m}`.
    pub fn suffix(&self) -> String {
        match self {
            CoarseKind::Flat => String::new(),
            CoarseKind::Hnsw { m } => format!("_HNSW{m}"),
        }
    }
}

fn default_nprobe() -> usize {
    1
}
fn default_iterations() -> usize {
    10
}
fn default_max_points_per_centroid() -> usize {
    256
}
fn default_seed() -> u64 {
    1234
}

impl IvfParams {
    /// `nlist` lists, every other field at its default.
    pub fn new(nlist: usize) -> Self {
        IvfParams {
            nlist,
            nprobe: default_nprobe(),
            iterations: default_iterations(),
            max_points_per_centroid: default_max_points_per_centroid(),
            seed: default_seed(),
            coarse: CoarseKind::Flat,
        }
    }

    /// The same, with an HNSW coarse quantizer of `m` links per node.
    pub fn with_hnsw(mut self, m: usize) -> Self {
        self.coarse = CoarseKind::Hnsw { m };
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        let bad = |name, what: &str| Err(Error::Parameter { name, what: what.into() });
        if self.nlist == 0 || self.nlist > u32::MAX as usize {
            return bad("nlist", "must be in 1..=2^32-1");
        }
        if self.nprobe == 0 {
            return Err(Error::ZeroNprobe);
        }
        if self.iterations == 0 {
            return bad("iterations", "must be at least 1");
        }
        if self.max_points_per_centroid == 0 {
            return bad("max_points_per_centroid", "must be at least 1");
        }
        if let CoarseKind::Hnsw { m } = self.coarse
            && !(2..=1024).contains(&m)
        {
            return bad("coarse", "HNSW m must be in 2..=1024");
        }
        Ok(())
    }
}

/// Per-search settings of an [`IvfIndex`].
#[derive(Clone, Copy, Default)]
pub struct IvfSearch<'a> {
    /// Lists scanned per query; `None`: [`IvfParams::nprobe`]. `0` is an error; above `nlist`
    /// it is clamped to `nlist` (every list: the codec's exhaustive search).
    pub nprobe: Option<usize>,
    /// Only ids the filter accepts are returned (rejected entries are not scored). A filtered
    /// k-NN search probes more lists than `nprobe` the fewer ids pass (see
    /// [`IvfIndex::search`]).
    pub filter: Option<&'a dyn IdFilter>,
    /// Beam width of an HNSW coarse quantizer for this search (raised to `nprobe`); `None`:
    /// its own setting ([`HnswCoarse::set_ef`], default 64). A flat coarse quantizer is
    /// exact and ignores it.
    pub coarse_ef: Option<usize>,
}

impl std::fmt::Debug for IvfSearch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IvfSearch")
            .field("nprobe", &self.nprobe)
            .field("filter", &self.filter.map(|_| "…"))
            .field("coarse_ef", &self.coarse_ef)
            .finish()
    }
}

/// One inverted list: ids and codes, contiguous, in insertion order; in the index's own
/// memory, or viewed in the memory-mapped file it was read from until it is first written
/// (copy on write, per list: a list an add, removal or merge does not touch stays mapped).
#[derive(Debug, Clone)]
pub(crate) enum List {
    /// Allocated by the index.
    Owned { ids: Vec<u64>, codes: Vec<u8> },
    /// Views into a mapped container ([`IvfIndex::read_sections`] of a mapped reader).
    Mapped { ids: MappedArray<u64>, codes: MappedArray<u8> },
}

impl Default for List {
    fn default() -> Self {
        List::Owned { ids: Vec::new(), codes: Vec::new() }
    }
}

impl List {
    pub(crate) fn ids(&self) -> &[u64] {
        match self {
            List::Owned { ids, .. } => ids,
            List::Mapped { ids, .. } => ids,
        }
    }

    pub(crate) fn codes(&self) -> &[u8] {
        match self {
            List::Owned { codes, .. } => codes,
            List::Mapped { codes, .. } => codes,
        }
    }

    fn len(&self) -> usize {
        self.ids().len()
    }

    /// The list's ids and codes as owned vectors to write to, copied out of the map first if
    /// the list is mapped (the file is never written).
    pub(crate) fn owned_mut(&mut self) -> (&mut Vec<u64>, &mut Vec<u8>) {
        if let List::Mapped { ids, codes } = self {
            *self = List::Owned { ids: ids.to_vec(), codes: codes.to_vec() };
        }
        match self {
            List::Owned { ids, codes } => (ids, codes),
            List::Mapped { .. } => unreachable!("a mapped list was just replaced by an owned one"),
        }
    }

    /// Bytes allocated for (codes, ids).
    fn owned_bytes(&self) -> (usize, usize) {
        match self {
            List::Owned { ids, codes } => (codes.capacity(), ids.capacity() * size_of::<u64>()),
            List::Mapped { .. } => (0, 0),
        }
    }

    /// Bytes viewed in a mapped file (codes and ids).
    fn mapped_bytes(&self) -> usize {
        match self {
            List::Owned { .. } => 0,
            List::Mapped { ids, codes } => ids.len() * size_of::<u64>() + codes.len(),
        }
    }
}

/// List sizes of an index: how evenly the coarse quantizer spread it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListStats {
    /// Lists.
    pub nlist: usize,
    /// Entries in all lists.
    pub total: usize,
    /// Lists with no entry.
    pub empty: usize,
    /// Smallest list.
    pub min: usize,
    /// Largest list.
    pub max: usize,
    /// Faiss' imbalance factor `nlist · Σ size² / total²`: 1 for equal lists, larger when a
    /// query's scan cost varies more (a search scans about `imbalance · nprobe · total / nlist`
    /// entries on average over the data's own distribution).
    pub imbalance: f64,
}

impl ListStats {
    /// The statistics of lists of these sizes (shared by every inverted-file layout).
    pub(crate) fn from_sizes(nlist: usize, sizes: impl Iterator<Item = usize>) -> ListStats {
        let (mut lists, mut total, mut sq) = (0usize, 0usize, 0f64);
        let (mut empty, mut min, mut max) = (0usize, usize::MAX, 0usize);
        for s in sizes {
            lists += 1;
            total += s;
            sq += (s as f64) * (s as f64);
            empty += usize::from(s == 0);
            min = min.min(s);
            max = max.max(s);
        }
        let imbalance = if total == 0 { 1.0 } else { lists as f64 * sq / (total as f64 * total as f64) };
        ListStats { nlist, total, empty, min: if min == usize::MAX { 0 } else { min }, max, imbalance }
    }
}

/// Bytes held by an [`IvfIndex`], by part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IvfMemory {
    /// Codes in the lists, as allocated (not counting mapped lists).
    pub codes: usize,
    /// Ids in the lists, as allocated (not counting mapped lists), plus the membership set
    /// (if ids are not `0..n`), the list headers, and the map from ids to entries a search
    /// under a filter passing few vectors builds (8 bytes an id; dropped when the lists
    /// change).
    pub ids: usize,
    /// Ids and codes of lists served from a memory-mapped file (an index read with a mapped
    /// reader, until a list is written): pages of the page cache, read in on access and
    /// reclaimable, not allocated by the index. Not part of `codes` or `ids`.
    pub mapped: usize,
    /// Coarse centroids, the quantizer's trained parameters and precomputed tables.
    pub trained: usize,
}

/// An inverted file over codec `C`: `nlist` coarse centroids (k-means), and per centroid a
/// list of the ids and codes of the vectors nearest to it. A search scans the `nprobe` lists
/// whose centroids are nearest to the query (Faiss' `IndexIVFFlat`, `IndexIVFScalarQuantizer`,
/// `IndexIVFPQ`).
///
/// Scores follow [`Metric`]'s convention; cosine indexes normalize vectors and queries. Searches
/// run in parallel over queries on the current rayon pool; `&self` methods may be called from
/// several threads at once.
#[derive(Debug, Clone)]
pub struct IvfIndex<C> {
    dim: usize,
    metric: Metric,
    params: IvfParams,
    /// The centroids and their search, once trained.
    coarse: Option<Coarse>,
    codec: C,
    lists: Vec<List>,
    ids: IdTracker,
    /// Hash of every trained artifact, 0 before training.
    fingerprint: u64,
    /// Where each id's entry is, once a search under a selective filter needed it; reset by
    /// every change to the lists.
    locations: OnceLock<Locations>,
}

/// An add's assignment and encoding ([`IvfIndex::encode_add`], [`IvfFastScan::encode_add`]),
/// made through `&self` so that it can run beside searches, for the `add_encoded` that appends
/// it; tied to the trained state and the batch it was made for.
///
/// [`IvfFastScan::encode_add`]: crate::IvfFastScan::encode_add
#[derive(Debug)]
pub struct EncodedAdd {
    /// The list and the code of every row, a chunk of rows at a time.
    pub(crate) parts: Vec<(Vec<u32>, Vec<u8>)>,
    pub(crate) rows: usize,
    /// The fingerprint of the trained state it was made with.
    fingerprint: u64,
}

impl EncodedAdd {
    /// The rows encoded.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was encoded.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Whether it encodes `values` f32s of `dim`-wide rows for the trained state `fingerprint`.
    pub(crate) fn fits(&self, fingerprint: u64, values: usize, dim: usize) -> bool {
        self.fingerprint == fingerprint && self.rows.checked_mul(dim) == Some(values)
    }
}

/// `encode_add` of either index: `data` encoded `ADD_CHUNK` rows at a time by `encode`, which
/// validates each chunk.
pub(crate) fn encode_add_in(
    trained: bool,
    data: &[f32],
    dim: usize,
    fingerprint: u64,
    not_trained: impl FnOnce() -> Error,
    encode: impl Fn(&[f32]) -> Result<(Vec<u32>, Vec<u8>)>,
) -> Result<EncodedAdd> {
    if !trained {
        return Err(not_trained());
    }
    let rows = data.len() / dim.max(1);
    let parts = data.chunks(ADD_CHUNK * dim.max(1)).map(encode).collect::<Result<Vec<_>>>()?;
    Ok(EncodedAdd { parts, rows, fingerprint })
}

/// What `add_encoded` of either index appends: `encoded` where it fits `data` and the trained
/// state (`dim`, `fingerprint`), else `data` encoded again by `encode`; with `ids`, or the next
/// ids of `tracker`, one per row and none present.
pub(crate) fn checked_encoding<'a>(
    encoded: Option<EncodedAdd>,
    data: &[f32],
    (dim, fingerprint): (usize, u64),
    ids: Option<&'a [u64]>,
    tracker: &IdTracker,
    encode: impl FnOnce(&[f32]) -> Result<EncodedAdd>,
) -> Result<(EncodedAdd, Cow<'a, [u64]>)> {
    let encoded = match encoded {
        Some(e) if e.fits(fingerprint, data.len(), dim) => e,
        _ => encode(data)?,
    };
    let ids = match ids {
        Some(ids) => Cow::Borrowed(ids),
        None => Cow::Owned(tracker.next_ids(encoded.rows)?),
    };
    if ids.len() != encoded.rows {
        return Err(Error::IdCount { ids: ids.len(), vectors: encoded.rows });
    }
    tracker.check_new(&ids)?;
    Ok((encoded, ids))
}

/// The coarse quantizer an index holds.
#[derive(Debug, Clone)]
pub(crate) enum Coarse {
    Flat(FlatCoarse),
    Hnsw(HnswCoarse),
}

impl Coarse {
    /// The quantizer of `kind` over trained `centroids`.
    pub(crate) fn build(kind: CoarseKind, centroids: Vec<f32>, dim: usize, metric: Metric) -> Result<Self> {
        let metric = coarse_metric(metric);
        Ok(match kind {
            CoarseKind::Flat => Coarse::Flat(FlatCoarse::new(centroids, dim, metric)?),
            CoarseKind::Hnsw { m } => Coarse::Hnsw(HnswCoarse::build(centroids, dim, metric, m)?),
        })
    }

    pub(crate) fn get(&self) -> &dyn CoarseQuantizer {
        match self {
            Coarse::Flat(c) => c,
            Coarse::Hnsw(c) => c,
        }
    }

    /// The key a search gives list `list` for the prepared row `q`, to the bit.
    pub(crate) fn list_key(&self, q: &[f32], list: usize) -> f32 {
        match self {
            Coarse::Flat(c) => c.list_key(q, list),
            Coarse::Hnsw(c) => c.list_key(q, list),
        }
    }
}

/// The metric of the coarse search: inner product for inner-product and cosine indexes
/// (spherical k-means, unit centroids), as Faiss does.
fn coarse_metric(metric: Metric) -> Metric {
    crate::codec::inner_metric(metric)
}

impl<C: IvfCodec> IvfIndex<C> {
    /// An empty, untrained index of `params.nlist` lists over `codec` (made for the same
    /// `dim` and `metric`).
    pub fn new(dim: usize, metric: Metric, params: IvfParams, codec: C) -> Result<Self> {
        params.check()?;
        if codec.quantizer().dim() != dim {
            return Err(Error::Parameter {
                name: "codec",
                what: format!("made for dimension {}, index has {dim}", codec.quantizer().dim()),
            });
        }
        Ok(IvfIndex {
            dim,
            metric,
            params,
            coarse: None,
            codec,
            lists: Vec::new(),
            ids: IdTracker::default(),
            fingerprint: 0,
            locations: OnceLock::new(),
        })
    }

    /// Faiss-style name: `IVF{nlist},{codec}`, or `IVF{nlist}_HNSW{m},{codec}`.
    pub fn name(&self) -> String {
        format!("IVF{}{},{}", self.params.nlist, self.params.coarse.suffix(), self.codec.quantizer().name())
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

    /// Sets the default `nprobe` (at least 1).
    pub fn set_nprobe(&mut self, nprobe: usize) -> Result<()> {
        if nprobe == 0 {
            return Err(Error::ZeroNprobe);
        }
        self.params.nprobe = nprobe;
        Ok(())
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The coarse centroids (`nlist × dim`), empty before training.
    pub fn centroids(&self) -> &[f32] {
        self.coarse.as_ref().map_or(&[], |c| c.get().centroids())
    }

    /// The coarse quantizer, once trained: which lists a vector belongs to, which a query
    /// probes.
    pub fn coarse(&self) -> Option<&dyn CoarseQuantizer> {
        self.coarse.as_ref().map(Coarse::get)
    }

    /// The HNSW coarse quantizer, mutable (its beam width), if the index has one.
    pub fn coarse_hnsw_mut(&mut self) -> Option<&mut HnswCoarse> {
        match &mut self.coarse {
            Some(Coarse::Hnsw(c)) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn coarse_parts(&self) -> Option<&Coarse> {
        self.coarse.as_ref()
    }

    /// Whether [`train`](IvfIndex::train) has run.
    pub fn is_trained(&self) -> bool {
        self.coarse.is_some()
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.lists.iter().map(List::len).sum()
    }

    /// `true` when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.lists.iter().all(|l| l.len() == 0)
    }

    /// The fingerprint of everything training produced (centroids, quantizer parameters):
    /// equal fingerprints mean codes are interchangeable; 0 before training.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The ids of list `list`, in insertion order (`None` past `nlist` or before training).
    pub fn list_ids(&self, list: usize) -> Option<&[u64]> {
        self.lists.get(list).map(List::ids)
    }

    /// The codes of list `list` (`code_size` bytes per id, in the order of
    /// [`list_ids`](IvfIndex::list_ids); `None` past `nlist` or before training).
    pub fn list_codes(&self, list: usize) -> Option<&[u8]> {
        self.lists.get(list).map(List::codes)
    }

    /// The count of vectors ever added (or one past the largest id): the first id the next
    /// [`add`](IvfIndex::add) hands out.
    pub fn next_id(&self) -> u64 {
        self.ids.added()
    }

    /// A trained index assembled from its parts: `centroids` (`nlist × dim`, finite), for every
    /// list its ids and codes (the codec's, `code_size` bytes per id; ids unique over all
    /// lists), and `next_id`, the count of vectors ever added ([`next_id`](IvfIndex::next_id),
    /// raised past the largest id). What a copy held elsewhere (vq-gpu's `GpuIvfFlat` on a
    /// device) hands back: the same parts give the same index, fingerprint included (an HNSW
    /// coarse quantizer's graph is rebuilt over the centroids).
    ///
    /// # Errors
    /// [`Error::Parameter`] naming the part whose shape is wrong, [`Error::DuplicateId`], the
    /// codec's errors for codes that do not decode, [`Error::NotTrained`] for a codec that
    /// needs training and has not had it.
    pub fn from_lists(
        dim: usize,
        metric: Metric,
        params: IvfParams,
        codec: C,
        centroids: Vec<f32>,
        lists: Vec<(Vec<u64>, Vec<u8>)>,
        next_id: u64,
    ) -> Result<Self> {
        let empty = Self::new(dim, metric, params, codec)?;
        let bad = |name, what: String| Err(Error::Parameter { name, what });
        let nlist = empty.params.nlist;
        if Some(centroids.len()) != nlist.checked_mul(dim) {
            return bad("centroids", format!("{} values for nlist {nlist} × dimension {dim}", centroids.len()));
        }
        validate_rows("centroids", &centroids, dim, Metric::L2)?;
        if !empty.codec.quantizer().is_trained() {
            return Err(empty.not_trained());
        }
        if lists.len() != nlist {
            return bad("lists", format!("{} lists for nlist {nlist}", lists.len()));
        }
        let cs = empty.code_size();
        for (i, (ids, codes)) in lists.iter().enumerate() {
            if Some(codes.len()) != ids.len().checked_mul(cs) {
                return bad(
                    "lists",
                    format!("list {i}: {} code bytes for {} ids of {cs} bytes", codes.len(), ids.len()),
                );
            }
        }
        vq_quant::validate_code_blocks(
            empty.codec.quantizer(),
            lists.iter().map(|(_, codes)| &codes[..]),
            "list codes",
        )?;
        let mut all: Vec<u64> = lists.iter().flat_map(|(ids, _)| ids.iter().copied()).collect();
        all.sort_unstable();
        if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::DuplicateId(w[0]));
        }
        let tracker = IdTracker::from_ids(all.iter().copied(), all.len(), next_id);
        let coarse = Coarse::build(empty.params.coarse, centroids, dim, metric)?;
        let lists = lists.into_iter().map(|(ids, codes)| List::Owned { ids, codes }).collect();
        Ok(Self::from_parts(dim, metric, empty.params, Some(coarse), empty.codec, lists, tracker))
    }

    fn not_trained(&self) -> Error {
        Error::NotTrained { index: self.name() }
    }

    /// Learns the coarse centroids (k-means, at most `max_points_per_centroid · nlist` sampled
    /// points), then the codec on the training set's residuals (or vectors). Allowed only while
    /// the index is empty; training again replaces everything learned.
    pub fn train(&mut self, data: &[f32]) -> Result<()> {
        self.train_impl(data, None)
    }

    /// [`train`](IvfIndex::train) with the coarse k-means' assignment step run by `assigner`
    /// (vq-gpu's `GpuAssigner`: on a GPU); the rest of training is the same (see
    /// [`KMeans::fit_with_assigner`]).
    ///
    /// # Errors
    /// [`train`](IvfIndex::train)'s, and the assigner's (as [`Error::Cluster`]).
    pub fn train_with_assigner(&mut self, data: &[f32], assigner: &dyn vq_cluster::Assigner) -> Result<()> {
        self.train_impl(data, Some(assigner))
    }

    fn train_impl(&mut self, data: &[f32], assigner: Option<&dyn vq_cluster::Assigner>) -> Result<()> {
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
        let km = KMeans::new(self.params.nlist)
            .iterations(self.params.iterations)
            .seed(self.params.seed)
            .max_points_per_centroid(self.params.max_points_per_centroid)
            .spherical(self.metric != Metric::L2);
        let km = match assigner {
            Some(a) => km.fit_with_assigner(x.as_slice(), self.dim, a)?,
            None => km.fit(x.as_slice(), self.dim)?,
        };
        self.install(km.into_centroids(), Some(x.as_slice()))
    }

    /// Trains with coarse centroids learned elsewhere (`nlist × dim`, row-major; Faiss' IVF
    /// over a quantizer trained apart, or another k-means): the codec is trained on the
    /// residuals (or vectors) of `data` against them, or, with `data` `None`, must be trained
    /// already (a codec made from a trained quantizer, e.g. [`PqCodec::from_quantizer`](crate::PqCodec::from_quantizer)).
    /// Cosine indexes expect unit centroids (what spherical k-means gives). Allowed only while
    /// the index is empty.
    pub fn train_with_centroids(&mut self, centroids: Vec<f32>, data: Option<&[f32]>) -> Result<()> {
        if !self.is_empty() {
            return Err(Error::Parameter {
                name: "train",
                what: "the index holds vectors; train before adding".into(),
            });
        }
        if centroids.len() != self.params.nlist * self.dim {
            return Err(Error::Parameter {
                name: "centroids",
                what: format!(
                    "{} values, expected nlist × dim = {} × {}",
                    centroids.len(),
                    self.params.nlist,
                    self.dim
                ),
            });
        }
        match data {
            Some(data) => {
                let x = prepare_rows("training data", data, self.dim, self.metric)?;
                self.install(centroids, Some(x.as_slice()))
            }
            None => self.install(centroids, None),
        }
    }

    /// Installs trained coarse centroids and trains the codec on the prepared rows `x`
    /// (residuals against `centroids` for residual codecs); without `x` the codec must be
    /// trained (or learn nothing).
    fn install(&mut self, centroids: Vec<f32>, x: Option<&[f32]>) -> Result<()> {
        let coarse = Coarse::build(self.params.coarse, centroids, self.dim, self.metric)?;
        if self.codec.needs_training() {
            match x {
                Some(x) => {
                    let mut sample = x.to_vec();
                    if self.codec.by_residual() {
                        subtract_centroids(&mut sample, coarse.get(), self.dim)?;
                    }
                    self.codec.train(&sample)?;
                }
                None if !self.codec.quantizer().is_trained() => return Err(self.not_trained()),
                None => {}
            }
        }
        self.codec.prepare(coarse.get().centroids());
        self.coarse = Some(coarse);
        self.lists = vec![List::default(); self.params.nlist];
        self.locations = OnceLock::new();
        self.fingerprint = self.compute_fingerprint();
        Ok(())
    }

    pub(crate) fn compute_fingerprint(&self) -> u64 {
        use xxhash_rust::xxh3::Xxh3;
        let mut h = Xxh3::new();
        h.update(b"vq-ivf trained state v1\0");
        h.update(self.name().as_bytes());
        h.update(self.metric.name().as_bytes());
        h.update(&(self.dim as u64).to_le_bytes());
        h.update(&[u8::from(self.codec.by_residual())]);
        for v in self.centroids() {
            h.update(&v.to_le_bytes());
        }
        h.update(&self.codec.trained_state());
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
        self.append(encoded.parts, ids);
        Ok(())
    }

    /// The `&self` half of an add: `data` (row-major) validated, assigned to lists and
    /// encoded, for [`add_encoded`](IvfIndex::add_encoded) to append. Running it beside
    /// searches (under a read lock) leaves only the append to exclusive access.
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

    /// Adds `data` under `ids` (`None`: continuing ids) from its [`encode_add`](IvfIndex::encode_add)
    /// encoding, which is redone if it is missing or was made for another trained state (the
    /// index trained again since) or another batch. Errors and effects as [`add_with_ids`](IvfIndex::add_with_ids).
    pub fn add_encoded(&mut self, encoded: Option<EncodedAdd>, data: &[f32], ids: Option<&[u64]>) -> Result<()> {
        let (encoded, ids) =
            checked_encoding(encoded, data, (self.dim, self.fingerprint), ids, &self.ids, |d| self.encode_add(d))?;
        self.append(encoded.parts, &ids);
        Ok(())
    }

    /// Appends encoded rows (checked) to their lists under `ids`.
    fn append(&mut self, encoded: Vec<(Vec<u32>, Vec<u8>)>, ids: &[u64]) {
        let cs = self.codec.quantizer().code_size();
        let mut counts = vec![0usize; self.lists.len()];
        encoded.iter().flat_map(|(labels, _)| labels).for_each(|&l| counts[l as usize] += 1);
        // Only the lists that receive entries are copied out of a map.
        for (list, &n) in self.lists.iter_mut().zip(&counts).filter(|&(_, &n)| n > 0) {
            let (ids, codes) = list.owned_mut();
            grow(ids, n);
            grow(codes, n * cs);
        }
        let mut next = ids.iter();
        for (labels, codes) in encoded {
            for (&label, code) in labels.iter().zip(codes.chunks_exact(cs)) {
                // One id per row: `ids.len() == rows` was checked.
                let id = *next.next().expect("one id per row");
                let (ids, codes) = self.lists[label as usize].owned_mut();
                ids.push(id);
                codes.extend_from_slice(code);
            }
        }
        self.ids.insert(ids);
        self.locations = OnceLock::new();
    }

    /// The list and the code of every row of `chunk` (validated rows).
    fn encode(&self, chunk: &[f32]) -> Result<(Vec<u32>, Vec<u8>)> {
        let coarse = self.coarse().ok_or_else(|| self.not_trained())?;
        let x = prepare_rows("vectors", chunk, self.dim, self.metric)?;
        let labels = assign_rows(coarse, x.as_slice(), self.dim)?;
        let codes = encode_in_lists(&self.codec, coarse.centroids(), self.dim, x.as_slice(), &labels)?;
        Ok((labels, codes))
    }

    /// The `k` best matches of every query (row-major): `num_queries × k`, best first, ties
    /// to the smaller id, padded with `u64::MAX` when fewer than `k` entries are in the probed
    /// lists. Parallel over chunks of queries.
    ///
    /// With a filter, a fraction `p` of the entries passing (estimated from a fixed sample of
    /// them), `nprobe / √p` lists are probed (at most `nlist`): the `k` nearest passing
    /// vectors lie farther out the fewer pass, and probing `nprobe` alone would let recall
    /// fall with `p`. A query that still finds fewer than `k` passing entries probes twice as
    /// many lists, until it has `k` or every list was probed: filtered answers are short only
    /// when fewer than `k` stored vectors pass. A filter that lists its ids
    /// ([`IdFilter::accepted_ids`]: `IdBitset`, `IdSet`) and passes few vectors is answered
    /// exactly from that list instead, when scoring those entries alone costs less than the
    /// coarse search and the scan; the map from ids to entries it needs is built on the first
    /// such search and counted in [`IvfIndex::memory_usage`].
    ///
    /// A batch whose queries share lists (about `queries · nprobe ≥ 2 · nlist` per chunk) is
    /// scanned list-major when the codec allows it ([`IvfCodec::scans_by_list`]: IVF-Flat,
    /// IVF-SQ, and IVF-PQ with the precomputed L2 table): every probed list (its codes, or its
    /// table terms) is read once per chunk and scored by all the queries that probe it, instead
    /// of once per query. The results are the same as query by query.
    pub fn search(&self, queries: &[f32], k: usize, opts: &IvfSearch<'_>) -> Result<Neighbors> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        if k == 0 {
            return Err(vq_distance::Error::ZeroK.into());
        }
        let rows = match opts.filter {
            None => self.scan_probes(queries, opts, |_| TopK::new(k))?,
            Some(filter) => {
                let (nprobe, nlist) = (resolved_nprobe(opts, &self.params)?, self.params.nlist);
                let pass_rate = pass_rate(self.lists.iter().map(List::ids), filter);
                match self.search_listed(queries, k, filter, widened_nprobe(nprobe, nlist, pass_rate))? {
                    Some(rows) => rows,
                    None => filtered_rows(queries, self.dim, k, (nprobe, nlist, pass_rate), |q, nprobe| {
                        self.scan_probes(q, &IvfSearch { nprobe: Some(nprobe), ..*opts }, |_| TopK::new(k))
                    })?,
                }
            }
        };
        Ok(Neighbors::from_rows(k, self.metric, rows)?)
    }

    /// The filtered search of `queries` from the filter's listed ids, when that is cheaper than
    /// the coarse search and the scan of the `probed` lists ([`COARSE_LIST_COST`]); `None`
    /// otherwise. Exact over every passing vector
    /// (answers are short only when fewer than `k` pass), each entry scored as the scan scores
    /// it: the passing entries of a list, in list order and the scan's blocks, after the
    /// scanner's move to that list.
    fn search_listed(
        &self,
        queries: &[f32],
        k: usize,
        filter: &dyn IdFilter,
        probed: usize,
    ) -> Result<Option<QueryHits>> {
        let Some(count) = filter.accepted_count() else { return Ok(None) };
        let nlist = self.params.nlist.max(1) as f64;
        let scanned = self.len() as f64 * probed as f64 / nlist;
        // A scan query by query pays each probed list's set-up for every query.
        let per_list = if self.codec.scans_by_list() { 0 } else { QUERY_MAJOR_LIST_COST };
        let probe_cost = (self.codec.list_move_cost() + per_list) as f64;
        let scan_cost = scanned + nlist * COARSE_LIST_COST as f64 + probed as f64 * probe_cost;
        // A list holding few listed entries is keyed without a move's table
        // (`ListScanner::set_list_for`), but over residuals each list the listed entries fall
        // in still costs its coarse key and the scanner's move.
        let keyed_lists = if self.codec.by_residual() { lists_holding(count, self.params.nlist) } else { 0.0 };
        let listed_cost = count as f64 * self.codec.listed_entry_cost() as f64 + keyed_lists * LISTED_LIST_COST as f64;
        let Some(ids) = filter.accepted_ids().filter(|_| listed_cost < scan_cost) else { return Ok(None) };
        let (coarse, dim, cs) = (self.coarse_parts().ok_or_else(|| self.not_trained())?, self.dim, self.code_size());
        let q = prepare_rows("queries", queries, dim, self.metric)?;
        let locations = self.locations.get_or_init(|| Locations::of(self.lists.iter().map(List::ids)));
        let mut at: Vec<(u32, u32)> = ids.iter().filter_map(|&id| locations.get(id)).collect();
        at.sort_unstable();
        // The passing entries gathered list by list: `groups` holds (list, range of entries).
        let (mut gathered_ids, mut codes) = (Vec::with_capacity(at.len()), Vec::with_capacity(at.len() * cs));
        let mut groups = Vec::new();
        for run in at.chunk_by(|a, b| a.0 == b.0) {
            let (list, start) = (run[0].0 as usize, gathered_ids.len());
            let l = &self.lists[list];
            for &(_, p) in run {
                gathered_ids.push(l.ids()[p as usize]);
                codes.extend_from_slice(&l.codes()[p as usize * cs..][..cs]);
            }
            groups.push((list, start..gathered_ids.len()));
        }
        let decoded = self.codec.decodes_for_scan();
        let mut rows = Vec::new();
        if decoded {
            self.decode_into(&codes, &mut rows);
        }
        // List-major over chunks of queries, as the scan: a list's state (IVF-PQ's precomputed
        // terms, 16 KiB at PQ16) is read once per chunk, not once per query. A codec that does
        // not scan by list (IVF-PQ over inner product) goes query by query: each query's
        // table stays in cache over the gathered codes.
        let (nq, by_residual) = (q.len(), self.codec.by_residual());
        let chunk = if self.codec.scans_by_list() { self.query_chunk(nq) } else { 1 };
        let rows = (0..nq.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let queries = c * chunk..((c + 1) * chunk).min(nq);
                let mut tops: Vec<TopK> = queries.clone().map(|_| TopK::new(k)).collect();
                let mut scanners = if decoded {
                    Vec::new()
                } else {
                    queries.clone().map(|i| self.codec.scanner(q.row(i))).collect::<Result<Vec<_>>>()?
                };
                let (mut keys, mut qv) = (vec![0f32; BLOCK], Vec::new());
                for (list, entries) in &groups {
                    let ids = &gathered_ids[entries.clone()];
                    for (j, i) in queries.clone().enumerate() {
                        let query = q.row(i);
                        let key = if by_residual { coarse.list_key(query, *list) } else { 0.0 };
                        if decoded {
                            let block = Block { list: *list, ids, rows: &rows[entries.start * dim..entries.end * dim] };
                            self.offer_decoded(query, key, &block, &mut tops[j], &mut qv);
                            continue;
                        }
                        scanners[j].set_list_for(*list, &self.centroids()[list * dim..][..dim], key, ids.len())?;
                        let codes = &codes[entries.start * cs..entries.end * cs];
                        for (ids, codes) in ids.chunks(BLOCK).zip(codes.chunks(BLOCK * cs)) {
                            offer_scanned(&scanners[j], ids, codes, &mut tops[j], &mut keys);
                        }
                    }
                }
                Ok(tops.into_iter().map(|top| top.into_hits(self.metric)).collect::<Vec<_>>())
            })
            .collect::<Result<Vec<_>>>()?
            .concat();
        Ok(Some(rows))
    }

    /// Every entry of the probed lists within `radius` of each query (Faiss' `range_search`
    /// on an inverted file): its score by the codec — as [`IvfIndex::search`] scores it —
    /// below `radius` for L2, above it for inner product and cosine
    /// ([`Metric::within`]). Best first, ties to the smaller id; the probed lists and the
    /// list-major batching are [`IvfIndex::search`]'s. A NaN radius is an error.
    pub fn range_search(&self, queries: &[f32], radius: f32, opts: &IvfSearch<'_>) -> Result<RangeResult> {
        // (`range_rows` checks the trained state, the radius and the queries.)
        let nq = queries.len() / self.dim.max(1);
        Ok(RangeResult::from_rows(self.metric, self.range_rows(queries, &vec![radius; nq], opts)?)?)
    }

    /// [`IvfIndex::range_search`] with a radius per query (`radii[i]` for the `i`-th), each
    /// query's hits in scan order, unsorted: the candidates a refine stage re-scores and sorts
    /// itself. `radii` must hold one radius per query, none NaN.
    pub fn range_rows(&self, queries: &[f32], radii: &[f32], opts: &IvfSearch<'_>) -> Result<Vec<Vec<(u64, f32)>>> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        let max_keys = range_keys(self.metric, queries.len(), self.dim, radii)?;
        self.scan_probes(queries, opts, |i| WithinKey::new(max_keys[i]))
    }

    /// The coarse search of `queries`, then the scan of every query's probed lists into a
    /// sink from `collector` per query, given its position in the batch (a [`TopK`] for k-NN,
    /// a [`WithinKey`] for range search): list-major when [`IvfIndex::list_major_chunk`] says
    /// so, query by query otherwise. Both paths offer the same `(key, id)` pairs, only in
    /// another order, and neither sink's answer depends on that order.
    fn scan_probes<S: ScanSink + Send>(
        &self,
        queries: &[f32],
        opts: &IvfSearch<'_>,
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
        let probes = Probes { queries: q.as_slice(), nprobe, lists: &lists, coarse_keys: &coarse_keys };
        match self.list_major_chunk(nq, nprobe) {
            Some(chunk) => Ok((0..nq.div_ceil(chunk))
                .into_par_iter()
                .map(|c| self.search_by_list(&probes, c * chunk..((c + 1) * chunk).min(nq), &collector, opts.filter))
                .collect::<Result<Vec<_>>>()?
                .concat()),
            None => self.search_per_query(&probes, 0..nq, &collector, opts.filter),
        }
    }

    /// Queries per list-major chunk for a batch of `nq` queries probing `nprobe` lists each, or
    /// `None` when every query is better scanned on its own: the codec does not scan by list,
    /// or a chunk's queries would probe a list only about once on average (nothing to share).
    fn list_major_chunk(&self, nq: usize, nprobe: usize) -> Option<usize> {
        if !self.codec.scans_by_list() {
            return None;
        }
        let chunk = self.query_chunk(nq);
        (chunk * nprobe >= MIN_SHARED_PROBES * self.params.nlist).then_some(chunk)
    }

    /// Queries per chunk of a list-major pass over `nq` queries: one chunk per thread (each
    /// chunk reads its lists once), bounded so that the per-query scanners of a chunk stay
    /// small. Where the bound splits the batch further, the chunks are a whole number per
    /// thread and of even size: 10,000 queries on two threads are six chunks of 1,667, not five
    /// of 2,048 (three on one thread, two on the other, one thread idle for the last fifth).
    fn query_chunk(&self, nq: usize) -> usize {
        let threads = rayon::current_num_threads().max(1);
        let bound = MAX_LIST_MAJOR_CHUNK.min(self.codec.list_major_queries()).max(1);
        let chunks = nq.div_ceil(bound).div_ceil(threads).max(1) * threads;
        nq.div_ceil(chunks).max(1)
    }

    /// Queries `range` one after the other, each scanning its probed lists (parallel over
    /// queries).
    fn search_per_query<S: ScanSink + Send>(
        &self,
        probes: &Probes<'_>,
        range: std::ops::Range<usize>,
        collector: &(impl Fn(usize) -> S + Sync),
        filter: Option<&dyn IdFilter>,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        // In chunks of consecutive queries, mapped together (RaBitQ rotates them in one
        // product): up to 64 a chunk, four chunks a thread. Each scanner is made just before
        // its query's scan, so its table is in cache (64 RaBitQ tables at d = 384 are 3 MiB).
        let threads = rayon::current_num_threads().max(1);
        let chunk = range.len().div_ceil(4 * threads).clamp(1, 64);
        let decoded = self.codec.decodes_for_scan();
        let chunks: Vec<_> = range.clone().step_by(chunk).map(|s| s..(s + chunk).min(range.end)).collect();
        let rows = chunks
            .into_par_iter()
            .map_init(ScanScratch::default, |scratch, queries| {
                let mapped = if decoded {
                    Vec::new()
                } else {
                    self.codec.map_queries(probes.queries(queries.clone(), self.dim))
                };
                let mut rows = Vec::with_capacity(queries.len());
                for (j, i) in queries.enumerate() {
                    let query = probes.query(i, self.dim);
                    let mut top = collector(i);
                    let (lists, coarse_keys) = probes.of(i);
                    if decoded {
                        let (mut block_rows, mut qv) = (Vec::new(), Vec::new());
                        for (&list, &coarse_key) in lists.iter().zip(coarse_keys) {
                            // An approximate coarse search may pad with lists past `nlist`.
                            let Some(l) = self.lists.get(list as usize) else { continue };
                            let cs = self.code_size();
                            scratch.gather.for_each_block(l.ids(), l.codes(), cs, BLOCK, filter, |ids, codes| {
                                self.decode_into(codes, &mut block_rows);
                                let block = Block { list: list as usize, ids, rows: &block_rows };
                                self.offer_decoded(query, coarse_key, &block, &mut top, &mut qv);
                                Ok::<(), Error>(())
                            })?;
                        }
                    } else {
                        let mut scanner = self.codec.scanner_mapped(query, mapped_row(&mapped, j, self.dim))?;
                        for (&list, &coarse_key) in lists.iter().zip(coarse_keys) {
                            self.scan_list(&mut scanner, list, coarse_key, filter, &mut top, scratch)?;
                        }
                    }
                    rows.push(top.into_hits(self.metric));
                }
                Ok(rows)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(rows.concat())
    }

    /// Queries `range` list-major: the (query, list) pairs are grouped by list, and each probed
    /// list is scanned by all its queries in turn while its codes are in cache, so a batch
    /// reads every list from memory once instead of once per query. Every (query, list) pair
    /// is scored by the same scanner as in [`IvfIndex::search_per_query`], and [`TopK`] keeps
    /// the `k` smallest `(key, id)` whatever the order of the offers, so the results are the
    /// same, ties included.
    fn search_by_list<S: ScanSink + Send>(
        &self,
        probes: &Probes<'_>,
        range: std::ops::Range<usize>,
        collector: &(impl Fn(usize) -> S + Sync),
        filter: Option<&dyn IdFilter>,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let nlist = self.lists.len();
        let first = range.start;
        let decoded = self.codec.decodes_for_scan();
        let mut scanners =
            if decoded { Vec::new() } else { self.codec.scanners(probes.queries(range.clone(), self.dim))? };
        let mut tops: Vec<S> = range.clone().map(collector).collect();
        // Counting sort of the (query, coarse key) pairs by list. An approximate coarse search
        // may pad with lists past `nlist`: those are skipped, as in the per-query scan.
        let mut start = vec![0usize; nlist + 1];
        for i in range.clone() {
            for &l in probes.of(i).0.iter().filter(|&&l| (l as usize) < nlist) {
                start[l as usize + 1] += 1;
            }
        }
        for l in 0..nlist {
            start[l + 1] += start[l];
        }
        let mut fill = start.clone();
        let mut pairs = vec![(0u32, 0f32); start[nlist]];
        for i in range.clone() {
            let (lists, coarse_keys) = probes.of(i);
            for (&l, &ck) in lists.iter().zip(coarse_keys).filter(|&(&l, _)| (l as usize) < nlist) {
                pairs[fill[l as usize]] = ((i - first) as u32, ck);
                fill[l as usize] += 1;
            }
        }
        let mut scratch = ScanScratch::default();
        let (mut rows, mut qv) = (Vec::new(), Vec::new());
        for (list, group) in start.windows(2).enumerate() {
            let group = &pairs[group[0]..group[1]];
            if decoded {
                // Each block is filtered and decoded once for the whole group.
                if group.is_empty() {
                    continue;
                }
                let l = &self.lists[list];
                scratch.gather.for_each_block(l.ids(), l.codes(), self.code_size(), BLOCK, filter, |ids, codes| {
                    self.decode_into(codes, &mut rows);
                    let block = Block { list, ids, rows: &rows };
                    for &(qi, ck) in group {
                        let (qi, query) = (qi as usize, probes.query(first + qi as usize, self.dim));
                        self.offer_decoded(query, ck, &block, &mut tops[qi], &mut qv);
                    }
                    Ok::<(), Error>(())
                })?;
                continue;
            }
            for &(qi, ck) in group {
                let qi = qi as usize;
                self.scan_list(&mut scanners[qi], list as u32, ck, filter, &mut tops[qi], &mut scratch)?;
            }
        }
        Ok(tops.into_iter().map(|top| top.into_hits(self.metric)).collect())
    }

    /// Offers every entry of list `list` that passes `filter` to `top`, scored by `scanner`
    /// (rejected entries are skipped before scoring; a list none of whose entries pass does
    /// not even set the scanner up, which for IVF-PQ builds a table).
    fn scan_list<'s>(
        &'s self,
        scanner: &mut C::Scanner<'s>,
        list: u32,
        coarse_key: f32,
        filter: Option<&dyn IdFilter>,
        top: &mut impl ScanSink,
        scratch: &mut ScanScratch,
    ) -> Result<()> {
        // An approximate coarse search may find fewer than nprobe lists (padded).
        let Some(l) = self.lists.get(list as usize) else { return Ok(()) };
        let centroid = &self.centroids()[list as usize * self.dim..][..self.dim];
        let mut ready = false;
        let ScanScratch { keys, gather } = scratch;
        gather.for_each_block(l.ids(), l.codes(), self.code_size(), BLOCK, filter, |ids, codes| {
            if !ready {
                // The first block holds every passing entry of the list unless it is full.
                scanner.set_list_for(list as usize, centroid, coarse_key, ids.len())?;
                ready = true;
            }
            offer_scanned(scanner, ids, codes, top, keys);
            Ok(())
        })
    }

    fn code_size(&self) -> usize {
        self.codec.quantizer().code_size()
    }

    /// `rows` = the f32 decoding of `codes` (whole codes).
    fn decode_into(&self, codes: &[u8], rows: &mut Vec<f32>) {
        rows.clear();
        rows.resize(codes.len() / self.code_size() * self.dim, 0.0);
        self.codec.decode_block(codes, rows);
    }

    /// Offers the decoded rows of `block` to `top`, keyed for `query`
    /// with the f32 pair kernels: L2 to the query's residual from the list's centroid (or to
    /// the query), inner product with the query plus the list's coarse key for residual codes.
    /// The same arithmetic whichever path calls it, so both paths agree bit for bit.
    fn offer_decoded(
        &self,
        query: &[f32],
        coarse_key: f32,
        block: &Block<'_>,
        top: &mut impl ScanSink,
        qv: &mut Vec<f32>,
    ) {
        let kern = vq_distance::Kernels::active();
        let residual = self.codec.by_residual();
        let rows = block.ids.iter().zip(block.rows.chunks_exact(self.dim));
        if self.codec.quantizer().metric() == Metric::L2 {
            let q = if residual {
                let centroid = &self.centroids()[block.list * self.dim..][..self.dim];
                qv.clear();
                qv.extend(query.iter().zip(centroid).map(|(q, c)| q - c));
                qv.as_slice()
            } else {
                query
            };
            let l2 = kern.f32_l2_sq_fn();
            rows.for_each(|(&id, row)| top.push(l2(q, row), id));
        } else {
            let offset = if residual { coarse_key } else { 0.0 };
            let dot = kern.f32_dot_fn();
            rows.for_each(|(&id, row)| top.push(-dot(query, row) + offset, id));
        }
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
    /// `train`, and `add` numbers ids from 0 again. Lists read from a map stop viewing it.
    pub fn reset(&mut self) {
        self.lists.iter_mut().for_each(|list| *list = List::default());
        self.ids = IdTracker::default();
        self.locations = OnceLock::new();
    }

    /// Removes every id in `range` (Faiss' `IDSelectorRange`); returns how many were removed.
    pub fn remove_range(&mut self, range: std::ops::Range<u64>) -> usize {
        self.remove_where(|id| range.contains(&id))
    }

    /// Removes every id for which `remove` is `true`; returns how many were removed. The
    /// survivors keep their order within each list.
    pub fn remove_where(&mut self, remove: impl Fn(u64) -> bool + Sync) -> usize {
        let cs = self.codec.quantizer().code_size();
        let removed: Vec<Vec<u64>> = self
            .lists
            .par_iter_mut()
            .map(|l| {
                // A list that loses nothing is not written (a mapped one stays mapped).
                let Some(first) = l.ids().iter().position(|&id| remove(id)) else { return Vec::new() };
                let (ids, codes) = l.owned_mut();
                let mut gone = Vec::new();
                let mut w = first;
                for r in first..ids.len() {
                    let id = ids[r];
                    if remove(id) {
                        gone.push(id);
                        continue;
                    }
                    if w != r {
                        ids[w] = id;
                        codes.copy_within(r * cs..(r + 1) * cs, w * cs);
                    }
                    w += 1;
                }
                ids.truncate(w);
                codes.truncate(w * cs);
                gone
            })
            .collect();
        let removed = removed.concat();
        self.ids.remove(&removed);
        if !removed.is_empty() {
            self.locations = OnceLock::new();
        }
        removed.len()
    }

    /// The stored vector of `id`, decoded (plus its centroid for residual codecs): exact for
    /// IVF-Flat (normalized, for cosine), the codec's reconstruction otherwise. Scans the
    /// lists (no id map is kept): for many ids, [`IvfIndex::reconstruct_batch`] scans once.
    pub fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        self.reconstruct_batch(&[id])
    }

    /// [`IvfIndex::reconstruct`] of every id of `ids` (row-major, in their order) with one
    /// scan of the lists. An id not present is [`Error::UnknownId`].
    pub fn reconstruct_batch(&self, ids: &[u64]) -> Result<Vec<f32>> {
        if let Some(&id) = ids.iter().find(|&&id| !self.ids.contains(id)) {
            return Err(Error::UnknownId(id));
        }
        let at = positions_in_lists(ids, self.lists.iter().map(|l| l.ids()));
        let cs = self.codec.quantizer().code_size();
        let mut out = vec![0f32; ids.len() * self.dim];
        for (row, &id) in out.chunks_exact_mut(self.dim).zip(ids) {
            let Some((list, pos)) = at[&id] else { return Err(Error::UnknownId(id)) };
            self.codec.quantizer().decode(&self.lists[list].codes()[pos * cs..(pos + 1) * cs], row)?;
            if self.codec.by_residual() {
                let c = &self.centroids()[list * self.dim..][..self.dim];
                row.iter_mut().zip(c).for_each(|(v, c)| *v += c);
            }
        }
        Ok(out)
    }

    /// List sizes and their imbalance.
    pub fn list_stats(&self) -> ListStats {
        ListStats::from_sizes(self.params.nlist, self.lists.iter().map(List::len))
    }

    /// Bytes held, by part (allocated capacity, as `Vec`s report it).
    pub fn memory_usage(&self) -> IvfMemory {
        let (codes, ids) = self.lists.iter().map(List::owned_bytes).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        IvfMemory {
            codes,
            ids: ids
                + self.ids.memory_bytes()
                + self.lists.capacity() * size_of::<List>()
                + self.locations.get().map_or(0, Locations::memory_bytes),
            mapped: self.lists.iter().map(List::mapped_bytes).sum(),
            trained: self.centroids().len() * 4
                + self.coarse().map_or(0, |c| c.extra_bytes())
                + self.codec.quantizer().memory_bytes()
                + self.codec.table_bytes(),
        }
    }

    /// Releases spare capacity of the lists (growth leaves up to half of each unused).
    pub fn shrink_to_fit(&mut self) {
        for l in &mut self.lists {
            if let List::Owned { ids, codes } = l {
                ids.shrink_to_fit();
                codes.shrink_to_fit();
            }
        }
    }

    /// Moves every entry of `other` into this index, each id plus `shift_ids` (Faiss'
    /// `merge_from(other, add_id)`). Refused, with nothing moved, for every reason
    /// [`check_merge`](IvfIndex::check_merge) names.
    pub fn merge_from(&mut self, other: IvfIndex<C>, shift_ids: u64) -> Result<()> {
        let moved = self.check_merge(&other, shift_ids)?;
        // Only the lists that receive entries are copied out of a map.
        for (mine, theirs) in self.lists.iter_mut().zip(other.lists).filter(|(_, t)| t.len() > 0) {
            let (ids, codes) = mine.owned_mut();
            ids.extend(theirs.ids().iter().map(|&id| id + shift_ids));
            codes.extend_from_slice(theirs.codes());
        }
        self.ids.insert(&moved);
        self.locations = OnceLock::new();
        Ok(())
    }

    /// Every check of [`merge_from`](IvfIndex::merge_from), with nothing moved, so that a
    /// caller who must keep `other` when the merge would be refused can ask first: refused
    /// with [`Error::NotTrained`] when either side is untrained, [`Error::Incompatible`] when
    /// the shapes differ, [`Error::TrainedStateMismatch`] when `other` was trained separately
    /// (its codes would mean something else here), [`Error::Parameter`] when a shifted id
    /// overflows and [`Error::DuplicateId`] naming the first (shifted) id already here.
    /// `Ok` holds `other`'s shifted ids, in list order.
    pub fn check_merge(&self, other: &IvfIndex<C>, shift_ids: u64) -> Result<Vec<u64>> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        if !other.is_trained() {
            return Err(other.not_trained());
        }
        if (self.dim, self.metric, self.name()) != (other.dim, other.metric, other.name()) {
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
        self.ids.shifted_absent(other.lists.iter().flat_map(List::ids).copied(), other.len(), shift_ids)
    }

    pub(crate) fn parts(&self) -> (&[List], &IdTracker) {
        (&self.lists, &self.ids)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        dim: usize,
        metric: Metric,
        params: IvfParams,
        coarse: Option<Coarse>,
        mut codec: C,
        lists: Vec<List>,
        ids: IdTracker,
    ) -> Self {
        if let Some(c) = &coarse {
            codec.prepare(c.get().centroids());
        }
        let mut index =
            IvfIndex { dim, metric, params, coarse, codec, lists, ids, fingerprint: 0, locations: OnceLock::new() };
        if index.is_trained() {
            index.fingerprint = index.compute_fingerprint();
        }
        index
    }
}

/// The selection keys of a batch's per-query radii (one per row of `queries_len` values `dim`
/// wide, none NaN).
pub(crate) fn range_keys(metric: Metric, queries_len: usize, dim: usize, radii: &[f32]) -> Result<Vec<f32>> {
    vq_distance::check_radii(radii, queries_len / dim.max(1))?;
    Ok(radii.iter().map(|&r| metric.key_from_score(r)).collect())
}

/// Makes room for `additional` more entries: exactly that many on a list's first add (one bulk
/// add leaves no spare capacity), and at least a quarter of the list when it must grow again, so
/// repeated small adds stay amortized O(1) with at most a quarter of a list unused (`Vec`'s own
/// doubling leaves up to half).
fn grow<T>(v: &mut Vec<T>, additional: usize) {
    if v.capacity() - v.len() < additional {
        v.reserve_exact(additional.max(v.len() / 4));
    }
}

/// `rows −= the centroid of the list each is assigned to`, in place.
fn subtract_centroids(rows: &mut [f32], coarse: &dyn CoarseQuantizer, dim: usize) -> Result<()> {
    let labels = assign_rows(coarse, rows, dim)?;
    subtract_lists(rows, &labels, coarse.centroids(), dim);
    Ok(())
}

/// The codes [`IvfIndex::add`] stores for `rows` (prepared: validated, unit length for cosine)
/// placed in lists `labels` of `centroids` (`nlist × dim`): the codec's codes of the residuals
/// `x − c` when it codes residuals, of the rows otherwise. For a copy of an index held
/// elsewhere (vq-gpu's, whose device finds the lists) to store what this crate would.
///
/// # Errors
/// [`Error::Parameter`] for a label past the centroids or lengths that do not match; the
/// quantizer's errors (not trained).
pub fn encode_in_lists<C: IvfCodec>(
    codec: &C,
    centroids: &[f32],
    dim: usize,
    rows: &[f32],
    labels: &[u32],
) -> Result<Vec<u8>> {
    let nlist = centroids.len() / dim.max(1);
    if dim == 0 || rows.len() != labels.len() * dim {
        return Err(Error::Parameter {
            name: "rows",
            what: format!("{} values for {} labels of dimension {dim}", rows.len(), labels.len()),
        });
    }
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= nlist) {
        return Err(Error::Parameter { name: "labels", what: format!("list {l} of {nlist}") });
    }
    let mut codes = vec![0u8; labels.len() * codec.quantizer().code_size()];
    if codec.by_residual() {
        let mut r = rows.to_vec();
        subtract_lists(&mut r, labels, centroids, dim);
        codec.encode_residuals(&r, labels, centroids, &mut codes)?;
    } else {
        codec.quantizer().encode(rows, &mut codes)?;
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use vq_quant::SqType;

    use super::*;
    use crate::codec::{FlatCodec, PqCodec, RaBitQCodec, SqCodec};
    use crate::filter::widened_nprobe;

    /// Both scans of the same probes: list-major over the whole batch, and query by query.
    type Rows = Vec<Vec<(u64, f32)>>;

    fn both_paths<C: IvfCodec, S: ScanSink + Send>(
        index: &IvfIndex<C>,
        queries: &[f32],
        nprobe: usize,
        collector: &(impl Fn(usize) -> S + Sync),
        filter: Option<&dyn IdFilter>,
    ) -> (Rows, Rows) {
        let q = prepare_rows("queries", queries, index.dim, index.metric).unwrap();
        let nq = q.len();
        let (mut lists, mut coarse_keys) = (vec![0u32; nq * nprobe], vec![0f32; nq * nprobe]);
        index.coarse().unwrap().search_with_ef(q.as_slice(), nprobe, None, &mut lists, &mut coarse_keys).unwrap();
        let probes = Probes { queries: q.as_slice(), nprobe, lists: &lists, coarse_keys: &coarse_keys };
        let by_list = index.search_by_list(&probes, 0..nq, collector, filter).unwrap();
        let per_query = index.search_per_query(&probes, 0..nq, collector, filter).unwrap();
        (by_list, per_query)
    }

    fn bits(rows: &[Vec<(u64, f32)>]) -> Vec<Vec<(u64, u32)>> {
        rows.iter().map(|r| r.iter().map(|&(id, s)| (id, s.to_bits())).collect()).collect()
    }

    fn check<C: IvfCodec>(
        codec: C,
        metric: Metric,
        data: &[f32],
        queries: &[f32],
        nprobe: usize,
        k: usize,
        filtered: bool,
    ) {
        let dim = codec.quantizer().dim();
        let mut index = IvfIndex::new(dim, metric, IvfParams::new(8), codec).unwrap();
        index.train(data).unwrap();
        index.add(data).unwrap();
        let keep_even = |id: u64| id.is_multiple_of(2);
        let filter: Option<&dyn IdFilter> = if filtered { Some(&keep_even) } else { None };
        let (by_list, per_query) = both_paths(&index, queries, nprobe, &|_| TopK::new(k), filter);
        assert_eq!(bits(&by_list), bits(&per_query), "{} {metric:?} nprobe {nprobe} k {k}", index.name());
        // The public search (whichever path it takes for this batch) answers the same, and so
        // does each query searched alone, to the bit (the coarse keys, which IVF-PQ and
        // inner-product residual scores include, do not depend on the batch), wherever it
        // probes the same lists (a near tie at the `nprobe`-th list may go either way). A
        // filtered search probes the widened lists; a short answer there probes more again
        // (tested on its own below), so only full answers are compared.
        let opts = IvfSearch { nprobe: Some(nprobe), filter, coarse_ef: None };
        let batch = index.search(queries, k, &opts).unwrap();
        let nlist = index.params.nlist;
        let nprobe = nprobe.min(nlist);
        let probed =
            filter.map_or(nprobe, |f| widened_nprobe(nprobe, nlist, pass_rate(index.lists.iter().map(List::ids), f)));
        let public_rows = if probed == nprobe {
            by_list.clone()
        } else {
            both_paths(&index, queries, probed, &|_| TopK::new(k), filter).0
        };
        let coarse = index.coarse().unwrap();
        let nq = queries.len() / dim;
        let (mut lists, mut keys) = (vec![0u32; nq * probed], vec![0f32; nq * probed]);
        coarse.search_with_ef(queries, probed, None, &mut lists, &mut keys).unwrap();
        for (i, row) in public_rows.iter().enumerate().filter(|(_, row)| row.len() == k || probed == nlist) {
            let (ids, scores) = batch.get(i).unwrap();
            let got: Vec<(u64, u32)> = ids.iter().zip(scores).map(|(&id, s)| (id, s.to_bits())).collect();
            let want = &bits(std::slice::from_ref(row))[0];
            assert_eq!(&got, want, "query {i}");
            let q = &queries[i * dim..][..dim];
            let (mut alone_lists, mut alone_keys) = (vec![0u32; probed], vec![0f32; probed]);
            coarse.search_with_ef(q, probed, None, &mut alone_lists, &mut alone_keys).unwrap();
            if alone_lists[..] == lists[i * probed..][..probed] {
                let alone = index.search(q, k, &opts).unwrap();
                let (ids, scores) = alone.get(0).unwrap();
                let got: Vec<(u64, u32)> = ids.iter().zip(scores).map(|(&id, s)| (id, s.to_bits())).collect();
                assert_eq!(&got, want, "query {i} alone");
            }
        }

        // Range search, at the score of a hit halfway down the first query's top-k: both
        // paths keep the same entries, which begin with each query's top-k cut at the radius
        // (and are exactly that cut when the top-k reaches outside it), and the public range
        // search answers the same.
        let Some(&(_, radius)) = by_list.iter().flatten().nth(k / 2) else { return };
        let max_key = metric.key_from_score(radius);
        let (mut range_by_list, mut range_per_query) =
            both_paths(&index, queries, nprobe, &|_| WithinKey::new(max_key), filter);
        for row in range_by_list.iter_mut().chain(range_per_query.iter_mut()) {
            metric.sort_hits(row);
        }
        assert_eq!(bits(&range_by_list), bits(&range_per_query), "{} {metric:?} range", index.name());
        let public = index.range_search(queries, radius, &opts).unwrap();
        for (i, (range_row, top_row)) in range_by_list.iter().zip(&by_list).enumerate() {
            let cut: Vec<(u64, f32)> = top_row.iter().take_while(|h| metric.within(h.1, radius)).copied().collect();
            if cut.len() < k {
                assert_eq!(
                    bits(std::slice::from_ref(range_row)),
                    bits(&[cut]),
                    "query {i}: the range is the cut top-k"
                );
            } else {
                assert_eq!(
                    bits(&[range_row[..k].to_vec()]),
                    bits(&[cut]),
                    "query {i}: the range starts with the top-k"
                );
            }
            let (ids, scores) = public.get(i).unwrap();
            let got: Vec<(u64, u32)> = ids.iter().zip(scores).map(|(&id, s)| (id, s.to_bits())).collect();
            assert_eq!(got, bits(std::slice::from_ref(range_row))[0], "query {i}: range_search");
        }
    }

    /// The parts an index exposes assemble into the same index (the same file bytes, so the
    /// same fingerprint, ids, codes and next id); malformed parts are typed errors.
    #[test]
    fn from_lists_reassembles_the_index_and_checks_its_parts() {
        let dim = 6;
        let data: Vec<f32> = (0..dim * 600).map(|i| ((i * 7919) % 1009) as f32 / 50.0).collect();
        for metric in [Metric::L2, Metric::Cosine] {
            let mut index =
                IvfIndex::new(dim, metric, IvfParams::new(8), FlatCodec::new(dim, metric).unwrap()).unwrap();
            index.train(&data).unwrap();
            index.add(&data[..300 * dim]).unwrap();
            index.add_with_ids(&data[300 * dim..], &(1000..1300).collect::<Vec<u64>>()).unwrap();
            index.remove_ids(&[5, 1001]);
            let lists = |ix: &IvfIndex<FlatCodec>| -> Vec<(Vec<u64>, Vec<u8>)> {
                (0..8).map(|l| (ix.list_ids(l).unwrap().to_vec(), ix.list_codes(l).unwrap().to_vec())).collect()
            };
            let build = |lists, centroids: Vec<f32>| {
                IvfIndex::from_lists(
                    dim,
                    metric,
                    IvfParams::new(8),
                    FlatCodec::new(dim, metric).unwrap(),
                    centroids,
                    lists,
                    index.next_id(),
                )
            };
            let back = build(lists(&index), index.centroids().to_vec()).unwrap();
            let bytes = |ix: &IvfIndex<FlatCodec>| {
                let mut w = vq_io::ContainerWriter::in_memory().unwrap();
                ix.write_sections(&mut w, "i").unwrap();
                w.finish_to_bytes().unwrap()
            };
            assert_eq!(bytes(&back), bytes(&index));
            assert_eq!((back.fingerprint(), back.next_id()), (index.fingerprint(), 1300));

            let mut dup = lists(&index);
            let first = dup.iter().position(|(ids, _)| !ids.is_empty()).unwrap();
            let (id, code) = (dup[first].0[0], dup[first].1[..4 * dim].to_vec());
            let other = (first + 1) % 8;
            dup[other].0.push(id);
            dup[other].1.extend_from_slice(&code);
            assert!(matches!(build(dup, index.centroids().to_vec()), Err(Error::DuplicateId(d)) if d == id));
            let mut short = lists(&index);
            short[first].1.pop();
            assert!(matches!(build(short, index.centroids().to_vec()), Err(Error::Parameter { name: "lists", .. })));
            assert!(matches!(
                build(lists(&index)[..7].to_vec(), index.centroids().to_vec()),
                Err(Error::Parameter { .. })
            ));
            let mut nan = index.centroids().to_vec();
            nan[3] = f32::NAN;
            assert!(build(lists(&index), nan).is_err());
            assert!(build(lists(&index), index.centroids()[dim..].to_vec()).is_err());
        }
    }

    /// IVF-PQ is searched list-major only with its precomputed L2 table, in chunks whose
    /// scanners fit the codec's byte budget; Flat has no bound beyond the batch.
    #[test]
    fn list_major_chunks_follow_the_codec() {
        // One thread: one chunk would be the whole batch were it not for a bound.
        let one_thread = |f: &(dyn Fn() -> Option<usize> + Sync)| {
            rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(f)
        };
        let data: Vec<f32> = (0..8 * 600).map(|i| ((i * 7919) % 61) as f32).collect();
        let chunk_of = |metric: Metric, m: usize, nq: usize, nprobe: usize| {
            let mut index =
                IvfIndex::new(8, metric, IvfParams::new(16), PqCodec::new(8, metric, m, 8).unwrap()).unwrap();
            index.train(&data).unwrap();
            one_thread(&|| index.list_major_chunk(nq, nprobe))
        };
        // L2, PQ2 (two 256-entry tables a scanner): the 8 MiB budget is far above 2,000 queries.
        assert_eq!(chunk_of(Metric::L2, 2, 2000, 4), Some(2000));
        // Too few probes per list to share: query by query.
        assert_eq!(chunk_of(Metric::L2, 2, 4, 1), None);
        // Inner product keeps one table for every list: nothing to share.
        assert_eq!(chunk_of(Metric::InnerProduct, 2, 2000, 4), None);
        // Flat: the whole batch, up to the global bound.
        let mut flat =
            IvfIndex::new(8, Metric::L2, IvfParams::new(16), FlatCodec::new(8, Metric::L2).unwrap()).unwrap();
        flat.train(&data).unwrap();
        assert_eq!(one_thread(&|| flat.list_major_chunk(2000, 4)), Some(2000));
        // Above the bound: as few chunks as it allows, of even size.
        assert_eq!(one_thread(&|| flat.list_major_chunk(5000, 4)), Some(1667));
        let two_threads = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        assert_eq!(two_threads.install(|| flat.list_major_chunk(10_000, 4)), Some(1667), "6 chunks, 3 a thread");
        assert_eq!(two_threads.install(|| flat.list_major_chunk(2000, 4)), Some(1000), "one a thread");
        // PQ128 at d = 1,024 (two 512 KiB tables a scanner): the budget binds.
        let mut data = vec![0f32; 1024 * 300];
        data.iter_mut().enumerate().for_each(|(i, v)| *v = ((i * 7919) % 61) as f32);
        let mut index =
            IvfIndex::new(1024, Metric::L2, IvfParams::new(2), PqCodec::new(1024, Metric::L2, 128, 8).unwrap())
                .unwrap();
        index.train(&data).unwrap();
        let budget = crate::codec::PQ_LIST_MAJOR_BYTES / (2 * 128 * 256 * 4);
        let chunk = one_thread(&|| index.list_major_chunk(2000, 2));
        assert_eq!(chunk, Some(budget));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Small integer grids, so many entries tie (duplicates, equal distances): the two scans
        /// must agree on ids and score bits, ties broken the same way.
        #[test]
        fn list_major_scan_equals_the_per_query_scan(
            data in prop::collection::vec(0u8..4, 8 * 300),
            queries in prop::collection::vec(0u8..4, 8 * 40),
            nprobe in 1usize..9,
            k in 1usize..30,
            metric in prop::sample::select(vec![Metric::L2, Metric::InnerProduct, Metric::Cosine]),
            filtered in any::<bool>(),
        ) {
            // From 1: no zero row, which cosine refuses.
            let data: Vec<f32> = data.iter().map(|&v| f32::from(v) + 1.0).collect();
            let queries: Vec<f32> = queries.iter().map(|&v| f32::from(v) + 0.5).collect();
            check(FlatCodec::new(8, metric).unwrap(), metric, &data, &queries, nprobe, k, filtered);
            check(SqCodec::new(8, metric, SqType::SQ8).unwrap(), metric, &data, &queries, nprobe, k, filtered);
            check(PqCodec::new(8, metric, 2, 4).unwrap(), metric, &data, &queries, nprobe, k, filtered);
            check(RaBitQCodec::new(8, metric).unwrap(), metric, &data, &queries, nprobe, k, filtered);
            check(RaBitQCodec::with_bits(8, metric, 3).unwrap(), metric, &data, &queries, nprobe, k, filtered);
        }
    }
}
