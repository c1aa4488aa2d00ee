//! `vq.PCAMatrix`: the PCA projection on its own, with Faiss' `faiss.PCAMatrix` shape, for
//! reducing vectors before something else uses them (an index factory string's `PCA{d}`
//! component is the same projection inside an index).

use std::sync::{PoisonError, RwLock};

use numpy::{PyArray1, PyArray2};
use pyo3::prelude::*;
use vq::vq_quant::{PcaMatrix, PcaParams};

use crate::error::to_py;
use crate::{convert, count, rows_to_numpy, threads};

/// A PCA projection of `d_in`-dimensional vectors to `d_out` (Faiss' `PCAMatrix(d_in, d_out,
/// 0, random_rotation)`): `train(x)`, then `apply(x)` (n × d_out) and `reverse_transform(y)`
/// (back to n × d_in, the nearest point of the kept subspace). `centered=False` projects
/// without subtracting the mean, which keeps inner products' ranking (Faiss always centres).
#[pyclass(module = "vq", name = "PCAMatrix", frozen)]
pub(crate) struct PyPcaMatrix {
    inner: RwLock<PcaMatrix>,
}

impl PyPcaMatrix {
    fn with<T>(&self, f: impl FnOnce(&PcaMatrix) -> T) -> T {
        f(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }
}

#[pymethods]
impl PyPcaMatrix {
    #[new]
    #[pyo3(signature = (d_in, d_out, random_rotation=false, centered=true))]
    fn new(d_in: i64, d_out: i64, random_rotation: bool, centered: bool) -> PyResult<Self> {
        let params = PcaParams { random_rotation, ..PcaParams::new(count("d_out", d_out)?, centered) };
        let pca = PcaMatrix::new(count("d_in", d_in)?, params).map_err(|e| to_py(e.into()))?;
        Ok(PyPcaMatrix { inner: RwLock::new(pca) })
    }

    #[getter]
    fn d_in(&self) -> usize {
        self.with(PcaMatrix::d_in)
    }

    #[getter]
    fn d_out(&self) -> usize {
        self.with(PcaMatrix::d_out)
    }

    #[getter]
    fn is_trained(&self) -> bool {
        self.with(PcaMatrix::is_trained)
    }

    /// Learns the mean and the projection from `x` (n × d_in, n ≥ 2).
    fn train(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let d_in = self.d_in();
        let x = convert::rows(x, "x", Some(d_in))?;
        let x = x.as_slice()?;
        // Trained apart, then swapped in: a failed training leaves the projection as it was.
        let mut trained = self.with(Clone::clone);
        threads::run(py, || trained.train(x))?.map_err(|e| to_py(e.into()))?;
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = trained;
        Ok(())
    }

    /// `x` (n × d_in) projected: n × d_out.
    fn apply<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (d_in, d_out) = (self.d_in(), self.d_out());
        let x = convert::rows(x, "x", Some(d_in))?;
        let x = x.as_slice()?;
        let y = threads::run(py, || self.with(|p| p.apply(x)))?.map_err(|e| to_py(e.into()))?;
        rows_to_numpy(py, y.len() / d_out, d_out, y)
    }

    /// `y` (n × d_out) mapped back: n × d_in.
    fn reverse_transform<'py>(&self, py: Python<'py>, y: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (d_in, d_out) = (self.d_in(), self.d_out());
        let y = convert::rows(y, "y", Some(d_out))?;
        let y = y.as_slice()?;
        let x = threads::run(py, || self.with(|p| p.apply_inverse(y)))?.map_err(|e| to_py(e.into()))?;
        rows_to_numpy(py, x.len() / d_in, d_in, x)
    }

    /// The variance kept along each direction, largest first (empty before training).
    #[getter]
    fn eigenvalues<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_vec(py, self.with(|p| p.eigenvalues().to_vec()))
    }

    /// The training mean (zeros when not centred; empty before training).
    #[getter]
    fn mean<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_vec(py, self.with(|p| p.mean().to_vec()))
    }

    /// The projection, d_out × d_in (0 × d_in before training).
    #[getter]
    fn matrix<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (d_in, m) = self.with(|p| (p.d_in(), p.matrix().to_vec()));
        rows_to_numpy(py, m.len() / d_in, d_in, m)
    }

    fn __repr__(&self) -> String {
        self.with(|p| {
            let state = if p.is_trained() { "trained" } else { "untrained" };
            format!("vq.PCAMatrix({} -> {}, {}, {state})", p.d_in(), p.d_out(), p.name())
        })
    }
}
