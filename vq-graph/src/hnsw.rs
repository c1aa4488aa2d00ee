//! The HNSW graph (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor
//! search using Hierarchical Navigable Small World graphs", 2016/2018).
//!
//! Concurrency: every method takes `&self`. Inserts lock only the nodes whose link lists they
//! change (one mutex per node); link lists are arrays of atomics written with release and read
//! with acquire ordering, and a node's id is written into another node's list only after its
//! vector, level and own links are in place, so a concurrent search never meets a torn list or
//! an unpublished node.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_distance::{Metric, Neighbors, prepare_row_into, prepare_rows, validate_rows};

use crate::arena::Chunks;
use crate::error::{Error, Result};
use crate::storage::{FlatStorage, VectorStorage};
use crate::visited::Visited;

/// Build and search parameters, with hnswlib's / Faiss' names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HnswParams {
    /// Links per node on the upper layers, and links chosen for a new node (default 16;
    /// Milvus: `M`).
    #[serde(alias = "M")]
    pub m: usize,
    /// Links per node on layer 0 (default `2 · m`).
    pub m0: usize,
    /// Beam width while building (default 200; Milvus: `efConstruction`).
    #[serde(alias = "efConstruction")]
    pub ef_construction: usize,
    /// Default beam width of a search (default 64); raised to `k` when smaller.
    #[serde(alias = "efSearch")]
    pub ef: usize,
    /// Level multiplier: a node's level is `⌊−ln(U) · level_mult⌋` (default `1 / ln m`).
    pub level_mult: f64,
    /// Fill a node's list up to its maximum degree with the candidates the heuristic pruned
    /// (the paper's `keepPrunedConnections`). Off by default for L2 and cosine; inner-product
    /// graphs turn it on regardless, because without it many small-norm vectors end up with
    /// no incoming links and become unreachable.
    pub keep_pruned: bool,
    /// A filtered search whose filter passes fewer than this fraction of the nodes (estimated
    /// from a sample) scores the passing nodes directly instead of walking the graph: exact,
    /// and cheaper, because a beam search under a selective filter has to visit most of the
    /// graph to fill its beam. Default 0.1: on 50,000 × 64 clustered vectors the brute-force
    /// path was faster below about 15 % passing (`examples/filter_crossover.rs`; figures in
    /// BENCHMARKS.md). The crossover moves up as the index grows (brute force is linear in n).
    pub brute_force_below: f64,
    /// Seed of the level draws (levels depend on it and on the insertion slot only, so a build
    /// is the same with any number of threads up to the order of concurrent inserts).
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams::with_m(16)
    }
}

impl HnswParams {
    /// The defaults for a given `m`.
    pub fn with_m(m: usize) -> Self {
        HnswParams {
            m,
            m0: 2 * m,
            ef_construction: 200,
            ef: 64,
            level_mult: 1.0 / (m.max(2) as f64).ln(),
            keep_pruned: false,
            brute_force_below: 0.1,
            seed: 0x5eed,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        let bad = |name, what: &str| Err(Error::Parameter { name, what: what.to_string() });
        if self.m < 2 || self.m > 1024 {
            return bad("m", "must be in 2..=1024");
        }
        if self.m0 < self.m || self.m0 > 4096 {
            return bad("m0", "must be in m..=4096");
        }
        if self.ef_construction == 0 {
            return bad("ef_construction", "must be at least 1");
        }
        if !(self.level_mult.is_finite() && self.level_mult > 0.0) {
            return bad("level_mult", "must be a positive number");
        }
        Ok(())
    }
}

/// A node's state bits.
pub(crate) const READY: u8 = 1;
pub(crate) const DELETED: u8 = 2;
/// `entry` value of an empty graph.
const NO_ENTRY: u64 = u64::MAX;
/// Highest level a node may get (the draw is capped; 2^-16 odds per level at m = 16 make it
/// unreachable in practice).
pub(crate) const MAX_LEVEL: usize = 31;

/// Cache lines of neighbour data prefetched ahead while a node's neighbours are scored: whole
/// vectors, 12 ahead for 128-d f32 (8 lines each), which covers most nodes' unvisited
/// neighbours at once. On imgsift100k 24 lines gave ~20 % fewer QPS, 48 ~5 % fewer, 64–96
/// the same within noise.
const LINES_IN_FLIGHT: usize = 96;
/// Slots sampled to estimate a filter's selectivity.
const FILTER_SAMPLE: u32 = 512;

/// Everything of a graph but its vectors, as flat arrays (what a file holds).
pub(crate) struct Snapshot {
    pub(crate) slots: usize,
    pub(crate) entry: u64,
    pub(crate) external: Vec<u64>,
    pub(crate) levels: Vec<u8>,
    pub(crate) states: Vec<u8>,
    pub(crate) links0: Vec<u32>,
    pub(crate) upper: Vec<u32>,
}

/// `(key, slot)` ordered by key, then slot.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cand(f32, u32);

impl Eq for Cand {}
impl PartialOrd for Cand {
    #[inline(always)]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
    #[inline(always)]
    fn lt(&self, other: &Self) -> bool {
        self.0 < other.0 || (self.0 == other.0 && self.1 < other.1)
    }
    #[inline(always)]
    fn le(&self, other: &Self) -> bool {
        !other.lt(self)
    }
    #[inline(always)]
    fn gt(&self, other: &Self) -> bool {
        other.lt(self)
    }
    #[inline(always)]
    fn ge(&self, other: &Self) -> bool {
        !self.lt(other)
    }
}
impl Ord for Cand {
    /// Keys are never NaN (vectors are checked finite on insert), so `<` is a total order here
    /// and cheaper than `total_cmp` in the heaps' inner loops.
    #[inline(always)]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.lt(other) {
            std::cmp::Ordering::Less
        } else if other.lt(self) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }
}

/// Reusable buffers of one search.
struct Scratch {
    visited: Visited,
    candidates: BinaryHeap<Reverse<Cand>>,
    top: BinaryHeap<Cand>,
    /// Unvisited neighbours of the node being expanded.
    fresh: Vec<u32>,
    /// A link list being read.
    links: Vec<u32>,
    /// Results being sorted.
    out: Vec<Cand>,
    /// A normalized copy of the query (cosine).
    query: Vec<f32>,
}

