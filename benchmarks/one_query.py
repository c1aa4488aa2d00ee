"""One query per call, as a server answering requests does: calls per second (wall) and CPU
microseconds per call, one thread everywhere (`vq.set_num_threads(1)`,
`faiss.omp_set_num_threads(1)`, hnswlib `num_threads=1`), beside the same queries in one batch.
`build` saves HNSW16 (efConstruction 200) and IVF1024,Flat of each library once, so that two
vq wheels search the very same files; `run` loads them and times 2,000 single-query calls per
setting (best of three), printing a JSON line per index and setting with recall@10 against
`gt.ivecs`. Alternate the libraries (and wheels) between `run`s.

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/one_query.py \
        build <data-dir>/imgsift100k /tmp/oneq
    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/one_query.py \
        run <data-dir>/imgsift100k /tmp/oneq vq|faiss|hnswlib [--label L]
"""
import argparse
import json
import os
import time

import numpy as np

from filtered import read_gt, read_vecs, recall

HNSW_EF = (16, 32, 64)
IVF_NPROBE = (8, 16, 32)


def timed_calls(search_one, xq):
    """Best of three passes over `xq`, one call per query: (calls/s wall, CPU µs per call, ids)."""
    best = None
    for _ in range(3):
        ids = []
        w0, c0 = time.perf_counter(), time.process_time()
        for q in xq:
            ids.append(search_one(q[None, :]))
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if best is None or wall < best[0]:
            best = (wall, cpu)
    return round(len(xq) / best[0]), round(best[1] / len(xq) * 1e6, 1), np.vstack(ids)


def build(folder, out):
    import faiss
    import hnswlib
    import vq

    os.makedirs(out, exist_ok=True)
    xb = read_vecs(folder, "base")
    d = xb.shape[1]
    vq.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    h = vq.index_factory(d, "HNSW16", "l2", ef_construction=200)
    h.add(xb)
    vq.write_index(h, f"{out}/vq-hnsw16.vq")
    ivf = vq.index_factory(d, "IVF1024,Flat", "l2")
    ivf.train(xb)
    ivf.add(xb)
    vq.write_index(ivf, f"{out}/vq-ivf1024.vq")
    fh = faiss.IndexHNSWFlat(d, 16)
    fh.hnsw.efConstruction = 200
    fh.add(xb)
    faiss.write_index(fh, f"{out}/faiss-hnsw16.faiss")
    fi = faiss.index_factory(d, "IVF1024,Flat")
    fi.train(xb)
    fi.add(xb)
    faiss.write_index(fi, f"{out}/faiss-ivf1024.faiss")
    hl = hnswlib.Index(space="l2", dim=d)
    hl.init_index(max_elements=len(xb), M=16, ef_construction=200, random_seed=1)
    hl.add_items(xb, np.arange(len(xb)), num_threads=2)
    hl.save_index(f"{out}/hnswlib-hnsw16.bin")


def run(folder, out, lib, label):
    xq = read_vecs(folder, "query")[:2000]
    gt = read_gt(folder, 10, len(xq))
    cases = []  # (index name, knob, value, one-query search, batch search)
    if lib == "vq":
        import vq

        vq.set_num_threads(1)
        h, ivf = vq.read_index(f"{out}/vq-hnsw16.vq"), vq.read_index(f"{out}/vq-ivf1024.vq")
        for ef in HNSW_EF:
            one = lambda x, ef=ef: h.search(x, 10, ef=ef)[1]
            cases.append(("HNSW16", "ef", ef, one))
        for nprobe in IVF_NPROBE:
            one = lambda x, nprobe=nprobe: ivf.search(x, 10, nprobe=nprobe)[1]
            cases.append(("IVF1024,Flat", "nprobe", nprobe, one))
    elif lib == "faiss":
        import faiss

        faiss.omp_set_num_threads(1)
        h, ivf = faiss.read_index(f"{out}/faiss-hnsw16.faiss"), faiss.read_index(f"{out}/faiss-ivf1024.faiss")
        for ef in HNSW_EF:
            p = faiss.SearchParametersHNSW(efSearch=ef)
            cases.append(("HNSW16", "ef", ef, lambda x, p=p: h.search(x, 10, params=p)[1]))
        for nprobe in IVF_NPROBE:
            p = faiss.SearchParametersIVF(nprobe=nprobe)
            cases.append(("IVF1024,Flat", "nprobe", nprobe, lambda x, p=p: ivf.search(x, 10, params=p)[1]))
    else:
        import hnswlib

        h = hnswlib.Index(space="l2", dim=xq.shape[1])
        h.load_index(f"{out}/hnswlib-hnsw16.bin")
        for ef in HNSW_EF:

            def one(x, ef=ef):
                h.set_ef(ef)
                return h.knn_query(x, 10, num_threads=1)[0]

            cases.append(("HNSW16", "ef", ef, one))
    for name, knob, value, one in cases:
        calls, cpu_us, ids = timed_calls(one, xq)
        c0 = time.process_time()
        batch = one(xq)
        batch_cpu_us = (time.process_time() - c0) / len(xq) * 1e6
        assert (batch == ids).mean() > 0.99, "one-query answers differ from the batch's"
        row = dict(lib=lib, label=label, index=name, knob=knob, value=value, calls_per_s=calls,
                   cpu_us_per_call=cpu_us, batch_cpu_us_per_query=round(batch_cpu_us, 1),
                   recall=round(recall(ids, gt), 4))
        print(json.dumps(row), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["build", "run"])
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("lib", nargs="?", choices=["vq", "faiss", "hnswlib"])
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    if a.mode == "build":
        build(a.folder, a.out)
    else:
        run(a.folder, a.out, a.lib, a.label)


if __name__ == "__main__":
    main()
