//! Per-pair kernels, ns per pair, for every SIMD level this CPU can run, beside `numkong` (the
//! successor of `simsimd`) on the same inputs.
//!
//! `cargo bench -p vq-distance --bench kernels --features peer-numkong` (add `-- f32/l2/128` to
//! filter). Without the feature only vq's levels run: numkong's C build is opt-in.
//! Run it with and without AVX-512 before changing a kernel.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
#[cfg(feature = "peer-numkong")]
use numkong::{Dot, Euclidean};
use vq_distance::{Kernels, SimdLevel, f16};

const DIMS: [usize; 5] = [96, 128, 384, 768, 1536];

fn levels() -> Vec<Kernels> {
    [SimdLevel::Portable, SimdLevel::Neon, SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .filter_map(Kernels::for_level)
        .collect()
}

fn vectors(dim: usize, seed: u32) -> Vec<f32> {
    // A cheap deterministic sequence in [-1, 1).
    (0..dim as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0)
        .collect()
}

fn f32_kernels(c: &mut Criterion) {
    for dim in DIMS {
        let (a, b) = (vectors(dim, 1), vectors(dim, 2));
        let mut g = c.benchmark_group(format!("f32/l2/{dim}"));
        for k in levels() {
            g.bench_function(BenchmarkId::new("vq", k.level()), |bench| {
                bench.iter(|| k.l2_sq(black_box(&a), black_box(&b)).unwrap())
            });
        }
        #[cfg(feature = "peer-numkong")]
        g.bench_function("numkong", |bench| bench.iter(|| f32::sqeuclidean(black_box(&a), black_box(&b)).unwrap()));
        g.finish();

        let mut g = c.benchmark_group(format!("f32/dot/{dim}"));
        for k in levels() {
            g.bench_function(BenchmarkId::new("vq", k.level()), |bench| {
                bench.iter(|| k.dot(black_box(&a), black_box(&b)).unwrap())
            });
        }
        #[cfg(feature = "peer-numkong")]
        g.bench_function("numkong", |bench| bench.iter(|| <f32 as Dot>::dot(black_box(&a), black_box(&b)).unwrap()));
        g.finish();
    }
}

fn other_types(c: &mut Criterion) {
    for dim in [128, 768] {
        let (a, b) = (vectors(dim, 1), vectors(dim, 2));
        let (ha, hb): (Vec<f16>, Vec<f16>) =
            (a.iter().map(|&x| f16::from_f32(x)).collect(), b.iter().map(|&x| f16::from_f32(x)).collect());
        let (ua, ub): (Vec<u8>, Vec<u8>) = (
            a.iter().map(|&x| (x * 127.0 + 128.0) as u8).collect(),
            b.iter().map(|&x| (x * 127.0 + 128.0) as u8).collect(),
        );
        let mut g = c.benchmark_group(format!("f16/dot/{dim}"));
        for k in levels() {
            g.bench_function(BenchmarkId::new("vq", k.level()), |bench| {
                bench.iter(|| k.dot(black_box(&ha), black_box(&hb)).unwrap())
            });
        }
        g.finish();
        let mut g = c.benchmark_group(format!("u8/l2/{dim}"));
        for k in levels() {
            g.bench_function(BenchmarkId::new("vq", k.level()), |bench| {
                bench.iter(|| k.l2_sq(black_box(&ua), black_box(&ub)).unwrap())
            });
        }
        #[cfg(feature = "peer-numkong")]
        g.bench_function("numkong", |bench| bench.iter(|| u8::sqeuclidean(black_box(&ua), black_box(&ub)).unwrap()));
        g.finish();
        let mut g = c.benchmark_group(format!("u8/dot/{dim}"));
        for k in levels() {
            g.bench_function(BenchmarkId::new("vq", k.level()), |bench| {
                bench.iter(|| k.dot(black_box(&ua), black_box(&ub)).unwrap())
            });
        }
        #[cfg(feature = "peer-numkong")]
        g.bench_function("numkong", |bench| bench.iter(|| <u8 as Dot>::dot(black_box(&ua), black_box(&ub)).unwrap()));
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = f32_kernels, other_types
}
criterion_main!(benches);
