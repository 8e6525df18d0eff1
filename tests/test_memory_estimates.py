"""The memory estimates of :mod:`reduced_pde.running.resources` against measured peaks (issue 12).

Each representative run — 1-D and 3-D finite volumes, characteristics, SGD, the finite-width (chaos)
flows — is small enough to run in seconds but large enough (20–300 MB) that its arrays dominate the
interpreter's own allocations.  ``tests/memory_probe.py`` runs it in a fresh subprocess after a tiny
warm-up run of the same kind (compiled kernels, caches and lazy imports loaded first) and reports
tracemalloc's peak (every numpy allocation) and the growth of the resident set (``ru_maxrss`` minus
the resident size before the run: also what compiled code allocates).  The estimate must bound both
(a run never allocates past its estimate, so a refusal at 80% of the machine's memory is safe) and
exceed the larger by at most ``USEFUL`` = 4 (so that it does not refuse runs that fit).

Slow (each case ~10–60 s on a loaded 2-core machine, mostly the interpreter start and warm-up):
``python -m pytest -q -m slow tests/test_memory_estimates.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: the largest estimate / measurement ratio accepted (an estimate 4x too large still lets every run that
#: fits in a quarter of the memory through)
USEFUL = 4.0

_MMN18 = {"data": {"delta": 0.5, "dimension": 320}, "initial": {"kappa": 0.4},
          "output": {"t_final": 1e-4, "n_outputs": 4, "t_first": 1e-5}}
_RELU = {"data": {"model": "single_index", "dimension": 30, "target": {"name": "relu"}, "second_layer": 0.5},
         "activation": {"name": "relu"}, "initial": {"kappa": 1.0, "second_layer_std": 0.2},
         "reduction": {"truncation_tolerance": 1e-4}, "output": {"t_final": 1e-3, "n_outputs": 4, "t_first": 1e-4},
         "pde": {"solver": "finite_volume"}}


def _axes(cells: int) -> dict:
    return {"a": {"lower": -1.2, "upper": 3.3, "cells": cells}, "s": {"lower": -1.3, "upper": 3.2, "cells": cells},
            "r": {"lower": 0.0, "upper": 2.2, "cells": cells}}


_CHAOS = {"data": {"model": "single_index_sphere", "dimension": 16, "target": {"name": "he", "degree": 4},
                   "second_layer": 1.0},
          "activation": {"name": "he4"}, "output": {"t_final": 0.01, "n_outputs": 3, "t_first": 0.002}}

#: name: (command, measured configuration, warm-up configuration)
CASES = {
    "finite volumes 1-D (30000 cells, rank 10)": (
        "pde", {**_MMN18, "pde": {"solver": "finite_volume"}, "grid": {"r": {"lower": 0.0, "upper": 4.0, "cells": 30000}}},
        {**_MMN18, "pde": {"solver": "finite_volume"}, "grid": {"r": {"lower": 0.0, "upper": 4.0, "cells": 400}}}),
    "finite volumes 3-D (48^3 cells, rank 98)": ("pde", {**_RELU, "grid": _axes(48)}, {**_RELU, "grid": _axes(8)}),
    "characteristics (100000 particles)": (
        "pde", {**_MMN18, "output": {"t_final": 1e-2, "n_outputs": 4, "t_first": 1e-3},
                "pde": {"solver": "lagrangian", "n_particles": 100000}},
        {**_MMN18, "pde": {"solver": "lagrangian", "n_particles": 100}}),
    "SGD (N = 1000, d = 2000, network risk recorded)": (
        "sgd", {**_MMN18, "data": {"delta": 0.5, "dimension": 2000},
                "output": {"t_final": 1e-2, "n_outputs": 4, "t_first": 1e-3},
                "sgd": {"n_neurons": 1000, "step_size": 1e-3, "batch_size": 10, "seeds": [0]}},
        {**_MMN18, "data": {"delta": 0.5, "dimension": 20}, "output": {"t_final": 1e-2, "n_outputs": 2, "t_first": 1e-3},
         "sgd": {"n_neurons": 20, "step_size": 1e-3, "batch_size": 10, "seeds": [0]}}),
    "chaos (4 x 512 neurons, prediction on 65 x 256 points)": (
        "chaos", {**_CHAOS, "chaos": {"widths": [512], "seeds": [0, 1, 2, 3], "dt": 2e-3, "nodes": 256, "atoms": 32,
                                      "s_nodes": 64, "q_nodes": 4}},
        {**_CHAOS, "chaos": {"widths": [8], "seeds": [0], "dt": 2e-3, "nodes": 16, "atoms": 2, "s_nodes": 8,
                             "q_nodes": 2}}),
    "chaos in Gram row tiles (2 x 3072 neurons: the S m² Gram entries, 151 MB, held as tiles of 2^22, 34 MB)": (
        "chaos", {**_CHAOS, "output": {"t_final": 0.004, "n_outputs": 2, "t_first": 0.002},
                  "chaos": {"widths": [3072], "seeds": [0, 1], "dt": 2e-3, "nodes": 64, "predict": False}},
        {**_CHAOS, "chaos": {"widths": [8], "seeds": [0], "dt": 2e-3, "nodes": 16, "predict": False}}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_memory_estimate_bounds_the_measured_peak(name: str, tmp_path: Path) -> None:
    command, measured, warmup = CASES[name]
    (tmp_path / "run.json").write_text(json.dumps(measured))
    (tmp_path / "warmup.json").write_text(json.dumps(warmup))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(HERE / "memory_probe.py"), command, str(tmp_path / "run.json"),
                           str(tmp_path / "warmup.json")], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = max(result["traced"], result["resident"])
    assert peak > 10 * 2**20, result  # the run's arrays dominate (else the case measures the interpreter)
    # the estimate bounds every allocation of the run ...
    assert result["estimate"] >= peak, (name, result)
    # ... and is useful: at most USEFUL times the measured peak
    assert result["estimate"] <= USEFUL * peak, (name, result)
