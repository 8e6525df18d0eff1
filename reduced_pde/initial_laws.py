"""Initial laws of the reduced coordinates.

``w ~ N(0, κ²/d I_d)`` gives ``r = |w| ~ κ χ_d / √d``, i.e. ``d r²/κ² ~ χ²_d``
(:class:`ScaledChi`); as ``d → ∞`` this concentrates to the point mass at κ (:class:`PointMass`).
Each law gives exact cell masses on a grid (differences of its CDF), quantiles (for the
Lagrangian solver) and samples of the full-dimensional weights (for SGD).

Solvers treat a 1-D law exactly like the product laws of several coordinates
(:class:`~reduced_pde.models.single_index.SingleIndexInitialLaw`): ``cell_masses`` takes a list with
one edge array, ``quantile`` maps uniforms of shape (M, 1) to points of shape (M, 1) (elementwise),
and ``marginals`` is the one-element tuple ``(law,)``, whose ``distribution`` is the frozen scipy
distribution of the law (None for an atom) — what the Gauss particle rules read.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["InitialLaw", "ScaledChi", "PointMass", "GaussianBump", "make_initial_law"]


class InitialLaw(ABC):
    """Law of r = |w| at t = 0."""

    @abstractmethod
    def cdf(self, r: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def quantile(self, u: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def config(self) -> dict[str, Any]: ...

    @property
    @abstractmethod
    def distribution(self) -> Any:
        """The law as a frozen scipy distribution, or None for a point mass (an atom)."""

    @property
    def marginals(self) -> tuple["InitialLaw", ...]:
        """``(self,)``: the law as the single marginal of a one-coordinate product law."""
        return (self,)

    def cell_masses(self, edges: np.ndarray | list[np.ndarray] | tuple[np.ndarray, ...]) -> np.ndarray:
        """Exact mass of each cell ``[edges[i], edges[i+1])``; mass beyond the last edge is an error.
        ``edges`` is an array, or a list with one edge array (one per axis, as for the product laws of
        several coordinates): the result has shape (cells,) either way."""
        if isinstance(edges, (list, tuple)):
            if len(edges) != 1:
                raise ValueError(f"edges: {len(edges)} edge arrays given for the law of one coordinate")
            edges = edges[0]
        cdf = self.cdf(np.asarray(edges, dtype=float))
        outside = 1.0 - cdf[-1] + cdf[0]
        if outside > 1e-12:
            raise ValueError(f"grid.r_max = {edges[-1]:g} cuts off {outside:.2e} of the initial law "
                             f"({self.config()}); increase grid.r_max")
        return np.diff(cdf)

    def sample_weights(self, n_neurons: int, dimension: int, rng: np.random.Generator) -> np.ndarray:
        """Full-dimensional first-layer weights ``w_i ∈ R^d`` whose norms follow this law and whose
        directions are uniform (the rotation-invariant lift of the law)."""
        g = rng.standard_normal((n_neurons, dimension))
        directions = g / np.linalg.norm(g, axis=1, keepdims=True)
        radii = self.quantile(rng.random(n_neurons))
        return directions * radii[:, None]


@dataclass(frozen=True)
class ScaledChi(InitialLaw):
    """``r = κ |g| / √d``, ``g ~ N(0, I_d)``: the law of |w| for ``w ~ N(0, κ²/d I_d)``."""

    kappa: float
    dimension: int

    def __post_init__(self) -> None:
        if not self.kappa > 0:
            raise ValueError(f"initial.kappa = {self.kappa} must be > 0")
        if self.dimension < 1:
            raise ValueError(f"dimension = {self.dimension} must be >= 1")

    def cdf(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=float)
        return stats.chi2.cdf(self.dimension * (r / self.kappa) ** 2, self.dimension)

    def quantile(self, u: np.ndarray) -> np.ndarray:
        return self.kappa * np.sqrt(stats.chi2.ppf(u, self.dimension) / self.dimension)

    @property
    def distribution(self) -> Any:
        return stats.chi(self.dimension, scale=self.kappa / math.sqrt(self.dimension))

    def pdf(self, r: np.ndarray) -> np.ndarray:
        scale = math.sqrt(self.dimension) / self.kappa
        return scale * stats.chi.pdf(np.asarray(r, dtype=float) * scale, self.dimension)

    def sample_weights(self, n_neurons: int, dimension: int, rng: np.random.Generator) -> np.ndarray:
        if dimension != self.dimension:
            raise ValueError(f"ScaledChi law built for d={self.dimension}, sampled with d={dimension}")
        return rng.standard_normal((n_neurons, dimension)) * (self.kappa / math.sqrt(dimension))

    def config(self) -> dict[str, Any]:
        return {"law": "scaled_chi", "kappa": self.kappa, "dimension": self.dimension}


@dataclass(frozen=True)
class PointMass(InitialLaw):
    """All neurons at r = location (the d = ∞ limit of :class:`ScaledChi`)."""

    location: float

    def __post_init__(self) -> None:
        if not self.location >= 0:
            raise ValueError(f"initial point mass location = {self.location} must be >= 0")

    def cdf(self, r: np.ndarray) -> np.ndarray:
        return (np.asarray(r, dtype=float) >= self.location).astype(float)

    def quantile(self, u: np.ndarray) -> np.ndarray:
        return np.full_like(np.asarray(u, dtype=float), self.location)

    @property
    def distribution(self) -> Any:
        return None

    def config(self) -> dict[str, Any]:
        return {"law": "point_mass", "kappa": self.location}


@dataclass(frozen=True)
class GaussianBump(InitialLaw):
    """A normal law N(mean, std²) restricted to r >= 0 and renormalised (for tests and studies)."""

    mean: float
    std: float

    def __post_init__(self) -> None:
        if not self.std > 0:
            raise ValueError(f"initial.std = {self.std} must be > 0")

    @property
    def _mass_above_zero(self) -> float:
        return float(stats.norm.sf(0.0, self.mean, self.std))

    def cdf(self, r: np.ndarray) -> np.ndarray:
        r = np.maximum(np.asarray(r, dtype=float), 0.0)
        below = stats.norm.cdf(0.0, self.mean, self.std)
        return (stats.norm.cdf(r, self.mean, self.std) - below) / self._mass_above_zero

    def quantile(self, u: np.ndarray) -> np.ndarray:
        below = stats.norm.cdf(0.0, self.mean, self.std)
        return stats.norm.ppf(below + np.asarray(u) * self._mass_above_zero, self.mean, self.std)

    @property
    def distribution(self) -> Any:
        return stats.truncnorm(-self.mean / self.std, np.inf, loc=self.mean, scale=self.std)

    def pdf(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=float)
        return np.where(r >= 0, stats.norm.pdf(r, self.mean, self.std) / self._mass_above_zero, 0.0)

    def config(self) -> dict[str, Any]:
        return {"law": "gaussian_bump", "mean": self.mean, "std": self.std}


def make_initial_law(kappa: float, dimension: float) -> InitialLaw:
    """The law of |w| for ``w ~ N(0, κ²/d I_d)``: :class:`ScaledChi`, or :class:`PointMass` at d = ∞."""
    if math.isinf(dimension):
        return PointMass(float(kappa))
    return ScaledChi(float(kappa), int(dimension))
