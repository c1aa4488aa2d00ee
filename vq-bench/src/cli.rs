//! The command line behind `cargo xtask bench`.

use std::path::PathBuf;

use serde_json::Value;

use crate::dataset::{self, Source};
use crate::error::{Error, Result};
use crate::groundtruth::{self, Origin};
use crate::index::{self, Params};
use crate::kmeans;
use crate::plot;
use crate::record::{self, Rank, Record};
use crate::runner::{self, RunConfig};

/// Usage text.
pub const HELP: &str = "usage: cargo xtask bench [OPTIONS]
       cargo xtask bench plot FILE.jsonl... [--out DIR] [--name STEM] [--title TEXT]
       cargo xtask bench summarize FILE.jsonl... [--rank qps|qps_cpu]
       cargo xtask bench --kmeans --dataset NAME --k K [--niter N] [--kmeans-on base|learn] [--threads N]

Builds and searches vq's indexes and reports recall@k against exact ground truth, QPS (best of
--reps batches), single-query latency, index bytes and peak RSS: a table on stdout, JSON lines
in the schema of shared/bench/peers.py, and a recall-QPS plot (SVG + PNG). Each point records
the wall time and the process CPU time of its fastest batch: the table shows QPS (per wall
second) and cQPS (qps_cpu, per CPU-second), the steadier figure when other jobs share the cores.

options:
  --dataset NAME|PATH   gauss (default), uniform, gauss-normalized, uniform-normalized;
                        a folder under --data-dir (e.g. imgsift100k); a folder path; or a
                        base file (.bvecs/.u8bin/.fvecs/.fbin/.npy) with --query (and --gt)
  --data-dir DIR        where short names are looked up (default: ./data)
  --query PATH          queries, when --dataset is a base file
  --gt PATH             ground truth (.ivecs/.ibin/.npy), when --dataset is a base file
  --nb N, --dim D       size of a generated dataset (100000, 128)
  --nq N                queries (generated: 1000; files: all of them)
  --seed S              seed of a generated dataset (42)
  --metric M            l2 | ip | cosine (l2)
  --k K                 neighbours per query (10)
  --threads N           worker threads (default: all cores)
  --index SPEC          a factory string, repeatable (default: Flat, HNSW16, HNSW32,SQ8,RFlat,
                        SQ8, PQ16, PQ32x4fs, IVF256,Flat, IVF256,PQ16), optionally followed
                        by build parameters as words: --index 'IVF1024,PQ64x4fs,RFlat
                        by_residual=false anisotropic_threshold=0.2' (names of vq::IndexParams:
                        ef_construction, ef, refine_k, nprobe, by_residual,
                        anisotropic_threshold, reorder_k, and Milvus' names); the text is the
                        lines' `algo`, their build_params hold each parameter
  --build-param KEY=V   a build parameter for every --index that does not set KEY itself
                        (indexes it does not concern ignore it); repeatable
  --sweep KEY=V1,V2     search parameters to measure instead of the default sweep; repeatable,
                        the points are the cartesian product
  --reps R              batch repetitions, QPS from the fastest (3)
  --latency-queries N   queries in the single-query pass (1000; 0: off)
  --with FILE.jsonl     merge these results (e.g. peers.py's) into the table and the plot
  --rank qps|qps_cpu    order the table's rows by that QPS at recall 0.95 (default: run order;
                        also for `summarize`)
  --out DIR             where results go (default: bench-results)
  --cache-dir DIR       ground-truth cache when the data folder is read-only (default: OUT/cache)

