//! Which ids a search may return: one filter type for every index, like Faiss' `IDSelector`.
//!
//! A filter only decides what can be a *result*; graph indexes still walk through rejected
//! nodes to reach accepted ones.

use std::collections::HashSet;

/// Decides whether an id may be returned by a search.
///
/// Implemented by [`IdBitset`], [`IdSet`], and by every `Fn(u64) -> bool + Send + Sync`
/// closure (the predicate form), so `&|id| id % 2 == 0` is a filter.
pub trait IdFilter: Send + Sync {
    /// `true` if `id` may be returned.
    fn accepts(&self, id: u64) -> bool;

    /// Appends to `out` the positions in `ids` of the ids the filter accepts, in order: an
    /// index scanning stored ids asks once per block, so the test of each id is a static
    /// call the compiler can inline (the default does exactly that), not a dynamic one.
    fn accepted_positions(&self, ids: &[u64], out: &mut Vec<usize>) {
        out.extend(ids.iter().enumerate().filter(|&(_, &id)| self.accepts(id)).map(|(p, _)| p));
    }

    /// How many ids the filter accepts, when it holds them as a set (`None` for a predicate):
    /// cheap, so a graph index can decide whether listing them is worth it.
    fn accepted_count(&self) -> Option<usize> {
        None
    }

    /// Every id the filter accepts, ascending, when it holds them as a set it can list (`None`
    /// for a predicate). A graph index uses the list to score a selective filter's vectors
    /// alone instead of asking the filter about every node.
    fn accepted_ids(&self) -> Option<Vec<u64>> {
        None
    }
}

impl<F: Fn(u64) -> bool + Send + Sync> IdFilter for F {
    #[inline]
    fn accepts(&self, id: u64) -> bool {
        self(id)
    }
}

/// At most `sample` places in `0..n`, increasing, one at a fixed pseudo-random place in each
/// of as many equal strides (every place when `n ≤ sample`): the entries an index tests to
/// estimate what fraction of its vectors a filter passes. Deterministic, so a search's answer
/// does not vary between calls; jittered, so a periodic filter (`id % 4 == 1`) cannot alias
/// with the stride, as evenly spaced places would.
pub fn sample_places(n: usize, sample: usize) -> impl Iterator<Item = usize> {
    let stride = n.div_ceil(sample.max(1)).max(1);
    (0..n.div_ceil(stride)).map(move |j| j * stride + (mix(j as u64) % stride as u64) as usize).filter(move |&p| p < n)
}

/// SplitMix64's finalizer: a well-spread hash of a stride's number.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A set of accepted ids as one bit per id below a bound: the fast filter for dense ids
/// (`bound / 8` bytes). Ids at or above the bound are rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdBitset {
    words: Vec<u64>,
    bound: u64,
}

impl IdBitset {
    /// An empty set accepting nothing, with room for ids `0..bound`.
    pub fn with_bound(bound: u64) -> Self {
        let words = usize::try_from(bound.div_ceil(64)).expect("bound fits the address space");
        IdBitset { words: vec![0; words], bound }
    }

    /// The set of `ids`, sized to the largest.
    pub fn from_ids(ids: &[u64]) -> Self {
        let bound = ids.iter().max().map_or(0, |&m| m.saturating_add(1));
        let mut set = IdBitset::with_bound(bound);
        ids.iter().for_each(|&id| set.insert(id));
        set
    }

    /// The set of ids whose entry in `mask` is `true` (a numpy-style boolean mask).
    ///
    /// Eight entries at a time, without a branch or a shift per entry: a branch per entry
    /// mispredicted on every random mask, ~3 ns an entry, 300 µs for 100,000 entries, where
    /// the Python wheel converts a mask on every call.
    pub fn from_mask(mask: &[bool]) -> Self {
        // Eight bytes of 0 or 1 read as one little-endian word: multiplying by this gathers
        // byte i's low bit into bit 56 + i (the partial products never meet; checked for all
        // 256 patterns by `from_mask_gathers_every_byte_pattern`).
        const GATHER: u64 = 0x0102_0408_1020_4080;
        let words = mask
            .chunks(64)
            .map(|chunk| {
                let eights = chunk.chunks_exact(8);
                let rest = eights.remainder().iter().enumerate().fold(0u64, |w, (j, &b)| w | (u64::from(b) << j));
                // (A full chunk has no rest: a shift by 64 would overflow.)
                let rest = rest.checked_shl(8 * eights.len() as u32).unwrap_or(0);
                eights.enumerate().fold(rest, |word, (i, part)| {
                    let bytes: [u8; 8] = std::array::from_fn(|j| u8::from(part[j]));
                    word | ((u64::from_le_bytes(bytes).wrapping_mul(GATHER) >> 56) << (8 * i))
                })
            })
            .collect();
        IdBitset { words, bound: mask.len() as u64 }
    }

    /// Adds `id`; ids at or above the bound are ignored (they could never be accepted).
    pub fn insert(&mut self, id: u64) {
        if id < self.bound {
            self.words[(id / 64) as usize] |= 1 << (id % 64);
        }
    }

    /// `true` if `id` is in the set.
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        id < self.bound && self.words[(id / 64) as usize] & (1 << (id % 64)) != 0
    }

    /// Ids accepted.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

impl IdFilter for IdBitset {
    #[inline]
    fn accepts(&self, id: u64) -> bool {
        self.contains(id)
    }

