//! Coarse quantizers: the flat one against a naive scan (single and batched paths), the HNSW
//! one against the flat one, and IVF indexes over an HNSW coarse quantizer end to end.

use proptest::prelude::*;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use vq_distance::{Metric, knn_exact, normalize_l2};
use vq_io::{ContainerReader, ContainerWriter};
use vq_ivf::{CoarseKind, CoarseQuantizer, FlatCoarse, FlatCodec, HnswCoarse, IvfIndex, IvfParams, IvfSearch, PqCodec};

fn uniform(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The naive coarse search: every key in f64, sorted by key then list.
fn naive(q: &[f32], centroids: &[f32], dim: usize, metric: Metric, nprobe: usize) -> Vec<(u32, f64)> {
    let mut all: Vec<(u32, f64)> = centroids
        .chunks(dim)
        .enumerate()
        .map(|(j, c)| {
            let key = match metric {
                Metric::L2 => q.iter().zip(c).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum(),
                _ => -q.iter().zip(c).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>(),
            };
            (j as u32, key)
        })
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(nprobe);
    all
}

/// Checks a coarse search against the naive one: every list found is within rounding of the
/// true `nprobe`-th key, keys are the lists' keys, best first.
fn check_flat(coarse: &FlatCoarse, queries: &[f32], dim: usize, metric: Metric, nprobe: usize) {
    let nq = queries.len() / dim;
    let (mut lists, mut keys) = (vec![0u32; nq * nprobe], vec![0f32; nq * nprobe]);
    coarse.search(queries, nprobe, &mut lists, &mut keys).unwrap();
    for (i, q) in queries.chunks(dim).enumerate() {
        let want = naive(q, coarse.centroids(), dim, metric, nprobe);
        let (got_l, got_k) = (&lists[i * nprobe..][..nprobe], &keys[i * nprobe..][..nprobe]);
        let tol = 1e-4 * (1.0 + want.iter().map(|w| w.1.abs()).fold(0.0, f64::max));
        let kth = want.last().unwrap().1;
        for (j, (&l, &k)) in got_l.iter().zip(got_k).enumerate() {
            let truth = naive(q, &coarse.centroids()[l as usize * dim..][..dim], dim, metric, 1)[0].1;
            assert!((f64::from(k) - truth).abs() <= tol, "query {i}: list {l} key {k}, exact {truth}");
            assert!(truth <= kth + tol, "query {i}: list {l} ({truth}) is not among the {nprobe} nearest ({kth})");
            if j > 0 {
                assert!(got_k[j - 1] <= k, "query {i}: not best first");
            }
        }
        let mut uniq = got_l.to_vec();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), nprobe, "query {i}: a list twice");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The batched (blocked GEMM) and single-query (per-pair) paths both equal the naive
    /// search, for both coarse metrics.
    #[test]
    fn flat_coarse_equals_the_naive_search(
        dim in 1usize..40, nlist in 1usize..70, nq in 1usize..40, nprobe in 1usize..12, seed in 0u64..1000, ip in any::<bool>(),
    ) {
        let metric = if ip { Metric::InnerProduct } else { Metric::L2 };
        let nprobe = nprobe.min(nlist);
        let coarse = FlatCoarse::new(uniform(nlist, dim, seed), dim, metric).unwrap();
        let queries = uniform(nq, dim, seed + 1);
        check_flat(&coarse, &queries, dim, metric, nprobe);
        // One at a time: the per-pair path.
        for q in queries.chunks(dim) {
            check_flat(&coarse, q, dim, metric, nprobe);
        }
        // A list's key does not depend on the batch its query came in (to the bit): residual
        // codes add it to their scores.
        let (mut bl, mut bk) = (vec![0u32; nq * nprobe], vec![0f32; nq * nprobe]);
        coarse.search(&queries, nprobe, &mut bl, &mut bk).unwrap();
        for (i, q) in queries.chunks(dim).enumerate() {
            let (mut l, mut k) = (vec![0u32; nprobe], vec![0f32; nprobe]);
            coarse.search(q, nprobe, &mut l, &mut k).unwrap();
            for (&list, &key) in bl[i * nprobe..][..nprobe].iter().zip(&bk[i * nprobe..][..nprobe]) {
                if let Some(p) = l.iter().position(|&x| x == list) {
                    prop_assert_eq!(k[p].to_bits(), key.to_bits(), "query {} list {}: batch {} vs alone", i, list, nq);
                }
            }
        }
        // assign() is the top-1 of search().
        let (mut labels, mut keys) = (vec![0u32; nq], vec![0f32; nq]);
        coarse.assign(&queries, &mut labels, &mut keys).unwrap();
        for (i, q) in queries.chunks(dim).enumerate() {
            let best = naive(q, coarse.centroids(), dim, metric, 1)[0].1;
            let got = naive(q, &coarse.centroids()[labels[i] as usize * dim..][..dim], dim, metric, 1)[0].1;
            prop_assert!((got - best).abs() <= 1e-4 * (1.0 + best.abs()));
            prop_assert!((f64::from(keys[i]) - got).abs() <= 1e-4 * (1.0 + got.abs()));
        }
    }
}

