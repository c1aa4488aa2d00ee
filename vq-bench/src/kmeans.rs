//! `cargo xtask bench --kmeans`: times vq-cluster's k-means on a dataset the way
//! `shared/bench/peers.py --kmeans` times `faiss.Kmeans`, and writes one JSON line with the
//! fields of peers.py's k-means lines, so one command pair measures both.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};
use vq_cluster::KMeans;
use vq_distance::{Element, Metric};

use crate::dataset::{Dataset, Vectors};
use crate::error::{Error, Result};
use crate::runner::process_cpu_seconds;

/// Which of a dataset's sets is clustered (peers.py's `--kmeans-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// The base vectors (peers.py's default).
    Base,
    /// The `learn` set.
    Learn,
}

impl std::str::FromStr for On {
    type Err = Error;

    fn from_str(s: &str) -> Result<On> {
        match s {
            "base" => Ok(On::Base),
            "learn" => Ok(On::Learn),
            other => Err(Error::Usage(format!("--kmeans-on: `{other}` is not base or learn"))),
        }
    }
}

impl On {
    /// The name peers.py writes in `params.on`.
    pub fn name(self) -> &'static str {
        match self {
            On::Base => "base",
            On::Learn => "learn",
        }
    }
}

/// A k-means measurement, with peers.py's parameters and defaults.
#[derive(Debug, Clone)]
pub struct KmeansConfig {
    /// Centroids.
    pub k: usize,
    /// Lloyd iterations (peers.py `--niter`, default 20).
    pub niter: usize,
    /// Seed (peers.py `--seed`, default 1234).
    pub seed: u64,
    /// Which set is clustered.
    pub on: On,
    /// Worker threads.
    pub threads: usize,
    /// `l2` and `ip` run plain k-means; `cosine` normalizes the points and runs spherical
    /// k-means, as peers.py does.
    pub metric: Metric,
}

/// Faiss' sampling cap, which peers.py passes explicitly.
const MAX_POINTS_PER_CENTROID: usize = 256;

fn normalized(v: &Vectors, dim: usize) -> Vec<f32> {
    let mut x = v.to_f32();
    // Zero rows stay zero, as peers.py's normalize_rows leaves them.
    for row in x.chunks_mut(dim) {
        let norm = row.iter().map(|&a| f64::from(a) * f64::from(a)).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|a| *a = (f64::from(*a) / norm) as f32);
        }
    }
    x
}

/// Fits, timed (wall and process CPU time of the fit alone), then computes the final objective
/// over all points outside the timing; returns the JSON line.
fn fit_and_measure<T: Element>(x: &[T], dim: usize, cfg: &KmeansConfig, input: &str) -> Result<Value> {
    let spherical = cfg.metric == Metric::Cosine;
    let km = KMeans::new(cfg.k)
        .iterations(cfg.niter)
        .seed(cfg.seed)
        .max_points_per_centroid(MAX_POINTS_PER_CENTROID)
        .spherical(spherical);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {} threads: {e}", cfg.threads)))?;
    let n = x.len() / dim;
    let c0 = process_cpu_seconds();
    let t = Instant::now();
    let res = pool.install(|| km.fit(x, dim)).map_err(|e| Error::Usage(format!("k-means: {e}")))?;
    let wall = t.elapsed().as_secs_f64();
    let cpu = c0.zip(process_cpu_seconds()).map(|(a, b)| (b - a).max(0.0));

    // As peers.py: the squared L2 distance of every point to its nearest final centroid (also
    // for spherical k-means, whose points and centroids have unit norm), summed in f64.
    let mut labels = vec![0u32; n];
    let mut dist = vec![0f32; n];
    pool.install(|| vq_distance::nearest_centroids(x, res.centroids(), dim, Metric::L2, &mut labels, &mut dist))
        .map_err(|e| Error::Usage(format!("k-means objective: {e}")))?;
    let fin: f64 = dist.iter().map(|&d| f64::from(d)).sum();
    let sizes = res.sizes();
    let total: f64 = sizes.iter().map(|&s| s as f64).sum();
    let imbalance = cfg.k as f64 * sizes.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / (total * total);
    Ok(json!({
        "algo": "vq-kmeans",
        "library": "vq",
        "version": vq_cluster::VERSION,
        "params": {
            "k": cfg.k, "niter": cfg.niter, "max_points_per_centroid": MAX_POINTS_PER_CENTROID,
            "seed": cfg.seed, "spherical": spherical, "on": cfg.on.name(),
            "init": format!("{:?}", km.init), "nredo": km.nredo, "input": input,
        },
        "wall_s": (wall * 1e3).round() / 1e3,
        "cpu_s": cpu.map(|c| (c * 1e3).round() / 1e3),
        "n": n,
        "n_used": res.n_used(),
        "dim": dim,
        "threads": cfg.threads,
        "metric": cfg.metric.name(),
        "simd": vq_distance::simd_level().to_string(),
        "objective": res.final_objective(),
        "objective_final": fin,
        "mse_final": fin / n as f64,
        "iterations": res.objective().len(),
        "converged": res.converged(),
        "empty_splits": res.empty_splits(),
        "imbalance_factor": (imbalance * 1e4).round() / 1e4,
    }))
}

