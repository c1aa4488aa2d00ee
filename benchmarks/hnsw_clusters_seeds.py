"""Recall@4 of Faiss' tutorial HNSW settings (`IndexHNSWFlat(16, 32)`, efConstruction 40,
efSearch 64) on the Python suite's kind of data — 3,000 points in 20 Gaussian clusters in 16-d,
50 queries from other clusters — over 20 seeds, against exact search: one seed's 50 queries
move the figure by several points, so a comparison needs many.

    PYTHONPATH=<wheel> python benchmarks/hnsw_clusters_seeds.py vq|faiss
"""
import sys

import numpy as np

import vq


def clusters(n, d, seed=0, centers=20):
    """As vq-python/tests/conftest.py."""
    rng = np.random.default_rng(seed)
    c = rng.normal(0, 4, (centers, d)).astype(np.float32)
    return (c[rng.integers(0, centers, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def main():
    lib = sys.argv[1]
    if lib == "faiss":
        import faiss as make
    else:
        make = vq
    res = []
    for seed in range(1, 21):
        xb, xq = clusters(3000, 16, seed=seed), clusters(50, 16, seed=seed + 100)
        _, gt = vq.knn(xq, xb, 4)
        index = make.IndexHNSWFlat(16, 32)
        index.hnsw.efConstruction = 40
        index.add(xb)
        index.hnsw.efSearch = 64
        _, ids = index.search(xq, 4)
        res.append(np.mean([len(set(a) & set(b)) / 4 for a, b in zip(ids, gt)]))
    print(lib, " ".join(f"{r:.3f}" for r in res), f"mean {np.mean(res):.4f} sd {np.std(res):.4f}")


if __name__ == "__main__":
    main()
