"""Run configurations: one schema, one validation, for TOML files and ``--set`` overrides alike.

A configuration is a TOML file of tables.  ``[data] model = "..."`` names a registered model
(:mod:`reduced_pde.models`; default ``"isotropic_gaussian_mixture"``), which declares the keys of its
own tables (``[data]``, ``[activation]``, ``[initial]``, ``[network]``, ``[reduction]``); the run
tables are the same for every model::

    [schedule]  xi0 = 1.0, alpha = 0.0, t0 = 1.0        # ξ(t) = xi0 (1 + t/t0)^(−alpha)
    [output]    t_final = 100.0, n_outputs = 60, spacing = "log", t_first = 1e-3, law_times = []
    [pde]       solver = "finite_volume"                 # or "lagrangian" (characteristics)
                scheme = "muscl", cfl = 0.4, kernel = "low_rank", time_stepping = "auto"  # finite volumes
                n_particles = 400, sampling = "quantile", ode_method = "DOP853", rtol = 1e-9  # lagrangian
    [grid]      cells = 400                              # cells of every axis the model lays out itself
                r = {lower = 0.0, upper = 4.0, cells = 1600}   # an explicit axis per coordinate (optional)
                adapt = "none"                           # "remap": one axis follows the law (adapt_tail, adapt_margin, adapt_narrowing); "move": and its cells move with it
    [noise]     beta = "inf", weight_decay = 0.0
    [sgd]       n_neurons = 800, step_size = 1e-4, batch_size = 10, seeds = [0, 1, 2], dimension = "data"
    [sweep]     "initial.kappa" = [0.1, 0.4]             # experiment: one run per value

Every key is checked (type, finiteness, range) before any work: an unknown table or key, in the file
or in ``--set table.key=value``, is refused the same way, naming the key and what is allowed for this
model; a key of the other PDE solver is refused rather than ignored.

The validated configuration is kept in its input form (``config[table][key]``, JSON-like values, every
default filled in), so that :func:`flatten` / :func:`unflatten` store and rebuild it exactly;
:func:`resolved` gives the parsed values the builders use.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from reduced_pde.models import get_model
from reduced_pde.models.base import (
    Key,
    Model,
    Table,
    integer_at_least,
    non_negative,
    one_of,
    positive,
)
from reduced_pde.problem import ReducedProblem
from reduced_pde.schedules import LearningRateSchedule

__all__ = ["DEFAULT_MODEL", "RUN_SCHEMA", "load_config", "parse_config", "validate_config", "schema_of",
           "model_of", "resolved", "build_problem", "build_schedule", "grid_table", "coordinate_rates",
           "noise_parameters", "uses_fokker_planck", "pde_solver_name", "output_times", "flatten", "unflatten",
           "sgd_config", "sweep_cases", "apply_overrides", "finite_width_hook"]

DEFAULT_MODEL = "isotropic_gaussian_mixture"

#: the smallest relative tolerance scipy's solve_ivp honours (it raises smaller ones to this floor)
RTOL_FLOOR = 100 * np.finfo(float).eps


def _model_name(field: str, value: Any) -> str:
    get_model(value)
    return value


def _beta(field: str, value: Any) -> float:
    if isinstance(value, str) and value.lower() in {"inf", "infinity"}:
        return math.inf
    return positive(field, value)


def _rtol(field: str, value: Any) -> float:
    x = positive(field, value)
    if x > 0.1:
        raise ValueError(f"{field} = {value!r} must be <= 0.1 (a relative tolerance; larger ones give no accuracy)")
    if x < RTOL_FLOOR:
        raise ValueError(f"{field} = {value!r} is below the integrator's floor {RTOL_FLOOR:.3g} "
                         "(100 machine epsilons); use a value >= it")
    return x


#: the smallest CFL number: the step count grows like 1/cfl (1e-4 is 4000 times the default's)
CFL_FLOOR = 1e-4


def _cfl(field: str, value: Any) -> float:
    x = positive(field, value)
    if x > 0.5:
        raise ValueError(f"{field} = {value!r} must lie in (0, 0.5] (positivity bound of the scheme)")
    if x < CFL_FLOOR:
        raise ValueError(f"{field} = {value!r} must be >= {CFL_FLOOR:g} (the number of steps grows like 1/cfl)")
    return x


def _particles(field: str, value: Any) -> int | list[int]:
    if isinstance(value, list):
        if not value or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in value):
            raise ValueError(f"{field} = {value!r} must be an integer >= 1 or a list of them (one per coordinate)")
        return list(value)
    return integer_at_least(1)(field, value)


def _law_times(field: str, value: Any) -> list[float]:
    if not (isinstance(value, list) and all(isinstance(t, (int, float)) and not isinstance(t, bool)
                                            and math.isfinite(t) and t >= 0 for t in value)):
        raise ValueError(f"{field} = {value!r} must be a list of times >= 0")
    return [float(t) for t in value]


#: the largest seed: results store seeds as 64-bit integers (HDF5 attributes, numpy int64)
MAX_SEED = 2**63 - 1


def _seeds(field: str, value: Any) -> list[int]:
    if not (isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool)
                                                      and 0 <= s <= MAX_SEED for s in value)):
        raise ValueError(f"{field} = {value!r} must be a non-empty list of integers in [0, 2**63 - 1]")
    _distinct(field, value, "seed", "the same run twice would count as two independent runs")
    return list(value)


def _widths(field: str, value: Any) -> list[int]:
    if not (isinstance(value, list) and value and all(isinstance(m, int) and not isinstance(m, bool) and m >= 1
                                                      for m in value)):
        raise ValueError(f"{field} = {value!r} must be a non-empty list of integers >= 1")
    _distinct(field, value, "width", "the same networks would be run twice")
    return list(value)


def _distinct(field: str, value: list[int], what: str, why: str) -> None:
    """Refuse a list with a repeated entry (a repeated seed would shrink the standard error of a seed mean
    by counting one network or run twice)."""
    repeated = sorted(v for v, count in Counter(value).items() if count > 1)
    if repeated:
        raise ValueError(f"{field} = {value!r} repeats the {what}(s) {repeated}: {why}; list each {what} once")


def _extra_mass(field: str, value: Any) -> float:
    """The mass ε of the extra neuron of the 1/m prediction: the other neurons keep 1 − ε, so ε < 1; a
    central difference in ε, so small (<= 0.1)."""
    x = positive(field, value)
    if x > 0.1:
        raise ValueError(f"{field} = {value!r} must lie in (0, 0.1] (the mass of one extra neuron, taken "
                         "from the law's 1 − ε, in a central difference)")
    return x


def _threads(field: str, value: Any) -> int:
    x = integer_at_least(0)(field, value)
    if x > 1024:
        raise ValueError(f"{field} = {value!r} must be an integer in [0, 1024] (BLAS threads; 0: the process "
                         "default)")
    return x


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{field} = {value!r} must be true or false")
    return value


def _sgd_dimension(field: str, value: Any) -> str | int:
    if value == "data":
        return value
    return integer_at_least(2)(field, value)


def _solver_methods() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from solvers.lagrangian import METHODS, SAMPLINGS

    return SAMPLINGS, METHODS


def _sampling(field: str, value: Any) -> str:
    return one_of(*_solver_methods()[0])(field, value)


def _ode_method(field: str, value: Any) -> str:
    return one_of(*_solver_methods()[1])(field, value)


#: the tables every model shares (the model adds its own, :attr:`Model.schema`)
def _predict_until(field: str, value: Any) -> Any:
    """``"t_final"`` or a finite time > 0 (the prediction's rules resolve a window; later outputs get NaN)."""
    if value == "t_final":
        return value
    return positive(field, value)


RUN_SCHEMA: dict[str, dict[str, Key]] = {
    "data": {"model": Key(DEFAULT_MODEL, _model_name, "registered model (reduced-pde models)")},
    "schedule": {"xi0": Key(1.0, positive, "ξ(0)"), "alpha": Key(0.0, non_negative, "decay exponent of ξ"),
                 "t0": Key(1.0, positive, "decay time of ξ")},
    "output": {"t_final": Key(100.0, positive, "last output time"),
               "n_outputs": Key(60, integer_at_least(1), "number of output times after t = 0"),
               "spacing": Key("log", one_of("log", "linear"), "output time spacing"),
               "t_first": Key(1e-3, positive, "first output time (log spacing)"),
               "law_times": Key([], _law_times, "panels of the law figure (experiment)")},
    "pde": {"solver": Key("finite_volume", one_of("finite_volume", "lagrangian"), "reduced solver"),
            "scheme": Key("muscl", one_of("upwind", "muscl"), "finite volumes: order 1 or 2"),
            "cfl": Key(0.4, _cfl, "finite volumes: CFL number in (0, 0.5]"),
            "kernel": Key("low_rank", one_of("low_rank", "dense"), "finite volumes: interaction"),
            "time_stepping": Key("auto", one_of("auto", "explicit", "implicit"),
                                 "finite volumes: implicit routes to the Scharfetter–Gummel solver"),
            "n_particles": Key(400, _particles, "characteristics: particles (per coordinate: a list)"),
            "sampling": Key("quantile", _sampling, "characteristics: quantile, sobol or gauss particles"),
            "ode_method": Key("DOP853", _ode_method, "characteristics: solve_ivp method"),
            "rtol": Key(1e-9, _rtol, "characteristics: relative tolerance (atol = 1e-3 rtol)")},
    "noise": {"beta": Key("inf", _beta, "inverse temperature β (\"inf\": no noise)"),
              "weight_decay": Key(0.0, non_negative, "λ")},
    "sgd": {"n_neurons": Key(800, integer_at_least(1), "N"), "step_size": Key(1e-4, positive, "ε"),
            "batch_size": Key(10, integer_at_least(1), "B"), "seeds": Key([0, 1, 2], _seeds, "one run per seed"),
            "dimension": Key("data", _sgd_dimension, "\"data\" or the d of full-dimensional SGD")},
    "chaos": {"widths": Key([64, 256, 1024], _widths, "finite widths m (reduced-pde chaos)"),
              "seeds": Key([0, 1, 2, 3, 4, 5, 6, 7], _seeds, "networks per width, batched"),
              "dt": Key(1e-3, positive, "RK4 step bound of the m-neuron flow and the prediction"),
              "nodes": Key(1024, integer_at_least(2), "quadrature nodes of the mean-field flow in its invariant (s, p, r)"),
              "predict": Key(True, _flag, "also compute the 1/m prediction e(t), c(t)"),
              "atoms": Key(64, integer_at_least(1), "prediction: nodes of the extra neuron's invariant"),
              "s_nodes": Key(256, integer_at_least(2), "prediction, sphere models only: nodes in s (or p)"),
              "q_nodes": Key(8, integer_at_least(2), "prediction, sphere models only: nodes in q (> the kernel's degree: docs §3.1)"),
              "angle_nodes": Key(16, integer_at_least(2), "prediction, circle_sphere only: nodes of the in-plane angle"),
              "r_nodes": Key(48, integer_at_least(2), "prediction, isotropic mixture only: nodes in the radius"),
              "c_nodes": Key(16, integer_at_least(2), "prediction, isotropic mixture only: nodes in the cosine to the atom"),
              "min_substeps": Key(4, integer_at_least(1),
                                  "isotropic mixture only: RK4 sub-steps per output interval, at least"),
              "predict_until": Key("t_final", _predict_until, "prediction only at output times <= this (\"t_final\": all)"),
              "epsilon": Key(1e-3, _extra_mass, "prediction: mass of the extra neuron (central differences)"),
              "atom_rule": Key("quantile", one_of("quantile", "adapted"),
                               "prediction: rule of the extra neuron's s_w (\"adapted\": Gauss–Kronrod panels on the escape fronts)"),
              "monitor_nodes": Key(2048, integer_at_least(2), "prediction, atom_rule = adapted: nodes of the flow map placing the panels")},
}
#: keys of ``[pde]`` that belong to one solver only (given for the other, they are refused)
SOLVER_KEYS = {"finite_volume": {"scheme", "cfl", "kernel", "time_stepping"},
               "lagrangian": {"n_particles", "sampling", "ode_method", "rtol"}}
#: the largest |bound| of a grid axis (second moments of the law stay far from overflow)
_GRID_BOUND = 1e100
GRID_CELLS = Key(400, integer_at_least(3), "cells of each axis the model lays out itself")
#: scalar keys of ``[grid]`` besides ``cells``: the adapted grid (solvers.adaptive_grid; README, Performance)
GRID_ADAPT = {"adapt": Key("none", one_of("none", "remap", "move"),
                           "\"remap\": N cells on a window that follows the law; \"move\": the window's cells also "
                           "move affinely with the law between remaps"),
              "adapt_tail": Key(1e-6, positive, "remap: mass τ beyond each end of the law's core"),
              "adapt_margin": Key(0.25, positive, "remap: the window extends the core by this share on each side"),
              "adapt_narrowing": Key(0.8, non_negative, "remap: refine when the core spans fewer cells than this share")}

#: SGD speed (README "Performance"): float32 products, BLAS threads (threadpoolctl; 0 = process default)
RUN_SCHEMA["sgd"].update(
    precision=Key("float64", one_of("float64", "float32"), "W and the two matrix products of a step"),
    threads=Key(0, _threads, "BLAS threads while stepping (0: the process default; at most 1024)"),
    batch_seeds=Key(False, _flag, "experiment: each case's seeds as one simulation (a leading seed axis)"))


def _device(field: str, value: Any) -> str:
    from reduced_pde.analysis.finite_width_torch import check_device_name

    return check_device_name(value, field)


#: where the m-neuron flow of ``reduced-pde chaos`` runs (README "Finite width", GPU backend)
RUN_SCHEMA["chaos"].update(
    backend=Key("numpy", one_of("numpy", "torch"), "m-neuron flow: NumPy (default) or PyTorch (pip install \".[gpu]\")"),
    device=Key("cpu", _device, "torch backend: 'cpu', 'cuda' or 'cuda:<index>'"),
    precision=Key("float64", one_of("float64", "float32"), "torch backend: float32 without TF32, or float64"))


def schema_of(model: Model) -> dict[str, dict[str, Key] | Table]:
    """The full schema of a run of ``model``: :data:`RUN_SCHEMA` and the model's tables."""
    tables: dict[str, dict[str, Key] | Table] = {name: dict(keys) for name, keys in RUN_SCHEMA.items()}
    for name, keys in model.schema.items():
        if isinstance(keys, Table):
            tables[name] = keys
        else:
            merged = dict(tables.get(name, {}))  # type: ignore[arg-type]
            merged.update(keys)
            tables[name] = merged
    return tables


def model_of(config: Mapping[str, Any]) -> Model:
    return get_model(config["data"]["model"])


# ---- reading --------------------------------------------------------------------------------------
def _read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ValueError(f"configuration file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"configuration file {str(path)!r} is a directory") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"configuration file {str(path)!r} is not UTF-8 text: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"configuration file {str(path)!r} is not valid TOML: {error}") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``raw`` with ``table.key=value`` strings applied (value parsed as TOML, else kept as a string);
    the result goes through the same checks as the file (unknown keys refused the same way)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        table, dot, name = key.partition(".")
        if not sep or not dot or not table or not name:
            raise ValueError(f"--set {item!r} must look like table.key=value")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        target = raw.setdefault(table, {})
        if not isinstance(target, dict):
            raise ValueError(f"--set {item!r}: [{table}] is not a table in this configuration")
        if len(name) >= 2 and name[0] == name[-1] == '"':  # a quoted key, e.g. sweep."initial.kappa"
            target[name[1:-1]] = value
        elif "." in name:  # a key inside a sub-table, e.g. grid.r.cells
            sub, _, leaf = name.partition(".")
            inner = target.setdefault(sub, {})
            if not isinstance(inner, dict):
                raise ValueError(f"--set {item!r}: {table}.{sub} is not a table")
            inner[leaf] = value
        else:
            target[name] = value
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a TOML file, apply ``table.key=value`` overrides, fill defaults and validate."""
    return parse_config(apply_overrides(_read_toml(path), overrides or []))


def parse_config(raw: Mapping[str, Any], *, check_machine: bool = True, stored: bool = False) -> dict[str, Any]:
    """Check every table and key of ``raw`` against the model's schema and fill the defaults;
    returns the configuration in its input form (see the module docstring).  Raises ValueError with
    a one-line message naming the field, its value and what is allowed.  ``check_machine``: also
    refuse a run this machine cannot hold (:func:`~reduced_pde.running.resources.check_resources`;
    off when rebuilding a stored run for analysis).  ``stored``: the configuration of a file this package
    wrote (:func:`unflatten`), which holds every key with the defaults of the version that wrote it — the
    ``[chaos]`` keys of a run that is not a chaos run are kept as stored, not refused as unread (a file written
    before ``chaos.q_nodes``'s default went from 4 to 8 holds 4)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"a configuration must be a table, got {raw!r}")
    data = raw.get("data", {})
    if not isinstance(data, Mapping):
        raise ValueError(f"[data] must be a table, got {data!r}")
    model = get_model(data.get("model", DEFAULT_MODEL))
    schema = schema_of(model)
    allowed_tables = sorted({*schema, "grid", "sweep"})
    unknown = sorted(set(raw) - set(allowed_tables))
    if unknown:
        raise ValueError(f"unknown configuration table(s) {unknown} for data.model = {model.name!r}; "
                         f"allowed: {allowed_tables}")
    config: dict[str, Any] = {}
    for table, keys in schema.items():
        given = raw.get(table, {})
        if not isinstance(given, Mapping):
            raise ValueError(f"[{table}] must be a table, got {given!r}")
        if isinstance(keys, Table):
            value = {**keys.default, **given} if given else dict(keys.default)
            keys.check(table, value)
            config[table] = value
            continue
        extra = sorted(set(given) - set(keys))
        if extra:
            raise ValueError(f"unknown key(s) {extra} in [{table}] for data.model = {model.name!r}; "
                             f"allowed: {sorted(keys)}")
        values = {}
        for name, key in keys.items():
            value = given.get(name, key.default)
            key.check(f"{table}.{name}", value)
            values[name] = copy.deepcopy(value)
        config[table] = values
    config["grid"] = _grid_inputs(raw.get("grid", {}))
    config["sweep"] = _sweep_inputs(raw.get("sweep", {}), schema)
    _check_run(config, raw, model, check_machine, stored)
    # keep only what this run uses: the other solver's keys (and the grid of a particle run) are gone
    solver = config["pde"]["solver"]
    unused = set().union(*(keys for name, keys in SOLVER_KEYS.items() if name != solver))
    config["pde"] = {key: value for key, value in config["pde"].items() if key not in unused}
    if solver != "finite_volume":
        config["grid"] = {}
    return config


def _grid_inputs(given: Any) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        raise ValueError(f"[grid] must be a table, got {given!r}")
    grid = {"cells": given.get("cells", GRID_CELLS.default)}
    GRID_CELLS.check("grid.cells", grid["cells"])
    for name, key in GRID_ADAPT.items():
        grid[name] = given.get(name, key.default)
        key.check(f"grid.{name}", grid[name])
    if grid["adapt"] in ("remap", "move"):  # the ranges of solvers.adaptive_grid.RemapPolicy, same messages
        from solvers.adaptive_grid import RemapPolicy

        RemapPolicy(tail=grid["adapt_tail"], margin=grid["adapt_margin"], narrowing=grid["adapt_narrowing"])
    for name, axis in given.items():
        if name == "cells" or name in GRID_ADAPT:
            continue
        if not isinstance(axis, Mapping):
            raise ValueError(f"grid.{name} = {axis!r} must be a table such as "
                             "{lower = 0.0, upper = 2.0, cells = 40} (or grid.cells = N)")
        grid[name] = dict(axis)
    return grid


def _sweep_inputs(given: Any, schema: Mapping[str, Any]) -> dict[str, list[Any]]:
    if not isinstance(given, Mapping):
        raise ValueError(f"[sweep] must be a table, got {given!r}")
    for key, values in given.items():
        table, _, name = key.partition(".")
        keys = schema.get(table)
        known = keys is not None and (isinstance(keys, Table) or name in keys)
        if not known or not name:
            raise ValueError(f"sweep key {key!r} must be 'table.key', a key of this model's configuration")
        if not isinstance(values, list) or not values:
            raise ValueError(f"sweep.{key} = {values!r} must be a non-empty list")
    return {key: list(values) for key, values in given.items()}


def _check_run(config: dict[str, Any], raw: Mapping[str, Any], model: Model, check_machine: bool = True,
               stored: bool = False) -> None:
    """Checks across keys, and against the problem (its coordinates, noise, grid)."""
    out = config["output"]
    if out["spacing"] == "log" and not out["t_first"] < out["t_final"]:
        raise ValueError(f"output.t_first = {out['t_first']} must be < output.t_final = {out['t_final']}")
    # a key whose value cannot matter is refused when it differs from its default (so that a stored,
    # defaults-filled configuration parses again)
    if out["spacing"] == "linear" and out["t_first"] != RUN_SCHEMA["output"]["t_first"].default:
        raise ValueError(f"output.t_first = {out['t_first']} applies to output.spacing = 'log'; this run uses "
                         "'linear' spacing (remove the key or set spacing = \"log\")")
    if config["schedule"]["alpha"] == 0.0 and config["schedule"]["t0"] != RUN_SCHEMA["schedule"]["t0"].default:
        raise ValueError(f"schedule.t0 = {config['schedule']['t0']} has no effect with schedule.alpha = 0 "
                         "(ξ(t) = ξ0 (1 + t/t0)^(-alpha) is constant); remove the key or set alpha > 0")
    if any(t > out["t_final"] for t in out["law_times"]):
        raise ValueError(f"output.law_times = {out['law_times']} must lie in [0, output.t_final = {out['t_final']}]")
    solver = config["pde"]["solver"]
    for other, keys in SOLVER_KEYS.items():
        misplaced = sorted(keys & set(raw.get("pde", {}))) if other != solver else []
        if misplaced:
            raise ValueError(f"pde.{misplaced[0]} applies to pde.solver = {other!r}; this run uses "
                             f"pde.solver = {solver!r} (remove the key or change the solver)")
    inputs = resolved(config)
    model.check(inputs)
    problem = model.build_problem(inputs)
    beta, lam = noise_parameters(config)
    problem.check_noise(beta, lam)
    if uses_fokker_planck(config) and solver != "finite_volume":
        raise ValueError(f"noise.beta = {config['noise']['beta']!r}, noise.weight_decay = "
                         f"{config['noise']['weight_decay']!r} (noise or weight decay) need pde.solver = "
                         "'finite_volume' (the Scharfetter–Gummel finite volumes); this run uses 'lagrangian'")
    from reduced_pde.running.resources import check_resources

    # what this machine cannot hold is refused before the grid is built (--allow-large: check_resources)
    if check_machine:
        check_resources(config, ("pde",), allow_large=True, problem=problem)
    if solver == "finite_volume":
        pde_solver_name(config, problem)  # noise / implicit stepping need a one-coordinate reduction
        grid_table(config, problem)  # builds the axes: every coordinate has one, no stray table
        if config["grid"]["adapt"] != "none" and (uses_fokker_planck(config) or len(problem.coordinate_names) > 1):
            reason = (f"noise.beta = {config['noise']['beta']!r}, noise.weight_decay = "
                      f"{config['noise']['weight_decay']!r}, pde.time_stepping = "
                      f"{config['pde'].get('time_stepping', 'auto')!r} (noise, weight decay or implicit stepping)"
                      if uses_fokker_planck(config) else f"coordinates {list(problem.coordinate_names)}")
            raise ValueError(f"grid.adapt = {config['grid']['adapt']!r} applies to the noiseless explicit finite "
                             f"volumes of a one-coordinate problem; this run has {reason}: use grid.adapt = 'none'")
        if config["grid"]["adapt"] == "move" and config["pde"]["kernel"] != "low_rank":
            raise ValueError(f"pde.kernel = {config['pde']['kernel']!r} with grid.adapt = 'move': the moving cells "
                             f"interpolate the low-rank features; allowed: pde.kernel = 'low_rank'")
    elif any(name != "cells" and name not in GRID_ADAPT for name in config["grid"]) or \
            set(raw.get("grid", {})) & {"cells", *GRID_ADAPT}:
        raise ValueError("[grid] applies to pde.solver = 'finite_volume'; this run uses 'lagrangian'")
    if not stored and any(value != RUN_SCHEMA["chaos"][name].default for name, value in config["chaos"].items()):
        finite_width_hook(config, model, problem)  # [chaos] keys this model's runs do not read are refused
    if config["sgd"]["dimension"] != "data" and not math.isinf(model.dimension(inputs)) \
            and config["sgd"]["dimension"] != int(model.dimension(inputs)):
        raise ValueError(f"sgd.dimension = {config['sgd']['dimension']} differs from data.dimension = "
                         f"{config['data']['dimension']}; a different SGD dimension is for the d = inf reduction")


def finite_width_hook(config: Mapping[str, Any], model: Model | None = None, problem: ReducedProblem | None = None
                      ) -> Any:
    """The finite-width runs (``reduced-pde chaos``) of a configuration's problem
    (:meth:`~reduced_pde.problem.ReducedProblem.finite_width`), after refusing a ``[chaos]`` key that
    they do not read set to anything but its default, and the values they cannot take.  A model
    without them is refused naming ``data.model`` and the models that have them."""
    from reduced_pde.models import model_names
    from reduced_pde.problem import NoFiniteWidth

    model = model or model_of(config)
    problem = problem or model.build_problem(resolved(config))
    try:
        hook = problem.finite_width()
    except NoFiniteWidth:
        having = [name for name in model_names() if get_model(name).chaos]
        raise ValueError(f"data.model = {model.name!r} has no finite-width runs (reduced-pde chaos, [chaos]); "
                         f"models that have them: {', '.join(map(repr, having))}") from None
    chaos = config["chaos"]
    for name in sorted(set(chaos) - set(hook.chaos_keys)):
        if chaos[name] != RUN_SCHEMA["chaos"][name].default:
            raise ValueError(f"chaos.{name} = {chaos[name]!r} is not read by the finite-width runs of data.model = "
                             f"{model.name!r}; remove it (their [chaos] keys: {', '.join(sorted(hook.chaos_keys))})")
    hook.check(chaos)
    return hook


def validate_config(config: Mapping[str, Any]) -> None:
    """Check an input-form configuration again (after editing it in Python)."""
    parse_config({table: values for table, values in config.items()})


# ---- building ---------------------------------------------------------------------------------------
def resolved(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The parsed values of a validated configuration (``"inf"`` → inf, ``"auto"`` → None, ...)."""
    model = model_of(config)
    out: dict[str, dict[str, Any]] = {}
    for table, keys in schema_of(model).items():
        if isinstance(keys, Table):
            out[table] = keys.check(table, dict(config[table]))
        else:
            out[table] = {name: key.check(f"{table}.{name}", config[table][name]) for name, key in keys.items()
                          if name in config[table]}
    return out


def build_problem(config: Mapping[str, Any]) -> ReducedProblem:
    """The reduced problem of a validated configuration (its model's :meth:`Model.build_problem`)."""
    return model_of(config).build_problem(resolved(config))


def build_schedule(config: Mapping[str, Any]) -> LearningRateSchedule:
    s = config["schedule"]
    return LearningRateSchedule(float(s["xi0"]), float(s["alpha"]), float(s["t0"]))


def grid_table(config: Mapping[str, Any], problem: ReducedProblem) -> dict[str, dict[str, Any]]:
    """The finite-volume axes, one per coordinate of ``problem``: the ``[grid]`` tables, and the model's
    default axes (``grid.cells`` cells) for the coordinates without one; each inside ``problem.domain()``."""
    from solvers.tensor_grid import TensorGrid

    names = tuple(problem.coordinate_names)
    given = {name: axis for name, axis in config["grid"].items() if name != "cells" and name not in GRID_ADAPT}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"[grid] has table(s) {unknown} that are not coordinates of this problem {names}")
    missing = [name for name in names if name not in given]
    table = dict(given)
    if missing:
        defaults = model_of(config).default_grid(problem, resolved(config), int(config["grid"]["cells"]))
        unknown = [name for name in missing if name not in defaults]
        if unknown:
            raise ValueError(f"[grid] needs a table for coordinate(s) {unknown} of this problem {names} (the model "
                             f"has no default axis for them), e.g. grid.{unknown[0]} = "
                             "{lower = ..., upper = ..., cells = ...}")
        table.update({name: defaults[name] for name in missing})
    for name, axis in table.items():
        for bound in ("lower", "upper"):
            value = axis.get(bound) if isinstance(axis, Mapping) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not abs(value) <= _GRID_BOUND:
                raise ValueError(f"grid.{name}.{bound} = {value!r} must be a finite number with |value| <= "
                                 f"{_GRID_BOUND:g} (moments of the law would overflow)")
    grid = TensorGrid.from_table(table, names)
    for axis, (lower, upper) in zip(grid.axes, problem.domain()):
        if axis.edges[0] < lower - 1e-12 or axis.edges[-1] > upper + 1e-12:
            raise ValueError(f"grid.{axis.name} = [{axis.edges[0]:g}, {axis.edges[-1]:g}] leaves the domain "
                             f"[{lower:g}, {upper:g}] of coordinate {axis.name}")
    return {name: table[name] for name in names}


def coordinate_rates(config: Mapping[str, Any]) -> dict[str, float]:
    """Per-coordinate velocity factors (per-layer learning rates) of the model."""
    return model_of(config).rates(resolved(config))


def noise_parameters(config: Mapping[str, Any]) -> tuple[float, float]:
    """(β, λ) from ``[noise]`` (β = inf: no noise)."""
    return _beta("noise.beta", config["noise"]["beta"]), float(config["noise"]["weight_decay"])


def uses_fokker_planck(config: Mapping[str, Any]) -> bool:
    """Noise, weight decay or implicit stepping: the Scharfetter–Gummel finite volumes."""
    beta, lam = noise_parameters(config)
    return math.isfinite(beta) or lam > 0 or config["pde"].get("time_stepping") == "implicit"


def pde_solver_name(config: Mapping[str, Any], problem: ReducedProblem) -> str:
    """"fokker_planck" (noise, weight decay or implicit stepping; one coordinate), "lagrangian" or
    "finite_volume"."""
    if uses_fokker_planck(config):
        if len(problem.coordinate_names) != 1:
            raise ValueError(f"noise.beta = {config['noise']['beta']!r}, noise.weight_decay = "
                             f"{config['noise']['weight_decay']!r}, pde.time_stepping = "
                             f"{config['pde'].get('time_stepping', 'auto')!r}: noise, weight decay and implicit "
                             "stepping need a one-coordinate reduction; this problem has coordinates "
                             f"{problem.coordinate_names}")
        return "fokker_planck"
    return config["pde"]["solver"]


def output_times(config: Mapping[str, Any]) -> np.ndarray:
    """Output times: ``n_outputs`` log- or linearly spaced points ending at t_final, plus t = 0."""
    out = config["output"]
    n, t_final = int(out["n_outputs"]), float(out["t_final"])
    if out["spacing"] == "log":
        times = np.geomspace(float(out["t_first"]), t_final, n)
    else:
        times = np.linspace(t_final / n, t_final, n)
    return np.concatenate([[0.0], times])


def sgd_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration SGD runs: ``data.dimension`` replaced by ``sgd.dimension`` when that is set
    (full-dimensional SGD at a large finite d against the d = inf reduction)."""
    out = copy.deepcopy(dict(config))
    if config["sgd"]["dimension"] != "data":
        out["data"]["dimension"] = int(config["sgd"]["dimension"])
    return out


# ---- storage form -------------------------------------------------------------------------------------
def flatten(config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"table.key": value}`` for HDF5 attributes (``config.*``); the sweep is resolved per run."""
    return {f"{table}.{key}": value for table, values in config.items() if table != "sweep"
            for key, value in values.items()}


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The validated configuration back from :func:`flatten`'s keys (a stored file's ``config.*``)."""
    raw: dict[str, Any] = {}
    for key, value in flat.items():
        table, _, name = key.partition(".")
        if table == "sweep" or not name:
            continue
        if table == "grid" and name == "cells":
            raw.setdefault("grid", {})["cells"] = value
            continue
        raw.setdefault(table, {})[name] = value
    return parse_config(raw, check_machine=False, stored=True)


def sweep_cases(config: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One (label, validated config) per combination of the sweep values (one case without a sweep)."""
    base = {table: dict(values) for table, values in config.items() if table != "sweep"}
    cases: list[tuple[str, dict[str, Any]]] = [("", base)]
    for key, values in config["sweep"].items():
        table, name = key.split(".", 1)
        cases = [(f"{label}_{name}={value}" if label else f"{name}={value}",
                  {**case, table: {**case[table], name: value}}) for label, case in cases for value in values]
        if key == "pde.solver":  # each case keeps only its own solver's keys (defaults refilled)
            cases = [(label, {**case, "pde": {"solver": case["pde"]["solver"]}, "grid": {}}) for label, case in cases]
    return [(label, parse_config(case)) for label, case in cases]
