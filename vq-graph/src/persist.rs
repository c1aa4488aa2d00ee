//! Saving and loading an HNSW graph, over any storage, through the `vq-io` container.
//!
//! Sections under a prefix `p` (`"hnsw"` for [`Hnsw::save`]), each versioned on its own:
//! `p.meta` (JSON: parameters, dimension, metric, slot count, entry point), `p.external` (u64
//! ids), `p.levels` and `p.states` (u8 per slot), `p.links0` (u32, slots × (1 + m0)) and
//! `p.upper` (u32, the upper-layer lists of every node with a level above 0, in slot order);
//! the storage writes its own sections under `p.storage` ([`VectorStorage::write_sections`]).
//! All bulk sections are plain little-endian arrays, so the layout is memory-map friendly.
//!
//! A loaded file is checked before anything is built from it, so that a corrupt or hostile
//! file (valid checksums, forged fields) is an error, never a panic, a wrong answer or an
//! allocation out of proportion to its size:
//! - every size against the slot count, before allocating;
//! - every link list: its count within its width, every id a slot of the file, and on layer
//!   `L` only nodes whose level is at least `L` (a search follows a layer-`L` link by reading
//!   the target's layer-`L` list, which exists only if its level reaches `L`);
//! - states: only the combinations the graph produces (not ready; ready; ready and deleted);
//!   a slot that is not ready (claimed by a failed batch) has level 0, no links, and no node
//!   links to it, so no search can reach it and its id, which is free, can be inserted again
//!   without a second copy answering;
//! - the entry point: a ready slot whose level is the one recorded;
//! - live ids distinct.
//!
//! The arrays are then sized to the file's slot count exactly, not rounded up to a chunk, so a
//! file of one slot with m0 = 4096 costs its own 16 KiB of links, not megabytes.

use std::path::Path;

use serde::{Deserialize, Serialize};
use vq_distance::Metric;
use vq_io::{ContainerReader, ContainerWriter};

use crate::error::{Error, Result};
use crate::hnsw::{DELETED, Hnsw, HnswParams, MAX_LEVEL, READY, Snapshot};
use crate::storage::VectorStorage;

/// Layout version of `{prefix}.meta`. Version 1 (before storages wrote their own sections)
/// kept the vectors in `hnsw.vectors`; this build does not read it.
const META_VERSION: u32 = 2;
/// Layout version of the graph's array sections.
const ARRAY_VERSION: u32 = 1;
/// The graph's own sections, after the prefix.
const GRAPH_SECTIONS: [&str; 6] = ["meta", "external", "levels", "states", "links0", "upper"];
/// The prefix [`Hnsw::save`] and [`Hnsw::load`] use.
const FILE_PREFIX: &str = "hnsw";

#[derive(Serialize, Deserialize)]
struct Meta {
    params: HnswParams,
    dim: usize,
    metric: String,
    slots: usize,
    /// `level << 32 | slot`, or `u64::MAX` for an empty graph.
    entry: u64,
    /// The first id `add` hands out (absent from files written before it was kept: then one
    /// past the largest id in the file).
    #[serde(default)]
    next_id: u64,
}

/// [`Error::CorruptFile`] naming `r`'s file.
pub(crate) fn corrupt(r: &ContainerReader, what: impl Into<String>) -> Error {
    Error::CorruptFile { path: r.path().to_path_buf(), what: what.into() }
}

impl<S: VectorStorage> Hnsw<S> {
    /// Writes the graph as sections `{prefix}.*` of `w`, its storage's under
    /// `{prefix}.storage` (see the module docs for the layout). Inserts wait while the graph's
    /// arrays are copied; searches go on. The caller finishes the container.
    pub fn write_to(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        let snap = self.snapshot();
        let meta = Meta {
            params: self.params().clone(),
            dim: self.dim(),
            metric: self.metric().name().into(),
            slots: snap.slots,
            entry: snap.entry,
            next_id: snap.next_id,
        };
        w.add_json(&format!("{prefix}.meta"), META_VERSION, &meta)?;
        // Slots below the snapshot's count are fully written and never change (rewriting one
        // needs `&mut self`), so the storage can be copied after the gate is released.
        self.storage().write_sections(w, &format!("{prefix}.storage"), snap.slots)?;
        w.add_array(&format!("{prefix}.external"), ARRAY_VERSION, &snap.external)?;
        w.add_array(&format!("{prefix}.levels"), ARRAY_VERSION, &snap.levels)?;
        w.add_array(&format!("{prefix}.states"), ARRAY_VERSION, &snap.states)?;
        w.add_array(&format!("{prefix}.links0"), ARRAY_VERSION, &snap.links0)?;
        w.add_array(&format!("{prefix}.upper"), ARRAY_VERSION, &snap.upper)?;
        Ok(())
    }

