"""Finite width: an m-neuron network against its mean-field limit, measured and predicted.

Setting (design note §3c; derivation in ``docs/finite_width.md``)
-----------------------------------------------------------------
Neurons ``w_i ∈ S^{d−1}``, a fixed second layer a, polynomial activation ``σ = Σ_k α_k h_k``
(``h_k = He_k/√k!``), Gaussian data ``x ~ N(0, I_d)``, ``y = φ(⟨θ*, x⟩) + noise`` with
``φ̂_k = E[φ h_k]``.  On the sphere the kernel and the potential are polynomials (exact, no
truncation)::

    U(w, w') = κ(⟨w, w'⟩),   κ(γ) = Σ_k κ_k γ^k,   κ_k = a² α_k²,
    V(w) = v(⟨w, θ*⟩),       v(s) = Σ_k v_k s^k,   v_k = −a φ̂_k α_k.

The m-neuron network ``f_m = (1/m) Σ_i a σ(⟨w_i, x⟩)`` has the risk (no ½)
``L_m = E y² + (2/m) Σ_i V(w_i) + (1/m²) Σ_{ij} κ(G_ij)``, ``G = W Wᵀ`` the Gram matrix, and its
population gradient flow (time t = kε, design note §2) is the projected flow

    dw_i/dt = −2ξ(t) P_{w_i} ∇_1Ψ(w_i; ρ^m),   ∇_1Ψ(w; ρ^m) = v'(⟨w,θ*⟩) θ* + (1/m) Σ_j κ'(G_ij) w_j,

``P_w = I − w wᵀ``: O(m² d) per step through the Gram matrix, seeds batched as a leading axis.
Its empirical measure ρ^m_t solves the mean-field equation exactly (the self-term j = i is part
of Ψ(·; ρ^m)), so ``ρ^m_t = S_t(ρ^m_0)`` with S_t the mean-field solution map.

The mean-field twin of neuron i is its initial point moved by the mean-field velocity: by
symmetry ``Ψ(w; ν_t) = ψ(⟨w, θ*⟩; p_t)`` and the twin is ``w̄_i(t) = s̄_i(t) θ* + sqrt(1 − s̄_i²) u_i``
with ``u_i`` the unit orthogonal part of ``w_i(0)`` and ``ds̄/dt = −2ξ (1 − s̄²) ∂_sψ(s̄; p_t)``, the
reduced characteristic of :class:`~reduced_pde.models.single_index.SingleIndexProblem` (sphere).

Measured per (m, seed, t): ``E_t² = ‖f_m − f_{ν_t}‖²_{L²} = ∫∫κ d(ρ^m − ν_t) d(ρ^m − ν_t)`` (exact),
the coupling gaps ``|w_i(t) − w̄_i(t)|`` (mean and quantiles over i), ``L_m(t)`` and ``L(ν_t)``.

Predicted (cost independent of m): with ``ν^{ε,w}_0 = (1 − ε)ν_0 + ε δ_w`` and ``h = ρ^m_0 − ν_0``,

    m E[E_t²] → e(t) = E_{w~ν_0} ‖∂_ε f_{S_t(ν^{ε,w}_0)}|_{ε=0}‖²,
    E[L_m(t)] = L(ν_t) + c(t)/m + O(1/m²),   c(t) = ½ E_{w~ν_0} ∂²_ε R(S_t(ν^{ε,w}_0))|_{ε=0}.

``S_t(ν^{ε,w}_0)`` is invariant under the rotations fixing θ* and w, so it is a law of
``(s, q) = (⟨θ, θ*⟩, ⟨θ, e_w⟩)`` (e_w the unit orthogonal part of w) plus one atom of mass ε on the
great circle through θ* and w: a 2-D reduced computation (:func:`predict_fluctuations`).

The coupling gap (docs §7): ``θ_i(t) = X_t(θ_i(0); ρ^m_0)`` and ``θ̄_i(t) = X_t(θ_i(0); ν_0)`` (X_t(θ; μ) the
characteristic through θ of the flow started at μ), so ``θ_i − θ̄_i = (1/m)Σ_j g_t(θ_i(0), w_j) + O_P(1/m)`` with
``g_t(θ, w) = ∂_ε X_t(θ; ν^{ε,w}_0)`` — the displacement of the frame rule's nodes in the same computation —
and ``√m(θ_i − θ̄_i) → N(0, C_t(θ_i(0)))``, ``C_t(θ) = E_w g gᵀ = A(x) ⊕ λ(x) I`` by symmetry (x the invariant
of θ).  :func:`coupling_limits` gives the m → ∞ limits of √m × the rms, the mean and the quantiles over the
neurons of ``|θ_i − θ̄_i|`` (:mod:`reduced_pde.analysis.gaussian_norms`); finite-m deviations are O(1/m).

The Circle (:class:`~reduced_pde.models.circle_sphere.CircleSphereProblem`, docs §6): ``y = E_{u∈S¹} φ(⟨u, x⟩)``
with u on the unit circle of span(e_1, e_2), ``V(w) = v(p)``, ``p = |Pw|``.  Everything above holds with
s replaced by p (the same mobility 1 − p²); what differs is collected in an :class:`IndexGeometry`: the
invariant, ``∇V = (v'(p)/p) Pw``, the twin ``p̄ Pw(0)/p(0) + sqrt(1 − p̄²)(I − P)w(0)/q(0)`` (the mean-field
field keeps both unit directions), the rule for ν_0 in p, and the prediction's frame: ``(1 − ε)ν_0 + εδ_w``
keeps only the reflection of the plane across Pw and the rotations of the complement fixing (I − P)w, a
law on S³ in ``(x₁, x₂, y₁, ρ)`` (a 3-D reduced computation).
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from numba import njit
from scipy import stats
from scipy.special import comb, roots_jacobi, roots_legendre

from reduced_pde.hermite import cosine_moments
from reduced_pde.problem import NoFiniteWidth, ReducedProblem

__all__ = ["SphereHermiteModel", "MeanFieldFlow", "CoupledRuns", "FluctuationPrediction",
           "coupled_runs", "predict_fluctuations", "sphere_quadrature", "circle_quadrature", "time_steps",
           "sphere_quantile", "circle_quantile", "flow_map_panels", "panel_rule", "gauss_kronrod_15", "atom_responses",
           "IndexGeometry", "SINGLE_INDEX", "CIRCLE", "FiniteWidth", "SphereFiniteWidth", "finite_width_of",
           "COMMON_CHAOS_KEYS", "network_backend", "check_backend", "gram_row_tiles",
           "gram_tile_rows", "coupling_limits"]

Schedule = Callable[[float], float]


def _constant_schedule(t: float) -> float:
    return 1.0


@njit(cache=True)
def _horner_flat(x, coefficients, out):  # pragma: no cover - compiled
    top = coefficients.size - 1
    for i in range(x.size):
        value = coefficients[top]
        for k in range(top - 1, -1, -1):
            value = value * x[i] + coefficients[k]
        out[i] = value


def _horner(x: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """``Σ_k coefficients[k] x^k`` elementwise in one compiled pass (np.polynomial's polyval makes one
    array pass per degree; the Gram blocks of the coupled runs are (S, m, m))."""
    x = np.asarray(x, dtype=float)
    coefficients = np.ascontiguousarray(coefficients, dtype=float)
    if coefficients.size == 0:
        return np.zeros_like(x)
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _horner_flat(flat, coefficients, out)
    return out.reshape(x.shape)


def _check_int(field: str, value: Any, lower: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lower:
        raise ValueError(f"{field} = {value!r} must be an integer >= {lower}")
    return int(value)


def _check_positive(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(value)) or not float(value) > 0:
        raise ValueError(f"{field} = {value!r} must be a finite number > 0")
    return float(value)


def _check_times(times: Any) -> np.ndarray:
    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size < 1 or not np.all(np.isfinite(t)) or t[0] != 0.0 or np.any(np.diff(t) <= 0):
        raise ValueError(f"times = {times!r} must be a 1-D increasing array of finite values starting at 0")
    return t


# --------------------------------------------------------------------------------------------
# The model: polynomial kernel and potential on the sphere
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SphereHermiteModel:
    """``κ(γ) = Σ_k kernel[k] γ^k`` and ``V(w) = v(x(w))``, ``v(x) = Σ_k potential[k] x^k``, on ``S^{d−1}``
    (module doc), with x(w) the invariant of ``geometry`` (s = ⟨w, θ*⟩, or p = |Pw| for the Circle)."""

    dimension: int
    kernel: np.ndarray
    potential: np.ndarray
    label_second_moment: float
    geometry: "IndexGeometry" = field(default=None)  # type: ignore[assignment]  (None: SINGLE_INDEX)

    def __post_init__(self) -> None:
        _check_int("data.dimension", self.dimension, 3)
        kernel = np.asarray(self.kernel, dtype=float)
        potential = np.asarray(self.potential, dtype=float)
        if kernel.ndim != 1 or np.any(kernel < 0) or not np.all(np.isfinite(kernel)):
            raise ValueError(f"kernel coefficients {kernel!r} must be finite and >= 0 (κ_k = a² α_k²)")
        size = max(kernel.size, potential.size)
        object.__setattr__(self, "kernel", np.pad(kernel, (0, size - kernel.size)))
        object.__setattr__(self, "potential", np.pad(potential, (0, size - potential.size)))
        if self.geometry is None:
            object.__setattr__(self, "geometry", SINGLE_INDEX)
        self.geometry.check(self)

    @classmethod
    def from_problem(cls, problem: Any) -> "SphereHermiteModel":
        """The model of a problem whose finite-width runs are on the sphere (its
        :meth:`~reduced_pde.problem.ReducedProblem.finite_width` hook: the single-index sphere problem
        with a fixed second layer and a polynomial activation, the Circle)."""
        hook = finite_width_of(problem)
        if not isinstance(hook, SphereFiniteWidth):
            raise ValueError(f"problem = {type(problem).__name__}: its finite-width runs are not on the sphere "
                             "(data.model = 'single_index_sphere' or 'circle_sphere' are)")
        return hook.model

    @property
    def degree(self) -> int:
        return int(self.kernel.size - 1)

    def kappa(self, gamma: np.ndarray) -> np.ndarray:
        return _horner(gamma, self.kernel)

    def kappa_prime(self, gamma: np.ndarray) -> np.ndarray:
        return _horner(gamma, np.polynomial.polynomial.polyder(self.kernel))

    def v(self, s: np.ndarray) -> np.ndarray:
        return np.polynomial.polynomial.polyval(s, self.potential)

    def v_prime(self, s: np.ndarray) -> np.ndarray:
        return np.polynomial.polynomial.polyval(s, np.polynomial.polynomial.polyder(self.potential))

    def output_variance(self) -> float:
        """Variance of one neuron's output at t = 0, ``κ(1) − ∫∫κ dν_0 dν_0`` with ν_0 uniform on the
        sphere (``E⟨w,w'⟩^k`` = cosine moments in R^d): the exact e(0) = c(0)."""
        moments = cosine_moments(float(self.dimension), self.degree)
        return float(np.sum(self.kernel) - self.kernel @ moments)

    def v_prime_over_x(self, x: np.ndarray) -> np.ndarray:
        """``v'(x)/x`` for an even v (the Circle: ``∇V(w) = (v'(p)/p) P w``), a polynomial."""
        derivative = np.polynomial.polynomial.polyder(self.potential)
        return np.polynomial.polynomial.polyval(x, derivative[1:]) if derivative.size > 1 else np.zeros_like(x)

    def config(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "kernel": self.kernel.tolist(), "potential": self.potential.tolist(),
                "label_second_moment": self.label_second_moment, "geometry": self.geometry.name}


RULES = ("quantile", "gauss_jacobi")


def sphere_quantile(dimension: int, u: np.ndarray) -> np.ndarray:
    """``s = F^{−1}(u)`` for ``s = ⟨w, θ*⟩``, w uniform on S^{d−1}: ``(1 + s)/2 ~ Beta((d−1)/2, (d−1)/2)``."""
    half = (dimension - 1.0) / 2.0
    return stats.beta(half, half, loc=-1.0, scale=2.0).ppf(u)


def circle_quantile(dimension: int, u: np.ndarray) -> np.ndarray:
    """``p = F^{−1}(u)`` for ``p = |Pw|`` (P a rank-2 projection), w uniform on S^{d−1}: ``p² ~ Beta(1, (d−2)/2)``."""
    return np.sqrt(stats.beta(1.0, (dimension - 2.0) / 2.0).ppf(u))


def sphere_quadrature(dimension: int, nodes: int, rule: str = "quantile") -> tuple[np.ndarray, np.ndarray]:
    """A rule for ``s = ⟨w, θ*⟩``, w uniform on S^{d−1}: ``(1 + s)/2 ~ Beta((d−1)/2, (d−1)/2)``.

    * ``"quantile"``: Gauss–Legendre in the probability u ∈ (0, 1), ``s = F^{−1}(u)`` — nodes spread
      evenly over the mass, so that a steep flow map s₀ ↦ s_t (neurons escaping the equator) is
      resolved wherever it falls: at d = 32, t = 0.15 (He_4) L(ν_t) has relative error 4e-4 with 128
      nodes and 1e-6 with 256 (Gauss–Jacobi: 2e-2 and 2e-3).
    * ``"gauss_jacobi"``: density ∝ (1 − s²)^{(d−3)/2}; exact for polynomials of degree 2·nodes − 1
      in s (used where t = 0 identities must hold to round-off).
    Weights sum to 1."""
    if rule == "gauss_jacobi":
        exponent = (dimension - 3.0) / 2.0
        s, weights = roots_jacobi(nodes, exponent, exponent)
        return s, weights / weights.sum()
    if rule != "quantile":
        raise ValueError(f"rule = {rule!r} is not allowed; allowed: {list(RULES)}")
    u, weights = roots_legendre(nodes)
    s = sphere_quantile(dimension, (u + 1.0) / 2.0)
    s = 0.5 * (s - s[::-1])  # exact mirror symmetry (the law is symmetric; removes ppf round-off)
    return s, weights / weights.sum()


def circle_quadrature(dimension: int, nodes: int, rule: str = "quantile") -> tuple[np.ndarray, np.ndarray]:
    """A rule for ``p = |Pw|`` (P a rank-2 projection), w uniform on S^{d−1}: ``p² ~ Beta(1, (d−2)/2)``.

    * ``"quantile"``: Gauss–Legendre in the probability u, ``p = F^{−1}(u)`` (as :func:`sphere_quadrature`).
    * ``"gauss_jacobi"``: Gauss–Jacobi in z = p² for the density ∝ (1 − z)^{(d−4)/2} on [0, 1]: exact for
      polynomials in p² of degree 2·nodes − 1 (everything at t = 0 is even in p).
    Weights sum to 1."""
    if rule == "gauss_jacobi":
        x, weights = roots_jacobi(nodes, (dimension - 4.0) / 2.0, 0.0)
        return np.sqrt((1.0 + x) / 2.0), weights / weights.sum()
    if rule != "quantile":
        raise ValueError(f"rule = {rule!r} is not allowed; allowed: {list(RULES)}")
    u, weights = roots_legendre(nodes)
    return circle_quantile(dimension, (u + 1.0) / 2.0), weights / weights.sum()


class IndexGeometry(ABC):
    """How the target sits in R^d, for the finite-width code: the invariant x(w) whose law is the
    mean-field law (mobility ``1 − x²`` in both cases), ``∇V``, the mean-field twin of a neuron, and
    the frame of the prediction (the coordinates of the law ``(1 − ε)ν_0 + εδ_w``; module doc)."""

    name = ""
    #: lower end of the invariant's range
    lower = -1.0
    #: coordinates of the prediction's frame (the last one is the norm ρ of the rest)
    frame_size = 3
    #: whether the frame rule has an in-plane angle (``angle_nodes``)
    has_angle = False

    def check(self, model: "SphereHermiteModel") -> None:
        """Refuse a model this geometry cannot carry (default: any)."""

    @abstractmethod
    def quadrature(self, dimension: int, nodes: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
        """Nodes and weights (sum 1) for the invariant's law under ν_0 (w uniform on S^{d−1})."""

    @abstractmethod
    def quantile(self, dimension: int, u: np.ndarray) -> np.ndarray:
        """The invariant's quantile function under ν_0: ``x = F^{−1}(u)``, u ∈ [0, 1]."""

    @abstractmethod
    def invariant(self, w: np.ndarray) -> np.ndarray:
        """x(w) for arrays of points (last axis: coordinates)."""

    @abstractmethod
    def add_potential_gradient(self, model: "SphereHermiteModel", w: np.ndarray, grad: np.ndarray) -> None:
        """``grad += ∇V(w)`` (last axis: coordinates)."""

    @abstractmethod
    def twin_frame(self, w0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors (anchor, ortho) with ``w0 = x(w0)·anchor + sqrt(1 − x(w0)²)·ortho``; the twin at
        invariant x̄ is ``x̄·anchor + sqrt(1 − x̄²)·ortho``."""

    @abstractmethod
    def frame_rule(self, dimension: int, x_nodes: int, q_nodes: int, angle_nodes: int, rule: str
                   ) -> tuple[np.ndarray, np.ndarray]:
        """ν_0 in the frame coordinates: points (M, frame_size) and weights (M,)."""

    @abstractmethod
    def frame_atoms(self, x: np.ndarray) -> np.ndarray:
        """The atom δ_w at invariant x in frame coordinates, (B, frame_size)."""

    def frame_invariant(self, y: np.ndarray) -> np.ndarray:
        return self.invariant(y)

    def residual_dimension(self, dimension: int) -> int:
        """Dimension of the span of the last frame coordinate (uniform directions there)."""
        return dimension - self.frame_size + 1

    #: signs of the :meth:`displacement_axes` components under θ → −θ with the frame of −w (the mirror
    #: image used when only atoms with x_w > 0 are computed; single index only)
    mirror_signs: tuple[float, ...] = ()

    @abstractmethod
    def displacement_axes(self, base: np.ndarray) -> np.ndarray:
        """An orthonormal basis (M, D, D) of the frame coordinates (D = frame_size) at each point θ of ν_0
        (``base``, (M, D)): the first K = D − 1 vectors are axes of R^d that the stabiliser of θ fixes or
        flips (θ's own frame: the covariance of θ's displacement is block-diagonal in them), the last is the
        one direction of the frame's span in the rest of R^d, which the stabiliser rotates freely over
        :meth:`displacement_rest_dimension` dimensions (an isotropic block)."""

    def displacement_rest_dimension(self, dimension: int) -> int:
        """Dimension of the isotropic block of the displacement covariance (:meth:`displacement_axes`)."""
        return dimension - self.frame_size + 1


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-300)


class _SingleIndexGeometry(IndexGeometry):
    """x = s = ⟨w, θ*⟩ (θ* = e_1); frame (s, ⟨θ, e_w⟩, ρ) with e_w the unit orthogonal part of w."""

    name = "single_index"
    lower = -1.0
    frame_size = 3

    def quadrature(self, dimension: int, nodes: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
        return sphere_quadrature(dimension, nodes, rule)

    def quantile(self, dimension: int, u: np.ndarray) -> np.ndarray:
        return sphere_quantile(dimension, u)

    def invariant(self, w: np.ndarray) -> np.ndarray:
        return w[..., 0]

    def add_potential_gradient(self, model: "SphereHermiteModel", w: np.ndarray, grad: np.ndarray) -> None:
        grad[..., 0] += model.v_prime(w[..., 0])

    def twin_frame(self, w0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        anchor = np.zeros_like(w0)
        anchor[..., 0] = 1.0
        ortho = w0.copy()
        ortho[..., 0] = 0.0
        return anchor, _unit(ortho)

    def frame_rule(self, dimension: int, x_nodes: int, q_nodes: int, angle_nodes: int, rule: str
                   ) -> tuple[np.ndarray, np.ndarray]:
        s, ws = sphere_quadrature(dimension, x_nodes, rule)
        exponent = (dimension - 4.0) / 2.0
        c2, wc = roots_jacobi(q_nodes, exponent, exponent)
        S, C = np.meshgrid(s, c2, indexing="ij")
        r = np.sqrt(1 - S.ravel() ** 2)
        points = np.stack([S.ravel(), r * C.ravel(), r * np.sqrt(1 - C.ravel() ** 2)], axis=-1)
        return points, np.outer(ws, wc / wc.sum()).ravel()

    def frame_atoms(self, x: np.ndarray) -> np.ndarray:
        return np.stack([x, np.sqrt(1 - x ** 2), np.zeros_like(x)], axis=-1)

    mirror_signs = (-1.0, 1.0)

    def displacement_axes(self, base: np.ndarray) -> np.ndarray:
        """θ*, θ's unit orthogonal part ``θ_⊥ = (0, q, ρ)/sqrt(q² + ρ²)``, and the rest ``(0, −ρ, q)/sqrt(q² + ρ²)``
        (stabiliser of θ: the rotations fixing θ* and θ, i.e. O(d − 2) on the rest)."""
        axes = np.zeros(base.shape[:1] + (3, 3))
        axes[:, 0, 0] = 1.0
        perp = _unit(base[:, 1:])
        axes[:, 1, 1:] = perp
        axes[:, 2, 1], axes[:, 2, 2] = -perp[:, 1], perp[:, 0]  # rest: ⊥ θ_⊥ in span(e_w, u)
        return axes


class _CircleGeometry(IndexGeometry):
    """x = p = |Pw| (P the projection on span(e_1, e_2)); frame (x₁, x₂, y₁, ρ): x₁ along the atom's
    in-plane direction, x₂ the other in-plane coordinate, y₁ along the atom's complement direction u_w,
    ρ the norm of the rest (uniform directions of R^{d−3}).  V = v(sqrt(x₁² + x₂²))."""

    name = "circle"
    lower = 0.0
    frame_size = 4
    has_angle = True

    def check(self, model: "SphereHermiteModel") -> None:
        if np.any(model.potential[1::2] != 0.0):
            raise ValueError(f"potential {model.potential!r} must be even in p for the Circle geometry")

    def quadrature(self, dimension: int, nodes: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
        return circle_quadrature(dimension, nodes, rule)

    def quantile(self, dimension: int, u: np.ndarray) -> np.ndarray:
        return circle_quantile(dimension, u)

    def invariant(self, w: np.ndarray) -> np.ndarray:
        return np.hypot(w[..., 0], w[..., 1])

    def add_potential_gradient(self, model: "SphereHermiteModel", w: np.ndarray, grad: np.ndarray) -> None:
        ratio = model.v_prime_over_x(self.invariant(w))
        grad[..., 0] += ratio * w[..., 0]
        grad[..., 1] += ratio * w[..., 1]

    def twin_frame(self, w0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        anchor = np.zeros_like(w0)
        anchor[..., :2] = w0[..., :2]
        ortho = w0.copy()
        ortho[..., :2] = 0.0
        return _unit(anchor), _unit(ortho)

    def frame_rule(self, dimension: int, x_nodes: int, q_nodes: int, angle_nodes: int, rule: str
                   ) -> tuple[np.ndarray, np.ndarray]:
        """p (:func:`circle_quadrature`) × in-plane angle β (trapezoid, ``angle_nodes``; exact for
        trigonometric polynomials of degree < angle_nodes) × complement cosine c₂ (Gauss–Jacobi for
        the density ∝ (1 − c₂²)^{(d−5)/2} of a cosine in R^{d−2})."""
        p, wp = circle_quadrature(dimension, x_nodes, rule)
        beta = 2 * np.pi * (np.arange(angle_nodes) + 0.5) / angle_nodes
        exponent = (dimension - 5.0) / 2.0
        c2, wc = roots_jacobi(q_nodes, exponent, exponent)
        P, B, C = (a.ravel() for a in np.meshgrid(p, beta, c2, indexing="ij"))
        q = np.sqrt(1 - P ** 2)
        points = np.stack([P * np.cos(B), P * np.sin(B), q * C, q * np.sqrt(1 - C ** 2)], axis=-1)
        weights = (wp[:, None, None] * np.full(angle_nodes, 1.0 / angle_nodes)[None, :, None]
                   * (wc / wc.sum())[None, None, :]).ravel()
        return points, weights

    def frame_atoms(self, x: np.ndarray) -> np.ndarray:
        zero = np.zeros_like(x)
        return np.stack([x, zero, np.sqrt(1 - x ** 2), zero], axis=-1)

    def displacement_axes(self, base: np.ndarray) -> np.ndarray:
        """Pθ/p, the in-plane normal e_⊥θ (flipped by the stabiliser's reflection of the plane across Pθ) and
        (I − P)θ/q; the rest: the complement's direction orthogonal to (I − P)θ, which the stabiliser rotates
        freely over d − 3 dimensions."""
        axes = np.zeros(base.shape[:1] + (4, 4))
        plane, complement = _unit(base[:, :2]), _unit(base[:, 2:])
        axes[:, 0, :2] = plane
        axes[:, 1, 0], axes[:, 1, 1] = -plane[:, 1], plane[:, 0]
        axes[:, 2, 2:] = complement
        axes[:, 3, 2], axes[:, 3, 3] = -complement[:, 1], complement[:, 0]  # rest: ⊥ (I − P)θ in the complement
        return axes


#: in-plane angle nodes of the Circle's prediction (the ``chaos.angle_nodes`` default): at d = 32 the change
#: of e(t), c(t) from 16 to 32 nodes is < 1e-4 to t = 0.2 (from 8 to 16: up to 0.17)
DEFAULT_ANGLE_NODES = 16
SINGLE_INDEX = _SingleIndexGeometry()
CIRCLE = _CircleGeometry()


def time_steps(times: np.ndarray, dt: float) -> list[tuple[float, int]]:
    """For each output interval ``[t_k, t_{k+1}]`` the sub-step h <= dt and the number of sub-steps."""
    out = []
    for t0, t1 in zip(times[:-1], times[1:]):
        n = max(1, int(math.ceil((t1 - t0) / dt - 1e-12)))
        out.append(((t1 - t0) / n, n))
    return out


def march(state: tuple[np.ndarray, ...], times: np.ndarray, steps: list[tuple[float, int]],
          rhs: Callable[[float, tuple[np.ndarray, ...]], tuple[np.ndarray, ...]],
          after_step: Callable[[tuple[np.ndarray, ...]], tuple[np.ndarray, ...]] | None = None):
    """RK4 from output time to output time (``steps``: (h, n) per interval, :func:`time_steps`), with
    ``after_step`` (e.g. a projection back to the sphere) applied after every step; yields
    ``(k, state at times[k])``."""
    t = 0.0
    for k in range(times.size):
        if k > 0:
            h, count = steps[k - 1]
            for j in range(count):
                state = _rk4(state, t + j * h, h, rhs)
                if after_step is not None:
                    state = after_step(state)
            t = times[k]
        yield k, state


def _rk4(state: tuple[np.ndarray, ...], t: float, h: float,
         rhs: Callable[[float, tuple[np.ndarray, ...]], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """One classical Runge–Kutta step for a tuple of arrays."""
    k1 = rhs(t, state)
    k2 = rhs(t + h / 2, tuple(x + (h / 2) * k for x, k in zip(state, k1)))
    k3 = rhs(t + h / 2, tuple(x + (h / 2) * k for x, k in zip(state, k2)))
    k4 = rhs(t + h, tuple(x + h * k for x, k in zip(state, k3)))
    return tuple(x + (h / 6) * (a + 2 * b + 2 * c + d) for x, a, b, c, d in zip(state, k1, k2, k3, k4))


# --------------------------------------------------------------------------------------------
# Mean-field flow in s (the reduced problem's field) with passive points (the twins)
# --------------------------------------------------------------------------------------------


class MeanFieldFlow:
    """Reduced characteristics of the sphere problem: the nodes of ν_0 in s (:func:`sphere_quadrature`) carry masses;
    the field ``∂_sψ(s; p_t)`` comes from the problem (``reduced_potential_gradient`` plus the exact
    low-rank interaction), and any extra points (the twins) move passively in it."""

    def __init__(self, problem: Any, nodes: int = 256, schedule: Schedule | None = None,
                 rule: str = "quantile") -> None:
        self.problem = problem
        self.model = SphereHermiteModel.from_problem(problem)
        self.geometry = self.model.geometry
        self.nodes, self.masses = self.geometry.quadrature(self.model.dimension, _check_int("nodes", nodes, 2), rule)
        self.schedule = schedule or _constant_schedule

    def _clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.geometry.lower, 1.0)

    def _moments(self, nodes: np.ndarray) -> np.ndarray:
        kernel = self.problem.interaction_low_rank(self._clip(nodes)[:, None])
        return kernel.weights * (kernel.features @ self.masses)

    def field(self, nodes: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``∂_xψ(points; p)`` for the law p with atoms ``nodes`` carrying ``self.masses`` (x = s or p)."""
        x = self._clip(points)[:, None]
        gradient = np.reshape(self.problem.reduced_potential_gradient(x), (x.shape[0],))
        features = self.problem.interaction_features_gradient(x)
        return gradient + np.einsum("k,km->m", self._moments(nodes), np.reshape(features, features.shape[:2]))

    def velocity(self, t: float, nodes: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        both = np.concatenate([nodes, points])
        v = -2.0 * self.schedule(t) * (1.0 - both ** 2) * self.field(nodes, both)
        return v[: nodes.size], v[nodes.size:]

    def interaction_at(self, nodes: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``∫κ(⟨w, w'⟩) ν(dw')`` at points with ⟨w, θ*⟩ = s (exact low-rank form)."""
        kernel = self.problem.interaction_low_rank(self._clip(s).reshape(-1, 1))
        return (self._moments(nodes) @ kernel.features).reshape(np.shape(s))

    def risk(self, nodes: np.ndarray) -> tuple[float, float]:
        """``(L(ν), ∫∫κ dν dν)`` of the law with atoms ``nodes``."""
        kernel = self.problem.interaction_low_rank(self._clip(nodes)[:, None])
        moments = kernel.features @ self.masses
        interaction = float(kernel.weights @ moments ** 2)
        potential = float(self.masses @ self.model.v(nodes))
        return self.model.label_second_moment + 2 * potential + interaction, interaction


# --------------------------------------------------------------------------------------------
# Coupled runs: m-neuron gradient flow, seeds batched, against the mean-field twins
# --------------------------------------------------------------------------------------------

QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class CoupledRuns:
    """Measured gaps, shape (widths, seeds, times) unless stated."""

    time: np.ndarray
    widths: np.ndarray
    seeds: np.ndarray
    function_gap_squared: np.ndarray  # E_t² (exact through the kernel)
    coupling_mean: np.ndarray  # mean_i |w_i − w̄_i|
    coupling_rms: np.ndarray  # (mean_i |w_i − w̄_i|²)^{1/2}
    coupling_quantiles: np.ndarray  # (W, S, T, Q) at QUANTILES
    network_risk: np.ndarray  # L_m
    mean_field_risk: np.ndarray  # (T,) L(ν_t)
    twin_fluctuation: np.ndarray  # 2∫Ψ(·; ν_t) d(ρ̄^m_t − ν_t), ρ̄^m the twins' empirical measure: mean 0
    quantiles: tuple[float, ...] = QUANTILES
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def function_gap(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.function_gap_squared, 0.0))

    @property
    def risk_excess(self) -> np.ndarray:
        """``L_m − L(ν_t)`` per (m, seed, t)."""
        return self.network_risk - self.mean_field_risk

    @property
    def risk_excess_controlled(self) -> np.ndarray:
        """``L_m − L(ν_t) − 2∫Ψ(·; ν_t) d(ρ̄^m_t − ν_t)``: the same mean (the twins ``w̄_i(t) = Φ_t(w_i(0))``
        are iid ν_t, so the subtracted control variate has mean zero exactly), but the O(m^{−1/2})
        seed-to-seed fluctuation of the linear term is largely cancelled by its twin counterpart."""
        return self.risk_excess - self.twin_fluctuation

    def scaled_mean(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Seed mean and standard error of ``m ·`` the attribute ``name`` (e.g. ``"function_gap_squared"``,
        ``"risk_excess_controlled"``: the quantities whose limits are e(t) and c(t)), shape (W, T) each."""
        return self.seed_mean(self.widths[:, None, None] * getattr(self, name))

    def seed_mean(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean over seeds and its standard error (axis 1), shape (W, T) each."""
        n = values.shape[1]
        se = values.std(axis=1, ddof=1) / math.sqrt(n) if n > 1 else np.full(values.mean(axis=1).shape, np.nan)
        return values.mean(axis=1), se


def _check_step(nodes: np.ndarray, twins: np.ndarray, dt: float) -> None:
    """The exact reduced flow keeps s in [−1, 1] (mobility 1 − s²); an RK4 step that leaves it is unstable."""
    worst = max(float(np.max(np.abs(nodes))), float(np.max(np.abs(twins), initial=0.0)))
    if not worst <= 1.0 + 1e-9:
        raise ValueError(f"chaos.dt = {dt!r} is too large: an RK4 step of the reduced flow left s ∈ [−1, 1] "
                         f"(|s| = {worst:.6g}); use a smaller dt")


def _initial_neurons(dimension: int, width: int, seeds: Sequence[int]) -> np.ndarray:
    """(S, m, d) iid uniform on S^{d−1}; seed (seed, m) through a SeedSequence, θ* = e_1."""
    out = np.empty((len(seeds), width, dimension))
    for k, seed in enumerate(seeds):
        g = np.random.default_rng([int(seed), int(width)]).standard_normal((width, dimension))
        out[k] = g / np.linalg.norm(g, axis=1, keepdims=True)
    return out


#: entries of one Gram tile (seeds × rows × m) of the m-neuron flow: it never holds the S × m × m Gram
#: blocks, only row tiles of ``b = max(1, ⌊GRAM_TILE_ENTRIES / (S m)⌋)`` rows (:func:`gram_row_tiles`), so its
#: memory is O(S b m + S m d), not O(S m²): 2^22 entries = 32 MiB per tile in float64
GRAM_TILE_ENTRIES = 2**22
#: the same on a CUDA device (finite_width_torch: 256 MiB per tile in float32)
GRAM_TILE_ENTRIES_CUDA = 2**26


def gram_row_tiles(seeds: int, width: int, tile_entries: int | None = None) -> list[slice]:
    """Row blocks ``i ∈ [r, r + b)`` of the (S, m, m) Gram blocks, ``b = max(1, min(m, ⌊E / (S m)⌋))`` with
    E = ``tile_entries`` (default :data:`GRAM_TILE_ENTRIES`): one tile holds at most ``max(E, S m)`` entries
    (at b = 1 it is smaller than W itself)."""
    rows = gram_tile_rows(seeds, width, tile_entries)
    return [slice(r, min(r + rows, width)) for r in range(0, width, rows)]


def gram_tile_rows(seeds: int, width: int, tile_entries: int | None = None) -> int:
    """Rows ``b = max(1, min(m, ⌊E / (S m)⌋))`` of one Gram tile (:func:`gram_row_tiles`), without forming
    the tiles (the resource estimate asks it for any width)."""
    entries = GRAM_TILE_ENTRIES if tile_entries is None else int(tile_entries)
    return max(1, min(width, entries // max(1, seeds * width)))


def _network_velocity(model: SphereHermiteModel, xi: float, w: np.ndarray) -> np.ndarray:
    """``−2ξ P_w ∇_1Ψ(w_i; ρ^m)`` for W of shape (S, m, d), θ* = e_1 (Gram blocks in row tiles,
    :func:`gram_row_tiles`)."""
    seeds, m = w.shape[:2]
    w_transposed = np.swapaxes(w, 1, 2)
    grad = np.empty_like(w)
    for rows in gram_row_tiles(seeds, m):
        grad[:, rows] = model.kappa_prime(w[:, rows] @ w_transposed) @ w
    grad /= m
    model.geometry.add_potential_gradient(model, w, grad)
    radial = np.einsum("smd,smd->sm", grad, w)
    return -2.0 * xi * (grad - radial[..., None] * w)


def _kernel_mean(model: SphereHermiteModel, w: np.ndarray) -> np.ndarray:
    """``(1/m²) Σ_ij κ(G_ij)`` per seed for W (S, m, d) (row tiles of the Gram blocks)."""
    seeds, m = w.shape[:2]
    w_transposed = np.swapaxes(w, 1, 2)
    total = np.zeros(seeds)
    for rows in gram_row_tiles(seeds, m):
        total += model.kappa(w[:, rows] @ w_transposed).sum(axis=(1, 2))
    return total / m ** 2


def _network_measures(model: SphereHermiteModel, flow: MeanFieldFlow, nodes: np.ndarray, w: np.ndarray,
                      interaction_nu: float, kernel_mean: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(E_t², L_m) per seed for W (S, m, d); ``kernel_mean``: ``(1/m²) Σ_ij κ(G_ij)`` if a backend computed it."""
    self_term = _kernel_mean(model, w) if kernel_mean is None else kernel_mean
    x = model.geometry.invariant(w)
    cross = flow.interaction_at(nodes, x).mean(axis=1)
    gap_sq = self_term - 2 * cross + interaction_nu
    risk = model.label_second_moment + 2 * model.v(x).mean(axis=1) + self_term
    return gap_sq, risk


class _NumpyNetwork:
    """The O(m² d) part of the coupled runs (velocity and ``Σ κ(G_ij)``) in NumPy float64 on the CPU: the
    default backend.  A backend maps W (S, m, d) to its own arrays (``array``/``host``) and provides the
    velocity, the renormalisation and the kernel mean on them (:mod:`reduced_pde.analysis.finite_width_torch`)."""

    name, device, precision = "numpy", "cpu", "float64"

    def __init__(self, model: SphereHermiteModel) -> None:
        self.model = model

    def array(self, w: np.ndarray) -> np.ndarray:
        return w

    def host(self, w: np.ndarray) -> np.ndarray:
        return w

    def velocity(self, xi: float, w: np.ndarray) -> np.ndarray:
        return _network_velocity(self.model, xi, w)

    def normalise(self, w: np.ndarray) -> np.ndarray:
        return w / np.linalg.norm(w, axis=-1, keepdims=True)

    def kernel_mean(self, w: np.ndarray) -> np.ndarray:
        return _kernel_mean(self.model, w)


BACKENDS = ("numpy", "torch")


def check_backend(backend: str = "numpy", device: str = "cpu", precision: str = "float64") -> None:
    """Refuse (one-line ValueError naming the key) a backend, device or precision that cannot run here:
    NumPy runs on the CPU in float64 only; PyTorch must be installed and see ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"chaos.backend = {backend!r} is not allowed; allowed: {list(BACKENDS)}")
    if precision not in ("float64", "float32"):
        raise ValueError(f"chaos.precision = {precision!r} is not allowed; allowed: ['float64', 'float32']")
    if backend == "numpy":
        if device != "cpu" or precision != "float64":
            raise ValueError(f"chaos.device = {device!r} with chaos.precision = {precision!r}: chaos.backend = "
                             "'numpy' runs on 'cpu' in 'float64' only; set chaos.backend = 'torch' for another "
                             "device or float32")
        return
    from reduced_pde.analysis.finite_width_torch import load_torch

    load_torch(device)


def network_backend(model: SphereHermiteModel, backend: str = "numpy", device: str = "cpu",
                    precision: str = "float64") -> Any:
    """The backend of the m-neuron flow (``chaos.backend``, ``chaos.device``, ``chaos.precision``): NumPy float64
    on the CPU, or PyTorch (optional, ``pip install ".[gpu]"``) on any device in float64 or float32."""
    check_backend(backend, device, precision)
    if backend == "torch":
        from reduced_pde.analysis.finite_width_torch import TorchNetwork

        return TorchNetwork(model, device, precision)
    return _NumpyNetwork(model)


def coupled_runs(problem: Any, widths: Sequence[int], seeds: Sequence[int], times: Any, *,
                 dt: float = 1e-3, nodes: int = 256, schedule: Schedule | None = None, rule: str = "quantile",
                 progress: Callable[[str], None] | None = None, backend: str = "numpy", device: str = "cpu",
                 precision: str = "float64") -> CoupledRuns:
    """Gradient flow of m-neuron networks (m in ``widths``, one batch of ``len(seeds)`` networks per m,
    iid uniform initial neurons) coupled to their mean-field twins, RK4 with sub-steps <= dt and the
    neurons renormalised to |w| = 1 after each step (the exact flow keeps |w| = 1).  ``backend``,
    ``device``, ``precision``: where the O(m² d) part runs (:func:`network_backend`); the mean-field flow,
    the twins and the per-output measures stay NumPy float64 (the neurons copied to it at output times)."""
    model = SphereHermiteModel.from_problem(problem)
    network = network_backend(model, backend, device, precision)
    times = _check_times(times)
    dt = _check_positive("chaos.dt", dt)
    widths = [_check_int("chaos.widths", m, 1) for m in widths]
    seeds = [_check_int("chaos.seeds", s, 0) for s in seeds]
    if not widths or not seeds:
        raise ValueError(f"chaos.widths = {widths!r} and chaos.seeds = {seeds!r} must be non-empty")
    flow = MeanFieldFlow(problem, nodes, schedule, rule)
    steps = time_steps(times, dt)
    shape = (len(widths), len(seeds), times.size)
    gap_sq, risk, c_mean, c_rms, control = (np.empty(shape) for _ in range(5))
    c_q = np.empty(shape + (len(QUANTILES),))
    mf_risk = np.empty(times.size)
    for iw, m in enumerate(widths):
        w = network.array(_initial_neurons(model.dimension, m, seeds))
        w0 = network.host(w)  # the backend's (possibly float32) initial neurons: the twins start on them
        s0 = model.geometry.invariant(w0).copy()
        anchor, ortho = model.geometry.twin_frame(w0)
        state = (w, flow.nodes.copy(), s0.ravel().copy())

        def rhs(t: float, y: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
            v_network = network.velocity(flow.schedule(t), y[0])  # on a GPU: queued, runs beside the next line
            v_nodes, v_twins = flow.velocity(t, y[1], y[2])
            return v_network, v_nodes, v_twins

        def project(y: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
            _check_step(y[1], y[2], dt)
            return network.normalise(y[0]), y[1], y[2]

        for k, (w_state, nodes_t, twins) in march(state, times, steps, rhs, project):
            mf_risk[k], interaction = flow.risk(nodes_t)
            w_t = network.host(w_state)
            gap_sq[iw, :, k], risk[iw, :, k] = _network_measures(model, flow, nodes_t, w_t, interaction,
                                                                 network.kernel_mean(w_state))
            sbar = np.clip(twins.reshape(s0.shape), model.geometry.lower, 1.0)
            potential_twins = model.v(sbar) + flow.interaction_at(nodes_t, sbar)
            potential_nu = flow.masses @ (model.v(nodes_t) + flow.interaction_at(nodes_t, nodes_t))
            control[iw, :, k] = 2 * (potential_twins.mean(axis=1) - potential_nu)
            twin = np.sqrt(1.0 - sbar ** 2)[..., None] * ortho + sbar[..., None] * anchor
            dist = np.linalg.norm(w_t - twin, axis=-1)
            c_mean[iw, :, k] = dist.mean(axis=1)
            c_rms[iw, :, k] = np.sqrt((dist ** 2).mean(axis=1))
            c_q[iw, :, k] = np.quantile(dist, QUANTILES, axis=1).T
        if progress is not None:
            progress(f"m = {m}: done")
    config = {"widths": list(widths), "seeds": list(seeds), "dt": dt, "nodes": nodes, "rule": rule,
              "backend": network.name, "device": network.device, "precision": network.precision, **model.config()}
    return CoupledRuns(times, np.array(widths), np.array(seeds), gap_sq, c_mean, c_rms, c_q, risk, mf_risk,
                       control, config=config)


# --------------------------------------------------------------------------------------------
# Prediction: e(t) and c(t) from the flow of (1 − ε)ν_0 + εδ_w in (s, q)
# --------------------------------------------------------------------------------------------


@dataclass
class FluctuationPrediction:
    """``e(t) = lim m E[E_t²]``, ``c(t) = lim m (E L_m − L(ν_t))`` and ``L(ν_t)`` of the 2-D computation."""

    time: np.ndarray
    function_gap: np.ndarray  # e(t)
    risk_excess: np.ndarray  # c(t)
    mean_field_risk: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    #: ``atom_rule = "adapted"``: |Kronrod − embedded Gauss| of the atom integral, per time (else None)
    function_gap_error: np.ndarray | None = None
    risk_excess_error: np.ndarray | None = None
    #: the coupling gap's limits (None where the model's prediction does not compute them):
    #: ``lim √m (E|θ_i(t) − θ̄_i(t)|²)^{1/2}`` and ``lim √m E|θ_i(t) − θ̄_i(t)|`` (T,), and the limits of
    #: √m × the quantiles at :data:`QUANTILES` of |θ_i − θ̄_i| over the neurons (T, Q)
    coupling_rms: np.ndarray | None = None
    coupling_mean: np.ndarray | None = None
    coupling_quantiles: np.ndarray | None = None
    #: ``atom_rule = "adapted"``: |Kronrod − embedded Gauss| of coupling_rms and coupling_mean (else None)
    coupling_rms_error: np.ndarray | None = None
    coupling_mean_error: np.ndarray | None = None

    #: the per-time arrays (first axis = time) a prediction may carry, in the order stored
    ARRAYS = ("function_gap", "risk_excess", "mean_field_risk", "function_gap_error", "risk_excess_error",
              "coupling_rms", "coupling_mean", "coupling_quantiles", "coupling_rms_error", "coupling_mean_error")

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-time arrays that are present (not None), by name."""
        return {name: np.asarray(getattr(self, name)) for name in self.ARRAYS if getattr(self, name) is not None}


@njit(cache=True)
def _frame_moments(x, weights, atom, atom_mass, exponents, top):  # pragma: no cover - compiled
    """Σ_n weights[b, n] Π_i x_i^{exponents[f, i]} (+ the atom), shape (B, F); x (B, M, D)."""
    B, M = weights.shape
    D = x.shape[2]
    F = exponents.shape[0]
    out = np.zeros((B, F))
    p = np.empty((D, top + 1))
    for b in range(B):
        for n in range(M + 1):
            if n < M:
                w = weights[b, n]
                y = x[b, n]
            else:
                w = atom_mass[b]
                y = atom[b]
            for i in range(D):
                p[i, 0] = 1.0
                for k in range(1, top + 1):
                    p[i, k] = p[i, k - 1] * y[i]
            for f in range(F):
                value = w
                for i in range(D):
                    value *= p[i, exponents[f, i]]
                out[b, f] += value
    return out


@njit(cache=True)
def _frame_gradient(x, coefficient_moments, exponents, top):  # pragma: no cover - compiled
    """∇ Σ_f coefficient_moments[b, f] Π_i x_i^{exponents[f, i]} at x (B, M, D)."""
    B, M, D = x.shape
    F = exponents.shape[0]
    out = np.zeros((B, M, D))
    p = np.empty((D, top + 1))
    g = np.empty(D)
    for b in range(B):
        for n in range(M):
            for i in range(D):
                p[i, 0] = 1.0
                for k in range(1, top + 1):
                    p[i, k] = p[i, k - 1] * x[b, n, i]
                g[i] = 0.0
            for f in range(F):
                c = coefficient_moments[b, f]
                if c == 0.0:
                    continue
                for i in range(D):
                    e = exponents[f, i]
                    if e == 0:
                        continue
                    value = c * e * p[i, e - 1]
                    for j in range(D):
                        if j != i:
                            value *= p[j, exponents[f, j]]
                    g[i] += value
            for i in range(D):
                out[b, n, i] = g[i]
    return out


def _compositions(total: int, parts: int) -> list[tuple[int, ...]]:
    if parts == 1:
        return [(total,)]
    return [(first,) + rest for first in range(total + 1) for rest in _compositions(total - first, parts - 1)]


class _FrameFeatures:
    """Low-rank form of ``E_c κ(Σ_i y_i y_i' + ρρ'c)`` (y the first D − 1 frame coordinates, c the cosine of
    two uniform directions of R^{n}, n = the geometry's residual dimension): ``Σ_f C_f φ_f(x) φ_f(x')``
    with ``φ_f = Π_i y_i^{e_i} ρ^l`` (l even, |e| + l = k) and ``C_f = κ_k C(k, l) E[c^l] (|e|; e)``
    (multinomial coefficient) >= 0 — the binomial theorem, then the multinomial one; odd moments of c
    vanish.  For the single-index frame (D = 3) this is ``C_{abl} = κ_k C(k, l) E[c^l] C(a + b, a)``."""

    def __init__(self, model: SphereHermiteModel) -> None:
        K = model.degree
        D = model.geometry.frame_size
        m_l = cosine_moments(float(model.geometry.residual_dimension(model.dimension)), K)
        rows, coefficients = [], []
        for k in range(K + 1):
            if model.kernel[k] == 0.0:
                continue
            for l in range(0, k + 1, 2):
                for e in _compositions(k - l, D - 1):
                    multinomial = math.factorial(k - l) / math.prod(math.factorial(i) for i in e)
                    c = model.kernel[k] * comb(k, l) * m_l[l] * multinomial
                    if c > 0:
                        rows.append(e + (l,))
                        coefficients.append(c)
        self.exponents = np.array(rows, dtype=np.int64).reshape(-1, D)
        self.coefficient = np.array(coefficients)
        self.top = K

    def moments(self, x: np.ndarray, weights: np.ndarray, atom: np.ndarray, atom_mass: np.ndarray) -> np.ndarray:
        """``∫φ_f dμ`` (B, F) for μ = Σ_n weights[b, n] δ_{x[b, n]} + atom_mass[b] δ_{atom[b]}; x (B, M, D)."""
        return _frame_moments(x, weights, atom, atom_mass, self.exponents, self.top)

    def gradient(self, x: np.ndarray, moments: np.ndarray) -> np.ndarray:
        """``∇_x Σ_f C_f moments_f φ_f(x)`` in the frame coordinates, x (B, M, D) → (B, M, D)."""
        return _frame_gradient(x, self.coefficient * moments, self.exponents, self.top)

    def quadratic(self, moments: np.ndarray) -> np.ndarray:
        return (moments ** 2) @ self.coefficient


#: Gauss–Kronrod (7, 15) on [−1, 1] (QUADPACK's qk15): the non-negative Kronrod nodes (descending), their
#: weights, and the weights of the 7-point Gauss rule on its nodes ±0.949…, ±0.741…, ±0.405…, 0 (every other
#: Kronrod node).  K15 is exact for polynomials of degree <= 22, G7 for degree <= 13 (tested).
_KRONROD_HALF = np.array([0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
                          0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
                          0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
                          0.207784955007898467600689403773245, 0.0])
_KRONROD_WEIGHTS_HALF = np.array([0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
                                  0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
                                  0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
                                  0.204432940075298892414161999234649, 0.209482141084727828012999174891714])
_GAUSS7_WEIGHTS_HALF = np.array([0.129484966168869693270611432679082, 0.279705391489276667901467771423780,
                                 0.381830050505118944950369775488975, 0.417959183673469387755102040816327])
#: atoms per panel of the adapted rule
KRONROD_NODES = 15
#: quantile nodes of the 1-D flow map that places the adapted rule's panels (``chaos.monitor_nodes``)
DEFAULT_MONITOR_NODES = 2048


def gauss_kronrod_15() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 15 Kronrod nodes on [−1, 1] (ascending), their weights, and the 7-point Gauss weights on the same
    nodes (zero at the 8 Kronrod-only nodes)."""
    nodes = np.concatenate([-_KRONROD_HALF[:-1], [0.0], _KRONROD_HALF[-2::-1]])
    kronrod = np.concatenate([_KRONROD_WEIGHTS_HALF, _KRONROD_WEIGHTS_HALF[-2::-1]])
    gauss = np.zeros(KRONROD_NODES)
    gauss[[1, 3, 5, 7, 9, 11, 13]] = np.concatenate([_GAUSS7_WEIGHTS_HALF, _GAUSS7_WEIGHTS_HALF[-2::-1]])
    return nodes, kronrod, gauss


def flow_map_panels(problem: Any, times: Any, panels: int, *, lower: float = 0.0, nodes: int = 2048,
                    dt: float = 1e-3, schedule: Schedule | None = None) -> np.ndarray:
    """Edges of ``panels`` panels in the probability u ∈ [lower, 1] of the invariant x (s, or p for the Circle)
    under ν_0 that equidistribute the monitor

        m(u) = 1 + Σ_{k: t_k > 0} |∂_u x_{t_k}(u)| / (1 − x_min),

    x_t(u) the mean-field flow map of the quantile u (the 1-D reduced characteristics of
    :class:`MeanFieldFlow`, ``nodes`` quantile nodes, RK4 with sub-steps <= dt) and x_min the lower end of
    the invariant's range.  The constant spreads panels over the mass (the quantile rule); each output time
    adds the variation of its flow map, so that the front where x_t(u) jumps (neurons escaping at t) gets
    panels of width ∝ 1/|∂_u x_t| — the width of the step of e_w and of the spike of c_w there
    (``docs/finite_width.md`` §3.1)."""
    panels = _check_int("chaos.atoms // 15 (panels)", panels, 1)
    times = _check_times(times)
    flow = MeanFieldFlow(problem, _check_int("nodes", nodes, 2), schedule, "quantile")
    u = (roots_legendre(nodes)[0] + 1.0) / 2.0
    density = np.ones(nodes - 1)
    state = (flow.nodes.copy(), np.zeros(0))
    for k, (x, _) in march(state, times, time_steps(times, _check_positive("chaos.dt", dt)),
                           lambda t, y: flow.velocity(t, *y)):
        if k > 0:
            density += np.abs(np.diff(x)) / np.diff(u) / (1.0 - flow.geometry.lower)
    grid = np.concatenate([[0.0], u, [1.0]])
    cumulative = np.concatenate([[0.0], np.cumsum(np.concatenate([[1.0], density, [1.0]]) * np.diff(grid))])
    low, high = np.interp([lower, 1.0], grid, cumulative)
    edges = np.interp(np.linspace(low, high, panels + 1), cumulative, grid)
    edges[0], edges[-1] = lower, 1.0
    return edges


def panel_rule(geometry: IndexGeometry, dimension: int, edges: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Composite Gauss–Kronrod (7, 15) in u on the panels ``edges``: the invariant at the nodes
    ``x = F^{−1}(u)``, the Kronrod weights and the embedded Gauss weights (each summing to the covered
    probability ``edges[-1] − edges[0]``)."""
    nodes, kronrod, gauss = gauss_kronrod_15()
    middle, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    u = (middle[:, None] + half[:, None] * nodes[None, :]).ravel()
    return (geometry.quantile(dimension, u), (half[:, None] * kronrod[None, :]).ravel(),
            (half[:, None] * gauss[None, :]).ravel())


def predict_fluctuations(problem: Any, times: Any, *, atoms: int = 16, s_nodes: int = 48, q_nodes: int = 24,
                         dt: float = 1e-3, epsilon: float = 1e-3, schedule: Schedule | None = None,
                         use_symmetry: bool = True, rule: str = "quantile",
                         angle_nodes: int = DEFAULT_ANGLE_NODES, atom_rule: str | None = None,
                         monitor_nodes: int = DEFAULT_MONITOR_NODES) -> FluctuationPrediction:
    """e(t) and c(t) (module doc; ``docs/finite_width.md``).

    For each atom position x_w (``atoms`` nodes of the geometry's rule for the invariant: s = ⟨w, θ*⟩,
    or p = |Pw| for the Circle) and ε ∈ {−epsilon, 0, +epsilon}, the measure ``(1 − ε)ν_0 + εδ_w`` is
    carried by a product rule in the frame of the geometry (:meth:`IndexGeometry.frame_rule`; single
    index: s × c₂ with ``q = sqrt(1 − s²) c₂``, Gauss–Jacobi in c₂ with density ∝ (1 − c₂²)^{(d−4)/2};
    Circle: p × in-plane angle (``angle_nodes``) × complement cosine) and the atom, all moving by the
    projected gradient of ``Ψ(·; μ)`` in the frame coordinates (RK4, renormalised to the sphere).  Then
    ``e = Σ_w ω_w ‖(f_+ − f_−)/(2ε)‖²`` and ``c = ½ Σ_w ω_w (R_+ − 2R_0 + R_−)/ε²`` (central
    differences: relative error O(ε²)).  Single index with v even (and ``atoms`` even): the atoms at
    −s_w are the images of those at s_w under θ → −θ (ν_0 and U are invariant, V is then too): only
    s_w > 0 is computed, with doubled weights (``use_symmetry``).

    ``atom_rule`` (default: ``rule``) = ``"adapted"`` replaces the atoms' rule by composite Gauss–Kronrod (7, 15)
    in the probability of x_w on ``atoms // 15`` panels (``atoms`` a multiple of 15, of 30 with the symmetry)
    that equidistribute the variation of the mean-field flow map at the output times (:func:`flow_map_panels`,
    ``monitor_nodes`` nodes): the integrands of e and c have a step and a spike where the atom sits on the
    escape front (docs §3.1).  The embedded Gauss rule gives ``function_gap_error``, ``risk_excess_error``."""
    monitor_nodes = _check_int("chaos.monitor_nodes", monitor_nodes, 2)
    if atom_rule != "adapted" and monitor_nodes != DEFAULT_MONITOR_NODES:
        raise ValueError(f"chaos.monitor_nodes = {monitor_nodes!r} is used only by chaos.atom_rule = 'adapted' "
                         f"(atom_rule = {atom_rule or rule!r}); leave it at {DEFAULT_MONITOR_NODES}")
    model = SphereHermiteModel.from_problem(problem)
    geometry = model.geometry
    times = _check_times(times)
    dt = _check_positive("chaos.dt", dt)
    eps = _check_positive("chaos.epsilon", epsilon)
    schedule = schedule or _constant_schedule
    d = model.dimension
    if d < geometry.frame_size + 1:
        raise ValueError(f"data.dimension = {d} must be >= {geometry.frame_size + 1} for the frame reduction "
                         f"of the {geometry.name} geometry")
    if not geometry.has_angle and angle_nodes != DEFAULT_ANGLE_NODES:
        raise ValueError(f"chaos.angle_nodes = {angle_nodes!r} is used only by data.model = 'circle_sphere' "
                         f"(the {geometry.name} frame has no in-plane angle); leave it at {DEFAULT_ANGLE_NODES}")
    features = _FrameFeatures(model)
    base, base_weights = geometry.frame_rule(d, _check_int("chaos.s_nodes", s_nodes, 2),
                                             _check_int("chaos.q_nodes", q_nodes, 2),
                                             _check_int("chaos.angle_nodes", angle_nodes, 2), rule)
    atoms = _check_int("chaos.atoms", atoms, 1)
    atom_rule = rule if atom_rule is None else atom_rule
    even = not np.any(model.potential[1::2])
    symmetric = use_symmetry and even and atoms % 2 == 0 and geometry.lower < 0
    w_gauss = None
    if atom_rule == "adapted":
        computed = atoms // 2 if symmetric else atoms
        if computed % KRONROD_NODES:
            raise ValueError(f"chaos.atoms = {atoms!r} must be a multiple of {KRONROD_NODES * (2 if symmetric else 1)} "
                             f"with chaos.atom_rule = 'adapted' ({KRONROD_NODES} Gauss–Kronrod nodes per panel"
                             f"{', on the half s_w > 0 (even potential)' if symmetric else ''})")
        edges = flow_map_panels(problem, times, computed // KRONROD_NODES, lower=0.5 if symmetric else 0.0,
                                nodes=monitor_nodes, dt=dt, schedule=schedule)
        s_atoms, w_atoms, w_gauss = panel_rule(geometry, d, edges)
        if symmetric:
            w_atoms, w_gauss = 2.0 * w_atoms, 2.0 * w_gauss
    elif atom_rule in RULES:
        s_atoms, w_atoms = geometry.quadrature(d, atoms, atom_rule)
        if symmetric:
            keep = s_atoms > 0
            s_atoms, w_atoms = s_atoms[keep], 2.0 * w_atoms[keep]
    else:
        raise ValueError(f"chaos.atom_rule = {atom_rule!r} is not allowed; allowed: {list(RULES) + ['adapted']}")
    e_atoms, c_atoms, risk0, second, rest = atom_responses(model, features, base, base_weights, s_atoms, times,
                                                           dt, eps, schedule, groups=s_nodes)
    e, c = e_atoms @ w_atoms, c_atoms @ w_atoms
    errors = (None, None) if w_gauss is None else (np.abs(e - e_atoms @ w_gauss), np.abs(c - c_atoms @ w_gauss))
    group_weights = base_weights.reshape(s_nodes, -1).sum(axis=1)
    coupling = coupling_limits(geometry, d, group_weights, second, rest, w_atoms, symmetric)
    coupling_errors = (None, None)
    if w_gauss is not None:
        gauss = coupling_limits(geometry, d, group_weights, second, rest, w_gauss, symmetric, quantiles=False)
        coupling_errors = (np.abs(coupling[0] - gauss[0]), np.abs(coupling[1] - gauss[1]))
    config = {"atoms": atoms, "s_nodes": s_nodes, "q_nodes": q_nodes, "dt": dt, "epsilon": eps, "rule": rule,
              "atom_rule": atom_rule, **({"monitor_nodes": monitor_nodes} if atom_rule == "adapted" else {}),
              **({"angle_nodes": angle_nodes} if geometry is CIRCLE else {}), **model.config()}
    return FluctuationPrediction(times, e, c, risk0, config, *errors, *coupling, *coupling_errors)


def coupling_limits(geometry: IndexGeometry, dimension: int, group_weights: np.ndarray, second: np.ndarray,
                    rest: np.ndarray, atom_weights: np.ndarray, symmetric: bool, quantiles: bool = True
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The coupling gap's m → ∞ limits (docs §7) from :func:`atom_responses`' displacement sums ``second``
    (T, A, X, K, K) and ``rest`` (T, A, X): with the atoms' weights, the conditional covariance of
    ``√m(θ_i − θ̄_i)`` given θ_i's invariant node x is ``C(x) = A(x) ⊕ λ(x) I_n`` in θ's own axes,
    ``A(x) = Σ_w ω_w second[·, w, x] / ω_x``, ``λ(x) = Σ_w ω_w rest[·, w, x] / (n ω_x)``, n the isotropic
    block's dimension (:meth:`IndexGeometry.displacement_rest_dimension`), ω_x = ``group_weights``.
    ``symmetric`` (only atoms with x_w > 0 computed, weights doubled): the atom −w at θ is the mirror image of
    w at −θ (node X − 1 − x), ``A(x) ← ½(A(x) + S A(X−1−x) S)``, S = diag(mirror_signs), λ likewise.
    Returns (per time) the rms ``(E|g|²)^{1/2} = (Σ_x ω_x tr C(x))^{1/2}``, the mean ``Σ_x ω_x E|N(0, C(x))|``
    and the quantiles at :data:`QUANTILES` of |N(0, C(x))| under the mixture over x (None if not
    ``quantiles``) (:mod:`reduced_pde.analysis.gaussian_norms`)."""
    from reduced_pde.analysis.gaussian_norms import mixture_norm_limits

    block = np.einsum("a,taxkl->txkl", atom_weights, second)
    spread = np.einsum("a,tax->tx", atom_weights, rest)
    if symmetric:
        flip = np.asarray(geometry.mirror_signs)
        block = 0.5 * (block + flip[:, None] * block[:, ::-1] * flip[None, :])
        spread = 0.5 * (spread + spread[:, ::-1])
    n = geometry.displacement_rest_dimension(dimension)
    own = np.linalg.eigvalsh(block / group_weights[None, :, None, None])
    eigenvalues = np.concatenate([np.maximum(own, 0.0), (spread / group_weights / n)[..., None]], axis=-1)
    multiplicities = np.concatenate([np.ones(own.shape[-1]), [float(n)]])
    return mixture_norm_limits(group_weights, eigenvalues, multiplicities, QUANTILES if quantiles else None)


def atom_responses(model: SphereHermiteModel, features: "_FrameFeatures", base: np.ndarray,
                   base_weights: np.ndarray, x_atoms: np.ndarray, times: np.ndarray, dt: float, eps: float,
                   schedule: Schedule, groups: int | None = None) -> tuple[np.ndarray, ...]:
    """The integrands of e and c at each atom position: for the atom δ_w at invariant ``x_atoms[j]`` and
    ``(1 − ε)ν_0 + εδ_w`` (ν_0 the frame rule ``base``, ``base_weights``) moved by the projected gradient of
    ``Ψ(·; μ)`` (RK4 with sub-steps <= dt, renormalised to the sphere), returns per output time

        e_w = ‖(f_{+ε} − f_{−ε})/(2ε)‖²,   c_w = ½(R_{+ε} − 2R_0 + R_{−ε})/ε²,

    arrays (T, A), and ``R_0 = L(ν_t)`` (T,) — so that ``e(t) = ∫e_w dν_0(w)``, ``c(t) = ∫c_w dν_0(w)``.

    ``groups`` (the number of invariant nodes of ``base``, the slowest axis of the product rule): also the
    displacement of each node θ of ν_0, ``g_t(θ, w) = (X_{+ε} − X_{−ε})/(2ε)`` (its characteristic under the
    perturbed field; frame coordinates are orthonormal coordinates of R^d, docs §7), split into the
    components on θ's own axes (:meth:`IndexGeometry.displacement_axes`, K = D − 1 of them) and the square of
    the rest component, summed with ``base_weights`` over the nodes of each invariant group: two more arrays,
    ``second`` (T, A, groups, K, K) ``= Σ_n ω_n g_a g_b`` and ``rest`` (T, A, groups) ``= Σ_n ω_n |g_rest|²``."""
    geometry = model.geometry
    n_atoms = x_atoms.size
    signs = np.concatenate([np.zeros(1), np.full(n_atoms, 1.0), np.full(n_atoms, -1.0)])
    mass = eps * signs  # batch: [unperturbed, +ε per atom, −ε per atom]
    atom0 = geometry.frame_atoms(np.concatenate([[0.0], x_atoms, x_atoms]))  # (B, D)
    weights = (1.0 - mass)[:, None] * base_weights[None, :]
    x0 = np.broadcast_to(base, (mass.size,) + base.shape).copy()

    def velocity(t: float, x: np.ndarray, atom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        moments = features.moments(x, weights, atom, mass)
        both = np.concatenate([x, atom[:, None, :]], axis=1)
        g = features.gradient(both, moments)
        geometry.add_potential_gradient(model, both, g)
        radial = np.sum(g * both, axis=-1, keepdims=True)
        v = -2.0 * schedule(t) * (g - radial * both)
        return v[:, :-1], v[:, -1]

    def measures(x: np.ndarray, atom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        moments = features.moments(x, weights, atom, mass)
        potential = (np.einsum("bm,bm->b", weights, model.v(geometry.frame_invariant(x)))
                     + mass * model.v(geometry.frame_invariant(atom)))
        return moments, model.label_second_moment + 2 * potential + features.quadratic(moments)

    def renormalise(y: np.ndarray) -> np.ndarray:
        return y / np.linalg.norm(y, axis=-1, keepdims=True)

    steps = time_steps(times, dt)
    e = np.empty((times.size, n_atoms))
    c = np.empty((times.size, n_atoms))
    risk0 = np.empty(times.size)
    plus, minus = slice(1, 1 + n_atoms), slice(1 + n_atoms, None)
    if groups is not None:
        axes = geometry.displacement_axes(base)  # (M, D, D): K = D − 1 own axes, then the rest
        second = np.empty((times.size, n_atoms, groups) + (axes.shape[1] - 1,) * 2)
        rest = np.empty((times.size, n_atoms, groups))
        grouped = (groups, base.shape[0] // groups)
    for k, state in march((x0, atom0), times, steps, lambda tt, y: velocity(tt, *y),
                          lambda y: (renormalise(y[0]), renormalise(y[1]))):
        moments, risk = measures(*state)
        e[k] = features.quadratic((moments[plus] - moments[minus]) / (2 * eps))
        c[k] = 0.5 * (risk[plus] - 2 * risk[0] + risk[minus]) / eps ** 2
        risk0[k] = risk[0]
        if groups is not None:
            g = (state[0][plus] - state[0][minus]) / (2 * eps)  # (A, M, D)
            components = np.einsum("amd,mkd->amk", g, axes)
            own = components[..., :-1]
            second[k] = np.einsum("amk,aml->amkl", own * base_weights[None, :, None], own).reshape(
                (n_atoms,) + grouped + second.shape[-2:]).sum(axis=2)
            rest[k] = (base_weights[None, :] * components[..., -1] ** 2).reshape((n_atoms,) + grouped).sum(axis=2)
    if groups is not None:
        return e, c, risk0, second, rest
    return e, c, risk0


# --------------------------------------------------------------------------------------------
# The hook: what ``reduced-pde chaos`` runs for a problem (ReducedProblem.finite_width)
# --------------------------------------------------------------------------------------------

#: the ``[chaos]`` keys every problem's finite-width runs read (the rest belong to one kind of run)
COMMON_CHAOS_KEYS = frozenset({"widths", "seeds", "dt", "nodes", "predict", "atoms", "predict_until", "epsilon"})

#: one resource a run needs, as :class:`reduced_pde.running.resources.Demand` takes it:
#: (kind, amount, field, what) — kind "memory" (bytes), "chaos_steps" or "chaos_work"
Cost = tuple[str, float, str, str]


def finite_width_of(problem: Any) -> "FiniteWidth":
    """``problem.finite_width()`` for a :class:`~reduced_pde.problem.ReducedProblem` (ValueError otherwise,
    :class:`~reduced_pde.problem.NoFiniteWidth` when the problem has no finite-width runs)."""
    if not isinstance(problem, ReducedProblem):
        raise ValueError(f"problem = {type(problem).__name__} is not a ReducedProblem: finite-width runs need a "
                         "reduced problem (e.g. data.model = 'single_index_sphere', 'circle_sphere' or "
                         "'isotropic_gaussian_mixture')")
    return problem.finite_width()


class FiniteWidth(ABC):
    """A problem's finite-width runs, returned by its
    :meth:`~reduced_pde.problem.ReducedProblem.finite_width` (``reduced-pde chaos`` reads nothing else):
    the coupled m-neuron flows against their mean-field twins (:class:`CoupledRuns`), the 1/m
    prediction (:class:`FluctuationPrediction`), the ``[chaos]`` keys they read and what they cost.
    ``chaos`` is a validated ``[chaos]`` table (input form), ``times`` the output times (from 0)."""

    #: the ``[chaos]`` keys these runs read; any other key must keep its default (else refused)
    chaos_keys: frozenset[str] = COMMON_CHAOS_KEYS

    def check(self, chaos: Mapping[str, Any]) -> None:
        """Refuse (ValueError naming the field) ``[chaos]`` values these runs cannot take; default none."""

    @abstractmethod
    def coupled_runs(self, times: np.ndarray, chaos: Mapping[str, Any], schedule: Schedule | None = None,
                     progress: Callable[[str], None] | None = None) -> CoupledRuns:
        """The m-neuron flows of ``chaos.widths`` × ``chaos.seeds`` (seeds batched) and their twins."""

    @abstractmethod
    def predict(self, times: np.ndarray, chaos: Mapping[str, Any],
                schedule: Schedule | None = None) -> FluctuationPrediction:
        """e(t), c(t) and L(ν_t) at ``times``."""

    @abstractmethod
    def costs(self, chaos: Mapping[str, Any], times: np.ndarray) -> list[Cost]:
        """Memory (bytes), RK4 steps and multiply-adds of :meth:`coupled_runs` and :meth:`predict`."""


#: rank bound of the low-rank features of the sphere's chaos flows (polynomial σ of degree <= ~30)
_SPHERE_RANK = 32


class SphereFiniteWidth(FiniteWidth):
    """Neurons on the sphere with a fixed second layer and an exact polynomial kernel (module doc):
    :func:`coupled_runs` and :func:`predict_fluctuations`; ``[chaos]`` adds ``s_nodes``, ``q_nodes``
    (and ``angle_nodes`` for a geometry with an in-plane angle, the Circle)."""

    def __init__(self, problem: Any, model: SphereHermiteModel) -> None:
        self.problem = problem
        self.model = model
        self.chaos_keys = COMMON_CHAOS_KEYS | {"s_nodes", "q_nodes", "backend", "device", "precision", "atom_rule",
                                               "monitor_nodes"} | (
            {"angle_nodes"} if model.geometry.has_angle else set())

    def check(self, chaos: Mapping[str, Any]) -> None:
        """The backend of the m-neuron flows must run here (:func:`check_backend`: torch installed, the
        device present, NumPy in float64 on the CPU), and the prediction's frame reduction must fit in R^d
        (checked here, before the coupled runs, as :func:`predict_fluctuations` would after them); warns when
        ``q_nodes`` does not exceed the kernel's degree K (the bulk's cosine rule is exact only at t = 0 with
        q_nodes <= K, docs §3.1, §7: the default 8 suits He_4 and σ = He_4 + He_6)."""
        check_backend(chaos["backend"], chaos["device"], chaos["precision"])
        geometry, d = self.model.geometry, self.model.dimension
        if chaos["predict"] and d < geometry.frame_size + 1:
            raise ValueError(f"data.dimension = {d} must be >= {geometry.frame_size + 1} for the prediction's frame "
                             f"reduction of the {geometry.name} geometry; use a larger d or chaos.predict = false")
        if chaos["predict"] and chaos["q_nodes"] <= self.model.degree:
            warnings.warn(f"chaos.q_nodes = {chaos['q_nodes']} does not exceed the kernel's degree {self.model.degree}: "
                          "the prediction integrates the atom's response (and |g|², of twice the degree) over the bulk's "
                          "cosine inexactly after t = 0 (docs/finite_width.md §3.1, §7; He_4 at d = 16: e(0.1) 0.12 low "
                          f"with 4); use q_nodes >= {self.model.degree + 1}", stacklevel=2)

    def coupled_runs(self, times: np.ndarray, chaos: Mapping[str, Any], schedule: Schedule | None = None,
                     progress: Callable[[str], None] | None = None) -> CoupledRuns:
        return coupled_runs(self.problem, chaos["widths"], chaos["seeds"], times, dt=chaos["dt"],
                            nodes=chaos["nodes"], schedule=schedule, progress=progress, backend=chaos["backend"],
                            device=chaos["device"], precision=chaos["precision"])

    def predict(self, times: np.ndarray, chaos: Mapping[str, Any],
                schedule: Schedule | None = None) -> FluctuationPrediction:
        return predict_fluctuations(self.problem, times, atoms=chaos["atoms"], s_nodes=chaos["s_nodes"],
                                    q_nodes=chaos["q_nodes"], dt=chaos["dt"], epsilon=chaos["epsilon"],
                                    schedule=schedule, angle_nodes=chaos["angle_nodes"],
                                    atom_rule=chaos["atom_rule"], monitor_nodes=chaos["monitor_nodes"])

    def costs(self, chaos: Mapping[str, Any], times: np.ndarray) -> list[Cost]:
        """The Gram row tile, κ'(tile) and a temporary ``3 T`` (T = S b m, :func:`gram_row_tiles`; E = 2^22
        entries per tile, 2^26 on CUDA) and the RK4 stages of the weights ``12 S m d``, in numbers of
        ``chaos.precision`` on ``chaos.device`` (a CUDA device's memory is checked against its own size here,
        and the host then holds ``4 S m d`` float64 copies of W); low-rank features of the nodes and twins
        ``4 K (n + S m)``; the prediction: ``B = 2 atoms + 1`` batched laws on ``M = s_nodes q_nodes`` points
        (``s_nodes q_nodes angle_nodes`` for the Circle's frame), RK4 stages and features ``B M (30 + 2K)``
        (and ``4 K monitor_nodes`` for the adapted atom rule's flow
        map); RK4 steps ``t_final / dt`` plus one per output interval, each of 4 stages of
        ``S Σ m² (2d + K_κ)`` multiply-adds (W Wᵀ and κ'(G) W, Horner of degree K_κ = the kernel's; the rank
        bound K = 32 is that of the features)."""
        d, k = self.model.dimension, _SPHERE_RANK
        seeds, m, nodes = len(chaos["seeds"]), max(chaos["widths"]), int(chaos["nodes"])
        field = f"chaos.widths = {chaos['widths']!r} with {seeds} chaos.seeds and data.dimension = {d}"
        on_cuda = chaos["device"].startswith("cuda")
        entries = GRAM_TILE_ENTRIES_CUDA if on_cuda else GRAM_TILE_ENTRIES
        tile = seeds * gram_tile_rows(seeds, m, entries) * m
        size = 4.0 if chaos["precision"] == "float32" else 8.0
        network = size * (3 * tile + 12 * seeds * m * d)
        what = f"{field}, chaos.precision = {chaos['precision']!r}"
        if on_cuda:
            from reduced_pde.analysis.finite_width_torch import device_memory

            total = device_memory(chaos["device"])
            if network > 0.8 * total:
                raise ValueError(f"{what} implies {network / 2**30:.3g} GiB on chaos.device = {chaos['device']!r} "
                                 f"(Gram row tiles and RK4 stages), which has {total / 2**30:.3g} GiB: reduce it")
            network = 8.0 * 4 * seeds * m * d  # the host's float64 copies of W
        items: list[Cost] = [
            ("memory", network + 8.0 * 4 * k * seeds * m, what, "m-neuron networks (Gram row tiles and RK4 stages)"),
            ("memory", 8.0 * 4 * k * nodes, f"chaos.nodes = {nodes}", "mean-field nodes and their features")]
        if chaos["predict"]:
            batch, points = 2 * int(chaos["atoms"]) + 1, int(chaos["s_nodes"]) * int(chaos["q_nodes"])
            rule = f"chaos.atoms = {chaos['atoms']}, chaos.s_nodes = {chaos['s_nodes']}, chaos.q_nodes = {chaos['q_nodes']}"
            if self.model.geometry.has_angle:  # the Circle's frame rule is p × angle × cosine
                points *= int(chaos["angle_nodes"])
                rule += f", chaos.angle_nodes = {chaos['angle_nodes']}"
            items.append(("memory", 8.0 * batch * points * (30 + 2 * k), rule, "1/m prediction (batched laws)"))
            if chaos["atom_rule"] == "adapted":
                items.append(("memory", 8.0 * 4 * k * int(chaos["monitor_nodes"]),
                              f"chaos.monitor_nodes = {chaos['monitor_nodes']}", "flow map placing the atom panels"))
        steps = float(times[-1]) / float(chaos["dt"]) + (times.size - 1)
        items.append(("chaos_steps", steps, f"output.t_final = {float(times[-1])!r} with chaos.dt = {chaos['dt']!r}",
                      "RK4 steps t_final / dt"))
        # each RK4 step: 4 stages, each forming the Gram tiles W Wᵀ, κ'(G) by Horner (degree K) and κ'(G) W
        stage = sum(int(w) ** 2 * (2 * d + self.model.degree) for w in chaos["widths"])
        items.append(("chaos_work", steps * seeds * 4 * stage, f"{field}, chaos.dt = {chaos['dt']!r}",
                      "multiply-adds (t_final / dt) 4 S Σ m² (2d + K)"))
        return items
