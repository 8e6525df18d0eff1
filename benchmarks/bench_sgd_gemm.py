"""One SGD step against the two GEMMs it needs, measured side by side in one run.

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_sgd_gemm.py \
        [--batches 10 100] [--neurons 800] [--dimension 320] [--threads 1] [--repeats 5] [--sphere] [--quick]

For MMN18 (isotropic mixture, d = 320, κ = 0.4, a trained) the engine's numpy/BLAS backend
(:class:`solvers.sgd.SGDSimulation`, ``backend = "numpy"``) is timed per step (data sampling, the two
products, the pass between them, the a update: everything ``step`` does) and compared with the two
bare GEMMs of the same shapes, precision and BLAS thread count:
``Z = X W`` ((B, d) × (d, N)) and ``W += Xᵀ G`` ((d, B) × (B, N), accumulated in place).
Repeats are interleaved (step block, GEMM block, step block, ...) and the minimum of each is kept,
so load on a shared machine affects both alike.  Drawing the minibatch (``network.sample``: B·d
Gaussians, float64 so that both precisions see the same data) is part of the step but no GEMM can
absorb it; it is timed the same way and the ratio without it is printed too.  The compiled numba backend (batch < 8 by default)
is printed for reference (it does not use BLAS).  ``--sphere``: He_4 on the sphere (polynomial σ, fixed
a); the engine folds the tangent projection and retraction into its second product (``W += Xᵀ G'`` in
place, the new norms from the B × B Gram matrix or one read pass), so the reference is the same pair of
GEMMs as in the ball; the last column compares with ``U = Xᵀ G`` into a buffer instead (the reference
of the explicit route, which this benchmark used before).  Ratio = step / GEMMs (target <= 1.5).  ``--quick``: 3 repeats of
0.15 s (about a minute per model).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.linalg import blas
from threadpoolctl import threadpool_limits

from reduced_pde import IsotropicGaussianMixture, IsotropicMixtureRadialProblem
from reduced_pde.models.isotropic_mixture import IsotropicMixtureNetwork
from reduced_pde.models.single_index import SingleIndexNetwork, SingleIndexProblem
from solvers.sgd import SGDSimulation


def benchmark_network(d: int, sphere: bool):
    """(network, problem) of the benchmarks: He_4 on the sphere (a fixed) or MMN18 (κ = 0.4), dimension d."""
    if sphere:
        problem = SingleIndexProblem({"name": "he", "degree": 4}, "he4", d, sphere=True, train_second_layer=False)
        return SingleIndexNetwork(problem), problem
    problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, d), "mmn18", kappa=0.4)
    return IsotropicMixtureNetwork(problem), problem


def _two_gemms(x: np.ndarray, wt: np.ndarray, z: np.ndarray, g: np.ndarray, steps: int, buffer: bool) -> float:
    """Z = X W, then W += Xᵀ G in place, or U = Xᵀ G into a buffer."""
    gemm = blas.sgemm if wt.dtype == np.float32 else blas.dgemm
    update = np.empty_like(wt)
    began = time.perf_counter()
    for _ in range(steps):
        np.dot(x, wt, out=z)
        if buffer:
            np.dot(x.T, g, out=update)
        else:
            gemm(1.0, g.T, x.T, beta=1.0, c=wt.T, trans_b=1, overwrite_c=1)
    return (time.perf_counter() - began) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--neurons", type=int, default=800)
    parser.add_argument("--dimension", type=int, default=320)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.3, help="per timed block")
    parser.add_argument("--sphere", action="store_true",
                        help="He_4 on the sphere (fixed a, polynomial σ) instead of MMN18")
    parser.add_argument("--quick", action="store_true", help="3 repeats of 0.15 s")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.seconds = 3, 0.15
    d, n = args.dimension, args.neurons
    network, problem = benchmark_network(d, args.sphere)
    rng = np.random.default_rng(0)
    print(f"{'He_4 on the sphere' if args.sphere else 'MMN18'}, N = {n}, d = {d}, BLAS threads = {args.threads}; ms per step (min of {args.repeats} "
          "interleaved repeats)")
    print(f"{'B':>5} {'precision':>9} {'SGD step':>10} {'sampling':>9} {'2 GEMMs':>10} {'ratio':>6} "
          f"{'ratio w/o sampling':>18}   " + ("ratio to Z = XW, U = XᵀG (buffer)" if args.sphere else "numba step (float64)"))
    for batch in args.batches:
        numba_ms = float("nan")
        if batch < 8 and not args.sphere:
            sim = SGDSimulation(network, problem, n_neurons=n, step_size=1e-5, batch_size=batch, backend="numba")
            sim.step(3)
            began = time.perf_counter()
            sim.step(200)
            numba_ms = (time.perf_counter() - began) / 200 * 1e3
        for precision in ("float64", "float32"):
            sim = SGDSimulation(network, problem, n_neurons=n, step_size=1e-5, batch_size=batch, backend="numpy",
                                precision=precision, threads=args.threads)
            dtype = np.dtype(precision)
            x = rng.standard_normal((batch, d)).astype(dtype)
            wt = (0.01 * rng.standard_normal((d, n))).astype(dtype)
            z = np.empty((batch, n), dtype)
            g = (1e-6 * rng.standard_normal((batch, n))).astype(dtype)
            sim.step(3)  # compile, warm up
            began = time.perf_counter()
            sim.step(10)
            steps = max(10, int(args.seconds / ((time.perf_counter() - began) / 10)))
            best_step = best_gemm = best_sample = best_buffer = float("inf")
            data_rng = np.random.default_rng(1)
            with threadpool_limits(limits=args.threads, user_api="blas"):
                for _ in range(args.repeats):
                    began = time.perf_counter()
                    sim.step(steps)
                    best_step = min(best_step, (time.perf_counter() - began) / steps)
                    best_gemm = min(best_gemm, _two_gemms(x, wt, z, g, steps, False))
                    if args.sphere:
                        best_buffer = min(best_buffer, _two_gemms(x, wt, z, g, steps, True))
                    began = time.perf_counter()
                    network.sample(steps * batch, data_rng, data_rng)
                    best_sample = min(best_sample, (time.perf_counter() - began) / steps)
            print(f"{batch:>5} {precision:>9} {best_step * 1e3:>10.4f} {best_sample * 1e3:>9.4f} "
                  f"{best_gemm * 1e3:>10.4f} {best_step / best_gemm:>6.2f} "
                  f"{(best_step - best_sample) / best_gemm:>18.2f}   "
                  + (f"{best_step / best_buffer:.2f}" if args.sphere else f"{numba_ms:.4f}"))


if __name__ == "__main__":
    main()
