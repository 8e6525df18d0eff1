"""float32 against float64 in the end-to-end runs of benchmarks/gpu_checks.sh (README "GPU backend"):

    python benchmarks/gpu_precision_report.py OUT

reads OUT/{short,mid}_{float32,float64}.h5 (the same network, m neurons, one seed, run by ``reduced-pde chaos``
in both precisions) and prints, per output time, the float32 error of what the runs measure, in the units of
the 1/m law: m |ΔE_t²|, m |Δ(L_m − L)| and √m |Δ mean_i |w_i − w̄_i||; then the wall time and the measures of
OUT/big_float32.h5 (m = 2^16 in float32 to t = 1).  Files that are missing are named and skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np

from reduced_pde.running.chaos import read_chaos


def load(path: Path) -> dict | None:
    """The runs of a chaos file (:func:`~reduced_pde.running.chaos.read_chaos`), its wall time, device and
    precision; None (and the file named) when its run did not finish."""
    if not path.exists():
        print(f"{path.name}: missing (its run did not finish)")
        return None
    runs = read_chaos(path)["runs"]
    with h5py.File(path, "r") as file:
        attrs = {key: file.attrs[key] for key in ("diagnostics.wall_time", "derived.device", "derived.precision")}
    return {"time": runs.time, "m": int(runs.widths[0]), "function_gap_squared": runs.function_gap_squared,
            "coupling_mean": runs.coupling_mean, "excess": runs.risk_excess[0, 0],
            "wall_time": float(attrs["diagnostics.wall_time"]), "device": str(attrs["derived.device"]),
            "precision": str(attrs["derived.precision"])}


def compare(out: Path, name: str) -> None:
    single, double = load(out / f"{name}_float32.h5"), load(out / f"{name}_float64.h5")
    if single is None or double is None:
        return
    m = single["m"]
    print(f"\n{name}: m = {m}, {single['device']}, wall time float32 {single['wall_time']:.1f} s, "
          f"float64 {double['wall_time']:.1f} s")
    print(f"{'t':>8} | {'m E_t^2 (f64)':>13} | {'m|dE_t^2|':>9} | {'m(L_m-L) (f64)':>14} | {'m|d(L_m-L)|':>11} | "
          f"{'sqrt(m) gap (f64)':>17} | {'sqrt(m)|d gap|':>14}")
    for k, t in enumerate(double["time"]):
        gap64, gap32 = double["function_gap_squared"][0, 0, k], single["function_gap_squared"][0, 0, k]
        ex64, ex32 = double["excess"][k], single["excess"][k]
        c64, c32 = double["coupling_mean"][0, 0, k], single["coupling_mean"][0, 0, k]
        print(f"{t:8.4f} | {m * gap64:13.5g} | {m * abs(gap32 - gap64):9.2g} | {m * ex64:14.5g} | "
              f"{m * abs(ex32 - ex64):11.2g} | {np.sqrt(m) * c64:17.5g} | {np.sqrt(m) * abs(c32 - c64):14.2g}")


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python benchmarks/gpu_precision_report.py OUT")
    out = Path(sys.argv[1])
    for name in ("short", "mid"):
        compare(out, name)
    big = load(out / "big_float32.h5")
    if big is not None:
        m = big["m"]
        print(f"\nbig_float32: m = {m}, {big['device']}, {big['precision']}, coupled runs to t = "
              f"{big['time'][-1]:g} in {big['wall_time']:.1f} s")
        for k, t in enumerate(big["time"]):
            print(f"  t = {t:8.4f}: m E_t^2 = {m * big['function_gap_squared'][0, 0, k]:9.5g}, m(L_m - L) = "
                  f"{m * big['excess'][k]:9.5g}, sqrt(m) mean gap = {np.sqrt(m) * big['coupling_mean'][0, 0, k]:8.5g}")


if __name__ == "__main__":
    main()
