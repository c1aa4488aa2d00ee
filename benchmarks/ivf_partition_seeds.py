"""IVF1024,Flat recall@10 at nprobe 16 of a coarse partition trained by vq (`vq.kmeans_train`)
or Faiss (`faiss.Kmeans`), 10 iterations, seeds 1-5, each scored the same way here (numpy:
every point to its nearest centroid, each query's 16 nearest lists scanned exactly), with the
partition's mean squared error: whether a recall gap at equal nprobe is the k-means or the draw.

    PYTHONPATH=<wheel> python benchmarks/ivf_partition_seeds.py DATASET_DIR vq|faiss
"""
import sys

import numpy as np

from hnsw_degree import dataset

folder, lib = sys.argv[1:3]
xb, xq, gt, metric = dataset(folder)
xq = xq[:2000]; gt = gt[:2000]
d = xb.shape[1]
def nearest(x, c, k):
    # L2 on both (cosine rows are unit already; centroids compared by L2 as an IVF-Flat over IP would use IP)
    if metric == "l2":
        s = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
        return np.argsort(s, axis=1)[:, :k]
    s = -(x @ c.T)
    return np.argsort(s, axis=1)[:, :k]
out, mses = [], []
for seed in range(1, 6):
    if lib == "vq":
        import vq
        c = vq.kmeans_train(xb, 1024, niter=10, seed=seed, spherical=(metric == "cosine"))[0]
    else:
        import faiss
        km = faiss.Kmeans(d, 1024, niter=10, seed=seed, spherical=(metric == "cosine"))
        km.train(xb); c = km.centroids
    assign = np.concatenate([nearest(xb[i:i+20000], c, 1)[:, 0] for i in range(0, len(xb), 20000)])
    probe = nearest(xq, c, 16)
    hits = 0
    for qi in range(len(xq)):
        cand = np.nonzero(np.isin(assign, probe[qi]))[0]
        x = xb[cand]
        s = ((x - xq[qi]) ** 2).sum(1) if metric == "l2" else -(x @ xq[qi])
        top = cand[np.argsort(s)[:10]]
        hits += len(set(top) & set(gt[qi]))
    out.append(hits / (10 * len(xq)))
    mses.append(((xb - c[assign]) ** 2).sum(1).mean())
print(lib, folder.split("/")[-1], " ".join(f"{r:.4f}" for r in out), f"mean {np.mean(out):.4f} sd {np.std(out):.4f} mse {np.mean(mses):.1f}")
