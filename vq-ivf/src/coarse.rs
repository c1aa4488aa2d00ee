//! Coarse quantizers: which lists a vector belongs to, and which lists a query probes.
//!
//! [`CoarseQuantizer`] is the one thing an inverted file asks of them; [`FlatCoarse`] scores
//! every centroid (exact; Faiss' `IndexFlatL2` / `IndexFlatIP` quantizer) and [`HnswCoarse`]
//! walks an HNSW graph over the centroids (approximate; Faiss' `IVF65536_HNSW32`), so that
//! the coarse step stays cheap when `nlist` reaches tens of thousands.
//!
//! Keys are vq's "smaller is better" keys of the coarse metric: squared L2, or the negated
//! inner product (inner-product and cosine indexes search unit centroids by inner product).

use std::sync::Arc;

use rayon::prelude::*;
use vq_distance::{Kernels, Metric, PackedCentroids, TopK, nearest_centroids, validate_rows};
use vq_graph::{Hnsw, HnswParams};

use crate::error::{Error, Result};

/// Below this many queries the per-pair kernels beat packing them for the blocked kernel.
const BLOCKED_FROM: usize = 8;

/// The coarse quantizer of an inverted file: `nlist` centroids and a search for the lists
/// nearest to a vector.
///
/// Inputs are *prepared* rows (checked, normalized for cosine: what
/// [`prepare_rows`](vq_distance::prepare_rows) returns); the index does that once per call.
pub trait CoarseQuantizer: Send + Sync {
    /// Number of lists.
    fn nlist(&self) -> usize;
    /// The centroids, `nlist × dim`, row-major.
    fn centroids(&self) -> &[f32];
    /// For each row of `rows`, the `nprobe` nearest lists, best first (ties to the smaller
    /// list), into `lists[i · nprobe..][..nprobe]` with their coarse keys in `keys` (same
    /// layout). `nprobe` is at most [`nlist`](CoarseQuantizer::nlist). A search that finds
    /// fewer lists (an approximate one) pads with `u32::MAX` and `+∞`.
    fn search(&self, rows: &[f32], nprobe: usize, lists: &mut [u32], keys: &mut [f32]) -> Result<()>;
    /// [`search`](CoarseQuantizer::search) with a beam width for this call (Faiss'
    /// `quantizer_params` / the quantizer's `efSearch`): approximate quantizers widen or narrow
    /// their search, exact ones ignore it. `None`: the quantizer's own setting.
    fn search_with_ef(
        &self,
        rows: &[f32],
        nprobe: usize,
        ef: Option<usize>,
        lists: &mut [u32],
        keys: &mut [f32],
    ) -> Result<()> {
        let _ = ef;
        self.search(rows, nprobe, lists, keys)
    }
    /// The nearest list of every row (what `add` files it under) and its key.
    fn assign(&self, rows: &[f32], labels: &mut [u32], keys: &mut [f32]) -> Result<()> {
        self.search(rows, 1, labels, keys)
    }
    /// Bytes held beyond the centroids (graph links, norms).
    fn extra_bytes(&self) -> usize;
}

/// The list every row of `rows` (prepared, `dim` wide) is filed under. An approximate coarse
/// search (an HNSW coarse graph read from a damaged file) may find no list for a row: that is
/// an error here, for every caller, never a list index past the centroids.
pub(crate) fn assign_rows(coarse: &dyn CoarseQuantizer, rows: &[f32], dim: usize) -> Result<Vec<u32>> {
    let n = rows.len() / dim;
    let (mut labels, mut keys) = (vec![0u32; n], vec![0f32; n]);
    coarse.assign(rows, &mut labels, &mut keys)?;
    if labels.iter().any(|&l| l as usize >= coarse.nlist()) {
        return Err(Error::Parameter { name: "coarse", what: "the coarse search found no list for a vector".into() });
    }
    Ok(labels)
}

/// Rows in `rows` (a whole number of `dim`-wide rows).
fn rows_of(rows: &[f32], dim: usize) -> Result<usize> {
    if !rows.len().is_multiple_of(dim) {
        return Err(vq_distance::Error::RaggedBuffer { what: "queries", len: rows.len(), dim }.into());
    }
    Ok(rows.len() / dim)
}

/// Checks the output buffers of a coarse search.
fn check_out(rows: usize, nprobe: usize, lists: &[u32], keys: &[f32]) -> Result<()> {
    let want = rows.checked_mul(nprobe).ok_or(Error::Parameter { name: "nprobe", what: "too large".into() })?;
    if lists.len() != want || keys.len() != want {
        return Err(vq_distance::Error::OutputLength {
            what: "coarse lists",
            got: lists.len().min(keys.len()),
            expected: want,
        }
        .into());
    }
    Ok(())
}

