//! `GpuIvfFlat`: an IVF-Flat index with its lists resident on the device (Faiss'
//! `GpuIndexIVFFlat`). A search finds each query's `nprobe` lists with the coarse centroids
//! held as a [`GpuFlat`] (GEMM + the selection kernel), then scans the probed lists tile by
//! tile (`vq_ivf_scan`, one warp per candidate) and folds each tile into the running top-k with
//! the selection kernel fed keys and ids (`MODE_KEYS`).
//!
//! Layout: every list's vectors and ids, list after list, in one device array each, with the
//! `nlist + 1` list offsets beside them. A query's candidates are its probed lists' entries in
//! probe order; `nprobe + 1` prefix sums per query ([`candidate_offsets`]) say where each probe
//! starts, and [`locate`] (the kernel's host twin) finds a candidate's row. The search loop is
//! `plan::search_tiled`'s, with candidate positions in place of base rows, so a CPU reference
//! backend (tests below) checks the host logic against vq-ivf's own search.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use vq_distance::{Metric, Neighbors, prepare_rows};
use vq_ivf::{CoarseKind, FlatCodec, IvfIndex, IvfParams};

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::flat::{GpuFlat, GpuFlatOptions};
use crate::kernels::{
    IVF_SCAN_ARGS, MAX_K, MODE_KEYS, SCAN_WARPS, SELECT_ARGS, SELECT_THREADS, push_args, select_capacity,
    select_shared_bytes,
};
use crate::plan::{TileBackend, TilePlan, search_tiled};

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

/// An IVF-Flat index on one GPU: coarse centroids and inverted lists (f32 vectors and their
/// ids) resident on the device, searched with `nprobe` lists per query. Results follow the vq
/// conventions (best first, ties to the smaller id, `u64::MAX` padding); `k` and `nprobe` at
/// most [`MAX_K`]. Only the flat coarse quantizer (every centroid scored), as Faiss' GPU IVF.
///
/// [`from_cpu`](GpuIvfFlat::from_cpu) / [`to_cpu`](GpuIvfFlat::to_cpu) round-trip a
/// `vq_ivf::IvfIndex<FlatCodec>` exactly (centroids, lists, ids, next id, so the fingerprint).
/// Vectors added here are assigned to lists on the device (GEMM): a vector within f32 rounding
/// of two centroids may land in the other list than the CPU would put it in.
pub struct GpuIvfFlat {
    gpu: Arc<Gpu>,
    dim: usize,
    metric: Metric,
    params: IvfParams,
    scratch_bytes: Option<usize>,
    /// The centroids, searched by the coarse metric (L2, or inner product for IP and cosine).
    coarse: Option<GpuFlat>,
    /// Host mirror of every list's ids: the list sizes, duplicate checks and `to_cpu`.
    list_ids: Vec<Vec<u64>>,
    lists: Option<DeviceLists>,
    next_id: u64,
}

/// The lists on the device, list after list.
struct DeviceLists {
    vectors: CudaSlice<f32>,
    ids: CudaSlice<u64>,
    offsets: CudaSlice<u64>,
}

impl std::fmt::Debug for GpuIvfFlat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuIvfFlat")
            .field("gpu", &self.gpu)
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

