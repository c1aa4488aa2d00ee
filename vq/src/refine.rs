//! Refine (`…,RFlat`, `…,Refine(SQfp16)`): a fast approximate index proposes `refine_k · k`
//! candidates and a more precise copy of the vectors re-scores them (Faiss' `IndexRefine`,
//! Milvus' HNSW_SQ with `refine`).

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vq_distance::{Kernels, Metric, Neighbors, RangeResult};
use vq_io::{ContainerReader, ContainerWriter};
use vq_quant::{CodeScorer, FlatCodes, Quantizer, ScalarQuantizer};

use crate::error::{Error, Result};
use crate::ids::{IdMap, retain_rows};
use crate::index::{
    Index, MemoryUsage, PreparedAdd, SearchDefault, SearchParams, check_ids, check_search_default, downcast_for_merge,
    downcast_ref_for_merge, fingerprint_of, neighbors_from_rows, prepare, prepare_search, quantizer_fingerprint,
    set_inner_search_default,
};
use crate::range::FIRST_K;
use crate::spec::{IndexSpec, RefineSpec};

/// Queries per batch of a range search's widened pass: a batch's candidates (hundreds a
/// query) are held at once before they are re-scored. 1,024 was 4-7 % faster than 4,096 on
/// imgsift100k `IVF1024,PQ32x4fs,RFlat` (less memory touched fresh), 64 was 5-10 % slower.
const WIDE_BATCH: usize = 1024;

/// Scanned entries a one-pass range search holds at once (16 bytes each, 64 MiB): the batch
/// of queries is this over the base's [`Index::range_scan_size`] (at most [`WIDE_BATCH`]),
/// but at least one a thread. A quarter of it (batches of 655 queries on imgsift100k
/// `IVF1024,PQ16,RFlat`, nprobe 16, against 1,024) was 13-20 % slower.
const ONE_PASS_ENTRIES: usize = 1 << 22;

/// Queries per batch of a one-pass range search over a base that scans about `scan` entries
/// a query, or `None` when even one query a thread would hold more than
/// [`ONE_PASS_ENTRIES`] (the k-NN pass and the range pass then hold less).
fn one_pass_batch(scan: usize) -> Option<usize> {
    let batch = ONE_PASS_ENTRIES / scan.max(1);
    (batch >= rayon::current_num_threads()).then_some(batch.min(WIDE_BATCH))
}

/// Queries in the first batch of a one-pass range search with a widening: their scans take
/// every probed entry, to learn how far the later batches' scans need to reach.
const LEARN_BATCH: usize = 64;

/// A one-pass batch's scan reaches as far as this percentage of the batch before it needed;
/// the rest of its queries take the two passes.
const NEED_QUANTILE_PERCENT: usize = 95;

/// One query's candidates from a one-pass scan, re-scored (`None` when the scan did not
/// reach far enough for them), and how far its scan needed to reach: the key of its
/// `first_k`-th nearest or its widened radius, whichever is further.
struct Widened {
    scored: Option<Vec<(u64, f32)>>,
    need: f32,
}

impl Widened {
    /// The re-scored candidates (none when the scan fell short; those queries are redone).
    fn candidates(self) -> Vec<(u64, f32)> {
        self.scored.unwrap_or_default()
    }
}

/// How far past the radius a refine stage's range search takes its base's candidates.
struct Reach {
    metric: Metric,
    /// The radius' key.
    limit: f32,
    /// The factor on the score error.
    widening: f32,
    /// The nearest the error is measured on.
    first_k: usize,
}

impl Reach {
    /// The key candidates are taken up to: the radius' key plus the widening times the largest
    /// difference between a nearest's base score (`base_scores`) and its re-scored one
    /// (`scored`, in the same order). Both sides count, though only a base key above the true
    /// one pushes a hit out of the base's range: that side alone found 0.4 % fewer of
    /// imgsift100k's hits for 1.2x the QPS, but 0.90 instead of 0.97+ of them under coarse
    /// codes (the conformance test's PQ4x4fs), its maximum over 32 being the noisier estimate.
    fn widened(&self, base_scores: impl Iterator<Item = f32>, scored: &[(u64, f32)]) -> f32 {
        let key = |s: f32| self.metric.key_from_score(s);
        let stray = base_scores.zip(scored).map(|(b, &(_, s))| (key(b) - key(s)).abs()).fold(0.0f32, f32::max);
        self.limit + self.widening * stray
    }
}

/// The precise copy candidates are re-scored from, and its rows' ids.
#[derive(Debug)]
struct Stored {
    store: Store,
    ids: IdMap,
}

impl Stored {
    /// Drops the rows of `ids` (those present) from the store and the id map.
    fn remove(&mut self, ids: &[u64], dim: usize) {
        if let Some(keep) = self.ids.keep_mask(ids) {
            match &mut self.store {
                Store::Flat(v) => retain_rows(v, dim, &keep),
                Store::Sq(codes) => {
                    codes.retain(|row| keep[row]);
                }
            }
            self.ids.retain(&keep);
        }
    }
}

