//! What the graph needs from the vectors it links: distances, by slot number.
//!
//! The graph never looks at vectors itself. It asks its storage for "the distance from this
//! prepared query to slot i" and "the distance between slots i and j", as selection keys
//! (smaller is better). Flat f32 storage is here, and [`QuantizedStorage`](crate::QuantizedStorage)
//! holds any `vq-quant` quantizer's codes behind the same trait, so the graph does not change
//! when the vectors are compressed.

use std::cell::UnsafeCell;

use serde::{Deserialize, Serialize};
use vq_distance::{Kernels, Metric, Rows4Fn};
use vq_io::{ContainerReader, ContainerWriter};

use crate::arena::Chunks;
use crate::error::Result;
use crate::persist::corrupt;

/// Vector storage under an HNSW graph.
///
/// Slots are written once ([`VectorStorage::write`]) before the graph links them, then only
/// read, possibly from many threads at once.
pub trait VectorStorage: Send + Sync {
    /// A query prepared for many distance evaluations (a borrowed f32 vector for flat
    /// storage; a look-up table for product quantization).
    type Query<'q>
    where
        Self: 'q;

    /// Vector dimension.
    fn dim(&self) -> usize;

    /// The metric the keys order by (cosine storages hold normalized vectors).
    fn metric(&self) -> Metric;

    /// Prepares `query` (validated, and normalized for cosine, by the caller).
    fn prepare<'q>(&'q self, query: &'q [f32]) -> Self::Query<'q>;

    /// Selection key (smaller is better) between a prepared query and slot `id`.
    fn distance(&self, query: &Self::Query<'_>, id: u32) -> f32;

    /// Whether [`distances4`](VectorStorage::distances4) scores the four slots in one pass
    /// (and so is worth gathering neighbours in fours for); by default it is four `distance`
    /// calls, which measured slower than one at a time in the graph's loop.
    fn scores_four_at_once(&self) -> bool {
        false
    }

    /// [`distance`](VectorStorage::distance) to four slots, each key equal to the bit to its
    /// own `distance`.
    fn distances4(&self, query: &Self::Query<'_>, ids: [u32; 4]) -> [f32; 4] {
        ids.map(|id| self.distance(query, id))
    }

    /// Selection key between slots `a` and `b`.
    fn distance_between(&self, a: u32, b: u32) -> f32;

    /// Hints that slot `id` will be read soon: starts loading it (f32 vectors: their first
    /// lines, [`vq_distance::prefetch_l2_head`], after which the hardware prefetcher streams
    /// the rest).
    fn prefetch(&self, _id: u32) {}

    /// Cache lines one slot spans: the graph keeps about a fixed number of lines in flight,
    /// so it prefetches fewer slots ahead when they are large.
    fn slot_lines(&self) -> usize {
        1
    }

    /// Writes the vector slot `id` holds into `out` (`dim` values), as stored: f32 storage
    /// copies it (normalized, for cosine), code storage decodes it. Slot `id` must be written.
    fn decode(&self, id: u32, out: &mut [f32]);

    /// Makes slots `0..n` writable.
    fn reserve(&self, n: usize);

    /// Stores `vector` in slot `id`.
    ///
    /// # Safety
    /// Slot `id` must have been reserved and be written by one thread while no reader can
    /// reach it: before the graph publishes the slot (through release/acquire atomics, after
    /// this returns), or while the caller holds the graph exclusively (`&mut`, when a deleted
    /// slot is reused).
    unsafe fn write(&self, id: u32, vector: &[f32]);

    /// Refuses vectors (already through the graph's checks) that [`write`](VectorStorage::write)
    /// could not store faithfully: asked before any slot is claimed. Accepts everything by
    /// default.
    fn check_vectors(&self, vectors: &[f32]) -> Result<()> {
        let _ = vectors;
        Ok(())
    }

    /// Bytes this storage allocated.
    fn memory_bytes(&self) -> usize;

    /// A new, empty storage configured like this one (dimension, metric, trained codebooks).
    fn empty_like(&self) -> Self
    where
        Self: Sized;

    /// Copies slot `from` of `src` into slot `to` of this storage, as stored (no re-encoding).
    ///
    /// # Safety
    /// As for [`VectorStorage::write`], for slot `to`; slot `from` of `src` must be written.
    unsafe fn copy_from(&self, to: u32, src: &Self, from: u32)
    where
        Self: Sized;

    /// Writes slots `0..slots` (which must be written) and whatever rebuilding the storage
    /// needs (dimension, metric, trained parameters) as sections named `{prefix}.*`; bulk data
    /// as little-endian arrays.
    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str, slots: usize) -> Result<()>;

