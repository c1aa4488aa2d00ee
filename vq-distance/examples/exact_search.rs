//! Quickstart of vq-distance alone: exact search and one pair score.

use vq_distance::{Metric, knn_exact, score};

fn main() -> Result<(), vq_distance::Error> {
    let dim = 3;
    let base = vec![0.0f32, 0.0, 1.0, /**/ 1.0, 0.0, 0.0, /**/ 0.9, 0.1, 0.0];
    let queries = vec![1.0f32, 0.05, 0.0];

    // Exact search, parallel over queries on the current rayon pool.
    let hits = knn_exact(&base, &queries, dim, 2, Metric::Cosine)?;
    let (ids, scores) = hits.get(0).expect("one query");
    assert_eq!(ids, &[1, 2]); // best first; cosine scores are similarities
    assert!(scores[0] > scores[1]);

    // One pair, with the SIMD level chosen for this CPU (vq_distance::simd_level()).
    let d = score(Metric::L2, &base[..3], &base[3..6])?;
    assert_eq!(d, 2.0); // L2 scores are squared distances
    println!("nearest: {ids:?}, scores {scores:?}; SIMD level {}", vq_distance::simd_level());
    Ok(())
}
