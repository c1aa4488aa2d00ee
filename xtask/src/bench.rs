//! `cargo xtask bench`: exact search today; every index joins as its crate lands.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use vq_distance::{Metric, Neighbors, knn_exact};

use crate::texmex;

const HELP: &str = "usage: cargo xtask bench [OPTIONS]

Without --dataset: 100,000 x 128 Gaussian clusters and 1,000 queries (fixed seed).

options:
  --dataset DIR     texmex folder: base.{bvecs,fvecs}, query.{bvecs,fvecs}, optional gt.ivecs
  --nb N, --dim D   size of the generated dataset (100000, 128)
  --nq N            number of queries (generated: 1000; a dataset: all of its queries)
  --k K             neighbours per query (10)
  --threads N       worker threads (default: all cores)
  --metric M        l2 | ip | cosine (l2)
  --as-f32          search u8 data converted to f32 (as Faiss does) instead of as u8
  --reps R          batch repetitions; QPS is from the fastest (3)
  --out FILE        append JSON lines (the schema of shared/bench/peers.py) to FILE";

struct Options {
    dataset: Option<PathBuf>,
    nb: usize,
    nq: Option<usize>,
    dim: usize,
    k: usize,
    threads: usize,
    metric: Metric,
    as_f32: bool,
    reps: usize,
    out: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut o = Options {
        dataset: None,
        nb: 100_000,
        nq: None,
        dim: 128,
        k: 10,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        metric: Metric::L2,
        as_f32: false,
        reps: 3,
        out: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: &str| v.parse::<usize>().map_err(|_| format!("{flag}: `{v}` is not a whole number"));
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(None);
            }
            "--dataset" => o.dataset = Some(PathBuf::from(value()?)),
            "--nb" => o.nb = num(value()?)?,
            "--nq" => o.nq = Some(num(value()?)?),
            "--dim" => o.dim = num(value()?)?,
            "--k" => o.k = num(value()?)?,
            "--threads" => o.threads = num(value()?)?,
            "--reps" => o.reps = num(value()?)?.max(1),
            "--metric" => o.metric = value()?.parse().map_err(|e| format!("--metric: {e}"))?,
            "--as-f32" => o.as_f32 = true,
            "--out" => o.out = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown option `{other}` (see --help)")),
        }
    }
    if o.k == 0 || o.threads == 0 || o.dim == 0 {
        return Err("--k, --threads and --dim must be at least 1".into());
    }
    Ok(Some(o))
}

/// Vectors as stored: f32 or u8 (SIFT-style), searched in their own type.
enum Vectors {
    F32(Vec<f32>),
    U8(Vec<u8>),
}

impl Vectors {
    fn len(&self) -> usize {
        match self {
            Vectors::F32(v) => v.len(),
            Vectors::U8(v) => v.len(),
        }
    }
    fn elem(&self) -> &'static str {
        match self {
            Vectors::F32(_) => "f32",
            Vectors::U8(_) => "u8",
        }
    }
    fn elem_bytes(&self) -> usize {
        match self {
            Vectors::F32(_) => 4,
            Vectors::U8(_) => 1,
        }
    }
    fn into_f32(self) -> Vectors {
        match self {
            Vectors::U8(v) => Vectors::F32(v.into_iter().map(f32::from).collect()),
            f => f,
        }
    }
}

struct Dataset {
    name: String,
    dim: usize,
    base: Vectors,
    queries: Vectors,
    /// Exact top-`gt_k` ids per query, if the dataset has them.
    gt: Option<(usize, Vec<i32>)>,
}

fn load_vectors(dir: &Path, stem: &str) -> Result<(usize, Vectors), String> {
    let b = dir.join(format!("{stem}.bvecs"));
    if b.exists() {
        return texmex::read_bvecs(&b).map(|(d, v)| (d, Vectors::U8(v)));
    }
    let f = dir.join(format!("{stem}.fvecs"));
    if f.exists() {
        return texmex::read_fvecs(&f).map(|(d, v)| (d, Vectors::F32(v)));
    }
    Err(format!("{}: no {stem}.bvecs or {stem}.fvecs", dir.display()))
}

fn load_dataset(dir: &Path, nq: Option<usize>) -> Result<Dataset, String> {
    let (dim, base) = load_vectors(dir, "base")?;
    let (qdim, mut queries) = load_vectors(dir, "query")?;
    if qdim != dim {
        return Err(format!("queries have dimension {qdim}, base has {dim}"));
    }
    let gt_path = dir.join("gt.ivecs");
    let mut gt = if gt_path.exists() { Some(texmex::read_ivecs(&gt_path)?) } else { None };
    if let Some(nq) = nq {
        match &mut queries {
            Vectors::F32(v) => v.truncate(nq * dim),
            Vectors::U8(v) => v.truncate(nq * dim),
        }
        if let Some((gk, g)) = &mut gt {
            g.truncate(nq * *gk);
        }
    }
    let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(Dataset { name, dim, base, queries, gt })
}

/// Gaussian clusters: 1,000 centres ~ N(0, I), each point a random centre plus N(0, 0.25² I).
/// Fixed seed, so every run and machine measures the same data.
fn generate(nb: usize, nq: usize, dim: usize) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x005e_ed0f_7e57);
    let unit = Normal::new(0.0f32, 1.0).expect("valid normal");
    let centres: Vec<f32> = (0..1000 * dim).map(|_| unit.sample(&mut rng)).collect();
    let mut points = |n: usize| -> Vec<f32> {
        let mut v = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let c = rng.random_range(0..1000usize);
            v.extend(centres[c * dim..(c + 1) * dim].iter().map(|&x| x + 0.25 * unit.sample(&mut rng)));
        }
        v
    };
    let base = points(nb);
    let queries = points(nq);
    Dataset {
        name: format!("gauss-clusters-{nb}x{dim}"),
        dim,
        base: Vectors::F32(base),
        queries: Vectors::F32(queries),
        gt: None,
    }
}

