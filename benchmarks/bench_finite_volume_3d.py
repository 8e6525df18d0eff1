"""3-D finite volumes against a fused reference kernel, side by side in one run:

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_finite_volume_3d.py [--quick]

Problem: the shipped multi-index configuration (configs/multi_index.toml: coordinates (s1, s2, r) on its
box, d = 20, rank-7 interaction, no linear coordinate) on n³ uniform cells (16³, 32³, 48³), MUSCL +
SSP-RK2 and upwind + Euler, with the interaction and without it (rank 0: ψ = v).

The reference kernel (below) does the same arithmetic on the solver's own arrays (face coefficients
K_d = c_d M_d / gap, interaction stiffness Q_f, cell widths and centre gaps, volumes, v, features and
weights): moments ``λ_k Σ_j f_k(j) p_j |cell_j|`` by four-accumulator sums and ψ in one pass, then
one sweep over the cells per stage, blocked by lines along the stride-1 axis: each line, while in
cache, does its upper faces along the three axes — face velocity, minmod slope of the upwind cell,
upwind flux pushed into the two cells, outflow — after which (its lower faces having been done by the
lines before it) its cells are final: their rates and their outflows' contribution to the Courant
rate are taken there; the interaction rate ``|speed| Σ_f Q_f max(p_i, p_j)`` at the
first stage only (the only one whose rates set dt); then the stage combination, the last one with
the positivity/finiteness check in the same pass.  The scheme (MUSCL or upwind) and whether the
interaction rate is formed are compile-time constants of the sweep, as in the solver.  It does not compute the discrete risk (the solver
does, for ``max_risk_increase``), so the ratio is if anything on the strict side.  The solver runs the
same number of steps (its own dt; the reference uses dt = cfl / max(rates) from its own rates).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the code of this checkout

from reduced_pde.running.config import load_config  # noqa: E402
from solvers.adaptive_grid import minmod as _minmod  # noqa: E402  (the scheme's limiter)
from solvers.finite_volume import _dot as dot4  # noqa: E402  (the four-accumulator sum of the moments)
from reduced_pde.running.pipeline import make_pde_solver  # noqa: E402

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "multi_index.toml")


@njit(cache=True)
def _potential(p, volumes, v, weights, features, masses, moments, psi):
    """masses, λ_k M_k (four accumulators) and ψ = v + Σ_k λ_k M_k f_k."""
    n = p.shape[0]
    rank = weights.shape[0]
    for j in range(n):
        masses[j] = p[j] * volumes[j]
    for k in range(rank):
        moments[k] = weights[k] * dot4(features[k], masses)
    for j in range(n):
        acc = v[j]
        for k in range(rank):
            acc += moments[k] * features[k, j]
        psi[j] = acc


@njit(cache=True)
def _upper_faces(line, upper, below, above, psi_line, psi_upper, rate_line, out_line, rate_upper, out_upper, k_row,
                 q_row, speed, k, n, widths, inv_widths, inv_gaps, muscl, coupled, write_upper):
    """The faces between one line (row k of n along a strided axis) and the next line along that axis:
    face velocity, minmod slope of the upwind cell, upwind flux into both lines' rates, outflow; the next
    line's rate and outflow written (first touch) or added to.  Returns the coupling sum."""
    half_i, half_j = 0.5 * widths[k], 0.5 * widths[k + 1]
    inv_left, inv_mid = (inv_gaps[k - 1] if k > 0 else 0.0), inv_gaps[k]
    inv_right = inv_gaps[k + 1] if k + 2 < n else 0.0
    w_i, w_j = inv_widths[k], inv_widths[k + 1]
    sloped_lower, sloped_upper = muscl and k > 0, muscl and k + 2 < n  # zero slope at the line ends
    coupling = 0.0
    for c in range(line.shape[0]):
        u = speed * k_row[c] * (psi_upper[c] - psi_line[c])
        flux = 0.0
        if u > 0.0:
            value = line[c]
            if sloped_lower:
                value = line[c] + half_i * _minmod((upper[c] - line[c]) * inv_mid, (line[c] - below[c]) * inv_left)
            flux = u * value
        elif u < 0.0:
            value = upper[c]
            if sloped_upper:
                value = upper[c] - half_j * _minmod((above[c] - upper[c]) * inv_right, (upper[c] - line[c]) * inv_mid)
            flux = u * value
        rate_line[c] -= flux * w_i
        out_j = 0.0
        if u > 0.0:
            out_line[c] += u * w_i
        else:
            out_j = -u * w_j
        if write_upper:
            rate_upper[c] = flux * w_j
            out_upper[c] = out_j
        else:
            rate_upper[c] += flux * w_j
            out_upper[c] += out_j
        if coupled:
            coupling += q_row[c] * max(line[c], upper[c])
    return coupling


