//! The one interface every vq index implements.

use std::any::Any;
use std::borrow::Cow;

use vq_distance::{IdFilter, Metric, Neighbors, RangeResult};
use vq_io::ContainerWriter;
use vq_quant::Quantizer;

use crate::error::{Error, Result};
use crate::range::{range_by_deepening, range_rows_per_query};
use crate::spec::IndexSpec;

/// Per-search settings. A knob an index does not have is ignored (`nprobe` on a graph).
///
/// ```
/// let params = vq::SearchParams { k: 10, ef: Some(64), ..Default::default() };
/// assert_eq!(params.refine_k, None);
/// ```
#[derive(Clone, Copy, Default)]
pub struct SearchParams<'a> {
    /// Neighbours per query (at least 1).
    pub k: usize,
    /// Graph beam width (hnswlib `ef`, Faiss `efSearch`); raised to the number of candidates
    /// the search must return. `None`: the index's default. For an inverted file over an HNSW
    /// coarse quantizer (`IVF65536_HNSW32,…`) it is the coarse graph's beam (raised to
    /// `nprobe`); flat coarse quantizers ignore it.
    pub ef: Option<usize>,
    /// Inverted lists scanned per query (IVF indexes). `None`: the index's default.
    pub nprobe: Option<usize>,
    /// Refine indexes: `refine_k · k` candidates of the base index are re-scored (Faiss'
    /// `k_factor`, Milvus' `refine_k`). `None`: the index's default (1); 0 is an error.
    pub refine_k: Option<usize>,
    /// Refine indexes' range search: how far past the radius the base's own range search
    /// reaches, in units of `δ`, the most a base score strayed from the true one among the
    /// query's `k` nearest. `None`: 1. `Some(0.0)` is Faiss' way, the base's range at the
    /// radius, re-scored, in one pass: on imgsift100k's inverted files (nprobe 16) it found
    /// 0.78–0.81 of the hits instead of 0.83–0.84, at 1.45–2.4× the QPS (0.97–1.44× Faiss'
    /// own; BENCHMARKS.md). For more hits in the time, probing more lists paid better on
    /// imgsift's PQ codes, widening on its SQ4 codes and on textemb100k's embeddings (PQ48:
    /// 0.83 of the hits at nprobe 16 where Faiss' way finds 0.71 at 24). Finite and at least 0.
    pub refine_widening: Option<f32>,
    /// Only ids the filter accepts are returned (rejected vectors still route graph searches).
    /// A set that lists its ids (`IdBitset`, `IdSet`) lets HNSW and inverted-file indexes
    /// answer a selective filter exactly from those ids; an inverted file probes more lists
    /// than `nprobe` the fewer ids pass, so that recall does not fall with the pass rate.
    pub filter: Option<&'a dyn IdFilter>,
}

impl SearchParams<'_> {
    /// The defaults with `k` neighbours.
    pub fn new(k: usize) -> Self {
        SearchParams { k, ..Default::default() }
    }
}

impl std::fmt::Debug for SearchParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchParams")
            .field("k", &self.k)
            .field("ef", &self.ef)
            .field("nprobe", &self.nprobe)
            .field("refine_k", &self.refine_k)
            .field("refine_widening", &self.refine_widening)
            .field("filter", &self.filter.map(|_| "…"))
            .finish()
    }
}

/// The work [`Index::prepare_add`] did through `&self` for one batch (an inverted file's list
/// assignment and codes), to hand to [`Index::add_prepared`] with the same batch.
pub struct PreparedAdd(Box<dyn Any + Send + Sync>);

impl PreparedAdd {
    pub(crate) fn new<T: Any + Send + Sync>(work: T) -> Self {
        PreparedAdd(Box::new(work))
    }

    /// The work, if it is a `T` (an index given another kind's work redoes it).
    pub(crate) fn take<T: Any>(self) -> Option<T> {
        self.0.downcast().ok().map(|b| *b)
    }
}

impl std::fmt::Debug for PreparedAdd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreparedAdd")
    }
}

