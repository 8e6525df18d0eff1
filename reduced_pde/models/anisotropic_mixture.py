"""Anisotropic Gaussian mixture (MMN18's second example), reduced to (r1, r2) = (|P w|, |P⊥ w|).

Data and neurons
----------------
``y = ±1`` with probability ½; ``x | y ~ N(0, Σ_y)``, ``Σ_y = (1 + yΔ)² P + P⊥`` with P the projector on
the first ``s0`` coordinates (the signal subspace), ``s0 = γ d`` (γ = ``data.signal_fraction``; at finite
d, γd must be an integer with ``2 <= s0 <= d − 2``).  Neurons ``σ*(x; w) = σ(⟨w, x⟩)`` (no second
layer), ``w ~ N(0, κ²/d I_d)`` at t = 0.  ``E[y²] = 1``.

The law of (x, y) is invariant under O(s0) × O(d − s0), so Ψ(w; ρ) depends on w only through the
invariants ``r1 = |P w|``, ``r2 = |P⊥ w|`` (coordinates ``("r1", "r2")``, both in [0, ∞)).  Write
``s_y = 1 + yΔ`` and

    n_y(r1, r2)² = s_y² r1² + r2²,     ρ1 = s_y r1 / n_y,   ρ2 = r2 / n_y     (ρ1² + ρ2² = 1).

Given y, ``⟨w, x⟩ ~ N(0, n_y²)``.  With ``α_k(n)`` the normalized Hermite coefficients of σ
(:mod:`reduced_pde.activations`; ``q(n) = α_0(n) = E σ(nG)``):

    v(r1, r2) = −E[y σ(⟨w,x⟩)] = −½ q(n_+) + ½ q(n_−).                                         (V)

Interaction.  Given y, ``(⟨w,x⟩/n_y, ⟨w',x⟩/n'_y)`` is standard bivariate normal with correlation
``γ_y/(n_y n'_y)``, ``γ_y = s_y² ⟨Pw, Pw'⟩ + ⟨P⊥w, P⊥w'⟩ = s_y² r1 r1' c1 + r2 r2' c2``, where c1 (c2)
is the cosine between P w and P w' (P⊥ w and P⊥ w'): for ρ-invariant laws, independent uniform
directions of R^{s0} and R^{d−s0}, with densities ∝ (1 − c²)^{(m−3)/2} (m = s0, d − s0) and moments
``m1_j = E c1^j``, ``m2_j = E c2^j`` (:func:`~reduced_pde.hermite.cosine_moments`; odd ones vanish).
Mehler's formula and the binomial theorem, ``γ_y/(n_y n'_y) = ρ1ρ1' c1 + ρ2ρ2' c2``, give

    u(x, x') = ½ Σ_y Σ_k α_k(n_y) α_k(n'_y) E[(ρ1ρ1'c1 + ρ2ρ2'c2)^k]
             = Σ_y Σ_{k even} Σ_{j even <= k} w_kj g_ykj(x) g_ykj(x'),                          (U)
    w_kj = ½ m1_j m2_{k−j},      g_ykj = sqrt(C(k, j)) α_k(n_y) ρ1^j ρ2^{k−j}

(only terms with j and k − j both even survive the average, hence only even k).  This is the brief's
``½ C(k,j) E[c1^j] E[c2^{k−j}]`` × ``α_k n_y^{−k} s_y^j r1^j r2^{k−j}`` per factor, with the binomial
split symmetrically between the two factors so that ``Σ_j C(k,j) ρ1^{2j} ρ2^{2(k−j)} = 1`` keeps the
features bounded by |α_k|.  Each w_kj >= 0: (U) is a sum of rank-one PSD kernels.  At n_y = 0
(r1 = r2 = 0) ρ is undefined; there ``α_k(0) = 0`` for k >= 1 (E h_k(G) = 0), so we set ρ1 = ρ2 = 0 and
``g_y00 = σ(0)``, all other features 0: the continuous extension (``|g_ykj| <= |α_k(n_y)| → 0``).

d = ∞ (proportional limit s0 = γd → ∞): c1, c2 → 0, only k = 0 survives and
``u = ½ q(n_+) q(n'_+) + ½ q(n_−) q(n'_−)`` (rank 2).

Truncation bound (proof).  Keep even k <= K (K even).  Fix y and let ``X = ρ1² c1 + ρ2² c2``; then
``Σ_j w_kj g_ykj(x)² = ½ α_k(n_y)² E[X^k]``.  Since |X| <= ρ1² + ρ2² = 1, ``X^{k+2} <= X^k`` pointwise
for even k, so ``E[X^k] <= E[X^{K+2}]`` for every dropped (even) k >= K + 2.  Cauchy–Schwarz over the
dropped terms (all with weights >= 0) gives

    |u − u_K|(x, x') <= b(x) b(x'),   b(x)² = ½ Σ_y T_K(n_y) E[X_y^{K+2}],
    T_K(n) = E σ(nG)² − Σ_{k<=K} α_k(n)²,
    E[X^m] = Σ_{j even} C(m, j) ρ1^{2j} ρ2^{2(m−j)} m1_j m2_{m−j}                 (m even, exact)

(:meth:`interaction_truncation_bound`, also ``LowRankKernel.truncation_bound``).  ``E[X^m]`` is convex
in t = ρ1² (X is affine in t, X^m convex), so ``sup_ρ E[X^m] = max(m1_m, m2_m)``.  K is chosen once as
the smallest even K with ``max(m1_{K+2}, m2_{K+2}) · max_n T_K(n) <= tol · max_n E σ(nG)²`` over probe
scales ``n ∈ [0, (1 + Δ) R]``, R the radius bound on |w| = sqrt(r1² + r2²) (default ``max(4, 10κ)``,
re-chosen for twice the radius only if a point beyond it is requested, so the kernel does not change
from call to call); or K = ``reduction.hermite_degree``.  The cap is 400; if the tolerance is not
met there a warning says so and ``relative_truncation_error`` holds the achieved relative bound.
(With small s0 the moments m1 decay only like j^{−(s0−1)/2}, so K grows fast as s0 → 2.)

The reduced flow.  Ψ(w; ρ) = ψ(|Pw|, |P⊥w|), so ``∇_w Ψ = ∂_{r1}ψ Pw/|Pw| + ∂_{r2}ψ P⊥w/|P⊥w|`` and
``dw/dt = −2ξ∇_wΨ`` gives ``dr1/dt = ⟨Pw/|Pw|, dw/dt⟩ = −2ξ ∂_{r1}ψ``, ``dr2/dt = −2ξ ∂_{r2}ψ`` (the two
unit vectors are orthogonal): mobility 1, and the density p(r1, r2) w.r.t. dr1 dr2 follows
``∂_t p = 2ξ ∇·(p ∇ψ)``, ``ψ(x; p) = v(x) + ∫ u(x, x') p(dx')``.  v and every feature are even in r1
and in r2 (they depend on r1², r2² and on ρ1^j ρ2^{k−j} with j, k − j even), so ∂_{r1}ψ = 0 at r1 = 0
and ∂_{r2}ψ = 0 at r2 = 0: the flow keeps the quadrant.  Points with r1 < 0 or r2 < 0 (round-off of
an ODE stage: the particle solver clips only coordinates named "r") are evaluated on the even extension
(|r1|, |r2|), whose gradient is odd; this is the exact potential of the neuron, since only |Pw|, |P⊥w|
enter.  At the origin n_y = 0 the gradients are set to
0, the value of any gradient of a function even in r1 and r2 (exact whenever it is differentiable
there, e.g. MMN18's σ, constant near 0; ReLU's cone ``q(n) = n/√(2π)`` is not differentiable at 0).
Noise: the image of Lebesgue measure on R^d is ``r1^{s0−1} r2^{d−s0−1} dr1 dr2``
(:meth:`log_reference_density`).

Initial law (:class:`AnisotropicInitialLaw`): ``r1 = κ χ_{s0}/√d``, ``r2 = κ χ_{d−s0}/√d`` independent;
at d = ∞ the point mass ``(κ√γ, κ√(1−γ))``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import gammaln

from reduced_pde.activations import ACTIVATION_NAMES, Activation, make_activation
from reduced_pde.dual_kernels import cosine_rule
from reduced_pde.hermite import cosine_moments
from reduced_pde.models import register
from reduced_pde.models.base import (Inputs, Key, Model, NetworkModel, dimension_value, in_interval,
                                     one_of, positive)
from reduced_pde.models.isotropic_mixture import MixtureReduction, TwoClassMixture, sample_gaussian_mixture
from reduced_pde.models.finite_network import mehler_degree, mehler_pair_sum, neuron_cosines
from reduced_pde.models.single_index import SingleIndexInitialLaw, _Marginal, _powers, gaussian_second_moment
from reduced_pde.problem import LowRankKernel, ReducedProblem

__all__ = ["AnisotropicGaussianMixture", "AnisotropicMixtureProblem", "AnisotropicInitialLaw",
           "AnisotropicMixtureNetwork", "AnisotropicMixtureModel", "signal_dimension"]

_MAX_DEGREE = 400
_PROBE_SCALES = 33


def signal_dimension(signal_fraction: float, dimension: float) -> float:
    """``s0 = γ d``: an integer with ``2 <= s0 <= d − 2`` at finite d (ValueError naming both keys), inf at d = ∞."""
    if not (0.0 < signal_fraction < 1.0):
        raise ValueError(f"data.signal_fraction = {signal_fraction!r} must lie in (0, 1)")
    if math.isinf(dimension):
        return math.inf
    product = signal_fraction * dimension
    s0 = round(product)
    if abs(product - s0) > 1e-9 * max(1.0, dimension):
        raise ValueError(f"data.signal_fraction × data.dimension = {signal_fraction!r} × {dimension:g} = "
                         f"{product:g} must be an integer (the signal dimension s0)")
    if not (2 <= s0 <= dimension - 2):
        raise ValueError(f"data.signal_fraction × data.dimension = {signal_fraction!r} × {dimension:g} = {s0} "
                         f"must satisfy 2 <= s0 <= d − 2 = {dimension - 2:g}")
    return float(s0)


@dataclass(frozen=True)
class AnisotropicGaussianMixture(TwoClassMixture):
    """``y = ±1`` (prob. ½), ``x | y ~ N(0, (1 + yΔ)² P + P⊥)``, P on the first ``s0 = γ d`` coordinates;
    ``d = inf`` allowed for reductions."""

    delta: float
    dimension: float
    signal_fraction: float

    #: labels and their probabilities
    labels: tuple[float, float] = (1.0, -1.0)
    label_probabilities: tuple[float, float] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if isinstance(self.delta, bool) or not isinstance(self.delta, (int, float)) or not (0.0 <= self.delta < 1.0):
            raise ValueError(f"data.delta = {self.delta!r} must lie in [0, 1)")
        d = self.dimension
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not (
                math.isinf(d) and d > 0 or (math.isfinite(d) and float(d).is_integer() and d >= 4)):
            raise ValueError(f"data.dimension = {d!r} must be an integer >= 4 or inf")
        if isinstance(self.signal_fraction, bool) or not isinstance(self.signal_fraction, (int, float)):
            raise ValueError(f"data.signal_fraction = {self.signal_fraction!r} must be a number in (0, 1)")
        signal_dimension(float(self.signal_fraction), float(d))

    @property
    def signal_dimension(self) -> float:
        """s0 (inf at d = ∞)."""
        return signal_dimension(float(self.signal_fraction), float(self.dimension))

    def sample(self, n_samples: int, rng: np.random.Generator,
               label_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n_samples`` iid pairs (x (n, d), y (n,)): y = ±1 from ``label_rng`` (default ``rng``, drawn
        first), then x = Σ_y^{1/2} g, g ~ N(0, I_d) from ``rng``."""
        if math.isinf(self.dimension):
            raise ValueError("cannot sample x in dimension d = inf")
        return sample_gaussian_mixture(n_samples, int(self.dimension), self.delta, rng, label_rng,
                                       signal_dimension=int(self.signal_dimension))

    def config(self) -> dict[str, Any]:
        return {"model": "anisotropic_gaussian_mixture", "delta": self.delta, "dimension": self.dimension,
                "signal_fraction": self.signal_fraction}


