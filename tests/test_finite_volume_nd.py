"""Finite-volume solver (solvers/finite_volume.py) on multi-dimensional tensor grids
(solvers/tensor_grid.py): design order on exact affine-transport solutions in 2-D and 3-D (uniform and
stretched grids), conservation, positivity and discrete risk dissipation on single-index problems (ball
(a, s, r) and (s, r), sphere (a, s) with mobility 1 − s²), the interaction paths (low rank, dense,
linear coordinate), agreement with the 1-D solver, checkpoint/resume, errors and input validation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.linalg import expm

from reduced_pde import (
    IsotropicGaussianMixture,
    IsotropicMixtureRadialProblem,
    LearningRateSchedule,
)
from reduced_pde.problem import LowRankKernel, ReducedProblem
from reduced_pde.running.storage import CheckpointFile
from solvers.controller import run_simulation
from reduced_pde.models.single_index import SingleIndexProblem
from solvers.finite_volume import FiniteVolumeSolver, SolverError, solve_finite_volume
from solvers.grid import UniformGrid1D
from solvers.tensor_grid import GridAxis, TensorGrid


# ------------------------------------------------------------------------------------------------
# an exact multi-dimensional solution: affine velocity, Gaussian law
# ------------------------------------------------------------------------------------------------
class ProductNormalLaw:
    """Independent normal coordinates; exact cell masses on tensor grids (products of CDF differences)."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        self.mean, self.std = np.asarray(mean, float), np.asarray(std, float)

    def cell_masses(self, edges: list[np.ndarray]) -> np.ndarray:
        out = np.ones(())
        for m, s, e in zip(self.mean, self.std, edges):
            out = np.multiply.outer(out, np.diff(stats.norm.cdf(e, m, s)))
        return out


class AffineVelocityProblem(ReducedProblem):
    """u = 0 (rank 0), mobility 1, ``v(x) = −¼ xᵀAx − ½ bᵀx`` (A symmetric).  With ξ ≡ 1 and rates c
    the velocity ``−2 c ∘ ∇v = C(Ax + b)`` is affine, so the Gaussian N(μ0, Σ0) stays Gaussian:
    ``μ(t) = e^{Bt} μ0 + B⁻¹(e^{Bt} − I) β``, ``Σ(t) = e^{Bt} Σ0 e^{Bᵀt}`` with B = CA, β = Cb,
    C = diag(c).  A non-diagonal A correlates the coordinates: the dimension-by-dimension scheme is
    tested on a genuinely multi-dimensional flow.  ``nan_at``: a point where v is NaN."""

    def __init__(self, matrix: list[list[float]], shift: list[float], mean: list[float],
                 std: list[float], names: tuple[str, ...], nan_at: np.ndarray | None = None) -> None:
        self.matrix, self.shift = np.asarray(matrix, float), np.asarray(shift, float)
        self.law = ProductNormalLaw(mean, std)
        self.coordinate_names = names
        self.nan_at = nan_at

    @property
    def target_second_moment(self) -> float:
        return 1.0

    def reduced_potential(self, points: np.ndarray) -> np.ndarray:
        x = np.asarray(points, float).reshape(len(points), -1)
        v = -0.25 * np.einsum("mi,ij,mj->m", x, self.matrix, x) - 0.5 * x @ self.shift
        if self.nan_at is not None:
            v[np.all(np.abs(x - self.nan_at) < 1e-9, axis=1)] = np.nan
        return v

    def reduced_potential_gradient(self, points: np.ndarray) -> np.ndarray:
        x = np.asarray(points, float).reshape(len(points), -1)
        return -0.5 * x @ self.matrix - 0.5 * self.shift

    def interaction_low_rank(self, points: np.ndarray) -> LowRankKernel:
        m = len(points)
        return LowRankKernel(np.zeros(0), np.zeros((0, m)), np.zeros(m))

    def interaction_features_gradient(self, points: np.ndarray) -> np.ndarray:
        return np.zeros((0, len(points), len(self.coordinate_names)))

    def interaction_kernel(self, points: np.ndarray, other: np.ndarray) -> np.ndarray:
        return np.zeros((len(points), len(other)))

    def initial_law(self) -> ProductNormalLaw:
        return self.law

    def config(self) -> dict:
        return {"problem": "affine_velocity_test"}

    def exact_law(self, rates: np.ndarray, horizon: float) -> tuple[np.ndarray, np.ndarray]:
        b_matrix = np.diag(rates) @ self.matrix
        growth = expm(b_matrix * horizon)
        mean = growth @ self.law.mean + np.linalg.solve(b_matrix, (growth - np.eye(len(rates)))
                                                        @ (np.asarray(rates) * self.shift))
        return mean, growth @ np.diag(self.law.std**2) @ growth.T

    def exact_cell_masses(self, grid: TensorGrid, rates: np.ndarray, horizon: float, nodes: int) -> np.ndarray:
        """Cell masses of the exact Gaussian by a tensor Gauss–Legendre rule with ``nodes`` points per
        axis in every cell (exact for degree 2·nodes − 1: relative error O(h^{2 nodes}))."""
        mean, covariance = self.exact_law(rates, horizon)
        unit, weights = np.polynomial.legendre.leggauss(nodes)
        axes_points, axes_weights = [], []
        for edges in grid.edges:
            centres, widths = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
            axes_points.append((centres[:, None] + 0.5 * widths[:, None] * unit).ravel())
            axes_weights.append((0.5 * widths[:, None] * weights).ravel())
        mesh = np.meshgrid(*axes_points, indexing="ij")
        values = stats.multivariate_normal(mean, covariance).pdf(np.stack([m.ravel() for m in mesh], 1))
        values = values.reshape([p.size for p in axes_points])
        for d, w in enumerate(axes_weights):  # weights of every axis, then sum the nodes of each cell
            shape = [1] * grid.dimension
            shape[d] = w.size
            values = values * w.reshape(shape)
        shape = [n for cells in grid.shape for n in (cells, nodes)]
        return values.reshape(shape).sum(axis=tuple(range(1, 2 * grid.dimension, 2)))


