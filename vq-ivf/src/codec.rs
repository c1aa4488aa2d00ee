//! What the lists hold: a [`vq_quant::Quantizer`] plus the inverted file's view of it
//! (whether it codes residuals, and how a query scans one list).
//!
//! Keys are vq's "smaller is better" keys of the *index* metric. Inside, the quantizer of a
//! cosine index works with the inner product: the index normalizes vectors and queries once,
//! and residuals `x − c` are not unit vectors, so they must not be normalized again.

use std::sync::OnceLock;

use vq_distance::Metric;
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::{
    CodeScorer, F32Quantizer, PqScorer, ProductQuantizer, Quantizer, RaBitQScorer, RaBitQuantizer, ScalarQuantizer,
    SqType,
};

use crate::error::{Error, Result};

/// The metric the quantizer of a list codec scores with, for an index of `metric`.
pub(crate) fn inner_metric(metric: Metric) -> Metric {
    match metric {
        Metric::L2 => Metric::L2,
        Metric::InnerProduct | Metric::Cosine => Metric::InnerProduct,
    }
}

/// A query's scan of one list after another: [`ListScanner::set_list`], then
/// [`ListScanner::keys`] over that list's codes.
pub trait ListScanner: Send {
    /// Moves to list `list`, whose centroid is `centroid` and whose coarse key (squared L2
    /// to the query, or negated inner product) is `coarse_key`.
    fn set_list(&mut self, list: usize, centroid: &[f32], coarse_key: f32) -> Result<()>;
    /// [`set_list`](ListScanner::set_list) for a move after which only `codes` codes are
    /// keyed: a scanner whose move builds a table may key so few directly instead, to the
    /// same bits.
    fn set_list_for(&mut self, list: usize, centroid: &[f32], coarse_key: f32, codes: usize) -> Result<()> {
        let _ = codes;
        self.set_list(list, centroid, coarse_key)
    }
    /// Keys of the query against a block of the current list's codes (`out.len()` codes).
    fn keys(&self, codes: &[u8], out: &mut [f32]);
    /// [`keys`](ListScanner::keys) for a scan into a sink whose threshold is `threshold`: a
    /// scanner may give `+∞` instead of the key of a code it can tell is above it (every other
    /// key as `keys` gives it). By default every key.
    fn keys_within(&self, codes: &[u8], out: &mut [f32], threshold: f32) {
        let _ = threshold;
        self.keys(codes, out);
    }
}

/// Row `i` (`dim` values) of queries mapped together ([`IvfCodec::map_queries`], RaBitQ's
/// rotated batch), or nothing where the batch maps nothing.
pub(crate) fn mapped_row(mapped: &[f32], i: usize, dim: usize) -> &[f32] {
    mapped.get(i * dim..(i + 1) * dim).unwrap_or(&[])
}

/// A quantizer as the codec of inverted lists.
pub trait IvfCodec: Send + Sync + Sized {
    /// The quantizer that encodes list entries.
    type Quantizer: Quantizer;
    /// A query's scanner over lists.
    type Scanner<'a>: ListScanner
    where
        Self: 'a;

