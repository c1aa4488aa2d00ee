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
    /// A single vector has the wrong number of components.
    #[error("`{what}` has {got} components, expected {expected}")]
    Dimension {
        /// Which argument (`"query"`, `"vector"`, ...).
        what: &'static str,
        /// Its length.
        got: usize,
        /// The dimension it must have.
        expected: usize,
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
    /// A vector holds a NaN or an infinity.
    #[error("`{what}` row {row} has a non-finite value at component {component}")]
    NonFinite {
        /// Which argument (`"queries"`, `"base"`, `"vectors"`, ...).
        what: &'static str,
        /// The row (0 for a single vector).
        row: usize,
        /// Component index inside the row.
        component: usize,
    },
    /// A vector has norm zero, so its cosine similarity is undefined.
    #[error("`{what}` row {row} has norm zero: cosine similarity is undefined for it")]
    ZeroNorm {
        /// Which argument.
        what: &'static str,
        /// The row (0 for a single vector).
        row: usize,
    },
    /// A vector's squared norm exceeds [`MAX_SQUARED_NORM`](crate::MAX_SQUARED_NORM)
    /// (2¹⁰⁰, a norm of about 1.1e15): its distances could overflow f32. Scale the data down.
    #[error(
        "`{what}` row {row} has squared norm {squared_norm:e}, above the supported 2^100 (~1.27e30): scale the data down"
    )]
    NormOverflow {
        /// Which argument.
        what: &'static str,
        /// The row (0 for a single vector).
        row: usize,
        /// Its squared norm, computed in f64.
        squared_norm: f64,
    },
    /// A search result padded to `k` per query (`queries × k` ids and scores) cannot be held:
    /// the product overflows or the allocator refused it. Ask for at most the index size.
    #[error("a result of {queries} queries × k = {k} cannot be allocated: ask for k at most the index size")]
    ResultTooLarge {
        /// Number of queries.
        queries: usize,
        /// The `k` asked for.
        k: usize,
    },
    /// A range search's radius was NaN (every comparison with it would be false).
    #[error("radius must be a number, got NaN")]
    NanRadius,
    /// A range search found more hits than can be held: the allocator refused the result's
    /// `hits` ids and scores. Narrow the radius or search fewer queries at once.
    #[error("a range search result of {hits} hits cannot be allocated: narrow the radius")]
    RangeTooLarge {
        /// Hits found (in the result so far, plus the batch that did not fit).
        hits: usize,
    },
    /// An id of the caller's was `u64::MAX`, which pads answers shorter than `k`.
    #[error("id {} is reserved: it marks a missing hit in search results", u64::MAX)]
    ReservedId,
    /// An automatic `add` would number vectors up to `u64::MAX` (ids given earlier reached
    /// that far): add them under ids of the caller's.
    #[error(
        "cannot number {n} more vectors from id {next}: automatic ids end at {}; give ids with add_with_ids",
        u64::MAX - 1
    )]
    IdsExhausted {
        /// The first automatic id.
        next: u64,
        /// Vectors to number.
        n: usize,
    },
    /// A merge's `shift_ids` takes an id past the last one (`u64::MAX − 1`).
    #[error("shift_ids {shift} takes id {id} past {}, the last id (u64::MAX pads short answers)", u64::MAX - 1)]
    IdShift {
        /// The id before the shift.
        id: u64,
        /// The shift.
        shift: u64,
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
