"""Range search under a refine stage: hits found against QPS as nprobe and the widening vary, one
thread, beside Faiss' `IndexRefine` range search at each nprobe. Recall over the exact range
answer's hits (Faiss' `IndexFlat.range_search`); the radius is the median over the queries of
the exact 20th neighbour's squared distance. SIFT only (L2), every query, best of two runs.

    # indexes saved by codes_range.py's `build` (VQ_SPECS="IVF1024,PQ16,RFlat;…")
    PYTHONPATH=<wheel> python benchmarks/refine_range_curve.py DATA DIR vq SPEC 16,20,24 0,1
    python benchmarks/refine_range_curve.py DATA DIR faiss SPEC 16,20,24,32
"""
import json
import sys
import time

import numpy as np


def bvecs(path):
    a = np.fromfile(path, dtype=np.uint8)
    d = a[:4].view(np.int32)[0]
    return a.reshape(-1, d + 4)[:, 4:].astype(np.float32)


def main():
    folder, saved, lib, spec = sys.argv[1:5]
    nprobes = [int(x) for x in sys.argv[5].split(",")]
    widenings = [float(x) for x in sys.argv[6].split(",")] if len(sys.argv) > 6 else [None]
    xq, xb = bvecs(f"{folder}/query.bvecs"), bvecs(f"{folder}/base.bvecs")
    import faiss

    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatL2(xb.shape[1])
    flat.add(xb)
    dist, _ = flat.search(xq, 20)
    radius = float(np.median(dist[:, 19]))
    lims, _, ids = flat.range_search(xq, radius)
    exact = [set(ids[lims[i] : lims[i + 1]].tolist()) for i in range(len(xq))]
    if lib == "faiss":
        index = faiss.index_factory(xb.shape[1], spec)
        index.train(bvecs(f"{folder}/learn.bvecs"))
        index.add(xb)
        ivf = faiss.extract_index_ivf(index)
    else:
        import vq

        vq.set_num_threads(1)
        index = vq.read_index(f"{saved}/{spec.replace(',', '_')}.vq")
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
