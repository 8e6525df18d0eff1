"""Single-index reduction (reduced_pde/single_index.py, reduced_pde/targets.py) against independent
references: Monte Carlo over x, finite differences, Gauss–Jacobi quadrature over the overlap c of the
direct bivariate expectation, Monte Carlo over random orthogonal directions, closed forms on the
sphere, and a test-set estimate of a finite network's risk."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from reduced_pde.activations import PolynomialActivation, SmoothActivation, make_activation
from reduced_pde.hermite import cosine_moments
from reduced_pde.models.single_index import SingleIndexProblem, absolute_cosine_moments
from reduced_pde.targets import CallableTarget, HermiteTarget, make_target
from tests.problem_checks import assert_gradients_match_finite_differences

# σ = He_2 + He_3/2 (a "He_2/He_3-type" polynomial activation) in the probabilists' basis
POLY = {"name": "polynomial", "he_coefficients": [0.0, 0.0, 1.0, 0.5]}


def _problem(target, activation, d, **kw) -> SingleIndexProblem:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # capped-degree warnings: the bound is checked explicitly
        problem = SingleIndexProblem(target, activation, d, **kw)
        problem.series_degrees()
    return problem


def _neuron(s: float, r: float, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    theta = np.zeros(d)
    theta[0] = 1.0
    perp = np.zeros(d)
    perp[1] = 1.0
    return theta, perp, s * theta + r * perp


# ---- potential ------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation, target", [("relu", {"name": "tanh"}),
                                                ("tanh", {"he": [0.2, 1.0, 0.5, 0.3]}),
                                                (POLY, {"name": "relu"})])
def test_potential_and_gradient_against_monte_carlo(activation, target) -> None:
    """v = −a E[φ(z) σ(⟨w,x⟩)], ∂_s v = −a E[φ σ'(⟨w,x⟩) z], ∂_r v = −a E[φ σ' ⟨e⊥,x⟩], ∂_a v = v/a,
    by 10^6 full-dimensional samples x ~ N(0, I_5).  Each assertion: |series − MC| < 5 s.e. plus the
    series' rigorous truncation bound (potential_truncation_bound; 0 when φ or σ is polynomial)."""
    d, a, s, r = 5, 0.8, 0.6, 0.9
    problem = _problem(target, activation, d)
    theta, perp, w = _neuron(s, r, d)
    x = np.random.default_rng(11).standard_normal((1_000_000, d))
    z, pre = x @ theta, x @ w
    phi = problem.target(z)
    act = problem.activation
    point = np.array([[a, s, r]])
    v = problem.reduced_potential(point)[0]
    grad = problem.reduced_potential_gradient(point)[0]
    slack = problem.potential_truncation_bound(point)[0]
    samples = {
        "v": -a * phi * act(pre),
        "a": -phi * act(pre),
        "s": -a * phi * act.derivative(pre) * z,
        "r": -a * phi * act.derivative(pre) * (x @ perp),
    }
    predicted = {"v": v, "a": grad[0], "s": grad[1], "r": grad[2]}
    for key, values in samples.items():
        se = values.std() / math.sqrt(values.size)
        assert abs(values.mean() - predicted[key]) < 5 * se + 3 * slack, key


