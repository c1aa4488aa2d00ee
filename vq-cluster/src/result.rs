//! What training returns, and assignment of new data to its centroids.

use vq_distance::{Element, Metric, nearest_centroids};

use crate::error::Result;

/// Something worth knowing about a training run that did not stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// Fewer than `k × min_points_per_centroid` points were used for training (Faiss prints the
    /// same warning): the centroids are likely to be poor.
    TooFewPoints {
        /// Points used for training.
        n: usize,
        /// Number of centroids.
        k: usize,
        /// The `min_points_per_centroid` parameter.
        min_points_per_centroid: usize,
    },
}

/// Progress of one Lloyd iteration, passed to the callback of
/// [`KMeans::fit_with_callback`](crate::KMeans::fit_with_callback).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IterationStats {
    /// Which run (0 ..`nredo`).
    pub redo: usize,
    /// Which iteration of that run (0 ..`iterations`).
    pub iteration: usize,
    /// The objective of this iteration's assignment: the sum over the training points of the
    /// squared distance to their centroid (spherical: of the inner product with it).
    pub objective: f64,
    /// Seconds since training started (sampling and init included).
    pub seconds: f64,
    /// Empty clusters split after this iteration's update.
    pub empty_splits: usize,
}

/// The result of training: centroids and how the training went.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    pub(crate) centroids: Vec<f32>,
    pub(crate) dim: usize,
    pub(crate) metric: Metric,
    pub(crate) objective: Vec<f64>,
    pub(crate) sizes: Vec<usize>,
    pub(crate) empty_splits: usize,
    pub(crate) converged: bool,
    pub(crate) n_points: usize,
    pub(crate) n_used: usize,
    pub(crate) redo_objectives: Vec<f64>,
    pub(crate) warnings: Vec<Warning>,
}

impl Clustering {
    /// The centroids, `k × dim` values, row-major.
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    /// The centroids, taken out of the result.
    pub fn into_centroids(self) -> Vec<f32> {
        self.centroids
    }

    /// Number of centroids.
    pub fn k(&self) -> usize {
        self.centroids.len() / self.dim
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How points are assigned: [`Metric::L2`], or [`Metric::InnerProduct`] for spherical
    /// k-means.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The objective of every iteration of the kept run (see [`IterationStats::objective`]).
    /// Like Faiss' `obj`, entry `i` is measured at the assignment step of iteration `i`, before
    /// its update. Shorter than `iterations` when the run [`converged`](Self::converged).
    pub fn objective(&self) -> &[f64] {
        &self.objective
    }

    /// The objective of the last iteration of the kept run.
    pub fn final_objective(&self) -> f64 {
        *self.objective.last().expect("at least one iteration")
    }

    /// The final objective of each run, in run order (one entry unless `nredo > 1`).
    pub fn redo_objectives(&self) -> &[f64] {
        &self.redo_objectives
    }

    /// Training points per cluster at the last assignment, where each split of an empty cluster
    /// after it is counted as an even split of the cluster it came from (as Faiss does).
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Whether the kept run stopped early at a fixed point: an assignment equal to the previous
    /// one (with no split in between), after which every further iteration would repeat it
    /// exactly. (Faiss stops in the same situation, one iteration later: when the objective is
    /// unchanged.)
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// Empty clusters split during the kept run, all iterations together.
    pub fn empty_splits(&self) -> usize {
        self.empty_splits
    }

    /// Number of points given to training.
    pub fn n_points(&self) -> usize {
        self.n_points
    }

    /// Number of points training used: fewer than [`n_points`](Self::n_points) when the set
    /// was sampled down to `k × max_points_per_centroid`.
    pub fn n_used(&self) -> usize {
        self.n_used
    }

    /// Whether the training set was sampled down.
    pub fn sampled(&self) -> bool {
        self.n_used < self.n_points
    }

    /// Warnings about the run (too few points).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The nearest centroid of every row of `data` (`dim` wide), in parallel on the current
    /// rayon pool. Ties go to the smaller centroid id.
    pub fn assign<T: Element>(&self, data: &[T]) -> Result<Vec<u32>> {
        Ok(self.assign_with_distances(data)?.0)
    }

    /// [`assign`](Self::assign), with each row's score: the squared L2 distance to its centroid
    /// (spherical: the inner product with it), in the blocked `‖x‖² − 2x·c + ‖c‖²` form.
    pub fn assign_with_distances<T: Element>(&self, data: &[T]) -> Result<(Vec<u32>, Vec<f32>)> {
        // Checked here too so that errors name this function's argument; the scan is small
        // next to the k-fold distance work that follows.
        let n = vq_distance::validate_rows("data", data, self.dim, self.metric)?;
        let (mut labels, mut scores) = (vec![0u32; n], vec![0f32; n]);
        nearest_centroids(data, &self.centroids, self.dim, self.metric, &mut labels, &mut scores)?;
        Ok((labels, scores))
    }
}
