"""Coupled runs against the 1/m prediction, from chaos files (README "Finite width"):

    python benchmarks/compare_chaos.py RUNS.h5 [RUNS2.h5 ...] [--prediction PREDICTION.h5]

Reads the coupled runs of one or more ``reduced-pde chaos`` files (e.g. many-seed runs made with
``--no-prediction`` on a GPU, several widths in several files) and the prediction (``prediction/`` of the
first file that has one, or of ``--prediction``: a file of the same model and output times, e.g. made here
with ``--widths 2 --seeds 0``), and prints per width and output time the seed means ± standard errors of
m E_t², m (L_m − L) with the twin control variate, √m × mean coupling gap and m × rms gap², each with its
limit and the deviation in standard errors, (mean − limit)/s.e.  Files whose times differ are refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from reduced_pde.running.chaos import read_chaos

QUANTITIES = (  # (label, the runs' value per (m, seed, t) from (runs, m), its limit from the prediction)
    ("m E_t^2", lambda runs, m: m * runs.function_gap_squared, lambda p: p.function_gap),
    ("m(L_m - L) ctrl", lambda runs, m: m * runs.risk_excess_controlled, lambda p: p.risk_excess),
    ("sqrt(m) mean gap", lambda runs, m: np.sqrt(m) * runs.coupling_mean, lambda p: p.coupling_mean),
    ("m rms gap^2", lambda runs, m: m * runs.coupling_rms ** 2,
     lambda p: None if p.coupling_rms is None else p.coupling_rms ** 2),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--prediction", type=Path, default=None)
    args = parser.parse_args(argv)
    data = [read_chaos(path) for path in args.runs]
    prediction = read_chaos(args.prediction)["prediction"] if args.prediction else next(
        (d["prediction"] for d in data if d["prediction"] is not None), None)
    time = data[0]["runs"].time
    for path, d in zip(args.runs, data):
        if not np.allclose(d["runs"].time, time, rtol=1e-12, atol=0):
            print(f"compare_chaos: {path} has other output times than {args.runs[0]}", file=sys.stderr)
            return 2
    if prediction is not None and not np.allclose(prediction.time, time, rtol=1e-12, atol=0):
        print("compare_chaos: the prediction's output times differ from the runs'", file=sys.stderr)
        return 2
    nan = np.full(time.shape, np.nan)
    limits = [nan if prediction is None or limit(prediction) is None else np.asarray(limit(prediction))
              for _, _, limit in QUANTITIES]
    for path, d in zip(args.runs, data):
        runs = d["runs"]
        # seed means and standard errors, (W, T) each, per quantity
        stats = [runs.seed_mean(value(runs, runs.widths[:, None, None].astype(float))) for _, value, _ in QUANTITIES]
        for iw, width in enumerate(runs.widths):
            print(f"\n{path.name}: m = {width}, {runs.seeds.size} seeds (mean ± s.e.; limit; (mean - limit)/s.e.)")
            print(f"{'t':>8} | " + " | ".join(f"{label:>34}" for label, _, _ in QUANTITIES))
            for k, t in enumerate(time):
                cells = []
                for (mean, se), limit in zip(stats, limits):
                    mu, sigma = float(mean[iw, k]), float(se[iw, k])
                    z = (mu - limit[k]) / sigma if sigma > 0 else np.nan
                    cells.append(f"{mu:9.4g} ± {sigma:7.2g}; {limit[k]:8.4g}; {z:+5.1f}")
                print(f"{t:8.4f} | " + " | ".join(f"{c:>34}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
