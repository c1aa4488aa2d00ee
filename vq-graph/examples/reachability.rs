//! Nodes a walk from the entry point does not reach after building a texmex dataset's base
//! (`base.bvecs` or `base.fvecs`) in one batch, at m 16 and 8, on one and two threads: the
//! count `Hnsw::check_graph` reports as `unreachable`, with the build time.
//!
//! `cargo run --release -p vq-graph --example reachability -- DIR [l2|cosine]`

use std::time::Instant;

mod common;

use common::read_f32;
use vq_distance::Metric;
use vq_graph::{Hnsw, HnswParams};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("usage: reachability DIR [l2|cosine]"));
    let metric = match args.get(2).map(String::as_str) {
        Some("cosine") => Metric::Cosine,
        _ => Metric::L2,
    };
    let (base, dim) = read_f32(&dir, "base");
    for m in [16, 8] {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            let index = Hnsw::new(dim, metric, HnswParams::with_m(m)).expect("params");
            let t = Instant::now();
            pool.install(|| index.add(&base)).expect("add");
            let report = index.check_graph();
            println!(
                "m {m:2}, {threads} thread(s): {} of {} nodes unreachable, built in {:.1} s",
                report.unreachable,
                report.nodes,
                t.elapsed().as_secs_f64()
            );
        }
    }
}
