"""Learning times vs the layer-speed ratio ε for a BMZ-type target (issue 5, time-scale laws).

Problem (configs/bmz_plateaus.toml): y = He_0 − He_1 + (2/3) He_2 of ⟨θ*, x⟩, ReLU neurons on the
sphere at d = ∞ (s(0) = 0), second layer a(0) ~ N(0, 0.5²) trained 1/ε times faster than w;
characteristics solver, 40 Gauss–Hermite particles of a (``pde.sampling = "gauss"``: at small ε the
He_2 time is decided by the neurons with the largest |a(0)|, which mid-quantile particles resolve
badly — 20 mid-quantiles put t_2 3.4× too late at ε = 1e-9), Radau with the solver's Jacobian, rtol 1e-6.
For ε = 1e-1 … 1e-9 it measures, on 40 output times per decade,

  t_0  risk has lost half of the He_0 excess (R = R_0 + φ̂_0²/2), against the exact
       t_0 = ε ln 2 / (4 α_0²)                                  (reduced_pde.analysis.timescales.he0_fit_time)
  t_1  m̂_1 reaches φ̂_1/2, against the derived leading order
       t_1 = (√ε/(4 α_1 |φ̂_1|)) [ln(2|φ̂_1|/(α_1 V √ε)) + O(1)]  (he1_learning_time; V = Var a(0)):
       the slope of t_1/√ε in ln(1/√ε) must tend to 1/(4 α_1 |φ̂_1|) = 1/2
  t_2  m̂_2 reaches φ̂_2/2; measured law of t_2 − t_1 (a naive extension of the He_1 argument
       suggests ε^{1/4}; the converged computation does not follow it — see the results)

(derivations: the comment block "Learning times with separated layer speeds" in
reduced_pde/timescales.py), the plateaus found by reduced_pde.analysis.plateaus.detect_plateaus, local
exponents d ln t/d ln ε, and power-law fits with their residual standard errors.  Checks: 80 vs 40
Gauss particles and rtol 1e-8 vs 1e-6 at ε = 1e-2 and 1e-9.

Writes benchmarks/epsilon_sweep_results.txt and figures/epsilon_sweep.png.  About 6 minutes.
    python benchmarks/epsilon_sweep.py
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reduced_pde.running.pipeline import plateau_report, run_pde
from reduced_pde.running.config import build_problem, load_config
from reduced_pde.analysis import timescales

CONFIG = ROOT / "configs" / "bmz_plateaus.toml"
EPSILONS = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9]
POINTS_PER_DECADE = 40
T_FINAL = 10.0
SECOND_LAYER_VARIANCE = 0.25


def solve(epsilon: float, *, particles: int = 40, rtol: float = 1e-6) -> dict:
    """One reduced solve at ratio ε; returns the learning times, plateaus and the risk curve."""
    t_first = min(1e-2 * epsilon, 1e-4)
    n_outputs = int(POINTS_PER_DECADE * math.log10(T_FINAL / t_first)) + 1
    config = load_config(CONFIG, [f"network.second_layer_rate={1.0 / epsilon!r}", f"output.t_final={T_FINAL}",
                                  f"output.t_first={t_first!r}", f"output.n_outputs={n_outputs}",
                                  f"pde.n_particles={particles}", f"pde.rtol={rtol!r}", "pde.sampling=gauss"])
    start = time.perf_counter()
    trajectory = run_pde(config, progress=False)
    wall = time.perf_counter() - start
    report = plateau_report(trajectory)
    times, degrees, values = report["order_parameters"]
    phi = report["target_coefficients"]
    column = {int(k): j for j, k in enumerate(degrees)}
    t, risk = trajectory.time[1:], trajectory.risk[1:]
    excess = risk - (17.0 / 9.0)            # R − R_0, R_0 = E y² − φ̂_0² = 1 + 2 (2/3)²
    # t_0: first time R − R_0 <= φ̂_0²/2; ln(excess) is linear in t there (exponential decay), so
    # interpolate ln(excess) linearly in t (log-log interpolation would err by ~4e-4 at 40 points/decade)
    i = int(np.flatnonzero(excess <= 0.5)[0])
    t0 = float(np.interp(math.log(0.5), np.log(excess[[i, i - 1]]), t[[i, i - 1]]))
    return {"epsilon": epsilon, "wall": wall, "evaluations": trajectory.diagnostics.get("evaluations"),
            "t0": t0,
            "t1": timescales.learning_time(times, values[:, column[1]], phi[1]),
            "t2": timescales.learning_time(times, values[:, column[2]], phi[2]),
            "plateaus": report["matches"], "time": trajectory.time, "risk": trajectory.risk}


def main() -> None:
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    problem = build_problem(load_config(CONFIG))
    alpha = problem.activation.hermite_coefficients(np.array([1.0]), 2).ravel()
    phi = problem.target.coefficients(2)
    say(__doc__.split("\n\n")[0])
    say(f"alpha_k(1) = {alpha.round(6).tolist()} (ReLU), phi_k = {np.round(phi, 6).tolist()}, Var a(0) = "
        f"{SECOND_LAYER_VARIANCE}; {POINTS_PER_DECADE} outputs per decade, 40 Gauss-Hermite particles, Radau rtol 1e-6")
    say()
    runs = []
    say(f"{'eps':>8} {'t0':>11} {'t0/exact-1':>11} {'t1':>11} {'t1/pred':>8} {'t1/sqrt(eps)':>12} {'t2':>11} "
        f"{'t2-t1':>11} {'wall s':>7} {'RHS evals':>9}")
    for epsilon in EPSILONS:
        run = solve(epsilon)
        runs.append(run)
        exact0 = timescales.he0_fit_time(epsilon, alpha[0])
        pred1 = timescales.he1_learning_time(epsilon, alpha[1], phi[1], SECOND_LAYER_VARIANCE)
        say(f"{epsilon:8.0e} {run['t0']:11.4e} {run['t0'] / exact0 - 1:+11.2e} {run['t1']:11.4e} "
            f"{run['t1'] / pred1:8.4f} {run['t1'] / math.sqrt(epsilon):12.5f} {run['t2']:11.4e} "
            f"{run['t2'] - run['t1']:11.4e} {run['wall']:7.1f} {run['evaluations']:9.0f}")
    eps = np.array(EPSILONS)
    t0 = np.array([r["t0"] for r in runs])
    t1 = np.array([r["t1"] for r in runs])
    t2 = np.array([r["t2"] for r in runs])
    say()
    say("plateaus (reduced_pde.analysis.plateaus.detect_plateaus, threshold 0.1): height [entry, exit] -> degrees learnt")
    for run in runs:
        text = "; ".join(f"{m.plateau.height:.4f} [{m.plateau.entry_time:.2e}, {m.plateau.exit_time:.2e}] -> "
                         f"{','.join(f'He{k}' for k in m.degrees_learnt) or '-'}" for m in run["plateaus"])
        say(f"  eps = {run['epsilon']:.0e}: {text}")
    say()
    say("He_0 (exact t0 = eps ln2/(4 alpha_0^2) = 1.08879 eps): t0/eps = " + ", ".join(f"{x:.5f}" for x in t0 / eps))
    say()
    say("He_1: local exponents d ln t1/d ln eps (predicted 1/2 - 1/(2 ln(C/sqrt(eps))) -> 1/2 from below):")
    mids = np.sqrt(eps[1:] * eps[:-1])
    pred_local = 0.5 - 0.5 / np.log(2 * abs(phi[1]) / (alpha[1] * SECOND_LAYER_VARIANCE * np.sqrt(mids)))
    for m, x, p in zip(mids, timescales.local_exponents(eps, t1), pred_local):
        say(f"   eps ~ {m:8.1e}: measured {x:.4f}   leading-order prediction {p:.4f}")
    x = np.log(1 / np.sqrt(eps))
    y = t1 / np.sqrt(eps)
    slopes = np.diff(y) / np.diff(x)
    say("   slope of t1/sqrt(eps) in ln(1/sqrt(eps)) between successive eps (predicted 1/(4 alpha_1 |phi_1|) = "
        f"{1 / (4 * abs(alpha[1] * phi[1])):.4f}): " + ", ".join(f"{s:.4f}" for s in slopes))
    keep = eps <= 1e-5
    design = np.stack([x[keep], np.ones(keep.sum())], axis=1)
    coef, *_ = np.linalg.lstsq(design, y[keep], rcond=None)
    resid = y[keep] - design @ coef
    cov = float(resid @ resid) / (keep.sum() - 2) * np.linalg.inv(design.T @ design)
    say(f"   fit t1/sqrt(eps) = A ln(1/sqrt(eps)) + B on eps <= 1e-5: A = {coef[0]:.4f} +- {math.sqrt(cov[0, 0]):.4f} "
        f"(predicted 0.5000), B = {coef[1]:.3f} (linearised O(1) term: ln(2|phi_1|/(alpha_1 V))/(4 alpha_1|phi_1|) "
        f"= {math.log(2 * abs(phi[1]) / (alpha[1] * SECOND_LAYER_VARIANCE)) / (4 * abs(alpha[1] * phi[1])):.3f}; "
        "the saturation adds to it)")
    say()
    gap = t2 - t1
    say("He_2: local exponents of t2 - t1 (no derived law; the naive argument's 1/4 is not observed): "
        + ", ".join(f"{v:.4f}" for v in timescales.local_exponents(eps, gap)))
    say("      local exponents of t2: " + ", ".join(f"{v:.4f}" for v in timescales.local_exponents(eps, t2)))
    for e_max in (1e-5, 1e-6):
        fit = timescales.fit_power_law(eps[eps <= e_max], gap[eps <= e_max])
        say(f"      fit t2 - t1 = C eps^g on eps <= {e_max:.0e}: g = {fit.exponent:.4f} +- {fit.exponent_stderr:.4f} "
            f"(residual s.e.: curvature of the log corrections, not noise)")
    say()
    say("checks (relative change of t0, t1, t2):")
    for epsilon in (EPSILONS[1], EPSILONS[-1]):
        base = next(r for r in runs if r["epsilon"] == epsilon)
        for label, kwargs in (("80 particles", {"particles": 80}), ("rtol 1e-8", {"rtol": 1e-8})):
            check = solve(epsilon, **kwargs)
            change = [abs(check[k] / base[k] - 1) for k in ("t0", "t1", "t2")]
            risk_change = float(np.max(np.abs(check["risk"] / base["risk"] - 1)))
            say(f"   eps = {epsilon:.0e}, {label}: {change[0]:.1e}, {change[1]:.1e}, {change[2]:.1e}; max relative "
                f"risk change {risk_change:.1e}; wall {check['wall']:.1f} s")
    say(f"total reduced-solve wall time {sum(r['wall'] for r in runs):.0f} s")
    (ROOT / "benchmarks" / "epsilon_sweep_results.txt").write_text("\n".join(lines) + "\n")
    figure(runs, eps, t0, t1, t2, alpha, phi)


def figure(runs, eps, t0, t1, t2, alpha, phi) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reduced_pde.running.plotting import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(runs)))
    for run, color in zip(runs, colors):
        ax.loglog(run["time"][1:], run["risk"][1:], color=color, lw=1.2, label=f"ε = {run['epsilon']:.0e}")
    for level, name in ((26 / 9, "E y²"), (17 / 9, "R₀ (He₀ fitted)"), (8 / 9, "R₁ (He₀, He₁ fitted)")):
        ax.axhline(level, color="0.5", ls="--", lw=0.8)
        ax.annotate(name, (2e-11, level), fontsize=7, color="0.35", va="bottom")
    ax.set_xlabel("time t")
    ax.set_ylabel("population risk")
    ax.set_title("BMZ target, ReLU, d = ∞: risk for ε = 1e-1 … 1e-9")
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    grid = np.geomspace(eps.min(), eps.max(), 60)
    ax.loglog(eps, t0, "o", color="C0", label="t₀: He₀ half fitted")
    ax.loglog(grid, [timescales.he0_fit_time(e, alpha[0]) for e in grid], "-", color="C0", lw=0.8, label="exact ε ln2/(4α₀²)")
    ax.loglog(eps, t1, "s", color="C1", label="t₁: m̂₁ = φ̂₁/2")
    ax.loglog(grid, [timescales.he1_learning_time(e, alpha[1], phi[1], SECOND_LAYER_VARIANCE) for e in grid], "-", color="C1",
              lw=0.8, label="(√ε/4α₁|φ̂₁|) ln(2|φ̂₁|/(α₁V√ε))")
    ax.loglog(eps, t2 - t1, "^", color="C2", label="t₂ − t₁: m̂₂ = φ̂₂/2")
    small = eps <= 1e-5
    fit = timescales.fit_power_law(eps[small], (t2 - t1)[small])
    local = timescales.local_exponents(eps[small], (t2 - t1)[small])
    # deterministic times: the fit's residual s.e. measures curvature, not noise; the local
    # exponents' range is the honest spread
    ax.loglog(grid, fit.prefactor * grid ** fit.exponent, "--", color="C2", lw=0.8,
              label=f"fit ε ≤ 1e-5: slope {fit.exponent:.3f} (local {local.min():.2f}–{local.max():.2f})")
    ax.set_xlabel("ε (second layer 1/ε faster)")
    ax.set_ylabel("learning time")
    ax.set_title(r"Separated time scales: t₀ ∝ ε, t₁ ∝ √ε ln(1/ε), t₂ − t₁ ≈ ε$^{1/3}$ (measured)", fontsize=9)
    ax.legend(fontsize=7)
    print(f"wrote {save_figure(fig, ROOT / 'figures' / 'epsilon_sweep.png')}")


if __name__ == "__main__":
    main()
