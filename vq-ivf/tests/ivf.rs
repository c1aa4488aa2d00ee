//! IVF behaviour over small generated data: exactness at full probe, recall growing with
//! nprobe, removal, filters, errors, persistence, and the sharded build with merge.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};
use vq_distance::{IdBitset, Metric, Neighbors, knn_exact};
use vq_io::{ContainerReader, ContainerWriter};
use vq_ivf::{Error, FlatCodec, IvfCodec, IvfIndex, IvfParams, IvfSearch, PqCodec, RaBitQCodec, SqCodec};
use vq_quant::SqType;

const DIM: usize = 16;

/// Gaussian clusters: 30 centres, unit spread.
fn clustered(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut centre_rng = StdRng::seed_from_u64(99);
    let centres: Vec<f32> = (0..30 * DIM).map(|_| centre_rng.random_range(-8.0f32..8.0)).collect();
    let noise = Normal::new(0.0f32, 1.0).unwrap();
    (0..n)
        .flat_map(|_| {
            let c = rng.random_range(0..30);
            centres[c * DIM..(c + 1) * DIM].iter().map(|x| x + noise.sample(&mut rng)).collect::<Vec<_>>()
        })
        .collect()
}

fn built<C: IvfCodec>(codec: C, metric: Metric, nlist: usize, data: &[f32]) -> IvfIndex<C> {
    let mut index = IvfIndex::new(DIM, metric, IvfParams::new(nlist), codec).unwrap();
    index.train(data).unwrap();
    index.add(data).unwrap();
    index
}

fn probe(nprobe: usize) -> IvfSearch<'static> {
    IvfSearch { nprobe: Some(nprobe), filter: None, coarse_ef: None }
}

fn recall(found: &Neighbors, truth: &Neighbors) -> f64 {
    let k = truth.k();
    let hits: usize =
        found.iter().zip(truth.iter()).map(|((f, _), (t, _))| f.iter().filter(|id| t.contains(id)).count()).sum();
    hits as f64 / (truth.num_queries() * k) as f64
}

fn normalized_if(metric: Metric, x: &[f32]) -> Vec<f32> {
    let mut x = x.to_vec();
    if metric == Metric::Cosine {
        vq_distance::normalize_l2(&mut x, DIM).unwrap();
    }
    x
}

