"""The notebooks run from a clone: every code cell of notebooks/plateaus_and_time_scales.ipynb is
executed in order (slow: ~4 minutes, it solves the BMZ problem, a short ε-sweep and a d-sweep)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
def test_plateaus_notebook_runs(tmp_path, capsys):
    pytest.importorskip("IPython")
    notebook = json.loads((NOTEBOOKS / "plateaus_and_time_scales.ipynb").read_text())
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                exec(compile("".join(cell["source"]), "notebook-cell", "exec"), namespace)
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert (tmp_path / "bmz_plateaus.png").exists() and (tmp_path / "he3_escape.png").exists()
    assert "slope of t1/sqrt(eps)" in out and "fit: exponent" in out
