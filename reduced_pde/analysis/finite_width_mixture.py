"""Finite width for MMN18's isotropic Gaussian mixture: the 1/N prediction and the N-neuron flow.

Setting (:mod:`reduced_pde.models.isotropic_mixture`; derivation ``docs/finite_width.md`` §5)
-----------------------------------------------------------------------------------------------
Neurons ``w ∈ R^d``, ``f_ρ(x) = ∫σ(⟨w, x⟩) ρ(dw)`` (second layer 1, not trained), classes
``y = ±1`` (probability ``p_y = ½``) with ``x | y ~ N(0, s_y² I_d)``, ``s_y = 1 + yΔ``; risk (no ½)
``R(μ) = 1 + 2∫v(|w|) dμ + ∫∫U dμ dμ`` with, for ``w ≠ w'`` at cosine c (Mehler),

    U(w, w') = Σ_y p_y Σ_k α_k(s_y |w|) α_k(s_y |w'|) c^k,      U(w, w) = D(|w|) := Σ_y p_y E σ(s_y |w| G)².

The N-neuron network ``ρ^N = (1/N) Σ_i δ_{w_i}`` has risk ``L_N = R(ρ^N)`` (the diagonal i = j uses
D, exactly), and its population gradient flow ``dw_i/dt = −2ξ ∇_1Ψ(w_i; ρ^N)``,
``Ψ(w; ρ) = v(|w|) + ∫U(w, w') ρ(dw')``, is the mean-field equation solved by ρ^N itself (the
self-term ``∇_1U(w, w)|_{w' = w} = ½ D'(|w|) ŵ`` included).  Hence, as on the sphere,
``E L_N(t) = L(ν_t) + c(t)/N + O(1/N²)`` with
``c(t) = ½ E_{w~ν_0} ∂²_ε R(S_t((1 − ε)ν_0 + εδ_w))|_{ε=0}`` and ``c(0) = E_w D(|w|) − ∫∫U dν_0 dν_0``
(the variance of one neuron's output, exact).

Reduction of the perturbed flow.  ``(1 − ε)ν_0 + εδ_w`` is invariant under the rotations fixing w,
so with ``e_1 = ŵ`` a neuron is ``θ = x₁e₁ + ρu`` (``u ⊥ e_1`` uniform on S^{d−2}): the flow moves
``(x₁, ρ) = r(cos φ, sin φ)`` and the atom stays on the axis (ρ = 0).  Averaging the truncated Mehler
series over ``γ = ⟨u, u'⟩`` (moments ``E γ^l`` in R^{d−1}) gives a low-rank kernel

    E_γ U_K(θ, θ') = Σ_{y,k,l even} C_{ykl} g_{ykl}(θ) g_{ykl}(θ'),
    g_{ykl} = α_k(s_y r) cos^{k−l}φ sin^lφ,   C_{ykl} = p_y C(k, l) E[γ^l] >= 0,

with K the problem's own truncation degree (:meth:`IsotropicMixtureRadialProblem.series_degree`),
and the atom's self-interaction ε²D(r_atom) (and its gradient) exact — the Mehler series at c = 1
converges slowly, so the truncated diagonal is replaced by ``D − D_K``.  At ε = 0 this is the radial
reduction of the package (tested: same L(ν_t) as the problem's low-rank kernel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from numba import njit
from scipy.special import comb, roots_jacobi, roots_legendre

from reduced_pde.analysis.finite_width import COMMON_CHAOS_KEYS, QUANTILES, Cost, CoupledRuns, FiniteWidth, \
    FluctuationPrediction, _check_int, _check_positive, _check_times, _constant_schedule, finite_width_of, march
from reduced_pde.analysis.gaussian_norms import mixture_norm_limits
from reduced_pde.hermite import cosine_moments
from reduced_pde.problem import NoFiniteWidth

__all__ = ["MixtureNetworkRuns", "predict_mixture_fluctuations", "mixture_network_flow",
           "mixture_output_variance", "MixtureFiniteWidth"]

Schedule = Callable[[float], float]

_FD_STEP = 1e-5  # central difference of the closed-form D(r): relative error ~1e-10


class _Mixture:
    """The kernel pieces of an :class:`IsotropicMixtureRadialProblem` at finite d."""

    def __init__(self, problem: Any) -> None:
        d = float(problem.dimension)
        if not math.isfinite(d) or d < 4:
            raise ValueError(f"data.dimension = {problem.dimension!r} must be a finite integer >= 4 here")
        self.problem = problem
        self.dimension = int(d)
        self.activation = problem.activation
        self.classes = list(zip(problem.data.label_probabilities, problem.data.class_scales))
        law = problem.initial_law()
        self.law = law
        # the problem's degree, chosen for radii up to its bound (fixed for the whole run)
        self.degree = int(problem.series_degree(np.array([float(law.quantile(np.array(1 - 1e-12)))])))

    def alpha(self, r: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        n = scale * r
        return (self.activation.hermite_coefficients(n, self.degree),
                scale * self.activation.hermite_coefficients_derivative(n, self.degree))

    def diagonal(self, r: np.ndarray) -> np.ndarray:
        """``D(r) = Σ_y p_y E σ(s_y r G)²`` (closed form)."""
        return sum(p * self.activation.second_moment(s * np.asarray(r, dtype=float)) for p, s in self.classes)

    def diagonal_derivative(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=float)
        h = _FD_STEP * np.maximum(r, 1.0)
        return (self.diagonal(r + h) - self.diagonal(np.maximum(r - h, 0.0))) / (r + h - np.maximum(r - h, 0.0))

    def diagonal_truncated(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``D_K(r) = Σ_y p_y Σ_{k<=K} α_k(s_y r)²`` and its derivative."""
        value = np.zeros_like(np.asarray(r, dtype=float))
        slope = np.zeros_like(value)
        for p, s in self.classes:
            a, da = self.alpha(r, s)
            value = value + p * np.sum(a * a, axis=0)
            slope = slope + p * np.sum(2 * a * da, axis=0)
        return value, slope

    def potential(self, r: np.ndarray) -> np.ndarray:
        return self.problem.reduced_potential(r)

    def potential_gradient(self, r: np.ndarray) -> np.ndarray:
        return self.problem.reduced_potential_gradient(r)

    def radius_rule(self, nodes: int) -> tuple[np.ndarray, np.ndarray]:
        """Gauss–Legendre in the probability u = F(r) of the initial radius: nodes spread over the mass."""
        u, w = roots_legendre(nodes)
        return self.law.quantile((u + 1) / 2), w / 2


