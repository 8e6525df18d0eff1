"""Escape times from the initial plateau and their scaling with the dimension d.

Setting (issue 5, seed 002): neurons on the unit sphere S^{d−1}, fixed second layer a = 1,
σ = He_k and target y = He_k(⟨θ*, x⟩), x ~ N(0, I_d).  The reduced coordinate is s = ⟨w, θ*⟩ and
its law p_t (a density w.r.t. Lebesgue measure on [−1, 1]; at t = 0 the uniform law on the sphere,
(1 + s)/2 ~ Beta((d−1)/2, (d−1)/2), so E s² = 1/d) follows the package's mean-field convention
(/work/shared/design/mean-field-math.md §2–3, ξ ≡ 1)::

    ∂_t p = 2 ∂_s( p (1 − s²) ∂_s ψ(s; p) ),   ψ(s; p) = −k! s^k + k! ∫ ⟨w, w'⟩^k ρ_t(dw'),

i.e. a neuron moves with ds/dt = −2 (1 − s²) ∂_s ψ.  The risk is R = k! − 2k! E s^k + k! E⟨w, w'⟩^k;
R(0) = k! (1 + O(d^{−k/2})) and the global optimum (all neurons at ±θ*) has R_∞ = 0.

Escape time (:func:`escape_time`).  T_q is the first time the risk falls below
R_0 − q (R_0 − R_∞) (default q = ½), located between the two bracketing output times by linear
interpolation of the risk in log t (linear in t on the first interval if it starts at t = 0).

Predicted law (k ≥ 3).  While s = O(d^{−1/2}) the interaction with the not-yet-escaped neurons is
O(d^{−1}) relative to the potential (their law is nearly isotropic and E c² = 1/(d−1) for the cosine
c between orthogonal parts), and a fraction f of neurons sitting at s = ±1 contributes k! f s^k to ψ.
So ds/dt = 2k·k! (1 − f) s^{k−1} (1 − s²).  With u = √d s (u₀ → N(0, 1)), τ = t d^{−(k−2)/2} and
the clock σ(τ) = ∫₀^τ (1 − f), du/dσ = 2k·k! u^{k−1}: u^{2−k} = u₀^{2−k} − 2k(k−2)k! σ blows up
(the neuron escapes to s = ±1 in O(1) time, negligible against d^{(k−2)/2}) at
σ*(u₀) = |u₀|^{2−k} / (2k(k−2)k!), for both signs of u₀ when k is even and for u₀ > 0 only when k is
odd (negative u₀ creep to 0⁻).  Hence f = F(σ) = c_k Φ̄((2k(k−2)k! σ)^{−1/(k−2)}) (c_k = 2 for even k,
1 for odd k), R/k! → (1 − f)², and the level q is reached at f_q = 1 − √(1 − q), σ_q = F^{−1}(f_q):

    T_q(d) = τ_q d^{(k−2)/2} (1 + o(1)),      τ_q = ∫₀^{σ_q} dσ / (1 − F(σ))

(:func:`asymptotic_escape_prefactor`), the d^{k*/2 − 1} law of seed 002 with its prefactor in the
package's time units.  For odd k, f ≤ ½ requires q ≤ ¾.  Finite-d corrections: the O(1) escape
transit (relative O(d^{−(k−2)/2}) — d^{−1/2} for k = 3 — times logarithms), the isotropic interaction
and Beta-vs-Gaussian initial law (relative O(1/d)).

k = 2 (exact).  ∫⟨w, w'⟩² ρ(dw') = s² m₂ + (1 − s²)(1 − m₂)/(d − 1) with m₂ = E s², so
ds/dt = 8 s (1 − s²)(1 − m₂) d/(d − 1), x = s²/(1 − s²) = x₀ e^{16σ} with dσ/dt = (1 − m₂) d/(d − 1), and
R = 2 (1 − m₂)² d/(d − 1).  :func:`he2_escape_time` evaluates T_q(d) from these by quadrature;
T_q = (ln d)/16 + c + O(1/d) (all neurons grow at the same exponential rate from s₀ ~ d^{−1/2}).
"""

