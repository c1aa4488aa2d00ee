//! One conformance suite over every factory string: the same checks, the same data, a recall
//! floor per kind. Each check is a typed error or a correct answer, never a panic.

use std::collections::HashSet;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};
use vq::{Error, IdBitset, Index, Metric, SearchDefault, SearchParams};

const DIM: usize = 16;
const N: usize = 2_000;
const NQ: usize = 40;
const K: usize = 10;

/// Every factory string and the recall@10 it must reach on the clustered data with the search
/// settings of `params` (about 0.03–0.1 below what it measured when the suite was written).
const SPECS: [(&str, f64); 52] = [
    ("Flat", 1.0),
    ("SQ8", 0.9),
    ("SQ6", 0.85),
    ("SQ4", 0.55),
    ("SQ4U", 0.5),
    ("SQfp16", 0.97),
    ("SQbf16", 0.95),
    ("PQ8", 0.65),
    ("PQ8x4", 0.18),
    ("OPQ4,PQ4", 0.45),
    ("PQ8x4fs", 0.18),
    ("PQ8x4fs,RFlat", 0.6),
    // Graphs are built in parallel (insertion order varies): their floors leave room.
    ("HNSW16", 0.93),
    ("HNSW16,SQ8", 0.88),
    ("HNSW16,PQ8", 0.65),
    ("HNSW16,SQfp16", 0.9),
    ("HNSW16,SQ8,RFlat", 0.92),
    ("HNSW16,SQ8,Refine(SQfp16)", 0.92),
    ("PQ8,RFlat", 0.95),
    ("SQ4,Refine(SQ8)", 0.9),
    // Inverted files, every list probed (`params`): the codec's exhaustive recall.
    ("IVF16,Flat", 1.0),
    ("IVF16,SQ8", 0.93),
    ("IVF16,SQfp16", 0.97),
    ("IVF16,PQ8", 0.8),
    ("IVF16,PQ8,RFlat", 0.95),
    // An HNSW graph over the centroids instead of scoring them all.
    ("IVF16_HNSW8,Flat", 1.0),
    ("IVF16_HNSW8,SQ8", 0.93),
    ("IVF16,PQ8x4fs", 0.18),
    ("IVF16,PQ8x4fs,RFlat", 0.6),
    ("IVF16_HNSW8,PQ8x4fs,RFlat", 0.6),
    // An OPQ rotation before the inverted file: distances are unchanged, so Flat stays exact.
    ("OPQ4,IVF16,Flat", 1.0),
    ("OPQ4,IVF16,PQ4", 0.45),
    ("OPQ4,IVF16,PQ4,RFlat", 0.9),
    // A PCA projection in front: to every dimension (a rotation: exact), or to three quarters of them,
    // re-ranked from the full vectors.
    ("PCA16,Flat", 0.99),
    ("PCA12,HNSW16,RFlat", 0.7),
    ("PCAR12,IVF16,PQ4,RFlat", 0.7),
    // OPQ with an output dimension: a learned projection before the inverted file.
    ("OPQ4_12,IVF16,PQ4,RFlat", 0.7),
    // RaBitQ: one bit per dimension, 16 here (its error falls as 1/√d: coarse at this size, the
    // flat codes about one mean most of all), re-ranked from the vectors.
    ("RaBitQ", 0.05),
    ("RaBitQ,RFlat", 0.2),
    ("RaBitQfs", 0.05),
    ("RaBitQfs,RFlat", 0.2),
    ("IVF16,RaBitQ", 0.3),
    ("IVF16,RaBitQ,RFlat", 0.6),
    ("IVF16,RaBitQfs", 0.3),
    ("IVF16,RaBitQfs,RFlat", 0.6),
    // Extended RaBitQ: the error falls about twofold per extra bit.
    ("RaBitQ4", 0.55),
    ("IVF16,RaBitQ4", 0.75),
    ("IVF16,RaBitQ3,RFlat", 0.9),
    // Their sign bits in the fast-scan layout, bounding which codes are scored over every plane.
    ("RaBitQfs4", 0.55),
    ("RaBitQfs3,RFlat", 0.9),
    ("IVF16,RaBitQfs4", 0.75),
    ("IVF16,RaBitQfs3,RFlat", 0.9),
];

fn params(k: usize) -> SearchParams<'static> {
    SearchParams { k, ef: Some(96), refine_k: Some(4), nprobe: Some(16), ..Default::default() }
}

/// Gaussian clusters: 20 centres, unit spread around them.
fn clustered(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..20 * DIM).map(|_| rng.random_range(-10.0f32..10.0)).collect();
    let noise = Normal::new(0.0f32, 1.0).unwrap();
    (0..n)
        .flat_map(|_| {
            let c = rng.random_range(0..20);
            let centre = centres[c * DIM..(c + 1) * DIM].to_vec();
            centre.into_iter().map(|x| x + noise.sample(&mut rng)).collect::<Vec<_>>()
        })
        .collect()
}

fn built(spec: &str, metric: Metric, data: &[f32]) -> Box<dyn Index> {
    let mut index = vq::index_factory(DIM, spec, metric).unwrap_or_else(|e| panic!("{spec}: {e}"));
    index.train(data).unwrap_or_else(|e| panic!("{spec}: train: {e}"));
    index.add(data).unwrap_or_else(|e| panic!("{spec}: add: {e}"));
    index
}

fn recall(found: &vq::Neighbors, truth: &vq::Neighbors) -> f64 {
    let hits: usize =
        found.iter().zip(truth.iter()).map(|((f, _), (t, _))| f.iter().filter(|id| t.contains(id)).count()).sum();
    hits as f64 / (truth.num_queries() * K) as f64
}

#[test]
fn every_spec_reaches_its_recall_floor_and_round_trips_through_a_file() {
    let data = clustered(N, 1);
    let queries = clustered(NQ, 2);
    let dir = tempfile::tempdir().unwrap();
    for metric in [Metric::L2, Metric::Cosine] {
        let truth =
            vq::knn_exact(&normalized_if(metric, &data), &normalized_if(metric, &queries), DIM, K, metric).unwrap();
        for (spec, floor) in SPECS {
            let index = built(spec, metric, &data);
            assert_eq!(index.len(), N, "{spec}");
            assert_eq!(index.spec().to_string().parse::<vq::IndexSpec>().unwrap(), index.spec(), "{spec}");
            let found = index.search_with(&queries, &params(K)).unwrap();
            let r = recall(&found, &truth);
            assert!(r >= floor, "{spec} {metric}: recall@{K} {r:.3} below {floor}");
            assert!(
                found.scores().chunks(K).all(|row| row.windows(2).all(|w| !metric.is_better(w[1], w[0]))),
                "{spec}: best first"
            );

            let path = dir.path().join("index.vq");
            vq::write_index(index.as_ref(), &path).unwrap();
            let mut totals = Vec::new();
            for mmap in [false, true] {
                let back = vq::read_index_with(&path, vq::ReadOptions { mmap }).unwrap();
                // IVF lists (not the fast-scan layout) are served from a map; nothing else is.
                let m = back.memory_usage();
                let lists_mapped = mmap && spec.contains("IVF") && !spec.contains("fs");
                assert_eq!(m.mapped > 0, lists_mapped, "{spec} mmap {mmap}: {m:?}");
                totals.push(m.total());
                assert_eq!(back.spec(), index.spec(), "{spec}");
                assert_eq!((back.len(), back.dim(), back.metric()), (N, DIM, metric), "{spec}");
                let again = back.search_with(&queries, &params(K)).unwrap();
                assert_eq!(again.ids(), found.ids(), "{spec} {metric}: ids after write/read");
                let same_bits = again.scores().iter().zip(found.scores()).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same_bits, "{spec} {metric}: scores after write/read");
            }
            assert_eq!(totals[0], totals[1], "{spec}: mapped or not, the same total");
            assert!(index.memory_usage().total() > 0, "{spec}");

            // Rows added after a read are coded as the same rows added to the index that was
            // written (what reading rebuilds, or makes on the first add, is the same state).
            // Graphs link a batch's rows in parallel, in no fixed order: not compared.
            if is_graph(spec) {
                continue;
            }
            let extra = clustered(40, 3);
            let (mut index, mut back) = (index, vq::read_index(&path).unwrap());
            index.add(&extra).unwrap();
            back.add(&extra).unwrap();
            let (want, got) =
                (index.search_with(&queries, &params(K)).unwrap(), back.search_with(&queries, &params(K)).unwrap());
            assert_eq!(got.ids(), want.ids(), "{spec} {metric}: ids after read and add");
            let same_bits = got.scores().iter().zip(want.scores()).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same_bits, "{spec} {metric}: scores after read and add");
        }
    }
}

