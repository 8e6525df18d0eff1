"""Benchmark: the reduced PDE of the MMN18 experiment against the SGD it predicts, in one run.

    python benchmarks/bench_sgd_vs_pde.py [--t-final 10] [--sgd-time 0.5] [--kappa 0.4]

1. Convergence of the reduced solve of the MMN18 problem (d = 320, Δ = 0.5): the Lagrangian
   (quantile-particle) solver for 100 … 1600 particles and the finite-volume solver (MUSCL) for
   400 … 6400 cells, max relative risk error at the recorded times against the Lagrangian solver
   with 3200 particles, and wall time (after compilation).  At d = 320 the initial law of |w| has
   width κ/√(2d) ≈ 0.016 κ⁄0.4, so the uniform grid needs thousands of cells; the particles do not.
   "Converged" = relative risk error below 1e-3 at every recorded time.
2. The per-step cost of the low-rank interaction against the dense (pairwise, M×M) one.
3. SGD (N = 800, d = 320, ε = 1e-4, B = 100 as in configs/mmn18_figure.toml) for a short stretch
   of PDE time, its rate in PDE-time per second, and the projected wall time of the SGD run the
   PDE replaces (to the same t_final), with the ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from reduced_pde import IsotropicGaussianMixture, IsotropicMixtureRadialProblem
from solvers.finite_volume import FiniteVolumeSolver
from solvers.grid import UniformGrid1D
from solvers.lagrangian import solve_lagrangian


def timed_solve(problem, cells: int, times: np.ndarray, kernel: str = "low_rank") -> tuple[np.ndarray, float, int]:
    solver = FiniteVolumeSolver(problem, UniformGrid1D(0.0, 4.0, cells), scheme="muscl", cfl=0.4,
                                  kernel=kernel)
    began = time.perf_counter()
    risks = []
    for t in times:
        solver.advance(float(t))
        risks.append(solver.observables()["risk"])
    return np.array(risks), time.perf_counter() - began, solver.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--t-final", type=float, default=10.0)
    parser.add_argument("--kappa", type=float, default=0.4)
    parser.add_argument("--sgd-time", type=float, default=0.5, help="PDE time of SGD actually run")
    parser.add_argument("--step-size", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--neurons", type=int, default=800)
    args = parser.parse_args()

    problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, 320), "mmn18", kappa=args.kappa)
    times = np.array([0.0, 0.1, 0.3, 1.0, 3.0, args.t_final])
    timed_solve(problem, 50, times[:2])  # compile (numba cache) outside the timings
    print(f"# 1. MMN18 reduced PDE, d = 320, Δ = 0.5, κ = {args.kappa}, t ∈ [0, {args.t_final}]")
    reference = solve_lagrangian(problem, times, n_particles=3200).risk
    converged = None
    print(f"{'solver':>24} {'wall [s]':>9}  max rel. risk error vs Lagrangian(3200)")
    for n in (100, 200, 400, 800, 1600):
        began = time.perf_counter()
        risks = solve_lagrangian(problem, times, n_particles=n).risk
        wall = time.perf_counter() - began
        error = float(np.max(np.abs(risks - reference) / reference))
        if converged is None and error < 1e-3:
            converged = (f"Lagrangian, {n} particles", wall)
        print(f"{'Lagrangian, ' + str(n) + ' particles':>24} {wall:9.3f}  {error:.2e}")
    for cells in (400, 1600, 6400):
        risks, wall, steps = timed_solve(problem, cells, times)
        error = float(np.max(np.abs(risks - reference) / reference))
        print(f"{'FV MUSCL, ' + str(cells) + ' cells':>24} {wall:9.3f}  {error:.2e}   ({steps} steps)")
    if converged is None:
        raise SystemExit("no Lagrangian resolution reached 1e-3")
    print(f"converged (rel. error < 1e-3): {converged[0]} in {converged[1]:.2f} s")

    print("\n# 2. interaction cost per step: low-rank (O(M·rank)) vs dense pairwise (O(M²))")
    short = np.array([0.05])
    for cells in (400, 1600):
        rank = problem.interaction_low_rank(UniformGrid1D(0.0, 4.0, cells).centers).rank
        _, wall_lr, steps_lr = timed_solve(problem, cells, short)
        _, wall_dense, steps_dense = timed_solve(problem, cells, short, kernel="dense")
        print(f"M = {cells:5d}, rank {rank:3d}: low-rank {1e6 * wall_lr / steps_lr:8.2f} µs/step "
              f"({cells * steps_lr / wall_lr:.3g} cell-updates/s), dense {1e6 * wall_dense / steps_dense:8.2f} "
              f"µs/step, ratio {wall_dense / steps_dense / (wall_lr / steps_lr):.1f}x")

    print(f"\n# 3. SGD, N = {args.neurons}, d = 320, ε = {args.step_size}, batch {args.batch_size}")
    from reduced_pde.models.isotropic_mixture import IsotropicMixtureNetwork
    from solvers.sgd import SGDSimulation

    simulation = SGDSimulation(IsotropicMixtureNetwork(problem), problem, n_neurons=args.neurons, step_size=args.step_size,
                               batch_size=args.batch_size, seed=0)
    simulation.advance(0.01)  # warm-up
    began = time.perf_counter()
    simulation.advance(0.01 + args.sgd_time)
    wall = time.perf_counter() - began
    steps = args.sgd_time / args.step_size
    projected = wall / args.sgd_time * args.t_final
    print(f"{steps:.0f} steps in {wall:.2f} s ({steps / wall:.0f} steps/s); "
          f"projected SGD time to t = {args.t_final}: {projected:.0f} s")
    print(f"\nratio SGD (one seed) / converged reduced solve for t ∈ [0, {args.t_final}]: "
          f"{projected / converged[1]:.0f}x")


if __name__ == "__main__":
    main()