/// An index's memory by part, in bytes: what it allocated, spare capacity included, and apart
/// from it ([`mapped`](MemoryUsage::mapped)) what it serves from a memory-mapped file.
///
/// The index's own allocations, not the process': memory that training freed but the
/// allocator kept (glibc keeps freed memory of its per-thread arenas resident, a few MB after
/// training PQ codebooks on several threads, which `malloc_trim` does not return;
/// `MALLOC_ARENA_MAX=1` avoids it) and buffers libraries keep per thread (a PCA's first training leaves ~4 MB a
/// thread in the linear-algebra library) are not in it. An outside probe of 21 factory strings
/// at 100,000 SIFT rows found the allocator's live bytes within 1 % of the total for 16 of
/// them and the rest off by those two causes, or by HNSW's list of displaced nodes (~2 MB,
/// counted since under `scratch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// The searched vectors: f32 rows or quantized codes.
    pub vectors: usize,
    /// Graph links.
    pub links: usize,
    /// External ids and the maps between ids and rows or slots.
    pub ids: usize,
    /// Trained parameters: codebooks, ranges, rotations.
    pub trained: usize,
    /// The refine stage's vectors or codes (and its ids).
    pub refine: usize,
    /// Pooled search scratch.
    pub scratch: usize,
    /// Data served from the memory-mapped file the index was read from
    /// ([`ReadOptions::mmap`](crate::ReadOptions::mmap); IVF lists until they are written):
    /// not allocated by the index and not counted in the parts above. These are page-cache
    /// pages, read in on first access and reclaimable by the kernel.
    pub mapped: usize,
}

impl MemoryUsage {
    /// Everything: allocated and mapped. The same for an index whether it was read into
    /// memory or mapped.
    pub fn total(&self) -> usize {
        self.allocated() + self.mapped
    }

    /// What the index allocated: everything but [`mapped`](MemoryUsage::mapped).
    pub fn allocated(&self) -> usize {
        self.vectors + self.links + self.ids + self.trained + self.refine + self.scratch
    }
}

impl std::ops::Add for MemoryUsage {
    type Output = MemoryUsage;

    fn add(self, o: MemoryUsage) -> MemoryUsage {
        MemoryUsage {
            vectors: self.vectors + o.vectors,
            links: self.links + o.links,
            ids: self.ids + o.ids,
            trained: self.trained + o.trained,
            refine: self.refine + o.refine,
            scratch: self.scratch + o.scratch,
            mapped: self.mapped + o.mapped,
        }
    }
}

/// A search parameter an index keeps a default for, used by every search that does not give
/// it ([`SearchParams`]' field of the same name). Set through
/// [`Index::set_search_default`] (Faiss' `index.nprobe = 16` or
/// `ParameterSpace().set_index_parameter(index, "nprobe", 16)`, which in Faiss reach only the
/// object they are called on).
///
/// ```
/// use vq::SearchDefault;
/// assert_eq!("efSearch".parse::<SearchDefault>()?, SearchDefault::Ef);
/// assert_eq!(SearchDefault::RefineK.name(), "refine_k");
/// assert!("nprobes".parse::<SearchDefault>().is_err());
/// # Ok::<(), vq::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SearchDefault {
    /// Inverted lists scanned per query (`nprobe`).
    Nprobe,
    /// An HNSW graph's beam width (`ef`; Faiss' `efSearch`).
    Ef,
    /// A refine stage's candidates per hit (`refine_k`; Faiss' `k_factor`).
    RefineK,
    /// The least candidates a refine stage re-scores when a search gives no `refine_k`
    /// (`reorder_k`, Milvus' SCANN).
    ReorderK,
}

impl SearchDefault {
    /// Every knob, in the order above.
    pub const ALL: [SearchDefault; 4] =
        [SearchDefault::Nprobe, SearchDefault::Ef, SearchDefault::RefineK, SearchDefault::ReorderK];

    /// vq's name: `nprobe`, `ef`, `refine_k`, `reorder_k`.
    pub fn name(self) -> &'static str {
        match self {
            SearchDefault::Nprobe => "nprobe",
            SearchDefault::Ef => "ef",
            SearchDefault::RefineK => "refine_k",
            SearchDefault::ReorderK => "reorder_k",
        }
    }
}