    /// The quantizer.
    fn quantizer(&self) -> &Self::Quantizer;
    /// Whether entries are coded as residuals from their list's centroid (IVF-SQ, IVF-PQ) or
    /// as given (IVF-Flat).
    fn by_residual(&self) -> bool;
    /// Whether [`IvfCodec::train`] learns anything.
    fn needs_training(&self) -> bool;
    /// Trains the quantizer on `sample` (residuals when [`IvfCodec::by_residual`]).
    fn train(&mut self, sample: &[f32]) -> Result<()>;
    /// Builds what depends on both the trained quantizer and the coarse `centroids` (`nlist ×
    /// dim`): called after training and after reading.
    fn prepare(&mut self, centroids: &[f32]);
    /// The scanner of a query (validated; normalized for cosine).
    fn scanner(&self, query: &[f32]) -> Result<Self::Scanner<'_>>;
    /// What a scanner of each of these consecutive queries (rows of the quantizer's
    /// dimension) starts from, computed for the rows together: RaBitQ's rotation (a batch maps
    /// at about 1.7× a row's speed, to the same bits); empty for a codec that maps nothing.
    fn map_queries(&self, _queries: &[f32]) -> Vec<f32> {
        Vec::new()
    }
    /// [`IvfCodec::scanner`] of `query`, from its row of [`IvfCodec::map_queries`] (`mapped`;
    /// empty when that is): the same scanner.
    fn scanner_mapped(&self, query: &[f32], _mapped: &[f32]) -> Result<Self::Scanner<'_>> {
        self.scanner(query)
    }
    /// The scanners of consecutive queries, each the one [`IvfCodec::scanner`] makes (mapped
    /// together).
    fn scanners(&self, queries: &[f32]) -> Result<Vec<Self::Scanner<'_>>> {
        let dim = self.quantizer().dim();
        let mapped = self.map_queries(queries);
        queries
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, q)| self.scanner_mapped(q, mapped_row(&mapped, i, dim)))
            .collect()
    }
    /// The trained parameters as bytes, for the index's fingerprint.
    fn trained_state(&self) -> Vec<u8>;
    /// Bytes held beyond the quantizer's own (precomputed tables).
    fn table_bytes(&self) -> usize {
        0
    }
    /// Whether a batch search should scan list-major (every query that probes a list scores it
    /// while the list's codes, or other per-list state, are in cache; one scanner per query
    /// held at once), which pays when that state is large next to a scanner. `false`: query
    /// after query.
    fn scans_by_list(&self) -> bool {
        false
    }
    /// What moving a scanner to a list ([`ListScanner::set_list`]) costs, in entries scanned
    /// under a filter (the read of an id and the filter's test): nothing to speak of for
    /// IVF-Flat and IVF-SQ, a table's worth of sums for IVF-PQ over L2. A filtered search
    /// weighs it to choose between scanning the probed lists and scoring the filter's listed
    /// ids (whose lists hold a few each: keyed without a table, [`ListScanner::set_list_for`]).
    fn list_move_cost(&self) -> usize {
        0
    }
    /// What keying one of a filter's listed entries costs, in the same units: a lookup, a
    /// scattered read of its code and its key (6 fits IVF-Flat at d = 128 on imgsift100k;
    /// BENCHMARKS.md "Filtered IVF search").
    fn listed_entry_cost(&self) -> usize {
        6
    }
    /// At most this many queries in a list-major chunk (their scanners are held at once).
    fn list_major_queries(&self) -> usize {
        usize::MAX
    }
    /// Whether lists are scanned by decoding each block of codes to f32 once
    /// ([`IvfCodec::decode_block`], shared by every query of a list-major batch that probes the
    /// list) and scoring the rows with `vq-distance`'s f32 pair kernels, instead of through
    /// [`IvfCodec::scanner`].
    fn decodes_for_scan(&self) -> bool {
        false
    }
    /// Decodes whole codes into `out` (`dim` values each; residuals for residual codecs).
    /// Used only when [`IvfCodec::decodes_for_scan`].
    fn decode_block(&self, codes: &[u8], out: &mut [f32]) {
        // Lengths are the caller's (whole codes, `dim` values each); a codec that decodes for
        // its scan overrides this.
        let _ = self.quantizer().decode(codes, out);
    }
    /// Encodes `residuals` (`x − c` of rows placed in lists `labels` of `centroids`) into
    /// `codes`: the quantizer's own codes by default. A codec whose codes fold terms of the
    /// list's centroid (RaBitQ) overrides it; it has been [`prepare`](IvfCodec::prepare)d for
    /// the same centroids.
    fn encode_residuals(&self, residuals: &[f32], labels: &[u32], centroids: &[f32], codes: &mut [u8]) -> Result<()> {
        let _ = (labels, centroids);
        Ok(self.quantizer().encode(residuals, codes)?)
    }
    /// Writes the quantizer's sections under `prefix`.
    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        Ok(self.quantizer().write_sections(w, prefix)?)
    }
    /// Reads what [`IvfCodec::write_sections`] wrote (not yet [`prepare`](IvfCodec::prepare)d).
    fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self>;
}

/// The scanner of any quantizer: the query (or, for L2 over residuals, the query's residual
/// to each list's centroid) scored by the quantizer's own scorer.
pub struct QuantizerScanner<'a, Q: Quantizer> {
    quantizer: &'a Q,
    query: Vec<f32>,
    scratch: Vec<f32>,
    /// L2 over residuals: a new scorer per list, of `query − centroid`.
    per_list: bool,
    /// Inner product over residuals: `⟨q, c⟩` is added per list (as its key).
    offset_by_list: bool,
    scorer: Option<Q::Scorer<'a>>,
    offset: f32,
}

