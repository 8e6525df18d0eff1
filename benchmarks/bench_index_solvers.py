"""Benchmark of the (a, s, r) reduction: 3-D finite volumes with the low-rank vs the pairwise
interaction, cell-updates per second, and a reduced solve against the SGD run it predicts.

    python benchmarks/bench_index_solvers.py            # ~2 min on 2 cores
    python benchmarks/bench_index_solvers.py --quick    # smaller grids, ~30 s

All numbers are measured in this run, on this machine (ratios, not absolute claims):

1. Cost per step of FiniteVolumeSolver on the ReLU single-index problem (d = 30, trained second
   layer, coordinates (a, s, r)) with
   * the low-rank interaction on the (s, r) sub-grid (a is a linear coordinate): O(cells + rank·N_s N_r),
   * the pairwise interaction on the sub-grid (dense (N_s N_r)² matrix, u = a a' U): O(cells + (N_s N_r)²),
   * the generic low-rank path on all cells, O(rank · cells), and the full pairwise (cells × cells)
     matrix, O(cells²) (small grid only).
   The dense matrices are the same kernel assembled (``LowRankKernel.dense``), so all paths must give
   the same density to round-off — checked and printed.
2. Reduced solve (configs/relu_single_index.toml, t <= 10) against SGD on the same problem
   (N = 1000, ε = 1e-3, B = 50: one seed) at d = 30 and, extrapolated from t <= 1, at d = 1000; the
   reduced solve's cost does not grow with d.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from reduced_pde.running.config import build_problem, load_config
from reduced_pde.models.single_index import SingleIndexNetwork
from solvers.finite_volume import FiniteVolumeSolver
from solvers.sgd import SGDSimulation
from solvers.tensor_grid import GridAxis, TensorGrid

CONFIG = "configs/relu_single_index.toml"


def grid(cells_a: int, cells_s: int, cells_r: int) -> TensorGrid:
    return TensorGrid([GridAxis.uniform("a", -1.2, 3.3, cells_a),
                       GridAxis.stretched("s", -1.3, 3.2, cells_s, min_spacing=1.8 / cells_s),
                       GridAxis.uniform("r", 0.0, 2.2, cells_r)])


def time_steps(problem, g: TensorGrid, t_end: float, **kwargs) -> tuple[float, FiniteVolumeSolver]:
    solver = FiniteVolumeSolver(problem, g, scheme="muscl", cfl=0.4, max_dt=2e-3, **kwargs)
    solver.advance(1e-3)  # compile / warm up
    began_steps, began = solver.steps, time.perf_counter()
    solver.advance(t_end)
    return (time.perf_counter() - began) / max(solver.steps - began_steps, 1), solver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    problem = build_problem(load_config(CONFIG))
    print(f"problem: {problem.config()['problem']}, coordinates {problem.coordinate_names}, "
          f"rank {problem.rank()} (K, J = {problem.series_degrees()})")

    print("\n1. cost per step of the 3-D finite-volume solver (MUSCL + SSP-RK2, dt <= 2e-3)")
    shapes = [(16, 24, 16), (30, 40, 30)] if args.quick else [(16, 24, 16), (30, 40, 30), (45, 60, 40)]
    print(f"{'grid':>12} {'cells':>8} {'path':>28} {'s/step':>10} {'cell-updates/s':>15} {'vs low rank':>11}")
    for shape in shapes:
        g = grid(*shape)
        reference, solver = time_steps(problem, g, 0.05)
        rows = [("low rank, linear a", reference, solver)]
        sub = g.cells // shape[0]
        points = solver.interaction_points
        if sub <= 2500:
            dense_sub = problem.interaction_low_rank(points).dense()
            rows.append((f"pairwise on (s,r) ({sub}²)", *time_steps(problem, g, 0.05, kernel=dense_sub)))
        if g.cells <= 8000:
            rows.append(("low rank, all cells", *time_steps(problem, g, 0.05, use_linear_coordinate=False)))
            full = problem.interaction_low_rank(g.center_points()).dense()
            rows.append((f"pairwise, all cells ({g.cells}²)",
                         *time_steps(problem, g, 0.05, kernel=full, use_linear_coordinate=False)))
        for name, seconds, s in rows:
            diff = np.max(np.abs(s.density - solver.density)) / np.max(solver.density)
            print(f"{'x'.join(map(str, shape)):>12} {g.cells:>8} {name:>28} {seconds:10.2e} "
                  f"{g.cells / seconds:15.3e} {seconds / reference:10.1f}x  (max rel. density diff {diff:.1e})")

    print("\n2. reduced solve vs SGD (ReLU single-index, t <= 10)")
    from reduced_pde.running.pipeline import run_pde

    config = load_config(CONFIG, ["output.n_outputs=10", "output.law_times=[]"])
    began = time.perf_counter()
    pde = run_pde(config, progress=False)
    pde_seconds = time.perf_counter() - began
    print(f"reduced PDE (45x60x40 cells): {pde_seconds:.2f} s, final risk {pde.risk[-1]:.5g}")
    for d, t_run in ((30, 10.0), (1000, 0.5 if args.quick else 1.0)):
        problem_d = build_problem(load_config(CONFIG, [f"data.dimension={d}"]))
        sim = SGDSimulation(SingleIndexNetwork(problem_d), problem_d, n_neurons=1000, step_size=1e-3,
                            batch_size=50, seed=0)
        began = time.perf_counter()
        sim.advance(t_run)
        seconds = (time.perf_counter() - began) * 10.0 / t_run
        print(f"SGD d = {d:5d}, N = 1000, ε = 1e-3, B = 50, one seed: {seconds:8.1f} s for t <= 10"
              f"{'' if t_run == 10.0 else f' (extrapolated from t <= {t_run})'}; "
              f"ratio SGD / reduced = {seconds / pde_seconds:.1f}")


if __name__ == "__main__":
    main()
