//! [`FastScanCodes`]: the exhaustive search over 4-bit PQ codes in the fast-scan layout
//! (Faiss' `IndexPQFastScan`, factory string `PQ{m}x4fs`).

use rayon::prelude::*;
use vq_distance::{Neighbors, RangeResult, TopK};
use vq_io::{ContainerReader, ContainerWriter};

use super::{PackedCodes, QuantizedLut};
use crate::sections::corrupt;
use crate::{Error, ProductQuantizer, Quantizer, Result, ScanSink, WithinKey, validate_codes};

/// Layout version of the `{prefix}.codes` section (standard PQ codes, repacked on load).
const CODES_VERSION: u32 = 1;

/// A 4-bit product quantizer and the codes of every vector added, packed for the fast scan.
///
/// Ids are the insertion positions `0..len()`. Scores come from the query's table quantized
/// to bytes ([`QuantizedLut`]): within [`QuantizedLut::max_error`] of the float asymmetric
/// distance, so near-ties may order differently than [`FlatCodes`](crate::FlatCodes) over the
/// same quantizer would. Put a refine stage above it for exact final scores.
#[derive(Debug, Clone)]
pub struct FastScanCodes {
    pq: ProductQuantizer,
    packed: PackedCodes,
}

impl FastScanCodes {
    /// An empty index over `pq`, which must have 4-bit sub-quantizers (trained or not).
    pub fn new(pq: ProductQuantizer) -> Result<Self> {
        if pq.nbits() != 4 {
            return Err(Error::Parameter {
                name: "nbits",
                what: format!("fast scan takes 4-bit sub-quantizers, not {}", pq.nbits()),
            });
        }
        let packed = PackedCodes::new(pq.m())?;
        Ok(FastScanCodes { pq, packed })
    }

    /// The quantizer.
    pub fn quantizer(&self) -> &ProductQuantizer {
        &self.pq
    }

    /// The packed codes.
    pub fn packed(&self) -> &PackedCodes {
        &self.packed
    }

    /// Number of vectors added.
    pub fn len(&self) -> usize {
        self.packed.len()
    }

