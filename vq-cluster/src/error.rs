//! The crate's one error type.

/// Everything that can be wrong with the input of a `vq-cluster` function.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data or initial centroids are not valid vectors (zero dimension, not whole rows,
    /// NaN/infinity, a squared norm too large for f32 distances), or `k` is zero: the checks
    /// every vq crate shares, from `vq-distance`.
    #[error(transparent)]
    Input(#[from] vq_distance::Error),
    /// More centroids were asked for than there are points to train on.
    #[error("k = {k} is larger than the number of training points ({n})")]
    KExceedsPoints {
        /// The requested number of centroids.
        k: usize,
        /// The number of points given.
        n: usize,
    },
    /// The assignment step given to [`KMeans::fit_with_assigner`](crate::KMeans::fit_with_assigner)
    /// failed (a GPU error, as its implementor reports it).
    #[error("the assignment step failed: {what}")]
    Assign {
        /// The implementor's message.
        what: String,
    },
    /// A parameter is out of its range (`iterations`, `nredo`, `rounds`, the shape of the
    /// initial centroids, …).
    #[error("parameter `{name}`: {what}")]
    Parameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        what: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
