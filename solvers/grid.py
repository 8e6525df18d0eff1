"""Uniform 1-D grids, and the checks every grid solver applies to its grid.

A :class:`UniformGrid1D` splits ``[lower, upper]`` into ``cells`` cells of equal width ``spacing``;
densities on it are densities with respect to ``dr`` and cell masses are ``p_i * spacing``.  It is a
convenience for one-coordinate problems: :func:`as_tensor_grid` turns it into the single-axis
:class:`~solvers.tensor_grid.TensorGrid` named after the problem's coordinate, the grid the
finite-volume solver works on.  :func:`check_grid_in_domain` refuses a grid that leaves
``problem.domain()`` or stops short of a finite end of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reduced_pde.checks import finite_number
from solvers.tensor_grid import GridAxis, TensorGrid

__all__ = ["UniformGrid1D", "as_tensor_grid", "check_grid_in_domain", "ks_distance"]

MIN_CELLS = 4


@dataclass(frozen=True)
class UniformGrid1D:
    """``cells`` equal cells on ``[lower, upper]`` (edges ``lower + i h``, centres ``lower + (i+½) h``)."""

    lower: float
    upper: float
    cells: int

    def __post_init__(self) -> None:
        for name in ("lower", "upper"):
            finite_number(f"grid.{name}", getattr(self, name))
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

    def axis(self, name: str) -> GridAxis:
        """This grid as the uniform axis ``name`` of a tensor grid (the same edges, bit for bit)."""
        return GridAxis(name, self.edges, "uniform")


def as_tensor_grid(grid: TensorGrid | UniformGrid1D, coordinate_names: Sequence[str]) -> TensorGrid:
    """``grid`` as a :class:`TensorGrid` over ``coordinate_names`` (a problem's coordinates, in order):
    a TensorGrid must have exactly these axes; a :class:`UniformGrid1D` becomes the single axis of a
    one-coordinate problem."""
    names = tuple(coordinate_names)
    if isinstance(grid, UniformGrid1D):
        if len(names) != 1:
            raise ValueError(f"grid = {grid} is one-dimensional but the problem has coordinates "
                             f"{list(names)}; pass a TensorGrid with one axis per coordinate")
        return TensorGrid([grid.axis(names[0])])
    if not isinstance(grid, TensorGrid):
        raise TypeError(f"grid must be a TensorGrid (or a UniformGrid1D for one coordinate), got "
                        f"{type(grid).__name__}")
    if grid.names != names:
        raise ValueError(f"grid axes {list(grid.names)} must equal the problem's coordinates "
                         f"{list(names)} (same names, same order)")
    return grid


def check_grid_in_domain(grid: TensorGrid, domain: Sequence[tuple[float, float]]) -> None:
    """Every axis ``[e_0, e_N]`` must lie in its coordinate's domain ``[lo, hi]`` (``problem.domain()``)
    and start at ``lo`` / end at ``hi`` where these are finite: the zero-flux boundary of the grid is
    then the natural boundary of the coordinate (r = 0, s = ±1 on the sphere, where the flux vanishes),
    and only infinite ends are truncated (where the initial law's cut-off mass is checked)."""
    if len(domain) != grid.dimension:
        raise ValueError(f"problem.domain() has {len(domain)} entries for the {grid.dimension} grid axes "
                         f"{list(grid.names)}")
    for axis, (low, high) in zip(grid.axes, domain):
        inside = low <= axis.lower and axis.upper <= high
        reaches = (axis.lower == low or not math.isfinite(low)) and (axis.upper == high or not math.isfinite(high))
        if not (inside and reaches):
            raise ValueError(f"grid.{axis.name} = [{axis.lower:g}, {axis.upper:g}] must lie in the domain "
                             f"[{low:g}, {high:g}] of coordinate {axis.name} and reach its finite ends")


class MonitoredDensityState:
    """Checkpoint state shared by the grid solvers: ``time``, the cell averages ``density`` (w.r.t.
    dx), accepted ``steps``, and the discrete Lyapunov functional the solver monitors (``risk`` R_h
    without noise, ``free_energy`` F_h with it): its value after the last step (``last_value``) and
    the largest single-step increase so far (``max_increase``; negative when it always decreased)."""

    grid: Any  # exposes ``cells``
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
