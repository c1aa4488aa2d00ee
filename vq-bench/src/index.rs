//! What the harness builds and searches: every index of the `vq` umbrella, named by its
//! factory string and driven through `vq::Index` (the harness adds no index code of its own).

use std::time::Instant;

use serde_json::{Map, Value};
use vq::{BaseSpec, Index, IndexParams, IndexSpec, SearchParams};
use vq_distance::{Metric, Neighbors};

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::runner::{LateProgress, process_cpu_seconds};

/// Search parameters of one point of a sweep (`{}` for exhaustive search), by their Faiss /
/// hnswlib / Milvus names (`ef` or `efSearch`, `refine_k` or `k_factor`, `nprobe`).
pub type Params = Map<String, Value>;

/// An index under benchmark: a `vq::Index` and how it was built.
pub struct BenchIndex {
    factory: String,
    spec: IndexSpec,
    options: Vec<(String, Value)>,
    ntrain: usize,
    index: Box<dyn Index>,
    times: BuildTimes,
}

/// What building an index cost, train and add apart (the figures ask for both).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BuildTimes {
    /// Wall seconds of `train` (0 when the index needs no training).
    pub train_s: f64,
    /// Wall seconds of the `add` calls.
    pub add_s: f64,
    /// Process CPU seconds of both, `None` where the clock cannot be read.
    pub cpu_s: Option<f64>,
}

/// The indexes a run measures when none is named: every family vq has today. The IVF
/// indexes have 256 lists, not peers.py's 1,024 for 100,000 vectors: a shorter nprobe sweep
/// and k-means shorten the default run (BENCHMARKS.md, issue 19).
pub fn default_specs() -> Vec<String> {
    ["Flat", "HNSW16", "HNSW32,SQ8,RFlat", "SQ8", "PQ16", "PQ32x4fs", "IVF256,Flat", "IVF256,PQ16"]
        .map(String::from)
        .to_vec()
}

/// The `nprobe` values swept by default (peers.py's `NPROBE_SWEEP`), up to `nlist / 4`.
pub const NPROBE_SWEEP: [usize; 24] =
    [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096];

/// The beam widths swept by default (those of `shared/bench/peers.py`).
pub const EF_SWEEP: [usize; 13] = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 800];
/// Refine factors swept by default (peers.py's `k_factor` sweep).
pub const REFINE_K_SWEEP: [usize; 3] = [2, 4, 8];

/// A `--index` value: a factory string, then optional build parameters as `KEY=VALUE` words
/// (`"IVF1024,PQ64x4fs,RFlat by_residual=false anisotropic_threshold=0.2"`), by the names of
/// [`vq::IndexParams`] (Milvus' aliases too). Values are JSON scalars (`true`, `0.2`, `16`).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSpec {
    /// The parsed factory string.
    pub spec: IndexSpec,
    /// The parameters as given, in order.
    pub options: Vec<(String, Value)>,
    /// The same, as the umbrella reads them.
    pub params: IndexParams,
}

impl BuildSpec {
    /// Parses `FACTORY [KEY=VALUE]...`; an unknown key, a value of the wrong type or a key
    /// given twice is an error naming it.
    pub fn parse(text: &str) -> Result<Self> {
        let mut words = text.split_whitespace();
        let factory = words.next().ok_or_else(|| Error::Usage("--index: empty".into()))?;
        let spec: IndexSpec = factory.parse().map_err(|e| Error::Index(vq::Error::from(e)))?;
        let mut options: Vec<(String, Value)> = Vec::new();
        for word in words {
            let (key, value) = parse_option(word)?;
            if options.iter().any(|(k, _)| *k == key) {
                return Err(Error::Usage(format!("build parameter `{key}` given twice in `{text}`")));
            }
            options.push((key, value));
        }
        let params = index_params(&options)?;
        Ok(BuildSpec { spec, options, params })
    }

    /// Adds `key = value` unless the spec sets `key` already (`--build-param` under the
    /// spec's own words).
    pub fn with_default(mut self, key: &str, value: &Value) -> Result<Self> {
        if !self.options.iter().any(|(k, _)| k == key) {
            self.options.push((key.to_string(), value.clone()));
            self.params = index_params(&self.options)?;
        }
        Ok(self)
    }
}

