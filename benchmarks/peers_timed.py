#!/usr/bin/env python3
"""peers.py, unchanged, with Faiss' train and add timed apart.

peers.py records one `build_s` (train + add, wall). Issue 19's figures ask for train time and
add time separately, and on a shared machine the build's process CPU time is the steadier
figure, so this wraps `peers.faiss_build` to time `train` and `add` on their own (wall and
`time.process_time()`) and adds `train_s`, `add_s` and `build_cpu_s` to every line of that
index: the names vq-bench writes. Everything else (sweeps, timing, fields) is peers.py's.

With `VQ_PEERS_FINE_GRID=1` the refine and ScaNN grids (nprobe x k_factor, leaves x reorder)
step nprobe through peers.py's whole nprobe sweep (..., 12, 16, 24, 32, 48, ...) instead of
powers of two only, so a peer is measured on the same nprobe grid as vq's `--sweep`.

    ~/.cache/vq/peers-venv/bin/python benchmarks/peers_timed.py --dataset imgsift100k \
        --data-dir ~/.cache/vq/data --algos faiss-ivf-flat --threads 1 --nq 2000 --no-latency --out f.jsonl
"""
import os
import sys
import time

sys.path.insert(0, os.environ.get("VQ_PEERS_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench")))
import peers  # noqa: E402

_TIMES = {}  # id(built index) -> {"train_s", "add_s", "build_cpu_s"}


def faiss_build_timed(ctx, factory, efc=None):
    """peers.faiss_build's steps, in its order, with train and add timed apart."""
    import faiss
    ds = ctx.ds
    index = faiss.index_factory(ds.dim, factory, ctx.faiss_metric())
    if efc is not None:
        h = index
        while not hasattr(h, "hnsw"):
            h = faiss.downcast_index(h.base_index)
        h.hnsw.efConstruction = efc
    c0, t0 = time.process_time(), time.perf_counter()
    if not index.is_trained:
        index.train(ds.train)
    t1 = time.perf_counter()
    index.add(ds.base)
    t2, c2 = time.perf_counter(), time.process_time()
    _TIMES[id(index)] = {"train_s": round(t1 - t0, 3), "add_s": round(t2 - t1, 3), "build_cpu_s": round(c2 - c0, 3)}
    return index, t2 - t0


def run_variant_timed(ctx, algo, v, emit):
    # A refine variant wraps the built index, which it keeps alive in `keep`.
    times = next((_TIMES[id(i)] for i in [getattr(v, "index", None), *getattr(v, "keep", ())] if id(i) in _TIMES), {})
    return _run_variant(ctx, algo, v, lambda rec: emit({**rec, **times}))


peers.faiss_build = faiss_build_timed
if os.environ.get("VQ_PEERS_FINE_GRID") == "1":
    _ctx_init = peers.Ctx.__init__

    def _ctx_init_fine(self, *a, **kw):
        _ctx_init(self, *a, **kw)
        self.nprobe_grid = list(self.nprobe_sweep)

    peers.Ctx.__init__ = _ctx_init_fine
_run_variant, peers.run_variant = peers.run_variant, run_variant_timed

if __name__ == "__main__":
    sys.exit(peers.main())
