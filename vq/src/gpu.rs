//! GPU indexes behind the [`Index`] trait (feature `gpu`), in Faiss' shape: build or load an
//! index on the CPU, move it to a device with [`index_cpu_to_gpu`], search it there, and bring
//! it back with [`index_gpu_to_cpu`] (which is also what [`write_index`](crate::write_index)
//! does: a file never depends on a device).
//!
//! ```no_run
//! use vq::Metric;
//!
//! let gpu = vq::gpu::open_gpu(0)?; // Err(vq::Error::Gpu(NoDevice { .. })) without a GPU
//! let mut cpu = vq::index_factory(4, "Flat", Metric::L2)?;
//! cpu.add(&[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])?;
//! let on_gpu = vq::gpu::index_cpu_to_gpu(&gpu, cpu.as_ref())?;
//! assert_eq!(on_gpu.search(&[0.9, 1.0, 1.0, 1.0], 1)?.ids(), &[1]);
//! let back = vq::gpu::index_gpu_to_cpu(on_gpu.as_ref())?;
//! assert_eq!(back.len(), 2);
//! # Ok::<(), vq::Error>(())
//! ```
//!
//! An empty GPU index comes from a factory string with a leading `GPU` (device 0) or
//! `GPU{ordinal}` component: `vq::index_factory(128, "GPU,IVF1024,Flat", Metric::L2)`, or
//! [`gpu_index_factory`] on a device already open. [`shared_gpu`] opens each device once per
//! process (Faiss' `StandardGpuResources`); the factory uses it.
//!
//! What moves: `Flat` (to [`GpuFlatIndex`], Faiss' `GpuIndexFlat`), and with the flat coarse
//! quantizer `IVF{nlist},Flat` (to [`GpuIvfFlatIndex`], Faiss' `GpuIndexIVFFlat`),
//! `IVF{nlist},SQ8|SQ6|SQ4|SQ4U|SQfp16|SQbf16` (to [`GpuIvfSqIndex`],
//! `GpuIndexIVFScalarQuantizer`) and `IVF{nlist},PQ{m}` with 8-bit codes (to
//! [`GpuIvfPqIndex`], `GpuIndexIVFPQ`); all come back
//! exactly (same vectors or codes, ids, centroids and codebooks, so the same file and
//! fingerprint). Other kinds are refused with [`Error::Unsupported`]. GPU indexes keep their
//! factory string (`spec()` is the CPU one's; `write_index` writes the CPU index), and, unlike
//! Faiss' GPU indexes, remove ids and take search filters (the filter is asked on the host,
//! the device gets a bit per stored vector); `k` is at most [`vq_gpu::MAX_K`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use vq_distance::{Metric, Neighbors};
use vq_gpu::{Gpu, GpuFlat, GpuFlatOptions};
use vq_io::ContainerWriter;

use crate::error::{Error, Result};
use crate::factory::IndexParams;
use crate::flat::FlatIndex;
use crate::ids::IdMap;
use crate::index::{
    Index, MemoryUsage, SearchDefault, SearchParams, check_ids, check_k, check_search_default, neighbors_from_rows,
    no_search_default, prepare,
};
use crate::ivf::{IvfIndex, IvfStorage};
use crate::spec::{BaseSpec, CodecSpec, IndexSpec, StorageSpec};
use vq_gpu::GpuCodec;
use vq_ivf::{FlatCodec, PqCodec, SqCodec};
use vq_quant::SqType;

pub use vq_gpu::{GpuStorage, MAX_K};

/// Opens device `ordinal` (context, stream, cuBLAS handle, kernels compiled by NVRTC). Share
/// the returned handle between indexes: opening compiles the kernels again.
///
/// # Errors
/// [`Error::Gpu`] holding [`vq_gpu::Error::NoDevice`] (naming the missing driver, library or
/// device) where there is no usable GPU; kernel build or load failures.
pub fn open_gpu(ordinal: usize) -> Result<Arc<Gpu>> {
    Ok(Gpu::new(ordinal)?)
}

