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


def _step_curve(time: np.ndarray, exit_scale: float) -> np.ndarray:
    """A plateau at R = 2 left around ``exit_scale`` for R = 0.5: R = 0.5 + 1.5 / (1 + (t/t_e)^6)."""
    return 0.5 + 1.5 / (1 + (time / exit_scale) ** 6)


def test_plateau_diagram_with_sgd_points(tmp_path, capsys):
    """SGD seeds drawn on a plateaus sweep: the plateau of each seed's curve is matched to the reduced
    level and its exit times are averaged (seed mean ± s.e.); a seed still on it is counted apart."""
    from reduced_pde.analysis.plateaus import detect_plateaus
    from reduced_pde.cli import main
    from reduced_pde.running.phase_diagrams import sgd_plateaus
    from reduced_pde.running.sweeps import write_dataset

    rate, dim = np.array([100.0, 1000.0]), np.array([30, 300])
    dims = ["network.second_layer_rate", "data.dimension"]
    time = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, 81)])
    # the reduced plateau sweep: one plateau at 2.0 per point, exits 1e-2 · (1, 2; 3, 4)
    exits = np.array([[1e-2, 2e-2], [3e-2, 4e-2]])
    pde = xr.Dataset({"plateau_height": (dims + ["plateau"], np.full((2, 2, 1), 2.0)),
                      "plateau_entry": (dims + ["plateau"], np.full((2, 2, 1), 1e-4)),
                      "plateau_exit": (dims + ["plateau"], exits[..., None]),
                      "risk": (dims + ["time"], np.array([[_step_curve(time, e) for e in row] for row in exits])),
                      "status": (dims, np.ones((2, 2), dtype=np.int8))},
                     coords={dims[0]: rate, dims[1]: dim, "time": time},
                     attrs={"sweep.task": "plateaus", "sweep.name": "synthetic", "plateaus.threshold": 0.1,
                            "plateaus.smoothing": 0.1, "plateaus.min_duration": 0.3,
                            "plateaus.ignore_before": "json:null", "plateaus.max_degree": "json:null"})
    # SGD at (1000, 300): three seeds leave at t_e = 0.02, 0.03, 0.04, a fourth is still on it at T = 1
    scales = [0.02, 0.03, 0.04, 10.0]
    seeds = np.array([[[_step_curve(time, e) for e in scales]]])
    sgd = xr.Dataset({"risk": (dims + ["seed", "time"], seeds),
                      "status": (dims + ["seed"], np.ones((1, 1, 4), dtype=np.int8))},
                     coords={dims[0]: [1000.0], dims[1]: [300], "seed": [0, 1, 2, 3], "time": time},
                     attrs={"sweep.task": "sgd"})
    write_dataset(pde, tmp_path / "plateaus.nc")
    write_dataset(sgd, tmp_path / "sgd.nc")

    rows = sgd_plateaus(pde, sgd)
    assert [(r["i"], r["j"]) for r in rows] == [(1, 1)] and len(rows[0]["seeds"]) == 4
    direct = [detect_plateaus(time, _step_curve(time, e))[0].exit_time for e in scales[:3]]
    # the detector works in log time, so a curve shifted by a factor moves its exit by that factor
    # (to the smoothing bins: 0.1/5 decade)
    assert direct[1] / direct[0] == pytest.approx(1.5, rel=0.05)
    assert direct[2] / direct[0] == pytest.approx(2.0, rel=0.05)
    figure = tmp_path / "plateaus.png"
    assert main(["phase-diagram", str(tmp_path / "plateaus.nc"), "--sgd", str(tmp_path / "sgd.nc"),
                 "-o", str(figure)]) == 0
    out = capsys.readouterr().out.splitlines()
    sgd_line = next(line for line in out if line.lstrip().startswith("SGD 4 seeds"))
    mean, error = np.mean(direct), np.std(direct, ddof=1) / math.sqrt(3)
    assert f"exit {mean:.3g} ± {error:.2g} (3 seeds), 1 still on it" in sgd_line, sgd_line
    assert figure.stat().st_size > 10_000
    # an SGD point off the reduced grid, or a level option on a plateaus sweep: refused
    write_dataset(sgd.assign_coords({dims[1]: [100]}), tmp_path / "off.nc")
    assert main(["phase-diagram", str(tmp_path / "plateaus.nc"), "--sgd", str(tmp_path / "off.nc"),
                 "-o", str(figure)]) == 2
    assert "not on the plateau sweep's grid" in capsys.readouterr().err
    assert main(["phase-diagram", str(tmp_path / "plateaus.nc"), "--level", "1", "-o", str(figure)]) == 2
