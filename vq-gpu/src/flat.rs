//! `GpuFlat`: exact k-NN with the base resident on the device. Inner products come from one
//! cuBLAS GEMM per (query batch, base tile); the selection kernel turns them into keys (adding
//! the norms for L2) and folds them into each query's running top-k, so nothing proportional to
//! the base size goes back to the host. The batching and tiling are `crate::plan`'s.

use std::ffi::c_void;
use std::ops::Range;
use std::sync::Arc;

use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};
use vq_distance::{IdFilter, Metric, Neighbors, prepare_rows};

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::kernels::{
    MAX_K, MODE_IP, MODE_L2, ROW_NORMS_ARGS, SELECT_ARGS, SELECT_THREADS, push_args, select_capacity,
    select_shared_bytes,
};
use crate::plan::{TileBackend, TilePlan, search_tiled};
use crate::rows::{RowMask, compact, device_ptr_or_null, kept_runs, upload_mask};

/// How `GpuFlat` stores the base vectors on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuStorage {
    /// 4 bytes per component; scores as exact as f32 accumulation allows.
    #[default]
    F32,
    /// IEEE half, 2 bytes per component, accumulated in f32 (Faiss' `useFloat16`): half the
    /// memory and bandwidth; queries are rounded to f16 for the GEMM too.
    F16,
}

impl GpuStorage {
    fn bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }
}

/// Options of [`GpuFlat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GpuFlatOptions {
    /// Element type of the resident base (default f32).
    pub storage: GpuStorage,
    /// Bytes of device scratch one search may use (queries, score tile, running top-k).
    /// `None` (default): half the free device memory, at most 1 GiB.
    pub scratch_bytes: Option<usize>,
}

enum Base {
    F32(CudaSlice<f32>),
    F16(CudaSlice<u16>),
}

/// Exact k-NN on one GPU, for [`Metric::L2`], [`Metric::InnerProduct`] and [`Metric::Cosine`]
/// (vectors normalized on add, queries on search). Results follow the vq conventions: sorted
/// best first, ties to the smaller id, ids `0..len()` in insertion order; `k` at most
/// [`MAX_K`]. Searches run on the device's stream, one at a time.
pub struct GpuFlat {
    gpu: Arc<Gpu>,
    dim: usize,
    metric: Metric,
    options: GpuFlatOptions,
    len: usize,
    base: Option<Base>,
    norms: Option<CudaSlice<f32>>,
}

impl std::fmt::Debug for GpuFlat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuFlat")
            .field("gpu", &self.gpu)
            .field("dim", &self.dim)
            .field("metric", &self.metric)
            .field("options", &self.options)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// cuBLAS and the kernels take 32-bit sizes.
fn fits_i32(what: &'static str, got: usize) -> Result<i32> {
    i32::try_from(got).map_err(|_| Error::TooLarge { what, got, max: i32::MAX as usize })
}

impl GpuFlat {
    /// An empty index of `dim`-dimensional vectors on `gpu`.
    ///
    /// # Errors
    /// A zero or too large `dim`.
    pub fn new(gpu: &Arc<Gpu>, dim: usize, metric: Metric, options: GpuFlatOptions) -> Result<Self> {
        if dim == 0 {
            return Err(vq_distance::Error::ZeroDimension.into());
        }
        fits_i32("dim", dim)?;
        Ok(Self { gpu: gpu.clone(), dim, metric, options, len: 0, base: None, norms: None })
    }

    /// The vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The number of vectors.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index holds no vector.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The options the index was built with.
    pub fn options(&self) -> GpuFlatOptions {
        self.options
    }

    /// The device this index lives on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Device bytes held: the base vectors and their norms.
    pub fn memory_usage(&self) -> usize {
        self.len * (self.dim * self.options.storage.bytes() + 4)
    }

