"""Configuration validation, HDF5 round trips, atomic writes, checkpoint/resume and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from reduced_pde.cli import main
from reduced_pde.running.pipeline import run_pde
from reduced_pde.running.config import load_config, sweep_cases
from reduced_pde.running.storage import read_trajectory, write_trajectory
from solvers.results import Trajectory

SMALL = """
[data]
delta = 0.5
dimension = 40
[initial]
kappa = 0.4
[output]
t_final = 2.0
n_outputs = 8
t_first = 0.01
[grid]
r = {lower = 0.0, upper = 4.0, cells = 120}
[sgd]
n_neurons = 40
step_size = 1e-3
batch_size = 4
seeds = [0, 1]
[sweep]
"initial.kappa" = [0.2, 0.4]
"""


@pytest.fixture()
def small_config(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


@pytest.mark.parametrize("override, message", [
    ("pde.cfl=0.9", r"pde.cfl = 0.9 must lie in \(0, 0.5\]"),
    ("sgd.n_neurons=-5", "sgd.n_neurons = -5 must be an integer >= 1"),
    ("data.dimension=1", "data.dimension = 1 must be an integer >= 2 or \"inf\""),
    ("activation.name='softsign'", "activation.name = 'softsign' is not known"),
    ("pde.scheme='weno'", "pde.scheme = 'weno'; allowed"),
    ("output.spacing='cubic'", "output.spacing"),
    ("reduction.hermite_degree=3", "reduction.hermite_degree = 3 must be \"auto\" or an even integer"),
    ("reduction.truncation_tolerance=-1", "reduction.truncation_tolerance = -1 must be a finite number > 0"),
    ("pde.solver='lagrangian'", "grid. applies to pde.solver = 'finite_volume'"),
])
def test_invalid_configuration_names_field_value_and_allowed(small_config: Path, override: str,
                                                             message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(small_config, [override])


def test_unknown_keys_and_tables_are_refused(tmp_path: Path, small_config: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[pde]\ncels = 10\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['cels'\] in \[pde\]"):
        load_config(path)
    path.write_text("[solver]\nx = 1\n")
    with pytest.raises(ValueError, match="unknown configuration table"):
        load_config(path)
    # the same typo through --set is refused the same way (it used to be stored and ignored)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['n_particle'\] in \[pde\]"):
        load_config(small_config, ["pde.n_particle=3"])
    with pytest.raises(ValueError, match="unknown configuration table"):
        load_config(small_config, ["solver.x=1"])


@pytest.mark.parametrize("raw, message", [
    # a key of the other solver, given explicitly, would be ignored: refused
    ({"pde": {"solver": "lagrangian", "cfl": 0.3}}, "pde.cfl applies to pde.solver = 'finite_volume'"),
    ({"pde": {"cells": 100}}, r"unknown key\(s\) \['cells'\] in \[pde\]"),
    # keys the sphere model does not read are refused (they used to be recorded and dropped)
    ({"data": {"model": "single_index_sphere", "dimension": 10, "target": {"he": [0, 0, 1]}},
      "initial": {"kappa": 0.4}}, r"unknown key\(s\) \['kappa'\] in \[initial\]"),
    ({"data": {"model": "single_index", "dimension": 10, "target": {"he": [0, 0, 1]}},
      "network": {"train_second_layer": False, "second_layer_rate": 10.0}}, "needs network.train_second_layer"),
    ({"data": {"model": "single_index", "dimension": 10}}, "data.target is required"),
    ({"pde": {"solver": "lagrangian", "rtol": 1e-16}}, "below the integrator's floor"),
    ({"data": {"model": "mmn19"}}, "data.model = 'mmn19' is not known; allowed"),
    ({"data": {"dimension": "inf"}, "noise": {"beta": 10.0}}, "data.dimension = inf is refused"),
    ({"data": {"model": "single_index", "dimension": 10, "target": {"he": [0, 0, 1]}}, "noise": {"beta": 10.0}},
     "noise .* is not available for the reduction"),
])
def test_every_key_changes_the_run_or_is_refused(raw: dict, message: str) -> None:
    from reduced_pde.running.config import parse_config

    with pytest.raises(ValueError, match=message):
        parse_config(raw)


def test_truncation_tolerance_reaches_the_isotropic_reduction(small_config: Path) -> None:
    """reduction.truncation_tolerance changes the MMN18 kernel's truncation degree (it used to be ignored)."""
    from reduced_pde.running.config import build_problem

    loose = build_problem(load_config(small_config, ["reduction.truncation_tolerance=1e-2"]))
    tight = build_problem(load_config(small_config, ["reduction.truncation_tolerance=1e-12"]))
    points = np.linspace(0.05, 4.0, 50)
    assert loose.interaction_low_rank(points).rank < tight.interaction_low_rank(points).rank


