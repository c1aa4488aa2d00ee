//! The crate's one error type.

/// What was wrong with a quantizer call's input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Encode, decode or search was called before `train`.
    #[error("the {quantizer} quantizer is not trained: call train() on a sample first")]
    NotTrained {
        /// Which quantizer (`"SQ8"`, `"PQ16x8"`, …).
        quantizer: String,
    },
    /// A flat buffer of vectors is not a whole number of rows, or a single vector has the
    /// wrong length.
    #[error("`{what}` has {len} values, not a multiple of the dimension {dim}")]
    Dimension {
        /// Which argument (`"vectors"`, `"query"`, …).
        what: &'static str,
        /// Its length.
        len: usize,
        /// The quantizer's dimension.
        dim: usize,
    },
    /// A code buffer does not match the number of vectors or the code size.
    #[error("`{what}` has {len} bytes, expected {expected}")]
    CodeLength {
        /// Which argument.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The length it must have.
        expected: usize,
    },
    /// A vector holds NaN or an infinity.
    #[error("{what} row {row} has a non-finite value at component {component}")]
    NonFinite {
        /// Which argument.
        what: &'static str,
        /// The row.
        row: usize,
        /// The component.
        component: usize,
    },
    /// A vector has norm zero, so it has no direction for cosine.
    #[error("{what} row {row} has norm zero: cosine similarity is undefined for it")]
    ZeroNorm {
        /// Which argument.
        what: &'static str,
        /// The row.
        row: usize,
    },
    /// The training sample is too small for what the quantizer must learn.
    #[error("training {quantizer} needs at least {needed} vectors, got {got}")]
    TooFewTrainingPoints {
        /// Which quantizer.
        quantizer: String,
        /// The minimum.
        needed: usize,
        /// What was given.
        got: usize,
    },
    /// `k` was zero.
    #[error("k must be at least 1, got 0")]
    ZeroK,
    /// A parameter is out of range or inconsistent with another (`d` not divisible by `m`,
    /// `nbits` outside 4..=8, …).
    #[error("parameter `{name}`: {what}")]
    Parameter {
        /// Its name.
        name: &'static str,
        /// What is wrong with it.
        what: String,
    },
    /// Training a codebook failed in k-means.
    #[error("k-means: {0}")]
    Cluster(#[from] vq_cluster::Error),
    /// Reading or writing a container failed, or it holds invalid quantizer parameters.
    #[error("{0}")]
    Io(#[from] vq_io::Error),
    /// A saved quantizer's sections are inconsistent.
    #[error("corrupt quantizer section `{section}`: {what}")]
    Corrupt {
        /// The section.
        section: String,
        /// What is wrong with it.
        what: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
