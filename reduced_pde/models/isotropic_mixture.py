"""MMN18 reduction of the isotropic Gaussian mixture to the radius r = |w|.

Data: :class:`IsotropicGaussianMixture`, ``y = ±1`` (prob. ½), ``x | y ~ N(0, (1 + yΔ)² I_d)``; neurons ``σ*(x; w) = σ(⟨w, x⟩)``.
Given y, ``⟨w, x⟩ ~ N(0, n_y(r)²)`` with ``n_y(r) = (1 + yΔ) r``, and for two neurons the pair
``(⟨w,x⟩/n_y(r), ⟨w',x⟩/n_y(r'))`` is standard bivariate normal with correlation c, the cosine
between w and w'.  With ``α_k`` the normalized Hermite coefficients of σ (Mehler's formula):

    v(r)      = −E[y σ(⟨w,x⟩)] = −½ α_0(n_+(r)) + ½ α_0(n_−(r)),
    U(w, w')  = ½ Σ_{y=±} Σ_k α_k(n_y(r)) α_k(n_y(r')) c^k,
    u(r, r')  = E_c U = ½ Σ_{y=±} Σ_{k even} E[c^k] α_k(n_y(r)) α_k(n_y(r')),

where c is the cosine between two independent uniform directions of R^d (density ∝
(1 − c²)^{(d−3)/2}; E c² = 1/d; :func:`~reduced_pde.hermite.cosine_moments`).  Every term is a
product g(r) g(r'): the kernel is low-rank.  At d = ∞ only k = 0 survives and
``u(r, r') = ½ q_+(r) q_+(r') + ½ q_−(r) q_−(r')`` (rank 2).  At finite d the series is
truncated at an even degree K; since E c^k is non-increasing over even k, Cauchy–Schwarz bounds
the error by ``E[c^{K+2}] sqrt(T(r) T(r'))`` with ``T = Σ_y ½ Σ_{k>K} α_k(n_y)²``; ``K`` is chosen
once so that this bound is below ``truncation_tolerance`` (relative to ``E σ²``) for all
``r <= radius_bound`` (default ``max(4, 10κ)``), and re-chosen (for twice the radius) only if a
point beyond the bound is ever requested — so the kernel does not change from call to call.

The reduced density p(r) (w.r.t. dr) follows ``∂_t p = 2ξ ∂_r(p ∂_r ψ(r; p))``,
``ψ(r; p) = v(r) + ∫ u(r, r') p(r') dr'``: because Ψ(w; ρ) depends on w only through |w|,
``∇_w Ψ = ψ'(|w|) w/|w|`` and ``d|w|/dt = −2ξ ψ'(|w|)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from reduced_pde.activations import Activation, PiecewiseLinearActivation, make_activation
from reduced_pde.dual_kernels import cosine_rule
from reduced_pde.hermite import cosine_moments
from reduced_pde.initial_laws import InitialLaw, make_initial_law
from reduced_pde.models.base import NetworkModel
from reduced_pde.models.finite_network import finite_dimension, output_second_moment
from reduced_pde.problem import CompiledDrift, LowRankKernel, ReducedProblem

__all__ = ["IsotropicGaussianMixture", "IsotropicMixtureRadialProblem", "IsotropicMixtureNetwork",
           "sample_gaussian_mixture", "TwoClassMixture", "MixtureReduction"]

_MAX_DEGREE = 400


def sample_gaussian_mixture(n_samples: int, dimension: int, delta: float, rng: np.random.Generator,
                            label_rng: np.random.Generator | None = None,
                            signal_dimension: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n_samples`` iid pairs (x (n, d), y (n,)) of a two-class mixture: y = ±1 (prob. ½) from
    ``label_rng`` (default ``rng``, drawn first), then ``x = D_y g``, g ~ N(0, I_d) from ``rng``, where
    D_y multiplies the first ``signal_dimension`` coordinates (all of them by default: the isotropic
    mixture) by ``1 + yΔ`` and leaves the others."""
    y = np.where((rng if label_rng is None else label_rng).random(n_samples) < 0.5, 1.0, -1.0)
    x = rng.standard_normal((n_samples, dimension))
    x[:, :signal_dimension] *= (1.0 + delta * y)[:, None]
    return x, y


class TwoClassMixture:
    """What the two Gaussian mixtures share: labels y = ±1 and ``E y² = 1``; the coordinates of x that
    carry the signal (all of them for the isotropic mixture) have standard deviation ``1 + yΔ``
    (``self.delta``)."""

    delta: float

    @property
    def class_scales(self) -> tuple[float, float]:
        """Standard deviation ``1 + yΔ`` of the signal coordinates of x for y = +1, −1."""
        return (1.0 + self.delta, 1.0 - self.delta)

    @property
    def target_second_moment(self) -> float:
        return 1.0