    /// Reads what [`VectorStorage::write_sections`] wrote under `prefix`: a storage whose slots
    /// `0..slots` hold the saved vectors. Section sizes are checked against `slots` before
    /// anything proportional to them is allocated, and values that would give NaN distances
    /// (non-finite, or a squared norm beyond f32) are refused, so a hostile file is an error,
    /// never a panic or an unbounded allocation.
    fn read_sections(r: &ContainerReader, prefix: &str, slots: usize) -> Result<Self>
    where
        Self: Sized;
}

/// Layout versions of [`FlatStorage`]'s sections.
const FLAT_META_VERSION: u32 = 1;
const FLAT_VECTORS_VERSION: u32 = 1;

/// `{prefix}.meta` of a [`FlatStorage`].
#[derive(Serialize, Deserialize)]
struct FlatMeta {
    dim: usize,
    metric: String,
}

/// One f32 that is written once before it is shared (see [`VectorStorage::write`]).
#[derive(Default)]
#[repr(transparent)]
struct Cell(UnsafeCell<f32>);

// SAFETY: a `Cell` is written only through `FlatStorage::write`, whose contract makes that write
// happen-before every read (one writer, before publication); afterwards it is only read.
unsafe impl Sync for Cell {}

/// Full-precision f32 vectors, stored contiguously (one slot after the other in chunks that
/// never move), with the run-time dispatched kernels of `vq-distance`.
pub struct FlatStorage {
    dim: usize,
    metric: Metric,
    data: Chunks<Cell>,
    l2_sq: fn(&[f32], &[f32]) -> f32,
    dot: fn(&[f32], &[f32]) -> f32,
    /// The query against four slots in one pass, where this SIMD level has such a kernel.
    rows4: Option<Rows4Fn>,
}

impl FlatStorage {
    /// Empty storage for `dim`-dimensional vectors; allocates nothing until used.
    /// For [`Metric::Cosine`] the graph stores normalized vectors and orders by inner product.
    pub fn new(dim: usize, metric: Metric) -> Self {
        let k = Kernels::active();
        // Cosine vectors are stored normalized and ordered by inner product.
        let rows4 = k.f32_rows4_fn(if metric == Metric::Cosine { Metric::InnerProduct } else { metric }, dim);
        FlatStorage { dim, metric, data: Chunks::new(dim), l2_sq: k.f32_l2_sq_fn(), dot: k.f32_dot_fn(), rows4 }
    }

    /// The vector in slot `id`.
    #[inline]
    pub fn vector(&self, id: u32) -> &[f32] {
        let slot = self.data.slot(id as usize);
        // SAFETY: `Cell` is a transparent `UnsafeCell<f32>`, so the slice has the layout of
        // `[f32]`; by the contract of `write` no write to a readable slot is in flight.
        unsafe { std::slice::from_raw_parts(slot.as_ptr().cast::<f32>(), slot.len()) }
    }

    #[inline]
    fn key(&self, a: &[f32], b: &[f32]) -> f32 {
        match self.metric {
            Metric::L2 => (self.l2_sq)(a, b),
            Metric::InnerProduct | Metric::Cosine => -(self.dot)(a, b),
        }
    }
}

impl VectorStorage for FlatStorage {
    type Query<'q> = &'q [f32];

