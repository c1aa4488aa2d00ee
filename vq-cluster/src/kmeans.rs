//! Training: sampling, init, Lloyd iterations, empty-cluster splits, runs.

use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use std::borrow::Cow;

use vq_distance::{Element, Metric, PackedPoints, l2_sq, nearest_centroids, normalize_l2, validate_rows};

use crate::error::{Error, Result};
use crate::params::{Init, KMeans};
use crate::result::{Clustering, IterationStats, Warning};

/// Points per chunk of the deterministic parallel sums (fixed, so sums do not depend on the
/// thread count).
const SUM_CHUNK: usize = 4096;

/// Rows summed in f32 before their sum is added into the f64 total of a centroid update
/// ([`update_means`]' arithmetic).
pub const UPDATE_PARTIAL: usize = 64;

/// Relative size of the symmetric perturbation that splits a cluster (Faiss' `EPS`).
const SPLIT_EPS: f32 = 1.0 / 1024.0;

/// Faiss' seed step between runs.
const REDO_SEED_STEP: u64 = 15_486_557;

/// Lloyd's assignment step run elsewhere than vq-distance's CPU kernel (vq-gpu runs it on a
/// GPU), for [`KMeans::fit_with_assigner`].
pub trait Assigner: Send + Sync {
    /// For every row of `points` (`dim` wide, checked), the nearest row of `centroids` by
    /// `metric` (`L2`, or `InnerProduct` in spherical mode): its index into `labels` and its
    /// score (squared distance, or inner product) into `scores`; ties to the smaller index.
    /// [`vq_distance::nearest_centroids`]' contract.
    ///
    /// # Errors
    /// Whatever stops the implementor, as [`Error::Assign`].
    fn nearest(
        &self,
        points: &[f32],
        centroids: &[f32],
        dim: usize,
        metric: Metric,
        labels: &mut [u32],
        scores: &mut [f32],
    ) -> Result<()>;

    /// Lloyd's loop over `points` (the same for every iteration and run of one fit): an
    /// assigner that keeps them where it computes (a device) returns a [`LloydSession`] that
    /// assigns and updates there, so the points move once per fit rather than once per
    /// iteration. `None` (the default): each iteration calls [`nearest`](Self::nearest) and the
    /// update runs on the CPU.
    ///
    /// # Errors
    /// Whatever stops the implementor (as [`Error::Assign`]).
    fn session<'a>(
        &'a self,
        points: &'a [f32],
        dim: usize,
        metric: Metric,
    ) -> Result<Option<Box<dyn LloydSession + 'a>>> {
        let _ = (points, dim, metric);
        Ok(None)
    }
}

/// Both steps of Lloyd's iteration over one set of points, run where an [`Assigner`] keeps them
/// (see [`Assigner::session`]). vq-cluster still decides everything else: seeding, sampling,
/// the counting sort of the labels, empty-cluster splits, spherical re-normalization,
/// convergence and runs.
pub trait LloydSession {
    /// [`Assigner::nearest`] for the session's points and `centroids`.
    ///
    /// # Errors
    /// Whatever stops the implementor (as [`Error::Assign`]).
    fn nearest(&mut self, centroids: &[f32], labels: &mut [u32], scores: &mut [f32]) -> Result<()>;

    /// [`update_means`] over the session's points: every cluster of `members` with points gets
    /// their mean in `centroids`, computed with that function's arithmetic so the result is
    /// the same bit for bit; empty clusters keep their centroid.
    ///
    /// # Errors
    /// Whatever stops the implementor (as [`Error::Assign`]).
    fn update(&mut self, members: &ClusterMembers, centroids: &mut [f32]) -> Result<()>;
}

/// The assignment step of a fit: an [`Assigner`] and the f32 view of the points it takes.
type External<'a, T> = Option<(&'a dyn Assigner, fn(&[T]) -> &[f32])>;

/// Where one run's Lloyd steps go: the CPU kernel and update (both `None`), an external
/// assigner with the CPU update, or a session holding the points for both.
struct Steps<'s, 'a, T> {
    assigner: External<'a, T>,
    session: Option<&'s mut (dyn LloydSession + 'a)>,
}

/// splitmix64: a well-mixed 64-bit hash, for seeds and counter-based random numbers.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in (0, 1] from a counter: the same for a given `(key, i)` on any thread.
fn unit(key: u64, i: usize) -> f64 {
    ((mix(key ^ mix(i as u64)) >> 11) + 1) as f64 / (1u64 << 53) as f64
}

fn rng_for(seed: u64, stream: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(mix(seed ^ mix(stream)))
}

/// `m` distinct indices of `0..n`, uniformly (partial Fisher–Yates), in draw order. The
/// permutation is kept sparse (only the swapped slots), so memory is O(m), not O(n).
fn sample_indices(rng: &mut Xoshiro256PlusPlus, n: usize, m: usize) -> Vec<usize> {
    let mut swapped: HashMap<usize, usize> = HashMap::with_capacity(2 * m);
    let mut out = Vec::with_capacity(m);
    for i in 0..m {
        let j = rng.random_range(i..n);
        let at_j = swapped.get(&j).copied().unwrap_or(j);
        let at_i = swapped.get(&i).copied().unwrap_or(i);
        swapped.insert(j, at_i);
        out.push(at_j);
    }
    out
}

