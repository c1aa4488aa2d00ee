//! Which ids an index holds, for the duplicate check of `add_with_ids` and `merge_from`.
//!
//! The lists store every id next to its code; this is only the membership test. An index
//! filled by `add` holds `0..n` and needs no memory for it (as Faiss, which keeps no map at
//! all); the first id out of order or the first removal switches to a hash set. Public so an
//! inverted file kept elsewhere (vq-gpu's, on a device) tracks its ids the same way.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};

/// Membership of the ids held, and the next id `add` hands out.
#[derive(Debug, Clone, Default)]
pub struct IdTracker {
    present: Present,
    /// Vectors ever added (or one past the largest id): `add` continues from here.
    added: u64,
}

#[derive(Debug, Clone)]
enum Present {
    /// Exactly the ids `0..n`.
    Dense(u64),
    /// Any ids.
    Sparse(HashSet<u64>),
}

impl Default for Present {
    fn default() -> Self {
        Present::Dense(0)
    }
}

impl IdTracker {
    /// A tracker of exactly `ids` (unique, checked by the caller); `added` at least one past
    /// the largest.
    pub fn from_ids(ids: impl Iterator<Item = u64> + Clone, n: usize, added: u64) -> Self {
        let max = ids.clone().max().map_or(0, |m| m.saturating_add(1));
        let present = if max == n as u64 { Present::Dense(max) } else { Present::Sparse(ids.collect()) };
        IdTracker { present, added: added.max(max) }
    }

    /// The first id `add` hands out next: past every id ever added.
    pub fn added(&self) -> u64 {
        self.added
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: u64) -> bool {
        match &self.present {
            Present::Dense(n) => id < *n,
            Present::Sparse(set) => set.contains(&id),
        }
    }

    /// The ids `add` gives the next `n` vectors (an error once they would reach `u64::MAX`).
    pub fn next_ids(&self, n: usize) -> Result<Vec<u64>> {
        Ok(vq_distance::auto_ids(self.added, n)?.collect())
    }

    /// [`Error::DuplicateId`] naming the first of `ids` that is held already or repeats an
    /// earlier one of `ids`, and the input error of `u64::MAX` (the padding of short answers):
    /// the check before [`insert`](IdTracker::insert).
    pub fn check_new(&self, ids: &[u64]) -> Result<()> {
        vq_distance::check_caller_ids(ids)?;
        let mut seen = HashSet::with_capacity(ids.len());
        match ids.iter().find(|&&id| !seen.insert(id) || self.contains(id)) {
            Some(&dup) => Err(Error::DuplicateId(dup)),
            None => Ok(()),
        }
    }

    /// Records `ids` (absent and unique: [`check_new`](IdTracker::check_new)).
    pub fn insert(&mut self, ids: &[u64]) {
        self.added = vq_distance::next_auto_id(self.added, ids);
        if let Present::Dense(n) = &mut self.present {
            if ids.iter().enumerate().all(|(i, &id)| id == *n + i as u64) {
                *n += ids.len() as u64;
                return;
            }
            self.make_sparse();
        }
        if let Present::Sparse(set) = &mut self.present {
            set.extend(ids.iter().copied());
        }
    }

    /// Forgets `ids` (all of them present).
    pub fn remove(&mut self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        self.make_sparse();
        if let Present::Sparse(set) = &mut self.present {
            ids.iter().for_each(|id| {
                set.remove(id);
            });
        }
    }

    /// `ids` (another index's, `n` of them, unique there) each plus `shift`, checked for
    /// `merge_from`: the input error `IdShift` when one overflows or lands on `u64::MAX`,
    /// [`Error::DuplicateId`] naming the first already here.
    pub(crate) fn shifted_absent(&self, ids: impl Iterator<Item = u64>, n: usize, shift: u64) -> Result<Vec<u64>> {
        let mut moved = Vec::with_capacity(n);
        for id in ids {
            let shifted = vq_distance::shifted_id(id, shift)?;
            if self.contains(shifted) {
                return Err(Error::DuplicateId(shifted));
            }
            moved.push(shifted);
        }
        Ok(moved)
    }