# 2-D: the law moves and correlates (final std (0.79, 0.49), correlation 0.41); the boxes hold ±6σ of
# the initial and the final law (mass outside < 1e-8, far below the errors measured).
AFFINE_2D = {"matrix": [[0.4, 0.3], [0.3, -0.5]], "shift": [0.2, -0.1], "mean": [0.0, 0.3],
             "std": [0.5, 0.6], "rates": [1.0, 0.5], "box": [(-4.4, 5.1), (-3.3, 3.9)]}
AFFINE_3D = {"matrix": [[0.4, 0.2, 0.0], [0.2, -0.5, 0.2], [0.0, 0.2, 0.3]], "shift": [0.2, -0.1, 0.0],
             "mean": [0.0, 0.3, -0.2], "std": [0.5, 0.6, 0.5], "rates": [1.0, 0.5, 1.0],
             "box": [(-4.3, 4.9), (-3.3, 3.9), (-4.4, 4.0)]}
ORDER_CELLS = {2: (64, 128, 256), 3: (16, 32, 64)}


def affine_grid(case: dict, cells: int, stretched: bool) -> TensorGrid:
    """Uniform axes; with ``stretched`` the second axis is a sinh map with min_spacing ∝ 1/cells (one
    fixed smooth map refined uniformly in its parameter: min spacing 40 % of the uniform spacing)."""
    axes = [GridAxis.uniform(f"x{d}", lo, hi, cells) for d, (lo, hi) in enumerate(case["box"])]
    if stretched:
        lo, hi = case["box"][1]
        axes[1] = GridAxis.stretched("x1", lo, hi, cells, 0.4 * (hi - lo) / cells, center=0.2)
    return TensorGrid(axes)


def affine_errors(case: dict, scheme: str, stretched: bool, time_stepper: str | None = None
                  ) -> tuple[np.ndarray, list[FiniteVolumeSolver]]:
    dimension = len(case["mean"])
    names = tuple(f"x{d}" for d in range(dimension))
    problem = AffineVelocityProblem(case["matrix"], case["shift"], case["mean"], case["std"], names)
    errors, solvers = [], []
    for cells in ORDER_CELLS[dimension]:
        grid = affine_grid(case, cells, stretched)
        solver = FiniteVolumeSolver(problem, grid, scheme=scheme, cfl=0.4, rates=case["rates"],
                                      time_stepper=time_stepper)
        solver.advance(1.0)
        exact = problem.exact_cell_masses(grid, np.asarray(case["rates"]), 1.0, nodes=3 if dimension == 2 else 2)
        errors.append(float(np.abs(solver.masses - exact).sum()))
        solvers.append(solver)
    return np.array(errors), solvers


def pairwise_orders(errors: np.ndarray) -> np.ndarray:
    """log2 of successive error ratios (the cells double)."""
    return np.log2(errors[:-1] / errors[1:])


# ---- design order ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case, stretched", [(AFFINE_2D, False), (AFFINE_2D, True), (AFFINE_3D, False)],
                         ids=["2d", "2d-stretched", "3d"])
def test_upwind_is_first_order_on_affine_transport(case: dict, stretched: bool) -> None:
    errors, solvers = affine_errors(case, "upwind", stretched)
    orders = pairwise_orders(errors)
    # measured pairwise orders 2-D 0.93 → 0.97 (uniform), 0.94 → 0.97 (stretched); 3-D 0.84 → 0.91:
    # they rise towards 1 as h → 0 (the Gaussian has 2–13 cells per std on these grids); 0.85 fails
    # for order ½ and for any O(1) error, and leaves the pre-asymptotic margin.  (Reference masses:
    # Gauss–Legendre error measured 5e-13 (2-D, 3 nodes) and 3e-6 (3-D, 2 nodes) in L1, below 1e-3
    # of the smallest scheme error.)
    assert orders[-1] > 0.85, (orders, errors)
    for solver in solvers:
        # rank-0 interaction: mass moves only between cells; round-off ~1e-16 per step, < 400 steps
        assert solver.diagnostics()["mass_error"] < 1e-13
        assert solver.density.min() >= 0.0  # positivity under cfl 0.4 <= 1 (exact up to round-off)


