//! External ids of row-stored indexes (flat vectors, flat codes, refine stores).
//!
//! Most indexes are filled by `add` with ids `0..n` in order; then the id *is* the row and no
//! memory is spent on ids (as Faiss' `IndexFlat`). The first id out of order or the first
//! removal switches to an explicit row → id array and id → row map.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_distance::{Metric, RangeResult};
use vq_io::{ContainerReader, ContainerWriter};

use crate::error::{Error, Result};

/// Row ↔ id mapping.
#[derive(Debug, Clone)]
pub(crate) enum Ids {
    /// Row `i` has id `i`; `rows` rows.
    Dense { rows: usize },
    /// Explicit ids.
    Sparse { ids: Vec<u64>, rows: HashMap<u64, usize> },
}

/// What a file records about the ids (the array itself is a section of its own).
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedIds {
    pub(crate) dense: bool,
    pub(crate) rows: usize,
    pub(crate) added: u64,
}

/// Ids plus the count of vectors ever added (the next id [`IdMap::next_ids`] hands out).
#[derive(Debug, Clone)]
pub(crate) struct IdMap {
    ids: Ids,
    added: u64,
}

impl Default for IdMap {
    fn default() -> Self {
        IdMap { ids: Ids::Dense { rows: 0 }, added: 0 }
    }
}

impl IdMap {
    /// Rows held.
    pub(crate) fn len(&self) -> usize {
        match &self.ids {
            Ids::Dense { rows } => *rows,
            Ids::Sparse { ids, .. } => ids.len(),
        }
    }

    /// Whether row `i` has id `i` for every row (nothing added under ids of the caller's).
    pub(crate) fn is_dense(&self) -> bool {
        matches!(self.ids, Ids::Dense { .. })
    }

    /// A range answer over rows (`0..len()`) as one over ids: as is while ids are the rows,
    /// else mapped and re-sorted (ties go to the smaller id, which the rows' order need not
    /// give).
    pub(crate) fn range_by_id(&self, by_row: RangeResult, metric: Metric) -> Result<RangeResult> {
        if self.is_dense() {
            return Ok(by_row);
        }
        let rows: Vec<Vec<(u64, f32)>> = (0..by_row.num_queries())
            .into_par_iter()
            .map(|q| {
                let (rows, scores) = by_row.get(q).unwrap_or_default();
                rows.iter().map(|&r| self.id(r as usize)).zip(scores.iter().copied()).collect()
            })
            .collect();
        Ok(RangeResult::from_rows(metric, rows)?)
    }

    /// The id of `row`.
    #[inline]
    pub(crate) fn id(&self, row: usize) -> u64 {
        match &self.ids {
            Ids::Dense { .. } => row as u64,
            Ids::Sparse { ids, .. } => ids[row],
        }
    }

    /// The row holding `id`.
    #[inline]
    pub(crate) fn row(&self, id: u64) -> Option<usize> {
        match &self.ids {
            Ids::Dense { rows } => (id < *rows as u64).then_some(id as usize),
            Ids::Sparse { rows, .. } => rows.get(&id).copied(),
        }
    }

    /// The first id `add` hands out next.
    pub(crate) fn next_id(&self) -> u64 {
        self.added
    }

    /// The ids `add` gives the next `n` vectors (an error once they would reach `u64::MAX`).
    pub(crate) fn next_ids(&self, n: usize) -> Result<Vec<u64>> {
        Ok(vq_distance::auto_ids(self.added, n)?.collect())
    }

    /// Fails if any of `ids` is present (the batch itself was checked for repeats).
    pub(crate) fn check_absent(&self, ids: &[u64]) -> Result<()> {
        match ids.iter().find(|&&id| self.row(id).is_some()) {
            Some(&dup) => Err(Error::DuplicateId(dup)),
            None => Ok(()),
        }
    }

    /// Records `ids` for the rows just appended.
    pub(crate) fn push(&mut self, new: &[u64]) {
        self.added = vq_distance::next_auto_id(self.added, new);
        if let Ids::Dense { rows } = &mut self.ids {
            if new.iter().enumerate().all(|(i, &id)| id == (*rows + i) as u64) {
                *rows += new.len();
                return;
            }
            self.make_sparse();
        }
        if let Ids::Sparse { ids, rows } = &mut self.ids {
            for &id in new {
                rows.insert(id, ids.len());
                ids.push(id);
            }
        }
    }

    fn make_sparse(&mut self) {
        if let Ids::Dense { rows } = self.ids {
            let ids: Vec<u64> = (0..rows as u64).collect();
            let rows = ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
            self.ids = Ids::Sparse { ids, rows };
        }
    }

    /// Which rows to keep after removing `remove`, or `None` if none of them is present.
    pub(crate) fn keep_mask(&self, remove: &[u64]) -> Option<Vec<bool>> {
        let mut keep = vec![true; self.len()];
        let mut any = false;
        for &id in remove {
            if let Some(row) = self.row(id) {
                any |= std::mem::replace(&mut keep[row], false);
            }
        }
        any.then_some(keep)
    }

