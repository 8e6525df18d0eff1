"""The compiled characteristics path (reduced_pde.radial_hermite drift + the compiled DOP853 of
solvers.lagrangian) against the numpy path it replaces: same quantity, same steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reduced_pde import IsotropicGaussianMixture, IsotropicMixtureRadialProblem
from solvers.lagrangian import LagrangianSolver, ParticleVelocity, SolverError


class NumpyOnly(IsotropicMixtureRadialProblem):
    """The same problem without its compiled drift: solvers take the numpy methods."""

    def compiled_drift(self, points):
        return None


def mmn18(dimension: float, kappa: float, cls=IsotropicMixtureRadialProblem, **kwargs):
    return cls(IsotropicGaussianMixture(0.5, dimension), "mmn18", kappa=kappa, **kwargs)


@pytest.mark.parametrize("dimension", [math.inf, 320, 40])
@pytest.mark.parametrize("activation", ["mmn18", "relu"])
def test_compiled_drift_equals_numpy_gradient(dimension: float, activation: str) -> None:
    """ψ'(r_i; p̂) at radii from 0 (n = 0: the τ = ±∞ limits) to 6 (beyond the MMN18 knots).
    Same closed forms summed in another order: agreement to round-off, |Δ| <= 1e-13 max|ψ'|
    (K <= 24 terms of size <= max|ψ'|, each exact to a few ulps)."""
    problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, dimension), activation, kappa=0.4)
    r = np.concatenate([[0.0], np.linspace(1e-3, 6.0, 299)])
    masses = np.random.default_rng(0).random(r.size)
    masses /= masses.sum()
    field = ParticleVelocity(problem, masses, schedule=None, degree_radius=8.0)
    x = r.reshape(-1, 1)
    compiled = field.drift(x)
    assert field.compiled is not None
    reference = field.potential_gradient(x)
    scale = np.max(np.abs(reference))
    assert scale > 0.1  # the field is not trivially zero
    np.testing.assert_allclose(compiled, reference, rtol=0, atol=1e-13 * scale)


@pytest.mark.parametrize("dimension", [math.inf, 320, 40])
def test_compiled_energy_equals_numpy_risk(dimension: float) -> None:
    """R(p̂) − E y² from the compiled energy against ReducedProblem.risk: the same sums of K <= 24 terms
    of size <= R, in another order: |Δ| <= 1e-13 R."""
    problem = mmn18(dimension, 0.4)
    r = np.linspace(0.0, 3.0, 101)
    masses = np.random.default_rng(1).random(r.size)
    masses /= masses.sum()
    drift = problem.compiled_drift(np.append(r, 8.0))
    energy = drift.energy(r.reshape(-1, 1), masses, drift.parameters)
    risk = problem.risk(r, masses)
    assert abs(problem.target_second_moment + energy - risk) <= 1e-13 * risk


def test_smooth_activation_has_no_compiled_drift() -> None:
    assert mmn18(320, 0.4).compiled_drift(np.array([0.4])) is not None
    problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, 320), "tanh", kappa=0.4)
    assert problem.compiled_drift(np.array([0.4])) is None


@pytest.mark.parametrize("kappa", [0.4, 0.1])
def test_compiled_dop853_takes_the_steps_of_solve_ivp(kappa: float) -> None:
    """MMN18, d = 320, t <= 10: the compiled DOP853 reproduces scipy's DOP853 (same tableau, initial
    step, error norm and step control): the same number of right-hand-side evaluations, and
    positions/risks equal to round-off accumulated over ~100 steps (1e-12 relative)."""
    times = np.array([0.0, 0.1, 1.0, 10.0])
    runs = []
    for cls in (IsotropicMixtureRadialProblem, NumpyOnly):
        solver = LagrangianSolver(mmn18(320, kappa, cls), n_particles=60)
        risks = []
        for t in times:
            solver.advance(float(t))
            risks.append(solver.observables()["risk"])
        runs.append((solver.positions.copy(), np.array(risks), solver.velocity.evaluations))
    (x_c, risk_c, evals_c), (x_n, risk_n, evals_n) = runs
    assert evals_c == evals_n > 100
    np.testing.assert_allclose(x_c, x_n, rtol=1e-12, atol=0)
    np.testing.assert_allclose(risk_c, risk_n, rtol=1e-12, atol=0)
    assert risk_c[-1] < 0.01 * risk_c[0]  # the run learnt: R drops by > 100×


def test_compiled_path_reports_a_nonfinite_velocity() -> None:
    """A NaN mass makes every moment NaN: the compiled integrator stops with the numpy path's error."""
    masses = np.full(8, 1.0 / 8)
    masses[3] = np.nan
    solver = LagrangianSolver(mmn18(320, 0.4), initial_positions=np.linspace(0.3, 0.5, 8),
                              initial_masses=np.full(8, 1.0 / 8))
    solver.velocity.masses = masses
    with pytest.raises(SolverError, match="non-finite"):
        solver.advance(1.0)


def test_particles_past_the_truncation_radius_fall_back_to_numpy() -> None:
    """radius_bound = degree_radius = 0.45 while the particles move from ~0.4 to ~1.8: the compiled
    interval in which a particle passes the bound is discarded and re-taken by the numpy path (which
    re-chooses the series degree as it goes), later intervals rebuild the compiled drift for the new
    bound — so the run equals the numpy-only run to round-off (1e-12 relative, as above)."""
    times = np.array([0.0, 0.5, 1.0, 3.0])
    runs = []
    for cls in (IsotropicMixtureRadialProblem, NumpyOnly):
        problem = mmn18(320, 0.4, cls, radius_bound=0.45)
        solver = LagrangianSolver(problem, n_particles=20, degree_radius=0.45)
        risks = []
        for t in times:
            solver.advance(float(t))
            risks.append(solver.observables()["risk"])
        runs.append((solver.positions.copy(), np.array(risks), problem.radius_bound,
                     problem.series_degree(np.array([0.0]))))
    (x_c, risk_c, bound_c, degree_c), (x_n, risk_n, bound_n, degree_n) = runs
    # the bound was passed and raised (to twice the largest stage point when it was passed: round-off
    # apart, the same crossing) to the same series degree
    assert x_c.max() > 1.0 and bound_c > 0.45 and degree_c == degree_n
    assert abs(bound_c - bound_n) <= 1e-8 * bound_n
    np.testing.assert_allclose(x_c, x_n, rtol=1e-12, atol=0)
    np.testing.assert_allclose(risk_c, risk_n, rtol=1e-12, atol=0)