impl<'a, Q: Quantizer> QuantizerScanner<'a, Q> {
    fn new(quantizer: &'a Q, query: &[f32], by_residual: bool) -> Result<Self> {
        let l2 = quantizer.metric() == Metric::L2;
        let per_list = by_residual && l2;
        let scorer = if per_list { None } else { Some(quantizer.scorer(query)?) };
        Ok(QuantizerScanner {
            quantizer,
            query: query.to_vec(),
            scratch: Vec::new(),
            per_list,
            offset_by_list: by_residual && !l2,
            scorer,
            offset: 0.0,
        })
    }
}

impl<Q: Quantizer> ListScanner for QuantizerScanner<'_, Q> {
    fn set_list(&mut self, _list: usize, centroid: &[f32], coarse_key: f32) -> Result<()> {
        if self.per_list {
            self.scratch.clear();
            self.scratch.extend(self.query.iter().zip(centroid).map(|(q, c)| q - c));
            self.scorer = Some(self.quantizer.scorer(&self.scratch)?);
        } else if self.offset_by_list {
            self.offset = coarse_key;
        }
        Ok(())
    }

    fn keys(&self, codes: &[u8], out: &mut [f32]) {
        match &self.scorer {
            Some(s) => s.distances(codes, out),
            None => out.fill(f32::INFINITY),
        }
        if self.offset != 0.0 {
            out.iter_mut().for_each(|k| *k += self.offset);
        }
    }
}

/// IVF-Flat: the vectors themselves ([`F32Quantizer`]), not residuals.
#[derive(Debug, Clone)]
pub struct FlatCodec {
    q: F32Quantizer,
}

impl FlatCodec {
    /// The codec of a `dim`-dimensional index scored by `metric`.
    pub fn new(dim: usize, metric: Metric) -> Result<Self> {
        Ok(FlatCodec { q: F32Quantizer::new(dim, inner_metric(metric))? })
    }
}

impl IvfCodec for FlatCodec {
    type Quantizer = F32Quantizer;
    type Scanner<'a> = QuantizerScanner<'a, F32Quantizer>;

    fn quantizer(&self) -> &F32Quantizer {
        &self.q
    }
    fn by_residual(&self) -> bool {
        false
    }
    fn needs_training(&self) -> bool {
        false
    }
    fn train(&mut self, _sample: &[f32]) -> Result<()> {
        Ok(())
    }
    fn prepare(&mut self, _centroids: &[f32]) {}
    fn scanner(&self, query: &[f32]) -> Result<Self::Scanner<'_>> {
        QuantizerScanner::new(&self.q, query, false)
    }
    /// f32 rows are the largest codes: reading each list once per batch saves the most.
    fn scans_by_list(&self) -> bool {
        true
    }
    fn trained_state(&self) -> Vec<u8> {
        Vec::new()
    }
    fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        Ok(FlatCodec { q: F32Quantizer::read_sections(r, prefix)? })
    }
}

/// IVF-SQ: residuals coded by a [`ScalarQuantizer`] of any [`SqType`] (Faiss'
/// `IndexIVFScalarQuantizer` with its default `by_residual = true`).
#[derive(Debug, Clone)]
pub struct SqCodec {
    q: ScalarQuantizer,
}

impl SqCodec {
    /// The codec of a `dim`-dimensional index scored by `metric`.
    pub fn new(dim: usize, metric: Metric, sq_type: SqType) -> Result<Self> {
        Ok(SqCodec { q: ScalarQuantizer::new(dim, inner_metric(metric), sq_type)? })
    }
}

impl IvfCodec for SqCodec {
    type Quantizer = ScalarQuantizer;
    type Scanner<'a> = QuantizerScanner<'a, ScalarQuantizer>;

