//! HNSW range search against exact range search (its slow twin): within the radius, best
//! first, no id twice, the exact scores, the exact answer's hits found; balls far larger than
//! the beam; deletes, filters (the walk and the exact path) and edge radii.

use std::collections::HashSet;

mod common;

use common::clustered;
use vq_distance::{Error as DError, IdFilter, IdSet, Metric, knn_exact, range_exact};
use vq_graph::{Error, Hnsw, HnswParams};

const DIM: usize = 24;

/// A radius that the median query's `n`-th exact neighbour lies on.
fn radius_at(base: &[f32], queries: &[f32], n: usize, metric: Metric) -> f32 {
    let deep = knn_exact(base, queries, DIM, n, metric).unwrap();
    let mut nth: Vec<f32> = deep.iter().map(|(_, s)| s[n - 1]).collect();
    nth.sort_by(f32::total_cmp);
    nth[nth.len() / 2]
}

/// Checks one answer against the exact one; returns (hits found, exact hits).
fn check_row(metric: Metric, radius: f32, got: (&[u64], &[f32]), want: (&[u64], &[f32]), what: &str) -> (usize, usize) {
    let (ids, scores) = got;
    assert!(scores.iter().all(|&s| metric.within(s, radius)), "{what}: a hit outside the radius");
    let key = |s: f32| metric.key_from_score(s);
    assert!(scores.windows(2).all(|w| key(w[0]) <= key(w[1])), "{what}: not best first");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "{what}: an id twice");
    let exact: std::collections::HashMap<u64, f32> = want.0.iter().copied().zip(want.1.iter().copied()).collect();
    let mut found = 0;
    for (id, s) in ids.iter().zip(scores) {
        if let Some(&e) = exact.get(id) {
            found += 1;
            assert!((s - e).abs() <= 1e-4 * (1.0 + e.abs()), "{what}: id {id} scored {s}, exactly {e}");
        }
    }
    (found, want.0.len())
}

#[test]
fn range_search_finds_the_exact_ball_even_when_it_is_far_larger_than_the_beam() {
    let (all, nq) = (clustered(8_100, DIM, 21), 100);
    let (base, queries) = all.split_at(8_000 * DIM);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let index = Hnsw::new(DIM, metric, HnswParams::default()).unwrap();
        index.add(base).unwrap();
        // Up to a few hundred hits a query, against a beam of 16.
        let radius = radius_at(base, queries, 150, metric);
        let truth = range_exact(base, queries, DIM, radius, metric).unwrap();
        let got = index.range_search_batch(queries, radius, Some(16), None).unwrap();
        assert_eq!(got.num_queries(), nq);
        let (mut found, mut total, mut past_beam) = (0, 0, 0);
        for (q, (row, want)) in got.iter().zip(truth.iter()).enumerate() {
            let (f, t) = check_row(metric, radius, row, want, &format!("{metric} query {q}"));
            (found, total) = (found + f, total + t);
            past_beam += usize::from(row.0.len() > 16);
            // The one-query form answers the same.
            let one = index.range_search(&queries[q * DIM..(q + 1) * DIM], radius, Some(16), None).unwrap();
            assert!(one.iter().map(|h| h.0).eq(row.0.iter().copied()), "{metric} query {q}: one query vs batch");
        }
        let recall = found as f64 / total as f64;
        // Inner product is not a metric: small-norm vectors end with few in-links.
        let floor = if metric == Metric::InnerProduct { 0.94 } else { 0.99 };
        assert!(recall >= floor, "{metric}: range recall {recall:.4} over {total} hits");
        assert!(past_beam >= nq / 3, "{metric}: only {past_beam} queries had more hits than the beam");
    }
}