    fn make_sparse(&mut self) {
        if let Present::Dense(n) = self.present {
            self.present = Present::Sparse((0..n).collect());
        }
    }

    /// Bytes held by the set.
    pub fn memory_bytes(&self) -> usize {
        match &self.present {
            Present::Dense(_) => 0,
            // A hash set entry costs its key and one control byte per bucket.
            Present::Sparse(set) => set.capacity() * (size_of::<u64>() + 1),
        }
    }
}

/// Where every held id's entry is, its list and position: how a search scores the listed ids
/// of a filter that passes few vectors without scanning lists. Built from the lists when a
/// search first needs it and dropped when they change; indexed by id (8 bytes per id up to
/// the largest) when ids are compact, sorted `(id, entry)` pairs (16 bytes an entry) otherwise.
#[derive(Debug, Clone)]
pub(crate) enum Locations {
    /// Entry `list << 32 | position` at index `id`; `u64::MAX` for an id not held.
    ById(Vec<u64>),
    /// `(id, list << 32 | position)`, ascending by id.
    Sorted(Vec<(u64, u64)>),
}

impl Locations {
    /// The locations of the entries of `lists` (each list's ids in order).
    pub(crate) fn of<'a>(lists: impl Iterator<Item = &'a [u64]> + Clone) -> Self {
        let n: usize = lists.clone().map(<[u64]>::len).sum();
        let max = lists.clone().flat_map(|ids| ids.iter().copied()).max();
        let entries = lists
            .enumerate()
            .flat_map(|(l, ids)| ids.iter().enumerate().map(move |(p, &id)| (id, (l as u64) << 32 | p as u64)));
        match max {
            Some(max) if max < 2 * n as u64 => {
                let mut by_id = vec![u64::MAX; max as usize + 1];
                entries.for_each(|(id, at)| by_id[id as usize] = at);
                Locations::ById(by_id)
            }
            _ => {
                let mut sorted: Vec<(u64, u64)> = entries.collect();
                sorted.sort_unstable();
                Locations::Sorted(sorted)
            }
        }
    }

    /// The list and position of `id`'s entry, `None` when it is not held.
    pub(crate) fn get(&self, id: u64) -> Option<(u32, u32)> {
        let at = match self {
            Locations::ById(by_id) => *usize::try_from(id).ok().and_then(|i| by_id.get(i))?,
            Locations::Sorted(sorted) => sorted[sorted.binary_search_by_key(&id, |e| e.0).ok()?].1,
        };
        (at != u64::MAX).then_some(((at >> 32) as u32, at as u32))
    }

    /// Bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            Locations::ById(v) => v.capacity() * size_of::<u64>(),
            Locations::Sorted(v) => v.capacity() * size_of::<(u64, u64)>(),
        }
    }
}

/// Where each of `wanted` sits in `lists` (each list's ids in order): `(list, position)`, or
/// `None` for an id in no list, found in one pass over every list.
pub(crate) fn positions_in_lists<'a>(
    wanted: &[u64],
    lists: impl Iterator<Item = &'a [u64]>,
) -> HashMap<u64, Option<(usize, usize)>> {
    let mut at: HashMap<u64, Option<(usize, usize)>> = wanted.iter().map(|&id| (id, None)).collect();
    for (list, ids) in lists.enumerate() {
        for (pos, id) in ids.iter().enumerate() {
            if let Some(slot) = at.get_mut(id) {
                *slot = Some((list, pos));
            }
        }
    }
    at
}

