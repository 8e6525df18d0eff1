"""Tests of reduced_pde.analysis.plateaus: detection on synthetic staircases, theory levels, order parameters.

Staircase construction (exactly known):  R(t) = h_L + Σ_j (h_j − h_{j+1}) / (1 + (t/T_j)^p).
The detector's definition (module docstring) is the Gaussian-smoothed log-log slope
S_σ = S ∗ φ_σ (σ = smoothing · ln 10 in ln t) and smoothed log-risk ȳ = ln R ∗ φ_σ; both are computed
here independently, by Gauss–Hermite quadrature of the exact S and ln R, and the detected plateaus
are compared with the crossings |S_σ| = threshold of that reference.  Error budget of the detector
against the reference (Δ = bin width in ln t):
  * linear interpolation of S between bin centres: <= Δ² max|S_σ''| / 8;
  * bin averaging (ln of the bin mean of R at the mean x instead of y(x)): a bias of
    Δ² (y'' + y'²) / 24 in ȳ, hence <= Δ² max|(y'' + y'²)'| / 24 = Δ² max|S'' + 2 S S'| / 24 in S;
  * the discrete Gaussian sum over bins of spacing Δ = σ/5 against the integral: aliasing error
    ~ exp(−2π² (σ/Δ)²) = e^{−493}, nil.
A slope error δS moves a crossing by δS / |S_σ'|; we allow twice the sum (higher-order terms).
With multiplicative noise η per sample and c samples per bin, the slope has standard error
SE_S = η sqrt(Δ₁₀ / (4 sqrt(π) c σ₁₀³)) / ln 10 (σ₁₀, Δ₁₀ in decades; weighted least squares with
Gaussian weights, continuum limit) and the smoothed log-risk SE_y = η sqrt(Δ₁₀ / (2 sqrt(π) c σ₁₀));
noisy tolerances add 4 standard errors.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq

from reduced_pde.hermite import gauss_hermite_rule, normalized_hermite
from reduced_pde.analysis.plateaus import (
    detect_plateaus,
    hermite_component_residuals,
    hermite_order_parameters,
    hermite_plateau_heights,
    match_plateaus,
    risk_slope,
)
from reduced_pde.hermite_structure import HermiteStructure
from reduced_pde.models.single_index import SingleIndexProblem
from reduced_pde.targets import make_target

THRESHOLD = 0.1
SMOOTHING = 0.1  # decades
BINS = 5
SIGMA = SMOOTHING * math.log(10.0)  # in ln t
DELTA = SIGMA / BINS  # bin width in ln t
POWER = 3.0
# BMZ-type target y = He_0 − He_1 + (2/3) He_2 + noise of variance 0.1 (seed 000); levels
# R_ℓ = τ² + Σ_{k>ℓ} k! c_k²:  E y² = 0.1 + 1 + 1 + 8/9,  R_0 = 0.1 + 1 + 8/9,  R_1 = 0.1 + 8/9,  R_2 = 0.1.
BMZ = {"he": [1.0, -1.0, 2.0 / 3.0], "noise_variance": 0.1}
BMZ_LEVELS = [0.1 + 2.0 + 8.0 / 9.0, 0.1 + 1.0 + 8.0 / 9.0, 0.1 + 8.0 / 9.0, 0.1]


class Staircase:
    """R(t) = h_L + Σ_j (h_j − h_{j+1}) / (1 + (t/T_j)^p) and its exact derivatives in ln t."""

    def __init__(self, levels: list[float], times: list[float]) -> None:
        self.levels = np.array(levels)
        self.times = np.array(times)
        self.jumps = self.levels[:-1] - self.levels[1:]

    def risk(self, t: np.ndarray) -> np.ndarray:
        u = (np.asarray(t)[..., None] / self.times) ** POWER
        return self.levels[-1] + np.sum(self.jumps / (1.0 + u), axis=-1)

    def slope(self, t: np.ndarray) -> np.ndarray:
        """S = d ln R / d ln t."""
        u = (np.asarray(t)[..., None] / self.times) ** POWER
        return -np.sum(self.jumps * POWER * u / (1.0 + u) ** 2, axis=-1) / self.risk(t)

    def smoothed(self, log_t: np.ndarray, function) -> np.ndarray:
        """(function ∘ exp) ∗ φ_σ at ln t = log_t, by 80-point Gauss–Hermite quadrature (spectral)."""
        nodes, weights = gauss_hermite_rule(80)
        return function(np.exp(np.add.outer(log_t, SIGMA * nodes))) @ weights

    def smoothed_slope(self, log_t):
        return self.smoothed(np.asarray(log_t, dtype=float), self.slope)

    def smoothed_log_risk(self, log_t):
        return self.smoothed(np.asarray(log_t, dtype=float), lambda t: np.log(self.risk(t)))

    def reference(self, log_lo: float, log_hi: float):
        """Crossings of |S_σ| = THRESHOLD (ln t) and the error bound of the module docstring."""
        grid = np.linspace(log_lo, log_hi, 20001)
        s = self.smoothed_slope(grid)
        h = grid[1] - grid[0]
        ds, d2s = np.gradient(s, h), np.gradient(np.gradient(s, h), h)
        exact = self.slope(np.exp(grid))
        de, d2e = np.gradient(exact, h), np.gradient(np.gradient(exact, h), h)
        slope_error = DELTA**2 * (np.max(np.abs(d2s)) / 8.0 + np.max(np.abs(d2e + 2.0 * exact * de)) / 24.0)
        sign = np.abs(s) - THRESHOLD
        crossings = []
        for i in np.flatnonzero(np.sign(sign[1:]) != np.sign(sign[:-1])):
            root = brentq(lambda v: abs(self.smoothed_slope([v])[0]) - THRESHOLD, grid[i], grid[i + 1])
            crossings.append((root, abs(float(np.interp(root, grid, ds)))))
        return crossings, slope_error, (grid, s, d2s)


def _noise_errors(noise: float, per_bin: float) -> tuple[float, float]:
    """(SE_S, SE_y) of the module docstring."""
    delta10, sigma10 = SMOOTHING / BINS, SMOOTHING
    se_s = noise * math.sqrt(delta10 / (4.0 * math.sqrt(math.pi) * per_bin * sigma10**3)) / math.log(10.0)
    se_y = noise * math.sqrt(delta10 / (2.0 * math.sqrt(math.pi) * per_bin * sigma10))
    return se_s, se_y


CASES = {
    # log-spaced grid, 100 points per decade (2 per bin), three drops
    "log": (np.logspace(-2.0, 6.0, 801), [3.0, 300.0, 3e4], 2.0),
    # uniform grid (an SGD-like log of risks), two drops; >= 1 sample per bin beyond t = 0.25/0.046
    "uniform": (np.arange(0.0, 3e5, 0.25), [100.0, 1e4], None),
}


@pytest.mark.parametrize("noise", [0.0, 0.01])
@pytest.mark.parametrize("grid", ["log", "uniform"])
def test_staircase_recovered(grid: str, noise: float) -> None:
    time, drop_times, per_bin = CASES[grid]
    levels = BMZ_LEVELS[: len(drop_times) + 1]
    stairs = Staircase(levels, drop_times)
    risk = stairs.risk(time)
    if noise:
        risk = risk * (1.0 + noise * np.random.default_rng(7).standard_normal(time.size))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 1 % noise must not make the slope noisy (no warning)
        plateaus = detect_plateaus(time, risk, threshold=THRESHOLD, smoothing=SMOOTHING, bins_per_smoothing=BINS)
    assert len(plateaus) == len(levels)
    assert plateaus[-1].drop_time is None and plateaus[-1].risk_after is None
    assert plateaus[0].entry_time == time[time > 0][0]
    first, last = math.log(time[time > 0][0]), math.log(time[-1])
    crossings, slope_error, (grid_x, s_ref, d2s) = stairs.reference(first + 3 * SIGMA, last - 3 * SIGMA)
    assert len(crossings) == 2 * len(drop_times)
    # per-bin sample count at a crossing: log grid 2; uniform grid t Δ / dt (dense, thousands)
    for j, plateau in enumerate(plateaus):
        for detected, which in ((plateau.exit_time, 2 * j), (plateau.entry_time, 2 * j - 1)):
            if which < 0 or which >= len(crossings):
                continue
            root, derivative = crossings[which]
            count = per_bin if per_bin is not None else math.exp(root) * DELTA / 0.25
            se_s, _ = _noise_errors(noise, count)
            # interpolation + binning error (×2), plus 4 standard errors of the noisy slope
            tolerance = (2.0 * slope_error + 4.0 * se_s) / derivative
            assert abs(math.log(detected) - root) <= tolerance, (j, which, math.log(detected), root, tolerance)
        # height: median over log time of the reference smoothed risk on the detected plateau.  The
        # discrete median picks a bin value: |ȳ'| < threshold there, so it is off by <= threshold · Δ,
        # plus the bin-averaging bias Δ² max|y'' + y'²| / 24 <= slope_error · Δ, plus 4 SE_y.
        lo = math.log(plateau.entry_time)
        hi = math.log(plateau.exit_time)
        inside = np.linspace(lo, hi, 2001)
        reference_height = float(np.median(stairs.smoothed_log_risk(inside)))
        count = per_bin if per_bin is not None else math.exp(lo) * DELTA / 0.25
        _, se_y = _noise_errors(noise, count)
        tolerance = THRESHOLD * DELTA + slope_error * DELTA + 4.0 * se_y
        assert abs(math.log(plateau.height) - reference_height) <= tolerance, (j, plateau.height)
        # against the construction's level: the smoothed curve itself departs from h_j on the plateau
        departure = float(np.max(np.abs(stairs.smoothed_log_risk(inside) - math.log(levels[j]))))
        assert abs(math.log(plateau.height / levels[j])) <= departure + tolerance
        if plateau.drop_time is not None:
            # steepest point of S_σ between this exit and the next entry; a perturbation δ of S moves
            # the argmin by <= sqrt(4 δ / S_σ''), δ = slope error + Δ² |S_σ''| / 8 (parabola) + 4 SE_S
            between = (grid_x > crossings[2 * j][0]) & (grid_x < crossings[2 * j + 1][0])
            k = np.flatnonzero(between)[np.argmin(s_ref[between])]
            curvature = abs(d2s[k])
            count = per_bin if per_bin is not None else math.exp(grid_x[k]) * DELTA / 0.25
            se_s, se_y = _noise_errors(noise, count)
            delta = slope_error + DELTA**2 * curvature / 8.0 + 4.0 * se_s
            assert abs(math.log(plateau.drop_time) - grid_x[k]) <= math.sqrt(4.0 * delta / curvature)
            # risk after the drop: ȳ at the next entry; |ȳ'| = threshold there, so an entry error ε
            # changes it by threshold · ε, plus the height-type errors
            root, derivative = crossings[2 * j + 1]
            entry_error = (2.0 * slope_error + 4.0 * se_s) / derivative
            expected = float(stairs.smoothed_log_risk([root])[0])
            tolerance = THRESHOLD * entry_error + slope_error * DELTA + 4.0 * se_y
            assert abs(math.log(plateau.risk_after) - expected) <= tolerance


def test_time_unit_and_ignore_before() -> None:
    """Plateaus live on a log-time axis: rescaling time rescales entry/exit exactly (the bins move
    with it only up to their origin, so to one bin Δ); ignore_before drops the first plateau."""
    time, drop_times, _ = CASES["log"]
    stairs = Staircase(BMZ_LEVELS, drop_times)
    base = detect_plateaus(time, stairs.risk(time))
    scaled = detect_plateaus(time * 7.0, stairs.risk(time))
    for p, q in zip(base, scaled):
        # the same bins (origin at the first time) and the same values: identical up to round-off
        assert math.isclose(q.exit_time, 7.0 * p.exit_time, rel_tol=1e-9)
    late = detect_plateaus(time, stairs.risk(time), ignore_before=10.0)
    assert len(late) == len(base) - 1
    assert late[0].entry_time >= 10.0
    # the second plateau's exit is not affected (it is > 3σ from t = 10): within one bin
    assert abs(math.log(late[0].exit_time / base[1].exit_time)) <= DELTA


def test_no_plateau_in_power_law_and_min_duration() -> None:
    """R = t^{-1/2} has slope −1/2 everywhere: no plateau; a flat stretch shorter than min_duration
    is not reported."""
    time = np.logspace(-1, 4, 500)
    assert detect_plateaus(time, time**-0.5) == []
    # a single plateau of the staircase has ~1 decade; asking for 3 decades removes all but the last
    stairs = Staircase([2.0, 1.0, 0.5], [1.0, 100.0])
    long = detect_plateaus(time, stairs.risk(time), min_duration=2.0)
    assert all(p.duration_decades >= 2.0 for p in long)
    assert len(long) < len(detect_plateaus(time, stairs.risk(time)))


def test_round_off_floor_is_not_a_plateau() -> None:
    """Exponential convergence to 0 flattens at round-off; that floor is not reported."""
    time = np.logspace(-2, 3, 600)
    risk = np.maximum(np.exp(-time), 1e-300) + 0.0
    plateaus = detect_plateaus(time, risk, risk_floor=1e-15)
    assert len(plateaus) == 1 and plateaus[0].height > 0.5  # only the initial flat part at R ≈ 1


def test_noise_warning() -> None:
    """20 % noise with a tiny smoothing makes the slope noisy: the detector says so."""
    time = np.logspace(-2, 4, 600)
    stairs = Staircase([2.0, 1.0], [10.0])
    risk = stairs.risk(time) * (1.0 + 0.2 * np.random.default_rng(3).standard_normal(time.size))
    with pytest.warns(RuntimeWarning, match="increase smoothing"):
        detect_plateaus(time, np.abs(risk), smoothing=0.02)


# ---- theory levels -----------------------------------------------------------------------------


def test_bmz_levels_and_monte_carlo() -> None:
    levels = hermite_plateau_heights(HermiteStructure.from_specs(target=BMZ))
    assert [level.fitted_degree for level in levels] == [-1, 0, 1, 2]
    assert [level.next_degree for level in levels] == [0, 1, 2, None]
    for level, expected in zip(levels, BMZ_LEVELS):
        assert math.isclose(level.height, expected, rel_tol=1e-14)  # hand-derived (module constant)
    # Monte-Carlo of the energy of the unfitted components plus label noise
    rng = np.random.default_rng(11)
    target = make_target(BMZ)
    z = rng.standard_normal(400_000)
    y = target.sample_labels(z, rng)
    basis = normalized_hermite(z, 2)
    coefficients = target.coefficients(2)
    for level in levels:
        fitted = coefficients[: level.fitted_degree + 1] @ basis[: level.fitted_degree + 1]
        sample = (y - fitted) ** 2
        error = sample.std() / math.sqrt(sample.size)
        assert abs(sample.mean() - level.height) <= 4.0 * error  # 4 standard errors


def test_levels_from_problem_relu_target_and_zero_coefficients() -> None:
    problem = SingleIndexProblem({"name": "relu"}, "relu", "inf", sphere=True)
    levels = hermite_plateau_heights(problem.hermite_structure(), max_degree=4)
    # ReLU: α_3(1) = 0, so degree 3 is not a level; degrees 0, 1, 2, 4 are
    assert [level.fitted_degree for level in levels] == [-1, 0, 1, 2, 4]
    rng = np.random.default_rng(5)
    z = rng.standard_normal(400_000)
    phi = np.maximum(z, 0.0)
    basis = normalized_hermite(z, 4)
    coefficients = problem.target.coefficients(4)
    for level in levels:
        sample = (phi - coefficients[: level.fitted_degree + 1] @ basis[: level.fitted_degree + 1]) ** 2
        assert abs(sample.mean() - level.height) <= 4.0 * sample.std() / math.sqrt(sample.size)
    with pytest.raises(ValueError, match="max_degree"):
        hermite_plateau_heights(HermiteStructure.from_specs(target={"name": "relu"}))
    with pytest.raises(ValueError, match="max_degree"):
        hermite_plateau_heights(HermiteStructure.from_specs(target=BMZ), max_degree=-1)


def test_match_plateaus_bmz_staircase() -> None:
    """Heights off by a few per cent are matched to the right level; each drop learns the next
    degree; the final plateau at τ² is open."""
    time = np.logspace(-2, 6, 801)
    perturbed = [h * f for h, f in zip(BMZ_LEVELS, (1.03, 0.96, 1.05, 1.02))]
    detected = detect_plateaus(time, Staircase(perturbed, [3.0, 300.0, 3e4]).risk(time))
    matches = match_plateaus(detected, hermite_plateau_heights(HermiteStructure.from_specs(target=BMZ)))
    assert [m.level.fitted_degree for m in matches] == [-1, 0, 1, 2]
    assert [m.degrees_learnt for m in matches] == [(0,), (1,), (2,), ()]
    for m, factor in zip(matches, (1.03, 0.96, 1.05, 1.02)):
        # the detected height is within the plateau departure (< 1 %, test above) of the perturbed level
        assert abs(m.log_error - math.log(factor)) < 0.01
    # noiseless target: the last level is 0 and hosts no plateau, but is reached by the last drop
    noiseless = hermite_plateau_heights(HermiteStructure.from_specs(target={"he": [1.0, -1.0, 2.0 / 3.0]}))
    stairs = Staircase([2 + 8 / 9, 1 + 8 / 9, 8 / 9, 1e-6], [3.0, 300.0, 3e4])
    found = detect_plateaus(time, stairs.risk(time))
    matches = match_plateaus(found, noiseless)
    assert matches[2].level_after.fitted_degree == 2 and matches[2].degrees_learnt == (2,)
    # skipping a level: a single drop from E y² to R_1 learns degrees 0 and 1
    jump = detect_plateaus(time, Staircase([2 + 8 / 9, 8 / 9], [3.0]).risk(time))
    assert match_plateaus(jump, noiseless)[0].degrees_learnt == (0, 1)


# ---- order parameters --------------------------------------------------------------------------


def _network(rng: np.random.Generator, dimension: int, neurons: int, sphere: bool):
    theta = np.zeros(dimension)
    theta[0] = 1.0
    w = rng.standard_normal((neurons, dimension))
    w[:, 0] += 1.0  # some alignment, so that high degrees are not negligible
    if sphere:
        w /= np.linalg.norm(w, axis=1, keepdims=True)
    else:
        w *= rng.uniform(0.5, 1.5, neurons)[:, None] / np.linalg.norm(w, axis=1, keepdims=True)
    a = rng.normal(1.0, 0.5, neurons)
    return a, w, theta


@pytest.mark.parametrize("activation,sphere,trained", [
    ("relu", False, True),
    ("tanh", False, True),
    ({"name": "polynomial", "he_coefficients": [0.2, 1.0, 0.0, 0.5]}, False, True),
    ("relu", True, True),
    ("he3", True, False),
])
def test_order_parameters_against_monte_carlo(activation, sphere: bool, trained: bool) -> None:
    """m_k = E[f(x) He_k(z)] / k! of a full-dimensional network f = (1/N) Σ a_i σ(⟨w_i, x⟩), by
    Monte-Carlo (4 standard errors), against the reduced formula at the network's invariants."""
    dimension, neurons, samples = 6, 5, 200_000
    rng = np.random.default_rng(17)
    problem = SingleIndexProblem(BMZ, activation, dimension, sphere=sphere, train_second_layer=trained,
                                 second_layer=0.7)
    a, w, theta = _network(rng, dimension, neurons, sphere)
    if not trained:
        a = np.full(neurons, 0.7)
    degrees = [0, 1, 2, 3, 4]
    points = problem.reduced_coordinates(a, w, theta)
    predicted = hermite_order_parameters(problem.hermite_structure(), points, np.full(neurons, 1.0 / neurons), degrees)
    x = rng.standard_normal((samples, dimension))
    f = problem.activation(x @ w.T) @ a / neurons
    basis = normalized_hermite(x @ theta, 4)
    for k in degrees:
        sample = f * basis[k] / math.sqrt(math.factorial(k))  # He_k / k! = h_k / sqrt(k!)
        error = sample.std() / math.sqrt(samples)
        assert abs(sample.mean() - predicted[k]) <= 4.0 * error, (k, sample.mean(), predicted[k], error)


