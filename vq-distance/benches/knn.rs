//! Exact k-NN (`knn_exact`) on generated data, per SIMD level, 1 and 2 threads.
//!
//! `cargo bench -p vq-distance --bench knn`. The end-to-end comparison with Faiss on real
//! data is `cargo xtask bench --dataset …` beside `shared/bench/peers.py --algos faiss-flat`
//! (see BENCHMARKS.md).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vq_distance::{Kernels, Metric, SimdLevel, knn_exact_with};

fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    (0..n * dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn knn(c: &mut Criterion) {
    let (nb, nq, dim, k) = (20_000, 500, 128, 10);
    let base = data(nb, dim, 0x9e37_79b9_7f4a_7c15);
    let queries = data(nq, dim, 0xdead_beef_cafe_f00d);
    let mut g = c.benchmark_group(format!("knn_exact/{nb}x{dim}/{nq}q/k{k}"));
    g.throughput(Throughput::Elements(nq as u64));
    g.sample_size(10);
    for level in [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512, SimdLevel::Neon] {
        let Some(kern) = Kernels::for_level(level) else { continue };
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            g.bench_function(BenchmarkId::new(level.name(), format!("{threads}t")), |b| {
                b.iter(|| {
                    pool.install(|| {
                        knn_exact_with(&kern, black_box(&base), black_box(&queries), dim, k, Metric::L2).unwrap()
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, knn);
criterion_main!(benches);
