"""Batch search speed of refine indexes from the wheel, on saved files (so two wheels answer
the same bytes): `HNSW16,SQ8,RFlat` (ef 64) and `IVF1024,PQ16,RFlat` (nprobe 16), refine_k 4,
k = 10, all queries, best of 5 batches, one JSON line per index.

    PYTHONPATH=<wheel> python benchmarks/refine_qps.py build <data-dir>/imgsift100k <out-dir>
    PYTHONPATH=<wheel> python benchmarks/refine_qps.py run <data-dir>/imgsift100k <out-dir> <label> <threads>
"""
import json
import sys
import time

import vq
from filtered import read_vecs

mode, D, out = sys.argv[1], sys.argv[2], sys.argv[3]
specs = {"hnsw": "HNSW16,SQ8,RFlat", "ivf": "IVF1024,PQ16,RFlat"}
if mode == "build":
    xb = read_vecs(D, "base")
    for name, spec in specs.items():
        ix = vq.index_factory(xb.shape[1], spec, "l2")
        ix.train(xb[:50000]); ix.add(xb)
        vq.write_index(ix, f"{out}/{name}.vq")
    sys.exit()
xq = read_vecs(D, "query")
label, threads = sys.argv[4], int(sys.argv[5])
vq.set_num_threads(threads)
for name in specs:
    ix = vq.read_index(f"{out}/{name}.vq")
    kw = dict(ef=64) if name == "hnsw" else dict(nprobe=16)
    best = 1e9
    for _ in range(5):
        t = time.perf_counter(); ix.search(xq, 10, refine_k=4, **kw); best = min(best, time.perf_counter() - t)
    print(json.dumps(dict(label=label, index=name, threads=threads, qps=round(len(xq) / best))), flush=True)
