//! numpy in, numpy out, with one rule for what is accepted.
//!
//! Vectors: a 2-D array `(n, d)`. A C-contiguous float32 array is read in place (zero copy);
//! any other real dtype (float64, float16, integer, uint8) or memory order is converted once to
//! a C-contiguous float32 copy; anything else that numpy can turn into such an array (a list of
//! lists) is converted the same way. Complex, boolean, object and string arrays raise
//! `TypeError`; a wrong number of dimensions or columns raises `ValueError` naming the argument
//! and both shapes.
//!
//! Ids: a 1-D integer array (any width, signed or not), converted to u64; negative ids and ids
//! above 2⁶³ − 1 raise `ValueError` (results are int64 with −1 as padding, as in Faiss).

use numpy::{
    PyArray1, PyArray2, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray2, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};
use vq::{IdBitset, IdFilter, IdSet};

static NUMPY: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn numpy(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    Ok(NUMPY.get_or_try_init(py, || PyModule::import(py, "numpy").map(Bound::unbind))?.bind(py))
}

/// `(3, 4)`, as Python prints a shape.
pub(crate) fn shape_str(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// `x` as a numpy array (`numpy.asarray` for lists and other array-likes).
fn as_array<'py>(x: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyUntypedArray>> {
    if let Ok(a) = x.cast::<PyUntypedArray>() {
        return Ok(a.clone());
    }
    let a = numpy(x.py())?
        .call_method1("asarray", (x,))
        .map_err(|e| PyTypeError::new_err(format!("`{name}` must be a numpy array or convertible to one: {e}")))?;
    Ok(a.cast_into::<PyUntypedArray>()?)
}

/// `a` as a C-contiguous, aligned array of `dtype` (`numpy.require`: a copy only when it is
/// not one already; `ascontiguousarray` keeps an unaligned view, which cannot be read as a
/// slice).
fn contiguous<'py>(a: &Bound<'py, PyUntypedArray>, dtype: &str) -> PyResult<Bound<'py, PyAny>> {
    let py = a.py();
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", dtype)?;
    kwargs.set_item("requirements", "CA")?;
    numpy(py)?.call_method("require", (a,), Some(&kwargs))
}

/// Vectors `(n, d)` as C-contiguous float32, zero copy when they already are; `dim` is the
/// index's dimension when there is one.
pub(crate) fn rows<'py>(x: &Bound<'py, PyAny>, name: &str, dim: Option<usize>) -> PyResult<PyReadonlyArray2<'py, f32>> {
    let a = as_array(x, name)?;
    let dtype = a.dtype();
    if !matches!(dtype.kind(), b'f' | b'i' | b'u') {
        return Err(PyTypeError::new_err(format!(
            "`{name}` has dtype {dtype}: expected float32 (float64, float16 and integer arrays are converted to float32)"
        )));
    }
    let shape = a.shape();
    if shape.len() != 2 {
        let hint = if shape.len() == 1 { " (one vector: x.reshape(1, -1))" } else { "" };
        return Err(PyValueError::new_err(format!(
            "`{name}` must be a 2-D array (n, d), got shape {}{hint}",
            shape_str(shape)
        )));
    }
    if let Some(d) = dim
        && shape[1] != d
    {
        return Err(PyValueError::new_err(format!(
            "`{name}` has shape {}, expected ({}, {d}): the index has dimension {d}",
            shape_str(shape),
            shape[0]
        )));
    }
    let f32s = match a.cast::<PyArray2<f32>>() {
        Ok(f) if f.is_c_contiguous() && (f.data() as usize).is_multiple_of(align_of::<f32>()) => f.clone(),
        _ => contiguous(&a, "float32")?.cast_into::<PyArray2<f32>>()?,
    };
    f32s.try_readonly().map_err(|e| PyValueError::new_err(format!("`{name}` cannot be read: {e}")))
}

/// A result's id matrix `(nq, k)` as C-contiguous int64 (Faiss' `I`, `-1` as padding).
pub(crate) fn id_rows<'py>(x: &Bound<'py, PyAny>, name: &str) -> PyResult<numpy::PyReadonlyArray2<'py, i64>> {
    let a = as_array(x, name)?;
    let dtype = a.dtype();
    if !matches!(dtype.kind(), b'i' | b'u') {
        return Err(PyTypeError::new_err(format!("`{name}` has dtype {dtype}: expected an integer array of ids")));
    }
    if a.ndim() != 2 {
        return Err(PyValueError::new_err(format!(
            "`{name}` must be a 2-D array (nq, k), got shape {}",
            shape_str(a.shape())
        )));
    }
    let c = contiguous(&a, "int64")?.cast_into::<numpy::PyArray2<i64>>()?;
    c.try_readonly().map_err(|e| PyValueError::new_err(format!("`{name}` cannot be read: {e}")))
}

