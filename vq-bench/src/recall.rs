//! recall@k against exact ground truth.

use crate::dataset::GroundTruth;

/// recall@k = |found top-k ∩ true top-k| / k, averaged over queries.
///
/// - `found` lists each query's result ids, best first (any length; only the first `k` count,
///   a repeated id counts once, and a query with fewer than `k` results simply scores lower:
///   the denominator stays `k`).
/// - Ties: when the ground truth carries scores, a true neighbour past rank `k` whose score
///   equals the k-th score is as good as the k-th one, so finding it counts too (capped at `k`
///   per query). Without scores (texmex `gt.ivecs`), only the true top-k ids count.
/// - Returns `None` when the ground truth is shallower than `k` or covers fewer queries.
pub fn recall_at_k<'a>(found: impl IntoIterator<Item = &'a [u64]>, gt: &GroundTruth, k: usize) -> Option<f64> {
    if k == 0 || gt.depth < k {
        return None;
    }
    let mut total = 0usize;
    let mut queries = 0usize;
    let mut accepted: Vec<u64> = Vec::with_capacity(gt.depth);
    let mut seen: Vec<u64> = Vec::with_capacity(k);
    for (q, ids) in found.into_iter().enumerate() {
        let truth = gt.ids.get(q * gt.depth..(q + 1) * gt.depth)?;
        accepted.clear();
        accepted.extend_from_slice(&truth[..k]);
        if let Some(scores) = &gt.scores {
            let s = &scores[q * gt.depth..(q + 1) * gt.depth];
            let kth = s[k - 1];
            accepted.extend(truth[k..].iter().zip(&s[k..]).take_while(|(_, sc)| **sc == kth).map(|(id, _)| *id));
        }
        accepted.retain(|&id| id != u64::MAX);
        seen.clear();
        for &id in ids.iter().take(k) {
            if !seen.contains(&id) && accepted.contains(&id) {
                seen.push(id);
            }
        }
        total += seen.len().min(k);
        queries += 1;
    }
    if queries == 0 {
        return None;
    }
    Some(total as f64 / (k * queries) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(depth: usize, ids: &[u64], scores: Option<&[f32]>) -> GroundTruth {
        GroundTruth { depth, ids: ids.to_vec(), scores: scores.map(<[f32]>::to_vec) }
    }

    #[test]
    fn counts_the_overlap_of_the_top_k() {
        let truth = gt(4, &[1, 2, 3, 4, 10, 20, 30, 40], None);
        let found: [&[u64]; 2] = [&[3, 1, 9], &[10, 20, 30]];
        // k = 3: query 0 finds {1, 3} of {1, 2, 3}; query 1 finds all three.
        assert_eq!(recall_at_k(found, &truth, 3), Some(5.0 / 6.0));
    }

    #[test]
    fn fewer_results_than_k_and_duplicates_do_not_inflate_it() {
        let truth = gt(2, &[5, 6], None);
        assert_eq!(recall_at_k([&[5u64][..]], &truth, 2), Some(0.5));
        assert_eq!(recall_at_k([&[5u64, 5][..]], &truth, 2), Some(0.5));
        assert_eq!(recall_at_k([&[][..]], &truth, 2), Some(0.0));
    }

    #[test]
    fn a_tie_with_the_kth_neighbour_counts_when_scores_are_known() {
        // True order 7, 8, 9 with scores 1, 2, 2: for k = 2, ids 8 and 9 tie for rank 2.
        let with_scores = gt(3, &[7, 8, 9], Some(&[1.0, 2.0, 2.0]));
        assert_eq!(recall_at_k([&[7u64, 9][..]], &with_scores, 2), Some(1.0));
        let ids_only = gt(3, &[7, 8, 9], None);
        assert_eq!(recall_at_k([&[7u64, 9][..]], &ids_only, 2), Some(0.5));
        // A worse third neighbour is not a tie.
        let no_tie = gt(3, &[7, 8, 9], Some(&[1.0, 2.0, 3.0]));
        assert_eq!(recall_at_k([&[7u64, 9][..]], &no_tie, 2), Some(0.5));
    }

    #[test]
    fn shallow_ground_truth_gives_none() {
        let truth = gt(2, &[1, 2], None);
        assert_eq!(recall_at_k([&[1u64, 2, 3][..]], &truth, 3), None);
        assert_eq!(recall_at_k([&[1u64][..], &[1][..]], &truth, 1), None);
    }
}
