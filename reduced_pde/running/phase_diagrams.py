"""Phase diagrams drawn from sweep datasets (:mod:`reduced_pde.running.sweeps`).

``task = "pde"`` over two axes: per point the final risk R(T), the outcome (reached the risk level /
stalled / still decreasing at T, :func:`reduced_pde.analysis.outcomes.classify_outcome`) and the time
to reach the level; an SGD dataset over points of the same axes is drawn on the same panels (markers
coloured on the same scale) and compared point by point at the SGD's final time.

``task = "plateaus"`` over two axes: the exit times of the first plateaus of each risk curve against
the second axis, one line per value of the first axis, and a table; an SGD dataset over points of the
same axes adds, per point, the exit times of the plateaus detected in each seed's risk curve (the
N = ∞ risk of the neurons' empirical law) with the reduced sweep's detection options, as the seed mean
± standard error (:func:`sgd_plateaus`).

:func:`phase_diagram` draws the figure and returns the lines of its table (the CLI prints them).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from reduced_pde.analysis.outcomes import OUTCOMES, classify_outcome, time_to_level
from reduced_pde.running.sweeps import open_dataset

__all__ = ["phase_diagram", "outcome_maps", "sgd_comparison", "sgd_plateaus"]

_TIME_DIMS = ("time", "output", "seed", "plateau")


def _axes_of(dataset: Any) -> list[str]:
    axes = [dim for dim in dataset.status.dims if dim not in _TIME_DIMS]
    if len(axes) != 2:
        raise ValueError(f"a phase diagram needs a sweep over exactly two axes; this dataset has {axes}")
    return axes


def _times(dataset: Any, at: dict[str, Any]) -> np.ndarray:
    if "time" in dataset.dims:
        return dataset["time"].values
    return dataset["time"].sel(at).values


def outcome_maps(dataset: Any, level: float) -> dict[str, np.ndarray]:
    """Per point of a two-axis ``pde`` sweep: ``final_risk``, ``outcome`` (0 reached, 1 stalled,
    2 decreasing; −1 for a point that did not finish) and ``time_to_level`` (NaN if not reached)."""
    first, second = _axes_of(dataset)
    shape = (dataset.sizes[first], dataset.sizes[second])
    maps = {"final_risk": np.full(shape, math.nan), "outcome": np.full(shape, -1),
            "time_to_level": np.full(shape, math.nan)}
    for i in range(shape[0]):
        for j in range(shape[1]):
            at = {first: i, second: j}
            if int(dataset.status.isel(at)) != 1:
                continue
            point = dataset.isel(at)
            time = point["time"].values
            risk = point.risk.values
            maps["final_risk"][i, j] = point.final_risk.item()
            maps["outcome"][i, j] = classify_outcome(time, risk, level)
            maps["time_to_level"][i, j] = time_to_level(time, risk, level)
    return maps


def _index(values: np.ndarray, value: Any) -> int | None:
    """Position of ``value`` on a coordinate (numbers: equal to 1e-9 relative), None if absent."""
    if values.dtype.kind in "fiu":
        hits = np.flatnonzero(np.isclose(values.astype(float), float(value), rtol=1e-9, atol=0))
    else:
        hits = np.flatnonzero(values.astype(str) == str(value))
    return int(hits[0]) if hits.size else None


def sgd_comparison(pde: Any, sgd: Any, level: float) -> list[dict[str, Any]]:
    """One row per point of the SGD dataset: its grid position in ``pde``, the reduced prediction at the
    SGD's final time T (risk interpolated in ln t between the PDE outputs; outcome and time to level
    on [0, T]), and over the seeds the mean ± standard error (ddof = 1) of the SGD's risk of the
    empirical law of invariants (``risk``: the quantity the PDE predicts at N = ∞), of the finite
    network's exact risk (``network_risk``) and of the time to level, with each seed's outcome."""
    first, second = _axes_of(pde)
    if _axes_of(sgd) != [first, second]:
        raise ValueError(f"--sgd: the SGD dataset's axes {_axes_of(sgd)} differ from the PDE's {[first, second]}")
    rows = []
    for a in sgd[first].values:
        for b in sgd[second].values:
            i, j = _index(pde[first].values, a), _index(pde[second].values, b)
            point = sgd.sel({first: a, second: b})
            done = point.status.values == 1
            if i is None or j is None or not done.any():
                continue
            seeds = point.isel(seed=np.flatnonzero(done))
            time = seeds["time"].values
            horizon = float(time[-1])
            pde_point = pde.isel({first: i, second: j})
            pde_time, pde_risk = pde_point["time"].values, pde_point.risk.values
            keep = pde_time <= horizon * (1 + 1e-12)
            positive = pde_time > 0
            predicted = float(np.exp(np.interp(math.log(horizon), np.log(pde_time[positive]),
                                               np.log(pde_risk[positive]))))
            curve_t = np.append(pde_time[keep], horizon)
            curve_r = np.append(pde_risk[keep], predicted)
            row = {"first": float(a) if np.ndim(a) == 0 and np.asarray(a).dtype.kind in "fiu" else a,
                   "second": float(b) if np.asarray(b).dtype.kind in "fiu" else b, "i": i, "j": j,
                   "horizon": horizon, "seeds": int(done.sum()), "pde_risk": predicted,
                   "pde_outcome": OUTCOMES[classify_outcome(curve_t, curve_r, level)],
                   "pde_time": time_to_level(curve_t, curve_r, level)}
            for name in ("risk", "network_risk"):
                finals = seeds[name].values[:, -1]
                row[f"sgd_{name}"] = float(finals.mean())
                row[f"sgd_{name}_se"] = float(finals.std(ddof=1) / math.sqrt(finals.size)) if finals.size > 1 \
                    else math.nan
            times = np.array([time_to_level(time, r, level) for r in seeds.risk.values])
            row["sgd_time"] = float(np.mean(times)) if np.all(np.isfinite(times)) else math.nan
            row["sgd_time_se"] = float(times.std(ddof=1) / math.sqrt(times.size)) \
                if times.size > 1 and np.all(np.isfinite(times)) else math.nan
            row["sgd_outcomes"] = [OUTCOMES[classify_outcome(time, r, level)] for r in seeds.risk.values]
            rows.append(row)
    return rows


def _plateau_options(dataset: Any) -> dict[str, Any]:
    """The detection options a plateaus sweep stored as ``plateaus.<name>`` attributes."""
    from reduced_pde.running.storage import _decode

    options = {key[len("plateaus."):]: _decode(value) for key, value in dataset.attrs.items()
               if key.startswith("plateaus.")}
    options.pop("max_degree", None)  # matching to theory levels: not a detection option
    return options


def sgd_plateaus(pde: Any, sgd: Any) -> list[dict[str, Any]]:
    """One row per point of the SGD dataset ``sgd`` that lies on the grid of the plateaus sweep ``pde``:
    its position ``(i, j)``, its values, the SGD horizon, and per finished seed the plateaus of its risk
    curve (:func:`~reduced_pde.analysis.plateaus.detect_plateaus` with the options stored in ``pde``;
    a seed whose slope noise triggers the detector's warning is listed in ``noisy``)."""
    import warnings

    from reduced_pde.analysis.plateaus import detect_plateaus

    first, second = _axes_of(pde)
    if _axes_of(sgd) != [first, second]:
        raise ValueError(f"--sgd: the SGD dataset's axes {_axes_of(sgd)} differ from the plateau sweep's "
                         f"{[first, second]}")
    options = _plateau_options(pde)
    rows = []
    for a in sgd[first].values:
        for b in sgd[second].values:
            i, j = _index(pde[first].values, a), _index(pde[second].values, b)
            if i is None or j is None:
                raise ValueError(f"--sgd: the SGD point ({first} = {a}, {second} = {b}) is not on the plateau "
                                 f"sweep's grid")
            point = sgd.sel({first: a, second: b})
            seeds, noisy = [], []
            for seed in point["seed"].values:
                run = point.sel(seed=seed)
                if int(run.status) != 1:
                    continue
                time = run["time"].values
                risk = run.risk.values
                keep = np.isfinite(time) & np.isfinite(risk)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    found = detect_plateaus(time[keep], risk[keep], **options)
                if caught:
                    noisy.append(int(seed))
                seeds.append(found)
            horizon = float(np.nanmax(point["time"].values))
            rows.append({"i": i, "j": j, first: a, second: b, "horizon": horizon, "seeds": seeds,
                         "noisy": noisy})
    return rows


def _near_level(height: Any, level: float) -> Any:
    """Whether a plateau of ``height`` is the plateau at ``level`` (within a factor 1.25)."""
    return np.abs(np.log(height / level)) <= math.log(1.25)


def _still_on(exit_time: Any, horizon: float) -> Any:
    """Whether a plateau's exit is the end of the curve (still on it at the horizon)."""
    return exit_time >= horizon * (1 - 1e-9)


def _seed_exits(row: dict[str, Any], level: float) -> tuple[np.ndarray, int]:
    """Exit times, over the seeds of an SGD row, of the plateau within a factor 1.25 of ``level``
    (seeds still on it at the horizon are counted apart), and the number of seeds that found it."""
    exits, open_ended = [], 0
    for plateaus in row["seeds"]:
        near = [p for p in plateaus if _near_level(p.height, level)]
        if not near:
            continue
        if near[0].exit_time is None or _still_on(near[0].exit_time, row["horizon"]):
            open_ended += 1
        else:
            exits.append(near[0].exit_time)
    return np.array(exits), open_ended


def _label(key: str) -> str:
    names = {"initial.kappa": "κ (initial scale)", "data.delta": "Δ (class separation)",
             "data.dimension": "d", "network.second_layer_rate": "1/ε (second-layer rate)"}
    return names.get(key, key)


def _ticks(ax: Any, values: np.ndarray, axis: str) -> None:
    labels = [f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v) for v in values.tolist()]
    getattr(ax, f"set_{axis}ticks")(range(len(values)))
    getattr(ax, f"set_{axis}ticklabels")(labels, rotation=45 if axis == "x" else 0)


