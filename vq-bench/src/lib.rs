//! The benchmark harness of [vq](https://github.com/vq-rs/vq): every speed claim the project
//! makes goes through it.
//!
//! **Owns:** datasets (generated with fixed seeds, or read from texmex folders such as
//! `imgsift100k`), exact ground truth (computed with `vq_distance::knn_exact` and cached under a
//! hash of the data), sweeps (build once, then per search setting: QPS as the best of several
//! batches, single-query latency, recall@k against the ground truth, index bytes, peak RSS),
//! results as JSON lines in the schema of `shared/bench/peers.py` (so vq's and the peers'
//! numbers merge), a summary table and recall–QPS plots; k-means timed like peers.py's
//! `--kmeans` ([`kmeans`]).
//!
//! **Does not own:** the indexes (they come from their crates) or the command itself
//! (`cargo xtask bench` calls [`cli::main`]).
//!
//! Recall is always |found top-k ∩ exact top-k| / k against exact search, never agreement
//! between two approximate indexes ([`recall::recall_at_k`]).

pub mod cli;
pub mod dataset;
mod error;
mod files;
pub mod groundtruth;
pub mod index;
pub mod kmeans;
pub mod plot;
pub mod recall;
pub mod record;
pub mod runner;

pub use error::{Error, Result};