/// Sum of `values` in f64, in fixed chunks combined in order: deterministic for any thread count.
fn det_sum(values: &[f32]) -> f64 {
    let parts: Vec<f64> = values.par_chunks(SUM_CHUNK).map(|c| c.iter().map(|&v| f64::from(v)).sum::<f64>()).collect();
    parts.iter().sum()
}

impl KMeans {
    /// Trains on `data` (row-major, `dim` wide, f32 or any [`Element`] type such as `u8`).
    ///
    /// Runs on the current rayon pool (`pool.install(..)` chooses the thread count); the result
    /// does not depend on the number of threads. The (possibly sampled) training set is
    /// converted to f32 once.
    ///
    /// Errors: [`Error::Input`] for `dim = 0`, data not a whole number of rows, `k = 0`, and data
    /// or initial centroids that `vq-distance`'s
    /// [`validate_rows`](vq_distance::validate_rows) refuses (NaN, infinity, a squared norm
    /// above [`MAX_SQUARED_NORM`](vq_distance::MAX_SQUARED_NORM), so no distance overflows);
    /// [`Error::KExceedsPoints`]; [`Error::Parameter`] for zero `iterations`, `nredo`,
    /// `max_points_per_centroid` or `rounds` and initial centroids of the wrong shape.
    ///
    /// A run ends before `iterations` when an assignment repeats the previous one (a fixed
    /// point: further iterations would change nothing); see [`Clustering::converged`].
    ///
    /// ```
    /// use vq_cluster::KMeans;
    /// // two groups on a line
    /// let data = [0.0f32, 0.1, 0.2, 10.0, 10.1, 10.2];
    /// let km = KMeans::new(2).iterations(10).fit(&data, 1)?;
    /// let mut c = km.centroids().to_vec();
    /// c.sort_by(f32::total_cmp);
    /// assert!((c[0] - 0.1).abs() < 1e-6 && (c[1] - 10.1).abs() < 1e-5);
    /// assert_eq!(km.assign(&[9.0f32, 1.0])?, [km.assign(&[10.0f32])?[0], km.assign(&[0.0f32])?[0]]);
    /// # Ok::<(), vq_cluster::Error>(())
    /// ```
    pub fn fit<T: Element>(&self, data: &[T], dim: usize) -> Result<Clustering> {
        self.fit_with_callback(data, dim, |_| {})
    }

    /// [`fit`](Self::fit), calling `on_iteration` after every Lloyd iteration of every run (on
    /// the calling thread) — for progress bars and benchmarks.
    pub fn fit_with_callback<T: Element>(
        &self,
        data: &[T],
        dim: usize,
        on_iteration: impl FnMut(&IterationStats),
    ) -> Result<Clustering> {
        self.fit_impl(data, dim, on_iteration, None)
    }

    /// [`fit`](Self::fit) with every Lloyd iteration's assignment done by `assigner` (a GPU:
    /// vq-gpu's `GpuAssigner`) in place of vq-distance's kernel; sampling, seeding, update,
    /// splits and runs are the same. With an assigner that answers as the CPU kernel does, the
    /// centroids are the same bit for bit.
    ///
    /// # Errors
    /// [`fit`](Self::fit)'s, and [`Error::Assign`] from the assigner.
    pub fn fit_with_assigner(&self, data: &[f32], dim: usize, assigner: &dyn Assigner) -> Result<Clustering> {
        self.fit_impl(data, dim, |_| {}, Some((assigner, |x| x)))
    }

    fn fit_impl<T: Element>(
        &self,
        data: &[T],
        dim: usize,
        mut on_iteration: impl FnMut(&IterationStats),
        assigner: External<'_, T>,
    ) -> Result<Clustering> {
        let start = Instant::now();
        let n = self.validate(data, dim)?;
        let k = self.k;
        let metric = if self.spherical { Metric::InnerProduct } else { Metric::L2 };

        // Sample down, as Faiss does; keep the sampled rows in data order.
        let n_used = n.min(k.saturating_mul(self.max_points_per_centroid));
        let x: Cow<'_, [T]> = if n_used < n {
            let mut rows = sample_indices(&mut rng_for(self.seed, 1), n, n_used);
            rows.sort_unstable();
            let mut x = vec![data[0]; n_used * dim];
            x.par_chunks_mut(dim).zip(rows.par_iter()).for_each(|(dst, &r)| {
                dst.copy_from_slice(&data[r * dim..(r + 1) * dim]);
            });
            Cow::Owned(x)
        } else {
            Cow::Borrowed(data)
        };
        // The kernel's f32 copy of the points, packed once for every iteration and run.
        let packed = PackedPoints::new(&x, dim, metric)?;
        let mut warnings = Vec::new();
        if n_used < k.saturating_mul(self.min_points_per_centroid) {
            warnings.push(Warning::TooFewPoints {
                n: n_used,
                k,
                min_points_per_centroid: self.min_points_per_centroid,
            });
        }

