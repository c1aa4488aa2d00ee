//! Inverted files through the [`Index`] trait: `IVF1024,Flat`, `IVF1024,SQ8`, `IVF1024,PQ16`
//! (Faiss' `IndexIVFFlat`, `IndexIVFScalarQuantizer`, `IndexIVFPQ`), and `IVF1024,PQ64x4fs` (Faiss'
//! `IndexIVFPQFastScan`, the base of the ScaNN-style index), over `vq-ivf`.

use vq_distance::{Metric, Neighbors, RangeResult};
use vq_io::{ContainerReader, ContainerWriter};
use vq_ivf::{FlatCodec, IvfCodec, IvfParams, IvfSearch, PqCodec, RaBitQCodec, SqCodec};

use crate::error::{Error, Result};
use crate::index::{
    Index, MemoryUsage, PreparedAdd, SearchDefault, SearchParams, check_ids, check_search_default, downcast_for_merge,
    downcast_ref_for_merge, no_search_default,
};
use crate::spec::{BaseSpec, CodecSpec, IndexSpec, StorageSpec};

/// A list codec's factory-string component.
pub trait IvfStorage: IvfCodec {
    /// `Flat`, `SQ8`, `PQ16`, …
    fn storage(&self) -> StorageSpec;
}

impl IvfStorage for FlatCodec {
    fn storage(&self) -> StorageSpec {
        StorageSpec::Flat
    }
}

impl IvfStorage for SqCodec {
    fn storage(&self) -> StorageSpec {
        StorageSpec::Codec(CodecSpec::Sq(self.quantizer().sq_type()))
    }
}

impl IvfStorage for PqCodec {
    fn storage(&self) -> StorageSpec {
        let q = self.quantizer();
        StorageSpec::Codec(CodecSpec::Pq { m: q.m(), nbits: q.nbits() })
    }
}

impl IvfStorage for RaBitQCodec {
    fn storage(&self) -> StorageSpec {
        StorageSpec::Codec(CodecSpec::RaBitQ { bits: self.quantizer().bits() })
    }
}

/// vq-ivf's errors as the umbrella reports them: the errors every index shares (not trained,
/// duplicate ids, id count, input checks, quantizers) as the same `vq::Error` variants as
/// elsewhere, the rest as [`Error::Ivf`].
pub(crate) fn ivf_error(e: vq_ivf::Error, spec: impl FnOnce() -> String) -> Error {
    match e {
        vq_ivf::Error::NotTrained { .. } => Error::NotTrained { spec: spec() },
        vq_ivf::Error::DuplicateId(id) => Error::DuplicateId(id),
        vq_ivf::Error::UnknownId(id) => Error::UnknownId(id),
        vq_ivf::Error::IdCount { ids, vectors } => Error::IdCount { ids, vectors },
        vq_ivf::Error::Input(e) => Error::Distance(e),
        vq_ivf::Error::Quant(e) => e.into(),
        vq_ivf::Error::Cluster(e) => e.into(),
        vq_ivf::Error::Io(e) => Error::Io(e),
        vq_ivf::Error::TrainedStateMismatch { ours, theirs } => Error::TrainedStateMismatch { ours, theirs },
        other => Error::Ivf(other),
    }
}

/// The knobs of an inverted file's search: `ef` is the beam of an HNSW coarse quantizer.
fn ivf_search<'a>(params: &SearchParams<'a>) -> IvfSearch<'a> {
    IvfSearch { nprobe: params.nprobe, filter: params.filter, coarse_ef: params.ef }
}

/// The adapters' checks before an add: trained, and one id per row where ids are given (the
/// index validates, and for cosine normalizes, the vectors itself).
fn check_add(index: &dyn Index, data: &[f32], ids: Option<&[u64]>) -> Result<()> {
    if !index.is_trained() {
        return Err(Error::NotTrained { spec: index.spec().to_string() });
    }
    match ids {
        Some(ids) => check_ids(data, index.dim(), ids),
        None => Ok(()),
    }
}

