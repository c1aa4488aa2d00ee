"""Search speed of one saved vq index with a refine stage at one nprobe and refine_k: built and
written to PATH on the first call, read from it afterwards, so two wheels alternated time the
same index. 1 thread, k = 10, the set's first 2,000 queries as a batch for at least SECONDS of
CPU time; one line with `qps_cpu` and recall@10 against the exact ground truth.

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/refine_ab.py \\
        /tmp/dims/te-d1536 cosine IVF1024,PQ192x4fs,RFlat /tmp/r.vq 8 4 2
"""
import os
import sys
import time

from transform_vs_faiss import K, load, recall

import vq


def main():
    folder, metric, spec, path, nprobe, refine_k, seconds = sys.argv[1:8]
    vq.set_num_threads(1)
    xb, xq, gt = load(folder, metric)
    if os.path.exists(path):
        index = vq.read_index(path)
    else:
        index = vq.index_factory(xb.shape[1], spec, metric)
        index.train(xb)
        index.add(xb)
        vq.write_index(index, path)
    index.nprobe, index.refine_k = int(nprobe), int(refine_k)
    start, searched = time.process_time(), 0
    while time.process_time() - start < float(seconds):
        ids = index.search(xq, K)[1]
        searched += len(xq)
    qps = searched / (time.process_time() - start)
    print(f"spec={spec} nprobe={nprobe} refine_k={refine_k} level={vq.simd_level()} qps_cpu={qps:.0f} "
          f"recall={recall(ids, gt):.4f}", flush=True)


if __name__ == "__main__":
    main()
