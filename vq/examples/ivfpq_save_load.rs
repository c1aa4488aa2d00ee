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

use std::path::PathBuf;
use std::time::Instant;

use vq::{Metric, SearchParams};

fn read_f32(path: PathBuf) -> Result<(Vec<f32>, usize), Box<dyn std::error::Error>> {
    let m = vq::vq_io::read::<u8>(&path)?;
    let dim = m.dim();
    Ok((m.as_slice().iter().map(|&v| f32::from(v)).collect(), dim))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or("../shared/data/imgsift1m".into()));
    let (base, dim) = read_f32(dir.join("base.bvecs"))?;
    let (learn, _) = read_f32(dir.join("learn.bvecs"))?;
    let (queries, _) = read_f32(dir.join("query.bvecs"))?;
    let gt = vq::vq_io::read::<i32>(dir.join("gt.ivecs"))?;

    let t = Instant::now();
    let mut index = vq::index_factory(dim, "IVF1024,PQ16", Metric::L2)?;
    index.train(&learn)?;
    let train = t.elapsed();
    index.add(&base)?;
    let add = t.elapsed() - train;

    let path = std::env::temp_dir().join("vq-ivfpq-example.vq");
    vq::write_index(index.as_ref(), &path)?;
    let bytes = std::fs::metadata(&path)?.len();
    let loaded = vq::read_index(&path)?;
    std::fs::remove_file(&path)?;

    let t = Instant::now();
    let hits = loaded.search_with(&queries, &SearchParams { k: 10, nprobe: Some(50), ..Default::default() })?;
    let search = t.elapsed();
    let nq = queries.len() / dim;
    let found: usize = hits
        .iter()
        .zip(gt.iter_rows())
        .map(|((ids, _), truth)| ids.iter().filter(|&&id| truth[..10].contains(&(id as i32))).count())
        .sum();
    println!(
        "IVF1024,PQ16 over {} vectors: train {:.1} s, add {:.1} s, file {:.1} MB ({:.1} bytes/vector)",
        base.len() / dim,
        train.as_secs_f64(),
        add.as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / (base.len() / dim) as f64
    );
    println!(
        "nprobe 50: {nq} queries in {:.3} s ({:.0} µs/query, {} threads), recall@10 {:.4}",
        search.as_secs_f64(),
        search.as_secs_f64() * 1e6 / nq as f64,
        rayon::current_num_threads(),
        found as f64 / (nq * 10) as f64
    );
    Ok(())
}