def test_component_residuals_bessel_and_fit() -> None:
    """(φ̂_k − m̂_k)² sums to at most R − τ² (Bessel), exactly for a law that fits φ; and every
    residual is φ̂_k² for the law at a = 0."""
    # a polynomial activation makes every series of the problem exact (risk to round-off)
    problem = SingleIndexProblem(BMZ, {"name": "polynomial", "he_coefficients": [0.3, 1.0, 0.5, 0.2]}, "inf",
                                 sphere=True)
    rng = np.random.default_rng(2)
    points = np.column_stack([rng.normal(0.5, 1.0, 40), rng.uniform(-1.0, 1.0, 40)])
    masses = np.full(40, 1.0 / 40)
    residuals = hermite_component_residuals(problem.hermite_structure(), points, masses, range(13))
    excess = problem.risk(points, masses) - problem.target.noise_variance
    assert residuals.sum() <= excess + 1e-12  # Bessel; 1e-12: round-off of O(1) sums
    zero = points.copy()
    zero[:, 0] = 0.0
    expected = problem.target.coefficients(12) ** 2
    assert np.allclose(hermite_component_residuals(problem.hermite_structure(), zero, masses, range(13)), expected, atol=0, rtol=1e-15)
    # He_2 network on the sphere at s = 1 with a = 2/3 · sqrt(2!)/α_2(1) = 2/3 fits the He_2 part
    he2 = SingleIndexProblem(BMZ, "he2", "inf", sphere=True)
    m = hermite_order_parameters(he2.hermite_structure(), np.array([[2.0 / 3.0, 1.0]]), np.array([1.0]), [0, 1, 2])
    assert np.allclose(m, [0.0, 0.0, 2.0 / 3.0], atol=1e-14)  # He_2(G) = He_2(z) exactly at s = 1


