"""Tests of reduced_pde.dual_kernels: closed-form dual kernels K_σ(n, n', γ) = E[σ(nX) σ(n'Y)]
against independent quadratures, and the vectorised pairwise interaction against the per-entry
reference ``problem.interaction_kernel``.

Independent reference for a dual kernel: condition on X = x, so Y | X = x ~ N(γx, 1 − γ²) and
E[σ(n'Y) | X = x] has an elementary closed form for the piecewise-linear, step and erf activations
(Gaussian smoothing of a ramp / a step / an erf); the outer 1-D integral against φ(x) is done by
adaptive quadrature (scipy.integrate.quad, kinks passed as break points), whose error estimate
enters the tolerance.  The range is cut at |x| = 12: the neglected Gaussian mass is < 1e-32.
"""

# The integrands below are lambdas closing over loop variables; each is consumed by integrate.quad
# within the same iteration, so the late binding B023 warns about cannot occur.
# ruff: noqa: B023

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate
from scipy.special import erf, ndtr
from scipy.stats import multivariate_normal

from reduced_pde.activations import make_activation
from reduced_pde.dual_kernels import (
    HermiteSeriesDualKernel,
    StepActivation,
    bivariate_normal_cdf,
    cosine_rule,
    erf_dual_kernel,
    low_rank_truncation_error,
    make_dual_kernel,
    pairwise_interaction,
    rectified_product_moment,
    relu_dual_kernel,
    step_dual_kernel,
)
from reduced_pde.hermite import gauss_hermite_rule
from reduced_pde.models.multi_index import MultiIndexProblem
from reduced_pde.activations import PolynomialActivation
from reduced_pde.models.single_index import SingleIndexProblem

ROUND_OFF = 1e-13  # a few hundred ulps of O(1) sums (arccos, Owen's T, 64-node weighted sums)
CUT = 12.0  # integration range |x| <= 12: Gaussian mass beyond is < 1e-32
TARGET = {"name": "he", "degree": 2}
CORRELATIONS = (-0.97, -0.4, 0.0, 0.3, 0.8, 0.995)
SCALES = ((0.7, 1.9), (2.5, 0.4), (1.0, 1.0))


def _gauss(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * np.asarray(x) ** 2) / math.sqrt(2.0 * math.pi)


def _smoothed_ramp(mean: float, std: float) -> float:
    """E[(mean + std Z)_+] = mean Φ(mean/std) + std φ(mean/std)."""
    if std == 0.0:
        return max(mean, 0.0)
    return mean * ndtr(mean / std) + std * float(_gauss(mean / std))


def _smoothed_piecewise_linear(activation, scale: float, mean: float, std: float) -> float:
    """E[σ(scale (mean + std Z))] for σ(t) = c₀ + s₀t + Σ a_j (t − t_j)_+."""
    out = activation.intercept + activation.slope * scale * mean
    for knot, jump in zip(activation.knots, activation.jumps):
        out += jump * _smoothed_ramp(scale * mean - knot, scale * std)
    return out


def _conditional_quadrature(outer, inner, breaks: list[float]) -> tuple[float, float]:
    """∫ outer(x) inner(x) φ(x) dx over [−12, 12] and quad's error estimate."""
    points = sorted(b for b in breaks if -CUT < b < CUT)
    value, error = integrate.quad(lambda x: outer(x) * inner(x) * float(_gauss(x)), -CUT, CUT,
                                  points=points or None, limit=400, epsabs=1e-14, epsrel=1e-13)
    return value, error


# --------------------------------------------------------------------------------------------
# Closed-form dual kernels
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["relu", "mmn18", "leaky"])
def test_piecewise_linear_dual_kernel_against_conditional_quadrature(name: str) -> None:
    if name == "leaky":  # leaky ReLU with an offset knot and an intercept: exercises every term
        activation = make_activation({"name": "piecewise_linear", "intercept": 0.3, "slope": 0.1,
                                      "knots": [0.0, -0.6], "jumps": [0.9, 0.5]})
    else:
        activation = make_activation(name)
    kernel = make_dual_kernel(activation)
    for n1, n2 in SCALES:
        for g in CORRELATIONS:
            s = math.sqrt(1.0 - g * g)
            reference, quad_error = _conditional_quadrature(
                lambda x: float(activation(n1 * x)),
                lambda x: _smoothed_piecewise_linear(activation, n2, g * x, s),
                [t / n1 for t in activation.knots])
            value = float(kernel(n1, n2, g))
            # quad's own error estimate + round-off relative to the size of the integrand
            assert abs(value - reference) <= quad_error + ROUND_OFF * max(1.0, abs(reference)) * 10, \
                (name, n1, n2, g, value, reference)


