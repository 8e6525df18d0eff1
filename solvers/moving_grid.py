"""A finite-volume grid that moves affinely with the law between remaps (arbitrary Lagrangian–Eulerian,
``grid.adapt = "move"``), for one-coordinate noiseless problems.

Why.  With the window of ``grid.adapt = "remap"`` (:mod:`solvers.adaptive_grid`) the cells are fixed
between remaps, so a narrow law that travels fast pays the Courant bound ``dt <= cfl h / |u|`` of its
absolute speed (MMN18 at d = 320: speed ~6 on a law of width ~0.01, 2/3 of the steps).  The part of u
that is not affine over the law is 10–1000× smaller than |u| (README, "Grids that follow the law");
a grid that follows the affine part only sees that rest.

Moving cells.  The window's ``N`` equal cells are ``x = a(t) + b(t) ξ`` on the fixed reference cells
``ξ ∈ [0, 1]`` (edges ``ξ_f = f/N``, centres ``ξ_i = (i + ½)/N``), ``b > 0``.  The grid velocity is
affine, ``w(x) = ȧ + (ḃ/b)(x − a)``, and ``∂_x w = ḃ/b``.  For the equation of
:mod:`solvers.finite_volume` in one coordinate, ``∂_t ρ + ∂_x(ρ u) = 0`` with
``u = −2ξ(t) c M(x) ∂_x ψ(x; ρ)``, the mass per unit ξ, ``ρ̃(ξ, t) = b ρ(a + bξ, t)``, satisfies
(at fixed ξ, ``d/dt = ∂_t + w ∂_x``)::

    ∂_t ρ̃ = ḃ ρ + b (∂_t ρ + w ∂_x ρ) = ḃ ρ + b (−∂_x(ρ u) + ∂_x(ρ w) − ρ ∂_x w)
          = −b ∂_x(ρ (u − w)) = −∂_ξ( ρ̃ ũ ),      ũ = (u − w)/b,

a continuity equation on the fixed ξ-grid with the relative velocity (in ξ units).  Its flux through a
face, ``ρ̃ ũ = ρ (u − w)`` evaluated at the moving face ``x_f = a + b ξ_f``, is mass per unit time: the
cell masses ``m_i = ∫_{cell i} ρ̃ dξ`` (= the mass in the moving cell) obey
``dm_i/dt = −(F_{i+½} − F_{i−½})``, ``F = ρ (u − w)``, and a grid moving with u (``w = u``, an affine
flow) leaves every m_i unchanged exactly (the discrete geometric conservation law holds trivially:
nothing but m, a, b is evolved).

Discretisation (the MUSCL/upwind scheme of :mod:`solvers.finite_volume` on the moving cells, width
``h = b/N``, physical density ``p_i = m_i/h``):

* ``ψ_i = v(x_i) + Σ_k λ_k g_k(x_i) M_k``, ``M_k = Σ_j g_k(x_j) m_j`` at the moving centres
  ``x_i = a + b ξ_i``;
* face velocity ``u_f = −2ξ(t) c M(x_f) (ψ_{i+1} − ψ_i)/h``; relative velocity ``u_f − w(x_f)``;
  upwind flux ``F_f = (u_f − w_f)⁺ p^E_i + (u_f − w_f)⁻ p^W_{i+1}`` with the minmod reconstruction of
  p (zero slope in the end cells); zero flux through the window's two end faces (they move with the
  grid; the tail beyond them held ≤ τ of the mass at the last remap, as for ``"remap"``).
* Grid velocity: the mass-weighted least-squares affine fit of the centre velocities of the
  gradient, ``G_i = −2ξ c ψ_h'(x_i)`` (ψ_h' the exact derivative of the interpolated v and g_k at
  the centre; for a mobility M ≢ 1 the grid follows the gradient, the flux carries M):
  ``w = argmin_{affine} Σ_i m_i (G_i − w(x_i))²``, ``ȧ = w(a)``, ``ḃ = w(a + b) − w(a)``.
  A window end that sits on an outer bound (after a remap clipped it there) is *pinned*: the fit is
  over the affine functions vanishing there (both ends pinned: w = 0, the remap-only grid).

When the grid moves.  Where the law is not carried by an affine flow (it splits, or part of it stays
while the rest travels), an affine grid velocity drags the parts it does not fit through the cells,
and their numerical diffusion can exceed that of a still grid (MMN18, κ = 0.1, t ∈ [0.1, 1]: a
sharp lump stays near r ≈ 0.09 while 90 % of the mass spreads to r ≈ 1.7; moving there raised the
error at t = 1 from 2.4e-2 to 0.5 at 400 cells).  So at the start of every step the non-affine share
``q = (Σ m (G − w)² / Σ m G²)^½`` decides: the grid moves when ``q <= AFFINE_SHARE`` (= 0.1), else it
stands still for that step (w = 0: the remap-only grid); the later stages keep the decision.

Mass is conserved to round-off (every flux leaves one cell and enters its neighbour), and a forward
Euler step keeps ``m >= 0`` when ``dt C <= B`` (``C = max_i ((u−w)⁺_{i+½} + (u−w)⁻_{i−½})/h`` the Courant
rate of the *relative* velocity, B = ½ MUSCL, 1 upwind) — the argument of the fixed grid on the fixed
ξ-cells.  ``b`` stays > 0 when ``dt |ḃ/b| < 1``.

Risk.  ``R_h = E y² + 2 Σ v(x_i) m_i + Σ_k λ_k M_k²`` (interpolated v, g_k).  Semi-discretely, with the
chain rule at the moving centres (ẋ_i = w(x_i)),

    dR_h/dt = 2 Σ_i ψ_i ṁ_i + 2 Σ_i m_i ψ_h'(x_i) w(x_i)
            = −(1/(ξc)) [ Σ_f (h/M_f) F_f u_f + Σ_i m_i w(x_i)² ],

because ``Σ_i m_i G_i w_i = Σ_i m_i w_i²`` (w is the m-weighted orthogonal projection of G onto a
linear space of affine functions that contains w itself).  Writing ``u (u − w) = (u − w)² + w (u − w)``
and using ``Σ_i m_i w_i (G_i − w_i) = 0`` (the same projection), the bracket is

    Σ_f (h/M_f) p̂_f (u_f − w_f)² + Σ_i m_i w_i²
        + [ Σ_f (h/M_f) p̂_f w_f (u_f − w_f) − Σ_i m_i w_i (G_i − w_i) ]:

two sums of squares (≥ 0) and the difference of a face and a centre quadrature of the same quantity,
``ρ w (u − w)/M`` (for M ≡ 1, where ``G = u/M`` at the centres), which is proportional to the
non-affine rest u − w and vanishes with it (an affine flow: the masses do not change).  So R_h
decreases between remaps up to that quadrature difference and the O(dt²) of the time stepping; the
compiled loop records the largest single-step increase (``max_risk_increase``).  A still grid (w = 0)
is the fixed grid's exact balance.

Time step (``dt = min`` of)::

    cfl / max(C, K, K_L, |ḃ/b|),     sqrt(2 cfl h / A),    ½ (distance of a free end to its bound)/|w_end|

* ``C``: the Courant rate of the relative velocity (positivity);
* ``K = 2ξ Σ_f c M_f S_f max(p_i, p_{i+1})/h``, ``S_f = Σ_k |λ_k| (g_k(x_{i+1}) − g_k(x_i))²``: the
  nonlocal coupling of the fluxes (:mod:`solvers.finite_volume`), and ``K_L = 2ξ c Σ_i m_i Σ_k |λ_k|
  g_k'(x_i)²``, the same trace bound for the coupling through the moving centres (the linearised
  particle system ``ẋ_i = −2ξ c ψ'(x_i)``);
* ``|ḃ/b|``: the dilation rate (b > 0; the stiffness of the characteristics, the mass-weighted mean of
  ∂_x u);
* the *stage rate* of (ȧ, ḃ): ``A = max_{ends} |w_n − w_{n−1}| / dt_{n−1}``, the acceleration of the
  window's ends between the starts of the last two steps.  An explicit step moves the grid with a
  velocity that is wrong by ``≈ A dt²/2`` (Euler vs. the exact path); the bound keeps that below
  ``cfl`` cells, the same accuracy the Courant bound gives a fixed grid.  On the first step after a
  start or a remap (A unknown) the fixed grid's bound ``cfl h / max_ends |w|`` is used;
* a free window end moving towards its outer bound covers at most half the distance per step; within
  one cell of it the loop returns for a remap (which clips the window there and pins that end).

With an explicit step of order k the grid's path carries a global error ∝ dt^k with dt ∝ h^½ from
the stage-rate bound, i.e. O(h^{k/2}): the default time stepper with ``"move"`` is therefore SSP-RK3
for the steps in which the grid moves (order 3/2 in h on the exact moving and narrowing law,
``tests/test_moving_grid.py``; SSP-RK2 is first order there; forward Euler, O(h^½), is refused) and
the fixed grid's default (SSP-RK2 for MUSCL, Euler for upwind) for the steps in which it stands still (recorded as
``solver.time_stepper = "ssprk3"``); a ``time_stepper`` given explicitly serves every step.
SSP-RK2/RK3 advance ``(m, a, b)`` together (convex combinations of Euler steps); a later stage whose
Courant rate or dilation rate times dt exceeds B is re-taken with ``dt ← dt · cfl / (stage rate · dt)``,
and a step that would carry a free end past its outer bound with dt/2.

Moving points.  v, v', g_k, g_k' and the mobility are needed at points that move inside the compiled
loop.  They are tabulated once, from the problem's own functions (``reduced_potential``,
``reduced_potential_gradient``, ``interaction_low_rank``, ``interaction_features_gradient``,
``mobility``), on :data:`TABLE_INTERVALS` equal intervals of the outer axis, and interpolated by cubic
Hermite polynomials (values and derivatives at the nodes; the mobility's node derivatives by
second-order differences of its table).  For f ∈ C⁴ on an interval of width H the Hermite interpolant
satisfies ``|f − H f| <= H⁴/384 · max |f⁗|`` (:meth:`HermiteTable.error_bounds` estimates max|f⁗| per
function by third differences of the tabulated f'), and the risk computed with the interpolated
functions differs from the exact midpoint risk by at most ``2 ε_v + Σ_k |λ_k| (2|M_k| ε_k + ε_k²)``
for a unit mass (:func:`interpolated_risk_bound`) — for MMN18 at d = 320 on [0, 4]: ε ≤ 2.7e-11,
risk bound 3e-12 (the derivatives: ``√3/216 H³ max|f⁗|``, 1.3e-7 measured near r ≈ 0.3; they move the
grid and enter K_L, not the fluxes).

Remaps.  The remap of ``"remap"`` (law window, conservative MUSCL integration, triggers) runs when the
law's core leaves the guards of its ξ-cells, narrows, or a free end reaches its outer bound; after it
``a, b`` are the new window's ends.  Resume: the state holds ``m``, ``a``, ``b`` and the last step's
end velocities and dt (bitwise).
"""

