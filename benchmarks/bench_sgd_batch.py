"""SGD seeds batched as one simulation against the same seeds run one after the other, side by side.

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_sgd_batch.py \
        [--seeds 8] [--neurons 50 200 800] [--batches 1 10 100] [--dimension 320] [--quick]

For each (N, B), S seeds of one configuration are stepped (a) as S separate
:class:`solvers.sgd.SGDSimulation` runs, one after the other, and (b) as one
:class:`solvers.sgd.SGDSeedBatch` (a leading seed axis: per step one compiled pass over all seeds
between the GEMMs and one after).  Both draw the same data and give bitwise the same iterates
(tests/test_sgd_batch.py), so the ratio separate / batched is the saving of batching alone.  Repeats
are interleaved (separate, batched, separate, ...) and the minimum of each kept.  Models: MMN18
(ball, a trained, BLAS backend) and, with ``--sphere``, He_4 on the sphere (a fixed).  Printed: µs per
step per seed for each, and the ratio.  One BLAS thread (threadpoolctl)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from solvers.sgd import SGDSeedBatch, SGDSimulation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sgd_gemm import benchmark_network  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--neurons", type=int, nargs="+", default=[50, 200, 800])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--dimension", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.4, help="per timed block (all seeds)")
    parser.add_argument("--sphere", action="store_true", help="He_4 on the sphere instead of MMN18")
    parser.add_argument("--quick", action="store_true", help="3 repeats of 0.15 s (about a minute)")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.seconds = 3, 0.15
    d, seeds = args.dimension, list(range(args.seeds))
    network, problem = benchmark_network(d, args.sphere)
    print(f"{'He_4 on the sphere' if args.sphere else 'MMN18 (BLAS backend)'}, d = {d}, S = {args.seeds} seeds, "
          f"one BLAS thread; µs per step and seed (min of {args.repeats} interleaved repeats)")
    print(f"{'N':>5} {'B':>5} {'separate':>10} {'batched':>10} {'separate/batched':>17}")
    with threadpool_limits(limits=1, user_api="blas"):
        for n in args.neurons:
            for batch in args.batches:
                options = dict(n_neurons=n, step_size=1e-6, batch_size=batch, backend="numpy")
                alone = [SGDSimulation(network, problem, seed=s, **options) for s in seeds]
                together = SGDSeedBatch(network, problem, seeds=seeds, **options)
                for sim in alone:  # compile, warm up
                    sim.step(3)
                together.step(3)
                began = time.perf_counter()
                together.step(10)
                steps = max(10, int(args.seconds / ((time.perf_counter() - began) / 10)))
                best_alone = best_together = float("inf")
                for _ in range(args.repeats):
                    began = time.perf_counter()
                    for sim in alone:
                        sim.step(steps)
                    best_alone = min(best_alone, time.perf_counter() - began)
                    began = time.perf_counter()
                    together.step(steps)
                    best_together = min(best_together, time.perf_counter() - began)
                per = 1e6 / (steps * len(seeds))
                print(f"{n:>5} {batch:>5} {best_alone * per:>10.1f} {best_together * per:>10.1f} "
                      f"{best_alone / best_together:>17.2f}")


if __name__ == "__main__":
    main()
