"""The run pipeline: from a validated configuration to a recorded trajectory (and the studies built
on runs: experiments, plateau reports, Gibbs states, escape-time sweeps).

Every function takes a configuration from :func:`~reduced_pde.running.config.load_config` (or
:func:`~reduced_pde.running.config.parse_config`); the model is found in the registry, the reduced
problem and the full-dimensional network come from it, and the solver is chosen by the run's
settings and the problem's dimension only.  The stored trajectory's ``config`` holds the user's
inputs (``config.*``: they rebuild the run, :func:`~reduced_pde.running.config.unflatten`) and its
``derived`` what the problem and solver derived from them (``derived.*``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reduced_pde.problem import ReducedProblem
from reduced_pde.running.config import (
    build_problem,
    build_schedule,
    coordinate_rates,
    flatten,
    grid_table,
    model_of,
    noise_parameters,
    output_times,
    pde_solver_name,
    resolved,
    sgd_config,
    sweep_cases,
    unflatten,
)
from reduced_pde.running.resources import check_resources
from reduced_pde.running.storage import CheckpointFile, read_trajectory, write_trajectory
from solvers.controller import run_simulation
from solvers.results import Trajectory

__all__ = ["run_pde", "run_sgd_seed", "run_sgd_seed_batch", "run_experiment", "experiment_figures", "plateau_report", "checkpoint_path"]


def checkpoint_path(output: str | Path) -> Path:
    """Where a run writing ``output`` keeps its checkpoint: ``OUTPUT.checkpoint``."""
    output = Path(output)
    return output.with_name(output.name + ".checkpoint")


def _store(path: str | Path | None) -> CheckpointFile | None:
    return None if path is None else CheckpointFile(path)


def _derived(problem: ReducedProblem, solver_config: dict[str, Any]) -> dict[str, Any]:
    """What the problem and the solver derived from the inputs (truncation degrees, time step bound, ...)."""
    return {**problem.config(), **solver_config}


def uniform_line(config: dict[str, Any], problem: ReducedProblem) -> tuple[str, Any]:
    """(coordinate, :class:`~solvers.grid.UniformGrid1D`) of a one-coordinate run's grid (the
    Scharfetter–Gummel solver and the Gibbs fixed point need equal cells).  A ``[grid]`` table for the
    coordinate must be uniform (ValueError otherwise); the model's default axis (which may be clustered,
    as on the sphere) is laid out with equal cells on the same interval with the same number of cells."""
    from solvers.grid import UniformGrid1D
    from solvers.tensor_grid import TensorGrid

    if len(problem.coordinate_names) != 1:
        raise ValueError(f"needs a one-coordinate reduction; this problem has {problem.coordinate_names}")
    axis = TensorGrid.from_table(grid_table(config, problem), problem.coordinate_names).axes[0]
    line = UniformGrid1D(float(axis.edges[0]), float(axis.edges[-1]), int(axis.cells))
    if axis.name in config["grid"] and \
            not np.allclose(line.edges, axis.edges, rtol=0, atol=1e-12 * max(1.0, abs(line.upper))):
        raise ValueError(f"grid.{axis.name} must be uniform (equal cells) for the Scharfetter–Gummel solver "
                         "and the Gibbs fixed point")
    return axis.name, line


def make_pde_solver(config: dict[str, Any], problem: ReducedProblem | None = None, *,
                    allow_large: bool = False) -> tuple[Any, str, dict[str, Any]]:
    """(solver, trajectory kind, static fields) for the reduced PDE of ``config``: Scharfetter–Gummel
    finite volumes with noise / weight decay / implicit stepping, characteristics for
    ``pde.solver = "lagrangian"``, finite volumes otherwise.  ``allow_large``: as in :func:`run_pde`."""
    problem = build_problem(config) if problem is None else problem
    schedule = build_schedule(config)
    pde = config["pde"]
    route = pde_solver_name(config, problem)
    if route == "lagrangian":
        from solvers.lagrangian import LagrangianSolver

        particles = pde["n_particles"]
        solver = LagrangianSolver(problem, n_particles=list(particles) if isinstance(particles, list) else particles,
                                  sampling=pde["sampling"], schedule=schedule, rates=coordinate_rates(config),
                                  rtol=float(pde["rtol"]), atol=1e-3 * float(pde["rtol"]), method=pde["ode_method"],
                                  allow_large=allow_large)
        return solver, "pde_lagrangian", solver.static_fields()
    if route == "fokker_planck":
        from solvers.fokker_planck import FokkerPlanckSolver1D

        beta, lam = noise_parameters(config)
        name, line = uniform_line(config, problem)
        stepping = pde["time_stepping"] if pde["time_stepping"] != "auto" else "implicit"
        solver = FokkerPlanckSolver1D(problem, line, beta, lam, time_stepping=stepping, cfl=float(pde["cfl"]),
                                      schedule=schedule)
        return solver, "pde_fokker_planck", {f"{name}_centers": line.centers, f"{name}_edges": line.edges}
    from solvers.finite_volume import FiniteVolumeSolver
    from solvers.tensor_grid import TensorGrid

    grid = TensorGrid.from_table(grid_table(config, problem), tuple(problem.coordinate_names))

    solver = FiniteVolumeSolver(problem, grid, scheme=pde["scheme"], cfl=float(pde["cfl"]), schedule=schedule,
                                  kernel=pde["kernel"], rates=coordinate_rates(config), adapt=_remap_policy(config),
                                  allow_large=allow_large)
    return solver, "pde_finite_volume", solver.static_fields()


def _remap_policy(config: dict[str, Any]) -> Any:
    """The :class:`~solvers.adaptive_grid.RemapPolicy` of ``grid.adapt = "remap"``, the
    :class:`~solvers.moving_grid.MovePolicy` of ``"move"`` (None for "none")."""
    from solvers.adaptive_grid import RemapPolicy
    from solvers.moving_grid import MovePolicy

    grid = config["grid"]
    if grid.get("adapt", "none") == "none":
        return None
    policy = MovePolicy if grid["adapt"] == "move" else RemapPolicy
    return policy(tail=grid["adapt_tail"], margin=grid["adapt_margin"], narrowing=grid["adapt_narrowing"])


def run_pde(config: dict[str, Any], *, checkpoint: str | Path | None = None, resume: bool = False,
            progress: bool = True, checkpoint_every: float = 60.0, allow_large: bool = False) -> Trajectory:
    """Solve the reduced PDE of ``config`` through its output times (see :func:`make_pde_solver`).

    Before anything is allocated the run's resources are checked
    (:func:`~reduced_pde.running.resources.check_resources`): a run this machine cannot hold is
    refused, and so, unless ``allow_large`` (the CLI's ``--allow-large``), is a really large one (more
    than 4 GiB, τ = ∫ξ dt > 1e7), with a ValueError naming the field, the estimate and the limit."""
    problem = build_problem(config)
    check_resources(config, ("pde",), allow_large=allow_large, problem=problem)
    solver, kind, static = make_pde_solver(config, problem, allow_large=allow_large)
    return run_simulation(solver, output_times(config), kind=kind, config=flatten(config),
                          derived=_derived(problem, solver.config()), static_fields=static,
                          checkpoint=_store(checkpoint), resume=resume, progress=progress,
                          checkpoint_every=checkpoint_every)


def make_sgd_simulation(config: dict[str, Any], seed: int | Sequence[int], *,
                        allow_large: bool = False) -> tuple[Any, ReducedProblem]:
    """The full-dimensional SGD of ``config`` (at ``sgd.dimension`` when set) with one seed: the model's
    network (:meth:`Model.network`) trained by the one engine (:class:`solvers.sgd.SGDSimulation`); with
    a list of seeds, those seeds as one :class:`solvers.sgd.SGDSeedBatch`."""
    from solvers.sgd import SGDSeedBatch, SGDSimulation

    config = sgd_config(config)
    inputs = resolved(config)
    model = model_of(config)
    problem = model.build_problem(inputs)
    dimension = model.dimension(inputs)
    if math.isinf(dimension):
        raise ValueError("SGD needs a finite dimension: set data.dimension, or sgd.dimension for a d = inf reduction")
    beta, lam = noise_parameters(config)
    sgd = config["sgd"]
    options = dict(n_neurons=int(sgd["n_neurons"]), step_size=float(sgd["step_size"]),
                   batch_size=int(sgd["batch_size"]), schedule=build_schedule(config), beta=beta, weight_decay=lam,
                   second_layer_rate=model.rates(inputs).get("a", 1.0), precision=sgd.get("precision", "float64"),
                   threads=sgd.get("threads", 0) or None, allow_large=allow_large)
    network = model.network(inputs, int(dimension))
    if isinstance(seed, (list, tuple)):
        return SGDSeedBatch(network, problem, seeds=[int(s) for s in seed], **options), problem
    return SGDSimulation(network, problem, seed=int(seed), **options), problem


def run_sgd_seed(config: dict[str, Any], seed: int, *, checkpoint: str | Path | None = None,
                 resume: bool = False, progress: bool = True, checkpoint_every: float = 60.0,
                 allow_large: bool = False) -> Trajectory:
    """Full-dimensional SGD of ``config`` with one seed; the stored ``sgd.seeds`` is ``[seed]``.
    Resources are checked first as in :func:`run_pde` (more than 4 GiB, 1e9 steps or 1e15
    multiply-adds need ``allow_large``)."""
    check_resources(config, ("sgd",), allow_large=allow_large)
    simulation, problem = make_sgd_simulation(config, seed, allow_large=allow_large)
    run = sgd_config(config)  # the inputs of this run: data.dimension = the SGD's d
    inputs = {**run, "sgd": {**run["sgd"], "seeds": [int(seed)]}}
    return run_simulation(simulation, output_times(config), kind="sgd", config=flatten(inputs),
                          derived=_derived(problem, simulation.config()), checkpoint=_store(checkpoint),
                          resume=resume, progress=progress, checkpoint_every=checkpoint_every)


def run_sgd_seed_batch(config: dict[str, Any], seeds: Sequence[int], *,
                       checkpoints: Sequence[str | Path] | None = None, resume: bool | Sequence[bool] = False,
                       progress: bool = True, checkpoint_every: float = 60.0,
                       allow_large: bool = False) -> list[Trajectory]:
    """:func:`run_sgd_seed` for each of ``seeds``, run as one simulation (:class:`solvers.sgd.SGDSeedBatch`:
    a leading seed axis, one compiled pass per step over all seeds); each seed's trajectory, stored
    configuration and checkpoint (``checkpoints``: one path per seed) are those of its separate run, and
    its iterates bitwise so.  ``resume``: one flag, or one per seed (a seed without a checkpoint starts
    afresh beside the resumed ones)."""
    from solvers.controller import run_simulation_group

    seeds = [int(s) for s in seeds]
    check_resources(config, ("sgd",), allow_large=allow_large)
    batch, problem = make_sgd_simulation(config, seeds, allow_large=allow_large)
    run = sgd_config(config)
    configs = [flatten({**run, "sgd": {**run["sgd"], "seeds": [seed]}}) for seed in seeds]
    stores = [CheckpointFile(path) for path in checkpoints] if checkpoints is not None else None
    return run_simulation_group(batch.advance, batch.members, output_times(config), kind="sgd", configs=configs,
                                derived=[_derived(problem, sim.config()) for sim in batch.members],
                                checkpoints=stores, resume=resume, progress=progress,
                                checkpoint_every=checkpoint_every)


def _sgd_batch_job(job: tuple[dict[str, Any], list[int], list[str], bool]) -> tuple[list[str], float]:
    """Worker: the seeds of one case as one batch, each written to its file (resuming left-over checkpoints)."""
    case, seeds, paths, allow_large = job
    checkpoints = [checkpoint_path(path) for path in paths]
    began = time.perf_counter()
    trajectories = run_sgd_seed_batch(case, seeds, checkpoints=checkpoints, resume=[c.exists() for c in checkpoints],
                                      progress=False, allow_large=allow_large)
    for path, trajectory, checkpoint in zip(paths, trajectories, checkpoints):
        write_trajectory(path, trajectory)
        checkpoint.unlink(missing_ok=True)
    return paths, time.perf_counter() - began


def _sgd_job(job: tuple[dict[str, Any], int, str, bool]) -> tuple[str, float]:
    """Worker: one SGD seed of one case, written to its file (resuming a left-over checkpoint)."""
    case, seed, path, allow_large = job
    checkpoint = checkpoint_path(path)
    began = time.perf_counter()
    trajectory = run_sgd_seed(case, seed, checkpoint=checkpoint, resume=checkpoint.exists(), progress=False,
                              allow_large=allow_large)
    write_trajectory(path, trajectory)
    checkpoint.unlink(missing_ok=True)
    return path, time.perf_counter() - began


def run_experiment(config: dict[str, Any], outdir: str | Path, *, skip_sgd: bool = False, processes: int = 2,
                   progress: bool = True, log=print, allow_large: bool = False) -> dict[str, Any]:
    """For every case of the ``[sweep]`` table: one reduced solve and one SGD run per seed, written to
    ``outdir`` (``<case>_pde.h5``, ``<case>_sgd_seed<k>.h5``), and the figures ``risk.png`` and
    ``law.png``.  Returns ``{"files", "figures", "timings"}``.  Every case's resources are checked
    before the first run (``allow_large`` as in :func:`run_pde`).  With ``sgd.batch_seeds`` a case's
    seeds run as one simulation (:func:`run_sgd_seed_batch`; the same files, bitwise the same results)
    and ``processes`` spreads the cases."""
    from solvers.controller import map_in_processes

    cases = sweep_cases(config)
    for _, case in cases:
        check_resources(case, ("pde",) if skip_sgd else ("pde", "sgd"), allow_large=allow_large, output=outdir)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    trajectories: list[Trajectory] = []
    timings, jobs, batch_jobs, files = [], [], [], []
    for label, case in cases:
        tag = label.replace("=", "").replace(".", "p") or "run"
        began = time.perf_counter()
        pde = run_pde(case, progress=False, allow_large=allow_large)
        timings.append(f"{label or 'run'}: PDE ({case['pde']['solver']}) {time.perf_counter() - began:.2f} s")
        files.append(write_trajectory(outdir / f"{tag}_pde.h5", pde))
        trajectories.append(pde)
        if not skip_sgd and case["sgd"]["batch_seeds"]:
            seeds = [int(seed) for seed in case["sgd"]["seeds"]]
            batch_jobs.append((case, seeds, [str(outdir / f"{tag}_sgd_seed{seed}.h5") for seed in seeds], allow_large))
        elif not skip_sgd:
            jobs += [(case, int(seed), str(outdir / f"{tag}_sgd_seed{seed}.h5"), allow_large)
                     for seed in case["sgd"]["seeds"]]
    log("\n".join("  " + line for line in timings))
    if jobs:
        log(f"running {len(jobs)} SGD runs on {min(processes, len(jobs))} process(es) (a Dask LocalCluster when > 1)")
        for path, seconds in map_in_processes(_sgd_job, jobs, processes, progress="SGD runs" if progress else None):
            timings.append(f"{Path(path).name}: {seconds:.1f} s")
            files.append(Path(path))
            trajectories.append(read_trajectory(path))
    if batch_jobs:
        log(f"running {len(batch_jobs)} batches of SGD seeds on {min(processes, len(batch_jobs))} process(es)")
        for paths, seconds in map_in_processes(_sgd_batch_job, batch_jobs, processes,
                                               progress="SGD batches" if progress else None):
            timings.append(f"{', '.join(Path(path).name for path in paths)} (one batch): {seconds:.1f} s")
            files += [Path(path) for path in paths]
            trajectories += [read_trajectory(path) for path in paths]
    figures = experiment_figures(trajectories, outdir)
    return {"files": files, "figures": figures, "timings": timings}


def experiment_figures(trajectories: Sequence[Trajectory], outdir: str | Path) -> list[Path]:
    """The figures of an experiment, drawn from its result files alone (so that they can be redrawn
    from stored data): ``risk.png`` (every case) and ``law.png`` (the last case's PDE against its SGD
    seeds at ``output.law_times``, else t = 0 and three log-spaced times).  The title and the law
    times come from the configuration stored in the last PDE file."""
    from reduced_pde.running.plotting import case_key, plot_law_evolution, plot_marginals, plot_risk_comparison

    outdir = Path(outdir)
    pdes = [t for t in trajectories if t.kind != "sgd"]
    if not pdes:
        raise ValueError("experiment_figures: needs at least one PDE result file among the trajectories")
    law_pde = pdes[-1]
    config = unflatten(law_pde.config)
    sgd_table = config["sgd"]
    title = model_of(config).describe(resolved(config)) + ", "
    if sgd_table["dimension"] != "data":
        title += f"SGD at d = {sgd_table['dimension']}, "
    title += f"N = {sgd_table['n_neurons']}, ε = {sgd_table['step_size']}, B = {sgd_table['batch_size']}"
    figures = [plot_risk_comparison(trajectories, outdir / "risk.png", title=title)]
    law_sgd = [t for t in trajectories if t.kind == "sgd" and case_key(t) == case_key(law_pde)]
    t_final = float(config["output"]["t_final"])
    law_times = config["output"]["law_times"] or [0.0] + list(
        np.geomspace(max(float(config["output"]["t_first"]) * 10, t_final / 1e3), t_final, 3))
    if law_pde.coordinates == ("r",):
        figures.append(plot_law_evolution(law_pde, law_sgd, law_times, outdir / "law.png",
                                          title=f"law of |w|, κ = {law_pde.config.get('initial.kappa')}; " + title))
    else:
        figures.append(plot_marginals(law_pde, law_sgd, law_times, outdir / "law.png",
                                      title="marginal laws of the invariants; " + title))
    return figures


# ---- plateau report -------------------------------------------------------------------------------
def plateau_report(trajectory: Trajectory, *, threshold: float = 0.1, smoothing: float = 0.1,
                   min_duration: float = 0.3, ignore_before: float | None = None,
                   max_degree: int | None = None) -> dict[str, Any]:
    """Plateaus of a stored risk curve, matched to the Hermite theory levels of its target, and the
    network's Hermite coefficients m̂_k(t) along θ* when the file holds the law as particles of a
    single-index problem.  The problem is rebuilt from the file and read through its
    :meth:`~reduced_pde.problem.ReducedProblem.hermite_structure` only; a problem without one (MMN18's
    mixture) gets the plateaus alone.

    Returns ``{"plateaus", "theory", "matches", "order_parameters" (time, degrees, (T, K)) or None,
    "target_coefficients", "unlearnable" [(degree, energy φ̂_k²)]}``: the target's components the
    activation cannot represent (their energy is a floor under every level)."""
    from reduced_pde.analysis.plateaus import (
        detect_plateaus,
        hermite_block_energies,
        hermite_order_parameters,
        hermite_plateau_heights,
        match_plateaus,
        unlearnable_degrees,
    )

    plateaus = detect_plateaus(trajectory.time, trajectory.risk, threshold=threshold, smoothing=smoothing,
                               min_duration=min_duration, ignore_before=ignore_before)
    out: dict[str, Any] = {"plateaus": plateaus, "theory": [], "matches": [], "order_parameters": None,
                           "target_coefficients": None, "unlearnable": []}
    structure = build_problem(unflatten(trajectory.config)).hermite_structure()
    if structure is None:
        return out
    theory = hermite_plateau_heights(structure, max_degree=max_degree)
    out["theory"] = theory
    top = max_degree if max_degree is not None else structure.target.exact_degree
    if top is not None and structure.activation is not None:
        energies = hermite_block_energies(structure, top)
        out["unlearnable"] = [(k, float(energies[k])) for k in unlearnable_degrees(structure, top) if energies[k] > 0]
    out["matches"] = match_plateaus(plateaus, theory)
    degrees = [level.next_degree for level in theory if level.next_degree is not None]
    if degrees and structure.target.coefficients is not None and trajectory.particle_law(0) is not None:
        values = np.array([hermite_order_parameters(structure, *trajectory.particle_law(i), degrees,
                                                    normalized=True) for i in range(trajectory.time.size)])
        out["order_parameters"] = (trajectory.time, np.array(degrees), values)
        out["target_coefficients"] = np.asarray(structure.target.coefficients(max(degrees)))
    return out


# ---- Gibbs states ------------------------------------------------------------------------------------
def gibbs_study(config: dict[str, Any], betas: Sequence[float] | None = None) -> dict[str, Any]:
    """Self-consistent Gibbs states p* ∝ J e^{−βψ_λ(·; p*)} of a one-coordinate problem on the run's
    (uniform) grid, for ``noise.beta`` or each β of ``betas`` (then with the certified noiseless
    optimum of ½R + (λ/2)E x² for comparison).  Returns ``{"betas", "points" (GibbsFixedPoint),
    "noiseless_optimum" or None, "centers", "edges", "coordinate", "config", "derived"}``."""
    from reduced_pde.free_energy import gibbs_fixed_point, noiseless_optimum

    problem = build_problem(config)
    name, line = uniform_line(config, problem)
    beta, lam = noise_parameters(config)
    sweep = bool(betas)
    betas = [float(b) for b in betas] if betas else [beta]
    if any(not (math.isfinite(b) and b > 0) for b in betas):
        raise ValueError(f"gibbs: needs finite β > 0 (noise.beta or --betas), got {betas}")
    for b in betas:
        problem.check_noise(b, lam)
    points = [gibbs_fixed_point(problem, line.centers, line.spacing, b, lam) for b in betas]
    best = noiseless_optimum(problem, line.centers, line.spacing, lam) if sweep else None
    return {"betas": betas, "points": points, "noiseless_optimum": best, "centers": line.centers,
            "edges": line.edges, "coordinate": name, "config": flatten(config),
            "derived": _derived(problem, {})}
