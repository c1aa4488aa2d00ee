"""The binding against the Rust API and exact search: results, round trips, parameters."""

import os
import subprocess

import numpy as np
import pytest

import vq

# Every index family the factory builds, over the conformance suite's shapes (d = 16).
SPECS = [
    "Flat",
    "SQ8",
    "SQ4",
    "SQfp16",
    "SQbf16",
    "PQ8",
    "PQ8x4",
    "OPQ4,PQ4",
    "PQ8x4fs",
    "PQ8x4fs,RFlat",
    "HNSW16",
    "HNSW16,SQ8",
    "HNSW16,PQ8",
    "HNSW16,SQ8,RFlat",
    "HNSW16,SQ8,Refine(SQfp16)",
    "PQ8,RFlat",
    "SQ4,Refine(SQ8)",
    "RaBitQ,RFlat",
    "RaBitQfs,RFlat",
    "IVF16,RaBitQ,RFlat",
    "IVF16,RaBitQfs,RFlat",
    "RaBitQ4,RFlat",
    "RaBitQfs3,RFlat",
    "IVF16,RaBitQfs2,RFlat",
    "IVF16,RaBitQ2",
    "IVF16,Flat",
    "IVF16,SQ8",
    "IVF16,PQ8",
    "IVF16,PQ8,RFlat",
    "PCA12,HNSW16,RFlat",
    "PCAR8,IVF16,Flat",
]


def build(spec, x, metric=vq.METRIC_L2):
    index = vq.index_factory(x.shape[1], spec, metric)
    index.train(x)
    index.add(x)
    return index


def exact(x, q, k):
    d2 = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def recall(I, gt):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(I, gt)])


@pytest.mark.parametrize("spec", SPECS)
def test_factory_round_trip(spec, data, tmp_path):
    x, q = data
    index = build(spec, x)
    assert index.spec == spec
    assert (index.d, index.ntotal, len(index), index.is_trained) == (16, len(x), len(x), True)
    D, I = index.search(q, 10, ef=64, nprobe=4, refine_k=2)
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == I.shape == (len(q), 10)
    # Sorted best first (squared L2: ascending) and actually near: recall against exact search.
    assert np.all(np.diff(D, axis=1) >= 0)
    assert recall(I, exact(x, q, 10)) > 0.15

    path = tmp_path / "index.vq"
    vq.write_index(index, str(path))
    back = vq.read_index(path)  # str and os.PathLike both work
    assert (back.spec, back.d, back.ntotal, back.metric) == (spec, 16, len(x), "l2")
    D2, I2 = back.search(q, 10, ef=64, nprobe=4, refine_k=2)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_array_equal(D, D2)
    D3, I3 = vq.read_index(path, mmap=True).search(q, 10, ef=64, nprobe=4, refine_k=2)
    np.testing.assert_array_equal(I, I3)


def rust_search(index_path, queries_path, k, **knobs):
    """Results of the same file searched by the Rust API (vq's search_index example)."""
    exe = os.environ.get("VQ_SEARCH_INDEX")
    if not exe:
        pytest.skip("VQ_SEARCH_INDEX (the search_index example binary) not set: run through `cargo xtask test`")
    args = [exe, str(index_path), str(queries_path), str(k)] + [f"{n}={v}" for n, v in knobs.items()]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        pairs = [p.split(":") for p in line.split()]
        rows.append(([int(i) for i, _ in pairs], [np.float32(float(s)) for _, s in pairs]))
    return rows


@pytest.mark.parametrize(
    "spec,knobs",
    [("HNSW16,SQ8,RFlat", {"ef": 32, "refine_k": 2}), ("IVF16,PQ8", {"nprobe": 3}), ("Flat", {}), ("PQ8x4fs", {})],
)
def test_results_equal_rust_api(spec, knobs, data, tmp_path):
    x, q = data
    index = build(spec, x)
    vq.write_index(index, tmp_path / "i.vq")
    np.save(tmp_path / "q.npy", q)
    rows = rust_search(tmp_path / "i.vq", tmp_path / "q.npy", 7, **knobs)
    D, I = index.search(q, 7, **knobs)
    assert len(rows) == len(q)
    for (ids, scores), d_row, i_row in zip(rows, D, I):
        keep = i_row >= 0
        assert list(i_row[keep]) == ids
        np.testing.assert_array_equal(d_row[keep], np.array(scores, dtype=np.float32))


