"""vq for ann-benchmarks (https://github.com/erikbern/ann-benchmarks).

Copy this folder to ``ann_benchmarks/algorithms/vq/`` in an ann-benchmarks checkout (with a
Dockerfile that runs ``pip install vq``) and run ``python run.py --algorithm vq-hnsw``: third
parties can then check vq's figures with their own harness. The classes follow ann-benchmarks'
``BaseANN`` shape: ``fit``, ``set_query_arguments``, ``query``, ``batch_query``,
``get_batch_results``, ``get_memory_usage``, ``done``.
"""

import numpy as np

import vq

try:  # inside ann-benchmarks: ann_benchmarks/algorithms/vq/module.py
    from ..base.module import BaseANN
except (ImportError, ValueError):  # standalone: the same interface, so the classes still run

    class BaseANN:
        def done(self):
            pass

        def get_memory_usage(self):
            return None

        def fit(self, X):
            pass

        def query(self, q, n):
            return []

        def batch_query(self, X, n):
            self.res = [self.query(q, n) for q in X]

        def get_batch_results(self):
            return self.res

        def get_additional(self):
            return {}

        def __str__(self):
            return self.name


def _metric(metric):
    # ann-benchmarks' names; "angular" is cosine distance, which vq's cosine metric ranks alike.
    if metric == "euclidean":
        return vq.METRIC_L2
    if metric == "angular":
        return vq.METRIC_COSINE
    raise ValueError(f"vq: metric {metric!r} not supported (euclidean, angular)")


class VqFactory(BaseANN):
    """Any vq factory string; query arguments ``(ef, nprobe, refine_k)``."""

    def __init__(self, metric, factory, build_args=None):
        self._metric = _metric(metric)
        self._factory = factory
        self._build_args = dict(build_args or {})
        self._query = {}
        self.index = None
        self.name = f"vq({factory})"

    def fit(self, X):
        X = np.ascontiguousarray(X, dtype=np.float32)
        self.index = vq.index_factory(X.shape[1], self._factory, self._metric, **self._build_args)
        self.index.train(X)
        self.index.add(X)

    def set_query_arguments(self, ef=None, nprobe=None, refine_k=None):
        self._query = {k: v for k, v in (("ef", ef), ("nprobe", nprobe), ("refine_k", refine_k)) if v is not None}
        args = ",".join(f"{k}={v}" for k, v in self._query.items())
        self.name = f"vq({self._factory},{args})"

    def query(self, v, n):
        _, I = self.index.search(np.asarray(v, dtype=np.float32).reshape(1, -1), n, **self._query)
        return I[0][I[0] >= 0]

    def batch_query(self, X, n):
        _, self.res = self.index.search(X, n, **self._query)

    def get_batch_results(self):
        return [row[row >= 0] for row in self.res]

    def get_memory_usage(self):
        # ann-benchmarks reports kB.
        return None if self.index is None else self.index.memory_usage()["total"] / 1024

    def done(self):
        self.index = None


class VqHnsw(VqFactory):
    """``HNSW{M}`` with ``efConstruction``; query argument ``ef``."""

    def __init__(self, metric, method_param):
        m = int(method_param["M"])
        super().__init__(metric, f"HNSW{m}", {"ef_construction": int(method_param.get("efConstruction", 200))})

    def set_query_arguments(self, ef):
        super().set_query_arguments(ef=ef)


class VqIvf(VqFactory):
    """``IVF{n_list},Flat``; query argument ``n_probe``."""

    def __init__(self, metric, n_list):
        super().__init__(metric, f"IVF{int(n_list)},Flat")

    def set_query_arguments(self, n_probe):
        super().set_query_arguments(nprobe=n_probe)
