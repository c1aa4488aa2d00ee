"""IVF1024,PQ16 and IVF1024,Flat k-NN search (k = 10, nprobe 16, 2 threads) from one saved file,
as a batch of 10,000 queries and one query at a time (1,000), best of 5 by process CPU time:
for A/B runs of two wheels, one process each, alternated (session 15: the coarse keys rescored).

    PYTHONPATH=<wheel> python benchmarks/ivf_batch_ab.py build ~/.cache/vq/data/imgsift100k
    PYTHONPATH=<wheel> python benchmarks/ivf_batch_ab.py run ~/.cache/vq/data/imgsift100k <label>
"""
import sys, time, numpy as np, vq
from texmex import bvecs
F = sys.argv[2]
vq.set_num_threads(2)
if sys.argv[1] == "build":
    xt, xb = bvecs(f"{F}/learn.bvecs"), bvecs(f"{F}/base.bvecs")
    for s in ("IVF1024,PQ16", "IVF1024,Flat"):
        i = vq.index_factory(128, s); i.train(xt); i.add(xb); vq.write_index(i, f"/tmp/{s.replace(',','_')}.vq")
    sys.exit()
xq = bvecs(f"{F}/query.bvecs")
for s in ("IVF1024,PQ16", "IVF1024,Flat"):
    i = vq.read_index(f"/tmp/{s.replace(',','_')}.vq")
    for nq in (10000, 1):
        best = 1e9
        for r in range(5):
            t = time.process_time()
            if nq == 1:
                for q in range(1000): i.search(xq[q:q+1], 10, nprobe=16)
                n = 1000
            else:
                i.search(xq, 10, nprobe=16); n = 10000
            best = min(best, time.process_time() - t)
        print(sys.argv[3], s, "batch" if nq > 1 else "one-by-one", round(n / best, 1), "qps_cpu")
