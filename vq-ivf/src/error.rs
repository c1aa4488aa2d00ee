//! The crate's one error type.

/// What was wrong with an inverted-file call's input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `add` or `search` before `train` (Faiss' "index not trained").
    #[error("the {index} index is not trained: call train() on a sample first")]
    NotTrained {
        /// The index's factory string.
        index: String,
    },
    /// Fewer training vectors than lists: k-means cannot place `nlist` centroids.
    #[error("training {index} needs at least nlist = {nlist} vectors, got {got}")]
    TooFewTrainingPoints {
        /// The index's factory string.
        index: String,
        /// Lists to train.
        nlist: usize,
        /// Vectors given.
        got: usize,
    },
    /// `nprobe = 0`: no list would be scanned.
    #[error("nprobe must be at least 1 (nprobe above nlist is clamped to nlist)")]
    ZeroNprobe,
    /// A parameter out of range.
    #[error("parameter `{name}`: {what}")]
    Parameter {
        /// Its name.
        name: &'static str,
        /// What is wrong with it.
        what: String,
    },
    /// `add_with_ids` got a different number of ids than vectors.
    #[error("{ids} ids for {vectors} vectors")]
    IdCount {
        /// Ids given.
        ids: usize,
        /// Vectors given.
        vectors: usize,
    },
    /// An id already in the index, twice in one batch, or (in `merge_from`) in both indexes.
    #[error("id {0} is already in the index")]
    DuplicateId(u64),
    /// `reconstruct` of an id the index does not hold.
    #[error("id {0} is not in the index")]
    UnknownId(u64),
    /// `merge_from` of an index whose structure (dimension, metric, lists, codec) differs.
    #[error("cannot merge: {what}")]
    Incompatible {
        /// What differs.
        what: String,
    },
    /// `merge_from` of an index trained separately: its centroids or codec parameters differ,
    /// so its codes mean something else here (merging would silently corrupt results).
    #[error(
        "cannot merge an index trained separately (trained-state fingerprint {theirs:016x}, this index {ours:016x}): \
         build every shard from the same trained, empty index"
    )]
    TrainedStateMismatch {
        /// This index's fingerprint.
        ours: u64,
        /// The other index's fingerprint.
        theirs: u64,
    },
    /// Vectors, queries or `k` refused by vq-distance's shared checks.
    #[error(transparent)]
    Input(#[from] vq_distance::Error),
    /// The codec's quantizer failed (training, encoding, its sections).
    #[error(transparent)]
    Quant(#[from] vq_quant::Error),
    /// k-means of the coarse quantizer failed.
    #[error(transparent)]
    Cluster(#[from] vq_cluster::Error),
    /// Reading or writing the container failed.
    #[error(transparent)]
    Io(#[from] vq_io::Error),
    /// Saved sections that do not describe a valid index.
    #[error("corrupt inverted-file section `{section}`: {what}")]
    Corrupt {
        /// The section.
        section: String,
        /// What is wrong with it.
        what: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
