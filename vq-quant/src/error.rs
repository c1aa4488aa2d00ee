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
    /// A vector or buffer of vectors was refused by the checks every vq crate shares
    /// (`vq-distance`'s `prepare_rows`): zero dimension, not whole rows, a single vector of the
    /// wrong length, NaN/infinity, zero norm for cosine, a squared norm too large for f32
    /// distances, an output buffer of the wrong length, or `k = 0`.
    #[error(transparent)]
    Input(#[from] vq_distance::Error),
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
