//! `GpuIvf`: an inverted-file index with its lists resident on the device — IVF-Flat
//! (Faiss' `GpuIndexIVFFlat`) and IVF-PQ with 8-bit codes (`GpuIndexIVFPQ`). A search finds
//! each query's `nprobe` lists with the coarse centroids held as a [`GpuFlat`] (GEMM + the
//! selection kernel), then scans the probed lists tile by tile and folds each tile into the
//! running top-k with the selection kernel fed keys and ids (`MODE_KEYS`). The scan is the
//! codec's: `vq_ivf_scan` (one warp per candidate, the exact f32 distance) for Flat,
//! `vq_ivfpq_scan` (one block per probed list: its lookup table in shared memory, then a
//! table sum per entry) for PQ.
//!
//! Layout: every list's codes (`code_size` bytes each; Flat's are the f32 values) and ids,
//! list after list, in one device array each, with the `nlist + 1` list offsets beside them.
//! A query's candidates are its probed lists' entries in probe order; `nprobe + 1` prefix sums
//! per query ([`candidate_offsets`]) say where each probe starts, and [`locate`] (the Flat
//! kernel's host twin) finds a candidate's row. The search loop is `plan::search_tiled`'s,
//! with candidate positions in place of base rows, so CPU reference backends (tests below)
//! check the host logic against vq-ivf's own search.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use vq_distance::{IdFilter, Metric, Neighbors, prepare_rows};
use vq_ivf::{CoarseKind, FlatCodec, IdTracker, IvfCodec, IvfIndex, IvfParams, PqCodec, SqCodec};
use vq_quant::{Quantizer, SqType};

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::flat::{GpuFlat, GpuFlatOptions};
use crate::kernels::{
    IVF_SCAN_ARGS, IVFPQ_SCAN_ARGS, IVFSQ_SCAN_ARGS, MAX_K, MODE_KEYS, PQ_SCAN_THREADS, SCAN_WARPS, SELECT_ARGS,
    SELECT_THREADS, SQ_KIND_BF16, SQ_KIND_FP16, SQ_KIND_SQ4, SQ_KIND_SQ6, SQ_KIND_SQ8, push_args, select_capacity,
    select_shared_bytes,
};
use crate::plan::{TileBackend, TilePlan, search_tiled};
use crate::rows::{RowMask, compact, device_ptr_or_null, kept_runs, upload_mask};

/// Where each list's rows start in the concatenated arrays: `nlist + 1` prefix sums of `sizes`.
pub(crate) fn list_offsets(sizes: &[usize]) -> Vec<u64> {
    std::iter::once(0)
        .chain(sizes.iter().scan(0u64, |acc, &s| {
            *acc += s as u64;
            Some(*acc)
        }))
        .collect()
}

/// Per query, `nprobe + 1` prefix sums of its probed lists' sizes (`probes` is `[nq][nprobe]`;
/// a probe past the last list, the padding of a short coarse result, counts as empty).
pub(crate) fn candidate_offsets(probes: &[u32], nprobe: usize, sizes: &[usize]) -> Vec<u64> {
    let mut out = Vec::with_capacity(probes.len() / nprobe.max(1) * (nprobe + 1));
    for query in probes.chunks_exact(nprobe) {
        let mut acc = 0u64;
        out.push(0);
        for &l in query {
            acc += sizes.get(l as usize).copied().unwrap_or(0) as u64;
            out.push(acc);
        }
    }
    out
}

/// A removal over lists of ids: whether each entry stays (every list's entries, list after
/// list, as the device arrays hold them), each list's ids that stay, in order, and the ids
/// removed.
fn split_removed(list_ids: &[Vec<u64>], remove: impl Fn(u64) -> bool) -> (Vec<bool>, Vec<Vec<u64>>, Vec<u64>) {
    let keep: Vec<bool> = list_ids.iter().flatten().map(|&id| !remove(id)).collect();
    let mut flags = keep.iter();
    let kept = list_ids.iter().map(|l| l.iter().copied().filter(|_| flags.next() == Some(&true)).collect()).collect();
    let gone = list_ids.iter().flatten().zip(&keep).filter(|(_, k)| !**k).map(|(&id, _)| id).collect();
    (keep, kept, gone)
}