from __future__ import annotations

import math
import time as wallclock
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from solvers.adaptive_grid import RemapPolicy, core_cells, minmod

__all__ = ["MOVE_MODE", "TABLE_INTERVALS", "HermiteTable", "MovePolicy", "MovingGridSolver", "hermite_evaluate",
           "interpolated_risk_bound", "tabulate_problem"]

MOVE_MODE = "move"
#: the grid moves while the non-affine share of the gradient velocity over the law,
#: ``(Σ m (G − w)² / Σ m G²)^½``, is at most this (module docstring, "When the grid moves")
AFFINE_SHARE = 0.1
#: equal intervals of the Hermite tables over the outer axis (H = (upper − lower)/TABLE_INTERVALS)
TABLE_INTERVALS = 8192

# status codes of the compiled loops (those of solvers.finite_volume)
_OK, _NONFINITE, _NEGATIVE, _MAX_STEPS, _DT_UNDERFLOW, _REMAP = 0, 1, 2, 3, 4, 5
_NEGATIVE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class MovePolicy(RemapPolicy):
    """``grid.adapt = "move"``: the window of :class:`~solvers.adaptive_grid.RemapPolicy` (same ``tail``,
    ``margin``, ``narrowing``, same remaps), moving affinely with the law between remaps (module
    docstring)."""

    def config(self) -> dict[str, Any]:
        return {**super().config(), "grid.adapt": MOVE_MODE}


