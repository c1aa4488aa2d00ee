"""`vq.index_cpu_to_gpu` / `index_gpu_to_cpu`: only in a wheel built with the cargo feature `gpu`
(`maturin build --features gpu`); the default wheel has neither and these tests skip."""

import numpy as np
import pytest

import vq

pytestmark = pytest.mark.skipif(
    not hasattr(vq, "index_cpu_to_gpu"), reason="wheel built without the cargo feature `gpu`"
)


def _device_or_reason():
    """`None` and the reason when there is no usable GPU (the typed error), else `True`."""
    probe = vq.index_factory(4, "Flat")
    try:
        vq.index_cpu_to_gpu(probe)
    except vq.VqError as e:
        assert "no CUDA device" in str(e), str(e)
        return str(e)
    return None


def test_without_a_gpu_the_calls_raise_the_typed_error():
    reason = _device_or_reason()
    if reason is None:
        pytest.skip("a GPU is present: the no-device path is not exercised")
    with pytest.raises(vq.VqError, match="no CUDA device"):
        vq.index_cpu_to_gpu(vq.index_factory(8, "IVF4,Flat"), 0)
    with pytest.raises(ValueError, match="`device` must be non-negative"):
        vq.index_cpu_to_gpu(vq.index_factory(8, "Flat"), -1)
    # A CPU index given to index_gpu_to_cpu is copied (no device needed).
    cpu = vq.index_factory(4, "Flat")
    cpu.add(np.eye(4, dtype=np.float32))
    copy = vq.index_gpu_to_cpu(cpu)
    assert copy.ntotal == 4 and copy is not cpu


def test_flat_and_ivf_round_trip_on_a_gpu(data):
    reason = _device_or_reason()
    if reason is not None:
        pytest.skip(f"no GPU: {reason}")
    x, q = data
    for spec in ("Flat", "IVF8,Flat"):
        cpu = vq.index_factory(x.shape[1], spec)
        cpu.train(x)
        cpu.add(x)
        gpu = vq.index_cpu_to_gpu(cpu, 0)
        d_gpu, i_gpu = gpu.search(q, 10)
        d_cpu, i_cpu = cpu.search(q, 10)
        assert np.mean(i_gpu == i_cpu) > 0.99
        np.testing.assert_allclose(d_gpu, d_cpu, rtol=1e-4, atol=1e-4)
        back = vq.index_gpu_to_cpu(gpu)
        assert vq.serialize_index(back) == vq.serialize_index(cpu)