impl GpuIvfFlat {
    /// An empty, untrained index of `params.nlist` lists on `gpu` (`params.coarse` must be
    /// flat). `scratch_bytes` bounds a search's device scratch (`None`: half the free
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
        // vq-ivf checks the parameters and the dimension.
        IvfIndex::new(dim, metric, params.clone(), FlatCodec::new(dim, metric)?)?;
        if params.coarse != CoarseKind::Flat {
            return Err(Error::Unsupported { what: "an HNSW coarse quantizer on the GPU (use IVF{nlist},Flat)" });
        }
        Ok(Self {
            gpu: gpu.clone(),
            dim,
            metric,
            params,
            scratch_bytes,
            coarse: None,
            list_ids: Vec::new(),
            lists: None,
            next_id: 0,
        })
    }

    /// A copy of `cpu` on `gpu`: its centroids, lists (in list order) and ids.
    ///
    /// # Errors
    /// An HNSW coarse quantizer ([`Error::Unsupported`]); device errors (out of memory).
    pub fn from_cpu(gpu: &Arc<Gpu>, cpu: &IvfIndex<FlatCodec>, scratch_bytes: Option<usize>) -> Result<Self> {
        let mut index = Self::new(gpu, cpu.dim(), cpu.metric(), cpu.params().clone(), scratch_bytes)?;
        index.next_id = cpu.next_id();
        if !cpu.is_trained() {
            return Ok(index);
        }
        index.set_centroids(cpu.centroids())?;
        let nlist = cpu.params().nlist;
        let mut vectors = Vec::with_capacity(cpu.len() * cpu.dim());
        for l in 0..nlist {
            // Trained: every list exists.
            let codes = cpu.list_codes(l).unwrap_or_default();
            vectors.extend(codes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
            index.list_ids[l] = cpu.list_ids(l).unwrap_or_default().to_vec();
        }
        index.upload(&vectors)?;
        Ok(index)
    }

    /// The CPU index of the same centroids, lists, ids and next id.
    ///
    /// # Errors
    /// Device errors while copying back.
    pub fn to_cpu(&self) -> Result<IvfIndex<FlatCodec>> {
        let codec = FlatCodec::new(self.dim, self.metric)?;
        let Some(coarse) = &self.coarse else {
            return Ok(IvfIndex::new(self.dim, self.metric, self.params.clone(), codec)?);
        };
        let centroids = coarse.to_host()?;
        let vectors = match &self.lists {
            Some(l) => self.gpu.stream().clone_dtoh(&l.vectors).map_err(Error::cuda("cuMemcpyDtoH"))?,
            None => Vec::new(),
        };
        let mut rows = vectors.chunks_exact(self.dim);
        let lists = self
            .list_ids
            .iter()
            .map(|ids| {
                let codes = rows.by_ref().take(ids.len()).flatten().flat_map(|v| v.to_le_bytes()).collect();
                (ids.clone(), codes)
            })
            .collect();
        Ok(IvfIndex::from_lists(self.dim, self.metric, self.params.clone(), codec, centroids, lists, self.next_id)?)
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

    /// The first id the next [`add`](GpuIvfFlat::add) hands out.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Device bytes held: centroids (and norms), vectors, ids and list offsets.
    pub fn memory_usage(&self) -> usize {
        let n = self.len();
        self.coarse.as_ref().map_or(0, GpuFlat::memory_usage) + n * (self.dim * 4 + 8) + (self.list_ids.len() + 1) * 8
    }

    /// Learns the centroids from `data` with vq-ivf's training (k-means on at most
    /// `max_points_per_centroid · nlist` points) with each iteration's assignment on this
    /// index's GPU ([`GpuAssigner`](crate::GpuAssigner)), and uploads them. Only while empty.
    ///
    /// # Errors
    /// vq-ivf's training errors (too few points, bad input); [`Error::Unsupported`] when the
    /// index holds vectors; device errors.
    pub fn train(&mut self, data: &[f32]) -> Result<()> {
        if !self.is_empty() {
            return Err(Error::Unsupported { what: "training an index that holds vectors" });
        }
        let mut cpu =
            IvfIndex::new(self.dim, self.metric, self.params.clone(), FlatCodec::new(self.dim, self.metric)?)?;
        cpu.train_with_assigner(data, &crate::GpuAssigner::new(&self.gpu))?;
        self.set_centroids(cpu.centroids())
    }

    /// Uploads trained centroids and empties the lists.
    fn set_centroids(&mut self, centroids: &[f32]) -> Result<()> {
        let options = GpuFlatOptions { scratch_bytes: self.scratch_bytes, ..GpuFlatOptions::default() };
        let mut coarse = GpuFlat::new(&self.gpu, self.dim, coarse_metric(self.metric), options)?;
        coarse.add(centroids)?;
        self.coarse = Some(coarse);
        self.list_ids = vec![Vec::new(); self.params.nlist];
        self.lists = None;
        Ok(())
    }

    /// Uploads `vectors` (every list's rows, list after list, as `list_ids` counts them).
    fn upload(&mut self, vectors: &[f32]) -> Result<()> {
        let n = self.len();
        debug_assert_eq!(vectors.len(), n * self.dim);
        if n == 0 {
            self.lists = None;
            return Ok(());
        }
        self.gpu.bind()?;
        self.gpu.check_fits("IVF lists", n * (self.dim * 4 + 8) + (self.list_ids.len() + 1) * 8)?;
        let stream = self.gpu.stream();
        let ids: Vec<u64> = self.list_ids.iter().flatten().copied().collect();
        let sizes: Vec<usize> = self.list_ids.iter().map(Vec::len).collect();
        let cuda = Error::cuda("cuMemcpyHtoD");
        self.lists = Some(DeviceLists {
            vectors: stream.clone_htod(vectors).map_err(cuda)?,
            ids: stream.clone_htod(&ids).map_err(Error::cuda("cuMemcpyHtoD"))?,
            offsets: stream.clone_htod(&list_offsets(&sizes)).map_err(Error::cuda("cuMemcpyHtoD"))?,
        });
        Ok(())
    }

    /// Adds `data` under ids continuing from [`next_id`](GpuIvfFlat::next_id).
    ///
    /// # Errors
    /// As [`add_with_ids`](GpuIvfFlat::add_with_ids).
    pub fn add(&mut self, data: &[f32]) -> Result<()> {
        let n = data.len() / self.dim;
        let ids: Vec<u64> = (self.next_id..self.next_id.saturating_add(n as u64)).collect();
        self.add_with_ids(data, &ids)
    }

    /// Adds `data` under `ids` (one per row, none present), each in the list of its nearest
    /// centroid (found on the device). The lists are rebuilt on the device with the new rows
    /// appended (a copy of the old ones), so add in large batches.
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
        let mut seen: HashSet<u64> = self.list_ids.iter().flatten().copied().collect();
        if let Some(&dup) = ids.iter().find(|&&id| !seen.insert(id)) {
            return Err(vq_ivf::Error::DuplicateId(dup).into());
        }
        if rows.is_empty() {
            return Ok(());
        }
        let labels = coarse.search(rows.as_slice(), 1)?;
        // New rows grouped by list (stable: insertion order within a list).
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| labels.ids()[i]);
        if labels.ids().iter().any(|&l| l as usize >= self.params.nlist) {
            return Err(Error::Unsupported { what: "a vector the coarse search found no list for" });
        }
        let old_sizes: Vec<usize> = self.list_ids.iter().map(Vec::len).collect();
        let old_offsets = list_offsets(&old_sizes);
        let mut new_rows = Vec::with_capacity(rows.as_slice().len());
        for &i in &order {
            new_rows.extend_from_slice(rows.row(i));
            self.list_ids[labels.ids()[i] as usize].push(ids[i]);
        }
        let result = self.grow(&old_offsets, &new_rows);
        if result.is_err() {
            // Nothing was added: drop the ids recorded above.
            for (l, ids) in self.list_ids.iter_mut().enumerate() {
                ids.truncate(old_sizes[l]);
            }
            return result;
        }
        self.next_id =
            ids.iter().map(|&id| id.saturating_add(1)).fold(self.next_id.saturating_add(ids.len() as u64), u64::max);
        Ok(())
    }

    /// Rebuilds the device lists as the old ones (`old_offsets`) with `new_rows` (grouped by
    /// list, as `list_ids` now counts them past the old sizes) appended to each list.
    fn grow(&mut self, old_offsets: &[u64], new_rows: &[f32]) -> Result<()> {
        let dim = self.dim;
        let n = self.len();
        self.gpu.bind()?;
        self.gpu.check_fits("IVF lists", n * (dim * 4 + 8) + (self.list_ids.len() + 1) * 8)?;
        let stream = self.gpu.stream().clone();
        let sizes: Vec<usize> = self.list_ids.iter().map(Vec::len).collect();
        let offsets = list_offsets(&sizes);
        let ids: Vec<u64> = self.list_ids.iter().flatten().copied().collect();
        // SAFETY: every element is written below: each list's old rows by a device copy, its
        // new rows from the host (old and new sizes add up to the list's new size).
        let mut vectors = unsafe { stream.alloc::<f32>(n * dim) }.map_err(Error::cuda("cuMemAlloc"))?;
        let mut at = 0;
        for l in 0..self.list_ids.len() {
            let (old, new) = (old_offsets[l] as usize..old_offsets[l + 1] as usize, offsets[l] as usize);
            if let (Some(prev), false) = (&self.lists, old.is_empty()) {
                let src = prev.vectors.slice(old.start * dim..old.end * dim);
                let mut dst = vectors.slice_mut(new * dim..(new + old.len()) * dim);
                stream.memcpy_dtod(&src, &mut dst).map_err(Error::cuda("cuMemcpyDtoD"))?;
            }
            let added = sizes[l] - old.len();
            if added > 0 {
                let start = (new + old.len()) * dim;
                let mut dst = vectors.slice_mut(start..start + added * dim);
                stream.memcpy_htod(&new_rows[at..at + added * dim], &mut dst).map_err(Error::cuda("cuMemcpyHtoD"))?;
                at += added * dim;
            }
        }
        self.lists = Some(DeviceLists {
            vectors,
            ids: stream.clone_htod(&ids).map_err(Error::cuda("cuMemcpyHtoD"))?,
            offsets: stream.clone_htod(&offsets).map_err(Error::cuda("cuMemcpyHtoD"))?,
        });
        stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))
    }

    fn name(&self) -> String {
        format!("IVF{},Flat (GPU)", self.params.nlist)
    }

    /// The `k` best matches of each query over its `nprobe` nearest lists (`None`: the
    /// index's default), as vq-ivf's search with the same `nprobe` (within f32 rounding).
    ///
    /// # Errors
    /// `k` = 0, `nprobe` = 0 or bad queries; an untrained index; [`Error::KTooLarge`] for `k`
    /// or [`Error::TooLarge`] for `nprobe` above [`MAX_K`]; device errors.
    pub fn search(&self, queries: &[f32], k: usize, nprobe: Option<usize>) -> Result<Neighbors> {
        let Some(coarse) = &self.coarse else { return Err(vq_ivf::Error::NotTrained { index: self.name() }.into()) };
        if k == 0 {
            return Err(vq_distance::Error::ZeroK.into());
        }
        if k > MAX_K {
            return Err(Error::KTooLarge { k, max: MAX_K });
        }
        let nprobe = match nprobe.unwrap_or(self.params.nprobe) {
            0 => return Err(vq_ivf::Error::ZeroNprobe.into()),
            p => p.min(self.params.nlist),
        };
        if nprobe > MAX_K {
            return Err(Error::TooLarge { what: "nprobe", got: nprobe, max: MAX_K });
        }
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
        let probes: Vec<u32> = coarse
            .search(rows.as_slice(), nprobe)?
            .ids()
            .iter()
            .map(|&l| u32::try_from(l).unwrap_or(u32::MAX))
            .collect();
        let sizes: Vec<usize> = self.list_ids.iter().map(Vec::len).collect();
        let offsets = candidate_offsets(&probes, nprobe, &sizes);
        let max_cand = offsets.chunks_exact(nprobe + 1).map(|o| o[nprobe]).max().unwrap_or(0) as usize;
        self.gpu.bind()?;
        let budget = match self.scratch_bytes {
            Some(b) => b,
            None => (self.gpu.memory_info()?.0 / 2).min(1 << 30),
        };
        let plan = TilePlan::with_costs(nq, max_cand, scan_query_bytes(self.dim, k, nprobe), 12, budget)?;
        let mut backend = ScanBackend::new(self, lists, rows.as_slice(), &probes, &offsets, nprobe, plan, k)?;
        search_tiled(&mut backend, nq, max_cand, k, self.metric, plan)
    }
}