fn search(ds: &Dataset, k: usize, metric: Metric) -> Result<Neighbors, String> {
    let r = match (&ds.base, &ds.queries) {
        (Vectors::F32(b), Vectors::F32(q)) => knn_exact(b, q, ds.dim, k, metric),
        (Vectors::U8(b), Vectors::U8(q)) => knn_exact(b, q, ds.dim, k, metric),
        _ => return Err("base and queries have different element types".into()),
    };
    r.map_err(|e| e.to_string())
}

/// recall@k = |found top-k ∩ true top-k| / k, averaged over queries.
fn recall(found: &Neighbors, gt: &(usize, Vec<i32>), k: usize) -> Option<f64> {
    let (gk, ids) = gt;
    if *gk < k {
        return None;
    }
    let total: usize = found
        .iter()
        .zip(ids.chunks_exact(*gk))
        .map(|((got, _), truth)| got.iter().filter(|&&id| truth[..k].iter().any(|&t| t as u64 == id)).count())
        .sum();
    Some(total as f64 / (k * found.num_queries()) as f64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let Some(o) = parse(args)? else { return Ok(()) };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(o.threads).build().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut ds = match &o.dataset {
        Some(dir) => load_dataset(dir, o.nq)?,
        None => generate(o.nb, o.nq.unwrap_or(1_000), o.dim),
    };
    if o.as_f32 {
        ds.base = std::mem::replace(&mut ds.base, Vectors::F32(Vec::new())).into_f32();
        ds.queries = std::mem::replace(&mut ds.queries, Vectors::F32(Vec::new())).into_f32();
    }
    let (nb, nq) = (ds.base.len() / ds.dim, ds.queries.len() / ds.dim);
    println!(
        "dataset {}: {nb} x {} {} base, {nq} queries, k = {}, metric {}, {} thread(s), SIMD {}  (loaded in {:.1} s)",
        ds.name,
        ds.dim,
        ds.base.elem(),
        o.k,
        o.metric,
        o.threads,
        vq_distance::simd_level(),
        t0.elapsed().as_secs_f64()
    );

    // Exact search ("Flat"): nothing to build; the batch is the whole query set.
    let mut best = f64::INFINITY;
    let mut result = None;
    for _ in 0..o.reps {
        let t = Instant::now();
        let r = pool.install(|| search(&ds, o.k, o.metric))?;
        best = best.min(t.elapsed().as_secs_f64());
        result = Some(r);
    }
    let result = result.expect("reps >= 1");
    let qps = nq as f64 / best;
    let rec = ds.gt.as_ref().and_then(|gt| recall(&result, gt, o.k));

    // Single-query latency over up to 1,000 queries: one search call per query.
    let lat_n = nq.min(1000);
    let mut lat: Vec<f64> = pool.install(|| {
        (0..lat_n)
            .map(|q| {
                let t = Instant::now();
                let r = match (&ds.base, &ds.queries) {
                    (Vectors::F32(b), Vectors::F32(x)) => {
                        knn_exact(b, &x[q * ds.dim..][..ds.dim], ds.dim, o.k, o.metric).map(drop)
                    }
                    (Vectors::U8(b), Vectors::U8(x)) => {
                        knn_exact(b, &x[q * ds.dim..][..ds.dim], ds.dim, o.k, o.metric).map(drop)
                    }
                    _ => Ok(()),
                };
                std::hint::black_box(r).ok();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect()
    });
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));

    let recall_text =
        rec.map_or_else(|| "n/a (no ground truth: this search is the ground truth)".to_string(), |r| format!("{r:.4}"));
    println!();
    println!(
        "{:<8} {:>10} {:>12} {:>12} {:>10} {:>10}  recall@{}",
        "algo", "build s", "search s", "QPS", "p50 ms", "p99 ms", o.k
    );
    println!("{:<8} {:>10.3} {:>12.3} {:>12.1} {:>10.3} {:>10.3}  {recall_text}", "Flat", 0.0, best, qps, p50, p99);

    if let Some(path) = &o.out {
        let metric = o.metric.name();
        let line = format!(
            "{{\"algo\": \"Flat\", \"library\": \"vq\", \"version\": \"{}\", \"build_params\": {{\"factory\": \"Flat\", \"elem\": \"{}\", \"simd\": \"{}\"}}, \"search_params\": {{}}, \"build_s\": 0.0, \"index_bytes\": {}, \"qps\": {qps:.2}, \"recall\": {}, \"k\": {}, \"threads\": {}, \"nb\": {nb}, \"nq\": {nq}, \"dim\": {}, \"metric\": \"{metric}\", \"p50_ms\": {p50:.4}, \"p99_ms\": {p99:.4}}}\n",
            vq_distance::VERSION,
            ds.base.elem(),
            vq_distance::simd_level(),
            nb * ds.dim * ds.base.elem_bytes(),
            rec.map_or("null".into(), |r| format!("{r:.4}")),
            o.k,
            o.threads,
            ds.dim,
        );
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(line.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("\nresults appended to {}", path.display());
    }
    Ok(())
}