fn normalized_if(metric: Metric, data: &[f32]) -> Vec<f32> {
    let mut v = data.to_vec();
    if metric == Metric::Cosine {
        vq::normalize_l2(&mut v, DIM).unwrap();
    }
    v
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    let data = clustered(300, 3);
    for (spec, _) in SPECS {
        let mut index = built(spec, Metric::L2, &data);
        let q = &data[..DIM];
        assert!(index.search(&data[..DIM - 1], K).is_err(), "{spec}: ragged queries");
        assert!(matches!(index.search(q, 0), Err(Error::Distance(vq::vq_distance::Error::ZeroK))), "{spec}: k = 0");
        let mut nan = q.to_vec();
        nan[3] = f32::NAN;
        assert!(index.search(&nan, K).is_err(), "{spec}: NaN query");
        let mut inf = q.to_vec();
        inf[0] = f32::INFINITY;
        assert!(index.add(&inf).is_err(), "{spec}: infinite vector");
        assert!(index.add(&data[..DIM + 1]).is_err(), "{spec}: ragged vectors");
        assert!(
            matches!(index.add_with_ids(&data[..2 * DIM], &[5_000, 5_000]), Err(Error::DuplicateId(5_000))),
            "{spec}"
        );
        assert!(index.add_with_ids(&data[..DIM], &[7]).is_err(), "{spec}: id 7 is present");
        assert!(
            matches!(index.add_with_ids(&data[..2 * DIM], &[9_000]), Err(Error::IdCount { ids: 1, vectors: 2 })),
            "{spec}"
        );
        assert_eq!(index.len(), 300, "{spec}: failed adds add nothing");
        assert!(index.search(&nan, K).is_err(), "{spec}");
    }
}

/// A refused batch consumes no ids: the next `add` numbers its vectors from the count that is
/// really in the index, as if the failed call had not happened.
#[test]
fn a_failed_add_consumes_no_ids() {
    let data = clustered(301, 8);
    let (first, last) = data.split_at(300 * DIM);
    for (spec, _) in SPECS {
        let mut index = built(spec, Metric::L2, first);
        let mut bad = first[..8 * DIM].to_vec();
        bad[5 * DIM + 2] = f32::NAN;
        assert!(index.add(&bad).is_err(), "{spec}: a NaN in row 5");
        index.add(last).unwrap();
        assert_eq!(index.len(), 301, "{spec}");
        if finds_itself(spec) {
            let hit = index.search_with(last, &params(1)).unwrap();
            assert_eq!(hit.ids()[0], 300, "{spec}: the vector added after the failure has id 300");
        } else {
            let all = index.search_with(last, &params(301)).unwrap();
            assert_eq!(all.ids().iter().copied().collect::<HashSet<_>>(), (0..301).collect(), "{spec}: ids 0..=300");
        }
    }
}

#[test]
fn untrained_empty_and_small_indexes_answer_sensibly() {
    let data = clustered(300, 4);
    let q = &data[..2 * DIM];
    for (spec, _) in SPECS {
        let mut index = vq::index_factory(DIM, spec, Metric::L2).unwrap();
        if !index.is_trained() {
            assert!(matches!(index.add(&data), Err(Error::NotTrained { .. })), "{spec}: add before train");
            assert!(matches!(index.search(q, K), Err(Error::NotTrained { .. })), "{spec}: search before train");
            index.train(&data).unwrap();
        }
        let empty = index.search(q, K).unwrap();
        assert_eq!(empty.num_queries(), 2, "{spec}");
        assert!(empty.ids().iter().all(|&id| id == u64::MAX), "{spec}: an empty index pads every slot");
        index.add(&data[..5 * DIM]).unwrap();
        let few = index.search_with(q, &params(K)).unwrap();
        let (ids, _) = few.get(0).unwrap();
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4], "{spec}: k above the count gives every vector once");
        assert_eq!(few.ids()[5..K], [u64::MAX; 5], "{spec}: padded");
        assert!(few.scores()[5..K].iter().all(|&s| s == Metric::L2.worst_score()), "{spec}: padded scores");
    }
}

/// A k far above the index size (Faiss pads to k) cannot be padded when `queries × k` does
/// not fit memory: a typed error, never an overflow panic or an abort on a huge allocation.
/// Plain and filtered searches, since they allocate on different paths.
/// A dense `d × d` map (PCA's covariance, OPQ's rotation, RaBitQ's rotation) at a dimension
/// the factory accepts but memory cannot hold: a typed error naming the dimension when the
/// index is made, never an abort on the allocation.
#[test]
fn dense_maps_of_huge_dimensions_are_typed_errors() {
    let dim = 1 << 20;
    for spec in [
        "PCA64,Flat",
        "PCAR64,HNSW16",
        "OPQ16,PQ16",
        "OPQ16,IVF16,PQ16",
        "OPQ16_64,IVF16,PQ16",
        "RaBitQ",
        "RaBitQfs,RFlat",
        "IVF16,RaBitQ",
    ] {
        match vq::index_factory(dim, spec, Metric::L2) {
            Err(e @ Error::Quant(_)) => assert!(e.to_string().contains(&dim.to_string()), "{spec}: {e}"),
            other => panic!("{spec}: {:?}", other.map(|i| i.spec().to_string())),
        }
    }
}

/// `by_residual` is followed by the lists that take it (fast-scan PQ, either way) and refused,
/// naming itself, by the lists that code one way only, when asked for the other; asked for
/// what they do, they build.
#[test]
fn by_residual_is_followed_or_refused_never_ignored() {
    let data = clustered(300, 6);
    for (spec, fixed) in [
        ("IVF4,Flat", Some(false)),
        ("IVF4,SQ8", Some(true)),
        ("IVF4,PQ4", Some(true)),
        ("IVF4,RaBitQ", Some(true)),
        ("IVF4,RaBitQfs", Some(true)),
        ("IVF4,PQ4x4fs", None),
    ] {
        for wanted in [false, true] {
            let params = vq::IndexParams { by_residual: Some(wanted), ..Default::default() };
            let made = vq::index_factory_with(DIM, spec, Metric::L2, &params);
            if fixed.is_none_or(|f| f == wanted) {
                let mut index = made.unwrap_or_else(|e| panic!("{spec} by_residual = {wanted}: {e}"));
                index.train(&data).unwrap();
                index.add(&data).unwrap();
                assert_eq!(index.len(), 300, "{spec} by_residual = {wanted}");
            } else {
                match made {
                    Err(e @ Error::Parameter { name: "by_residual", .. }) => {
                        assert!(e.to_string().contains(&format!("by_residual = {}", !wanted)), "{spec}: {e}")
                    }
                    other => panic!("{spec} by_residual = {wanted}: {:?}", other.map(|i| i.spec().to_string())),
                }
            }
        }
    }
}

#[test]
fn huge_k_is_a_typed_error_not_an_abort() {
    let data = clustered(300, 6);
    let q = &data[..2 * DIM];
    let odd = IdBitset::from_ids(&(0..300).filter(|id| id % 2 == 1).collect::<Vec<u64>>());
    for (spec, _) in SPECS {
        let index = built(spec, Metric::L2, &data);
        for k in [usize::MAX, 1 << 40, usize::MAX / 2 + 1] {
            for filter in [None, Some(&odd as &dyn vq::IdFilter)] {
                let p = SearchParams { k, ef: Some(32), refine_k: Some(2), filter, ..Default::default() };
                match index.search_with(q, &p) {
                    Err(Error::Distance(vq::vq_distance::Error::ResultTooLarge { queries: 2, k: got })) => {
                        assert_eq!(got, k, "{spec}: the error names the k asked for")
                    }
                    other => panic!("{spec}: k = {k}, filtered {}: {other:?}", filter.is_some()),
                }
            }
        }
        // Just above the size stays a padded answer.
        let p = SearchParams { k: 301, ef: Some(32), refine_k: Some(2), ..Default::default() };
        let all = index.search_with(q, &p).unwrap();
        assert_eq!(all.ids().len(), 2 * 301, "{spec}");
        assert_eq!(all.ids()[300], u64::MAX, "{spec}: one padded slot after every vector");
    }
}

