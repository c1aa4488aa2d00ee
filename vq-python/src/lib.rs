//! `vq._vq`: the native half of the Python package `vq` (PyO3, abi3), Faiss' Python shape
//! over the `vq` crate: `index_factory`, `Index.train/add/add_with_ids/search/remove_ids`,
//! `read_index`/`write_index`, `knn`, `normalize_L2`, k-means; with the cargo feature `gpu`,
//! `index_cpu_to_gpu` / `index_gpu_to_cpu`.
//!
//! **Owns:** the conversion between numpy arrays and vq's row-major slices (`convert`), the
//! Python exceptions for `vq::Error` (`error`), and where the work runs (`threads`: always
//! with the GIL released, so Python threads searching one index use every core).
//!
//! **Does not own:** any index logic — every call goes to the `vq` crate's [`vq::Index`]
//! trait or its free functions. The Python package (`python/vq`) adds only `Kmeans`,
//! `python -m vq.bench` and Faiss-style aliases.
//!
//! Concurrency: an `Index` is shared by Python threads behind a readers–writer lock taken with
//! the GIL released: searches run in parallel, `add`/`train`/`remove_ids` run alone. Arrays
//! are read in place while the GIL is released; as with Faiss, a caller must not modify an
//! array from another thread while a call reads it.

mod convert;
mod error;
#[cfg(feature = "gpu")]
mod gpu;
mod moved;
mod pca;
mod threads;

use std::path::PathBuf;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::types::PyDict;
use vq::{IndexParams, Metric, Neighbors, ReadOptions, SearchDefault, SearchParams};

use crate::error::{FingerprintMismatch, FormatError, NotTrained, VqError, to_py, x_to_py};

/// Faiss' metric numbers (`faiss.METRIC_INNER_PRODUCT = 0`, `METRIC_L2 = 1`); cosine, which
/// Faiss has not, gets a number of its own.
const METRIC_INNER_PRODUCT: i64 = 0;
const METRIC_L2: i64 = 1;
const METRIC_COSINE: i64 = 100;

fn metric_number(m: Metric) -> i64 {
    match m {
        Metric::L2 => METRIC_L2,
        Metric::InnerProduct => METRIC_INNER_PRODUCT,
        Metric::Cosine => METRIC_COSINE,
    }
}

/// A metric given as Faiss' number (`vq.METRIC_L2`) or a name (`"l2"`, `"ip"`, `"cosine"`).
fn parse_metric(metric: &Bound<'_, PyAny>) -> PyResult<Metric> {
    if let Ok(n) = metric.extract::<i64>() {
        return match n {
            METRIC_L2 => Ok(Metric::L2),
            METRIC_INNER_PRODUCT => Ok(Metric::InnerProduct),
            METRIC_COSINE => Ok(Metric::Cosine),
            _ => Err(PyValueError::new_err(format!(
                "metric {n}: expected vq.METRIC_L2 ({METRIC_L2}), vq.METRIC_INNER_PRODUCT ({METRIC_INNER_PRODUCT}) or vq.METRIC_COSINE ({METRIC_COSINE})"
            ))),
        };
    }
    match metric.extract::<String>() {
        Ok(s) => s.parse().map_err(|e: vq::vq_distance::ParseMetricError| PyValueError::new_err(e.to_string())),
        Err(_) => {
            Err(PyTypeError::new_err("metric must be a vq.METRIC_* number or a name (\"l2\", \"ip\", \"cosine\")"))
        }
    }
}

/// A count from Python: negative values are a `ValueError` naming the argument.
fn count(name: &str, v: i64) -> PyResult<usize> {
    usize::try_from(v).map_err(|_| PyValueError::new_err(format!("`{name}` must be non-negative, got {v}")))
}

fn opt_count(name: &str, v: Option<i64>) -> PyResult<Option<usize>> {
    v.map(|v| count(name, v)).transpose()
}

/// `(D, I)`: float32 scores and int64 ids, `num_queries × k`, `-1` where a row has fewer than
/// `k` hits (Faiss' padding).
type SearchResult<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<i64>>);

/// `(lims, D, I)`, Faiss' range-search triple.
type RangeSearchResult<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<i64>>);

/// Flat views of a result with ids as Faiss' int64 (vq's `u64::MAX` padding becomes `-1`).
fn flat_result(n: &Neighbors) -> (usize, usize, Vec<f32>, Vec<i64>) {
    // Ids are below 2⁶³ (checked on the way in), so the cast only turns the padding into −1.
    let ids = n.ids().iter().map(|&id| if id == u64::MAX { -1 } else { id as i64 }).collect();
    (n.num_queries(), n.k(), n.scores().to_vec(), ids)
}

fn to_numpy<'py>(py: Python<'py>, (nq, k, d, i): (usize, usize, Vec<f32>, Vec<i64>)) -> PyResult<SearchResult<'py>> {
    let shape_err = |e: numpy::ndarray::ShapeError| VqError::new_err(format!("result shape: {e}"));
    let d = Array2::from_shape_vec((nq, k), d).map_err(shape_err)?;
    let i = Array2::from_shape_vec((nq, k), i).map_err(shape_err)?;
    Ok((d.into_pyarray(py), i.into_pyarray(py)))
}

/// `n × d` row-major values as a float32 array.
fn rows_to_numpy(py: Python<'_>, n: usize, d: usize, rows: Vec<f32>) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let a = Array2::from_shape_vec((n, d), rows).map_err(|e| VqError::new_err(format!("result shape: {e}")))?;
    Ok(a.into_pyarray(py))
}

/// Per-search settings, as Faiss' `SearchParameters`: pass as `index.search(x, k, params=p)`;
/// keywords given to `search` override them. A knob an index does not have is ignored
/// (`nprobe` on a graph).
///
/// - `ef`: graph beam width (hnswlib `ef`, Faiss `efSearch`)
/// - `nprobe`: inverted lists scanned per query (IVF)
/// - `refine_k`: refine indexes re-score `refine_k · k` candidates (Faiss `k_factor`)
/// - `filter`: a numpy boolean mask over ids, or an array of the ids that may be returned
#[pyclass(module = "vq", get_all, set_all)]
struct SearchParameters {
    ef: Option<i64>,
    nprobe: Option<i64>,
    refine_k: Option<i64>,
    filter: Option<Py<PyAny>>,
}

