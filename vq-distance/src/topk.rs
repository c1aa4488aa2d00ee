//! Bounded top-k selection over "smaller is better" keys.

use std::cmp::Ordering;

/// Keeps the `k` smallest `(key, id)` pairs offered to it.
///
/// Selection keys are "smaller is better" (see [`crate::Metric::key_from_score`]); equal keys
/// are ordered by the smaller id, so results are deterministic. NaN keys are never kept.
///
/// It works as a reservoir: offers at or below the current [`threshold`](TopK::threshold) are
/// appended to a buffer of up to `2k` entries; when the buffer is full it is partitioned
/// (`select_nth_unstable`, linear time) down to the best `k`, and the threshold drops to the
/// k-th key. Each offer therefore costs O(1) amortized for any k, and once the threshold has
/// settled almost every offer is rejected by one comparison — which the SIMD kernels also do
/// in bulk, before calling [`push`](TopK::push).
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    buf: Vec<(f32, u64)>,
    threshold: f32,
}

/// Total order on `(key, id)`: by key (NaN last), then by id.
#[inline]
fn by_key_then_id(a: &(f32, u64), b: &(f32, u64)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

impl TopK {
    /// A selection of the `k` best. With `k = 0` it keeps nothing.
    pub fn new(k: usize) -> Self {
        TopK { k, buf: Vec::with_capacity(Self::capacity_for(k).min(4096)), threshold: Self::initial_threshold(k) }
    }

    fn capacity_for(k: usize) -> usize {
        k.saturating_add(k.max(16))
    }

    fn initial_threshold(k: usize) -> f32 {
        if k == 0 { f32::NEG_INFINITY } else { f32::INFINITY }
    }

    /// How many results this selection keeps at most.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Forgets everything offered so far (keeps the allocation).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.threshold = Self::initial_threshold(self.k);
    }

    /// Offers with a key above this cannot enter the selection. It is `+∞` until at least `k`
    /// offers have been kept, and never increases.
    #[inline]
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Offers `(key, id)`.
    #[inline]
    pub fn push(&mut self, key: f32, id: u64) {
        // `<=` lets an equal key with a smaller id in; NaN fails the comparison.
        if key <= self.threshold {
            self.buf.push((key, id));
            if self.buf.len() >= Self::capacity_for(self.k) {
                self.compact();
            }
        }
    }

    #[cold]
    fn compact(&mut self) {
        let k = self.k;
        self.buf.select_nth_unstable_by(k - 1, by_key_then_id);
        self.buf.truncate(k);
        self.threshold = self.buf[k - 1].0;
    }

    /// Offers everything `other` kept; the result is the top-k of both inputs.
    pub fn merge(mut self, other: TopK) -> TopK {
        for (key, id) in other.buf {
            self.push(key, id);
        }
        self
    }

    /// The kept pairs, best first, at most `k` of them.
    pub fn into_sorted(mut self) -> Vec<(f32, u64)> {
        self.sorted_in_place();
        self.buf
    }

    /// Sorts the kept pairs best first and returns them (at most `k`); the selection can be
    /// [`clear`](TopK::clear)ed and reused afterwards.
    pub fn sorted(&mut self) -> &[(f32, u64)] {
        self.sorted_in_place();
        &self.buf
    }

    fn sorted_in_place(&mut self) {
        if self.buf.len() > self.k {
            self.compact();
        }
        self.buf.sort_unstable_by(by_key_then_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_smallest_with_ties_to_the_smaller_id() {
        let mut top = TopK::new(3);
        for (key, id) in [(5.0, 0), (1.0, 9), (3.0, 4), (1.0, 2), (0.5, 7), (3.0, 1), (9.0, 3)] {
            top.push(key, id);
        }
        assert_eq!(top.into_sorted(), vec![(0.5, 7), (1.0, 2), (1.0, 9)]);
    }

    #[test]
    fn nan_is_never_kept_and_k_zero_keeps_nothing() {
        let mut top = TopK::new(2);
        top.push(f32::NAN, 0);
        top.push(1.0, 1);
        assert_eq!(top.into_sorted(), vec![(1.0, 1)]);
        let mut none = TopK::new(0);
        none.push(1.0, 0);
        assert!(none.into_sorted().is_empty());
    }

    #[test]
    fn threshold_settles_after_compaction_and_never_rises() {
        let mut top = TopK::new(4);
        let mut last = top.threshold();
        for i in (0..1000u64).rev() {
            top.push(i as f32, i);
            assert!(top.threshold() <= last);
            last = top.threshold();
        }
        assert!(last.is_finite());
        assert_eq!(top.into_sorted(), vec![(0.0, 0), (1.0, 1), (2.0, 2), (3.0, 3)]);
    }

    #[test]
    fn a_huge_k_keeps_everything_without_overflow() {
        let mut top = TopK::new(usize::MAX);
        for i in (0..100u64).rev() {
            top.push(i as f32, i);
        }
        let all = top.into_sorted();
        assert_eq!(all.len(), 100);
        assert!(all.iter().enumerate().all(|(i, &(_, id))| id == i as u64), "best first");
    }
}
