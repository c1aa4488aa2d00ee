//! `Metric::sort_hits` (hits packed into integers) beside the comparator sort it replaced, on
//! rows of random hits the size of range search answers.
//!
//! `cargo bench -p vq-distance --bench sort`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vq_distance::Metric;

fn rows(n: usize, count: usize, id_bits: u32) -> Vec<Vec<(u64, f32)>> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count)
        .map(|_| (0..n).map(|_| (next() >> (64 - id_bits), (next() % 1_000_000) as f32 * 0.37)).collect())
        .collect()
}

fn comparator_sort(metric: Metric, hits: &mut [(u64, f32)]) {
    hits.sort_unstable_by(|a, b| metric.key_from_score(a.1).total_cmp(&metric.key_from_score(b.1)).then(a.0.cmp(&b.0)));
}

fn sort(c: &mut Criterion) {
    let mut g = c.benchmark_group("sort_hits/200rows");
    g.sample_size(20);
    for (n, id_bits) in [(50, 17), (700, 17), (5000, 17), (700, 40)] {
        let input = rows(n, 200, id_bits);
        let label = format!("{n}hits/ids{id_bits}bit");
        g.bench_function(BenchmarkId::new("packed", &label), |b| {
            b.iter(|| {
                let mut r = input.clone();
                r.iter_mut().for_each(|row| Metric::InnerProduct.sort_hits(black_box(row)));
                r
            })
        });
        g.bench_function(BenchmarkId::new("comparator", &label), |b| {
            b.iter(|| {
                let mut r = input.clone();
                r.iter_mut().for_each(|row| comparator_sort(Metric::InnerProduct, black_box(row)));
                r
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sort);
criterion_main!(benches);
