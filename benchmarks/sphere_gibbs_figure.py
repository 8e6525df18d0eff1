"""Noisy projected SGD on the sphere vs the sphere Fokker–Planck fixed point (single-index, fixed
second layer, σ = φ = He_k): stationary law of s = ⟨w, θ*⟩, histogram vs p*.

    python benchmarks/sphere_gibbs_figure.py            # He_2, d = 10, β = 5 (~15 s) → figures/sphere_gibbs.png
    python benchmarks/sphere_gibbs_figure.py --he 3 --dimension 16 --step-size 2e-4 --batch 128

Samples: seeds × output times t = 5..T (spacing 1, after the relaxation t ≈ 4), N neurons each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from reduced_pde.free_energy import gibbs_fixed_point  # noqa: E402
from reduced_pde.activations import PolynomialActivation  # noqa: E402
from reduced_pde.models.single_index import SingleIndexNetwork, SingleIndexProblem  # noqa: E402
from solvers.grid import UniformGrid1D  # noqa: E402
from solvers.sgd import run_sgd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--he", type=int, default=2)
    ap.add_argument("--dimension", type=int, default=10)
    ap.add_argument("--beta", type=float, default=5.0)
    ap.add_argument("--neurons", type=int, default=1000)
    ap.add_argument("--step-size", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--horizon", type=float, default=12.0)
    ap.add_argument("-o", default=str(ROOT / "figures" / "sphere_gibbs.png"))
    args = ap.parse_args()
    problem = SingleIndexProblem({"name": "he", "degree": args.he}, PolynomialActivation.hermite(args.he),
                                 args.dimension, train_second_layer=False, sphere=True)
    grid = UniformGrid1D(-1.0, 1.0, 800)
    began = time.perf_counter()
    fixed = gibbs_fixed_point(problem, grid.centers, grid.spacing, args.beta, 0.0)
    times = np.arange(5.0, args.horizon + 1e-9, 1.0)
    pooled = np.concatenate([run_sgd(SingleIndexNetwork(problem), problem, times, n_neurons=args.neurons,
                                     step_size=args.step_size, batch_size=args.batch,
                                     seed=seed, beta=args.beta).fields["points"].ravel()
                             for seed in range(args.seeds)])
    cdf = np.concatenate([[0.0], np.cumsum(fixed.density * grid.spacing)])
    ks = stats.kstest(pooled, lambda x: np.interp(x, grid.edges, cdf)).statistic
    w1 = stats.wasserstein_distance(pooled, grid.centers, v_weights=fixed.density)
    risk = problem.risk(pooled, np.full(pooled.size, 1.0 / pooled.size))
    line = (f"He_{args.he}, d = {args.dimension}, beta = {args.beta:g}, N = {args.neurons}, "
            f"eps = {args.step_size:g}, B = {args.batch}, {args.seeds} seeds x {times.size} times: "
            f"mean s {pooled.mean():.4f} (p* {fixed.mean_r():.4f}), E s^2 {np.mean(pooled**2):.4f} "
            f"(p* {grid.centers**2 @ fixed.density * grid.spacing:.4f}), KS {ks:.4f}, W1 {w1:.4f}, "
            f"R(pooled) {risk:.4f} (R(p*) {fixed.risk:.4f}); {time.perf_counter() - began:.1f} s")
    print(line)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(pooled, bins=80, range=(-1, 1), density=True, alpha=0.5,
            label=f"noisy projected SGD, N = {args.neurons}, {args.seeds} seeds × {times.size} times")
    ax.plot(grid.centers, fixed.density, "k", label="Gibbs fixed point p* (law of s)")
    ax.set_xlabel("s = ⟨w, θ*⟩")
    ax.set_ylabel("density of s")
    ax.set_title(f"sphere, σ = φ = He$_{args.he}$, d = {args.dimension}, β = {args.beta:g}, "
                 f"ε = {args.step_size:g}, B = {args.batch}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.o, dpi=120)


if __name__ == "__main__":
    main()
