//! The crate's one error type.

/// Everything that can be wrong with the input of a `vq-cluster` function.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vector dimension was zero.
    #[error("dimension must be at least 1, got 0")]
    ZeroDimension,
    /// The data is not a whole number of `dim`-wide rows.
    #[error("`{what}` has {len} values, which is not a multiple of the dimension {dim}")]
    DimensionMismatch {
        /// Which argument (`"data"`, `"init centroids"`).
        what: &'static str,
        /// Its length in elements.
        len: usize,
        /// The dimension.
        dim: usize,
    },
    /// `k` was zero.
    #[error("k must be at least 1, got 0")]
    ZeroK,
    /// More centroids were asked for than there are points to train on.
    #[error("k = {k} is larger than the number of training points ({n})")]
    KExceedsPoints {
        /// The requested number of centroids.
        k: usize,
        /// The number of points given.
        n: usize,
    },
    /// `iterations` was zero.
    #[error("iterations must be at least 1, got 0")]
    ZeroIterations,
    /// A parameter is out of its range.
    #[error("parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A training point (or an initial centroid) holds a NaN or an infinity.
    #[error("`{what}` row {row} has a non-finite value at component {component}")]
    NonFinite {
        /// Which argument (`"data"`, `"init centroids"`).
        what: &'static str,
        /// Row index.
        row: usize,
        /// Component index inside the row.
        component: usize,
    },
    /// The squared distance of a training point to every centroid overflows f32 (values of
    /// magnitude around 1e19 or more): scale the data down.
    #[error("training point {row}: its squared distance to every centroid overflows f32")]
    DistanceOverflow {
        /// Row of the (possibly sampled) training set.
        row: usize,
    },
    /// Initial centroids were given with the wrong shape.
    #[error("initial centroids: expected {expected} values (k × dim), got {got}")]
    InitShape {
        /// `k × dim`.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// An error from the distance kernels (e.g. a point to assign holds a NaN).
    #[error(transparent)]
    Distance(#[from] vq_distance::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