    /// Drops the rows `keep` rejects (the caller drops the same rows of its data).
    pub(crate) fn retain(&mut self, keep: &[bool]) {
        if let Ids::Dense { rows } = self.ids {
            // Removing a tail keeps the rest dense.
            let kept = keep.iter().take_while(|&&k| k).count();
            if keep[kept..].iter().all(|&k| !k) {
                self.ids = Ids::Dense { rows: kept.min(rows) };
                return;
            }
        }
        self.make_sparse();
        if let Ids::Sparse { ids, rows } = &mut self.ids {
            let mut row = 0;
            ids.retain(|_| {
                row += 1;
                keep[row - 1]
            });
            rows.clear();
            rows.extend(ids.iter().enumerate().map(|(r, &id)| (id, r)));
        }
    }

    /// Bytes held by the id array and map.
    pub(crate) fn memory_bytes(&self) -> usize {
        match &self.ids {
            Ids::Dense { .. } => 0,
            // A hash map entry costs its key, value and one control byte per bucket.
            Ids::Sparse { ids, rows } => {
                ids.capacity() * 8 + rows.capacity() * (std::mem::size_of::<(u64, usize)>() + 1)
            }
        }
    }

    /// Writes `{prefix}.ids` (meta) and, for explicit ids, `{prefix}.id_array`.
    pub(crate) fn write(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        let dense = matches!(self.ids, Ids::Dense { .. });
        w.add_json(&format!("{prefix}.ids"), 1, &SavedIds { dense, rows: self.len(), added: self.added })?;
        if let Ids::Sparse { ids, .. } = &self.ids {
            w.add_array(&format!("{prefix}.id_array"), 1, ids)?;
        }
        Ok(())
    }

    /// Reads what [`IdMap::write`] wrote; `rows` is the row count the data sections hold.
    pub(crate) fn read(r: &ContainerReader, prefix: &str, rows: usize) -> Result<Self> {
        let saved: SavedIds = r.json(&format!("{prefix}.ids"))?;
        if saved.rows != rows {
            return Err(Error::Corrupt { what: format!("{prefix}: {} ids for {rows} rows", saved.rows) });
        }
        let mut map = IdMap::default();
        if saved.dense {
            map.ids = Ids::Dense { rows };
        } else {
            let ids: Vec<u64> = r.array_vec(&format!("{prefix}.id_array"))?;
            if ids.len() != rows {
                return Err(Error::Corrupt { what: format!("{prefix}: {} ids for {rows} rows", ids.len()) });
            }
            let mut by_id = HashMap::with_capacity(rows);
            for (row, &id) in ids.iter().enumerate() {
                if by_id.insert(id, row).is_some() {
                    return Err(Error::Corrupt { what: format!("{prefix}: id {id} appears twice") });
                }
            }
            map.ids = Ids::Sparse { ids, rows: by_id };
        }
        let max_id = (0..rows).map(|r| map.id(r).saturating_add(1)).max().unwrap_or(0);
        map.added = saved.added.max(max_id);
        Ok(map)
    }
}

/// Drops the `dim`-wide rows of `rows` whose entry in `keep` is `false`, keeping order: the
/// data side of [`IdMap::retain`] for indexes that store f32 rows.
pub(crate) fn retain_rows(rows: &mut Vec<f32>, dim: usize, keep: &[bool]) {
    let mut i = 0;
    rows.retain(|_| {
        i += 1;
        keep[(i - 1) / dim]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_stay_dense_and_others_switch() {
        let mut m = IdMap::default();
        m.push(&m.next_ids(3).unwrap());
        assert!(matches!(m.ids, Ids::Dense { rows: 3 }));
        assert_eq!(m.memory_bytes(), 0);
        m.push(&[10, 4]);
        assert!(matches!(m.ids, Ids::Sparse { .. }));
        assert_eq!((m.id(3), m.id(4)), (10, 4));
        assert_eq!(m.row(10), Some(3));
        assert_eq!(m.next_ids(1).unwrap(), vec![11], "add continues after the largest id");
        assert!(matches!(m.check_absent(&[7, 4]), Err(Error::DuplicateId(4))));
    }

    #[test]
    fn removal_keeps_the_survivors_findable() {
        let mut m = IdMap::default();
        m.push(&m.next_ids(5).unwrap());
        let keep = m.keep_mask(&[1, 3, 99]).unwrap();
        assert_eq!(keep, vec![true, false, true, false, true]);
        m.retain(&keep);
        assert_eq!(m.len(), 3);
        assert_eq!((m.row(0), m.row(2), m.row(4), m.row(1)), (Some(0), Some(1), Some(2), None));
        assert!(m.keep_mask(&[1, 3]).is_none(), "nothing left to remove");
        // A tail removal stays dense.
        let mut t = IdMap::default();
        t.push(&t.next_ids(4).unwrap());
        let keep = t.keep_mask(&[3, 2]).unwrap();
        t.retain(&keep);
        assert!(matches!(t.ids, Ids::Dense { rows: 2 }));
        assert_eq!(t.next_ids(1).unwrap(), vec![4], "ids of removed vectors are not handed out again");
    }
}
