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
    # Named by the Python argument, not the Rust call's parameter (`queries`).
    with pytest.raises(ValueError, match="`x` row 2 has a non-finite value at component 5"):
        hnsw.search(q, 1)
    x = np.ones((3, 16), np.float32)
    x[1, 0] = np.inf
    n = hnsw.ntotal
    with pytest.raises(ValueError, match="`x` row 1 has a non-finite value"):
        hnsw.add(x)
    assert hnsw.ntotal == n  # nothing was added
    with pytest.raises(ValueError, match="`x` row 1 has a non-finite value"):
        vq.index_factory(16, "SQ8").train(x)
    with pytest.raises(ValueError, match="`x` row 0 has norm zero"):
        vq.index_factory(16, "Flat", "cosine").search(np.zeros((1, 16), np.float32), 1)


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


@pytest.mark.parametrize("spec", ["Flat", "HNSW16", "IVF8,Flat", "HNSW16,SQ8,RFlat"])
def test_automatic_ids_go_past_every_given_id_and_stay_below_2_63(data, spec):
    x, _ = data
    index = vq.index_factory(16, spec)
    index.train(x[:500])
    index.add_with_ids(x[:1], np.array([40]))
    index.add(x[1:4])  # past 40, never onto it (HNSW once numbered by slot: "id 1 is already...")
    _, ids = index.search(x[:4], 1, **({"nprobe": 8} if "IVF" in spec else {}))
    assert sorted(ids.ravel()) == [40, 41, 42, 43]
    index.remove_ids(np.array([41]))
    index.add_with_ids(x[1:2], np.array([41]))  # a removed id may be given again
    top = 2**63 - 1
    index.add_with_ids(x[4:5], np.array([top - 2]))
    index.add(x[5:7])  # top - 1 and top: the last int64 ids
    with pytest.raises(ValueError, match=r"past 2\^63 - 1"):
        index.add(x[7:8])
    assert index.ntotal == 7


def trained_pair(x):
    """Two copies of one trained, empty IVF8,Flat index: shards of one build."""
    base = vq.index_factory(16, "IVF8,Flat")
    base.train(x[:500])
    raw = vq.serialize_index(base)
    return vq.deserialize_index(raw), vq.deserialize_index(raw)


def test_a_merge_shifting_ids_past_2_63_is_refused(data):
    x, _ = data
    a, b = trained_pair(x)
    a.add_with_ids(x[:1], np.array([5]))
    b.add_with_ids(x[1:2], np.array([2**62]))
    with pytest.raises(ValueError, match="shift_ids"):
        a.merge_from(b, 2**62)
    assert (a.ntotal, b.ntotal) == (1, 1)
    a.merge_from(b, 2**62 - 1)  # lands on 2^63 - 1
    assert a.ntotal == 2


def test_reserve_beyond_memory_is_a_dropped_hint(data):
    x, _ = data
    for spec in ["Flat", "HNSW16", "PQ4x4fs", "SQ8"]:
        index = vq.index_factory(16, spec)
        index.train(x[:500])
        index.reserve(2**62)
        index.add(x[:10])
        assert index.ntotal == 10


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


def test_unaligned_arrays_are_copied_once(data):
    x, q = data
    index = vq.index_factory(16, "Flat")
    index.add(x[:100])
    # A C-contiguous float32 view one byte off alignment: read through an aligned copy.
    unaligned = np.ndarray(q.shape, np.float32, buffer=bytearray(b"\0" + q.tobytes()), offset=1)
    assert not unaligned.flags.aligned and unaligned.flags.c_contiguous
    D, I = index.search(unaligned, 3)
    D0, I0 = index.search(q, 3)
    np.testing.assert_array_equal(I, I0)
    np.testing.assert_array_equal(D, D0)


def test_pca_refuses_non_finite_rows(data):
    x, _ = data
    pca = vq.PCAMatrix(16, 8)
    pca.train(x[:500])
    for bad in (np.nan, np.inf):
        rows = np.ones((2, 16), np.float32)
        rows[1, 3] = bad
        with pytest.raises(ValueError, match="row 1 has a non-finite value at component 3"):
            pca.apply(rows)
        with pytest.raises(ValueError, match="non-finite"):
            pca.reverse_transform(rows[:, :8])


def test_set_num_threads_has_a_ceiling():
    with pytest.raises(ValueError, match="at most 1024"):
        vq.set_num_threads(5000)
    assert vq.get_num_threads() >= 1


def test_merge_topk_names_nan_scores_and_mismatched_shards():
    I = np.array([[7, 8]])
    with pytest.raises(ValueError, match=r"`D_list\[0\]`\[0, 0\] is NaN"):
        vq.merge_topk([np.array([[np.nan, 1.0]], np.float32)], [I], 2)
    D2, I2 = np.zeros((2, 2), np.float32), np.array([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"`D_list\[1\]` has 2 rows, `D_list\[0\]` 1"):
        vq.merge_topk([np.zeros((1, 2), np.float32), D2], [I, I2], 2)


@pytest.mark.parametrize(
    "spec, knob",
    [("Flat", dict(nprobe=4)), ("IVF16,Flat", dict(ef=4)), ("Flat", dict(by_residual=False)),
     ("HNSW16", dict(anisotropic_threshold=0.2)), ("HNSW16", dict(reorder_k=50))],
)
def test_factory_parameters_no_part_uses_are_refused(spec, knob):
    with pytest.raises(ValueError, match=f"parameter `{next(iter(knob))}`"):
        vq.index_factory(16, spec, **knob)


def test_zero_vectors_under_inner_product_on_an_hnsw_coarse_quantizer(data):
    x, _ = data
    index = vq.index_factory(16, "IVF16_HNSW8,Flat", vq.METRIC_INNER_PRODUCT)
    index.train(x[:1000])
    index.add(x[:1000])
    zero = np.zeros((1, 16), np.float32)
    index.add(zero)
    D, _ = index.search(zero, 3, nprobe=16)
    assert (D == 0).all()


def test_an_index_merged_away_says_so(data):
    x, _ = data
    a, b = trained_pair(x)
    b.add(x[:10])
    a.merge_from(b, 100)
    for use in (lambda: b.reconstruct(0), lambda: a.merge_from(b), lambda: b.merge_from(a),
                lambda: b.range_search(x[:1], 1.0)):
        with pytest.raises(vq.VqError, match="merged into another"):
            use()
    assert b.ntotal == 0 and "merged into another" in repr(b)
    # Attributes too (an AttributeError, so `hasattr(b, "nprobe")` is False), by the same words.
    for attribute in ("nprobe", "ef", "refine_k", "ef_construction"):
        with pytest.raises(AttributeError, match="merged into another"):
            getattr(b, attribute)
        with pytest.raises(AttributeError, match="merged into another"):
            setattr(b, attribute, 8)
    assert not hasattr(b, "nprobe") and a.nprobe >= 1
