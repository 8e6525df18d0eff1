"""Full-dimensional SGD (solvers.sgd) on the MMN18 network: time convention, exact risk,
reproducibility, physics at t = 0."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reduced_pde import IsotropicGaussianMixture, IsotropicMixtureRadialProblem
from reduced_pde.models.isotropic_mixture import IsotropicMixtureNetwork
from reduced_pde.schedules import LearningRateSchedule
from solvers.common import SolverError
from solvers.sgd import SGDSimulation, run_sgd_seeds, seed_statistics

BACKENDS = ["numba", "numpy"]


def mmn18_problem(d: float = 6, delta: float = 0.5, kappa: float = 1.0) -> IsotropicMixtureRadialProblem:
    return IsotropicMixtureRadialProblem(IsotropicGaussianMixture(delta, d), "mmn18", kappa=kappa)


def mmn18_sgd(problem: IsotropicMixtureRadialProblem, n_neurons: int, step_size: float, batch_size: int = 1,
              schedule: LearningRateSchedule | None = None, **kwargs) -> SGDSimulation:
    return SGDSimulation(IsotropicMixtureNetwork(problem), problem, n_neurons=n_neurons, step_size=step_size,
                         batch_size=batch_size, schedule=schedule, **kwargs)


# ------------------------------------------------------------------------------------------------
# time convention: E[ΔW] = −N ε ξ ∇_W R_N(W)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_mean_increment_is_minus_N_eps_times_exact_risk_gradient(backend: str) -> None:
    """R_N = E(y − f)², f = (1/N)Σσ(⟨w_i,x⟩) ⇒ ∇_{w_i} R_N = −(2/N) E[(y − f) σ'(⟨w_i,x⟩) x], while the
    SGD step is Δw_i = 2ε ξ · (batch mean of (y − f) σ'(⟨w_i,x⟩) x).  Hence E[ΔW]/(εξ) = −N ∇_W R_N.
    One step with a batch of B fresh samples is exactly the Monte-Carlo mean of the per-sample
    increment, so it must match −N ∇R_N (central finite differences of the exact network_risk)
    within a few Monte-Carlo standard errors std/√B, std measured on independent samples."""
    n, d, batch, eps, xi0 = 5, 6, 400_000, 1e-6, 1.7
    problem = mmn18_problem(d=d, kappa=1.0)
    sim = mmn18_sgd(problem, n, eps, batch, LearningRateSchedule(xi0=xi0), seed=3, backend=backend)
    w0 = sim.weights
    sim.step(1)
    increment = (sim.weights - w0) / (eps * xi0)

    h = 1e-5
    gradient = np.zeros_like(w0)
    for i in range(n):
        for j in range(d):
            wp, wm = w0.copy(), w0.copy()
            wp[i, j] += h
            wm[i, j] -= h
            gradient[i, j] = (problem.network_risk(wp)[0] - problem.network_risk(wm)[0]) / (2 * h)
    # per-sample increment 2(y − f)σ'(z_i)x, its std on independent samples
    x, y = problem.data.sample(100_000, np.random.default_rng(99))
    z = x @ w0.T
    a = 2.0 * (y - problem.activation(z).mean(axis=1))[:, None] * problem.activation.derivative(z)
    per_sample_std = np.sqrt(np.einsum("bi,bj->ij", a**2, x**2) / x.shape[0])
    stderr = per_sample_std / math.sqrt(batch)
    # FD error ~h²|R'''| ≲ 1e-9 and rounding (|W|·1e-16/ε ~ 1e-10) are far below stderr (~1e-2)
    assert np.all(np.abs(increment + n * gradient) <= 5.0 * stderr + 1e-7), (increment, -n * gradient)
    # power: the largest entries exceed 20 standard errors, so a wrong factor (2, 1/N, ξ) fails;
    # a 10% error in the step fails too (checked by mutation)
    assert np.max(np.abs(n * gradient) / stderr) > 20.0


# ------------------------------------------------------------------------------------------------
def test_exact_network_risk_matches_test_set_estimate() -> None:
    """problem.network_risk(W) (Mehler series at the actual cosines) against the empirical mean of
    (y − f(x))² on 400k fresh samples, for weights that have trained a little (correlated
    directions); tolerance 4 standard errors of the empirical mean (+ the truncation bound)."""
    problem = mmn18_problem(d=10, kappa=0.8)
    sim = mmn18_sgd(problem, 50, 1e-2, 10, seed=5)
    sim.advance(0.3)
    obs = sim.observables()
    w = sim.weights
    rng = np.random.default_rng(7)
    losses = []
    for _ in range(4):
        x, y = problem.data.sample(100_000, rng)
        losses.append((y - problem.activation(x @ w.T).mean(axis=1)) ** 2)
    losses = np.concatenate(losses)
    stderr = losses.std() / math.sqrt(losses.size)
    assert abs(obs["network_risk"] - losses.mean()) <= 4.0 * stderr + obs["risk_bound"], \
        (obs["network_risk"], losses.mean(), stderr)
    assert obs["risk_bound"] < 1e-8


# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [1, 7])
def test_reproducible_by_seed_and_independent_of_blocking(backend: str, batch: int) -> None:
    problem = mmn18_problem(d=12, kappa=0.5)
    schedule = LearningRateSchedule(xi0=1.0, alpha=0.5, t0=0.1)
    a = mmn18_sgd(problem, 30, 1e-3, batch, schedule, seed=11, backend=backend)
    b = mmn18_sgd(problem, 30, 1e-3, batch, schedule, seed=11, backend=backend)
    c = mmn18_sgd(problem, 30, 1e-3, batch, schedule, seed=12, backend=backend)
    assert np.array_equal(a.weights, b.weights)
    assert not np.allclose(a.weights, c.weights)  # seeds give different initial weights
    b.block_steps = 7  # different block boundaries and advance() chunks
    a.advance(0.25)
    for t in (0.013, 0.1, 0.2, 0.25):
        b.advance(t)
    c.advance(0.25)
    assert a.steps == b.steps == 250 and a.time == pytest.approx(0.25)
    assert np.array_equal(a.weights, b.weights)
    assert not np.allclose(a.weights, c.weights)


@pytest.mark.parametrize("backend", BACKENDS)
def test_checkpoint_resume_is_bitwise_identical(backend: str) -> None:
    problem = mmn18_problem(d=12, kappa=0.5)
    full = mmn18_sgd(problem, 30, 1e-3, 4, seed=2, backend=backend)
    full.advance(0.3)
    first = mmn18_sgd(problem, 30, 1e-3, 4, seed=2, backend=backend)
    first.advance(0.12)
    checkpoint = first.state()
    first.advance(0.2)  # keep going: the checkpoint must be a snapshot
    resumed = mmn18_sgd(problem, 30, 1e-3, 4, seed=999, backend=backend)  # seed irrelevant after set_state
    resumed.set_state(checkpoint)
    assert resumed.time == pytest.approx(0.12)
    resumed.advance(0.3)
    assert np.array_equal(resumed.weights, full.weights)


def test_backends_agree() -> None:
    """Same data stream, same update; they differ only by floating-point summation order."""
    problem = mmn18_problem(d=12, kappa=0.5)
    a = mmn18_sgd(problem, 30, 1e-3, 5, seed=4, backend="numba")
    b = mmn18_sgd(problem, 30, 1e-3, 5, seed=4, backend="numpy")
    a.advance(0.2)
    b.advance(0.2)
    np.testing.assert_allclose(a.weights, b.weights, rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"n_neurons": -3}, "sgd.n_neurons = -3"),
    ({"n_neurons": 0}, "sgd.n_neurons = 0"),
    ({"step_size": 0.0}, "sgd.step_size = 0.0"),
    ({"step_size": -1e-3}, "sgd.step_size"),
    ({"step_size": math.nan}, "sgd.step_size"),
    ({"batch_size": 0}, "sgd.batch_size = 0"),
    ({"backend": "gpu"}, "sgd.backend"),
])
def test_bad_input_is_rejected_with_the_field_name(kwargs, match) -> None:
    args = {"n_neurons": 10, "step_size": 1e-3, **kwargs}
    with pytest.raises(ValueError, match=match):
        problem = mmn18_problem()
        SGDSimulation(IsotropicMixtureNetwork(problem), problem, **args)


def test_infinite_dimension_is_rejected() -> None:
    with pytest.raises(ValueError, match="data.dimension = inf"):
        IsotropicMixtureNetwork(mmn18_problem(d=math.inf))


def test_divergence_names_time_and_step() -> None:
    # a huge step on a steep activation (slope 1e50, the largest parameter allowed) blows the weights up to inf within a few steps
    problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, 6),
                                            {"name": "piecewise_linear", "slope": 1e50}, kappa=1.0)
    sim = mmn18_sgd(problem, 4, 1e150, 1, seed=0)
    with pytest.raises(SolverError, match=r"step \d+ \(t = .*\), neuron \d"):
        sim.advance(1e160)


def test_advance_backwards_is_rejected() -> None:
    sim = mmn18_sgd(mmn18_problem(), 5, 1e-2)
    sim.advance(0.1)
    with pytest.raises(ValueError, match="before the current time"):
        sim.advance(0.05)


# ------------------------------------------------------------------------------------------------
def _reduced_velocity(problem: IsotropicMixtureRadialProblem, r: np.ndarray) -> np.ndarray:
    """−2 ∂_r ψ(r_i; p̂) with p̂ the empirical law of r (ξ = 1)."""
    masses = np.full(r.size, 1.0 / r.size)
    kernel = problem.interaction_low_rank(r)
    gradients = problem.interaction_features_gradient(r)
    return -2.0 * (problem.reduced_potential_gradient(r)
                   + (kernel.weights * (kernel.features @ masses)) @ gradients)


def test_mean_radius_moves_with_the_reduced_velocity_at_t0() -> None:
    """d=20, N=200, Δ=0.5, κ=0.4, MMN18 σ.  Over a short time τ, mean_r(τ) − mean_r(0) ≈ τ·v̄ with
    v̄ = mean_i(−2ψ'(r_i; p̂_0)) + the self-interaction correction of the N-network (the i = j term
    uses U at cosine 1, not the c-average: −(2/N)[½ d/dr Eσ² − ∂_1u(r, r)]).
    Tolerance: 4 Monte-Carlo standard errors (per-sample std of the mean-r increment / √(τB/ε)),
    + curvature |dv̄/dt|·τ/2 (from an Euler step of the reduced ODE), + the Itô drift of the noise
    2εE[a²|x⊥|²]/(B r) (< 0.01 here), + 0.05 for the random (non-averaged) cosines between pairs
    (relative size ~1/√(N d) ≈ 0.7% of v̄ ≈ 10.8)."""
    problem = mmn18_problem(d=20, delta=0.5, kappa=0.4)
    eps, batch, tau, n = 2e-5, 500, 2e-3, 200
    sim = mmn18_sgd(problem, n, eps, batch, seed=1)
    r0 = sim.invariants()
    w0 = sim.weights
    v0 = _reduced_velocity(problem, r0)
    h = 1e-6
    d_second = (problem._second_moment_sum(r0 + h) - problem._second_moment_sum(r0 - h)) / (2 * h)
    kernel = problem.interaction_low_rank(r0)
    d1u = (kernel.weights[:, None] * kernel.features * problem.interaction_features_gradient(r0)).sum(0)
    predicted = float(np.mean(v0 - 2.0 / n * (0.5 * d_second - d1u)))
    curvature = abs(_reduced_velocity(problem, r0 + 1e-3 * v0).mean() - v0.mean()) / 1e-3 * tau / 2

    x, y = problem.data.sample(50_000, np.random.default_rng(17))
    z = x @ w0.T
    a = (y - problem.activation(z).mean(axis=1))[:, None] * problem.activation.derivative(z)
    per_sample = 2.0 * (a * z / r0).mean(axis=1)  # increment of mean_r per sample, per unit ε
    stderr = per_sample.std() / math.sqrt(tau / eps * batch)
    ito = 2 * eps * float(np.mean((a**2 * ((x**2).sum(1)[:, None] - (z / r0) ** 2)).mean(0) / r0)) / batch

    sim.advance(tau)
    measured = (sim.invariants().mean() - r0.mean()) / tau
    tolerance = 4 * stderr + curvature + ito + 0.05
    assert tolerance < 0.05 * abs(predicted)  # the test resolves the velocity to a few per cent
    assert abs(measured - predicted) <= tolerance, (measured, predicted, tolerance)


def test_reduced_risk_decreases_and_run_sgd_records_everything() -> None:
    """Noiseless limit: R(ρ_t) is non-increasing.  At ε = 1e-3, B = 10 the SGD noise on the reduced
    risk is far below the decrease over [0, 1] (5 → ~0.02 at d = 20), so every recorded value
    must be below the previous one; and the final value well below the initial one."""
    problem = mmn18_problem(d=20, delta=0.5, kappa=0.4)
    times = [0.0, 0.1, 0.25, 0.5, 1.0]
    trajectories = run_sgd_seeds(IsotropicMixtureNetwork(problem), problem, times, seeds=[0, 1], n_neurons=200,
                                 step_size=1e-3, batch_size=10)
    for traj in trajectories:
        reduced = traj.risk
        assert np.all(np.diff(reduced) < 0), reduced
        assert reduced[-1] < 0.05 * reduced[0]
        assert traj.kind == "sgd" and traj.fields["points"].shape == (5, 200, 1)
        assert traj.coordinates == ("r",) and traj.fields["risk_bound"].shape == (5,)
        assert traj.diagnostics["steps"] == 1000 and traj.diagnostics["steps_per_second"] > 0
        assert traj.config["sgd.batch_size"] == 10 and traj.config["data.dimension"] == 20
        assert traj.config["schedule.xi0"] == 1.0
        np.testing.assert_allclose(traj.time, times)
        np.testing.assert_allclose(traj.mean_of("r"), traj.fields["points"][:, :, 0].mean(axis=1))
        # the N = 200 network risk exceeds the N = ∞ risk of its law by O(1/N) (diagonal terms)
        assert np.all(traj.network_risk[1:] > reduced[1:])
    t, mean, spread = seed_statistics(trajectories, "risk")
    assert mean.shape == spread.shape == (5,) and np.all(spread > 0)


def test_parallel_seeds_equal_sequential_seeds() -> None:
    problem = mmn18_problem(d=10, kappa=0.5)
    kwargs = dict(seeds=[3, 4], n_neurons=20, step_size=1e-2, batch_size=2)
    network = IsotropicMixtureNetwork(problem)
    sequential = run_sgd_seeds(network, problem, [0.0, 0.2], **kwargs)
    parallel = run_sgd_seeds(network, problem, [0.0, 0.2], processes=2, **kwargs)
    for a, b in zip(sequential, parallel):
        assert np.array_equal(a.fields["points"], b.fields["points"])
    assert not np.array_equal(sequential[0].fields["points"], sequential[1].fields["points"])
