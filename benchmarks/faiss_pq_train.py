# Faiss' PQ / OPQ training time beside vq's (issue 24): trains on a dataset's learn set with
# the given number of threads, then encodes and decodes the base set and prints one JSON line
# per spec with the training's wall and process CPU time and the mean squared reconstruction
# error per vector (the figures `cargo bench -p vq-quant --bench pq_mse` prints for vq).
#
#   python faiss_pq_train.py ~/.cache/vq/data/imgsift100k 1 PQ16 PQ32 OPQ16
#
# PQ{m}: faiss.IndexPQ(d, m, 8).train (25 k-means iterations, at most 256 points per
# centroid, the same defaults as vq's PqParams). OPQ{m}: index_factory "OPQ{m},PQ{m}", whose
# train() is OPQMatrix.train (Faiss' defaults: 50 rounds, random initial rotation, 65,536
# training points) followed by IndexPQ.train on the rotated learn set; the OPQMatrix part is
# timed on its own too (`opq_matrix_cpu_s`), as vq's OPQ training also ends with codebooks
# trained afresh on the rotated set.
import json
import sys
import time

import faiss
import numpy as np
from texmex import vectors as read_vecs


def find(folder, stem):
    import os

    for ext in ("bvecs", "fvecs"):
        p = os.path.join(folder, f"{stem}.{ext}")
        if os.path.exists(p):
            return p
    raise SystemExit(f"no {stem}.bvecs or {stem}.fvecs in {folder}")


def timed(f):
    c0, t0 = time.process_time(), time.perf_counter()
    f()
    return time.perf_counter() - t0, time.process_time() - c0


def main():
    folder, threads, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    faiss.omp_set_num_threads(threads)
    learn, base = read_vecs(find(folder, "learn")), read_vecs(find(folder, "base"))
    d = learn.shape[1]
    for spec in specs:
        line = {"library": "faiss", "spec": spec, "threads": threads, "n_learn": learn.shape[0], "dim": d}
        if spec.startswith("OPQ"):
            m = int(spec[3:])
            # OPQMatrix alone, then the whole factory index (a fresh OPQMatrix inside).
            opq = faiss.OPQMatrix(d, m)
            wall, cpu = timed(lambda: opq.train(learn))
            line.update(opq_matrix_wall_s=round(wall, 3), opq_matrix_cpu_s=round(cpu, 3))
            index = faiss.index_factory(d, f"OPQ{m},PQ{m}")
        else:
            m = int(spec[2:])
            index = faiss.IndexPQ(d, m, 8)
        wall, cpu = timed(lambda: index.train(learn))
        rec = index.sa_decode(index.sa_encode(base))
        mse = float(((base.astype(np.float64) - rec) ** 2).sum() / base.shape[0])
        line.update(train_wall_s=round(wall, 3), train_cpu_s=round(cpu, 3), mse_per_vector=round(mse, 1))
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
