"""The resources a run implies, estimated from its configuration before anything is allocated.

For a validated configuration (:func:`~reduced_pde.running.config.parse_config`) and a command
(``"pde"``, ``"sgd"``, ``"gibbs"``), :func:`demands` lists what the run will need, each with the
configuration field that drives it:

* memory, in bytes (8-byte floats):
  finite volumes ``40 C`` working arrays for C = Π cells, ``n²`` for a dense kernel on the n cells
  of the non-linear coordinates (else ``3 K n`` for the K low-rank features, K =
  :func:`interaction_rank`, and ``4 min(K C, 2·10⁶)`` for the blocks of face increments), ``2 (T+1) C`` for the recorded densities (the records and the stacked
  array); characteristics ``30 n D`` (the Runge–Kutta stages), ``2 K n (D+1)`` (features and their
  gradients), ``3 (n D)²`` for an implicit method's dense Jacobian, ``2 (T+1) n D`` for the recorded
  positions; SGD ``4 N d`` (weights, update, the
  state a checkpoint copies, the initial draw), ``3 B N`` (pre-activations), ``2 (T+1) N D`` for the
  recorded invariants, ``7 N²`` where the model records the exact network risk (its N x N cosine and
  kernel matrices);
* the result file on disk (the recorded fields, uncompressed);
* the number of steps: SGD takes ``t_final / ε`` steps of ``B N d`` multiply-adds; the reduced
  solvers integrate over ``τ = ∫₀^T ξ(t) dt`` time units (their step count grows with it);
* ``"chaos"`` (finite width): what the problem's finite-width runs report
  (:meth:`~reduced_pde.analysis.finite_width.FiniteWidth.costs`; on the sphere the m-neuron networks
  ``3 T + 12 S m d`` numbers of ``chaos.precision`` (T = S b m the Gram row tile, b = max(1, ⌊E / (S m)⌋)
  rows, E = 2^22 entries, 2^26 on CUDA; RK4 stages) on the device of ``chaos.device`` (a CUDA device's
  memory is checked against its own size; the host then holds ``4 S m d`` float64 copies), ``4 K S m`` twin
  features, the prediction's batched laws, ``t_final / dt`` RK4 steps of ``4 S Σ m² (2d + K)`` multiply-adds
  (4 stages of W Wᵀ, κ'(G) and κ'(G) W); for the isotropic mixture ``8 S N²`` pair blocks and
  ``4 S Σ N² (2d + 6(K + 1))`` per step), with the same
  limits as SGD's steps and work.

:func:`check_resources` refuses (ValueError naming the field, the estimate and the limit) what
cannot run on this machine — memory beyond 80% of the available memory, a file larger than the free
disk space, more SGD steps than a float time ``kε`` resolves (2^53), an infinite τ, an SGD step ε
larger than the smallest output interval (no step would fall between two outputs) — and, unless
``allow_large`` (``--allow-large`` on the command line), what is really large: more than
:data:`MEMORY_LIMIT` of memory, :data:`SGD_STEP_LIMIT` SGD steps or :data:`SGD_WORK_LIMIT`
multiply-adds, τ beyond :data:`PDE_TIME_LIMIT`.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solvers.common import MEMORY_LIMIT, available_memory

__all__ = ["Demand", "demands", "interaction_rank", "check_resources", "available_memory", "integrated_rate", "smallest_output_interval",
           "MEMORY_LIMIT", "SGD_STEP_LIMIT", "SGD_WORK_LIMIT", "PDE_TIME_LIMIT"]

#: memory a run may take without --allow-large (bytes): :data:`solvers.common.MEMORY_LIMIT`, which the
#: solver constructors apply with the same message
#: SGD steps without --allow-large (about an hour of the compiled kernel at small N d B)
SGD_STEP_LIMIT = 10**9
#: SGD multiply-adds (steps × B N d) without --allow-large (about a day at 1e10 per second)
SGD_WORK_LIMIT = 10**15
#: τ = ∫ ξ dt of a reduced solve without --allow-large (the configurations in configs/ need ≤ 1e3)
PDE_TIME_LIMIT = 1e7
#: the largest SGD step count whose times kε are exact in double precision
SGD_STEP_HARD_LIMIT = 2**53

_GIB = 2**30
#: the implicit integrators of the characteristics (a dense Jacobian; stiff rates cost no extra steps)
_IMPLICIT = ("Radau", "BDF", "LSODA")


@dataclass(frozen=True)
class Demand:
    """One resource a run needs: ``kind`` is "memory" or "disk" (bytes), "sgd_steps", "sgd_work",
    "pde_time", "chaos_steps" or "chaos_work"; ``field`` the configuration value(s) that drive it, as ``name = value``."""

    kind: str
    amount: float
    field: str
    what: str


def integrated_rate(config: Mapping[str, Any]) -> float:
    """``τ = ∫₀^T ξ(t) dt`` for ``ξ = xi0 (1 + t/t0)^(−alpha)``, T = output.t_final (inf on overflow)."""
    s, t_final = config["schedule"], float(config["output"]["t_final"])
    xi0, alpha, t0 = float(s["xi0"]), float(s["alpha"]), float(s["t0"])
    try:
        log_growth = math.log1p(t_final / t0)
        if abs(alpha - 1.0) < 1e-12:
            return xi0 * t0 * log_growth
        return xi0 * t0 * math.expm1((1.0 - alpha) * log_growth) / (1.0 - alpha)
    except OverflowError:
        return math.inf


def smallest_output_interval(config: Mapping[str, Any]) -> float:
    """The smallest gap between consecutive output times (t = 0 included), without building them."""
    out = config["output"]
    n, t_final = int(out["n_outputs"]), float(out["t_final"])
    if out["spacing"] == "linear":
        return t_final / n
    t_first = float(out["t_first"])
    if n == 1:
        return t_final
    return min(t_first, t_first * math.expm1(math.log(t_final / t_first) / (n - 1)))


def _grid_cells(config: Mapping[str, Any], names: Sequence[str]) -> dict[str, int] | None:
    """Cells per coordinate from the ``[grid]`` inputs alone (None if a count is not an integer yet:
    the grid builder then names the field)."""
    cells = {}
    for name in names:
        axis = config["grid"].get(name)
        if isinstance(axis, Mapping):
            if axis.get("spacing") == "edges" and isinstance(axis.get("edges"), list):
                count = len(axis["edges"]) - 1
            else:
                count = axis.get("cells")
        else:
            count = config["grid"].get("cells")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            return None
        cells[name] = count
    return cells


def interaction_rank(problem: Any) -> int:
    """K, the rank of the problem's low-rank interaction (its features at one point of the domain: the
    solvers hold K features, and their gradients, per cell or particle)."""
    import numpy as np

    point = [min(max(0.5, lower), upper) for lower, upper in problem.domain()]
    points = np.array(point) if len(point) == 1 else np.array([point])
    return int(problem.interaction_low_rank(points).rank)


def _gib(amount: float) -> str:
    return f"{amount / _GIB:.3g} GiB"


def _pde_demands(config: Mapping[str, Any], problem: Any, command: str) -> list[Demand]:
    from reduced_pde.running.config import pde_solver_name

    names = tuple(problem.coordinate_names)
    outputs = int(config["output"]["n_outputs"]) + 1
    route = "gibbs" if command == "gibbs" else pde_solver_name(config, problem)
    items = [Demand("pde_time", integrated_rate(config), f"output.t_final = {config['output']['t_final']!r} "
                    f"with schedule.xi0 = {config['schedule']['xi0']!r}", "integrated learning rate τ = ∫ξ dt")] \
        if command != "gibbs" else []
    explicit = route == "finite_volume" or (route == "lagrangian" and config["pde"]["ode_method"] not in _IMPLICIT)
    if command != "gibbs" and explicit:
        # an explicit step shrinks like 1 / (rate of the fastest coordinate): τ × rate time units
        from reduced_pde.running.config import coordinate_rates

        rates = coordinate_rates(config)
        name, rate = max(rates.items(), key=lambda item: item[1], default=("", 1.0))
        if rate > 1.0:
            keys = [f"{table}.{key} = {value!r}" for table, values in config.items() if isinstance(values, Mapping)
                    and table not in ("output", "schedule", "pde", "grid", "sgd", "chaos", "sweep")
                    for key, value in values.items() if isinstance(value, (int, float)) and not isinstance(
                        value, bool) and value == rate] or [f"the rate of coordinate {name} = {rate:g}"]
            items.append(Demand("pde_time", integrated_rate(config) * rate,
                                f"{keys[0]} with output.t_final = {config['output']['t_final']!r} (an explicit "
                                f"solver: pde.solver = {config['pde']['solver']!r})",
                                "integrated learning rate τ × the fastest coordinate's rate"))
    if route == "lagrangian":
        given = config["pde"]["n_particles"]
        n = math.prod(given) if isinstance(given, list) else int(given)
        field = f"pde.n_particles = {given!r}"
        dim = len(names)
        rank = interaction_rank(problem)
        items.append(Demand("memory", 8.0 * 30 * n * dim, field, "particle state and Runge–Kutta stages"))
        items.append(Demand("memory", 8.0 * 2 * rank * n * (dim + 1), f"{field} with interaction rank {rank}",
                            "interaction features and their gradients at the particles"))
        if config["pde"]["ode_method"] in _IMPLICIT:
            items.append(Demand("memory", 8.0 * 3 * (n * dim) ** 2,
                                f"{field} with pde.ode_method = {config['pde']['ode_method']!r}",
                                "dense Jacobian of the implicit method"))
        recorded = 8.0 * outputs * n * (dim + 1)
        items.append(Demand("memory", 2 * recorded, f"output.n_outputs = {config['output']['n_outputs']} "
                            f"with {field}", "recorded particle positions"))
        items.append(Demand("disk", recorded, f"output.n_outputs = {config['output']['n_outputs']} with {field}",
                            "result file"))
        return items
    cells = _grid_cells(config, names)
    if cells is None:
        return items
    total = math.prod(cells.values())
    shape = " x ".join(f"{n}" for n in cells.values())
    field = "grid." + ", grid.".join(f"{k}.cells = {v}" for k, v in cells.items()) if any(
        isinstance(config["grid"].get(k), Mapping) for k in cells) else f"grid.cells = {config['grid']['cells']}"
    items.append(Demand("memory", 8.0 * 40 * total, f"{field} ({shape} = {total} cells)", "grid working arrays"))
    linear = getattr(problem, "linear_coordinate", None)
    other = total // cells[linear] if linear in cells else total
    if route != "finite_volume" or config["pde"].get("kernel") != "dense":
        rank = interaction_rank(problem)
        items.append(Demand("memory", 8.0 * (3 * rank * other + 4 * min(rank * total, 2_000_000)),
                            f"{field} with interaction rank {rank} on {other} cells",
                            "interaction features (the problem's temporaries building them, the face blocks)"))
    if route == "finite_volume" and config["pde"].get("kernel") == "dense":
        items.append(Demand("memory", 8.0 * other**2, f"pde.kernel = 'dense' on {other} cells ({field})",
                            "dense interaction matrix"))
    if command != "gibbs":
        recorded = 8.0 * outputs * total
        where = f"output.n_outputs = {config['output']['n_outputs']} with {field} ({total} cells)"
        items.append(Demand("memory", 2 * recorded, where, "recorded densities"))
        items.append(Demand("disk", recorded, where, "result file"))
    return items


def _sgd_demands(config: Mapping[str, Any]) -> list[Demand]:
    from reduced_pde.running.config import model_of, resolved, sgd_config

    run = sgd_config(config)
    model = model_of(run)
    d = model.dimension(resolved(run))
    if math.isinf(d):
        raise ValueError("SGD needs a finite dimension: data.dimension = \"inf\"; set sgd.dimension (the d of "
                         "full-dimensional SGD against the d = inf reduction)")
    d = int(d)
    sgd = config["sgd"]
    n, b, eps = int(sgd["n_neurons"]), int(sgd["batch_size"]), float(sgd["step_size"])
    t_final = float(config["output"]["t_final"])
    dim_field = ("sgd.dimension" if config["sgd"]["dimension"] != "data" else "data.dimension") + f" = {d}"
    steps = t_final / eps
    outputs = int(config["output"]["n_outputs"]) + 1
    coords = 3  # at most (a, s, r) per neuron are recorded (multi-index: k + 2, still O(1))
    inputs = resolved(run)
    pairs = []
    if model.network(inputs, d).records_network_risk:  # the exact risk of the network at every output
        pairs = [Demand("memory", 8.0 * 7 * n * n, f"sgd.n_neurons = {n} (the network risk is recorded)",
                        "exact network risk (N x N cosine and kernel matrices)")]
    # sgd.batch_seeds: an experiment advances a case's S seeds as one simulation, holding S of everything
    batch = len(sgd["seeds"]) if sgd["batch_seeds"] else 1
    per = f" (x {batch}: sgd.batch_seeds = true with {batch} sgd.seeds)" if batch > 1 else ""
    return [Demand(item.kind, item.amount * batch, item.field + per, item.what) for item in pairs + [
        Demand("memory", 8.0 * 4 * n * d, f"sgd.n_neurons = {n} with {dim_field}", "SGD weights (N x d, 4 copies)"),
        Demand("memory", 8.0 * 3 * b * n, f"sgd.batch_size = {b} with sgd.n_neurons = {n}",
               "SGD pre-activations (B x N, 3 arrays)"),
        Demand("memory", 8.0 * 2 * min(b * d, 2 * 1024 * 1024 + b * d), f"sgd.batch_size = {b} with {dim_field}",
               "SGD data block"),
        Demand("memory", 8.0 * 2 * outputs * n * coords, f"output.n_outputs = {config['output']['n_outputs']} with "
               f"sgd.n_neurons = {n}", "recorded neuron invariants")]] + [
        Demand("disk", 8.0 * outputs * n * coords, f"output.n_outputs = {config['output']['n_outputs']} with "
               f"sgd.n_neurons = {n}", "result file"),
        Demand("sgd_steps", steps, f"output.t_final = {config['output']['t_final']!r} with sgd.step_size = "
               f"{sgd['step_size']!r}", "SGD steps t_final / ε"),
        Demand("sgd_work", steps * b * n * d, f"sgd.step_size = {sgd['step_size']!r}, sgd.batch_size = {b}, "
               f"sgd.n_neurons = {n}, {dim_field}", "SGD multiply-adds (t_final / ε) B N d"),
    ]


def _chaos_demands(config: Mapping[str, Any], problem: Any = None) -> list[Demand]:
    """What the finite-width runs of the configuration's problem report
    (:meth:`~reduced_pde.analysis.finite_width.FiniteWidth.costs`: memory of the m-neuron networks, of the
    mean-field nodes and of the prediction's batched laws, RK4 steps and multiply-adds), and the result file."""
    from reduced_pde.running.config import finite_width_hook, model_of, output_times, resolved

    chaos = config["chaos"]
    d = model_of(config).dimension(resolved(config))
    if math.isinf(d):
        raise ValueError("chaos needs a finite dimension: data.dimension = \"inf\"; the m-neuron networks live in R^d")
    hook = finite_width_hook(config, problem=problem)
    items = [Demand(*cost) for cost in hook.costs(chaos, output_times(config))]
    seeds = len(chaos["seeds"])
    field = f"chaos.widths = {chaos['widths']!r} with {seeds} chaos.seeds and data.dimension = {int(d)}"
    outputs = int(config["output"]["n_outputs"]) + 1
    items.append(Demand("disk", 8.0 * outputs * len(chaos["widths"]) * seeds * 12, field, "result file"))
    return items


def demands(config: Mapping[str, Any], command: str, problem: Any = None) -> list[Demand]:
    """The resources ``command`` ("pde", "sgd", "gibbs" or "chaos") needs for ``config`` (module docstring)."""
    if command not in ("pde", "sgd", "gibbs", "chaos"):
        raise ValueError(f"command = {command!r}; allowed: 'pde', 'sgd', 'gibbs', 'chaos'")
    if command == "sgd":
        return _sgd_demands(config)
    if command == "chaos":
        return _chaos_demands(config, problem)
    if problem is None:
        from reduced_pde.running.config import build_problem

        problem = build_problem(config)
    return _pde_demands(config, problem, command)


def check_resources(config: Mapping[str, Any], commands: Sequence[str], *, allow_large: bool = False,
                    output: str | Path | None = None, problem: Any = None) -> list[Demand]:
    """Refuse (ValueError naming the field, the estimate and the limit) a run of each of ``commands``
    that this machine cannot hold, or (unless ``allow_large``) that is really large (module
    docstring).  ``output``: the result file or folder, whose disk must hold the files.  Returns the
    demands."""
    everything: list[Demand] = []
    memory_available = available_memory()
    for command in commands:
        items = demands(config, command, problem)
        everything += items
        if command == "sgd" and items:
            eps, gap = float(config["sgd"]["step_size"]), smallest_output_interval(config)
            if eps > gap:
                raise ValueError(f"sgd.step_size = {config['sgd']['step_size']!r} is larger than the smallest "
                                 f"output interval {gap:.3g} (output.t_first / output.n_outputs / output.t_final): "
                                 "no SGD step would fall between two outputs; use a step <= it")
        memory = [d for d in items if d.kind == "memory"]
        total = sum(d.amount for d in memory)
        if memory:
            top = max(memory, key=lambda d: d.amount)
            text = (f"{top.field} implies {_gib(top.amount)} for the {top.what} ({command}: {_gib(total)} in all)")
            if total > 0.8 * memory_available:
                raise ValueError(f"{text}; this machine has {_gib(memory_available)} available: reduce it")
            if total > MEMORY_LIMIT and not allow_large:
                raise ValueError(f"{text}, more than {_gib(MEMORY_LIMIT)}; reduce it or pass --allow-large "
                                 "(allow_large=True)")
        for d in items:
            if d.kind == "sgd_steps" and not d.amount <= SGD_STEP_HARD_LIMIT:
                raise ValueError(f"{d.field} implies {d.amount:.3g} SGD steps, more than 2^53 (the times kε would "
                                 "no longer be exact); use a larger step or a shorter run")
            if d.kind == "pde_time" and not math.isfinite(d.amount):
                raise ValueError(f"{d.field} implies an infinite {d.what}; use a shorter run")
            if d.kind == "chaos_steps" and not d.amount <= SGD_STEP_HARD_LIMIT:
                raise ValueError(f"{d.field} implies {d.amount:.3g} RK4 steps, more than 2^53; use a larger dt or "
                                 "a shorter run")
            limit = {"sgd_steps": SGD_STEP_LIMIT, "sgd_work": SGD_WORK_LIMIT, "pde_time": PDE_TIME_LIMIT,
                     "chaos_steps": SGD_STEP_LIMIT, "chaos_work": SGD_WORK_LIMIT}.get(d.kind)
            if limit is not None and d.amount > limit and not allow_large:
                raise ValueError(f"{d.field} implies {d.amount:.3g} {d.what}, more than {limit:.3g}; reduce it or "
                                 "pass --allow-large (allow_large=True)")
    if output is not None:
        disk = sum(d.amount for d in everything if d.kind == "disk")
        folder = Path(output)
        while not folder.exists() and folder.parent != folder:
            folder = folder.parent
        free = shutil.disk_usage(folder).free
        if disk > free:
            top = max((d for d in everything if d.kind == "disk"), key=lambda d: d.amount)
            raise ValueError(f"{top.field} implies a result file of {_gib(disk)}; {str(folder)!r} has "
                             f"{_gib(free)} free: reduce it or write elsewhere")
    return everything
