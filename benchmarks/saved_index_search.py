"""Search speed of one saved index at one nprobe, vq (the wheel on PYTHONPATH) or Faiss: the index
is built and written to PATH on the first call and read from it afterwards, so alternating A/B
rounds (two wheels, or a wheel and Faiss, or SIMD levels) time the same index without rebuilding
it. 1 thread, k = 10, the first 2,000 queries, searched as a batch for at least SECONDS of CPU
time (nprobe 0 for an index without one). One line: the settings, `qps_cpu`, recall@10 against
the exact ground truth.

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/saved_index_search.py \\
        ~/.cache/vq/data/textemb100k cosine IVF1024,RaBitQfs4 vq 8 /tmp/te.vq 4
    ... ~/.cache/vq/data/textemb100k cosine RR384,IVF1024,RaBitQfs4 faiss 8 /tmp/te.faiss 4

For a graph (`HNSW` in the spec) the fifth argument is efSearch instead, and vq builds with
Faiss' default efConstruction, 40 (vq's own is 200).

`VQ_SIMD=avx2` moves vq to its AVX2 kernels; `FAISS_LEVEL=AVX2` does the same for Faiss' dynamic
dispatch (`faiss.SIMDConfig.set_level`). Cosine on Faiss' side: rows normalized, inner product.
"""
import os
import sys
import time

from transform_vs_faiss import K, faiss_built, load, recall


def main():
    folder, metric, spec, lib, nprobe, path, seconds = sys.argv[1:8]
    nprobe, seconds = int(nprobe), float(seconds)
    xb, xq, gt = load(folder, metric)
    if lib == "faiss":
        import faiss

        faiss.omp_set_num_threads(1)
        if os.environ.get("FAISS_LEVEL"):
            faiss.SIMDConfig.set_level(faiss.to_simd_level(os.environ["FAISS_LEVEL"]))
        level = faiss.SIMDConfig.get_level_name()
        if os.path.exists(path):
            index = faiss.read_index(path)
            if metric == "cosine":
                xq = xq.copy()
                faiss.normalize_L2(xq)
        else:
            index, xq, _ = faiss_built(spec, xb, xq, metric)
            faiss.write_index(index, path)
        if nprobe:
            param = "efSearch" if "HNSW" in spec else "nprobe"
            faiss.ParameterSpace().set_index_parameter(index, param, nprobe)
    else:
        import vq

        vq.set_num_threads(1)
        level = vq.simd_level()
        if os.path.exists(path):
            index = vq.read_index(path)
        else:
            graph = {"ef_construction": 40} if "HNSW" in spec else {}
            index = vq.index_factory(xb.shape[1], spec, metric, **graph)
            index.train(xb)
            index.add(xb)
            vq.write_index(index, path)
        if nprobe and "HNSW" in spec:
            index.ef = nprobe
        elif nprobe:
            index.nprobe = nprobe
    start, searched = time.process_time(), 0
    while time.process_time() - start < seconds:
        ids = index.search(xq, K)[1]
        searched += len(xq)
    qps = searched / (time.process_time() - start)
    print(f"lib={lib} spec={spec} nprobe={nprobe} level={level} qps_cpu={qps:.0f} recall={recall(ids, gt):.4f}", flush=True)


if __name__ == "__main__":
    main()
