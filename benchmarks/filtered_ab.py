"""A/B of two wheels' filtered HNSW search on one saved graph (imgsift100k, HNSW16,
efConstruction 200): each process loads the graph, then for each pass rate searches the first
1,000 queries four times under a random mask (seed 7, as `filtered.py`) and prints its best
CPU QPS. Run the wheels in alternating processes:

    PYTHONPATH=<wheel> python benchmarks/filtered_ab.py build ~/.cache/vq/data /tmp/h16.vq
    PYTHONPATH=<wheel A> python benchmarks/filtered_ab.py run ~/.cache/vq/data /tmp/h16.vq A [range]
    PYTHONPATH=<wheel B> python benchmarks/filtered_ab.py run ~/.cache/vq/data /tmp/h16.vq B [range]

`range`: range search with the radius of `filtered.py --range 20` (the median exact 20th
neighbour's squared distance) instead of k-NN at k = 10; ef 16 either way.
"""
import json
import sys
import time

import numpy as np
import vq

from filtered import keys, read_vecs


def main():
    mode, data, path = sys.argv[1:4]
    xb = read_vecs(f"{data}/imgsift100k", "base")
    xq = read_vecs(f"{data}/imgsift100k", "query")[:1000]
    if mode == "build":
        vq.set_num_threads(2)
        index = vq.index_factory(xb.shape[1], "HNSW16", ef_construction=200)
        index.add(xb)
        vq.write_index(index, path)
        return
    label = sys.argv[4]
    ranged = len(sys.argv) > 5 and sys.argv[5] == "range"
    index = vq.read_index(path)
    vq.set_num_threads(1)
    radius = float(np.median(np.sort(keys(xb, xq, np.arange(len(xb)), False), axis=1)[:, 19]))
    rng = np.random.default_rng(7)
    for rate in [0.2, 0.05, 0.01, 0.003]:
        mask = rng.random(len(xb)) < rate
        best = 0.0
        for _ in range(4):
            c0 = time.process_time()
            if ranged:
                index.range_search(xq, radius, filter=mask, ef=16)
            else:
                index.search(xq, 10, filter=mask, ef=16)
            best = max(best, len(xq) / (time.process_time() - c0))
        print(json.dumps(dict(label=label, kind="range" if ranged else "knn", pass_rate=rate, qps_cpu=round(best))))


if __name__ == "__main__":
    main()
