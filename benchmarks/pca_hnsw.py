"""What a PCA projection in front of a graph buys on sentence embeddings: `HNSW32` against
`PCA128,HNSW32,RFlat` on textemb100k (cosine), built with 2 threads, searched with 1 (the
first 2,000 queries, k = 10, `qps_cpu` best of 3), recall@10 against the exact cosine
neighbours; bytes per vector from `memory_usage()`. One JSON line per search point.

    PYTHONPATH=<wheel> python benchmarks/pca_hnsw.py <data-dir>/textemb100k "PCA128,HNSW32,RFlat"
"""
import json
import sys
import time

import numpy as np

import vq
from filtered import read_vecs
from texmex import ivecs


def main():
    folder, spec = sys.argv[1], sys.argv[2]
    xb, xq = read_vecs(folder, "base"), read_vecs(folder, "query")[:2000]
    gt = ivecs(f"{folder}/gt-cosine.ivecs", 2000)[:, :10]
    refine = "RFlat" in spec
    vq.set_num_threads(2)
    index = vq.index_factory(xb.shape[1], spec, "cosine")
    t = time.perf_counter()
    index.train(xb)
    index.add(xb)
    build = time.perf_counter() - t
    mem = index.memory_usage()
    per_vector = sum(v for k, v in mem.items() if k != "mapped") / len(xb)
    vq.set_num_threads(1)
    for ef in (16, 32, 64, 128):
        for rk in (2, 4) if refine else (None,):
            kw = dict(ef=ef, refine_k=rk) if refine else dict(ef=ef)
            best, ids = 1e9, None
            for _ in range(3):
                t = time.process_time()
                ids = index.search(xq, 10, **kw)[1]
                best = min(best, time.process_time() - t)
            r = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, gt)]))
            row = dict(spec=spec, ef=ef, refine_k=rk, qps_cpu=round(2000 / best), recall=round(r, 4),
                       build_s=round(build, 1), bytes_per_vector=round(per_vector, 1))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
