#!/usr/bin/env python3
"""Issue 23's peer for GpuFlat: exact k-NN with PyTorch on the same GPU (GEMM + topk).

Same shape as `cargo run --release -p vq-gpu --example gpu_flat_bench`: uniform [0, 1) data,
default 1,000,000 x 128 base, 10,000 queries, k = 10 and 100, L2. Queries go in batches
(--batch, default 4096) so the distance tile fits; per batch: ||q||^2 + ||x||^2 - 2 q x^T with
one torch.mm (addmm), then torch.topk(largest=False). `--cdist` uses torch.cdist instead of
the GEMM form (it returns the unsquared distance; the order is the same). Prints one JSON line
per round; times are wall seconds with torch.cuda.synchronize() around the search.

    python benchmarks/gpu_flat_torch.py [--n 1000000] [--nq 10000] [--dim 128] [--k 10,100]
        [--batch 4096] [--rounds 3] [--cdist] [--fp16]
"""
import argparse
import json
import time

import torch


def search(x, xn, q, k, batch, cdist):
    out_d, out_i = [], []
    for s in range(0, q.shape[0], batch):
        qb = q[s:s + batch]
        if cdist:
            d = torch.cdist(qb, x)
        else:
            qn = (qb.float() * qb.float()).sum(1, keepdim=True)
            d = torch.addmm(xn.unsqueeze(0) + qn, qb, x.t(), beta=1.0, alpha=-2.0)
        v, i = torch.topk(d, k, dim=1, largest=False, sorted=True)
        out_d.append(v)
        out_i.append(i)
    return torch.cat(out_d), torch.cat(out_i)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--nq", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", default="10,100")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cdist", action="store_true")
    ap.add_argument("--fp16", action="store_true", help="base and queries in float16 (GEMM form only)")
    a = ap.parse_args()
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(1)
    dtype = torch.float16 if a.fp16 else torch.float32
    x = torch.rand(a.n, a.dim, device=dev, generator=g).to(dtype)
    q = torch.rand(a.nq, a.dim, device=dev, generator=g).to(dtype)
    xn = (x.float() * x.float()).sum(1)
    if a.fp16:
        xn = xn.to(dtype)
    algo = "torch.cdist+topk" if a.cdist else ("torch.addmm+topk" + (" fp16" if a.fp16 else ""))
    for k in [int(v) for v in a.k.split(",")]:
        search(x, xn, q[: min(a.batch, a.nq)], k, a.batch, a.cdist)  # warm-up
        torch.cuda.synchronize()
        for r in range(a.rounds):
            t = time.perf_counter()
            search(x, xn, q, k, a.batch, a.cdist)
            torch.cuda.synchronize()
            s = time.perf_counter() - t
            print(json.dumps({"library": "torch", "algo": algo, "device": torch.cuda.get_device_name(),
                              "torch": torch.__version__, "n": a.n, "dim": a.dim, "nq": a.nq, "k": k,
                              "metric": "l2", "batch": a.batch, "round": r, "seconds": round(s, 4),
                              "qps": round(a.nq / s, 1)}), flush=True)


if __name__ == "__main__":
    main()