def test_relu_step_erf_closed_forms_against_conditional_quadrature() -> None:
    relu = make_activation("relu")
    for n1, n2 in SCALES:
        for g in CORRELATIONS:
            s = math.sqrt(1.0 - g * g)
            ref_relu, e_relu = _conditional_quadrature(lambda x: max(n1 * x, 0.0),
                                                       lambda x: n2 * _smoothed_ramp(g * x, s), [0.0])
            ref_step, e_step = _conditional_quadrature(lambda x: float(x > 0), lambda x: ndtr(g * x / s), [0.0])
            ref_erf, e_erf = _conditional_quadrature(
                lambda x: erf(n1 * x), lambda x: erf(n2 * g * x / math.sqrt(1.0 + 2.0 * n2 * n2 * s * s)), [])
            assert abs(relu_dual_kernel(n1, n2, g) - ref_relu) <= e_relu + ROUND_OFF  # quad estimate + round-off
            assert abs(step_dual_kernel(n1, n2, g) - ref_step) <= e_step + ROUND_OFF
            assert abs(erf_dual_kernel(n1, n2, g) - ref_erf) <= e_erf + ROUND_OFF
            # the generic dispatch picks the same closed forms
            assert abs(float(make_dual_kernel(relu)(n1, n2, g)) - ref_relu) <= e_relu + ROUND_OFF
            erf_activation = make_activation("erf")
            assert abs(float(make_dual_kernel(erf_activation)(n1, n2, g)) - ref_erf) <= e_erf + ROUND_OFF
    # γ = ±1: relu(nX) relu(±n'X) has E = n n'/2 and 0; step: ½ and 0
    assert relu_dual_kernel(2.0, 3.0, 1.0) == pytest.approx(3.0, abs=ROUND_OFF)
    assert relu_dual_kernel(2.0, 3.0, -1.0) == pytest.approx(0.0, abs=ROUND_OFF)
    assert step_dual_kernel(2.0, 3.0, 1.0) == pytest.approx(0.5, abs=ROUND_OFF)
    assert step_dual_kernel(0.0, 3.0, 0.5) == 0.0  # σ(0) = 0


def test_step_activation_coefficients_reproduce_order_zero_arc_cosine_kernel() -> None:
    step = StepActivation()
    degree = 400
    alpha = step.hermite_coefficients(np.array([1.3]), degree)[:, 0]
    tail = step.second_moment(np.array([1.3]))[0] - np.sum(alpha**2)  # Σ_{k>K} α_k² (Parseval)
    assert tail >= -ROUND_OFF
    for g in (-0.6, 0.2, 0.5):
        series = HermiteSeriesDualKernel(step, degree, exact=True)(1.3, 0.8, g)
        # Cauchy–Schwarz tail of Mehler's sum: |γ|^{K+1} Σ_{k>K} α_k² (α_k independent of n > 0)
        assert abs(float(series) - step_dual_kernel(1.3, 0.8, g)) <= abs(g) ** (degree + 1) * max(tail, 0) \
            + ROUND_OFF
        assert step.bivariate_expectation(1.3, 0.8, g) == pytest.approx(step_dual_kernel(1.3, 0.8, g), abs=ROUND_OFF)


