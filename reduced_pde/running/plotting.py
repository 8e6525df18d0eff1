"""PDE-vs-SGD figures, drawn from result files alone.

* :func:`plot_risk_comparison`: risk vs time (log–log), reduced PDE as lines, SGD as symbols drawn
  over them (mean over seeds, bars = seed-to-seed min–max); right panel: an order parameter that is
  not zero by symmetry (mean |w| for a radial law, ⟨s²⟩ = mean² + std² for an overlap s).  For SGD
  the filled symbols are the N = ∞ risk of the empirical law of the invariants (design note §5: the
  like-for-like comparison) and the small open symbols the exact population risk of the N-neuron
  network; every legend entry names its case.
* :func:`plot_law_evolution`, :func:`plot_marginals`: laws at the requested times (each panel is the
  nearest stored output, and its title says so when that differs from the time asked for); PDE as a
  line that falls to zero outside the support of its particles, SGD pooled over seeds.  A law with
  atoms (peak density × support width > ``ATOM_RATIO``, e.g. neurons piled at s = ±1 on the sphere)
  is drawn as cumulative distribution functions, on which PDE and SGD are comparable.
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
    "has_atoms",
    "law_cdf",
    "nearest_output",
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
        label = f"d = {_dimension_label(first)}"
        if "initial.kappa" in config:   # models without a first-layer scale (the sphere) have none
            label = f"κ = {config['initial.kappa']}, " + label
        out.append((label, pde[0] if pde else None, sgd))
    return out


def _dimension_label(trajectory: Trajectory) -> str:
    """The data dimension a file was run at ("inf" for the d = ∞ reductions)."""
    d = trajectory.config.get("data.dimension", "?")
    return str(int(d)) if isinstance(d, (int, float)) and math.isfinite(d) else str(d).replace("inf", "∞")


def _positive_times(trajectory: Trajectory) -> np.ndarray:
    return trajectory.time > 0


def _summary(trajectory: Trajectory) -> tuple[str, np.ndarray]:
    """(label, values) of the order parameter drawn next to the risk: ⟨s²⟩ = mean² + std² of the
    overlap s (s1) when the law has one (its mean is zero by symmetry for even targets, ⟨s²⟩ is not),
    else the mean of the last coordinate (|w| for MMN18, a non-negative radius)."""
    for name in ("s", "s1"):
        if name in trajectory.coordinates:
            return f"⟨{name}²⟩", trajectory.mean_of(name) ** 2 + trajectory.std_of(name) ** 2
    name = trajectory.coordinates[-1]
    return ("mean |w|" if name == "r" else f"mean {name}"), trajectory.mean_of(name)


def _seeds(count: int) -> str:
    return f"{count} seed" + ("" if count == 1 else "s")


def nearest_output(trajectory: Trajectory, t: float) -> int:
    """Index of the stored output time nearest to ``t``."""
    return int(np.argmin(np.abs(trajectory.time - t)))


def _panel_title(stored: float, asked: float) -> str:
    """"t = stored", with the time asked for when the nearest stored output differs from it."""
    if abs(stored - asked) <= 1e-9 * max(1.0, abs(asked)):
        return f"t = {stored:.3g}"
    return f"t = {stored:.3g} (nearest output to {asked:g})"


def plot_risk_comparison(trajectories: Sequence[Trajectory], path: str | Path,
                         title: str | None = None) -> Path:
    """Risk vs time (left, log–log) and the order parameter of :func:`_summary` (right), one colour
    per case (:func:`group_cases`): PDE lines under SGD symbols."""
    fig, (ax, right) = plt.subplots(1, 2, figsize=(11.0, 4.6), gridspec_kw={"width_ratios": [1.6, 1.0]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (label, pde, sgd) in enumerate(group_cases(trajectories)):
        color = colors[index % len(colors)]
        if pde is not None:
            keep = _positive_times(pde)
            ax.plot(pde.time[keep], pde.risk[keep], "-", color=color, lw=1.6, zorder=2, label=f"PDE, {label}")
            right.plot(pde.time[keep], _summary(pde)[1][keep], "-", color=color, lw=1.5, zorder=2,
                       label=f"PDE, {label}")
        if sgd:
            keep = _positive_times(sgd[0])
            t = sgd[0].time[keep]
            reduced = np.array([s.risk[keep] for s in sgd])
            network = (np.array([s.network_risk[keep] for s in sgd])
                       if all(s.network_risk is not None for s in sgd) else None)
            summary = np.array([_summary(s)[1][keep] for s in sgd])
            n_neurons = sgd[0].config.get("sgd.n_neurons", "?")
            who = f"SGD N = {n_neurons}, {_seeds(len(sgd))}, {label}"
            if f"d = {_dimension_label(sgd[0])}" not in label:
                who += f" (SGD at d = {_dimension_label(sgd[0])})"
            ax.errorbar(t, reduced.mean(0), yerr=[reduced.mean(0) - reduced.min(0), reduced.max(0) - reduced.mean(0)],
                        fmt="o", ms=4.5, color=color, mec="white", mew=0.6, capsize=2, zorder=3,
                        label=f"{who}: R of the law of the invariants")
            if network is not None:
                ax.plot(t, network.mean(0), "o", ms=3.5, mfc="none", color=color, alpha=0.8, zorder=3,
                        label=f"{who}: network risk R_N")
            right.errorbar(t, summary.mean(0), yerr=[summary.mean(0) - summary.min(0), summary.max(0) - summary.mean(0)],
                           fmt="o", ms=3.5, color=color, mec="white", mew=0.5, capsize=1.5, zorder=3,
                           label=f"SGD, {label}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time t (= SGD steps × ε)")
    ax.set_ylabel("population risk")
    ax.legend(fontsize=6.5, loc="best")
    right.set_xscale("log")
    right.set_xlabel("time t")
    right.set_ylabel(_summary(trajectories[0])[0] if trajectories else "")
    right.set_title("order parameter (bars: seed min–max)", fontsize=9)
    fig.suptitle(title or "Reduced PDE (lines) vs SGD (symbols)", fontsize=10)
    return save_figure(fig, path)


def quantile_particle_density(positions: np.ndarray, masses: np.ndarray,
                              group: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Density of the law carried by ordered quantile particles: the mass of ``group`` consecutive
    particles over the distance they span (1-D flows keep particles ordered), closed by zeros at the
    outermost particles (the law carries no mass beyond them), so the line does not stop in mid-air."""
    order = np.argsort(positions)
    r, m = positions[order], masses[order]
    n = (len(r) - 1) // group
    if n < 1:
        return r, np.full_like(r, np.nan)
    left, right = r[: n * group : group], r[group : n * group + 1 : group]
    mass = np.add.reduceat(m[: n * group], np.arange(0, n * group, group))
    with np.errstate(divide="ignore"):
        density = np.where(right > left, mass / (right - left), np.nan)
    return (np.concatenate([[r[0]], 0.5 * (left + right), [r[-1]]]),
            np.concatenate([[0.0], density, [0.0]]))