@dataclass(frozen=True)
class AnisotropicInitialLaw(SingleIndexInitialLaw):
    """Product law of (r1, r2) for ``w ~ N(0, κ²/d I_d)``: ``r1 = κ χ_{s0}/√d``, ``r2 = κ χ_{d−s0}/√d``
    independent; the point mass ``(κ√γ, κ√(1−γ))`` at d = ∞.  Same interface as
    :class:`~reduced_pde.models.single_index.SingleIndexInitialLaw` (``marginals``, ``cell_masses``,
    ``quantile``, ``sample_reduced``, ``sample_network`` → (a = ones, W)), whose methods it inherits;
    ``weight_scale`` is κ."""

    signal_fraction: float = 0.5

    def __post_init__(self) -> None:
        d = self.dimension
        kappa = self.weight_scale
        if not (kappa > 0 and math.isfinite(kappa)):
            raise ValueError(f"initial.kappa = {kappa!r} must be a finite number > 0")
        s0 = signal_dimension(self.signal_fraction, d)
        if math.isinf(d):
            marginals = (_Marginal("r1", None, kappa * math.sqrt(self.signal_fraction)),
                         _Marginal("r2", None, kappa * math.sqrt(1.0 - self.signal_fraction)))
        else:
            scale = kappa / math.sqrt(d)
            marginals = (_Marginal("r1", stats.chi(s0, scale=scale)),
                         _Marginal("r2", stats.chi(d - s0, scale=scale)))
        object.__setattr__(self, "marginals", marginals)

    def config(self) -> dict[str, Any]:
        return {"law": "anisotropic_product_chi", "dimension": self.dimension, "kappa": self.weight_scale,
                "signal_fraction": self.signal_fraction}


