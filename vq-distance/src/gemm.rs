//! Many-to-many scoring in the blocked `‖x‖² − 2·x·y + ‖y‖²` form.
//!
//! Queries are packed into groups of `mr` rows and base vectors into panels of `nr` columns,
//! both k-major, so the per-level micro-kernel (`simd::GemmKernel::scan`) computes an
//! `mr × nr` tile of dot products in registers with one broadcast and `nr / lanes` loads per
//! step. The tile never goes to memory: the kernel turns it into selection keys
//! `bias[j] + alpha · (x·y)` (L2: `bias = ‖y‖²`, `alpha = −2`; inner product and cosine:
//! `bias = 0`, `alpha = −1`), compares them with each query's current top-k threshold, and
//! calls back only for the rare lanes that beat it. A base vector is skipped by giving it a
//! NaN bias (every comparison with NaN is false).
//!
//! Blocking: a block of base vectors is packed once per chunk of queries and sized to stay in
//! L2; each `nr`-column panel of it is reused by every query group.

use rayon::prelude::*;

use crate::element::Element;
use crate::metric::Metric;
use crate::simd::{GemmKernel, Kernels};
use crate::topk::TopK;

/// Callback of the micro-kernel for one tile row: `(query row, first base column of the
/// panel, the panel's keys, mask of the lanes to look at) -> the row's new threshold`.
pub(crate) type TileHit<'a> = &'a mut dyn FnMut(usize, usize, &[f32], u64) -> f32;

/// Signature of a level's micro-kernel driver.
pub(crate) type ScanFn = fn(&ScanArgs<'_>, &mut [f32], TileHit<'_>);

/// What a micro-kernel scans: every query group against every base panel.
pub(crate) struct ScanArgs<'a> {
    pub(crate) qpack: &'a [f32],
    pub(crate) groups: usize,
    pub(crate) bpack: &'a [f32],
    pub(crate) panels: usize,
    pub(crate) dim: usize,
    pub(crate) bias: &'a [f32],
    pub(crate) alpha: f32,
    /// Call back for every lane of every tile (the full score matrix), not only for lanes
    /// under the threshold.
    pub(crate) keep_all: bool,
}

impl ScanArgs<'_> {
    /// Checks the buffer sizes the kernels' pointer arithmetic relies on.
    pub(crate) fn check(&self, mr: usize, nr: usize, thresholds: &[f32]) {
        assert!(self.qpack.len() >= self.groups * self.dim * mr, "query pack too short");
        assert!(self.bpack.len() >= self.panels * self.dim * nr, "base pack too short");
        assert!(self.bias.len() >= self.panels * nr, "bias too short");
        assert!(thresholds.len() >= self.groups * mr, "thresholds too short");
    }
}

/// Base vectors are packed in blocks of about this many bytes (f32), so a block stays in L2.
const BASE_BLOCK_BYTES: usize = 256 * 1024;

/// Queries searched together (one packing of the base per chunk).
const MAX_QUERY_CHUNK: usize = 1024;

/// Packs `rows` (row-major, `dim` wide) into groups of `mr` rows, k-major, zero-padded.
pub(crate) fn pack_queries(rows: &[f32], dim: usize, mr: usize, out: &mut Vec<f32>) -> usize {
    let n = rows.len() / dim;
    let groups = n.div_ceil(mr);
    out.clear();
    out.resize(groups * dim * mr, 0.0);
    for (r, row) in rows.chunks_exact(dim).enumerate() {
        let (g, i) = (r / mr, r % mr);
        let group = &mut out[g * dim * mr..(g + 1) * dim * mr];
        for (k, &v) in row.iter().enumerate() {
            group[k * mr + i] = v;
        }
    }
    groups
}

/// One packed block of base vectors.
#[derive(Default, Clone)]
pub(crate) struct PackedBase {
    pub(crate) data: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    pub(crate) panels: usize,
}