# ------------------------------------------------------------------------------------------------
# cubic Hermite tables
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HermiteTable:
    """Values ``values[f, j] = f(x_j)`` and scaled derivatives ``slopes[f, j] = H f'(x_j)`` of F functions
    at the nodes ``x_j = lower + j H`` (j = 0 … T), H = (upper − lower)/T."""

    lower: float
    upper: float
    values: np.ndarray  # (F, T + 1)
    slopes: np.ndarray  # (F, T + 1)

    @property
    def intervals(self) -> int:
        return int(self.values.shape[1] - 1)

    @property
    def step(self) -> float:
        return (self.upper - self.lower) / self.intervals

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interpolated values and derivatives, each (F, len(x))."""
        x = np.ascontiguousarray(x, dtype=float)
        value = np.empty((self.values.shape[0], x.size))
        derivative = np.empty_like(value)
        for f in range(self.values.shape[0]):
            for i in range(x.size):
                value[f, i], derivative[f, i] = hermite_evaluate(self.values, self.slopes, f, self.lower,
                                                                 1.0 / self.step, self.intervals, x[i])
        return value, derivative

    def error_bounds(self) -> np.ndarray:
        """Per function, ``H⁴/384 · max|f⁗|`` with max|f⁗| estimated by the largest third difference of
        the tabulated derivative, ``|Δ³f'|/H³`` (one-sided at no point: interior nodes only)."""
        return self.step**4 / 384.0 * self._fourth_derivative()

    def derivative_error_bounds(self) -> np.ndarray:
        """Per function, ``|f' − (Hf)'| <= √3/216 · H³ max|f⁗|`` (same estimate of max|f⁗|).  The fluxes
        use values only (ψ differences); the derivative enters the grid velocity's fit and K_L."""
        return math.sqrt(3.0) / 216.0 * self.step**3 * self._fourth_derivative()

    def _fourth_derivative(self) -> np.ndarray:
        derivative = self.slopes / self.step
        return (np.abs(np.diff(derivative, n=3, axis=1)) / self.step**3).max(axis=1)


@njit(cache=True)
def hermite_evaluate(values, slopes, row, lower, inv_step, intervals, x):
    """``(f(x), f'(x))`` of the cubic Hermite interpolant of row ``row`` (values and H·derivatives at the
    nodes); outside ``[lower, upper]`` the end cubic is extended."""
    s = (x - lower) * inv_step
    j = int(math.floor(s))
    if j < 0:
        j = 0
    elif j > intervals - 1:
        j = intervals - 1
    theta = s - j
    one = 1.0 - theta
    f0 = values[row, j]
    f1 = values[row, j + 1]
    d0 = slopes[row, j]
    d1 = slopes[row, j + 1]
    value = (1.0 + 2.0 * theta) * one * one * f0 + theta * one * one * d0 + theta * theta * (3.0 - 2.0 * theta) * f1 \
        - theta * theta * one * d1
    derivative = (6.0 * theta * (theta - 1.0) * (f0 - f1) + (3.0 * theta * theta - 4.0 * theta + 1.0) * d0
                  + (3.0 * theta * theta - 2.0 * theta) * d1) * inv_step
    return value, derivative


def tabulate_problem(problem: Any, lower: float, upper: float,
                     intervals: int = TABLE_INTERVALS) -> tuple[HermiteTable, HermiteTable, np.ndarray]:
    """Hermite tables of a one-coordinate problem on ``[lower, upper]``: ``(functions, mobility,
    weights)`` with the rows of ``functions`` = (v, g_1, …, g_K) and ``weights`` = (λ_k), all from the
    problem's own methods on the nodes (module docstring)."""
    nodes = np.linspace(lower, upper, intervals + 1)
    step = (upper - lower) / intervals
    low_rank = problem.interaction_low_rank(nodes)
    rank = low_rank.rank
    values = np.vstack([np.asarray(problem.reduced_potential(nodes), float).reshape(1, -1),
                        np.asarray(low_rank.features, float).reshape(rank, nodes.size)])
    gradients = np.vstack([np.asarray(problem.reduced_potential_gradient(nodes), float).reshape(1, -1),
                           np.asarray(problem.interaction_features_gradient(nodes), float).reshape(rank, nodes.size)])
    mobility = np.asarray(problem.mobility(nodes), float)[:, 0].reshape(1, -1)
    for name, array in (("reduced potential / features", values), ("their gradients", gradients),
                        ("mobility", mobility)):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"grid.adapt = 'move': the problem's {name} are not finite on the outer axis "
                             f"[{lower:g}, {upper:g}] (tabulated at {intervals + 1} nodes)")
    mobility_slopes = np.gradient(mobility, step, axis=1, edge_order=2) * step
    functions = HermiteTable(float(lower), float(upper), np.ascontiguousarray(values),
                             np.ascontiguousarray(gradients * step))
    return (functions, HermiteTable(float(lower), float(upper), np.ascontiguousarray(mobility),
                                    np.ascontiguousarray(mobility_slopes)),
            np.ascontiguousarray(np.asarray(low_rank.weights, float)))