/// Bytes from `bytes`, `bytearray`, `memoryview` or a uint8 numpy array, as a uint8 array
/// (`numpy.frombuffer`: no copy).
pub(crate) fn byte_array<'py>(x: &Bound<'py, PyAny>, name: &str) -> PyResult<numpy::PyReadonlyArray1<'py, u8>> {
    let kwargs = PyDict::new(x.py());
    kwargs.set_item("dtype", "uint8")?;
    let a = numpy(x.py())?.call_method("frombuffer", (x,), Some(&kwargs)).map_err(|e| {
        PyTypeError::new_err(format!(
            "`{name}` must be bytes, a bytearray, a memoryview or a uint8 array (what vq.serialize_index returns): {e}"
        ))
    })?;
    let a = a.cast_into::<PyArray1<u8>>()?;
    a.try_readonly().map_err(|e| PyValueError::new_err(format!("`{name}` cannot be read: {e}")))
}

/// Ids as u64: a 1-D integer array, every id in `0..2⁶³`.
pub(crate) fn ids(x: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u64>> {
    let a = as_array(x, name)?;
    let dtype = a.dtype();
    if a.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "`{name}` must be a 1-D array of ids, got shape {}",
            shape_str(a.shape())
        )));
    }
    // `np.asarray([])` is float64: an empty list is a valid empty id list.
    let kind = if a.len() == 0 { b'i' } else { dtype.kind() };
    let too_large = |i: usize, v: u64| {
        PyValueError::new_err(format!("`{name}`[{i}] = {v}: ids must be below 2^63 (results are int64, -1 is padding)"))
    };
    match kind {
        b'u' => {
            let c = contiguous(&a, "uint64")?.cast_into::<PyArray1<u64>>()?;
            let v = c.to_vec()?;
            match v.iter().position(|&id| id > i64::MAX as u64) {
                Some(i) => Err(too_large(i, v[i])),
                None => Ok(v),
            }
        }
        b'i' => {
            let c = contiguous(&a, "int64")?.cast_into::<PyArray1<i64>>()?;
            let v = c.to_vec()?;
            match v.iter().position(|&id| id < 0) {
                Some(i) => Err(PyValueError::new_err(format!(
                    "`{name}`[{i}] = {}: ids must be non-negative (-1 only pads results)",
                    v[i]
                ))),
                None => Ok(v.into_iter().map(|id| id as u64).collect()),
            }
        }
        _ => Err(PyTypeError::new_err(format!("`{name}` has dtype {dtype}: expected an integer array of ids"))),
    }
}

/// A search filter: a boolean mask over ids (`mask[id]` accepts `id`) or an array of the
/// accepted ids. Dense ids become a bitset, sparse ones a hash set.
pub(crate) fn filter(x: &Bound<'_, PyAny>) -> PyResult<Box<dyn IdFilter>> {
    let a = as_array(x, "filter")?;
    if a.dtype().kind() == b'b' {
        if a.ndim() != 1 {
            return Err(PyValueError::new_err(format!(
                "`filter` as a boolean mask must be 1-D (one entry per id), got shape {}",
                shape_str(a.shape())
            )));
        }
        let mask = contiguous(&a, "bool")?.cast_into::<PyArray1<bool>>()?;
        let mask = mask.try_readonly().map_err(|e| PyValueError::new_err(format!("`filter` cannot be read: {e}")))?;
        return Ok(Box::new(IdBitset::from_mask(mask.as_slice()?)));
    }
    let ids = ids(&a, "filter")?;
    let max = ids.iter().copied().max().unwrap_or(0);
    // A bitset costs max/8 bytes: take it while that is within 16 bytes per accepted id.
    if max / 128 <= ids.len() as u64 + 1024 {
        Ok(Box::new(IdBitset::from_ids(&ids)))
    } else {
        Ok(Box::new(ids.into_iter().collect::<IdSet>()))
    }
}
