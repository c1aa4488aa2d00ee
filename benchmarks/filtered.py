"""Filtered search, vq beside Faiss: each filter passes a random fraction of the ids; recall@10
against exact search over the passing vectors; QPS per CPU-second, one thread, the same index
parameters and the same search knob (HNSW's ef, IVF's nprobe) on both sides. HNSW graphs are
built with M 16 / efConstruction 200 (`--index HNSW16`, the default); an inverted file
(`--index IVF1024,Flat`, `IVF1024,SQ8`, `IVF1024,PQ16`) is trained by each library on the set's
`learn` vectors (`base` where it has none: textemb100k). Faiss is given the filter as an
`IDSelectorBitmap`, vq as a mask.

`--dataset imgsift100k` (L2, the default) or `textemb100k` (cosine: the vectors have unit norm,
so Faiss runs inner product on them, as its users do; vq is given `cosine`).

`--range R`: range search instead of k-NN, with the radius the median over queries of the
exact unfiltered R-th neighbour's score; recall over the exact filtered hits (rows `kind:
range`). Faiss' HNSW range search takes `SearchParametersHNSW` with the selector too.

PYTHONPATH=<dir holding the vq package> ~/.cache/vq/peers-venv/bin/python benchmarks/filtered.py \
    --data-dir ~/.cache/vq/data [--dataset imgsift100k] [--index HNSW16] [--nq 1000] [--rounds 2] \
    [--range R] [--out filtered.jsonl]
"""

import argparse
import json
import time

import faiss
import numpy as np
import vq
from texmex import ivecs, vectors


def read_vecs(folder, name):
    """`name.bvecs` (u8) or `name.fvecs` (f32) of a texmex folder, as f32; None if absent."""
    for ext in ("bvecs", "fvecs"):
        try:
            return vectors(f"{folder}/{name}.{ext}")
        except FileNotFoundError:
            pass
    return None


def read_gt(folder, k=10, nq=None):
    """The first `k` exact neighbours of each query (`gt.ivecs`), the first `nq` queries."""
    return ivecs(f"{folder}/gt.ivecs", nq)[:, :k]


def keys(xb, xq, ids, ip):
    """Smaller is better: squared L2, or the negated inner product."""
    sub = xb[ids]
    if ip:
        return -(xq @ sub.T)
    return (xq**2).sum(1)[:, None] - 2 * xq @ sub.T + (sub**2).sum(1)[None, :]


def exact_filtered(xb, xq, mask, k, ip):
    ids = np.flatnonzero(mask)
    return ids[np.argsort(keys(xb, xq, ids, ip), axis=1)[:, :k]]


def exact_range(xb, xq, mask, limit, ip):
    """The passing ids whose key is below `limit`, per query."""
    ids = np.flatnonzero(mask)
    found = []
    for lo in range(0, len(xq), 500):
        kk = keys(xb, xq[lo : lo + 500], ids, ip)
        found += [set(ids[row < limit].tolist()) for row in kk]
    return found


def range_recall(lims, got, truth):
    hits = sum(len(t) for t in truth)
    found = sum(len(set(got[lims[i] : lims[i + 1]].tolist()) & t) for i, t in enumerate(truth))
    return found / max(hits, 1), hits


