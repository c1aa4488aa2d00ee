//! `vq::Error` as Python exceptions: the Rust message, in the class a Python caller expects.
//!
//! | Rust error | Python exception |
//! |---|---|
//! | an index that must be trained first | `vq.NotTrained` (a `vq.VqError`, a `RuntimeError`) |
//! | a malformed, truncated or foreign index file | `vq.FormatError` (a `vq.VqError`) |
//! | merging an index trained separately | `vq.FingerprintMismatch` (a `vq.VqError`) |
//! | the operating system refused a file operation | `FileNotFoundError`, `PermissionError`, `OSError` |
//! | bad input: dimension, NaN/inf, `k = 0`, factory string, parameter, ids | `ValueError` |
//! | anything else | `vq.VqError` |

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyPermissionError, PyRuntimeError, PyValueError};
use pyo3::{PyErr, create_exception};
use vq::{vq_cluster, vq_graph, vq_io, vq_ivf, vq_quant};

create_exception!(vq, VqError, PyRuntimeError, "Base class of the errors vq raises that are not bad input.");
create_exception!(
    vq,
    NotTrained,
    VqError,
    "The index learns from data (codebooks, ranges, lists): call train() first."
);
create_exception!(vq, FormatError, VqError, "A file that is not a valid vq index (bad magic, checksum, truncated, …).");
create_exception!(
    vq,
    FingerprintMismatch,
    VqError,
    "Indexes trained separately (their trained-state fingerprints differ): their codes or results cannot be combined."
);

/// [`to_py`] of an error about the caller's array `x`: a bad row is named by the Python
/// argument, not by the parameter of the Rust call that found it (`queries`, `vectors`,
/// `training data`).
pub(crate) fn x_to_py(e: vq::Error) -> PyErr {
    use vq::vq_distance::Error::{NonFinite, NormOverflow, ZeroNorm};
    to_py(match e {
        vq::Error::Distance(NonFinite { row, component, .. }) => {
            vq::Error::Distance(NonFinite { what: "x", row, component })
        }
        vq::Error::Distance(ZeroNorm { row, .. }) => vq::Error::Distance(ZeroNorm { what: "x", row }),
        vq::Error::Distance(NormOverflow { row, squared_norm, .. }) => {
            vq::Error::Distance(NormOverflow { what: "x", row, squared_norm })
        }
        e => e,
    })
}

/// The Python exception for `e`, carrying its message.
pub(crate) fn to_py(e: vq::Error) -> PyErr {
    let msg = e.to_string();
    match e {
        vq::Error::NotTrained { .. }
        | vq::Error::Ivf(vq_ivf::Error::NotTrained { .. })
        | vq::Error::Quant(vq_quant::Error::NotTrained { .. }) => NotTrained::new_err(msg),
        vq::Error::Io(e) => io_to_py(e, msg),
        vq::Error::TrainedStateMismatch { .. } => FingerprintMismatch::new_err(msg),
        vq::Error::Corrupt { .. }
        | vq::Error::Graph(vq_graph::Error::CorruptFile { .. })
        | vq::Error::Ivf(vq_ivf::Error::Corrupt { .. })
        | vq::Error::Quant(vq_quant::Error::Corrupt { .. }) => FormatError::new_err(msg),
        vq::Error::Distance(_)
        | vq::Error::Spec(_)
        | vq::Error::Parameter { .. }
        | vq::Error::IdCount { .. }
        | vq::Error::DuplicateId(_)
        | vq::Error::UnknownId(_)
        | vq::Error::MergeMismatch { .. }
        | vq::Error::Cluster(vq_cluster::Error::KExceedsPoints { .. } | vq_cluster::Error::Parameter { .. })
        | vq::Error::Quant(
            vq_quant::Error::TooFewTrainingPoints { .. }
            | vq_quant::Error::Parameter { .. }
            | vq_quant::Error::CodeLength { .. },
        )
        // The lower crates' id errors arrive lifted to `IdCount` / `DuplicateId` above.
        | vq::Error::Graph(vq_graph::Error::Parameter { .. })
        | vq::Error::Ivf(
            vq_ivf::Error::TooFewTrainingPoints { .. } | vq_ivf::Error::ZeroNprobe | vq_ivf::Error::Parameter { .. },
        ) => PyValueError::new_err(msg),
        _ => VqError::new_err(msg),
    }
}

/// File errors: the operating system's refusals keep Python's `OSError` classes (so
/// `except FileNotFoundError` works); everything about the bytes is a `FormatError`.
fn io_to_py(e: vq_io::Error, msg: String) -> PyErr {
    match e {
        vq_io::Error::Io { error, .. } => match error.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
            _ => PyOSError::new_err(msg),
        },
        vq_io::Error::InvalidArgument { .. } => PyValueError::new_err(msg),
        _ => FormatError::new_err(msg),
    }
}

/// `vq_cluster` errors go through `vq::Error`'s own conversion (input errors become
/// `Distance`), so they map like the rest.
pub(crate) fn cluster_to_py(e: vq_cluster::Error) -> PyErr {
    to_py(e.into())
}