#[pymethods]
impl SearchParameters {
    #[new]
    #[pyo3(signature = (*, ef=None, nprobe=None, refine_k=None, filter=None))]
    fn new(ef: Option<i64>, nprobe: Option<i64>, refine_k: Option<i64>, filter: Option<Py<PyAny>>) -> Self {
        SearchParameters { ef, nprobe, refine_k, filter }
    }

    fn __repr__(&self) -> String {
        let opt = |v: Option<i64>| v.map_or("None".into(), |v| v.to_string());
        format!(
            "SearchParameters(ef={}, nprobe={}, refine_k={}, filter={})",
            opt(self.ef),
            opt(self.nprobe),
            opt(self.refine_k),
            if self.filter.is_some() { "<set>" } else { "None" }
        )
    }
}

/// A search's knobs from `params` and the keywords (which win), with the filter converted.
struct Knobs {
    ef: Option<usize>,
    nprobe: Option<usize>,
    refine_k: Option<usize>,
    /// Only `range_search` takes it.
    refine_widening: Option<f32>,
    filter: Option<Box<dyn vq::IdFilter>>,
}

impl Knobs {
    fn new<'py>(
        py: Python<'py>,
        params: Option<PyRef<'py, SearchParameters>>,
        ef: Option<i64>,
        nprobe: Option<i64>,
        refine_k: Option<i64>,
        filter: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let p = params.as_deref();
        let (p_ef, p_nprobe, p_refine_k) = p.map_or((None, None, None), |p| (p.ef, p.nprobe, p.refine_k));
        let filter = match filter.or_else(|| p.and_then(|p| p.filter.as_ref()).map(|f| f.bind(py).clone())) {
            Some(f) if !f.is_none() => Some(convert::filter(&f)?),
            _ => None,
        };
        Ok(Knobs {
            ef: opt_count("ef", ef.or(p_ef))?,
            nprobe: opt_count("nprobe", nprobe.or(p_nprobe))?,
            refine_k: opt_count("refine_k", refine_k.or(p_refine_k))?,
            refine_widening: None,
            filter,
        })
    }

    fn params(&self, k: usize) -> SearchParams<'_> {
        SearchParams {
            k,
            ef: self.ef,
            nprobe: self.nprobe,
            refine_k: self.refine_k,
            refine_widening: self.refine_widening,
            filter: self.filter.as_deref(),
        }
    }
}

/// A vq index (what `index_factory` and `read_index` return). Thread-safe: searches from
/// several Python threads run in parallel with the GIL released; `train`, `add` and
/// `remove_ids` wait for running searches and run alone.
#[pyclass(module = "vq", name = "Index", frozen)]
struct PyIndex {
    // Fixed for the index's life, kept outside the lock so shape checks never wait on a
    // running add.
    dim: usize,
    metric: Metric,
    /// Whether the index searches a query on one thread: every kind but exact `Flat`, which
    /// splits its vectors across workers (graphs, inverted files and code scans go parallel
    /// over queries only).
    serial_queries: bool,
    inner: RwLock<Box<dyn vq::Index>>,
}

/// How long an add waits for a moment when no search holds a graph, to install the lists it
/// packed ([`PyIndex::add_rows`]); past it they are packed again by a later add.
const PACK_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

impl PyIndex {
    fn new(index: Box<dyn vq::Index>) -> Self {
        let serial_queries = index.spec().base != vq::BaseSpec::Flat;
        PyIndex { dim: index.dim(), metric: index.metric(), serial_queries, inner: RwLock::new(index) }
    }

    /// Whether `x` is one query of an index that searches a query on one thread: such a call
    /// runs on the caller ([`threads::run_where`]), where a pool would add only its hand-off.
    fn one_serial_query(&self, x: &[f32]) -> bool {
        self.serial_queries && x.len() == self.dim
    }

