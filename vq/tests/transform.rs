//! `OPQ{m},IVF…` and `PCA{d},…`: the transform in front of an index is exactly "transform,
//! then use the inner index", and is trained as Faiss trains an `IndexPreTransform` (the
//! transform first, on the training set; then the inner index on the transformed training
//! set).

use rand::{RngExt, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};
use vq::{Index, Metric, PreTransformIndex, SearchParams};

const DIM: usize = 16;

/// Gaussian clusters with strongly correlated components (so the rotation is far from the
/// identity).
fn correlated(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..20 * DIM).map(|_| rng.random_range(-10.0f32..10.0)).collect();
    let noise = Normal::new(0.0f32, 1.0).unwrap();
    (0..n)
        .flat_map(|_| {
            let c = rng.random_range(0..20);
            let z: Vec<f32> = (0..4).map(|_| noise.sample(&mut rng) * 3.0).collect();
            (0..DIM).map(|j| centres[c * DIM + j] + z[j % 4] + 0.3 * noise.sample(&mut rng)).collect::<Vec<_>>()
        })
        .collect()
}

fn hand_built(spec: &str, metric: Metric, data: &[f32]) -> Box<dyn Index> {
    let index = vq::index_factory(DIM, spec, metric).unwrap();
    let mut index = PreTransformIndex::opq(index, 4).unwrap();
    index.train(data).unwrap();
    index.add(data).unwrap();
    Box::new(index)
}

/// Search through the wrapper equals rotating the queries by hand and searching the inner
/// inverted file, bit for bit, for every metric and codec; the factory's index is that index.
#[test]
fn search_is_the_inner_search_of_rotated_queries() {
    let data = correlated(2_000, 1);
    let queries = correlated(30, 2);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        for inner in ["IVF16,Flat", "IVF16,PQ4", "IVF16,PQ8x4fs", "IVF16,SQ8"] {
            let mut index = PreTransformIndex::opq(vq::index_factory(DIM, inner, metric).unwrap(), 4).unwrap();
            index.train(&data).unwrap();
            index.add(&data).unwrap();
            assert!(index.rotation().unwrap().matrix() != identity().as_slice(), "{inner}: the rotation moved");
            let p = SearchParams { k: 10, nprobe: Some(4), ..Default::default() };
            let got = index.search_with(&queries, &p).unwrap();
            let mut q = queries.clone();
            if metric == Metric::Cosine {
                vq::normalize_l2(&mut q, DIM).unwrap();
            }
            let by_hand = index.inner().search_with(&index.rotation().unwrap().apply(&q).unwrap(), &p).unwrap();
            assert_eq!(got.ids(), by_hand.ids(), "{inner} {metric}");
            assert!(got.scores().iter().zip(by_hand.scores()).all(|(a, b)| a.to_bits() == b.to_bits()));

            let spec = format!("OPQ4,{inner}");
            let factory = vq::index_factory(DIM, &spec, metric).unwrap();
            assert_eq!(factory.spec().to_string(), spec);
            assert_eq!(index.spec().to_string(), spec);
        }
    }
}

fn identity() -> Vec<f32> {
    (0..DIM * DIM).map(|k| if k / DIM == k % DIM { 1.0 } else { 0.0 }).collect()
}

