"""Characteristics (reduced-particle / quantile) solver of the reduced mean-field equation.

Same equation as the grid solvers (:mod:`solvers.finite_volume`, :mod:`solvers.fokker_planck`),
for a density ``p`` w.r.t. Lebesgue measure in the invariant coordinates ``x ∈ R^D``::

    ∂_t p = 2ξ(t) ∇·( p  C M(x) ∇ψ(x; p) ),      ψ(x; p) = v(x) + ∫ u(x, x') p(dx'),

with ``M(x)`` the problem's diagonal mobility (ones; ``1 − s²`` for s on the sphere) and ``C`` a
constant diagonal matrix of per-coordinate rates (``rates``, e.g. the second-layer rate on a).
It is solved along its characteristics: the law is represented by particles ``x_i`` with masses
``m_i`` (``p̂ = Σ_i m_i δ_{x_i}``) moving with the velocity field,

    dx_i/dt = −2ξ(t) C M(x_i) ∇ψ(x_i; p̂),
    ∇ψ(x; p̂) = ∇v(x) + Σ_k λ_k ∇g_k(x) Φ_k,     Φ_k = Σ_j g_k(x_j) m_j,

with ``λ_k, g_k`` from :meth:`ReducedProblem.interaction_low_rank` and ``∇g_k`` from
:meth:`ReducedProblem.interaction_features_gradient` evaluated at the particles (cost O(n · rank)
per evaluation).  For the reductions of this package these characteristics are *exact*: a neuron's
invariants (r = |w|, or (a, s, r)) move by exactly this law under the mean-field flow, so a point
mass stays a point mass and the solver represents laws that concentrate into atoms (the
well-specified single-index model converging to a point mass) without numerical diffusion.

Particles.  Every initial law is a product law in the problem's D coordinates (a 1-D
:class:`~reduced_pde.initial_laws.InitialLaw` is its own single marginal): ``sampling = "quantile"``
takes the
tensor product of mid-quantile rules, one per coordinate (a point-mass marginal gets one level; the
others ``n_axis ≈ n^(1/D')``, D' the number of non-atomic marginals), with masses ``Π 1/n_axis``;
``sampling = "sobol"`` maps n scrambled Sobol points through the coordinate quantiles (equal
masses); ``sampling = "gauss"`` takes the tensor product of Gauss rules of each marginal, with their
weights as masses: Gauss–Hermite nodes for a normal marginal (a), Gauss–Jacobi for a Beta marginal
(s on the sphere: (1 + s)/2 ~ Beta((d−1)/2, (d−1)/2)), Gauss–Legendre in the probability variable
(nodes ``Q(u_j)``) otherwise (the 1-D radial laws).  In 1-D the quantile rule is the mid-quantiles
``Q((i + ½)/n)`` with masses ``1/n``; a point mass (MMN18 at d = ∞) is one particle of mass 1.  Observables are integrals of smooth functions of the
initial point, so Gauss rules converge much faster than mid-quantiles, and they reach far into the
tails (largest Hermite node ≈ √(2n)·σ against ≈ √(2 ln n)·σ) — which decides the times when the
fastest neurons are the ones with extreme initial values (e.g. He_2 learnt by the largest |a| at small
ε, benchmarks/epsilon_sweep_results.txt).  ``initial_positions`` (e.g. the reduced coordinates of an
SGD network) overrides all.

Boundaries come from ``problem.domain()`` only: every coordinate is clipped to its domain (round-off:
e.g. r = |w − sθ*| ≥ 0, |s| ≤ 1 on the sphere, where the mobility ``1 − s²`` vanishes so exact
characteristics never cross), and a particle on a finite end of its domain cannot move outwards.

Integration: :func:`scipy.integrate.solve_ivp` (``method``: DOP853 by default; "Radau"/"BDF"/"LSODA"
for stiff rate ratios, e.g. a second layer 10⁶ times faster than the first, with the Jacobian of
:meth:`ParticleVelocity.jacobian`: exact low-rank coupling plus differenced local blocks, D + 1
evaluations instead of n·D) between consecutive output times.  Where the problem has a compiled
drift (:meth:`ReducedProblem.compiled_drift`: MMN18 with a piecewise-linear σ), DOP853 runs as one
compiled call per output interval (:func:`_dop853_advance`: scipy's DOP853 tableau, initial step,
error norm and step control, so the same steps up to round-off; features, moments, gradient and
velocity in compiled code, no Python per evaluation); the numpy path re-takes an interval in which a
stage point passed the drift's ``valid_below`` (where the series degree is re-chosen).  A one-coordinate reduction may choose
its series degree from the largest point it is given (the radial MMN18 reduction does); to keep the
right-hand side a smooth function of the positions, the features of one-coordinate problems are
evaluated with one extra fixed point ``degree_radius`` appended (and dropped again), by default
10 × the largest initial point (at least 1), clipped into ``problem.domain()``.  The index
reductions fix their series degrees from ``scale_bound`` at construction; multi-coordinate problems
get no extra point.

Solver state is ``(time, positions)``: the solver follows the ``Simulation`` protocol of
:mod:`solvers.controller`, so CLI runs checkpoint and resume like the grid solvers.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from numba import njit, types
from scipy.integrate import DOP853, solve_ivp

from reduced_pde.problem import DRIFT_SIGNATURE, CompiledDrift, ReducedProblem
from reduced_pde.schedules import LearningRateSchedule

from solvers.common import SolverError, check_instance, check_memory, validate_output_times
from solvers.finite_volume import learning_rate
from solvers.results import Trajectory

__all__ = ["LagrangianSolver", "ParticleVelocity", "solve_lagrangian", "initial_particles"]

SAMPLINGS = ("quantile", "sobol", "gauss")
METHODS = ("DOP853", "RK45", "RK23", "Radau", "BDF", "LSODA")


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} = {value!r} must be an integer >= 1")
    return int(value)


def initial_particles(problem: ReducedProblem, n_particles: int | Sequence[int], *,
                      sampling: str = "quantile", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Particles and masses representing ``problem.initial_law()`` (module docstring).

    Returns positions of shape (n,) for one coordinate, (n, D) otherwise, and masses (n,) summing
    to one.  ``n_particles``: the total (an integer) or, with ``sampling = "quantile"``, one count per
    coordinate (point-mass marginals always get one level).
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"solver.sampling = {sampling!r}; allowed: {', '.join(SAMPLINGS)}")
    law = problem.initial_law()
    dimension = len(problem.coordinate_names)
    atomic = [m.distribution is None for m in law.marginals]
    if sampling == "sobol":
        from scipy.stats import qmc

        n = _check_count("solver.n_particles", n_particles)
        uniforms = qmc.Sobol(dimension, scramble=True, seed=seed).random(n)
        masses = np.full(n, 1.0 / n)
    elif sampling == "gauss":
        counts = _axis_counts(problem, n_particles, atomic, dimension)
        centre = np.asarray(law.quantile(np.full((1, dimension), 0.5)), dtype=float)[0]  # the atoms' values
        axes_nodes, axes_weights = [], []
        for index, (marginal, count) in enumerate(zip(law.marginals, counts)):
            if marginal.distribution is None:
                nodes, weights = np.array([centre[index]]), np.array([1.0])
            else:
                nodes, weights = _gauss_rule(marginal.distribution, count)
            axes_nodes.append(nodes)
            axes_weights.append(weights)
        positions = np.stack([m.ravel() for m in np.meshgrid(*axes_nodes, indexing="ij")], axis=1)
        masses = np.prod(np.stack([m.ravel() for m in np.meshgrid(*axes_weights, indexing="ij")], axis=1), axis=1)
        if not np.all(np.isfinite(positions)):
            raise ValueError("Gauss nodes of the initial law must be finite")
        positions = _project_to_domain(problem, positions)
        return (positions[:, 0] if dimension == 1 else positions), masses / masses.sum()
    else:
        counts = _axis_counts(problem, n_particles, atomic, dimension)
        levels = [(np.arange(c, dtype=float) + 0.5) / c for c in counts]
        mesh = np.meshgrid(*levels, indexing="ij")
        uniforms = np.stack([m.ravel() for m in mesh], axis=1)
        masses = np.full(uniforms.shape[0], 1.0 / uniforms.shape[0])
    positions = np.asarray(law.quantile(uniforms), dtype=float)
    if not np.all(np.isfinite(positions)):
        raise ValueError("initial law quantiles must be finite")
    positions = _project_to_domain(problem, positions)
    return (positions[:, 0] if dimension == 1 else positions), masses


def _axis_counts(problem: ReducedProblem, n_particles: Any, atomic: list[bool], dimension: int) -> list[int]:
    """Per-coordinate counts of a tensor rule: a list (one per coordinate) or a total split evenly
    over the non-atomic coordinates (a point-mass marginal gets one level)."""
    if isinstance(n_particles, (list, tuple, np.ndarray)):
        if len(n_particles) != dimension:
            raise ValueError(f"solver.n_particles = {list(n_particles)!r} needs one count per coordinate "
                             f"{problem.coordinate_names}")
        return [1 if atom else _check_count(f"solver.n_particles[{name}]", c)
                for atom, name, c in zip(atomic, problem.coordinate_names, n_particles)]
    total = _check_count("solver.n_particles", n_particles)
    free = max(1, dimension - sum(atomic))
    per_axis = max(1, int(round(total ** (1.0 / free))))
    return [1 if atom else per_axis for atom in atomic]


def _gauss_legendre_levels(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on the probability interval (0, 1) (weights sum to one)."""
    from scipy.special import roots_legendre

    nodes, weights = roots_legendre(count)
    return 0.5 * (nodes + 1.0), 0.5 * weights


