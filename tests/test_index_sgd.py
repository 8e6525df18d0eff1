"""Full-dimensional SGD (solvers/sgd.py) on the networks of the single-/multi-index models.

* the mean SGD increment is −ε N ∇R_N with R_N the exact population risk of the network (central
  finite differences of ``problem.network_risk``), in the ball with a trained second layer, for a
  multi-index target, and on the sphere (tangent projection);
* the second-layer rate multiplies a's increment only; checkpoint/resume is bitwise; the compiled
  (piecewise-linear σ) and numpy paths agree with a trained second layer;
* a short SGD run follows the reduced (a, s, r) finite-volume solution (the reduction, the time
  convention and the solver checked against an independent simulation).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reduced_pde.models.multi_index import MultiIndexNetwork, MultiIndexProblem
from reduced_pde.models.single_index import SingleIndexNetwork, SingleIndexProblem
from solvers.common import SolverError
from solvers.finite_volume import FiniteVolumeSolver
from solvers.sgd import SGDSimulation, run_sgd
from solvers.tensor_grid import GridAxis, TensorGrid


def network_of(problem):
    return MultiIndexNetwork(problem) if isinstance(problem, MultiIndexProblem) else SingleIndexNetwork(problem)


def index_sgd(problem, n_neurons, step_size, **kwargs) -> SGDSimulation:
    return SGDSimulation(network_of(problem), problem, n_neurons=n_neurons, step_size=step_size, **kwargs)


def run_index_sgd(problem, times, **kwargs):
    return run_sgd(network_of(problem), problem, times, **kwargs)


def _fd_gradient(problem, a, w, frame, h=1e-5):
    """Central finite differences of the exact network risk R_N in (a_i) and (w_i)."""
    def risk(a_, w_):
        return problem.network_risk(a_, w_, frame, tolerance=1e-14)[0]
    grad_a = np.zeros_like(a)
    grad_w = np.zeros_like(w)
    for i in range(a.size):
        e = np.zeros_like(a)
        e[i] = h
        grad_a[i] = (risk(a + e, w) - risk(a - e, w)) / (2 * h)
        for j in range(w.shape[1]):
            e = np.zeros_like(w)
            e[i, j] = h
            grad_w[i, j] = (risk(a, w + e) - risk(a, w - e)) / (2 * h)
    return grad_a, grad_w


def _mean_increment(problem, a, w, eps, batch, repeats, rate=1.0):
    """Increments of single SGD steps from the state (a, w), averaged over independent seeds:
    (mean Δa, mean Δw, their standard errors)."""
    da, dw = [], []
    for seed in range(repeats):
        sim = index_sgd(problem, a.size, eps, batch_size=batch, seed=seed, second_layer_rate=rate)
        sim.set_state({**sim.state(), "weights": w, "second_layer": a})
        sim.step(1)
        da.append(sim.second_layer - a)
        dw.append(sim.weights - w)
    da, dw = np.array(da), np.array(dw)
    return da.mean(0), dw.mean(0), da.std(0, ddof=1) / math.sqrt(repeats), dw.std(0, ddof=1) / math.sqrt(repeats)


@pytest.mark.parametrize("case", ["ball", "multi_index", "sphere"])
def test_mean_increment_is_the_population_gradient(case):
    rng = np.random.default_rng(3)
    d, n, eps = 6, 3, 1e-4
    if case == "ball":
        problem = SingleIndexProblem({"he": [0.0, 1.0, 0.5]}, "tanh", d)
        frame = np.eye(d)[0]
        w = rng.standard_normal((n, d)) / math.sqrt(d)
    elif case == "multi_index":
        problem = MultiIndexProblem({"hermite": {"1,0": 1.0, "1,1": 0.7}}, "tanh", d, index_dimension=2)
        frame = np.eye(2, d)
        w = rng.standard_normal((n, d)) / math.sqrt(d)
    else:
        problem = SingleIndexProblem({"he": [0.0, 0.0, 0.0, 1.0]}, "he3", d, sphere=True)
        frame = np.eye(d)[0]
        w = rng.standard_normal((n, d))
        w /= np.linalg.norm(w, axis=1, keepdims=True)
    a = np.array([0.8, -0.5, 1.2])
    grad_a, grad_w = _fd_gradient(problem, a, w, frame)
    expected_a = -eps * n * grad_a
    expected_w = -eps * n * grad_w
    if case == "sphere":  # tangent projection P⊥ = I − w wᵀ (renormalisation is O(ε²))
        expected_w -= w * np.sum(w * expected_w, axis=1, keepdims=True)
    mean_a, mean_w, se_a, se_w = _mean_increment(problem, a, w, eps, batch=4000, repeats=24)
    # Monte-Carlo standard error of the mean increment (24 × 4000 samples); 5 SE plus the finite-
    # difference error (~h² |R'''| ε N ≈ 1e-13) and, on the sphere, the O(ε²|g|²) ≈ 1e-7 renormalisation
    assert np.all(np.abs(mean_a - expected_a) <= 5 * se_a + 1e-12)
    slack = 2e-7 if case == "sphere" else 1e-12
    assert np.all(np.abs(mean_w - expected_w) <= 5 * se_w + slack)
    # and the test can fail: a wrong factor (e.g. forgetting N or 2) is far outside the tolerance
    assert np.max(np.abs(0.5 * expected_w - mean_w) - 5 * se_w) > 0


def test_second_layer_rate_scales_only_the_second_layer():
    problem = SingleIndexProblem({"he": [0.0, 1.0, 0.5]}, "tanh", 8, second_layer=0.3, second_layer_std=0.4)
    base = index_sgd(problem, 5, 1e-3, batch_size=7, seed=4)
    fast = index_sgd(problem, 5, 1e-3, batch_size=7, seed=4, second_layer_rate=10.0)
    a0 = base.second_layer
    base.step(1)
    fast.step(1)
    # same data, same state: the w increments are identical, the a increment is 10 times larger
    np.testing.assert_allclose(fast.weights, base.weights, rtol=0, atol=1e-15)
    np.testing.assert_allclose(fast.second_layer - a0, 10.0 * (base.second_layer - a0), rtol=1e-12)
    frozen = index_sgd(problem, 5, 1e-3, batch_size=7, seed=4, second_layer_rate=0.0)
    frozen.step(3)
    np.testing.assert_array_equal(frozen.second_layer, a0)


def test_checkpoint_resume_is_bitwise():
    problem = SingleIndexProblem("relu", "relu", 12, second_layer=0.5, second_layer_std=0.2)
    whole = index_sgd(problem, 20, 1e-3, batch_size=3, seed=9)
    whole.advance(0.5)
    first = index_sgd(problem, 20, 1e-3, batch_size=3, seed=9)
    first.advance(0.2)
    resumed = index_sgd(problem, 20, 1e-3, batch_size=3, seed=123)
    resumed.set_state(first.state())
    resumed.advance(0.5)
    np.testing.assert_array_equal(resumed.weights, whole.weights)
    np.testing.assert_array_equal(resumed.second_layer, whole.second_layer)


@pytest.mark.parametrize("batch", [1, 5])
def test_compiled_and_numpy_paths_agree_with_a_trained_second_layer(batch):
    """ReLU (piecewise linear) with a trained second layer at rate 3, weight decay and noise: the fused
    numba loop and the BLAS path see the same streams and differ only by summation order (round-off,
    ~1e-16 relative per step over 300 steps)."""
    problem = SingleIndexProblem("relu", "relu", 12, second_layer=0.5, second_layer_std=0.2)
    kwargs = dict(batch_size=batch, seed=3, second_layer_rate=3.0, weight_decay=0.2)
    compiled = index_sgd(problem, 20, 1e-3, backend="numba", **kwargs)
    blas = index_sgd(problem, 20, 1e-3, backend="numpy", **kwargs)
    a0 = compiled.second_layer
    compiled.advance(0.3)
    blas.advance(0.3)
    np.testing.assert_allclose(compiled.weights, blas.weights, rtol=0, atol=1e-10)
    np.testing.assert_allclose(compiled.second_layer, blas.second_layer, rtol=0, atol=1e-10)
    assert np.max(np.abs(compiled.second_layer - a0)) > 1e-3  # a has moved: the comparison has power


class _NoisyBall(SingleIndexProblem):
    """A ball problem that lets the engine run Langevin noise on (a, w): the reductions refuse noise
    with a trained second layer (no reference measure yet), but the engine's rule — design note §2,
    ``a ← a + G_a + sqrt(4 s c_a/β) g'`` — and its streams are model-independent and tested here."""

    def check_noise(self, beta: float, weight_decay: float) -> None:
        pass


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_noise_on_a_trained_second_layer_amplitude_and_bitwise_resume(backend):
    """One step: a(β) − a(∞) = sqrt(4 s c_a/β) g' with g' ~ N(0, 1) iid over N = 4000 neurons (sample
    variance 1 ± 4 sqrt(2/N) = 1 ± 0.09; a wrong rate factor c_a = 4 would give 4); and a run split
    into other blocks and resumed from a checkpoint is bitwise the uninterrupted one."""
    problem = _NoisyBall("relu", "relu", 8, second_layer=0.5, second_layer_std=0.2)
    beta, rate, eps = 3.0, 4.0, 1e-3
    n = 4000
    plain = index_sgd(problem, n, eps, seed=1, second_layer_rate=rate, backend=backend)
    noisy = index_sgd(problem, n, eps, seed=1, second_layer_rate=rate, backend=backend, beta=beta)
    plain.step(1)
    noisy.step(1)
    g = (noisy.second_layer - plain.second_layer) / math.sqrt(4 * eps * rate / beta)
    assert abs(g.var() - 1.0) < 4 * math.sqrt(2.0 / n) and abs(g.mean()) < 4 / math.sqrt(n)
    kwargs = dict(batch_size=3, seed=5, second_layer_rate=rate, beta=beta, weight_decay=0.1, backend=backend)
    whole = index_sgd(problem, 20, eps, **kwargs)
    whole.advance(0.2)
    first = index_sgd(problem, 20, eps, **kwargs)
    first.block_steps = 7
    first.advance(0.09)
    resumed = index_sgd(problem, 20, eps, **{**kwargs, "seed": 77})
    resumed.set_state(first.state())
    resumed.block_steps = 11
    resumed.advance(0.2)
    np.testing.assert_array_equal(resumed.weights, whole.weights)
    np.testing.assert_array_equal(resumed.second_layer, whole.second_layer)


