//! `vq::Error`: every crate's error under one type, plus what only the umbrella can get wrong.

use crate::spec::SpecError;

/// Everything that can go wrong through the `vq` API. The lower crates' errors are kept whole,
/// so `matches!(e, vq::Error::Graph(vq_graph::Error::Full { .. }))` works and the message is
/// the lower crate's own — except their wrapped input and file errors, which are lifted to
/// [`Error::Distance`] and [`Error::Io`], and their id errors, lifted to the shared variants:
/// a bad query, `k` or id reads the same whichever index refused it
/// (`vq::Error::Distance(ZeroK)`, never `Quant(Input(ZeroK))`; `vq::Error::DuplicateId(7)`
/// from a graph as from an inverted file).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input checks, kernels, exact search.
    #[error(transparent)]
    Distance(#[from] vq_distance::Error),
    /// Files: the container, dataset formats.
    #[error(transparent)]
    Io(#[from] vq_io::Error),
    /// k-means.
    #[error(transparent)]
    Cluster(vq_cluster::Error),
    /// Quantizers and exhaustive code scans.
    #[error(transparent)]
    Quant(vq_quant::Error),
    /// HNSW graphs.
    #[error(transparent)]
    Graph(vq_graph::Error),
    /// Inverted files (what is not one of the shared variants: nprobe = 0, too few training
    /// points, merging separately trained indexes, …).
    #[error(transparent)]
    Ivf(vq_ivf::Error),
    /// A factory string that does not parse.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The index learns from data (codebooks, ranges) and `train` has not run.
    #[error("the {spec} index is not trained: call train() on a sample first")]
    NotTrained {
        /// The index's factory string.
        spec: String,
    },
    /// A parameter outside its range, or one the index cannot use with this data.
    #[error("parameter `{name}`: {what}")]
    Parameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        what: String,
    },
    /// `add_with_ids` got as many ids as vectors.
    #[error("{ids} ids for {vectors} vectors")]
    IdCount {
        /// Ids given.
        ids: usize,
        /// Vectors given.
        vectors: usize,
    },
    /// An id that is already in the index (or twice in one batch).
    #[error("id {0} is already in the index")]
    DuplicateId(u64),
    /// [`Index::merge_from`](crate::Index::merge_from) on an index that cannot take in
    /// another (graphs, flat scans).
    #[error(
        "the {spec} index cannot merge another index: only inverted files (IVF…) merge; keep such shards apart and merge their search results (merge_topk)"
    )]
    NotMergeable {
        /// The index's factory string.
        spec: String,
    },
    /// [`Index::merge_from`](crate::Index::merge_from) of an index of another kind.
    #[error("cannot merge a {theirs} index into a {ours} index")]
    MergeMismatch {
        /// The other index's factory string.
        theirs: String,
        /// This index's factory string.
        ours: String,
    },
    /// [`Index::merge_from`](crate::Index::merge_from) of an index trained separately: its
    /// centroids, codebooks or ranges differ, so its codes mean something else here.
    #[error(
        "cannot merge an index trained separately (trained-state fingerprint {theirs:016x}, this index {ours:016x}): build every shard from the same trained, empty index"
    )]
    TrainedStateMismatch {
        /// This index's fingerprint.
        ours: u64,
        /// The other index's fingerprint.
        theirs: u64,
    },
    /// An id that is not in the index (never added, or removed): what `reconstruct` was
    /// asked for.
    #[error("id {0} is not in the index")]
    UnknownId(u64),
    /// Something this index does not do (GPU indexes: merging), or an index
    /// with no GPU version given to `gpu::index_cpu_to_gpu` (feature `gpu`).
    #[error("the {spec} index does not support {what}")]
    Unsupported {
        /// The index's factory string (GPU indexes say so: `Flat (GPU)`).
        spec: String,
        /// What was asked of it.
        what: String,
    },
    /// The GPU layer (feature `gpu`): [`vq_gpu::Error::NoDevice`] naming what is missing (no
    /// driver, no CUDA library, no device) wherever there is no usable GPU, out of device
    /// memory with the sizes, `k` above [`vq_gpu::MAX_K`], a failed CUDA call.
    #[cfg(feature = "gpu")]
    #[error(transparent)]
    Gpu(vq_gpu::Error),
    /// A file whose sections do not describe a valid index.
    #[error("index file: {what}")]
    Corrupt {
        /// What is inconsistent.
        what: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<vq_cluster::Error> for Error {
    fn from(e: vq_cluster::Error) -> Self {
        match e {
            vq_cluster::Error::Input(e) => Error::Distance(e),
            e => Error::Cluster(e),
        }
    }
}

impl From<vq_quant::Error> for Error {
    fn from(e: vq_quant::Error) -> Self {
        match e {
            vq_quant::Error::Input(e) => Error::Distance(e),
            vq_quant::Error::Io(e) => Error::Io(e),
            vq_quant::Error::Cluster(e) => e.into(),
            e => Error::Quant(e),
        }
    }
}

impl From<vq_graph::Error> for Error {
    fn from(e: vq_graph::Error) -> Self {
        match e {
            vq_graph::Error::Input(e) => Error::Distance(e),
            vq_graph::Error::Io(e) => Error::Io(e),
            vq_graph::Error::Quant(e) => e.into(),
            vq_graph::Error::UnknownId(id) => Error::UnknownId(id),
            vq_graph::Error::DuplicateId(id) => Error::DuplicateId(id),
            vq_graph::Error::IdCount { ids, vectors } => Error::IdCount { ids, vectors },
            e => Error::Graph(e),
        }
    }
}

#[cfg(feature = "gpu")]
impl From<vq_gpu::Error> for Error {
    fn from(e: vq_gpu::Error) -> Self {
        match e {
            vq_gpu::Error::Distance(e) => Error::Distance(e),
            vq_gpu::Error::Ivf(e) => crate::ivf::ivf_error(e, String::new),
            e => Error::Gpu(e),
        }
    }
}
