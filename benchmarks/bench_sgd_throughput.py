"""SGD throughput (steps/s and samples/s) for N = 800, d = 320, MMN18, per backend and batch size.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_sgd_throughput.py [--batches 1 10 100] [--seconds 5]

Numbers depend on the machine and on concurrent load (the reference machine has 2 shared cores): the
CPU-time rate (``time.process_time``) is the one to compare between versions on a loaded machine.
"""

from __future__ import annotations

import argparse
import time

from reduced_pde import IsotropicGaussianMixture, IsotropicMixtureRadialProblem
from reduced_pde.models.isotropic_mixture import IsotropicMixtureNetwork
from solvers.sgd import SGDSimulation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--neurons", type=int, default=800)
    parser.add_argument("--dimension", type=int, default=320)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, args.dimension), "mmn18", kappa=0.4)
    network = IsotropicMixtureNetwork(problem)
    print(f"N = {args.neurons}, d = {args.dimension}")
    for batch in args.batches:
        for backend in ("numba", "numpy"):
            sim = SGDSimulation(network, problem, n_neurons=args.neurons, step_size=1e-5, batch_size=batch,
                                backend=backend)
            sim.step(5)  # compile / warm up
            probe = time.perf_counter()
            sim.step(20)
            per_step = (time.perf_counter() - probe) / 20
            n_steps = max(20, int(args.seconds / per_step))
            start, cpu = time.perf_counter(), time.process_time()
            sim.step(n_steps)
            rate = n_steps / (time.perf_counter() - start)
            cpu_rate = n_steps / (time.process_time() - cpu)
            auto = SGDSimulation(network, problem, n_neurons=2, step_size=1e-5, batch_size=batch).backend
            print(f"B = {batch:4d}  {backend:5s}  {rate:9.0f} steps/s  {rate * batch:9.0f} samples/s  "
                  f"(CPU time: {cpu_rate:7.0f} steps/s)"
                  f"{'   <- auto' if auto == backend else ''}", flush=True)


if __name__ == "__main__":
    main()
