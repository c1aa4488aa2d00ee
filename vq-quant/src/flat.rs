//! Exhaustive search over a buffer of codes: Faiss' `IndexScalarQuantizer` and `IndexPQ`.

use rayon::prelude::*;
use vq_distance::{Neighbors, RangeResult, TopK};
use vq_io::{ContainerReader, ContainerWriter};

use crate::sections::corrupt;
use crate::{CodeScorer, Error, Quantizer, Result, ScanSink, WithinKey, prepare_rows, validate_codes};

/// Codes scored per call of [`CodeScorer::distances`]: large enough to amortize the call and
/// let a blocked kernel run, small enough that the keys stay in L1.
const BLOCK: usize = 256;

/// Per-worker buffers of a search.
#[derive(Default)]
struct Scratch {
    /// Keys of one block.
    keys: Vec<f32>,
    /// Rows gathered for a filtered block, and their codes.
    rows: Vec<usize>,
    gathered: Vec<u8>,
}

/// Layout version of the `{prefix}.codes` section.
const CODES_VERSION: u32 = 1;

/// A quantizer and the codes of every vector added, searched by scanning all codes.
///
/// Ids are the insertion positions `0..len()`.
#[derive(Debug, Clone)]
pub struct FlatCodes<Q> {
    quantizer: Q,
    codes: Vec<u8>,
}

impl<Q: Quantizer> FlatCodes<Q> {
    /// An empty index over `quantizer` (trained or not).
    pub fn new(quantizer: Q) -> Self {
        FlatCodes { quantizer, codes: Vec::new() }
    }

    /// The quantizer.
    pub fn quantizer(&self) -> &Q {
        &self.quantizer
    }

    /// The codes, `len() * code_size()` bytes in insertion order.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// Number of vectors added.
    pub fn len(&self) -> usize {
        self.codes.len().checked_div(self.quantizer.code_size()).unwrap_or(0)
    }

