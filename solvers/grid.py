"""Uniform 1-D grids for the finite-volume solvers.

A :class:`UniformGrid1D` splits ``[lower, upper]`` into ``cells`` cells of equal width ``spacing``;
densities on it are densities with respect to ``dr`` and cell masses are ``p_i * spacing``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["UniformGrid1D"]

MIN_CELLS = 4


@dataclass(frozen=True)
class UniformGrid1D:
    """``cells`` equal cells on ``[lower, upper]`` (edges ``lower + i h``, centres ``lower + (i+½) h``)."""

    lower: float
    upper: float
    cells: int

    def __post_init__(self) -> None:
        for name in ("lower", "upper"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
                raise ValueError(f"grid.{name} = {value!r} must be a finite number")
        if isinstance(self.cells, bool) or not isinstance(self.cells, (int, np.integer)):
            raise ValueError(f"grid.cells = {self.cells!r} must be an integer >= {MIN_CELLS}")
        if self.cells < MIN_CELLS:
            raise ValueError(f"grid.cells = {self.cells} must be >= {MIN_CELLS}")
        if not self.upper > self.lower:
            raise ValueError(f"grid.upper = {self.upper} must be > grid.lower = {self.lower}")
        object.__setattr__(self, "lower", float(self.lower))
        object.__setattr__(self, "upper", float(self.upper))
        object.__setattr__(self, "cells", int(self.cells))

    @property
    def spacing(self) -> float:
        """Cell width ``h = (upper - lower) / cells``."""
        return (self.upper - self.lower) / self.cells

    @property
    def edges(self) -> np.ndarray:
        """The ``cells + 1`` cell edges (first = lower, last = upper exactly)."""
        edges = self.lower + self.spacing * np.arange(self.cells + 1, dtype=float)
        edges[-1] = self.upper
        return edges

    @property
    def centers(self) -> np.ndarray:
        """The ``cells`` cell centres."""
        return self.lower + self.spacing * (np.arange(self.cells, dtype=float) + 0.5)

    def config(self) -> dict[str, Any]:
        return {"grid.lower": self.lower, "grid.upper": self.upper, "grid.cells": self.cells}


class MonitoredDensityState:
    """Checkpoint state shared by the 1-D grid solvers: ``time``, the cell averages ``density`` (w.r.t.
    dr), accepted ``steps``, and the discrete Lyapunov functional the solver monitors (``risk`` R_h
    without noise, ``free_energy`` F_h with it): its value after the last step (``last_value``) and
    the largest single-step increase so far (``max_increase``; negative when it always decreased)."""

    grid: UniformGrid1D
    #: name of the monitored functional, used in the state keys ``max_<name>_increase``, ``last_<name>``
    monitored: str

    def _reset_state(self, density: np.ndarray) -> None:
        self.density = np.ascontiguousarray(density, dtype=float)
        self.time = 0.0
        self.steps = 0
        self.max_increase = -math.inf
        self.last_value = math.nan

    def state(self) -> dict[str, Any]:
        """Everything needed to resume bit-for-bit."""
        return {"time": float(self.time), "density": self.density.copy(), "steps": int(self.steps),
                f"max_{self.monitored}_increase": float(self.max_increase),
                f"last_{self.monitored}": float(self.last_value)}

    def set_state(self, state: dict[str, Any]) -> None:
        density = np.array(state["density"], dtype=float)
        if density.shape != (self.grid.cells,):
            raise ValueError(f"state density has shape {density.shape}, expected ({self.grid.cells},)")
        t = float(state["time"])
        if not (math.isfinite(t) and t >= 0):
            raise ValueError(f"state time = {t} must be finite and >= 0")
        self.density = np.ascontiguousarray(density)
        self.time = t
        self.steps = int(state.get("steps", 0))
        self.max_increase = float(state.get(f"max_{self.monitored}_increase", -math.inf))
        self.last_value = float(state.get(f"last_{self.monitored}", math.nan))


def ks_distance(samples: np.ndarray, edges: np.ndarray, density: np.ndarray) -> float:
    """Kolmogorov distance sup |F_N − F| between the empirical CDF of ``samples`` and the
    piecewise-linear CDF of a grid density (cell averages ``density`` on cells ``edges``)."""
    cdf = np.concatenate([[0.0], np.cumsum(density * np.diff(edges))])
    x = np.sort(samples)
    model = np.interp(x, edges, cdf)
    n = x.size
    return float(max(np.max(np.arange(1, n + 1) / n - model), np.max(model - np.arange(n) / n)))