/// The canonical text, which parses back to the same value: the factory string, then each
/// build parameter as `KEY=VALUE`. It is the JSONL `algo` of the index's lines, so runs with
/// other build parameters are other rows of a table and other curves of a plot.
impl std::fmt::Display for BuildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.spec)?;
        for (k, v) in &self.options {
            match v {
                Value::String(s) => write!(f, " {k}={s}")?,
                v => write!(f, " {k}={v}")?,
            }
        }
        Ok(())
    }
}

/// `KEY=VALUE`, the value a JSON scalar when it parses as one (else a string).
pub fn parse_option(word: &str) -> Result<(String, Value)> {
    let (key, value) = word
        .split_once('=')
        .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
        .ok_or_else(|| Error::Usage(format!("build parameter `{word}` is not KEY=VALUE")))?;
    let value = serde_json::from_str::<Value>(value.trim())
        .ok()
        .filter(|v| !v.is_array() && !v.is_object())
        .unwrap_or_else(|| Value::from(value.trim()));
    Ok((key.trim().to_string(), value))
}

/// The umbrella's parameters from `options`, each key checked on its own: a key that leaves
/// the parameters at their defaults is not one of theirs.
fn index_params(options: &[(String, Value)]) -> Result<IndexParams> {
    let one = |k: &str, v: &Value| {
        let map: Params = std::iter::once((k.to_string(), v.clone())).collect();
        serde_json::from_value::<IndexParams>(Value::Object(map))
            .map_err(|e| Error::Usage(format!("build parameter `{k}={v}`: {e}")))
    };
    for (k, v) in options {
        if one(k, v)? == IndexParams::default() {
            return Err(Error::Usage(format!(
                "unknown build parameter `{k}` (known: ef_construction, ef, refine_k, nprobe, by_residual, \
                 anisotropic_threshold, reorder_k, and Milvus' names)"
            )));
        }
    }
    let map: Params = options.iter().cloned().collect();
    serde_json::from_value(Value::Object(map)).map_err(|e| Error::Usage(format!("build parameters: {e}")))
}

/// Builds the index that `spec` (a [`BuildSpec`]'s text) names over `ds`: trained on the
/// dataset's training set, then every base vector added (the caller times this; it runs on
/// the current rayon pool).
pub fn build(spec: &str, ds: &Dataset, metric: Metric) -> Result<BenchIndex> {
    let parsed = BuildSpec::parse(spec)?;
    let mut index = vq::build(ds.dim, &parsed.spec, metric, &parsed.params)?;
    let mut ntrain = 0;
    // The f32 copies are made outside the timed spans: converting the data set is not building.
    let train = if index.is_trained() { None } else { Some(ds.training_set().to_f32()) };
    let base = ds.base.to_f32();
    let cpu0 = process_cpu_seconds();
    let t = Instant::now();
    if let Some(train) = &train {
        ntrain = train.len() / ds.dim;
        index.train(train)?;
    }
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    index.reserve(ds.nb());
    let label = format!("building {spec}");
    let progress = LateProgress::new(ds.nb() as u64, &label);
    for (i, chunk) in base.chunks(ds.dim * 10_000).enumerate() {
        index.add(chunk)?;
        progress.set(((i + 1) * 10_000).min(ds.nb()) as u64);
    }
    progress.finish();
    let add_s = t.elapsed().as_secs_f64();
    let cpu_s = cpu0.zip(process_cpu_seconds()).map(|(a, b)| (b - a).max(0.0));
    let times = BuildTimes { train_s, add_s, cpu_s };
    Ok(BenchIndex { factory: parsed.to_string(), spec: parsed.spec, options: parsed.options, ntrain, index, times })
}

fn usize_param(params: &Params, names: &[&str]) -> Option<usize> {
    names.iter().find_map(|n| params.get(*n)).and_then(Value::as_u64).map(|v| v as usize)
}

impl BenchIndex {
    /// The factory string, canonical, with the build parameters given (the JSONL `algo`).
    pub fn factory(&self) -> &str {
        &self.factory
    }

    /// What building it cost.
    pub fn build_times(&self) -> BuildTimes {
        self.times
    }