impl std::str::FromStr for SearchDefault {
    type Err = Error;

    /// vq's names and Faiss' (`efSearch`, `k_factor`).
    fn from_str(name: &str) -> Result<Self> {
        match name {
            "nprobe" => Ok(SearchDefault::Nprobe),
            "ef" | "efSearch" => Ok(SearchDefault::Ef),
            "refine_k" | "k_factor" => Ok(SearchDefault::RefineK),
            "reorder_k" => Ok(SearchDefault::ReorderK),
            _ => Err(Error::Parameter {
                name: "search default",
                what: format!("unknown name {name:?} (nprobe, ef / efSearch, refine_k / k_factor, reorder_k)"),
            }),
        }
    }
}

/// The refusal of [`Index::set_search_default`] for a knob no part of the index uses.
pub(crate) fn no_search_default(index: &(impl Index + ?Sized), knob: SearchDefault) -> Error {
    Error::Parameter { name: knob.name(), what: format!("{} has no {} to set", index.spec(), knob.name()) }
}

/// A wrapper's (refine stage's, transform's) `set_search_default` handed to the part it wraps:
/// a knob no part has is named against the whole index the caller holds, not the part
/// (`HNSW16,SQ8,RFlat has no nprobe`, not `HNSW16,SQ8 has no nprobe`).
pub(crate) fn set_inner_search_default(
    outer: IndexSpec,
    inner: &mut dyn Index,
    knob: SearchDefault,
    value: usize,
) -> Result<()> {
    inner.set_search_default(knob, value).map_err(|e| match e {
        Error::Parameter { name, .. } if name == knob.name() && inner.search_default(knob).is_none() => {
            Error::Parameter { name, what: format!("{outer} has no {name} to set") }
        }
        e => e,
    })
}

/// A default's value checked: every knob counts something, at least 1.
pub(crate) fn check_search_default(knob: SearchDefault, value: usize) -> Result<usize> {
    at_least_one(knob.name(), value)
}

/// `value` of the parameter `name` checked to count something: at least 1.
pub(crate) fn at_least_one(name: &'static str, value: usize) -> Result<usize> {
    if value == 0 {
        return Err(Error::Parameter { name, what: "must be at least 1".into() });
    }
    Ok(value)
}