@pytest.mark.parametrize("case, stretched, time_stepper",
                         [(AFFINE_2D, False, "ssprk2"), (AFFINE_2D, True, "ssprk2"), (AFFINE_2D, False, "ssprk3"),
                          (AFFINE_3D, False, "ssprk2"), (AFFINE_3D, True, "ssprk2")],
                         ids=["2d", "2d-stretched", "2d-ssprk3", "3d", "3d-stretched"])
def test_muscl_is_second_order_on_affine_transport(case: dict, stretched: bool, time_stepper: str) -> None:
    errors, solvers = affine_errors(case, "muscl", stretched, time_stepper)
    orders = pairwise_orders(errors)
    if len(case["mean"]) == 2:
        # measured 1.70 → 1.86 (uniform, SSP-RK2 and SSP-RK3), 1.70 → 1.87 (stretched): rising to 2 as
        # the Gaussian gets resolved (the minmod limiter clips slopes along the ridge of extrema, first
        # order in O(N) of the N² cells); 1.75 separates it from first order.
        assert orders[-1] > 1.75, (orders, errors)
    else:
        # 3-D grids are coarser (16³ … 64³: 2–7 cells per std), measured 1.42 → 1.65 (uniform),
        # 1.44 → 1.68 (stretched), the pre-asymptotic values the 2-D sequence shows at equal resolution
        # (1.59 from 32 to 64 cells per axis, before rising to 1.86); 1.5 is well above first order.
        assert orders[-1] > 1.5, (orders, errors)
    for solver in solvers:
        assert solver.diagnostics()["mass_error"] < 1e-13  # measured <= 1e-14 (SSP-RK3's thirds)
        assert solver.density.min() >= 0.0  # positivity: cfl 0.4 <= ½


# ------------------------------------------------------------------------------------------------
# single-index problems: conservation, positivity, dissipation, boundaries
# ------------------------------------------------------------------------------------------------
D = 10
TARGET = {"he": [0.0, 1.0, 0.5]}  # y = He_1(z) + ½ He_2(z): odd and even parts (no symmetric stall)


def single_index(activation: str | dict, **kwargs) -> SingleIndexProblem:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # capped-degree warning for tanh: the bound is what it is
        problem = SingleIndexProblem(kwargs.pop("target", TARGET), activation, D, **kwargs)
        problem.series_degrees()
    return problem


def ball_grid(cells: tuple[int, int, int] = (10, 16, 12), trained: bool = True) -> TensorGrid:
    """a ~ N(1, 0.2²) on [−0.5, 2.5]; s ~ N(0, 1/d) on [−2.5, 2.5], stretched towards s = 0 (scale 1/√d);
    r = sqrt(χ²_9/10) on [0, 3] (the initial law's mass outside < 1e-12, checked by cell_masses)."""
    axes = [GridAxis.stretched("s", -2.5, 2.5, cells[1], 0.1), GridAxis.uniform("r", 0.0, 3.0, cells[2])]
    if trained:
        axes.insert(0, GridAxis.uniform("a", -0.5, 2.5, cells[0]))
    return TensorGrid(axes)


def sphere_grid(cells: tuple[int, int] = (10, 24)) -> TensorGrid:
    return TensorGrid([GridAxis.uniform("a", -0.5, 2.5, cells[0]), GridAxis.uniform("s", -1.0, 1.0, cells[1])])


SINGLE_INDEX_CASES = {
    "asr-he2": (lambda: single_index("he2", second_layer_std=0.2), ball_grid),
    "asr-tanh": (lambda: single_index("tanh", second_layer_std=0.2, truncation_tolerance=1e-3), ball_grid),
    "sr-he2": (lambda: single_index("he2", train_second_layer=False), lambda: ball_grid(trained=False)),
    "sphere-as-he2": (lambda: single_index("he2", sphere=True, second_layer_std=0.2), sphere_grid),
}