    /// `true` if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Decodes row `row` into `out` (`dim` values): the vector its code stands for (for a
    /// cosine quantizer, the decoding of the normalized vector). A row past the end is
    /// [`Error::Parameter`].
    pub fn decode_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        if row >= self.len() {
            return Err(Error::Parameter { name: "row", what: format!("row {row} of {}", self.len()) });
        }
        let cs = self.quantizer.code_size();
        self.quantizer.decode(&self.codes[row * cs..(row + 1) * cs], out)
    }

    /// Trains the quantizer on `sample` (row-major). Codes already added are dropped, since
    /// they were made by the old parameters.
    pub fn train(&mut self, sample: &[f32]) -> Result<()> {
        self.quantizer.train(sample)?;
        self.codes.clear();
        Ok(())
    }

    /// Makes room for `additional` more vectors, exactly: a bulk load that reserves first holds
    /// no spare capacity (which [`memory_usage`](FlatCodes::memory_usage) would count).
    pub fn reserve(&mut self, additional: usize) {
        self.codes.reserve_exact(additional.saturating_mul(self.quantizer.code_size()));
    }

    /// Encodes and appends `vectors` (row-major); their ids continue from `len()`.
    pub fn add(&mut self, vectors: &[f32]) -> Result<()> {
        let dim = self.quantizer.dim();
        if dim == 0 || !vectors.len().is_multiple_of(dim) {
            return Err(Error::Input(vq_distance::Error::RaggedBuffer { what: "vectors", len: vectors.len(), dim }));
        }
        let start = self.codes.len();
        self.codes.resize(start + vectors.len() / dim * self.quantizer.code_size(), 0);
        let result = self.quantizer.encode(vectors, &mut self.codes[start..]);
        if result.is_err() {
            self.codes.truncate(start);
        }
        result
    }

    /// Moves every code of `other` to the end of this buffer, leaving `other` empty: a batch
    /// encoded apart (by a clone of this quantizer, say, while this buffer is being read) and
    /// appended at once. Both must be codes of the same trained quantizer; a different
    /// dimension or code size is an error and moves nothing.
    pub fn append(&mut self, other: &mut FlatCodes<Q>) -> Result<()> {
        let (ours, theirs) = (&self.quantizer, &other.quantizer);
        if ours.dim() != theirs.dim() || ours.code_size() != theirs.code_size() {
            return Err(Error::Parameter {
                name: "other",
                what: format!(
                    "{}-byte codes of dimension {} cannot follow {}-byte codes of dimension {}",
                    theirs.code_size(),
                    theirs.dim(),
                    ours.code_size(),
                    ours.dim()
                ),
            });
        }
        self.codes.append(&mut other.codes);
        Ok(())
    }

    /// The `k` best codes for each query (row-major), best first, as `(id, score)` in the
    /// metric's convention. Fewer than `k` vectors gives every vector; an empty index gives
    /// empty rows. Parallel over queries on the current rayon pool.
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Neighbors> {
        self.search_filtered(queries, k, None)
    }

    /// [`search`](FlatCodes::search) among the rows for which `keep(row)` is `true` (rows are
    /// the positions `0..len()`, which are also the ids in the result). Rows `keep` rejects are
    /// not scored. `keep` is called from several threads at once.
    pub fn search_filtered(
        &self,
        queries: &[f32],
        k: usize,
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Result<Neighbors> {
        if k == 0 {
            return Err(Error::Input(vq_distance::Error::ZeroK));
        }
        let metric = self.quantizer.metric();
        // Validated (and normalized, for cosine) once here; scorers check again per query,
        // which is cheap next to the scan.
        let queries = prepare_rows("queries", queries, self.quantizer.dim(), metric)?.into_cow();
        let rows = self.scan_queries(&queries, keep, || TopK::new(k))?;
        Ok(Neighbors::from_rows(k, metric, rows)?)
    }

    /// Every row within `radius` of each query (`Metric::within`: squared L2 below it,
    /// inner product or cosine above it) among those `keep` accepts, scored as
    /// [`search`](FlatCodes::search) scores them: one scan of the codes. Rows are the ids.
    pub fn range_filtered(
        &self,
        queries: &[f32],
        radius: f32,
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Result<RangeResult> {
        vq_distance::check_radius(radius)?;
        let metric = self.quantizer.metric();
        let queries = prepare_rows("queries", queries, self.quantizer.dim(), metric)?.into_cow();
        let max_key = metric.key_from_score(radius);
        let rows = self.scan_queries(&queries, keep, || WithinKey::new(max_key))?;
        Ok(RangeResult::from_rows(metric, rows)?)
    }

    /// Every query (prepared) scanned into a sink from `sink`, in parallel: their hits.
    fn scan_queries<S: ScanSink>(
        &self,
        queries: &[f32],
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
        sink: impl Fn() -> S + Sync,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let metric = self.quantizer.metric();
        queries
            .par_chunks(self.quantizer.dim())
            .map_init(Scratch::default, |scratch, query| {
                let mut found = sink();
                self.scan_one(query, keep, scratch, &mut found)?;
                Ok(found.into_hits(metric))
            })
            .collect()
    }

    /// Scores every row `keep` accepts into `sink`.
    fn scan_one(
        &self,
        query: &[f32],
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
        scratch: &mut Scratch,
        top: &mut impl ScanSink,
    ) -> Result<()> {
        let size = self.quantizer.code_size();
        if self.codes.is_empty() {
            return Ok(());
        }
        let scorer = self.quantizer.scorer(query)?;
        let Scratch { keys, rows, gathered } = scratch;
        keys.resize(BLOCK, 0.0);
        match keep {
            None => {
                for (block, codes) in self.codes.chunks(BLOCK * size).enumerate() {
                    let keys = &mut keys[..codes.len() / size];
                    scorer.distances_within(codes, keys, top.threshold());
                    for (i, &key) in keys.iter().enumerate() {
                        top.push(key, (block * BLOCK + i) as u64);
                    }
                }
            }
            // Only the rows that pass are scored (a selective filter costs a fraction of the
            // scan), gathered into blocks for the same blocked kernel as the unfiltered scan:
            // a row's key must not depend on the filter (per-code and blocked kernels may
            // round differently).
            Some(keep) => {
                rows.clear();
                gathered.clear();
                let mut flush = |rows: &mut Vec<usize>, gathered: &mut Vec<u8>| {
                    let keys = &mut keys[..rows.len()];
                    scorer.distances_within(gathered, keys, top.threshold());
                    for (&row, &key) in rows.iter().zip(keys.iter()) {
                        top.push(key, row as u64);
                    }
                    rows.clear();
                    gathered.clear();
                };
                for (row, code) in self.codes.chunks_exact(size).enumerate() {
                    if keep(row) {
                        rows.push(row);
                        gathered.extend_from_slice(code);
                        if rows.len() == BLOCK {
                            flush(rows, gathered);
                        }
                    }
                }
                flush(rows, gathered);
            }
        }
        Ok(())
    }

    /// Drops every row whose position `keep` rejects, keeping the others in order (so the
    /// rows after a dropped one move down); returns how many were dropped. `keep` sees each
    /// position `0..len()` once, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) -> usize {
        let size = self.quantizer.code_size();
        let n = self.len();
        let mut write = 0;
        for row in 0..n {
            if keep(row) {
                if write != row {
                    self.codes.copy_within(row * size..(row + 1) * size, write * size);
                }
                write += 1;
            }
        }
        self.codes.truncate(write * size);
        n - write
    }

    /// Writes the quantizer (sections `{prefix}.quantizer.*`) and the codes (`{prefix}.codes`,
    /// a byte array in row order).
    pub fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.quantizer.write_sections(w, &format!("{prefix}.quantizer"))?;
        w.add_array(&format!("{prefix}.codes"), CODES_VERSION, &self.codes)?;
        Ok(())
    }

    /// Reads what [`write_sections`](FlatCodes::write_sections) wrote under `prefix`. The codes
    /// must be whole codes of the quantizer and decode to finite vectors
    /// ([`validate_codes`]), checked once they are read (into a vector the size of the
    /// section).
    pub fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        let name = format!("{prefix}.codes");
        let quantizer = Q::read_sections(r, &format!("{prefix}.quantizer"))?;
        r.check_versions(&[(&name, CODES_VERSION)])?;
        if r.array_len::<u8>(&name)? > 0 && !quantizer.is_trained() {
            return Err(corrupt(&name, format!("codes saved for an untrained {}", quantizer.name())));
        }
        let codes: Vec<u8> = r.array_vec(&name)?;
        validate_codes(&quantizer, &codes, &name)?;
        Ok(FlatCodes { quantizer, codes })
    }

    /// Bytes held: the code buffer as allocated (spare capacity included) plus the quantizer's
    /// trained parameters.
    pub fn memory_usage(&self) -> usize {
        self.codes.capacity() + self.quantizer.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use vq_distance::Metric;

    use super::*;
    use crate::{ScalarQuantizer, SqType};

    fn sq8(dim: usize) -> ScalarQuantizer {
        ScalarQuantizer::new(dim, Metric::L2, SqType::SQ8).unwrap()
    }

    #[test]
    fn untrained_empty_and_small_indexes_behave() {
        let dim = 4;
        let data: Vec<f32> = (0..40).map(|i| (i * 7 % 13) as f32).collect();
        let mut index = FlatCodes::new(sq8(dim));
        assert!(matches!(index.add(&data), Err(Error::NotTrained { .. })));
        assert_eq!(index.len(), 0, "a failed add leaves nothing behind");
        index.train(&data).unwrap();
        let empty = index.search(&data[..dim], 3).unwrap();
        assert_eq!(empty.get(0).unwrap().0.len(), 0, "an empty index answers with empty rows");
        assert!(matches!(index.search(&data[..dim], 0), Err(Error::Input(vq_distance::Error::ZeroK))));
        index.add(&data[..3 * dim]).unwrap();
        let hits = index.search(&data[..dim], 10).unwrap();
        let (ids, scores) = hits.get(0).unwrap();
        assert_eq!(ids.len(), 3, "k above the count gives every vector");
        assert_eq!(ids[0], 0);
        assert!(scores.windows(2).all(|w| w[0] <= w[1]), "best first");
    }

    #[test]
    fn a_batch_encoded_apart_appends_as_if_added() {
        let dim = 4;
        let data: Vec<f32> = (0..80).map(|i| (i * 7 % 13) as f32 - 3.0).collect();
        let mut whole = FlatCodes::new(sq8(dim));
        whole.train(&data).unwrap();
        let mut parts = whole.clone();
        whole.add(&data).unwrap();
        parts.add(&data[..8 * dim]).unwrap();
        let mut batch = FlatCodes::new(parts.quantizer().clone());
        batch.add(&data[8 * dim..]).unwrap();
        parts.append(&mut batch).unwrap();
        assert!(batch.is_empty(), "the batch's codes moved");
        assert_eq!(parts.codes(), whole.codes());
        assert_eq!(parts.search(&data[..2 * dim], 5).unwrap(), whole.search(&data[..2 * dim], 5).unwrap());
        let mut wider = FlatCodes::new(sq8(2 * dim));
        wider.train(&data).unwrap();
        wider.add(&data[..2 * dim]).unwrap();
        assert!(matches!(parts.append(&mut wider), Err(Error::Parameter { name: "other", .. })));
        assert_eq!((parts.len(), wider.len()), (20, 1), "a refused append moves nothing");
    }

    #[test]
    fn a_k_too_large_to_pad_is_an_error() {
        let dim = 4;
        let data: Vec<f32> = (0..40).map(|i| (i * 7 % 13) as f32).collect();
        let mut index = FlatCodes::new(sq8(dim));
        index.train(&data).unwrap();
        index.add(&data).unwrap();
        let keep_odd = |row: usize| row % 2 == 1;
        for k in [usize::MAX, 1 << 40] {
            let too_large = |e: Error| matches!(e, Error::Input(vq_distance::Error::ResultTooLarge { queries: 2, k: got }) if got == k);
            assert!(too_large(index.search(&data[..2 * dim], k).unwrap_err()), "k = {k}");
            let filtered = index.search_filtered(&data[..2 * dim], k, Some(&keep_odd));
            assert!(too_large(filtered.unwrap_err()), "filtered, k = {k}");
        }
    }

    #[test]
    fn decode_row_decodes_that_rows_code() {
        let dim = 4;
        let data: Vec<f32> = (0..80).map(|i| (i * 7 % 13) as f32).collect();
        let mut index = FlatCodes::new(sq8(dim));
        index.train(&data).unwrap();
        index.add(&data).unwrap();
        let (mut got, mut want) = (vec![0f32; dim], vec![0f32; dim]);
        for row in 0..index.len() {
            index.decode_row(row, &mut got).unwrap();
            index.quantizer().decode(&index.codes()[row * dim..(row + 1) * dim], &mut want).unwrap();
            assert_eq!(got, want, "row {row}");
            // SQ8 over these small integers is within half a step of the vector.
            let x = &data[row * dim..(row + 1) * dim];
            assert!(got.iter().zip(x).all(|(a, b)| (a - b).abs() <= 0.05), "row {row}: {got:?} vs {x:?}");
        }
        assert!(matches!(index.decode_row(20, &mut got), Err(Error::Parameter { name: "row", .. })));
        assert!(matches!(index.decode_row(usize::MAX, &mut got), Err(Error::Parameter { name: "row", .. })));
    }

    #[test]
    fn memory_is_the_codes_as_allocated_plus_the_quantizer() {
        let dim = 8;
        let data: Vec<f32> = (0..800).map(|i| (i % 29) as f32).collect();
        let mut index = FlatCodes::new(sq8(dim));
        index.train(&data).unwrap();
        index.reserve(100);
        index.add(&data).unwrap();
        assert_eq!(index.len(), 100);
        assert_eq!(index.memory_usage(), 100 * dim + index.quantizer().memory_bytes());
    }
}
