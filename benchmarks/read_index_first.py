"""One `read_index` in a fresh process, as a server starting does: prints its wall time. The
indexes are `benchmarks/one_query.py build`'s (vq, Faiss, hnswlib, imgsift100k); run each
library and wheel in turn, several times, alternating.

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/read_index_first.py \
        vq|faiss|hnswlib hnsw16|ivf1024 [dir, default /tmp/oneq]
"""
import sys, time
lib, what = sys.argv[1], sys.argv[2]
O = sys.argv[3] if len(sys.argv) > 3 else "/tmp/oneq"
if lib == "vq":
    import vq
    f = lambda: vq.read_index(f"{O}/vq-{what}.vq")
elif lib == "faiss":
    import faiss
    f = lambda: faiss.read_index(f"{O}/faiss-{what}.faiss")
else:
    import hnswlib
    def f():
        h = hnswlib.Index(space="l2", dim=128); h.load_index(f"{O}/hnswlib-hnsw16.bin"); return h
t0 = time.perf_counter(); x = f(); print(f"{lib} {what} first load {1e3*(time.perf_counter()-t0):.1f} ms")
