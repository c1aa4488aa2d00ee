//! Random sequences of the graph's own calls against a model of its slots: add, add under the
//! caller's ids, upsert, reuse of deleted slots, delete and undelete, compact, save and load.
//! The model says which calls succeed, which ids a delete can still reach, and what an exact
//! search (`ef` above the live count) must return.

mod common;

use std::collections::HashMap;

use common::clustered;
use proptest::prelude::*;
use vq_distance::Metric;
use vq_graph::{Error, Hnsw, HnswParams};

const DIM: usize = 8;
const POOL: usize = 400;

#[derive(Debug, Clone)]
enum Call {
    Add { at: usize, n: usize },
    AddWithIds { at: usize, ids: Vec<u64> },
    Upsert { at: usize, ids: Vec<u64> },
    ReuseDeleted { at: usize, ids: Vec<u64> },
    Delete { id: u64 },
    Undelete { id: u64 },
    Compact,
    SaveLoad,
    Search { at: usize, k: usize },
}

/// Small ids, so that calls meet each other's, and the padding id.
fn id() -> impl Strategy<Value = u64> {
    prop_oneof![20 => 0..48u64, 1 => Just(u64::MAX)]
}

fn call() -> impl Strategy<Value = Call> {
    let ids = || prop::collection::vec(id(), 1..5);
    prop_oneof![
        3 => (0..POOL - 40, 1..30usize).prop_map(|(at, n)| Call::Add { at, n }),
        3 => (0..POOL - 40, ids()).prop_map(|(at, ids)| Call::AddWithIds { at, ids }),
        2 => (0..POOL - 40, ids()).prop_map(|(at, ids)| Call::Upsert { at, ids }),
        2 => (0..POOL - 40, ids()).prop_map(|(at, ids)| Call::ReuseDeleted { at, ids }),
        4 => id().prop_map(|id| Call::Delete { id }),
        2 => id().prop_map(|id| Call::Undelete { id }),
        1 => Just(Call::Compact),
        1 => Just(Call::SaveLoad),
        3 => (0..POOL, 1..60usize).prop_map(|(at, k)| Call::Search { at, k }),
    ]
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum State {
    Live,
    /// Deleted, and still reached by its id (it can be undeleted).
    Deleted,
    /// Deleted, its id taken by a newer vector: only `compact` or reuse removes it.
    Orphan,
}

struct Slot {
    id: u64,
    row: usize,
    state: State,
}

/// The graph as its slots, in slot order, and which slot each reachable id names.
#[derive(Default)]
struct Model {
    slots: Vec<Slot>,
    by_id: HashMap<u64, usize>,
    next_id: u64,
}

impl Model {
    fn live(&self, id: u64) -> bool {
        self.by_id.get(&id).is_some_and(|&s| self.slots[s].state == State::Live)
    }

    /// Whether `add_with_ids` (`replace` false) or `upsert_with_ids` of `ids` is refused.
    fn refuses(&self, ids: &[u64], replace: bool) -> bool {
        let mut seen = std::collections::HashSet::new();
        ids.iter().any(|&id| id == u64::MAX || !seen.insert(id) || (!replace && self.live(id)))
    }

    /// Slot `slot` now holds `id`: a deleted vector the id named before is an orphan.
    fn give(&mut self, id: u64, slot: usize) {
        if let Some(old) = self.by_id.insert(id, slot)
            && old != slot
        {
            self.slots[old].state = State::Orphan;
        }
    }

    fn push(&mut self, ids: &[u64], at: usize) {
        for (i, &id) in ids.iter().enumerate() {
            self.slots.push(Slot { id, row: at + i, state: State::Live });
            self.give(id, self.slots.len() - 1);
        }
        self.next_id = vq_distance::next_auto_id(self.next_id, ids);
    }

    fn reuse(&mut self, ids: &[u64], at: usize) -> usize {
        let reusable: Vec<usize> =
            (0..self.slots.len()).filter(|&s| self.slots[s].state != State::Live).take(ids.len()).collect();
        for (i, (&slot, &id)) in reusable.iter().zip(ids).enumerate() {
            let old = self.slots[slot].id;
            if self.by_id.get(&old) == Some(&slot) {
                self.by_id.remove(&old);
            }
            self.slots[slot] = Slot { id, row: at + i, state: State::Live };
            self.give(id, slot);
        }
        self.next_id = vq_distance::next_auto_id(self.next_id, &ids[..reusable.len()]);
        reusable.len()
    }

    fn compact(&mut self) {
        self.slots.retain(|s| s.state == State::Live);
        self.by_id = self.slots.iter().enumerate().map(|(s, slot)| (slot.id, s)).collect();
    }

    fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.state == State::Live).count()
    }
}