def test_flat_is_exact_and_knn_matches(data):
    x, q = data
    D, I = build("Flat", x).search(q, 5)
    np.testing.assert_array_equal(I, exact(x, q, 5))
    ref = ((q[:, None, :].astype(np.float64) - x[I]) ** 2).sum(-1)
    np.testing.assert_allclose(D, ref, rtol=1e-4, atol=1e-3)
    D2, I2 = vq.knn(q, x, 5, vq.METRIC_L2)
    np.testing.assert_array_equal(I2, I)
    np.testing.assert_array_equal(D2, D)
    # Inner product: larger is better, ordered descending.
    D3, I3 = vq.knn(q, x, 5, "ip")
    ip = q.astype(np.float64) @ x.T.astype(np.float64)
    np.testing.assert_array_equal(I3[:, 0], ip.argmax(1))
    assert np.all(np.diff(D3, axis=1) <= 0)


def test_padding_and_k_above_ntotal():
    index = vq.index_factory(4, "Flat")
    index.add(np.eye(4, dtype=np.float32)[:3])
    D, I = index.search(np.ones((2, 4), np.float32), 5)
    assert I.shape == (2, 5)
    assert (I[:, 3:] == -1).all() and (I[:, :3] >= 0).all()
    empty = vq.index_factory(4, "HNSW8")
    D, I = empty.search(np.ones((1, 4), np.float32), 3)
    assert (I == -1).all()


def test_add_with_ids_remove_ids_and_filters(data):
    x, q = data
    ids = np.arange(len(x), dtype=np.int64) * 10 + 7
    for spec in ["Flat", "HNSW16", "IVF16,Flat"]:
        index = vq.index_factory(16, spec)
        index.train(x)
        index.add_with_ids(x, ids)
        D, I = index.search(x[:20], 1, ef=64, nprobe=16)
        assert list(I[:, 0]) == list(ids[:20]), spec
        assert index.remove_ids(ids[:10]) == 10
        assert index.remove_ids(np.array([1, 2, 3])) == 0  # unknown ids are skipped
        assert index.ntotal == len(x) - 10
        D, I = index.search(x[:10], 3, ef=64, nprobe=16)
        assert not set(I.ravel()) & set(ids[:10]), spec
        # A filter as an id array and as a boolean mask over ids give the same answer.
        allowed = ids[100:400:3]
        D1, I1 = index.search(q, 5, ef=128, nprobe=16, filter=allowed)
        mask = np.zeros(ids.max() + 1, dtype=bool)
        mask[allowed] = True
        D2, I2 = index.search(q, 5, params=vq.SearchParameters(ef=128, nprobe=16, filter=mask))
        assert set(I1.ravel()) <= set(allowed)
        np.testing.assert_array_equal(I1, I2)


@pytest.mark.parametrize("spec", SPECS)
def test_reset_empties_the_index_and_keeps_its_training(spec, data):
    """Faiss' `reset`: nothing held or answered, the trained, empty index's bytes, ids from 0
    again, and the same answers once the vectors are added again."""
    x, q = data
    index = vq.index_factory(16, spec)
    index.train(x)
    trained = vq.serialize_index(index)
    index.add_with_ids(x, np.arange(len(x), dtype=np.int64) + 1000)
    index.reset()
    assert index.ntotal == 0 and index.is_trained
    assert vq.serialize_index(index) == trained
    D, I = index.search(q, 3)
    assert (I == -1).all()
    index.add(x)
    fresh = vq.deserialize_index(trained)
    fresh.add(x)
    graph = any(c.startswith("HNSW") for c in spec.split(","))
    if not graph:  # graphs are built in parallel: the same only up to order
        np.testing.assert_array_equal(index.search(q, 5, nprobe=16)[1], fresh.search(q, 5, nprobe=16)[1])
    assert index.search(x[:50], 1, ef=64, nprobe=16)[1].max() < len(x), "ids from 0 again"