    /// Reads a graph written by [`write_to`](Hnsw::write_to) under `prefix`; it answers
    /// exactly as the written one. Everything is checked first (see the module docs): a
    /// corrupt or forged file is an [`Error::CorruptFile`] (or the storage's or container's
    /// error), never a panic.
    pub fn read_from(r: &ContainerReader, prefix: &str) -> Result<Self> {
        let name = |s: &str| format!("{prefix}.{s}");
        let versions: Vec<(String, u32)> =
            GRAPH_SECTIONS.iter().map(|s| (name(s), if *s == "meta" { META_VERSION } else { ARRAY_VERSION })).collect();
        r.check_versions(&versions.iter().map(|(n, v)| (n.as_str(), *v)).collect::<Vec<_>>())?;
        let meta: Meta = r.json(&name("meta"))?;
        let metric: Metric = meta
            .metric
            .parse()
            .map_err(|_| corrupt(r, format!("{}: unknown metric {:?}", name("meta"), meta.metric)))?;
        if meta.dim == 0 || meta.slots > u32::MAX as usize - 1 {
            return Err(corrupt(r, format!("{}: dimension 0 or too many slots", name("meta"))));
        }
        meta.params.check().map_err(|e| corrupt(r, format!("{}: {e}", name("meta"))))?;
        let snap = check_graph_sections(r, prefix, &meta)?;
        // The storage checks its own sections against the slot count before allocating.
        let storage = S::read_sections(r, &name("storage"), meta.slots)?;
        if storage.dim() != meta.dim || storage.metric() != metric {
            return Err(corrupt(
                r,
                format!(
                    "{}: the storage holds {}-d {} vectors, the graph says {}-d {metric}",
                    name("storage"),
                    storage.dim(),
                    storage.metric(),
                    meta.dim
                ),
            ));
        }
        let mut index = Hnsw::with_storage(storage, meta.params).map_err(|e| corrupt(r, e.to_string()))?;
        index.restore(&snap);
        Ok(index)
    }

    /// Writes the index to `path` atomically (a crash leaves the previous file, if any), as
    /// sections `hnsw.*` of one container. Inserts wait while the graph is copied; searches go
    /// on.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut w = ContainerWriter::create(path.as_ref())?;
        self.write_to(&mut w, FILE_PREFIX)?;
        w.finish()?;
        Ok(())
    }

    /// Reads an index written by [`save`](Hnsw::save) with the same storage type; it answers
    /// exactly as the saved one. Refuses a file with a required section it does not know.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let r = ContainerReader::open(path.as_ref())?;
        let graph: Vec<String> = GRAPH_SECTIONS.iter().map(|s| format!("{FILE_PREFIX}.{s}")).collect();
        // The storage's sections are its own business (it reads what it knows under its
        // prefix); anything else must be the graph's.
        let storage_prefix = format!("{FILE_PREFIX}.storage.");
        let known: Vec<&str> = graph
            .iter()
            .map(String::as_str)
            .chain(r.sections().iter().map(|s| s.name.as_str()).filter(|n| n.starts_with(&storage_prefix)))
            .collect();
        r.check_known(&known)?;
        Self::read_from(&r, FILE_PREFIX)
    }
}

