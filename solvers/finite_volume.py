"""Conservative finite-volume solver for the reduced mean-field equation in 1, 2 or 3 coordinates.

Equation (design note §2–§3; ``p`` is a density with respect to Lebesgue measure ``dx_1 … dx_D`` in
the reduced coordinates ``x = (x_1, …, x_D)``, e.g. r for MMN18, s on the sphere, (a, s, r) for
single-index models; *not* w.r.t. any polar measure)::

    ∂_t p = 2ξ(t) Σ_d ∂_d( p c_d M_d(x) ∂_d ψ(x; p) ),     ψ(x; p) = v(x) + ∫ u(x, x') p(x') dx',

with per-coordinate rate factors ``c_d`` (``rates``; e.g. 1/ε on the second layer a for per-layer
learning rates) and the diagonal mobility ``M_d = problem.mobility(x)[:, d]`` (ones in the ball;
``1 − s²`` for the sphere coordinate s, which closes the flux at s = ±1).  Zero flux on every
boundary face of the grid (r = 0, s = ±1, the outer edges), so mass is conserved.

The grid is a :class:`~solvers.tensor_grid.TensorGrid` with one axis per coordinate (a
:class:`~solvers.grid.UniformGrid1D` is accepted for one coordinate), inside ``problem.domain()`` and
reaching its finite ends (:func:`~solvers.grid.check_grid_in_domain`).  Points are passed to the
problem as (M,) for one coordinate, (M, D) otherwise (:mod:`reduced_pde.problem`).

Scheme (Carrillo–Chertock–Huang 2015, dimension by dimension, arbitrary increasing edges).  Unknowns are cell averages ``p_i``, masses ``m_i = p_i |cell_i|``.

* ``ψ_i`` at the cell centres: low rank ``ψ_i = v_i + Σ_k λ_k g_k(x_i) M_k``, ``M_k = Σ_j g_k(x_j) m_j``
  (features precomputed once, O(cells × rank) per evaluation).  When ``problem.linear_coordinate``
  is set (the second layer a: ``v(a, y) = a v₁(y)``, ``g_k(a, y) = a f_k(y)``), ``v₁`` and ``f_k``
  are evaluated on the sub-grid of the *other* coordinates only (the problem called with a = 1),
  ``A(y) = Σ_a a m(a, y)``, ``M_k = Σ_y f_k(y) A(y)`` and ``ψ(a, y) = a (v₁(y) + Σ_k λ_k f_k(y) M_k)``:
  O(cells + rank × cells/N_a).  ``kernel="dense"``: ``ψ = v + U m`` with ``U`` from
  ``problem.interaction_kernel`` on the cell centres (on the sub-grid, times a a', with a linear
  coordinate), O(cells²) — the pairwise reference; an explicit matrix is accepted too.
* Face velocity along axis d between neighbours i and i⁺ (= i + 1 along d)::

      u_{i+½} = −2ξ(t) c_d M_d(face centre) (ψ_{i⁺} − ψ_i) / (x^d_{i⁺} − x^d_i)

  (distance of the cell centres: non-uniform grids are fine), zero on boundary faces.
* Upwind flux ``F = u⁺ p^E_i + u⁻ p^W_{i⁺}`` with the east/west values of the reconstruction along d:
  piecewise constant (``scheme="upwind"``, first order) or piecewise linear with the minmod-limited
  slope ``σ_i = minmod((p_{i⁺} − p_i)/(x_{i⁺} − x_i), (p_i − p_{i⁻})/(x_i − x_{i⁻}))``,
  ``p^{E/W}_i = p_i ± σ_i Δx_i / 2`` (``scheme="muscl"``, second order away from extrema; zero slope in
  the first and last cell of every line).  ``dp_i/dt = −Σ_d (F_{i+½} − F_{i−½}) / Δx^d_i``: the flux
  through a face leaves one cell and enters the other with the same face area, so mass is conserved
  to round-off.
* Positivity: ``p^E, p^W ∈ [0, 2 p_i]`` (``[p_i, p_i]`` for upwind), so a forward-Euler step keeps
  ``p >= 0`` when ``dt · C <= B``, ``C = max_i Σ_d (max(u_{i+½}, 0) + max(−u_{i−½}, 0)) / Δx^d_i`` (the
  Courant rate), ``B = 1`` (upwind) or ``B = ½`` (MUSCL).
* Interaction rate.  The positivity bound lets dt grow like 1/|u| near a steady state, while the
  particles stay coupled through the moments at an O(1) rate: forward Euler then overshoots the moment
  dynamics and R_h increases (measured up to +5e-4 per step on a He_2 single-index model).  With the
  upwind face densities frozen, the nonlocal part of the linearised semi-discrete operator is
  ``−L U`` (``L`` the face-weighted graph Laplacian, weights ``2ξ c_d M_d |face| p̂_f / distance``,
  ``U`` the kernel acting on masses); its eigenvalues are real, >= 0 and at most
  ``trace(L U) = K = 2ξ Σ_faces Q_f max(p_i, p_j)``, ``Q_f = c_d M_d |face| S_f / distance``,
  ``S_f = u(x_i, x_i) − 2 u(x_i, x_j) + u(x_j, x_j) = Σ_k λ_k (g_k(x_j) − g_k(x_i))²``
  (``p̂_f <= max(p_i, p_j)`` for both reconstructions).  ``Q`` is precomputed; K costs O(faces).
* Time step ``dt = cfl / max(C, K)`` with ``0 < cfl <= B`` (a larger cfl is refused), capped by
  ``max_dt`` and by the next output time, which is hit exactly.  Forward Euler (default for upwind),
  SSP-RK2 (Heun, default for MUSCL) or SSP-RK3: convex combinations of Euler steps, each positive
  under the bound; if a later stage's velocity violates it the step is re-taken with
  ``dt ← dt · cfl / (stage Courant number)`` (as in PyClaw).

Discrete risk ``R_h = E[y²] + 2 Σ_i v_i m_i + Σ_k λ_k M_k²`` (``+ m·U·m`` dense).  Semi-discretely
``dR_h/dt = 2 Σ_i ψ_i dm_i/dt = −Σ_faces (area · distance / (ξ c_d M_d)) F u <= 0`` (``F u >= 0``;
faces with ``c_d M_d = 0`` carry no flux) for a symmetric kernel; in time the increase per step is
O(dt²) (from ``Σ λ_k (ΔM_k)²``, kept below the dissipation by ``K dt <= cfl``) plus round-off, and the
compiled loop records the largest one.

Adapted grids (``adapt``, :mod:`solvers.adaptive_grid`): the compiled loop also watches the law's core
after every step and returns early when the window must follow it; the density is then remapped
conservatively onto a new window (same cell count), v and the kernel are evaluated on its centres, and
the loop resumes.

The whole loop between two output times is one ``@njit(cache=True)`` function working on flat C-order
arrays with the grid padded to three axes (D = 1, 2 are singleton axes), so one compiled kernel
serves every D; lines along the axis of stride 1 (the only axis in 1-D) are swept cell by cell, and
without a linear coordinate the potential skips the sub-grid indirection.  The low-rank potential
and ξ(t) (:func:`low_rank_potential`, :func:`learning_rate`) are shared with the Scharfetter–Gummel
solver :mod:`solvers.fokker_planck`.  Each step is checked for non-finite and negative densities (below
``−1e-12 · max p``); the error names the time, the cell and its coordinates, and the state is kept at
the last valid time.
"""

from __future__ import annotations

import math
import time as wallclock
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numba import njit

from reduced_pde.problem import ReducedProblem
from reduced_pde.schedules import LearningRateSchedule

from solvers.adaptive_grid import RemapPolicy, core_cells, law_window, remap_density
from solvers.adaptive_grid import minmod as _minmod  # the one limiter of the scheme and of its remap
from solvers.common import SolverError, check_instance, check_memory, check_number, validate_output_times
from solvers.grid import MonitoredDensityState, UniformGrid1D, as_tensor_grid, check_grid_in_domain
from solvers.results import Trajectory
from solvers.tensor_grid import MAX_DIMENSION, GridAxis, TensorGrid

__all__ = ["POSITIVITY_BOUND", "SCHEMES", "TIME_STEPPERS", "FiniteVolumeSolver", "SolverError",
           "learning_rate", "low_rank_potential", "solve_finite_volume", "step_to_output"]

SCHEMES = ("upwind", "muscl")
TIME_STEPPERS = {"euler": 1, "ssprk2": 2, "ssprk3": 3}
#: largest admissible Courant number (outflow rate × dt) of one Euler step, per scheme
POSITIVITY_BOUND = {"upwind": 1.0, "muscl": 0.5}
_DEFAULT_STEPPER = {"upwind": "euler", "muscl": "ssprk2"}
#: relative to max p: below −tol·max p a density counts as negative
NEGATIVE_TOLERANCE = 1e-12
#: largest dense interaction matrix (entries) the solver builds (8 bytes each: 0.8 GB)
MAX_DENSE_ENTRIES = 100_000_000

# status codes of the compiled loop
_OK, _NONFINITE, _NEGATIVE, _MAX_STEPS, _DT_UNDERFLOW, _REMAP = 0, 1, 2, 3, 4, 5