/// Device `ordinal`, opened on first use and then shared by every caller in the process (Faiss'
/// `StandardGpuResources`): opening compiles the kernels, so a server opens each device once.
/// The factory's `GPU{ordinal}` component and the Python wheel use it.
///
/// # Errors
/// As [`open_gpu`] (a failed open is not remembered: a later call tries again).
pub fn shared_gpu(ordinal: usize) -> Result<Arc<Gpu>> {
    static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
    let mut open = DEVICES.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(gpu) = open.get(&ordinal) {
        return Ok(gpu.clone());
    }
    let gpu = open_gpu(ordinal)?;
    open.insert(ordinal, gpu.clone());
    Ok(gpu)
}

/// An empty GPU index of the kind `spec` names, on `gpu`: `Flat` ([`GpuFlatIndex`]),
/// `IVF{nlist},Flat` ([`GpuIvfFlatIndex`]), `IVF{nlist},SQ8|SQ6|SQ4|SQ4U|SQfp16|SQbf16`
/// ([`GpuIvfSqIndex`]) or `IVF{nlist},PQ{m}` with 8-bit codes ([`GpuIvfPqIndex`]), the IVF
/// ones trained on the GPU. `spec` carries no `GPU`
/// component; [`index_factory`](crate::index_factory) strips it and lands here.
///
/// # Errors
/// A spec that does not parse; [`Error::Unsupported`] for a kind with no GPU version (every
/// other kind, an HNSW coarse quantizer, a transform or refine stage); bad parameters.
pub fn gpu_index_factory(gpu: &Arc<Gpu>, dim: usize, spec: &str, metric: Metric) -> Result<Box<dyn Index>> {
    gpu_index_factory_with(gpu, dim, spec, metric, &IndexParams::default(), &GpuClonerOptions::default())
}

/// [`gpu_index_factory`] with build parameters (`nprobe`) and device options (f16 storage for
/// `Flat`).
///
/// # Errors
/// As [`gpu_index_factory`]; f16 storage for an IVF index.
pub fn gpu_index_factory_with(
    gpu: &Arc<Gpu>,
    dim: usize,
    spec: &str,
    metric: Metric,
    params: &IndexParams,
    options: &GpuClonerOptions,
) -> Result<Box<dyn Index>> {
    build(gpu, dim, spec, gpu_kind(spec)?, metric, params, options)
}

/// `GPU{ordinal},{spec}` from [`index_factory`](crate::index_factory): the GPU index of
/// `spec`'s kind on the shared device `ordinal`. The kind is decided first, so an unsupported
/// one is an error on machines without a GPU too.
pub(crate) fn index_factory_on_shared(
    ordinal: usize,
    dim: usize,
    spec: &str,
    metric: Metric,
    params: &IndexParams,
) -> Result<Box<dyn Index>> {
    let kind = gpu_kind(spec)?;
    build(&shared_gpu(ordinal)?, dim, spec, kind, metric, params, &GpuClonerOptions::default())
}

/// An empty GPU index of `kind` (parsed from `spec`, which error messages name).
fn build(
    gpu: &Arc<Gpu>,
    dim: usize,
    spec: &str,
    kind: GpuKind,
    metric: Metric,
    params: &IndexParams,
    options: &GpuClonerOptions,
) -> Result<Box<dyn Index>> {
    if options.storage != GpuStorage::F32 && !matches!(kind, GpuKind::Flat) {
        return Err(Error::Unsupported {
            spec: format!("{spec} (GPU)"),
            what: "f16 storage (IVF lists are f32 or codes on the GPU)".into(),
        });
    }
    Ok(match kind {
        GpuKind::Flat => Box::new(GpuFlatIndex::new(gpu, dim, metric, *options)?),
        GpuKind::IvfFlat { nlist } => Box::new(GpuIvfFlatIndex::new(gpu, dim, metric, params.ivf(nlist)?)?),
        GpuKind::IvfSq { nlist, sq_type } => {
            let codec =
                SqCodec::new(dim, metric, sq_type).map_err(|e| crate::ivf::ivf_error(e, || spec.to_string()))?;
            Box::new(GpuIvfSqIndex::with_codec(gpu, dim, metric, params.ivf(nlist)?, codec)?)
        }
        GpuKind::IvfPq { nlist, m } => {
            let codec = PqCodec::new(dim, metric, m, 8).map_err(|e| crate::ivf::ivf_error(e, || spec.to_string()))?;
            Box::new(GpuIvfPqIndex::with_codec(gpu, dim, metric, params.ivf(nlist)?, codec)?)
        }
    })
}

