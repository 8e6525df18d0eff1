"""The model plug-in contract: a model written in one place (here, in the test) runs through the whole
pipeline — configuration checks, finite volumes, characteristics, storage — with no edit anywhere
else, and its keys are checked like every other model's."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from reduced_pde.initial_laws import GaussianBump
from reduced_pde.models import get_model, model_names, register
from reduced_pde.models.base import Inputs, Key, Model, positive
from reduced_pde.problem import NoInteraction, ReducedProblem
from reduced_pde.running.config import flatten, parse_config, unflatten
from reduced_pde.running.pipeline import run_pde


class HarmonicProblem(NoInteraction, ReducedProblem):
    """v(r) = (c/2) r² on r ∈ [0, ∞), no interaction: dr/dt = −2ξ c r, so r(t) = r(0) e^{−2ct} exactly
    and the mean of the law decays like e^{−2ct} (design note §6: a linear velocity field)."""

    coordinate_names = ("r",)

    def __init__(self, stiffness: float, mean: float, std: float) -> None:
        self.stiffness, self.law = stiffness, GaussianBump(mean, std)

    @property
    def target_second_moment(self) -> float:
        return 0.0

    def domain(self) -> tuple[tuple[float, float], ...]:
        return ((0.0, math.inf),)

    def reduced_potential(self, points: np.ndarray) -> np.ndarray:
        return 0.5 * self.stiffness * np.asarray(points, dtype=float) ** 2

    def reduced_potential_gradient(self, points: np.ndarray) -> np.ndarray:
        return self.stiffness * np.asarray(points, dtype=float)

    def initial_law(self) -> GaussianBump:
        return self.law

    def config(self) -> dict[str, Any]:
        return {"problem": "harmonic", "stiffness": self.stiffness}


@register
class HarmonicModel(Model):
    name = "test_harmonic"
    summary = "a confining quadratic potential without interaction (exact solution)"
    schema = {"data": {"stiffness": Key(1.0, positive, "c")},
              "initial": {"mean": Key(1.0, positive, "mean of r(0)"), "std": Key(0.1, positive, "std of r(0)")}}

    def build_problem(self, inputs: Inputs) -> HarmonicProblem:
        return HarmonicProblem(inputs["data"]["stiffness"], inputs["initial"]["mean"], inputs["initial"]["std"])

    def network(self, inputs: Inputs, dimension: int) -> Any:
        raise ValueError("the harmonic test model has no full-dimensional network")

    def dimension(self, inputs: Inputs) -> float:
        return math.inf

    def default_grid(self, problem: ReducedProblem, inputs: Inputs, cells: int) -> dict[str, dict[str, Any]]:
        return {"r": {"lower": 0.0, "upper": inputs["initial"]["mean"] + 8 * inputs["initial"]["std"], "cells": cells}}


RAW = {"data": {"model": "test_harmonic", "stiffness": 0.5},
       "output": {"t_final": 1.0, "n_outputs": 4, "spacing": "linear"}}


def test_registry_lists_the_model_and_refuses_unknown_names() -> None:
    assert "test_harmonic" in model_names() and "isotropic_gaussian_mixture" in model_names()
    assert isinstance(get_model("test_harmonic"), HarmonicModel)
    with pytest.raises(ValueError, match="data.model = 'nope' is not known; allowed: .*'test_harmonic'"):
        get_model("nope")


def test_a_new_model_runs_through_the_pipeline_against_its_exact_solution() -> None:
    """Characteristics: the mean follows m0 e^{−2ct} to the ODE tolerance (rtol 1e-10: measured
    ≤ 1e-9 relative).  Finite volumes (MUSCL): the error in the mean decreases at least like h^1.5
    from 100 to 200 cells (design order 2, the limiter clips at the law's edges)."""
    times = np.linspace(0.0, 1.0, 5)
    particles = run_pde(parse_config({**RAW, "pde": {"solver": "lagrangian", "n_particles": 200, "rtol": 1e-10}}),
                        progress=False)
    mean0 = particles.mean_of("r")[0]
    assert np.allclose(particles.mean_of("r"), mean0 * np.exp(-2 * 0.5 * times), rtol=1e-8, atol=0)
    errors = []
    for cells in (100, 200):
        grid = run_pde(parse_config({**RAW, "grid": {"cells": cells}}), progress=False)
        exact = grid.mean_of("r")[0] * np.exp(-2 * 0.5 * times)
        errors.append(np.max(np.abs(grid.mean_of("r") - exact)))
        assert grid.kind == "pde_finite_volume" and grid.coordinates == ("r",)
        assert np.allclose(grid.fields["mass"], 1.0, rtol=0, atol=1e-13)
    assert errors[1] < errors[0] / 2 ** 1.5, errors


def test_the_new_model_keys_are_checked_and_stored_like_any_other() -> None:
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['kappa'\] in \[initial\] for data.model = 'test_harmonic'"):
        parse_config({**RAW, "initial": {"kappa": 0.4}})
    with pytest.raises(ValueError, match="data.stiffness = -1 must be a finite number > 0"):
        parse_config({"data": {"model": "test_harmonic", "stiffness": -1}})
    with pytest.raises(ValueError, match="unknown configuration table"):
        parse_config({**RAW, "activation": {"name": "relu"}})  # the model declares no activation
    config = parse_config(RAW)
    assert unflatten(flatten(config)) == config