k-means mode (the counterpart of `peers.py --kmeans`, same JSON fields: wall_s, objective,
objective_final, k, niter, n, dim, threads, ...; appended to OUT/NAME-kmeans.jsonl, with a
table of every k-means line of that file and of --with files, Faiss' as the reference):
  --kmeans              time vq-cluster's k-means (random init, 256 points per centroid at most)
  --k K                 centroids
  --niter N             Lloyd iterations (20)
  --kmeans-on SET       base (default, as peers.py) or learn
  --kmeans-seed S       seed (1234, peers.py's --seed default)
  --metric cosine       normalizes the points and runs spherical k-means, as peers.py";

/// Parsed `run` options.
#[derive(Debug, Clone)]
pub struct Options {
    dataset: String,
    data_dir: PathBuf,
    query: Option<PathBuf>,
    gt: Option<PathBuf>,
    nb: usize,
    nq: Option<usize>,
    dim: usize,
    seed: u64,
    specs: Vec<String>,
    build_params: Vec<(String, Value)>,
    sweep: Vec<(String, Vec<Value>)>,
    with: Vec<PathBuf>,
    out: PathBuf,
    cache_dir: Option<PathBuf>,
    rank: Rank,
    kmeans: Option<KmeansOptions>,
    cfg: RunConfig,
}

/// `--kmeans` settings besides `--k`, `--threads` and `--metric`.
#[derive(Debug, Clone)]
struct KmeansOptions {
    niter: usize,
    on: kmeans::On,
    seed: u64,
}

fn parse_number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T> {
    v.parse().map_err(|_| Error::Usage(format!("{flag}: `{v}` is not a valid number")))
}

fn parse_sweep(v: &str) -> Result<(String, Vec<Value>)> {
    let (key, values) = v.split_once('=').ok_or_else(|| Error::Usage(format!("--sweep: `{v}` is not KEY=V1,V2,…")))?;
    let values: Vec<Value> = values
        .split(',')
        .map(|x| {
            let x = x.trim();
            x.parse::<i64>()
                .map(Value::from)
                .or_else(|_| x.parse::<f64>().map(Value::from))
                .unwrap_or_else(|_| Value::from(x))
        })
        .collect();
    if key.trim().is_empty() || values.is_empty() {
        return Err(Error::Usage(format!("--sweep: `{v}` is not KEY=V1,V2,…")));
    }
    Ok((key.trim().to_string(), values))
}

/// Parses the options of a run.
pub fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        dataset: "gauss".into(),
        data_dir: PathBuf::from("data"),
        query: None,
        gt: None,
        nb: 100_000,
        nq: None,
        dim: 128,
        seed: 42,
        specs: Vec::new(),
        build_params: Vec::new(),
        sweep: Vec::new(),
        with: Vec::new(),
        out: PathBuf::from("bench-results"),
        cache_dir: None,
        rank: Rank::Input,
        kmeans: None,
        cfg: RunConfig { threads: std::thread::available_parallelism().map_or(1, |n| n.get()), ..RunConfig::default() },
    };
    let mut km = KmeansOptions { niter: 20, on: kmeans::On::Base, seed: 1234 };
    let mut kmeans_mode = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().map(String::as_str).ok_or_else(|| Error::Usage(format!("{flag} needs a value")));
        match flag.as_str() {
            "--dataset" => o.dataset = value()?.to_string(),
            "--data-dir" => o.data_dir = PathBuf::from(value()?),
            "--query" => o.query = Some(PathBuf::from(value()?)),
            "--gt" => o.gt = Some(PathBuf::from(value()?)),
            "--nb" => o.nb = parse_number(flag, value()?)?,
            "--nq" => o.nq = Some(parse_number(flag, value()?)?),
            "--dim" => o.dim = parse_number(flag, value()?)?,
            "--seed" => o.seed = parse_number(flag, value()?)?,
            "--metric" => o.cfg.metric = value()?.parse().map_err(|e| Error::Usage(format!("--metric: {e}")))?,
            "--k" => o.cfg.k = parse_number(flag, value()?)?,
            "--threads" => o.cfg.threads = parse_number(flag, value()?)?,
            "--index" => o.specs.push(value()?.to_string()),
            "--build-param" => o.build_params.push(index::parse_option(value()?)?),
            "--sweep" => o.sweep.push(parse_sweep(value()?)?),
            "--reps" => o.cfg.reps = parse_number(flag, value()?)?,
            "--latency-queries" => o.cfg.latency_queries = parse_number(flag, value()?)?,
            "--with" => o.with.push(PathBuf::from(value()?)),
            "--out" => o.out = PathBuf::from(value()?),
            "--cache-dir" => o.cache_dir = Some(PathBuf::from(value()?)),
            "--rank" => o.rank = value()?.parse()?,
            "--kmeans" => kmeans_mode = true,
            "--niter" => km.niter = parse_number(flag, value()?)?,
            "--kmeans-on" => km.on = value()?.parse()?,
            "--kmeans-seed" => km.seed = parse_number(flag, value()?)?,
            other => return Err(Error::Usage(format!("unknown option `{other}` (see --help)"))),
        }
    }
    if o.cfg.k == 0 {
        return Err(Error::Usage("--k must be at least 1".into()));
    }
    if o.cfg.threads == 0 || o.dim == 0 || o.cfg.reps == 0 {
        return Err(Error::Usage("--threads, --dim and --reps must be at least 1".into()));
    }
    if kmeans_mode {
        if km.niter == 0 {
            return Err(Error::Usage("--niter must be at least 1".into()));
        }
        o.kmeans = Some(km);
        return Ok(o);
    }
    if o.specs.is_empty() {
        o.specs = index::default_specs();
    }
    // Reject an unknown spec or parameter before any data is loaded or ground truth computed;
    // the canonical text (factory string, then parameters) is what runs and is recorded.
    let build_params = std::mem::take(&mut o.build_params);
    for spec in &mut o.specs {
        let mut parsed = index::BuildSpec::parse(spec)?;
        for (k, v) in &build_params {
            parsed = parsed.with_default(k, v)?;
        }
        *spec = parsed.to_string();
    }
    o.build_params = build_params;
    Ok(o)
}

