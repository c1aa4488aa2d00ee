#!/usr/bin/env python3
"""peers.py with its `hnswlib` and `faiss-hnsw` algos cut to one M (16, or `PEERS_HNSW_M`).

peers.py builds M = 16 and M = 32 for both; at 400k vectors and 1 thread an M = 32 build takes
minutes on this machine, and issue 24's HNSW16 comparison needs only M = 16
(`PEERS_HNSW_M=32` runs the M = 32 half alone, for the HNSW32 pair). Everything else
(parameters, timing, JSONL fields, the ef sweep) is peers.py's own code, unchanged.

    ~/.cache/vq/peers-venv/bin/python benchmarks/peers_m16.py --dataset imgsift400k-d50 \
        --data-dir ~/.cache/vq/data --algos hnswlib --threads 1 --no-latency --out peers.jsonl
"""
import os
import sys

sys.path.insert(0, os.environ.get("VQ_PEERS_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench")))
import peers  # noqa: E402

M = int(os.environ.get("PEERS_HNSW_M", "16"))


def hnswlib_one_m(ctx):
    yield peers.HnswlibVariant(ctx, M)


peers.ALGOS["hnswlib"] = ("hnswlib", hnswlib_one_m, f"HNSW M={M}, ef_construction 200, ef sweep")


def faiss_hnsw_one_m(ctx):
    index, secs = peers.faiss_build(ctx, f"HNSW{M},Flat", efc=200)
    yield peers.FaissVariant(index, {"factory": f"HNSW{M},Flat", "M": M, "efConstruction": 200}, secs,
                             [[{"efSearch": ef} for ef in ctx.ef_sweep]])


peers.ALGOS["faiss-hnsw"] = ("faiss", faiss_hnsw_one_m, f"HNSW{M},Flat, efConstruction 200, efSearch sweep")

if __name__ == "__main__":
    sys.exit(peers.main())
