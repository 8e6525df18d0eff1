"""Tests of the anisotropic Gaussian mixture reduction (reduced_pde.models.anisotropic_mixture).

Tolerances are stated next to each assertion with the error they come from: round-off, the rigorous
series truncation bound b_i b_j, quadrature error (measured by changing the rule), Monte Carlo standard
errors (4 s.e.), finite-difference error O(h²), or the grid error measured by halving h.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import roots_jacobi

from reduced_pde.models import get_model
from reduced_pde.models.anisotropic_mixture import (AnisotropicGaussianMixture, AnisotropicMixtureNetwork,
                                                    AnisotropicMixtureProblem)
from reduced_pde.models.isotropic_mixture import IsotropicGaussianMixture, IsotropicMixtureRadialProblem

INF = math.inf
POINTS = np.array([[0.3, 0.5], [1.0, 0.2], [0.0, 0.7], [0.8, 0.0], [1.3, 0.9]])


def problem(d=40, gamma=0.25, delta=0.5, activation="mmn18", **kwargs):
    return AnisotropicMixtureProblem(AnisotropicGaussianMixture(delta, d, gamma), activation, **kwargs)


def random_neurons(invariants, s0, d, rng):
    """Rows w with |w[:s0]| = r1, |w[s0:]| = r2 and independent uniform directions in each block."""
    invariants = np.atleast_2d(invariants)
    g1 = rng.standard_normal((invariants.shape[0], s0))
    g2 = rng.standard_normal((invariants.shape[0], d - s0))
    g1 *= (invariants[:, 0] / np.linalg.norm(g1, axis=1))[:, None]
    g2 *= (invariants[:, 1] / np.linalg.norm(g2, axis=1))[:, None]
    return np.concatenate([g1, g2], axis=1)


# ---- potential and kernel ---------------------------------------------------------------------------
@pytest.mark.parametrize("d", [40, INF])
def test_low_rank_kernel_matches_quadrature_within_truncation_bound(d):
    pr = problem(d)
    pts = POINTS[[0, 1, 4]]
    kernel = pr.interaction_low_rank(pts)
    reference = pr.interaction_kernel(pts, pts)
    bound = np.outer(kernel.truncation_bound, kernel.truncation_bound)
    if math.isinf(d):
        assert kernel.rank == 2
        np.testing.assert_array_equal(bound, 0.0)
        # d = ∞: rank 2, exact; the reference is the bivariate expectation at c = 0 (round-off)
        np.testing.assert_allclose(kernel.dense(), reference, rtol=0, atol=1e-12)
        return
    assert pr.series_degree() > 0 and np.all(bound > 0)
    assert bound.max() <= pr.truncation_tolerance * 60.0  # E σ² <= max(s1², s2²) = 56.25 for MMN18
    # quadrature error of the (16, 12)-node Gauss–Jacobi rule: measured against (24, 24) nodes at 1.5e-9
    assert np.all(np.abs(kernel.dense() - reference) <= bound + 1e-8)


def test_kernel_at_the_origin_and_even_extension():
    pr = problem(40)
    pts = np.array([[0.0, 0.0], [0.4, 0.3], [-0.4, 0.3], [0.4, -0.3]])
    kernel = pr.interaction_low_rank(pts)
    grads = pr.interaction_features_gradient(pts)
    vgrad = pr.reduced_potential_gradient(pts)
    assert np.all(np.isfinite(kernel.features)) and np.all(np.isfinite(grads)) and np.all(np.isfinite(vgrad))
    # origin: g = σ(0) on the k = 0 features, 0 otherwise; gradients 0 (v and g are even in r1 and r2)
    sigma0 = float(pr.activation(np.array(0.0)))
    k0 = np.isclose(np.abs(kernel.features[:, 0]), abs(sigma0), rtol=0, atol=0)
    assert k0.sum() == 2 and np.all(kernel.features[~k0, 0] == 0.0)
    assert np.all(grads[:, 0] == 0.0) and np.all(vgrad[0] == 0.0)
    # even extension: values equal, gradients odd in the reflected coordinate (exact symmetry)
    np.testing.assert_array_equal(kernel.features[:, 2], kernel.features[:, 1])
    np.testing.assert_array_equal(grads[:, 2, 0], -grads[:, 1, 0])
    np.testing.assert_array_equal(grads[:, 3, 1], -grads[:, 1, 1])


@pytest.mark.parametrize("d", [40, INF])
def test_gradients_match_central_differences(d):
    pr = problem(d)
    h = 1e-5
    grads = pr.interaction_features_gradient(POINTS)
    vgrad = pr.reduced_potential_gradient(POINTS)
    features = pr.interaction_low_rank(POINTS).features
    scale = max(1.0, float(np.abs(features).max()))
    for axis in range(2):
        step = np.zeros(2)
        step[axis] = h
        fd = (pr.interaction_low_rank(POINTS + step).features
              - pr.interaction_low_rank(POINTS - step).features) / (2 * h)
        fdv = (pr.reduced_potential(POINTS + step) - pr.reduced_potential(POINTS - step)) / (2 * h)
        # central differences: error h²/6 |f'''| (|f'''| <~ 1e2 · scale here: derivatives of α_k(n)
        # grow like k^{3/2}, K <= 34) plus round-off 1e-16 scale / h: together < 1e-6 scale
        np.testing.assert_allclose(grads[..., axis], fd, rtol=0, atol=1e-6 * scale)
        np.testing.assert_allclose(vgrad[:, axis], fdv, rtol=0, atol=1e-6 * scale)


def _mc_potential_and_kernel(pr, x, other, n_samples, rng, chunk=200_000):
    """Monte Carlo of V(w) and of U(w, w') averaged over the directions of w, w' with invariants x, x'."""
    d, s0 = int(pr.dimension), int(pr.signal_dimension)
    v_terms, u_terms = [], []
    for start in range(0, n_samples, chunk):
        m = min(chunk, n_samples - start)
        xs, ys = pr.data.sample(m, rng)
        w = random_neurons(np.tile(x, (m, 1)), s0, d, rng)
        w2 = random_neurons(np.tile(other, (m, 1)), s0, d, rng)
        a = pr.activation(np.einsum("nd,nd->n", w, xs))
        v_terms.append(-ys * a)
        u_terms.append(a * pr.activation(np.einsum("nd,nd->n", w2, xs)))
    v_terms, u_terms = np.concatenate(v_terms), np.concatenate(u_terms)
    return (v_terms.mean(), v_terms.std() / math.sqrt(n_samples),
            u_terms.mean(), u_terms.std() / math.sqrt(n_samples))


def test_potential_and_kernel_against_full_dimensional_monte_carlo():
    pr = problem(40)
    rng = np.random.default_rng(1)
    for x, other in [(POINTS[0], POINTS[1]), (POINTS[4], POINTS[2])]:
        v_mc, v_se, u_mc, u_se = _mc_potential_and_kernel(pr, x, other, 400_000, rng)
        v = pr.reduced_potential(x[None])[0]
        u = pr.interaction_low_rank(np.stack([x, other])).dense()[0, 1]
        # Monte Carlo: 4 standard errors (s.e. ≈ 4e-3 to 8e-3 with 4e5 samples); series bound < 1e-5
        assert abs(v - v_mc) <= 4 * v_se, (v, v_mc, v_se)
        assert abs(u - u_mc) <= 4 * u_se + 1e-5, (u, u_mc, u_se)


def test_isotropic_model_recovered_by_averaging_over_the_split_at_delta_zero():
    """Δ = 0: x ~ N(0, I_d) is isotropic, so averaging the (r1, r2) kernel over the law of the split
    r1 = r cos θ, r2 = r sin θ of a uniform direction (t = cos²θ ~ Beta(s0/2, (d − s0)/2)), independently
    for both neurons, must give the isotropic kernel u_iso(r, r') — term by term in k, so exactly at any
    truncation degree K.  Every feature is a polynomial of degree k/2 in t, so a Gauss–Jacobi rule with
    K/2 + 1 nodes integrates it exactly.  Also v = 0 for both, and at d = ∞ u = q(r) q(r') for both."""
    d, gamma, degree = 40, 0.25, 12
    s0 = gamma * d
    aniso = problem(d, gamma, delta=0.0, hermite_degree=degree)
    iso = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.0, d), "mmn18", hermite_degree=degree)
    nodes, weights = roots_jacobi(degree // 2 + 1, (d - s0) / 2 - 1, s0 / 2 - 1)  # (1−z)^{β−1}(1+z)^{α−1}
    t, weights = 0.5 * (nodes + 1.0), weights / weights.sum()  # t ~ Beta(s0/2, (d−s0)/2)
    radii = np.array([0.3, 0.9, 1.7])
    averaged = []
    for r in radii:
        kernel = aniso.interaction_low_rank(np.stack([r * np.sqrt(t), r * np.sqrt(1.0 - t)], axis=1))
        averaged.append(kernel.features @ weights)
    averaged = np.array(averaged).T  # (R, 3)
    u_aniso = (averaged.T * kernel.weights) @ averaged
    u_iso = iso.interaction_low_rank(radii).dense()
    np.testing.assert_allclose(u_aniso, u_iso, rtol=1e-12, atol=1e-12)  # exact identity: round-off
    np.testing.assert_allclose(aniso.reduced_potential(np.array([[0.3, 0.4]])), 0.0, atol=1e-15)
    inf_aniso, inf_iso = problem(INF, delta=0.0), IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.0, INF), "mmn18")
    pts = np.array([[0.3, 0.4], [1.2, 0.5]])
    np.testing.assert_allclose(inf_aniso.interaction_low_rank(pts).dense(),
                               inf_iso.interaction_low_rank(np.hypot(pts[:, 0], pts[:, 1])).dense(),
                               rtol=1e-13, atol=1e-13)


