"""TOML run configurations: parsing, validation, and construction of problems and solvers.

A configuration has the tables below (all keys optional except where stated; defaults shown)::

    [data]        model = "isotropic_gaussian_mixture", delta = 0.5, dimension = 320  # or "inf"
                  # or model = "single_index" (coordinates (a, s, r) or (s, r)), "single_index_sphere"
                  #    (|w| = 1: (a, s) or (s,)), "multi_index" (s ∈ R^k); their keys:
                  #    target = {name = "he", degree = 2}, second_layer = 1.0 (a, or the mean of a at t = 0),
                  #    index_dimension = 2 (multi_index)
    [activation]  name = "mmn18", t1 = 0.5, t2 = 1.5, s1 = -2.5, s2 = 7.5        # see activations
    [initial]     kappa = 0.4                     # w ~ N(0, κ²/d I_d)
                  second_layer_std = 0.0, alignment = 0.0   # a ~ N(a0, σ_a²); w = s0 θ* + N(0, κ²/d I)
    [network]     train_second_layer = "auto", second_layer_rate = 1.0
                  # "auto": trained for single_index / multi_index, fixed on the sphere; the rate
                  # multiplies the second layer's velocity (per-layer learning rates)
    [grid]        a = {lower = -1.0, upper = 3.0, cells = 40}, s = {lower = -1.5, upper = 1.5, cells = 60,
                  spacing = "stretched", min_spacing = 0.01}, r = {lower = 0.0, upper = 2.0, cells = 40}
                  # multi-dimensional finite volumes: one table per coordinate (spacing "uniform" or
                  # "stretched": sinh map, spacing min_spacing at `center`, default 0)
    [schedule]    xi0 = 1.0, alpha = 0.0, t0 = 1.0  # ξ(t) = xi0 (1 + t/t0)^(-alpha)
    [output]      t_final = 100.0, n_outputs = 60, spacing = "log", t_first = 1e-3,
                  law_times = [0, 0.2, 1]         # panels of the law figure (experiment)
    [pde]         solver = "finite_volume", r_max = 4.0, cells = 400, scheme = "muscl",
                  cfl = 0.4, kernel = "low_rank", hermite_degree = "auto", n_particles = 400,
                  sampling = "quantile", ode_method = "DOP853", rtol = 1e-9   # lagrangian
    [noise]       beta = "inf", weight_decay = 0.0  # noisy SGD / Fokker–Planck (finite d only)
    [sgd]         n_neurons = 800, step_size = 1e-4, batch_size = 10, seeds = [0, 1, 2],
                  dimension = "data"   # or an integer: SGD at this d (e.g. against the d = inf reduction)
    [sweep]       "initial.kappa" = [0.1, 0.4]    # experiment: one PDE + SGD run per value

Unknown tables or keys are refused with a message naming them and listing what is allowed.
"""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from .data_models import IsotropicGaussianMixture
from .problem import ReducedProblem
from .radial_reduction import IsotropicMixtureRadialProblem
from .schedules import LearningRateSchedule

DATA_MODELS = ("isotropic_gaussian_mixture", "single_index", "single_index_sphere", "multi_index")
INDEX_MODELS = ("single_index", "single_index_sphere", "multi_index")

__all__ = ["DEFAULTS", "DATA_MODELS", "load_config", "validate_config", "build_problem", "build_schedule",
           "solution_grid",
           "output_times", "flatten", "apply_overrides"]

DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"model": "isotropic_gaussian_mixture", "delta": 0.5, "dimension": 320,
             "target": {}, "second_layer": 1.0, "index_dimension": 2},
    "activation": {"name": "mmn18"},
    "initial": {"kappa": 0.4, "second_layer_std": 0.0, "alignment": 0.0},
    "network": {"train_second_layer": "auto", "second_layer_rate": 1.0},
    "grid": {},
    "schedule": {"xi0": 1.0, "alpha": 0.0, "t0": 1.0},
    "output": {"t_final": 100.0, "n_outputs": 60, "spacing": "log", "t_first": 1e-3,
               "law_times": []},
    "pde": {"solver": "finite_volume", "r_max": 4.0, "cells": 400, "scheme": "muscl", "cfl": 0.4,
            "kernel": "low_rank", "hermite_degree": "auto", "n_particles": 400,
            "sampling": "quantile", "ode_method": "DOP853", "rtol": 1e-9,
            "time_stepping": "auto", "truncation_tolerance": 1e-6},
    "noise": {"beta": "inf", "weight_decay": 0.0},
    "sgd": {"n_neurons": 800, "step_size": 1e-4, "batch_size": 10, "seeds": [0, 1, 2],
            "dimension": "data"},
    "sweep": {},
}
_FREE_TABLES = {"activation", "sweep", "grid"}  # keys checked by their own builders


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a TOML file, fill in defaults, apply ``key=value`` overrides, validate."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            raw = tomllib.load(file)
    except FileNotFoundError:
        raise ValueError(f"configuration file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"configuration file {str(path)!r} is not valid TOML: {error}") from None
    config = _merge_defaults(raw)
    apply_overrides(config, overrides or [])
    validate_config(config)
    return config


def _merge_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    unknown = set(raw) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown configuration table(s) {sorted(unknown)}; allowed: {sorted(DEFAULTS)}")
    config = copy.deepcopy(DEFAULTS)
    for table, values in raw.items():
        if not isinstance(values, dict):
            raise ValueError(f"[{table}] must be a table, got {values!r}")
        if table not in _FREE_TABLES:
            unknown_keys = set(values) - set(DEFAULTS[table])
            if unknown_keys:
                raise ValueError(f"unknown key(s) {sorted(unknown_keys)} in [{table}]; "
                                 f"allowed: {sorted(DEFAULTS[table])}")
        if table == "activation":
            config[table] = dict(values)
            config[table].setdefault("name", "mmn18")
        else:
            config[table].update(values)
    return config


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> None:
    """Apply ``table.key=value`` strings (value parsed as TOML, else kept as a string)."""
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"override {item!r} must look like table.key=value")
        key, text = item.split("=", 1)
        table, name = key.split(".", 1)
        if table not in DEFAULTS:
            raise ValueError(f"override {item!r}: unknown table {table!r}; allowed: {sorted(DEFAULTS)}")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        config[table][name] = value


def _dimension(value: Any) -> float:
    if isinstance(value, str) and value.lower() in {"inf", "infinity"}:
        return math.inf
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"data.dimension = {value!r} must be an integer >= 2 or \"inf\"")


def _positive(table: str, key: str, value: Any, integer: bool = False, minimum: float = 0.0) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > minimum
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{table}.{key} = {value!r} must be {kind} > {minimum:g}")


