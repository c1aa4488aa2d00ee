"""Two builds of the wheel side by side on one dataset, HNSW16 (efConstruction 200): `build`
times a fresh 2-thread build and measures recall@10 against `gt.ivecs` and 1-thread CPU QPS at
ef 16 / 32 / 64; `search` loads one saved index and times the searches alone (best of three), so
that only the code differs. Run each wheel in turn, alternating, and compare the rows.

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/hnsw_build_ab.py \
        build <data-dir>/imgsift100k <label> [--save F]
    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/hnsw_build_ab.py \
        search <data-dir>/textemb100k <label> --load F
"""
import argparse
import json
import time

import vq

from filtered import read_gt, read_vecs, recall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["build", "search"])
    ap.add_argument("folder")
    ap.add_argument("label")
    ap.add_argument("--save")
    ap.add_argument("--load")
    a = ap.parse_args()
    cosine = "textemb" in a.folder
    xq = read_vecs(a.folder, "query")
    row = dict(label=a.label, folder=a.folder, mode=a.mode)
    if a.mode == "build":
        xb = read_vecs(a.folder, "base")
        vq.set_num_threads(2)
        t0 = time.perf_counter()
        index = vq.index_factory(xb.shape[1], "HNSW16", "cosine" if cosine else "l2", ef_construction=200)
        index.add(xb)
        row["build_s"] = round(time.perf_counter() - t0, 2)
        if a.save:
            vq.write_index(index, a.save)
    else:
        index = vq.read_index(a.load)
    gt = read_gt(a.folder)
    vq.set_num_threads(1)
    for ef in (16, 32, 64):
        best = 0.0
        for _ in range(1 if a.mode == "build" else 3):
            c0 = time.process_time()
            _, ids = index.search(xq, 10, ef=ef)
            best = max(best, len(xq) / (time.process_time() - c0))
        row[f"recall_ef{ef}"] = round(recall(ids, gt), 4)
        row[f"cqps_ef{ef}"] = round(best)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