    /// Appends `data` (rows of `dim`); their ids continue from [`len`](Self::len).
    ///
    /// # Errors
    /// Input errors from `vq_distance::prepare_rows` (length, NaN, zero norm for cosine),
    /// [`Error::OutOfMemory`] when the grown base does not fit, [`Error::Cuda`].
    pub fn add(&mut self, data: &[f32]) -> Result<()> {
        let rows = prepare_rows("vectors", data, self.dim, self.metric)?;
        let added = rows.len();
        if added == 0 {
            return Ok(());
        }
        let total = self.len + added;
        fits_i32("rows", total)?;
        self.gpu.bind()?;
        let elem = self.options.storage.bytes();
        // The old buffer and the new one coexist during the copy.
        self.gpu.check_fits("base vectors", total * (self.dim * elem + 4))?;
        let stream = self.gpu.stream().clone();
        let old = self.len * self.dim;
        let cuda = Error::cuda;
        // The old buffers stay until the new ones are complete: a failure changes nothing.
        let base = match (self.options.storage, &self.base) {
            (GpuStorage::F32, prev) => {
                // SAFETY: every element is written below: 0..old from the old buffer, the rest
                // from the host.
                let mut buf = unsafe { stream.alloc::<f32>(total * self.dim) }.map_err(cuda("cuMemAlloc"))?;
                if let Some(Base::F32(prev)) = prev {
                    stream.memcpy_dtod(prev, &mut buf.slice_mut(0..old)).map_err(cuda("cuMemcpyDtoD"))?;
                }
                stream.memcpy_htod(rows.as_slice(), &mut buf.slice_mut(old..)).map_err(cuda("cuMemcpyHtoD"))?;
                Base::F32(buf)
            }
            (GpuStorage::F16, prev) => {
                let bits: Vec<u16> = rows.as_slice().iter().map(|&x| half::f16::from_f32(x).to_bits()).collect();
                // SAFETY: as above.
                let mut buf = unsafe { stream.alloc::<u16>(total * self.dim) }.map_err(cuda("cuMemAlloc"))?;
                if let Some(Base::F16(prev)) = prev {
                    stream.memcpy_dtod(prev, &mut buf.slice_mut(0..old)).map_err(cuda("cuMemcpyDtoD"))?;
                }
                stream.memcpy_htod(&bits, &mut buf.slice_mut(old..)).map_err(cuda("cuMemcpyHtoD"))?;
                Base::F16(buf)
            }
        };
        let mut norms = stream.alloc_zeros::<f32>(total).map_err(cuda("cuMemAlloc"))?;
        self.row_norms(&base, total, &mut norms)?;
        self.base = Some(base);
        self.norms = Some(norms);
        self.len = total;
        Ok(())
    }

    /// Keeps the rows whose entry in `keep` is `true` (one entry per row) and drops the
    /// others; returns how many were dropped. The rows that stay keep their order, so their ids
    /// (row numbers) shift down past each dropped row, as in Faiss' `IndexFlat::remove_ids`.
    /// On the device: one copy per run of kept rows into new buffers (base and norms, no
    /// recomputation); the old ones are freed once the new ones are complete, so a failure
    /// changes nothing.
    ///
    /// # Errors
    /// `keep` of another length than [`len`](Self::len); [`Error::OutOfMemory`] when the kept
    /// rows do not fit beside the old ones; [`Error::Cuda`].
    pub fn retain_rows(&mut self, keep: &[bool]) -> Result<usize> {
        if keep.len() != self.len {
            let (got, expected) = (keep.len(), self.len);
            return Err(
                vq_distance::Error::OutputLength { what: "keep mask (one entry per row)", got, expected }.into()
            );
        }
        let runs = kept_runs(keep);
        let kept: usize = runs.iter().map(|(rows, _)| rows.len()).sum();
        if kept == self.len {
            return Ok(0);
        }
        self.gpu.bind()?;
        self.gpu.check_fits("kept base vectors", kept * (self.dim * self.options.storage.bytes() + 4))?;
        let stream = self.gpu.stream().clone();
        let base = match &self.base {
            Some(Base::F32(b)) => compact(&stream, b, self.dim, &runs)?.map(Base::F32),
            Some(Base::F16(b)) => compact(&stream, b, self.dim, &runs)?.map(Base::F16),
            None => None,
        };
        let norms = match &self.norms {
            Some(n) => compact(&stream, n, 1, &runs)?,
            None => None,
        };
        let removed = self.len - kept;
        (self.base, self.norms, self.len) = (base, norms, kept);
        Ok(removed)
    }

