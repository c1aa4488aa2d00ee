//! Slow, obviously correct twins of every kernel: the oracle the SIMD paths are tested
//! against. Floats accumulate in f64, integers in i64.

use crate::element::Element;
use crate::metric::Metric;

/// Squared Euclidean distance, sequentially in f64.
pub fn l2_sq<T: Element>(a: &[T], b: &[T]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (f64::from(x.to_f32()) - f64::from(y.to_f32())).powi(2)).sum()
}

/// Dot product, sequentially in f64.
pub fn dot<T: Element>(a: &[T], b: &[T]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x.to_f32()) * f64::from(y.to_f32())).sum()
}

/// Cosine similarity in f64; 0 when either vector is zero.
pub fn cosine<T: Element>(a: &[T], b: &[T]) -> f64 {
    let (aa, bb) = (dot(a, a), dot(b, b));
    if aa == 0.0 || bb == 0.0 { 0.0 } else { (dot(a, b) / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0) }
}

/// The score of `metric`, in f64.
pub fn score<T: Element>(metric: Metric, a: &[T], b: &[T]) -> f64 {
    match metric {
        Metric::L2 => l2_sq(a, b),
        Metric::InnerProduct => dot(a, b),
        Metric::Cosine => cosine(a, b),
    }
}

/// `Σ |aᵢ·bᵢ|`: the scale a floating-point dot product's rounding error is relative to.
pub fn dot_magnitude<T: Element>(a: &[T], b: &[T]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (f64::from(x.to_f32()) * f64::from(y.to_f32())).abs()).sum()
}

/// Exact k-NN by scoring everything and sorting: `(id, score)` per query, best first, ties to
/// the smaller id. Skips base vectors with non-finite values, as `knn_exact` does.
pub fn knn<T: Element>(base: &[T], queries: &[T], dim: usize, k: usize, metric: Metric) -> Vec<Vec<(u64, f64)>> {
    queries
        .chunks_exact(dim)
        .map(|q| {
            let mut all: Vec<(u64, f64)> = base
                .chunks_exact(dim)
                .enumerate()
                .filter(|(_, y)| y.iter().all(|v| v.is_finite()))
                .map(|(i, y)| (i as u64, score(metric, q, y)))
                .collect();
            all.sort_by(|a, b| {
                let (ka, kb) = if metric.smaller_is_better() { (a.1, b.1) } else { (-a.1, -b.1) };
                ka.total_cmp(&kb).then(a.0.cmp(&b.0))
            });
            all.truncate(k);
            all
        })
        .collect()
}
