//! Random sequences of calls against a model. The conformance suite checks each call on a
//! freshly built index; users interleave them: add, remove, add under their own ids, save and
//! load, search, reset, merge. Here proptest draws such sequences for one index of each family
//! and a plain map (id → vector) says what every answer must be: which ids exist, which calls
//! succeed, how many hits a search owes, and — for the exact kinds — which scores.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};
use vq::{Error, IdBitset, Index, Metric, SearchParams};

const DIM: usize = 8;
/// Rows the calls draw their vectors from (the first 256 also train).
const POOL: usize = 512;

/// One index of each family. `exact`: with every list probed and the beam wider than the
/// index, its scores are the exact ones of the vectors it holds, so the model checks them.
const SPECS: [(&str, bool); 14] = [
    ("Flat", true),
    ("SQ8", false),
    ("PQ4x4fs,RFlat", false),
    ("HNSW8", true),
    ("HNSW8,SQ8,RFlat", false),
    ("HNSW8,PQ4", false),
    ("IVF8,Flat", true),
    ("IVF8_HNSW4,SQ8", false),
    ("IVF8,PQ4", false),
    ("IVF8,PQ4x4fs,RFlat", false),
    ("OPQ2,IVF8,PQ2", false),
    ("PCA6,HNSW8,RFlat", false),
    ("RaBitQfs", false),
    ("IVF8,RaBitQ2,RFlat", false),
];

const METRICS: [Metric; 3] = [Metric::L2, Metric::InnerProduct, Metric::Cosine];

/// Ids the caller picks: small ones that collide with the automatic ones, large ones, and the
/// edge of u64 (`u64::MAX` is the padding of short answers).
const CALLER_IDS: [u64; 6] = [3, 17, 40, 1 << 40, u64::MAX - 1, u64::MAX];

#[derive(Debug, Clone)]
enum Call {
    /// `add` of `rows` pool rows from `at`.
    Add {
        at: usize,
        rows: usize,
    },
    /// `add_with_ids` with ids drawn from [`CALLER_IDS`] and a range of their own.
    AddWithIds {
        at: usize,
        picks: Vec<usize>,
        base: u64,
    },
    /// `add_shared` (graphs; `None` elsewhere).
    AddShared {
        at: usize,
        rows: usize,
    },
    /// `prepare_add` then `add_prepared` (inverted files; a plain add elsewhere), under the
    /// caller's ids from `base` or automatic ones.
    AddPrepared {
        at: usize,
        rows: usize,
        base: Option<u64>,
    },
    /// `remove_ids` of ids by index into the live ones, plus one that never existed.
    Remove {
        picks: Vec<usize>,
    },
    /// `search_with` of `queries` pool rows; `k` above the count too.
    Search {
        at: usize,
        queries: usize,
        k: usize,
    },
    /// The same, with a filter passing the ids at even places of the live ones.
    FilteredSearch {
        at: usize,
        k: usize,
    },
    /// `range_search_with` at the radius of the `rank`-th exact score of the first query.
    Range {
        at: usize,
        rank: usize,
    },
    /// `reconstruct` of the `pick`-th live id, or of an absent one.
    Reconstruct {
        pick: usize,
    },
    /// `write_index_to_bytes` then `read_index_from_bytes`: answers equal, and the calls go on
    /// against the index read back.
    WriteRead,
    /// `merge_from` a copy of the index itself, ids shifted.
    MergeCopy {
        shift: u64,
    },
    Reset,
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        3 => (0..POOL - 64, 1..40usize).prop_map(|(at, rows)| Call::Add { at, rows }),
        2 => (0..POOL - 64, prop::collection::vec(0..CALLER_IDS.len() + 4, 1..5), 0..3u64)
            .prop_map(|(at, picks, base)| Call::AddWithIds { at, picks, base: 1_000 + 100 * base }),
        1 => (0..POOL - 64, 1..20usize).prop_map(|(at, rows)| Call::AddShared { at, rows }),
        1 => (0..POOL - 64, 1..20usize, prop::option::of(0..50u64))
            .prop_map(|(at, rows, base)| Call::AddPrepared { at, rows, base: base.map(|b| 2_000 + 10 * b) }),
        2 => prop::collection::vec(0..64usize, 0..12).prop_map(|picks| Call::Remove { picks }),
        3 => (0..POOL - 4, 1..4usize, 1..80usize).prop_map(|(at, queries, k)| Call::Search { at, queries, k }),
        1 => (0..POOL - 1, 1..20usize).prop_map(|(at, k)| Call::FilteredSearch { at, k }),
        1 => (0..POOL - 1, 0..30usize).prop_map(|(at, rank)| Call::Range { at, rank }),
        1 => (0..80usize).prop_map(|pick| Call::Reconstruct { pick }),
        1 => Just(Call::WriteRead),
        1 => prop::sample::select(vec![0u64, 10_000, u64::MAX - 8]).prop_map(|shift| Call::MergeCopy { shift }),
        1 => Just(Call::Reset),
    ]
}