@pytest.mark.parametrize("sphere", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_gradients_match_finite_differences(sphere: bool, train: bool) -> None:
    """Analytic ∇v and ∇g_kj against central differences (h = 1e-6: error ~ h²|f'''| + 1e-16/h ≈ 1e-10;
    tolerance 1e-7), in all four coordinate systems, including a point with s < 0."""
    problem = _problem({"he": [0.0, 1.0, 0.5, 0.3]}, "tanh", 7, sphere=sphere, train_second_layer=train,
                       truncation_tolerance=1e-6, scale_bound=2.0, max_degree=24)
    dim = len(problem.coordinate_names)
    x = np.random.default_rng(0).uniform(0.2, 0.9, (4, dim))
    x[0, -1 if sphere else dim - 2] *= -1.0  # s < 0
    assert_gradients_match_finite_differences(problem, x, h=1e-6, atol=1e-7)


def test_gradient_at_the_origin_is_the_limit_along_r() -> None:
    """At n = 0 the convention is the limit s = 0, r → 0+: ∇v(a, 0, 0) equals ∇v(a, 0, 1e-7) up to
    O(1e-7) (tanh: v is smooth in w), and likewise the feature gradients."""
    problem = _problem({"he": [0.0, 1.0, 0.5, 0.3]}, "tanh", 7, truncation_tolerance=1e-6,
                       scale_bound=2.0, max_degree=24)
    origin, near = np.array([[0.8, 0.0, 0.0]]), np.array([[0.8, 0.0, 1e-7]])
    np.testing.assert_allclose(problem.reduced_potential_gradient(origin),
                               problem.reduced_potential_gradient(near), atol=1e-6)
    np.testing.assert_allclose(problem.interaction_features_gradient(origin),
                               problem.interaction_features_gradient(near), atol=1e-6)
    assert abs(problem.reduced_potential_gradient(origin)[0, 1]) > 0.1  # ∂_s v(0) = −a φ̂_1 σ'(0) ≠ 0


# ---- interaction ----------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh", "he2", POLY])
@pytest.mark.parametrize("dimension", [5, 20, math.inf])
def test_low_rank_kernel_within_bound_of_gauss_jacobi_reference(activation, dimension) -> None:
    """|u_{K,J} − u_exact| <= b_i b_j (the Cauchy–Schwarz bound of the module docstring) where
    u_exact = a a' E_c E[σ(nX)σ(n'Y)] by 64-node Gauss–Jacobi over c of the direct bivariate
    expectation.  Slack 1e-12: the reference's quadrature error (the ReLU kernel has a sqrt(1−γ)
    endpoint singularity when x = x'; 64 vs 128 nodes differ by < 1e-16 here) and round-off of the
    tails T_K = Eσ² − Σα² (measured excess over the bound <= 9e-15).  The bound is attained (ratio
    1.00) at aligned diagonal pairs, where |γ| = 1.  Points include ρ = ±1 (aligned), ρ = 0 and n = 0.
    Polynomial σ: the series terminates and the bound is 0."""
    problem = _problem({"name": "relu"}, activation, dimension, truncation_tolerance=1e-5,
                       scale_bound=2.0, max_degree=40)
    x = np.array([[0.7, 0.3, 0.8], [-1.2, -0.5, 0.2], [0.4, 1.1, 0.0], [1.0, 0.0, 1.5],
                  [0.9, -0.8, 0.0], [0.5, 0.0, 0.0]])
    kernel = problem.interaction_low_rank(x)
    exact = problem.interaction_kernel(x, x)
    bound = np.outer(kernel.truncation_bound, kernel.truncation_bound)
    assert np.all(np.abs(kernel.dense() - exact) <= bound + 1e-12)
    if isinstance(problem.activation, PolynomialActivation):
        assert np.all(kernel.truncation_bound == 0.0)
        np.testing.assert_allclose(kernel.dense(), exact, atol=1e-12)
    else:  # the bound is informative: sup b² / sup Eσ² below 1e-3 at K <= 40
        assert problem.relative_truncation_error < 1e-3
    if math.isinf(dimension):
        assert kernel.rank == problem.rank() <= problem.series_degrees()[0] + 1  # odd k >= 3 skipped for ReLU


def _arccos1(gamma: np.ndarray) -> np.ndarray:
    """E[relu(X) relu(Y)] for unit-variance X, Y with correlation γ (Cho–Saul arc-cosine kernel)."""
    gamma = np.clip(gamma, -1.0, 1.0)
    return (np.sqrt(1 - gamma**2) + (np.pi - np.arccos(gamma)) * gamma) / (2 * np.pi)


@pytest.mark.parametrize("dimension", [3, 4])
def test_overlap_average_against_random_orthogonal_directions(dimension: int) -> None:
    """u(x, x') is the average of U over independent uniform orthogonal directions: draw 2·10^5 pairs
    of directions e, e' ⊥ θ*, form w = sθ* + r e, w' = s'θ* + r' e', and average the exact
    U = a a' n n' κ₁(⟨w,w'⟩/(nn')) (ReLU arc-cosine closed form — independent of any series).
    Tolerance: 5 s.e. + the truncation bound b_i b_j."""
    d = dimension
    problem = _problem({"name": "relu"}, "relu", d, truncation_tolerance=1e-6, max_degree=60)
    x = np.array([[0.9, 0.4, 0.7], [-0.6, -0.2, 1.3], [1.1, 0.9, 0.3]])
    kernel = problem.interaction_low_rank(x)
    rng = np.random.default_rng(2)
    m = 200_000
    for i, j in [(0, 1), (1, 2), (0, 0), (2, 2)]:
        (a1, s1, r1), (a2, s2, r2) = x[i], x[j]
        e1 = rng.standard_normal((m, d - 1))
        e2 = rng.standard_normal((m, d - 1))
        c = np.sum(e1 * e2, 1) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
        n1, n2 = math.hypot(s1, r1), math.hypot(s2, r2)
        samples = a1 * a2 * n1 * n2 * _arccos1((s1 * s2 + r1 * r2 * c) / (n1 * n2))
        se = samples.std() / math.sqrt(m)
        low_rank = kernel.dense()[i, j]
        assert abs(samples.mean() - low_rank) < 5 * se + kernel.truncation_bound[i] * kernel.truncation_bound[j]


def test_cosine_law_of_orthogonal_parts() -> None:
    """E|c|^i and E c^j for the cosine in R^{d−1}: E c² = 1/(d−1), E|c| by Monte Carlo (d = 6,
    4·10^5 pairs, 5 s.e.); the d = 2 atoms c = ±1 (all even moments 1)."""
    d = 6
    mom = absolute_cosine_moments(d - 1, 4)
    assert mom[2] == pytest.approx(1.0 / (d - 1)) and mom[4] == pytest.approx(cosine_moments(d - 1, 4)[4])
    rng = np.random.default_rng(4)
    u, v = rng.standard_normal((2, 400_000, d - 1))
    c = np.abs(np.sum(u * v, 1)) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    assert abs(c.mean() - mom[1]) < 5 * c.std() / math.sqrt(c.size)
    np.testing.assert_allclose(absolute_cosine_moments(1, 5), 1.0)


# ---- sphere closed forms ----------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("dimension", [5, 20, math.inf])
def test_sphere_hermite_closed_forms(k: int, dimension: float) -> None:
    """σ = φ = He_k, |w| = 1: v = −a k! s^k, U = a a' k! ⟨w,w'⟩^k, and with q = (1−s²)(1−s'²),
    m = d − 1: E_c⟨w,w'⟩² = (ss')² + q/m, E_c⟨w,w'⟩³ = (ss')³ + 3ss' q/m,
    E_c⟨w,w'⟩⁴ = (ss')⁴ + 6(ss')² q/m + 3q²/(m(m+2)).  Exact polynomials: tolerance 1e-12 relative."""
    problem = _problem({"name": "he", "degree": k}, f"he{k}", dimension, sphere=True)
    s = np.array([-0.9, -0.3, 0.0, 0.45, 1.0])
    a = np.array([0.5, -1.0, 2.0, 1.3, 0.7])
    x = np.stack([a, s], axis=1)
    fact = math.factorial(k)
    np.testing.assert_allclose(problem.reduced_potential(x), -a * fact * s**k, rtol=1e-12, atol=1e-12)
    grad = problem.reduced_potential_gradient(x)
    np.testing.assert_allclose(grad[:, 0], -fact * s**k, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad[:, 1], -a * fact * k * s ** (k - 1), rtol=1e-12, atol=1e-12)
    m = dimension - 1
    ss, q = np.outer(s, s), np.outer(1 - s**2, 1 - s**2)
    moment = {2: ss**2 + q / m, 3: ss**3 + 3 * ss * q / m,
              4: ss**4 + 6 * ss**2 * q / m + 3 * q**2 / (m * (m + 2))}[k]
    kernel = problem.interaction_low_rank(x)
    np.testing.assert_allclose(kernel.dense(), np.outer(a, a) * fact * moment, rtol=1e-12, atol=1e-12)
    assert np.all(kernel.truncation_bound == 0.0)
    # fixed second layer: the same with a = second_layer
    fixed = _problem({"name": "he", "degree": k}, f"he{k}", dimension, sphere=True,
                     train_second_layer=False, second_layer=0.7)
    np.testing.assert_allclose(fixed.reduced_potential(s), -0.7 * fact * s**k, rtol=1e-12, atol=1e-12)


# ---- risk ---------------------------------------------------------------------------------------


def test_network_risk_against_test_set() -> None:
    """Exact R_N of a 12-neuron network (d = 8, tanh, target He_1 + He_3/3 + label noise 0.1) vs the
    mean of (y − f(x))² over 10^6 test samples: within 5 s.e. plus the returned series bound."""
    d, n_neurons = 8, 12
    problem = _problem({"he": [0.0, 1.0, 0.0, 1 / 3], "noise_variance": 0.1}, "tanh", d)
    rng = np.random.default_rng(7)
    a = rng.normal(0.5, 1.0, n_neurons)
    w = rng.standard_normal((n_neurons, d)) * 0.8
    w[:3] = w[0] + 0.05 * rng.standard_normal((3, d))  # nearly aligned pairs: high Mehler degree
    theta = rng.standard_normal(d)
    theta /= np.linalg.norm(theta)
    risk, bound = problem.network_risk(a, w, theta)
    x = rng.standard_normal((1_000_000, d))
    y = problem.target.sample_labels(x @ theta, rng)
    samples = (y - np.tanh(x @ w.T) @ a / n_neurons) ** 2
    se = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - risk) < 5 * se + bound
    assert bound < 1e-6


