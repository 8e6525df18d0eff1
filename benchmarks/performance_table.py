"""The README's performance table, regenerated in one run (all ratios measured side by side here):

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/performance_table.py [--quick]

1. Characteristics solver on MMN18 (d = 320, Δ = 0.5, σ of MMN18), κ = 0.4 and 0.1, t ≤ 10 and t ≤ 100:
   the fewest Gauss particles (20 … 400) whose max relative risk error at the outputs
   (0, 0.1, 0.3, 1, 3, 10[, 30, 100]) against a converged reference (3200 Gauss particles, rtol 1e-11) is
   below 1e-3; its wall time after compilation (min of 3) with the compiled right-hand side and
   integrator, and with the numpy right-hand side through ``solve_ivp`` (the same DOP853 steps);
   single-threaded SGD of the same curve (N = 800, ε = 1e-4, B = 100 as configs/mmn18_figure.toml),
   a few hundred steps timed and extrapolated to t_final / ε steps, and the ratio.
2. Finite volumes against a fused reference kernel written below (same arithmetic on the same arrays:
   moments and ψ (no ψ pass at rank 0, ψ = v), then face velocities, minmod slopes, fluxes, Courant
   rate and, at the first stage only (the one that sets dt), the interaction rate in one sweep per
   stage; the SSP-RK2 or Euler update with the positivity check in one pass; the scheme a
   compile-time constant of the sweep, as in the solver): MMN18 on a uniform 1-D grid, MUSCL
   and upwind, with the rank-10 interaction and without (rank 0).  Cell-updates/s of each and the ratio,
   from the CPU time of this process (``time.process_time``; minimum of interleaved repeats).
   2b. The same in 3-D (benchmarks/bench_finite_volume_3d.py, its own fused reference kernel): the
   multi-index configuration on 16³, 32³, 48³ cells, rank 7 and rank 0.
4. (``--adapted``, also in the full run) MMN18 at d = 320, κ = 0.4 and 0.1, t ≤ 10 and t ≤ 100: relative risk
   error against the converged characteristics reference (1600 Gauss particles, rtol 1e-11; within 1e-7
   of 6400) and wall time after compilation, side by side: finite volumes with ``grid.adapt = "move"``
   (the window's cells move affinely with the law, :mod:`solvers.moving_grid`; 200 … 800 cells), with
   ``grid.adapt = "remap"`` (200 … 1600 window cells), on the uniform [0, 4] grid (1600, 6400 cells),
   and the characteristics solver (the fewest Gauss particles under 1e-3, as in 1).  ``moved``: the
   steps at which the moving grid moved (the others: the law was not affine and the grid stood still).
3. Cost exponents: wall ∝ cells^a of the 1-D finite-volume solve (t ≤ 1) and ∝ particles^b of the
   compiled characteristics solve (t ≤ 10).

Numbers depend on the machine and its load; the ratios are what the table reports.
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from reduced_pde import IsotropicGaussianMixture, IsotropicMixtureRadialProblem  # noqa: E402
from solvers.finite_volume import FiniteVolumeSolver  # noqa: E402
from solvers.grid import UniformGrid1D  # noqa: E402
from solvers.lagrangian import solve_lagrangian  # noqa: E402
from bench_finite_volume_3d import dot4, finite_volume_3d_table, reference_update  # noqa: E402  (2b: 3-D)


class NumpyDrift(IsotropicMixtureRadialProblem):
    """MMN18 without its compiled drift: the characteristics solver takes the numpy methods and
    scipy's solve_ivp (the path before the compiled one)."""

    def compiled_drift(self, points):
        return None


def mmn18(kappa: float, cls=IsotropicMixtureRadialProblem) -> IsotropicMixtureRadialProblem:
    return cls(IsotropicGaussianMixture(0.5, 320), "mmn18", kappa=kappa)


def best_of(function, repeats: int = 3) -> float:
    walls = []
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        walls.append(time.perf_counter() - began)
    return min(walls)


def cpu_seconds(function) -> float:
    """CPU seconds of this process spent in ``function()`` (the kernels are single-threaded: on a loaded
    machine this is their cost, without the time other jobs hold the core)."""
    began = time.process_time()
    function()
    return time.process_time() - began


def relative_error(risks: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(risks - reference) / reference))


