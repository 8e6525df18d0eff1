"""Command line: ``reduced-pde {pde,sgd,experiment,gibbs,plot,law,plateaus,escape-times} ...``.

    reduced-pde pde CONFIG [-o FILE] [--set table.key=value ...] [--resume] [--checkpoint-every S]
    reduced-pde sgd CONFIG [-o FILE] [--seed S] [--set ...] [--resume] [--checkpoint-every S]
    reduced-pde experiment CONFIG [--outdir DIR] [--set ...] [--skip-sgd]
    reduced-pde plot FILE [FILE ...] -o FIGURE.png
    reduced-pde law PDE_FILE SGD_FILE [...] --times T [T ...] -o FIGURE.png
    reduced-pde gibbs CONFIG -o FILE [--betas B ...] [--figure PNG]   # Gibbs fixed point (noise)
    reduced-pde plateaus FILE [...] [-o FIGURE.png] [--threshold S] [--smoothing D] [--min-duration D]
    reduced-pde plateaus --compare PDE_FILE SGD_FILE [...] -o OVERLAY.png
    reduced-pde escape-times -k K -d D [D ...] [--level Q] [--particles N] [-o FILE.h5] [--figure PNG]

``experiment`` runs, for every value of the ``[sweep]`` table, one reduced-PDE solve and one SGD
run per seed, writes their HDF5 files to DIR and draws ``DIR/risk.png`` and ``DIR/law.png``.
Errors in the configuration are reported as one line naming the field and exit with status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from solvers.results import Trajectory

from .config import (
    build_problem,
    build_schedule,
    flatten,
    load_config,
    output_times,
    solution_grid,
    sweep_cases,
)
from .storage import read_trajectory, write_config_attributes, write_trajectory

__all__ = ["main", "run_pde", "run_sgd_seed"]


def run_pde(config: dict[str, Any], *, checkpoint: Path | None = None, resume: bool = False,
            progress: bool = True, checkpoint_every: float = 60.0) -> Trajectory:
    """Solve the reduced PDE described by ``config`` (finite-volume or Lagrangian)."""
    from .config import coordinate_rates, noise_parameters, pde_solver_name, tensor_grid
    from .runner import run_simulation

    problem = build_problem(config)
    schedule = build_schedule(config)
    times = output_times(config)
    pde = config["pde"]
    flat = {**flatten(config), **problem.config()}
    route = pde_solver_name(config, problem)
    if route == "fokker_planck":  # noise, weight decay or implicit stepping: Scharfetter–Gummel
        from solvers.fokker_planck import FokkerPlanckSolver1D

        beta, lam = noise_parameters(config)
        stepping = pde["time_stepping"] if pde["time_stepping"] != "auto" else "implicit"
        grid = solution_grid(config)
        solver = FokkerPlanckSolver1D(problem, grid, beta, lam, time_stepping=stepping,
                                      cfl=float(pde["cfl"]), schedule=schedule)
        return run_simulation(solver, times, kind="pde_fokker_planck",
                              config={**solver.config(), **flat},
                              static_fields={"r_centers": grid.centers, "r_edges": grid.edges},
                              checkpoint=checkpoint, resume=resume, progress=progress,
                              checkpoint_every=checkpoint_every)
    if route == "lagrangian":
        from solvers.lagrangian import LagrangianSolver

        particles = pde["n_particles"]
        particles = [int(c) for c in particles] if isinstance(particles, list) else int(particles)
        solver = LagrangianSolver(problem, n_particles=particles, sampling=pde["sampling"],
                                  schedule=schedule, rates=coordinate_rates(config, problem),
                                  rtol=float(pde["rtol"]), atol=1e-3 * float(pde["rtol"]),
                                  method=pde["ode_method"])
        return run_simulation(solver, times, kind="pde_lagrangian", config={**solver.config(), **flat},
                              static_fields=solver.static_fields(), checkpoint=checkpoint, resume=resume,
                              progress=progress, checkpoint_every=checkpoint_every)
    if route == "finite_volume_nd":
        from solvers.finite_volume_nd import FiniteVolumeSolverND

        grid = tensor_grid(config, problem)
        solver = FiniteVolumeSolverND(problem, grid, scheme=pde["scheme"], cfl=float(pde["cfl"]),
                                      schedule=schedule, kernel=pde["kernel"],
                                      rates=coordinate_rates(config, problem))
        return run_simulation(solver, times, kind="pde_finite_volume_nd",
                              config={**solver.config(), **flat}, static_fields=solver.static_fields(),
                              checkpoint=checkpoint, resume=resume, progress=progress,
                              checkpoint_every=checkpoint_every)
    from solvers.finite_volume import FiniteVolumeSolver1D

    grid = solution_grid(config)
    solver = FiniteVolumeSolver1D(problem, grid, scheme=pde["scheme"], cfl=float(pde["cfl"]),
                                  schedule=schedule, kernel=pde["kernel"])
    static = {"r_centers": grid.centers, "r_edges": grid.edges}
    return run_simulation(solver, times, kind="pde_finite_volume", config={**solver.config(), **flat},
                          static_fields=static, checkpoint=checkpoint, resume=resume, progress=progress,
                          checkpoint_every=checkpoint_every)


def run_sgd_seed(config: dict[str, Any], seed: int, *, checkpoint: Path | None = None,
                 resume: bool = False, progress: bool = True, checkpoint_every: float = 60.0) -> Trajectory:
    """Run full-dimensional SGD for ``config`` with one seed (projected SGD on the sphere for
    ``data.model = "single_index_sphere"``)."""
    from solvers.sgd import SGDSimulation

    from .config import noise_parameters, sgd_config
    from .runner import run_simulation

    config = sgd_config(config)
    problem = build_problem(config)
    beta, lam = noise_parameters(config)
    sgd = config["sgd"]
    names = tuple(problem.coordinate_names)
    if config["data"]["model"] != "isotropic_gaussian_mixture" and names != ("s",):
        # single-/multi-index SGD in full dimension (trained second layer, ball or sphere)
        from solvers.index_sgd import IndexSGDSimulation

        from .config import coordinate_rates

        if math.isfinite(beta) or lam > 0:
            raise ValueError(f"[noise] is implemented for the one-coordinate reductions only; this problem "
                             f"has coordinates {names} (noise.beta = {beta}, noise.weight_decay = {lam})")
        simulation = IndexSGDSimulation(problem, n_neurons=int(sgd["n_neurons"]),
                                        step_size=float(sgd["step_size"]), batch_size=int(sgd["batch_size"]),
                                        schedule=build_schedule(config), seed=int(seed),
                                        second_layer_rate=coordinate_rates(config, problem).get("a", 1.0))
    else:
        if config["data"]["model"] == "single_index_sphere":  # projected SGD on S^{d-1}
            from solvers.sphere_sgd import SphereSGDSimulation as SGDSimulation
        simulation = SGDSimulation(problem, n_neurons=int(sgd["n_neurons"]), step_size=float(sgd["step_size"]),
                                   batch_size=int(sgd["batch_size"]), schedule=build_schedule(config),
                                   seed=int(seed), beta=beta, weight_decay=lam)
    flat = {**flatten(config), **problem.config(), "sgd.seed": int(seed)}
    flat.pop("sgd.seeds", None)
    return run_simulation(simulation, output_times(config), kind="sgd", config=flat,
                          checkpoint=checkpoint, resume=resume, progress=progress,
                          checkpoint_every=checkpoint_every)


def _checkpoint_path(output: Path) -> Path:
    return output.with_name(output.name + ".checkpoint")


def _cmd_pde(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.set)
    output = Path(args.output)
    trajectory = run_pde(config, checkpoint=_checkpoint_path(output), resume=args.resume,
                         progress=not args.quiet, checkpoint_every=args.checkpoint_every)
    write_trajectory(output, trajectory)
    _checkpoint_path(output).unlink(missing_ok=True)
    print(f"wrote {output}  (final risk {trajectory.risk[-1]:.6g}, "
          f"wall time {trajectory.diagnostics.get('wall_time', float('nan')):.2f} s)")


def _cmd_sgd(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.set)
    seed = args.seed if args.seed is not None else config["sgd"]["seeds"][0]
    output = Path(args.output)
    trajectory = run_sgd_seed(config, seed, checkpoint=_checkpoint_path(output), resume=args.resume,
                              progress=not args.quiet, checkpoint_every=args.checkpoint_every)
    write_trajectory(output, trajectory)
    _checkpoint_path(output).unlink(missing_ok=True)
    print(f"wrote {output}  (final risk {trajectory.risk[-1]:.6g}, "
          f"wall time {trajectory.diagnostics.get('wall_time', float('nan')):.1f} s)")


def _sgd_job(job: tuple[dict[str, Any], int, str]) -> tuple[str, float]:
    """Worker: one SGD seed of one case, written to its file (resuming a left-over checkpoint)."""
    case, seed, path = job
    output = Path(path)
    checkpoint = _checkpoint_path(output)
    began = time.perf_counter()
    trajectory = run_sgd_seed(case, seed, checkpoint=checkpoint, resume=checkpoint.exists(),
                              progress=False)
    write_trajectory(output, trajectory)
    checkpoint.unlink(missing_ok=True)
    return path, time.perf_counter() - began


def _cmd_experiment(args: argparse.Namespace) -> None:
    from .plotting import (
        case_key,
        coordinate_names,
        plot_law_evolution,
        plot_marginals,
        plot_risk_comparison,
    )
    from .runner import map_in_processes

    config = load_config(args.config, args.set)
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    trajectories: list[Trajectory] = []
    timings = []
    jobs = []
    for label, case in sweep_cases(config):
        tag = label.replace("=", "").replace(".", "p") or "run"
        began = time.perf_counter()
        pde = run_pde(case, progress=False)
        timings.append(f"{label or 'run'}: PDE ({case['pde']['solver']}) {time.perf_counter() - began:.2f} s")
        write_trajectory(outdir / f"{tag}_pde.h5", pde)
        trajectories.append(pde)
        if not args.skip_sgd:
            jobs += [(case, int(seed), str(outdir / f"{tag}_sgd_seed{seed}.h5")) for seed in case["sgd"]["seeds"]]
    print("\n".join("  " + line for line in timings))
    if jobs:
        print(f"running {len(jobs)} SGD runs on {min(args.processes, len(jobs))} process(es)")
        for path, seconds in map_in_processes(_sgd_job, jobs, args.processes,
                                              progress=None if args.quiet else "SGD runs"):
            timings.append(f"{Path(path).name}: {seconds:.1f} s")
            trajectories.append(read_trajectory(path))
    sgd_table = config["sgd"]
    if config["data"]["model"] == "isotropic_gaussian_mixture":
        title = f"d = {config['data']['dimension']}, Δ = {config['data']['delta']}, "
    else:
        activation = config["activation"].get("name", "?")
        title = f"{config['data']['model']}, d = {config['data']['dimension']}, σ = {activation}, "
    if sgd_table["dimension"] != "data":
        title += f"SGD at d = {sgd_table['dimension']}, "
    title += f"N = {sgd_table['n_neurons']}, ε = {sgd_table['step_size']}, B = {sgd_table['batch_size']}"
    risk_png = plot_risk_comparison(trajectories, outdir / "risk.png", title=title)
    print(f"wrote {risk_png}")
    law_pde = [t for t in trajectories if t.kind != "sgd"][-1]
    law_sgd = [t for t in trajectories if t.kind == "sgd" and case_key(t) == case_key(law_pde)]
    t_final = float(config["output"]["t_final"])
    law_times = config["output"]["law_times"] or [0.0] + list(
        np.geomspace(max(float(config["output"]["t_first"]) * 10, t_final / 1e3), t_final, 3))
    if coordinate_names(law_pde) == ("r",):
        law_png = plot_law_evolution(law_pde, law_sgd, law_times, outdir / "law.png",
                                     title=f"law of |w|, κ = {law_pde.config.get('initial.kappa')}; " + title)
    else:
        law_png = plot_marginals(law_pde, law_sgd, law_times, outdir / "law.png",
                                 title="marginal laws of the invariants; " + title)
    print(f"wrote {law_png}")
    for line in timings[len(timings) - len(jobs):] if jobs else []:
        print("  " + line)


def _cmd_plot(args: argparse.Namespace) -> None:
    from .plotting import plot_risk_comparison

    trajectories = [read_trajectory(path) for path in args.files]
    print(f"wrote {plot_risk_comparison(trajectories, args.output, title=args.title)}")


def _cmd_law(args: argparse.Namespace) -> None:
    from .plotting import coordinate_names, plot_law_evolution, plot_marginals

    trajectories = [read_trajectory(path) for path in args.files]
    pde = [t for t in trajectories if t.kind != "sgd"]
    if len(pde) != 1:
        raise ValueError(f"law: give exactly one PDE file, got {len(pde)}")
    sgd = [t for t in trajectories if t.kind == "sgd"]
    if coordinate_names(pde[0]) == ("r",):
        print(f"wrote {plot_law_evolution(pde[0], sgd, args.times, args.output, title=args.title)}")
    else:
        print(f"wrote {plot_marginals(pde[0], sgd, args.times, args.output, title=args.title)}")


def _particle_law(trajectory: Trajectory, index: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(points (M, D), masses) of a particle file at output ``index`` (Lagrangian or SGD), else None."""
    for key in ("positions", "points"):
        if key in trajectory.fields:
            x = np.asarray(trajectory.fields[key][index], dtype=float)
            x = x[:, None] if x.ndim == 1 else x
            masses = np.asarray(trajectory.fields.get("masses", np.full(x.shape[0], 1.0 / x.shape[0])))
            return x, masses
    return None