/// Under inner product a zero vector is an ordinary input (it scores 0 with everything), for
/// every kind: an inverted file over an HNSW coarse quantizer, whose graph links centroids by
/// cosine, refused it as "norm zero: cosine similarity is undefined".
#[test]
fn zero_vectors_under_inner_product_are_ordinary_input() {
    let data = clustered(300, 12);
    let zero = [0.0f32; DIM];
    for (spec, _) in SPECS {
        let mut index = vq::index_factory(DIM, spec, Metric::InnerProduct).unwrap();
        index.train(&data).unwrap();
        index.add(&data).unwrap();
        index.add(&zero).unwrap_or_else(|e| panic!("{spec}: add: {e}"));
        let hits = index.search_with(&zero, &params(5)).unwrap_or_else(|e| panic!("{spec}: search: {e}"));
        assert!(hits.ids().iter().all(|&id| id != u64::MAX), "{spec}: {:?}", hits.ids());
        // Codes estimate the score (RaBitQ's estimate of 0 strays by its error bound).
        if stores_f32(spec) {
            assert!(hits.scores().iter().all(|&s| s == 0.0), "{spec}: {:?}", hits.scores());
        }
        let all = index.range_search_with(&zero, -1.0, &params(5)).unwrap_or_else(|e| panic!("{spec}: range: {e}"));
        if stores_f32(spec) && scores_independent_of_k(spec) {
            assert!(all.get(0).is_some_and(|(ids, _)| ids.len() == 301), "{spec}: every score 0 is above -1");
        }
    }
}

/// `reserve` is a hint: a size no memory (nor address space) can hold is dropped, never a
/// capacity-overflow panic or an abort on the allocation; the index then adds as usual.
#[test]
fn reserve_beyond_memory_is_dropped_not_an_abort() {
    let data = clustered(300, 11);
    for (spec, _) in SPECS {
        let mut index = vq::index_factory(DIM, spec, Metric::L2).unwrap();
        index.train(&data).unwrap();
        for additional in [usize::MAX, 1 << 50] {
            index.reserve(additional);
        }
        index.add(&data).unwrap();
        assert_eq!(index.len(), 300, "{spec}");
        assert!(index.memory_usage().total() < 1 << 30, "{spec}: {:?}", index.memory_usage());
    }
}

#[test]
fn removed_ids_are_never_returned_and_filters_are_obeyed() {
    let data = clustered(600, 5);
    let queries = clustered(20, 6);
    for (spec, _) in SPECS {
        let mut index = built(spec, Metric::L2, &data);
        let removed: Vec<u64> = (0..600).step_by(3).collect();
        assert_eq!(index.remove_ids(&removed).unwrap(), 200, "{spec}");
        assert_eq!(index.remove_ids(&[0, 3, 1_000_000]).unwrap(), 0, "{spec}: already gone or unknown");
        assert_eq!(index.len(), 400, "{spec}");
        let gone: HashSet<u64> = removed.iter().copied().collect();
        let hits = index.search_with(&queries, &params(K)).unwrap();
        assert!(hits.ids().iter().all(|id| !gone.contains(id)), "{spec}: a removed id came back");
        assert!(hits.iter().all(|(ids, _)| ids.len() == K), "{spec}: removal leaves enough to fill k");

        let nothing = IdBitset::with_bound(0);
        let none = index.search_with(&queries, &SearchParams { filter: Some(&nothing), ..params(K) }).unwrap();
        assert!(none.ids().iter().all(|&id| id == u64::MAX), "{spec}: a filter passing nothing");
        let even = |id: u64| id.is_multiple_of(2);
        let some = index.search_with(&queries, &SearchParams { filter: Some(&even), ..params(K) }).unwrap();
        assert!(
            some.iter()
                .all(|(ids, _)| !ids.is_empty() && ids.iter().all(|id| id.is_multiple_of(2) && !gone.contains(id))),
            "{spec}"
        );
    }
}

#[test]
fn add_with_ids_keeps_the_callers_ids() {
    let data = clustered(400, 7);
    for (spec, _) in SPECS {
        let mut index = vq::index_factory(DIM, spec, Metric::L2).unwrap();
        index.train(&data).unwrap();
        let ids: Vec<u64> = (0..400).map(|i| 1_000_000 + 7 * i).collect();
        index.add_with_ids(&data, &ids).unwrap();
        if finds_itself(spec) {
            let hits = index.search_with(&data[5 * DIM..6 * DIM], &params(1)).unwrap();
            assert_eq!(hits.ids()[0], ids[5], "{spec}: the query is vector 5 itself");
        } else {
            let all = index.search_with(&data[5 * DIM..6 * DIM], &params(400)).unwrap();
            assert_eq!(all.ids().iter().copied().collect::<HashSet<_>>(), ids.iter().copied().collect(), "{spec}");
        }
    }
}

