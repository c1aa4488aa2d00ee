//! Nearest-centroid assignment: the top-1 of every point among a small set of f32 vectors,
//! written into caller-owned buffers (the inner step of k-means, IVF assignment and PQ encoding).

use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Error, Result};
use crate::gemm::{self, BaseTerms};
use crate::knn::check_rows;
use crate::metric::Metric;
use crate::simd::{Kernels, kernels};

/// Points converted (and, for cosine, normalized) per step, so that a non-f32 input never needs
/// a full f32 copy.
const POINT_BLOCK: usize = 16 * 1024;

/// For every row of `points`, writes the id of its best row of `centroids` by `metric` into
/// `labels` and that pair's score into `scores` (both `points.len() / dim` long).
///
/// This is [`knn_exact`](crate::knn_exact) with `k = 1`, `base = centroids` and
/// `queries = points`, without the per-query result lists: the blocked
/// `‖x‖² − 2x·c + ‖c‖²` micro-kernel with its fused selection, parallel over points on the
/// current rayon pool, and no exact rescoring. Scores are therefore those of the blocked form
/// (as in a BLAS-based k-means): for [`Metric::L2`] `‖x‖² − 2x·c + ‖c‖²` clamped at 0, which
/// may differ from [`l2_sq`](crate::l2_sq) by rounding; similarities for inner product and
/// cosine. Ties go to the smaller id. The result for a point does not depend on the thread count.
///
/// - Points must be finite ([`Error::NonFiniteQuery`]) and, for cosine, nonzero
///   ([`Error::ZeroNormQuery`]).
/// - Centroids holding NaN or an infinity are skipped. A point with no finite centroid (or with
///   no centroid at all) gets `u32::MAX` and [`Metric::worst_score`].
/// - [`Error::TooManyVectors`] if there are more than `u32::MAX` centroids;
///   [`Error::OutputLength`] if `labels` or `scores` do not have one entry per point.
///
/// ```
/// use vq_distance::{Metric, nearest_centroids};
/// let centroids = [0.0f32, 0.0, 10.0, 10.0];
/// let points = [1u8, 2, 9, 9, 4, 4];
/// let (mut labels, mut scores) = (vec![0; 3], vec![0.0; 3]);
/// nearest_centroids(&points, &centroids, 2, Metric::L2, &mut labels, &mut scores)?;
/// assert_eq!(labels, [0, 1, 0]);
/// assert_eq!(scores, [5.0, 2.0, 32.0]);
/// # Ok::<(), vq_distance::Error>(())
/// ```
pub fn nearest_centroids<T: Element>(
    points: &[T],
    centroids: &[f32],
    dim: usize,
    metric: Metric,
    labels: &mut [u32],
    scores: &mut [f32],
) -> Result<()> {
    nearest_centroids_with(kernels(), points, centroids, dim, metric, labels, scores)
}

/// [`nearest_centroids`] with the kernels of a chosen level.
pub fn nearest_centroids_with<T: Element>(
    kern: &Kernels,
    points: &[T],
    centroids: &[f32],
    dim: usize,
    metric: Metric,
    labels: &mut [u32],
    scores: &mut [f32],
) -> Result<()> {
    let nc = check_rows("centroids", centroids, dim)?;
    let np = check_rows("points", points, dim)?;
    if nc > u32::MAX as usize {
        return Err(Error::TooManyVectors { n: nc, max: u32::MAX as usize });
    }
    if labels.len() != np {
        return Err(Error::OutputLength { what: "labels", got: labels.len(), expected: np });
    }
    if scores.len() != np {
        return Err(Error::OutputLength { what: "scores", got: scores.len(), expected: np });
    }
    check_points(kern, points, dim, metric)?;
    if nc == 0 {
        labels.fill(u32::MAX);
        scores.fill(metric.worst_score());
        return Ok(());
    }
    let terms = BaseTerms::new(kern, centroids, dim, metric, true);
    let mut block32 = Vec::new();
    for ((block, labels), scores) in
        points.chunks(POINT_BLOCK * dim).zip(labels.chunks_mut(POINT_BLOCK)).zip(scores.chunks_mut(POINT_BLOCK))
    {
        block32.clear();
        block32.resize(block.len(), 0.0);
        block32.par_chunks_mut(dim).zip(block.par_chunks(dim)).for_each(|(dst, src)| {
            dst.iter_mut().zip(src).for_each(|(d, s)| *d = s.to_f32());
            if metric == Metric::Cosine {
                let inv = 1.0 / kern.f32.dot_sq(dst).sqrt();
                dst.iter_mut().for_each(|v| *v *= inv);
            }
        });
        let tops = gemm::top_k_blocked(kern, &block32, centroids, dim, &terms, 1);
        tops.into_par_iter()
            .zip(block32.par_chunks(dim))
            .zip(labels.par_iter_mut().zip(scores.par_iter_mut()))
            .for_each(|((mut top, x), (label, score))| match top.sorted().first() {
                Some(&(key, id)) => {
                    *label = id as u32;
                    *score = match metric {
                        Metric::L2 => {
                            let d = key + kern.f32.dot_sq(x);
                            if d < 0.0 { 0.0 } else { d }
                        }
                        Metric::InnerProduct | Metric::Cosine => -key,
                    };
                }
                None => {
                    *label = u32::MAX;
                    *score = metric.worst_score();
                }
            });
    }
    Ok(())
}