/// Memory of an index, by part, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryUsage {
    /// The vectors (or codes) in the storage.
    pub vectors: usize,
    /// Link lists of every layer.
    pub links: usize,
    /// External ids, the id map, levels, node states and locks.
    pub ids: usize,
    /// Pooled search scratch (visited sets).
    pub scratch: usize,
}

impl MemoryUsage {
    /// Everything.
    pub fn total(&self) -> usize {
        self.vectors + self.links + self.ids + self.scratch
    }
}

/// A hierarchical navigable small-world graph over a [`VectorStorage`].
pub struct Hnsw<S: VectorStorage = FlatStorage> {
    params: HnswParams,
    storage: S,
    dim: usize,
    metric: Metric,
    /// Per slot: `[count, id × m0]`.
    links0: Chunks<AtomicU32>,
    /// Per slot with level > 0: for each level `1..=L`, `[count, id × m]`.
    upper: Chunks<OnceLock<Box<[AtomicU32]>>>,
    upper_bytes: AtomicUsize,
    levels: Chunks<AtomicU8>,
    states: Chunks<AtomicU8>,
    external: Chunks<AtomicU64>,
    locks: Chunks<Mutex<()>>,
    id_map: Mutex<HashMap<u64, u32>>,
    /// Slots handed out so far.
    claimed: AtomicU32,
    /// Slots whose arena chunks exist: a claim raises it to its end only after allocating, so
    /// everything that walks `0..slots` (brute force, filter sampling, save, check_graph) finds
    /// every chunk it reaches. At most `claimed`; equal to it when no claim is in flight.
    slots: AtomicU32,
    /// Live (ready, not deleted) nodes.
    live: AtomicUsize,
    /// Nodes marked deleted.
    deleted: AtomicUsize,
    /// `level << 32 | slot` of the entry point, or [`NO_ENTRY`].
    entry: AtomicU64,
    entry_lock: Mutex<()>,
    pool: Mutex<Vec<Scratch>>,
    keep_pruned: bool,
    /// Inserts hold it shared; a snapshot holds it exclusively, so it sees no half insert.
    insert_gate: RwLock<()>,
}

impl Hnsw<FlatStorage> {
    /// An empty index over full-precision vectors (allocates nothing until the first insert).
    pub fn new(dim: usize, metric: Metric, params: HnswParams) -> Result<Self> {
        Hnsw::with_storage(FlatStorage::new(dim, metric), params)
    }
}

#[inline]
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a node lock cannot leave a list half-written in a way readers
    // could see (lists are atomics), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deterministic level of `slot`: `⌊−ln(U) · mult⌋` with `U` from a hash of (seed, slot).
fn draw_level(seed: u64, slot: u32, mult: f64) -> usize {
    let mut z = seed ^ u64::from(slot).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    ((-u.ln() * mult) as usize).min(MAX_LEVEL)
}

