//! HNSW files: `Hnsw::read_from` over flat and SQ-quantized storage, then searches of every
//! kind (range searches' walks included), an insert, the structural report and `compact`. Any
//! error is fine; a panic, a hang, an allocation out of proportion to the input, an id answered
//! twice or a range hit outside the radius is a finding.
#![no_main]

mod structured;

use libfuzzer_sys::fuzz_target;
use vq_graph::{FlatStorage, Hnsw, QuantizedStorage, VectorStorage};
use vq_quant::ScalarQuantizer;

fuzz_target!(|data: &[u8]| {
    let Some((_, r)) = structured::container(data) else { return };
    if let Ok(index) = Hnsw::<FlatStorage>::read_from(&r, "hnsw") {
        exercise(index);
    }
    if let Ok(index) = Hnsw::<QuantizedStorage<ScalarQuantizer>>::read_from(&r, "hnsw") {
        exercise(index);
    }
});

fn exercise<S: VectorStorage>(mut index: Hnsw<S>) {
    let Some(q) = structured::query(index.dim()) else { return };
    for k in [1, 10, index.len() + 2] {
        let hits = index.search(&q, k, Some(16)).expect("a valid query");
        let mut ids: Vec<u64> = hits.iter().map(|h| h.0).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), hits.len(), "an id answered twice");
    }
    let _ = index.search(&q, 3, None).expect("a valid query");
    // Range search at the 10th hit's score (a walk of the ball), unfiltered and filtered.
    if let Some(&(_, radius)) = index.search(&q, 10, Some(16)).expect("a valid query").last() {
        let metric = index.metric();
        for filter in [None, Some(&(|id: u64| id % 3 != 0) as &dyn Fn(u64) -> bool)] {
            let hits = index.range_search(&q, radius, Some(4), filter).expect("a valid query");
            assert!(hits.iter().all(|h| metric.within(h.1, radius)), "a hit outside the radius");
            let mut ids: Vec<u64> = hits.iter().map(|h| h.0).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), hits.len(), "an id answered twice");
        }
    }
    let _ = index.search_filtered(&q, 5, Some(8), &|id| id % 3 != 0).expect("a valid query");
    let _ = index.search_filtered(&q, 5, Some(8), &|id| id == 1).expect("a valid query");
    let _ = index.check_graph();
    let _ = index.insert(u64::MAX - 1, &q);
    let _ = index.search(&q, 4, Some(16)).expect("a valid query");
    // Compaction walks the lists of deleted nodes, which searches may never reach.
    index.compact();
    let _ = index.search(&q, index.len() + 1, Some(16)).expect("a valid query");
}
