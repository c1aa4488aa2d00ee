//! The flat coarse search (`FlatCoarse::search`) of an IVF index, at the shape of
//! `IVF1024,…` on 128-d data: a block of 256 queries against 1024 centroids, top-`nprobe`.
//!
//! `cargo bench -p vq-ivf --bench coarse`. Beside it: `PackedCentroids::search` (what it
//! calls), the score matrix alone (`score_many_to_many`), the per-row selection alone over that
//! matrix, both together (the coarse search before the selection was fused into the kernel),
//! and `knn_exact` of the same shape (k = 32). Faiss' `IndexFlatL2.search`
//! of the same shape is the yardstick (see BENCHMARKS.md, issue 20, coarse search).

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vq_distance::{Metric, PackedCentroids, TopK, knn_exact, score_many_to_many};
use vq_ivf::{CoarseQuantizer, FlatCoarse};

/// Centroids uniform in [0, 100)^dim; queries: a centroid plus noise, as real queries fall
/// near some cells and far from most.
fn data(nlist: usize, nq: usize, dim: usize) -> (Vec<f32>, Vec<f32>) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32
    };
    let centroids: Vec<f32> = (0..nlist * dim).map(|_| next() * 100.0).collect();
    let mut queries = Vec::with_capacity(nq * dim);
    for _ in 0..nq {
        let c = (next() * nlist as f32) as usize % nlist;
        queries.extend(centroids[c * dim..][..dim].iter().map(|&v| v + (next() - 0.5) * 40.0));
    }
    (centroids, queries)
}

/// The process' CPU time, in nanoseconds.
struct CpuTime;

/// The process' CPU time so far (all its threads), in nanoseconds: what `vq-bench`'s
/// `process_cpu_seconds` reads, which this crate cannot depend on (`vq-bench` depends on it).
#[cfg(unix)]
fn cpu_now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into memory we own and borrow mutably for the
    // call; the clock id is a constant of the C library.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(not(unix))]
fn cpu_now_ns() -> u64 {
    unimplemented!("this bench reads the process CPU clock of unix systems")
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        cpu_now_ns()
    }
    fn end(&self, start: u64) -> u64 {
        cpu_now_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// CPU nanoseconds, shown as µs per query with the throughput set per benchmark.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e3);
        "µs (cpu)"
    }
    fn scale_throughputs(&self, _typical: f64, throughput: &Throughput, values: &mut [f64]) -> &'static str {
        if let Throughput::Elements(n) = throughput {
            values.iter_mut().for_each(|v| *v /= 1e3 * *n as f64);
        }
        "µs (cpu) per query"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns (cpu)"
    }
}

fn coarse(c: &mut Criterion<CpuTime>) {
    let (nlist, nq, dim) = (1024, 256, 128);
    let (centroids, queries) = data(nlist, nq, dim);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    for metric in [Metric::L2, Metric::InnerProduct] {
        let flat = FlatCoarse::new(centroids.clone(), dim, metric).unwrap();
        let mut g = c.benchmark_group(format!("coarse/{nlist}x{dim}/{nq}q/{}", metric.name()));
        g.throughput(Throughput::Elements(nq as u64));
        g.sample_size(20);
        for nprobe in [8, 32, 64] {
            let (mut lists, mut keys) = (vec![0u32; nq * nprobe], vec![0f32; nq * nprobe]);
            g.bench_function(BenchmarkId::new("flat_search", nprobe), |b| {
                b.iter(|| pool.install(|| flat.search(black_box(&queries), nprobe, &mut lists, &mut keys).unwrap()))
            });
        }
        let packed = PackedCentroids::new(&centroids, dim, metric).unwrap();
        for nprobe in [8, 32, 64] {
            let (mut lists, mut keys) = (vec![0u32; nq * nprobe], vec![0f32; nq * nprobe]);
            g.bench_function(BenchmarkId::new("packed_search", nprobe), |b| {
                b.iter(|| pool.install(|| packed.search(black_box(&queries), nprobe, &mut lists, &mut keys).unwrap()))
            });
        }
        let mut scores = vec![0f32; nq * nlist];
        g.bench_function("score_many_to_many", |b| {
            b.iter(|| {
                pool.install(|| score_many_to_many(metric, black_box(&queries), &centroids, dim, &mut scores).unwrap())
            })
        });
        // The coarse search before the fused selection (session 9's 8.3 µs a query): the score
        // matrix, then a selection per row.
        let mut top = TopK::new(32);
        let negate = metric != Metric::L2;
        let mut select = |scores: &[f32]| {
            for row in scores.chunks_exact(nlist) {
                top.clear();
                for (j, &s) in row.iter().enumerate() {
                    top.push(if negate { -s } else { s }, j as u64);
                }
                black_box(top.sorted());
            }
        };
        g.bench_function(BenchmarkId::new("select_only", 32), |b| b.iter(|| select(black_box(&scores))));
        g.bench_function(BenchmarkId::new("matrix_then_select", 32), |b| {
            b.iter(|| {
                pool.install(|| score_many_to_many(metric, black_box(&queries), &centroids, dim, &mut scores).unwrap());
                select(&scores)
            })
        });
        g.bench_function(BenchmarkId::new("knn_exact", 32), |b| {
            b.iter(|| pool.install(|| knn_exact(&centroids, black_box(&queries), dim, 32, metric).unwrap()))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = coarse
}
criterion_main!(benches);