    /// Adds `x` under `ids` (`None`: continuing ids). Graphs (refined or not) take the vectors
    /// under the read lock, so searches from other Python threads go on meanwhile (as with hnswlib); when
    /// their open lists are due to be packed, that too runs under the read lock, and the packed
    /// lists are installed (a store of one word per node) at the first moment within
    /// [`PACK_WAIT`] that no search holds the index, else packed again by a later add.
    /// Inverted files assign and encode the vectors under the read lock and append them under
    /// the write lock; every other kind adds under the write lock.
    fn add_rows(&self, py: Python<'_>, x: &[f32], ids: Option<&[u64]>) -> PyResult<()> {
        if ids.is_none() {
            // Results are int64: automatic ids (past every id given) must stay below 2^63 as
            // given ones must. (An add racing this one could pass the check too: only ids
            // within a batch of 2^63 − 1 are at stake.)
            let (next, n) = (self.read().next_id(), (x.len() / self.dim.max(1)) as u64);
            if next.checked_add(n).is_none_or(|end| end > 1 << 63) {
                return Err(PyValueError::new_err(format!(
                    "add of {n} vectors: automatic ids would run from {next} past 2^63 - 1 (results are \
                     int64); give them ids with add_with_ids"
                )));
            }
        }
        // The steps in one call (each read guard is dropped before the `try_write`).
        let add_shared = || {
            let added = self.read().add_shared(x, ids);
            if matches!(added, Some(Ok(()))) && self.read().prepare_pack() {
                // Installing takes a store per node, but needs a moment when no search holds
                // the index: one search per call leaves gaps, found within a few tries.
                let start = std::time::Instant::now();
                loop {
                    if let Ok(mut index) = self.inner.try_write() {
                        index.pack();
                        break;
                    }
                    if start.elapsed() > PACK_WAIT {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
            added
        };
        // A graph inserts one vector on one thread (and packs on one), and the other kinds
        // decline at once: one row runs on the caller, without the pool's hand-off.
        let shared = threads::run_where(py, x.len() == self.dim, add_shared)?;
        match shared {
            Some(added) => added.map_err(x_to_py),
            // An inverted file assigns and encodes under the read lock (searches go on), then
            // appends under the write lock.
            None => threads::run(py, || {
                let prepared = self.read().prepare_add(x);
                let mut index = self.write();
                match (prepared, ids) {
                    (Some(Ok(prepared)), ids) => index.add_prepared(prepared, x, ids),
                    (_, Some(ids)) => index.add_with_ids(x, ids),
                    (_, None) => index.add(x),
                }
            })?
            .map_err(x_to_py),
        }
    }

    /// The bytes `write_index` would write.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = threads::run(py, || vq::write_index_to_bytes(self.read().as_ref()))?.map_err(to_py)?;
        Ok(PyBytes::new(py, &bytes))
    }

    // A panic cannot leave an index half-updated in a way the lock would protect us from (vq
    // returns errors, not panics); a poisoned lock is taken as it is.
    fn read(&self) -> RwLockReadGuard<'_, Box<dyn vq::Index>> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Box<dyn vq::Index>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A search default as an attribute: an `AttributeError` when the index has none (so
    /// `hasattr(index, "nprobe")` says whether it has inverted lists).
    fn search_default(&self, py: Python<'_>, knob: SearchDefault) -> PyResult<usize> {
        let (value, missing) = py.detach(|| {
            let g = self.read();
            (g.search_default(knob), missing_attribute(g.as_ref(), format_args!("has no {} set", knob.name())))
        });
        value.ok_or_else(|| PyAttributeError::new_err(missing))
    }

    /// Sets a search default (`ValueError` below 1, `AttributeError` when no part of the index
    /// has it: in Faiss, `index.nprobe = 16` on a refine wrapper silently sets nothing).
    fn set_search_default(&self, py: Python<'_>, knob: SearchDefault, value: i64) -> PyResult<()> {
        let value = count(knob.name(), value)?;
        if value == 0 {
            return Err(PyValueError::new_err(format!("`{}` must be at least 1", knob.name())));
        }
        py.detach(|| self.write().set_search_default(knob, value)).map_err(setter_err)
    }
}

/// Why an attribute getter has nothing to give: `what` about the index, or, for an index merged
/// away, that it was (the husk keeps the spec, so "IVF16,Flat has no nprobe set" would mislead).
fn missing_attribute(index: &dyn vq::Index, what: std::fmt::Arguments<'_>) -> String {
    match moved::Moved::of(index) {
        Some(husk) => husk.err().to_string(),
        None => format!("{} {what}", index.spec()),
    }
}

/// A setter's refusal of a valid value: no part of the index has the attribute (or the index
/// was merged away and has no parts), an `AttributeError` as for the getter.
fn setter_err(e: vq::Error) -> PyErr {
    match e {
        vq::Error::Parameter { .. } | vq::Error::Unsupported { .. } => PyAttributeError::new_err(e.to_string()),
        e => to_py(e),
    }
}

#[pymethods]
impl PyIndex {
    /// Vector dimension.
    #[getter]
    fn d(&self) -> usize {
        self.dim
    }

    /// Vectors searchable now (added and not removed).
    #[getter]
    fn ntotal(&self, py: Python<'_>) -> usize {
        py.detach(|| self.read().len())
    }

    /// Whether `add` can be called (indexes with nothing to learn are always trained).
    #[getter]
    fn is_trained(&self, py: Python<'_>) -> bool {
        py.detach(|| self.read().is_trained())
    }

    /// Faiss' metric number: `vq.METRIC_L2`, `vq.METRIC_INNER_PRODUCT` or `vq.METRIC_COSINE`.
    #[getter]
    fn metric_type(&self) -> i64 {
        metric_number(self.metric)
    }

    /// The metric's name: `"l2"`, `"ip"` or `"cosine"`.
    #[getter]
    fn metric(&self) -> &'static str {
        self.metric.name()
    }

    /// The factory string that builds an index like this one.
    #[getter]
    fn spec(&self, py: Python<'_>) -> String {
        py.detach(|| self.read().spec().to_string())
    }

    /// Inverted lists scanned per query when a search gives no `nprobe` (Faiss' `index.nprobe`;
    /// set through a refine stage or an OPQ rotation too). Written with the index.
    #[getter]
    fn get_nprobe(&self, py: Python<'_>) -> PyResult<usize> {
        self.search_default(py, SearchDefault::Nprobe)
    }

    #[setter]
    fn set_nprobe(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        self.set_search_default(py, SearchDefault::Nprobe, value)
    }

    /// An HNSW graph's beam width when a search gives no `ef` (Faiss' `index.hnsw.efSearch`).
    /// Written with the index.
    #[getter]
    fn get_ef(&self, py: Python<'_>) -> PyResult<usize> {
        self.search_default(py, SearchDefault::Ef)
    }

    #[setter]
    fn set_ef(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        self.set_search_default(py, SearchDefault::Ef, value)
    }

    /// A refine stage's candidates per hit when a search gives no `refine_k` (Faiss'
    /// `index.k_factor`). Written with the index.
    #[getter]
    fn get_refine_k(&self, py: Python<'_>) -> PyResult<usize> {
        self.search_default(py, SearchDefault::RefineK)
    }

    #[setter]
    fn set_refine_k(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        self.set_search_default(py, SearchDefault::RefineK, value)
    }

    /// The least candidates a refine stage re-scores when a search gives no `refine_k`
    /// (Milvus SCANN's `reorder_k`); an `AttributeError` until set. Written with the index.
    #[getter]
    fn get_reorder_k(&self, py: Python<'_>) -> PyResult<usize> {
        self.search_default(py, SearchDefault::ReorderK)
    }

    #[setter]
    fn set_reorder_k(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        self.set_search_default(py, SearchDefault::ReorderK, value)
    }

    /// The beam width an HNSW graph's later adds search with (Faiss' `hnsw.efConstruction`;
    /// vq's default 200, Faiss' 40): set it before adding. `AttributeError` where the searched
    /// index is no graph. Written with the index.
    #[getter]
    fn get_ef_construction(&self, py: Python<'_>) -> PyResult<usize> {
        let (value, missing) = py.detach(|| {
            let g = self.read();
            (g.ef_construction(), missing_attribute(g.as_ref(), format_args!("has no HNSW graph to build")))
        });
        value.ok_or_else(|| PyAttributeError::new_err(missing))
    }

    #[setter]
    fn set_ef_construction(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        let value = count("ef_construction", value)?;
        if value == 0 {
            return Err(PyValueError::new_err("`ef_construction` must be at least 1"));
        }
        py.detach(|| self.write().set_ef_construction(value)).map_err(setter_err)
    }

    /// Faiss' `index.hnsw`, for code written against it: `index.hnsw.efSearch` is
    /// `index.ef`, `index.hnsw.efConstruction` is `index.ef_construction`. `AttributeError`
    /// where the searched index is no graph.
    #[getter]
    fn hnsw(slf: &Bound<'_, Self>) -> PyResult<HnswParameters> {
        slf.get().get_ef_construction(slf.py())?;
        Ok(HnswParameters { index: slf.clone().unbind() })
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.ntotal(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let (spec, n, moved) = py.detach(|| {
            let g = self.read();
            (g.spec().to_string(), g.len(), moved::Moved::of(g.as_ref()).is_some())
        });
        let state = if moved { "merged into another".to_string() } else { format!("ntotal={n}") };
        format!("<vq.Index {spec} d={} metric={} {state}>", self.dim, self.metric.name())
    }

    /// Learns the index's parameters (codebooks, ranges, lists) from `x` (n × d); a no-op for
    /// indexes that need none. Allowed again only while the index is empty.
    fn train(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let x = convert::rows(x, "x", Some(self.dim))?;
        let x = x.as_slice()?;
        threads::run(py, || self.write().train(x))?.map_err(x_to_py)
    }

    /// Makes room for `n` more vectors up front (a hint: a bulk load then does not grow step
    /// by step).
    fn reserve(&self, py: Python<'_>, n: i64) -> PyResult<()> {
        let n = count("n", n)?;
        py.detach(|| self.write().reserve(n));
        Ok(())
    }

    /// Adds `x` (n × d) under automatic ids: from the number of vectors ever added, past every
    /// id `add_with_ids` gave (never repeating one), below 2^63 (`ValueError` past it).
    fn add(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let x = convert::rows(x, "x", Some(self.dim))?;
        self.add_rows(py, x.as_slice()?, None)
    }

    /// Adds `x` (n × d) under `ids` (n non-negative int64 ids, none already present; a removed
    /// id may be given again); on error nothing is added.
    fn add_with_ids(&self, py: Python<'_>, x: &Bound<'_, PyAny>, ids: &Bound<'_, PyAny>) -> PyResult<()> {
        let x = convert::rows(x, "x", Some(self.dim))?;
        let ids = convert::ids(ids, "ids")?;
        self.add_rows(py, x.as_slice()?, Some(&ids))
    }

    /// The `k` best matches of every row of `x` (nq × d): `(D, I)`, float32 scores and int64
    /// ids, `nq × k`, best first, `-1` ids where fewer than `k` match. Scores: squared L2
    /// (smaller is better), inner product or cosine (larger is better).
    ///
    /// Settings come from `params` (a `vq.SearchParameters`) and the keywords, which win.
    #[pyo3(signature = (x, k, params=None, *, ef=None, nprobe=None, refine_k=None, filter=None))]
    #[allow(clippy::too_many_arguments)] // Faiss' keyword surface
    fn search<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        k: i64,
        params: Option<PyRef<'py, SearchParameters>>,
        ef: Option<i64>,
        nprobe: Option<i64>,
        refine_k: Option<i64>,
        filter: Option<Bound<'py, PyAny>>,
    ) -> PyResult<SearchResult<'py>> {
        let k = count("k", k)?;
        let knobs = Knobs::new(py, params, ef, nprobe, refine_k, filter)?;
        let x = convert::rows(x, "x", Some(self.dim))?;
        let x = x.as_slice()?;
        let params = knobs.params(k);
        let search = || self.read().search_with(x, &params).map(|n| flat_result(&n));
        let result = threads::run_where(py, self.one_serial_query(x), search)?;
        to_numpy(py, result.map_err(x_to_py)?)
    }

