"""SGD seeds batched as one simulation (solvers.sgd.SGDSeedBatch, run_sgd_seeds(batched=True),
pipeline.run_sgd_seed_batch, ``sgd.batch_seeds``) and the sphere step folded into its second GEMM.

Batching keeps every seed's own streams and sends every seed through the same BLAS calls and compiled
functions as its run alone, so the expected difference from separate runs is zero: the comparisons are
bitwise (``array_equal``), for each backend and route of the engine (compiled numba kernel; BLAS with
the compiled pass in the ball, with noise, weight decay and float32; the numpy pass of a smooth σ with
a trained, noisy second layer; the sphere with and without noise)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from reduced_pde import IsotropicGaussianMixture, IsotropicMixtureRadialProblem
from reduced_pde.models.isotropic_mixture import IsotropicMixtureNetwork
from reduced_pde.models.single_index import SingleIndexNetwork, SingleIndexProblem
from reduced_pde.schedules import LearningRateSchedule
from solvers.sgd import SGDSeedBatch, SGDSimulation, run_sgd, run_sgd_seeds

SEEDS = [5, 7, 9]
TIMES = [0.0, 0.013, 0.1, 0.3]  # 300 steps of ε = 1e-3: crosses the sphere's fold every 256 steps


class _NoisyBall(SingleIndexProblem):
    """A ball problem that lets the engine run Langevin noise on (a, w) (the reductions refuse noise with
    a trained second layer; the engine's streams and update are model-independent)."""

    def check_noise(self, beta: float, weight_decay: float) -> None:
        pass


def _case(name: str):
    """(network, problem, SGDSimulation keyword arguments) of one engine route."""
    if name.startswith("mmn18"):
        problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, 12), "mmn18", kappa=0.5)
        network = IsotropicMixtureNetwork(problem)
        options = {"mmn18-numba": dict(batch_size=3, backend="numba"),
                   "mmn18-numpy": dict(batch_size=10, backend="numpy",
                                       schedule=LearningRateSchedule(xi0=1.0, alpha=0.5, t0=0.1)),
                   "mmn18-noise-float32": dict(batch_size=10, backend="numpy", beta=20.0, weight_decay=0.3,
                                               precision="float32")}[name]
    elif name == "tanh-trained-noisy":
        problem = _NoisyBall({"name": "he", "degree": 2}, "tanh", 8, second_layer=0.5, second_layer_std=0.2)
        network = SingleIndexNetwork(problem)
        options = dict(batch_size=4, beta=5.0, weight_decay=0.1, second_layer_rate=2.0)
    else:
        problem = SingleIndexProblem({"name": "he", "degree": 4}, "he4", 12, sphere=True, train_second_layer=False)
        network = SingleIndexNetwork(problem)
        options = {"sphere-he4": dict(batch_size=6), "sphere-he4-float32": dict(batch_size=6, precision="float32"),
                   "sphere-he4-noise": dict(batch_size=6, beta=30.0)}[name]
    return network, problem, {"n_neurons": 16, "step_size": 1e-3, **options}


@pytest.mark.parametrize("name", ["mmn18-numba", "mmn18-numpy", "mmn18-noise-float32", "tanh-trained-noisy",
                                  "sphere-he4", "sphere-he4-float32", "sphere-he4-noise"])
def test_batched_seeds_are_bitwise_their_separate_runs(name: str) -> None:
    network, problem, options = _case(name)
    batch = SGDSeedBatch(network, problem, seeds=SEEDS, **options)
    alone = [SGDSimulation(network, problem, seed=seed, **options) for seed in SEEDS]
    start = alone[0].weights
    for t in TIMES:
        batch.advance(t)
        for sim in alone:
            sim.advance(t)
        for member, sim in zip(batch.members, alone):
            assert member.steps == sim.steps == round(t / 1e-3)
            assert np.array_equal(member.weights, sim.weights), (name, t, member.seed)
            assert np.array_equal(member.second_layer, sim.second_layer)
    assert not np.allclose(batch.members[0].weights, batch.members[1].weights)  # the seeds differ
    assert not np.allclose(batch.members[0].weights, start)  # and the weights moved


class _MemoryStore:
    """A checkpoint store in memory (solvers import no file formats)."""

    def __init__(self) -> None:
        self.saved = None

    def exists(self) -> bool:
        return self.saved is not None

    def load(self):
        return copy.deepcopy(self.saved)

    def save(self, partial, state, next_output) -> None:
        self.saved = copy.deepcopy((partial, state, next_output))


