"""A transform before an index (`PCA{d},…`, `OPQ{m}_{d},IVF…`) beside Faiss' same factory string:
training, adding, searching (1 thread, k = 10, the first 2,000 queries), recall@10 against the data set's exact ground truth. One JSON line
per library, spec and search point.

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/transform_vs_faiss.py \\
        <data-dir>/imgsift100k l2 "PCA64,IVF1024,Flat" [--only vq|faiss] [--label L]
    ... <data-dir>/textemb100k cosine "PCA128,IVF1024,Flat,RFlat"

Cosine on Faiss' side: the rows normalized, inner product (Faiss has no cosine metric); its PCA
is centred whatever the metric, vq's is centred for L2 only.
"""
import argparse
import json
import time

import numpy as np

from filtered import read_gt, read_vecs
from texmex import ivecs

NQ, K = 2000, 10
NPROBES, K_FACTORS = (8, 16, 32, 64), (1, 4)


def recall(ids, gt):
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, gt)]))


def build(index, xb):
    """Trains and fills `index`; the two wall times in seconds."""
    t = time.perf_counter()
    index.train(xb)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    index.add(xb)
    return round(train_s, 2), round(time.perf_counter() - t, 2)


def sweep(lib, points, search, gt, extra):
    """One row per (nprobe, k_factor), with the fields of `extra`: `search(nprobe, kf)` returns
    ids; best CPU time of 3."""
    rows = []
    for nprobe, kf in points:
        best, ids = 1e9, None
        for _ in range(3):
            t = time.process_time()
            ids = search(nprobe, kf)
            best = min(best, time.process_time() - t)
        rows.append(dict(lib=lib, nprobe=nprobe, k_factor=kf, qps_cpu=round(NQ / best), recall=round(recall(ids, gt), 4),
                         **extra))
    return rows


def load(folder, metric):
    """The base, the first `NQ` queries and their exact top-`K` ids under `metric`."""
    xb, xq = read_vecs(folder, "base"), read_vecs(folder, "query")[:NQ]
    if metric == "cosine":
        gt = ivecs(f"{folder}/gt-cosine.ivecs", NQ)[:, :K]
    else:
        gt = read_gt(folder, K, NQ)
    return xb, xq, gt


def faiss_built(spec, xb, xq, metric):
    """Faiss' `spec` trained and filled on one thread (cosine: rows normalized, inner product):
    the index, the queries as it takes them, and the build's wall times."""
    import faiss

    faiss.omp_set_num_threads(1)
    if metric == "cosine":
        xb, xq = xb.copy(), xq.copy()
        faiss.normalize_L2(xb)
        faiss.normalize_L2(xq)
    fm = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.index_factory(xb.shape[1], spec, fm)
    return index, xq, build(index, xb)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("metric", choices=["l2", "cosine"])
    ap.add_argument("spec")
    ap.add_argument("--only", choices=["vq", "faiss"])
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    xb, xq, gt = load(a.folder, a.metric)
    refine = "RFlat" in a.spec
    points = [(p, f) for p in NPROBES for f in (K_FACTORS if refine else (1,))]
    out = []
    if a.only in (None, "vq"):
        import vq

        vq.set_num_threads(1)
        index = vq.index_factory(xb.shape[1], a.spec, a.metric)
        built = build(index, xb)

        def search(nprobe, kf):
            kw = dict(nprobe=nprobe, refine_k=kf) if refine else dict(nprobe=nprobe)
            return index.search(xq, K, **kw)[1]

        out += sweep("vq", points, search, gt, dict(train_s=built[0], add_s=built[1]))
    if a.only in (None, "faiss"):
        import faiss

        findex, xqf, built = faiss_built(a.spec, xb, xq, a.metric)
        ps = faiss.ParameterSpace()

        def fsearch(nprobe, kf):
            ps.set_index_parameter(findex, "nprobe", nprobe)
            if refine:
                faiss.downcast_index(findex).k_factor = kf  # IndexRefineFlat over the rest
            return findex.search(xqf, K)[1]

        out += sweep("faiss", points, fsearch, gt, dict(train_s=built[0], add_s=built[1]))
    for row in out:
        print(json.dumps(dict(spec=a.spec, metric=a.metric, label=a.label, **row)), flush=True)


if __name__ == "__main__":
    main()