/// The index kinds with a GPU version.
enum GpuKind {
    Flat,
    IvfFlat { nlist: usize },
    IvfSq { nlist: usize, sq_type: SqType },
    IvfPq { nlist: usize, m: usize },
}

/// Which GPU index `spec` (without its `GPU` component) names, decided before any device is
/// opened, so an unsupported kind is reported as such on machines without a GPU too.
fn gpu_kind(spec: &str) -> Result<GpuKind> {
    let parsed: IndexSpec = spec.parse()?;
    match parsed {
        IndexSpec { transform: None, refine: None, base: BaseSpec::Flat } => Ok(GpuKind::Flat),
        IndexSpec {
            transform: None,
            refine: None,
            base: BaseSpec::Ivf { nlist, coarse_hnsw: None, storage: StorageSpec::Flat },
        } => Ok(GpuKind::IvfFlat { nlist }),
        IndexSpec {
            transform: None,
            refine: None,
            base: BaseSpec::Ivf { nlist, coarse_hnsw: None, storage: StorageSpec::Codec(CodecSpec::Sq(sq_type)) },
        } => Ok(GpuKind::IvfSq { nlist, sq_type }),
        IndexSpec {
            transform: None,
            refine: None,
            base: BaseSpec::Ivf { nlist, coarse_hnsw: None, storage: StorageSpec::Codec(CodecSpec::Pq { m, nbits: 8 }) },
        } => Ok(GpuKind::IvfPq { nlist, m }),
        other => Err(Error::Unsupported {
            spec: other.to_string(),
            what: "a GPU version (the GPU indexes are Flat, IVF{nlist},Flat, IVF{nlist},SQ… and IVF{nlist},PQ{m})"
                .into(),
        }),
    }
}

/// How [`index_cpu_to_gpu_with`] lays an index out on the device (Faiss' `GpuClonerOptions`):
/// f32 or f16 storage (`useFloat16`), and the scratch budget of a search.
pub type GpuClonerOptions = GpuFlatOptions;

/// A copy of `index` on `gpu` with the default options (f32 storage).
///
/// # Errors
/// [`Error::Unsupported`] for an index kind with no GPU version; device errors
/// ([`Error::Gpu`]: out of memory with the sizes, a CUDA call).
pub fn index_cpu_to_gpu(gpu: &Arc<Gpu>, index: &dyn Index) -> Result<Box<dyn Index>> {
    index_cpu_to_gpu_with(gpu, index, &GpuClonerOptions::default())
}

/// [`index_cpu_to_gpu`] with options.
///
/// # Errors
/// As [`index_cpu_to_gpu`].
pub fn index_cpu_to_gpu_with(gpu: &Arc<Gpu>, index: &dyn Index, options: &GpuClonerOptions) -> Result<Box<dyn Index>> {
    let any: &dyn std::any::Any = index;
    if let Some(flat) = any.downcast_ref::<FlatIndex>() {
        return Ok(Box::new(GpuFlatIndex::from_cpu(gpu, flat, *options)?));
    }
    if let Some(ivf) = any.downcast_ref::<IvfIndex<FlatCodec>>() {
        return Ok(Box::new(GpuIvfFlatIndex::from_cpu(gpu, ivf, *options)?));
    }
    if let Some(ivf) = any.downcast_ref::<IvfIndex<SqCodec>>() {
        return Ok(Box::new(GpuIvfSqIndex::from_cpu(gpu, ivf, *options)?));
    }
    if let Some(ivf) = any.downcast_ref::<IvfIndex<PqCodec>>() {
        return Ok(Box::new(GpuIvfPqIndex::from_cpu(gpu, ivf, *options)?));
    }
    Err(Error::Unsupported {
        spec: index.spec().to_string(),
        what: "moving to a GPU (index_cpu_to_gpu takes Flat, IVF{nlist},Flat, IVF{nlist},SQ… and IVF{nlist},PQ{m})"
            .into(),
    })
}