/// The precise copy candidates are re-scored from.
#[derive(Debug, Clone)]
enum Store {
    /// f32 rows (normalized, for cosine).
    Flat(Vec<f32>),
    /// Scalar codes.
    Sq(FlatCodes<ScalarQuantizer>),
}

#[derive(Serialize, Deserialize)]
struct Meta {
    default_refine_k: usize,
    /// Absent in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_reorder_k: Option<usize>,
}

/// A base index whose candidates are re-scored from a second, more precise store.
pub struct RefineIndex {
    base: Box<dyn Index>,
    refine: RefineSpec,
    /// Behind a lock so that [`add_shared`](Index::add_shared) can append while searches
    /// re-score (when the base adds beside searches: graphs). Paths through `&mut self` reach
    /// it with `get_mut`, without locking; a search takes the read lock for each re-scoring
    /// of one query's candidates (a range search's nearest and the rest are two) and never
    /// holds it across parallel work, so a rayon worker that blocks on it cannot be the one
    /// that holds it.
    stored: RwLock<Stored>,
    /// `refine_k` when a search does not give one.
    default_refine_k: usize,
    /// When set (and a search gives no `refine_k`), `max(k, reorder_k)` candidates.
    default_reorder_k: Option<usize>,
}

impl RefineIndex {
    /// Refine over `base` (which must be empty) from a store of kind `refine`.
    pub fn new(base: Box<dyn Index>, refine: RefineSpec) -> Result<Self> {
        if !base.is_empty() {
            return Err(Error::Parameter { name: "base", what: "refine needs an empty base index".into() });
        }
        let store = match refine {
            RefineSpec::Flat => Store::Flat(Vec::new()),
            RefineSpec::Sq(t) => Store::Sq(FlatCodes::new(ScalarQuantizer::new(base.dim(), base.metric(), t)?)),
        };
        Ok(RefineIndex {
            base,
            refine,
            stored: RwLock::new(Stored { store, ids: IdMap::default() }),
            default_refine_k: 1,
            default_reorder_k: None,
        })
    }

    /// Sets the `refine_k` used when a search does not give one (at least 1).
    pub fn set_default_refine_k(&mut self, refine_k: usize) {
        self.default_refine_k = refine_k.max(1);
    }

    /// Sets Milvus SCANN's `reorder_k`: a search that gives no `refine_k` re-scores
    /// `max(k, reorder_k)` candidates (a count, where `refine_k` is a factor of `k`). It takes
    /// precedence over the default `refine_k`.
    pub fn set_default_reorder_k(&mut self, reorder_k: usize) {
        self.default_reorder_k = Some(reorder_k.max(1));
    }

    /// The base index.
    pub fn base(&self) -> &dyn Index {
        self.base.as_ref()
    }