def plateau_report(trajectory: Trajectory, *, threshold: float = 0.1, smoothing: float = 0.1,
                   min_duration: float = 0.3, ignore_before: float | None = None,
                   max_degree: int | None = None) -> dict[str, Any]:
    """Plateaus of a stored risk curve, matched to the Hermite theory levels of its target, and the
    network's Hermite coefficients m̂_k(t) along θ* when the file holds the law as particles.

    Returns ``{"plateaus", "theory", "matches", "order_parameters" (time, degrees, (T, K)) or None,
    "target_coefficients", "unlearnable" [(degree, energy φ̂_k²)]}``: the target's components the
    activation cannot represent (their energy is a floor under every level)."""
    from .config import unflatten
    from .plateaus import (
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
    if "data.target" not in trajectory.config and not any(k.startswith("data.target.") for k in trajectory.config):
        return out
    problem = build_problem(unflatten(trajectory.config))
    theory = hermite_plateau_heights(problem, max_degree=max_degree)
    out["theory"] = theory
    top = max_degree if max_degree is not None else getattr(problem.target, "exact_degree", None)
    if top is not None and hasattr(problem, "activation"):
        energies = hermite_block_energies(problem.target, top)
        out["unlearnable"] = [(k, float(energies[k])) for k in unlearnable_degrees(problem, top) if energies[k] > 0]
    out["matches"] = match_plateaus(plateaus, theory)
    degrees = [level.next_degree for level in theory if level.next_degree is not None]
    if degrees and getattr(problem, "index_dimension", 1) == 1 and _particle_law(trajectory, 0) is not None:
        values = np.array([hermite_order_parameters(problem, *_particle_law(trajectory, i), degrees,
                                                    normalized=True) for i in range(trajectory.time.size)])
        out["order_parameters"] = (trajectory.time, np.array(degrees), values)
        out["target_coefficients"] = np.asarray(problem.target.coefficients(max(degrees)))
    return out


#: |ln(height / level)| beyond which a plateau is reported as not sitting on a Hermite level (25%)
_OFF_LEVEL = math.log(1.25)


def _theory_levels_line(theory: Sequence[Any]) -> str:
    """``   theory levels: E y² = …, R_0 = …`` (the Hermite levels a plateau table is matched to)."""
    levels = ", ".join(f"{'E y²' if lvl.fitted_degree < 0 else f'R_{lvl.fitted_degree}'} = {lvl.height:.4g}"
                       for lvl in theory)
    return f"   theory levels: {levels}"


def _cmd_plateau_comparison(args: argparse.Namespace) -> None:
    """``plateaus --compare``: the first file is the reduced prediction, the others independent runs
    (SGD seeds); prints each predicted plateau against the seed mean ± standard error and draws the
    overlay."""
    from .plateaus import compare_plateaus, comparison_table
    from .plotting import plot_plateau_comparison

    trajectories = [read_trajectory(path) for path in args.files]
    if len(trajectories) < 2:
        raise ValueError("plateaus --compare: give the reduced-PDE file first, then at least one SGD file")
    options = {"threshold": args.threshold, "smoothing": args.smoothing, "min_duration": args.min_duration,
               "ignore_before": args.ignore_before, "max_degree": args.max_degree}
    reports = [plateau_report(t, **options) for t in trajectories]
    comparisons = compare_plateaus(reports[0]["plateaus"], [r["plateaus"] for r in reports[1:]])
    runs = len(trajectories) - 1
    print(f"prediction {args.files[0]} ({trajectories[0].kind}) against {runs} run(s); runs: mean ± s.e. "
          "(n = runs with a plateau within 25% in height)")
    print("\n".join(comparison_table(comparisons)))
    theory = reports[0]["theory"]
    if theory:
        print(_theory_levels_line(theory))
    if args.output:
        path = plot_plateau_comparison(trajectories[0], trajectories[1:], comparisons, theory, args.output,
                                       title=args.title)
        print(f"wrote {path}")


def _cmd_plateaus(args: argparse.Namespace) -> None:
    from .plotting import plot_plateaus

    if args.compare:
        _cmd_plateau_comparison(args)
        return

    for index, path in enumerate(args.files):
        trajectory = read_trajectory(path)
        report = plateau_report(trajectory, threshold=args.threshold, smoothing=args.smoothing,
                                min_duration=args.min_duration, ignore_before=args.ignore_before,
                                max_degree=args.max_degree)
        print(f"{path} ({trajectory.kind}): {len(report['plateaus'])} plateau(s)")
        header = f"{'#':>2} {'entry':>10} {'exit':>10} {'height':>10} {'theory':>10} {'rel.err':>8} " \
                 f"{'drop at':>10} {'risk after':>10}  learnt"
        print(header)
        matches = report["matches"] or [None] * len(report["plateaus"])
        off_level = False
        for plateau, match in zip(report["plateaus"], matches):
            theory = f"{match.level.height:10.4g} {match.relative_error:8.1%}" if match else f"{'-':>10} {'-':>8}"
            if match and abs(match.log_error) > _OFF_LEVEL:
                theory += "*"
                off_level = True
            learnt = ", ".join(f"He_{k}" for k in match.degrees_learnt) if match and match.degrees_learnt else "-"
            drop = f"{plateau.drop_time:10.4g}" if plateau.drop_time is not None else f"{'-':>10}"
            after = f"{plateau.risk_after:10.4g}" if plateau.risk_after is not None else f"{'-':>10}"
            print(f"{plateau.index:>2} {plateau.entry_time:10.4g} {plateau.exit_time:10.4g} {plateau.height:10.4g} "
                  f"{theory} {drop} {after}  {learnt}")
            if report["order_parameters"] is not None and plateau.drop_time is not None:
                time, degrees, values = report["order_parameters"]
                before = int(np.searchsorted(time, plateau.exit_time))
                after_index = min(int(np.searchsorted(time, 10 * plateau.drop_time - 9 * plateau.exit_time)),
                                  time.size - 1)
                changes = ", ".join(f"m̂_{k}: {values[min(before, time.size - 1), j]:+.3f} → "
                                    f"{values[after_index, j]:+.3f}" for j, k in enumerate(degrees))
                print(f"   network Hermite coefficients across the drop: {changes}")
        if report["theory"]:
            print(_theory_levels_line(report["theory"]))
        if off_level:
            print(f"   * more than {math.exp(_OFF_LEVEL) - 1:.0%} from every Hermite level: not a 'components ≤ ℓ "
                  "fitted' plateau (e.g. a component partly fitted, or a saddle of the finite network); "
                  "the nearest level is shown")
        if report["unlearnable"]:
            blocked = ", ".join(f"He_{k} (energy {energy:.4g})" for k, energy in report["unlearnable"])
            print(f"   not representable by the activation (α_k = 0), never learnt: {blocked}")
        if args.output:
            output = Path(args.output)
            if len(args.files) > 1:
                output = output.with_name(f"{output.stem}_{index}{output.suffix}")
            matches = report["matches"] or [_Unmatched(p) for p in report["plateaus"]]
            plot_plateaus(trajectory, matches, report["theory"], output,
                          order_parameters=report["order_parameters"],
                          target_coefficients=report["target_coefficients"], title=args.title or str(path))
            print(f"wrote {output}")


class _Unmatched:
    """A plateau without a theory level (targets without a Hermite expansion), for the plot."""

    def __init__(self, plateau: Any) -> None:
        self.plateau = plateau
        self.degrees_learnt: tuple[int, ...] = ()


def _cmd_gibbs(args: argparse.Namespace) -> None:
    """Self-consistent Gibbs state p* ∝ J e^{−βψ_λ(·; p*)} on the [pde] grid, optionally over a β sweep
    (with the noiseless optimum of ½R + (λ/2)E r² for comparison), written to one HDF5 file."""
    import math

    from .config import noise_parameters
    from .free_energy import gibbs_fixed_point, noiseless_optimum
    from .storage import atomic_h5

    config = load_config(args.config, args.set)
    problem = build_problem(config)
    beta, lam = noise_parameters(config)
    grid = solution_grid(config)
    betas = list(args.betas or []) or [beta]
    if any(not (math.isfinite(b) and b > 0) for b in betas):
        raise ValueError(f"gibbs: needs finite β > 0 (noise.beta or --betas), got {betas}")
    points = [gibbs_fixed_point(problem, grid.centers, grid.spacing, b, lam) for b in betas]
    best = noiseless_optimum(problem, grid.centers, grid.spacing, lam) if args.betas else None

    def write(file) -> None:
        file.create_dataset("r_centers", data=grid.centers)
        file.create_dataset("r_edges", data=grid.edges)
        file.create_dataset("beta", data=np.array(betas))
        file.create_dataset("density", data=np.array([p.density for p in points]))
        for key in ("risk", "free_energy", "second_moment", "entropy"):
            file.create_dataset(key, data=np.array([p.terms[key] for p in points]))
        file.create_dataset("mean_r", data=np.array([p.mean_r() for p in points]))
        file.create_dataset("residual", data=np.array([p.residual for p in points]))
        file.attrs["kind"] = "gibbs_fixed_point"
        write_config_attributes(file, {**flatten(config), **problem.config()})
        if best is not None:
            for key in ("risk", "objective", "gap", "mean_r"):
                file.attrs[f"noiseless_optimum.{key}"] = best[key]
            file.create_dataset("noiseless_optimum_masses", data=best["masses"])

    atomic_h5(args.output, write)
    for b, p in zip(betas, points):
        print(f"beta = {b:g}: risk {p.risk:.6g}, free energy {p.free_energy:.6g}, mean r "
              f"{p.mean_r():.4f}, residual {p.residual:.1e} ({p.iterations} Newton steps)")
    if best is not None:
        print(f"noiseless optimum (beta = inf): risk {best['risk']:.6g}, objective "
              f"{best['objective']:.6g} (certified gap {best['gap']:.1e})")
    print(f"wrote {args.output}")


def _cmd_escape_times(args: argparse.Namespace) -> None:
    """d-sweep of the escape time of the He_k sphere model (σ = φ = He_k, fixed a = 1): one
    characteristics solve per d (optionally repeated with twice the particles), the predicted law,
    a power-law fit; table on stdout, HDF5 file, figure."""
    from .plotting import plot_escape_times
    from .storage import atomic_h5
    from .timescales import (
        EscapeTimeSweep,
        fit_power_law,
        local_exponents,
        predicted_escape_time,
        solve_escape_time,
    )

    k, q = args.degree, args.level
    if not (isinstance(k, int) and k >= 2):
        raise ValueError(f"--degree = {k!r} must be an integer >= 2 (information exponent of He_k)")
    if not (0.0 < q < 1.0):
        raise ValueError(f"--level = {q!r} must be in (0, 1) (fraction of R_0 lost at the escape time)")
    dimensions = sorted(set(args.dimensions))
    if any(d < 3 for d in dimensions):
        raise ValueError(f"--dimensions = {args.dimensions!r}: every d must be an integer >= 3")
    if args.particles < 10:
        raise ValueError(f"--particles = {args.particles!r} must be >= 10")
    predicted = [predicted_escape_time(k, d, q) for d in dimensions]   # validates k, q before any solve
    iterator: Any = dimensions
    if not args.quiet:
        from tqdm import tqdm

        iterator = tqdm(dimensions, desc=f"He{k} escape times", unit="d")
    values, checks, walls = [], [], []
    for d in iterator:
        run = solve_escape_time(k, d, level=q, n_particles=args.particles, rtol=args.rtol, atol=args.rtol * 1e-3)
        values.append(run["escape_time"])
        wall = run["wall_time"]
        if args.check_particles:
            check = solve_escape_time(k, d, level=q, n_particles=2 * args.particles, rtol=args.rtol,
                                      atol=args.rtol * 1e-3)
            checks.append(check["escape_time"])
            wall += check["wall_time"]
        walls.append(wall)
    sweep = EscapeTimeSweep(k=k, level=q, dimensions=np.array(dimensions, dtype=float),
                            escape_times=np.array(values), predicted=np.array(predicted),
                            n_particles=args.particles,
                            check_escape_times=np.array(checks) if args.check_particles else None,
                            wall_times=np.array(walls))
    fit = fit_power_law(sweep.dimensions, sweep.escape_times) if len(dimensions) >= 3 else None
    slopes = local_exponents(sweep.dimensions, sweep.escape_times) if len(dimensions) >= 2 else np.zeros(0)
    law = "exact quadrature (ln d)/16 + c" if k == 2 else f"tau d^{(k - 2) / 2:g}, tau = {predicted[0] / dimensions[0] ** ((k - 2) / 2):.6g}"
    print(f"He_{k} on the sphere: escape time T_{q:g} (risk down to (1 - {q:g}) R_0); prediction: {law}")
    header = f"{'d':>8} {'T':>12} {'T_pred':>12} {'T/T_pred-1':>12} {'local exp.':>11}"
    if sweep.check_escape_times is not None:
        header += f" {'|T(2n)-T(n)|/T':>15}"
    print(header + f" {'wall s':>8}")
    for i, d in enumerate(dimensions):
        line = (f"{d:8d} {values[i]:12.6g} {predicted[i]:12.6g} {values[i] / predicted[i] - 1:+12.3e} "
                f"{(slopes[i - 1] if i else math.nan):11.5f}")
        if sweep.check_escape_times is not None:
            line += f" {sweep.particle_relative_change[i]:15.2e}"
        print(line + f" {walls[i]:8.1f}")
    if fit is not None:
        print(f"power-law fit on all d: exponent {fit.exponent:.5f} +- {fit.exponent_stderr:.5f} "
              f"(predicted {(k - 2) / 2:g}{'; k = 2 is logarithmic' if k == 2 else ''}); the residual "
              "s.e. measures the curvature of log T (finite-d corrections), not noise")
    settings = {"degree": k, "level": q, "n_particles": args.particles, "rtol": args.rtol,
                "solver": "lagrangian", "model": "single_index_sphere", "activation": f"he{k}",
                "target": f"he{k}", "second_layer": 1.0}

    def write(file) -> None:
        from . import __version__

        file.attrs["kind"] = "escape_time_sweep"
        file.attrs["package_version"] = __version__
        write_config_attributes(file, settings)
        file.create_dataset("dimensions", data=sweep.dimensions)
        file.create_dataset("escape_times", data=sweep.escape_times)
        file.create_dataset("predicted", data=sweep.predicted)
        file.create_dataset("wall_times", data=sweep.wall_times)
        if sweep.check_escape_times is not None:
            file.create_dataset("check_escape_times", data=sweep.check_escape_times)
        if fit is not None:
            file.attrs["fit.exponent"] = fit.exponent
            file.attrs["fit.exponent_stderr"] = fit.exponent_stderr
            file.attrs["fit.prefactor"] = fit.prefactor

    atomic_h5(args.output, write)
    print(f"wrote {args.output}")
    if args.figure:
        print(f"wrote {plot_escape_times(sweep.dimensions, sweep.escape_times, sweep.predicted, k, args.figure, fit=fit, level=q)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reduced-pde", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", help="TOML configuration file")
        p.add_argument("--set", action="append", default=[], metavar="table.key=value",
                       help="override a configuration value (repeatable)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    def resumable(p: argparse.ArgumentParser, default_output: str) -> None:
        p.add_argument("-o", "--output", default=default_output)
        p.add_argument("--resume", action="store_true", help="continue from OUTPUT.checkpoint")
        p.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                       help="write OUTPUT.checkpoint at most this often (default 60 s)")

    p = sub.add_parser("pde", help="solve the reduced PDE")
    common(p)
    resumable(p, "pde.h5")
    p.set_defaults(func=_cmd_pde)

    p = sub.add_parser("sgd", help="run full-dimensional SGD")
    common(p)
    resumable(p, "sgd.h5")
    p.add_argument("--seed", type=int, default=None, help="seed (default: first of sgd.seeds)")
    p.set_defaults(func=_cmd_sgd)

    p = sub.add_parser("experiment", help="PDE + SGD over the [sweep] table, with figures")
    common(p)
    p.add_argument("--outdir", default="results")
    p.add_argument("--skip-sgd", action="store_true")
    p.add_argument("--processes", type=int, default=2, help="parallel SGD runs (default 2)")
    p.set_defaults(func=_cmd_experiment)

    p = sub.add_parser("gibbs", help="Gibbs fixed point of the noisy dynamics (optionally a β sweep)")
    common(p)
    p.add_argument("-o", "--output", default="gibbs.h5")
    p.add_argument("--betas", type=float, nargs="+", default=None,
                   help="β sweep (default: noise.beta only); adds the noiseless optimum")
    p.set_defaults(func=_cmd_gibbs)

    p = sub.add_parser("plot", help="risk-vs-time comparison from result files")
    p.add_argument("files", nargs="+")
    p.add_argument("-o", "--output", default="risk.png")
    p.add_argument("--title", default=None)
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("law", help="evolution of the law of |w| (or the marginals of (a, s, r)) from result files")
    p.add_argument("files", nargs="+")
    p.add_argument("--times", type=float, nargs="+", required=True)
    p.add_argument("-o", "--output", default="law.png")
    p.add_argument("--title", default=None)
    p.set_defaults(func=_cmd_law)

    p = sub.add_parser("plateaus", help="plateaus of the risk: table (height, entry, exit, theory level, "
                                        "Hermite degree learnt at the drop) and the annotated loss curve")
    p.add_argument("files", nargs="+")
    p.add_argument("-o", "--output", default="plateaus.png", help="figure (one per file; '' for none)")
    p.add_argument("--threshold", type=float, default=0.1, help="largest |d ln R/d ln t| on a plateau")
    p.add_argument("--smoothing", type=float, default=0.1, help="smoothing width in decades of time")
    p.add_argument("--min-duration", type=float, default=0.3, help="shortest plateau, in decades")
    p.add_argument("--ignore-before", type=float, default=None, help="skip the transient before this time")
    p.add_argument("--max-degree", type=int, default=None, help="last Hermite degree of the theory levels")
    p.add_argument("--compare", action="store_true",
                   help="first file = reduced prediction, the others = SGD seeds: one comparison table and "
                        "an overlay figure")
    p.add_argument("--title", default=None)
    p.set_defaults(func=_cmd_plateaus)

    p = sub.add_parser("escape-times", help="d-sweep of the escape time from the initial plateau for the He_k "
                                            "sphere model, against the predicted d^((k-2)/2) law")
    p.add_argument("--degree", "-k", type=int, required=True, help="k: σ = φ = He_k (information exponent)")
    p.add_argument("--dimensions", "-d", type=int, nargs="+", required=True)
    p.add_argument("--level", type=float, default=0.5, help="escape when the risk has lost this fraction of R_0")
    p.add_argument("--particles", type=int, default=500, help="quantile particles of the law of s")
    p.add_argument("--check-particles", action="store_true", help="repeat each solve with twice the particles")
    p.add_argument("--rtol", type=float, default=1e-8)
    p.add_argument("-o", "--output", default="escape_times.h5")
    p.add_argument("--figure", default=None, help="PNG: T vs d with the prediction and the fit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_escape_times)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as error:
        print(f"reduced-pde: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