def _pde_figure(pde: Any, sgd: Any | None, level: float, output: Path, title: str | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm

    first, second = _axes_of(pde)
    maps = outcome_maps(pde, level)
    rows = sgd_comparison(pde, sgd, level) if sgd is not None else []
    horizon = float(pde["time"].values[-1]) if "time" in pde.dims else math.nan
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), constrained_layout=True)
    # rows of the maps = first axis (y), columns = second axis (x)
    risk = maps["final_risk"]
    norm = LogNorm(vmin=np.nanmin(risk), vmax=np.nanmax(risk))
    image = axes[0].imshow(risk, origin="lower", cmap="viridis", norm=norm, aspect="auto")
    fig.colorbar(image, ax=axes[0], label=f"reduced PDE: R(T = {horizon:g})")
    outcome_cmap = ListedColormap(["#dddddd", "#4daf4a", "#e41a1c", "#ff7f00"])
    axes[1].imshow(maps["outcome"], origin="lower", cmap=outcome_cmap, aspect="auto",
                   norm=BoundaryNorm([-1.5, -0.5, 0.5, 1.5, 2.5], 4))
    for i in range(risk.shape[0]):
        for j in range(risk.shape[1]):
            code = int(maps["outcome"][i, j])
            axes[1].text(j, i, "—" if code < 0 else OUTCOMES[code][0].upper(), ha="center", va="center",
                         fontsize=9, color="white")
    from matplotlib.patches import Patch

    axes[1].legend(handles=[Patch(color=c, label=f"{n} (PDE)") for c, n in
                            zip(["#4daf4a", "#e41a1c", "#ff7f00"], ["R ≤ level by T", "stalled at T", "still decreasing"])],
                   loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=8)
    times = maps["time_to_level"]
    finite = times[np.isfinite(times) & (times > 0)]
    tnorm = LogNorm(vmin=finite.min(), vmax=finite.max()) if finite.size else None
    image = axes[2].imshow(np.where(times > 0, times, np.nan), origin="lower", cmap="magma_r", norm=tnorm,
                           aspect="auto")
    fig.colorbar(image, ax=axes[2], label=f"time to reach R = {level:g} (blank: not by T)")
    for i, j in zip(*np.nonzero(times == 0)):
        axes[2].text(j, i, "R(0) ≤ level", ha="center", va="center", fontsize=7)
    for row in rows:  # SGD: same colour scale, black edge; label = seeds' mean
        axes[0].scatter([row["j"]], [row["i"]], s=260, c=[row["sgd_risk"]], cmap="viridis", norm=norm,
                        edgecolors="black", linewidths=1.5, marker="o", zorder=3)
        axes[0].annotate(f"{row['sgd_risk']:.3g} ({row['pde_risk']:.3g})", (row["j"], row["i"]),
                         textcoords="offset points", xytext=(11, 0), ha="left", va="center", fontsize=7,
                         bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.8, "lw": 0})
        reached = sum(o == "reached" for o in row["sgd_outcomes"])
        axes[1].scatter([row["j"]], [row["i"]], s=200, facecolors="none", edgecolors="black", linewidths=1.5,
                        zorder=3)
        axes[1].annotate(f"SGD {reached}/{row['seeds']}", (row["j"], row["i"]),
                         textcoords="offset points", xytext=(11, 0), ha="left", va="center", fontsize=7,
                         bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.8, "lw": 0})
        if math.isfinite(row["sgd_time"]) and tnorm is not None:
            axes[2].scatter([row["j"]], [row["i"]], s=200, c=[row["sgd_time"]], cmap="magma_r", norm=tnorm,
                            edgecolors="black", linewidths=1.5, zorder=3)
    sgd_horizon = f"t = {rows[0]['horizon']:g}" if rows else ""
    for ax, name in zip(axes, [f"PDE R(T = {horizon:g})" + (f"; discs: SGD mean R({sgd_horizon[4:]}),\n"
                                                            f"labels: SGD (PDE) at {sgd_horizon}" if rows else ""),
                               f"PDE outcome at T = {horizon:g}, level R = {level:g}"
                               + (f";\nlabels: SGD seeds below the level by {sgd_horizon}" if rows else ""),
                               "time to reach the level" + ("; discs: SGD mean" if rows else "")]):
        _ticks(ax, pde[second].values, "x")
        _ticks(ax, pde[first].values, "y")
        ax.set_xlabel(_label(second))
        ax.set_ylabel(_label(first))
        ax.set_title(name, fontsize=10)
    fig.suptitle(title or f"{pde.attrs.get('sweep.name', '')}: reduced PDE over ({_label(first)}, {_label(second)})"
                 + (f"; SGD seeds at {len(rows)} points" if rows else ""))
    fig.savefig(output, dpi=130)
    plt.close(fig)
    lines = [f"reduced PDE, {pde.sizes[first]} x {pde.sizes[second]} points, T = {horizon:g}, level R = {level:g}: "
             + ", ".join(f"{int(np.sum(maps['outcome'] == k))} {name}" for k, name in enumerate(OUTCOMES))]
    if rows:
        lines.append(f"{first:>16} {second:>12} {'T':>5} {'R_PDE(T)':>10} {'R_SGD(T) (law)':>20} "
                     f"{'R_SGD(T) (network)':>20} {'t_PDE':>8} {'t_SGD':>16}  PDE outcome / SGD seeds")
        for r in rows:
            t_sgd = f"{r['sgd_time']:.3g} ± {r['sgd_time_se']:.2g}" if math.isfinite(r["sgd_time"]) else "-"
            lines.append(f"{r['first']:16.4g} {r['second']:12.4g} {r['horizon']:5.3g} {r['pde_risk']:10.4g} "
                         f"{r['sgd_risk']:11.4g} ± {r['sgd_risk_se']:6.2g} {r['sgd_network_risk']:11.4g} ± "
                         f"{r['sgd_network_risk_se']:6.2g} {r['pde_time']:8.3g} {t_sgd:>16}  {r['pde_outcome']} / "
                         f"{', '.join(r['sgd_outcomes'])}")
    return lines


