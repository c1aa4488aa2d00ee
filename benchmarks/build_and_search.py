"""One factory string's train and add wall times and its search speed at the index's defaults,
for vq (the wheel on PYTHONPATH) or Faiss, 1 thread, k = 10, the first 2,000 queries (fewer where the set has fewer): a quick
before/after check of a build-path change, beside Faiss in the same run. One JSON line.

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/build_and_search.py \\
        <data-dir>/textemb100k cosine RaBitQ vq [label [nprobe]]
    ... <data-dir>/textemb100k cosine RR384,RaBitQ faiss

Cosine on Faiss' side: the rows normalized, inner product (`transform_vs_faiss.faiss_built`).
"""
import json
import sys
import time

from transform_vs_faiss import K, build, faiss_built, load, recall


def main():
    folder, metric, spec, lib = sys.argv[1:5]
    label = sys.argv[5] if len(sys.argv) > 5 else ""
    nprobe = int(sys.argv[6]) if len(sys.argv) > 6 else None
    xb, xq, gt = load(folder, metric)
    if lib == "faiss":
        import faiss

        index, xq, built = faiss_built(spec, xb, xq, metric)
        if nprobe:
            faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    else:
        import vq

        vq.set_num_threads(1)
        index = vq.index_factory(xb.shape[1], spec, metric)
        built = build(index, xb)
        if nprobe:
            index.nprobe = nprobe
    best, ids = 1e9, None
    for _ in range(3):
        t = time.process_time()
        ids = index.search(xq, K)[1]
        best = min(best, time.process_time() - t)
    print(json.dumps(dict(lib=lib, label=label, spec=spec, nprobe=nprobe or 1, train_s=built[0], add_s=built[1],
                          qps_cpu=round(len(xq) / best), recall=round(recall(ids, gt), 4))))


if __name__ == "__main__":
    main()
