//! HNSW through the [`Index`] trait: over f32 vectors (`HNSW32`, Faiss' `IndexHNSWFlat`) or
//! over a quantizer's codes (`HNSW32,SQ8`, Faiss' `IndexHNSWSQ`; `HNSW32,PQ16`).

use vq_distance::{Metric, Neighbors, RangeResult};
use vq_graph::{FlatStorage, Hnsw, HnswParams, QuantizedStorage, VectorStorage};
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::Quantizer;

use crate::error::{Error, Result};
use crate::index::{
    Index, MemoryUsage, SearchDefault, SearchParams, at_least_one, check_ids, check_k, check_search_default,
    fingerprint_of, no_search_default, prepare, quantizer_fingerprint,
};
use crate::spec::{BaseSpec, CodecSpec, IndexSpec, NamedByCodec, StorageSpec, check_codec};

/// The graph's parts of the memory report.
fn graph_memory<S: VectorStorage>(h: &Hnsw<S>, trained: usize) -> MemoryUsage {
    let m = h.memory_usage();
    MemoryUsage {
        vectors: m.vectors - trained,
        trained,
        links: m.links,
        ids: m.ids,
        scratch: m.scratch,
        ..Default::default()
    }
}

fn graph_search<S: VectorStorage>(h: &Hnsw<S>, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
    // The graph validates (and normalizes, for cosine) its queries itself.
    check_k(params)?;
    let Some(filter) = params.filter else {
        return Ok(h.search_batch(queries, params.k, params.ef)?);
    };
    let rows = h.search_filtered_batch(queries, params.k, params.ef, filter)?;
    Ok(Neighbors::from_rows(params.k, h.metric(), rows)?)
}

/// The graph's own range search: the beam's in-radius nodes and every node linked to them
/// within the radius ([`Hnsw::range_search`]); `params.k` plays no part.
fn graph_range<S: VectorStorage>(
    h: &Hnsw<S>,
    queries: &[f32],
    radius: f32,
    params: &SearchParams<'_>,
) -> Result<RangeResult> {
    Ok(h.range_search_batch(queries, radius, params.ef, params.filter)?)
}

/// Inserts (the graph validates, and for cosine normalizes, the vectors itself); needs only
/// `&Hnsw`: searches may run meanwhile.
fn graph_insert<S: VectorStorage>(h: &Hnsw<S>, data: &[f32], ids: Option<&[u64]>) -> Result<()> {
    match ids {
        Some(ids) => {
            check_ids(data, h.dim(), ids)?;
            h.add_with_ids(data, ids)?;
        }
        None => {
            h.add(data)?;
        }
    }
    Ok(())
}

/// Inserts leave layer-0 lists in the open form (m0 ids each); packing them to their real
/// degree costs one pass over the lists, so it is done once an eighth of them are open:
/// after every bulk load, and amortized over small adds.
/// Whether a graph's open lists are due to be packed: once an eighth of them are open.
fn pack_due<S: VectorStorage>(h: &Hnsw<S>) -> bool {
    h.open_lists() * 8 >= h.len()
}

fn graph_pack<S: VectorStorage>(h: &mut Hnsw<S>) {
    if pack_due(h) {
        h.shrink_to_fit();
    }
}

fn graph_prepare_pack<S: VectorStorage>(h: &Hnsw<S>) -> bool {
    let due = pack_due(h);
    if due {
        h.prepare_shrink();
    }
    due
}

fn graph_add<S: VectorStorage>(h: &mut Hnsw<S>, data: &[f32], ids: Option<&[u64]>) -> Result<()> {
    graph_insert(h, data, ids)?;
    graph_pack(h);
    Ok(())
}

fn graph_remove<S: VectorStorage>(h: &Hnsw<S>, ids: &[u64]) -> usize {
    let before = h.len();
    for &id in ids {
        // Unknown ids are skipped, as documented on `Index::remove_ids`.
        let _ = h.mark_deleted(id);
    }
    before - h.len()
}

/// HNSW over full-precision vectors.
pub struct HnswFlatIndex {
    graph: Hnsw<FlatStorage>,
}

impl HnswFlatIndex {
    /// An empty graph.
    pub fn new(dim: usize, metric: Metric, params: HnswParams) -> Result<Self> {
        Ok(HnswFlatIndex { graph: Hnsw::new(dim, metric, params)? })
    }

    /// The graph.
    pub fn graph(&self) -> &Hnsw<FlatStorage> {
        &self.graph
    }

    pub(crate) fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        Ok(HnswFlatIndex { graph: Hnsw::read_from(r, prefix)? })
    }
}

impl Index for HnswFlatIndex {
    fn dim(&self) -> usize {
        self.graph.dim()
    }

    fn metric(&self) -> Metric {
        self.graph.metric()
    }

    fn len(&self) -> usize {
        self.graph.len()
    }
    fn next_id(&self) -> u64 {
        self.graph.next_id()
    }

    fn is_trained(&self) -> bool {
        true
    }

    fn train(&mut self, data: &[f32]) -> Result<()> {
        prepare("training data", data, self.dim(), self.metric()).map(drop)
    }

