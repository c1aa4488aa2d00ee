"""Filtered search, vq beside Faiss, on imgsift100k: each filter passes a random fraction of
the ids; recall@10 against exact search over the passing vectors; QPS per CPU-second, one
thread, the same index parameters and the same search knob (HNSW's ef, IVF's nprobe) on both
sides. HNSW graphs are built with M 16 / efConstruction 200 (`--index HNSW16`, the default);
an inverted file (`--index IVF1024,Flat`, `IVF1024,SQ8`, `IVF1024,PQ16`) is trained by each
library on `learn.bvecs`. Faiss is given the filter as an `IDSelectorBitmap`, vq as a mask.

PYTHONPATH=<dir holding the vq package> ~/.cache/vq/peers-venv/bin/python benchmarks/filtered.py \
    --data-dir ~/.cache/vq/data [--index HNSW16] [--nq 1000] [--rounds 2] [--out filtered.jsonl]
"""

import argparse
import json
import time

import faiss
import numpy as np
import vq


def read_bvecs(path):
    raw = np.fromfile(path, dtype=np.uint8)
    d = int(raw[:4].view(np.int32)[0])
    return raw.reshape(-1, d + 4)[:, 4:].astype(np.float32)


def exact_filtered(xb, xq, mask, k):
    ids = np.flatnonzero(mask)
    sub = xb[ids]
    d = (xq**2).sum(1)[:, None] - 2 * xq @ sub.T + (sub**2).sum(1)[None, :]
    return ids[np.argsort(d, axis=1)[:, :k]]


def recall(found, truth):
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def timed(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def build(spec, xb, xl):
    """The vq index, the Faiss index and the name of the search knob, for `spec`."""
    d = xb.shape[1]
    if spec.startswith("HNSW"):
        m = int(spec[4:])
        vi = vq.index_factory(d, spec, ef_construction=200)
        fi = faiss.IndexHNSWFlat(d, m)
        fi.hnsw.efConstruction = 200
        knob = "ef"
    else:
        vi = vq.index_factory(d, spec)
        fi = faiss.index_factory(d, spec)
        vi.train(xl)
        fi.train(xl)
        knob = "nprobe"
    vi.add(xb)
    fi.add(xb)
    return vi, fi, knob


def faiss_params(knob, value, sel):
    if knob == "ef":
        return faiss.SearchParametersHNSW(sel=sel, efSearch=value)
    return faiss.SearchParametersIVF(sel=sel, nprobe=value)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--index", default="HNSW16", help="HNSW<m> or a Faiss/vq IVF factory string")
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--label", default="vq", help="the library name vq's rows carry")
    ap.add_argument("--rates", default="0.5,0.3,0.2,0.1,0.05,0.02")
    ap.add_argument("--efs", "--values", dest="values", default="16,32,64,128,256",
                    help="the search knob's values (ef for HNSW, nprobe for IVF)")
    ap.add_argument("--out", default="filtered.jsonl")
    a = ap.parse_args()
    xb = read_bvecs(f"{a.data_dir}/imgsift100k/base.bvecs")
    xq = read_bvecs(f"{a.data_dir}/imgsift100k/query.bvecs")[: a.nq]
    xl = read_bvecs(f"{a.data_dir}/imgsift100k/learn.bvecs")
    n, k = len(xb), 10
    vq.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    vi, fi, knob = build(a.index, xb, xl)
    vq.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(7)
    out = open(a.out, "a")
    for rate in [float(r) for r in a.rates.split(",")]:
        mask = rng.random(n) < rate
        truth = exact_filtered(xb, xq, mask, k)
        # The selector keeps a pointer into `bits`: it must outlive the searches.
        bits = np.packbits(mask, bitorder="little")
        sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
        for rnd in range(a.rounds):
            for value in [int(e) for e in a.values.split(",")]:
                for lib in ("vq", "faiss") if rnd % 2 == 0 else ("faiss", "vq"):
                    if lib == "vq":
                        (_, ids), cpu, wall = timed(lambda: vi.search(xq, k, filter=mask, **{knob: value}))
                    else:
                        (_, ids), cpu, wall = timed(lambda: fi.search(xq, k, params=faiss_params(knob, value, sel)))
                    row = dict(library=a.label if lib == "vq" else lib, algo=a.index, dataset="imgsift100k", pass_rate=rate,
                               round=rnd, recall=recall(ids, truth), qps_cpu=len(xq) / cpu, qps=len(xq) / wall,
                               nq=len(xq), k=k, threads=1, **{knob: value})
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    print(f"{row['library']:8} rate {rate:.3f} round {rnd} {knob} {value:4}: recall {row['recall']:.4f} "
                          f"cQPS {row['qps_cpu']:9.0f}")


if __name__ == "__main__":
    main()
