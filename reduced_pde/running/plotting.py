"""PDE-vs-SGD figures, drawn from result files alone.

* :func:`plot_risk_comparison`: risk vs time (log–log), reduced PDE as lines, SGD as symbols
  (mean over seeds, bars = seed-to-seed min–max); inset: mean |w|.  For SGD the filled symbols are
  the N = ∞ risk of the empirical law of |w| (design note §5: the like-for-like comparison) and
  the small open symbols the exact population risk of the N-neuron network.
* :func:`plot_law_evolution`: the law of |w| at a few times: PDE density (line) over the SGD
  histogram pooled over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from solvers.results import Trajectory

__all__ = [
    "case_key",
    "coordinate_names",
    "group_cases",
    "marginal_density",
    "plot_escape_times",
    "plot_law_evolution",
    "plot_marginals",
    "plot_plateau_comparison",
    "plot_plateaus",
    "plot_risk_comparison",
]

_CASE_TABLES = ("data.", "activation.", "initial.", "schedule.")


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def case_key(trajectory: Trajectory) -> tuple:
    """The physical problem a file solves (data, activation, initial law, schedule); with
    ``sgd.dimension`` set (SGD at a finite d against a d = inf reduction) the dimension is left out."""
    skip = {"data.dimension"} if str(trajectory.config.get("sgd.dimension", "data")) != "data" else set()
    return tuple(sorted((k, str(v)) for k, v in trajectory.config.items()
                        if k.startswith(_CASE_TABLES) and k not in skip))


def group_cases(trajectories: Sequence[Trajectory]) -> list[tuple[str, Trajectory | None, list[Trajectory]]]:
    """Group files by problem: [(label, pde trajectory or None, [sgd trajectories])]."""
    groups: dict[tuple, tuple[list, list]] = {}
    for trajectory in trajectories:
        pde, sgd = groups.setdefault(case_key(trajectory), ([], []))
        (sgd if trajectory.kind == "sgd" else pde).append(trajectory)
    out = []
    for key, (pde, sgd) in groups.items():
        config = dict(key)
        first = pde[0] if pde else sgd[0]
        label = f"κ = {config.get('initial.kappa', '?')}, d = {_dimension_label(first)}"
        out.append((label, pde[0] if pde else None, sgd))
    return out


def _dimension_label(trajectory: Trajectory) -> str:
    """The data dimension a file was run at ("inf" for the d = ∞ reductions)."""
    d = trajectory.config.get("data.dimension", "?")
    return str(int(d)) if isinstance(d, (int, float)) and math.isfinite(d) else str(d).replace("inf", "∞")


def _positive_times(trajectory: Trajectory) -> np.ndarray:
    return trajectory.time > 0


def _summary(trajectory: Trajectory) -> tuple[str, np.ndarray]:
    """(label, values) of the inset's summary statistic: the mean of s (s1) when the law has it,
    else the mean of its last coordinate (|w| for MMN18)."""
    for name in ("s", "s1"):
        if name in trajectory.coordinates:
            return f"mean {name}", trajectory.mean_of(name)
    name = trajectory.coordinates[-1]
    return ("mean |w|" if name == "r" else f"mean {name}"), trajectory.mean_of(name)


def plot_risk_comparison(trajectories: Sequence[Trajectory], path: str | Path,
                         title: str | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(7.0, 5.0))
    inset = ax.inset_axes([0.56, 0.56, 0.4, 0.38])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (label, pde, sgd) in enumerate(group_cases(trajectories)):
        color = colors[index % len(colors)]
        if pde is not None:
            keep = _positive_times(pde)
            ax.plot(pde.time[keep], pde.risk[keep], "-", color=color, lw=1.8, label=f"PDE, {label}")
            inset_label, summary = _summary(pde)
            inset.plot(pde.time[keep], summary[keep], "-", color=color, lw=1.5)
        if sgd:
            keep = _positive_times(sgd[0])
            t = sgd[0].time[keep]
            reduced = np.array([s.risk[keep] for s in sgd])
            network = (np.array([s.network_risk[keep] for s in sgd])
                       if all(s.network_risk is not None for s in sgd) else None)
            mean_r = np.array([_summary(s)[1][keep] for s in sgd])
            n_neurons = sgd[0].config.get("sgd.n_neurons", "?")
            ax.errorbar(t, reduced.mean(0), yerr=[reduced.mean(0) - reduced.min(0), reduced.max(0) - reduced.mean(0)],
                        fmt="o", ms=4.5, color=color, capsize=2,
                        label=f"SGD N={n_neurons}, d = {_dimension_label(sgd[0])} ({len(sgd)} seeds), "
                              "R of the law of the invariants")
            if network is not None:
                ax.plot(t, network.mean(0), "o", ms=3, mfc="none", color=color, alpha=0.7,
                        label="SGD, network risk R_N")
            inset.plot(t, mean_r.mean(0), "o", ms=3, color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time t (= SGD steps × ε)")
    ax.set_ylabel("population risk")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title or "Reduced PDE (lines) vs SGD (symbols)", fontsize=10)
    inset.set_xscale("log")
    inset.set_xlabel("t", fontsize=7)
    inset.set_ylabel(_summary(trajectories[0])[0] if trajectories else "", fontsize=7)
    inset.tick_params(labelsize=6)
    return save_figure(fig, path)


def quantile_particle_density(positions: np.ndarray, masses: np.ndarray,
                              group: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Density of the law carried by ordered quantile particles: the mass of ``group`` consecutive
    particles over the distance they span (1-D flows keep particles ordered)."""
    order = np.argsort(positions)
    r, m = positions[order], masses[order]
    n = (len(r) - 1) // group
    if n < 1:
        return r, np.full_like(r, np.nan)
    left, right = r[: n * group : group], r[group : n * group + 1 : group]
    mass = np.add.reduceat(m[: n * group], np.arange(0, n * group, group))
    with np.errstate(divide="ignore"):
        density = np.where(right > left, mass / (right - left), np.nan)
    return 0.5 * (left + right), density