@njit(cache=True)
def reference_stage(p, psi, speed, shape, coefficients, stiffness, widths, inv_widths, inv_gaps, muscl, coupled,
                    outflow, rate):
    """dp/dt into ``rate`` in one sweep over the cells (module docstring); returns (courant, coupling rate).
    The sweep is blocked by lines along the stride-1 axis (views indexed from 0: no negative-index
    wraparound): for each line, while it is in cache, its upper faces along axis 0, then along axis 1
    (pushing into the next lines, which are written on first touch), then along the line itself with the
    slope and flux carried in registers, after which the line's cells are final."""
    n0, n1, n2 = shape
    s0 = n1 * n2
    s1 = n2
    courant = 0.0
    coupling = 0.0
    for a in range(n0):
        for b in range(n1):
            base = (a * n1 + b) * n2
            line = slice(base, base + n2)
            pl, psil, ratel, outl = p[line], psi[line], rate[line], outflow[line]
            if not (a > 0 or b > 0):  # no lower neighbour along axes 0, 1 has written this line
                for c in range(n2):
                    ratel[c] = 0.0
                    outl[c] = 0.0
            for d, k, n, stride in ((0, a, n0, s0), (1, b, n1, s1)):  # the strided axes: upper faces
                if k + 1 < n:
                    nxt = slice(base + stride, base + stride + n2)
                    below, above = p[max(base - stride, 0): base], p[base + 2 * stride: base + 2 * stride + n2]
                    args = (pl, p[nxt], below, above, psil, psi[nxt], ratel, outl, rate[nxt], outflow[nxt],
                            coefficients[d, line], stiffness[d, line], speed, k, n, widths[d], inv_widths[d],
                            inv_gaps[d], muscl, coupled)
                    if d == 0 or a == 0:  # the next line is touched first here (constant flag: no branch)
                        coupling += _upper_faces(*args, True)
                    else:
                        coupling += _upper_faces(*args, False)
            k2, q2 = coefficients[2, base: base + n2], stiffness[2, base: base + n2]
            rate_here = ratel[0]
            out_here = outl[0]
            slope_here = 0.0
            for c in range(n2 - 1):  # faces along the line: slope, rate and outflow of the next cell carried
                slope_next = 0.0
                if muscl and c + 2 < n2:
                    slope_next = _minmod((pl[c + 2] - pl[c + 1]) * inv_gaps[2, c + 1],
                                         (pl[c + 1] - pl[c]) * inv_gaps[2, c])
                u = speed * k2[c] * (psil[c + 1] - psil[c])
                flux = 0.0
                out_next = outl[c + 1]
                if u > 0.0:
                    flux = u * (pl[c] + 0.5 * widths[2, c] * slope_here)
                    out_here += u * inv_widths[2, c]
                elif u < 0.0:
                    flux = u * (pl[c + 1] - 0.5 * widths[2, c + 1] * slope_next)
                    out_next -= u * inv_widths[2, c + 1]
                ratel[c] = rate_here - flux * inv_widths[2, c]
                rate_here = ratel[c + 1] + flux * inv_widths[2, c + 1]
                if coupled:
                    coupling += q2[c] * max(pl[c], pl[c + 1])
                courant = max(courant, out_here)
                out_here = out_next
                slope_here = slope_next
            ratel[n2 - 1] = rate_here
            courant = max(courant, out_here)
    return courant, abs(speed) * coupling


@njit(cache=True)
def reference_update(p, p1, rate, dt, muscl):
    """The last stage combination into ``p`` — ``½ p + ½ (p1 + dt·rate)`` (SSP-RK2) or ``p + dt·rate``
    (Euler) — with the positivity/finiteness check in the same pass; False if it failed."""
    largest = 0.0
    smallest = 0.0
    finite = True
    for i in range(p.shape[0]):
        x = 0.5 * p[i] + 0.5 * (p1[i] + dt * rate[i]) if muscl else p[i] + dt * rate[i]
        p[i] = x
        largest = max(largest, x)
        smallest = min(smallest, x)
        finite = finite and (x - x == 0.0)
    return finite and math.isfinite(largest) and smallest >= -1e-12 * largest


@njit(cache=True)
def reference_steps(p, shape, volumes, v, weights, features, coefficients, stiffness, widths, gaps, speed, muscl,
                    cfl, steps):
    """``steps`` steps of SSP-RK2 (MUSCL) or Euler (upwind) with dt = cfl / max(rates), in place; False
    if the check failed.  ``muscl`` is a compile-time constant of the sweeps."""
    if muscl:
        return _reference_run(p, shape, volumes, v, weights, features, coefficients, stiffness, widths, gaps, speed,
                              True, cfl, steps)
    return _reference_run(p, shape, volumes, v, weights, features, coefficients, stiffness, widths, gaps, speed,
                          False, cfl, steps)


