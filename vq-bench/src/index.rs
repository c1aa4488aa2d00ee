//! What the harness can build and search. Indexes join here as their crates land (through the
//! `vq` umbrella's `Index` trait once it exists); a spec is a Faiss-style factory string.

use serde_json::{Map, Value};
use vq_distance::{Metric, Neighbors, knn_exact};
use vq_graph::{Hnsw, HnswParams, QuantizedStorage, VectorStorage};
use vq_quant::{FlatCodes, OpqQuantizer, ProductQuantizer, Quantizer, ScalarQuantizer, SqType};

use crate::dataset::{Dataset, Vectors};
use crate::error::{Error, Result};
use crate::runner::LateProgress;

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
    /// Whether [`search`](BenchIndex::search) wants f32 queries: the runner then converts
    /// them once, outside the timed searches (Faiss and hnswlib are handed f32 too).
    fn takes_f32(&self) -> bool {
        true
    }
    /// Searches all `queries` (row-major, the dataset's dimension) for `k` neighbours each.
    fn search(&self, queries: &Vectors, k: usize, params: &Params) -> Result<Neighbors>;
    /// The index's own memory: what it allocated for vectors, codes, links, ids.
    fn memory_bytes(&self) -> usize;
}

/// The specs this build of the harness knows.
pub const KNOWN_SPECS: &str = "Flat, HNSW{m}[,Flat|,SQ8|,SQfp16|…|,PQ{m}[x{nbits}]], SQ8, SQ6, SQ4, SQ4U, SQfp16, SQbf16, PQ{m}[x{nbits}], OPQ{m},PQ{m}[x{nbits}]";

/// The indexes a run measures when none is named: every one vq has today.
pub fn default_specs() -> Vec<String> {
    vec!["Flat".to_string(), "HNSW16".to_string()]
}

/// The `m` and the storage of an `HNSW{m}[,storage]` spec (`Flat` when none is named).
fn hnsw_spec(spec: &str) -> Option<(usize, &str)> {
    let rest = spec.strip_prefix("HNSW")?;
    let (m, storage) = rest.split_once(',').unwrap_or((rest, "Flat"));
    Some((m.parse().ok().filter(|&m| m >= 2)?, storage))
}

/// `true` if `storage` names a vector store HNSW can be built over.
fn is_graph_storage(storage: &str) -> bool {
    storage == "Flat" || storage.parse::<SqType>().is_ok() || pq_spec(storage).is_some()
}

/// `(m, nbits)` of a `PQ{m}[x{nbits}]` spec (8 bits when not given, as in Faiss).
fn pq_spec(spec: &str) -> Option<(usize, u32)> {
    let rest = spec.strip_prefix("PQ")?;
    let (m, nbits) = rest.split_once('x').unwrap_or((rest, "8"));
    Some((m.parse().ok().filter(|&m| m >= 1)?, nbits.parse().ok()?))
}

/// `(m, nbits)` of an `OPQ{m},PQ{m}[x{nbits}]` spec (the same `m` twice).
fn opq_spec(spec: &str) -> Option<(usize, u32)> {
    let (opq, pq) = spec.split_once(',')?;
    let m: usize = opq.strip_prefix("OPQ")?.parse().ok()?;
    pq_spec(pq).filter(|&(m2, _)| m2 == m)
}

/// `true` if `spec` names an index this harness can build.
pub fn is_known(spec: &str) -> bool {
    let spec = spec.trim();
    spec == "Flat"
        || hnsw_spec(spec).is_some_and(|(_, storage)| is_graph_storage(storage))
        || spec.parse::<SqType>().is_ok()
        || pq_spec(spec).is_some()
        || opq_spec(spec).is_some()
}