@pytest.mark.parametrize("scheme", ["muscl", "upwind"])
@pytest.mark.parametrize("case", list(SINGLE_INDEX_CASES))
def test_single_index_conservation_positivity_dissipation(case: str, scheme: str) -> None:
    make_problem, make_grid = SINGLE_INDEX_CASES[case]
    problem, grid = make_problem(), make_grid()
    times = np.array([0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0])  # output gaps up to 3: dt set by the loop
    rates = {"a": 2.0} if "a" in grid.names else None  # a per-layer learning rate on a
    tr = solve_finite_volume(problem, grid, times, scheme=scheme, rates=rates)
    # telescoping fluxes: the mass changes by round-off only (~1e-16 per step, <= 450 steps); the
    # initial mass is 1 up to the law's tails cut off by the grid (<= 1e-12 per coordinate)
    mass = tr.fields["mass"]
    assert np.max(np.abs(mass / mass[0] - 1.0)) < 1e-13 and abs(mass[0] - 1.0) < 3e-12
    assert tr.diagnostics["mass_error"] < 1e-13
    # positivity under the bound cfl = 0.4 (<= ½ MUSCL, <= 1 upwind) holds exactly (measured min 0.0)
    assert tr.fields["density"].min() >= 0.0
    # R_h is non-increasing at the discrete level: the semi-discrete scheme dissipates it, the time step
    # keeps the O(dt²) defect below the dissipation (interaction rate · dt <= cfl); measured largest
    # single-step changes are negative (−3e-12 … −3e-4); we allow round-off of R (1e-15 · O(10)).
    assert tr.diagnostics["max_risk_increase"] <= 1e-12
    assert np.all(np.diff(tr.risk) <= 1e-12)
    # it learns: the He_2 part of E y² (¼ · 2! = 0.5) is learnable in every case (He_1 = 1 is not for an
    # even σ = He_2); measured drops 0.45 (he2) … 0.96 (tanh)
    assert tr.risk[-1] < tr.risk[0] - 0.4
    assert tr.kind == "pde_finite_volume"
    assert tr.fields["density"].shape == (times.size,) + grid.shape
    for name, axis in zip(grid.names, grid.axes):
        marginal = tr.fields[f"marginal_{name}"]
        assert marginal.shape == (times.size, axis.cells)
        np.testing.assert_allclose(marginal @ axis.widths, mass, rtol=1e-13)  # marginal mass
        np.testing.assert_array_equal(tr.fields[f"{name}_edges"], axis.edges)
    assert tr.config["solver.scheme"] == scheme and tr.config["grid.coordinates"] == list(grid.names)
    assert tr.config["problem"] == problem.config()["problem"]


def test_boundary_faces_mobility_rates_and_schedule_enter_the_velocity() -> None:
    """Face velocities recomputed independently from ψ: u = −2ξ(t) c_d M_d(face) Δψ / Δx_centres,
    with ξ(t) of a schedule, rates c = (3, 1) on (a, s) and the sphere mobility 1 − s² at the face;
    zero on every boundary face (s = ±1 where 1 − s² = 0 too, r = 0 and the outer edges)."""
    problem = single_index("he2", sphere=True, second_layer_std=0.2)
    grid = sphere_grid()
    schedule = LearningRateSchedule(xi0=0.7, alpha=0.5, t0=2.0)
    solver = FiniteVolumeSolver(problem, grid, rates={"a": 3.0}, schedule=schedule)
    solver.advance(0.3)
    xi = float(schedule(solver.time))
    psi = solver.potential()
    velocity_a, velocity_s = solver.face_velocities()
    a_centres, s_centres = grid.centers
    s_faces = grid.edges[1][1:-1]
    expected_a = -2.0 * xi * 3.0 * np.diff(psi, axis=0) / np.diff(a_centres)[:, None]
    expected_s = -2.0 * xi * (1.0 - s_faces**2) * np.diff(psi, axis=1) / np.diff(s_centres)
    scale = np.abs(expected_s).max()
    # same formula, other operation order: a few ulps of the largest velocity (measured 1.6e-16)
    np.testing.assert_allclose(velocity_a[1:-1], expected_a, rtol=0, atol=1e-14 * np.abs(expected_a).max())
    np.testing.assert_allclose(velocity_s[:, 1:-1], expected_s, rtol=0, atol=1e-14 * scale)
    assert np.all(velocity_a[[0, -1]] == 0.0) and np.all(velocity_s[:, [0, -1]] == 0.0)
    assert np.all(problem.mobility(grid.face_points("s"))[:, 1].reshape(10, 25)[:, [0, -1]] == 0.0)
    # the ball: zero velocity through r = 0 while ∂_r ψ there is not zero
    ball = FiniteVolumeSolver(single_index("he2", train_second_layer=False), ball_grid(trained=False))
    velocity_r = ball.face_velocities()[1]
    assert np.all(velocity_r[:, 0] == 0.0) and np.abs(velocity_r[:, 1]).max() > 0.0


def test_interaction_rate_is_the_trace_bound_of_the_nonlocal_operator() -> None:
    """K = 2ξ Σ_f Q_f max(p_i, p_j) (the step bound K dt <= cfl) equals trace(L U), recomputed here with
    dense matrices: L = Σ_f w_f (e_j − e_i)(e_j − e_i)ᵀ, w_f = 2ξ c_d M_d |face| max(p_i, p_j) / distance,
    U = the kernel on masses (all cells); and it bounds the largest eigenvalue of L U (L, U PSD)."""
    problem = single_index("he2", second_layer_std=0.2)
    grid = ball_grid((4, 5, 4))
    solver = FiniteVolumeSolver(problem, grid, rates={"a": 2.0})
    solver.advance(0.2)
    xi = 1.0
    p = solver.density
    kernel = problem.interaction_low_rank(grid.center_points()).dense()
    laplacian = np.zeros((grid.cells, grid.cells))
    index = np.arange(grid.cells).reshape(grid.shape)
    rates = [2.0, 1.0, 1.0]
    for d, axis in enumerate(grid.axes):
        gap = np.diff(axis.centers)
        for cell in np.ndindex(*grid.shape):
            if cell[d] == axis.cells - 1:
                continue
            upper = list(cell)
            upper[d] += 1
            i, j = index[cell], index[tuple(upper)]
            area = grid.volumes[cell] / axis.widths[cell[d]]
            weight = 2 * xi * rates[d] * area * max(p[cell], p[tuple(upper)]) / gap[cell[d]]
            laplacian[[i, j, i, j], [i, j, j, i]] += [weight, weight, -weight, -weight]
    product = laplacian @ kernel
    rate = solver.rates_of_change()["interaction"]
    # the same sums in another order: round-off (S_f by differences of features vs of kernel entries)
    assert rate == pytest.approx(np.trace(product), rel=1e-12)  # measured equal
    eigenvalues = np.linalg.eigvals(product)
    assert np.abs(eigenvalues.imag).max() < 1e-8 * rate and eigenvalues.real.min() > -1e-8 * rate
    assert eigenvalues.real.max() <= rate  # the bound; measured ratio 0.84 (rank 4)