def _coordinate_samples(trajectory: Trajectory) -> np.ndarray:
    """(T, N) samples of the reduced coordinate of a one-coordinate SGD run (|w_i| radial, s_i on the
    sphere), from the field ``points`` (T, N, 1)."""
    return np.asarray(trajectory.fields["points"])[..., 0]


def plot_law_evolution(pde: Trajectory, sgd: Sequence[Trajectory], times: Sequence[float],
                       path: str | Path, title: str | None = None) -> Path:
    if "density" not in pde.fields and "positions" not in pde.fields:
        raise ValueError("the PDE file holds no density (fields/density) or particles (fields/positions)")
    fig, axes = plt.subplots(1, len(times), figsize=(3.2 * len(times), 3.0), squeeze=False)
    for ax, t in zip(axes[0], times):
        i_pde = int(np.argmin(np.abs(pde.time - t)))
        if sgd:
            i_sgd = int(np.argmin(np.abs(sgd[0].time - t)))
            norms = np.concatenate([_coordinate_samples(s)[i_sgd] for s in sgd])
            ax.hist(norms, bins=40, density=True, color="0.75", label=f"SGD ({len(sgd)} seeds)")
        if "density" in pde.fields:
            ax.plot(pde.fields[f"{pde.coordinates[0]}_centers"], pde.fields["density"][i_pde], "k-", lw=1.5,
                    label="PDE")
        else:
            r, p = quantile_particle_density(pde.fields["positions"][i_pde], pde.fields["masses"])
            ax.plot(r, p, "k-", lw=1.5, label="PDE (characteristics)")
        ax.set_title(f"t = {pde.time[i_pde]:.3g}", fontsize=9)
        ax.set_xlabel("s = ⟨w, θ*⟩" if sgd and "s" in sgd[0].fields else "|w|")
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("density")
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------------
# several reduced coordinates (single-/multi-index models)
# ------------------------------------------------------------------------------------------------
def coordinate_names(trajectory: Trajectory) -> tuple[str, ...]:
    """The reduced coordinates a result file is written in."""
    return trajectory.coordinates


