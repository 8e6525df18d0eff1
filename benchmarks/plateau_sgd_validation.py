"""Plateaus and escape times: reduced prediction against SGD (issue 5, validation).

1. configs/bmz_sgd.toml — BMZ-type target He_0 − He_1 + (2/3)He_2, ReLU on S^{d−1}, d = 400, second
   layer 1/ε = 100 times faster, a(0) ~ N(φ̂_0/α_0, 0.5²) (He_0 fitted at t = 0, so the risk starts
   on the R_0 plateau); 3 SGD seeds, N = 1000, step 1e-4, B = 32.
2. configs/sphere_escape_he3_sgd.toml — σ = φ = He_3 on S^{d−1}, d = 100, fixed a = 1: escape from the
   plateau R = 3! at T_½ (risk at R_0/2) against the reduced solve and the asymptotic τ₃ √d; 3 SGD
   seeds, N = 1000, step 2.5e-5, B = 32 (SGD's minibatch noise must be small against the initial
   spread 1/√d of s, where the He_3 drift is only ∝ s²; see the configuration file).

For each: `reduced-pde experiment CONFIG --outdir results/plateau_sgd/<name>` (reduced solve + SGD
seeds, two at a time), then the plateaus of every file (reduced_pde.analysis.plateaus.detect_plateaus),
compare_plateaus (seed mean ± s.e. of heights and times against the prediction), escape times
(reduced_pde.analysis.timescales.escape_time), and the overlay figures/<name>_plateaus.png.  The expected
discrepancies: seed-to-seed fluctuations (the s.e.), the finite-N bias O(1/N) of the risk, SGD's
step bias O(step/B), and the reduced solve's particle error (negligible here: < 1e-4).

Writes benchmarks/plateau_sgd_results.txt.  About 25 minutes on 2 cores.
    python benchmarks/plateau_sgd_validation.py [--skip-runs]     # --skip-runs: reuse the files
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reduced_pde.running.pipeline import plateau_report
from reduced_pde.analysis.plateaus import compare_plateaus, comparison_table
from reduced_pde.running.plotting import plot_plateau_comparison
from reduced_pde.running.storage import read_trajectory
from reduced_pde.analysis.timescales import escape_time, predicted_escape_time

CASES = {"bmz_sgd": ROOT / "configs" / "bmz_sgd.toml",
         "sphere_escape_he3": ROOT / "configs" / "sphere_escape_he3_sgd.toml"}


def main() -> None:
    skip = "--skip-runs" in sys.argv
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say(__doc__.split("\n\n")[0])
    for name, config in CASES.items():
        outdir = ROOT / "results" / "plateau_sgd" / name
        if not skip:
            subprocess.run([sys.executable, "-m", "reduced_pde.cli", "experiment", str(config), "--outdir", str(outdir),
                            "--quiet"], check=True)
        prediction = read_trajectory(outdir / "run_pde.h5")
        runs = [read_trajectory(f) for f in sorted(outdir.glob("run_sgd_seed*.h5"))]
        predicted_report = plateau_report(prediction)
        reports = [plateau_report(r) for r in runs]
        say()
        walls = ", ".join(f"{r.diagnostics.get('wall_time', math.nan):.0f} s" for r in runs)
        say(f"{name} ({config.relative_to(ROOT)}): reduced solve {prediction.diagnostics.get('wall_time', math.nan):.1f} s, "
            f"{len(runs)} SGD seeds ({walls})")
        say("  theory levels: " + ", ".join(f"{lvl.height:.4g}" for lvl in predicted_report["theory"]))
        comparisons = compare_plateaus(predicted_report["plateaus"], [r["plateaus"] for r in reports])
        for row in comparison_table(comparisons):
            say("  " + row)
        # the whole curve: max relative gap between the prediction and the seed mean, against the seed spread
        risks = np.array([r.risk for r in runs])
        keep = prediction.time > 0
        gap = np.abs(risks.mean(axis=0)[keep] / prediction.risk[keep] - 1)
        spread = risks.std(axis=0, ddof=1)[keep] / math.sqrt(len(runs)) / prediction.risk[keep]
        worst = int(np.argmax(gap))
        say(f"  risk curve: max |SGD mean / PDE − 1| = {gap.max():.2%} at t = {prediction.time[keep][worst]:.3g} "
            f"(seed s.e. there {spread[worst]:.2%}); median {np.median(gap):.2%}; median gap / s.e. "
            f"{np.median(gap / np.maximum(spread, 1e-300)):.2f}")
        if name == "sphere_escape_he3":
            d = int(prediction.config["data.dimension"])
            t_pde = escape_time(prediction)
            t_sgd = np.array([escape_time(r) for r in runs])
            say(f"  escape time T_1/2: reduced {t_pde:.4f}, SGD {t_sgd.mean():.4f} ± "
                f"{t_sgd.std(ddof=1) / math.sqrt(t_sgd.size):.4f} (seeds {np.round(t_sgd, 4).tolist()}), "
                f"asymptotic tau_3 sqrt(d) = {predicted_escape_time(3, d):.4f}")
        figure = ROOT / "figures" / f"{name}_plateaus.png"
        plot_plateau_comparison(prediction, runs, comparisons, predicted_report["theory"], figure)
        say(f"  wrote {figure.relative_to(ROOT)}")
    (ROOT / "benchmarks" / "plateau_sgd_results.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