/// Gaussian clusters around 6 centres; a few rows repeated (copies are what users add too).
fn pool(seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..6 * DIM).map(|_| rng.random_range(-5.0f32..5.0)).collect();
    let noise = Normal::new(0.0f32, 1.0).unwrap();
    let mut rows: Vec<f32> = (0..POOL)
        .flat_map(|_| {
            let c = rng.random_range(0..6);
            (0..DIM).map(|j| centres[c * DIM + j] + noise.sample(&mut rng)).collect::<Vec<_>>()
        })
        .collect();
    for copy in (300..POOL).step_by(37) {
        rows.copy_within(copy * DIM - 5 * DIM..copy * DIM - 4 * DIM, copy * DIM);
    }
    rows
}

fn rows(pool: &[f32], at: usize, n: usize) -> &[f32] {
    &pool[at * DIM..(at + n) * DIM]
}

/// What the index must hold: each live id's vector, and the next automatic id.
#[derive(Clone, Default)]
struct Model {
    live: BTreeMap<u64, Vec<f32>>,
    added: u64,
}

impl Model {
    /// The exact score of `query` against `v` (cosine over normalized copies).
    fn score(metric: Metric, query: &[f32], v: &[f32]) -> f32 {
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        match metric {
            Metric::L2 => query.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum(),
            Metric::InnerProduct => dot(query, v),
            Metric::Cosine => dot(query, v) / (dot(query, query).sqrt() * dot(v, v).sqrt()),
        }
    }

    /// Every live vector's exact score that `pass` lets through, best first.
    fn ranked(&self, metric: Metric, query: &[f32], pass: &dyn Fn(u64) -> bool) -> Vec<f32> {
        let mut scores: Vec<f32> =
            self.live.iter().filter(|(id, _)| pass(**id)).map(|(_, v)| Self::score(metric, query, v)).collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        if metric == Metric::L2 {
            scores.reverse();
        }
        scores
    }
}

fn params(len: usize, k: usize) -> SearchParams<'static> {
    // Every list probed, a beam wider than the index, every candidate re-scored: the answers
    // the model can demand in full.
    SearchParams { k, ef: Some(len.max(k) + 16), nprobe: Some(8), refine_k: Some(len.max(1)), ..Default::default() }
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-3 * (1.0 + a.abs().max(b.abs()))
}

struct Run<'a> {
    spec: &'a str,
    exact: bool,
    metric: Metric,
    pool: &'a [f32],
    index: Box<dyn Index>,
    model: Model,
}

impl Model {
    /// The ids `add` hands the next `n` vectors, `None` past the last id there is (`u64::MAX`
    /// is the padding of short answers, never an id).
    fn auto_ids(&self, n: usize) -> Option<Vec<u64>> {
        let end = self.added.checked_add(n as u64)?;
        Some((self.added..end).collect())
    }

    /// Records vectors added under `ids`: automatic ids go on past every id ever added.
    fn added(&mut self, data: &[f32], ids: &[u64]) {
        for (id, v) in ids.iter().zip(data.chunks_exact(DIM)) {
            self.live.insert(*id, v.to_vec());
        }
        let past = ids.iter().max().map_or(0, |&m| m.saturating_add(1));
        self.added = self.added.saturating_add(ids.len() as u64).max(past);
    }
}

