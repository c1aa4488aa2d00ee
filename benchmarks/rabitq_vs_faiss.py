"""RaBitQ codes (`RaBitQ`, `IVF{n},RaBitQ`, with or without `,RFlat`) beside Faiss' same factory
strings: training, adding, searching (1 thread, k = 10, the first 2,000 queries), recall@10
against the data set's exact ground truth, bytes per vector. One JSON line per library, spec and
search point.

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/rabitq_vs_faiss.py \\
        <data-dir>/imgsift100k l2 "IVF1024,RaBitQ,RFlat" [--only vq|faiss] [--faiss-spec S] [--faiss-qb B]

Faiss' RaBitQ does not rotate (vq's always does); `--faiss-spec "RR128,IVF1024,RaBitQ,RFlat"`
puts Faiss' random rotation in front. `--faiss-qb` sets the bits Faiss quantizes the query to
(its default 4; 0 scores the float query, as vq always does). Cosine on Faiss' side: the rows
normalized, inner product.
"""
import argparse
import json
import os
import tempfile

from transform_vs_faiss import K, build, faiss_built, load, sweep

NPROBES = (2, 4, 8, 16, 32, 64)
K_FACTORS = (2, 4, 8, 16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("metric", choices=["l2", "cosine"])
    ap.add_argument("spec")
    ap.add_argument("--only", choices=["vq", "faiss"])
    ap.add_argument("--faiss-spec")
    ap.add_argument("--faiss-qb", type=int)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    xb, xq, gt = load(a.folder, a.metric)
    refine, ivf = "RFlat" in a.spec, "IVF" in a.spec
    points = [(p, f) for p in (NPROBES if ivf else (0,)) for f in (K_FACTORS if refine else (1,))]
    n = xb.shape[0]
    out = []
    if a.only in (None, "vq"):
        import vq

        vq.set_num_threads(1)
        index = vq.index_factory(xb.shape[1], a.spec, a.metric)
        built = build(index, xb)

        def search(nprobe, kf):
            kw = {}
            if ivf:
                kw["nprobe"] = nprobe
            if refine:
                kw["refine_k"] = kf
            return index.search(xq, K, **kw)[1]

        extra = dict(spec=a.spec, train_s=built[0], add_s=built[1],
                     bytes_per_vector=round(index.memory_usage()["total"] / n, 1))
        out += sweep("vq", points, search, gt, extra)
    if a.only in (None, "faiss"):
        import faiss

        fspec = a.faiss_spec or a.spec
        findex, xqf, built = faiss_built(fspec, xb, xq, a.metric)
        if a.faiss_qb is not None:
            inner = faiss.downcast_index(findex)
            while not hasattr(inner, "qb"):
                inner = faiss.downcast_index(inner.base_index if hasattr(inner, "base_index") else inner.index)
            inner.qb = a.faiss_qb
        ps = faiss.ParameterSpace()
        with tempfile.TemporaryDirectory() as d:
            faiss.write_index(findex, os.path.join(d, "f"))
            size = os.path.getsize(os.path.join(d, "f"))

        def fsearch(nprobe, kf):
            if ivf:
                ps.set_index_parameter(findex, "nprobe", nprobe)
            if refine:
                faiss.downcast_index(findex).k_factor = kf  # IndexRefineFlat over the rest
            return findex.search(xqf, K)[1]

        extra = dict(spec=fspec, qb=a.faiss_qb, train_s=built[0], add_s=built[1],
                     bytes_per_vector=round(size / n, 1))
        out += sweep("faiss", points, fsearch, gt, extra)
    for row in out:
        print(json.dumps(dict(metric=a.metric, label=a.label, **row)), flush=True)


if __name__ == "__main__":
    main()
