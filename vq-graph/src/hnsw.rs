//! The HNSW graph (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor
//! search using Hierarchical Navigable Small World graphs", 2016/2018).
//!
//! Concurrency: every method takes `&self`. Inserts lock only the nodes whose link lists they
//! change; link lists are arrays of atomics written with release and read with acquire
//! ordering, and a node's id is written into another node's list only after its vector, level
//! and own links are in place, so a concurrent search never meets a torn list or an
//! unpublished node. Node locks are striped: node `s` locks mutex `s % LOCK_STRIPES` of a fixed
//! pool, so two nodes may share a mutex. That costs only waiting, never a deadlock, because no
//! thread ever holds two node locks at once (an insert writes its own list, releases it, then
//! links back to each neighbour under that neighbour's lock alone).
//!
//! Slots are handed out under the id lock, after the batch was validated and its ids checked,
//! and published (`slots`) only once every array holds them, so everything that walks
//! `0..slots` finds what it reads.
//!
//! Memory per node: its vector (or code), a directory word (`dir`: its level and where its
//! layer-0 list is), its layer-0 list, its upper-layer lists if its level is above 0 (a node
//! of level L owns L consecutive lists `[count, id × m]` of one arena, found through a u32
//! kept beside its layer-0 list), and a state byte. External ids cost nothing while they are
//! the slot numbers (`add`); the first id that is not switches to a per-slot id array and an
//! id → slot map.
//!
//! Layer-0 lists have two forms. An *open* list is a fixed block `[count, id × m0, upper
//! index]` of atomics that inserts write under the node's lock. A *frozen* list is packed
//! bytes sized to its real degree (`[upper index if level > 0, id × count]`, ids of 3 bytes
//! while the graph has at most 2^24 slots, else 4), written once by
//! [`Hnsw::shrink_to_fit`] (or a load, or `compact`) under `&mut self` and never changed
//! while the graph is shared. A node's list is frozen until an insert must change it: the
//! lock holder then copies it into a new open block and publishes the block through the
//! node's directory word (release; readers acquire), so a search holds either the old frozen
//! bytes, which stay valid, or the complete new block. A graph built by inserts has open
//! lists only (m0 slots each, 132 B at m0 = 32); frozen, the same lists of imgsift's HNSW16
//! take about a third of that, which is what brings a node under 600 B at m = 16, d = 128.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, RwLock};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_distance::{IdFilter, Metric, Neighbors, TopK, prepare_row_into, prepare_rows, validate_rows};

use crate::arena::Chunks;
use crate::error::{Error, Result};
use crate::storage::{FlatStorage, VectorStorage};
use crate::visited::Visited;

