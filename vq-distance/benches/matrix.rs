//! A dense `d × d` map (RaBitQ's rotation, OPQ's) applied to one row and to a batch:
//! [`PackedMatrix`] against one dot product per output (what vq-quant did before it), per SIMD
//! level, 1 thread.
//!
//! `cargo bench -p vq-distance --bench matrix`. The end-to-end figure is RaBitQ's add beside
//! Faiss (BENCHMARKS.md, `benchmarks/rabitq_vs_faiss.py`).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vq_distance::{Kernels, PackedMatrix, SimdLevel};

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// One dot product per output: the slow path `PackedMatrix` replaced.
fn by_dots(kern: &Kernels, m: &[f32], d: usize, x: &[f32], y: &mut [f32]) {
    for (yr, xr) in y.chunks_exact_mut(m.len() / d).zip(x.chunks_exact(d)) {
        for (v, mi) in yr.iter_mut().zip(m.chunks_exact(d)) {
            *v = kern.dot(mi, xr).unwrap();
        }
    }
}

fn matrix(c: &mut Criterion) {
    // One worker: a batch is handed to it (microseconds against milliseconds), a single row
    // is mapped on the calling thread.
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().unwrap();
    for (d, n) in [(128, 1), (384, 1), (128, 4096), (384, 4096)] {
        let m = data(d * d, 0x9e37_79b9_7f4a_7c15);
        let x = data(n * d, 0xdead_beef_cafe_f00d);
        let mut y = vec![0f32; n * d];
        let mut g = c.benchmark_group(format!("matrix/{d}x{d}/{n}rows"));
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(if n > 1 { 10 } else { 50 });
        for level in [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512, SimdLevel::Neon] {
            let Some(kern) = Kernels::for_level(level) else { continue };
            let packed = PackedMatrix::new_with(&kern, &m, d).unwrap();
            g.bench_function(BenchmarkId::new("packed", level.name()), |b| {
                b.iter(|| packed.apply(black_box(&x), &mut y).unwrap())
            });
            g.bench_function(BenchmarkId::new("dots", level.name()), |b| {
                b.iter(|| by_dots(&kern, black_box(&m), d, black_box(&x), &mut y))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, matrix);
criterion_main!(benches);