/// Training order as Faiss: the rotation is trained on the training set, then the inverted
/// file on the rotated training set. An inverted file trained by hand on the rotated data has
/// the same trained state (fingerprint: centroids and codebooks) as the one inside.
#[test]
fn the_inverted_file_is_trained_on_rotated_vectors() {
    let data = correlated(2_000, 3);
    for inner in ["IVF16,Flat", "IVF16,PQ4"] {
        let index = hand_built(inner, Metric::L2, &data);
        let mut rotation = vq::vq_quant::OpqRotation::new(DIM, vq::vq_quant::OpqParams::new(4, 8)).unwrap();
        rotation.train(&data).unwrap();
        let mut by_hand = vq::index_factory(DIM, inner, Metric::L2).unwrap();
        by_hand.train(&rotation.apply(&data).unwrap()).unwrap();
        let mut unrotated = vq::index_factory(DIM, inner, Metric::L2).unwrap();
        unrotated.train(&data).unwrap();

        let mut factory = vq::index_factory(DIM, &format!("OPQ4,{inner}"), Metric::L2).unwrap();
        factory.train(&data).unwrap();
        let written = vq::write_index_to_bytes(factory.as_ref()).unwrap();
        let inner_bytes = vq::write_index_to_bytes(by_hand.as_ref()).unwrap();
        assert_eq!(index.fingerprint(), factory.fingerprint(), "{inner}: deterministic training");
        // The file holds the hand-trained inverted file's sections under `index.inner`.
        let r = vq::vq_io::ContainerReader::from_bytes(&written, true).unwrap();
        let theirs = vq::vq_io::ContainerReader::from_bytes(&inner_bytes, true).unwrap();
        let mut compared = 0;
        for s in theirs.sections().iter().filter(|s| s.name != vq::vq_io::INDEX_KIND_SECTION) {
            if let Some(rest) = s.name.strip_prefix("index.") {
                let ours =
                    r.section(&format!("index.inner.{rest}")).unwrap_or_else(|e| panic!("{inner}: {}: {e}", s.name));
                assert_eq!(ours.checksum, s.checksum, "{inner}: section {}", s.name);
                compared += 1;
            }
        }
        assert!(compared > 0);
        let unrotated_bytes = vq::write_index_to_bytes(unrotated.as_ref()).unwrap();
        assert_ne!(unrotated_bytes, inner_bytes, "{inner}: the rotation changes what is trained");
    }
}

/// Training twice is refused by the inner index once it holds vectors, and the rotation is
/// left as it was.
#[test]
fn a_refused_retraining_keeps_the_rotation() {
    let data = correlated(1_000, 5);
    let mut index = vq::index_factory(DIM, "OPQ4,IVF16,PQ4", Metric::L2).unwrap();
    assert!(matches!(index.search(&data[..DIM], 1), Err(vq::Error::NotTrained { spec })
        if spec == "OPQ4,IVF16,PQ4"));
    index.train(&data).unwrap();
    index.add(&data).unwrap();
    let before = vq::write_index_to_bytes(index.as_ref()).unwrap();
    assert!(index.train(&correlated(1_000, 6)).is_err());
    assert_eq!(vq::write_index_to_bytes(index.as_ref()).unwrap(), before);
    assert!(matches!(
        vq::index_factory(DIM, "OPQ4_32,IVF16,PQ4", Metric::L2),
        Err(vq::Error::Parameter { name: "OPQ", .. })
    ));
    assert!(matches!(vq::index_factory(DIM, "OPQ4_8,PQ4", Metric::L2), Err(vq::Error::Parameter { name: "OPQ", .. })));
    assert_eq!(vq::index_factory(DIM, "OPQ4_16,IVF16,PQ4", Metric::L2).unwrap().spec().to_string(), "OPQ4,IVF16,PQ4");
    assert!(vq::index_factory(DIM, "OPQ3,IVF16,Flat", Metric::L2).is_err(), "3 does not divide 16");
}

/// Points of a 6-dimensional affine subspace of the 16 dimensions (an offset plus 6
/// directions), in clusters: what a PCA to 6 dimensions keeps whole.
fn in_subspace(n: usize, seed: u64) -> Vec<f32> {
    let basis = correlated(6, 99);
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = Normal::new(0.0f32, 1.0).unwrap();
    let centres: Vec<f32> = (0..10 * 6).map(|_| rng.random_range(-3.0f32..3.0)).collect();
    (0..n)
        .flat_map(|_| {
            let c = rng.random_range(0..10);
            let a: Vec<f32> = (0..6).map(|i| centres[c * 6 + i] + 0.3 * noise.sample(&mut rng)).collect();
            (0..DIM).map(|j| 5.0 + (0..6).map(|i| a[i] * basis[i * DIM + j]).sum::<f32>()).collect::<Vec<_>>()
        })
        .collect()
}

