//! `vq::read_index` over every index kind: whatever `index.kind` names is dispatched, then the
//! loaded index is searched (plain, filtered, k above its size), shrunk and grown. Any error
//! is fine; a panic, a hang, an allocation out of proportion to the input, or an id answered
//! twice is a finding.
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
            let (ids, _) = hits.get(0).expect("one query");
            let mut unique = ids.to_vec();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), ids.len(), "an id answered twice");
        }
    }
    let _ = index.remove_ids(&[0, 1, 2]);
    let _ = index.add_with_ids(&q, &[u64::MAX - 1]);
    let _ = index.search(&q, 5);
    let _ = index.memory_usage();
});