        // An assigner that keeps the points where it computes takes them once, for every run.
        let mut session = match assigner {
            Some((a, view)) => a.session(view(&x), dim, metric)?,
            None => None,
        };
        let better = |a: f64, b: f64| if self.spherical { a > b } else { a < b };
        let mut best: Option<Run> = None;
        let mut redo_objectives = Vec::with_capacity(self.nredo);
        for redo in 0..self.nredo {
            let seed = self.seed.wrapping_add(REDO_SEED_STEP.wrapping_mul(redo as u64));
            let steps = Steps { assigner, session: session.as_deref_mut() };
            let run = self.run(&x, &packed, dim, seed, redo, start, &mut on_iteration, steps)?;
            let obj = *run.objective.last().expect("iterations >= 1");
            redo_objectives.push(obj);
            if best.as_ref().is_none_or(|b| better(obj, *b.objective.last().expect("iterations >= 1"))) {
                best = Some(run);
            }
        }
        let best = best.expect("nredo >= 1");
        Ok(Clustering {
            centroids: best.centroids,
            dim,
            metric,
            objective: best.objective,
            sizes: best.sizes,
            empty_splits: best.empty_splits,
            converged: best.converged,
            n_points: n,
            n_used,
            redo_objectives,
            warnings,
        })
    }

    fn validate<T: Element>(&self, data: &[T], dim: usize) -> Result<usize> {
        let metric = if self.spherical { Metric::InnerProduct } else { Metric::L2 };
        if dim == 0 {
            return Err(vq_distance::Error::ZeroDimension.into());
        }
        if !data.len().is_multiple_of(dim) {
            return Err(vq_distance::Error::RaggedBuffer { what: "data", len: data.len(), dim }.into());
        }
        let n = data.len() / dim;
        if self.k == 0 {
            return Err(vq_distance::Error::ZeroK.into());
        }
        let at_least_one = |name| Err(Error::Parameter { name, what: "must be at least 1".into() });
        if self.iterations == 0 {
            return at_least_one("iterations");
        }
        if self.nredo == 0 {
            return at_least_one("nredo");
        }
        if self.max_points_per_centroid == 0 {
            return at_least_one("max_points_per_centroid");
        }
        if self.k > u32::MAX as usize {
            return Err(Error::Parameter { name: "k", what: format!("{} does not fit in u32", self.k) });
        }
        if self.k > n {
            return Err(Error::KExceedsPoints { k: self.k, n });
        }
        match &self.init {
            Init::KMeansParallel { rounds: 0 } => return at_least_one("rounds"),
            Init::Centroids(c) => {
                if c.len() != self.k * dim {
                    return Err(Error::Parameter {
                        name: "init",
                        what: format!("expected {} values (k × dim), got {}", self.k * dim, c.len()),
                    });
                }
                validate_rows("init centroids", c, dim, metric)?;
            }
            _ => {}
        }
        validate_rows("data", data, dim, metric)?;
        Ok(n)
    }

    /// One run: init, then `iterations` × (assign, update, split).
    #[allow(clippy::too_many_arguments)]
    fn run<T: Element>(
        &self,
        x: &[T],
        packed: &PackedPoints<'_>,
        dim: usize,
        seed: u64,
        redo: usize,
        start: Instant,
        on_iteration: &mut impl FnMut(&IterationStats),
        mut steps: Steps<'_, '_, T>,
    ) -> Result<Run> {
        let n = x.len() / dim;
        let k = self.k;
        let mut centroids = match &self.init {
            Init::Random => {
                let rows = sample_indices(&mut rng_for(seed, 2), n, k);
                rows.iter().flat_map(|&r| x[r * dim..(r + 1) * dim].iter().map(|v| v.to_f32())).collect()
            }
            Init::KMeansPlusPlus => kmeans_pp(x, dim, k, seed)?,
            Init::KMeansParallel { rounds } => kmeans_pp_batched(x, Some(packed), dim, k, *rounds, seed)?,
            Init::Centroids(c) => c.clone(),
        };
        if self.spherical {
            normalize_l2(&mut centroids, dim)?;
        }
        let mut labels = vec![0u32; n];
        let mut prev_labels = vec![u32::MAX; n];
        let mut scores = vec![0f32; n];
        let mut objective = Vec::with_capacity(self.iterations);
        let mut sizes = vec![0usize; k];
        let mut empty_splits = 0;
        let mut last_splits = 0;
        let mut converged = false;
        for iteration in 0..self.iterations {
            match (&mut steps.session, steps.assigner) {
                (Some(session), _) => session.nearest(&centroids, &mut labels, &mut scores)?,
                (None, Some((a, view))) => {
                    let metric = if self.spherical { Metric::InnerProduct } else { Metric::L2 };
                    a.nearest(view(x), &centroids, dim, metric, &mut labels, &mut scores)?;
                }
                (None, None) => packed.nearest(&centroids, &mut labels, &mut scores)?,
            }
            if steps.assigner.is_some()
                && let Some(&l) = labels.iter().find(|&&l| l as usize >= k && l != u32::MAX)
            {
                return Err(Error::Assign { what: format!("label {l} for {k} centroids") });
            }
            // A point loses its label only when every distance to it is NaN or infinite, which
            // validated data (norms within MAX_SQUARED_NORM, hence centroids too: means and
            // splits of such rows) cannot produce. Refuse rather than index with u32::MAX.
            if let Some(row) = labels.iter().position(|&l| l == u32::MAX) {
                let sq = x[row * dim..(row + 1) * dim].iter().map(|v| f64::from(v.to_f32()).powi(2)).sum();
                return Err(vq_distance::Error::NormOverflow { what: "data", row, squared_norm: sq }.into());
            }
            let obj = det_sum(&scores);
            objective.push(obj);
            // A fixed point: the same labels as last time, whose means are the current centroids
            // (no split moved them), so every further iteration would repeat this one exactly.
            converged = iteration > 0 && last_splits == 0 && labels == prev_labels;
            if !converged {
                let members = ClusterMembers::new(&labels, k);
                sizes.iter_mut().zip(members.sizes()).for_each(|(s, m)| *s = m);
                match &mut steps.session {
                    Some(session) => session.update(&members, &mut centroids)?,
                    None => update_means_of(x, dim, &members, &mut centroids),
                }
                last_splits = split_empty_clusters(&mut centroids, dim, &mut sizes);
                empty_splits += last_splits;
                if self.spherical {
                    normalize_l2(&mut centroids, dim)?;
                }
                prev_labels.copy_from_slice(&labels);
            }
            on_iteration(&IterationStats {
                redo,
                iteration,
                objective: obj,
                seconds: start.elapsed().as_secs_f64(),
                empty_splits: if converged { 0 } else { last_splits },
            });
            if converged {
                break;
            }
        }
        Ok(Run { centroids, objective, sizes, empty_splits, converged })
    }
}

