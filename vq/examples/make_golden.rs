//! Writes the golden index files `tests/golden.rs` loads: one tiny index per kind, made from
//! deterministic data, and `expected.json` with the queries and the answers the indexes gave
//! when written. Run it only when a new kind joins (existing files must keep loading: they are
//! the backward-compatibility test, as Faiss keeps old index files in its tests), into a
//! scratch folder, and copy only the new kinds' files and `expected.json` entries over: graphs
//! are built in parallel, so an existing graph's file would come out different.
//!
//! ```sh
//! cargo run -p vq --example make_golden -- vq/tests/golden
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;
use vq::{Metric, SearchParams};

const DIM: usize = 8;
const N: usize = 120;

/// One kind per line: file name, factory string, metric, and whether ids are explicit (with a
/// removal) so the id sections are covered too.
const GOLDEN: [(&str, &str, Metric, bool); 36] = [
    ("flat", "Flat", Metric::L2, false),
    ("flat_cosine_ids", "Flat", Metric::Cosine, true),
    ("sq8", "SQ8", Metric::L2, false),
    ("sq6", "SQ6", Metric::InnerProduct, false),
    ("sq4", "SQ4", Metric::L2, true),
    ("sq4u", "SQ4U", Metric::L2, false),
    ("sqfp16", "SQfp16", Metric::Cosine, false),
    ("sqbf16", "SQbf16", Metric::L2, false),
    ("pq4x4", "PQ4x4", Metric::L2, false),
    ("opq2_pq2x4", "OPQ2,PQ2x4", Metric::L2, false),
    ("pq4x4fs_ids", "PQ4x4fs", Metric::L2, true),
    ("hnsw8", "HNSW8", Metric::L2, true),
    ("hnsw8_sq8", "HNSW8,SQ8", Metric::L2, false),
    ("hnsw8_pq4x4", "HNSW8,PQ4x4", Metric::InnerProduct, false),
    ("hnsw8_sq8_rflat", "HNSW8,SQ8,RFlat", Metric::L2, true),
    ("hnsw8_sq8_refine_fp16", "HNSW8,SQ8,Refine(SQfp16)", Metric::Cosine, false),
    ("hnsw8_sq4u_untrained", "HNSW8,SQ4U", Metric::L2, false),
    ("ivf4_flat", "IVF4,Flat", Metric::L2, true),
    ("ivf4_sq8", "IVF4,SQ8", Metric::Cosine, false),
    ("ivf4_pq4x4_rflat", "IVF4,PQ4x4,RFlat", Metric::InnerProduct, true),
    ("ivf4_pq4x4_untrained", "IVF4,PQ4x4", Metric::L2, false),
    ("ivf4_pq4x4fs_ids", "IVF4,PQ4x4fs", Metric::L2, true),
    ("ivf4_pq4x4fs_rflat", "IVF4,PQ4x4fs,RFlat", Metric::Cosine, false),
    // Session 26: the kinds sessions 23–25 added (OPQ before an inverted file needs 256
    // training points for its 8-bit rounds: not at this size).
    ("rabitq", "RaBitQ", Metric::L2, false),
    ("rabitqfs_rflat", "RaBitQfs,RFlat", Metric::Cosine, true),
    ("ivf4_rabitq", "IVF4,RaBitQ", Metric::InnerProduct, false),
    ("ivf4_rabitqfs_ids", "IVF4,RaBitQfs", Metric::L2, true),
    ("pca4_flat", "PCA4,Flat", Metric::L2, false),
    ("pcar4_ivf4_flat", "PCAR4,IVF4,Flat", Metric::Cosine, true),
    ("ivf4_hnsw4_flat", "IVF4_HNSW4,Flat", Metric::L2, false),
    // Session 27: OPQ before an inverted file, trained on a larger sample (`trains_on_more`).
    ("opq2_ivf4_pq2x4", "OPQ2,IVF4,PQ2x4", Metric::L2, false),
    ("opq2_4_ivf4_pq2x4fs_rflat", "OPQ2_4,IVF4,PQ2x4fs,RFlat", Metric::Cosine, true),
    // Session 28: multi-bit RaBitQ.
    ("rabitq4_ids", "RaBitQ4", Metric::L2, true),
    ("ivf4_rabitq3_rflat", "IVF4,RaBitQ3,RFlat", Metric::InnerProduct, false),
    // Session 29: multi-bit codes with their sign bits in the fast-scan layout.
    ("rabitqfs3_ids", "RaBitQfs3", Metric::Cosine, true),
    // Session 30: residual multi-bit codes with their sign bits' factors (meta version 3).
    ("ivf4_rabitqfs2_ids", "IVF4,RaBitQfs2", Metric::L2, true),
];

/// Rows the kinds of [`trains_on_more`] train on.
const LARGE_SAMPLE: usize = 300;

/// Whether a kind's training needs more than the `N` rows it holds: OPQ before an inverted
/// file (its 8-bit rounds take 256). Such kinds train on `LARGE_SAMPLE` rows of their own,
/// then hold the same `N` rows as the rest.
fn trains_on_more(spec: &str) -> bool {
    spec.starts_with("OPQ") && spec.contains("IVF")
}

/// A fixed pseudo-random sequence (splitmix64), so the files are the same on every machine.
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut z = seed;
    (0..n * DIM)
        .map(|_| {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: make_golden OUT_DIR")?);
    std::fs::create_dir_all(&out)?;
    let base = data(N, 1);
    let queries = data(4, 2);
    let params = SearchParams { k: 5, ef: Some(32), refine_k: Some(2), nprobe: Some(2), ..Default::default() };
    let mut expected = BTreeMap::new();
    for (name, spec, metric, explicit_ids) in GOLDEN {
        let mut index = vq::index_factory(DIM, spec, metric)?;
        if name.ends_with("_untrained") {
            // A trained-nothing file: its answer is the NotTrained error.
            vq::write_index(index.as_ref(), out.join(format!("{name}.vq")))?;
            expected.insert(name, json!({ "spec": spec, "metric": metric.name(), "len": 0, "trained": false }));
            continue;
        }
        if trains_on_more(spec) {
            index.train(&data(LARGE_SAMPLE, 3))?;
        } else {
            index.train(&base)?;
        }
        if explicit_ids {
            let ids: Vec<u64> = (0..N as u64).map(|i| 1000 + 3 * i).collect();
            index.add_with_ids(&base, &ids)?;
            index.remove_ids(&[1000, 1003, 1000 + 3 * 50])?;
        } else {
            index.add(&base)?;
        }
        let hits = index.search_with(&queries, &params)?;
        vq::write_index(index.as_ref(), out.join(format!("{name}.vq")))?;
        expected.insert(
            name,
            json!({
                "spec": spec, "metric": metric.name(), "len": index.len(), "trained": true,
                "ids": hits.ids(), "scores": hits.scores(),
            }),
        );
    }
    let doc = json!({ "dim": DIM, "k": params.k, "ef": params.ef, "refine_k": params.refine_k, "nprobe": params.nprobe, "queries": queries, "indexes": expected });
    std::fs::write(out.join("expected.json"), serde_json::to_string_pretty(&doc)? + "\n")?;
    println!("wrote {} golden indexes to {}", GOLDEN.len(), out.display());
    Ok(())
}
