#!/usr/bin/env python3
"""make_dims_sets.py - test sets at dimensions vq was not tuned on (its kernels and code layouts
were tuned on SIFT, d = 128, and sentence embeddings, d = 384), derived from the two real sets:

    sift-d50, sift-d100     L2      PCA of imgsift100k (real SIFT) to 50 / 100 dimensions
    te-d100, te-d200        cosine  PCA of textemb100k (real 384-d sentence embeddings)
    te-d768, te-d1536       cosine  textemb100k carried into 768 / 1536 dimensions by an isometry

Each folder holds base.fvecs (100,000 rows), query.fvecs (the source's first 2,000 queries) and the
exact top 100 (gt.ivecs for L2, gt-cosine.ivecs for cosine: float64, ties to the smaller id), so
`saved_index_search.py` and `transform_vs_faiss.py` read them as they read the sources.

PCA (mean and leading eigenvectors of the base's covariance, float64, each eigenvector's sign
fixed so its largest-magnitude entry is positive) because real low-dimensional embeddings
concentrate their variance in a few directions as a PCA does. The isometry (x -> Q x, Q with
orthonormal columns: QR of a Gaussian matrix, seeded by d) keeps every distance and cosine of the
384-d set, so te-d768 / te-d1536 measure what the larger vectors cost (kernel work, memory
traffic, code layouts for the wider d), not a different neighbourhood structure.

    ~/.cache/vq/peers-venv/bin/python benchmarks/make_dims_sets.py ~/.cache/vq/data /tmp/dims
"""
import os
import sys

import numpy as np

from texmex import vectors

GT_K, NQ = 100, 2000


def write_vecs(path, x, dtype):
    x = np.ascontiguousarray(x, dtype=dtype)
    n, d = x.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = x.view(np.int32)
    out.tofile(path)


def pca(x, d):
    mean = x.mean(0, dtype=np.float64)
    c = x.astype(np.float64) - mean
    w, v = np.linalg.eigh(c.T @ c)
    v = v[:, np.argsort(w)[::-1][:d]]
    v *= np.sign(v[np.abs(v).argmax(0), np.arange(d)])
    return lambda y: ((y.astype(np.float64) - mean) @ v).astype(np.float32)


def isometry(d_in, d):
    q, _ = np.linalg.qr(np.random.default_rng(d).standard_normal((d, d_in)))
    return lambda y: (y.astype(np.float64) @ q.T).astype(np.float32)


def exact(xb, xq, cosine):
    """The exact top `GT_K` ids of each query, float64, ties to the smaller id."""
    xb, xq = xb.astype(np.float64), xq.astype(np.float64)
    if cosine:
        xb /= np.maximum(np.linalg.norm(xb, axis=1, keepdims=True), 1e-300)
        xq /= np.maximum(np.linalg.norm(xq, axis=1, keepdims=True), 1e-300)
    nb = (xb**2).sum(1)
    gt = np.empty((len(xq), GT_K), np.int32)
    for s in range(0, len(xq), 500):
        q = xq[s : s + 500]
        key = -(q @ xb.T) if cosine else nb[None, :] - 2 * q @ xb.T
        part = np.argpartition(key, GT_K, axis=1)[:, : GT_K + 1]
        for i, row in enumerate(part):
            order = np.lexsort((row, key[i, row]))[:GT_K]
            gt[s + i] = row[order]
    return gt


def main():
    src, dst = sys.argv[1:3]
    sets = {
        "sift-d50": ("imgsift100k", "pca", 50, False),
        "sift-d100": ("imgsift100k", "pca", 100, False),
        "te-d100": ("textemb100k", "pca", 100, True),
        "te-d200": ("textemb100k", "pca", 200, True),
        "te-d768": ("textemb100k", "isometry", 768, True),
        "te-d1536": ("textemb100k", "isometry", 1536, True),
    }
    for name, (source, how, d, cosine) in sets.items():
        folder = f"{dst}/{name}"
        if os.path.exists(f"{folder}/query.fvecs"):
            continue
        ext = "bvecs" if source.startswith("imgsift") else "fvecs"
        xb, xq = vectors(f"{src}/{source}/base.{ext}"), vectors(f"{src}/{source}/query.{ext}", NQ)
        f = pca(xb, d) if how == "pca" else isometry(xb.shape[1], d)
        xb, xq = f(xb), f(xq)
        os.makedirs(folder, exist_ok=True)
        write_vecs(f"{folder}/base.fvecs", xb, np.float32)
        write_vecs(f"{folder}/gt-cosine.ivecs" if cosine else f"{folder}/gt.ivecs", exact(xb, xq, cosine), np.int32)
        write_vecs(f"{folder}/query.fvecs", xq, np.float32)
        print(name, xb.shape, xq.shape, flush=True)


if __name__ == "__main__":
    main()