def interpolated_risk_bound(error_bounds: np.ndarray, weights: np.ndarray, moments: np.ndarray,
                            mass: float = 1.0) -> float:
    """``|R_h(interpolated) − R_h(exact)| <= 2 ε_v m + Σ_k |λ_k| (2 |M_k| ε_k m + ε_k² m²)`` for
    ``error_bounds = (ε_v, ε_1, …)``, the moments ``M_k`` and the total mass m."""
    eps = np.asarray(error_bounds, float)
    return float(2.0 * eps[0] * mass + np.sum(np.abs(weights) * (2.0 * np.abs(moments) * eps[1:] * mass
                                                                 + (eps[1:] * mass) ** 2)))


# ------------------------------------------------------------------------------------------------
# compiled kernels
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def _interpolate_centres(a, h, n, rank, values, slopes, tab_lower, tab_inv, tab_n, weights, feats, dfeats, v_here,
                         dv_here, stiffness):
    """v, v', g_k, g_k' at the centres ``a + (i + ½) h`` from the node-major Hermite tables (one basis per
    point serves every row), and ``S_f = Σ_k |λ_k| (g_k(x_{f}) − g_k(x_{f−1}))²`` of the interior faces."""
    for i in range(n):
        s = (a + (i + 0.5) * h - tab_lower) * tab_inv
        j = min(max(int(math.floor(s)), 0), tab_n - 1)
        theta = s - j
        one = 1.0 - theta
        c0 = (1.0 + 2.0 * theta) * one * one
        c1 = theta * one * one
        c2 = theta * theta * (3.0 - 2.0 * theta)
        c3 = -theta * theta * one
        e0 = 6.0 * theta * (theta - 1.0) * tab_inv
        e1 = (3.0 * theta * theta - 4.0 * theta + 1.0) * tab_inv
        e3 = (3.0 * theta * theta - 2.0 * theta) * tab_inv
        val = c0 * values[j, 0] + c1 * slopes[j, 0] + c2 * values[j + 1, 0] + c3 * slopes[j + 1, 0]
        v_here[i] = val
        dv_here[i] = e0 * (values[j, 0] - values[j + 1, 0]) + e1 * slopes[j, 0] + e3 * slopes[j + 1, 0]
        for k in range(rank):
            f0 = values[j, k + 1]
            f1 = values[j + 1, k + 1]
            d0 = slopes[j, k + 1]
            d1 = slopes[j + 1, k + 1]
            feats[k, i] = c0 * f0 + c1 * d0 + c2 * f1 + c3 * d1
            dfeats[k, i] = e0 * (f0 - f1) + e1 * d0 + e3 * d1
    for f in range(1, n):
        acc = 0.0
        for k in range(rank):
            jump = feats[k, f] - feats[k, f - 1]
            acc += abs(weights[k]) * jump * jump
        stiffness[f] = acc