    fn reserve(&mut self, additional: usize) {
        self.graph.reserve(additional);
    }

    fn add(&mut self, data: &[f32]) -> Result<()> {
        graph_add(&mut self.graph, data, None)
    }

    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        graph_add(&mut self.graph, data, Some(ids))
    }

    fn add_shared(&self, data: &[f32], ids: Option<&[u64]>) -> Option<Result<()>> {
        Some(graph_insert(&self.graph, data, ids))
    }

    fn adds_shared(&self) -> bool {
        true
    }

    fn pack(&mut self) {
        graph_pack(&mut self.graph);
    }

    fn prepare_pack(&self) -> bool {
        graph_prepare_pack(&self.graph)
    }

    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
        graph_search(&self.graph, queries, params)
    }

    fn range_search_with(&self, queries: &[f32], radius: f32, params: &SearchParams<'_>) -> Result<RangeResult> {
        graph_range(&self.graph, queries, radius, params)
    }

    fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        Ok(self.graph.reconstruct(id)?)
    }

    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        Ok(graph_remove(&self.graph, ids))
    }

    fn reset(&mut self) -> Result<()> {
        self.graph.reset();
        Ok(())
    }

    fn memory_usage(&self) -> MemoryUsage {
        graph_memory(&self.graph, 0)
    }

    fn spec(&self) -> IndexSpec {
        IndexSpec::new(BaseSpec::Hnsw { m: self.graph.params().m, storage: StorageSpec::Flat })
    }

    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        Ok(self.graph.write_to(w, prefix)?)
    }

    fn search_default(&self, knob: SearchDefault) -> Option<usize> {
        (knob == SearchDefault::Ef).then(|| self.graph.params().ef)
    }

    fn set_search_default(&mut self, knob: SearchDefault, value: usize) -> Result<()> {
        let value = check_search_default(knob, value)?;
        match knob {
            SearchDefault::Ef => {
                self.graph.set_ef(value);
                Ok(())
            }
            _ => Err(no_search_default(self, knob)),
        }
    }

    fn ef_construction(&self) -> Option<usize> {
        Some(self.graph.params().ef_construction)
    }

    fn set_ef_construction(&mut self, value: usize) -> Result<()> {
        self.graph.set_ef_construction(at_least_one("ef_construction", value)?);
        Ok(())
    }
}

/// The two lives of a graph over codes: the quantizer waits for `train`, then the graph is
/// built over its codes.
enum Stage<Q: Quantizer + Clone> {
    Untrained(Q),
    // Boxed: the graph is large beside a quantizer, and an index holds one stage for life.
    Trained(Box<Hnsw<QuantizedStorage<Q>>>),
}

/// HNSW over the codes of a quantizer.
pub struct HnswCodesIndex<Q: Quantizer + Clone> {
    codec: CodecSpec,
    params: HnswParams,
    stage: Stage<Q>,
}

impl<Q: Quantizer + Clone + 'static> HnswCodesIndex<Q> {
    /// An empty graph over `quantizer`'s codes; a graph is made when the quantizer is trained
    /// (right away if it is already).
    pub fn new(codec: CodecSpec, quantizer: Q, params: HnswParams) -> Result<Self> {
        let stage = if quantizer.is_trained() {
            Stage::Trained(Box::new(Hnsw::with_storage(QuantizedStorage::new(quantizer)?, params.clone())?))
        } else {
            // Checked now, so a bad parameter is not first reported by train().
            Hnsw::new(quantizer.dim(), quantizer.metric(), params.clone())?;
            Stage::Untrained(quantizer)
        };
        Ok(HnswCodesIndex { codec, params, stage })
    }

    /// The graph, once trained.
    pub fn graph(&self) -> Option<&Hnsw<QuantizedStorage<Q>>> {
        match &self.stage {
            Stage::Trained(h) => Some(h),
            Stage::Untrained(_) => None,
        }
    }

    fn quantizer(&self) -> &Q {
        match &self.stage {
            Stage::Untrained(q) => q,
            Stage::Trained(h) => h.storage().quantizer(),
        }
    }

    fn trained(&self) -> Result<&Hnsw<QuantizedStorage<Q>>> {
        self.graph().ok_or_else(|| Error::NotTrained { spec: self.spec().to_string() })
    }

    fn trained_mut(&mut self) -> Result<&mut Hnsw<QuantizedStorage<Q>>> {
        let spec = self.spec();
        match &mut self.stage {
            Stage::Trained(h) => Ok(h),
            Stage::Untrained(_) => Err(Error::NotTrained { spec: spec.to_string() }),
        }
    }

    /// Reads the index `write_sections` wrote, whose kind section names `codec`: the
    /// quantizer must be the one it names.
    pub(crate) fn read_sections(r: &ContainerReader, prefix: &str, codec: CodecSpec) -> Result<Self>
    where
        Q: NamedByCodec,
    {
        if r.contains(&format!("{prefix}.untrained.params")) {
            let params: HnswParams = r.json(&format!("{prefix}.untrained.params"))?;
            let quantizer = Q::read_sections(r, &format!("{prefix}.untrained.quantizer"))?;
            check_codec(&quantizer, codec)?;
            return HnswCodesIndex::new(codec, quantizer, params);
        }
        let graph: Hnsw<QuantizedStorage<Q>> = Hnsw::read_from(r, prefix)?;
        check_codec(graph.storage().quantizer(), codec)?;
        Ok(HnswCodesIndex { codec, params: graph.params().clone(), stage: Stage::Trained(Box::new(graph)) })
    }
}

