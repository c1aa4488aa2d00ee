//! `Flat`: exact search over f32 vectors (Faiss' `IndexFlat`), through vq-distance's blocked
//! exact k-NN.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_distance::{
    IdFilter, Metric, Neighbors, RangeResult, TopK, check_radius, knn_exact, range_exact, score_one_to_many,
};
use vq_io::{ContainerReader, ContainerWriter};

use crate::error::{Error, Result};
use crate::ids::{IdMap, retain_rows};
use crate::index::{Index, MemoryUsage, SearchParams, check_ids, neighbors_from_rows, prepare, prepare_search};
use crate::spec::{BaseSpec, IndexSpec};

/// Rows scored per pass of a filtered scan.
const BLOCK: usize = 1024;

/// Exact search over the stored vectors (normalized, for cosine).
#[derive(Debug, Clone)]
pub struct FlatIndex {
    dim: usize,
    metric: Metric,
    vectors: Vec<f32>,
    ids: IdMap,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    dim: usize,
    metric: String,
}

impl FlatIndex {
    /// An empty index.
    pub fn new(dim: usize, metric: Metric) -> Result<Self> {
        if dim == 0 {
            return Err(vq_distance::Error::ZeroDimension.into());
        }
        Ok(FlatIndex { dim, metric, vectors: Vec::new(), ids: IdMap::default() })
    }

    /// The stored vector of `id` (normalized for cosine), if present.
    pub fn vector(&self, id: u64) -> Option<&[f32]> {
        let row = self.ids.row(id)?;
        Some(&self.vectors[row * self.dim..(row + 1) * self.dim])
    }

    /// An index over `vectors` (already prepared: checked, normalized for cosine) under `ids`.
    #[cfg(feature = "gpu")]
    pub(crate) fn from_parts(dim: usize, metric: Metric, vectors: Vec<f32>, ids: IdMap) -> Self {
        debug_assert_eq!(vectors.len(), ids.len() * dim);
        FlatIndex { dim, metric, vectors, ids }
    }

    /// The stored vectors (row-major, normalized for cosine) and their ids.
    #[cfg(feature = "gpu")]
    pub(crate) fn parts(&self) -> (&[f32], &IdMap) {
        (&self.vectors, &self.ids)
    }

    /// Scores `q` against every stored vector whose id `filter` accepts, block by block, and
    /// hands each `(id, score)` to `hit`.
    fn scan_filtered(&self, q: &[f32], filter: &dyn IdFilter, mut hit: impl FnMut(u64, f32)) -> Result<()> {
        let mut scores = vec![0f32; BLOCK];
        for (b, block) in self.vectors.chunks(BLOCK * self.dim).enumerate() {
            let scores = &mut scores[..block.len() / self.dim];
            score_one_to_many(self.metric, q, block, scores)?;
            for (i, &s) in scores.iter().enumerate() {
                let id = self.ids.id(b * BLOCK + i);
                if filter.accepts(id) {
                    hit(id, s);
                }
            }
        }
        Ok(())
    }

    fn filtered(&self, queries: &[f32], k: usize, filter: &dyn IdFilter) -> Result<Neighbors> {
        let rows = queries
            .par_chunks_exact(self.dim)
            .map(|q| {
                let mut top = TopK::new(k);
                self.scan_filtered(q, filter, |id, s| top.push(self.metric.key_from_score(s), id))?;
                Ok(top.into_sorted().into_iter().map(|(key, id)| (id, self.metric.score_from_key(key))).collect())
            })
            .collect::<Result<Vec<_>>>()?;
        neighbors_from_rows(k, self.metric, rows)
    }

    pub(crate) fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        let meta: Meta = r.json(&format!("{prefix}.meta"))?;
        let metric = parse_metric(&meta.metric)?;
        let vectors: Vec<f32> = r.array_vec(&format!("{prefix}.vectors"))?;
        if meta.dim == 0 || !vectors.len().is_multiple_of(meta.dim) {
            return Err(Error::Corrupt {
                what: format!("{prefix}: {} values for dimension {}", vectors.len(), meta.dim),
            });
        }
        let ids = IdMap::read(r, prefix, vectors.len() / meta.dim)?;
        Ok(FlatIndex { dim: meta.dim, metric, vectors, ids })
    }
}