#[test]
fn flat_with_every_list_probed_is_exact_search() {
    let data = clustered(3_000, 1);
    let queries = clustered(50, 2);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let index = built(FlatCodec::new(DIM, metric).unwrap(), metric, 32, &data);
        let truth =
            knn_exact(&normalized_if(metric, &data), &normalized_if(metric, &queries), DIM, 10, metric).unwrap();
        // nprobe above nlist is clamped: every list.
        for nprobe in [32, 1000] {
            let hits = index.search(&queries, 10, &probe(nprobe)).unwrap();
            assert_eq!(hits.ids(), truth.ids(), "{metric:?} nprobe {nprobe}");
            for (a, b) in hits.scores().iter().zip(truth.scores()) {
                assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{metric:?}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn recall_does_not_decrease_with_nprobe() {
    let data = clustered(4_000, 3);
    let queries = clustered(60, 4);
    let truth = knn_exact(&data, &queries, DIM, 10, Metric::L2).unwrap();
    let check = |name: &str, search: &dyn Fn(usize) -> Neighbors, floor: f64| {
        let mut last = 0.0;
        for nprobe in [1, 2, 4, 8, 16, 32, 64] {
            let r = recall(&search(nprobe), &truth);
            // A larger probe only adds candidates; ties at rank k may swap (hence the margin).
            assert!(r + 0.01 >= last, "{name}: recall {r} at nprobe {nprobe} below {last}");
            last = r;
        }
        assert!(last >= floor, "{name}: recall {last} at nprobe 64 under {floor}");
    };
    let flat = built(FlatCodec::new(DIM, Metric::L2).unwrap(), Metric::L2, 64, &data);
    check("IVF64,Flat", &|p| flat.search(&queries, 10, &probe(p)).unwrap(), 1.0);
    let sq8 = built(SqCodec::new(DIM, Metric::L2, SqType::SQ8).unwrap(), Metric::L2, 64, &data);
    check("IVF64,SQ8", &|p| sq8.search(&queries, 10, &probe(p)).unwrap(), 0.9);
    let pq = built(PqCodec::new(DIM, Metric::L2, 8, 8).unwrap(), Metric::L2, 64, &data);
    check("IVF64,PQ8", &|p| pq.search(&queries, 10, &probe(p)).unwrap(), 0.6);
}

#[test]
fn every_scalar_type_and_metric_searches_sensibly() {
    let data = clustered(2_000, 5);
    let queries = clustered(30, 6);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let truth =
            knn_exact(&normalized_if(metric, &data), &normalized_if(metric, &queries), DIM, 10, metric).unwrap();
        // (type, floor for L2 and inner product, floor for cosine): unit vectors in 16
        // dimensions are closer together, so coarse codes separate them less.
        for (t, floor, cos_floor) in [
            (SqType::SQ8, 0.9, 0.85),
            (SqType::SQ6, 0.85, 0.65),
            (SqType::SQ4, 0.65, 0.35),
            (SqType::SQ4U, 0.6, 0.25),
            (SqType::FP16, 0.97, 0.95),
            (SqType::BF16, 0.95, 0.9),
        ] {
            let floor = if metric == Metric::Cosine { cos_floor } else { floor };
            let index = built(SqCodec::new(DIM, metric, t).unwrap(), metric, 16, &data);
            let r = recall(&index.search(&queries, 10, &probe(16)).unwrap(), &truth);
            assert!(r >= floor, "{t:?} {metric:?}: recall {r} < {floor}");
        }
        let pq = built(PqCodec::new(DIM, metric, 8, 8).unwrap(), metric, 16, &data);
        let r = recall(&pq.search(&queries, 10, &probe(16)).unwrap(), &truth);
        assert!(r >= 0.5, "PQ8 {metric:?}: recall {r}");
    }
}

/// IVF-RaBitQ's keys fold each list's centroid into the codes: every hit's score must be the
/// exact score within RaBitQ's error (a few `‖r‖‖q − c‖/√d`), which a key about the wrong
/// centre (or without its folded terms) misses by far; and the recall at every list probed
/// is well above chance. With more bits the error falls (about halving per bit) and the
/// recall rises.
#[test]
fn rabitq_lists_estimate_each_hit_about_its_centroid() {
    let data = clustered(3_000, 9);
    let queries = clustered(20, 10);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let mut last_recall = 0.0;
        for bits in [1, 2, 4] {
            last_recall = rabitq_lists_estimate_at(metric, bits, &data, &queries, last_recall);
        }
    }
}

fn rabitq_lists_estimate_at(metric: Metric, bits: u8, data: &[f32], queries: &[f32], fewer_bits_recall: f64) -> f64 {
    let index = built(RaBitQCodec::with_bits(DIM, metric, bits).unwrap(), metric, 16, data);
    let base = normalized_if(metric, data);
    let qs = normalized_if(metric, queries);
    let hits = index.search(&qs, 10, &probe(16)).unwrap();
    let truth = knn_exact(&base, &qs, DIM, 10, metric).unwrap();
    let r = recall(&hits, &truth);
    assert!(r >= 0.2 && r > fewer_bits_recall, "{metric:?}, {bits} bits: recall {r} (fewer bits: {fewer_bits_recall})");
    let (mut worst, mut total) = (0f64, 0f64);
    for (qi, (ids, scores)) in hits.iter().enumerate() {
        let q = &qs[qi * DIM..(qi + 1) * DIM];
        for (&id, &score) in ids.iter().zip(scores) {
            let x = &base[id as usize * DIM..][..DIM];
            let exact: f64 = match metric {
                Metric::L2 => x.iter().zip(q).map(|(a, b)| f64::from(a - b).powi(2)).sum(),
                _ => x.iter().zip(q).map(|(a, b)| f64::from(a * b)).sum(),
            };
            let scale: f64 = x.iter().chain(q).map(|v| f64::from(*v).powi(2)).sum();
            let err = (f64::from(score) - exact).abs() / scale;
            worst = worst.max(err);
            total += err;
        }
    }
    let mean = total / (hits.num_queries() * 10) as f64;
    let shrink = f64::from(1u32 << (bits - 1));
    assert!(
        mean < 0.05 / shrink && worst < 0.25 / shrink,
        "{metric:?}, {bits} bits: relative error mean {mean}, worst {worst}"
    );
    r
}

/// The precomputed-table scan of IVF-PQ (L2) against its slow twin: the plain PQ scorer of
/// the query's residual to each list's centroid, plus nothing (`‖q − c − r̂‖²` directly).
#[test]
fn pq_precomputed_table_matches_per_list_tables() {
    let data = clustered(3_000, 7);
    let queries = clustered(20, 8);
    let index = built(PqCodec::new(DIM, Metric::L2, 4, 6).unwrap(), Metric::L2, 16, &data);
    let hits = index.search(&queries, 5, &probe(4)).unwrap();
    for (qi, (ids, scores)) in hits.iter().enumerate() {
        let q = &queries[qi * DIM..(qi + 1) * DIM];
        for (&id, &score) in ids.iter().zip(scores) {
            // The slow twin: decode, add the centroid, exact distance.
            let x = index.reconstruct(id).unwrap();
            let want: f32 = q.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum();
            assert!((score - want).abs() <= 1e-3 * want.max(1.0), "{score} vs {want}");
        }
    }
}

#[test]
fn errors_name_what_was_wrong() {
    let data = clustered(100, 9);
    let mut index =
        IvfIndex::new(DIM, Metric::L2, IvfParams::new(8), FlatCodec::new(DIM, Metric::L2).unwrap()).unwrap();
    assert!(matches!(index.add(&data), Err(Error::NotTrained { .. })));
    assert!(matches!(index.search(&data[..DIM], 1, &probe(1)), Err(Error::NotTrained { .. })));
    assert!(matches!(index.train(&data[..7 * DIM]), Err(Error::TooFewTrainingPoints { nlist: 8, got: 7, .. })));
    index.train(&data).unwrap();
    // Empty: padded rows.
    let empty = index.search(&data[..DIM], 3, &probe(2)).unwrap();
    assert_eq!(empty.ids(), &[u64::MAX; 3]);
    assert!(matches!(index.search(&data[..DIM], 3, &probe(0)), Err(Error::ZeroNprobe)));
    assert!(matches!(index.search(&data[..DIM], 0, &probe(1)), Err(Error::Input(vq_distance::Error::ZeroK))));
    assert!(matches!(index.search(&data[..DIM - 1], 1, &probe(1)), Err(Error::Input(_))));
    let mut bad = data[..DIM].to_vec();
    bad[3] = f32::NAN;
    assert!(matches!(index.add(&bad), Err(Error::Input(_))));
    index.add_with_ids(&data[..2 * DIM], &[5, 9]).unwrap();
    assert!(matches!(index.add_with_ids(&data[..2 * DIM], &[1, 9]), Err(Error::DuplicateId(9))));
    assert!(matches!(index.add_with_ids(&data[..2 * DIM], &[3, 3]), Err(Error::DuplicateId(3))));
    assert!(matches!(index.add_with_ids(&data[..2 * DIM], &[3]), Err(Error::IdCount { .. })));
    assert_eq!(index.len(), 2, "failed adds add nothing");
    assert!(matches!(index.train(&data), Err(Error::Parameter { name: "train", .. })));
    assert!(matches!(index.reconstruct(6), Err(Error::UnknownId(6))));
    assert!(matches!(
        IvfIndex::new(DIM, Metric::L2, IvfParams::new(0), FlatCodec::new(DIM, Metric::L2).unwrap()),
        Err(Error::Parameter { name: "nlist", .. })
    ));
}

#[test]
fn remove_ids_removes_exactly_those() {
    let data = clustered(1_000, 10);
    let mut index = built(SqCodec::new(DIM, Metric::L2, SqType::SQ8).unwrap(), Metric::L2, 8, &data);
    let gone: Vec<u64> = (0..1000).filter(|i| i % 3 == 0).collect();
    assert_eq!(index.remove_ids(&[gone.clone(), vec![5000]].concat()), gone.len());
    assert_eq!(index.remove_ids(&gone), 0, "already gone");
    assert_eq!(index.len(), 1000 - gone.len());
    let held: Vec<u64> = (0..8).flat_map(|l| index.list_ids(l).unwrap().to_vec()).collect();
    assert!(held.iter().all(|id| id % 3 != 0));
    assert_eq!(held.len(), index.len());
    let hits = index.search(&data, 5, &probe(8)).unwrap();
    assert!(hits.ids().iter().all(|id| id % 3 != 0));
    assert_eq!(index.remove_range(100..200), (100..200).filter(|i| i % 3 != 0).count());
    // The survivors are still found exactly where they were.
    let q = &data[500 * DIM..501 * DIM];
    assert_eq!(index.search(q, 1, &probe(8)).unwrap().ids()[0], 500);
    // Removed ids may be added again; add numbers from the count of vectors ever added (as
    // Faiss): 1,001 after 1,000 adds and one explicit id.
    index.add_with_ids(&data[..DIM], &[0]).unwrap();
    index.add(&data[..DIM]).unwrap();
    let all: Vec<u64> = (0..8).flat_map(|l| index.list_ids(l).unwrap().to_vec()).collect();
    assert!(all.contains(&0) && all.contains(&1001) && !all.contains(&1000));
}

#[test]
fn filtered_search_equals_search_over_the_passing_ids_only() {
    let data = clustered(2_000, 11);
    let queries = clustered(20, 12);
    let index = built(SqCodec::new(DIM, Metric::L2, SqType::SQ8).unwrap(), Metric::L2, 16, &data);
    let pass: Vec<u64> = (0..2000).filter(|i| i % 7 == 2 || i % 5 == 0).collect();
    let filter = IdBitset::from_ids(&pass);
    let mut twin = index.clone();
    twin.remove_where(|id| !filter.contains(id));
    // Every list probed: the same answer as the index of the passing vectors alone.
    let filtered =
        index.search(&queries, 10, &IvfSearch { nprobe: Some(16), filter: Some(&filter), coarse_ef: None }).unwrap();
    let expected = twin.search(&queries, 10, &probe(16)).unwrap();
    assert_eq!(filtered.ids(), expected.ids());
    // The SQ block kernel may round a code's key differently by its position in a block, and
    // the twin's lists are laid out differently.
    for (a, b) in filtered.scores().iter().zip(expected.scores()) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
}

/// A filtered search probes at least the lists an unfiltered one would (more, the fewer pass),
/// so it finds at least what the index of the passing vectors alone finds with the same
/// `nprobe`; a selective filter finds strictly more; and an answer is short only when fewer
/// than `k` vectors pass.
#[test]
fn a_selective_filter_probes_more_lists_and_never_answers_short() {
    let data = clustered(3_000, 13);
    let queries = clustered(40, 14);
    let index = built(FlatCodec::new(DIM, Metric::L2).unwrap(), Metric::L2, 32, &data);
    let k = 10;
    for passing in [3usize, 10, 30, 300, 1500] {
        let pass: Vec<u64> = (0..passing as u64).map(|i| i * 3000 / passing as u64).collect();
        let filter = IdBitset::from_ids(&pass);
        let mut twin = index.clone();
        twin.remove_where(|id| !filter.contains(id));
        let exact = twin.search(&queries, k, &probe(32)).unwrap();
        for nprobe in [1, 2, 4] {
            let opts = IvfSearch { nprobe: Some(nprobe), filter: Some(&filter), coarse_ef: None };
            let found = index.search(&queries, k, &opts).unwrap();
            for (ids, _) in found.iter() {
                let ids: Vec<u64> = ids.iter().copied().filter(|&id| id != u64::MAX).collect();
                assert_eq!(ids.len(), k.min(passing), "{passing} passing, nprobe {nprobe}");
                assert!(ids.iter().all(|&id| filter.contains(id)));
            }
            let (with_filter, alone) =
                (recall(&found, &exact), recall(&twin.search(&queries, k, &probe(nprobe)).unwrap(), &exact));
            assert!(with_filter >= alone, "{passing} passing, nprobe {nprobe}: {with_filter} < {alone}");
            if passing == 1500 && nprobe == 1 {
                assert!(with_filter > alone, "half passing, nprobe 1: no wider probe ({with_filter} = {alone})");
            }
        }
    }
}

fn round_trip<C: IvfCodec>(index: &IvfIndex<C>) -> IvfIndex<C> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ivf.vq");
    let mut w = ContainerWriter::create(&path).unwrap();
    index.write_sections(&mut w, "index").unwrap();
    w.finish().unwrap();
    IvfIndex::read_sections(&ContainerReader::open(&path).unwrap(), "index").unwrap()
}