@njit(cache=True)
def _ale_rates(m, a, b, speed, rate_factor, tables, frame, fields, out_rate, mode, threshold):
    """Fields of the state (m, a, b) at speed ``−2ξ(t)``: ``dm/dt`` into ``out_rate``; returns
    ``(courant, coupling, dilation, energy, adot, bdot, moving)`` (module docstring; energy = R_h − E y²,
    coupling = max(K, K_L), dilation = |ḃ/b|); the Courant rate is NaN if a velocity is NaN.
    ``mode`` 0: the grid moves when the non-affine share ``q = (Σ m (G − w)² / Σ m G²)^½`` is
    ``<= threshold`` (``moving`` = 1), else it stands still (w = 0, ``moving`` = 2); modes 1 and 2 force
    the decision (the later stages of a step keep the first stage's).  ``tables`` = (node values,
    node slopes, mobility values, mobility slopes, constant mobility or NaN, table lower end, 1/H, T,
    λ_k); ``frame`` = (pinned low end, pinned high end, outer lower, outer upper, MUSCL); ``fields`` =
    (g_k, g_k', ψ, G, v, v', S_f, (a, b) of the last interpolation) work arrays."""
    values, slopes, mob_values, mob_slopes, mobility_constant, tab_lower, tab_inv, tab_n, weights = tables
    pin_lo, pin_hi, lower, upper, muscl = frame
    feats, dfeats, psi, grad, v_here, dv_here, stiffness, key = fields
    n = m.shape[0]
    rank = weights.shape[0]
    h = b / n
    inv_h = 1.0 / h
    scale = speed * rate_factor  # −2ξ c
    # features and v at the centres: one Hermite basis per point for every row (node-major tables); kept
    # while the cells stay where they were (``key`` = the (a, b) they were computed for: a still grid)
    if not (a == key[0] and b == key[1]):
        _interpolate_centres(a, h, n, rank, values, slopes, tab_lower, tab_inv, tab_n, weights, feats, dfeats,
                             v_here, dv_here, stiffness)
        key[0] = a
        key[1] = b
    energy = 0.0
    for i in range(n):
        psi[i] = v_here[i]
        grad[i] = dv_here[i]
        energy += 2.0 * v_here[i] * m[i]
    lagrangian = 0.0
    for k in range(rank):
        moment = 0.0
        spread = 0.0
        for i in range(n):
            moment += feats[k, i] * m[i]
            spread += dfeats[k, i] * dfeats[k, i] * m[i]
        energy += weights[k] * moment * moment
        lagrangian += abs(weights[k]) * spread
        weighted = weights[k] * moment
        for i in range(n):
            psi[i] += weighted * feats[k, i]
            grad[i] += weighted * dfeats[k, i]
    # mass-weighted affine fit of G = −2ξ c ψ' (pinned ends: the fit vanishes there)
    total = 0.0
    first = 0.0
    for i in range(n):
        grad[i] *= scale
        x = a + (i + 0.5) * h
        total += m[i]
        first += m[i] * x
    beta = 0.0
    w_a = 0.0
    if pin_lo and pin_hi:
        beta = 0.0
        w_a = 0.0
    elif pin_lo or pin_hi:
        anchor = lower if pin_lo else upper
        num = 0.0
        den = 0.0
        for i in range(n):
            y = a + (i + 0.5) * h - anchor
            num += m[i] * y * grad[i]
            den += m[i] * y * y
        beta = num / den if den > 0.0 else 0.0
        w_a = beta * (a - anchor)
    else:
        mean = first / total
        num = 0.0
        den = 0.0
        mean_g = 0.0
        for i in range(n):
            y = a + (i + 0.5) * h - mean
            num += m[i] * y * grad[i]
            den += m[i] * y * y
            mean_g += m[i] * grad[i]
        mean_g /= total
        beta = num / den if den > 0.0 else 0.0
        w_a = mean_g + beta * (a - mean)
    moving = mode
    if mode == 0:
        residual = 0.0
        kinetic = 0.0
        for i in range(n):
            fit = w_a + beta * (i + 0.5) * h
            residual += m[i] * (grad[i] - fit) * (grad[i] - fit)
            kinetic += m[i] * grad[i] * grad[i]
        moving = 1 if residual <= threshold * threshold * kinetic else 2
    if moving == 2:
        beta = 0.0
        w_a = 0.0
    # fluxes of the relative velocity through the interior faces
    courant = 0.0
    coupling = 0.0
    nonfinite = False
    slope_here = 0.0
    out_here = 0.0
    rate_here = 0.0
    for f in range(1, n):
        i = f - 1
        p_i = m[i] * inv_h
        p_j = m[i + 1] * inv_h
        slope_next = 0.0
        if muscl and f + 1 < n:
            slope_next = 0.5 * minmod(m[i + 2] * inv_h - p_j, p_j - p_i)
        mobility = mobility_constant
        if not math.isfinite(mobility_constant):
            mobility = hermite_evaluate(mob_values, mob_slopes, 0, tab_lower, tab_inv, tab_n, a + f * h)[0]
        u = scale * mobility * (psi[i + 1] - psi[i]) * inv_h
        relative = u - (w_a + beta * f * h)
        flux = 0.0
        out_next = 0.0
        if relative > 0.0:
            out_here += relative * inv_h
            flux = relative * (p_i + slope_here)
        elif relative < 0.0:
            out_next = -relative * inv_h
            flux = relative * (p_j - slope_next)
        elif math.isnan(relative):
            nonfinite = True
        out_rate[i] = rate_here - flux
        rate_here = flux
        coupling += mobility * stiffness[f] * max(p_i, p_j) * inv_h
        courant = max(courant, out_here)
        out_here = out_next
        slope_here = slope_next
    out_rate[n - 1] = rate_here
    courant = max(courant, out_here)
    coupling = abs(scale) * max(coupling, lagrangian)
    if nonfinite or not math.isfinite(courant):
        courant = np.nan
    return courant, coupling, abs(beta), energy, w_a, beta * b, moving


@njit(cache=True)
def _stage_verdict(courant, dilation, dt, bound, cfl):
    """A later stage's number ``max(C, |ḃ/b|) dt`` against the bound B: ``(0, dt)`` accepted, ``(1, dt ·
    cfl / number)`` re-take with that step, ``(2, number)`` not finite."""
    number = max(courant, dilation) * dt
    if number <= bound:
        return 0, dt
    if not math.isfinite(number):
        return 2, number
    return 1, dt * cfl / number