/// `PCA{d},…` searches the inner index with the projected queries, bit for bit, for every
/// metric and kind of inner index; a cosine index scores its projections by inner product;
/// data inside the kept subspace keeps its exact neighbours under L2 and comes back whole
/// from `reconstruct`; the file reads back to the same answers.
#[test]
fn pca_search_is_the_inner_search_of_projected_queries() {
    let data = in_subspace(2_000, 1);
    let queries = in_subspace(30, 2);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        for (spec, inner_spec) in [("PCA6,Flat", "Flat"), ("PCAR6,HNSW16", "HNSW16"), ("PCA6,IVF16,SQ8", "IVF16,SQ8")] {
            let mut index = vq::index_factory(DIM, spec, metric).unwrap();
            assert_eq!(index.spec().to_string(), spec);
            assert_eq!((index.dim(), index.metric()), (DIM, metric));
            index.train(&data).unwrap();
            index.add(&data).unwrap();
            let p = SearchParams { k: 10, nprobe: Some(16), ef: Some(64), ..Default::default() };
            let got = index.search_with(&queries, &p).unwrap();
            let t = (index.as_ref() as &dyn std::any::Any).downcast_ref::<PreTransformIndex>().unwrap();
            let pca = t.pca_matrix().unwrap();
            assert_eq!((pca.d_in(), pca.d_out(), pca.params().centered), (DIM, 6, metric == Metric::L2));
            let inner_metric = if metric == Metric::Cosine { Metric::InnerProduct } else { metric };
            assert_eq!(
                (t.inner().dim(), t.inner().metric(), t.inner().spec().to_string()),
                (6, inner_metric, inner_spec.into())
            );
            let mut q = queries.clone();
            if metric == Metric::Cosine {
                vq::normalize_l2(&mut q, DIM).unwrap();
            }
            let by_hand = t.inner().search_with(&pca.apply(&q).unwrap(), &p).unwrap();
            assert_eq!(got.ids(), by_hand.ids(), "{spec} {metric}");
            assert!(got.scores().iter().zip(by_hand.scores()).all(|(a, b)| a.to_bits() == b.to_bits()));
            let back = vq::read_index_from_bytes(&vq::write_index_to_bytes(index.as_ref()).unwrap()).unwrap();
            assert_eq!(back.search_with(&queries, &p).unwrap(), got, "{spec} {metric}: written and read");
            if metric == Metric::L2 && spec.ends_with("Flat") {
                let exact = vq::knn_exact(&data, &queries, DIM, 10, metric).unwrap();
                let same = got.ids().iter().zip(exact.ids()).filter(|(a, b)| a == b).count();
                assert!(same >= 295, "{spec}: {same} of 300 neighbours exact in the kept subspace");
                let v = index.reconstruct(17).unwrap();
                let worst = v.iter().zip(&data[17 * DIM..18 * DIM]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst < 1e-3, "{spec}: reconstruct off by {worst}");
            }
        }
    }
}

/// A projection to more dimensions than the input, or to none, is refused by the factory;
/// shards projected differently do not merge; a projection of cosine rows behind an index
/// that scores L2 is refused.
#[test]
fn pca_mistakes_are_typed_errors() {
    for spec in ["PCA17,Flat", "PCAR40,HNSW16"] {
        assert!(
            matches!(vq::index_factory(DIM, spec, Metric::L2), Err(vq::Error::Parameter { name: "PCA", .. })),
            "{spec}"
        );
    }
    assert!(matches!(vq::index_factory(DIM, "PCA0,Flat", Metric::L2), Err(vq::Error::Spec(_))));
    let data = in_subspace(1_000, 3);
    let shard = |seed: u64| {
        let mut s = vq::index_factory(DIM, "PCA6,IVF16,Flat", Metric::L2).unwrap();
        s.train(&in_subspace(1_000, seed)).unwrap();
        s.add(&data[..100 * DIM]).unwrap();
        s
    };
    let (mut a, b) = (shard(4), shard(5));
    assert!(matches!(a.merge_from(b, 1_000), Err(vq::Error::TrainedStateMismatch { .. })));
    let same = shard(4);
    a.merge_from(same, 1_000).unwrap();
    assert_eq!(a.len(), 200);
    let inner = vq::index_factory(6, "Flat", Metric::L2).unwrap();
    assert!(matches!(
        PreTransformIndex::pca(inner, DIM, Metric::Cosine, false),
        Err(vq::Error::Parameter { name: "transform", .. })
    ));
}

