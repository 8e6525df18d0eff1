"""Error of the shipped sphere configuration on its default grid, against a converged reference.

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONPATH=. python benchmarks/sphere_default_grid_error.py \
        [--config configs/sphere_he4.toml] [--reference-cells 3200]

Runs the configuration through the pipeline (:func:`reduced_pde.running.pipeline.run_pde`, the model's
default axis for s: clustered towards s = ±1 since issue 13) at its shipped ``grid.cells``, at twice and
four times that, and at ``--reference-cells`` (the reference); and the same with the former uniform
default axis (``grid.s = {lower = -1, upper = 1, cells = N}``).  Prints the maximum over the output
times of |risk − reference| / reference, and the reference's own distance to half its cells (the
reference error is about a quarter of that at second order).
"""

from __future__ import annotations

import argparse

import numpy as np

from reduced_pde.running.config import load_config
from timing import timed_risk


def _risk(config: dict, cells: int, spacing: str) -> tuple[np.ndarray, float]:
    return timed_risk({**config, "grid": {}}, {"cells": cells} if spacing == "default" else
                      {"cells": cells, "s": {"spacing": spacing, "lower": -1.0, "upper": 1.0, "cells": cells}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/sphere_he4.toml")
    parser.add_argument("--reference-cells", type=int, default=3200)
    args = parser.parse_args()
    config = load_config(args.config)
    shipped = int(config["grid"]["cells"])
    reference, seconds = _risk(config, args.reference_cells, "clustered")
    half, _ = _risk(config, args.reference_cells // 2, "clustered")
    print(f"{args.config}: reference {args.reference_cells} clustered cells ({seconds:.1f} s); "
          f"max relative distance to {args.reference_cells // 2} cells: "
          f"{np.max(np.abs(half - reference) / reference):.2e}")
    print(f"{'grid':>24} {'cells':>6} {'max rel. risk error':>20} {'wall s':>7}")
    for label, spacing in (("default (as shipped)", "default"), ("clustered", "clustered"), ("uniform (former)", "uniform")):
        for cells in (shipped, 2 * shipped):
            risk, seconds = _risk(config, cells, spacing)
            error = np.max(np.abs(risk - reference) / reference)
            print(f"{label:>24} {cells:>6} {error:>20.2e} {seconds:>7.2f}")


if __name__ == "__main__":
    main()
