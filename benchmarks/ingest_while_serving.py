"""Ingest while serving: an HNSW16 (efConstruction 200) index holding the first half of the
base; one Python thread adds the second half in batches of 1,000 (2 threads each) while
another answers one query per call (ef 32) without pause. Prints the add's wall time and the
serving thread's calls during it: their count, how many raised, and latency percentiles (ms).
Beside hnswlib (M 16) doing the same in the same process. `--spec` picks vq's index (trained
on the first half), e.g. `HNSW16,SQ8,RFlat`, Milvus' HNSW_SQ with refine, or an inverted file
(`IVF1024,PQ16`, searched at nprobe 16).

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/ingest_while_serving.py \
        <data-dir>/imgsift100k [--only vq|hnswlib] [--spec HNSW16] [--label L]
"""
import argparse
import json
import threading
import time

import numpy as np

from filtered import read_vecs


def serve_during(add_all, search_one, xq):
    done = threading.Event()
    t0 = [0.0, 0.0]

    def ingest():
        t0[0] = time.perf_counter()
        add_all()
        t0[1] = time.perf_counter()
        done.set()

    t = threading.Thread(target=ingest)
    t.start()
    lat, i, errors = [], 0, 0
    while not done.is_set():
        s = time.perf_counter()
        try:
            search_one(xq[i % len(xq)][None, :])
        except RuntimeError:  # hnswlib, when a concurrent add leaves it fewer than k results
            errors += 1
        lat.append(time.perf_counter() - s)
        i += 1
    t.join()
    lat = np.array(lat) * 1e3
    pct = lambda p: round(float(np.percentile(lat, p)), 3) if len(lat) else None
    return dict(add_s=round(t0[1] - t0[0], 2), calls=len(lat), errors=errors, p50_ms=pct(50), p99_ms=pct(99),
                max_ms=round(float(lat.max()), 2) if len(lat) else None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--only", choices=["vq", "hnswlib"])
    ap.add_argument("--spec", default="HNSW16")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    xb, xq = read_vecs(a.folder, "base"), read_vecs(a.folder, "query")
    half = len(xb) // 2
    batches = [(s, xb[s : s + 1000]) for s in range(half, len(xb), 1000)]
    if a.only in (None, "vq"):
        import vq

        graph = "HNSW" in a.spec and "IVF" not in a.spec
        index = vq.index_factory(xb.shape[1], a.spec, "l2", **(dict(ef_construction=200) if graph else {}))
        index.train(xb[:half])
        index.add(xb[:half])

        def add_all():
            for _, b in batches:
                index.add(b)

        knobs = dict(ef=32) if graph else dict(nprobe=16)
        row = serve_during(add_all, lambda q: index.search(q, 10, **knobs), xq)
        print(json.dumps(dict(lib="vq", spec=a.spec, label=a.label, **row)), flush=True)
    if a.only in (None, "hnswlib"):
        import hnswlib

        index = hnswlib.Index(space="l2", dim=xb.shape[1])
        index.init_index(max_elements=len(xb), M=16, ef_construction=200, random_seed=1)
        index.add_items(xb[:half], np.arange(half), num_threads=2)
        index.set_ef(32)

        def add_all():
            for s, b in batches:
                index.add_items(b, np.arange(s, s + len(b)), num_threads=2)

        row = serve_during(add_all, lambda q: index.knn_query(q, 10, num_threads=1), xq)
        print(json.dumps(dict(lib="hnswlib", label=a.label, **row)), flush=True)


if __name__ == "__main__":
    main()
