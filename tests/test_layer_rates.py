"""Separated layer speeds (second layer 1/ε faster): the learning-time laws of
reduced_pde/timescales.py against the characteristics solver on the BMZ-type configuration
(configs/bmz_plateaus.toml: He_0 − He_1 + (2/3)He_2, ReLU on the sphere, d = ∞, a(0) ~ N(0, 0.5²))."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from reduced_pde.running.pipeline import plateau_report, run_pde
from reduced_pde.running.config import build_problem, load_config
from reduced_pde.analysis.timescales import he0_fit_time, he1_learning_time, learning_time

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "bmz_plateaus.toml"
R_0 = 17.0 / 9.0          # E y² − φ̂_0²


def _solve(epsilon: float, t_final: float, *, per_decade: int = 40, particles: int = 20, rtol: float = 1e-6):
    t_first = 1e-2 * epsilon
    n = int(per_decade * math.log10(t_final / t_first)) + 1
    config = load_config(CONFIG, [f"network.second_layer_rate={1 / epsilon!r}", f"output.t_final={t_final!r}",
                                  f"output.t_first={t_first!r}", f"output.n_outputs={n}",
                                  f"pde.n_particles={particles}", f"pde.rtol={rtol!r}"])
    return run_pde(config, progress=False)


def _alpha_phi():
    problem = build_problem(load_config(CONFIG))
    return problem.activation.hermite_coefficients(np.array([1.0]), 2).ravel(), problem.target.coefficients(2)


def test_he0_is_fitted_on_the_exact_time_scale_epsilon():
    """While s = 0, r_0 = φ̂_0 − α_0 ā decays like e^{−2α_0² t/ε} exactly, so R − R_0 = φ̂_0² e^{−4α_0² t/ε}.
    At t = k·t_0 (t_0 = he0_fit_time) the excess must be φ̂_0² 2^{−k}, up to (i) s moving meanwhile:
    |ṡ| <= 2α_1|φ̂_1||a|, so m̂_1 = α_1 ∫ a s <= 2α_1²|φ̂_1| E[a²] t and the risk drops by at most
    2|φ̂_1| m̂_1 <= 4α_1²φ̂_1² E[a²] t, E[a²] <= (φ̂_0/α_0)² + Var a(0) (an absolute O(ε) term), and
    (ii) the solver, rtol 1e-6 on a: 1e-5 relative."""
    alpha, phi = _alpha_phi()
    for epsilon in (1e-5, 1e-7):
        t0 = he0_fit_time(epsilon, alpha[0])
        config = load_config(CONFIG, [f"network.second_layer_rate={1 / epsilon!r}", f"output.t_final={float(4 * t0)!r}",
                                      f"output.t_first={float(t0)!r}", "output.n_outputs=3"])
        trajectory = run_pde(config, progress=False)
        excess = trajectory.risk[1:] - R_0
        expected = phi[0] ** 2 * 2.0 ** -np.array([1.0, 2.0, 4.0])
        drift = 4 * alpha[1] ** 2 * phi[1] ** 2 * ((phi[0] / alpha[0]) ** 2 + 0.25) * trajectory.time[1:]
        assert np.all(np.abs(excess - expected) <= drift + 1e-5 * expected), (epsilon, excess, expected, drift)


def test_he1_learning_time_slope_in_log_one_over_root_epsilon():
    """t_1 = (√ε/(4α_1|φ̂_1|)) [ln(1/√ε) + B + o(1)]: the slope of t_1/√ε in ln(1/√ε) between ε = 1e-6
    and 1e-7 equals 1/(4α_1|φ̂_1|) = 1/2 up to the change of the O(1) term B(ε), which the sweep
    measures decaying geometrically (deviations 0.135, 0.05, 0.021, 0.009 over successive decades from
    1e-4 to 1e-9, benchmarks/epsilon_sweep_results.txt): tolerance 0.05 (a 10% error in α_1 or the
    √ε scaling fails); the leading-order formula itself within 10% (its O(√ε) remainder, measured 7%)."""
    alpha, phi = _alpha_phi()
    values = {}
    for epsilon in (1e-6, 1e-7):
        trajectory = _solve(epsilon, 0.02)
        report = plateau_report(trajectory)
        times, degrees, order = report["order_parameters"]
        values[epsilon] = learning_time(times, order[:, list(degrees).index(1)], phi[1])
        predicted = he1_learning_time(epsilon, alpha[1], phi[1], 0.25)
        assert abs(values[epsilon] / predicted - 1.0) < 0.10, (epsilon, values[epsilon], predicted)
    x = [math.log(1 / math.sqrt(e)) for e in (1e-6, 1e-7)]
    y = [values[e] / math.sqrt(e) for e in (1e-6, 1e-7)]
    slope = (y[1] - y[0]) / (x[1] - x[0])
    assert abs(slope - 1.0 / (4 * abs(alpha[1] * phi[1]))) < 0.05, slope


def test_stiff_solution_is_converged_in_rtol_and_particles():
    """At ε = 1e-6 the Radau solution with rtol 1e-6 agrees with rtol 1e-8 over t ∈ [1e-8, 0.05]
    (through the He_0 fit, the plateau, the He_1 and He_2 drops) to 1e-3 relative in the risk (the
    sweep measures ~1e-5), and the risk never increases (gradient flow; 1e-9 relative slack for the
    integrator's local error)."""
    coarse = _solve(1e-6, 0.05, per_decade=10)
    fine = _solve(1e-6, 0.05, per_decade=10, rtol=1e-8)
    assert np.max(np.abs(coarse.risk / fine.risk - 1.0)) < 1e-3
    assert np.all(np.diff(fine.risk) <= 1e-9 * fine.risk[:-1])


def test_learning_time_errors_and_interpolation():
    t = np.array([0.0, 1.0, 10.0, 100.0])
    m = np.array([0.0, 0.2, 0.6, 0.9])
    # linear in log t between t = 1 (0.2) and t = 10 (0.6): 0.5 at 10^{0.75}
    assert learning_time(t, m, 1.0) == pytest.approx(10 ** 0.75, rel=1e-12)
    assert learning_time(t, -m, -1.0, fraction=0.9) == pytest.approx(100.0)   # sign of the target
    assert math.isnan(learning_time(t, m, 2.0))
    with pytest.raises(ValueError, match="target"):
        learning_time(t, m, 0.0)
    with pytest.raises(ValueError, match="epsilon"):
        he0_fit_time(-1.0, 0.4)
    with pytest.raises(ValueError, match="alpha_0"):
        he0_fit_time(1e-3, 0.0)
    with pytest.raises(ValueError, match="second_layer_variance"):
        he1_learning_time(1e-3, 0.5, 1.0, 0.0)