impl<Q: Quantizer + Clone + 'static> Index for HnswCodesIndex<Q> {
    fn dim(&self) -> usize {
        self.quantizer().dim()
    }

    fn metric(&self) -> Metric {
        self.quantizer().metric()
    }

    fn len(&self) -> usize {
        self.graph().map_or(0, Hnsw::len)
    }
    fn next_id(&self) -> u64 {
        self.graph().map_or(0, Hnsw::next_id)
    }

    fn is_trained(&self) -> bool {
        matches!(self.stage, Stage::Trained(_))
    }

    fn train(&mut self, data: &[f32]) -> Result<()> {
        if !self.is_empty() {
            return Err(Error::Parameter {
                name: "train",
                what: "the graph holds vectors; train before adding".into(),
            });
        }
        let mut quantizer = self.quantizer().clone();
        quantizer.train(data)?;
        self.stage =
            Stage::Trained(Box::new(Hnsw::with_storage(QuantizedStorage::new(quantizer)?, self.params.clone())?));
        Ok(())
    }

    fn reserve(&mut self, additional: usize) {
        if let Some(h) = self.graph() {
            h.reserve(additional);
        }
    }

    fn add(&mut self, data: &[f32]) -> Result<()> {
        graph_add(self.trained_mut()?, data, None)
    }

    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        graph_add(self.trained_mut()?, data, Some(ids))
    }

    fn add_shared(&self, data: &[f32], ids: Option<&[u64]>) -> Option<Result<()>> {
        Some(self.trained().and_then(|h| graph_insert(h, data, ids)))
    }

    fn adds_shared(&self) -> bool {
        true
    }

    fn pack(&mut self) {
        if let Stage::Trained(h) = &mut self.stage {
            graph_pack(h);
        }
    }

    fn prepare_pack(&self) -> bool {
        match &self.stage {
            Stage::Trained(h) => graph_prepare_pack(h),
            _ => false,
        }
    }

    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
        graph_search(self.trained()?, queries, params)
    }

    fn range_search_with(&self, queries: &[f32], radius: f32, params: &SearchParams<'_>) -> Result<RangeResult> {
        graph_range(self.trained()?, queries, radius, params)
    }

    /// An untrained graph holds nothing: every id is unknown.
    fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        Ok(self.graph().ok_or(Error::UnknownId(id))?.reconstruct(id)?)
    }

    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        Ok(self.graph().map_or(0, |h| graph_remove(h, ids)))
    }

    fn reset(&mut self) -> Result<()> {
        if let Stage::Trained(h) = &mut self.stage {
            h.reset();
        }
        Ok(())
    }

    fn memory_usage(&self) -> MemoryUsage {
        let trained = self.quantizer().memory_bytes();
        match &self.stage {
            Stage::Trained(h) => graph_memory(h, trained),
            Stage::Untrained(_) => MemoryUsage { trained, ..Default::default() },
        }
    }

    fn spec(&self) -> IndexSpec {
        IndexSpec::new(BaseSpec::Hnsw { m: self.params.m, storage: StorageSpec::Codec(self.codec) })
    }

    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        match &self.stage {
            Stage::Trained(h) => Ok(h.write_to(w, prefix)?),
            Stage::Untrained(q) => {
                w.add_json(&format!("{prefix}.untrained.params"), 1, &self.params)?;
                Ok(q.write_sections(w, &format!("{prefix}.untrained.quantizer"))?)
            }
        }
    }

    fn fingerprint(&self) -> u64 {
        fingerprint_of(&self.spec(), self.dim(), self.metric(), &[quantizer_fingerprint(self.quantizer())])
    }

    fn search_default(&self, knob: SearchDefault) -> Option<usize> {
        (knob == SearchDefault::Ef).then(|| self.graph().map_or(self.params.ef, |h| h.params().ef))
    }

    fn set_search_default(&mut self, knob: SearchDefault, value: usize) -> Result<()> {
        let value = check_search_default(knob, value)?;
        if knob != SearchDefault::Ef {
            return Err(no_search_default(self, knob));
        }
        // Kept in both places: an untrained index makes its graph from `params` when trained.
        self.params.ef = value;
        if let Stage::Trained(h) = &mut self.stage {
            h.set_ef(value);
        }
        Ok(())
    }

    fn ef_construction(&self) -> Option<usize> {
        Some(self.graph().map_or(self.params.ef_construction, |h| h.params().ef_construction))
    }

    fn set_ef_construction(&mut self, value: usize) -> Result<()> {
        let value = at_least_one("ef_construction", value)?;
        // Kept in both places, as `ef`.
        self.params.ef_construction = value;
        if let Stage::Trained(h) = &mut self.stage {
            h.set_ef_construction(value);
        }
        Ok(())
    }
}
