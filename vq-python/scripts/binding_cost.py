"""What the wheel costs over Rust, and how Python threads scale (issue 21's two figures).

    cargo build --release -p vq --example search_index
    python vq-python/scripts/binding_cost.py DATASET_DIR target/release/examples/search_index

DATASET_DIR is a texmex folder (base.bvecs, query.bvecs; e.g. imgsift100k). For HNSW32 and
IVF1024,Flat it builds the index with the wheel, writes it, reads it back, then:

1. searches that one file from Rust (`search_index ... reps=R`, RAYON_NUM_THREADS=1) and from
   Python (`vq.set_num_threads(1)`), alternating, best of R batches each, three rounds: same
   file, same queries, same parameters, so any difference is the binding (or the binary);
2. searches it from one Python thread and from two Python threads (the batch split in two),
   alternating seven times, results asserted identical: best against best.
"""
import os
import subprocess
import sys
import threading
import time

import numpy as np

import vq

REPS = 5


def bvecs(path):
    a = np.fromfile(path, dtype=np.uint8)
    d = int(a[:4].view(np.int32)[0])
    return np.ascontiguousarray(a.reshape(-1, d + 4)[:, 4:].astype(np.float32))


def best_qps(search, n, reps=REPS):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        search()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main(data, example, workdir="/tmp"):
    xb, xq = bvecs(f"{data}/base.bvecs"), bvecs(f"{data}/query.bvecs")
    qpath = os.path.join(workdir, "binding_cost_queries.npy")
    np.save(qpath, xq)
    vq.set_num_threads(1)
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    for spec, knob, values in (("HNSW32", "ef", (32, 64, 128)), ("IVF1024,Flat", "nprobe", (8, 16, 32))):
        index = vq.index_factory(xb.shape[1], spec, vq.METRIC_L2)
        index.train(xb)
        index.add(xb)
        path = os.path.join(workdir, f"binding_cost_{spec.replace(',', '_')}.vqi")
        vq.write_index(index, path)
        index = vq.read_index(path)
        for v in values:
            ratios = []
            for _ in range(3):
                cmd = [example, path, qpath, "10", f"{knob}={v}", f"reps={REPS}"]
                rust = float(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.split()[3])
                py = best_qps(lambda: index.search(xq, 10, **{knob: v}), len(xq))
                ratios.append(py / rust)
            print(f"{spec} {knob}={v}: wheel / Rust, same file, rounds {' '.join(f'{r:.3f}' for r in ratios)}",
                  flush=True)
        v = values[1]
        ref = index.search(xq, 10, **{knob: v})[1]
        halves = np.array_split(xq, 2)

        def two():
            out = [None, None]

            def work(i):
                out[i] = index.search(halves[i], 10, **{knob: v})[1]

            ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            dt = time.perf_counter() - t0
            assert np.array_equal(np.vstack(out), ref), "two threads gave other results"
            return dt

        one_t, two_t = [], []
        for _ in range(7):
            t0 = time.perf_counter()
            index.search(xq, 10, **{knob: v})
            one_t.append(time.perf_counter() - t0)
            two_t.append(two())
        print(f"{spec} {knob}={v}: 1 Python thread {len(xq) / min(one_t):.0f} QPS, 2 threads "
              f"{len(xq) / min(two_t):.0f} QPS: {min(one_t) / min(two_t):.3f}x (identical results)", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
