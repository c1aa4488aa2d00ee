//! Append-only storage that grows without moving what it holds, so readers can keep using
//! slots while writers add new ones (`&self` everywhere).
//!
//! Slots live in chunks that are allocated on first use and never freed or moved until the
//! arena is dropped. The first chunk is sized by the first request (so a bulk load that
//! reserves `n ≥ BASE` slots gets one chunk of exactly `n`, not a power of two, and no slack);
//! later chunks double (`BASE`, `2·BASE`, `4·BASE`, …). Finding slot `i` costs a compare, a few bit
//! operations and one atomic load, and an empty arena allocates nothing.
//!
//! Each chunk's first slot starts on a cache line (so 64-byte multiples such as a 128-d f32
//! vector occupy whole lines, 8 instead of 9), and large chunks are backed by transparent huge
//! pages where the kernel offers them (`madvise(MADV_HUGEPAGE)`): a graph search touches
//! nodes at random across the whole arena, and with 4 KiB pages nearly every touch is a TLB
//! miss.

use std::sync::OnceLock;

/// Granularity of chunk sizes, and the size of the second chunk. Tests use small chunks so
/// that a few hundred inserts cross many chunk boundaries (where races would show).
#[cfg(not(test))]
const BASE: usize = 1024;
#[cfg(test)]
pub(crate) const BASE: usize = 16;
/// Chunks: enough for `BASE · 2^(CHUNKS − 1)` slots past the first chunk, far past `u32::MAX`.
const CHUNKS: usize = 24;

/// A growable array of fixed-width slots (`unit` values of `T` each).
pub(crate) struct Chunks<T> {
    unit: usize,
    /// Slots in chunk 0, fixed by the first [`Chunks::ensure`].
    first: OnceLock<usize>,
    /// Each chunk, with the index of its first slot's first value (skipping values until the
    /// slot starts on a cache line).
    chunks: [OnceLock<(Box<[T]>, usize)>; CHUNKS],
}

/// Where slots start: a cache line.
const LINE: usize = 64;

/// A chunk of `len` default values, with room to start its slots on a cache line; returns it
/// with the index of the first aligned value.
fn allocate<T: Default>(len: usize) -> (Box<[T]>, usize) {
    let size = std::mem::size_of::<T>().max(1);
    let pad = if LINE.is_multiple_of(size) { LINE / size - 1 } else { 0 };
    let total = len + pad;
    let mut v: Vec<T> = Vec::with_capacity(total);
    // Before the first touch: the faults that follow are then served with huge pages.
    vq_io::advise_huge_pages(v.spare_capacity_mut());
    v.extend((0..total).map(|_| T::default()));
    let chunk = v.into_boxed_slice();
    let start = chunk.as_ptr().align_offset(LINE).min(pad);
    (chunk, start)
}

impl<T: Default> Chunks<T> {
    pub(crate) fn new(unit: usize) -> Self {
        Chunks { unit, first: OnceLock::new(), chunks: std::array::from_fn(|_| OnceLock::new()) }
    }

    /// `(chunk, offset)` of slot `i`: chunk 0 holds `first` slots, chunk `c ≥ 1` holds
    /// `BASE · 2^(c−1)`.
    #[inline]
    fn locate(&self, i: usize) -> (usize, usize) {
        // Unset only while nothing is allocated, when every lookup misses anyway.
        let first = self.first.get().copied().unwrap_or(BASE);
        if i < first {
            return (0, i);
        }
        let j = (i - first) / BASE + 1;
        let c = (usize::BITS - 1 - j.leading_zeros()) as usize;
        (c + 1, i - first - BASE * ((1 << c) - 1))
    }

    fn chunk_len(&self, c: usize) -> usize {
        if c == 0 { self.first.get().copied().unwrap_or(BASE) } else { BASE << (c - 1) }
    }