fn rows(pool: &[f32], at: usize, n: usize) -> &[f32] {
    &pool[at * DIM..(at + n) * DIM]
}

fn step(graph: &mut Hnsw, model: &mut Model, pool: &[f32], call: &Call, dir: &std::path::Path) {
    match call {
        Call::Add { at, n } => {
            assert_eq!(graph.add(rows(pool, *at, *n)).unwrap(), model.next_id);
            let ids: Vec<u64> = (model.next_id..model.next_id + *n as u64).collect();
            model.push(&ids, *at);
        }
        Call::AddWithIds { at, ids } | Call::Upsert { at, ids } => {
            let replace = matches!(call, Call::Upsert { .. });
            let data = rows(pool, *at, ids.len());
            let got = if replace { graph.upsert_with_ids(data, ids) } else { graph.add_with_ids(data, ids) };
            match (got, model.refuses(ids, replace)) {
                (Ok(()), false) => model.push(ids, *at),
                (Err(Error::DuplicateId(_) | Error::Input(_)), true) => {}
                (got, refused) => panic!("{call:?}: {got:?}, the model refuses: {refused}"),
            }
        }
        Call::ReuseDeleted { at, ids } => {
            let data = rows(pool, *at, ids.len());
            match (graph.add_with_ids_reusing_deleted(data, ids), model.refuses(ids, false)) {
                (Ok(()), false) => {
                    let reused = model.reuse(ids, *at);
                    model.push(&ids[reused..], at + reused);
                }
                (Err(Error::DuplicateId(_) | Error::Input(_)), true) => {}
                (got, refused) => panic!("{call:?}: {got:?}, the model refuses: {refused}"),
            }
        }
        Call::Delete { id } | Call::Undelete { id } => {
            let delete = matches!(call, Call::Delete { .. });
            let got = if delete { graph.mark_deleted(*id) } else { graph.unmark_deleted(*id) };
            match (got, model.by_id.get(id)) {
                (Ok(()), Some(&slot)) => {
                    model.slots[slot].state = if delete { State::Deleted } else { State::Live };
                }
                (Err(Error::UnknownId(got)), None) => assert_eq!(got, *id),
                (got, slot) => panic!("{call:?}: {got:?}, the model's slot {slot:?}"),
            }
        }
        Call::Compact => {
            graph.compact();
            model.compact();
        }
        Call::SaveLoad => {
            let path = dir.join("graph.vq");
            graph.save(&path).unwrap();
            *graph = Hnsw::load(&path).unwrap();
        }
        Call::Search { at, k } => {
            let q = rows(pool, *at, 1);
            let got = graph.search(q, *k, Some(model.len() + 16)).unwrap();
            let mut want: Vec<(u64, f32)> = model
                .slots
                .iter()
                .filter(|s| s.state == State::Live)
                .map(|s| (s.id, vq_distance::l2_sq(q, rows(pool, s.row, 1)).unwrap()))
                .collect();
            want.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            want.truncate(*k);
            let scores = |v: &[(u64, f32)]| v.iter().map(|h| h.1).collect::<Vec<_>>();
            assert_eq!(scores(&got), scores(&want), "{call:?}");
            assert!(got.iter().all(|(id, _)| model.live(*id)), "{call:?}: {got:?}");
        }
    }
    assert_eq!(graph.len(), model.len(), "len after {call:?}");
    // Ids `add` hands out never repeat one a vector has now.
    assert!(model.slots.iter().all(|s| s.id < graph.next_id()), "next id {} after {call:?}", graph.next_id());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn call_sequences_answer_as_the_model_says(seed in 0..4u64, calls in prop::collection::vec(call(), 1..40)) {
        let pool = clustered(POOL, DIM, seed);
        let dir = tempfile::tempdir().unwrap();
        let mut graph = Hnsw::new(DIM, Metric::L2, HnswParams { ef_construction: 32, ..HnswParams::with_m(4) }).unwrap();
        let mut model = Model::default();
        for call in &calls {
            step(&mut graph, &mut model, &pool, call, dir.path());
        }
    }
}
