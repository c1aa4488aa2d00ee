//! Graph storage over quantized codes: any `vq-quant` [`Quantizer`] (SQ8, FP16, PQ, …) under
//! the same graph, so an HNSW index can hold its vectors in a fraction of the memory.

use std::cell::UnsafeCell;

use vq_distance::Metric;
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::{CodeScorer, Quantizer};

use crate::arena::Chunks;
use crate::error::{Error, Result};
use crate::persist::corrupt;
use crate::storage::VectorStorage;

/// One code byte that is written before it is shared (see [`VectorStorage::write`]).
#[derive(Default)]
#[repr(transparent)]
struct Byte(UnsafeCell<u8>);

// SAFETY: a `Byte` is written only through `QuantizedStorage::write`/`copy_from`, whose
// contract makes the write happen-before every read; otherwise it is only read.
unsafe impl Sync for Byte {}

/// Layout version of the `{prefix}.codes` section.
const CODES_VERSION: u32 = 1;

/// Codes of a trained quantizer, one `code_size()`-byte slot per node. Queries are scored
/// asymmetrically (the f32 query against codes, through the quantizer's scorer), node pairs
/// by the quantizer's code-to-code distance.
pub struct QuantizedStorage<Q> {
    quantizer: Q,
    code_size: usize,
    codes: Chunks<Byte>,
}

impl<Q: Quantizer> QuantizedStorage<Q> {
    /// Empty storage over `quantizer`, which must be trained (allocates nothing until used).
    pub fn new(quantizer: Q) -> Result<Self> {
        if !quantizer.is_trained() {
            return Err(Error::Parameter {
                name: "quantizer",
                what: format!("{} is not trained: train it on a sample before building the graph", quantizer.name()),
            });
        }
        let code_size = quantizer.code_size();
        Ok(QuantizedStorage { quantizer, code_size, codes: Chunks::new(code_size) })
    }

    /// The quantizer.
    pub fn quantizer(&self) -> &Q {
        &self.quantizer
    }

    /// The code in slot `id`.
    #[inline]
    pub fn code(&self, id: u32) -> &[u8] {
        let slot = self.codes.slot(id as usize);
        // SAFETY: `Byte` is a transparent `UnsafeCell<u8>`, so the slice has the layout of
        // `[u8]`; by the contract of `write` no write to a readable slot is in flight.
        unsafe { std::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), slot.len()) }
    }

    /// Writes `code` into slot `id`.
    ///
    /// # Safety
    /// As for [`VectorStorage::write`].
    unsafe fn store(&self, id: u32, code: &[u8]) {
        for (cell, &b) in self.codes.slot(id as usize).iter().zip(code) {
            // SAFETY: the caller guarantees no other thread touches the slot now.
            unsafe { *cell.0.get() = b };
        }
    }
}

impl<Q: Quantizer + Clone> VectorStorage for QuantizedStorage<Q> {
    type Query<'q>
        = Q::Scorer<'q>
    where
        Self: 'q;

    fn dim(&self) -> usize {
        self.quantizer.dim()
    }

    fn metric(&self) -> Metric {
        self.quantizer.metric()
    }

    fn prepare<'q>(&'q self, query: &'q [f32]) -> Q::Scorer<'q> {
        // The graph validated the query (dimension, finite values, norm for cosine) and the
        // quantizer is trained (checked in `new`): nothing left for the scorer to reject.
        self.quantizer.scorer(query).expect("query validated by the graph, quantizer trained")
    }

    #[inline]
    fn distance(&self, query: &Q::Scorer<'_>, id: u32) -> f32 {
        query.distance(self.code(id))
    }

    fn decode(&self, id: u32, out: &mut [f32]) {
        // A stored code has the quantizer's length and `out` is `dim` long (the graph's
        // `reconstruct` allocates it): decoding cannot fail.
        let _ = self.quantizer.decode(self.code(id), out);
    }

