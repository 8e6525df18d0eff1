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
    reduced-pde sweep SWEEP.toml [--outdir DIR] [--scheduler ADDRESS] [--workers N]   # on Dask
    reduced-pde phase-diagram DATASET [--sgd DATASET] [--level R] -o FIGURE.png

``experiment`` runs, for every value of the ``[sweep]`` table, one reduced-PDE solve and one SGD
run per seed, writes their HDF5 files to DIR and draws ``DIR/risk.png`` and ``DIR/law.png``.
Refused input (configuration, arguments, files, output paths, resources, a checkpoint of another
run) is reported as one line naming the field and exits with status 2; a run that goes bad while
stepping (NaN, overflow) with status 3; an input/output failure (full disk) with status 1; Ctrl-C /
SIGTERM with 130 / 143.  No input a user can type produces a traceback (``REDUCED_PDE_DEBUG=1``
shows the traceback of an unexpected internal error).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reduced_pde.running.config import MAX_SEED, load_config
from reduced_pde.running.resources import check_resources
from reduced_pde.running.pipeline import (
    checkpoint_path,
    gibbs_study,
    plateau_report,
    run_experiment,
    run_pde,
    run_sgd_seed,
)
from reduced_pde.running.storage import (
    OutputLock,
    check_input_file,
    check_output_path,
    read_trajectory,
    write_escape_time_sweep,
    write_gibbs_study,
    write_trajectory,
)

from solvers.common import SolverError, check_number

__all__ = ["main", "build_parser"]


def _write_finished(output: Path, trajectory: Any, wall_time_digits: int) -> None:
    """Write a finished run to ``output``, remove its checkpoint, and print its final risk and wall time."""
    write_trajectory(output, trajectory)
    checkpoint_path(output).unlink(missing_ok=True)
    print(f"wrote {output}  (final risk {trajectory.risk[-1]:.6g}, "
          f"wall time {trajectory.diagnostics.get('wall_time', float('nan')):.{wall_time_digits}f} s)")


def _prepare_run(args: argparse.Namespace, command: str, output: Path) -> dict[str, Any]:
    """The validated configuration of a run writing ``output``: options, output path and resources
    are checked before anything is computed or written."""
    check_input_file(args.config, "configuration file")
    check_number("--checkpoint-every", getattr(args, "checkpoint_every", 0.0), 0.0, math.inf)
    config = load_config(args.config, args.set)
    if command == "chaos":  # the problem's finite-width runs (its hook), the [chaos] keys they read
        from reduced_pde.running.chaos import chaos_hook

        chaos_hook(config)
    if command == "sgd" and config["sgd"]["batch_seeds"]:
        raise ValueError("sgd.batch_seeds = true batches the seeds of `reduced-pde experiment`; the sgd command "
                         "runs one seed (--seed): remove it, or run the experiment command")
    if command == "gibbs" and config["pde"]["solver"] != "finite_volume":
        raise ValueError(f"gibbs: pde.solver = {config['pde']['solver']!r}; the Gibbs fixed point is computed on "
                         "the grid of pde.solver = 'finite_volume'")
    check_output_path(getattr(args, "output", output))  # as typed: a trailing "/" names a folder
    _not_the_configuration(output, args.config, "-o/--output")
    needs = check_resources(config, (command,), allow_large=args.allow_large, output=output)
    if args.check:
        memory = sum(d.amount for d in needs if d.kind == "memory") / 2**30
        disk = sum(d.amount for d in needs if d.kind == "disk") / 2**30
        work = [d for d in needs if d.kind in ("sgd_work", "chaos_work")]  # the time a run takes grows with it
        work_text = f", work {sum(d.amount for d in work):.3g} multiply-adds" if work else ""
        print(f"{args.config}: valid for {command}; estimated memory {memory:.3g} GiB, result file {disk:.3g} GiB"
              f"{work_text}; output {str(output)!r} writable")
        return {}
    return config


def _not_the_configuration(output: Path, config: str, what: str) -> None:
    """Refuse an output that is the configuration file itself (the run would overwrite its input)."""
    if Path(output).exists() and Path(config).exists() and Path(output).resolve() == Path(config).resolve():
        raise ValueError(f"{what} {str(output)!r} is the configuration file {config!r}; the run would overwrite it: "
                         "choose another output")


