"""docs/SCALING.md's bytes per vector, measured: each index SCALING.md recommends, built over a
SIFT folder's base vectors (IVF and SQ/PQ trained on the first `--train` learn vectors), with
`memory_usage()` per vector (what the index holds in memory, list slack included) and the
size of its `write_index` file per vector. One JSON line per index.

  python benchmarks/bytes_per_vector.py ~/.cache/vq/data/imgsift100k
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np

import vq
from texmex import bvecs

SPECS = [
    "HNSW16",
    "HNSW32",
    "HNSW32,SQ8",
    "HNSW32,SQ8,RFlat",
    "IVF1024,Flat",
    "IVF1024,SQ8",
    "IVF1024,PQ16",
    "IVF1024,PQ32x4fs",
    "IVF1024,PQ32,RFlat",
]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a folder with base.bvecs and learn.bvecs")
    p.add_argument("--n", type=int, default=None, help="base rows (default: all)")
    p.add_argument("--train", type=int, default=100_000)
    p.add_argument("--efc", type=int, default=100, help="HNSW efConstruction")
    p.add_argument("--specs", default="|".join(SPECS), help="factory strings separated by |")
    args = p.parse_args()
    base = bvecs(os.path.join(args.data, "base.bvecs"), args.n)
    learn = bvecs(os.path.join(args.data, "learn.bvecs"), args.train)
    n, d = base.shape
    print(json.dumps({"simd": vq.simd_level(), "n": n, "d": d}), flush=True)
    for spec in args.specs.split("|"):
        t0 = time.perf_counter()
        kw = {"ef_construction": args.efc} if spec.startswith("HNSW") else {}
        index = vq.index_factory(d, spec, **kw)
        if not index.is_trained:
            index.train(learn)
        index.add(base)
        build = time.perf_counter() - t0
        mem = index.memory_usage()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "i.vq")
            vq.write_index(index, path)
            file_bytes = os.path.getsize(path)
        print(
            json.dumps(
                {
                    "spec": spec,
                    "n": n,
                    "build_s": round(build, 1),
                    "bytes_per_vector": round(mem["total"] / n, 1),
                    "file_bytes_per_vector": round(file_bytes / n, 1),
                    "parts_per_vector": {k: round(v / n, 1) for k, v in mem.items() if k != "total" and v},
                }
            ),
            flush=True,
        )
        del index


if __name__ == "__main__":
    main()