/// `OPQ{m}_{d}` with `d` below the input's dimension (Faiss' `OPQMatrix(d_in, m, d)`): the
/// inverted file holds `d`-dimensional projections and is searched with the projected
/// queries, bit for bit, for every metric (cosine rows' projections compared by inner
/// product); the spec keeps the output dimension, the file reads back to the same answers,
/// and `reconstruct` maps back to the input's dimension.
#[test]
fn opq_with_an_output_dimension_projects_before_the_inverted_file() {
    let data = correlated(2_000, 7);
    let queries = correlated(30, 8);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        for inner_spec in ["IVF16,PQ4", "IVF16,Flat"] {
            let spec = format!("OPQ4_8,{inner_spec}");
            let mut index = vq::index_factory(DIM, &spec, metric).unwrap();
            assert_eq!((index.spec().to_string(), index.dim(), index.metric()), (spec.clone(), DIM, metric));
            index.train(&data).unwrap();
            index.add(&data).unwrap();
            let t = (index.as_ref() as &dyn std::any::Any).downcast_ref::<PreTransformIndex>().unwrap();
            let rotation = t.rotation().unwrap();
            assert_eq!((rotation.dim(), rotation.d_out()), (DIM, 8));
            let inner_metric = if metric == Metric::Cosine { Metric::InnerProduct } else { metric };
            assert_eq!((t.inner().dim(), t.inner().metric()), (8, inner_metric), "{spec} {metric}");
            let p = SearchParams { k: 10, nprobe: Some(4), ..Default::default() };
            let got = index.search_with(&queries, &p).unwrap();
            let mut q = queries.clone();
            if metric == Metric::Cosine {
                vq::normalize_l2(&mut q, DIM).unwrap();
            }
            let by_hand = t.inner().search_with(&rotation.apply(&q).unwrap(), &p).unwrap();
            assert_eq!(got, by_hand, "{spec} {metric}");
            let back = vq::read_index_from_bytes(&vq::write_index_to_bytes(index.as_ref()).unwrap()).unwrap();
            assert_eq!(back.search_with(&queries, &p).unwrap(), got, "{spec} {metric}: written and read");
            assert_eq!(index.reconstruct(3).unwrap().len(), DIM);
        }
    }
}

/// An untrained transform in front of an index with nothing to learn is written and read back
/// as it was (the read once refused it as "disagreeing on whether they are trained"), and the
/// copy trains and searches as the original does.
#[test]
fn an_untrained_transform_in_front_of_an_index_needing_no_training_reads_back() {
    let data = correlated(2_000, 5);
    for spec in ["PCA4,Flat", "PCAR4,Flat", "PCA4,HNSW8", "PCA4,SQfp16"] {
        let mut index = vq::index_factory(DIM, spec, Metric::L2).unwrap();
        let mut copy = vq::read_index_from_bytes(&vq::write_index_to_bytes(index.as_ref()).unwrap())
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert!(!copy.is_trained(), "{spec}");
        for index in [&mut index, &mut copy] {
            index.train(&data).unwrap();
            index.add(&data).unwrap();
        }
        let (a, b) = (index.search(&data[..10 * DIM], 5).unwrap(), copy.search(&data[..10 * DIM], 5).unwrap());
        if spec.contains("HNSW") {
            // (Graphs built on two threads may differ: each query finds itself.)
            for (q, ((ids, _), (copy_ids, _))) in a.iter().zip(b.iter()).enumerate() {
                assert_eq!((ids[0], copy_ids[0]), (q as u64, q as u64), "{spec}");
            }
        } else {
            assert_eq!(a, b, "{spec}");
        }
    }
}
