"""The Faiss wiki's "Getting started" / "Faster search" / "Lower memory footprint" steps (and
an HNSW and a refine step in the same style), run by Faiss or by vq with only the module name
changed; recall@4 against exact search, wall time of each 10,000-query search (2 threads).

    PYTHONPATH=<wheel> python benchmarks/faiss_getting_started.py faiss|vq
"""
import sys, time
import numpy as np
lib = __import__(sys.argv[1])
d, nb, nq, k = 64, 100000, 10000, 4
np.random.seed(1234)
xb = np.random.random((nb, d)).astype('float32'); xb[:, 0] += np.arange(nb) / 1000.
xq = np.random.random((nq, d)).astype('float32'); xq[:, 0] += np.arange(nq) / 1000.

index = lib.IndexFlatL2(d)
index.add(xb)
_, gt = index.search(xq, k)
def recall(I): return np.mean([len(set(a) & set(b)) / k for a, b in zip(I, gt)])

nlist = 100
quantizer = lib.IndexFlatL2(d)
index = lib.IndexIVFFlat(quantizer, d, nlist)
index.train(xb); index.add(xb)
for nprobe in (1, 10):
    index.nprobe = nprobe
    t = time.perf_counter(); _, I = index.search(xq, k); t = time.perf_counter() - t
    print(f"{sys.argv[1]:5} IVFFlat nprobe {nprobe:2}: recall {recall(I):.4f}  {t*1e3:7.1f} ms")

quantizer = lib.IndexFlatL2(d)
index = lib.IndexIVFPQ(quantizer, d, nlist, 8, 8)
index.train(xb); index.add(xb)
index.nprobe = 10
t = time.perf_counter(); _, I = index.search(xq, k); t = time.perf_counter() - t
print(f"{sys.argv[1]:5} IVFPQ8 nprobe 10: recall {recall(I):.4f}  {t*1e3:7.1f} ms")

index = lib.IndexHNSWFlat(d, 32)
index.hnsw.efConstruction = 40
index.add(xb)
for ef in (16, 64):
    index.hnsw.efSearch = ef
    t = time.perf_counter(); _, I = index.search(xq, k); t = time.perf_counter() - t
    print(f"{sys.argv[1]:5} HNSW32 efC 40 efSearch {ef:3}: recall {recall(I):.4f}  {t*1e3:7.1f} ms")

index = lib.IndexRefineFlat(lib.IndexScalarQuantizer(d, lib.ScalarQuantizer.QT_4bit))
index.train(xb); index.add(xb)
_, I = index.search(xq, k)
print(f"{sys.argv[1]:5} SQ4,RFlat k_factor 1: recall {recall(I):.4f}")