def _gauss_rule(distribution: Any, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count``-point Gauss rule of a frozen scipy distribution: Gauss–Hermite (probabilists') for
    ``norm``, Gauss–Jacobi for ``beta`` (exact for polynomials of degree 2·count − 1 under the law),
    Gauss–Legendre in the probability variable through ``ppf`` otherwise.  Weights sum to one."""
    from scipy.special import roots_hermitenorm, roots_jacobi

    name = distribution.dist.name
    shape_args = distribution.args
    loc = distribution.kwds.get("loc", 0.0)
    scale = distribution.kwds.get("scale", 1.0)
    if name == "norm":
        if shape_args:
            loc = shape_args[0]
            scale = shape_args[1] if len(shape_args) > 1 else scale
        nodes, weights = roots_hermitenorm(count)
        return loc + scale * nodes, weights / weights.sum()
    if name == "beta" and len(shape_args) >= 2:
        a, b = float(shape_args[0]), float(shape_args[1])
        if len(shape_args) > 2:
            loc = shape_args[2]
        if len(shape_args) > 3:
            scale = shape_args[3]
        nodes, weights = roots_jacobi(count, b - 1.0, a - 1.0)   # weight (1 − x)^{b−1}(1 + x)^{a−1}
        return loc + scale * 0.5 * (nodes + 1.0), weights / weights.sum()
    levels, weights = _gauss_legendre_levels(count)
    return np.asarray(distribution.ppf(levels), dtype=float), weights


def _domain_bounds(problem: ReducedProblem) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of ``problem.domain()``, one per coordinate (±inf where unbounded)."""
    domain = np.array(problem.domain(), dtype=float).reshape(len(problem.coordinate_names), 2)
    return domain[:, 0].copy(), domain[:, 1].copy()


def _project_to_domain(problem: ReducedProblem, x: np.ndarray) -> np.ndarray:
    """Clip round-off: every coordinate into its ``problem.domain()`` (r ≥ 0, |s| ≤ 1 on the sphere)."""
    lower, upper = _domain_bounds(problem)
    return np.clip(np.array(x, dtype=float), lower, upper)


@njit(cache=True)
def _clip_into(x, lower, upper):
    """A copy of ``x`` (n, D) with every coordinate clipped into [lower_d, upper_d] (round-off)."""
    out = np.empty_like(x)
    _clip(x, lower, upper, out)
    return out


@njit(cache=True)
def _clip(x, lower, upper, out):
    for i in range(x.shape[0]):
        for d in range(x.shape[1]):
            out[i, d] = min(max(x[i, d], lower[d]), upper[d])


@njit(cache=True)
def _bounded_velocity(x, drift, scale, lower, upper, out):
    """``out = scale ⊙ drift`` (``scale = −2ξ(t) C``, ``drift = M(x) ∇ψ``), zero where a particle on a finite
    end of its domain would move outwards (r = 0, s = ±1 on the sphere).  Returns the flat index of
    the first non-finite velocity, or −1."""
    bad = -1
    for i in range(x.shape[0]):
        for d in range(x.shape[1]):
            u = scale[d] * drift[i, d]
            if (x[i, d] <= lower[d] and u < 0.0) or (x[i, d] >= upper[d] and u > 0.0):
                u = 0.0
            out[i, d] = u
            if bad < 0 and not math.isfinite(u):
                bad = i * x.shape[1] + d
    return bad


@njit(cache=True)
def _particle_velocity(drift, parameters, y, masses, t, xi0, alpha, t0, rates, lower, upper, valid_below, clipped,
                       work, out):
    """``out = −2ξ(t) C M ∇ψ`` at the clipped positions of ``y`` with the boundary rule (as
    :meth:`ParticleVelocity.velocity`); returns the flat index of a non-finite velocity, −2 if a
    coordinate is beyond ``valid_below`` (the drift's truncation; nothing evaluated), or −1."""
    _clip(y, lower, upper, clipped)
    for i in range(clipped.shape[0]):
        for d in range(clipped.shape[1]):
            if clipped[i, d] > valid_below:
                return -2
    drift(clipped, masses, parameters, work)
    speed = -2.0 * learning_rate(t, xi0, alpha, t0)
    return _bounded_velocity(clipped, work, speed * rates, lower, upper, out)


@njit(cache=True)
def _rms(a, b, scale, h):
    """``sqrt(mean(((a − b)/h / scale)²))`` (``b`` = None-like when h == 0: then ``a/scale``)."""
    total = 0.0
    for i in range(a.shape[0]):
        for d in range(a.shape[1]):
            value = (a[i, d] - b[i, d]) / h if h != 0.0 else a[i, d]
            value /= scale[i, d]
            total += value * value
    return math.sqrt(total / a.size)


_DOP853_A = np.ascontiguousarray(DOP853.A, dtype=float)
_DOP853_B = np.ascontiguousarray(DOP853.B, dtype=float)
_DOP853_C = np.ascontiguousarray(DOP853.C, dtype=float)
_DOP853_E3 = np.ascontiguousarray(DOP853.E3, dtype=float)
_DOP853_E5 = np.ascontiguousarray(DOP853.E5, dtype=float)

_ADVANCE_SIGNATURE = types.Tuple((types.int64, types.int64, types.int64, types.float64))(
    types.FunctionType(DRIFT_SIGNATURE), types.float64[::1], types.float64[:, ::1], types.float64[::1],
    types.float64, types.float64, types.float64, types.float64, types.float64, types.float64, types.float64,
    types.float64[::1], types.float64[::1], types.float64[::1], types.float64, types.float64[:, ::1],
    types.float64[::1], types.float64[::1], types.float64[::1], types.float64[::1])


@njit(_ADVANCE_SIGNATURE, cache=True)
def _dop853_advance(drift, parameters, y, masses, t, t_end, rtol, atol, xi0, alpha, t0, rates, lower, upper,
                    valid_below, a_matrix, b_weights, c_nodes, e3, e5):
    """Integrate ``dy/dt = _particle_velocity`` from t to t_end in place, by the DOP853 scheme of
    :class:`scipy.integrate.DOP853` (same tableau, initial step selection, error norm and step control,
    so the steps agree with ``solve_ivp(method="DOP853")`` up to round-off).  Returns
    ``(status, evaluations, bad_index, t_fail)``: status 0 ok, 1 non-finite velocity (flat index
    ``bad_index`` at time ``t_fail``), 2 step size too small, 3 a stage point passed ``valid_below``
    (the drift's truncation radius: the caller re-takes the interval with the numpy path)."""
    n_stages = b_weights.shape[0]
    n, dim = y.shape
    clipped = np.empty((n, dim))
    work = np.empty((n, dim))
    stages = np.empty((n_stages + 1, n, dim))
    f = np.empty((n, dim))
    y_new = np.empty((n, dim))
    trial = np.empty((n, dim))
    scale = np.empty((n, dim))
    evaluations = 1
    bad = _particle_velocity(drift, parameters, y, masses, t, xi0, alpha, t0, rates, lower, upper, valid_below,
                             clipped, work, f)
    if bad != -1:
        return (1 if bad >= 0 else 3), evaluations, bad, t
    interval = t_end - t
    if interval <= 0.0:
        return 0, evaluations, -1, t
    # initial step (scipy.integrate._ivp.common.select_initial_step, error estimator order 7)
    for i in range(n):
        for d in range(dim):
            scale[i, d] = atol + abs(y[i, d]) * rtol
    d0 = _rms(y, y, scale, 0.0)
    d1 = _rms(f, f, scale, 0.0)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, interval)
    for i in range(n):
        for d in range(dim):
            trial[i, d] = y[i, d] + h0 * f[i, d]
    evaluations += 1
    bad = _particle_velocity(drift, parameters, trial, masses, t + h0, xi0, alpha, t0, rates, lower, upper,
                             valid_below, clipped, work, y_new)
    if bad != -1:
        return (1 if bad >= 0 else 3), evaluations, bad, t + h0
    d2 = _rms(y_new, f, scale, h0)
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / 8.0)
    h_abs = min(100.0 * h0, h1, interval)
    exponent = -1.0 / 8.0
    while t < t_end:
        min_step = 10.0 * abs(np.nextafter(t, np.inf) - t)
        if h_abs < min_step:
            h_abs = min_step
        rejected = False
        while True:
            if h_abs < min_step:
                return 2, evaluations, -1, t
            t_new = t + h_abs
            if t_new > t_end:
                t_new = t_end
            h = t_new - t
            h_abs = abs(h)
            stages[0] = f
            for s in range(1, n_stages):
                for i in range(n):
                    for d in range(dim):
                        acc = 0.0
                        for j in range(s):
                            acc += a_matrix[s, j] * stages[j, i, d]
                        trial[i, d] = y[i, d] + h * acc
                evaluations += 1
                bad = _particle_velocity(drift, parameters, trial, masses, t + c_nodes[s] * h, xi0, alpha, t0,
                                         rates, lower, upper, valid_below, clipped, work, stages[s])
                if bad != -1:
                    return (1 if bad >= 0 else 3), evaluations, bad, t + c_nodes[s] * h
            for i in range(n):
                for d in range(dim):
                    acc = 0.0
                    for j in range(n_stages):
                        acc += b_weights[j] * stages[j, i, d]
                    y_new[i, d] = y[i, d] + h * acc
            evaluations += 1
            bad = _particle_velocity(drift, parameters, y_new, masses, t + h, xi0, alpha, t0, rates, lower, upper,
                                     valid_below, clipped, work, stages[n_stages])
            if bad != -1:
                return (1 if bad >= 0 else 3), evaluations, bad, t + h
            err5 = 0.0
            err3 = 0.0
            for i in range(n):
                for d in range(dim):
                    sc = atol + max(abs(y[i, d]), abs(y_new[i, d])) * rtol
                    acc5 = 0.0
                    acc3 = 0.0
                    for j in range(n_stages + 1):
                        acc5 += stages[j, i, d] * e5[j]
                        acc3 += stages[j, i, d] * e3[j]
                    err5 += (acc5 / sc) ** 2
                    err3 += (acc3 / sc) ** 2
            if err5 == 0.0 and err3 == 0.0:
                error_norm = 0.0
            else:
                error_norm = h_abs * err5 / math.sqrt((err5 + 0.01 * err3) * (n * dim))
            if error_norm < 1.0:
                factor = 10.0 if error_norm == 0.0 else min(10.0, 0.9 * error_norm ** exponent)
                if rejected:
                    factor = min(1.0, factor)
                h_abs *= factor
                break
            h_abs *= max(0.2, 0.9 * error_norm ** exponent)
            rejected = True
        t = t_new
        for i in range(n):
            for d in range(dim):
                y[i, d] = y_new[i, d]
                f[i, d] = stages[n_stages, i, d]
    return 0, evaluations, -1, t