    // A panic cannot leave the store half-updated in a way the lock would protect us from (an
    // append or a rollback completes or leaves it as it was): a poisoned lock is taken as is.
    fn stored(&self) -> RwLockReadGuard<'_, Stored> {
        self.stored.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn stored_for_append(&self) -> RwLockWriteGuard<'_, Stored> {
        self.stored.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn stored_mut(&mut self) -> &mut Stored {
        self.stored.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Re-scores one query's candidates; `q` is prepared (normalized for cosine). Holds the
    /// store's read lock while it runs (on one thread).
    fn rescore(&self, q: &[f32], candidates: impl IntoIterator<Item = u64>, kern: &Kernels) -> Result<Vec<(u64, f32)>> {
        let metric = self.metric();
        let dim = self.dim();
        let stored = self.stored();
        // The candidates' rows are scattered over the store: ask for all of them before
        // scoring the first, so their cache misses overlap instead of following one another
        // (imgsift100k IVF1024,PQ64x4fs,RFlat, 40 candidates a query: +5–20 % QPS).
        let rows: Vec<(u64, usize)> = candidates.into_iter().filter_map(|id| Some((id, stored.ids.row(id)?))).collect();
        match &stored.store {
            Store::Flat(v) => {
                for &(_, r) in &rows {
                    vq_distance::prefetch_l2_head(&v[r * dim..(r + 1) * dim]);
                }
                // Stored rows and the query are both normalized for cosine: its score is the dot.
                let metric = if metric == Metric::Cosine { Metric::InnerProduct } else { metric };
                let vectors: Vec<&[f32]> = rows.iter().map(|&(_, r)| &v[r * dim..(r + 1) * dim]).collect();
                let scores = kern.score_rows(metric, q, &vectors)?;
                Ok(rows.into_iter().zip(scores).map(|((id, _), score)| (id, score)).collect())
            }
            Store::Sq(codes) => {
                let scorer = codes.quantizer().scorer(q)?;
                let size = codes.quantizer().code_size();
                let all = codes.codes();
                for &(_, r) in &rows {
                    vq_distance::prefetch_l2_head(&all[r * size..(r + 1) * size]);
                }
                Ok(rows
                    .into_iter()
                    .map(|(id, r)| (id, metric.score_from_key(scorer.distance(&all[r * size..(r + 1) * size]))))
                    .collect())
            }
        }
    }

    /// [`range_search_with`](Index::range_search_with) through one range pass of the base,
    /// `batch` queries at a time: each query's candidates, widened as `reach` says, re-scored;
    /// uncut. With a widening, the first batch (of [`LEARN_BATCH`]) takes every probed entry
    /// and each later one the entries up to what most of the batch before it needed (the key
    /// of its `first_k`-th nearest or its widened radius, whichever is further): a query that
    /// needed more — its nearest or its widened radius past the scan — goes through the two
    /// passes instead, so every query gets the candidates those would give it.
    fn range_in_one_pass(
        &self,
        queries: &[f32],
        reach: &Reach,
        params: &SearchParams<'_>,
        batch: usize,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let (dim, metric, kern) = (self.dim(), self.metric(), Kernels::active());
        let nq = queries.len() / dim;
        let mut rows = Vec::with_capacity(nq);
        let widens = reach.widening > 0.0;
        let mut scan_key = if widens { f32::INFINITY } else { reach.limit };
        while rows.len() < nq {
            let start = rows.len();
            let size = if start == 0 && widens { LEARN_BATCH.min(batch) } else { batch };
            let chunk = &queries[start * dim..(start + size).min(nq) * dim];
            let radii = vec![metric.score_from_key(scan_key); chunk.len() / dim];
            let found = self.base.range_rows(chunk, &radii, params)?;
            let mut done = chunk
                .par_chunks_exact(dim)
                .zip(found)
                .map(|(q, found)| self.rescore_widened(q, found, reach, scan_key, kern))
                .collect::<Result<Vec<_>>>()?;
            let short: Vec<usize> = (0..done.len()).filter(|&i| done[i].scored.is_none()).collect();
            if !short.is_empty() {
                let again: Vec<f32> = short.iter().flat_map(|&i| &chunk[i * dim..(i + 1) * dim]).copied().collect();
                for (&i, redone) in short.iter().zip(self.range_in_two_passes(&again, reach, params)?) {
                    done[i] = redone;
                }
            }
            if widens {
                let mut needs: Vec<f32> = done.iter().map(|d| d.need).collect();
                let at = (needs.len() - 1) * NEED_QUANTILE_PERCENT / 100;
                let need = *needs.select_nth_unstable_by(at, f32::total_cmp).1;
                // (A NaN need — an infinite radius beside an infinite error — reaches everything.)
                scan_key = if need.is_nan() { f32::INFINITY } else { need };
            }
            rows.extend(done.into_iter().map(Widened::candidates));
        }
        Ok(rows)
    }

    /// One query's candidates from the base's entries up to `scan_key` (`found`, with their
    /// scores, in any order): the `first_k` nearest by the base's scores re-scored, then the
    /// rest within the radius widened by their error (all of them when the widening is 0).
    /// Without candidates when the scan may not hold them: fewer than `first_k` entries (unless
    /// the scan kept all), or the widened radius past `scan_key`.
    fn rescore_widened(
        &self,
        q: &[f32],
        mut found: Vec<(u64, f32)>,
        reach: &Reach,
        scan_key: f32,
        kern: &Kernels,
    ) -> Result<Widened> {
        if reach.widening == 0.0 {
            let scored = self.rescore(q, found.into_iter().map(|(id, _)| id), kern)?;
            return Ok(Widened { scored: Some(scored), need: reach.limit });
        }
        if found.len() < reach.first_k && scan_key < f32::INFINITY {
            return Ok(Widened { scored: None, need: f32::INFINITY });
        }
        let key = |s: f32| reach.metric.key_from_score(s);
        let k = reach.first_k.min(found.len());
        // The base's k-NN answer: ties to the smaller id.
        reach.metric.select_best(&mut found, k);
        let (nearest, rest) = found.split_at(k);
        let mut scored = self.rescore(q, nearest.iter().map(|&(id, _)| id), kern)?;
        let widened = reach.widened(nearest.iter().map(|&(_, s)| s), &scored);
        let need = nearest.iter().map(|&(_, s)| key(s)).fold(widened, f32::max);
        // (The base's range keeps keys strictly below its radius': `widened` must be too.)
        if widened >= scan_key && scan_key < f32::INFINITY {
            return Ok(Widened { scored: None, need });
        }
        scored.extend(self.rescore(q, rest.iter().filter(|&&(_, s)| key(s) < widened).map(|&(id, _)| id), kern)?);
        Ok(Widened { scored: Some(scored), need })
    }

    /// [`range_search_with`](Index::range_search_with) through a k-NN pass and, for the
    /// queries whose nearest do not reach past their widened radius, a range pass at it: each
    /// query's re-scored candidates, uncut, and how far its scan needed to reach (the further
    /// of its `first_k`-th nearest's key and its widened radius).
    fn range_in_two_passes(&self, queries: &[f32], reach: &Reach, params: &SearchParams<'_>) -> Result<Vec<Widened>> {
        let (dim, metric, kern) = (self.dim(), self.metric(), Kernels::active());
        let first = SearchParams { k: reach.first_k, ef: params.ef.map(|ef| ef.max(reach.first_k)), ..*params };
        let nearest = self.base.search_with(queries, &first)?;
        // Per query: its nearest re-scored, and the widened radius of its second pass, if it
        // needs one.
        let mut rows = queries
            .par_chunks_exact(dim)
            .zip(nearest.iter().collect::<Vec<_>>())
            .map(|(q, (ids, base_scores))| {
                let found = ids.iter().take_while(|&&id| id != u64::MAX).count();
                let (ids, base_scores) = (&ids[..found], &base_scores[..found]);
                let scored = self.rescore(q, ids.iter().copied(), kern)?;
                let widened = reach.widened(base_scores.iter().copied(), &scored);
                let last_base = base_scores.last().map_or(f32::INFINITY, |&b| metric.key_from_score(b));
                // (An infinite radius, or a widening that overflows, keeps everything.)
                let wide = (found == reach.first_k && last_base <= widened).then(|| metric.score_from_key(widened));
                Ok((scored, wide, if found == reach.first_k { last_base.max(widened) } else { f32::INFINITY }))
            })
            .collect::<Result<Vec<_>>>()?;
        // The second pass: the queries whose nearest do not reach past their widened radius,
        // in batches through the base (the batch bounds the candidates held at once).
        let wide_all: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].1.is_some()).collect();
        for wide in wide_all.chunks(WIDE_BATCH) {
            let batch: Vec<f32> = wide.iter().flat_map(|&i| &queries[i * dim..(i + 1) * dim]).copied().collect();
            let radii: Vec<f32> = wide.iter().filter_map(|&i| rows[i].1).collect();
            let candidates = self.base.range_rows(&batch, &radii, params)?;
            let rescored = wide
                .par_iter()
                .zip(candidates)
                .map(|(&i, hits)| {
                    self.rescore(&queries[i * dim..(i + 1) * dim], hits.into_iter().map(|(id, _)| id), kern)
                })
                .collect::<Result<Vec<_>>>()?;
            for (&i, scored) in wide.iter().zip(rescored) {
                rows[i].0 = scored;
            }
        }
        Ok(rows.into_iter().map(|(scored, _, need)| Widened { scored: Some(scored), need }).collect())
    }

    pub(crate) fn read_sections(
        r: &ContainerReader,
        prefix: &str,
        base: Box<dyn Index>,
        refine: RefineSpec,
    ) -> Result<Self> {
        let meta: Meta = r.json(&format!("{prefix}.meta"))?;
        let (store, rows) = match refine {
            RefineSpec::Flat => {
                let v: Vec<f32> = r.array_vec(&format!("{prefix}.vectors"))?;
                if !v.len().is_multiple_of(base.dim()) {
                    return Err(Error::Corrupt {
                        what: format!("{prefix}.vectors: {} values for dimension {}", v.len(), base.dim()),
                    });
                }
                let rows = v.len() / base.dim();
                (Store::Flat(v), rows)
            }
            RefineSpec::Sq(t) => {
                let codes = FlatCodes::<ScalarQuantizer>::read_sections(r, &format!("{prefix}.codes"))?;
                let q = codes.quantizer();
                if q.sq_type() != t || q.dim() != base.dim() || q.metric() != base.metric() {
                    return Err(Error::Corrupt {
                        what: format!("{prefix}: the refine codes are not {t} of the base's vectors"),
                    });
                }
                let n = codes.len();
                (Store::Sq(codes), n)
            }
        };
        let ids = IdMap::read(r, prefix, rows)?;
        Ok(RefineIndex {
            base,
            refine,
            stored: RwLock::new(Stored { store, ids }),
            default_refine_k: meta.default_refine_k.max(1),
            default_reorder_k: meta.default_reorder_k.map(|r| r.max(1)),
        })
    }
}