# ------------------------------------------------------------------------------------------------
# interaction paths
# ------------------------------------------------------------------------------------------------
def test_low_rank_dense_and_linear_coordinate_paths_agree() -> None:
    """σ = He_2: the low-rank kernel is exact (truncation bound 0), so every path computes the same ψ
    up to summation-order round-off: low rank on the (s, r) sub-grid (a linear), low rank on all cells,
    ``problem.interaction_kernel`` (Gauss–Jacobi over the cosine, exact for this polynomial) on the
    sub-grid times a a', and an explicit (cells, cells) matrix."""
    problem = single_index("he2", second_layer_std=0.2)
    grid = ball_grid((6, 6, 5))
    linear = FiniteVolumeSolver(problem, grid)
    generic = FiniteVolumeSolver(problem, grid, use_linear_coordinate=False)
    dense = FiniteVolumeSolver(problem, grid, kernel="dense")
    full = problem.interaction_low_rank(grid.center_points()).dense()
    matrix = FiniteVolumeSolver(problem, grid, kernel=full)
    assert linear.linear_coordinate == "a" and generic.linear_coordinate is None
    assert dense.linear_coordinate == "a" and matrix.linear_coordinate is None
    # features on the 6·5 (s, r) sub-grid with a = 1, or on all 6·6·5 cells
    assert linear.interaction_points.shape == (30, 3) and np.all(linear.interaction_points[:, 0] == 1.0)
    assert generic.interaction_points.shape == (180, 3)
    scale = np.abs(linear.potential()).max()
    for other in (generic, dense, matrix):
        # O(10) terms of size O(scale): round-off ~1e-15 · scale (measured <= 2e-15)
        np.testing.assert_allclose(other.potential(), linear.potential(), rtol=0, atol=1e-13 * scale)
        assert other.discrete_risk() == pytest.approx(linear.discrete_risk(), rel=1e-13)
    for solver in (linear, generic, dense, matrix):
        solver.advance(1.0)
    for other in (generic, dense, matrix):
        # round-off differences stay round-off over 128 steps (stable scheme; the minmod switch can
        # amplify a 1e-16 difference only where two slopes agree to 1e-16); measured <= 7e-15
        np.testing.assert_allclose(other.density, linear.density, rtol=0,
                                   atol=1e-13 * linear.density.max())
        assert other.steps == linear.steps