    /// Makes sure slots `0..n` exist.
    pub(crate) fn ensure(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.first.get_or_init(|| n.max(BASE));
        let (last, _) = self.locate(n - 1);
        for c in 0..=last.min(CHUNKS - 1) {
            self.chunks[c].get_or_init(|| allocate(self.chunk_len(c) * self.unit));
        }
    }

    /// [`Chunks::ensure`], except that an arena with nothing allocated yet gets a first chunk
    /// of exactly `n` slots even below `BASE`. Loading a file uses it: the
    /// rounding would let a file of one slot with wide link lists (m0 = 4096) cost a
    /// thousand slots of them, far more memory than the file's size. Later growth is as usual.
    pub(crate) fn ensure_exact(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.first.get_or_init(|| n);
        self.ensure(n);
    }

    /// Slots `0..n` as one slice to fill, when they all lie in the first chunk, as after
    /// [`Chunks::ensure_exact`]`(n)` on an empty arena (how a graph read from a file gets its
    /// slots: the file's array is read straight into them); `None` otherwise.
    pub(crate) fn first_slots_mut(&mut self, n: usize) -> Option<&mut [T]> {
        if n > *self.first.get()? {
            return None;
        }
        let (chunk, start) = self.chunks[0].get_mut()?;
        chunk.get_mut(*start..*start + n * self.unit)
    }

    /// Slot `i`, or `None` if its chunk was never allocated.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&[T]> {
        let (c, off) = self.locate(i);
        let (chunk, start) = self.chunks.get(c)?.get()?;
        Some(&chunk[start + off * self.unit..start + (off + 1) * self.unit])
    }

    /// Slot `i`, which must exist (see [`Chunks::ensure`]).
    #[inline]
    pub(crate) fn slot(&self, i: usize) -> &[T] {
        self.get(i).expect("slot allocated before use")
    }

    /// Bytes allocated.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.chunks.iter().filter_map(|c| c.get()).map(|(c, _)| c.len() * std::mem::size_of::<T>()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_and_stable_across_growth() {
        let a: Chunks<std::sync::atomic::AtomicU32> = Chunks::new(3);
        assert_eq!(a.allocated_bytes(), 0);
        a.ensure(10_000);
        assert_eq!(a.allocated_bytes(), (10_000 * 3 + 15) * 4, "one chunk, sized by the first request (+ alignment)");
        assert_eq!(a.slot(0).as_ptr() as usize % LINE, 0, "slots start on a cache line");
        for i in 0..10_000 {
            a.slot(i)[0].store(i as u32, std::sync::atomic::Ordering::Relaxed);
        }
        let p = a.slot(5).as_ptr();
        a.ensure(100_000);
        assert_eq!(a.slot(5).as_ptr(), p, "growth never moves a slot");
        for i in 0..10_000 {
            assert_eq!(a.slot(i)[0].load(std::sync::atomic::Ordering::Relaxed), i as u32);
        }
        assert!(a.get(100_000_000).is_none());
    }

    #[test]
    fn an_exact_first_chunk_holds_only_what_was_asked_and_still_grows() {
        let a: Chunks<std::sync::atomic::AtomicU32> = Chunks::new(100);
        a.ensure_exact(3);
        // 3 slots of 100 values plus at most a cache line of alignment, not 1,024 slots.
        assert!(a.allocated_bytes() <= (3 * 100 + 15) * 4, "{}", a.allocated_bytes());
        for i in 0..3 {
            a.slot(i)[99].store(i as u32 + 1, std::sync::atomic::Ordering::Relaxed);
        }
        a.ensure(5_000);
        for i in 0..5_000 {
            a.slot(i)[0].store(7, std::sync::atomic::Ordering::Relaxed);
        }
        for i in 0..3 {
            assert_eq!(a.slot(i)[99].load(std::sync::atomic::Ordering::Relaxed), i as u32 + 1);
        }
        assert!(a.get(4 * 5_000 + 8 * BASE).is_none(), "growth at most doubles");
    }
}
