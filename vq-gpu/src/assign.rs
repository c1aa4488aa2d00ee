//! k-means on the GPU. The assignment step: each point's nearest centroid, by one GEMM per
//! tile and the selection kernel at k = 1 (the arg-min), with the same signature as
//! `vq_distance::nearest_centroids` so a Lloyd loop can call either. [`GpuAssigner`] plugs it
//! into vq-cluster's Lloyd loop (`KMeans::fit_with_assigner`) and vq-ivf's training
//! (`IvfIndex::train_with_assigner`), and opens a Lloyd session there: the points are uploaded
//! once per fit, and the update step runs on the device too (`vq_kmeans_update`, with
//! `vq_cluster::update_means`' arithmetic, so the same bits).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use vq_cluster::{ClusterMembers, LloydSession};
use vq_distance::{Metric, Neighbors};

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::flat::{GpuFlat, GpuFlatOptions};
use crate::kernels::{KMEANS_UPDATE_ARGS, UPDATE_THREADS, push_args};

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
    write_nearest(&index.search(points, 1)?, labels, scores);
    Ok(())
}

/// A k = 1 search's answers as labels and scores.
fn write_nearest(hits: &Neighbors, labels: &mut [u32], scores: &mut [f32]) {
    for ((l, s), (id, score)) in labels.iter_mut().zip(scores.iter_mut()).zip(hits.ids().iter().zip(hits.scores())) {
        // u32::MAX for a point with no centroid (none given), as the CPU version leaves it.
        *l = u32::try_from(*id).unwrap_or(u32::MAX);
        *s = *score;
    }
}

/// vq-gpu's errors as vq-cluster's: input errors stay input errors, the rest are the
/// assigner's.
fn to_cluster(e: Error) -> vq_cluster::Error {
    match e {
        Error::Distance(e) => vq_cluster::Error::Input(e),
        e => vq_cluster::Error::Assign { what: e.to_string() },
    }
}

/// vq-cluster's Lloyd hook on a GPU: `KMeans::fit_with_assigner(data, dim, &GpuAssigner::new(&gpu))`
/// uploads the (sampled) points once, then runs every iteration's assignment (GEMM + arg-min,
/// as [`nearest_centroids`]) and update (`vq_kmeans_update`) on the device; per iteration only
/// the centroids, the labels and their counting sort cross the bus. Seeding, empty-cluster
/// splits and runs stay vq-cluster's. Results equal the CPU fit's except where a point is
/// within f32 rounding of two centroids (the update itself gives the same bits).
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
        nearest_centroids(&self.gpu, points, centroids, dim, metric, labels, scores).map_err(to_cluster)
    }

    fn session<'a>(
        &'a self,
        points: &'a [f32],
        dim: usize,
        metric: Metric,
    ) -> vq_cluster::Result<Option<Box<dyn LloydSession + 'a>>> {
        let session = DeviceLloyd::new(&self.gpu, points, dim, metric).map_err(to_cluster)?;
        Ok(Some(Box::new(session)))
    }
}

/// One k-means fit's points on the device, and scratch for its update step.
struct DeviceLloyd {
    gpu: Arc<Gpu>,
    dim: usize,
    metric: Metric,
    n: usize,
    points: CudaSlice<f32>,
    /// `ClusterMembers::order`, uploaded each update.
    order: CudaSlice<u32>,
    /// `ClusterMembers::offsets` and the centroids, sized at the first update (k).
    scratch: Option<(CudaSlice<u64>, CudaSlice<f32>)>,
}

impl DeviceLloyd {
    /// Uploads `points` (validated by vq-cluster: finite, within the norm bound).
    fn new(gpu: &Arc<Gpu>, points: &[f32], dim: usize, metric: Metric) -> Result<Self> {
        let n = vq_distance::validate_rows("points", points, dim, metric)?;
        if u32::try_from(n).is_err() {
            return Err(Error::TooLarge { what: "k-means points", got: n, max: u32::MAX as usize });
        }
        gpu.bind()?;
        gpu.check_fits("k-means points and their order", points.len() * 4 + n * 4)?;
        let stream = gpu.stream();
        let cuda = Error::cuda;
        let resident = stream.clone_htod(points).map_err(cuda("cuMemcpyHtoD"))?;
        let order = stream.alloc_zeros::<u32>(n.max(1)).map_err(cuda("cuMemAlloc"))?;
        Ok(Self { gpu: gpu.clone(), dim, metric, n, points: resident, order, scratch: None })
    }