# ------------------------------------------------------------------------------------------------
# compiled kernels shared with solvers.fokker_planck
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def learning_rate(t: float, xi0: float, alpha: float, t0: float) -> float:
    """``ξ(t) = ξ₀ (1 + t/t₀)^(−α)`` (:class:`~reduced_pde.schedules.LearningRateSchedule`)."""
    return xi0 * (1.0 + t / t0) ** (-alpha)


@njit(cache=True)
def step_to_output(dt: float, max_dt: float, t: float, t_end: float) -> tuple[float, bool]:
    """``(min(dt, max_dt), False)``, or ``(t_end − t, True)`` when that step would reach (within 1e-12
    relative) or pass the output time: outputs are hit exactly."""
    dt = min(dt, max_dt)
    remaining = t_end - t
    if dt >= remaining * (1.0 - 1e-12):
        return remaining, True
    return dt, False


@njit(cache=True)
def _dot(a, b):
    """``Σ_j a_j b_j`` with four independent accumulators (re-associated: the serial sum is bound by
    the latency of one addition per term; four chains run in parallel and vectorise)."""
    n = a.shape[0]
    acc0 = 0.0
    acc1 = 0.0
    acc2 = 0.0
    acc3 = 0.0
    j = 0
    while j + 3 < n:
        acc0 += a[j] * b[j]
        acc1 += a[j + 1] * b[j + 1]
        acc2 += a[j + 2] * b[j + 2]
        acc3 += a[j + 3] * b[j + 3]
        j += 4
    while j < n:
        acc0 += a[j] * b[j]
        j += 1
    return (acc0 + acc1) + (acc2 + acc3)


@njit(cache=True)
def low_rank_potential(masses, v, weights, features, moments, psi):
    """``ψ_j = v_j + Σ_k λ_k f_k(j) M_k`` into ``psi``, with the weighted moments ``λ_k M_k``,
    ``M_k = Σ_j f_k(j) masses_j``, into ``moments``: O(points × rank), the moments by re-associated
    sums, then ψ and ``Σ v m`` in one pass.  Returns ``Σ_j masses_j (v_j + ψ_j) = 2 Σ v m + Σ_k λ_k M_k²``,
    i.e. ``R_h − E[y²]``."""
    n = masses.shape[0]
    rank = weights.shape[0]
    energy = 0.0
    for k in range(rank):
        moments[k] = _dot(features[k], masses)
        energy += weights[k] * moments[k] * moments[k]
    for k in range(rank):
        moments[k] *= weights[k]  # λ_k M_k from here on
    potential = 0.0
    for j in range(n):  # one pass: ψ and Σ v m
        acc = v[j]
        for k in range(rank):
            acc += moments[k] * features[k, j]
        psi[j] = acc
        potential += v[j] * masses[j]
    return energy + 2.0 * potential


# ------------------------------------------------------------------------------------------------
# compiled kernels (flat C-order arrays; shape = (n0, n1, n2), strides (n1 n2, n2, 1))
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def _potential(p, volumes, linear, linear_factor, other_index, v_other, weights, features, dense,
               use_dense, aggregated, moments, phi, psi):
    """``ψ_i = ℓ_i φ_{o(i)}`` into ``psi`` with ``A_j = Σ_{o(i) = j} ℓ_i p_i |cell_i|`` (``aggregated``),
    ``φ = v₁ + Σ_k λ_k M_k f_k``, ``M_k = Σ_j f_k(j) A_j`` (``moments``), or ``φ = v₁ + U A`` (dense).
    Without a linear coordinate (``linear`` False) ``ℓ ≡ 1``, ``o = identity``: ``A = m`` and ``ψ = φ``.
    Returns ``Σ_j A_j (v₁_j + φ_j)`` ``= 2 Σ v m + Σ λ M²`` (``= 2 v·m + m·U·m``), i.e. ``R_h − E[y²]``."""
    cells = p.shape[0]
    n_other = aggregated.shape[0]
    if linear:
        for j in range(n_other):
            aggregated[j] = 0.0
        for i in range(cells):
            aggregated[other_index[i]] += linear_factor[i] * (p[i] * volumes[i])
    else:
        for i in range(cells):
            aggregated[i] = p[i] * volumes[i]
    target = phi if linear else psi  # without a linear coordinate φ is ψ: written in place
    if use_dense:
        for j in range(n_other):
            acc = 0.0
            for k in range(n_other):
                acc += dense[j, k] * aggregated[k]
            target[j] = v_other[j] + acc
        energy = 0.0
        for j in range(n_other):
            energy += aggregated[j] * (v_other[j] + target[j])
    else:
        energy = low_rank_potential(aggregated, v_other, weights, features, moments, target)
    if linear:
        for i in range(cells):
            psi[i] = linear_factor[i] * phi[other_index[i]]
    return energy


@njit(cache=True)
def _line_fluxes(p, psi, speed, base, n, coefficients, stiffness, widths, inv_widths, inv_gaps, muscl, coupled,
                 accumulate, outflow, rate):
    """The faces of one contiguous line (stride 1, cells ``base … base + n − 1``) along d in one sweep, as
    :func:`_fluxes` (same arithmetic, same order), with the minmod slope, rate of change and outflow of
    the next cell carried from face to face in registers.  The stride-1 axis is the last one swept, so
    a cell is final once its right face is done: ``rate`` receives it, and only the maximum of the
    outflow is kept.  With ``accumulate`` the other axes' contributions already in ``rate`` and
    ``outflow`` are added, else they are taken as zero (one axis: no zeroing pass); ``coupled``: the
    coupling sum is formed (else 0).  The per-axis arrays are the rows d of :func:`_fluxes`' (an axis
    index inside the sweep's addressing costs a 1.7× slower sweep); ``muscl`` and ``accumulate`` are
    compile-time constants at every call.  Returns (coupling sum, a velocity was
    NaN, largest outflow of the line's cells)."""
    coupling = 0.0
    nonfinite = False
    largest = 0.0
    slope_here = 0.0  # zero slope in the first and last cell of the line
    # the line as views indexed from 0: the loop index is then known to be >= 0 and the compiled accesses
    # carry no negative-index wraparound (1.6× faster than base + k)
    p = p[base: base + n]
    psi = psi[base: base + n]
    coefficients = coefficients[base: base + n]
    stiffness = stiffness[base: base + n]
    outflow = outflow[base: base + n]
    rate = rate[base: base + n]
    rate_here = rate[0] if accumulate else 0.0
    out_here = outflow[0] if accumulate else 0.0
    for i in range(n - 1):
        slope_next = 0.0
        if muscl and i + 2 < n:
            slope_next = _minmod((p[i + 2] - p[i + 1]) * inv_gaps[i + 1], (p[i + 1] - p[i]) * inv_gaps[i])
        u = speed * coefficients[i] * (psi[i + 1] - psi[i])
        flux = 0.0
        out_next = outflow[i + 1] if accumulate else 0.0
        if u > 0.0:
            out_here += u * inv_widths[i]
            flux = u * (p[i] + 0.5 * widths[i] * slope_here)
        elif u < 0.0:
            out_next -= u * inv_widths[i + 1]
            flux = u * (p[i + 1] - 0.5 * widths[i + 1] * slope_next)
        elif math.isnan(u):
            nonfinite = True
        rate[i] = rate_here - flux * inv_widths[i]
        rate_here = (rate[i + 1] if accumulate else 0.0) + flux * inv_widths[i + 1]
        if coupled:
            q = stiffness[i]
            if q != 0.0:
                coupling += q * max(p[i], p[i + 1])
        slope_here = slope_next
        largest = max(largest, out_here)
        out_here = out_next
    rate[n - 1] = rate_here
    return coupling, nonfinite, max(largest, out_here)