def test_run_sgd_seeds_batched_equals_separate_runs_and_resumes_members_at_different_outputs() -> None:
    """run_sgd_seeds(batched=True) gives each seed's trajectory bitwise as run_sgd; resumed from per-seed
    checkpoints written at different outputs (seed 5 after output 1, seed 7 after output 2, seed 9
    none), the batch brings the members together and ends bitwise the same."""
    network, problem, options = _case("sphere-he4")
    times = [0.0, 0.05, 0.1, 0.2]
    separate = [run_sgd(network, problem, times, seed=seed, **options) for seed in SEEDS]
    batched = run_sgd_seeds(network, problem, times, seeds=SEEDS, batched=True, **options)
    stores = [_MemoryStore(), _MemoryStore(), _MemoryStore()]
    run_sgd(network, problem, times[:2], seed=SEEDS[0], checkpoint=stores[0], **options)
    run_sgd(network, problem, times[:3], seed=SEEDS[1], checkpoint=stores[1], **options)
    resumed = run_sgd_seeds(network, problem, times, seeds=SEEDS, batched=True, checkpoints=stores,
                            resume=[True, True, False], **options)
    assert stores[2].exists() and stores[2].saved[2] == len(times)  # every member checkpointed at the end
    for one, two, three in zip(separate, batched, resumed):
        for other in (two, three):
            assert np.array_equal(one.time, other.time) and np.array_equal(one.risk, other.risk)
            assert np.array_equal(one.fields["points"], other.fields["points"])
            assert one.config == other.config
    assert not np.array_equal(separate[0].risk, separate[1].risk)


def test_batch_refuses_bad_seeds_and_members_at_different_steps() -> None:
    network, problem, options = _case("mmn18-numpy")
    with pytest.raises(ValueError, match=r"sgd.seeds = \[\]"):
        SGDSeedBatch(network, problem, seeds=[], **options)
    with pytest.raises(ValueError, match=r"sgd.seeds = \[1, 1\] repeats a seed"):
        SGDSeedBatch(network, problem, seeds=[1, 1], **options)
    batch = SGDSeedBatch(network, problem, seeds=[1, 2], **options)
    batch.step(3, members=[1])
    with pytest.raises(ValueError, match=r"members at different steps \[0, 3\]"):
        batch.step(1)
    with pytest.raises(ValueError, match=r"members = \[2\]"):
        batch.step(1, members=[2])
    batch.advance(0.01)
    assert batch.steps == [10, 10]
    with pytest.raises(ValueError, match=r"processes = 2 with batched = True"):
        run_sgd_seeds(network, problem, [0.01], seeds=[1, 2], batched=True, processes=2, **options)
    with pytest.raises(ValueError, match=r"checkpoints and resume go with batched = True"):
        run_sgd_seeds(network, problem, [0.01], seeds=[1, 2], resume=True, **options)


# ---- the sphere step: tangent projection and retraction folded into the second GEMM ------------------
@pytest.mark.parametrize("batch_size", [2, 10])
def test_sphere_step_folded_into_the_gemm_matches_the_explicit_projection(batch_size: int) -> None:
    """He_4 on the sphere, a fixed, no noise: the deferred normalisation (W += Xᵀ G' in place, the new
    norms from the B × B Gram matrix (B = 2: B²(N + d) <= dN) or from one pass over W (B = 10), applied
    every 256 steps and at the end of step()) against the explicit route (Xᵀ G into a buffer, then
    projection and retraction, solvers.sgd._project_and_retract) on the same data, 600 steps.

    They differ by round-off only, but the escape from s ≈ 0 amplifies any difference like the signal
    itself (measured: float64 differences 2e-16 after one step, 1.4e-14 to 6e-14 after 600).  So:
    float64 <= 1e-12; float32 differences scale with the unit round-off, 2^29 times float64's (measured
    0.6 to 1.4 times that), asserted within 10 times that.  The weights move by O(1) (the comparison has
    power) and the columns are unit to rounding (float64 1e-14, float32 3e-7)."""
    problem = SingleIndexProblem({"name": "he", "degree": 4}, "he4", 40, sphere=True, train_second_layer=False)
    network = SingleIndexNetwork(problem)
    differences = {}
    for precision in ("float64", "float32"):
        options = dict(n_neurons=30, step_size=2e-4, batch_size=batch_size, seed=3, precision=precision)
        folded, explicit = SGDSimulation(network, problem, **options), SGDSimulation(network, problem, **options)
        explicit._deferred = False
        start = folded.weights
        for n_steps in (100, 200, 300):
            folded.step(n_steps)
            explicit.step(n_steps)
        assert folded._deferred
        differences[precision] = np.abs(folded.weights - explicit.weights).max()
        assert np.abs(folded.weights - start).max() > 0.3
        unit = 1e-14 if precision == "float64" else 3e-7
        assert np.abs(np.linalg.norm(folded.weights, axis=1) - 1.0).max() <= unit
    assert 0 < differences["float64"] <= 1e-12
    assert differences["float32"] <= 10 * 2.0**29 * differences["float64"], differences


