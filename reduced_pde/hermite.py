"""Normalized probabilists' Hermite polynomials and Gaussian quadrature.

Conventions (design note §1): ``He_k`` are the probabilists' Hermite polynomials with
``E[He_k(G) He_l(G)] = k! δ_kl`` for ``G ~ N(0, 1)``.  We work with the orthonormal family

    h_k(x) = He_k(x) / sqrt(k!),      E[h_k(G) h_l(G)] = δ_kl,

computed by the stable three-term recursion

    h_0 = 1,  h_1 = x,  h_{k+1}(x) = (x h_k(x) - sqrt(k) h_{k-1}(x)) / sqrt(k + 1).

If ``σ(nG) = Σ_k α_k(n) h_k(G)`` then, for a standard bivariate normal pair (X, Y) with
correlation c (Mehler's formula),

    E[σ(n X) σ(n' Y)] = Σ_k α_k(n) α_k(n') c^k.                                   (M)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from scipy.special import roots_hermitenorm

from reduced_pde.checks import finite_number

__all__ = [
    "normalized_hermite",
    "gauss_hermite_rule",
    "cosine_moments",
    "finite_coefficients",
]


def normalized_hermite(x: np.ndarray, degree: int) -> np.ndarray:
    """Return ``h_k(x)`` for ``k = 0..degree`` as an array of shape ``(degree + 1,) + x.shape``."""
    x = np.asarray(x, dtype=float)
    out = np.empty((degree + 1,) + x.shape)
    out[0] = 1.0
    if degree >= 1:
        out[1] = x
    for k in range(1, degree):
        out[k + 1] = (x * out[k] - np.sqrt(k) * out[k - 1]) / np.sqrt(k + 1.0)
    return out


@lru_cache(maxsize=16)
def gauss_hermite_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for ``E[f(G)] ≈ Σ_q w_q f(x_q)``, ``G ~ N(0,1)`` (weights sum to 1)."""
    nodes, weights = roots_hermitenorm(order)
    weights = weights / np.sqrt(2.0 * np.pi)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


def cosine_moments(dimension: float, degree: int) -> np.ndarray:
    """Moments ``E[c^k]``, ``k = 0..degree``, of the cosine c between two independent uniform
    directions in R^dimension (density ∝ (1 - c²)^{(dimension-3)/2} on [-1, 1]).

    Odd moments vanish; ``E[c^{2m}] = Π_{j<m} (2j + 1) / (dimension + 2j)``, so ``E[c²] = 1/dimension``.
    ``dimension = inf`` gives the point mass at c = 0 (only ``E[c^0] = 1``).
    """
    moments = np.zeros(degree + 1)
    moments[0] = 1.0
    if np.isinf(dimension):
        return moments
    value = 1.0
    for m in range(1, degree // 2 + 1):
        value *= (2.0 * m - 1.0) / (dimension + 2.0 * m - 2.0)
        moments[2 * m] = value
    return moments


def finite_coefficients(field: str, values: Any) -> tuple[float, ...]:
    """``values`` as a tuple of floats; ValueError naming ``field`` and the values unless it is a
    non-empty list of finite numbers (coefficients of a Hermite expansion)."""
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{field} = {values!r} must be a non-empty list of finite numbers")
    values = list(values)
    if not values:
        raise ValueError(f"{field} = {values!r} must be a non-empty list of finite numbers")
    return tuple(finite_number(field, x) for x in values)