struct Run {
    centroids: Vec<f32>,
    objective: Vec<f64>,
    sizes: Vec<usize>,
    empty_splits: usize,
    converged: bool,
}

/// The points of every cluster, from one assignment: a counting sort of the point indices by
/// label. What a [`LloydSession::update`] receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMembers {
    order: Vec<u32>,
    start: Vec<usize>,
}

impl ClusterMembers {
    /// Groups point indices `0..labels.len()` by their label, increasing within each cluster.
    ///
    /// # Errors
    /// [`Error::Parameter`] (`labels`) for a label at or above `k`, or more points than `u32`
    /// indexes.
    pub fn from_labels(labels: &[u32], k: usize) -> Result<Self> {
        if let Some(&l) = labels.iter().find(|&&l| l as usize >= k) {
            return Err(Error::Parameter { name: "labels", what: format!("label {l} for k = {k}") });
        }
        if u32::try_from(labels.len()).is_err() {
            return Err(Error::Parameter { name: "labels", what: format!("{} points do not fit u32", labels.len()) });
        }
        Ok(Self::new(labels, k))
    }

    /// [`from_labels`](Self::from_labels) with every label checked by the caller.
    fn new(labels: &[u32], k: usize) -> Self {
        let mut start = vec![0usize; k + 1];
        for &l in labels {
            start[l as usize + 1] += 1;
        }
        for c in 0..k {
            start[c + 1] += start[c];
        }
        let mut fill = start.clone();
        let mut order = vec![0u32; labels.len()];
        for (i, &l) in labels.iter().enumerate() {
            order[fill[l as usize]] = i as u32;
            fill[l as usize] += 1;
        }
        Self { order, start }
    }

    /// The number of clusters.
    pub fn k(&self) -> usize {
        self.start.len() - 1
    }

    /// Every point index, cluster after cluster (cluster `c`'s are
    /// `order()[offsets()[c]..offsets()[c + 1]]`, increasing).
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// `k + 1` offsets into [`order`](Self::order): cluster `c`'s points start at `offsets()[c]`.
    pub fn offsets(&self) -> &[usize] {
        &self.start
    }

    /// The points of cluster `c`, increasing.
    pub fn of(&self, c: usize) -> &[u32] {
        &self.order[self.start[c]..self.start[c + 1]]
    }

    /// How many points each cluster has.
    pub fn sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.start.windows(2).map(|w| w[1] - w[0])
    }
}

/// Lloyd's update step: moves every centroid with members to their mean; empty clusters keep
/// their centroid. The arithmetic is fixed, so another implementation (vq-gpu's kernel) can
/// give the same bits: per cluster and component, the members' values in increasing point
/// order, in groups of [`UPDATE_PARTIAL`] summed in f32 from zero, each group's sum added into
/// an f64 total from zero, and the centroid `(total * (1.0 / count as f64)) as f32`.
/// Parallel over centroids.
///
/// `points` holds the rows of `dim` the members index; `centroids` `members.k()` rows.
pub fn update_means(points: &[f32], dim: usize, members: &ClusterMembers, centroids: &mut [f32]) {
    update_means_of(points, dim, members, centroids);
}

