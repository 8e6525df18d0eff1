"""The Circle model (reduced_pde.models.circle_sphere) and its finite-width runs
(reduced_pde.analysis.finite_width with the Circle geometry): the potentials against Monte Carlo, the
reduced kernel against quadrature, the reduced velocity against the full-dimensional projected
gradient, exact identities of the prediction; the validations against coupled runs and finite volumes
are marked slow."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from reduced_pde.analysis.finite_width import (
    CIRCLE,
    MeanFieldFlow,
    SphereHermiteModel,
    _initial_neurons,
    _network_measures,
    circle_quadrature,
    coupled_runs,
    predict_fluctuations,
)
from reduced_pde.cli import main
from reduced_pde.models.circle_sphere import CircleNetwork, CircleSphereProblem


def circle_problem(d: int = 16, activation="he4", target=None) -> CircleSphereProblem:
    return CircleSphereProblem(target or {"name": "he", "degree": 4}, activation, d)


def test_potentials_against_monte_carlo():
    # Package convention: He_4 unnormalised, E He_4(z)² = 4! = 24.  For unit w, v:
    # E[He_4(<w,x>) He_4(<v,x>)] = 24 <w,v>⁴, E[He_4(<w,x>) y] = 24 E_u <w,u>⁴ = 24 (3/8) p⁴ = 9 p⁴, E y² = 9.
    problem = circle_problem(6)
    assert np.allclose(problem.kernel, [0, 0, 0, 0, 24], atol=1e-12)
    assert np.allclose(problem.potential, [0, 0, 0, 0, -9], atol=1e-12)
    assert problem.target_second_moment == pytest.approx(9.0, rel=1e-14)
    network = CircleNetwork(problem)
    rng = np.random.default_rng(1)
    x, y = network.sample(400_000, rng)
    w = _initial_neurons(6, 3, [5])[0]
    he4 = lambda z: z ** 4 - 6 * z ** 2 + 3  # noqa: E731
    sigma = he4(x @ w.T)  # (n, 3)

    def check(samples, expected):
        # Monte-Carlo mean within 5 standard errors (the error is 1/sqrt(n) · std of the samples)
        se = samples.std() / math.sqrt(samples.size)
        assert abs(samples.mean() - expected) < 5 * se, (samples.mean(), expected, se)

    check(y ** 2, 9.0)
    p = np.linalg.norm(w[:, :2], axis=1)
    for i in range(3):
        check(sigma[:, i] * y, 9 * p[i] ** 4)
        check(sigma[:, i] * sigma[:, (i + 1) % 3], 24 * (w[i] @ w[(i + 1) % 3]) ** 4)
    f = sigma.mean(axis=1)
    check((y - f) ** 2, problem.network_risk(w))
    # the labels are exact (trapezoid with 5 nodes on the circle = 64 nodes, to round-off)
    angles = 2 * np.pi * np.arange(64) / 64
    z = x[:50, :1] * np.cos(angles) + x[:50, 1:2] * np.sin(angles)
    assert np.allclose(y[:50], he4(z).mean(axis=1), rtol=1e-12, atol=1e-12)


def test_reduced_kernel_and_gradients_are_exact():
    # the feature expansion against an independent quadrature of E κ(pp' cos θ + qq' c) (exact rules)
    problem = circle_problem(9, activation={"name": "polynomial", "he_coefficients": [0.2, 0.0, 0.5, 0.0, 1.0]},
                             target={"he": [0.1, 0.0, 0.3, 0.0, 0.8]})
    p = np.linspace(0.0, 1.0, 9)
    kernel = problem.interaction_low_rank(p)
    dense = (kernel.features.T * kernel.weights) @ kernel.features
    assert np.allclose(dense, problem.interaction_kernel(p, p), rtol=1e-12, atol=1e-12)
    inner = np.linspace(0.05, 0.95, 7)
    h = 1e-6  # central differences: error O(h²) ~ 1e-12 plus round-off 1e-16/h ~ 1e-10
    numeric = (problem.interaction_low_rank(inner + h).features - problem.interaction_low_rank(inner - h).features) / (2 * h)
    assert np.allclose(problem.interaction_features_gradient(inner), numeric, atol=1e-8)
    numeric_v = (problem.reduced_potential(inner + h) - problem.reduced_potential(inner - h)) / (2 * h)
    assert np.allclose(problem.reduced_potential_gradient(inner), numeric_v, atol=1e-8)
    # the initial law: p² ~ Beta(1, (d−2)/2), E p² = 2/d; the Gauss–Jacobi rule integrates p⁴ exactly
    nodes, weights = circle_quadrature(9, 4, "gauss_jacobi")
    assert weights @ nodes ** 2 == pytest.approx(2 / 9, rel=1e-13)
    assert weights @ nodes ** 4 == pytest.approx(8 / (9 * 11), rel=1e-13)  # E z² = 2·2/(d(d+2))
    law = problem.initial_law()
    assert law.cdf(np.array([0.0, 1.0])).tolist() == [0.0, 1.0]
    # its frozen scipy form (what the characteristics' Gauss rules read) is the same law
    levels = np.array([0.1, 0.5, 0.9])
    assert np.allclose(law.distribution.ppf(levels), law.quantile(levels), rtol=1e-12)
    assert np.allclose(law.distribution.cdf(law.quantile(levels)), levels, rtol=1e-10)


def test_reduced_velocity_is_the_projected_gradient():
    # dp/dt = −2ξ(1 − p²)ψ'(p) with ψ the restriction of Ψ(w; ν) = F(|Pw|, |(I−P)w|) to the sphere:
    # against (Pw/p)·ẇ with ẇ = −2ξ P_w ∇Ψ from central differences of F in R^d (error ~1e-9)
    problem = circle_problem(7)
    flow = MeanFieldFlow(problem, 32)
    moments = flow._moments(flow.nodes)
    a, l = problem._plane_power, problem._complement_power

    def psi_full(w):
        p, q = np.linalg.norm(w[:2]), np.linalg.norm(w[2:])
        return float(np.polynomial.polynomial.polyval(p, problem.potential) + moments @ (p ** a * q ** l))

    rng = np.random.default_rng(3)
    for _ in range(4):
        w = rng.standard_normal(7)
        w /= np.linalg.norm(w)
        h = 1e-6
        grad = np.array([(psi_full(w + h * e) - psi_full(w - h * e)) / (2 * h) for e in np.eye(7)])
        wdot = -2 * 0.5 * (grad - (grad @ w) * w)
        p = np.linalg.norm(w[:2])
        reduced = flow.velocity(0.0, flow.nodes, np.array([p]))[1][0] * 0.5  # schedule ξ = 0.5
        assert (w[:2] / p) @ wdot[:2] == pytest.approx(reduced, rel=1e-7, abs=1e-9)


def test_network_risk_of_the_reduced_measures_is_exact():
    # L_m from the geometry's invariant (p = |Pw|) equals the problem's exact network risk (unit rows); the
    # network velocity is checked against the projected gradient of L_m in tests/test_finite_width.py
    problem = circle_problem(6)
    model = SphereHermiteModel.from_problem(problem)
    assert model.geometry is CIRCLE
    flow = MeanFieldFlow(problem, 8)
    w = _initial_neurons(6, 4, [2])
    risk = _network_measures(model, flow, flow.nodes, w, 0.0)[1][0]
    assert risk == pytest.approx(problem.network_risk(w[0]), rel=1e-12)


def test_prediction_at_time_zero_and_its_mean_field_part():
    # e(0) = c(0) = Var = κ(1) − 24 E<w,w'>⁴ = 24(1 − 3/(d(d+2))) exactly (Gauss–Jacobi rules in p², the
    # complement cosine and the trapezoid in the angle integrate the degree-8 polynomials exactly;
    # R(ε) is exactly quadratic at t = 0: round-off ~ 1e-16 · 24/ε² ~ 1e-9 relative)
    problem = circle_problem(10)
    variance = SphereHermiteModel.from_problem(problem).output_variance()
    assert variance == pytest.approx(24 * (1 - 3 / 120), rel=1e-13)
    prediction = predict_fluctuations(problem, [0.0], atoms=6, s_nodes=6, q_nodes=6, angle_nodes=9,
                                      rule="gauss_jacobi")
    assert prediction.function_gap[0] == pytest.approx(variance, rel=1e-9)
    assert prediction.risk_excess[0] == pytest.approx(variance, rel=1e-6)
    # at ε = 0 the 4-coordinate frame computation is the 1-D reduced flow of the problem (same p-nodes,
    # same RK4 steps; they differ by the renormalisation to the sphere after each step, O(h⁴) ~ 1e-7)
    times = np.array([0.0, 0.02, 0.04])
    frame = predict_fluctuations(problem, times, atoms=2, s_nodes=24, q_nodes=4, angle_nodes=8, dt=1e-3,
                                 rule="gauss_jacobi")
    runs = coupled_runs(problem, [2], [0], times, dt=1e-3, nodes=24, rule="gauss_jacobi")
    assert np.allclose(frame.mean_field_risk, runs.mean_field_risk, rtol=1e-6, atol=0)
    assert runs.mean_field_risk[-1] < runs.mean_field_risk[0]
    assert runs.mean_field_risk[0] == pytest.approx(9 - 18 * 8 / 120 + 24 * 3 / 120, rel=1e-12)  # exact L(ν_0) (degree 8 in p)


def test_twins_and_refusals():
    problem = circle_problem(8)
    runs = coupled_runs(problem, [16], [0, 1], np.linspace(0, 0.04, 3), dt=5e-3, nodes=64)
    assert np.all(runs.coupling_mean[..., 0] < 1e-12)  # each twin starts on its neuron
    assert np.all(np.diff(runs.network_risk, axis=-1) <= 1e-12)  # gradient flow: L_m decreases
    with pytest.raises(ValueError, match="data.dimension = 3 must be an integer >= 4"):
        CircleSphereProblem({"name": "he", "degree": 4}, "he4", 3)
    with pytest.raises(ValueError, match="must be a polynomial"):
        CircleSphereProblem({"name": "he", "degree": 4}, "relu", 8)
    with pytest.raises(ValueError, match="must be a polynomial"):
        CircleSphereProblem({"name": "relu"}, "he4", 8)
    from reduced_pde.models.single_index import SingleIndexProblem
    sphere = SingleIndexProblem({"name": "he", "degree": 4}, "he4", 8, sphere=True, train_second_layer=False)
    with pytest.raises(ValueError, match="chaos.angle_nodes = 5 is used only by data.model = 'circle_sphere'"):
        predict_fluctuations(sphere, [0.0], atoms=2, s_nodes=4, q_nodes=4, angle_nodes=5)


def test_cli_chaos_runs_the_circle_configuration(tmp_path):
    # the committed configuration, shrunk by command-line overrides (the model comes from data.model; its adapted
    # atom rule takes atoms in panels of 15)
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "configs" / "chaos_sphere_circle.toml"
    output = tmp_path / "out.h5"
    small = ["output.t_final=0.02", "output.n_outputs=2", "chaos.nodes=32", "chaos.atoms=15", "chaos.s_nodes=8",
             "chaos.angle_nodes=6", "chaos.predict_until=0.01", "data.dimension=8"]
    arguments = ["chaos", str(config), "-o", str(output), "--widths", "4", "8", "--seeds", "0", "1", "--quiet"]
    assert main(arguments + [x for item in small for x in ("--set", item)]) == 0
    with h5py.File(output, "r") as file:
        assert file.attrs["config.data.model"] == "circle_sphere"
        assert file.attrs["derived.geometry"] == "circle"
        assert file["function_gap_squared"].shape == (2, 2, 3)
        assert file["prediction/function_gap"][0] == pytest.approx(24 * (1 - 3 / 80), rel=1e-3)
        assert np.isnan(file["prediction/function_gap"][2])  # after chaos.predict_until
        assert file["prediction"].attrs["angle_nodes"] == 6
    assert main(["chaos", str(config), "-o", str(output), "--set", "data.dimension=3"]) == 2


def test_finite_volumes_converge_to_the_characteristics():
    # The two mean-field solvers are independent discretisations of dp/dt = −2ξ(1 − p²)ψ'(p; ν_t): the
    # characteristics (512 quantile nodes, RK4 dt = 2e-3: changes from 2048 nodes < 1e-8, from dt = 5e-3
    # 5e-5, both far below the finite-volume errors 1e-4 ... 3e-4 at 400 cells) and finite volumes on
    # the model's clustered default axis (second order).  Richardson: with error ≈ C h², (4 R_400 − R_200)/3
    # removes the leading term, so it must be closer to the characteristics than R_400 is (by > 2x;
    # measured 4.7x at t = 0.4) and R_400 must be within 4e-4 relative (measured 1.6e-4).
    from reduced_pde.running.config import parse_config
    from reduced_pde.running.pipeline import run_pde

    problem = circle_problem(16)
    times = np.array([0.0, 0.1, 0.2, 0.4])
    reference = coupled_runs(problem, [1], [0], times, dt=2e-3, nodes=512).mean_field_risk
    fv = {}
    for cells in (200, 400):
        raw = {"data": {"model": "circle_sphere", "dimension": 16}, "grid": {"cells": cells},
               "output": {"t_final": 0.4, "n_outputs": 4, "spacing": "linear"}}
        trajectory = run_pde(parse_config(raw), progress=False)
        fv[cells] = np.interp(times, trajectory.time, trajectory.risk)
    error = np.abs(fv[400] - reference)[1:]
    extrapolated = np.abs((4 * fv[400] - fv[200]) / 3 - reference)[1:]
    assert np.all(extrapolated < 0.5 * error), (fv, reference)
    assert np.all(error < 4e-4 * reference[1:])


@pytest.mark.slow
def test_circle_prediction_matches_coupled_runs():
    """m E[E_t²] and m (E L_m − L) (twin control variate) against e(t), c(t) for the Circle at d = 16 through
    the escape from the initial plateau and past it (L(ν_t) = 8.75 → 1.37 at t = 0.2 → 0.67 at t = 0.4), the
    window where the coupled runs at m <= 256 are within the budget (README "The Circle", docs §6).  Allowed
    error, the sum of: 3 standard errors of the seed mean at m = 256 (64 networks); the O(1/m) correction
    |X_64 − X_256|/3 (X_m = X + b/m); the resolution of the prediction: the changes from the coarse rule
    (30 adapted atoms (docs §3.1) × 64 p-nodes × 8 angles × 4 complement nodes) to the fine one (60 × 128 ×
    8 × 4), to 16 angles and to 8 complement nodes, each taken as the error of the finer rule (the p-rule is the
    one that matters later: 64 → 128 p-nodes moves c(0.8) from 12.3 to 4.8).  Prints the table it checks
    (``-s``).  ~15 minutes on 2 cores shared with other jobs."""
    problem = circle_problem(16)
    times = np.array([0.0, 0.05, 0.1, 0.2, 0.4])
    rules = {"coarse": (30, 64, 8, 4), "fine": (60, 128, 8, 4), "angles": (30, 64, 16, 4),
             "complement": (30, 64, 8, 8)}
    predictions = {name: predict_fluctuations(problem, times, atoms=a, s_nodes=s, angle_nodes=n, q_nodes=q, dt=1e-2,
                                              atom_rule="adapted", monitor_nodes=1024)
                   for name, (a, s, n, q) in rules.items()}
    runs = {m: coupled_runs(problem, [m], list(range(seeds)), times, dt=1e-2, nodes=1024)
            for m, seeds in ((64, 256), (256, 64))}
    for name, attribute in (("function_gap_squared", "function_gap"), ("risk_excess_controlled", "risk_excess")):
        fine, coarse = predictions["fine"], predictions["coarse"]
        theory = getattr(fine, attribute)
        resolution = sum(np.abs(getattr(predictions[k], attribute) - getattr(coarse, attribute))
                         for k in ("fine", "angles", "complement"))
        means = {m: tuple(x[0] for x in run.scaled_mean(name)) for m, run in runs.items()}
        bias = np.abs(means[64][0] - means[256][0]) / 3
        error = np.abs(means[256][0] - theory)
        print(name, {"t": times, "theory": theory, "resolution": resolution, "m=64": means[64], "m=256": means[256]})
        assert np.all(error <= 3 * means[256][1] + bias + resolution + 1e-9), (name, means, theory, resolution)