# ---- errors ------------------------------------------------------------------------------------


def test_errors_name_the_field() -> None:
    time = np.logspace(-1, 2, 50)
    risk = np.ones(50)
    bad = risk.copy()
    bad[7] = np.nan
    with pytest.raises(ValueError, match=r"risk\[7\] = nan"):
        detect_plateaus(time, bad)
    backwards = time.copy()
    backwards[10] = 0.5 * backwards[9]
    with pytest.raises(ValueError, match=r"time must be non-decreasing: time\[9\]"):
        detect_plateaus(backwards, risk)
    with pytest.raises(ValueError, match="time has shape"):
        detect_plateaus(time, risk[:-1])
    with pytest.raises(ValueError, match="1-D"):
        detect_plateaus(time[:, None], risk[:, None])
    negative = risk.copy()
    negative[3] = -0.5
    with pytest.raises(ValueError, match=r"risk\[3\] = -0.5 at time .* is negative"):
        detect_plateaus(time, negative)
    with pytest.raises(ValueError, match="threshold"):
        detect_plateaus(time, risk, threshold=0.0)
    with pytest.raises(ValueError, match="smoothing"):
        detect_plateaus(time, risk, smoothing=float("nan"))
    with pytest.raises(ValueError, match="time\\[0\\]"):
        detect_plateaus(time - 1.0, risk)
    with pytest.raises(ValueError, match="ignore_before"):
        risk_slope(time, risk, ignore_before=1e3)
    problem = SingleIndexProblem(BMZ, "relu", "inf")
    with pytest.raises(ValueError, match=r"masses\[1\] = -0.1"):
        hermite_order_parameters(problem.hermite_structure(), np.ones((2, 3)), np.array([1.1, -0.1]), [0])
    with pytest.raises(ValueError, match="degrees"):
        hermite_order_parameters(problem.hermite_structure(), np.ones((2, 3)), np.array([0.5, 0.5]), [-1])
    with pytest.raises(ValueError, match="expected \\(M, 3\\)"):
        hermite_order_parameters(problem.hermite_structure(), np.ones((2, 2)), np.array([0.5, 0.5]), [0])


