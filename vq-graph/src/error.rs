//! The crate's one error type.

/// What was wrong with an HNSW call's input.
///
/// Not `Clone` or `PartialEq`: it carries `vq-io`'s and `vq-quant`'s errors as typed sources,
/// which hold `std::io::Error`s; tests compare with `matches!`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector has the wrong number of components.
    #[error("{what} has dimension {got}, the index has {expected}")]
    Dimension {
        /// Which input (`"vector 3"`, `"query"`, …).
        what: String,
        /// Its length.
        got: usize,
        /// The index's dimension.
        expected: usize,
    },
    /// A flat buffer of vectors is not a whole number of rows.
    #[error("`{what}` has {len} values, not a multiple of the dimension {dim}")]
    RaggedBuffer {
        /// Which argument.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The dimension.
        dim: usize,
    },
    /// A vector holds NaN or an infinity.
    #[error("{what} has a non-finite value at component {component}")]
    NonFinite {
        /// Which input.
        what: String,
        /// The component.
        component: usize,
    },
    /// A vector has norm zero, so it has no direction for cosine.
    #[error("{what} has norm zero: cosine similarity is undefined for it")]
    ZeroNorm {
        /// Which input.
        what: String,
    },
    /// `k` was zero.
    #[error("k must be at least 1, got 0")]
    ZeroK,
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