/// A CPU copy of a GPU index (Faiss' `index_gpu_to_cpu`); a CPU index is copied as it is.
///
/// # Errors
/// Device errors while copying back.
pub fn index_gpu_to_cpu(index: &dyn Index) -> Result<Box<dyn Index>> {
    let any: &dyn std::any::Any = index;
    if let Some(flat) = any.downcast_ref::<GpuFlatIndex>() {
        return Ok(Box::new(flat.to_cpu()?));
    }
    if let Some(ivf) = any.downcast_ref::<GpuIvfFlatIndex>() {
        return Ok(Box::new(ivf.to_cpu()?));
    }
    if let Some(ivf) = any.downcast_ref::<GpuIvfSqIndex>() {
        return Ok(Box::new(ivf.to_cpu()?));
    }
    if let Some(ivf) = any.downcast_ref::<GpuIvfPqIndex>() {
        return Ok(Box::new(ivf.to_cpu()?));
    }
    // Not on a device: a copy through the index file format, as Faiss clones a CPU index.
    crate::read_index_from_bytes(&crate::write_index_to_bytes(index)?)
}

/// `Flat` on a GPU (Faiss' `GpuIndexFlat`): exact search by cuBLAS GEMM and the top-k
/// selection kernel of [`vq_gpu::GpuFlat`], with vq's external ids on top.
///
/// Scores as [`FlatIndex`]'s (within f32 rounding of a GEMM, or f16 storage's precision);
/// `k` at most [`MAX_K`]; a search filter is asked once per stored vector per search (on the
/// host; the device gets a bit per row); `remove_ids` packs the remaining rows on the device.
#[derive(Debug)]
pub struct GpuFlatIndex {
    inner: GpuFlat,
    ids: IdMap,
}

impl GpuFlatIndex {
    /// An empty index on `gpu`.
    ///
    /// # Errors
    /// A zero or too large dimension.
    pub fn new(gpu: &Arc<Gpu>, dim: usize, metric: Metric, options: GpuFlatOptions) -> Result<Self> {
        Ok(GpuFlatIndex { inner: GpuFlat::new(gpu, dim, metric, options)?, ids: IdMap::default() })
    }

    /// A copy of `cpu` on `gpu`: the same vectors (bit for bit with f32 storage) and ids.
    ///
    /// # Errors
    /// Device errors (out of memory with the sizes).
    pub fn from_cpu(gpu: &Arc<Gpu>, cpu: &FlatIndex, options: GpuFlatOptions) -> Result<Self> {
        let mut index = Self::new(gpu, cpu.dim(), cpu.metric(), options)?;
        let (vectors, ids) = cpu.parts();
        // Stored cosine rows are unit length already, so adding them does not rescale them.
        index.inner.add(vectors)?;
        index.ids = ids.clone();
        Ok(index)
    }

    /// The CPU [`FlatIndex`] of the same vectors and ids (f16 storage comes back widened).
    ///
    /// # Errors
    /// Device errors while copying back.
    pub fn to_cpu(&self) -> Result<FlatIndex> {
        let vectors = self.inner.to_host()?;
        Ok(FlatIndex::from_parts(self.inner.dim(), self.inner.metric(), vectors, self.ids.clone()))
    }

    /// The device index.
    pub fn inner(&self) -> &GpuFlat {
        &self.inner
    }
}

impl Index for GpuFlatIndex {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn metric(&self) -> Metric {
        self.inner.metric()
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
    fn next_id(&self) -> u64 {
        self.ids.next_id()
    }

    fn is_trained(&self) -> bool {
        true
    }

    fn train(&mut self, data: &[f32]) -> Result<()> {
        prepare("training data", data, self.dim(), self.metric()).map(drop)
    }