/// A vector index: Faiss' verbs over row-major `&[f32]` batches.
///
/// Scores follow [`Metric`]'s convention (squared L2, smaller is better; inner product and
/// cosine, larger is better); cosine indexes normalize what they store and every query, so
/// unnormalized input is never scored wrong. Ids are `u64`; [`Index::add`] numbers vectors
/// from the count of vectors ever added, as Faiss does.
///
/// No method panics on input: wrong dimensions, `k = 0`, NaN or infinite values, an untrained
/// or empty index, `k` above the count, duplicate ids are typed errors or well-defined answers
/// (an empty index and a filter that passes nothing give rows padded with `u64::MAX`). A `k` so
/// large that the padded `num_queries × k` result cannot be allocated (`usize::MAX`, 2⁴⁰) is
/// `Error::Distance(ResultTooLarge)`; nothing is allocated by `k` before that check.
///
/// `Any` is a supertrait so that [`merge_from`](Index::merge_from) can take a
/// `Box<dyn Index>` and recover the concrete index it must be.
pub trait Index: Any + Send + Sync {
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// The metric scores follow.
    fn metric(&self) -> Metric;
    /// Vectors searchable now (added and not removed).
    fn len(&self) -> usize;
    /// `true` when nothing is searchable.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the index has what it needs to add vectors (indexes with nothing to learn are
    /// always trained).
    fn is_trained(&self) -> bool;
    /// Learns the index's parameters from `data` (row-major); a no-op for indexes that need
    /// none. Training again is allowed only while the index is empty.
    fn train(&mut self, data: &[f32]) -> Result<()>;
    /// Makes room for `additional` more vectors up front, so a bulk load does not grow (and
    /// over-allocate) step by step. A hint: indexes without up-front storage ignore it.
    fn reserve(&mut self, additional: usize) {
        let _ = additional;
    }
    /// Adds `data` (row-major) under automatic ids: from the number of vectors ever added, and
    /// past every id [`add_with_ids`](Index::add_with_ids) or a merge ever gave, so that an
    /// automatic id never repeats one (`0..n` while only `add` was used). An error
    /// (`IdsExhausted`) once they would reach `u64::MAX`, the padding of short answers.
    fn add(&mut self, data: &[f32]) -> Result<()>;
    /// The first id the next automatic [`add`](Index::add) hands out: past every id ever given
    /// (the number of vectors ever added while only `add` was used).
    fn next_id(&self) -> u64;
    /// Adds `data` under `ids` (one per row, none already present, none `u64::MAX`: it pads
    /// short answers); on error nothing is added. A removed id may be given again.
    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()>;
    /// [`add`](Index::add) (`ids` `None`) or [`add_with_ids`](Index::add_with_ids) through a
    /// shared reference, while other threads search the index (hnswlib's `add_items` beside
    /// `knn_query`): `Some` for the kinds whose adds allow it (HNSW over f32 vectors or over
    /// trained codes, and refine stages over such graphs), `None` for the others, which add
    /// through `&mut self` only. What needs the index alone (packing a graph's new lists to
    /// their degree) waits for [`pack`](Index::pack).
    /// Searches running meanwhile may see part of the batch.
    fn add_shared(&self, data: &[f32], ids: Option<&[u64]>) -> Option<Result<()>> {
        let _ = (data, ids);
        None
    }
    /// The part of an add of `data` that needs no exclusive access, done through `&self` beside
    /// searches (an inverted file assigns the vectors to lists and encodes them): `Some` for
    /// the kinds that have such a part, whose result [`add_prepared`](Index::add_prepared)
    /// then appends under exclusive access; `None` for the others (graphs add through
    /// [`add_shared`](Index::add_shared); flat storage has nothing to prepare).
    fn prepare_add(&self, data: &[f32]) -> Option<Result<PreparedAdd>> {
        let _ = data;
        None
    }
    /// [`add`](Index::add) (`ids` `None`) or [`add_with_ids`](Index::add_with_ids) of `data`
    /// with the work [`prepare_add`](Index::prepare_add) did for that batch, redone where the
    /// index was trained again since (or the work is another index's). Errors and effects are
    /// those of `add` / `add_with_ids`.
    fn add_prepared(&mut self, prepared: PreparedAdd, data: &[f32], ids: Option<&[u64]>) -> Result<()> {
        let _ = prepared;
        match ids {
            Some(ids) => self.add_with_ids(data, ids),
            None => self.add(data),
        }
    }
    /// Whether [`add_shared`](Index::add_shared) takes vectors (`Some`) for this kind of index
    /// rather than declining (`None`).
    fn adds_shared(&self) -> bool {
        false
    }
    /// Does what [`add_shared`](Index::add_shared) left for exclusive access (a graph packs
    /// its lists once an eighth of them are open, as its `add` does on its own); nothing for
    /// the other kinds.
    fn pack(&mut self) {}
    /// Does through a shared reference, beside searches, the work of the next
    /// [`pack`](Index::pack), which then only installs it (a graph's packed lists: tens of
    /// milliseconds a 100,000 nodes, against a store of one word per node), unless an add
    /// comes between. Returns whether there is such work, i.e. whether `pack` is due; `false`
    /// for the kinds whose `pack` does nothing.
    fn prepare_pack(&self) -> bool {
        false
    }
    /// The `k` best matches of every query: `num_queries × k`, best first, padded.
    fn search(&self, queries: &[f32], k: usize) -> Result<Neighbors> {
        self.search_with(queries, &SearchParams::new(k))
    }
    /// [`search`](Index::search) with every knob.
    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors>;
    /// Every stored vector within `radius` of each query (Faiss' `range_search`): squared L2
    /// below `radius`, inner product or cosine above it ([`Metric::within`]), best first, ties
    /// to the smaller id, in [`RangeResult`]'s `lims` / `ids` / `scores` layout. A NaN radius is
    /// an error; an infinite one keeps every vector (or none).
    ///
    /// `Flat` answers exactly; flat codes (`SQ8`, `PQ16`, `PQ32x4fs`, …) scan every code and
    /// inverted files (`IVF…,Flat|SQ…|PQ…|PQ…x4fs`) their `nprobe` probed lists, for every
    /// entry within the radius by the scores their search ranks by (the answer Faiss gives).
    /// Graphs (`HNSW…`, over vectors or codes) run a beam search of width `ef`, keep every
    /// node it scored within the radius, then follow the links of those nodes (and of nodes in
    /// a thin shell outside the radius) to every node within it (Faiss keeps only what the beam
    /// scored, so its recall falls as the ball outgrows `efSearch`). `OPQ…` searches its inner
    /// index with the rotated queries. Refine stages (`…,RFlat`, `…,Refine(…)`) range-search
    /// their base at the radius widened by the largest score error seen among the query's `k`
    /// nearest (`k` = 32 when 0; `refine_widening` scales it) and re-score those candidates. GPU indexes search
    /// k-NN with a growing `k` — 32, then doubled for the queries whose `k` hits all lie within
    /// the radius — up to their largest `k` (1,024): a query with more hits than that is their
    /// `k` error. Scores are the index's own (codes' scores for quantized storage, refined
    /// scores after a refine stage).
    ///
    /// ```
    /// use vq::Metric;
    /// let mut index = vq::index_factory(2, "Flat", Metric::L2)?;
    /// index.add(&[0.0, 0.0, 1.0, 0.0, 3.0, 0.0])?;
    /// let hits = index.range_search(&[0.9, 0.0], 1.0)?;
    /// assert_eq!(hits.get(0).unwrap().0, &[1, 0]); // squared distances 0.01 and 0.81
    /// # Ok::<(), vq::Error>(())
    /// ```
    fn range_search(&self, queries: &[f32], radius: f32) -> Result<RangeResult> {
        self.range_search_with(queries, radius, &SearchParams::default())
    }
    /// [`range_search`](Index::range_search) with the knobs of a search (`ef`, `nprobe`,
    /// `filter`); `k` is the first round's `k` where k-NN search is deepened, or the nearest
    /// a refine stage measures its base's score error on (0: 32), and unused otherwise.
    fn range_search_with(&self, queries: &[f32], radius: f32, params: &SearchParams<'_>) -> Result<RangeResult> {
        range_by_deepening(self, queries, radius, params)
    }
    /// [`range_search_with`](Index::range_search_with) with a radius per query (`radii[i]`
    /// for the `i`-th), each query's `(id, score)` hits unsorted: what a refine stage
    /// re-scores and sorts itself. Inverted files scan the whole batch in one pass (one coarse
    /// search, list-major where their search is); other kinds range-search one query at a
    /// time. `radii` must hold one radius per query, none NaN.
    fn range_rows(&self, queries: &[f32], radii: &[f32], params: &SearchParams<'_>) -> Result<Vec<Vec<(u64, f32)>>> {
        range_rows_per_query(self, queries, radii, params)
    }
    /// About how many entries one query's [`range_rows`](Index::range_rows) scores, whatever
    /// its radius, where a k-NN search costs the same scan: inverted files whose search scores
    /// every probed entry, their `nprobe` lists' share of the entries. A refine stage over such
    /// a base takes its candidates and its nearest from one range pass, instead of a k-NN pass
    /// and then a range pass over the same lists. `None` where the work grows with the radius
    /// (graphs), where the scan is the whole index (flat storage), and where a k-NN pass is
    /// much cheaper than a range pass (fast-scan inverted files, whose search skips most codes
    /// by integer bounds: one pass was 5 % slower there on imgsift100k).
    fn range_scan_size(&self, params: &SearchParams<'_>) -> Option<usize> {
        let _ = params;
        None
    }
    /// The vector stored under `id` (Faiss' `reconstruct`), as the index holds it: the f32
    /// vector for f32 storage (normalized, for cosine indexes), the codes' decoding for
    /// quantized storage (plus the list's centroid for residual codes), from the refine
    /// store when there is one (exact for `RFlat`), rotated back behind an OPQ rotation. An id
    /// not present is [`Error::UnknownId`]; GPU indexes return [`Error::Unsupported`].
    ///
    /// ```
    /// use vq::Metric;
    /// let mut index = vq::index_factory(2, "Flat", Metric::L2)?;
    /// index.add_with_ids(&[1.0, 2.0, 3.0, 4.0], &[10, 20])?;
    /// assert_eq!(index.reconstruct(20)?, vec![3.0, 4.0]);
    /// assert!(matches!(index.reconstruct(30), Err(vq::Error::UnknownId(30))));
    /// # Ok::<(), vq::Error>(())
    /// ```
    fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        Err(Error::Unsupported { spec: self.spec().to_string(), what: format!("reconstruct (id {id})") })
    }
    /// [`reconstruct`](Index::reconstruct) of every id of `ids`, row-major in their order
    /// (Faiss' `reconstruct_batch`); the first id not present is [`Error::UnknownId`].
    fn reconstruct_batch(&self, ids: &[u64]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(ids.len().saturating_mul(self.dim()));
        for &id in ids {
            out.extend(self.reconstruct(id)?);
        }
        Ok(out)
    }
    /// Removes the given ids (unknown ids are skipped); returns how many were removed. They are
    /// never returned by a search afterwards.
    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize>;
    /// Removes every vector (Faiss' `reset`), keeping the training, the parameters and the
    /// search defaults: the index answers as right after `train` (an empty index), and `add`
    /// numbers ids from 0 again. The vectors' memory is given back. An error only where a kind
    /// cannot (a GPU inverted file).
    fn reset(&mut self) -> Result<()>;
    /// Bytes held, by part.
    fn memory_usage(&self) -> MemoryUsage;
    /// What this index is: its factory string is `spec().to_string()`.
    fn spec(&self) -> IndexSpec;
    /// Writes the index's sections under `prefix` (what [`write_index`](crate::write_index)
    /// calls after the `index.kind` section).
    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()>;
    /// The fingerprint of what training produced (centroids, codebooks, ranges) and of the
    /// index's kind, dimension and metric: two indexes with equal fingerprints were made from
    /// the same trained, empty index, so their codes mean the same and their results can be
    /// merged. Adding and removing vectors never changes it. An index with nothing to learn
    /// (`Flat`, `HNSW32`) has the fingerprint of its factory string, dimension and metric; an
    /// untrained inverted file has 0. Stable across processes and machines (xxh3).
    fn fingerprint(&self) -> u64 {
        fingerprint_of(&self.spec(), self.dim(), self.metric(), &[])
    }
    /// Moves every vector of `other` into this index, each id plus `shift_ids` (Faiss'
    /// `merge_from(other, add_id)`): the last step of a sharded build, where every shard was
    /// filled from a copy of the same trained, empty index.
    ///
    /// Only inverted files merge (`IVF…`, with `RFlat` refine too): their lists simply
    /// concatenate. Other kinds return [`Error::NotMergeable`] (graphs cannot be joined
    /// without rebuilding: keep them as shards and combine their results with
    /// [`merge_topk`](crate::merge_topk)). Refused, with nothing moved: another kind or shape
    /// of index ([`Error::MergeMismatch`] or the inverted file's own `Incompatible`), one
    /// trained separately ([`Error::TrainedStateMismatch`]: its fingerprint differs), and a
    /// shifted id already present ([`Error::DuplicateId`]).
    ///
    /// ```
    /// use vq::Metric;
    /// let dim = 8;
    /// let data: Vec<f32> = (0..dim * 400).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect();
    /// let mut trained = vq::index_factory(dim, "IVF4,Flat", Metric::L2)?;
    /// trained.train(&data)?;
    /// let template = vq::write_index_to_bytes(trained.as_ref())?; // trained and empty
    /// let mut a = vq::read_index_from_bytes(&template)?;
    /// let mut b = vq::read_index_from_bytes(&template)?;
    /// a.add_with_ids(&data[..200 * dim], &(0..200).collect::<Vec<u64>>())?;
    /// b.add_with_ids(&data[200 * dim..], &(200..400).collect::<Vec<u64>>())?;
    /// assert_eq!(a.fingerprint(), b.fingerprint());
    /// a.merge_from(b, 0)?;
    /// assert_eq!(a.len(), 400);
    /// # Ok::<(), vq::Error>(())
    /// ```
    fn merge_from(&mut self, other: Box<dyn Index>, shift_ids: u64) -> Result<()> {
        let _ = (other, shift_ids);
        Err(Error::NotMergeable { spec: self.spec().to_string() })
    }
    /// Whether [`merge_from`](Index::merge_from) can take in an index of this kind (inverted
    /// files can), so a caller can refuse before giving up the other index.
    fn is_mergeable(&self) -> bool {
        false
    }
    /// Everything [`merge_from`](Index::merge_from) checks (the kind, the shape, the trained
    /// state, every shifted id absent here and representable), with nothing moved: `Ok` when
    /// the merge would succeed. `merge_from` takes `other` by value and drops it when it
    /// refuses; a caller that must keep `other` whole on a refusal (the Python wheel, a shard
    /// that should stay searchable) checks first.
    fn check_merge(&self, other: &dyn Index, shift_ids: u64) -> Result<()> {
        let _ = (other, shift_ids);
        Err(Error::NotMergeable { spec: self.spec().to_string() })
    }
    /// The default of `knob` that searches not giving it use, or `None` when no part of the
    /// index has that knob (`nprobe` of a graph) or it is unset (`reorder_k`).
    fn search_default(&self, knob: SearchDefault) -> Option<usize> {
        let _ = knob;
        None
    }
    /// Sets the default of `knob` for every later search that does not give it. A refine
    /// stage or a transform passes it to the index that uses it (`nprobe` of
    /// `OPQ16,IVF1024,PQ16,RFlat` reaches the inverted file: no Faiss-style
    /// `extract_index_ivf` needed), and it is written with the index.
    ///
    /// ```
    /// use vq::{Metric, SearchDefault};
    /// let mut index = vq::index_factory(8, "IVF4,PQ2,RFlat", Metric::L2)?;
    /// index.set_search_default(SearchDefault::Nprobe, 3)?;
    /// assert_eq!(index.search_default(SearchDefault::Nprobe), Some(3));
    /// assert!(vq::index_factory(8, "Flat", Metric::L2)?.set_search_default(SearchDefault::Nprobe, 3).is_err());
    /// # Ok::<(), vq::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Parameter`] when no part of the index has `knob`, or `value` is 0.
    fn set_search_default(&mut self, knob: SearchDefault, value: usize) -> Result<()> {
        check_search_default(knob, value)?;
        Err(no_search_default(self, knob))
    }

    /// The beam width an HNSW graph's later adds search with (Faiss' `hnsw.efConstruction`;
    /// an HNSW coarse quantizer's is not this), or `None` when the searched index is no graph.
    fn ef_construction(&self) -> Option<usize> {
        None
    }

    /// Sets the beam width of later adds to an HNSW graph, also through a refine stage or a
    /// transform; it is written with the index. Nodes already linked keep their links (as in
    /// Faiss, where `efConstruction` may change between adds).
    ///
    /// ```
    /// use vq::Metric;
    /// let mut index = vq::index_factory(8, "HNSW16,SQ8,RFlat", Metric::L2)?;
    /// index.set_ef_construction(40)?;
    /// assert_eq!(index.ef_construction(), Some(40));
    /// assert!(vq::index_factory(8, "IVF4,Flat", Metric::L2)?.set_ef_construction(40).is_err());
    /// # Ok::<(), vq::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Parameter`] when the searched index is no graph, or `value` is 0.
    fn set_ef_construction(&mut self, value: usize) -> Result<()> {
        at_least_one("ef_construction", value)?;
        Err(Error::Parameter { name: "ef_construction", what: format!("{} has no HNSW graph to build", self.spec()) })
    }
}