/// The seeds' pitfall: inner product over unnormalized vectors is not cosine. A cosine index
/// normalizes internally and ranks by angle; an inner-product index ranks long vectors first.
#[test]
fn cosine_ranks_by_angle_whatever_the_norms() {
    // Vector 0 points the query's way but is short; vector 1 is 45° off but long.
    let data = [1.0f32, 0.0, 10.0, 10.0];
    let query = [1.0f32, 0.0];
    let mut cos = vq::index_factory(2, "Flat", Metric::Cosine).unwrap();
    cos.add(&data).unwrap();
    let mut ip = vq::index_factory(2, "Flat", Metric::InnerProduct).unwrap();
    ip.add(&data).unwrap();
    assert_eq!(cos.search(&query, 1).unwrap().ids(), &[0], "cosine: same direction wins");
    assert_eq!(ip.search(&query, 1).unwrap().ids(), &[1], "inner product: the long vector wins");
    let s = cos.search(&query, 2).unwrap();
    assert!((s.scores()[0] - 1.0).abs() < 1e-6 && (s.scores()[1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    // Normalizing first makes inner product agree with cosine.
    let mut normalized = data;
    vq::normalize_l2(&mut normalized, 2).unwrap();
    let mut ip_norm = vq::index_factory(2, "Flat", Metric::InnerProduct).unwrap();
    ip_norm.add(&normalized).unwrap();
    assert_eq!(ip_norm.search(&query, 2).unwrap().ids(), cos.search(&query, 2).unwrap().ids());
}

/// A build parameter no part of the index uses is refused by name, not silently dropped; the
/// same parameter where it applies builds.
#[test]
fn parameters_no_part_uses_are_refused() {
    let none = vq::IndexParams::default;
    let cases: [(vq::IndexParams, &str, &str); 7] = [
        (vq::IndexParams { nprobe: Some(4), ..none() }, "Flat", "IVF16,Flat"),
        (vq::IndexParams { ef: Some(4), ..none() }, "IVF16_HNSW8,Flat", "HNSW16,SQ8"),
        (vq::IndexParams { ef_construction: Some(40), ..none() }, "SQ8,RFlat", "HNSW16,RFlat"),
        (vq::IndexParams { by_residual: Some(true), ..none() }, "PQ4x4fs", "IVF16,PQ4x4fs"),
        (vq::IndexParams { anisotropic_threshold: Some(0.2), ..none() }, "HNSW16,PQ4", "PQ4x4fs"),
        (vq::IndexParams { refine_k: Some(4), ..none() }, "HNSW16", "HNSW16,RFlat"),
        (vq::IndexParams { reorder_k: Some(40), ..none() }, "IVF16,PQ4x4fs", "IVF16,PQ4x4fs,RFlat"),
    ];
    for (params, unused, used) in cases {
        match vq::index_factory_with(DIM, unused, Metric::L2, &params) {
            Err(Error::Parameter { name, what }) => assert!(what.contains(unused), "{unused} {name}: {what}"),
            other => panic!("{unused} with {params:?}: {:?}", other.map(|i| i.spec().to_string())),
        }
        vq::index_factory_with(DIM, used, Metric::L2, &params).unwrap_or_else(|e| panic!("{used}: {e}"));
    }
}

/// A search knob no part of a wrapped index has is refused naming the index the caller holds,
/// not the part the wrapper handed it to.
#[test]
fn a_missing_knob_is_named_against_the_whole_index() {
    for (spec, knob) in [
        ("HNSW16,SQ8,RFlat", SearchDefault::Nprobe),
        ("OPQ4,IVF16,PQ4", SearchDefault::Ef),
        ("PCA12,HNSW16,RFlat", SearchDefault::Nprobe),
    ] {
        let mut index = vq::index_factory(DIM, spec, Metric::L2).unwrap();
        match index.set_search_default(knob, 3) {
            Err(Error::Parameter { what, .. }) => {
                assert!(what.starts_with(&format!("{spec} has no")), "{spec}: {what}")
            }
            other => panic!("{spec}: {other:?}"),
        }
    }
}

#[test]
fn bad_factory_strings_are_spec_errors() {
    let fast_scan_misuse = ["PQ8x8fs", "HNSW16,PQ8x4fs", "IVF16,PQ8x8fs", "OPQ8,PQ8x4fs", "HNSW16,RaBitQ"];
    for bad in ["", "HNSW", "Bogus", "PQ3", "HNSW16,SQ9", "IVF16", "IVF16,OPQ4,PQ4"].into_iter().chain(fast_scan_misuse)
    {
        match vq::index_factory(DIM, bad, Metric::L2) {
            Err(Error::Spec(e)) => assert!(e.to_string().contains("accepted"), "{e}"),
            Err(Error::Quant(_)) if bad == "PQ3" => {} // PQ3 parses; 16 is not divisible by 3
            other => panic!("{bad:?}: {:?}", other.map(|i| i.spec())),
        }
    }
    assert!(vq::index_factory(0, "Flat", Metric::L2).is_err(), "dimension 0");
    // Faiss' OPQ{m}_{d}: the input dimension is accepted (and dropped), a reduction refused.
    assert_eq!(vq::index_factory(DIM, "OPQ4_16,PQ4", Metric::L2).unwrap().spec().to_string(), "OPQ4,PQ4");
    assert!(matches!(vq::index_factory(DIM, "OPQ4_8,PQ4", Metric::L2), Err(Error::Parameter { name: "OPQ", .. })));
}

/// A leading `GPU` / `GPU{ordinal}` component asks for a GPU index: without vq's `gpu` feature
/// that is a typed refusal naming the feature (the feature's own tests are in tests/gpu.rs).
#[cfg(not(feature = "gpu"))]
#[test]
fn gpu_factory_strings_name_the_missing_feature() {
    for spec in ["GPU,Flat", "GPU1,IVF16,Flat", " GPU ,Flat"] {
        match vq::index_factory(DIM, spec, Metric::L2) {
            Err(Error::Unsupported { what, .. }) => assert!(what.contains("`gpu` feature"), "{spec}: {what}"),
            other => panic!("{spec:?}: {:?}", other.map(|i| i.spec())),
        }
    }
    // Not a GPU component: parsed (and refused) as an ordinary spec.
    assert!(matches!(vq::index_factory(DIM, "GPUx,Flat", Metric::L2), Err(Error::Spec(_))));
}

/// Factory strings stitched from the grammar's own pieces (and some that are not), with odd
/// spacing: every one is an index or a typed error, never a panic; an index's `spec()` reads
/// back as itself.
mod factory_strings {
    use proptest::prelude::*;

    use super::*;

    const PIECES: [&str; 24] = [
        "GPU",
        "GPU1",
        "GPU99999999999999999999",
        "Flat",
        "IVF16",
        "IVF0",
        "IVF16_HNSW8",
        "PQ4",
        "PQ4x4",
        "PQ4x4fs",
        "PQ3",
        "SQ8",
        "SQ4",
        "fp16",
        "HNSW8",
        "HNSW0",
        "OPQ4",
        "OPQ4_16",
        "RFlat",
        "Refine(SQ8)",
        "x",
        "",
        " ",
        "4",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn never_panic_and_read_back(
            picks in prop::collection::vec(0..PIECES.len(), 0..5), seps in prop::collection::vec(0..3usize, 5),
            ip in any::<bool>(),
        ) {
            let mut spec = String::new();
            for (i, &p) in picks.iter().enumerate() {
                if i > 0 {
                    spec.push_str([",", " , ", ",,"][seps[i]]);
                }
                spec.push_str(PIECES[p]);
            }
            let metric = if ip { Metric::InnerProduct } else { Metric::L2 };
            if let Ok(index) = vq::index_factory(DIM, &spec, metric) {
                let canonical = index.spec().to_string();
                let again = vq::index_factory(DIM, &canonical, metric).unwrap();
                prop_assert_eq!(again.spec().to_string(), canonical);
            }
        }
    }
}

/// Finite inputs at the edge of f32's range, for every index type and metric: vectors scaled so
/// that their squared norms land from ordinary up to past the accepted 2¹⁰⁰, some of them
/// flipped in sign. Each step is a typed error or a correct answer: never a panic, and a
/// search that succeeds returns every vector it should (k of them, or all when fewer), with
/// finite scores — never a silently empty or NaN result.
mod edge_of_f32 {
    use proptest::prelude::*;

    use super::*;

    const METRICS: [Metric; 3] = [Metric::L2, Metric::InnerProduct, Metric::Cosine];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn huge_finite_values_give_typed_errors_or_full_answers(
            spec in 0..SPECS.len(),
            metric in 0..3usize,
            exponent in 0.0f64..16.0,
            flips in proptest::collection::vec(any::<bool>(), 300),
        ) {
            let (spec, metric) = (SPECS[spec].0, METRICS[metric]);
            // Clustered data has norms around 40; 10^exponent pushes the largest past 2^50.
            let scale = 10f64.powf(exponent) as f32;
            let mut data = clustered(300, 9);
            for (row, flip) in data.chunks_exact_mut(DIM).zip(&flips) {
                let sign = if *flip { -scale } else { scale };
                row.iter_mut().for_each(|x| *x *= sign);
            }
            let mut index = vq::index_factory(DIM, spec, metric).unwrap();
            if index.train(&data).is_err() || index.add(&data).is_err() {
                // Refused with a typed error (the Result says so): nothing more to check.
                return Ok(());
            }
            let queries = &data[..4 * DIM];
            match index.search_with(queries, &params(K)) {
                Err(_) => {}
                Ok(hits) => {
                    for (q, (ids, scores)) in hits.iter().enumerate() {
                        prop_assert_eq!(ids.len(), K, "{} {:?} scale {:e}: query {} got {} hits", spec, metric, scale, q, ids.len());
                        prop_assert!(scores.iter().all(|s| s.is_finite()), "{} {:?} scale {:e}: {:?}", spec, metric, scale, scores);
                    }
                }
            }
        }
    }
}

/// Whether a spec's k-NN search is the exact top-k of scores that do not depend on `k` (no
/// graph beam, no refine stage whose candidates grow with `k`), so that its range search must
/// be the part of a `k = n` search within the radius.
fn scores_independent_of_k(spec: &str) -> bool {
    let graph = is_graph(spec);
    let refined = spec.contains("RFlat") || spec.contains("Refine");
    !graph && !refined && !bounds_codes_first(spec)
}

/// Whether a spec scans multi-bit RaBitQ codes in two stages (`RaBitQfs{b}`, flat or in lists;
/// flat `RaBitQ{b}`, from 64 dimensions): a code whose sign bits' bound, true to the paper's
/// confidence (ε₀ = 1.9 standard deviations), is past the threshold is not scored, so which
/// codes are found depends on the threshold, and a range search (the radius) may miss a code a
/// search of every vector (no threshold until `n` are found) scores inside it.
fn bounds_codes_first(spec: &str) -> bool {
    let multi_bit = |token: &str, prefix: &str| {
        token.strip_prefix(prefix).and_then(|b| b.parse::<u8>().ok()).is_some_and(|b| b > 1)
    };
    let flat = !spec.contains("IVF");
    spec.split(',').any(|t| multi_bit(t, "RaBitQfs") || (flat && multi_bit(t, "RaBitQ")))
}

/// The median over `queries` (`NQ` of them) of their exact `rank`-th neighbour's score: a
/// radius that gives about half the queries more than `rank` hits.
fn median_score(base: &[f32], queries: &[f32], rank: usize, metric: Metric) -> f32 {
    let deep = vq::knn_exact(base, queries, DIM, rank, metric).unwrap();
    let mut nth: Vec<f32> = deep.iter().map(|(_, s)| s[rank - 1]).collect();
    nth.sort_by(f32::total_cmp);
    nth[NQ / 2]
}

/// Range search over every spec: well formed, within the radius, the same entries as a k-NN
/// search of every vector cut at the radius where that search does not depend on `k`, and
/// close to the exact range answer (the recall floor, over hits) everywhere. Queries have 0
/// to a few hundred hits, so the deepening searches (32, 64, …) run several rounds.
#[test]
fn range_search_agrees_with_search_and_with_exact_range() {
    let data = clustered(N, 1);
    let queries = clustered(NQ, 2);
    for metric in [Metric::L2, Metric::Cosine] {
        let (base, q) = (normalized_if(metric, &data), normalized_if(metric, &queries));
        let radius = median_score(&base, &q, 60, metric);
        let truth = vq::range_exact(&base, &q, DIM, radius, metric).unwrap();
        assert!(truth.iter().any(|(ids, _)| ids.len() > 64), "{metric}: some query needs two deepenings");
        for (spec, floor) in SPECS {
            let index = built(spec, metric, &data);
            let got = index.range_search_with(&queries, radius, &params(0)).unwrap();
            assert_eq!(got.num_queries(), NQ, "{spec}");
            let mut found = 0;
            for (qi, (ids, scores)) in got.iter().enumerate() {
                assert!(scores.iter().all(|&s| metric.within(s, radius)), "{spec} {metric} query {qi}: outside");
                let key = |s: f32| metric.key_from_score(s);
                assert!(scores.windows(2).all(|w| key(w[0]) <= key(w[1])), "{spec}: best first");
                assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "{spec}: an id twice");
                let (want, _) = truth.get(qi).unwrap();
                found += ids.iter().filter(|id| want.contains(id)).count();
            }
            let r = found as f64 / truth.total_hits() as f64;
            assert!(r >= floor - 0.1, "{spec} {metric}: range recall {r:.3} below {floor} − 0.1");
            if scores_independent_of_k(spec) {
                let all = index.search_with(&queries, &params(N)).unwrap();
                for (qi, (ids, scores)) in all.iter().enumerate() {
                    let inside = scores.iter().take_while(|&&s| metric.within(s, radius)).count();
                    let (gi, gs) = got.get(qi).unwrap();
                    assert_eq!(gi, &ids[..inside], "{spec} {metric} query {qi}: ids");
                    // To the bit, though a deepening round searches fewer queries at once: a
                    // query's scores do not depend on its batch.
                    assert_eq!(gs, &scores[..inside], "{spec} {metric} query {qi}: scores");
                }
            }
        }
    }
}

/// Refine stages at their default `refine_k` (1) over coarse codes: a re-ranked `k` whose exact
/// scores are not all inside the radius said nothing about the hits beyond it, so deepening k-NN
/// stopped early (about half the hits). The base's range search, widened by the score error the
/// query's nearest show, finds what the probed lists hold.
#[test]
fn refine_range_search_finds_the_hits_its_base_holds() {
    let data = clustered(N, 3);
    let queries = clustered(NQ, 4);
    let radius = median_score(&data, &queries, 150, Metric::L2);
    let truth = vq::range_exact(&data, &queries, DIM, radius, Metric::L2).unwrap();
    for spec in ["PQ4x4fs,RFlat", "IVF16,PQ4,RFlat", "PQ4,RFlat"] {
        let index = built(spec, Metric::L2, &data);
        let p = SearchParams { nprobe: Some(16), ..Default::default() };
        let got = index.range_search_with(&queries, radius, &p).unwrap();
        let mut found = 0;
        for ((ids, scores), (want, _)) in got.iter().zip(truth.iter()) {
            assert!(scores.iter().all(|&s| s < radius), "{spec}: outside");
            found += ids.iter().filter(|id| want.contains(id)).count();
        }
        let r = found as f64 / truth.total_hits() as f64;
        assert!(r >= 0.97, "{spec}: range recall {r:.3} at the default refine_k");
    }
}

/// `refine_widening` scales how far past the radius the base's range reaches: every hit found
/// at 0 (Faiss' way) is found at 1 (the default), and every hit at 1 at 3, while the coarse
/// codes lose hits at 0; a widening that is negative, NaN or infinite is a parameter error.
#[test]
fn refine_widening_grows_the_hits_monotonically() {
    let data = clustered(N, 3);
    let queries = clustered(NQ, 4);
    let radius = median_score(&data, &queries, 150, Metric::L2);
    for spec in ["PQ4x4fs,RFlat", "IVF16,PQ4,RFlat", "HNSW8,SQ4,RFlat"] {
        let index = built(spec, Metric::L2, &data);
        let at = |w: Option<f32>| {
            let p = SearchParams { nprobe: Some(16), refine_widening: w, ..Default::default() };
            let got = index.range_search_with(&queries, radius, &p).unwrap();
            got.iter().map(|(ids, _)| ids.iter().copied().collect::<HashSet<u64>>()).collect::<Vec<_>>()
        };
        let (none, one, three) = (at(Some(0.0)), at(None), at(Some(3.0)));
        assert_eq!(one, at(Some(1.0)), "{spec}: None is 1");
        for q in 0..NQ {
            assert!(none[q].is_subset(&one[q]), "{spec} query {q}: widening 0 found a hit 1 did not");
            assert!(one[q].is_subset(&three[q]), "{spec} query {q}: widening 1 found a hit 3 did not");
        }
        let count = |v: &[HashSet<u64>]| v.iter().map(HashSet::len).sum::<usize>();
        if spec.contains("PQ") {
            assert!(count(&none) < count(&one), "{spec}: widening 0 should lose hits under coarse codes");
        }
        for bad in [-0.5, f32::NAN, f32::INFINITY] {
            let p = SearchParams { refine_widening: Some(bad), ..Default::default() };
            let got = index.range_search_with(&queries, radius, &p);
            assert!(matches!(got, Err(Error::Parameter { name: "refine_widening", .. })), "{spec} {bad}: {got:?}");
        }
    }
}

#[test]
fn range_search_inputs_filters_and_empty_indexes() {
    let data = clustered(300, 9);
    let q = &data[..2 * DIM];
    let even = |id: u64| id.is_multiple_of(2);
    for (spec, _) in SPECS {
        let mut index = vq::index_factory(DIM, spec, Metric::L2).unwrap();
        if !index.is_trained() {
            assert!(matches!(index.range_search(q, 1.0), Err(Error::NotTrained { .. })), "{spec}: before train");
            index.train(&data).unwrap();
        }
        let empty = index.range_search(q, f32::INFINITY).unwrap();
        assert_eq!((empty.num_queries(), empty.total_hits()), (2, 0), "{spec}: empty index");
        index.add(&data).unwrap();
        assert!(
            matches!(index.range_search(q, f32::NAN), Err(Error::Distance(vq::vq_distance::Error::NanRadius))),
            "{spec}: NaN radius"
        );
        assert!(index.range_search(&q[..DIM + 1], 1.0).is_err(), "{spec}: ragged queries");
        let mut nan = q.to_vec();
        nan[1] = f32::NAN;
        assert!(index.range_search(&nan, 1.0).is_err(), "{spec}: NaN query");
        assert_eq!(index.range_search(q, f32::NEG_INFINITY).unwrap().total_hits(), 0, "{spec}: −∞ keeps nothing");
        let p = SearchParams { filter: Some(&even), ..params(0) };
        let everything = index.range_search_with(q, f32::INFINITY, &p).unwrap();
        for (ids, _) in everything.iter() {
            assert!(ids.iter().all(|id| id.is_multiple_of(2)), "{spec}: the filter");
            // +∞ keeps every vector the search reaches; exact ones reach all 150 even ids.
            if scores_independent_of_k(spec) {
                assert_eq!(ids.len(), 150, "{spec}: every even id");
            }
        }
    }
}

/// A batch's k-NN answer for each query is that query's own answer, ids and score bits: batches
/// are scanned list-major, rotated or projected together (RaBitQ, PCA, OPQ) and blocked, and
/// none of it may depend on the rows beside a query.
#[test]
fn a_batch_answers_each_query_as_it_alone_is_answered() {
    let data = clustered(N, 5);
    let queries = clustered(NQ, 6);
    let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
    for (spec, _) in SPECS {
        let index = built(spec, Metric::L2, &data);
        let p = SearchParams { nprobe: Some(4), ..params(10) };
        let batch = index.search_with(&queries, &p).unwrap();
        for i in 0..NQ {
            let alone = index.search_with(&queries[i * DIM..(i + 1) * DIM], &p).unwrap();
            let ((ids, scores), (ids1, scores1)) = (batch.get(i).unwrap(), alone.get(0).unwrap());
            assert_eq!(ids, ids1, "{spec} query {i}: ids");
            assert_eq!(bits(scores), bits(scores1), "{spec} query {i}: scores");
        }
    }
}

/// `range_rows` (a radius per query, hits unsorted; inverted files scan the batch in one pass)
/// holds, for every query, the same hits as that query's own `range_search` at its radius, to
/// the bit; a radius count other than the query count, or a NaN radius, is a typed error.
#[test]
fn range_rows_is_each_querys_range_search_at_its_own_radius() {
    let data = clustered(N, 5);
    let queries = clustered(NQ, 6);
    let deep = vq::knn_exact(&data, &queries, DIM, 40, Metric::L2).unwrap();
    // Query i's radius: its (10 + i)-th exact neighbour's distance, so radii and hit counts
    // differ along the batch.
    let radii: Vec<f32> = deep.iter().enumerate().map(|(i, (_, s))| s[(10 + i) % 40]).collect();
    for (spec, _) in SPECS {
        let index = built(spec, Metric::L2, &data);
        let p = SearchParams { nprobe: Some(4), ..params(0) };
        let rows = index.range_rows(&queries, &radii, &p).unwrap();
        assert_eq!(rows.len(), NQ, "{spec}");
        for (i, mut row) in rows.into_iter().enumerate() {
            let alone = index.range_search_with(&queries[i * DIM..(i + 1) * DIM], radii[i], &p).unwrap();
            Metric::L2.sort_hits(&mut row);
            let (ids, scores) = alone.get(0).unwrap();
            let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
            assert_eq!(row.iter().map(|h| h.0).collect::<Vec<_>>(), ids, "{spec} query {i}: ids");
            assert_eq!(bits(&row.iter().map(|h| h.1).collect::<Vec<_>>()), bits(scores), "{spec} query {i}: scores");
        }
        let short = index.range_rows(&queries, &radii[1..], &p);
        assert!(matches!(short, Err(Error::Distance(vq::vq_distance::Error::Dimension { .. }))), "{spec}: {short:?}");
        let mut nan = radii.clone();
        nan[3] = f32::NAN;
        let got = index.range_rows(&queries, &nan, &p);
        assert!(matches!(got, Err(Error::Distance(vq::vq_distance::Error::NanRadius))), "{spec}: {got:?}");
    }
}

/// Flat under the caller's ids: the range answer carries those ids, exact ties in id order
/// (the rows' order is the reverse here).
#[test]
fn flat_range_search_maps_rows_to_the_callers_ids() {
    let mut index = vq::index_factory(2, "Flat", Metric::L2).unwrap();
    // Rows 0 and 1 are the same vector; row 2 is farther.
    index.add_with_ids(&[1.0, 1.0, 1.0, 1.0, 3.0, 3.0], &[10, 5, 1]).unwrap();
    let hits = index.range_search(&[0.0, 0.0, 3.0, 3.0], 9.0).unwrap();
    assert_eq!(hits.get(0).unwrap(), (&[5u64, 10][..], &[2.0f32, 2.0][..]));
    assert_eq!(hits.get(1).unwrap().0, &[1, 5, 10]);
    let dense = {
        let mut i = vq::index_factory(2, "Flat", Metric::L2).unwrap();
        i.add(&[1.0, 1.0, 1.0, 1.0, 3.0, 3.0]).unwrap();
        i.range_search(&[0.0, 0.0, 3.0, 3.0], 9.0).unwrap()
    };
    assert_eq!(dense.get(1).unwrap().0, &[2, 0, 1]);
}

/// Whether a spec keeps the f32 vectors themselves where `reconstruct` reads (f32 storage, or
/// an `RFlat` refine store), so that it must give the added vector back.
fn stores_f32(spec: &str) -> bool {
    spec.ends_with("RFlat") || spec.ends_with(",Flat") || spec == "Flat" || spec == "HNSW16"
}

/// Whether a stored vector, searched for, is its own nearest hit. Not for RaBitQ codes without
/// re-ranking: the query's estimate of itself is exact (0), but estimates of its neighbours can
/// fall below it (the estimator is unbiased, not bounded below by the distance; 16 bits are
/// coarse).
fn finds_itself(spec: &str) -> bool {
    !spec.contains("RaBitQ") || spec.ends_with("RFlat")
}

/// `reconstruct` over every spec: the added vector itself where f32 vectors are kept, and
/// everywhere the vector the index scores: a search's score of an id is the metric between
/// the query and that id's reconstruction (the asymmetric distance to the decoded code, or
/// the refine store's vector), except fast scan without refine, whose scores come from
/// 8-bit tables. Unknown and removed ids are `UnknownId`; a batch is the single calls end to
/// end; a written and read index reconstructs the same.
#[test]
fn reconstruct_gives_the_vector_the_index_scores() {
    let data = clustered(500, 10);
    let queries = clustered(10, 11);
    let ids: Vec<u64> = (0..40).collect();
    for (spec, _) in SPECS {
        let mut index = built(spec, Metric::L2, &data);
        let batch = index.reconstruct_batch(&ids).unwrap_or_else(|e| panic!("{spec}: {e}"));
        for (&id, got) in ids.iter().zip(batch.chunks_exact(DIM)) {
            assert_eq!(index.reconstruct(id).unwrap(), got, "{spec}: batch row {id}");
            let x = &data[id as usize * DIM..][..DIM];
            let err: f32 = x.iter().zip(got).map(|(a, b)| (a - b) * (a - b)).sum();
            let norm: f32 = x.iter().map(|a| a * a).sum();
            if stores_f32(spec) {
                assert!(err <= 1e-9 * norm, "{spec}: id {id} comes back changed ({err})");
            } else {
                // RaBitQ keeps only the residual's length along its code's direction: about
                // 0.64 of its square in high dimensions (⟨ō, u⟩ ≈ 0.8, the paper), spread
                // wider over 16.
                let bound = if spec.contains("RaBitQ") { 0.75 } else { 0.25 };
                assert!(err < bound * norm, "{spec}: id {id} reconstructed far from the vector ({err} of {norm})");
            }
        }
        // Fast scan's 8-bit tables and RaBitQ's estimator are not distances to the decoded
        // vector; re-ranked, scores are the stored vectors'.
        if !(spec.contains("fs") || spec.contains("RaBitQ")) || spec.ends_with("RFlat") {
            let hits = index.search_with(&queries, &params(K)).unwrap();
            for (q, (hit_ids, scores)) in queries.chunks_exact(DIM).zip(hits.iter()) {
                for (&id, &score) in hit_ids.iter().zip(scores) {
                    let v = index.reconstruct(id).unwrap();
                    let d: f32 = q.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum();
                    assert!(
                        (d - score).abs() <= 1e-3 * (1.0 + score),
                        "{spec}: id {id} scored {score}, reconstruction at {d}"
                    );
                }
            }
        }
        assert!(matches!(index.reconstruct(10_000), Err(Error::UnknownId(10_000))), "{spec}: never added");
        let back = vq::read_index_from_bytes(&vq::write_index_to_bytes(index.as_ref()).unwrap()).unwrap();
        assert_eq!(back.reconstruct_batch(&ids).unwrap(), batch, "{spec}: after write/read");
        index.remove_ids(&[3]).unwrap();
        assert!(matches!(index.reconstruct(3), Err(Error::UnknownId(3))), "{spec}: removed");
        assert!(
            matches!(index.reconstruct_batch(&[1, 3]), Err(Error::UnknownId(3))),
            "{spec}: batch with a removed id"
        );
    }
}

#[test]
fn cosine_reconstructs_the_normalized_vector() {
    let data = clustered(300, 12);
    for spec in ["Flat", "HNSW16", "IVF16,Flat", "SQ8,RFlat"] {
        let index = built(spec, Metric::Cosine, &data);
        let v = index.reconstruct(7).unwrap();
        let mut x = data[7 * DIM..8 * DIM].to_vec();
        vq::normalize_l2(&mut x, DIM).unwrap();
        assert!(v.iter().zip(&x).all(|(a, b)| (a - b).abs() <= 1e-6), "{spec}");
    }
}

/// The search defaults a factory string's index has, read from the string alone: inverted
/// files `nprobe`, HNSW graphs `ef` (not an HNSW coarse quantizer's), refine stages `refine_k`
/// and `reorder_k`.
/// Whether the searched index is a graph (`HNSW…`, also behind a transform or under refine).
fn is_graph(spec: &str) -> bool {
    spec.split(',').any(|c| c.starts_with("HNSW"))
}

fn defaults_of(spec: &str) -> Vec<SearchDefault> {
    let mut knobs = Vec::new();
    if spec.contains("IVF") {
        knobs.push(SearchDefault::Nprobe);
    }
    if is_graph(spec) {
        knobs.push(SearchDefault::Ef);
    }
    if spec.contains("RFlat") || spec.contains("Refine(") {
        knobs.extend([SearchDefault::RefineK, SearchDefault::ReorderK]);
    }
    knobs
}

/// `params` with `knob` given as `value`, every other knob left to the index.
fn with_knob(k: usize, knob: SearchDefault, value: usize) -> SearchParams<'static> {
    let mut p = SearchParams::new(k);
    match knob {
        SearchDefault::Nprobe => p.nprobe = Some(value),
        SearchDefault::Ef => p.ef = Some(value),
        // A search has no `reorder_k`: it shows as `refine_k` left to the index.
        SearchDefault::RefineK => p.refine_k = Some(value),
        SearchDefault::ReorderK => {}
    }
    p
}