def _mixture_of(problem: Any) -> _Mixture:
    """The kernel pieces of a problem whose finite-width runs are the mixture's (its
    :meth:`~reduced_pde.problem.ReducedProblem.finite_width` hook is a :class:`MixtureFiniteWidth`)."""
    try:
        hook = finite_width_of(problem)
    except NoFiniteWidth:
        hook = None
    if not isinstance(hook, MixtureFiniteWidth):
        raise ValueError(f"problem = {type(problem).__name__}: finite-width predictions for the mixture need "
                         "data.model = 'isotropic_gaussian_mixture' (an IsotropicMixtureRadialProblem)")
    return hook.mix


def mixture_output_variance(problem: Any, nodes: int = 400) -> float:
    """``c(0) = e(0) = E_w D(|w|) − ∫∫U dν_0 dν_0`` (the variance of one neuron's output) with the
    problem's own low-rank kernel for the double integral and Gauss–Legendre in F(r) (``nodes``)."""
    mix = _mixture_of(problem)
    r, w = mix.radius_rule(nodes)
    kernel = problem.interaction_low_rank(r)
    moments = kernel.features @ w
    return float(w @ mix.diagonal(r) - kernel.weights @ moments ** 2)


@njit(cache=True)
def _powers(cos, sin, powers):  # pragma: no cover - compiled
    """``(pc, ps)``, rows of ``powers`` (2, J): pc[j] = cos^j, ps[j] = sin^j for j < J."""
    pc, ps = powers[0], powers[1]
    pc[0] = 1.0
    ps[0] = 1.0
    for j in range(1, pc.size):
        pc[j] = pc[j - 1] * cos
        ps[j] = ps[j - 1] * sin
    return pc, ps


@njit(cache=True)
def _plane_moments(alpha, cos, sin, weights, cls, kk, ll):  # pragma: no cover - compiled
    """``Σ_m weights[b, m] α_{cls,k}(b, m) cos^{k−l} sin^l`` (B, F); alpha (B, M, Y, K+1)."""
    B, M, _, K1 = alpha.shape
    F = kk.size
    out = np.zeros((B, F))
    powers = np.empty((2, K1 + 1))
    for b in range(B):
        for m in range(M):
            pc, ps = _powers(cos[b, m], sin[b, m], powers)
            w = weights[b, m]
            for f in range(F):
                out[b, f] += w * alpha[b, m, cls[f], kk[f]] * pc[kk[f] - ll[f]] * ps[ll[f]]
    return out


