//! The crate's one error type.

use std::path::PathBuf;

/// What went wrong in a benchmark run; every message is one line that names its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command-line argument is wrong.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A data file is malformed.
    #[error("{path}: {what}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (and where).
        what: String,
    },
    /// A dataset name or path does not resolve to data.
    #[error("dataset `{name}`: {what}")]
    Dataset {
        /// The name or path given.
        name: String,
        /// Why it cannot be used.
        what: String,
    },
    /// Base, queries and ground truth do not fit together.
    #[error("{0}")]
    Mismatch(String),
    /// An index could not be built or searched, or its factory string is not understood.
    #[error(transparent)]
    Index(#[from] vq::Error),
    /// A dataset file could not be read or written (the message names the file and the row).
    #[error(transparent)]
    File(#[from] vq_io::Error),
    /// A search or build failed inside vq.
    #[error(transparent)]
    Distance(#[from] vq_distance::Error),
    /// A plot could not be drawn.
    #[error("plot {path}: {what}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// What failed.
        what: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn bad_file(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::BadFile { path: path.into(), what: what.into() }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
