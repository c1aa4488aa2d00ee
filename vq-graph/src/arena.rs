//! Append-only storage that grows without moving what it holds, so readers can keep using
//! slots while writers add new ones (`&self` everywhere).
//!
//! Slots live in chunks of doubling size (`BASE`, `2·BASE`, `4·BASE`, …), each allocated on
//! first use and never freed or moved until the arena is dropped: finding slot `i` costs a few
//! bit operations and one atomic load, and an empty arena allocates nothing.

use std::sync::OnceLock;

/// Slots in the first chunk.
const BASE: usize = 1024;
/// Chunks: enough for `BASE · (2^CHUNKS − 1)` slots, far past `u32::MAX`.
const CHUNKS: usize = 24;

/// A growable array of fixed-width slots (`unit` values of `T` each).
pub(crate) struct Chunks<T> {
    unit: usize,
    chunks: [OnceLock<Box<[T]>>; CHUNKS],
}

impl<T: Default> Chunks<T> {
    pub(crate) fn new(unit: usize) -> Self {
        Chunks { unit, chunks: std::array::from_fn(|_| OnceLock::new()) }
    }

    #[inline]
    fn locate(i: usize) -> (usize, usize) {
        let j = i / BASE + 1;
        let c = (usize::BITS - 1 - j.leading_zeros()) as usize;
        (c, i - BASE * ((1 << c) - 1))
    }

    /// Makes sure slots `0..n` exist.
    pub(crate) fn ensure(&self, n: usize) {
        if n == 0 {
            return;
        }
        let (last, _) = Self::locate(n - 1);
        for c in 0..=last.min(CHUNKS - 1) {
            self.chunks[c].get_or_init(|| (0..(BASE << c) * self.unit).map(|_| T::default()).collect());
        }
    }

    /// Slot `i`, or `None` if its chunk was never allocated.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&[T]> {
        let (c, off) = Self::locate(i);
        let chunk = self.chunks.get(c)?.get()?;
        Some(&chunk[off * self.unit..(off + 1) * self.unit])
    }

    /// Slot `i`, which must exist (see [`Chunks::ensure`]).
    #[inline]
    pub(crate) fn slot(&self, i: usize) -> &[T] {
        self.get(i).expect("slot allocated before use")
    }

    /// Bytes allocated.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.chunks.iter().filter_map(|c| c.get()).map(|c| c.len() * std::mem::size_of::<T>()).sum()
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
}