fn update_means_of<T: Element>(x: &[T], dim: usize, members: &ClusterMembers, centroids: &mut [f32]) {
    centroids.par_chunks_mut(dim).enumerate().for_each_init(
        || (vec![0f64; dim], vec![0f32; dim]),
        |(sum, part), (c, centroid)| {
            let members = members.of(c);
            if members.is_empty() {
                return;
            }
            sum.fill(0.0);
            // Partial sums of up to `UPDATE_PARTIAL` rows in f32 (vectorized), added into f64.
            for group in members.chunks(UPDATE_PARTIAL) {
                part.fill(0.0);
                for &i in group {
                    let row = &x[i as usize * dim..][..dim];
                    part.iter_mut().zip(row).for_each(|(p, &v)| *p += v.to_f32());
                }
                sum.iter_mut().zip(part.iter()).for_each(|(s, &p)| *s += f64::from(p));
            }
            let inv = 1.0 / members.len() as f64;
            centroid.iter_mut().zip(sum.iter()).for_each(|(c, s)| *c = (s * inv) as f32);
        },
    );
}

/// Gives every empty cluster half of the currently largest cluster: its centroid becomes a copy
/// of the large one, and the two are pushed apart by a small symmetric perturbation (Faiss'
/// `split_clusters`, with the largest cluster instead of a random one, and ε times each
/// component's distance from the centroids' mean instead of its value). Sizes are updated as if
/// the split were even. Returns the number of splits.
fn split_empty_clusters(centroids: &mut [f32], dim: usize, sizes: &mut [usize]) -> usize {
    if !sizes.contains(&0) {
        return 0;
    }
    // Largest first, ties to the smaller id.
    let mut heap: BinaryHeap<(usize, std::cmp::Reverse<usize>)> =
        sizes.iter().enumerate().filter(|&(_, &s)| s > 1).map(|(c, &s)| (s, std::cmp::Reverse(c))).collect();
    // The perturbation scales with each component's distance from the centroids' mean, not
    // with its value: at values around 10⁴ (data far from the origin, unit spread) ε · |value|
    // moved the copies ~10 apart, beyond every point, so they emptied again (objective 2.6×
    // Faiss' there). The same as ε · |value| for centroids around the origin.
    let mut centre = vec![0f64; dim];
    let held = sizes.iter().filter(|&&s| s > 0).count().max(1) as f64;
    for (c, _) in centroids.chunks_exact(dim).zip(sizes.iter()).filter(|(_, s)| **s > 0) {
        centre.iter_mut().zip(c).for_each(|(m, &v)| *m += f64::from(v) / held);
    }
    let mut splits = 0;
    for ci in 0..sizes.len() {
        if sizes[ci] != 0 {
            continue;
        }
        // sum(sizes) = n >= k, so while a cluster is empty another one holds two points or more.
        let Some((size, std::cmp::Reverse(cj))) = heap.pop() else { break };
        let (src, dst) = if cj < ci {
            let (a, b) = centroids.split_at_mut(ci * dim);
            (&mut a[cj * dim..(cj + 1) * dim], &mut b[..dim])
        } else {
            let (a, b) = centroids.split_at_mut(cj * dim);
            (&mut b[..dim], &mut a[ci * dim..(ci + 1) * dim])
        };
        let from_centre = |j: usize, v: f32| (f64::from(v) - centre[j]).abs() as f32;
        let mean_abs = src.iter().enumerate().map(|(j, &v)| from_centre(j, v)).sum::<f32>() / dim as f32;
        let fallback = if mean_abs > 0.0 { mean_abs } else { 1.0 };
        for (j, (s, d)) in src.iter_mut().zip(dst.iter_mut()).enumerate() {
            let magnitude = match from_centre(j, *s) {
                m if m > 0.0 => m,
                _ => fallback,
            };
            let delta = if j % 2 == 0 { SPLIT_EPS } else { -SPLIT_EPS } * magnitude;
            *d = *s + delta;
            *s -= delta;
        }
        sizes[ci] = size / 2;
        sizes[cj] = size - size / 2;
        for c in [ci, cj] {
            if sizes[c] > 1 {
                heap.push((sizes[c], std::cmp::Reverse(c)));
            }
        }
        splits += 1;
    }
    splits
}

/// Squared L2 distance of every point to `c`, in parallel.
fn distances_to<T: Element>(x: &[T], dim: usize, c: &[T], out: &mut [f32]) -> Result<()> {
    out.par_iter_mut().zip(x.par_chunks(dim)).try_for_each(|(d, row)| {
        *d = l2_sq(row, c)?;
        Ok(())
    })
}

/// The start of every k-means++ variant: one point drawn uniformly as the first centroid, the
/// chosen flags, and every point's squared distance to it.
fn first_seed<T: Element>(
    x: &[T],
    dim: usize,
    k: usize,
    rng: &mut impl RngExt,
) -> Result<(Vec<bool>, Vec<f32>, Vec<f32>)> {
    let n = x.len() / dim;
    let mut chosen = vec![false; n];
    let first = rng.random_range(0..n);
    chosen[first] = true;
    let mut centroids = Vec::with_capacity(k * dim);
    centroids.extend(x[first * dim..(first + 1) * dim].iter().map(|v| v.to_f32()));
    let mut d2 = vec![0f32; n];
    distances_to(x, dim, &x[first * dim..(first + 1) * dim], &mut d2)?;
    Ok((chosen, centroids, d2))
}

