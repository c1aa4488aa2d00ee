//! The k-means parameters and their builder.

use serde::{Deserialize, Serialize};

/// How the first centroids are chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// `k` distinct training points drawn uniformly (Faiss' default).
    Random,
    /// k-means++ (Arthur & Vassilvitskii): each next centroid is a point drawn with probability
    /// proportional to its squared distance to the nearest centroid so far. Sequential over the
    /// `k` centroids, each step one pass over the points (parallel): `O(n·k·d)` with per-pair
    /// kernels, practical for small `k` (PQ codebooks), slow for `k` in the tens of thousands.
    KMeansPlusPlus,
    /// k-means++ in `rounds` batches: after one uniform first centroid, each round draws a batch
    /// of about `(k − 1) / rounds` distinct points without replacement with probability
    /// proportional to the squared distance to the nearest centroid so far (exponential keys,
    /// Efraimidis–Spirakis), then updates those distances against the whole batch with the
    /// blocked kernel. The cost is about one Lloyd iteration for any `k`; with `rounds ≥ k − 1`
    /// it is exactly k-means++.
    KMeansParallel {
        /// Number of batches (at least 1).
        rounds: usize,
    },
    /// These centroids (`k × dim` values, row-major, finite) are the starting point.
    Centroids(Vec<f32>),
}

impl Default for Init {
    /// [`Init::Random`], as in Faiss: on real descriptors (SIFT, k = 1,024, 20 iterations) it
    /// reached a lower final objective than both k-means++ variants, at no cost (BENCHMARKS.md).
    fn default() -> Self {
        Init::Random
    }
}

fn default_iterations() -> usize {
    25
}
fn default_seed() -> u64 {
    1234
}
fn default_max_points_per_centroid() -> usize {
    256
}
fn default_min_points_per_centroid() -> usize {
    39
}
fn default_nredo() -> usize {
    1
}

/// k-means parameters, with a builder: `KMeans::new(k).iterations(20).seed(7)`.
///
/// The names and defaults are Faiss' (`ClusteringParameters`), so a configuration carries over:
///
/// | field | default | meaning |
/// |---|---|---|
/// | `k` | — | number of centroids |
/// | `iterations` (alias `niter`) | 25 | Lloyd iterations per run (fewer if it reaches a fixed point) |
/// | `seed` | 1234 | seed of the sampling, the init and the empty-cluster splits |
/// | `init` | [`Init::Random`] | first centroids |
/// | `max_points_per_centroid` | 256 | more than `k ×` this training points are sampled down to it |
/// | `min_points_per_centroid` | 39 | fewer than `k ×` this gives [`Warning::TooFewPoints`](crate::Warning) |
/// | `nredo` | 1 | runs with different seeds; the one with the best final objective is kept |
/// | `spherical` | false | assign by inner product and re-normalize centroids after each update |
///
/// Training is deterministic for a given seed: the same input gives the same centroids, bit for
/// bit, whatever the number of threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeans {
    /// Number of centroids.
    pub k: usize,
    /// Lloyd iterations per run.
    #[serde(default = "default_iterations", alias = "niter")]
    pub iterations: usize,
    /// Seed of every random choice.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How the first centroids are chosen.
    #[serde(default)]
    pub init: Init,
    /// Training sets larger than `k × max_points_per_centroid` are sampled down to that size.
    #[serde(default = "default_max_points_per_centroid")]
    pub max_points_per_centroid: usize,
    /// Fewer than `k × min_points_per_centroid` training points gives a warning in the result.
    #[serde(default = "default_min_points_per_centroid")]
    pub min_points_per_centroid: usize,
    /// Number of runs (different seeds); the best one is kept.
    #[serde(default = "default_nredo")]
    pub nredo: usize,
    /// Spherical k-means: assignment by inner product, centroids of unit norm.
    #[serde(default)]
    pub spherical: bool,
}

impl KMeans {
    /// Parameters for `k` centroids, every other field at its default.
    pub fn new(k: usize) -> Self {
        KMeans {
            k,
            iterations: default_iterations(),
            seed: default_seed(),
            init: Init::default(),
            max_points_per_centroid: default_max_points_per_centroid(),
            min_points_per_centroid: default_min_points_per_centroid(),
            nredo: default_nredo(),
            spherical: false,
        }
    }

    /// Sets the number of Lloyd iterations per run (at least 1).
    pub fn iterations(mut self, iterations: usize) -> Self {
        self.iterations = iterations;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets how the first centroids are chosen.
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Sets the sampling cap: at most `k × max` training points are used (at least 1).
    pub fn max_points_per_centroid(mut self, max: usize) -> Self {
        self.max_points_per_centroid = max;
        self
    }

    /// Sets the warning threshold: fewer than `k × min` training points is reported.
    pub fn min_points_per_centroid(mut self, min: usize) -> Self {
        self.min_points_per_centroid = min;
        self
    }

    /// Sets the number of runs (at least 1); the one with the best final objective is kept.
    pub fn nredo(mut self, nredo: usize) -> Self {
        self.nredo = nredo;
        self
    }

    /// Turns spherical k-means on or off.
    pub fn spherical(mut self, spherical: bool) -> Self {
        self.spherical = spherical;
        self
    }
}