def validate_config(config: dict[str, Any]) -> None:
    """Check every value; raise ValueError naming the field, its value and what is allowed."""
    data = config["data"]
    if data["model"] not in DATA_MODELS:
        raise ValueError(f"data.model = {data['model']!r} is not known; allowed: {', '.join(map(repr, DATA_MODELS))}")
    if data["model"] == "isotropic_gaussian_mixture":
        IsotropicGaussianMixture(float(data["delta"]), _dimension(data["dimension"]))
        if data["target"]:
            raise ValueError(f"data.target = {data['target']!r} is for the models {', '.join(INDEX_MODELS)}")
        if config["network"]["train_second_layer"] not in ("auto", False):
            raise ValueError("network.train_second_layer = true is not available for data.model = "
                             "'isotropic_gaussian_mixture' (neurons σ(⟨w, x⟩) without a second layer)")
    elif not data["target"]:
        raise ValueError(f"data.target is required for data.model = {data['model']!r} "
                         "(e.g. {name = \"he\", degree = 2} or {hermite = [0, 0, 1]})")
    train_second_layer(config)
    _positive("network", "second_layer_rate", config["network"]["second_layer_rate"])
    build_problem(config)  # validates activation, kappa, reduction options
    build_schedule(config)
    out = config["output"]
    _positive("output", "t_final", out["t_final"])
    _positive("output", "n_outputs", out["n_outputs"], integer=True, minimum=1)
    if out["spacing"] not in {"log", "linear"}:
        raise ValueError(f"output.spacing = {out['spacing']!r}; allowed: 'log', 'linear'")
    _positive("output", "t_first", out["t_first"])
    if out["spacing"] == "log" and not out["t_first"] < out["t_final"]:
        raise ValueError(f"output.t_first = {out['t_first']} must be < output.t_final = {out['t_final']}")
    law_times = out["law_times"]
    if not (isinstance(law_times, list) and all(isinstance(t, (int, float)) and 0 <= t <= out["t_final"]
                                                for t in law_times)):
        raise ValueError(f"output.law_times = {law_times!r} must be a list of times in [0, output.t_final]")
    pde = config["pde"]
    if pde["solver"] not in {"finite_volume", "lagrangian"}:
        raise ValueError(f"pde.solver = {pde['solver']!r}; allowed: 'finite_volume', 'lagrangian'")
    _positive("pde", "r_max", pde["r_max"])
    _positive("pde", "cells", pde["cells"], integer=True, minimum=3)
    if pde["scheme"] not in {"upwind", "muscl"}:
        raise ValueError(f"pde.scheme = {pde['scheme']!r}; allowed: 'upwind', 'muscl'")
    if not (isinstance(pde["cfl"], (int, float)) and 0 < pde["cfl"] <= 0.5):
        raise ValueError(f"pde.cfl = {pde['cfl']!r} must lie in (0, 0.5] (positivity bound of the scheme)")
    if pde["kernel"] not in {"low_rank", "dense"}:
        raise ValueError(f"pde.kernel = {pde['kernel']!r}; allowed: 'low_rank', 'dense'")
    particles = pde["n_particles"]
    if isinstance(particles, list):
        if not (particles and all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in particles)):
            raise ValueError(f"pde.n_particles = {particles!r} must be an integer >= 1 or a list of them "
                             "(one per coordinate)")
    else:
        _positive("pde", "n_particles", particles, integer=True)
    from solvers.lagrangian import METHODS, SAMPLINGS

    if pde["sampling"] not in SAMPLINGS:
        raise ValueError(f"pde.sampling = {pde['sampling']!r}; allowed: {', '.join(map(repr, SAMPLINGS))}")
    if pde["ode_method"] not in METHODS:
        raise ValueError(f"pde.ode_method = {pde['ode_method']!r}; allowed: {', '.join(map(repr, METHODS))}")
    _positive("pde", "rtol", pde["rtol"])
    if pde["time_stepping"] not in {"auto", "explicit", "implicit"}:
        raise ValueError(f"pde.time_stepping = {pde['time_stepping']!r}; allowed: 'auto', 'explicit', "
                         "'implicit'")
    noise_parameters(config)
    sgd = config["sgd"]
    _positive("sgd", "n_neurons", sgd["n_neurons"], integer=True)
    _positive("sgd", "step_size", sgd["step_size"])
    _positive("sgd", "batch_size", sgd["batch_size"], integer=True)
    if sgd["dimension"] != "data":
        _positive("sgd", "dimension", sgd["dimension"], integer=True, minimum=1)
    seeds = sgd["seeds"]
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and s >= 0 for s in seeds)):
        raise ValueError(f"sgd.seeds = {seeds!r} must be a non-empty list of integers >= 0")
    for key, values in config["sweep"].items():
        table, _, name = key.partition(".")
        if table not in DEFAULTS or not name:
            raise ValueError(f"sweep key {key!r} must be 'table.key' with table in {sorted(DEFAULTS)}")
        if not isinstance(values, list) or not values:
            raise ValueError(f"sweep.{key} = {values!r} must be a non-empty list")


def train_second_layer(config: dict[str, Any]) -> bool:
    """``network.train_second_layer`` resolved: "auto" trains a for the single-/multi-index models in
    the ball and keeps it fixed on the sphere and for MMN18."""
    value = config["network"]["train_second_layer"]
    if value == "auto":
        return config["data"]["model"] in ("single_index", "multi_index")
    if not isinstance(value, bool):
        raise ValueError(f"network.train_second_layer = {value!r}; allowed: true, false, \"auto\"")
    return value


def _hermite_degree(config: dict[str, Any], even: bool) -> int | None:
    degree = config["pde"]["hermite_degree"]
    if degree == "auto":
        return None
    if not (isinstance(degree, int) and not isinstance(degree, bool) and degree >= 0
            and (degree % 2 == 0 or not even)):
        raise ValueError(f"pde.hermite_degree = {degree!r} must be \"auto\" or an "
                         f"{'even ' if even else ''}integer >= 0")
    return degree