/// Exact k-means++ seeding.
fn kmeans_pp<T: Element>(x: &[T], dim: usize, k: usize, seed: u64) -> Result<Vec<f32>> {
    let n = x.len() / dim;
    let mut rng = rng_for(seed, 3);
    let (mut chosen, mut centroids, mut d2) = first_seed(x, dim, k, &mut rng)?;
    let mut new = vec![0f32; n];
    for _ in 1..k {
        let chunk_sums: Vec<f64> = d2
            .par_chunks(SUM_CHUNK)
            .zip(chosen.par_chunks(SUM_CHUNK))
            .map(|(d, c)| d.iter().zip(c).filter(|(_, c)| !**c).map(|(&v, _)| f64::from(v)).sum())
            .collect();
        let total: f64 = chunk_sums.iter().sum();
        let pick = if total > 0.0 {
            let mut target = rng.random::<f64>() * total;
            let mut pick = None;
            'outer: for (ci, &s) in chunk_sums.iter().enumerate() {
                if target >= s {
                    target -= s;
                    continue;
                }
                let base = ci * SUM_CHUNK;
                for (j, &v) in d2[base..(base + SUM_CHUNK).min(n)].iter().enumerate() {
                    if chosen[base + j] || v <= 0.0 {
                        continue;
                    }
                    pick = Some(base + j);
                    if target < f64::from(v) {
                        break 'outer;
                    }
                    target -= f64::from(v);
                }
            }
            // Rounding can leave `target` a hair above the last weight: take the last candidate.
            pick.or_else(|| (0..n).rev().find(|&i| !chosen[i] && d2[i] > 0.0))
        } else {
            None
        };
        // Every remaining point coincides with a centroid: take an unchosen one uniformly.
        let pick = match pick {
            Some(p) => p,
            None => {
                let free: Vec<usize> = (0..n).filter(|&i| !chosen[i]).collect();
                free[rng.random_range(0..free.len())]
            }
        };
        chosen[pick] = true;
        let c = &x[pick * dim..(pick + 1) * dim];
        centroids.extend(c.iter().map(|v| v.to_f32()));
        distances_to(x, dim, c, &mut new)?;
        d2.par_iter_mut().zip(&new).for_each(|(d, &v)| *d = d.min(v));
    }
    Ok(centroids)
}

/// k-means++ in batches (see [`Init::KMeansParallel`]).
/// `packed` (the same points), when prepared for L2, saves packing them again every round.
fn kmeans_pp_batched<T: Element>(
    x: &[T],
    packed: Option<&PackedPoints<'_>>,
    dim: usize,
    k: usize,
    rounds: usize,
    seed: u64,
) -> Result<Vec<f32>> {
    let n = x.len() / dim;
    let mut rng = rng_for(seed, 4);
    let (mut chosen, mut centroids, mut d2) = first_seed(x, dim, k, &mut rng)?;
    let mut labels = vec![0u32; n];
    let mut new = vec![0f32; n];
    let rounds = rounds.min(k - 1).max(1);
    for round in 0..rounds {
        let have = centroids.len() / dim;
        let want = (k - have).div_ceil(rounds - round);
        if want == 0 {
            break;
        }
        let key = mix(seed ^ mix(0x6b6d_7070 + round as u64));
        // Efraimidis–Spirakis: the `want` smallest `-ln(u) / w` are a weighted sample without
        // replacement. Points at distance 0 come last, in a random order.
        let mut cand: Vec<(f64, f64, u32)> = (0..n)
            .into_par_iter()
            .filter(|&i| !chosen[i])
            .map(|i| {
                let u = unit(key, i);
                let w = f64::from(d2[i]);
                let e = if w > 0.0 { -u.ln() / w } else { f64::INFINITY };
                (e, u, i as u32)
            })
            .collect();
        let order = |a: &(f64, f64, u32), b: &(f64, f64, u32)| {
            a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2))
        };
        let want = want.min(cand.len());
        if want < cand.len() {
            cand.select_nth_unstable_by(want - 1, order);
            cand.truncate(want);
        }
        cand.sort_unstable_by(order);
        let batch_start = centroids.len();
        for &(_, _, i) in &cand {
            chosen[i as usize] = true;
            centroids.extend(x[i as usize * dim..(i as usize + 1) * dim].iter().map(|v| v.to_f32()));
        }
        if centroids.len() / dim == k {
            break;
        }
        match packed.filter(|p| p.metric() == Metric::L2) {
            Some(p) => p.nearest(&centroids[batch_start..], &mut labels, &mut new)?,
            None => nearest_centroids(x, &centroids[batch_start..], dim, Metric::L2, &mut labels, &mut new)?,
        }
        d2.par_iter_mut().zip(&new).for_each(|(d, &v)| *d = d.min(v));
    }
    debug_assert_eq!(centroids.len(), k * dim);
    Ok(centroids)
}

#[cfg(test)]
mod tests {
    /// The CPU kernel behind the hook: what an external assigner must reproduce.
    struct CpuAssigner;

    impl Assigner for CpuAssigner {
        fn nearest(
            &self,
            points: &[f32],
            centroids: &[f32],
            dim: usize,
            metric: Metric,
            labels: &mut [u32],
            scores: &mut [f32],
        ) -> Result<()> {
            Ok(nearest_centroids(points, centroids, dim, metric, labels, scores)?)
        }
    }

