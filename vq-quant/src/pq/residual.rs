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

    /// The key [`distance`](crate::CodeScorer::distance) gives `code` after
    /// [`set_table_sum(a, b)`](PqScorer::set_table_sum), to the bit, without building the table
    /// (this scorer's own table is not read): `m` look-ups in each of `a` and `b` instead of
    /// `m × 2^nbits` sums, for a list of which only a few codes are scored. NaN for a short
    /// code or a table of the wrong length, as `distance` gives for a short code.
    pub fn distance_with_table_sum(&self, a: &[f32], b: &[f32], code: &[u8]) -> f32 {
        if code.len() < self.pq.code_size || self.pq.check_table(a).is_err() || self.pq.check_table(b).is_err() {
            return f32::NAN;
        }
        lut::one_sum(a, b, self.pq.params.m, self.pq.params.nbits, code)
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// A code's key over `a + b` without the table equals the block and single-code
        /// kernels' keys over the summed table, to the bit, for every id width and odd or even
        /// `m` (tables of mixed magnitudes, so a different order of sums would show).
        #[test]
        fn keys_without_the_table_equal_the_kernels_over_it(
            nbits in 4u32..=8,
            m in proptest::sample::select(vec![1usize, 2, 3, 5, 8, 9, 16, 17]),
            seed in proptest::prelude::any::<u64>(),
        ) {
            let ksub = 1usize << nbits;
            let mut pq = ProductQuantizer::new(m, Metric::L2, m, nbits).unwrap();
            pq.set_centroids(vec![0.5; m * ksub]).unwrap();
            let mut s = seed | 1;
            let mut next = || {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * if s % 3 == 0 { 1e4 } else { 1.0 }
            };
            let a: Vec<f32> = (0..m * ksub).map(|_| next()).collect();
            let b: Vec<f32> = (0..m * ksub).map(|_| next()).collect();
            let n = 11;
            let codes: Vec<u8> = (0..n * pq.code_size()).map(|_| (next() * 1e3) as i64 as u8).collect();
            let mut summed = pq.scorer_with_table(vec![0f32; m * ksub]).unwrap();
            summed.set_table_sum(&a, &b).unwrap();
            let mut block = vec![0f32; n];
            summed.distances(&codes, &mut block);
            for (code, &k) in codes.chunks_exact(pq.code_size()).zip(&block) {
                let direct = summed.distance_with_table_sum(&a, &b, code);
                proptest::prop_assert_eq!(direct.to_bits(), k.to_bits());
                proptest::prop_assert_eq!(direct.to_bits(), summed.distance(code).to_bits());
            }
            let code = &codes[..pq.code_size()];
            proptest::prop_assert!(summed.distance_with_table_sum(&a[1..], &b, code).is_nan());
            proptest::prop_assert!(summed.distance_with_table_sum(&a, &b, &code[..pq.code_size() - 1]).is_nan());
        }
    }
}
