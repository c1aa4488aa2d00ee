//! The seeds' Faiss workflow: IVF-PQ (nlist 1,024, m 16, 8 bits) trained on `learn`, every
//! `base` vector added, saved, loaded, searched with nprobe 50; prints the file size, the
//! search time and recall@10 (overlap of the top 10 with the true top 10, ÷ 10).
//!
//! ```sh
//! cargo run --release -p vq --example ivfpq_save_load -- ../shared/data/imgsift1m
//! ```
//!
//! The folder holds `base.bvecs`, `learn.bvecs`, `query.bvecs` and `gt.ivecs` (the shared data
//! convention; `make_imgsift.py` writes them).
//!
//! Options, for measuring a load on its own in a fresh process:
//! - `--index SPEC`: another factory string (default `IVF1024,PQ16`);
//! - `--keep PATH`: save the index to PATH and keep it (default: a temporary file, removed);
//! - `--load PATH [--mmap]`: build nothing; read the index at PATH (mapped with `--mmap`) and
//!   print the read time and the process's resident memory (Linux `/proc/self/status`:
//!   `RssAnon`, memory the process allocated, and `RssFile`, file pages mapped into it) before
//!   and after the read and after the search, beside the index's own `memory_usage()`.
//!
//! ```sh
//! ivfpq_save_load DIR --index IVF1024,Flat --keep /tmp/flat.vq
//! ivfpq_save_load DIR --load /tmp/flat.vq          # read into memory
//! ivfpq_save_load DIR --load /tmp/flat.vq --mmap   # lists served from the map
//! ```

use std::path::PathBuf;
use std::time::Instant;

use vq::{Index, Metric, SearchParams};

fn read_f32(path: PathBuf) -> Result<(Vec<f32>, usize), Box<dyn std::error::Error>> {
    let m = vq::vq_io::read::<u8>(&path)?;
    let dim = m.dim();
    Ok((m.as_slice().iter().map(|&v| f32::from(v)).collect(), dim))
}

/// `RssAnon` and `RssFile` of this process in MiB (`None` where `/proc` does not say).
fn rss() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse::<f64>().ok()
    };
    Some((kib("RssAnon:")? / 1024.0, kib("RssFile:")? / 1024.0))
}

fn rss_text() -> String {
    match rss() {
        Some((anon, file)) => format!("RssAnon {anon:.1} MiB, RssFile {file:.1} MiB"),
        None => "RSS not available".into(),
    }
}

/// Searches every query with nprobe 50 and prints the time and recall@10.
fn search(index: &dyn Index, queries: &[f32], dim: usize, gt: &vq::vq_io::Matrix<i32>) -> vq::Result<()> {
    let t = Instant::now();
    let hits = index.search_with(queries, &SearchParams { k: 10, nprobe: Some(50), ..Default::default() })?;
    let search = t.elapsed();
    let nq = queries.len() / dim;
    let found: usize = hits
        .iter()
        .zip(gt.iter_rows())
        .map(|((ids, _), truth)| ids.iter().filter(|&&id| truth[..10].contains(&(id as i32))).count())
        .sum();
    println!(
        "nprobe 50: {nq} queries in {:.3} s ({:.0} µs/query, {} threads), recall@10 {:.4}",
        search.as_secs_f64(),
        search.as_secs_f64() * 1e6 / nq as f64,
        rayon::current_num_threads(),
        found as f64 / (nq * 10) as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let dir = PathBuf::from(
        args.first().filter(|a| !a.starts_with("--")).cloned().unwrap_or("../shared/data/imgsift1m".into()),
    );
    let spec = value("--index").unwrap_or("IVF1024,PQ16".into());
    let (queries, dim) = read_f32(dir.join("query.bvecs"))?;
    let gt = vq::vq_io::read::<i32>(dir.join("gt.ivecs"))?;

    if let Some(path) = value("--load") {
        let mmap = args.iter().any(|a| a == "--mmap");
        let bytes = std::fs::metadata(&path)?.len();
        println!("before the read: {}", rss_text());
        let t = Instant::now();
        let index = vq::read_index_with(&path, vq::ReadOptions { mmap })?;
        let read = t.elapsed();
        let m = index.memory_usage();
        println!(
            "{} read (mmap {mmap}) in {:.3} s, file {:.1} MB; memory_usage: allocated {:.1} MiB, mapped {:.1} MiB",
            index.spec(),
            read.as_secs_f64(),
            bytes as f64 / 1e6,
            m.allocated() as f64 / (1 << 20) as f64,
            m.mapped as f64 / (1 << 20) as f64
        );
        println!("after the read: {}", rss_text());
        search(index.as_ref(), &queries, dim, &gt)?;
        println!("after the search: {}", rss_text());
        return Ok(());
    }

    let (base, _) = read_f32(dir.join("base.bvecs"))?;
    let (learn, _) = read_f32(dir.join("learn.bvecs"))?;
    let t = Instant::now();
    let mut index = vq::index_factory(dim, &spec, Metric::L2)?;
    index.train(&learn)?;
    let train = t.elapsed();
    index.add(&base)?;
    let add = t.elapsed() - train;

    let keep = value("--keep").map(PathBuf::from);
    let path = keep.clone().unwrap_or_else(|| std::env::temp_dir().join("vq-ivfpq-example.vq"));
    vq::write_index(index.as_ref(), &path)?;
    let bytes = std::fs::metadata(&path)?.len();
    let loaded = vq::read_index(&path)?;
    if keep.is_none() {
        std::fs::remove_file(&path)?;
    }
    println!(
        "{spec} over {} vectors: train {:.1} s, add {:.1} s, file {:.1} MB ({:.1} bytes/vector)",
        base.len() / dim,
        train.as_secs_f64(),
        add.as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / (base.len() / dim) as f64
    );
    search(loaded.as_ref(), &queries, dim, &gt)?;
    Ok(())
}
