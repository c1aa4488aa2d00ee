//! k-means for [vq](https://github.com/vq-rs/vq): the coarse centroids of IVF and the codebooks
//! of PQ come from here.
//!
//! **Owns:** the k-means parameters ([`KMeans`], [`Init`]), training (sampling, k-means++ /
//! batched k-means++ / random init, Lloyd iterations, empty-cluster splits, several runs,
//! spherical mode), and the trained result ([`Clustering`]) with assignment of new data.
//!
//! **Does not own:** distance kernels and the nearest-centroid search (`vq-distance`'s
//! [`nearest_centroids`](vq_distance::nearest_centroids)), file formats (`vq-io`), indexes.
//!
//! # How it works
//! - Training sets larger than `k × max_points_per_centroid` (default 256) are sampled down,
//!   as Faiss does ([`Clustering::n_used`] reports it); fewer than `k × min_points_per_centroid`
//!   points (default 39) gives [`Warning::TooFewPoints`]. The training set is converted to f32
//!   once, so `u8` (SIFT-style) input works directly.
//! - Each Lloyd iteration assigns every point to its nearest centroid with the blocked
//!   `‖x‖² − 2x·c + ‖c‖²` SIMD micro-kernel and fused top-1 selection of `vq-distance`, in
//!   parallel over points, then moves each centroid to the mean of its points (summed in f64,
//!   in parallel over centroids).
//! - An empty cluster takes half of the largest one: a copy of its centroid, the two pushed
//!   apart by a small symmetric perturbation ([`Clustering::empty_splits`] counts them), in
//!   proportion to each component's distance from the centroids' mean (Faiss' to the value
//!   itself, which sends the copies beyond every point of data far from the origin).
//! - The assignment step can run elsewhere: [`KMeans::fit_with_assigner`] calls an
//!   [`Assigner`] (vq-gpu's runs on a GPU) instead of the CPU kernel; an assigner that keeps
//!   the points where it computes opens a [`LloydSession`] that runs the update step
//!   ([`update_means`]' arithmetic, so the same bits) there too. Seeding, sampling, splits and
//!   runs stay here.
//! - Spherical mode assigns by inner product and re-normalizes the centroids each step (for
//!   inner-product and cosine indexes; normalize the data first for cosine).
//! - Deterministic: a seed gives the same centroids bit for bit whatever the thread count (all
//!   random draws are counter-based or sequential, all parallel sums have a fixed order). The
//!   thread count is the current rayon pool's (`pool.install(..)`).
//!
//! # Example
//! ```
//! use vq_cluster::{Init, KMeans};
//!
//! // 3 groups of 50 points in 2-D
//! let data: Vec<f32> = (0..150)
//!     .flat_map(|i| {
//!         let (g, j) = ((i / 50) as f32, (i % 50) as f32);
//!         [g * 100.0 + j * 0.01, -g * 100.0]
//!     })
//!     .collect();
//! let clustering = KMeans::new(3).iterations(10).init(Init::KMeansPlusPlus).fit(&data, 2)?;
//! assert_eq!(clustering.k(), 3);
//! let labels = clustering.assign(&data)?;
//! assert!(labels[..50].iter().all(|&l| l == labels[0]));
//! assert!(labels[50..100].iter().all(|&l| l == labels[50]) && labels[50] != labels[0]);
//! assert!(clustering.objective().windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-6)));
//! # Ok::<(), vq_cluster::Error>(())
//! ```

mod error;
mod kmeans;
mod params;
mod result;

pub use error::{Error, Result};
pub use kmeans::{Assigner, ClusterMembers, LloydSession, UPDATE_PARTIAL, update_means};
pub use params::{Init, KMeans};
pub use result::{Clustering, IterationStats, Warning};

/// This crate's version, as benchmark records carry it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