/// An inverted file over codec `C` ([`FlatCodec`], [`SqCodec`], [`PqCodec`]). `nprobe` comes
/// from [`SearchParams::nprobe`] or the index's default (1, as Faiss; see
/// [`IndexParams::nprobe`](crate::IndexParams::nprobe)).
#[derive(Debug, Clone)]
pub struct IvfIndex<C> {
    inner: vq_ivf::IvfIndex<C>,
}

impl<C: IvfStorage + 'static> IvfIndex<C> {
    /// An empty, untrained index.
    pub fn new(dim: usize, metric: Metric, params: IvfParams, codec: C) -> Result<Self> {
        let inner = vq_ivf::IvfIndex::new(dim, metric, params, codec).map_err(|e| ivf_error(e, String::new))?;
        Ok(IvfIndex { inner })
    }

    /// The adapter over a vq-ivf index.
    #[cfg(feature = "gpu")]
    pub(crate) fn from_inner(inner: vq_ivf::IvfIndex<C>) -> Self {
        IvfIndex { inner }
    }

    /// The vq-ivf index: `merge_from`, `reconstruct`, `list_stats`, `fingerprint`, ….
    pub fn inner(&self) -> &vq_ivf::IvfIndex<C> {
        &self.inner
    }

    /// The vq-ivf index, mutable.
    pub fn inner_mut(&mut self) -> &mut vq_ivf::IvfIndex<C> {
        &mut self.inner
    }

    fn err(&self, e: vq_ivf::Error) -> Error {
        ivf_error(e, || self.spec().to_string())
    }

    pub(crate) fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        let inner = vq_ivf::IvfIndex::read_sections(r, prefix).map_err(|e| ivf_error(e, String::new))?;
        Ok(IvfIndex { inner })
    }
}

impl<C: IvfStorage + 'static> Index for IvfIndex<C> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn metric(&self) -> Metric {
        self.inner.metric()
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
    fn next_id(&self) -> u64 {
        self.inner.next_id()
    }

    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }

    fn train(&mut self, data: &[f32]) -> Result<()> {
        self.inner.train(data).map_err(|e| self.err(e))
    }

    fn add(&mut self, data: &[f32]) -> Result<()> {
        self.inner.add(data).map_err(|e| self.err(e))
    }

    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        check_add(self, data, Some(ids))?;
        self.inner.add_with_ids(data, ids).map_err(|e| self.err(e))
    }

    /// The lists and codes of `data` (vq-ivf's `encode_add`).
    fn prepare_add(&self, data: &[f32]) -> Option<Result<PreparedAdd>> {
        Some(self.inner.encode_add(data).map(PreparedAdd::new).map_err(|e| self.err(e)))
    }

    /// Another kind's work, or none, is redone by `add_encoded`.
    fn add_prepared(&mut self, prepared: PreparedAdd, data: &[f32], ids: Option<&[u64]>) -> Result<()> {
        check_add(self, data, ids)?;
        self.inner.add_encoded(prepared.take(), data, ids).map_err(|e| self.err(e))
    }

    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
        // The index checks k, nprobe and the queries (normalizing them, for cosine).
        self.inner.search(queries, params.k, &ivf_search(params)).map_err(|e| self.err(e))
    }

    fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        self.inner.reconstruct(id).map_err(|e| self.err(e))
    }

    /// One scan of the lists for all of `ids`.
    fn reconstruct_batch(&self, ids: &[u64]) -> Result<Vec<f32>> {
        self.inner.reconstruct_batch(ids).map_err(|e| self.err(e))
    }

    /// The probed lists' entries within the radius ([`vq_ivf::IvfIndex::range_search`]).
    fn range_search_with(&self, queries: &[f32], radius: f32, params: &SearchParams<'_>) -> Result<RangeResult> {
        self.inner.range_search(queries, radius, &ivf_search(params)).map_err(|e| self.err(e))
    }

    fn range_rows(&self, queries: &[f32], radii: &[f32], params: &SearchParams<'_>) -> Result<Vec<Vec<(u64, f32)>>> {
        self.inner.range_rows(queries, radii, &ivf_search(params)).map_err(|e| self.err(e))
    }

    fn range_scan_size(&self, params: &SearchParams<'_>) -> Option<usize> {
        // About: the lists' mean size times the lists probed.
        let p = self.inner.params();
        let nprobe = params.nprobe.unwrap_or(p.nprobe).clamp(1, p.nlist.max(1));
        Some(self.len().div_ceil(p.nlist.max(1)).saturating_mul(nprobe))
    }

    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        Ok(self.inner.remove_ids(ids))
    }

    fn reset(&mut self) -> Result<()> {
        self.inner.reset();
        Ok(())
    }

    fn memory_usage(&self) -> MemoryUsage {
        let m = self.inner.memory_usage();
        MemoryUsage { vectors: m.codes, ids: m.ids, trained: m.trained, mapped: m.mapped, ..Default::default() }
    }

    fn spec(&self) -> IndexSpec {
        let coarse_hnsw = match self.inner.params().coarse {
            vq_ivf::CoarseKind::Flat => None,
            vq_ivf::CoarseKind::Hnsw { m } => Some(m),
        };
        IndexSpec::new(BaseSpec::Ivf {
            nlist: self.inner.params().nlist,
            coarse_hnsw,
            storage: self.inner.codec().storage(),
        })
    }

    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.inner.write_sections(w, prefix).map_err(|e| self.err(e))
    }

    fn fingerprint(&self) -> u64 {
        self.inner.fingerprint()
    }

    fn merge_from(&mut self, other: Box<dyn Index>, shift_ids: u64) -> Result<()> {
        let other = downcast_for_merge(self, other)?;
        self.inner.merge_from(other.inner, shift_ids).map_err(|e| self.err(e))
    }

    fn check_merge(&self, other: &dyn Index, shift_ids: u64) -> Result<()> {
        let other = downcast_ref_for_merge(self, other)?;
        self.inner.check_merge(&other.inner, shift_ids).map(drop).map_err(|e| self.err(e))
    }

    fn is_mergeable(&self) -> bool {
        true
    }

    fn search_default(&self, knob: SearchDefault) -> Option<usize> {
        (knob == SearchDefault::Nprobe).then(|| self.inner.params().nprobe)
    }

    fn set_search_default(&mut self, knob: SearchDefault, value: usize) -> Result<()> {
        let value = check_search_default(knob, value)?;
        match knob {
            SearchDefault::Nprobe => self.inner.set_nprobe(value).map_err(|e| self.err(e)),
            _ => Err(no_search_default(self, knob)),
        }
    }
}