/// The cartesian product of `--sweep` values, or `None` to use each index's default sweep.
fn sweep_points(sweep: &[(String, Vec<Value>)]) -> Option<Vec<Params>> {
    if sweep.is_empty() {
        return None;
    }
    let mut points = vec![Params::new()];
    for (key, values) in sweep {
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut p = p.clone();
                    p.insert(key.clone(), v.clone());
                    p
                })
            })
            .collect();
    }
    Some(points)
}

/// Runs the command line `args` (without the program name); prints to stdout.
pub fn main(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("-h" | "--help") => {
            println!("{HELP}");
            Ok(())
        }
        Some("plot") => plot_command(&args[1..]),
        Some("summarize") => summarize_command(&args[1..]),
        _ => run(&parse(args)?),
    }
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<Record>> {
    if paths.is_empty() {
        return Err(Error::Usage("name at least one JSONL file".into()));
    }
    let mut all = Vec::new();
    for p in paths {
        all.extend(record::read_jsonl(p)?);
    }
    Ok(all)
}

fn summarize_command(args: &[String]) -> Result<()> {
    let mut files = Vec::new();
    let mut rank = Rank::Input;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rank" => {
                rank = it.next().ok_or_else(|| Error::Usage("--rank needs a value".into()))?.parse()?;
            }
            f => files.push(PathBuf::from(f)),
        }
    }
    let searches = read_all(&files)?;
    let mut kms = Vec::new();
    for f in &files {
        kms.extend(kmeans::read_jsonl(f)?);
    }
    if !searches.is_empty() || kms.is_empty() {
        print!("{}", record::summary_table(&searches, rank));
    }
    if !kms.is_empty() {
        print!("{}", kmeans::summary_table(&kms));
    }
    Ok(())
}

fn plot_command(args: &[String]) -> Result<()> {
    let mut files = Vec::new();
    let mut out = PathBuf::from("bench-results");
    let mut title = None;
    let mut name = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(it.next().ok_or_else(|| Error::Usage("--out needs a value".into()))?),
            "--title" => title = Some(it.next().ok_or_else(|| Error::Usage("--title needs a value".into()))?.clone()),
            "--name" => name = Some(it.next().ok_or_else(|| Error::Usage("--name needs a value".into()))?.clone()),
            f => files.push(PathBuf::from(f)),
        }
    }
    let records = read_all(&files)?;
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let name = name
        .unwrap_or_else(|| files[0].file_stem().map_or_else(|| "plot".into(), |s| s.to_string_lossy().into_owned()));
    let stem = out.join(name);
    let title = title.unwrap_or_else(|| title_of(&records));
    let (svg, png) = plot::write_plots(&records, &stem, &title)?;
    print!("{}", record::summary_table(&records, Rank::Input));
    println!("\nplots: {} {}", svg.display(), png.display());
    Ok(())
}

fn title_of(records: &[Record]) -> String {
    records.first().map_or_else(String::new, |r| {
        format!("nb={} dim={} nq={} k={} {} threads={}", r.nb, r.dim, r.nq, r.k, r.metric, r.threads)
    })
}

