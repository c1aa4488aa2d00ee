//! The two forms of layer-0 lists (open blocks, frozen bytes; see `hnsw`'s module docs): packing
//! changes no list and no result, at both id widths; inserts into a packed graph open lists
//! while searches read them; files written from either form load to the same graph.
//!
//! Unit tests: under `cfg(test)` the arena's chunks are small (`arena::BASE` = 16 slots), so
//! the open blocks that inserts into a packed graph hand out cross many chunk boundaries.

use std::sync::atomic::{AtomicBool, Ordering};

use vq_distance::Metric;

use crate::{FlatStorage, Hnsw, HnswParams};

/// `n` pseudo-random vectors (a fixed hash of the position; no two alike).
pub(super) fn vectors(n: usize, dim: usize, salt: u64) -> Vec<f32> {
    (0..n * dim)
        .map(|i| {
            let mut z = (i as u64 ^ salt).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xabcd;
            z = (z ^ (z >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            (z >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// Every list of every layer, by slot.
fn lists(index: &Hnsw<FlatStorage>) -> Vec<Vec<Vec<u32>>> {
    let n = index.slots.load(Ordering::Acquire);
    let mut buf = Vec::new();
    (0..n)
        .map(|slot| {
            (0..=index.level_of(slot))
                .map(|layer| {
                    index.read_list(slot, layer, &mut buf);
                    buf.clone()
                })
                .collect()
        })
        .collect()
}

fn params() -> HnswParams {
    HnswParams { ef_construction: 48, ..HnswParams::with_m(6) }
}

#[test]
fn packing_changes_no_list_and_no_result_at_either_id_width() {
    let (dim, n) = (6, 1500);
    let data = vectors(n, dim, 1);
    let mut index = Hnsw::new(dim, Metric::L2, params()).unwrap();
    index.add(&data).unwrap();
    assert_eq!(index.open_lists(), n, "inserts leave every list open");
    let (want_lists, want_hits) = (lists(&index), index.search_batch(&data[..200 * dim], 7, Some(24)).unwrap());
    let open_bytes = index.memory_usage().links;
    for width in [4, 3] {
        index.repack(width);
        assert_eq!(index.open_lists(), 0);
        assert_eq!(index.frozen.width, width);
        assert_eq!(lists(&index), want_lists, "width {width}");
        assert_eq!(index.search_batch(&data[..200 * dim], 7, Some(24)).unwrap(), want_hits, "width {width}");
        assert!(index.memory_usage().links < open_bytes, "width {width}: packed lists take less memory");
    }
    // A packed graph saves the same file content as the open one loads from.
    let dir = tempfile::tempdir().unwrap();
    index.save(dir.path().join("packed.vq")).unwrap();
    let loaded = Hnsw::<FlatStorage>::load(dir.path().join("packed.vq")).unwrap();
    assert_eq!(loaded.open_lists(), 0, "a load packs the lists");
    assert_eq!(lists(&loaded), want_lists);
    assert_eq!(loaded.search_batch(&data[..200 * dim], 7, Some(24)).unwrap(), want_hits);
}

#[test]
fn inserts_into_a_packed_graph_open_lists_while_searches_read_them() {
    let (dim, n0, n1) = (6, 600, 900);
    let data = [vectors(n0, dim, 2), vectors(n1, dim, 3)].concat();
    let n = n0 + n1;
    let mut index = Hnsw::new(dim, Metric::L2, params()).unwrap();
    index.add(&data[..n0 * dim]).unwrap();
    index.shrink_to_fit();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (index, data, done) = (&index, &data, &done);
        s.spawn(move || {
            for i in n0..n {
                index.insert(i as u64, &data[i * dim..(i + 1) * dim]).unwrap();
            }
            done.store(true, Ordering::Release);
        });
        for t in 0..2usize {
            s.spawn(move || {
                let mut r = t;
                while !done.load(Ordering::Acquire) {
                    r += 1;
                    let q = &data[(r * 37 % n0) * dim..(r * 37 % n0 + 1) * dim];
                    let hits = index.search(q, 5, Some(16)).unwrap();
                    assert!(hits.iter().all(|&(id, _)| (id as usize) < n), "{hits:?}");
                    assert!(hits.windows(2).all(|w| w[0].1 <= w[1].1));
                    if r % 16 == 0 {
                        let report = index.check_graph();
                        assert_eq!((report.over_degree, report.self_loops, report.duplicate_edges), (0, 0, 0));
                    }
                }
            });
        }
    });
    assert!(index.open_lists() > n1, "new nodes and the packed nodes they linked to are open");
    let report = index.check_graph();
    assert_eq!((report.nodes, report.over_degree, report.self_loops, report.duplicate_edges), (n, 0, 0, 0));
    // A few nodes may lose every in-link to pruning (m = 6), as in any build; that inserts into
    // packed lists lose no link is the exact test below.
    assert!(report.unreachable <= n / 100, "{report:?}");
    // Every vector finds itself, from either form.
    let before = lists(&index);
    let find_all = |index: &Hnsw<FlatStorage>| {
        let hits = index.search_batch(&data, 1, Some(32)).unwrap();
        (0..n).filter(|&i| hits.get(i).unwrap().0[0] == i as u64).count()
    };
    let found = find_all(&index);
    assert!(found >= n * 99 / 100, "{found} of {n} vectors found themselves");
    index.shrink_to_fit();
    assert_eq!(lists(&index), before, "packing a partly open graph keeps its lists");
    assert_eq!(find_all(&index), found);
}

#[test]
fn inserts_build_the_same_graph_on_packed_lists_as_on_open_ones() {
    let (dim, n0, n1) = (6, 400, 300);
    let data = [vectors(n0, dim, 6), vectors(n1, dim, 7)].concat();
    // One thread: the builds are deterministic, so both graphs start equal.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let run = |pack: bool| {
        pool.install(|| {
            let mut index = Hnsw::new(dim, Metric::L2, params()).unwrap();
            index.add(&data[..n0 * dim]).unwrap();
            if pack {
                index.shrink_to_fit();
            }
            for i in n0..n0 + n1 {
                index.insert(i as u64, &data[i * dim..(i + 1) * dim]).unwrap();
            }
            (lists(&index), index.search_batch(&data, 3, Some(24)).unwrap())
        })
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn slot_reuse_and_compact_give_the_same_graph_from_packed_lists_as_from_open_ones() {
    let (dim, n) = (6, 500);
    let data = vectors(n, dim, 4);
    let fresh = vectors(50, dim, 5);
    let ids: Vec<u64> = (1000..1050).collect();
    // One thread: the builds are deterministic, so both graphs start equal.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let run = |pack: bool| {
        pool.install(|| {
            let mut index = Hnsw::new(dim, Metric::L2, params()).unwrap();
            index.add(&data).unwrap();
            if pack {
                index.shrink_to_fit();
            }
            for id in (0..n as u64).step_by(5) {
                index.mark_deleted(id).unwrap();
            }
            index.add_with_ids_reusing_deleted(&fresh, &ids).unwrap();
            let reused = lists(&index);
            assert_eq!(index.search(&fresh[..dim], 1, Some(32)).unwrap()[0].0, 1000);
            index.compact();
            assert_eq!(index.open_lists(), 0, "compact leaves packed lists");
            let report = index.check_graph();
            assert_eq!(
                (report.nodes, report.over_degree, report.self_loops, report.duplicate_edges),
                (n - 50, 0, 0, 0)
            );
            (reused, lists(&index), index.search_batch(&data, 3, Some(32)).unwrap())
        })
    };
    assert_eq!(run(true), run(false));
}

/// The lists a prepared pack holds, if any.
fn prepared_ptr(index: &Hnsw<FlatStorage>) -> Option<*const u8> {
    index.prepared.lock().unwrap().as_ref().map(|p| p.frozen.bytes.as_ptr())
}

/// `prepare_shrink` packs beside searches; `shrink_to_fit` installs that pack only while no
/// change to the lists came between: an insert (which claims slots) or a reuse of deleted
/// slots (which does not) makes it pack anew, and packing changes no list either way.
#[test]
fn a_prepared_pack_is_installed_only_while_it_matches_the_lists() {
    let (dim, n) = (6, 800);
    let data = vectors(n + 60, dim, 8);
    let mut index = Hnsw::new(dim, Metric::L2, params()).unwrap();
    index.add(&data[..n * dim]).unwrap();
    let open = lists(&index);
    let links = index.memory_usage().links;
    index.prepare_shrink();
    let ptr = prepared_ptr(&index).expect("a pack was prepared");
    assert_eq!(index.open_lists(), n, "preparing opens and closes nothing");
    assert!(index.memory_usage().links > links, "the prepared copy is counted");
    index.shrink_to_fit();
    assert_eq!((index.frozen.bytes.as_ptr(), index.open_lists()), (ptr, 0), "the prepared pack was installed");
    assert_eq!(lists(&index), open);
    assert!(prepared_ptr(&index).is_none() && index.memory_usage().links < links);

    // An insert after the pack was prepared.
    index.prepare_shrink();
    index.insert(n as u64, &data[n * dim..(n + 1) * dim]).unwrap();
    assert!(prepared_ptr(&index).is_none(), "the insert dropped it");
    let before = lists(&index);
    index.shrink_to_fit();
    assert_eq!(lists(&index), before);

    // Deleted slots reused after the pack was prepared: the slot count does not change.
    for id in (0..n as u64).step_by(9) {
        index.mark_deleted(id).unwrap();
    }
    index.prepare_shrink();
    let ids: Vec<u64> = (5000..5050).collect();
    index.add_with_ids_reusing_deleted(&data[(n + 1) * dim..(n + 51) * dim], &ids).unwrap();
    assert!(prepared_ptr(&index).is_none(), "the reuse dropped it");
    let before = lists(&index);
    index.shrink_to_fit();
    assert_eq!(lists(&index), before);
    assert_eq!(index.search(&data[(n + 1) * dim..(n + 2) * dim], 1, Some(32)).unwrap()[0].0, 5000);
}

/// Packs prepared on one thread while another inserts: whichever pack is installed, the
/// lists are the graph's.
#[test]
fn packs_prepared_beside_inserts_never_install_stale_lists() {
    let (dim, n0, n1) = (6, 500, 700);
    let data = vectors(n0 + n1, dim, 9);
    let mut index = Hnsw::new(dim, Metric::L2, params()).unwrap();
    index.add(&data[..n0 * dim]).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (index, data, done) = (&index, &data, &done);
        s.spawn(move || {
            for i in n0..n0 + n1 {
                index.insert(i as u64, &data[i * dim..(i + 1) * dim]).unwrap();
            }
            done.store(true, Ordering::Release);
        });
        s.spawn(move || {
            while !done.load(Ordering::Acquire) {
                index.prepare_shrink();
                let hits = index.search(&data[..dim], 3, Some(16)).unwrap();
                assert!(hits.iter().all(|&(id, _)| (id as usize) < n0 + n1));
            }
        });
    });
    let before = lists(&index);
    index.shrink_to_fit();
    assert_eq!(lists(&index), before);
    index.prepare_shrink();
    index.shrink_to_fit();
    assert_eq!(lists(&index), before);
    let report = index.check_graph();
    assert_eq!((report.nodes, report.over_degree, report.duplicate_edges), (n0 + n1, 0, 0));
}
