"""Truncation error of the low-rank interaction against the exact pairwise kernel (ReLU, single index).

For the ReLU single-index reduction (trained a, ball) at d = 30 and d = ∞ and several values of
``reduction.truncation_tolerance``, on 200 points drawn from the initial law and from a law close to
the teacher (s ≈ 1, r ≈ 0.2), prints: the rank, max |u_lowrank − u_exact| / max |u_exact| with
u_exact = ``problem.interaction_kernel`` (Gauss–Jacobi quadrature over the overlap c of the
closed-form arc-cosine bivariate expectation — the exact pairwise fall-back), the largest rigorous
bound b_i b_j relative to max |u_exact|, and the cost of both evaluations.

    python benchmarks/relu_truncation_report.py     # ~1 min; output in relu_truncation_results.txt
"""

from __future__ import annotations

import math
import time

import numpy as np

from reduced_pde.models.single_index import SingleIndexProblem


def point_sets(dimension: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    base = SingleIndexProblem("relu", "relu", dimension, second_layer=0.5, second_layer_std=0.2)
    initial = base.initial_law().sample_reduced(100, rng) if math.isfinite(dimension) else \
        np.column_stack([rng.normal(0.5, 0.2, 100), np.zeros(100), np.ones(100)])
    trained = np.column_stack([rng.normal(1.0, 0.3, 100), rng.normal(1.0, 0.05, 100),
                               np.abs(rng.normal(0.2, 0.05, 100))])
    return {"initial law": initial, "near the teacher": trained}


def main() -> None:
    rng = np.random.default_rng(0)
    lines = ["ReLU single-index, (a, s, r): low-rank interaction vs exact pairwise (arc-cosine, c-quadrature)",
             f"{'d':>5} {'points':>17} {'tolerance':>9} {'rank':>5} {'max err/max|u|':>15} "
             f"{'bound/max|u|':>13} {'low-rank s':>10} {'pairwise s':>10}"]
    for dimension in (30.0, math.inf):
        for label, points in point_sets(dimension, rng).items():
            start = time.perf_counter()
            exact = SingleIndexProblem("relu", "relu", dimension, second_layer=0.5).interaction_kernel(points, points)
            pairwise_time = time.perf_counter() - start
            scale = np.abs(exact).max()
            for tolerance in (1e-2, 1e-3, 1e-4, 1e-5):
                problem = SingleIndexProblem("relu", "relu", dimension, second_layer=0.5,
                                             truncation_tolerance=tolerance)
                start = time.perf_counter()
                kernel = problem.interaction_low_rank(points)
                dense = kernel.dense()
                low_rank_time = time.perf_counter() - start
                error = np.abs(dense - exact).max() / scale
                bound = float(np.outer(kernel.truncation_bound, kernel.truncation_bound).max()) / scale
                lines.append(f"{dimension:>5} {label:>17} {tolerance:>9.0e} {kernel.rank:>5} {error:>15.2e} "
                             f"{bound:>13.2e} {low_rank_time:>10.3f} {pairwise_time:>10.3f}")
    text = "\n".join(lines)
    print(text)
    with open("benchmarks/relu_truncation_results.txt", "w") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    main()
