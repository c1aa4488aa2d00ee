//! Sharded builds through the `Index` trait: serialize a trained, empty index, fill copies of
//! it with parts of the data, merge them back (`merge_from`) or keep them apart and merge their
//! results (`merge_topk`); fingerprints tell shards of one training from strangers.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};
use vq::{Error, Index, Metric, SearchParams};

const DIM: usize = 16;
const N: usize = 2_000;
const SHARDS: usize = 4;

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

fn trained(spec: &str, metric: Metric, data: &[f32]) -> Box<dyn Index> {
    let mut index = vq::index_factory(DIM, spec, metric).unwrap_or_else(|e| panic!("{spec}: {e}"));
    index.train(data).unwrap_or_else(|e| panic!("{spec}: train: {e}"));
    index
}

/// Shards filled from copies of `template` (the bytes of a trained, empty index), shard `s`
/// holding the `s`-th contiguous quarter of `data` under its global ids.
fn shards(template: &[u8], data: &[f32]) -> Vec<Box<dyn Index>> {
    let per = N.div_ceil(SHARDS);
    (0..SHARDS)
        .map(|s| {
            let mut shard = vq::read_index_from_bytes(template).unwrap();
            let rows = s * per..((s + 1) * per).min(N);
            let ids: Vec<u64> = rows.clone().map(|r| r as u64).collect();
            shard.add_with_ids(&data[rows.start * DIM..rows.end * DIM], &ids).unwrap();
            shard
        })
        .collect()
}

/// The first acceptance check at the Rust level: a sharded inverted-file build merged
/// into one equals the single-index build bit for bit (its bytes, hence every search).
#[test]
fn merged_shards_equal_the_single_build_bit_for_bit() {
    let data = clustered(N, 1);
    let queries = clustered(30, 2);
    for spec in [
        "IVF16,Flat",
        "IVF16,SQ8",
        "IVF16,PQ8",
        "IVF16,PQ8x4fs",
        "IVF16,PQ8,RFlat",
        "IVF16_HNSW8,Flat",
        "OPQ4,IVF16,PQ4",
        "OPQ4,IVF16,PQ4,RFlat",
    ] {
        for metric in [Metric::L2, Metric::Cosine] {
            let empty = trained(spec, metric, &data);
            let template = vq::write_index_to_bytes(empty.as_ref()).unwrap();
            let mut single = vq::read_index_from_bytes(&template).unwrap();
            single.add(&data).unwrap();

            let mut parts = shards(&template, &data).into_iter();
            let mut merged = parts.next().unwrap();
            let fp = merged.fingerprint();
            assert!(merged.is_mergeable(), "{spec}");
            assert_ne!(fp, 0, "{spec}: a trained index has a fingerprint");
            for part in parts {
                assert_eq!(part.fingerprint(), fp, "{spec}: adding vectors keeps the fingerprint");
                merged.merge_from(part, 0).unwrap_or_else(|e| panic!("{spec} {metric}: {e}"));
            }
            assert_eq!(merged.len(), N, "{spec}");
            assert_eq!(merged.fingerprint(), single.fingerprint(), "{spec}");
            let (a, b) = (
                vq::write_index_to_bytes(merged.as_ref()).unwrap(),
                vq::write_index_to_bytes(single.as_ref()).unwrap(),
            );
            assert!(a == b, "{spec} {metric}: the merged index's bytes differ from the single build's");
            let p = SearchParams { k: 10, nprobe: Some(4), ..Default::default() };
            assert_eq!(merged.search_with(&queries, &p).unwrap(), single.search_with(&queries, &p).unwrap(), "{spec}");
        }
    }
}

