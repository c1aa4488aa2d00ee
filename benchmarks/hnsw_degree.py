"""HNSW build and k-NN search beside Faiss and hnswlib at the same M and efConstruction, for
A/B runs of vq wheels (one process each, alternated): build with 2 threads (wall seconds),
search k = 10 with 1 thread at several ef (best of 3 by process CPU time), recall@10 against
the set's exact ground truth. Session 34 used it to weigh how many links a new node takes on
layer 0 (hnswlib's M or Faiss' 2M). `tutorial` is the Faiss wiki's getting-started data
(100,000 × 64 uniform, the first coordinate spread by the row number, so rows near in memory
are near in space), its truth computed; `tutorial-shuffled` the same rows in random order.

    PYTHONPATH=<wheel> python benchmarks/hnsw_degree.py DATASET_DIR|tutorial vq|faiss|hnswlib \
        label [M] [efConstruction] [efs]
"""
import json
import sys
import time

import numpy as np
from texmex import ivecs, vectors


def dataset(folder):
    """Base, queries, top-10 truth and the metric ("l2" or "cosine")."""
    if folder.startswith("tutorial"):
        import vq

        rng = np.random.RandomState(1234)
        xb = rng.random_sample((100_000, 64)).astype(np.float32)
        xb[:, 0] += np.arange(len(xb)) / 1000.0
        xq = rng.random_sample((10_000, 64)).astype(np.float32)
        xq[:, 0] += np.arange(len(xq)) / 1000.0
        if folder == "tutorial-shuffled":  # neighbours no longer neighbours in memory
            xb = xb[np.random.RandomState(7).permutation(len(xb))]
        return xb, xq, vq.knn(xq, xb, 10)[1], "l2"
    import glob

    base = glob.glob(f"{folder}/base.*vecs")[0]
    cosine = base.endswith(".fvecs")  # textemb: sentence embeddings, searched by cosine
    xb, xq = vectors(base), vectors(base.replace("base", "query"))
    gt = ivecs(f"{folder}/{'gt-cosine' if cosine else 'gt'}.ivecs")[:, :10]
    if cosine:  # the peers take unit vectors and inner product
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    return xb, xq, gt, "cosine" if cosine else "l2"


def main():
    folder, lib, label = sys.argv[1:4]
    m = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    efc = int(sys.argv[5]) if len(sys.argv) > 5 else 40
    efs = [int(e) for e in (sys.argv[6] if len(sys.argv) > 6 else "16,24,32,48,64,96,128").split(",")]
    xb, xq, gt, metric = dataset(folder)
    d = xb.shape[1]
    if lib == "vq":
        import vq

        index = vq.index_factory(d, f"HNSW{m}", metric, ef_construction=efc)
        vq.set_num_threads(2)
        t = time.perf_counter()
        index.add(xb)
        build = time.perf_counter() - t
        vq.set_num_threads(1)

        def search(ef):
            return index.search(xq, 10, ef=ef)[1]

    elif lib == "faiss":
        import faiss

        index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = efc
        faiss.omp_set_num_threads(2)
        t = time.perf_counter()
        index.add(xb)
        build = time.perf_counter() - t
        faiss.omp_set_num_threads(1)

        def search(ef):
            index.hnsw.efSearch = ef
            return index.search(xq, 10)[1]

    else:
        import hnswlib

        index = hnswlib.Index(space="l2" if metric == "l2" else "ip", dim=d)
        index.init_index(max_elements=len(xb), ef_construction=efc, M=m)
        t = time.perf_counter()
        index.add_items(xb, num_threads=2)
        build = time.perf_counter() - t

        def search(ef):
            index.set_ef(ef)
            return index.knn_query(xq, k=10, num_threads=1)[0]

    row = {"lib": label, "data": folder.rstrip("/").split("/")[-1], "M": m, "efC": efc, "build_s": round(build, 2)}
    sweep(search, len(xq), gt, row, efs)


def sweep(search, nq, gt, row, efs):
    """Prints `row` with each ef's CPU-time QPS (best of 3 calls of `search(ef)` over the `nq`
    queries) and recall@10 against `gt`, one JSON line each."""
    for ef in efs:
        best = float("inf")
        for _ in range(3):
            t = time.process_time()
            ids = search(ef)
            best = min(best, time.process_time() - t)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, gt)])
        out = {**row, "ef": ef, "qps_cpu": round(nq / best, 1), "recall@10": round(float(recall), 4)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
