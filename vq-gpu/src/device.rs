//! Device discovery: one [`Gpu`] per device holds the context, a stream, a cuBLAS handle and
//! the compiled kernels. Every check that can fail without a GPU runs before any cudarc call
//! that would panic: with run-time loading, cudarc panics when a library or symbol is missing.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};

use crate::error::{Error, Result};
use crate::kernels;

/// One CUDA device ready for vq-gpu's indexes: context, stream, cuBLAS handle and kernels.
///
/// Operations on one `Gpu` are serialized on its stream; indexes share it through `Arc`.
pub struct Gpu {
    ordinal: usize,
    name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    _module: Arc<CudaModule>,
    pub(crate) norms_f32: CudaFunction,
    pub(crate) norms_f16: CudaFunction,
    pub(crate) select: CudaFunction,
    pub(crate) ivf_scan: CudaFunction,
    pub(crate) ivfsq_scan: CudaFunction,
    pub(crate) ivfpq_scan: CudaFunction,
    pub(crate) kmeans_update: CudaFunction,
    /// The dynamic shared memory `vq_ivfpq_scan` may take per block, in bytes.
    pq_scan_max_shared: usize,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("ordinal", &self.ordinal).field("name", &self.name).finish_non_exhaustive()
    }
}

/// Which CUDA libraries vq-gpu needs and cannot find, or `Ok` when all load.
///
/// # Errors
/// [`Error::NoDevice`] naming the missing libraries.
pub fn check_libraries() -> Result<()> {
    let present = [
        // SAFETY: only tries to dlopen libcuda under cudarc's candidate names; no symbol is called.
        ("libcuda (the driver)", unsafe { cudarc::driver::sys::is_culib_present() }),
        // SAFETY: as above, for libcublas.
        ("libcublas", unsafe { cudarc::cublas::sys::is_culib_present() }),
        // SAFETY: as above, for libnvrtc.
        ("libnvrtc", unsafe { cudarc::nvrtc::sys::is_culib_present() }),
    ];
    let missing: Vec<&str> = present.iter().filter(|(_, ok)| !ok).map(|(name, _)| *name).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::NoDevice { reason: format!("{} not found on the library path", missing.join(", ")) })
    }
}

/// Runs a cudarc call that may panic (a symbol missing from an old driver) as a `Result`.
fn guarded<T>(
    call: &'static str,
    f: impl FnOnce() -> std::result::Result<T, cudarc::driver::DriverError>,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(Error::cuda(call)),
        Err(_) => Err(Error::NoDevice { reason: format!("{call} panicked inside cudarc (incompatible driver?)") }),
    }
}

/// The number of CUDA devices, or [`Error::NoDevice`] when there is no driver or no device.
///
/// # Errors
/// [`Error::NoDevice`] when a library is missing or the driver reports no device.
pub fn device_count() -> Result<usize> {
    check_libraries()?;
    match guarded("cuDeviceGetCount", CudaContext::device_count) {
        Ok(n) if n > 0 => Ok(n as usize),
        Ok(_) => Err(Error::NoDevice { reason: "the driver reports no CUDA device".into() }),
        Err(Error::Cuda { message, .. }) => {
            Err(Error::NoDevice { reason: format!("cuInit / cuDeviceGetCount: {message}") })
        }
        Err(e) => Err(e),
    }
}

impl Gpu {
    /// Opens device `ordinal`: creates its context, a stream and a cuBLAS handle, and compiles
    /// and loads the kernels.
    ///
    /// # Errors
    /// [`Error::NoDevice`] without a driver, device or library, or for an ordinal past the last
    /// device; [`Error::Compile`] / [`Error::Cuda`] when a kernel does not build or load.
    pub fn new(ordinal: usize) -> Result<Arc<Self>> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(Error::NoDevice { reason: format!("device {ordinal} asked for, {count} present") });
        }
        let ctx = guarded("cuCtxCreate", || CudaContext::new(ordinal))?;
        let name = ctx.name().map_err(Error::cuda("cuDeviceGetName"))?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(Error::cuda("cublasCreate"))?;
        let module = ctx.load_module(kernels::compile_ptx()?).map_err(Error::cuda("cuModuleLoadData"))?;
        let load = |name: &'static str| module.load_function(name).map_err(Error::cuda("cuModuleGetFunction"));
        let ivfpq_scan = load("vq_ivfpq_scan")?;
        let pq_scan_max_shared = opt_in_shared(&ctx, &ivfpq_scan);
        Ok(Arc::new(Self {
            ordinal,
            name,
            norms_f32: load("vq_row_norms_f32")?,
            norms_f16: load("vq_row_norms_f16")?,
            select: load("vq_select_tile")?,
            ivf_scan: load("vq_ivf_scan")?,
            ivfsq_scan: load("vq_ivfsq_scan")?,
            ivfpq_scan,
            pq_scan_max_shared,
            kmeans_update: load("vq_kmeans_update")?,
            _module: module,
            ctx,
            stream,
            blas,
        }))
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The device's name as the driver reports it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `(free, total)` device memory in bytes.
    ///
    /// # Errors
    /// [`Error::Cuda`] when the driver call fails.
    pub fn memory_info(&self) -> Result<(usize, usize)> {
        self.ctx.mem_get_info().map_err(Error::cuda("cuMemGetInfo"))
    }

    /// `Ok` when `bytes` fit in the free device memory, else [`Error::OutOfMemory`] with sizes.
    pub(crate) fn check_fits(&self, what: &'static str, bytes: usize) -> Result<()> {
        let (free, total) = self.memory_info()?;
        if bytes > free { Err(Error::OutOfMemory { what, requested: bytes, free, total }) } else { Ok(()) }
    }

    /// Makes this device's context current on the calling thread: cuBLAS calls (unlike
    /// cudarc's own) use whatever context the thread has, and `GpuShards` searches from threads
    /// of its own.
    pub(crate) fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(Error::cuda("cuCtxSetCurrent"))
    }

    /// The dynamic shared memory the IVF-PQ scan may take per block, in bytes: what the device
    /// lets a kernel opt in to, or the 48 KiB every device gives.
    pub(crate) fn pq_scan_max_shared(&self) -> usize {
        self.pq_scan_max_shared
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub(crate) fn blas(&self) -> &CudaBlas {
        &self.blas
    }
}

/// Opts `kernel` (whose shared memory is all dynamic) in to the most dynamic shared memory a
/// block of this device may have, and returns it; the 48 KiB every device gives when the
/// device offers no more or the driver refuses.
fn opt_in_shared(ctx: &CudaContext, kernel: &CudaFunction) -> usize {
    let default = kernels::DEFAULT_SHARED_PER_BLOCK;
    let attribute = CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN;
    let offered = ctx.attribute(attribute).ok().and_then(|b| usize::try_from(b).ok()).unwrap_or(0);
    let limit = CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
    match offered > default && kernel.set_attribute(limit, offered as i32).is_ok() {
        true => offered,
        false => default,
    }
}
