//! The walk's and the insert's own rules: a filtered walk gives up past its budget, the heaps'
//! packed candidates order as `Cand` does, a new node's links on layer 0.

use vq_distance::Metric;

use super::Cand;
use super::frozen_tests::vectors;
use crate::storage::VectorStorage;
use crate::{Hnsw, HnswParams};

/// A filtered walk stops once it has scored its budget (what brute force would score) and
/// leaves no result, so that the search brute-forces instead; unlimited, it answers.
#[test]
fn a_walk_over_its_budget_gives_up() {
    let dim = 8;
    let n = 2_000;
    let index = Hnsw::new(dim, Metric::L2, HnswParams::with_m(8)).unwrap();
    index.add(&vectors(n, dim, 3)).unwrap();
    let query = vectors(1, dim, 99);
    let q = index.storage.prepare(&query);
    let keep = |slot: u32| slot.is_multiple_of(10);
    let mut s = index.take_scratch();
    for (budget, answers) in [(usize::MAX, true), (n, true), (50, false)] {
        s.budget = budget;
        // ef 100 over 200 passing nodes: the walk scores several hundred nodes.
        index.search_slots(&q, 10, 100, Some(&keep), &mut s);
        assert_eq!(!s.out.is_empty(), answers, "budget {budget}: {} found", s.out.len());
        assert!(s.out.iter().all(|c| keep(c.1)));
    }
    index.give_scratch(s);
}

/// A new node links on layer 0 to every node its search found when they fit there
/// (`ef_construction ≤ 2m`), else to the heuristic's `m` at most; a graph keeping pruned
/// candidates (inner product) to `m`. Only the first `m` link back. The last node inserted
/// has received no back-link, so its list is what it chose.
#[test]
fn a_new_node_keeps_what_fits_layer_0_and_links_back_from_m() {
    // 48 dimensions, m 4: there the heuristic would keep more than m of 2m + 8 found.
    let (dim, m) = (48, 4);
    let base = vectors(600, dim, 5);
    let cases = [
        (Metric::L2, 2 * m, 2 * m),
        (Metric::Cosine, 2 * m, 2 * m),
        (Metric::InnerProduct, 2 * m, m),
        (Metric::L2, 2 * m + 8, m),
        (Metric::Cosine, 2 * m + 8, m),
    ];
    for (metric, ef_construction, chosen) in cases {
        let params = HnswParams { ef_construction, ..HnswParams::with_m(m) };
        let index = Hnsw::new(dim, metric, params).unwrap();
        index.add(&base[..599 * dim]).unwrap();
        let before: Vec<Vec<u32>> = (0..599)
            .map(|s| {
                let mut l = Vec::new();
                index.read_list(s, 0, &mut l);
                l
            })
            .collect();
        index.add(&base[599 * dim..]).unwrap();
        let mut own = Vec::new();
        index.read_list(599, 0, &mut own);
        // Past 2m found, the heuristic may keep fewer than m.
        if ef_construction > 2 * m {
            assert!((1..=chosen).contains(&own.len()), "{metric} efC {ef_construction}: {} links", own.len());
        } else {
            assert_eq!(own.len(), chosen, "{metric} efC {ef_construction}: the new node's layer-0 list");
        }
        let mut linked_back = 0;
        for (slot, old) in before.iter().enumerate() {
            let mut now = Vec::new();
            index.read_list(slot as u32, 0, &mut now);
            if now.contains(&599) && !old.contains(&599) {
                linked_back += 1;
                assert!(own.contains(&(slot as u32)), "{metric}: {slot} links to a node that did not choose it");
            }
        }
        // (Under inner product a full list may prune a small-norm newcomer at once.)
        let least = usize::from(metric != Metric::InnerProduct);
        assert!((least..=m).contains(&linked_back), "{metric}: {linked_back} lists took the new node");
    }
}

proptest::proptest! {
    /// The heaps' packed candidates order as `Cand` does (key, then slot; `-0.0` equal to
    /// `0.0`), and unpack to the same key and slot.
    #[test]
    fn packed_candidates_order_as_cands(
        keys in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::num::f32::NORMAL | proptest::num::f32::SUBNORMAL | proptest::num::f32::ZERO,
                proptest::sample::select(vec![0.0f32, -0.0, 1.0, -1.0, f32::INFINITY, f32::NEG_INFINITY]),
            ],
            2..20,
        ),
        slots in proptest::collection::vec(0u32..4, 20),
    ) {
        let cands: Vec<Cand> = keys.iter().zip(&slots).map(|(&k, &s)| Cand(k, s)).collect();
        for a in &cands {
            let back = Cand::unpacked(a.packed());
            proptest::prop_assert!(back.0 == a.0 && back.1 == a.1, "{a:?} -> {back:?}");
            for b in &cands {
                proptest::prop_assert_eq!(a.packed().cmp(&b.packed()), a.cmp(b), "{:?} vs {:?}", a, b);
            }
        }
    }
}
