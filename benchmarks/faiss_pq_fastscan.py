"""Faiss IndexPQFastScan (`PQ{m}x4fs`), exhaustive, beside `cargo xtask bench --index PQ{m}x4fs`.

peers.py measures fast scan only under IVF (`faiss-ivf-pqfs`); this is the flat index, same
data, trained on `learn`, 1 thread, k = 10, recall@10 against the data's exact ground truth;
QPS per wall second and per CPU-second of the process (`qps_cpu`, as vq-bench's cQPS).

    ~/.cache/vq/peers-venv/bin/python benchmarks/faiss_pq_fastscan.py ../shared/data/imgsift100k 32
"""
import sys
import time

import faiss
import numpy as np
from texmex import bvecs, ivecs


def main():
    folder, m = sys.argv[1], int(sys.argv[2])
    faiss.omp_set_num_threads(1)
    xt, xb, xq = (bvecs(f"{folder}/{n}.bvecs") for n in ("learn", "base", "query"))
    gt = ivecs(f"{folder}/gt.ivecs")
    index = faiss.index_factory(xb.shape[1], f"PQ{m}x4fs")
    t = time.time()
    index.train(xt)
    index.add(xb)
    build = time.time() - t
    t, c = time.time(), time.process_time()
    _, ids = index.search(xq, 10)
    secs, cpu = time.time() - t, time.process_time() - c
    recall = np.mean([len(set(ids[i]) & set(gt[i, :10])) / 10 for i in range(len(xq))])
    print(
        f"faiss PQ{m}x4fs build {build:.2f} s  qps {len(xq) / secs:.0f}  qps_cpu {len(xq) / cpu:.0f}"
        f"  recall@10 {recall:.4f}"
    )


if __name__ == "__main__":
    main()
