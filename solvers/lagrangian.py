"""Characteristics (particle / quantile) solver for the 1-D reduced mean-field equation.

Same equation as :mod:`solvers.finite_volume` (density ``p`` w.r.t. ``dr``)::

    ∂_t p = 2ξ(t) ∂_r( p ∂_r ψ(r; p) ),      ψ(r; p) = v(r) + ∫ u(r, r') p(r') dr',

solved along its characteristics: the law is represented by particles ``r_i`` with masses ``m_i``
(``p̂ = Σ_i m_i δ_{r_i}``), which move with the velocity field,

    dr_i/dt = −2ξ(t) ∂_r ψ(r_i; p̂),   ∂_r ψ(r; p̂) = v'(r) + Σ_k λ_k g_k'(r) M_k,   M_k = Σ_j g_k(r_j) m_j,

with ``λ_k, g_k`` from :meth:`ReducedProblem.interaction_low_rank` and ``g_k'`` from
:meth:`ReducedProblem.interaction_features_gradient` evaluated at the particles.  Default
particles: the mid-quantiles ``(i + ½)/n`` of ``problem.initial_law()`` with equal masses ``1/n``
(a point mass gives n identical particles).  The ODE system is integrated by
:func:`scipy.integrate.solve_ivp` (DOP853) between consecutive output times; ``r`` is kept >= 0
(a particle at r = 0 cannot move to negative r; ``r = |w|``).

The truncation degree of the Hermite series in ``interaction_low_rank`` may depend on the largest
point it is given (as in the MMN18 reduction); to keep the right-hand side a smooth function of the
positions, the features are evaluated with one extra fixed point ``degree_radius`` appended (and
dropped again), so the degree stays fixed as long as the particles stay below it.
"""

from __future__ import annotations

import math
import time as _time
from typing import Any, Sequence

import numpy as np
from scipy.integrate import solve_ivp

from reduced_pde.problem import ReducedProblem
from reduced_pde.schedules import LearningRateSchedule

from .finite_volume import SolverError, validate_output_times
from .results import Trajectory

__all__ = ["ParticleVelocity", "solve_lagrangian", "initial_particles"]


def initial_particles(problem: ReducedProblem, n_particles: int) -> tuple[np.ndarray, np.ndarray]:
    """Mid-quantile particles ``Q((i + ½)/n)`` of the initial law and equal masses ``1/n``."""
    if isinstance(n_particles, bool) or int(n_particles) != n_particles or n_particles < 1:
        raise ValueError(f"solver.n_particles = {n_particles!r} must be an integer >= 1")
    n = int(n_particles)
    levels = (np.arange(n, dtype=float) + 0.5) / n
    positions = np.asarray(problem.initial_law().quantile(levels), dtype=float)
    if positions.shape != (n,) or not np.all(np.isfinite(positions)):
        raise ValueError("initial law quantiles must be finite")
    return np.maximum(positions, 0.0), np.full(n, 1.0 / n)


class ParticleVelocity:
    """``f(t, r) = −2ξ(t) ∂_r ψ(r_i; p̂)`` for fixed masses (module docstring); counts evaluations."""

    def __init__(self, problem: ReducedProblem, masses: np.ndarray, schedule: LearningRateSchedule,
                 degree_radius: float) -> None:
        self.problem = problem
        self.masses = np.asarray(masses, dtype=float)
        self.schedule = schedule
        self.degree_radius = float(degree_radius)
        self.evaluations = 0
        self.rank = 0

    def potential_gradient(self, r: np.ndarray) -> np.ndarray:
        """``∂_r ψ(r_i; p̂)`` at the particles themselves."""
        n = r.size
        points = np.append(r, self.degree_radius)
        kernel = self.problem.interaction_low_rank(points)
        self.rank = kernel.rank
        features = kernel.features.reshape(kernel.rank, n + 1)[:, :n]
        gradients = np.asarray(self.problem.interaction_features_gradient(points)).reshape(kernel.rank, n + 1)[:, :n]
        moments = features @ self.masses
        return (np.asarray(self.problem.reduced_potential_gradient(r), dtype=float)
                + (kernel.weights * moments) @ gradients)

    def __call__(self, t: float, r: np.ndarray) -> np.ndarray:
        self.evaluations += 1
        r = np.maximum(r, 0.0)
        velocity = -2.0 * float(self.schedule(t)) * self.potential_gradient(r)
        # r = |w| >= 0: a particle at the origin cannot move inwards
        velocity = np.where((r <= 0.0) & (velocity < 0.0), 0.0, velocity)
        if not np.all(np.isfinite(velocity)):
            i = int(np.argmax(~np.isfinite(velocity)))
            raise SolverError(f"particle velocity became non-finite ({velocity[i]}) for particle {i} "
                              f"(r = {r[i]:.6g}) at t = {t:.6g}")
        return velocity


