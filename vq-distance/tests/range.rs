//! `range_exact` against filtering every pair with the scalar oracle, the blocked path against
//! the per-pair path on every SIMD level this CPU can run, and every documented error and edge
//! case.

use proptest::prelude::*;
use vq_distance::{Error, Kernels, Metric, RangeResult, SimdLevel, range_exact, range_exact_with, reference};

const METRICS: [Metric; 3] = [Metric::L2, Metric::InnerProduct, Metric::Cosine];

fn levels() -> Vec<Kernels> {
    [SimdLevel::Portable, SimdLevel::Neon, SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .filter_map(Kernels::for_level)
        .collect()
}

/// Vectors with no zero component, so that no row has norm zero for cosine (not even after
/// shrinking, which drives values to zero).
fn dataset(max_n: usize, max_dim: usize) -> impl Strategy<Value = (usize, Vec<f32>, Vec<f32>)> {
    let value = || (-1.0f32..1.0).prop_map(|v| if v == 0.0 { 0.5 } else { v });
    (1usize..max_dim, 0usize..max_n, 1usize..30).prop_flat_map(move |(dim, n, nq)| {
        (Just(dim), prop::collection::vec(value(), n * dim), prop::collection::vec(value(), nq * dim))
    })
}

/// A radius inside the spread of the scores of `queries` against `base`: the score of the
/// pair picked by `pick` (a fraction of all pairs).
fn radius_among(metric: Metric, base: &[f32], queries: &[f32], dim: usize, pick: f64) -> f32 {
    let mut scores: Vec<f64> = queries
        .chunks_exact(dim)
        .flat_map(|q| base.chunks_exact(dim).map(move |y| reference::score(metric, q, y)))
        .collect();
    if scores.is_empty() {
        return 1.0;
    }
    scores.sort_by(f64::total_cmp);
    scores[((scores.len() - 1) as f64 * pick) as usize] as f32
}

/// Hits are sorted best first, ties to the smaller id, and `lims` frames them.
fn assert_well_formed(got: &RangeResult, metric: Metric, nq: usize) {
    assert_eq!(got.num_queries(), nq);
    assert_eq!(got.lims().len(), nq + 1);
    assert_eq!(*got.lims().last().unwrap(), got.total_hits());
    for (q, (ids, scores)) in got.iter().enumerate() {
        for i in 1..ids.len() {
            let (a, b) = (metric.key_from_score(scores[i - 1]), metric.key_from_score(scores[i]));
            assert!(a < b || (a == b && ids[i - 1] < ids[i]), "query {q}: hits {} and {i} out of order", i - 1);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Against the f64 oracle: every hit is within the radius and scored right, and every
    /// vector clearly within it is a hit (a vector within rounding of the radius may go either
    /// way).
    #[test]
    fn f32_range_equals_filtering_every_pair((dim, base, queries) in dataset(300, 40), pick in 0.0f64..1.0) {
        for kern in levels() {
            for metric in METRICS {
                let radius = radius_among(metric, &base, &queries, dim, pick);
                let got = range_exact_with(&kern, &base, &queries, dim, radius, metric).unwrap();
                assert_well_formed(&got, metric, queries.len() / dim);
                for (q, (ids, scores)) in got.iter().enumerate() {
                    let query = &queries[q * dim..][..dim];
                    let mut want = Vec::new();
                    for (j, y) in base.chunks_exact(dim).enumerate() {
                        let s = reference::score(metric, query, y);
                        let tol = 1e-4 * (1.0 + s.abs());
                        let clearly_in = if metric.smaller_is_better() { s < f64::from(radius) - tol } else { s > f64::from(radius) + tol };
                        if clearly_in {
                            want.push(j as u64);
                        }
                    }
                    for &w in &want {
                        prop_assert!(ids.contains(&w), "{} {} query {}: vector {} is within {} but missing", kern.level(), metric, q, w, radius);
                    }
                    for (&id, &s) in ids.iter().zip(scores) {
                        let truth = reference::score(metric, query, &base[id as usize * dim..][..dim]);
                        prop_assert!((f64::from(s) - truth).abs() <= 1e-4 * (1.0 + truth.abs()), "score {} vs {}", s, truth);
                        prop_assert!(metric.within(s, radius), "hit {} scored {} is not within {}", id, s, radius);
                    }
                }
            }
        }
    }

    /// The blocked path (a batch of queries) and the per-pair path (one query at a time) keep
    /// exactly the same vectors, even with the radius set to a pair's own score (the boundary
    /// the blocked form's rounding bound must cover).
    #[test]
    fn blocked_path_equals_per_pair_path((dim, base, queries) in dataset(200, 70), pair in any::<prop::sample::Index>(), nudge in -1i32..=1) {
        let nb = base.len() / dim;
        prop_assume!(nb > 0);
        let nq = queries.len() / dim;
        for kern in levels() {
            for metric in METRICS {
                // The pair's own per-pair score, from a one-query search that keeps everything.
                let j = pair.index(nb * nq);
                let everything = if metric.smaller_is_better() { f32::INFINITY } else { f32::NEG_INFINITY };
                let all = range_exact_with(&kern, &base, &queries[j / nb * dim..][..dim], dim, everything, metric).unwrap();
                let mut radius = all.scores()[all.ids().iter().position(|&id| id as usize == j % nb).unwrap()];
                radius = match nudge { -1 => radius.next_down(), 1 => radius.next_up(), _ => radius };
                let batch = range_exact_with(&kern, &base, &queries, dim, radius, metric).unwrap();
                for (qi, query) in queries.chunks_exact(dim).enumerate() {
                    let alone = range_exact_with(&kern, &base, query, dim, radius, metric).unwrap();
                    prop_assert_eq!(batch.get(qi).unwrap(), alone.get(0).unwrap(), "{} {} query {} radius {}", kern.level(), metric, qi, radius);
                }
            }
        }
    }

    /// Small integers make many exact ties and exact arithmetic: the hits are exactly the
    /// oracle's, ties in id order.
    #[test]
    fn u8_range_is_exact(
        (dim, n, nq) in (1usize..64, 0usize..400, 1usize..20),
        seed in prop::collection::vec(0u8..4, 64 * 420),
        radius in 0u32..200,
    ) {
        let base = &seed[..n * dim];
        let queries = &seed[n * dim..(n + nq) * dim];
        for kern in levels() {
            for metric in [Metric::L2, Metric::InnerProduct] {
                let radius = radius as f32 / if metric == Metric::L2 { 1.0 } else { 8.0 };
                let got = range_exact_with(&kern, base, queries, dim, radius, metric).unwrap();
                for (q, (ids, scores)) in got.iter().enumerate() {
                    let query = &queries[q * dim..][..dim];
                    let mut want: Vec<(u64, f32)> = base
                        .chunks_exact(dim)
                        .enumerate()
                        .map(|(j, y)| (j as u64, reference::score(metric, query, y) as f32))
                        .filter(|&(_, s)| metric.within(s, radius))
                        .collect();
                    want.sort_by(|a, b| metric.key_from_score(a.1).total_cmp(&metric.key_from_score(b.1)).then(a.0.cmp(&b.0)));
                    let want_ids: Vec<u64> = want.iter().map(|h| h.0).collect();
                    let want_scores: Vec<f32> = want.iter().map(|h| h.1).collect();
                    prop_assert_eq!(ids, &want_ids[..], "query {} at {} {}", q, kern.level(), metric);
                    prop_assert_eq!(scores, &want_scores[..]);
                }
            }
        }
    }
}

#[test]
fn infinite_radii_keep_everything_or_nothing() {
    let dim = 3;
    let base: Vec<f32> = (0..dim * 50).map(|i| (i % 7) as f32 - 3.0).collect();
    let queries = &base[..dim * 12];
    for metric in METRICS {
        let (all, none) = if metric.smaller_is_better() {
            (f32::INFINITY, f32::NEG_INFINITY)
        } else {
            (f32::NEG_INFINITY, f32::INFINITY)
        };
        let got = range_exact(&base, queries, dim, all, metric).unwrap();
        assert_eq!(got.total_hits(), 12 * 50, "{metric}");
        assert!(got.iter().all(|(ids, _)| ids.len() == 50));
        let got = range_exact(&base, queries, dim, none, metric).unwrap();
        assert_eq!(got.total_hits(), 0, "{metric}");
        assert_eq!(got.num_queries(), 12);
    }
}

#[test]
fn radius_is_strict_like_faiss() {
    // Vector 1 is at squared distance exactly 1 from the query, vector 0 at 0.
    let base = [0.0f32, 0.0, 1.0, 0.0];
    let got = range_exact(&base, &[0.0f32, 0.0], 2, 1.0, Metric::L2).unwrap();
    assert_eq!(got.get(0).unwrap().0, &[0]);
    let got = range_exact(&base, &[0.0f32, 0.0], 2, 1.0f32.next_up(), Metric::L2).unwrap();
    assert_eq!(got.get(0).unwrap().0, &[0, 1]);
    // Inner product 1 with vector 1; a radius of 1 keeps only what is above it.
    let got = range_exact(&base, &[1.0f32, 0.0], 2, 0.5, Metric::InnerProduct).unwrap();
    assert_eq!(got.get(0).unwrap(), (&[1u64][..], &[1.0f32][..]));
    let got = range_exact(&base, &[1.0f32, 0.0], 2, 1.0, Metric::InnerProduct).unwrap();
    assert_eq!(got.total_hits(), 0);
}

#[test]
fn errors_name_the_input() {
    let base = [0.0f32, 1.0, 2.0, 3.0];
    assert_eq!(range_exact(&base, &[0.0f32, 0.0], 2, f32::NAN, Metric::L2), Err(Error::NanRadius));
    assert!(matches!(
        range_exact(&base, &[0.0f32], 2, 1.0, Metric::L2),
        Err(Error::RaggedBuffer { what: "queries", .. })
    ));
    assert!(matches!(
        range_exact(&base[..3], &[0.0f32, 0.0], 2, 1.0, Metric::L2),
        Err(Error::RaggedBuffer { what: "base", .. })
    ));
    assert!(matches!(
        range_exact(&base, &[f32::NAN, 0.0], 2, 1.0, Metric::L2),
        Err(Error::NonFinite { what: "queries", row: 0, component: 0 })
    ));
    assert!(matches!(
        range_exact(&base, &[0.0f32, 0.0], 2, 0.5, Metric::Cosine),
        Err(Error::ZeroNorm { what: "queries", .. })
    ));
}

#[test]
fn empty_base_and_no_queries() {
    let got = range_exact::<f32>(&[], &[1.0, 2.0, 3.0, 4.0], 2, 10.0, Metric::L2).unwrap();
    assert_eq!(got.lims(), &[0, 0, 0]);
    let got = range_exact(&[1.0f32, 2.0], &[], 2, 10.0, Metric::L2).unwrap();
    assert_eq!(got.num_queries(), 0);
    assert_eq!(got.lims(), &[0]);
    assert_eq!(got.get(0), None);
}

#[test]
fn from_rows_sorts_each_query_best_first() {
    let rows = vec![vec![(7, 0.5), (3, 0.9), (2, 0.5)], vec![], vec![(1, -1.0)]];
    let got = RangeResult::from_rows(Metric::InnerProduct, rows.clone()).unwrap();
    assert_eq!(got.lims(), &[0, 3, 3, 4]);
    assert_eq!(got.ids(), &[3, 2, 7, 1]);
    assert_eq!(got.scores(), &[0.9, 0.5, 0.5, -1.0]);
    let got = RangeResult::from_rows(Metric::L2, rows).unwrap();
    assert_eq!(got.ids(), &[2, 7, 3, 1]);
}

#[test]
fn check_radii_wants_one_number_per_query() {
    use vq_distance::{Error, check_radii};
    assert!(check_radii(&[1.0, f32::INFINITY, f32::NEG_INFINITY], 3).is_ok());
    assert!(check_radii(&[], 0).is_ok());
    assert!(matches!(check_radii(&[1.0, 2.0], 3), Err(Error::Dimension { got: 2, expected: 3, .. })));
    assert!(matches!(check_radii(&[1.0, f32::NAN, 2.0], 3), Err(Error::NanRadius)));
}