#[test]
fn search_defaults_reach_the_part_that_uses_them_and_persist() {
    let data = clustered(N, 1);
    let queries = clustered(NQ, 2);
    for (spec, _) in SPECS {
        let mut index = built(spec, Metric::L2, &data);
        let has = defaults_of(spec);
        for knob in SearchDefault::ALL {
            if !has.contains(&knob) {
                assert_eq!(index.search_default(knob), None, "{spec} {knob:?}");
                let e = index.set_search_default(knob, 3).unwrap_err();
                assert!(matches!(e, Error::Parameter { .. }), "{spec} {knob:?}: {e}");
                continue;
            }
            let e = index.set_search_default(knob, 0).unwrap_err();
            assert!(matches!(e, Error::Parameter { .. }), "{spec} {knob:?} = 0: {e}");
            for value in [2, 5] {
                index.set_search_default(knob, value).unwrap_or_else(|e| panic!("{spec} {knob:?}: {e}"));
                assert_eq!(index.search_default(knob), Some(value), "{spec} {knob:?}");
                let by_default = index.search(&queries, K).unwrap();
                // reorder_k = value re-scores max(k, value) = k candidates: refine_k 1.
                let explicit = if knob == SearchDefault::ReorderK {
                    SearchParams { refine_k: Some(1), ..SearchParams::new(K) }
                } else {
                    with_knob(K, knob, value)
                };
                // (A graph walk is deterministic for a fixed graph: equal answers to the bit.)
                assert_eq!(by_default, index.search_with(&queries, &explicit).unwrap(), "{spec} {knob:?} {value}");
            }
            let back = vq::read_index_from_bytes(&vq::write_index_to_bytes(index.as_ref()).unwrap()).unwrap();
            assert_eq!(back.search_default(knob), Some(5), "{spec} {knob:?}: written and read");
            assert_eq!(back.search(&queries, K).unwrap(), index.search(&queries, K).unwrap(), "{spec} {knob:?}");
        }
    }
}