def build_problem(config: dict[str, Any]) -> ReducedProblem:
    """The reduced problem of ``[data]``: the MMN18 radial reduction (coordinate r = |w|), or the
    single-index reduction (:mod:`reduced_pde.single_index`) in the ball — coordinates (a, s, r),
    or (s, r) with a fixed second layer — or on the sphere — (a, s) or (s,)."""
    if config["data"]["model"] in INDEX_MODELS:
        activation = config["activation"]
        if set(activation) == {"name"}:
            activation = activation["name"]  # "he2"-style names
        initial = config["initial"]
        sphere = config["data"]["model"] == "single_index_sphere"
        if not sphere:
            _positive("initial", "kappa", initial["kappa"])
        common = dict(train_second_layer=train_second_layer(config),
                      second_layer=float(config["data"]["second_layer"]),
                      second_layer_std=float(initial["second_layer_std"]),
                      weight_scale=1.0 if sphere else float(initial["kappa"]),
                      truncation_tolerance=float(config["pde"]["truncation_tolerance"]),
                      hermite_degree=_hermite_degree(config, even=False))
        dimension = _dimension(config["data"]["dimension"])
        if config["data"]["model"] == "multi_index":
            from .multi_index import MultiIndexProblem

            k = config["data"]["index_dimension"]
            _positive("data", "index_dimension", k, integer=True, minimum=1)
            return MultiIndexProblem(config["data"]["target"], activation, dimension, index_dimension=int(k),
                                     initial_alignment=initial["alignment"], **common)
        from .single_index import SingleIndexProblem

        return SingleIndexProblem(config["data"]["target"], activation, dimension, sphere=sphere,
                                  initial_alignment=float(initial["alignment"]), **common)
    data = IsotropicGaussianMixture(float(config["data"]["delta"]), _dimension(config["data"]["dimension"]))
    degree = _hermite_degree(config, even=True)
    kappa = config["initial"]["kappa"]
    _positive("initial", "kappa", kappa)
    return IsotropicMixtureRadialProblem(data, dict(config["activation"]), kappa=float(kappa),
                                         hermite_degree=degree)


