//! The crate's one error type.

/// Everything that can be wrong with the input of a `vq-distance` function.
///
/// Each variant names the argument and what was wrong with it, so a caller can turn it into a
/// message without guessing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vector dimension was zero.
    #[error("dimension must be at least 1, got 0")]
    ZeroDimension,
    /// A flat buffer of vectors is not a whole number of rows.
    #[error("`{what}` has {len} values, which is not a multiple of the dimension {dim}")]
    RaggedBuffer {
        /// Which argument (`"base"`, `"queries"`, ...).
        what: &'static str,
        /// Its length in elements.
        len: usize,
        /// The dimension it was expected to be a multiple of.
        dim: usize,
    },
    /// Two vectors that must have the same length do not.
    #[error("vectors differ in length: {left} vs {right}")]
    LengthMismatch {
        /// Length of the first vector.
        left: usize,
        /// Length of the second vector.
        right: usize,
    },
    /// An output slice has the wrong length.
    #[error("output `{what}` has length {got}, expected {expected}")]
    OutputLength {
        /// Which output.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The length it must have.
        expected: usize,
    },
    /// `k` was zero.
    #[error("k must be at least 1, got 0")]
    ZeroK,
    /// A query holds a NaN or an infinity.
    #[error("query {row} has a non-finite value at component {component}")]
    NonFiniteQuery {
        /// Query row.
        row: usize,
        /// Component index inside the row.
        component: usize,
    },
    /// A query has norm zero, so its cosine similarity is undefined.
    #[error("query {row} has norm zero: cosine similarity is undefined for it")]
    ZeroNormQuery {
        /// Query row.
        row: usize,
    },
    /// The index space of the base does not fit the id type.
    #[error("base has {n} vectors, more than the supported {max}")]
    TooManyVectors {
        /// Number of vectors given.
        n: usize,
        /// Largest supported number.
        max: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
