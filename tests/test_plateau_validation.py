"""Plateau predictions against SGD (slow): the BMZ-type configuration at reduced size.

configs/bmz_sgd.toml with d = 200, N = 600, t ∈ [1e-4, 0.6] (the R_0 plateau, its exit and the drop
that learns He_1), 4 SGD seeds, against the reduced solve (Gauss particles).  The full-size comparison
(d = 400, N = 1000, 3 seeds, and the He_3 escape) is benchmarks/plateau_sgd_validation.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from reduced_pde.running.pipeline import plateau_report, run_pde, run_sgd_seed
from reduced_pde.running.config import load_config
from reduced_pde.analysis.plateaus import compare_plateaus

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "bmz_sgd.toml"


@pytest.mark.slow
def test_bmz_plateau_height_exit_and_drop_match_sgd():
    """Tolerances: the Student-t 99% interval of the mean of 4 seeds (t_{0.995, 3} = 5.84 s.e.) plus,
    for risks, the finite-N bias of the empirical-law risk, at most (1/N) E[a²] E[σ(G)²] =
    (2π + 0.25)/2/N = 5.4e-3 at N = 600 (the diagonal of the interaction), and, for times, the reduced
    solve's own particle error (measured 2e-4 relative, [16, 24] vs [24, 32] Gauss particles) and
    the output-grid resolution in the plateau detector (half a bin: 0.1/5/2 decades = 2.3%)."""
    overrides = ["data.dimension=200", "sgd.n_neurons=600", "output.t_final=0.6", "output.n_outputs=60",
                 "sgd.seeds=[0, 1, 2, 3]"]
    config = load_config(CONFIG, overrides)
    prediction = run_pde(config, progress=False)
    runs = [run_sgd_seed(config, seed, progress=False) for seed in (0, 1, 2, 3)]
    predicted = plateau_report(prediction)
    comparisons = compare_plateaus(predicted["plateaus"], [plateau_report(r)["plateaus"] for r in runs])
    assert comparisons and abs(comparisons[0].predicted.height / (17 / 9) - 1) < 0.02   # the R_0 plateau
    t99 = stats.t.ppf(0.995, 3)
    bias = (2 * math.pi + 0.25) / 2 / 600
    first = comparisons[0]
    mean, error, count = first.mean_and_error("height")
    assert count == 4 and abs(mean - first.predicted.height) <= t99 * error + bias, (mean, error)
    for quantity in ("exit_time", "drop_time"):
        mean, error, count = first.mean_and_error(quantity)
        value = getattr(first.predicted, quantity)
        tolerance = t99 * error + (2e-4 + 0.023) * value
        assert count == 4 and abs(mean - value) <= tolerance, (quantity, value, mean, error, tolerance)
    # the whole curve: seed mean within the same allowance at every output time
    risks = np.array([r.risk for r in runs])
    spread = t99 * risks.std(axis=0, ddof=1) / 2.0 + bias
    assert np.all(np.abs(risks.mean(axis=0) - prediction.risk) <= spread + 2e-4 * prediction.risk)
