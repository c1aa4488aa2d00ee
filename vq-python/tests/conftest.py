import numpy as np
import pytest


def clusters(n, d, seed=0, centers=20):
    """Gaussian clusters: data an ANN index can be right or wrong about."""
    rng = np.random.default_rng(seed)
    c = rng.normal(0, 4, (centers, d)).astype(np.float32)
    return (c[rng.integers(0, centers, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


@pytest.fixture(scope="session")
def data():
    x = clusters(3000, 16, seed=1)
    q = clusters(50, 16, seed=2)
    return x, q