def test_rectified_product_moment_against_conditional_quadrature() -> None:
    for a, b in ((0.0, 0.0), (0.7, -1.2), (-2.0, 0.4), (1.5, 2.5), (-0.3, -0.3)):
        for g in CORRELATIONS:
            s = math.sqrt(1.0 - g * g)
            reference, error = _conditional_quadrature(lambda x: max(x - a, 0.0),
                                                       lambda x: _smoothed_ramp(g * x - b, s), [a])
            assert abs(float(rectified_product_moment(a, b, g)) - reference) <= error + ROUND_OFF, (a, b, g)
        # degenerate laws γ = ±1 (Y = ±X): 1-D integrals
        aligned, e1 = integrate.quad(lambda x: max(x - a, 0) * max(x - b, 0) * float(_gauss(x)), -CUT, CUT,
                                     points=[a, b], epsabs=1e-14, limit=200)
        opposite, e2 = integrate.quad(lambda x: max(x - a, 0) * max(-x - b, 0) * float(_gauss(x)), -CUT, CUT,
                                      points=[a, -b], epsabs=1e-14, limit=200)
        assert abs(float(rectified_product_moment(a, b, 1.0)) - aligned) <= e1 + ROUND_OFF
        assert abs(float(rectified_product_moment(a, b, -1.0)) - opposite) <= e2 + ROUND_OFF
        # continuity at γ → 1: F is Lipschitz-1/2 in γ near 1 (sqrt(1 − γ²) terms); at 1 − γ = 1e-10
        # the gap is O(sqrt(2e-10)) ~ 1.4e-5 at most
        assert abs(float(rectified_product_moment(a, b, 1.0 - 1e-10)) - aligned) <= 2e-5
    # vectorised broadcasting agrees with scalar calls
    grid = rectified_product_moment(np.array([[0.3], [-0.5]]), np.array([0.1, 1.0, -2.0]), 0.6)
    assert grid.shape == (2, 3)
    assert grid[1, 2] == pytest.approx(float(rectified_product_moment(-0.5, -2.0, 0.6)), abs=ROUND_OFF)


def test_bivariate_normal_cdf_against_scipy() -> None:
    abseps = 1e-10  # accuracy requested from scipy's Genz integration
    for h, k in ((0.0, 0.0), (0.0, -0.8), (-0.8, 0.0), (1.2, -0.4), (-1.5, -0.7), (2.0, 0.3), (-0.3, 1.1)):
        for g in (-0.999, -0.6, 0.0, 0.45, 0.9, 0.999):
            reference = multivariate_normal.cdf([h, k], mean=[0.0, 0.0], cov=[[1.0, g], [g, 1.0]],
                                                abseps=abseps, releps=0.0)
            assert abs(float(bivariate_normal_cdf(h, k, g)) - reference) <= abseps + ROUND_OFF, (h, k, g)
        # the degenerate laws
        assert float(bivariate_normal_cdf(h, k, 1.0)) == pytest.approx(ndtr(min(h, k)), abs=ROUND_OFF)
        assert float(bivariate_normal_cdf(h, k, -1.0)) == pytest.approx(max(ndtr(h) - ndtr(-k), 0.0), abs=ROUND_OFF)


def test_fallback_mehler_sum_for_tanh_within_its_bound() -> None:
    tanh = make_activation("tanh")
    with pytest.warns(UserWarning, match="no closed-form dual kernel"):
        kernel = make_dual_kernel(tanh, fallback_degree=120)
    assert not kernel.exact
    inner_fine, inner_coarse = gauss_hermite_rule(1000), gauss_hermite_rule(600)

    def smoothed(rule, scale: float, mean: float, std: float) -> float:
        nodes, weights = rule
        return float(np.tanh(scale * (mean + std * nodes)) @ weights)  # E[tanh(scale (mean + std Z))]

    for n1, n2 in SCALES:
        for g in CORRELATIONS:
            s = math.sqrt(1.0 - g * g)
            reference, quad_error = _conditional_quadrature(lambda x: math.tanh(n1 * x),
                                                            lambda x: smoothed(inner_fine, n2, g * x, s), [])
            coarse, _ = _conditional_quadrature(lambda x: math.tanh(n1 * x),
                                                lambda x: smoothed(inner_coarse, n2, g * x, s), [])
            first = kernel.point_data(np.array([n1]))[:, :, None, None]
            second = kernel.point_data(np.array([n2]))[:, :, None, None]
            gamma = np.array([[[g]]])
            value = float(kernel.evaluate(first, second, gamma).ravel()[0])
            bound = float(kernel.truncation_bound(first, second, gamma).ravel()[0])
            # rigorous series bound + outer quad estimate + inner Gauss–Hermite estimate (600 vs 1000
            # nodes) + round-off
            tolerance = bound + quad_error + abs(reference - coarse) + ROUND_OFF
            assert abs(value - reference) <= tolerance, (n1, n2, g, value - reference, bound)


