//! Where the Rust work of a call runs: always with the GIL released, on rayon's global pool by
//! default, or on a pool of `set_num_threads(n)` workers owned by the calling Python thread.
//!
//! The pools are per Python thread so that Python threads scale: with one shared
//! single-worker pool, two Python threads searching at once would queue behind each other.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::Python;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::PyResult;

/// Workers per call; 0 means rayon's global pool (one worker per core).
static THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static POOL: RefCell<Option<Arc<rayon::ThreadPool>>> = const { RefCell::new(None) };
}

/// Sets the workers each later call uses (0: every core, through rayon's global pool).
pub(crate) fn set(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// The workers a call started now would use.
pub(crate) fn get() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => rayon::current_num_threads(),
        n => n,
    }
}

/// Runs `f` with the GIL released on the calling thread, whatever the setting: for work that
/// will not split across workers (one query of an index that searches a query on one thread),
/// where a pool would only add its hand-off. Handing a call to a pool wakes a worker and, at
/// the end, the caller: about 65 µs a call on the 2-core KVM guests vq is measured on, more
/// than an HNSW16 search of one SIFT query at ef 32 (~45 µs). Faiss (OpenMP) and hnswlib run
/// such a call on the caller too.
pub(crate) fn run_on_caller<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(f)
}

/// [`run_on_caller`] when `on_caller`, else [`run`].
pub(crate) fn run_where<T: Send>(py: Python<'_>, on_caller: bool, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    if on_caller { Ok(run_on_caller(py, f)) } else { run(py, f) }
}

/// Runs `f` with the GIL released, on the pool the current setting names.
pub(crate) fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    py.detach(|| {
        let n = THREADS.load(Ordering::Relaxed);
        if n == 0 {
            return Ok(f());
        }
        let pool = POOL.with(|slot| {
            let mut slot = slot.borrow_mut();
            match slot.as_ref() {
                Some(pool) if pool.current_num_threads() == n => Ok(Arc::clone(pool)),
                _ => {
                    let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(n).build()?);
                    *slot = Some(Arc::clone(&pool));
                    Ok(pool)
                }
            }
        });
        pool.map(|pool| pool.install(f))
    })
    .map_err(|e: rayon::ThreadPoolBuildError| {
        PyRuntimeError::new_err(format!("cannot start {n} threads: {e}", n = get()))
    })
}