@contextlib.contextmanager
def _locked(output: Path):
    """Hold the output's lock (a second run on the same output is refused) for the run's duration."""
    lock = OutputLock(output).acquire()
    try:
        yield lock
    finally:
        lock.release()


def _cmd_pde(args: argparse.Namespace) -> None:
    output = Path(args.output)
    config = _prepare_run(args, "pde", output)
    if not config:  # --check
        return
    with _locked(output):
        trajectory = run_pde(config, checkpoint=checkpoint_path(output), resume=args.resume,
                             progress=not args.quiet, checkpoint_every=args.checkpoint_every,
                             allow_large=args.allow_large)
        _write_finished(output, trajectory, wall_time_digits=2)


def _cmd_sgd(args: argparse.Namespace) -> None:
    output = Path(args.output)
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise ValueError(f"--seed = {args.seed} must be an integer in [0, 2**63 - 1]")
    config = _prepare_run(args, "sgd", output)
    if not config:  # --check
        return
    seed = args.seed if args.seed is not None else config["sgd"]["seeds"][0]
    with _locked(output):
        trajectory = run_sgd_seed(config, seed, checkpoint=checkpoint_path(output), resume=args.resume,
                                  progress=not args.quiet, checkpoint_every=args.checkpoint_every,
                                  allow_large=args.allow_large)
        _write_finished(output, trajectory, wall_time_digits=1)


def _cmd_experiment(args: argparse.Namespace) -> None:
    if args.processes < 1:
        raise ValueError(f"--processes = {args.processes} must be an integer >= 1")
    check_input_file(args.config, "configuration file")
    config = load_config(args.config, args.set)
    outdir = Path(args.outdir)
    _not_the_configuration(outdir, args.config, "--outdir")
    check_output_path(outdir, "--outdir", directory=True)
    from reduced_pde.running.config import sweep_cases

    cases = sweep_cases(config)
    for _, case in cases:
        check_resources(case, ("pde",) if args.skip_sgd else ("pde", "sgd"), allow_large=args.allow_large,
                        output=outdir)
    if args.check:
        print(f"{args.config}: valid for experiment ({len(cases)} case(s)); --outdir {str(outdir)!r} writable")
        return
    with _locked(outdir / "experiment"):
        out = run_experiment(config, outdir, skip_sgd=args.skip_sgd, processes=args.processes,
                             progress=not args.quiet, allow_large=args.allow_large)
    for figure in out["figures"]:
        print(f"wrote {figure}")


def _read_results(files: Sequence[str]) -> list[Any]:
    return [read_trajectory(path) for path in files]


def _cmd_plot(args: argparse.Namespace) -> None:
    from reduced_pde.running.plotting import plot_risk_comparison

    check_output_path(args.output, "-o/--output")
    trajectories = _read_results(args.files)
    print(f"wrote {plot_risk_comparison(trajectories, args.output, title=args.title)}")