/// Device bytes per query of a batch beside the candidate tile: the query, its probes and
/// candidate offsets, its running top-k.
fn scan_query_bytes(dim: usize, k: usize, nprobe: usize) -> usize {
    dim * 4 + nprobe * 4 + (nprobe + 1) * 8 + k * 12
}

/// The device side of a list scan: scratch for one query batch.
struct ScanBackend<'a> {
    index: &'a GpuIvfFlat,
    lists: &'a DeviceLists,
    /// Every query of the search (prepared host rows).
    host_queries: &'a [f32],
    probes: &'a [u32],
    offsets: &'a [u64],
    nprobe: usize,
    k: usize,
    batch: usize,
    /// The batch's most candidates: tiles past it are all padding and skipped.
    batch_max: usize,
    queries: CudaSlice<f32>,
    d_probes: CudaSlice<u32>,
    d_offsets: CudaSlice<u64>,
    keys: CudaSlice<f32>,
    cand_ids: CudaSlice<u64>,
    run_keys: CudaSlice<f32>,
    run_ids: CudaSlice<u64>,
}

impl<'a> ScanBackend<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        index: &'a GpuIvfFlat,
        lists: &'a DeviceLists,
        host_queries: &'a [f32],
        probes: &'a [u32],
        offsets: &'a [u64],
        nprobe: usize,
        plan: TilePlan,
        k: usize,
    ) -> Result<Self> {
        let stream = index.gpu.stream();
        let qb = plan.query_batch;
        let alloc = || Error::cuda("cuMemAlloc");
        Ok(Self {
            index,
            lists,
            host_queries,
            probes,
            offsets,
            nprobe,
            k,
            batch: 0,
            batch_max: 0,
            queries: stream.alloc_zeros::<f32>(qb * index.dim).map_err(alloc())?,
            d_probes: stream.alloc_zeros::<u32>(qb * nprobe).map_err(alloc())?,
            d_offsets: stream.alloc_zeros::<u64>(qb * (nprobe + 1)).map_err(alloc())?,
            keys: stream.alloc_zeros::<f32>(qb * plan.base_tile).map_err(alloc())?,
            cand_ids: stream.alloc_zeros::<u64>(qb * plan.base_tile).map_err(alloc())?,
            run_keys: stream.alloc_zeros::<f32>(qb * k).map_err(alloc())?,
            run_ids: stream.alloc_zeros::<u64>(qb * k).map_err(alloc())?,
        })
    }
}