/// The row (in the concatenated arrays) of candidate `pos` of one query, given its
/// `nprobe + 1` candidate offsets, its probes and the list offsets; `None` past its last
/// candidate. The host twin of `vq_ivf_scan`'s search, step for step (the CPU reference
/// backend of the tests runs it).
#[cfg(test)]
pub(crate) fn locate(offsets: &[u64], probes: &[u32], lists: &[u64], pos: u64) -> Option<usize> {
    let nprobe = probes.len();
    if pos >= offsets[nprobe] {
        return None;
    }
    // The last probe whose first candidate is at or before `pos` (offsets[0] = 0 <= pos).
    let (mut lo, mut hi) = (0, nprobe - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if offsets[mid] <= pos {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some((lists[probes[lo] as usize] + (pos - offsets[lo])) as usize)
}

mod sealed {
    use super::*;

    /// What a codec's lists need on the device: its own checks, its tables, its scan launch.
    pub trait DeviceCodec: Sized {
        /// `Ok` when the GPU can scan this codec's lists in a `dim`-dimensional index.
        fn check_gpu(&self, dim: usize, gpu: &Gpu) -> Result<()>;
        /// The codec as the GPU index keeps it on the host (to encode added rows and to hand
        /// back to the CPU): without tables a CPU search precomputes.
        fn host_copy(&self, metric: Metric) -> Result<Self>;
        /// What the scan kernel reads beside the codes (PQ: the codebooks); empty for none.
        fn device_tables(&self) -> Vec<f32>;
        /// Writes the keys and ids of one tile of candidates.
        fn launch_scan(&self, scan: &mut ScanLaunch<'_>) -> Result<()>;
    }
}

/// A list codec the GPU can scan: [`FlatCodec`] (IVF-Flat), [`SqCodec`] with any scalar
/// quantizer (IVF-SQ8, -SQ6, -SQ4, -SQ4U, -SQfp16, -SQbf16) and [`PqCodec`] with 8-bit codes
/// (IVF-PQ). Sealed: the device side of each is this crate's.
pub trait GpuCodec: IvfCodec + Clone + sealed::DeviceCodec {}

impl GpuCodec for FlatCodec {}
impl GpuCodec for SqCodec {}
impl GpuCodec for PqCodec {}

/// An IVF-Flat index on one GPU ([`GpuIvf`] over [`FlatCodec`]; Faiss' `GpuIndexIVFFlat`).
pub type GpuIvfFlat = GpuIvf<FlatCodec>;
/// An IVF-SQ index on one GPU, any scalar quantizer ([`GpuIvf`] over [`SqCodec`]; Faiss'
/// `GpuIndexIVFScalarQuantizer`).
pub type GpuIvfSq = GpuIvf<SqCodec>;
/// An IVF-PQ index on one GPU ([`GpuIvf`] over [`PqCodec`], 8-bit codes; Faiss'
/// `GpuIndexIVFPQ`).
pub type GpuIvfPq = GpuIvf<PqCodec>;

/// An inverted-file index on one GPU: coarse centroids and inverted lists (each entry's code,
/// and its id) resident on the device, searched with `nprobe` lists per query. Results follow
/// the vq conventions (best first, ties to the smaller id, `u64::MAX` padding); `k` and
/// `nprobe` at most [`MAX_K`]. Only the flat coarse quantizer (every centroid scored), as
/// Faiss' GPU IVF.
///
/// [`from_cpu`](GpuIvf::from_cpu) / [`to_cpu`](GpuIvf::to_cpu) round-trip a
/// `vq_ivf::IvfIndex` exactly (centroids, codec, lists of codes, ids, next id, so the
/// fingerprint). Vectors added here are assigned to lists on the device (GEMM) and encoded on
/// the host as vq-ivf encodes them ([`vq_ivf::encode_in_lists`]): a vector within f32 rounding
/// of two centroids may land in the other list than the CPU would put it in.
///
/// Keys: IVF-Flat scores each entry exactly (squared L2 or inner product, f32); IVF-PQ builds
/// each (query, probed list) pair's `m × 256` table in shared memory from the residual
/// `q − c` (L2) or the query (inner product, plus the list's coarse score), as Faiss' GPU
/// IVF-PQ without precomputed tables: the sums equal vq-ivf's within f32 rounding.
pub struct GpuIvf<C: GpuCodec> {
    gpu: Arc<Gpu>,
    dim: usize,
    metric: Metric,
    params: IvfParams,
    scratch_bytes: Option<usize>,
    /// The (trained, once trained) codec: encodes added rows; handed back by `to_cpu`.
    codec: C,
    /// The centroids, searched by the coarse metric (L2, or inner product for IP and cosine).
    coarse: Option<GpuFlat>,
    /// Host copy of the centroids (residuals of added rows).
    centroids: Vec<f32>,
    /// The codec's device tables (PQ codebooks), once trained.
    tables: Option<CudaSlice<f32>>,
    /// Host mirror of every list's ids: the list sizes, filters, removal and `to_cpu`.
    list_ids: Vec<Vec<u64>>,
    lists: Option<DeviceLists>,
    /// The ids held (the duplicate check, no memory while they are `0..n`) and the next id.
    ids: IdTracker,
}

/// The lists on the device, list after list.
pub(crate) struct DeviceLists {
    /// `code_size` bytes per entry (IVF-Flat: the vector's f32 values, little-endian).
    codes: CudaSlice<u8>,
    ids: CudaSlice<u64>,
    offsets: CudaSlice<u64>,
}

impl<C: GpuCodec> std::fmt::Debug for GpuIvf<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuIvf")
            .field("gpu", &self.gpu)
            .field("kind", &self.name())
            .field("dim", &self.dim)
            .field("metric", &self.metric)
            .field("params", &self.params)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// The metric of the coarse search (vq-ivf's): inner product for inner-product and cosine.
fn coarse_metric(metric: Metric) -> Metric {
    if metric == Metric::L2 { Metric::L2 } else { Metric::InnerProduct }
}

impl GpuIvf<FlatCodec> {
    /// An empty, untrained IVF-Flat index of `params.nlist` lists on `gpu` (`params.coarse`
    /// must be flat). `scratch_bytes` bounds a search's device scratch (`None`: half the free
    /// memory, at most 1 GiB).
    ///
    /// # Errors
    /// Bad parameters (vq-ivf's checks), an HNSW coarse quantizer ([`Error::Unsupported`]).
    pub fn new(
        gpu: &Arc<Gpu>,
        dim: usize,
        metric: Metric,
        params: IvfParams,
        scratch_bytes: Option<usize>,
    ) -> Result<Self> {
        Self::with_codec(gpu, dim, metric, params, FlatCodec::new(dim, metric)?, scratch_bytes)
    }
}

impl<C: GpuCodec> GpuIvf<C> {
    /// An empty, untrained index whose lists hold `codec`'s codes (an untrained
    /// `PqCodec::new(dim, metric, m, 8)`, or a trained one to keep its codebooks: training
    /// learns the codec only when it needs it).
    ///
    /// # Errors
    /// Bad parameters (vq-ivf's checks), an HNSW coarse quantizer or a codec the GPU does not
    /// scan ([`Error::Unsupported`]).
    pub fn with_codec(
        gpu: &Arc<Gpu>,
        dim: usize,
        metric: Metric,
        params: IvfParams,
        codec: C,
        scratch_bytes: Option<usize>,
    ) -> Result<Self> {
        let codec = codec.host_copy(metric)?;
        // vq-ivf checks the parameters, the dimension and the codec's shape.
        IvfIndex::new(dim, metric, params.clone(), codec.clone())?;
        if params.coarse != CoarseKind::Flat {
            return Err(Error::Unsupported { what: "an HNSW coarse quantizer on the GPU (use IVF{nlist},…)" });
        }
        codec.check_gpu(dim, gpu)?;
        Ok(Self {
            gpu: gpu.clone(),
            dim,
            metric,
            params,
            scratch_bytes,
            codec,
            coarse: None,
            centroids: Vec::new(),
            tables: None,
            list_ids: Vec::new(),
            lists: None,
            ids: IdTracker::default(),
        })
    }

    /// A copy of `cpu` on `gpu`: its centroids, codec, lists (in list order) and ids.
    ///
    /// # Errors
    /// An HNSW coarse quantizer or a codec the GPU does not scan ([`Error::Unsupported`]);
    /// device errors (out of memory).
    pub fn from_cpu(gpu: &Arc<Gpu>, cpu: &IvfIndex<C>, scratch_bytes: Option<usize>) -> Result<Self> {
        // Without the CPU's precomputed tables (IVF-PQ's nlist × m × 256 terms), not a clone.
        let codec = cpu.codec().host_copy(cpu.metric())?;
        let mut index = Self::with_codec(gpu, cpu.dim(), cpu.metric(), cpu.params().clone(), codec, scratch_bytes)?;
        if cpu.is_trained() {
            index.set_centroids(cpu.centroids())?;
            let mut codes = Vec::with_capacity(cpu.len() * index.code_size());
            for l in 0..cpu.params().nlist {
                // Trained: every list exists.
                codes.extend_from_slice(cpu.list_codes(l).unwrap_or_default());
                index.list_ids[l] = cpu.list_ids(l).unwrap_or_default().to_vec();
            }
            index.upload(&codes)?;
        }
        index.ids = IdTracker::from_ids(index.list_ids.iter().flatten().copied(), index.len(), cpu.next_id());
        Ok(index)
    }

    /// The CPU index of the same centroids, codec, lists, ids and next id.
    ///
    /// # Errors
    /// Device errors while copying back.
    pub fn to_cpu(&self) -> Result<IvfIndex<C>> {
        if self.coarse.is_none() {
            return Ok(IvfIndex::new(self.dim, self.metric, self.params.clone(), self.codec.clone())?);
        }
        let codes = match &self.lists {
            Some(l) => self.gpu.stream().clone_dtoh(&l.codes).map_err(Error::cuda("cuMemcpyDtoH"))?,
            None => Vec::new(),
        };
        let cs = self.code_size();
        let mut rows = codes.chunks_exact(cs.max(1));
        let lists = self
            .list_ids
            .iter()
            .map(|ids| (ids.clone(), rows.by_ref().take(ids.len()).flatten().copied().collect()))
            .collect();
        Ok(IvfIndex::from_lists(
            self.dim,
            self.metric,
            self.params.clone(),
            self.codec.clone(),
            self.centroids.clone(),
            lists,
            self.ids.added(),
        )?)
    }

    /// The vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The parameters (`nlist`, default `nprobe`, training).
    pub fn params(&self) -> &IvfParams {
        &self.params
    }

    /// Sets the default `nprobe`: at least 1, at most [`MAX_K`] (the list selection's
    /// limit), as a search's own `nprobe`.
    pub fn set_nprobe(&mut self, nprobe: usize) -> Result<()> {
        if nprobe == 0 {
            return Err(vq_ivf::Error::ZeroNprobe.into());
        }
        if nprobe > MAX_K {
            return Err(Error::TooLarge { what: "nprobe", got: nprobe, max: MAX_K });
        }
        self.params.nprobe = nprobe;
        Ok(())
    }

    /// The codec (trained once the index is).
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// Whether the centroids are set.
    pub fn is_trained(&self) -> bool {
        self.coarse.is_some()
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.list_ids.iter().map(Vec::len).sum()
    }

    /// Whether no vector is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of list `list`, in list order (`None` past `nlist` or before training).
    pub fn list_ids(&self, list: usize) -> Option<&[u64]> {
        self.list_ids.get(list).map(Vec::as_slice)
    }

    /// The first id the next [`add`](GpuIvf::add) hands out.
    pub fn next_id(&self) -> u64 {
        self.ids.added()
    }

    fn code_size(&self) -> usize {
        self.codec.quantizer().code_size()
    }

    /// Device bytes of `n` list entries and the list offsets.
    fn list_bytes(&self, n: usize) -> usize {
        n * (self.code_size() + 8) + (self.list_ids.len() + 1) * 8
    }

    /// Device bytes held: centroids (and norms), the codec's tables, codes, ids and list
    /// offsets.
    pub fn memory_usage(&self) -> usize {
        self.coarse.as_ref().map_or(0, GpuFlat::memory_usage)
            + self.tables.as_ref().map_or(0, |t| t.len() * 4)
            + self.list_bytes(self.len())
    }

    /// Learns the centroids (and the codec, when it needs training) from `data` with vq-ivf's
    /// training, k-means running on this index's GPU ([`GpuAssigner`](crate::GpuAssigner):
    /// both Lloyd steps), and uploads them. Only while empty.
    ///
    /// # Errors
    /// vq-ivf's training errors (too few points, bad input); [`Error::Unsupported`] when the
    /// index holds vectors; device errors.
    pub fn train(&mut self, data: &[f32]) -> Result<()> {
        if !self.is_empty() {
            return Err(Error::Unsupported { what: "training an index that holds vectors" });
        }
        let mut cpu = IvfIndex::new(self.dim, self.metric, self.params.clone(), self.codec.clone())?;
        cpu.train_with_assigner(data, &crate::GpuAssigner::new(&self.gpu))?;
        self.codec = cpu.codec().host_copy(self.metric)?;
        self.set_centroids(cpu.centroids())
    }

    /// Uploads trained centroids and the codec's tables, and empties the lists.
    fn set_centroids(&mut self, centroids: &[f32]) -> Result<()> {
        let options = GpuFlatOptions { scratch_bytes: self.scratch_bytes, ..GpuFlatOptions::default() };
        let mut coarse = GpuFlat::new(&self.gpu, self.dim, coarse_metric(self.metric), options)?;
        coarse.add(centroids)?;
        let tables = self.codec.device_tables();
        self.tables = match tables.is_empty() {
            true => None,
            false => Some(self.gpu.stream().clone_htod(&tables).map_err(Error::cuda("cuMemcpyHtoD"))?),
        };
        self.coarse = Some(coarse);
        self.centroids = centroids.to_vec();
        self.list_ids = vec![Vec::new(); self.params.nlist];
        self.lists = None;
        Ok(())
    }

    /// Uploads `codes` (every list's entries, list after list, as `list_ids` counts them).
    fn upload(&mut self, codes: &[u8]) -> Result<()> {
        let n = self.len();
        debug_assert_eq!(codes.len(), n * self.code_size());
        if n == 0 {
            self.lists = None;
            return Ok(());
        }
        self.gpu.bind()?;
        self.gpu.check_fits("IVF lists", self.list_bytes(n))?;
        let codes = self.gpu.stream().clone_htod(codes).map_err(Error::cuda("cuMemcpyHtoD"))?;
        self.lists = Some(self.device_lists(codes)?);
        Ok(())
    }

    /// The device lists of `codes` (every list's entries, list after list, as `list_ids`
    /// counts them): the ids and list offsets uploaded from `list_ids`.
    fn device_lists(&self, codes: CudaSlice<u8>) -> Result<DeviceLists> {
        let stream = self.gpu.stream();
        let ids: Vec<u64> = self.list_ids.iter().flatten().copied().collect();
        let sizes: Vec<usize> = self.list_ids.iter().map(Vec::len).collect();
        Ok(DeviceLists {
            codes,
            ids: stream.clone_htod(&ids).map_err(Error::cuda("cuMemcpyHtoD"))?,
            offsets: stream.clone_htod(&list_offsets(&sizes)).map_err(Error::cuda("cuMemcpyHtoD"))?,
        })
    }

    /// Adds `data` under ids continuing from [`next_id`](GpuIvf::next_id).
    ///
    /// # Errors
    /// As [`add_with_ids`](GpuIvf::add_with_ids).
    pub fn add(&mut self, data: &[f32]) -> Result<()> {
        let ids = self.ids.next_ids(data.len() / self.dim)?;
        self.add_with_ids(data, &ids)
    }

    /// Adds `data` under `ids` (one per row, none present), each in the list of its nearest
    /// centroid (found on the device) and encoded on the host as vq-ivf encodes it. The lists
    /// are rebuilt on the device with the new entries appended (a copy of the old ones), so
    /// add in large batches.
    ///
    /// # Errors
    /// Input errors (nothing added), an untrained index, vq-ivf's `IdCount` / `DuplicateId`
    /// (as [`Error::Ivf`]), device errors.
    pub fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        let rows = prepare_rows("vectors", data, self.dim, self.metric)?;
        let Some(coarse) = &self.coarse else { return Err(vq_ivf::Error::NotTrained { index: self.name() }.into()) };
        if ids.len() != rows.len() {
            return Err(vq_ivf::Error::IdCount { ids: ids.len(), vectors: rows.len() }.into());
        }
        self.ids.check_new(ids)?;
        if rows.is_empty() {
            return Ok(());
        }
        let found = coarse.search(rows.as_slice(), 1)?;
        let labels: Vec<u32> = found.ids().iter().map(|&l| u32::try_from(l).unwrap_or(u32::MAX)).collect();
        if labels.iter().any(|&l| l as usize >= self.params.nlist) {
            return Err(Error::Unsupported { what: "a vector the coarse search found no list for" });
        }
        let codes = vq_ivf::encode_in_lists(&self.codec, &self.centroids, self.dim, rows.as_slice(), &labels)?;
        // New entries grouped by list (stable: insertion order within a list).
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| labels[i]);
        let cs = self.code_size();
        let old_sizes: Vec<usize> = self.list_ids.iter().map(Vec::len).collect();
        let old_offsets = list_offsets(&old_sizes);
        let mut new_codes = Vec::with_capacity(codes.len());
        for &i in &order {
            new_codes.extend_from_slice(&codes[i * cs..(i + 1) * cs]);
            self.list_ids[labels[i] as usize].push(ids[i]);
        }
        let result = self.grow(&old_offsets, &new_codes);
        if result.is_err() {
            // Nothing was added: drop the ids recorded above.
            for (l, ids) in self.list_ids.iter_mut().enumerate() {
                ids.truncate(old_sizes[l]);
            }
            return result;
        }
        self.ids.insert(ids);
        Ok(())
    }

    /// Rebuilds the device lists as the old ones (`old_offsets`) with `new_codes` (grouped by
    /// list, as `list_ids` now counts them past the old sizes) appended to each list.
    fn grow(&mut self, old_offsets: &[u64], new_codes: &[u8]) -> Result<()> {
        let cs = self.code_size();
        let n = self.len();
        self.gpu.bind()?;
        self.gpu.check_fits("IVF lists", self.list_bytes(n))?;
        let stream = self.gpu.stream().clone();
        let sizes: Vec<usize> = self.list_ids.iter().map(Vec::len).collect();
        let offsets = list_offsets(&sizes);
        // SAFETY: every element is written below: each list's old entries by a device copy,
        // its new entries from the host (old and new sizes add up to the list's new size).
        let mut codes = unsafe { stream.alloc::<u8>(n * cs) }.map_err(Error::cuda("cuMemAlloc"))?;
        let mut at = 0;
        for l in 0..self.list_ids.len() {
            let (old, new) = (old_offsets[l] as usize..old_offsets[l + 1] as usize, offsets[l] as usize);
            if let (Some(prev), false) = (&self.lists, old.is_empty()) {
                let src = prev.codes.slice(old.start * cs..old.end * cs);
                let mut dst = codes.slice_mut(new * cs..(new + old.len()) * cs);
                stream.memcpy_dtod(&src, &mut dst).map_err(Error::cuda("cuMemcpyDtoD"))?;
            }
            let added = sizes[l] - old.len();
            if added > 0 {
                let start = (new + old.len()) * cs;
                let mut dst = codes.slice_mut(start..start + added * cs);
                stream.memcpy_htod(&new_codes[at..at + added * cs], &mut dst).map_err(Error::cuda("cuMemcpyHtoD"))?;
                at += added * cs;
            }
        }
        self.lists = Some(self.device_lists(codes)?);
        stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))
    }

    /// Removes the entries of `ids` (ids not held are ignored); returns how many were removed.
    ///
    /// # Errors
    /// As [`remove_where`](GpuIvf::remove_where).
    pub fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        let set: HashSet<u64> = ids.iter().copied().collect();
        self.remove_where(|id| set.contains(&id))
    }

    /// Removes every entry whose id `remove` accepts (Faiss' `remove_ids` with an
    /// `IDSelector`); returns how many were removed. The entries that stay keep their lists
    /// and their order, as vq-ivf's `remove_where` leaves them, so `to_cpu` equals the CPU
    /// index after the same removal. On the device: one copy per run of kept entries into new
    /// code arrays, the ids and list offsets uploaded from the host's; the old lists are freed
    /// once the new ones are complete, so a failure changes nothing.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] when the kept lists do not fit beside the old ones; device errors.
    pub fn remove_where(&mut self, remove: impl Fn(u64) -> bool) -> Result<usize> {
        let (keep, kept_ids, gone) = split_removed(&self.list_ids, remove);
        let removed = gone.len();
        let Some(old) = self.lists.as_ref().filter(|_| removed > 0) else { return Ok(0) };
        let runs = kept_runs(&keep);
        self.gpu.bind()?;
        self.gpu.check_fits("kept IVF lists", self.list_bytes(keep.len() - removed))?;
        let codes = compact(self.gpu.stream(), &old.codes, self.code_size(), &runs)?;
        let old_ids = std::mem::replace(&mut self.list_ids, kept_ids);
        let lists = match codes {
            Some(codes) => self.device_lists(codes).map(Some),
            None => Ok(None),
        };
        match lists {
            Ok(lists) => self.lists = lists,
            Err(e) => {
                self.list_ids = old_ids;
                return Err(e);
            }
        }
        self.ids.remove(&gone);
        Ok(removed)
    }

    fn name(&self) -> String {
        format!("IVF{},{} (GPU)", self.params.nlist, self.codec.quantizer().name())
    }

    /// The `k` best matches of each query over its `nprobe` nearest lists (`None`: the
    /// index's default), as vq-ivf's search with the same `nprobe` (within f32 rounding).
    ///
    /// # Errors
    /// `k` = 0, `nprobe` = 0 or bad queries; an untrained index; [`Error::KTooLarge`] for `k`
    /// or [`Error::TooLarge`] for `nprobe` above [`MAX_K`]; device errors.
    pub fn search(&self, queries: &[f32], k: usize, nprobe: Option<usize>) -> Result<Neighbors> {
        self.search_masked(queries, k, nprobe, None)
    }

    /// [`search`](Self::search) among the entries whose id `filter` accepts, as vq-ivf's
    /// filtered search: the probed lists' accepted entries only, the probe widened to
    /// `nprobe / √p` lists for a fraction `p` passing and doubled for queries that find fewer
    /// than `k` ([`vq_ivf::filter`]; both at most [`MAX_K`] lists here). The filter is asked
    /// once per entry of the index per call, on the host, and its answers go to the device as
    /// a bit per entry (`len() / 8` bytes); the scan kernels give rejected entries the padding
    /// key.
    ///
    /// # Errors
    /// As [`search`](Self::search).
    pub fn search_filtered(
        &self,
        queries: &[f32],
        k: usize,
        nprobe: Option<usize>,
        filter: &dyn IdFilter,
    ) -> Result<Neighbors> {
        let mask = RowMask::new(filter, self.list_ids.iter().flatten().copied());
        let requested = self.resolved_nprobe(nprobe)?;
        let pass_rate = vq_ivf::filter::pass_rate(self.list_ids.iter().map(Vec::as_slice), filter);
        let widening = (requested, self.params.nlist.min(MAX_K), pass_rate);
        let rows = vq_ivf::filter::filtered_rows(queries, self.dim, k, widening, |q, nprobe| {
            let found = self.search_masked(q, k, Some(nprobe), Some(&mask))?;
            Ok::<_, Error>(
                found.iter().map(|(ids, scores)| ids.iter().copied().zip(scores.iter().copied()).collect()).collect(),
            )
        })?;
        Ok(Neighbors::from_rows(k, self.metric, rows)?)
    }

    /// The lists a search probes for `nprobe` (`None`: the index's), at most `nlist`; 0 and
    /// more than [`MAX_K`] lists are errors (a filtered search widens within that bound).
    fn resolved_nprobe(&self, nprobe: Option<usize>) -> Result<usize> {
        match nprobe.unwrap_or(self.params.nprobe) {
            0 => Err(vq_ivf::Error::ZeroNprobe.into()),
            p if p.min(self.params.nlist) > MAX_K => Err(Error::TooLarge { what: "nprobe", got: p, max: MAX_K }),
            p => Ok(p.min(self.params.nlist)),
        }
    }

    fn search_masked(
        &self,
        queries: &[f32],
        k: usize,
        nprobe: Option<usize>,
        mask: Option<&RowMask>,
    ) -> Result<Neighbors> {
        let Some(coarse) = &self.coarse else { return Err(vq_ivf::Error::NotTrained { index: self.name() }.into()) };
        crate::flat::check_k(k)?;
        let nprobe = self.resolved_nprobe(nprobe)?;
        let rows = prepare_rows("queries", queries, self.dim, self.metric)?;
        let nq = rows.len();
        let Some(lists) = &self.lists else {
            return crate::plan::neighbors_from_keys(
                &vec![f32::INFINITY; nq * k],
                &vec![u64::MAX; nq * k],
                k,
                self.metric,
            );
        };
        if nq == 0 {
            return Ok(Neighbors::from_rows(k, self.metric, Vec::<Vec<(u64, f32)>>::new())?);
        }
        let found = coarse.search(rows.as_slice(), nprobe)?;
        let probes: Vec<u32> = found.ids().iter().map(|&l| u32::try_from(l).unwrap_or(u32::MAX)).collect();
        // What each probed list adds to its entries' keys: the negated coarse inner product
        // for inner-product IVF-PQ (codes of residuals); nothing otherwise.
        let probe_base: Vec<f32> = if self.metric != Metric::L2 && self.codec.by_residual() {
            found.scores().iter().map(|&s| if s.is_finite() { -s } else { 0.0 }).collect()
        } else {
            vec![0.0; probes.len()]
        };
        let sizes: Vec<usize> = self.list_ids.iter().map(Vec::len).collect();
        let offsets = candidate_offsets(&probes, nprobe, &sizes);
        let max_cand = offsets.chunks_exact(nprobe + 1).map(|o| o[nprobe]).max().unwrap_or(0) as usize;
        self.gpu.bind()?;
        let budget = match self.scratch_bytes {
            Some(b) => b,
            None => (self.gpu.memory_info()?.0 / 2).min(1 << 30),
        };
        let plan = TilePlan::with_costs(nq, max_cand, scan_query_bytes(self.dim, k, nprobe), 12, budget)?;
        let probed =
            Probed { queries: rows.as_slice(), probes: &probes, probe_base: &probe_base, offsets: &offsets, nprobe };
        let mut backend = ScanBackend::new(self, lists, probed, plan, k, mask)?;
        search_tiled(&mut backend, nq, max_cand, k, self.metric, plan)
    }
}