def _cmd_law(args: argparse.Namespace) -> None:
    from reduced_pde.running.plotting import coordinate_names, plot_law_evolution, plot_marginals

    for t in args.times:
        check_number("--times", t, 0.0, math.inf)
    check_output_path(args.output, "-o/--output")
    trajectories = _read_results(args.files)
    pde = [t for t in trajectories if t.kind != "sgd"]
    if len(pde) != 1:
        raise ValueError(f"law: give exactly one PDE file, got {len(pde)}")
    sgd = [t for t in trajectories if t.kind == "sgd"]
    if coordinate_names(pde[0]) == ("r",):
        print(f"wrote {plot_law_evolution(pde[0], sgd, args.times, args.output, title=args.title)}")
    else:
        print(f"wrote {plot_marginals(pde[0], sgd, args.times, args.output, title=args.title)}")


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
    from reduced_pde.analysis.plateaus import compare_plateaus, comparison_table
    from reduced_pde.running.plotting import plot_plateau_comparison

    trajectories = _read_results(args.files)
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
    from reduced_pde.running.plotting import plot_plateaus

    check_number("--threshold", args.threshold, 0.0, math.inf, low_open=True)
    check_number("--smoothing", args.smoothing, 0.0, math.inf)
    check_number("--min-duration", args.min_duration, 0.0, math.inf)
    if args.ignore_before is not None:
        check_number("--ignore-before", args.ignore_before, 0.0, math.inf)
    if args.max_degree is not None and args.max_degree < 0:
        raise ValueError(f"--max-degree = {args.max_degree} must be an integer >= 0")
    if args.output:
        check_output_path(args.output, "-o/--output")
    if args.compare:
        _cmd_plateau_comparison(args)
        return
    _read_results(args.files)  # every file readable before the first table is printed

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
    """Self-consistent Gibbs state p* ∝ J e^{−βψ_λ(·; p*)} on the run's grid, optionally over a β sweep."""
    output = Path(args.output)
    for b in args.betas or []:
        check_number("--betas", b, 0.0, math.inf, low_open=True)
    config = _prepare_run(args, "gibbs", output)
    if not config:  # --check
        return
    with _locked(output):
        study = gibbs_study(config, args.betas)
        write_gibbs_study(output, study)
    for b, p in zip(study["betas"], study["points"]):
        print(f"beta = {b:g}: risk {p.risk:.6g}, free energy {p.free_energy:.6g}, mean {study['coordinate']} "
              f"{p.mean_r():.4f}, residual {p.residual:.1e} ({p.iterations} Newton steps)")
    best = study["noiseless_optimum"]
    if best is not None:
        print(f"noiseless optimum (beta = inf): risk {best['risk']:.6g}, objective "
              f"{best['objective']:.6g} (certified gap {best['gap']:.1e})")
    print(f"wrote {args.output}")


def _cmd_escape_times(args: argparse.Namespace) -> None:
    """d-sweep of the escape time of the He_k sphere model (σ = φ = He_k, fixed a = 1): table on stdout,
    HDF5 file, figure."""
    from reduced_pde.analysis.timescales import escape_time_sweep, exponent_estimates, fit_power_law, local_exponents
    from reduced_pde.running.plotting import plot_escape_times

    if args.degree < 2:
        raise ValueError(f"--degree = {args.degree!r} must be an integer >= 2 (information exponent of He_k)")
    if not 0.0 < args.level < 1.0:
        raise ValueError(f"--level = {args.level!r} must be in (0, 1) (fraction of R_0 lost at the escape time)")
    if any(d < 3 or d > 2**53 for d in args.dimensions):
        raise ValueError(f"--dimensions = {args.dimensions!r}: every d must be an integer in [3, 2^53]")
    if not 10 <= args.particles <= 10**7:
        raise ValueError(f"--particles = {args.particles!r} must be an integer in [10, 1e7]")
    check_number("--rtol", args.rtol, 1e-14, 0.1)
    check_output_path(args.output, "-o/--output")
    if args.figure:
        check_output_path(args.figure, "--figure")
    sweep = escape_time_sweep(args.degree, sorted(set(args.dimensions)), level=args.level,
                              n_particles=args.particles, check_particles=args.check_particles, rtol=args.rtol,
                              progress=not args.quiet)
    k, q = sweep.k, sweep.level
    dimensions, values, predicted = sweep.dimensions.astype(int), sweep.escape_times, sweep.predicted
    fit = fit_power_law(sweep.dimensions, sweep.escape_times) if len(dimensions) >= 3 else None
    slopes = local_exponents(sweep.dimensions, sweep.escape_times) if len(dimensions) >= 2 else np.zeros(0)
    law = ("exact quadrature (ln d)/16 + c" if k == 2
           else f"tau d^{(k - 2) / 2:g}, tau = {predicted[0] / dimensions[0] ** ((k - 2) / 2):.6g}")
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
        print(line + f" {sweep.wall_times[i]:8.1f}")
    if fit is not None:
        print(f"power-law fit on all d: exponent {fit.exponent:.5f} +- {fit.exponent_stderr:.5f} "
              f"(predicted {(k - 2) / 2:g}{'; k = 2 is logarithmic' if k == 2 else ''}); the residual "
              "s.e. measures the curvature of log T (finite-d corrections), not noise")
        estimates = exponent_estimates(sweep.dimensions, sweep.escape_times,
                                       correction_order=0.5 if k == 3 else 1.0 if k >= 4 else None)
        print(f"spread of the fitted (larger half of d), local and extrapolated exponents: "
              f"{estimates.low:.5f} to {estimates.high:.5f} (the systematic uncertainty)")
    write_escape_time_sweep(args.output, sweep, fit, rtol=args.rtol)
    print(f"wrote {args.output}")
    if args.figure:
        figure = plot_escape_times(sweep.dimensions, values, predicted, k, args.figure, fit=fit,
                                   estimates=estimates if fit is not None else None, level=q)
        print(f"wrote {figure}")


