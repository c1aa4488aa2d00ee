//! The k-NN walk's own limits: a filtered walk gives up past its budget.

use vq_distance::Metric;

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