def sgd_seconds_per_unit_time(kappa: float, steps: int) -> float:
    """Wall seconds per unit of PDE time of single-threaded SGD (N = 800, d = 320, ε = 1e-4, B = 100)."""
    from reduced_pde.models.isotropic_mixture import IsotropicMixtureNetwork
    from solvers.sgd import SGDSimulation

    problem = mmn18(kappa)
    step_size = 1e-4
    simulation = SGDSimulation(IsotropicMixtureNetwork(problem), problem, n_neurons=800, step_size=step_size,
                               batch_size=100, seed=0)
    simulation.advance(20 * step_size)  # compilation and warm-up
    began = time.perf_counter()
    simulation.advance(20 * step_size + steps * step_size)
    return (time.perf_counter() - began) / (steps * step_size)


def characteristics_table(quick: bool) -> None:
    print("# 1. Characteristics (compiled) vs numpy right-hand side vs single-threaded SGD, MMN18 d = 320")
    counts = (20, 40, 80, 160, 320) if not quick else (40, 160)
    print(f"{'κ':>4} {'t_f':>5} {'particles':>9} {'rel. err':>9} {'compiled [s]':>12} {'numpy RHS [s]':>13} "
          f"{'ratio':>6} {'SGD [s]':>9} {'SGD/compiled':>12}")
    for kappa in (0.4, 0.1):
        sgd_rate = sgd_seconds_per_unit_time(kappa, 100 if quick else 300)
        for t_final in (10.0, 100.0):
            times = np.array([t for t in (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0) if t <= t_final])
            problem = mmn18(kappa)
            reference = solve_lagrangian(problem, times, n_particles=3200, sampling="gauss", rtol=1e-11,
                                         atol=1e-14).risk
            chosen = None
            for n in counts:
                error = relative_error(solve_lagrangian(problem, times, n_particles=n, sampling="gauss").risk,
                                       reference)
                if error < 1e-3:
                    chosen = (n, error)
                    break
            if chosen is None:
                print(f"{kappa:4.1f} {t_final:5.0f}  no particle count in {counts} reached 1e-3")
                continue
            n, error = chosen
            compiled = best_of(lambda: solve_lagrangian(problem, times, n_particles=n, sampling="gauss"))
            slow = mmn18(kappa, NumpyDrift)
            numpy_wall = best_of(lambda: solve_lagrangian(slow, times, n_particles=n, sampling="gauss"), 1)
            sgd = sgd_rate * t_final
            print(f"{kappa:4.1f} {t_final:5.0f} {n:9d} {error:9.1e} {compiled:12.4f} {numpy_wall:13.3f} "
                  f"{numpy_wall / compiled:6.0f} {sgd:9.0f} {sgd / compiled:12.2e}")


# ---- 2. the fused reference kernel of the 1-D finite-volume step -----------------------------------
@njit(cache=True)
def _reference_stage(p, h, v, weights, features, coefficients, stiffness, speed, muscl, coupled, moments, psi,
                     rate):
    """dp/dt of the 1-D scheme into ``rate`` in one sweep after the moments; returns (courant, coupling), the
    coupling (interaction rate) only with ``coupled`` (the first stage: the only one whose rates set dt)."""
    n = p.shape[0]
    rank = weights.shape[0]
    for k in range(rank):
        moments[k] = weights[k] * h * dot4(features[k], p)
    if rank > 0:
        for j in range(n):
            acc = v[j]
            for k in range(rank):
                acc += moments[k] * features[k, j]
            psi[j] = acc
    else:  # no interaction: ψ = v, no pass
        psi = v
    inv_h = 1.0 / h
    courant = 0.0
    coupling = 0.0
    out_here = 0.0
    slope_here = 0.0
    rate[0] = 0.0
    for i in range(n - 1):
        if muscl and i + 2 < n:
            a = (p[i + 2] - p[i + 1]) * inv_h
            b = (p[i + 1] - p[i]) * inv_h
            slope_next = min(a, b) if (a > 0.0 and b > 0.0) else (max(a, b) if (a < 0.0 and b < 0.0) else 0.0)
        else:
            slope_next = 0.0
        u = speed * coefficients[i] * (psi[i + 1] - psi[i])
        out_next = 0.0
        if u > 0.0:
            flux = u * (p[i] + 0.5 * h * slope_here)
            out_here += u * inv_h
        else:
            flux = u * (p[i + 1] - 0.5 * h * slope_next)
            out_next = -u * inv_h
        rate[i] -= flux * inv_h
        rate[i + 1] = flux * inv_h
        courant = max(courant, out_here)
        if coupled:
            coupling += stiffness[i] * max(p[i], p[i + 1])
        out_here = out_next
        slope_here = slope_next
    courant = max(courant, out_here)
    return courant, abs(speed) * coupling


