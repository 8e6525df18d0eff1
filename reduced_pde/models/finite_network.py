"""Finite networks of Gaussian-input neurons: the exact output second moment, and the network of the
single- and multi-index models.

Exact population risk (design note §1, no ½)
--------------------------------------------
For ``f(x) = (1/N) Σ_i a_i σ(⟨w_i, x⟩)`` and data whose x is, given a class c of probability p_c,
``N(0, s_c² I_d)`` (one class with s = 1 for x ~ N(0, I_d); two for the MMN18 mixture)::

    R_N = E y² + (2/N) Σ_i V(θ_i) + E f²,
    E f² = Σ_c p_c (1/N²) [ Σ_{i≠j} a_i a_j Σ_k α_k(s_c n_i) α_k(s_c n_j) γ_ij^k + Σ_i a_i² E σ(s_c n_i G)² ],

with ``n_i = |w_i|``, ``γ_ij = ⟨w_i, w_j⟩/(n_i n_j)`` the actual cosines and ``α_k(n) = E[σ(nG) h_k(G)]``
(Mehler's formula: ``⟨w_i,x⟩/(s n_i)`` and ``⟨w_j,x⟩/(s n_j)`` are standard normals with correlation
γ_ij).  Pairs are summed to the degree K with ``max_{i≠j} |γ_ij|^{K+1} <= tolerance`` (capped at
:data:`MAX_MEHLER_DEGREE`, or at the polynomial degree of σ where the series terminates); since
``Σ_{k>K} α_k(n)² = E σ(nG)² − Σ_{k<=K} α_k(n)² =: T(n)``, Cauchy–Schwarz bounds the dropped part by
``Σ_c p_c (1/N²) Σ_{i≠j} |a_i a_j| |γ_ij|^{K+1} sqrt(T_i T_j)``.  :func:`output_second_moment`
computes ``E f²`` and that bound; the potential part is the model's (its reduced potential v).

Index models
------------
:class:`IndexNetwork` is the :class:`~reduced_pde.models.base.NetworkModel` of the single- and
multi-index models (``x ~ N(0, I_d)``, ``y = φ(Θ* x) + ε``, ``σ*(x; θ) = a σ(⟨w, x⟩)``), built on the
reduced problem: labels ``problem.sample_labels``, initial neurons ``problem.initial_law()``,
invariants ``problem.reduced_coordinates``, potential ``problem.network_potential``.  The target frame
is Θ* = the first k basis vectors (the laws of the invariants do not depend on the frame); the
subclasses (:class:`~reduced_pde.models.single_index.SingleIndexNetwork`,
:class:`~reduced_pde.models.multi_index.MultiIndexNetwork`) only say how their problem takes Θ*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from reduced_pde.models.base import NetworkModel

__all__ = ["MAX_MEHLER_DEGREE", "IndexNetwork", "mehler_degree", "neuron_cosines", "mehler_pair_sum",
           "output_second_moment", "index_network_risk", "finite_dimension"]

#: largest degree of the pair series of the exact network risk
MAX_MEHLER_DEGREE = 400


def finite_dimension(dimension: float) -> int:
    """``int(d)`` for a finite integer d >= 2, else ValueError naming data.dimension."""
    d = float(dimension)
    if not (math.isfinite(d) and d >= 2 and d == int(d)):
        raise ValueError(f"data.dimension = {dimension} cannot be simulated by SGD; it needs a finite "
                         "integer dimension d >= 2")
    return int(d)


def mehler_degree(cosines: np.ndarray, tolerance: float, exact_degree: int | None = None) -> int:
    """Smallest K with ``max |γ_ij|^{K+1} <= tolerance`` over the off-diagonal cosines (zero diagonal),
    capped at :data:`MAX_MEHLER_DEGREE` and at ``exact_degree`` (polynomial σ)."""
    largest = float(np.max(np.abs(cosines))) if cosines.size else 0.0
    if largest == 0.0:
        degree = 0
    elif largest >= 1.0:
        degree = MAX_MEHLER_DEGREE
    else:
        degree = int(min(MAX_MEHLER_DEGREE, max(1, math.ceil(math.log(tolerance) / math.log(largest) - 1.0))))
    return degree if exact_degree is None else min(degree, exact_degree)


def neuron_cosines(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n_i = |w_i|, γ_ij = ⟨w_i, w_j⟩/(n_i n_j))`` for weights (N, d): the cosines clipped to [−1, 1],
    zero on the diagonal and for a neuron with w_i = 0."""
    norms = np.linalg.norm(weights, axis=1)
    unit = weights / np.where(norms > 0, norms, 1.0)[:, None]
    cosines = np.clip(unit @ unit.T, -1.0, 1.0)
    np.fill_diagonal(cosines, 0.0)
    return norms, cosines


def mehler_pair_sum(alpha: np.ndarray, cosines: np.ndarray, degree: int) -> np.ndarray:
    """``Σ_{k<=K} α_k(n_i) α_k(n_j) γ_ij^k`` (Mehler's series truncated at K = ``degree``) with a zero
    diagonal; ``alpha`` (K+1, N), ``cosines`` (N, N)."""
    total = np.zeros_like(cosines)
    power = np.ones_like(cosines)
    for k in range(degree + 1):
        total += np.outer(alpha[k], alpha[k]) * power
        power *= cosines
    np.fill_diagonal(total, 0.0)
    return total