#[test]
fn flat_coarse_refuses_bad_input() {
    assert!(FlatCoarse::new(vec![], 4, Metric::L2).is_err());
    assert!(FlatCoarse::new(vec![1.0; 6], 4, Metric::L2).is_err());
    assert!(FlatCoarse::new(vec![1.0, f32::NAN, 0.0, 0.0], 4, Metric::L2).is_err());
    let c = FlatCoarse::new(vec![0.0; 8], 4, Metric::L2).unwrap();
    let (mut l, mut k) = (vec![0u32; 2], vec![0f32; 2]);
    // A ragged query buffer, and output buffers of the wrong length.
    assert!(c.search(&[0.0; 5], 1, &mut l[..1], &mut k[..1]).is_err());
    assert!(c.search(&[0.0; 4], 1, &mut l, &mut k).is_err());
}

#[test]
fn hnsw_coarse_finds_nearly_the_exact_lists() {
    let dim = 24;
    let centroids = uniform(2_000, dim, 5);
    let queries = uniform(200, dim, 6);
    for metric in [Metric::L2, Metric::InnerProduct] {
        let mut c = centroids.clone();
        if metric == Metric::InnerProduct {
            // Inner-product indexes have unit centroids (spherical k-means).
            normalize_l2(&mut c, dim).unwrap();
        }
        let flat = FlatCoarse::new(c.clone(), dim, metric).unwrap();
        let mut hnsw = HnswCoarse::build(c, dim, metric, 16).unwrap();
        assert_eq!(hnsw.nlist(), 2_000);
        let nprobe = 10;
        let run = |q: &dyn CoarseQuantizer| {
            let (mut l, mut k) = (vec![0u32; 200 * nprobe], vec![0f32; 200 * nprobe]);
            q.search(&queries, nprobe, &mut l, &mut k).unwrap();
            (l, k)
        };
        let (exact, exact_keys) = run(&flat);
        let recall = |found: &[u32]| {
            let hits: usize = found
                .chunks(nprobe)
                .zip(exact.chunks(nprobe))
                .map(|(f, e)| f.iter().filter(|l| e.contains(l)).count())
                .sum();
            hits as f64 / exact.len() as f64
        };
        let (lists, keys) = run(&hnsw);
        assert!(recall(&lists) >= 0.95, "{metric:?}: recall {}", recall(&lists));
        // Keys are the exact keys of the lists found (compared where both found the same).
        for ((l, k), (el, ek)) in lists.iter().zip(&keys).zip(exact.iter().zip(&exact_keys)) {
            if l == el {
                assert!((k - ek).abs() <= 1e-4 * ek.abs().max(1.0));
            }
        }
        // A wider beam for one call equals the same beam set on the quantizer.
        let (mut per_call, mut per_call_keys) = (vec![0u32; 200 * nprobe], vec![0f32; 200 * nprobe]);
        hnsw.search_with_ef(&queries, nprobe, Some(400), &mut per_call, &mut per_call_keys).unwrap();
        // A wider beam finds at least as much. (0.98: the graph is built in parallel, and
        // one build in about a dozen under load gave 0.9895.)
        hnsw.set_ef(400);
        let (wide, _) = run(&hnsw);
        assert!(recall(&wide) >= recall(&lists) - 1e-9 && recall(&wide) >= 0.98, "{}", recall(&wide));
        assert_eq!(per_call, wide);
        // The flat quantizer is exact whatever the beam.
        let (mut l1, mut k1) = (vec![0u32; 200 * nprobe], vec![0f32; 200 * nprobe]);
        flat.search_with_ef(&queries, nprobe, Some(1), &mut l1, &mut k1).unwrap();
        assert_eq!(l1, exact);
    }
}

