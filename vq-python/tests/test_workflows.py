"""python/README.md's workflow script runs (small generated data) and prints its figures."""

import os
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "python" / "examples" / "workflows.py"


def test_readme_workflows_run(monkeypatch, capsys):
    monkeypatch.setenv("VQ_WORKFLOW_N", "3000")
    monkeypatch.setattr("sys.argv", [str(SCRIPT)])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    for what in ["HNSW16: built", "HNSW32,SQ8,RFlat", "loaded answers identical", "nprobe= 64", "of the exact hits"]:
        assert what in out
    readme = (SCRIPT.parents[1] / "README.md").read_text()
    assert SCRIPT.read_text() in readme, "python/README.md's script differs from examples/workflows.py"
