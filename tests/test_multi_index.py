"""Multi-index reduction (reduced_pde/multi_index.py) against independent references: the
single-index problem (k = 1, and ridge targets φ(z) = ψ(u·z)), Monte Carlo over x and over random
orthogonal directions in full dimension, finite differences, Gauss–Jacobi quadrature over the
overlap c of the direct bivariate expectation, tensor Gauss–Hermite projections, and a test-set
estimate of a finite network's risk."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from reduced_pde.activations import make_activation
from reduced_pde.models.multi_index import (
    MultiIndexCallableTarget,
    MultiIndexHermiteTarget,
    MultiIndexProblem,
    make_multi_index_target,
)
from reduced_pde.models.single_index import SingleIndexProblem
from tests.problem_checks import assert_gradients_match_finite_differences

# σ = He_2 + He_3/2 in the probabilists' basis (exact, terminating series)
POLY = {"name": "polynomial", "he_coefficients": [0.0, 0.0, 1.0, 0.5]}
# y = z1 z2 = h_1(z1) h_1(z2), plus y = He_2(z1) + He_1(z2)/2 (He basis) — the brief's examples
PRODUCT = {"hermite": {(1, 1): 1.0}}
MIXED = {"he": {(2, 0): 1.0, (0, 1): 0.5}}
COMBINED = {"hermite": {(1, 1): 1.0, (2, 0): math.sqrt(2.0), (0, 1): 0.5, (0, 0): 0.2}}


def _quiet(factory, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # capped-degree warnings: the bounds are checked explicitly
        problem = factory(*args, **kw)
        problem.series_degrees()
    return problem


def _problem(target, activation, d, **kw) -> MultiIndexProblem:
    return _quiet(MultiIndexProblem, target, activation, d, **kw)


def _orthonormal_rows(k: int, d: int, rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return q.T.copy()


def _lift(point_s: np.ndarray, r: float, theta: np.ndarray, rng: np.random.Generator, count: int = 1
          ) -> np.ndarray:
    """``count`` weights w = Θ*ᵀ s + r e with e uniform on the unit sphere of the complement."""
    d = theta.shape[1]
    g = rng.standard_normal((count, d))
    g -= (g @ theta.T) @ theta
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return point_s @ theta + r * g


POINTS = np.array([[0.7, 0.3, -0.2, 0.8], [-1.2, -0.5, 0.4, 0.2], [0.4, 1.1, 0.0, 0.0],
                   [1.0, 0.0, 0.0, 1.5], [0.9, 0.6, -0.8, 0.0], [0.5, 0.0, 0.0, 0.0]])  # (a, s1, s2, r)


# ---- k = 1: the single-index problem ----------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh", POLY])
@pytest.mark.parametrize("dimension", [6, math.inf])
@pytest.mark.parametrize("train", [True, False])
def test_k1_reproduces_single_index(activation, dimension, train: bool) -> None:
    """k = 1: ``sqrt(K!/(i! j!)) = sqrt(C(K, j))`` and the same (K, j) truncation, so v, ∇v, the kernel
    (weights, features in the same order, bound vector), ∇g and the potential bound equal the
    SingleIndexProblem ones up to round-off (the gradient formulas differ algebraically by
    ϱ² = 1 − ρ²: a few ulps of terms of size <= max|α_K/n| K; tolerance 1e-13)."""
    coefficients = [0.2, 1.0, 0.5, 0.3]
    kw = {"truncation_tolerance": 1e-5, "max_degree": 40, "train_second_layer": train, "second_layer": 0.7}
    single = _quiet(SingleIndexProblem, {"hermite": coefficients}, activation, dimension, **kw)
    multi = _problem({"hermite": {(k,): c for k, c in enumerate(coefficients)}}, activation, dimension, **kw)
    x = POINTS[:, [0, 1, 3]] if train else POINTS[:, [1, 3]]
    assert multi.coordinate_names == (("a",) if train else ()) + ("s1", "r")
    assert multi.series_degrees() == single.series_degrees() and multi.rank() == single.rank()
    np.testing.assert_allclose(multi.reduced_potential(x), single.reduced_potential(x), rtol=0, atol=1e-13)
    np.testing.assert_allclose(multi.reduced_potential_gradient(x), single.reduced_potential_gradient(x),
                               rtol=0, atol=1e-13)
    mk, sk = multi.interaction_low_rank(x), single.interaction_low_rank(x)
    np.testing.assert_array_equal(mk.weights, sk.weights)
    np.testing.assert_allclose(mk.features, sk.features, rtol=0, atol=1e-13)
    np.testing.assert_allclose(mk.truncation_bound, sk.truncation_bound, rtol=1e-13, atol=0)
    np.testing.assert_allclose(multi.interaction_features_gradient(x), single.interaction_features_gradient(x),
                               rtol=0, atol=1e-13)
    np.testing.assert_allclose(multi.potential_truncation_bound(x), single.potential_truncation_bound(x),
                               rtol=1e-13, atol=0)


def test_ridge_target_matches_single_index() -> None:
    """φ(z) = He_3(u·z) + He_1(u·z) depends on z through u·z only, so v(a, s, r) equals the
    single-index potential of ψ = He_3 + He_1 at (a, u·s, sqrt(|s|² − (u·s)² + r²)).  The multi-index
    coefficients come from a tensor Gauss–Hermite projection of the callable (independent of the
    multinomial formula; exact for this cubic); tolerance 1e-12 (round-off of the projection)."""
    u = np.array([0.6, -0.8])
    ridge = MultiIndexCallableTarget(lambda z: (z @ u) ** 3 - 2.0 * (z @ u), 2, degree=3)
    assert ridge.projection_tail < 1e-12
    multi = _problem(ridge, "tanh", 9, truncation_tolerance=1e-6, scale_bound=3.0)
    single = _quiet(SingleIndexProblem, {"he": [0.0, 1.0, 0.0, 1.0]}, "tanh", 9, truncation_tolerance=1e-6,
                    scale_bound=3.0)
    s, r = POINTS[:, 1:3], POINTS[:, 3]
    along = s @ u
    across = np.sqrt(np.maximum(np.sum(s * s, 1) - along**2, 0.0) + r**2)
    reduced = np.stack([POINTS[:, 0], along, across], axis=1)
    np.testing.assert_allclose(multi.reduced_potential(POINTS), single.reduced_potential(reduced),
                               rtol=0, atol=1e-12)


# ---- full-dimensional Monte Carlo ----------------------------------------------------------------------


@pytest.mark.parametrize("activation, target", [("relu", COMBINED), ("tanh", MIXED), (POLY, PRODUCT)])
def test_potential_and_gradient_against_monte_carlo(activation, target) -> None:
    """v = −a E[φ(Θ*x) σ(⟨w,x⟩)], ∂_{s_l} v = −a E[φ σ'(⟨w,x⟩) z_l], ∂_r v = −a E[φ σ' ⟨e⊥,x⟩],
    ∂_a v = v/a, by 10^6 samples x ~ N(0, I_8) with a random orthonormal Θ* (k = 2).  Each assertion:
    |series − MC| < 5 s.e. + 3 × the rigorous truncation bound (0 here: polynomial targets)."""
    d = 8
    rng = np.random.default_rng(11)
    problem = _problem(target, activation, d)
    theta = _orthonormal_rows(2, d, rng)
    a, s, r = 0.8, np.array([0.6, -0.4]), 0.9
    w = _lift(s, r, theta, rng)[0]
    perp = (w - s @ theta) / r
    x = rng.standard_normal((1_000_000, d))
    z = x @ theta.T
    pre = x @ w
    phi = problem.target(z)
    act = problem.activation
    point = np.array([[a, s[0], s[1], r]])
    v = problem.reduced_potential(point)[0]
    grad = problem.reduced_potential_gradient(point)[0]
    slack = 3 * problem.potential_truncation_bound(point)[0]
    samples = {"v": -a * phi * act(pre), "a": -phi * act(pre), "s1": -a * phi * act.derivative(pre) * z[:, 0],
               "s2": -a * phi * act.derivative(pre) * z[:, 1], "r": -a * phi * act.derivative(pre) * (x @ perp)}
    predicted = {"v": v, "a": grad[0], "s1": grad[1], "s2": grad[2], "r": grad[3]}
    for key, values in samples.items():
        se = values.std() / math.sqrt(values.size)
        assert abs(values.mean() - predicted[key]) < 5 * se + slack, key


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_kernel_against_monte_carlo_over_directions_and_data(activation) -> None:
    """u(x, x') = E over independent uniform orthogonal directions e, e' (complement of Θ*, d − k = 5)
    and over x ~ N(0, I_7) of a a' σ(⟨w,x⟩) σ(⟨w',x⟩), w = Θ*ᵀs + r e: one fresh (e, e', x) per sample,
    4·10^5 samples per pair, no series or quadrature involved.  Tolerance 5 s.e. + b_i b_j."""
    d, k = 5, 2
    rng = np.random.default_rng(5)
    problem = _problem(PRODUCT, activation, d, truncation_tolerance=1e-6, scale_bound=2.0, max_degree=40)
    theta = _orthonormal_rows(k, d, rng)
    x = POINTS[:3]
    kernel = problem.interaction_low_rank(x)
    m = 400_000
    act = problem.activation
    for i, j in [(0, 1), (1, 2), (0, 0), (2, 2)]:
        w1 = _lift(x[i, 1:3], x[i, 3], theta, rng, m)
        w2 = _lift(x[j, 1:3], x[j, 3], theta, rng, m)
        data = rng.standard_normal((m, d))
        samples = x[i, 0] * x[j, 0] * act(np.sum(w1 * data, 1)) * act(np.sum(w2 * data, 1))
        se = samples.std() / math.sqrt(m)
        bound = kernel.truncation_bound[i] * kernel.truncation_bound[j]
        assert abs(samples.mean() - kernel.dense()[i, j]) < 5 * se + bound, (i, j)


def test_network_risk_against_test_set() -> None:
    """Exact R_N of an 8-neuron network (d = 8, k = 2, tanh, y = z1 z2 + He_2(z1) + He_1(z2)/2 + 0.2
    + noise 0.1) vs the mean of (y − f(x))² over 10^6 test samples: within 5 s.e. plus the bound."""
    d, n_neurons = 8, 8
    rng = np.random.default_rng(7)
    problem = _problem({**COMBINED, "noise_variance": 0.1}, "tanh", d)
    theta = _orthonormal_rows(2, d, rng)
    a = rng.normal(0.5, 1.0, n_neurons)
    w = rng.standard_normal((n_neurons, d)) * 0.6
    w[:3] = w[0] + 0.05 * rng.standard_normal((3, d))  # nearly aligned pairs: high Mehler degree
    risk, bound = problem.network_risk(a, w, theta)
    x = rng.standard_normal((1_000_000, d))
    y = problem.sample_labels(x @ theta.T, rng)
    samples = (y - np.tanh(x @ w.T) @ a / n_neurons) ** 2
    se = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - risk) < 5 * se + bound
    assert bound < 1e-6


def test_network_risk_against_tensor_gauss_hermite() -> None:
    """Deterministic check at d = 3, k = 2, polynomial σ and φ (fixed second layer 0.7, rescaled to
    the network's own a_i): E[(y − f)²] by an 8-node-per-axis tensor Gauss–Hermite rule (exact for
    degree <= 15 > 2·3) plus the noise variance; tolerance 1e-10 (round-off)."""
    d, n_neurons = 3, 5
    rng = np.random.default_rng(8)
    problem = _problem({**COMBINED, "noise_variance": 0.2}, POLY, d, train_second_layer=False, second_layer=0.7)
    theta = _orthonormal_rows(2, d, rng)
    a = rng.normal(0.5, 1.0, n_neurons)
    w = rng.standard_normal((n_neurons, d)) * 0.7
    w[1] = w[0]
    risk, bound = problem.network_risk(a, w, theta)
    nodes, weights = np.polynomial.hermite_e.hermegauss(8)
    weights = weights / weights.sum()
    grid = np.stack(np.meshgrid(nodes, nodes, nodes, indexing="ij"), -1).reshape(-1, 3)
    mass = np.einsum("i,j,k->ijk", weights, weights, weights).ravel()
    f = problem.activation(grid @ w.T) @ a / n_neurons
    reference = float(mass @ (problem.target(grid @ theta.T) - f) ** 2) + 0.2
    assert bound == 0.0
    assert abs(risk - reference) < 1e-10


# ---- interaction: quadrature reference, structure -------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh", POLY])
@pytest.mark.parametrize("dimension", [4, 12, math.inf])
def test_low_rank_kernel_within_bound_of_quadrature_reference(activation, dimension) -> None:
    """|u_{K,J} − u_exact| <= b_i b_j where u_exact = a a' E_c E[σ(nX)σ(n'Y)], γ = ρ·ρ' + ϱϱ'c, by
    64-node Gauss–Jacobi over c (cosine law in R^{d−k}) of the direct bivariate expectation.  Slack
    1e-12: the reference's quadrature error and the round-off of the tails (as in the single-index
    test).  Points include ρ on the unit circle (r = 0), ρ = 0 and n = 0.  Polynomial σ: exact, b = 0.
    Also: u is invariant under a common rotation of s and s' in R^k (it depends on ρ·ρ' only)."""
    problem = _problem(PRODUCT, activation, dimension, truncation_tolerance=1e-5, scale_bound=2.0,
                       max_degree=40)
    kernel = problem.interaction_low_rank(POINTS)
    exact = problem.interaction_kernel(POINTS, POINTS)
    bound = np.outer(kernel.truncation_bound, kernel.truncation_bound)
    assert np.all(np.abs(kernel.dense() - exact) <= bound + 1e-12)
    if activation is POLY:
        assert np.all(kernel.truncation_bound == 0.0)
        np.testing.assert_allclose(kernel.dense(), exact, rtol=0, atol=1e-12)
    else:  # the bound is informative: sup b² / sup Eσ² below 1e-3 at K <= 40
        assert problem.relative_truncation_error < 1e-3
    angle = 0.7
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    rotated = POINTS.copy()
    rotated[:, 1:3] = POINTS[:, 1:3] @ rotation.T
    # the features change, the kernel does not (round-off of sums of ~rank terms of size <= Eσ²)
    np.testing.assert_allclose(problem.interaction_low_rank(rotated).dense(), kernel.dense(), rtol=0, atol=1e-12)


def test_rank_counts_multinomial_features() -> None:
    """Rank = Σ_{K<=K_max} Σ_{j even <= min(K, J)} C(K − j + k − 1, k − 1) (k = 2, 3), and at d = ∞
    C(K_max + k, k) (only j = 0); polynomial σ of degree 3: K = J = 3."""
    for k in (2, 3):
        index = {tuple([1] * k): 1.0}
        finite = _problem({"hermite": index}, POLY, 10)
        assert finite.series_degrees() == (3, 3)
        expected = sum(math.comb(K - j + k - 1, k - 1) for K in range(4) for j in range(0, K + 1, 2))
        assert finite.rank() == expected
        infinite = _problem({"hermite": index}, POLY, math.inf)
        assert infinite.rank() == math.comb(3 + k, k)


# ---- gradients --------------------------------------------------------------------------------------


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("k", [2, 3])
def test_gradients_match_finite_differences(train: bool, k: int) -> None:
    """Analytic ∇v and ∇g_Kij against central differences (h = 1e-6: error ~ h²|f'''| + 1e-16/h ≈ 1e-10;
    tolerance 1e-7), trained and fixed second layer, k = 2, 3, points with negative s components."""
    target = {"hermite": {tuple([1] * k): 1.0, tuple([2] + [0] * (k - 1)): 0.5, tuple([0] * (k - 1) + [3]): 0.3}}
    problem = _problem(target, "tanh", 9, train_second_layer=train, truncation_tolerance=1e-4,
                       scale_bound=2.0, max_degree=12)
    dim = len(problem.coordinate_names)
    x = np.random.default_rng(0).uniform(-0.9, 0.9, (4, dim))
    x[:, -1] = np.abs(x[:, -1]) + 0.1
    assert_gradients_match_finite_differences(problem, x, h=1e-6, atol=1e-7)


def test_gradient_at_the_origin_is_the_limit_along_r() -> None:
    """At n = 0 the convention is the limit s = 0, r → 0+: ∇v and ∇g at (a, 0, 0, 0) equal those at
    (a, 0, 0, 1e-7) up to O(1e-7) (tanh: smooth in w); ∂_{s_2} v(0) = −a φ̂_{(0,1)} σ'(0) ≠ 0."""
    problem = _problem(COMBINED, "tanh", 7, truncation_tolerance=1e-4, scale_bound=2.0, max_degree=12)
    origin, near = np.array([[0.8, 0.0, 0.0, 0.0]]), np.array([[0.8, 0.0, 0.0, 1e-7]])
    np.testing.assert_allclose(problem.reduced_potential_gradient(origin),
                               problem.reduced_potential_gradient(near), atol=1e-6)
    np.testing.assert_allclose(problem.interaction_features_gradient(origin),
                               problem.interaction_features_gradient(near), atol=1e-6)
    assert problem.reduced_potential_gradient(origin)[0, 2] == pytest.approx(-0.8 * 0.5 * 1.0, rel=1e-12)


def test_potential_gradient_is_half_the_risk_gradient() -> None:
    """With fixed masses m_i, ∂R/∂x_i = 2 m_i ∇ψ(x_i; p) (R = E y² + 2Σ v m + Σ u m m, u symmetric):
    ``potential_gradient`` (compiled contraction) against central differences of ``risk`` (h = 1e-6,
    tolerance 1e-7), and against the explicit ∇v + Σ λ M ∇g to round-off (1e-12)."""
    problem = _problem(COMBINED, "tanh", 8, truncation_tolerance=1e-4, scale_bound=2.0, max_degree=12)
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(0.5, 0.5, 5), rng.normal(0, 0.5, (5, 2)), rng.uniform(0.2, 1.0, 5)])
    masses = rng.dirichlet(np.ones(5))
    grad = problem.potential_gradient(x, masses)
    kernel = problem.interaction_low_rank(x)
    explicit = problem.reduced_potential_gradient(x) + np.einsum(
        "k,kmd->md", kernel.weights * (kernel.features @ masses), problem.interaction_features_gradient(x))
    np.testing.assert_allclose(grad, explicit, rtol=0, atol=1e-12)
    h = 1e-6
    for i in range(5):
        for c in range(4):
            plus, minus = x.copy(), x.copy()
            plus[i, c] += h
            minus[i, c] -= h
            fd = (problem.risk(plus, masses) - problem.risk(minus, masses)) / (2 * h)
            assert abs(fd - 2 * masses[i] * grad[i, c]) < 1e-7


# ---- targets ---------------------------------------------------------------------------------------


def test_target_examples_and_forms() -> None:
    """y = z1 z2 = h_1 h_1 (E y² = 1); y = He_2(z1) + He_1(z2)/2 (φ̂_(2,0) = sqrt 2, φ̂_(0,1) = 1/2,
    E y² = 2 + 1/4); string keys and [index, c] pairs give the same target; noise enters E y² only;
    a callable projected by the tensor rule reproduces the exact coefficients (round-off, 1e-12)."""
    z = np.random.default_rng(0).standard_normal((50, 2))
    product = make_multi_index_target(PRODUCT)
    np.testing.assert_allclose(product(z), z[:, 0] * z[:, 1], atol=1e-14)
    assert product.second_moment == 1.0 and product.exact_degree == 2 and product.index_dimension == 2
    mixed = make_multi_index_target({**MIXED, "noise_variance": 0.3})
    np.testing.assert_allclose(mixed(z), z[:, 0] ** 2 - 1 + z[:, 1] / 2, atol=1e-14)
    assert dict(zip(map(tuple, mixed.indices), mixed.values)) == pytest.approx({(0, 1): 0.5, (2, 0): math.sqrt(2)})
    assert mixed.label_second_moment == pytest.approx(2.25 + 0.3, rel=1e-15)
    for form in ({"he": {"2,0": 1.0, "(0, 1)": 0.5}}, {"he": [[[2, 0], 1.0], [[0, 1], 0.5]]}):
        np.testing.assert_array_equal(make_multi_index_target(form).values, make_multi_index_target(MIXED).values)
    projected = MultiIndexCallableTarget(lambda z: z[:, 0] ** 2 - 1 + z[:, 1] / 2, 2, degree=4)
    coefficients = dict(zip(map(tuple, projected.indices), projected.values))
    for index, value in coefficients.items():
        assert value == pytest.approx({(2, 0): math.sqrt(2), (0, 1): 0.5}.get(index, 0.0), abs=1e-12)
    assert projected.projection_tail < 1e-12
    config = mixed.config()
    rebuilt = make_multi_index_target({key: config[key] for key in ("kind", "hermite", "index_dimension",
                                                                     "noise_variance")})
    assert rebuilt == mixed


def test_callable_ridge_projection_and_tail() -> None:
    """φ(z) = tanh(u·z), u = (1, 1)/√2: by the Mehler identity at ϱ = 0, φ̂_i = α_K(1) sqrt(K!/i!) u^i
    with α_K the tanh coefficients (1-D quadrature), and the projection tail is the 1-D tail
    E tanh(G)² − Σ_{K<=P} α_K(1)².  Tensor rule of 60 nodes per axis (spectral): tolerance 1e-10.
    The potential bound uses the tail: it is positive and <= |a| |ρ|^{P+1} sqrt(tail · Eσ²)."""
    u = np.array([1.0, 1.0]) / math.sqrt(2.0)
    degree = 9
    target = MultiIndexCallableTarget(lambda z: np.tanh(z @ u), 2, degree=degree, quadrature_order=60)
    alpha = make_activation("tanh").hermite_coefficients(np.array(1.0), degree)
    for index, value in zip(target.indices, target.values):
        order = int(index.sum())
        multinomial = math.factorial(order) / math.prod(math.factorial(int(i)) for i in index)
        assert value == pytest.approx(alpha[order] * math.sqrt(multinomial) * np.prod(u**index), abs=1e-10)
    second = float(make_activation("tanh").second_moment(np.array(1.0)))
    assert target.second_moment == pytest.approx(second, abs=1e-10)
    assert target.projection_tail == pytest.approx(second - float(np.sum(alpha**2)), abs=1e-10)
    problem = _problem(target, "relu", 6)
    assert problem.potential_degree() <= degree
    bound = problem.potential_truncation_bound(POINTS[:2])
    assert np.all(bound > 0)


# ---- initial law ------------------------------------------------------------------------------------


def test_initial_law_cell_masses_and_samples() -> None:
    """Product law: cell masses sum to 1 on a wide grid; the invariants of sampled full-dimensional
    networks (w = Θ*ᵀs0 + N(0, κ²/d I)) have E a = a0, E s_l = s0_l, E (s_l − s0_l)² = κ²/d,
    E r² = (d − k)κ²/d (5 s.e., 2·10^5 samples); the reduced samples too; point mass at d = ∞."""
    d, kappa, s0 = 10, 0.7, (0.3, -0.2)
    problem = _problem(PRODUCT, "relu", d, weight_scale=kappa, second_layer=0.3, second_layer_std=0.5,
                       initial_alignment=s0)
    law = problem.initial_law()
    edges = [np.linspace(-3.7, 4.3, 9), np.linspace(-2, 2, 11), np.linspace(-2, 2, 12), np.linspace(0, 3, 13)]
    masses = law.cell_masses(edges)
    assert masses.shape == (8, 10, 11, 12) and masses.sum() == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(3)
    theta = _orthonormal_rows(2, d, rng)
    a, w = law.sample_network(200_000, rng, theta)
    x = problem.reduced_coordinates(a, w, theta)
    reduced = law.sample_reduced(200_000, rng)
    for sample in (x, reduced):
        checks = [(sample[:, 0], 0.3), (sample[:, 1], s0[0]), (sample[:, 2], s0[1]),
                  ((sample[:, 1] - s0[0]) ** 2, kappa**2 / d), (sample[:, 3] ** 2, (d - 2) * kappa**2 / d)]
        for values, mean in checks:
            assert abs(values.mean() - mean) < 5 * values.std() / math.sqrt(values.size)
    with pytest.raises(ValueError, match="grid.r"):
        law.cell_masses(edges[:3] + [np.linspace(0, 0.5, 5)])
    infinite = _problem(PRODUCT, "relu", math.inf, weight_scale=kappa, train_second_layer=False)
    m = infinite.initial_law().cell_masses([np.linspace(-1, 1, 5), np.linspace(-1, 1, 5), np.linspace(0, 1, 5)])
    assert m[2, 2, 2] == 1.0  # point mass at (s, r) = (0, 0, κ)


# ---- inputs -----------------------------------------------------------------------------------------


def test_bad_inputs_are_refused_with_field_names() -> None:
    with pytest.raises(ValueError, match=r"data.dimension = 2 must be an integer >= index_dimension \+ 1 = 3"):
        MultiIndexProblem(PRODUCT, "relu", 2)
    with pytest.raises(ValueError, match="data.index_dimension = 0"):
        MultiIndexProblem(PRODUCT, "relu", 5, index_dimension=0)
    with pytest.raises(ValueError, match="index_dimension = 2, but data.index_dimension = 3|must all have 3"):
        MultiIndexProblem(PRODUCT, "relu", 5, index_dimension=3)
    with pytest.raises(ValueError, match=r"target: unknown field\(s\) \['degree'\]"):
        make_multi_index_target({"hermite": {(1, 1): 1.0}, "degree": 3})
    with pytest.raises(ValueError, match="exactly one of 'hermite', 'he' or 'function'"):
        make_multi_index_target({"name": "relu"})
    with pytest.raises(ValueError, match="must all have the same number"):
        make_multi_index_target({"hermite": {(1, 1): 1.0, (2,): 1.0}})
    with pytest.raises(ValueError, match=r"index \(1, 1\) appears twice"):
        make_multi_index_target({"he": [[[1, 1], 1.0], ["1,1", 2.0]]})
    with pytest.raises(ValueError, match="index 'a,1'"):
        make_multi_index_target({"hermite": {"a,1": 1.0}})
    with pytest.raises(ValueError, match="needs index_dimension"):
        make_multi_index_target(np.tanh)
    with pytest.raises(ValueError, match="target.noise_variance = -1"):
        make_multi_index_target({**PRODUCT, "noise_variance": -1})
    with pytest.raises(ValueError, match="sphere = True is not available"):
        MultiIndexProblem(PRODUCT, "relu", 5, sphere=True)
    with pytest.raises(ValueError, match="initial.alignment"):
        MultiIndexProblem(PRODUCT, "relu", 5, initial_alignment=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="initial.weight_scale"):
        MultiIndexProblem(PRODUCT, "relu", 5, weight_scale=-1.0)
    problem = MultiIndexProblem(PRODUCT, "relu", 5, truncation_tolerance=1e-3)  # reached at K = 32 (no warning)
    with pytest.raises(ValueError, match="points have shape"):
        problem.reduced_potential(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="r = |w − Θ"):
        problem.reduced_potential(np.array([[1.0, 0.1, 0.1, -0.5]]))
    w = np.ones((3, 5))
    with pytest.raises(ValueError, match="orthonormal rows"):
        problem.network_risk(1.0, w, np.array([[1.0, 0, 0, 0, 0], [0.5, 1.0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"theta_star has shape \(5,\); expected \(k, d\) = \(2, 5\)"):
        problem.reduced_coordinates(1.0, w, np.eye(5)[0])
    with pytest.raises(ValueError, match=r"projections z have shape \(4,\)"):
        problem.sample_labels(np.zeros(4), np.random.default_rng(0))
    assert isinstance(problem.target, MultiIndexHermiteTarget)
    config = problem.config()
    assert config["problem"] == "multi_index" and config["data.index_dimension"] == 2
    assert config["reduction.coordinates"] == ["a", "s1", "s2", "r"]
