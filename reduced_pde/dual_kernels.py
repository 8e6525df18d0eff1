"""Exact pairwise interaction of the single-/multi-index reductions through closed-form dual kernels.

Dual kernel.  For an activation σ, scales ``n, n' >= 0`` and a standard bivariate normal pair (X, Y)
with correlation γ,

    K_σ(n, n', γ) = E[σ(n X) σ(n' Y)]            (= Σ_k α_k(n) α_k(n') γ^k, Mehler).

Closed forms used here (``κ₀``, ``κ₁`` the arc-cosine kernels of order 0 and 1):

* piecewise-linear ``σ(t) = c₀ + s₀ t + Σ_j a_j (t − t_j)_+`` (ReLU, leaky ReLU, |t|, MMN18): with
  ``τ_j = t_j/n``, ``σ(nX) = c₀ + n L(X)``, ``L(X) = s₀X + Σ_j a_j (X − τ_j)_+``,

      K = μ(n) μ(n') + n n' (E[L(X) L'(Y)] − E L E L'),      μ(n) = E σ(nG) = α₀(n),
      E[L L'] = s₀² γ + s₀ γ Σ_j a_j (Φ̄(τ'_j) + Φ̄(τ_j)) + Σ_ij a_i a_j F(τ_i, τ'_j, γ),
      F(a, b, γ) = E[(X − a)_+ (Y − b)_+]   (Owen's T, below),

  and for a knot at 0 in both factors ``F(0, 0, γ) = κ₁(γ) = (sqrt(1 − γ²) + (π − arccos γ) γ)/(2π)``
  (ReLU: ``K = n n' κ₁(γ)``), evaluated without Owen's T;
* step ``σ(t) = 1{t > 0}``: ``K = κ₀(γ) = (π − arccos γ)/(2π)`` for n, n' > 0 (0 if n or n' is 0);
* erf: ``K = (2/π) arcsin(2 n n' γ / sqrt((1 + 2n²)(1 + 2n'²)))`` (Williams 1997);
* polynomial σ (:class:`~reduced_pde.activations.PolynomialActivation`, degree p): the terminating
  Mehler sum ``Σ_{k<=p} α_k(n) α_k(n') γ^k`` (exact);
* anything else (tanh, sigmoid, user callables): the Mehler sum to a high degree K (default 200),
  with the rigorous bound ``|K_σ − K_K| <= |γ|^{K+1} sqrt(T_K(n) T_K(n'))``,
  ``T_K(n) = E σ(nG)² − Σ_{k<=K} α_k(n)²``; a warning is issued when it exceeds the tolerance.
  α_k and E σ² are Gauss–Hermite projections on one rule with max(800, 3K + 40) nodes; the bound is
  rigorous for those α_k (their quadrature error, ~1e-14 for tanh at n <= 2.5, K = 120, is not in it).

Scales must be finite and >= 0 and correlations finite in [−1, 1] (1e-12 round-off overshoot is
clipped); anything else raises ValueError naming the argument.

With ``s = sqrt(1 − γ²)``, ``A = Φ̄((b − γa)/s)``, ``B = Φ̄((a − γb)/s)`` (Φ̄ = 1 − Φ) and
``φ₂(a, b) = φ(a) φ((b − γa)/s)/s`` the bivariate density, the truncated moments are
``E[X 1] = φ(a)A + γφ(b)B``, ``E[Y 1] = φ(b)B + γφ(a)A`` and
``E[XY 1] = γP + γaφ(a)A + γbφ(b)B + s² φ₂(a, b)`` over ``{X > a, Y > b}``, so
``F = E[XY 1] − a E[Y 1] − b E[X 1] + ab P``; at γ = ±1 the degenerate limits are used.

Reduced interaction.  In the single-index reduction (:mod:`reduced_pde.models.single_index`) a neuron has
second layer a, scale ``n = |w|``, alignment ``ρ = s/n`` and orthogonal part ``ϱ = r/n``, and

    u(x, x') = a a' E_c[ K_σ(n, n', γ) ],      γ = ρ ρ' + ϱ ϱ' c,

c the cosine between the orthogonal parts: two independent uniform directions of R^m,
``m = problem.orthogonal_dimension`` (d − 1; d − k for a k-index model, where ρ ∈ R^k and ρρ' is
the dot product), density ∝ ``(1 − c²)^{(m−3)/2}`` on [−1, 1].  The c-average is a Gauss–Jacobi
rule with ``cosine_nodes`` nodes (the atoms ±1 at m = 1, c = 0 at m = ∞) — the same rule as
:meth:`SingleIndexProblem.interaction_kernel`, whose per-entry ``bivariate_expectation`` loop this
replaces by one vectorised (rows × columns × nodes) evaluation, chunked to bound memory.  The rule
is exact for polynomial σ once ``2 · nodes − 1 >= p`` (enforced); for smooth K_σ it converges
geometrically; only exactly aligned pairs (γ → ±1 at c = ±1, where the Jacobi weight vanishes)
see the algebraic ``sqrt(1 − γ²)`` singularity of κ₁.

:func:`low_rank_truncation_error` compares this exact matrix with the low-rank series
``problem.interaction_low_rank(points)`` and with its rigorous bound ``b_i b_j``.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import erf as _scipy_erf
from scipy.special import ndtr, owens_t, roots_jacobi

from reduced_pde.activations import Activation, PiecewiseLinearActivation, SmoothActivation
from reduced_pde.hermite import gauss_hermite_rule, normalized_hermite

__all__ = [
    "DualKernel",
    "ErfDualKernel",
    "HermiteSeriesDualKernel",
    "InteractionGeometry",
    "LowRankTruncationReport",
    "PiecewiseLinearDualKernel",
    "StepActivation",
    "StepDualKernel",
    "bivariate_normal_cdf",
    "cosine_rule",
    "erf_dual_kernel",
    "hermite_series_dual_kernel",
    "interaction_geometry",
    "low_rank_truncation_error",
    "make_dual_kernel",
    "pairwise_interaction",
    "pairwise_interaction_from_geometry",
    "rectified_product_moment",
    "relu_dual_kernel",
    "step_dual_kernel",
]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_DEFAULT_FALLBACK_DEGREE = 200
_CHUNK_ELEMENTS = 1_000_000  # rows × columns × nodes per block (~8 MB per temporary)


def _gauss(x: np.ndarray) -> np.ndarray:
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


_CORRELATION_SLACK = 1e-12  # round-off overshoot of |γ| tolerated (then clipped to [−1, 1])


def _checked_correlation(correlation: np.ndarray) -> np.ndarray:
    """γ as a float array clipped to [−1, 1]; ValueError if not finite or |γ| > 1 + 1e-12."""
    g = np.asarray(correlation, dtype=float)
    if not np.all(np.isfinite(g)) or np.any(np.abs(g) > 1.0 + _CORRELATION_SLACK):
        bad = g[~(np.isfinite(g) & (np.abs(g) <= 1.0 + _CORRELATION_SLACK))].ravel()[0]
        raise ValueError(f"correlation = {bad!r} is not allowed: a correlation must be finite and in [-1, 1]")
    return np.clip(g, -1.0, 1.0)


def _checked_scale(scale: np.ndarray, field: str) -> np.ndarray:
    """n as a float array; ValueError if not finite or negative."""
    n = np.asarray(scale, dtype=float)
    if not np.all(np.isfinite(n)) or np.any(n < 0):
        bad = n[~(np.isfinite(n) & (n >= 0))].ravel()[0]
        raise ValueError(f"{field} = {bad!r} is not allowed: a scale n = |w| must be finite and >= 0")
    return n


# --------------------------------------------------------------------------------------------
# Closed-form dual kernels (vectorised, broadcasting)
# --------------------------------------------------------------------------------------------


def _arc_cosine_one(gamma: np.ndarray) -> np.ndarray:
    """``κ₁(γ) = E[relu(X) relu(Y)] = (sqrt(1 − γ²) + (π − arccos γ) γ)/(2π)``."""
    g = np.clip(gamma, -1.0, 1.0)
    return (np.sqrt(np.maximum(1.0 - g * g, 0.0)) + (math.pi - np.arccos(g)) * g) / (2.0 * math.pi)


def relu_dual_kernel(scale1: np.ndarray, scale2: np.ndarray, correlation: np.ndarray) -> np.ndarray:
    """``E[relu(n X) relu(n' Y)] = n n' (sqrt(1 − γ²) + (π − arccos γ) γ)/(2π)`` (arc-cosine kernel of
    order 1; n, n' >= 0, γ clipped to [−1, 1]); arrays broadcast."""
    n1, n2 = _checked_scale(scale1, "scale1"), _checked_scale(scale2, "scale2")
    return n1 * n2 * _arc_cosine_one(_checked_correlation(correlation))


def step_dual_kernel(scale1: np.ndarray, scale2: np.ndarray, correlation: np.ndarray) -> np.ndarray:
    """``E[1{nX > 0} 1{n'Y > 0}] = (π − arccos γ)/(2π)`` for n, n' > 0 (arc-cosine kernel of order 0),
    0 if n = 0 or n' = 0 (σ(0) = 0); arrays broadcast."""
    n1, n2 = _checked_scale(scale1, "scale1"), _checked_scale(scale2, "scale2")
    value = (math.pi - np.arccos(_checked_correlation(correlation))) / (2.0 * math.pi)
    return np.where((n1 > 0) & (n2 > 0), value, 0.0)


def erf_dual_kernel(scale1: np.ndarray, scale2: np.ndarray, correlation: np.ndarray) -> np.ndarray:
    """``E[erf(n X) erf(n' Y)] = (2/π) arcsin(2 n n' γ / sqrt((1 + 2n²)(1 + 2n'²)))``; arrays broadcast."""
    n1, n2 = _checked_scale(scale1, "scale1"), _checked_scale(scale2, "scale2")
    g = _checked_correlation(correlation)
    argument = 2.0 * n1 * n2 * g / np.sqrt((1.0 + 2.0 * n1 * n1) * (1.0 + 2.0 * n2 * n2))
    return (2.0 / math.pi) * np.arcsin(np.clip(argument, -1.0, 1.0))


def hermite_series_dual_kernel(alpha1: np.ndarray, alpha2: np.ndarray, correlation: np.ndarray) -> np.ndarray:
    """Mehler's sum ``Σ_{k<=K} α_k(n) α_k(n') γ^k`` by Horner's rule; ``alpha1``, ``alpha2`` have shape
    (K + 1, ...) and broadcast with ``correlation`` over the trailing axes."""
    a1, a2 = np.asarray(alpha1, dtype=float), np.asarray(alpha2, dtype=float)
    g = np.asarray(correlation, dtype=float)
    total = a1[-1] * a2[-1] * np.ones_like(g)
    for k in range(a1.shape[0] - 2, -1, -1):
        total = total * g + a1[k] * a2[k]
    return total


def _finite_pair_and_correlation(function: str, names: tuple[str, str], meaning: str, first: np.ndarray,
                                 second: np.ndarray, correlation: np.ndarray
                                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(first, second, γ)`` broadcast as float arrays, γ checked by :func:`_checked_correlation`;
    ValueError naming the function, the argument and its first non-finite value otherwise."""
    first, second, g = np.broadcast_arrays(np.asarray(first, dtype=float), np.asarray(second, dtype=float),
                                           _checked_correlation(correlation))
    for field, value in zip(names, (first, second)):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{function}: {field} = {value[~np.isfinite(value)].ravel()[0]!r} "
                             f"is not allowed: {meaning} must be finite")
    return first, second, g


def bivariate_normal_cdf(h: np.ndarray, k: np.ndarray, correlation: np.ndarray) -> np.ndarray:
    """``Φ₂(h, k; γ) = P(X < h, Y < k)`` for standard normals X, Y of correlation γ.

    For |γ| < 1 by Owen's T function (Owen 1956):
    ``½Φ(h) + ½Φ(k) − T(h, (k − γh)/(h s)) − T(k, (h − γk)/(k s)) − β``, ``s = sqrt(1 − γ²)``,
    ``β = ½`` if ``hk < 0`` or (``hk = 0`` and ``h + k < 0``), else 0; ``T(0, ±∞) = ±¼``, and
    ``Φ₂(0, 0; γ) = ¼ + arcsin(γ)/(2π)``.  The degenerate laws: ``Φ(min(h, k))`` at γ = 1 (Y = X),
    ``max(Φ(h) − Φ(−k), 0)`` at γ = −1 (Y = −X).  h, k finite; arrays broadcast."""
    h, k, g = _finite_pair_and_correlation("bivariate_normal_cdf", ("h", "k"), "the limits", h, k, correlation)
    regular = np.abs(g) < 1.0
    g_safe = np.where(regular, g, 0.0)
    s = np.sqrt(1.0 - g_safe * g_safe)
    with np.errstate(divide="ignore", invalid="ignore"):
        a_h = np.where(h != 0.0, (k - g_safe * h) / (h * s), np.sign(k - g_safe * h) * np.inf)
        a_k = np.where(k != 0.0, (h - g_safe * k) / (k * s), np.sign(h - g_safe * k) * np.inf)
    a_h = np.nan_to_num(a_h, nan=0.0)
    a_k = np.nan_to_num(a_k, nan=0.0)
    beta = np.where((h * k < 0.0) | ((h * k == 0.0) & (h + k < 0.0)), 0.5, 0.0)
    value = 0.5 * ndtr(h) + 0.5 * ndtr(k) - owens_t(h, a_h) - owens_t(k, a_k) - beta
    both_zero = (h == 0.0) & (k == 0.0)
    value = np.where(both_zero, 0.25 + np.arcsin(g_safe) / (2.0 * math.pi), value)
    degenerate = np.where(g > 0, ndtr(np.minimum(h, k)), np.maximum(ndtr(h) - ndtr(-k), 0.0))
    return np.clip(np.where(regular, value, degenerate), 0.0, 1.0)


def rectified_product_moment(a: np.ndarray, b: np.ndarray, correlation: np.ndarray) -> np.ndarray:
    """``F(a, b, γ) = E[(X − a)_+ (Y − b)_+]`` for standard normals of correlation γ (module docstring;
    exact limits at γ = ±1); arrays broadcast."""
    a, b, g = _finite_pair_and_correlation("rectified_product_moment", ("a", "b"), "the thresholds", a, b,
                                           correlation)
    s = np.sqrt(np.maximum(1.0 - g * g, 0.0))
    regular = s > 0.0
    s_safe = np.where(regular, s, 1.0)
    g_safe = np.where(regular, g, 0.0)
    upper_a = ndtr(-(b - g_safe * a) / s_safe)
    upper_b = ndtr(-(a - g_safe * b) / s_safe)
    phi_a, phi_b = _gauss(a), _gauss(b)
    probability = bivariate_normal_cdf(-a, -b, g_safe)
    mean_x = phi_a * upper_a + g_safe * phi_b * upper_b
    mean_y = phi_b * upper_b + g_safe * phi_a * upper_a
    mean_xy = (g_safe * probability + g_safe * a * phi_a * upper_a + g_safe * b * phi_b * upper_b
               + s_safe * phi_a * _gauss((b - g_safe * a) / s_safe))
    value = mean_xy - a * mean_y - b * mean_x + a * b * probability
    if np.all(regular):
        return value
    # γ = 1: X = Y, m = max(a, b): E[(X−a)_+(X−b)_+] = mφ(m) + Φ̄(m) − (a+b)φ(m) + abΦ̄(m)
    m = np.maximum(a, b)
    tail, density = ndtr(-m), _gauss(m)
    aligned = m * density + tail - (a + b) * density + a * b * tail
    # γ = −1: Y = −X: ∫_a^{−b} (x − a)(−x − b) φ(x) dx when a < −b, else 0
    lower, upper = a, -b
    mass = np.maximum(ndtr(upper) - ndtr(lower), 0.0)
    second = mass - (upper * _gauss(upper) - lower * _gauss(lower))
    first = _gauss(lower) - _gauss(upper)
    opposite = np.where(lower < upper, -second + (a - b) * first + a * b * mass, 0.0)
    return np.where(regular, value, np.where(g > 0, aligned, opposite))


# --------------------------------------------------------------------------------------------
# The step activation (for the order-0 arc-cosine kernel)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepActivation(Activation):
    """``σ(t) = 1{t > 0}`` (σ(0) = 0).  For n > 0, ``α₀ = ½`` and ``α_k = φ(0) He_{k−1}(0)/sqrt(k!)``
    (k >= 1; from ``E[1{G > 0} He_k(G)] = φ(0) He_{k−1}(0)``), independent of n, so ``dα_k/dn = 0``
    (``G σ'(nG) = G δ(nG) = 0``); at n = 0 all α_k vanish.  Its dual kernel is the arc-cosine kernel of
    order 0."""

    name: str = "step"

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return (np.asarray(t, dtype=float) > 0.0).astype(float)

    def derivative(self, t: np.ndarray) -> np.ndarray:
        return np.zeros_like(np.asarray(t, dtype=float))

    def hermite_coefficients(self, scale: np.ndarray, degree: int) -> np.ndarray:
        scale = np.asarray(scale, dtype=float)
        if np.any(scale < 0) or not np.all(np.isfinite(scale)):
            raise ValueError("activation scale n must be finite and >= 0")
        # α_k = φ(0) He_{k−1}(0)/sqrt(k!) = φ(0) h_{k−1}(0)/sqrt(k)  (k >= 1)
        values = np.zeros(degree + 1)
        values[0] = 0.5
        if degree >= 1:
            k = np.arange(1, degree + 1, dtype=float)
            values[1:] = _INV_SQRT_2PI * normalized_hermite(np.array(0.0), degree - 1) / np.sqrt(k)
        out = values.reshape((-1,) + (1,) * scale.ndim) * np.ones(scale.shape)
        return np.where(scale > 0, out, 0.0)

    def hermite_coefficients_derivative(self, scale: np.ndarray, degree: int) -> np.ndarray:
        scale = np.asarray(scale, dtype=float)
        return np.zeros((degree + 1,) + scale.shape)

    def bivariate_expectation(self, scale1: float, scale2: float, correlation: float) -> float:
        """``P(X > 0, Y > 0) = ¼ + arcsin(γ)/(2π)`` (Sheppard; n, n' > 0)."""
        if scale1 <= 0 or scale2 <= 0:
            return 0.0
        return 0.25 + math.asin(max(-1.0, min(1.0, float(correlation)))) / (2.0 * math.pi)

    def second_moment(self, scale: np.ndarray) -> np.ndarray:
        scale = np.asarray(scale, dtype=float)
        return np.where(scale > 0, 0.5, 0.0)

    def config(self) -> dict[str, Any]:
        return {"name": "step"}


# --------------------------------------------------------------------------------------------
# Dual-kernel objects: per-point data, then (rows × columns × nodes) evaluation
# --------------------------------------------------------------------------------------------


class DualKernel(ABC):
    """``K_σ(n, n', γ)`` evaluated on blocks: :meth:`point_data` turns the scales n (M,) into per-point
    arrays (P, M); :meth:`evaluate` takes the data of the rows, shape (P, m1, 1, 1), of the columns,
    (P, 1, m2, 1), and γ (m1, m2, Q)."""

    name: str = "dual_kernel"
    #: True when the evaluation is exact up to round-off (closed form or terminating series)
    exact: bool = True
    #: smallest number of Gauss–Jacobi nodes that makes the c-average exact (polynomial σ), else 1
    minimum_cosine_nodes: int = 1

    def point_data(self, scale: np.ndarray) -> np.ndarray:
        return np.asarray(scale, dtype=float)[None, :]

    @abstractmethod
    def evaluate(self, first: np.ndarray, second: np.ndarray, gamma: np.ndarray) -> np.ndarray: ...

    def truncation_bound(self, first: np.ndarray, second: np.ndarray, gamma: np.ndarray) -> np.ndarray | None:
        """Rigorous bound on ``|K_σ − evaluate|`` (None when exact)."""
        return None

    def __call__(self, scale1: np.ndarray, scale2: np.ndarray, correlation: np.ndarray) -> np.ndarray:
        """``K_σ(n, n', γ)`` element-wise over broadcast arrays (a 0-d array for scalar input)."""
        n1, n2, g = np.broadcast_arrays(_checked_scale(scale1, "scale1"), _checked_scale(scale2, "scale2"),
                                        _checked_correlation(correlation))
        first = self.point_data(n1.ravel())[:, :, None, None]
        second = self.point_data(n2.ravel())[:, :, None, None]
        value = np.broadcast_to(self.evaluate(first, second, g.ravel()[:, None, None]), (g.size, 1, 1))
        return value[:, 0, 0].reshape(g.shape)


class PiecewiseLinearDualKernel(DualKernel):
    """Closed form for ``σ(t) = c₀ + s₀ t + Σ_j a_j (t − t_j)_+`` (module docstring); pairs of knots at
    0 use κ₁ (ReLU: no Owen's T)."""

    def __init__(self, activation: PiecewiseLinearActivation) -> None:
        self.activation = activation
        self.name = f"piecewise_linear[{activation.name}]"
        self.intercept = float(activation.intercept)
        self.slope = float(activation.slope)
        self.knots = tuple(float(t) for t in activation.knots)
        self.jumps = tuple(float(a) for a in activation.jumps)

    def point_data(self, scale: np.ndarray) -> np.ndarray:
        """Rows: n, μ(n) = E σ(nG), E L = Σ_j a_j (φ(τ_j) − τ_j Φ̄(τ_j)), τ_j and Φ̄(τ_j) (n = 0 uses
        the dummy n = 1 in τ, harmless because the covariance term carries the factor n)."""
        n = np.asarray(scale, dtype=float)
        safe = np.where(n > 0, n, 1.0)
        mean = self.activation.hermite_coefficients(n, 0)[0]
        taus = [np.clip(t / safe, -1e6, 1e6) for t in self.knots]  # φ(±1e6) = 0: no inf·0
        mean_l = np.zeros_like(n)
        for a, tau in zip(self.jumps, taus):
            mean_l += a * (_gauss(tau) - tau * ndtr(-tau))
        rows = [n, mean, mean_l] + taus + [ndtr(-tau) for tau in taus]
        return np.stack(rows)

    def evaluate(self, first: np.ndarray, second: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        knots = len(self.knots)
        n1, mean1, mean_l1 = first[0], first[1], first[2]
        n2, mean2, mean_l2 = second[0], second[1], second[2]
        tau1, tau2 = first[3:3 + knots], second[3:3 + knots]
        upper1, upper2 = first[3 + knots:], second[3 + knots:]
        g = np.clip(gamma, -1.0, 1.0)
        product = self.slope**2 * g
        if self.slope != 0.0:
            cross = sum(a * (upper1[j] + upper2[j]) for j, a in enumerate(self.jumps))
            product = product + self.slope * g * cross
        for i, (knot_i, a_i) in enumerate(zip(self.knots, self.jumps)):
            for j, (knot_j, a_j) in enumerate(zip(self.knots, self.jumps)):
                if knot_i == 0.0 and knot_j == 0.0:
                    product = product + a_i * a_j * _arc_cosine_one(g)
                else:
                    product = product + a_i * a_j * rectified_product_moment(tau1[i], tau2[j], g)
        return mean1 * mean2 + n1 * n2 * (product - mean_l1 * mean_l2)


class StepDualKernel(DualKernel):
    """Arc-cosine kernel of order 0 for :class:`StepActivation`."""

    name = "step"

    def evaluate(self, first: np.ndarray, second: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        return step_dual_kernel(first[0], second[0], gamma)


class ErfDualKernel(DualKernel):
    """The arcsine kernel of σ = erf."""

    name = "erf"

    def evaluate(self, first: np.ndarray, second: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        return erf_dual_kernel(first[0], second[0], gamma)


class HermiteSeriesDualKernel(DualKernel):
    """Mehler's sum to degree K with the activation's ``hermite_coefficients`` (exact for a polynomial σ
    of degree <= K).  Per-point data: ``α_0..α_K(n)`` and ``sqrt(T_K(n))`` (for the bound)."""

    def __init__(self, activation: Activation, degree: int, exact: bool) -> None:
        if isinstance(degree, bool) or int(degree) != degree or degree < 0:
            raise ValueError(f"dual kernel degree = {degree!r} must be an integer >= 0")
        self.activation = activation
        self.degree = int(degree)
        self.exact = bool(exact)
        self.name = f"hermite_series[{activation.name}, K={self.degree}]"
        self.minimum_cosine_nodes = (self.degree + 2) // 2 if self.exact else 1

    def point_data(self, scale: np.ndarray) -> np.ndarray:
        n = np.asarray(scale, dtype=float)
        if self.exact:
            alpha = self.activation.hermite_coefficients(n, self.degree)
            tail = np.zeros_like(n)
        else:
            # α_k = E[σ(nG) h_k(G)] and E σ(nG)² on one Gauss–Hermite rule with Q >= 800 nodes: the
            # projections of σ(nG) (analytic in a strip of width ~1/n only) need many more nodes than
            # the activation's default rule (measured for tanh, n = 1.9, K = 120: Q = 280 gives a
            # 2e-12 error in the Mehler sum, Q = 600..1000 round-off).  On one rule the h_k, k <= K,
            # are orthonormal for the discrete inner product, so T_K = E σ² − Σ α_k² >= 0 there.
            nodes, weights = gauss_hermite_rule(max(800, 3 * self.degree + 40))
            values = self.activation(np.multiply.outer(n, nodes))  # (M, Q)
            alpha = (normalized_hermite(nodes, self.degree) * weights) @ values.T  # (K + 1, M)
            second = values**2 @ weights
            tail = np.sqrt(np.maximum(second - np.sum(alpha**2, axis=0), 0.0))
        return np.concatenate([alpha, tail[None, :]])

    def evaluate(self, first: np.ndarray, second: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        return hermite_series_dual_kernel(first[:-1], second[:-1], gamma)

    def truncation_bound(self, first: np.ndarray, second: np.ndarray, gamma: np.ndarray) -> np.ndarray | None:
        if self.exact:
            return None
        return np.abs(gamma) ** (self.degree + 1) * first[-1] * second[-1]


def make_dual_kernel(activation: Activation, fallback_degree: int = _DEFAULT_FALLBACK_DEGREE) -> DualKernel:
    """The closed-form dual kernel of ``activation`` (module docstring), or the Mehler sum: exact for
    a polynomial σ, else to ``fallback_degree`` with its rigorous bound (and a warning, since it costs
    O(fallback_degree) per pair and node and converges slowly when |γ| → 1)."""
    if isinstance(activation, PiecewiseLinearActivation):
        return PiecewiseLinearDualKernel(activation)
    if isinstance(activation, StepActivation):
        return StepDualKernel()
    if isinstance(activation, SmoothActivation) and activation.function is _scipy_erf:
        return ErfDualKernel()
    degree = getattr(activation, "polynomial_degree", None)
    if degree is not None:
        return HermiteSeriesDualKernel(activation, int(degree), exact=True)
    warnings.warn(f"no closed-form dual kernel for activation {activation.name!r}: using Mehler's sum to "
                  f"degree {fallback_degree} (rigorous tail bound reported)", stacklevel=2)
    return HermiteSeriesDualKernel(activation, fallback_degree, exact=False)


# --------------------------------------------------------------------------------------------
# Geometry of the reduced points and the law of the cosine c
# --------------------------------------------------------------------------------------------


def cosine_rule(orthogonal_dimension: float, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) for the law of the cosine c between two independent uniform
    directions of R^m: Gauss–Jacobi with exponent (m − 3)/2 (m >= 2), the atoms ±1 (m = 1), the
    atom 0 (m = ∞)."""
    m = float(orthogonal_dimension)
    if not (m >= 1 and (math.isinf(m) or m == int(m))):
        raise ValueError(f"orthogonal dimension m = {orthogonal_dimension!r} must be an integer >= 1 or inf")
    if isinstance(nodes, bool) or int(nodes) != nodes or nodes < 1:
        raise ValueError(f"cosine_nodes = {nodes!r} must be an integer >= 1")
    if math.isinf(m):
        return np.array([0.0]), np.array([1.0])
    if m == 1:
        return np.array([-1.0, 1.0]), np.array([0.5, 0.5])
    exponent = (m - 3.0) / 2.0
    c, w = roots_jacobi(int(nodes), exponent, exponent)
    return c, w / w.sum()


@dataclass(frozen=True)
class InteractionGeometry:
    """Per-point quantities that determine u: second layer ``a`` (M,), scale ``n = |w|`` (M,),
    alignment ``ρ = s/n`` (M,) or (M, k), orthogonal fraction ``ϱ = r/n`` (M,)."""

    a: np.ndarray
    n: np.ndarray
    rho: np.ndarray
    varrho: np.ndarray

    def __post_init__(self) -> None:
        size = np.shape(self.n)[0]
        for name in ("a", "varrho"):
            if np.shape(getattr(self, name)) != (size,):
                raise ValueError(f"geometry.{name} has shape {np.shape(getattr(self, name))}, expected ({size},)")
        if np.ndim(self.rho) not in (1, 2) or np.shape(self.rho)[0] != size:
            raise ValueError(f"geometry.rho has shape {np.shape(self.rho)}, expected ({size},) or ({size}, k)")

    @property
    def alignment_matrix(self) -> np.ndarray:
        """ρ as (M, k)."""
        rho = np.asarray(self.rho, dtype=float)
        return rho[:, None] if rho.ndim == 1 else rho

    def take(self, index: slice) -> InteractionGeometry:
        return InteractionGeometry(self.a[index], self.n[index], self.rho[index], self.varrho[index])


def interaction_geometry(problem: Any, points: np.ndarray) -> InteractionGeometry:
    """``(a, n, ρ, ϱ)`` of reduced points: ``problem.interaction_geometry(points)`` if the problem
    provides it (e.g. a multi-index problem, ρ of shape (M, k)), else the single-index coordinates
    through :class:`SingleIndexProblem`'s own splitting (the n = 0 convention ρ = 0, ϱ = 1)."""
    own = getattr(problem, "interaction_geometry", None)
    if callable(own):
        a, n, rho, varrho = own(points)
        return InteractionGeometry(*(np.asarray(x, dtype=float) for x in (a, n, rho, varrho)))
    if not (hasattr(problem, "_split") and hasattr(problem, "_geometry")):
        raise ValueError(f"pairwise_interaction: problem {type(problem).__name__} provides neither "
                         "interaction_geometry(points) nor the single-index coordinates")
    a, s, r = problem._split(points)
    n, rho, varrho = problem._geometry(s, r)
    return InteractionGeometry(np.asarray(a, dtype=float), np.asarray(n, dtype=float),
                               np.asarray(rho, dtype=float), np.asarray(varrho, dtype=float))


def pairwise_interaction_from_geometry(kernel: DualKernel, orthogonal_dimension: float,
                                       first: InteractionGeometry, second: InteractionGeometry, *,
                                       cosine_nodes: int = 64, return_bound: bool = False,
                                       chunk_elements: int = _CHUNK_ELEMENTS
                                       ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``U_ij = a_i a'_j Σ_q w_q K_σ(n_i, n'_j, ρ_i·ρ'_j + ϱ_i ϱ'_j c_q)`` (module docstring), shape
    (M, M'), evaluated on blocks of rows with at most ``chunk_elements`` (row, column, node) triples.
    With ``return_bound`` also the matrix of rigorous series-truncation bounds (zeros if exact)."""
    if isinstance(cosine_nodes, bool) or not isinstance(cosine_nodes, (int, np.integer)) or cosine_nodes < 1:
        raise ValueError(f"cosine_nodes = {cosine_nodes!r} is not allowed: an integer >= 1")
    nodes = max(int(cosine_nodes), kernel.minimum_cosine_nodes)
    c, w = cosine_rule(orthogonal_dimension, nodes)
    rho1, rho2 = first.alignment_matrix, second.alignment_matrix
    if rho1.shape[1] != rho2.shape[1]:
        raise ValueError(f"alignment ρ has {rho1.shape[1]} and {rho2.shape[1]} components: the two point "
                         "sets must come from the same problem")
    m1, m2 = first.n.size, second.n.size
    out = np.empty((m1, m2))
    bound = np.zeros((m1, m2)) if return_bound else None
    if m1 == 0 or m2 == 0:
        return (out, bound) if return_bound else out
    data1 = kernel.point_data(first.n)
    data2 = kernel.point_data(second.n)[:, None, :, None]
    aligned = rho1 @ rho2.T  # (M, M')
    orthogonal = np.multiply.outer(first.varrho, second.varrho)
    rows = max(1, int(chunk_elements // max(m2 * c.size, 1)))
    for start in range(0, m1, rows):
        block = slice(start, min(start + rows, m1))
        gamma = aligned[block, :, None] + orthogonal[block, :, None] * c[None, None, :]
        values = kernel.evaluate(data1[:, block, None, None], data2, gamma)
        out[block] = (np.broadcast_to(values, gamma.shape) @ w)
        if bound is not None:
            tail = kernel.truncation_bound(data1[:, block, None, None], data2, gamma)
            if tail is not None:
                bound[block] = np.broadcast_to(tail, gamma.shape) @ w
    out *= np.multiply.outer(first.a, second.a)
    if bound is not None:
        bound *= np.abs(np.multiply.outer(first.a, second.a))
        return out, bound
    return out


def pairwise_interaction(problem: Any, points: np.ndarray, other: np.ndarray | None = None, *,
                         cosine_nodes: int = 64, fallback_degree: int = _DEFAULT_FALLBACK_DEGREE,
                         return_bound: bool = False, chunk_elements: int = _CHUNK_ELEMENTS
                         ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The exact reduced interaction ``u(x_i, x'_j)`` (M, M') of a single-index problem (or a
    multi-index problem exposing ``interaction_geometry``) through the dual kernel of its activation
    (module docstring); ``other`` defaults to ``points``.  Same Gauss–Jacobi rule as
    :meth:`SingleIndexProblem.interaction_kernel`, without its per-entry Python loop.  For activations
    without a closed form, Mehler's sum to ``fallback_degree`` (warning; ``return_bound=True`` also
    returns the matrix of rigorous truncation bounds)."""
    if isinstance(fallback_degree, bool) or not isinstance(fallback_degree, (int, np.integer)) \
            or fallback_degree < 0:
        raise ValueError(f"fallback_degree = {fallback_degree!r} is not allowed: an integer >= 0")
    if isinstance(chunk_elements, bool) or not isinstance(chunk_elements, (int, np.integer)) \
            or chunk_elements < 1:
        raise ValueError(f"chunk_elements = {chunk_elements!r} is not allowed: an integer >= 1")
    kernel = make_dual_kernel(problem.activation, fallback_degree)
    first = interaction_geometry(problem, points)
    second = first if other is None else interaction_geometry(problem, other)
    need_bound = return_bound or not kernel.exact
    matrix, bound = pairwise_interaction_from_geometry(kernel, problem.orthogonal_dimension, first, second,
                                                       cosine_nodes=cosine_nodes, return_bound=True,
                                                       chunk_elements=chunk_elements) if need_bound else (
        pairwise_interaction_from_geometry(kernel, problem.orthogonal_dimension, first, second,
                                           cosine_nodes=cosine_nodes, chunk_elements=chunk_elements), None)
    if not np.all(np.isfinite(matrix)):
        i, j = (int(x[0]) for x in np.nonzero(~np.isfinite(matrix)))
        raise ValueError(f"pairwise interaction u(x_{i}, x'_{j}) = {matrix[i, j]!r} is not finite "
                         f"(activation {problem.activation.name!r})")
    if not kernel.exact:
        scale = max(float(np.max(np.abs(matrix))), 1e-300)
        worst = float(np.max(bound)) / scale
        tolerance = float(getattr(problem, "truncation_tolerance", 1e-6))
        if worst > tolerance:
            warnings.warn(f"pairwise interaction: Mehler sum to degree {kernel.degree} for "
                          f"{problem.activation.name!r} has relative truncation bound {worst:.2e} "
                          f"> {tolerance:g}; raise fallback_degree", stacklevel=2)
    if return_bound:
        return matrix, bound if bound is not None else np.zeros_like(matrix)
    return matrix


# --------------------------------------------------------------------------------------------
# Low-rank series against the exact pairwise kernel
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LowRankTruncationReport:
    """``|u_lowrank − u_exact|`` on a point set against the rigorous bound ``b_i b_j``.

    ``max_abs_error``: max over pairs; ``relative_error``: that over ``max |u_exact|``;
    ``max_bound``: max ``b_i b_j``; ``bound_ratio``: max over pairs with ``b_i b_j > 0`` of
    ``|Δ_ij| / (b_i b_j)`` (<= 1 up to the quadrature error of the exact kernel when the bound
    holds); ``violations``: pairs with ``|Δ_ij| > b_i b_j + quadrature_error``, where
    ``quadrature_error`` is the measured change of the exact kernel between ``cosine_nodes`` and
    ``2 cosine_nodes`` Gauss–Jacobi nodes (plus 100 ε max|u| round-off); ``rank``, ``hermite_degree``,
    ``binomial_degree`` of the series; ``error`` (M, M) and ``bound`` (M, M) the matrices."""

    max_abs_error: float
    relative_error: float
    max_bound: float
    bound_ratio: float
    violations: int
    quadrature_error: float
    rank: int
    hermite_degree: int
    binomial_degree: int
    error: np.ndarray
    bound: np.ndarray


def low_rank_truncation_error(problem: Any, points: np.ndarray, *, cosine_nodes: int = 64,
                              fallback_degree: int = _DEFAULT_FALLBACK_DEGREE) -> LowRankTruncationReport:
    """Compare ``problem.interaction_low_rank(points).dense()`` with :func:`pairwise_interaction` on
    ``points`` (see :class:`LowRankTruncationReport`)."""
    kernel = problem.interaction_low_rank(points)
    low_rank = kernel.dense()
    exact = pairwise_interaction(problem, points, cosine_nodes=cosine_nodes, fallback_degree=fallback_degree)
    finer = pairwise_interaction(problem, points, cosine_nodes=2 * cosine_nodes, fallback_degree=fallback_degree)
    scale = max(float(np.max(np.abs(exact))), 1e-300)
    quadrature = float(np.max(np.abs(finer - exact))) + 100.0 * np.finfo(float).eps * scale
    error = np.abs(low_rank - exact)
    bound = np.multiply.outer(kernel.truncation_bound, kernel.truncation_bound)
    positive = bound > 0
    ratio = float(np.max(error[positive] / bound[positive])) if np.any(positive) else 0.0
    degrees = problem.series_degrees() if hasattr(problem, "series_degrees") else (-1, -1)
    return LowRankTruncationReport(
        max_abs_error=float(error.max()), relative_error=float(error.max()) / scale,
        max_bound=float(bound.max()), bound_ratio=ratio,
        violations=int(np.count_nonzero(error > bound + quadrature)), quadrature_error=quadrature,
        rank=kernel.rank, hermite_degree=int(degrees[0]), binomial_degree=int(degrees[1]),
        error=error, bound=bound)
