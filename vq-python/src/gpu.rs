//! `vq.index_cpu_to_gpu` / `vq.index_gpu_to_cpu` (the cargo feature `gpu`, off in the default
//! wheel: `maturin build --features gpu`): Faiss' Python calls over `vq::gpu`. CUDA is loaded
//! at run time, so a wheel built with the feature imports anywhere; without a GPU the calls
//! raise `vq.VqError` naming what is missing.

use pyo3::prelude::*;
use vq::gpu::{GpuClonerOptions, GpuStorage};

use crate::error::to_py;
use crate::{PyIndex, count, threads};

/// A copy of `index` on GPU `device` (Faiss' `index_cpu_to_gpu(res, device, index)`, with no
/// resources object): `Flat`, `IVF{nlist},Flat`, `IVF{nlist},SQ…` (every scalar quantizer) and
/// `IVF{nlist},PQ{m}` (8-bit codes). `use_float16` stores a `Flat` base in
/// half precision (Faiss' `GpuClonerOptions.useFloat16`). The copy searches with `k` and
/// `nprobe` up to 1024, and takes `SearchParameters(filter=…)` and `remove_ids` as the CPU
/// index does.
#[pyfunction]
#[pyo3(signature = (index, device=0, *, use_float16=false))]
pub(crate) fn index_cpu_to_gpu(py: Python<'_>, index: &PyIndex, device: i64, use_float16: bool) -> PyResult<PyIndex> {
    let ordinal = count("device", device)?;
    let options = GpuClonerOptions {
        storage: if use_float16 { GpuStorage::F16 } else { GpuStorage::F32 },
        ..GpuClonerOptions::default()
    };
    let moved = threads::run(py, || {
        let gpu = vq::gpu::shared_gpu(ordinal)?;
        vq::gpu::index_cpu_to_gpu_with(&gpu, index.read().as_ref(), &options)
    })?
    .map_err(to_py)?;
    Ok(PyIndex::new(moved))
}

/// A CPU copy of a GPU index (Faiss' `index_gpu_to_cpu`); a CPU index is copied as it is.
#[pyfunction]
pub(crate) fn index_gpu_to_cpu(py: Python<'_>, index: &PyIndex) -> PyResult<PyIndex> {
    let back = threads::run(py, || vq::gpu::index_gpu_to_cpu(index.read().as_ref()))?.map_err(to_py)?;
    Ok(PyIndex::new(back))
}
