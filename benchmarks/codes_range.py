"""Range search over quantized codes, one saved index per spec searched by two builds of the
wheel (A/B: before and after their range scans of session 15, when they deepened k-NN) and
beside Faiss' own range search where Faiss has one; recall over hits against Faiss' exact
`IndexFlat.range_search`, and hits counted (a code's score is not the exact one, so a scan by
codes finds hits and non-hits near the radius alike).

    # once, with either wheel: train, fill and save every spec under DIR
    PYTHONPATH=<wheel> python benchmarks/codes_range.py build ~/.cache/vq/data/imgsift100k DIR
    # then alternating processes, one per wheel (label) and one for Faiss (label `faiss`)
    PYTHONPATH=<wheel> python benchmarks/codes_range.py run ~/.cache/vq/data/imgsift100k DIR label [threads] [rank] [queries]

The radius is the median over the queries of the exact `rank`-th neighbour's squared distance
(default 20); the first `queries` queries (default 1,000: deepening scans every code once per
round). Inverted files probe 16 lists. SIFT only (L2).
"""
import json
import os
import sys
import time

import numpy as np
from texmex import bvecs

# `VQ_SPECS="HNSW32,SQ8,RFlat;IVF1024,PQ32x4fs,RFlat"` picks others (`;` between specs).
SPECS = os.environ.get("VQ_SPECS", "SQ8;PQ32x4fs;IVF1024,PQ32x4fs;OPQ16,PQ16").split(";")
# `VQ_NPROBE=24` probes more lists (both libraries).
NPROBE = int(os.environ.get("VQ_NPROBE", "16"))


def sets(lims, ids):
    return [set(ids[lims[i] : lims[i + 1]].tolist()) for i in range(len(lims) - 1)]


def main():
    mode, folder, out = sys.argv[1:4]
    xt, xb, xq = (bvecs(f"{folder}/{n}.bvecs") for n in ("learn", "base", "query"))
    d = xb.shape[1]
    if mode == "build":
        import vq

        os.makedirs(out, exist_ok=True)
        for spec in SPECS:
            index = vq.index_factory(d, spec)
            index.train(xt)
            index.add(xb)
            vq.write_index(index, f"{out}/{spec.replace(',', '_')}.vq")
        return
    label = sys.argv[4]
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    rank = int(sys.argv[6]) if len(sys.argv) > 6 else 20
    xq = xq[: int(sys.argv[7]) if len(sys.argv) > 7 else 1000]
    import faiss

    faiss.omp_set_num_threads(threads)
    flat = faiss.IndexFlatL2(d)
    flat.add(xb)
    dist, _ = flat.search(xq, rank)
    radius = float(np.median(dist[:, rank - 1]))
    lims, _, ids = flat.range_search(xq, radius)
    exact = sets(lims, ids)
    total = int(lims[-1])
    if label != "faiss":
        import vq

        vq.set_num_threads(threads)
    for spec in SPECS:
        if label == "faiss":
            index = faiss.index_factory(d, spec)
            index.train(xt)
            index.add(xb)
            if spec.startswith("IVF"):
                faiss.extract_index_ivf(index).nprobe = NPROBE

            def search():
                return index.range_search(xq, radius)

        else:
            index = vq.read_index(f"{out}/{spec.replace(',', '_')}.vq")

            # `VQ_REFINE_K=4`: refine stages re-rank 4x the candidates (deepening's k-NN rounds).
            knobs = {"nprobe": NPROBE}
            if os.environ.get("VQ_REFINE_K"):
                knobs["refine_k"] = int(os.environ["VQ_REFINE_K"])
            # `VQ_WIDENING=0`: refine stages take the base's range at the radius (Faiss' way).
            if os.environ.get("VQ_WIDENING"):
                knobs["refine_widening"] = float(os.environ["VQ_WIDENING"])

            def search():
                return index.range_search(xq, radius, **knobs)

        try:
            # The best of `VQ_REPEAT` runs (default 1): on a shared machine one run of 10,000
            # queries is a third of a second, and load hits a single run hard.
            secs = cpu = float("inf")
            for _ in range(int(os.environ.get("VQ_REPEAT", "1"))):
                t, c = time.time(), time.process_time()
                got_lims, _, got_ids = search()
                secs, cpu = min(secs, time.time() - t), min(cpu, time.process_time() - c)
        except Exception as e:  # Faiss has no range search for some index types
            print(json.dumps({"lib": label, "index": spec, "error": str(e).splitlines()[0][:200]}), flush=True)
            continue
        found = sum(len(f & e) for f, e in zip(sets(got_lims, got_ids), exact))
        rec = {
            "lib": label,
            "index": spec,
            "data": folder.rstrip("/").split("/")[-1],
            "threads": threads,
            "radius": radius,
            "exact_hits": total,
            "nprobe": NPROBE if spec.startswith("IVF") else None,
            "widening": knobs.get("refine_widening") if label != "faiss" else None,
            "qps": round(len(xq) / secs, 1),
            "qps_cpu": round(len(xq) / cpu, 1),
            "hits": int(got_lims[-1]),
            "recall_hits": round(found / max(total, 1), 4),
        }
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