def solve_lagrangian(problem: ReducedProblem, output_times: Sequence[float], *,
                     n_particles: int = 400, schedule: LearningRateSchedule | None = None,
                     rtol: float = 1e-9, atol: float = 1e-12, progress: bool = False,
                     initial_positions: np.ndarray | None = None,
                     initial_masses: np.ndarray | None = None,
                     degree_radius: float | None = None, method: str = "DOP853") -> Trajectory:
    """Particle solution of the reduced equation at ``output_times`` (module docstring).

    ``initial_positions``/``initial_masses`` override the default mid-quantile particles.
    ``degree_radius`` (default: 10 × the largest initial radius, at least 1) fixes the Hermite
    truncation degree.  Returns a :class:`Trajectory` of kind ``"pde_lagrangian"`` with fields
    ``positions`` (T, n) and ``masses`` (n,); diagnostics ``evaluations``, ``wall_time``, ``rank``.
    """
    times = validate_output_times(output_times)
    schedule = schedule if schedule is not None else LearningRateSchedule()
    for name, value in (("solver.rtol", rtol), ("solver.atol", atol)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} = {value!r} must be a finite number > 0")
    if initial_positions is None:
        positions, masses = initial_particles(problem, n_particles)
    else:
        positions = np.array(initial_positions, dtype=float).ravel()
        masses = (np.full(positions.size, 1.0 / positions.size) if initial_masses is None
                  else np.array(initial_masses, dtype=float).ravel())
        if positions.size == 0 or masses.shape != positions.shape:
            raise ValueError(f"initial_positions {positions.shape} and initial_masses {masses.shape} "
                             "must be non-empty with equal shapes")
        if not (np.all(np.isfinite(positions)) and np.all(positions >= 0)):
            raise ValueError("initial_positions must be finite and >= 0")
        if not (np.all(np.isfinite(masses)) and np.all(masses >= 0) and masses.sum() > 0):
            raise ValueError("initial_masses must be finite, >= 0, with positive sum")
    n = positions.size
    if degree_radius is None:
        degree_radius = max(1.0, 10.0 * float(positions.max()))
    rhs = ParticleVelocity(problem, masses, schedule, degree_radius)

    records = {name: np.empty(times.size) for name in ("risk", "mean_r", "std_r")}
    history = np.empty((times.size, n))
    bar = None
    iterator: Any = range(times.size)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(iterator, desc="lagrangian", unit="output")
        iterator = bar
    start = _time.perf_counter()
    t = 0.0
    state = positions.copy()
    total_mass = float(masses.sum())
    try:
        for k in iterator:
            if times[k] > t:
                solution = solve_ivp(rhs, (t, times[k]), state, method=method, rtol=rtol, atol=atol)
                if not solution.success:
                    raise SolverError(f"solve_ivp failed between t = {t:.6g} and {times[k]:.6g}: "
                                      f"{solution.message}")
                state = np.maximum(solution.y[:, -1], 0.0)
                t = float(times[k])
            history[k] = state
            mean = float(state @ masses / total_mass)
            records["mean_r"][k] = mean
            records["std_r"][k] = math.sqrt(max(float(((state - mean) ** 2) @ masses / total_mass), 0.0))
            records["risk"][k] = problem.risk(state, masses)
            if bar is not None:
                bar.set_postfix(t=f"{t:.3g}", risk=f"{records['risk'][k]:.4g}")
    finally:
        if bar is not None:
            bar.close()
    wall = _time.perf_counter() - start
    config = {**problem.config(), "solver.name": "lagrangian", "solver.method": method,
              "solver.n_particles": int(n), "solver.rtol": float(rtol), "solver.atol": float(atol),
              "solver.degree_radius": float(degree_radius),
              **{f"schedule.{key}": val for key, val in schedule.config().items()}}
    return Trajectory(kind="pde_lagrangian", time=times, risk=records["risk"],
                      mean_r=records["mean_r"], std_r=records["std_r"],
                      fields={"positions": history, "masses": masses}, config=config,
                      diagnostics={"evaluations": float(rhs.evaluations), "wall_time": wall,
                                   "rank": float(rhs.rank)})