def _height_clusters(heights: np.ndarray, ratio: float = 1.25) -> list[float]:
    """Representative heights of the plateaus found anywhere in the sweep: sorted heights grouped while
    within ``ratio`` of the group's first one (the same plateau at different points)."""
    values = np.sort(heights[np.isfinite(heights)])[::-1]
    clusters: list[list[float]] = []
    for h in values:
        if clusters and clusters[-1][0] / h <= ratio:
            clusters[-1].append(float(h))
        else:
            clusters.append([float(h)])
    return [float(np.median(c)) for c in clusters]


def _plateau_figure(dataset: Any, sgd: Any | None, output: Path, title: str | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first, second = _axes_of(dataset)
    exits, heights = dataset.plateau_exit.values, dataset.plateau_height.values
    entries = dataset.plateau_entry.values
    horizon = np.nanmax(dataset["time"].values)
    levels = _height_clusters(heights)
    shown = max(1, min(len(levels), 3))
    rows = sgd_plateaus(dataset, sgd) if sgd is not None else []
    fig, axes = plt.subplots(1, shown, figsize=(5.2 * shown, 4.6), constrained_layout=True, squeeze=False,
                             sharex=True)
    x = dataset[second].values.astype(float)
    colours = plt.cm.viridis(np.linspace(0, 0.85, dataset.sizes[first]))
    for k, level in enumerate(levels[:shown]):
        ax = axes[0, k]
        for i, value in enumerate(dataset[first].values):
            y = np.full(x.shape, np.nan)
            open_end = np.zeros(x.shape, dtype=bool)
            for j in range(x.size):
                near = np.flatnonzero(_near_level(heights[i, j], level))
                if near.size:
                    y[j] = exits[i, j, near[0]]
                    open_end[j] = _still_on(y[j], horizon)
            closed = np.where(open_end, np.nan, y)
            ax.plot(x, closed, "o-", color=colours[i], label=f"{_label(first).split(' ')[0]} = {value:g}")
            if open_end.any():
                ax.plot(x[open_end], y[open_end], "^", color=colours[i], markerfacecolor="none")
        labelled = False
        for row in rows:
            seed_exits, _ = _seed_exits(row, level)
            if seed_exits.size == 0:
                continue
            error = seed_exits.std(ddof=1) / math.sqrt(seed_exits.size) if seed_exits.size > 1 else 0.0
            ax.errorbar([x[row["j"]]], [seed_exits.mean()], yerr=[[error], [error]], fmt="s", ms=9,
                        color=colours[row["i"]], markeredgecolor="black", markerfacecolor="none", capsize=3,
                        zorder=3, label=None if labelled else
                        f"SGD, seed mean ± s.e. (T = {row['horizon']:g})")
            labelled = True
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(_label(second))
        ax.set_ylabel("exit time")
        ax.set_title(f"plateau at R ≈ {level:.3g} (missing: not detected; △: still on it at T = {horizon:g})",
                     fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(title or f"{dataset.attrs.get('sweep.name', '')}: plateau exit times over "
                          f"({_label(first)}, {_label(second)})")
    fig.savefig(output, dpi=130)
    plt.close(fig)
    lines = [f"{first:>26} {second:>14}  plateaus: height [entry, exit]  ('> T': still on it at T = {horizon:g})"]
    for i, a in enumerate(dataset[first].values):
        for j, b in enumerate(dataset[second].values):
            found = [f"{heights[i, j, k]:.4g} [{entries[i, j, k]:.3g}, "
                     + (f"> T]" if _still_on(exits[i, j, k], horizon) else f"{exits[i, j, k]:.3g}]")
                     for k in range(exits.shape[-1]) if np.isfinite(heights[i, j, k])]
            status = "" if int(dataset.status.values[i, j]) == 1 else "  (not finished)"
            lines.append(f"{a!s:>26} {b!s:>14}  " + "; ".join(found) + status)
    for row in rows:
        a, b = dataset[first].values[row["i"]], dataset[second].values[row["j"]]
        parts = []
        for level in levels:
            seed_exits, open_ended = _seed_exits(row, level)
            if seed_exits.size == 0 and open_ended == 0:
                continue
            error = f" ± {seed_exits.std(ddof=1) / math.sqrt(seed_exits.size):.2g}" if seed_exits.size > 1 else ""
            mean = f"exit {seed_exits.mean():.3g}{error} ({seed_exits.size} seeds)" if seed_exits.size else "no exit"
            parts.append(f"{level:.4g}: {mean}" + (f", {open_ended} still on it" if open_ended else ""))
        noisy = f"  (slope noise above threshold/4 in seeds {row['noisy']})" if row["noisy"] else ""
        lines.append(f"{'SGD ' + str(len(row['seeds'])) + ' seeds':>10} {a!s:>15} {b!s:>14}  "
                     + ("; ".join(parts) or "no plateau near the reduced levels")
                     + f"  (T = {row['horizon']:g}){noisy}")
    return lines


def phase_diagram(path: str | Path, output: str | Path, *, sgd: str | Path | None = None,
                  level: float | None = None, title: str | None = None) -> list[str]:
    """Draw the phase diagram of the sweep dataset ``path`` to ``output`` and return its table.
    ``level``: the risk level of the outcome and time-to-level maps (default: half the largest initial
    risk on the grid)."""
    dataset = open_dataset(path)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    kind = dataset.attrs.get("sweep.task")
    other = open_dataset(sgd) if sgd is not None else None
    if other is not None and other.attrs.get("sweep.task") != "sgd":
        raise ValueError(f"--sgd {str(sgd)!r} is a {other.attrs.get('sweep.task')!r} sweep, not an sgd sweep")
    if kind == "plateaus":
        if level is not None:
            raise ValueError("--level applies to a pde sweep; this dataset is a plateaus sweep")
        lines = _plateau_figure(dataset, other, output, title)
    elif kind == "pde":
        if level is None:
            level = 0.5 * float(np.nanmax(dataset.risk.isel({dataset.risk.dims[-1]: 0}).values))
        elif not (math.isfinite(level) and level > 0):
            raise ValueError(f"--level = {level!r} must be a finite risk > 0")
        lines = _pde_figure(dataset, other, level, output, title)
    else:
        raise ValueError(f"phase-diagram: {str(path)!r} is a {kind!r} sweep; it draws pde and plateaus sweeps")
    return lines + [f"wrote {output}"]