impl PackedBase {
    /// Packs `rows` into panels of `nr` columns, k-major, each value multiplied by its row's
    /// `scale` (cosine normalization); padded columns get a NaN bias so they never match.
    pub(crate) fn pack<T: Element>(&mut self, rows: &[T], dim: usize, nr: usize, scale: Option<&[f32]>, bias: &[f32]) {
        let n = rows.len() / dim;
        self.panels = n.div_ceil(nr);
        self.data.clear();
        self.data.resize(self.panels * dim * nr, 0.0);
        self.bias.clear();
        self.bias.extend_from_slice(&bias[..n]);
        self.bias.resize(self.panels * nr, f32::NAN);
        // Panel by panel, k-major: the writes are sequential and the reads are `nr`
        // sequential streams, one per row.
        for (p, panel) in self.data.chunks_exact_mut(dim * nr).enumerate() {
            let first = p * nr;
            let count = nr.min(n - first);
            for j in 0..count {
                let row = &rows[(first + j) * dim..][..dim];
                let s = scale.map_or(1.0, |s| s[first + j]);
                for (dst, &v) in panel[j..].iter_mut().step_by(nr).zip(row) {
                    *dst = v.to_f32() * s;
                }
            }
        }
    }
}

/// Per-base-vector terms of the key: `bias` and, for cosine, the normalizing scale.
pub(crate) struct BaseTerms {
    pub(crate) bias: Vec<f32>,
    pub(crate) scale: Option<Vec<f32>>,
    pub(crate) alpha: f32,
}

impl BaseTerms {
    /// Computes the terms of every base vector. With `skip_non_finite`, a vector holding NaN
    /// or infinity gets a NaN bias, so it never enters a top-k.
    pub(crate) fn new<T: Element>(
        kern: &Kernels,
        base: &[T],
        dim: usize,
        metric: Metric,
        skip_non_finite: bool,
    ) -> Self {
        let rows = || base.par_chunks_exact(dim);
        let finite = |row: &[T]| !skip_non_finite || row.iter().all(|v| v.is_finite());
        let sq_norm = |row: &[T]| T::dot_unchecked(kern, row, row);
        match metric {
            Metric::L2 => BaseTerms {
                bias: rows().map(|row| if finite(row) { sq_norm(row) } else { f32::NAN }).collect(),
                scale: None,
                alpha: -2.0,
            },
            Metric::InnerProduct => BaseTerms {
                bias: rows().map(|row| if finite(row) { 0.0 } else { f32::NAN }).collect(),
                scale: None,
                alpha: -1.0,
            },
            Metric::Cosine => {
                let (bias, scale) = rows()
                    .map(|row| {
                        let norm = sq_norm(row).sqrt();
                        let bias = if finite(row) && norm.is_finite() { 0.0 } else { f32::NAN };
                        // A zero vector stays zero: its cosine with anything is 0.
                        (bias, if norm > 0.0 { 1.0 / norm } else { 0.0 })
                    })
                    .unzip();
                BaseTerms { bias, scale: Some(scale), alpha: -1.0 }
            }
        }
    }
}

/// Rows of base vectors per packed block for this kernel and dimension.
fn base_block_rows(gemm: &GemmKernel, dim: usize) -> usize {
    let rows = BASE_BLOCK_BYTES / (4 * dim);
    (rows / gemm.nr).max(1) * gemm.nr
}

/// Query chunk size: large enough to amortize packing the base, small enough to give every
/// thread several chunks.
fn query_chunk_rows(gemm: &GemmKernel, nq: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let per_thread = nq.div_ceil(4 * threads);
    per_thread.clamp(gemm.mr, MAX_QUERY_CHUNK).div_ceil(gemm.mr) * gemm.mr
}

