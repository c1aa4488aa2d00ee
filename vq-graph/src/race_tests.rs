//! Inserts racing every reader of the slot range, at arena chunk boundaries (issue 18, item 2).
//!
//! A unit test, not an integration test: under `cfg(test)` the arena's chunks are small
//! (`arena::BASE` = 16 slots), so an index of a few hundred vectors crosses a chunk boundary
//! every few inserts. Each reader walks `0..slots` somewhere (brute force for k ≥ len and for
//! selective filters, the filter's selectivity sample, save, check_graph); if the slot count
//! were published before its chunk exists, one of them would meet a missing chunk and panic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vq_distance::Metric;

use crate::arena::BASE;
use crate::{Error, FlatStorage, Hnsw, HnswParams};

/// `n` pseudo-random vectors (a fixed hash of the position; no two alike).
fn vectors(n: usize, dim: usize) -> Vec<f32> {
    (0..n * dim)
        .map(|i| {
            let mut z = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xabcd;
            z = (z ^ (z >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            (z >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Checks that every hit is an inserted vector with its true distance, best first.
fn check_hits(hits: &[(u64, f32)], q: &[f32], data: &[f32], dim: usize, n: usize) {
    for &(id, score) in hits {
        let id = id as usize;
        assert!(id < n, "id {id} was never inserted");
        let exact = l2(q, &data[id * dim..(id + 1) * dim]);
        assert!((score - exact).abs() <= 1e-4 * (1.0 + exact), "id {id}: score {score}, distance {exact}");
    }
    assert!(hits.windows(2).all(|w| w[0].1 <= w[1].1), "not sorted best first");
}

#[test]
fn inserts_racing_every_reader_across_chunk_boundaries_never_panic() {
    const { assert!(BASE <= 64, "this test relies on small chunks under cfg(test)") };
    let dim = 4;
    let n = 700; // first chunk 16 slots, then 16, 32, …, 512: six boundaries a round
    let data = vectors(n, dim);
    // Wide layer-0 lists make each new chunk a large allocation, so the window between a
    // slot being handed out and its chunk existing (if there were one) is wide.
    let params = HnswParams { m0: 512, ef_construction: 16, ..HnswParams::with_m(4) };
    let dir = tempfile::tempdir().unwrap();
    let deadline = Instant::now() + Duration::from_millis(2_500);
    let mut rounds = 0;
    while rounds < 3 || (Instant::now() < deadline && rounds < 200) {
        rounds += 1;
        let index = Hnsw::new(dim, Metric::L2, params.clone()).unwrap();
        let done = AtomicBool::new(false);
        let path = dir.path().join(format!("race-{rounds}.vq"));
        std::thread::scope(|s| {
            let (index, data, done) = (&index, &data, &done);
            s.spawn(move || {
                for i in 0..n {
                    index.insert(i as u64, &data[i * dim..(i + 1) * dim]).unwrap();
                }
                done.store(true, Ordering::Release);
            });
            for t in 0..2usize {
                let path = path.with_extension(format!("{t}"));
                s.spawn(move || {
                    let mut r = t;
                    while !done.load(Ordering::Acquire) {
                        r += 1;
                        let q = &data[(r * 37 % n) * dim..(r * 37 % n + 1) * dim];
                        match r % 6 {
                            // k at or above the count: the brute-force path over every slot.
                            0 => check_hits(&index.search(q, n + 1, None).unwrap(), q, data, dim, n),
                            // A selective filter: sampled, then brute force.
                            1 => {
                                let hits = index.search_filtered(q, 5, None, &|id| id % 40 == 0).unwrap();
                                assert!(hits.iter().all(|h| h.0 % 40 == 0));
                                check_hits(&hits, q, data, dim, n);
                            }
                            // A loose filter: sampled, then the graph.
                            2 => {
                                let hits = index.search_filtered(q, 5, Some(16), &|id| id % 2 == 0).unwrap();
                                assert!(hits.iter().all(|h| h.0 % 2 == 0));
                                check_hits(&hits, q, data, dim, n);
                            }
                            3 => index.save(&path).unwrap(),
                            4 => {
                                let report = index.check_graph();
                                assert_eq!((report.over_degree, report.self_loops), (0, 0), "{report:?}");
                            }
                            _ => match index.mark_deleted((r * 11 % n) as u64) {
                                Ok(()) | Err(Error::UnknownId(_)) => {
                                    check_hits(&index.search(q, 3, None).unwrap(), q, data, dim, n);
                                }
                                Err(e) => panic!("mark_deleted: {e}"),
                            },
                        }
                    }
                });
            }
        });
        // Whatever was saved mid-build loads as a consistent graph.
        for t in 0..2 {
            let p = path.with_extension(format!("{t}"));
            if p.exists() {
                let loaded = Hnsw::<FlatStorage>::load(&p).unwrap();
                assert_eq!(loaded.check_graph().over_degree, 0);
            }
        }
        assert_eq!(index.check_graph().nodes, n, "every insert linked");
    }
}
