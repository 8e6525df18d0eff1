"""Scharfetter–Gummel finite volumes for the noisy (Fokker–Planck) radial mean-field equation.

Equation (density ``p`` with respect to ``dr`` on ``[0, r_max]``; :mod:`reduced_pde.free_energy`
derives it from noisy SGD, design note §2)::

    ∂_t p = 2ξ(t) ∂_r[ p ∂_r ψ_λ(r; p) + β⁻¹ J ∂_r(p/J) ] = D ∂_r[ e^{−Φ} ∂_r(e^{Φ} p) ],
    D = 2ξ/β,   Φ = β ψ_λ − log J,   J = r^{d−1},   ψ_λ = v + ∫u p + (λ/2) r²,

with zero flux at r = 0 and r = r_max.  The same code solves the noisy SPHERE equation of the
single-index problem with a fixed second layer (coordinate s = ⟨w, θ*⟩ ∈ [−1, 1])::

    ∂_t p = 2ξ ∂_s[ (1 − s²) ( p ∂_s ψ + β⁻¹ J ∂_s(p/J) ) ],   J = (1 − s²)^{(d−3)/2},

with the geometry read from the problem only: the grid must be ``problem.domain()`` up to truncation
of infinite ends (:func:`~solvers.grid.check_grid_in_domain`), ``log J = problem.log_reference_density``
at the cell centres, the face mobility ``M_{i+½} = problem.mobility`` at the interior faces (radial:
1; sphere: ``1 − s²``, zero at s = ±1), and ``problem.check_noise(β, λ)`` refuses what the reduction
cannot carry (noise at d = ∞, weight decay on the sphere).  The mobility multiplies the whole flux below (``F → M F``), so every statement
about Gibbs states, mass, positivity and dissipation holds unchanged; the upwind limit uses the
velocity ``−2ξ M ∂_sψ``.

Flux (Scharfetter–Gummel).  On the face i+½, ``z = Φ_{i+1} − Φ_i`` and ``B(z) = z/(e^z − 1)``::

    F_{i+½} = (D/h) [ B(z) p_i − B(−z) p_{i+1} ] = (D/h) B(z) e^{−Φ_i} [ e^{Φ_i}p_i − e^{Φ_{i+1}}p_{i+1} ],
    dp_i/dt = −(F_{i+½} − F_{i−½}) / h,   F_{½} = F_{M−½} = 0.

Properties: mass is conserved (telescoping); ``F = 0`` exactly when ``p_{i+1}/p_i = e^{−z}``, i.e. on
the discrete Gibbs state ``p_i ∝ e^{−Φ_i}`` (an exact steady state); the sign of F is that of the
jump of ``log p + Φ``, so ``dF_h/dt = β⁻¹ Σ_faces F (a_{i+1} − a_i) <= 0`` with ``a = log p + Φ``
(semi-discrete free-energy dissipation, F_h of :func:`~reduced_pde.free_energy.free_energy_terms`);
as β → ∞, ``(D/h) B(z) → u⁺`` and ``(D/h) B(−z) → u⁻``, ``u = −2ξ Δψ_λ/h``: the upwind scheme
(β = inf is accepted and uses that limit).  ``log J`` is used only through differences of
``(d−1) log r_i`` at cell centres, so d = 320 is harmless.  B is evaluated without overflow
(``z e^{−z}/(1 − e^{−z})`` for z > 0, ``z / expm1(z)`` for z < 0, a Taylor series near 0).

Time stepping, ψ frozen at the start of the step (``ψ_λ^n``, ``ξ(t_n)``); with
``a_i = D B(z_{i+½})/h²`` and ``b_i = D B(−z_{i+½})/h²`` the scheme is ``dp/dt = −A p`` with A
tridiagonal, ``A_ii = a_i + b_{i−1}``, ``A_{i,i+1} = −b_i``, ``A_{i,i−1} = −a_{i−1}`` (zero column sums):

* ``"explicit"`` (forward Euler): positive iff ``dt · max_i A_ii <= 1`` (this single bound contains
  both the CFL and the diffusive h²/(2D) limits).  ``dt = cfl · bound``; a requested fixed ``dt``
  beyond the bound is refused with an error naming time, cell and the bound;
* ``"implicit"`` (semi-implicit Euler): ``(I + dt A) p^{n+1} = p^n``.  I + dt A is an M-matrix with
  unit column sums, so p^{n+1} >= 0 and mass is conserved for every dt (Thomas algorithm, stable for
  column-diagonally-dominant matrices).  Default ``dt = cfl · h / max|u|`` (transport CFL on the ψ_λ
  velocity only: no diffusive or Bessel-drift restriction), capped by ``max_dt``.

Free energy: the compiled loop evaluates F_h before every step and records the largest single-step
increase.  For explicit Euler and for frozen-ψ implicit Euler the increase per step is bounded by
½ ΔmᵀUΔm = O(dt²) (u PSD) — in practice F_h decreases at every step (tests).

The whole loop between two output times is one ``@njit(cache=True)`` function; NaN or negative
density stops it with a status code turned into :class:`~solvers.common.SolverError` naming
time, cell and coordinate.  The low-rank potential and ξ(t) are the compiled kernels of
:mod:`solvers.finite_volume` (:func:`~solvers.finite_volume.low_rank_potential`,
:func:`~solvers.finite_volume.learning_rate`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from numba import njit

from reduced_pde.free_energy import GridOperators, check_noise_values, discrete_gibbs_density, free_energy_terms
from reduced_pde.problem import ReducedProblem
from reduced_pde.schedules import LearningRateSchedule

from solvers.common import SolverError, check_instance, validate_output_times
from solvers.finite_volume import learning_rate, low_rank_potential, raise_common_status, step_to_output
from solvers.grid import MonitoredDensityState, UniformGrid1D, as_tensor_grid, check_grid_in_domain
from solvers.results import Trajectory

__all__ = ["FokkerPlanckSolver1D", "solve_fokker_planck", "TIME_STEPPING", "bernoulli"]

TIME_STEPPING = ("explicit", "implicit")
NEGATIVE_TOLERANCE = 1e-12

_OK, _NONFINITE, _NEGATIVE, _MAX_STEPS, _UNSTABLE = 0, 1, 2, 3, 5  # 0–3 as solvers.finite_volume (raise_common_status)


# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def bernoulli(z: float) -> float:
    """``B(z) = z / (e^z − 1)`` (B(0) = 1), accurate and overflow-free for all real z."""
    if abs(z) < 1e-5:
        return 1.0 - 0.5 * z + z * z / 12.0
    if z > 0.0:
        e = math.exp(-z)
        return z * e / (-math.expm1(-z))
    return z / math.expm1(z)


@njit(cache=True)
def _potential_and_free_energy(p, h, v, quad, log_j, weights, features, beta, masses, moments, psi):
    """ψ_λ,i into ``psi`` (masses ``p_i h`` into ``masses``); returns (F_h − ½E[y²], R_h − E[y²])."""
    n = p.shape[0]
    for i in range(n):
        masses[i] = p[i] * h
    risk = low_rank_potential(masses, v, weights, features, moments, psi)  # 2 v·m + Σ λ_k M_k²
    free = 0.0
    for i in range(n):
        m = masses[i]
        free += m * quad[i]                   # (λ/2) Σ r² m
        if p[i] > 0.0 and beta < np.inf:
            free += m * (math.log(p[i]) - log_j[i]) / beta
        psi[i] += quad[i]
    return free + 0.5 * risk, risk


@njit(cache=True)
def _coefficients(psi, log_j, mobility, beta, diffusion_over_h2, drift_over_h2, a, b):
    """a_i = D M B(z)/h², b_i = D M B(−z)/h² on face i+½ (β = inf: the upwind limit)."""
    for i in range(psi.shape[0] - 1):
        dpsi = psi[i + 1] - psi[i]
        if beta < np.inf:
            z = beta * dpsi - (log_j[i + 1] - log_j[i])
            a[i] = diffusion_over_h2 * mobility[i] * bernoulli(z)
            b[i] = diffusion_over_h2 * mobility[i] * bernoulli(-z)
        else:
            a[i] = drift_over_h2 * mobility[i] * max(-dpsi, 0.0)
            b[i] = drift_over_h2 * mobility[i] * max(dpsi, 0.0)


@njit(cache=True)
def _fp_loop(p, t, t_end, h, v, quad, log_j, mobility, weights, features, beta, implicit, cfl, fixed_dt,
             max_dt, xi0, alpha, t0, free_prev, max_increase, max_steps):
    """Advance ``p`` in place from t to t_end.  Returns
    (status, t, steps, free_energy − ½E y², max_increase, cell, value, t_fail, bound)."""
    n = p.shape[0]
    rank = weights.shape[0]
    moments = np.zeros(max(rank, 1))
    work = np.zeros((7, n))  # per-cell work arrays, one block
    psi, masses, a, b, p_new, c_prime, d_prime = work[0], work[1], work[2], work[3], work[4], work[5], work[6]
    steps = 0
    free = free_prev
    while True:
        free_now, _ = _potential_and_free_energy(p, h, v, quad, log_j, weights, features, beta,
                                                 masses, moments, psi)
        if steps > 0 and free_now - free_prev > max_increase:
            max_increase = free_now - free_prev
        free_prev = free_now
        free = free_now
        if not (t < t_end):
            break
        if steps >= max_steps:
            return _MAX_STEPS, t, steps, free, max_increase, -1, 0.0, t, 0.0
        xi = learning_rate(t, xi0, alpha, t0)
        diffusion = 2.0 * xi / beta if beta < np.inf else 0.0
        _coefficients(psi, log_j, mobility, beta, diffusion / (h * h), 2.0 * xi / (h * h), a, b)
        for i in range(n):
            if not math.isfinite(psi[i]):
                return _NONFINITE, t, steps, free, max_increase, i, psi[i], t, 0.0
        # explicit positivity bound 1 / max_i (a_i + b_{i-1})
        rate_max = 0.0
        worst = 0
        for i in range(n):
            rate = (a[i] if i < n - 1 else 0.0) + (b[i - 1] if i > 0 else 0.0)
            if rate > rate_max:
                rate_max = rate
                worst = i
        bound = 1.0 / rate_max if rate_max > 0.0 else np.inf
        if fixed_dt > 0.0:
            dt = fixed_dt
            if not implicit and dt > bound:
                return _UNSTABLE, t, steps, free, max_increase, worst, dt, t, bound
        elif implicit:
            umax = 0.0
            for i in range(n - 1):
                u = 2.0 * xi * mobility[i] * abs(psi[i + 1] - psi[i]) / h
                if u > umax:
                    umax = u
            dt = cfl * h / umax if umax > 0.0 else np.inf
        else:
            dt = cfl * bound
        dt, last = step_to_output(dt, max_dt, t, t_end)
        if implicit:
            # (I + dt A) p_new = p ; sub_i = −dt a_{i−1}, diag_i, sup_i = −dt b_i  (Thomas)
            for i in range(n):
                diag = 1.0 + dt * ((a[i] if i < n - 1 else 0.0) + (b[i - 1] if i > 0 else 0.0))
                sup = -dt * b[i] if i < n - 1 else 0.0
                if i == 0:
                    c_prime[i] = sup / diag
                    d_prime[i] = p[i] / diag
                else:
                    sub = -dt * a[i - 1]
                    denom = diag - sub * c_prime[i - 1]
                    c_prime[i] = sup / denom
                    d_prime[i] = (p[i] - sub * d_prime[i - 1]) / denom
            p_new[n - 1] = d_prime[n - 1]
            for i in range(n - 2, -1, -1):
                p_new[i] = d_prime[i] - c_prime[i] * p_new[i + 1]
        else:
            for i in range(n):
                out = (a[i] if i < n - 1 else 0.0) + (b[i - 1] if i > 0 else 0.0)
                value = p[i] * (1.0 - dt * out)
                if i < n - 1:
                    value += dt * b[i] * p[i + 1]
                if i > 0:
                    value += dt * a[i - 1] * p[i - 1]
                p_new[i] = value
        pmax = 0.0
        for i in range(n):
            x = p_new[i]
            if not math.isfinite(x):
                return _NONFINITE, t, steps, free, max_increase, i, x, t + dt, bound
            if x > pmax:
                pmax = x
        for i in range(n):
            if p_new[i] < -NEGATIVE_TOLERANCE * pmax:
                return _NEGATIVE, t, steps, free, max_increase, i, p_new[i], t + dt, bound
        for i in range(n):
            p[i] = max(p_new[i], 0.0)
        t = t_end if last else t + dt
        steps += 1
    return _OK, t, steps, free, max_increase, -1, 0.0, t, 0.0


# ------------------------------------------------------------------------------------------------
class FokkerPlanckSolver1D(MonitoredDensityState):
    """Stateful Scharfetter–Gummel solver of the noisy equation of a one-coordinate problem (module
    docstring): MMN18's r, the sphere's s.  The geometry (domain, ``log J``, mobility, admissible
    noise) comes from the problem's methods only.  Same interface as
    :class:`~solvers.finite_volume.FiniteVolumeSolver` for the shared run controller: ``time``,
    ``density``, :meth:`advance`, :meth:`observables`, :meth:`state`, :meth:`set_state`,
    :meth:`diagnostics`, :meth:`config`.
    """

    monitored = "free_energy"

    def __init__(self, problem: ReducedProblem, grid: UniformGrid1D, beta: float,
                 weight_decay: float = 0.0, time_stepping: str = "implicit", cfl: float = 0.5,
                 dt: float | None = None, max_dt: float | None = None,
                 schedule: LearningRateSchedule | None = None,
                 initial_density: np.ndarray | None = None,
                 max_steps_per_output: int = 50_000_000) -> None:
        check_instance("problem", problem, ReducedProblem)
        check_instance("schedule", schedule, LearningRateSchedule, optional=True)
        if not isinstance(grid, UniformGrid1D):
            raise TypeError(f"grid must be a UniformGrid1D, got {type(grid).__name__}")
        check_grid_in_domain(as_tensor_grid(grid, problem.coordinate_names), problem.domain())
        self.beta, self.weight_decay = check_noise_values(beta, weight_decay)
        problem.check_noise(self.beta, self.weight_decay)
        if time_stepping not in TIME_STEPPING:
            raise ValueError(f"pde.time_stepping = {time_stepping!r} must be one of {TIME_STEPPING}")
        self.time_stepping = time_stepping
        if not (isinstance(cfl, (int, float)) and 0 < cfl <= (1.0 if time_stepping == "explicit" else math.inf)):
            raise ValueError(f"pde.cfl = {cfl!r} must lie in (0, 1] for explicit stepping "
                             "(fraction of the positivity bound) or be > 0 for implicit")
        self.cfl = float(cfl)
        for name, value in (("dt", dt), ("max_dt", max_dt)):
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"pde.{name} = {value!r} must be a finite number > 0")
        self.fixed_dt = None if dt is None else float(dt)
        self.max_dt = None if max_dt is None else float(max_dt)
        self.problem = problem
        self.grid = grid
        self.schedule = schedule if schedule is not None else LearningRateSchedule()
        self.max_steps_per_output = int(max_steps_per_output)
        self.ops = GridOperators.build(problem, grid.centers, grid.spacing, entropy=math.isfinite(self.beta))
        faces = grid.edges[1:-1]
        mobility = np.asarray(problem.mobility(faces), dtype=float).reshape(faces.size)
        if not np.all(np.isfinite(mobility)) or np.any(mobility < 0):
            raise ValueError(f"problem.mobility must be finite and >= 0 on the faces (min {mobility.min()})")
        self._mobility = np.ascontiguousarray(mobility)
        self._quad = 0.5 * self.weight_decay * grid.centers**2
        if initial_density is None:
            density = np.reshape(problem.initial_law().cell_masses([grid.edges]), grid.cells) / grid.spacing
        else:
            density = np.array(initial_density, dtype=float)
            if density.shape != (grid.cells,):
                raise ValueError(f"initial_density has shape {density.shape}, expected ({grid.cells},)")
            if not np.all(np.isfinite(density)) or np.any(density < 0) or density.sum() <= 0:
                raise ValueError("initial_density must be finite, >= 0, with positive mass")
        self._reset_state(density)

    # ---- discrete Gibbs state of the current potential ----------------------------------------
    def potential_phi(self, density: np.ndarray | None = None) -> np.ndarray:
        """``Φ_i = β ψ_λ,i − log J_i`` for ``density`` (default: the current one)."""
        p = self.density if density is None else density
        return self.beta * self.ops.potential(p * self.grid.spacing, self.weight_decay) - self.ops.log_j

    def gibbs_density(self, density: np.ndarray | None = None) -> np.ndarray:
        """Discrete Gibbs density ``∝ e^{−Φ}`` of the potential generated by ``density``."""
        return discrete_gibbs_density(self.potential_phi(density), self.grid.spacing)

    # ---- state / checkpointing: state() and set_state() from MonitoredDensityState --------------
    @property
    def max_free_energy_increase(self) -> float:
        """Largest single-step increase of the discrete free energy F_h so far."""
        return self.max_increase

    def config(self) -> dict[str, Any]:
        return {"solver.name": "fokker_planck", "solver.flux": "scharfetter_gummel",
                "solver.time_stepping": self.time_stepping, "solver.cfl": self.cfl,
                "solver.dt": math.nan if self.fixed_dt is None else self.fixed_dt,
                "solver.max_dt": math.inf if self.max_dt is None else self.max_dt,
                "noise.beta": self.beta, "noise.weight_decay": self.weight_decay,
                **self.grid.config(),
                **{f"schedule.{k}": val for k, val in self.schedule.config().items()}}

    # ---- stepping -------------------------------------------------------------------------------
    def advance(self, t_target: float) -> None:
        """Advance to exactly ``t_target`` in one compiled call."""
        t_target = float(t_target)
        if not (math.isfinite(t_target) and t_target >= self.time):
            raise ValueError(f"t_target = {t_target} must be finite and >= current time {self.time}")
        xi0, alpha, t0 = self.schedule.as_tuple()
        half_ey2 = 0.5 * self.ops.target_second_moment
        status, t, steps, free, max_inc, cell, value, t_fail, bound = _fp_loop(
            self.density, self.time, t_target, self.grid.spacing, self.ops.v, self._quad,
            self.ops.log_j, self._mobility, self.ops.weights, self.ops.features, self.beta,
            self.time_stepping == "implicit", self.cfl,
            0.0 if self.fixed_dt is None else self.fixed_dt,
            math.inf if self.max_dt is None else self.max_dt, float(xi0), float(alpha), float(t0),
            self.last_value - half_ey2, self.max_increase, self.max_steps_per_output)
        self.time = float(t)
        self.steps += int(steps)
        self.last_value = float(free) + half_ey2
        self.max_increase = float(max_inc)
        if status != _OK:
            coordinate = self.coordinate_names[0]
            where = f" in cell {cell} ({coordinate} = {self.grid.centers[cell]:.6g})" if cell >= 0 else ""
            raise_common_status(status, value, where, t_fail, self.time, self.max_steps_per_output)
            if status == _UNSTABLE:
                raise SolverError(f"explicit step dt = {value:.3g} exceeds the positivity/stability "
                                  f"bound {bound:.3g}{where} at t = {t_fail:.6g}; use a smaller "
                                  "pde.dt or pde.time_stepping = \"implicit\"")
            raise SolverError(f"unknown status {status} at t = {t_fail:.6g}")

    def diagnostics(self) -> dict[str, float]:
        return {"steps": float(self.steps),
                "max_free_energy_increase": float(self.max_increase),
                "rank": float(self.ops.weights.shape[0])}

    # ---- observables ------------------------------------------------------------------------------
    def observables(self) -> dict[str, float]:
        """risk R_h, free_energy F_h, second_moment E r², entropy Σ m log(p/J), mean/std of the coordinate, mass, density
        and gibbs_l1 = ‖p − Gibbs(ψ_λ(p))‖_L1 (zero at a fixed point)."""
        centers = self.grid.centers
        masses = self.density * self.grid.spacing
        mass = float(masses.sum())
        mean = float(centers @ masses / mass)
        var = float(((centers - mean) ** 2) @ masses / mass)
        terms = free_energy_terms(self.ops, self.density, self.beta, self.weight_decay)
        gibbs = (float(np.sum(np.abs(self.density - self.gibbs_density())) * self.grid.spacing)
                 if math.isfinite(self.beta) else math.nan)
        name = self.coordinate_names[0]
        return {**terms, f"mean_{name}": mean, f"std_{name}": math.sqrt(max(var, 0.0)), "mass": mass,
                "gibbs_l1": gibbs, "density": self.density.copy()}

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        return tuple(self.problem.coordinate_names)


def solve_fokker_planck(problem: ReducedProblem, grid: UniformGrid1D, output_times: Sequence[float],
                        *, beta: float, weight_decay: float = 0.0, progress: bool = False,
                        **kwargs: Any) -> Trajectory:
    """Solve from t = 0 and record observables and densities at ``output_times``.

    Trajectory kind ``"pde_fokker_planck"``; fields ``density`` (T, M), ``free_energy``,
    ``second_moment``, ``entropy``, ``mass``, ``gibbs_l1`` (T,), ``<x>_centers``, ``<x>_edges`` (x the
    problem's coordinate)."""
    from solvers.controller import run_simulation

    times = validate_output_times(output_times)
    solver = FokkerPlanckSolver1D(problem, grid, beta, weight_decay, **kwargs)
    name = solver.coordinate_names[0]
    return run_simulation(solver, times, kind="pde_fokker_planck",
                          config={**problem.config(), **solver.config()},
                          static_fields={f"{name}_centers": grid.centers, f"{name}_edges": grid.edges},
                          progress=progress)