#[test]
fn deleted_and_filtered_ids_never_come_back_and_selective_filters_are_exact() {
    let all = clustered(4_050, DIM, 22);
    let (base, queries) = all.split_at(4_000 * DIM);
    let index = Hnsw::new(DIM, Metric::L2, HnswParams::default()).unwrap();
    index.add(base).unwrap();
    for id in (0..4_000).step_by(3) {
        index.mark_deleted(id).unwrap();
    }
    let radius = radius_at(base, queries, 100, Metric::L2);
    let truth = range_exact(base, queries, DIM, radius, Metric::L2).unwrap();
    let even = |id: u64| id.is_multiple_of(2);
    // 1 in 100 passes: few enough for the default `brute_force_walk`, so the nodes are scored
    // exactly, whether the filter is a predicate (every node asked) or lists its ids (those
    // scored alone, deleted ones skipped, an id the index does not hold ignored).
    let rare = |id: u64| id % 100 == 1;
    let rare_set: IdSet = (0..4_000u64).filter(|&id| rare(id)).chain([u64::MAX - 1]).collect();
    let cases: [(Option<&dyn IdFilter>, bool); 4] =
        [(None, false), (Some(&even), false), (Some(&rare), true), (Some(&rare_set), true)];
    for (filter, exact) in cases {
        let got = index.range_search_batch(queries, radius, Some(32), filter).unwrap();
        let (mut found, mut total) = (0, 0);
        for (q, ((ids, scores), (tids, tscores))) in got.iter().zip(truth.iter()).enumerate() {
            let passes = |id: &u64| !id.is_multiple_of(3) && filter.is_none_or(|f| f.accepts(*id));
            assert!(ids.iter().all(passes), "query {q}: a deleted or filtered id");
            let (wids, wscores): (Vec<u64>, Vec<f32>) =
                tids.iter().zip(tscores).filter(|(id, _)| passes(id)).map(|(&i, &s)| (i, s)).unzip();
            let (f, t) = check_row(Metric::L2, radius, (ids, scores), (&wids, &wscores), &format!("query {q}"));
            (found, total) = (found + f, total + t);
            if exact {
                assert_eq!(ids, &wids[..], "query {q}: the selective filter's exact answer");
            }
        }
        assert!(found as f64 >= 0.98 * total as f64, "filter {}: found {found} of {total}", filter.is_some());
    }
}

#[test]
fn edge_radii_bad_input_and_the_empty_graph() {
    let base = clustered(500, DIM, 23);
    let q = &base[..2 * DIM];
    let index = Hnsw::new(DIM, Metric::L2, HnswParams::default()).unwrap();
    let empty = index.range_search_batch(q, f32::INFINITY, None, None).unwrap();
    assert_eq!((empty.num_queries(), empty.total_hits()), (2, 0));
    index.add(&base).unwrap();
    // +∞ keeps every node (those without in-links too); −∞ keeps none.
    let all = index.range_search(&q[DIM..], f32::INFINITY, None, None).unwrap();
    assert_eq!(all.iter().map(|h| h.0).collect::<HashSet<_>>(), (0..500).collect());
    assert_eq!(index.range_search_batch(q, f32::NEG_INFINITY, None, None).unwrap().total_hits(), 0);
    // The query itself is at distance 0, which is not below a radius of 0.
    assert!(index.range_search(&q[..DIM], 0.0, None, None).unwrap().is_empty());
    assert_eq!(index.range_search(&q[..DIM], f32::MIN_POSITIVE, None, None).unwrap()[0].0, 0);
    assert!(matches!(index.range_search(&q[..DIM], f32::NAN, None, None), Err(Error::Input(DError::NanRadius))));
    assert!(matches!(index.range_search_batch(q, f32::NAN, None, None), Err(Error::Input(DError::NanRadius))));
    assert!(index.range_search_batch(&q[..DIM + 1], 1.0, None, None).is_err(), "ragged queries");
    let mut nan = q.to_vec();
    nan[3] = f32::NAN;
    assert!(index.range_search_batch(&nan, 1.0, None, None).is_err(), "a NaN query");
    assert!(index.range_search(&q[..DIM - 1], 1.0, None, None).is_err(), "a short query");
}