    #[inline]
    fn distance_between(&self, a: u32, b: u32) -> f32 {
        self.quantizer.code_distance(self.code(a), self.code(b))
    }

    #[inline]
    fn prefetch(&self, id: u32) {
        // Whole codes: at 1536 dimensions SQfp16's 48 lines prefetched whole gave 2 % more QPS
        // than their head (f32 vectors, twice as long, want the head: `FlatStorage::prefetch`).
        if let Some(slot) = self.codes.get(id as usize) {
            vq_distance::prefetch_l2(slot);
        }
    }

    fn slot_lines(&self) -> usize {
        self.code_size.div_ceil(64)
    }

    fn reserve(&self, n: usize) {
        self.codes.ensure(n);
    }

    unsafe fn write(&self, id: u32, vector: &[f32]) {
        let mut code = vec![0u8; self.code_size];
        // The graph validated the vector and asked `check_vectors`; encoding such a vector
        // with a trained quantizer cannot fail.
        self.quantizer.encode(vector, &mut code).expect("vector validated by the graph, quantizer trained");
        // SAFETY: the caller upholds `write`'s contract for slot `id`.
        unsafe { self.store(id, &code) };
    }

    fn check_vectors(&self, vectors: &[f32]) -> Result<()> {
        Ok(self.quantizer.check_encodable(vectors)?)
    }

    fn memory_bytes(&self) -> usize {
        self.codes.allocated_bytes() + self.quantizer.memory_bytes()
    }

    fn empty_like(&self) -> Self {
        QuantizedStorage {
            quantizer: self.quantizer.clone(),
            code_size: self.code_size,
            codes: Chunks::new(self.code_size),
        }
    }

    unsafe fn copy_from(&self, to: u32, src: &Self, from: u32) {
        // SAFETY: the caller upholds `write`'s contract for slot `to`.
        unsafe { self.store(to, src.code(from)) };
    }

    /// The quantizer's own sections under `{prefix}.quantizer`, then `{prefix}.codes` (u8,
    /// `slots × code_size`).
    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str, slots: usize) -> Result<()> {
        self.quantizer.write_sections(w, &format!("{prefix}.quantizer"))?;
        let codes = (0..slots as u32).map(|slot| self.code(slot));
        w.add_array_parts(&format!("{prefix}.codes"), CODES_VERSION, codes)?;
        Ok(())
    }

    fn read_sections(r: &ContainerReader, prefix: &str, slots: usize) -> Result<Self> {
        let codes_name = format!("{prefix}.codes");
        let quantizer = Q::read_sections(r, &format!("{prefix}.quantizer"))?;
        r.check_versions(&[(&codes_name, CODES_VERSION)])?;
        let bytes = r.array_len::<u8>(&codes_name)?;
        let code_size = quantizer.code_size();
        if slots.checked_mul(code_size) != Some(bytes) {
            return Err(corrupt(
                r,
                format!("{codes_name}: {bytes} bytes, expected {slots} slots × code size {code_size}"),
            ));
        }
        let mut storage =
            QuantizedStorage::new(quantizer).map_err(|e| corrupt(r, format!("{prefix}.quantizer: {e}")))?;
        // The file's codes read straight into exactly `slots` slots.
        storage.codes.ensure_exact(slots);
        if let Some(cells) = storage.codes.first_slots_mut(slots) {
            // SAFETY: `Byte` is a transparent `UnsafeCell<u8>`, so `[Byte]` has the layout of
            // `[u8]`, and the exclusive borrow of the unshared storage rules out other access.
            let codes = unsafe { std::slice::from_raw_parts_mut(cells.as_mut_ptr().cast::<u8>(), cells.len()) };
            r.read_array_parts(&codes_name, [&mut *codes])?;
            // Every code must decode to a usable vector (a forged FP16 code can hold NaN).
            vq_quant::validate_codes(&storage.quantizer, codes, &codes_name)?;
        }
        Ok(storage)
    }
}
