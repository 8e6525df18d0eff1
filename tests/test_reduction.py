"""Activations' Gaussian expectations and the MMN18 radial reduction, against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reduced_pde import (IsotropicGaussianMixture, IsotropicMixtureRadialProblem, ScaledChi,
                         SmoothActivation, make_activation)
from reduced_pde.hermite import cosine_moments

ACTIVATIONS = ["mmn18", "relu", "tanh", "erf", "sigmoid"]


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("correlation", [0.0, 0.35, -0.8, 0.97])
def test_mehler_series_matches_direct_bivariate_expectation(name: str, correlation: float) -> None:
    """Σ_k α_k(n1) α_k(n2) c^k (closed-form / quadrature coefficients) equals the directly
    integrated E[σ(n1 X)σ(n2 Y)].  The series tail after degree K is <= |c|^{K+1} sqrt(T1 T2) with
    T = Σ_{k>K} α_k²; at K = 300, |c| <= 0.97 this is < 1e-4·E σ², and far smaller for |c| < .8."""
    activation = make_activation(name)
    n1, n2, degree = 0.7, 1.9, 300
    a1 = activation.hermite_coefficients(np.array(n1), degree)
    a2 = activation.hermite_coefficients(np.array(n2), degree)
    series = float(np.sum(a1 * a2 * correlation ** np.arange(degree + 1)))
    direct = activation.bivariate_expectation(n1, n2, correlation)
    t1 = max(activation.second_moment(np.array(n1)) - np.sum(a1**2), 0.0)
    t2 = max(activation.second_moment(np.array(n2)) - np.sum(a2**2), 0.0)
    tail_bound = abs(correlation) ** (degree + 1) * math.sqrt(t1 * t2)
    assert abs(series - direct) <= tail_bound + 1e-12  # quadrature round-off ~1e-14


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_hermite_coefficient_derivative_matches_finite_difference(name: str) -> None:
    activation = make_activation(name)
    n = np.array([0.3, 1.0, 2.2])
    step = 1e-6
    fd = (activation.hermite_coefficients(n + step, 12)
          - activation.hermite_coefficients(n - step, 12)) / (2 * step)
    # central difference error ~ step² |α'''| + round-off 1e-16/step ≈ 1e-10
    np.testing.assert_allclose(activation.hermite_coefficients_derivative(n, 12), fd, atol=1e-7)


def test_relu_closed_forms() -> None:
    """E[relu(nG)] = n/√(2π), E[relu(nG)²] = n²/2, arc-cosine kernel at correlation c."""
    relu = make_activation("relu")
    n = np.array([0.0, 0.5, 3.0])
    np.testing.assert_allclose(relu.gaussian_mean(n), n / math.sqrt(2 * math.pi), rtol=1e-14)
    np.testing.assert_allclose(relu.second_moment(n), n**2 / 2, rtol=1e-12, atol=1e-15)
    c = 0.4
    arccos = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / (2 * math.pi)
    assert relu.bivariate_expectation(1.3, 0.6, c) == pytest.approx(1.3 * 0.6 * arccos, rel=1e-12)


def test_user_callable_activation_matches_builtin() -> None:
    mine = SmoothActivation(np.tanh, lambda t: 1 - np.tanh(t) ** 2, name="my_tanh")
    n = np.array([0.4, 1.5])
    np.testing.assert_allclose(mine.hermite_coefficients(n, 8),
                               make_activation("tanh").hermite_coefficients(n, 8), atol=1e-15)


def test_cosine_moments_against_monte_carlo() -> None:
    """E c^2 = 1/d and E c^4 = 3/(d(d+2)); Monte-Carlo check with 4e5 pairs (rel. s.e. ≈ 0.3%)."""
    d = 7
    rng = np.random.default_rng(1)
    u = rng.standard_normal((400_000, d))
    v = rng.standard_normal((400_000, d))
    c = np.sum(u * v, 1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    moments = cosine_moments(d, 4)
    assert moments[2] == pytest.approx(1 / d)
    assert moments[4] == pytest.approx(3 / (d * (d + 2)))
    for k in (2, 4):
        samples = c**k
        se = samples.std() / math.sqrt(samples.size)
        assert abs(samples.mean() - moments[k]) < 5 * se


@pytest.mark.parametrize("dimension", [5, 40, 320, math.inf])
def test_low_rank_kernel_matches_exact_average_over_overlap(dimension: float) -> None:
    """Truncated c-series vs Gauss–Jacobi quadrature over c of the exact bivariate kernel: the
    difference must respect the rigorous Cauchy–Schwarz truncation bound b_i b_j (plus the
    quadrature error of the reference, ~1e-9 at d = 5 with 48 Jacobi nodes)."""
    problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, dimension), "mmn18")
    r = np.array([0.05, 0.6, 1.4, 2.7])
    low_rank = problem.interaction_low_rank(r).dense()
    exact = problem.interaction_kernel(r, r)
    bound = np.outer(*(2 * [problem.interaction_truncation_bound(r)]))
    assert np.all(np.abs(low_rank - exact) <= bound + 1e-9)
    if math.isinf(dimension):
        q = [make_activation("mmn18").gaussian_mean(s * r) for s in (1.5, 0.5)]
        np.testing.assert_allclose(low_rank, 0.5 * np.outer(q[0], q[0]) + 0.5 * np.outer(q[1], q[1]),
                                   rtol=1e-13)


def test_reduced_potential_against_monte_carlo() -> None:
    """v(r) = −E[y σ(⟨w,x⟩)] for a fixed w with |w| = r, by 2e6 samples of ⟨w,x⟩ (s.e. ≈ 3e-3)."""
    data = IsotropicGaussianMixture(0.5, 10)
    problem = IsotropicMixtureRadialProblem(data, "mmn18")
    rng = np.random.default_rng(3)
    w = np.zeros(10)
    w[0] = 1.1
    x, y = data.sample(2_000_000, rng)
    samples = -y * problem.activation(x @ w)
    se = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - problem.reduced_potential(np.array([1.1]))[0]) < 5 * se
    grad = problem.reduced_potential_gradient(np.array([1.1]))[0]
    fd = (problem.reduced_potential(np.array([1.1 + 1e-6])) - problem.reduced_potential(
        np.array([1.1 - 1e-6])))[0] / 2e-6
    assert grad == pytest.approx(fd, abs=1e-7)


def test_network_risk_of_rotation_invariant_law_matches_reduced_risk() -> None:
    """The exact risk of an N-network, averaged over directions, equals R of the reduced law up to
    the diagonal (i = j) terms: E_dirs R_N = R(p̂) + (1/N²) Σ_i (E σ²(r_i) − u(r_i, r_i)) [averaged
    over classes].  20 direction draws; tolerance 5 standard errors of that average."""
    d, n_neurons = 12, 30
    problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.4, d), "mmn18", kappa=0.8)
    rng = np.random.default_rng(5)
    norms = ScaledChi(0.8, d).quantile(rng.random(n_neurons))
    masses = np.full(n_neurons, 1 / n_neurons)
    draws = []
    for _ in range(20):
        g = rng.standard_normal((n_neurons, d))
        draws.append(problem.network_risk(g / np.linalg.norm(g, axis=1)[:, None] * norms[:, None])[0])
    draws = np.array(draws)
    diagonal = sum(0.5 * problem.activation.second_moment(s * norms) for s in (1.4, 0.6))
    u_diag = np.diag(problem.interaction_low_rank(norms).dense())
    expected = problem.risk(norms, masses) + np.sum(diagonal - u_diag) / n_neurons**2
    assert abs(draws.mean() - expected) < 5 * draws.std() / math.sqrt(draws.size) + 1e-9


def test_bad_inputs_are_refused_with_field_names() -> None:
    with pytest.raises(ValueError, match="activation.name = 'softsign'"):
        make_activation("softsign")
    with pytest.raises(ValueError, match="data.dimension = 1"):
        IsotropicGaussianMixture(0.5, 1)
    with pytest.raises(ValueError, match="data.delta"):
        IsotropicGaussianMixture(1.5, 10)
    with pytest.raises(ValueError, match="initial.kappa"):
        ScaledChi(-1.0, 10)
    with pytest.raises(ValueError, match="t2 must exceed"):
        make_activation({"name": "mmn18", "t1": 2.0, "t2": 1.0})
    with pytest.raises(ValueError, match="unknown parameter"):
        make_activation({"name": "relu", "slope": 2.0})


@pytest.mark.parametrize("name", ["mmn18", "relu"])
def test_piecewise_linear_second_moment_closed_form(name: str) -> None:
    """Closed-form E[σ(nG)²] vs composite Gauss–Legendre of σ² (exact to round-off on smooth pieces),
    including the n → 0 limit σ(0)²."""
    activation = make_activation(name)
    n = np.array([0.0, 1e-9, 0.01, 0.3, 1.0, 2.5, 50.0])
    direct = np.array([activation.bivariate_expectation(x, x, 1.0) for x in n])
    np.testing.assert_allclose(activation.second_moment(n), direct, rtol=1e-11, atol=1e-14)
