//! k-means on a texmex file (`.bvecs` u8 or `.fvecs` f32), timed, one JSON line out in the
//! fields of `../shared/bench/peers.py --kmeans` so the two can be read side by side.
//!
//! ```text
//! cargo run --release -p vq-cluster --example kmeans_bench -- \
//!     --data ~/.cache/vq/data/imgsift100k/learn.bvecs --k 1024 --niter 20 --threads 1 [--out FILE]
//! ```
//! Options: `--init random|kmeans++|parallel[:ROUNDS]` (default: the crate's default),
//! `--seed` (1234), `--max-ppc` (256), `--nredo` (1), `--as-f32` (convert the data to f32 before
//! the clock starts, as Faiss gets it; default: hand the u8 rows to `fit`, conversion timed),
//! `--verbose` (one line per iteration on stderr).

use std::io::Write;
use std::time::Instant;

use vq_cluster::{Init, KMeans};

/// Reads a texmex file: each row a little-endian i32 dimension, then the values.
fn read_texmex(path: &str) -> (Vec<f32>, Vec<u8>, usize) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dim = i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let is_u8 = path.ends_with(".bvecs");
    let width = if is_u8 { 1 } else { 4 };
    let row = 4 + dim * width;
    assert!(bytes.len().is_multiple_of(row), "{path}: not a whole number of {dim}-d rows");
    let (mut f, mut b) = (Vec::new(), Vec::new());
    for r in bytes.chunks_exact(row) {
        assert_eq!(i32::from_le_bytes(r[..4].try_into().expect("4 bytes")) as usize, dim, "ragged file");
        if is_u8 {
            b.extend_from_slice(&r[4..]);
        } else {
            f.extend(r[4..].chunks_exact(4).map(|v| f32::from_le_bytes(v.try_into().expect("4 bytes"))));
        }
    }
    (f, b, dim)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut data, mut k, mut niter, mut threads, mut seed, mut max_ppc, mut nredo) =
        (String::new(), 1024usize, 20usize, 1usize, 1234u64, 256usize, 1usize);
    let (mut init, mut out, mut as_f32, mut verbose) = (None, None, false, false);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--data" => data = val(),
            "--k" => k = val().parse().expect("--k"),
            "--niter" => niter = val().parse().expect("--niter"),
            "--threads" => threads = val().parse().expect("--threads"),
            "--seed" => seed = val().parse().expect("--seed"),
            "--max-ppc" => max_ppc = val().parse().expect("--max-ppc"),
            "--nredo" => nredo = val().parse().expect("--nredo"),
            "--init" => {
                let v = val();
                init = Some(match v.as_str() {
                    "random" => Init::Random,
                    "kmeans++" => Init::KMeansPlusPlus,
                    s if s.starts_with("parallel") => Init::KMeansParallel {
                        rounds: s.strip_prefix("parallel:").map_or(8, |r| r.parse().expect("rounds")),
                    },
                    _ => panic!("unknown --init {v}"),
                })
            }
            "--out" => out = Some(val()),
            "--as-f32" => as_f32 = true,
            "--verbose" => verbose = true,
            _ => panic!("unknown argument {a}"),
        }
    }
    let (f, b, dim) = read_texmex(&data);
    let f = if as_f32 && !b.is_empty() { b.iter().map(|&v| f32::from(v)).collect() } else { f };
    let use_u8 = f.is_empty();
    let n = if use_u8 { b.len() } else { f.len() } / dim;
    let mut km = KMeans::new(k).iterations(niter).seed(seed).max_points_per_centroid(max_ppc).nredo(nredo);
    if let Some(init) = init {
        km = km.init(init);
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    let cb = |s: &vq_cluster::IterationStats| {
        if verbose {
            eprintln!("  it {:2}  obj {:.6e}  {:.3} s  splits {}", s.iteration, s.objective, s.seconds, s.empty_splits);
        }
    };
    let t = Instant::now();
    let res =
        pool.install(|| if use_u8 { km.fit_with_callback(&b, dim, cb) } else { km.fit_with_callback(&f, dim, cb) });
    let wall = t.elapsed().as_secs_f64();
    let res = res.expect("fit");
    // Objective with the final centroids over all n points (untimed, as peers.py does).
    let (_, dist) = pool
        .install(|| if use_u8 { res.assign_with_distances(&b) } else { res.assign_with_distances(&f) })
        .expect("assign");
    let fin: f64 = dist.iter().map(|&d| f64::from(d)).sum();
    let sizes = res.sizes();
    let total: f64 = sizes.iter().map(|&s| s as f64).sum();
    let imbalance = k as f64 * sizes.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / (total * total);
    let line = format!(
        "{{\"algo\": \"vq-kmeans\", \"library\": \"vq\", \"version\": \"{}\", \"params\": {{\"k\": {k}, \"niter\": {niter}, \"max_points_per_centroid\": {max_ppc}, \"seed\": {seed}, \"spherical\": false, \"init\": \"{:?}\", \"nredo\": {nredo}, \"input\": \"{}\"}}, \"wall_s\": {:.3}, \"n\": {n}, \"n_used\": {}, \"dim\": {dim}, \"threads\": {threads}, \"metric\": \"l2\", \"simd\": \"{}\", \"objective\": {:.1}, \"objective_final\": {:.4}, \"mse_final\": {:.6}, \"iterations\": {}, \"converged\": {}, \"empty_splits\": {}, \"imbalance_factor\": {:.4}}}",
        vq_cluster::VERSION,
        km.init,
        if use_u8 { "u8" } else { "f32" },
        wall,
        res.n_used(),
        vq_distance::simd_level(),
        res.final_objective(),
        fin,
        fin / n as f64,
        res.objective().len(),
        res.converged(),
        res.empty_splits(),
        imbalance,
    );
    println!("{line}");
    if let Some(path) = out {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("open --out");
        writeln!(f, "{line}").expect("write --out");
    }
}