def test_bad_inputs_are_named():
    problem = SingleIndexProblem("relu", "relu", 12)
    with pytest.raises(ValueError, match="sgd.n_neurons"):
        index_sgd(problem, 0, 1e-3)
    with pytest.raises(ValueError, match="sgd.step_size"):
        index_sgd(problem, 10, -1.0)
    with pytest.raises(ValueError, match="second_layer_rate"):
        index_sgd(problem, 10, 1e-3, second_layer_rate=-1.0)
    with pytest.raises(ValueError, match="data.dimension"):
        SingleIndexNetwork(SingleIndexProblem("relu", "relu", math.inf))
    other = MultiIndexProblem({"hermite": {"1,0": 1.0}}, "relu", 12, index_dimension=2)
    with pytest.raises(ValueError, match="network and problem of different models"):
        SGDSimulation(SingleIndexNetwork(problem), other, n_neurons=10, step_size=1e-3)
    unstable = index_sgd(problem, 10, 1e3, batch_size=1, seed=0)
    with pytest.raises(SolverError, match=r"non-finite .* \(t = .*neuron \d"), \
            np.errstate(over="ignore", invalid="ignore"):
        unstable.step(200)


def test_sgd_follows_the_reduced_solution():
    """(a, s, r), d = 10, tanh network, target h1 + h2/2·√2: SGD (N = 1500, ε/B = 1e-4) against the
    3-D finite-volume solution, t ≤ 1."""
    problem = SingleIndexProblem({"he": [0.0, 1.0, 0.5]}, "tanh", 10, second_layer=0.5, second_layer_std=0.3,
                                 truncation_tolerance=1e-3)
    times = np.array([0.0, 0.25, 0.5, 1.0])
    runs = [run_index_sgd(problem, times, n_neurons=1500, step_size=2e-3, batch_size=20, seed=seed)
            for seed in range(3)]
    sgd_risk = np.array([r.risk for r in runs])
    sgd_mean_s = np.array([r.mean_of("s") for r in runs])

    def fv(cells):
        grid = TensorGrid([GridAxis.uniform("a", -1.8, 2.8, cells), GridAxis.uniform("s", -2.5, 2.5, cells),
                           GridAxis.uniform("r", 0.0, 3.0, cells)])
        solver = FiniteVolumeSolver(problem, grid, scheme="muscl", cfl=0.4)
        out = []
        for t in times:
            solver.advance(t)
            obs = solver.observables()
            out.append((obs["risk"], obs["mean_s"]))
        return np.array(out)

    coarse, fine = fv(16), fv(32)
    fv_error = np.abs(fine - coarse)  # ≥ the error of the fine solution (second-order scheme)
    # the SGD mean over 3 seeds differs from the N = ∞, ε → 0 limit by its seed-to-seed spread
    # (standard error, 1/√N) and an O(ε/B) bias (~1e-4 here); 4 standard errors + FV error + bias
    for k, (name, values) in enumerate((("risk", sgd_risk), ("mean s", sgd_mean_s))):
        stderr = values.std(0, ddof=1) / math.sqrt(values.shape[0])
        gap = np.abs(values.mean(0) - fine[:, k])
        bound = 4 * stderr + fv_error[:, k] + 2e-3 * np.abs(fine[:, k]) + 1e-3
        assert np.all(gap <= bound), (name, gap, bound)
    # the dynamics is not trivial over the window: the risk falls by a lot more than the tolerance
    assert fine[-1, 0] < 0.8 * fine[0, 0]


