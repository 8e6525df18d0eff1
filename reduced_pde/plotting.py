"""PDE-vs-SGD figures, drawn from result files alone.

* :func:`plot_risk_comparison`: risk vs time (log–log), reduced PDE as lines, SGD as symbols
  (mean over seeds, bars = seed-to-seed min–max); inset: mean |w|.  For SGD the filled symbols are
  the N = ∞ risk of the empirical law of |w| (design note §5: the like-for-like comparison) and
  the small open symbols the exact population risk of the N-neuron network.
* :func:`plot_law_evolution`: the law of |w| at a few times: PDE density (line) over the SGD
  histogram pooled over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from solvers.results import Trajectory  # noqa: E402

__all__ = ["case_key", "group_cases", "plot_risk_comparison", "plot_law_evolution"]

_CASE_TABLES = ("data.", "activation.", "initial.", "schedule.")


def _save(fig: plt.Figure, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def case_key(trajectory: Trajectory) -> tuple:
    """The physical problem a file solves (data, activation, initial law, schedule)."""
    return tuple(sorted((k, str(v)) for k, v in trajectory.config.items() if k.startswith(_CASE_TABLES)))


def group_cases(trajectories: Sequence[Trajectory]) -> list[tuple[str, Trajectory | None, list[Trajectory]]]:
    """Group files by problem: [(label, pde trajectory or None, [sgd trajectories])]."""
    groups: dict[tuple, tuple[list, list]] = {}
    for trajectory in trajectories:
        pde, sgd = groups.setdefault(case_key(trajectory), ([], []))
        (sgd if trajectory.kind == "sgd" else pde).append(trajectory)
    out = []
    for key, (pde, sgd) in groups.items():
        config = dict(key)
        label = f"κ = {config.get('initial.kappa', '?')}, d = {config.get('data.dimension', '?')}"
        out.append((label, pde[0] if pde else None, sgd))
    return out


def _positive_times(trajectory: Trajectory) -> np.ndarray:
    return trajectory.time > 0


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
            inset.plot(pde.time[keep], pde.mean_r[keep], "-", color=color, lw=1.5)
        if sgd:
            keep = _positive_times(sgd[0])
            t = sgd[0].time[keep]
            reduced = np.array([s.fields.get("reduced_risk", s.risk)[keep] for s in sgd])
            network = np.array([s.risk[keep] for s in sgd])
            mean_r = np.array([s.mean_r[keep] for s in sgd])
            n_neurons = sgd[0].config.get("sgd.n_neurons", "?")
            ax.errorbar(t, reduced.mean(0), yerr=[reduced.mean(0) - reduced.min(0), reduced.max(0) - reduced.mean(0)],
                        fmt="o", ms=4.5, color=color, capsize=2,
                        label=f"SGD N={n_neurons} ({len(sgd)} seeds), R of law of |w|")
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
    inset.set_ylabel("mean |w| (or s)", fontsize=7)
    inset.tick_params(labelsize=6)
    return _save(fig, path)


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
    """(T, N) samples of the reduced coordinate of an SGD run: |w_i| (radial) or s_i (sphere)."""
    return trajectory.fields["norms"] if "norms" in trajectory.fields else trajectory.fields["s"]


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
            ax.plot(pde.fields["r_centers"], pde.fields["density"][i_pde], "k-", lw=1.5, label="PDE")
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
    return _save(fig, path)
