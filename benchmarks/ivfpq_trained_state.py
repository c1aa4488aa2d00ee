#!/usr/bin/env python3
"""Issue 19's recall-gap experiment, Faiss' half (vq's half: vq-bench/examples/ivfpq_trained_state.rs).

Trains Faiss' IVF{nlist},PQ{m}np on the dataset's learn set (1 thread) and writes its trained state
as fvecs for the vq program: `faiss_centroids.fvecs` (nlist x d) and `faiss_pq.fvecs` (m * 256 rows
of d/m). If the vq program already wrote `vq_centroids.fvecs` there, also trains Faiss' PQ on the
residuals against vq's centroids (Faiss skips its k-means when the quantizer holds nlist
centroids) and writes `faiss_pq_on_vq_coarse.fvecs`. Prints, per variant, the coarse MSE on learn,
the PQ MSE of the learn residuals and Faiss' own recall@10 per nprobe (codes alone, and re-ranked
exactly from the top 20 / 80), in the same JSON shape as the vq program. With a sixth argument
(comma-separated seeds) it only trains with each seed (coarse and PQ k-means) and prints the recall
at nprobe 16 and 256: the spread one seed's luck gives.

    ~/.cache/vq/peers-venv/bin/python benchmarks/ivfpq_trained_state.py ~/.cache/vq/data/imgsift100k /tmp/state 1024 16 2000
"""
import json
import os
import sys

import numpy as np
from texmex import rows as read_vecs


def write_fvecs(path, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    out = np.empty((n, d + 1), dtype=np.float32)
    out[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
    out[:, 1:] = x
    out.tofile(path)


def recall10(ids, gt):
    return float(np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(ids, gt)]))


def main():
    folder, state, nlist, m, nq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    import faiss
    faiss.omp_set_num_threads(1)
    learn = read_vecs(os.path.join(folder, "learn.bvecs"), np.uint8).astype(np.float32)
    base = read_vecs(os.path.join(folder, "base.bvecs"), np.uint8).astype(np.float32)
    xq = read_vecs(os.path.join(folder, "query.bvecs"), np.uint8).astype(np.float32)[:nq]
    gt = read_vecs(os.path.join(folder, "gt.ivecs"), np.int32)[:nq]
    d = base.shape[1]
    os.makedirs(state, exist_ok=True)

    def evaluate(label, index, nprobes=(1, 2, 4, 8, 16, 32, 64, 128, 256)):
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        coarse = ivf.quantizer.reconstruct_n(0, nlist)
        dist, assign = ivf.quantizer.search(learn, 1)
        residuals = learn - coarse[assign[:, 0]]
        codes = ivf.pq.compute_codes(residuals)
        pq_mse = float(np.mean(np.sum((residuals - ivf.pq.decode(codes)) ** 2, axis=1)))
        index.add(base)
        sizes = np.array([ivf.invlists.list_size(i) for i in range(nlist)])
        print(f"{label}: coarse MSE on learn {float(np.mean(dist[:, 0])):.1f}, PQ MSE of the learn residuals {pq_mse:.2f}, "
              f"list imbalance {ivf.invlists.imbalance_factor():.4f}", flush=True)
        for nprobe in nprobes:
            if nprobe > nlist:
                break
            ivf.nprobe = nprobe
            line = {"variant": label, "nprobe": nprobe}
            line["recall"] = round(recall10(index.search(xq, 10)[1], gt), 4)
            probed = ivf.quantizer.search(xq, nprobe)[1]
            line["scanned"] = round(float(np.mean(sizes[probed].sum(axis=1))), 1)
            for kf in (2, 8):
                cand = index.search(xq, 10 * kf)[1]
                top = []
                for q, c in zip(xq, cand):
                    c = c[c >= 0]
                    dd = np.sum((base[c] - q) ** 2, axis=1)
                    top.append(c[np.lexsort((c, dd))][:10])
                line[f"recall_kf{kf}"] = round(recall10(top, gt), 4)
            print(json.dumps(line), flush=True)

    if len(sys.argv) > 6:  # seeds: the spread of Faiss' own recall over its k-means seeds
        for seed in [int(v) for v in sys.argv[6].split(",")]:
            index = faiss.index_factory(d, f"IVF{nlist},PQ{m}np")
            ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
            ivf.cp.seed = seed
            ivf.pq.cp.seed = seed
            index.train(learn)
            evaluate(f"faiss seed {seed}", index, nprobes=(16, 256))
        return

    index = faiss.index_factory(d, f"IVF{nlist},PQ{m}np")
    t = faiss.omp_get_max_threads()
    import time
    t0 = time.process_time()
    index.train(learn)
    print(f"faiss train {time.process_time() - t0:.1f} s cpu ({t} thread)", flush=True)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    write_fvecs(os.path.join(state, "faiss_centroids.fvecs"), ivf.quantizer.reconstruct_n(0, nlist))
    books = faiss.vector_to_array(ivf.pq.centroids).reshape(m * ivf.pq.ksub, d // m)
    write_fvecs(os.path.join(state, "faiss_pq.fvecs"), books)
    evaluate("faiss (Faiss search)", index)

    vq_c = os.path.join(state, "vq_centroids.fvecs")
    if os.path.exists(vq_c):
        quantizer = faiss.IndexFlatL2(d)
        quantizer.add(read_vecs(vq_c, np.float32))
        mixed = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8)
        mixed.train(learn)  # the quantizer holds nlist centroids: only the PQ is trained
        books = faiss.vector_to_array(mixed.pq.centroids).reshape(m * mixed.pq.ksub, d // m)
        write_fvecs(os.path.join(state, "faiss_pq_on_vq_coarse.fvecs"), books)
        evaluate("vq-coarse+faiss-pq (Faiss search)", mixed)


if __name__ == "__main__":
    main()