def test_projected_sgd_with_trained_second_layer_follows_the_sphere_reduction():
    """Sphere with a trained second layer: coordinates (a, s), mobility (1, 1 − s²); He_2 target and
    σ = He_2 at d = 10 (exact rank-3 kernel), 2-D finite volumes against projected SGD, t <= 0.5."""
    problem = SingleIndexProblem({"name": "he", "degree": 2}, "he2", 10, sphere=True, second_layer=0.3,
                                 second_layer_std=0.2)
    assert problem.coordinate_names == ("a", "s")
    times = np.array([0.0, 0.1, 0.25, 0.5])
    runs = [run_index_sgd(problem, times, n_neurons=1500, step_size=2e-4, batch_size=20, seed=seed)
            for seed in range(3)]

    def fv(cells):
        grid = TensorGrid([GridAxis.uniform("a", -1.2, 2.0, cells), GridAxis.uniform("s", -1.0, 1.0, 2 * cells)])
        solver = FiniteVolumeSolver(problem, grid, scheme="muscl", cfl=0.4)
        out = []
        for t in times:
            solver.advance(t)
            obs = solver.observables()
            out.append((obs["risk"], obs["mean_a"], obs["std_s"]))
        return np.array(out)

    coarse, fine = fv(40), fv(80)
    sgd = np.array([[r.risk, r.mean_of("a"), r.std_of("s")] for r in runs]).transpose(0, 2, 1)
    stderr = sgd.std(0, ddof=1) / math.sqrt(sgd.shape[0])
    gap = np.abs(sgd.mean(0) - fine)
    # 99% Student-t interval of the 3-seed mean (t_{0.995,2} = 9.92) + grid error + O(ε/B) = 1e-5 bias
    bound = 9.92 * stderr + np.abs(fine - coarse) + 2e-3 * np.abs(fine) + 1e-3
    assert np.all(gap <= bound), (gap, bound)
    assert fine[-1, 0] < 0.7 * fine[0, 0]  # the second layer and s have moved: a real test