def test_polynomial_mehler_sum_is_exact() -> None:
    activation = PolynomialActivation.from_monomials([0.2, -1.0, 0.5, 0.3])  # degree 3
    kernel = make_dual_kernel(activation)
    assert kernel.exact and kernel.minimum_cosine_nodes * 2 - 1 >= 3
    for n1, n2 in SCALES:
        for g in CORRELATIONS:
            reference = activation.bivariate_expectation(n1, n2, g)  # tensor Gauss–Hermite, exact for degree 6
            assert abs(float(kernel(n1, n2, g)) - reference) <= ROUND_OFF * max(1.0, abs(reference)) * 10


# --------------------------------------------------------------------------------------------
# Pairwise interaction against the per-entry reference
# --------------------------------------------------------------------------------------------


def _points(problem, size: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    columns = []
    names = problem.coordinate_names
    for name in names:
        if name == "a":
            columns.append(rng.normal(size=size))
        elif name == "r":
            columns.append(scale * np.abs(rng.normal(size=size)))
        elif names == ("s",) or names == ("a", "s"):
            columns.append(rng.uniform(-1.0, 1.0, size=size))
        else:
            columns.append(scale * rng.normal(size=size))
    return np.column_stack(columns)


# Per-entry difference to the reference = the reference's own 2-D quadrature error (both use the
# same Gauss–Jacobi rule over c): composite 16-point Gauss–Legendre between kinks (piecewise
# linear), tensor Gauss–Hermite exact to degree 2p (polynomial), 160-node Gauss–Hermite (smooth, with
# scales <= 1 the integrand is entire with slow growth: round-off level).  A sum of 64 weighted
# O(max|u|) terms: 1e-12 max|u| covers the round-off of both.
PAIRWISE_CASES = [
    ("relu_d12", {"target": TARGET, "activation": "relu", "dimension": 12}, 1.0),
    ("relu_dinf", {"target": TARGET, "activation": "relu", "dimension": math.inf}, 1.0),
    ("relu_sphere", {"target": TARGET, "activation": "relu", "dimension": 12, "sphere": True}, 1.0),
    ("he3_sphere_fixed_a", {"target": TARGET, "activation": "he3", "dimension": 9, "sphere": True,
                                "train_second_layer": False}, 1.0),
    ("mmn18_d12", {"target": TARGET, "activation": "mmn18", "dimension": 12}, 1.0),
    ("erf_d12", {"target": TARGET, "activation": "erf", "dimension": 12}, 1.0),
    ("polynomial_d12", {"target": TARGET, "activation": {"name": "polynomial",
                                                       "he_coefficients": [0.1, 0.0, 1.0, 0.5]},
                            "dimension": 12}, 1.0),
]


@pytest.mark.parametrize("case", PAIRWISE_CASES, ids=[c[0] for c in PAIRWISE_CASES])
def test_pairwise_interaction_matches_per_entry_reference(case) -> None:
    _, kwargs, scale = case
    rng = np.random.default_rng(7)
    problem = SingleIndexProblem(kwargs.pop("target"), kwargs.pop("activation"), kwargs.pop("dimension"), **kwargs)
    points = _points(problem, 8, rng, scale)
    other = _points(problem, 5, rng, scale)
    reference = problem.interaction_kernel(points, other)
    value = pairwise_interaction(problem, points, other)
    assert value.shape == (8, 5)
    assert np.max(np.abs(value - reference)) <= 1e-12 * np.max(np.abs(reference))  # see comment above
    square = pairwise_interaction(problem, points)
    # symmetry u(x, x') = u(x', x): same formula with the roles swapped, round-off only
    assert np.max(np.abs(square - square.T)) <= ROUND_OFF * np.max(np.abs(square))
    # chunking does not change the result (same operations on smaller blocks)
    chunked = pairwise_interaction(problem, points, other, chunk_elements=7)
    assert np.max(np.abs(chunked - value)) <= ROUND_OFF * np.max(np.abs(value))


def test_polynomial_minimum_cosine_nodes_make_the_average_exact() -> None:
    problem = SingleIndexProblem(TARGET, "he3", 7)
    rng = np.random.default_rng(3)
    points = _points(problem, 6, rng)
    # one requested node is raised to ⌈(p + 1)/2⌉ = 2: Gauss–Jacobi exact for the degree-3 polynomial in c
    coarse = pairwise_interaction(problem, points, cosine_nodes=1)
    reference = problem.interaction_kernel(points, points)
    assert np.max(np.abs(coarse - reference)) <= 1e-12 * np.max(np.abs(reference))  # round-off of O(|u|) sums


def test_tanh_pairwise_fallback_matches_reference_within_bound() -> None:
    problem = SingleIndexProblem(TARGET, "tanh", 12)
    rng = np.random.default_rng(11)
    points = _points(problem, 6, rng, scale=0.6)  # scales n <= ~1.5: reference Gauss–Hermite at round-off
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        value, bound = pairwise_interaction(problem, points, return_bound=True)
    reference = problem.interaction_kernel(points, points)
    # rigorous truncation bound of Mehler's sum + round-off of both quadratures
    assert np.all(np.abs(value - reference) <= bound + 1e-12 * np.max(np.abs(reference)))


def test_multi_index_pairwise_interaction_matches_reference() -> None:
    problem = MultiIndexProblem({"hermite": {"2,0": 1.0, "1,1": 0.5}},
                                "relu", 10, index_dimension=2)
    rng = np.random.default_rng(5)
    points = np.column_stack([rng.normal(size=7), rng.normal(size=7), rng.normal(size=7),
                              np.abs(rng.normal(size=7))])
    other = points[:3] * np.array([1.0, -0.5, 1.3, 0.7])  # distinct directions: |γ| stays away from 1,
    # where the reference's 2-D composite Gauss–Legendre loses accuracy (measured: 3e-8 per c-node at
    # γ = 1 − 3e-5 on the diagonal, while the closed form matches 1-D adaptive quadrature to 4e-16)
    reference = problem.interaction_kernel(points, other)
    value = pairwise_interaction(problem, points, other)
    assert np.max(np.abs(value - reference)) <= 1e-12 * np.max(np.abs(reference))  # as for single-index
    square = pairwise_interaction(problem, points)
    assert np.max(np.abs(square - square.T)) <= ROUND_OFF * np.max(np.abs(square))


def test_low_rank_truncation_error_within_its_bound() -> None:
    problem = SingleIndexProblem(TARGET, "relu", 30, truncation_tolerance=1e-4)
    rng = np.random.default_rng(2)
    points = _points(problem, 12, rng)
    report = low_rank_truncation_error(problem, points)
    # the rigorous bound b_i b_j holds up to the measured quadrature error of the exact kernel
    assert report.violations == 0
    assert np.all(report.error <= report.bound + report.quadrature_error)
    assert report.rank == problem.interaction_low_rank(points).rank
    assert report.max_abs_error > 0.0  # ReLU's series does not terminate: a non-trivial comparison


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_bad_input_raises_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match="scale1"):
        relu_dual_kernel(-1.0, 1.0, 0.2)
    with pytest.raises(ValueError, match="scale2"):
        erf_dual_kernel(1.0, np.nan, 0.2)
    with pytest.raises(ValueError, match="correlation"):
        step_dual_kernel(1.0, 1.0, 1.5)
    with pytest.raises(ValueError, match="correlation"):
        rectified_product_moment(0.0, 0.0, np.nan)
    with pytest.raises(ValueError, match="h = "):
        bivariate_normal_cdf(np.inf, 0.0, 0.3)
    with pytest.raises(ValueError, match="orthogonal dimension"):
        cosine_rule(2.5, 8)
    with pytest.raises(ValueError, match="cosine_nodes"):
        cosine_rule(5, 0)
    problem = SingleIndexProblem(TARGET, "relu", 12)
    points = np.array([[1.0, 0.5, 0.3], [0.5, -0.2, 1.0]])
    with pytest.raises(ValueError, match="fallback_degree"):
        pairwise_interaction(problem, points, fallback_degree=-1)
    with pytest.raises(ValueError, match="chunk_elements"):
        pairwise_interaction(problem, points, chunk_elements=0)
    with pytest.raises(ValueError, match="cosine_nodes"):
        pairwise_interaction(problem, points, cosine_nodes=0)
    with pytest.raises(ValueError, match="points"):
        pairwise_interaction(problem, points[:, :2])
    with pytest.raises(ValueError, match="r = "):
        pairwise_interaction(problem, np.array([[1.0, 0.5, -0.3]]))
    with pytest.raises(ValueError, match="degree"):
        HermiteSeriesDualKernel(make_activation("tanh"), -2, exact=False)