    /// Every stored vector within `radius` of each row of `x` (Faiss' `range_search`):
    /// `(lims, D, I)`, where query `i`'s hits are `I[lims[i]:lims[i+1]]` with scores
    /// `D[lims[i]:lims[i+1]]`, best first. Within means squared L2 below `radius`, inner
    /// product or cosine above it. `Flat` is exact, flat codes return every code within the
    /// radius and inverted files every entry of the probed lists within it; graphs every node
    /// their beam (`ef`) scored within it plus every node linked to those within it; refine
    /// stages re-score their base's answer at a radius widened by the score error seen among
    /// each query's 32 nearest (`refine_widening` scales that widening: 0 is Faiss' way, the
    /// base's answer at the radius, faster and finding fewer hits; default 1); GPU indexes
    /// deepen k-NN (k = 32, 64, … up to 1,024). The other keywords are `search`'s.
    #[pyo3(signature = (x, radius, params=None, *, ef=None, nprobe=None, refine_k=None, filter=None, refine_widening=None))]
    #[allow(clippy::too_many_arguments)] // Faiss' keyword surface
    fn range_search<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        radius: f32,
        params: Option<PyRef<'py, SearchParameters>>,
        ef: Option<i64>,
        nprobe: Option<i64>,
        refine_k: Option<i64>,
        filter: Option<Bound<'py, PyAny>>,
        refine_widening: Option<f32>,
    ) -> PyResult<RangeSearchResult<'py>> {
        let knobs = Knobs { refine_widening, ..Knobs::new(py, params, ef, nprobe, refine_k, filter)? };
        let x = convert::rows(x, "x", Some(self.dim))?;
        let x = x.as_slice()?;
        let params = knobs.params(0);
        let search = || self.read().range_search_with(x, radius, &params);
        let result = threads::run_where(py, self.one_serial_query(x), search)?;
        let result = result.map_err(x_to_py)?;
        let (lims, ids, scores) = result.into_parts();
        // Ids are below 2⁶³ (checked on the way in); offsets are below the hit count.
        let lims: Vec<i64> = lims.into_iter().map(|l| l as i64).collect();
        let ids: Vec<i64> = ids.into_iter().map(|id| id as i64).collect();
        Ok((lims.into_pyarray(py), scores.into_pyarray(py), ids.into_pyarray(py)))
    }

    /// The vector stored under `key` (Faiss' `reconstruct`), float32 of shape `(d,)`: exact for
    /// f32 storage (normalized, for cosine), the codes' decoding for quantized storage, from
    /// the refine store when there is one. An id not in the index raises `ValueError`.
    fn reconstruct<'py>(&self, py: Python<'py>, key: i64) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let id =
            u64::try_from(key).map_err(|_| PyValueError::new_err(format!("`key` must be non-negative, got {key}")))?;
        let v = threads::run_on_caller(py, || self.read().reconstruct(id)).map_err(to_py)?;
        Ok(v.into_pyarray(py))
    }

    /// `reconstruct` of every id of `keys`: float32 of shape `(len(keys), d)`.
    fn reconstruct_batch<'py>(&self, py: Python<'py>, keys: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let ids = convert::ids(keys, "keys")?;
        let rows = threads::run_on_caller(py, || self.read().reconstruct_batch(&ids)).map_err(to_py)?;
        rows_to_numpy(py, ids.len(), self.dim, rows)
    }

    /// `reconstruct` of ids `i0 .. i0 + ni` (Faiss' `reconstruct_n`): `(ni, d)`.
    fn reconstruct_n<'py>(&self, py: Python<'py>, i0: i64, ni: i64) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (first, n) = (count("i0", i0)? as u64, count("ni", ni)?);
        // n distinct ids cannot all be present in an index holding fewer.
        let held = py.detach(|| self.read().len());
        if n > held {
            return Err(PyValueError::new_err(format!("`ni` = {n} is above the {held} vectors the index holds")));
        }
        let ids: Vec<u64> = (first..first.saturating_add(n as u64)).collect();
        let rows = threads::run_on_caller(py, || self.read().reconstruct_batch(&ids)).map_err(to_py)?;
        rows_to_numpy(py, ids.len(), self.dim, rows)
    }

    /// Removes the given ids (unknown ids are skipped); returns how many were removed.
    fn remove_ids(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<usize> {
        let ids = convert::ids(ids, "ids")?;
        threads::run(py, || self.write().remove_ids(&ids))?.map_err(to_py)
    }

    /// Removes every vector (Faiss' `reset`), keeping the training and the search defaults:
    /// the index is as right after `train`, and `add` numbers ids from 0 again.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.write().reset()).map_err(to_py)
    }

    /// The fingerprint of what training produced (centroids, codebooks, ranges) and of the
    /// index's kind, dimension and metric, as an int: indexes with equal fingerprints were
    /// filled from copies of one trained, empty index, so they merge (`merge_from`) and their
    /// results combine (`vq.merge_topk`). Adding vectors never changes it; an untrained
    /// inverted file has 0.
    fn fingerprint(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.read().fingerprint())
    }

    /// Pickling (and `copy.deepcopy`, multiprocessing, joblib, Ray's object store): the index
    /// travels as `serialize_index`'s bytes and comes back through `deserialize_index`, every
    /// checksum verified.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let rebuild = py.import("vq")?.getattr("deserialize_index")?;
        Ok((rebuild, (self.to_bytes(py)?,)))
    }

    /// Moves every vector of `other` into this index, ids plus `shift_ids` (Faiss'
    /// `merge_from(other, add_id)`): the last step of a sharded build. Inverted files merge
    /// (`IVF…`, also with `RFlat`); graphs and flat scans raise `vq.VqError` (keep them as
    /// shards and combine results with `vq.merge_topk`). An index trained separately raises
    /// `vq.FingerprintMismatch`, another kind `ValueError`, with both indexes unchanged.
    ///
    /// `other` is emptied: afterwards it holds nothing (`ntotal` 0, `is_trained` False, its
    /// `repr` says merged) and every other use of it raises `vq.VqError`. Every
    /// refusal (the kind, the training, a duplicate id) is found before anything moves, with
    /// both indexes locked: a refused merge leaves both as they were, `other` still searchable.
    #[pyo3(signature = (other, shift_ids=0))]
    fn merge_from(&self, py: Python<'_>, other: &PyIndex, shift_ids: i64) -> PyResult<()> {
        if std::ptr::eq(self, other) {
            return Err(PyValueError::new_err("an index cannot be merged into itself"));
        }
        let shift = u64::try_from(shift_ids)
            .map_err(|_| PyValueError::new_err(format!("`shift_ids` must be non-negative, got {shift_ids}")))?;
        py.detach(|| {
            // Both locks for the whole merge (so no add slips in between the check and the
            // move), taken in address order so that `a.merge_from(b)` racing
            // `b.merge_from(a)` cannot deadlock.
            let (mut ours, mut theirs) = if (self as *const PyIndex) < (other as *const PyIndex) {
                let ours = self.write();
                (ours, other.write())
            } else {
                let theirs = other.write();
                (self.write(), theirs)
            };
            // Either side merged away already: say so, not that its kind cannot merge.
            if let Some(husk) = moved::Moved::of(ours.as_ref()).or(moved::Moved::of(theirs.as_ref())) {
                return Err(husk.err());
            }
            if !ours.is_mergeable() {
                return Err(vq::Error::NotMergeable { spec: ours.spec().to_string() });
            }
            let ours_spec = ours.spec();
            if theirs.spec() != ours_spec || theirs.dim() != self.dim || theirs.metric() != self.metric {
                return Err(vq::Error::MergeMismatch {
                    theirs: format!("{} (dimension {}, {})", theirs.spec(), theirs.dim(), theirs.metric()),
                    ours: format!("{ours_spec} (dimension {}, {})", self.dim, self.metric),
                });
            }
            let (ours_fp, theirs_fp) = (ours.fingerprint(), theirs.fingerprint());
            if theirs_fp != ours_fp {
                return Err(vq::Error::TrainedStateMismatch { ours: ours_fp, theirs: theirs_fp });
            }
            // Results are int64: every shifted id (below `next_id`, plus `shift`) below 2^63.
            if !theirs.is_empty() && theirs.next_id().saturating_sub(1).saturating_add(shift) > i64::MAX as u64 {
                return Err(vq::Error::Parameter {
                    name: "shift_ids",
                    what: format!(
                        "{shift} takes the other index's ids (up to {}) past 2^63 - 1 (results are int64)",
                        theirs.next_id() - 1
                    ),
                });
            }
            // Duplicate and overflowing ids: what the merge would refuse while moving.
            ours.check_merge(theirs.as_ref(), shift)?;
            let husk = moved::Moved { dim: theirs.dim(), metric: theirs.metric(), spec: theirs.spec() };
            let taken = std::mem::replace(&mut *theirs, Box::new(husk) as Box<dyn vq::Index>);
            ours.merge_from(taken, shift)
        })
        .map_err(to_py)
    }

    /// Bytes held, by part (`vectors`, `links`, `ids`, `trained`, `refine`, `scratch`: what
    /// the index allocated; `mapped`: what it serves from a memory-mapped file) and `total`
    /// (all of them). The index's own allocations: memory the C allocator kept after training
    /// freed it (per-thread arenas) is the process', not the index's.
    fn memory_usage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = py.detach(|| self.read().memory_usage());
        let d = PyDict::new(py);
        for (k, v) in [
            ("vectors", m.vectors),
            ("links", m.links),
            ("ids", m.ids),
            ("trained", m.trained),
            ("refine", m.refine),
            ("scratch", m.scratch),
            ("mapped", m.mapped),
            ("total", m.total()),
        ] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
}