/// Device bytes per query of a batch beside the candidate tile: the query, its probes, their
/// base keys and candidate offsets, its running top-k.
fn scan_query_bytes(dim: usize, k: usize, nprobe: usize) -> usize {
    dim * 4 + nprobe * 8 + (nprobe + 1) * 8 + k * 12
}

/// A search's queries and what the coarse search found for them, on the host.
struct Probed<'a> {
    /// Every query (prepared rows).
    queries: &'a [f32],
    /// `[nq][nprobe]` lists (`u32::MAX` past the last: padding).
    probes: &'a [u32],
    /// `[nq][nprobe]` what each probe adds to its entries' keys.
    probe_base: &'a [f32],
    /// `[nq][nprobe + 1]` candidate offsets.
    offsets: &'a [u64],
    nprobe: usize,
}

/// Everything one tile's scan launch reads and writes (device buffers of the loaded batch).
pub struct ScanLaunch<'a> {
    gpu: &'a Gpu,
    dim: usize,
    metric: Metric,
    centroids: &'a CudaSlice<f32>,
    tables: Option<&'a CudaSlice<f32>>,
    lists: &'a DeviceLists,
    queries: &'a CudaSlice<f32>,
    probes: &'a CudaSlice<u32>,
    probe_base: &'a CudaSlice<f32>,
    offsets: &'a CudaSlice<u64>,
    /// The search's entry mask: its device address, or null (0) for no filter.
    allowed: u64,
    nq: usize,
    nprobe: usize,
    tile: Range<usize>,
    keys: &'a mut CudaSlice<f32>,
    cand_ids: &'a mut CudaSlice<u64>,
}