@njit(cache=True)
def _ale_loop(m, a, b, t, t_end, speed0, alpha, t0, rate_factor, values, slopes, mob_values, mob_slopes,
              mobility_constant, tab_lower, tab_inv, tab_n, weights, pin_lo, pin_hi, lower, upper, muscl,
              moving_stages, still_stages, cfl, bound, max_dt,
              target_second_moment, risk_prev, max_increase, max_steps, guard_lo, guard_hi, min_core, tail_mass,
              threshold, previous):
    """Advance ``(m, a, b)`` (m in place) from t to ``t_end`` (module docstring).  ``previous`` =
    (w(a), w(a + b), dt, known, moving, moving steps) of the last step's start (the stage rate; whether
    the grid moved; how many steps it moved in all), updated in place; ``moving_stages``,
    ``still_stages``: the SSP stages (1, 2, 3) of a step in which the grid moves / stands still.  Returns
    ``(status, t, a, b, steps, risk, max_increase, bad_cell, bad_value, t_fail)``; on an error m, a, b
    are the last valid state."""
    n = m.shape[0]
    rank = weights.shape[0]
    tables = (values, slopes, mob_values, mob_slopes, mobility_constant, tab_lower, tab_inv, tab_n, weights)
    frame = (pin_lo, pin_hi, lower, upper, muscl)
    fields = (np.empty((max(rank, 1), n)), np.empty((max(rank, 1), n)), np.empty(n), np.empty(n), np.empty(n),
              np.empty(n), np.zeros(n), np.full(2, np.nan))
    work = np.empty((7, n))
    rate, stage_rate, m1, m2, m_new = work[2], work[3], work[4], work[5], work[6]
    steps = 0
    risk = risk_prev
    while t < t_end:
        if steps >= max_steps:
            return _MAX_STEPS, t, a, b, steps, risk, max_increase, -1, 0.0, t
        speed = -2.0 * speed0 * (1.0 + t / t0) ** (-alpha)
        courant, coupling, dilation, energy, adot, bdot, moving = _ale_rates(
            m, a, b, speed, rate_factor, tables, frame, fields, rate, 0, threshold)
        if moving != previous[4]:  # the grid starts or stops moving: no stage rate yet
            previous[3] = 0.0
        stages = moving_stages if moving == 1 else still_stages
        risk_now = target_second_moment + energy
        if steps > 0 and risk_now - risk_prev > max_increase:
            max_increase = risk_now - risk_prev
        risk_prev = risk_now
        risk = risk_now
        if not (math.isfinite(courant) and math.isfinite(coupling) and math.isfinite(adot) and math.isfinite(bdot)):
            for i in range(n):
                if not math.isfinite(m[i]):
                    return _NONFINITE, t, a, b, steps, risk, max_increase, i, m[i], t
            return _NONFINITE, t, a, b, steps, risk, max_increase, -1, courant, t
        h = b / n
        w_lo = adot
        w_hi = adot + bdot
        rate_bound = max(max(courant, coupling), dilation)
        dt = cfl / rate_bound if rate_bound > 0.0 else np.inf
        if previous[3] > 0.0:  # the stage rate: acceleration of the window's ends over the last step
            acceleration = max(abs(w_lo - previous[0]), abs(w_hi - previous[1])) / previous[2]
            if acceleration > 0.0:
                dt = min(dt, math.sqrt(2.0 * cfl * h / acceleration))
        elif moving == 1:
            speed_ends = max(abs(w_lo), abs(w_hi))
            if speed_ends > 0.0:
                dt = min(dt, cfl * h / speed_ends)
        if not pin_lo and w_lo < 0.0:
            dt = min(dt, 0.5 * (a - lower) / (-w_lo))
        if not pin_hi and w_hi > 0.0:
            dt = min(dt, 0.5 * (upper - a - b) / w_hi)
        dt = min(dt, max_dt)
        last = False
        if dt >= (t_end - t) * (1.0 - 1e-12):
            dt = t_end - t
            last = True
        a_new = a
        b_new = b
        while True:
            for i in range(n):
                m1[i] = m[i] + dt * rate[i]
            a1 = a + dt * adot
            b1 = b + dt * bdot
            retake = False
            if stages >= 2:
                speed1 = -2.0 * speed0 * (1.0 + (t + dt) / t0) ** (-alpha)
                c1, _, d1, _, adot1, bdot1, _ = _ale_rates(
                    m1, a1, b1, speed1, rate_factor, tables, frame, fields, stage_rate, moving, threshold)
                verdict, value = _stage_verdict(c1, d1, dt, bound, cfl)
                if verdict == 2:
                    return _NONFINITE, t, a, b, steps, risk, max_increase, -1, value, t + dt
                if verdict == 1:
                    dt, last, retake = value, False, True
                elif stages == 2:
                    for i in range(n):
                        m_new[i] = 0.5 * m[i] + 0.5 * (m1[i] + dt * stage_rate[i])
                    a_new = 0.5 * a + 0.5 * (a1 + dt * adot1)
                    b_new = 0.5 * b + 0.5 * (b1 + dt * bdot1)
                else:
                    for i in range(n):
                        m2[i] = 0.75 * m[i] + 0.25 * (m1[i] + dt * stage_rate[i])
                    a2 = 0.75 * a + 0.25 * (a1 + dt * adot1)
                    b2 = 0.75 * b + 0.25 * (b1 + dt * bdot1)
                    speed2 = -2.0 * speed0 * (1.0 + (t + 0.5 * dt) / t0) ** (-alpha)
                    c2, _, d2, _, adot2, bdot2, _ = _ale_rates(
                        m2, a2, b2, speed2, rate_factor, tables, frame, fields, stage_rate, moving, threshold)
                    verdict, value = _stage_verdict(c2, d2, dt, bound, cfl)
                    if verdict == 2:
                        return _NONFINITE, t, a, b, steps, risk, max_increase, -1, value, t + dt
                    if verdict == 1:
                        dt, last, retake = value, False, True
                    else:
                        for i in range(n):
                            m_new[i] = m[i] / 3.0 + (2.0 / 3.0) * (m2[i] + dt * stage_rate[i])
                        a_new = a / 3.0 + (2.0 / 3.0) * (a2 + dt * adot2)
                        b_new = b / 3.0 + (2.0 / 3.0) * (b2 + dt * bdot2)
            else:
                for i in range(n):
                    m_new[i] = m1[i]
                a_new = a1
                b_new = b1
            if not retake and ((not pin_lo and a_new < lower) or (not pin_hi and a_new + b_new > upper)
                               or not b_new > 0.0):
                dt = 0.5 * dt  # a free end would pass its outer bound: a shorter step
                last = False
                retake = True
            if not retake:
                break
            if dt < 1e-14 * (1.0 + abs(t)):
                return _DT_UNDERFLOW, t, a, b, steps, risk, max_increase, -1, dt, t
        mmax = 0.0
        mmin = 0.0
        finite = True
        for i in range(n):
            x = m_new[i]
            mmax = max(mmax, x)
            mmin = min(mmin, x)
            finite = finite and (x - x == 0.0)
        if not (finite and math.isfinite(mmax) and math.isfinite(a_new) and math.isfinite(b_new)) \
                or mmin < -_NEGATIVE_TOLERANCE * mmax:
            for i in range(n):
                if not math.isfinite(m_new[i]):
                    return _NONFINITE, t, a, b, steps, risk, max_increase, i, m_new[i], t + dt
            for i in range(n):
                if m_new[i] < -_NEGATIVE_TOLERANCE * mmax:
                    return _NEGATIVE, t, a, b, steps, risk, max_increase, i, m_new[i] / h, t + dt
            return _NONFINITE, t, a, b, steps, risk, max_increase, -1, a_new, t + dt
        for i in range(n):
            m[i] = m_new[i]
        previous[0] = w_lo
        previous[1] = w_hi
        previous[2] = dt
        previous[3] = 1.0
        previous[4] = moving
        if moving == 1:
            previous[5] += 1.0
        a = a_new
        b = b_new
        t = t_end if last else t + dt
        steps += 1
        i_lo, i_hi = core_cells(m, np.ones(n), tail_mass)
        cell = b / n
        near_bound = (not pin_lo and a - lower < cell) or (not pin_hi and upper - a - b < cell)
        if i_lo < guard_lo or i_hi > guard_hi or i_hi - i_lo + 1 < min_core or near_bound:
            speed = -2.0 * speed0 * (1.0 + t / t0) ** (-alpha)
            energy = _ale_rates(m, a, b, speed, rate_factor, tables, frame, fields, rate, 2, threshold)[3]
            risk_now = target_second_moment + energy
            if risk_now - risk_prev > max_increase:
                max_increase = risk_now - risk_prev
            return _REMAP, t, a, b, steps, risk_now, max_increase, -1, 0.0, t
    speed = -2.0 * speed0 * (1.0 + t / t0) ** (-alpha)
    energy = _ale_rates(m, a, b, speed, rate_factor, tables, frame, fields, rate, 2, threshold)[3]
    risk_now = target_second_moment + energy
    if steps > 0 and risk_now - risk_prev > max_increase:
        max_increase = risk_now - risk_prev
    return _OK, t, a, b, steps, risk_now, max_increase, -1, 0.0, t