    fn add(&mut self, data: &[f32]) -> Result<()> {
        let ids = self.ids.next_ids(data.len() / self.dim())?;
        self.add_with_ids(data, &ids)
    }

    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        let data = prepare("vectors", data, self.dim(), self.metric())?;
        check_ids(&data, self.dim(), ids)?;
        self.ids.check_absent(ids)?;
        self.inner.add(&data)?;
        self.ids.push(ids);
        Ok(())
    }

    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
        check_k(params)?;
        let hits = match params.filter {
            None => self.inner.search(queries, params.k)?,
            Some(filter) => {
                self.inner.search_filtered(queries, params.k, &|row: u64| filter.accepts(self.ids.id(row as usize)))?
            }
        };
        // Device rows to external ids, then re-sorted: ties go to the smaller *external* id.
        let rows = hits
            .iter()
            .map(|(rows, scores)| rows.iter().map(|&r| self.ids.id(r as usize)).zip(scores.iter().copied()).collect())
            .collect();
        neighbors_from_rows(params.k, self.metric(), rows)
    }

    /// As [`FlatIndex`]'s: the rows that stay keep their order (one device copy per run of
    /// them, [`vq_gpu::GpuFlat::retain_rows`]).
    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        let Some(keep) = self.ids.keep_mask(ids) else { return Ok(0) };
        let removed = self.inner.retain_rows(&keep)?;
        self.ids.retain(&keep);
        Ok(removed)
    }

    fn reset(&mut self) -> Result<()> {
        self.inner.retain_rows(&vec![false; self.inner.len()])?;
        self.ids = IdMap::default();
        Ok(())
    }

    /// `vectors` is device memory (the base and its norms); `ids` the host id map.
    fn memory_usage(&self) -> MemoryUsage {
        MemoryUsage { vectors: self.inner.memory_usage(), ids: self.ids.memory_bytes(), ..Default::default() }
    }

    fn spec(&self) -> IndexSpec {
        IndexSpec::new(BaseSpec::Flat)
    }

    /// Writes the CPU index ([`GpuFlatIndex::to_cpu`]): files do not depend on a device.
    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.to_cpu()?.write_sections(w, prefix)
    }
}

/// An inverted file on a GPU: `IVF{nlist},Flat` ([`GpuIvfFlatIndex`], Faiss'
/// `GpuIndexIVFFlat`), `IVF{nlist},SQ…`, every scalar quantizer ([`GpuIvfSqIndex`],
/// `GpuIndexIVFScalarQuantizer`) or `IVF{nlist},PQ{m}` with 8-bit codes ([`GpuIvfPqIndex`],
/// `GpuIndexIVFPQ`): centroids and lists on the device, [`vq_gpu::GpuIvf`]'s list-scan
/// kernels, vq-ivf's `nprobe` semantics.
///
/// Training runs vq-ivf's training with k-means' two Lloyd steps on the device (vq-gpu's
/// `GpuAssigner`; SQ ranges and PQ codebooks on the CPU); adds assign on the device and encode on the host.
/// Results as the CPU index's with the same `nprobe` (within f32 rounding); `k` and `nprobe`
/// at most [`MAX_K`]; f32 centroids; a search filter is asked once per stored vector per
/// search (on the host; the scan kernels get a bit per list entry); `remove_ids` packs the
/// remaining entries on the device; no merge.
#[derive(Debug)]
pub struct GpuIvfIndex<C: GpuCodec> {
    inner: vq_gpu::GpuIvf<C>,
    /// The CPU index's fingerprint (it depends only on the trained state and the kind).
    fingerprint: u64,
}

/// `IVF{nlist},Flat` on a GPU.
pub type GpuIvfFlatIndex = GpuIvfIndex<FlatCodec>;
/// `IVF{nlist},SQ8`, `SQ6`, `SQ4`, `SQ4U`, `SQfp16` or `SQbf16` on a GPU.
pub type GpuIvfSqIndex = GpuIvfIndex<SqCodec>;
/// `IVF{nlist},PQ{m}` (8-bit codes) on a GPU.
pub type GpuIvfPqIndex = GpuIvfIndex<PqCodec>;

impl GpuIvfIndex<FlatCodec> {
    /// An empty, untrained IVF-Flat index on `gpu` (flat coarse quantizer only).
    ///
    /// # Errors
    /// Bad parameters; an HNSW coarse quantizer.
    pub fn new(gpu: &Arc<Gpu>, dim: usize, metric: Metric, params: vq_ivf::IvfParams) -> Result<Self> {
        Ok(GpuIvfIndex { inner: vq_gpu::GpuIvf::new(gpu, dim, metric, params, None)?, fingerprint: 0 })
    }
}