#[test]
fn write_then_read_answers_identically() {
    let data = clustered(1_500, 13);
    let queries = clustered(20, 14);
    fn check<C: IvfCodec>(mut index: IvfIndex<C>, queries: &[f32]) {
        index.remove_ids(&[3, 4, 5]);
        index.add_with_ids(&queries[..DIM], &[10_000]).unwrap();
        let back = round_trip(&index);
        assert_eq!(back.fingerprint(), index.fingerprint());
        assert_eq!(back.len(), index.len());
        let (a, b) = (index.search(queries, 7, &probe(3)).unwrap(), back.search(queries, 7, &probe(3)).unwrap());
        assert_eq!(a.ids(), b.ids());
        assert_eq!(a.scores(), b.scores());
        assert!(matches!(back.reconstruct(3), Err(Error::UnknownId(3))));
        let mut back = back;
        assert!(matches!(back.add_with_ids(&queries[..DIM], &[10_000]), Err(Error::DuplicateId(10_000))));
    }
    check(built(FlatCodec::new(DIM, Metric::Cosine).unwrap(), Metric::Cosine, 8, &data), &queries);
    check(built(SqCodec::new(DIM, Metric::L2, SqType::SQ4).unwrap(), Metric::L2, 8, &data), &queries);
    check(built(PqCodec::new(DIM, Metric::L2, 4, 8).unwrap(), Metric::L2, 8, &data), &queries);
    check(built(PqCodec::new(DIM, Metric::InnerProduct, 8, 4).unwrap(), Metric::InnerProduct, 8, &data), &queries);
    // Untrained round trip.
    let untrained =
        IvfIndex::new(DIM, Metric::L2, IvfParams::new(4), PqCodec::new(DIM, Metric::L2, 4, 8).unwrap()).unwrap();
    assert!(!round_trip(&untrained).is_trained());
}

