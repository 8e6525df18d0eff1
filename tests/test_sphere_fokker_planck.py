"""Sphere geometry of the Scharfetter–Gummel Fokker–Planck solver (single-index problem, fixed
second layer, s = ⟨w, θ*⟩ ∈ [−1, 1]): exact discrete Gibbs steady state, mass, positivity,
free-energy dissipation, and independent checks — Brownian motion on S^{d−1} (closed-form E s(t),
E s²(t)), the uniform law J/∫J as t → ∞, the u = 0 fixed point against a 1-D quadrature of
J e^{−βv}, and the β = ∞ characteristics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from reduced_pde import LearningRateSchedule
from reduced_pde.free_energy import gibbs_fixed_point
from reduced_pde.activations import PolynomialActivation
from reduced_pde.models.single_index import SingleIndexProblem
from solvers.fokker_planck import FokkerPlanckSolver1D
from solvers.grid import UniformGrid1D
from tests.problem_checks import GivenPotentialProblem

EPS = np.finfo(float).eps


class SpherePotentialProblem(GivenPotentialProblem):
    """u = 0 and a given v(s) on the sphere S^{d−1}, s = ⟨w, θ*⟩ ∈ [−1, 1]: its geometry (domain,
    mobility 1 − s², log J = ((d − 3)/2) log(1 − s²), no weight decay) through the problem's methods."""

    coordinate_names = ("s",)

    def reduced_potential_gradient(self, points):
        raise NotImplementedError

    def domain(self):
        return ((-1.0, 1.0),)

    def mobility(self, points):
        s = np.asarray(points, dtype=float).reshape(-1, 1)
        return 1.0 - s * s

    def log_reference_density(self, points):
        s = np.asarray(points, dtype=float)
        return 0.5 * (self.dimension - 3.0) * np.log1p(-s * s)

    def check_noise(self, beta, weight_decay):
        if weight_decay != 0.0:
            raise ValueError(f"noise.weight_decay = {weight_decay!r} must be 0 on the sphere")

    def initial_law(self):
        raise NotImplementedError("tests pass initial_density")

    def config(self):
        return {"problem": "sphere_potential_test"}


def he3_sphere(d: int = 16) -> SingleIndexProblem:
    return SingleIndexProblem({"name": "he", "degree": 3}, PolynomialActivation.hermite(3), d,
                              train_second_layer=False, sphere=True)


def beta_cell_averages(grid: UniformGrid1D, d: int) -> np.ndarray:
    """Exact cell averages of the law of s for w uniform on S^{d−1}: (1+s)/2 ~ Beta((d−1)/2, (d−1)/2)."""
    half = (d - 1) / 2
    return np.diff(stats.beta.cdf((grid.edges + 1) / 2, half, half)) / grid.spacing


def test_sphere_problem_geometry_and_refusals() -> None:
    """The solver reads the sphere's geometry from the problem: log J = ((d − 3)/2) log(1 − s²), the
    mobility 1 − s² (zero at s = ±1), the domain [−1, 1] (the whole grid) and no weight decay."""
    problem = he3_sphere(10)
    s = np.array([-0.9, 0.0, 0.5])
    assert np.allclose(np.exp(problem.log_reference_density(s)), (1 - s**2) ** 3.5, rtol=1e-14)
    assert np.array_equal(problem.mobility(np.array([-1.0, 0.0, 1.0]))[:, 0], [0.0, 1.0, 0.0])
    assert problem.domain() == ((-1.0, 1.0),)
    with pytest.raises(ValueError, match=r"weight_decay = 0.1 must be 0 on the sphere"):
        FokkerPlanckSolver1D(problem, UniformGrid1D(-1.0, 1.0, 50), 5.0, 0.1)
    with pytest.raises(ValueError, match=r"weight_decay = 0.1 must be 0 on the sphere"):
        gibbs_fixed_point(problem, UniformGrid1D(-1.0, 1.0, 50).centers, 0.04, 5.0, 0.1)
    with pytest.raises(ValueError, match=r"grid\.s = \[-1, 0\.5\] must lie in the domain \[-1, 1\] of coordinate s"):
        FokkerPlanckSolver1D(problem, UniformGrid1D(-1.0, 0.5, 50), 5.0)
    with pytest.raises(ValueError, match=r"grid\.s = \[-1\.5, 1\] must lie in the domain \[-1, 1\]"):
        FokkerPlanckSolver1D(problem, UniformGrid1D(-1.5, 1.0, 50), 5.0)


