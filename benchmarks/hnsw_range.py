"""HNSW range search, one saved graph searched by two builds of the wheel (A/B) and beside
Faiss' `IndexHNSWFlat.range_search`, recall over hits against Faiss' exact `IndexFlat` answer.

    # once: build HNSW32 (efConstruction 40) with the wheel on PYTHONPATH and save it
    PYTHONPATH=<wheel> python benchmarks/hnsw_range.py build ~/.cache/vq/data/imgsift100k /tmp/h.vq
    # then, in alternating processes, each wheel (and Faiss, with `faiss` as the 4th argument)
    PYTHONPATH=<wheel> python benchmarks/hnsw_range.py run ~/.cache/vq/data/imgsift100k /tmp/h.vq \
        [label|faiss] [threads] [rank] [efs, comma-separated]

The radius is the median over queries of the exact `rank`-th neighbour's score (default 20), as
in `range_search.py`. Faiss builds its own HNSW32 (efConstruction 40) from the same vectors and
answers in blocks of 100 queries: Faiss 1.15.1 aborts on 10,000 at once (see range_search.py).
One JSON line per ef: wall and CPU QPS, hits, recall over hits.
"""
import json
import os
import sys
import time

import numpy as np
from texmex import bvecs, fvecs


def load(folder, name):
    path = f"{folder}/{name}.bvecs"
    return bvecs(path) if os.path.exists(path) else fvecs(f"{folder}/{name}.fvecs")


def sets(lims, ids):
    return [set(ids[lims[i] : lims[i + 1]].tolist()) for i in range(len(lims) - 1)]


def main():
    mode, folder, path = sys.argv[1:4]
    xb, xq = load(folder, "base"), load(folder, "query")
    cosine = os.path.exists(f"{folder}/base.fvecs")
    if mode == "build":
        import vq

        index = vq.index_factory(xb.shape[1], "HNSW32", "cosine" if cosine else "l2", ef_construction=40)
        index.add(xb)
        vq.write_index(index, path)
        return
    label = sys.argv[4] if len(sys.argv) > 4 else "vq"
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    rank = int(sys.argv[6]) if len(sys.argv) > 6 else 20
    efs = [int(e) for e in (sys.argv[7] if len(sys.argv) > 7 else "16,64,256").split(",")]
    import faiss

    faiss.omp_set_num_threads(threads)
    fb, fq = xb.copy(), xq.copy()
    if cosine:
        faiss.normalize_L2(fb)
        faiss.normalize_L2(fq)
    metric = faiss.METRIC_INNER_PRODUCT if cosine else faiss.METRIC_L2
    flat = faiss.IndexFlat(xb.shape[1], metric)
    flat.add(fb)
    dist, _ = flat.search(fq, rank)
    radius = float(np.median(dist[:, rank - 1]))
    lims, _, ids = flat.range_search(fq, radius)
    exact = sets(lims, ids)
    total = int(lims[-1])
    if label == "faiss":
        index = faiss.IndexHNSWFlat(xb.shape[1], 32, metric)
        index.hnsw.efConstruction = 40
        index.add(fb)

        def search(ef):
            index.hnsw.efSearch = ef
            parts = [index.range_search(fq[i : i + 100], radius) for i in range(0, len(fq), 100)]
            out_lims = [np.zeros(1, dtype=np.int64)]
            for p_lims, _, _ in parts:
                out_lims.append(p_lims[1:].astype(np.int64) + out_lims[-1][-1])
            return np.concatenate(out_lims), None, np.concatenate([p[2] for p in parts])

    else:
        import vq

        vq.set_num_threads(threads)
        index = vq.read_index(path)

        def search(ef):
            return index.range_search(xq, radius, ef=ef)

    for ef in efs:
        t, c = time.time(), time.process_time()
        got_lims, _, got_ids = search(ef)
        secs, cpu = time.time() - t, time.process_time() - c
        found = sum(len(f & e) for f, e in zip(sets(got_lims, got_ids), exact))
        rec = {
            "lib": label,
            "data": folder.rstrip("/").split("/")[-1],
            "threads": threads,
            "rank": rank,
            "radius": radius,
            "exact_hits": total,
            "ef": ef,
            "qps": round(len(xq) / secs, 1),
            "qps_cpu": round(len(xq) / cpu, 1),
            "hits": int(got_lims[-1]),
            "recall_hits": round(found / max(total, 1), 4),
        }
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
