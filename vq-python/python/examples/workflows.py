# The three workflows of vq's seeds and range search, from Python, as a notebook-style script:
# run it whole (`python workflows.py [DATASET_DIR]`) or cell by cell. With no dataset it generates clustered
# data (VQ_WORKFLOW_N vectors, default 20,000); with a texmex folder (base/query/learn/gt, as
# made by ../shared/data) it uses that. Recall is always against exact ground truth.

# %% Setup: data, queries, exact ground truth
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import vq

if len(sys.argv) > 1:
    from vq.bench import find, read_vectors

    folder = Path(sys.argv[1])
    xb = np.ascontiguousarray(read_vectors(find(folder, "base")), dtype=np.float32)
    xq = np.ascontiguousarray(read_vectors(find(folder, "query")), dtype=np.float32)
else:
    n, d = int(os.environ.get("VQ_WORKFLOW_N", 20_000)), 64
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 4, (100, d)).astype(np.float32)
    xb = (centers[rng.integers(0, 100, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)
    xq = (centers[rng.integers(0, 100, 200)] + rng.normal(0, 1, (200, d))).astype(np.float32)
d, k = xb.shape[1], 10
_, gt = vq.knn(xq, xb, k)  # exact search, the reference for every recall below


def recall(I):
    return np.mean([len(set(a) & set(b)) / k for a, b in zip(I, gt)])


def qps(index, **params):
    t = time.perf_counter()
    _, I = index.search(xq, k, **params)
    return len(xq) / (time.perf_counter() - t), recall(I)


# %% Workflow 1: HNSW — tune M (graph degree, memory) and ef (search beam, speed vs recall)
for m in (16, 32):
    index = vq.index_factory(d, f"HNSW{m}")
    t = time.perf_counter()
    index.add(xb)
    print(f"HNSW{m}: built in {time.perf_counter() - t:.1f} s, {index.memory_usage()['total'] / len(xb):.0f} B/vector")
    for ef in (16, 32, 64, 128):
        q, r = qps(index, ef=ef)
        print(f"  ef={ef:4}: recall@{k} {r:.3f}  {q:9.0f} QPS")

# %% Workflow 2: HNSW over flat vectors vs over SQ8 codes with an exact refine: memory and recall
for spec in ("HNSW32", "HNSW32,SQ8", "HNSW32,SQ8,RFlat"):
    index = vq.index_factory(d, spec)
    index.train(xb)  # SQ8 learns its ranges; a no-op for HNSW32
    index.add(xb)
    mem = index.memory_usage()
    q, r = qps(index, ef=64, refine_k=2)
    print(f"{spec:18} {mem['total'] / len(xb):6.0f} B/vector (links {mem['links'] / len(xb):.0f}, "
          f"vectors {mem['vectors'] / len(xb):.0f}, refine {mem['refine'] / len(xb):.0f})  recall@{k} {r:.3f}  {q:8.0f} QPS")

# %% Workflow 3: IVF-PQ — train, add, save, load, search with nprobe
nlist = max(16, int(4 * np.sqrt(len(xb))) // 16 * 16)
index = vq.index_factory(d, f"IVF{nlist},PQ{d // 4}")
index.train(xb[: min(len(xb), 100 * nlist)])
index.add(xb)
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "ivfpq.vq")
    vq.write_index(index, path)
    size = os.path.getsize(path)
    loaded = vq.read_index(path)
D1, I1 = index.search(xq, k, nprobe=16)
D2, I2 = loaded.search(xq, k, nprobe=16)
assert (I1 == I2).all() and (D1 == D2).all()  # the loaded index answers exactly as the saved one
print(f"IVF{nlist},PQ{d // 4}: file {size / len(xb):.1f} B/vector; loaded answers identical")
for nprobe in (1, 4, 16, 64):
    q, r = qps(loaded, nprobe=nprobe)
    print(f"  nprobe={nprobe:3}: recall@{k} {r:.3f}  {q:9.0f} QPS")

# %% Workflow 4: range search — every vector within a radius (near-duplicates, a score cut-off)
radius = float(np.median(vq.knn(xq, xb, 20)[0][:, -1]))  # the median query's 20th neighbour
exact = vq.index_factory(d, "Flat")
exact.add(xb)
lims, D, I = exact.range_search(xq, radius)  # Faiss' shape: query i's hits are I[lims[i]:lims[i+1]]
truth = [set(I[lims[i] : lims[i + 1]]) for i in range(len(xq))]
print(f"range search, radius {radius:.1f}: {lims[-1] / len(xq):.1f} hits a query (Flat, exact)")
hnsw = vq.index_factory(d, "HNSW32")
hnsw.add(xb)
for ef in (16, 64):
    l2, _, i2 = hnsw.range_search(xq, radius, ef=ef)  # the beam, then every linked node within the radius
    found = sum(len(truth[i] & set(i2[l2[i] : l2[i + 1]])) for i in range(len(xq)))
    print(f"  HNSW32 ef={ef:3}: {found / max(1, lims[-1]):.3f} of the exact hits")
