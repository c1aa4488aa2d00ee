//! Range search through k-NN search, for indexes without a range scan of their own, and
//! per-query radii through single-query range searches.

use rayon::prelude::*;
use vq_distance::RangeResult;

use crate::error::Result;
use crate::index::{Index, SearchParams};

/// Neighbours asked for in the first round of [`range_by_deepening`] when the caller gives
/// no `k`.
pub(crate) const FIRST_K: usize = 32;

/// The range search of an index that only knows k-NN search: each query is searched with `k`
/// neighbours, and again with twice as many while all of its `k` hits are within `radius` (and
/// `k` is below the index size), re-searching only those queries. The hits are then the part
/// of a k-NN answer that lies within `radius`, so an approximate index finds what its k-NN
/// search at that `k` would find (a graph search's beam grows with `k`).
pub(crate) fn range_by_deepening(
    index: &(impl Index + ?Sized),
    queries: &[f32],
    radius: f32,
    params: &SearchParams<'_>,
) -> Result<RangeResult> {
    vq_distance::check_radius(radius)?;
    let (dim, metric, n) = (index.dim(), index.metric(), index.len());
    let nq = query_count(queries, dim)?;
    let mut rows: Vec<Vec<(u64, f32)>> = vec![Vec::new(); nq];
    let mut pending: Vec<usize> = (0..nq).collect();
    // An empty index still searches once, so that queries are checked as a search checks them.
    let mut k = if params.k == 0 { FIRST_K } else { params.k }.min(n.max(1));
    while !pending.is_empty() {
        let batch: Vec<f32> = pending.iter().flat_map(|&q| &queries[q * dim..(q + 1) * dim]).copied().collect();
        let hits = index.search_with(&batch, &SearchParams { k, ..*params })?;
        let mut deeper = Vec::new();
        debug_assert_eq!(hits.num_queries(), pending.len());
        for (&q, (ids, scores)) in pending.iter().zip(hits.iter()) {
            let inside = scores.iter().take_while(|&&s| metric.within(s, radius)).count();
            if inside == k && k < n {
                deeper.push(q);
            } else {
                rows[q] = ids[..inside].iter().copied().zip(scores[..inside].iter().copied()).collect();
            }
        }
        pending = deeper;
        k = k.saturating_mul(2).min(n);
    }
    Ok(RangeResult::from_rows(metric, rows)?)
}

/// [`Index::range_rows`] of an index without a batched pass of its own: each query
/// range-searched alone at its radius (in parallel over queries), its hits kept as they come.
pub(crate) fn range_rows_per_query(
    index: &(impl Index + ?Sized),
    queries: &[f32],
    radii: &[f32],
    params: &SearchParams<'_>,
) -> Result<Vec<Vec<(u64, f32)>>> {
    let dim = index.dim();
    vq_distance::check_radii(radii, query_count(queries, dim)?)?;
    queries
        .par_chunks_exact(dim)
        .zip(radii)
        .map(|(q, &radius)| {
            let hits = index.range_search_with(q, radius, params)?;
            let (ids, scores) = hits.get(0).unwrap_or_default();
            Ok(ids.iter().copied().zip(scores.iter().copied()).collect())
        })
        .collect()
}

/// How many `dim`-wide rows `queries` holds; a ragged buffer is an error.
fn query_count(queries: &[f32], dim: usize) -> Result<usize> {
    if !queries.len().is_multiple_of(dim) {
        return Err(vq_distance::Error::RaggedBuffer { what: "queries", len: queries.len(), dim }.into());
    }
    Ok(queries.len() / dim)
}
