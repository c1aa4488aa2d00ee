"""numpy's side of vq-io's I/O figure (benches/io.rs runs this): read a .bvecs file as
float32 the way texmex readers do (numpy.fromfile, as Faiss' contrib bvecs_mmap/fvecs_read),
then write it back as .fvecs (as Faiss' fvecs_write). Prints one JSON line."""

import json
import os
import sys
import tempfile
import time

import numpy as np


def read_bvecs_f32(path):
    a = np.fromfile(path, dtype=np.uint8)
    d = int(a[:4].view(np.int32)[0])
    return a.reshape(-1, d + 4)[:, 4:].astype(np.float32)


def write_fvecs(path, m):
    n, d = m.shape
    m1 = np.empty((n, d + 1), dtype=np.int32)
    m1[:, 0] = d
    m1[:, 1:] = m.view(np.int32)
    m1.tofile(path)


def median_best(f, reps, setup=lambda: None):
    times = []
    for _ in range(reps):
        setup()
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2], times[0]


def main():
    path, reps = sys.argv[1], int(sys.argv[2])
    size = os.path.getsize(path)
    m = read_bvecs_f32(path)
    read_med, read_best = median_best(lambda: read_bvecs_f32(path), reps)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "base.fvecs")
        write_med, write_best = median_best(lambda: write_fvecs(out, m), reps)
        new_med, new_best = median_best(lambda: write_fvecs(out, m), reps, lambda: os.remove(out))
        out_size = os.path.getsize(out)
    print(json.dumps({
        "numpy": np.__version__, "rows": m.shape[0], "dim": m.shape[1], "read_bytes": size,
        "read_median_s": read_med, "read_best_s": read_best,
        "write_bytes": out_size, "write_median_s": write_med, "write_best_s": write_best,
        "new_median_s": new_med, "new_best_s": new_best,
    }))


if __name__ == "__main__":
    main()
