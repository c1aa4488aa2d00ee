//! Reconstruction error and exhaustive-search recall of PQ and OPQ on a real dataset: trains
//! on its learn set, encodes the base, decodes it, and prints bytes per vector, the mean
//! squared reconstruction error per vector (`mean ‖x − x̂‖²`) and per component, the training
//! time, and recall@10 of an exhaustive scan over the codes against the dataset's ground truth.
//!
//! ```text
//! cargo bench -p vq-quant --bench pq_mse -- ~/.cache/vq/data/imgsift100k [SPEC ...]
//! ```
//! (a folder holding `base.*`, `learn.*` and optionally `query.*` and `gt.ivecs`; SPECs are
//! `PQ{m}[x{nbits}]` or `OPQ{m}[x{nbits}]`, by default PQ16, PQ32, OPQ16, OPQ32). Without a
//! folder argument, or when it is missing, it says so and does nothing, so `cargo bench` never
//! fails for want of data.
//!
//! `train s` is wall time, `train cpu s` the process CPU time of the training (Linux: from
//! `/proc/self/stat`, 10 ms ticks; `-` elsewhere), the figure to compare on a shared machine.
//! `RAYON_NUM_THREADS=1` trains on one thread (the Faiss side: `benchmarks/faiss_pq_train.py`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use vq_distance::Metric;
use vq_io::Matrix;
use vq_quant::{FlatCodes, OpqQuantizer, ProductQuantizer, Quantizer};

/// CPU seconds (user + system) this process has used, from `/proc/self/stat` (fields 14 and
/// 15, in clock ticks of 1/100 s on Linux).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn find(folder: &Path, stem: &str) -> Option<PathBuf> {
    ["bvecs", "fvecs", "u8bin", "fbin", "npy"]
        .iter()
        .map(|ext| folder.join(format!("{stem}.{ext}")))
        .find(|p| p.exists())
}

struct Data {
    base: Matrix<f32>,
    learn: Matrix<f32>,
    queries: Option<(Matrix<f32>, Matrix<i32>)>,
}

fn report<Q: Quantizer>(name: &str, mut q: Q, data: &Data) {
    let (dim, n) = (data.base.dim(), data.base.rows());
    let (start, cpu0) = (Instant::now(), process_cpu_seconds());
    q.train(data.learn.as_slice()).expect("train");
    let train_s = start.elapsed().as_secs_f64();
    let train_cpu = cpu0.zip(process_cpu_seconds()).map(|(a, b)| b - a);
    let mut index = FlatCodes::new(q);
    index.add(data.base.as_slice()).expect("encode");
    let q = index.quantizer();
    let mut decoded = vec![0f32; n * dim];
    q.decode(&index.codes(), &mut decoded).expect("decode");
    let sse: f64 =
        data.base.as_slice().iter().zip(&decoded).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
    let recall = data.queries.as_ref().map(|(queries, gt)| {
        let hits = index.search(queries.as_slice(), 10).expect("search");
        let found: usize = hits
            .iter()
            .zip(gt.iter_rows())
            .map(|((ids, _), truth)| ids.iter().filter(|&&id| truth[..10].contains(&(id as i32))).count())
            .sum();
        found as f64 / (10 * queries.rows()) as f64
    });
    println!(
        "{:<14} {:>10} {:>16.1} {:>14.4} {:>10.2} {:>12} {:>10}",
        name,
        q.code_size(),
        sse / n as f64,
        sse / (n * dim) as f64,
        train_s,
        train_cpu.map_or("-".to_string(), |c| format!("{c:.2}")),
        recall.map_or("-".to_string(), |r| format!("{r:.4}"))
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let Some(folder) = args.first().map(PathBuf::from) else {
        eprintln!("pq_mse: no dataset folder given (cargo bench -p vq-quant --bench pq_mse -- FOLDER); skipping");
        return;
    };
    let (Some(base), Some(learn)) = (find(&folder, "base"), find(&folder, "learn")) else {
        eprintln!("pq_mse: {} has no base.* and learn.*; skipping", folder.display());
        return;
    };
    let queries = find(&folder, "query")
        .zip(Some(folder.join("gt.ivecs")).filter(|p| p.exists()))
        .map(|(q, gt)| (vq_io::read::<f32>(&q).expect("query"), vq_io::read::<i32>(&gt).expect("gt")));
    let data = Data { base: vq_io::read(&base).expect("base"), learn: vq_io::read(&learn).expect("learn"), queries };
    let dim = data.base.dim();
    println!("{}: base {} x {dim}, learn {}", folder.display(), data.base.rows(), data.learn.rows());
    println!(
        "{:<14} {:>10} {:>16} {:>14} {:>10} {:>12} {:>10}",
        "type", "bytes/vec", "MSE per vector", "MSE per comp.", "train s", "train cpu s", "recall@10"
    );
    println!("threads {}, SIMD {}", rayon::current_num_threads(), vq_distance::simd_level());
    let specs: Vec<String> =
        if args.len() > 1 { args[1..].to_vec() } else { ["PQ16", "PQ32", "OPQ16", "OPQ32"].map(String::from).to_vec() };
    for spec in specs {
        let (opq, rest) = match spec.strip_prefix("OPQ") {
            Some(rest) => (true, rest),
            None => (false, spec.strip_prefix("PQ").unwrap_or(&spec)),
        };
        let (m, nbits) = rest.split_once('x').unwrap_or((rest, "8"));
        let (Ok(m), Ok(nbits)) = (m.parse::<usize>(), nbits.parse::<u32>()) else {
            eprintln!("pq_mse: cannot read {spec:?} (PQ{{m}}[x{{nbits}}] or OPQ{{m}}[x{{nbits}}])");
            continue;
        };
        if opq {
            let q = OpqQuantizer::new(dim, Metric::L2, m, nbits).expect("quantizer");
            report(&q.name(), q, &data);
        } else {
            let q = ProductQuantizer::new(dim, Metric::L2, m, nbits).expect("quantizer");
            report(&q.name(), q, &data);
        }
    }
}