    fn dim(&self) -> usize {
        self.dim
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn prepare<'q>(&'q self, query: &'q [f32]) -> &'q [f32] {
        query
    }

    #[inline]
    fn distance(&self, query: &&[f32], id: u32) -> f32 {
        self.key(query, self.vector(id))
    }

    fn scores_four_at_once(&self) -> bool {
        self.rows4.is_some()
    }

    #[inline]
    fn distances4(&self, query: &&[f32], ids: [u32; 4]) -> [f32; 4] {
        match self.rows4 {
            Some(rows4) => {
                let sums = rows4(query, ids.map(|id| self.vector(id)));
                match self.metric {
                    Metric::L2 => sums,
                    Metric::InnerProduct | Metric::Cosine => sums.map(|s| -s),
                }
            }
            None => ids.map(|id| self.distance(query, id)),
        }
    }

    fn decode(&self, id: u32, out: &mut [f32]) {
        out.copy_from_slice(self.vector(id));
    }

    #[inline]
    fn distance_between(&self, a: u32, b: u32) -> f32 {
        self.key(self.vector(a), self.vector(b))
    }

    #[inline]
    fn prefetch(&self, id: u32) {
        if let Some(slot) = self.data.get(id as usize) {
            vq_distance::prefetch_l2_head(slot);
        }
    }

    fn slot_lines(&self) -> usize {
        (self.dim * 4).div_ceil(64)
    }

    fn reserve(&self, n: usize) {
        self.data.ensure(n);
    }

    unsafe fn write(&self, id: u32, vector: &[f32]) {
        let slot = self.data.slot(id as usize);
        debug_assert_eq!(vector.len(), slot.len());
        for (cell, &v) in slot.iter().zip(vector) {
            // SAFETY: the caller guarantees this thread is the only one touching the slot.
            unsafe { *cell.0.get() = v };
        }
    }

    fn memory_bytes(&self) -> usize {
        self.data.allocated_bytes()
    }

    fn empty_like(&self) -> Self {
        FlatStorage::new(self.dim, self.metric)
    }

    unsafe fn copy_from(&self, to: u32, src: &Self, from: u32) {
        // SAFETY: the caller upholds `write`'s contract for slot `to`.
        unsafe { self.write(to, src.vector(from)) }
    }

    /// `{prefix}.meta` (JSON: dimension, metric) and `{prefix}.vectors` (f32, `slots × dim`).
    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str, slots: usize) -> Result<()> {
        let meta = FlatMeta { dim: self.dim, metric: self.metric.name().into() };
        w.add_json(&format!("{prefix}.meta"), FLAT_META_VERSION, &meta)?;
        let vectors = (0..slots as u32).map(|slot| self.vector(slot));
        w.add_array_parts(&format!("{prefix}.vectors"), FLAT_VECTORS_VERSION, vectors)?;
        Ok(())
    }

    fn read_sections(r: &ContainerReader, prefix: &str, slots: usize) -> Result<Self> {
        let (meta_name, vectors_name) = (format!("{prefix}.meta"), format!("{prefix}.vectors"));
        r.check_versions(&[(&meta_name, FLAT_META_VERSION), (&vectors_name, FLAT_VECTORS_VERSION)])?;
        let meta: FlatMeta = r.json(&meta_name)?;
        let metric: Metric =
            meta.metric.parse().map_err(|_| corrupt(r, format!("{meta_name}: unknown metric {:?}", meta.metric)))?;
        if meta.dim == 0 || meta.dim > vq_io::MAX_DIM {
            return Err(corrupt(r, format!("{meta_name}: dimension {} is outside 1..={}", meta.dim, vq_io::MAX_DIM)));
        }
        let values = r.array_len::<f32>(&vectors_name)?;
        if slots.checked_mul(meta.dim) != Some(values) {
            return Err(corrupt(
                r,
                format!("{vectors_name}: {values} values, expected {slots} slots × dimension {}", meta.dim),
            ));
        }
        let mut storage = FlatStorage::new(meta.dim, metric);
        // Exactly `slots` (checked against the section above), not rounded up to a chunk, and
        // the file's array read straight into them.
        storage.data.ensure_exact(slots);
        if let Some(cells) = storage.data.first_slots_mut(slots) {
            // SAFETY: `Cell` is a transparent `UnsafeCell<f32>`, so `[Cell]` has the layout of
            // `[f32]`, and the exclusive borrow of the unshared storage rules out other access.
            let vectors = unsafe { std::slice::from_raw_parts_mut(cells.as_mut_ptr().cast::<f32>(), cells.len()) };
            r.read_array_parts(&vectors_name, [&mut *vectors])?;
            // The rule every inserted vector passed (finite, squared norm within
            // `vq_distance::MAX_SQUARED_NORM`): beyond it distances can overflow to `inf − inf =
            // NaN`, which the graph's heaps and sorts cannot order. L2, not the storage's metric:
            // only the magnitude matters here (cosine vectors were normalized when inserted).
            vq_distance::validate_rows("vectors", vectors, meta.dim, Metric::L2)
                .map_err(|e| corrupt(r, format!("{vectors_name}: {e}")))?;
        }
        Ok(storage)
    }
}
