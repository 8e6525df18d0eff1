"""Grids that follow the law: conservative remapping of a one-coordinate finite-volume solution onto a
window that covers the current law (``grid.adapt = "remap"``).

Why.  A law that is narrow and moves (MMN18 at d = 320: r starts at κ with width κ/√(2d), travels to
r ≈ 1.8, narrows, then spreads again) wastes almost every cell of a uniform grid on a fixed [0, r_max].

What.  The solver keeps ``N`` equal cells on a *window* ``[a, b]`` inside the axis ``[lower, upper]`` the
user gave (the outer bounds; they lie in ``problem.domain()`` and reach its finite ends as for a fixed
grid).  With ``M = Σ m_i`` the mass and the piecewise-linear CDF of the cell masses, the law's *core* is
``[q_lo, q_hi]`` with ``CDF(q_lo) = τ M``, ``CDF(q_hi) = (1 − τ) M`` (``τ = tail``); the window is::

    [a, b] = [max(lower, q_lo − μ S), min(upper, q_hi + μ S)],   S = q_hi − q_lo,  μ = margin.

The faces at ``a`` and ``b`` carry no flux (zero-flux boundary, as every boundary of the grid): where
``a > lower`` (or ``b < upper``) that is a truncation of the law's tail, of mass ≤ τ M at the last remap.

When.  After every accepted step the compiled loop finds the core cells ``i_lo``, ``i_hi`` (the first
cell whose cumulative mass from the left exceeds τ M, and from the right) and stops for a remap when

* the core has entered the outer half of a margin: ``i_lo < i_lo⁰/2`` or ``i_hi > i_hi⁰ + (N−1−i_hi⁰)/2``
  (``⁰``: right after the last remap; a side whose window edge is at the outer bound is not watched,
  its boundary is the natural one), or
* the law has narrowed: ``i_hi − i_lo + 1 < ν (i_hi⁰ − i_lo⁰ + 1)`` (``ν = narrowing``), so the window
  shrinks with it and the cells per width of the law stay bounded below.

How (:func:`remap_density`).  The old cell averages are reconstructed exactly as the MUSCL scheme does
(minmod-limited slopes over the centre distances, zero slope in the first and last cell), and the new
cell average is the exact integral of that piecewise-linear function over the new cell, divided by
its width (the integral of a linear function over an interval is its length times its midpoint
value).  Hence

* mass: ``Σ_j m'_j = Σ_i m_i`` to round-off (each old cell is split into pieces that partition it;
  the part of the old window outside the new one is added to the first / last new cell, and its mass
  is returned so the solver can report it);
* positivity: a piece's midpoint value lies between the reconstruction's end values
  ``p_i ± σ_i h_i/2 ∈ [0, 2 p_i]``, so ``p' >= 0``;
* linear densities are reproduced exactly (the reconstruction of a linear profile is itself away from
  the end cells), and a remap onto the same edges is the identity.

Risk across a remap.  The discrete risk ``R_h = E y² + 2 Σ v(x_i) m_i + Σ_k λ_k M_k²``, ``M_k = Σ_i
g_k(x_i) m_i``, is a midpoint quadrature of the exact risk of the reconstruction ``ρ̃``, which the remap
preserves (every ``∫ g ρ̃`` is unchanged).  For a cell ``C`` (centre ``c``, width ``h``) and any density
``ρ >= 0`` on it with mass ``m`` and first moment ``μ = ∫_C (x − c) ρ``,
``|∫_C g ρ − g(c) m − g'(c) μ| <= ½ sup_C|g''| ∫_C (x−c)² ρ``, and ``∫_C (x − c)² ρ`` is ``m h²/12``
when ρ is linear on C (old cells) and ``<= m h²/4`` otherwise (new cells).  So each moment changes by at
most (:func:`remap_moment_bound`)::

    B_g = |Σ_old g'(c_i) σ_i h_i³/12 − Σ_new g'(c'_j) μ'_j| + G₂ (Σ_old m_i h_i²/24 + Σ_new m'_j h'_j²/8),

``G₂ = sup |g''|`` over the windows (plus ``G₁ L f`` for a folded mass f, L the span of both windows,
``G₁ = sup |g'|``: it moved by at most L), and the risk by ``|ΔR_h| <= 2 B_v + Σ_k |λ_k| (2 |M_k| B_k + B_k²)``
(:func:`remap_risk_bound`): second order in the cell widths.  A remap can therefore raise R_h by at
most this interpolation error; between remaps the scheme dissipates as on a fixed grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from solvers.common import check_number

__all__ = ["ADAPT_MODES", "RemapPolicy", "core_cells", "law_window", "minmod", "remap_density", "remap_first_moments",
           "remap_moment_bound", "remap_risk_bound"]

ADAPT_MODES = ("none", "remap")


@dataclass(frozen=True)
class RemapPolicy:
    """Parameters of ``grid.adapt = "remap"`` (module docstring): ``tail`` τ (mass beyond each end of
    the core, in (0, 1e-3]), ``margin`` μ (the window extends the core by μ S on each side, in
    [0.05, 10]) and ``narrowing`` ν (remap when the core spans fewer than ν times its cells at the last
    remap, in [0, 0.95]; 0 never refines)."""

    tail: float = 1e-6
    margin: float = 0.25
    narrowing: float = 0.8

    def __post_init__(self) -> None:
        object.__setattr__(self, "tail", check_number("grid.adapt_tail", self.tail, 0.0, 1e-3, low_open=True))
        object.__setattr__(self, "margin", check_number("grid.adapt_margin", self.margin, 0.05, 10.0))
        object.__setattr__(self, "narrowing", check_number("grid.adapt_narrowing", self.narrowing, 0.0, 0.95))

    def config(self) -> dict[str, Any]:
        return {"grid.adapt": "remap", "grid.adapt_tail": self.tail, "grid.adapt_margin": self.margin,
                "grid.adapt_narrowing": self.narrowing}


def _cdf_point(edges: np.ndarray, cumulative: np.ndarray, level: float) -> float:
    """``x`` with ``CDF(x) = level`` for the piecewise-linear CDF through ``(edges, cumulative)``."""
    index = int(np.searchsorted(cumulative, level, side="left"))
    index = min(max(index, 1), edges.size - 1)
    low, high = cumulative[index - 1], cumulative[index]
    fraction = 0.0 if high <= low else (level - low) / (high - low)
    return float(edges[index - 1] + min(max(fraction, 0.0), 1.0) * (edges[index] - edges[index - 1]))


def law_window(edges: np.ndarray, masses: np.ndarray, policy: RemapPolicy, lower: float,
               upper: float) -> tuple[float, float]:
    """The window ``[max(lower, q_lo − μS), min(upper, q_hi + μS)]`` around the core ``[q_lo, q_hi]`` of
    the cell masses (module docstring).  A core narrower than one cell (S = 0) counts as that cell."""
    masses = np.asarray(masses, dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(masses)])
    total = cumulative[-1]
    if not (math.isfinite(total) and total > 0.0):
        raise ValueError(f"cannot place an adapted window: the total mass is {total}")
    q_lo = _cdf_point(edges, cumulative, policy.tail * total)
    q_hi = _cdf_point(edges, cumulative, (1.0 - policy.tail) * total)
    extent = q_hi - q_lo
    if not extent > 0.0:
        cell = int(np.argmax(masses))
        q_lo, q_hi = float(edges[cell]), float(edges[cell + 1])
        extent = q_hi - q_lo
    return max(lower, q_lo - policy.margin * extent), min(upper, q_hi + policy.margin * extent)


@njit(cache=True)
def minmod(a: float, b: float) -> float:
    """The minmod limiter of the MUSCL scheme (:mod:`solvers.finite_volume`) and of the remap."""
    if a > 0.0 and b > 0.0:
        return min(a, b)
    if a < 0.0 and b < 0.0:
        return max(a, b)
    return 0.0


@njit(cache=True)
def _slopes(edges, density, slopes):
    """The MUSCL scheme's minmod slopes over the centre distances (zero in the first and last cell)."""
    n = density.shape[0]
    slopes[0] = 0.0
    slopes[n - 1] = 0.0
    for i in range(1, n - 1):
        left = 0.5 * (edges[i - 1] + edges[i])
        here = 0.5 * (edges[i] + edges[i + 1])
        right = 0.5 * (edges[i + 1] + edges[i + 2])
        slopes[i] = minmod((density[i + 1] - density[i]) / (right - here), (density[i] - density[i - 1]) / (here - left))


