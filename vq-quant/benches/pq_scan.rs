//! criterion: the PQ look-up-table scan and table build (the two parts of an exhaustive PQ
//! search per query), at the shapes of the imgsift100k figures (d = 128, 100,000 codes), and
//! the 4-bit fast scan over the same codes (`fastscan/…`: quantize the table, scan into a
//! top-10) beside the float scan of 4-bit codes, and the per-list table of an inverted file
//! over L2 residuals (`fastscan/list_table/…`: add the list's terms to the query's and
//! quantize; run with `VQ_SIMD=portable` for the scalar twin).
//!
//! The end-to-end comparison with Faiss' IndexPQ is `cargo xtask bench` (see BENCHMARKS.md).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use vq_distance::{Metric, TopK};
use vq_quant::fastscan::{PackedCodes, QuantizedLut};
use vq_quant::{CodeScorer, OpqParams, OpqQuantizer, PqParams, ProductQuantizer, Quantizer};

fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

fn bench(c: &mut Criterion) {
    let (dim, n) = (128, 100_000);
    let mut g = c.benchmark_group("pq");
    for (m, nbits) in [(16, 8), (32, 8), (32, 4), (64, 4)] {
        let mut pq = ProductQuantizer::new(dim, Metric::L2, m, nbits).expect("valid");
        pq.set_centroids(gaussian(dim << nbits, 1)).expect("finite");
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let codes: Vec<u8> = (0..n * pq.code_size()).map(|_| rng.random()).collect();
        let query = gaussian(dim, 3);
        let scorer = pq.scorer(&query).expect("trained");
        let mut keys = vec![0f32; 256];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("scan/PQ{m}x{nbits}/{n}"), |b| {
            b.iter(|| {
                let mut best = f32::INFINITY;
                for block in codes.chunks(256 * pq.code_size()) {
                    let keys = &mut keys[..block.len() / pq.code_size()];
                    scorer.distances(block, keys);
                    best = keys.iter().fold(best, |a, &k| a.min(k));
                }
                best
            })
        });
        if nbits == 4 {
            let mut packed = PackedCodes::new(m).expect("valid m");
            packed.extend(&codes).expect("whole codes");
            g.bench_function(format!("fastscan/PQ{m}x4fs/{n}"), |b| {
                b.iter(|| {
                    let lut = QuantizedLut::new(scorer.table()).expect("finite");
                    let mut top = TopK::new(10);
                    packed.scan(&lut, &mut top, None, |row| row as u64).expect("same m");
                    top.threshold()
                })
            });
        }
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("table/PQ{m}x{nbits}"), |b| b.iter(|| pq.scorer(&query).expect("trained")));
    }
    // What an IVF over L2 residuals does per probed list, at the m of imgsift (32, 64) and
    // textemb (96, 192).
    for m in [32, 64, 96, 192] {
        let (terms, query_terms) = (gaussian(16 * m, 6), gaussian(16 * m, 7));
        let mut lut = QuantizedLut::new(&terms).expect("finite");
        g.bench_function(format!("fastscan/list_table/m{m}"), |b| {
            b.iter(|| {
                lut.fill_sum(&terms, &query_terms).expect("finite");
                lut.key(0)
            })
        });
    }
    // OPQ adds the rotation of the query (d × d) to the table build.
    let params = OpqParams {
        niter: 1,
        niter_pq_0: 1,
        pq: PqParams { iterations: 1, ..PqParams::new(16, 8) },
        ..OpqParams::new(16, 8)
    };
    let mut opq = OpqQuantizer::with_params(dim, Metric::L2, params).expect("valid");
    opq.train(&gaussian(1000 * dim, 4)).expect("train");
    let query = gaussian(dim, 5);
    g.bench_function("table/OPQ16,PQ16x8", |b| b.iter(|| opq.scorer(&query).expect("trained")));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
