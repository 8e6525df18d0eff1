"""What a model plug-in provides: its configuration schema, its reduced problem, its network.

A *model* is a data distribution together with a neuron ``σ*(x; θ)`` whose joint law is invariant
under a group of rotations (design note §3).  One module under :mod:`reduced_pde.models` per model
defines a :class:`Model` subclass and registers it (:func:`reduced_pde.models.register`); nothing
outside that module branches on the model's name or probes its attributes.  A model provides

* ``schema``: the configuration keys it reads, per table (``[data]``, ``[activation]``,
  ``[initial]``, ``[network]``, ``[reduction]``), each a :class:`Key` with its default and its check.
  The run pipeline refuses every key that neither the model nor a solver declares;
* :meth:`Model.build_problem`: the :class:`~reduced_pde.problem.ReducedProblem` on the invariant
  coordinates, which carries its own geometry (``domain``, ``mobility``, ``log_reference_density``);
* :meth:`Model.network`: the full-dimensional data and neurons (:class:`NetworkModel`) that the one
  SGD engine (:mod:`solvers.sgd`) trains, with the map θ ↦ invariants that compares SGD with the
  reduced solution;
* :meth:`Model.default_grid`: the finite-volume axes ``{coordinate: {lower, upper, cells, ...}}``
  used when the configuration gives no ``[grid]`` table for a coordinate.

Configuration values reach a model already checked and parsed (``inputs[table][key]``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from reduced_pde.checks import check_magnitude
from reduced_pde.problem import ReducedProblem

__all__ = ["Key", "Table", "Model", "NetworkModel", "Inputs",
           "positive", "non_negative", "finite", "integer_at_least", "dimension_value", "one_of",
           "boolean", "any_table", "in_interval"]

#: the parsed configuration: ``inputs[table][key]``
Inputs = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Key:
    """One configuration key: its default, and ``check(field, value)`` returning the parsed value or
    raising ValueError with a one-line message naming ``field`` (e.g. ``"data.delta"``), the value and
    what is allowed.  ``doc``: one line for the README's configuration table and ``--help``."""

    default: Any
    check: Callable[[str, Any], Any]
    doc: str = ""


@dataclass(frozen=True)
class Table:
    """A table checked as a whole (an activation specification, whose keys depend on its name):
    ``check(table_name, value)`` returns the parsed table or raises ValueError naming the key."""

    default: dict[str, Any]
    check: Callable[[str, Any], dict[str, Any]]
    doc: str = ""


# ---- checks shared by model schemas -------------------------------------------------------------
def _number(field: str, value: Any, what: str) -> float:
    """``float(value)`` of a real number; a finite one must lie in the parameter range of
    :func:`reduced_pde.checks.check_magnitude` (0 or 1e-50 <= |x| <= 1e50)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{field} = {value!r} must be {what}")
    try:
        x = float(value)
    except OverflowError:  # an integer beyond the float range (10**400)
        raise ValueError(f"{field} = {value!r} must be {what} (it is beyond the double-precision range)") from None
    if math.isfinite(x):
        check_magnitude(field, x, value)
    return x


def finite(field: str, value: Any) -> float:
    x = _number(field, value, "a finite number")
    if not math.isfinite(x):
        raise ValueError(f"{field} = {value!r} must be a finite number")
    return x


def positive(field: str, value: Any) -> float:
    x = _number(field, value, "a finite number > 0")
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{field} = {value!r} must be a finite number > 0")
    return x


def non_negative(field: str, value: Any) -> float:
    x = _number(field, value, "a finite number >= 0")
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"{field} = {value!r} must be a finite number >= 0")
    return x


def in_interval(lower: float, upper: float, *, closed_upper: bool = False) -> Callable[[str, Any], float]:
    """Check for ``lower <= x < upper`` (``<= upper`` when ``closed_upper``)."""
    bracket = "]" if closed_upper else ")"

    def check(field: str, value: Any) -> float:
        x = _number(field, value, f"a number in [{lower:g}, {upper:g}{bracket}")
        if not (lower <= x and (x <= upper if closed_upper else x < upper)):
            raise ValueError(f"{field} = {value!r} must lie in [{lower:g}, {upper:g}{bracket}")
        return x

    return check


def integer_at_least(minimum: int) -> Callable[[str, Any], int]:
    def check(field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{field} = {value!r} must be an integer >= {minimum}")
        return int(value)

    return check


#: the largest finite dimension: beyond 2^53 a float no longer holds every integer d (use "inf")
MAX_DIMENSION = 2 ** 53


def dimension_value(minimum: int = 2) -> Callable[[str, Any], float]:
    """An integer in ``[minimum, 2^53]`` or ``"inf"`` (the d → ∞ reduction); returns a float (inf allowed)."""

    def check(field: str, value: Any) -> float:
        if isinstance(value, str) and value.lower() in {"inf", "infinity"}:
            return math.inf
        if isinstance(value, (float, np.floating)) and math.isinf(value) and value > 0:
            return math.inf
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
                math.isfinite(value) and float(value).is_integer() and value >= minimum):
            raise ValueError(f"{field} = {value!r} must be an integer >= {minimum} or \"inf\"")
        if value > MAX_DIMENSION:
            raise ValueError(f"{field} = {value!r} must be an integer <= 2^53 (exact in double precision) or "
                             "\"inf\" (the d = inf reduction)")
        return float(value)

    return check


def one_of(*allowed: Any) -> Callable[[str, Any], Any]:
    def check(field: str, value: Any) -> Any:
        if isinstance(value, (list, dict)) or value not in allowed:
            raise ValueError(f"{field} = {value!r}; allowed: {', '.join(map(repr, allowed))}")
        return value

    return check


def boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{field} = {value!r} must be true or false")
    return value


def any_table(field: str, value: Any) -> Any:
    """A value checked later by the model's builder (an activation or target specification)."""
    return value


