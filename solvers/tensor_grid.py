"""Tensor-product grids for the multi-dimensional finite-volume solvers.

A :class:`TensorGrid` is the product of named 1-D axes (:class:`GridAxis`), each with arbitrary
strictly increasing edges ``e_0 < e_1 < … < e_N``: cell ``(i_1, …, i_D)`` is the box
``Π_d [e^d_{i_d}, e^d_{i_d + 1})``.  Arrays on the grid have shape ``grid.shape`` in C order (the last
axis varies fastest); the flat cell index is ``numpy.ravel_multi_index(index, grid.shape)``.  Densities
on the grid are densities with respect to Lebesgue measure ``dx_1 … dx_D`` in the axes' coordinates,
and a cell's mass is ``p_i |cell_i|`` with ``|cell_i| = Π_d width^d_{i_d}`` (:attr:`TensorGrid.volumes`).
Cell centres are the midpoints ``(e_i + e_{i+1}) / 2`` of each axis.

Axes are built as

* ``uniform``: ``cells`` equal cells on ``[lower, upper]``;
* ``clustered``: fine towards both ends, edges ``lower + (upper − lower)(1 + sin(π u/2))/2`` at equally
  spaced ``u ∈ [−1, 1]`` (Chebyshev-like; widths ``∝ cos(πu/2)``, ``O(1/cells²)`` at the ends).  For a
  coordinate whose mobility vanishes at both ends, e.g. s on the sphere (``1 − s²``), where aligned mass
  piles up against the end: a smooth map, so the scheme keeps its design order;
* ``stretched``: fine near ``center``, coarse away from it — the sinh map
  ``x(ζ) = center + w sinh(ζ)`` on equally spaced ``ζ_k = ζ_lo + k (ζ_hi − ζ_lo)/cells``,
  ``ζ_lo = asinh((lower − center)/w)``, ``ζ_hi = asinh((upper − center)/w)``, with the length ``w``
  chosen so that the spacing at the centre, ``w Δζ``, equals ``min_spacing``.  Every cell is at least
  ``min_spacing`` wide (``x' = w cosh ζ >= w``) and the cell containing ``center`` is within a relative
  ``O(Δζ²)`` of it; the widths grow geometrically (ratio ``≈ e^{Δζ}``) away from the centre, so the
  map is smooth and a family with ``min_spacing ∝ 1/cells`` refines one fixed map (design order
  of convergence survives).  Example: s at finite d, where the law starts at scale ``1/√d``;
* ``edges``: any strictly increasing edges.

``config()`` is flat (``grid.coordinates`` and ``grid.<axis>.<key>``, serialisable as HDF5
attributes) and :meth:`TensorGrid.from_config` inverts it; :meth:`TensorGrid.from_table` reads the
``[grid]`` table of a run configuration, ``{a = {lower, upper, cells}, s = {lower, upper, cells,
spacing = "stretched", min_spacing, center}, …}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq

from reduced_pde.checks import finite_number
from solvers.common import require_increasing

__all__ = ["MAX_DIMENSION", "SPACINGS", "GridAxis", "TensorGrid"]

SPACINGS = ("uniform", "clustered", "stretched", "edges")
MAX_DIMENSION = 3
MIN_CELLS = 2
_TABLE_KEYS = {"uniform": {"spacing", "lower", "upper", "cells"},
               "clustered": {"spacing", "lower", "upper", "cells"},
               "stretched": {"spacing", "lower", "upper", "cells", "min_spacing", "center"},
               "edges": {"spacing", "edges"}}


def _cells(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < MIN_CELLS:
        raise ValueError(f"{field} = {value!r} must be an integer >= {MIN_CELLS}")
    return int(value)


@dataclass(frozen=True, eq=False)
class GridAxis:
    """One named axis: its ``edges`` (read-only, strictly increasing) and how they were made
    (``spacing`` in :data:`SPACINGS`; ``center`` and ``min_spacing`` for a stretched axis)."""

    name: str
    edges: np.ndarray
    spacing: str = "edges"
    center: float | None = None
    min_spacing: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"grid axis name {self.name!r} must be a non-empty identifier (e.g. 'a', 's', 'r')")
        field = f"grid.{self.name}"
        if self.spacing not in SPACINGS:
            raise ValueError(f"{field}.spacing = {self.spacing!r} must be one of {SPACINGS}")
        try:
            edges = np.array(self.edges, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{field}.edges must be a 1-D array of numbers") from None
        if edges.ndim != 1 or edges.size < MIN_CELLS + 1:
            raise ValueError(f"{field}.edges has shape {edges.shape}: need a 1-D array of at least "
                             f"{MIN_CELLS + 1} edges ({MIN_CELLS} cells)")
        if not np.all(np.isfinite(edges)):
            raise ValueError(f"{field}.edges must be finite")
        require_increasing(edges, f"{field}.edges", "edges", ".17g")
        edges.flags.writeable = False
        object.__setattr__(self, "edges", edges)

    # ---- constructors ---------------------------------------------------------------------------
    @classmethod
    def uniform(cls, name: str, lower: float, upper: float, cells: int) -> GridAxis:
        """``cells`` equal cells on ``[lower, upper]`` (edges ``lower + k h``, the last = upper exactly)."""
        return cls._mapped(name, lower, upper, cells, "uniform")

    @classmethod
    def clustered(cls, name: str, lower: float, upper: float, cells: int) -> GridAxis:
        """``cells`` cells on ``[lower, upper]`` clustered towards both ends (module docstring)."""
        return cls._mapped(name, lower, upper, cells, "clustered")

    @classmethod
    def _mapped(cls, name: str, lower: float, upper: float, cells: int, spacing: str) -> GridAxis:
        lower, upper = finite_number(f"grid.{name}.lower", lower), finite_number(f"grid.{name}.upper", upper)
        cells = _cells(f"grid.{name}.cells", cells)
        if not upper > lower:
            raise ValueError(f"grid.{name}.upper = {upper} must be > grid.{name}.lower = {lower}")
        if spacing == "uniform":
            edges = lower + (upper - lower) / cells * np.arange(cells + 1, dtype=float)
        else:
            u = -1.0 + 2.0 * np.arange(cells + 1, dtype=float) / cells
            edges = lower + (upper - lower) * 0.5 * (1.0 + np.sin(0.5 * math.pi * u))
            edges[0] = lower
        edges[-1] = upper
        return cls(name, edges, spacing)

    @classmethod
    def stretched(cls, name: str, lower: float, upper: float, cells: int, min_spacing: float,
                  center: float = 0.0) -> GridAxis:
        """Sinh-stretched axis on ``[lower, upper]`` with spacing ``min_spacing`` at ``center``
        (module docstring).  ``min_spacing`` must be below the uniform spacing (upper − lower)/cells."""
        field = f"grid.{name}"
        lower, upper = finite_number(f"{field}.lower", lower), finite_number(f"{field}.upper", upper)
        cells = _cells(f"{field}.cells", cells)
        center = finite_number(f"{field}.center", center)
        min_spacing = finite_number(f"{field}.min_spacing", min_spacing)
        if not upper > lower:
            raise ValueError(f"{field}.upper = {upper} must be > {field}.lower = {lower}")
        if not lower <= center <= upper:
            raise ValueError(f"{field}.center = {center} must lie in [{field}.lower, {field}.upper] = "
                             f"[{lower}, {upper}]")
        uniform = (upper - lower) / cells
        if not 0.0 < min_spacing < uniform:
            raise ValueError(f"{field}.min_spacing = {min_spacing} must lie in (0, {uniform:.6g}) "
                             f"(the uniform spacing (upper − lower)/cells); use spacing = \"uniform\" "
                             "otherwise")

        def centre_spacing(log_w: float) -> float:
            w = math.exp(log_w)
            return w * (math.asinh((upper - center) / w) - math.asinh((lower - center) / w)) / cells

        # centre_spacing increases from 0 (w → 0) to the uniform spacing (w → ∞): bracket in log w
        length = upper - lower
        lo, hi = math.log(length) - 60.0, math.log(length) + 60.0
        if centre_spacing(lo) >= min_spacing or centre_spacing(hi) <= min_spacing:
            raise ValueError(f"{field}.min_spacing = {min_spacing} is outside the range a sinh map "
                             f"can reach on [{lower}, {upper}] with {cells} cells")
        log_w = brentq(lambda x: centre_spacing(x) - min_spacing, lo, hi, xtol=1e-14, rtol=1e-14)
        w = math.exp(log_w)
        z_lo, z_hi = math.asinh((lower - center) / w), math.asinh((upper - center) / w)
        edges = center + w * np.sinh(np.linspace(z_lo, z_hi, cells + 1))
        edges[0], edges[-1] = lower, upper
        return cls(name, edges, "stretched", center=center, min_spacing=min_spacing)

    @classmethod
    def from_edges(cls, name: str, edges: Sequence[float] | np.ndarray) -> GridAxis:
        return cls(name, np.asarray(edges, dtype=float), "edges")

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any]) -> GridAxis:
        """From ``{lower, upper, cells[, spacing = "uniform" | "clustered" | "stretched", min_spacing, center]}`` or
        ``{spacing = "edges", edges = [...]}``; unknown keys are refused."""
        if not isinstance(table, Mapping):
            raise TypeError(f"grid.{name} = {table!r} must be a table such as "
                             "{lower = 0.0, upper = 2.0, cells = 40}")
        spacing = table.get("spacing", "edges" if "edges" in table else "uniform")
        if spacing not in SPACINGS:
            raise ValueError(f"grid.{name}.spacing = {spacing!r} must be one of {SPACINGS}")
        unknown = set(table) - _TABLE_KEYS[spacing]
        if unknown:
            raise ValueError(f"grid.{name}: unknown key(s) {sorted(unknown)} for spacing = {spacing!r}; "
                             f"allowed: {sorted(_TABLE_KEYS[spacing])}")
        required = _TABLE_KEYS[spacing] - {"spacing", "center"}
        missing = required - set(table)
        if missing:
            raise ValueError(f"grid.{name}: missing key(s) {sorted(missing)} for spacing = {spacing!r}")
        if spacing == "edges":
            return cls.from_edges(name, table["edges"])
        if spacing in ("uniform", "clustered"):
            return cls._mapped(name, table["lower"], table["upper"], table["cells"], spacing)
        return cls.stretched(name, table["lower"], table["upper"], table["cells"], table["min_spacing"],
                             table.get("center", 0.0))

    # ---- geometry -------------------------------------------------------------------------------
    @property
    def cells(self) -> int:
        return int(self.edges.size - 1)

    @property
    def lower(self) -> float:
        return float(self.edges[0])

    @property
    def upper(self) -> float:
        return float(self.edges[-1])

    @property
    def centers(self) -> np.ndarray:
        """Cell midpoints ``(e_i + e_{i+1}) / 2``."""
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    @property
    def widths(self) -> np.ndarray:
        """Cell widths ``e_{i+1} − e_i``."""
        return np.diff(self.edges)

    def table(self) -> dict[str, Any]:
        """The ``[grid]`` table entry that rebuilds this axis (:meth:`from_table`)."""
        if self.spacing in ("uniform", "clustered"):
            return {"spacing": self.spacing, "lower": self.lower, "upper": self.upper, "cells": self.cells}
        if self.spacing == "stretched":
            return {"spacing": "stretched", "lower": self.lower, "upper": self.upper, "cells": self.cells,
                    "min_spacing": self.min_spacing, "center": self.center}
        return {"spacing": "edges", "edges": [float(x) for x in self.edges]}


class TensorGrid:
    """Product of 1 to :data:`MAX_DIMENSION` named axes (module docstring for conventions)."""

    def __init__(self, axes: Sequence[GridAxis]) -> None:
        axes = tuple(axes)
        if not 1 <= len(axes) <= MAX_DIMENSION:
            raise ValueError(f"grid: {len(axes)} axes given; a tensor grid has 1 to {MAX_DIMENSION} axes")
        for axis in axes:
            if not isinstance(axis, GridAxis):
                raise TypeError(f"grid axes must be GridAxis objects, got {type(axis).__name__}")
        names = [axis.name for axis in axes]
        if len(set(names)) != len(names):
            raise ValueError(f"grid axis names {names} must be distinct")
        self.axes = axes

    # ---- constructors ---------------------------------------------------------------------------
    @classmethod
    def uniform(cls, **axes: tuple[float, float, int]) -> TensorGrid:
        """``TensorGrid.uniform(a=(−1, 3, 40), s=(−1.5, 1.5, 60))``: uniform axes in argument order."""
        return cls([GridAxis.uniform(name, *spec) for name, spec in axes.items()])

    @classmethod
    def from_table(cls, table: Mapping[str, Any], names: Sequence[str] | None = None) -> TensorGrid:
        """From a ``[grid]`` table ``{name: axis table}``, in the order ``names`` (e.g. the problem's
        coordinate names; every name must have a table and no other table is allowed) or table order."""
        if not isinstance(table, Mapping):
            raise TypeError(f"grid = {table!r} must be a table of axis tables")
        order = list(table) if names is None else list(names)
        missing = [name for name in order if name not in table]
        if missing:
            raise ValueError(f"grid: no table for coordinate(s) {missing}; the grid needs one table per "
                             f"coordinate {order}")
        extra = [name for name in table if name not in order]
        if extra:
            raise ValueError(f"grid: table(s) {extra} are not coordinates of the problem {order}")
        return cls([GridAxis.from_table(name, table[name]) for name in order])

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TensorGrid:
        """Inverse of :meth:`config` (other keys of ``config`` are ignored)."""
        if "grid.coordinates" not in config:
            raise ValueError("grid configuration has no 'grid.coordinates' entry")
        names = [str(name) for name in config["grid.coordinates"]]
        table: dict[str, dict[str, Any]] = {name: {} for name in names}
        for key, value in config.items():
            parts = key.split(".")
            if len(parts) == 3 and parts[0] == "grid" and parts[1] in table:
                if isinstance(value, np.ndarray):
                    value = value.tolist()
                elif isinstance(value, np.generic):
                    value = value.item()
                table[parts[1]][parts[2]] = value
        return cls.from_table(table, names)

    # ---- geometry -------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(axis.name for axis in self.axes)

    @property
    def dimension(self) -> int:
        return len(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(axis.cells for axis in self.axes)

    @property
    def cells(self) -> int:
        """Total number of cells, ``Π_d N_d``."""
        return int(np.prod(self.shape))

    @property
    def edges(self) -> list[np.ndarray]:
        return [axis.edges for axis in self.axes]

    @property
    def centers(self) -> list[np.ndarray]:
        return [axis.centers for axis in self.axes]

    @property
    def widths(self) -> list[np.ndarray]:
        return [axis.widths for axis in self.axes]

    def axis(self, name: str) -> GridAxis:
        if name not in self.names:
            raise ValueError(f"grid has no axis {name!r}; axes are {self.names}")
        return self.axes[self.names.index(name)]

    @property
    def volumes(self) -> np.ndarray:
        """Cell volumes ``Π_d width^d_{i_d}``, shape :attr:`shape`."""
        out = np.ones(())
        for widths in self.widths:
            out = np.multiply.outer(out, widths)
        return out

    def center_points(self) -> np.ndarray:
        """Cell centres as points, shape (cells, D), in C order of the cells."""
        mesh = np.meshgrid(*self.centers, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def face_points(self, axis: int | str, interior: bool = False) -> np.ndarray:
        """Centres of the faces normal to ``axis`` (index or name), shape (faces, D), in C order of the
        face array of shape ``shape`` with ``N_axis + 1`` (``N_axis − 1`` if ``interior``) along ``axis``:
        the coordinate along ``axis`` is an edge, the others are cell centres."""
        d = self.names.index(axis) if isinstance(axis, str) else int(axis)
        if not 0 <= d < self.dimension:
            raise ValueError(f"axis = {axis!r} must be an axis index in [0, {self.dimension}) or a name "
                             f"in {self.names}")
        coordinates = list(self.centers)
        coordinates[d] = self.edges[d][1:-1] if interior else self.edges[d]
        mesh = np.meshgrid(*coordinates, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def unravel(self, cell: int) -> tuple[int, ...]:
        """Multi-index of the flat (C-order) cell index ``cell``."""
        return tuple(int(i) for i in np.unravel_index(int(cell), self.shape))

    def describe_cell(self, cell: int) -> str:
        """``"cell 17 (index (1, 2, 0): a = 0.5, s = -0.1, r = 0.3)"`` for error messages; one axis:
        ``"cell 17 (r = 0.3)"``."""
        index = self.unravel(cell)
        if self.dimension == 1:
            return f"cell {int(cell)} ({self.names[0]} = {self.axes[0].centers[index[0]]:.6g})"
        where = ", ".join(f"{name} = {self.axes[d].centers[i]:.6g}" for d, (name, i) in
                          enumerate(zip(self.names, index)))
        return f"cell {int(cell)} (index {index}: {where})"

    def config(self) -> dict[str, Any]:
        """Flat ``{"grid.coordinates": [...], "grid.<axis>.<key>": value}`` (:meth:`from_config`)."""
        out: dict[str, Any] = {"grid.coordinates": list(self.names)}
        for axis in self.axes:
            out.update({f"grid.{axis.name}.{key}": value for key, value in axis.table().items()})
        return out

    def table(self) -> dict[str, dict[str, Any]]:
        """The ``[grid]`` table of a run configuration (:meth:`from_table`)."""
        return {axis.name: axis.table() for axis in self.axes}

    def __repr__(self) -> str:
        parts = ", ".join(f"{a.name}: {a.spacing} [{a.lower:g}, {a.upper:g}] × {a.cells}" for a in self.axes)
        return f"TensorGrid({parts})"