@pytest.mark.parametrize("activation", [POLY, "tanh"])
def test_network_risk_against_tensor_gauss_hermite(activation) -> None:
    """Deterministic check of network_risk at d = 3: E[(y − f(x))²] by a tensor Gauss–Hermite rule
    over x ∈ R³ (polynomial σ and φ: 8 nodes per axis, exact for degree <= 15 > 2·3; tanh: 60 nodes
    per axis, spectrally accurate, ~1e-10) plus the noise variance.  Includes two identical neurons
    (γ = 1: the Mehler pair then needs the full degree; bound returned) — tolerance 1e-9 + bound."""
    d, n_neurons = 3, 6
    problem = _problem({"he": [0.1, 1.0, 0.5, 0.3], "noise_variance": 0.2}, activation, d)
    rng = np.random.default_rng(8)
    a = rng.normal(0.5, 1.0, n_neurons)
    w = rng.standard_normal((n_neurons, d)) * 0.7
    w[1] = w[0]
    theta = np.array([0.6, 0.0, 0.8])
    risk, bound = problem.network_risk(a, w, theta)
    nodes, weights = np.polynomial.hermite_e.hermegauss(8 if activation is POLY else 60)
    weights = weights / weights.sum()
    grid = np.stack(np.meshgrid(nodes, nodes, nodes, indexing="ij"), -1).reshape(-1, 3)
    mass = np.einsum("i,j,k->ijk", weights, weights, weights).ravel()
    f = problem.activation(grid @ w.T) @ a / n_neurons
    reference = float(mass @ (problem.target(grid @ theta) - f) ** 2) + 0.2
    assert abs(risk - reference) < 1e-9 + bound
    assert bound < 1e-6


