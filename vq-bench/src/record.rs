//! One measured point, as a JSON line in the schema of `shared/bench/peers.py`, and the summary
//! table over any number of such lines (vq's and the peers' together).

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::Params;

/// A search line: the fields of `peers.py` (same names, same meaning), plus `mean_ms` and
/// `peak_rss_bytes`, which vq-bench records and peers.py does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Factory string (vq) or peers.py's algo name.
    pub algo: String,
    /// `vq`, `faiss`, `hnswlib`, …
    pub library: String,
    /// The library's version.
    pub version: String,
    /// Build parameters (the factory string included).
    pub build_params: Params,
    /// Search parameters of this point (`{}` for exhaustive search).
    pub search_params: Params,
    /// Wall seconds of train + add.
    pub build_s: f64,
    /// The index's own size in bytes.
    pub index_bytes: u64,
    /// Queries per second: nq / the fastest batch.
    pub qps: f64,
    /// recall@k against exact ground truth; `None` when no ground truth could be had.
    pub recall: Option<f64>,
    /// Neighbours per query.
    pub k: usize,
    /// Worker threads.
    pub threads: usize,
    /// Base vectors.
    pub nb: usize,
    /// Queries.
    pub nq: usize,
    /// Dimension.
    pub dim: usize,
    /// `l2`, `ip` or `cosine`.
    pub metric: String,
    /// Median single-query latency, milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th-percentile single-query latency, milliseconds.
    pub p99_ms: Option<f64>,
    /// Mean single-query latency, milliseconds (vq-bench only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_ms: Option<f64>,
    /// Peak resident memory of the process after this point (vq-bench only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// Appends records as JSON lines.
pub fn append_jsonl(path: &Path, records: &[Record]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
    for r in records {
        let line = serde_json::to_string(r).map_err(|e| Error::bad_file(path, e.to_string()))?;
        writeln!(f, "{line}").map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// Reads the search lines of a JSONL file (lines of other kinds, such as peers.py's k-means
/// lines, are skipped; a line that is not JSON is an error naming it).
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| Error::bad_file(path, format!("line {}: {e}", n + 1)))?;
        if value.get("qps").is_none() {
            continue;
        }
        let r = serde_json::from_value(value).map_err(|e| Error::bad_file(path, format!("line {}: {e}", n + 1)))?;
        out.push(r);
    }
    Ok(out)
}

/// The recall levels the summary reports the best QPS at.
pub const THRESHOLDS: [f64; 3] = [0.90, 0.95, 0.99];

/// A readable table: per (setting, library, algo, build parameters) the build time, bytes per
/// vector, the best QPS reaching each recall threshold, and the best recall.
pub fn summary_table(records: &[Record]) -> String {
    let mut groups: Vec<(String, Vec<&Record>)> = Vec::new();
    for r in records {
        let key = format!(
            "nb={} dim={} nq={} k={} metric={} threads={}\u{0}{} {}\u{0}{}",
            r.nb,
            r.dim,
            r.nq,
            r.k,
            r.metric,
            r.threads,
            r.library,
            r.algo,
            serde_json::Value::Object(r.build_params.clone())
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    let mut out = String::new();
    let mut last_setting = String::new();
    for (key, rs) in &groups {
        let mut parts = key.split('\u{0}');
        let setting = parts.next().unwrap_or_default();
        let name = parts.next().unwrap_or_default();
        if setting != last_setting {
            out.push_str(&format!(
                "\n{setting}\n{:<34} {:>9} {:>8} {:>10} {:>10} {:>10} {:>8}\n",
                "library algo", "build s", "B/vec", "QPS@0.90", "QPS@0.95", "QPS@0.99", "max rec"
            ));
            last_setting = setting.to_string();
        }
        let best_at = |t: f64| {
            rs.iter()
                .filter(|r| r.recall.is_some_and(|x| x >= t))
                .map(|r| r.qps)
                .fold(None, |m: Option<f64>, q| Some(m.map_or(q, |m| m.max(q))))
                .map_or_else(|| "-".to_string(), |q| format!("{q:.0}"))
        };
        let max_recall =
            rs.iter().filter_map(|r| r.recall).fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        let r0 = rs[0];
        out.push_str(&format!(
            "{:<34} {:>9.2} {:>8.1} {:>10} {:>10} {:>10} {:>8}\n",
            name,
            r0.build_s,
            r0.index_bytes as f64 / r0.nb.max(1) as f64,
            best_at(THRESHOLDS[0]),
            best_at(THRESHOLDS[1]),
            best_at(THRESHOLDS[2]),
            max_recall.map_or_else(|| "n/a".to_string(), |x| format!("{x:.4}")),
        ));
    }
    out
}