def test_unlearnable_degrees_and_levels_with_activation() -> None:
    """A degree whose activation coefficient α_k(n) vanishes at every scale is never learnt (module
    docstring §2): odd σ (tanh, erf) miss every even degree, ReLU the odd degrees >= 3, a polynomial
    of degree p every k > p; on the sphere (n = 1) σ = He_3 also misses k = 1 (α_1(n) = 3n(n² − 1)).
    The levels then run over the learnable degrees with the unlearnable energy as a floor: each equals
    E[(y − Π y)²] for the L² projection Π on the learnable degrees <= ℓ (Monte Carlo, 4 s.e.)."""
    from reduced_pde.analysis.plateaus import unlearnable_degrees
    from reduced_pde.analysis.timescales import sphere_hermite_problem

    def sigma(spec):  # the activation part alone (neurons in the ball: every scale n)
        return HermiteStructure.from_specs(activation=spec)

    assert unlearnable_degrees(sigma("tanh"), 5) == (0, 2, 4)
    assert unlearnable_degrees(sigma("erf"), 4) == (0, 2, 4)
    assert unlearnable_degrees(sigma("relu"), 6) == (3, 5)
    assert unlearnable_degrees(sigma("mmn18"), 6) == ()                       # no symmetry: every degree
    assert unlearnable_degrees(sigma({"name": "polynomial", "he_coefficients": [0.0, 1.0, 0.5]}), 4) == (3, 4)
    assert unlearnable_degrees(sigma("he3"), 4) == (0, 2, 4)                  # ball: n varies
    assert unlearnable_degrees(sphere_hermite_problem(3, 20).hermite_structure(), 4) == (0, 1, 2, 4)   # sphere: n = 1
    problem = SingleIndexProblem({"he": [0.5, 0.8, 0.0, 0.4]}, "tanh", 50, sphere=True, train_second_layer=True)
    levels = hermite_plateau_heights(problem.hermite_structure())
    assert [level.fitted_degree for level in levels] == [-1, 1, 3]
    plain = hermite_plateau_heights(HermiteStructure.from_specs(target=problem.target))  # no activation: every degree
    assert [level.fitted_degree for level in plain] == [-1, 0, 1, 3]
    rng = np.random.default_rng(11)
    z = rng.standard_normal(400_000)
    basis = normalized_hermite(z, 3)
    coefficients = problem.target.coefficients(3)
    y = coefficients @ basis
    for level in levels:
        learnable = [k for k in (1, 3) if k <= level.fitted_degree]
        sample = (y - coefficients[learnable] @ basis[learnable]) ** 2
        assert abs(sample.mean() - level.height) <= 4.0 * sample.std() / math.sqrt(sample.size)  # 4 s.e.
    with pytest.raises(ValueError, match="activation"):
        sigma("softsign")
    with pytest.raises(ValueError, match="max_degree"):
        unlearnable_degrees(sigma("tanh"), -1)