/// `shift_ids` moves a shard numbered from 0 to its place; an id already present, a shard
/// trained separately and another kind of index are refused with nothing moved.
#[test]
fn merge_refusals_leave_the_index_as_it_was() {
    let data = clustered(N, 3);
    let half = N / 2;
    let empty = trained("IVF16,PQ8", Metric::L2, &data);
    let template = vq::write_index_to_bytes(empty.as_ref()).unwrap();
    let mut a = vq::read_index_from_bytes(&template).unwrap();
    a.add(&data[..half * DIM]).unwrap();
    let mut b = vq::read_index_from_bytes(&template).unwrap();
    b.add(&data[half * DIM..]).unwrap(); // ids 0..half again
    let before = vq::write_index_to_bytes(a.as_ref()).unwrap();

    let b_copy = vq::read_index_from_bytes(&vq::write_index_to_bytes(b.as_ref()).unwrap()).unwrap();
    assert!(matches!(a.merge_from(b_copy, 0), Err(Error::DuplicateId(_))), "b's ids 0.. are a's too");
    assert_eq!(vq::write_index_to_bytes(a.as_ref()).unwrap(), before);

    // Trained on other data: another fingerprint, refused by name.
    let mut stranger = trained("IVF16,PQ8", Metric::L2, &clustered(N, 4));
    stranger.add(&data[..10 * DIM]).unwrap();
    assert_ne!(stranger.fingerprint(), a.fingerprint());
    match a.merge_from(stranger, 1_000_000) {
        Err(e @ Error::TrainedStateMismatch { .. }) => assert!(e.to_string().contains("trained separately"), "{e}"),
        other => panic!("expected TrainedStateMismatch, got {other:?}"),
    }
    let other_kind = trained("IVF16,Flat", Metric::L2, &data);
    assert!(matches!(a.merge_from(other_kind, 0), Err(Error::MergeMismatch { .. })));
    assert_eq!(vq::write_index_to_bytes(a.as_ref()).unwrap(), before);

    a.merge_from(b, half as u64).unwrap();
    assert_eq!(a.len(), N);
    let hits =
        a.search_with(&data[(N - 1) * DIM..], &SearchParams { k: 1, nprobe: Some(16), ..Default::default() }).unwrap();
    assert_eq!(hits.ids(), &[(N - 1) as u64], "the shifted shard answers under its global ids");
    a.merge_from(vq::read_index_from_bytes(&template).unwrap(), u64::MAX).unwrap(); // empty: nothing to shift
    assert_eq!(a.len(), N);
}

/// A merge that would meet a duplicate id is refused by `check_merge` before anything moves:
/// the other index stays whole and searchable (the wheel's `merge_from` checks this way
/// before it takes the other index), and the same pair merges once shifted clear.
#[test]
fn a_duplicate_id_is_found_before_anything_moves() {
    let data = clustered(N, 5);
    for spec in ["IVF16,PQ8", "IVF16,PQ8x4fs", "IVF16,SQ8,RFlat"] {
        let empty = trained(spec, Metric::L2, &data);
        let template = vq::write_index_to_bytes(empty.as_ref()).unwrap();
        let mut a = vq::read_index_from_bytes(&template).unwrap();
        a.add(&data[..1000 * DIM]).unwrap();
        let mut b = vq::read_index_from_bytes(&template).unwrap();
        let b_ids: Vec<u64> = (900..1900).collect(); // 900..999 are a's too
        b.add_with_ids(&data[1000 * DIM..], &b_ids).unwrap();
        let (a_before, b_before) =
            (vq::write_index_to_bytes(a.as_ref()).unwrap(), vq::write_index_to_bytes(b.as_ref()).unwrap());
        let params = SearchParams { k: 5, nprobe: Some(16), ..Default::default() };
        let b_hits = b.search_with(&data[1000 * DIM..1100 * DIM], &params).unwrap();

        match a.check_merge(b.as_ref(), 0) {
            Err(e) => assert!(e.to_string().contains("already in the index"), "{spec}: {e}"),
            Ok(()) => panic!("{spec}: ids 900..999 are in both"),
        }
        // Past u64::MAX, or onto it (the padding of short answers): b's last id is 1899.
        for shift in [u64::MAX, u64::MAX - 1899] {
            assert!(
                matches!(
                    a.check_merge(b.as_ref(), shift),
                    Err(Error::Distance(vq::vq_distance::Error::IdShift { id: 900.., .. }))
                ),
                "{spec}: shift {shift}"
            );
        }
        a.check_merge(b.as_ref(), u64::MAX - 1900).unwrap();
        assert_eq!(vq::write_index_to_bytes(a.as_ref()).unwrap(), a_before, "{spec}");
        assert_eq!(vq::write_index_to_bytes(b.as_ref()).unwrap(), b_before, "{spec}");
        assert_eq!(b.search_with(&data[1000 * DIM..1100 * DIM], &params).unwrap(), b_hits, "{spec}: b still answers");

        a.check_merge(b.as_ref(), 100).unwrap();
        a.merge_from(b, 100).unwrap();
        assert_eq!(a.len(), N, "{spec}");
        let other_kind = trained("IVF16,SQ8", Metric::L2, &data);
        assert!(matches!(a.check_merge(other_kind.as_ref(), 0), Err(Error::MergeMismatch { .. })), "{spec}");
    }
    let graph = vq::index_factory(DIM, "HNSW16", Metric::L2).unwrap();
    let other = vq::index_factory(DIM, "HNSW16", Metric::L2).unwrap();
    assert!(matches!(graph.check_merge(other.as_ref(), 0), Err(Error::NotMergeable { .. })));
}