/// `rows[i] −= centroids[labels[i]]`, in place (residuals against their lists' centroids);
/// every label must be a row of `centroids`.
pub(crate) fn subtract_lists(rows: &mut [f32], labels: &[u32], centroids: &[f32], dim: usize) {
    rows.par_chunks_mut(dim).zip(labels.par_iter()).for_each(|(row, &l)| {
        let c = &centroids[l as usize * dim..][..dim];
        row.iter_mut().zip(c).for_each(|(v, c)| *v -= c);
    });
}

/// Every centroid scored: the exact coarse quantizer. The centroids are checked and packed for
/// the blocked kernel once, when it is made (trained or read), with their squared norms folded
/// in, so a search pays only for its multiply-adds and a selection fused into them
/// ([`PackedCentroids`]).
#[derive(Debug, Clone)]
pub struct FlatCoarse {
    dim: usize,
    /// `L2` or `InnerProduct`.
    metric: Metric,
    centroids: Vec<f32>,
    /// The centroids in the blocked kernel's panels (a second copy: `centroids` stays
    /// row-major for residuals and files).
    packed: PackedCentroids<'static>,
    /// The process' f32 pair kernel of the coarse metric (L2, or the dot product).
    pair: fn(&[f32], &[f32]) -> f32,
}

impl FlatCoarse {
    /// The quantizer of `centroids` (`nlist × dim`, row-major) by `metric` (`L2`, or
    /// `InnerProduct` for inner-product and cosine indexes). The centroids must be finite.
    pub fn new(centroids: Vec<f32>, dim: usize, metric: Metric) -> Result<Self> {
        let metric = check_centroids(&centroids, dim, metric)?;
        let packed = PackedCentroids::new(&centroids, dim, metric)?;
        Ok(FlatCoarse { dim, metric, centroids, packed, pair: pair_kernel(metric) })
    }

    fn key(&self, q: &[f32], c: &[f32]) -> f32 {
        coarse_key(self.metric, self.pair, q, c)
    }

    /// The key [`CoarseQuantizer::search`] gives list `list` for the prepared row `q`, to the
    /// bit (`list` below `nlist`).
    pub(crate) fn list_key(&self, q: &[f32], list: usize) -> f32 {
        self.key(q, &self.centroids[list * self.dim..][..self.dim])
    }

    /// One query, with the per-pair kernels.
    fn search_one(&self, q: &[f32], top: &mut TopK, lists: &mut [u32], keys: &mut [f32]) {
        top.clear();
        for (j, c) in self.centroids.chunks_exact(self.dim).enumerate() {
            top.push(self.key(q, c), j as u64);
        }
        write_top(top, lists, keys);
    }
}

/// Checks centroids for a coarse quantizer and returns its metric: `L2`, or `InnerProduct` for
/// inner-product and cosine indexes.
fn check_centroids(centroids: &[f32], dim: usize, metric: Metric) -> Result<Metric> {
    if dim == 0 || centroids.is_empty() || !centroids.len().is_multiple_of(dim) {
        return Err(Error::Parameter {
            name: "centroids",
            what: format!("{} values are not a nonempty whole number of rows of {dim}", centroids.len()),
        });
    }
    if centroids.len() / dim > u32::MAX as usize {
        return Err(Error::Parameter { name: "centroids", what: "more than 2^32 - 1 lists".into() });
    }
    validate_rows("centroids", centroids, dim, Metric::L2)?;
    Ok(if metric == Metric::L2 { Metric::L2 } else { Metric::InnerProduct })
}

/// The f32 pair kernel of the coarse `metric` (L2 or inner product) at the process' level.
fn pair_kernel(metric: Metric) -> fn(&[f32], &[f32]) -> f32 {
    let k = Kernels::active();
    if metric == Metric::L2 { k.f32_l2_sq_fn() } else { k.f32_dot_fn() }
}

/// The coarse key of `q` and centroid `c`: squared L2, or the negated inner product.
#[inline]
fn coarse_key(metric: Metric, pair: fn(&[f32], &[f32]) -> f32, q: &[f32], c: &[f32]) -> f32 {
    let s = pair(q, c);
    if metric == Metric::L2 { s } else { -s }
}

/// Writes `(key, list)` pairs best first (ties to the smaller list), padding with
/// `u32::MAX` / `+∞`.
fn write_sorted(found: &mut [(f32, u32)], lists: &mut [u32], keys: &mut [f32]) {
    found.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (i, (l, k)) in lists.iter_mut().zip(keys.iter_mut()).enumerate() {
        (*l, *k) = found.get(i).map_or((u32::MAX, f32::INFINITY), |&(key, id)| (id, key));
    }
}

