#!/usr/bin/env python3
"""peers.py plus Faiss' `OPQ{m},IVF{nlist},PQ{m}np` (an IndexPreTransform over an OPQMatrix),
without and with RFlat, for issue 19's OPQ-before-IVF comparison.

The build, the nprobe / k_factor sweeps, the timing and the JSONL fields are peers.py's own
(`_ivf_pq_family`'s loop with the OPQ prefix); only the factory string differs from
`faiss-ivf-pq`. `np`: no polysemous training, as peers.py's `faiss-ivf-pq`.

    ~/.cache/vq/peers-venv/bin/python benchmarks/peers_opq.py --dataset imgsift100k \
        --data-dir ~/.cache/vq/data --algos faiss-opq-ivf-pq --threads 1 --nq 2000 --no-latency --out opq.jsonl
"""
import os
import sys

sys.path.insert(0, os.environ.get("VQ_PEERS_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench")))
import peers  # noqa: E402


def faiss_opq_ivf_pq(ctx):
    for m in peers._pq_ms(ctx, [16]):
        fac = f"OPQ{m},IVF{ctx.nlist},PQ{m}np"
        base, secs = peers.faiss_build(ctx, fac)
        bp = peers._ivf_params(ctx, fac, dict(m=m, nbits=8, refine=None))
        yield peers.FaissVariant(base, bp, secs, [[{"nprobe": p} for p in ctx.nprobe_sweep]])
        ref, rsecs = peers.faiss_refine(ctx, base, secs)
        bp = peers._ivf_params(ctx, fac + ",RFlat", dict(m=m, nbits=8, refine="flat"))
        groups = [[{"nprobe": p, "k_factor": kf} for p in ctx.nprobe_grid] for kf in ctx.kf_sweep]
        yield peers.FaissVariant(ref, bp, rsecs, groups, keep=(base,))


peers.ALGOS["faiss-opq-ivf-pq"] = ("faiss", faiss_opq_ivf_pq, "OPQ{m},IVF{nlist},PQ{m}np, m = 16, without and with RFlat")

if __name__ == "__main__":
    sys.exit(peers.main())