def _cmd_chaos(args: argparse.Namespace) -> None:
    from reduced_pde.running.chaos import plot_chaos, run_chaos, write_chaos

    output = Path(args.output)
    for name, values, low in (("--widths", args.widths, 1), ("--seeds", args.seeds, 0)):
        if values is not None and any(v < low for v in values):
            raise ValueError(f"{name} = {values} must be integers >= {low}")
    # the flags override [chaos] before any check, so that the resources are those of what runs
    args.set = list(args.set) + [f"chaos.{name}={values}" for name, values in (("widths", args.widths),
                                                                              ("seeds", args.seeds))
                                 if values is not None] + (["chaos.predict=false"] if args.no_prediction else [])
    if args.figure:
        check_output_path(args.figure, "--figure")
    config = _prepare_run(args, "chaos", output)
    if not config:  # --check
        return
    with _locked(output):
        result = run_chaos(config)
        print(f"wrote {write_chaos(output, result)}  (coupled runs {result['wall_time']:.1f} s)")
    if args.figure:
        print(f"wrote {plot_chaos(output, args.figure)}")


def _cmd_sweep(args: argparse.Namespace) -> None:
    from reduced_pde.running.sweeps import check_sweep_resources, load_sweep, run_sweep, sweep_tasks

    if args.check:
        check_input_file(args.sweep, "sweep file")
        spec = load_sweep(args.sweep)
        tasks = sweep_tasks(spec, args.outdir or Path("results") / "sweeps" / spec.name)
        memory = max((d.amount for d in check_sweep_resources(tasks, allow_large=args.allow_large)
                      if d.kind == "memory"), default=0.0) / 2**30
        print(f"{args.sweep}: valid; {len(tasks)} task(s) ({spec.kind}); largest task memory {memory:.3g} GiB")
        return
    report = run_sweep(args.sweep, args.outdir, scheduler=args.scheduler, workers=args.workers,
                       progress=not args.quiet, allow_large=args.allow_large)
    if report.failed:
        raise SystemExit(1)