impl sealed::DeviceCodec for FlatCodec {
    fn check_gpu(&self, _dim: usize, _gpu: &Gpu) -> Result<()> {
        Ok(())
    }

    fn host_copy(&self, _metric: Metric) -> Result<Self> {
        Ok(self.clone())
    }

    fn device_tables(&self) -> Vec<f32> {
        Vec::new()
    }

    fn launch_scan(&self, s: &mut ScanLaunch<'_>) -> Result<()> {
        let stream = s.gpu.stream();
        let (nq, dim, ntile) = (s.nq as u32, s.dim as u32, s.tile.len() as u32);
        let (nprobe, tile_start, l2) = (s.nprobe as u32, s.tile.start as u64, i32::from(s.metric == Metric::L2));
        let cfg = LaunchConfig {
            grid_dim: (ntile.div_ceil(SCAN_WARPS), nq, 1),
            block_dim: (32 * SCAN_WARPS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut args = stream.launch_builder(&s.gpu.ivf_scan);
        #[rustfmt::skip]
        push_args!(args, IVF_SCAN_ARGS; s.queries, &nq, &dim, &s.lists.codes, &s.lists.ids, &s.allowed,
            &s.lists.offsets, s.probes, s.offsets, &nprobe, &tile_start, &ntile, &l2, &mut *s.keys, &mut *s.cand_ids);
        // SAFETY: grid (ceil(ntile / SCAN_WARPS), batch), one warp per (query, candidate); it
        // reads the batch's queries, probes ([batch][nprobe], lists < nlist or padding, whose
        // candidate range is empty) and candidate offsets ([batch][nprobe + 1], prefix sums of
        // those lists' sizes), so every row it locates is below the lists' length; the codes
        // are the rows' f32 values (FlatCodec's little-endian bytes, read as the float* the
        // kernel takes: the allocation is aligned and each row starts at a multiple of 4
        // bytes). It writes keys and ids [batch][ntile] inside the buffers
        // (query_batch * base_tile). `allowed` is null or a bit per row of the lists (the
        // search's mask). Types match vq_ivf_scan.
        unsafe { args.launch(cfg) }.map(|_| ()).map_err(Error::cuda("launch vq_ivf_scan"))
    }
}

/// `vq_ivfsq_scan`'s `kind` for a scalar quantizer type.
fn sq_kind(sq_type: SqType) -> i32 {
    match sq_type {
        SqType::SQ8 => SQ_KIND_SQ8,
        SqType::SQ6 => SQ_KIND_SQ6,
        SqType::SQ4 | SqType::SQ4U => SQ_KIND_SQ4,
        SqType::FP16 => SQ_KIND_FP16,
        SqType::BF16 => SQ_KIND_BF16,
    }
}

impl sealed::DeviceCodec for SqCodec {
    /// Every scalar quantizer vq-quant has.
    fn check_gpu(&self, _dim: usize, _gpu: &Gpu) -> Result<()> {
        Ok(())
    }

    fn host_copy(&self, _metric: Metric) -> Result<Self> {
        Ok(self.clone())
    }

    /// The integer types' per-dimension minimums, then their steps (`dim` each; SQ4U's one
    /// range repeated per dimension); none for the float types.
    fn device_tables(&self) -> Vec<f32> {
        let q = self.quantizer();
        let (vmin, step) = q.ranges();
        if vmin.is_empty() {
            return Vec::new();
        }
        let dim = q.dim();
        let per_dim = |r: &[f32]| -> Vec<f32> { if r.len() == dim { r.to_vec() } else { vec![r[0]; dim] } };
        [per_dim(vmin), per_dim(step)].concat()
    }

    fn launch_scan(&self, s: &mut ScanLaunch<'_>) -> Result<()> {
        let q = self.quantizer();
        let kind = sq_kind(q.sq_type());
        let ranges = match (q.sq_type().needs_training(), s.tables) {
            (true, Some(t)) => t,
            (true, None) => return Err(Error::Unsupported { what: "an untrained scalar quantizer" }),
            // The float types read no ranges; the kernel still takes a pointer.
            (false, _) => s.centroids,
        };
        let stream = s.gpu.stream();
        let (nq, dim, ntile, code_size) = (s.nq as u32, s.dim as u32, s.tile.len() as u32, q.code_size() as u32);
        let (nprobe, tile_start, l2) = (s.nprobe as u32, s.tile.start as u64, i32::from(s.metric == Metric::L2));
        let cfg = LaunchConfig {
            grid_dim: (ntile.div_ceil(SCAN_WARPS), nq, 1),
            block_dim: (32 * SCAN_WARPS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut args = stream.launch_builder(&s.gpu.ivfsq_scan);
        #[rustfmt::skip]
        push_args!(args, IVFSQ_SCAN_ARGS; s.queries, &nq, &dim, s.centroids, ranges, &kind, &code_size, &s.lists.codes,
            &s.lists.ids, &s.allowed, &s.lists.offsets, s.probes, s.probe_base, s.offsets, &nprobe, &tile_start, &ntile, &l2,
            &mut *s.keys, &mut *s.cand_ids);
        // SAFETY: as vq_ivf_scan's launch (FlatCodec): one warp per (query, candidate), every
        // located row below the lists' length, keys and ids [batch][ntile] inside their
        // buffers. Each row's code is code_size bytes, and the kernel reads only bytes of its
        // dim components (SQ8: dim; SQ6: ceil(6 dim / 8), the next byte only when a component
        // crosses into it; SQ4/SQ4U: ceil(dim / 2); the float types: 2 dim); the centroid of the
        // located probe's list (< nlist, nlist x dim uploaded); the integer types' ranges are
        // 2 * dim floats (vmin then step, device_tables); the float types read none (the
        // pointer passed is the centroids'). Types match vq_ivfsq_scan.
        unsafe { args.launch(cfg) }.map(|_| ()).map_err(Error::cuda("launch vq_ivfsq_scan"))
    }
}

/// The IVF-PQ scan's dynamic shared memory: the `m × 256` table and the `dim` residual.
fn pq_scan_shared_bytes(m: usize, dim: usize) -> usize {
    (m * 256 + dim) * 4
}

impl sealed::DeviceCodec for PqCodec {
    /// 8-bit codes, and a table that fits the shared memory `gpu`'s scan kernel may take.
    fn check_gpu(&self, dim: usize, gpu: &Gpu) -> Result<()> {
        let q = self.quantizer();
        if q.nbits() != 8 {
            return Err(Error::Unsupported { what: "PQ codes other than 8 bits on the GPU (IVF…,PQ{m})" });
        }
        let (need, max) = (pq_scan_shared_bytes(q.m(), dim), gpu.pq_scan_max_shared());
        if need > max {
            return Err(Error::TooLarge {
                what: "PQ lookup table (m × 256 + dim floats of shared memory, bytes)",
                got: need,
                max,
            });
        }
        Ok(())
    }

    /// Without the precomputed L2 table (`nlist × m × 256` floats): the GPU builds each
    /// list's table itself.
    fn host_copy(&self, metric: Metric) -> Result<Self> {
        Ok(PqCodec::from_quantizer(metric, self.quantizer().clone())?)
    }

    fn device_tables(&self) -> Vec<f32> {
        if self.quantizer().is_trained() { self.quantizer().centroids().to_vec() } else { Vec::new() }
    }

    fn launch_scan(&self, s: &mut ScanLaunch<'_>) -> Result<()> {
        let Some(codebooks) = s.tables else { return Err(Error::Unsupported { what: "an untrained PQ codec" }) };
        let stream = s.gpu.stream();
        let (nq, dim, ntile, m) = (s.nq as u32, s.dim as u32, s.tile.len() as u32, self.quantizer().m() as u32);
        let (nprobe, tile_start, l2) = (s.nprobe as u32, s.tile.start as u64, i32::from(s.metric == Metric::L2));
        let cfg = LaunchConfig {
            grid_dim: (nprobe, nq, 1),
            block_dim: (PQ_SCAN_THREADS, 1, 1),
            shared_mem_bytes: pq_scan_shared_bytes(m as usize, s.dim) as u32,
        };
        let mut args = stream.launch_builder(&s.gpu.ivfpq_scan);
        #[rustfmt::skip]
        push_args!(args, IVFPQ_SCAN_ARGS; s.queries, &nq, &dim, s.centroids, codebooks, &m, &s.lists.codes,
            &s.lists.ids, &s.allowed, &s.lists.offsets, s.probes, s.probe_base, s.offsets, &nprobe, &tile_start, &ntile, &l2,
            &mut *s.keys, &mut *s.cand_ids);
        // SAFETY: grid (nprobe, batch), one block per (probe, query). A block reads its query
        // (dim floats), its probe's list (< nlist: a padding probe has an empty candidate
        // range and is never read) and that list's centroid (nlist x dim uploaded), the
        // codebooks (m x 256 x dim/m floats: 8-bit codes, checked by check_gpu), and the
        // list's codes and ids at rows list_offsets[list] + (pos - offsets[p]) for its
        // candidates pos, all below the lists' length (the offsets are prefix sums of the
        // lists' sizes); code bytes index the 256 entries of a sub-table. It writes keys and
        // ids [batch][ntile] for the tile's positions (each exactly once across the grid,
        // the last probe's block also the padding past the query's last candidate), inside
        // the buffers (query_batch * base_tile). Dynamic shared memory: m * 256 + dim floats,
        // within what the kernel was opted in to (check_gpu checked it against the device's
        // maximum at construction, Gpu::new set the kernel's limit to it). `allowed` is null or a bit per row of the
        // lists. Types match vq_ivfpq_scan.
        unsafe { args.launch(cfg) }.map(|_| ()).map_err(Error::cuda("launch vq_ivfpq_scan"))
    }
}

/// The device side of a list scan: scratch for one query batch.
struct ScanBackend<'a, C: GpuCodec> {
    index: &'a GpuIvf<C>,
    centroids: &'a CudaSlice<f32>,
    lists: &'a DeviceLists,
    probed: Probed<'a>,
    k: usize,
    batch: usize,
    /// The batch's most candidates: tiles past it are all padding and skipped.
    batch_max: usize,
    queries: CudaSlice<f32>,
    d_probes: CudaSlice<u32>,
    d_probe_base: CudaSlice<f32>,
    d_offsets: CudaSlice<u64>,
    keys: CudaSlice<f32>,
    cand_ids: CudaSlice<u64>,
    run_keys: CudaSlice<f32>,
    run_ids: CudaSlice<u64>,
    /// The search's entry mask (`None`: no filter).
    allowed: Option<CudaSlice<u32>>,
}

impl<'a, C: GpuCodec> ScanBackend<'a, C> {
    fn new(
        index: &'a GpuIvf<C>,
        lists: &'a DeviceLists,
        probed: Probed<'a>,
        plan: TilePlan,
        k: usize,
        mask: Option<&RowMask>,
    ) -> Result<Self> {
        let stream = index.gpu.stream();
        let (qb, np) = (plan.query_batch, probed.nprobe);
        let alloc = || Error::cuda("cuMemAlloc");
        let centroids = index
            .coarse
            .as_ref()
            .and_then(GpuFlat::base_f32)
            .ok_or(Error::Unsupported { what: "an IVF index whose centroids are not f32 on the device" })?;
        Ok(Self {
            index,
            centroids,
            lists,
            probed,
            k,
            batch: 0,
            batch_max: 0,
            queries: stream.alloc_zeros::<f32>(qb * index.dim).map_err(alloc())?,
            d_probes: stream.alloc_zeros::<u32>(qb * np).map_err(alloc())?,
            d_probe_base: stream.alloc_zeros::<f32>(qb * np).map_err(alloc())?,
            d_offsets: stream.alloc_zeros::<u64>(qb * (np + 1)).map_err(alloc())?,
            keys: stream.alloc_zeros::<f32>(qb * plan.base_tile).map_err(alloc())?,
            cand_ids: stream.alloc_zeros::<u64>(qb * plan.base_tile).map_err(alloc())?,
            run_keys: stream.alloc_zeros::<f32>(qb * k).map_err(alloc())?,
            run_ids: stream.alloc_zeros::<u64>(qb * k).map_err(alloc())?,
            allowed: upload_mask(stream, mask)?,
        })
    }
}

impl<C: GpuCodec> TileBackend for ScanBackend<'_, C> {
    fn begin_batch(&mut self, batch: Range<usize>, k: usize) -> Result<()> {
        debug_assert_eq!(k, self.k);
        let stream = self.index.gpu.stream().clone();
        let (np, dim, cuda) = (self.probed.nprobe, self.index.dim, Error::cuda);
        self.batch = batch.len();
        let offsets = &self.probed.offsets[batch.start * (np + 1)..batch.end * (np + 1)];
        self.batch_max = offsets.chunks_exact(np + 1).map(|o| o[np]).max().unwrap_or(0) as usize;
        let queries = &self.probed.queries[batch.start * dim..batch.end * dim];
        stream.memcpy_htod(queries, &mut self.queries.slice_mut(..queries.len())).map_err(cuda("cuMemcpyHtoD"))?;
        let probes = &self.probed.probes[batch.start * np..batch.end * np];
        stream.memcpy_htod(probes, &mut self.d_probes.slice_mut(..probes.len())).map_err(cuda("cuMemcpyHtoD"))?;
        let base = &self.probed.probe_base[batch.start * np..batch.end * np];
        stream.memcpy_htod(base, &mut self.d_probe_base.slice_mut(..base.len())).map_err(cuda("cuMemcpyHtoD"))?;
        stream.memcpy_htod(offsets, &mut self.d_offsets.slice_mut(..offsets.len())).map_err(cuda("cuMemcpyHtoD"))?;
        let n = self.batch * self.k;
        stream.memcpy_htod(&vec![f32::INFINITY; n], &mut self.run_keys.slice_mut(..n)).map_err(cuda("cuMemcpyHtoD"))?;
        stream.memcpy_htod(&vec![u64::MAX; n], &mut self.run_ids.slice_mut(..n)).map_err(cuda("cuMemcpyHtoD"))?;
        Ok(())
    }

    fn fold_tile(&mut self, tile: Range<usize>) -> Result<()> {
        if tile.start >= self.batch_max {
            return Ok(());
        }
        let ntile = tile.len() as u32;
        let stream = self.index.gpu.stream().clone();
        let (allowed, _read) = device_ptr_or_null(self.allowed.as_ref(), &stream);
        self.index.codec.launch_scan(&mut ScanLaunch {
            gpu: &self.index.gpu,
            dim: self.index.dim,
            metric: self.index.metric,
            centroids: self.centroids,
            tables: self.index.tables.as_ref(),
            lists: self.lists,
            queries: &self.queries,
            probes: &self.d_probes,
            probe_base: &self.d_probe_base,
            offsets: &self.d_offsets,
            allowed,
            nq: self.batch,
            nprobe: self.probed.nprobe,
            tile,
            keys: &mut self.keys,
            cand_ids: &mut self.cand_ids,
        })?;
        let nq = self.batch as u32;
        let cfg = LaunchConfig {
            grid_dim: (nq, 1, 1),
            block_dim: (SELECT_THREADS, 1, 1),
            shared_mem_bytes: select_shared_bytes(self.k) as u32,
        };
        let (id0, null, k, kp) = (0u64, 0u64, self.k as u32, select_capacity(self.k) as u32);
        let mut args = stream.launch_builder(&self.index.gpu.select);
        #[rustfmt::skip]
        push_args!(args, SELECT_ARGS; &self.keys, &null, &null, &nq, &ntile, &id0, &self.cand_ids, &null, &k, &kp,
            &MODE_KEYS, &mut self.run_keys, &mut self.run_ids);
        // SAFETY: as in GpuFlat's fold, with MODE_KEYS: the kernel reads ntile keys and ids per
        // query (just written by the scan, every position of the tile, filtered entries
        // already padding) and no norms and no mask (the three null pointers are never read
        // in this mode); it rewrites the query's k running entries.
        unsafe { args.launch(cfg) }.map(|_| ()).map_err(Error::cuda("launch vq_select_tile"))
    }

    fn finish_batch(&mut self, keys: &mut [f32], ids: &mut [u64]) -> Result<()> {
        let stream = self.index.gpu.stream();
        let n = self.batch * self.k;
        stream.memcpy_dtoh(&self.run_keys.slice(..n), keys).map_err(Error::cuda("cuMemcpyDtoH"))?;
        stream.memcpy_dtoh(&self.run_ids.slice(..n), ids).map_err(Error::cuda("cuMemcpyDtoH"))?;
        stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vq_ivf::IvfSearch;

    /// What a twin scan computes per candidate: one of the device's scan kernels.
    enum TwinKernel<'a> {
        /// `vq_ivf_scan`: `locate` per position, the exact f32 key (exact on small integers).
        Flat { vectors: &'a [f32], l2: bool },
        /// `vq_ivfsq_scan`: `locate` per position, each component decoded as the kernel does
        /// (`sq_component`), residual keys plus the probe's base.
        Sq {
            kind: i32,
            codes: &'a [u8],
            code_size: usize,
            ranges: &'a [f32],
            centroids: &'a [f32],
            probe_base: &'a [f32],
            l2: bool,
        },
        /// `vq_ivfpq_scan`: per probe, the block's positions (`pq_block_ranges`) and table,
        /// summed in the kernel's order with its fused multiply-adds.
        Pq { codes: &'a [u8], m: usize, codebooks: &'a [f32], centroids: &'a [f32], probe_base: &'a [f32], l2: bool },
    }

    /// The CPU twin of `ScanBackend`: the same candidate layout and positions, the kernel's
    /// keys and the selection's tie rule.
    struct CpuScan<'a> {
        kernel: TwinKernel<'a>,
        ids: &'a [u64],
        lists: &'a [u64],
        probes: &'a [u32],
        offsets: &'a [u64],
        nprobe: usize,
        dim: usize,
        batch: Range<usize>,
        /// Every query of the search.
        queries: &'a [f32],
        k: usize,
        running: Vec<Vec<(f32, u64)>>,
        /// The search's filter as the kernels' `allowed` (`None`: every entry).
        mask: Option<&'a RowMask>,
    }

    impl CpuScan<'_> {
        /// The row of candidate `pos` when it exists and passes the mask: the kernels'
        /// `vq_warp_candidate` (`locate`, then `vq_allowed`).
        fn candidate(&self, off: &[u64], probes: &[u32], pos: usize) -> Option<usize> {
            locate(off, probes, self.lists, pos as u64).filter(|&row| self.allowed(row))
        }

        fn allowed(&self, row: usize) -> bool {
            self.mask.is_none_or(|m| m.allows(row))
        }
    }

    /// The positions block `p` of `vq_ivfpq_scan` writes in `tile`, step for step: its
    /// probe's entries, and (last probe only) the padding after the query's last candidate.
    fn pq_block_ranges(off: &[u64], p: usize, tile: &Range<u64>) -> (Range<u64>, Range<u64>) {
        let nprobe = off.len() - 1;
        let last = p + 1 == nprobe;
        let lo = off[p].max(tile.start);
        let hi = if last { tile.end } else { off[p + 1].min(tile.end) };
        if lo >= hi {
            return (0..0, 0..0);
        }
        let entries = lo..off[p + 1].min(hi);
        let padding = if last { off[nprobe].max(lo)..hi } else { 0..0 };
        (entries, padding)
    }

    /// `vq_sq_component`, step for step.
    fn sq_component(kind: i32, code: &[u8], c: usize, ranges: &[f32], dim: usize) -> f32 {
        let level = match kind {
            SQ_KIND_FP16 => return half::f16::from_le_bytes([code[2 * c], code[2 * c + 1]]).to_f32(),
            SQ_KIND_BF16 => return f32::from_bits(u32::from(u16::from_le_bytes([code[2 * c], code[2 * c + 1]])) << 16),
            SQ_KIND_SQ8 => u32::from(code[c]),
            SQ_KIND_SQ6 => {
                let (byte, shift) = (6 * c / 8, 6 * c % 8);
                let mut level = u32::from(code[byte]) >> shift;
                if shift > 2 {
                    level |= u32::from(code[byte + 1]) << (8 - shift);
                }
                level & 63
            }
            _ => u32::from((code[c / 2] >> ((c & 1) * 4)) & 15),
        };
        ranges[c] + (level as f32 + 0.5) * ranges[dim + c]
    }

    /// `vq_ivfpq_scan`'s table for one (query, list): entry `j * 256 + c`.
    fn pq_table(query: &[f32], centroid: &[f32], codebooks: &[f32], m: usize, l2: bool) -> Vec<f32> {
        let dsub = query.len() / m;
        let residual: Vec<f32> =
            if l2 { query.iter().zip(centroid).map(|(q, c)| q - c).collect() } else { query.to_vec() };
        (0..m * 256)
            .map(|e| {
                let (word, r) = (&codebooks[e * dsub..(e + 1) * dsub], &residual[(e / 256) * dsub..]);
                let s = word
                    .iter()
                    .zip(r)
                    .fold(0f32, |s, (&w, &r)| if l2 { (r - w).mul_add(r - w, s) } else { r.mul_add(w, s) });
                if l2 { s } else { -s }
            })
            .collect()
    }

    impl TileBackend for CpuScan<'_> {
        fn begin_batch(&mut self, batch: Range<usize>, k: usize) -> Result<()> {
            self.running = vec![Vec::new(); batch.len()];
            (self.batch, self.k) = (batch, k);
            Ok(())
        }

        fn fold_tile(&mut self, tile: Range<usize>) -> Result<()> {
            let (np, dim) = (self.nprobe, self.dim);
            for (b, q) in self.batch.clone().enumerate() {
                let query = &self.queries[q * dim..(q + 1) * dim];
                let (off, probes) =
                    (&self.offsets[q * (np + 1)..(q + 1) * (np + 1)], &self.probes[q * np..(q + 1) * np]);
                match &self.kernel {
                    TwinKernel::Flat { vectors, l2 } => {
                        for pos in tile.clone() {
                            let Some(row) = self.candidate(off, probes, pos) else { continue };
                            let x = &vectors[row * dim..(row + 1) * dim];
                            let key = if *l2 {
                                query.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()
                            } else {
                                -query.iter().zip(x).map(|(a, b)| a * b).sum::<f32>()
                            };
                            self.running[b].push((key, self.ids[row]));
                        }
                    }
                    TwinKernel::Sq { kind, codes, code_size, ranges, centroids, probe_base, l2 } => {
                        for pos in tile.clone() {
                            let Some(row) = self.candidate(off, probes, pos) else { continue };
                            // locate's probe: the last whose first candidate is at or before pos.
                            let p = (0..np).rev().find(|&p| off[p] <= pos as u64).unwrap_or(0);
                            let (list, code) = (probes[p] as usize, &codes[row * code_size..(row + 1) * code_size]);
                            let centroid = &centroids[list * dim..(list + 1) * dim];
                            let s = (0..dim).fold(0f32, |s, c| {
                                let r = sq_component(*kind, code, c, ranges, dim);
                                if *l2 {
                                    let d = (query[c] - centroid[c]) - r;
                                    d.mul_add(d, s)
                                } else {
                                    query[c].mul_add(r, s)
                                }
                            });
                            let key = if *l2 { s } else { probe_base[q * np + p] - s };
                            self.running[b].push((key, self.ids[row]));
                        }
                    }
                    TwinKernel::Pq { codes, m, codebooks, centroids, probe_base, l2 } => {
                        let tile = tile.start as u64..tile.end as u64;
                        for p in 0..np {
                            // Padding positions are (+inf, no id): never selected.
                            let (entries, _padding) = pq_block_ranges(off, p, &tile);
                            if entries.is_empty() {
                                continue;
                            }
                            let list = probes[p] as usize;
                            let table = pq_table(query, &centroids[list * dim..(list + 1) * dim], codebooks, *m, *l2);
                            for pos in entries {
                                let row = (self.lists[list] + pos - off[p]) as usize;
                                if !self.allowed(row) {
                                    continue;
                                }
                                let code = &codes[row * m..(row + 1) * m];
                                let key = code
                                    .iter()
                                    .enumerate()
                                    .fold(probe_base[q * np + p], |s, (j, &c)| s + table[j * 256 + c as usize]);
                                self.running[b].push((key, self.ids[row]));
                            }
                        }
                    }
                }
                let run = &mut self.running[b];
                run.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("finite keys").then(a.1.cmp(&b.1)));
                run.truncate(self.k);
            }
            Ok(())
        }