/// Reads and checks the graph's own sections (everything but the storage) into a snapshot.
fn check_graph_sections<'r>(r: &'r ContainerReader, prefix: &str, meta: &Meta) -> Result<Snapshot<'r>> {
    let name = |s: &str| format!("{prefix}.{s}");
    let (p, n) = (&meta.params, meta.slots);
    let external: &[u64] = r.array(&name("external"))?;
    let levels: &[u8] = r.array(&name("levels"))?;
    let states: &[u8] = r.array(&name("states"))?;
    let links0: &[u32] = r.array(&name("links0"))?;
    let upper: &[u32] = r.array(&name("upper"))?;
    let expect = |what: &str, got: usize, want: Option<usize>| match want {
        Some(w) if w == got => Ok(()),
        _ => Err(corrupt(r, format!("section {} has {got} values, expected {want:?}", name(what)))),
    };
    expect("external", external.len(), Some(n))?;
    expect("levels", levels.len(), Some(n))?;
    expect("states", states.len(), Some(n))?;
    expect("links0", links0.len(), n.checked_mul(1 + p.m0))?;
    if let Some(slot) = levels.iter().position(|&l| l as usize > MAX_LEVEL) {
        return Err(corrupt(r, format!("slot {slot} has level {}, above the maximum {MAX_LEVEL}", levels[slot])));
    }
    // At most 2^32 slots × 31 levels × 1025 values: no overflow in u64-sized usize.
    let upper_len: usize = levels.iter().map(|&l| l as usize * (1 + p.m)).sum();
    expect("upper", upper.len(), Some(upper_len))?;
    // The graph numbers upper lists with a u32 (one arena for all nodes).
    if upper_len / (1 + p.m) > u32::MAX as usize {
        return Err(corrupt(r, format!("{} upper lists, more than a graph can number", upper_len / (1 + p.m))));
    }
    if let Some(slot) = states.iter().position(|&s| s != 0 && s != READY && s != READY | DELETED) {
        return Err(corrupt(r, format!("slot {slot} has state {:#04x}, not one the graph produces", states[slot])));
    }
    let ready = |slot: usize| states[slot] & READY != 0;
    // Every list: count within its width, every id a ready slot of this file whose level
    // reaches the list's layer.
    let check_list = |list: &[u32], slot: usize, layer: usize| -> Result<()> {
        let count = list[0] as usize;
        if count > list.len() - 1 {
            return Err(corrupt(
                r,
                format!("slot {slot} layer {layer}: {count} links in a list of {}", list.len() - 1),
            ));
        }
        for &id in &list[1..=count] {
            let id = id as usize;
            if id >= n {
                return Err(corrupt(r, format!("slot {slot} layer {layer}: link to slot {id} of {n}")));
            }
            if (levels[id] as usize) < layer {
                return Err(corrupt(
                    r,
                    format!("slot {slot} layer {layer}: link to slot {id}, whose level is {}", levels[id]),
                ));
            }
            if !ready(id) {
                return Err(corrupt(r, format!("slot {slot} layer {layer}: link to slot {id}, which is not ready")));
            }
        }
        Ok(())
    };
    let mut lists = upper.chunks_exact(1 + p.m);
    for (slot, list0) in links0.chunks_exact(1 + p.m0).enumerate() {
        if !ready(slot) && (levels[slot] != 0 || list0[0] != 0) {
            return Err(corrupt(r, format!("slot {slot} is not ready but has a level or links")));
        }
        check_list(list0, slot, 0)?;
        for layer in 1..=levels[slot] as usize {
            // Lengths were checked above: there is a list for every level of every slot.
            let Some(list) = lists.next() else { unreachable!("upper has sum(levels) lists") };
            check_list(list, slot, layer)?;
        }
    }
    if meta.entry != u64::MAX {
        let (level, slot) = ((meta.entry >> 32) as usize, meta.entry as u32 as usize);
        if slot >= n || levels[slot] as usize != level || !ready(slot) {
            return Err(corrupt(r, format!("entry point {level}:{slot} is not a ready slot of that level")));
        }
    } else if states.iter().any(|s| s & READY != 0) {
        return Err(corrupt(r, "nodes but no entry point"));
    }
    // Ids that are their slots' numbers (a graph never given ids) are distinct without a set.
    if !external.iter().zip(0u64..).all(|(&id, slot)| id == slot) {
        let mut seen = std::collections::HashSet::with_capacity(n);
        for (slot, (&id, &state)) in external.iter().zip(states).enumerate() {
            // Only live vectors must have distinct ids: a replaced vector stays, deleted, under
            // the id of its replacement until compact().
            if state == READY && !seen.insert(id) {
                return Err(corrupt(r, format!("slot {slot} repeats id {id}")));
            }
            if id == vq_distance::NO_ID {
                return Err(corrupt(r, format!("slot {slot} has id {id}, the padding of short answers")));
            }
        }
    }
    Ok(Snapshot {
        slots: n,
        entry: meta.entry,
        next_id: meta.next_id,
        external: external.into(),
        levels: levels.into(),
        states: states.into(),
        links0: links0.into(),
        upper: upper.into(),
    })
}