/// Graphs and flat scans do not merge: a typed error naming the index, nothing changed.
#[test]
fn graphs_and_scans_are_not_mergeable() {
    let data = clustered(500, 5);
    for spec in ["Flat", "HNSW8", "HNSW8,SQ8", "SQ8", "PQ8x4fs,RFlat"] {
        let mut a = trained(spec, Metric::L2, &data);
        a.add(&data).unwrap();
        assert!(!a.is_mergeable(), "{spec}");
        let b = trained(spec, Metric::L2, &data);
        match a.merge_from(b, 1000) {
            Err(e @ Error::NotMergeable { .. }) => assert!(e.to_string().contains(spec), "{e}"),
            other => panic!("{spec}: expected NotMergeable, got {other:?}"),
        }
        assert_eq!(a.len(), 500, "{spec}");
    }
}

/// Fingerprints: equal for copies of one trained state whatever they hold, different for a
/// separate training (quantized kinds) or another kind, dimension or metric; stable through
/// bytes and files.
#[test]
fn fingerprints_tell_one_training_from_another() {
    let data = clustered(N, 6);
    let other = clustered(N, 7);
    for spec in
        ["HNSW8,SQ8", "SQ8", "PQ8", "HNSW8,SQ8,Refine(SQfp16)", "IVF16,SQ8", "IVF16,PQ8x4fs,RFlat", "OPQ4,IVF16,Flat"]
    {
        let a = trained(spec, Metric::L2, &data);
        let bytes = vq::write_index_to_bytes(a.as_ref()).unwrap();
        let mut copy = vq::read_index_from_bytes(&bytes).unwrap();
        copy.add(&data[..100 * DIM]).unwrap();
        assert_eq!(copy.fingerprint(), a.fingerprint(), "{spec}: a copy filled with vectors");
        let b = trained(spec, Metric::L2, &other);
        assert_ne!(b.fingerprint(), a.fingerprint(), "{spec}: trained on other data");
    }
    // Nothing learned: the kind, dimension and metric decide.
    let fp = |spec: &str, dim: usize, metric: Metric| vq::index_factory(dim, spec, metric).unwrap().fingerprint();
    assert_eq!(fp("HNSW16", DIM, Metric::L2), fp("HNSW16", DIM, Metric::L2));
    assert_ne!(fp("HNSW16", DIM, Metric::L2), fp("HNSW32", DIM, Metric::L2));
    assert_ne!(fp("HNSW16", DIM, Metric::L2), fp("HNSW16", DIM, Metric::Cosine));
    assert_ne!(fp("Flat", DIM, Metric::L2), fp("Flat", DIM + 1, Metric::L2));
    assert_eq!(fp("IVF16,Flat", DIM, Metric::L2), 0, "an untrained inverted file");
    assert_eq!(fp("OPQ4,IVF16,Flat", DIM, Metric::L2), 0, "an untrained inverted file behind a rotation");
}

