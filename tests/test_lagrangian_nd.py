"""Characteristics solver on the multi-coordinate reductions ((a, s, r), (a, s) on the sphere,
(a, s₁, s₂, r)): velocities against finite differences of the risk, dissipation, boundaries,
agreement with the tensor-grid finite-volume solver, concentration to a point mass, resume, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reduced_pde import LearningRateSchedule
from reduced_pde.models.multi_index import MultiIndexProblem
from reduced_pde.running.storage import CheckpointFile
from solvers.controller import run_simulation
from reduced_pde.models.single_index import SingleIndexProblem
from solvers.finite_volume import FiniteVolumeSolver
from solvers.lagrangian import LagrangianSolver, ParticleVelocity, initial_particles, solve_lagrangian
from solvers.tensor_grid import GridAxis, TensorGrid

TARGET = {"he": [0.0, 1.0, 0.5]}  # y = He_1 + ½ He_2: odd and even parts


def ball_problem(**kwargs) -> SingleIndexProblem:
    return SingleIndexProblem(TARGET, "tanh", 10, second_layer=0.5, second_layer_std=0.3,
                              truncation_tolerance=1e-3, **kwargs)


def sphere_problem() -> SingleIndexProblem:
    # He_2 target, σ = He_2 on the sphere: the interaction has exact finite rank
    return SingleIndexProblem({"name": "he", "degree": 2}, "he2", 10, sphere=True, second_layer=0.3,
                              second_layer_std=0.2)


def multi_index_problem() -> MultiIndexProblem:
    return MultiIndexProblem({"hermite": {"1,0": 1.0, "1,1": 1.0}}, "tanh", 12, index_dimension=2,
                             second_layer=0.5, second_layer_std=0.3, truncation_tolerance=1e-3)


@pytest.mark.parametrize("make", [ball_problem, sphere_problem, multi_index_problem])
def test_velocity_is_the_scaled_risk_gradient(make) -> None:
    """For p̂ = Σ m_j δ_{x_j}: ∂R/∂x_i = 2 m_i ∇ψ(x_i; p̂) (u symmetric), so the characteristic
    velocity is −ξ C M(x_i) ∂R/∂x_i / m_i.  Central differences of ``problem.risk`` (low-rank
    features only; the velocity uses the analytic feature gradients) with h = 1e-5: truncation
    error ~ h² |R'''| ~ 1e-10, round-off ~ 1e-16 |R| / h ~ 1e-11 — tolerance 1e-7 relative."""
    problem = make()
    rng = np.random.default_rng(3)
    positions, _ = initial_particles(problem, 8, sampling="sobol", seed=1)
    positions = positions + 0.05 * rng.standard_normal(positions.shape)
    positions = positions.reshape(8, -1)
    if "r" in problem.coordinate_names:
        k = problem.coordinate_names.index("r")
        positions[:, k] = np.abs(positions[:, k]) + 0.1
    if getattr(problem, "sphere", False):
        k = problem.coordinate_names.index("s")
        positions[:, k] = np.clip(positions[:, k], -0.9, 0.9)
    masses = rng.uniform(0.5, 1.5, 8)
    masses /= masses.sum()
    rates = np.ones(len(problem.coordinate_names))
    rates[0] = 2.5  # a per-coordinate rate (the second layer a is the first coordinate here)
    schedule = LearningRateSchedule(0.7, 1.0, 2.0)
    field = ParticleVelocity(problem, masses, schedule, rates=rates)
    t = 0.3
    velocity = field.velocity(t, positions)
    h = 1e-5
    gradient = np.empty_like(positions)
    for i in range(positions.shape[0]):
        for d in range(positions.shape[1]):
            plus, minus = positions.copy(), positions.copy()
            plus[i, d] += h
            minus[i, d] -= h
            gradient[i, d] = (problem.risk(plus, masses) - problem.risk(minus, masses)) / (2 * h)
    expected = -schedule(t) * rates * problem.mobility(positions) * gradient / masses[:, None]
    np.testing.assert_allclose(velocity, expected, atol=1e-7 * np.abs(expected).max())


def test_particles_conserve_mass_dissipate_the_risk_and_respect_the_boundaries() -> None:
    """Sphere (a, s): |s| <= 1 at all times; masses unchanged; R(p̂_t) is non-increasing
    (dR/dt = −2ξ Σ m_i |C^½ M^½ ∇ψ|² <= 0), up to the ODE tolerance (rtol 1e-9 on positions
    of size 1 → risk increments ~1e-9)."""
    problem = sphere_problem()
    times = np.linspace(0.0, 1.0, 21)
    trajectory = solve_lagrangian(problem, times, n_particles=256, sampling="sobol")
    positions = trajectory.fields["positions"]
    assert positions.shape == (21, 256, 2)
    assert np.all(np.abs(positions[..., 1]) <= 1.0)
    np.testing.assert_array_equal(trajectory.fields["masses"], np.full(256, 1 / 256))
    assert np.all(np.diff(trajectory.risk) <= 1e-9)
    assert trajectory.risk[-1] < 0.7 * trajectory.risk[0]  # the flow is not trivial


def test_initial_particles_tensor_quantiles_and_point_masses() -> None:
    """Tensor mid-quantile rule: point-mass marginals get one level; the others n^(1/D') levels."""
    finite = ball_problem()
    positions, masses = initial_particles(finite, 1000)  # 10 levels in each of a, s, r
    assert positions.shape == (1000, 3) and np.allclose(masses, 1e-3)
    assert np.unique(positions[:, 0]).size == 10 and np.all(positions[:, 2] > 0)
    infinite = SingleIndexProblem("relu", "relu", math.inf, second_layer=0.5, second_layer_std=0.2,
                                  initial_alignment=0.3)
    positions, masses = initial_particles(infinite, 64)  # (s, r) = (0.3, 1) is a point mass at d = ∞
    assert positions.shape == (64, 3)
    np.testing.assert_array_equal(positions[:, 1:], np.tile([0.3, 1.0], (64, 1)))
    positions, _ = initial_particles(finite, [4, 3, 2])
    assert positions.shape == (24, 3)


def _fv(problem, grid, times, names):
    solver = FiniteVolumeSolver(problem, grid, scheme="muscl", cfl=0.4)
    out = []
    for t in times:
        solver.advance(t)
        observables = solver.observables()
        out.append([observables[name] for name in names])
    return np.array(out)


def _lagrangian(problem, times, n, names, seeds=range(4)):
    """Mean and standard error over independently scrambled Sobol particle sets (scrambled QMC is
    unbiased for the initial law, so the seed spread measures its quadrature error)."""
    runs = []
    for seed in seeds:
        trajectory = solve_lagrangian(problem, times, n_particles=n, sampling="sobol", seed=seed,
                                      rtol=1e-8, atol=1e-11)
        runs.append([trajectory.series(name) for name in names])
    runs = np.array(runs).transpose(0, 2, 1)  # (seed, time, quantity)
    return runs.mean(0), runs.std(0, ddof=1) / math.sqrt(runs.shape[0])


def test_agrees_with_finite_volumes_on_the_sphere() -> None:
    """(a, s) on the sphere, d = 10: Lagrangian (4 scrambled Sobol sets of 2048 particles) against
    MUSCL finite volumes (40×80 / 80×160 cells), t <= 0.5.

    Error budget for Q ∈ {risk, mean a, mean s, std s}:
      FV(fine) error <= |FV(coarse) − FV(fine)|   (order >= 1 under halving h),
      Lagrangian error: 99% Student-t interval of the 4-set mean (t_{0.995,3} = 5.84 standard errors),
    plus 1e-7 for the ODE tolerance (rtol 1e-8)."""
    problem = sphere_problem()
    times = np.array([0.0, 0.1, 0.25, 0.5])
    names = ["risk", "mean_a", "mean_s", "std_s"]

    def grid(cells):
        return TensorGrid([GridAxis.uniform("a", -1.2, 2.0, cells), GridAxis.uniform("s", -1.0, 1.0, 2 * cells)])

    coarse, fine = _fv(problem, grid(40), times, names), _fv(problem, grid(80), times, names)
    mean, stderr = _lagrangian(problem, times, 2048, names)
    bound = 5.84 * stderr + np.abs(coarse - fine) + 1e-7
    gap = np.abs(mean - fine)
    assert np.all(gap <= bound), (gap, bound)
    assert fine[-1, 0] < 0.7 * fine[0, 0] and abs(fine[-1, 1] - fine[0, 1]) > 0.05  # a real flow


@pytest.mark.slow
def test_finite_volumes_converge_to_the_characteristics_in_three_dimensions() -> None:
    """(a, s, r) in the ball, d = 10, tanh, t <= 1: the characteristics solution (4 scrambled Sobol
    sets of 4096 particles; measured: equal to 16384 particles within 3e-5) is the reference, and
    the MUSCL finite-volume solution on 32³ and 64³ cells must converge to it at order >= 0.7
    (error ratio <= 2^(−0.7) = 0.62) in the risk, mean a and mean s at t = 0.5 and 1, up to the
    reference's own 99% Student-t interval (5.84 standard errors, counted for both errors).
    (On this grid MUSCL is pre-asymptotic — measured ratios 0.30–0.52, errors 1.9e-3 in R(1) on 64³
    — so a Richardson bound from two grid levels is not a valid error estimate here.)"""
    problem = ball_problem()
    times = np.array([0.0, 0.5, 1.0])
    names = ["risk", "mean_a", "mean_s"]

    def grid(cells):
        return TensorGrid([GridAxis.uniform("a", -1.8, 2.8, cells), GridAxis.uniform("s", -2.5, 2.5, cells),
                           GridAxis.uniform("r", 0.0, 3.0, cells)])

    reference, stderr = _lagrangian(problem, times, 4096, names)
    coarse = np.abs(_fv(problem, grid(32), times, names) - reference)[1:]
    fine = np.abs(_fv(problem, grid(64), times, names) - reference)[1:]
    allowance = 5.84 * stderr[1:]
    assert np.all(fine <= 0.62 * (coarse + allowance) + allowance), (coarse, fine, allowance)
    assert np.all(coarse > 4 * allowance)  # the grid error is resolved by the reference


def test_well_specified_relu_concentrates_on_the_teacher_at_infinite_dimension() -> None:
    """y = relu(z), neurons relu(⟨w, x⟩) with a fixed second layer a = 1, d = ∞, w₀ = 0.3θ* + g:
    the law is the point mass (s, r) = (0.3, 1) and stays one (one characteristic).  At d = ∞ the
    orthogonal parts of distinct neurons are orthogonal, so f(x) = E_g relu(s z + r g): the risk
    vanishes only at (s, r) = (1, 0), the teacher.  The particle must approach it: s → 1 and r
    decreasing monotonically, with R(t) non-increasing (to the ODE tolerance) and down by more than
    two decades by t = 40 (measured: R(40)/R(0) = 1.1e-3, s = 0.9996, r = 0.17; r → 0 is slow, the
    risk decaying algebraically, ~ r³, near the teacher)."""
    problem = SingleIndexProblem("relu", "relu", math.inf, train_second_layer=False, initial_alignment=0.3,
                                 truncation_tolerance=1e-4)
    times = np.array([0.0, 1.0, 5.0, 10.0, 20.0, 40.0])
    trajectory = solve_lagrangian(problem, times, n_particles=50)
    positions = trajectory.fields["positions"]
    assert positions.shape == (6, 1, 2)  # one characteristic
    assert np.all(np.diff(trajectory.risk) <= 1e-9)
    assert trajectory.risk[-1] < 1e-2 * trajectory.risk[0]
    assert abs(positions[-1, 0, 0] - 1.0) < 0.01
    assert np.all(np.diff(positions[:, 0, 1]) < 0) and positions[-1, 0, 1] < 0.25


def test_checkpoint_resume_is_identical(tmp_path) -> None:
    problem = ball_problem()
    times = np.array([0.0, 0.1, 0.2, 0.3])
    full = solve_lagrangian(problem, times, n_particles=64, sampling="sobol")
    path = tmp_path / "run.ckpt.h5"
    first = LagrangianSolver(problem, n_particles=64, sampling="sobol")
    run_simulation(first, times[:2], kind="pde_lagrangian", config=first.config(),
                   static_fields=first.static_fields(), checkpoint=CheckpointFile(path))
    second = LagrangianSolver(problem, n_particles=64, sampling="sobol")
    resumed = run_simulation(second, times, kind="pde_lagrangian", config=second.config(),
                             static_fields=second.static_fields(), checkpoint=CheckpointFile(path), resume=True)
    np.testing.assert_array_equal(resumed.fields["positions"], full.fields["positions"])
    np.testing.assert_array_equal(resumed.risk, full.risk)


def test_bad_inputs_are_refused() -> None:
    problem = ball_problem()
    with pytest.raises(ValueError, match=r"solver\.sampling = 'grid'; allowed: quantile, sobol"):
        LagrangianSolver(problem, sampling="grid")
    with pytest.raises(ValueError, match=r"rates: coordinate 'b' is not one of"):
        LagrangianSolver(problem, rates={"b": 2.0})
    with pytest.raises(ValueError, match=r"rates\['a'\] = -1"):
        LagrangianSolver(problem, rates={"a": -1.0})
    with pytest.raises(ValueError, match=r"solver\.method = 'Euler'"):
        LagrangianSolver(problem, method="Euler")
    with pytest.raises(ValueError, match=r"initial_positions has shape \(5, 2\); expected \(n, 3\)"):
        LagrangianSolver(problem, initial_positions=np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"coordinate r must lie in its domain \[0, inf\]"):
        LagrangianSolver(problem, initial_positions=-np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"solver\.n_particles\[a\] = 0"):
        LagrangianSolver(problem, n_particles=[0, 2, 2])
    with pytest.raises(ValueError, match=r"one count per coordinate"):
        LagrangianSolver(problem, n_particles=[2, 2])


def test_finite_dimensional_reductions_converge_to_infinite_dimension_at_order_one() -> None:
    """ReLU single-index model, trained a ~ N(0.5, 0.2²): the finite-d reduction (Sobol particles in
    (a, s, r)) tends to the d = ∞ one (quantile particles in a; (s, r) a point mass) like 1/d — the
    c-average and the initial spread of s both enter at O(1/d).  Measured relative risk gaps at
    t = 2: 5.7% (d = 100), 1.5% (d = 400), 0.40% (d = 1600).  Check: quadrupling d divides the gap
    by more than 3 (order > 0.79; a 1/√d law would divide it by 2 only) and the d = 400 gap lies
    in (0.1%, 3%) (visible, and small)."""
    times = np.array([0.0, 1.0, 2.0])

    def risk(d, **kwargs):
        problem = SingleIndexProblem("relu", "relu", d, second_layer=0.5, second_layer_std=0.2,
                                     truncation_tolerance=1e-4)
        return solve_lagrangian(problem, times, rtol=1e-8, atol=1e-11, **kwargs).risk

    limit = risk(math.inf, n_particles=256)
    gaps = np.array([np.abs(risk(d, n_particles=1024, sampling="sobol") - limit)[1:] / limit[1:]
                     for d in (100, 400)])
    # Sobol error of the finite-d runs ~3e-5 relative (seed spread), far below the gaps (> 5e-3)
    assert np.all(gaps[1] < gaps[0] / 3), gaps
    assert np.all(gaps[1] < 0.03) and np.all(gaps[1] > 1e-3), gaps


def test_jacobian_matches_finite_differences_of_the_velocity() -> None:
    """``ParticleVelocity.jacobian`` (exact low-rank coupling + differenced local blocks) against
    central differences of the full velocity (step 1e-6: error ~1e-10 relative), with a fast second
    layer (rate 1e4) as in the stiff runs."""
    problem = SingleIndexProblem({"he": [1.0, -1.0, 2.0 / 3.0]}, "relu", 40, sphere=True, second_layer=0.1,
                                 second_layer_std=0.5, truncation_tolerance=1e-4)
    positions, masses = initial_particles(problem, [5, 3])
    positions[:, 1] += 0.2  # away from s = 0 (symmetric initial quantiles)
    field = ParticleVelocity(problem, masses, LearningRateSchedule(), rates=np.array([1e4, 1.0]))
    state = positions.ravel()
    jacobian = field.jacobian(0.0, state)
    h = 1e-6
    reference = np.empty_like(jacobian)
    for column in range(state.size):
        plus, minus = state.copy(), state.copy()
        plus[column] += h
        minus[column] -= h
        reference[:, column] = (field(0.0, plus) - field(0.0, minus)) / (2 * h)
    np.testing.assert_allclose(jacobian, reference, atol=1e-6 * np.abs(reference).max())


def test_gauss_particles_are_exact_quadratures_of_the_initial_law() -> None:
    """sampling = "gauss": Gauss–Hermite in a (exact for E a^k, k <= 2n − 1), Gauss–Jacobi in s on the
    sphere ((1 + s)/2 ~ Beta((d−1)/2, (d−1)/2): E s² = 1/d, E s⁴ = 3/(d(d+2)) exactly), a point mass
    kept as one level, masses summing to one; Gauss–Legendre in probability for other laws (the
    chi-type law of r in the ball: E r² against its closed form to quadrature accuracy)."""
    sphere = SingleIndexProblem({"he": [1.0, -1.0, 0.5]}, "relu", 50, sphere=True, train_second_layer=True,
                                second_layer=0.3, second_layer_std=0.5)
    x, m = initial_particles(sphere, [6, 5], sampling="gauss")
    assert x.shape == (30, 2) and m.sum() == pytest.approx(1.0, abs=1e-15)
    a, s = x[:, 0], x[:, 1]
    for k, exact in ((1, 0.3), (2, 0.3**2 + 0.25), (4, 0.3**4 + 6 * 0.3**2 * 0.25 + 3 * 0.25**2)):
        assert m @ a**k == pytest.approx(exact, rel=1e-13)          # degree <= 2·6 − 1: exact
    assert m @ s**2 == pytest.approx(1 / 50, rel=1e-12)
    assert m @ s**4 == pytest.approx(3 / (50 * 52), rel=1e-12)     # degree 4 <= 2·5 − 1: exact
    infinite = SingleIndexProblem({"he": [1.0, -1.0, 0.5]}, "relu", "inf", sphere=True, train_second_layer=True,
                                  second_layer_std=0.5)
    x, m = initial_particles(infinite, 8, sampling="gauss")
    assert x.shape == (8, 2) and np.all(x[:, 1] == 0.0)            # s = 0 point mass: one level
    assert np.max(x[:, 0]) > 3.0 * 0.5 / math.sqrt(2) * math.sqrt(8 / 2)  # Hermite nodes reach √(2n)σ-ish
    ball = SingleIndexProblem({"he": [0.0, 1.0]}, "tanh", 20, second_layer=0.5, second_layer_std=0.2)
    x, m = initial_particles(ball, [4, 4, 12], sampling="gauss")
    r = x[:, 2]
    # w ~ N(0, I/d): r² = |w − sθ*|² ~ χ²_{d−1}/d, E r² = (d − 1)/d; Gauss–Legendre in probability
    # converges algebraically here (the ppf is singular at 0 and 1; measured 1.9e-3, 5.1e-4, 1.3e-4 at
    # 6, 12, 24 nodes: order 2), so 1e-3 at 12 nodes
    assert m @ r**2 == pytest.approx(19 / 20, rel=1e-3)
    with pytest.raises(ValueError, match="sampling"):
        initial_particles(ball, 10, sampling="gaussian")