def test_sphere_fold_falls_back_to_the_explicit_route_for_a_step_of_the_order_of_w() -> None:
    """_between_gemms: when some c_i = ⟨w_i, u_i⟩ ≥ 1/2 the seed is marked for the explicit route and its
    G is left as computed; otherwise G is rescaled by 1/(scale_i (1 − c_i))."""
    from solvers.sgd import _between_gemms

    rng = np.random.default_rng(1)
    batch, n = 3, 5
    he = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    fused = (0.0, 0.0, np.zeros(0), np.zeros(0), he, np.polynomial.hermite_e.hermeder(he))
    for step_scale, expect_explicit in ((1e-4, False), (1e3, True)):
        z = rng.standard_normal((1, batch, n))
        z0 = z.copy()
        g = np.empty_like(z)
        weight_scale = np.full((1, n), 1.25)
        tangent, explicit = np.zeros((1, n)), np.zeros(1, dtype=np.bool_)
        y = np.ones((1, batch))
        a = np.ones((1, n))
        assert _between_gemms(np.zeros(1, np.int64), z, a, y, step_scale, 1.0 / n, *fused, g, np.zeros((1, 0)),
                              np.empty((4, n)), True, False, np.zeros((1, batch, 7)), weight_scale, tangent,
                              explicit) == -1
        zt = 1.25 * z0[0]
        features = zt**4 - 6 * zt**2 + 3
        residual = 1.0 - features.mean(axis=1)
        expected_g = step_scale * residual[:, None] * (4 * zt**3 - 12 * zt)
        c = (expected_g * zt).sum(axis=0)
        assert explicit[0] == expect_explicit and explicit[0] == bool(np.any(1 - c <= 0.5))
        np.testing.assert_allclose(tangent[0], c, rtol=1e-12)
        expected = expected_g if expect_explicit else expected_g / (1.25 * (1 - c))
        np.testing.assert_allclose(g[0], expected, rtol=1e-12, atol=1e-300)


def test_pipeline_batch_writes_the_separate_runs_results(tmp_path) -> None:
    """pipeline.run_sgd_seed_batch (what `experiment` runs with sgd.batch_seeds = true) gives each seed's
    trajectory and stored configuration as run_sgd_seed, bitwise, and writes per-seed checkpoints."""
    from reduced_pde.running.config import parse_config
    from reduced_pde.running.pipeline import checkpoint_path, run_sgd_seed, run_sgd_seed_batch

    config = parse_config({"data": {"model": "isotropic_gaussian_mixture", "dimension": 10},
                           "output": {"t_final": 0.05, "n_outputs": 3, "spacing": "linear"},
                           "sgd": {"n_neurons": 12, "step_size": 1e-3, "batch_size": 10, "seeds": [1, 2],
                                   "batch_seeds": True}})
    paths = [tmp_path / f"seed{s}.h5" for s in (1, 2)]
    batched = run_sgd_seed_batch(config, [1, 2], checkpoints=[checkpoint_path(p) for p in paths], progress=False)
    assert all(checkpoint_path(p).exists() for p in paths)
    for seed, trajectory in zip((1, 2), batched):
        alone = run_sgd_seed(config, seed, progress=False)
        assert np.array_equal(alone.risk, trajectory.risk) and np.array_equal(alone.time, trajectory.time)
        assert np.array_equal(alone.fields["points"], trajectory.fields["points"])
        assert alone.config == trajectory.config and trajectory.config["sgd.seeds"] == [seed]
    assert not math.isclose(batched[0].risk[-1], batched[1].risk[-1])


EXPERIMENT = """
[data]
dimension = 10
[initial]
kappa = 0.5
[output]
t_final = 0.05
n_outputs = 3
spacing = "linear"
[pde]
solver = "lagrangian"
n_particles = 50
[sgd]
n_neurons = 12
step_size = 1e-3
batch_size = 10
seeds = [3, 4]
"""


def test_experiment_command_with_batched_seeds_writes_the_same_seed_files(tmp_path) -> None:
    """`reduced-pde experiment` with sgd.batch_seeds = true writes each seed's file with bitwise the
    trajectory of the separate runs (the stored configurations differ only in sgd.batch_seeds)."""
    from reduced_pde.cli import main
    from reduced_pde.running.storage import read_trajectory

    path = tmp_path / "run.toml"
    path.write_text(EXPERIMENT)
    for name, flag in (("separate", "false"), ("batched", "true")):
        assert main(["experiment", str(path), "--outdir", str(tmp_path / name), "--quiet", "--processes", "1",
                     "--set", f"sgd.batch_seeds={flag}"]) == 0
    for seed in (3, 4):
        one, two = (read_trajectory(tmp_path / name / f"run_sgd_seed{seed}.h5") for name in ("separate", "batched"))
        assert np.array_equal(one.risk, two.risk) and np.array_equal(one.fields["points"], two.fields["points"])
        assert two.config["sgd.batch_seeds"] is True and one.config["sgd.batch_seeds"] is False
        assert {k: v for k, v in one.config.items() if k != "sgd.batch_seeds"} == \
               {k: v for k, v in two.config.items() if k != "sgd.batch_seeds"}
    assert (tmp_path / "batched" / "risk.png").exists()