impl Run<'_> {
    /// Checks the hits of `queries` against the model: live ids, no repeats, best first,
    /// `min(k, passing)` of them with padding after, and the exact scores where the kind has them.
    fn check_hits(&self, queries: &[f32], k: usize, hits: &vq::Neighbors, pass: &dyn Fn(u64) -> bool) {
        let spec = self.spec;
        let passing = self.model.live.keys().filter(|&&id| pass(id)).count();
        assert_eq!(hits.num_queries(), queries.len() / DIM, "{spec}");
        for (q, (ids, scores)) in hits.iter().enumerate() {
            let found: Vec<u64> = ids.iter().copied().filter(|&id| id != u64::MAX).collect();
            assert_eq!(found.len(), k.min(passing), "{spec}: query {q}, k {k}, {passing} passing: {ids:?}");
            assert!(ids[found.len()..].iter().all(|&id| id == u64::MAX), "{spec}: padding last: {ids:?}");
            assert_eq!(found.iter().collect::<HashSet<_>>().len(), found.len(), "{spec}: an id twice: {ids:?}");
            for id in &found {
                assert!(self.model.live.contains_key(id) && pass(*id), "{spec}: id {id} is not live or not passing");
            }
            let real = &scores[..found.len()];
            assert!(real.windows(2).all(|w| !self.metric.is_better(w[1], w[0])), "{spec}: best first: {real:?}");
            if self.exact {
                let query = &queries[q * DIM..(q + 1) * DIM];
                let want = self.model.ranked(self.metric, query, pass);
                if let Some(at) = real.iter().zip(&want).position(|(got, want)| !close(*got, *want)) {
                    panic!("{spec} {:?}: hit {at} scores {}, exact {}", self.metric, real[at], want[at]);
                }
            }
        }
    }

    fn step(&mut self, call: &Call) {
        let (spec, metric, pool) = (self.spec, self.metric, self.pool);
        match *call {
            Call::Add { at, rows: n } => {
                let data = rows(pool, at, n);
                match (self.index.add(data), self.model.auto_ids(n)) {
                    (Ok(()), Some(auto)) => self.model.added(data, &auto),
                    (Err(_), None) => {}
                    (got, want) => panic!("{spec}: add of {n} rows: {got:?}, the model's ids {want:?}"),
                }
            }
            Call::AddWithIds { at, ref picks, base } => {
                let ids: Vec<u64> =
                    picks.iter().map(|&p| CALLER_IDS.get(p).copied().unwrap_or(base + p as u64)).collect();
                let data = rows(pool, at, ids.len());
                let repeated = ids.iter().collect::<HashSet<_>>().len() < ids.len();
                let present = ids.iter().any(|id| self.model.live.contains_key(id));
                let padding = ids.contains(&u64::MAX);
                match self.index.add_with_ids(data, &ids) {
                    Ok(()) => {
                        assert!(!repeated && !present && !padding, "{spec}: add_with_ids {ids:?} accepted");
                        self.model.added(data, &ids);
                    }
                    Err(e) => assert!(repeated || present || padding, "{spec}: add_with_ids {ids:?}: {e}"),
                }
            }
            Call::AddShared { at, rows: n } => {
                let data = rows(pool, at, n);
                match (self.index.add_shared(data, None), self.model.auto_ids(n)) {
                    (None, _) => assert!(!self.index.adds_shared(), "{spec}"),
                    (Some(Ok(())), Some(auto)) => self.model.added(data, &auto),
                    (Some(Err(_)), None) => {}
                    (got, want) => panic!("{spec}: add_shared of {n} rows: {got:?}, the model's ids {want:?}"),
                }
            }
            Call::AddPrepared { at, rows: n, base } => {
                let data = rows(pool, at, n);
                let ids: Option<Vec<u64>> = base.map(|b| (b..b + n as u64).collect());
                let want = match &ids {
                    Some(ids) => (!ids.iter().any(|id| self.model.live.contains_key(id))).then(|| ids.clone()),
                    None => self.model.auto_ids(n),
                };
                let added = match (self.index.prepare_add(data), &ids) {
                    (Some(prepared), ids) => {
                        let prepared = prepared.unwrap_or_else(|e| panic!("{spec}: prepare_add: {e}"));
                        self.index.add_prepared(prepared, data, ids.as_deref())
                    }
                    (None, Some(ids)) => self.index.add_with_ids(data, ids),
                    (None, None) => self.index.add(data),
                };
                match (added, want) {
                    (Ok(()), Some(ids)) => self.model.added(data, &ids),
                    (Err(_), None) => {}
                    (got, want) => panic!("{spec}: add_prepared of {n} rows: {got:?}, the model's ids {want:?}"),
                }
            }
            Call::Remove { ref picks } => {
                let live: Vec<u64> = self.model.live.keys().copied().collect();
                let mut ids: Vec<u64> = picks.iter().filter_map(|&p| live.get(p).copied()).collect();
                ids.push(999_999);
                let want = ids.iter().collect::<HashSet<_>>().len() - 1;
                let removed = self.index.remove_ids(&ids).unwrap_or_else(|e| panic!("{spec}: remove {ids:?}: {e}"));
                assert_eq!(removed, want, "{spec}: remove {ids:?}");
                for id in &ids {
                    self.model.live.remove(id);
                }
            }
            Call::Search { at, queries, k } => {
                let q = rows(pool, at, queries);
                let hits = self.index.search_with(q, &params(self.model.live.len(), k));
                let hits = hits.unwrap_or_else(|e| panic!("{spec}: search k {k}: {e}"));
                self.check_hits(q, k, &hits, &|_| true);
            }
            Call::FilteredSearch { at, k } => {
                let even: Vec<u64> = self.model.live.keys().copied().step_by(2).collect();
                let filter = IdBitset::from_ids(&even.iter().copied().filter(|&id| id < 1 << 20).collect::<Vec<_>>());
                let q = rows(pool, at, 1);
                let p = SearchParams { filter: Some(&filter), ..params(self.model.live.len(), k) };
                let hits = self.index.search_with(q, &p).unwrap_or_else(|e| panic!("{spec}: filtered: {e}"));
                self.check_hits(q, k, &hits, &|id| filter.contains(id));
            }
            Call::Range { at, rank } => {
                let q = rows(pool, at, 1);
                let ranked = self.model.ranked(metric, q, &|_| true);
                let Some(&radius) = ranked.get(rank) else { return };
                let p = params(self.model.live.len(), 10);
                let got = self.index.range_search_with(q, radius, &p).unwrap_or_else(|e| panic!("{spec}: range: {e}"));
                let (ids, scores) = got.get(0).unwrap();
                assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "{spec}: range: an id twice");
                assert!(ids.iter().all(|id| self.model.live.contains_key(id)), "{spec}: range: {ids:?}");
                assert!(scores.iter().all(|&s| !metric.is_better(radius, s) || close(s, radius)), "{spec}: range");
                if self.exact {
                    let within = ranked.iter().filter(|&&s| !metric.is_better(radius, s)).count();
                    let near = ranked.iter().filter(|&&s| close(s, radius)).count();
                    assert!(ids.len().abs_diff(within) <= near, "{spec}: {} hits of {within}", ids.len());
                }
            }
            Call::Reconstruct { pick } => {
                let id = self.model.live.keys().nth(pick).copied().unwrap_or(888_888);
                match (self.index.reconstruct(id), self.model.live.get(&id)) {
                    (Ok(v), Some(_)) => assert!(v.len() == DIM && v.iter().all(|x| x.is_finite()), "{spec}: {v:?}"),
                    (Ok(v), None) => panic!("{spec}: reconstructed absent id {id}: {v:?}"),
                    (Err(Error::UnknownId(got)), None) => assert_eq!(got, id, "{spec}"),
                    (Err(Error::Unsupported { .. }), _) => {}
                    (Err(e), _) => panic!("{spec}: reconstruct {id}: {e}"),
                }
            }
            Call::WriteRead => {
                let bytes = vq::write_index_to_bytes(self.index.as_ref()).unwrap_or_else(|e| panic!("{spec}: {e}"));
                let back = vq::read_index_from_bytes(&bytes).unwrap_or_else(|e| panic!("{spec}: read: {e}"));
                assert_eq!(back.len(), self.model.live.len(), "{spec}: read back");
                let q = rows(pool, 0, 4);
                let p = params(self.model.live.len(), 7);
                let (want, got) = (self.index.search_with(q, &p).unwrap(), back.search_with(q, &p).unwrap());
                assert_eq!(got.ids(), want.ids(), "{spec}: ids after write/read");
                let same = got.scores().iter().zip(want.scores()).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{spec}: scores after write/read");
                self.index = back;
            }
            Call::MergeCopy { shift } => {
                let bytes = vq::write_index_to_bytes(self.index.as_ref()).unwrap();
                let copy = vq::read_index_from_bytes(&bytes).unwrap();
                let shifted: Option<Vec<u64>> = self.model.live.keys().map(|id| id.checked_add(shift)).collect();
                let fits = shifted
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|id| *id != u64::MAX && !self.model.live.contains_key(id)));
                let len = self.model.live.len();
                match self.index.merge_from(copy, shift) {
                    Ok(()) => {
                        assert!(self.index.is_mergeable() && fits, "{spec}: merged at shift {shift}");
                        let copied: Vec<f32> = self.model.live.values().flatten().copied().collect();
                        self.model.added(&copied, &shifted.unwrap());
                    }
                    Err(e) => {
                        assert!(!self.index.is_mergeable() || !fits, "{spec}: merge at shift {shift}: {e}");
                        assert_eq!(self.index.len(), len, "{spec}: a refused merge moves nothing");
                    }
                }
            }
            Call::Reset => {
                self.index.reset().unwrap_or_else(|e| panic!("{spec}: reset: {e}"));
                self.model = Model::default();
            }
        }
        assert_eq!(self.index.len(), self.model.live.len(), "{spec}: len after {call:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn call_sequences_answer_as_the_model_says(
        spec in 0..SPECS.len(),
        metric in 0..METRICS.len(),
        seed in 0..4u64,
        calls in prop::collection::vec(call(), 1..40),
    ) {
        let (spec, exact) = SPECS[spec];
        let metric = METRICS[metric];
        let pool = pool(seed);
        let mut index = vq::index_factory(DIM, spec, metric).unwrap();
        index.train(rows(&pool, 0, 256)).unwrap();
        let mut run = Run { spec, exact, metric, pool: &pool, index, model: Model::default() };
        for call in &calls {
            run.step(call);
        }
    }
}
