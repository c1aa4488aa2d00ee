//! The crate's one error type.

/// What was wrong with an HNSW call's input.
///
/// Not `Clone` or `PartialEq`: it carries `vq-io`'s and `vq-quant`'s errors as typed sources,
/// which hold `std::io::Error`s; tests compare with `matches!`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector or buffer of vectors was refused by the checks every vq crate shares
    /// (`vq-distance`'s `prepare_rows`): not whole rows, a vector of the wrong dimension,
    /// NaN/infinity, zero norm for cosine, a squared norm too large for f32 distances, or
    /// `k = 0`. The inner error names the argument (`"query"`, `"queries"`, `"vectors"`) and row.
    #[error(transparent)]
    Input(#[from] vq_distance::Error),
    /// An external id is already in the index.
    #[error("id {0} is already in the index")]
    DuplicateId(u64),
    /// An external id is not in the index.
    #[error("id {0} is not in the index")]
    UnknownId(u64),
    /// The ids given do not match the vectors given.
    #[error("{ids} ids for {vectors} vectors")]
    IdCount {
        /// Number of ids.
        ids: usize,
        /// Number of vectors.
        vectors: usize,
    },
    /// A parameter is out of range.
    #[error("parameter `{name}`: {what}")]
    Parameter {
        /// Its name.
        name: &'static str,
        /// What is wrong with it.
        what: String,
    },
    /// Reading or writing a container failed (the error names the file and section).
    #[error(transparent)]
    Io(#[from] vq_io::Error),
    /// The quantizer under a [`QuantizedStorage`](crate::QuantizedStorage) refused its input or
    /// its saved sections.
    #[error(transparent)]
    Quant(#[from] vq_quant::Error),
    /// A file is not a valid index.
    #[error("{path}: {what}")]
    CorruptFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The index cannot hold more vectors (internal slots are `u32`).
    #[error("the index is full: at most {max} vectors")]
    Full {
        /// The limit.
        max: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
