"""Bad input raises the exception a Python caller expects, with the Rust message."""

import numpy as np
import pytest

import vq


@pytest.fixture()
def hnsw(data):
    x, _ = data
    index = vq.index_factory(16, "HNSW16")
    index.add(x[:500])
    return index


def test_exception_hierarchy():
    assert issubclass(vq.VqError, RuntimeError)
    assert issubclass(vq.NotTrained, vq.VqError)
    assert issubclass(vq.FormatError, vq.VqError)


def test_wrong_dimension(hnsw):
    with pytest.raises(ValueError, match=r"`x` has shape \(3, 8\), expected \(3, 16\)"):
        hnsw.search(np.zeros((3, 8), np.float32), 1)
    with pytest.raises(ValueError, match=r"`x` has shape \(2, 17\)"):
        hnsw.add(np.zeros((2, 17), np.float32))
    with pytest.raises(ValueError, match=r"2-D array .* got shape \(16,\)"):
        hnsw.search(np.zeros(16, np.float32), 1)
    with pytest.raises(ValueError, match=r"`xq` has shape \(1, 3\)"):
        vq.knn(np.zeros((1, 3), np.float32), np.zeros((5, 4), np.float32), 1)


def test_nan_and_inf(hnsw):
    q = np.zeros((4, 16), np.float32)
    q[2, 5] = np.nan
    with pytest.raises(ValueError, match="row 2 has a non-finite value at component 5"):
        hnsw.search(q, 1)
    x = np.ones((3, 16), np.float32)
    x[1, 0] = np.inf
    n = hnsw.ntotal
    with pytest.raises(ValueError, match="non-finite"):
        hnsw.add(x)
    assert hnsw.ntotal == n  # nothing was added


def test_k(hnsw):
    q = np.zeros((1, 16), np.float32)
    with pytest.raises(ValueError, match="k must be at least 1"):
        hnsw.search(q, 0)
    with pytest.raises(ValueError, match="`k` must be non-negative"):
        hnsw.search(q, -1)
    with pytest.raises(ValueError, match="cannot be allocated"):
        hnsw.search(q, 2**62)
    with pytest.raises(ValueError, match="`ef` must be non-negative"):
        hnsw.search(q, 1, ef=-5)


def test_dtypes_and_orders(data, hnsw):
    x, q = data
    D, I = hnsw.search(q, 5)
    # float64, Fortran order, a strided view, a list: converted once, same answers.
    for other in [q.astype(np.float64), np.asfortranarray(q), np.repeat(q, 2, axis=0)[::2], q.tolist()]:
        D2, I2 = hnsw.search(other, 5)
        np.testing.assert_array_equal(I, I2)
        np.testing.assert_array_equal(D, D2)
    # uint8 data (SIFT-style) is accepted and scored as its float values.
    u = np.random.default_rng(0).integers(0, 255, (200, 16)).astype(np.uint8)
    flat = vq.index_factory(16, "Flat")
    flat.add(u)
    _, I = flat.search(u[:5], 1)
    assert list(I[:, 0]) == list(range(5))
    for bad in [q.astype(np.complex64), q > 0, q.astype(object), np.array([["a"] * 16])]:
        with pytest.raises(TypeError, match="dtype"):
            hnsw.search(bad, 1)


def test_untrained():
    x = np.random.default_rng(0).random((300, 16), dtype=np.float32)
    for spec in ["IVF16,Flat", "SQ8", "PQ4", "HNSW16,SQ8"]:
        index = vq.index_factory(16, spec)
        assert not index.is_trained
        with pytest.raises(vq.NotTrained, match="not trained"):
            index.add(x)


def test_bad_factory_and_metric():
    with pytest.raises(ValueError, match="index spec"):
        vq.index_factory(16, "HNSW,Foo")
    with pytest.raises(ValueError, match="unknown metric"):
        vq.index_factory(16, "Flat", "manhattan")
    with pytest.raises(ValueError, match="metric 7"):
        vq.index_factory(16, "Flat", 7)
    with pytest.raises(ValueError, match="`d` must be non-negative"):
        vq.index_factory(-1, "Flat")
    with pytest.raises(ValueError, match="dimension"):
        vq.index_factory(0, "Flat")


def test_ids(hnsw):
    x = np.ones((2, 16), np.float32)
    with pytest.raises(ValueError, match=r"`ids`\[1\] = -3"):
        hnsw.add_with_ids(x, np.array([10**6, -3]))
    with pytest.raises(ValueError, match="2 ids for 3 vectors|3 vectors"):
        hnsw.add_with_ids(np.ones((3, 16), np.float32), np.array([10**6, 10**6 + 1]))
    with pytest.raises(ValueError, match="already in the index"):
        hnsw.add_with_ids(x, np.array([0, 10**6]))
    with pytest.raises(ValueError, match="below 2"):
        hnsw.add_with_ids(x[:1], np.array([2**63], dtype=np.uint64))
    with pytest.raises(TypeError, match="integer array"):
        hnsw.remove_ids(np.array([1.5]))


def test_files(tmp_path, hnsw):
    with pytest.raises(FileNotFoundError):
        vq.read_index(tmp_path / "missing.vq")
    bad = tmp_path / "bad.vq"
    bad.write_bytes(b"not an index at all" * 10)
    with pytest.raises(vq.FormatError, match="magic"):
        vq.read_index(bad)
    good = tmp_path / "good.vq"
    vq.write_index(hnsw, good)
    raw = bytearray(good.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(vq.FormatError):
        vq.read_index(bad)
    with pytest.raises(vq.FormatError):
        vq.read_index(bad, mmap=True)


def test_normalize_needs_writable_float32():
    with pytest.raises(TypeError, match="float32"):
        vq.normalize_L2(np.ones((2, 3)))
    with pytest.raises(TypeError, match="C-contiguous"):
        vq.normalize_L2(np.ones((3, 2), np.float32).T)
    ro = np.ones((2, 3), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="cannot be written"):
        vq.normalize_L2(ro)


def test_gpu_factory_strings_name_the_missing_feature():
    """A `GPU,…` factory string in a wheel built without the cargo feature `gpu` is a typed
    error that says how to get GPU indexes (with the feature, tests/test_gpu.py covers it)."""
    if hasattr(vq, "index_cpu_to_gpu"):
        pytest.skip("wheel built with the cargo feature `gpu`")
    for spec in ("GPU,Flat", "GPU1,IVF4,PQ4"):
        with pytest.raises(vq.VqError, match="`gpu` feature"):
            vq.index_factory(8, spec)