def test_reduced_velocity_is_the_projected_full_dimensional_population_gradient():
    """Exact population gradient descent: for the law p = Σ_a m_a δ_{x_a} lifted to R^d (independent
    uniform directions in each block), ∇_w Ψ(w; ρ) = E[σ'(⟨w,x⟩) x (−y + Σ_a m_a σ(⟨w'_a, x⟩))] at a neuron
    w with invariants x_b, projected on Pw/|Pw| and P⊥w/|P⊥w|, equals ∇ψ(x_b; p) (Monte Carlo in R^d);
    the reduced velocity is −2∇ψ."""
    pr = problem(40)
    d, s0 = 40, 10
    atoms = np.array([[0.6, 0.5], [1.1, 0.3], [0.4, 0.9]])
    masses = np.array([0.5, 0.3, 0.2])
    reduced = pr.potential_gradient(atoms, masses)
    rng = np.random.default_rng(7)
    n_samples, chunk = 400_000, 100_000
    neurons = np.zeros((len(atoms), d))
    neurons[:, 0], neurons[:, s0] = atoms[:, 0], atoms[:, 1]  # Pw/|Pw| = e_0, P⊥w/|P⊥w| = e_{s0}
    terms = []
    for _ in range(n_samples // chunk):
        xs, ys = pr.data.sample(chunk, rng)
        residual = -ys.copy()
        for a in range(len(atoms)):
            w2 = random_neurons(np.tile(atoms[a], (chunk, 1)), s0, d, rng)
            residual += masses[a] * pr.activation(np.einsum("nd,nd->n", w2, xs))
        slope = pr.activation.derivative(xs @ neurons.T) * residual[:, None]  # (n, atoms)
        terms.append(np.stack([slope * xs[:, [0]], slope * xs[:, [s0]]], axis=2))
    terms = np.concatenate(terms)  # (n, atoms, 2)
    mc, se = terms.mean(axis=0), terms.std(axis=0) / math.sqrt(n_samples)
    # Monte Carlo: 4 standard errors (s.e. ≈ 0.01–0.04); the series truncation of ∇ψ is far below that
    assert np.all(np.abs(reduced - mc) <= 4 * se), (reduced, mc, se)


def test_network_risk_against_monte_carlo():
    data = AnisotropicGaussianMixture(0.5, 20, 0.25)
    net = AnisotropicMixtureNetwork(data, "mmn18", kappa=1.0)
    rng = np.random.default_rng(3)
    a, w = net.initial_neurons(5, rng)
    w *= 2.0  # norms ~ 2: the MMN18 kinks at 0.5, 1.5 matter
    risk, bound = net.network_risk_and_bound(a, w)
    assert bound < 1e-10 and (risk, bound) == net.network_risk(a, w)
    n_samples, chunk, squares = 2_000_000, 250_000, []
    for _ in range(n_samples // chunk):
        xs, ys = net.sample(chunk, rng)
        squares.append((ys - net.activation(xs @ w.T).mean(axis=1)) ** 2)
    squares = np.concatenate(squares)
    mc, se = squares.mean(), squares.std() / math.sqrt(n_samples)
    assert abs(risk - mc) <= 4 * se, (risk, mc, se)  # Monte Carlo: 4 s.e. (≈ 4e-3)


def test_network_sampling_and_invariants():
    data = AnisotropicGaussianMixture(0.5, 20, 0.25)
    net = AnisotropicMixtureNetwork(data, "mmn18", kappa=0.4)
    rng = np.random.default_rng(0)
    xs, ys = net.sample(200_000, rng)
    signal_var, noise_var = xs[:, :5].var(), xs[:, 5:].var()
    # E[(1+yΔ)²] = 1 + Δ² = 1.25 and 1; s.e. of a variance estimate ≈ sqrt(2/n_entries) · var
    assert abs(signal_var - 1.25) <= 4 * math.sqrt(2 / 1e6) * 1.25 * 1.5
    assert abs(noise_var - 1.0) <= 4 * math.sqrt(2 / 3e6) * 1.5
    a, w = net.initial_neurons(7, rng)
    assert np.all(a == 1.0) and w.shape == (7, 20)
    inv = net.invariants(a, w)
    np.testing.assert_allclose(inv, np.stack([np.linalg.norm(w[:, :5], axis=1),
                                              np.linalg.norm(w[:, 5:], axis=1)], axis=1), rtol=1e-15)
    np.testing.assert_allclose(np.hypot(inv[:, 0], inv[:, 1]), np.linalg.norm(w, axis=1), rtol=1e-14)


# ---- initial law ------------------------------------------------------------------------------------
def test_initial_law_finite_d_and_infinite_d():
    pr = problem(40, kappa=0.4)
    law = pr.initial_law()
    edges = [np.linspace(0.0, 1.5, 61), np.linspace(0.0, 1.5, 41)]
    masses = law.cell_masses(edges)
    assert masses.shape == (60, 40) and np.all(masses >= 0)
    assert abs(masses.sum() - 1.0) <= 1e-12  # the cut-off tails are < 1e-12 (checked by cell_masses)
    u = np.array([[0.1, 0.9], [0.5, 0.5], [0.97, 0.02]])
    q = law.quantile(u)
    scale = 0.4 / math.sqrt(40)
    np.testing.assert_allclose(q[:, 0], stats.chi(10, scale=scale).ppf(u[:, 0]), rtol=1e-14)
    np.testing.assert_allclose(q[:, 1], stats.chi(30, scale=scale).ppf(u[:, 1]), rtol=1e-14)
    with pytest.raises(ValueError, match="grid.r1"):
        law.cell_masses([np.linspace(0.0, 0.2, 5), np.linspace(0.0, 1.5, 5)])
    # d = ∞: the point mass (κ√γ, κ√(1−γ))
    law_inf = problem(INF, kappa=0.4).initial_law()
    atom = (0.4 * math.sqrt(0.25), 0.4 * math.sqrt(0.75))
    np.testing.assert_allclose(law_inf.quantile(np.array([[0.3, 0.8]]))[0], atom, rtol=1e-15)
    masses = law_inf.cell_masses([np.linspace(0.0, 1.0, 11), np.linspace(0.0, 1.0, 11)])
    assert masses.sum() == 1.0 and masses[int(atom[0] / 0.1), int(atom[1] / 0.1)] == 1.0


def test_initial_particles_of_both_samplings():
    from solvers.lagrangian import initial_particles

    pr = problem(40, kappa=0.4)
    for sampling in ("quantile", "gauss"):
        x, m = initial_particles(pr, 64, sampling=sampling)
        assert x.shape == (64, 2) and abs(m.sum() - 1.0) < 1e-14 and np.all(x > 0)
    x, m = initial_particles(pr, 400, sampling="gauss")
    # mean of r1 = κ E[χ_10]/√d: Gauss–Legendre in the probability variable, error << 1e-4 at 20 nodes
    assert abs(m @ x[:, 0] - stats.chi(10, scale=0.4 / math.sqrt(40)).mean()) < 1e-4
    x, m = initial_particles(problem(INF), 64, sampling="gauss")
    assert x.shape == (1, 2) and m.tolist() == [1.0]


# ---- solvers ----------------------------------------------------------------------------------------
def _solver_problem():
    # d = 40, κ = 1 (initial std of r1, r2 ≈ 0.11: resolvable on a grid), tolerance 1e-4 (K = 12)
    return problem(40, kappa=1.0, truncation_tolerance=1e-4)


def test_finite_volume_and_lagrangian_agree_on_the_risk():
    """Measured (d = 40, κ = 1, t = 1): R_h = 0.197460 (24²), 0.195434 (48²); particles 0.194237 (8²),
    0.194289 (16²): |R_particles − R_{h/2}| = 1.1e-3 against R_h − R_{h/2} = 2.0e-3."""
    from solvers.finite_volume import FiniteVolumeSolver
    from solvers.lagrangian import solve_lagrangian
    from solvers.tensor_grid import TensorGrid

    pr = _solver_problem()
    risks = []
    for cells in (24, 48):
        grid = TensorGrid.uniform(r1=(0.0, 1.8, cells), r2=(0.0, 1.8, cells))
        solver = FiniteVolumeSolver(pr, grid, scheme="muscl", cfl=0.4)
        mass0, history = float(solver.masses.sum()), [solver.observables()["risk"]]
        for t in np.linspace(0.1, 1.0, 10):
            solver.advance(float(t))
            history.append(solver.observables()["risk"])
        assert abs(float(solver.masses.sum()) - mass0) <= 1e-13  # conservative fluxes: round-off
        # R_h is non-increasing up to the O(dt²) per-step increase the scheme bounds (module doc)
        assert np.all(np.diff(history) <= 1e-10 * abs(history[0]))
        risks.append(history[-1])
    grid_error = abs(risks[0] - risks[1])  # R_{h} − R_{h/2} bounds the error of R_{h/2} (order >= 1)
    lag = [solve_lagrangian(pr, [0.0, 1.0], n_particles=n, sampling="gauss", rtol=1e-9).risk[-1]
           for n in (64, 256)]
    particle_error = abs(lag[0] - lag[1])  # 8×8 vs 16×16 Gauss nodes
    assert abs(lag[1] - risks[1]) <= 2.0 * grid_error + 2.0 * particle_error, (risks, lag)


def test_finite_volume_short_run_is_dissipative_and_conservative():
    from solvers.finite_volume import FiniteVolumeSolver
    from solvers.tensor_grid import TensorGrid

    pr = _solver_problem()
    grid = TensorGrid.uniform(r1=(0.0, 1.8, 16), r2=(0.0, 1.8, 16))
    solver = FiniteVolumeSolver(pr, grid, scheme="muscl", cfl=0.4)
    mass0, history = float(solver.masses.sum()), [solver.observables()["risk"]]
    for t in (0.02, 0.05, 0.1):
        solver.advance(t)
        history.append(solver.observables()["risk"])
    assert abs(float(solver.masses.sum()) - mass0) <= 1e-13  # conservative fluxes: round-off
    assert np.all(np.diff(history) <= 1e-10 * abs(history[0])) and history[-1] < history[0]


# ---- the model plug-in ------------------------------------------------------------------------------
def _inputs(model, **overrides):
    inputs = {table: {key: key_spec.default for key, key_spec in keys.items()}
              for table, keys in model.schema.items()}
    for field, value in overrides.items():
        table, key = field.split(".")
        inputs[table][key] = model.schema[table][key].check(field, value)
    return inputs


def test_model_plugin_builds_problem_network_grid():
    model = get_model("anisotropic_gaussian_mixture")
    inputs = _inputs(model, **{"data.dimension": 40, "activation.name": "mmn18", "activation.t1": 0.4})
    pr = model.build_problem(inputs)
    assert pr.coordinate_names == ("r1", "r2") and pr.signal_dimension == 10
    assert pr.activation.config()["t1"] == 0.4
    net = model.network(inputs, 40)
    assert net.dimension == 40 and net.trains_second_layer is False and net.on_sphere is False
    grid = model.default_grid(pr, inputs, 32)
    assert set(grid) == {"r1", "r2"} and all(g["lower"] == 0.0 and g["cells"] == 32 for g in grid.values())
    law = pr.initial_law()
    masses = law.cell_masses([np.linspace(0, grid[n]["upper"], 33) for n in ("r1", "r2")])
    assert abs(masses.sum() - 1.0) < 1e-12
    assert model.describe(inputs) == "anisotropic mixture, d = 40, γ = 0.25, Δ = 0.5"
    inf_inputs = _inputs(model, **{"data.dimension": "inf"})
    assert model.build_problem(inf_inputs).interaction_low_rank(POINTS).rank == 2
    with pytest.raises(ValueError, match="activation 'relu'"):
        model.build_problem(_inputs(model, **{"activation.name": "relu", "activation.t1": 0.4}))


@pytest.mark.parametrize("build, field", [
    (lambda: AnisotropicGaussianMixture(1.0, 40, 0.25), "data.delta"),
    (lambda: AnisotropicGaussianMixture(-0.1, 40, 0.25), "data.delta"),
    (lambda: AnisotropicGaussianMixture(0.5, 40, 0.33), "data.signal_fraction × data.dimension"),
    (lambda: AnisotropicGaussianMixture(0.5, 40, 0.025), "data.signal_fraction × data.dimension"),
    (lambda: AnisotropicGaussianMixture(0.5, 40, 0.975), "data.signal_fraction × data.dimension"),
    (lambda: AnisotropicGaussianMixture(0.5, 3, 0.5), "data.dimension"),
    (lambda: AnisotropicGaussianMixture(0.5, 40, 1.0), "data.signal_fraction"),
    (lambda: problem(40, kappa=0.0), "initial.kappa"),
    (lambda: problem(40, kappa=-1.0), "initial.kappa"),
    (lambda: problem(40, hermite_degree=3), "reduction.hermite_degree"),
    (lambda: problem(40, truncation_tolerance=0.0), "reduction.truncation_tolerance"),
    (lambda: problem(INF).log_reference_density(POINTS), "noise.beta"),
])
def test_bad_input_raises_one_line_value_error(build, field):
    with pytest.raises(ValueError) as info:
        build()
    message = str(info.value)
    assert field in message and "\n" not in message


def test_schema_checks_name_the_key():
    model = get_model("anisotropic_gaussian_mixture")
    for field, value in [("data.delta", 1.5), ("data.dimension", 3), ("data.signal_fraction", 0.0),
                         ("initial.kappa", 0.0), ("reduction.hermite_degree", 5),
                         ("activation.name", "swish"), ("activation.knots", "x")]:
        table, key = field.split(".")
        with pytest.raises(ValueError, match=field.replace(".", r"\.")):
            model.schema[table][key].check(field, value)


def test_log_reference_density_finite_d():
    pr = problem(40)
    pts = np.array([[0.5, 2.0]])
    expected = 9 * math.log(0.5) + 29 * math.log(2.0)
    np.testing.assert_allclose(pr.log_reference_density(pts), [expected], rtol=1e-15)
    pr.check_noise(10.0, 0.0)  # allowed at finite d
    with pytest.raises(ValueError, match="r1 > 0"):
        pr.log_reference_density(np.array([[0.0, 1.0]]))
