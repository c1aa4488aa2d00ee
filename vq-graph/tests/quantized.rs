//! HNSW over quantized storage: the graph built on SQ8 / FP16 / PQ codes finds the exact
//! neighbours of the original vectors, in a fraction of the memory.

mod common;

use common::{clustered, pool, with_copies};
use vq_distance::{Metric, knn_exact};
use vq_graph::{Error, FlatStorage, Hnsw, HnswParams, QuantizedStorage, VectorStorage};
use vq_quant::{ProductQuantizer, Quantizer, ScalarQuantizer, SqType};

/// Recall@10 at ef = 100 of `index` against exact search over the original vectors.
fn recall<S: VectorStorage>(index: &Hnsw<S>, base: &[f32], queries: &[f32], dim: usize, metric: Metric) -> f64 {
    let truth = knn_exact(base, queries, dim, 10, metric).unwrap();
    let found = index.search_batch(queries, 10, Some(100)).unwrap();
    let hit: usize =
        truth.iter().zip(found.iter()).map(|((t, _), (f, _))| f.iter().filter(|id| t.contains(id)).count()).sum();
    hit as f64 / (10 * truth.num_queries()) as f64
}

fn build<Q: Quantizer + Clone>(mut q: Q, base: &[f32]) -> Hnsw<QuantizedStorage<Q>> {
    q.train(base).unwrap();
    let index = Hnsw::with_storage(QuantizedStorage::new(q).unwrap(), HnswParams::default()).unwrap();
    index.add(base).unwrap();
    index
}

#[test]
fn graphs_over_codes_reach_high_recall_in_less_memory() {
    let dim = 32;
    let mut base = clustered(8_200, dim, 5);
    let queries = base.split_off(8_000 * dim);
    let flat = Hnsw::new(dim, Metric::L2, HnswParams::default()).unwrap();
    flat.add(&base).unwrap();
    let flat_vectors = flat.memory_usage().vectors;
    let flat_recall = recall(&flat, &base, &queries, dim, Metric::L2);

    let fp16 = build(ScalarQuantizer::new(dim, Metric::L2, SqType::FP16).unwrap(), &base);
    let sq8 = build(ScalarQuantizer::new(dim, Metric::L2, SqType::SQ8).unwrap(), &base);
    let pq = build(ProductQuantizer::new(dim, Metric::L2, 16, 8).unwrap(), &base);
    let (r16, r8, rpq) = (
        recall(&fp16, &base, &queries, dim, Metric::L2),
        recall(&sq8, &base, &queries, dim, Metric::L2),
        recall(&pq, &base, &queries, dim, Metric::L2),
    );
    // FP16 keeps ~11 bits of mantissa: it must match the flat graph closely. SQ8's error
    // (half a 1/256 step per component) barely moves the top 10 of clustered data. PQ16x8
    // (2 dims per sub-quantizer) is coarser, without refinement.
    assert!(r16 >= flat_recall - 0.01, "FP16 {r16} vs flat {flat_recall}");
    assert!(r8 >= 0.95, "SQ8 {r8} (flat {flat_recall})");
    assert!(rpq >= 0.6, "PQ16x8 {rpq}");
    // Codes take 2 and 1 bytes per component instead of 4 (plus the trained ranges).
    let v16 = fp16.memory_usage().vectors;
    let v8 = sq8.memory_usage().vectors;
    assert!(v16 * 2 <= flat_vectors + 4096 && v16 * 2 >= flat_vectors - 4096, "{v16} vs {flat_vectors}");
    assert!(v8 * 4 <= flat_vectors + 4 * 4096, "{v8} vs {flat_vectors}");
    assert_eq!((pq.storage().code(0).len(), sq8.storage().code(0).len()), (16, 32));
}

#[test]
fn cosine_and_inner_product_graphs_over_sq8() {
    let dim = 16;
    let mut base = clustered(4_100, dim, 9);
    let queries = base.split_off(4_000 * dim);
    for metric in [Metric::Cosine, Metric::InnerProduct] {
        let index = build(ScalarQuantizer::new(dim, metric, SqType::SQ8).unwrap(), &base);
        let r = recall(&index, &base, &queries, dim, metric);
        assert!(r >= 0.9, "{metric}: recall {r}");
    }
}

#[test]
fn an_untrained_quantizer_is_refused() {
    let q = ScalarQuantizer::new(8, Metric::L2, SqType::SQ8).unwrap();
    assert!(matches!(QuantizedStorage::new(q), Err(Error::Parameter { name: "quantizer", .. })));
    // Flat storage needs no training.
    assert_eq!(FlatStorage::new(8, Metric::L2).dim(), 8);
}

/// Groups of identical vectors larger than the degree over SQ8 codes (copies share a code, so
/// their keys from a copy tie exactly, as over f32): every copy reachable, a copy first for
/// the group's vector, and a range search just past that key finds every copy.
#[test]
fn large_groups_of_identical_vectors_stay_reachable_over_codes() {
    let dim = 8;
    let (groups, copies) = (20, 60);
    let (base, special) = with_copies(2_000, groups, copies, dim, 17);
    let special = &special[..];
    let mut q = ScalarQuantizer::new(dim, Metric::L2, SqType::SQ8).unwrap();
    q.train(&base).unwrap();
    let index = Hnsw::with_storage(QuantizedStorage::new(q).unwrap(), HnswParams::with_m(8)).unwrap();
    // One thread: a parallel build's insertion order, so its graph, varies from run to run.
    pool(1).install(|| index.add(&base)).unwrap();
    let report = index.check_graph();
    assert!(report.unreachable <= 10, "{report:?}");
    let top = index.search_batch(special, 1, Some(16)).unwrap();
    let mut in_balls = 0;
    for (g, (ids, scores)) in top.iter().enumerate() {
        let copy = |id: u64| id >= 2_000 && (id - 2_000) as usize % groups == g;
        assert!(copy(ids[0]), "group {g}: the nearest is not a copy ({})", ids[0]);
        let radius = scores[0] * 1.001 + 1e-4;
        let ball = index.range_search(&special[g * dim..(g + 1) * dim], radius, Some(16), None).unwrap();
        in_balls += ball.iter().filter(|h| copy(h.0)).count();
    }
    assert!(in_balls * 100 >= groups * copies * 98, "{in_balls} of {} copies in the balls", groups * copies);
}

/// A vector the storage's quantizer cannot code (SQfp16: a component beyond ±65,504) is refused
/// before any slot is claimed, as a typed error, by `add` and by the slot-reusing add: the
/// storage's encode once assumed every validated vector codes, and panicked on it.
#[test]
fn vectors_the_quantizer_refuses_are_a_typed_error_before_any_slot() {
    let dim = 4;
    let base = clustered(200, dim, 1);
    let mut index = build(ScalarQuantizer::new(dim, Metric::L2, SqType::FP16).unwrap(), &base);
    let huge = [1.0f32, 2.0, 1e5, 3.0];
    assert!(matches!(index.add(&huge), Err(Error::Quant(_))));
    assert_eq!(index.len(), 200);
    index.mark_deleted(7).unwrap();
    assert!(matches!(index.add_with_ids_reusing_deleted(&huge, &[500]), Err(Error::Quant(_))));
    assert_eq!(index.add(&base[..dim]).unwrap(), 200, "no id was used up");
}
