//! Range search over every code store against its slow twin, a k-NN search of every row
//! (`k = len`) cut at the radius: the same rows and the same scores, to the bit, with and
//! without a filter, for each metric; and the edge radii.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use vq_distance::{Error as DError, Metric};
use vq_quant::fastscan::FastScanCodes;
use vq_quant::{CodeStore, Error, FlatCodes, PqParams, ProductQuantizer, Quantizer, ScalarQuantizer, SqType};

fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n * dim).map(|i| ((i / dim) % 9) as f32 + rng.random_range(-1.0f32..1.0)).collect()
}

fn check<S: CodeStore>(store: &S, queries: &[f32], what: &str) {
    let metric = store.quantizer().metric();
    let nq = queries.len() / store.quantizer().dim();
    let odd = |row: usize| row % 2 == 1;
    for keep in [None, Some(&odd as &(dyn Fn(usize) -> bool + Sync))] {
        let all = store.search_filtered(queries, store.len(), keep).unwrap();
        // The 40th score of the first query: tens to hundreds of hits a query.
        let radius = all.get(0).unwrap().1[39];
        let got = store.range_filtered(queries, radius, keep).unwrap();
        assert_eq!(got.num_queries(), nq, "{what}");
        for (q, ((ids, scores), (gids, gscores))) in all.iter().zip(got.iter()).enumerate() {
            let inside = scores.iter().take_while(|&&s| metric.within(s, radius)).count();
            assert_eq!(gids, &ids[..inside], "{what} query {q} (filter {})", keep.is_some());
            let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(gscores), bits(&scores[..inside]), "{what} query {q}: scores");
        }
        assert!(got.total_hits() >= 40, "{what}: the radius keeps too little to test");
        let worst = metric.worst_score();
        let everything = store.range_filtered(queries, worst, keep).unwrap();
        let passing = if keep.is_some() { store.len() / 2 } else { store.len() };
        assert_eq!(everything.total_hits(), nq * passing, "{what}: an infinite radius keeps every row");
        assert_eq!(store.range_filtered(queries, -worst, keep).unwrap().total_hits(), 0, "{what}: keeps nothing");
    }
    let nan = store.range_filtered(queries, f32::NAN, None);
    assert!(matches!(nan, Err(Error::Input(DError::NanRadius))), "{what}: NaN radius");
    assert!(store.range_filtered(&queries[1..], 1.0, None).is_err(), "{what}: ragged queries");
}

#[test]
fn every_store_answers_a_range_as_its_full_search_cut_at_the_radius() {
    let dim = 16;
    let base = clustered(900, dim, 1);
    let queries = clustered(9, dim, 2);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let mut sq = FlatCodes::new(ScalarQuantizer::new(dim, metric, SqType::SQ8).unwrap());
        sq.train(&base).unwrap();
        sq.add(&base).unwrap();
        check(&sq, &queries, &format!("SQ8 {metric}"));

        let pq =
            |nbits| ProductQuantizer::with_params(dim, metric, PqParams { iterations: 4, ..PqParams::new(8, nbits) });
        let mut flat_pq = FlatCodes::new(pq(8).unwrap());
        flat_pq.train(&base).unwrap();
        flat_pq.add(&base).unwrap();
        check(&flat_pq, &queries, &format!("PQ8 {metric}"));

        let mut fast = FastScanCodes::new(pq(4).unwrap()).unwrap();
        fast.train(&base).unwrap();
        fast.add(&base).unwrap();
        check(&fast, &queries, &format!("PQ8x4fs {metric}"));
    }
}
