"""The ann-benchmarks module runs against their interface: placed where their tree puts
algorithms, it subclasses their BaseANN and goes through their runner's call sequence."""

import importlib
import re
import shutil
import sys
from pathlib import Path

import numpy as np

from conftest import clusters

MODULE_DIR = Path(__file__).resolve().parents[1] / "python" / "ann_benchmarks" / "vq"

# ann_benchmarks/algorithms/base/module.py's interface (their runner calls exactly these).
BASE = '''
class BaseANN(object):
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
'''


def test_module_in_their_tree(tmp_path, monkeypatch):
    root = tmp_path / "ann_benchmarks"
    (root / "algorithms" / "base").mkdir(parents=True)
    for p in [root, root / "algorithms", root / "algorithms" / "base"]:
        (p / "__init__.py").write_text("")
    (root / "algorithms" / "base" / "module.py").write_text(BASE)
    shutil.copytree(MODULE_DIR, root / "algorithms" / "vq")
    (root / "algorithms" / "vq" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("ann_benchmarks")]:
        monkeypatch.delitem(sys.modules, name)
    mod = importlib.import_module("ann_benchmarks.algorithms.vq.module")
    base = importlib.import_module("ann_benchmarks.algorithms.base.module")

    config = (MODULE_DIR / "config.yml").read_text()
    constructors = set(re.findall(r"constructor: (\w+)", config))
    assert constructors == {"VqHnsw", "VqIvf", "VqFactory"}

    x = clusters(2000, 24, seed=11)
    q = clusters(30, 24, seed=12)
    d2 = ((q[:, None, :] - x[None]) ** 2).sum(-1)
    gt = np.argsort(d2, axis=1)[:, :10]
    runs = [
        (mod.VqHnsw, ["euclidean", {"M": 16, "efConstruction": 100}], [[40], [200]]),
        (mod.VqIvf, ["euclidean", 32], [[4], [32]]),
        (mod.VqFactory, ["euclidean", "HNSW16,SQ8,RFlat"], [[64, None, 2]]),
    ]
    for cls, args, query_args in runs:
        assert issubclass(cls, base.BaseANN)
        algo = cls(*args)
        algo.fit(x)
        assert algo.get_memory_usage() > 0
        for qa in query_args:
            algo.set_query_arguments(*qa)
            single = [algo.query(v, 10) for v in q]
            algo.batch_query(q, 10)
            batch = algo.get_batch_results()
            for s, b in zip(single, batch):
                np.testing.assert_array_equal(s, b)
            recall = np.mean([len(set(r) & set(g)) / 10 for r, g in zip(batch, gt)])
            assert recall > 0.8, (str(algo), recall)
            assert str(algo).startswith("vq(")
        algo.done()