impl TileBackend for ScanBackend<'_> {
    fn begin_batch(&mut self, batch: Range<usize>, k: usize) -> Result<()> {
        debug_assert_eq!(k, self.k);
        let stream = self.index.gpu.stream().clone();
        let (np, cuda) = (self.nprobe, Error::cuda);
        let queries = &self.host_queries[batch.start * self.index.dim..batch.end * self.index.dim];
        self.batch = batch.len();
        let offsets = &self.offsets[batch.start * (np + 1)..batch.end * (np + 1)];
        self.batch_max = offsets.chunks_exact(np + 1).map(|o| o[np]).max().unwrap_or(0) as usize;
        stream.memcpy_htod(queries, &mut self.queries.slice_mut(..queries.len())).map_err(cuda("cuMemcpyHtoD"))?;
        let probes = &self.probes[batch.start * np..batch.end * np];
        stream.memcpy_htod(probes, &mut self.d_probes.slice_mut(..probes.len())).map_err(cuda("cuMemcpyHtoD"))?;
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
        let stream = self.index.gpu.stream().clone();
        let (nq, dim, ntile) = (self.batch as u32, self.index.dim as u32, tile.len() as u32);
        let (nprobe, tile_start, l2) =
            (self.nprobe as u32, tile.start as u64, i32::from(self.index.metric == Metric::L2));
        let cfg = LaunchConfig {
            grid_dim: (ntile.div_ceil(SCAN_WARPS), nq, 1),
            block_dim: (32 * SCAN_WARPS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut args = stream.launch_builder(&self.index.gpu.ivf_scan);
        #[rustfmt::skip]
        push_args!(args, IVF_SCAN_ARGS; &self.queries, &nq, &dim, &self.lists.vectors, &self.lists.ids,
            &self.lists.offsets, &self.d_probes, &self.d_offsets, &nprobe, &tile_start, &ntile, &l2, &mut self.keys,
            &mut self.cand_ids);
        // SAFETY: grid (ceil(ntile / SCAN_WARPS), batch), one warp per (query, candidate); it
        // reads the batch's queries, probes ([batch][nprobe], lists < nlist: the coarse search
        // over nlist centroids with nprobe <= nlist) and candidate offsets ([batch][nprobe+1],
        // prefix sums of those lists' sizes), so every row it locates is below the lists'
        // length (offsets[list] + size); it writes keys and ids [batch][ntile] inside the
        // buffers (query_batch * base_tile). Types match vq_ivf_scan.
        unsafe { args.launch(cfg) }.map_err(Error::cuda("launch vq_ivf_scan"))?;
        let cfg = LaunchConfig {
            grid_dim: (nq, 1, 1),
            block_dim: (SELECT_THREADS, 1, 1),
            shared_mem_bytes: select_shared_bytes(self.k) as u32,
        };
        let (id0, no_norms, k, kp) = (0u64, 0u64, self.k as u32, select_capacity(self.k) as u32);
        let mut args = stream.launch_builder(&self.index.gpu.select);
        #[rustfmt::skip]
        push_args!(args, SELECT_ARGS; &self.keys, &no_norms, &no_norms, &nq, &ntile, &id0, &self.cand_ids, &k, &kp,
            &MODE_KEYS, &mut self.run_keys, &mut self.run_ids);
        // SAFETY: as in GpuFlat's fold, with MODE_KEYS: the kernel reads ntile keys and ids per
        // query (just written) and no norms (the two null pointers are never read in this
        // mode); it rewrites the query's k running entries.
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

    /// The CPU twin of `ScanBackend`: the same candidate layout, `locate` for the kernel's
    /// search, the kernel's keys (exact on small integers) and its tie rule.
    struct CpuScan<'a> {
        vectors: &'a [f32],
        ids: &'a [u64],
        lists: &'a [u64],
        probes: &'a [u32],
        offsets: &'a [u64],
        nprobe: usize,
        dim: usize,
        l2: bool,
        batch: Range<usize>,
        /// Every query of the search.
        queries: &'a [f32],
        k: usize,
        running: Vec<Vec<(f32, u64)>>,
    }

    impl TileBackend for CpuScan<'_> {
        fn begin_batch(&mut self, batch: Range<usize>, k: usize) -> Result<()> {
            self.running = vec![Vec::new(); batch.len()];
            (self.batch, self.k) = (batch, k);
            Ok(())
        }

        fn fold_tile(&mut self, tile: Range<usize>) -> Result<()> {
            let np = self.nprobe;
            for (b, q) in self.batch.clone().enumerate() {
                let query = &self.queries[q * self.dim..(q + 1) * self.dim];
                let (off, probes) =
                    (&self.offsets[q * (np + 1)..(q + 1) * (np + 1)], &self.probes[q * np..(q + 1) * np]);
                for pos in tile.clone() {
                    let Some(row) = locate(off, probes, self.lists, pos as u64) else { continue };
                    let x = &self.vectors[row * self.dim..(row + 1) * self.dim];
                    let key = if self.l2 {
                        query.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()
                    } else {
                        -query.iter().zip(x).map(|(a, b)| a * b).sum::<f32>()
                    };
                    self.running[b].push((key, self.ids[row]));
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// The device's layout and loop, run by the CPU twin over a vq-ivf index's lists and
        /// its own coarse probes, answer exactly what vq-ivf's search answers (small integer
        /// components: every key exact, ties broken by id on both sides).
        #[test]
        fn tiled_list_scan_equals_vq_ivf_search(
            n in 40usize..300, nq in 1usize..10, dim in 1usize..7, nlist in 1usize..9, nprobe in 1usize..10,
            k in 1usize..25, qb in 1usize..5, tile in 1usize..60, ip in any::<bool>(), seed in any::<u64>(),
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
            // What from_cpu uploads, on the host.
            let sizes: Vec<usize> = (0..nlist).map(|l| cpu.list_ids(l).unwrap().len()).collect();
            let vectors: Vec<f32> = (0..nlist)
                .flat_map(|l| cpu.list_codes(l).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect::<Vec<_>>())
                .collect();
            let all_ids: Vec<u64> = (0..nlist).flat_map(|l| cpu.list_ids(l).unwrap().to_vec()).collect();
            let lists = list_offsets(&sizes);
            // vq-ivf's own coarse probes, as the GPU's coarse search finds them.
            let (mut probes, mut coarse_keys) = (vec![0u32; nq * nprobe], vec![0f32; nq * nprobe]);
            cpu.coarse().unwrap().search(&queries, nprobe, &mut probes, &mut coarse_keys).unwrap();
            let offsets = candidate_offsets(&probes, nprobe, &sizes);
            let max_cand = offsets.chunks_exact(nprobe + 1).map(|o| o[nprobe]).max().unwrap() as usize;
            let mut twin = CpuScan {
                vectors: &vectors, ids: &all_ids, lists: &lists, probes: &probes, offsets: &offsets, nprobe, dim,
                l2: !ip, batch: 0..0, queries: &queries, k, running: Vec::new(),
            };
            let plan = TilePlan { query_batch: qb, base_tile: tile };
            let got = search_tiled(&mut twin, nq, max_cand, k, metric, plan).unwrap();
            let want = cpu.search(&queries, k, &IvfSearch { nprobe: Some(nprobe), ..Default::default() }).unwrap();
            prop_assert_eq!(got.ids(), want.ids());
            prop_assert_eq!(got.scores(), want.scores());
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
