"""Figure helpers (reduced_pde/running/plotting.py): the law panels say which stored output they
show, particle densities close at the support, laws with atoms are drawn as CDFs, the order
parameter drawn next to the risk is not zero by symmetry."""

from __future__ import annotations

import numpy as np
import pytest

from reduced_pde.running.plotting import _panel_title, _summary, has_atoms, quantile_particle_density
from solvers.results import Trajectory


def test_panel_title_names_the_requested_time_when_the_output_differs() -> None:
    assert _panel_title(0.3, 0.3) == "t = 0.3"
    assert _panel_title(0.281, 0.3) == "t = 0.281 (nearest output to 0.3)"


def test_quantile_particle_density_closes_at_the_outermost_particles() -> None:
    """Mid-quantile particles of U(0, 1): density 1 inside (exact for equal gaps), 0 at the ends."""
    n = 801
    positions = (np.arange(n) + 0.5) / n
    x, p = quantile_particle_density(positions, np.full(n, 1.0 / n))
    assert p[0] == 0.0 and p[-1] == 0.0 and x[0] == positions[0] and x[-1] == positions[-1]
    assert np.allclose(p[1:-1], 1.0, rtol=1e-12)     # 8 gaps of 1/n carry 8 masses 1/n


def test_has_atoms_separates_spikes_from_smooth_laws() -> None:
    """A Gaussian over ±6 std: peak × support width = 12/√(2π) ≈ 4.8 < 25; neurons piled at s = ±1
    on 400 cells of [−1, 1] (half the mass in each end cell): 100 × 2 = 200 > 25."""
    x = np.linspace(-6, 6, 601)
    assert not has_atoms(x, np.exp(-x ** 2 / 2) / np.sqrt(2 * np.pi))
    s = np.linspace(-1 + 1 / 400, 1 - 1 / 400, 400)
    density = np.full(400, 1e-3)
    density[[0, -1]] = 0.5 / (2 / 400)
    assert has_atoms(s, density)


def test_order_parameter_of_an_overlap_is_its_second_moment() -> None:
    """For a law of s symmetric under s → −s the mean is 0 at all times; ⟨s²⟩ = mean² + std² is not."""
    time = np.array([0.0, 1.0])
    trajectory = Trajectory(time=time, risk=np.ones(2), kind="pde_finite_volume", coordinates=("s",),
                            fields={}, config={}, derived={},
                            mean=np.zeros((2, 1)), std=np.array([[0.1], [0.7]]))
    label, values = _summary(trajectory)
    assert label == "⟨s²⟩"
    assert values == pytest.approx([0.01, 0.49], rel=1e-14)


def _regenerate_module():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "regenerate_figures.py"
    spec = importlib.util.spec_from_file_location("regenerate_figures", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_committed_figures_equal_what_the_code_draws(tmp_path) -> None:
    """Every committed figure whose data is stored (figures/data/) is redrawn by the current code and
    compared with figures/*.png: identical pixels when the PNG was written by this matplotlib version
    (Agg is deterministic), else ≤ 1% of pixels off (antialiasing of another build; see
    benchmarks/regenerate_figures.py).  ~10 s: reading the stored HDF5 files and drawing, no solve."""
    regenerate = _regenerate_module()
    stored = [entry for entry in regenerate.ENTRIES if entry.stored()]
    assert {"relu_single_index", "multi_index", "sphere_he4", "anisotropic_mixture",
            "relu_single_index_inf"} <= {e.name for e in stored}
    reports = []
    for entry in stored:
        for path in entry.redraw(tmp_path):
            equal, report = regenerate.compare_png(path, regenerate.FIGURES / path.name)
            reports.append((equal, report))
    assert all(equal for equal, _ in reports), [report for equal, report in reports if not equal]


def test_figure_comparison_detects_a_changed_legend(tmp_path) -> None:
    """The check can fail: one changed word in a legend is found (same matplotlib: exact comparison)."""
    import matplotlib.pyplot as plt

    regenerate = _regenerate_module()
    paths = []
    for word in ("seeds", "seedz"):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot([0, 1], [0, 1], label=f"SGD, 3 {word}")
        ax.legend()
        paths.append(tmp_path / f"{word}.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    assert regenerate.compare_png(paths[0], paths[0])[0]
    assert not regenerate.compare_png(paths[1], paths[0])[0]
