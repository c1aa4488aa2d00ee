"""Batch searches beside a batch add on the shared pool: an HNSW16 index of 2,000 clustered
16-d vectors; one Python thread adds 58,000 more in one call while another searches 4 queries
per call without pause; prints the add's time and the searches' count and latency. Run with
`vq-python/tests` importable (its `conftest.clusters`) and pytest installed, e.g. from the
wheel's test venv:

    PYTHONPATH=<wheel> target/vq-python-venv/bin/python benchmarks/batch_search_beside_add.py \
        <queries per call> <set_num_threads value>
"""
import threading, time, numpy as np, vq, sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "vq-python" / "tests"))
from conftest import clusters
nq = int(sys.argv[1]); th = int(sys.argv[2])
x = clusters(60000, 16, seed=21)
index = vq.index_factory(16, "HNSW16"); index.add(x[:2000])
vq.set_num_threads(th)
started, done = threading.Event(), threading.Event()
def add():
    started.set(); t0=time.perf_counter(); index.add(x[2000:]); print(f"add {time.perf_counter()-t0:.2f}s"); done.set()
t = threading.Thread(target=add); t.start(); started.wait()
mid, calls, lat = 0, 0, []
while not done.is_set():
    before = index.ntotal
    s0 = time.perf_counter()
    index.search(x[:nq], 5)
    lat.append(time.perf_counter() - s0)
    calls += 1
    if 2000 < before < len(x) and index.ntotal < len(x): mid += 1
t.join(); print(f"nq={nq} threads={th}: calls {calls}, mid-add {mid}, p50 {np.percentile(lat,50)*1e3:.2f} ms, p99 {np.percentile(lat,99)*1e3:.1f} ms, max {max(lat)*1e3:.1f} ms")