class ParticleVelocity:
    """``f(t, x) = −2ξ(t) C M(x) ∇ψ(x_i; p̂)`` for fixed masses (module docstring), on the flattened
    state ``x.ravel()`` of shape (n·D,); counts evaluations."""

    def __init__(self, problem: ReducedProblem, masses: np.ndarray, schedule: LearningRateSchedule,
                 degree_radius: float | None = None, rates: np.ndarray | None = None) -> None:
        self.problem = problem
        self.masses = np.asarray(masses, dtype=float)
        self.schedule = schedule
        self.names = tuple(problem.coordinate_names)
        self.dimension = len(self.names)
        self.degree_radius = None if degree_radius is None else float(degree_radius)
        self.rates = np.ones(self.dimension) if rates is None else np.asarray(rates, dtype=float)
        self.lower, self.upper = _domain_bounds(problem)
        self.evaluations = 0
        self.rank = 0
        self.compiled: CompiledDrift | None = None
        self._compiled_checked = False

    def _problem_points(self, x: np.ndarray) -> np.ndarray:
        """Points in the problem's convention: (n,) for one coordinate, (n, D) otherwise."""
        return x[:, 0] if self.dimension == 1 else x

    def _with_degree_point(self, x: np.ndarray) -> np.ndarray:
        """The problem's points of ``x`` with ``degree_radius`` appended (one coordinate; module
        docstring); callers keep the first ``len(x)`` rows of what the problem returns."""
        points = self._problem_points(x)
        return points if self.degree_radius is None else np.append(points, self.degree_radius)

    def compiled_drift(self, x: np.ndarray) -> CompiledDrift | None:
        """The problem's :class:`~reduced_pde.problem.CompiledDrift` for these particles (built once,
        with the series degree fixed on the particles and ``degree_radius``; rebuilt when a particle
        passes ``valid_below``, where the numpy path would re-choose the degree too), or None."""
        if not self._compiled_checked or (self.compiled is not None and x.max() > self.compiled.valid_below):
            self._compiled_checked = True
            points = self._with_degree_point(x)
            self.compiled = self.problem.compiled_drift(points)
            if self.compiled is not None:
                self.rank = self.problem.interaction_low_rank(points).rank
        return self.compiled

    def drift(self, x: np.ndarray) -> np.ndarray:
        """``M(x_i) ∇ψ(x_i; p̂)`` at the particles, shape (n, D): the problem's compiled drift where it has
        one (:meth:`ReducedProblem.compiled_drift`), else its numpy methods."""
        compiled = self.compiled_drift(x)
        if compiled is None:
            mobility = np.asarray(self.problem.mobility(self._problem_points(x)), dtype=float).reshape(x.shape)
            return mobility * self.potential_gradient(x)
        out = np.empty(x.shape)
        compiled.evaluate(x, self.masses, out)
        return out

    def potential_gradient(self, x: np.ndarray) -> np.ndarray:
        """``∇ψ(x_i; p̂)`` at the particles themselves from the problem's numpy methods, shape (n, D)."""
        n = x.shape[0]
        points = self._with_degree_point(x)
        m = points.shape[0]
        kernel = self.problem.interaction_low_rank(points)
        self.rank = kernel.rank
        features = kernel.features.reshape(kernel.rank, m)[:, :n]
        gradients = np.asarray(self.problem.interaction_features_gradient(points), dtype=float)
        gradients = gradients.reshape(kernel.rank, m, self.dimension)[:, :n]
        potential = np.asarray(self.problem.reduced_potential_gradient(points), dtype=float)
        potential = potential.reshape(m, self.dimension)[:n]
        moments = kernel.weights * (features @ self.masses)
        return potential + np.einsum("k,knd->nd", moments, gradients)

    def velocity(self, t: float, x: np.ndarray) -> np.ndarray:
        """Velocities (n, D) of particles at positions ``x`` (n, D), with the boundary rules."""
        x = _clip_into(np.ascontiguousarray(x, dtype=float), self.lower, self.upper)
        velocity = np.empty(x.shape)
        bad = _bounded_velocity(x, self.drift(x), -2.0 * float(self.schedule(t)) * self.rates, self.lower, self.upper,
                                velocity)
        if bad >= 0:
            i, d = divmod(bad, self.dimension)
            raise SolverError(f"particle velocity became non-finite ({velocity[i, d]}) for particle {i}, "
                              f"coordinate {self.names[d]} (position {x[i].tolist()}) at t = {t:.6g}")
        return velocity

    def __call__(self, t: float, state: np.ndarray) -> np.ndarray:
        self.evaluations += 1
        return self.velocity(t, state.reshape(-1, self.dimension)).ravel()

    def _local_velocity(self, t: float, x: np.ndarray, moments: np.ndarray) -> np.ndarray:
        """``−2ξ C M(x_i) (∇v(x_i) + Σ_k λ_k Φ_k ∇g_k(x_i))`` with the moments ``λ_k Φ_k`` frozen:
        particle i's velocity as a function of x_i alone."""
        n = x.shape[0]
        points = self._with_degree_point(x)
        m = points.shape[0]
        gradients = np.asarray(self.problem.interaction_features_gradient(points), dtype=float)
        gradients = gradients.reshape(moments.size, m, self.dimension)[:, :n]
        potential = np.asarray(self.problem.reduced_potential_gradient(points), dtype=float)
        potential = potential.reshape(m, self.dimension)[:n]
        mobility = np.asarray(self.problem.mobility(self._problem_points(x)), dtype=float).reshape(x.shape)
        return -2.0 * float(self.schedule(t)) * self.rates * mobility * (
            potential + np.einsum("k,knd->nd", moments, gradients))

    def jacobian(self, t: float, state: np.ndarray) -> np.ndarray:
        """``∂f/∂x`` (n·D × n·D) for the implicit methods, at the cost of D + 1 evaluations.

        ``f_i = L(x_i; Φ)`` with the moments ``Φ_k = Σ_j m_j g_k(x_j)``, so
        ``∂f_i/∂x_j = δ_ij ∂_x L(x_i; Φ) + (−2ξ C M(x_i)) Σ_k λ_k ∇g_k(x_i) m_j ∇g_k(x_j)ᵀ``: the
        coupling (low rank) is exact; the local blocks are central differences of L in each
        coordinate, shifting all particles at once (step 1e-6 · max(1, |x|)).  The boundary rules
        are not differentiated (the Jacobian only drives Newton's iteration)."""
        x = _project_to_domain(self.problem, state.reshape(-1, self.dimension))
        n, dim = x.shape
        points = self._with_degree_point(x)
        m = points.shape[0]
        kernel = self.problem.interaction_low_rank(points)
        features = kernel.features.reshape(kernel.rank, m)[:, :n]
        gradients = np.asarray(self.problem.interaction_features_gradient(points), dtype=float)
        gradients = gradients.reshape(kernel.rank, m, dim)[:, :n]
        moments = kernel.weights * (features @ self.masses)
        jac = np.zeros((n, dim, n, dim))
        for d in range(dim):
            step = 1e-6 * np.maximum(1.0, np.abs(x[:, d]))
            plus, minus = x.copy(), x.copy()
            plus[:, d] += step
            minus[:, d] -= step
            plus[:, d] = np.minimum(plus[:, d], self.upper[d])  # stay in the domain (s = ±1 on the sphere)
            minus[:, d] = np.maximum(minus[:, d], self.lower[d])
            width = plus[:, d] - minus[:, d]
            derivative = (self._local_velocity(t, plus, moments) - self._local_velocity(t, minus, moments)) \
                / np.where(width > 0, width, 1.0)[:, None]
            jac[np.arange(n), :, np.arange(n), d] = derivative
        mobility = np.asarray(self.problem.mobility(self._problem_points(x)), dtype=float).reshape(x.shape)
        scale = -2.0 * float(self.schedule(t)) * self.rates * mobility  # (n, D)
        weighted = gradients * kernel.weights[:, None, None]  # λ_k ∇g_k(x_i)
        coupling = np.einsum("kid,kje->idje", weighted, gradients * self.masses[None, :, None])
        jac += scale[:, :, None, None] * coupling
        self.evaluations += 2 * dim + 1
        return jac.reshape(n * dim, n * dim)