#: a law is drawn as CDFs when its peak density times the width of its support exceeds this (a
#: smooth unimodal law gives ≲ 5 — a Gaussian over ±4 std gives 3.2 — neurons piled into atoms give
#: hundreds, and a density plot then shows the spikes and hides the bulk)
ATOM_RATIO = 25.0


def has_atoms(x: np.ndarray, density: np.ndarray) -> bool:
    """Whether the law with this density on the points x has (near-)atoms: peak density × support
    width > :data:`ATOM_RATIO`, the support being where the density exceeds 1e-6 of its peak."""
    x, density = np.asarray(x, dtype=float), np.asarray(density, dtype=float)
    finite = np.isfinite(density)
    if not finite.any():
        return False
    peak = float(np.max(density[finite]))
    if peak <= 0:
        return False
    support = x[finite & (density > 1e-6 * peak)]
    width = float(support.max() - support.min())
    return width <= 0 or peak * width > ATOM_RATIO


def law_cdf(trajectory: Trajectory, coordinate: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, F(x)) of the marginal law of ``coordinate`` at output ``index``: exact for particles
    (steps at the sorted positions), the integral of the cell densities at the cell edges for a grid."""
    names = coordinate_names(trajectory)
    law = trajectory.particle_law(index) if "positions" in trajectory.fields or trajectory.kind == "sgd" else None
    if law is not None:
        x, masses = law
        values = np.asarray(x)[:, names.index(coordinate)]
        order = np.argsort(values)
        cdf = np.cumsum(np.asarray(masses, dtype=float)[order])
        return np.repeat(values[order], 2), np.concatenate([[0.0], np.repeat(cdf / cdf[-1], 2)[:-1]])
    centers, density = marginal_density(trajectory, coordinate, index)
    edges = trajectory.fields.get(f"{coordinate}_edges")
    if edges is not None and np.ndim(edges) == 2:  # an adapted grid: its cells at each output
        edges = edges[index]
    if edges is None or len(edges) != len(centers) + 1:
        mid = 0.5 * (centers[1:] + centers[:-1])
        edges = np.concatenate([[2 * centers[0] - mid[0]], mid, [2 * centers[-1] - mid[-1]]])
    edges = np.asarray(edges, dtype=float)
    cdf = np.concatenate([[0.0], np.cumsum(density * np.diff(edges))])
    return edges, cdf / cdf[-1]


def _sgd_cdf_symbols(ax: plt.Axes, samples: np.ndarray, lo: float, hi: float, label: str) -> None:
    """Empirical CDF of pooled SGD samples at 30 points of [lo, hi], ± one binomial standard error."""
    x = np.linspace(lo, hi, 30)
    values = np.searchsorted(np.sort(samples), x, side="right") / samples.size
    error = np.sqrt(values * (1 - values) / samples.size)
    ax.errorbar(x, values, yerr=error, fmt="o", ms=3, color="C3", mec="white", mew=0.4, capsize=1.5,
                zorder=3, label=label)


def _coordinate_samples(trajectory: Trajectory) -> np.ndarray:
    """(T, N) samples of the reduced coordinate of a one-coordinate SGD run (|w_i| radial, s_i on the
    sphere), from the field ``points`` (T, N, 1)."""
    return np.asarray(trajectory.fields["points"])[..., 0]


def plot_law_evolution(pde: Trajectory, sgd: Sequence[Trajectory], times: Sequence[float],
                       path: str | Path, title: str | None = None) -> Path:
    """The law of a one-coordinate reduction (|w|, or s on the sphere) at ``times``: PDE density (line)
    over the SGD histogram pooled over seeds, or both as CDFs when the law has atoms (:func:`has_atoms`)."""
    if "density" not in pde.fields and "positions" not in pde.fields:
        raise ValueError("the PDE file holds no density (fields/density) or particles (fields/positions)")
    name = pde.coordinates[0]
    xlabel = "s = ⟨w, θ*⟩" if name == "s" else ("|w|" if name == "r" else name)
    curves = []
    for t in times:
        i_pde = nearest_output(pde, t)
        if "density" in pde.fields:
            curves.append((i_pde, _cells_at(pde.fields[f"{name}_centers"], i_pde), np.asarray(pde.fields["density"][i_pde])))
        else:
            curves.append((i_pde, *quantile_particle_density(pde.fields["positions"][i_pde], pde.fields["masses"])))
    cdf = any(has_atoms(x, p) for _, x, p in curves)
    fig, axes = plt.subplots(1, len(times), figsize=(3.2 * len(times), 3.0), squeeze=False)
    for ax, t, (i_pde, x, p) in zip(axes[0], times, curves):
        samples = None
        if sgd:
            i_sgd = nearest_output(sgd[0], t)
            samples = np.concatenate([_coordinate_samples(s)[i_sgd] for s in sgd])
        pde_label = "PDE" if "density" in pde.fields else "PDE (characteristics)"
        if cdf:
            xc, fc = law_cdf(pde, name, i_pde)
            ax.plot(xc, fc, "k-", lw=1.4, zorder=2, label=pde_label)
            if samples is not None:
                lo = min(float(samples.min()), float(xc[0]))
                hi = max(float(samples.max()), float(xc[-1]))
                _sgd_cdf_symbols(ax, samples, lo, hi, f"SGD ({_seeds(len(sgd))})")
        else:
            if samples is not None:
                ax.hist(samples, bins=40, density=True, color="0.75", zorder=1, label=f"SGD ({_seeds(len(sgd))})")
            ax.plot(x, p, "k-", lw=1.5, zorder=2, label=pde_label)
        ax.set_title(_panel_title(float(pde.time[i_pde]), float(t)), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("cumulative distribution" if cdf else "density")
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


def _cells_at(centers: Any, index: int) -> np.ndarray:
    """Cell centres at output ``index``: static (1-D), or per output (2-D) for an adapted grid."""
    centers = np.asarray(centers, dtype=float)
    return centers[index] if centers.ndim == 2 else centers


def marginal_density(trajectory: Trajectory, coordinate: str, index: int,
                     bins: np.ndarray | int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Marginal density of ``coordinate`` at output ``index``: from a grid solution's
    ``marginal_<name>`` (with ``<name>_centers``), else a mass-weighted histogram of its particles."""
    names = coordinate_names(trajectory)
    if coordinate not in names:
        raise ValueError(f"coordinate {coordinate!r} is not one of the file's coordinates {names}")
    fields = trajectory.fields
    if f"marginal_{coordinate}" in fields:
        return _cells_at(fields[f"{coordinate}_centers"], index), np.asarray(fields[f"marginal_{coordinate}"][index])
    if "density" in fields and len(names) == 1:
        return _cells_at(fields[f"{coordinate}_centers"], index), np.asarray(fields["density"][index])
    law = trajectory.particle_law(index)
    if law is None:
        raise ValueError(f"the {trajectory.kind} file holds neither marginals nor particles")
    x, masses = law
    values, edges = np.histogram(x[:, names.index(coordinate)], bins=bins, weights=masses, density=True)
    # closed by zeros at the outermost particles: no mass beyond them
    return (np.concatenate([[edges[0]], 0.5 * (edges[1:] + edges[:-1]), [edges[-1]]]),
            np.concatenate([[0.0], values, [0.0]]))