    /// An assigner that answers nonsense or fails.
    struct Broken(bool);

    impl Assigner for Broken {
        fn nearest(&self, _: &[f32], _: &[f32], _: usize, _: Metric, labels: &mut [u32], _: &mut [f32]) -> Result<()> {
            if self.0 {
                return Err(Error::Assign { what: "device lost".into() });
            }
            labels.fill(7);
            Ok(())
        }
    }

    /// A session over the CPU kernel and [`update_means`], counting what it is asked, or
    /// failing its update.
    struct CpuSessions {
        opened: std::sync::atomic::AtomicUsize,
        fail_update: bool,
    }

    struct CpuSession<'a> {
        points: &'a [f32],
        dim: usize,
        metric: Metric,
        fail_update: bool,
    }

    impl Assigner for CpuSessions {
        fn nearest(&self, _: &[f32], _: &[f32], _: usize, _: Metric, _: &mut [u32], _: &mut [f32]) -> Result<()> {
            Err(Error::Assign { what: "a session was opened: the loop must not call nearest".into() })
        }

        fn session<'a>(
            &'a self,
            points: &'a [f32],
            dim: usize,
            metric: Metric,
        ) -> Result<Option<Box<dyn LloydSession + 'a>>> {
            self.opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Some(Box::new(CpuSession { points, dim, metric, fail_update: self.fail_update })))
        }
    }

    impl LloydSession for CpuSession<'_> {
        fn nearest(&mut self, centroids: &[f32], labels: &mut [u32], scores: &mut [f32]) -> Result<()> {
            Ok(nearest_centroids(self.points, centroids, self.dim, self.metric, labels, scores)?)
        }

        fn update(&mut self, members: &ClusterMembers, centroids: &mut [f32]) -> Result<()> {
            if self.fail_update {
                return Err(Error::Assign { what: "update failed".into() });
            }
            assert_eq!(members.order().len(), self.points.len() / self.dim);
            update_means(self.points, self.dim, members, centroids);
            Ok(())
        }
    }

    /// External steps that answer as the CPU does (an assigner; a session doing both steps,
    /// opened once per fit) give the CPU fit bit for bit (sampled, several runs, spherical);
    /// their errors propagate.
    #[test]
    fn external_steps_with_the_cpu_answers_give_the_same_centroids_and_errors_propagate() {
        let dim = 5;
        let data: Vec<f32> = (0..dim * 900).map(|i| ((i * 7919 + i / 7) % 1013) as f32 / 37.0).collect();
        let sessions = CpuSessions { opened: 0.into(), fail_update: false };
        for spherical in [false, true] {
            let km = KMeans::new(6).iterations(8).seed(3).nredo(2).spherical(spherical).max_points_per_centroid(100);
            let want = km.fit(&data, dim).unwrap();
            for (name, assigner) in [("assigner", &CpuAssigner as &dyn Assigner), ("session", &sessions)] {
                let got = km.fit_with_assigner(&data, dim, assigner).unwrap();
                let bits = |c: &Clustering| c.centroids().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{name}, spherical {spherical}");
                assert_eq!(got.objective(), want.objective());
                assert_eq!(got.sizes(), want.sizes());
            }
        }
        assert_eq!(sessions.opened.into_inner(), 2, "one session per fit, for both runs");
        let km = KMeans::new(6).iterations(3);
        assert!(matches!(km.fit_with_assigner(&data, dim, &Broken(true)), Err(Error::Assign { .. })));
        assert!(
            matches!(km.fit_with_assigner(&data, dim, &Broken(false)), Err(Error::Assign { what }) if what.contains("label 7"))
        );
        let failing = CpuSessions { opened: 0.into(), fail_update: true };
        let err = km.fit_with_assigner(&data, dim, &failing).unwrap_err();
        assert!(matches!(err, Error::Assign { what } if what == "update failed"));
    }

    #[test]
    fn members_group_points_by_label_in_increasing_order() {
        let labels = [2u32, 0, 2, 1, 0, 2, 2];
        assert!(matches!(ClusterMembers::from_labels(&labels, 2), Err(Error::Parameter { name: "labels", .. })));
        let m = ClusterMembers::from_labels(&labels, 4).unwrap();
        assert_eq!(m.k(), 4);
        for c in 0..4 {
            let want: Vec<u32> = (0..labels.len() as u32).filter(|&i| labels[i as usize] == c as u32).collect();
            assert_eq!(m.of(c), &want[..], "cluster {c}");
        }
        assert_eq!(m.sizes().collect::<Vec<_>>(), vec![2, 1, 4, 0]);
        assert_eq!(m.offsets().len(), 5);
    }

    use super::*;

    #[test]
    fn sampling_draws_distinct_indices_like_a_dense_fisher_yates() {
        for (n, m) in [(10, 10), (1000, 37), (5, 1)] {
            let got = sample_indices(&mut rng_for(3, 1), n, m);
            // The same draws on a dense permutation.
            let mut rng = rng_for(3, 1);
            let mut perm: Vec<usize> = (0..n).collect();
            for i in 0..m {
                let j = rng.random_range(i..n);
                perm.swap(i, j);
            }
            assert_eq!(got, perm[..m]);
            let mut sorted = got.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), m);
            assert!(sorted.iter().all(|&i| i < n));
        }
    }

    #[test]
    fn split_copies_the_largest_cluster_and_pushes_both_apart() {
        let dim = 3;
        let mut centroids = vec![1.0, -2.0, 0.0, /**/ 5.0, 5.0, 5.0, /**/ 9.0, 9.0, 9.0];
        let mut sizes = vec![7, 0, 2];
        assert_eq!(split_empty_clusters(&mut centroids, dim, &mut sizes), 1);
        assert_eq!(sizes, vec![4, 3, 2]);
        let (a, b) = (&centroids[0..3], &centroids[3..6]);
        assert!(a != b);
        // symmetric around the old centroid, and nonzero where the old component was zero
        for j in 0..3 {
            assert!(((a[j] + b[j]) / 2.0 - [1.0, -2.0, 0.0][j]).abs() < 1e-6);
            assert!((a[j] - b[j]).abs() > 0.0);
        }
        assert_eq!(&centroids[6..], &[9.0, 9.0, 9.0]);
    }

    /// A split moves the copies as far apart wherever the centroids sit: by ε times each
    /// component's distance from the centroids' mean. It moved them by ε · |value| (~10 at
    /// values around 10⁴, beyond every point of a unit-spread cluster, which emptied both
    /// again: a k-means objective 3× the same data's at the origin).
    #[test]
    fn a_split_does_not_depend_on_where_the_centroids_sit() {
        let dim = 4;
        let near: Vec<f32> = vec![0.5, 1.0, 0.25, 2.0, /**/ 0.0, 0.0, 0.0, 0.0, /**/ 3.0, 2.5, 1.0, 0.5];
        let split = |offset: f32| {
            let mut centroids: Vec<f32> = near.iter().map(|v| v + offset).collect();
            let mut sizes = vec![9, 0, 4];
            assert_eq!(split_empty_clusters(&mut centroids, dim, &mut sizes), 1);
            centroids.iter().map(|v| v - offset).collect::<Vec<f32>>()
        };
        let origin = split(0.0);
        for offset in [1e3f32, 1e4, -5e4] {
            // Equal up to the f32 rounding of values at the offset.
            for (a, b) in split(offset).iter().zip(&origin) {
                assert!((a - b).abs() <= 1e-2, "offset {offset}: {a} against {b}");
            }
        }
        assert!(origin[..4].iter().zip(&origin[4..8]).all(|(a, b)| a != b), "the copies differ");
    }

    #[test]
    fn several_empty_clusters_take_turns_on_the_largest() {
        let mut centroids: Vec<f32> = (0..8).map(|v| v as f32 + 1.0).collect();
        let mut sizes = vec![0, 8, 0, 0];
        assert_eq!(split_empty_clusters(&mut centroids, 2, &mut sizes), 3);
        assert!(sizes.iter().all(|&s| s > 0));
        assert_eq!(sizes.iter().sum::<usize>(), 8);
    }

    #[test]
    fn update_takes_means_and_counts() {
        let x = [0.0f32, 2.0, 4.0, 10.0];
        let mut centroids = vec![0.0, 0.0, 7.0];
        let members = ClusterMembers::new(&[0, 0, 0, 2], 3);
        update_means(&x, 1, &members, &mut centroids);
        assert_eq!(members.sizes().collect::<Vec<_>>(), vec![3, 0, 1]);
        assert_eq!((members.of(0), members.of(1), members.of(2)), (&[0u32, 1, 2][..], &[][..], &[3u32][..]));
        assert_eq!(members.offsets(), &[0, 3, 3, 4]);
        assert_eq!(centroids, vec![2.0, 0.0, 10.0]);
    }

    #[test]
    fn seeding_picks_distinct_points() {
        let dim = 2;
        let x: Vec<f32> = (0..200).map(|i| ((i * 37) % 101) as f32).collect();
        for c in [kmeans_pp(&x, dim, 40, 5).unwrap(), kmeans_pp_batched(&x, None, dim, 40, 3, 5).unwrap()] {
            assert_eq!(c.len(), 40 * dim);
            let mut rows: Vec<Vec<u32>> = c.chunks(dim).map(|r| r.iter().map(|v| v.to_bits()).collect()).collect();
            rows.sort();
            rows.dedup();
            assert_eq!(rows.len(), 40, "all distinct");
            assert!(c.chunks(dim).all(|r| x.chunks(dim).any(|p| p == r)), "every centroid is a point");
        }
    }

    #[test]
    fn seeding_takes_every_point_when_k_equals_n_even_with_duplicates() {
        let x = [1.0f32, 1.0, 1.0, 2.0, 2.0];
        for c in [kmeans_pp(&x, 1, 5, 1).unwrap(), kmeans_pp_batched(&x, None, 1, 5, 2, 1).unwrap()] {
            let mut c = c.clone();
            c.sort_by(f32::total_cmp);
            assert_eq!(c, x);
        }
    }
}