def marginal_density(trajectory: Trajectory, coordinate: str, index: int,
                     bins: np.ndarray | int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Marginal density of ``coordinate`` at output ``index``: from a grid solution's
    ``marginal_<name>`` (with ``<name>_centers``), else a mass-weighted histogram of its particles."""
    names = coordinate_names(trajectory)
    if coordinate not in names:
        raise ValueError(f"coordinate {coordinate!r} is not one of the file's coordinates {names}")
    fields = trajectory.fields
    if f"marginal_{coordinate}" in fields:
        return np.asarray(fields[f"{coordinate}_centers"]), np.asarray(fields[f"marginal_{coordinate}"][index])
    if "density" in fields and len(names) == 1:
        return np.asarray(fields[f"{coordinate}_centers"]), np.asarray(fields["density"][index])
    law = trajectory.particle_law(index)
    if law is None:
        raise ValueError(f"the {trajectory.kind} file holds neither marginals nor particles")
    x, masses = law
    values, edges = np.histogram(x[:, names.index(coordinate)], bins=bins, weights=masses, density=True)
    return 0.5 * (edges[1:] + edges[:-1]), values


def plot_marginals(pde: Trajectory, sgd: Sequence[Trajectory], times: Sequence[float],
                   path: str | Path, coordinates: Sequence[str] | None = None,
                   title: str | None = None) -> Path:
    """Evolution of the marginal laws (rows: coordinates, columns: times): the reduced solution as a
    line, SGD (pooled over seeds, histogram on the same bins) as symbols with ± one binomial
    standard error."""
    names = tuple(coordinates) if coordinates else tuple(n for n in coordinate_names(pde) if n != "r") \
        or coordinate_names(pde)
    fig, axes = plt.subplots(len(names), len(times), figsize=(3.1 * len(times), 2.6 * len(names)),
                             squeeze=False)
    for row, name in enumerate(names):
        for col, t in enumerate(times):
            ax = axes[row][col]
            i_pde = int(np.argmin(np.abs(pde.time - t)))
            x, p = marginal_density(pde, name, i_pde)
            ax.plot(x, p, "k-", lw=1.5, label="reduced PDE")
            if sgd:
                i_sgd = int(np.argmin(np.abs(sgd[0].time - t)))
                samples = np.concatenate([s.particle_law(i_sgd)[0][:, coordinate_names(s).index(name)]
                                          for s in sgd])
                lo, hi = float(np.min(samples)), float(np.max(samples))
                span = max(hi - lo, 1e-3)
                edges = np.linspace(lo - 0.02 * span, hi + 0.02 * span, 31)
                counts, _ = np.histogram(samples, bins=edges)
                width = np.diff(edges)
                density = counts / (samples.size * width)
                error = np.sqrt(counts) / (samples.size * width)
                ax.errorbar(0.5 * (edges[1:] + edges[:-1]), density, yerr=error, fmt="o", ms=3,
                            color="C3", capsize=1.5, label=f"SGD ({len(sgd)} seeds)")
            if row == 0:
                ax.set_title(f"t = {pde.time[i_pde]:.3g}", fontsize=9)
            ax.set_xlabel(name, fontsize=9)
            ax.tick_params(labelsize=7)
        axes[row][0].set_ylabel(f"density of {name}", fontsize=9)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_plateaus(trajectory: Trajectory, matches: Sequence[Any], theory: Sequence[Any], path: str | Path,
                  order_parameters: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                  target_coefficients: np.ndarray | None = None, title: str | None = None) -> Path:
    """Annotated loss curve: the risk on a linear and a logarithmic time axis, detected plateaus shaded
    (label: the theory level they sit on), theory levels ``R_ℓ`` dashed ("ℓ fitted"), drops marked with
    the Hermite degrees learnt there; optionally a third panel with the network's Hermite coefficients
    ``m̂_k(t)`` (``order_parameters = (time, degrees, values (T, K))``) against the target's
    ``φ̂_k`` (``target_coefficients``, dotted).  ``matches``: :class:`~reduced_pde.analysis.plateaus.PlateauMatch`
    (or plateaus wrapped without a theory), ``theory``: :class:`~reduced_pde.analysis.plateaus.TheoryLevel`."""

    panels = 3 if order_parameters is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2))
    keep = trajectory.time > 0
    t, risk = trajectory.time[keep], trajectory.risk[keep]
    for ax, log_time in zip(axes[:2], (False, True)):
        ax.plot(t, risk, "k-", lw=1.5, label="risk")
        for level in theory:
            if level.height > 0:
                ax.axhline(level.height, color="0.5", ls="--", lw=0.8)
                ax.annotate("nothing fitted" if level.fitted_degree < 0 else f"≤ {level.fitted_degree} fitted",
                            (t[0] if log_time else t[-1], level.height), fontsize=7, color="0.35",
                            ha="left" if log_time else "right", va="bottom")
        for match in matches:
            plateau = match.plateau
            ax.axvspan(plateau.entry_time, plateau.exit_time, color="C0", alpha=0.15)
            if plateau.drop_time is not None and match.degrees_learnt:
                learnt = ", ".join(f"He{k}" for k in match.degrees_learnt)
                ax.axvline(plateau.drop_time, color="C3", lw=0.8, ls=":")
                ax.annotate(learnt, (plateau.drop_time, plateau.height), fontsize=7, color="C3",
                            rotation=90, ha="right", va="top")
        ax.set_yscale("log")
        if log_time:
            ax.set_xscale("log")
        else:  # linear axis: up to a few times the last drop (the tail is visible on the log axis)
            drops = [m.plateau.drop_time for m in matches if m.plateau.drop_time is not None]
            if drops:
                ax.set_xlim(0.0, min(float(t[-1]), 5.0 * max(drops)))
        ax.set_xlabel("time t" + (" (log)" if log_time else ""))
        ax.set_ylabel("population risk")
    if order_parameters is not None:
        time, degrees, values = order_parameters
        ax = axes[2]
        positive = time > 0
        for j, k in enumerate(degrees):
            line, = ax.plot(time[positive], values[positive, j], lw=1.4, label=f"network m̂_{k}")
            if target_coefficients is not None and k < len(target_coefficients):
                ax.axhline(target_coefficients[k], color=line.get_color(), ls=":", lw=1)
        for match in matches:
            if match.plateau.drop_time is not None:
                ax.axvline(match.plateau.drop_time, color="C3", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("time t (log)")
        ax.set_ylabel("Hermite coefficient along θ* (dotted: target)")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_escape_times(dimensions: np.ndarray, escape_times: np.ndarray, predicted: np.ndarray, k: int,
                      path: str | Path, *, fit: Any = None, level: float = 0.5,
                      title: str | None = None) -> Path:
    """Escape time from the initial plateau vs dimension (log–log): the reduced solves (symbols), the
    predicted law (dashed: ``τ_q d^{(k−2)/2}``, exact quadrature for k = 2) and an optional power-law
    fit (:class:`~reduced_pde.analysis.timescales.PowerLawFit`, solid); right panel: ``T/T_pred − 1``, the
    finite-d correction, which must tend to 0."""
    d = np.asarray(dimensions, dtype=float)
    times = np.asarray(escape_times, dtype=float)
    prediction = np.asarray(predicted, dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    ax = axes[0]
    ax.loglog(d, times, "o", color="C0", label=f"reduced PDE, $T_{{{level:g}}}$")
    ax.loglog(d, prediction, "--", color="k", alpha=0.6,
              label="exact (k = 2)" if k == 2 else f"predicted τ d$^{{{(k - 2) / 2:g}}}$")
    if fit is not None:
        grid = np.geomspace(d.min(), d.max(), 50)
        digits = max(3, 1 - math.floor(math.log10(fit.exponent_stderr))) if fit.exponent_stderr > 0 else 4
        ax.loglog(grid, fit.prefactor * grid ** fit.exponent, "-", color="C0", alpha=0.6,
                  label=f"fit d ≥ {fit.d_min:g}: γ = {fit.exponent:.{digits}f} ± {fit.exponent_stderr:.{digits}f}")
    ax.set_xlabel("dimension d")
    ax.set_ylabel("escape time (mean-field time)")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.semilogx(d, times / prediction - 1.0, "o-", color="C0")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("dimension d")
    ax.set_ylabel("T / T$_{pred}$ − 1")
    fig.suptitle(title or f"Escape from the plateau: σ = φ = He$_{k}$ on $S^{{d−1}}$", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _format_dimension(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "∞" if math.isinf(number) else f"{number:g}"


def plot_plateau_comparison(prediction: Trajectory, runs: Sequence[Trajectory], comparisons: Sequence[Any],
                            theory: Sequence[Any], path: str | Path, title: str | None = None) -> Path:
    """Reduced prediction (thick black) against independent runs (SGD seeds: thin, their mean dashed)
    on a log-time axis and a linear one: theory levels dashed grey, predicted plateaus shaded, the
    seeds' matched plateau exits and drops as ticks (``comparisons``:
    :class:`~reduced_pde.analysis.plateaus.PlateauComparison`)."""
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.3))
    keep = prediction.time > 0
    common = None
    if runs and all(r.time.shape == runs[0].time.shape and np.allclose(r.time, runs[0].time) for r in runs):
        common = np.mean([r.risk for r in runs], axis=0)
    drops = [c.predicted.drop_time for c in comparisons if c.predicted.drop_time is not None]
    for ax, log_time in zip(axes, (True, False)):
        for i, run in enumerate(runs):
            positive = run.time > 0
            ax.plot(run.time[positive], run.risk[positive], color="C0", lw=0.7, alpha=0.5,
                    label="SGD seeds" if i == 0 else None)
        if common is not None:
            positive = runs[0].time > 0
            ax.plot(runs[0].time[positive], common[positive], "--", color="C0", lw=1.4, label="SGD mean")
        ax.plot(prediction.time[keep], prediction.risk[keep], "k-", lw=1.8, label="reduced PDE")
        for level in theory:
            if level.height > 0:
                ax.axhline(level.height, color="0.5", ls="--", lw=0.7)
        for comparison in comparisons:
            plateau = comparison.predicted
            ax.axvspan(plateau.entry_time, plateau.exit_time, color="0.6", alpha=0.15)
            for observed in comparison.observed:
                if observed is not None:
                    ax.axvline(observed.exit_time, color="C0", lw=0.6, ls=":")
                    if observed.drop_time is not None:
                        ax.axvline(observed.drop_time, color="C3", lw=0.6, ls=":")
            if plateau.drop_time is not None:
                ax.axvline(plateau.drop_time, color="C3", lw=1.2)
        ax.set_yscale("log")
        if log_time:
            ax.set_xscale("log")
        elif drops:
            ax.set_xlim(0.0, min(float(prediction.time[-1]), 5.0 * max(drops)))
        ax.set_xlabel("time t" + (" (log)" if log_time else ""))
        ax.set_ylabel("population risk")
    axes[0].legend(fontsize=7)
    axes[0].set_title("shaded: predicted plateaus; red: drops (solid PDE, dotted seeds)", fontsize=8)
    dimension = _format_dimension(prediction.config.get("data.dimension", "?"))
    sgd_dimension = "?"
    if runs:
        value = runs[0].config.get("sgd.dimension", "data")
        sgd_dimension = _format_dimension(runs[0].config.get("data.dimension", "?") if value == "data" else value)
    fig.suptitle(title or f"Plateaus: reduced PDE (d = {dimension}) vs SGD (d = {sgd_dimension}, "
                          f"{len(runs)} seeds)", fontsize=10)
    return save_figure(fig, path)
