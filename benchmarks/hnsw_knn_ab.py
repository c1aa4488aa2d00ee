"""HNSW k-NN search from one saved graph, for A/B runs of two wheels (one process each,
alternated): k = 10 at several ef, 1 thread, best of 3 by process CPU time, recall@10 against
the set's exact ground truth. Session 15 used it to check that sharing the neighbour-scoring
loop between k-NN and range search left k-NN's speed alone.

    PYTHONPATH=<wheel> python benchmarks/hnsw_knn_ab.py ~/.cache/vq/data/imgsift100k GRAPH.vq label [efs]
"""
import json
import sys
import time

import numpy as np

import vq
from texmex import bvecs, ivecs


def main():
    folder, path, label = sys.argv[1:4]
    efs = [int(e) for e in (sys.argv[4] if len(sys.argv) > 4 else "16,64,128").split(",")]
    vq.set_num_threads(1)
    xq = bvecs(f"{folder}/query.bvecs")
    gt = ivecs(f"{folder}/gt.ivecs")[:, :10]
    index = vq.read_index(path)
    for ef in efs:
        best = float("inf")
        for _ in range(3):
            t = time.process_time()
            _, ids = index.search(xq, 10, ef=ef)
            best = min(best, time.process_time() - t)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, gt)])
        print(json.dumps({"lib": label, "ef": ef, "qps_cpu": round(len(xq) / best, 1), "recall@10": round(recall, 4)}), flush=True)


if __name__ == "__main__":
    main()