@njit(cache=True)
def _strided_fluxes(p, psi, speed, base, n, stride, coefficients, stiffness, widths, inv_widths, inv_gaps, muscl,
                    coupled, first, outflow, rate, coupling):
    """The faces along d of one block of ``stride`` interleaved lines (cells ``base + k·stride + o``,
    k < n, o < stride; d is not the stride-1 axis), row of faces after row, each row a contiguous run:
    face velocity, upwind flux and its divergence into ``rate``, outflow into ``outflow`` (written, not
    added, when this is the ``first`` axis swept: no zeroing pass).  The MUSCL value of the upwind cell
    is reconstructed at the face (the minmod slope of that cell: the values of :func:`_line_fluxes`
    without east/west arrays).  Per-axis arrays: their rows d.  Returns (``coupling`` plus this block's coupling sum, a velocity was NaN)."""
    nonfinite = False
    for k in range(n - 1):
        start = base + k * stride
        inv_here = inv_widths[k]
        inv_next = inv_widths[k + 1]
        half_here = 0.5 * widths[k]
        half_next = 0.5 * widths[k + 1]
        sloped_here = muscl and k > 0  # zero slope in the first and last cell of every line
        sloped_next = muscl and k + 2 < n
        inv_left = inv_gaps[k - 1] if k > 0 else 0.0
        inv_mid = inv_gaps[k]
        inv_right = inv_gaps[k + 1] if k + 2 < n else 0.0
        write_here = first and k == 0
        # the rows as views indexed from 0 (no negative-index wraparound in the compiled accesses; rows
        # outside the block are empty views and never read)
        p_here = p[start: start + stride]
        p_next = p[start + stride: start + 2 * stride]
        p_below = p[max(start - stride, 0): start]
        p_above = p[start + 2 * stride: start + 3 * stride]
        psi_here = psi[start: start + stride]
        psi_next = psi[start + stride: start + 2 * stride]
        coefficient = coefficients[start: start + stride]
        stiffness_row = stiffness[start: start + stride]
        rate_here = rate[start: start + stride]
        rate_next = rate[start + stride: start + 2 * stride]
        outflow_here = outflow[start: start + stride]
        outflow_next = outflow[start + stride: start + 2 * stride]
        for o in range(stride):
            u = speed * coefficient[o] * (psi_next[o] - psi_here[o])
            flux = 0.0
            out_here = 0.0
            out_next = 0.0
            if u > 0.0:
                out_here = u * inv_here
                value = p_here[o]
                if sloped_here:
                    value = p_here[o] + half_here * _minmod((p_next[o] - p_here[o]) * inv_mid,
                                                            (p_here[o] - p_below[o]) * inv_left)
                flux = u * value
            elif u < 0.0:
                out_next = -u * inv_next
                value = p_next[o]
                if sloped_next:
                    value = p_next[o] - half_next * _minmod((p_above[o] - p_next[o]) * inv_right,
                                                            (p_next[o] - p_here[o]) * inv_mid)
                flux = u * value
            elif math.isnan(u):
                nonfinite = True
            if write_here:
                rate_here[o] = 0.0 - flux * inv_here
                outflow_here[o] = 0.0 + out_here
            else:
                rate_here[o] -= flux * inv_here
                outflow_here[o] += out_here
            if first:
                rate_next[o] = 0.0 + flux * inv_next
                outflow_next[o] = 0.0 + out_next
            else:
                rate_next[o] += flux * inv_next
                outflow_next[o] += out_next
            if coupled:
                q = stiffness_row[o]
                if q != 0.0:
                    coupling += q * max(p_here[o], p_next[o])
    return coupling, nonfinite


@njit(cache=True)
def _fluxes(p, psi, speed, shape, coefficients, stiffness, widths, inv_widths, inv_gaps, muscl, coupled, outflow,
            rate):
    """One pass per axis d over the faces between cell i and its + neighbour along d:

    * face velocity ``u = speed · K_d[i] (ψ_{i⁺} − ψ_i)`` (``K_d = c_d M_d / centre distance``,
      ``speed = −2ξ(t)``; :meth:`FiniteVolumeSolver.face_velocities` forms the same products);
    * upwind flux ``F = u⁺ p^E_i + u⁻ p^W_{i⁺}`` (MUSCL values reconstructed at the face, or ``p`` itself
      for upwind) and ``rate_i = dp_i/dt = −Σ_d (F_{i+½} − F_{i−½}) / Δx^d_i``;
    * the outflow ``Σ_d (max(u_{i+½}, 0) + max(−u_{i−½}, 0)) / Δx^d_i`` of each cell and, with
      ``coupled``, the coupling ``Σ_faces Q_f max(p_i, p_{i⁺})`` (``Q = stiffness``).

    The strided axes first (:func:`_strided_fluxes`, the first one writing ``rate`` and ``outflow``),
    the stride-1 axis last as contiguous lines (:func:`_line_fluxes`), which finish each cell and keep
    the largest outflow.  Returns ``(courant, coupling)``: the Courant rate ``max_i outflow_i`` (NaN if a
    velocity is NaN) and the interaction rate ``|speed| · coupling`` (0 without ``coupled``; module
    docstring).  Boundary faces carry no flux."""
    cells = p.shape[0]
    nonfinite = False
    coupling = 0.0
    largest = 0.0
    first = True
    stride = cells
    for d in range(3):
        n = shape[d]
        stride = stride // n
        if n < 2:
            continue
        if stride == 1:  # the last axis with more than one cell: contiguous lines
            for base in range(0, cells, n):
                if first:  # constant flags at each call: the compiled sweep has no branch on them
                    line_coupling, line_nonfinite, line_largest = _line_fluxes(
                        p, psi, speed, base, n, coefficients[d], stiffness[d], widths[d], inv_widths[d],
                        inv_gaps[d], muscl, coupled, False, outflow, rate)
                else:
                    line_coupling, line_nonfinite, line_largest = _line_fluxes(
                        p, psi, speed, base, n, coefficients[d], stiffness[d], widths[d], inv_widths[d],
                        inv_gaps[d], muscl, coupled, True, outflow, rate)
                coupling += line_coupling
                nonfinite = nonfinite or line_nonfinite
                largest = max(largest, line_largest)
            first = False
            break
        for base in range(0, cells, n * stride):
            if first:
                coupling, block_nonfinite = _strided_fluxes(
                    p, psi, speed, base, n, stride, coefficients[d], stiffness[d], widths[d], inv_widths[d],
                    inv_gaps[d], muscl, coupled, True, outflow, rate, coupling)
            else:
                coupling, block_nonfinite = _strided_fluxes(
                    p, psi, speed, base, n, stride, coefficients[d], stiffness[d], widths[d], inv_widths[d],
                    inv_gaps[d], muscl, coupled, False, outflow, rate, coupling)
            nonfinite = nonfinite or block_nonfinite
        first = False
    if first:  # a single cell: no faces
        for i in range(cells):
            rate[i] = 0.0
    if nonfinite or not math.isfinite(largest):
        largest = np.nan
    return largest, abs(speed) * coupling


@njit(cache=True)
def _evaluate(p, t, xi0, alpha, t0, shape, coefficients, stiffness, widths, inv_widths, inv_gaps, volumes, linear,
              linear_factor, other_index, v_other, weights, features, dense, use_dense, muscl, aggregated, moments,
              phi, psi, outflow, rate):
    """Potential, Courant and interaction rates and ``rate = dp/dt`` of ``p`` at time t (:func:`_potential`,
    :func:`_fluxes`); returns (Courant rate, interaction rate, R_h − E y²)."""
    energy = _potential(p, volumes, linear, linear_factor, other_index, v_other, weights, features, dense,
                        use_dense, aggregated, moments, phi, psi)
    speed = -2.0 * learning_rate(t, xi0, alpha, t0)
    coupled = p.shape[0] > 0  # True as a runtime value: the sweeps compiled for the time loop serve here
    if muscl:
        courant, coupling = _fluxes(p, psi, speed, shape, coefficients, stiffness, widths, inv_widths, inv_gaps, True,
                                    coupled, outflow, rate)
    else:
        courant, coupling = _fluxes(p, psi, speed, shape, coefficients, stiffness, widths, inv_widths, inv_gaps,
                                    False, coupled, outflow, rate)
    return courant, coupling, energy


@njit(cache=True)
def _combine(mode, old, stage, dt, rate, out, check, psi, volumes, with_energy):
    """One stage combination of the SSP Runge–Kutta schemes into ``out``: ``stage + dt·rate`` (mode 0,
    an Euler step), ``½ old + ½ (stage + dt·rate)`` (1), ``¾ old + ¼ (…)`` (2), ``old/3 + ⅔ (…)`` (3).
    With ``check`` the same pass returns (max, min of 0 and the values, all finite) for the positivity
    check, and with ``with_energy`` also ``2 Σ_i ψ_i out_i |cell_i|`` (the risk of a state whose ψ does
    not depend on it: rank 0)."""
    cells = out.shape[0]
    pmax = 0.0
    pmin = 0.0
    finite = True
    energy = 0.0
    for i in range(cells):
        x = stage[i] + dt * rate[i]
        if mode == 1:
            x = 0.5 * old[i] + 0.5 * x
        elif mode == 2:
            x = 0.75 * old[i] + 0.25 * x
        elif mode == 3:
            x = old[i] / 3.0 + (2.0 / 3.0) * x
        out[i] = x
        if check:  # NaN/inf fail every comparison, caught by the caller
            pmax = max(pmax, x)
            pmin = min(pmin, x)
            finite = finite and (x - x == 0.0)
            if with_energy:
                energy += psi[i] * (x * volumes[i])
    return pmax, pmin, finite, 2.0 * energy


@njit(cache=True)
def _advance_loop(p, t, t_end, shape, coefficients, stiffness, widths, gaps, volumes, linear, linear_factor,
                  other_index, v_other, weights, features, dense, use_dense, muscl, stages, cfl, bound, max_dt,
                  xi0, alpha, t0, target_second_moment, risk_prev, max_increase, max_steps, watch=False, guard_lo=-1,
                  guard_hi=0, min_core=0, tail_mass=0.0):
    """:func:`_advance_steps` with ``muscl`` a compile-time constant (the sweeps are compiled without a
    branch on it)."""
    if muscl:
        return _advance_steps(p, t, t_end, shape, coefficients, stiffness, widths, gaps, volumes, linear,
                              linear_factor, other_index, v_other, weights, features, dense, use_dense, True, stages,
                              cfl, bound, max_dt, xi0, alpha, t0, target_second_moment, risk_prev, max_increase,
                              max_steps, watch, guard_lo, guard_hi, min_core, tail_mass)
    return _advance_steps(p, t, t_end, shape, coefficients, stiffness, widths, gaps, volumes, linear, linear_factor,
                          other_index, v_other, weights, features, dense, use_dense, False, stages, cfl, bound,
                          max_dt, xi0, alpha, t0, target_second_moment, risk_prev, max_increase, max_steps, watch,
                          guard_lo, guard_hi, min_core, tail_mass)