@njit(cache=True)
def reference_steps(p, h, v, weights, features, coefficients, stiffness, speed, muscl, cfl, steps):
    """``steps`` steps of SSP-RK2 (MUSCL) or Euler (upwind) with dt = cfl / max(rates), in place; False if
    the positivity/finiteness check failed.  ``muscl`` is a compile-time constant of the sweeps."""
    if muscl:
        return _reference_run(p, h, v, weights, features, coefficients, stiffness, speed, True, cfl, steps)
    return _reference_run(p, h, v, weights, features, coefficients, stiffness, speed, False, cfl, steps)


@njit(cache=True)
def _reference_run(p, h, v, weights, features, coefficients, stiffness, speed, muscl, cfl, steps):
    n = p.shape[0]
    moments = np.empty(max(weights.shape[0], 1))
    psi = np.empty(n)
    rate = np.empty(n)
    p1 = np.empty(n)
    for _ in range(steps):
        courant, coupling = _reference_stage(p, h, v, weights, features, coefficients, stiffness, speed, muscl,
                                             True, moments, psi, rate)
        dt = cfl / max(courant, coupling)
        if muscl:
            for i in range(n):
                p1[i] = p[i] + dt * rate[i]
            _reference_stage(p1, h, v, weights, features, coefficients, stiffness, speed, muscl, False, moments,
                             psi, rate)
            if not reference_update(p, p1, rate, dt, True):
                return False
        elif not reference_update(p, p, rate, dt, False):
            return False
    return True


def finite_volume_table(quick: bool, repeats: int = 7) -> None:
    print("\n# 2. Finite volumes (1-D, MMN18 κ = 0.4, d = 320, uniform [0, 4]) vs the fused reference kernel")
    print(f"{'scheme':>7} {'rank':>5} {'cells':>6} {'steps':>6} {'solver [cell-updates/s]':>24} "
          f"{'reference':>10} {'ratio':>6}")
    problem = mmn18(0.4)
    for scheme in ("muscl", "upwind"):
        for interacting in (True, False):
            for cells in ((400, 1600, 6400) if not quick else (1600,)):
                solver = FiniteVolumeSolver(problem, UniformGrid1D(0.0, 4.0, cells), scheme=scheme,
                                            cfl=0.4 if scheme == "muscl" else 0.9)
                if not interacting:
                    solver._weights = np.zeros(0)
                    solver._features = np.zeros((0, cells))
                    solver._stiffness[:] = 0.0
                initial = solver.state()
                start = solver._density.copy()
                solver.advance(0.02)  # compilation
                _rerun(solver, initial, 0.3)
                steps = solver.steps
                arrays = (4.0 / cells, solver._v, solver._weights, solver._features,
                          solver._coefficients[0], solver._stiffness[0], -2.0, scheme == "muscl", solver.cfl)
                reference_steps(start.copy(), *arrays, 2)  # compilation
                solver_wall, reference_wall = math.inf, math.inf
                for _ in range(repeats):  # interleaved, minimum of each: load affects both alike
                    solver.set_state(initial)
                    solver_wall = min(solver_wall, cpu_seconds(lambda: solver.advance(0.3)))
                    p = start.copy()
                    reference_wall = min(reference_wall, cpu_seconds(lambda: reference_steps(p, *arrays, steps)))
                print(f"{scheme:>7} {solver._weights.shape[0]:5d} {cells:6d} {steps:6d} "
                      f"{cells * steps / solver_wall:24.3g} {cells * steps / reference_wall:10.3g} "
                      f"{reference_wall / solver_wall:6.2f}")


def _rerun(solver: FiniteVolumeSolver, initial: dict, t_final: float) -> None:
    solver.set_state(initial)
    solver.advance(t_final)


