# Faiss IndexFlatL2.search of 1024 x 128 centroids, 1 thread, k = 1/8/32, 256- and 2000-query calls:
# the yardstick of vq-ivf/benches/coarse.rs (BENCHMARKS.md, issue 20 session 10). CPU time a query.
import time, sys, numpy as np, faiss
faiss.omp_set_num_threads(1)
rng = np.random.default_rng(7)
d, nlist = 128, 1024
cent = (rng.random((nlist, d), dtype=np.float32) * 100).astype(np.float32)
ix = faiss.IndexFlatL2(d); ix.add(cent)
for nq in [256, 2000]:
    q = (cent[rng.integers(0, nlist, nq)] + rng.normal(0, 20, (nq, d))).astype(np.float32)
    for k in [1, 8, 32]:
        best = 1e9
        for r in range(3):
            reps = max(1, 50000 // nq)
            t0 = time.process_time()
            for _ in range(reps):
                ix.search(q, k)
            best = min(best, (time.process_time() - t0) / reps / nq * 1e6)
        print(f"faiss IndexFlatL2 nq={nq} k={k}: {best:.2f} us/query (cpu, best of 3)")
