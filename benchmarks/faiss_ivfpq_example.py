"""Faiss' side of `vq/examples/ivfpq_save_load.rs`: IVF1024,PQ16 trained on `learn`, every `base`
vector added, written and read back, searched with nprobe 50, k = 10; prints the same line as
the vq example (train / add seconds, file size, search time, recall@10 = overlap of the top 10
with the true top 10 / 10), plus the process CPU seconds of the search.

    ~/.cache/vq/peers-venv/bin/python benchmarks/faiss_ivfpq_example.py ~/.cache/vq/data/imgsift1m 2
"""
import os
import sys
import tempfile
import time

import faiss
import numpy as np
from texmex import bvecs, ivecs


def main():
    folder, threads = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2
    faiss.omp_set_num_threads(threads)
    xt, xb, xq = (bvecs(f"{folder}/{n}.bvecs") for n in ("learn", "base", "query"))
    gt = ivecs(f"{folder}/gt.ivecs")
    index = faiss.index_factory(xb.shape[1], "IVF1024,PQ16")
    t = time.time()
    index.train(xt)
    train = time.time() - t
    t = time.time()
    index.add(xb)
    add = time.time() - t
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ivfpq.faiss")
        faiss.write_index(index, path)
        size = os.path.getsize(path)
        loaded = faiss.read_index(path)
    loaded.nprobe = 50
    c, t = time.process_time(), time.time()
    _, ids = loaded.search(xq, 10)
    secs, cpu = time.time() - t, time.process_time() - c
    recall = np.mean([len(set(ids[i]) & set(gt[i, :10])) / 10 for i in range(len(xq))])
    n = xb.shape[0]
    print(f"faiss IVF1024,PQ16 over {n} vectors: train {train:.1f} s, add {add:.1f} s, "
          f"file {size / 1e6:.1f} MB ({size / n:.1f} bytes/vector)")
    print(f"nprobe 50: {len(xq)} queries in {secs:.3f} s ({secs / len(xq) * 1e6:.0f} µs/query, "
          f"{threads} threads, {cpu:.2f} CPU s), recall@10 {recall:.4f}")


if __name__ == "__main__":
    main()