/// `index.hnsw` (Faiss' `HNSW` object's two knobs): a view of the index's graph parameters,
/// each read and written through the index.
#[pyclass(module = "vq", frozen)]
struct HnswParameters {
    index: Py<PyIndex>,
}

#[pymethods]
impl HnswParameters {
    /// The default search beam (`index.ef`).
    #[getter(efSearch)]
    fn get_ef_search(&self, py: Python<'_>) -> PyResult<usize> {
        self.index.get().search_default(py, SearchDefault::Ef)
    }

    #[setter(efSearch)]
    fn set_ef_search(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        self.index.get().set_search_default(py, SearchDefault::Ef, value)
    }

    /// The beam of later adds (`index.ef_construction`).
    #[getter(efConstruction)]
    fn get_ef_construction(&self, py: Python<'_>) -> PyResult<usize> {
        self.index.get().get_ef_construction(py)
    }

    #[setter(efConstruction)]
    fn set_ef_construction(&self, py: Python<'_>, value: i64) -> PyResult<()> {
        self.index.get().set_ef_construction(py, value)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<vq.HnswParameters efSearch={} efConstruction={}>",
            self.get_ef_search(py)?,
            self.get_ef_construction(py)?
        ))
    }
}

/// An empty index of the kind `description` names (Faiss' factory strings: `"Flat"`,
/// `"HNSW32"`, `"HNSW32,SQ8,RFlat"`, `"IVF1024,Flat"`, `"IVF1024,PQ16"`, `"PQ32x4fs"`, …).
/// Build parameters a string does not carry are keywords: `ef_construction`, `ef` (the default
/// search beam), `nprobe`, `refine_k`, `reorder_k` (refine stages: re-score at least this many),
/// `by_residual` (`IVF…,PQ…x4fs`: code residuals, the default, or the vectors; other inverted
/// files code one way and raise `ValueError` for the other) and
/// `anisotropic_threshold` (`…x4fs`: ScaNN's score-aware PQ training).
#[pyfunction]
#[pyo3(signature = (
    d, description, metric=None, *, ef_construction=None, ef=None, nprobe=None, refine_k=None, reorder_k=None,
    by_residual=None, anisotropic_threshold=None,
))]
#[allow(clippy::too_many_arguments)] // Faiss' positional shape plus the build keywords
fn index_factory(
    py: Python<'_>,
    d: i64,
    description: &str,
    metric: Option<&Bound<'_, PyAny>>,
    ef_construction: Option<i64>,
    ef: Option<i64>,
    nprobe: Option<i64>,
    refine_k: Option<i64>,
    reorder_k: Option<i64>,
    by_residual: Option<bool>,
    anisotropic_threshold: Option<f32>,
) -> PyResult<PyIndex> {
    let dim = count("d", d)?;
    let metric = metric.map_or(Ok(Metric::L2), parse_metric)?;
    let params = IndexParams {
        ef_construction: opt_count("ef_construction", ef_construction)?,
        ef: opt_count("ef", ef)?,
        refine_k: opt_count("refine_k", refine_k)?,
        nprobe: opt_count("nprobe", nprobe)?,
        reorder_k: opt_count("reorder_k", reorder_k)?,
        by_residual,
        anisotropic_threshold,
    };
    let index = py.detach(|| vq::index_factory_with(dim, description, metric, &params)).map_err(to_py)?;
    Ok(PyIndex::new(index))
}