impl Index for RefineIndex {
    fn dim(&self) -> usize {
        self.base.dim()
    }

    fn metric(&self) -> Metric {
        self.base.metric()
    }

    fn len(&self) -> usize {
        self.base.len()
    }
    fn next_id(&self) -> u64 {
        self.stored().ids.next_id()
    }

    fn is_trained(&self) -> bool {
        self.base.is_trained()
            && match &self.stored().store {
                Store::Flat(_) => true,
                Store::Sq(codes) => codes.quantizer().is_trained(),
            }
    }

    fn train(&mut self, data: &[f32]) -> Result<()> {
        self.base.train(data)?;
        if let Store::Sq(codes) = &mut self.stored_mut().store {
            codes.train(data)?;
        }
        Ok(())
    }

    fn reserve(&mut self, additional: usize) {
        self.base.reserve(additional);
        let dim = self.base.dim();
        match &mut self.stored_mut().store {
            // A hint: dropped when the memory cannot be had (never an abort).
            Store::Flat(v) => drop(v.try_reserve_exact(additional.saturating_mul(dim))),
            Store::Sq(codes) => codes.reserve(additional),
        }
    }

    fn add(&mut self, data: &[f32]) -> Result<()> {
        let rows = data.len() / self.dim();
        let ids = self.stored_mut().ids.next_ids(rows)?;
        self.add_with_ids(data, &ids)
    }

