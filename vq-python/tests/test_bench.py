"""python -m vq.bench on a small file: a table, JSON lines with the Rust bench's fields."""

import json

import numpy as np

from conftest import clusters
from vq import bench


def test_bench_on_npy_and_texmex_folder(tmp_path, capsys):
    x = clusters(2100, 16, seed=21)
    np.save(tmp_path / "all.npy", x)
    out = tmp_path / "r.jsonl"
    assert bench.main(["--dataset", str(tmp_path / "all.npy"), "--nq", "100", "--index", "HNSW16",
                       "--index", "IVF16,Flat", "--sweep", "ef=64", "--sweep", "nprobe=16",
                       "--reps", "1", "--py-threads", "2", "--out", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    threaded = [r for r in recs if r.get("py_threads") == 2]
    assert len(threaded) == 2 and all(r["speedup"] > 0 for r in threaded)
    recs = [r for r in recs if "py_threads" not in r]
    assert [r["algo"] for r in recs] == ["HNSW16", "IVF16,Flat"]
    for r in recs:
        for field in ["library", "version", "build_params", "search_params", "build_s", "index_bytes", "qps",
                      "recall", "k", "threads", "nb", "nq", "dim", "metric", "qps_cpu"]:
            assert field in r
        assert (r["nb"], r["nq"], r["dim"], r["k"]) == (2000, 100, 16, 10)
    # IVF with every list probed is exact: recall 1 against the computed ground truth.
    assert recs[1]["recall"] == 1.0 and recs[0]["recall"] > 0.9
    assert "recall" in capsys.readouterr().out

    # The texmex folder convention, fvecs + ivecs ground truth.
    folder = tmp_path / "tiny"
    folder.mkdir()

    def write_vecs(path, a, dtype):
        a = np.asarray(a, dtype=dtype)
        rows = np.hstack([np.full((len(a), 1), a.shape[1], np.int32).view(dtype), a])
        rows.tofile(path)

    write_vecs(folder / "base.fvecs", x[:2000], np.float32)
    write_vecs(folder / "query.fvecs", x[2000:], np.float32)
    d2 = ((x[2000:, None] - x[None, :2000]) ** 2).sum(-1)
    write_vecs(folder / "gt.ivecs", np.argsort(d2, axis=1)[:, :10], np.int32)
    np.testing.assert_array_equal(bench.read_vectors(folder / "base.fvecs"), x[:2000])
    out2 = tmp_path / "r2.jsonl"
    bench.main(["--dataset", str(folder), "--index", "Flat", "--reps", "1", "--out", str(out2)])
    (rec,) = [json.loads(line) for line in out2.read_text().splitlines()]
    assert rec["recall"] == 1.0 and rec["nq"] == 100