@njit(cache=True)
def _advance_steps(p, t, t_end, shape, coefficients, stiffness, widths, gaps, volumes, linear, linear_factor,
                   other_index, v_other, weights, features, dense, use_dense, muscl, stages, cfl, bound, max_dt,
                   xi0, alpha, t0, target_second_moment, risk_prev, max_increase, max_steps, watch, guard_lo,
                   guard_hi, min_core, tail_mass):
    """Advance the flat density ``p`` (in place) from ``t`` to ``t_end``.

    Returns ``(status, t, steps, risk, max_increase, bad_cell, bad_value, t_fail)`` : on error ``p`` is the last valid state (at ``t``)
    and ``t_fail`` the time at which the failure was detected.  With ``watch`` (an adapted grid,
    :mod:`solvers.adaptive_grid`) the core cells ``(i_lo, i_hi)`` of the law (:func:`core_cells` with
    ``tail_mass``) are found after every step, and the loop returns ``_REMAP`` at the current time when
    ``i_lo < guard_lo``, ``i_hi > guard_hi`` or ``i_hi − i_lo + 1 < min_core``.

    Work per step: the potential once per stage (once per call when it does not depend on p: rank 0
    without a dense kernel, ψ = v, whose risk ``2 Σ ψ m`` is then summed in the combination pass), one
    flux pass per axis and stage (:func:`_fluxes`; the interaction rate only at the first stage, the
    only one whose rate sets dt), one pass per stage combination with the positivity check in the last
    (:func:`_combine`); the new state goes to a second buffer and the two are swapped (``p`` receives
    the final state on return).
    """
    cells = p.shape[0]
    n_other = v_other.shape[0]
    sub_grid = np.empty((2, n_other))  # aggregated masses and φ on the sub-grid
    aggregated, phi = sub_grid[0], sub_grid[1]
    moments = np.zeros(max(weights.shape[0], 1))
    work = np.empty((6, cells))  # one block of per-cell work arrays
    psi, outflow, rate, stage_rate, p1, p2 = work[0], work[1], work[2], work[3], work[4], work[5]
    spare = np.empty(cells)  # the second state buffer
    inv_widths = 1.0 / widths  # reciprocals once: the sweeps multiply
    inv_gaps = 1.0 / gaps
    static = weights.shape[0] == 0 and not use_dense  # ψ = v (times ℓ): independent of p
    later = cells < 0  # no interaction rate at the later stages (False as a runtime value: the same compiled sweep)
    cur = p  # the state at t
    new = spare
    swapped = False  # cur is spare, not p
    energy = 0.0
    if static:
        energy = _potential(cur, volumes, linear, linear_factor, other_index, v_other, weights, features, dense,
                            use_dense, aggregated, moments, phi, psi)
    steps = 0
    risk = risk_prev
    status = _OK
    bad_cell = -1
    bad_value = 0.0
    t_fail = t  # the time at which a failure was detected
    while t < t_end:
        if steps >= max_steps:
            status, t_fail = _MAX_STEPS, t
            break
        if not static:
            energy = _potential(cur, volumes, linear, linear_factor, other_index, v_other, weights, features, dense,
                                use_dense, aggregated, moments, phi, psi)
        speed = -2.0 * learning_rate(t, xi0, alpha, t0)
        courant_rate, coupling = _fluxes(cur, psi, speed, shape, coefficients, stiffness, widths, inv_widths,
                                         inv_gaps, muscl, not static, outflow, rate)
        risk_now = target_second_moment + energy
        if steps > 0 and risk_now - risk_prev > max_increase:
            max_increase = risk_now - risk_prev
        risk_prev = risk_now
        risk = risk_now
        if not (math.isfinite(courant_rate) and math.isfinite(coupling)):
            status, t_fail = _NONFINITE, t
            bad_value = courant_rate
            for i in range(cells):  # locate the offending cell: the density first, then ψ
                if not math.isfinite(psi[i]):
                    bad_cell, bad_value = i, psi[i]
                    break
            for i in range(cells):
                if not math.isfinite(cur[i]):
                    bad_cell, bad_value = i, cur[i]
                    break
            break
        rate_bound = max(courant_rate, coupling)
        dt, last = step_to_output(cfl / rate_bound if rate_bound > 0.0 else np.inf, max_dt, t, t_end)
        while True:
            retake = False
            if stages == 1:
                pmax, pmin, finite, energy_new = _combine(0, cur, cur, dt, rate, new, True, psi, volumes, static)
                break
            _combine(0, cur, cur, dt, rate, p1, False, psi, volumes, False)
            if not static:
                _potential(p1, volumes, linear, linear_factor, other_index, v_other, weights, features, dense,
                           use_dense, aggregated, moments, phi, psi)
            c1, _ = _fluxes(p1, psi, -2.0 * learning_rate(t + dt, xi0, alpha, t0), shape, coefficients, stiffness,
                            widths, inv_widths, inv_gaps, muscl, later, outflow, stage_rate)
            c1 = c1 * dt
            if c1 > bound:
                dt = dt * cfl / c1
                last = False
                retake = True
            elif stages == 2:
                pmax, pmin, finite, energy_new = _combine(1, cur, p1, dt, stage_rate, new, True, psi, volumes,
                                                          static)
            else:
                _combine(2, cur, p1, dt, stage_rate, p2, False, psi, volumes, False)
                if not static:
                    _potential(p2, volumes, linear, linear_factor, other_index, v_other, weights, features, dense,
                               use_dense, aggregated, moments, phi, psi)
                c2, _ = _fluxes(p2, psi, -2.0 * learning_rate(t + 0.5 * dt, xi0, alpha, t0), shape, coefficients,
                                stiffness, widths, inv_widths, inv_gaps, muscl, later, outflow, stage_rate)
                c2 = c2 * dt
                if c2 > bound:
                    dt = dt * cfl / c2
                    last = False
                    retake = True
                else:
                    pmax, pmin, finite, energy_new = _combine(3, cur, p2, dt, stage_rate, new, True, psi, volumes,
                                                              static)
            if not retake:
                break
            if dt < 1e-14 * (1.0 + abs(t)):
                status, t_fail = _DT_UNDERFLOW, t
                bad_value = dt
                break
        if status != _OK:
            break
        if dt < 1e-14 * (1.0 + abs(t)) and not last:
            status, t_fail = _DT_UNDERFLOW, t
            bad_value = dt
            break
        if not (finite and math.isfinite(pmax)) or pmin < -NEGATIVE_TOLERANCE * pmax:
            t_fail = t + dt
            for i in range(cells):  # failure: locate the first offending cell
                if not math.isfinite(new[i]):
                    status, bad_cell, bad_value = _NONFINITE, i, new[i]
                    break
            if status == _OK:
                for i in range(cells):
                    if new[i] < -NEGATIVE_TOLERANCE * pmax:
                        status, bad_cell, bad_value = _NEGATIVE, i, new[i]
                        break
            if status != _OK:
                break
        cur, new = new, cur
        swapped = not swapped
        energy = energy_new
        t = t_end if last else t + dt
        steps += 1
        if watch:
            i_lo, i_hi = core_cells(cur, volumes, tail_mass)
            if i_lo < guard_lo or i_hi > guard_hi or i_hi - i_lo + 1 < min_core:
                status = _REMAP
                break
    if swapped:  # the final (or last valid) state into the caller's array
        for i in range(cells):
            p[i] = cur[i]
    if status == _OK or status == _REMAP:
        energy = _potential(p, volumes, linear, linear_factor, other_index, v_other, weights, features, dense,
                            use_dense, aggregated, moments, phi, psi)
        risk_now = target_second_moment + energy
        if (steps > 0 or status == _REMAP) and risk_now - risk_prev > max_increase:
            max_increase = risk_now - risk_prev
        return status, t, steps, risk_now, max_increase, -1, 0.0, t
    return status, t, steps, risk, max_increase, bad_cell, bad_value, t_fail


# ------------------------------------------------------------------------------------------------
# Python interface
# ------------------------------------------------------------------------------------------------
def raise_common_status(status: int, value: float, where: str, t: float, kept_time: float,
                        max_steps: int) -> None:
    """Raise the :class:`SolverError` of the status codes both compiled grid loops share (non-finite,
    negative density, too many steps), naming the cell (``where``), the time and the kept state."""
    kept = f" (state kept at t = {kept_time:.6g})"
    if status == _NONFINITE:
        raise SolverError(f"density or potential became non-finite ({value}){where} at t = {t:.6g}{kept}")
    if status == _NEGATIVE:
        raise SolverError(f"density became negative ({value:.3g}){where} at t = {t:.6g}{kept}")
    if status == _MAX_STEPS:
        raise SolverError(f"more than solver.max_steps_per_output = {max_steps} steps before the next output; "
                          f"stopped at t = {t:.6g}")


