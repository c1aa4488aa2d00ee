//! Exhaustive search over a buffer of codes: Faiss' `IndexScalarQuantizer` and `IndexPQ`.

use std::borrow::Cow;

use rayon::prelude::*;
use vq_distance::{Neighbors, RangeResult, TopK};
use vq_io::{ContainerReader, ContainerWriter};

use crate::sections::corrupt;
use crate::{CodeScorer, Error, Quantizer, Result, ScanSink, WithinKey, prepare_rows, validate_codes};

/// Codes scored per call of [`CodeScorer::distances`]: large enough to amortize the call and
/// let a blocked kernel run, small enough that the keys stay in L1.
const BLOCK: usize = 256;

/// Queries that scan the codes together ([`FlatCodes::search`] of a batch).
const GROUP: usize = 8;

/// Codes below this size are scanned a query at a time: they stay in cache between queries
/// anyway, and switching between the group's tables costs more than it saves (PQ32 on 100,000
/// vectors, 3.2 MB: 6 % slower in groups; SQ8 at d = 128, 12.8 MB: 7 % faster).
const GROUP_MIN_BYTES: usize = 8 << 20;

/// Bytes of codes a group scores before moving on: well within a core's L2 (1–2 MiB on current
/// x86 cores), with room for the queries' tables.
const GROUP_BLOCK_BYTES: usize = 192 << 10;

/// Per-worker buffers of a search.
#[derive(Default)]
struct Scratch {
    /// Keys of one block.
    keys: Vec<f32>,
    /// Rows gathered for a filtered block, and their codes' heads and tails.
    rows: Vec<usize>,
    heads: Vec<u8>,
    tails: Vec<u8>,
}

/// Layout version of the `{prefix}.codes` section.
const CODES_VERSION: u32 = 1;

/// A quantizer and the codes of every vector added, searched by scanning all codes.
///
/// Ids are the insertion positions `0..len()`. Where the quantizer's scan reads a head of
/// every code and the rest only for some ([`Quantizer::scan_head_bytes`]: RaBitQ's multi-bit
/// codes, whose sign bits are a first estimate), the heads and the rest are held in two
/// buffers, so that the scan streams the heads alone; [`codes`](FlatCodes::codes) and the
/// saved section are whole codes either way.
#[derive(Debug, Clone)]
pub struct FlatCodes<Q> {
    quantizer: Q,
    /// The first `head` bytes of each code (all of it, unless the quantizer splits its codes),
    /// in row order.
    heads: Vec<u8>,
    /// The rest of each code, in row order; empty unless the quantizer splits its codes.
    tails: Vec<u8>,
}

impl<Q: Quantizer> FlatCodes<Q> {
    /// An empty index over `quantizer` (trained or not).
    pub fn new(quantizer: Q) -> Self {
        FlatCodes { quantizer, heads: Vec::new(), tails: Vec::new() }
    }

    /// The quantizer.
    pub fn quantizer(&self) -> &Q {
        &self.quantizer
    }

    /// Bytes of each code's head and of its tail (`(code_size, 0)` unless the quantizer splits
    /// its codes).
    fn split(&self) -> (usize, usize) {
        let size = self.quantizer.code_size();
        let head = self.quantizer.scan_head_bytes().filter(|&h| h > 0 && h < size).unwrap_or(size);
        (head, size - head)
    }

