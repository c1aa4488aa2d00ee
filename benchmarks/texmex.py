"""Readers of the texmex files in `../shared/data` folders (`.bvecs` u8, `.fvecs` f32, `.ivecs`
i32: each row its dimension as an int32, then its values), shared by the benchmark scripts.
numpy only, so that Faiss-only runs import it without vq."""
import numpy as np


def rows(path, dtype, n=None):
    """The first `n` rows (all when `n` is None or 0) of `path`, values of `dtype`, shape (rows, d)."""
    raw = np.fromfile(path, dtype=np.uint8)
    d = int(raw[:4].view(np.int32)[0])
    x = raw.reshape(-1, 4 + d * np.dtype(dtype).itemsize)[: n or None, 4:]
    return np.ascontiguousarray(x).view(dtype).reshape(-1, d)


def bvecs(path, n=None):
    """u8 vectors as f32."""
    return rows(path, np.uint8, n).astype(np.float32)


def fvecs(path, n=None):
    return rows(path, np.float32, n)


def ivecs(path, n=None):
    return rows(path, np.int32, n)


def vectors(path, n=None):
    """`.bvecs` or `.fvecs` by the name, as f32."""
    return bvecs(path, n) if str(path).endswith(".bvecs") else fvecs(path, n)