/// `ef_construction` is a graph's (behind a transform or a refine stage too) and nothing
/// else's; set before the adds it builds exactly what the factory's parameter builds (one
/// thread: the same insertion order), and it is written with the index.
#[test]
fn ef_construction_reaches_the_graph_and_persists() {
    let data = clustered(N / 4, 1);
    let queries = clustered(NQ, 2);
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    for (spec, _) in SPECS {
        let mut index = vq::index_factory(DIM, spec, Metric::L2).unwrap();
        if !is_graph(spec) {
            assert_eq!(index.ef_construction(), None, "{spec}");
            let e = index.set_ef_construction(40).unwrap_err();
            assert!(matches!(e, Error::Parameter { name: "ef_construction", .. }), "{spec}: {e}");
            continue;
        }
        assert_eq!(index.ef_construction(), Some(200), "{spec}: the default");
        let e = index.set_ef_construction(0).unwrap_err();
        assert!(matches!(e, Error::Parameter { .. }), "{spec} = 0: {e}");
        // A beam of 2 links worse than the default: the setting must reach the adds.
        index.set_ef_construction(2).unwrap();
        assert_eq!(index.ef_construction(), Some(2), "{spec}");
        let params = vq::IndexParams { ef_construction: Some(2), ..Default::default() };
        let mut made = vq::index_factory_with(DIM, spec, Metric::L2, &params).unwrap();
        let mut default = vq::index_factory(DIM, spec, Metric::L2).unwrap();
        one_thread.install(|| {
            for i in [&mut index, &mut made, &mut default] {
                i.train(&data).unwrap();
                i.add(&data).unwrap();
            }
        });
        let answer = index.search(&queries, K).unwrap();
        assert_eq!(answer, made.search(&queries, K).unwrap(), "{spec}: set = made with it");
        assert_ne!(answer, default.search(&queries, K).unwrap(), "{spec}: efC 2 builds another graph");
        let back = vq::read_index_from_bytes(&vq::write_index_to_bytes(index.as_ref()).unwrap()).unwrap();
        assert_eq!(back.ef_construction(), Some(2), "{spec}: written and read");
    }
}