    fn quantizer(&self) -> &ScalarQuantizer {
        &self.q
    }
    fn by_residual(&self) -> bool {
        true
    }
    fn needs_training(&self) -> bool {
        self.q.sq_type().needs_training()
    }
    /// Residuals: each listed entry, alone in its list, also costs the query's residual to
    /// that list's centroid (`dim` subtractions).
    fn listed_entry_cost(&self) -> usize {
        6 + self.q.dim() / 16
    }
    fn train(&mut self, sample: &[f32]) -> Result<()> {
        Ok(self.q.train(sample)?)
    }
    fn prepare(&mut self, _centroids: &[f32]) {}
    fn scanner(&self, query: &[f32]) -> Result<Self::Scanner<'_>> {
        QuantizerScanner::new(&self.q, query, true)
    }
    /// A scanner is the query and its per-list scorer (a few `dim`-long arrays), small next to
    /// a list of `dim`-byte codes.
    fn scans_by_list(&self) -> bool {
        true
    }
    /// SQ8: a block of codes is decoded once (`vmin + (c + 0.5)·step`, a loop the compiler
    /// vectorizes) and every query scoring it uses the f32 kernels; a new SQ scorer per
    /// (query, list), as the scanner needs for the residual query, cost more than the scan.
    fn decodes_for_scan(&self) -> bool {
        self.q.sq_type() == SqType::SQ8
    }
    fn decode_block(&self, codes: &[u8], out: &mut [f32]) {
        if self.q.sq_type() != SqType::SQ8 {
            let _ = self.q.decode(codes, out);
            return;
        }
        let (vmin, step) = self.q.ranges();
        let dim = vmin.len();
        for (code, row) in codes.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            for (((o, &c), &v), &s) in row.iter_mut().zip(code).zip(vmin).zip(step) {
                *o = v + (f32::from(c) + 0.5) * s;
            }
        }
    }
    fn trained_state(&self) -> Vec<u8> {
        let (vmin, step) = self.q.ranges();
        let mut out = self.q.sq_type().factory_name().as_bytes().to_vec();
        out.extend(self.q.clip().unwrap_or(f32::NAN).to_le_bytes());
        out.extend(vmin.iter().chain(step).flat_map(|v| v.to_le_bytes()));
        out
    }
    fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        Ok(SqCodec { q: ScalarQuantizer::read_sections(r, prefix)? })
    }
}

/// Bytes of per-query scanner tables a list-major chunk of IVF-PQ holds at once (8 MiB: 256
/// queries at PQ16, 128 at PQ32). Chunks of 64 to 256 PQ16/PQ32 queries scanned alike on
/// imgsift100k; 512 was slower, 2,048 (every query of the batch) twice as slow.
pub(crate) const PQ_LIST_MAJOR_BYTES: usize = 8 << 20;

/// IVF-PQ (IVFADC): residuals coded by a [`ProductQuantizer`]. For L2 it keeps Faiss'
/// precomputed table (`nlist × m × 2^nbits` floats of `‖r̂‖² + 2⟨c, r̂⟩` per list), so a probed
/// list costs one table addition instead of a table build; for inner product the query's one
/// table serves every list, offset by `⟨q, c⟩`.
#[derive(Debug, Clone)]
pub struct PqCodec {
    q: ProductQuantizer,
    /// L2: per list, `m × ksub` terms `‖c_jk‖² + 2⟨centroid_j, c_jk⟩`. Empty otherwise.
    list_terms: Vec<f32>,
}

impl PqCodec {
    /// The codec of a `dim`-dimensional index scored by `metric`: `m` sub-quantizers of
    /// `nbits` bits.
    pub fn new(dim: usize, metric: Metric, m: usize, nbits: u32) -> Result<Self> {
        Ok(PqCodec { q: ProductQuantizer::new(dim, inner_metric(metric), m, nbits)?, list_terms: Vec::new() })
    }

    /// The codec of an index scored by `metric` over `q`, a product quantizer trained
    /// elsewhere (for [`IvfIndex::train_with_centroids`](crate::IvfIndex::train_with_centroids)
    /// without training data). `q` must be made for the index's inner metric: `L2` for L2
    /// indexes, `InnerProduct` for inner-product and cosine ones.
    pub fn from_quantizer(metric: Metric, q: ProductQuantizer) -> Result<Self> {
        if q.metric() != inner_metric(metric) {
            return Err(Error::Parameter {
                name: "codec",
                what: format!(
                    "a {} index codes with {} product quantizers, not {}",
                    metric,
                    inner_metric(metric),
                    q.metric()
                ),
            });
        }
        Ok(PqCodec { q, list_terms: Vec::new() })
    }

    fn table_len(&self) -> usize {
        self.q.m() * self.q.ksub()
    }
}

/// List `list`'s `n` precomputed terms in `list_terms` (every list's, `n` each).
fn terms_of(list_terms: &[f32], list: usize, n: usize) -> Result<&[f32]> {
    list_terms.get(list * n..(list + 1) * n).ok_or_else(|| Error::Parameter {
        name: "list",
        what: format!("{list} is past the precomputed table's {} lists", list_terms.len() / n.max(1)),
    })
}

