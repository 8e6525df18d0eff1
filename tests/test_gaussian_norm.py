"""The norm of N(0, α P + λ(I − P)) (reduced_pde.analysis.gaussian_norm): mean, CDF, quantiles against
an independent identity, the CDF's own moments and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import simpson
from scipy.special import gammaln, roots_jacobi

from reduced_pde.analysis.gaussian_norm import gaussian_norm_cdf, gaussian_norm_mean, gaussian_norm_quantiles

CASES = [(320, 1, 1.0, 0.5), (40, 1, 5.0, 0.01), (5, 2, 0.01, 1.0), (3, 1, 1.0, 0.0), (320, 1, 1.0, 1e-5)]


def _mean_chi(k: int) -> float:
    """E√χ²_k = √2 Γ((k + 1)/2)/Γ(k/2)."""
    return math.sqrt(2) * math.exp(gammaln((k + 1) / 2) - gammaln(k / 2))


@pytest.mark.parametrize("d, p", [(320, 1), (40, 1), (5, 2), (3, 1)])
def test_mean_in_closed_form_cases(d, p):
    # α = λ: |Z|² = α χ²_d; λ = 0: α χ²_p; α = 0: λ χ²_{d−p}; the trapezoidal rule's error ~1e-15
    assert float(gaussian_norm_mean(0.7, 0.7, d, p)) == pytest.approx(math.sqrt(0.7) * _mean_chi(d), rel=1e-13)
    assert float(gaussian_norm_mean(0.7, 0.0, d, p)) == pytest.approx(math.sqrt(0.7) * _mean_chi(p), rel=1e-13)
    assert float(gaussian_norm_mean(0.0, 0.7, d, p)) == pytest.approx(math.sqrt(0.7) * _mean_chi(d - p), rel=1e-13)
    assert float(gaussian_norm_mean(0.0, 0.0, d, p)) == 0.0


@pytest.mark.parametrize("d, p, alpha, lam", CASES)
def test_mean_against_the_beta_chi_decomposition(d, p, alpha, lam):
    # |Z| = √S √(αB + λ(1 − B)), S ~ χ²_d independent of B ~ Beta(p/2, q/2): E|Z| = E√χ²_d · E√h(B), the
    # latter by Gauss–Jacobi for the Beta weight; that rule's error, taken as its change from 400 to 800
    # nodes (it converges slowly where λ/α is small: √h is singular at B = −λ/(α − λ)), bounds the gap
    q = d - p

    def beta_mean(nodes: int) -> float:
        x, w = roots_jacobi(nodes, q / 2 - 1, p / 2 - 1)
        b = (1 + x) / 2
        return _mean_chi(d) * float((w / w.sum()) @ np.sqrt(alpha * b + lam * (1 - b)))

    coarse, fine = beta_mean(400), beta_mean(800)
    assert float(gaussian_norm_mean(alpha, lam, d, p)) == pytest.approx(fine, abs=2 * abs(fine - coarse) + 1e-13 * fine)


@pytest.mark.parametrize("d, p, alpha, lam", CASES[:4])
def test_cdf_moments_are_the_mean_and_the_trace(d, p, alpha, lam):
    # E|Z| = ∫(1 − F) dz and E|Z|² = ∫2z(1 − F) dz = pα + (d − p)λ = tr C; the CDF's error is <= 1e-9
    # relative, and Simpson's rule on 4001 points to beyond the 1 − 1e-15 point has error ~ h⁴ ~ 1e-8
    upper = 1.5 * math.sqrt(max(alpha, lam) * (d + 40 * math.sqrt(2 * d) + 80))
    z = np.linspace(0.0, upper, 4001)
    tail = 1.0 - gaussian_norm_cdf(z, [alpha], [lam], d, p)
    trace = p * alpha + (d - p) * lam
    assert simpson(tail, x=z) == pytest.approx(float(gaussian_norm_mean(alpha, lam, d, p)), rel=1e-6)
    assert simpson(2 * z * tail, x=z) == pytest.approx(trace, rel=1e-6)


def test_mixture_quantiles_against_monte_carlo():
    # a 3-component mixture in R^40 with weights 0.2, 0.5, 0.3; the sample quantile at level x has standard
    # error √(x(1 − x)/n)/f(q) (f the density, from the CDF by central differences): 5 standard errors
    rng = np.random.default_rng(3)
    d, n = 40, 200_000
    alpha, lam, weights = np.array([2.0, 0.5, 0.1]), np.array([0.01, 0.02, 0.05]), np.array([0.2, 0.5, 0.3])
    component = rng.choice(3, size=n, p=weights)
    samples = np.sqrt(alpha[component] * rng.chisquare(1, n) + lam[component] * rng.chisquare(d - 1, n))
    levels = [0.5, 0.9, 0.99]
    quantiles = gaussian_norm_quantiles(levels, alpha, lam, d, weights=weights)
    for x, value in zip(levels, quantiles):
        assert float(gaussian_norm_cdf(value, alpha, lam, d, weights=weights)) == pytest.approx(x, abs=1e-9)
        h = 1e-4 * value
        density = float(gaussian_norm_cdf(value + h, alpha, lam, d, weights=weights)
                        - gaussian_norm_cdf(value - h, alpha, lam, d, weights=weights)) / (2 * h)
        se = math.sqrt(x * (1 - x) / n) / density
        assert abs(np.quantile(samples, x) - value) < 5 * se, (x, value, np.quantile(samples, x), se)
    mean = weights @ gaussian_norm_mean(alpha, lam, d)
    assert abs(samples.mean() - mean) < 5 * samples.std() / math.sqrt(n)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="alpha"):
        gaussian_norm_mean(-1.0, 1.0, 4)
    with pytest.raises(ValueError, match="along"):
        gaussian_norm_mean(1.0, 1.0, 4, along=5)
    with pytest.raises(ValueError, match="probabilities"):
        gaussian_norm_quantiles([1.0], [1.0], [1.0], 4)
