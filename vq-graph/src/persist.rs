//! Saving and loading a flat-storage HNSW through the `vq-io` container.
//!
//! Sections (each versioned on its own): `hnsw.meta` (JSON: parameters, dimension, metric,
//! slot count, entry point), `hnsw.vectors` (f32, slots × dim), `hnsw.external` (u64 ids),
//! `hnsw.levels` and `hnsw.states` (u8 per slot), `hnsw.links0` (u32, slots × (1 + m0)) and
//! `hnsw.upper` (u32, the upper-layer lists of every node with a level above 0, in slot order).
//! All bulk sections are plain little-endian arrays, so the layout is memory-map friendly.
//! A loaded file is checked link by link before use: a corrupt or hostile file is an error,
//! never a panic or an out-of-range read later.

use std::path::Path;

use serde::{Deserialize, Serialize};
use vq_distance::Metric;
use vq_io::{ContainerReader, ContainerWriter};

use crate::error::{Error, Result};
use crate::hnsw::{Hnsw, HnswParams, Snapshot};
use crate::storage::FlatStorage;

const SECTIONS: [&str; 7] =
    ["hnsw.meta", "hnsw.vectors", "hnsw.external", "hnsw.levels", "hnsw.states", "hnsw.links0", "hnsw.upper"];

#[derive(Serialize, Deserialize)]
struct Meta {
    params: HnswParams,
    dim: usize,
    metric: String,
    slots: usize,
    /// `level << 32 | slot`, or `u64::MAX` for an empty graph.
    entry: u64,
}

fn corrupt(path: &Path, what: impl Into<String>) -> Error {
    Error::CorruptFile { path: path.to_path_buf(), what: what.into() }
}

impl Hnsw<FlatStorage> {
    /// Writes the index to `path` atomically (a crash leaves the previous file, if any).
    /// Inserts wait while it runs; searches go on.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let snap = self.snapshot();
        let io = |e: vq_io::Error| Error::Io(e.to_string());
        let mut w = ContainerWriter::create(path).map_err(io)?;
        let meta = Meta {
            params: self.params().clone(),
            dim: self.dim(),
            metric: self.metric().name().into(),
            slots: snap.slots,
            entry: snap.entry,
        };
        w.add_json("hnsw.meta", 1, &meta).map_err(io)?;
        let mut vectors = Vec::with_capacity(snap.slots * self.dim());
        for slot in 0..snap.slots as u32 {
            vectors.extend_from_slice(self.storage().vector(slot));
        }
        w.add_array("hnsw.vectors", 1, &vectors).map_err(io)?;
        w.add_array("hnsw.external", 1, &snap.external).map_err(io)?;
        w.add_array("hnsw.levels", 1, &snap.levels).map_err(io)?;
        w.add_array("hnsw.states", 1, &snap.states).map_err(io)?;
        w.add_array("hnsw.links0", 1, &snap.links0).map_err(io)?;
        w.add_array("hnsw.upper", 1, &snap.upper).map_err(io)?;
        w.finish().map_err(io)
    }

    /// Reads an index written by [`save`](Hnsw::save); it answers exactly as the saved one.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |e: vq_io::Error| Error::Io(e.to_string());
        let r = ContainerReader::open(path).map_err(io)?;
        r.check_known(&SECTIONS).map_err(io)?;
        for name in SECTIONS {
            let version = r.section(name).map_err(io)?.version;
            if version != 1 {
                return Err(corrupt(path, format!("section {name} has version {version}, this build reads 1")));
            }
        }
        let meta: Meta = r.json("hnsw.meta").map_err(io)?;
        let metric: Metric =
            meta.metric.parse().map_err(|_| corrupt(path, format!("unknown metric {:?}", meta.metric)))?;
        if meta.dim == 0 || meta.slots > u32::MAX as usize - 1 {
            return Err(corrupt(path, "dimension 0 or too many slots"));
        }
        let index = Hnsw::new(meta.dim, metric, meta.params.clone()).map_err(|e| corrupt(path, e.to_string()))?;
        let p = &meta.params;
        let n = meta.slots;
        let vectors: &[f32] = r.array("hnsw.vectors").map_err(io)?;
        let external: &[u64] = r.array("hnsw.external").map_err(io)?;
        let levels: &[u8] = r.array("hnsw.levels").map_err(io)?;
        let states: &[u8] = r.array("hnsw.states").map_err(io)?;
        let links0: &[u32] = r.array("hnsw.links0").map_err(io)?;
        let upper: &[u32] = r.array("hnsw.upper").map_err(io)?;
        let expect = |name: &str, got: usize, want: Option<usize>| match want {
            Some(w) if w == got => Ok(()),
            _ => Err(corrupt(path, format!("section {name} has {got} values, expected {want:?}"))),
        };
        expect("hnsw.vectors", vectors.len(), n.checked_mul(meta.dim))?;
        expect("hnsw.external", external.len(), Some(n))?;
        expect("hnsw.levels", levels.len(), Some(n))?;
        expect("hnsw.states", states.len(), Some(n))?;
        expect("hnsw.links0", links0.len(), n.checked_mul(1 + p.m0))?;
        let upper_len: usize = levels.iter().map(|&l| l as usize * (1 + p.m)).sum();
        expect("hnsw.upper", upper.len(), Some(upper_len))?;
        // Every list: count within its width, every id a slot of this file.
        let check_list = |list: &[u32], what: &str| -> Result<()> {
            let count = list[0] as usize;
            if count > list.len() - 1 || list[1..=count].iter().any(|&id| id as usize >= n) {
                return Err(corrupt(path, format!("{what}: bad link list")));
            }
            Ok(())
        };
        for (slot, list) in links0.chunks_exact(1 + p.m0).enumerate() {
            check_list(list, &format!("slot {slot} layer 0"))?;
        }
        for (i, list) in upper.chunks_exact(1 + p.m).enumerate() {
            check_list(list, &format!("upper list {i}"))?;
        }
        if levels.iter().any(|&l| l as usize > crate::hnsw::MAX_LEVEL) {
            return Err(corrupt(path, "a level above the maximum"));
        }
        if meta.entry != u64::MAX {
            let (level, slot) = ((meta.entry >> 32) as usize, meta.entry as u32 as usize);
            if slot >= n || levels[slot] as usize != level {
                return Err(corrupt(path, "entry point out of range"));
            }
        } else if n > 0 && states.iter().any(|s| s & crate::hnsw::READY != 0) {
            return Err(corrupt(path, "nodes but no entry point"));
        }
        let mut seen = std::collections::HashSet::with_capacity(n);
        for (slot, (&id, &state)) in external.iter().zip(states).enumerate() {
            // Only live vectors must have distinct ids: a replaced vector stays, deleted, under
            // the id of its replacement until compact().
            if state & (crate::hnsw::READY | crate::hnsw::DELETED) == crate::hnsw::READY && !seen.insert(id) {
                return Err(corrupt(path, format!("slot {slot} repeats id {id}")));
            }
        }
        let snap = Snapshot {
            slots: n,
            entry: meta.entry,
            external: external.to_vec(),
            levels: levels.to_vec(),
            states: states.to_vec(),
            links0: links0.to_vec(),
            upper: upper.to_vec(),
        };
        index.restore(&snap, vectors);
        Ok(index)
    }
}
