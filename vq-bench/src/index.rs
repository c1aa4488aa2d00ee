//! What the harness can build and search. Indexes join here as their crates land (through the
//! `vq` umbrella's `Index` trait once it exists); a spec is a Faiss-style factory string.

use serde_json::{Map, Value};
use vq_distance::{Metric, Neighbors, knn_exact};

use crate::dataset::{Dataset, Vectors};
use crate::error::{Error, Result};

/// Search parameters of one point of a sweep (`{}` for exhaustive search), by their Faiss /
/// hnswlib names (`efSearch`, `nprobe`, …).
pub type Params = Map<String, Value>;

/// An index under benchmark.
pub trait BenchIndex: Send + Sync {
    /// The factory string this index was built from (the JSONL `algo`).
    fn factory(&self) -> &str;
    /// Build parameters for the JSONL `build_params` (the factory string included).
    fn build_params(&self) -> Params;
    /// The default sweep: the search settings to measure, cheapest first.
    fn default_sweep(&self) -> Vec<Params>;
    /// Searches all `queries` (row-major, the dataset's dimension) for `k` neighbours each.
    fn search(&self, queries: &Vectors, k: usize, params: &Params) -> Result<Neighbors>;
    /// The index's own memory: what it allocated for vectors, codes, links, ids.
    fn memory_bytes(&self) -> usize;
}

/// The specs this build of the harness knows.
pub const KNOWN_SPECS: &str = "Flat";

/// The indexes a run measures when none is named: every one vq has today.
pub fn default_specs() -> Vec<String> {
    vec!["Flat".to_string()]
}

/// Builds the index that `spec` names over `ds` (the caller times this).
pub fn build(spec: &str, ds: &Dataset, metric: Metric) -> Result<Box<dyn BenchIndex>> {
    match spec.trim() {
        "Flat" => Ok(Box::new(Flat { dim: ds.dim, base: ds.base.clone(), metric })),
        other => Err(Error::UnknownIndex { spec: other.to_string(), known: KNOWN_SPECS }),
    }
}

/// Exact search: `vq_distance::knn_exact` over the stored vectors, in their own type.
struct Flat {
    dim: usize,
    base: Vectors,
    metric: Metric,
}

impl BenchIndex for Flat {
    fn factory(&self) -> &str {
        "Flat"
    }

    fn build_params(&self) -> Params {
        let mut p = Params::new();
        p.insert("factory".into(), "Flat".into());
        p.insert("elem".into(), self.base.elem().into());
        p
    }

    fn default_sweep(&self) -> Vec<Params> {
        vec![Params::new()]
    }

    fn search(&self, queries: &Vectors, k: usize, _params: &Params) -> Result<Neighbors> {
        let hits = match (&self.base, queries) {
            (Vectors::F32(b), Vectors::F32(q)) => knn_exact(b, q, self.dim, k, self.metric)?,
            (Vectors::U8(b), Vectors::U8(q)) => knn_exact(b, q, self.dim, k, self.metric)?,
            _ => return Err(Error::Mismatch("queries and base have different element types".into())),
        };
        Ok(hits)
    }

    fn memory_bytes(&self) -> usize {
        self.base.len() * self.base.elem_bytes()
    }
}
