"""vq.ray on a local Ray (2 CPUs, started once for this module): the issue's acceptance tests.

Small on purpose (CI runs on 2 cores): a few thousand 16-d vectors per build.
"""

import os
import sys

import numpy as np
import pytest

import vq
from conftest import clusters

ray = pytest.importorskip("ray", reason="vq.ray's tests need ray[data] (cargo xtask test installs it)")
import vq.ray as vqray  # noqa: E402

K = 10


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    fault = tmp_path_factory.mktemp("fault") / "kill-one-worker"
    # The local cluster's workers inherit this process's environment.
    os.environ[vqray._FAULT_ENV] = str(fault)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield fault
    ray.shutdown()
    del os.environ[vqray._FAULT_ENV]


@pytest.fixture(scope="module")
def data():
    return clusters(6000, 16, seed=11), clusters(100, 16, seed=12)


def recall(I, truth):
    return np.mean([len(set(a) & set(b)) / K for a, b in zip(I, truth)])


@pytest.mark.parametrize("source", ["numpy", "dataset"])
def test_ivf_shards_merged_equal_the_single_build(cluster, data, tmp_path, source):
    x, q = data
    # numpy: one slice per shard, no Ray Data; a Dataset: batches through the actor pool.
    ds, column = (x, "vector") if source == "numpy" else (ray.data.from_numpy(x), "data")
    m = vqray.build(
        ds, "IVF32,PQ8", column=column, train_sample=x, shards=4, out=tmp_path, merge=True, batch_size=700, workers=2
    )
    assert [s["count"] for s in m["shards"]] and sum(s["count"] for s in m["shards"]) == len(x)
    assert len(m["shards"]) == 4 and (m["parts"] == 0 if source == "numpy" else m["parts"] >= 8)
    assert [(s["min_id"], s["max_id"]) for s in m["shards"]][0][0] == 0
    assert max(s["max_id"] for s in m["shards"]) == len(x) - 1
    single = vq.index_factory(16, "IVF32,PQ8")
    single.train(x)
    single.add(x)
    merged = vq.read_index(m["merged"])
    assert vq.serialize_index(merged) == vq.serialize_index(single), "bit for bit"
    assert m["fingerprint"] == single.fingerprint()
    # Inverted-file shards probe the same lists: scatter-gather equals the merged index.
    with vqray.ShardedIndex(tmp_path) as sharded:
        assert sharded.ntotal == len(x)
        D, I = sharded.search(q, K, oversample=1, nprobe=8)
    D1, I1 = merged.search(q, K, nprobe=8)
    np.testing.assert_array_equal(I, I1)
    np.testing.assert_array_equal(D, D1)
    # And by radius: every shard's hits within it, joined per query, are the merged index's.
    radius = float(np.median(D1[:, -1]))
    with vqray.ShardedIndex(tmp_path) as sharded:
        lims, D, I = sharded.range_search(q, radius, nprobe=8)
    lims1, D1, I1 = merged.range_search(q, radius, nprobe=8)
    assert lims1[-1] > len(q)
    np.testing.assert_array_equal(lims, lims1)
    np.testing.assert_array_equal(I, I1)
    np.testing.assert_array_equal(D, D1)


def test_hnsw_scatter_gather_keeps_the_single_index_recall(cluster, data, tmp_path):
    x, q = data
    truth = vq.knn(q, x, K)[1]
    m = vqray.build(x, "HNSW16", shards=4, out=tmp_path, batch_size=1000, ef_construction=80)
    assert len(m["shards"]) == 4 and m["merged"] is None
    single = vq.index_factory(16, "HNSW16", ef_construction=80)
    single.add(x)
    r_one = recall(single.search(q, K, ef=32)[1], truth)
    with vqray.ShardedIndex(m) as sharded:
        r_sharded = recall(sharded.search(q, K, oversample=2, ef=32)[1], truth)
    assert r_sharded >= r_one - 0.01, (r_sharded, r_one)
    with pytest.raises(ValueError, match="inverted file"):
        vqray.build(x[:500], "HNSW16", shards=2, out=tmp_path / "again", merge=True)


@pytest.mark.parametrize("source", ["numpy", "dataset"])
def test_a_killed_worker_is_retried_and_every_id_is_there_once(cluster, data, tmp_path, source):
    x, _ = data
    # numpy: a shard's task, retried from its slice; a Dataset: an encoding actor, restarted.
    ds, column = (x, "vector") if source == "numpy" else (ray.data.from_numpy(x), "data")
    cluster.write_text("2")  # the first worker to finish its 2nd batch kills itself
    m = vqray.build(
        ds, "IVF16,Flat", column=column, train_sample=x, shards=2, out=tmp_path, merge=True, batch_size=400, workers=2
    )
    assert not cluster.exists() and cluster.with_name(cluster.name + ".fired").exists(), "the worker was killed"
    merged = vq.read_index(m["merged"])
    assert merged.ntotal == len(x)
    # Every vector finds itself: with ntotal == n, each id is present exactly once.
    _, I = merged.search(x, 1, nprobe=16)
    assert sorted(I[:, 0].tolist()) == list(range(len(x)))


def test_a_shard_trained_separately_is_refused(cluster, data, tmp_path):
    x, q = data
    m = vqray.build(x, "IVF16,SQ8", train_sample=x[:3000], shards=2, out=tmp_path, batch_size=1500)
    stranger = vq.index_factory(16, "IVF16,SQ8")
    stranger.train(x[3000:])
    stranger.add_with_ids(x[3000:], np.arange(3000, 6000))
    vq.write_index(stranger, m["shards"][1]["path"])
    with pytest.raises(vq.FingerprintMismatch, match="trained separately"):
        vqray.ShardedIndex(m)


def test_parquet_float16_fixed_size_lists_with_an_id_column(cluster, data, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, q = data
    x16 = x[:2000].astype(np.float16)
    ids = np.random.default_rng(0).permutation(10_000)[:2000].astype(np.int64) + 5
    (tmp_path / "pq").mkdir()
    for i in range(4):
        rows = slice(i * 500, (i + 1) * 500)
        table = pa.table(
            {
                "emb": pa.FixedSizeListArray.from_arrays(pa.array(x16[rows].ravel(), pa.float16()), 16),
                "doc_id": pa.array(ids[rows]),
            }
        )
        pq.write_table(table, tmp_path / "pq" / f"part-{i}.parquet")
    ds = ray.data.read_parquet(str(tmp_path / "pq"))
    m = vqray.build(ds, "Flat", column="emb", id_column="doc_id", shards=2, out=tmp_path / "index", batch_size=300)
    assert sorted((s["min_id"], s["max_id"]) for s in m["shards"])[0][0] == ids.min()
    # Flat shards are exact: scatter-gather equals one exact search over the same vectors.
    D1, I1 = vq.knn(q, x16.astype(np.float32), K)
    with vqray.ShardedIndex(tmp_path / "index" / "manifest.json") as sharded:
        D, I = sharded.search(q, K)
    np.testing.assert_array_equal(I, ids[I1])
    np.testing.assert_allclose(D, D1, rtol=1e-5)


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'ray\[data\]'"):
        vqray.build(np.zeros((10, 4), np.float32), "Flat", out=os.devnull)