    /// Build parameters for the JSONL `build_params` (the factory string included).
    pub fn build_params(&self) -> Params {
        let mut p = Params::new();
        p.insert("factory".into(), self.factory.clone().into());
        if let BaseSpec::Hnsw { m, .. } = self.spec.base {
            p.insert("M".into(), m.into());
            p.insert("efConstruction".into(), vq_graph::HnswParams::with_m(m).ef_construction.into());
        }
        if let BaseSpec::Ivf { nlist, .. } = self.spec.base {
            p.insert("nlist".into(), nlist.into());
        }
        if let Some(refine) = self.spec.refine {
            p.insert("refine".into(), refine.to_string().into());
        }
        if self.ntrain > 0 {
            p.insert("ntrain".into(), self.ntrain.into());
        }
        for (k, v) in &self.options {
            p.insert(k.clone(), v.clone());
        }
        p
    }

    /// The default sweep for `k` neighbours, cheapest first: beam widths for graphs, `nprobe`
    /// for inverted files (up to `nlist / 4`, as peers.py), refine factors for refine indexes
    /// (as a grid with the beam width or with `nprobe`, powers of two only, as peers.py).
    pub fn default_sweep(&self, k: usize) -> Vec<Params> {
        if let BaseSpec::Ivf { nlist, .. } = self.spec.base {
            let refine: &[usize] = if self.spec.refine.is_some() { &REFINE_K_SWEEP } else { &[1] };
            let probes = NPROBE_SWEEP
                .iter()
                .copied()
                .filter(|&p| p <= (nlist / 4).max(1) && (self.spec.refine.is_none() || p.is_power_of_two()));
            let mut out = Vec::new();
            for &rk in refine {
                for nprobe in probes.clone() {
                    let mut p = Params::new();
                    p.insert("nprobe".into(), nprobe.into());
                    if self.spec.refine.is_some() {
                        p.insert("refine_k".into(), rk.into());
                    }
                    out.push(p);
                }
            }
            return out;
        }
        let graph = matches!(self.spec.base, BaseSpec::Hnsw { .. });
        let refine: &[usize] = if self.spec.refine.is_some() { &REFINE_K_SWEEP } else { &[1] };
        let mut out = Vec::new();
        for &rk in refine {
            let efs: Vec<usize> = if graph {
                let lo = k * rk;
                let efs: Vec<usize> = EF_SWEEP.iter().copied().filter(|&ef| ef >= lo).collect();
                if efs.is_empty() { vec![lo] } else { efs }
            } else {
                vec![0]
            };
            for ef in efs {
                let mut p = Params::new();
                if graph {
                    p.insert("ef".into(), ef.into());
                }
                if self.spec.refine.is_some() {
                    p.insert("refine_k".into(), rk.into());
                }
                out.push(p);
            }
        }
        out
    }

    /// Searches all `queries` (row-major f32, the dataset's dimension) for `k` neighbours each.
    pub fn search(&self, queries: &[f32], k: usize, params: &Params) -> Result<Neighbors> {
        let params = SearchParams {
            k,
            ef: usize_param(params, &["ef", "efSearch"]),
            nprobe: usize_param(params, &["nprobe"]),
            refine_k: usize_param(params, &["refine_k", "k_factor"]),
            ..Default::default()
        };
        Ok(self.index.search_with(queries, &params)?)
    }

    /// The index's own memory, as `vq::Index::memory_usage` reports it.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_usage().total()
    }
}