/// `reset` leaves every kind as it was right after `train`: the file it writes is the trained,
/// empty index's to the byte (ids numbered from 0 again, the training and the search defaults
/// kept), it holds and answers nothing, and it takes the vectors again to the same recall.
/// An index read from a map lets go of the map.
#[test]
fn reset_leaves_the_index_as_right_after_train() {
    // The recall floors' data (`every_spec_reaches_its_recall_floor_…`).
    let data = clustered(N, 1);
    let queries = clustered(NQ, 2);
    let truth = vq::knn_exact(&data, &queries, DIM, K, Metric::L2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (spec, floor) in SPECS {
        let mut index = vq::index_factory(DIM, spec, Metric::L2).unwrap();
        index.train(&data).unwrap();
        let defaults = defaults_of(spec);
        for &knob in &defaults {
            index.set_search_default(knob, 7).unwrap();
        }
        let trained = vq::write_index_to_bytes(index.as_ref()).unwrap();
        let fingerprint = index.fingerprint();
        index.add(&data).unwrap();
        // Both resets start from the file, read into memory and mapped.
        let path = dir.path().join("full.vq");
        vq::write_index(index.as_ref(), &path).unwrap();
        for mapped in [false, true] {
            let mut index = vq::read_index_with(&path, vq::ReadOptions { mmap: mapped }).unwrap();
            let full = index.memory_usage();
            index.reset().unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(vq::write_index_to_bytes(index.as_ref()).unwrap(), trained, "{spec} mapped {mapped}");
            assert_eq!((index.len(), index.fingerprint()), (0, fingerprint), "{spec}");
            let m = index.memory_usage();
            let held = |m: &vq::MemoryUsage| m.vectors + m.mapped;
            assert!(held(&m) < held(&full) && m.mapped == 0, "{spec} mapped {mapped}: {full:?} -> {m:?}");
            for &knob in &defaults {
                assert_eq!(index.search_default(knob), Some(7), "{spec} {knob:?}");
            }
            let empty = index.search_with(&queries, &params(K)).unwrap();
            assert!(empty.ids().iter().all(|&id| id == u64::MAX), "{spec}: an empty index answers nothing");
            index.add(&data).unwrap();
            let found = index.search_with(&queries, &params(K)).unwrap();
            assert!(found.ids().iter().all(|&id| id < N as u64), "{spec}: ids from 0 again");
            let r = recall(&found, &truth);
            assert!(r >= floor, "{spec}: recall@{K} {r:.3} below {floor} after reset and add");
        }
    }
}

/// Graphs, refined or not, take vectors through `&self` while other threads search them:
/// every search during the adds answers from what is in (ids already added, k of them once k
/// are in: a refine stage has the row of every candidate its graph proposes), and the index
/// ends as a plain `add` would leave it (all vectors, each its own nearest, lists packed by
/// `pack`, after `prepare_pack` or not: the same answers). Every other kind says `None` and
/// adds nothing.
#[test]
fn add_shared_runs_beside_searches_on_graphs_only() {
    let data = clustered(N, 7);
    for (spec, _) in SPECS {
        let mut index = vq::index_factory(DIM, spec, Metric::L2).unwrap();
        index.train(&data).unwrap();
        let graph = is_graph(spec);
        assert_eq!(index.adds_shared(), graph, "{spec}");
        if !graph {
            assert!(index.add_shared(&data, None).is_none(), "{spec}");
            assert!(!index.prepare_pack(), "{spec}");
            assert_eq!(index.len(), 0, "{spec}");
            continue;
        }
        let batches: Vec<&[f32]> = data.chunks(100 * DIM).collect();
        let index_ref = &*index;
        let (searches, done) = (std::sync::atomic::AtomicUsize::new(0), std::sync::atomic::AtomicBool::new(false));
        std::thread::scope(|s| {
            s.spawn(|| {
                for (b, batch) in batches.iter().enumerate() {
                    let ids: Vec<u64> = (0..batch.len() / DIM).map(|i| (b * 100 + i) as u64 * 3).collect();
                    index_ref.add_shared(batch, Some(&ids)).expect("a graph adds shared").unwrap();
                }
                done.store(true, std::sync::atomic::Ordering::Release);
            });
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let before = index_ref.len();
                let found = index_ref.search_with(&data[..4 * DIM], &params(K)).unwrap();
                for (ids, _) in found.iter() {
                    let valid = ids.iter().filter(|&&id| id != u64::MAX).count();
                    assert!(valid >= K.min(before), "{spec}: {valid} answers with {before} vectors in");
                    assert!(ids.iter().all(|&id| id == u64::MAX || (id % 3 == 0 && (id / 3) < N as u64)), "{spec}");
                }
                searches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        assert!(searches.into_inner() > 0, "{spec}: no search ran beside the adds");
        assert_eq!(index.len(), N, "{spec}");
        let unpacked = index.memory_usage().links;
        let open = index.search_with(&data, &params(K)).unwrap();
        assert!(index.prepare_pack(), "{spec}: every list is open");
        assert!(index.memory_usage().links > unpacked, "{spec}: the prepared lists are counted");
        index.pack();
        assert!(index.memory_usage().links < unpacked, "{spec}: pack shrinks the open lists");
        assert_eq!(index.search_with(&data, &params(K)).unwrap(), open, "{spec}: packing changes no answer");
        let own = index.search_with(&data, &params(1)).unwrap();
        let hit = own.ids().iter().enumerate().filter(|&(i, &id)| id == (i * 3) as u64).count();
        assert!(hit as f64 >= 0.97 * N as f64, "{spec}: {hit} of {N} vectors their own nearest");
        let exact = spec == "HNSW16" || spec.ends_with("RFlat");
        for i in (0..N).step_by(97) {
            let v = index.reconstruct((i * 3) as u64).unwrap();
            assert!(!exact || v == data[i * DIM..(i + 1) * DIM], "{spec}: vector {i} stored as added");
        }
        let bytes = index.memory_usage();
        let dup = index.add_shared(&data[..2 * DIM], Some(&[1, 3])).unwrap();
        assert!(matches!(dup, Err(vq::Error::DuplicateId(3))), "{spec}: {dup:?}");
        assert_eq!((index.len(), index.memory_usage()), (N, bytes), "{spec}: a refused add stores nothing");
    }
}

/// An add in two steps — `prepare_add` through `&self` (beside searches), then
/// `add_prepared` — leaves every kind as a plain `add` leaves it: the same file, byte for
/// byte, ids continuing or given. Work prepared before the index was trained again, or by
/// another index, is redone rather than used. Inverted files (and what wraps them) prepare;
/// the other kinds have nothing to prepare.
#[test]
fn adds_prepared_apart_end_as_plain_adds() {
    let data = clustered(N, 7);
    let other = clustered(N, 8);
    let (first, second) = (&data[..500 * DIM], &data[500 * DIM..800 * DIM]);
    let given: Vec<u64> = (5_000..5_300).collect();
    let foreign = {
        let mut f = vq::index_factory(DIM, "IVF16,Flat", Metric::L2).unwrap();
        f.train(&other).unwrap();
        f
    };
    for (spec, _) in SPECS {
        let trained = {
            let mut t = vq::index_factory(DIM, spec, Metric::L2).unwrap();
            t.train(&data).unwrap();
            vq::write_index_to_bytes(t.as_ref()).unwrap()
        };
        let from = |bytes: &[u8]| vq::read_index_from_bytes(bytes).unwrap();
        let bytes = |i: &dyn Index| vq::write_index_to_bytes(i).unwrap();
        // Graphs are built in parallel: their files differ from run to run.
        let same_bytes = !is_graph(spec);

        let mut plain = from(&trained);
        plain.add(first).unwrap();
        plain.add_with_ids(second, &given).unwrap();
        let mut two = from(&trained);
        let p = two.prepare_add(first);
        assert_eq!(p.is_some(), spec.contains("IVF"), "{spec}");
        match p {
            Some(p) => two.add_prepared(p.unwrap(), first, None).unwrap(),
            None => two.add(first).unwrap(),
        }
        // Another index's work for the second batch: redone.
        let p = foreign.prepare_add(second).unwrap().unwrap();
        two.add_prepared(p, second, Some(&given)).unwrap();
        assert_eq!(two.len(), 800, "{spec}");
        assert!(!same_bytes || bytes(two.as_ref()) == bytes(plain.as_ref()), "{spec}: two steps or one");
        if let Some(p) = two.prepare_add(second) {
            let dup = two.add_prepared(p.unwrap(), second, Some(&given));
            assert!(dup.is_err(), "{spec}: ids already present");
            assert_eq!(two.len(), 800, "{spec}: a refused add adds nothing");
        }

        // Prepared, then the index trained again (on other data): the work is redone.
        let mut stale = from(&trained);
        let p = stale.prepare_add(first);
        stale.reset().unwrap();
        stale.train(&other).unwrap();
        let retrained = bytes(stale.as_ref());
        match p {
            Some(p) => stale.add_prepared(p.unwrap(), first, None).unwrap(),
            None => stale.add(first).unwrap(),
        }
        let mut fresh = from(&retrained);
        fresh.add(first).unwrap();
        assert!(!same_bytes || bytes(stale.as_ref()) == bytes(fresh.as_ref()), "{spec}: stale work redone");
    }
}