def recall(found, truth):
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def timed(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def build(spec, xb, xl, ip):
    """The vq index, the Faiss index and the name of the search knob, for `spec`."""
    d = xb.shape[1]
    vmetric, fmetric = ("cosine", faiss.METRIC_INNER_PRODUCT) if ip else ("l2", faiss.METRIC_L2)
    if spec.startswith("HNSW"):
        m = int(spec[4:])
        vi = vq.index_factory(d, spec, vmetric, ef_construction=200)
        fi = faiss.IndexHNSWFlat(d, m, fmetric)
        fi.hnsw.efConstruction = 200
        knob = "ef"
    else:
        vi = vq.index_factory(d, spec, vmetric)
        fi = faiss.index_factory(d, spec, fmetric)
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
    ap.add_argument("--dataset", default="imgsift100k", help="imgsift100k (L2) or textemb100k (cosine)")
    ap.add_argument("--index", default="HNSW16", help="HNSW<m> or a Faiss/vq IVF factory string")
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--label", default="vq", help="the library name vq's rows carry")
    ap.add_argument("--rates", default="0.5,0.3,0.2,0.1,0.05,0.02")
    ap.add_argument("--efs", "--values", dest="values", default="16,32,64,128,256",
                    help="the search knob's values (ef for HNSW, nprobe for IVF)")
    ap.add_argument("--range", type=int, default=0, help="range search, radius at this exact rank")
    ap.add_argument("--out", default="filtered.jsonl")
    a = ap.parse_args()
    folder = f"{a.data_dir}/{a.dataset}"
    ip = a.dataset.startswith("textemb")
    xb = read_vecs(folder, "base")
    xq = read_vecs(folder, "query")[: a.nq]
    xl = read_vecs(folder, "learn")
    n, k = len(xb), 10
    vq.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    vi, fi, knob = build(a.index, xb, xb if xl is None else xl, ip)
    vq.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    limit = None
    if a.range:
        # The radius: the median exact R-th neighbour's key over all vectors (then as a score).
        kth = np.sort(keys(xb, xq, np.arange(n), ip), axis=1)[:, a.range - 1]
        limit = float(np.median(kth))
    radius = -limit if ip and limit is not None else limit
    rng = np.random.default_rng(7)
    out = open(a.out, "a")
    for rate in [float(r) for r in a.rates.split(",")]:
        mask = rng.random(n) < rate
        truth = exact_range(xb, xq, mask, limit, ip) if a.range else exact_filtered(xb, xq, mask, k, ip)
        # numpy's BLAS threads spin for ~0.1 s after the ground truth's products, and the process
        # CPU time counts them: without the pause the first calls at each pass rate ran at half
        # speed on both sides.
        time.sleep(0.5)
        # The selector keeps a pointer into `bits`: it must outlive the searches.
        bits = np.packbits(mask, bitorder="little")
        sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
        for rnd in range(a.rounds):
            for value in [int(e) for e in a.values.split(",")]:
                for lib in ("vq", "faiss") if rnd % 2 == 0 else ("faiss", "vq"):
                    if a.range:
                        if lib == "vq":
                            res, cpu, wall = timed(lambda: vi.range_search(xq, radius, filter=mask, **{knob: value}))
                        else:
                            res, cpu, wall = timed(lambda: faiss_range(fi, xq, radius, faiss_params(knob, value, sel)))
                        rec, hits = range_recall(res[0], res[2], truth)
                        extra = dict(kind="range", rank=a.range, radius=radius, hits=hits)
                    else:
                        if lib == "vq":
                            (_, ids), cpu, wall = timed(lambda: vi.search(xq, k, filter=mask, **{knob: value}))
                        else:
                            (_, ids), cpu, wall = timed(lambda: fi.search(xq, k, params=faiss_params(knob, value, sel)))
                        rec, extra = recall(ids, truth), dict(k=k)
                    row = dict(library=a.label if lib == "vq" else lib, algo=a.index, dataset=a.dataset, pass_rate=rate,
                               round=rnd, recall=rec, qps_cpu=len(xq) / cpu, qps=len(xq) / wall,
                               nq=len(xq), threads=1, **extra, **{knob: value})
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    print(f"{row['library']:8} rate {rate:.3f} round {rnd} {knob} {value:4}: recall {row['recall']:.4f} "
                          f"cQPS {row['qps_cpu']:9.0f}")


def faiss_range(fi, xq, radius, params):
    """Faiss' range search in blocks of 100 queries (1.15.1 aborts on 10,000 at once), joined."""
    lims, dist, ids = [np.zeros(1, dtype=np.int64)], [], []
    for lo in range(0, len(xq), 100):
        l, d, i = fi.range_search(xq[lo : lo + 100], radius, params=params)
        lims.append(l[1:].astype(np.int64) + lims[-1][-1])
        dist.append(d)
        ids.append(i)
    return np.concatenate(lims), np.concatenate(dist), np.concatenate(ids)


if __name__ == "__main__":
    main()