def test_reduced_risk_of_empirical_law_is_direction_averaged_network_risk() -> None:
    """R(p̂) (inherited formula, low rank) for the law of 15 reduced points equals the exact risk of
    the network averaged over independent uniform orthogonal directions, minus the diagonal
    correction (1/N²) Σ_i a_i² (E σ(n_i G)² − u(x_i, x_i)/a_i²).  Polynomial σ and φ: everything is
    exact, so the only error is the direction average (30 draws, 5 s.e.)."""
    d, n_neurons = 6, 15
    problem = _problem({"he": [0.1, 1.0, 0.5], "noise_variance": 0.2}, POLY, d)
    rng = np.random.default_rng(9)
    x = np.stack([rng.normal(0.5, 1, n_neurons), rng.normal(0, 0.7, n_neurons),
                  np.abs(rng.normal(0.8, 0.3, n_neurons))], axis=1)
    theta = np.eye(d)[0]
    draws = []
    for _ in range(30):
        e = rng.standard_normal((n_neurons, d - 1))
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        w = np.concatenate([x[:, 1:2], x[:, 2:3] * e], axis=1)
        draws.append(problem.network_risk(x[:, 0], w, theta)[0])
    draws = np.array(draws)
    masses = np.full(n_neurons, 1 / n_neurons)
    n = np.hypot(x[:, 1], x[:, 2])
    diagonal = x[:, 0] ** 2 * problem.activation.second_moment(n)
    expected = problem.risk(x, masses) + np.sum(diagonal - np.diag(problem.interaction_low_rank(x).dense())) \
        / n_neurons**2
    assert abs(draws.mean() - expected) < 5 * draws.std() / math.sqrt(draws.size) + 1e-12
    # the network's reduced coordinates are what we started from
    np.testing.assert_allclose(problem.reduced_coordinates(x[:, 0], w, theta), x, atol=1e-12)


