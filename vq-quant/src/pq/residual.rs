//! What an inverted file over PQ-coded residuals (IVFADC, Jégou et al. 2011 §IV) needs beyond
//! the plain scorer: the query's inner-product table, and scorers over a table the caller
//! fills per list (Faiss' precomputed-table path of `IndexIVFPQ`).
//!
//! For a vector `x = c + r` coded as `r̂` in list `c`, the squared distance splits as
//! `‖q − c‖² + (‖r̂‖² + 2⟨c, r̂⟩) − 2⟨q, r̂⟩`: the first term comes from the coarse search, the
//! second depends only on the list (precomputed once per index), the third only on the query
//! (one table per query). A list's table is the sum of the last two: `m × 2^nbits` additions
//! instead of a full table build per probed list.

use vq_distance::Metric;

use super::{PqScorer, ProductQuantizer, lut};
use crate::{Error, Result};

impl ProductQuantizer {
    /// Fills `table` (`m × 2^nbits`) with the negated sub-dot-products `−⟨q_j, c_jk⟩` of
    /// `query` (finite, `dim` values, used as given: not normalized) with every centroid,
    /// whatever the quantizer's metric. Fails if untrained or on a length mismatch.
    pub fn inner_product_table(&self, query: &[f32], table: &mut [f32]) -> Result<()> {
        self.check_trained()?;
        if query.len() != self.dim {
            return Err(vq_distance::Error::Dimension { what: "query", got: query.len(), expected: self.dim }.into());
        }
        self.check_table(table)?;
        let (m, dsub, ksub) = (self.params.m, self.dsub, self.ksub);
        lut::build_table(Metric::InnerProduct, query, &self.centroids_t, m, dsub, ksub, table);
        Ok(())
    }

    /// Fills `table` (`m × 2^nbits`) with the squared sub-distances `‖q_j − c_jk‖²` of `query`
    /// (finite, `dim` values, used as given) to every centroid, whatever the quantizer's
    /// metric: the L2 scorer's table without allocating one per query. Fails if untrained or
    /// on a length mismatch.
    pub fn l2_table(&self, query: &[f32], table: &mut [f32]) -> Result<()> {
        self.check_trained()?;
        if query.len() != self.dim {
            return Err(vq_distance::Error::Dimension { what: "query", got: query.len(), expected: self.dim }.into());
        }
        self.check_table(table)?;
        let (m, dsub, ksub) = (self.params.m, self.dsub, self.ksub);
        lut::build_table(Metric::L2, query, &self.centroids_t, m, dsub, ksub, table);
        Ok(())
    }

    /// A scorer whose look-up table is `table` (`m × 2^nbits` keys, row `j` for sub-quantizer
    /// `j`), for tables the caller builds ([`PqScorer::table_mut`] rewrites it per list).
    pub fn scorer_with_table(&self, table: Vec<f32>) -> Result<PqScorer<'_>> {
        self.check_trained()?;
        self.check_table(&table)?;
        Ok(PqScorer { pq: self, table })
    }

    fn check_table(&self, table: &[f32]) -> Result<()> {
        let expected = self.params.m * self.ksub;
        if table.len() != expected {
            return Err(Error::Parameter {
                name: "table",
                what: format!("{} keys, expected m × 2^nbits = {expected}", table.len()),
            });
        }
        Ok(())
    }
}

impl PqScorer<'_> {
    /// The look-up table, to rewrite in place (its length is fixed).
    pub fn table_mut(&mut self) -> &mut [f32] {
        &mut self.table
    }

    /// Sets the table to `a + b`, entry by entry (two `m × 2^nbits` tables; vectorized at the
    /// process' SIMD level). Fails on a length mismatch.
    pub fn set_table_sum(&mut self, a: &[f32], b: &[f32]) -> Result<()> {
        self.pq.check_table(a)?;
        self.pq.check_table(b)?;
        lut::add_tables(a, b, &mut self.table);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{CodeScorer, Quantizer};

    use super::*;

    #[test]
    fn split_distance_equals_the_l2_scorer_on_the_residual() {
        let (dim, n) = (8, 600);
        let x: Vec<f32> = (0..n * dim).map(|i| ((i * 7919) % 211) as f32 / 21.0).collect();
        let mut pq = ProductQuantizer::new(dim, Metric::L2, 4, 6).unwrap();
        pq.train(&x).unwrap();
        let mut codes = vec![0u8; n * pq.code_size()];
        pq.encode(&x, &mut codes).unwrap();
        let (q, c) = (&x[dim..2 * dim], &x[5 * dim..6 * dim]);
        let residual: Vec<f32> = q.iter().zip(c).map(|(a, b)| a - b).collect();
        let direct = pq.scorer(&residual).unwrap();
        // Σ_j ‖r̂_j‖² + 2⟨c_j, r̂_j⟩ − 2⟨q_j, r̂_j⟩, plus ‖q − c‖².
        let mut ip = vec![0f32; 4 * 64];
        pq.inner_product_table(q, &mut ip).unwrap();
        let mut cterm = vec![0f32; 4 * 64];
        pq.inner_product_table(c, &mut cterm).unwrap();
        let books = pq.centroids();
        let table: Vec<f32> = (0..4 * 64)
            .map(|t| {
                let cent = &books[t * 2..t * 2 + 2];
                cent.iter().map(|v| v * v).sum::<f32>() - 2.0 * cterm[t] + 2.0 * ip[t]
            })
            .collect();
        let split = pq.scorer_with_table(table).unwrap();
        let qc: f32 = residual.iter().map(|v| v * v).sum();
        for code in codes.chunks_exact(pq.code_size()).take(50) {
            let (a, b) = (direct.distance(code), split.distance(code) + qc);
            assert!((a - b).abs() <= 1e-3 * a.max(1.0), "{a} vs {b}");
        }
        assert!(pq.scorer_with_table(vec![0.0; 3]).is_err());
        // The same table as two halves, summed: the same keys.
        let (half, rest): (Vec<f32>, Vec<f32>) = split.table().iter().map(|v| (v * 0.375, v - v * 0.375)).unzip();
        let mut summed = pq.scorer_with_table(vec![0f32; 4 * 64]).unwrap();
        summed.set_table_sum(&half, &rest).unwrap();
        let mut by_sum = vec![0f32; 7];
        summed.distances(&codes, &mut by_sum);
        assert!(
            by_sum
                .iter()
                .zip(codes.chunks_exact(pq.code_size()))
                .all(|(k, c)| (k - split.distance(c)).abs() <= 1e-3 * k.abs().max(1.0))
        );
        assert!(summed.set_table_sum(&half, &rest[1..]).is_err());
        // The L2 table into a caller's buffer is the scorer's table (an IP quantizer too).
        let mut l2 = vec![0f32; 4 * 64];
        pq.l2_table(&residual, &mut l2).unwrap();
        assert_eq!(l2, direct.table());
        let mut ipq = ProductQuantizer::new(dim, Metric::InnerProduct, 4, 6).unwrap();
        ipq.set_centroids(books.to_vec()).unwrap();
        ipq.l2_table(&residual, &mut l2).unwrap();
        assert_eq!(l2, direct.table());
        assert!(pq.l2_table(&residual[1..], &mut l2).is_err());
        assert!(pq.l2_table(&residual, &mut l2[1..]).is_err());
    }
}