/// The sharded build: train once, write the trained empty index, build four shards
/// from the file in separate objects, merge, and compare with one index over the union.
#[test]
fn sharded_build_merges_into_the_single_index_and_refuses_other_training() {
    let data = clustered(4_000, 15);
    let queries = clustered(30, 16);
    let mut trained =
        IvfIndex::new(DIM, Metric::L2, IvfParams::new(16), PqCodec::new(DIM, Metric::L2, 8, 8).unwrap()).unwrap();
    trained.train(&data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trained.vq");
    let mut w = ContainerWriter::create(&path).unwrap();
    trained.write_sections(&mut w, "index").unwrap();
    w.finish().unwrap();

    let load = || IvfIndex::<PqCodec>::read_sections(&ContainerReader::open(&path).unwrap(), "index").unwrap();
    let shard_rows = 1_000;
    let mut shards: Vec<IvfIndex<PqCodec>> = (0..4)
        .map(|s| {
            let mut shard = load();
            // Each worker numbers its shard from 0; merge shifts the ids.
            shard.add(&data[s * shard_rows * DIM..(s + 1) * shard_rows * DIM]).unwrap();
            shard
        })
        .collect();
    let mut merged = shards.remove(0);
    for (s, shard) in shards.into_iter().enumerate() {
        merged.merge_from(shard, ((s + 1) * shard_rows) as u64).unwrap();
    }
    let mut single = load();
    single.add(&data).unwrap();
    assert_eq!(merged.len(), single.len());
    for nprobe in [1, 4, 16] {
        let (a, b) = (
            merged.search(&queries, 10, &probe(nprobe)).unwrap(),
            single.search(&queries, 10, &probe(nprobe)).unwrap(),
        );
        assert_eq!(a.ids(), b.ids(), "nprobe {nprobe}");
        assert_eq!(a.scores(), b.scores());
    }
    // Merging an id twice is refused, leaving the index as it was.
    let mut again = load();
    again.add(&data[..DIM]).unwrap();
    // check_merge finds it first, naming the shifted id, and keeps `again` whole.
    assert!(matches!(merged.check_merge(&again, 5), Err(Error::DuplicateId(5))));
    assert_eq!(again.len(), 1);
    assert_eq!(merged.check_merge(&again, 4_000).unwrap(), vec![4_000]);
    assert!(matches!(merged.clone().merge_from(again, 0), Err(Error::DuplicateId(0))));

    // A shard trained separately (another seed) is refused, with its fingerprint.
    let mut params = IvfParams::new(16);
    params.seed = 7;
    let mut other = IvfIndex::new(DIM, Metric::L2, params, PqCodec::new(DIM, Metric::L2, 8, 8).unwrap()).unwrap();
    other.train(&data).unwrap();
    other.add(&data[..DIM]).unwrap();
    let before = merged.len();
    assert!(matches!(merged.merge_from(other, 1_000_000), Err(Error::TrainedStateMismatch { .. })));
    assert_eq!(merged.len(), before);
    // A different codec is refused as incompatible.
    let mut sq =
        IvfIndex::new(DIM, Metric::L2, IvfParams::new(16), SqCodec::new(DIM, Metric::L2, SqType::SQ8).unwrap())
            .unwrap();
    sq.train(&data).unwrap();
    let mut flat =
        IvfIndex::new(DIM, Metric::L2, IvfParams::new(8), SqCodec::new(DIM, Metric::L2, SqType::SQ8).unwrap()).unwrap();
    flat.train(&data).unwrap();
    assert!(matches!(sq.merge_from(flat, 0), Err(Error::Incompatible { .. })));
}

#[test]
fn memory_and_list_stats_count_what_is_held() {
    let data = clustered(2_000, 17);
    let mut index = built(SqCodec::new(DIM, Metric::L2, SqType::SQ8).unwrap(), Metric::L2, 16, &data);
    // One bulk add leaves no spare capacity.
    let m = index.memory_usage();
    assert_eq!(m.codes, 2_000 * DIM);
    // Small adds after it grow each list by at least a quarter, never more than needed plus that.
    for chunk in data[..200 * DIM].chunks(10 * DIM) {
        let ids: Vec<u64> = (0..10).map(|i| 10_000 + index.len() as u64 + i).collect();
        index.add_with_ids(chunk, &ids).unwrap();
    }
    let grown = index.memory_usage().codes;
    assert!((2_200 * DIM..=2_200 * DIM * 5 / 4 + 16 * DIM).contains(&grown), "{grown}");
    index.shrink_to_fit();
    index.remove_where(|id| id >= 10_000);
    index.shrink_to_fit();
    let m = index.memory_usage();
    assert_eq!(m.codes, 2_000 * DIM);
    assert!(m.ids >= 2_000 * 8);
    assert!(m.trained >= 16 * DIM * 4);
    let s = index.list_stats();
    assert_eq!((s.nlist, s.total), (16, 2_000));
    assert!(s.min <= s.max && s.imbalance >= 1.0);
    let x = index.reconstruct(42).unwrap();
    let err: f32 = x.iter().zip(&data[42 * DIM..43 * DIM]).map(|(a, b)| (a - b) * (a - b)).sum();
    assert!(err < 0.05 * DIM as f32, "SQ8 reconstruction error {err}");
}

#[test]
fn a_file_stitched_from_two_trainings_is_refused_on_read() {
    let data = clustered(500, 18);
    let a = built(SqCodec::new(DIM, Metric::L2, SqType::SQ8).unwrap(), Metric::L2, 4, &data);
    let b = built(SqCodec::new(DIM, Metric::L2, SqType::SQ8).unwrap(), Metric::L2, 4, &clustered(500, 19));
    let dir = tempfile::tempdir().unwrap();
    let (path, stitched) = (dir.path().join("ab.vq"), dir.path().join("c.vq"));
    let mut w = ContainerWriter::create(&path).unwrap();
    a.write_sections(&mut w, "a").unwrap();
    b.write_sections(&mut w, "b").unwrap();
    w.finish().unwrap();
    let r = ContainerReader::open(&path).unwrap();
    // `a` with `b`'s centroids: every shape agrees, only the fingerprint tells.
    let mut w = ContainerWriter::create(&stitched).unwrap();
    for json in ["ivf", "codec.sq"] {
        w.add_json(&format!("c.{json}"), 1, &r.json::<serde_json::Value>(&format!("a.{json}")).unwrap()).unwrap();
    }
    w.add_array("c.centroids", 1, r.array::<f32>("b.centroids").unwrap()).unwrap();
    for f32s in ["codec.vmin", "codec.step"] {
        w.add_array(&format!("c.{f32s}"), 1, r.array::<f32>(&format!("a.{f32s}")).unwrap()).unwrap();
    }
    for u64s in ["list_sizes", "list_ids"] {
        w.add_array(&format!("c.{u64s}"), 1, r.array::<u64>(&format!("a.{u64s}")).unwrap()).unwrap();
    }
    w.add_array("c.list_codes", 1, r.array::<u8>("a.list_codes").unwrap()).unwrap();
    w.finish().unwrap();
    let r = ContainerReader::open(&stitched).unwrap();
    match IvfIndex::<SqCodec>::read_sections(&r, "c") {
        Err(Error::Corrupt { what, .. }) => assert!(what.contains("fingerprint"), "{what}"),
        other => panic!("stitched file read: {:?}", other.map(|i| i.len())),
    }
}

/// A file whose lists hold an id twice is refused on read, whether its ids are small (checked
/// by a bitmap) or spread far apart (checked by a sort); the same ids spread far apart without
/// a repeat read back.
#[test]
fn a_file_with_an_id_twice_is_refused_on_read() {
    let a = built(SqCodec::new(DIM, Metric::L2, SqType::SQ8).unwrap(), Metric::L2, 4, &clustered(300, 21));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.vq");
    let mut w = ContainerWriter::create(&path).unwrap();
    a.write_sections(&mut w, "a").unwrap();
    w.finish().unwrap();
    let r = ContainerReader::open(&path).unwrap();
    let ids = r.array::<u64>("a.list_ids").unwrap().to_vec();
    let mut repeat = ids.clone();
    repeat[7] = repeat[250];
    let spread = |ids: &[u64]| ids.iter().map(|&i| i << 40 | 5).collect::<Vec<u64>>();
    for (case, ids, refused) in
        [("small", repeat.clone(), true), ("spread", spread(&repeat), true), ("spread, unique", spread(&ids), false)]
    {
        let forged = dir.path().join("forged.vq");
        let mut w = ContainerWriter::create(&forged).unwrap();
        for json in ["ivf", "codec.sq"] {
            w.add_json(&format!("c.{json}"), 1, &r.json::<serde_json::Value>(&format!("a.{json}")).unwrap()).unwrap();
        }
        for f32s in ["centroids", "codec.vmin", "codec.step"] {
            w.add_array(&format!("c.{f32s}"), 1, r.array::<f32>(&format!("a.{f32s}")).unwrap()).unwrap();
        }
        w.add_array("c.list_sizes", 1, r.array::<u64>("a.list_sizes").unwrap()).unwrap();
        w.add_array("c.list_ids", 1, &ids).unwrap();
        w.add_array("c.list_codes", 1, r.array::<u8>("a.list_codes").unwrap()).unwrap();
        w.finish().unwrap();
        let read = IvfIndex::<SqCodec>::read_sections(&ContainerReader::open(&forged).unwrap(), "c");
        match (read, refused) {
            (Err(Error::Corrupt { what, .. }), true) => assert!(what.contains("appears twice"), "{case}: {what}"),
            (Ok(index), false) => assert_eq!(index.len(), ids.len(), "{case}"),
            (other, _) => panic!("{case}: {:?}", other.map(|i| i.len())),
        }
    }
}

/// An index trained with centroids and a product quantizer taken from another index's training
/// has that index's trained state (fingerprint) and answers every search as it does; with
/// training data it trains the codec on the residuals against the given centroids, as `train`
/// does after its k-means. What it refuses: a wrong centroid count, an untrained codec without
/// data, a codec made for another metric, an index that holds vectors.
#[test]
fn centroids_and_codebooks_trained_elsewhere() {
    let data = clustered(3_000, 21);
    let queries = clustered(40, 22);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let reference = built(PqCodec::new(DIM, metric, 8, 8).unwrap(), metric, 16, &data);
        let centroids = reference.centroids().to_vec();
        let pq = reference.codec().quantizer().clone();

        let codec = PqCodec::from_quantizer(metric, pq.clone()).unwrap();
        let mut given = IvfIndex::new(DIM, metric, IvfParams::new(16), codec).unwrap();
        given.train_with_centroids(centroids.clone(), None).unwrap();
        assert_eq!(given.fingerprint(), reference.fingerprint(), "{metric}");
        given.add(&data).unwrap();
        let (a, b) =
            (given.search(&queries, 10, &probe(4)).unwrap(), reference.search(&queries, 10, &probe(4)).unwrap());
        assert_eq!(a, b, "{metric}");

        let mut retrained =
            IvfIndex::new(DIM, metric, IvfParams::new(16), PqCodec::new(DIM, metric, 8, 8).unwrap()).unwrap();
        retrained.train_with_centroids(centroids.clone(), Some(&data)).unwrap();
        assert_eq!(retrained.fingerprint(), reference.fingerprint(), "{metric}: train = k-means + this");

        let mut untrained =
            IvfIndex::new(DIM, metric, IvfParams::new(16), PqCodec::new(DIM, metric, 8, 8).unwrap()).unwrap();
        assert!(matches!(untrained.train_with_centroids(centroids.clone(), None), Err(Error::NotTrained { .. })));
        assert!(matches!(
            untrained.train_with_centroids(centroids[..15 * DIM].to_vec(), Some(&data)),
            Err(Error::Parameter { name: "centroids", .. })
        ));
        assert!(!untrained.is_trained());
        assert!(matches!(
            given.train_with_centroids(centroids.clone(), None),
            Err(Error::Parameter { name: "train", .. })
        ));
        let other = if metric == Metric::L2 { Metric::InnerProduct } else { Metric::L2 };
        assert!(matches!(PqCodec::from_quantizer(other, pq), Err(Error::Parameter { name: "codec", .. })));
    }
}