    fn add_with_ids(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        self.add_to_both(None, data, ids)
    }

    /// The base's part (an inverted file's codes) of the batch as the base will see it.
    fn prepare_add(&self, data: &[f32]) -> Option<Result<PreparedAdd>> {
        if !self.is_trained() {
            return None;
        }
        match prepare("vectors", data, self.dim(), self.metric()) {
            Ok(data) => self.base.prepare_add(&data),
            Err(e) => Some(Err(e)),
        }
    }

    fn add_prepared(&mut self, prepared: PreparedAdd, data: &[f32], ids: Option<&[u64]>) -> Result<()> {
        match ids {
            Some(ids) => self.add_to_both(Some(prepared), data, ids),
            None => {
                let rows = data.len() / self.dim();
                let ids = self.stored_mut().ids.next_ids(rows)?;
                self.add_to_both(Some(prepared), data, &ids)
            }
        }
    }

    /// Through `&self` when the base adds that way (a graph): the batch goes into the store
    /// first (scalar codes encoded outside the store's lock, then appended under it), then
    /// into the base, so every candidate a search meets has its row. Should the base refuse
    /// the batch after all, its rows leave the store again.
    fn add_shared(&self, data: &[f32], ids: Option<&[u64]>) -> Option<Result<()>> {
        if !self.base.adds_shared() {
            return None;
        }
        Some(self.add_store_first(data, ids))
    }

    fn adds_shared(&self) -> bool {
        self.base.adds_shared()
    }

    fn pack(&mut self) {
        self.base.pack();
    }

    fn prepare_pack(&self) -> bool {
        self.base.prepare_pack()
    }

    fn search_with(&self, queries: &[f32], params: &SearchParams<'_>) -> Result<Neighbors> {
        let queries = prepare_search(queries, params, self.dim(), self.metric())?;
        let wanted = match (params.refine_k, self.default_reorder_k) {
            // As `nprobe` and the defaults' setters: 0 candidates per hit is a mistake.
            (Some(0), _) => {
                return Err(Error::Parameter { name: "refine_k", what: "must be at least 1, got 0".into() });
            }
            (Some(f), _) => params.k.saturating_mul(f),
            (None, Some(r)) => params.k.max(r),
            (None, None) => params.k.saturating_mul(self.default_refine_k),
        };
        // Never more candidates than the base holds: a huge k must not make the base pad (and
        // allocate) a result far larger than the index.
        let candidates = wanted.min(self.len().max(1));
        let base_params = SearchParams { k: candidates, ef: params.ef.map(|ef| ef.max(candidates)), ..*params };
        let hits = self.base.search_with(&queries, &base_params)?;
        let kern = Kernels::active();
        let rows = queries
            .par_chunks_exact(self.dim())
            .zip(hits.iter().collect::<Vec<_>>())
            .map(|(q, (ids, _))| self.rescore(q, ids.iter().copied(), kern))
            .collect::<Result<Vec<_>>>()?;
        neighbors_from_rows(params.k, self.metric(), rows)
    }

    /// Each query's base candidates re-scored from the store and cut at the radius. The base's
    /// `k` nearest (`params.k`, or 32) show how far its scores stray from the store's (`δ`,
    /// the largest difference among them), and the candidates are the base's entries within
    /// the radius widened by `δ` (`refine_widening` scales `δ`). So a hit is missed only where
    /// the base misses it or its base score strays further than any of the query's nearest
    /// did. (A widening of `2δ` found 0.002 more of imgsift100k's hits under
    /// `IVF1024,PQ32x4fs,RFlat` for 1.4× the time; none, Faiss' way, 0.035 fewer.)
    ///
    /// An inverted file whose k-NN search scans as much as its range search
    /// ([`Index::range_scan_size`]) gives a query's nearest and candidates in one range pass,
    /// reaching as far as most queries of the batch before needed (see `range_in_one_pass`);
    /// other bases give their nearest by a k-NN pass and then, where those do not already
    /// reach past the widened radius, their range search at it. A widening of 0 needs no
    /// nearest: one range pass at the radius, Faiss' `IndexRefine`.
    fn range_search_with(&self, queries: &[f32], radius: f32, params: &SearchParams<'_>) -> Result<RangeResult> {
        vq_distance::check_radius(radius)?;
        let (dim, metric) = (self.dim(), self.metric());
        let queries = prepare("queries", queries, dim, metric)?;
        let widening = match params.refine_widening {
            None => 1.0,
            Some(w) if w.is_finite() && w >= 0.0 => w,
            Some(w) => {
                return Err(Error::Parameter {
                    name: "refine_widening",
                    what: format!("must be finite and at least 0, got {w}"),
                });
            }
        };
        let reach = Reach {
            metric,
            limit: metric.key_from_score(radius),
            widening,
            first_k: if params.k == 0 { FIRST_K } else { params.k }.min(self.len().max(1)),
        };
        let one_pass =
            if widening == 0.0 { Some(WIDE_BATCH) } else { self.base.range_scan_size(params).and_then(one_pass_batch) };
        let rows = match one_pass {
            Some(batch) => self.range_in_one_pass(&queries, &reach, params, batch)?,
            None => self.range_in_two_passes(&queries, &reach, params)?.into_iter().map(Widened::candidates).collect(),
        };
        let rows = rows.into_iter().map(|mut scored| {
            scored.retain(|&(_, s)| metric.within(s, radius));
            scored
        });
        Ok(RangeResult::from_rows(metric, rows)?)
    }

