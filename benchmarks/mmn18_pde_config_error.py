"""Error of the shipped finite-volume MMN18 configuration, against the converged characteristics solver.

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONPATH=. python benchmarks/mmn18_pde_config_error.py \
        [--config configs/mmn18_pde.toml] [--kappa 0.4 0.1]

Runs the configuration through the pipeline (:func:`reduced_pde.running.pipeline.run_pde`) with its
``grid.adapt`` (as shipped: ``"move"``, the window's cells move with the law, :mod:`solvers.moving_grid`)
at half, one and twice its cells, with the other window (``"remap"``: it follows the law by remaps only)
and with a fixed uniform grid (``grid.adapt = "none"``) at its cells; the reference is the characteristics solver with
1600 Gauss particles at rtol 1e-11 on the same output times (within 1e-7 of 6400 particles for
κ = 0.4, measured).  Prints the maximum over the outputs of |risk − reference| / reference, the
error at t_final and the wall time (the first run of each size pays numba compilation only once:
the kernels are cached, and the sizes run from small to large after one warm-up).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from reduced_pde.running.config import build_problem, load_config, output_times
from solvers.lagrangian import solve_lagrangian
from timing import timed_risk


def _run(config: dict, cells: int, adapt: str) -> tuple[np.ndarray, float]:
    return timed_risk(config, {"r": {**config["grid"]["r"], "cells": cells}, "adapt": adapt})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mmn18_pde.toml")
    parser.add_argument("--kappa", type=float, nargs="+", default=[0.4, 0.1])
    args = parser.parse_args()
    for kappa in args.kappa:
        config = load_config(args.config, [f"initial.kappa={kappa}"])
        shipped = int(config["grid"]["r"]["cells"])
        times = output_times(config)
        reference = np.asarray(solve_lagrangian(build_problem(config), times, n_particles=1600, sampling="gauss",
                                                rtol=1e-11, atol=1e-14).risk)
        _run(config, 64, "remap")  # compilation
        _run(config, 64, "move")
        print(f"{args.config}, κ = {kappa}: {len(times)} outputs up to t = {times[-1]:g} "
              f"(load average {os.getloadavg()[0]:.1f})")
        print(f"{'grid':>22} {'cells':>6} {'max rel. risk error':>20} {'at t_final':>11} {'wall s':>7}")
        adapt = config["grid"]["adapt"]
        other = "remap" if adapt == "move" else "move"
        for label, mode, cells in ((f"{adapt} (shipped)", adapt, shipped // 2), (f"{adapt} (shipped)", adapt, shipped),
                                   (f"{adapt} (shipped)", adapt, 2 * shipped), (other, other, shipped),
                                   ("uniform (fixed)", "none", shipped)):
            risk, seconds = _run(config, cells, mode)
            error = np.abs(risk - reference) / reference
            print(f"{label:>22} {cells:>6} {error.max():>20.2e} {error[-1]:>11.2e} {seconds:>7.2f}")


if __name__ == "__main__":
    main()
