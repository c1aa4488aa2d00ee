//! The assignment step of k-means on the GPU: each point's nearest centroid, by one GEMM per
//! tile and the selection kernel at k = 1 (the arg-min), with the same signature as
//! `vq_distance::nearest_centroids` so a Lloyd loop can call either; [`GpuAssigner`] plugs it
//! into vq-cluster's Lloyd loop (`KMeans::fit_with_assigner`) and vq-ivf's training
//! (`IvfIndex::train_with_assigner`).

use std::sync::Arc;

use vq_distance::Metric;

use crate::device::Gpu;
use crate::error::Result;
use crate::flat::{GpuFlat, GpuFlatOptions};

/// Writes each point's nearest centroid into `labels` and its score (squared L2 distance, or
/// inner product for [`Metric::InnerProduct`]) into `scores`, computed on `gpu`. Ties go to
/// the smaller centroid index, as on the CPU.
///
/// The centroids are uploaded for this call; the points stream through in query batches.
///
/// # Errors
/// `vq_distance` input errors (ragged or non-finite input, `OutputLength` when `labels` or `scores` do not have one entry
/// per point), device errors.
pub fn nearest_centroids(
    gpu: &Arc<Gpu>,
    points: &[f32],
    centroids: &[f32],
    dim: usize,
    metric: Metric,
    labels: &mut [u32],
    scores: &mut [f32],
) -> Result<()> {
    let n = vq_distance::validate_rows("points", points, dim, metric)?;
    for (what, got) in [("labels", labels.len()), ("scores", scores.len())] {
        if got != n {
            return Err(vq_distance::Error::OutputLength { what, got, expected: n }.into());
        }
    }
    let mut index = GpuFlat::new(gpu, dim, metric, GpuFlatOptions::default())?;
    index.add(centroids)?;
    let hits = index.search(points, 1)?;
    for ((l, s), (id, score)) in labels.iter_mut().zip(scores.iter_mut()).zip(hits.ids().iter().zip(hits.scores())) {
        // u32::MAX for a point with no centroid (none given), as the CPU version leaves it.
        *l = u32::try_from(*id).unwrap_or(u32::MAX);
        *s = *score;
    }
    Ok(())
}

/// vq-cluster's assignment hook on a GPU: `KMeans::fit_with_assigner(data, dim, &GpuAssigner::new(&gpu))`
/// runs every Lloyd iteration's assignment as [`nearest_centroids`] (GEMM + arg-min), the
/// update and empty-cluster splits on the CPU as usual. Results equal the CPU's except where
/// a point is within f32 rounding of two centroids.
#[derive(Debug, Clone)]
pub struct GpuAssigner {
    gpu: Arc<Gpu>,
}

impl GpuAssigner {
    /// The assigner of `gpu`.
    pub fn new(gpu: &Arc<Gpu>) -> Self {
        Self { gpu: gpu.clone() }
    }
}

impl vq_cluster::Assigner for GpuAssigner {
    fn nearest(
        &self,
        points: &[f32],
        centroids: &[f32],
        dim: usize,
        metric: Metric,
        labels: &mut [u32],
        scores: &mut [f32],
    ) -> vq_cluster::Result<()> {
        nearest_centroids(&self.gpu, points, centroids, dim, metric, labels, scores).map_err(|e| match e {
            crate::Error::Distance(e) => vq_cluster::Error::Input(e),
            e => vq_cluster::Error::Assign { what: e.to_string() },
        })
    }
}
