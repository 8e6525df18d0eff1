"""Helpers shared by the benchmark scripts (imported as ``from timing import ...``: a script's own
folder is on ``sys.path`` when it runs as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from reduced_pde.running.pipeline import run_pde


def timed_risk(config: dict[str, Any], grid: dict[str, Any]) -> tuple[np.ndarray, float]:
    """The risk at the output times of ``run_pde`` on ``config`` with its ``[grid]`` table updated by
    ``grid`` (the configuration itself is not changed), and the wall time of the solve in seconds."""
    config = copy.deepcopy(config)
    config["grid"] = {**config.get("grid", {}), **grid}
    began = time.perf_counter()
    trajectory = run_pde(config, progress=False)
    return np.asarray(trajectory.risk, dtype=float), time.perf_counter() - began