@pytest.mark.parametrize("spec", ["IVF32,Flat", "IVF32,SQ8", "IVF32,PQ8"])
def test_a_filter_on_an_inverted_file_keeps_recall_and_full_answers(spec, data, tmp_path):
    """nprobe 1 under a mask passing 1 % of the ids: the answers are full, hold only passing
    ids, and are those of the same index holding only the passing vectors with every list
    probed (a mask that selective is scored from its ids alone); IVF-Flat's are the exact
    filtered top 10. A filter passing 3 ids answers 3, padded."""
    x, q = data
    index = build(spec, x)
    mask = np.zeros(len(x), dtype=bool)
    mask[np.arange(7, len(x), 97)] = True
    _, I = index.search(q, 10, nprobe=1, filter=mask)
    assert (I >= 0).all() and mask[I].all()
    vq.write_index(index, str(tmp_path / "index.vq"))
    alone = vq.read_index(str(tmp_path / "index.vq"))
    alone.remove_ids(np.flatnonzero(~mask))
    _, T = alone.search(q, 10, nprobe=32)
    np.testing.assert_array_equal(I, T)
    if spec.endswith("Flat"):
        passing = np.flatnonzero(mask)
        np.testing.assert_array_equal(np.sort(I, axis=1), np.sort(passing[exact(x[passing], q, 10)], axis=1))
    _, I = index.search(q, 10, nprobe=1, filter=np.array([5, 500, 2500]))
    assert (np.sort(I[:, :3], axis=1) == [5, 500, 2500]).all() and (I[:, 3:] == -1).all()


def test_params_object_and_keywords(data):
    x, q = data
    index = build("IVF16,Flat", x)
    p = vq.SearchParameters(nprobe=16)
    assert p.nprobe == 16 and "nprobe=16" in repr(p)
    _, I_all = index.search(q, 5, params=p)
    np.testing.assert_array_equal(I_all, exact(x, q, 5))
    # A keyword overrides the params object.
    _, I_one = index.search(q, 5, params=p, nprobe=1)
    _, I_one_kw = index.search(q, 5, nprobe=1)
    np.testing.assert_array_equal(I_one, I_one_kw)
    p.nprobe = 1
    np.testing.assert_array_equal(index.search(q, 5, params=p)[1], I_one)


@pytest.mark.parametrize(
    "spec, attrs",
    [
        ("Flat", {}),
        ("HNSW16", {"ef": 20}),
        ("IVF16,Flat", {"nprobe": 3}),
        # Faiss' classic slip: `index.nprobe = 16` on the refine wrapper sets nothing there.
        ("IVF16,PQ8,RFlat", {"nprobe": 3, "refine_k": 2}),
        ("OPQ4,IVF16,PQ4", {"nprobe": 3}),
        ("HNSW16,SQ8,RFlat", {"ef": 20, "refine_k": 3, "reorder_k": 25}),
    ],
)
def test_search_defaults_are_attributes_that_reach_their_part(spec, attrs, data, tmp_path):
    x, q = data
    index = build(spec, x)
    refine = {"refine_k", "reorder_k"} if "RFlat" in spec else set()
    for name in ("nprobe", "ef", "refine_k", "reorder_k"):
        if name not in attrs and name not in refine:
            assert not hasattr(index, name), f"{spec}: {name}"
            with pytest.raises(AttributeError, match=name):
                setattr(index, name, 4)
    for name, value in attrs.items():
        setattr(index, name, value)
        assert getattr(index, name) == value
        with pytest.raises(ValueError):
            setattr(index, name, 0)
        with pytest.raises(ValueError):
            setattr(index, name, -1)
    # A search without the knobs uses the defaults: the same answer as giving them. (reorder_k
    # 25 re-scores max(k, 25) = 25 candidates: refine_k 5 at k = 5.)
    given = {n: v for n, v in attrs.items() if n != "reorder_k"}
    if "reorder_k" in attrs:
        given["refine_k"] = attrs["reorder_k"] // 5
    D, I = index.search(q, 5)
    D2, I2 = index.search(q, 5, **given)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_array_equal(D, D2)
    # Written with the index.
    vq.write_index(index, tmp_path / "i.vq")
    back = vq.read_index(tmp_path / "i.vq")
    for name, value in attrs.items():
        assert getattr(back, name) == value
    np.testing.assert_array_equal(back.search(q, 5)[1], I)


def test_factory_build_keywords(data):
    x, q = data
    index = vq.index_factory(16, "IVF16,PQ8x4fs,RFlat", reorder_k=40, by_residual=False, nprobe=4)
    assert (index.reorder_k, index.nprobe) == (40, 4)
    index.train(x)
    index.add(x)
    np.testing.assert_array_equal(index.search(q, 5)[1], index.search(q, 5, refine_k=8)[1])
    with pytest.raises(ValueError):
        vq.index_factory(16, "IVF16,PQ8x4fs", anisotropic_threshold=float("nan"))
    # Lists that code one way refuse the other rather than ignore it.
    with pytest.raises(ValueError, match="by_residual"):
        vq.index_factory(16, "IVF16,RaBitQ", by_residual=False)
    vq.index_factory(16, "IVF16,Flat", by_residual=False)