/// Rejects non-finite points, and zero points for cosine.
fn check_points<T: Element>(kern: &Kernels, points: &[T], dim: usize, metric: Metric) -> Result<()> {
    let bad = points.par_chunks(dim).enumerate().find_first(|(_, p)| {
        !p.iter().all(|v| v.is_finite()) || (metric == Metric::Cosine && T::dot_unchecked(kern, p, p) == 0.0)
    });
    match bad {
        None => Ok(()),
        Some((row, p)) => match p.iter().position(|v| !v.is_finite()) {
            Some(component) => Err(Error::NonFiniteQuery { row, component }),
            None => Err(Error::ZeroNormQuery { row }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Naive nearest centroid: exact f64 scores, ties to the smaller id.
    fn naive(points: &[f32], centroids: &[f32], dim: usize, metric: Metric) -> Vec<(u32, f64)> {
        points
            .chunks(dim)
            .map(|x| {
                let mut best = (u32::MAX, f64::NAN);
                for (j, c) in centroids.chunks(dim).enumerate() {
                    let s = match metric {
                        Metric::L2 => x.iter().zip(c).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum(),
                        _ => x.iter().zip(c).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>(),
                    };
                    let better = best.0 == u32::MAX || if metric == Metric::L2 { s < best.1 } else { s > best.1 };
                    if better {
                        best = (j as u32, s);
                    }
                }
                best
            })
            .collect()
    }

    fn run(points: &[f32], centroids: &[f32], dim: usize, metric: Metric) -> (Vec<u32>, Vec<f32>) {
        let n = points.len() / dim;
        let (mut labels, mut scores) = (vec![7; n], vec![-1.0; n]);
        nearest_centroids(points, centroids, dim, metric, &mut labels, &mut scores).unwrap();
        (labels, scores)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Small integers: every score is exact in f32, so labels (ties to the smaller id
        /// included) and scores must equal the naive search exactly, at every SIMD level.
        #[test]
        fn integer_data_matches_naive_exactly(
            dim in 1usize..40, np in 1usize..70, nc in 1usize..50, seed in any::<u64>(), ip in any::<bool>(),
        ) {
            let metric = if ip { Metric::InnerProduct } else { Metric::L2 };
            let mut s = seed | 1;
            let mut next = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 33) % 7) as f32 - 3.0 };
            let points: Vec<f32> = (0..np * dim).map(|_| next()).collect();
            let centroids: Vec<f32> = (0..nc * dim).map(|_| next()).collect();
            let want = naive(&points, &centroids, dim, metric);
            for level in crate::SimdLevel::available() {
                let kern = Kernels::for_level(level).unwrap();
                let (mut labels, mut scores) = (vec![7; np], vec![-1.0; np]);
                nearest_centroids_with(&kern, &points, &centroids, dim, metric, &mut labels, &mut scores).unwrap();
                for (i, (l, s)) in labels.iter().zip(&scores).enumerate() {
                    prop_assert_eq!(*l, want[i].0, "level {} point {}", level, i);
                    prop_assert_eq!(f64::from(*s), want[i].1);
                }
            }
        }

        /// Random floats: the chosen centroid is the best up to rounding, and its score is close
        /// to the exact one.
        #[test]
        fn float_data_is_nearest_up_to_rounding(
            dim in 1usize..70, np in 1usize..60, nc in 1usize..80, seed in any::<u64>(),
        ) {
            let mut s = seed | 1;
            let mut next = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5 };
            let points: Vec<f32> = (0..np * dim).map(|_| next()).collect();
            let centroids: Vec<f32> = (0..nc * dim).map(|_| next()).collect();
            let want = naive(&points, &centroids, dim, Metric::L2);
            let (labels, scores) = run(&points, &centroids, dim, Metric::L2);
            for (i, x) in points.chunks(dim).enumerate() {
                let c = &centroids[labels[i] as usize * dim..][..dim];
                let exact: f64 = x.iter().zip(c).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum();
                let tol = 1e-5 * (dim as f64);
                prop_assert!(exact <= want[i].1 + tol, "point {}: chose {} at {}, best {} at {}", i, labels[i], exact, want[i].0, want[i].1);
                prop_assert!((f64::from(scores[i]) - exact).abs() <= tol);
            }
        }
    }

    #[test]
    fn u8_points_equal_their_f32_copy_and_blocks_join_up() {
        let dim = 5;
        let n = POINT_BLOCK + 37; // two blocks
        let points: Vec<u8> = (0..n * dim).map(|i| ((i * 7919) % 251) as u8).collect();
        let as_f32: Vec<f32> = points.iter().map(|&v| f32::from(v)).collect();
        let centroids: Vec<f32> = (0..9 * dim).map(|i| ((i * 31) % 200) as f32).collect();
        let (mut labels, mut scores) = (vec![0; n], vec![0.0; n]);
        nearest_centroids(&points, &centroids, dim, Metric::L2, &mut labels, &mut scores).unwrap();
        let want = naive(&as_f32, &centroids, dim, Metric::L2);
        assert!(labels.iter().zip(&want).all(|(l, w)| *l == w.0));
        assert_eq!((labels, scores), run(&as_f32, &centroids, dim, Metric::L2));
    }

    #[test]
    fn cosine_normalizes_points_and_centroids() {
        let centroids = [1.0f32, 0.0, 0.0, 3.0];
        let (labels, scores) = run(&[5.0, 1.0, 0.5, 2.0], &centroids, 2, Metric::Cosine);
        assert_eq!(labels, [0, 1]);
        assert!((scores[0] - 5.0 / 26f32.sqrt()).abs() < 1e-6);
        assert!((scores[1] - 2.0 / 4.25f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn bad_input_is_an_error_and_non_finite_centroids_are_skipped() {
        let (mut l, mut s) = (vec![0; 2], vec![0.0; 2]);
        let c = [0.0f32, 0.0];
        assert_eq!(
            nearest_centroids(&[1.0f32, 2.0, 3.0, f32::NAN], &c, 2, Metric::L2, &mut l, &mut s),
            Err(Error::NonFiniteQuery { row: 1, component: 1 })
        );
        assert_eq!(
            nearest_centroids(&[1.0f32, 2.0, 0.0, 0.0], &c, 2, Metric::Cosine, &mut l, &mut s),
            Err(Error::ZeroNormQuery { row: 1 })
        );
        assert!(matches!(
            nearest_centroids(&[1.0f32, 2.0], &c, 2, Metric::L2, &mut l, &mut s),
            Err(Error::OutputLength { what: "labels", .. })
        ));
        assert!(matches!(
            nearest_centroids(&[1.0f32, 2.0, 3.0], &c, 2, Metric::L2, &mut l, &mut s),
            Err(Error::RaggedBuffer { what: "points", .. })
        ));
        let (labels, scores) = run(&[1.0, 1.0, 9.0, 9.0], &[f32::NAN, 0.0, 10.0, 10.0], 2, Metric::L2);
        assert_eq!(labels, [1, 1]);
        assert_eq!(scores, [162.0, 2.0]);
        let (labels, scores) = run(&[1.0, 1.0], &[f32::INFINITY, 0.0], 2, Metric::L2);
        assert_eq!((labels[0], scores[0]), (u32::MAX, Metric::L2.worst_score()));
        let (labels, _) = run(&[1.0, 1.0], &[], 2, Metric::InnerProduct);
        assert_eq!(labels, [u32::MAX]);
    }
}