@njit(cache=True)
def remap_density(old_edges, density, new_edges, out):
    """Cell averages on ``new_edges`` (into ``out``) of the MUSCL reconstruction of ``density`` on
    ``old_edges``, integrated exactly (module docstring).  Mass of the old window left of
    ``new_edges[0]`` (right of ``new_edges[-1]``) is added to the first (last) new cell.  Returns that
    mass (the part of the old window outside the new one)."""
    n = density.shape[0]
    m = out.shape[0]
    slopes = np.empty(n)
    _slopes(old_edges, density, slopes)
    for j in range(m):
        out[j] = 0.0  # masses first, averages at the end
    outside = 0.0
    j = 0
    for i in range(n):
        e0 = old_edges[i]
        e1 = old_edges[i + 1]
        center = 0.5 * (e0 + e1)
        x = e0
        while x < e1:
            # the new cell holding x (cells left of the window: fold into the first; right: the last)
            while j < m - 1 and new_edges[j + 1] <= x:
                j += 1
            if x < new_edges[0]:
                end = min(e1, new_edges[0])
                target = 0
            elif j == m - 1 or x >= new_edges[m]:
                end = e1 if x >= new_edges[m] else min(e1, new_edges[m])
                target = m - 1
            else:
                end = min(e1, new_edges[j + 1])
                target = j
            piece = (end - x) * (density[i] + slopes[i] * (0.5 * (x + end) - center))
            out[target] += piece
            if x < new_edges[0] or x >= new_edges[m]:
                outside += piece
            x = end
    for j in range(m):
        out[j] = out[j] / (new_edges[j + 1] - new_edges[j])
    return outside


