"""Compiled ``∂_r ψ(r_i; p̂)`` of a radial reduction whose interaction features are Hermite coefficients
of a piecewise-linear activation at scaled radii (MMN18: :mod:`reduced_pde.models.isotropic_mixture`).

The reduction has classes c (probability-weighted) with input scales ``s_c`` (``n = s_c r``) and

    v(r)     = Σ_c a_c α_0(s_c r),                       (a_c = −P(y_c) y_c)
    u(r, r') = Σ_c Σ_{k even <= K} w_{c,k} α_k(s_c r) α_k(s_c r'),      (w_{c,k} = P(y_c) E[c^k])

with ``α_k(n) = E[σ(nG) h_k(G)]`` (orthonormal Hermite ``h_k``) of ``σ(t) = c0 + s0 t + Σ_j a_j (t − t_j)_+``
in the closed forms of :class:`~reduced_pde.activations.PiecewiseLinearActivation` (``τ_j = t_j / n``)::

    α_0 = c0 + Σ_j a_j (n φ(τ_j) − t_j Φ(−τ_j)),   α_1 = n (s0 + Σ_j a_j Φ(−τ_j)),
    α_k = n Σ_j a_j h_{k−2}(τ_j) φ(τ_j) / sqrt(k (k − 1))                        (k >= 2),
    dα_0/dn = Σ_j a_j φ(τ_j),   dα_1/dn = s0 + Σ_j a_j (h_1(τ_j) φ(τ_j) + Φ(−τ_j)),
    dα_k/dn = Σ_j a_j (h_k(τ_j) + sqrt(k/(k − 1)) h_{k−2}(τ_j)) φ(τ_j)          (k >= 2),

``h_k φ`` set to zero for ``|τ| >= 38`` (where it underflows; the numpy path does the same).  For a
law ``p̂ = Σ_i m_i δ_{r_i}`` (particles) the gradient at the particles themselves is

    ∂_r ψ(r_i; p̂) = Σ_c s_c [a_c α_0'(s_c r_i) + Σ_k w_{c,k} Φ_{c,k} α_k'(s_c r_i)],
    Φ_{c,k} = Σ_j m_j α_k(s_c r_j),

computed in one compiled function: one pass over the particles builds the features (the three-term
Hermite recursion once per particle, class and knot: no odd degree is stored) and the moments, a
second pass assembles the gradient.  Cost O(particles × classes × knots × K), no Python per call.
It is the same arithmetic as ``reduced_potential_gradient + Σ_k λ_k Φ_k ∇g_k`` of the numpy methods
(tests/test_lagrangian.py compares them to round-off).  The kernel has the fixed signature
:data:`~reduced_pde.problem.DRIFT_SIGNATURE`, so compiled integrators take it as a first-class function
(compiled and cached once, whatever the problem).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from reduced_pde.activations import PiecewiseLinearActivation
from reduced_pde.problem import DRIFT_SIGNATURE, ENERGY_SIGNATURE, CompiledDrift

__all__ = ["radial_hermite_gradient", "radial_hermite_drift", "radial_hermite_energy"]

_TAIL = 38.0  # as reduced_pde.activations._TAIL
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


@njit(cache=True)
def _coefficients_at(n, intercept, slope, knots, jumps, degree, inv_norm, ratio, root, inv_root_next, alpha,
                     d_alpha):
    """``α_k(n)`` and ``dα_k/dn`` for k = 0..degree into ``alpha``, ``d_alpha`` (module docstring);
    ``root[m] = sqrt(m)``, ``inv_root_next[m] = 1/sqrt(m + 1)`` (the recursion's constants)."""
    for k in range(degree + 1):
        alpha[k] = 0.0
        d_alpha[k] = 0.0
    alpha[0] = intercept
    if degree >= 1:
        alpha[1] = slope * n
        d_alpha[1] = slope
    for j in range(knots.shape[0]):
        knot = knots[j]
        jump = jumps[j]
        if n > 0.0:
            tau = knot / n
        elif knot != 0.0:
            tau = math.copysign(math.inf, knot)
        else:
            tau = 0.0
        upper_tail = 0.5 * math.erfc(tau * _INV_SQRT_2)
        inside = abs(tau) < _TAIL
        phi = _INV_SQRT_2PI * math.exp(-0.5 * tau * tau) if inside else 0.0
        alpha[0] += jump * (n * phi - knot * upper_tail)
        if degree >= 1:
            alpha[1] += jump * n * upper_tail
            d_alpha[1] += jump * upper_tail
        if not inside:
            continue
        # h_m(τ) φ(τ) by the three-term recursion, m = 0..degree
        h_before = 0.0
        h_now = phi
        for m in range(degree + 1):
            d_alpha[m] += jump * h_now
            k = m + 2
            if k <= degree:
                alpha[k] += jump * n * h_now * inv_norm[k]
                d_alpha[k] += jump * ratio[k] * h_now
            h_next = (tau * h_now - root[m] * h_before) * inv_root_next[m]
            h_before = h_now
            h_now = h_next


@njit(cache=True)
def _unpack(parameters):
    """The packed parameters of :func:`radial_hermite_gradient` and the recursion's constants."""
    n_classes = int(parameters[0])
    degree = int(parameters[1])
    n_knots = int(parameters[2])
    half = degree // 2 + 1
    at = 5
    scales = parameters[at:at + n_classes]
    at += n_classes
    potential_coefficients = parameters[at:at + n_classes]
    at += n_classes
    kernel_weights = parameters[at:at + n_classes * half].reshape((n_classes, half))
    at += n_classes * half
    knots = parameters[at:at + n_knots]
    jumps = parameters[at + n_knots:at + 2 * n_knots]
    constants = np.zeros((4, degree + 1))  # 1/sqrt(k(k−1)), sqrt(k/(k−1)), sqrt(k), 1/sqrt(k+1)
    for k in range(degree + 1):
        constants[2, k] = math.sqrt(k)
        constants[3, k] = 1.0 / math.sqrt(k + 1.0)
        if k >= 2:
            constants[0, k] = 1.0 / math.sqrt(k * (k - 1.0))
            constants[1, k] = math.sqrt(k / (k - 1.0))
    return degree, scales, potential_coefficients, kernel_weights, knots, jumps, constants


@njit(cache=True)
def _features_and_moments(x, masses, parameters, derivatives):
    """One pass over the points: ``dα_{2m}/dn(s_c r_i)`` into ``derivatives`` (classes, K/2 + 1, n) if it
    has n columns, and returns (``w_{c,2m} Φ_{c,2m}``, ``Σ_i m_i v(r_i)``)."""
    degree, scales, potential_coefficients, kernel_weights, knots, jumps, constants = _unpack(parameters)
    n_classes, half = kernel_weights.shape
    alpha = np.empty(degree + 1)
    d_alpha = np.empty(degree + 1)
    moments = np.zeros((n_classes, half))
    store = derivatives.shape[2] == x.shape[0]
    potential = 0.0
    for i in range(x.shape[0]):
        for c in range(n_classes):
            _coefficients_at(scales[c] * x[i, 0], parameters[3], parameters[4], knots, jumps, degree, constants[0],
                             constants[1], constants[2], constants[3], alpha, d_alpha)
            potential += masses[i] * potential_coefficients[c] * alpha[0]
            for m in range(half):
                moments[c, m] += masses[i] * alpha[2 * m]
                if store:
                    derivatives[c, m, i] = d_alpha[2 * m]
    for c in range(n_classes):
        for m in range(half):
            moments[c, m] *= kernel_weights[c, m]
    return moments, potential


@njit(DRIFT_SIGNATURE, cache=True)
def radial_hermite_drift(x, masses, parameters, out):
    """``out[i, 0] = ∂_r ψ(r_i; Σ_j m_j δ_{r_j})`` for ``r = x[:, 0]`` (module docstring; mobility 1), with
    ``parameters`` packed by :func:`radial_hermite_gradient`: ``[C, K, J, c0, s0, s_c (C), a_c (C),
    w_{c,2m} (C × (K/2 + 1), row-major), t_j (J), a_j (J)]``."""
    n_classes = int(parameters[0])
    half = int(parameters[1]) // 2 + 1
    scales = parameters[5:5 + n_classes]
    potential_coefficients = parameters[5 + n_classes:5 + 2 * n_classes]
    derivatives = np.empty((n_classes, half, x.shape[0]))
    moments, _ = _features_and_moments(x, masses, parameters, derivatives)
    for i in range(x.shape[0]):
        total = 0.0
        for c in range(n_classes):
            acc = potential_coefficients[c] * derivatives[c, 0, i]
            for m in range(half):
                acc += moments[c, m] * derivatives[c, m, i]
            total += scales[c] * acc
        out[i, 0] = total


@njit(ENERGY_SIGNATURE, cache=True)
def radial_hermite_energy(x, masses, parameters):
    """``2 Σ_i m_i v(r_i) + Σ_{c,k} w_{c,k} Φ_{c,k}² = R(p̂) − E[y²]`` (parameters as
    :func:`radial_hermite_drift`)."""
    derivatives = np.empty((0, 0, 0))
    moments, potential = _features_and_moments(x, masses, parameters, derivatives)
    n_classes, half = moments.shape
    weights = parameters[5 + 2 * n_classes:5 + 2 * n_classes + n_classes * half].reshape((n_classes, half))
    energy = 2.0 * potential
    for c in range(n_classes):
        for m in range(half):
            if weights[c, m] != 0.0:
                energy += moments[c, m] * moments[c, m] / weights[c, m]
    return energy


def radial_hermite_gradient(activation: PiecewiseLinearActivation, scales: np.ndarray,
                            potential_coefficients: np.ndarray, kernel_weights: np.ndarray,
                            valid_below: float) -> CompiledDrift:
    """The :class:`~reduced_pde.problem.CompiledDrift` of the module docstring: ``scales`` s_c (C,),
    ``potential_coefficients`` a_c (C,), ``kernel_weights`` (C, K + 1) with ``w_{c,k}`` (odd k unused:
    they vanish by the symmetry of the cosine), valid for radii up to ``valid_below``."""
    scales = np.asarray(scales, dtype=float)
    kernel_weights = np.asarray(kernel_weights, dtype=float)
    degree = kernel_weights.shape[1] - 1
    parameters = np.concatenate([
        [scales.size, degree, len(activation.knots), activation.intercept, activation.slope], scales,
        np.asarray(potential_coefficients, dtype=float), kernel_weights[:, 0::2].ravel(),
        np.array(activation.knots, dtype=float), np.array(activation.jumps, dtype=float)])
    return CompiledDrift(kernel=radial_hermite_drift, parameters=np.ascontiguousarray(parameters),
                         valid_below=float(valid_below), energy=radial_hermite_energy)
