"""HNSW over repeated vectors: G vectors of imgsift10k's base each added C more times (exact
copies, shuffled in with the base), HNSW16 with efConstruction 100; for each group's vector, is
the top-1 a copy (ef 64), how many copies are among its k = C nearest (ef max(64, C)), and how
many does a range search of radius 1 find (ef 32; the group's own base row is a copy too, so a
full answer is C + 1). `--peers` adds hnswlib and Faiss (no range search there).

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/hnsw_copies.py \
        --data-dir ~/.cache/vq/data --groups 20 --copies 100 [--peers]
"""
import argparse

import numpy as np
import vq

from filtered import read_vecs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--copies", type=int, default=100)
    ap.add_argument("--peers", action="store_true")
    a = ap.parse_args()
    xb = read_vecs(f"{a.data_dir}/imgsift10k", "base")
    rng = np.random.default_rng(3)
    g, c = a.groups, a.copies
    groups = xb[rng.choice(len(xb), g, replace=False)]
    data = np.concatenate([xb, np.repeat(groups, c, axis=0)])
    data = data[rng.permutation(len(data))]
    ef = max(64, c)

    def report(name, top1, knn, ranged=None):
        line = f"{name:8} top-1 a copy: {top1} of {g}; copies among k = {c}: {knn:.1f}"
        if ranged is not None:
            line += f"; range search: {ranged.mean():.1f} of {c + 1} (min {ranged.min()})"
        print(line)

    index = vq.index_factory(data.shape[1], "HNSW16", ef_construction=100)
    index.add(data)
    top1 = int((index.search(groups, 1, ef=64)[0][:, 0] == 0).sum())
    dist, _ = index.search(groups, c, ef=ef)
    lims, _, _ = index.range_search(groups, 1.0, ef=32)
    report("vq", top1, (dist == 0).sum(1).mean(), np.diff(lims))
    if a.peers:
        import faiss
        import hnswlib

        h = hnswlib.Index("l2", data.shape[1])
        h.init_index(len(data), M=16, ef_construction=100)
        h.add_items(data)
        h.set_ef(64)
        top1 = int((h.knn_query(groups, 1)[1][:, 0] == 0).sum())
        h.set_ef(ef)
        try:
            knn = (h.knn_query(groups, c)[1] == 0).sum(1).mean()
        except RuntimeError as e:
            print(f"hnswlib  k = {c}: {e}")
            knn = float("nan")
        report("hnswlib", top1, knn)
        f = faiss.IndexHNSWFlat(data.shape[1], 16)
        f.hnsw.efConstruction = 100
        f.add(data)
        f.hnsw.efSearch = 64
        top1 = int((f.search(groups, 1)[0][:, 0] == 0).sum())
        f.hnsw.efSearch = ef
        report("faiss", top1, (f.search(groups, c)[0] == 0).sum(1).mean())


if __name__ == "__main__":
    main()