/// Writes `index` to `path` atomically (a crash leaves any previous file intact).
#[pyfunction]
fn write_index(py: Python<'_>, index: &PyIndex, path: PathBuf) -> PyResult<()> {
    threads::run(py, || vq::write_index(index.read().as_ref(), &path))?.map_err(to_py)
}

/// Reads an index written by `write_index`; every checksum is verified (`vq.FormatError` for a
/// damaged or foreign file). `mmap=True` maps the file instead of reading it into a buffer
/// first: IVF-Flat/SQ/PQ indexes then serve their lists from the map (copying a list only
/// when it is written; `memory_usage()["mapped"]`), other kinds copy what they keep (less
/// peak memory while loading). The file must not be modified while the index lives.
#[pyfunction]
#[pyo3(signature = (path, mmap=false))]
fn read_index(py: Python<'_>, path: PathBuf, mmap: bool) -> PyResult<PyIndex> {
    let index = threads::run(py, || vq::read_index_with(&path, ReadOptions { mmap }))?.map_err(to_py)?;
    Ok(PyIndex::new(index))
}

/// The bytes `write_index` would write (Faiss' `serialize_index`), as `bytes`: for Ray's
/// object store, a network or a database. `deserialize_index` reads them back.
#[pyfunction]
fn serialize_index<'py>(py: Python<'py>, index: &PyIndex) -> PyResult<Bound<'py, PyBytes>> {
    index.to_bytes(py)
}