def exponents_table(quick: bool) -> None:
    print("\n# 3. Cost exponents")
    problem = mmn18(0.4)
    sizes = (400, 800, 1600) if not quick else (400, 800)
    walls = []
    for cells in sizes:
        solver = FiniteVolumeSolver(problem, UniformGrid1D(0.0, 4.0, cells))
        initial = solver.state()
        walls.append(best_of(lambda: _rerun(solver, initial, 1.0), 2))
    slope = np.polyfit(np.log(sizes), np.log(walls), 1)[0]
    print(f"finite volumes, MUSCL, t <= 1: wall {['%.3f' % w for w in walls]} s at {sizes} cells: "
          f"wall ∝ cells^{slope:.2f}")
    counts = (100, 400, 1600) if not quick else (100, 400)
    times = np.array([0.0, 0.1, 0.3, 1.0, 3.0, 10.0])
    walls = [best_of(lambda: solve_lagrangian(problem, times, n_particles=n, sampling="gauss")) for n in counts]
    slope = np.polyfit(np.log(counts), np.log(walls), 1)[0]
    print(f"characteristics (compiled), t <= 10: wall {['%.4f' % w for w in walls]} s at {counts} particles: "
          f"wall ∝ particles^{slope:.2f}")


def adapted_table(quick: bool) -> None:
    from solvers.adaptive_grid import RemapPolicy
    from solvers.moving_grid import MovePolicy

    print("\n# 4. MMN18 d = 320: moving (grid.adapt = 'move') and adapted (grid.adapt = 'remap') finite-volume grids "
          "vs uniform grid vs characteristics")
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'κ':>4} {'t_f':>5} {'solver':>24} {'rel. err (t_f)':>14} {'max rel. err':>12} {'wall [s]':>9} "
          f"{'steps':>7} {'remaps':>6} {'moved':>6}")
    outputs = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    for kappa in (0.4, 0.1):
        problem = mmn18(kappa)
        for t_final in (10.0, 100.0):
            times = np.array([t for t in outputs if t <= t_final])
            reference = np.array(solve_lagrangian(problem, times, n_particles=1600, sampling="gauss", rtol=1e-11,
                                                  atol=1e-14).risk)
            runs = [(f"moving, {n} cells", n, MovePolicy()) for n in ((200, 300, 400, 800) if not quick else (400,))]
            runs += [(f"adapted, {n} cells", n, RemapPolicy())
                     for n in ((200, 400, 800, 1600) if not quick else (400,))]
            runs += [(f"uniform [0, 4], {n} cells", n, None) for n in ((1600, 6400) if not quick else (1600,))]
            for label, cells, policy in runs:
                def solve():
                    solver = FiniteVolumeSolver(problem, UniformGrid1D(0.0, 4.0, cells), adapt=policy)
                    risks = []
                    for t in times:
                        solver.advance(t)
                        risks.append(solver.discrete_risk())
                    return solver, np.array(risks)

                if cells <= 200 or (quick and cells <= 400):
                    solve()  # compilation (cached after the first size)
                began = time.perf_counter()
                solver, risks = solve()
                wall = time.perf_counter() - began
                error = np.abs(risks / reference - 1.0)
                moved = int(solver.diagnostics().get("moving_steps", 0))
                print(f"{kappa:4.1f} {t_final:5.0f} {label:>24} {error[-1]:14.2e} {error.max():12.2e} {wall:9.3f} "
                      f"{solver.steps:7d} {getattr(solver, 'remaps', 0):6d} {moved:6d}")
            for n in (20, 40, 80, 160, 320, 640):
                risks = np.array(solve_lagrangian(problem, times, n_particles=n, sampling="gauss").risk)
                error = np.abs(risks / reference - 1.0)
                if error.max() < 1e-3:
                    wall = best_of(lambda: solve_lagrangian(problem, times, n_particles=n, sampling="gauss"))
                    print(f"{kappa:4.1f} {t_final:5.0f} {'characteristics, ' + str(n):>24} {error[-1]:14.2e} "
                          f"{error.max():12.2e} {wall:9.3f}")
                    break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes (a smoke run)")
    parser.add_argument("--adapted", action="store_true", help="only section 4 (adapted finite-volume grids)")
    args = parser.parse_args()
    if args.adapted:
        adapted_table(args.quick)
        return
    characteristics_table(args.quick)
    finite_volume_table(args.quick)
    finite_volume_3d_table(args.quick)
    exponents_table(args.quick)
    adapted_table(args.quick)


if __name__ == "__main__":
    main()