/// [`PqCodec`]'s scanner.
pub enum PqScanner<'a> {
    /// L2 through the precomputed table.
    Table {
        /// The query's `−2⟨q_j, c_jk⟩` terms.
        query_terms: Vec<f32>,
        /// The list's table (rewritten per list) and its scan kernel.
        scorer: PqScorer<'a>,
        /// Every list's terms.
        list_terms: &'a [f32],
        /// `‖q − c‖²` of the current list.
        offset: f32,
        /// The current list's terms when its codes are keyed without building its table
        /// ([`ListScanner::set_list_for`] a few codes).
        direct: Option<&'a [f32]>,
    },
    /// Inner product: the query's table, offset by the list's coarse key.
    Shared(QuantizerScanner<'a, ProductQuantizer>),
}

impl ListScanner for PqScanner<'_> {
    fn set_list(&mut self, list: usize, centroid: &[f32], coarse_key: f32) -> Result<()> {
        match self {
            PqScanner::Table { query_terms, scorer, list_terms, offset, direct } => {
                // Vectorized at the process' SIMD level (the plain loop ran at SSE2).
                scorer.set_table_sum(terms_of(list_terms, list, query_terms.len())?, query_terms)?;
                *offset = coarse_key;
                *direct = None;
                Ok(())
            }
            PqScanner::Shared(s) => s.set_list(list, centroid, coarse_key),
        }
    }

    /// Fewer codes than `2^nbits / 32` (8 at 8 bits): keyed from the list's terms and the
    /// query's without the table (`m` look-ups in each per code against `m · 2^nbits` sums).
    fn set_list_for(&mut self, list: usize, centroid: &[f32], coarse_key: f32, codes: usize) -> Result<()> {
        match self {
            PqScanner::Table { query_terms, scorer, list_terms, offset, direct }
                if codes * 32 < scorer.quantizer().ksub() =>
            {
                *direct = Some(terms_of(list_terms, list, query_terms.len())?);
                *offset = coarse_key;
                Ok(())
            }
            _ => self.set_list(list, centroid, coarse_key),
        }
    }

    fn keys(&self, codes: &[u8], out: &mut [f32]) {
        match self {
            PqScanner::Table { scorer, offset, direct, query_terms, .. } => {
                match direct {
                    Some(terms) => {
                        for (k, code) in out.iter_mut().zip(codes.chunks_exact(scorer.quantizer().code_size())) {
                            *k = scorer.distance_with_table_sum(terms, query_terms, code);
                        }
                    }
                    None => scorer.distances(codes, out),
                }
                out.iter_mut().for_each(|k| *k += *offset);
            }
            PqScanner::Shared(s) => s.keys(codes, out),
        }
    }
}

impl IvfCodec for PqCodec {
    type Quantizer = ProductQuantizer;
    type Scanner<'a> = PqScanner<'a>;

    fn quantizer(&self) -> &ProductQuantizer {
        &self.q
    }
    fn by_residual(&self) -> bool {
        true
    }
    fn needs_training(&self) -> bool {
        true
    }
    fn train(&mut self, sample: &[f32]) -> Result<()> {
        self.q.train(sample)?;
        self.list_terms.clear();
        Ok(())
    }

    fn prepare(&mut self, centroids: &[f32]) {
        self.list_terms.clear();
        if self.q.metric() != Metric::L2 || !self.q.is_trained() {
            return;
        }
        let (t, dim, dsub) = (self.table_len(), self.q.dim(), self.q.dsub());
        let norms: Vec<f32> =
            self.q.centroids().chunks_exact(dsub).map(|c| c.iter().map(|v| v * v).sum::<f32>()).collect();
        let nlist = centroids.len() / dim;
        self.list_terms = vec![0f32; nlist * t];
        use rayon::prelude::*;
        self.list_terms.par_chunks_mut(t).zip(centroids.par_chunks(dim)).for_each(|(terms, c)| {
            // −⟨c_j, c_jk⟩ per entry; the centroid passed the input checks, the length is dim.
            if self.q.inner_product_table(c, terms).is_ok() {
                for (v, n) in terms.iter_mut().zip(&norms) {
                    *v = n - 2.0 * *v;
                }
            }
        });
    }

