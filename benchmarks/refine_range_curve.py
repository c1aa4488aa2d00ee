"""Range search under a refine stage: hits found against QPS as nprobe and the widening vary, one
thread, beside Faiss' `IndexRefine` range search at each nprobe. Recall over the exact range
answer's hits (Faiss' `IndexFlat.range_search`); the radius is the median over the queries of
the exact 20th neighbour's score. SIFT (`*.bvecs`, L2) or textemb (`*.fvecs`, cosine: Faiss
searches the normalized vectors by inner product; no learn set, both train on the base).
Every query, best of two runs.

    # SIFT: indexes saved by codes_range.py's `build` (VQ_SPECS="IVF1024,PQ16,RFlat;…");
    # otherwise saved here first
    PYTHONPATH=<wheel> python benchmarks/refine_range_curve.py DATA DIR build SPEC
    PYTHONPATH=<wheel> python benchmarks/refine_range_curve.py DATA DIR vq SPEC 16,20,24 0,1
    python benchmarks/refine_range_curve.py DATA DIR faiss SPEC 16,20,24,32
"""
import os
import json
import sys
import time

import numpy as np

from texmex import bvecs, fvecs


def normalized(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    folder, saved, lib, spec = sys.argv[1:5]
    sift = os.path.exists(f"{folder}/base.bvecs")
    if sift:
        xq, xb, xt = (bvecs(f"{folder}/{n}.bvecs") for n in ("query", "base", "learn"))
    else:
        xq, xb = normalized(fvecs(f"{folder}/query.fvecs")), normalized(fvecs(f"{folder}/base.fvecs"))
        xt = xb
    path = f"{saved}/{spec.replace(',', '_')}.vq"
    if lib == "build":
        import vq

        index = vq.index_factory(xb.shape[1], spec, vq.METRIC_L2 if sift else vq.METRIC_COSINE)
        index.train(xt)
        index.add(xb)
        os.makedirs(saved, exist_ok=True)
        vq.write_index(index, path)
        return
    nprobes = [int(x) for x in sys.argv[5].split(",")]
    widenings = [float(x) for x in sys.argv[6].split(",")] if len(sys.argv) > 6 else [None]
    import faiss

    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatL2(xb.shape[1]) if sift else faiss.IndexFlatIP(xb.shape[1])
    flat.add(xb)
    dist, _ = flat.search(xq, 20)
    radius = float(np.median(dist[:, 19]))
    lims, _, ids = flat.range_search(xq, radius)
    exact = [set(ids[lims[i] : lims[i + 1]].tolist()) for i in range(len(xq))]
    if lib == "faiss":
        metric = faiss.METRIC_L2 if sift else faiss.METRIC_INNER_PRODUCT
        index = faiss.index_factory(xb.shape[1], spec, metric)
        index.train(xt)
        index.add(xb)
        ivf = faiss.extract_index_ivf(index)
    else:
        import vq

        vq.set_num_threads(1)
        index = vq.read_index(path)
    for nprobe in nprobes:
        for w in widenings:
            if lib == "faiss":
                ivf.nprobe = nprobe

                def search():
                    return index.range_search(xq, radius)

            else:
                knobs = {"nprobe": nprobe}
                if w is not None:
                    knobs["refine_widening"] = w

                def search():
                    return index.range_search(xq, radius, **knobs)

            best = float("inf")
            for _ in range(2):
                t = time.time()
                got_lims, _, got_ids = search()
                best = min(best, time.time() - t)
            found = sum(
                len(set(got_ids[got_lims[q] : got_lims[q + 1]].tolist()) & exact[q]) for q in range(len(xq))
            )
            rec = {"lib": lib, "index": spec, "nprobe": nprobe, "widening": w, "threads": 1}
            rec.update({"qps": round(len(xq) / best), "recall_hits": round(found / int(lims[-1]), 4)})
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
