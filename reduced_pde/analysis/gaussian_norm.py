"""The norm of a centred Gaussian vector with a two-block covariance: mean, CDF and quantiles.

``Z ~ N(0, α P + λ (I − P))`` in R^d, P an orthogonal projection of rank p (``along``), q = d − p.
Then ``|Z|² = α X + λ Y`` with independent ``X ~ χ²_p``, ``Y ~ χ²_q`` (a generalised chi-square), and

* the mean, from ``√x = (1/(2√π)) ∫_0^∞ (1 − e^{−ux}) u^{−3/2} du`` and
  ``E e^{−u|Z|²} = (1 + 2uα)^{−p/2} (1 + 2uλ)^{−q/2}``:

      E|Z| = (1/(2√π)) ∫_0^∞ (1 − (1 + 2uα)^{−p/2} (1 + 2uλ)^{−q/2}) u^{−3/2} du,

  computed with ``u = e^s/σ²`` (σ² = pα + qλ = E|Z|²) by the trapezoidal rule in s on [−72, 72], step
  1/4: the integrand is analytic in the strip |Im s| < π and decays like e^{−|s|/2}, so the rule's
  error is below e^{−2π²/h} ≈ 1e-34 and the truncation's below 4e^{−36} ≈ 1e-15 (relative);
* the CDF, from the independence of ``S = X + Y ~ χ²_d`` and ``B = X/S ~ Beta(p/2, q/2)``:

      P(|Z| <= z) = E_B F_{χ²_d}(z² / (αB + λ(1 − B))),

  computed adaptively in φ, B = sin²φ (:func:`gaussian_norm_cdf`; tested against Monte Carlo);
* quantiles of a finite mixture of such laws (weights summing to 1) by inverting its CDF with
  Brent's method on a bracket that holds the quantile (``min(α, λ) χ²_d <= |Z|² <= max(α, λ) χ²_d``).

Used for the coupling gap's limit law (``docs/finite_width.md`` §5: given θ_i(0), √N(θ_i − θ̄_i)
tends to N(0, C_t(θ)), C_t = α θ̂θ̂ᵀ + λ(I − θ̂θ̂ᵀ) for an isotropic initial law).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.integrate import quad_vec
from scipy.special import betaln, gammainc
from scipy.stats import chi2

__all__ = ["gaussian_norm_mean", "gaussian_norm_cdf", "gaussian_norm_quantiles"]

_S = np.arange(-72.0, 72.0 + 1e-9, 0.25)  # the trapezoidal rule in s = log(σ² u)


def _check_blocks(alpha: np.ndarray, lam: np.ndarray, dimension: int, along: int) -> tuple[int, int]:
    if isinstance(dimension, bool) or int(dimension) != dimension or dimension < 1:
        raise ValueError(f"dimension = {dimension!r} must be an integer >= 1")
    if isinstance(along, bool) or int(along) != along or not 0 <= along <= dimension:
        raise ValueError(f"along = {along!r} must be an integer in [0, dimension = {dimension}]")
    if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(lam))) or np.any(alpha < 0) or np.any(lam < 0):
        raise ValueError(f"alpha = {alpha!r} and lam = {lam!r} must be finite and >= 0 (variances)")
    return int(along), int(dimension) - int(along)


def gaussian_norm_mean(alpha: np.ndarray | float, lam: np.ndarray | float, dimension: int,
                       along: int = 1) -> np.ndarray:
    """``E|Z|``, ``Z ~ N(0, α P + λ(I − P))`` in R^``dimension``, rank P = ``along`` (module doc);
    elementwise over broadcast ``alpha``, ``lam``; 0 where both vanish."""
    alpha, lam = np.broadcast_arrays(np.asarray(alpha, dtype=float), np.asarray(lam, dtype=float))
    p, q = _check_blocks(alpha, lam, dimension, along)
    total = p * alpha + q * lam
    safe = np.where(total > 0, total, 1.0)
    a, b = (alpha / safe)[..., None], (lam / safe)[..., None]
    u = np.exp(_S)
    # −expm1 keeps 1 − E e^{−u|Z|²} accurate where u is small (it is ≈ u there)
    one_minus = -np.expm1(-(p / 2) * np.log1p(2 * u * a) - (q / 2) * np.log1p(2 * u * b))
    integral = 0.25 * np.sum(one_minus * np.exp(-_S / 2), axis=-1)  # ∫ (1 − L) u^{−3/2} du, u = e^s
    return np.where(total > 0, np.sqrt(safe) * integral / (2 * math.sqrt(math.pi)), 0.0)


def gaussian_norm_cdf(z: np.ndarray | float, alpha: np.ndarray, lam: np.ndarray, dimension: int,
                      along: int = 1, weights: np.ndarray | None = None) -> np.ndarray:
    """``Σ_m weights[m] P(|Z_m| <= z)`` for ``Z_m ~ N(0, α_m P + λ_m(I − P))`` (module doc), at each z
    (any shape); ``alpha``, ``lam``, ``weights`` of shape (M,) (weights default 1/M).

    ``P(|Z| <= z) = E_B F_{χ²_d}(z²/(αB + λ(1 − B)))`` with ``B = sin²φ``: the Beta(p/2, q/2) law of B is
    ``2 sin^{p−1}φ cos^{q−1}φ dφ / Beta(p/2, q/2)`` on [0, π/2], smooth for all p, q >= 1, and the
    integral is adaptive (:func:`scipy.integrate.quad_vec`, error <= 1e-11 + 1e-9 × value): the integrand is
    sharp in φ where α/λ is far from 1 (e.g. λ = 0 puts a step at B ≈ z²/(α d))."""
    alpha, lam = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (alpha, lam))
    p, q = _check_blocks(alpha, lam, dimension, along)
    weights = np.full(alpha.size, 1.0 / alpha.size) if weights is None else np.asarray(weights, dtype=float)
    z = np.asarray(z, dtype=float)
    z2 = (z ** 2).reshape(-1)[:, None]  # (Z, 1) against components (1, M)

    def conditional(h: np.ndarray) -> np.ndarray:
        """F_{χ²_d}(z²/h) (Z, M); h = 0: |Z| = 0 <= z."""
        with np.errstate(divide="ignore"):
            ratio = np.where(h > 0, z2 / np.where(h > 0, h, 1.0), np.inf)
        return gammainc(dimension / 2, ratio / 2) @ weights  # F_{χ²_d}(y) = P(d/2, y/2)

    if p == 0 or q == 0:  # one block: |Z|² = (α or λ) χ²_d
        return conditional((alpha if q == 0 else lam)[None, :]).reshape(z.shape)
    log_beta = betaln(p / 2, q / 2)

    def integrand(phi: float) -> np.ndarray:
        b = math.sin(phi) ** 2
        density = 2.0 * math.exp((p - 1) * math.log(math.sin(phi) + 1e-300) + (q - 1) * math.log(math.cos(phi) + 1e-300)
                                 - log_beta)
        return density * conditional((alpha * b + lam * (1 - b))[None, :])

    value, _ = quad_vec(integrand, 0.0, math.pi / 2, epsabs=1e-11, epsrel=1e-9)
    return np.clip(value, 0.0, 1.0).reshape(z.shape)


def gaussian_norm_quantiles(probabilities: Sequence[float], alpha: np.ndarray, lam: np.ndarray,
                            dimension: int, along: int = 1, weights: np.ndarray | None = None) -> np.ndarray:
    """Quantiles of |Z| for the mixture ``Σ_m weights[m] N(0, α_m P + λ_m(I − P))`` at ``probabilities``
    (each in (0, 1)): the CDF of :func:`gaussian_norm_cdf` inverted by Brent's method (to 1e-10 relative)."""
    alpha, lam = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (alpha, lam))
    _check_blocks(alpha, lam, dimension, along)
    probabilities = [float(x) for x in probabilities]
    if any(not 0 < x < 1 for x in probabilities):
        raise ValueError(f"probabilities = {probabilities!r} must lie in (0, 1)")
    top = float(np.max(np.maximum(alpha, lam)))
    if top == 0:
        return np.zeros(len(probabilities))
    # |Z_m|² lies between min(α_m, λ_m) χ²_d and max(α_m, λ_m) χ²_d, so the mixture's x-quantile lies
    # between the smallest and the largest of those bounds' x-quantiles: Brent inside that bracket
    low, high = float(np.min(np.minimum(alpha, lam))), top
    out = []
    for x in probabilities:
        f = chi2.ppf(x, int(dimension))
        out.append(brentq(lambda z: float(gaussian_norm_cdf(z, alpha, lam, dimension, along, weights)) - x,
                          math.sqrt(low * f) * (1 - 1e-9), math.sqrt(high * f) * (1 + 1e-9), xtol=1e-13, rtol=1e-10))
    return np.array(out)
