//! `memory_usage()` against what the process really holds: builds HNSW16 over f32 vectors and
//! HNSW32 over SQ8 codes on a texmex folder (`base.bvecs`), and compares each index's reported
//! bytes with the growth of the resident set while it was built and searched once (Linux,
//! `/proc/self/statm`). Prints bytes per vector by part and the gap, and exits with status 1
//! when a gap is over 3 % (the bar of issue 24).
//!
//! `cargo run --release -p vq-graph --example memory_rss -- DIR [N] [HNSW16|SQ8]`
//!
//! Each index is measured twice: right after the inserts (layer-0 lists in their open form,
//! m0 ids each) and after [`Hnsw::shrink_to_fit`] packed them to their real degree (what
//! `vq`'s adapter does after a bulk add, and what a loaded index holds).
//!
//! A check, not a timing: the two figures must agree whatever the machine's load. Each index
//! is built in one thread, so nothing else grows the heap. Name one index to build only it:
//! the second build in one process reuses the heap the first one freed, and then its RSS grows
//! by less than it holds.

use vq_distance::Metric;
use vq_graph::{Hnsw, HnswParams, MemoryUsage, QuantizedStorage, VectorStorage};
use vq_quant::{Quantizer, ScalarQuantizer, SqType};

/// Resident bytes of this process.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux only)");
    let pages: usize = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("statm's resident field");
    // The page size of every Linux target vq runs on; statm counts in pages.
    pages * 4096
}

/// Prints one line and returns the gap between RSS growth and `memory_usage()`, in percent.
fn report(name: &str, n: usize, m: MemoryUsage, grown: usize) -> f64 {
    let per = |b: usize| b as f64 / n as f64;
    let gap = (grown as f64 - m.total() as f64) / m.total() as f64 * 100.0;
    println!(
        "{name:<18} vectors {:>7.1}  links {:>6.1}  ids {:>5.1}  scratch {:>4.1}  total {:>6.1} B/vector; \
         RSS grew {:>6.1} B/vector ({gap:+.2} %)",
        per(m.vectors),
        per(m.links),
        per(m.ids),
        per(m.scratch),
        per(m.total()),
        per(grown)
    );
    gap
}

/// Builds over `base` (one thread), searches once, and reports memory against RSS growth;
/// then packs the lists and reports again.
fn measure<S: VectorStorage>(name: &str, mut index: Hnsw<S>, base: &[f32], dim: usize) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    let before = rss();
    pool.install(|| {
        index.add(base).expect("add");
        index.search_batch(&base[..100 * dim], 10, Some(64)).expect("search");
    });
    let open = report(&format!("{name} open"), base.len() / dim, index.memory_usage(), rss().saturating_sub(before));
    index.shrink_to_fit();
    let packed =
        report(&format!("{name} packed"), base.len() / dim, index.memory_usage(), rss().saturating_sub(before));
    // The check: what the index reports is what the process holds for it, within 3 %.
    for (form, gap) in [("open", open), ("packed", packed)] {
        if gap.abs() > 3.0 {
            eprintln!("{name} {form}: memory_usage() is {gap:+.2} % off the resident set's growth (bar: 3 %)");
            std::process::exit(1);
        }
    }
    // What lists sized to their real degree would hold instead of `m0` slots each.
    let graph = index.check_graph();
    println!("{name:<12} links in use: {:.1} per node (all layers)", graph.edges as f64 / graph.nodes as f64);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("usage: memory_rss DIR [N]"));
    let (base, dim) = vq_io::read::<u8>(dir.join("base.bvecs")).expect("base.bvecs").into_parts();
    let n = args.get(2).map_or(base.len() / dim, |s| s.parse().expect("N"));
    let only = args.get(3).map(String::as_str);
    let base: Vec<f32> = base[..n * dim].iter().map(|&x| f32::from(x)).collect();

    if only != Some("SQ8") {
        measure("HNSW16", Hnsw::new(dim, Metric::L2, HnswParams::with_m(16)).expect("params"), &base, dim);
    }
    if only == Some("HNSW16") {
        return;
    }

    let mut sq = ScalarQuantizer::new(dim, Metric::L2, SqType::SQ8).expect("SQ8");
    sq.train(&base).expect("train");
    let storage = QuantizedStorage::new(sq).expect("trained");
    // Trained before the baseline: the training's temporary buffers are not the index's.
    measure("HNSW32,SQ8", Hnsw::with_storage(storage, HnswParams::with_m(32)).expect("params"), &base, dim);
}