class LagrangianSolver:
    """Characteristics solver (module docstring) following the ``Simulation`` protocol of
    :mod:`solvers.controller`: ``advance(t)``, ``observables()``, ``state()``/``set_state()``.

    Parameters: ``problem``; ``n_particles`` (total, or per coordinate) and ``sampling``
    ("quantile" | "sobol") for the default particles, or ``initial_positions`` ((n,) / (n, D)) with
    optional ``initial_masses``; ``schedule`` ξ(t); ``rates`` {coordinate: factor} (per-layer
    learning rates); ``rtol``/``atol``/``method`` passed to :func:`scipy.integrate.solve_ivp`;
    ``degree_radius`` (1-D radial reductions: fixes their Hermite degree; default 10 × the largest
    initial point, at least 1); ``allow_large`` (more than :data:`~solvers.common.MEMORY_LIMIT` = 4 GiB
    of particle state and Jacobian is refused without it; beyond 80% of the available memory always).
    """

    def __init__(self, problem: ReducedProblem, *, n_particles: int | Sequence[int] = 400,
                 sampling: str = "quantile", seed: int = 0,
                 schedule: LearningRateSchedule | None = None, rates: dict[str, float] | None = None,
                 rtol: float = 1e-9, atol: float = 1e-12, method: str = "DOP853",
                 initial_positions: np.ndarray | None = None, initial_masses: np.ndarray | None = None,
                 degree_radius: float | None = None, allow_large: bool = False) -> None:
        check_instance("problem", problem, ReducedProblem)
        check_instance("schedule", schedule, LearningRateSchedule, optional=True)
        self.problem = problem
        self.names = tuple(problem.coordinate_names)
        self.dimension = len(self.names)
        self.schedule = schedule if schedule is not None else LearningRateSchedule()
        for name, value in (("solver.rtol", rtol), ("solver.atol", atol)):
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                               and value > 0):
                raise ValueError(f"{name} = {value!r} must be a finite number > 0")
        if method not in METHODS:
            raise ValueError(f"solver.method = {method!r}; allowed: {', '.join(METHODS)}")
        self.rtol, self.atol, self.method = float(rtol), float(atol), method
        self.rates = np.ones(self.dimension)
        for name, value in (rates or {}).items():
            if name not in self.names:
                raise ValueError(f"rates: coordinate {name!r} is not one of {self.names}")
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"rates[{name!r}] = {value!r} must be a finite number > 0")
            self.rates[self.names.index(name)] = float(value)
        self.sampling = sampling
        self._check_memory(n_particles if initial_positions is None else np.shape(initial_positions)[:1],
                           bool(allow_large))
        if initial_positions is None:
            positions, masses = initial_particles(problem, n_particles, sampling=sampling, seed=seed)
        else:
            positions, masses = self._given_particles(initial_positions, initial_masses)
        positions = np.asarray(positions, dtype=float).reshape(-1, self.dimension)
        self.masses = np.asarray(masses, dtype=float)
        self.total_mass = float(self.masses.sum())
        self.positions = positions.copy()
        self.initial_positions = positions.copy()
        if self.dimension == 1:
            if degree_radius is None:
                degree_radius = max(1.0, 10.0 * float(np.abs(positions).max()))
            low, high = problem.domain()[0]
            degree_radius = float(np.clip(float(degree_radius), low, high))
        elif degree_radius is not None:
            raise ValueError(f"degree_radius = {degree_radius!r} is for one-coordinate problems; this one has "
                             f"coordinates {self.names}")
        self.degree_radius = degree_radius
        self.velocity = ParticleVelocity(problem, self.masses, self.schedule, degree_radius, self.rates)
        self.time = 0.0

    def _check_memory(self, n_particles: Any, allow_large: bool) -> None:
        """Refuse, before any allocation, particles whose state and Runge–Kutta stages (``30 n D``
        floats) and, for an implicit method, dense Jacobian (``3 (n D)²``) this machine cannot hold, or
        that exceed :data:`~solvers.common.MEMORY_LIMIT` without ``allow_large`` (the estimate of
        :mod:`reduced_pde.running.resources`).  Counts that are not integers are left to the particle
        builders' own checks."""
        counts = list(n_particles) if isinstance(n_particles, (list, tuple)) else [n_particles]
        if not counts or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c > 0
                                 for c in counts):
            return
        n = math.prod(int(c) for c in counts)
        size = n * self.dimension
        total = 8.0 * 30 * size + (8.0 * 3 * size**2 if self.method in ("Radau", "BDF", "LSODA") else 0.0)
        field = f"solver.n_particles = {n_particles!r}" + (f" with method = {self.method!r}"
                                                           if self.method in ("Radau", "BDF", "LSODA") else "")
        check_memory(field, total, "the particle state and integrator", allow_large=allow_large)

    def _given_particles(self, positions: Any, masses: Any) -> tuple[np.ndarray, np.ndarray]:
        x = np.array(positions, dtype=float)
        x = x.reshape(-1, 1) if x.ndim == 1 and self.dimension == 1 else x
        if x.ndim != 2 or x.shape[1] != self.dimension or x.shape[0] == 0:
            raise ValueError(f"initial_positions has shape {np.shape(positions)}; expected (n, {self.dimension}) "
                             f"for coordinates {self.names}")
        m = np.full(x.shape[0], 1.0 / x.shape[0]) if masses is None else np.array(masses, dtype=float).ravel()
        if m.shape != (x.shape[0],):
            raise ValueError(f"initial_masses has shape {m.shape}; expected ({x.shape[0]},)")
        if not np.all(np.isfinite(x)):
            raise ValueError("initial_positions must be finite")
        for d, (name, (low, high)) in enumerate(zip(self.names, self.problem.domain())):
            if np.any(x[:, d] < low) or np.any(x[:, d] > high):
                raise ValueError(f"initial_positions: coordinate {name} must lie in its domain [{low:g}, {high:g}], "
                                 f"got [{x[:, d].min():g}, {x[:, d].max():g}]")
        if not (np.all(np.isfinite(m)) and np.all(m >= 0) and m.sum() > 0):
            raise ValueError("initial_masses must be finite, >= 0, with positive sum")
        return x, m

    @property
    def n_particles(self) -> int:
        return int(self.masses.size)

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        return self.names

    def advance(self, t_target: float) -> None:
        """Integrate the characteristics from ``self.time`` to ``t_target``."""
        if not t_target > self.time:
            return
        if self.method == "DOP853" and self._advance_compiled(float(t_target)):
            return
        options = {}
        if self.method in ("Radau", "BDF", "LSODA"):
            options["jac"] = self.velocity.jacobian
        solution = solve_ivp(self.velocity, (self.time, float(t_target)), self.positions.ravel(),
                             method=self.method, rtol=self.rtol, atol=self.atol, **options)
        if not solution.success:
            raise SolverError(f"solve_ivp ({self.method}) failed between t = {self.time:.6g} and "
                              f"{t_target:.6g}: {solution.message}")
        state = solution.y[:, -1].reshape(-1, self.dimension)
        if not np.all(np.isfinite(state)):
            i = int(np.argwhere(~np.isfinite(state))[0, 0])
            raise SolverError(f"particle {i} became non-finite between t = {self.time:.6g} and {t_target:.6g}")
        self.positions = _project_to_domain(self.problem, state)
        self.time = float(t_target)

    def _advance_compiled(self, t_target: float) -> bool:
        """DOP853 in one compiled call (:func:`_dop853_advance`) when the problem has a compiled drift;
        False (nothing done) otherwise, or when a stage point passed the drift's ``valid_below`` (the
        numpy path then re-takes the interval, re-choosing the series degree where it would have)."""
        field = self.velocity
        compiled = field.compiled_drift(self.positions)
        if compiled is None:
            return False
        y = np.ascontiguousarray(self.positions, dtype=float).copy()
        xi0, alpha, t0 = self.schedule.as_tuple()
        status, evaluations, bad, t_fail = _dop853_advance(
            compiled.kernel, compiled.parameters, y, field.masses, self.time, t_target, self.rtol, self.atol,
            xi0, alpha, t0, field.rates, field.lower, field.upper, compiled.valid_below, _DOP853_A, _DOP853_B,
            _DOP853_C, _DOP853_E3, _DOP853_E5)
        field.evaluations += evaluations
        if status == 1:
            i, d = divmod(bad, self.dimension)
            raise SolverError(f"particle velocity became non-finite for particle {i}, coordinate {self.names[d]} "
                              f"at t = {t_fail:.6g} (compiled DOP853 between t = {self.time:.6g} and {t_target:.6g})")
        if status == 2:
            raise SolverError(f"DOP853 failed between t = {self.time:.6g} and {t_target:.6g}: required step size is "
                              f"less than spacing between numbers (at t = {t_fail:.6g})")
        if status == 3:
            return False
        if not np.all(np.isfinite(y)):
            i = int(np.argwhere(~np.isfinite(y))[0, 0])
            raise SolverError(f"particle {i} became non-finite between t = {self.time:.6g} and {t_target:.6g}")
        self.positions = _project_to_domain(self.problem, y)
        self.time = t_target
        return True

    def _problem_points(self) -> np.ndarray:
        return self.velocity._problem_points(self.positions)

    def _risk(self) -> float:
        """``R(p̂)``: the compiled drift's ``energy`` where it has one, else :meth:`ReducedProblem.risk`."""
        compiled = self.velocity.compiled_drift(self.positions) if self.method == "DOP853" else None
        if compiled is not None and compiled.energy is not None:
            x = np.ascontiguousarray(self.positions, dtype=float)
            return float(self.problem.target_second_moment + compiled.energy(x, self.masses, compiled.parameters))
        return float(self.problem.risk(self._problem_points(), self.masses))

    def observables(self) -> dict[str, Any]:
        """``risk`` R(p̂), ``mean_<x>``/``std_<x>`` of every coordinate and ``positions`` ((n,) in 1-D,
        (n, D) otherwise)."""
        out: dict[str, Any] = {"risk": self._risk()}
        for d, name in enumerate(self.names):
            mean = float(self.positions[:, d] @ self.masses / self.total_mass)
            var = float(((self.positions[:, d] - mean) ** 2) @ self.masses / self.total_mass)
            out[f"mean_{name}"] = mean
            out[f"std_{name}"] = math.sqrt(max(var, 0.0))
        out["positions"] = (self.positions[:, 0] if self.dimension == 1 else self.positions).copy()
        return out

    def state(self) -> dict[str, Any]:
        return {"time": self.time, "positions": self.positions.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        positions = np.asarray(state["positions"], dtype=float).reshape(-1, self.dimension)
        if positions.shape != self.positions.shape:
            raise ValueError(f"checkpoint holds {positions.shape[0]} particles, the solver {self.n_particles}")
        self.positions = positions.copy()
        self.time = float(np.asarray(state["time"]))

    def diagnostics(self) -> dict[str, float]:
        return {"evaluations": float(self.velocity.evaluations), "rank": float(self.velocity.rank)}

    def static_fields(self) -> dict[str, np.ndarray]:
        return {"masses": self.masses.copy()}

    def config(self) -> dict[str, Any]:
        out = {**self.problem.config(), "solver.name": "lagrangian", "solver.method": self.method,
               "solver.n_particles": self.n_particles, "solver.sampling": self.sampling,
               "solver.rtol": self.rtol, "solver.atol": self.atol,
               **{f"solver.rate_{name}": float(c) for name, c in zip(self.names, self.rates)},
               **{f"schedule.{key}": val for key, val in self.schedule.config().items()}}
        if self.degree_radius is not None:
            out["solver.degree_radius"] = float(self.degree_radius)
        return out


def solve_lagrangian(problem: ReducedProblem, output_times: Sequence[float], *,
                     n_particles: int | Sequence[int] = 400, schedule: LearningRateSchedule | None = None,
                     rtol: float = 1e-9, atol: float = 1e-12, progress: bool = False,
                     initial_positions: np.ndarray | None = None,
                     initial_masses: np.ndarray | None = None,
                     degree_radius: float | None = None, method: str = "DOP853",
                     sampling: str = "quantile", seed: int = 0,
                     rates: dict[str, float] | None = None) -> Trajectory:
    """Particle solution of the reduced equation at ``output_times`` (module docstring).

    Returns a :class:`Trajectory` of kind ``"pde_lagrangian"`` with ``fields``: ``positions``
    (T, n) in 1-D or (T, n, D), ``masses`` (n,), ``mean_<x>``/``std_<x>`` (T,) per coordinate;
    diagnostics ``evaluations``, ``wall_time``, ``rank``.  Keyword arguments as
    :class:`LagrangianSolver`.
    """
    from solvers.controller import run_simulation

    times = validate_output_times(output_times)
    solver = LagrangianSolver(problem, n_particles=n_particles, sampling=sampling, seed=seed,
                              schedule=schedule, rates=rates, rtol=rtol, atol=atol, method=method,
                              initial_positions=initial_positions, initial_masses=initial_masses,
                              degree_radius=degree_radius)
    return run_simulation(solver, times, kind="pde_lagrangian", config=solver.config(),
                          static_fields=solver.static_fields(), progress=progress)
