"""One `read_index` in a fresh process, as a server starting does: prints its wall time; with
`write N` after the directory, then N writes of the index to a new file beside it (removed
after each), as an offline build saving does. The indexes are `benchmarks/one_query.py
build`'s (vq, Faiss, hnswlib, imgsift100k); run each library and wheel in turn, several times,
alternating.

    PYTHONPATH=<wheel> ~/.cache/vq/peers-venv/bin/python benchmarks/read_index_first.py \
        vq|faiss|hnswlib hnsw16|ivf1024 [dir, default /tmp/oneq] [write N]
"""
import os
import sys
import time


def loader(lib, what, folder):
    if lib == "vq":
        import vq

        return lambda: vq.read_index(f"{folder}/vq-{what}.vq")
    if lib == "faiss":
        import faiss

        return lambda: faiss.read_index(f"{folder}/faiss-{what}.faiss")
    import hnswlib

    def load():
        index = hnswlib.Index(space="l2", dim=128)
        index.load_index(f"{folder}/hnswlib-hnsw16.bin")
        return index

    return load


def writer(lib, index):
    if lib == "vq":
        import vq

        return lambda path: vq.write_index(index, path)
    if lib == "faiss":
        import faiss

        return lambda path: faiss.write_index(index, path)
    return index.save_index


def main():
    lib, what = sys.argv[1], sys.argv[2]
    folder = sys.argv[3] if len(sys.argv) > 3 else "/tmp/oneq"
    load = loader(lib, what, folder)
    t0 = time.perf_counter()
    index = load()
    print(f"{lib} {what} first load {1e3 * (time.perf_counter() - t0):.1f} ms")
    if len(sys.argv) > 5 and sys.argv[4] == "write":
        write, path = writer(lib, index), f"{folder}/written-{lib}-{what}-{os.getpid()}"
        for _ in range(int(sys.argv[5])):
            t0 = time.perf_counter()
            write(path)
            print(f"{lib} {what} write {1e3 * (time.perf_counter() - t0):.1f} ms")
            os.remove(path)
    del index


if __name__ == "__main__":
    main()