/// Runs k-means on the chosen set of `ds` and returns the JSON line (peers.py's k-means fields,
/// plus `cpu_s`, `simd`, `converged` and `empty_splits`). u8 data goes to `fit` as u8 (its
/// conversion to f32 is inside the timing; Faiss is handed f32 by peers.py).
pub fn run(ds: &Dataset, cfg: &KmeansConfig) -> Result<Value> {
    let set = match cfg.on {
        On::Base => &ds.base,
        On::Learn => ds
            .learn
            .as_ref()
            .ok_or_else(|| Error::Usage(format!("--kmeans-on learn: dataset `{}` has no learn file", ds.name)))?,
    };
    let n = set.len() / ds.dim.max(1);
    if cfg.k == 0 || cfg.k > n {
        return Err(Error::Usage(format!("--k {}: must be between 1 and n = {n}", cfg.k)));
    }
    if cfg.niter == 0 {
        return Err(Error::Usage("--niter must be at least 1".into()));
    }
    match (set, cfg.metric) {
        (_, Metric::Cosine) => fit_and_measure(&normalized(set, ds.dim), ds.dim, cfg, "f32"),
        (Vectors::U8(x), _) => fit_and_measure(x, ds.dim, cfg, "u8"),
        (Vectors::F32(x), _) => fit_and_measure(x, ds.dim, cfg, "f32"),
    }
}

/// Appends one JSON line.
pub fn append_jsonl(path: &Path, line: &Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
    writeln!(f, "{line}").map_err(|e| Error::io(path, e))
}

/// The k-means lines of a JSONL file (ours and peers.py's: those with `wall_s` and `params.k`);
/// search lines are skipped, a line that is not JSON is an error naming it.
pub fn read_jsonl(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| Error::bad_file(path, format!("line {}: {e}", n + 1)))?;
        if v.get("wall_s").is_some() && v["params"].get("k").is_some() {
            out.push(v);
        }
    }
    Ok(out)
}

/// k-means lines (ours and peers.py's) side by side: per setting (n, dim, k, niter, threads, on)
/// each library's wall time, CPU time, iterations and final objective, and the ratios of each
/// line to the setting's Faiss line (the fastest when there are several).
pub fn summary_table(lines: &[Value]) -> String {
    let setting = |v: &Value| {
        let p = &v["params"];
        format!(
            "k-means n={} dim={} k={} niter={} threads={} on={} metric={}",
            v["n"],
            v["dim"],
            p["k"],
            p["niter"],
            v["threads"],
            p["on"].as_str().unwrap_or("?"),
            v["metric"].as_str().unwrap_or("?")
        )
    };
    let mut settings: Vec<String> = Vec::new();
    for v in lines {
        let s = setting(v);
        if !settings.contains(&s) {
            settings.push(s);
        }
    }
    let f = |v: &Value, key: &str| v[key].as_f64();
    let mut out = String::new();
    for s in &settings {
        let rows: Vec<&Value> = lines.iter().filter(|v| setting(v) == *s).collect();
        let faiss: Option<&Value> = rows
            .iter()
            .filter(|v| v["library"] == "faiss")
            .min_by(|a, b| f(a, "wall_s").unwrap_or(f64::MAX).total_cmp(&f(b, "wall_s").unwrap_or(f64::MAX)))
            .copied();
        out.push_str(&format!(
            "\n{s}\n{:<14} {:>9} {:>9} {:>6} {:>16} {:>12} {:>12}\n",
            "library", "wall s", "cpu s", "iters", "objective_final", "time/faiss", "obj/faiss"
        ));
        let ratio = |v: &Value, key: &str| match (faiss.and_then(|fl| f(fl, key)), f(v, key)) {
            (Some(b), Some(a)) if b > 0.0 => format!("{:.4}", a / b),
            _ => "-".into(),
        };
        for v in &rows {
            let num = |key: &str, prec: usize| f(v, key).map_or_else(|| "-".into(), |x| format!("{x:.prec$}"));
            out.push_str(&format!(
                "{:<14} {:>9} {:>9} {:>6} {:>16} {:>12} {:>12}\n",
                v["library"].as_str().unwrap_or("?"),
                num("wall_s", 3),
                num("cpu_s", 3),
                v["iterations"],
                f(v, "objective_final").map_or_else(|| "-".into(), |x| format!("{x:.6e}")),
                ratio(v, "wall_s"),
                ratio(v, "objective_final"),
            ));
        }
    }
    out
}