/// Writes a selection best first, padding with `u32::MAX` / `+∞`.
fn write_top(top: &mut TopK, lists: &mut [u32], keys: &mut [f32]) {
    let hits = top.sorted();
    for (i, (l, k)) in lists.iter_mut().zip(keys.iter_mut()).enumerate() {
        (*l, *k) = hits.get(i).map_or((u32::MAX, f32::INFINITY), |&(key, id)| (id as u32, key));
    }
}

impl CoarseQuantizer for FlatCoarse {
    fn nlist(&self) -> usize {
        self.centroids.len() / self.dim
    }

    fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    fn search(&self, rows: &[f32], nprobe: usize, lists: &mut [u32], keys: &mut [f32]) -> Result<()> {
        let n = rows_of(rows, self.dim)?;
        check_out(n, nprobe, lists, keys)?;
        if n == 0 || nprobe == 0 {
            return Ok(());
        }
        if n < BLOCKED_FROM {
            let mut top = TopK::new(nprobe);
            for ((q, l), k) in rows.chunks_exact(self.dim).zip(lists.chunks_mut(nprobe)).zip(keys.chunks_mut(nprobe)) {
                self.search_one(q, &mut top, l, k);
            }
            return Ok(());
        }
        // Blocked `‖q‖² − 2⟨q, c⟩ + ‖c‖²` keys, as Faiss' BLAS path, with the top-`nprobe`
        // selection fused into the kernel.
        self.packed.search(rows, nprobe, lists, keys)?;
        // Then the chosen lists' keys again with the per-pair kernels, which a batch under
        // `BLOCKED_FROM` uses: residual codes add the key to every score, so without this a
        // query's scores would differ in the last bits with the size of its batch. It costs
        // `nprobe` distances a query, against the thousands of codes its lists hold.
        rows.par_chunks_exact(self.dim)
            .zip(lists.par_chunks_mut(nprobe))
            .zip(keys.par_chunks_mut(nprobe))
            .for_each_init(Vec::new, |found: &mut Vec<(f32, u32)>, ((q, lists), keys)| {
                found.clear();
                found.extend(
                    lists
                        .iter()
                        .filter(|&&l| l != u32::MAX)
                        .map(|&l| (self.key(q, &self.centroids[l as usize * self.dim..][..self.dim]), l)),
                );
                write_sorted(found, lists, keys);
            });
        Ok(())
    }

    fn assign(&self, rows: &[f32], labels: &mut [u32], keys: &mut [f32]) -> Result<()> {
        // The fused running-minimum kernel of k-means: no score matrix, no selection.
        nearest_centroids(rows, &self.centroids, self.dim, self.metric, labels, keys)?;
        if self.metric != Metric::L2 {
            keys.iter_mut().for_each(|k| *k = -*k);
        }
        Ok(())
    }

    fn extra_bytes(&self) -> usize {
        self.packed.memory_bytes()
    }
}

/// Default beam width of the coarse HNSW search (raised to `nprobe`).
pub const DEFAULT_COARSE_EF: usize = 64;

/// An HNSW graph over the centroids: the approximate coarse quantizer of very large `nlist`
/// (Faiss' `IVF65536_HNSW32`). Assignment and probing walk the graph with a beam of
/// `max(ef, nprobe)` instead of scoring every centroid; keys are then recomputed exactly
/// against the centroids. The graph never changes after it is built, so clones share it.
#[derive(Clone)]
pub struct HnswCoarse {
    dim: usize,
    metric: Metric,
    centroids: Vec<f32>,
    graph: Arc<Hnsw>,
    ef: usize,
    /// The process' f32 pair kernel of the coarse metric (L2, or the dot product).
    pair: fn(&[f32], &[f32]) -> f32,
}

impl std::fmt::Debug for HnswCoarse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswCoarse")
            .field("nlist", &self.nlist())
            .field("m", &self.graph.params().m)
            .field("ef", &self.ef)
            .finish_non_exhaustive()
    }
}

impl HnswCoarse {
    /// Builds the graph (`m` links per node, Faiss' construction beam 40 for a coarse
    /// quantizer) over `centroids` (`nlist × dim`) by `metric` (`L2`, or `InnerProduct` for
    /// inner-product and cosine indexes, whose centroids are unit vectors: the graph then
    /// links them by cosine, the same order as the inner product for any query).
    pub fn build(centroids: Vec<f32>, dim: usize, metric: Metric, m: usize) -> Result<Self> {
        let metric = check_centroids(&centroids, dim, metric)?;
        let graph_metric = if metric == Metric::L2 { Metric::L2 } else { Metric::Cosine };
        let mut params = HnswParams::with_m(m);
        params.ef_construction = 40;
        let graph = Hnsw::new(dim, graph_metric, params).map_err(graph_error)?;
        graph.add(&centroids).map_err(graph_error)?;
        Ok(HnswCoarse {
            dim,
            metric,
            centroids,
            graph: Arc::new(graph),
            ef: DEFAULT_COARSE_EF,
            pair: pair_kernel(metric),
        })
    }