/// A metric name from a file.
pub(crate) fn parse_metric(name: &str) -> Result<Metric> {
    name.parse().map_err(|_| Error::Corrupt { what: format!("unknown metric {name:?}") })
}

impl Index for FlatIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
    fn next_id(&self) -> u64 {
        self.ids.next_id()
    }

    fn is_trained(&self) -> bool {
        true
    }

    fn train(&mut self, data: &[f32]) -> Result<()> {
        prepare("training data", data, self.dim, self.metric).map(drop)
    }

    fn reserve(&mut self, additional: usize) {
        // A hint: dropped when the memory cannot be had (never an abort).
        let _ = self.vectors.try_reserve_exact(additional.saturating_mul(self.dim));
    }

    fn add(&mut self, data: &[f32]) -> Result<()> {
        let ids = self.ids.next_ids(data.len() / self.dim)?;
        self.add_with_ids(data, &ids)
    }

    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        let data = prepare("vectors", data, self.dim, self.metric)?;
        check_ids(&data, self.dim, ids)?;
        self.ids.check_absent(ids)?;
        self.vectors.extend_from_slice(&data);
        self.ids.push(ids);
        Ok(())
    }

    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
        let queries = prepare_search(queries, params, self.dim, self.metric)?;
        if let Some(filter) = params.filter {
            return self.filtered(&queries, params.k, filter);
        }
        if self.vectors.is_empty() {
            return Ok(Neighbors::from_rows(params.k, self.metric, vec![Vec::new(); queries.len() / self.dim])?);
        }
        let hits = knn_exact(&self.vectors, &queries, self.dim, params.k, self.metric)?;
        let rows = hits
            .iter()
            .map(|(rows, scores)| rows.iter().map(|&r| self.ids.id(r as usize)).zip(scores.iter().copied()).collect())
            .collect();
        neighbors_from_rows(params.k, self.metric, rows)
    }

    fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        self.vector(id).map(<[f32]>::to_vec).ok_or(Error::UnknownId(id))
    }

    /// Exact: [`range_exact`] over the stored vectors, or with a filter a scan of the vectors
    /// it accepts.
    fn range_search_with(&self, queries: &[f32], radius: f32, params: &SearchParams<'_>) -> Result<RangeResult> {
        check_radius(radius)?;
        let queries = prepare("queries", queries, self.dim, self.metric)?;
        let metric = self.metric;
        let Some(filter) = params.filter else {
            let by_row = range_exact(&self.vectors, &queries, self.dim, radius, metric)?;
            return self.ids.range_by_id(by_row, metric);
        };
        let rows: Vec<Vec<(u64, f32)>> = queries
            .par_chunks_exact(self.dim)
            .map(|q| {
                let mut hits = Vec::new();
                self.scan_filtered(q, filter, |id, s| {
                    if metric.within(s, radius) {
                        hits.push((id, s));
                    }
                })?;
                Ok(hits)
            })
            .collect::<Result<_>>()?;
        Ok(RangeResult::from_rows(metric, rows)?)
    }

    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        let Some(keep) = self.ids.keep_mask(ids) else { return Ok(0) };
        let removed = keep.iter().filter(|&&k| !k).count();
        retain_rows(&mut self.vectors, self.dim, &keep);
        self.ids.retain(&keep);
        Ok(removed)
    }

    fn reset(&mut self) -> Result<()> {
        self.vectors = Vec::new();
        self.ids = IdMap::default();
        Ok(())
    }

    fn memory_usage(&self) -> MemoryUsage {
        MemoryUsage { vectors: self.vectors.capacity() * 4, ids: self.ids.memory_bytes(), ..Default::default() }
    }

    fn spec(&self) -> IndexSpec {
        IndexSpec::new(BaseSpec::Flat)
    }

    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        w.add_json(&format!("{prefix}.meta"), 1, &Meta { dim: self.dim, metric: self.metric.name().into() })?;
        w.add_array(&format!("{prefix}.vectors"), 1, &self.vectors)?;
        self.ids.write(w, prefix)
    }
}