impl From<vq_ivf::Error> for Error {
    fn from(e: vq_ivf::Error) -> Self {
        ivf_error(e, || "IVF".into())
    }
}

/// An inverted file over 4-bit PQ codes in the fast-scan layout (`IVF1024,PQ64x4fs`, Faiss'
/// `IndexIVFPQFastScan`); with refine above it (`IVF1024,PQ64x4fs,RFlat`) the ScaNN-style
/// index of Milvus' `SCANN` (`with_raw_data`, `reorder_k`). Or over RaBitQ codes whose bits are
/// packed the same way (`IVF1024,RaBitQfs`, Faiss' `IndexIVFRaBitQFastScan`).
#[derive(Debug, Clone)]
pub struct IvfFastScanIndex {
    inner: vq_ivf::IvfFastScan,
}

impl IvfFastScanIndex {
    /// An empty, untrained index of `nlist` lists (in `params`) over `m` 4-bit sub-quantizers,
    /// coding residuals when `by_residual`.
    pub fn new(dim: usize, metric: Metric, params: IvfParams, m: usize, by_residual: bool) -> Result<Self> {
        Self::with_pq(dim, metric, params, vq_quant::PqParams::new(m, 4), by_residual)
    }

    /// [`new`](IvfFastScanIndex::new) with the quantizer's parameters (`nbits` 4; e.g. a
    /// score-aware `anisotropic_threshold`).
    pub fn with_pq(
        dim: usize,
        metric: Metric,
        params: IvfParams,
        pq: vq_quant::PqParams,
        by_residual: bool,
    ) -> Result<Self> {
        let inner =
            vq_ivf::IvfFastScan::new(dim, metric, params, pq, by_residual).map_err(|e| ivf_error(e, String::new))?;
        Ok(IvfFastScanIndex { inner })
    }