    /// The codes, `len() * code_size()` bytes in insertion order (assembled into a copy
    /// where the quantizer splits its codes).
    pub fn codes(&self) -> Cow<'_, [u8]> {
        let (h, t) = self.split();
        if t == 0 {
            return Cow::Borrowed(&self.heads);
        }
        let mut codes = Vec::with_capacity(self.heads.len() + self.tails.len());
        for (head, tail) in self.heads.chunks_exact(h).zip(self.tails.chunks_exact(t)) {
            codes.extend_from_slice(head);
            codes.extend_from_slice(tail);
        }
        Cow::Owned(codes)
    }

    /// The code of `row` (which the caller checked), assembled where it is split.
    fn code(&self, row: usize) -> Cow<'_, [u8]> {
        let (h, t) = self.split();
        let head = &self.heads[row * h..(row + 1) * h];
        if t == 0 {
            return Cow::Borrowed(head);
        }
        Cow::Owned([head, &self.tails[row * t..(row + 1) * t]].concat())
    }

    /// Number of vectors added.
    pub fn len(&self) -> usize {
        self.heads.len().checked_div(self.split().0).unwrap_or(0)
    }

    /// `true` if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// Decodes row `row` into `out` (`dim` values): the vector its code stands for (for a
    /// cosine quantizer, the decoding of the normalized vector). A row past the end is
    /// [`Error::Parameter`].
    pub fn decode_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        if row >= self.len() {
            return Err(Error::Parameter { name: "row", what: format!("row {row} of {}", self.len()) });
        }
        self.quantizer.decode(&self.code(row), out)
    }

    /// Trains the quantizer on `sample` (row-major). Codes already added are dropped, since
    /// they were made by the old parameters.
    pub fn train(&mut self, sample: &[f32]) -> Result<()> {
        self.quantizer.train(sample)?;
        self.heads.clear();
        self.tails.clear();
        Ok(())
    }

    /// Makes room for `additional` more vectors, exactly: a bulk load that reserves first holds
    /// no spare capacity (which [`memory_usage`](FlatCodes::memory_usage) would count). A hint:
    /// dropped when the memory cannot be had.
    pub fn reserve(&mut self, additional: usize) {
        let (h, t) = self.split();
        let _ = self.heads.try_reserve_exact(additional.saturating_mul(h));
        let _ = self.tails.try_reserve_exact(additional.saturating_mul(t));
    }

    /// Encodes and appends `vectors` (row-major); their ids continue from `len()`.
    pub fn add(&mut self, vectors: &[f32]) -> Result<()> {
        let dim = self.quantizer.dim();
        if dim == 0 || !vectors.len().is_multiple_of(dim) {
            return Err(Error::Input(vq_distance::Error::RaggedBuffer { what: "vectors", len: vectors.len(), dim }));
        }
        let (h, t) = self.split();
        let n = vectors.len() / dim;
        if t == 0 {
            let start = self.heads.len();
            self.heads.resize(start + n * h, 0);
            let result = self.quantizer.encode(vectors, &mut self.heads[start..]);
            if result.is_err() {
                self.heads.truncate(start);
            }
            return result;
        }
        let mut codes = vec![0u8; n * (h + t)];
        self.quantizer.encode(vectors, &mut codes)?;
        self.heads.reserve(n * h);
        self.tails.reserve(n * t);
        for code in codes.chunks_exact(h + t) {
            self.heads.extend_from_slice(&code[..h]);
            self.tails.extend_from_slice(&code[h..]);
        }
        Ok(())
    }

    /// Moves every code of `other` to the end of this buffer, leaving `other` empty: a batch
    /// encoded apart (by a clone of this quantizer, say, while this buffer is being read) and
    /// appended at once. Both must be codes of the same trained quantizer; a different
    /// dimension or code size is an error and moves nothing.
    pub fn append(&mut self, other: &mut FlatCodes<Q>) -> Result<()> {
        let (ours, theirs) = (&self.quantizer, &other.quantizer);
        if ours.dim() != theirs.dim() || ours.code_size() != theirs.code_size() || self.split() != other.split() {
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
        self.heads.append(&mut other.heads);
        self.tails.append(&mut other.tails);
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
    ///
    /// The queries of a large index (at least [`GROUP_MIN_BYTES`] of codes) are scanned in
    /// groups of up to [`GROUP`] that walk the codes together, a block of rows at a time, each
    /// query scoring the block while it is in cache: the codes are read from memory once per
    /// group instead of once per query (100,000 codes of 768 bytes are 77 MB, beyond the
    /// last-level cache, so a scan alone is bound by memory bandwidth). Groups are smaller
    /// where there are too few queries to keep every thread busy.
    fn scan_queries<S: ScanSink>(
        &self,
        queries: &[f32],
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
        sink: impl Fn() -> S + Sync,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let (metric, dim) = (self.quantizer.metric(), self.quantizer.dim());
        // (This crate's unit tests group every index, so that small ones exercise groups.)
        let min_bytes = if cfg!(test) { 0 } else { GROUP_MIN_BYTES };
        let group = if self.heads.len() + self.tails.len() < min_bytes {
            1
        } else {
            (queries.len() / dim / rayon::current_num_threads()).clamp(1, GROUP)
        };
        let groups: Vec<Vec<Vec<(u64, f32)>>> = queries
            .par_chunks(group * dim)
            .map_init(Scratch::default, |scratch, queries| {
                let mut found: Vec<S> = (0..queries.len() / dim).map(|_| sink()).collect();
                self.scan_group(queries, keep, scratch, &mut found)?;
                Ok(found.into_iter().map(|f| f.into_hits(metric)).collect())
            })
            .collect::<Result<_>>()?;
        Ok(groups.into_iter().flatten().collect())
    }

    /// Scores every row `keep` accepts into `tops[i]` for each query `i` of `queries`.
    fn scan_group(
        &self,
        queries: &[f32],
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
        scratch: &mut Scratch,
        tops: &mut [impl ScanSink],
    ) -> Result<()> {
        if self.heads.is_empty() {
            return Ok(());
        }
        let (h, t) = self.split();
        let scorers =
            queries.chunks(self.quantizer.dim()).map(|q| self.quantizer.scorer(q)).collect::<Result<Vec<_>>>()?;
        // A block of rows every query of the group scores before the next: within L2 together.
        let block = if scorers.len() == 1 { BLOCK } else { (GROUP_BLOCK_BYTES / (h + t)).clamp(16, BLOCK) };
        let Scratch { keys, rows, heads, tails } = scratch;
        keys.resize(BLOCK, 0.0);
        let mut score = |heads: &[u8], tails: &[u8], row_of: &dyn Fn(usize) -> usize| {
            let keys = &mut keys[..heads.len() / h];
            for (scorer, top) in scorers.iter().zip(tops.iter_mut()) {
                scorer.distances_within(heads, tails, keys, top.threshold());
                for (i, &key) in keys.iter().enumerate() {
                    top.push(key, row_of(i) as u64);
                }
            }
        };
        match keep {
            None => {
                let n = self.len();
                for start in (0..n).step_by(block) {
                    let end = (start + block).min(n);
                    score(&self.heads[start * h..end * h], &self.tails[start * t..end * t], &|i| start + i);
                }
            }
            // Only the rows that pass are scored (a selective filter costs a fraction of the
            // scan), gathered into blocks for the same blocked kernel as the unfiltered scan:
            // a row's key must not depend on the filter (per-code and blocked kernels may
            // round differently). The filter is asked once per row for the whole group.
            Some(keep) => {
                rows.clear();
                heads.clear();
                tails.clear();
                let mut flush = |rows: &mut Vec<usize>, heads: &mut Vec<u8>, tails: &mut Vec<u8>| {
                    score(heads, tails, &|i| rows[i]);
                    rows.clear();
                    heads.clear();
                    tails.clear();
                };
                for row in (0..self.len()).filter(|&row| keep(row)) {
                    rows.push(row);
                    heads.extend_from_slice(&self.heads[row * h..(row + 1) * h]);
                    tails.extend_from_slice(&self.tails[row * t..(row + 1) * t]);
                    if rows.len() == block {
                        flush(rows, heads, tails);
                    }
                }
                flush(rows, heads, tails);
            }
        }
        Ok(())
    }

    /// Drops every row whose position `keep` rejects, keeping the others in order (so the
    /// rows after a dropped one move down); returns how many were dropped. `keep` sees each
    /// position `0..len()` once, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) -> usize {
        let (h, t) = self.split();
        let n = self.len();
        let mut write = 0;
        for row in 0..n {
            if keep(row) {
                if write != row {
                    self.heads.copy_within(row * h..(row + 1) * h, write * h);
                    self.tails.copy_within(row * t..(row + 1) * t, write * t);
                }
                write += 1;
            }
        }
        self.heads.truncate(write * h);
        self.tails.truncate(write * t);
        n - write
    }

    /// Writes the quantizer (sections `{prefix}.quantizer.*`) and the codes (`{prefix}.codes`,
    /// whole codes in row order, however they are held).
    pub fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.quantizer.write_sections(w, &format!("{prefix}.quantizer"))?;
        let (h, t) = self.split();
        let name = format!("{prefix}.codes");
        if t == 0 {
            w.add_array(&name, CODES_VERSION, &self.heads)?;
        } else {
            let rows = self.heads.chunks_exact(h).zip(self.tails.chunks_exact(t));
            w.add_array_parts(&name, CODES_VERSION, rows.flat_map(|(head, tail)| [head, tail]))?;
        }
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
        let mut codes: Vec<u8> = r.array_vec(&name)?;
        validate_codes(&quantizer, &codes, &name)?;
        let mut flat = FlatCodes::new(quantizer);
        let (h, t) = flat.split();
        if t > 0 {
            // The heads to a buffer of their own, the tails moved down in place (each to an
            // offset at or below where it was read).
            flat.heads = Vec::with_capacity(codes.len() / (h + t) * h);
            for code in codes.chunks_exact(h + t) {
                flat.heads.extend_from_slice(&code[..h]);
            }
            for row in 0..codes.len() / (h + t) {
                codes.copy_within(row * (h + t) + h..(row + 1) * (h + t), row * t);
            }
            codes.truncate(flat.heads.len() / h * t);
            codes.shrink_to_fit();
            flat.tails = codes;
        } else {
            flat.heads = codes;
        }
        Ok(flat)
    }

    /// Bytes held: the code buffers as allocated (spare capacity included) plus the
    /// quantizer's trained parameters.
    pub fn memory_usage(&self) -> usize {
        self.heads.capacity() + self.tails.capacity() + self.quantizer.memory_bytes()
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

    /// A store whose quantizer splits its codes (multi-bit RaBitQ: heads and tails in two
    /// buffers) behaves as whole codes do: the codes put together are the encoder's, rows
    /// decode, append and retain keep rows in order, and a retained store answers as a
    /// filtered search of the original does.
    #[test]
    fn split_codes_behave_as_whole_codes() {
        let (dim, n) = (64, 600);
        let data: Vec<f32> = (0..n * dim).map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5).collect();
        let mut q = crate::RaBitQuantizer::new(dim, Metric::L2).unwrap().with_bits(4).unwrap();
        q.train(&data).unwrap();
        let cs = q.code_size();
        assert!(q.scan_head_bytes().is_some_and(|h| h < cs), "4-bit codes at d = 64 are split");
        let mut codes = vec![0u8; n * cs];
        q.encode(&data, &mut codes).unwrap();

        let mut index = FlatCodes::new(q.clone());
        index.add(&data[..n / 2 * dim]).unwrap();
        let mut batch = FlatCodes::new(q.clone());
        batch.add(&data[n / 2 * dim..]).unwrap();
        index.append(&mut batch).unwrap();
        assert_eq!((index.len(), batch.len()), (n, 0));
        assert_eq!(index.codes(), codes);
        let (mut got, mut want) = (vec![0f32; dim], vec![0f32; dim]);
        for row in [0, 1, n / 2, n - 1] {
            index.decode_row(row, &mut got).unwrap();
            q.decode(&codes[row * cs..(row + 1) * cs], &mut want).unwrap();
            assert_eq!(got, want, "row {row}");
        }
        // One-bit codes of the same dimension cannot follow (another split, another size).
        let mut one_bit = FlatCodes::new(crate::RaBitQuantizer::new(dim, Metric::L2).unwrap());
        assert!(matches!(index.append(&mut one_bit), Err(Error::Parameter { name: "other", .. })));

        let queries = &data[..4 * dim];
        let keep = |row: usize| row % 3 != 1;
        let filtered = index.search_filtered(queries, 10, Some(&keep)).unwrap();
        let mut kept = index.clone();
        assert_eq!(kept.retain(keep), n / 3);
        let kept_codes: Vec<u8> =
            codes.chunks_exact(cs).enumerate().filter(|&(r, _)| keep(r)).flat_map(|(_, c)| c).copied().collect();
        assert_eq!(kept.codes(), kept_codes);
        // Row r of the retained store was row r + ⌈r / 2⌉ (rows 1, 4, 7, … dropped).
        let hits = kept.search(queries, 10).unwrap();
        for (qi, ((ids, scores), (want_ids, want_scores))) in hits.iter().zip(filtered.iter()).enumerate() {
            let ids: Vec<u64> = ids.iter().map(|&r| r + r.div_ceil(2)).collect();
            assert_eq!((&ids[..], scores), (want_ids, want_scores), "query {qi}");
        }
    }

    /// A batch's queries scan the codes in groups; each must get what it gets alone (the
    /// same rows and scores, to the bit), filtered or not, k-NN and range, for whole codes
    /// and split ones (RaBitQ's heads first, whose skipped tails depend on each query's own
    /// threshold), with group blocks of the single scan's 256 rows and of fewer (1,000-byte
    /// codes).
    #[test]
    fn a_batch_scans_in_groups_as_each_query_alone() {
        fn check<Q: Quantizer>(mut q: Q, n: usize, what: &str) {
            let dim = q.dim();
            let data: Vec<f32> =
                (0..n * dim).map(|i| ((i * 7919 + i / dim * 31) % 1013) as f32 / 1013.0 - 0.5).collect();
            q.train(&data).unwrap();
            let mut index = FlatCodes::new(q);
            index.add(&data).unwrap();
            // 37 queries: groups of 8 on two threads, and a short last group.
            let queries: Vec<f32> = data.iter().rev().take(37 * dim).map(|x| x * 0.9 + 0.01).collect();
            let keep = |row: usize| row % 3 != 1;
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            for filter in [None, Some(&keep as &(dyn Fn(usize) -> bool + Sync))] {
                let batch = pool.install(|| index.search_filtered(&queries, 10, filter)).unwrap();
                let radius = batch.get(0).unwrap().1[9];
                let ranged = pool.install(|| index.range_filtered(&queries, radius, filter)).unwrap();
                for (i, query) in queries.chunks_exact(dim).enumerate() {
                    let alone = index.search_filtered(query, 10, filter).unwrap();
                    let bits = |s: &[f32]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let (ids, scores) = batch.get(i).unwrap();
                    let (want_ids, want_scores) = alone.get(0).unwrap();
                    assert_eq!((ids, bits(scores)), (want_ids, bits(want_scores)), "{what} query {i}");
                    let alone = index.range_filtered(query, radius, filter).unwrap();
                    let (ids, scores) = ranged.get(i).unwrap();
                    let (want_ids, want_scores) = alone.get(0).unwrap();
                    assert_eq!((ids, bits(scores)), (want_ids, bits(want_scores)), "{what} range, query {i}");
                }
            }
        }
        check(sq8(16), 1500, "SQ8 d 16");
        check(sq8(1000), 700, "SQ8 d 1000 (blocks of 196 rows)");
        let pq = crate::ProductQuantizer::new(32, Metric::InnerProduct, 8, 6).unwrap();
        check(pq, 1500, "PQ8x6 inner product");
        check(crate::RaBitQuantizer::new(64, Metric::Cosine).unwrap().with_bits(4).unwrap(), 1500, "RaBitQ4 cosine");
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
