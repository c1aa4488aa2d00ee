//! criterion: one Lloyd run and the assignment step on generated clustered data.
//!
//! The comparison with Faiss on real SIFT is the `kmeans_bench` example (see BENCHMARKS.md).

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use vq_cluster::{Init, KMeans};

/// `n` points around `centres` Gaussian centres in `dim` dimensions.
fn clustered(n: usize, dim: usize, centres: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1.0).expect("valid");
    let c: Vec<f32> = (0..centres * dim).map(|_| normal.sample(&mut rng) * 4.0).collect();
    (0..n)
        .flat_map(|_| {
            let j = rng.random_range(0..centres);
            (0..dim).map(|d| c[j * dim + d] + normal.sample(&mut rng)).collect::<Vec<_>>()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (n, dim, k) = (20_000, 128, 256);
    let data = clustered(n, dim, 300, 1);
    let mut g = c.benchmark_group("kmeans");
    g.sample_size(10);
    for (name, init) in [("random", Init::Random), ("kmeans_parallel", Init::KMeansParallel { rounds: 8 })] {
        let km = KMeans::new(k).iterations(5).init(init);
        g.bench_function(format!("fit/{n}x{dim}/k{k}/5it/{name}"), |b| b.iter(|| km.fit(&data, dim).expect("fit")));
    }
    let km = KMeans::new(k).iterations(1).init(Init::Random).fit(&data, dim).expect("fit");
    g.bench_function(format!("assign/{n}x{dim}/k{k}"), |b| b.iter(|| km.assign(&data).expect("assign")));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