    /// From the refine store: the vector itself for `RFlat`, the refine codes' decoding for
    /// `Refine(SQ…)`.
    fn reconstruct(&self, id: u64) -> Result<Vec<f32>> {
        let stored = self.stored();
        let row = stored.ids.row(id).ok_or(Error::UnknownId(id))?;
        let dim = self.dim();
        match &stored.store {
            Store::Flat(v) => Ok(v[row * dim..(row + 1) * dim].to_vec()),
            Store::Sq(codes) => {
                let mut out = vec![0f32; dim];
                codes.decode_row(row, &mut out)?;
                Ok(out)
            }
        }
    }

    fn remove_ids(&mut self, ids: &[u64]) -> Result<usize> {
        let removed = self.base.remove_ids(ids)?;
        let dim = self.dim();
        self.stored_mut().remove(ids, dim);
        Ok(removed)
    }

    fn reset(&mut self) -> Result<()> {
        self.base.reset()?;
        let stored = self.stored_mut();
        match &mut stored.store {
            Store::Flat(v) => *v = Vec::new(),
            Store::Sq(codes) => *codes = FlatCodes::new(codes.quantizer().clone()),
        }
        stored.ids = IdMap::default();
        Ok(())
    }

    fn memory_usage(&self) -> MemoryUsage {
        let stored = self.stored();
        let store = match &stored.store {
            Store::Flat(v) => v.capacity() * 4,
            Store::Sq(codes) => codes.memory_usage(),
        };
        self.base.memory_usage() + MemoryUsage { refine: store + stored.ids.memory_bytes(), ..Default::default() }
    }

    fn spec(&self) -> IndexSpec {
        self.base.spec().with_refine(self.refine)
    }

    fn write_sections(&self, w: &mut ContainerWriter, prefix: &str) -> Result<()> {
        self.base.write_sections(w, &format!("{prefix}.base"))?;
        let refine = format!("{prefix}.refine");
        w.add_json(
            &format!("{refine}.meta"),
            1,
            &Meta { default_refine_k: self.default_refine_k, default_reorder_k: self.default_reorder_k },
        )?;
        let stored = self.stored();
        match &stored.store {
            Store::Flat(v) => w.add_array(&format!("{refine}.vectors"), 1, v)?,
            Store::Sq(codes) => codes.write_sections(w, &format!("{refine}.codes"))?,
        }
        stored.ids.write(w, &refine)
    }

    fn fingerprint(&self) -> u64 {
        let store = match &self.stored().store {
            Store::Flat(_) => 0,
            Store::Sq(codes) => quantizer_fingerprint(codes.quantizer()),
        };
        fingerprint_of(&self.spec(), self.dim(), self.metric(), &[self.base.fingerprint(), store])
    }

    /// Merges the base (an inverted file: anything else refuses, and the base checks the
    /// trained state: an f32 store has none) and appends `other`'s store and ids.
    /// Scalar-coded stores (`Refine(SQ8)`) are not merged yet.
    fn merge_from(&mut self, other: Box<dyn Index>, shift_ids: u64) -> Result<()> {
        if !self.is_mergeable() {
            return Err(Error::NotMergeable { spec: self.spec().to_string() });
        }
        let other = downcast_for_merge(self, other)?;
        let moved = self.merge_ids(&other, shift_ids)?;
        let RefineIndex { base, stored, .. } = *other;
        // The base checks everything again and moves nothing on error; only then does the
        // store grow, so a refused merge leaves this index as it was.
        self.base.merge_from(base, shift_ids)?;
        let theirs = stored.into_inner().unwrap_or_else(PoisonError::into_inner).store;
        let ours = self.stored_mut();
        if let (Store::Flat(v), Store::Flat(theirs)) = (&mut ours.store, theirs) {
            v.extend_from_slice(&theirs);
        }
        ours.ids.push(&moved);
        Ok(())
    }

    fn is_mergeable(&self) -> bool {
        matches!(self.stored().store, Store::Flat(_)) && self.base.is_mergeable()
    }

    fn check_merge(&self, other: &dyn Index, shift_ids: u64) -> Result<()> {
        if !self.is_mergeable() {
            return Err(Error::NotMergeable { spec: self.spec().to_string() });
        }
        let other = downcast_ref_for_merge(self, other)?;
        self.merge_ids(other, shift_ids)?;
        self.base.check_merge(other.base.as_ref(), shift_ids)
    }