    /// Squared norms of the first `n` rows of `base` into `out`.
    fn row_norms(&self, base: &Base, n: usize, out: &mut CudaSlice<f32>) -> Result<()> {
        let stream = self.gpu.stream();
        let warps_per_block = 8u32;
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(warps_per_block as usize) as u32, 1, 1),
            block_dim: (32 * warps_per_block, 1, 1),
            shared_mem_bytes: 0,
        };
        let (n64, dim32) = (n as u64, self.dim as u32);
        let launched = match base {
            Base::F32(b) => {
                let mut args = stream.launch_builder(&self.gpu.norms_f32);
                push_args!(args, ROW_NORMS_ARGS; b, &n64, &dim32, &mut *out);
                // SAFETY: vq_row_norms_f32(x, n, dim, out) reads n * dim floats of `b` (it holds
                // at least that many) and writes n floats of `out` (len >= n); argument types
                // match the kernel's signature.
                unsafe { args.launch(cfg) }
            }
            Base::F16(b) => {
                let mut args = stream.launch_builder(&self.gpu.norms_f16);
                push_args!(args, ROW_NORMS_ARGS; b, &n64, &dim32, &mut *out);
                // SAFETY: as above with n * dim halves (u16 bits).
                unsafe { args.launch(cfg) }
            }
        };
        launched.map(|_| ()).map_err(Error::cuda("launch vq_row_norms"))
    }

    /// The `k` nearest base vectors of each query (rows of `dim`).
    ///
    /// # Errors
    /// `k` = 0 or input errors from `vq_distance::prepare_rows`, [`Error::KTooLarge`] above
    /// [`MAX_K`], [`Error::OutOfMemory`] when even the smallest scratch does not fit,
    /// [`Error::Cuda`].
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Neighbors> {
        check_k(k)?;
        let rows = prepare_rows("queries", queries, self.dim, self.metric)?;
        self.search_from(QuerySource::Host(rows.as_slice()), rows.len(), k, None)
    }

    /// [`search`](Self::search) among the rows whose id (its row number: ids are `0..len()`)
    /// `filter` accepts: the exact top-k of those, padded with `u64::MAX` when fewer than `k`
    /// pass. The filter is asked once per row per call, on the host, and its answers go to the
    /// device as a bit per row (`len() / 8` bytes); rejected rows are never candidates.
    ///
    /// # Errors
    /// As [`search`](Self::search).
    pub fn search_filtered(&self, queries: &[f32], k: usize, filter: &dyn IdFilter) -> Result<Neighbors> {
        check_k(k)?;
        let rows = prepare_rows("queries", queries, self.dim, self.metric)?;
        let mask = RowMask::new(filter, 0..self.len as u64);
        self.search_from(QuerySource::Host(rows.as_slice()), rows.len(), k, Some(&mask))
    }

    /// [`search`](Self::search) for the first `nq` rows of `queries`, which are on this
    /// index's device already (a k-means session's points): no copy from the host. The caller
    /// has validated them (finite; unit length for cosine). f32 storage only.
    pub(crate) fn search_resident(&self, queries: &CudaSlice<f32>, nq: usize, k: usize) -> Result<Neighbors> {
        check_k(k)?;
        if self.options.storage != GpuStorage::F32 {
            return Err(Error::Unsupported { what: "device-resident queries over f16 storage" });
        }
        if queries.len() < nq * self.dim {
            return Err(vq_distance::Error::OutputLength {
                what: "resident queries",
                got: queries.len(),
                expected: nq * self.dim,
            }
            .into());
        }
        self.search_from(QuerySource::Device(queries), nq, k, None)
    }

    fn search_from(&self, source: QuerySource<'_>, nq: usize, k: usize, mask: Option<&RowMask>) -> Result<Neighbors> {
        let (Some(base), Some(norms)) = (&self.base, &self.norms) else {
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
        self.gpu.bind()?;
        let elem = self.options.storage.bytes();
        let budget = match self.options.scratch_bytes {
            Some(b) => b,
            None => (self.gpu.memory_info()?.0 / 2).min(1 << 30),
        };
        let plan = TilePlan::new(nq, self.len, self.dim, k, elem, budget)?;
        self.gpu.check_fits("search scratch", plan.scratch_bytes(self.dim, k, elem))?;
        let mut backend = DeviceBackend::new(self, source, base, norms, plan, k, mask)?;
        search_tiled(&mut backend, nq, self.len, k, self.metric, plan)
    }

    /// The resident base when it is stored in f32 (what the IVF-PQ scan reads as centroids).
    pub(crate) fn base_f32(&self) -> Option<&CudaSlice<f32>> {
        match &self.base {
            Some(Base::F32(b)) => Some(b),
            _ => None,
        }
    }

    /// The stored vectors copied back to the host (normalized for cosine; f16 storage widened).
    ///
    /// # Errors
    /// [`Error::Cuda`] when the copy fails.
    pub fn to_host(&self) -> Result<Vec<f32>> {
        let stream = self.gpu.stream();
        match &self.base {
            None => Ok(Vec::new()),
            Some(Base::F32(b)) => stream.clone_dtoh(b).map_err(Error::cuda("cuMemcpyDtoH")),
            Some(Base::F16(b)) => {
                let bits = stream.clone_dtoh(b).map_err(Error::cuda("cuMemcpyDtoH"))?;
                Ok(bits.into_iter().map(|h| half::f16::from_bits(h).to_f32()).collect())
            }
        }
    }
}