/// Scans one chunk of queries against the whole base, block by block. `on_tile` receives
/// `(query row in the chunk, id of the panel's first base vector, number of real base vectors
/// in the panel, keys, mask)` and returns the row's new threshold. Each row starts from its
/// entry of `start` (one per query of the chunk), or from infinity (every key is offered).
#[allow(clippy::too_many_arguments)]
fn scan_chunk<T: Element>(
    kern: &Kernels,
    qchunk: &[f32],
    base: &[T],
    dim: usize,
    terms: &BaseTerms,
    keep_all: bool,
    start: Option<&[f32]>,
    mut on_tile: impl FnMut(usize, usize, usize, &[f32], u64) -> f32,
) {
    let gemm = &kern.gemm;
    let nq = qchunk.len() / dim;
    let block_rows = base_block_rows(gemm, dim);
    let mut qpack = Vec::new();
    let groups = pack_queries(qchunk, dim, gemm.mr, &mut qpack);
    // Padded query rows get a NaN threshold: nothing is ever offered to them.
    let mut thresholds = vec![f32::NAN; groups * gemm.mr];
    match start {
        Some(start) => thresholds[..nq].copy_from_slice(&start[..nq]),
        None => thresholds[..nq].fill(f32::INFINITY),
    }
    let mut packed = PackedBase::default();
    for (b, rows) in base.chunks(block_rows * dim).enumerate() {
        let id0 = b * block_rows;
        let n = rows.len() / dim;
        let scale = terms.scale.as_deref().map(|s| &s[id0..id0 + n]);
        packed.pack(rows, dim, gemm.nr, scale, &terms.bias[id0..id0 + n]);
        let args = ScanArgs {
            qpack: &qpack,
            groups,
            bpack: &packed.data,
            panels: packed.panels,
            dim,
            bias: &packed.bias,
            alpha: terms.alpha,
            keep_all,
        };
        (gemm.scan)(&args, &mut thresholds, &mut |row, col, keys, mask| {
            if row >= nq {
                return f32::NAN;
            }
            let valid = (n - col.min(n)).min(keys.len());
            on_tile(row, id0 + col, valid, keys, mask)
        });
    }
}

/// Offers every base vector to every query's [`TopK`] (keys, not scores), in parallel over
/// chunks of queries. `queries` are f32, already normalized for cosine.
pub(crate) fn top_k_blocked<T: Element>(
    kern: &Kernels,
    queries: &[f32],
    base: &[T],
    dim: usize,
    terms: &BaseTerms,
    k: usize,
) -> Vec<TopK> {
    let chunk = query_chunk_rows(&kern.gemm, queries.len() / dim);
    queries
        .par_chunks(chunk * dim)
        .flat_map_iter(|qchunk| {
            let mut tops: Vec<TopK> = (0..qchunk.len() / dim).map(|_| TopK::new(k)).collect();
            scan_chunk(kern, qchunk, base, dim, terms, false, None, |row, id, _, keys, mut mask| {
                // Padded lanes have a NaN bias, so they are never in `mask`.
                let top = &mut tops[row];
                while mask != 0 {
                    let j = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    top.push(keys[j], (id + j) as u64);
                }
                top.threshold()
            });
            tops
        })
        .collect()
}

/// The base vectors whose key is at most the query's `thresholds` entry, for every query
/// (ascending ids), in parallel over chunks of queries. `queries` are f32, already normalized
/// for cosine; a NaN threshold selects nothing.
pub(crate) fn within_blocked<T: Element>(
    kern: &Kernels,
    queries: &[f32],
    base: &[T],
    dim: usize,
    terms: &BaseTerms,
    thresholds: &[f32],
) -> Vec<Vec<u64>> {
    let chunk = query_chunk_rows(&kern.gemm, queries.len() / dim);
    queries
        .par_chunks(chunk * dim)
        .zip(thresholds.par_chunks(chunk))
        .flat_map_iter(|(qchunk, start)| {
            let mut hits: Vec<Vec<u64>> = vec![Vec::new(); start.len()];
            scan_chunk(kern, qchunk, base, dim, terms, false, Some(start), |row, id, _, _, mut mask| {
                // Padded lanes have a NaN bias, so they are never in `mask`.
                while mask != 0 {
                    hits[row].push((id + mask.trailing_zeros() as usize) as u64);
                    mask &= mask - 1;
                }
                start[row]
            });
            hits
        })
        .collect()
}

/// Writes the full `nq × nb` matrix of selection keys (`bias[j] + alpha · x·y`), in parallel
/// over chunks of queries.
pub(crate) fn keys_matrix<T: Element>(
    kern: &Kernels,
    queries: &[f32],
    base: &[T],
    dim: usize,
    terms: &BaseTerms,
    out: &mut [f32],
) {
    let nb = base.len() / dim;
    if nb == 0 {
        return;
    }
    let chunk = query_chunk_rows(&kern.gemm, queries.len() / dim);
    queries.par_chunks(chunk * dim).zip(out.par_chunks_mut(chunk * nb)).for_each(|(qchunk, out)| {
        scan_chunk(kern, qchunk, base, dim, terms, true, None, |row, id, valid, keys, _| {
            out[row * nb + id..][..valid].copy_from_slice(&keys[..valid]);
            f32::NAN
        });
    });
}
