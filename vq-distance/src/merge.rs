//! Scatter-gather: the top-k of several result sets over the same queries (shards searched
//! separately, as Faiss' `IndexShards` and a distributed search combine them).

use crate::error::{Error, Result};
use crate::knn::Neighbors;
use crate::metric::Metric;
use crate::topk::TopK;

/// The `k` best of `results` per query: each element is one shard's answer to the same
/// queries (scores of `metric`, ids already global). Padding (`u64::MAX`) is dropped, ties go
/// to the smaller id, and an id returned by several shards is kept once (its best score).
///
/// ```
/// use vq_distance::{Metric, Neighbors, merge_topk};
/// let a = Neighbors::from_rows(2, Metric::L2, vec![vec![(1, 0.5), (4, 2.0)]])?;
/// let b = Neighbors::from_rows(2, Metric::L2, vec![vec![(7, 1.0)]])?;
/// let m = merge_topk(&[a, b], 2, Metric::L2)?;
/// assert_eq!(m.ids(), &[1, 7]);
/// # Ok::<(), vq_distance::Error>(())
/// ```
pub fn merge_topk(results: &[Neighbors], k: usize, metric: Metric) -> Result<Neighbors> {
    if k == 0 {
        return Err(Error::ZeroK);
    }
    let nq = results.first().map_or(0, Neighbors::num_queries);
    if let Some(bad) = results.iter().find(|r| r.num_queries() != nq) {
        return Err(Error::OutputLength { what: "results", got: bad.num_queries(), expected: nq });
    }
    let rows = (0..nq).map(|q| {
        let mut top = TopK::new(k.saturating_mul(results.len()).max(k));
        for r in results {
            let (ids, scores) = r.get(q).unwrap_or((&[], &[]));
            for (&id, &s) in ids.iter().zip(scores) {
                if id != u64::MAX {
                    top.push(metric.key_from_score(s), id);
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut row: Vec<(u64, f32)> = Vec::with_capacity(k);
        for (key, id) in top.into_sorted() {
            if row.len() == k {
                break;
            }
            if seen.insert(id) {
                row.push((id, metric.score_from_key(key)));
            }
        }
        row
    });
    Neighbors::from_rows(k, metric, rows.collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_shards_equals_searching_their_union() {
        let dim = 4;
        let base: Vec<f32> = (0..400).map(|i| ((i * 37) % 101) as f32).collect();
        let queries = &base[..3 * dim];
        for metric in [Metric::L2, Metric::InnerProduct] {
            let whole = crate::knn_exact(&base, queries, dim, 7, metric).unwrap();
            // Two shards: rows 0..60 and 60..100, ids shifted back to global.
            let a = crate::knn_exact(&base[..60 * dim], queries, dim, 7, metric).unwrap();
            let b = crate::knn_exact(&base[60 * dim..], queries, dim, 7, metric).unwrap();
            let b = Neighbors::from_rows(
                7,
                metric,
                b.iter().map(|(ids, s)| ids.iter().map(|&i| i + 60).zip(s.iter().copied()).collect::<Vec<_>>()),
            )
            .unwrap();
            let merged = merge_topk(&[a, b], 7, metric).unwrap();
            assert_eq!(merged.ids(), whole.ids(), "{metric:?}");
        }
        assert!(merge_topk(&[], 0, Metric::L2).is_err());
    }
}
