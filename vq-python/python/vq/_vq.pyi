"""Type stubs of the native module `vq._vq` (re-exported by `vq`)."""

from os import PathLike
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str
METRIC_L2: int
METRIC_INNER_PRODUCT: int
METRIC_COSINE: int

Metric = Union[int, str]
ArrayLike = npt.ArrayLike
Filter = Union[npt.NDArray[np.bool_], npt.NDArray[np.integer], Sequence[int]]
SearchResult = Tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]
RangeSearchResult = Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]

class VqError(RuntimeError): ...
class NotTrained(VqError): ...
class FormatError(VqError): ...
class FingerprintMismatch(VqError): ...

class SearchParameters:
    ef: Optional[int]
    nprobe: Optional[int]
    refine_k: Optional[int]
    filter: Optional[Filter]
    def __init__(
        self,
        *,
        ef: Optional[int] = None,
        nprobe: Optional[int] = None,
        refine_k: Optional[int] = None,
        filter: Optional[Filter] = None,
    ) -> None: ...

class Index:
    @property
    def d(self) -> int: ...
    @property
    def ntotal(self) -> int: ...
    @property
    def is_trained(self) -> bool: ...
    @property
    def metric_type(self) -> int: ...
    @property
    def metric(self) -> str: ...
    @property
    def spec(self) -> str: ...
    # Search defaults (written with the index); AttributeError where the index has none.
    nprobe: int
    ef: int
    refine_k: int
    reorder_k: int
    def __len__(self) -> int: ...
    def train(self, x: ArrayLike) -> None: ...
    def reserve(self, n: int) -> None: ...
    def add(self, x: ArrayLike) -> None: ...
    def add_with_ids(self, x: ArrayLike, ids: ArrayLike) -> None: ...
    def search(
        self,
        x: ArrayLike,
        k: int,
        params: Optional[SearchParameters] = None,
        *,
        ef: Optional[int] = None,
        nprobe: Optional[int] = None,
        refine_k: Optional[int] = None,
        filter: Optional[Filter] = None,
    ) -> SearchResult: ...
    def range_search(
        self,
        x: ArrayLike,
        radius: float,
        params: Optional[SearchParameters] = None,
        *,
        ef: Optional[int] = None,
        nprobe: Optional[int] = None,
        refine_k: Optional[int] = None,
        filter: Optional[Filter] = None,
        refine_widening: Optional[float] = None,
    ) -> RangeSearchResult: ...
    def reconstruct(self, key: int) -> npt.NDArray[np.float32]: ...
    def reconstruct_batch(self, keys: ArrayLike) -> npt.NDArray[np.float32]: ...
    def reconstruct_n(self, i0: int, ni: int) -> npt.NDArray[np.float32]: ...
    def remove_ids(self, ids: ArrayLike) -> int: ...
    def reset(self) -> None: ...
    def memory_usage(self) -> dict[str, int]: ...
    def fingerprint(self) -> int: ...
    def __reduce__(self) -> Tuple[Any, Tuple[bytes]]: ...
    def merge_from(self, other: Index, shift_ids: int = 0) -> None: ...

def index_factory(
    d: int,
    description: str,
    metric: Optional[Metric] = None,
    *,
    ef_construction: Optional[int] = None,
    ef: Optional[int] = None,
    nprobe: Optional[int] = None,
    refine_k: Optional[int] = None,
    reorder_k: Optional[int] = None,
    by_residual: Optional[bool] = None,
    anisotropic_threshold: Optional[float] = None,
) -> Index: ...
def write_index(index: Index, path: Union[str, PathLike[str]]) -> None: ...
def read_index(path: Union[str, PathLike[str]], mmap: bool = False) -> Index: ...
def serialize_index(index: Index) -> bytes: ...
def deserialize_index(data: Union[bytes, bytearray, memoryview, npt.NDArray[np.uint8]]) -> Index: ...
def merge_topk(
    D_list: Sequence[ArrayLike], I_list: Sequence[ArrayLike], k: int, metric: Optional[Metric] = None
) -> SearchResult: ...
def knn(xq: ArrayLike, xb: ArrayLike, k: int, metric: Optional[Metric] = None) -> SearchResult: ...
def normalize_L2(x: npt.NDArray[np.float32]) -> None: ...
def kmeans_train(
    x: ArrayLike,
    k: int,
    *,
    niter: int = 25,
    seed: int = 1234,
    spherical: bool = False,
    nredo: int = 1,
    max_points_per_centroid: int = 256,
    min_points_per_centroid: int = 39,
) -> Tuple[npt.NDArray[np.float32], list[float], list[int]]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_level() -> str: ...