/// `k` between 1 and [`MAX_K`].
pub(crate) fn check_k(k: usize) -> Result<()> {
    match k {
        0 => Err(vq_distance::Error::ZeroK.into()),
        k if k > MAX_K => Err(Error::KTooLarge { k, max: MAX_K }),
        _ => Ok(()),
    }
}

/// Where a search's query rows are.
#[derive(Clone, Copy)]
enum QuerySource<'a> {
    /// Prepared rows on the host, copied to the device batch by batch.
    Host(&'a [f32]),
    /// Rows on the device already, copied device to device batch by batch (f32 storage).
    Device(&'a CudaSlice<f32>),
}

/// The device side of `plan::search_tiled`: scratch for one query batch.
struct DeviceBackend<'a> {
    index: &'a GpuFlat,
    source: QuerySource<'a>,
    base: &'a Base,
    norms: &'a CudaSlice<f32>,
    k: usize,
    batch: usize,
    queries: CudaSlice<f32>,
    queries_f16: Option<CudaSlice<u16>>,
    query_norms: CudaSlice<f32>,
    run_keys: CudaSlice<f32>,
    run_ids: CudaSlice<u64>,
    scores: CudaSlice<f32>,
    /// The search's row mask (`None`: no filter).
    allowed: Option<CudaSlice<u32>>,
}

impl<'a> DeviceBackend<'a> {
    fn new(
        index: &'a GpuFlat,
        source: QuerySource<'a>,
        base: &'a Base,
        norms: &'a CudaSlice<f32>,
        plan: TilePlan,
        k: usize,
        mask: Option<&RowMask>,
    ) -> Result<Self> {
        let stream = index.gpu.stream();
        let qb = plan.query_batch;
        let alloc = Error::cuda("cuMemAlloc");
        let f32s = |n: usize| stream.alloc_zeros::<f32>(n);
        Ok(Self {
            index,
            source,
            base,
            norms,
            k,
            batch: 0,
            queries: f32s(qb * index.dim).map_err(alloc)?,
            queries_f16: match base {
                Base::F16(_) => Some(stream.alloc_zeros::<u16>(qb * index.dim).map_err(Error::cuda("cuMemAlloc"))?),
                Base::F32(_) => None,
            },
            query_norms: f32s(qb).map_err(Error::cuda("cuMemAlloc"))?,
            run_keys: f32s(qb * k).map_err(Error::cuda("cuMemAlloc"))?,
            run_ids: stream.alloc_zeros::<u64>(qb * k).map_err(Error::cuda("cuMemAlloc"))?,
            scores: f32s(qb * plan.base_tile).map_err(Error::cuda("cuMemAlloc"))?,
            allowed: upload_mask(index.gpu.stream(), mask)?,
        })
    }

    /// `scores[q][j] = <query q, base row tile.start + j>` for the loaded batch, by one GEMM.
    fn gemm(&mut self, tile: &Range<usize>) -> Result<()> {
        let stream = self.index.gpu.stream();
        let dim = self.index.dim;
        let ntile = tile.len();
        let (m, n, kk) = (fits_i32("tile", ntile)?, fits_i32("batch", self.batch)?, fits_i32("dim", dim)?);
        let (alpha, beta) = (1.0f32, 0.0f32);
        let rows = tile.start * dim..tile.end * dim;
        let (a_view, b_view, dtype) = match (self.base, &self.queries_f16) {
            (Base::F16(b), Some(q)) => (
                b.slice(rows).device_ptr(stream).0,
                q.slice(..self.batch * dim).device_ptr(stream).0,
                cudaDataType_t::CUDA_R_16F,
            ),
            (Base::F32(b), _) => (
                b.slice(rows).device_ptr(stream).0,
                self.queries.slice(..self.batch * dim).device_ptr(stream).0,
                cudaDataType_t::CUDA_R_32F,
            ),
            (Base::F16(_), None) => unreachable!("f16 storage always allocates f16 queries"),
        };
        let (c_ptr, _record) = self.scores.device_ptr_mut(stream);
        // Row-major base tile (ntile x dim) is column-major dim x ntile with ld = dim; so are the
        // queries. C = A^T B is column-major ntile x batch with ld = ntile, i.e. row-major
        // [batch][ntile]: each query's scores contiguous, as the selection kernel reads them.
        // SAFETY: A spans ntile * dim elements from the tile's first row and B batch * dim
        // query elements, both inside their buffers (slices checked above); C holds
        // batch * ntile <= query_batch * base_tile floats; alpha/beta are f32 as COMPUTE_32F
        // wants; the handle is bound to this stream, which orders the GEMM after the copies.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.index.gpu.blas().handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                m,
                n,
                kk,
                (&alpha as *const f32).cast::<c_void>(),
                a_view as *const c_void,
                dtype,
                kk,
                b_view as *const c_void,
                dtype,
                kk,
                (&beta as *const f32).cast::<c_void>(),
                c_ptr as *mut c_void,
                cudaDataType_t::CUDA_R_32F,
                m,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(Error::cuda("cublasGemmEx"))
    }
}

