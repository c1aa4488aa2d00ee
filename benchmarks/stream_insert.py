"""Streaming inserts: HNSW16 (efConstruction 200) built in bulk on all but the last `tail`
base vectors, then the tail added one vector per call, as a service adding documents as they
arrive does; beside hnswlib (M 16, ef_construction 200) doing the same in the same process.
Prints one JSON line per library: bulk build seconds, per-insert wall and CPU microseconds
(median and mean over the tail), then recall@10 at ef 64 over all queries and the number of
single-query calls per second (ef 32).

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/stream_insert.py \
        <data-dir>/imgsift100k [--tail 5000] [--threads 1] [--only vq|hnswlib]
"""
import argparse
import json
import statistics
import time

import numpy as np

from filtered import read_gt, read_vecs, recall


def stream(add_one, tail):
    wall, cpu = [], []
    for row in tail:
        w0, c0 = time.perf_counter(), time.process_time()
        add_one(row)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    us = lambda xs: (round(statistics.median(xs) * 1e6, 1), round(statistics.mean(xs) * 1e6, 1))
    return us(wall), us(cpu)


def single_queries(search_one, xq, n=2000):
    t0 = time.perf_counter()
    for q in xq[:n]:
        search_one(q)
    return round(n / (time.perf_counter() - t0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--tail", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["vq", "hnswlib"])
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    cosine = "textemb" in a.folder
    xb, xq = read_vecs(a.folder, "base"), read_vecs(a.folder, "query")
    gt = read_gt(a.folder)
    head, tail = xb[: len(xb) - a.tail], xb[len(xb) - a.tail :]
    rows = []
    if a.only in (None, "vq"):
        import vq

        vq.set_num_threads(2)
        t0 = time.perf_counter()
        index = vq.index_factory(xb.shape[1], "HNSW16", "cosine" if cosine else "l2", ef_construction=200)
        index.add(head)
        build = time.perf_counter() - t0
        vq.set_num_threads(a.threads)
        wall, cpu = stream(lambda r: index.add(r[None, :]), tail)
        _, ids = index.search(xq, 10, ef=64)
        qps = single_queries(lambda q: index.search(q[None, :], 10, ef=32), xq)
        rows.append(dict(lib="vq", label=a.label, build_s=round(build, 2), insert_wall_us=wall,
                         insert_cpu_us=cpu, recall_ef64=round(recall(ids, gt), 4), single_qps_ef32=qps))
        print(json.dumps(rows[-1]), flush=True)
    if a.only in (None, "hnswlib"):
        import hnswlib

        index = hnswlib.Index(space="cosine" if cosine else "l2", dim=xb.shape[1])
        index.init_index(max_elements=len(xb), M=16, ef_construction=200, random_seed=1)
        t0 = time.perf_counter()
        index.add_items(head, np.arange(len(head)), num_threads=2)
        build = time.perf_counter() - t0
        n0 = len(head)
        counter = iter(range(n0, len(xb)))
        wall, cpu = stream(lambda r: index.add_items(r[None, :], [next(counter)], num_threads=a.threads), tail)
        index.set_ef(64)
        ids, _ = index.knn_query(xq, 10, num_threads=1)
        index.set_ef(32)
        qps = single_queries(lambda q: index.knn_query(q[None, :], 10, num_threads=1), xq)
        rows.append(dict(lib="hnswlib", label=a.label, build_s=round(build, 2), insert_wall_us=wall,
                         insert_cpu_us=cpu, recall_ef64=round(recall(ids, gt), 4), single_qps_ef32=qps))
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