# ---- the full-dimensional network -------------------------------------------------------------
class NetworkModel(ABC):
    """Full-dimensional data and neurons ``σ*(x; θ) = a σ(⟨w, x⟩)`` of a model, as SGD trains them.

    ``w`` has shape (N, d); ``a`` (N,) is the second layer (ones, or a constant, when it is not
    trained).  The engine (:mod:`solvers.sgd`) calls only what is declared here; it never looks at
    the model's type or name."""

    #: ambient dimension d of x and w (finite)
    dimension: int
    #: σ with ``__call__`` and ``derivative`` (a piecewise-linear σ gets the compiled SGD kernel)
    activation: Any
    #: whether a moves (coordinate "a" of the reduction)
    trains_second_layer: bool
    #: neurons constrained to |w| = 1 (projected steps and retraction)
    on_sphere: bool
    #: whether SGD records :meth:`network_risk` at every output by default (it costs O(N² K))
    records_network_risk: bool = False

    @abstractmethod
    def sample(self, n_samples: int, rng: np.random.Generator,
               label_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n_samples`` iid pairs (x (n, d), y (n,)).  x is drawn from ``rng`` only and the labels'
        own randomness (class, label noise) from ``label_rng`` only (default: ``rng``), each stream
        filled sequentially: drawing n₁ then n₂ pairs gives the same pairs as drawing n₁ + n₂ at once
        (what makes SGD independent of how its steps are blocked, and checkpoints bitwise)."""

    @abstractmethod
    def initial_neurons(self, n_neurons: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(a (N,), w (N, d))`` drawn iid from the initial law of the model."""

    @abstractmethod
    def invariants(self, a: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The reduced coordinates of each neuron, in the problem's ``coordinate_names`` order:
        (N, D), or (N,) for one-coordinate problems (the form ``problem.risk`` takes)."""

    def network_risk(self, a: np.ndarray, w: np.ndarray) -> tuple[float, float]:
        """Exact population risk ``E[(y − f(x))²]`` of the finite network and a bound on its truncation
        error; ``(nan, nan)`` where there is no closed form."""
        return math.nan, math.nan


# ---- the model plug-in --------------------------------------------------------------------------
class Model(ABC):
    """A registered model: schema + builders (module docstring)."""

    #: registry name, the value of ``data.model``
    name: ClassVar[str]
    #: one line for ``--help`` and the README
    summary: ClassVar[str] = ""
    #: ``{table: {key: Key}}`` (or a :class:`Table` checked whole) for the tables this model reads
    schema: ClassVar[dict[str, dict[str, Key] | Table]] = {}
    #: one line: the finite-width runs (``reduced-pde chaos``) its problem provides through
    #: :meth:`~reduced_pde.problem.ReducedProblem.finite_width`; "" when it has none
    chaos: ClassVar[str] = ""

    @abstractmethod
    def build_problem(self, inputs: Inputs) -> ReducedProblem:
        """The reduced problem for these (checked) inputs."""

    @abstractmethod
    def network(self, inputs: Inputs, dimension: int) -> NetworkModel:
        """The full-dimensional network at ambient dimension ``dimension`` (finite)."""

    def default_grid(self, problem: ReducedProblem, inputs: Inputs, cells: int) -> dict[str, dict[str, Any]]:
        """Finite-volume axes the model lays out itself, for coordinates the configuration leaves out:
        every bounded coordinate of ``problem.domain()`` on its whole domain with ``cells`` cells
        (unbounded coordinates need a ``[grid]`` table)."""
        return {name: {"lower": lower, "upper": upper, "cells": cells}
                for name, (lower, upper) in zip(problem.coordinate_names, problem.domain())
                if math.isfinite(lower) and math.isfinite(upper)}

    def rates(self, inputs: Inputs) -> dict[str, float]:
        """Per-coordinate velocity factors (per-layer learning rates), e.g. ``{"a": 1/ε}``; default none."""
        return {}

    def check(self, inputs: Inputs) -> None:
        """Cross-key checks of this model's inputs (after every key's own check); default none."""

    def dimension(self, inputs: Inputs) -> float:
        """The data dimension d of these inputs (inf allowed)."""
        return float(inputs["data"]["dimension"])

    def describe(self, inputs: Inputs) -> str:
        """A short title for figures, e.g. ``"d = 320, Δ = 0.5"``."""
        return f"{self.name}, d = {inputs['data']['dimension']}"