def test_repeated_times_are_merged() -> None:
    """An SGD file whose output times are finer than its step repeats the nearest step kε: runs of
    equal times are merged into one sample with the mean risk, so the detection equals that on the
    de-duplicated curve exactly."""
    from reduced_pde.analysis.plateaus import merge_repeated_times

    time = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 3.0])
    risk = np.array([4.0, 2.0, 1.0, 2.0, 3.0, 5.0, 6.0])
    merged_time, merged_risk = merge_repeated_times(time, risk)
    assert merged_time.tolist() == [0.0, 1.0, 2.0, 3.0] and merged_risk.tolist() == [3.0, 2.0, 5.0, 6.0]
    stairs = Staircase(BMZ_LEVELS[:2], [1e-1])
    grid = np.geomspace(1e-4, 1e2, 300)
    repeated = np.repeat(grid, 2)
    assert detect_plateaus(repeated, stairs.risk(repeated)) == detect_plateaus(grid, stairs.risk(grid))


def test_compare_plateaus_matches_in_height_and_time_order() -> None:
    """Each predicted plateau takes, in every run, the not-yet-used plateau nearest in ln height within
    max_ratio, never one earlier than a plateau already matched in that run; mean ± s.e. over runs."""
    from reduced_pde.analysis.plateaus import Plateau, compare_plateaus

    def plateau(index, height, exit_time):
        return Plateau(index=index, height=height, entry_time=exit_time / 10, exit_time=exit_time,
                       drop_time=2 * exit_time, risk_after=height / 2)

    predicted = [plateau(0, 2.0, 1.0), plateau(1, 1.0, 10.0)]
    runs = [[plateau(0, 2.1, 1.1), plateau(1, 0.95, 9.0)],
            [plateau(0, 1.9, 0.9), plateau(1, 1.05, 11.0)],
            [plateau(0, 1.0, 0.5)]]                              # only a low plateau: used for #1, not #0
    comparisons = compare_plateaus(predicted, runs)
    assert [p is None for p in comparisons[0].observed] == [False, False, True]
    assert comparisons[1].observed[2].height == 1.0
    mean, error, count = comparisons[0].mean_and_error("exit_time")
    assert count == 2 and mean == pytest.approx(1.0) and error == pytest.approx(0.1)  # s.d. 0.1414/√2
    mean, error, count = comparisons[1].mean_and_error("height")
    assert count == 3 and mean == pytest.approx(1.0)
    late_only = [[plateau(0, 1.0, 0.5), plateau(1, 2.0, 5.0)]]  # the 2.0 plateau comes after the 1.0 one
    pairs = compare_plateaus(predicted, late_only)
    assert pairs[0].observed[0].exit_time == 5.0 and pairs[1].observed[0] is None
    with pytest.raises(ValueError, match="max_ratio"):
        compare_plateaus(predicted, runs, max_ratio=1.0)


