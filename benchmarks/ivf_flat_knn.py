"""IVF1024,Flat k-NN search, vq beside Faiss in one process: imgsift100k, trained on `learn`,
k = 10, nprobe 16, 2 threads, 3 rounds alternated. Used for A/B runs of two vq builds (one
process per build, alternated): the list-major chunking change of session 14.

    PYTHONPATH=<release wheel dir> ~/.cache/vq/peers-venv/bin/python benchmarks/ivf_flat_knn.py \
        ~/.cache/vq/data/imgsift100k
"""
import sys
import time

import faiss
import numpy as np

import vq
from texmex import bvecs


def main():
    folder = sys.argv[1]
    faiss.omp_set_num_threads(2)
    vq.set_num_threads(2)
    xt, xb, xq = (bvecs(f"{folder}/{n}.bvecs") for n in ("learn", "base", "query"))
    ours = vq.index_factory(xb.shape[1], "IVF1024,Flat")
    ours.train(xt)
    ours.add(xb)
    theirs = faiss.index_factory(xb.shape[1], "IVF1024,Flat")
    theirs.train(xt)
    theirs.add(xb)
    theirs.nprobe = 16
    for r in range(3):
        for lib, run in (("vq", lambda: ours.search(xq, 10, nprobe=16)), ("faiss", lambda: theirs.search(xq, 10))):
            t, c = time.time(), time.process_time()
            run()
            secs, cpu = time.time() - t, time.process_time() - c
            print(r, lib, "knn qps", round(len(xq) / secs), "qps_cpu", round(len(xq) / cpu), flush=True)


if __name__ == "__main__":
    main()