/// Builds the index that `spec` names over `ds` (the caller times this; it runs on the
/// current rayon pool).
pub fn build(spec: &str, ds: &Dataset, metric: Metric) -> Result<Box<dyn BenchIndex>> {
    let spec = spec.trim();
    if spec == "Flat" {
        return Ok(Box::new(Flat { dim: ds.dim, base: ds.base.clone(), metric }));
    }
    if let Some((m, storage)) = hnsw_spec(spec) {
        let usage = |e: &dyn std::fmt::Display| Error::Usage(format!("{spec}: {e}"));
        let params = HnswParams::with_m(m);
        if storage == "Flat" {
            let index = Hnsw::new(ds.dim, metric, params).map_err(|e| usage(&e))?;
            return build_graph(spec, ds, index);
        }
        if let Ok(sq_type) = storage.parse::<SqType>() {
            let sq = ScalarQuantizer::new(ds.dim, metric, sq_type).map_err(|e| usage(&e))?;
            return build_graph(spec, ds, graph_over(sq, ds, params).map_err(|e| usage(&e))?);
        }
        if let Some((pm, nbits)) = pq_spec(storage) {
            let pq = ProductQuantizer::new(ds.dim, metric, pm, nbits).map_err(|e| usage(&e))?;
            return build_graph(spec, ds, graph_over(pq, ds, params).map_err(|e| usage(&e))?);
        }
    }
    if let Ok(sq_type) = spec.parse::<SqType>() {
        let sq = ScalarQuantizer::new(ds.dim, metric, sq_type).map_err(|e| Error::Usage(format!("{spec}: {e}")))?;
        return build_codes(spec, ds, sq);
    }
    if let Some((m, nbits)) = pq_spec(spec) {
        let pq = ProductQuantizer::new(ds.dim, metric, m, nbits).map_err(|e| Error::Usage(format!("{spec}: {e}")))?;
        return build_codes(spec, ds, pq);
    }
    if let Some((m, nbits)) = opq_spec(spec) {
        let opq = OpqQuantizer::new(ds.dim, metric, m, nbits).map_err(|e| Error::Usage(format!("{spec}: {e}")))?;
        return build_codes(spec, ds, opq);
    }
    Err(Error::UnknownIndex { spec: spec.to_string(), known: KNOWN_SPECS })
}

/// The beam widths swept by default (those of `shared/bench/peers.py`).
pub const EF_SWEEP: [usize; 13] = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 800];

/// An empty graph over `quantizer`'s codes, the quantizer trained on `ds`'s training set.
fn graph_over<Q: Quantizer + Clone>(
    mut quantizer: Q,
    ds: &Dataset,
    params: HnswParams,
) -> std::result::Result<Hnsw<QuantizedStorage<Q>>, String> {
    quantizer.train(&ds.training_set().to_f32()).map_err(|e| e.to_string())?;
    let storage = QuantizedStorage::new(quantizer).map_err(|e| e.to_string())?;
    Hnsw::with_storage(storage, params).map_err(|e| e.to_string())
}

/// Adds `ds`'s base to `index` and wraps it.
fn build_graph<S: VectorStorage + 'static>(spec: &str, ds: &Dataset, index: Hnsw<S>) -> Result<Box<dyn BenchIndex>> {
    index.reserve(ds.nb());
    add_in_slices(&format!("building {spec}"), ds, |chunk| {
        index.add(chunk).map(drop).map_err(|e| Error::Usage(format!("{spec}: {e}")))
    })?;
    Ok(Box::new(HnswIndex { factory: spec.to_string(), index }))
}

/// Feeds `ds`'s base to `add` as f32 in slices of 10,000 vectors, so the progress bar moves.
fn add_in_slices(label: &str, ds: &Dataset, mut add: impl FnMut(&[f32]) -> Result<()>) -> Result<()> {
    let base = ds.base.to_f32();
    let progress = LateProgress::new(ds.nb() as u64, label);
    for (i, chunk) in base.chunks(ds.dim * 10_000).enumerate() {
        add(chunk)?;
        progress.set(((i + 1) * 10_000).min(ds.nb()) as u64);
    }
    progress.finish();
    Ok(())
}

/// HNSW over full-precision vectors or quantized codes (`vq_graph::Hnsw`).
struct HnswIndex<S: VectorStorage> {
    factory: String,
    index: Hnsw<S>,
}

impl<S: VectorStorage> BenchIndex for HnswIndex<S> {
    fn factory(&self) -> &str {
        &self.factory
    }

    fn build_params(&self) -> Params {
        let p = self.index.params();
        let mut out = Params::new();
        out.insert("factory".into(), self.factory.clone().into());
        out.insert("M".into(), p.m.into());
        out.insert("efConstruction".into(), p.ef_construction.into());
        out
    }

    fn default_sweep(&self) -> Vec<Params> {
        EF_SWEEP
            .iter()
            .map(|&ef| {
                let mut p = Params::new();
                p.insert("ef".into(), ef.into());
                p
            })
            .collect()
    }