/// Rejects a spec (factory string or build parameter) before any data is loaded or ground
/// truth computed.
pub fn check_spec(spec: &str) -> Result<()> {
    BuildSpec::parse(spec).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_follow_the_spec() {
        let ds = crate::dataset::Synthetic::GaussClusters.generate(500, 20, 16, 3, false);
        let flat = build("Flat", &ds, Metric::L2).unwrap();
        assert_eq!(flat.default_sweep(10), vec![Params::new()]);
        let refined = build("HNSW16,SQ8,RFlat", &ds, Metric::L2).unwrap();
        let sweep = refined.default_sweep(10);
        assert!(sweep.iter().all(|p| {
            let (ef, rk) = (p["ef"].as_u64().unwrap(), p["refine_k"].as_u64().unwrap());
            ef >= 10 * rk
        }));
        assert_eq!(sweep.iter().filter(|p| p["refine_k"] == 8).count(), 7, "ef 96..800");
        assert!(check_spec("HNSW16,Bogus").is_err());
        assert!(check_spec("IVF16,PQ4x4fs by_residual=false").is_ok());
        assert!(check_spec("IVF16,PQ4x4fs by_resdual=false").is_err(), "a typo is not ignored");
        assert!(check_spec("IVF16,PQ4x4fs by_residual=3").is_err(), "a value of the wrong type");
        assert!(check_spec("IVF16,PQ4x4fs nprobe=2 nprobe=3").is_err());
        assert!(check_spec("IVF16,PQ4x4fs nprobe").is_err());
        let ivf = build("IVF16,PQ4,RFlat", &ds, Metric::L2).unwrap();
        let sweep = ivf.default_sweep(10);
        // nprobe 1, 2, 4 (up to nlist / 4, powers of two) × refine_k 2, 4, 8.
        assert_eq!(sweep.len(), 9);
        assert!(sweep.iter().all(|p| p["nprobe"].as_u64().unwrap() <= 4 && p.contains_key("refine_k")));
        assert_eq!(ivf.build_params()["nlist"], 16);
    }

    /// A `--index` value prints back to the text it parses from, its options reach the index
    /// (by_residual, the score-aware threshold, Milvus' names) and the JSONL build parameters,
    /// and the `algo` differs from the same factory string without them.
    #[test]
    fn build_parameters_round_trip_and_reach_the_index() {
        let text = "IVF16,PQ8x4fs,RFlat by_residual=false anisotropic_quantization_threshold=0.2 reorder_k=40";
        let parsed = BuildSpec::parse(&format!("  {text} ")).unwrap();
        assert_eq!(parsed.to_string(), text);
        assert_eq!(BuildSpec::parse(&parsed.to_string()).unwrap(), parsed);
        assert_eq!(parsed.params.by_residual, Some(false));
        assert_eq!(parsed.params.anisotropic_threshold, Some(0.2));
        assert_eq!(parsed.params.reorder_k, Some(40));
        let plain = BuildSpec::parse("IVF16,PQ8x4fs,RFlat").unwrap();
        let with = plain.clone().with_default("by_residual", &Value::Bool(false)).unwrap();
        assert_eq!(with.to_string(), "IVF16,PQ8x4fs,RFlat by_residual=false");
        // A spec's own value wins over a --build-param default.
        let kept = parsed.clone().with_default("by_residual", &Value::Bool(true)).unwrap();
        assert_eq!(kept, parsed);

        let ds = crate::dataset::Synthetic::GaussClusters.generate(1_000, 10, 16, 3, false);
        let a = build("IVF16,PQ8x4fs by_residual=false", &ds, Metric::L2).unwrap();
        let b = build("IVF16,PQ8x4fs", &ds, Metric::L2).unwrap();
        assert_eq!(a.factory(), "IVF16,PQ8x4fs by_residual=false");
        assert_eq!(a.build_params()["by_residual"], false);
        assert!(!b.build_params().contains_key("by_residual"));
        // The option changed the index: other codes, so other scores for the same query.
        let q = ds.queries.to_f32();
        let mut p = Params::new();
        p.insert("nprobe".into(), 16.into());
        let (ha, hb) = (a.search(&q, 5, &p).unwrap(), b.search(&q, 5, &p).unwrap());
        assert_ne!(ha.scores(), hb.scores());
    }

    #[test]
    fn a_refined_graph_over_sq8_beats_the_plain_one_and_is_smaller_than_hnsw_flat() {
        let ds = crate::dataset::Synthetic::GaussClusters.generate(2_000, 20, 16, 3, false);
        let q = ds.queries.to_f32();
        let truth = build("Flat", &ds, Metric::L2).unwrap().search(&q, 10, &Params::new()).unwrap();
        let recall = |spec: &str, params: Params| {
            let index = build(spec, &ds, Metric::L2).unwrap();
            let hits = index.search(&q, 10, &params).unwrap();
            let overlap: usize = hits
                .iter()
                .zip(truth.iter())
                .map(|((h, _), (t, _))| h.iter().filter(|id| t.contains(id)).count())
                .sum();
            (overlap as f64 / 200.0, index.memory_bytes())
        };
        let mut p = Params::new();
        p.insert("ef".into(), 64.into());
        let (plain, sq8_bytes) = recall("HNSW16,SQ8", p.clone());
        p.insert("refine_k".into(), 4.into());
        let (refined, _) = recall("HNSW16,SQ8,RFlat", p.clone());
        let (_, flat_bytes) = recall("HNSW16", p);
        assert!(plain >= 0.8 && refined >= plain && refined >= 0.95, "plain {plain}, refined {refined}");
        assert!(sq8_bytes < flat_bytes, "{sq8_bytes} vs {flat_bytes}");
    }
}
