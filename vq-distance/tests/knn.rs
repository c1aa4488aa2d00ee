//! `knn_exact` and `score_many_to_many` against sort-based search with the scalar oracle, on
//! every SIMD level this CPU can run, plus every documented error and edge case.

use proptest::prelude::*;
use vq_distance::{Error, Kernels, Metric, SimdLevel, knn_exact, knn_exact_with, reference, score_many_to_many};

const METRICS: [Metric; 3] = [Metric::L2, Metric::InnerProduct, Metric::Cosine];

fn levels() -> Vec<Kernels> {
    [SimdLevel::Portable, SimdLevel::Neon, SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .filter_map(Kernels::for_level)
        .collect()
}

/// Checks a float search: same number of hits, scores equal within `tol`, and wherever the
/// ids differ the two ids must score within `tol` of each other (a near-tie the blocked
/// arithmetic may order differently).
fn assert_matches_float(
    got: &vq_distance::Neighbors,
    base: &[f32],
    queries: &[f32],
    dim: usize,
    k: usize,
    metric: Metric,
) {
    let want = reference::knn(base, queries, dim, k, metric);
    for (q, (w, (ids, scores))) in want.iter().zip(got.iter()).enumerate() {
        assert_eq!(ids.len(), w.len(), "query {q}: hit count");
        let query = &queries[q * dim..][..dim];
        for (i, (&id, &s)) in ids.iter().zip(scores).enumerate() {
            let scale = 1e-4 * (1.0 + w[i].1.abs());
            assert!((f64::from(s) - w[i].1).abs() <= scale, "query {q} rank {i}: score {s} vs {}", w[i].1);
            let true_score = reference::score(metric, query, &base[id as usize * dim..][..dim]);
            assert!(id == w[i].0 || (true_score - w[i].1).abs() <= scale, "query {q} rank {i}: id {id} vs {}", w[i].0);
        }
    }
}

fn dataset(max_n: usize, max_dim: usize) -> impl Strategy<Value = (usize, Vec<f32>, Vec<f32>)> {
    (1usize..max_dim, 0usize..max_n, 1usize..30).prop_flat_map(|(dim, n, nq)| {
        (Just(dim), prop::collection::vec(-1.0f32..1.0, n * dim), prop::collection::vec(-1.0f32..1.0, nq * dim))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn f32_search_equals_sorting_everything((dim, base, queries) in dataset(300, 40), k in 1usize..40) {
        for kern in levels() {
            for metric in METRICS {
                let got = knn_exact_with(&kern, &base, &queries, dim, k, metric).unwrap();
                assert_matches_float(&got, &base, &queries, dim, k, metric);
            }
        }
    }

    /// Small integers make many exact ties, which must go to the smaller id; u8 arithmetic at
    /// these sizes is exact in every path, so ids and L2/IP scores must match exactly.
    #[test]
    fn u8_search_is_exact_with_ties_to_the_smaller_id(
        (dim, n, nq) in (1usize..64, 0usize..400, 1usize..20),
        seed in prop::collection::vec(0u8..4, 64 * 420),
        k in 1usize..30,
    ) {
        let base = &seed[..n * dim];
        let queries = &seed[n * dim..(n + nq) * dim];
        for kern in levels() {
            for metric in [Metric::L2, Metric::InnerProduct] {
                let got = knn_exact_with(&kern, base, queries, dim, k, metric).unwrap();
                let want = reference::knn(base, queries, dim, k, metric);
                for (q, (w, (ids, scores))) in want.iter().zip(got.iter()).enumerate() {
                    let want_ids: Vec<u64> = w.iter().map(|h| h.0).collect();
                    let want_scores: Vec<f32> = w.iter().map(|h| h.1 as f32).collect();
                    prop_assert_eq!(ids, &want_ids[..], "query {} at {} {}", q, kern.level(), metric);
                    prop_assert_eq!(scores, &want_scores[..]);
                }
            }
        }
    }

    #[test]
    fn many_to_many_equals_per_pair_scores((dim, base, queries) in dataset(100, 70)) {
        let nb = base.len() / dim;
        let nq = queries.len() / dim;
        for metric in METRICS {
            let mut out = vec![f32::NAN; nq * nb];
            score_many_to_many(metric, &queries, &base, dim, &mut out).unwrap();
            for (q, x) in queries.chunks_exact(dim).enumerate() {
                for (j, y) in base.chunks_exact(dim).enumerate() {
                    let want = reference::score(metric, x, y);
                    let got = out[q * nb + j];
                    prop_assert!((f64::from(got) - want).abs() <= 1e-4 * (1.0 + want.abs()), "{} q{} b{}: {} vs {}", metric, q, j, got, want);
                }
            }
        }
    }
}

#[test]
fn cosine_ignores_vector_length() {
    let base = [1.0f32, 0.0, 0.0, 10.0, 5.0, 5.0];
    let hits = knn_exact(&base, &[0.0f32, 100.0], 2, 3, Metric::Cosine).unwrap();
    let (ids, scores) = hits.get(0).unwrap();
    assert_eq!(ids, &[1, 2, 0]);
    assert!((scores[0] - 1.0).abs() < 1e-6 && (scores[1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    assert!(scores[2].abs() < 1e-6);
}

#[test]
fn k_larger_than_the_base_pads_the_flat_view_only() {
    let base = [0.5f32, 1.0, 2.0];
    for metric in METRICS {
        let hits = knn_exact(&base, &[1.5f32, 0.5], 1, 5, metric).unwrap();
        assert_eq!(hits.num_queries(), 2);
        assert_eq!(hits.k(), 5);
        let (ids, _) = hits.get(0).unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(&hits.ids()[3..5], &[u64::MAX, u64::MAX]);
        assert_eq!(&hits.scores()[3..5], &[metric.worst_score(); 2]);
    }
    let empty = knn_exact::<f32>(&[], &[1.0, 2.0], 2, 3, Metric::L2).unwrap();
    assert_eq!(empty.get(0).unwrap().0.len(), 0);
    assert_eq!(empty.ids(), &[u64::MAX; 3]);
}

/// Padding to a k far above the base would need `queries × k` entries: a typed error, not an
/// overflow panic or an abort on a huge allocation, through both selection paths (one query:
/// direct; a full register tile of queries: blocked).
#[test]
fn a_k_too_large_to_pad_is_an_error() {
    let base: Vec<f32> = (0..40).map(|i| i as f32).collect();
    for nq in [1, 16] {
        let queries: Vec<f32> = (0..2 * nq).map(|i| i as f32 * 0.5).collect();
        for k in [usize::MAX, 1 << 40, usize::MAX / 3] {
            for metric in METRICS {
                let got = knn_exact(&base, &queries, 2, k, metric);
                assert_eq!(got, Err(Error::ResultTooLarge { queries: nq, k }), "{nq} queries, k = {k}, {metric:?}");
            }
        }
    }
}

#[test]
fn bad_base_vectors_are_errors_naming_the_row() {
    // Issue 18: a base row holding NaN used to be dropped silently.
    let base = [0.0f32, 0.0, 1.0, 1.0, f32::NAN, 0.0, f32::INFINITY, 1.0, 2.0, 2.0];
    for metric in METRICS {
        assert_eq!(
            knn_exact(&base, &[1.0f32, 1.0], 2, 5, metric).unwrap_err(),
            if metric == Metric::Cosine {
                Error::ZeroNorm { what: "base", row: 0 }
            } else {
                Error::NonFinite { what: "base", row: 2, component: 0 }
            },
            "{metric}"
        );
    }
    // Finite but so large that distances overflow f32 (the probe's ±1e19): refused, for cosine
    // too, since the base is scored as given.
    let huge = [1.0f32, 1.0, 1e19, -1e19, 2.0, 2.0];
    for metric in METRICS {
        assert!(matches!(
            knn_exact(&huge, &[1.0f32, 1.0], 2, 2, metric).unwrap_err(),
            Error::NormOverflow { what: "base", row: 1, .. }
        ));
        assert!(matches!(
            knn_exact(&[1.0f32, 1.0], &huge, 2, 2, metric).unwrap_err(),
            Error::NormOverflow { what: "queries", row: 1, .. }
        ));
    }
    // The same check for the other element types: bf16 has f32's range.
    let big = vq_distance::bf16::from_f32(1e30);
    assert!(matches!(
        knn_exact(&[big, big], &[big, big], 2, 1, Metric::L2).unwrap_err(),
        Error::NormOverflow { what: "queries", row: 0, .. }
    ));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let base = [0.0f32; 8];
    assert_eq!(knn_exact(&base, &[0.0f32; 4], 0, 1, Metric::L2).unwrap_err(), Error::ZeroDimension);
    assert_eq!(knn_exact(&base, &[0.0f32; 4], 4, 0, Metric::L2).unwrap_err(), Error::ZeroK);
    assert_eq!(
        knn_exact(&base[..7], &[0.0f32; 4], 4, 1, Metric::L2).unwrap_err(),
        Error::RaggedBuffer { what: "base", len: 7, dim: 4 }
    );
    assert_eq!(
        knn_exact(&base, &[0.0f32; 5], 4, 1, Metric::L2).unwrap_err(),
        Error::RaggedBuffer { what: "queries", len: 5, dim: 4 }
    );
    let nan_query = [0.0f32, 1.0, 2.0, 3.0, 0.0, f32::NAN, 0.0, 0.0];
    assert_eq!(
        knn_exact(&base, &nan_query, 4, 1, Metric::L2).unwrap_err(),
        Error::NonFinite { what: "queries", row: 1, component: 1 }
    );
    let inf_query = [f32::NEG_INFINITY, 1.0, 2.0, 3.0];
    assert_eq!(
        knn_exact(&base, &inf_query, 4, 1, Metric::InnerProduct).unwrap_err(),
        Error::NonFinite { what: "queries", row: 0, component: 0 }
    );
    assert_eq!(
        knn_exact(&base, &[1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 4, 1, Metric::Cosine).unwrap_err(),
        Error::ZeroNorm { what: "queries", row: 1 }
    );
    assert_eq!(
        knn_exact(&[0u8; 8], &[1u8, 0, 0, 0, 0, 0, 0, 0], 4, 1, Metric::Cosine).unwrap_err(),
        Error::ZeroNorm { what: "queries", row: 1 }
    );
    let mut out = [0.0f32; 3];
    assert_eq!(
        score_many_to_many(Metric::L2, &[0.0f32; 4], &base, 4, &mut out).unwrap_err(),
        Error::OutputLength { what: "out", got: 3, expected: 2 }
    );
}

#[test]
fn results_are_the_same_on_one_and_two_threads() {
    let dim = 17;
    let base: Vec<f32> = (0..5000 * dim).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let queries: Vec<f32> = (0..300 * dim).map(|i| ((i * 104_729) % 997) as f32 / 997.0).collect();
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| knn_exact(&base, &queries, dim, 10, Metric::L2).unwrap())
    };
    assert_eq!(run(1), run(2));
}