/// A filter passing few vectors, given as a set, is answered from its listed ids; the same
/// filter as a predicate (which cannot list its ids) scans every list. The two agree to the
/// bit for every codec and metric, and the map from ids to entries the first builds shows in
/// the memory report until the lists change (an add, a removal), after which the listed answer
/// still equals the scan's.
#[test]
fn listed_ids_answer_as_the_scan_of_every_list() {
    // Every 97th id, and the next one `add` hands out (3,000), added later.
    let added = 3000;
    let passing: Vec<u64> = (0..3000).filter(|i| i % 97 == 5).chain([added]).collect();
    let set = IdBitset::from_ids(&passing);
    fn check<C: IvfCodec + Clone>(mut index: IvfIndex<C>, queries: &[f32], set: &IdBitset, added: u64) {
        let name = index.name();
        let predicate = |id: u64| set.contains(id);
        let compare = |index: &IvfIndex<C>, what: &str| {
            let listed = IvfSearch { nprobe: Some(32), filter: Some(set), coarse_ef: None };
            let listed = index.search(queries, 10, &listed).unwrap();
            let scanned = IvfSearch { nprobe: Some(32), filter: Some(&predicate), coarse_ef: None };
            let scanned = index.search(queries, 10, &scanned).unwrap();
            assert_eq!(listed.ids(), scanned.ids(), "{name} {what}");
            let bits = |n: &Neighbors| n.scores().iter().map(|s| s.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&listed), bits(&scanned), "{name} {what}: scores");
            assert!(listed.ids().iter().all(|&id| id == u64::MAX || set.contains(id)));
            listed
        };
        let before = index.memory_usage().ids;
        compare(&index, "as built");
        assert!(index.memory_usage().ids >= before + 3000 * 8, "{name}: the id map in the memory report");
        // A new passing vector at the first query, then the removal of the second query's
        // nearest: the map is rebuilt after each.
        index.add(&queries[..DIM]).unwrap();
        // (The map would be 24,000 bytes; the add grows one list's ids by at most its length.)
        assert!(index.memory_usage().ids < before + 3000, "{name}: the map outlived an add");
        let after = compare(&index, "after an add");
        assert_eq!(after.get(0).unwrap().0[0], added, "{name}: the added vector is the first query's nearest");
        let gone = after.get(1).unwrap().0[0];
        index.remove_ids(&[gone]);
        let after = compare(&index, "after a removal");
        assert!(!after.ids().contains(&gone), "{name}: {gone} was removed");
    }
    let data = clustered(3_000, 15);
    let queries = clustered(30, 16);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let d = normalized_if(metric, &data);
        check(built(FlatCodec::new(DIM, metric).unwrap(), metric, 32, &d), &queries, &set, added);
        check(built(SqCodec::new(DIM, metric, SqType::SQ8).unwrap(), metric, 32, &d), &queries, &set, added);
        check(built(PqCodec::new(DIM, metric, 4, 8).unwrap(), metric, 32, &d), &queries, &set, added);
    }
}