def _cmd_phase_diagram(args: argparse.Namespace) -> None:
    from reduced_pde.running.phase_diagrams import phase_diagram

    for line in phase_diagram(args.dataset, args.output, sgd=args.sgd, level=args.level, title=args.title):
        print(line)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``reduced-pde CMD: error: ...; see reduced-pde CMD --help``),
    exit status 2, like every other refusal."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reduced-pde", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def quiet(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", help="TOML configuration file")
        p.add_argument("--set", action="append", default=[], metavar="table.key=value",
                       help="override a configuration value (repeatable)")
        quiet(p)
        p.add_argument("--allow-large", action="store_true",
                       help="run jobs beyond the default limits (memory > 4 GiB, > 1e9 SGD steps, ...)")
        p.add_argument("--check", action="store_true",
                       help="only check the configuration, the output path and the resources; run nothing")

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

    from reduced_pde.models import get_model, model_names

    having = ", ".join(name for name in model_names() if get_model(name).chaos)
    p = sub.add_parser("chaos", help="finite width: m-neuron networks against their mean-field twins, "
                                     f"and the 1/m prediction (data.model = {having})")
    common(p)
    p.add_argument("-o", "--output", default="chaos.h5")
    p.add_argument("--widths", type=int, nargs="+", default=None, help="widths m (default: chaos.widths)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: chaos.seeds)")
    p.add_argument("--no-prediction", action="store_true", help="skip the prediction e(t), c(t)")
    p.add_argument("--figure", default=None, metavar="PNG", help="also draw the three-panel figure")
    p.set_defaults(func=_cmd_chaos)

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
    quiet(p)
    p.set_defaults(func=_cmd_escape_times)

    p = sub.add_parser("sweep", help="a sweep file's tasks (PDE, SGD seeds, plateau reports) on Dask, "
                                     "resumable, gathered into one netCDF dataset")
    p.add_argument("sweep", help="sweep file (TOML: [sweep] base, task; [axes])")
    p.add_argument("--outdir", default=None, help="default: results/sweeps/<name>")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing Dask scheduler (tcp://host:port or a scheduler file); default: a LocalCluster")
    p.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: the CPU count)")
    p.add_argument("--allow-large", action="store_true",
                   help="run tasks beyond the default limits (memory > 4 GiB, > 1e9 SGD steps, ...)")
    p.add_argument("--check", action="store_true",
                   help="only validate every point and its resources; run nothing")
    quiet(p)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("phase-diagram", help="outcome map of a 2-axis sweep dataset (final risk, stall, time to "
                                             "a risk level; plateau exit times), with SGD points")
    p.add_argument("dataset", help="sweep.nc of a pde or plateaus sweep over two axes")
    p.add_argument("--sgd", default=None, help="sweep.nc of SGD seeds at points on the same axes")
    p.add_argument("--level", type=float, default=None, help="risk level for the time-to-level map")
    p.add_argument("-o", "--output", default="phase_diagram.png")
    p.add_argument("--title", default=None)
    p.set_defaults(func=_cmd_phase_diagram)
    return parser


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 600 else text[:597] + "..."


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM → KeyboardInterrupt-like exit, so that every ``finally`` (temporary files, locks) runs."""
    raise SystemExit(128 + signum)


def _warning_line(shown: set[tuple[str, str]]):
    """``warnings.showwarning`` replacement: each distinct warning once, as one line on stderr."""

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        text = _one_line(message if isinstance(message, BaseException) else Exception(str(message)))
        if (category.__name__, text) in shown:
            return
        shown.add((category.__name__, text))
        kind = "" if category is UserWarning else f" ({category.__name__})"
        print(f"reduced-pde: warning{kind}: {text}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 input/output failure, 2 refused input, 3 the
    run went bad while stepping, 130/143 interrupted).  Every failure is one line on stderr; a warning
    (e.g. an explicit truncation degree above the tolerance) is one line, once."""
    args = build_parser().parse_args(argv)
    previous = None
    with contextlib.suppress(ValueError):  # not in the main thread: no handler
        previous = signal.signal(signal.SIGTERM, _terminate)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _warning_line(set())
        return _dispatch(args, previous)


def _dispatch(args: argparse.Namespace, previous: Any) -> int:
    try:
        args.func(args)
    except (ValueError, TypeError) as error:
        print(f"reduced-pde: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except SolverError as error:
        print(f"reduced-pde: run stopped: {_one_line(error)}", file=sys.stderr)
        return 3
    except MemoryError as error:
        print(f"reduced-pde: error: out of memory ({_one_line(error)}); reduce the run's sizes", file=sys.stderr)
        return 1
    except OSError as error:
        where = f" {error.filename!r}" if getattr(error, "filename", None) else ""
        print(f"reduced-pde: error: input/output failure{where}: {error.strerror or _one_line(error)} "
              "(any previous checkpoint is intact)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("reduced-pde: interrupted (resume with --resume if a checkpoint was written)", file=sys.stderr)
        return 130
    except SystemExit as stop:
        if stop.code == 128 + signal.SIGTERM:
            print("reduced-pde: terminated (resume with --resume if a checkpoint was written)", file=sys.stderr)
        return int(stop.code) if isinstance(stop.code, int) else 1
    except Exception as error:  # an internal error: one line, the traceback only on request
        if os.environ.get("REDUCED_PDE_DEBUG"):
            raise
        print(f"reduced-pde: internal error: {type(error).__name__}: {_one_line(error)} "
              "(REDUCED_PDE_DEBUG=1 shows the traceback; please report it)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
