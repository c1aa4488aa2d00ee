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
    pub fn from_mask(mask: &[bool]) -> Self {
        let mut set = IdBitset::with_bound(mask.len() as u64);
        mask.iter().enumerate().filter(|(_, b)| **b).for_each(|(id, _)| set.insert(id as u64));
        set
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
