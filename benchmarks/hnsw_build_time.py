"""Wall time of one HNSW32 build (`ef_construction` 40, the whole base in one add), vq (the wheel
on PYTHONPATH) or Faiss (`IndexHNSWFlat`; cosine as inner product on normalized rows), THREADS
threads. One line.

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/hnsw_build_time.py \\
        /tmp/dims/te-d1536 cosine vq 2
"""
import sys
import time

import numpy as np

from transform_vs_faiss import load


def main():
    folder, metric, lib, threads = sys.argv[1:5]
    xb, _, _ = load(folder, metric)
    xb = np.ascontiguousarray(xb, dtype=np.float32)
    if lib == "faiss":
        import faiss

        faiss.omp_set_num_threads(int(threads))
        if metric == "cosine":
            faiss.normalize_L2(xb)
        fm = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        index = faiss.IndexHNSWFlat(xb.shape[1], 32, fm)
        index.hnsw.efConstruction = 40
    else:
        import vq

        vq.set_num_threads(int(threads))
        index = vq.index_factory(xb.shape[1], "HNSW32", metric, ef_construction=40)
    start = time.perf_counter()
    index.add(xb)
    print(f"lib={lib} spec=HNSW32 threads={threads} build_s={time.perf_counter() - start:.1f}", flush=True)


if __name__ == "__main__":
    main()
