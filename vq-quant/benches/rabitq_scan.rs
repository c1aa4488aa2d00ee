//! criterion: RaBitQ's scan (a query's keys over 100,000 codes in blocks of 256, as
//! `FlatCodes` and the inverted lists call it) and a query's scorer (the rotation plus what the
//! level prepares: the query padded for AVX-512's masked adds, or the byte table), at the
//! dimensions of imgsift (128) and textemb (384). The level is vq-distance's: run with
//! `VQ_SIMD=avx2` or `VQ_SIMD=portable` for the byte table.
//!
//! The end-to-end comparison with Faiss' `IndexRaBitQ` is `benchmarks/build_and_search.py`
//! (see BENCHMARKS.md).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, StandardNormal};
use vq_distance::Metric;
use vq_quant::{CodeScorer, Quantizer, RaBitQuantizer};

fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

fn bench(c: &mut Criterion) {
    let n = 100_000;
    let mut g = c.benchmark_group(format!("rabitq/{}", vq_distance::simd_level().name()));
    for dim in [128, 384] {
        let data = gaussian(n * dim, 1);
        let mut q = RaBitQuantizer::new(dim, Metric::L2).expect("valid");
        q.train(&data[..1000 * dim]).expect("finite");
        let mut codes = vec![0u8; n * q.code_size()];
        q.encode(&data, &mut codes).expect("trained");
        let query = gaussian(dim, 3);
        let scorer = q.scorer(&query).expect("trained");
        let mut keys = vec![0f32; 256];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("scan/d{dim}/{n}"), |b| {
            b.iter(|| {
                let mut best = f32::INFINITY;
                for block in codes.chunks(256 * q.code_size()) {
                    let keys = &mut keys[..block.len() / q.code_size()];
                    scorer.distances(block, keys);
                    best = keys.iter().fold(best, |a, &k| a.min(k));
                }
                best
            })
        });
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("scorer/d{dim}"), |b| b.iter(|| q.scorer(&query).expect("trained")));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
