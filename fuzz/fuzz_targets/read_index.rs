//! `vq::read_index` over every index kind: whatever `index.kind` names is dispatched, then the
//! loaded index is searched (plain, filtered, k above its size, and by radius: at the best
//! hit's score and at infinity, and both at once through `range_rows`), its hits reconstructed, shrunk and grown. Any error is fine; a
//! panic, a hang, an allocation out of proportion to the input, or an id answered twice is a
//! finding.
#![no_main]

mod structured;

use libfuzzer_sys::fuzz_target;
use vq::{IdBitset, SearchParams};

fuzz_target!(|data: &[u8]| {
    let Some((_, r)) = structured::container(data) else { return };
    let Ok(mut index) = vq::read_index_from_container(&r) else { return };
    let Some(q) = structured::query(index.dim()) else { return };
    let evens = |id: u64| id % 2 == 0;
    let one = IdBitset::from_ids(&[1]);
    for k in [1, 10, index.len() + 2] {
        for params in [
            SearchParams { k, ef: Some(16), refine_k: Some(2), ..Default::default() },
            SearchParams { k, filter: Some(&evens), ..Default::default() },
            SearchParams { k, filter: Some(&one), ..Default::default() },
        ] {
            let Ok(hits) = index.search_with(&q, &params) else { continue };
            let (ids, scores) = hits.get(0).expect("one query");
            assert_unique(ids.iter().copied(), "search");
            let _ = index.reconstruct_batch(ids);
            let everything = if index.metric().smaller_is_better() { f32::INFINITY } else { f32::NEG_INFINITY };
            for radius in scores.first().into_iter().copied().chain([everything]) {
                let Ok(range) = index.range_search_with(&q, radius, &params) else { continue };
                assert_unique(range.get(0).expect("one query").0.iter().copied(), "range search");
                // Per-query radii: the query twice, at this radius and at infinity.
                let pair = [q.as_slice(), q.as_slice()].concat();
                let Ok(rows) = index.range_rows(&pair, &[radius, everything], &params) else { continue };
                assert_eq!(rows.len(), 2, "range_rows: one row per query");
                for row in rows {
                    assert_unique(row.iter().map(|h| h.0), "range_rows");
                }
            }
        }
    }
    let _ = index.reconstruct(0);
    let _ = index.remove_ids(&[0, 1, 2]);
    let _ = index.add_with_ids(&q, &[u64::MAX - 1]);
    let _ = index.search(&q, 5);
    let _ = index.memory_usage();
});

/// Fails if `ids` holds an id twice.
fn assert_unique(ids: impl Iterator<Item = u64>, by: &str) {
    let ids: Vec<u64> = ids.collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "an id answered twice by {by}");
}