impl<C: GpuCodec + IvfStorage + 'static> GpuIvfIndex<C> {
    /// An empty, untrained index whose lists hold `codec`'s codes (flat coarse quantizer
    /// only).
    ///
    /// # Errors
    /// Bad parameters; an HNSW coarse quantizer; a codec the GPU does not scan (PQ codes
    /// other than 8 bits, a table too large for shared memory).
    pub fn with_codec(gpu: &Arc<Gpu>, dim: usize, metric: Metric, params: vq_ivf::IvfParams, codec: C) -> Result<Self> {
        Ok(GpuIvfIndex { inner: vq_gpu::GpuIvf::with_codec(gpu, dim, metric, params, codec, None)?, fingerprint: 0 })
    }

    /// A copy of `cpu` on `gpu` (centroids, codec, lists, ids, next id).
    ///
    /// # Errors
    /// An HNSW coarse quantizer; f16 storage; a codec the GPU does not scan; device errors.
    pub fn from_cpu(gpu: &Arc<Gpu>, cpu: &IvfIndex<C>, options: GpuFlatOptions) -> Result<Self> {
        if options.storage != GpuStorage::F32 {
            return Err(Error::Unsupported {
                spec: format!("{} (GPU)", cpu.spec()),
                what: "f16 storage (IVF lists are f32 or codes on the GPU)".into(),
            });
        }
        let inner = vq_gpu::GpuIvf::from_cpu(gpu, cpu.inner(), options.scratch_bytes)?;
        Ok(GpuIvfIndex { inner, fingerprint: cpu.inner().fingerprint() })
    }

    /// The CPU index of the same centroids, codec, lists, ids and next id.
    ///
    /// # Errors
    /// Device errors while copying back.
    pub fn to_cpu(&self) -> Result<IvfIndex<C>> {
        Ok(IvfIndex::from_inner(self.inner.to_cpu()?))
    }

    /// The device index.
    pub fn inner(&self) -> &vq_gpu::GpuIvf<C> {
        &self.inner
    }

    fn not_trained(&self) -> Error {
        Error::NotTrained { spec: self.spec().to_string() }
    }
}

impl<C: GpuCodec + IvfStorage + 'static> Index for GpuIvfIndex<C> {
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
        self.inner.train(data)?;
        // The fingerprint of the CPU index with this trained state (empty: only the trained
        // state counts).
        self.fingerprint = self.inner.to_cpu()?.fingerprint();
        Ok(())
    }

    fn add(&mut self, data: &[f32]) -> Result<()> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        Ok(self.inner.add(data)?)
    }

    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        check_ids(data, self.dim(), ids)?;
        Ok(self.inner.add_with_ids(data, ids)?)
    }

    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
        if !self.is_trained() {
            return Err(self.not_trained());
        }
        check_k(params)?;
        Ok(match params.filter {
            None => self.inner.search(queries, params.k, params.nprobe)?,
            Some(filter) => self.inner.search_filtered(queries, params.k, params.nprobe, filter)?,
        })
    }

    /// As vq-ivf's: the entries that stay keep their lists and order
    /// ([`vq_gpu::GpuIvf::remove_ids`]).
    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        Ok(self.inner.remove_ids(ids)?)
    }

    /// Refused: the device lists keep numbering ids past the removed ones. Reset the CPU
    /// index and copy it to the GPU instead.
    fn reset(&mut self) -> Result<()> {
        Err(Error::Unsupported {
            spec: format!("{} (GPU)", self.spec()),
            what: "reset (reset the CPU index and copy it to the GPU)".into(),
        })
    }

    /// `vectors` is device memory (centroids, codec tables, codes, ids, offsets); `ids` the
    /// host mirror of the lists' ids.
    fn memory_usage(&self) -> MemoryUsage {
        MemoryUsage { vectors: self.inner.memory_usage(), ids: self.inner.len() * 8, ..Default::default() }
    }

    fn spec(&self) -> IndexSpec {
        IndexSpec::new(BaseSpec::Ivf {
            nlist: self.inner.params().nlist,
            coarse_hnsw: None,
            storage: self.inner.codec().storage(),
        })
    }

    /// Writes the CPU index ([`GpuIvfIndex::to_cpu`]): files do not depend on a device.
    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.to_cpu()?.write_sections(w, prefix)
    }

    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    fn search_default(&self, knob: SearchDefault) -> Option<usize> {
        (knob == SearchDefault::Nprobe).then(|| self.inner.params().nprobe)
    }

    fn set_search_default(&mut self, knob: SearchDefault, value: usize) -> Result<()> {
        let value = check_search_default(knob, value)?;
        match knob {
            SearchDefault::Nprobe => Ok(self.inner.set_nprobe(value)?),
            _ => Err(no_search_default(self, knob)),
        }
    }
}