impl TileBackend for DeviceBackend<'_> {
    fn begin_batch(&mut self, batch: Range<usize>, k: usize) -> Result<()> {
        debug_assert_eq!(k, self.k);
        let stream = self.index.gpu.stream().clone();
        let dim = self.index.dim;
        self.batch = batch.len();
        let (values, cuda) = (batch.start * dim..batch.end * dim, Error::cuda);
        let dst = &mut self.queries.slice_mut(..values.len());
        match self.source {
            QuerySource::Host(all) => {
                let queries = &all[values];
                stream.memcpy_htod(queries, dst).map_err(cuda("cuMemcpyHtoD"))?;
                if let Some(q16) = &mut self.queries_f16 {
                    let bits: Vec<u16> = queries.iter().map(|&x| half::f16::from_f32(x).to_bits()).collect();
                    stream.memcpy_htod(&bits, &mut q16.slice_mut(..bits.len())).map_err(cuda("cuMemcpyHtoD"))?;
                }
            }
            // search_resident refuses f16 storage, so there is no f16 copy to make.
            QuerySource::Device(all) => stream.memcpy_dtod(&all.slice(values), dst).map_err(cuda("cuMemcpyDtoD"))?,
        }
        // Query norms from the f32 queries: they only shift each query's L2 scores, not its order.
        let cfg = LaunchConfig {
            grid_dim: (self.batch.div_ceil(8) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let (n64, dim32) = (self.batch as u64, dim as u32);
        let mut args = stream.launch_builder(&self.index.gpu.norms_f32);
        push_args!(args, ROW_NORMS_ARGS; &self.queries, &n64, &dim32, &mut self.query_norms);
        // SAFETY: reads batch * dim floats of `queries` (just written) and writes batch floats
        // of `query_norms` (len query_batch >= batch); types match vq_row_norms_f32.
        unsafe { args.launch(cfg) }.map_err(cuda("launch vq_row_norms_f32"))?;
        let n = self.batch * self.k;
        stream.memcpy_htod(&vec![f32::INFINITY; n], &mut self.run_keys.slice_mut(..n)).map_err(cuda("cuMemcpyHtoD"))?;
        stream.memcpy_htod(&vec![u64::MAX; n], &mut self.run_ids.slice_mut(..n)).map_err(cuda("cuMemcpyHtoD"))?;
        Ok(())
    }

    fn fold_tile(&mut self, tile: Range<usize>) -> Result<()> {
        self.gemm(&tile)?;
        let stream = self.index.gpu.stream().clone();
        let cfg = LaunchConfig {
            grid_dim: (self.batch as u32, 1, 1),
            block_dim: (SELECT_THREADS, 1, 1),
            shared_mem_bytes: select_shared_bytes(self.k) as u32,
        };
        let tile_norms = self.norms.slice(tile.clone());
        let (nq, ntile, id0) = (self.batch as u32, tile.len() as u32, tile.start as u64);
        let mode = if self.index.metric == Metric::L2 { MODE_L2 } else { MODE_IP };
        let (k, kp, no_cand_ids) = (self.k as u32, select_capacity(self.k) as u32, 0u64);
        let (allowed, _read) = device_ptr_or_null(self.allowed.as_ref(), &stream);
        let mut args = stream.launch_builder(&self.index.gpu.select);
        #[rustfmt::skip]
        push_args!(args, SELECT_ARGS; &self.scores, &self.query_norms, &tile_norms, &nq, &ntile, &id0, &no_cand_ids,
            &allowed, &k, &kp, &mode, &mut self.run_keys, &mut self.run_ids);
        // SAFETY: one block per query of the batch; it reads the query's ntile scores (the GEMM
        // wrote batch x ntile), its norm and ntile base norms (the tile's slice), and rewrites
        // its k running entries (buffers hold query_batch * k). The dynamic shared memory is
        // 2 * kp keys and ids as the kernel lays them out, with kp >= max(k, 2 * blockDim) a
        // power of two (select_capacity), at most 24 KiB (MAX_K). cand_ids is null (a u64 0
        // in the pointer's 8 bytes): ids are id0 + column. `allowed` is null or the search's
        // mask, a bit for each of the base's rows (id0 + column < len). Types match
        // vq_select_tile.
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
