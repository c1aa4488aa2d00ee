//! Single-thread search speed and recall@10 of an HNSW index over a texmex dataset folder
//! (`base.bvecs`, `query.bvecs`, `gt.ivecs`, or `.fvecs` in place of `.bvecs`), for iterating on the search path: the index is
//! built once (2 threads) and cached as a file, so later runs only load and search.
//!
//! `cargo run --release -p vq-graph --example search_speed -- DIR [M] [EF,EF,...] [EF_CONSTRUCTION]`
//!
//! QPS is queries per second of process CPU time (best of 3), not wall time: on a shared
//! machine CPU time is far less disturbed by other jobs, and the search runs on one thread.

use std::time::Instant;

mod common;

use common::read_f32;
use vq_distance::Metric;
use vq_graph::{FlatStorage, Hnsw, HnswParams};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("usage: search_speed DIR [M] [EF,EF,...] [EF_CONSTRUCTION]"));
    let m: usize = args.get(2).map_or(16, |s| s.parse().expect("M"));
    let efs: Vec<usize> =
        args.get(3).map_or("16,32,64,128".into(), String::clone).split(',').map(|s| s.parse().expect("ef")).collect();
    let ef_construction: usize = args.get(4).map_or(HnswParams::default().ef_construction, |s| s.parse().expect("efC"));
    let (queries, dim) = read_f32(&dir, "query");
    let gt = vq_io::read::<i32>(dir.join("gt.ivecs")).expect("gt");
    let cache = std::env::temp_dir().join(format!(
        "vq-search-speed-{}-m{m}-efc{ef_construction}.vqi",
        dir.file_name().map_or("data".into(), |n| n.to_string_lossy().into_owned())
    ));
    let index = match Hnsw::<FlatStorage>::load(&cache) {
        Ok(index) => index,
        Err(_) => {
            let (base, _) = read_f32(&dir, "base");
            let index =
                Hnsw::new(dim, Metric::L2, HnswParams { ef_construction, ..HnswParams::with_m(m) }).expect("params");
            index.reserve(base.len() / dim);
            let (t, cpu) = (Instant::now(), cpu_seconds());
            index.add(&base).expect("add");
            eprintln!("built in {:.1} s ({:.1} s CPU)", t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
            index.save(&cache).expect("save");
            index
        }
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    let nq = queries.len() / dim;
    println!("{:>6} {:>10} {:>8}", "ef", "QPS", "R@10");
    for ef in efs {
        let mut best = f64::INFINITY;
        let mut hits = None;
        for _ in 0..3 {
            let t = cpu_seconds();
            hits = Some(pool.install(|| index.search_batch(&queries, 10, Some(ef))).expect("search"));
            best = best.min(cpu_seconds() - t);
        }
        let hits = hits.expect("ran");
        let found: usize = (0..nq)
            .map(|q| {
                let truth = &gt.row(q).expect("gt row")[..10];
                hits.get(q).expect("row").0.iter().filter(|&&id| truth.contains(&(id as i32))).count()
            })
            .sum();
        println!("{ef:>6} {:>10.0} {:>8.4}", nq as f64 / best, found as f64 / (nq * 10) as f64);
    }
}

/// CPU time used by this process so far.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: FFI call writing into the timespec we own; the clock id is a constant the C
    // library defines.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
