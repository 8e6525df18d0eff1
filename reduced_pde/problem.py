"""What a reduced mean-field problem provides to a solver.

A reduced problem lives on the invariant coordinates ``x`` (``r = |w|`` for MMN18; ``(a, s, r)``
for single-index models) and provides

* the reduced potential ``v(x)`` = V(θ) at any θ with invariants x, and its gradient;
* the reduced interaction kernel ``u(x, x')`` = the average of U(θ, θ') over the relative
  orientation of two independent θ, θ' with invariants x, x'.  Solvers use its *low-rank*
  factorisation ``u(x, x') = Σ_k λ_k g_k(x) g_k(x')`` (:class:`LowRankKernel`), which makes
  ``ψ(x; p) = v(x) + ∫ u(x, x') p(dx')`` cost O(cells × rank); ``interaction_kernel`` gives the
  kernel directly (an independent reference, and a dense fall-back);
* ``E[y²]``, so that ``R(p) = E[y²] + 2∫v dp + ∫∫u dp dp``;
* the initial law of the invariants.

The reduced density ``p`` is a density with respect to Lebesgue measure in the invariant
coordinates, and evolves by ``∂_t p = 2ξ(t) ∇·(p ∇ψ(x; p))`` (design note §2–§3).
Laws are passed to the functions below as weighted points: ``points`` (M, dim) or (M,) and
``masses`` (M,) summing to one (cell centres and ``p_i |cell_i|`` for a grid, particles for SGD).

Shapes for ``dim`` coordinates: ``reduced_potential`` → (M,); ``reduced_potential_gradient`` → (M,)
in 1-D, (M, dim) otherwise; ``interaction_low_rank`` → weights (K,), features (K, M);
``interaction_features_gradient`` → (K, M) in 1-D, (K, M, dim) otherwise.  ``initial_law`` returns
an object with ``cell_masses`` (edges, or one edge array per axis), ``quantile`` and samples of the
full-dimensional parameters (:class:`~reduced_pde.initial_laws.InitialLaw` in 1-D,
:class:`~reduced_pde.models.single_index.SingleIndexInitialLaw` for (a, s, r)).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from numba import types

from reduced_pde.hermite_structure import HermiteStructure
from reduced_pde.initial_laws import InitialLaw

__all__ = ["CompiledDrift", "DRIFT_SIGNATURE", "ENERGY_SIGNATURE", "LowRankKernel", "ReducedProblem", "NoInteraction",
           "NoFiniteWidth"]


class NoFiniteWidth(ValueError):
    """Raised by :meth:`ReducedProblem.finite_width` for a problem without finite-width runs."""


@dataclass(frozen=True)
class LowRankKernel:
    """``u(x, x') = Σ_k weights[k] features[k, i] features[k, j]`` on a set of points.

    ``truncation_bound[i, j]``-type information is given by ``truncation_bound``: a vector ``b``
    with ``|u_exact(x_i, x_j) - u_lowrank(x_i, x_j)| <= b_i b_j`` (zero when the rank is exact).
    """

    weights: np.ndarray  # (K,)
    features: np.ndarray  # (K, M)
    truncation_bound: np.ndarray  # (M,)

    @property
    def rank(self) -> int:
        return int(self.weights.shape[0])

    def apply(self, masses: np.ndarray) -> np.ndarray:
        """``Σ_j u(x_i, x_j) masses_j`` for every point i."""
        moments = self.features @ masses
        return (self.weights * moments) @ self.features

    def dense(self) -> np.ndarray:
        return (self.features.T * self.weights) @ self.features


#: ``kernel(x, masses, parameters, out)``: x (n, D) and out (n, D) C-contiguous, masses (n,), parameters (P,)
DRIFT_SIGNATURE = types.void(types.float64[:, ::1], types.float64[::1], types.float64[::1], types.float64[:, ::1])
#: ``energy(x, masses, parameters) = R(p̂) − E[y²]``
ENERGY_SIGNATURE = types.float64(types.float64[:, ::1], types.float64[::1], types.float64[::1])


@dataclass(frozen=True)
class CompiledDrift:
    """The drift ``M(x_i) ∇ψ(x_i; p̂)`` (mobility times the potential's gradient) at the points of the law
    ``p̂ = Σ_i m_i δ_{x_i}`` themselves, compiled: ``kernel(x, masses, parameters, out)`` is a numba
    function of signature :data:`DRIFT_SIGNATURE` writing into ``out`` (n, D) the same quantity as
    ``mobility · (reduced_potential_gradient + Σ_k λ_k Φ_k ∇g_k)`` of the numpy methods; compiled
    integrators call it without Python.  The series truncation is fixed when it is built; it holds
    for points with every coordinate ``<= valid_below`` (rebuild beyond)."""

    kernel: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]
    parameters: np.ndarray
    valid_below: float
    #: optional ``energy(x, masses, parameters) = R(p̂) − E[y²]`` (:data:`ENERGY_SIGNATURE`), the
    #: compiled form of :meth:`ReducedProblem.risk` for the same truncation
    energy: Callable[[np.ndarray, np.ndarray, np.ndarray], float] | None = None

    def evaluate(self, x: np.ndarray, masses: np.ndarray, out: np.ndarray) -> None:
        """``out = M(x) ∇ψ(x; Σ masses_i δ_{x_i})`` for x, out of shape (n, D)."""
        self.kernel(x, masses, self.parameters, out)


class ReducedProblem(ABC):
    """A symmetry-reduced mean-field problem (see module docstring)."""

    #: names of the invariant coordinates, e.g. ("r",)
    coordinate_names: tuple[str, ...]
    #: name of a coordinate in which v and every interaction feature are *linear*
    #: (``v(a, y) = a v₁(y)``, ``g_k(a, y) = a f_k(y)``: the second layer a of ``a σ(⟨w, x⟩)``), or
    #: None.  Grid solvers use it to evaluate features on the remaining coordinates only.
    linear_coordinate: str | None = None

    @property
    @abstractmethod
    def target_second_moment(self) -> float:
        """``E[y²]``."""

    @abstractmethod
    def reduced_potential(self, points: np.ndarray) -> np.ndarray:
        """``v(x)``."""

    @abstractmethod
    def reduced_potential_gradient(self, points: np.ndarray) -> np.ndarray:
        """``∇v(x)``: (M,) in 1-D, (M, dim) otherwise."""

    @abstractmethod
    def interaction_low_rank(self, points: np.ndarray) -> LowRankKernel:
        """Low-rank factorisation of ``u`` on ``points``."""

    @abstractmethod
    def interaction_features_gradient(self, points: np.ndarray) -> np.ndarray:
        """``∇g_k(x)`` for the features of :meth:`interaction_low_rank`: (K, M) in 1-D, (K, M, dim) otherwise."""

    @abstractmethod
    def interaction_kernel(self, points: np.ndarray, other: np.ndarray) -> np.ndarray:
        """``u(x_i, x'_j)`` evaluated directly (reference / dense fall-back)."""

    @abstractmethod
    def initial_law(self) -> InitialLaw:
        """Law of the invariants at t = 0 (see the module docstring for the multi-dimensional case)."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Parameters that rebuild the problem (stored as HDF5 attributes)."""

    # ---- geometry of the flow -------------------------------------------------------------------
    # Solvers read the geometry from these methods only (never from the problem's type or name).
    def domain(self) -> tuple[tuple[float, float], ...]:
        """Natural bounds ``(lower, upper)`` of each coordinate (±inf where unbounded): e.g. r ∈ [0, ∞),
        s ∈ [−1, 1] on the sphere.  Grids must lie inside; particles are clipped to it (round-off)."""
        return tuple((-math.inf, math.inf) for _ in self.coordinate_names)

    def log_reference_density(self, points: np.ndarray) -> np.ndarray:
        """``log J(x)`` of the reference measure ``J(x) dx`` of the reduced coordinates, the image of
        Lebesgue measure on θ (e.g. ``(d − 1) log r`` for r = |w| ∈ R^d, ``((d − 3)/2) log(1 − s²)``
        for s on S^{d−1}).  The entropy of the noisy dynamics is taken relative to it.  Problems
        without a noisy reduction raise ValueError (the default)."""
        raise ValueError(f"noise (noise.beta < inf) is not available for the reduction with coordinates "
                         f"{self.coordinate_names}")

    def check_noise(self, beta: float, weight_decay: float) -> None:
        """Refuse (ValueError naming the field) noise or weight decay this reduction cannot carry.
        Default: no noise unless :meth:`log_reference_density` is defined; weight decay allowed."""
        if math.isfinite(beta):
            centre = np.array([[0.5 * (lo + hi) if math.isfinite(lo + hi) else (lo + 1.0 if math.isfinite(lo) else 0.5)
                                for lo, hi in self.domain()]])
            self.log_reference_density(centre if len(self.coordinate_names) > 1 else centre[:, 0])

    def mobility(self, points: np.ndarray) -> np.ndarray:
        """Diagonal mobility ``M(x)`` of the reduced flow ``dx/dt = −2ξ M(x) ∇ψ(x; p)``, shape (M, dim):
        ones (Euclidean coordinates); ``1 − s²`` for the coordinate s of neurons on the sphere."""
        x = np.asarray(points, dtype=float)
        return np.ones((x.shape[0], len(self.coordinate_names)))

    def compiled_drift(self, points: np.ndarray) -> CompiledDrift | None:
        """A compiled evaluator of the drift ``M ∇ψ`` at a law's own points (:class:`CompiledDrift`), with
        the series truncation chosen as for ``points``; None (the default) where the problem has none —
        solvers then use the numpy methods above, which define the same quantity."""
        return None

    # ---- Hermite/index structure (read by reduced_pde.analysis) ----------------------------------
    def hermite_structure(self) -> HermiteStructure | None:
        """The target's Hermite spectrum, the activation's coefficients ``α_k(n)`` at the scales the
        neurons take, and which coordinates are (a, s, r) (:class:`~reduced_pde.hermite_structure.
        HermiteStructure`), for Gaussian index models ``y = φ(Θ* x) + ε``; None (the default) for a
        problem without that structure (e.g. the isotropic mixture of MMN18).  The plateau theory
        levels and Hermite order parameters read the problem through this method only."""
        return None

    # ---- finite width (read by reduced_pde.analysis.finite_width*, ``reduced-pde chaos``) ---------------
    def finite_width(self) -> Any:
        """The finite-width runs of this problem: a
        :class:`~reduced_pde.analysis.finite_width.FiniteWidth` (the coupled m-neuron flows against
        their mean-field twins, the 1/m prediction, the ``[chaos]`` keys they read, what they cost).
        A problem that has them overrides this (and raises ValueError naming the field when its
        configuration cannot run, e.g. a trained second layer); the default raises
        :class:`NoFiniteWidth`."""
        raise NoFiniteWidth(f"{type(self).__name__} has no finite-width runs")

    # ---- derived quantities (shared by all problems) -------------------------------------------
    def potential(self, points: np.ndarray, masses: np.ndarray) -> np.ndarray:
        """``ψ(x_i; p) = v(x_i) + Σ_j u(x_i, x_j) masses_j``."""
        return self.reduced_potential(points) + self.interaction_low_rank(points).apply(masses)

    def risk(self, points: np.ndarray, masses: np.ndarray) -> float:
        """``R(p) = E[y²] + 2 Σ_i v(x_i) m_i + Σ_ij u(x_i, x_j) m_i m_j`` (the N = ∞ risk of the law)."""
        kernel = self.interaction_low_rank(points)
        moments = kernel.features @ masses
        return float(self.target_second_moment + 2.0 * self.reduced_potential(points) @ masses
                     + kernel.weights @ moments**2)


class NoInteraction:
    """Mixin for 1-D reduced problems without interaction (u = 0, a rank-0 kernel), so ψ = v: the
    exact test problems (transport by a given velocity, radial Brownian motion, Gibbs states of
    U = 0) and non-interacting studies.  Combine as ``class P(NoInteraction, ReducedProblem)``."""

    def interaction_low_rank(self, points: np.ndarray) -> LowRankKernel:
        m = np.size(points)
        return LowRankKernel(np.zeros(0), np.zeros((0, m)), np.zeros(m))

    def interaction_features_gradient(self, points: np.ndarray) -> np.ndarray:
        return np.zeros((0, np.size(points)))

    def interaction_kernel(self, points: np.ndarray, other: np.ndarray) -> np.ndarray:
        return np.zeros((np.size(points), np.size(other)))
