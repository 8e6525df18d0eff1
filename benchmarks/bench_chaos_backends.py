"""Backends of the finite-width coupled runs side by side (README "Finite width", GPU backend):

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_chaos_backends.py                 # CPU: m = 2^10 … 2^14
    python benchmarks/bench_chaos_backends.py --device cuda --threads 16             # GPU: m = 2^10 … 2^16

σ = He_4, y = He_4(⟨θ*, x⟩) on S^{d−1}, d = 32 (``--dimension``), ``--seeds`` networks batched.  For each width m:

1. one RK4 step of the m-neuron flow (4 velocities through the Gram row tiles, the update, the renormalisation;
   the m-independent mean-field part is left out): NumPy float64 on the CPU, PyTorch float64 and PyTorch
   float32 (no TF32) on ``--device``; seconds per step (median of ``--repeat`` after one warm-up step), the
   ratios to NumPy, and the projected minutes to t = 1 at the shipped dt (``chaos.dt`` of
   configs/chaos_sphere_he4.toml; 1/dt steps; PyTorch float32 on the device);
2. the float32 check: max |W₃₂ − W₆₄| after those steps from the same W (float32 round-off ≈ steps × 6e-8);
   On CUDA also the peak device memory of each PyTorch step (``torch.cuda.max_memory_allocated``);
3. a short run (``coupled_runs``, two output intervals of one step each: steps, mean-field flow, twins and the
   per-output measures) for m <= ``--run-max``, wall time per backend, and the float32 error of what the
   runs measure: m |ΔE_t²| and m |Δ(L_m − L)| against PyTorch float64 (it grows with m: E_t² and L_m − L
   are O(1/m) differences of O(1) terms).

NumPy runs only up to ``--numpy-max`` (default 2^14: one NumPy step at 2^16 is ~16 times one at 2^14).  Numbers
depend on the machine and its load; the ratios are measured in one run.  ``--json PATH`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="PyTorch device: cpu, cuda, cuda:<index>")
    p.add_argument("--widths", type=int, nargs="+", default=None,
                   help="widths m (default 2^10 … 2^14 on the CPU, 2^10 … 2^16 on CUDA)")
    p.add_argument("--dimension", type=int, default=32)
    p.add_argument("--seeds", type=int, default=1, help="networks batched per width")
    p.add_argument("--repeat", type=int, default=3, help="timed steps per backend and width")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of NumPy's BLAS and of PyTorch")
    p.add_argument("--numpy-max", type=int, default=2**14, help="largest m timed with NumPy")
    p.add_argument("--run-max", type=int, default=2**12, help="largest m of the short coupled runs")
    p.add_argument("--run-nodes", type=int, default=256, help="mean-field nodes of the short runs")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    return p.parse_args()


ARGS = parse()
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(ARGS.threads))
os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from reduced_pde.analysis.finite_width import SphereHermiteModel, _initial_neurons, _rk4, coupled_runs, \
    network_backend  # noqa: E402
from reduced_pde.analysis.finite_width_torch import load_torch  # noqa: E402
from reduced_pde.models.single_index import SingleIndexProblem  # noqa: E402

torch.set_num_threads(ARGS.threads)
BACKENDS = [("numpy", "cpu", "float64"), ("torch", ARGS.device, "float64"), ("torch", ARGS.device, "float32")]


def shipped_dt() -> float:
    with open(ROOT / "configs" / "chaos_sphere_he4.toml", "rb") as file:
        return float(tomllib.load(file)["chaos"]["dt"])


def time_steps(network, w0: np.ndarray, h: float, repeat: int) -> tuple[float, np.ndarray]:
    """Median seconds of one RK4 step of the network part, and W after 1 + repeat steps (float64 copy)."""
    sync = getattr(network, "synchronize", lambda: None)

    def rhs(t, y):
        return (network.velocity(1.0, y[0]),)

    state = (network.array(w0),)
    times = []
    for k in range(repeat + 1):
        sync()
        start = time.perf_counter()
        state = (network.normalise(_rk4(state, 0.0, h, rhs)[0]),)
        sync()
        if k > 0:  # the first step warms up (allocations, kernels)
            times.append(time.perf_counter() - start)
    return statistics.median(times), network.host(state[0])


def main() -> None:
    try:
        load_torch(ARGS.device)  # the device exists (else one line and exit status 2)
    except ValueError as error:
        raise SystemExit(f"bench_chaos_backends: {error}") from None
    d, dt = ARGS.dimension, shipped_dt()
    widths = ARGS.widths or [2**k for k in range(10, 17 if ARGS.device.startswith("cuda") else 15)]
    problem = SingleIndexProblem({"name": "he", "degree": 4}, "he4", d, sphere=True, train_second_layer=False,
                                 second_layer=1.0)
    model = SphereHermiteModel.from_problem(problem)
    seeds = list(range(ARGS.seeds))
    device_name = torch.cuda.get_device_name(torch.device(ARGS.device)) if ARGS.device.startswith("cuda") else "CPU"
    print(f"d = {d}, {len(seeds)} seed(s) batched, shipped dt = {dt:g} ({1 / dt:.0f} steps to t = 1), "
          f"PyTorch {torch.__version__} on {ARGS.device} ({device_name}), {ARGS.threads} CPU thread(s)")
    print(f"{'m':>6} | {'numpy f64 s/step':>16} | {'torch f64 s/step':>16} | {'torch f32 s/step':>16} | "
          f"{'np/t64':>7} | {'np/t32':>7} | {'t64/t32':>7} | {'min to t=1 (f32)':>16} | {'|W32-W64|':>9}")
    rows = []
    for m in widths:
        w0 = _initial_neurons(d, m, seeds)
        row = {"m": m}
        states = {}
        for backend, device, precision in BACKENDS:
            if backend == "numpy" and m > ARGS.numpy_max:
                continue
            network = network_backend(model, backend, device, precision)
            if backend == "torch" and device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats(torch.device(device))
            seconds, w = time_steps(network, w0, dt, ARGS.repeat)
            row[f"{backend}_{precision}"] = seconds
            if backend == "torch" and device.startswith("cuda"):  # Gram row tiles + RK4 stages on the device
                row[f"peak_GiB_{precision}"] = torch.cuda.max_memory_allocated(torch.device(device)) / 2**30
            states[(backend, precision)] = w
            del network
        row["float32_error"] = float(np.max(np.abs(states[("torch", "float32")] - states[("torch", "float64")])))
        row["minutes_to_t1_float32"] = row["torch_float32"] / dt / 60
        rows.append(row)
        numpy_s = row.get("numpy_float64", float("nan"))

        def cell(x):
            return f"{x:16.4g}"
        print(f"{m:>6} | {cell(numpy_s)} | {cell(row['torch_float64'])} | {cell(row['torch_float32'])} | "
              f"{numpy_s / row['torch_float64']:7.2f} | {numpy_s / row['torch_float32']:7.2f} | "
              f"{row['torch_float64'] / row['torch_float32']:7.2f} | {row['minutes_to_t1_float32']:16.3g} | "
              f"{row['float32_error']:9.2g}" + "".join(f" | peak {row[k]:.2g} GiB ({k[-7:]})" for k in row
                                                      if k.startswith("peak_")), flush=True)
    runs = []
    times = np.array([0.0, dt, 2 * dt])
    for m in [m for m in widths if m <= ARGS.run_max]:
        entry, results = {"m": m}, {}
        for backend, device, precision in BACKENDS:
            if backend == "numpy" and m > ARGS.numpy_max:
                continue
            start = time.perf_counter()
            results[precision] = coupled_runs(problem, [m], seeds, times, dt=dt, nodes=ARGS.run_nodes,
                                              backend=backend, device=device, precision=precision)
            entry[f"{backend}_{precision}"] = time.perf_counter() - start
        # the float32 check on the measured quantities: m |ΔE_t²| and m |Δ(L_m − L)| against PyTorch float64
        entry["m_gap_float32_error"] = float(m * np.max(np.abs(results["float32"].function_gap_squared
                                                                - results["float64"].function_gap_squared)))
        entry["m_excess_float32_error"] = float(m * np.max(np.abs(results["float32"].risk_excess
                                                                  - results["float64"].risk_excess)))
        runs.append(entry)
        print(f"short run (2 steps, 3 outputs), m = {m}: " + ", ".join(
            f"{key} {value:.3g} s" for key, value in entry.items() if key.endswith("64") or key.endswith("32"))
            + f"; float32 - float64: m|ΔE²| {entry['m_gap_float32_error']:.2g}, "
              f"m|Δ(L_m - L)| {entry['m_excess_float32_error']:.2g}", flush=True)
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps({"device": ARGS.device, "device_name": device_name,
                                               "torch": torch.__version__, "dimension": d, "seeds": len(seeds),
                                               "dt": dt, "threads": ARGS.threads, "steps": rows, "runs": runs},
                                              indent=1))


if __name__ == "__main__":
    main()
