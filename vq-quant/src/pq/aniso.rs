//! Score-aware ("anisotropic") product quantization: Guo et al., *Accelerating Large-Scale
//! Inference with Anisotropic Vector Quantization*, ICML 2020 (ScaNN).
//!
//! For inner-product search, the error of a code matters most along the datapoint: a query
//! that scores high against `x` is nearly parallel to it, so the error `r = x − x̂` splits into
//! `r∥` (along `x`) and `r⊥`, and the loss weighs them `h∥‖r∥‖² + h⊥‖r⊥‖²`. With `h⊥ = 1` and
//! `η = h∥ / h⊥` this is `‖r‖² + (η − 1)·⟨r, x⟩² / ‖x‖²`. The paper's Theorem 3.3 gives `η` for a
//! score threshold `T` (ScaNN's `anisotropic_quantization_threshold`, 0.2 for unit vectors):
//! `η = (d − 1) · (T²/‖x‖²) / (1 − T²/‖x‖²)`; rows with `‖x‖ ≤ T` fall back to `η = 1`, the
//! plain reconstruction loss.
//!
//! The loss couples the sub-quantizers through `⟨r, x⟩ = Σ_j ⟨r_j, x_j⟩`, so both steps are
//! coordinate descents, one sub-quantizer at a time with the others fixed:
//! - assignment: start from the nearest centroids, then for each sub-quantizer pick the
//!   centroid minimizing `‖r_j − c‖² + w·(s₋ⱼ + ⟨r_j − c, x_j⟩)²` (`w = (η − 1)/‖x‖²`, `s₋ⱼ` the
//!   other sub-spaces' share), a few passes;
//! - codebook update: each centroid `c` of sub-quantizer `j` solves the `dsub × dsub` normal
//!   equations `(n·I + Σ w·x_j x_jᵀ) c = Σ r_j + Σ w·q·x_j` of its rows (`q = s₋ⱼ + ⟨r_j, x_j⟩`).
//!
//! `r` is what the codes approximate (the vector, or its residual from an IVF centroid) and `x`
//! the datapoint whose direction the loss protects: the same for a flat index, the full vector
//! for residuals (the error of `c + r̂` is the error of `r̂`).

use rayon::prelude::*;

use super::{ProductQuantizer, pack_index};
use crate::{Error, Result};

/// Coordinate-descent passes over the sub-quantizers when assigning a row.
const ASSIGN_PASSES: usize = 3;
/// Alternations of assignment and codebook update in training.
const TRAIN_ROUNDS: usize = 6;
/// Rows used by training at most (sampled evenly).
const TRAIN_MAX_ROWS: usize = 65_536;

/// `w = (η − 1)/‖x‖²` of a datapoint (0: the plain loss).
pub(crate) fn parallel_weight(x: &[f32], threshold: f32) -> f32 {
    let norm2: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let t2 = f64::from(threshold) * f64::from(threshold);
    if norm2 <= t2 || norm2 == 0.0 || x.len() < 2 {
        return 0.0;
    }
    let ratio = t2 / norm2;
    let eta = (x.len() - 1) as f64 * ratio / (1.0 - ratio);
    if eta <= 1.0 { 0.0 } else { ((eta - 1.0) / norm2) as f32 }
}

impl ProductQuantizer {
    fn check_pairs(&self, r: &[f32], x: &[f32]) -> Result<usize> {
        if !r.len().is_multiple_of(self.dim) || r.len() != x.len() {
            return Err(Error::Parameter {
                name: "directions",
                what: format!(
                    "{} values of directions for {} values of vectors (dimension {})",
                    x.len(),
                    r.len(),
                    self.dim
                ),
            });
        }
        Ok(r.len() / self.dim)
    }

