"""The 1/N prediction of MMN18's mixture (configs/chaos_mmn18.toml) to t = 100, one rule per call (README
"MMN18's isotropic mixture", the second descent after t ≈ 30):

    python benchmarks/mmn18_late_prediction.py ATOMS R_NODES C_NODES DT

prints L(ν_t), e(t), c(t) and √N × the mean coupling gap's limit at t = 0 and 17 log-spaced times from 0.01 to
100 (the configuration's output grid, extended), with the rule chaos.atoms × chaos.r_nodes × chaos.c_nodes and
the RK4 step bound chaos.dt (the configuration's: 16 32 8 0.1; ~1.5 minutes on one core).
"""

import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from reduced_pde.running.chaos import chaos_hook
from reduced_pde.running.config import build_schedule, parse_config

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    if len(sys.argv) != 5:
        raise SystemExit("usage: python benchmarks/mmn18_late_prediction.py ATOMS R_NODES C_NODES DT")
    atoms, r_nodes, c_nodes, dt = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    with open(ROOT / "configs" / "chaos_mmn18.toml", "rb") as file:
        raw = tomllib.load(file)
    raw["chaos"].update(atoms=atoms, r_nodes=r_nodes, c_nodes=c_nodes, dt=dt)
    config = parse_config(raw)
    times = np.concatenate([[0.0], np.geomspace(0.01, 100.0, 17)])
    start = time.perf_counter()
    prediction = chaos_hook(config).predict(times, config["chaos"], build_schedule(config))
    print(f"rule {atoms} x {r_nodes} x {c_nodes}, dt {dt}: {time.perf_counter() - start:.1f} s", flush=True)
    for k, t in enumerate(times):
        print(f"t = {t:6.2f}  L = {prediction.mean_field_risk[k]:.6f}  e = {prediction.function_gap[k]:.5f}  "
              f"c = {prediction.risk_excess[k]:.5f}  sqrtN mean = {prediction.coupling_mean[k]:.4f}")


if __name__ == "__main__":
    main()
