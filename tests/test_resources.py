"""reduced_pde.resources: the shipped configurations and the user's result files are found from any
working directory (notebooks rely on it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import reduced_pde
from reduced_pde.resources import config_path, configs_dir, find_results

ROOT = Path(__file__).resolve().parents[1]


def test_configs_are_package_data(monkeypatch, tmp_path) -> None:
    """reduced_pde/configs is the repository's configs/ (a link that setuptools copies into the
    wheel: pyproject declares the *.toml files package data), found from any directory."""
    monkeypatch.chdir(tmp_path)
    assert configs_dir().resolve() == (ROOT / "configs").resolve()
    assert (ROOT / "reduced_pde" / "configs").resolve() == (ROOT / "configs").resolve()
    with open(ROOT / "pyproject.toml", "rb") as file:
        package_data = tomllib.load(file)["tool"]["setuptools"]["package-data"]
    assert package_data["reduced_pde.configs"] == ["*.toml"]
    assert config_path("mmn18_quick") == config_path("mmn18_quick.toml") == configs_dir() / "mmn18_quick.toml"
    assert reduced_pde.config_path is config_path


def test_config_path_names_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"name = 'nope' is not a shipped configuration; allowed: \[.*'mmn18_quick'"):
        config_path("nope")
    with pytest.raises(TypeError, match="non-empty string"):
        config_path("")


def test_find_results_looks_in_the_environment_then_upwards(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("REDUCED_PDE_RESULTS", raising=False)
    work = tmp_path / "project" / "notebooks"
    work.mkdir(parents=True)
    assert find_results(("figure", "quick"), start=work) is None
    quick = tmp_path / "project" / "results" / "quick"
    quick.mkdir(parents=True)
    assert find_results(("figure", "quick"), start=work) is None          # no *.h5 there yet
    (quick / "run_pde.h5").touch()
    assert find_results(("figure", "quick"), start=work) == quick         # the Quickstart's, from ../
    figure = tmp_path / "project" / "results" / "figure"
    figure.mkdir()
    (figure / "run_pde.h5").touch()
    assert find_results(("figure", "quick"), start=work) == figure        # the full run first
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.h5").touch()
    monkeypatch.setenv("REDUCED_PDE_RESULTS", str(elsewhere))
    assert find_results(("figure", "quick"), start=work) == elsewhere
    with pytest.raises(TypeError, match="sequence of directory names"):
        find_results("figure")


def test_every_shipped_configuration_passes_its_own_checks():
    """Each configs/*.toml validates, with its resource checks, for the commands its tables name (the
    SGD checks when it has an [sgd] table; every case of its [sweep]): a shipped file that its own
    command would refuse (an SGD step longer than its first output interval, say) is a defect."""
    from reduced_pde.running.config import load_config, sweep_cases
    from reduced_pde.running.resources import check_resources

    paths = sorted(configs_dir().glob("*.toml"))
    assert len(paths) >= 15
    for path in paths:
        raw = tomllib.loads(path.read_text())
        config = load_config(path)
        if "chaos" in raw:
            check_resources(config, ("chaos",))  # its finite-width runs' own estimate (FiniteWidth.costs)
            continue
        commands = ("pde", "sgd") if "sgd" in raw else ("pde",)
        for _, case in sweep_cases(config):
            check_resources(case, commands)


def test_batched_seeds_hold_every_seed_in_memory():
    """sgd.batch_seeds: an experiment advances its S seeds as one simulation (S copies of W, the
    pre-activations, the data block and the records), so the SGD memory estimate is S times one seed's;
    steps and work are per seed (the seeds advance together), unchanged."""
    from reduced_pde.running.config import load_config
    from reduced_pde.running.resources import check_resources

    overrides = ["sgd.seeds=[0, 1, 2, 3, 4]", "sgd.n_neurons=100"]
    one, batched = (check_resources(load_config(configs_dir() / "mmn18_quick.toml",
                                                overrides + [f"sgd.batch_seeds={flag}"]), ("sgd",))
                    for flag in ("false", "true"))
    memory = [sum(d.amount for d in demands if d.kind == "memory") for demands in (one, batched)]
    assert memory[1] == pytest.approx(5 * memory[0], rel=1e-12)
    assert [d.amount for d in one if d.kind != "memory"] == [d.amount for d in batched if d.kind != "memory"]
    assert all("sgd.batch_seeds = true with 5 sgd.seeds" in d.field for d in batched if d.kind == "memory")
