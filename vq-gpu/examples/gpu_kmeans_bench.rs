//! Issue 23's k-means figure, ready for a device session: vq-cluster's Lloyd loop with both
//! steps of every iteration on the GPU (`KMeans::fit_with_assigner` + `GpuAssigner`, points
//! resident for the whole fit) beside the same
//! loop on the CPU, on uniform random data (default 1,000,000 x 128, k = 4,096, 20 iterations,
//! no sampling: 4,096 x 256 points fit). Prints one JSON line per run with wall and CPU seconds
//! and the final objective. Without a GPU it prints why and runs the CPU part only.
//!
//! ```text
//! cargo run --release -p vq-gpu --example gpu_kmeans_bench -- [--n 1000000] [--dim 128]
//!     [--k 4096] [--iterations 20] [--cpu-iterations 20] [--metric l2|ip]
//! ```
//! `--cpu-iterations 0` skips the CPU run (on 2 cores it takes minutes per iteration at the
//! default size: compare per-iteration times then).

mod common;

use std::time::Instant;

use common::{arg, cpu_seconds, uniform};

use vq_cluster::{Clustering, KMeans};
use vq_distance::Metric;
use vq_gpu::{Gpu, GpuAssigner};

#[allow(clippy::too_many_arguments)] // one JSON line's fields
fn report(algo: &str, device: &str, n: usize, dim: usize, k: usize, iters: usize, wall: f64, cpu: f64, c: &Clustering) {
    println!(
        "{{\"library\":\"vq\",\"algo\":\"{algo}\",\"device\":\"{device}\",\"n\":{n},\"dim\":{dim},\"k\":{k},\"iterations\":{iters},\"iterations_run\":{},\"seconds\":{wall:.3},\"cpu_seconds\":{cpu:.3},\"seconds_per_iteration\":{:.4},\"objective\":{:.6e},\"empty_splits\":{},\"simd\":\"{:?}\",\"threads\":{}}}",
        c.objective().len(),
        wall / c.objective().len().max(1) as f64,
        c.objective().last().copied().unwrap_or(f64::NAN),
        c.empty_splits(),
        vq_distance::simd_level(),
        std::thread::available_parallelism().map_or(1, |p| p.get()),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = arg(&args, "--n", 1_000_000);
    let dim: usize = arg(&args, "--dim", 128);
    let k: usize = arg(&args, "--k", 4096);
    let iterations: usize = arg(&args, "--iterations", 20);
    let cpu_iterations: usize = arg(&args, "--cpu-iterations", 20);
    let metric: Metric = arg(&args, "--metric", "l2".to_string()).parse()?;
    let data = uniform(n * dim, 7);
    let km = |iters| KMeans::new(k).iterations(iters).seed(1234).spherical(metric != Metric::L2);

    match Gpu::new(0) {
        Ok(gpu) => {
            let (wall, cpu) = (Instant::now(), cpu_seconds());
            let c = km(iterations).fit_with_assigner(&data, dim, &GpuAssigner::new(&gpu))?;
            let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
            report("k-means, GPU assignment + update", gpu.name(), n, dim, k, iterations, wall, cpu, &c);
        }
        Err(e) => eprintln!("gpu_kmeans_bench: GPU part skipped: {e}"),
    }
    if cpu_iterations > 0 {
        let (wall, cpu) = (Instant::now(), cpu_seconds());
        let c = km(cpu_iterations).fit(&data, dim)?;
        let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        report("k-means, CPU (vq-cluster)", "cpu", n, dim, k, cpu_iterations, wall, cpu, &c);
    }
    Ok(())
}