    fn nearest(&mut self, centroids: &[f32], labels: &mut [u32], scores: &mut [f32]) -> Result<()> {
        for (what, got) in [("labels", labels.len()), ("scores", scores.len())] {
            if got != self.n {
                return Err(vq_distance::Error::OutputLength { what, got, expected: self.n }.into());
            }
        }
        let mut index = GpuFlat::new(&self.gpu, self.dim, self.metric, GpuFlatOptions::default())?;
        index.add(centroids)?;
        write_nearest(&index.search_resident(&self.points, self.n, 1)?, labels, scores);
        Ok(())
    }

    fn update(&mut self, members: &ClusterMembers, centroids: &mut [f32]) -> Result<()> {
        let (k, dim) = (members.k(), self.dim);
        for (what, got, expected) in
            [("cluster members", members.order().len(), self.n), ("centroids", centroids.len(), k * dim)]
        {
            if got != expected {
                return Err(vq_distance::Error::OutputLength { what, got, expected }.into());
            }
        }
        let k32 = u32::try_from(k).map_err(|_| Error::TooLarge { what: "k", got: k, max: u32::MAX as usize })?;
        self.gpu.bind()?;
        let stream = self.gpu.stream().clone();
        let cuda = Error::cuda;
        let (d_offsets, d_centroids) = match self.scratch.take() {
            Some((o, c)) if o.len() == k + 1 => self.scratch.insert((o, c)),
            _ => self.scratch.insert((
                stream.alloc_zeros::<u64>(k + 1).map_err(cuda("cuMemAlloc"))?,
                stream.alloc_zeros::<f32>(k * dim).map_err(cuda("cuMemAlloc"))?,
            )),
        };
        let offsets: Vec<u64> = members.offsets().iter().map(|&o| o as u64).collect();
        stream.memcpy_htod(members.order(), &mut self.order.slice_mut(..self.n)).map_err(cuda("cuMemcpyHtoD"))?;
        stream.memcpy_htod(&offsets, d_offsets).map_err(cuda("cuMemcpyHtoD"))?;
        // Empty clusters keep their centroid: the kernel leaves those rows as uploaded.
        stream.memcpy_htod(centroids, d_centroids).map_err(cuda("cuMemcpyHtoD"))?;
        let cfg = LaunchConfig {
            grid_dim: (k32, (dim as u32).div_ceil(UPDATE_THREADS), 1),
            block_dim: (UPDATE_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let dim32 = dim as u32;
        let mut args = stream.launch_builder(&self.gpu.kmeans_update);
        push_args!(args, KMEANS_UPDATE_ARGS; &self.points, &dim32, &self.order, &*d_offsets, &k32, &mut *d_centroids);
        // SAFETY: grid (k, ceil(dim / UPDATE_THREADS)), one thread per (cluster, component)
        // below (k, dim). It reads offsets[0..=k] (k + 1 uploaded), order[offsets[c]..
        // offsets[c + 1]] (a counting sort of n labels: offsets end at n = order's uploaded
        // length), and points' rows order[i] < n (ClusterMembers holds indices 0..n of the
        // session's n points, checked above), components d < dim; it writes centroids
        // [k][dim] (allocated k * dim). Types match vq_kmeans_update.
        unsafe { args.launch(cfg) }.map_err(cuda("launch vq_kmeans_update"))?;
        stream.memcpy_dtoh(&*d_centroids, centroids).map_err(cuda("cuMemcpyDtoH"))?;
        stream.synchronize().map_err(cuda("cuStreamSynchronize"))
    }
}

impl LloydSession for DeviceLloyd {
    fn nearest(&mut self, centroids: &[f32], labels: &mut [u32], scores: &mut [f32]) -> vq_cluster::Result<()> {
        DeviceLloyd::nearest(self, centroids, labels, scores).map_err(to_cluster)
    }

    fn update(&mut self, members: &ClusterMembers, centroids: &mut [f32]) -> vq_cluster::Result<()> {
        DeviceLloyd::update(self, members, centroids).map_err(to_cluster)
    }
}