    fn scanner(&self, query: &[f32]) -> Result<PqScanner<'_>> {
        if self.list_terms.is_empty() {
            return Ok(PqScanner::Shared(QuantizerScanner::new(&self.q, query, true)?));
        }
        let mut query_terms = vec![0f32; self.table_len()];
        self.q.inner_product_table(query, &mut query_terms)?;
        query_terms.iter_mut().for_each(|v| *v *= 2.0);
        let scorer = self.q.scorer_with_table(vec![0f32; self.table_len()])?;
        Ok(PqScanner::Table { query_terms, scorer, list_terms: &self.list_terms, offset: 0.0, direct: None })
    }

    fn trained_state(&self) -> Vec<u8> {
        let mut out = self.q.name().into_bytes();
        out.extend(self.q.centroids().iter().flat_map(|v| v.to_le_bytes()));
        out
    }

    fn table_bytes(&self) -> usize {
        self.list_terms.capacity() * size_of::<f32>()
    }

    /// With the precomputed L2 table (L2 only): what a batch then shares is not the codes but
    /// each list's `m × 2^nbits` terms, read from a table of `nlist` of them (16 MiB at PQ16
    /// with 1,024 lists) that no cache holds. Query by query, every (query, list) pair reads
    /// its list's terms from memory; list-major, a chunk's queries that probe a list reuse
    /// them. Measured on imgsift100k, IVF1024 (BENCHMARKS.md, issue 19 session 11): 1.2-1.7x
    /// for PQ32 at nprobe 16-24, about even (0.95-1.08x) for PQ16. Inner product has no
    /// per-list table.
    fn scans_by_list(&self) -> bool {
        !self.list_terms.is_empty()
    }

    /// L2 over residuals: a list move sums the list's precomputed terms and the query's into a
    /// `m × 2^nbits` table, about 64 of those values per scanned entry's time (imgsift100k,
    /// PQ16: 4,096 sums). Inner product: the list's key is an offset.
    fn list_move_cost(&self) -> usize {
        if self.list_terms.is_empty() { 0 } else { self.table_len() / 64 }
    }

    /// A listed entry's `m` look-ups come from a scattered code, alone or nearly so in its
    /// list, where a scanned entry the filter rejects costs only its test: inner product and
    /// cosine `6 + m / 8` (textemb100k, IVF1024, cosine: a listed entry cost 20 / 38 / 76 ns at
    /// PQ16 / 48 / 96, 10.5 / 11.5 / 16.5 scanned entries of a 5 % filter's scan; 6 made
    /// PQ48's listed path 1.8x slower than the scan it replaced). L2 over residuals is keyed
    /// from its list's terms without a table, `m` scattered look-ups more (fit on imgsift100k,
    /// PQ16).
    fn listed_entry_cost(&self) -> usize {
        if self.list_terms.is_empty() { 6 + self.q.m() / 8 } else { 6 + self.q.m() }
    }

    /// A scanner holds two `m × 2^nbits` tables (32 KiB at PQ16): a chunk holds at most
    /// 8 MiB of them (`PQ_LIST_MAJOR_BYTES`), so its scanners stay in cache beside the lists' terms.
    fn list_major_queries(&self) -> usize {
        (PQ_LIST_MAJOR_BYTES / (2 * self.table_len() * size_of::<f32>()).max(1)).max(1)
    }

    fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        Ok(PqCodec { q: ProductQuantizer::read_sections(r, prefix)?, list_terms: Vec::new() })
    }
}

/// IVF-RaBitQ (Faiss' `IndexIVFRaBitQ`): residuals coded by a [`RaBitQuantizer`] whose codes
/// fold the terms of their list's centroid, so a query is rotated and tabled once and a probed
/// list costs only its coarse key as the offset of every key.
#[derive(Debug, Clone)]
pub struct RaBitQCodec {
    q: RaBitQuantizer,
    rotated_centroids: RotatedCentroids,
}

/// `P c` of every centroid, which RaBitQ codes fold in: made on the first add after
/// [`IvfCodec::prepare`] (a search needs none of it, so reading an index does not pay the
/// rotation: 1,024 centroids of d = 384 take ~2 ms).
#[derive(Debug, Clone, Default)]
pub(crate) struct RotatedCentroids(OnceLock<Vec<f32>>);

impl RotatedCentroids {
    /// Forgets the rotation: the centroids changed.
    pub(crate) fn reset(&mut self) {
        self.0 = OnceLock::new();
    }