def _points(grid_points: np.ndarray) -> np.ndarray:
    """Points as the problem takes them: (M,) for one coordinate (1-D problems such as MMN18 take
    radii), (M, D) otherwise."""
    return grid_points[:, 0].copy() if grid_points.shape[1] == 1 else grid_points


def _finite_array(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    if not np.all(np.isfinite(array)):
        bad = int(np.argmax(~np.isfinite(array.ravel())))
        raise ValueError(f"{name} is not finite (entry {bad} = {array.ravel()[bad]})")
    return np.ascontiguousarray(array)


class FiniteVolumeSolver(MonitoredDensityState):
    """Stateful finite-volume solver on a :class:`TensorGrid` (module docstring: equation and scheme).

    Parameters: ``problem``, ``grid`` (a :class:`TensorGrid` whose axes are the problem's coordinates, in
    order, inside ``problem.domain()`` and reaching its finite ends; for a one-coordinate problem a
    :class:`~solvers.grid.UniformGrid1D` is accepted and becomes the single axis),
    ``scheme`` ("muscl" | "upwind"), ``cfl`` (in (0, 1] for upwind, (0, ½] for MUSCL), ``schedule``
    (ξ(t)), ``kernel`` ("low_rank" | "dense" | a matrix: (cells, cells), or (n, n) on the sub-grid of
    the non-linear coordinates when the linear-coordinate path is used, meaning u = a a' U), ``max_dt``,
    ``initial_density`` (shape ``grid.shape``; default: exact cell masses of ``problem.initial_law()``
    over the cell volumes), ``time_stepper`` ("euler" | "ssprk2" | "ssprk3"), ``rates`` (c_d: None for
    ones, a sequence of D numbers or a mapping {coordinate: rate}, each finite and >= 0),
    ``use_linear_coordinate`` (evaluate features on the sub-grid when ``problem.linear_coordinate`` is
    set; False forces the generic path), ``adapt`` (a :class:`~solvers.adaptive_grid.RemapPolicy`: keep
    the grid's cell count on a window that follows the law inside the given axis, remapped conservatively
    between compiled chunks; one coordinate only, not with a kernel matrix; None: the grid is fixed),
    ``allow_large`` (grids needing more than :data:`~solvers.common.MEMORY_LIMIT` = 4 GiB are refused
    without it; beyond 80% of the available memory always).

    Attributes: ``time``, ``density`` (cell averages w.r.t. dx, shape ``grid.shape``), ``masses``,
    ``steps``, ``max_risk_increase``, ``rank``, ``interaction_points``.  Discrete fields of the current
    state: :meth:`potential` (ψ), :meth:`discrete_risk` (R_h), :meth:`face_velocities`,
    :meth:`rates_of_change` (Courant and interaction rates).  Recording: :meth:`observables`,
    :meth:`static_fields`, :meth:`diagnostics`, :meth:`config`; checkpointing: :meth:`state`,
    :meth:`set_state`, :meth:`from_state`.
    """

    monitored = "risk"

    def __new__(cls, *args: Any, **kwargs: Any) -> FiniteVolumeSolver:
        """``adapt = MovePolicy(...)`` (``grid.adapt = "move"``) builds the moving-grid subclass of
        :mod:`solvers.moving_grid`."""
        from solvers.moving_grid import MovePolicy, MovingGridSolver

        if cls is FiniteVolumeSolver and isinstance(kwargs.get("adapt"), MovePolicy):
            cls = MovingGridSolver
        return super().__new__(cls)

    def __init__(self, problem: ReducedProblem, grid: TensorGrid | UniformGrid1D, scheme: str = "muscl",
                 cfl: float = 0.4, schedule: LearningRateSchedule | None = None,
                 kernel: str | np.ndarray = "low_rank", max_dt: float | None = None,
                 initial_density: np.ndarray | None = None, time_stepper: str | None = None,
                 rates: Sequence[float] | Mapping[str, float] | None = None,
                 use_linear_coordinate: bool = True,
                 max_steps_per_output: int = 100_000_000, adapt: RemapPolicy | None = None,
                 allow_large: bool = False) -> None:
        check_instance("problem", problem, ReducedProblem)
        check_instance("schedule", schedule, LearningRateSchedule, optional=True)
        check_instance("grid.adapt", adapt, RemapPolicy, optional=True)
        grid = as_tensor_grid(grid, problem.coordinate_names)
        check_grid_in_domain(grid, problem.domain())
        if adapt is not None:
            if grid.dimension != 1:
                raise ValueError(f"grid.adapt = 'remap' follows the law on one-coordinate grids; this grid has "
                                 f"axes {list(grid.names)} (use grid.adapt = 'none')")
            if not isinstance(kernel, str):
                raise ValueError("grid.adapt = 'remap' rebuilds the kernel on every new window: pass kernel = "
                                 "'low_rank' or 'dense', not a matrix")
        self.adapt = adapt
        self.given_grid = grid
        self._kernel_argument, self._use_linear_argument = kernel, bool(use_linear_coordinate)
        self.remaps = 0
        self.remap_folded_mass = 0.0
        self.max_remap_risk_change = -math.inf
        self.initial_cut_mass = 0.0
        if scheme not in SCHEMES:
            raise ValueError(f"solver.scheme = {scheme!r} must be one of {SCHEMES}")
        self.bound = POSITIVITY_BOUND[scheme]
        self.cfl = check_number("solver.cfl", cfl, 0.0, self.bound, low_open=True)
        if time_stepper is None:
            time_stepper = _DEFAULT_STEPPER[scheme]
        if time_stepper not in TIME_STEPPERS:
            raise ValueError(f"solver.time_stepper = {time_stepper!r} must be one of "
                             f"{tuple(TIME_STEPPERS)}")
        if max_dt is not None:
            max_dt = check_number("solver.max_dt", max_dt, 0.0, math.inf, low_open=True)
        if isinstance(max_steps_per_output, bool) or int(max_steps_per_output) < 1:
            raise ValueError(f"solver.max_steps_per_output = {max_steps_per_output} must be >= 1")
        self.problem = problem
        self.grid = grid
        self.scheme = scheme
        self.time_stepper = time_stepper
        self.schedule = schedule if schedule is not None else LearningRateSchedule()
        self.max_dt = max_dt
        self.max_steps_per_output = int(max_steps_per_output)
        self.rates = self._check_rates(rates)
        self._check_memory(kernel, bool(use_linear_coordinate), bool(allow_large))

        self._build_geometry()
        self._build_interaction(kernel, bool(use_linear_coordinate))
        self._build_stiffness()

        if initial_density is None:
            masses = np.asarray(problem.initial_law().cell_masses(grid.edges), dtype=float)
            if masses.shape != grid.shape:
                raise ValueError(f"problem.initial_law().cell_masses returned shape {masses.shape}, "
                                 f"expected {grid.shape}")
            density = masses / grid.volumes
        else:
            density = np.array(initial_density, dtype=float)
            if density.shape != grid.shape:
                raise ValueError(f"initial_density has shape {density.shape}, expected {grid.shape}")
            if not np.all(np.isfinite(density)) or np.any(density < 0) or density.sum() <= 0:
                raise ValueError("initial_density must be finite, >= 0, with positive mass")
        self._reset_state(density)
        if adapt is not None:
            self._start_window(initial_density is None)
        self.initial_mass = float(np.sum(self._density * self._volumes))
        self.wall_time = 0.0

    # ---- adapted grid (solvers.adaptive_grid) ------------------------------------------------------
    def _start_window(self, from_law: bool) -> None:
        """The first window: around the quantiles τ, 1 − τ of ``problem.initial_law()`` (exact cell
        masses on it; the law's mass outside is ``initial_cut_mass``), or around the core of a given
        initial density (remapped onto it)."""
        outer, policy = self.given_grid.axes[0], self.adapt
        if from_law:
            law = self.problem.initial_law()
            # the law's one marginal (``InitialLaw.marginals``: the law itself for a one-coordinate law)
            levels = np.array([policy.tail, 1.0 - policy.tail])
            q_lo, q_hi = (float(q) for q in np.ravel(law.marginals[0].quantile(levels)))
            extent = q_hi - q_lo
            if not (math.isfinite(extent) and extent > 0.0):
                raise ValueError(f"grid.adapt = 'remap' needs an initial law with a spread (its quantiles "
                                 f"{policy.tail:g} and 1 − {policy.tail:g} are {q_lo:g} and {q_hi:g})")
            edges = GridAxis.uniform(outer.name, max(outer.lower, q_lo - policy.margin * extent),
                                     min(outer.upper, q_hi + policy.margin * extent), outer.cells).edges
            # exact masses of the window's cells and of the two outer pieces it cuts off (≤ 2τ together)
            pieces = np.concatenate([[outer.lower], edges, [outer.upper]])
            pieces = pieces[np.concatenate([[True], np.diff(pieces) > 0.0])]  # a window at an outer bound
            masses_all = np.asarray(law.cell_masses([pieces]), dtype=float).reshape(-1)
            start = 1 if edges[0] > outer.lower else 0
            masses = masses_all[start: start + outer.cells]
            self.initial_cut_mass = float(masses_all.sum() - masses.sum())
            self._set_window(edges)
            self._density = np.ascontiguousarray(masses / self._volumes)
        else:
            self._remap()
        self._watch_core()

    def _set_window(self, edges: np.ndarray) -> None:
        """Make ``edges`` the grid and rebuild what depends on it (geometry, v and the kernel on the new
        centres, the interaction rate's stiffness)."""
        self.grid = TensorGrid([GridAxis(self.given_grid.axes[0].name, np.asarray(edges, dtype=float), "uniform")])
        self._build_geometry()
        self._build_interaction(self._kernel_argument, self._use_linear_argument)
        self._build_stiffness()

    def _watch_core(self) -> None:
        """Core cells of the current law and the triggers of the next remap (module docstring of
        :mod:`solvers.adaptive_grid`)."""
        cells, outer, axis = self.grid.cells, self.given_grid.axes[0], self.grid.axes[0]
        mass = float(np.sum(self._density * self._volumes))
        self._tail_mass = self.adapt.tail * mass
        i_lo, i_hi = core_cells(self._density, self._volumes, self._tail_mass)
        self._guard_lo = int(i_lo) // 2 if axis.lower > outer.lower else -1
        self._guard_hi = int(i_hi) + (cells - 1 - int(i_hi)) // 2 if axis.upper < outer.upper else cells
        self._min_core = int(self.adapt.narrowing * (int(i_hi) - int(i_lo) + 1))

    def _remap(self) -> None:
        """Remap the density conservatively onto the window of the current law (same number of cells)."""
        outer, old = self.given_grid.axes[0], self.grid.axes[0]
        masses = self._density * self._volumes
        lower, upper = law_window(old.edges, masses, self.adapt, outer.lower, outer.upper)
        edges = GridAxis.uniform(old.name, lower, upper, old.cells).edges
        density = np.empty(old.cells)
        self.remap_folded_mass += float(remap_density(np.ascontiguousarray(old.edges), self._density, edges,
                                                      density))
        self._set_window(edges)
        self._density = density

    # ---- set-up ------------------------------------------------------------------------------------
    def _check_memory(self, kernel: Any, use_linear_coordinate: bool, allow_large: bool) -> None:
        """Refuse, before any allocation, a grid whose working arrays (``40 C`` floats for C cells) and
        dense kernel (``n²`` for the n cells of the non-linear coordinates) this machine cannot hold, or
        that exceed :data:`~solvers.common.MEMORY_LIMIT` without ``allow_large`` (same estimate and
        message as :mod:`reduced_pde.running.resources`)."""
        grid, cells = self.grid, int(self.grid.cells)
        field = "grid " + " x ".join(f"{axis.name}: {axis.cells}" for axis in grid.axes) + f" = {cells} cells"
        total = 8.0 * 40 * cells
        if isinstance(kernel, str) and kernel == "dense":
            linear = self.problem.linear_coordinate if use_linear_coordinate else None
            other = cells // grid.shape[grid.names.index(linear)] if linear in grid.names else cells
            total += 8.0 * other**2
            field += f" with kernel = 'dense' on {other} cells"
        check_memory(field, total, "the grid working arrays and interaction", allow_large=allow_large)

    def _check_rates(self, rates: Sequence[float] | Mapping[str, float] | None) -> np.ndarray:
        names = self.grid.names
        if rates is None:
            values = [1.0] * len(names)
        elif isinstance(rates, Mapping):
            unknown = sorted(set(rates) - set(names))
            if unknown:
                raise ValueError(f"solver.rates: unknown coordinate(s) {unknown}; coordinates are {list(names)}")
            values = [rates.get(name, 1.0) for name in names]
        else:
            values = list(rates)
            if len(values) != len(names):
                raise ValueError(f"solver.rates = {values} must have one entry per coordinate {list(names)}")
        return np.array([check_number(f"solver.rates.{name}", value, 0.0, math.inf)
                         for name, value in zip(names, values)])

    def _build_geometry(self) -> None:
        """Flat, three-axis padded arrays of the compiled loop: face coefficients K_d = c_d M_d / gap,
        widths and centre gaps (padded with ones), volumes."""
        grid = self.grid
        shape3 = grid.shape + (1,) * (MAX_DIMENSION - grid.dimension)
        self._shape = tuple(int(n) for n in shape3)
        longest = max(self._shape)
        self._widths = np.ones((MAX_DIMENSION, longest))
        self._gaps = np.ones((MAX_DIMENSION, longest))
        self._coefficients = np.zeros((MAX_DIMENSION, grid.cells))
        for d, axis in enumerate(grid.axes):
            self._widths[d, : axis.cells] = axis.widths
            gaps = np.diff(axis.centers)
            self._gaps[d, : axis.cells - 1] = gaps
            mobility = np.asarray(self.problem.mobility(_points(grid.face_points(d, interior=True))),
                                  dtype=float)
            faces = list(grid.shape)
            faces[d] -= 1
            if mobility.shape != (int(np.prod(faces)), grid.dimension):
                raise ValueError(f"problem.mobility returned shape {mobility.shape}, expected "
                                 f"({int(np.prod(faces))}, {grid.dimension})")
            column = mobility[:, d]
            if not np.all(np.isfinite(column)) or np.any(column < 0):
                raise ValueError(f"problem.mobility of coordinate {axis.name} must be finite and >= 0 "
                                 f"on the faces (min {column.min()})")
            shape = [1] * grid.dimension
            shape[d] = axis.cells - 1
            coefficient = np.zeros(grid.shape)
            index = [slice(None)] * grid.dimension
            index[d] = slice(0, axis.cells - 1)
            coefficient[tuple(index)] = self.rates[d] * column.reshape(faces) / gaps.reshape(shape)
            self._coefficients[d] = coefficient.ravel()
        self._volumes = np.ascontiguousarray(grid.volumes.ravel())

    def _build_interaction(self, kernel: str | np.ndarray, use_linear_coordinate: bool) -> None:
        grid, problem = self.grid, self.problem
        linear = problem.linear_coordinate if use_linear_coordinate else None
        if isinstance(kernel, str):
            if kernel not in ("low_rank", "dense"):
                raise ValueError(f"solver.kernel = {kernel!r} must be 'low_rank', 'dense' or a matrix")
            self.kernel_name = kernel
            matrix = None
        else:
            self.kernel_name = "dense_matrix"
            matrix = np.asarray(kernel, dtype=float)
            if linear is not None and matrix.shape == (grid.cells, grid.cells):
                linear = None  # a full matrix: the generic path
        if linear is not None and linear not in grid.names:
            raise ValueError(f"problem.linear_coordinate = {linear!r} is not a coordinate {grid.names}")
        self.linear_coordinate = linear
        if linear is None:
            points = _points(grid.center_points())
            self._linear_factor = np.ones(grid.cells)
            self._other_index = np.arange(grid.cells, dtype=np.int64)
        else:
            axis = grid.names.index(linear)
            other_shape = tuple(n for d, n in enumerate(grid.shape) if d != axis)
            sub = grid.center_points().reshape(grid.shape + (grid.dimension,))
            sub = np.take(sub, [0], axis=axis).reshape(-1, grid.dimension).copy()
            sub[:, axis] = 1.0
            points = _points(sub)
            index = np.indices(grid.shape).reshape(grid.dimension, -1)
            others = [index[d] for d in range(grid.dimension) if d != axis]
            self._other_index = (np.ravel_multi_index(others, other_shape).astype(np.int64)
                                 if others else np.zeros(grid.cells, dtype=np.int64))
            self._linear_factor = np.ascontiguousarray(grid.axes[axis].centers[index[axis]])
        n_other = int(np.asarray(points).shape[0])
        self._v = _finite_array("problem.reduced_potential", problem.reduced_potential(points), (n_other,))
        if linear is not None:
            self._check_linearity(points, axis)

        self._weights = np.zeros(0)
        self._features = np.zeros((0, n_other))
        self._dense = np.zeros((0, 0))
        if matrix is None:
            if kernel == "dense":
                if n_other * n_other > MAX_DENSE_ENTRIES:
                    raise ValueError(f"solver.kernel = 'dense' needs a ({n_other}, {n_other}) matrix, more "
                                     f"than {MAX_DENSE_ENTRIES:.0e} entries; use 'low_rank' or a coarser grid")
                self._dense = _finite_array("problem.interaction_kernel",
                                            problem.interaction_kernel(points, points), (n_other, n_other))
                self.rank = n_other
            else:
                low_rank = problem.interaction_low_rank(points)
                self.rank = low_rank.rank
                self._weights = _finite_array("interaction weights", low_rank.weights, (self.rank,))
                self._features = _finite_array("interaction features", np.reshape(
                    low_rank.features, (self.rank, n_other)), (self.rank, n_other))
        else:
            if matrix.shape != (n_other, n_other) or not np.all(np.isfinite(matrix)):
                allowed = f"({grid.cells}, {grid.cells})"
                if linear is not None:
                    allowed += f" or ({n_other}, {n_other}) on the sub-grid without {linear!r}"
                raise ValueError(f"solver.kernel matrix must be finite with shape {allowed}, got shape "
                                 f"{matrix.shape}")
            self._dense = np.ascontiguousarray(matrix)
            self.rank = n_other
        self._use_dense = self.kernel_name != "low_rank"
        self._points = points

    def _kernel_increments(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """``Σ_k |λ_k| (f_k(y) − f_k(y'))²`` (``U_yy + U_y'y' − 2 U_yy'`` dense, clipped at 0) for the
        sub-grid index pairs (first, second); ``first == second`` gives zeros."""
        if self._use_dense:
            dense = self._dense
            out = dense[first, first] + dense[second, second] - 2.0 * dense[first, second]
            return np.maximum(out, 0.0)
        weights = np.abs(self._weights)
        out = np.empty(first.size)
        step = max(1, 2_000_000 // max(self.rank, 1))
        for start in range(0, first.size, step):
            block = slice(start, start + step)
            jump = self._features[:, first[block]] - self._features[:, second[block]]
            out[block] = weights @ jump**2
        return out

    def _kernel_diagonal(self, index: np.ndarray) -> np.ndarray:
        """``Σ_k |λ_k| f_k(y)²`` (``U_yy`` dense, clipped at 0) at the sub-grid indices ``index``."""
        if self._use_dense:
            return np.maximum(np.diagonal(self._dense)[index], 0.0)
        # on the n sub-grid points first, then gathered: K n temporaries instead of K × len(index)
        return (np.abs(self._weights) @ self._features ** 2)[index]

    def _build_stiffness(self) -> None:
        """``Q_f = K_f |face_f| S_f`` on the interior faces (stored at the lower cell, like the face
        coefficients), ``S_f = u(x_i, x_i) − 2 u(x_i, x_j) + u(x_j, x_j)`` (``Σ_k |λ_k| (g_k(x_j) −
        g_k(x_i))²``): the interaction rate of the module docstring is ``2ξ Σ_f Q_f max(p_i, p_j)``."""
        grid = self.grid
        self._stiffness = np.zeros((MAX_DIMENSION, grid.cells))
        if not self._use_dense and self.rank == 0:
            return
        index = np.arange(grid.cells).reshape(grid.shape)
        for d, axis in enumerate(grid.axes):
            below = [slice(None)] * grid.dimension
            above = [slice(None)] * grid.dimension
            below[d], above[d] = slice(0, axis.cells - 1), slice(1, axis.cells)
            lower, upper = index[tuple(below)].ravel(), index[tuple(above)].ravel()
            first, second = self._other_index[lower], self._other_index[upper]
            scale_lower, scale_upper = self._linear_factor[lower], self._linear_factor[upper]
            increments = np.empty(lower.size)
            same = first == second  # faces along the linear coordinate: g = a f(y), same y
            increments[same] = (scale_upper[same] - scale_lower[same]) ** 2 * self._kernel_diagonal(first[same])
            other = ~same  # faces along the other coordinates: same a on both sides
            increments[other] = scale_lower[other] ** 2 * self._kernel_increments(first[other], second[other])
            shape = [1] * grid.dimension
            shape[d] = axis.cells
            area = (grid.volumes / axis.widths.reshape(shape)).ravel()[lower]
            self._stiffness[d, lower] = self._coefficients[d, lower] * area * increments

    def _check_linearity(self, points: np.ndarray, axis: int) -> None:
        """Guard of the linear-coordinate path: v at a = 2 must be 2 v₁ on a few sub-grid points."""
        probe = np.array(points[: min(8, len(points))], dtype=float, copy=True)
        if probe.ndim == 1:
            probe = probe * 2.0
        else:
            probe[:, axis] = 2.0
        doubled = np.asarray(self.problem.reduced_potential(probe), dtype=float)
        expected = 2.0 * self._v[: len(probe)]
        if not np.allclose(doubled, expected, rtol=1e-10, atol=1e-12 * (1.0 + np.abs(expected).max())):
            raise ValueError(f"problem.linear_coordinate = {self.problem.linear_coordinate!r}, but v is not "
                             "linear in it (v(2, y) != 2 v(1, y)); pass use_linear_coordinate=False")

    @property
    def interaction_points(self) -> np.ndarray:
        """The points where v and the interaction features are evaluated: all cell centres, or the
        sub-grid of the other coordinates with the linear coordinate set to 1 (C order)."""
        return self._points

    # ---- state / checkpointing ---------------------------------------------------------------------
    @property
    def density(self) -> np.ndarray:
        """Cell averages (w.r.t. dx_1 … dx_D), shape ``grid.shape`` (a view of the solver's state)."""
        return self._density.reshape(self.grid.shape)

    @density.setter
    def density(self, value: np.ndarray) -> None:
        array = np.array(value, dtype=float)  # a copy: the compiled loop works in place
        if array.size != self.grid.cells:
            raise ValueError(f"density has {array.size} entries, expected {self.grid.cells} {self.grid.shape}")
        self._density = np.ascontiguousarray(array.reshape(-1))

    @property
    def max_risk_increase(self) -> float:
        """Largest single-step increase of the discrete risk R_h so far (negative if it always fell)."""
        return self.max_increase

    _ADAPT_STATE = ("remaps", "remap_folded_mass", "max_remap_risk_change", "initial_cut_mass")

    def state(self) -> dict[str, Any]:
        """Everything needed to resume bit-for-bit (with an adapted grid also its current ``edges``)."""
        out = super().state()
        if self.adapt is not None:
            out["edges"] = np.array(self.grid.axes[0].edges)
            out["remap_triggers"] = np.array([self._guard_lo, self._guard_hi, self._min_core, self._tail_mass])
            out.update({key: float(getattr(self, key)) for key in self._ADAPT_STATE})
        return out

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` (density of shape ``grid.shape``; with an adapted grid, on its ``edges``)."""
        if self.adapt is not None:
            if "edges" not in state:
                raise ValueError("state of an adapted grid (grid.adapt = 'remap') lacks its 'edges'")
            edges = np.asarray(state["edges"], dtype=float)
            if edges.shape != (self.grid.cells + 1,):
                raise ValueError(f"state edges have shape {edges.shape}, expected ({self.grid.cells + 1},)")
            self._set_window(edges)
            for key in self._ADAPT_STATE:
                setattr(self, key, int(state[key]) if key == "remaps" else float(state[key]))
        density = np.asarray(state["density"], dtype=float)
        if density.shape != self.grid.shape:
            raise ValueError(f"state density has shape {density.shape}, expected {self.grid.shape}")
        super().set_state({**state, "density": density.reshape(-1)})
        if self.adapt is not None:  # the triggers set at the last remap (not recomputed: bitwise resume)
            guard_lo, guard_hi, min_core, tail_mass = np.asarray(state["remap_triggers"], dtype=float)
            self._guard_lo, self._guard_hi, self._min_core = int(guard_lo), int(guard_hi), int(min_core)
            self._tail_mass = float(tail_mass)

    @classmethod
    def from_state(cls, problem: ReducedProblem, grid: TensorGrid | UniformGrid1D, state: dict[str, Any],
                   **kwargs: Any) -> FiniteVolumeSolver:
        solver = cls(problem, grid, **kwargs)
        solver.set_state(state)
        return solver

    def config(self) -> dict[str, Any]:
        return {
            "solver.name": "finite_volume",
            "solver.scheme": self.scheme,
            "solver.time_stepper": self.time_stepper,
            "solver.cfl": self.cfl,
            "solver.kernel": self.kernel_name,
            "solver.max_dt": math.inf if self.max_dt is None else self.max_dt,
            "solver.rates": [float(c) for c in self.rates],
            "solver.linear_coordinate": self.linear_coordinate or "none",
            **self.given_grid.config(),
            **(self.adapt.config() if self.adapt is not None else {"grid.adapt": "none"}),
            **{f"schedule.{k}": val for k, val in self.schedule.config().items()},
        }

    # ---- time stepping -----------------------------------------------------------------------------
    def advance(self, t_target: float) -> None:
        """Advance to exactly ``t_target`` (>= current time) in one compiled call."""
        t_target = float(t_target)
        if not (math.isfinite(t_target) and t_target >= self.time):
            raise ValueError(f"t_target = {t_target} must be finite and >= current time {self.time}")
        if t_target == self.time:
            return
        while True:
            status = self._advance_chunk(t_target)
            if status != _REMAP:
                break
            began = wallclock.perf_counter()
            risk_before = self.last_value
            self._remap()
            self._watch_core()
            self.remaps += 1
            self.last_value = self.discrete_risk()
            self.max_remap_risk_change = max(self.max_remap_risk_change, self.last_value - risk_before)
            self.wall_time += wallclock.perf_counter() - began

    def _advance_chunk(self, t_target: float) -> int:
        """One compiled call towards ``t_target``: returns ``_OK``, or ``_REMAP`` when an adapted grid
        needs a new window (the state is valid at ``self.time``); raises on the error statuses."""
        xi0, alpha, t0 = self.schedule.as_tuple()
        watch = self.adapt is not None
        began = wallclock.perf_counter()
        status, t, steps, risk, max_inc, cell, value, t_fail = _advance_loop(
            self._density, self.time, t_target, self._shape, self._coefficients, self._stiffness,
            self._widths,
            self._gaps, self._volumes, self.linear_coordinate is not None, self._linear_factor, self._other_index, self._v, self._weights,
            self._features, self._dense, self._use_dense, self.scheme == "muscl",
            TIME_STEPPERS[self.time_stepper], self.cfl, self.bound,
            math.inf if self.max_dt is None else self.max_dt, float(xi0), float(alpha), float(t0),
            float(self.problem.target_second_moment), self.last_value, self.max_increase,
            self.max_steps_per_output, watch, self._guard_lo if watch else -1,
            self._guard_hi if watch else 0, self._min_core if watch else 0, self._tail_mass if watch else 0.0)
        self.wall_time += wallclock.perf_counter() - began
        self.time = float(t)
        self.steps += int(steps)
        self.last_value = float(risk)
        self.max_increase = float(max_inc)
        if status not in (_OK, _REMAP):
            self._raise(status, t_fail, cell, value)
        return int(status)

    def _raise(self, status: int, t: float, cell: int, value: float) -> None:
        where = f" in {self.grid.describe_cell(cell)}" if cell >= 0 else ""
        raise_common_status(status, value, where, t, self.time, self.max_steps_per_output)
        if status == _DT_UNDERFLOW:
            raise SolverError(f"time step underflow (dt = {value:.3g}) at t = {t:.6g}: velocity blow-up?")
        raise SolverError(f"unknown status {status} at t = {t:.6g}")

    # ---- discrete fields ---------------------------------------------------------------------------
    def _fields(self) -> tuple[float, float, float, np.ndarray]:
        """(Courant rate, interaction rate, R_h, ψ (flat)) of the current state."""
        n_other, cells = self._v.shape[0], self.grid.cells
        psi = np.empty(cells)
        xi0, alpha, t0 = self.schedule.as_tuple()
        work = np.empty((2, cells))
        courant, coupling, energy = _evaluate(
            self._density, self.time, float(xi0), float(alpha), float(t0), self._shape,
            self._coefficients, self._stiffness, self._widths, 1.0 / self._widths, 1.0 / self._gaps, self._volumes,
            self.linear_coordinate is not None, self._linear_factor,
            self._other_index, self._v, self._weights, self._features, self._dense, self._use_dense,
            self.scheme == "muscl", np.empty(n_other), np.zeros(max(self._weights.shape[0], 1)), np.empty(n_other),
            psi, work[0], work[1])
        return float(courant), float(coupling), float(self.problem.target_second_moment + energy), psi

    def potential(self) -> np.ndarray:
        """``ψ(x_i; p)`` at the cell centres for the current density, shape ``grid.shape``."""
        return self._fields()[3].reshape(self.grid.shape)

    def discrete_risk(self) -> float:
        """``R_h = E[y²] + 2 Σ v m + Σ_k λ_k M_k²`` (``+ m·U·m`` dense) of the current density."""
        return self._fields()[2]

    def face_velocities(self) -> list[np.ndarray]:
        """Face velocities ``u`` of the current state, one array per axis d with ``N_d + 1`` faces along d
        (boundary faces included: they are zero, the zero-flux condition)."""
        psi = self._fields()[3].reshape(self.grid.shape)
        xi0, alpha, t0 = self.schedule.as_tuple()
        speed = -2.0 * learning_rate(self.time, float(xi0), float(alpha), float(t0))
        out = []
        for d, axis in enumerate(self.grid.axes):
            faces = list(self.grid.shape)
            faces[d] += 1
            full = np.zeros(faces)
            index, lower, upper = ([slice(None)] * self.grid.dimension for _ in range(3))
            index[d], lower[d], upper[d] = slice(1, axis.cells), slice(0, axis.cells - 1), slice(1, axis.cells)
            coefficient = self._coefficients[d].reshape(self.grid.shape)[tuple(lower)]
            # u = speed · K_d (ψ_{i⁺} − ψ_i), the products of the compiled sweep in the same order
            full[tuple(index)] = speed * coefficient * (psi[tuple(upper)] - psi[tuple(lower)])
            out.append(full)
        return out

    def rates_of_change(self) -> dict[str, float]:
        """``courant``: ``max_i Σ_d (max(u_{i+½}, 0) + max(−u_{i−½}, 0)) / Δx^d_i`` (dt × it is the
        Courant number of the positivity bound) and ``interaction``: the rate of the nonlocal coupling
        (module docstring) of the current state; the step is ``cfl / max`` of the two."""
        courant, coupling = self._fields()[:2]
        return {"courant": courant, "interaction": coupling}

    # ---- observables -------------------------------------------------------------------------------
    @property
    def masses(self) -> np.ndarray:
        """Cell masses ``p_i |cell_i|``, shape ``grid.shape``."""
        return (self._density * self._volumes).reshape(self.grid.shape)

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        return tuple(self.grid.names)

    def observables(self) -> dict[str, Any]:
        """``risk`` (R_h), ``mass``, ``mean_<x>``/``std_<x>`` and the 1-D marginal density ``marginal_<x>``
        (w.r.t. dx, shape (N_x,)) of every coordinate x, and ``density`` (shape ``grid.shape``)."""
        masses = self.masses
        mass = float(masses.sum())
        out: dict[str, Any] = {"risk": self.discrete_risk(), "mass": mass}
        for d, axis in enumerate(self.grid.axes):
            others = tuple(k for k in range(self.grid.dimension) if k != d)
            marginal = masses.sum(axis=others) if others else masses.copy()
            mean = float(axis.centers @ marginal / mass)
            var = float(((axis.centers - mean) ** 2) @ marginal / mass)
            out[f"mean_{axis.name}"] = mean
            out[f"std_{axis.name}"] = math.sqrt(max(var, 0.0))
            out[f"marginal_{axis.name}"] = marginal / axis.widths
        out["density"] = self.density.copy()
        if self.adapt is not None:  # the window moves: its cells are recorded with every output
            axis = self.grid.axes[0]
            out[f"{axis.name}_centers"] = axis.centers
            out[f"{axis.name}_edges"] = np.array(axis.edges)
        return out

    def static_fields(self) -> dict[str, np.ndarray]:
        """``<x>_centers`` and ``<x>_edges`` of every axis (static fields of a trajectory; none with an
        adapted grid, whose cells are recorded per output by :meth:`observables`)."""
        out: dict[str, np.ndarray] = {}
        if self.adapt is not None:
            return out
        for axis in self.grid.axes:
            out[f"{axis.name}_centers"] = axis.centers
            out[f"{axis.name}_edges"] = np.array(axis.edges)
        return out

    def diagnostics(self) -> dict[str, float]:
        """steps, max_risk_increase (largest single-step change of R_h; negative if it always fell),
        wall_time (seconds inside the compiled loop and the remaps), time_per_step, cell_updates_per_second, mass_error
        (|Σ m − m₀| / m₀), rank (cells of the sub-grid for a dense kernel) and cells; with an adapted grid
        also remaps, remap_folded_mass, max_remap_risk_change (largest R_h change across a remap) and
        initial_cut_mass (:mod:`solvers.adaptive_grid`)."""
        mass = float(np.sum(self._density * self._volumes))
        steps = max(self.steps, 1)
        return {"steps": float(self.steps), "max_risk_increase": float(self.max_increase),
                "wall_time": float(self.wall_time), "time_per_step": self.wall_time / steps,
                "cell_updates_per_second": (self.grid.cells * self.steps / self.wall_time
                                            if self.wall_time > 0 else math.nan),
                "mass_error": abs(mass - self.initial_mass) / self.initial_mass,
                "rank": float(self.rank), "cells": float(self.grid.cells),
                **({key: float(getattr(self, key)) for key in self._ADAPT_STATE} if self.adapt is not None else {})}


def solve_finite_volume(problem: ReducedProblem, grid: TensorGrid | UniformGrid1D,
                        output_times: Sequence[float], *, progress: bool = False, checkpoint: Any = None,
                        checkpoint_every: float = 60.0, resume: bool = False, **options: Any) -> Trajectory:
    """Solve from t = 0 and record observables and densities at ``output_times`` (module docstring);
    ``options`` go to :class:`FiniteVolumeSolver` (scheme, cfl, schedule, kernel, max_dt,
    initial_density, time_stepper, rates, ...), the checkpoint options to
    :func:`solvers.controller.run_simulation`.

    Returns a :class:`Trajectory` of kind ``"pde_finite_volume"`` with ``mean``/``std`` of every
    coordinate; fields ``density`` (T, *grid.shape), ``mass`` (T,), ``marginal_<x>`` (T, N_x),
    ``<x>_centers``, ``<x>_edges``; diagnostics of :meth:`FiniteVolumeSolver.diagnostics`.
    """
    from solvers.controller import run_simulation

    times = validate_output_times(output_times)
    solver = FiniteVolumeSolver(problem, grid, **options)
    return run_simulation(solver, times, kind="pde_finite_volume",
                          config={**problem.config(), **solver.config()},
                          static_fields=solver.static_fields(), checkpoint=checkpoint,
                          checkpoint_every=checkpoint_every, resume=resume, progress=progress)