    /// An empty, untrained index of `nlist` lists (in `params`) of RaBitQ residual codes in the
    /// fast-scan layout (`IVF{nlist},RaBitQfs`).
    pub fn with_rabitq(dim: usize, metric: Metric, params: IvfParams) -> Result<Self> {
        Self::with_rabitq_bits(dim, metric, params, 1)
    }

    /// [`with_rabitq`](IvfFastScanIndex::with_rabitq) with `bits` bits per dimension
    /// (`IVF{nlist},RaBitQfs{bits}`, 1 to 9): the sign bits bound each code, the codes they pass
    /// are scored over every plane.
    pub fn with_rabitq_bits(dim: usize, metric: Metric, params: IvfParams, bits: u8) -> Result<Self> {
        let inner =
            vq_ivf::IvfFastScan::with_rabitq_bits(dim, metric, params, bits).map_err(|e| ivf_error(e, String::new))?;
        Ok(IvfFastScanIndex { inner })
    }

    /// The vq-ivf index: `merge_from`, `reconstruct`, `list_stats`, `fingerprint`, ….
    pub fn inner(&self) -> &vq_ivf::IvfFastScan {
        &self.inner
    }

    /// The vq-ivf index, mutable.
    pub fn inner_mut(&mut self) -> &mut vq_ivf::IvfFastScan {
        &mut self.inner
    }

    fn err(&self, e: vq_ivf::Error) -> Error {
        ivf_error(e, || self.spec().to_string())
    }

    pub(crate) fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        let inner = vq_ivf::IvfFastScan::read_sections(r, prefix).map_err(|e| ivf_error(e, String::new))?;
        Ok(IvfFastScanIndex { inner })
    }
}

impl Index for IvfFastScanIndex {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn metric(&self) -> Metric {
        self.inner.metric()
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
    fn next_id(&self) -> u64 {
        self.inner.next_id()
    }

    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }

    fn train(&mut self, data: &[f32]) -> Result<()> {
        self.inner.train(data).map_err(|e| self.err(e))
    }

