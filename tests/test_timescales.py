"""Escape times from the initial plateau and their d-scaling (reduced_pde/timescales.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reduced_pde.analysis.timescales import (
    asymptotic_escape_prefactor,
    escape_time,
    escape_time_sweep,
    extrapolated_exponent,
    fit_power_law,
    he2_escape_time,
    local_exponents,
    solve_escape_time,
)
from solvers.results import Trajectory

ROUND_OFF = 1e-12  # a few exp/log evaluations of O(1) numbers: ~10 ulp


# ---- escape_time on synthetic curves -----------------------------------------------------------

def test_escape_time_exact_for_risk_linear_in_log_time():
    """R = R0 (1 − c max(ln t, 0)) is linear in log t on every interval after t = 1, so the
    log-time interpolation is exact: T_q = exp(q/c) (q = ½, c = 0.2 → e^{2.5})."""
    time = np.concatenate([[0.0], np.geomspace(0.1, 100.0, 37)])
    initial, slope = 6.0, 0.2
    risk = initial * (1.0 - slope * np.maximum(np.log(np.maximum(time, 1e-300)), 0.0))
    assert escape_time((time, risk), 0.5) == pytest.approx(math.exp(0.5 / slope), rel=ROUND_OFF)
    # with a non-zero optimum R∞ = 1 the level is R0 − q (R0 − R∞)
    expected = math.exp(0.3 * (initial - 1.0) / (initial * slope))
    assert escape_time((time, risk), 0.3, optimal_risk=1.0) == pytest.approx(expected, rel=ROUND_OFF)


def test_escape_time_first_interval_is_linear_in_time_and_accepts_trajectories():
    """On [0, t_1] the interpolation is linear in t: R = 4 − 1.5 t reaches 2 at t = 4/3 exactly."""
    time, risk = np.array([0.0, 2.0, 3.0]), np.array([4.0, 1.0, 0.5])
    assert escape_time((time, risk), 0.5) == pytest.approx(4.0 / 3.0, rel=ROUND_OFF)
    run = Trajectory(kind="pde_lagrangian", time=time, risk=risk, coordinates=("s",), mean=np.zeros(3),
                     std=np.zeros(3))
    assert escape_time(run, 0.5) == pytest.approx(4.0 / 3.0, rel=ROUND_OFF)
    # an explicit plateau height when the record starts after t = 0
    assert escape_time((time[1:], risk[1:]), 0.5, initial_risk=1.2) == pytest.approx(
        math.exp(math.log(2.0) + (1.0 - 0.6) / 0.5 * math.log(1.5)), rel=ROUND_OFF)


def test_escape_time_errors():
    time, risk = np.array([0.0, 1.0, 5.0]), np.array([2.0, 1.9, 1.5])
    with pytest.raises(ValueError, match=r"t_final = 5"):
        escape_time((time, risk), 0.5)
    for bad in (0.0, 1.0, -0.2, "half", True):
        with pytest.raises(ValueError, match="level"):
            escape_time((time, risk), bad)
    with pytest.raises(ValueError, match=r"time\[0\] = 1"):
        escape_time((time[1:], risk[1:]), 0.01)
    with pytest.raises(ValueError, match=r"t = 1"):
        escape_time((time, np.array([2.0, np.nan, 1.0])), 0.5)
    with pytest.raises(ValueError, match="non-decreasing"):
        escape_time((np.array([0.0, 2.0, 1.0]), risk), 0.5)
    with pytest.raises(ValueError, match="first sample"):
        escape_time((time, risk), 0.5, initial_risk=5.0)
    with pytest.raises(ValueError, match="initial_risk"):
        escape_time((time, risk), 0.5, initial_risk=0.0)
    with pytest.raises(ValueError, match="Trajectory or a pair"):
        escape_time(np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="k = 1"):
        solve_escape_time(1, 100)
    with pytest.raises(ValueError, match="dimensions"):
        escape_time_sweep(3, [100, 2.5])
    with pytest.raises(ValueError, match="3/4"):
        asymptotic_escape_prefactor(3, 0.8)
    with pytest.raises(ValueError, match="needs >= 3"):
        fit_power_law([10, 20, 40], [1, 2, 4], d_min=20)


def test_fit_power_law_recovers_exact_power_and_standard_error():
    """Exact power law: slope to round-off, s.e. ~ 0; with ±δ alternating log-residuals the s.e. is
    the textbook sqrt(RSS/(n−2)/Σ(x − x̄)²)."""
    d = np.geomspace(50, 3200, 7)
    fit = fit_power_law(d, 0.7 * d**0.5)
    assert fit.exponent == pytest.approx(0.5, abs=1e-13)  # round-off in log of 7 points
    assert fit.prefactor == pytest.approx(0.7, rel=1e-12)
    delta = 0.01 * np.array([1, -1, 1, -1, 1, -1, 1])
    fit = fit_power_law(d, 0.7 * d**0.5 * np.exp(delta))
    x = np.log(d) - np.log(d).mean()
    slope = float(x @ delta) / float(x @ x)
    residual = delta - delta.mean() - slope * x
    assert fit.exponent == pytest.approx(0.5 + slope, abs=1e-13)
    assert fit.exponent_stderr == pytest.approx(math.sqrt(residual @ residual / 5 / (x @ x)), rel=1e-10)
    assert np.allclose(local_exponents(d, 0.7 * d**0.5), 0.5, atol=1e-13)


def test_extrapolated_exponent_removes_a_power_correction():
    """ln T = ln C + ½ ln d + c d^{−½} on a geometric d grid: the local exponents are exactly
    ½ + A d_mid^{−½} (ratio-2 differences of d^{−½} are ∝ the geometric mid-point's), so the
    extrapolation returns ½ to round-off while the plain fit is biased."""
    d = np.geomspace(50, 3200, 7)
    times = 0.06 * d**0.5 * np.exp(0.8 * d**-0.5)
    value, error = extrapolated_exponent(d, times, 0.5, last=4, log_correction=False)
    assert value == pytest.approx(0.5, abs=1e-12)  # round-off of logs of O(10) numbers
    assert error < 1e-12
    assert abs(fit_power_law(d, times).exponent - 0.5) > 1e-3
    # with a (a + b ln d) d^{−½} correction the log basis recovers ½ to round-off as well
    times = 0.06 * d**0.5 * np.exp((0.8 + 0.3 * np.log(d)) * d**-0.5)
    value, _ = extrapolated_exponent(d, times, 0.5, last=5)
    assert abs(value - 0.5) < 0.1 * abs(local_exponents(d, times)[-1] - 0.5)  # not exact: Δ(ln d · d^-½) ≠ mid-point form
    with pytest.raises(ValueError, match="last"):
        extrapolated_exponent(d, times, 0.5, last=7)


# ---- reduced solves ----------------------------------------------------------------------------

def _interpolation_bound(run: dict) -> float:
    """Bound on the time error of log-time linear interpolation at the crossing:
    |δ ln T| <= (Δ²/8) max|R''| / |R'| (derivatives in x = ln t, Δ the log step), with R', R'' from
    finite differences of the recorded samples around the crossing."""
    x, risk = np.log(run["time"][1:]), run["risk"][1:]
    step = float(np.diff(x).mean())
    first = np.gradient(risk, x)
    second = np.gradient(first, x)
    window = slice(max(len(x) - 5, 0), len(x))
    curvature = float(np.max(np.abs(second[window])) / np.min(np.abs(first[window])))
    return step**2 / 8.0 * curvature


def test_he2_solver_matches_exact_escape_time():
    """k = 2 closes on m₂ = E s²: he2_escape_time is exact up to its quadrature error, which
    converges like nodes⁻² (measured 1e-7 → 2.4e-8 from 200 → 400 → 800 nodes), so < 1e-7 at 400.  The characteristics solve differs by its particle error (measured by doubling n) and
    the interpolation bound."""
    for d in (100, 1000):
        exact = he2_escape_time(d)
        assert he2_escape_time(d, nodes=800) == pytest.approx(exact, rel=1e-7)  # quadrature error ~ nodes⁻²
        run = solve_escape_time(2, d, n_particles=500)
        check = solve_escape_time(2, d, n_particles=1000)
        particles = abs(run["escape_time"] - check["escape_time"]) / check["escape_time"]
        tolerance = 2.0 * particles + _interpolation_bound(check) + 1e-7
        assert abs(check["escape_time"] / exact - 1.0) <= tolerance, (d, check["escape_time"], exact, tolerance)


def test_he2_logarithmic_law():
    """T(d) = (ln d)/16 + c + o(1): the slope dT/d ln d between d = 1000 and 10000 equals 1/16 up to
    the finite-d correction, bounded by the exact deviation between d = 100 and 1000 (it shrinks
    with d, asserted) plus the solver errors; the log-log 'exponent' d ln T / d ln d = T'/T decays."""
    dims = np.array([100.0, 1000.0, 10000.0])
    exact = np.array([he2_escape_time(d) for d in dims])
    exact_slopes = np.diff(exact) / math.log(10.0)
    assert abs(exact_slopes[1] - 1 / 16) < abs(exact_slopes[0] - 1 / 16)
    sweep = escape_time_sweep(2, dims, n_particles=500)
    error = 2.0 * sweep.particle_relative_change * sweep.check_escape_times + 1e-3 * sweep.check_escape_times
    slope = (sweep.check_escape_times[2] - sweep.check_escape_times[1]) / math.log(10.0)
    tolerance = abs(exact_slopes[0] - 1 / 16) + (error[1] + error[2]) / math.log(10.0)
    assert abs(slope - 1 / 16) <= tolerance, (slope, tolerance)
    exponents = local_exponents(dims, sweep.check_escape_times)
    assert exponents[1] < exponents[0] < 0.2  # a power law would keep it constant


def test_he3_exponent_one_half_and_prefactor():
    """k = 3: T_½ = τ₃ √d (1 + ε(d)), ε → 0.  The finite-d correction ε(d) = T/(τ₃ √d) − 1 must shrink
    along d = 1600, 6400, 25600 at least like d^{−1/4} (predicted: (a + b ln d)/√d); the fitted
    exponent then equals ½ up to [|ln(1+ε(d_min))| + |ln(1+ε(d_max))|] / ln(d_max/d_min) plus the
    particle error (doubling n) over the same log range."""
    dims = np.array([1600.0, 6400.0, 25600.0])
    sweep = escape_time_sweep(3, dims, n_particles=500)
    times = sweep.check_escape_times
    assert np.all(sweep.particle_relative_change < 1e-3)  # quantile particles: measured ~1e-4 at n = 500
    epsilon = times / sweep.predicted - 1.0
    assert np.all(np.diff(np.abs(epsilon)) < 0), epsilon
    assert abs(epsilon[-1]) <= abs(epsilon[0]) * (dims[0] / dims[-1]) ** 0.25, epsilon
    fit = fit_power_law(dims, times)
    span = math.log(dims[-1] / dims[0])
    tolerance = (abs(math.log1p(epsilon[0])) + abs(math.log1p(epsilon[-1]))
                 + 2.0 * sweep.particle_relative_change.max()) / span
    assert abs(fit.exponent - 0.5) <= tolerance, (fit, tolerance)


def test_exponent_estimates_bracket_the_exponent_where_the_residual_error_does_not() -> None:
    """T = d^{1/2} (1 + d^{-1/2}) on d = 50 … 3200: deterministic, with a finite-d correction of
    relative size d^{-1/2}.  The least-squares fit's residual s.e. (0.0016) puts 1/2 about 9 s.e.
    away; the systematic spread of the estimates (fits over d-windows, last local exponent,
    extrapolation with the correction's order 1/2) contains 1/2 — the extrapolated value misses it
    only by the second-order correction, d^{-1} ≈ 1e-3 at the last mid-point.  A pure power law gives
    every estimate equal to its exponent to round-off."""
    from reduced_pde.analysis.timescales import exponent_estimates

    d = np.array([50.0, 100, 200, 400, 800, 1600, 3200])
    times = d ** 0.5 * (1 + d ** -0.5)
    estimates = exponent_estimates(d, times, correction_order=0.5)
    fit = estimates.fit
    assert abs(fit.exponent - 0.5) > 5 * fit.exponent_stderr          # the residual s.e. would exclude 1/2
    assert estimates.low <= 0.5 <= estimates.high + 1e-3               # the spread does not
    assert abs(estimates.extrapolated - 0.5) < 2e-3                    # second-order term d^{-1} at d ~ 2000
    pure = exponent_estimates(d, 3.0 * d ** 0.75, correction_order=0.5)
    assert max(abs(v - 0.75) for v in pure.values) < 1e-9              # round-off of the log-log fits
    with pytest.raises(ValueError, match="length >= 3"):
        exponent_estimates(d[:2], times[:2])