/// An index from the bytes `serialize_index` made (`bytes`, `bytearray`, `memoryview` or a
/// uint8 numpy array); every checksum is verified (`vq.FormatError` otherwise).
#[pyfunction]
fn deserialize_index(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<PyIndex> {
    let bytes = convert::byte_array(data, "data")?;
    let bytes = bytes.as_slice()?;
    let index = threads::run(py, || vq::read_index_from_bytes(bytes))?.map_err(to_py)?;
    Ok(PyIndex::new(index))
}

/// The `k` best of several results over the same queries (shards searched separately):
/// `D_list`, `I_list` hold each shard's `(D, I)` as `search` returns them (nq × k_i, ids
/// already global, `-1` padding). Padding is dropped, ties go to the smaller id, an id found
/// by several shards is kept once. The same function as the Rust API's `vq::merge_topk`.
#[pyfunction]
#[pyo3(name = "merge_topk", signature = (D_list, I_list, k, metric=None))]
#[allow(non_snake_case)] // Faiss' names for the arrays
fn merge_topk_py<'py>(
    py: Python<'py>,
    D_list: Vec<Bound<'py, PyAny>>,
    I_list: Vec<Bound<'py, PyAny>>,
    k: i64,
    metric: Option<&Bound<'py, PyAny>>,
) -> PyResult<SearchResult<'py>> {
    let k = count("k", k)?;
    let metric = metric.map_or(Ok(Metric::L2), parse_metric)?;
    if D_list.len() != I_list.len() {
        return Err(PyValueError::new_err(format!(
            "`D_list` has {} results but `I_list` {}: one (D, I) pair per shard",
            D_list.len(),
            I_list.len()
        )));
    }
    let mut results = Vec::with_capacity(D_list.len());
    for (s, (d, i)) in D_list.iter().zip(&I_list).enumerate() {
        let d = convert::rows(d, &format!("D_list[{s}]"), None)?;
        let i = convert::id_rows(i, &format!("I_list[{s}]"))?;
        if d.shape() != i.shape() {
            return Err(PyValueError::new_err(format!(
                "`D_list[{s}]` has shape {} but `I_list[{s}]` {}",
                convert::shape_str(d.shape()),
                convert::shape_str(i.shape())
            )));
        }
        let (nq, ki) = (d.shape()[0], d.shape()[1]);
        if let Some(first) = results.first().map(Neighbors::num_queries)
            && nq != first
        {
            return Err(PyValueError::new_err(format!(
                "`D_list[{s}]` has {nq} rows, `D_list[0]` {first}: every shard answers the same queries"
            )));
        }
        let (d, i) = (d.as_slice()?, i.as_slice()?);
        let mut rows = Vec::with_capacity(d.len() / ki.max(1));
        for (q, (ds, is)) in d.chunks(ki.max(1)).zip(i.chunks(ki.max(1))).enumerate() {
            let mut row = Vec::with_capacity(ki);
            for (j, (&score, &id)) in ds.iter().zip(is).enumerate() {
                match id {
                    -1 => {}
                    id if id < 0 => {
                        return Err(PyValueError::new_err(format!(
                            "`I_list[{s}]`[{q}, {j}] = {id}: ids are non-negative (-1 only pads)"
                        )));
                    }
                    _ if score.is_nan() => {
                        return Err(PyValueError::new_err(format!(
                            "`D_list[{s}]`[{q}, {j}] is NaN: a hit's score must be a number"
                        )));
                    }
                    id => row.push((id as u64, score)),
                }
            }
            rows.push(row);
        }
        if ki == 0 {
            rows = vec![Vec::new(); nq];
        }
        results.push(Neighbors::from_rows(ki.max(1), metric, rows).map_err(|e| to_py(e.into()))?);
    }
    let merged = threads::run(py, || vq::merge_topk(&results, k, metric).map(|n| flat_result(&n)))?;
    to_numpy(py, merged.map_err(|e| to_py(e.into()))?)
}

/// Exact k nearest neighbours of every row of `xq` among the rows of `xb`: `(D, I)` as
/// `Index.search` returns them.
#[pyfunction]
#[pyo3(signature = (xq, xb, k, metric=None))]
fn knn<'py>(
    py: Python<'py>,
    xq: &Bound<'py, PyAny>,
    xb: &Bound<'py, PyAny>,
    k: i64,
    metric: Option<&Bound<'py, PyAny>>,
) -> PyResult<SearchResult<'py>> {
    let k = count("k", k)?;
    let metric = metric.map_or(Ok(Metric::L2), parse_metric)?;
    let xb = convert::rows(xb, "xb", None)?;
    let dim = xb.shape()[1];
    let xq = convert::rows(xq, "xq", Some(dim))?;
    let (xb, xq) = (xb.as_slice()?, xq.as_slice()?);
    let result = threads::run(py, || vq::knn_exact(xb, xq, dim, k, metric).map(|n| flat_result(&n)))?;
    to_numpy(py, result.map_err(|e| to_py(e.into()))?)
}