impl<S: VectorStorage> Hnsw<S> {
    /// An empty index over `storage`.
    pub fn with_storage(storage: S, params: HnswParams) -> Result<Self> {
        params.check()?;
        let dim = storage.dim();
        if dim == 0 {
            return Err(Error::Parameter { name: "dim", what: "must be at least 1".into() });
        }
        Ok(Hnsw {
            dim,
            metric: storage.metric(),
            links0: Chunks::new(1 + params.m0),
            upper: Chunks::new(1),
            upper_bytes: AtomicUsize::new(0),
            levels: Chunks::new(1),
            states: Chunks::new(1),
            external: Chunks::new(1),
            locks: Chunks::new(1),
            id_map: Mutex::new(HashMap::new()),
            claimed: AtomicU32::new(0),
            slots: AtomicU32::new(0),
            live: AtomicUsize::new(0),
            deleted: AtomicUsize::new(0),
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
            pool: Mutex::new(Vec::new()),
            keep_pruned: params.keep_pruned || storage.metric() == Metric::InnerProduct,
            insert_gate: RwLock::new(()),
            params,
            storage,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &HnswParams {
        &self.params
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric (scores follow the convention of [`Metric`]).
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The storage under the graph.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Live vectors: inserted and not deleted.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// `true` when no live vector is in the index.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the default search beam width (raised to `k` at search time when smaller).
    pub fn set_ef(&mut self, ef: usize) {
        self.params.ef = ef.max(1);
    }

    /// Makes room for `additional` more vectors up front (a bulk load then never grows).
    pub fn reserve(&self, additional: usize) {
        self.grow_to(self.claimed.load(Ordering::Relaxed) as usize + additional);
    }

    fn grow_to(&self, n: usize) {
        self.storage.reserve(n);
        self.links0.ensure(n);
        self.upper.ensure(n);
        self.levels.ensure(n);
        self.states.ensure(n);
        self.external.ensure(n);
        self.locks.ensure(n);
    }

    /// Memory by part (see [`MemoryUsage`]).
    pub fn memory_usage(&self) -> MemoryUsage {
        let map = lock(&self.id_map).capacity() * (std::mem::size_of::<(u64, u32)>() + 1);
        MemoryUsage {
            vectors: self.storage.memory_bytes(),
            links: self.links0.allocated_bytes()
                + self.upper.allocated_bytes()
                + self.upper_bytes.load(Ordering::Relaxed),
            ids: self.levels.allocated_bytes()
                + self.states.allocated_bytes()
                + self.external.allocated_bytes()
                + self.locks.allocated_bytes()
                + map,
            scratch: lock(&self.pool).iter().map(|s| s.visited.bytes()).sum(),
        }
    }

    // ---- validation -------------------------------------------------------------------

    /// Checks a vector and returns it as the storage wants it (normalized for cosine, into
    /// `buf`, so a reused buffer makes this allocation-free): `vq-distance`'s shared check.
    fn prepare_vector<'a>(&self, what: &'static str, v: &'a [f32], buf: &'a mut Vec<f32>) -> Result<&'a [f32]> {
        Ok(prepare_row_into(what, v, self.dim, self.metric, buf)?)
    }

    // ---- links --------------------------------------------------------------------------

    #[inline]
    fn level_of(&self, slot: u32) -> usize {
        self.levels.slot(slot as usize)[0].load(Ordering::Acquire) as usize
    }

    /// The link list of `slot` on `layer`: `[count, ids…]`.
    #[inline]
    fn list(&self, slot: u32, layer: usize) -> &[AtomicU32] {
        if layer == 0 {
            self.links0.slot(slot as usize)
        } else {
            let width = 1 + self.params.m;
            let upper = self.upper.slot(slot as usize)[0].get().expect("upper links exist for level > 0");
            &upper[(layer - 1) * width..layer * width]
        }
    }

    #[inline]
    fn prefetch_links(&self, slot: u32, layer: usize) {
        #[cfg(target_arch = "x86_64")]
        if layer == 0
            && let Some(list) = self.links0.get(slot as usize)
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: prefetching never faults; SSE is part of the x86-64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(list.as_ptr().cast::<i8>()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (slot, layer);
    }

    #[inline]
    fn max_links(&self, layer: usize) -> usize {
        if layer == 0 { self.params.m0 } else { self.params.m }
    }

    /// Reads a list into `out` (ids only).
    #[inline]
    fn read_list(&self, slot: u32, layer: usize, out: &mut Vec<u32>) {
        let list = self.list(slot, layer);
        let n = (list[0].load(Ordering::Acquire) as usize).min(list.len() - 1);
        out.clear();
        out.extend(list[1..=n].iter().map(|x| x.load(Ordering::Acquire)));
    }

    /// Replaces a list (the caller holds the node's lock).
    fn write_list(&self, slot: u32, layer: usize, ids: &[u32]) {
        let list = self.list(slot, layer);
        debug_assert!(ids.len() < list.len());
        for (cell, &id) in list[1..].iter().zip(ids) {
            cell.store(id, Ordering::Release);
        }
        list[0].store(ids.len() as u32, Ordering::Release);
    }

    // ---- search ---------------------------------------------------------------------------

    fn take_scratch(&self) -> Scratch {
        lock(&self.pool).pop().unwrap_or_else(|| Scratch {
            visited: Visited::new(),
            candidates: BinaryHeap::new(),
            top: BinaryHeap::new(),
            fresh: Vec::new(),
            links: Vec::new(),
            out: Vec::new(),
            query: Vec::new(),
        })
    }

    fn give_scratch(&self, s: Scratch) {
        lock(&self.pool).push(s);
    }

    /// Greedy descent on `layer` from `start`: the closest node reachable by always moving to a
    /// closer neighbour.
    fn greedy(&self, q: &S::Query<'_>, mut cur: Cand, layer: usize, buf: &mut Vec<u32>) -> Cand {
        loop {
            let mut moved = false;
            self.read_list(cur.1, layer, buf);
            for &n in buf.iter() {
                let d = self.storage.distance(q, n);
                if d < cur.0 {
                    cur = Cand(d, n);
                    moved = true;
                }
            }
            if !moved {
                return cur;
            }
        }
    }

    /// Beam search of width `ef` on `layer` from `entry`; leaves the best `ef` nodes that
    /// `keep` accepts (all of them when `keep` is `None`) in `s.top` (a max-heap). Rejected
    /// nodes still route.
    fn search_layer(
        &self,
        q: &S::Query<'_>,
        entry: Cand,
        ef: usize,
        layer: usize,
        s: &mut Scratch,
        keep: Option<&dyn Fn(u32) -> bool>,
    ) {
        let accept = |id: u32| keep.is_none_or(|f| f(id));
        let ahead = (LINES_IN_FLIGHT / self.storage.slot_lines().max(1)).clamp(1, 16);
        s.visited.reset(self.slots.load(Ordering::Acquire) as usize);
        s.candidates.clear();
        s.top.clear();
        s.visited.insert(entry.1);
        s.candidates.push(Reverse(entry));
        if accept(entry.1) {
            s.top.push(entry);
        }
        let mut bound = if s.top.len() >= ef { s.top.peek().map_or(f32::INFINITY, |c| c.0) } else { f32::INFINITY };
        while let Some(Reverse(c)) = s.candidates.pop() {
            if c.0 > bound {
                break;
            }
            // First collect the unvisited neighbours and prefetch their vectors, then score
            // them: the memory loads overlap instead of queueing behind each distance.
            let list = self.list(c.1, layer);
            let n = (list[0].load(Ordering::Acquire) as usize).min(list.len() - 1);
            s.fresh.clear();
            // Read the ids and start loading their visited tags, then test them: the tag
            // loads overlap instead of each waiting for the one before.
            s.fresh.extend(list[1..=n].iter().map(|cell| cell.load(Ordering::Acquire)));
            for &id in &s.fresh {
                s.visited.prefetch(id);
            }
            let visited = &mut s.visited;
            s.fresh.retain(|&id| visited.insert(id));
            // Keep about `LINES_IN_FLIGHT` lines of vectors loading, so that the memory latency
            // of many neighbours overlaps instead of each distance waiting for its own.
            for &id in s.fresh.iter().take(ahead) {
                self.storage.prefetch(id);
            }
            for i in 0..s.fresh.len() {
                if let Some(&ahead) = s.fresh.get(i + ahead) {
                    self.storage.prefetch(ahead);
                }
                let id = s.fresh[i];
                let d = self.storage.distance(q, id);
                if s.top.len() < ef || d < bound {
                    s.candidates.push(Reverse(Cand(d, id)));
                    if accept(id) {
                        s.top.push(Cand(d, id));
                        if s.top.len() > ef {
                            s.top.pop();
                        }
                        if s.top.len() >= ef {
                            bound = s.top.peek().map_or(f32::INFINITY, |c| c.0);
                        }
                    }
                }
            }
            // The next node to expand: start loading its links while this loop winds down.
            if let Some(Reverse(next)) = s.candidates.peek() {
                self.prefetch_links(next.1, layer);
            }
        }
    }

    /// The entry point, descended greedily to layer `to + 1`.
    fn descend(&self, q: &S::Query<'_>, to: usize, buf: &mut Vec<u32>) -> Option<(Cand, usize)> {
        let e = self.entry.load(Ordering::Acquire);
        if e == NO_ENTRY {
            return None;
        }
        let (top_level, slot) = ((e >> 32) as usize, e as u32);
        let mut cur = Cand(self.storage.distance(q, slot), slot);
        for layer in (to + 1..=top_level).rev() {
            cur = self.greedy(q, cur, layer, buf);
        }
        Some((cur, top_level))
    }

    /// Searches one prepared query: up to `k` `(key, slot)` pairs, best first, in `s.out`.
    fn search_slots(&self, q: &S::Query<'_>, k: usize, ef: usize, keep: Option<&dyn Fn(u32) -> bool>, s: &mut Scratch) {
        s.out.clear();
        let Some((entry, _)) = self.descend(q, 0, &mut s.links) else { return };
        self.search_layer(q, entry, ef.max(k), 0, s, keep);
        s.out.extend(s.top.drain());
        s.out.sort_unstable();
        s.out.truncate(k);
    }

    fn is_live(&self, slot: u32) -> bool {
        self.states.slot(slot as usize)[0].load(Ordering::Acquire) & (READY | DELETED) == READY
    }

    /// The `k` nearest live vectors to `query`: `(id, score)` best first (scores in the
    /// convention of [`Metric`]). `ef` overrides the default beam width; it is raised to `k`.
    /// An empty index gives an empty result; `k` larger than [`len`](Hnsw::len) gives every
    /// live vector the search reaches.
    pub fn search(&self, query: &[f32], k: usize, ef: Option<usize>) -> Result<Vec<(u64, f32)>> {
        self.search_impl(query, k, ef, None)
    }

    /// [`search`](Hnsw::search) keeping only ids for which `filter` is `true`; the others still
    /// route the search.
    pub fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<(u64, f32)>> {
        self.search_impl(query, k, ef, Some(filter))
    }

    fn search_impl(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<(u64, f32)>> {
        if k == 0 {
            return Err(vq_distance::Error::ZeroK.into());
        }
        let mut s = self.take_scratch();
        let mut normalized = std::mem::take(&mut s.query);
        let result = self
            .prepare_vector("query", query, &mut normalized)
            .map(|q| self.search_prepared(q, k, ef, filter, &mut s));
        s.query = normalized;
        self.give_scratch(s);
        result
    }

    /// Searches with a query that passed `prepare_vector` (checked, normalized for cosine).
    fn search_prepared(
        &self,
        q: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<&dyn Fn(u64) -> bool>,
        s: &mut Scratch,
    ) -> Vec<(u64, f32)> {
        let pq = self.storage.prepare(q);
        // No search returns more than the slots there are: allocate by that, not by `k`
        // (`k = usize::MAX` must neither overflow nor reserve memory for it).
        let k_want = k;
        let k = k.min(self.slots.load(Ordering::Acquire).max(1) as usize);
        // Without deletes or a filter every reachable node is a result: skip the check.
        let keep_fn = |slot: u32| self.is_live(slot) && filter.is_none_or(|f| f(self.external_id(slot)));
        let keep: Option<&dyn Fn(u32) -> bool> =
            if filter.is_some() || self.deleted.load(Ordering::Relaxed) > 0 { Some(&keep_fn) } else { None };
        // k at or above the live count asks for everything: score it all, which is exact
        // and costs no more than k distances (a graph walk could miss a poorly linked node).
        let everything = k_want >= self.live.load(Ordering::Relaxed);
        if everything || (filter.is_some() && self.filter_is_selective(&keep_fn)) {
            self.brute_force(&pq, k, &keep_fn, &mut s.out);
        } else {
            self.search_slots(&pq, k, ef.unwrap_or(self.params.ef), keep, s);
        }
        s.out.iter().map(|c| (self.external_id(c.1), self.metric.score_from_key(c.0))).collect()
    }

    /// `true` when a sample says fewer than `params.brute_force_below` of the slots pass `keep`:
    /// the graph search would then wander far to fill its beam, and scoring only the passing
    /// nodes is both faster and exact.
    fn filter_is_selective(&self, keep: &dyn Fn(u32) -> bool) -> bool {
        let n = self.slots.load(Ordering::Acquire);
        if n == 0 {
            return false;
        }
        let step = (n / FILTER_SAMPLE).max(1);
        let (mut seen, mut passed) = (0u32, 0u32);
        let mut slot = 0;
        while slot < n {
            seen += 1;
            passed += u32::from(keep(slot));
            slot += step;
        }
        (passed as f64) < self.params.brute_force_below * seen as f64
    }

    /// Scores every slot `keep` accepts: the `k` best in `out`, best first.
    fn brute_force(&self, q: &S::Query<'_>, k: usize, keep: &dyn Fn(u32) -> bool, out: &mut Vec<Cand>) {
        let slots = self.slots.load(Ordering::Acquire);
        // Sized by what can be found, not by what was asked: k may be usize::MAX.
        let mut top: BinaryHeap<Cand> = BinaryHeap::with_capacity(k.min(slots as usize) + 1);
        for slot in 0..slots {
            if !keep(slot) {
                continue;
            }
            let c = Cand(self.storage.distance(q, slot), slot);
            if top.len() < k {
                top.push(c);
            } else if top.peek().is_some_and(|w| c < *w) {
                top.pop();
                top.push(c);
            }
        }
        out.clear();
        out.extend(top.into_sorted_vec());
    }

    /// Searches every query of `queries` (row-major) in parallel on the current rayon pool.
    /// The whole batch is checked (and, for cosine, normalized) once before any search, so an
    /// error names the bad query's row.
    pub fn search_batch(&self, queries: &[f32], k: usize, ef: Option<usize>) -> Result<Neighbors> {
        if k == 0 {
            return Err(vq_distance::Error::ZeroK.into());
        }
        let queries = prepare_rows("queries", queries, self.dim, self.metric)?;
        let rows: Vec<Vec<(u64, f32)>> = queries
            .as_slice()
            .par_chunks_exact(self.dim)
            .map(|q| {
                let mut s = self.take_scratch();
                let hits = self.search_prepared(q, k, ef, None, &mut s);
                self.give_scratch(s);
                hits
            })
            .collect();
        Ok(Neighbors::from_rows(k, self.metric, rows)?)
    }

    fn external_id(&self, slot: u32) -> u64 {
        self.external.slot(slot as usize)[0].load(Ordering::Acquire)
    }

    // ---- insert -------------------------------------------------------------------------

    /// Adds vectors (row-major) with ids equal to their insertion position (the first vector
    /// ever added gets 0), in parallel on the current rayon pool. Returns the first id.
    pub fn add(&self, vectors: &[f32]) -> Result<u64> {
        let n = self.check_batch(vectors)?;
        let first = self.claim(n)?;
        let ids: Vec<u64> = (0..n as u64).map(|i| u64::from(first) + i).collect();
        self.insert_claimed(vectors, &ids, first, false)?;
        Ok(u64::from(first))
    }

    /// Adds vectors (row-major) under the given external ids, in parallel on the current rayon
    /// pool. An id already present is an error ([`Error::DuplicateId`]); nothing of the batch
    /// is inserted then.
    pub fn add_with_ids(&self, vectors: &[f32], ids: &[u64]) -> Result<()> {
        let n = self.check_batch(vectors)?;
        if ids.len() != n {
            return Err(Error::IdCount { ids: ids.len(), vectors: n });
        }
        let first = self.claim(n)?;
        self.insert_claimed(vectors, ids, first, false)
    }

    /// [`add_with_ids`](Hnsw::add_with_ids), replacing the vectors of ids already present:
    /// the old vector is marked deleted (it keeps routing searches until
    /// [`compact`](Hnsw::compact) reclaims it) and the new one is inserted under the same id.
    pub fn upsert_with_ids(&self, vectors: &[f32], ids: &[u64]) -> Result<()> {
        let n = self.check_batch(vectors)?;
        if ids.len() != n {
            return Err(Error::IdCount { ids: ids.len(), vectors: n });
        }
        let first = self.claim(n)?;
        self.insert_claimed(vectors, ids, first, true)
    }

    /// [`add_with_ids`](Hnsw::add_with_ids) that first reuses the slots of deleted nodes
    /// (hnswlib's `replace_deleted`): each new vector takes over a deleted node's place in the
    /// graph, keeping its level, and is relinked as if inserted; only vectors beyond the
    /// deleted count take new slots. The deleted ids are gone for good afterwards (they can no
    /// longer be unmarked). Memory stays flat under a steady delete/insert load without
    /// waiting for [`compact`](Hnsw::compact).
    ///
    /// Takes `&mut self`: a reused slot's vector is rewritten in place, which must not race
    /// with a search reading it. Links that other nodes still hold to a reused slot now lead
    /// to the new vector; they stay valid edges, only longer (as in hnswlib).
    pub fn add_with_ids_reusing_deleted(&mut self, vectors: &[f32], ids: &[u64]) -> Result<()> {
        let n = self.check_batch(vectors)?;
        if ids.len() != n {
            return Err(Error::IdCount { ids: ids.len(), vectors: n });
        }
        // Copied only for cosine (normalized rows).
        let prepared = prepare_rows("vectors", vectors, self.dim, self.metric)?.into_cow();
        let slots = self.slots.load(Ordering::Acquire);
        let reusable: Vec<u32> = (0..slots)
            .filter(|&slot| self.states.slot(slot as usize)[0].load(Ordering::Acquire) == READY | DELETED)
            .take(n)
            .collect();
        let reused = reusable.len();
        {
            let mut map = lock(&self.id_map);
            let mut seen = std::collections::HashSet::with_capacity(n);
            if let Some(&dup) = ids.iter().find(|&&id| map.contains_key(&id) || !seen.insert(id)) {
                return Err(Error::DuplicateId(dup));
            }
            for (&slot, &id) in reusable.iter().zip(ids) {
                let old = self.external_id(slot);
                if map.get(&old) == Some(&slot) {
                    map.remove(&old);
                }
                map.insert(id, slot);
            }
        }
        // First every vector is rewritten (no reads yet), then the slots are relinked in
        // parallel: a relink reads other reused slots, which must already hold their new data.
        for (&slot, (v, &id)) in reusable.iter().zip(prepared.chunks_exact(self.dim).zip(ids)) {
            // SAFETY: `&mut self` excludes every reader and other writer of the slot.
            unsafe { self.storage.write(slot, v) };
            self.external.slot(slot as usize)[0].store(id, Ordering::Release);
        }
        reusable.par_iter().zip(prepared.par_chunks_exact(self.dim)).for_each(|(&slot, v)| self.relink(slot, v));
        for &slot in &reusable {
            self.states.slot(slot as usize)[0].store(READY, Ordering::Release);
        }
        self.deleted.fetch_sub(reused, Ordering::Relaxed);
        self.live.fetch_add(reused, Ordering::Relaxed);
        if reused < n {
            // The rest is a plain insert (validated above, ids checked free).
            self.add_with_ids(&vectors[reused * self.dim..], &ids[reused..])?;
        }
        Ok(())
    }

    /// Relinks a reused slot whose vector was just rewritten: its own lists are chosen afresh
    /// on every layer it has, and its former neighbours, whose lists were selected around the
    /// old vector, are re-pruned with the heuristic against the new one.
    fn relink(&self, slot: u32, v: &[f32]) {
        let level = self.level_of(slot);
        let mut former = Vec::new();
        let mut s = self.take_scratch();
        for layer in 0..=level {
            self.read_list(slot, layer, &mut s.links);
            former.extend(s.links.iter().map(|&n| (n, layer)));
        }
        let q = self.storage.prepare(v);
        if let Some((cur, top_level)) = self.descend(&q, level, &mut s.links) {
            self.connect(slot, &q, cur, level.min(top_level), &mut s);
        }
        self.give_scratch(s);
        for (node, layer) in former {
            if node != slot {
                self.reprune(node, slot, layer);
            }
        }
    }

    /// Drops `node`'s link to the reused `slot` on `layer` unless the link still earns its
    /// place by the selection heuristic's rule: no other neighbour of `node` may be closer to
    /// the new vector than `node` is.
    fn reprune(&self, node: u32, slot: u32, layer: usize) {
        let _g = lock(&self.locks.slot(node as usize)[0]);
        let mut ids = Vec::new();
        self.read_list(node, layer, &mut ids);
        let Some(at) = ids.iter().position(|&id| id == slot) else { return };
        let d = self.storage.distance_between(node, slot);
        if ids.iter().any(|&r| r != slot && self.storage.distance_between(slot, r) < d) {
            ids.remove(at);
            self.write_list(node, layer, &ids);
        }
    }

    /// Inserts one vector under `id` (callable from many threads at once, also while others
    /// search).
    pub fn insert(&self, id: u64, vector: &[f32]) -> Result<()> {
        // One vector: a longer buffer must not pass as several rows.
        if vector.len() != self.dim {
            return Err(vq_distance::Error::Dimension { what: "vector", got: vector.len(), expected: self.dim }.into());
        }
        self.check_batch(vector)?;
        let first = self.claim(1)?;
        self.insert_claimed(vector, &[id], first, false)
    }

    /// Checks a batch before any slot is claimed, so a refused batch (a NaN in row 5) leaves
    /// no unused slots behind and `add` numbers the next batch from where this one would have
    /// started.
    fn check_batch(&self, vectors: &[f32]) -> Result<usize> {
        validate_rows("vectors", vectors, self.dim, self.metric)?;
        Ok(vectors.len() / self.dim)
    }

    /// Hands out `n` consecutive slots, allocates them, then publishes them in `slots`.
    fn claim(&self, n: usize) -> Result<u32> {
        let max = u32::MAX as usize - 1;
        let first = self
            .claimed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c as usize).checked_add(n).filter(|&end| end <= max).map(|end| end as u32)
            })
            .map_err(|_| Error::Full { max })?;
        let end = first as usize + n;
        self.grow_to(end);
        // `grow_to(end)` allocated every chunk below `end`, so whichever claim raises `slots`
        // last, every slot below it exists; readers acquire it.
        self.slots.fetch_max(end as u32, Ordering::AcqRel);
        Ok(first)
    }

    fn insert_claimed(&self, vectors: &[f32], ids: &[u64], first: u32, replace: bool) -> Result<()> {
        let _gate = self.insert_gate.read().unwrap_or_else(|e| e.into_inner());
        // The vectors were validated by `check_batch`; reserve the ids before touching the graph.
        {
            let mut map = lock(&self.id_map);
            if !replace && let Some(&dup) = ids.iter().find(|id| map.contains_key(id)) {
                return Err(Error::DuplicateId(dup));
            }
            let mut seen = std::collections::HashSet::with_capacity(ids.len());
            if let Some(&dup) = ids.iter().find(|&&id| !seen.insert(id)) {
                return Err(Error::DuplicateId(dup));
            }
            for (i, &id) in ids.iter().enumerate() {
                if let Some(old) = map.insert(id, first + i as u32) {
                    // Replacing: the old vector is deleted (it still routes until compact()).
                    self.delete_slot(old);
                }
            }
        }
        // One normalization buffer per worker, not per vector.
        vectors.par_chunks_exact(self.dim).zip(ids.par_iter()).enumerate().for_each_init(
            Vec::new,
            |buf, (i, (v, &id))| {
                let v = self.prepare_vector("vectors", v, buf).expect("validated above");
                self.insert_slot(first + i as u32, id, v);
            },
        );
        Ok(())
    }

    /// Links `slot` (claimed, its id reserved) into the graph.
    fn insert_slot(&self, slot: u32, id: u64, v: &[f32]) {
        let level = draw_level(self.params.seed, slot, self.params.level_mult);
        // SAFETY: `slot` was claimed by this call alone and is not linked anywhere yet.
        unsafe { self.storage.write(slot, v) };
        self.external.slot(slot as usize)[0].store(id, Ordering::Release);
        self.levels.slot(slot as usize)[0].store(level as u8, Ordering::Release);
        if level > 0 {
            let width = 1 + self.params.m;
            let upper: Box<[AtomicU32]> = (0..level * width).map(|_| AtomicU32::new(0)).collect();
            self.upper_bytes.fetch_add(upper.len() * 4, Ordering::Relaxed);
            let _ = self.upper.slot(slot as usize)[0].set(upper);
        }

        let q = self.storage.prepare(v);
        let mut s = self.take_scratch();
        let entry = {
            let e = self.entry.load(Ordering::Acquire);
            if e == NO_ENTRY {
                let _g = lock(&self.entry_lock);
                if self.entry.load(Ordering::Acquire) == NO_ENTRY {
                    self.publish(slot);
                    self.entry.store(((level as u64) << 32) | u64::from(slot), Ordering::Release);
                    self.give_scratch(s);
                    return;
                }
            }
            self.descend(&q, level, &mut s.links)
        };
        let Some((cur, top_level)) = entry else { unreachable!("entry point exists past the check") };
        self.connect(slot, &q, cur, level.min(top_level), &mut s);
        self.give_scratch(s);
        self.publish(slot);
        if level > top_level {
            let _g = lock(&self.entry_lock);
            let e = self.entry.load(Ordering::Acquire);
            if e == NO_ENTRY || (e >> 32) < level as u64 {
                self.entry.store(((level as u64) << 32) | u64::from(slot), Ordering::Release);
            }
        }
    }

    /// Chooses `slot`'s links on layers `top..=0`, searching from `cur` (the entry point
    /// descended to layer `top`), and links the chosen neighbours back to it.
    fn connect(&self, slot: u32, q: &S::Query<'_>, mut cur: Cand, top: usize, s: &mut Scratch) {
        let mut chosen = Vec::with_capacity(self.params.m0);
        for layer in (0..=top).rev() {
            self.search_layer(q, cur, self.params.ef_construction, layer, s, None);
            let mut found: Vec<Cand> = s.top.drain().collect();
            found.sort_unstable();
            found.retain(|c| c.1 != slot);
            if let Some(&best) = found.first() {
                cur = best;
            }
            self.select_heuristic(&found, self.params.m, &mut chosen);
            let ids: Vec<u32> = chosen.iter().map(|c| c.1).collect();
            {
                // Never hold two node locks at once (no lock-order cycles between inserts): the
                // own list is written under its lock, then each neighbour is updated under its.
                let _own = lock(&self.locks.slot(slot as usize)[0]);
                self.write_list(slot, layer, &ids);
            }
            for c in &chosen {
                self.link_back(c.1, slot, c.0, layer);
            }
        }
    }

    fn publish(&self, slot: u32) {
        let prev = self.states.slot(slot as usize)[0].fetch_or(READY, Ordering::AcqRel);
        // Deleted while its insert was still running: it becomes ready but not live.
        if prev & DELETED == 0 {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds `new` (at key `d` from `node`) to `node`'s list on `layer`, shrinking the list
    /// with the heuristic when it is full.
    fn link_back(&self, node: u32, new: u32, d: f32, layer: usize) {
        let _g = lock(&self.locks.slot(node as usize)[0]);
        let list = self.list(node, layer);
        let n = list[0].load(Ordering::Acquire) as usize;
        let max = self.max_links(layer);
        if list[1..=n].iter().any(|x| x.load(Ordering::Acquire) == new) {
            return;
        }
        if n < max {
            list[1 + n].store(new, Ordering::Release);
            list[0].store(n as u32 + 1, Ordering::Release);
            return;
        }
        let mut cands: Vec<Cand> = list[1..=n]
            .iter()
            .map(|x| {
                let id = x.load(Ordering::Acquire);
                Cand(self.storage.distance_between(node, id), id)
            })
            .collect();
        cands.push(Cand(d, new));
        cands.sort_unstable();
        let mut chosen = Vec::with_capacity(max);
        self.select_heuristic(&cands, max, &mut chosen);
        let ids: Vec<u32> = chosen.iter().map(|c| c.1).collect();
        self.write_list(node, layer, &ids);
    }

    /// The paper's neighbour-selection heuristic (algorithm 4): walking candidates from the
    /// closest, keep one only if it is closer to the base than to every one kept so far, so
    /// links spread in all directions instead of bunching in one cluster.
    fn select_heuristic(&self, sorted: &[Cand], m: usize, out: &mut Vec<Cand>) {
        out.clear();
        if sorted.len() <= m {
            out.extend_from_slice(sorted);
            return;
        }
        let mut pruned = Vec::new();
        for &c in sorted {
            if out.len() >= m {
                break;
            }
            if out.iter().all(|r| self.storage.distance_between(c.1, r.1) > c.0) {
                out.push(c);
            } else if self.keep_pruned {
                pruned.push(c);
            }
        }
        if self.keep_pruned {
            let room = m - out.len();
            out.extend(pruned.into_iter().take(room));
        }
    }

    // ---- deletes --------------------------------------------------------------------------

    fn slot_of(&self, id: u64) -> Result<u32> {
        lock(&self.id_map).get(&id).copied().ok_or(Error::UnknownId(id))
    }

    /// Hides `id` from results; it keeps routing searches. Deleting twice is a no-op.
    pub fn mark_deleted(&self, id: u64) -> Result<()> {
        self.delete_slot(self.slot_of(id)?);
        Ok(())
    }

    fn delete_slot(&self, slot: u32) {
        let prev = self.states.slot(slot as usize)[0].fetch_or(DELETED, Ordering::AcqRel);
        if prev & DELETED == 0 {
            self.deleted.fetch_add(1, Ordering::Relaxed);
            if prev & READY != 0 {
                self.live.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Undoes [`mark_deleted`](Hnsw::mark_deleted).
    pub fn unmark_deleted(&self, id: u64) -> Result<()> {
        let slot = self.slot_of(id)?;
        let prev = self.states.slot(slot as usize)[0].fetch_and(!DELETED, Ordering::AcqRel);
        if prev & DELETED != 0 {
            self.deleted.fetch_sub(1, Ordering::Relaxed);
            if prev & READY != 0 {
                self.live.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Removes deleted nodes for good: each surviving node that linked to a deleted one gets
    /// its list repaired from the deleted node's own neighbours (re-selected with the
    /// heuristic), slots are renumbered densely, and the memory of the removed nodes is given
    /// back. External ids do not change.
    pub fn compact(&mut self) {
        let n = self.slots.load(Ordering::Acquire) as usize;
        let state = |slot: usize| self.states.slot(slot)[0].load(Ordering::Acquire);
        let alive: Vec<bool> = (0..n).map(|i| state(i) & (READY | DELETED) == READY).collect();
        if alive.iter().all(|&a| a) {
            return;
        }
        let mut new_slot = vec![u32::MAX; n];
        let mut next = 0u32;
        for (slot, &a) in alive.iter().enumerate() {
            if a {
                new_slot[slot] = next;
                next += 1;
            }
        }
        let live = next as usize;
        let fresh = Hnsw::with_storage(self.storage.empty_like(), self.params.clone())
            .expect("the parameters were checked when this index was made");
        fresh.grow_to(live);
        let mut buf = Vec::new();
        let mut links = Vec::new();
        let mut cands: Vec<Cand> = Vec::new();
        let mut chosen = Vec::new();
        for old in (0..n).filter(|&i| alive[i]) {
            let slot = new_slot[old];
            let level = self.level_of(old as u32);
            // SAFETY: `fresh` is not shared yet; each of its slots is written once, here.
            unsafe { fresh.storage.copy_from(slot, &self.storage, old as u32) };
            fresh.external.slot(slot as usize)[0].store(self.external_id(old as u32), Ordering::Release);
            fresh.levels.slot(slot as usize)[0].store(level as u8, Ordering::Release);
            fresh.states.slot(slot as usize)[0].store(READY, Ordering::Release);
            if level > 0 {
                let width = 1 + self.params.m;
                let upper: Box<[AtomicU32]> = (0..level * width).map(|_| AtomicU32::new(0)).collect();
                fresh.upper_bytes.fetch_add(upper.len() * 4, Ordering::Relaxed);
                let _ = fresh.upper.slot(slot as usize)[0].set(upper);
            }
            for layer in 0..=level {
                self.read_list(old as u32, layer, &mut links);
                if links.iter().all(|&x| alive[x as usize]) {
                    buf.clear();
                    buf.extend(links.iter().map(|&x| new_slot[x as usize]));
                } else {
                    // Candidates: the surviving neighbours and the surviving neighbours of the
                    // deleted ones (two hops), scored against this node.
                    cands.clear();
                    let mut two_hop = Vec::new();
                    for &x in &links {
                        if alive[x as usize] {
                            cands.push(Cand(self.storage.distance_between(old as u32, x), x));
                        } else if self.level_of(x) >= layer {
                            self.read_list(x, layer, &mut two_hop);
                            for &y in &two_hop {
                                if alive[y as usize] && y as usize != old {
                                    cands.push(Cand(self.storage.distance_between(old as u32, y), y));
                                }
                            }
                        }
                    }
                    // One id has one distance, so after sorting its copies are adjacent.
                    cands.sort_unstable();
                    cands.dedup_by_key(|c| c.1);
                    self.select_heuristic(&cands, self.max_links(layer), &mut chosen);
                    buf.clear();
                    buf.extend(chosen.iter().map(|c| new_slot[c.1 as usize]));
                }
                fresh.write_list(slot, layer, &buf);
            }
        }
        // Entry point: the old one if it survives, else the surviving node of highest level.
        let e = self.entry.load(Ordering::Acquire);
        let entry = if e != NO_ENTRY && alive[e as u32 as usize] {
            (e & !0xffff_ffff) | u64::from(new_slot[e as u32 as usize])
        } else {
            (0..n)
                .filter(|&i| alive[i])
                .max_by_key(|&i| (self.level_of(i as u32), std::cmp::Reverse(i)))
                .map_or(NO_ENTRY, |i| ((self.level_of(i as u32) as u64) << 32) | u64::from(new_slot[i]))
        };
        fresh.entry.store(entry, Ordering::Release);
        fresh.claimed.store(live as u32, Ordering::Release);
        fresh.slots.store(live as u32, Ordering::Release);
        fresh.live.store(live, Ordering::Relaxed);
        {
            let mut map = lock(&fresh.id_map);
            for slot in 0..live as u32 {
                map.insert(fresh.external_id(slot), slot);
            }
        }
        *self = fresh;
    }

    // ---- persistence ----------------------------------------------------------------------

    /// Copies the graph's arrays (no insert runs meanwhile). Slots claimed by a failed batch
    /// and never linked are kept as not-ready nodes.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let _gate = self.insert_gate.write().unwrap_or_else(|e| e.into_inner());
        let slots = self.slots.load(Ordering::Acquire) as usize;
        let load8 = |c: &Chunks<AtomicU8>| (0..slots).map(|i| c.slot(i)[0].load(Ordering::Acquire)).collect();
        let mut links0 = Vec::with_capacity(slots * (1 + self.params.m0));
        let mut upper = Vec::new();
        let levels: Vec<u8> = load8(&self.levels);
        for (slot, &level) in levels.iter().enumerate() {
            links0.extend(self.links0.slot(slot).iter().map(|x| x.load(Ordering::Acquire)));
            if level > 0 {
                match self.upper.slot(slot)[0].get() {
                    Some(u) => upper.extend(u.iter().map(|x| x.load(Ordering::Acquire))),
                    None => upper.extend(std::iter::repeat_n(0, level as usize * (1 + self.params.m))),
                }
            }
        }
        Snapshot {
            slots,
            entry: self.entry.load(Ordering::Acquire),
            external: (0..slots).map(|i| self.external.slot(i)[0].load(Ordering::Acquire)).collect(),
            levels,
            states: load8(&self.states),
            links0,
            upper,
        }
    }

    /// Fills an empty graph, whose storage already holds slots `0..snap.slots`, from a checked
    /// snapshot. The arrays get exactly `snap.slots` slots (see `Chunks::ensure_exact`).
    pub(crate) fn restore(&self, snap: &Snapshot) {
        let n = snap.slots;
        self.storage.reserve(n);
        self.links0.ensure_exact(n);
        self.upper.ensure_exact(n);
        self.levels.ensure_exact(n);
        self.states.ensure_exact(n);
        self.external.ensure_exact(n);
        self.locks.ensure_exact(n);
        self.claimed.store(n as u32, Ordering::Release);
        self.slots.store(n as u32, Ordering::Release);
        let width = 1 + self.params.m;
        let mut upper = snap.upper.chunks_exact(width);
        let mut map = lock(&self.id_map);
        let (mut live, mut deleted) = (0, 0);
        for slot in 0..n {
            self.external.slot(slot)[0].store(snap.external[slot], Ordering::Release);
            self.levels.slot(slot)[0].store(snap.levels[slot], Ordering::Release);
            self.states.slot(slot)[0].store(snap.states[slot], Ordering::Release);
            for (cell, &v) in self.links0.slot(slot).iter().zip(&snap.links0[slot * (1 + self.params.m0)..]) {
                cell.store(v, Ordering::Release);
            }
            let level = snap.levels[slot] as usize;
            if level > 0 {
                let lists: Box<[AtomicU32]> =
                    upper.by_ref().take(level).flatten().map(|&v| AtomicU32::new(v)).collect();
                self.upper_bytes.fetch_add(lists.len() * 4, Ordering::Relaxed);
                let _ = self.upper.slot(slot)[0].set(lists);
            }
            if snap.states[slot] & READY != 0 {
                if snap.states[slot] & DELETED != 0 {
                    deleted += 1;
                } else {
                    map.insert(snap.external[slot], slot as u32);
                    live += 1;
                }
            }
        }
        // A deleted vector keeps its id (so it can be undeleted) unless a live one replaced it.
        for slot in 0..n {
            if snap.states[slot] & (READY | DELETED) == READY | DELETED {
                map.entry(snap.external[slot]).or_insert(slot as u32);
            }
        }
        self.live.store(live, Ordering::Relaxed);
        self.deleted.store(deleted, Ordering::Relaxed);
        self.entry.store(snap.entry, Ordering::Release);
    }

    // ---- inspection -----------------------------------------------------------------------

    /// Structural facts of the graph, for tests and diagnostics.
    pub fn check_graph(&self) -> GraphReport {
        let n = self.slots.load(Ordering::Acquire) as usize;
        let mut r = GraphReport::default();
        let mut buf = Vec::new();
        for slot in 0..n as u32 {
            if self.states.slot(slot as usize)[0].load(Ordering::Acquire) & READY == 0 {
                continue;
            }
            r.nodes += 1;
            for layer in 0..=self.level_of(slot) {
                self.read_list(slot, layer, &mut buf);
                if buf.len() > self.max_links(layer) {
                    r.over_degree += 1;
                }
                if buf.contains(&slot) {
                    r.self_loops += 1;
                }
                let mut sorted = buf.clone();
                sorted.sort_unstable();
                sorted.dedup();
                r.duplicate_edges += buf.len() - sorted.len();
                r.edges += buf.len();
            }
        }
        // Reachability on layer 0 from the entry point.
        let e = self.entry.load(Ordering::Acquire);
        if e != NO_ENTRY {
            // The entry point, like the links below, may be a slot claimed after `n` was read.
            let mut seen = vec![false; n.max(e as u32 as usize + 1)];
            let mut stack = vec![e as u32];
            seen[e as u32 as usize] = true;
            let mut reached = 0;
            while let Some(s) = stack.pop() {
                reached += 1;
                self.read_list(s, 0, &mut buf);
                for &x in &buf {
                    // Inserts running meanwhile link slots claimed after `n` was read.
                    if x as usize >= seen.len() {
                        seen.resize(x as usize + 1, false);
                    }
                    if !seen[x as usize] {
                        seen[x as usize] = true;
                        stack.push(x);
                    }
                }
            }
            r.unreachable = r.nodes - reached.min(r.nodes);
        }
        r
    }
}

/// What [`Hnsw::check_graph`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphReport {
    /// Nodes in the graph.
    pub nodes: usize,
    /// Links over all layers.
    pub edges: usize,
    /// Lists longer than their layer's maximum degree.
    pub over_degree: usize,
    /// Links from a node to itself.
    pub self_loops: usize,
    /// Repeated links within a list.
    pub duplicate_edges: usize,
    /// Nodes not reachable from the entry point on layer 0.
    pub unreachable: usize,
}