    fn search(&self, queries: &Vectors, k: usize, params: &Params) -> Result<Neighbors> {
        let ef = params.get("ef").or_else(|| params.get("efSearch")).and_then(Value::as_u64).map(|e| e as usize);
        let q = queries.as_f32();
        self.index.search_batch(&q, k, ef).map_err(|e| Error::Usage(format!("{}: {e}", self.factory)))
    }

    fn memory_bytes(&self) -> usize {
        self.index.memory_usage().total()
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

    fn takes_f32(&self) -> bool {
        false
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

/// An exhaustive scan over quantized codes (`vq_quant::FlatCodes`): `SQ8`, `PQ16`, … The
/// quantizer is trained on the dataset's training set, then every base vector is encoded.
struct CodesIndex<Q> {
    factory: String,
    ntrain: usize,
    index: FlatCodes<Q>,
}

/// Trains `quantizer` on `ds`'s training set, encodes the base, and wraps it for the harness.
fn build_codes<Q: Quantizer + 'static>(spec: &str, ds: &Dataset, quantizer: Q) -> Result<Box<dyn BenchIndex>> {
    let usage = |e: vq_quant::Error| Error::Usage(format!("{spec}: {e}"));
    let train = ds.training_set().to_f32();
    let mut index = FlatCodes::new(quantizer);
    index.train(&train).map_err(usage)?;
    index.reserve(ds.nb());
    add_in_slices(&format!("encoding {spec}"), ds, |chunk| index.add(chunk).map_err(usage))?;
    Ok(Box::new(CodesIndex { factory: spec.to_string(), ntrain: train.len() / ds.dim, index }))
}

impl<Q: Quantizer> BenchIndex for CodesIndex<Q> {
    fn factory(&self) -> &str {
        &self.factory
    }

    fn build_params(&self) -> Params {
        let mut p = Params::new();
        p.insert("factory".into(), self.factory.clone().into());
        p.insert("ntrain".into(), self.ntrain.into());
        p.insert("code_size".into(), self.index.quantizer().code_size().into());
        p
    }

    fn default_sweep(&self) -> Vec<Params> {
        vec![Params::new()]
    }

    fn search(&self, queries: &Vectors, k: usize, _params: &Params) -> Result<Neighbors> {
        let q = queries.as_f32();
        self.index.search(&q, k).map_err(|e| Error::Usage(format!("{}: {e}", self.factory)))
    }

    fn memory_bytes(&self) -> usize {
        self.index.memory_usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factory_strings_parse_as_faiss_spells_them() {
        for known in ["Flat", "HNSW16", "HNSW32,Flat", "HNSW32,SQ8", "HNSW16,SQfp16", "HNSW32,PQ16", "SQ4U", "PQ32x4"] {
            assert!(is_known(known), "{known}");
        }
        for unknown in ["HNSW1", "HNSW16,Bogus", "HNSW,SQ8", "IVF1024,Flat", "PQx8"] {
            assert!(!is_known(unknown), "{unknown}");
        }
        assert_eq!(hnsw_spec("HNSW24,SQ8"), Some((24, "SQ8")));
        assert_eq!(hnsw_spec("HNSW24"), Some((24, "Flat")));
    }

    #[test]
    fn a_graph_over_sq8_codes_is_built_and_searched() {
        let ds = crate::dataset::Synthetic::GaussClusters.generate(2_000, 20, 16, 3, false);
        let index = build("HNSW16,SQ8", &ds, Metric::L2).unwrap();
        let flat = build("Flat", &ds, Metric::L2).unwrap();
        let mut params = Params::new();
        params.insert("ef".into(), 64.into());
        let hits = index.search(&ds.queries, 10, &params).unwrap();
        let truth = flat.search(&ds.queries, 10, &Params::new()).unwrap();
        let overlap: usize =
            hits.iter().zip(truth.iter()).map(|((h, _), (t, _))| h.iter().filter(|id| t.contains(id)).count()).sum();
        assert!(overlap as f64 >= 0.9 * 200.0, "recall {}", overlap as f64 / 200.0);
        // One byte per component instead of four; the links are the same.
        let full = build("HNSW16", &ds, Metric::L2).unwrap();
        assert!(index.memory_bytes() < full.memory_bytes(), "{} vs {}", index.memory_bytes(), full.memory_bytes());
    }
}