@njit(cache=True)
def _reference_run(p, shape, volumes, v, weights, features, coefficients, stiffness, widths, gaps, speed, muscl,
                   cfl, steps):
    n = p.shape[0]
    static = weights.shape[0] == 0
    inv_widths = 1.0 / widths
    inv_gaps = 1.0 / gaps
    moments = np.empty(max(weights.shape[0], 1))
    work = np.empty((5, n))
    masses, psi, rate, outflow, p1 = work[0], work[1], work[2], work[3], work[4]
    if static:
        _potential(p, volumes, v, weights, features, masses, moments, psi)
    for _ in range(steps):
        if not static:
            _potential(p, volumes, v, weights, features, masses, moments, psi)
        if static:
            courant, coupling = reference_stage(p, psi, speed, shape, coefficients, stiffness, widths, inv_widths,
                                                inv_gaps, muscl, False, outflow, rate)
        else:
            courant, coupling = reference_stage(p, psi, speed, shape, coefficients, stiffness, widths, inv_widths,
                                                inv_gaps, muscl, True, outflow, rate)
        dt = cfl / max(courant, coupling)
        if muscl:
            for i in range(n):
                p1[i] = p[i] + dt * rate[i]
            if not static:
                _potential(p1, volumes, v, weights, features, masses, moments, psi)
            reference_stage(p1, psi, speed, shape, coefficients, stiffness, widths, inv_widths, inv_gaps, muscl,
                            False, outflow, rate)
            if not reference_update(p, p1, rate, dt, True):
                return False
        elif not reference_update(p, p, rate, dt, False):
            return False
    return True


def multi_index_solver(cells: int, scheme: str, interacting: bool):
    config = load_config(CONFIG)
    for name in ("s1", "s2", "r"):
        config["grid"][name]["cells"] = cells
    config["pde"]["scheme"] = scheme
    config["pde"]["cfl"] = 0.4 if scheme == "muscl" else 0.5  # the configuration admits cfl <= 0.5
    solver, _, _ = make_pde_solver(config)
    if not interacting:
        solver._weights = np.zeros(0)
        solver._features = np.zeros((0, solver.grid.cells))
        solver._stiffness[:] = 0.0
    return solver


def reference_arguments(solver) -> tuple:
    return (solver._shape, solver._volumes, solver._v, solver._weights, solver._features, solver._coefficients,
            solver._stiffness, solver._widths, solver._gaps, -2.0, solver.scheme == "muscl", solver.cfl)


def check_reference(cells: int = 12) -> float:
    """Largest relative difference between the reference and the solver after a few steps (round-off:
    the same arithmetic in another order)."""
    worst = 0.0
    for scheme in ("muscl", "upwind"):
        for interacting in (True, False):
            solver = multi_index_solver(cells, scheme, interacting)
            start = solver._density.copy()
            for _ in range(3):  # full steps: dt = cfl / max(rates), as the reference takes them
                rates = solver.rates_of_change()
                solver.advance(solver.time + solver.cfl / max(rates["courant"], rates["interaction"]))
            p = start.copy()
            reference_steps(p, *reference_arguments(solver), solver.steps)
            worst = max(worst, float(np.max(np.abs(p - solver._density)) / np.max(np.abs(solver._density))))
    return worst


def finite_volume_3d_table(quick: bool, repeats: int = 5, t_final: float = 0.3,
                           sizes: tuple[int, ...] | None = None) -> list[tuple]:
    """Print and return rows (scheme, rank, cells, steps, solver cell-updates/s, reference, ratio)."""
    print("\n# 2b. Finite volumes (3-D multi-index, configs/multi_index.toml on n³ cells) vs the fused "
          "reference kernel")
    print(f"reference vs solver after a few steps on 12³ cells: max relative difference {check_reference():.1e}")
    print(f"{'scheme':>7} {'rank':>5} {'cells':>7} {'steps':>6} {'solver [cell-updates/s]':>24} "
          f"{'reference':>10} {'ratio':>6}")
    rows = []
    for scheme in ("muscl", "upwind"):
        for interacting in (True, False):
            for n in sizes or ((16, 32, 48) if not quick else (24,)):
                solver = multi_index_solver(n, scheme, interacting)
                initial = solver.state()
                start = solver._density.copy()
                solver.advance(0.002)  # compilation
                solver.set_state(initial)
                solver.advance(t_final)
                steps = solver.steps
                arguments = reference_arguments(solver)
                reference_steps(start.copy(), *arguments, 1)  # compilation
                solver_wall, reference_wall = math.inf, math.inf
                for _ in range(repeats):  # interleaved, minimum of each: load affects both alike
                    solver.set_state(initial)
                    began = time.process_time()
                    solver.advance(t_final)
                    solver_wall = min(solver_wall, time.process_time() - began)
                    p = start.copy()
                    began = time.process_time()
                    reference_steps(p, *arguments, steps)
                    reference_wall = min(reference_wall, time.process_time() - began)
                cells = solver.grid.cells
                row = (scheme, solver._weights.shape[0], cells, steps, cells * steps / solver_wall,
                       cells * steps / reference_wall, reference_wall / solver_wall)
                rows.append(row)
                print(f"{row[0]:>7} {row[1]:5d} {row[2]:7d} {row[3]:6d} {row[4]:24.3g} {row[5]:10.3g} {row[6]:6.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one size (24³)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", help="n of the n³ grids (default 16 32 48)")
    args = parser.parse_args()
    finite_volume_3d_table(args.quick, args.repeats, sizes=tuple(args.sizes) if args.sizes else None)


if __name__ == "__main__":
    main()
