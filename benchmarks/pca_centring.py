"""Why vq projects inner-product and cosine data uncentred: exact inner-product search of the
PCA projections of textemb100k (unit rows), centred (Faiss) or not (vq), recall@10 against the
exact cosine neighbours (the first 2,000 queries). numpy only; no index involved.

    PYTHONPATH=<wheel> python benchmarks/pca_centring.py <data-dir>/textemb100k
"""
import sys

import numpy as np

from filtered import read_vecs
from texmex import ivecs


def main():
    folder = sys.argv[1]
    xb, xq = read_vecs(folder, "base"), read_vecs(folder, "query")[:2000]
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    gt = ivecs(f"{folder}/gt-cosine.ivecs", 2000)[:, :10]
    for d in (64, 128):
        for centred in (True, False):
            mu = xb.mean(0) if centred else np.zeros(xb.shape[1], np.float32)
            c = (xb - mu).T.astype(np.float64) @ (xb - mu).astype(np.float64) / len(xb)
            _, v = np.linalg.eigh(c)
            m = v[:, ::-1][:, :d].T.astype(np.float32)
            yb, yq = (xb - mu) @ m.T, (xq - mu) @ m.T
            found = np.argsort(-(yq @ yb.T), axis=1)[:, :10]
            r = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, gt)])
            print(f"PCA{d} {'centred' if centred else 'uncentred'}: exact IP search of the projections, recall@10 {r:.4f}")


if __name__ == "__main__":
    main()
