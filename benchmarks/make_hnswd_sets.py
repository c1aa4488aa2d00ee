#!/usr/bin/env python3
"""make_hnswd_sets.py - the issue 24 test sets for HNSW at d = 50 / 100 / 128 with 400k vectors.

Derived from imgsift1m (real SIFT, see ../shared/data/make_imgsift.py), in the same texmex layout
as the other sets, so `cargo xtask bench --dataset NAME --data-dir DIR` and `peers.py --dataset
NAME --data-dir DIR` read them unchanged:

    imgsift400k/     base.bvecs (400,000 x 128 u8)   query.bvecs (2,000)   gt.ivecs
    imgsift400k-d100 base.fvecs (400,000 x 100 f32)  query.fvecs (2,000)   gt.ivecs
    imgsift400k-d50  base.fvecs (400,000 x 50 f32)   query.fvecs (2,000)   gt.ivecs

base = the first 400,000 rows of imgsift1m/base.bvecs, queries = its first 2,000 (held-out
photographs, never in base). The d = 100 and d = 50 sets are a PCA of SIFT: the mean and the
leading eigenvectors of the covariance of imgsift1m/learn.bvecs (100,000 rows, disjoint from
base), fitted in float64, eigenvector signs fixed so the largest-magnitude entry is positive, so
the projection is reproducible; then x -> (x - mean) @ V, stored as float32. PCA rather than a
random projection: real low-dimensional embeddings concentrate their variance in a few
directions the same way, a random projection of SIFT spreads it evenly.

gt.ivecs: the 100 exact nearest base vectors of each query under squared L2, computed in float64
from the stored (float32 or u8) values, nearest first, ties broken by the smaller id.

d = 384 with 400k+ vectors has no real source on this machine (textemb100k has 100,000, and
embedding 400k more sentences takes over an hour on 2 cores). `--dims 384` writes
`imgsift400k-d384` (400,000 x 384 f32): the same SIFT vectors carried into 384 dimensions by an
isometry, x -> Q x with Q a 384 x 128 matrix of orthonormal columns (QR of a Gaussian matrix,
seed 384). Every distance is the d = 128 set's (up to float32 rounding), so the graph and the
recall per ef are the d = 128 set's; what changes is what d = 384 costs: 1,536-byte vectors, three
times the kernel's work per distance and the memory traffic per hop. It measures vq's cost at
d = 384 and n = 400k, not HNSW's behaviour on intrinsically 384-dimensional data (textemb100k
covers that at 100k).

Usage (numpy only; about a minute per set on 2 shared cores):
    ~/.cache/vq/peers-venv/bin/python benchmarks/make_hnswd_sets.py --data-dir ~/.cache/vq/data
"""
import argparse
import os
import pathlib
import sys

import numpy as np

N_BASE = 400_000
N_QUERY = 2_000
GT_DEPTH = 100


def read_xvecs(path, dtype, rows=None):
    """texmex rows: an int32 dimension, then the values."""
    width = np.dtype(dtype).itemsize
    raw = np.fromfile(path, dtype=np.uint8)
    dim = int(raw[:4].view("<i4")[0])
    table = raw.reshape(-1, 4 + dim * width)
    if rows is not None:
        if table.shape[0] < rows:
            sys.exit(f"{path} has {table.shape[0]} rows, need {rows}")
        table = table[:rows]
    return np.ascontiguousarray(table[:, 4:]).view(dtype).reshape(table.shape[0], dim)


def write_xvecs(path, x):
    """Writes texmex rows atomically (a temp file, then rename)."""
    x = np.ascontiguousarray(x)
    n, dim = x.shape
    head = np.full((n, 1), dim, dtype="<i4").view(np.uint8)
    body = x.view(np.uint8).reshape(n, -1)
    tmp = path.with_suffix(path.suffix + ".tmp")
    np.concatenate([head, body], axis=1).tofile(tmp)
    os.replace(tmp, path)


def exact_gt(base, queries, depth):
    """Top-`depth` ids per query under squared L2, in float64, ties by the smaller id."""
    b = base.astype(np.float64)
    bn = np.einsum("ij,ij->i", b, b)
    out = np.empty((queries.shape[0], depth), dtype="<i4")
    block = 100
    for s in range(0, queries.shape[0], block):
        q = queries[s : s + block].astype(np.float64)
        d2 = bn[None, :] - 2.0 * (q @ b.T) + np.einsum("ij,ij->i", q, q)[:, None]
        # A margin past `depth` keeps ties at the boundary for the exact sort below.
        cand = np.argpartition(d2, depth + 16, axis=1)[:, : depth + 16]
        for r in range(q.shape[0]):
            c = cand[r]
            # Recompute the candidates' distances directly (no cancellation error), then order
            # by (distance, id).
            diff = b[c] - q[r]
            dist = np.einsum("ij,ij->i", diff, diff)
            order = np.lexsort((c, dist))
            out[s + r] = c[order[:depth]]
    return out


def pca(learn, dim):
    x = learn.astype(np.float64)
    mean = x.mean(axis=0)
    cov = np.cov(x - mean, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][:dim]
    v = vecs[:, order]
    signs = np.sign(v[np.abs(v).argmax(axis=0), np.arange(dim)])
    v = v * signs
    kept = vals[order].sum() / vals.sum()
    return mean, v, kept


def isometry(dim_in, dim_out, seed):
    """A dim_out x dim_in matrix with orthonormal columns: x -> Q x keeps every distance."""
    g = np.random.default_rng(seed).standard_normal((dim_out, dim_in))
    q, _ = np.linalg.qr(g)
    return q


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True, type=pathlib.Path, help="holds imgsift1m/; outputs go beside it")
    ap.add_argument("--dims", default="128,100,50", help="which sets (128 = the u8 subset, < 128 a PCA, > 128 an isometric lift)")
    args = ap.parse_args()
    src = args.data_dir / "imgsift1m"
    base = read_xvecs(src / "base.bvecs", np.uint8, N_BASE)
    queries = read_xvecs(src / "query.bvecs", np.uint8, N_QUERY)
    learn = read_xvecs(src / "learn.bvecs", np.uint8)
    for dim in [int(d) for d in args.dims.split(",")]:
        if dim == 128:
            name, b, q, ext = "imgsift400k", base, queries, "bvecs"
        elif dim > 128:
            lift = isometry(128, dim, seed=dim)
            b = (base.astype(np.float64) @ lift.T).astype(np.float32)
            q = (queries.astype(np.float64) @ lift.T).astype(np.float32)
            name, ext = f"imgsift400k-d{dim}", "fvecs"
        else:
            mean, v, kept = pca(learn, dim)
            print(f"PCA to {dim}: {kept:.4f} of the learn set's variance kept", flush=True)
            b = ((base.astype(np.float64) - mean) @ v).astype(np.float32)
            q = ((queries.astype(np.float64) - mean) @ v).astype(np.float32)
            name, ext = f"imgsift400k-d{dim}", "fvecs"
        out = args.data_dir / name
        out.mkdir(parents=True, exist_ok=True)
        write_xvecs(out / f"base.{ext}", b)
        write_xvecs(out / f"query.{ext}", q)
        gt = exact_gt(b, q, GT_DEPTH)
        write_xvecs(out / "gt.ivecs", gt)
        print(f"{out}: base {b.shape}, query {q.shape}, gt {gt.shape}", flush=True)


if __name__ == "__main__":
    main()