# ---- the Hermite/index structure a problem declares ------------------------------------------------


def test_single_index_hermite_structure_values_and_levels() -> None:
    """``SingleIndexProblem.hermite_structure()``: the BMZ target's energies φ̂_k² = k! c_k² = (1, 1, 8/9),
    its signed φ̂_k = c_k sqrt(k!), τ², E φ², the activation's α_k(n) (the problem's own, n = 1 on the
    sphere, any n in the ball) and the coordinate roles; its levels are the hand-derived BMZ levels,
    equal to those of the target alone (ReLU represents degrees 0, 1, 2)."""
    sphere = SingleIndexProblem(BMZ, "relu", "inf", sphere=True, train_second_layer=True, second_layer=0.0)
    structure = sphere.hermite_structure()
    spectrum = structure.target
    # exact polynomial arithmetic: 1 ulp of O(1) numbers
    assert np.allclose(spectrum.block_energies(2), [1.0, 1.0, 8.0 / 9.0], rtol=1e-15, atol=0)
    assert np.allclose(spectrum.coefficients(2), [1.0, -1.0, 2.0 / 3.0 * math.sqrt(2.0)], rtol=1e-15, atol=0)
    assert spectrum.noise_variance == 0.1 and spectrum.exact_degree == 2 and spectrum.index_dimension == 1
    assert math.isclose(spectrum.label_second_moment, BMZ_LEVELS[0], rel_tol=1e-15)
    assert spectrum.tail(1) == pytest.approx(8.0 / 9.0, rel=1e-15) and spectrum.tail(2) == 0.0
    assert structure.activation.fixed_scale == 1.0
    n = np.array([0.3, 1.0, 2.5])
    assert np.array_equal(structure.activation.coefficients(n, 5), sphere.activation.hermite_coefficients(n, 5))
    assert (structure.coordinate_names, structure.second_layer_coordinate, structure.alignment_coordinates,
            structure.orthogonal_coordinate, structure.second_layer) == (("a", "s"), "a", ("s",), None, None)
    levels = hermite_plateau_heights(structure)
    assert [level.height for level in levels] == pytest.approx(BMZ_LEVELS, rel=1e-14)  # hand-derived
    assert levels == hermite_plateau_heights(HermiteStructure.from_specs(target=BMZ))
    ball = SingleIndexProblem(BMZ, "tanh", 20, train_second_layer=False, second_layer=0.7).hermite_structure()
    assert (ball.coordinate_names, ball.second_layer_coordinate, ball.orthogonal_coordinate, ball.second_layer,
            ball.activation.fixed_scale) == (("s", "r"), None, "r", 0.7, None)
    # tanh is odd: degrees 0 and 2 are unlearnable, R_1 keeps their energy 1 + 8/9 plus τ²
    odd = hermite_plateau_heights(ball)
    assert [lvl.fitted_degree for lvl in odd] == [-1, 1]
    assert [lvl.height for lvl in odd] == pytest.approx([BMZ_LEVELS[0], 0.1 + 1.0 + 8.0 / 9.0], rel=1e-14)


