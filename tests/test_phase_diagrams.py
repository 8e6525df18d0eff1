"""Outcome of a risk curve (reduced_pde.analysis.outcomes) and the phase-diagram command on a sweep
dataset built from exact curves (no solver: the expected outcome of every point is known)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reduced_pde.analysis.outcomes import classify_outcome, final_slope, time_to_level

xr = pytest.importorskip("xarray")


def test_time_to_level_is_exact_on_power_laws_and_nan_when_never_reached():
    time = np.concatenate([[0.0], np.geomspace(1e-2, 10, 13)])
    risk = np.concatenate([[50.0], 0.5 * time[1:] ** -1.5])  # a power law between every pair of outputs
    # log-log interpolation is exact for a power law: t = (0.5/level)^(1/1.5), to round-off
    for level in (3.0, 0.7, 0.02):
        assert time_to_level(time, risk, level) == pytest.approx((0.5 / level) ** (1 / 1.5), rel=1e-12)
    assert math.isnan(time_to_level(time, risk, 1e-3))   # R(10) = 0.0158 > 1e-3
    assert time_to_level(time, risk, 60.0) == 0.0         # below the level at t = 0
    assert final_slope(time, risk) == pytest.approx(-1.5, rel=1e-12)
    with pytest.raises(ValueError, match="level = -1"):
        time_to_level(time, risk, -1)


def test_outcome_classes():
    time = np.concatenate([[0.0], np.geomspace(1e-2, 10, 31)])
    stalled = np.full(time.shape, 7.25)
    escaping = 7.25 - 4.0 * (time / 10) ** 2       # leaves the plateau at the end, R(10) = 3.25 > 2
    reached = 7.25 * np.exp(-time)
    assert [classify_outcome(time, r, 2.0) for r in (reached, stalled, escaping)] == [0, 1, 2]


def test_phase_diagram_command_on_a_synthetic_sweep(tmp_path, capsys):
    from reduced_pde.cli import main
    from reduced_pde.running.sweeps import write_dataset

    time = np.concatenate([[0.0], np.geomspace(1e-2, 10, 31)])
    kappa, delta = np.array([0.05, 0.2, 0.8]), np.array([0.3, 0.7])
    # κ = 0.05 stalls at 7.25; above it R = 7.25 e^{-κ t / 0.1}, reaching 2 at t = 0.1 ln(3.625)/κ
    risk = np.array([[np.full(time.shape, 7.25) if k == 0.05 else 7.25 * np.exp(-k * time / 0.1)
                      for _ in delta] for k in kappa])
    dims = ["initial.kappa", "data.delta"]
    pde = xr.Dataset({"risk": (dims + ["time"], risk), "final_risk": (dims, risk[..., -1]),
                      "status": (dims, np.ones((3, 2), dtype=np.int8))},
                     coords={"initial.kappa": kappa, "data.delta": delta, "time": time},
                     attrs={"sweep.task": "pde", "sweep.name": "synthetic"})
    seeds = np.stack([risk[:, :, :21] * (1 + 0.01 * s) for s in range(2)], axis=2)  # SGD to t = time[20]
    sgd = xr.Dataset({"risk": (dims + ["seed", "time"], seeds), "network_risk": (dims + ["seed", "time"], seeds),
                      "status": (dims + ["seed"], np.ones((3, 2, 2), dtype=np.int8))},
                     coords={"initial.kappa": kappa, "data.delta": delta, "seed": [0, 1], "time": time[:21]},
                     attrs={"sweep.task": "sgd"})
    write_dataset(pde, tmp_path / "pde.nc")
    write_dataset(sgd.isel({"initial.kappa": [0, 1]}), tmp_path / "sgd.nc")
    figure = tmp_path / "pd.png"
    assert main(["phase-diagram", str(tmp_path / "pde.nc"), "--sgd", str(tmp_path / "sgd.nc"), "--level", "2",
                 "-o", str(figure)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert figure.stat().st_size > 10_000
    assert out[0].endswith("4 reached, 2 stalled, 0 decreasing")
    rows = out[2:6]
    horizon = time[20]
    for row, k in zip(rows, [0.05, 0.05, 0.2, 0.2]):
        fields = row.split()
        assert float(fields[0]) == k and float(fields[2]) == pytest.approx(horizon, rel=1e-3)
        expected = 7.25 if k == 0.05 else 7.25 * math.exp(-k * horizon / 0.1)
        assert float(fields[3]) == pytest.approx(expected, rel=1e-3)  # printed to 4 digits
        if k == 0.2:  # exact crossing 0.1 ln(3.625)/0.2 = 0.644; ln R is linear in t, not ln t: ~1% error
            assert float(fields[11]) == pytest.approx(0.1 * math.log(3.625) / k, rel=0.02)
        assert row.endswith("reached / reached, reached" if k == 0.2 else "stalled / stalled, stalled")
    assert main(["phase-diagram", str(tmp_path / "sgd.nc"), "-o", str(figure)]) == 2
    assert "'sgd' sweep" in capsys.readouterr().err


def test_plateau_heights_are_grouped_across_points():
    from reduced_pde.running.phase_diagrams import _height_clusters

    # BMZ-like: E y² plateau (2.84-2.89 across points), R_0 plateau (1.82-1.85), a late 0.17 one; NaN = none
    heights = np.array([[2.884, 1.825, np.nan], [2.873, 1.848, 0.1703], [2.84, np.nan, 0.1692]])
    assert _height_clusters(heights) == pytest.approx([2.873, 1.8365, 0.16975])
