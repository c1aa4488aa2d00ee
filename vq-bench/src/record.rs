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
    /// Wall seconds of `train` alone (0 for an index that needs none; vq-bench only: peers.py
    /// times train and add together). `None` in lines written before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_s: Option<f64>,
    /// Wall seconds of the `add` calls alone (vq-bench only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_s: Option<f64>,
    /// Process CPU seconds of train + add: on a shared machine the build's wall time swings
    /// with other work, its CPU time hardly (vq-bench only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_cpu_s: Option<f64>,
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
    /// Process CPU seconds of the fastest timed batch (the batch with the least CPU time, as
    /// peers.py takes it). Other load on a shared machine inflates wall time but hardly this.
    /// `None` in lines written before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// Queries per CPU-second: nq / `cpu_s` (summed over the worker threads, so with 1 thread
    /// it is the QPS an unloaded core would give).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qps_cpu: Option<f64>,
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

/// Which QPS a summary ranks its rows by (within one setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// Keep the rows in the order the records came (the order indexes were run in).
    Input,
    /// By `qps`, queries per wall second.
    Qps,
    /// By `qps_cpu`, queries per CPU-second: the steadier ratio when other jobs share the cores.
    QpsCpu,
}

impl std::str::FromStr for Rank {
    type Err = Error;

    fn from_str(s: &str) -> Result<Rank> {
        match s {
            "input" => Ok(Rank::Input),
            "qps" | "wall" => Ok(Rank::Qps),
            "qps_cpu" | "cpu" => Ok(Rank::QpsCpu),
            other => Err(Error::Usage(format!("--rank: `{other}` is not one of qps, qps_cpu, input"))),
        }
    }
}

/// The best of `value` over the records reaching recall `t`.
fn best_at(rs: &[&Record], t: f64, value: impl Fn(&Record) -> Option<f64>) -> Option<f64> {
    rs.iter().filter(|r| r.recall.is_some_and(|x| x >= t)).filter_map(|r| value(r)).reduce(f64::max)
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |q| format!("{q:.0}"))
}

/// A readable table: per (setting, library, algo, build parameters) the build time, bytes per
/// vector, the best QPS reaching each recall threshold — per wall second (`QPS@…`, the `qps`
/// field) and per CPU-second of the process (`cQPS@…`, `qps_cpu`; `-` for lines without it) —
/// and the best recall. `rank` orders the rows of each setting by the chosen QPS at recall
/// 0.95, then at 0.90, then at 0.99 (rows reaching none of them last, in input order).
pub fn summary_table(records: &[Record], rank: Rank) -> String {
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
    let setting_of = |key: &str| key.split('\u{0}').next().unwrap_or_default().to_string();
    if rank != Rank::Input {
        let value = |r: &Record| match rank {
            Rank::QpsCpu => r.qps_cpu,
            _ => Some(r.qps),
        };
        // Settings stay in the order they first appear; rows are ranked inside each.
        let order: Vec<String> = groups.iter().map(|(k, _)| setting_of(k)).fold(Vec::new(), |mut v, s| {
            if !v.contains(&s) {
                v.push(s);
            }
            v
        });
        let key = |rs: &[&Record]| [0.95, 0.90, 0.99].map(|t| best_at(rs, t, value).unwrap_or(-1.0));
        groups.sort_by(|(ka, a), (kb, b)| {
            let (sa, sb) = (setting_of(ka), setting_of(kb));
            let pos = |s: &String| order.iter().position(|o| o == s);
            pos(&sa).cmp(&pos(&sb)).then_with(|| {
                let (va, vb) = (key(a), key(b));
                vb.iter().zip(&va).map(|(y, x)| y.total_cmp(x)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
            })
        });
    }
    let mut out = String::new();
    let mut last_setting = String::new();
    for (key, rs) in &groups {
        let mut parts = key.split('\u{0}');
        let setting = parts.next().unwrap_or_default();
        let name = parts.next().unwrap_or_default();
        if setting != last_setting {
            let ranked = match rank {
                Rank::Input => "",
                Rank::Qps => ", ranked by QPS@0.95",
                Rank::QpsCpu => ", ranked by cQPS@0.95",
            };
            out.push_str(&format!(
                "\n{setting}\n(QPS: queries per wall second; cQPS: per CPU-second of the process{ranked})\n\
                 {:<34} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
                "library algo",
                "build s",
                "B/vec",
                "QPS@0.90",
                "QPS@0.95",
                "QPS@0.99",
                "cQPS@0.90",
                "cQPS@0.95",
                "cQPS@0.99",
                "max rec"
            ));
            last_setting = setting.to_string();
        }
        let max_recall = rs.iter().filter_map(|r| r.recall).reduce(f64::max);
        let r0 = rs[0];
        let wall = THRESHOLDS.map(|t| cell(best_at(rs, t, |r| Some(r.qps))));
        let cpu = THRESHOLDS.map(|t| cell(best_at(rs, t, |r| r.qps_cpu)));
        out.push_str(&format!(
            "{:<34} {:>9.2} {:>8.1} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
            name,
            r0.build_s,
            r0.index_bytes as f64 / r0.nb.max(1) as f64,
            wall[0],
            wall[1],
            wall[2],
            cpu[0],
            cpu[1],
            cpu[2],
            max_recall.map_or_else(|| "n/a".to_string(), |x| format!("{x:.4}")),
        ));
    }
    out
}