/// The fingerprint of an index of kind `spec` whose trained parts hash to `parts`.
pub(crate) fn fingerprint_of(spec: &IndexSpec, dim: usize, metric: Metric, parts: &[u64]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b"vq index fingerprint v1\0");
    h.update(spec.to_string().as_bytes());
    h.update(&[0]);
    h.update(&(dim as u64).to_le_bytes());
    h.update(metric.name().as_bytes());
    for p in parts {
        h.update(&p.to_le_bytes());
    }
    h.digest()
}

/// The hash of a quantizer's trained state: its sections as it writes them (parameters,
/// codebooks, ranges), by name, version and checksum.
pub(crate) fn quantizer_fingerprint<Q: Quantizer>(q: &Q) -> u64 {
    sections_fingerprint(&q.name(), |w| q.write_sections(w, "q"))
}

/// The hash of what `write` writes (a trained part's sections), by name, version and checksum,
/// after `name`. Writing to memory cannot fail for want of space; a part that refuses to write
/// hashes to the sections it wrote before.
pub(crate) fn sections_fingerprint(
    name: &str,
    write: impl FnOnce(&mut ContainerWriter) -> vq_quant::Result<()>,
) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(name.as_bytes());
    if let Ok(mut w) = ContainerWriter::in_memory() {
        let _ = write(&mut w);
        for s in w.sections() {
            h.update(s.name.as_bytes());
            h.update(&s.version.to_le_bytes());
            h.update(&s.checksum.to_le_bytes());
        }
    }
    h.digest()
}