def test_stored_inputs_rebuild_the_configuration(small_config: Path) -> None:
    """flatten → HDF5 attributes → unflatten gives back the validated configuration exactly."""
    from reduced_pde.running.config import flatten, unflatten

    for _, case in sweep_cases(load_config(small_config, ["reduction.hermite_degree=8"])):
        assert unflatten(flatten(case)) == case


def test_a_stored_configuration_with_an_older_default_is_read() -> None:
    """A file holds every key with the defaults of the version that wrote it: an MMN18 run stored when
    chaos.q_nodes defaulted to 4 (the committed figures/data files) is rebuilt as stored, while the same key
    in user input is refused (the mixture's finite-width runs do not read it)."""
    from reduced_pde.running.config import flatten, parse_config, unflatten

    config = parse_config({"data": {"model": "isotropic_gaussian_mixture", "delta": 0.5, "dimension": 40}})
    flat = {**flatten(config), "chaos.q_nodes": 4}
    assert unflatten(flat)["chaos"]["q_nodes"] == 4
    with pytest.raises(ValueError, match=r"chaos.q_nodes = 4 is not read"):
        parse_config({"data": {"model": "isotropic_gaussian_mixture", "delta": 0.5, "dimension": 40},
                      "chaos": {"q_nodes": 4}})


def test_cli_reports_config_error_with_status_2(small_config: Path, capsys) -> None:
    assert main(["pde", str(small_config), "--set", "grid.cells=2", "--quiet"]) == 2
    assert "grid.cells = 2" in capsys.readouterr().err


def test_sweep_expands_cases(small_config: Path) -> None:
    cases = sweep_cases(load_config(small_config))
    assert [label for label, _ in cases] == ["kappa=0.2", "kappa=0.4"]
    assert [case["initial"]["kappa"] for _, case in cases] == [0.2, 0.4]


def test_hdf5_round_trip_keeps_arrays_and_configuration(tmp_path: Path) -> None:
    trajectory = Trajectory("sgd", [0.0, 1.0], [2.0, 1.0], ("r",), [0.4, 0.5], [0.01, 0.02],
                            network_risk=[2.5, 1.2], fields={"norms": np.arange(6.0).reshape(2, 3)},
                            derived={"solver.dt": 1e-3},
                            config={"data.dimension": float("inf"), "sgd.seeds": [0, 1], "activation.name": "relu",
                                    "activation.t1": None},  # None reads back as None
                            diagnostics={"steps": 10})
    path = write_trajectory(tmp_path / "out.h5", trajectory)
    back = read_trajectory(path)
    np.testing.assert_array_equal(back.fields["norms"], trajectory.fields["norms"])
    np.testing.assert_array_equal(back.risk, trajectory.risk)
    np.testing.assert_array_equal(back.network_risk, trajectory.network_risk)
    np.testing.assert_array_equal(back.mean, trajectory.mean)
    assert back.coordinates == ("r",) and back.derived == trajectory.derived
    assert back.config == trajectory.config and back.kind == "sgd" and back.diagnostics["steps"] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # no temporary left behind