    /// `P c` of each of `centroids` (the ones since the last [`reset`](Self::reset)).
    pub(crate) fn get(&self, q: &RaBitQuantizer, centroids: &[f32]) -> &[f32] {
        self.0.get_or_init(|| q.rotate(centroids))
    }

    /// Bytes held (none before the first add).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.0.get().map_or(0, |v| v.capacity() * size_of::<f32>())
    }
}

impl RaBitQCodec {
    /// The codec of a `dim`-dimensional index scored by `metric`: one bit per dimension.
    pub fn new(dim: usize, metric: Metric) -> Result<Self> {
        Self::with_bits(dim, metric, 1)
    }

    /// The codec coding `bits` bits per dimension (`1 ..= 9`, Faiss' `IVF{n},RaBitQ{bits}`;
    /// see [`RaBitQuantizer::with_bits`]).
    pub fn with_bits(dim: usize, metric: Metric, bits: u8) -> Result<Self> {
        Ok(RaBitQCodec {
            q: RaBitQuantizer::for_residuals(dim, inner_metric(metric))?.with_bits(bits)?,
            rotated_centroids: RotatedCentroids::default(),
        })
    }
}

/// [`RaBitQCodec`]'s scanner: the query's table, offset per list by its coarse key.
pub struct RaBitQScanner(RaBitQScorer);

impl ListScanner for RaBitQScanner {
    fn set_list(&mut self, _list: usize, _centroid: &[f32], coarse_key: f32) -> Result<()> {
        self.0.set_offset(coarse_key);
        Ok(())
    }

    fn keys(&self, codes: &[u8], out: &mut [f32]) {
        self.0.distances(codes, out);
    }

    /// At the byte-table levels, one-bit codes whose popcount bound is above `threshold`
    /// need not be looked up ([`CodeScorer::distances_within`]; the other keys to the bit).
    fn keys_within(&self, codes: &[u8], out: &mut [f32], threshold: f32) {
        self.0.distances_within(codes, &[], out, threshold);
    }
}

impl IvfCodec for RaBitQCodec {
    type Quantizer = RaBitQuantizer;
    type Scanner<'a> = RaBitQScanner;

    fn quantizer(&self) -> &RaBitQuantizer {
        &self.q
    }
    fn by_residual(&self) -> bool {
        true
    }
    fn needs_training(&self) -> bool {
        false
    }
    fn train(&mut self, _sample: &[f32]) -> Result<()> {
        Ok(())
    }
    /// The centroids' rotation is made on the first add (searches do not need it).
    fn prepare(&mut self, _centroids: &[f32]) {
        self.rotated_centroids.reset();
    }
    fn scanner(&self, query: &[f32]) -> Result<Self::Scanner<'_>> {
        Ok(RaBitQScanner(self.q.residual_scorer(query)?))
    }
    fn map_queries(&self, queries: &[f32]) -> Vec<f32> {
        self.q.rotate(queries)
    }
    fn scanner_mapped(&self, query: &[f32], rotated: &[f32]) -> Result<Self::Scanner<'_>> {
        Ok(RaBitQScanner(self.q.residual_scorer_rotated(query, rotated)?))
    }
    fn table_bytes(&self) -> usize {
        self.rotated_centroids.memory_bytes()
    }
    fn encode_residuals(&self, residuals: &[f32], labels: &[u32], centroids: &[f32], codes: &mut [u8]) -> Result<()> {
        Ok(self.q.encode_about(residuals, self.rotated_centroids.get(&self.q, centroids), labels, codes)?)
    }
    /// The bits and the rotation (drawn from a fixed seed, but saved: files from another build
    /// compare by the matrix).
    fn trained_state(&self) -> Vec<u8> {
        let mut out = self.q.name().into_bytes();
        out.extend(self.q.rotation().iter().flat_map(|v| v.to_le_bytes()));
        out
    }
    fn read_sections(r: &ContainerReader, prefix: &str) -> Result<Self> {
        let q = RaBitQuantizer::read_sections(r, prefix)?;
        if q.centered() {
            return Err(Error::Corrupt {
                section: format!("{prefix}.meta"),
                what: "an inverted file's RaBitQ codes are residuals: the saved quantizer codes about a mean".into(),
            });
        }
        Ok(RaBitQCodec { q, rotated_centroids: RotatedCentroids::default() })
    }
}
