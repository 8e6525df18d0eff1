"""Recorded trajectories: what every run returns and what storage writes.

A :class:`Trajectory` holds observables at output times, in PDE time units (t = kε for SGD).  Its
fields mean one thing for every solver:

* ``risk`` (T,): the N = ∞ risk ``R(p)`` of the law the run carries — the grid law, the particle law,
  or, for SGD, the empirical law of the neurons' invariants (design note §5: the like-for-like
  comparison with the reduced PDE);
* ``network_risk`` (T,) or None: the exact population risk of the finite network (SGD only);
* ``coordinates``: the reduced coordinates, e.g. ``("r",)`` or ``("a", "s", "r")``; ``mean`` and
  ``std`` (T, D) are the mean and standard deviation of each under the law (:meth:`mean_of`);
* ``fields``: solver-specific arrays (``density`` with ``r_centers`` / axes for grids, ``positions``
  for particles, ``points`` for SGD, free-energy terms, ...);
* ``config``: the user's inputs (flat ``table.key`` → value), from which the run is rebuilt;
  ``derived``: values the run derived from them (the solver's time step bound, the reduction's
  truncation degree, ...); ``diagnostics``: wall time, steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Trajectory"]


@dataclass
class Trajectory:
    kind: str  # "pde_finite_volume", "pde_fokker_planck", "pde_lagrangian", "sgd"
    time: np.ndarray
    risk: np.ndarray
    coordinates: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    network_risk: np.ndarray | None = None
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    derived: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.time = np.asarray(self.time, dtype=float).reshape(-1)
        self.risk = np.asarray(self.risk, dtype=float).reshape(-1)
        self.coordinates = tuple(str(c) for c in self.coordinates)
        shape = (self.time.size, len(self.coordinates))
        self.mean = np.asarray(self.mean, dtype=float).reshape(shape)
        self.std = np.asarray(self.std, dtype=float).reshape(shape)
        if self.network_risk is not None:
            self.network_risk = np.asarray(self.network_risk, dtype=float).reshape(-1)
        lengths = {self.time.size, self.risk.size} | (
            {self.network_risk.size} if self.network_risk is not None else set())
        if len(lengths) != 1:
            raise ValueError(f"trajectory arrays have different lengths: {sorted(lengths)}")

    def _index(self, coordinate: str) -> int:
        if coordinate not in self.coordinates:
            raise KeyError(f"coordinate {coordinate!r} is not one of this trajectory's {self.coordinates}")
        return self.coordinates.index(coordinate)

    def mean_of(self, coordinate: str) -> np.ndarray:
        """Mean of ``coordinate`` under the law at each output time, shape (T,)."""
        return self.mean[:, self._index(coordinate)]

    def series(self, name: str) -> np.ndarray:
        """One recorded series by name: ``risk``, ``network_risk``, ``mean_<c>``, ``std_<c>`` or a field."""
        if name == "risk":
            return self.risk
        if name == "network_risk":
            if self.network_risk is None:
                raise KeyError(f"this {self.kind} trajectory has no network_risk (only SGD runs do)")
            return self.network_risk
        for prefix, getter in (("mean_", self.mean_of), ("std_", self.std_of)):
            if name.startswith(prefix) and name[len(prefix):] in self.coordinates:
                return getter(name[len(prefix):])
        if name not in self.fields:
            raise KeyError(f"{name!r} is not recorded; coordinates {self.coordinates}, fields {sorted(self.fields)}")
        return np.asarray(self.fields[name])

    def particle_law(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(points (M, D), masses (M,)) of a particle law at output ``index``: SGD neurons (field
        ``points``, equal masses) or characteristics particles (``positions`` with ``masses``); None
        for a grid solution."""
        for key in ("points", "positions"):
            if key in self.fields:
                x = np.asarray(self.fields[key][index], dtype=float)
                x = x[:, None] if x.ndim == 1 else x
                masses = np.asarray(self.fields.get("masses", np.full(x.shape[0], 1.0 / x.shape[0])), dtype=float)
                return x, masses
        return None

    def std_of(self, coordinate: str) -> np.ndarray:
        """Standard deviation of ``coordinate`` under the law at each output time, shape (T,)."""
        return self.std[:, self._index(coordinate)]
