//! criterion: the scalar quantizers' asymmetric scan (one query against a block of codes),
//! per type, metric and SIMD level, on 128-dimensional data; for SQ8 also the 8-bit query path.
//!
//! The end-to-end comparison with Faiss on real SIFT is `cargo xtask bench --index SQ8`
//! (see BENCHMARKS.md); reconstruction errors come from the `sq_mse` bench.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use vq_distance::{Metric, SimdLevel};
use vq_quant::{CodeScorer, Quantizer, ScalarQuantizer, SqType};

fn bench(c: &mut Criterion) {
    let (n, dim) = (20_000, 128);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let data: Vec<f32> = (0..n * dim).map(|_| rng.random_range(0.0f32..100.0)).collect();
    let query = &data[..dim];
    let mut g = c.benchmark_group("sq_scan");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    for sq_type in SqType::ALL {
        for metric in [Metric::L2, Metric::InnerProduct] {
            let mut sq = ScalarQuantizer::new(dim, metric, sq_type).expect("quantizer");
            sq.train(&data[..5_000 * dim]).expect("train");
            let mut codes = vec![0u8; n * sq.code_size()];
            sq.encode(&data, &mut codes).expect("encode");
            let mut keys = vec![0f32; 256];
            for level in SimdLevel::available() {
                if sq_type == SqType::SQ8 {
                    let scorer = sq.scorer_int8_for_level(query, level).expect("scorer").expect("available level");
                    g.bench_function(format!("{sq_type}-int8/{metric}/{level}/{n}x{dim}"), |b| {
                        b.iter(|| {
                            let mut best = f32::INFINITY;
                            for block in codes.chunks(256 * sq.code_size()) {
                                let keys = &mut keys[..block.len() / sq.code_size()];
                                scorer.distances(block, keys);
                                best = keys.iter().fold(best, |m, &k| m.min(k));
                            }
                            best
                        })
                    });
                }
                let scorer = sq.scorer_for_level(query, level).expect("scorer").expect("available level");
                g.bench_function(format!("{sq_type}/{metric}/{level}/{n}x{dim}"), |b| {
                    b.iter(|| {
                        let mut best = f32::INFINITY;
                        for block in codes.chunks(256 * sq.code_size()) {
                            let keys = &mut keys[..block.len() / sq.code_size()];
                            scorer.distances(block, keys);
                            best = keys.iter().fold(best, |m, &k| m.min(k));
                        }
                        best
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