# ---- initial law ------------------------------------------------------------------------------


def test_initial_law_cell_masses_and_samples() -> None:
    """Product law: cell masses sum to 1 on a wide grid; full-dimensional samples' invariants have the
    stated marginals (means within 5 s.e.: E s = 0, E r² = (d−1)κ²/d, E a = a0); sphere: E s² = 1/d."""
    d, kappa = 10, 0.7
    problem = _problem("relu", "relu", d, weight_scale=kappa, second_layer=0.3, second_layer_std=0.5)
    law = problem.initial_law()
    edges = [np.linspace(-3.7, 4.3, 23), np.linspace(-2, 2, 41), np.linspace(0, 3, 31)]
    masses = law.cell_masses(edges)
    assert masses.shape == (22, 40, 30) and masses.sum() == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(3)
    a, w = law.sample_network(200_000, rng)
    x = problem.reduced_coordinates(a, w, np.eye(d)[0])
    for values, mean in [(x[:, 0], 0.3), (x[:, 1], 0.0), (x[:, 2] ** 2, (d - 1) * kappa**2 / d)]:
        assert abs(values.mean() - mean) < 5 * values.std() / math.sqrt(values.size)
    reduced = law.sample_reduced(200_000, rng)
    for values, mean in [(reduced[:, 0], 0.3), (reduced[:, 1] ** 2, kappa**2 / d),
                         (reduced[:, 2] ** 2, (d - 1) * kappa**2 / d), (x[:, 1] ** 2, kappa**2 / d)]:
        assert abs(values.mean() - mean) < 5 * values.std() / math.sqrt(values.size)
    with pytest.raises(ValueError, match="grid.r"):
        law.cell_masses([edges[0], edges[1], np.linspace(0, 0.5, 5)])
    sphere = _problem("relu", "relu", d, sphere=True, train_second_layer=False).initial_law()
    s = sphere.sample_reduced(200_000, rng)[:, 0]
    assert abs(np.mean(s**2) - 1 / d) < 5 * np.std(s**2) / math.sqrt(s.size)
    assert sphere.cell_masses([np.linspace(-1, 1, 11)]).sum() == pytest.approx(1.0)
    infinite = _problem("relu", "relu", math.inf, weight_scale=kappa, train_second_layer=False)
    m = infinite.initial_law().cell_masses([np.linspace(-1, 1, 5), np.linspace(0, 1, 5)])
    assert m[2, 2] == 1.0  # point mass at (s, r) = (0, κ)