    fn search_default(&self, knob: SearchDefault) -> Option<usize> {
        match knob {
            SearchDefault::RefineK => Some(self.default_refine_k),
            SearchDefault::ReorderK => self.default_reorder_k,
            _ => self.base.search_default(knob),
        }
    }

    /// `refine_k` and `reorder_k` are the refine stage's own; the rest go to the base.
    fn set_search_default(&mut self, knob: SearchDefault, value: usize) -> Result<()> {
        let value = check_search_default(knob, value)?;
        match knob {
            SearchDefault::RefineK => self.set_default_refine_k(value),
            SearchDefault::ReorderK => self.set_default_reorder_k(value),
            _ => return set_inner_search_default(self.spec(), self.base.as_mut(), knob, value),
        }
        Ok(())
    }

    fn ef_construction(&self) -> Option<usize> {
        self.base.ef_construction()
    }

    fn set_ef_construction(&mut self, value: usize) -> Result<()> {
        self.base.set_ef_construction(value)
    }
}

impl RefineIndex {
    /// `add_with_ids`, the base given the work `prepared` did for it if any: the base first
    /// (it checks its own ids too); only after it accepted the batch does the store grow, so
    /// a failed add leaves both as they were.
    fn add_to_both(&mut self, prepared: Option<PreparedAdd>, data: &[f32], ids: &[u64]) -> Result<()> {
        if !self.is_trained() {
            return Err(Error::NotTrained { spec: self.spec().to_string() });
        }
        let data = prepare("vectors", data, self.dim(), self.metric())?;
        check_ids(&data, self.dim(), ids)?;
        self.stored_mut().ids.check_absent(ids)?;
        match prepared {
            Some(prepared) => self.base.add_prepared(prepared, &data, Some(ids))?,
            None => self.base.add_with_ids(&data, ids)?,
        }
        let stored = self.stored_mut();
        match &mut stored.store {
            Store::Flat(v) => v.extend_from_slice(&data),
            Store::Sq(codes) => codes.add(&data)?,
        }
        stored.ids.push(ids);
        Ok(())
    }

    /// [`add_shared`](Index::add_shared)'s work: store, then base.
    fn add_store_first(&self, data: &[f32], ids: Option<&[u64]>) -> Result<()> {
        if !self.is_trained() {
            return Err(Error::NotTrained { spec: self.spec().to_string() });
        }
        let (dim, metric) = (self.dim(), self.metric());
        let data = prepare("vectors", data, dim, metric)?;
        if let Some(ids) = ids {
            check_ids(&data, dim, ids)?;
        }
        // Encoding runs in parallel: never under the lock (see `stored`).
        let mut encoded = match &self.stored().store {
            Store::Flat(_) => None,
            Store::Sq(codes) => Some(FlatCodes::new(codes.quantizer().clone())),
        };
        if let Some(batch) = &mut encoded {
            batch.add(&data)?;
        }
        let ids = {
            let mut stored = self.stored_for_append();
            let ids = match ids {
                Some(ids) => {
                    stored.ids.check_absent(ids)?;
                    ids.to_vec()
                }
                None => stored.ids.next_ids(data.len() / dim)?,
            };
            match (&mut stored.store, encoded) {
                (Store::Sq(codes), Some(mut batch)) => codes.append(&mut batch)?,
                // Not reached: a coded store's batch was encoded above.
                (Store::Sq(codes), None) => codes.add(&data)?,
                (Store::Flat(v), _) => v.extend_from_slice(&data),
            }
            stored.ids.push(&ids);
            ids
        };
        let added = self
            .base
            .add_shared(&data, Some(&ids))
            .unwrap_or_else(|| Err(Error::Parameter { name: "base", what: "stopped adding beside searches".into() }));
        if added.is_err() {
            self.stored_for_append().remove(&ids, dim);
        }
        added
    }

    /// The refine layer's checks of a merge (the base checks its own): the same refine kind,
    /// every shifted id representable and absent here; the shifted ids.
    fn merge_ids(&self, other: &RefineIndex, shift_ids: u64) -> Result<Vec<u64>> {
        if self.refine != other.refine {
            return Err(Error::MergeMismatch { theirs: other.spec().to_string(), ours: self.spec().to_string() });
        }
        let moved = {
            let theirs = other.stored();
            (0..theirs.ids.len())
                .map(|row| vq_distance::shifted_id(theirs.ids.id(row), shift_ids))
                .collect::<Result<Vec<u64>, _>>()?
        };
        self.stored().ids.check_absent(&moved)?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng, rngs::StdRng};
    use rand_distr::{Distribution, Normal};

    use super::*;
    use crate::factory::index_factory;

    const DIM: usize = 16;