    /// Tests 64 ids at a time into a bit mask, without a branch per id, then lists the mask's
    /// set bits: a selective filter (most masks zero) costs about a cycle an id.
    fn accepted_positions(&self, ids: &[u64], out: &mut Vec<usize>) {
        for (c, chunk) in ids.chunks(64).enumerate() {
            let mut mask = 0u64;
            for (j, &id) in chunk.iter().enumerate() {
                // An id at or past the bound reads no word (`get` is `None`): rejected.
                let word = usize::try_from(id / 64).ok().and_then(|w| self.words.get(w)).copied().unwrap_or(0);
                mask |= ((word >> (id % 64)) & 1) << j;
            }
            while mask != 0 {
                out.push(c * 64 + mask.trailing_zeros() as usize);
                mask &= mask - 1;
            }
        }
    }

    fn accepted_count(&self) -> Option<usize> {
        Some(self.count())
    }

    fn accepted_ids(&self) -> Option<Vec<u64>> {
        let mut ids = Vec::with_capacity(self.count());
        for (i, &word) in self.words.iter().enumerate() {
            let mut w = word;
            while w != 0 {
                ids.push(i as u64 * 64 + u64::from(w.trailing_zeros()));
                w &= w - 1;
            }
        }
        Some(ids)
    }
}

/// An explicit set of accepted ids: the filter for sparse ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSet(pub HashSet<u64>);

impl FromIterator<u64> for IdSet {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        IdSet(iter.into_iter().collect())
    }
}

impl IdFilter for IdSet {
    #[inline]
    fn accepts(&self, id: u64) -> bool {
        self.0.contains(&id)
    }

    fn accepted_count(&self) -> Option<usize> {
        Some(self.0.len())
    }

    fn accepted_ids(&self) -> Option<Vec<u64>> {
        let mut ids: Vec<u64> = self.0.iter().copied().collect();
        ids.sort_unstable();
        Some(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitset_set_and_predicate_agree() {
        let ids = [0u64, 3, 64, 65, 200];
        let bits = IdBitset::from_ids(&ids);
        let set: IdSet = ids.iter().copied().collect();
        let pred = |id: u64| ids.contains(&id);
        for id in 0..300 {
            let want = ids.contains(&id);
            assert_eq!(bits.accepts(id), want, "bitset {id}");
            assert_eq!(set.accepts(id), want, "set {id}");
            assert_eq!(IdFilter::accepts(&pred, id), want, "predicate {id}");
        }
        assert_eq!(bits.count(), ids.len());
        assert!(!bits.accepts(u64::MAX));
        // The listed ids are exactly the accepted ones, for the two set forms; a predicate
        // lists none.
        assert_eq!(bits.accepted_ids().unwrap(), ids);
        assert_eq!(set.accepted_ids().unwrap(), ids);
        assert_eq!(IdFilter::accepted_ids(&pred), None);
        assert_eq!((bits.accepted_count(), set.accepted_count()), (Some(ids.len()), Some(ids.len())));
        assert_eq!(IdFilter::accepted_count(&pred), None);
        // Positions in a block of stored ids (out of order, repeated, past the bound), appended.
        // (150 of them: the bitset tests 64 at a time.)
        let stored: Vec<u64> = [200u64, 1, 3, 3, 64, 999, 0, u64::MAX, 65, 2].into_iter().cycle().take(150).collect();
        for filter in [&bits as &dyn IdFilter, &set, &pred] {
            let mut out = vec![7];
            filter.accepted_positions(&stored, &mut out);
            let want: Vec<usize> =
                std::iter::once(7).chain((0..stored.len()).filter(|&p| ids.contains(&stored[p]))).collect();
            assert_eq!(out, want);
        }
    }

    #[test]
    fn sample_places_are_increasing_in_range_and_jittered() {
        assert_eq!(sample_places(10, 1024).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        assert_eq!(sample_places(0, 1024).count(), 0);
        let places: Vec<usize> = sample_places(100_000, 1024).collect();
        assert!(places.len() <= 1024 && places.len() > 1000, "{}", places.len());
        assert!(places.windows(2).all(|w| w[0] < w[1]) && places.iter().all(|&p| p < 100_000));
        // Not all at one offset within their stride (98 here): every residue mod 2 and 4 occurs.
        for period in [2, 4] {
            let mut seen = vec![false; period];
            places.iter().for_each(|&p| seen[p % period] = true);
            assert!(seen.iter().all(|&s| s), "period {period}");
        }
    }

    proptest::proptest! {
        /// The packed mask against inserting its true entries one by one (the slow twin),
        /// over lengths around word boundaries.
        #[test]
        fn from_mask_sets_exactly_the_true_entries(mask in proptest::collection::vec(proptest::bool::ANY, 0..300)) {
            let bits = IdBitset::from_mask(&mask);
            let mut slow = IdBitset::with_bound(mask.len() as u64);
            mask.iter().enumerate().filter(|(_, b)| **b).for_each(|(id, _)| slow.insert(id as u64));
            proptest::prop_assert_eq!(&bits, &slow);
            for id in 0..mask.len() as u64 + 70 {
                proptest::prop_assert_eq!(bits.contains(id), mask.get(id as usize) == Some(&true));
            }
        }
    }

    #[test]
    fn from_mask_gathers_every_byte_pattern() {
        for pattern in 0u64..256 {
            // At the start of a word, and as the second eight of a longer mask.
            let eight: Vec<bool> = (0..8).map(|j| pattern >> j & 1 == 1).collect();
            assert_eq!(IdBitset::from_mask(&eight).words, vec![pattern]);
            let sixteen: Vec<bool> = [false; 8].into_iter().chain(eight).collect();
            assert_eq!(IdBitset::from_mask(&sixteen).words, vec![pattern << 8]);
        }
    }

    #[test]
    fn mask_and_empty_sets() {
        let bits = IdBitset::from_mask(&[true, false, true]);
        assert!(bits.contains(0) && !bits.contains(1) && bits.contains(2) && !bits.contains(3));
        let none = IdBitset::from_ids(&[]);
        assert!(!none.contains(0));
        assert_eq!(none.count(), 0);
    }
}
