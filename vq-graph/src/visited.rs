//! Visited sets (pooled by the graph, so a search allocates nothing once warm).

/// Marks slots as visited in O(1), and clears in O(1) by bumping an epoch.
pub(crate) struct Visited {
    tags: Vec<u8>,
    epoch: u8,
}

impl Visited {
    pub(crate) fn new() -> Self {
        Visited { tags: Vec::new(), epoch: 0 }
    }

    /// Starts a new search over slots `0..n` (more may appear during it; they are grown into).
    pub(crate) fn reset(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.tags.fill(0);
            self.epoch = 1;
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.tags.capacity()
    }

    /// Hints that `id`'s tag is about to be tested.
    #[inline]
    pub(crate) fn prefetch(&self, id: u32) {
        #[cfg(target_arch = "x86_64")]
        if let Some(tag) = self.tags.get(id as usize) {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: prefetching never faults; SSE is part of the x86-64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(tag).cast::<i8>()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }

    /// Marks `id`; returns `true` if it was not marked yet.
    #[inline]
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        let i = id as usize;
        if i >= self.tags.len() {
            self.tags.resize(i + 1, 0);
        }
        let fresh = self.tags[i] != self.epoch;
        self.tags[i] = self.epoch;
        fresh
    }
}