#[test]
fn ivf_over_an_hnsw_coarse_quantizer_searches_saves_and_merges() {
    let dim = 16;
    let data = uniform(6_000, dim, 7);
    let queries = uniform(40, dim, 8);
    let params = IvfParams::new(64).with_hnsw(8);
    assert_eq!(params.coarse, CoarseKind::Hnsw { m: 8 });
    let mut index = IvfIndex::new(dim, Metric::L2, params.clone(), FlatCodec::new(dim, Metric::L2).unwrap()).unwrap();
    assert_eq!(index.name(), "IVF64_HNSW8,Flat");
    index.train(&data).unwrap();
    index.add(&data).unwrap();
    assert!(index.coarse().is_some() && index.memory_usage().trained > 64 * dim * 4);
    // Every list probed: exact (an nprobe of nlist asks the graph for every node).
    let truth = knn_exact(&data, &queries, dim, 10, Metric::L2).unwrap();
    let all = index.search(&queries, 10, &IvfSearch { nprobe: Some(64), filter: None, coarse_ef: None }).unwrap();
    assert_eq!(all.ids(), truth.ids());

    // Written and read back: same answers, same fingerprint.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ivf-hnsw.vq");
    let mut w = ContainerWriter::create(&path).unwrap();
    index.write_sections(&mut w, "t").unwrap();
    w.finish().unwrap();
    let back = IvfIndex::<FlatCodec>::read_sections(&ContainerReader::open(&path).unwrap(), "t").unwrap();
    assert_eq!(back.fingerprint(), index.fingerprint());
    let opts = IvfSearch { nprobe: Some(4), filter: None, coarse_ef: None };
    assert_eq!(back.search(&queries, 10, &opts).unwrap(), index.search(&queries, 10, &opts).unwrap());

    // A flat-coarse index with the same nlist is a different index: refused on merge.
    let mut flat =
        IvfIndex::new(dim, Metric::L2, IvfParams::new(64), FlatCodec::new(dim, Metric::L2).unwrap()).unwrap();
    flat.train(&data).unwrap();
    assert!(index.merge_from(flat, 1 << 40).is_err());

    // Residual codecs go through the graph for their training residuals and the adds too.
    let mut pq = IvfIndex::new(dim, Metric::L2, params, PqCodec::new(dim, Metric::L2, 4, 6).unwrap()).unwrap();
    pq.train(&data).unwrap();
    pq.add(&data).unwrap();
    let hits = pq.search(&queries, 10, &IvfSearch { nprobe: Some(64), filter: None, coarse_ef: None }).unwrap();
    assert_eq!(hits.num_queries(), 40);
    assert!(hits.iter().all(|(ids, _)| ids.len() == 10));
}

#[test]
fn bad_hnsw_m_is_refused() {
    let r = IvfIndex::new(4, Metric::L2, IvfParams::new(8).with_hnsw(1), FlatCodec::new(4, Metric::L2).unwrap());
    assert!(r.is_err());
}
