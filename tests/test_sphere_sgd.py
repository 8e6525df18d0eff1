"""Noisy projected SGD on the sphere (single-index, fixed second layer) and its validation against
the sphere Fokker–Planck equation and its Gibbs fixed point (issue 4, item 4).

Problem: σ = φ = He_3, d = 16, a = 1, β = 5 (fixed point: mean s 0.620, std 0.345, two modes
near s ≈ 0 and s ≈ 0.9; the FP relaxes from the uniform law in t ≈ 4).  Tolerances are derived
from the data: samples (seed, output time) spaced by Δt = 1 (>= the relaxation time of a neuron's
s, ≈ 0.5) are treated as independent, their spread gives the Monte-Carlo error (it contains the
collective fluctuations, ≈ 1.5× the iid value 0.35/√N); the O(ε) minibatch-noise bias (a relative
temperature increase δ = εβ E[(y − f)² σ'(z)² |P⊥x|²] / (B(d − 1)), measured) is added through the
fixed point at β/(1 + δ)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from reduced_pde.free_energy import gibbs_fixed_point
from solvers.controller import map_in_processes
from reduced_pde.activations import PolynomialActivation
from reduced_pde.models.single_index import SingleIndexNetwork, SingleIndexProblem
from solvers.fokker_planck import FokkerPlanckSolver1D
from solvers.grid import UniformGrid1D
from solvers.sgd import SGDSimulation, run_sgd

D, BETA = 16, 5.0


def he3_sphere(d: int = D, second_layer: float = 1.0) -> SingleIndexProblem:
    return SingleIndexProblem({"name": "he", "degree": 3}, PolynomialActivation.hermite(3), d,
                              train_second_layer=False, sphere=True, second_layer=second_layer)


def sphere_sgd(problem: SingleIndexProblem, n_neurons: int, step_size: float, batch_size: int = 1,
               **kwargs) -> SGDSimulation:
    return SGDSimulation(SingleIndexNetwork(problem), problem, n_neurons=n_neurons, step_size=step_size,
                         batch_size=batch_size, **kwargs)


# ---- the simulation itself ------------------------------------------------------------------------
def test_sphere_sgd_unit_norm_resume_and_errors() -> None:
    problem = he3_sphere()
    sim = sphere_sgd(problem, 50, 1e-3, batch_size=4, seed=3, beta=BETA)
    sim.advance(0.05)
    state = sim.state()
    sim.advance(0.1)
    other = sphere_sgd(problem, 50, 1e-3, batch_size=4, seed=3, beta=BETA)
    other.set_state(state)
    other.advance(0.1)
    assert np.array_equal(sim.weights, other.weights)
    assert np.allclose(np.linalg.norm(sim.weights, axis=1), 1.0, atol=1e-14)
    obs = sim.observables()
    assert obs["points"].shape == (50, 1) and "mean_r" not in obs and obs["time"] == pytest.approx(0.1)
    assert obs["mean_s"] == obs["points"].mean() and np.array_equal(obs["points"][:, 0], sim.weights[:, 0])
    assert "network_risk" not in obs  # O(N²): recorded on request only for the index models
    with pytest.raises(ValueError, match=r"weight_decay = 0.1 must be 0 on the sphere"):
        sphere_sgd(problem, 10, 1e-3, beta=BETA, weight_decay=0.1)
    with pytest.raises(ValueError, match=r"noise.beta < inf"):  # noise in the (s, r) ball is not reduced
        sphere_sgd(SingleIndexProblem({"name": "he", "degree": 2}, "he2", 8, train_second_layer=False), 10, 1e-3,
                   beta=BETA)
    with pytest.raises(ValueError, match=r"sgd.step_size = -1"):
        sphere_sgd(problem, 10, -1)
    with pytest.raises(ValueError, match=r"state weights have shape"):
        sim.set_state({**state, "weights": np.zeros((3, D))})


def test_sphere_sgd_noise_is_brownian_motion_on_the_sphere() -> None:
    """a = 0 switches the gradient off: s performs Brownian motion on S^{d−1} with generator
    2ξβ⁻¹Δ, so from s = 0.8 (all neurons), E s(t) = 0.8 e^{−κ(d−1)t} and E s²(t) = 1/d +
    (0.64 − 1/d) e^{−2κdt}, κ = 2/β (a wrong noise amplitude or missing renormalisation fails).
    Error: O(ε) from the discretisation plus 4 standard errors over N neurons."""
    d, beta, n, eps, horizon = 12, 4.0, 4000, 1e-3, 0.15
    sim = sphere_sgd(he3_sphere(d, second_layer=0.0), n, eps, seed=1, beta=beta)
    w = np.zeros((n, d))
    w[:, 0], w[:, 1] = 0.8, 0.6
    sim.set_state({**sim.state(), "weights": w})
    sim.advance(horizon)
    s = sim.invariants()[:, 0]
    kappa = 2.0 / beta
    mean_exact = 0.8 * math.exp(-kappa * (d - 1) * horizon)
    second_exact = 1 / d + (0.64 - 1 / d) * math.exp(-2 * kappa * d * horizon)
    assert abs(s.mean() - mean_exact) < 4 * s.std() / math.sqrt(n) + 0.01, (s.mean(), mean_exact)
    assert abs((s**2).mean() - second_exact) < 4 * (s**2).std() / math.sqrt(n) + 0.01


# ---- validation against the Fokker–Planck equation and the Gibbs fixed point ------------------------
def minibatch_temperature_increase(sim: SGDSimulation, samples: int = 20000) -> float:
    """δ = εξβ E[(y − f)² a² σ'(⟨w_i,x⟩)² |P⊥_i x|²] / (B (d − 1)) averaged over neurons, at the current
    weights: the ratio of the minibatch-gradient variance to the Langevin variance 4s/β per step."""
    x, y = sim.network.sample(samples, np.random.default_rng(7))
    a = sim.second_layer
    z = x @ sim.weights.T
    f = sim.activation(z) @ a / sim.n_neurons
    perp = (x * x).sum(axis=1)[:, None] - z**2
    c = float(np.mean(((y - f) ** 2)[:, None] * (a * sim.activation.derivative(z)) ** 2 * perp))
    return sim.step_size * sim.beta * c / (sim.batch_size * (sim.dimension - 1))


def he_sphere(k: int, d: int) -> SingleIndexProblem:
    return SingleIndexProblem({"name": "he", "degree": k}, PolynomialActivation.hermite(k), d,
                              train_second_layer=False, sphere=True)


def _seed_run(job: tuple) -> tuple[np.ndarray, float]:
    seed, k, d, beta, n, eps, batch, times = job
    problem = he_sphere(k, d)
    traj = run_sgd(SingleIndexNetwork(problem), problem, times, n_neurons=n, step_size=eps, batch_size=batch,
                   seed=seed, beta=beta)
    return traj.fields["points"][:, :, 0], float(traj.diagnostics["steps_per_second"])


def validate(k: int, d: int, beta: float, seeds: list[int], n: int, eps: float, batch: int,
             sample_times: np.ndarray, processes: int = 1) -> dict[str, float]:
    """Observable g(s) = s (odd k) or s² (even k: the law is symmetric, E s = 0)."""
    def g(x):
        return x if k % 2 else x * x

    transient = np.array([0.25, 0.5, 1.0, 2.0])
    times = np.concatenate([transient, sample_times])
    jobs = [(s, k, d, beta, n, eps, batch, list(times)) for s in seeds]
    runs = map_in_processes(_seed_run, jobs, processes)
    s_all = np.stack([r[0] for r in runs])                   # (seeds, T, N)
    means = g(s_all).mean(axis=2)                            # (seeds, T)
    nt = transient.size
    samples = s_all[:, nt:].reshape(-1, n)                    # independent (seed, time) samples
    pooled = samples.ravel()

    grid = UniformGrid1D(-1.0, 1.0, 800)
    problem = he_sphere(k, d)
    fixed = gibbs_fixed_point(problem, grid.centers, grid.spacing, beta, 0.0)
    mass = fixed.density * grid.spacing
    # O(ε) bias: measured minibatch temperature increase, through the fixed point at β/(1 + δ)
    probe = sphere_sgd(problem, n, eps, batch, seed=seeds[0], beta=beta)
    probe.set_state({**probe.state(), "weights": np.column_stack(
        [samples[-1], np.sqrt(1 - samples[-1] ** 2), np.zeros((n, d - 2))])})
    delta = minibatch_temperature_increase(probe)
    hot = gibbs_fixed_point(problem, grid.centers, grid.spacing, beta / (1 + delta), 0.0)

    # mean of g(s)
    sample_means = g(samples).mean(axis=1)
    se_mean = sample_means.std(ddof=1) / math.sqrt(len(sample_means))
    mean_fixed = float(g(grid.centers) @ mass)
    bias_mean = abs(float(g(grid.centers) @ hot.density) * grid.spacing - mean_fixed)
    # KS of the pooled law: effective size from the inflation of the sample-mean variance
    inflation = max(1.0, sample_means.var(ddof=1) / (g(pooled).var() / n))
    cdf = np.concatenate([[0.0], np.cumsum(fixed.density * grid.spacing)])
    ks = stats.kstest(pooled, lambda x: np.interp(x, grid.edges, cdf)).statistic
    ks_level = 1.95 * math.sqrt(inflation / pooled.size)      # 99.9% iid level, inflated
    ks_bias = float(np.max(np.abs(np.cumsum(hot.density - fixed.density) * grid.spacing)))
    # W1 (for the report)
    w1 = stats.wasserstein_distance(pooled, grid.centers, v_weights=fixed.density)
    # risk of the pooled law vs R(p*): delta method through ψ*, plus the quadratic remainder
    kernel = problem.interaction_low_rank(grid.centers)
    psi_star = problem.reduced_potential(grid.centers) + kernel.apply(fixed.density * grid.spacing)
    psi_samples = np.interp(samples, grid.centers, psi_star).mean(axis=1)
    se_risk = 2 * psi_samples.std(ddof=1) / math.sqrt(len(psi_samples))
    pooled_risk = problem.risk(pooled, np.full(pooled.size, 1.0 / pooled.size))
    # transient: FP mean s(t) from the uniform law vs SGD mean over seeds
    solver = FokkerPlanckSolver1D(problem, grid, beta, dt=1e-3)
    fp_means = []
    for t in transient:
        solver.advance(t)
        fp_means.append(float(g(grid.centers) @ solver.density) * grid.spacing)
    transient_gap = np.abs(means[:, :nt].mean(axis=0) - fp_means)
    transient_se = math.sqrt(inflation) * g(s_all[:, :nt]).std(axis=(0, 2)) / math.sqrt(n * len(seeds))
    return {"mean_sgd": float(g(pooled).mean()), "mean_fixed": mean_fixed, "se_mean": se_mean,
            "bias_mean": bias_mean, "delta": delta, "inflation": inflation,
            "std_sgd": float(pooled.std()), "std_fixed": float(math.sqrt(
                grid.centers**2 @ fixed.density * grid.spacing - fixed.mean_r() ** 2)),
            "ks": ks, "ks_level": ks_level, "ks_bias": ks_bias, "w1": w1,
            "risk_sgd": pooled_risk, "risk_fixed": fixed.risk, "se_risk": se_risk,
            "transient_gap": float(np.max(transient_gap / (4 * transient_se + 0.005))),
            "transient_sgd": means[:, :nt].mean(axis=0).tolist(), "transient_fp": fp_means,
            "steps_per_second": float(np.mean([r[1] for r in runs]))}


def check(result: dict[str, float]) -> None:
    assert abs(result["mean_sgd"] - result["mean_fixed"]) <= 4 * result["se_mean"] + result["bias_mean"], result
    assert result["ks"] <= result["ks_level"] + result["ks_bias"], result
    assert abs(result["risk_sgd"] - result["risk_fixed"]) <= 4 * result["se_risk"] + 1e-3, result
    assert result["transient_gap"] <= 1.0, result
    # the check must be sharp: the O(ε) bias and the Monte-Carlo error small against the effect of
    # a wrong temperature (β/2 or 2β) or Jacobian exponent (He_3, d = 16: mean s 0.36 / 0.83)
    assert result["se_mean"] < 0.02 and result["bias_mean"] < 0.02, result


def test_sphere_sgd_stationary_law_and_transient_match_fokker_planck() -> None:
    """Quick version (~10 s): σ = φ = He_2, d = 10, β = 5 (symmetric two-mode law, E s² = 0.349;
    observable s²), 2 seeds, N = 400, ε = 1e-3, B = 32 (δ ≈ 1%), samples at t = 5..12."""
    result = validate(2, 10, 5.0, [0, 1], 400, 1e-3, 32, np.arange(5.0, 12.01, 1.0))
    print(result)
    check(result)


@pytest.mark.slow
def test_sphere_sgd_stationary_law_slow() -> None:
    """σ = φ = He_3, d = 16, β = 5 (mean s 0.620): 4 seeds in 2 processes, N = 500, ε = 2e-4,
    B = 128 (δ ≈ 1%; at ε = 1e-3, B = 32 it is 23%: He_3 gradients are heavy-tailed), samples at
    t = 5..20 (~3 min)."""
    result = validate(3, 16, 5.0, [0, 1, 2, 3], 500, 2e-4, 128, np.arange(5.0, 20.01, 1.0), processes=2)
    print(result)
    check(result)