    /// A quantizer from a graph read back from a file: checked to hold exactly the lists
    /// `0..nlist` by the same metric.
    pub fn from_graph(centroids: Vec<f32>, dim: usize, metric: Metric, graph: Hnsw) -> Result<Self> {
        let metric = check_centroids(&centroids, dim, metric)?;
        let graph_metric = if metric == Metric::L2 { Metric::L2 } else { Metric::Cosine };
        let nlist = centroids.len() / dim;
        if graph.dim() != dim || graph.metric() != graph_metric || graph.len() != nlist {
            return Err(Error::Parameter {
                name: "coarse graph",
                what: format!(
                    "holds {} vectors of dimension {} by {}, the index {nlist} centroids of dimension {dim} by {}",
                    graph.len(),
                    graph.dim(),
                    graph.metric().name(),
                    graph_metric.name()
                ),
            });
        }
        Ok(HnswCoarse {
            dim,
            metric,
            centroids,
            graph: Arc::new(graph),
            ef: DEFAULT_COARSE_EF,
            pair: pair_kernel(metric),
        })
    }

    /// The graph.
    pub fn graph(&self) -> &Hnsw {
        &self.graph
    }

    /// Links per node.
    pub fn m(&self) -> usize {
        self.graph.params().m
    }

    /// The beam width of a coarse search (it is raised to `nprobe`).
    pub fn ef(&self) -> usize {
        self.ef
    }

    /// Sets the beam width of a coarse search (at least 1).
    pub fn set_ef(&mut self, ef: usize) {
        self.ef = ef.max(1);
    }

    /// The key [`CoarseQuantizer::search`] gives list `list` for the prepared row `q`, to the
    /// bit (`list` below `nlist`).
    pub(crate) fn list_key(&self, q: &[f32], list: usize) -> f32 {
        coarse_key(self.metric, self.pair, q, &self.centroids[list * self.dim..][..self.dim])
    }

    fn search_one(&self, q: &[f32], nprobe: usize, ef: usize, lists: &mut [u32], keys: &mut [f32]) -> Result<()> {
        if self.metric != Metric::L2 && q.iter().all(|&x| x == 0.0) {
            // A zero row scores 0 with every centroid by inner product, where the cosine graph
            // has no direction to follow: the first lists (ties go to the smaller list).
            let mut tied: Vec<(f32, u32)> =
                (0..nprobe.min(self.nlist()) as u32).map(|list| (self.list_key(q, list as usize), list)).collect();
            write_sorted(&mut tied, lists, keys);
            return Ok(());
        }
        let hits = self.graph.search(q, nprobe, Some(ef.max(nprobe))).map_err(graph_error)?;
        // Exact keys of the coarse metric (the graph's scores are cosines for inner product).
        let mut exact: Vec<(f32, u32)> = hits
            .iter()
            .filter(|(id, _)| (*id as usize) < self.nlist())
            .map(|&(id, _)| {
                let c = &self.centroids[id as usize * self.dim..][..self.dim];
                (coarse_key(self.metric, self.pair, q, c), id as u32)
            })
            .collect();
        write_sorted(&mut exact, lists, keys);
        Ok(())
    }
}

fn graph_error(e: vq_graph::Error) -> Error {
    Error::Parameter { name: "coarse graph", what: e.to_string() }
}

impl CoarseQuantizer for HnswCoarse {
    fn nlist(&self) -> usize {
        self.centroids.len() / self.dim
    }

    fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    fn search(&self, rows: &[f32], nprobe: usize, lists: &mut [u32], keys: &mut [f32]) -> Result<()> {
        self.search_with_ef(rows, nprobe, None, lists, keys)
    }

    fn search_with_ef(
        &self,
        rows: &[f32],
        nprobe: usize,
        ef: Option<usize>,
        lists: &mut [u32],
        keys: &mut [f32],
    ) -> Result<()> {
        let n = rows_of(rows, self.dim)?;
        check_out(n, nprobe, lists, keys)?;
        if n == 0 || nprobe == 0 {
            return Ok(());
        }
        let ef = ef.unwrap_or(self.ef).max(1);
        rows.par_chunks(self.dim)
            .zip(lists.par_chunks_mut(nprobe))
            .zip(keys.par_chunks_mut(nprobe))
            .with_min_len(16)
            .try_for_each(|((q, l), k)| self.search_one(q, nprobe, ef, l, k))
    }

    fn extra_bytes(&self) -> usize {
        // The graph holds its own copy of the centroids, plus links.
        self.graph.memory_usage().total()
    }
}