def _log_binomial(k: np.ndarray, j: np.ndarray) -> np.ndarray:
    return gammaln(k + 1.0) - gammaln(j + 1.0) - gammaln(k - j + 1.0)


class AnisotropicMixtureProblem(MixtureReduction, ReducedProblem):
    """The (r1, r2) reduction of the anisotropic mixture at finite d or d = ∞ (module docstring)."""

    coordinate_names = ("r1", "r2")
    problem_name = "anisotropic_mixture"

    def __init__(self, data: AnisotropicGaussianMixture, activation: Activation | str | dict,
                 kappa: float = 0.4, hermite_degree: int | None = None,
                 truncation_tolerance: float = 1e-6, radius_bound: float | None = None) -> None:
        self.data = data
        self.activation = make_activation(activation)
        if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not (math.isfinite(kappa) and kappa > 0):
            raise ValueError(f"initial.kappa = {kappa!r} must be a finite number > 0")
        self.kappa = float(kappa)
        if hermite_degree is not None and (isinstance(hermite_degree, bool) or not isinstance(
                hermite_degree, (int, np.integer)) or hermite_degree < 0 or hermite_degree % 2):
            raise ValueError(f"reduction.hermite_degree = {hermite_degree!r} must be an even integer >= 0 "
                             "(odd degrees do not contribute)")
        self.hermite_degree = None if hermite_degree is None else int(hermite_degree)
        if isinstance(truncation_tolerance, bool) or not isinstance(truncation_tolerance, (int, float)) or not (
                math.isfinite(truncation_tolerance) and truncation_tolerance > 0):
            raise ValueError(f"reduction.truncation_tolerance = {truncation_tolerance!r} must be a finite number > 0")
        self.truncation_tolerance = float(truncation_tolerance)
        self.radius_bound = float(radius_bound) if radius_bound is not None else max(4.0, 10.0 * self.kappa)
        if not (self.radius_bound > 0 and math.isfinite(self.radius_bound)):
            raise ValueError(f"reduction.radius_bound = {radius_bound!r} must be a finite number > 0")
        self.signal_dimension = data.signal_dimension
        #: d − s0 (inf at d = ∞)
        self.complement_dimension = (math.inf if math.isinf(data.dimension)
                                     else float(data.dimension) - self.signal_dimension)
        self._degree: int | None = None
        #: achieved relative truncation bound ``max_m · max T_K / max E σ²`` of the automatic degree
        self.relative_truncation_error = 0.0
        self._initial_law = AnisotropicInitialLaw(float(data.dimension), self.coordinate_names,
                                                  weight_scale=self.kappa,
                                                  signal_fraction=float(data.signal_fraction))

    # ------------------------------------------------------------------------------------------
    def _split(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(r1, r2) of points (M, 2); negative values are allowed (the even extension, module docstring)."""
        x = np.asarray(points, dtype=float)
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"points must have shape (M, 2) (coordinates r1, r2), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("points must be finite")
        return x[:, 0], x[:, 1]

    @staticmethod
    def _reflections(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
        """``(sign r1, sign r2)`` (+1 at 0), shape (M, 2): the gradient of the even extension is odd."""
        return np.stack([np.where(r1 < 0, -1.0, 1.0), np.where(r2 < 0, -1.0, 1.0)], axis=1)

    def _classes(self, r1: np.ndarray, r2: np.ndarray):
        """Per class: (probability, label y, s_y, n_y, ρ1, ρ2) with ρ = 0 where n_y = 0."""
        out = []
        r1, r2 = np.abs(r1), np.abs(r2)
        for p, y, s in zip(self.data.label_probabilities, self.data.labels, self.data.class_scales):
            n = np.sqrt((s * r1) ** 2 + r2**2)
            safe = np.where(n > 0, n, 1.0)
            rho1 = np.where(n > 0, s * r1 / safe, 0.0)
            rho2 = np.where(n > 0, r2 / safe, 0.0)
            out.append((p, y, s, n, rho1, rho2))
        return out

    # ---- potential ---------------------------------------------------------------------------
    def reduced_potential(self, points: np.ndarray) -> np.ndarray:
        """(V): ``v = −½ q(n_+) + ½ q(n_−)``."""
        r1, r2 = self._split(points)
        return sum(-p * y * self.activation.gaussian_mean(n) for p, y, _, n, _, _ in self._classes(r1, r2))

    def reduced_potential_gradient(self, points: np.ndarray) -> np.ndarray:
        """``∇v = −Σ_y P(y) y q'(n_y) (s_y ρ1, ρ2)``, shape (M, 2) (0 at the origin)."""
        r1, r2 = self._split(points)
        out = np.zeros((r1.size, 2))
        for p, y, s, n, rho1, rho2 in self._classes(r1, r2):
            dq = -p * y * self.activation.gaussian_mean_derivative(n)
            out[:, 0] += dq * s * rho1
            out[:, 1] += dq * rho2
        return out * self._reflections(r1, r2)

    # ---- interaction -------------------------------------------------------------------------
    def series_degree(self, points: np.ndarray | None = None) -> int:
        """Even truncation degree K of (U) (0 at d = ∞); the radius bound is doubled past the points."""
        if math.isinf(self.dimension):
            return 0
        if self.hermite_degree is not None:
            return self.hermite_degree
        if points is not None and np.size(points):
            radius = float(np.max(np.hypot(points[:, 0], points[:, 1])))
            if radius > self.radius_bound:
                self.radius_bound = 2.0 * radius
                self._degree = None
        if self._degree is None:
            self._degree = self._choose_degree()
        return self._degree

    def _cosine_moments(self, degree: int) -> tuple[np.ndarray, np.ndarray]:
        """``(m1_j, m2_j)``, j = 0..degree, for the blocks of dimension s0 and d − s0."""
        return (cosine_moments(self.signal_dimension, degree),
                cosine_moments(self.complement_dimension, degree))

    def _choose_degree(self) -> int:
        probe = np.linspace(0.0, (1.0 + self.data.delta) * self.radius_bound, _PROBE_SCALES)
        second = gaussian_second_moment(self.activation, probe)
        alpha_sq = self.activation.hermite_coefficients(probe, _MAX_DEGREE) ** 2
        tails = np.maximum(second[None, :] - np.cumsum(alpha_sq, axis=0), 0.0).max(axis=1)  # tails[K]
        m1, m2 = self._cosine_moments(_MAX_DEGREE + 2)
        scale = max(float(second.max()), 1e-300)
        relative = np.maximum(m1[2:], m2[2:]) * tails / scale  # [K] for the bound with moment K + 2
        for degree in range(0, _MAX_DEGREE + 1, 2):
            if relative[degree] <= self.truncation_tolerance:
                self.relative_truncation_error = float(relative[degree])
                return degree
        self.relative_truncation_error = float(relative[_MAX_DEGREE])
        warnings.warn(f"anisotropic mixture: truncation degree capped at {_MAX_DEGREE}; relative bound "
                      f"{self.relative_truncation_error:.2e} > reduction.truncation_tolerance = "
                      f"{self.truncation_tolerance:g} (small signal dimension s0 = {self.signal_dimension:g})",
                      stacklevel=3)
        return _MAX_DEGREE

    def _index_pairs(self, degree: int) -> tuple[np.ndarray, np.ndarray]:
        """(k, j) with k even <= degree and j even <= k, in this order."""
        pairs = [(k, j) for k in range(0, degree + 1, 2) for j in range(0, k + 1, 2)]
        arr = np.array(pairs, dtype=int).reshape(-1, 2)
        return arr[:, 0], arr[:, 1]

    def _weights(self, degree: int) -> np.ndarray:
        """``w_kj = ½ m1_j m2_{k−j}`` per class (class-major order, as the features)."""
        ks, js = self._index_pairs(degree)
        m1, m2 = self._cosine_moments(degree)
        return np.concatenate([p * m1[js] * m2[ks - js] for p in self.data.label_probabilities])

    def _features(self, points: np.ndarray, derivatives: bool
                  ) -> tuple[int, np.ndarray, np.ndarray | None]:
        """Features ``g_ykj`` (R, M) and, if asked, their gradients (R, M, 2) (module docstring)."""
        r1, r2 = self._split(points)
        degree = self.series_degree(np.stack([r1, r2], axis=1))
        ks, js = self._index_pairs(degree)
        kj = ks - js
        root_binom = np.exp(0.5 * _log_binomial(ks.astype(float), js.astype(float)))[:, None]
        values, gradients = [], []
        for _, _, s, n, rho1, rho2 in self._classes(r1, r2):
            alpha = self.activation.hermite_coefficients(n, degree)
            P1 = _powers(rho1, degree + 2)
            P2 = _powers(rho2, degree + 2)
            values.append(root_binom * alpha[ks] * P1[js] * P2[kj])
            if not derivatives:
                continue
            d_alpha = self.activation.hermite_coefficients_derivative(n, degree)
            safe = np.where(n > 0, n, 1.0)
            ratio = np.where(n > 0, alpha / safe, d_alpha)  # α_k(n)/n → α_k'(0) (α_k(0) = 0 for k >= 1)
            cj = js[:, None].astype(float)
            ckj = kj[:, None].astype(float)
            jm1 = np.maximum(js - 1, 0)
            kjm1 = np.maximum(kj - 1, 0)
            # ∂n/∂r1 = s ρ1, ∂n/∂r2 = ρ2, ∂ρ1/∂r1 = s ρ2²/n, ∂ρ1/∂r2 = −ρ1ρ2/n,
            # ∂ρ2/∂r1 = −s ρ1ρ2/n, ∂ρ2/∂r2 = ρ1²/n
            d1 = s * root_binom * (d_alpha[ks] * P1[js + 1] * P2[kj]
                                   + ratio[ks] * (cj * P1[jm1] * P2[kj + 2] - ckj * P1[js + 1] * P2[kj]))
            d2 = root_binom * (d_alpha[ks] * P1[js] * P2[kj + 1]
                               + ratio[ks] * (ckj * P1[js + 2] * P2[kjm1] - cj * P1[js] * P2[kj + 1]))
            gradients.append(np.stack([d1, d2], axis=-1))
        if not derivatives:
            return degree, np.concatenate(values), None
        return degree, np.concatenate(values), np.concatenate(gradients) * self._reflections(r1, r2)[None]

    def interaction_low_rank(self, points: np.ndarray) -> LowRankKernel:
        """(U) truncated at even degree K: weights (R,), features (R, M), and the bound vector b (M,)
        with ``|u − u_K|(x_i, x_j) <= b_i b_j``."""
        degree, features, _ = self._features(points, derivatives=False)
        return LowRankKernel(self._weights(degree), features,
                             truncation_bound=self.interaction_truncation_bound(points))

    def interaction_features_gradient(self, points: np.ndarray) -> np.ndarray:
        """``∇g_ykj`` (R, M, 2) in (r1, r2)."""
        return self._features(points, derivatives=True)[2]

    def interaction_truncation_bound(self, points: np.ndarray) -> np.ndarray:
        """``b(x) = sqrt(½ Σ_y T_K(n_y) E[X_y^{K+2}])`` (module docstring); zero at d = ∞."""
        r1, r2 = self._split(points)
        if math.isinf(self.dimension):
            return np.zeros_like(r1)
        degree = self.series_degree(np.stack([r1, r2], axis=1))
        top = degree + 2
        m1, m2 = self._cosine_moments(top)
        j = np.arange(0, top + 1, 2)
        coefficients = np.exp(_log_binomial(float(top), j.astype(float))) * m1[j] * m2[top - j]
        squared = np.zeros_like(r1)
        for p, _, _, n, rho1, rho2 in self._classes(r1, r2):
            alpha = self.activation.hermite_coefficients(n, degree)
            tail = np.maximum(gaussian_second_moment(self.activation, n) - np.sum(alpha**2, axis=0), 0.0)
            moment = coefficients @ (_powers(rho1**2, top)[j] * _powers(rho2**2, top)[top - j])
            squared += p * tail * moment
        return np.sqrt(squared)

    def potential_gradient(self, points: np.ndarray, masses: np.ndarray) -> np.ndarray:
        """``∇ψ(x_i; p) = ∇v(x_i) + Σ_f w_f (Σ_l g_f(x_l) m_l) ∇g_f(x_i)``, shape (M, 2)."""
        degree, features, gradients = self._features(points, derivatives=True)
        moments = self._weights(degree) * (features @ np.asarray(masses, dtype=float))
        return self.reduced_potential_gradient(points) + np.einsum("f,fmd->md", moments, gradients)

    def interaction_kernel(self, points: np.ndarray, other: np.ndarray,
                           cosine_nodes: tuple[int, int] = (16, 12)) -> np.ndarray:
        """``u(x_i, x'_j) = ½ Σ_y E_{c1,c2} E[σ(n_y X) σ(n'_y Y)]``, correlation ``ρ1ρ1'c1 + ρ2ρ2'c2``, by a
        tensor Gauss–Jacobi rule over (c1, c2) of ``activation.bivariate_expectation`` (independent of the
        Hermite series; slow — a reference and a dense fall-back for small problems).  ``cosine_nodes``:
        the rule's sizes for (c1, c2); Gauss–Jacobi is exact for polynomials of degree 2·nodes − 1 in c,
        and the integrand is analytic in c except at the corners |c1| = |c2| = 1."""
        a1, a2 = self._split(points)
        b1, b2 = self._split(other)
        c1, w1 = cosine_rule(self.signal_dimension, int(cosine_nodes[0]))
        c2, w2 = cosine_rule(self.complement_dimension, int(cosine_nodes[1]))
        C1, C2 = np.meshgrid(c1, c2, indexing="ij")
        W = np.outer(w1, w2).ravel()
        C1, C2 = C1.ravel(), C2.ravel()
        out = np.zeros((a1.size, b1.size))
        for (p, _, _, n, p1, p2), (_, _, _, m, q1, q2) in zip(self._classes(a1, a2), self._classes(b1, b2)):
            for i in range(a1.size):
                for k in range(b1.size):
                    corr = np.clip(p1[i] * q1[k] * C1 + p2[i] * q2[k] * C2, -1.0, 1.0)
                    out[i, k] += p * sum(wq * self.activation.bivariate_expectation(float(n[i]), float(m[k]), float(g))
                                         for g, wq in zip(corr, W))
        return out

    # ---- geometry ------------------------------------------------------------------------------
    def domain(self) -> tuple[tuple[float, float], ...]:
        """r1 = |Pw| ∈ [0, ∞), r2 = |P⊥w| ∈ [0, ∞)."""
        return ((0.0, math.inf), (0.0, math.inf))

    def log_reference_density(self, points: np.ndarray) -> np.ndarray:
        """``log J = (s0 − 1) log r1 + (d − s0 − 1) log r2``, the image of Lebesgue measure on R^d
        (finite d, r1, r2 > 0)."""
        if math.isinf(self.dimension):
            raise ValueError("noise.beta < inf with data.dimension = inf is refused: the radial entropy terms "
                             "(s0−1)/(β r1), (d−s0−1)/(β r2) diverge as d → ∞ at fixed β (use a finite "
                             "dimension, or beta = \"inf\")")
        r1, r2 = self._split(points)
        if np.any(r1 <= 0) or np.any(r2 <= 0):
            raise ValueError("log J needs r1 > 0 and r2 > 0 (cell centres of a grid on [0, r_max]²)")
        s0 = self.signal_dimension
        return (s0 - 1.0) * np.log(r1) + (self.dimension - s0 - 1.0) * np.log(r2)

    def initial_law(self) -> AnisotropicInitialLaw:  # type: ignore[override]
        return self._initial_law


# ---- the full-dimensional network ----------------------------------------------------------------
class AnisotropicMixtureNetwork(NetworkModel):
    """Data, neurons ``σ(⟨w, x⟩)`` (a ≡ 1, not trained) and invariants ``(|Pw|, |P⊥w|)`` at finite d."""

    trains_second_layer = False
    on_sphere = False
    records_network_risk = False  # O(N² K) per output with K up to 400 for nearly aligned pairs: on request

    def __init__(self, data: AnisotropicGaussianMixture, activation: Activation | str | dict,
                 kappa: float = 0.4) -> None:
        if math.isinf(data.dimension):
            raise ValueError("data.dimension = inf: a network needs a finite dimension")
        self.data = data
        self.dimension = int(data.dimension)
        self.signal_dimension = int(data.signal_dimension)
        self.activation = make_activation(activation)
        self.initial = AnisotropicInitialLaw(float(data.dimension), AnisotropicMixtureProblem.coordinate_names,
                                             weight_scale=float(kappa), signal_fraction=float(data.signal_fraction))

    def sample(self, n_samples: int, rng: np.random.Generator,
               label_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.data.sample(n_samples, rng, label_rng)

    def initial_neurons(self, n_neurons: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(a = ones(N), w (N, d))``, rows of w iid N(0, κ²/d I_d)."""
        return self.initial.sample_network(n_neurons, rng)

    def invariants(self, a: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``(|w[:, :s0]|, |w[:, s0:]|)``, shape (N, 2)."""
        w = np.atleast_2d(np.asarray(w, dtype=float))
        s0 = self.signal_dimension
        return np.stack([np.linalg.norm(w[:, :s0], axis=1), np.linalg.norm(w[:, s0:], axis=1)], axis=1)

    def network_risk_and_bound(self, a: np.ndarray, w: np.ndarray, tolerance: float = 1e-12
                               ) -> tuple[float, float]:
        """Exact ``E[(y − (1/N) Σ_i σ(⟨w_i, x⟩))²]`` and a bound on its truncation error.

        ``R_N = 1 + (2/N) Σ_i v(θ_i) + (1/N²) Σ_y ½ [Σ_{i≠j} Σ_k α_k(n_iy) α_k(n_jy) c_ijy^k + Σ_i E σ(n_iy G)²]``
        with ``n_iy = |D_y w_i|``, ``D_y = s_y P + P⊥``, and the exact overlaps
        ``c_ijy = ⟨D_y w_i, D_y w_j⟩/(n_iy n_jy) = γ_ijy/(n_iy n_jy)``.  v is exact (no series); the pair
        series is summed to the degree K with ``max |c_ijy|^{K+1} <= tolerance`` (capped at 400; error
        ``<= |c_ijy|^{K+1} sqrt(T_iy T_jy)``, ``T = E σ² − Σ_{k<=K} α_k²``, by Cauchy–Schwarz on the tail)."""
        w = np.atleast_2d(np.asarray(w, dtype=float))
        if w.shape[1] != self.dimension:
            raise ValueError(f"w has shape {w.shape}, expected (N, {self.dimension})")
        n_neurons = w.shape[0]
        s0 = self.signal_dimension
        risk_pairs = 0.0
        bound = 0.0
        potential = 0.0
        for p, y, s in zip(self.data.label_probabilities, self.data.labels, self.data.class_scales):
            scaled = w.copy()
            scaled[:, :s0] *= s
            norms, cosines = neuron_cosines(scaled)
            degree = mehler_degree(cosines, tolerance)
            alpha = self.activation.hermite_coefficients(norms, degree)  # (K+1, N)
            second = gaussian_second_moment(self.activation, norms)
            total = mehler_pair_sum(alpha, cosines, degree)
            risk_pairs += p * (total.sum() + second.sum())
            tail = np.sqrt(np.maximum(second - np.sum(alpha**2, axis=0), 0.0))
            bound += p * float(tail @ (np.abs(cosines) ** (degree + 1)) @ tail)
            potential += -p * y * float(alpha[0].sum())
        risk = self.data.target_second_moment + 2.0 * potential / n_neurons + risk_pairs / n_neurons**2
        return float(risk), bound / n_neurons**2

    def network_risk(self, a: np.ndarray, w: np.ndarray) -> tuple[float, float]:
        """Exact population risk of the finite network and its truncation bound
        (:meth:`network_risk_and_bound`)."""
        return self.network_risk_and_bound(a, w)


# ---- the model plug-in -----------------------------------------------------------------------------
def _optional_number(field: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field} = {value!r} must be a finite number (or absent)")
    return float(value)


def _optional_numbers(field: str, value: Any) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise ValueError(f"{field} = {value!r} must be a list of finite numbers (or absent)")
    return [float(v) for v in value]


def _hermite_degree(field: str, value: Any) -> int | None:
    if value is None or value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value % 2 or value > _MAX_DEGREE:
        raise ValueError(f"{field} = {value!r} must be \"auto\" or an even integer in [0, {_MAX_DEGREE}] (the "
                         "degree the c-moments are computed to)")
    return int(value)


def _signal_fraction(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 < value < 1.0):
        raise ValueError(f"{field} = {value!r} must lie in (0, 1)")
    return float(value)


def _activation_spec(table: Any) -> dict[str, Any]:
    """``{"name": ..., parameters given}`` for :func:`~reduced_pde.activations.make_activation`."""
    return {key: value for key, value in table.items() if value is not None}


@register
class AnisotropicMixtureModel(Model):
    """MMN18's anisotropic Gaussian mixture with the (r1, r2) = (|Pw|, |P⊥w|) reduction."""

    name = "anisotropic_gaussian_mixture"
    summary = "y = ±1, x | y ~ N(0, (1+yΔ)² P + P⊥), s0 = γd signal coordinates; σ(⟨w,x⟩); coordinates (r1, r2)"
    schema = {
        "data": {
            "delta": Key(0.5, in_interval(0.0, 1.0), "Δ in [0, 1): std 1 ± Δ of the signal coordinates"),
            "dimension": Key(320, dimension_value(4), "d (integer >= 4) or \"inf\""),
            "signal_fraction": Key(0.25, _signal_fraction, "γ in (0, 1): s0 = γd signal coordinates (an integer)"),
        },
        "activation": {
            "name": Key("mmn18", one_of(*ACTIVATION_NAMES), "σ: " + ", ".join(ACTIVATION_NAMES)),
            **{key: Key(None, _optional_number, f"mmn18 parameter {key}") for key in ("t1", "t2", "s1", "s2")},
            "intercept": Key(None, _optional_number, "piecewise_linear: σ(t) = intercept + slope t + Σ jumps (t − knots)_+"),
            "slope": Key(None, _optional_number, "piecewise_linear: slope"),
            "knots": Key(None, _optional_numbers, "piecewise_linear: knots (list)"),
            "jumps": Key(None, _optional_numbers, "piecewise_linear: slope jumps at the knots (list)"),
        },
        "initial": {"kappa": Key(0.4, positive, "κ: w ~ N(0, κ²/d I_d)")},
        "reduction": {
            "hermite_degree": Key(None, _hermite_degree, "even truncation degree K of u, or \"auto\" (from the tolerance)"),
            "truncation_tolerance": Key(1e-6, positive, "bound on |u − u_K| relative to max E σ²"),
        },
    }

    def _data(self, inputs: Inputs, dimension: float) -> AnisotropicGaussianMixture:
        data = inputs["data"]
        return AnisotropicGaussianMixture(float(data["delta"]), float(dimension), float(data["signal_fraction"]))

    def build_problem(self, inputs: Inputs) -> AnisotropicMixtureProblem:
        reduction = inputs["reduction"]
        return AnisotropicMixtureProblem(self._data(inputs, inputs["data"]["dimension"]),
                                         _activation_spec(inputs["activation"]),
                                         kappa=float(inputs["initial"]["kappa"]),
                                         hermite_degree=reduction["hermite_degree"],
                                         truncation_tolerance=float(reduction["truncation_tolerance"]))

    def network(self, inputs: Inputs, dimension: int) -> AnisotropicMixtureNetwork:
        return AnisotropicMixtureNetwork(self._data(inputs, dimension), _activation_spec(inputs["activation"]),
                                         kappa=float(inputs["initial"]["kappa"]))

    def default_grid(self, problem: ReducedProblem, inputs: Inputs, cells: int) -> dict[str, dict[str, Any]]:
        """Axes r1, r2 ∈ [0, upper] with ``cells`` cells each, ``upper = max(4, 1.25 Q(1 − 1e-13))`` per
        coordinate, Q the quantile of its initial marginal (so no initial mass is cut off).  The 4 is the
        isotropic model's default ``r_max`` for r = |w|; measured with MMN18's σ, Δ = 0.5, γ = 0.25, the
        particle solution stays inside it: at d = ∞ the point mass moves from (κ√γ, κ√(1−γ)) to
        (1.70, 0.35) for κ ∈ {0.1, 0.4, 1}; at d = 40 the extreme particles (16 Gauss nodes) reach
        (2.5, 1.3) at t = 100 for κ ∈ {0.4, 1}.  Mass reaching the outer edge stops there (zero flux):
        give a ``[grid]`` table for other regimes."""
        law = problem.initial_law()
        names = problem.coordinate_names
        top = np.asarray(law.quantile(np.full((1, len(names)), 1.0 - 1e-13)), dtype=float)[0]
        return {name: {"lower": 0.0, "upper": float(max(4.0, 1.25 * q)), "cells": int(cells)}
                for name, q in zip(names, top)}

    def describe(self, inputs: Inputs) -> str:
        data = inputs["data"]
        d = float(data["dimension"])
        return (f"anisotropic mixture, d = {'inf' if math.isinf(d) else int(d)}, γ = {data['signal_fraction']}, "
                f"Δ = {data['delta']}")