    /// `true` if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.packed.is_empty()
    }

    /// Decodes row `row` into `out` (`dim` values); a row past the end is
    /// [`Error::Parameter`].
    pub fn decode_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        let code = self
            .packed
            .code(row)
            .ok_or_else(|| Error::Parameter { name: "row", what: format!("row {row} of {}", self.len()) })?;
        self.pq.decode(&code, out)
    }

    /// Trains the quantizer on `sample` (row-major); codes already added are dropped.
    pub fn train(&mut self, sample: &[f32]) -> Result<()> {
        self.pq.train(sample)?;
        self.packed = PackedCodes::new(self.pq.m())?;
        Ok(())
    }

    /// Makes room for `additional` more vectors.
    pub fn reserve(&mut self, additional: usize) {
        self.packed.reserve(additional);
    }

    /// Encodes and appends `vectors` (row-major); their ids continue from `len()`. On error
    /// nothing is added.
    pub fn add(&mut self, vectors: &[f32]) -> Result<()> {
        let dim = self.pq.dim();
        if !vectors.len().is_multiple_of(dim) {
            return Err(Error::Input(vq_distance::Error::RaggedBuffer { what: "vectors", len: vectors.len(), dim }));
        }
        let mut codes = vec![0u8; vectors.len() / dim * self.pq.code_size()];
        self.pq.encode(vectors, &mut codes)?;
        self.packed.extend(&codes)
    }

    /// The `k` best codes for each query, best first, as `(id, score)` in the metric's
    /// convention (see the type's docs for the scores' precision). Parallel over queries.
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Neighbors> {
        self.search_filtered(queries, k, None)
    }

    /// [`search`](FastScanCodes::search) among the rows `keep` accepts (rows are the ids).
    pub fn search_filtered(
        &self,
        queries: &[f32],
        k: usize,
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Result<Neighbors> {
        if k == 0 {
            return Err(Error::Input(vq_distance::Error::ZeroK));
        }
        let rows = self.scan_queries(queries, keep, || TopK::new(k.min(self.len())))?;
        Ok(Neighbors::from_rows(k, self.pq.metric(), rows)?)
    }

    /// Every row within `radius` of each query (`Metric::within`) among those `keep` accepts,
    /// by the scores [`search`](FastScanCodes::search) ranks by: one scan, whose integer
    /// threshold is the radius'. Rows are the ids.
    pub fn range_filtered(
        &self,
        queries: &[f32],
        radius: f32,
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Result<RangeResult> {
        vq_distance::check_radius(radius)?;
        let metric = self.pq.metric();
        let max_key = metric.key_from_score(radius);
        let rows = self.scan_queries(queries, keep, || WithinKey::new(max_key))?;
        Ok(RangeResult::from_rows(metric, rows)?)
    }

    /// Every query of `queries` scanned into a sink from `sink`, in parallel: their hits. An
    /// empty store answers empty rows without looking at the queries.
    fn scan_queries<S: ScanSink>(
        &self,
        queries: &[f32],
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
        sink: impl Fn() -> S + Sync,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let dim = self.pq.dim();
        if !queries.len().is_multiple_of(dim) {
            return Err(Error::Input(vq_distance::Error::RaggedBuffer { what: "queries", len: queries.len(), dim }));
        }
        let metric = self.pq.metric();
        queries
            .par_chunks_exact(dim)
            .map(|query| {
                if self.packed.is_empty() {
                    return Ok(Vec::new());
                }
                // The scorer checks (and, for cosine, normalizes) the query.
                let scorer = self.pq.scorer(query)?;
                let lut = QuantizedLut::new(scorer.table())?;
                let mut found = sink();
                self.packed.scan(&lut, &mut found, keep.map(|f| f as &dyn Fn(usize) -> bool), |row| row as u64)?;
                Ok(found.into_hits(metric))
            })
            .collect()
    }

    /// Drops every row whose position `keep` rejects, keeping the others in order; returns how
    /// many were dropped.
    pub fn retain(&mut self, keep: impl FnMut(usize) -> bool) -> usize {
        self.packed.retain(keep)
    }

    /// Writes the quantizer (`{prefix}.quantizer.*`) and the codes as standard 4-bit PQ codes
    /// (`{prefix}.codes`, the layout `FlatCodes` writes: the packing is a memory layout, not a
    /// file format).
    pub fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.pq.write_sections(w, &format!("{prefix}.quantizer"))?;
        w.add_array(&format!("{prefix}.codes"), CODES_VERSION, &self.packed.unpack_all())?;
        Ok(())
    }

    /// Reads what [`write_sections`](FastScanCodes::write_sections) wrote: the codes must be
    /// whole codes that decode to finite vectors, then they are packed.
    pub fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        let name = format!("{prefix}.codes");
        let pq = ProductQuantizer::read_sections(r, &format!("{prefix}.quantizer"))?;
        r.check_versions(&[(&name, CODES_VERSION)])?;
        let codes: &[u8] = r.array(&name)?;
        let mut index = FastScanCodes::new(pq).map_err(|e| corrupt(&name, e.to_string()))?;
        validate_codes(&index.pq, codes, &name)?;
        index.packed.extend(codes)?;
        Ok(index)
    }

    /// Bytes held: the packed codes (capacity included) and the quantizer's parameters.
    pub fn memory_usage(&self) -> usize {
        self.packed.memory_bytes() + self.pq.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use vq_distance::Metric;

    use super::*;
    use crate::{CodeScorer, FlatCodes};

    fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n * dim)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let centre = ((i / dim) % 7) as f32 * 3.0;
                centre + (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    /// Against its slow twin, FlatCodes over the same trained quantizer: the fast scan's
    /// scores are within the table's quantization bound of the float scores of the same ids,
    /// and its top-10 holds the float top-10 up to that bound (anything it misses scores within
    /// twice the bound of the last kept).
    #[test]
    fn results_match_the_float_scan_within_the_quantization_bound() {
        let (dim, m) = (16, 8);
        let train = data(600, dim, 1);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let mut pq = ProductQuantizer::with_params(
                dim,
                metric,
                crate::PqParams { iterations: 5, ..crate::PqParams::new(m, 4) },
            )
            .unwrap();
            pq.train(&train).unwrap();
            let mut fast = FastScanCodes::new(pq.clone()).unwrap();
            let mut slow = FlatCodes::new(pq.clone());
            let base = data(1000, dim, 2);
            fast.add(&base).unwrap();
            slow.add(&base).unwrap();
            assert_eq!(fast.len(), 1000);
            let queries = data(5, dim, 3);
            let (got, want) = (fast.search(&queries, 10).unwrap(), slow.search(&queries, 10).unwrap());
            for (q, ((ids, scores), (wids, wscores))) in queries.chunks_exact(dim).zip(got.iter().zip(want.iter())) {
                let scorer = pq.scorer(q).unwrap();
                let bound = QuantizedLut::new(scorer.table()).unwrap().max_error() * 1.001 + 1e-4;
                let codes = slow.codes();
                for (&id, &score) in ids.iter().zip(scores) {
                    let key = scorer.distance(&codes[id as usize * pq.code_size()..][..pq.code_size()]);
                    assert!((metric.key_from_score(score) - key).abs() <= bound, "{metric:?}: id {id}");
                }
                let last = metric.key_from_score(wscores[9]);
                for (&id, &score) in wids.iter().zip(wscores) {
                    assert!(
                        ids.contains(&id) || metric.key_from_score(score) >= last - 2.0 * bound,
                        "{metric:?}: missed {id}"
                    );
                }
            }
            // Filtered: only the passing rows; retain keeps order; persistence round-trips.
            let odd = |row: usize| row % 2 == 1;
            let f = fast.search_filtered(&queries, 10, Some(&odd)).unwrap();
            assert!(f.ids().iter().all(|&id| id % 2 == 1));
            let mut kept = fast.clone();
            assert_eq!(kept.retain(|row| row >= 500), 500);
            assert_eq!(kept.packed().unpack_all(), fast.packed().unpack_all()[500 * pq.code_size()..]);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("fs.vq");
            let mut w = ContainerWriter::create(&path).unwrap();
            fast.write_sections(&mut w, "fs").unwrap();
            w.finish().unwrap();
            let back = FastScanCodes::read_sections(&ContainerReader::open(&path).unwrap(), "fs").unwrap();
            assert_eq!(back.search(&queries, 10).unwrap(), got);
        }
    }

    #[test]
    fn misuse_is_a_typed_error() {
        let pq8 = ProductQuantizer::new(16, Metric::L2, 4, 8).unwrap();
        assert!(matches!(FastScanCodes::new(pq8), Err(Error::Parameter { name: "nbits", .. })));
        let mut fast = FastScanCodes::new(ProductQuantizer::new(16, Metric::L2, 4, 4).unwrap()).unwrap();
        assert!(matches!(fast.add(&[0.0; 16]), Err(Error::NotTrained { .. })));
        assert_eq!(fast.len(), 0);
        fast.train(&data(300, 16, 4)).unwrap();
        let empty = fast.search(&[0.5; 16], 3).unwrap();
        assert!(empty.ids().iter().all(|&id| id == u64::MAX), "an empty index pads");
        fast.add(&data(2, 16, 5)).unwrap();
        assert!(matches!(fast.search(&[0.5; 16], 0), Err(Error::Input(vq_distance::Error::ZeroK))));
        assert!(fast.search(&[0.5; 15], 3).is_err());
        assert!(fast.search(&[f32::NAN; 16], 3).is_err());
        assert_eq!(fast.search(&[0.5; 16], 5).unwrap().get(0).unwrap().0.len(), 2, "k above the count");
        assert!(matches!(fast.decode_row(2, &mut [0.0; 16]), Err(Error::Parameter { name: "row", .. })));
    }

    /// A row decodes to what the plain layout's same code decodes to (the block interleaving
    /// undone), for rows on both sides of a 32-row block boundary.
    #[test]
    fn decode_row_equals_the_plain_codes_decoding() {
        let dim = 16;
        let x = data(70, dim, 6);
        let mut pq = ProductQuantizer::new(dim, Metric::L2, 8, 4).unwrap();
        pq.train(&x).unwrap();
        let mut fast = FastScanCodes::new(pq.clone()).unwrap();
        fast.add(&x).unwrap();
        let mut plain = FlatCodes::new(pq);
        plain.add(&x).unwrap();
        let (mut got, mut want) = (vec![0f32; dim], vec![0f32; dim]);
        for row in 0..70 {
            fast.decode_row(row, &mut got).unwrap();
            plain.decode_row(row, &mut want).unwrap();
            assert_eq!(got, want, "row {row}");
        }
    }
}