# ------------------------------------------------------------------------------------------------
# the solver
# ------------------------------------------------------------------------------------------------
from solvers.finite_volume import _DEFAULT_STEPPER, TIME_STEPPERS, FiniteVolumeSolver  # noqa: E402


class MovingGridSolver(FiniteVolumeSolver):
    """:class:`~solvers.finite_volume.FiniteVolumeSolver` with ``adapt = MovePolicy(...)`` (module
    docstring): the same parameters, state, observables and remaps; between remaps the window's cells
    move affinely with the law inside one compiled call per output interval.  ``FiniteVolumeSolver(...,
    adapt=MovePolicy())`` constructs this class.  One coordinate, kernel ``"low_rank"`` only.

    ``potential``, ``discrete_risk``, ``face_velocities`` and ``rates_of_change`` describe the current
    cells with the problem's exact functions (the Courant rate there is that of the absolute velocity);
    the compiled loop uses the Hermite tables (:attr:`interpolation_error_bounds`)."""

    def __init__(self, problem: Any, grid: Any, *args: Any, adapt: MovePolicy | None = None, kernel: Any = "low_rank",
                 **kwargs: Any) -> None:
        from solvers.common import check_instance
        from solvers.grid import as_tensor_grid

        check_instance("grid.adapt", adapt, MovePolicy)
        names = as_tensor_grid(grid, problem.coordinate_names).names
        if len(names) != 1:
            raise ValueError(f"grid.adapt = 'move' moves the cells of one-coordinate grids; this grid has axes "
                             f"{list(names)} (allowed: one axis; use grid.adapt = 'none')")
        if not (isinstance(kernel, str) and kernel == "low_rank"):
            shown = kernel if isinstance(kernel, str) else "a matrix"
            raise ValueError(f"solver.kernel = {shown!r} with grid.adapt = 'move': the kernel is interpolated at "
                             f"moving points from its low-rank features; allowed: 'low_rank'")
        # default: SSP-RK3 while the grid moves (its path, module docstring), the fixed grid's default
        # (SSP-RK2 for MUSCL) while it stands still; a stepper given is used for every step
        default = kwargs.get("time_stepper") is None and not args
        if default:
            kwargs["time_stepper"] = "ssprk3"
        elif kwargs.get("time_stepper") == "euler":  # the grid's path would be O(h^½) (module docstring)
            raise ValueError("solver.time_stepper = 'euler' with grid.adapt = 'move': the grid's path would be "
                             "first order in dt ∝ h^½; allowed: 'ssprk2', 'ssprk3' (default: SSP-RK3 while moving)")
        self._frame_ready = False
        super().__init__(problem, grid, *args, adapt=adapt, kernel=kernel, **kwargs)
        outer = self.given_grid.axes[0]
        self._table, self._mobility_table, self._table_weights = tabulate_problem(problem, outer.lower, outer.upper)
        #: H⁴/384 max|f⁗| of v and of each feature g_k on the outer axis (:class:`HermiteTable`)
        self.interpolation_error_bounds = self._table.error_bounds()
        # node-major copies for the compiled loop (one Hermite basis per point serves every row); a
        # constant mobility (every node value equal, zero slopes) is passed as that number
        self._node_values = np.ascontiguousarray(self._table.values.T)
        self._node_slopes = np.ascontiguousarray(self._table.slopes.T)
        mob = self._mobility_table
        constant = bool(np.all(mob.values == mob.values[0, 0]) and np.all(mob.slopes == 0.0))
        self._mobility_constant = float(mob.values[0, 0]) if constant else math.nan
        self._frame_ready = True
        self._still_stages = (TIME_STEPPERS[_DEFAULT_STEPPER[self.scheme]] if default
                              else TIME_STEPPERS[self.time_stepper])
        self._reset_frame()

    # ---- the moving frame --------------------------------------------------------------------------
    def _reset_frame(self) -> None:
        """(m, a, b) of the current (remapped) window; its ends on the outer bounds are pinned."""
        outer, edges = self.given_grid.axes[0], np.asarray(self.grid.axes[0].edges)
        self._a, self._b = float(edges[0]), float(edges[-1] - edges[0])
        self._pins = (bool(edges[0] <= outer.lower), bool(edges[-1] >= outer.upper))
        self._m = np.ascontiguousarray(self._density * self._volumes)
        moved = self._previous[5] if hasattr(self, "_previous") else 0.0
        # end velocities and dt of the last step's start; known flag; moving (1) or still (2); moving steps
        self._previous = np.array([0.0, 0.0, 0.0, 0.0, 0.0, moved])
        self._sync()

    def _sync(self) -> None:
        """Cells ``a + b ξ_f`` and the density ``m / h`` for everything outside the compiled loop."""
        cells = self._m.shape[0]
        edges = self._a + self._b * (np.arange(cells + 1) / cells)
        if self._pins[0]:
            edges[0] = self.given_grid.axes[0].lower
        if self._pins[1]:
            edges[-1] = self.given_grid.axes[0].upper
        self._set_window(edges)
        self._density = np.ascontiguousarray(self._m / (self._b / cells))

    def _remap(self) -> None:
        super()._remap()
        if self._frame_ready:
            self._reset_frame()

    # ---- stepping ----------------------------------------------------------------------------------
    def _advance_chunk(self, t_target: float) -> int:
        xi0, alpha, t0 = self.schedule.as_tuple()
        outer = self.given_grid.axes[0]
        table, mobility = self._table, self._mobility_table
        began = wallclock.perf_counter()
        status, t, a, b, steps, risk, max_inc, cell, value, t_fail = _ale_loop(
            self._m, self._a, self._b, self.time, t_target, float(xi0), float(alpha), float(t0), float(self.rates[0]),
            self._node_values, self._node_slopes, mobility.values, mobility.slopes, self._mobility_constant,
            table.lower, 1.0 / table.step, table.intervals, self._table_weights, self._pins[0], self._pins[1],
            float(outer.lower), float(outer.upper), self.scheme == "muscl", TIME_STEPPERS[self.time_stepper],
            self._still_stages, self.cfl, self.bound,
            math.inf if self.max_dt is None else self.max_dt, float(self.problem.target_second_moment),
            self.last_value, self.max_increase, self.max_steps_per_output, self._guard_lo, self._guard_hi,
            self._min_core, self._tail_mass, AFFINE_SHARE, self._previous)
        self._a, self._b = float(a), float(b)
        self.time = float(t)
        self.steps += int(steps)
        self.last_value = float(risk)
        self.max_increase = float(max_inc)
        self._sync()
        self.wall_time += wallclock.perf_counter() - began
        if status not in (_OK, _REMAP):
            self._raise(status, t_fail, cell, value)
        return int(status)

    # ---- state -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """:meth:`FiniteVolumeSolver.state` plus the loop's own state: masses, (a, b), pins, last step."""
        out = super().state()
        out["ale_masses"] = self._m.copy()
        out["ale_frame"] = np.array([self._a, self._b, float(self._pins[0]), float(self._pins[1]),
                                     *self._previous])
        return out

    def set_state(self, state: dict[str, Any]) -> None:
        for key in ("ale_masses", "ale_frame"):
            if key not in state:
                raise ValueError(f"state of a moving grid (grid.adapt = 'move') lacks {key!r}")
        super().set_state(state)
        masses = np.asarray(state["ale_masses"], dtype=float)
        frame = np.asarray(state["ale_frame"], dtype=float)
        if masses.shape != (self.grid.cells,) or frame.shape != (10,):
            raise ValueError(f"moving-grid state has shapes {masses.shape}, {frame.shape}; expected "
                             f"({self.grid.cells},), (10,)")
        self._m = np.ascontiguousarray(masses.copy())
        self._a, self._b = float(frame[0]), float(frame[1])
        self._pins = (bool(frame[2]), bool(frame[3]))
        self._previous = np.ascontiguousarray(frame[4:].copy())
        self._sync()

    def diagnostics(self) -> dict[str, float]:
        """:meth:`FiniteVolumeSolver.diagnostics` plus ``interpolation_error`` (the largest Hermite bound
        ``H⁴/384 max|f⁗|`` over v and the features) and ``interpolation_risk_bound`` (its effect on R_h,
        :func:`interpolated_risk_bound`, at the current moments)."""
        out = super().diagnostics()
        moments = self._features @ self.masses.ravel() if self._features.size else np.zeros(0)
        out["interpolation_error"] = float(np.max(self.interpolation_error_bounds))
        out["moving_steps"] = float(self._previous[5])
        out["interpolation_risk_bound"] = interpolated_risk_bound(self.interpolation_error_bounds, self._weights,
                                                                  moments, float(np.sum(self._m)))
        return out
