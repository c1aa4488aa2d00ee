//! The one error type of vq-gpu.

/// Everything that can go wrong in vq-gpu; each variant says which input or which CUDA call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable GPU: a CUDA library is missing, the driver reports no device, or the ordinal
    /// is out of range. GPU tests skip on this error.
    #[error("no CUDA device available: {reason}")]
    NoDevice {
        /// Why (which library was not found, what the driver said).
        reason: String,
    },
    /// A device allocation would not fit in the memory the device reports free.
    #[error("out of device memory for {what}: needs {requested} bytes, {free} bytes free of {total}")]
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// Bytes asked for.
        requested: usize,
        /// Bytes free on the device when asked.
        free: usize,
        /// The device's total memory.
        total: usize,
    },
    /// An input's dimension is not the index's.
    #[error("{what}: dimension {got} does not match the index's {expected}")]
    DimensionMismatch {
        /// Which input.
        what: &'static str,
        /// The index's dimension.
        expected: usize,
        /// The input's dimension.
        got: usize,
    },
    /// An index's metric is not the others'.
    #[error("{what}: metric differs from the first one's {expected}")]
    MetricMismatch {
        /// Which input.
        what: &'static str,
        /// The metric expected.
        expected: vq_distance::Metric,
    },
    /// `k` is above what the selection kernel supports.
    #[error("k = {k} is above the GPU maximum of {max}")]
    KTooLarge {
        /// The k asked for.
        k: usize,
        /// [`crate::MAX_K`].
        max: usize,
    },
    /// A size does not fit the 32-bit counts cuBLAS and the kernels take.
    #[error("{what} = {got} is above the GPU limit of {max}")]
    TooLarge {
        /// Which size.
        what: &'static str,
        /// The size.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// Something the GPU indexes do not do (an HNSW coarse quantizer, training a filled index).
    #[error("not supported on the GPU: {what}")]
    Unsupported {
        /// What was asked.
        what: &'static str,
    },
    /// vq-ivf refused (parameters, training, ids: `NotTrained`, `DuplicateId`, `IdCount`, ...).
    #[error(transparent)]
    Ivf(#[from] vq_ivf::Error),
    /// The input was rejected by vq-distance (k = 0, NaN, wrong length, ...).
    #[error(transparent)]
    Distance(#[from] vq_distance::Error),
    /// NVRTC rejected a kernel source (a bug in vq-gpu; the log says where).
    #[error("NVRTC failed to compile {what}: {log}")]
    Compile {
        /// Which source.
        what: &'static str,
        /// The compiler's message and log.
        log: String,
    },
    /// A CUDA driver, cuBLAS or launch call failed.
    #[error("CUDA call {call} failed: {message}")]
    Cuda {
        /// The call that failed.
        call: &'static str,
        /// The CUDA error as cudarc reports it.
        message: String,
    },
}

/// `Result` with this crate's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a cudarc error (driver, cuBLAS) as [`Error::Cuda`] naming `call`.
    pub(crate) fn cuda<E: std::fmt::Debug>(call: &'static str) -> impl FnOnce(E) -> Self {
        move |e| Self::Cuda { call, message: format!("{e:?}") }
    }
}