    fn add(&mut self, data: &[f32]) -> Result<()> {
        self.inner.add(data).map_err(|e| self.err(e))
    }

    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        check_add(self, data, Some(ids))?;
        self.inner.add_with_ids(data, ids).map_err(|e| self.err(e))
    }

    /// The lists and codes of `data` (vq-ivf's `encode_add`).
    fn prepare_add(&self, data: &[f32]) -> Option<Result<PreparedAdd>> {
        Some(self.inner.encode_add(data).map(PreparedAdd::new).map_err(|e| self.err(e)))
    }

    /// Another kind's work, or none, is redone by `add_encoded`.
    fn add_prepared(&mut self, prepared: PreparedAdd, data: &[f32], ids: Option<&[u64]>) -> Result<()> {
        check_add(self, data, ids)?;
        self.inner.add_encoded(prepared.take(), data, ids).map_err(|e| self.err(e))
    }

    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
        // The index checks k, nprobe and the queries (normalizing them, for cosine).
        self.inner.search(queries, params.k, &ivf_search(params)).map_err(|e| self.err(e))
    }

    /// The probed lists' entries whose fast-scan scores are within the radius
    /// ([`vq_ivf::IvfFastScan::range_search`]).
    fn range_search_with(&self, queries: &[f32], radius: f32, params: &SearchParams<'_>) -> Result<RangeResult> {
        self.inner.range_search(queries, radius, &ivf_search(params)).map_err(|e| self.err(e))
    }

    fn range_rows(&self, queries: &[f32], radii: &[f32], params: &SearchParams<'_>) -> Result<Vec<Vec<(u64, f32)>>> {
        self.inner.range_rows(queries, radii, &ivf_search(params)).map_err(|e| self.err(e))
    }

    fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        self.inner.reconstruct(id).map_err(|e| self.err(e))
    }

    /// One scan of the lists for all of `ids`.
    fn reconstruct_batch(&self, ids: &[u64]) -> Result<Vec<f32>> {
        self.inner.reconstruct_batch(ids).map_err(|e| self.err(e))
    }

    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        Ok(self.inner.remove_ids(ids))
    }

    fn reset(&mut self) -> Result<()> {
        self.inner.reset();
        Ok(())
    }

    fn memory_usage(&self) -> MemoryUsage {
        let m = self.inner.memory_usage();
        MemoryUsage { vectors: m.codes, ids: m.ids, trained: m.trained, mapped: m.mapped, ..Default::default() }
    }

    fn spec(&self) -> IndexSpec {
        let storage = StorageSpec::Codec(match self.inner.pq() {
            Some(pq) => CodecSpec::PqFastScan { m: pq.m() },
            None => CodecSpec::RaBitQFastScan { bits: self.inner.rabitq().map_or(1, |q| q.bits()) },
        });
        let coarse_hnsw = match self.inner.params().coarse {
            vq_ivf::CoarseKind::Flat => None,
            vq_ivf::CoarseKind::Hnsw { m } => Some(m),
        };
        IndexSpec::new(BaseSpec::Ivf { nlist: self.inner.params().nlist, coarse_hnsw, storage })
    }

    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.inner.write_sections(w, prefix).map_err(|e| self.err(e))
    }

    fn fingerprint(&self) -> u64 {
        self.inner.fingerprint()
    }

    fn merge_from(&mut self, other: Box<dyn Index>, shift_ids: u64) -> Result<()> {
        let other = downcast_for_merge(self, other)?;
        self.inner.merge_from(other.inner, shift_ids).map_err(|e| self.err(e))
    }

    fn check_merge(&self, other: &dyn Index, shift_ids: u64) -> Result<()> {
        let other = downcast_ref_for_merge(self, other)?;
        self.inner.check_merge(&other.inner, shift_ids).map(drop).map_err(|e| self.err(e))
    }

    fn is_mergeable(&self) -> bool {
        true
    }

    fn search_default(&self, knob: SearchDefault) -> Option<usize> {
        (knob == SearchDefault::Nprobe).then(|| self.inner.params().nprobe)
    }

    fn set_search_default(&mut self, knob: SearchDefault, value: usize) -> Result<()> {
        let value = check_search_default(knob, value)?;
        match knob {
            SearchDefault::Nprobe => self.inner.set_nprobe(value).map_err(|e| self.err(e)),
            _ => Err(no_search_default(self, knob)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factory::{IndexParams, index_factory_with};

    /// The score-aware training option goes from the factory's parameters into the index and
    /// comes back from its file; it changes the codes (so it was applied).
    #[test]
    fn anisotropic_threshold_round_trips_through_the_factory_and_a_file() {
        let dim = 16;
        let data: Vec<f32> = (0..dim * 800).map(|i| ((i * 7919) % 1009) as f32 / 97.0 - 5.0).collect();
        let params = IndexParams { anisotropic_threshold: Some(0.2), ..Default::default() };
        let mut aware = index_factory_with(dim, "IVF8,PQ8x4fs", Metric::Cosine, &params).unwrap();
        let mut plain = index_factory_with(dim, "IVF8,PQ8x4fs", Metric::Cosine, &IndexParams::default()).unwrap();
        for index in [&mut aware, &mut plain] {
            index.train(&data).unwrap();
            index.add(&data).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aniso.vq");
        crate::write_index(aware.as_ref(), &path).unwrap();
        let back = crate::read_index(&path).unwrap();
        let queries = &data[..5 * dim];
        assert_eq!(back.search(queries, 5).unwrap(), aware.search(queries, 5).unwrap());
        let r = vq_io::ContainerReader::open(&path).unwrap();
        let read = IvfFastScanIndex::read_sections(&r, "index").unwrap();
        assert_eq!(read.inner().pq().unwrap().params().anisotropic_threshold, Some(0.2));
        let plain_path = dir.path().join("plain.vq");
        crate::write_index(plain.as_ref(), &plain_path).unwrap();
        let r = vq_io::ContainerReader::open(&plain_path).unwrap();
        assert_eq!(
            IvfFastScanIndex::read_sections(&r, "index").unwrap().inner().pq().unwrap().params().anisotropic_threshold,
            None
        );
        assert_ne!(std::fs::read(&path).unwrap(), std::fs::read(&plain_path).unwrap());
        let bad = IndexParams { anisotropic_threshold: Some(f32::NAN), ..Default::default() };
        assert!(index_factory_with(dim, "IVF8,PQ8x4fs", Metric::Cosine, &bad).is_err());
    }
}
