//! An HNSW16 index built once and saved, then searched at several `ef` from the saved file:
//! recall@10 against the dataset's ground truth and QPS (best of 5 passes over the queries).
//! For before/after comparisons of search-only changes (prefetch depth, kernels): build this
//! example at both commits, build the index with either, and alternate the two binaries'
//! search runs so that load hits both alike. Run searches with `RAYON_NUM_THREADS=1` for the
//! one-thread figures.
//!
//! ```text
//! cargo build --release -p vq-bench --example hnsw_saved_sweep
//! target/release/examples/hnsw_saved_sweep textemb100k ~/.cache/vq/data /tmp/te.vq build
//! RAYON_NUM_THREADS=1 target/release/examples/hnsw_saved_sweep textemb100k ~/.cache/vq/data /tmp/te.vq search 32,64,128
//! ```
//! Cosine for `textemb*` datasets, L2 otherwise. `TAG` (environment) prefixes each line.

use std::path::Path;
use std::time::Instant;

use vq::{Metric, SearchParams};
use vq_bench::dataset::{Source, load};
use vq_bench::recall::recall_at_k;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, name, dir, path, mode, rest @ ..] = args.as_slice() else {
        eprintln!("usage: hnsw_saved_sweep DATASET DATA_DIR INDEX_FILE build|search [EF,EF,...]");
        std::process::exit(2);
    };
    let ds = load(&Source::resolve(name, Path::new(dir), None, None).expect("dataset"), None).expect("load");
    let dim = ds.dim;
    if mode == "build" {
        let metric = if name.starts_with("textemb") { Metric::Cosine } else { Metric::L2 };
        let mut index = vq::index_factory(dim, "HNSW16", metric).expect("factory");
        let t = Instant::now();
        index.add(&ds.base.as_f32()).expect("add");
        eprintln!("built in {:.1} s", t.elapsed().as_secs_f64());
        vq::write_index(index.as_ref(), Path::new(path)).expect("write");
        return;
    }
    let index = vq::read_index(Path::new(path)).expect("read");
    let queries = ds.queries.as_f32();
    let gt = ds.gt.expect("the dataset's ground truth");
    let nq = queries.len() / dim;
    let efs = rest.first().map_or("64", String::as_str);
    for ef in efs.split(',').map(|e| e.parse::<usize>().expect("ef: integers")) {
        let params = SearchParams { k: 10, ef: Some(ef), ..Default::default() };
        let (mut best, mut got) = (f64::INFINITY, None);
        for _ in 0..5 {
            let t = Instant::now();
            got = Some(index.search_with(&queries, &params).expect("search"));
            best = best.min(t.elapsed().as_secs_f64());
        }
        let got = got.expect("five passes");
        let recall = recall_at_k(got.ids().chunks(10), &gt, 10).expect("ground truth of depth 10 for every query");
        let tag = std::env::var("TAG").unwrap_or_default();
        println!("{tag} ef={ef} recall={recall:.4} qps={:.0}", nq as f64 / best);
    }
}