/// [`downcast_for_merge`] of a borrowed index, for [`Index::check_merge`].
pub(crate) fn downcast_ref_for_merge<'a, T: Index>(this: &T, other: &'a dyn Index) -> Result<&'a T> {
    let any: &dyn Any = other;
    any.downcast_ref::<T>()
        .ok_or_else(|| Error::MergeMismatch { theirs: other.spec().to_string(), ours: this.spec().to_string() })
}

/// `other` as the concrete type of the index merging it, or [`Error::MergeMismatch`] naming
/// both.
pub(crate) fn downcast_for_merge<T: Index>(this: &T, other: Box<dyn Index>) -> Result<Box<T>> {
    let theirs = other.spec().to_string();
    let any: Box<dyn Any> = other;
    any.downcast::<T>().map_err(|_| Error::MergeMismatch { theirs, ours: this.spec().to_string() })
}

/// Validates a batch (whole rows of `dim` finite values) and normalizes it for cosine: the
/// one entry point every adapter sends vectors and queries through.
pub(crate) fn prepare<'a>(what: &'static str, data: &'a [f32], dim: usize, metric: Metric) -> Result<Cow<'a, [f32]>> {
    Ok(vq_distance::prepare_rows(what, data, dim, metric)?.into_cow())
}

/// `k = 0` is refused here, as the same error for every index.
pub(crate) fn check_k(params: &SearchParams<'_>) -> Result<()> {
    match params.k {
        0 => Err(vq_distance::Error::ZeroK.into()),
        _ => Ok(()),
    }
}

