//! Measures where a filtered HNSW search should switch to brute force: per-query time and
//! recall@10 of the graph path (which gives up for brute force once it has scored as many
//! nodes as pass) and of the brute-force path at several filter selectivities.
//!
//! `cargo run --release -p vq-graph --example filter_crossover`

use std::time::Instant;

use vq_distance::{Metric, knn_exact};
use vq_graph::{Hnsw, HnswParams};

fn main() {
    let (dim, n, nq) = (64, 50_000, 200);
    // Deterministic clustered data: 100 centres, uniform noise.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let centres: Vec<f32> = (0..100 * dim).map(|_| 8.0 * rnd()).collect();
    let mut all = Vec::with_capacity((n + nq) * dim);
    for i in 0..n + nq {
        let c = (i * 7919) % 100;
        all.extend((0..dim).map(|j| centres[c * dim + j] + rnd()));
    }
    let queries = all.split_off(n * dim);
    let build = |walk: f64| {
        let index = Hnsw::new(dim, Metric::L2, HnswParams { brute_force_walk: walk, ..HnswParams::default() }).unwrap();
        index.add(&all).unwrap();
        index
    };
    // Never brute force up front (the walk still gives up for it past its budget), always.
    let graph = build(0.0);
    let brute = build(f64::INFINITY);
    let auto = build(HnswParams::default().brute_force_walk);
    println!(
        "{:>10} {:>14} {:>8} {:>14} {:>8} {:>14} {:>8}",
        "passing", "graph us/q", "recall", "brute us/q", "recall", "default us/q", "recall"
    );
    for modulus in [2u64, 5, 10, 20, 50, 100, 200, 1000] {
        let pass = |id: u64| (id * 2_654_435_761) % modulus == 1;
        let allowed: Vec<u64> = (0..n as u64).filter(|&id| pass(id)).collect();
        let sub: Vec<f32> =
            allowed.iter().flat_map(|&id| all[id as usize * dim..(id as usize + 1) * dim].to_vec()).collect();
        let truth = knn_exact(&sub, &queries, dim, 10, Metric::L2).unwrap();
        let measure = |index: &Hnsw| {
            let t = Instant::now();
            let mut hit = 0;
            for (q, (tr, _)) in queries.chunks_exact(dim).zip(truth.iter()) {
                let found = index.search_filtered(q, 10, Some(64), &pass).unwrap();
                hit += found.iter().filter(|(id, _)| tr.iter().any(|&i| allowed[i as usize] == *id)).count();
            }
            (t.elapsed().as_secs_f64() * 1e6 / nq as f64, hit as f64 / (10 * nq) as f64)
        };
        let (gt, gr) = measure(&graph);
        let (bt, br) = measure(&brute);
        let (at, ar) = measure(&auto);
        println!("{:>9.2}% {gt:>14.1} {gr:>8.3} {bt:>14.1} {br:>8.3} {at:>14.1} {ar:>8.3}", 100.0 / modulus as f64);
    }
}