def output_second_moment(activation, second_moment: Callable[[np.ndarray], np.ndarray], a: np.ndarray,
                         weights: np.ndarray, *, classes: Sequence[tuple[float, float]] = ((1.0, 1.0),),
                         tolerance: float = 1e-12, degree: int | None = None,
                         exact_degree: int | None = None) -> tuple[float, float]:
    """``(E f², bound)`` of the module docstring for neurons ``(a (N,), weights (N, d))``.

    ``second_moment(n)`` = ``E σ(nG)²``; ``classes``: (probability p_c, input scale s_c); ``degree``
    overrides the choice of K; ``exact_degree``: the polynomial degree of σ (the series terminates,
    bound 0)."""
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    n_neurons = w.shape[0]
    a = np.broadcast_to(np.asarray(a, dtype=float), (n_neurons,))
    norms, cosines = neuron_cosines(w)
    if degree is None:
        degree = mehler_degree(cosines, tolerance, exact_degree)
    abs_power = np.abs(cosines) ** (degree + 1)
    pairs = diagonal = bound = 0.0
    for probability, scale in classes:
        alpha = activation.hermite_coefficients(scale * norms, degree)  # (K+1, N)
        second = np.asarray(second_moment(scale * norms), dtype=float)
        total = mehler_pair_sum(alpha, cosines, degree)
        pairs += probability * float(a @ total @ a)
        diagonal += probability * float(np.sum(a * a * second))
        if exact_degree is None or degree < exact_degree:
            tail = np.sqrt(np.maximum(second - np.sum(alpha**2, axis=0), 0.0)) * np.abs(a)
            bound += probability * float(tail @ abs_power @ tail)
    return (pairs + diagonal) / n_neurons**2, bound / n_neurons**2


def index_network_risk(problem, a: np.ndarray | float, weights: np.ndarray, theta_star: np.ndarray,
                       second_moment: Callable[[np.ndarray], np.ndarray], exact_degree: int | None,
                       tolerance: float = 1e-12) -> tuple[float, float]:
    """Exact ``R_N = E y² + (2/N) Σ_i v(θ_i) + E f²`` of an index model's network and its truncation
    bound ``(2/N) Σ_i b_v(θ_i) + bound(E f²)`` (module docstring); v at the neurons' actual a_i, from
    ``problem.network_potential(a, w, Θ*)``; ``exact_degree``: the polynomial degree of σ or None."""
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    n_neurons = w.shape[0]
    a_vec = np.broadcast_to(np.asarray(a, dtype=float), (n_neurons,)).copy()
    potential, potential_bound = problem.network_potential(a_vec, w, theta_star)
    moment, moment_bound = output_second_moment(
        problem.activation, second_moment, a_vec, w, tolerance=tolerance, exact_degree=exact_degree)
    risk = problem.target_second_moment + 2.0 * float(np.sum(potential)) / n_neurons + moment
    return float(risk), 2.0 * float(np.sum(potential_bound)) / n_neurons + moment_bound


class IndexNetwork(NetworkModel):
    """The network of an index model (module docstring), from its reduced problem.

    The problem provides ``dimension``, ``index_dimension`` k, ``activation``, ``train_second_layer``,
    ``target_second_moment``, ``sample_labels(z (B, k), rng)``,
    ``initial_law().sample_network(N, rng, frame)``, ``reduced_coordinates(a, w, frame)`` and
    ``network_potential(a, w, frame) -> (v (N,), bound (N,))`` (V at the neurons' actual a_i)."""

    records_network_risk = False  # O(N² K) per output (K up to 400 for aligned neurons): on request

    def __init__(self, problem, on_sphere: bool = False) -> None:
        self.problem = problem
        self.dimension = finite_dimension(problem.dimension)
        self.index_dimension = int(problem.index_dimension)
        self.activation = problem.activation
        self.trains_second_layer = bool(problem.train_second_layer)
        self.on_sphere = bool(on_sphere)
        self.theta_star = np.eye(self.index_dimension, self.dimension)

    @property
    def frame(self) -> np.ndarray:
        """Θ* as the problem takes it (overridden: a (d,) vector for the single-index problem)."""
        return self.theta_star

    def sample(self, n_samples: int, rng: np.random.Generator,
               label_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """x ~ N(0, I_d) from ``rng``; ``y = φ(Θ* x) + ε`` with ε from ``label_rng`` (default ``rng``)."""
        x = rng.standard_normal((n_samples, self.dimension))
        y = self.problem.sample_labels(x[:, : self.index_dimension], rng if label_rng is None else label_rng)
        return x, y

    def initial_neurons(self, n_neurons: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        a, w = self.problem.initial_law().sample_network(n_neurons, rng, self.frame)
        return np.asarray(a, dtype=float), np.asarray(w, dtype=float)

    def invariants(self, a: np.ndarray, w: np.ndarray) -> np.ndarray:
        return self.problem.reduced_coordinates(a, w, self.frame)

    def network_risk(self, a: np.ndarray, w: np.ndarray, tolerance: float = 1e-12) -> tuple[float, float]:
        return self.problem.network_risk(a, w, self.frame, tolerance)