def test_multi_index_hermite_structure_block_energies_and_levels() -> None:
    """``MultiIndexProblem.hermite_structure()``: block energies E_K = Σ_{|i|=K} φ̂_i² of
    φ̂ = {00: 0.4, 10: 1, 01: −0.6, 20: 0.5, 11: 0.7} are (0.16, 1.36, 0.74), so with τ² = 0.05 the
    levels are E y² = 2.31, R_0 = 2.15, R_1 = 0.79, R_2 = 0.05 (ReLU) — the levels of a single-index
    target with the block norms as coefficients; tanh (odd) cannot fit K = 0, 2: levels 2.31, 0.95.
    Order parameters along one θ* are refused for k = 2."""
    target = {"hermite": {"0,0": 0.4, "1,0": 1.0, "0,1": -0.6, "2,0": 0.5, "1,1": 0.7}, "noise_variance": 0.05}
    from reduced_pde.models.multi_index import MultiIndexProblem

    relu = MultiIndexProblem(target, "relu", 12, index_dimension=2).hermite_structure()
    assert np.allclose(relu.target.block_energies(3), [0.16, 1.36, 0.74, 0.0], rtol=1e-15, atol=0)
    assert relu.target.index_dimension == 2 and relu.target.exact_degree == 2 and relu.target.coefficients is None
    assert (relu.coordinate_names, relu.alignment_coordinates, relu.orthogonal_coordinate,
            relu.second_layer_coordinate) == (("a", "s1", "s2", "r"), ("s1", "s2"), "r", "a")
    heights = [level.height for level in hermite_plateau_heights(relu)]
    assert heights == pytest.approx([2.31, 2.15, 0.79, 0.05], rel=1e-14)  # hand-derived; round-off of sums
    radial = {"hermite": [0.4, math.sqrt(1.36), math.sqrt(0.74)], "noise_variance": 0.05}
    assert heights == pytest.approx([lvl.height for lvl in hermite_plateau_heights(
        HermiteStructure.from_specs(target=radial))], rel=1e-14)
    tanh = MultiIndexProblem(target, "tanh", 12, index_dimension=2, train_second_layer=False).hermite_structure()
    odd = hermite_plateau_heights(tanh)
    assert [lvl.fitted_degree for lvl in odd] == [-1, 1]
    assert [lvl.height for lvl in odd] == pytest.approx([2.31, 0.95], rel=1e-14)
    with pytest.raises(ValueError, match="need exactly one, s"):
        hermite_order_parameters(relu, np.ones((1, 4)), np.array([1.0]), [0])
    with pytest.raises(ValueError, match="single-index target"):
        hermite_component_residuals(relu, np.ones((1, 4)), np.array([1.0]), [0])


