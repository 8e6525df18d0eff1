"""The compiled finite-volume time loop against an independent numpy step (solvers/finite_volume.py).

The loop fuses and specialises its passes (MUSCL values of the upwind cell reconstructed at the face on
the strided axes, the first axis writing rate and outflow, the rank-0 potential computed once per call,
the update and the positivity check in one pass into a swapped buffer).  One forward-Euler step of
``dp/dt = −Σ_d ∂_d F_d`` written here from the solver's public fields — face velocities, widths, centres —
with numpy's own minmod reconstruction must give the solver's state after one full step.  Grids: 3-D
(all three axes swept, the first strided one writing), 2-D and 1-D (the line axis writing), the
multi-index problem (rank 7) and an affine rank-0 problem (ψ = v: the once-per-call potential).
"""

from __future__ import annotations

import numpy as np
import pytest

from reduced_pde.running.config import load_config
from reduced_pde.running.pipeline import make_pde_solver
from solvers.finite_volume import FiniteVolumeSolver
from solvers.tensor_grid import GridAxis, TensorGrid
from test_finite_volume_nd import AffineVelocityProblem


def _minmod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where((a > 0) & (b > 0), np.minimum(a, b), np.where((a < 0) & (b < 0), np.maximum(a, b), 0.0))


def euler_step(solver: FiniteVolumeSolver, dt: float) -> np.ndarray:
    """``p + dt · dp/dt`` from the solver's face velocities, by numpy (module docstring)."""
    p = solver.density
    rate = np.zeros_like(p)
    for d, (axis, u) in enumerate(zip(solver.grid.axes, solver.face_velocities())):
        q = np.moveaxis(p, d, 0)
        east, west = q.copy(), q.copy()
        if solver.scheme == "muscl" and axis.cells > 2:
            gaps = np.diff(axis.centers).reshape((-1,) + (1,) * (p.ndim - 1))
            jumps = np.diff(q, axis=0) / gaps
            slope = np.zeros_like(q)
            slope[1:-1] = _minmod(jumps[1:], jumps[:-1])
            half = 0.5 * axis.widths.reshape((-1,) + (1,) * (p.ndim - 1)) * slope
            east, west = q + half, q - half
        u = np.moveaxis(u, d, 0)[1:-1]
        flux = np.zeros((axis.cells + 1,) + q.shape[1:])
        flux[1:-1] = np.maximum(u, 0.0) * east[:-1] + np.minimum(u, 0.0) * west[1:]
        divergence = np.diff(flux, axis=0) / axis.widths.reshape((-1,) + (1,) * (p.ndim - 1))
        rate -= np.moveaxis(divergence, 0, d)
    return p + dt * rate


def one_full_step(solver: FiniteVolumeSolver) -> tuple[np.ndarray, np.ndarray]:
    """(numpy step, solver state) after one step of dt = cfl / max(rates), the loop's own step."""
    rates = solver.rates_of_change()
    dt = solver.cfl / max(rates["courant"], rates["interaction"])
    expected = euler_step(solver, dt)
    solver.advance(solver.time + dt)
    assert solver.steps == 1
    return expected, solver.density


def multi_index(cells: dict[str, int], scheme: str) -> FiniteVolumeSolver:
    config = load_config("configs/multi_index.toml")
    for name, n in cells.items():
        config["grid"][name]["cells"] = n
    config["pde"]["scheme"] = scheme
    solver, _, _ = make_pde_solver(config)
    return FiniteVolumeSolver(solver.problem, solver.grid, scheme=scheme, time_stepper="euler", cfl=0.4)


def affine(shape: tuple[int, ...], scheme: str) -> FiniteVolumeSolver:
    names = ("x", "y", "z")[: len(shape)]
    problem = AffineVelocityProblem(np.diag([-1.0, -0.5, -0.7][: len(shape)]) + 0.1, [0.3, -0.2, 0.1][: len(shape)],
                                    [0.1, -0.1, 0.2][: len(shape)], [0.5, 0.6, 0.4][: len(shape)], names)
    grid = TensorGrid([GridAxis.uniform(name, -2.5, 2.5, n) for name, n in zip(names, shape)])
    return FiniteVolumeSolver(problem, grid, scheme=scheme, time_stepper="euler", cfl=0.4)


@pytest.mark.parametrize("scheme", ["muscl", "upwind"])
@pytest.mark.parametrize("make", [
    lambda scheme: multi_index({"s1": 7, "s2": 6, "r": 5}, scheme),   # 3-D, rank 7
    lambda scheme: affine((6, 7, 5), scheme),                          # 3-D, rank 0 (ψ = v once per call)
    lambda scheme: affine((5, 9), scheme),                             # 2-D
    lambda scheme: affine((11,), scheme),                              # 1-D
], ids=["multi_index_3d", "affine_3d", "affine_2d", "affine_1d"])
def test_one_step_matches_numpy(make, scheme: str) -> None:
    expected, state = one_full_step(make(scheme))
    # the same flops in another order: round-off of a few operations on values of size max p
    np.testing.assert_allclose(state, expected, rtol=0, atol=1e-13 * np.abs(expected).max())
    assert not np.array_equal(state, make(scheme).density)  # the step moved the law