@njit(cache=True)
def remap_first_moments(old_edges, density, new_edges, out):
    """``μ'_j = ∫_{new cell j} (x − c'_j) ρ̃ dx`` of the MUSCL reconstruction ρ̃ (inside the new window;
    the risk bound's new-cell first moments), into ``out``."""
    n = density.shape[0]
    m = out.shape[0]
    slopes = np.empty(n)
    _slopes(old_edges, density, slopes)
    for j in range(m):
        out[j] = 0.0
    j = 0
    for i in range(n):
        e0 = old_edges[i]
        e1 = old_edges[i + 1]
        center = 0.5 * (e0 + e1)
        x = max(e0, new_edges[0])
        stop = min(e1, new_edges[m])
        while x < stop:
            while j < m - 1 and new_edges[j + 1] <= x:
                j += 1
            end = min(stop, new_edges[j + 1])
            # ∫_x^end (y − c') (p + σ (y − c)) dy, exactly (quadratic integrand: Simpson's rule is exact)
            new_center = 0.5 * (new_edges[j] + new_edges[j + 1])
            mid = 0.5 * (x + end)
            f0 = (x - new_center) * (density[i] + slopes[i] * (x - center))
            f1 = (mid - new_center) * (density[i] + slopes[i] * (mid - center))
            f2 = (end - new_center) * (density[i] + slopes[i] * (end - center))
            out[j] += (end - x) * (f0 + 4.0 * f1 + f2) / 6.0
            x = end


@njit(cache=True)
def core_cells(p, volumes, tail_mass):
    """``(i_lo, i_hi)``: the first cell at which the mass summed from the left exceeds ``tail_mass``,
    and the last from the right (the cells of the law's core; scans stop there)."""
    n = p.shape[0]
    acc = 0.0
    i_lo = n - 1
    for i in range(n):
        acc += p[i] * volumes[i]
        if acc > tail_mass:
            i_lo = i
            break
    acc = 0.0
    i_hi = 0
    for i in range(n - 1, -1, -1):
        acc += p[i] * volumes[i]
        if acc > tail_mass:
            i_hi = i
            break
    return i_lo, i_hi


def remap_moment_bound(old_edges: np.ndarray, density: np.ndarray, new_edges: np.ndarray,
                       new_density: np.ndarray, gradient_old: np.ndarray, gradient_new: np.ndarray,
                       curvature: float) -> float:
    """``B_g`` of the module docstring: the largest change a remap can make to ``Σ g(x_i) m_i``, with
    ``g'`` at the old and new centres and ``G₂ = curvature >= sup |g''|`` over both windows."""
    old_edges, new_edges = np.asarray(old_edges, float), np.asarray(new_edges, float)
    density = np.ascontiguousarray(density, dtype=float)
    widths, new_widths = np.diff(old_edges), np.diff(new_edges)
    slopes = np.empty(density.size)
    _slopes(old_edges, density, slopes)
    moments = np.empty(new_widths.size)
    remap_first_moments(old_edges, density, new_edges, moments)
    first_order = abs(float(np.sum(gradient_old * slopes * widths**3) / 12.0 - np.sum(gradient_new * moments)))
    second = curvature * (float(np.sum(density * widths * widths**2)) / 24.0
                          + float(np.sum(np.asarray(new_density) * new_widths * new_widths**2)) / 8.0)
    return first_order + second


def remap_risk_bound(potential_bound: float, moment_bounds: np.ndarray, weights: np.ndarray,
                     weighted_moments: np.ndarray) -> float:
    """``2 B_v + Σ_k |λ_k| (2 |M_k| B_k + B_k²)`` (module docstring), with ``M_k`` the (unweighted)
    moments before the remap."""
    bounds = np.asarray(moment_bounds, float)
    return float(2.0 * potential_bound + np.sum(np.abs(weights) * (2.0 * np.abs(weighted_moments) * bounds
                                                                   + bounds**2)))