/// Build and search parameters, with hnswlib's / Faiss' names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HnswParams {
    /// Links per node on the upper layers, and how many of a new node's neighbours link back
    /// to it on each layer (default 16; Milvus: `M`).
    #[serde(alias = "M")]
    pub m: usize,
    /// Links per node on layer 0 (default `2 · m`), also the most a new node keeps there.
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
    /// Where a filtered search scores the passing nodes directly (exact) instead of walking
    /// the graph: when `p² · n < brute_force_walk · ef`, with `p` the fraction of the `n` nodes
    /// the filter passes (estimated from a sample) and `ef` the beam (at least `k`). A walk
    /// that fills its beam with passing nodes scores about `ef / p` nodes times a constant of
    /// the graph, brute force `p · n` (and a filter check per node): so the fewer pass and the
    /// smaller the index or the wider the beam, the likelier brute force. A walk also gives up
    /// for brute force once it has scored as many nodes as pass, so a misjudged one costs at
    /// most about twice the brute force. Default 9, from imgsift100k, where the crossover lay
    /// near 2.7 % passing at ef 8 and 7.6 % at ef 64 (the rule's `p = √(9 · ef / n)`;
    /// `benchmarks/filtered.py`, figures in BENCHMARKS.md); 4 times that when the filter
    /// lists its ids ([`search_filtered_batch`](Hnsw::search_filtered_batch)), where brute force
    /// scores the listed vectors alone. 0 never brute-forces up front.
    pub brute_force_walk: f64,
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
            brute_force_walk: 9.0,
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
        if self.brute_force_walk.is_nan() || self.brute_force_walk < 0.0 {
            return bad("brute_force_walk", "must be a number, at least 0");
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
/// vectors (at most `vq_distance::PREFETCH_HEAD_LINES` of each), 12 ahead for 128-d f32 (8
/// lines each), which covers most nodes' unvisited neighbours at once. On imgsift100k 24 lines
/// gave ~20 % fewer QPS, 48 ~5 % fewer, 64–96 the same within noise.
const LINES_IN_FLIGHT: usize = 96;
/// The fewest vectors prefetched ahead, however long they are: at 384-d f32 (24 lines)
/// `LINES_IN_FLIGHT` alone gives 4, and 6 measured 4–9 % more QPS on textemb100k and 1–5 % on
/// imgsift400k-d384 (HNSW16, 1 thread, BENCHMARKS.md); 8 gave about the same, 16 less. Vectors
/// of 256 dimensions or fewer get 6 or more from `LINES_IN_FLIGHT` already.
const MIN_VECTORS_AHEAD: usize = 6;
/// How far past the radius a range search's walk goes, as a fraction of the ball's depth in
/// keys (the radius' key minus the best key found): nodes in that shell are followed but not
/// returned. On imgsift100k (HNSW32, efConstruction 40, 20th-neighbour radius, ~370 hits a
/// query) 0.1 took the hits found at ef 16 from 0.9934 to 0.9963 for ~25–30 % of the QPS,
/// where ef 256 (0.9967) cost over half; on textemb100k (~47 hits) it is about level with
/// raising ef (BENCHMARKS.md, "HNSW range search").
const RANGE_SHELL: f32 = 0.1;
/// Listed vectors spanning more bytes than this are prefetched while brute force scores them:
/// about a core's L2 cache (1 MiB on the EPYC measured), below which the vectors stay cached
/// from one query of a batch to the next.
const PREFETCH_LISTED_BYTES: usize = 1 << 20;
/// Queries a listed brute force scores together, block by block of listed vectors.
const LISTED_QUERY_CHUNK: usize = 32;
/// Bytes of listed vectors in a block: a quarter of a core's L2, so a block stays cached while
/// every query of a chunk is scored against it.
const LISTED_BLOCK_BYTES: usize = 256 << 10;
/// Slots sampled to estimate a filter's selectivity.
const FILTER_SAMPLE: usize = 512;
/// Once the nodes inserted since the last walk reach 1/this of the graph, the batch that brings
/// them checks which nodes a walk from the entry point reaches ([`Hnsw::relink_orphans`]): the
/// walk reads every list once, about 200 ns a node (20 ms for imgsift100k's graph) against
/// 40-90 µs an insert, so a quarter of the graph's inserts spend at most about 2 % on a round
/// of it, a whole build 0.3 %.
const REACH_CHECK_SHARE: usize = 4;
/// Graphs of at most this many slots walk after every batch: at about 200 ns a node the walk
/// costs at most 0.2 ms, while the batch's local check (see [`Hnsw::relink_orphans`]) can miss
/// an island of two or three older nodes that link only each other (under inner product,
/// about one random sequence of a dozen small batches in 1,500 still left one).
const WALK_ALWAYS_BELOW: usize = 1_024;
/// Inserts a worker runs in a wave of a batch before the pool may take up other work: a
/// search queued behind a batch insert waits about one wave (p99 13-15 ms, at most 25 ms,
/// for a 4-query search beside a d = 16 insert of 58,000 vectors on 2 cores; without waves
/// it waited for the whole insert, 2.7 s), and the waves' joins cost a 100k SIFT build
/// +1.7 % (within noise; 32 a worker measured +3-6 %).
const INSERT_WAVE_PER_WORKER: usize = 64;
/// Rounds of relinking after a batch.
const RELINK_ROUNDS: usize = 5;
/// Suspects a worker checks for a link back before the check is split further: a check reads
/// ~m0 lists (1-3 µs), so a single insert's suspects stay on the inserting thread.
const RELINK_CHECKS_PER_TASK: usize = 64;

/// Mutexes node locks are striped over: enough that two threads inserting at once rarely
/// want the same one, few enough to cost nothing per node (8 KiB in all).
const LOCK_STRIPES: usize = 1024;
/// The count bits of a list's first word.
const COUNT_MASK: u32 = 0xffff;
/// A node's directory word: `OPEN | level << 58 | open block number`, or (frozen) `level << 58
/// | count << 45 | byte offset in the frozen lists`. 5 level bits hold `MAX_LEVEL`, 13 count
/// bits hold m0 ≤ 4096.
const DIR_OPEN: u64 = 1 << 63;
const DIR_LEVEL_SHIFT: u32 = 58;
const DIR_COUNT_SHIFT: u32 = 45;
const DIR_POS_MASK: u64 = (1 << DIR_COUNT_SHIFT) - 1;
/// Bytes after the last frozen list, so that every id, 3 bytes wide, can be read as 4.
const FROZEN_SLACK: usize = 4;

/// The frozen layer-0 lists (see the module docs): immutable while the graph is shared.
struct Frozen {
    bytes: Box<[u8]>,
    /// Bytes per id: 3 while every slot fits in 24 bits, else 4.
    width: usize,
}

impl Default for Frozen {
    fn default() -> Self {
        Frozen { bytes: Box::default(), width: 4 }
    }
}

impl Frozen {
    /// Appends the list of a node (its upper index first when it has upper lists) to `bytes`
    /// and returns the node's directory word.
    fn push(bytes: &mut Vec<u8>, width: usize, level: usize, upper_at: u32, ids: &[u32]) -> u64 {
        let at = bytes.len() as u64;
        if level > 0 {
            bytes.extend_from_slice(&upper_at.to_le_bytes());
        }
        for &id in ids {
            bytes.extend_from_slice(&id.to_le_bytes()[..width]);
        }
        ((level as u64) << DIR_LEVEL_SHIFT) | ((ids.len() as u64) << DIR_COUNT_SHIFT) | at
    }

    /// The upper index of the frozen node `d` (level above 0).
    #[inline]
    fn upper_at(&self, d: u64) -> usize {
        let at = (d & DIR_POS_MASK) as usize;
        self.bytes.get(at..at + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// Appends the ids of the frozen node `d` to `out`.
    #[inline]
    fn read(&self, d: u64, out: &mut Vec<u32>) {
        let level = (d >> DIR_LEVEL_SHIFT) & 31;
        let count = ((d >> DIR_COUNT_SHIFT) & 0x1fff) as usize;
        let start = (d & DIR_POS_MASK) as usize + if level > 0 { 4 } else { 0 };
        let w = self.width;
        if count == 0 {
            return;
        }
        let mask = if w == 3 { 0x00ff_ffff } else { u32::MAX };
        // Each id is read as the 4 bytes from its start (the slack covers the last one).
        let Some(span) = self.bytes.get(start..start + count * w + (4 - w)) else { return };
        // One `extend` of a counted range: a single reservation, no capacity test per id.
        out.extend((0..count).map(|i| {
            let b = &span[i * w..i * w + 4];
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & mask
        }));
    }

    /// Where the list of frozen node `d` starts (for prefetching).
    #[inline]
    fn start(&self, d: u64) -> *const u8 {
        self.bytes.as_ptr().wrapping_add((d & DIR_POS_MASK) as usize)
    }
}

/// Everything of a graph but its vectors, as flat arrays (what a file holds): copied out of a
/// graph to be written, or borrowed from the container it is read from.
pub(crate) struct Snapshot<'a> {
    pub(crate) slots: usize,
    pub(crate) entry: u64,
    pub(crate) next_id: u64,
    pub(crate) external: Cow<'a, [u64]>,
    pub(crate) levels: Cow<'a, [u8]>,
    pub(crate) states: Cow<'a, [u8]>,
    pub(crate) links0: Cow<'a, [u32]>,
    pub(crate) upper: Cow<'a, [u32]>,
}

/// `(key, slot)` ordered by key, then slot.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cand(f32, u32);

impl Cand {
    /// One integer whose unsigned order is `Cand`'s (key, then slot): the key's bits in
    /// `f32::total_cmp`'s order (`-0.0` taken as `0.0`, as `<` takes it) above the slot, so a
    /// heap compares with one instruction instead of two float compares and a branch.
    #[inline(always)]
    fn packed(self) -> u64 {
        (u64::from(vq_distance::ordered_bits(self.0 + 0.0)) << 32) | u64::from(self.1)
    }

    /// The inverse of [`Cand::packed`].
    #[inline(always)]
    fn unpacked(packed: u64) -> Cand {
        Cand(vq_distance::from_ordered_bits((packed >> 32) as u32), packed as u32)
    }
}

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

/// The order in which `base`'s link selection walks candidates: by key, ties in an order
/// drawn from `base` and the slot (a bijective mix of the two) instead of by slot. A node among
/// many equally distant candidates (copies of one vector) then keeps links to a spread of
/// them, different from its neighbours' spread. Ties by slot, every list dropped the newest
/// copies and later copies had no in-links; ties in one fixed order for every list starved the
/// copies ranked last in the same way.
fn link_order(base: u32, a: &Cand, b: &Cand) -> std::cmp::Ordering {
    let rank = |slot: u32| {
        // An xor with a constant, an odd multiplier and an xor-shift are each bijective on
        // u32: distinct slots keep distinct ranks, so one slot's entries stay adjacent after
        // a sort.
        let x = (slot ^ base.wrapping_mul(0x85EB_CA6B)).wrapping_mul(0x9E37_79B9);
        x ^ (x >> 16)
    };
    a.0.total_cmp(&b.0).then_with(|| rank(a.1).cmp(&rank(b.1)))
}

/// The candidates a [`TopK`] of `(key, slot)` kept, best first (ties to the smaller slot, as
/// [`Cand`] orders them).
fn best_first(best: TopK) -> impl Iterator<Item = Cand> {
    best.into_sorted().into_iter().map(|(key, slot)| Cand(key, slot as u32))
}

/// Reusable buffers of one search.
struct Scratch {
    visited: Visited,
    /// Nodes to expand, nearest first, as [`Cand::packed`] integers (one compare each).
    candidates: BinaryHeap<Reverse<u64>>,
    /// The best nodes found, worst on top, as [`Cand::packed`] integers.
    top: BinaryHeap<u64>,
    /// Unvisited neighbours of the node being expanded.
    fresh: Vec<u32>,
    /// A link list being read.
    links: Vec<u32>,
    /// Results being sorted.
    out: Vec<Cand>,
    /// Nodes a layer search may score before it gives up, leaving no result (`usize::MAX`
    /// but in a filtered k-NN search).
    budget: usize,
    /// A normalized copy of the query (cosine).
    query: Vec<f32>,
    /// Nodes an insert's link-backs pruned out of layer-0 lists, handed to `displaced` once.
    dropped: Vec<u32>,
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
    /// Per slot: its directory word (level, and where its layer-0 list is; see `DIR_OPEN`).
    /// The level is set before the slot is published and never changes.
    dir: Chunks<AtomicU64>,
    /// Open layer-0 blocks, `[count, id × m0, upper index]`, numbered in the order they were
    /// opened; the count changes under the node's lock.
    links0: Chunks<AtomicU32>,
    /// Open blocks handed out.
    open_lists: AtomicUsize,
    /// Frozen layer-0 lists; replaced only under `&mut self`.
    frozen: Frozen,
    /// Upper-layer lists, `[count, id × m]` each: a node of level L whose upper index is `u`
    /// owns lists `u .. u + L` (layer l is list `u + l − 1`).
    upper: Chunks<AtomicU32>,
    /// Upper lists handed out (changed under `ids`).
    upper_lists: AtomicU32,
    states: Chunks<AtomicU8>,
    /// Striped node locks (see the module docs), allocated with the first slot.
    locks: OnceLock<Box<[Mutex<()>]>>,
    /// External ids once they stopped being the slot numbers; unallocated until then.
    external: Chunks<AtomicU64>,
    /// `true` once `external` and `ids` hold the ids; until then slot `s` has id `s`.
    sparse: AtomicBool,
    /// Id → slot while `sparse`; its lock also serializes the handing out of slots and ids.
    ids: Mutex<HashMap<u64, u32>>,
    /// The first id [`add`](Hnsw::add) hands out: past every id ever given, so an automatic
    /// id never repeats a caller's (the slot count while every id is its slot's). Changed
    /// under `ids`.
    next_id: AtomicU64,
    /// Slots handed out, and allocated: raised under `ids` only after every array holds the
    /// new slots, so everything that walks `0..slots` (brute force, filter sampling, save,
    /// check_graph) finds every chunk it reaches.
    slots: AtomicU32,
    /// Live (ready, not deleted) nodes.
    live: AtomicUsize,
    /// Nodes marked deleted.
    deleted: AtomicUsize,
    /// `level << 32 | slot` of the entry point, or [`NO_ENTRY`].
    entry: AtomicU64,
    entry_lock: Mutex<()>,
    pool: Mutex<Vec<Scratch>>,
    /// Nodes inserts pruned out of a layer-0 list since the last batch's check for nodes left
    /// without a way in ([`Hnsw::relink_orphans`]).
    displaced: Mutex<Vec<u32>>,
    /// Nodes inserted since the last walk for nodes without a way in
    /// ([`Hnsw::relink_orphans`]).
    unwalked: AtomicUsize,
    keep_pruned: bool,
    /// Inserts hold it shared; a snapshot holds it exclusively, so it sees no half insert.
    insert_gate: RwLock<()>,
    /// The packed layer-0 lists [`Hnsw::prepare_shrink`] built for the next
    /// [`Hnsw::shrink_to_fit`]; dropped by any change to the lists before then.
    prepared: Mutex<Option<PreparedPack>>,
    /// Whether `prepared` holds one (read by every insert batch without taking the lock).
    has_prepared: AtomicBool,
}

/// Every layer-0 list of slots `0..slots` packed, with each slot's directory word: what
/// [`Hnsw::install_frozen`] takes.
struct PreparedPack {
    slots: usize,
    frozen: Frozen,
    words: Vec<u64>,
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

/// Bytes per id of frozen lists in a graph of `slots` slots.
fn id_width(slots: usize) -> usize {
    if slots <= 1 << 24 { 3 } else { 4 }
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
            dir: Chunks::new(1),
            links0: Chunks::new(2 + params.m0),
            open_lists: AtomicUsize::new(0),
            frozen: Frozen::default(),
            upper: Chunks::new(1 + params.m),
            upper_lists: AtomicU32::new(0),
            states: Chunks::new(1),
            locks: OnceLock::new(),
            external: Chunks::new(1),
            sparse: AtomicBool::new(false),
            ids: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            slots: AtomicU32::new(0),
            live: AtomicUsize::new(0),
            deleted: AtomicUsize::new(0),
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
            pool: Mutex::new(Vec::new()),
            displaced: Mutex::new(Vec::new()),
            unwalked: AtomicUsize::new(0),
            keep_pruned: params.keep_pruned || storage.metric() == Metric::InnerProduct,
            insert_gate: RwLock::new(()),
            prepared: Mutex::new(None),
            has_prepared: AtomicBool::new(false),
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

    /// The first id the next [`add`](Hnsw::add) hands out: past every id ever given.
    pub fn next_id(&self) -> u64 {
        self.next_id.load(Ordering::Acquire)
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

    /// Sets the beam width of later inserts (Faiss' `hnsw.efConstruction`, which may also
    /// change between adds); nodes already linked keep their links.
    pub fn set_ef_construction(&mut self, ef_construction: usize) {
        self.params.ef_construction = ef_construction.max(1);
    }

    /// Makes room for `additional` more vectors up front (a bulk load then never grows). A
    /// hint: dropped when the memory it needs cannot be had (an allocation of that size
    /// fails), never an abort.
    pub fn reserve(&self, additional: usize) {
        // Vectors as f32 (codes take less), layer-0 lists, directory and state: an upper bound.
        let node_bytes = 4 * (self.dim + self.params.m0 + 2) + 9;
        if Vec::<u8>::new().try_reserve_exact(additional.saturating_mul(node_bytes)).is_err() {
            return;
        }
        let start = self.slots.load(Ordering::Acquire);
        let end = (start as usize).saturating_add(additional).min(u32::MAX as usize - 1);
        self.grow_to(end);
        // Every new slot opens a layer-0 block.
        self.links0.ensure(self.open_lists.load(Ordering::Acquire) + (end - start as usize));
        // The upper lists of those slots too: their levels are known (drawn from the slot).
        let lists: usize = (start..end as u32).map(|slot| self.draw_level(slot)).sum();
        self.upper.ensure(self.upper_lists.load(Ordering::Acquire) as usize + lists);
    }

    /// Makes every per-slot array hold slots `0..n`.
    fn grow_to(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.storage.reserve(n);
        self.dir.ensure(n);
        self.states.ensure(n);
        if self.sparse.load(Ordering::Acquire) {
            self.external.ensure(n);
        }
        self.locks.get_or_init(|| (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect());
    }

    /// The lock of `slot`'s lists (striped; see the module docs).
    #[inline]
    fn node_lock(&self, slot: u32) -> MutexGuard<'_, ()> {
        let locks = self.locks.get_or_init(|| (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect());
        lock(&locks[slot as usize % LOCK_STRIPES])
    }

    fn draw_level(&self, slot: u32) -> usize {
        draw_level(self.params.seed, slot, self.params.level_mult)
    }

    /// Memory by part (see [`MemoryUsage`]).
    pub fn memory_usage(&self) -> MemoryUsage {
        // hashbrown: one control byte per bucket beside each (key, value).
        let map = lock(&self.ids).capacity() * (std::mem::size_of::<(u64, u32)>() + 1);
        let locks = self.locks.get().map_or(0, |l| std::mem::size_of_val::<[Mutex<()>]>(l));
        // A pack prepared and not yet installed is a second copy of the layer-0 lists.
        let prepared = lock(&self.prepared).as_ref().map_or(0, |p| p.frozen.bytes.len() + p.words.capacity() * 8);
        MemoryUsage {
            vectors: self.storage.memory_bytes(),
            links: self.dir.allocated_bytes()
                + self.links0.allocated_bytes()
                + self.frozen.bytes.len()
                + prepared
                + self.upper.allocated_bytes(),
            ids: self.states.allocated_bytes() + self.external.allocated_bytes() + locks + map,
            scratch: lock(&self.pool).iter().map(|s| s.visited.bytes()).sum::<usize>()
                + lock(&self.displaced).capacity() * std::mem::size_of::<u32>(),
        }
    }

    // ---- validation -------------------------------------------------------------------

    /// Checks a vector and returns it as the storage wants it (normalized for cosine, into
    /// `buf`, so a reused buffer makes this allocation-free): `vq-distance`'s shared check.
    fn prepare_vector<'a>(&self, what: &'static str, v: &'a [f32], buf: &'a mut Vec<f32>) -> Result<&'a [f32]> {
        Ok(prepare_row_into(what, v, self.dim, self.metric, buf)?)
    }

    // ---- links --------------------------------------------------------------------------

    /// The directory word of `slot`.
    #[inline]
    fn dir_of(&self, slot: u32) -> u64 {
        self.dir.slot(slot as usize)[0].load(Ordering::Acquire)
    }

    #[inline]
    fn level_of(&self, slot: u32) -> usize {
        ((self.dir_of(slot) >> DIR_LEVEL_SHIFT) & 31) as usize
    }

    /// The open layer-0 block a directory word points to, if it points to one.
    #[inline]
    fn open_block(&self, d: u64) -> Option<&[AtomicU32]> {
        (d & DIR_OPEN != 0).then(|| self.links0.slot((d & DIR_POS_MASK) as usize))
    }

    /// The first upper list of `slot` (meaningful above level 0).
    #[inline]
    fn upper_at(&self, slot: u32) -> usize {
        let d = self.dir_of(slot);
        match self.open_block(d) {
            Some(block) => block[1 + self.params.m0].load(Ordering::Acquire) as usize,
            None => self.frozen.upper_at(d),
        }
    }

    /// The upper-layer list of `slot` on `layer` (1 ..= its level): `[count, ids…]`.
    #[inline]
    fn upper_list(&self, slot: u32, layer: usize) -> &[AtomicU32] {
        debug_assert!(layer >= 1 && layer <= self.level_of(slot), "slot {slot} has no list on layer {layer}");
        self.upper.slot(self.upper_at(slot) + layer - 1)
    }

    /// The writable list of `slot` on `layer`, `[count, ids…]`: on layer 0 its open block
    /// (without the upper index), opened from its frozen list first if need be. The caller
    /// holds the node's lock, or the graph is not shared yet.
    fn list_mut(&self, slot: u32, layer: usize) -> &[AtomicU32] {
        if layer > 0 {
            return self.upper_list(slot, layer);
        }
        let m0 = self.params.m0;
        let d = self.dir_of(slot);
        if let Some(block) = self.open_block(d) {
            return &block[..1 + m0];
        }
        // Open it: a new block holding the frozen list, published through the directory
        // word once complete. Readers that loaded the old word keep reading the frozen bytes,
        // which do not change while the graph is shared.
        let at = self.open_lists.fetch_add(1, Ordering::AcqRel);
        self.links0.ensure(at + 1);
        let block = self.links0.slot(at);
        let mut ids = Vec::with_capacity(m0);
        self.frozen.read(d, &mut ids);
        let level = (d >> DIR_LEVEL_SHIFT) & 31;
        let upper_at = if level > 0 { self.frozen.upper_at(d) as u32 } else { 0 };
        block[1 + m0].store(upper_at, Ordering::Release);
        for (cell, &id) in block[1..].iter().zip(&ids) {
            cell.store(id, Ordering::Release);
        }
        block[0].store(ids.len() as u32, Ordering::Release);
        self.dir.slot(slot as usize)[0].store(DIR_OPEN | (level << DIR_LEVEL_SHIFT) | at as u64, Ordering::Release);
        &block[..1 + m0]
    }

    /// The number of ids in `list`.
    #[inline]
    fn count(list: &[AtomicU32]) -> usize {
        ((list[0].load(Ordering::Acquire) & COUNT_MASK) as usize).min(list.len() - 1)
    }

    /// Starts loading `slot`'s directory word.
    #[inline]
    fn prefetch_dir(&self, slot: u32) {
        #[cfg(target_arch = "x86_64")]
        if let Some(cell) = self.dir.get(slot as usize) {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: prefetching never faults; SSE is part of the x86-64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(cell.as_ptr().cast::<i8>()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    #[inline]
    fn prefetch_links(&self, slot: u32, layer: usize) {
        #[cfg(target_arch = "x86_64")]
        if layer == 0
            && let Some(cell) = self.dir.get(slot as usize)
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let d = cell[0].load(Ordering::Relaxed);
            let at: *const i8 = if d & DIR_OPEN != 0 {
                match self.links0.get((d & DIR_POS_MASK) as usize) {
                    Some(block) => block.as_ptr().cast(),
                    None => return,
                }
            } else {
                self.frozen.start(d).cast()
            };
            // SAFETY: prefetching never faults, whatever the address; SSE is part of the
            // x86-64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(at) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (slot, layer);
    }

    #[inline]
    fn max_links(&self, layer: usize) -> usize {
        if layer == 0 { self.params.m0 } else { self.params.m }
    }

    /// How many of the `found` nodes a new node links to on `layer` (see [`Hnsw::connect`]):
    /// all of them when they fit the layer's degree, else the heuristic's `m`. A graph that
    /// keeps pruned candidates (every inner-product graph) keeps all only within `m`: it
    /// would fill `2m` with pruned ones, and on clustered data that left 26 % of its nodes
    /// without a way in (against under 10 %).
    fn new_links(&self, layer: usize, found: usize) -> usize {
        let fits = if self.keep_pruned { self.params.m } else { self.max_links(layer) };
        if found <= fits { found } else { self.params.m }
    }

    /// Reads a list into `out` (ids only), from either form of a layer-0 list.
    #[inline]
    fn read_list(&self, slot: u32, layer: usize, out: &mut Vec<u32>) {
        out.clear();
        let list = if layer == 0 {
            let d = self.dir_of(slot);
            match self.open_block(d) {
                Some(block) => &block[..1 + self.params.m0],
                None => return self.frozen.read(d, out),
            }
        } else {
            self.upper_list(slot, layer)
        };
        let n = Self::count(list);
        out.extend(list[1..=n].iter().map(|x| x.load(Ordering::Acquire)));
    }

    /// Replaces a list (the caller holds the node's lock, or the graph is not shared yet).
    fn write_list(&self, slot: u32, layer: usize, ids: &[u32]) {
        let list = self.list_mut(slot, layer);
        debug_assert!(ids.len() < list.len());
        for (cell, &id) in list[1..].iter().zip(ids) {
            cell.store(id, Ordering::Release);
        }
        Self::set_count(list, ids.len());
    }

    /// Sets a list's count, keeping the level bits (only the lock holder writes the word).
    #[inline]
    fn set_count(list: &[AtomicU32], n: usize) {
        let header = list[0].load(Ordering::Relaxed);
        list[0].store((header & !COUNT_MASK) | n as u32, Ordering::Release);
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
            budget: usize::MAX,
            query: Vec::new(),
            dropped: Vec::new(),
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
        self.search_layer_seeing(q, entry, ef, layer, s, keep, |_| {});
    }

    /// [`search_layer`](Self::search_layer), showing `seen` every node it scores, the entry
    /// included (a range search keeps those within its radius). Monomorphized, so the k-NN
    /// search's empty closure costs nothing.
    #[allow(clippy::too_many_arguments)]
    fn search_layer_seeing(
        &self,
        q: &S::Query<'_>,
        entry: Cand,
        ef: usize,
        layer: usize,
        s: &mut Scratch,
        keep: Option<&dyn Fn(u32) -> bool>,
        mut seen: impl FnMut(Cand),
    ) {
        let accept = |id: u32| keep.is_none_or(|f| f(id));
        s.visited.reset(self.slots.load(Ordering::Acquire) as usize);
        s.candidates.clear();
        s.top.clear();
        s.visited.insert(entry.1);
        seen(entry);
        s.candidates.push(Reverse(entry.packed()));
        if accept(entry.1) {
            s.top.push(entry.packed());
        }
        let worst = |top: &BinaryHeap<u64>| top.peek().map_or(f32::INFINITY, |&c| Cand::unpacked(c).0);
        let mut bound = if s.top.len() >= ef { worst(&s.top) } else { f32::INFINITY };
        let mut scored = 0usize;
        while let Some(Reverse(c)) = s.candidates.pop() {
            let c = Cand::unpacked(c);
            if c.0 > bound {
                break;
            }
            if scored > s.budget {
                s.top.clear();
                break;
            }
            let (visited, fresh) = (&mut s.visited, &mut s.fresh);
            self.score_unvisited(q, c.1, layer, visited, fresh, |d, id| {
                scored += 1;
                seen(Cand(d, id));
                if s.top.len() < ef || d < bound {
                    s.candidates.push(Reverse(Cand(d, id).packed()));
                    // A candidate may be expanded later: load its directory word now, so that
                    // then its list's address is known at once and its prefetch (below) is
                    // early, instead of two misses in a row (the word, then the list).
                    if layer == 0 {
                        self.prefetch_dir(id);
                    }
                    if accept(id) {
                        s.top.push(Cand(d, id).packed());
                        if s.top.len() > ef {
                            s.top.pop();
                        }
                        if s.top.len() >= ef {
                            bound = worst(&s.top);
                        }
                    }
                }
            });
            // The next node to expand: start loading its links while this loop winds down.
            if let Some(&Reverse(next)) = s.candidates.peek() {
                self.prefetch_links(Cand::unpacked(next).1, layer);
            }
        }
    }

    /// Marks `slot`'s neighbours on `layer` visited and hands each one not visited before to
    /// `each` with its key, in list order.
    #[inline]
    fn score_unvisited(
        &self,
        q: &S::Query<'_>,
        slot: u32,
        layer: usize,
        visited: &mut Visited,
        fresh: &mut Vec<u32>,
        mut each: impl FnMut(f32, u32),
    ) {
        // First collect the unvisited neighbours and prefetch their vectors, then score them:
        // the memory loads overlap instead of queueing behind each distance. Read the ids and
        // start loading their visited tags, then test them: the tag loads overlap instead of
        // each waiting for the one before.
        self.read_list(slot, layer, fresh);
        for &id in fresh.iter() {
            visited.prefetch(id);
        }
        visited.keep_unvisited(fresh);
        // Keep about `LINES_IN_FLIGHT` lines of vectors loading, so that the memory latency of
        // many neighbours overlaps instead of each distance waiting for its own. Score them
        // four at a time (f32 storage loads the query once for the four and keeps four rows
        // streaming; each key is the one-at-a-time key to the bit), the rest one by one.
        let ahead = self.vectors_ahead();
        for &id in fresh.iter().take(ahead) {
            self.storage.prefetch(id);
        }
        let quads = if self.storage.scores_four_at_once() { fresh.len() / 4 * 4 } else { 0 };
        for (at, quad) in fresh[..quads].chunks_exact(4).enumerate() {
            for &next in fresh.iter().skip(4 * at + ahead).take(4) {
                self.storage.prefetch(next);
            }
            let ids = [quad[0], quad[1], quad[2], quad[3]];
            for (key, id) in self.storage.distances4(q, ids).into_iter().zip(ids) {
                each(key, id);
            }
        }
        for i in quads..fresh.len() {
            if let Some(&next) = fresh.get(i + ahead) {
                self.storage.prefetch(next);
            }
            let id = fresh[i];
            each(self.storage.distance(q, id), id);
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
        s.out.extend(s.top.drain().map(Cand::unpacked));
        s.out.sort_unstable();
        s.out.truncate(k);
    }

    fn is_live(&self, slot: u32) -> bool {
        self.states.slot(slot as usize)[0].load(Ordering::Acquire) & (READY | DELETED) == READY
    }

    /// The `k` nearest live vectors to `query`: `(id, score)` best first (scores in the
    /// convention of [`Metric`]). `ef` overrides the default beam width; it is raised to `k`.
    /// An empty index gives an empty result; `k` at or above [`len`](Hnsw::len) gives every
    /// live vector, and `ef` at or above it the exact `k` nearest (every vector is scored).
    /// An answer is shorter than `k` only when fewer than `k` vectors are live: a walk that
    /// comes back short scores every node instead.
    pub fn search(&self, query: &[f32], k: usize, ef: Option<usize>) -> Result<Vec<(u64, f32)>> {
        self.search_impl(query, k, ef, None)
    }

    /// [`search`](Hnsw::search) keeping only ids for which `filter` is `true`; the others still
    /// route the search. Shorter than `k` only when fewer than `k` live vectors pass. A filter
    /// that can list its ids is faster through
    /// [`search_filtered_batch`](Hnsw::search_filtered_batch).
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
        // k or the beam at or above the live count asks for everything: score it all, which
        // is exact and costs no more than the walk would (a walk reaches only what links lead
        // to from where the descent ends, not always every node the entry point reaches).
        let ef = self.beam(ef, k);
        let live = self.live.load(Ordering::Relaxed);
        let everything = k_want >= live || ef >= live;
        let pass_rate = if filter.is_none() || everything { 1.0 } else { self.pass_rate(&keep_fn) };
        if everything || (filter.is_some() && self.brute_force_beats_walk(pass_rate, ef, false)) {
            self.brute_force(&pq, k, &keep_fn, &mut s.out);
        } else {
            // A filtered walk fills its beam with passing nodes only, so the fewer pass, the
            // more it scores; past what scoring the passing nodes directly would cost, it gives
            // up for that (at most twice the brute force, where the walk would run on).
            if filter.is_some() {
                let passing = pass_rate * f64::from(self.slots.load(Ordering::Acquire));
                s.budget = (passing as usize).max(k);
            }
            self.search_slots(&pq, k, ef, keep, s);
            s.budget = usize::MAX;
            // Fewer than k found: the walk ran out of nodes to reach, because a beam not yet
            // full expands everything it reaches, or gave up (above). Either fewer than k
            // nodes pass (a filter), or the graph has islands (groups of identical vectors
            // larger than a list, or a filter that passes only nodes the walk cannot reach),
            // or brute force is the cheaper way. Scoring every node settles each, so a search
            // never answers short while more could be found.
            if s.out.len() < k {
                self.brute_force(&pq, k, &keep_fn, &mut s.out);
            }
        }
        s.out.iter().map(|c| (self.external_id(c.1), self.metric.score_from_key(c.0))).collect()
    }

    /// The beam of a k-NN search: `ef` or the default, at least `k` (no search needs more
    /// than the slots there are).
    fn beam(&self, ef: Option<usize>, k: usize) -> usize {
        let slots = self.slots.load(Ordering::Acquire).max(1) as usize;
        ef.unwrap_or(self.params.ef).max(k.min(slots))
    }

    /// Whether scoring the passing nodes is expected to be cheaper than a walk of beam `ef`
    /// when a fraction `pass_rate` of the nodes passes (see [`HnswParams::brute_force_walk`]).
    /// With the passing nodes `listed`, brute force skips the filter check on every node,
    /// which was most of its cost on imgsift100k: the constant is 4 times larger.
    fn brute_force_beats_walk(&self, pass_rate: f64, ef: usize, listed: bool) -> bool {
        let n = f64::from(self.slots.load(Ordering::Acquire));
        let walk = self.params.brute_force_walk * if listed { 4.0 } else { 1.0 };
        pass_rate * pass_rate * n < walk * ef as f64
    }

    /// The fraction of slots `keep` accepts, from a sample of [`FILTER_SAMPLE`] spread over
    /// them ([`vq_distance::sample_places`]: jittered, so a periodic filter does not alias
    /// with the spacing; 1 for an empty graph).
    fn pass_rate(&self, keep: &dyn Fn(u32) -> bool) -> f64 {
        let n = self.slots.load(Ordering::Acquire) as usize;
        if n == 0 {
            return 1.0;
        }
        let (mut seen, mut passed) = (0u32, 0u32);
        for slot in vq_distance::sample_places(n, FILTER_SAMPLE) {
            seen += 1;
            passed += u32::from(keep(slot as u32));
        }
        f64::from(passed) / f64::from(seen.max(1))
    }

    /// Scores every slot `keep` accepts: the `k` best in `out`, best first.
    fn brute_force(&self, q: &S::Query<'_>, k: usize, keep: &dyn Fn(u32) -> bool, out: &mut Vec<Cand>) {
        let mut best = TopK::new(k);
        self.score_every(q, keep, |c| best.push(c.0, u64::from(c.1)));
        out.clear();
        out.extend(best_first(best));
    }

    /// Scores every published slot `keep` accepts, in slot order.
    fn score_every(&self, q: &S::Query<'_>, keep: &dyn Fn(u32) -> bool, mut each: impl FnMut(Cand)) {
        for slot in 0..self.slots.load(Ordering::Acquire) {
            if keep(slot) {
                each(Cand(self.storage.distance(q, slot), slot));
            }
        }
    }

    /// Brute force of every query of `queries` (checked, normalized rows) over the listed
    /// `slots` (ascending; those live and passing `filter` are scored), in parallel over
    /// chunks of queries: `offer` gets each query's candidates, in slot order, into the state
    /// `sink` starts; `hits` turns it into the query's answer. Block by block of listed
    /// vectors, every query of a chunk is scored against the block while it is in cache, so
    /// a listed vector is read from memory once a chunk, not once a query (the distances are
    /// the one-query brute force's, in the same order: the answers are the same).
    fn listed_batch<T>(
        &self,
        queries: &[f32],
        slots: &[u32],
        filter: &dyn IdFilter,
        sink: impl Fn() -> T + Sync,
        offer: impl Fn(&mut T, Cand) + Sync,
        hits: impl Fn(T) -> Vec<Cand> + Sync,
    ) -> Vec<Vec<(u64, f32)>> {
        let keep = |slot: u32| self.is_live(slot) && filter.accepts(self.external_id(slot));
        let slot_bytes = self.storage.slot_lines().max(1) * 64;
        let block = (LISTED_BLOCK_BYTES / slot_bytes).max(1);
        // Scattered listed vectors past a core's cache: the first query of a block keeps
        // vectors loading ahead, as a walk does. Under it they stay cached between chunks,
        // where prefetching only costs (imgsift100k at ef 16, measured a query at a time,
        // before chunks: 5,000 listed vectors (2.5 MiB) 22 % more QPS prefetched, 300
        // (150 KiB) 20 % fewer).
        let prefetch = slots.len() * slot_bytes > PREFETCH_LISTED_BYTES;
        let ahead = self.vectors_ahead();
        let nq = queries.len() / self.dim.max(1);
        let chunk = nq.div_ceil(rayon::current_num_threads()).clamp(1, LISTED_QUERY_CHUNK);
        queries
            .par_chunks(chunk * self.dim)
            .flat_map_iter(|rows| {
                let prepared: Vec<S::Query<'_>> =
                    rows.chunks_exact(self.dim).map(|q| self.storage.prepare(q)).collect();
                let mut sinks: Vec<T> = prepared.iter().map(|_| sink()).collect();
                let mut kept = Vec::with_capacity(block.min(slots.len()));
                for part in slots.chunks(block) {
                    kept.clear();
                    kept.extend(part.iter().copied().filter(|&slot| keep(slot)));
                    for (i, (q, state)) in prepared.iter().zip(&mut sinks).enumerate() {
                        for (j, &slot) in kept.iter().enumerate() {
                            if i == 0
                                && prefetch
                                && let Some(&next) = kept.get(j + ahead)
                            {
                                self.storage.prefetch(next);
                            }
                            offer(state, Cand(self.storage.distance(q, slot), slot));
                        }
                    }
                }
                sinks.into_iter().map(|state| {
                    hits(state).into_iter().map(|c| (self.external_id(c.1), self.metric.score_from_key(c.0))).collect()
                })
            })
            .collect()
    }

    /// How many vectors to keep loading ahead of the one scored: about `LINES_IN_FLIGHT`
    /// cache lines of the heads a prefetch asks for.
    fn vectors_ahead(&self) -> usize {
        let lines = self.storage.slot_lines().clamp(1, vq_distance::PREFETCH_HEAD_LINES);
        (LINES_IN_FLIGHT / lines).clamp(MIN_VECTORS_AHEAD, 16)
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

    /// [`search_filtered`](Hnsw::search_filtered) for every query of `queries` (row-major, in
    /// parallel, checked as [`search_batch`](Hnsw::search_batch) checks them), with any
    /// [`IdFilter`]. A filter that holds its ids as a set (an `IdBitset`, an `IdSet`) and
    /// passes few enough of them for brute force lists them once for the batch: brute force
    /// then scores those vectors alone instead of asking the filter about every node, block
    /// by block of them for a chunk of queries at a time (the answers are each query's own
    /// brute force's).
    pub fn search_filtered_batch(
        &self,
        queries: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: &dyn IdFilter,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        if k == 0 {
            return Err(vq_distance::Error::ZeroK.into());
        }
        let queries = prepare_rows("queries", queries, self.dim, self.metric)?;
        if let Some(slots) = self.listed_slots(filter, self.beam(ef, k)) {
            let offer = |best: &mut TopK, c: Cand| best.push(c.0, u64::from(c.1));
            let hits = |best: TopK| best_first(best).collect();
            return Ok(self.listed_batch(queries.as_slice(), &slots, filter, || TopK::new(k), offer, hits));
        }
        let accepts = |id: u64| filter.accepts(id);
        Ok(queries
            .as_slice()
            .par_chunks_exact(self.dim)
            .map(|q| {
                let mut s = self.take_scratch();
                let hits = self.search_prepared(q, k, ef, Some(&accepts), &mut s);
                self.give_scratch(s);
                hits
            })
            .collect())
    }

    /// The slots of the ids `filter` lists, when it lists them and passes few enough nodes for
    /// brute force to beat a walk of beam `ef`. Listing costs the passing count once per
    /// batch: only where brute force is expected (a looser filter is walked, its pass rate
    /// sampled as for a predicate).
    fn listed_slots(&self, filter: &dyn IdFilter, ef: usize) -> Option<Vec<u32>> {
        let n = f64::from(self.slots.load(Ordering::Acquire).max(1));
        filter
            .accepted_count()
            .filter(|&count| self.brute_force_beats_walk(count as f64 / n, ef, true))
            .and_then(|_| filter.accepted_ids())
            .map(|ids| self.slots_of(&ids))
    }

    /// The slots holding `ids` (unknown ids skipped), ascending.
    fn slots_of(&self, ids: &[u64]) -> Vec<u32> {
        let map = lock(&self.ids);
        let mut slots: Vec<u32> = if self.sparse.load(Ordering::Acquire) {
            ids.iter().filter_map(|id| map.get(id).copied()).collect()
        } else {
            let n = u64::from(self.slots.load(Ordering::Acquire));
            ids.iter().filter(|&&id| id < n).map(|&id| id as u32).collect()
        };
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// Every live vector within `radius` of `query` that the graph reaches (Faiss'
    /// `range_search`; within as [`Metric::within`] says: squared L2 below `radius`, inner
    /// product and cosine above it): `(id, score)` best first, ties to the smaller id.
    ///
    /// A beam search of width `ef` (the default beam when `None`) finds the query's
    /// neighbourhood and keeps every node it scored within the radius; then every one of those
    /// has its layer-0 links followed, and every node reached within the radius joins them
    /// and is followed in turn, until none is left. Nodes in a thin shell just outside the
    /// radius are followed too (not returned), because pruned links often join two nodes of
    /// the ball through one outside it. So the answer is the part of the ball connected to
    /// what the beam found: a ball of any size costs about its hits times `m0` distances
    /// beyond the beam, instead of a k-NN search at a `k` above the hit count.
    ///
    /// `filter` keeps only the ids for which it is `true` (the others still route); a filter
    /// that passes few enough nodes ([`HnswParams::brute_force_walk`]) scores just the nodes
    /// it passes, exactly, as [`search_filtered`](Hnsw::search_filtered) does. A NaN radius
    /// is an error; an infinite one keeps every live vector (that the filter passes), all
    /// scored, or none. An `ef` at or above [`len`](Hnsw::len) scores every vector: exact.
    pub fn range_search(
        &self,
        query: &[f32],
        radius: f32,
        ef: Option<usize>,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<(u64, f32)>> {
        vq_distance::check_radius(radius)?;
        let mut s = self.take_scratch();
        let mut normalized = std::mem::take(&mut s.query);
        let result = self.prepare_vector("query", query, &mut normalized).map(|q| {
            let mut hits = self.range_prepared(q, radius, ef, filter, &mut s);
            self.metric.sort_hits(&mut hits);
            hits
        });
        s.query = normalized;
        self.give_scratch(s);
        result
    }

    /// [`range_search`](Hnsw::range_search) of every query of `queries` (row-major), in
    /// parallel on the current rayon pool, in [`RangeResult`](vq_distance::RangeResult)'s
    /// layout, with any [`IdFilter`]. The whole batch is checked before any search, as in
    /// [`search_batch`](Hnsw::search_batch). A filter that lists its ids (an `IdBitset`, an
    /// `IdSet`) and passes few enough of them for brute force has them listed once for the
    /// batch, as in [`search_filtered_batch`](Hnsw::search_filtered_batch): the vectors it
    /// passes are scored alone, exactly, instead of the filter being asked about every node.
    pub fn range_search_batch(
        &self,
        queries: &[f32],
        radius: f32,
        ef: Option<usize>,
        filter: Option<&dyn IdFilter>,
    ) -> Result<vq_distance::RangeResult> {
        vq_distance::check_radius(radius)?;
        let queries = prepare_rows("queries", queries, self.dim, self.metric)?;
        let listed = filter.and_then(|f| Some((f, self.listed_slots(f, self.range_beam(ef))?)));
        let rows = if let Some((filter, slots)) = listed {
            let limit = self.metric.key_from_score(radius);
            let within = |ball: &mut Vec<Cand>, c: Cand| {
                if c.0 < limit {
                    ball.push(c);
                }
            };
            self.listed_batch(queries.as_slice(), &slots, filter, Vec::new, within, |ball| ball)
        } else {
            let accepts = |id: u64| filter.is_none_or(|f| f.accepts(id));
            queries
                .as_slice()
                .par_chunks_exact(self.dim)
                .map(|q| {
                    let predicate = filter.map(|_| &accepts as &dyn Fn(u64) -> bool);
                    let mut s = self.take_scratch();
                    let hits = self.range_prepared(q, radius, ef, predicate, &mut s);
                    self.give_scratch(s);
                    hits
                })
                .collect()
        };
        Ok(vq_distance::RangeResult::from_rows(self.metric, rows)?)
    }

    /// The beam of a range search: `ef` or the default, at least 1.
    fn range_beam(&self, ef: Option<usize>) -> usize {
        ef.unwrap_or(self.params.ef).max(1)
    }

    /// Range search of one query that passed `prepare_vector`: the hits in no order.
    fn range_prepared(
        &self,
        q: &[f32],
        radius: f32,
        ef: Option<usize>,
        filter: Option<&dyn Fn(u64) -> bool>,
        s: &mut Scratch,
    ) -> Vec<(u64, f32)> {
        let pq = self.storage.prepare(q);
        // Keys are scores, negated where larger is better: exactly `within` on keys.
        let limit = self.metric.key_from_score(radius);
        let keep_fn = |slot: u32| self.is_live(slot) && filter.is_none_or(|f| f(self.external_id(slot)));
        let keep: Option<&dyn Fn(u32) -> bool> =
            if filter.is_some() || self.deleted.load(Ordering::Relaxed) > 0 { Some(&keep_fn) } else { None };
        // Not pooled: a ball can hold most of the graph, and pooled scratch would keep it.
        let mut ball = Vec::new();
        // An infinite radius, or a beam at least the live count, asks for every node: scored
        // all, so that none is missed for want of in-links, as a k-NN search for `k ≥ len` does.
        let ef = self.range_beam(ef);
        if limit == f32::INFINITY
            || ef >= self.live.load(Ordering::Relaxed)
            || (filter.is_some() && self.brute_force_beats_walk(self.pass_rate(&keep_fn), ef, false))
        {
            self.score_every(&pq, &keep_fn, |c| {
                if c.0 < limit {
                    ball.push(c);
                }
            });
        } else {
            self.range_slots(&pq, limit, ef, keep, s, &mut ball);
        }
        ball.iter().map(|c| (self.external_id(c.1), self.metric.score_from_key(c.0))).collect()
    }

    /// The graph walk of [`range_search`](Hnsw::range_search): every node reached with a key
    /// below `limit` that `keep` accepts, in `ball`.
    fn range_slots(
        &self,
        q: &S::Query<'_>,
        limit: f32,
        ef: usize,
        keep: Option<&dyn Fn(u32) -> bool>,
        s: &mut Scratch,
        ball: &mut Vec<Cand>,
    ) {
        let Some((entry, _)) = self.descend(q, 0, &mut s.links) else { return };
        // Every node the beam scores, for now: the shell's width depends on the best key.
        self.search_layer_seeing(q, entry, ef, 0, s, keep, |c| ball.push(c));
        let best = ball.iter().map(|c| c.0).fold(f32::INFINITY, f32::min);
        if best >= limit {
            // The beam found nothing within the radius (a −∞ limit included).
            ball.clear();
            return;
        }
        // The walk also follows nodes just outside the ball, in a shell `RANGE_SHELL` times
        // as deep as the ball's (key) depth below the best node: the pruned links of HNSW
        // often join two nodes of the ball through one outside it.
        let shell = limit + RANGE_SHELL * (limit - best);
        let shell = if shell.is_finite() { shell } else { limit };
        ball.retain(|c| c.0 < shell);
        // Follow the links of every node in the ball or shell, the beam's included: the beam
        // expanded only its best `ef`, and the visited set still marks every node it scored,
        // whose in-shell ones are already in `ball`.
        let mut next = 0;
        while let Some(&Cand(_, slot)) = ball.get(next) {
            next += 1;
            self.score_unvisited(q, slot, 0, &mut s.visited, &mut s.fresh, |d, id| {
                if d < shell {
                    ball.push(Cand(d, id));
                }
            });
        }
        ball.retain(|c| c.0 < limit);
        if let Some(keep) = keep {
            ball.retain(|c| keep(c.1));
        }
    }

    /// The id of `slot`. A slot reached by a search or a walk of `0..slots` was published
    /// after its id was written and after any switch to sparse ids that preceded it, so the
    /// flag read here is never older than the slot.
    #[inline]
    fn external_id(&self, slot: u32) -> u64 {
        if self.sparse.load(Ordering::Acquire) {
            self.external.slot(slot as usize)[0].load(Ordering::Acquire)
        } else {
            u64::from(slot)
        }
    }

    /// Switches to explicit ids (the caller holds `ids`): every slot so far gets its own
    /// number as its id, in `external` and in the map, before readers see the flag.
    fn go_sparse(&self, map: &mut HashMap<u64, u32>) {
        if self.sparse.load(Ordering::Acquire) {
            return;
        }
        let n = self.slots.load(Ordering::Acquire);
        self.external.ensure(n as usize);
        map.reserve(n as usize);
        for slot in 0..n {
            self.external.slot(slot as usize)[0].store(u64::from(slot), Ordering::Release);
            // Dense ids are only ever slots of batches that passed their checks, and a
            // not-ready slot of a loaded file makes it sparse from the start: all are in use.
            map.insert(u64::from(slot), slot);
        }
        self.sparse.store(true, Ordering::Release);
    }

    // ---- insert -------------------------------------------------------------------------

    /// Adds vectors (row-major) under automatic ids, in parallel on the current rayon pool.
    /// Returns the first id. Automatic ids count from 0 and go on past every id ever given
    /// ([`add_with_ids`](Hnsw::add_with_ids) too), so they never repeat one; while only `add`
    /// was used they are the insertion positions. A batch that fails its checks inserts
    /// nothing and uses up no ids.
    pub fn add(&self, vectors: &[f32]) -> Result<u64> {
        self.insert_batch(vectors, None, false)
    }

    /// Adds vectors (row-major) under the given external ids, in parallel on the current rayon
    /// pool. An id of a live vector is an error ([`Error::DuplicateId`]), and so is `u64::MAX`
    /// (it pads short answers); nothing of the batch is inserted then. The id of a deleted
    /// vector may be given again: the new vector takes it (the deleted node routes searches
    /// until [`compact`](Hnsw::compact) and can no longer be unmarked).
    pub fn add_with_ids(&self, vectors: &[f32], ids: &[u64]) -> Result<()> {
        self.insert_batch(vectors, Some(ids), false).map(drop)
    }

    /// [`add_with_ids`](Hnsw::add_with_ids), replacing the vectors of ids already present:
    /// the old vector is marked deleted (it keeps routing searches until
    /// [`compact`](Hnsw::compact) reclaims it) and the new one is inserted under the same id.
    pub fn upsert_with_ids(&self, vectors: &[f32], ids: &[u64]) -> Result<()> {
        self.insert_batch(vectors, Some(ids), true).map(drop)
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
        // The one check of the batch (what `check_batch` runs), normalizing it for cosine:
        // copied only then.
        let prepared = prepare_rows("vectors", vectors, self.dim, self.metric)?.into_cow();
        self.storage.check_vectors(&prepared)?;
        // Relinking reused slots changes lists without claiming slots.
        self.drop_prepared();
        let n = prepared.len() / self.dim;
        if ids.len() != n {
            return Err(Error::IdCount { ids: ids.len(), vectors: n });
        }
        vq_distance::check_caller_ids(ids)?;
        let slots = self.slots.load(Ordering::Acquire);
        let reusable: Vec<u32> = (0..slots)
            .filter(|&slot| self.states.slot(slot as usize)[0].load(Ordering::Acquire) == READY | DELETED)
            .take(n)
            .collect();
        let reused = reusable.len();
        {
            let mut map = lock(&self.ids);
            let sparse = self.sparse.load(Ordering::Acquire);
            let mut seen = std::collections::HashSet::with_capacity(n);
            if let Some(&dup) = ids.iter().find(|&&id| self.id_live(&map, sparse, slots, id) || !seen.insert(id)) {
                return Err(Error::DuplicateId(dup));
            }
            if reused > 0 {
                // A reused slot takes a new id: ids are no longer the slot numbers.
                self.go_sparse(&mut map);
            }
            for (&slot, &id) in reusable.iter().zip(ids) {
                let old = self.external_id(slot);
                if map.get(&old) == Some(&slot) {
                    map.remove(&old);
                }
                map.insert(id, slot);
            }
            let next = self.next_id.load(Ordering::Acquire);
            self.next_id.store(vq_distance::next_auto_id(next, &ids[..reused]), Ordering::Release);
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
        self.relink_orphans(&reusable);
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
        let _g = self.node_lock(node);
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
    /// search). One insert in a quarter of the graph's size also walks the graph for nodes
    /// left without a way in (about 200 ns a node: 20 ms at 100,000 nodes).
    pub fn insert(&self, id: u64, vector: &[f32]) -> Result<()> {
        // One vector: a longer buffer must not pass as several rows.
        if vector.len() != self.dim {
            return Err(vq_distance::Error::Dimension { what: "vector", got: vector.len(), expected: self.dim }.into());
        }
        self.insert_batch(vector, Some(&[id]), false).map(drop)
    }

    /// Checks a batch before any slot is claimed, so a refused batch (a NaN in row 5) leaves
    /// no unused slots behind and `add` numbers the next batch from where this one would have
    /// started.
    fn check_batch(&self, vectors: &[f32]) -> Result<usize> {
        validate_rows("vectors", vectors, self.dim, self.metric)?;
        self.storage.check_vectors(vectors)?;
        Ok(vectors.len() / self.dim)
    }

    /// Checks a batch (vectors, then ids), hands out its slots with their ids (`None`:
    /// automatic ones), then links them in parallel. Returns the first automatic id.
    fn insert_batch(&self, vectors: &[f32], ids: Option<&[u64]>, replace: bool) -> Result<u64> {
        let n = self.check_batch(vectors)?;
        if let Some(ids) = ids
            && ids.len() != n
        {
            return Err(Error::IdCount { ids: ids.len(), vectors: n });
        }
        let _gate = self.insert_gate.read().unwrap_or_else(|e| e.into_inner());
        // The lists change: a pack prepared before no longer matches them. (`prepare_shrink`
        // holds the gate exclusively, so its flag is seen here.)
        if self.has_prepared.swap(false, Ordering::AcqRel) {
            lock(&self.prepared).take();
        }
        let (first, first_id) = self.claim(n, ids, replace)?;
        // In waves of a few rows a worker: between two waves the pool takes up work queued
        // meanwhile (another thread's batch search), which would otherwise wait for the whole
        // batch, rayon's workers draining their own tasks before the queue of injected ones.
        let wave = INSERT_WAVE_PER_WORKER * rayon::current_num_threads();
        for (w, rows) in vectors.chunks(wave * self.dim).enumerate() {
            // One normalization buffer per worker, not per vector.
            rows.par_chunks_exact(self.dim).enumerate().for_each_init(Vec::new, |buf, (i, v)| {
                let v = self.prepare_vector("vectors", v, buf).expect("validated above");
                self.insert_slot(first + (w * wave + i) as u32, v);
            });
        }
        self.relink_orphans(&(first..first + n as u32).collect::<Vec<_>>());
        Ok(first_id)
    }

    /// Links again, one at a time, the nodes a batch just inserted (`slots`) left without a
    /// way in.
    ///
    /// Two nodes inserted at once do not see each other, so neither links to the other; a
    /// neighbour that receives both may keep one and prune the other as covered by it,
    /// although the one kept has no link to the one pruned. A node that loses every such
    /// contest keeps its out-links but has no in-link, and no search reaches it (later inserts
    /// of a batch orphan a node the same way, more rarely): two-thread builds of imgsift100k /
    /// textemb100k left 11-12 of 100,000 nodes unreachable at HNSW16, 10-12 at m 8, one-thread
    /// builds 0 and 2-7. Searched again with the whole batch visible, such a node links to
    /// (and is linked from) the nodes it raced with; after it, none of those eight builds left
    /// a node unreachable.
    ///
    /// Which nodes: once the inserts since the last walk (this batch's included) reach
    /// 1/[`REACH_CHECK_SHARE`] of the graph, or while it is small ([`WALK_ALWAYS_BELOW`]),
    /// every node no walk from the entry point reaches ([`Hnsw::relink_islands`]); below, so
    /// that a small batch costs no walk over a large graph, those of the batch's nodes and of
    /// the nodes its inserts (or forced links) pruned out of a list (`displaced`) that no chain
    /// of links from outside them reaches ([`Hnsw::unanchored`]). That local check misses
    /// islands of older nodes linking each other (before anchoring, 2,000 single inserts at
    /// `ef_construction` 8-16, `m` 4, left 0-227 of 10,000 nodes so, on clustered 16-d data),
    /// which the next walk finds. A node
    /// still stranded in a later round is put in its nearest neighbour's list
    /// ([`Hnsw::force_link`]). At most [`RELINK_ROUNDS`] rounds: a relinked node may push
    /// another out of a list. Under inner product a node without a way in is not searched
    /// again ([`Hnsw::searches_orphans_again`]): its nearest neighbour that can takes it at
    /// once (without that, batches of a few dozen left nodes that no search found, whatever
    /// its `ef`, until a quarter of the graph more came and the walk ran).
    fn relink_orphans(&self, batch: &[u32]) {
        let since_walk = self.unwalked.fetch_add(batch.len(), Ordering::AcqRel) + batch.len();
        let slots = self.slots.load(Ordering::Acquire) as usize;
        if since_walk * REACH_CHECK_SHARE >= slots || slots <= WALK_ALWAYS_BELOW {
            // (Inserts counted meanwhile by another thread may be lost: their walk comes later.)
            self.unwalked.store(0, Ordering::Release);
            // Dropped, not cleared: a large batch's list can hold a fifth of its nodes.
            drop(std::mem::take(&mut *lock(&self.displaced)));
            self.relink_islands(since_walk);
            return;
        }
        let search = self.searches_orphans_again();
        let (mut v, mut own, mut theirs, mut s) = (vec![0f32; self.dim], Vec::new(), Vec::new(), self.take_scratch());
        // Under inner product no search runs (it would lose the same contests): forcing a
        // link costs one list's distances, so no budget holds it back.
        let mut budget = if search { Self::relink_budget(batch.len()) } else { usize::MAX };
        for round in 0..RELINK_ROUNDS {
            let displaced = std::mem::take(&mut *lock(&self.displaced));
            let mut suspects: Vec<u32> = batch.iter().copied().chain(displaced).collect();
            suspects.sort_unstable();
            suspects.dedup();
            let orphans = self.unanchored(&suspects);
            if orphans.is_empty() || budget == 0 {
                break;
            }
            // Only forced links (inner product, or a later round) look at the stranded set.
            let stranded: std::collections::HashSet<u32> =
                if !search || round > 0 { orphans.iter().copied().collect() } else { Default::default() };
            for &slot in orphans.iter().take(budget) {
                budget -= 1;
                if search {
                    self.search_again(slot, &mut v, &mut s);
                    if round == 0 {
                        continue;
                    }
                }
                // Under inner product, or stranded again after a relink (every neighbour pruned
                // it once more): its nearest neighbour that is not stranded and does not link to
                // it yet (a node of its island) takes it.
                self.read_list(slot, 0, &mut own);
                let _ = own.iter().filter(|x| !stranded.contains(x)).any(|&node| {
                    self.read_list(node, 0, &mut theirs);
                    !theirs.contains(&slot) && self.force_link(slot, node)
                });
            }
        }
        self.give_scratch(s);
    }

    /// The nodes of `suspects` (sorted) that no chain of layer-0 links from outside them
    /// reaches, as far as their own lists show: a suspect is anchored when one of its
    /// neighbours links back to it and that neighbour is no suspect (nodes before the batch
    /// were reachable), or is an anchored suspect, or it is the entry point or has no
    /// neighbours (the first node). Checking only that some neighbour links back missed
    /// nodes of a batch linked only from each other: under inner product batches of a few
    /// dozen left such pairs that no search found, whatever its `ef`, until a walk ran.
    fn unanchored(&self, suspects: &[u32]) -> Vec<u32> {
        let entry = self.entry.load(Ordering::Acquire);
        let entry = (entry != NO_ENTRY).then_some(entry as u32);
        let index_of = |x: u32| suspects.binary_search(&x).ok();
        // Per suspect: anchored outright, or the suspects linking back to it. A single insert's
        // few dozen suspects are checked in a few µs: split across workers, the hand-off to the
        // pool would cost more.
        let backs: Vec<Option<Vec<u32>>> = suspects
            .par_iter()
            .with_min_len(RELINK_CHECKS_PER_TASK)
            .map_init(
                || (Vec::new(), Vec::new(), Vec::new()),
                |(own, theirs, scratch), &slot| {
                    self.read_list(slot, 0, own);
                    if own.is_empty() || Some(slot) == entry {
                        return None;
                    }
                    let mut from_suspects = Vec::new();
                    for &x in own.iter() {
                        self.read_list(x, 0, theirs);
                        if theirs.contains(&slot) {
                            match index_of(x) {
                                // An older node anchors it if a node besides it links to that
                                // one: two older nodes linking only each other are an island.
                                None if self.linked_from(x, |y| y != slot, theirs, scratch) => return None,
                                None => {}
                                Some(i) => from_suspects.push(i as u32),
                            }
                        }
                    }
                    Some(from_suspects)
                },
            )
            .collect();
        // Anchoring spreads from the anchored suspects to those they link to.
        let mut anchored: Vec<bool> = backs.iter().map(Option::is_none).collect();
        let mut reaches: Vec<Vec<u32>> = vec![Vec::new(); suspects.len()];
        for (i, from) in backs.iter().enumerate() {
            for &j in from.iter().flatten() {
                reaches[j as usize].push(i as u32);
            }
        }
        let mut stack: Vec<u32> = (0..suspects.len() as u32).filter(|&i| anchored[i as usize]).collect();
        while let Some(j) = stack.pop() {
            for &i in &reaches[j as usize] {
                if !std::mem::replace(&mut anchored[i as usize], true) {
                    stack.push(i);
                }
            }
        }
        suspects.iter().zip(anchored).filter_map(|(&slot, a)| (!a).then_some(slot)).collect()
    }

    /// Relinks searched a batch of `inserted` may pay for: at most an eighth more (a single
    /// insert four more), whatever the data; a relink is a search, as dear as an insert.
    fn relink_budget(inserted: usize) -> usize {
        inserted / 8 + 4
    }

    /// Searches `slot`'s neighbours again, as an insert would, with everything inserted so far
    /// visible (`v` and `s` are scratch).
    fn search_again(&self, slot: u32, v: &mut [f32], s: &mut Scratch) {
        self.storage.decode(slot, v);
        let q = self.storage.prepare(v);
        if let Some((cur, _)) = self.descend(&q, 0, &mut s.links) {
            self.connect(slot, &q, cur, 0, s);
        }
    }

    /// [`Hnsw::relink_orphans`] after a walk: gives every island (nodes no walk from the entry
    /// point reaches) a way in, for `inserted` inserts' worth of relinks.
    ///
    /// An island is entered through one of its nodes, its head ([`Hnsw::island_heads`]). A
    /// head alone is searched again, as an insert would be; a head of more keeps its links,
    /// which lead into its island (searched again, it relinked to the reached part and left
    /// the island behind, one node a round). Either way, when no reached node links to it,
    /// the nearest reached node that a search finds takes it ([`Hnsw::force_link`]). On
    /// well-separated clusters with a small `ef_construction` (8, `m` 4, 50 clusters in 16-d)
    /// layer 0 fell apart into whole clusters: relinking each unreachable node only linked it
    /// within its cluster again, and two-thread builds left 150-390 of 10,000 nodes
    /// unreachable, once 9,851.
    fn relink_islands(&self, inserted: usize) {
        let (mut v, mut own, mut theirs, mut s) = (vec![0f32; self.dim], Vec::new(), Vec::new(), self.take_scratch());
        let mut budget = Self::relink_budget(inserted);
        for _ in 0..RELINK_ROUNDS {
            let reached = self.reached_slots();
            let heads = self.island_heads(&reached);
            if heads.is_empty() || budget == 0 {
                break;
            }
            let in_reach = |x: u32| reached.get(x as usize).copied().unwrap_or(false);
            // The budget counts searches: a head that one of its own neighbours in reach takes
            // costs none (under inner product, at m 4, that left 1,300 of 10,000 nodes
            // unreachable when every head took a search from it).
            for &(slot, alone) in &heads {
                if budget == 0 {
                    break;
                }
                if alone && self.searches_orphans_again() {
                    budget -= 1;
                    self.search_again(slot, &mut v, &mut s);
                }
                if self.linked_from(slot, in_reach, &mut own, &mut theirs) {
                    continue;
                }
                // `own` holds its list, nearest first: the nearest in reach that takes it.
                if !own.iter().filter(|&&x| in_reach(x)).any(|&x| self.force_link(slot, x)) {
                    budget = budget.saturating_sub(1);
                    self.link_from_reach(slot, &in_reach, &mut v, &mut s);
                }
            }
        }
        self.give_scratch(s);
    }

    /// Puts `slot` in the list of the nearest node `in_reach` accepts that takes it
    /// ([`Hnsw::force_link`]), trying the nodes a layer-0 search finds nearest first; the
    /// search starts where the upper layers lead, or at the entry point when that is out of
    /// reach (`v` and `s` are scratch).
    fn link_from_reach(&self, slot: u32, in_reach: &dyn Fn(u32) -> bool, v: &mut [f32], s: &mut Scratch) {
        let e = self.entry.load(Ordering::Acquire);
        if e == NO_ENTRY {
            return;
        }
        self.storage.decode(slot, v);
        let q = self.storage.prepare(v);
        let start = match self.descend(&q, 0, &mut s.links) {
            Some((cur, _)) if in_reach(cur.1) => cur,
            _ => Cand(self.storage.distance(&q, e as u32), e as u32),
        };
        let keep = |x: u32| x != slot && in_reach(x);
        // Where every node the construction beam finds refuses (each link of its full list the
        // only way in to its target: at `m` 4, `ef_construction` 8, a two-thread build left
        // such a pair of nodes unreachable about once in 20), a wider beam offers more.
        let efc = self.params.ef_construction;
        for ef in [efc, efc.saturating_mul(8).max(64)] {
            self.search_layer(&q, start, ef, 0, s, Some(&keep));
            let mut found: Vec<Cand> = s.top.drain().map(Cand::unpacked).collect();
            found.sort_unstable();
            if found.into_iter().any(|c| self.force_link(slot, c.1)) {
                return;
            }
        }
    }

    /// Whether a node left without a way in is searched again (and its own neighbours
    /// checked after each insert): not under inner product, which is not a metric: there
    /// small-norm vectors lose every link contest (as in hnswlib and Faiss) and would lose
    /// again after any relink, so a walk only forces them into a reached node's list
    /// ([`Hnsw::relink_islands`]). Without it 6.4 % of a 20,000 × 64-d clustered graph
    /// (`m` 16) stayed unreachable under inner product, 5 and 15 nodes of imgsift100k and
    /// textemb100k; with it none, at the same recall per `ef` and build time. (At `m` 4, on
    /// 10,000 16-d clustered points, 26-42 stay: every candidate's list holds only sole ways in.)
    fn searches_orphans_again(&self) -> bool {
        self.storage.metric() != Metric::InnerProduct
    }

    /// Puts `slot` in `node`'s layer-0 list in place of the farthest link whose target another
    /// of its own neighbours links to (so that none loses its last way in): the last resort of
    /// [`Hnsw::relink_orphans`] for a node every neighbour prunes again (the heuristic finds it
    /// covered by a closer link that does not lead to it) or that sits in an island. Nothing
    /// changes when every link of a full list is some node's only way in.
    fn force_link(&self, slot: u32, node: u32) -> bool {
        let _g = self.node_lock(node);
        let list = self.list_mut(node, 0);
        let n = Self::count(list);
        let links = &list[1..=n];
        if links.iter().any(|x| x.load(Ordering::Acquire) == slot) {
            return true;
        }
        if n < self.max_links(0) {
            list[1 + n].store(slot, Ordering::Release);
            Self::set_count(list, n + 1);
            return true;
        }
        let mut by_distance: Vec<(Cand, usize)> = links
            .iter()
            .enumerate()
            .map(|(at, x)| {
                let id = x.load(Ordering::Acquire);
                (Cand(self.storage.distance_between(node, id), id), at)
            })
            .collect();
        by_distance.sort_unstable_by(|a, b| link_order(node, &b.0, &a.0));
        let (mut theirs, mut others) = (Vec::new(), Vec::new());
        // (A target with no links of its own, an insert not linked yet, has no other way in
        // that can be seen.)
        let linked_elsewhere = |(c, _): &&(Cand, usize)| self.linked_from(c.1, |x| x != node, &mut theirs, &mut others);
        let Some(&(out, at)) = by_distance.iter().find(linked_elsewhere) else { return false };
        links[at].store(slot, Ordering::Release);
        // Its other way in may be from a node only it led to (an island of two): checked again.
        lock(&self.displaced).push(out.1);
        true
    }

    /// Whether one of `slot`'s layer-0 neighbours that `from` accepts links back to it (`own`
    /// holds `slot`'s list afterwards; `theirs` is scratch).
    fn linked_from(&self, slot: u32, from: impl Fn(u32) -> bool, own: &mut Vec<u32>, theirs: &mut Vec<u32>) -> bool {
        self.read_list(slot, 0, own);
        own.iter().filter(|&&x| from(x)).any(|&x| {
            self.read_list(x, 0, theirs);
            theirs.contains(&slot)
        })
    }

    /// Whether `id` is a live node's, under the id lock (`map` its map, `slots` the slots
    /// handed out; while dense, slot `s` has id `s`). A deleted node's id may be given again:
    /// the new vector takes it, and the deleted node routes searches until `compact`.
    fn id_live(&self, map: &HashMap<u64, u32>, sparse: bool, slots: u32, id: u64) -> bool {
        let slot = if sparse { map.get(&id).copied() } else { (id < u64::from(slots)).then_some(id as u32) };
        slot.is_some_and(|slot| self.states.slot(slot as usize)[0].load(Ordering::Acquire) & DELETED == 0)
    }

    /// Under the id lock: checks the ids, hands out `n` slots, allocates them (with their
    /// levels and upper lists), records the ids, and only then publishes the slots. Returns
    /// the first slot and the first automatic id (`ids` `None`).
    fn claim(&self, n: usize, ids: Option<&[u64]>, replace: bool) -> Result<(u32, u64)> {
        let max = u32::MAX as usize - 1;
        let mut map = lock(&self.ids);
        let first = self.slots.load(Ordering::Acquire);
        let end = (first as usize).checked_add(n).filter(|&end| end <= max).ok_or(Error::Full { max })?;
        let sparse = self.sparse.load(Ordering::Acquire);
        let next = self.next_id.load(Ordering::Acquire);
        let next_after = match ids {
            None => vq_distance::auto_ids(next, n)?.end,
            Some(ids) => {
                vq_distance::check_caller_ids(ids)?;
                vq_distance::next_auto_id(next, ids)
            }
        };
        let id_of = |i: usize| match ids {
            Some(ids) => ids[i],
            None => next + i as u64,
        };
        if !replace && let Some(dup) = (0..n).map(id_of).find(|&id| self.id_live(&map, sparse, first, id)) {
            return Err(Error::DuplicateId(dup));
        }
        if let Some(ids) = ids {
            let mut seen = std::collections::HashSet::with_capacity(n);
            if let Some(&dup) = ids.iter().find(|&&id| !seen.insert(id)) {
                return Err(Error::DuplicateId(dup));
            }
        }
        // Levels and upper lists, drawn from the slot numbers.
        let levels: Vec<u8> = (first..end as u32).map(|slot| self.draw_level(slot) as u8).collect();
        let lists: usize = levels.iter().map(|&l| l as usize).sum();
        let lists_at = self.upper_lists.load(Ordering::Acquire) as usize;
        let lists_end = lists_at.checked_add(lists).filter(|&e| e <= u32::MAX as usize).ok_or(Error::Full { max })?;
        self.grow_to(end);
        self.upper.ensure(lists_end);
        self.lay_out(first, &levels, lists_at);
        self.upper_lists.store(lists_end as u32, Ordering::Release);
        let dense = !sparse && (0..n).all(|i| id_of(i) == u64::from(first) + i as u64);
        if !dense {
            self.go_sparse(&mut map);
            self.external.ensure(end);
            for i in 0..n {
                let (slot, id) = (first + i as u32, id_of(i));
                self.external.slot(slot as usize)[0].store(id, Ordering::Release);
                if let Some(old) = map.insert(id, slot) {
                    // Replacing: the old vector is deleted (it still routes until compact()).
                    self.delete_slot(old);
                }
            }
        }
        self.next_id.store(next_after, Ordering::Release);
        self.slots.store(end as u32, Ordering::Release);
        Ok((first, next))
    }

    /// Gives slots `first..` the levels `levels`: an empty open layer-0 block each, and
    /// above level 0 their upper lists, numbered from `lists_at` in slot order (the arena must
    /// hold them); their directory words point to the blocks. The slots must not be reachable
    /// yet.
    fn lay_out(&self, first: u32, levels: &[u8], mut lists_at: usize) {
        let m0 = self.params.m0;
        let open_at = self.open_lists.fetch_add(levels.len(), Ordering::AcqRel);
        self.links0.ensure(open_at + levels.len());
        for (i, (slot, &level)) in (first..).zip(levels).enumerate() {
            let block = self.links0.slot(open_at + i);
            block[0].store(0, Ordering::Release);
            block[1 + m0].store(if level > 0 { lists_at as u32 } else { 0 }, Ordering::Release);
            lists_at += level as usize;
            let d = DIR_OPEN | (u64::from(level) << DIR_LEVEL_SHIFT) | (open_at + i) as u64;
            self.dir.slot(slot as usize)[0].store(d, Ordering::Release);
        }
    }

    /// Links `slot` (claimed, its id and level recorded) into the graph.
    fn insert_slot(&self, slot: u32, v: &[f32]) {
        let level = self.level_of(slot);
        // SAFETY: `slot` was claimed by this call alone and is not linked anywhere yet.
        unsafe { self.storage.write(slot, v) };

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
    ///
    /// When the search found no more nodes than layer 0 holds (`ef_construction ≤ 2m`, as in
    /// Faiss' default 40 at `m` 32), the new node links to all of them, as Faiss does; else
    /// the heuristic picks `m` (the paper's and hnswlib's rule everywhere). Only the first
    /// `m` link back to it, so the lists it joins are pruned as often as with `m` links
    /// (linking all back left islands of nodes no search reaches). Measured beside the
    /// heuristic's `m` (`benchmarks/hnsw_degree.py`, session 34): at `m` 32 /
    /// `ef_construction` 40, Faiss' recall per `ef` and 1.1–1.5× the queries a second at equal
    /// recall (imgsift100k, textemb100k); at 200, keeping up to `2m` by the heuristic gained
    /// 0–3 % for a build 12–23 % longer at d = 384, so there the heuristic's `m` stays. The
    /// cost: on well-separated clusters fewer links cross between them (20 clusters in 16-d,
    /// `m` 32 / 40: recall@4 0.87–0.89 at `ef` 64 against 0.95 before; Faiss 0.91).
    fn connect(&self, slot: u32, q: &S::Query<'_>, mut cur: Cand, top: usize, s: &mut Scratch) {
        let mut chosen = Vec::with_capacity(self.params.m0);
        for layer in (0..=top).rev() {
            self.search_layer(q, cur, self.params.ef_construction, layer, s, None);
            let mut found: Vec<Cand> = s.top.drain().map(Cand::unpacked).collect();
            found.sort_unstable_by(|a, b| link_order(slot, a, b));
            found.retain(|c| c.1 != slot);
            if let Some(&best) = found.first() {
                cur = best;
            }
            self.select_heuristic(slot, &found, self.new_links(layer, found.len()), &mut chosen);
            let ids: Vec<u32> = chosen.iter().map(|c| c.1).collect();
            {
                // Never hold two node locks at once (no lock-order cycles between inserts): the
                // own list is written under its lock, then each neighbour is updated under its.
                let _own = self.node_lock(slot);
                self.write_list(slot, layer, &ids);
            }
            for c in chosen.iter().take(self.params.m) {
                self.link_back(c.1, slot, c.0, layer, &mut s.dropped);
            }
        }
        if !s.dropped.is_empty() {
            // A node pruned here may have lost its last way in: the batch's end checks it.
            lock(&self.displaced).append(&mut s.dropped);
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
    /// with the heuristic when it is full; on layer 0 the links it drops are appended to
    /// `dropped` (where the batch's end looks for nodes left without a way in).
    fn link_back(&self, node: u32, new: u32, d: f32, layer: usize, dropped: &mut Vec<u32>) {
        let _g = self.node_lock(node);
        let list = self.list_mut(node, layer);
        let n = Self::count(list);
        let max = self.max_links(layer);
        if list[1..=n].iter().any(|x| x.load(Ordering::Acquire) == new) {
            return;
        }
        if n < max {
            list[1 + n].store(new, Ordering::Release);
            Self::set_count(list, n + 1);
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
        cands.sort_unstable_by(|a, b| link_order(node, a, b));
        let mut chosen = Vec::with_capacity(max);
        self.select_heuristic(node, &cands, max, &mut chosen);
        let mut ids: Vec<u32> = chosen.iter().map(|c| c.1).collect();
        self.write_list(node, layer, &ids);
        if layer == 0 {
            ids.sort_unstable();
            dropped.extend(cands.iter().map(|c| c.1).filter(|id| ids.binary_search(id).is_err()));
        }
    }

    /// The paper's neighbour-selection heuristic (algorithm 4): walking candidates from the
    /// closest, drop one that is strictly closer to a neighbour kept so far than to the base,
    /// so links spread in all directions instead of bunching in one cluster.
    ///
    /// A tie keeps the candidate (as hnswlib and Faiss do). Pruning on ties cut graphs of
    /// repeated vectors apart: once a node's identical copy is kept, every other candidate is
    /// exactly as far from that copy as from the node, so the node kept no link but the copy,
    /// and groups of copies became islands.
    ///
    /// Copies of `base` itself (candidates at its own key from itself) fill at most half the
    /// list: ties keep every copy, so a node among more copies than its degree linked to
    /// copies only, and its group let no search out (a group of 60 copies at m 8 left 3,183
    /// of 3,200 nodes unreachable). `sorted` is in `base`'s [`link_order`].
    fn select_heuristic(&self, base: u32, sorted: &[Cand], m: usize, out: &mut Vec<Cand>) {
        out.clear();
        if sorted.len() <= m {
            out.extend_from_slice(sorted);
            return;
        }
        let own = self.storage.distance_between(base, base);
        let mut copies = (m / 2).max(1);
        let mut pruned = Vec::new();
        for &c in sorted {
            if out.len() >= m {
                break;
            }
            let copy = c.0 == own;
            if (!copy || copies > 0) && out.iter().all(|r| self.storage.distance_between(c.1, r.1) >= c.0) {
                out.push(c);
                copies -= usize::from(copy);
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
        let map = lock(&self.ids);
        if self.sparse.load(Ordering::Acquire) {
            map.get(&id).copied().ok_or(Error::UnknownId(id))
        } else {
            // Dense: every published slot is its own id.
            u32::try_from(id).ok().filter(|&s| s < self.slots.load(Ordering::Acquire)).ok_or(Error::UnknownId(id))
        }
    }

    /// The vector stored under `id`, as the storage holds it (Faiss' `reconstruct`): the f32
    /// vector (normalized, for cosine) or its code's decoding. An id never added, or deleted,
    /// is [`Error::UnknownId`].
    pub fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        let slot = self.slot_of(id)?;
        if !self.is_live(slot) {
            return Err(Error::UnknownId(id));
        }
        let mut out = vec![0f32; self.dim()];
        self.storage.decode(slot, &mut out);
        Ok(out)
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

    /// Removes every node (Faiss' `reset`): the graph is as new, with the same parameters and
    /// over the same (trained) storage kind, and its memory is given back.
    pub fn reset(&mut self) {
        *self = Hnsw::with_storage(self.storage.empty_like(), self.params.clone())
            .expect("the parameters were checked when this index was made");
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
        let mut fresh = Hnsw::with_storage(self.storage.empty_like(), self.params.clone())
            .expect("the parameters were checked when this index was made");
        let survivors: Vec<u32> = (0..n as u32).filter(|&i| alive[i as usize]).collect();
        // Ids stay dense only if every survivor's id is its new slot.
        let dense = survivors.iter().zip(0u64..).all(|(&old, new)| self.external_id(old) == new);
        if !dense {
            fresh.sparse.store(true, Ordering::Release);
        }
        fresh.grow_to(live);
        let levels: Vec<u8> = survivors.iter().map(|&old| self.level_of(old) as u8).collect();
        let lists: usize = levels.iter().map(|&l| l as usize).sum();
        fresh.upper.ensure_exact(lists);
        fresh.lay_out(0, &levels, 0);
        fresh.upper_lists.store(lists as u32, Ordering::Release);
        let mut buf = Vec::new();
        let mut links = Vec::new();
        let mut cands: Vec<Cand> = Vec::new();
        let mut chosen = Vec::new();
        for old in (0..n).filter(|&i| alive[i]) {
            let slot = new_slot[old];
            let level = self.level_of(old as u32);
            // SAFETY: `fresh` is not shared yet; each of its slots is written once, here.
            unsafe { fresh.storage.copy_from(slot, &self.storage, old as u32) };
            if !dense {
                fresh.external.slot(slot as usize)[0].store(self.external_id(old as u32), Ordering::Release);
            }
            fresh.states.slot(slot as usize)[0].store(READY, Ordering::Release);
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
                    cands.sort_unstable_by(|a, b| link_order(old as u32, a, b));
                    cands.dedup_by_key(|c| c.1);
                    self.select_heuristic(old as u32, &cands, self.max_links(layer), &mut chosen);
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
        fresh.next_id.store(self.next_id.load(Ordering::Acquire), Ordering::Release);
        fresh.slots.store(live as u32, Ordering::Release);
        fresh.shrink_to_fit();
        fresh.live.store(live, Ordering::Relaxed);
        if !dense {
            let mut map = lock(&fresh.ids);
            for slot in 0..live as u32 {
                map.insert(fresh.external_id(slot), slot);
            }
        }
        *self = fresh;
    }

    // ---- persistence ----------------------------------------------------------------------

    /// Copies the graph's arrays (no insert runs meanwhile), in the file's layout: per slot
    /// its id, level, state, layer-0 list `[count, ids]`, and its upper lists in slot order.
    /// Not-ready slots (claimed by a failed batch of an older build and never linked) are kept.
    pub(crate) fn snapshot(&self) -> Snapshot<'static> {
        let _gate = self.insert_gate.write().unwrap_or_else(|e| e.into_inner());
        let slots = self.slots.load(Ordering::Acquire) as usize;
        let m0 = self.params.m0;
        let mut links0 = Vec::with_capacity(slots * (1 + m0));
        let mut levels = Vec::with_capacity(slots);
        let mut upper = Vec::new();
        let mut ids = Vec::with_capacity(m0);
        for slot in 0..slots {
            let level = self.level_of(slot as u32);
            levels.push(level as u8);
            // The file's layout: `[count, id × m0]` (`m` above layer 0), zeros past the count,
            // so that a graph saves the same bytes whatever its lists once held (a list that
            // shrank keeps stale ids past its count in memory).
            self.read_list(slot as u32, 0, &mut ids);
            links0.push(ids.len() as u32);
            links0.extend_from_slice(&ids);
            links0.resize(links0.len() + m0 - ids.len(), 0);
            for layer in 1..=level {
                self.read_list(slot as u32, layer, &mut ids);
                upper.push(ids.len() as u32);
                upper.extend_from_slice(&ids);
                upper.resize(upper.len() + self.params.m - ids.len(), 0);
            }
        }
        Snapshot {
            slots,
            entry: self.entry.load(Ordering::Acquire),
            next_id: self.next_id.load(Ordering::Acquire),
            external: (0..slots as u32).map(|i| self.external_id(i)).collect(),
            levels: levels.into(),
            states: (0..slots).map(|i| self.states.slot(i)[0].load(Ordering::Acquire)).collect(),
            links0: links0.into(),
            upper: upper.into(),
        }
    }

    /// Fills an empty graph, whose storage already holds slots `0..snap.slots`, from a checked
    /// snapshot. Layer-0 lists go straight into the frozen form, the other arrays get exactly
    /// `snap.slots` slots (see `Chunks::ensure_exact`). Ids stay dense (no id array, no map)
    /// when every slot is ready and holds its own number.
    pub(crate) fn restore(&mut self, snap: &Snapshot<'_>) {
        let n = snap.slots;
        let m0 = self.params.m0;
        let dense = snap.external.iter().zip(0u64..).all(|(&id, slot)| id == slot)
            && snap.states.iter().all(|&s| s & READY != 0);
        self.sparse.store(!dense, Ordering::Release);
        // Files from before `next_id` was kept say 0: then past the largest id in the file.
        let past = snap.external.iter().max().map_or(0, |&m| m.saturating_add(1));
        self.next_id.store(snap.next_id.max(past), Ordering::Release);
        self.storage.reserve(n);
        self.dir.ensure_exact(n);
        self.states.ensure_exact(n);
        if !dense {
            self.external.ensure_exact(n);
        }
        self.grow_to(n);
        let lists: usize = snap.levels.iter().map(|&l| l as usize).sum();
        self.upper.ensure_exact(lists);
        self.upper_lists.store(lists as u32, Ordering::Release);
        let list0 = |slot: usize| {
            let list = &snap.links0[slot * (1 + m0)..(slot + 1) * (1 + m0)];
            &list[1..=list[0] as usize]
        };
        let upper_at: Vec<u32> = snap
            .levels
            .iter()
            .scan(0u32, |at, &l| {
                let here = *at;
                *at += u32::from(l);
                Some(here)
            })
            .collect();
        let info = |slot: u32| (snap.levels[slot as usize] as usize, upper_at[slot as usize]);
        let (frozen, words) = Self::pack_frozen(n, id_width(n), info, |slot, out| {
            out.clear();
            out.extend_from_slice(list0(slot as usize));
        });
        self.install_frozen(frozen, words);
        let width = 1 + self.params.m;
        let mut upper = snap.upper.chunks_exact(width);
        let mut map = lock(&self.ids);
        let (mut live, mut deleted) = (0, 0);
        for slot in 0..n {
            if !dense {
                self.external.slot(slot)[0].store(snap.external[slot], Ordering::Release);
            }
            self.states.slot(slot)[0].store(snap.states[slot], Ordering::Release);
            for layer in 1..=snap.levels[slot] as usize {
                let Some(list) = upper.next() else { unreachable!("checked: a list per level") };
                self.write_list(slot as u32, layer, &list[1..=list[0] as usize]);
            }
            if snap.states[slot] & READY != 0 {
                if snap.states[slot] & DELETED != 0 {
                    deleted += 1;
                } else {
                    if !dense {
                        map.insert(snap.external[slot], slot as u32);
                    }
                    live += 1;
                }
            }
        }
        // A deleted vector keeps its id (so it can be undeleted) unless a live one replaced it.
        for slot in (0..n).filter(|_| !dense) {
            if snap.states[slot] & (READY | DELETED) == READY | DELETED {
                map.entry(snap.external[slot]).or_insert(slot as u32);
            }
        }
        drop(map);
        self.slots.store(n as u32, Ordering::Release);
        self.live.store(live, Ordering::Relaxed);
        self.deleted.store(deleted, Ordering::Relaxed);
        self.entry.store(snap.entry, Ordering::Release);
    }

    /// Packs the layer-0 lists of slots `0..n` into the frozen form: `info(slot)` gives a
    /// slot's level and upper index, `list0(slot, out)` writes its ids into `out`. Returns the
    /// frozen lists and every slot's new directory word, for [`Hnsw::install_frozen`].
    fn pack_frozen(
        n: usize,
        width: usize,
        info: impl Fn(u32) -> (usize, u32),
        mut list0: impl FnMut(u32, &mut Vec<u32>),
    ) -> (Frozen, Vec<u64>) {
        debug_assert!(width == 4 || (width == 3 && n <= 1 << 24));
        let mut ids = Vec::new();
        // Sized exactly first, so the bytes are allocated once (no doubling slack).
        let mut size = FROZEN_SLACK;
        for slot in 0..n as u32 {
            list0(slot, &mut ids);
            size += ids.len() * width + if info(slot).0 > 0 { 4 } else { 0 };
        }
        let mut bytes = Vec::with_capacity(size);
        let mut words = Vec::with_capacity(n);
        for slot in 0..n as u32 {
            list0(slot, &mut ids);
            let (level, upper_at) = info(slot);
            words.push(Frozen::push(&mut bytes, width, level, upper_at, &ids));
        }
        bytes.resize(bytes.len() + FROZEN_SLACK, 0);
        (Frozen { bytes: bytes.into_boxed_slice(), width }, words)
    }

    /// Drops a pack prepared by [`Hnsw::prepare_shrink`] (the lists are about to change).
    fn drop_prepared(&mut self) {
        self.prepared.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        *self.has_prepared.get_mut() = false;
    }

    /// Makes `frozen` the layer-0 lists (slot `s` at directory word `words[s]`) and drops every
    /// open block (`&mut self`: nothing reads them meanwhile).
    fn install_frozen(&mut self, frozen: Frozen, words: Vec<u64>) {
        self.drop_prepared();
        self.frozen = frozen;
        for (slot, d) in words.into_iter().enumerate() {
            self.dir.slot(slot)[0].store(d, Ordering::Release);
        }
        self.links0 = Chunks::new(2 + self.params.m0);
        self.open_lists.store(0, Ordering::Release);
    }

    /// Packs every layer-0 list into the frozen form, sized to its real degree (see the module
    /// docs): at m = 16 on imgsift's 128-d vectors, 132 B of open block per node become about
    /// 61 B (ids of 3 bytes) plus the 8-byte directory word. Searches read either form; an
    /// insert that changes a frozen list opens it again (a block of m0 ids), so call this
    /// after bulk inserts, not after each one. A load and [`compact`](Hnsw::compact) leave
    /// every list frozen already.
    ///
    /// After [`prepare_shrink`](Hnsw::prepare_shrink), with no insert since, this only
    /// installs the lists it packed: the exclusive access it needs lasts about as long as
    /// storing one word per node.
    pub fn shrink_to_fit(&mut self) {
        let n = self.slots.load(Ordering::Acquire) as usize;
        let prepared = self.prepared.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        match prepared {
            Some(p) if p.slots == n => self.install_frozen(p.frozen, p.words),
            _ => self.repack(id_width(n)),
        }
    }

    /// Packs every layer-0 list as [`shrink_to_fit`](Hnsw::shrink_to_fit) does, through a
    /// shared reference: searches go on meanwhile, inserts wait. The next `shrink_to_fit`
    /// installs the result unless an insert changed the graph first (then it packs anew). A
    /// server adding while it serves calls this beside its searches and takes exclusive
    /// access only for the install; memory for one more copy of the layer-0 lists is held
    /// until then.
    pub fn prepare_shrink(&self) {
        let _gate = self.insert_gate.write().unwrap_or_else(|e| e.into_inner());
        let n = self.slots.load(Ordering::Acquire) as usize;
        let (frozen, words) = self.pack_all(id_width(n));
        *lock(&self.prepared) = Some(PreparedPack { slots: n, frozen, words });
        self.has_prepared.store(true, Ordering::Release);
    }

    /// [`shrink_to_fit`](Hnsw::shrink_to_fit) with ids of `width` bytes (3 or 4; tests
    /// reach the 4-byte form without 2^24 nodes).
    fn repack(&mut self, width: usize) {
        let (frozen, words) = self.pack_all(width);
        self.install_frozen(frozen, words);
    }

    /// Every layer-0 list of the graph packed with ids of `width` bytes.
    fn pack_all(&self, width: usize) -> (Frozen, Vec<u64>) {
        let n = self.slots.load(Ordering::Acquire) as usize;
        let info = |slot: u32| {
            let level = self.level_of(slot);
            (level, if level > 0 { self.upper_at(slot) as u32 } else { 0 })
        };
        Self::pack_frozen(n, width, info, |slot, out| self.read_list(slot, 0, out))
    }

    /// Layer-0 lists in the open form (fixed blocks of m0 ids): all of them in a graph built
    /// by inserts, none after [`shrink_to_fit`](Hnsw::shrink_to_fit) until inserts change
    /// frozen lists.
    pub fn open_lists(&self) -> usize {
        self.open_lists.load(Ordering::Acquire)
    }

    // ---- inspection -----------------------------------------------------------------------

    /// Which slots a layer-0 walk from the entry point reaches (all `false` without one),
    /// indexed by slot; slots claimed during the walk may extend it.
    fn reached_slots(&self) -> Vec<bool> {
        let n = self.slots.load(Ordering::Acquire) as usize;
        let e = self.entry.load(Ordering::Acquire);
        if e == NO_ENTRY {
            return vec![false; n];
        }
        // The entry point, like the links below, may be a slot claimed after `n` was read.
        let mut seen = vec![false; n.max(e as u32 as usize + 1)];
        self.walk_from(e as u32, &mut seen);
        seen
    }

    /// Marks in `seen` `root` and every node a layer-0 walk from it reaches through nodes
    /// `seen` did not hold yet; returns how many it marked.
    fn walk_from(&self, root: u32, seen: &mut Vec<bool>) -> usize {
        let (mut stack, mut buf) = (vec![root], Vec::new());
        seen[root as usize] = true;
        let mut marked = 1;
        while let Some(s) = stack.pop() {
            self.read_list(s, 0, &mut buf);
            for &x in &buf {
                // Inserts running meanwhile link slots claimed after `seen` was sized.
                if x as usize >= seen.len() {
                    seen.resize(x as usize + 1, false);
                }
                if !seen[x as usize] {
                    seen[x as usize] = true;
                    marked += 1;
                    stack.push(x);
                }
            }
        }
        marked
    }

    fn is_ready(&self, slot: u32) -> bool {
        self.states.slot(slot as usize)[0].load(Ordering::Acquire) & READY != 0
    }

    /// The ready slots no layer-0 walk from the entry point reaches, ascending.
    fn unreachable_slots(&self) -> Vec<u32> {
        let reached = self.reached_slots();
        (0..reached.len() as u32).filter(|&slot| !reached[slot as usize] && self.is_ready(slot)).collect()
    }

    /// One node of every island, given the nodes `reached` from the entry point: the first
    /// unreached ready slot, then the first that a walk from it does not reach, and so on
    /// (a way in to each head reaches every ready node); with whether its walk reached no
    /// other node.
    fn island_heads(&self, reached: &[bool]) -> Vec<(u32, bool)> {
        let mut seen = reached.to_vec();
        let mut heads = Vec::new();
        for slot in 0..reached.len() as u32 {
            if !seen[slot as usize] && self.is_ready(slot) {
                let alone = self.walk_from(slot, &mut seen) == 1;
                heads.push((slot, alone));
            }
        }
        heads
    }

    /// Structural facts of the graph, for tests and diagnostics.
    pub fn check_graph(&self) -> GraphReport {
        let n = self.slots.load(Ordering::Acquire) as usize;
        let mut r = GraphReport::default();
        let mut buf = Vec::new();
        for slot in 0..n as u32 {
            if !self.is_ready(slot) {
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
        r.unreachable = self.unreachable_slots().len();
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

#[cfg(test)]
#[path = "frozen_tests.rs"]
mod frozen_tests;

#[cfg(test)]
#[path = "walk_tests.rs"]
mod walk_tests;
