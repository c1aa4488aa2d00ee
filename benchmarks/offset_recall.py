"""Recall@10 (against exact float64 search) of PQ4 / IVF16,Flat / IVF16,PQ4 on clustered d = 16 data moved
by a common offset (0, 1e3, 1e4): the probe of session 37. PYTHONPATH=<wheel> python benchmarks/offset_recall.py"""
import numpy as np, vq, sys
rng = np.random.default_rng(0)
d, n = 16, 2000
for off in [0.0, 1e3, 1e4]:
    c = rng.random((20, d)).astype(np.float32) * 4
    x = (c[rng.integers(0, 20, n)] + rng.random((n, d)).astype(np.float32) + off).astype(np.float32)
    q = x[:200] + 0.01
    xf, qf = x.astype(np.float64), q.astype(np.float64)
    gt = np.argsort(((qf[:, None, :] - xf[None]) ** 2).sum(-1), axis=1)[:, :10]
    out = []
    for spec in ["PQ4", "IVF16,Flat", "IVF16,PQ4"]:
        ix = vq.index_factory(d, spec, "l2"); ix.train(x); ix.add(x)
        kw = {"nprobe": 4} if "IVF" in spec else {}
        _, I = ix.search(q, 10, **kw)
        out.append(f"{spec} {np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, gt)]):.2f}")
    print(f"offset {off:g}: " + ", ".join(out))