        fn finish_batch(&mut self, keys: &mut [f32], ids: &mut [u64]) -> Result<()> {
            crate::plan::reference::write_running(&self.running, self.k, keys, ids);
            Ok(())
        }
    }

    fn int_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n * dim)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) % 7) as f32 - 3.0
            })
            .collect()
    }

    /// Scores within 1e-4 relative (absolute near zero); ids equal except between near-tied
    /// scores, a near-tie with the last kept score included (the other side may have cut
    /// between the tied ids elsewhere: rounding orders them differently).
    fn assert_near(got: &Neighbors, want: &Neighbors) -> std::result::Result<(), TestCaseError> {
        for (q, ((gi, gs), (wi, ws))) in got.iter().zip(want.iter()).enumerate() {
            prop_assert_eq!(gi.len(), wi.len());
            let mut seen = std::collections::HashSet::new();
            prop_assert!(gi.iter().all(|&id| id == u64::MAX || seen.insert(id)), "query {}: an id twice", q);
            for j in 0..gi.len() {
                let tol = 1e-4 * ws[j].abs().max(1.0);
                prop_assert!((gs[j] - ws[j]).abs() <= tol, "query {} rank {}: {} vs {}", q, j, gs[j], ws[j]);
                let at_cut = ws.last().is_some_and(|&last| (last - ws[j]).abs() <= tol);
                let tied = at_cut || ws.iter().zip(wi).any(|(&s, &id)| id == gi[j] && (s - ws[j]).abs() <= tol);
                prop_assert!(gi[j] == wi[j] || tied, "query {} rank {}: id {} vs {}", q, j, gi[j], wi[j]);
            }
        }
        Ok(())
    }

    /// The host side of a GPU search over a vq-ivf index's lists: what `GpuIvf::from_cpu`
    /// uploads and `GpuIvf::search` prepares, with vq-ivf's own coarse probes standing for the
    /// GPU's coarse search.
    struct Layout {
        codes: Vec<u8>,
        ids: Vec<u64>,
        lists: Vec<u64>,
        probes: Vec<u32>,
        probe_base: Vec<f32>,
        offsets: Vec<u64>,
        max_cand: usize,
        nprobe: usize,
    }

    impl Layout {
        fn of<C: IvfCodec>(cpu: &IvfIndex<C>, queries: &[f32], nprobe: usize) -> Layout {
            let (nlist, nq) = (cpu.params().nlist, queries.len() / cpu.dim());
            let sizes: Vec<usize> = (0..nlist).map(|l| cpu.list_ids(l).unwrap().len()).collect();
            let (mut probes, mut coarse_keys) = (vec![0u32; nq * nprobe], vec![0f32; nq * nprobe]);
            cpu.coarse().unwrap().search(queries, nprobe, &mut probes, &mut coarse_keys).unwrap();
            // GpuIvf::search's probe bases: the negated coarse inner product (the coarse key)
            // for inner product over residual codes, nothing otherwise.
            let residual_ip = cpu.metric() != Metric::L2 && cpu.codec().by_residual();
            let offsets = candidate_offsets(&probes, nprobe, &sizes);
            Layout {
                codes: (0..nlist).flat_map(|l| cpu.list_codes(l).unwrap().to_vec()).collect(),
                ids: (0..nlist).flat_map(|l| cpu.list_ids(l).unwrap().to_vec()).collect(),
                lists: list_offsets(&sizes),
                probe_base: if residual_ip { coarse_keys } else { vec![0.0; nq * nprobe] },
                max_cand: offsets.chunks_exact(nprobe + 1).map(|o| o[nprobe]).max().unwrap() as usize,
                probes,
                offsets,
                nprobe,
            }
        }

        /// `plan::search_tiled` through the CPU twin of `kernel`, with the mask
        /// `GpuIvf::search_filtered` builds from `filter` over the same ids.
        #[allow(clippy::too_many_arguments)] // a search's inputs, as GpuIvf::search_filtered takes them
        fn search(
            &self,
            kernel: TwinKernel<'_>,
            queries: &[f32],
            dim: usize,
            k: usize,
            metric: Metric,
            plan: TilePlan,
            filter: Option<&dyn IdFilter>,
        ) -> Neighbors {
            let mask = filter.map(|f| RowMask::new(f, self.ids.iter().copied()));
            let (lists, probes, offsets) = (&self.lists, &self.probes, &self.offsets);
            let mut twin = CpuScan {
                kernel,
                ids: &self.ids,
                lists,
                probes,
                offsets,
                nprobe: self.nprobe,
                dim,
                batch: 0..0,
                queries,
                k,
                running: Vec::new(),
                mask: mask.as_ref(),
            };
            search_tiled(&mut twin, queries.len() / dim, self.max_cand, k, metric, plan).unwrap()
        }
    }

    /// vq-ivf's search over each query's `nprobe` lists, the entries `filter` rejects left
    /// out: the twin scans the layout's probes, while vq-ivf's filtered search would widen them.
    fn scan_of_probes<C: IvfCodec + Clone>(
        cpu: &IvfIndex<C>,
        queries: &[f32],
        k: usize,
        nprobe: usize,
        filter: Option<&dyn IdFilter>,
    ) -> Neighbors {
        let opts = IvfSearch { nprobe: Some(nprobe), ..Default::default() };
        match filter {
            None => cpu.search(queries, k, &opts).unwrap(),
            Some(f) => {
                let mut passing = cpu.clone();
                passing.remove_where(|id| !f.accepts(id));
                passing.search(queries, k, &opts).unwrap()
            }
        }
    }

    /// The proptests' filter: every `every`-th id, offset by the seed (every id when `None`).
    fn keep_every(every: Option<u64>, seed: u64) -> impl Fn(u64) -> bool + Send + Sync {
        move |id: u64| every.is_none_or(|e| id.wrapping_add(seed).is_multiple_of(e))
    }

    /// Rows in [-1, 1) from a 64-bit LCG.
    fn float_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n * dim)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// The device's layout and loop, run by the CPU twin over a vq-ivf index's lists and
        /// its own coarse probes, answer exactly what vq-ivf's search answers (small integer
        /// components: every key exact, ties broken by id on both sides).
        #[test]
        fn tiled_list_scan_equals_vq_ivf_search(
            n in 40usize..300, nq in 1usize..10, dim in 1usize..7, nlist in 1usize..9, nprobe in 1usize..10,
            k in 1usize..25, qb in 1usize..5, tile in 1usize..60, ip in any::<bool>(), seed in any::<u64>(),
            every in prop::option::of(1u64..4),
        ) {
            let metric = if ip { Metric::InnerProduct } else { Metric::L2 };
            let data = int_rows(n, dim, seed);
            let queries = int_rows(nq, dim, seed ^ 0x5bd1);
            let mut cpu = IvfIndex::new(dim, metric, IvfParams::new(nlist), FlatCodec::new(dim, metric).unwrap()).unwrap();
            cpu.train(&data).unwrap();
            // Ids not in row order, so the id tie rule is exercised apart from the layout.
            let ids: Vec<u64> = (0..n as u64).map(|i| (i * 37) % 1009 + 5 * i).collect();
            cpu.add_with_ids(&data, &ids).unwrap();
            let nprobe = nprobe.min(nlist);
            let layout = Layout::of(&cpu, &queries, nprobe);
            let vectors: Vec<f32> = layout.codes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            let plan = TilePlan { query_batch: qb, base_tile: tile };
            let keep = keep_every(every, seed);
            let filter = every.map(|_| &keep as &dyn IdFilter);
            let got = layout.search(TwinKernel::Flat { vectors: &vectors, l2: !ip }, &queries, dim, k, metric, plan, filter);
            let want = scan_of_probes(&cpu, &queries, k, nprobe, filter);
            prop_assert_eq!(got.ids(), want.ids());
            prop_assert_eq!(got.scores(), want.scores());
        }

        /// IVF-PQ: the device's layout, block partition and table sums, run by the CPU twin
        /// over a vq-ivf index's lists and its own coarse probes, answer what vq-ivf's search
        /// answers within f32 rounding (vq-ivf sums precomputed terms in another order): scores
        /// within 1e-4 relative, ids equal except between near-tied scores.
        #[test]
        fn tiled_pq_scan_equals_vq_ivf_search_within_rounding(
            n in 300usize..420, nq in 1usize..6, dsub in 1usize..3, m in 1usize..4, nlist in 1usize..6,
            nprobe in 1usize..7, k in 1usize..20, qb in 1usize..4, tile in 1usize..200, ip in any::<bool>(),
            seed in any::<u64>(), every in prop::option::of(1u64..4),
        ) {
            let (metric, dim) = (if ip { Metric::InnerProduct } else { Metric::L2 }, m * dsub);
            let data = float_rows(n, dim, seed);
            let queries = float_rows(nq, dim, seed ^ 0x77);
            let codec = PqCodec::new(dim, metric, m, 8).unwrap();
            let mut cpu = IvfIndex::new(dim, metric, IvfParams::new(nlist), codec).unwrap();
            cpu.train(&data).unwrap();
            cpu.add(&data).unwrap();
            let nprobe = nprobe.min(nlist);
            let layout = Layout::of(&cpu, &queries, nprobe);
            let codebooks = <PqCodec as sealed::DeviceCodec>::device_tables(cpu.codec());
            prop_assert_eq!(codebooks.len(), m * 256 * dsub);
            let (codes, centroids, probe_base) = (&layout.codes, cpu.centroids(), &layout.probe_base);
            let kernel = TwinKernel::Pq { codes, m, codebooks: &codebooks, centroids, probe_base, l2: !ip };
            let plan = TilePlan { query_batch: qb, base_tile: tile };
            let keep = keep_every(every, seed);
            let filter = every.map(|_| &keep as &dyn IdFilter);
            let got = layout.search(kernel, &queries, dim, k, metric, plan, filter);
            let want = scan_of_probes(&cpu, &queries, k, nprobe, filter);
            assert_near(&got, &want)?;
        }

        /// IVF-SQ, every scalar quantizer: the twin of `vq_ivfsq_scan` over a vq-ivf index's
        /// lists answers what vq-ivf's search answers within f32 rounding.
        #[test]
        fn tiled_sq_scan_equals_vq_ivf_search_within_rounding(
            n in 40usize..300, nq in 1usize..6, dim in 1usize..9, nlist in 1usize..6, nprobe in 1usize..7,
            k in 1usize..20, qb in 1usize..4, tile in 1usize..200, ip in any::<bool>(),
            sq_type in prop::sample::select(SqType::ALL.to_vec()), seed in any::<u64>(),
            every in prop::option::of(1u64..4),
        ) {
            let metric = if ip { Metric::InnerProduct } else { Metric::L2 };
            let data = float_rows(n, dim, seed);
            let queries = float_rows(nq, dim, seed ^ 0x99);
            let mut cpu = IvfIndex::new(dim, metric, IvfParams::new(nlist), SqCodec::new(dim, metric, sq_type).unwrap()).unwrap();
            cpu.train(&data).unwrap();
            cpu.add(&data).unwrap();
            let nprobe = nprobe.min(nlist);
            let layout = Layout::of(&cpu, &queries, nprobe);
            let ranges = <SqCodec as sealed::DeviceCodec>::device_tables(cpu.codec());
            prop_assert_eq!(ranges.len(), if sq_type.needs_training() { 2 * dim } else { 0 });
            let code_size = cpu.codec().quantizer().code_size();
            let (codes, centroids, probe_base) = (&layout.codes, cpu.centroids(), &layout.probe_base);
            let kind = sq_kind(sq_type);
            let kernel = TwinKernel::Sq { kind, codes, code_size, ranges: &ranges, centroids, probe_base, l2: !ip };
            let plan = TilePlan { query_batch: qb, base_tile: tile };
            let keep = keep_every(every, seed);
            let filter = every.map(|_| &keep as &dyn IdFilter);
            let got = layout.search(kernel, &queries, dim, k, metric, plan, filter);
            let want = scan_of_probes(&cpu, &queries, k, nprobe, filter);
            assert_near(&got, &want)?;
        }

        /// A removal on the device keeps what vq-ivf's `remove_where` keeps: the kept entries'
        /// codes packed by `kept_runs` (as `compact` copies them) and the kept ids per list equal
        /// the CPU index's lists after the same removal.
        #[test]
        fn removal_keeps_what_vq_ivf_keeps(
            n in 1usize..200, nlist in 1usize..6, every in 1u64..5, seed in any::<u64>(),
        ) {
            let (dim, metric) = (3, Metric::L2);
            let data = int_rows(n.max(nlist), dim, seed);
            let mut cpu = IvfIndex::new(dim, metric, IvfParams::new(nlist), FlatCodec::new(dim, metric).unwrap()).unwrap();
            cpu.train(&data).unwrap();
            cpu.add(&data).unwrap();
            let before = Layout::of(&cpu, &data[..dim], 1);
            let remove = |id: u64| id.wrapping_add(seed).is_multiple_of(every);
            let lists: Vec<Vec<u64>> = (0..nlist).map(|l| cpu.list_ids(l).unwrap().to_vec()).collect();
            let (keep, kept_ids, gone) = split_removed(&lists, remove);
            let cs = 4 * dim;
            let mut codes = vec![0u8; keep.iter().filter(|&&k| k).count() * cs];
            for (rows, at) in kept_runs(&keep) {
                codes[at * cs..(at + rows.len()) * cs].copy_from_slice(&before.codes[rows.start * cs..rows.end * cs]);
            }
            let removed = cpu.remove_where(remove);
            prop_assert_eq!(removed, keep.iter().filter(|&&k| !k).count());
            prop_assert_eq!(gone.len(), removed);
            prop_assert!(gone.iter().all(|&id| remove(id)));
            let after = Layout::of(&cpu, &data[..dim], 1);
            prop_assert_eq!(codes, after.codes);
            for (l, ids) in kept_ids.iter().enumerate() {
                prop_assert_eq!(&ids[..], cpu.list_ids(l).unwrap());
            }
        }

        /// `vq_ivfpq_scan`'s blocks write every position of a tile exactly once: probe p's
        /// entries inside its candidate range, the last probe the padding past the query's
        /// last candidate.
        #[test]
        fn pq_blocks_partition_every_tile(
            sizes in prop::collection::vec(0u64..7, 1..7), start in 0u64..30, len in 1u64..30,
        ) {
            let off: Vec<u64> = std::iter::once(0).chain(sizes.iter().scan(0, |a, &s| { *a += s; Some(*a) })).collect();
            let tile = start..start + len;
            let mut hits = vec![0u32; len as usize];
            for p in 0..sizes.len() {
                let (entries, padding) = pq_block_ranges(&off, p, &tile);
                prop_assert!(entries.is_empty() || (off[p] <= entries.start && entries.end <= off[p + 1]));
                prop_assert!(padding.is_empty() || padding.start >= off[sizes.len()]);
                for pos in entries.chain(padding) {
                    hits[(pos - tile.start) as usize] += 1;
                }
            }
            prop_assert!(hits.iter().all(|&h| h == 1), "{:?}", hits);
        }

        /// `locate` visits every candidate of a query exactly once, in probe order, and only
        /// candidates (empty and padding probes included).
        #[test]
        fn locate_enumerates_the_probed_lists_in_order(
            sizes in prop::collection::vec(0usize..6, 1..8), probes in prop::collection::vec(0u32..10, 1..6),
        ) {
            let nprobe = probes.len();
            let lists = list_offsets(&sizes);
            let offsets = candidate_offsets(&probes, nprobe, &sizes);
            let want: Vec<usize> = probes
                .iter()
                .filter(|&&l| (l as usize) < sizes.len())
                .flat_map(|&l| lists[l as usize] as usize..lists[l as usize + 1] as usize)
                .collect();
            let total = offsets[nprobe] as usize;
            let got: Vec<usize> = (0..total as u64).map(|p| locate(&offsets, &probes, &lists, p).unwrap()).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(locate(&offsets, &probes, &lists, total as u64), None);
        }
    }

    #[test]
    fn offsets_are_prefix_sums() {
        assert_eq!(list_offsets(&[2, 0, 3]), vec![0, 2, 2, 5]);
        // Two queries, nprobe 2; probe 7 is past the lists (padding): empty.
        assert_eq!(candidate_offsets(&[2, 0, 7, 1], 2, &[2, 0, 3]), vec![0, 3, 5, 0, 0, 0]);
    }
}