    /// The score-aware codes (centroid ids, one per sub-quantizer) of row `r` whose datapoint
    /// is `x`, with parallel weight `w`, into `ids`.
    fn assign_aniso(&self, r: &[f32], x: &[f32], w: f32, ids: &mut [u16]) {
        let (m, dsub, ksub) = (self.params.m, self.dsub, self.ksub);
        // Nearest centroids first (the plain loss's optimum), and each sub-space's share p_j.
        let mut p = vec![0f32; m];
        for j in 0..m {
            let (rj, book) = (&r[j * dsub..][..dsub], self.codebook(j));
            let best = (0..ksub)
                .map(|k| (k, l2(rj, &book[k * dsub..][..dsub])))
                .fold((0, f32::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
                .0;
            ids[j] = best as u16;
            p[j] = dot_diff(rj, &book[best * dsub..][..dsub], &x[j * dsub..][..dsub]);
        }
        if w == 0.0 {
            return;
        }
        let mut s: f32 = p.iter().sum();
        for _ in 0..ASSIGN_PASSES {
            let mut changed = false;
            for j in 0..m {
                let (rj, xj, book) = (&r[j * dsub..][..dsub], &x[j * dsub..][..dsub], self.codebook(j));
                let rest = s - p[j];
                let (mut best, mut best_loss, mut best_p) = (ids[j] as usize, f32::INFINITY, p[j]);
                for k in 0..ksub {
                    let c = &book[k * dsub..][..dsub];
                    let pk = dot_diff(rj, c, xj);
                    let loss = l2(rj, c) + w * (rest + pk) * (rest + pk);
                    if loss < best_loss {
                        (best, best_loss, best_p) = (k, loss, pk);
                    }
                }
                if best != ids[j] as usize {
                    changed = true;
                    ids[j] = best as u16;
                }
                s = rest + best_p;
                p[j] = best_p;
            }
            if !changed {
                break;
            }
        }
    }

    /// Encodes rows `r` (already prepared: checked, normalized for cosine) with the
    /// score-aware assignment against datapoints `x` (same shape; `r` itself for a flat index).
    pub(crate) fn encode_aniso_prepared(&self, r: &[f32], x: &[f32], threshold: f32, codes: &mut [u8]) -> Result<()> {
        let n = self.check_pairs(r, x)?;
        let (dim, cs, nbits, m) = (self.dim, self.code_size, self.params.nbits, self.params.m);
        if codes.len() != n * cs {
            return Err(Error::CodeLength { what: "codes", len: codes.len(), expected: n * cs });
        }
        codes.par_chunks_mut(cs).zip(r.par_chunks(dim).zip(x.par_chunks(dim))).for_each_init(
            || vec![0u16; m],
            |ids, (code, (r, x))| {
                self.assign_aniso(r, x, parallel_weight(x, threshold), ids);
                code.fill(0);
                for (j, &id) in ids.iter().enumerate() {
                    pack_index(code, j, nbits, u32::from(id));
                }
            },
        );
        Ok(())
    }

    /// Trains codebooks for the score-aware loss: plain k-means codebooks first, then
    /// alternating score-aware assignment and codebook update (see the module docs). `r` and
    /// `x` are prepared rows of the same shape.
    pub(crate) fn train_aniso_prepared(&mut self, r: &[f32], x: &[f32], threshold: f32) -> Result<()> {
        let n = self.check_pairs(r, x)?;
        let dim = self.dim;
        // An even sample bounds the cost (each round is linear in the rows).
        let step = n.div_ceil(TRAIN_MAX_ROWS).max(1);
        let (r, x): (Vec<f32>, Vec<f32>) = if step == 1 {
            (r.to_vec(), x.to_vec())
        } else {
            let rows: Vec<usize> = (0..n).step_by(step).collect();
            (
                rows.iter().flat_map(|&i| r[i * dim..][..dim].iter().copied()).collect(),
                rows.iter().flat_map(|&i| x[i * dim..][..dim].iter().copied()).collect(),
            )
        };
        let books = self.fit_codebooks(&r, None, self.params.iterations, self.params.max_points_per_centroid)?;
        self.set_centroids(books)?;
        let n = r.len() / dim;
        let weights: Vec<f32> = x.par_chunks(dim).map(|x| parallel_weight(x, threshold)).collect();
        if weights.iter().all(|&w| w == 0.0) {
            return Ok(());
        }
        let (m, dsub, ksub) = (self.params.m, self.dsub, self.ksub);
        let mut ids = vec![0u16; n * m];
        for _ in 0..TRAIN_ROUNDS {
            ids.par_chunks_mut(m)
                .zip(r.par_chunks(dim).zip(x.par_chunks(dim)))
                .zip(&weights)
                .for_each(|((ids, (r, x)), &w)| self.assign_aniso(r, x, w, ids));
            // The rows' shares p_j and their sums s, for the block coordinate descent below.
            let mut p = vec![0f32; n * m];
            p.par_chunks_mut(m).zip(ids.par_chunks(m)).enumerate().for_each(|(i, (p, ids))| {
                for j in 0..m {
                    let c = &self.codebook(j)[ids[j] as usize * dsub..][..dsub];
                    p[j] = dot_diff(&r[i * dim + j * dsub..][..dsub], c, &x[i * dim + j * dsub..][..dsub]);
                }
            });
            let mut s: Vec<f32> = p.chunks_exact(m).map(|p| p.iter().sum()).collect();
            let mut books = self.centroids.clone();
            for j in 0..m {
                // Per centroid: the normal equations' matrix (dsub × dsub) and right side.
                let mut a = vec![0f64; ksub * dsub * dsub];
                let mut b = vec![0f64; ksub * dsub];
                let mut count = vec![0usize; ksub];
                for i in 0..n {
                    let k = ids[i * m + j] as usize;
                    let (rj, xj) = (&r[i * dim + j * dsub..][..dsub], &x[i * dim + j * dsub..][..dsub]);
                    let w = f64::from(weights[i]);
                    let q = f64::from(s[i] - p[i * m + j])
                        + rj.iter().zip(xj).map(|(&u, &v)| f64::from(u * v)).sum::<f64>();
                    count[k] += 1;
                    let (ak, bk) = (&mut a[k * dsub * dsub..][..dsub * dsub], &mut b[k * dsub..][..dsub]);
                    for u in 0..dsub {
                        bk[u] += f64::from(rj[u]) + w * q * f64::from(xj[u]);
                        for v in 0..dsub {
                            ak[u * dsub + v] += w * f64::from(xj[u]) * f64::from(xj[v]);
                        }
                    }
                }
                for k in 0..ksub {
                    if count[k] == 0 {
                        continue;
                    }
                    let ak = &mut a[k * dsub * dsub..][..dsub * dsub];
                    for u in 0..dsub {
                        ak[u * dsub + u] += count[k] as f64;
                    }
                    if let Some(c) = solve_spd(ak, &b[k * dsub..][..dsub], dsub)
                        && c.iter().all(|v| v.is_finite())
                    {
                        for (dst, v) in books[(j * ksub + k) * dsub..][..dsub].iter_mut().zip(&c) {
                            *dst = *v as f32;
                        }
                    }
                }
                // The rows' shares of sub-space j under the updated centroids.
                for i in 0..n {
                    let k = ids[i * m + j] as usize;
                    let c = &books[(j * ksub + k) * dsub..][..dsub];
                    let pj = dot_diff(&r[i * dim + j * dsub..][..dsub], c, &x[i * dim + j * dsub..][..dsub]);
                    s[i] += pj - p[i * m + j];
                    p[i * m + j] = pj;
                }
            }
            self.set_centroids(books)?;
        }
        Ok(())
    }
}

#[inline]
fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// `⟨r − c, x⟩`.
#[inline]
fn dot_diff(r: &[f32], c: &[f32], x: &[f32]) -> f32 {
    r.iter().zip(c).zip(x).map(|((r, c), x)| (r - c) * x).sum()
}

/// Solves `a · c = b` for a symmetric positive definite `a` (`n × n`, row-major) by Cholesky;
/// `None` if it is not positive definite.
fn solve_spd(a: &[f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = a[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut y = vec![0f64; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>()) / l[i * n + i];
    }
    let mut c = vec![0f64; n];
    for i in (0..n).rev() {
        c[i] = (y[i] - (i + 1..n).map(|k| l[k * n + i] * c[k]).sum::<f64>()) / l[i * n + i];
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use vq_distance::Metric;

    use super::*;
    use crate::{FlatCodes, PqParams, Quantizer};

    /// Unit vectors around 40 random directions (spread 0.6 per component before normalizing).
    fn unit_clusters(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut state = 0x2545_f491_4f6c_dd1du64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut gauss = move || {
            // Sum of uniforms: close enough to Gaussian for test data.
            (0..4)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .sum::<f32>()
        };
        let centres: Vec<f32> = (0..40 * dim).map(|_| gauss()).collect();
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = &centres[(i * 7 % 40) * dim..][..dim];
            let row: Vec<f32> = c.iter().map(|&v| v + 0.6 * gauss()).collect();
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            out.extend(row.iter().map(|v| v / norm));
        }
        out
    }

    fn loss(pq: &ProductQuantizer, r: &[f32], x: &[f32], w: f32, code: &[u8]) -> f32 {
        let mut rec = vec![0f32; r.len()];
        pq.decode(code, &mut rec).unwrap();
        let err: Vec<f32> = r.iter().zip(&rec).map(|(a, b)| a - b).collect();
        let par: f32 = err.iter().zip(x).map(|(e, x)| e * x).sum();
        err.iter().map(|e| e * e).sum::<f32>() + w * par * par
    }

    /// The slow twin of the assignment: with weight 0 it is the nearest-centroid encoding, and
    /// with a weight its codes never score a higher score-aware loss than the plain codes
    /// (coordinate descent from the plain optimum only goes down).
    #[test]
    fn assignment_never_loses_to_the_plain_codes() {
        let dim = 32;
        let data = unit_clusters(1500, dim, 1);
        let mut pq = ProductQuantizer::with_params(
            dim,
            Metric::InnerProduct,
            PqParams { iterations: 5, ..PqParams::new(16, 4) },
        )
        .unwrap();
        pq.train(&data).unwrap();
        let cs = pq.code_size();
        let mut plain = vec![0u8; 1500 * cs];
        pq.encode(&data, &mut plain).unwrap();
        let mut zero = vec![0u8; 1500 * cs];
        pq.encode_aniso_prepared(&data, &data, 0.0, &mut zero).unwrap();
        assert_eq!(zero, plain, "threshold 0: the plain loss, the plain codes");
        let mut aniso = vec![0u8; 1500 * cs];
        pq.encode_aniso_prepared(&data, &data, 0.2, &mut aniso).unwrap();
        let w = parallel_weight(&data[..dim], 0.2);
        // d = 32, T = 0.2, unit norm: η = 31 · 0.04 / 0.96.
        assert!((w - (31.0 * 0.04 / 0.96 - 1.0)).abs() < 1e-4, "{w}");
        let mut fewer = 0;
        for i in 0..1500 {
            let (x, a, p) = (&data[i * dim..][..dim], &aniso[i * cs..][..cs], &plain[i * cs..][..cs]);
            let (la, lp) = (loss(&pq, x, x, w, a), loss(&pq, x, x, w, p));
            assert!(la <= lp * (1.0 + 1e-5) + 1e-7, "row {i}: {la} > {lp}");
            fewer += usize::from(la < lp * 0.999);
        }
        assert!(fewer > 100, "the score-aware codes differ and do better on many rows ({fewer})");
        assert_eq!(parallel_weight(&[0.1, 0.1], 0.2), 0.0, "‖x‖ ≤ T: the plain loss");
        assert!(pq.encode_aniso_prepared(&data, &data[..dim], 0.2, &mut aniso).is_err());
    }

    /// The paper's claim, as a test that can fail: on unit vectors, maximum-inner-product
    /// recall@10 over the codes is higher with the score-aware loss than with plain PQ of the
    /// same size (same m, same bits, same training data).
    #[test]
    fn score_aware_codes_rank_inner_products_better() {
        let dim = 128;
        let base = unit_clusters(6000, dim, 2);
        let queries = unit_clusters(100, dim, 3);
        let truth = vq_distance::knn_exact(&base, &queries, dim, 10, Metric::InnerProduct).unwrap();
        let recall = |threshold: Option<f32>| {
            let params = PqParams { iterations: 10, anisotropic_threshold: threshold, ..PqParams::new(64, 4) };
            let mut index = FlatCodes::new(ProductQuantizer::with_params(dim, Metric::InnerProduct, params).unwrap());
            index.train(&base).unwrap();
            index.add(&base).unwrap();
            let hits = index.search(&queries, 10).unwrap();
            let found: usize = hits
                .iter()
                .zip(truth.iter())
                .map(|((h, _), (t, _))| h.iter().filter(|id| t.contains(id)).count())
                .sum();
            found as f64 / 1000.0
        };
        let (plain, aware) = (recall(None), recall(Some(0.2)));
        assert!(aware > plain + 0.01, "score-aware recall@10 {aware} vs plain {plain}");
    }
}