@njit(cache=True)
def _plane_gradient(alpha, dalpha, cos, sin, cm, cls, kk, ll):  # pragma: no cover - compiled
    """``(Σ_f cm[b, f] ∂_r g_f, Σ_f cm[b, f] ∂_φ g_f)`` at every point, each (B, M)."""
    B, M, _, K1 = alpha.shape
    F = kk.size
    grad_r = np.zeros((B, M))
    grad_phi = np.zeros((B, M))
    powers = np.empty((2, K1 + 2))
    for b in range(B):
        for m in range(M):
            pc, ps = _powers(cos[b, m], sin[b, m], powers)
            gr = 0.0
            gp = 0.0
            for f in range(F):
                j, l = kk[f] - ll[f], ll[f]
                c = cm[b, f]
                gr += c * dalpha[b, m, cls[f], kk[f]] * pc[j] * ps[l]
                angular = 0.0
                if j > 0:
                    angular -= j * pc[j - 1] * ps[l + 1]
                if l > 0:
                    angular += l * pc[j + 1] * ps[l - 1]
                gp += c * alpha[b, m, cls[f], kk[f]] * angular
            grad_r[b, m] = gr
            grad_phi[b, m] = gp
    return grad_r, grad_phi


class _PlaneKernel:
    """Features ``g_{ykl}`` and coefficients ``C_{ykl}`` (module doc) as index arrays; the sums over
    points and features compiled."""

    def __init__(self, mix: _Mixture) -> None:
        K = mix.degree
        gamma = cosine_moments(float(mix.dimension - 1), K)
        rows = []
        for iy, (p, _) in enumerate(mix.classes):
            for k in range(K + 1):
                for l in range(0, k + 1, 2):
                    rows.append((iy, k, l, p * comb(k, l) * gamma[l]))
        self.cls = np.array([r[0] for r in rows], dtype=np.int64)
        self.k = np.array([r[1] for r in rows], dtype=np.int64)
        self.l = np.array([r[2] for r in rows], dtype=np.int64)
        self.coefficient = np.array([r[3] for r in rows])
        self.mix = mix

    def polar(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """r, cos φ, sin φ, α (B, M, Y, K+1), dα/dr at points x (B, M, 2) = (x₁, ρ)."""
        r = np.hypot(x[..., 0], x[..., 1])
        safe = np.where(r > 0, r, 1.0)
        cos, sin = np.where(r > 0, x[..., 0] / safe, 1.0), np.where(r > 0, x[..., 1] / safe, 0.0)
        pairs = [self.mix.alpha(r, s) for _, s in self.mix.classes]
        alpha = np.ascontiguousarray(np.moveaxis(np.stack([a for a, _ in pairs]), (0, 1), (2, 3)))
        dalpha = np.ascontiguousarray(np.moveaxis(np.stack([da for _, da in pairs]), (0, 1), (2, 3)))
        return r, cos, sin, alpha, dalpha

    def moments(self, polar, weights: np.ndarray) -> np.ndarray:
        _, cos, sin, alpha, _ = polar
        return _plane_moments(alpha, cos, sin, weights, self.cls, self.k, self.l)

    def gradient(self, polar, moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, cos, sin, alpha, dalpha = polar
        return _plane_gradient(alpha, dalpha, cos, sin, self.coefficient[None, :] * moments,
                               self.cls, self.k, self.l)


def substeps(times: np.ndarray, dt: float, min_substeps: int) -> list[tuple[float, int]]:
    """For each output interval (the ``steps`` of :func:`~reduced_pde.analysis.finite_width.march`): the
    sub-step h = length/n, ``n = max(min_substeps, ceil(length/dt))``
    (log-spaced outputs resolve the fast start, dt bounds the step later)."""
    out = []
    for t0, t1 in zip(times[:-1], times[1:]):
        n = max(int(min_substeps), int(math.ceil((t1 - t0) / dt - 1e-12)))
        out.append(((t1 - t0) / n, n))
    return out


def predict_mixture_fluctuations(problem: Any, times: Any, *, atoms: int = 16, r_nodes: int = 48,
                                 c_nodes: int = 16, dt: float = 2e-2, min_substeps: int = 4,
                                 epsilon: float = 1e-3, schedule: Schedule | None = None) -> FluctuationPrediction:
    """``e(t)``, ``c(t)`` and ``L(ν_t)`` for the isotropic mixture (module doc).

    ν_0 is the product rule (Gauss–Legendre in F(r), ``r_nodes``) × (Gauss–Jacobi in cos φ with
    density ∝ (1 − c²)^{(d−3)/2}, ``c_nodes``); atoms at ``atoms`` radii of the same radial rule; for
    each, ε ∈ {−epsilon, 0, +epsilon} (central differences, error O(ε²)); all batches advance
    together by RK4 (sub-steps of :func:`substeps`) with velocity ``−2ξ(∂_rΨ e_r + r^{−1}∂_φΨ e_φ)``."""
    mix = _mixture_of(problem)
    times = _check_times(times)
    dt = _check_positive("chaos.dt", dt)
    eps = _check_positive("chaos.epsilon", epsilon)
    schedule = schedule or _constant_schedule
    d = mix.dimension
    kernel = _PlaneKernel(mix)
    r0, wr = mix.radius_rule(_check_int("chaos.r_nodes", r_nodes, 2))
    exponent = (d - 3.0) / 2.0
    c0, wc = roots_jacobi(_check_int("chaos.c_nodes", c_nodes, 2), exponent, exponent)
    wc = wc / wc.sum()
    R, Cs = np.meshgrid(r0, c0, indexing="ij")
    base = np.stack([(R * Cs).ravel(), (R * np.sqrt(1 - Cs ** 2)).ravel()], axis=-1)  # (M, 2)
    base_weights = np.outer(wr, wc).ravel()
    r_atoms, w_atoms = mix.radius_rule(_check_int("chaos.atoms", atoms, 1))
    n = r_atoms.size
    mass = eps * np.concatenate([np.zeros(1), np.ones(n), -np.ones(n)])  # [unperturbed, +ε, −ε]
    atom_r = np.concatenate([[r_atoms.mean()], r_atoms, r_atoms])
    atom0 = np.stack([atom_r, np.zeros_like(atom_r)], axis=-1)  # (B, 2)
    weights = np.concatenate([(1.0 - mass)[:, None] * base_weights[None, :], mass[:, None]], axis=1)  # (B, M+1)
    state0 = np.concatenate([np.broadcast_to(base, (mass.size,) + base.shape), atom0[:, None, :]], axis=1)

    def velocity(t: float, y: tuple[np.ndarray]) -> tuple[np.ndarray]:
        x = y[0]
        polar = kernel.polar(x)
        r, cos, sin = polar[:3]
        grad_r, grad_phi = kernel.gradient(polar, kernel.moments(polar, weights))
        grad_r = grad_r + mix.potential_gradient(r)
        # the atom's self-interaction: exact D instead of the truncated diagonal
        ra = r[:, -1]
        _, slope_k = mix.diagonal_truncated(ra)
        grad_r[:, -1] += mass * 0.5 * (mix.diagonal_derivative(ra) - slope_k)
        tangential = grad_phi / np.where(r > 0, r, 1.0)
        v1 = grad_r * cos - tangential * sin
        v2 = grad_r * sin + tangential * cos
        return (-2.0 * schedule(t) * np.stack([v1, v2], axis=-1),)

    def measures(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        polar = kernel.polar(x)
        r = polar[0]
        moments = kernel.moments(polar, weights)
        ra = r[:, -1]
        tail = mix.diagonal(ra) - mix.diagonal_truncated(ra)[0]
        risk = (mix.problem.target_second_moment + 2 * np.einsum("bm,bm->b", weights, mix.potential(r))
                + (moments ** 2) @ kernel.coefficient + mass ** 2 * tail)
        return moments, risk, tail

    steps = substeps(times, dt, _check_int("chaos.min_substeps", min_substeps, 1))
    e, c, risk0 = (np.empty(times.size) for _ in range(3))
    along, across = (np.empty((times.size, r0.size)) for _ in range(2))
    plus, minus = slice(1, 1 + n), slice(1 + n, None)
    for k, state in march((state0.copy(),), times, steps, velocity):
        moments, risk, tail = measures(state[0])
        derivative = (moments[plus] - moments[minus]) / (2 * eps)
        e[k] = w_atoms @ (derivative ** 2 @ kernel.coefficient + 0.5 * (tail[plus] + tail[minus]))
        c[k] = 0.5 * w_atoms @ ((risk[plus] - 2 * risk[0] + risk[minus]) / eps ** 2)
        risk0[k] = risk[0]
        response = (state[0][plus, :-1] - state[0][minus, :-1]) / (2 * eps)  # g_t(θ, w) (atoms, M, 2)
        along[k], across[k] = coupling_covariance(response, base, w_atoms, wc)
    coupling = coupling_limits(along, across, wr, d)
    config = {"model": "isotropic_gaussian_mixture", "atoms": atoms, "r_nodes": r_nodes, "c_nodes": c_nodes,
              "dt": dt, "min_substeps": min_substeps, "epsilon": eps, "series_degree": mix.degree, "dimension": d}
    return FluctuationPrediction(times, e, c, risk0, config, coupling_rms=coupling[0], coupling_mean=coupling[1],
                                 coupling_quantiles=coupling[2])


def coupling_covariance(response: np.ndarray, base: np.ndarray, atom_weights: np.ndarray,
                        cosine_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``α(r) = E_w g_rad²`` and ``(d − 1)λ(r) = E_w |g_tan|²`` at each radius r of ν_0's rule
    (``docs/finite_width.md`` §5.1): ``response`` (atoms, M, 2) is ``g_t(θ, w)`` in the atom's frame
    (x₁, ρ) at the nodes ``base`` (M, 2) = r(cos φ, sin φ) of the product rule (radius-major,
    ``M = radii × cosines``); g_rad is its component along θ's initial direction (cos φ, sin φ) (the
    twin's ray) and g_tan the rest, in the plane of θ and w; the mean over w ~ ν_0 is the atoms'
    radial rule × the cosine rule (the cosine of θ to w)."""
    direction = base / np.linalg.norm(base, axis=-1, keepdims=True)
    radial = np.einsum("amj,mj->am", response, direction)
    tangential = response[..., 1] * direction[:, 0] - response[..., 0] * direction[:, 1]
    shape = (cosine_weights.size,)
    per_radius = lambda v: (atom_weights @ v).reshape(-1, *shape) @ cosine_weights  # noqa: E731
    return per_radius(radial ** 2), per_radius(tangential ** 2)


def coupling_limits(along: np.ndarray, across: np.ndarray, radius_weights: np.ndarray,
                    dimension: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The coupling gap's N → ∞ limits from ``α``, ``(d − 1)λ`` (T, R) at the radii of ν_0's rule
    (weights ``radius_weights``): given |θ_i(0)| = r, ``√N(θ_i − θ̄_i) → N(0, α θ̂θ̂ᵀ + λ(I − θ̂θ̂ᵀ))``,
    so ``lim √N (E|θ_i − θ̄_i|²)^{1/2} = (Σ_r w_r (α + (d − 1)λ))^{1/2}``, ``lim √N E|θ_i − θ̄_i| =
    Σ_r w_r E|Z_r|`` and the limits of √N × the quantiles (:data:`QUANTILES`) are those of the mixture
    Σ_r w_r Law(|Z_r|) (:mod:`reduced_pde.analysis.gaussian_norms`: C_t has the eigenvalue α once and λ
    d − 1 times); zero where the response vanishes (t = 0)."""
    eigenvalues = np.stack([along, across / (dimension - 1)], axis=-1)  # (T, R, 2)
    return mixture_norm_limits(radius_weights, eigenvalues, np.array([1.0, dimension - 1.0]), QUANTILES)


# --------------------------------------------------------------------------------------------
# The N-neuron population gradient flow (the measurement without SGD noise)
# --------------------------------------------------------------------------------------------


@dataclass
class MixtureNetworkRuns:
    """Population gradient flow of N-neuron networks: ``network_risk`` L_N (W, S, T) (exact, by
    :meth:`IsotropicMixtureRadialProblem.network_risk`), ``mean_field_risk`` L(ν_t) (T,) of the radial
    reduction, ``twin_fluctuation`` ``2∫ψ(·; ν_t) d(ρ̄^N_t − ν_t)`` (W, S, T), zero-mean control variate
    (the twins ``r̄_i(t)`` are the initial radii moved by the reduced characteristic, iid ν_t), and
    ``function_gap_squared`` ``E_t² = ‖f_N − f_{ν_t}‖² = E f_N² − 2(1/N)Σ_i ∫U(w_i, ·)dν_t + ∫∫U dν_t dν_t``
    (W, S, T): E f_N² exact, the other two by the radial low-rank kernel (ν_t is isotropic, so
    ∫U(w_i, ·)dν_t depends on |w_i| only).  The coupling gaps ``|w_i(t) − w̄_i(t)|`` to the twins
    ``w̄_i(t) = r̄_i(t) w_i(0)/|w_i(0)|`` (ν_t is isotropic, so the mean-field velocity
    ``−2ξ ψ'(|w|; ν_t) w/|w|`` is radial and a twin stays on its initial ray): ``coupling_mean``,
    ``coupling_rms`` (W, S, T) and ``coupling_quantiles`` (W, S, T, Q) over the N neurons at ``quantiles``;
    ``coupling_pooled_quantiles`` (W, T, Q) over the S·N neurons of all seeds at one width (the quantiles of
    one neuron's gap, which the prediction's ``coupling_quantiles`` are: a network's own quantiles are those
    of one realisation of the initial fluctuation field, narrower, ``docs/finite_width.md`` §5.1)."""

    time: np.ndarray
    width: np.ndarray
    seed: np.ndarray
    network_risk: np.ndarray
    mean_field_risk: np.ndarray
    twin_fluctuation: np.ndarray
    function_gap_squared: np.ndarray
    coupling_mean: np.ndarray
    coupling_rms: np.ndarray
    coupling_quantiles: np.ndarray
    quantiles: tuple[float, ...] = QUANTILES
    config: dict[str, Any] = field(default_factory=dict)
    coupling_pooled_quantiles: np.ndarray | None = None

    def as_coupled_runs(self) -> CoupledRuns:
        """The same arrays as the sphere's :class:`~reduced_pde.analysis.finite_width.CoupledRuns` (the
        layout of ``reduced-pde chaos``'s file)."""
        return CoupledRuns(self.time, self.width, self.seed, self.function_gap_squared, self.coupling_mean,
                           self.coupling_rms, self.coupling_quantiles, self.network_risk, self.mean_field_risk,
                           self.twin_fluctuation, tuple(self.quantiles), dict(self.config))

    @property
    def scaled_excess(self) -> np.ndarray:
        """``N (L_N − L(ν_t) − control)`` per (N, seed, t): estimates c(t) + O(1/N)."""
        return self.width[:, None, None] * (self.network_risk - self.mean_field_risk - self.twin_fluctuation)

    def seed_mean(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = values.shape[1]
        se = values.std(axis=1, ddof=1) / math.sqrt(n) if n > 1 else np.full(values.mean(axis=1).shape, np.nan)
        return values.mean(axis=1), se


def _network_gradient(mix: _Mixture, w: np.ndarray) -> np.ndarray:
    """``∇_1Ψ(w_i; ρ^N)`` for W (S, N, d): potential, truncated Mehler pairs (i ≠ j), exact self-term."""
    S, N, _ = w.shape
    r = np.linalg.norm(w, axis=-1)
    unit = w / r[..., None]
    cos = np.clip(unit @ np.swapaxes(unit, 1, 2), -1.0, 1.0)
    off = 1.0 - np.eye(N)
    radial = mix.potential_gradient(r) + 0.5 * mix.diagonal_derivative(r) / N  # with the exact self-term
    tangent = np.zeros((S, N, N))
    pair_radial = np.zeros((S, N))
    for p, s in mix.classes:
        a, da = mix.alpha(r, s)  # (K+1, S, N)
        power = np.broadcast_to(off, cos.shape).copy()  # c^0 off the diagonal
        # k = 0: only the radial derivative of α_0
        pair_radial += p * da[0] * np.einsum("sij,sj->si", power, a[0])
        for k in range(1, mix.degree + 1):
            # power = c^{k-1}; ⊙c → c^k
            ck = power * cos
            applied = np.einsum("sij,sj->si", ck, a[k])
            pair_radial += p * (da[k] - k * a[k] / r) * applied
            tangent += p * k * (a[k] / r)[..., None] * power * a[k][:, None, :]
            power = ck
    radial = radial + pair_radial / N
    return radial[..., None] * unit + (tangent @ unit) / N


def mixture_network_flow(problem: Any, widths: Sequence[int], seeds: Sequence[int], times: Any, *,
                         dt: float = 2e-2, min_substeps: int = 4, nodes: int = 256,
                         schedule: Schedule | None = None,
                         progress: Callable[[str], None] | None = None) -> MixtureNetworkRuns:
    """RK4 population gradient flow (sub-steps of :func:`substeps`) of N-neuron networks for N in ``widths``, one batch
    of ``len(seeds)`` networks per N (initial weights iid ν_0 = N(0, κ²/d I_d), seeded by (seed, N)), with
    the reduced radial flow of ν_0 (``nodes`` Gauss–Legendre points in F(r)) and the twins' radii."""
    mix = _mixture_of(problem)
    times = _check_times(times)
    dt = _check_positive("chaos.dt", dt)
    schedule = schedule or _constant_schedule
    widths = [_check_int("chaos.widths", m, 2) for m in widths]
    seeds = [_check_int("chaos.seeds", s, 0) for s in seeds]
    if not widths or not seeds:
        raise ValueError(f"chaos.widths = {widths!r} and chaos.seeds = {seeds!r} must be non-empty")
    d = mix.dimension
    r_nodes, masses = mix.radius_rule(_check_int("chaos.nodes", nodes, 2))

    def psi(r: np.ndarray, nodes_r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ψ, ψ') of ν_t at radii r (flattened), ν_t = Σ masses δ_{nodes_r}."""
        kern = problem.interaction_low_rank(np.concatenate([nodes_r, r]))
        grads = problem.interaction_features_gradient(np.concatenate([nodes_r, r]))
        moments = kern.features[:, : nodes_r.size] @ masses
        cm = kern.weights * moments
        return (problem.reduced_potential(r) + cm @ kern.features[:, nodes_r.size:],
                problem.reduced_potential_gradient(r) + cm @ grads[:, nodes_r.size:])

    steps = substeps(times, dt, _check_int("chaos.min_substeps", min_substeps, 1))
    shape = (len(widths), len(seeds), times.size)
    risk, control, gap_sq, c_mean, c_rms = (np.empty(shape) for _ in range(5))
    c_q = np.empty(shape + (len(QUANTILES),))
    c_pooled = np.empty((len(widths), times.size, len(QUANTILES)))
    mf_risk = np.empty(times.size)
    for iw, N in enumerate(widths):
        w0 = np.stack([problem.initial_law().sample_weights(N, d, np.random.default_rng([int(s), int(N)]))
                       for s in seeds])
        twins0 = np.linalg.norm(w0, axis=-1).ravel()
        rays = w0 / twins0.reshape(len(seeds), N)[..., None]  # w_i(0)/|w_i(0)|: the twins' directions

        def rhs(t: float, y: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
            xi = schedule(t)
            both = np.concatenate([y[1], y[2]])
            _, slope = psi(both, y[1])
            return (-2.0 * xi * _network_gradient(mix, y[0]), -2.0 * xi * slope[: r_nodes.size],
                    -2.0 * xi * slope[r_nodes.size:])

        for k, (w_t, nodes_t, twins) in march((w0, r_nodes.copy(), twins0), times, steps, rhs):
            values, _ = psi(np.concatenate([nodes_t, twins]), nodes_t)
            psi_nodes, psi_twins = values[: nodes_t.size], values[nodes_t.size:].reshape(len(seeds), N)
            kern = problem.interaction_low_rank(nodes_t)
            interaction_nu = kern.weights @ (kern.features @ masses) ** 2
            mf_risk[k] = problem.target_second_moment + 2 * masses @ problem.reduced_potential(nodes_t) + interaction_nu
            control[iw, :, k] = 2 * (psi_twins.mean(axis=1) - masses @ psi_nodes)
            radii = np.linalg.norm(w_t, axis=-1)
            potential = problem.reduced_potential(radii).mean(axis=1)
            cross = psi(radii.ravel(), nodes_t)[0].reshape(radii.shape).mean(axis=1) - potential
            for js in range(len(seeds)):
                risk[iw, js, k] = problem.network_risk(w_t[js])[0]
            output_second = risk[iw, :, k] - problem.target_second_moment - 2 * potential
            gap_sq[iw, :, k] = output_second - 2 * cross + interaction_nu
            dist = np.linalg.norm(w_t - twins.reshape(len(seeds), N)[..., None] * rays, axis=-1)
            c_mean[iw, :, k] = dist.mean(axis=1)
            c_rms[iw, :, k] = np.sqrt((dist ** 2).mean(axis=1))
            c_q[iw, :, k] = np.quantile(dist, QUANTILES, axis=1).T
            c_pooled[iw, k] = np.quantile(dist, QUANTILES)
        if progress is not None:
            progress(f"N = {N}: done")
    config = {"widths": widths, "seeds": seeds, "dt": dt, "min_substeps": min_substeps, "nodes": nodes, "series_degree": mix.degree,
              "dimension": d}
    return MixtureNetworkRuns(times, np.array(widths), np.array(seeds), risk, mf_risk, control, gap_sq, c_mean, c_rms,
                              c_q, QUANTILES, config, c_pooled)


# --------------------------------------------------------------------------------------------
# The hook: ``reduced-pde chaos`` for the mixture (IsotropicMixtureRadialProblem.finite_width)
# --------------------------------------------------------------------------------------------


class MixtureFiniteWidth(FiniteWidth):
    """The mixture's finite-width runs: :func:`mixture_network_flow` (the N-neuron population gradient
    flows, seeds batched, with the twins' coupling gaps) and :func:`predict_mixture_fluctuations`;
    ``[chaos]`` adds the prediction's rule sizes ``r_nodes``, ``c_nodes`` and the sub-step floor
    ``min_substeps`` (of the flow and the prediction alike)."""

    chaos_keys = COMMON_CHAOS_KEYS | {"r_nodes", "c_nodes", "min_substeps"}

    def __init__(self, problem: Any) -> None:
        self.problem = problem
        self.mix = _Mixture(problem)  # finite d >= 4, the problem's series degree

    def check(self, chaos: Mapping[str, Any]) -> None:
        small = [m for m in chaos["widths"] if m < 2]
        if small:
            raise ValueError(f"chaos.widths = {chaos['widths']!r} must be integers >= 2 for the mixture (the pair "
                             "kernel needs two neurons)")

    def coupled_runs(self, times: np.ndarray, chaos: Mapping[str, Any], schedule: Schedule | None = None,
                     progress: Callable[[str], None] | None = None) -> CoupledRuns:
        return mixture_network_flow(self.problem, chaos["widths"], chaos["seeds"], times, dt=chaos["dt"],
                                    min_substeps=chaos["min_substeps"], nodes=chaos["nodes"], schedule=schedule,
                                    progress=progress).as_coupled_runs()

    def predict(self, times: np.ndarray, chaos: Mapping[str, Any],
                schedule: Schedule | None = None) -> FluctuationPrediction:
        return predict_mixture_fluctuations(self.problem, times, atoms=chaos["atoms"], r_nodes=chaos["r_nodes"],
                                            c_nodes=chaos["c_nodes"], dt=chaos["dt"],
                                            min_substeps=chaos["min_substeps"], epsilon=chaos["epsilon"],
                                            schedule=schedule)

    def costs(self, chaos: Mapping[str, Any], times: np.ndarray) -> list[Cost]:
        """K = the problem's series degree, Y = 2 classes.  The N-neuron flows: cosines, powers and
        pair blocks ``8 S N²``, RK4 stages of the weights ``12 S N d``, ``α_k, α_k'`` of every neuron
        ``2 Y (K + 1) S N``; the radial nodes and twins: features and gradients ``4 (K + 2)(n + S N)``;
        the prediction: ``B = 2 atoms + 1`` batched laws on ``M = r_nodes c_nodes + 1`` points,
        ``α, α'`` and RK4 stages ``B M (2 Y (K + 1) + 30)``; RK4 steps ``Σ max(min_substeps,
        ⌈Δt/dt⌉)`` over the output intervals, each of 4 stages of ``S Σ N² (2d + 6(K + 1))`` multiply-adds (the two
        Gram products and the K + 1 Mehler terms)."""
        d, K = self.mix.dimension, self.mix.degree
        seeds, n, nodes = len(chaos["seeds"]), max(chaos["widths"]), int(chaos["nodes"])
        field = f"chaos.widths = {chaos['widths']!r} with {seeds} chaos.seeds and data.dimension = {d}"
        items: list[Cost] = [
            ("memory", 8.0 * (8 * seeds * n * n + 12 * seeds * n * d + 4 * (K + 1) * seeds * n), field,
             "N-neuron networks (pair blocks and RK4 stages)"),
            ("memory", 8.0 * 4 * (K + 2) * (nodes + seeds * n), f"chaos.nodes = {nodes}",
             "mean-field nodes, twins and their features")]
        if chaos["predict"]:
            batch, points = 2 * int(chaos["atoms"]) + 1, int(chaos["r_nodes"]) * int(chaos["c_nodes"]) + 1
            items.append(("memory", 8.0 * batch * points * (4 * (K + 1) + 30),
                          f"chaos.atoms = {chaos['atoms']}, chaos.r_nodes = {chaos['r_nodes']}, "
                          f"chaos.c_nodes = {chaos['c_nodes']}", "1/N prediction (batched laws)"))
        steps = float(sum(count for _, count in substeps(times, float(chaos["dt"]), int(chaos["min_substeps"]))))
        items.append(("chaos_steps", steps, f"output.t_final = {float(times[-1])!r} with chaos.dt = {chaos['dt']!r} "
                      f"and chaos.min_substeps = {chaos['min_substeps']}", "RK4 steps"))
        items.append(("chaos_work", steps * seeds * 4 * sum(int(w) ** 2 * (2 * d + 6 * (K + 1)) for w in chaos["widths"]),
                      f"{field}, chaos.dt = {chaos['dt']!r}", "multiply-adds 4 S Σ N² (2d + 6(K + 1)) per step"))
        return items