def sgd_config(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration SGD runs: ``data.dimension`` replaced by ``sgd.dimension`` when that is set
    (full-dimensional SGD at a large finite d against the d = inf reduction)."""
    if config["sgd"]["dimension"] == "data":
        return config
    out = copy.deepcopy(config)
    out["data"]["dimension"] = int(config["sgd"]["dimension"])
    return out


def noise_parameters(config: dict[str, Any]) -> tuple[float, float]:
    """(β, λ) from ``[noise]`` (β = "inf": no noise), validated; noise at d = inf is refused."""
    from .free_energy import check_noise_parameters

    beta = config["noise"]["beta"]
    if isinstance(beta, str) and beta.lower() in {"inf", "infinity"}:
        beta = math.inf
    elif isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise ValueError(f"noise.beta = {beta!r} must be a number > 0 or \"inf\"")
    lam = config["noise"]["weight_decay"]
    if isinstance(lam, bool) or not isinstance(lam, (int, float)):
        raise ValueError(f"noise.weight_decay = {lam!r} must be a number >= 0")
    return check_noise_parameters(beta, lam, _dimension(config["data"]["dimension"]))


def uses_fokker_planck(config: dict[str, Any]) -> bool:
    """The ``pde`` command uses the Scharfetter–Gummel solver when noise or weight decay is on, or
    when implicit time stepping is asked for (1-D problems: MMN18's r, the sphere's s)."""
    beta, lam = noise_parameters(config)
    return math.isfinite(beta) or lam > 0 or config["pde"]["time_stepping"] == "implicit"


def pde_solver_name(config: dict[str, Any], problem: ReducedProblem | None = None) -> str:
    """Which solver the ``pde`` command runs: "fokker_planck" (noise, weight decay or implicit
    stepping; 1-D problems only), "lagrangian" (``pde.solver``), "finite_volume" (MMN18's 1-D
    solver) or "finite_volume_nd" (the tensor-grid solver, for the single-/multi-index models)."""
    problem = problem if problem is not None else build_problem(config)
    dimension = len(problem.coordinate_names)
    if uses_fokker_planck(config):
        if dimension != 1:
            raise ValueError(f"[noise] / pde.time_stepping = 'implicit' need a one-coordinate reduction "
                             f"(MMN18's r, the sphere's s with a fixed second layer); this problem has "
                             f"coordinates {problem.coordinate_names}")
        return "fokker_planck"
    if config["pde"]["solver"] == "lagrangian":
        return "lagrangian"
    return "finite_volume" if config["data"]["model"] == "isotropic_gaussian_mixture" else "finite_volume_nd"


def tensor_grid(config: dict[str, Any], problem: ReducedProblem):
    """The ``[grid]`` table as a :class:`~solvers.tensor_grid.TensorGrid` over the problem's
    coordinates; for the sphere coordinate s the default axis is [−1, 1] with ``pde.cells`` cells."""
    from solvers.tensor_grid import TensorGrid

    table = dict(config["grid"])
    names = tuple(problem.coordinate_names)
    if "s" in names and "s" not in table and config["data"]["model"] == "single_index_sphere":
        table["s"] = {"lower": -1.0, "upper": 1.0, "cells": int(config["pde"]["cells"])}
    missing = [name for name in names if name not in table]
    if missing:
        raise ValueError(f"[grid] needs a table for coordinate(s) {missing} of this problem "
                         f"{names}, e.g. grid.{missing[0]} = {{lower = ..., upper = ..., cells = ...}}")
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise ValueError(f"[grid] has table(s) {unknown} that are not coordinates of this problem {names}")
    return TensorGrid.from_table(table, names)


def coordinate_rates(config: dict[str, Any], problem: ReducedProblem) -> dict[str, float]:
    """Per-coordinate velocity factors: ``network.second_layer_rate`` on the second layer a."""
    rate = float(config["network"]["second_layer_rate"])
    return {"a": rate} if "a" in problem.coordinate_names else {}


def solution_grid(config: dict[str, Any]):
    """The 1-D grid of the reduced coordinate: [0, pde.r_max] for r = |w|, [−1, 1] for s on the sphere."""
    from solvers.grid import UniformGrid1D

    lower, upper = ((-1.0, 1.0) if config["data"]["model"] == "single_index_sphere"
                    else (0.0, float(config["pde"]["r_max"])))
    return UniformGrid1D(lower, upper, int(config["pde"]["cells"]))


def build_schedule(config: dict[str, Any]) -> LearningRateSchedule:
    s = config["schedule"]
    return LearningRateSchedule(float(s["xi0"]), float(s["alpha"]), float(s["t0"]))


def output_times(config: dict[str, Any]) -> np.ndarray:
    """Output times: ``n_outputs`` log- or linearly spaced points ending at t_final, plus t = 0."""
    out = config["output"]
    n, t_final = int(out["n_outputs"]), float(out["t_final"])
    if out["spacing"] == "log":
        times = np.geomspace(float(out["t_first"]), t_final, n)
    else:
        times = np.linspace(t_final / n, t_final, n)
    return np.concatenate([[0.0], times])


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """``{"table.key": value}`` for HDF5 attributes (sweep omitted; it is resolved per run)."""
    flat = {}
    for table, values in config.items():
        if table == "sweep":
            continue
        for key, value in values.items():
            flat[f"{table}.{key}"] = value
    return flat


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten` for a stored file's attributes: the configuration that rebuilds its
    problem (keys outside the configuration tables — solver and problem attributes — are dropped;
    the activation table keeps only what the configuration gave, its ``name`` and parameters)."""
    config = copy.deepcopy(DEFAULTS)
    for key, value in flat.items():
        table, _, name = key.partition(".")
        if table not in config or table == "sweep" or not name:
            continue
        if table in _FREE_TABLES or name in config[table]:
            config[table][name] = value
    # the problem also stores derived activation attributes (knots, jumps of a ReLU): keep the inputs
    inputs = {"mmn18": {"t1", "t2", "s1", "s2"}, "piecewise_linear": {"intercept", "slope", "knots", "jumps"},
              "polynomial": {"he_coefficients"}}
    activation = config["activation"]
    name = activation.get("name")
    config["activation"] = {"name": name, **{k: v for k, v in activation.items() if k in inputs.get(name, ())}}
    return config


def sweep_cases(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One (label, config) per combination of the sweep values (a single case without a sweep)."""
    cases = [("", copy.deepcopy(config))]
    for key, values in config["sweep"].items():
        table, name = key.split(".", 1)
        new_cases = []
        for label, case in cases:
            for value in values:
                variant = copy.deepcopy(case)
                variant[table][name] = value
                new_label = f"{label}_{name}={value}" if label else f"{name}={value}"
                new_cases.append((new_label, variant))
        cases = new_cases
    for _, case in cases:
        case["sweep"] = {}
        validate_config(case)
    return cases
