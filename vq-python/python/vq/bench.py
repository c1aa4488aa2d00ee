"""``python -m vq.bench``: vq beside the peers that are installed, on your own data, in one process.

    python -m vq.bench --dataset ~/data/sift100k --index HNSW32 --index "IVF1024,Flat" \\
        --peers faiss,hnswlib --threads 1 --out results.jsonl --plot recall-qps.png

``--dataset`` is a folder (``base``, ``query``, optional ``learn`` and ``gt.ivecs`` as
``.fvecs/.bvecs/.fbin/.u8bin/.npy``: the texmex convention) or one ``.npy``/vector file, whose
last ``--nq`` rows become the queries. Recall@k is always against exact ground truth: the
folder's ``gt.ivecs`` (``gt-cosine.ivecs`` for cosine) when it has one, else computed here with
``vq.knn``. Every index is trained on ``learn`` (else the base) and searched with a sweep of its
knob (``ef`` for HNSW, ``nprobe`` for IVF; ``--sweep ef=16,32,64`` to choose). Output: a table,
JSON lines with the fields of ``cargo xtask bench`` (plus ``cpu_s``/``qps_cpu``: queries per
CPU-second of the process, the fair figure on a shared machine) and, with matplotlib, a
recall-QPS plot. Peers: ``faiss`` (the same factory string, ``efConstruction`` 200 as vq's
default) and ``hnswlib`` (``HNSW{m}`` only).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

import vq

EXTS = (".fvecs", ".bvecs", ".fbin", ".u8bin", ".npy")


def read_vectors(path: Path) -> np.ndarray:
    """A texmex / big-ann / numpy vector file as a 2-D array (uint8 files stay uint8)."""
    path = Path(path)
    ext = path.suffix
    if ext == ".npy":
        return np.load(path, mmap_mode="r")
    if ext in (".fvecs", ".ivecs", ".bvecs"):
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0:
            raise ValueError(f"{path}: empty file")
        d = int(raw[:4].view(np.int32)[0])
        item = {".fvecs": 4, ".ivecs": 4, ".bvecs": 1}[ext]
        row = 4 + d * item
        if d <= 0 or raw.size % row:
            raise ValueError(f"{path}: not a {ext} file (dimension {d}, {raw.size} bytes)")
        rows = raw.reshape(-1, row)[:, 4:]
        dtype = {".fvecs": np.float32, ".ivecs": np.int32, ".bvecs": np.uint8}[ext]
        return np.ascontiguousarray(rows).view(dtype)
    if ext in (".fbin", ".u8bin", ".ibin"):
        n, d = np.fromfile(path, dtype=np.int32, count=2)
        dtype = {".fbin": np.float32, ".u8bin": np.uint8, ".ibin": np.int32}[ext]
        return np.fromfile(path, dtype=dtype, offset=8).reshape(n, d)
    raise ValueError(f"{path}: unknown vector format (expected one of {EXTS + ('.ivecs', '.ibin')})")


def find(folder: Path, stem: str) -> Path | None:
    for ext in EXTS:
        if (folder / f"{stem}{ext}").exists():
            return folder / f"{stem}{ext}"
    return None


def load(args):
    p = Path(args.dataset).expanduser()
    learn = gt = None
    if p.is_dir():
        base_p, query_p = find(p, "base"), find(p, "query")
        if base_p is None or query_p is None:
            raise SystemExit(f"vq.bench: {p} needs base.* and query.* ({', '.join(EXTS)})")
        base, query = read_vectors(base_p), read_vectors(query_p)
        if find(p, "learn"):
            learn = read_vectors(find(p, "learn"))
        gt_name = "gt-cosine.ivecs" if args.metric == "cosine" else ("gt.ivecs" if args.metric == "l2" else None)
        if gt_name and (p / gt_name).exists():
            gt = read_vectors(p / gt_name)
        name = p.name
    else:
        allv = read_vectors(p)
        nq = args.nq or min(1000, len(allv) // 10)
        base, query = allv[:-nq], allv[-nq:]
        name = p.stem
    if args.nq:
        query = query[: args.nq]
        gt = None if gt is None else gt[: args.nq]
    f32 = lambda a: None if a is None else np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    base, query, learn = f32(base), f32(query), f32(learn)
    if gt is None or gt.shape[1] < args.k:
        t = time.perf_counter()
        _, gt = vq.knn(query, base, args.k, args.metric)
        print(f"ground truth: exact {args.metric} search of {len(query)} queries ({time.perf_counter() - t:.1f} s)")
    return name, base, query, learn, np.asarray(gt[:, : args.k], dtype=np.int64)


def recall_at_k(I: np.ndarray, gt: np.ndarray, k: int) -> float:
    hits = sum(len(set(a[:k].tolist()) & set(b[:k].tolist())) for a, b in zip(I, gt))
    return hits / (k * len(gt))


def default_sweep(spec: str):
    if re.match(r"^IVF\d+", spec):
        return [{"nprobe": n} for n in (1, 2, 4, 8, 16, 32, 64, 128)]
    if spec.startswith("HNSW"):
        return [{"ef": e} for e in (16, 32, 64, 128, 256, 512)]
    return [{}]


def parse_sweep(s: str):
    name, _, values = s.partition("=")
    if name not in ("ef", "nprobe", "refine_k") or not values:
        raise SystemExit(f"vq.bench: --sweep {s!r}: expected ef=|nprobe=|refine_k= with comma-separated values")
    return name, [int(v) for v in values.split(",")]


def sweep_points(spec, sweeps):
    if not sweeps:
        return default_sweep(spec)
    points = [{}]
    for name, values in sweeps:
        points = [dict(p, **{name: v}) for p in points for v in values]
    return points


def in_threads(fn, query, n):
    """Runs `fn(part)` on `n` Python threads, each on its slice of the queries; returns the
    stacked results."""
    import threading

    parts = np.array_split(query, n)
    out = [None] * n

    def work(i):
        out[i] = fn(parts[i])

    ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return np.vstack(out)


def timed(fn, reps):
    """Best wall time of `reps` runs, the process CPU time of that run, and its result."""
    best = (float("inf"), 0.0, None)
    for _ in range(max(1, reps)):
        c0, t0 = time.process_time(), time.perf_counter()
        r = fn()
        t, c = time.perf_counter() - t0, time.process_time() - c0
        if t < best[0]:
            best = (t, c, r)
    return best


class VqRunner:
    library = "vq"
    version = vq.__version__

    def __init__(self, spec, metric, threads):
        self.spec, self.metric, self.threads = spec, metric, threads

    def build(self, base, learn):
        self.index = vq.index_factory(base.shape[1], self.spec, self.metric)
        if not self.index.is_trained:
            self.index.train(learn if learn is not None else base)
        self.index.reserve(len(base))
        for i in range(0, len(base), 10_000):  # as cargo xtask bench adds
            self.index.add(base[i : i + 10_000])

    def search(self, q, k, params):
        return self.index.search(q, k, **params)[1]

    def bytes(self):
        return self.index.memory_usage()["total"]


class FaissRunner:
    library = "faiss"

    def __init__(self, spec, metric, threads):
        import faiss

        self.faiss, self.spec, self.threads = faiss, spec, threads
        self.version = faiss.__version__
        self.metric = {"l2": faiss.METRIC_L2, "ip": faiss.METRIC_INNER_PRODUCT, "cosine": faiss.METRIC_INNER_PRODUCT}[metric]
        self.normalize = metric == "cosine"
        faiss.omp_set_num_threads(threads)

    def _prep(self, x):
        if self.normalize:
            x = x.copy()
            self.faiss.normalize_L2(x)
        return x

    def build(self, base, learn):
        f = self.faiss
        self.index = f.index_factory(base.shape[1], self.spec, self.metric)
        # vq's HNSW default efConstruction is 200 (Faiss': 40): build the same graph quality.
        inner = self.index
        for _ in range(3):
            if hasattr(inner, "hnsw"):
                inner.hnsw.efConstruction = 200
                break
            inner = getattr(inner, "base_index", None) or getattr(inner, "index", None)
            if inner is None:
                break
            inner = f.downcast_index(inner)
        if not self.index.is_trained:
            self.index.train(self._prep(learn if learn is not None else base))
        self.index.add(self._prep(base))

    def search(self, q, k, params):
        names = {"ef": "efSearch", "nprobe": "nprobe", "refine_k": "k_factor"}
        if params:
            self.faiss.ParameterSpace().set_index_parameters(
                self.index, ",".join(f"{names[n]}={v}" for n, v in params.items())
            )
        return self.index.search(self._prep(q) if self.normalize else q, k)[1]

    def bytes(self):
        return None


class HnswlibRunner:
    library = "hnswlib"

    def __init__(self, spec, metric, threads):
        import hnswlib

        m = re.fullmatch(r"HNSW(\d+)(,Flat)?", spec)
        if not m:
            raise NotImplementedError(f"hnswlib runs HNSW{{m}} only, not {spec}")
        self.hnswlib, self.m, self.threads = hnswlib, int(m.group(1)), threads
        self.space = {"l2": "l2", "ip": "ip", "cosine": "cosine"}[metric]
        self.version = getattr(hnswlib, "__version__", "?")

    def build(self, base, learn):
        self.index = self.hnswlib.Index(space=self.space, dim=base.shape[1])
        self.index.init_index(max_elements=len(base), M=self.m, ef_construction=200, random_seed=100)
        self.index.add_items(base, np.arange(len(base)), num_threads=self.threads)

    def search(self, q, k, params):
        self.index.set_ef(max(params.get("ef", 64), k))
        return self.index.knn_query(q, k=k, num_threads=self.threads)[0]

    def bytes(self):
        return None


RUNNERS = {"vq": VqRunner, "faiss": FaissRunner, "hnswlib": HnswlibRunner}


def run(args) -> list[dict]:
    name, base, query, learn, gt = load(args)
    nb, d = base.shape
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"dataset {name}: {nb} x {d} base, {len(query)} queries, k = {args.k}, metric {args.metric}, "
          f"{args.threads} thread(s), vq SIMD {vq.simd_level()}, {os.cpu_count()} cores, load {load_avg:.1f}")
    vq.set_num_threads(args.threads)
    sweeps = [parse_sweep(s) for s in args.sweep]
    libs = ["vq"] + [p for p in args.peers.split(",") if p]
    records = []
    for spec in args.index:
        for lib in libs:
            try:
                runner = RUNNERS[lib](spec, args.metric, args.threads)
            except ImportError as e:
                print(f"{lib}: not installed ({e}); skipped")
                continue
            except NotImplementedError as e:
                print(f"{lib}: {e}; skipped")
                continue
            t = time.perf_counter()
            runner.build(base, learn)
            build_s = time.perf_counter() - t
            for params in sweep_points(spec, sweeps):
                wall, cpu, I = timed(lambda: runner.search(query, args.k, params), args.reps)
                rec = {
                    "algo": spec,
                    "library": lib,
                    "version": runner.version,
                    "build_params": {"ef_construction": 200} if "HNSW" in spec else {},
                    "search_params": params,
                    "build_s": round(build_s, 4),
                    "index_bytes": runner.bytes(),
                    "qps": round(len(query) / wall, 2),
                    "recall": round(recall_at_k(np.asarray(I), gt, args.k), 5),
                    "k": args.k,
                    "threads": args.threads,
                    "nb": nb,
                    "nq": len(query),
                    "dim": d,
                    "metric": args.metric,
                    "cpu_s": round(cpu, 4),
                    "qps_cpu": round(len(query) / max(cpu, 1e-9), 2),
                    "source": "python -m vq.bench",
                }
                records.append(rec)
                print(f"  {lib:8} {spec:20} {json.dumps(params):18} recall {rec['recall']:.4f}  "
                      f"QPS {rec['qps']:>10.1f}  QPS/CPU-s {rec['qps_cpu']:>10.1f}  build {build_s:6.1f} s")
                if lib == "vq" and args.py_threads > 1:
                    # The same batch split over Python threads calling one index at once (each
                    # call with `--threads` workers): the GIL is released, so this scales. One-thread
                    # and n-thread passes alternate, so a change of load hits both alike; the
                    # speed-up is best against best.
                    n = args.py_threads
                    wall_1, (wall_n, cpu_n, I_n) = wall, (float("inf"), 0.0, None)
                    for _ in range(max(1, args.reps)):
                        wall_1 = min(wall_1, timed(lambda: runner.search(query, args.k, params), 1)[0])
                        run_n = timed(
                            lambda: in_threads(lambda part: runner.search(part, args.k, params), query, n), 1
                        )
                        if run_n[0] < wall_n:
                            wall_n, cpu_n, I_n = run_n
                    assert np.array_equal(I_n, np.asarray(I)), "threaded results differ"
                    rec_n = dict(rec, py_threads=n, qps=round(len(query) / wall_n, 2), cpu_s=round(cpu_n, 4),
                                 qps_cpu=round(len(query) / max(cpu_n, 1e-9), 2),
                                 speedup=round(wall_1 / wall_n, 3))
                    records.append(rec_n)
                    print(f"  {lib:8} {spec:20} {json.dumps(params):18} {n} Python threads: QPS {rec_n['qps']:>10.1f} "
                          f"= {rec_n['speedup']:.2f}x one thread (identical results)")
            del runner
    return records


def plot(records, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot skipped: matplotlib is not installed (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for key in sorted({(r["library"], r["algo"]) for r in records}):
        pts = sorted((r["recall"], r["qps"]) for r in records if (r["library"], r["algo"]) == key)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{key[0]} {key[1]}")
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{records[0]['k']}")
    ax.set_ylabel("queries per second")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot: {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vq.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, help="folder (base/query/learn/gt) or one vector file")
    ap.add_argument("--index", action="append", help="factory string; repeat for several (default HNSW32)")
    ap.add_argument("--peers", default="", help="comma list: faiss,hnswlib (those installed run)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nq", type=int, default=0, help="use the first NQ queries (a single file: its last NQ rows)")
    ap.add_argument("--metric", default="l2", choices=["l2", "ip", "cosine"])
    ap.add_argument("--threads", type=int, default=1, help="threads for every library (default 1)")
    ap.add_argument("--sweep", action="append", default=[], help="KNOB=V1,V2,... (ef, nprobe, refine_k)")
    ap.add_argument("--py-threads", type=int, default=1,
                    help="also search vq with N Python threads over one index (speed-up vs one)")
    ap.add_argument("--reps", type=int, default=3, help="batch repetitions; QPS from the best (default 3)")
    ap.add_argument("--out", help="append JSON lines here")
    ap.add_argument("--plot", help="write the recall-QPS plot here (.png/.svg; needs matplotlib)")
    args = ap.parse_args(argv)
    args.index = args.index or ["HNSW32"]
    records = run(args)
    if args.out:
        with open(args.out, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        print(f"results: {args.out} ({len(records)} lines)")
    if args.plot and records:
        plot(records, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