/// An id that appears more than once among `ids`, if any: the read-time check of a file's
/// lists. Ids below `64 n` (every index filled by `add`, and most by `add_with_ids`) are marked
/// in a bitmap of at most `8 n` bytes, one pass; larger ones are sorted (a copy of the ids, as
/// large), where a repeat shows as neighbours.
pub(crate) fn repeated_id(ids: impl Iterator<Item = u64> + Clone) -> Option<u64> {
    let (n, max) = ids.clone().fold((0u64, 0u64), |(n, max), id| (n + 1, max.max(id)));
    if max < n.saturating_mul(64) {
        let mut seen = vec![0u64; (max / 64 + 1) as usize];
        ids.into_iter().find(|&id| {
            let (word, bit) = (&mut seen[(id / 64) as usize], 1u64 << (id % 64));
            let repeat = *word & bit != 0;
            *word |= bit;
            repeat
        })
    } else {
        let mut sorted: Vec<u64> = ids.collect();
        sorted.sort_unstable();
        sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The bitmap (small ids) and the sort (large ones) find a repeat exactly when a
        /// hash set does, and name an id that repeats.
        #[test]
        fn repeated_id_is_found_by_either_path(
            ids in prop::collection::vec(0u64..200, 0..120),
            large in any::<bool>(),
        ) {
            let ids: Vec<u64> = if large { ids.iter().map(|&i| i << 40).collect() } else { ids };
            let mut seen = HashSet::new();
            let repeats: HashSet<u64> = ids.iter().copied().filter(|&i| !seen.insert(i)).collect();
            match repeated_id(ids.iter().copied()) {
                Some(id) => prop_assert!(repeats.contains(&id), "{} is no repeat", id),
                None => prop_assert!(repeats.is_empty()),
            }
        }
    }

    #[test]
    fn locations_find_every_entry_in_either_form() {
        let compact: Vec<Vec<u64>> = vec![vec![3, 0], vec![], vec![1, 4, 2]];
        let sparse: Vec<Vec<u64>> = vec![vec![1 << 40, 7], vec![u64::MAX - 1], vec![]];
        for lists in [compact, sparse] {
            let loc = Locations::of(lists.iter().map(Vec::as_slice));
            assert_eq!(matches!(loc, Locations::ById(_)), lists[0][0] == 3);
            for (l, ids) in lists.iter().enumerate() {
                for (p, &id) in ids.iter().enumerate() {
                    assert_eq!(loc.get(id), Some((l as u32, p as u32)), "id {id}");
                }
            }
            for absent in [5, 6, 8, 1 << 39, u64::MAX] {
                assert_eq!(loc.get(absent), None, "id {absent}");
            }
            assert!(loc.memory_bytes() >= 5 * 8);
        }
    }

    #[test]
    fn sequential_ids_stay_dense_and_others_switch() {
        let mut t = IdTracker::default();
        t.insert(&t.next_ids(3).unwrap());
        assert!(matches!(t.present, Present::Dense(3)));
        assert_eq!(t.memory_bytes(), 0);
        t.insert(&[10, 3]);
        assert!(t.contains(10) && t.contains(2) && !t.contains(4));
        assert_eq!(t.next_ids(1).unwrap(), vec![11]);
        t.remove(&[0, 10]);
        assert!(!t.contains(0) && !t.contains(10) && t.contains(1));
        let back = IdTracker::from_ids([2u64, 0, 1].into_iter(), 3, 0);
        assert!(matches!(back.present, Present::Dense(3)));
        let sparse = IdTracker::from_ids([5u64, 0].into_iter(), 2, 9);
        assert!(sparse.contains(5) && !sparse.contains(1) && sparse.added() == 9);
    }

    #[test]
    fn check_new_names_the_first_held_or_repeated_id() {
        let mut t = IdTracker::default();
        t.insert(&[0, 1, 2]);
        assert!(t.check_new(&[3, 9, 4]).is_ok());
        assert!(matches!(t.check_new(&[3, 1, 4]), Err(Error::DuplicateId(1))));
        assert!(matches!(t.check_new(&[7, 8, 7, 2]), Err(Error::DuplicateId(7))));
        assert!(t.check_new(&[]).is_ok());
    }
}
