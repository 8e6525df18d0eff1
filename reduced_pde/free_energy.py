"""Free energy, discrete Gibbs states and self-consistent fixed points of the noisy reduced dynamics.

Conventions (design note §2–§3).  Noisy SGD with weight decay λ and inverse temperature β has the
mean-field limit ``∂_t ρ = 2ξ[∇·(ρ∇Ψ_λ) + β⁻¹Δρ]``, ``Ψ_λ = Ψ + (λ/2)|θ|²``.  For the radial MMN18
reduction (``r = |w|``, ``w ∈ R^d``) the density ``p(r)`` with respect to ``dr`` is
``p = |S^{d−1}| r^{d−1} ρ(r)``, and since ``∇·(ρ ψ' ŵ) = r^{1−d}∂_r(r^{d−1}ρψ')``,
``Δρ = r^{1−d}∂_r(r^{d−1}∂_rρ)``:

    ∂_t p = 2ξ(t) ∂_r[ p ∂_r ψ_λ + β⁻¹ J ∂_r(p/J) ] = (2ξ/β) ∂_r[ e^{−Φ} ∂_r(e^{Φ} p) ],
    J(r) = r^{d−1},   ψ_λ = ψ + (λ/2) r²,   Φ = β ψ_λ − log J.

Free energy (up to a constant): ``F(p) = ½R(p) + (λ/2)∫r²p + β⁻¹∫p log(p/J)``; its first variation
is ``ψ_λ + β⁻¹(log(p/J) + 1)``, so stationary points are the Gibbs states ``p* ∝ J e^{−βψ_λ(·;p*)}``.
When the kernel u is positive semi-definite (MMN18: u is an average of E[σσ']) F is strictly convex
and p* is unique.

Discretisation (shared with :mod:`solvers.fokker_planck`): cell centres r_i, masses m_i = p_i h,
``ψ_i = v_i + Σ_k λ_k g_k(r_i) M_k``, ``M_k = Σ_j g_k(r_j) m_j`` (the problem's low-rank kernel),
``log J_i = (d−1) log r_i`` (logs only: at d = 320, J spans thousands of decades), and

    F_h(p) = ½R_h + (λ/2) Σ r_i² m_i + β⁻¹ Σ m_i log(p_i / J_i),
    R_h = E[y²] + 2 Σ v_i m_i + Σ_k λ_k M_k².

The discrete Gibbs state ``p_i ∝ exp(−Φ_i)`` is an exact zero of the Scharfetter–Gummel flux.

Geometry comes from the problem only (:mod:`reduced_pde.problem`): ``problem.log_reference_density``
gives ``log J`` at the cell centres, ``problem.check_noise`` refuses what the reduction cannot carry.
The same formulas hold on the sphere S^{d−1} with a fixed second layer (single-index problem,
coordinate ``s = ⟨w, θ*⟩ ∈ [−1, 1]``, density w.r.t. ds): noisy projected SGD has generator
``2ξ[−(1−s²)ψ'∂_s + β⁻¹((1−s²)∂_s² − (d−1)s∂_s)]``, whose adjoint is

    ∂_t p = 2ξ ∂_s[ (1 − s²) ( p ∂_s ψ + β⁻¹ J ∂_s(p/J) ) ],   J(s) = (1 − s²)^{(d−3)/2},

(``β⁻¹∂_s[(1−s²)∂_s p + (d−3)s p]`` = the J form), i.e. the radial equation with the *mobility*
``1 − s²`` (``problem.mobility``) in front of the flux.  The Gibbs states, the free energy
``F = ½R + β⁻¹∫p log(p/J)`` and the fixed-point iteration do not see the mobility.  The sphere
problem refuses weight decay (its ``check_noise``).
:func:`gibbs_fixed_point` solves the self-consistency by Newton's method on the K moments M
(Jacobian ``I + β C W``, C the covariance of the features under p, W = diag(λ_k): invertible,
since CW is similar to the PSD matrix W^{½}CW^{½}) with backtracking on the residual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reduced_pde.problem import ReducedProblem

__all__ = ["GridOperators", "discrete_gibbs_density", "free_energy_terms", "GibbsFixedPoint", "gibbs_fixed_point",
           "noiseless_optimum", "check_noise_parameters", "check_noise_values"]


def check_noise_values(beta: float, weight_decay: float) -> tuple[float, float]:
    """``(β, λ)`` as floats if ``β > 0`` (``inf``: no noise) and ``λ`` is finite and >= 0, else ValueError
    naming the field.  What a given reduction can carry is its ``problem.check_noise``."""
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"noise.beta = {beta!r} must be a number > 0 or \"inf\"") from None
    if not beta > 0 or math.isnan(beta):
        raise ValueError(f"noise.beta = {beta!r} must be > 0 (or \"inf\": no noise)")
    try:
        weight_decay = float(weight_decay)
    except (TypeError, ValueError):
        raise ValueError(f"noise.weight_decay = {weight_decay!r} must be a number >= 0") from None
    if not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"noise.weight_decay = {weight_decay!r} must be a finite number >= 0")
    return beta, weight_decay


def check_noise_parameters(beta: float, weight_decay: float, dimension: float) -> tuple[float, float]:
    """Validate (β, λ) for a problem of dimension d (:func:`check_noise_values`); refuse noise at d = ∞.

    At d = ∞ the Bessel drift (d−1)/(βr) diverges unless β ∝ d; the radial law of the noisy dynamics
    is then not described by this reduction, so it is refused rather than silently rescaled."""
    beta, weight_decay = check_noise_values(beta, weight_decay)
    if math.isfinite(beta) and math.isinf(dimension):
        raise ValueError(f"noise.beta = {beta:g} with data.dimension = inf is refused: the radial "
                         "entropy term (d−1)/(βr) diverges as d → ∞ at fixed β (use a finite "
                         "dimension, or beta = \"inf\")")
    if math.isfinite(dimension) and dimension < 2:
        raise ValueError(f"data.dimension = {dimension} must be >= 2 for the radial Fokker–Planck")
    return beta, weight_decay


@dataclass
class GridOperators:
    """Everything the discrete free energy needs on a grid of cell centres ``r`` (width ``h``)."""

    r: np.ndarray
    h: float
    v: np.ndarray
    weights: np.ndarray      # (K,) λ_k
    features: np.ndarray     # (K, M) g_k(r_i)
    log_j: np.ndarray
    target_second_moment: float

    @classmethod
    def build(cls, problem: ReducedProblem, centers: np.ndarray, h: float, *, entropy: bool = True
              ) -> "GridOperators":
        """v, the low-rank kernel and ``log J = problem.log_reference_density`` at the cell centres
        (zeros with ``entropy=False``: the noiseless case, where J does not enter)."""
        centers = np.asarray(centers, dtype=float)
        kernel = problem.interaction_low_rank(centers)
        log_j = (np.asarray(problem.log_reference_density(centers), dtype=float).reshape(centers.shape)
                 if entropy else np.zeros(centers.shape))
        return cls(centers, float(h),
                   np.ascontiguousarray(problem.reduced_potential(centers), dtype=float),
                   np.ascontiguousarray(kernel.weights, dtype=float),
                   np.ascontiguousarray(kernel.features, dtype=float).reshape(kernel.rank, len(centers)),
                   np.ascontiguousarray(log_j), float(problem.target_second_moment))

    def moments(self, masses: np.ndarray) -> np.ndarray:
        return self.features @ masses

    def potential(self, masses: np.ndarray, weight_decay: float = 0.0) -> np.ndarray:
        """``ψ_λ,i = v_i + Σ_k λ_k g_k(r_i) M_k + (λ/2) r_i²``."""
        return self.v + (self.weights * self.moments(masses)) @ self.features + 0.5 * weight_decay * self.r**2


def discrete_gibbs_density(phi: np.ndarray, h: float) -> np.ndarray:
    """Density ``p_i = exp(−Φ_i) / Σ_j exp(−Φ_j) h`` (log-sum-exp: no overflow for any Φ)."""
    shifted = -(phi - np.min(phi))
    weights = np.exp(shifted)
    return weights / (weights.sum() * h)


def free_energy_terms(ops: GridOperators, density: np.ndarray, beta: float,
                      weight_decay: float) -> dict[str, float]:
    """``risk`` R_h, ``second_moment`` Σ r² m, ``entropy`` Σ m log(p/J) and ``free_energy`` F_h."""
    m = np.asarray(density, dtype=float) * ops.h
    moments = ops.moments(m)
    risk = ops.target_second_moment + 2.0 * ops.v @ m + ops.weights @ moments**2
    second = float(ops.r**2 @ m)
    positive = density > 0
    entropy = float(np.sum(m[positive] * (np.log(density[positive]) - ops.log_j[positive])))
    free = 0.5 * risk + 0.5 * weight_decay * second
    if math.isfinite(beta):
        free += entropy / beta
    return {"risk": float(risk), "second_moment": second, "entropy": entropy, "free_energy": float(free)}


@dataclass
class GibbsFixedPoint:
    """Result of :func:`gibbs_fixed_point`: density on the grid and convergence record."""

    density: np.ndarray
    r: np.ndarray
    h: float
    beta: float
    weight_decay: float
    iterations: int
    residual: float          # ‖p − G(p)‖_L1 with G(p) = normalised J e^{−βψ_λ(·;p)}
    moment_residual: float   # max_k |M_k − (G m)_k|
    terms: dict[str, float] = field(default_factory=dict)

    @property
    def risk(self) -> float:
        return self.terms["risk"]

    @property
    def free_energy(self) -> float:
        return self.terms["free_energy"]

    def mean_r(self) -> float:
        return float(self.r @ self.density * self.h)


def gibbs_fixed_point(problem: ReducedProblem, centers: np.ndarray, h: float, beta: float,
                      weight_decay: float, *, tolerance: float = 1e-12, max_iterations: int = 200
                      ) -> GibbsFixedPoint:
    """Self-consistent discrete Gibbs state ``p_i ∝ exp(−Φ_i(p))`` (module docstring) on the cell
    centres ``centers`` of a one-coordinate problem (``r`` of the result holds them, whatever the
    coordinate), with ``log J = problem.log_reference_density``.

    Newton on the moments M ∈ R^K: ``F(M) = M − G π(M)`` with π(M) the normalised Gibbs masses of
    the potential with moments M; stops when ``max|F| <= tolerance · (1 + max|M|)`` and then
    reports the density residual ‖p − G(p)‖_L1 (≲ β·‖W‖·max|g|²·tolerance).  Raises ValueError
    if it does not converge in ``max_iterations``."""
    beta, weight_decay = check_noise_values(beta, weight_decay)
    if not math.isfinite(beta):
        raise ValueError("gibbs_fixed_point needs a finite noise.beta (β = inf has no Gibbs state; "
                         "see noiseless_optimum)")
    problem.check_noise(beta, weight_decay)
    ops = GridOperators.build(problem, centers, h)
    base = beta * (ops.v + 0.5 * weight_decay * ops.r**2) - ops.log_j
    g, w = ops.features, ops.weights

    def masses_of(moments: np.ndarray) -> np.ndarray:
        phi = base + beta * ((w * moments) @ g)
        return discrete_gibbs_density(phi, h) * h

    def residual_of(moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = masses_of(moments)
        return moments - g @ m, m

    moments = np.zeros(ops.weights.shape[0])
    res, m = residual_of(moments)
    iterations = 0
    while iterations < max_iterations:
        norm = float(np.max(np.abs(res))) if res.size else 0.0
        if norm <= tolerance * (1.0 + float(np.max(np.abs(moments), initial=0.0))):
            break
        iterations += 1
        mean = g @ m
        cov = (g * m) @ g.T - np.outer(mean, mean)
        jac = np.eye(len(moments)) + beta * cov * w[None, :]
        step = -np.linalg.solve(jac, res)
        scale = 1.0
        while True:
            trial = moments + scale * step
            trial_res, trial_m = residual_of(trial)
            if np.max(np.abs(trial_res)) < (1.0 - 1e-4 * scale) * norm or scale < 1e-10:
                break
            scale *= 0.5
        moments, res, m = trial, trial_res, trial_m
    else:
        raise ValueError(f"Gibbs fixed point did not converge in {max_iterations} Newton steps "
                         f"(β = {beta:g}, λ = {weight_decay:g}, residual {np.max(np.abs(res)):.3g}); "
                         "refine the grid or lower β")
    density = m / h
    image = masses_of(g @ m) / h
    terms = free_energy_terms(ops, density, beta, weight_decay)
    return GibbsFixedPoint(density, ops.r, h, beta, weight_decay, iterations,
                           residual=float(np.sum(np.abs(density - image)) * h),
                           moment_residual=float(np.max(np.abs(res), initial=0.0)), terms=terms)


def _project_simplex(x: np.ndarray) -> np.ndarray:
    """Euclidean projection onto the probability simplex (sort-based, O(M log M))."""
    u = np.sort(x)[::-1]
    cumulative = np.cumsum(u) - 1.0
    index = np.arange(1, x.size + 1)
    rho = np.nonzero(u - cumulative / index > 0)[0][-1]
    return np.maximum(x - cumulative[rho] / (rho + 1.0), 0.0)


def noiseless_optimum(problem: ReducedProblem, centers: np.ndarray, h: float, weight_decay: float,
                      *, gap_tolerance: float = 1e-9, max_iterations: int = 200_000) -> dict[str, Any]:
    """Minimum of ``E_λ(m) = ½R_h(m) + (λ/2) Σ r² m`` over probability vectors m on the grid (β = ∞).

    A convex quadratic programme (u PSD), solved by accelerated projected gradient (FISTA with
    adaptive restart, step 1/L, L = ‖G^T W G‖₂) until the Frank–Wolfe duality gap
    ``∇E·m − min_j ∂_j E`` — a certified bound on ``E_λ(m) − min E_λ`` — is below
    ``gap_tolerance``.  Returns masses, risk, objective, gap, iterations, mean_r."""
    ops = GridOperators.build(problem, centers, h, entropy=False)  # log J is unused at β = ∞
    linear = ops.v + 0.5 * weight_decay * ops.r**2
    g, w = ops.features, ops.weights

    def objective(m: np.ndarray) -> tuple[float, np.ndarray]:
        moments = g @ m
        value = 0.5 * ops.target_second_moment + linear @ m + 0.5 * w @ moments**2
        return float(value), linear + (w * moments) @ g

    lipschitz = float(np.linalg.norm((g.T * np.sqrt(w)), 2) ** 2) if w.size else 1.0
    step = 1.0 / max(lipschitz, 1e-300)
    m = np.full(len(centers), 1.0 / len(centers))
    y, momentum = m.copy(), 1.0
    value, grad = objective(m)
    gap = float(grad @ m - grad.min())
    iterations = 0
    while gap > gap_tolerance and iterations < max_iterations:
        iterations += 1
        _, grad_y = objective(y)
        m_next = _project_simplex(y - step * grad_y)
        value_next, grad_next = objective(m_next)
        if value_next > value:  # adaptive restart (O'Donoghue–Candès)
            momentum, y = 1.0, m.copy()
            continue
        momentum_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * momentum**2))
        y = m_next + ((momentum - 1.0) / momentum_next) * (m_next - m)
        m, value, grad, momentum = m_next, value_next, grad_next, momentum_next
        gap = float(grad @ m - grad.min())
    moments = g @ m
    risk = ops.target_second_moment + 2.0 * ops.v @ m + w @ moments**2
    return {"masses": m, "risk": float(risk), "objective": value, "gap": gap,
            "iterations": iterations, "mean_r": float(ops.r @ m)}
