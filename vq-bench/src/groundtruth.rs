//! Exact ground truth: computed with `vq_distance::knn_exact` when a dataset has none for the
//! metric, and cached so that a second run is instant.
//!
//! The cache key is a hash of the base and query bytes, the dimension, the depth and the
//! metric, so changed data never meets a stale ground truth. Files go next to the data when
//! that folder is writable, else into the cache folder.

use std::path::{Path, PathBuf};

use vq_distance::{Metric, knn_exact};

use crate::dataset::{self, Dataset, GroundTruth, Vectors};
use crate::error::{Error, Result};
use crate::files;

/// Neighbours kept per query (deeper than any k a sweep uses, so ties past k are visible).
pub const DEFAULT_DEPTH: usize = 100;

/// Where the ground truth of a run came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Shipped with the dataset (texmex `gt.ivecs`).
    Shipped,
    /// Read from the cache file.
    Cached(PathBuf),
    /// Computed now (and written to the file, if it could be).
    Computed(Option<PathBuf>),
}

/// FNV-1a over 64-bit words: stable across Rust versions and machines (unlike `DefaultHasher`).
pub(crate) fn fnv1a64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h ^= u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    for &b in words.remainder() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The cache file stem for this dataset, depth and metric.
pub fn cache_key(ds: &Dataset, depth: usize, metric: Metric) -> String {
    let mut h = fnv1a64(ds.dim as u64, &ds.base.bytes());
    h = fnv1a64(h, &ds.queries.bytes());
    format!("gt-{}-{}-top{depth}-{h:016x}", metric.name(), ds.base.elem())
}

/// Makes sure `ds.gt` holds at least `k` exact neighbours per query for `metric`.
pub fn ensure(ds: &mut Dataset, k: usize, metric: Metric, cache_dir: &Path) -> Result<Origin> {
    if let Some(gt) = &ds.gt
        && metric == dataset::shipped_gt_metric()
        && gt.scores.is_none()
    {
        // A ground truth the user's files carry is used as it is, never silently replaced.
        if gt.depth < k.min(ds.nb()) {
            return Err(Error::Mismatch(format!(
                "the ground truth has {} neighbours per query, fewer than k = {k}",
                gt.depth
            )));
        }
        return Ok(Origin::Shipped);
    }
    let depth = k.max(DEFAULT_DEPTH).min(ds.nb().max(1));
    let stem = cache_key(ds, depth, metric);
    let dirs: Vec<PathBuf> = ds.dir.iter().cloned().chain(std::iter::once(cache_dir.to_path_buf())).collect();
    for dir in &dirs {
        let ids = dir.join(format!("{stem}.ivecs"));
        // An unreadable or mismatched cache file is recomputed (and overwritten).
        if ids.exists()
            && let Ok(gt) = read_cached(&ids, &dir.join(format!("{stem}.fvecs")))
            && gt.num_queries() == ds.nq()
            && gt.depth == depth
        {
            ds.gt = Some(gt);
            return Ok(Origin::Cached(ids));
        }
    }
    let gt = compute(ds, depth, metric)?;
    let mut written = None;
    for dir in &dirs {
        if std::fs::create_dir_all(dir).is_ok() && write_cached(dir, &stem, &gt).is_ok() {
            written = Some(dir.join(format!("{stem}.ivecs")));
            break;
        }
    }
    ds.gt = Some(gt);
    Ok(Origin::Computed(written))
}

/// Exact top-`depth` of every query, with scores.
pub fn compute(ds: &Dataset, depth: usize, metric: Metric) -> Result<GroundTruth> {
    let hits = match (&ds.base, &ds.queries) {
        (Vectors::F32(b), Vectors::F32(q)) => knn_exact(b, q, ds.dim, depth, metric)?,
        (Vectors::U8(b), Vectors::U8(q)) => knn_exact(b, q, ds.dim, depth, metric)?,
        _ => return Err(Error::Mismatch("base and queries have different element types".into())),
    };
    Ok(GroundTruth { depth, ids: hits.ids().to_vec(), scores: Some(hits.scores().to_vec()) })
}

fn read_cached(ids: &Path, scores: &Path) -> Result<GroundTruth> {
    let mut gt = files::read_ground_truth(ids)?;
    if scores.exists() {
        let (d, s) = files::read_vectors(scores)?;
        match s {
            Vectors::F32(s) if d == gt.depth && s.len() == gt.ids.len() => gt.scores = Some(s),
            _ => return Err(Error::bad_file(scores, "scores do not match the ids beside them")),
        }
    }
    Ok(gt)
}

fn write_cached(dir: &Path, stem: &str, gt: &GroundTruth) -> Result<()> {
    // Padding ids (u64::MAX, only when the base has fewer vectors than the depth) become -1.
    let ids: Vec<i32> = gt.ids.iter().map(|&i| i32::try_from(i).unwrap_or(-1)).collect();
    if let Some(scores) = &gt.scores {
        files::write_texmex_f32(&dir.join(format!("{stem}.fvecs")), gt.depth, scores)?;
    }
    files::write_texmex_i32(&dir.join(format!("{stem}.ivecs")), gt.depth, &ids)
}