/// Runs a benchmark with parsed options.
pub fn run(o: &Options) -> Result<()> {
    if let Some(km) = &o.kmeans {
        return run_kmeans(o, km);
    }
    let source = Source::resolve(&o.dataset, &o.data_dir, o.query.as_deref(), o.gt.as_deref())?;
    let mut ds = match &source {
        Source::Synthetic { kind, normalized } => kind.generate(o.nb, o.nq.unwrap_or(1000), o.dim, o.seed, *normalized),
        _ => dataset::load(&source, o.nq)?,
    };
    let cfg = RunConfig { sweep: sweep_points(&o.sweep), ..o.cfg.clone() };
    println!(
        "dataset {}: {} x {} {} base, {} queries; k = {}, metric {}, {} thread(s), SIMD {}",
        ds.name,
        ds.nb(),
        ds.dim,
        ds.base.elem(),
        ds.nq(),
        cfg.k,
        cfg.metric,
        cfg.threads,
        vq_distance::simd_level()
    );
    std::fs::create_dir_all(&o.out).map_err(|e| Error::io(&o.out, e))?;
    let cache_dir = o.cache_dir.clone().unwrap_or_else(|| o.out.join("cache"));
    let t = std::time::Instant::now();
    let origin = groundtruth::ensure(&mut ds, cfg.k, cfg.metric, &cache_dir)?;
    match &origin {
        Origin::Shipped => println!("ground truth: the dataset's own"),
        Origin::Cached(p) => println!("ground truth: cached {}", p.display()),
        Origin::Computed(p) => println!(
            "ground truth: computed exactly in {:.1} s{}",
            t.elapsed().as_secs_f64(),
            p.as_ref().map_or_else(String::new, |p| format!(", cached as {}", p.display()))
        ),
    }

    let stem = format!("{}-{}-k{}-{}t", ds.name, cfg.metric.name(), cfg.k, cfg.threads);
    let jsonl = o.out.join(format!("{stem}.jsonl"));
    // Each run writes its own file afresh; merge runs with --with or `plot`.
    if jsonl.exists() {
        std::fs::remove_file(&jsonl).map_err(|e| Error::io(&jsonl, e))?;
    }
    let mut records = Vec::new();
    for spec in &o.specs {
        let rs = runner::run_spec(&ds, spec, &cfg)?;
        record::append_jsonl(&jsonl, &rs)?;
        records.extend(rs);
    }
    let mut all = records.clone();
    for w in &o.with {
        all.extend(record::read_jsonl(w)?);
    }
    print!("{}", record::summary_table(&all, o.rank));
    let (svg, png) = plot::write_plots(&all, &o.out.join(&stem), &title_of(&records))?;
    println!("\nresults: {}\nplots:   {} {}", jsonl.display(), svg.display(), png.display());
    Ok(())
}

fn run_kmeans(o: &Options, km: &KmeansOptions) -> Result<()> {
    let source = Source::resolve(&o.dataset, &o.data_dir, o.query.as_deref(), o.gt.as_deref())?;
    let ds = match &source {
        Source::Synthetic { kind, normalized } => kind.generate(o.nb, o.nq.unwrap_or(1000), o.dim, o.seed, *normalized),
        _ => dataset::load(&source, o.nq)?,
    };
    let cfg = kmeans::KmeansConfig {
        k: o.cfg.k,
        niter: km.niter,
        seed: km.seed,
        on: km.on,
        threads: o.cfg.threads,
        metric: o.cfg.metric,
    };
    println!(
        "k-means on {} {} ({} x {}): k = {}, {} iterations, {} thread(s), metric {}, SIMD {}",
        ds.name,
        km.on.name(),
        match km.on {
            kmeans::On::Base => ds.nb(),
            kmeans::On::Learn => ds.learn.as_ref().map_or(0, |l| l.len() / ds.dim.max(1)),
        },
        ds.dim,
        cfg.k,
        cfg.niter,
        cfg.threads,
        cfg.metric,
        vq_distance::simd_level()
    );
    let line = kmeans::run(&ds, &cfg)?;
    std::fs::create_dir_all(&o.out).map_err(|e| Error::io(&o.out, e))?;
    let jsonl = o.out.join(format!("{}-kmeans.jsonl", ds.name));
    kmeans::append_jsonl(&jsonl, &line)?;
    println!("{line}");
    let mut all = kmeans::read_jsonl(&jsonl)?;
    for w in &o.with {
        all.extend(kmeans::read_jsonl(w)?);
    }
    print!("{}", kmeans::summary_table(&all));
    println!("\nresults: {} (appended)", jsonl.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--build-param` reaches every `--index` that does not set the key itself, wherever it
    /// stands on the line; the specs come out canonical; a bad parameter fails the parse.
    #[test]
    fn build_params_apply_to_every_index_without_its_own() {
        let args: Vec<String> = [
            "--index",
            "IVF16,PQ8x4fs",
            "--build-param",
            "by_residual=false",
            "--index",
            "IVF16,PQ8x4fs,RFlat   by_residual=true",
        ]
        .map(String::from)
        .to_vec();
        let o = parse(&args).unwrap();
        assert_eq!(o.specs, ["IVF16,PQ8x4fs by_residual=false", "IVF16,PQ8x4fs,RFlat by_residual=true"]);
        let bad = |extra: &str| {
            let mut a = args.clone();
            a.extend(["--build-param".to_string(), extra.to_string()]);
            parse(&a).is_err()
        };
        assert!(bad("no_such_param=1"));
        assert!(bad("anisotropic_threshold=high"));
        assert!(bad("missing_value"));
    }
}
