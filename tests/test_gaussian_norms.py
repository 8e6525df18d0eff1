"""The norm of a centred Gaussian vector (reduced_pde.analysis.gaussian_norms): E|Z| and the generalised
chi-square distribution function against closed forms and a direct quadrature."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import gammaln, roots_legendre

from reduced_pde.analysis.gaussian_norms import (
    gaussian_norm_mean,
    generalised_chi_square_cdf,
    mixture_norm_quantiles,
)


@pytest.mark.parametrize("n", [1, 2, 14, 31])
def test_isotropic_mean_and_cdf_are_the_chi_distribution(n):
    # C = λ I_n: |Z| = sqrt(λ) χ_n, E|Z| = sqrt(2λ) Γ((n+1)/2)/Γ(n/2); the trapezoid in log u is exact to
    # round-off (module doc), the Talbot CDF to < 3e-11 (module doc; bound 1e-10)
    lam = 0.37
    exact = np.sqrt(2 * lam) * np.exp(gammaln((n + 1) / 2) - gammaln(n / 2))
    assert gaussian_norm_mean(np.array([lam]), np.array([n])) == pytest.approx(exact, rel=1e-12)
    x = lam * stats.chi2.ppf([0.01, 0.3, 0.7, 0.999], n)
    cdf = generalised_chi_square_cdf(x, np.array([lam]), np.array([n]))
    assert np.allclose(cdf, stats.chi2.cdf(x / lam, n), rtol=0, atol=1e-10)


def _direct_cdf(x: np.ndarray, a: float, lam: float, n: int, nodes: int = 400) -> np.ndarray:
    """P(a Z² + λ χ²_n <= x) = ∫_{|z| <= e} φ(z) F_{χ²_n}((x − a z²)/λ) dz, e = sqrt(x/a), by Gauss–Legendre:
    for e <= 12 with z = e sin φ (the integrand becomes φ(e sin φ) F_{χ²_n}(x cos²φ / λ) e cos φ, smooth on
    [−π/2, π/2]); for e > 12 on |z| <= 12 (smooth there; φ(12) < 1e-31)."""
    u, w = roots_legendre(nodes)
    x = np.asarray(x, dtype=float)[:, None]
    edge = np.sqrt(x / a)
    phi = 0.5 * np.pi * u
    inner = stats.norm.pdf(edge * np.sin(phi)) * stats.chi2.cdf(x * np.cos(phi) ** 2 / lam, n) * edge * np.cos(phi)
    z = 12.0 * u
    wide = stats.norm.pdf(z) * stats.chi2.cdf((x - a * z * z) / lam, n) * 12.0
    return np.where(edge[:, 0] <= 12.0, 0.5 * np.pi * inner @ w, wide @ w)


@pytest.mark.parametrize("a, lam, n", [(2.0, 0.05, 14), (1000.0, 1.0, 14), (1.0, 1000.0, 14), (1.0, 1.0, 30)])
def test_two_block_cdf_and_mean_against_direct_quadrature(a, lam, n):
    # Q = a Z² + λ χ²_n against an independent quadrature (_direct_cdf: 400 vs 800 nodes agree to < 1e-13
    # here), from the 6% to the 99.9% point; a/λ up to 10³ (one dominant eigenvalue: Imhof's integral would
    # oscillate ~10⁴ times)
    eigenvalues, multiplicities = np.array([a, lam, 0.0]), np.array([1, n, 1])  # a zero eigenvalue is allowed
    xs = np.array([0.1 * a + 0.5 * lam * n, a + lam * n, 4 * a + 1.5 * lam * n, 9 * a + 2 * lam * n])
    cdf = generalised_chi_square_cdf(xs, eigenvalues, multiplicities)
    direct = _direct_cdf(xs, a, lam, n)
    assert np.allclose(direct, _direct_cdf(xs, a, lam, n, 800), rtol=0, atol=1e-13)
    assert np.allclose(cdf, direct, rtol=0, atol=1e-10)
    # E|Z| = ∫_0^∞ P(|Z| > r) dr with the direct CDF: Gauss–Legendre on [0, 12 sqrt(E Q)] (the tail beyond is
    # < P(|Z| > 12 sqrt(EQ)) · ... < 1e-30), 400 nodes; agreement to 1e-9 relative
    top = 12 * np.sqrt(a + lam * n)
    u, w = roots_legendre(400)
    r = 0.5 * top * (u + 1)
    mean = 0.5 * top * (1 - _direct_cdf(r ** 2, a, lam, n)) @ w
    assert gaussian_norm_mean(eigenvalues, multiplicities) == pytest.approx(mean, rel=1e-9)


def test_mixture_quantiles_solve_the_mixture_cdf():
    # Σ_x w_x P(|Z_x|² <= r²) = level at the returned r (to the CDF's accuracy, 1e-10), batched over two
    # mixtures; a mixture with every C_x = 0 has all quantiles 0
    weights = np.array([0.3, 0.7])
    eigenvalues = np.array([[[2.0, 0.05], [0.2, 0.3]], [[0.0, 0.0], [0.0, 0.0]]])
    multiplicities = np.array([1, 14])
    levels = np.array([0.5, 0.9, 0.99])
    r = mixture_norm_quantiles(levels, weights, eigenvalues, multiplicities)
    cdf = generalised_chi_square_cdf(r[0][:, None] ** 2, eigenvalues[0][None], multiplicities) @ weights
    assert np.allclose(cdf, levels, rtol=0, atol=1e-9)
    assert np.all(r[1] == 0.0)
    with pytest.raises(ValueError, match="covariance"):
        gaussian_norm_mean(np.array([-1.0]), np.array([1]))


def test_mixture_quantiles_and_mean_against_monte_carlo():
    # a 3-component mixture of N(0, α_x e eᵀ + λ_x(I − e eᵀ)) in R^40 (the mixture model's coupling law),
    # weights 0.2, 0.5, 0.3: the sample quantile at level x has standard error √(x(1 − x)/n)/f(q) (f the
    # mixture density, by central differences of the CDF), the sample mean std/√n: 5 standard errors
    rng = np.random.default_rng(3)
    d, n = 40, 200_000
    alpha, lam, weights = np.array([2.0, 0.5, 0.1]), np.array([0.01, 0.02, 0.05]), np.array([0.2, 0.5, 0.3])
    component = rng.choice(3, size=n, p=weights)
    samples = np.sqrt(alpha[component] * rng.chisquare(1, n) + lam[component] * rng.chisquare(d - 1, n))
    eigenvalues, multiplicities = np.stack([alpha, lam], axis=-1), np.array([1.0, d - 1.0])
    levels = np.array([0.5, 0.9, 0.99])

    def mixture_cdf(r: float) -> float:
        return float(generalised_chi_square_cdf(np.full(3, r * r), eigenvalues, multiplicities) @ weights)

    for x, value in zip(levels, mixture_norm_quantiles(levels, weights, eigenvalues, multiplicities)):
        h = 1e-4 * value
        density = (mixture_cdf(value + h) - mixture_cdf(value - h)) / (2 * h)
        se = np.sqrt(x * (1 - x) / n) / density
        assert abs(np.quantile(samples, x) - value) < 5 * se, (x, value, np.quantile(samples, x), se)
    mean = weights @ gaussian_norm_mean(eigenvalues, multiplicities)
    assert abs(samples.mean() - mean) < 5 * samples.std() / np.sqrt(n)
