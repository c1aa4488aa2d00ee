"""Range search, vq beside Faiss in one process (imgsift: L2; textemb: cosine, which Faiss runs as
inner product over normalized vectors; sets without a learn file train on the base): `Flat` (Faiss `IndexFlatL2.range_search`) and
`IVF1024,Flat` at one nprobe (`IndexIVFFlat.range_search`), same base, queries, radius and
threads, runs alternated. The radius is the median over queries of the exact `rank`-th
neighbour's score (default 20): squared distance, or cosine similarity.

Each side's answer is scored against Faiss' exact `IndexFlatL2` range answer: recall over hits
(|found ∩ exact| / |exact|). QPS per wall second and per CPU-second of the process.

Run with the peers' venv (Faiss) and the wheel built by `cargo xtask test` (release):

    PYTHONPATH=vq-python/python ~/.cache/vq/peers-venv/bin/python benchmarks/range_search.py \
        ~/.cache/vq/data/imgsift100k [threads] [rounds] [nprobe] [rank] [vq_nprobe] [hnsw_ef | vq_ef/faiss_ef]

`vq_nprobe` (default: `nprobe`) lets vq's inverted file probe more lists than Faiss', for a
comparison at equal recall (the two k-means give different coarse centroids). `hnsw_ef` (default
0: none) adds `HNSW32` on both sides, built with efConstruction 40 and searched with that ef:
Faiss reports every node its beam scored within the radius (`IndexHNSWFlat.range_search`);
vq did too and then follows every in-radius node's links to the rest of the ball (since
session 15; before, it deepened its k-NN search: k = 32, 64, …, the beam raised to k). Faiss 1.15.1's HNSW range search aborts
the process (`RangeSearchResult::do_allocation`: "labels == nullptr && distances == nullptr"
failed) on imgsift100k's 10,000 queries, single-threaded too, and answers 100 at a time, so its
side runs in blocks of 100 queries (`faiss_blocks`).
"""
import json
import os
import sys
import time

import faiss
import numpy as np

import vq
from texmex import bvecs, fvecs


def load(folder, name):
    path = f"{folder}/{name}.bvecs"
    return bvecs(path) if os.path.exists(path) else fvecs(f"{folder}/{name}.fvecs")


def timed(fn):
    t, c = time.time(), time.process_time()
    out = fn()
    return out, time.time() - t, time.process_time() - c


def sets(lims, ids):
    return [set(ids[lims[i] : lims[i + 1]].tolist()) for i in range(len(lims) - 1)]


def recall(found, exact):
    total = sum(len(e) for e in exact)
    return sum(len(f & e) for f, e in zip(found, exact)) / max(total, 1)


def faiss_blocks(index, xq, radius, block=100):
    """`index.range_search` over blocks of `block` queries, joined into one (lims, D, I)."""
    parts = [index.range_search(xq[i : i + block], radius) for i in range(0, len(xq), block)]
    lims = [np.zeros(1, dtype=np.int64)]
    for p_lims, _, _ in parts:
        lims.append(p_lims[1:].astype(np.int64) + lims[-1][-1])
    return np.concatenate(lims), np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


def main():
    folder = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    nprobe = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    rank = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    vq_nprobe = int(sys.argv[6]) if len(sys.argv) > 6 else nprobe
    # `ef` for both sides, or `vq_ef/faiss_ef`: Faiss' range search needs a wider beam for the
    # same recall.
    efs = (sys.argv[7] if len(sys.argv) > 7 else "0").split("/")
    hnsw_ef, faiss_ef = int(efs[0]), int(efs[-1])
    faiss.omp_set_num_threads(threads)
    vq.set_num_threads(threads)
    xb, xq = load(folder, "base"), load(folder, "query")
    has_learn = any(os.path.exists(f"{folder}/learn.{e}") for e in ("bvecs", "fvecs"))
    xt = load(folder, "learn") if has_learn else xb
    d = xb.shape[1]
    # SIFT (bvecs) is an L2 set; the text embeddings (fvecs) are a cosine set: vq is given the
    # raw vectors and the cosine metric, Faiss the normalized vectors and inner product (what a
    # Faiss user does for cosine).
    cosine = os.path.exists(f"{folder}/base.fvecs")
    metric, faiss_metric = ("cosine", faiss.METRIC_INNER_PRODUCT) if cosine else ("l2", faiss.METRIC_L2)
    fb, fq, ft = xb.copy(), xq.copy(), xt.copy()
    if cosine:
        for a in (fb, fq, ft):
            faiss.normalize_L2(a)

    flat_faiss = faiss.IndexFlat(d, faiss_metric)
    flat_faiss.add(fb)
    dist, _ = flat_faiss.search(fq, rank)
    radius = float(np.median(dist[:, rank - 1]))
    lims, _, ids = flat_faiss.range_search(fq, radius)
    exact = sets(lims, ids)

    flat_vq = vq.index_factory(d, "Flat", metric)
    flat_vq.add(xb)
    ivf_faiss = faiss.index_factory(d, "IVF1024,Flat", faiss_metric)
    ivf_faiss.train(ft)
    ivf_faiss.add(fb)
    ivf_faiss.nprobe = nprobe
    ivf_vq = vq.index_factory(d, "IVF1024,Flat", metric)
    ivf_vq.train(xt)
    ivf_vq.add(xb)

    sides = [
        ("Flat", "vq", lambda: flat_vq.range_search(xq, radius)),
        ("Flat", "faiss", lambda: flat_faiss.range_search(fq, radius)),
        ("IVF1024,Flat", "vq", lambda: ivf_vq.range_search(xq, radius, nprobe=vq_nprobe)),
        ("IVF1024,Flat", "faiss", lambda: ivf_faiss.range_search(fq, radius)),
    ]
    if hnsw_ef:
        hnsw_faiss = faiss.IndexHNSWFlat(d, 32, faiss_metric)
        hnsw_faiss.hnsw.efConstruction = 40
        hnsw_faiss.add(fb)
        hnsw_faiss.hnsw.efSearch = faiss_ef
        hnsw_vq = vq.index_factory(d, "HNSW32", metric, ef_construction=40)
        hnsw_vq.add(xb)
        sides += [
            ("HNSW32", "vq", lambda: hnsw_vq.range_search(xq, radius, ef=hnsw_ef)),
            ("HNSW32", "faiss", lambda: faiss_blocks(hnsw_faiss, fq, radius)),
        ]
    meta = {
        "data": folder.rstrip("/").split("/")[-1],
        "queries": len(xq),
        "threads": threads,
        "metric": metric,
        "rank": rank,
        "radius": radius,
        "exact_hits": int(lims[-1]),
        "vq_simd": vq.simd_level(),
        "faiss": faiss.__version__,
    }
    print(json.dumps(meta))
    for r in range(rounds):
        for index, lib, run in sides:
            (lims_, _, ids_), secs, cpu = timed(run)
            rec = {
                "round": r,
                "index": index,
                "lib": lib,
                "nprobe": (vq_nprobe if lib == "vq" else nprobe) if index.startswith("IVF") else None,
                "ef": (hnsw_ef if lib == "vq" else faiss_ef) if index.startswith("HNSW") else None,
                "qps": round(len(xq) / secs, 1),
                "qps_cpu": round(len(xq) / cpu, 1),
                "hits": int(lims_[-1]),
                "recall_hits": round(recall(sets(lims_, ids_), exact), 4),
            }
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