/// Scales every row of `x` to unit L2 norm, in place (as Faiss' `normalize_L2`): `x` must be a
/// C-contiguous float32 array (n × d). Rows of norm zero stay zero.
#[pyfunction]
#[pyo3(name = "normalize_L2")]
fn normalize_l2(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
    let Ok(a) = x.cast::<PyArray2<f32>>() else {
        return Err(PyTypeError::new_err(
            "normalize_L2 works in place: `x` must be a 2-D float32 numpy array (convert with np.ascontiguousarray(x, dtype=np.float32))",
        ));
    };
    if !a.is_c_contiguous() {
        return Err(PyTypeError::new_err(
            "normalize_L2 works in place: `x` must be C-contiguous (np.ascontiguousarray(x) makes a copy that is)",
        ));
    }
    let dim = a.shape()[1];
    let mut rw = a.try_readwrite().map_err(|e| PyValueError::new_err(format!("`x` cannot be written: {e}")))?;
    let data = rw.as_slice_mut()?;
    threads::run(py, || vq::normalize_l2(data, dim))?.map_err(|e| to_py(e.into()))
}

/// Centroids (k × d), the objective after each iteration, the cluster sizes.
type KmeansResult<'py> = (Bound<'py, PyArray2<f32>>, Vec<f64>, Vec<usize>);

/// k-means (vq-cluster, Faiss' defaults): returns `(centroids k × d float32, objective per
/// iteration, cluster sizes)`. `vq.Kmeans` is the Faiss-shaped wrapper.
#[pyfunction]
#[pyo3(signature = (x, k, *, niter=25, seed=1234, spherical=false, nredo=1, max_points_per_centroid=256, min_points_per_centroid=39))]
#[allow(clippy::too_many_arguments)] // Faiss' ClusteringParameters
fn kmeans_train<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    k: i64,
    niter: i64,
    seed: u64,
    spherical: bool,
    nredo: i64,
    max_points_per_centroid: i64,
    min_points_per_centroid: i64,
) -> PyResult<KmeansResult<'py>> {
    let params = vq::vq_cluster::KMeans::new(count("k", k)?)
        .iterations(count("niter", niter)?)
        .seed(seed)
        .spherical(spherical)
        .nredo(count("nredo", nredo)?)
        .max_points_per_centroid(count("max_points_per_centroid", max_points_per_centroid)?)
        .min_points_per_centroid(count("min_points_per_centroid", min_points_per_centroid)?);
    let x = convert::rows(x, "x", None)?;
    let dim = x.shape()[1];
    let x = x.as_slice()?;
    let c = threads::run(py, || params.fit(x, dim))?.map_err(error::cluster_to_py)?;
    let centroids = Array2::from_shape_vec((c.k(), c.dim()), c.centroids().to_vec())
        .map_err(|e| VqError::new_err(format!("centroid shape: {e}")))?;
    Ok((centroids.into_pyarray(py), c.objective().to_vec(), c.sizes().to_vec()))
}

/// Sets how many threads each later call uses: `n ≥ 1` gives every calling Python thread its
/// own pool of `n` workers; 0 (the default) shares one worker per core among all callers.
/// A search of one query, and a graph's add of one vector, run on the calling thread itself,
/// whatever `n` (except a `Flat` search, which splits a query's scan across the workers).
/// At most 1,024 (each worker is an OS thread per calling Python thread: 5,000 took 25 s to
/// start, 20,000 minutes).
#[pyfunction]
fn set_num_threads(n: i64) -> PyResult<()> {
    const MAX: usize = 1024;
    let n = count("n", n)?;
    if n > MAX {
        return Err(PyValueError::new_err(format!("`n` = {n} threads: at most {MAX} (0 uses one per core)")));
    }
    threads::set(n);
    Ok(())
}

/// The threads a call started now would use.
#[pyfunction]
fn get_num_threads() -> usize {
    threads::get()
}

/// The SIMD level vq's kernels use on this CPU (`avx512`, `avx2`, `neon`, `portable`).
#[pyfunction]
fn simd_level() -> &'static str {
    vq::vq_distance::simd_level().name()
}

#[pymodule]
fn _vq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyIndex>()?;
    m.add_class::<SearchParameters>()?;
    m.add_class::<HnswParameters>()?;
    m.add_class::<pca::PyPcaMatrix>()?;
    m.add_function(wrap_pyfunction!(index_factory, m)?)?;
    m.add_function(wrap_pyfunction!(write_index, m)?)?;
    m.add_function(wrap_pyfunction!(read_index, m)?)?;
    m.add_function(wrap_pyfunction!(knn, m)?)?;
    m.add_function(wrap_pyfunction!(serialize_index, m)?)?;
    m.add_function(wrap_pyfunction!(deserialize_index, m)?)?;
    m.add_function(wrap_pyfunction!(merge_topk_py, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_l2, m)?)?;
    m.add_function(wrap_pyfunction!(kmeans_train, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    #[cfg(feature = "gpu")]
    {
        m.add_function(wrap_pyfunction!(gpu::index_cpu_to_gpu, m)?)?;
        m.add_function(wrap_pyfunction!(gpu::index_gpu_to_cpu, m)?)?;
    }
    m.add("METRIC_L2", METRIC_L2)?;
    m.add("METRIC_INNER_PRODUCT", METRIC_INNER_PRODUCT)?;
    m.add("METRIC_COSINE", METRIC_COSINE)?;
    m.add("VqError", py.get_type::<VqError>())?;
    m.add("NotTrained", py.get_type::<NotTrained>())?;
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("FingerprintMismatch", py.get_type::<FingerprintMismatch>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
