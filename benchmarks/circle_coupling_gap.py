"""What the Circle's coupling gap is made of: the m-neuron flow against its mean-field twins, per neuron.

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONPATH=. python benchmarks/circle_coupling_gap.py \
        [--widths 128 512] [--seeds 12 3] [--times 0.3 1 10] [--dimension 16]

The same flows as ``reduced-pde chaos configs/chaos_sphere_circle.toml`` (σ = He_4, y = E_u He_4(⟨u, x⟩),
RK4 dt = 1e-2, twins from 1024 quantile nodes; :mod:`reduced_pde.analysis.finite_width`), keeping the
neurons and the twins.  For each width and time it prints, over all neurons of all seeds: the mean of
``|w_i − w̄_i|``; its parts ``|p_i − p̄_i|`` (the invariant) and ``p_i |Δφ_i|`` (the in-plane angle between
the neuron and its twin, weighted by the radius p_i at which it acts); the neurons that started with
``p_i(0) < m^{−1/2}`` (a fraction ≈ (d − 2)/(2m)): their mean gap and share of the total; and the median
``p_i(0)`` of the 1% farthest from their twins.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from reduced_pde.analysis.finite_width import (MeanFieldFlow, SphereHermiteModel, _initial_neurons, _network_velocity,
                                               march, time_steps)
from reduced_pde.models.circle_sphere import CircleSphereProblem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--seeds", type=int, nargs="+", default=[12, 3], help="networks per width")
    parser.add_argument("--times", type=float, nargs="+", default=[0.3, 1.0, 10.0])
    parser.add_argument("--dimension", type=int, default=16)
    args = parser.parse_args()
    problem = CircleSphereProblem({"name": "he", "degree": 4}, "he4", args.dimension)
    model = SphereHermiteModel.from_problem(problem)
    geometry = model.geometry
    flow = MeanFieldFlow(problem, 1024)
    times = np.concatenate([[0.0], args.times])
    print("m | t | mean gap | mean |p − p̄| | mean p|Δφ| | gap of p(0) < m^-1/2 (fraction) | their share | "
          "median p(0) of the top 1%")
    for m, seeds in zip(args.widths, args.seeds):
        start = time.perf_counter()
        w0 = _initial_neurons(args.dimension, m, list(range(seeds)))
        p0 = geometry.invariant(w0)
        anchor, ortho = geometry.twin_frame(w0)

        def rhs(t, y):
            v_nodes, v_twins = flow.velocity(t, y[1], y[2])
            return _network_velocity(model, 1.0, y[0]), v_nodes, v_twins

        def project(y):
            return y[0] / np.linalg.norm(y[0], axis=-1, keepdims=True), y[1], y[2]

        state = (w0, flow.nodes.copy(), p0.ravel().copy())
        for k, (w, _, twins) in march(state, times, time_steps(times, 1e-2), rhs, project):
            if k == 0:
                continue
            pbar = np.clip(twins.reshape(p0.shape), 0.0, 1.0)
            twin = pbar[..., None] * anchor + np.sqrt(1 - pbar ** 2)[..., None] * ortho
            gap = np.linalg.norm(w - twin, axis=-1)
            p = geometry.invariant(w)
            angle = np.abs(np.angle((w[..., 0] + 1j * w[..., 1]) / (anchor[..., 0] + 1j * anchor[..., 1])))
            small = p0 < 1 / np.sqrt(m)
            top = gap > np.quantile(gap, 0.99)
            print(f"{m} | {times[k]:g} | {gap.mean():.4f} | {np.abs(p - pbar).mean():.4f} | {(p * angle).mean():.4f} | "
                  f"{gap[small].mean():.3f} ({small.mean():.3f}) | {gap[small].sum() / gap.sum():.2f} | "
                  f"{np.median(p0[top]):.3f}", flush=True)
        print(f"# m = {m}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