@pytest.mark.parametrize("stepping", ["explicit", "implicit"])
def test_sphere_discrete_gibbs_state_is_steady_to_round_off(stepping: str) -> None:
    """He_3 target and activation, d = 16, β = 5 (a two-mode law): the self-consistent discrete
    Gibbs state makes every (mobility-weighted) SG flux vanish; n steps move it by <= n·10ε_mach."""
    grid = UniformGrid1D(-1.0, 1.0, 400)
    problem = he3_sphere()
    fixed = gibbs_fixed_point(problem, grid.centers, grid.spacing, 5.0, 0.0, tolerance=1e-14)
    assert fixed.residual < 1e-12
    solver = FokkerPlanckSolver1D(problem, grid, 5.0, time_stepping=stepping,
                                  initial_density=fixed.density,
                                  **({"dt": 0.01} if stepping == "implicit" else {"cfl": 1.0}))
    solver.advance(1.0 if stepping == "implicit" else 0.05)
    change = np.sum(np.abs(solver.density - fixed.density)) * grid.spacing
    assert solver.steps >= 50
    assert change <= solver.steps * 10 * EPS + 1e-13, (change, solver.steps)


def test_sphere_transient_mass_positivity_dissipation_and_fixed_point() -> None:
    """From the uniform law on S^{d−1} (p0 ∝ J, the problem's initial law): mass to round-off,
    p >= 0, F_h non-increasing at every step (largest increase <= 10 ε|F|), and the long-time
    solution equals the Newton fixed point (the Gibbs state is unique: u is PSD)."""
    grid = UniformGrid1D(-1.0, 1.0, 400)
    problem = he3_sphere()
    solver = FokkerPlanckSolver1D(problem, grid, 5.0, dt=2e-3)
    assert np.allclose(solver.density, beta_cell_averages(grid, 16), rtol=0, atol=1e-12)
    free = []
    for t in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        solver.advance(t)
        obs = solver.observables()
        free.append(obs["free_energy"])
        assert abs(obs["mass"] - 1.0) <= solver.steps * grid.cells * EPS
        assert np.all(solver.density >= 0)
    assert np.all(np.diff(free) <= 0)
    assert solver.max_free_energy_increase <= 10 * EPS * abs(free[-1])
    fixed = gibbs_fixed_point(problem, grid.centers, grid.spacing, 5.0, 0.0)
    assert np.sum(np.abs(solver.density - fixed.density)) * grid.spacing < 1e-9
    assert solver.observables()["mean_s"] == pytest.approx(fixed.mean_r(), abs=1e-10)
    assert solver.coordinate_names == ("s",) and "solver.geometry" not in solver.config()  # from the problem


def sphere_brownian_moments(cells: int, d: int = 10, beta: float = 4.0, xi0: float = 1.5,
                            horizon: float = 0.2) -> tuple[float, float, float, float]:
    """u = v = 0: Brownian motion on S^{d−1} with generator 2ξβ⁻¹Δ.  L s = −(d−1)s and
    L s² = 2 − 2d s² give E s(t) = E s(0) e^{−κ(d−1)t}, E s²(t) = 1/d + (E s²(0) − 1/d) e^{−2κdt},
    κ = 2ξ/β.  Start: the law ∝ J(s) e^{3s} (an exact cell-average start is not needed: moments
    of the discrete initial law are used).  Returns (mean, exact mean, E s², exact E s²)."""
    grid = UniformGrid1D(-1.0, 1.0, cells)
    s = grid.centers
    p0 = (1 - s**2) ** ((d - 3) / 2) * np.exp(3 * s)
    p0 /= p0.sum() * grid.spacing
    m1, m2 = float(s @ p0 * grid.spacing), float(s**2 @ p0 * grid.spacing)
    solver = FokkerPlanckSolver1D(SpherePotentialProblem(d), grid, beta,
                                  schedule=LearningRateSchedule(xi0=xi0), dt=0.5 * grid.spacing**2,
                                  initial_density=p0)
    solver.advance(horizon)
    kappa = 2 * xi0 / beta
    m = solver.density * grid.spacing
    return (float(s @ m), m1 * math.exp(-kappa * (d - 1) * horizon),
            float(s**2 @ m), 1 / d + (m2 - 1 / d) * math.exp(-2 * kappa * d * horizon))