/// Checks `k` and the queries of a search; returns the prepared queries. For indexes that
/// score queries themselves (Flat, refine); graphs and code scans validate their own input.
pub(crate) fn prepare_search<'a>(
    queries: &'a [f32],
    params: &SearchParams<'_>,
    dim: usize,
    metric: Metric,
) -> Result<Cow<'a, [f32]>> {
    check_k(params)?;
    prepare("queries", queries, dim, metric)
}

/// Checks that `ids` has one id per row of `data` and no id twice.
pub(crate) fn check_ids(data: &[f32], dim: usize, ids: &[u64]) -> Result<()> {
    let rows = data.len() / dim.max(1);
    if ids.len() != rows {
        return Err(Error::IdCount { ids: ids.len(), vectors: rows });
    }
    vq_distance::check_caller_ids(ids)?;
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    match ids.iter().find(|&&id| !seen.insert(id)) {
        Some(&dup) => Err(Error::DuplicateId(dup)),
        None => Ok(()),
    }
}

/// Sorts per-query `(id, score)` rows best first with ties to the smaller id (the project's
/// determinism rule) and packs them into [`Neighbors`].
pub(crate) fn neighbors_from_rows(k: usize, metric: Metric, mut rows: Vec<Vec<(u64, f32)>>) -> Result<Neighbors> {
    for row in &mut rows {
        metric.sort_hits(row);
        row.truncate(k);
    }
    Ok(Neighbors::from_rows(k, metric, rows)?)
}