def test_cosine_and_normalize(data):
    x, q = data
    index = build("Flat", x * 3.0, vq.METRIC_COSINE)
    assert index.metric == "cosine" and index.metric_type == vq.METRIC_COSINE
    D, I = index.search(q, 3)
    xn, qn = x.copy(), q.copy()
    vq.normalize_L2(xn)
    vq.normalize_L2(qn)
    np.testing.assert_allclose(np.linalg.norm(xn, axis=1), 1, rtol=1e-5)
    cos = qn @ xn.T
    np.testing.assert_array_equal(I[:, 0], cos.argmax(1))
    np.testing.assert_allclose(D[:, 0], cos.max(1), rtol=1e-4)


def test_kmeans(data):
    x, _ = data
    km = vq.Kmeans(16, 20, niter=10, seed=3)
    obj = km.train(x)
    assert km.centroids.shape == (20, 16) and km.centroids.dtype == np.float32
    assert obj == km.obj[-1] and km.obj[-1] <= km.obj[0]
    D, I = km.assign(x[:100])
    d2 = ((x[:100, None, :] - km.centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(I, d2.argmin(1))
    assert km.sizes.sum() == len(x)
    # The same seed gives the same centroids.
    km2 = vq.Kmeans(16, 20, niter=10, seed=3)
    km2.train(x)
    np.testing.assert_array_equal(km.centroids, km2.centroids)


def test_memory_usage_and_repr(data):
    x, _ = data
    index = build("HNSW16,SQ8", x)
    m = index.memory_usage()
    assert m["total"] == sum(v for k, v in m.items() if k != "total")
    assert m["links"] > 0 and m["vectors"] >= len(x) * 16
    assert "HNSW16,SQ8" in repr(index) and "ntotal=3000" in repr(index)
    assert vq.simd_level() in ("avx512", "avx2", "neon", "portable")


@pytest.mark.parametrize("spec", ["Flat", "IVF16,Flat", "HNSW16", "IVF16,PQ8,RFlat"])
def test_range_search_has_faiss_shape_and_keeps_what_is_within(spec, data):
    x, q = data
    index = build(spec, x)
    d2 = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    radius = float(np.median(np.sort(d2, axis=1)[:, 40]))
    lims, D, I = index.range_search(q, radius, ef=128, nprobe=16, refine_k=4)
    assert lims.dtype == np.int64 and D.dtype == np.float32 and I.dtype == np.int64
    assert lims.shape == (len(q) + 1,) and lims[0] == 0 and lims[-1] == len(D) == len(I)
    assert np.all(np.diff(lims) >= 0)
    assert np.all(D < radius)
    found = 0
    for i in range(len(q)):
        ids, scores = I[lims[i] : lims[i + 1]], D[lims[i] : lims[i + 1]]
        assert np.all(np.diff(scores) >= 0)
        truth = set(np.flatnonzero(d2[i] < radius * (1 - 1e-5)))
        found += len(truth & set(ids.tolist()))
        if spec in ("Flat", "IVF16,Flat"):  # exact: every vector within, none outside
            assert truth <= set(ids.tolist())
            np.testing.assert_allclose(scores, d2[i, ids], rtol=1e-4, atol=1e-3)
    assert found / max(1, int((d2 < radius * (1 - 1e-5)).sum())) > 0.9
    # A filter keeps only the ids it accepts; a NaN radius is a ValueError.
    lims2, _, I2 = index.range_search(q, radius, ef=128, nprobe=16, refine_k=4, filter=np.arange(0, len(x), 2))
    assert np.all(I2 % 2 == 0) and len(I2) < len(I)
    with pytest.raises(ValueError):
        index.range_search(q, float("nan"))


def test_refine_widening_trades_hits_for_speed(data):
    x, q = data
    index = build("IVF16,PQ4,RFlat", x)
    d2 = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    radius = float(np.median(np.sort(d2, axis=1)[:, 40]))

    def hits(**kw):
        lims, _, I = index.range_search(q, radius, nprobe=16, **kw)
        return [set(I[lims[i] : lims[i + 1]].tolist()) for i in range(len(q))]

    faiss_way, default = hits(refine_widening=0.0), hits()
    assert default == hits(refine_widening=1.0)
    assert all(a <= b for a, b in zip(faiss_way, default))
    assert sum(map(len, faiss_way)) < sum(map(len, default))
    with pytest.raises(ValueError, match="refine_widening"):
        index.range_search(q, radius, refine_widening=-1.0)


@pytest.mark.parametrize("spec", ["Flat", "HNSW16", "SQ8", "IVF16,PQ8", "IVF16,PQ8,RFlat"])
def test_reconstruct_gives_the_stored_vector(spec, data):
    x, _ = data
    index = build(spec, x)
    v = index.reconstruct(5)
    assert v.dtype == np.float32 and v.shape == (16,)
    rows = index.reconstruct_batch(np.array([5, 0, 9]))
    assert rows.shape == (3, 16)
    np.testing.assert_array_equal(rows[0], v)
    np.testing.assert_array_equal(index.reconstruct_n(0, 10)[9], rows[2])
    if spec in ("Flat", "HNSW16", "IVF16,PQ8,RFlat"):  # f32 vectors kept: exact
        np.testing.assert_array_equal(rows, x[[5, 0, 9]])
    else:  # decoded codes: near, not equal
        assert np.sum((rows - x[[5, 0, 9]]) ** 2) < 0.25 * np.sum(x[[5, 0, 9]] ** 2)
    index.remove_ids(np.array([5]))
    with pytest.raises(ValueError):
        index.reconstruct(5)
    with pytest.raises(ValueError):
        index.reconstruct_n(0, len(x) + 1)


def test_faiss_spellings_that_change_nothing_are_accepted(data):
    """Faiss scripts run unchanged: `IDMap` / `IDMap2` (every vq index takes ids), PQ's `np`
    and `IVF{n}(HNSW{m})` parse to vq's own spelling."""
    x, q = data
    for faiss_spec, ours in [
        ("IDMap,Flat", "Flat"),
        ("IDMap2,HNSW16", "HNSW16"),
        ("IVF16,PQ8np", "IVF16,PQ8"),
        ("IVF16(HNSW8),Flat", "IVF16_HNSW8,Flat"),
    ]:
        index = vq.index_factory(16, faiss_spec)
        assert index.spec == ours
        index.train(x)
        index.add_with_ids(x[:50], np.arange(1000, 1050))
        _, I = index.search(x[:3], 1, nprobe=16)
        assert I[:, 0].tolist() == [1000, 1001, 1002], faiss_spec


def test_pca_matrix_projects_like_numpy_and_maps_back():
    """`vq.PCAMatrix` (Faiss' `PCAMatrix`): the projections' distances are those of numpy's
    centred PCA to the same dimension, data in the kept subspace comes back from
    `reverse_transform`, eigenvalues fall, and misuse raises the usual errors."""
    rng = np.random.default_rng(5)
    basis = np.linalg.qr(rng.standard_normal((24, 24)))[0][:, :6]
    x = (rng.standard_normal((800, 6)) * np.array([5, 4, 3, 2, 1, 0.5])) @ basis.T + 3.0
    x = x.astype(np.float32)
    pca = vq.PCAMatrix(24, 6)
    with pytest.raises(vq.NotTrained):
        pca.apply(x)
    pca.train(x)
    assert pca.is_trained and (pca.d_in, pca.d_out) == (24, 6)
    y = pca.apply(x)
    assert y.shape == (800, 6) and y.dtype == np.float32
    c = np.cov(x.T.astype(np.float64), bias=True)
    w, v = np.linalg.eigh(c)
    ref = (x - x.mean(0)) @ v[:, ::-1][:, :6]
    d_vq = ((y[:50, None, :] - y[None, :50, :]) ** 2).sum(-1)
    d_np = ((ref[:50, None, :] - ref[None, :50, :]) ** 2).sum(-1)
    np.testing.assert_allclose(d_vq, d_np, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(pca.eigenvalues, w[::-1][:6], rtol=1e-3)
    np.testing.assert_allclose(pca.reverse_transform(y), x, atol=1e-3)
    assert pca.matrix.shape == (6, 24) and pca.mean.shape == (24,)
    with pytest.raises(ValueError):
        pca.apply(x[:, :20])
    with pytest.raises(ValueError):
        vq.PCAMatrix(8, 9)