# ---- targets and inputs -------------------------------------------------------------------------


def test_targets_coefficients_and_moments() -> None:
    """He_k target: φ̂_k = sqrt(k!), E φ² = k!; He-basis and normalized specs agree; an activation
    target equals the callable one (GH quadrature, tanh: spectral, 1e-12); noise enters E[y²] only."""
    he4 = make_target({"name": "he", "degree": 4})
    np.testing.assert_allclose(he4.coefficients(6), [0, 0, 0, 0, math.sqrt(24), 0, 0])
    assert he4.second_moment == pytest.approx(24.0) and he4.exact_degree == 4
    z = np.linspace(-2, 2, 7)
    np.testing.assert_allclose(he4(z), z**4 - 6 * z**2 + 3, atol=1e-12)
    mixed = make_target({"he": [1.0, 0.0, 2.0], "noise_variance": 0.5})
    np.testing.assert_allclose(mixed.coefficients(2), [1.0, 0.0, 2.0 * math.sqrt(2.0)])
    assert mixed.label_second_moment == pytest.approx(1.0 + 8.0 + 0.5)
    assert isinstance(make_target({"hermite": [1.0, 2.0]}), HermiteTarget)
    tanh_act, tanh_call = make_target("tanh"), CallableTarget(np.tanh)
    np.testing.assert_allclose(tanh_act.coefficients(20), tanh_call.coefficients(20), atol=1e-12)
    assert tanh_act.second_moment == pytest.approx(tanh_call.second_moment, rel=1e-12)
    relu = make_target("relu")
    assert relu.second_moment == pytest.approx(0.5) and relu.tail(1) == pytest.approx(0.5 - 1 / (2 * np.pi) - 0.25)


def test_polynomial_activation_is_exact() -> None:
    """σ = He_2 + He_3/2: α_k(n) against a 200-node Gauss–Hermite projection of the callable, the
    monomial constructor, and E σ(nG)² = Σ_k α_k(n)² (finite expansion)."""
    poly = make_activation(POLY, polynomial=True)
    assert poly.polynomial_degree == 3
    n = np.array([0.0, 0.4, 1.7])
    reference = SmoothActivation(poly, poly.derivative, quadrature_order=200).hermite_coefficients(n, 6)
    np.testing.assert_allclose(poly.hermite_coefficients(n, 6), reference, atol=1e-12)
    np.testing.assert_allclose(poly.second_moment(n), np.sum(poly.hermite_coefficients(n, 6) ** 2, 0),
                               rtol=1e-12)
    monomial = PolynomialActivation.from_monomials([0.0, -1.5, 1.0, 0.5])  # = He_2 + He_3/2 + 1  (He_2 = t²−1, He_3 = t³−3t)
    t = np.linspace(-2, 2, 5)
    np.testing.assert_allclose(monomial(t), poly(t) + 1.0, atol=1e-12)


def test_bad_inputs_are_refused_with_field_names() -> None:
    with pytest.raises(ValueError, match="data.dimension = 1 "):
        SingleIndexProblem("relu", "relu", 1)
    with pytest.raises(ValueError, match="data.dimension = 2.5"):
        SingleIndexProblem("relu", "relu", 2.5)
    with pytest.raises(ValueError, match="target.name = 'sinc'"):
        make_target({"name": "sinc"})
    with pytest.raises(ValueError, match="target = 3"):
        make_target(3)
    with pytest.raises(ValueError, match="target.noise_variance = -1"):
        make_target({"he": [0, 1], "noise_variance": -1})
    with pytest.raises(ValueError, match=r"target.he = 'x'"):
        make_target({"he": "x"})
    with pytest.raises(ValueError, match="activation.name = 'softsign'"):
        SingleIndexProblem("relu", "softsign", 10)
    with pytest.raises(ValueError, match="points have shape"):
        SingleIndexProblem("relu", "relu", 10).reduced_potential(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="second_layer_std"):
        SingleIndexProblem("relu", "relu", 10, train_second_layer=False, second_layer_std=1.0)