def test_low_rank_potential_within_its_truncation_bound() -> None:
    """ReLU (no finite expansion) at truncation tolerance 1e-3: the low-rank ψ differs from the pairwise
    reference (``problem.interaction_kernel``) by at most ``|a_i| b_i Σ_j |a_j| b_j m_j`` (the proven
    bound ``|u − u_KJ| <= b b'`` on the sub-grid, with u = a a' u(y, y')), plus round-off; and it is
    not trivially equal (measured difference/bound 0.13–0.75 where a ≠ 0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problem = single_index("relu", second_layer_std=0.2, truncation_tolerance=1e-3)
    grid = ball_grid((3, 4, 3))
    low = FiniteVolumeSolver(problem, grid)
    dense = FiniteVolumeSolver(problem, grid, kernel="dense")
    bound_other = problem.interaction_low_rank(low.interaction_points).truncation_bound  # b on the sub-grid
    a_values = grid.center_points()[:, 0]  # a is axis 0: flat cell = i_a · (sub-grid size) + sub-grid index
    b = np.abs(a_values) * bound_other[np.arange(grid.cells) % bound_other.size]
    bound = b * float(b @ low.masses.ravel())
    difference = np.abs(low.potential() - dense.potential()).ravel()
    # round-off of ψ (|ψ| ~ 1, ~10² terms): 1e-13
    assert np.all(difference <= bound + 1e-13), np.max(difference - bound)
    assert difference.max() > 0.1 * bound.max()  # the paths do differ: the bound is not vacuous


def test_uniform_grid_1d_is_the_single_axis_tensor_grid() -> None:
    """MMN18 (r,): a UniformGrid1D is the convenience form of the one-axis TensorGrid named after the
    problem's coordinate: the same edges bit for bit, so the same steps and densities bit for bit; it
    is refused for a problem with several coordinates."""
    problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, 40), "mmn18", kappa=0.4)
    for scheme in ("upwind", "muscl"):
        one = FiniteVolumeSolver(problem, UniformGrid1D(0.0, 4.0, 200), scheme=scheme)
        many = FiniteVolumeSolver(problem, TensorGrid.uniform(r=(0.0, 4.0, 200)), scheme=scheme)
        assert one.grid.names == ("r",) and one.density.shape == (200,)
        np.testing.assert_array_equal(one.grid.edges[0], many.grid.edges[0])
        for horizon in (0.5, 2.0):
            one.advance(horizon)
            many.advance(horizon)
            assert many.steps == one.steps
            np.testing.assert_array_equal(many.density, one.density)
    with pytest.raises(ValueError, match=r"is one-dimensional but the problem has coordinates \['a', 's', 'r'\]"):
        FiniteVolumeSolver(single_index("he2", second_layer_std=0.2), UniformGrid1D(0.0, 1.0, 10))


# ------------------------------------------------------------------------------------------------
# checkpoint / resume
# ------------------------------------------------------------------------------------------------
def test_checkpoint_resume_is_bitwise(tmp_path) -> None:
    problem = single_index("he2", second_layer_std=0.2)
    grid = ball_grid((6, 8, 6))
    straight = FiniteVolumeSolver(problem, grid, rates={"a": 2.0})
    straight.advance(0.3)
    first = FiniteVolumeSolver(problem, grid, rates={"a": 2.0})
    first.advance(0.3)
    assert first.time == 0.3  # output times are hit exactly
    resumed = FiniteVolumeSolver.from_state(problem, grid, first.state(), rates={"a": 2.0})
    straight.advance(1.0)
    resumed.advance(1.0)
    assert resumed.time == straight.time == 1.0 and resumed.steps == straight.steps
    np.testing.assert_array_equal(resumed.density, straight.density)
    assert resumed.max_risk_increase == straight.max_risk_increase
    # through the runner and an HDF5 checkpoint: stop after the first output, resume to the end
    times = np.array([0.2, 0.6, 1.0])
    # reduced_pde.running.storage cannot yet write lists of strings as HDF5 attributes (reported): leave the
    # coordinate lists out of the stored configuration
    config = {key: value for key, value in {**problem.config(), **straight.config()}.items()
              if not (isinstance(value, list) and value and isinstance(value[0], str))}
    path = tmp_path / "nd.checkpoint"
    whole = run_simulation(FiniteVolumeSolver(problem, grid), times, kind="pde_finite_volume",
                           config=config)
    run_simulation(FiniteVolumeSolver(problem, grid), times[:1], kind="pde_finite_volume",
                   config=config, checkpoint=CheckpointFile(path))
    rest = run_simulation(FiniteVolumeSolver(problem, grid), times, kind="pde_finite_volume",
                          config=config, checkpoint=CheckpointFile(path), resume=True)
    np.testing.assert_array_equal(rest.fields["density"], whole.fields["density"])
    np.testing.assert_array_equal(rest.risk, whole.risk)
    assert rest.diagnostics["steps"] == whole.diagnostics["steps"]


# ------------------------------------------------------------------------------------------------
# errors and validation
# ------------------------------------------------------------------------------------------------
def test_nan_and_negative_density_stop_with_time_and_place() -> None:
    """Cell 199 = index (12, 7) sits where the velocity points to +x0 and +x1: with upwind fluxes a bad
    value there spreads only to cells of larger flat index, so it is the first bad cell found."""
    case = AFFINE_2D
    grid = affine_grid(case, 16, False)
    bad = grid.center_points()[199]
    assert bad[0] * 0.4 + bad[1] * 0.3 + 0.2 > 0 and 0.3 * bad[0] - 0.5 * bad[1] - 0.1 > 0
    problem = AffineVelocityProblem(case["matrix"], case["shift"], case["mean"], case["std"], ("x0", "x1"),
                                    nan_at=bad)
    with pytest.raises(ValueError, match=r"problem\.reduced_potential is not finite \(entry 199"):
        FiniteVolumeSolver(problem, grid)  # inputs are checked once, before the loop
    good = AffineVelocityProblem(case["matrix"], case["shift"], case["mean"], case["std"], ("x0", "x1"))
    solver = FiniteVolumeSolver(good, grid, scheme="upwind")
    where = rf"cell 199 \(index \(12, 7\): x0 = {bad[0]:.6g}, x1 = {bad[1]:.6g}\)"
    state = solver.state()
    state["density"][12, 7] = -1e-3  # a corrupted checkpoint: the loop must refuse to continue
    solver.set_state(state)
    with pytest.raises(SolverError, match=rf"density became negative \(-0\.000\d+\) in {where} at t = 0\.\d+ "
                                          r"\(state kept at t = 0\)"):
        solver.advance(0.5)
    assert solver.time == 0.0  # the state is kept at the last valid time
    state["density"][12, 7] = np.nan
    solver.set_state(state)
    with pytest.raises(SolverError, match=rf"non-finite \(nan\) in {where} at t = 0\.\d+ \(state kept at t = 0\)"):
        solver.advance(0.5)
    assert solver.time == 0.0


def test_bad_inputs_are_refused() -> None:
    problem = single_index("he2", second_layer_std=0.2)
    grid = ball_grid((4, 6, 5))
    with pytest.raises(ValueError, match=r"solver\.cfl = 0\.6 must lie in \(0, 0\.5\]"):
        FiniteVolumeSolver(problem, grid, scheme="muscl", cfl=0.6)
    FiniteVolumeSolver(problem, grid, scheme="upwind", cfl=0.9)  # upwind/Euler: bound 1
    with pytest.raises(ValueError, match=r"solver\.cfl = 1\.1 must lie in \(0, 1\]"):
        FiniteVolumeSolver(problem, grid, scheme="upwind", cfl=1.1)
    with pytest.raises(ValueError, match=r"grid axes \['s', 'r'\] must equal the problem's coordinates"):
        FiniteVolumeSolver(problem, ball_grid(trained=False))
    swapped = TensorGrid([grid.axes[1], grid.axes[0], grid.axes[2]])
    with pytest.raises(ValueError, match=r"grid axes \['s', 'a', 'r'\] must equal"):
        FiniteVolumeSolver(problem, swapped)
    with pytest.raises(ValueError, match="solver.scheme"):
        FiniteVolumeSolver(problem, grid, scheme="weno")
    with pytest.raises(ValueError, match="solver.time_stepper"):
        FiniteVolumeSolver(problem, grid, time_stepper="rk4")
    with pytest.raises(ValueError, match=r"solver\.rates: unknown coordinate\(s\) \['b'\]"):
        FiniteVolumeSolver(problem, grid, rates={"b": 2.0})
    with pytest.raises(ValueError, match=r"solver\.rates\.a = -1"):
        FiniteVolumeSolver(problem, grid, rates=[-1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"solver\.kernel matrix must be finite with shape \(120, 120\) "
                                         r"or \(30, 30\)"):
        FiniteVolumeSolver(problem, grid, kernel=np.eye(7))
    with pytest.raises(ValueError, match="solver.kernel"):
        FiniteVolumeSolver(problem, grid, kernel="fft")
    with pytest.raises(ValueError, match=r"initial_density has shape \(120,\), expected \(4, 6, 5\)"):
        FiniteVolumeSolver(problem, grid, initial_density=np.ones(120))
    with pytest.raises(ValueError, match="solver.max_dt"):
        FiniteVolumeSolver(problem, grid, max_dt=0.0)
    with pytest.raises(ValueError, match=r"grid\.r = \[0, 1\] cuts off"):  # the grid must hold the law
        FiniteVolumeSolver(problem, TensorGrid([grid.axes[0], grid.axes[1], GridAxis.uniform("r", 0, 1, 5)]))
    with pytest.raises(ValueError, match=r"strictly increasing: output_times\[2\] = 0\.5"):
        solve_finite_volume(problem, grid, [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="state density has shape"):
        FiniteVolumeSolver(problem, grid).set_state({"time": 0.0, "density": np.ones(120)})
    with pytest.raises(TypeError, match="grid must be a TensorGrid"):
        FiniteVolumeSolver(problem, [(0.0, 1.0, 10)])
    with pytest.raises(ValueError, match=r"grid\.r = \[-0\.5, 3\] must lie in the domain \[0, inf\] of coordinate r"):
        FiniteVolumeSolver(problem, TensorGrid([grid.axes[0], grid.axes[1], GridAxis.uniform("r", -0.5, 3, 5)]))
    with pytest.raises(ValueError, match=r"grid\.r = \[0\.5, 3\] must lie in the domain \[0, inf\] .* reach its finite ends"):
        FiniteVolumeSolver(problem, TensorGrid([grid.axes[0], grid.axes[1], GridAxis.uniform("r", 0.5, 3, 5)]))


def test_tensor_grid_geometry_config_and_validation() -> None:
    grid = TensorGrid([GridAxis.uniform("a", -1.0, 3.0, 8),
                       GridAxis.stretched("s", -1.0, 1.0, 40, 0.01, center=0.0),
                       GridAxis.from_edges("r", [0.0, 0.1, 0.3, 0.7, 1.5])])
    assert grid.names == ("a", "s", "r") and grid.shape == (8, 40, 4) and grid.cells == 1280
    assert grid.volumes.shape == grid.shape
    assert grid.volumes.sum() == pytest.approx(4.0 * 2.0 * 1.5, rel=1e-14)  # box volume, round-off
    points = grid.center_points()
    assert points.shape == (1280, 3)
    np.testing.assert_array_equal(points[1], [grid.centers[0][0], grid.centers[1][0], grid.centers[2][1]])  # C order
    assert grid.describe_cell(1).startswith("cell 1 (index (0, 0, 1): a = -0.75")
    faces = grid.face_points("s")
    assert faces.shape == (8 * 41 * 4, 3) and faces[:, 1].min() == -1.0 and faces[:, 1].max() == 1.0
    assert grid.face_points(1, interior=True).shape == (8 * 39 * 4, 3)
    # stretched: every cell >= min_spacing (x' = w cosh ζ >= w), the finest within O(Δζ²) of it;
    # symmetric about the centre; widths grow monotonically away from it, to far above uniform (0.05)
    widths = grid.axis("s").widths
    assert widths.min() >= 0.01 * (1 - 1e-12) and widths.min() < 0.0101
    np.testing.assert_allclose(widths, widths[::-1], rtol=1e-10)
    assert np.all(np.diff(widths[20:]) > 0) and widths.max() > 0.1
    # configuration round trips (flat attributes and the [grid] table), edges bitwise
    for rebuilt in (TensorGrid.from_config(grid.config()), TensorGrid.from_table(grid.table(), grid.names)):
        assert rebuilt.names == grid.names
        for axis, other in zip(grid.axes, rebuilt.axes):
            np.testing.assert_array_equal(axis.edges, other.edges)
            assert axis.spacing == other.spacing
    table = {"s": {"lower": -1.5, "upper": 1.5, "cells": 60, "spacing": "stretched", "min_spacing": 0.01},
             "a": {"lower": -1.0, "upper": 3.0, "cells": 40}}
    assert TensorGrid.from_table(table, ("a", "s")).shape == (40, 60)
    # errors name the field
    with pytest.raises(ValueError, match=r"grid\.r\.edges must be strictly increasing: edges\[2\] = 0\.1"):
        GridAxis.from_edges("r", [0.0, 0.1, 0.1, 0.5])
    with pytest.raises(ValueError, match=r"grid\.a\.cells = 1 must be an integer >= 2"):
        GridAxis.uniform("a", 0.0, 1.0, 1)
    with pytest.raises(ValueError, match=r"grid\.a\.upper = 0\.0 must be > grid\.a\.lower = 1\.0"):
        GridAxis.uniform("a", 1.0, 0.0, 4)
    with pytest.raises(ValueError, match=r"grid\.s\.min_spacing = 0\.2 must lie in \(0, 0\.05\)"):
        GridAxis.stretched("s", -1.0, 1.0, 40, 0.2)
    with pytest.raises(ValueError, match=r"grid\.s\.center = 2\.0 must lie in"):
        GridAxis.stretched("s", -1.0, 1.0, 40, 0.01, center=2.0)
    with pytest.raises(ValueError, match=r"grid\.s: unknown key\(s\) \['step'\]"):
        TensorGrid.from_table({"s": {"lower": 0.0, "upper": 1.0, "cells": 4, "step": 2}})
    with pytest.raises(ValueError, match=r"grid: no table for coordinate\(s\) \['r'\]"):
        TensorGrid.from_table({"s": {"lower": 0.0, "upper": 1.0, "cells": 4}}, ("s", "r"))
    with pytest.raises(ValueError, match=r"grid axis names \['s', 's'\] must be distinct"):
        TensorGrid([GridAxis.uniform("s", 0, 1, 4), GridAxis.uniform("s", 0, 1, 4)])
    with pytest.raises(ValueError, match="1 to 3 axes"):
        TensorGrid([GridAxis.uniform(f"x{d}", 0, 1, 2) for d in range(4)])


def test_observables_are_consistent_with_the_density() -> None:
    problem = single_index("he2", second_layer_std=0.2)
    grid = ball_grid((6, 8, 6))
    solver = FiniteVolumeSolver(problem, grid)
    solver.advance(0.5)
    obs = solver.observables()
    masses = solver.masses
    assert obs["mass"] == pytest.approx(solver.initial_mass, rel=1e-14)
    for d, name in enumerate(grid.names):
        coordinate = np.broadcast_to(np.expand_dims(grid.centers[d], [k for k in range(3) if k != d]),
                                     grid.shape)
        mean = float((coordinate * masses).sum() / masses.sum())
        std = math.sqrt(float(((coordinate - mean) ** 2 * masses).sum() / masses.sum()))
        assert obs[f"mean_{name}"] == pytest.approx(mean, rel=1e-13)  # summation order only
        assert obs[f"std_{name}"] == pytest.approx(std, rel=1e-12)
        np.testing.assert_allclose(obs[f"marginal_{name}"] * grid.widths[d],
                                   masses.sum(axis=tuple(k for k in range(3) if k != d)), rtol=1e-14)
    assert solver.coordinate_names == problem.coordinate_names  # one mean/std per coordinate, no summary
    sphere = FiniteVolumeSolver(single_index("he2", sphere=True, second_layer_std=0.2), sphere_grid())
    sphere_obs = sphere.observables()
    assert "mean_r" not in sphere_obs and {"mean_a", "std_a", "mean_s", "std_s"} <= set(sphere_obs)
    # R_h equals the problem's risk of the cell-centre law (same features, another summation order)
    # measured 4e-16
    assert obs["risk"] == pytest.approx(problem.risk(grid.center_points(), masses.ravel()), rel=1e-13)
    np.testing.assert_array_equal(obs["density"], solver.density)
    diagnostics = solver.diagnostics()
    assert diagnostics["steps"] == solver.steps > 0 and diagnostics["cells"] == grid.cells
    assert math.isfinite(diagnostics["time_per_step"])