def test_sphere_brownian_motion_moments_converge_at_order_two() -> None:
    """Independent check of the mobility 1 − s² and the Jacobian (1 − s²)^{(d−3)/2} (a wrong
    mobility or exponent changes the decay rates (d−1)κ, 2dκ at O(1)): the errors of E s(t) and
    E s²(t) decrease like h² (observed orders ≈ 2)."""
    errors = []
    for cells in (50, 100, 200):
        mean, mean_exact, second, second_exact = sphere_brownian_moments(cells)
        errors.append((abs(mean - mean_exact), abs(second - second_exact)))
    errors = np.array(errors)
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(errors[-1] < 2e-4), errors
    assert np.all(orders > 1.8), (errors, orders)


def test_sphere_free_diffusion_tends_to_normalised_jacobian() -> None:
    """u = v = 0: the stationary law is J/∫J (w uniform on the sphere).  From a law concentrated near
    s = 0.9, the long-time solution equals the discrete Gibbs state J_i/Σ J h to round-off (n steps · 10 ε_mach), and the
    exact cell averages of the Beta law to O(h²)."""
    d, grid = 10, UniformGrid1D(-1.0, 1.0, 200)
    s = grid.centers
    p0 = np.exp(-((s - 0.9) / 0.05) ** 2)
    p0 /= p0.sum() * grid.spacing
    solver = FokkerPlanckSolver1D(SpherePotentialProblem(d), grid, 2.0,
                                  dt=0.01, initial_density=p0)
    solver.advance(20.0)
    jac = (1 - s**2) ** ((d - 3) / 2)
    change = np.sum(np.abs(solver.density - jac / (jac.sum() * grid.spacing))) * grid.spacing
    assert change <= solver.steps * 10 * EPS, (change, solver.steps)
    exact = beta_cell_averages(grid, d)
    assert np.sum(np.abs(solver.density - exact)) * grid.spacing < 2 * grid.spacing**2


def test_sphere_fixed_point_without_interaction_matches_quadrature() -> None:
    """u = 0, v = −2s³ + s: p* ∝ (1 − s²)^{(d−3)/2} e^{−βv}; moments of the Newton fixed point (on the
    grid, midpoint-type) vs scipy quad of the continuous density: O(h²) agreement."""
    d, beta = 12, 3.0
    v = lambda s: -2 * s**3 + s  # noqa: E731
    problem = SpherePotentialProblem(d, v)

    def weight(s):
        return (1 - s * s) ** ((d - 3) / 2) * math.exp(-beta * v(s))

    norm = integrate.quad(weight, -1, 1, epsabs=1e-14, epsrel=1e-13)[0]
    exact = [integrate.quad(lambda s: s**k * weight(s), -1, 1, epsabs=1e-14, epsrel=1e-13)[0] / norm
             for k in (1, 2)]
    errors = []
    for cells in (100, 200):
        grid = UniformGrid1D(-1.0, 1.0, cells)
        fixed = gibbs_fixed_point(problem, grid.centers, grid.spacing, beta, 0.0)
        m = fixed.density * grid.spacing
        errors.append([abs(grid.centers @ m - exact[0]), abs(grid.centers**2 @ m - exact[1])])
    errors = np.array(errors)
    assert np.all(errors[-1] < 2e-4), errors
    assert np.all(np.log2(errors[0] / errors[1]) > 1.8), errors


def test_sphere_drift_only_limit_follows_characteristics() -> None:
    """β = ∞, u = 0, v = −s: ds/dt = 2ξ(1 − s²), s(t) = tanh(2ξt + atanh s0); the upwind scheme with
    velocity −2ξ M ∂_sψ transports a narrow bump to the characteristic (first order in h)."""
    grid = UniformGrid1D(-1.0, 1.0, 2000)
    s = grid.centers
    p0 = np.exp(-((s + 0.3) / 0.03) ** 2)
    p0 /= p0.sum() * grid.spacing
    solver = FokkerPlanckSolver1D(SpherePotentialProblem(3, lambda x: -x), grid, math.inf,
                                  initial_density=p0)
    solver.advance(0.3)
    mean0 = float(s @ p0 * grid.spacing)
    mean = solver.observables()["mean_s"]
    assert mean == pytest.approx(math.tanh(0.6 + math.atanh(mean0)), abs=5e-3)
    assert abs(solver.observables()["mass"] - 1) < 1e-12