/// IVF-PQ keys a list holding few passing entries from the list's terms without building its
/// table; the keys are the table's to the bit: every entry a filter passes scores in the
/// filtered search exactly as in the unfiltered one (every list probed, every entry returned).
#[test]
fn pq_keys_without_a_table_equal_the_tables() {
    let data = clustered(2_000, 17);
    let queries = clustered(8, 18);
    let index = built(PqCodec::new(DIM, Metric::L2, 8, 8).unwrap(), Metric::L2, 16, &data);
    let every = index.search(&queries, 2_000, &probe(16)).unwrap();
    // One id in 97 (a predicate: never listed, so the lists are scanned): one or two an
    // entry list, keyed without tables.
    let sparse = |id: u64| id % 97 == 3;
    let opts = IvfSearch { nprobe: Some(16), filter: Some(&sparse), coarse_ef: None };
    let found = index.search(&queries, 30, &opts).unwrap();
    for ((ids, scores), (all_ids, all_scores)) in found.iter().zip(every.iter()) {
        assert_eq!(ids.len(), 21, "every passing entry (3, 100, …, 1943)");
        for (id, score) in ids.iter().zip(scores) {
            let at = all_ids.iter().position(|x| x == id).unwrap();
            assert_eq!(score.to_bits(), all_scores[at].to_bits(), "id {id}");
        }
    }
}