    /// Gaussian clusters: 10 centres, unit spread around them.
    fn clustered(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let centres: Vec<f32> = (0..10 * DIM).map(|_| rng.random_range(-6.0f32..6.0)).collect();
        let noise = Normal::new(0.0f32, 1.0).unwrap();
        (0..n)
            .flat_map(|_| {
                let c = rng.random_range(0..10);
                (0..DIM).map(|j| centres[c * DIM + j] + noise.sample(&mut rng)).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Each row's hits by id, scores as bits.
    fn by_id(rows: Vec<Vec<(u64, f32)>>) -> Vec<Vec<(u64, u32)>> {
        rows.into_iter()
            .map(|mut row| {
                row.sort_by_key(|h| h.0);
                row.into_iter().map(|(id, s)| (id, s.to_bits())).collect()
            })
            .collect()
    }

    /// `refine_k = 0` is refused by name, as `nprobe = 0` and the default's setter are (it was
    /// taken as 1); 1 and more search.
    #[test]
    fn a_refine_k_of_zero_is_an_error() {
        let data = clustered(500, 3);
        let mut index = index_factory(DIM, "SQ8,RFlat", Metric::L2).unwrap();
        index.train(&data).unwrap();
        index.add(&data).unwrap();
        let params = |refine_k| SearchParams { k: 5, refine_k: Some(refine_k), ..Default::default() };
        let err = index.search_with(&data[..DIM], &params(0)).unwrap_err();
        assert!(matches!(err, Error::Parameter { name: "refine_k", .. }), "{err}");
        assert_eq!(index.search_with(&data[..DIM], &params(1)).unwrap().get(0).unwrap().0.len(), 5);
    }

    /// The bases a refine stage takes in one range pass: inverted files whose k-NN pass
    /// scans every probed code (behind a rotation too), not fast-scan lists (whose integer
    /// bounds skip codes), graphs or flat codes.
    #[test]
    fn one_pass_bases_are_inverted_files_that_score_every_code() {
        let p = SearchParams::default();
        for (spec, one_pass) in [
            ("IVF16,PQ4", true),
            ("IVF16,SQ8", true),
            ("IVF16,Flat", true),
            ("OPQ4,IVF16,PQ4", true),
            ("IVF16,RaBitQ", true),
            ("IVF16,RaBitQ4", true),
            ("IVF16,PQ4x4fs", false),
            ("IVF16,RaBitQfs", false),
            ("PQ4", false),
            ("HNSW8", false),
        ] {
            let base = index_factory(DIM, spec, Metric::L2).unwrap();
            assert_eq!(base.range_scan_size(&p).is_some(), one_pass, "{spec}");
        }
    }

    /// One range pass over an inverted file gives every query the candidates the two passes
    /// give it: in one batch, and in batches of 16 (later batches reach only as far as most of
    /// the batch before needed, so some queries take the two passes); a widening of 0 is the
    /// base's range at the radius, re-scored.
    #[test]
    fn one_range_pass_gives_the_candidates_of_two() {
        let data = clustered(3000, 1);
        let queries = clustered(300, 2);
        // Radii where the first `k`'s reach is further than the widened radius (the 40th
        // neighbour's median) and nearer (the 150th's).
        let deep = vq_distance::knn_exact(&data, &queries, DIM, 150, Metric::L2).unwrap();
        let median = |rank: usize| {
            let mut nth: Vec<f32> = deep.iter().map(|(_, s)| s[rank - 1]).collect();
            nth.sort_by(f32::total_cmp);
            nth[nth.len() / 2]
        };
        for (spec, radius) in [
            ("IVF16,PQ4", median(40)),
            ("IVF16,SQ4", median(40)),
            ("IVF16,RaBitQ", median(40)),
            ("IVF16,PQ4", median(150)),
        ] {
            let mut index = RefineIndex::new(index_factory(DIM, spec, Metric::L2).unwrap(), RefineSpec::Flat).unwrap();
            index.train(&data).unwrap();
            index.add(&data).unwrap();
            let p = SearchParams { nprobe: Some(4), ..Default::default() };
            assert!(index.base.range_scan_size(&p).is_some(), "{spec}: scans in one pass");
            let reach = Reach { metric: Metric::L2, limit: radius, widening: 1.0, first_k: FIRST_K };
            let two = index.range_in_two_passes(&queries, &reach, &p).unwrap();
            let two = by_id(two.into_iter().map(Widened::candidates).collect());
            for batch in [16, WIDE_BATCH] {
                let one = by_id(index.range_in_one_pass(&queries, &reach, &p, batch).unwrap());
                assert_eq!(one, two, "{spec} radius {radius}: batches of {batch}");
            }
            let flat = SearchParams { refine_widening: Some(0.0), ..p };
            let got = index.range_search_with(&queries, radius, &flat).unwrap();
            let base = index.base.range_search_with(&queries, radius, &p).unwrap();
            let kern = Kernels::active();
            for (q, ((ids, _), (base_ids, _))) in got.iter().zip(base.iter()).enumerate() {
                let rescored = index.rescore(&queries[q * DIM..][..DIM], base_ids.iter().copied(), kern).unwrap();
                let mut want: Vec<u64> = rescored.iter().filter(|&&(_, s)| s < radius).map(|&(id, _)| id).collect();
                let mut ids = ids.to_vec();
                want.sort();
                ids.sort();
                assert_eq!(ids, want, "{spec} radius {radius} query {q}: widening 0");
            }
        }
    }
}