/// Two indexes behind OPQ rotations whose inner inverted files are copies of one trained state
/// but whose rotations differ: their codes mean different things, so the merge is refused by
/// name (and `check_merge` says so first), with nothing moved.
#[test]
fn a_shard_rotated_differently_is_refused() {
    let data = clustered(N, 10);
    let inner = trained("IVF16,Flat", Metric::L2, &data);
    let inner_template = vq::write_index_to_bytes(inner.as_ref()).unwrap();
    let rotation = |seed: u64| {
        let mut r = vq::vq_quant::OpqRotation::new(DIM, vq::vq_quant::OpqParams::new(4, 8)).unwrap();
        r.train(&clustered(N, seed)).unwrap();
        r
    };
    let wrap = |r| vq::PreTransformIndex::new(vq::read_index_from_bytes(&inner_template).unwrap(), r).unwrap();
    let (ra, rb) = (rotation(11), rotation(12));
    assert_ne!(ra.matrix(), rb.matrix());
    let mut a = wrap(ra.clone());
    a.add(&data[..1000 * DIM]).unwrap();
    let mut b = wrap(rb);
    b.add_with_ids(&data[1000 * DIM..], &(1000..N as u64).collect::<Vec<_>>()).unwrap();
    assert_eq!(a.inner().fingerprint(), b.inner().fingerprint(), "the same inverted file");
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert!(matches!(a.check_merge(&b, 0), Err(Error::TrainedStateMismatch { .. })));
    let before = vq::write_index_to_bytes(&a).unwrap();
    assert!(matches!(a.merge_from(Box::new(b), 0), Err(Error::TrainedStateMismatch { .. })));
    assert_eq!(vq::write_index_to_bytes(&a).unwrap(), before);

    // The same rotation merges.
    let mut c = wrap(ra);
    c.add_with_ids(&data[1000 * DIM..], &(1000..N as u64).collect::<Vec<_>>()).unwrap();
    a.check_merge(&c, 0).unwrap();
    a.merge_from(Box::new(c), 0).unwrap();
    assert_eq!(a.len(), N);
}

/// Scatter-gather over HNSW shards: each shard's top `2k`, merged by `merge_topk`, reaches
/// the recall of one index over everything (within 0.02 here: graphs are built in parallel).
#[test]
fn scatter_gather_over_graph_shards_keeps_recall() {
    let data = clustered(N, 8);
    let queries = clustered(50, 9);
    let k = 10;
    let truth = vq::knn_exact(&data, &queries, DIM, k, Metric::L2).unwrap();
    let template = vq::write_index_to_bytes(vq::index_factory(DIM, "HNSW16", Metric::L2).unwrap().as_ref()).unwrap();
    let p = SearchParams { k: 2 * k, ef: Some(40), ..Default::default() };
    let results: Vec<_> = shards(&template, &data).iter().map(|s| s.search_with(&queries, &p).unwrap()).collect();
    let merged = vq::merge_topk(&results, k, Metric::L2).unwrap();
    let mut single = vq::read_index_from_bytes(&template).unwrap();
    single.add(&data).unwrap();
    let one = single.search_with(&queries, &SearchParams { k, ef: Some(40), ..Default::default() }).unwrap();
    let recall = |found: &vq::Neighbors| {
        let hits: usize =
            found.iter().zip(truth.iter()).map(|((f, _), (t, _))| f.iter().filter(|id| t.contains(id)).count()).sum();
        hits as f64 / (queries.len() / DIM * k) as f64
    };
    assert!(recall(&merged) >= recall(&one) - 0.02, "sharded {} vs one {}", recall(&merged), recall(&one));
    assert!(merged.ids().iter().all(|&id| id < N as u64));
}