def test_failed_write_leaves_previous_file_intact(tmp_path: Path) -> None:
    good = Trajectory("sgd", [0.0], [1.0], ("r",), [0.1], [0.0], config={"x": 1})
    path = write_trajectory(tmp_path / "out.h5", good)
    bad = Trajectory("sgd", [0.0], [1.0], ("r",), [0.1], [0.0], config={"x": object()})  # unstorable attribute
    with pytest.raises(TypeError):
        write_trajectory(path, bad)
    assert read_trajectory(path).config == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_pde_cli_writes_file_with_full_configuration(small_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "pde.h5"
    assert main(["pde", str(small_config), "-o", str(out), "--quiet", "--set", "grid.r.cells=100"]) == 0
    with h5py.File(out) as file:
        assert {"time", "risk", "mean", "std"} <= set(file)
        assert json.loads(file.attrs["config.grid.r"][len("json:"):])["cells"] == 100
        assert file.attrs["config.data.delta"] == 0.5
        assert file["fields/density"].shape == (9, 100)
    trajectory = read_trajectory(out)
    assert np.all(np.diff(trajectory.risk) <= 1e-12)  # noiseless dynamics: risk non-increasing


def test_pde_checkpoint_resume_matches_uninterrupted_run(small_config: Path, tmp_path: Path) -> None:
    config = load_config(small_config, ["output.n_outputs=6"])
    reference = run_pde(config, progress=False)
    checkpoint = tmp_path / "run.checkpoint"
    partial_config = load_config(small_config, ["output.n_outputs=6"])
    # An interrupted run: advance through the first outputs only, checkpointing after each.
    from reduced_pde.running.config import flatten, output_times
    from reduced_pde.running.pipeline import make_pde_solver
    from reduced_pde.running.storage import CheckpointFile
    from solvers.controller import run_simulation

    def fresh():
        return make_pde_solver(partial_config)[0]  # the solver run_pde builds
    times = output_times(partial_config)
    run_simulation(fresh(), times[:4], kind="pde_finite_volume", config=flatten(partial_config),
                   checkpoint=CheckpointFile(checkpoint), checkpoint_every=0.0)
    resumed = run_simulation(fresh(), times, kind="pde_finite_volume", config=flatten(partial_config),
                             checkpoint=CheckpointFile(checkpoint), resume=True)
    np.testing.assert_array_equal(resumed.time, reference.time)
    np.testing.assert_allclose(resumed.risk, reference.risk, rtol=0, atol=0)
    np.testing.assert_allclose(resumed.fields["density"], reference.fields["density"], rtol=0, atol=0)


def test_sgd_checkpoint_resume_through_files_is_bitwise_identical(small_config: Path, tmp_path: Path) -> None:
    """An SGD run interrupted after some outputs and resumed from its HDF5 checkpoint (weights, step
    counter, RNG states stored as JSON) ends with exactly the weights of an uninterrupted run."""
    from reduced_pde.running.config import build_problem, build_schedule, flatten, output_times
    from reduced_pde.running.storage import CheckpointFile
    from solvers.controller import run_simulation
    from reduced_pde.models.isotropic_mixture import IsotropicMixtureNetwork
    from solvers.sgd import SGDSimulation

    config = load_config(small_config, ["output.t_final=0.05", "output.n_outputs=5"])

    def fresh() -> SGDSimulation:
        problem = build_problem(config)
        return SGDSimulation(IsotropicMixtureNetwork(problem), problem, n_neurons=40, step_size=1e-3, batch_size=4,
                             schedule=build_schedule(config), seed=7)

    times = output_times(config)
    reference_sim = fresh()
    reference = run_simulation(reference_sim, times, kind="sgd", config=flatten(config))
    checkpoint = tmp_path / "sgd.checkpoint"
    run_simulation(fresh(), times[:3], kind="sgd", config=flatten(config), checkpoint=CheckpointFile(checkpoint),
                   checkpoint_every=0.0)
    resumed_sim = fresh()
    resumed = run_simulation(resumed_sim, times, kind="sgd", config=flatten(config),
                             checkpoint=CheckpointFile(checkpoint), resume=True)
    np.testing.assert_array_equal(resumed_sim.weights, reference_sim.weights)
    np.testing.assert_array_equal(resumed.risk, reference.risk)
    np.testing.assert_array_equal(resumed.fields["points"], reference.fields["points"])


SPHERE = """
[data]
model = "single_index_sphere"
dimension = 10
target = {name = "he", degree = 2}
[activation]
name = "he2"
[noise]
beta = 5.0
[output]
t_final = 4.0
n_outputs = 4
spacing = "linear"
[grid]
cells = 200
[sgd]
n_neurons = 400
step_size = 1e-3
batch_size = 32
seeds = [3]
"""


def test_sphere_single_index_model_through_the_cli(tmp_path: Path) -> None:
    """data.model = "single_index_sphere": `pde` (sphere Fokker–Planck), `sgd` (projected noisy SGD) and
    `gibbs` from one TOML file; the target table survives the HDF5 round trip."""
    config = tmp_path / "sphere.toml"
    config.write_text(SPHERE)
    for command in (["pde", str(config), "-o", str(tmp_path / "pde.h5")],
                    ["sgd", str(config), "-o", str(tmp_path / "sgd.h5")],
                    ["gibbs", str(config), "-o", str(tmp_path / "gibbs.h5")]):
        assert main(command + ["--quiet"] * (command[0] != "gibbs")) == 0
    pde, sgd = read_trajectory(tmp_path / "pde.h5"), read_trajectory(tmp_path / "sgd.h5")
    assert pde.config["data.target"] == {"name": "he", "degree": 2}
    assert pde.coordinates == ("s",) and pde.derived["problem"] == "single_index_sphere"
    with h5py.File(tmp_path / "gibbs.h5") as file:
        fixed_point_risk = float(file["risk"][0])
    # relaxation at d = 10, β = 5 is fast: by t = 4 the PDE sits on p* (measured gap 4e-12)
    assert abs(pde.risk[-1] - fixed_point_risk) < 1e-8
    # std of s over N = 400 iid-like neurons: s.e. ≈ σ/√(2N) = 0.021; 4 s.e. + minibatch temperature bias
    # (δ ≈ 0.4% at ε/B = 3e-5, tests/test_noisy_sgd.py) ≈ 0.09
    assert abs(sgd.std_of("s")[-1] - pde.std_of("s")[-1]) < 4 * pde.std_of("s")[-1] / np.sqrt(800) + 0.005
    assert sgd.fields["points"].shape == (5, 400, 1)


def test_sphere_model_requires_a_target(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(SPHERE.replace('target = {name = "he", degree = 2}\n', ""))
    with pytest.raises(ValueError, match="data.target is required"):
        load_config(path)
    path.write_text(SPHERE.replace("single_index_sphere", "two_moons"))
    with pytest.raises(ValueError, match="data.model = 'two_moons' is not known"):
        load_config(path)