def plot_marginals(pde: Trajectory, sgd: Sequence[Trajectory], times: Sequence[float],
                   path: str | Path, coordinates: Sequence[str] | None = None,
                   title: str | None = None) -> Path:
    """Evolution of the marginal laws (rows: coordinates, columns: times): the reduced solution as a
    line, SGD (pooled over seeds, histogram on the same bins) as symbols with ± one binomial
    standard error, drawn over the line.  A row whose law has atoms (:func:`has_atoms`) is drawn as
    CDFs (SGD: empirical CDF ± binomial standard error)."""
    names = tuple(coordinates) if coordinates else tuple(n for n in coordinate_names(pde) if n != "r") \
        or coordinate_names(pde)
    fig, axes = plt.subplots(len(names), len(times), figsize=(3.1 * len(times), 2.6 * len(names)),
                             squeeze=False)
    for row, name in enumerate(names):
        indices = [nearest_output(pde, t) for t in times]
        densities = [marginal_density(pde, name, i) for i in indices]
        cdf = any(has_atoms(x, p) for x, p in densities)
        for col, (t, i_pde, (x, p)) in enumerate(zip(times, indices, densities)):
            ax = axes[row][col]
            samples = None
            if sgd:
                i_sgd = nearest_output(sgd[0], t)
                samples = np.concatenate([s.particle_law(i_sgd)[0][:, coordinate_names(s).index(name)]
                                          for s in sgd])
            if cdf:
                xc, fc = law_cdf(pde, name, i_pde)
                ax.plot(xc, fc, "k-", lw=1.4, zorder=2, label="reduced PDE")
                if samples is not None:
                    _sgd_cdf_symbols(ax, samples, min(float(samples.min()), float(xc[0])),
                                     max(float(samples.max()), float(xc[-1])), f"SGD ({_seeds(len(sgd))})")
            else:
                ax.plot(x, p, "k-", lw=1.5, zorder=2, label="reduced PDE")
                if samples is not None:
                    lo, hi = float(np.min(samples)), float(np.max(samples))
                    span = max(hi - lo, 1e-3)
                    edges = np.linspace(lo - 0.02 * span, hi + 0.02 * span, 31)
                    counts, _ = np.histogram(samples, bins=edges)
                    width = np.diff(edges)
                    density = counts / (samples.size * width)
                    error = np.sqrt(counts) / (samples.size * width)
                    ax.errorbar(0.5 * (edges[1:] + edges[:-1]), density, yerr=error, fmt="o", ms=3,
                                color="C3", mec="white", mew=0.4, capsize=1.5, zorder=3,
                                label=f"SGD ({_seeds(len(sgd))})")
            if row == 0:
                ax.set_title(_panel_title(float(pde.time[i_pde]), float(t)), fontsize=8)
            ax.set_xlabel(name, fontsize=9)
            ax.tick_params(labelsize=7)
        axes[row][0].set_ylabel(f"CDF of {name}" if cdf else f"density of {name}", fontsize=9)
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
                      path: str | Path, *, fit: Any = None, estimates: Any = None, level: float = 0.5,
                      title: str | None = None) -> Path:
    """Escape time from the initial plateau vs dimension (log–log): the reduced solves (symbols), the
    predicted law (dashed: ``τ_q d^{(k−2)/2}``, exact quadrature for k = 2) and a power-law fit (solid):
    ``estimates`` (:class:`~reduced_pde.analysis.timescales.ExponentEstimates`: the label gives the fit
    and the range of the fitted, local and extrapolated exponents — the systematic uncertainty) or a
    bare ``fit`` (:class:`~reduced_pde.analysis.timescales.PowerLawFit`: the label gives γ alone; its
    residual s.e. is not an uncertainty for deterministic times); right panel: ``T/T_pred − 1``, the
    finite-d correction, which must tend to 0."""
    d = np.asarray(dimensions, dtype=float)
    times = np.asarray(escape_times, dtype=float)
    prediction = np.asarray(predicted, dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    ax = axes[0]
    ax.loglog(d, times, "o", color="C0", label=f"reduced PDE, $T_{{{level:g}}}$")
    ax.loglog(d, prediction, "--", color="k", alpha=0.6,
              label="exact (k = 2)" if k == 2 else f"predicted τ d$^{{{(k - 2) / 2:g}}}$")
    if estimates is not None:
        fit = estimates.fit
    if fit is not None:
        grid = np.geomspace(fit.d_min, d.max(), 50)
        label = f"fit d ≥ {fit.d_min:g}: γ = {fit.exponent:.3f}"
        if estimates is not None:
            label += f"\n(fitted/local/extrapolated: {estimates.low:.3f} – {estimates.high:.3f})"
        ax.loglog(grid, fit.prefactor * grid ** fit.exponent, "-", color="C0", alpha=0.6, label=label)
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
                fitted = "nothing fitted" if level.fitted_degree < 0 else f"≤ {level.fitted_degree} fitted"
                ax.annotate(f"R = {level.height:.3g} ({fitted})", (0.99, level.height),
                            xycoords=("axes fraction", "data"), fontsize=6.5, color="0.35", ha="right", va="bottom")
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