def test_problems_without_hermite_structure_are_refused() -> None:
    """MMN18's isotropic mixture declares no Hermite structure (None): every Hermite analysis refuses
    it with a ValueError naming what is missing; the problem itself is not a structure (TypeError);
    the plateau report of an MMN18 run gives the plateaus alone."""
    from reduced_pde.analysis.plateaus import unlearnable_degrees
    from reduced_pde.models.isotropic_mixture import IsotropicGaussianMixture, IsotropicMixtureRadialProblem

    problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, 40), "mmn18", kappa=0.4)
    assert problem.hermite_structure() is None
    missing = "no Hermite/index structure"
    with pytest.raises(ValueError, match=missing):
        hermite_plateau_heights(problem.hermite_structure())
    with pytest.raises(ValueError, match=missing):
        unlearnable_degrees(problem.hermite_structure(), 3)
    with pytest.raises(ValueError, match=missing):
        hermite_order_parameters(problem.hermite_structure(), np.ones(2), np.full(2, 0.5), [0])
    with pytest.raises(TypeError, match="must be a HermiteStructure"):
        hermite_plateau_heights(problem)
    with pytest.raises(ValueError, match="structure.target is None"):
        hermite_plateau_heights(HermiteStructure.from_specs(activation="tanh"))
    with pytest.raises(ValueError, match="structure.activation is None"):
        unlearnable_degrees(HermiteStructure.from_specs(target=BMZ), 2)

    from pathlib import Path

    from reduced_pde.running.config import flatten, load_config
    from reduced_pde.running.pipeline import plateau_report
    from solvers.results import Trajectory

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "mmn18_quick.toml")
    time = np.logspace(-2, 4, 400)
    risk = Staircase([1.5, 0.5], [10.0]).risk(time)
    run = Trajectory(kind="pde_finite_volume", time=time, risk=risk, coordinates=("r",), mean=np.zeros((400, 1)),
                     std=np.zeros((400, 1)), config=flatten(config))
    report = plateau_report(run)
    assert [p.height for p in report["plateaus"]] == pytest.approx([1.5, 0.5], rel=0.01)  # departure < 1 % (above)
    assert report["theory"] == [] and report["matches"] == [] and report["order_parameters"] is None
