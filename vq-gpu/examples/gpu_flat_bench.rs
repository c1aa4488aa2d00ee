//! Issue 23's benchmark, ready for a device session: `GpuFlat` on uniform random data
//! (default 1,000,000 x 128 base, 10,000 queries, k = 10 and 100), with the CPU's `knn_exact` on
//! the first `--cpu-queries` queries as the recall reference and the CPU speed baseline.
//! Prints one JSON line per measurement. Without a GPU it prints why and runs the CPU part only.
//!
//! ```text
//! cargo run --release -p vq-gpu --example gpu_flat_bench -- [--n 1000000] [--nq 10000] [--dim 128]
//!     [--k 10,100] [--storage f32|f16] [--metric l2|ip|cosine] [--cpu-queries 100] [--rounds 3]
//! ```
//! The data is the same as `benchmarks/gpu_flat_torch.py` generates only in distribution
//! (uniform [0, 1)); the cost of exact search does not depend on the values.

mod common;

use std::time::Instant;

use common::{arg, cpu_seconds, uniform};

use vq_distance::{Metric, knn_exact};
use vq_gpu::{Gpu, GpuFlat, GpuFlatOptions, GpuStorage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = arg(&args, "--n", 1_000_000);
    let nq: usize = arg(&args, "--nq", 10_000);
    let dim: usize = arg(&args, "--dim", 128);
    let ks: String = arg(&args, "--k", "10,100".to_string());
    let ks: Vec<usize> = ks.split(',').map(|k| k.parse().expect("--k: comma-separated integers")).collect();
    let storage = match arg(&args, "--storage", "f32".to_string()).as_str() {
        "f16" => GpuStorage::F16,
        _ => GpuStorage::F32,
    };
    let metric: Metric = arg(&args, "--metric", "l2".to_string()).parse()?;
    let cpu_queries: usize = arg::<usize>(&args, "--cpu-queries", 100).min(nq);
    let rounds: usize = arg(&args, "--rounds", 3);

    let base = uniform(n * dim, 1);
    let queries = uniform(nq * dim, 2);
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let level = vq_distance::simd_level();

    let mut reference = Vec::new();
    for &k in &ks {
        if cpu_queries == 0 {
            reference.push(None);
            continue;
        }
        let (wall, cpu) = (Instant::now(), cpu_seconds());
        let want = knn_exact(&base, &queries[..cpu_queries * dim], dim, k, metric)?;
        let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        println!(
            "{{\"library\":\"vq\",\"algo\":\"Flat (CPU knn_exact)\",\"n\":{n},\"dim\":{dim},\"nq\":{cpu_queries},\"k\":{k},\"metric\":\"{metric}\",\"threads\":{threads},\"simd\":\"{level:?}\",\"seconds\":{wall:.4},\"qps\":{:.1},\"qps_cpu\":{:.1}}}",
            cpu_queries as f64 / wall,
            cpu_queries as f64 / cpu
        );
        reference.push(Some(want));
    }

    let gpu = match Gpu::new(0) {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("gpu_flat_bench: GPU part skipped: {e}");
            return Ok(());
        }
    };
    let (free, total) = gpu.memory_info()?;
    eprintln!("gpu_flat_bench: {} ({} MiB free of {} MiB)", gpu.name(), free >> 20, total >> 20);
    let t = Instant::now();
    let mut index = GpuFlat::new(&gpu, dim, metric, GpuFlatOptions { storage, scratch_bytes: None })?;
    index.add(&base)?;
    let add_s = t.elapsed().as_secs_f64();
    for (&k, want) in ks.iter().zip(&reference) {
        index.search(&queries[..dim.min(queries.len())], k)?; // warm-up: JIT, cuBLAS heuristics
        for round in 0..rounds {
            let t = Instant::now();
            let got = index.search(&queries, k)?;
            let secs = t.elapsed().as_secs_f64();
            let recall = want.as_ref().map_or(-1.0, |want| {
                let mut hit = 0usize;
                for q in 0..want.num_queries() {
                    let (w, _) = want.get(q).unwrap_or((&[], &[]));
                    let (g, _) = got.get(q).unwrap_or((&[], &[]));
                    hit += g.iter().filter(|id| w.contains(id)).count();
                }
                hit as f64 / (want.num_queries() * k) as f64
            });
            println!(
                "{{\"library\":\"vq\",\"algo\":\"GpuFlat {storage:?}\",\"device\":\"{}\",\"n\":{n},\"dim\":{dim},\"nq\":{nq},\"k\":{k},\"metric\":\"{metric}\",\"round\":{round},\"add_s\":{add_s:.3},\"seconds\":{secs:.4},\"qps\":{:.1},\"recall_vs_cpu\":{recall:.4}}}",
                gpu.name(),
                nq as f64 / secs
            );
        }
    }
    Ok(())
}
