"""Noisy SGD (weight decay λ, inverse temperature β) against the design-note convention and against
the reduced Fokker–Planck equation / Gibbs fixed point on MMN18 at finite d."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reduced_pde import IsotropicGaussianMixture, IsotropicMixtureRadialProblem, LearningRateSchedule
from reduced_pde.free_energy import gibbs_fixed_point
from reduced_pde.models.isotropic_mixture import IsotropicMixtureNetwork
from solvers.fokker_planck import FokkerPlanckSolver1D
from solvers.grid import UniformGrid1D, ks_distance
from solvers.sgd import SGDSimulation

BACKENDS = ["numba", "numpy"]


def mmn18(d: int, kappa: float = 1.0) -> IsotropicMixtureRadialProblem:
    return IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, d), "mmn18", kappa=kappa)


def mmn18_sgd(problem: IsotropicMixtureRadialProblem, **kwargs) -> SGDSimulation:
    return SGDSimulation(IsotropicMixtureNetwork(problem), problem, **kwargs)


# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_noise_amplitude_and_weight_decay_of_one_step(backend: str) -> None:
    """Same seed ⇒ same data stream; so after one step
    W(β, λ=0) − W(∞, 0) = sqrt(4 s/β) G exactly (G iid N(0,1): its sample variance over N·d = 20000
    entries is 1 ± 4·sqrt(2/20000) = 1 ± 0.04; sqrt(2s/β) would give 0.5), and
    W(∞, λ) − W(∞, 0) = −2 s λ W_0 up to round-off (s = εξ)."""
    n, d, eps, xi0, beta, lam = 200, 100, 1e-3, 1.3, 7.0, 0.4
    problem = mmn18(d)
    schedule = LearningRateSchedule(xi0=xi0)
    sims = {key: mmn18_sgd(problem, n_neurons=n, step_size=eps, batch_size=3, schedule=schedule, seed=5,
                           backend=backend, beta=b, weight_decay=l)
            for key, (b, l) in {"plain": (math.inf, 0.0), "noise": (beta, 0.0),
                                "decay": (math.inf, lam)}.items()}
    w0 = sims["plain"].weights
    for sim in sims.values():
        sim.step(1)
    s = eps * xi0
    g = (sims["noise"].weights - sims["plain"].weights) / math.sqrt(4 * s / beta)
    assert abs(g.var() - 1.0) < 4 * math.sqrt(2.0 / g.size), g.var()
    assert abs(g.mean()) < 4 / math.sqrt(g.size)
    decay = sims["decay"].weights - sims["plain"].weights
    assert np.allclose(decay, -2 * s * lam * w0, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_noisy_checkpoint_resume_and_blocking_are_bitwise(backend: str) -> None:
    problem = mmn18(12, kappa=0.5)
    kwargs = dict(seed=2, backend=backend, beta=20.0, weight_decay=0.3)
    full = mmn18_sgd(problem, n_neurons=30, step_size=1e-3, batch_size=4, **kwargs)
    full.advance(0.3)
    first = mmn18_sgd(problem, n_neurons=30, step_size=1e-3, batch_size=4, **kwargs)
    first.block_steps = 7
    first.advance(0.12)
    state = first.state()
    first.advance(0.2)
    resumed = mmn18_sgd(problem, n_neurons=30, step_size=1e-3, batch_size=4, **{**kwargs, "seed": 99})
    resumed.set_state(state)
    resumed.advance(0.3)
    assert np.array_equal(resumed.weights, full.weights)
    wrong = mmn18_sgd(problem, n_neurons=30, step_size=1e-3, batch_size=4, **{**kwargs, "beta": 10.0})
    with pytest.raises(ValueError, match="noise.beta"):
        wrong.set_state(state)


def test_noise_refused_at_infinite_dimension_and_bad_values() -> None:
    with pytest.raises(ValueError, match="noise.beta"):
        mmn18_sgd(mmn18(10), n_neurons=10, step_size=1e-3, beta=0.0)
    with pytest.raises(ValueError, match="noise.weight_decay"):
        mmn18_sgd(mmn18(10), n_neurons=10, step_size=1e-3, weight_decay=-1.0)


# ------------------------------------------------------------------------------------------------


def test_stationary_law_of_noisy_sgd_matches_gibbs_fixed_point() -> None:
    """MMN18, d = 12, β = 30, λ = 0.3 (not used to tune anything): N = 500 neurons after t = 5
    (relaxation time ~1/(4λξ) ≈ 0.8; the PDE is at the fixed point to 1e-4 in L1 by t = 5) against
    the fixed point p*.

    Tolerances.  The N radii are exchangeable and, by propagation of chaos, nearly independent with
    law p* + O(1/N): the Kolmogorov distance of N iid samples exceeds 1.95/√N = 0.087 with
    probability 1e-3, the sample mean deviates by more than 4 sd/√N with probability 6e-5.  The
    biases are far below: grid CDF error ~1e-4; SGD's own gradient noise adds a diffusion
    ~ s E[(y−f)²σ'²|x|²]/B relative to 2/β — ≈ 1% of the injected one at ε = 1e-3, B = 10.
    Power: the same SGD against p* at 2β or at λ/2 gives a mean shift of 5–10 standard errors."""
    d, beta, lam, n = 12, 30.0, 0.3, 500
    problem = mmn18(d)
    grid = UniformGrid1D(0.0, 5.0, 500)
    fixed = gibbs_fixed_point(problem, grid.centers, grid.spacing, beta, lam)
    sim = mmn18_sgd(problem, n_neurons=n, step_size=1e-3, batch_size=10, seed=3, beta=beta, weight_decay=lam)
    sim.advance(5.0)
    r = sim.invariants()
    ks = ks_distance(r, grid.edges, fixed.density)
    assert ks < 1.95 / math.sqrt(n), ks
    stderr = r.std() / math.sqrt(n)
    assert abs(r.mean() - fixed.mean_r()) < 4 * stderr, (r.mean(), fixed.mean_r(), stderr)
    # power against a wrong temperature / weight decay
    for wrong in (gibbs_fixed_point(problem, grid.centers, grid.spacing, 2 * beta, lam),
                  gibbs_fixed_point(problem, grid.centers, grid.spacing, beta, lam / 2)):
        assert abs(r.mean() - wrong.mean_r()) > 5 * stderr or \
            ks_distance(r, grid.edges, wrong.density) > 1.95 / math.sqrt(n)


def test_transient_mean_radius_follows_fokker_planck() -> None:
    """Same setting from w ~ N(0, I/d): mean |w| of noisy SGD (2 seeds × 400 neurons) follows the
    implicit SG solution at t = 0.25, 0.5, 1, 2 within 4 standard errors of the seed-pooled mean
    (sd/√800) plus the PDE's error (time step dt ~ cfl·h/|u|, measured < 1e-3 against a 4× finer
    run)."""
    d, beta, lam = 12, 30.0, 0.3
    problem = mmn18(d)
    grid = UniformGrid1D(0.0, 5.0, 400)
    solver = FokkerPlanckSolver1D(problem, grid, beta, lam, time_stepping="implicit", cfl=0.5)
    sims = [mmn18_sgd(problem, n_neurons=400, step_size=1e-3, batch_size=10, seed=s, beta=beta, weight_decay=lam)
            for s in (0, 1)]
    moved = 0.0
    for t in (0.25, 0.5, 1.0, 2.0):
        solver.advance(t)
        for sim in sims:
            sim.advance(t)
        r = np.concatenate([sim.invariants() for sim in sims])
        pde_mean = solver.observables()["mean_r"]
        stderr = r.std() / math.sqrt(r.size)
        assert abs(r.mean() - pde_mean) < 4 * stderr + 1e-3, (t, r.mean(), pde_mean, stderr)
        moved = max(moved, abs(pde_mean - 1.0))
    assert moved > 20 * stderr  # the law really moves: the comparison has power


@pytest.mark.slow
@pytest.mark.parametrize("d, beta, lam", [(40, 200.0, 0.05), (20, 100.0, 0.1)])
def test_stationary_law_and_risk_high_precision(d: int, beta: float, lam: float) -> None:
    """Held-out (d, β, λ), N = 1000, 3 seeds, t = 12: pooled KS < 1.95/√3000, mean and std of |w|
    within 4 standard errors, and the N = ∞ risk of each network's law of |w| R(p̂) against R(p*):
    E R(p̂) = R(p*) + (1/N)(∫u(r,r)p* − ∫∫u p*p*) (the diagonal of the U-statistic), its sd measured
    over seeds."""
    problem = mmn18(d)
    grid = UniformGrid1D(0.0, 5.0, 600)
    fixed = gibbs_fixed_point(problem, grid.centers, grid.spacing, beta, lam)
    n = 1000
    radii, risks = [], []
    for seed in range(3):
        sim = mmn18_sgd(problem, n_neurons=n, step_size=5e-4, batch_size=10, seed=seed, beta=beta, weight_decay=lam)
        sim.advance(12.0)
        radii.append(sim.invariants())
        risks.append(sim.observables()["risk"])
    r = np.concatenate(radii)
    assert ks_distance(r, grid.edges, fixed.density) < 1.95 / math.sqrt(r.size)
    assert abs(r.mean() - fixed.mean_r()) < 4 * r.std() / math.sqrt(r.size)
    m = fixed.density * grid.spacing
    kernel = problem.interaction_low_rank(grid.centers)
    u_diag = np.einsum("k,ki,ki->i", kernel.weights, kernel.features, kernel.features)
    bias = (u_diag @ m - kernel.weights @ (kernel.features @ m) ** 2) / n
    spread = np.std(risks, ddof=1)
    assert abs(np.mean(risks) - (fixed.risk + bias)) < 4 * spread / math.sqrt(3) + 1e-4, \
        (risks, fixed.risk, bias)
