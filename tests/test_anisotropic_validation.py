"""Slow validation: the anisotropic Gaussian mixture's (r1, r2) reduction against full-dimensional SGD.

``configs/anisotropic_mixture.toml``: d = 40, s0 = γd = 10 signal coordinates, Δ = 0.5, MMN18's σ,
κ = 0.4; SGD with N = 1000 neurons, ε = 5e-4, B = 20, four seeds; the reduced PDE by characteristics
with 12 × 12 Gauss particles here (8× cheaper than the configuration's 1024 Sobol particles; against
24 × 24 Gauss particles: risk and means within 1.3e-4 relative, std of r1 within 3.9%, of r2 0.7%).  Compared like with
like (design note §5): SGD's ``risk`` is the N = ∞ risk of the empirical law of its neurons'
invariants, and the law of (r1, r2) through the mean and standard deviation of each coordinate.

Expected differences, each measured (README, "Anisotropic Gaussian mixture"):
* the seed standard error s.e. of the 4-seed mean (N = 1000 iid initial neurons plus minibatch noise);
* SGD's O(ε/B) bias: halving ε (2.5e-4, same seeds) moves the SGD means by about half their gap to
  the PDE on the law (ratios 0.54–0.75 for the standard deviations and mean r2 late), so the gap is the
  first-order step-size bias; at ε = 5e-4, for t ≥ 0.05, it is at most 1.4% on the risk (at t ≈ 0.06,
  within 4 s.e. + 0.15%), 0.6% / 1.1% on the means of r1 / r2, 27% on the standard deviation of r1
  late (the minibatch noise diffuses each neuron against a confining drift that keeps the law 0.04
  wide; 14% at ε/2) and 10% on that of r2.  Extrapolated to ε → 0 (2·SGD(ε/2) − SGD(ε), same seeds),
  the gaps fall to 0.9% (risk), 0.6% / 0.5% (means), 7% / 5% (standard deviations, where the 12 × 12
  particles' own error is 3.9% / 0.7%).  The allowance below
  is that measured bias (not loosened after the fact), on top of 4 s.e.
"""

from __future__ import annotations

import numpy as np
import pytest

from reduced_pde.running.config import load_config
from reduced_pde.running.pipeline import run_pde, run_sgd_seed

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2, 3)
#: relative SGD step-size bias allowed per quantity at ε = 5e-4, B = 20 (measured: see the docstring)
BIAS = {"risk": 0.015, "mean_r1": 0.007, "mean_r2": 0.012, "std_r1": 0.30, "std_r2": 0.12}


@pytest.fixture(scope="module")
def runs():
    config = load_config("configs/anisotropic_mixture.toml", ["output.law_times=[]", 'pde.sampling="gauss"',
                                                                "pde.n_particles=[12, 12]"])
    return run_pde(config, progress=False), [run_sgd_seed(config, seed, progress=False) for seed in SEEDS]


@pytest.mark.parametrize("name", sorted(BIAS))
def test_reduced_law_against_sgd(runs, name: str) -> None:
    pde, sgd = runs
    late = pde.time >= 0.05
    values = np.array([run.series(name) for run in sgd])
    mean, stderr = values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(len(SEEDS))
    reference = pde.series(name)
    gap = np.abs(mean - reference)[late]
    allowed = (4 * stderr + BIAS[name] * np.abs(reference))[late]
    assert np.all(gap <= allowed), (name, pde.time[late][gap > allowed], gap[gap > allowed], allowed[gap > allowed])


def test_the_comparison_can_fail(runs) -> None:
    """Control: the same tolerances reject a PDE whose clock runs 5% slow (a wrong factor in the
    time scale), so the agreement above is not an artefact of wide bounds."""
    pde, sgd = runs
    late = pde.time >= 0.05
    shifted = np.interp(pde.time * 0.95, pde.time, pde.risk)
    values = np.array([run.risk for run in sgd])
    mean, stderr = values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(len(SEEDS))
    allowed = 4 * stderr + BIAS["risk"] * shifted
    assert np.any(np.abs(mean - shifted)[late] > allowed[late])
