"""A graph factory string (`HNSW32,SQ8`, `HNSW32,PQ16`, …) built by vq or Faiss at the same
efConstruction, searched with 1 thread at ef 16, 32, 64, 128 (best of 3 by process CPU time),
recall@10 against the set's exact ground truth; rows as `hnsw_degree.py`'s (`M` holds the
spec), for `equal_recall.py`. Faiss' efConstruction is its default 40.

    PYTHONPATH=<wheel> python benchmarks/hnsw_spec.py DATASET_DIR|tutorial vq|faiss SPEC [efConstruction]
"""
import sys
import time

from hnsw_degree import dataset, sweep


def timed_build(index, xb, set_threads):
    """Seconds to train and fill `index` on two threads (either library's setter), then one."""
    set_threads(2)
    t = time.perf_counter()
    index.train(xb)
    index.add(xb)
    build = time.perf_counter() - t
    set_threads(1)
    return build


def main():
    folder, lib, spec = sys.argv[1:4]
    efc = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    xb, xq, gt, metric = dataset(folder)
    d = xb.shape[1]
    if lib == "vq":
        import vq

        index = vq.index_factory(d, spec, metric, ef_construction=efc)
        build = timed_build(index, xb, vq.set_num_threads)

        def search(ef):
            return index.search(xq, 10, ef=ef)[1]

    else:
        import faiss

        index = faiss.index_factory(d, spec, faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT)
        hnsw = faiss.downcast_index(index).hnsw
        hnsw.efConstruction = efc
        build = timed_build(index, xb, faiss.omp_set_num_threads)

        def search(ef):
            hnsw.efSearch = ef
            return index.search(xq, 10)[1]

    row = {"lib": lib, "data": folder.rstrip("/").split("/")[-1], "M": spec, "efC": efc, "build_s": round(build, 2)}
    sweep(search, len(xq), gt, row, (16, 32, 64, 128))

if __name__ == "__main__":
    main()