from __future__ import annotations

import math
import time as wallclock
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import integrate, optimize, special, stats

from solvers.results import Trajectory

__all__ = [
    "EscapeTimeSweep",
    "ExponentEstimates",
    "exponent_estimates",
    "PowerLawFit",
    "asymptotic_escape_prefactor",
    "escape_time",
    "escape_time_sweep",
    "extrapolated_exponent",
    "fit_power_law",
    "he0_fit_time",
    "he1_learning_time",
    "he2_escape_time",
    "learning_time",
    "local_exponents",
    "predicted_escape_time",
    "solve_escape_time",
    "sphere_hermite_problem",
]


# ----------------------------------------------------------------------------------------------
# Escape time of a risk curve
# ----------------------------------------------------------------------------------------------

def _check_level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not (0.0 < float(level) < 1.0):
        raise ValueError(f"level = {level!r} must be a number in (0, 1) (fraction of R_0 − R_∞ to be lost)")
    return float(level)


def _risk_curve(run: Trajectory | tuple[Any, Any]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(run, Trajectory):
        time, risk = run.time, run.risk
    elif isinstance(run, (tuple, list)) and len(run) == 2:
        time, risk = run
    else:
        raise ValueError(f"run = {type(run).__name__}: expected a Trajectory or a pair (time, risk)")
    time = np.asarray(time, dtype=float)
    risk = np.asarray(risk, dtype=float)
    if time.ndim != 1 or risk.shape != time.shape or time.size < 2:
        raise ValueError(f"time has shape {time.shape} and risk {risk.shape}: expected equal 1-D shapes "
                         "with at least 2 samples")
    if not np.all(np.isfinite(time)) or time[0] < 0 or np.any(np.diff(time) < 0):
        raise ValueError(f"time must be finite, >= 0 and non-decreasing (got time[0] = {time[0]!r}, "
                         f"min step {np.diff(time).min()!r})")
    from reduced_pde.analysis.plateaus import merge_repeated_times

    time, risk = merge_repeated_times(time, risk)   # repeated SGD output times: one sample (mean risk)
    if time.size < 2:
        raise ValueError("time has fewer than 2 distinct values")
    bad = np.flatnonzero(~np.isfinite(risk) | (risk < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"risk = {risk[i]!r} at t = {time[i]:.6g} (sample {i}): the risk must be finite "
                         "and >= 0")
    return time, risk


def escape_time(run: Trajectory | tuple[Any, Any], level: float = 0.5, *, optimal_risk: float = 0.0,
                initial_risk: float | None = None) -> float:
    """Exit time T_q from the initial plateau of a risk curve.

    ``run``: a :class:`~solvers.results.Trajectory` (``time``, ``risk``) or a pair ``(time, risk)``.
    With R_0 = ``initial_risk`` (default: the risk at the first sample, which must then be t = 0)
    and R_∞ = ``optimal_risk`` (the risk at the global optimum, 0 for the well-specified He_k
    models), T_q is the first time the risk falls to R_q = R_0 − q (R_0 − R_∞), q = ``level``.
    Between the bracketing samples (t_{i−1}, R_{i−1} > R_q ≥ R_i) the risk is interpolated
    linearly in log t (linearly in t if t_{i−1} = 0), so a plateau sampled on a geometric time grid
    is located with error O((Δ log t)²).

    Raises ValueError if the curve never reaches R_q (naming t_final and the smallest risk), if it
    is already at or below R_q at the first sample, or on invalid input.
    """
    q = _check_level(level)
    time, risk = _risk_curve(run)
    if initial_risk is None:
        if time[0] != 0.0:
            raise ValueError(f"time[0] = {time[0]:.6g} > 0: the plateau height R_0 is the risk at t = 0; "
                             "record t = 0 or pass initial_risk")
        initial_risk = float(risk[0])
    if not (math.isfinite(initial_risk) and math.isfinite(optimal_risk) and initial_risk > optimal_risk):
        raise ValueError(f"initial_risk = {initial_risk!r} must be finite and > optimal_risk = {optimal_risk!r}")
    threshold = initial_risk - q * (initial_risk - optimal_risk)
    below = np.flatnonzero(risk <= threshold)
    if below.size == 0:
        raise ValueError(f"the risk never fell to R_q = {threshold:.6g} (q = {q:g}) by t_final = {time[-1]:.6g} "
                         f"(smallest risk {risk.min():.6g}): the run did not escape the plateau; extend it")
    i = int(below[0])
    if i == 0:
        raise ValueError(f"the risk {risk[0]:.6g} at the first sample t = {time[0]:.6g} is already <= R_q = "
                         f"{threshold:.6g}: the plateau is not resolved")
    weight = (risk[i - 1] - threshold) / (risk[i - 1] - risk[i])
    if time[i - 1] == 0.0:
        return float(time[i] * weight)
    return float(math.exp(math.log(time[i - 1]) + weight * (math.log(time[i]) - math.log(time[i - 1]))))


# ----------------------------------------------------------------------------------------------
# Predictions
# ----------------------------------------------------------------------------------------------

def _check_degree(k: Any, low: int = 2) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < low:
        raise ValueError(f"k = {k!r} must be an integer >= {low} (information exponent of He_k)")
    return int(k)


def asymptotic_escape_prefactor(k: int, level: float = 0.5) -> float:
    """τ_q = lim_{d→∞} T_q(d) / d^{(k−2)/2} for the He_k sphere model, k ≥ 3 (module docstring):
    τ_q = ∫₀^{σ_q} dσ / (1 − F(σ)), F(σ) = c_k Φ̄((2k(k−2)k! σ)^{−1/(k−2)}), F(σ_q) = 1 − √(1 − q)."""
    k = _check_degree(k, 3)
    q = _check_level(level)
    fraction = 1.0 - math.sqrt(1.0 - q)
    signs = 2.0 if k % 2 == 0 else 1.0
    if fraction >= signs / 2.0 and signs == 1.0:
        raise ValueError(f"level = {q:g}: for odd k only the neurons with s > 0 escape (f <= 1/2), so "
                         "the level must be < 3/4")
    rate = 2.0 * k * (k - 2) * math.factorial(k)

    def escaped(sigma: float) -> float:
        return signs * stats.norm.sf((rate * sigma) ** (-1.0 / (k - 2))) if sigma > 0 else 0.0

    # σ_q solves F(σ) = f_q: Φ̄(a) = f_q / c_k with a = (rate σ)^{−1/(k−2)}
    a_q = stats.norm.isf(fraction / signs)
    sigma_q = a_q ** (-(k - 2)) / rate
    value, _ = integrate.quad(lambda sig: 1.0 / (1.0 - escaped(sig)), 0.0, sigma_q, epsabs=0.0, epsrel=1e-12,
                              limit=200)
    return float(value)


def predicted_escape_time(k: int, dimension: float, level: float = 0.5) -> float:
    """Leading-order escape time: τ_q d^{(k−2)/2} for k ≥ 3, the exact :func:`he2_escape_time` for k = 2."""
    k = _check_degree(k)
    if k == 2:
        return he2_escape_time(dimension, level)
    return asymptotic_escape_prefactor(k, level) * float(dimension) ** ((k - 2) / 2.0)


def he2_escape_time(dimension: float, level: float = 0.5, *, nodes: int = 400) -> float:
    """Exact mean-field T_q(d) for σ = φ = He_2 on S^{d−1} (module docstring, k = 2).

    m₂(σ) = E[x₀ e^{16σ} / (1 + x₀ e^{16σ})] with x₀ = s₀²/(1 − s₀²), s₀² ~ Beta(½, (d − 1)/2) for w
    uniform on the sphere (Gauss–Legendre quadrature with ``nodes`` points in the quantile level p of
    s₀², on which the bounded integrand depends smoothly); R_q is reached when
    (1 − m₂)² = (1 − q)(1 − 1/d)², at σ_q, and T_q = ∫₀^{σ_q} (d − 1) / (d (1 − m₂(σ))) dσ.
    """
    q = _check_level(level)
    d = float(dimension)
    if not (math.isfinite(d) and d >= 3):
        raise ValueError(f"dimension = {dimension!r} must be finite and >= 3")
    nodes_p, weights = special.roots_legendre(nodes)
    s0_squared = stats.beta.ppf(0.5 * (nodes_p + 1.0), 0.5, (d - 1.0) / 2.0)
    weights = weights / weights.sum()
    x0 = s0_squared / (1.0 - s0_squared)

    def m2(sigma: float) -> float:
        grown = x0 * math.exp(16.0 * sigma)
        return float(weights @ (grown / (1.0 + grown)))

    target = 1.0 - math.sqrt(1.0 - q) * (1.0 - 1.0 / d)
    upper = 1.0
    while m2(upper) < target:
        upper *= 2.0
    sigma_q = optimize.brentq(lambda sig: m2(sig) - target, 0.0, upper, xtol=1e-14, rtol=1e-14)
    value, _ = integrate.quad(lambda sig: (d - 1.0) / (d * (1.0 - m2(sig))), 0.0, sigma_q, epsabs=0.0,
                              epsrel=1e-12, limit=200)
    return float(value)


# ----------------------------------------------------------------------------------------------
# Reduced solves
# ----------------------------------------------------------------------------------------------

def sphere_hermite_problem(k: int, dimension: int):
    """``SingleIndexProblem`` of σ = φ = He_k on S^{d−1} with a fixed second layer a = 1 (coordinate s)."""
    from reduced_pde.models.single_index import SingleIndexProblem

    k = _check_degree(k)
    return SingleIndexProblem({"name": "he", "degree": k}, f"he{k}", dimension, sphere=True,
                              train_second_layer=False)


def solve_escape_time(k: int, dimension: int, *, level: float = 0.5, n_particles: int = 500,
                      points_per_decade: int = 60, span: tuple[float, float] = (0.02, 8.0),
                      rtol: float = 1e-8, atol: float = 1e-11) -> dict[str, Any]:
    """T_q of one reduced solve (characteristics solver, ``n_particles`` mid-quantile particles).

    The risk is recorded at t = 0 and on a geometric grid of ``points_per_decade`` points per decade
    from span[0]·T_pred to span[1]·T_pred (T_pred = :func:`predicted_escape_time`); integration stops
    at the first sample below R_q.  Returns {"escape_time", "time", "risk", "wall_time", "evaluations"}.
    """
    from solvers.lagrangian import LagrangianSolver

    q = _check_level(level)
    if not (isinstance(points_per_decade, int) and points_per_decade >= 2):
        raise ValueError(f"points_per_decade = {points_per_decade!r} must be an integer >= 2")
    if not (0 < span[0] < 1 < span[1]):
        raise ValueError(f"span = {span!r} must satisfy 0 < span[0] < 1 < span[1]")
    problem = sphere_hermite_problem(k, dimension)
    guess = predicted_escape_time(k, dimension, q)
    n_times = math.ceil(points_per_decade * math.log10(span[1] / span[0])) + 1
    grid = np.geomspace(span[0] * guess, span[1] * guess, n_times)
    start = wallclock.perf_counter()
    solver = LagrangianSolver(problem, n_particles=n_particles, rtol=rtol, atol=atol)
    times, risks = [0.0], [solver.observables()["risk"]]
    threshold = risks[0] * (1.0 - q)
    for t in grid:
        solver.advance(float(t))
        risk = float(solver.observables()["risk"])
        if not math.isfinite(risk):
            raise RuntimeError(f"risk became {risk!r} at t = {t:.6g} (k = {k}, d = {dimension})")
        times.append(float(t))
        risks.append(risk)
        if risk <= threshold:
            break
    curve = (np.array(times), np.array(risks))
    return {"escape_time": escape_time(curve, q), "time": curve[0], "risk": curve[1],
            "wall_time": wallclock.perf_counter() - start,
            "evaluations": solver.diagnostics()["evaluations"]}


@dataclass
class EscapeTimeSweep:
    """Escape times T_q(d) of the He_k sphere model (see :func:`escape_time_sweep`)."""

    k: int
    level: float
    dimensions: np.ndarray
    escape_times: np.ndarray
    predicted: np.ndarray          # leading-order prediction (τ_q d^{(k−2)/2}; exact for k = 2)
    n_particles: int
    check_escape_times: np.ndarray | None = None   # with 2 n_particles
    wall_times: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def particle_relative_change(self) -> np.ndarray | None:
        """|T(2n) − T(n)| / T(2n) per d (the particle-discretisation error of T(n))."""
        if self.check_escape_times is None:
            return None
        return np.abs(self.escape_times - self.check_escape_times) / self.check_escape_times


def escape_time_sweep(k: int, dimensions: Sequence[int], *, level: float = 0.5, n_particles: int = 500,
                      check_particles: bool = True, points_per_decade: int = 60,
                      rtol: float = 1e-8, progress: bool = False) -> EscapeTimeSweep:
    """T_q(d) for each d by :func:`solve_escape_time`; with ``check_particles`` each solve is
    repeated with 2·n_particles and the relative change is reported (convergence check)."""
    k = _check_degree(k)
    q = _check_level(level)
    dims = np.asarray(dimensions)
    if dims.ndim != 1 or dims.size == 0 or np.any(dims != np.round(dims)) or np.any(dims < 3):
        raise ValueError(f"dimensions = {dimensions!r} must be a non-empty list of integers >= 3")
    values, checks, walls = [], [], []
    iterator: Any = dims.astype(int)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"He{k} escape times", unit="d")
    for d in iterator:
        run = solve_escape_time(k, int(d), level=q, n_particles=n_particles,
                                points_per_decade=points_per_decade, rtol=rtol, atol=rtol * 1e-3)
        values.append(run["escape_time"])
        wall = run["wall_time"]
        if check_particles:
            check = solve_escape_time(k, int(d), level=q, n_particles=2 * n_particles,
                                      points_per_decade=points_per_decade, rtol=rtol, atol=rtol * 1e-3)
            checks.append(check["escape_time"])
            wall += check["wall_time"]
        walls.append(wall)
    return EscapeTimeSweep(k=k, level=q, dimensions=dims.astype(float), escape_times=np.array(values),
                           predicted=np.array([predicted_escape_time(k, float(d), q) for d in dims]),
                           n_particles=n_particles,
                           check_escape_times=np.array(checks) if check_particles else None,
                           wall_times=np.array(walls))


# ----------------------------------------------------------------------------------------------
# Power-law fits
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PowerLawFit:
    """Least-squares fit log T = log C + γ log d on the points with d >= d_min.

    ``exponent_stderr`` = sqrt(s² / Σ(log d − mean)²), s² = RSS/(n − 2): the residual-based standard
    error.  The data are deterministic, so it measures the curvature of log T in log d (finite-d
    corrections) plus solver error, not noise."""

    exponent: float
    exponent_stderr: float
    prefactor: float
    n_points: int
    d_min: float

    def deviation(self, predicted: float) -> float:
        """(γ − predicted) in units of the standard error."""
        return (self.exponent - predicted) / self.exponent_stderr if self.exponent_stderr > 0 else math.inf


def fit_power_law(dimensions: Sequence[float], times: Sequence[float], *, d_min: float | None = None) -> PowerLawFit:
    """Fit T = C d^γ by least squares on (log d, log T) for d >= d_min (≥ 3 points needed)."""
    d = np.asarray(dimensions, dtype=float)
    t = np.asarray(times, dtype=float)
    if d.shape != t.shape or d.ndim != 1:
        raise ValueError(f"dimensions {d.shape} and times {t.shape} must be 1-D of equal length")
    if np.any(~np.isfinite(d)) or np.any(d <= 0) or np.any(~np.isfinite(t)) or np.any(t <= 0):
        raise ValueError("dimensions and times must be finite and > 0 for a log-log fit")
    keep = d >= (d_min if d_min is not None else -np.inf)
    if keep.sum() < 3:
        raise ValueError(f"d_min = {d_min!r} leaves {int(keep.sum())} points; a slope with a standard error "
                         "needs >= 3")
    x, y = np.log(d[keep]), np.log(t[keep])
    xm = x - x.mean()
    slope = float(xm @ (y - y.mean()) / (xm @ xm))
    intercept = float(y.mean() - slope * x.mean())
    residual = y - intercept - slope * x
    variance = float(residual @ residual) / (x.size - 2)
    return PowerLawFit(exponent=slope, exponent_stderr=math.sqrt(variance / float(xm @ xm)),
                       prefactor=math.exp(intercept), n_points=int(x.size), d_min=float(d[keep].min()))


def local_exponents(dimensions: Sequence[float], times: Sequence[float]) -> np.ndarray:
    """Slopes Δ log T / Δ log d between consecutive dimensions (the trend towards the asymptotic law)."""
    d = np.asarray(dimensions, dtype=float)
    t = np.asarray(times, dtype=float)
    if d.shape != t.shape or d.size < 2:
        raise ValueError(f"dimensions {d.shape} and times {t.shape} must be 1-D of equal length >= 2")
    return np.diff(np.log(t)) / np.diff(np.log(d))


def extrapolated_exponent(dimensions: Sequence[float], times: Sequence[float], correction_order: float,
                          *, last: int = 5, log_correction: bool = True) -> tuple[float, float]:
    """Asymptotic exponent γ∞ from the last ``last`` local exponents, assuming
    γ_local(d) = γ∞ + (A + B ln d) d^{−p} (p = ``correction_order``; B = 0 if not ``log_correction``),
    evaluated at the geometric mid-point of each pair: linear least squares; returns (γ∞, its
    residual-based standard error, 0 when no degree of freedom is left).  The log term is the form
    of the finite-d correction of T_q (module docstring: transit times grow like ln d)."""
    d = np.asarray(dimensions, dtype=float)
    slopes = local_exponents(d, times)
    columns = 3 if log_correction else 2
    if not (columns <= last <= slopes.size):
        raise ValueError(f"last = {last!r} must be in [{columns}, {slopes.size}] (number of local exponents)")
    if not correction_order > 0:
        raise ValueError(f"correction_order = {correction_order!r} must be > 0")
    mid = np.sqrt(d[1:] * d[:-1])[-last:]
    x = mid ** (-correction_order)
    basis = [np.ones_like(x), x] + ([x * np.log(mid)] if log_correction else [])
    design = np.stack(basis, axis=1)
    y = slopes[-last:]
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    if last == columns:
        return float(coefficients[0]), 0.0
    residual = y - design @ coefficients
    covariance = float(residual @ residual) / (last - columns) * np.linalg.inv(design.T @ design)
    return float(coefficients[0]), float(math.sqrt(covariance[0, 0]))


@dataclass(frozen=True)
class ExponentEstimates:
    """Estimates of the asymptotic exponent γ of deterministic times T(d) ~ C d^γ and their spread.

    The times come from converged solves, so a fit's residual standard error measures the curvature
    of log T (finite-d corrections), not noise, and quoting it as an uncertainty would exclude the
    true exponent by tens of standard errors.  The honest uncertainty is systematic: how much the
    estimate moves with the method and the range of d.  ``fit``: least squares on the larger half of
    the dimensions (at least 3 points); ``window_fits``: fits on every 3 consecutive dimensions of that
    half; ``local``: the last local exponent; ``extrapolated``: :func:`extrapolated_exponent` (when
    there are enough local exponents, else None).  ``low``/``high``: the range of all of them."""

    fit: PowerLawFit
    window_fits: tuple[float, ...]
    local: float
    extrapolated: float | None

    @property
    def values(self) -> tuple[float, ...]:
        return (self.fit.exponent, *self.window_fits, self.local,
                *(() if self.extrapolated is None else (self.extrapolated,)))

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


def exponent_estimates(dimensions: Sequence[float], times: Sequence[float], *,
                       correction_order: float | None = None) -> ExponentEstimates:
    """The estimates of :class:`ExponentEstimates` for times at ≥ 3 dimensions (sorted by d);
    ``correction_order`` p of the finite-d correction (γ_local = γ∞ + (A + B ln d) d^{−p}) enables the
    extrapolated estimate (needs ≥ 3 local exponents)."""
    d = np.asarray(dimensions, dtype=float)
    t = np.asarray(times, dtype=float)
    if d.shape != t.shape or d.ndim != 1 or d.size < 3:
        raise ValueError(f"dimensions {d.shape} and times {t.shape} must be 1-D of equal length >= 3")
    order = np.argsort(d)
    d, t = d[order], t[order]
    upper = max(3, (d.size + 1) // 2)
    fit = fit_power_law(d, t, d_min=float(d[-upper]))
    windows = tuple(fit_power_law(d[i:i + 3], t[i:i + 3]).exponent for i in range(d.size - upper, d.size - 2))
    local = float(local_exponents(d, t)[-1])
    extrapolated = None
    if correction_order is not None and d.size - 1 >= 3:
        extrapolated = extrapolated_exponent(d, t, correction_order, last=min(5, d.size - 1),
                                             log_correction=d.size - 1 >= 3)[0]
    return ExponentEstimates(fit=fit, window_fits=windows, local=local, extrapolated=extrapolated)


# ----------------------------------------------------------------------------------------------
# Learning times with separated layer speeds (BMZ-type targets, second layer 1/ε faster)
# ----------------------------------------------------------------------------------------------
#
# Setting: sphere model at d = ∞, target φ = Σ c_k He_k (normalised coefficients φ̂_k = c_k √k!),
# trained second layer moving 1/ε times faster than w, s(0) = 0 for every neuron (point mass: d = ∞),
# a(0) with variance V.  With ψ = a v(s) + a ∫ a' u(s, s') dρ', v = −Σ φ̂_k α_k s^k,
# u = Σ α_k² (s s')^k (d = ∞), the characteristics are (ξ = 1)
#
#     ȧ = −(2/ε) ∂_a ψ = (2/ε) Σ_k α_k r_k s^k,      ṡ = −2 (1 − s²) ∂_s ψ = 2 (1 − s²) a Σ_k k α_k r_k s^{k−1},
#
# with the component residuals r_k = φ̂_k − m̂_k, m̂_k = α_k ∫ a s^k dρ.
#
# He_0 (exact while s = 0): r_0(t) = r_0(0) e^{−2α_0² t/ε}, so
# R − R_0 = r_0(0)² e^{−4α_0² t/ε} and the risk has lost half of r_0(0)² at t_0 = ε ln 2 / (4 α_0²).
#
# He_1: the fast He_0 mode keeps ∫ a fixed, so the fluctuations δa = a − ā, δs = s − s̄ obey, to first
# order in s, δȧ = (2/ε) α_1 r_1 δs, δṡ = 2 α_1 r_1 δa: a saddle with growth rate λ = 2α_1|r_1|/√ε.
# From δa(0) ~ (variance V), δs(0) = 0: Cov(a, s) = sign(r_1) √ε V cosh(λt) sinh(λt), and
# m̂_1 = α_1 Cov(a, s) + α_1 ā s̄ (the last term grows only linearly in t).  With r_1 ≈ φ̂_1 until the
# end, m̂_1 reaches φ̂_1/2 at
#
#     t_1(ε) = (√ε / (4 α_1 |φ̂_1|)) [ ln( 2|φ̂_1| / (α_1 V √ε) ) + O(1) ],
#
# the O(1) from the saturation r_1 → 0 and the linear drift.  So t_1 ∝ √ε ln(1/ε): local exponent
# d ln t_1/d ln ε = ½ − 1/(2 ln(C/√ε)) → ½ from below, and t_1/√ε is linear in ln(1/√ε) with slope
# exactly 1/(4α_1|φ̂_1|) — the quantitative check.
#
# He_2: no law is derived here.  At the end of the He_1 phase a ~ ε^{−1/4} and s ~ ε^{1/4} (a s ~
# φ̂_1/α_1 with a ~ s/√ε), and the naive rescaling of ȧ = (2/ε) α_2 r_2 s², ṡ = 4 α_2 r_2 a s gives
# t_2 − t_1 ∝ ε^{1/4}; the converged computation (Gauss particles, benchmarks/epsilon_sweep_results.txt)
# gives local exponents 0.31–0.35 instead (fit 0.33 on ε ≤ 1e-5), so the argument misses something —
# presumably the fast He_0/He_1 modes, which hold r_0 = r_1 = 0 and constrain a during the He_2 phase.
# Measured time scales: ε, √ε ln(1/ε), ≈ ε^{1/3}: each component is learnt on a longer scale than the
# previous one as ε → 0 (the separation of time scales of incremental learning).


def he0_fit_time(epsilon: float, alpha_0: float, fraction: float = 0.5) -> float:
    """Exact time at which the second layer has removed ``fraction`` of the He_0 excess risk
    r_0(0)² while s = 0: t = ε ln(1/(1 − fraction)) / (4 α_0²) (see the comment block above)."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon = {epsilon!r} must be a finite number > 0")
    if not (math.isfinite(alpha_0) and alpha_0 != 0):
        raise ValueError(f"alpha_0 = {alpha_0!r} must be finite and non-zero (σ must have a mean)")
    q = _check_level(fraction)
    return epsilon * math.log(1.0 / (1.0 - q)) / (4.0 * alpha_0 ** 2)


def he1_learning_time(epsilon: float, alpha_1: float, phi_1: float, second_layer_variance: float) -> float:
    """Leading-order time at which m̂_1 = φ̂_1/2 (comment block above):
    t_1 = (√ε / (4 α_1 |φ̂_1|)) ln(2|φ̂_1| / (α_1 V √ε)); valid for ε → 0 up to an O(√ε) term
    (the O(1) inside the bracket is not derived)."""
    for name, value in (("epsilon", epsilon), ("second_layer_variance", second_layer_variance)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} = {value!r} must be a finite number > 0")
    if not (math.isfinite(alpha_1) and alpha_1 != 0 and math.isfinite(phi_1) and phi_1 != 0):
        raise ValueError(f"alpha_1 = {alpha_1!r} and phi_1 = {phi_1!r} must be finite and non-zero")
    root = math.sqrt(epsilon)
    return root / (4.0 * abs(alpha_1 * phi_1)) * math.log(2.0 * abs(phi_1) / (abs(alpha_1) * second_layer_variance * root))


def learning_time(time: Sequence[float], order_parameter: Sequence[float], target: float,
                  fraction: float = 0.5) -> float:
    """First time the network coefficient m̂_k(t) (``order_parameter``) reaches ``fraction`` of the
    target's φ̂_k (``target``), by linear interpolation in log t between the bracketing samples
    (t > 0 only); NaN if never reached."""
    t = np.asarray(time, dtype=float)
    m = np.asarray(order_parameter, dtype=float)
    if t.shape != m.shape or t.ndim != 1:
        raise ValueError(f"time {t.shape} and order_parameter {m.shape} must be 1-D of equal length")
    if not (math.isfinite(target) and target != 0):
        raise ValueError(f"target = {target!r} must be finite and non-zero")
    q = _check_level(fraction)
    keep = t > 0
    t, ratio = t[keep], m[keep] / target
    reached = np.flatnonzero(ratio >= q)
    if reached.size == 0:
        return math.nan
    i = int(reached[0])
    if i == 0:
        return float(t[0])
    x = np.log(t[i - 1 : i + 1])
    return float(math.exp(np.interp(q, ratio[i - 1 : i + 1], x)))
