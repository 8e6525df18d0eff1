"""Recorded trajectories: what every solver returns and what storage writes.

A :class:`Trajectory` holds observables at output times, in PDE time units (t = kε for SGD):
``time``, ``risk``, ``mean_r`` and ``std_r`` always; solver-specific arrays in ``fields``
(e.g. ``density`` (T, M) with ``r_centers`` (M,) for grid solvers, ``norms`` (T, N) for SGD,
``risk_stderr``); the full configuration in ``config`` (flat str → scalar/str/list), so a file
can be regenerated and a figure redrawn from it alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Trajectory"]


@dataclass
class Trajectory:
    kind: str  # "pde_finite_volume", "pde_lagrangian", "sgd"
    time: np.ndarray
    risk: np.ndarray
    mean_r: np.ndarray
    std_r: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("time", "risk", "mean_r", "std_r"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=float))
        lengths = {len(self.time), len(self.risk), len(self.mean_r), len(self.std_r)}
        if len(lengths) != 1:
            raise ValueError(f"trajectory arrays have different lengths: {sorted(lengths)}")