class MixtureReduction:
    """What the mixture reductions share (mixed into a :class:`ReducedProblem`): d and ``E y²`` are
    those of ``self.data``, and :meth:`config` writes the data, the activation, κ, the truncation degree
    (−1: automatic) and tolerance under the name ``problem_name``."""

    problem_name: str
    data: TwoClassMixture
    activation: Activation
    kappa: float
    hermite_degree: int | None
    truncation_tolerance: float

    @property
    def dimension(self) -> float:
        return self.data.dimension

    @property
    def target_second_moment(self) -> float:
        return self.data.target_second_moment

    def config(self) -> dict[str, Any]:
        return {
            "problem": self.problem_name,
            **{f"data.{k}": v for k, v in self.data.config().items()},
            **{f"activation.{k}": v for k, v in self.activation.config().items()},
            "initial.kappa": self.kappa,
            "reduction.hermite_degree": -1 if self.hermite_degree is None else self.hermite_degree,
            "reduction.truncation_tolerance": self.truncation_tolerance,
        }


@dataclass(frozen=True)
class IsotropicGaussianMixture(TwoClassMixture):
    """``y = ±1`` (prob. ½), ``x | y ~ N(0, (1 + yΔ)² I_d)``; ``d = inf`` allowed for reductions."""

    delta: float
    dimension: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta", in_interval(0.0, 1.0)("data.delta", self.delta))
        object.__setattr__(self, "dimension", dimension_value(2)("data.dimension", self.dimension))

    #: labels and their probabilities
    labels: tuple[float, float] = (1.0, -1.0)
    label_probabilities: tuple[float, float] = (0.5, 0.5)

    def sample(self, n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n_samples`` iid pairs (x, y); x has shape (n_samples, d)."""
        if math.isinf(self.dimension):
            raise ValueError("cannot sample x in dimension d = inf")
        return sample_gaussian_mixture(n_samples, int(self.dimension), self.delta, rng)

    def config(self) -> dict[str, Any]:
        return {"model": "isotropic_gaussian_mixture", "delta": self.delta, "dimension": self.dimension}


class IsotropicMixtureRadialProblem(MixtureReduction, ReducedProblem):
    """The MMN18 radial reduction at finite d or d = ∞ (module docstring)."""

    coordinate_names = ("r",)
    problem_name = "isotropic_mixture_radial"

    def __init__(self, data: IsotropicGaussianMixture, activation: Activation | str | dict,
                 kappa: float = 0.4, hermite_degree: int | None = None,
                 truncation_tolerance: float = 1e-10, radius_bound: float | None = None) -> None:
        if not isinstance(data, IsotropicGaussianMixture):
            raise TypeError(f"data = {data!r} ({type(data).__name__}) must be an IsotropicGaussianMixture")
        self.data = data
        self.activation = make_activation(activation)
        self.kappa = positive("initial.kappa", kappa)
        if hermite_degree is not None:
            _hermite_degree(even=True)("reduction.hermite_degree", hermite_degree)
        truncation_tolerance = positive("reduction.truncation_tolerance", truncation_tolerance)
        self.hermite_degree = hermite_degree
        if not truncation_tolerance > 0:
            raise ValueError(f"reduction.truncation_tolerance = {truncation_tolerance} must be > 0")
        self.truncation_tolerance = float(truncation_tolerance)
        self.radius_bound = float(radius_bound) if radius_bound is not None else max(4.0, 10.0 * self.kappa)
        if not self.radius_bound > 0:
            raise ValueError(f"reduction.radius_bound = {radius_bound} must be > 0")
        self._degree: int | None = None
        self._initial_law = make_initial_law(self.kappa, data.dimension)

    # ------------------------------------------------------------------------------------------
    def _class_terms(self):
        """(probability, label, scale factor 1 + yΔ) for each class."""
        return [(p, y, s) for p, y, s in zip(self.data.label_probabilities, self.data.labels,
                                             self.data.class_scales)]

    def reduced_potential(self, points: np.ndarray) -> np.ndarray:
        r = np.asarray(points, dtype=float)
        return sum(-p * y * self.activation.gaussian_mean(s * r) for p, y, s in self._class_terms())

    def reduced_potential_gradient(self, points: np.ndarray) -> np.ndarray:
        r = np.asarray(points, dtype=float)
        return sum(-p * y * s * self.activation.gaussian_mean_derivative(s * r)
                   for p, y, s in self._class_terms())

    # ---- interaction -------------------------------------------------------------------------
    def series_degree(self, points: np.ndarray) -> int:
        """Even truncation degree K of the c-series on ``points`` (0 at d = ∞)."""
        if math.isinf(self.dimension):
            return 0
        if self.hermite_degree is not None:
            return self.hermite_degree
        r_max = float(np.max(points)) if np.size(points) else 0.0
        if r_max > self.radius_bound:
            self.radius_bound = 2.0 * r_max
            self._degree = None
        if self._degree is None:
            self._degree = self._choose_degree(self.radius_bound)
        return self._degree

    def _choose_degree(self, r_max: float) -> int:
        probe = np.linspace(0.0, r_max, 17)
        total = self._second_moment_sum(probe)
        alpha_sq = sum(p * self.activation.hermite_coefficients(s * probe, _MAX_DEGREE) ** 2
                       for p, _, s in self._class_terms())
        tails = total[None, :] - np.cumsum(alpha_sq, axis=0)  # tails[K] = Σ_{k>K}
        moments = cosine_moments(self.dimension, _MAX_DEGREE + 2)
        scale = max(float(total.max()), 1e-300)
        for degree in range(0, _MAX_DEGREE + 1, 2):
            if moments[degree + 2] * max(float(tails[degree].max()), 0.0) <= self.truncation_tolerance * scale:
                return degree
        return _MAX_DEGREE

    def _second_moment_sum(self, r: np.ndarray) -> np.ndarray:
        """``Σ_y P(y) E[σ(n_y(r) G)²]``."""
        return sum(p * self.activation.second_moment(s * r) for p, _, s in self._class_terms())

    def interaction_low_rank(self, points: np.ndarray) -> LowRankKernel:
        r = np.asarray(points, dtype=float)
        degree = self.series_degree(r)
        moments = cosine_moments(self.dimension, degree)
        even = np.arange(0, degree + 1, 2)
        weights, features = [], []
        for p, _, s in self._class_terms():
            alpha = self.activation.hermite_coefficients(s * r, degree)
            weights.append(p * moments[even])
            features.append(alpha[even])
        return LowRankKernel(np.concatenate(weights), np.concatenate(features),
                             truncation_bound=np.zeros_like(r))

    def compiled_drift(self, points: np.ndarray) -> CompiledDrift | None:
        """``ψ'(r_i; p̂)`` (mobility 1) compiled (:mod:`reduced_pde.radial_hermite`) for a piecewise-linear σ (the
        closed-form coefficients), with the degree K of :meth:`series_degree` on ``points``; None for
        a smooth σ (its coefficients come from quadrature in numpy)."""
        if not isinstance(self.activation, PiecewiseLinearActivation):
            return None
        from reduced_pde.radial_hermite import radial_hermite_gradient

        degree = self.series_degree(np.asarray(points, dtype=float))
        moments = cosine_moments(self.dimension, degree)
        terms = self._class_terms()
        valid_below = self.radius_bound if not math.isinf(self.dimension) and self.hermite_degree is None \
            else math.inf
        return radial_hermite_gradient(
            self.activation, scales=np.array([s for _, _, s in terms]),
            potential_coefficients=np.array([-p * y for p, y, _ in terms]),
            kernel_weights=np.array([p * moments for p, _, _ in terms]), valid_below=valid_below)

    def interaction_truncation_bound(self, points: np.ndarray) -> np.ndarray:
        """``b_i`` with ``|u − u_K|(r_i, r_j) <= b_i b_j`` (module docstring); zero at d = ∞."""
        r = np.asarray(points, dtype=float)
        if math.isinf(self.dimension):
            return np.zeros_like(r)
        degree = self.series_degree(r)
        alpha_sq = sum(p * self.activation.hermite_coefficients(s * r, degree) ** 2
                       for p, _, s in self._class_terms())
        tail = np.maximum(self._second_moment_sum(r) - alpha_sq.sum(axis=0), 0.0)
        return np.sqrt(cosine_moments(self.dimension, degree + 2)[degree + 2] * tail)

    def interaction_features_gradient(self, points: np.ndarray) -> np.ndarray:
        r = np.asarray(points, dtype=float)
        degree = self.series_degree(r)
        even = np.arange(0, degree + 1, 2)
        return np.concatenate([s * self.activation.hermite_coefficients_derivative(s * r, degree)[even]
                               for _, _, s in self._class_terms()])

    def interaction_kernel(self, points: np.ndarray, other: np.ndarray,
                           cosine_nodes: int = 48) -> np.ndarray:
        """``u(r, r')`` by Gauss–Jacobi quadrature over c of the exact bivariate expectation
        (independent of the Hermite series; slow, for checks and small dense problems)."""
        r = np.atleast_1d(np.asarray(points, dtype=float))
        r2 = np.atleast_1d(np.asarray(other, dtype=float))
        c_nodes, c_weights = cosine_rule(self.dimension, cosine_nodes)
        out = np.zeros((r.size, r2.size))
        for p, _, s in self._class_terms():
            for i, ri in enumerate(r):
                for j, rj in enumerate(r2):
                    out[i, j] += p * sum(
                        w * self.activation.bivariate_expectation(s * ri, s * rj, c)
                        for c, w in zip(c_nodes, c_weights))
        return out

    # ---- finite networks -----------------------------------------------------------------------
    def network_risk(self, weights: np.ndarray, degree: int | None = None,
                     tolerance: float = 1e-12) -> tuple[float, float]:
        """Exact population risk ``E[(y − (1/N) Σ_i σ(⟨w_i, x⟩))²]`` of a finite network and a bound
        on its series truncation error:
        ``R_N = E y² + (2/N) Σ_i v(|w_i|) + E f²`` with ``E f²`` the two-class Mehler sum of
        :func:`~reduced_pde.models.finite_network.output_second_moment` at the actual cosines (the
        diagonal uses ``E σ(n G)²`` directly).  By default the degree K is the smallest with
        ``max|c_ij|^{K+1} <= tolerance`` (capped at 400), so a high-dimensional network (small
        overlaps) costs a few terms."""
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        moment, bound = output_second_moment(
            self.activation, self.activation.second_moment, np.ones(w.shape[0]), w,
            classes=[(p, s) for p, _, s in self._class_terms()], tolerance=tolerance, degree=degree)
        potential = float(self.reduced_potential(np.linalg.norm(w, axis=1)).sum())
        return float(self.target_second_moment + 2.0 * potential / w.shape[0] + moment), bound

    def domain(self) -> tuple[tuple[float, float], ...]:
        """r = |w| ∈ [0, ∞)."""
        return ((0.0, math.inf),)

    def log_reference_density(self, points: np.ndarray) -> np.ndarray:
        """``log J(r) = (d − 1) log r``: the image of Lebesgue measure on R^d (finite d, r > 0)."""
        r = np.asarray(points, dtype=float)
        if math.isinf(self.dimension):
            raise ValueError("noise.beta < inf with data.dimension = inf is refused: the radial entropy term "
                             "(d−1)/(βr) diverges as d → ∞ at fixed β (use a finite dimension, or beta = \"inf\")")
        if np.any(r <= 0):
            raise ValueError("log J needs r > 0 (cell centres of a grid on [0, r_max])")
        return (self.dimension - 1.0) * np.log(r)

    def initial_law(self) -> InitialLaw:
        return self._initial_law

    def finite_width(self) -> Any:
        """Finite-width runs (``reduced-pde chaos``; :class:`~reduced_pde.analysis.finite_width_mixture.MixtureFiniteWidth`):
        the N-neuron population gradient flow (pair kernel: this problem's Mehler series; self-term
        ``D(|w|) = Σ_y p_y E σ(s_y|w|G)²`` exact) and the 1/N prediction; finite d >= 4."""
        from reduced_pde.analysis.finite_width_mixture import MixtureFiniteWidth

        return MixtureFiniteWidth(self)


class IsotropicMixtureNetwork(NetworkModel):
    """The MMN18 network ``f(x; W) = (1/N) Σ_i σ(⟨w_i, x⟩)`` (first layer only: a_i = 1, not trained;
    w in the ball) on the data of an :class:`IsotropicMixtureRadialProblem` at finite d.

    Initial weights: directions uniform, radii from ``problem.initial_law()`` (for w ~ N(0, κ²/d I_d)
    the Gaussian itself).  Invariant: r = |w|.  Exact risk: :meth:`IsotropicMixtureRadialProblem.network_risk`."""

    trains_second_layer = False
    on_sphere = False
    records_network_risk = True  # O(N²) per output with a few Mehler terms at small overlaps

    def __init__(self, problem: IsotropicMixtureRadialProblem) -> None:
        self.problem = problem
        self.dimension = finite_dimension(problem.dimension)
        self.activation = problem.activation
        self.delta = float(problem.data.delta)

    def sample(self, n_samples: int, rng: np.random.Generator,
               label_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """y = ±1 (prob. ½) from ``label_rng`` (default ``rng``, drawn first), then
        ``x = (1 + yΔ) g``, g ~ N(0, I_d) from ``rng`` (with one generator: the pairs of
        :meth:`IsotropicGaussianMixture.sample`)."""
        return sample_gaussian_mixture(n_samples, self.dimension, self.delta, rng, label_rng)

    def initial_neurons(self, n_neurons: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        w = self.problem.initial_law().sample_weights(n_neurons, self.dimension, rng)
        return np.ones(n_neurons), np.asarray(w, dtype=float)

    def invariants(self, a: np.ndarray, w: np.ndarray) -> np.ndarray:
        """r_i = |w_i|, shape (N,)."""
        return np.sqrt(np.einsum("ij,ij->i", w, w))

    def network_risk(self, a: np.ndarray, w: np.ndarray, tolerance: float = 1e-12) -> tuple[float, float]:
        return self.problem.network_risk(w, tolerance=tolerance)


# ---- the model plug-in ----------------------------------------------------------------------------
def _activation_table(field: str, value: Any) -> dict[str, Any]:
    """The ``[activation]`` table: built once to check it (unknown names and parameters refused)."""
    if not isinstance(value, dict):
        raise ValueError(f"[{field}] must be a table such as {{name = \"mmn18\"}}, got {value!r}")
    table = {"name": "mmn18", **value}
    make_activation(dict(table))
    return table


def _hermite_degree(even: bool):
    def check(field: str, value: Any) -> int | None:
        if value == "auto":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (even and value % 2) \
                or value > _MAX_DEGREE:
            raise ValueError(f"{field} = {value!r} must be \"auto\" or an {'even ' if even else ''}integer in "
                             f"[0, {_MAX_DEGREE}] (the degree the c-moments are computed to)")
        return int(value)

    return check


from reduced_pde.models import register  # noqa: E402  (the registry imports this module lazily)
from reduced_pde.models.base import (  # noqa: E402
    Inputs,
    Key,
    Model,
    Table,
    dimension_value,
    in_interval,
    positive,
)


@register
class IsotropicMixtureModel(Model):
    """MMN18's isotropic Gaussian mixture with neurons σ(⟨w, x⟩): the reduction to r = |w|."""

    name = "isotropic_gaussian_mixture"
    summary = "y = ±1, x | y ~ N(0, (1 + yΔ)² I_d), neurons σ(⟨w, x⟩); coordinate r = |w| (MMN18)"
    chaos = "N-neuron population gradient flows (Mehler pair kernel, exact self-term) and the 1/N prediction"
    schema = {
        "data": {"delta": Key(0.5, in_interval(0.0, 1.0), "Δ: class scales 1 ± Δ, in [0, 1)"),
                 "dimension": Key(320, dimension_value(2), "d (integer >= 2) or \"inf\"")},
        "activation": Table({"name": "mmn18"}, _activation_table,
                            "σ: name = mmn18 (t1, t2, s1, s2), relu, tanh, erf, sigmoid, piecewise_linear"),
        "initial": {"kappa": Key(0.4, positive, "w ~ N(0, κ²/d I_d)")},
        "reduction": {"hermite_degree": Key("auto", _hermite_degree(even=True),
                                            "even truncation degree of the interaction series, or \"auto\""),
                      "truncation_tolerance": Key(1e-10, positive,
                                                  "bound on the series truncation error (relative to E σ²)")},
    }

    def build_problem(self, inputs: Inputs) -> IsotropicMixtureRadialProblem:
        data = IsotropicGaussianMixture(inputs["data"]["delta"], inputs["data"]["dimension"])
        reduction = inputs["reduction"]
        return IsotropicMixtureRadialProblem(data, dict(inputs["activation"]), kappa=inputs["initial"]["kappa"],
                                             hermite_degree=reduction["hermite_degree"],
                                             truncation_tolerance=reduction["truncation_tolerance"])

    def network(self, inputs: Inputs, dimension: int) -> Any:
        from reduced_pde.models.isotropic_mixture import IsotropicMixtureNetwork

        data = {**inputs["data"], "dimension": dimension}
        return IsotropicMixtureNetwork(self.build_problem({**inputs, "data": data}))

    def default_grid(self, problem: ReducedProblem, inputs: Inputs, cells: int) -> dict[str, dict[str, Any]]:
        """r ∈ [0, 4] (the laws of MMN18's figure stay below |w| ≈ 2.5), or [0, 10κ] for a wider start."""
        return {"r": {"lower": 0.0, "upper": max(4.0, 10.0 * inputs["initial"]["kappa"]), "cells": cells}}

    def describe(self, inputs: Inputs) -> str:
        return f"d = {inputs['data']['dimension']:g}, Δ = {inputs['data']['delta']:g}"
