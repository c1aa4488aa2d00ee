//! `GpuShards`: one base split over several [`GpuFlat`]s (several GPUs, or partitions of one),
//! searched each, their top-k merged on the host with `vq_distance::merge_topk`, as Faiss'
//! `IndexShards` over GPU indexes does. The split and the id bookkeeping are plain functions
//! (tested without a GPU below).

use std::sync::Arc;

use vq_distance::{Metric, Neighbors, merge_topk};

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::flat::{GpuFlat, GpuFlatOptions};

/// Exact k-NN over a base split across shards; results as [`GpuFlat`]'s, ids `0..len()` in
/// insertion order. Each `add` deals its rows out in contiguous, near-equal parts, one per
/// shard. Shards on distinct GPUs are searched concurrently (one thread per device).
#[derive(Debug)]
pub struct GpuShards {
    dim: usize,
    metric: Metric,
    shards: Vec<GpuFlat>,
    /// The global id of each shard's local row.
    ids: Vec<Vec<u64>>,
    len: usize,
}

/// The `parts` contiguous ranges `0..n` is dealt into: sizes differ by at most one, larger first.
pub(crate) fn split(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let (q, r) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = q + usize::from(i < r);
            start += len;
            start - len..start
        })
        .collect()
}

/// Rewrites each shard's local ids to global ones and merges the shards' top-k.
pub(crate) fn merge_shards(results: Vec<Neighbors>, ids: &[Vec<u64>], k: usize, metric: Metric) -> Result<Neighbors> {
    let global = results
        .into_iter()
        .zip(ids)
        .map(|(r, map)| {
            let rows = r.iter().map(|(local, scores)| {
                local.iter().zip(scores).map(|(&l, &s)| (map[l as usize], s)).collect::<Vec<_>>()
            });
            Neighbors::from_rows(k, metric, rows.collect::<Vec<_>>())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merge_topk(&global, k, metric)?)
}

impl GpuShards {
    /// One empty shard per entry of `gpus` (repeat a device to split over partitions of it).
    ///
    /// # Errors
    /// [`Error::NoDevice`] for an empty `gpus`; `GpuFlat::new`'s errors.
    pub fn new(gpus: &[Arc<Gpu>], dim: usize, metric: Metric, options: GpuFlatOptions) -> Result<Self> {
        if gpus.is_empty() {
            return Err(Error::NoDevice { reason: "GpuShards needs at least one device".into() });
        }
        let shards = gpus.iter().map(|g| GpuFlat::new(g, dim, metric, options)).collect::<Result<Vec<_>>>()?;
        Ok(Self { dim, metric, ids: vec![Vec::new(); shards.len()], shards, len: 0 })
    }

    /// Adopts existing indexes as shards (their ids are renumbered shard after shard).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] / [`Error::MetricMismatch`] when the shards differ,
    /// [`Error::NoDevice`] for none.
    pub fn from_shards(shards: Vec<GpuFlat>) -> Result<Self> {
        let first =
            shards.first().ok_or_else(|| Error::NoDevice { reason: "GpuShards needs at least one shard".into() })?;
        let (dim, metric) = (first.dim(), first.metric());
        if let Some(bad) = shards.iter().find(|s| s.dim() != dim) {
            return Err(Error::DimensionMismatch { what: "shard", expected: dim, got: bad.dim() });
        }
        if shards.iter().any(|s| s.metric() != metric) {
            return Err(Error::MetricMismatch { what: "shard", expected: metric });
        }
        let mut next = 0u64;
        let ids = shards
            .iter()
            .map(|s| {
                let r = (next..next + s.len() as u64).collect();
                next += s.len() as u64;
                r
            })
            .collect();
        Ok(Self { dim, metric, len: next as usize, shards, ids })
    }

    /// The vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The number of vectors over all shards.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no shard holds a vector.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shards.
    pub fn shards(&self) -> &[GpuFlat] {
        &self.shards
    }

    /// Appends `data` (rows of `dim`), dealt in contiguous parts over the shards.
    ///
    /// # Errors
    /// Input errors from `vq_distance::validate_rows` (nothing added); `GpuFlat::add`'s device
    /// errors, after which earlier shards have grown: drop the index.
    pub fn add(&mut self, data: &[f32]) -> Result<()> {
        // Validate everything first, so bad input never leaves some shards grown.
        let n = vq_distance::validate_rows("vectors", data, self.dim, self.metric)?;
        let parts = split(n, self.shards.len());
        for ((shard, ids), part) in self.shards.iter_mut().zip(&mut self.ids).zip(parts) {
            shard.add(&data[part.start * self.dim..part.end * self.dim])?;
            ids.extend(part.map(|r| (self.len + r) as u64));
        }
        self.len += n;
        Ok(())
    }

    /// The `k` nearest vectors of each query over all shards.
    ///
    /// # Errors
    /// `GpuFlat::search`'s, from the first shard that fails.
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Neighbors> {
        // One thread per device; shards sharing a device (one stream, one cuBLAS handle) take
        // turns on its thread.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            match groups.iter_mut().find(|g| Arc::ptr_eq(self.shards[g[0]].gpu(), shard.gpu())) {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        let mut results: Vec<Option<Neighbors>> = vec![None; self.shards.len()];
        std::thread::scope(|s| {
            let handles: Vec<_> = groups
                .iter()
                .map(|g| {
                    s.spawn(move || {
                        g.iter().map(|&i| self.shards[i].search(queries, k).map(|r| (i, r))).collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            for h in handles {
                for (i, r) in h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))? {
                    results[i] = Some(r);
                }
            }
            Ok::<(), Error>(())
        })?;
        // Every shard is in exactly one group, so every slot was filled.
        let results = results.into_iter().map(|r| r.expect("every shard searched")).collect();
        merge_shards(results, &self.ids, k, self.metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn split_covers_in_order_with_near_equal_parts(n in 0usize..10_000, parts in 1usize..17) {
            let p = split(n, parts);
            prop_assert_eq!(p.len(), parts);
            prop_assert_eq!(p[0].start, 0);
            prop_assert_eq!(p[parts - 1].end, n);
            prop_assert!(p.windows(2).all(|w| w[0].end == w[1].start && w[0].len() >= w[1].len()));
            prop_assert!(p[0].len() - p[parts - 1].len() <= 1);
        }

        /// Two adds dealt over the shards, each shard searched alone: the merged result is the
        /// exact search of the whole base (small integers: exact scores, ties by id).
        #[test]
        fn merged_shards_equal_the_whole(n1 in 0usize..60, n2 in 1usize..60, parts in 1usize..5, k in 1usize..12, ip in any::<bool>()) {
            let metric = if ip { Metric::InnerProduct } else { Metric::L2 };
            let dim = 3;
            let base: Vec<f32> = (0..(n1 + n2) * dim).map(|i| ((i * 7 + i / 5) % 9) as f32 - 4.0).collect();
            let queries: Vec<f32> = (0..4 * dim).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
            // The shards' contents as GpuShards::add deals them.
            let mut rows: Vec<Vec<f32>> = vec![Vec::new(); parts];
            let mut ids: Vec<Vec<u64>> = vec![Vec::new(); parts];
            for (offset, n) in [(0, n1), (n1, n2)] {
                for (p, part) in split(n, parts).into_iter().enumerate() {
                    for r in part {
                        rows[p].extend_from_slice(&base[(offset + r) * dim..(offset + r + 1) * dim]);
                        ids[p].push((offset + r) as u64);
                    }
                }
            }
            let results = rows
                .iter()
                .map(|r| {
                    if r.is_empty() {
                        Neighbors::from_rows(k, metric, vec![Vec::new(); 4]).unwrap()
                    } else {
                        vq_distance::knn_exact(r, &queries, dim, k, metric).unwrap()
                    }
                })
                .collect();
            let merged = merge_shards(results, &ids, k, metric).unwrap();
            let whole = vq_distance::knn_exact(&base, &queries, dim, k, metric).unwrap();
            prop_assert_eq!(merged.ids(), whole.ids());
            prop_assert_eq!(merged.scores(), whole.scores());
        }
    }
}
