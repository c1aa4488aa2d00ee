"""vq: vector similarity search in Rust, with Faiss' Python shape.

>>> import numpy as np, vq
>>> xb = np.random.default_rng(0).random((1000, 16), dtype=np.float32)
>>> index = vq.index_factory(16, "HNSW32", vq.METRIC_L2)
>>> index.add(xb)
>>> D, I = index.search(xb[:3], 5, ef=64)
>>> I[:, 0].tolist()
[0, 1, 2]

Everything heavy runs in Rust with the GIL released (Python threads searching one index use
every core). Arrays: C-contiguous float32 is read in place; other real dtypes and memory orders
are converted once to float32. Errors: ``ValueError`` for bad input (shapes, NaN, k = 0, ids),
``vq.NotTrained`` / ``vq.FormatError`` / ``vq.FingerprintMismatch`` / ``vq.VqError``
(``RuntimeError`` subclasses) for the rest.

Beyond one machine: ``vq.serialize_index`` / ``vq.deserialize_index``, ``Index.fingerprint()``,
``Index.merge_from`` and ``vq.merge_topk`` are the pieces of a sharded build; ``vq.ray`` puts
them together on Ray (``pip install ray[data]``; imported on first use).
"""

from __future__ import annotations

import numpy as np

from ._vq import (
    METRIC_COSINE,
    METRIC_INNER_PRODUCT,
    METRIC_L2,
    FingerprintMismatch,
    FormatError,
    Index,
    NotTrained,
    PCAMatrix,
    SearchParameters,
    VqError,
    __version__,
    deserialize_index,
    get_num_threads,
    index_factory,
    kmeans_train,
    knn,
    merge_topk,
    normalize_L2,
    read_index,
    serialize_index,
    set_num_threads,
    simd_level,
    write_index,
)
from ._faiss_names import *  # noqa: F403  (Faiss' class names: vq.IndexFlatL2(d), …)
from ._faiss_names import __all__ as _faiss_names

__all__ = [
    "METRIC_COSINE",
    "METRIC_INNER_PRODUCT",
    "METRIC_L2",
    "FingerprintMismatch",
    "FormatError",
    "Index",
    "Kmeans",
    "NotTrained",
    "PCAMatrix",
    "SearchParameters",
    "VqError",
    "__version__",
    "deserialize_index",
    "get_num_threads",
    "index_factory",
    "kmeans_train",
    "knn",
    "merge_topk",
    "normalize_L2",
    "omp_get_max_threads",
    "omp_set_num_threads",
    "read_index",
    "serialize_index",
    "set_num_threads",
    "simd_level",
    "write_index",
    *_faiss_names,
]

try:  # a wheel built with the cargo feature `gpu` (`maturin build --features gpu`)
    from ._vq import index_cpu_to_gpu, index_gpu_to_cpu  # noqa: F401
except ImportError:
    pass
else:
    __all__ += ["index_cpu_to_gpu", "index_gpu_to_cpu"]

# Faiss' names for the thread count, so Faiss scripts run unchanged.
omp_set_num_threads = set_num_threads
omp_get_max_threads = get_num_threads


class Kmeans:
    """k-means with Faiss' ``faiss.Kmeans`` shape (vq-cluster underneath).

    >>> km = vq.Kmeans(d, k, niter=20)
    >>> km.train(x)            # returns the final objective
    >>> km.centroids           # k x d float32
    >>> D, I = km.index.search(x, 1)   # or km.assign(x)
    """

    def __init__(
        self,
        d: int,
        k: int,
        niter: int = 25,
        seed: int = 1234,
        spherical: bool = False,
        nredo: int = 1,
        max_points_per_centroid: int = 256,
        min_points_per_centroid: int = 39,
        verbose: bool = False,
    ) -> None:
        self.d = int(d)
        self.k = int(k)
        self.niter = int(niter)
        self.seed = int(seed)
        self.spherical = bool(spherical)
        self.nredo = int(nredo)
        self.max_points_per_centroid = int(max_points_per_centroid)
        self.min_points_per_centroid = int(min_points_per_centroid)
        self.verbose = verbose
        self.centroids: np.ndarray | None = None
        self.obj: np.ndarray | None = None
        self.sizes: np.ndarray | None = None
        self.index: Index | None = None

    def train(self, x) -> float:
        """Learns ``k`` centroids from ``x`` (n x d); returns the final objective."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError(f"`x` has shape {x.shape}, expected (n, {self.d})")
        centroids, obj, sizes = kmeans_train(
            x,
            self.k,
            niter=self.niter,
            seed=self.seed,
            spherical=self.spherical,
            nredo=self.nredo,
            max_points_per_centroid=self.max_points_per_centroid,
            min_points_per_centroid=self.min_points_per_centroid,
        )
        self.centroids = centroids
        self.obj = np.asarray(obj, dtype=np.float64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        metric = METRIC_INNER_PRODUCT if self.spherical else METRIC_L2
        self.index = index_factory(self.d, "Flat", metric)
        self.index.add(centroids)
        if self.verbose:
            print(f"vq.Kmeans: k={self.k} objective {self.obj[-1]:.6g} after {len(self.obj)} iterations")
        return float(self.obj[-1]) if len(self.obj) else 0.0

    def assign(self, x):
        """``(D, I)``: each row's distance to its nearest centroid and that centroid's number."""
        if self.index is None:
            raise NotTrained("Kmeans.assign before Kmeans.train")
        D, I = self.index.search(x, 1)
        return D[:, 0], I[:, 0]
