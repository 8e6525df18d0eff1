"""``reduced-pde chaos`` through the problems' finite-width hook (ReducedProblem.finite_width): MMN18's
isotropic mixture end to end (the file against the Python API), the hook of every model, and the
refusals (a model without finite-width runs, a ``[chaos]`` key another model's runs read, noise)."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from reduced_pde.analysis.finite_width import FiniteWidth, SphereFiniteWidth
from reduced_pde.analysis.finite_width_mixture import MixtureFiniteWidth, mixture_network_flow, \
    predict_mixture_fluctuations
from reduced_pde.cli import main
from reduced_pde.models import BUILTIN, get_model, model_names
from reduced_pde.problem import NoFiniteWidth
from reduced_pde.running.chaos import plot_chaos, read_chaos
from reduced_pde.running.config import RUN_SCHEMA, build_problem, build_schedule, load_config, output_times, \
    parse_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

TINY_MIXTURE = """
[data]
model = "isotropic_gaussian_mixture"
delta = 0.5
dimension = 12
[activation]
name = "mmn18"
t1 = 0.5
t2 = 1.5
s1 = -2.5
s2 = 7.5
[initial]
kappa = 0.4
[output]
t_final = 0.3
n_outputs = 2
spacing = "linear"
[chaos]
widths = [4, 8]
seeds = [0, 1, 2]
dt = 0.1
min_substeps = 2
nodes = 32
atoms = 2
r_nodes = 6
c_nodes = 4
"""


def _one_line_refusal(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_cli_chaos_on_the_mixture_matches_the_python_api(tmp_path, capsys):
    """The file of ``reduced-pde chaos`` on a tiny mixture configuration holds what the Python API
    computes with the same settings (the same arithmetic: agreement to round-off, rtol 1e-12), the
    coordinates and the configuration; e(0) = c(0) is the variance of one neuron's output; the twins
    start on their neurons; ``read_chaos`` and ``plot_chaos`` read it."""
    config_path = tmp_path / "mixture.toml"
    config_path.write_text(TINY_MIXTURE)
    output, figure = tmp_path / "out.h5", tmp_path / "out.png"
    assert main(["chaos", str(config_path), "-o", str(output), "--figure", str(figure), "--quiet"]) == 0
    assert figure.stat().st_size > 0

    config = load_config(config_path)
    problem, times = build_problem(config), output_times(config)
    runs = mixture_network_flow(problem, [4, 8], [0, 1, 2], times, dt=0.1, min_substeps=2, nodes=32,
                                schedule=build_schedule(config))
    prediction = predict_mixture_fluctuations(problem, times, atoms=2, r_nodes=6, c_nodes=4, dt=0.1,
                                              min_substeps=2, schedule=build_schedule(config))
    with h5py.File(output, "r") as file:
        assert file.attrs["kind"] == "chaos"
        assert file.attrs["config.data.model"] == "isotropic_gaussian_mixture"
        assert file.attrs["config.chaos.r_nodes"] == 6 and file.attrs["config.chaos.min_substeps"] == 2
        assert list(file["width"][()]) == [4, 8] and list(file["seed"][()]) == [0, 1, 2]
        assert np.allclose(file["time"][()], times, rtol=0, atol=0)
        for name in ("function_gap_squared", "network_risk", "twin_fluctuation", "coupling_mean", "coupling_rms",
                     "coupling_quantiles"):
            assert file[name].shape[:3] == (2, 3, 3)
            np.testing.assert_allclose(file[name][()], getattr(runs, name), rtol=1e-12, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(file["mean_field_risk"][()], runs.mean_field_risk, rtol=1e-12)
        for name, values in (("function_gap", prediction.function_gap), ("risk_excess", prediction.risk_excess),
                             ("mean_field_risk", prediction.mean_field_risk)):
            np.testing.assert_allclose(file[f"prediction/{name}"][()], values, rtol=1e-12, err_msg=name)
        assert file["prediction"].attrs["r_nodes"] == 6
        # the twins start on their neurons (w̄_i(0) = |w_i(0)| w_i(0)/|w_i(0)|: round-off only)
        assert np.all(file["coupling_mean"][..., 0] < 1e-12)
        assert np.all(file["coupling_mean"][..., 1:] > 0)
        assert np.all(file["coupling_rms"][()] >= file["coupling_mean"][()] - 1e-15)  # rms >= mean
        assert np.all(np.diff(file["coupling_quantiles"][()], axis=-1) >= 0)  # quantiles ordered
    # at t = 0, ε ↦ R((1 − ε)ν_0 + εδ_w) is quadratic with ½R'' = ‖∂_ε f‖², so e(0) = c(0) for any rule;
    # what separates them is the second difference's round-off, ~1e-16 R/ε² = 1e-10 (ε = 1e-3)
    assert prediction.risk_excess[0] == pytest.approx(prediction.function_gap[0], abs=1e-8)
    data = read_chaos(output)
    assert data["runs"].function_gap_squared.shape == (2, 3, 3) and data["prediction"] is not None
    assert plot_chaos(output, tmp_path / "again.png").exists()


def test_every_model_declares_its_finite_width_runs():
    """A model with a ``chaos`` line has a problem whose hook is a FiniteWidth (the shipped chaos
    configurations); one without raises NoFiniteWidth (its base configuration); the keys a hook reads
    are keys of the [chaos] table."""
    configs = {"single_index_sphere": "chaos_sphere_he4", "circle_sphere": "chaos_sphere_circle",
               "isotropic_gaussian_mixture": "chaos_mmn18", "single_index": "relu_single_index",
               "multi_index": "multi_index", "anisotropic_gaussian_mixture": "anisotropic_mixture"}
    builtin = sorted(name for name in model_names() if type(get_model(name)).__module__ in BUILTIN)
    assert sorted(configs) == builtin, "add the new model's configuration here"
    kinds = {"single_index_sphere": SphereFiniteWidth, "circle_sphere": SphereFiniteWidth,
             "isotropic_gaussian_mixture": MixtureFiniteWidth}
    for name, config_name in configs.items():
        problem = build_problem(load_config(CONFIGS / f"{config_name}.toml"))
        if get_model(name).chaos:
            hook = problem.finite_width()
            assert isinstance(hook, kinds[name]) and isinstance(hook, FiniteWidth)
            assert hook.chaos_keys <= set(RUN_SCHEMA["chaos"])
        elif name == "single_index":  # the same problem class in the ball: a named refusal, not NoFiniteWidth
            with pytest.raises(ValueError, match="single_index_sphere"):
                problem.finite_width()
        else:
            with pytest.raises(NoFiniteWidth):
                problem.finite_width()


def test_chaos_keys_of_other_models_and_unsupported_models_are_refused(tmp_path, capsys):
    mixture = tmp_path / "mixture.toml"
    mixture.write_text(TINY_MIXTURE)
    sphere = str(CONFIGS / "chaos_sphere_he4.toml")
    out = ["-o", str(tmp_path / "c.h5"), "--check"]
    err = _one_line_refusal(["chaos", str(mixture), *out, "--set", "chaos.s_nodes=8"], capsys)
    assert "chaos.s_nodes = 8" in err and "isotropic_gaussian_mixture" in err and "r_nodes" in err
    err = _one_line_refusal(["chaos", sphere, *out, "--set", "chaos.r_nodes=8"], capsys)
    assert "chaos.r_nodes = 8" in err and "single_index_sphere" in err
    err = _one_line_refusal(["chaos", sphere, *out, "--set", "chaos.min_substeps=2"], capsys)
    assert "chaos.min_substeps" in err
    err = _one_line_refusal(["chaos", str(mixture), *out, "--set", "chaos.angle_nodes=4"], capsys)
    assert "chaos.angle_nodes" in err
    # a key no run reads is refused by every command, not only by chaos
    err = _one_line_refusal(["pde", sphere, *out, "--set", "chaos.c_nodes=3"], capsys)
    assert "chaos.c_nodes" in err
    # a model without finite-width runs: named, with the models that have them
    err = _one_line_refusal(["chaos", str(CONFIGS / "anisotropic_mixture.toml"), *out], capsys)
    assert "data.model = 'anisotropic_gaussian_mixture'" in err
    for having in ("circle_sphere", "isotropic_gaussian_mixture", "single_index_sphere"):
        assert having in err
    err = _one_line_refusal(["chaos", str(CONFIGS / "multi_index.toml"), *out, "--set", "chaos.widths=[4]"], capsys)
    assert "data.model = 'multi_index'" in err
    # the runs are the noiseless flow; the mixture's pair kernel needs two neurons
    err = _one_line_refusal(["chaos", str(mixture), *out, "--set", "noise.beta=10.0"], capsys)
    assert "noise.beta" in err
    err = _one_line_refusal(["chaos", str(mixture), *out, "--widths", "1", "4"], capsys)
    assert "chaos.widths" in err
    err = _one_line_refusal(["chaos", str(mixture), *out, "--set", "chaos.min_substeps=0"], capsys)
    assert "chaos.min_substeps = 0" in err


def test_mixture_resources_and_check(tmp_path, capsys):
    """``--check`` reports the mixture's estimate; the estimate grows like S N² and refuses what is
    really large (RK4 steps Σ max(min_substeps, ⌈Δt/dt⌉) over the output intervals, exactly)."""
    from reduced_pde.running.resources import demands

    config = load_config(CONFIGS / "chaos_mmn18.toml")
    items = {d.what: d for d in demands(config, "chaos")}
    steps = items["RK4 steps"].amount
    times = output_times(config)
    expected = sum(max(3, math.ceil((b - a) / 0.1 - 1e-12)) for a, b in zip(times[:-1], times[1:]))
    assert steps == expected
    assert main(["chaos", str(CONFIGS / "chaos_mmn18.toml"), "-o", str(tmp_path / "c.h5"), "--check"]) == 0
    assert "valid for chaos" in capsys.readouterr().out
    huge = parse_config({**config, "chaos": {**config["chaos"], "widths": [200_000]}}, check_machine=False)
    from reduced_pde.running.resources import check_resources

    with pytest.raises(ValueError, match="chaos.widths"):
        check_resources(huge, ("chaos",))
