//! Exhaustive scans over quantized codes (`SQ8`, `PQ16`, `OPQ16,PQ16`, `PQ32x4fs`, …): Faiss'
//! `IndexScalarQuantizer`, `IndexPQ` and `IndexPQFastScan`, with ids.

use vq_distance::{Metric, Neighbors, RangeResult};
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::{CodeStore, FlatCodes, Quantizer};

use crate::error::{Error, Result};
use crate::ids::IdMap;
use crate::index::{
    Index, MemoryUsage, SearchParams, check_ids, check_k, fingerprint_of, neighbors_from_rows, quantizer_fingerprint,
};
use crate::spec::{BaseSpec, CodecSpec, IndexSpec, NamedByCodec, check_codec};

/// A quantizer, the codes of every vector added (in a [`CodeStore`]: the plain buffer by
/// default, or the fast-scan layout of 4-bit PQ), and their ids.
#[derive(Debug, Clone)]
pub struct CodesIndex<Q, S = FlatCodes<Q>> {
    codec: CodecSpec,
    codes: S,
    ids: IdMap,
    _quantizer: std::marker::PhantomData<fn() -> Q>,
}

impl<Q: Quantizer + Clone + 'static> CodesIndex<Q> {
    /// An empty index over `quantizer` (trained or not); `codec` is the spec it was made from.
    pub fn new(codec: CodecSpec, quantizer: Q) -> Self {
        Self::with_store(codec, FlatCodes::new(quantizer))
    }
}

impl<Q: Quantizer + Clone + 'static, S: CodeStore<Quantizer = Q> + 'static> CodesIndex<Q, S> {
    /// An index over `store`, which must be empty; `codec` is the spec it was made from.
    pub fn with_store(codec: CodecSpec, store: S) -> Self {
        debug_assert!(store.is_empty());
        CodesIndex { codec, codes: store, ids: IdMap::default(), _quantizer: std::marker::PhantomData }
    }

    /// The quantizer.
    pub fn quantizer(&self) -> &Q {
        self.codes.quantizer()
    }

    fn not_trained(&self) -> Error {
        Error::NotTrained { spec: self.spec().to_string() }
    }

    /// Reads the index `write_sections` wrote, whose kind section names `codec`: the codes'
    /// quantizer must be the one it names.
    pub(crate) fn read_sections(r: &ContainerReader, prefix: &str, codec: CodecSpec) -> Result<Self>
    where
        Q: NamedByCodec,
    {
        let codes = S::read_sections(r, &format!("{prefix}.codes"))?;
        check_codec(codes.quantizer(), codec)?;
        let ids = IdMap::read(r, prefix, codes.len())?;
        Ok(CodesIndex { codec, codes, ids, _quantizer: std::marker::PhantomData })
    }
}

impl<Q: Quantizer + Clone + 'static, S: CodeStore<Quantizer = Q> + 'static> Index for CodesIndex<Q, S> {
    fn dim(&self) -> usize {
        self.quantizer().dim()
    }

    fn metric(&self) -> Metric {
        self.quantizer().metric()
    }

    fn len(&self) -> usize {
        self.codes.len()
    }
    fn next_id(&self) -> u64 {
        self.ids.next_id()
    }

    fn is_trained(&self) -> bool {
        self.quantizer().is_trained()
    }

    fn train(&mut self, data: &[f32]) -> Result<()> {
        if !self.is_empty() {
            return Err(Error::Parameter {
                name: "train",
                what: "the index holds vectors; train before adding".into(),
            });
        }
        Ok(self.codes.train(data)?)
    }

    fn reserve(&mut self, additional: usize) {
        self.codes.reserve(additional);
    }

    fn add(&mut self, data: &[f32]) -> Result<()> {
        let ids = self.ids.next_ids(data.len() / self.dim())?;
        self.add_with_ids(data, &ids)
    }

    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        // The quantizer validates (and normalizes, for cosine) what it encodes.
        check_ids(data, self.dim(), ids)?;
        self.ids.check_absent(ids)?;
        self.codes.add(data)?;
        self.ids.push(ids);
        Ok(())
    }

    fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        let row = self.ids.row(id).ok_or(Error::UnknownId(id))?;
        let mut out = vec![0f32; self.dim()];
        self.codes.decode_row(row, &mut out)?;
        Ok(out)
    }

    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        // The scan validates (and normalizes, for cosine) its queries itself.
        check_k(params)?;
        let keep = params.filter.map(|f| move |row: usize| f.accepts(self.ids.id(row)));
        let keep_ref = keep.as_ref().map(|k| k as &(dyn Fn(usize) -> bool + Sync));
        let hits = self.codes.search_filtered(queries, params.k, keep_ref)?;
        let rows = hits
            .iter()
            .map(|(rows, scores)| rows.iter().map(|&r| self.ids.id(r as usize)).zip(scores.iter().copied()).collect())
            .collect();
        neighbors_from_rows(params.k, self.metric(), rows)
    }

    /// One scan of the codes: every row within the radius by the scores `search` ranks by.
    fn range_search_with(&self, queries: &[f32], radius: f32, params: &SearchParams<'_>) -> Result<RangeResult> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        let keep = params.filter.map(|f| move |row: usize| f.accepts(self.ids.id(row)));
        let keep_ref = keep.as_ref().map(|k| k as &(dyn Fn(usize) -> bool + Sync));
        let by_row = self.codes.range_filtered(queries, radius, keep_ref)?;
        self.ids.range_by_id(by_row, self.metric())
    }

    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        let Some(keep) = self.ids.keep_mask(ids) else { return Ok(0) };
        let removed = self.codes.retain(|row| keep[row]);
        self.ids.retain(&keep);
        Ok(removed)
    }

    fn reset(&mut self) -> Result<()> {
        self.codes = S::with_quantizer(self.quantizer().clone())?;
        self.ids = IdMap::default();
        Ok(())
    }

    fn memory_usage(&self) -> MemoryUsage {
        let trained = self.quantizer().memory_bytes();
        MemoryUsage {
            vectors: self.codes.memory_usage() - trained,
            trained,
            ids: self.ids.memory_bytes(),
            ..Default::default()
        }
    }

    fn spec(&self) -> IndexSpec {
        IndexSpec::new(BaseSpec::Codes(self.codec))
    }

    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.codes.write_sections(w, &format!("{prefix}.codes"))?;
        self.ids.write(w, prefix)
    }

    fn fingerprint(&self) -> u64 {
        fingerprint_of(&self.spec(), self.dim(), self.metric(), &[quantizer_fingerprint(self.quantizer())])
    }
}
