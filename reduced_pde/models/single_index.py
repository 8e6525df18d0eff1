"""Single-index reduction to the invariants (a, s, r) (design note §3b, §3c, §4).

Data and network
----------------
``x ~ N(0, I_d)``, ``y = φ(z) + ε``, ``z = ⟨θ*, x⟩``, ``|θ*| = 1`` (:mod:`reduced_pde.targets`);
neurons ``σ*(x; θ) = a σ(⟨w, x⟩)``, θ = (a, w).  Invariants under rotations fixing θ*:

    s = ⟨w, θ*⟩,   r = |w − s θ*| >= 0,   n = |w| = sqrt(s² + r²),   ρ = s/n,  ϱ = r/n,

and ``⟨w, x⟩ = s z + r g`` with z, g iid N(0, 1).  ``α_k(n) = E[σ(nG) h_k(G)]`` are the normalized
Hermite coefficients of σ (:mod:`reduced_pde.activations`), ``φ̂_k = E[φ(z) h_k(z)]`` those of φ.

Potential (Mehler: ``⟨w,x⟩/n`` and z are standard normals with correlation ρ)::

    v(a, s, r) = −E[y a σ(⟨w,x⟩)] = −a Σ_k φ̂_k α_k(n) ρ^k.                                   (V)

Interaction.  For two neurons ``⟨w, w'⟩ = s s' + r r' c`` with c the cosine between the orthogonal
parts, uniform directions of the (d − 1)-dimensional complement of θ*: density ∝
``(1 − c²)^{(d−4)/2}`` on [−1, 1], ``E[c^j] = m_j`` = ``cosine_moments(d − 1, ·)`` (odd moments 0,
m_2 = 1/(d−1); at d = 2, c = ±1; at d = ∞, c = 0).  With ``γ = ⟨w,w'⟩/(n n') = ρρ' + ϱϱ'c``,
``U = a a' Σ_k α_k(n) α_k(n') γ^k`` and, expanding ``γ^k`` binomially and averaging over c,

    u(x, x') = Σ_{k>=0} Σ_{j even <= k} m_j g_kj(x) g_kj(x'),
    g_kj(a, s, r) = a α_k(n) sqrt(C(k, j)) ρ^{k−j} ϱ^j.                                       (U)

For each k the j-sum is *exact* (finite).  The weights ``m_j`` are >= 0, so (U) is a sum of
rank-one PSD kernels, and the features are well scaled: ``Σ_j g_kj² <= a² α_k²``
(``Σ_j C(k,j) ρ^{2(k−j)} ϱ^{2j} = 1``).  At d = ∞ only j = 0 survives (rank K + 1); at finite d we
keep ``k <= K`` and ``j <= J`` (rank ``Σ_{k<=K} (⌊min(k,J)/2⌋ + 1)``, ~K²/4 when J = K), leaving
out degrees whose α_k vanishes identically on the probe scales (odd k >= 3 for ReLU: α_k(n) = n α_k(1);
their α_k² is added to the bound below, so it stays rigorous).

Truncation bound (proof)
------------------------
Let D be the set of dropped indices (k, j): all k > K, and k <= K with j > J.  Because every
dropped term is ``m_j g_kj(x) g_kj(x')`` with ``m_j >= 0``, Cauchy–Schwarz over D gives

    |u − u_{K,J}|(x, x') <= b(x) b(x'),     b(x)² = Σ_D m_j g_kj(x)²  (the dropped diagonal).

For the k > K part, ``Σ_{j} m_j g_kj(x)² = a² α_k² E_c[(ρ² + ϱ² c)^k] <= a² α_k² P_k(x)`` with
``P_k = E_c[(ρ² + ϱ²|c|)^k]``, which is non-increasing in k because ``0 <= ρ² + ϱ²|c| <= 1``; hence

    b(x)² <= a² [ T_K(n) P_{K+1}(ρ, ϱ) + Σ_{k<=K} α_k(n)² Σ_{j even, J<j<=k} C(k,j) m_j ρ^{2(k−j)} ϱ^{2j} ],

``T_K(n) = Σ_{k>K} α_k(n)² = E σ(nG)² − Σ_{k<=K} α_k(n)²``,
``P_{K+1} = Σ_i C(K+1, i) ρ^{2(K+1−i)} ϱ^{2i} E|c|^i``, ``E|c|^i = Γ((i+1)/2) Γ(m/2) / (√π Γ((m+i)/2))``,
m = d − 1 (P = ρ^{2(K+1)} at d = ∞).  This is :meth:`interaction_truncation_bound` (also stored in
``LowRankKernel.truncation_bound``).  K is chosen as the smallest degree with
``sup_{n <= n_max} T_K(n) <= (tol/2) S`` (S = ``sup_{n <= n_max} E σ(nG)²``; the sup over ρ of
P is 1, at ρ = ±1: aligned neurons have |γ| = 1 whatever d, so K cannot depend on d), and J as the
smallest even J with the second term ``<= (tol/2) S`` on a probe grid of (n, ρ).  Both are capped
(``max_degree``); if the cap is hit, the achieved relative bound is ``self.relative_truncation_error``
and a warning is issued.  For polynomial σ of degree p the series terminates: K = J = p, bound 0.
Likewise (V) is truncated at degree P_V with
``|v − v_P| <= |a| |ρ|^{P+1} sqrt(T^φ_P T_P(n))`` (:meth:`potential_truncation_bound`), P_V chosen
so that ``sup_n sqrt(T^φ_P T_P(n)) <= tol sqrt(E φ² S)``; exact for polynomial φ or σ.

Conventions for solvers (generalisation of :class:`~reduced_pde.problem.ReducedProblem`)
----------------------------------------------------------------------------------------
Coordinates, in this order: ``("a", "s", "r")`` (ball, trained second layer), ``("s", "r")`` (ball,
a fixed to ``second_layer``), ``("a", "s")`` (sphere |w| = 1), ``("s",)`` (sphere, a fixed).
``points`` have shape (M, dim) (a 1-D array is accepted when dim = 1); ``reduced_potential`` returns
(M,), ``reduced_potential_gradient`` (M, dim), ``interaction_low_rank`` a :class:`LowRankKernel` with
weights (R,) and features (R, M), ``interaction_features_gradient`` (R, M, dim).

The reduced density p (w.r.t. Lebesgue measure da ds dr) evolves without Jacobian factors:
``ds/dt = −2ξ ∂_s ψ`` and ``dr/dt = −2ξ ∂_r ψ`` because ``∇_w Ψ = ∂_s ψ θ* + ∂_r ψ e_⊥``, and
``da/dt = −2ξ ∂_a ψ``; so ``∂_t p = 2ξ ∇·(p ∇ψ)`` in (a, s, r) (times a per-layer rate on a if
desired).  r = 0 is reached only with zero flux (∂_r ψ has the sign that keeps r >= 0 for a
gradient flow started at r > 0 — the solver must impose zero flux there).  At n = 0 the
coordinates are evaluated in the limit s = 0, r → 0+ (ρ = 0, ϱ = 1, ``α_k(n)/n → α_k'(0)``).
On the sphere (n = 1, ``r = sqrt(1 − s²)``) the s-gradient is the derivative of the restriction,
``d/ds v(s, sqrt(1−s²))``, and the projected gradient flow moves s with velocity
``−2ξ (1 − s²) ∂_s ψ`` (a moves with ``−2ξ ∂_a ψ``); all features are polynomials in s there.

Initial law: :class:`SingleIndexInitialLaw` — a product law (a, s, r independent) with exact cell
masses on tensor grids; samples of full-dimensional (a, W) for SGD.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.polynomial import hermite_e
from scipy import stats
from scipy.special import gammaln

from reduced_pde.activations import Activation, PiecewiseLinearActivation, PolynomialActivation, make_activation
from reduced_pde.dual_kernels import cosine_rule
from reduced_pde.hermite import cosine_moments, finite_coefficients, gauss_hermite_rule, normalized_hermite
from reduced_pde.hermite_structure import ActivationSpectrum, HermiteStructure, TargetSpectrum
from reduced_pde.models.finite_network import IndexNetwork, index_network_risk
from reduced_pde.problem import LowRankKernel, ReducedProblem
from reduced_pde.targets import SingleIndexTarget, make_target

__all__ = ["SingleIndexProblem", "SingleIndexInitialLaw", "SingleIndexNetwork",
           "SeriesTruncation", "ball_geometry", "check_network_parameters",
           "absolute_cosine_moments", "gaussian_second_moment"]

_DEFAULT_MAX_DEGREE = 96
_PROBE_DEGREE = 400


def gaussian_second_moment(activation: Activation, scale: np.ndarray) -> np.ndarray:
    """``E[σ(nG)²]``: closed form for piecewise-linear and polynomial σ, else a 1-D Gauss–Hermite
    rule of order 400 (spectrally accurate for smooth σ; the generic ``Activation.second_moment``
    integrates in 2-D and is slow on many points)."""
    scale = np.asarray(scale, dtype=float)
    if isinstance(activation, (PiecewiseLinearActivation, PolynomialActivation)):
        return np.asarray(activation.second_moment(scale), dtype=float)
    nodes, weights = gauss_hermite_rule(400)
    return activation(np.multiply.outer(scale, nodes)) ** 2 @ weights


def absolute_cosine_moments(dimension: float, degree: int) -> np.ndarray:
    """``E|c|^i``, i = 0..degree, for the cosine c between two uniform directions of R^dimension:
    ``Γ((i+1)/2) Γ(m/2) / (√π Γ((m+i)/2))`` (m = dimension; all ones at m = 1; δ_{i0} at m = ∞)."""
    i = np.arange(degree + 1, dtype=float)
    if math.isinf(dimension):
        return (i == 0).astype(float)
    m = float(dimension)
    return np.exp(gammaln((i + 1) / 2) + gammaln(m / 2) - 0.5 * math.log(math.pi) - gammaln((m + i) / 2))


def _powers(x: np.ndarray, top: int) -> np.ndarray:
    """``x^p`` for p = 0..top, shape (top + 1,) + x.shape (0^0 = 1)."""
    out = np.empty((top + 1,) + x.shape)
    out[0] = 1.0
    for p in range(1, top + 1):
        out[p] = out[p - 1] * x
    return out


def ball_geometry(s: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n, ρ, ϱ) = (hypot(s, r), s/n, r/n)`` with the n = 0 convention ρ = 0, ϱ = 1."""
    n = np.hypot(s, r)
    safe = np.where(n > 0, n, 1.0)
    return n, np.where(n > 0, s / safe, 0.0), np.where(n > 0, r / safe, 1.0)


def _log_binomial(k: np.ndarray, j: np.ndarray) -> np.ndarray:
    return gammaln(k + 1.0) - gammaln(j + 1.0) - gammaln(k - j + 1.0)


# --------------------------------------------------------------------------------------------
# Initial law
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Marginal:
    """A 1-D law: a frozen scipy distribution, or a point mass at ``location``."""

    name: str
    distribution: Any = None
    location: float = 0.0

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """``P(X < x)`` (left limits, so that cells are ``[e_i, e_{i+1})`` also for point masses)."""
        x = np.asarray(x, dtype=float)
        if self.distribution is None:
            return (x > self.location).astype(float)
        return self.distribution.cdf(x)

    def quantile(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        if self.distribution is None:
            return np.full_like(u, self.location)
        return self.distribution.ppf(u)


@dataclass(frozen=True)
class SingleIndexInitialLaw:
    """Product law of the invariants at t = 0.

    * ``a ~ N(a0, σ_a²)`` (point mass at a0 if σ_a = 0); absent when the second layer is fixed.
    * ball: ``w = s₀θ* + g``, ``g ~ N(0, κ²/d I_d)`` → ``s ~ N(s₀, κ²/d)`` and, independently,
      ``r = κ sqrt(χ²_{d−1}/d)``; at d = ∞ the point mass (s, r) = (s₀, κ).  ``s₀`` is the
      ``initial_alignment`` (default 0: the uninformed initialisation).
    * sphere: w uniform on S^{d−1} → ``(1 + s)/2 ~ Beta((d−1)/2, (d−1)/2)`` (density
      ∝ (1 − s²)^{(d−3)/2}); at d = ∞ the point mass s = 0.
    """

    dimension: float
    coordinate_names: tuple[str, ...]
    weight_scale: float = 1.0
    second_layer: float = 1.0
    second_layer_std: float = 0.0
    sphere: bool = False
    initial_alignment: float = 0.0
    marginals: tuple[_Marginal, ...] = field(init=False)

    def __post_init__(self) -> None:
        d = self.dimension
        finite = not math.isinf(d)
        out = []
        for name in self.coordinate_names:
            if name == "a":
                out.append(_Marginal("a", stats.norm(self.second_layer, self.second_layer_std))
                           if self.second_layer_std > 0 else _Marginal("a", None, self.second_layer))
            elif name == "s" and self.sphere:
                half = (d - 1.0) / 2.0
                out.append(_Marginal("s", stats.beta(half, half, loc=-1.0, scale=2.0)) if finite
                           else _Marginal("s", None, 0.0))
            elif name == "s":
                s0 = self.initial_alignment
                out.append(_Marginal("s", stats.norm(s0, self.weight_scale / math.sqrt(d))) if finite
                           else _Marginal("s", None, s0))
            elif name == "r":
                out.append(_Marginal("r", stats.chi(d - 1.0, scale=self.weight_scale / math.sqrt(d)))
                           if finite else _Marginal("r", None, self.weight_scale))
        object.__setattr__(self, "marginals", tuple(out))

    def cell_masses(self, edges: list[np.ndarray] | tuple[np.ndarray, ...]) -> np.ndarray:
        """Exact masses of the cells of a tensor grid, shape ``(len(e)-1 for e in edges)``; mass
        outside the grid beyond 1e-12 is an error naming the coordinate."""
        if len(edges) != len(self.marginals):
            raise ValueError(f"initial law: {len(edges)} edge arrays for coordinates {self.coordinate_names}")
        masses = np.ones(())
        for marginal, e in zip(self.marginals, edges):
            e = np.asarray(e, dtype=float)
            cdf = marginal.cdf(e)
            outside = 1.0 - cdf[-1] + cdf[0]
            if outside > 1e-12:
                raise ValueError(f"grid.{marginal.name} = [{e[0]:g}, {e[-1]:g}] cuts off {outside:.2e} "
                                 f"of the initial law of {marginal.name}; widen the grid")
            masses = np.multiply.outer(masses, np.diff(cdf))
        return masses

    def quantile(self, u: np.ndarray) -> np.ndarray:
        """Map uniforms ``u`` of shape (M, dim) to reduced points (M, dim), coordinate-wise."""
        u = np.atleast_2d(np.asarray(u, dtype=float))
        return np.stack([m.quantile(u[:, i]) for i, m in enumerate(self.marginals)], axis=1)

    def sample_reduced(self, n_points: int, rng: np.random.Generator) -> np.ndarray:
        return self.quantile(rng.random((n_points, len(self.marginals))))

    def sample_network(self, n_neurons: int, rng: np.random.Generator,
                       theta_star: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Full-dimensional ``(a (N,), W (N, d))``: rows ``w = E[w] + g``, ``g ~ N(0, κ²/d I_d)`` (or w
        uniform on the sphere), then a ~ N(a0, σ_a²) (or the constant a0).  θ* only fixes the frame (the
        law of W is rotation invariant) unless the initial alignment s₀ ≠ 0, when it is required
        (:meth:`mean_weight`)."""
        if math.isinf(self.dimension):
            raise ValueError("initial law: cannot sample full-dimensional weights at dimension = inf")
        d = int(self.dimension)
        mean = self.mean_weight(theta_star, d)
        g = rng.standard_normal((n_neurons, d))
        w = g / np.linalg.norm(g, axis=1, keepdims=True) if self.sphere else g * (self.weight_scale / math.sqrt(d))
        a = (self.second_layer + self.second_layer_std * rng.standard_normal(n_neurons)
             if self.second_layer_std > 0 else np.full(n_neurons, self.second_layer))
        return a, w + mean

    def mean_weight(self, theta_star: np.ndarray | None, d: int) -> np.ndarray:
        """``E[w] = s₀ θ*`` (θ* of shape (d,)); zero without alignment."""
        if theta_star is not None and np.shape(theta_star) != (d,):
            raise ValueError(f"theta_star has shape {np.shape(theta_star)}, expected ({d},)")
        if self.initial_alignment == 0.0:
            return np.zeros(d)
        if theta_star is None:
            raise ValueError("initial law: initial_alignment != 0 needs theta_star to place the weights")
        return self.initial_alignment * np.asarray(theta_star, dtype=float)

    def config(self) -> dict[str, Any]:
        return {"law": "single_index_product", "dimension": self.dimension,
                "weight_scale": self.weight_scale, "second_layer": self.second_layer,
                "second_layer_std": self.second_layer_std, "sphere": self.sphere,
                "initial_alignment": self.initial_alignment}


# --------------------------------------------------------------------------------------------
# The reduction
# --------------------------------------------------------------------------------------------


class SeriesTruncation:
    """Truncation degrees (K, J) of the interaction (U) and P of the potential (V), and their rigorous
    bounds (module docstring, "Truncation bound").

    Inputs: σ; a target known through its coefficient norms (``coefficients(P)``, ``second_moment``,
    ``tail(P)``, ``exact_degree``): φ̂_k for the single-index model, the block norms ‖φ̂_K‖ for a
    multi-index one (whose bounds are these at ρ → |ρ|, :mod:`reduced_pde.models.multi_index`); the
    dimension m of the orthogonal complement of the target directions (d − 1, or d − k; inf at d = ∞);
    ``sphere`` (the only probe scale is then n = 1).  The degrees are chosen once for ``scale_bound``
    and re-chosen by :meth:`check_scale` only when a larger n is met.  The keyword parameters are the
    reduction's (``reduction.*``), checked here."""

    def __init__(self, activation: Activation, target: Any, orthogonal_dimension: float, *, sphere: bool,
                 weight_scale: float, scale_bound: float | None, truncation_tolerance: float, max_degree: int,
                 hermite_degree: int | None, binomial_degree: int | None) -> None:
        self.activation = activation
        self.target = target
        self.orthogonal_dimension = float(orthogonal_dimension)
        self.sphere = bool(sphere)
        if not truncation_tolerance > 0:
            raise ValueError(f"reduction.truncation_tolerance = {truncation_tolerance!r} must be > 0")
        self.truncation_tolerance = float(truncation_tolerance)
        if not (isinstance(max_degree, (int, np.integer)) and 0 <= max_degree <= _PROBE_DEGREE):
            raise ValueError(f"reduction.max_degree = {max_degree!r} must be an integer in [0, {_PROBE_DEGREE}]")
        self.max_degree = int(max_degree)
        for field_name, value in (("hermite_degree", hermite_degree), ("binomial_degree", binomial_degree)):
            if value is not None and not (isinstance(value, (int, np.integer)) and value >= 0):
                raise ValueError(f"reduction.{field_name} = {value!r} must be an integer >= 0")
        self.hermite_degree = hermite_degree
        self.binomial_degree = binomial_degree
        # probe scales n = |w| <= scale_bound (default max(4, 4κ), κ the initial weight scale); n = 1 on the sphere
        self.scale_bound = 1.0 if self.sphere else float(scale_bound if scale_bound is not None
                                                         else max(4.0, 4.0 * weight_scale))
        if not self.scale_bound > 0:
            raise ValueError(f"reduction.scale_bound = {scale_bound!r} must be > 0")
        self._degrees: tuple[int, int] | None = None
        self._skipped_degrees = np.zeros(0, dtype=int)
        self._potential_degree: int | None = None
        self.relative_truncation_error = 0.0

    def check_scale(self, n: np.ndarray) -> None:
        """Grow the probe range when a scale n = |w| exceeds it: the degrees are re-chosen for twice the
        largest n (so they do not change from call to call otherwise)."""
        n_max = float(np.max(n)) if n.size else 0.0
        if n_max > self.scale_bound:
            self.scale_bound = 2.0 * n_max
            self._degrees = None
            self._potential_degree = None

    def probe_scales(self) -> np.ndarray:
        return np.array([1.0]) if self.sphere else np.linspace(0.0, self.scale_bound, 33)[1:]

    def series_degrees(self) -> tuple[int, int]:
        """``(K, J)``: Hermite degree and largest binomial index j of the interaction (module doc)."""
        if self._degrees is None:
            self._degrees = self._choose_degrees()
        return self._degrees

    def _choose_degrees(self) -> tuple[int, int]:
        exact = getattr(self.activation, "polynomial_degree", None)
        probe = self.probe_scales()
        second = gaussian_second_moment(self.activation, probe)
        scale = max(float(second.max()), 1e-300)
        tol = self.truncation_tolerance
        if self.hermite_degree is not None:
            degree = int(self.hermite_degree)
        elif exact is not None:
            degree = exact
        else:
            alpha_sq = self.activation.hermite_coefficients(probe, _PROBE_DEGREE) ** 2
            tails = second[None, :] - np.cumsum(alpha_sq, axis=0)
            worst = np.max(tails, axis=1)
            ok = np.nonzero(worst[: self.max_degree + 1] <= 0.5 * tol * scale)[0]
            degree = int(ok[0]) if ok.size else self.max_degree
        if math.isinf(self.orthogonal_dimension):
            binomial = 0
        elif self.binomial_degree is not None:
            binomial = min(int(self.binomial_degree), degree)
        elif exact is not None and self.hermite_degree is None:
            binomial = degree
        else:
            binomial = self._choose_binomial(probe, degree, 0.5 * tol * scale)
        self._degrees = (degree, binomial)
        # degrees whose coefficient vanishes identically on the probe (e.g. odd k >= 3 for ReLU) are
        # left out of the features; their α_k² is added to the bound, so it stays rigorous anywhere
        alpha_probe = self.activation.hermite_coefficients(probe, degree)
        self._skipped_degrees = np.nonzero(np.all(alpha_probe == 0.0, axis=1))[0]
        # achieved relative bound (sup over the probe of b², relative to S)
        rho = np.linspace(-1.0, 1.0, 41)
        n_grid, rho_grid = np.meshgrid(probe, rho, indexing="ij")
        b2 = self.bound_squared(n_grid.ravel(), rho_grid.ravel(), np.sqrt(1 - rho_grid.ravel() ** 2),
                                 np.ones(n_grid.size))
        self.relative_truncation_error = float(b2.max() / scale)
        if self.relative_truncation_error > tol * (1 + 1e-6) and exact is None:
            warnings.warn(f"series truncation: interaction truncated at K = {degree}, J = {binomial} "
                          f"(max_degree = {self.max_degree}); relative bound "
                          f"{self.relative_truncation_error:.2e} exceeds truncation_tolerance = {tol:g}",
                          stacklevel=4)
        return self._degrees

    def _choose_binomial(self, probe: np.ndarray, degree: int, budget: float) -> int:
        rho = np.linspace(0.0, 1.0, 41)
        vrho = np.sqrt(1.0 - rho**2)
        alpha_sq = self.activation.hermite_coefficients(probe, degree) ** 2  # (K+1, P)
        per_j = self._binomial_contributions(alpha_sq[:, :, None], rho[None, :], vrho[None, :], degree)
        dropped = np.cumsum(per_j[::-1], axis=0)[::-1]  # dropped[j0] = Σ_{j >= j0}
        for binomial in range(0, degree + 1, 2):
            if binomial + 2 > degree or float(dropped[binomial + 2].max()) <= budget:
                return binomial
        return degree - degree % 2

    def _binomial_contributions(self, alpha_sq: np.ndarray, rho: np.ndarray, vrho: np.ndarray,
                                degree: int) -> np.ndarray:
        """``c_j = Σ_{j<=k<=K} α_k² C(k,j) m_j ρ^{2(k−j)} ϱ^{2j}`` for j = 0..K (zero for odd j);
        alpha_sq has shape (K+1, ...).  Dropping all j > J costs ``Σ_{j>J} c_j`` in b²."""
        moments = cosine_moments(self.orthogonal_dimension, degree)
        shape = np.broadcast_shapes(alpha_sq.shape[1:], np.shape(rho))
        out = np.zeros((degree + 1,) + shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_rho, log_vrho = np.log(np.abs(rho)), np.log(vrho)
            for j in range(2, degree + 1, 2):
                for k in range(j, degree + 1):
                    log_term = (_log_binomial(np.float64(k), np.float64(j))
                                + (2 * (k - j) * log_rho if k > j else 0.0) + 2 * j * log_vrho)
                    out[j] += alpha_sq[k] * np.exp(log_term)
                out[j] *= moments[j]
        return out

    def bound_squared(self, n: np.ndarray, rho: np.ndarray, vrho: np.ndarray, a: np.ndarray) -> np.ndarray:
        degree, binomial = self._degrees  # type: ignore[misc]
        exact = getattr(self.activation, "polynomial_degree", None)
        if (exact is not None and degree >= exact and exact < 32
                and (binomial >= degree or math.isinf(self.orthogonal_dimension))):
            # the series terminates; skipped α_k vanish identically (a polynomial in n of degree
            # <= p < 32 vanishing at the 32 probe scales; on the sphere n = 1 is the only scale)
            return np.zeros_like(n)
        alpha = self.activation.hermite_coefficients(n, degree)
        if exact is not None and degree >= exact:
            tail = np.zeros_like(n)
        else:
            tail = np.maximum(gaussian_second_moment(self.activation, n) - np.sum(alpha**2, axis=0), 0.0)
        abs_moments = absolute_cosine_moments(self.orthogonal_dimension, degree + 1)
        i = np.arange(degree + 2, dtype=float)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_rho, log_vrho = np.log(np.abs(rho))[None, :], np.log(vrho)[None, :]
            log_terms = (_log_binomial(np.float64(degree + 1), i)
                         + np.where(i == degree + 1, 0.0, 2 * (degree + 1 - i) * log_rho)
                         + np.where(i == 0, 0.0, 2 * i * log_vrho))
        power = np.sum(abs_moments[:, None] * np.exp(log_terms), axis=0)
        dropped = 0.0
        if not math.isinf(self.orthogonal_dimension) and binomial + 2 <= degree:
            # Σ_{k<=K} α_k² Σ_{j even, J<j<=k} C(k,j) m_j ρ^{2(k−j)} ϱ^{2j}, by powers (no logs)
            moments = cosine_moments(self.orthogonal_dimension, degree)
            rho2, vrho2 = _powers(rho * rho, degree), _powers(vrho * vrho, degree)
            alpha_sq = alpha**2
            dropped = np.zeros_like(n)
            for j in range(binomial + 2, degree + 1, 2):
                k = np.arange(j, degree + 1, dtype=float)
                binom = np.exp(_log_binomial(k, np.float64(j)))[:, None]
                dropped += moments[j] * vrho2[j] * np.sum(binom * alpha_sq[j:] * rho2[: degree + 1 - j], axis=0)
        skipped = np.sum(alpha[self._skipped_degrees] ** 2, axis=0)
        return a * a * (tail * power + dropped + skipped)

    def index_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept (k, j) pairs of the interaction features g_kj, as two int arrays (rows of (U))."""
        degree, binomial = self.series_degrees()
        skipped = set(int(k) for k in self._skipped_degrees)
        pairs = [(k, j) for k in range(degree + 1) if k not in skipped
                 for j in range(0, min(k, binomial) + 1, 2)]
        arr = np.array(pairs, dtype=int).reshape(-1, 2)
        return arr[:, 0], arr[:, 1]

    def potential_degree(self) -> int:
        """Truncation degree P_V of the potential series (V) (module docstring)."""
        if self._potential_degree is not None:
            return self._potential_degree
        degrees = [d for d in (self.target.exact_degree, getattr(self.activation, "polynomial_degree", None))
                   if d is not None]
        if degrees:
            self._potential_degree = min(degrees)
            return self._potential_degree
        probe = self.probe_scales()
        second = gaussian_second_moment(self.activation, probe)
        alpha_sq = self.activation.hermite_coefficients(probe, _PROBE_DEGREE) ** 2
        sigma_tails = np.maximum(second[None, :] - np.cumsum(alpha_sq, axis=0), 0.0).max(axis=1)
        phi_hat = self.target.coefficients(_PROBE_DEGREE)
        phi_tails = np.maximum(self.target.second_moment - np.cumsum(phi_hat**2), 0.0)
        budget = self.truncation_tolerance**2 * self.target.second_moment * max(float(second.max()), 1e-300)
        ok = np.nonzero(phi_tails * sigma_tails <= budget)[0]
        self._potential_degree = int(ok[0]) if ok.size else _PROBE_DEGREE
        return self._potential_degree

    def potential_bound(self, a: np.ndarray, n: np.ndarray, abs_rho: np.ndarray,
                        alpha: np.ndarray | None = None, degree: int | None = None) -> np.ndarray:
        """``|a| |ρ|^{P+1} sqrt(T^φ_P T_P(n))`` >= |v − v_P| (zero if the series terminates); ``abs_rho``
        = |ρ| (the norm of ρ ∈ R^k for a multi-index target); ``alpha``: α_k(n), k <= P, if known;
        ``degree``: P if not :meth:`potential_degree` (a multi-index target caps it)."""
        if degree is None:
            degree = self.potential_degree()
        target_tail = self.target.tail(degree)
        if target_tail == 0.0 or getattr(self.activation, "polynomial_degree", math.inf) <= degree:
            return np.zeros_like(n)
        if alpha is None:
            alpha = self.activation.hermite_coefficients(n, degree)
        sigma_tail = np.maximum(gaussian_second_moment(self.activation, n) - np.sum(alpha**2, 0), 0.0)
        return np.abs(a) * np.abs(abs_rho) ** (degree + 1) * np.sqrt(target_tail * sigma_tail)

    def cosine_rule(self, nodes: int) -> tuple[np.ndarray, np.ndarray]:
        """Quadrature for the law of c, the cosine between uniform directions of R^m: Gauss–Jacobi with
        exponent (m−3)/2 (two atoms ±1 at m = 1, the atom 0 at m = ∞)."""
        return cosine_rule(self.orthogonal_dimension, nodes)


def check_network_parameters(train_second_layer: bool, second_layer: Any, second_layer_std: Any,
                             weight_scale: Any) -> tuple[float, float, float]:
    """``(a0, σ_a, κ)`` of the initial law of an index model's neurons, checked (ValueError naming the
    field): a0 finite, σ_a >= 0 finite (and 0 unless a is trained), κ > 0 finite."""
    a0, std, kappa = float(second_layer), float(second_layer_std), float(weight_scale)
    if not math.isfinite(a0):
        raise ValueError(f"initial.second_layer = {second_layer!r} must be finite")
    if not (std >= 0 and math.isfinite(std)):
        raise ValueError(f"initial.second_layer_std = {second_layer_std!r} must be finite and >= 0")
    if not train_second_layer and std > 0:
        raise ValueError(f"initial.second_layer_std = {second_layer_std!r} requires a trained second "
                         "layer (train_second_layer = True)")
    if not (kappa > 0 and math.isfinite(kappa)):
        raise ValueError(f"initial.weight_scale = {weight_scale!r} must be finite and > 0")
    return a0, std, kappa


def _check_dimension(dimension: Any) -> float:
    try:
        d = float(dimension)
    except (TypeError, ValueError):
        d = float("nan")
    if not (math.isinf(d) and d > 0) and not (math.isfinite(d) and d == int(d) and d >= 2):
        raise ValueError(f"data.dimension = {dimension!r} must be an integer >= 2 or inf")
    return d


class SingleIndexProblem(ReducedProblem):
    """The single-index reduction (module docstring) at finite d or d = ∞, in the ball (s, r) or on
    the sphere (s), with a trained (coordinate a) or fixed (``second_layer``) second layer."""

    def __init__(self, target: Any, activation: Any, dimension: Any, *,
                 train_second_layer: bool = True, sphere: bool = False,
                 second_layer: float = 1.0, second_layer_std: float = 0.0,
                 weight_scale: float = 1.0, initial_alignment: float = 0.0,
                 truncation_tolerance: float = 1e-6,
                 scale_bound: float | None = None, max_degree: int = _DEFAULT_MAX_DEGREE,
                 hermite_degree: int | None = None, binomial_degree: int | None = None,
                 noise_variance: float | None = None) -> None:
        self.dimension = _check_dimension(dimension)
        self.target: SingleIndexTarget = make_target(target, noise_variance)
        self.activation = make_activation(activation, polynomial=True)
        self.train_second_layer = bool(train_second_layer)
        self.sphere = bool(sphere)
        self.second_layer, self.second_layer_std, self.weight_scale = check_network_parameters(
            self.train_second_layer, second_layer, second_layer_std, weight_scale)
        self.initial_alignment = float(initial_alignment)
        if not math.isfinite(self.initial_alignment) or (sphere and self.initial_alignment != 0.0):
            raise ValueError(f"initial.alignment = {initial_alignment!r} must be finite (and 0 on the sphere, "
                             "where w is uniform)")
        self.truncation = SeriesTruncation(
            self.activation, self.target, self.dimension - 1.0, sphere=self.sphere, weight_scale=self.weight_scale,
            scale_bound=scale_bound, truncation_tolerance=truncation_tolerance, max_degree=max_degree,
            hermite_degree=hermite_degree, binomial_degree=binomial_degree)
        names = ("a",) if self.train_second_layer else ()
        self.coordinate_names = names + (("s",) if self.sphere else ("s", "r"))
        self.linear_coordinate = "a" if self.train_second_layer else None
        self._initial_law = SingleIndexInitialLaw(self.dimension, self.coordinate_names, self.weight_scale,
                                                  self.second_layer, self.second_layer_std, self.sphere,
                                                  self.initial_alignment)

    # ---- coordinates -----------------------------------------------------------------------------
    @property
    def target_second_moment(self) -> float:
        return self.target.label_second_moment

    @property
    def orthogonal_dimension(self) -> float:
        """m = d − 1, the dimension of the complement of θ*."""
        return self.dimension - 1.0

    def _split(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(a, s, r)`` arrays of shape (M,) from points of shape (M, dim)."""
        x = np.asarray(points, dtype=float)
        dim = len(self.coordinate_names)
        if x.ndim == 1 and dim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(f"points have shape {np.shape(points)}; expected (M, {dim}) for "
                             f"coordinates {self.coordinate_names}")
        cols = dict(zip(self.coordinate_names, x.T))
        a = cols.get("a", np.full(x.shape[0], self.second_layer))
        s = cols["s"]
        if self.sphere:
            if np.any(np.abs(s) > 1.0 + 1e-12):
                raise ValueError(f"sphere coordinate s must lie in [-1, 1], got max |s| = {np.max(np.abs(s))}")
            s = np.clip(s, -1.0, 1.0)
            r = np.sqrt(np.maximum(1.0 - s * s, 0.0))
        else:
            r = cols["r"]
            if np.any(r < 0):
                raise ValueError(f"coordinate r = |w − sθ*| must be >= 0, got min {r.min()}")
        return a, s, r

    def mobility(self, points: np.ndarray) -> np.ndarray:
        """``(M, dim)`` diagonal mobility: ones, except ``1 − s²`` in the s column on the sphere
        (projected gradient flow, module docstring)."""
        out = super().mobility(points)
        if self.sphere:
            _, s, _ = self._split(points)
            out[:, self.coordinate_names.index("s")] = 1.0 - s * s
        return out

    def domain(self) -> tuple[tuple[float, float], ...]:
        """a ∈ R; s ∈ [−1, 1] on the sphere, s ∈ R in the ball; r ∈ [0, ∞)."""
        bounds = {"a": (-math.inf, math.inf), "s": (-1.0, 1.0) if self.sphere else (-math.inf, math.inf),
                  "r": (0.0, math.inf)}
        return tuple(bounds[name] for name in self.coordinate_names)

    def log_reference_density(self, points: np.ndarray) -> np.ndarray:
        """``log J = ((d − 3)/2) log(1 − s²)`` for s = ⟨w, θ*⟩ on S^{d−1} with a fixed second layer (the
        only noisy reduction of this model; the ball and a trained a have none yet)."""
        if not (self.sphere and self.coordinate_names == ("s",)):
            return super().log_reference_density(points)
        if math.isinf(self.dimension):
            raise ValueError("noise.beta < inf with data.dimension = inf is refused (the sphere entropy "
                             "term diverges as d → ∞ at fixed β)")
        s = np.asarray(points, dtype=float).reshape(-1)
        if np.any(np.abs(s) >= 1):
            raise ValueError("log J needs |s| < 1 (cell centres of a grid on [-1, 1])")
        return 0.5 * (self.dimension - 3.0) * np.log1p(-s * s)

    def check_noise(self, beta: float, weight_decay: float) -> None:
        """Noise on the sphere (s,) only; no weight decay on |w| = 1 (it would only rescale |w|)."""
        super().check_noise(beta, weight_decay)
        if self.sphere and weight_decay != 0.0:
            raise ValueError(f"noise.weight_decay = {weight_decay!r} must be 0 on the sphere |w| = 1 "
                             "(weight decay only rescales |w|, which is fixed there)")

    def _geometry(self, s: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(n, ρ, ϱ)`` with the n = 0 convention ρ = 0, ϱ = 1."""
        if self.sphere:
            return np.ones_like(s), s, r
        return ball_geometry(s, r)

    _powers = staticmethod(_powers)

    # ---- truncation (SeriesTruncation) -------------------------------------------------------------
    @property
    def scale_bound(self) -> float:
        """Largest scale n = |w| the degrees were chosen for (grows when larger n are met)."""
        return self.truncation.scale_bound

    @property
    def relative_truncation_error(self) -> float:
        """Achieved ``sup b² / sup E σ(nG)²`` of the interaction bound (after :meth:`series_degrees`)."""
        return self.truncation.relative_truncation_error

    def series_degrees(self) -> tuple[int, int]:
        """``(K, J)``: Hermite degree and largest binomial index j of the interaction (module doc)."""
        return self.truncation.series_degrees()

    def potential_degree(self) -> int:
        """Truncation degree P_V of the potential series (V) (module docstring)."""
        return self.truncation.potential_degree()

    def index_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept (k, j) pairs of the interaction features g_kj (rows of (U))."""
        return self.truncation.index_pairs()

    def rank(self) -> int:
        return int(self.index_pairs()[0].size)

    def _potential_parts(self, points: np.ndarray):
        a, s, r = self._split(points)
        n, rho, vrho = self._geometry(s, r)
        self.truncation.check_scale(n)
        return a, s, r, n, rho, vrho

    def reduced_potential(self, points: np.ndarray) -> np.ndarray:
        """(V): ``v = −a Σ_{k<=P} φ̂_k α_k(n) ρ^k``."""
        a, _, _, n, rho, _ = self._potential_parts(points)
        degree = self.potential_degree()
        phi_hat = self.target.coefficients(degree)
        alpha = self.activation.hermite_coefficients(n, degree)
        return -a * np.einsum("k,km,km->m", phi_hat, alpha, self._powers(rho, degree))

    def potential_truncation_bound(self, points: np.ndarray) -> np.ndarray:
        """``|a| |ρ|^{P+1} sqrt(T^φ_P T_P(n))`` (zero if the series terminates)."""
        a, _, _, n, rho, _ = self._potential_parts(points)
        return self.truncation.potential_bound(a, n, rho)

    def _feature_derivatives(self, n: np.ndarray, rho: np.ndarray, vrho: np.ndarray,
                             ks: np.ndarray, js: np.ndarray, top: int, derivatives: bool = True
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``f_kj = sqrt(C(k,j)) α_k ρ^{k−j} ϱ^j`` and its derivatives in s and r (ball) or the
        derivative of the restriction in s (sphere; second array, third is zeros)."""
        if self.sphere:  # n = |w| = 1 at every point: α_k(1) once, broadcast over the points (α[ks] is (R, 1))
            alpha = self.activation.hermite_coefficients(n[:1], top)
            d_alpha = alpha
        else:
            alpha = self.activation.hermite_coefficients(n, top)
            d_alpha = self.activation.hermite_coefficients_derivative(n, top) if derivatives else alpha
        P = self._powers(rho, top + 2)
        Q = self._powers(vrho, top + 2)
        root_binom = np.exp(0.5 * _log_binomial(ks.astype(float), js.astype(float)))[:, None]
        kj = ks - js
        value = root_binom * alpha[ks] * P[kj] * Q[js]
        if not derivatives:
            return value, value, value
        km1 = np.maximum(kj - 1, 0)
        jm1 = np.maximum(js - 1, 0)
        cf_kj = kj[:, None].astype(float)
        cf_j = js[:, None].astype(float)
        if self.sphere:
            # d/ds [s^{k−j} (1−s²)^{j/2}] = (k−j) s^{k−j−1} ϱ^j − j s^{k−j+1} ϱ^{j−2}
            jm2 = np.maximum(js - 2, 0)
            ds = root_binom * alpha[ks] * (cf_kj * P[km1] * Q[js] - cf_j * P[kj + 1] * Q[jm2])
            return value, ds, np.zeros_like(ds)
        safe = np.where(n > 0, n, 1.0)
        ratio = np.where(n > 0, alpha / safe, d_alpha)  # α_k(n)/n, limit α_k'(0) (α_k(0) = 0, k >= 1)
        ds = root_binom * (d_alpha[ks] * P[kj + 1] * Q[js]
                           + ratio[ks] * (cf_kj * P[km1] * Q[js + 2] - cf_j * P[kj + 1] * Q[js]))
        dr = root_binom * (d_alpha[ks] * P[kj] * Q[js + 1]
                           + ratio[ks] * (cf_j * P[kj + 2] * Q[jm1] - cf_kj * P[kj] * Q[js + 1]))
        return value, ds, dr

    def _assemble_gradient(self, a: np.ndarray, value: np.ndarray, ds: np.ndarray, dr: np.ndarray
                           ) -> np.ndarray:
        """Stack ``(∂_a, ∂_s[, ∂_r])`` of ``a · f`` in coordinate order; shape (..., M, dim)."""
        parts = []
        for name in self.coordinate_names:
            parts.append({"a": value, "s": a * ds, "r": a * dr}[name])
        return np.stack(parts, axis=-1)

    def reduced_potential_gradient(self, points: np.ndarray) -> np.ndarray:
        """``∇v`` in the problem's coordinates, shape (M, dim) (analytic chain rule, module doc)."""
        a, _, _, n, rho, vrho = self._potential_parts(points)
        degree = self.potential_degree()
        ks = np.arange(degree + 1)
        value, ds, dr = self._feature_derivatives(n, rho, vrho, ks, np.zeros_like(ks), degree)
        phi_hat = -self.target.coefficients(degree)
        return self._assemble_gradient(a, phi_hat @ value, phi_hat @ ds, phi_hat @ dr)

    # ---- interaction -----------------------------------------------------------------------------
    def _chunks(self, size: int, rows: int) -> list[slice]:
        """Point blocks of about 2·10^6 / rows points (bounded temporaries for large M and rank)."""
        step = max(256, int(2_000_000 // max(rows, 1)))
        return [slice(i, min(i + step, size)) for i in range(0, size, step)]

    def interaction_low_rank(self, points: np.ndarray) -> LowRankKernel:
        """(U) truncated at (K, J): weights ``m_j`` (R,), features ``g_kj`` (R, M), and the
        rigorous bound vector b (M,) with ``|u − u_{K,J}| <= b_i b_j``."""
        a, _, _, n, rho, vrho = self._potential_parts(points)
        degree, _ = self.series_degrees()
        ks, js = self.index_pairs()
        features = np.empty((ks.size, n.size))
        bound = np.empty(n.size)
        for block in self._chunks(n.size, ks.size + degree):
            value, _, _ = self._feature_derivatives(n[block], rho[block], vrho[block], ks, js, degree,
                                                    derivatives=False)
            features[:, block] = a[block] * value
            bound[block] = np.sqrt(np.maximum(self.truncation.bound_squared(n[block], rho[block], vrho[block],
                                                                  a[block]), 0.0))
        weights = cosine_moments(self.orthogonal_dimension, degree)[js]
        return LowRankKernel(weights, features, truncation_bound=bound)

    def interaction_truncation_bound(self, points: np.ndarray) -> np.ndarray:
        a, _, _, n, rho, vrho = self._potential_parts(points)
        self.series_degrees()
        return np.sqrt(np.maximum(self.truncation.bound_squared(n, rho, vrho, a), 0.0))

    def interaction_features_gradient(self, points: np.ndarray) -> np.ndarray:
        """``∇g_kj`` in the problem's coordinates, shape (R, M, dim)."""
        a, _, _, n, rho, vrho = self._potential_parts(points)
        degree, _ = self.series_degrees()
        ks, js = self.index_pairs()
        out = np.empty((ks.size, n.size, len(self.coordinate_names)))
        for block in self._chunks(n.size, 3 * ks.size + degree):
            value, ds, dr = self._feature_derivatives(n[block], rho[block], vrho[block], ks, js, degree)
            out[:, block] = self._assemble_gradient(a[None, block], value, ds, dr)
        return out

    def potential_gradient(self, points: np.ndarray, masses: np.ndarray) -> np.ndarray:
        """``∇ψ(x_i; p) = ∇v(x_i) + Σ_kj m_j (Σ_l g_kj(x_l) masses_l) ∇g_kj(x_i)``, shape (M, dim)."""
        kernel = self.interaction_low_rank(points)
        moments = kernel.weights * (kernel.features @ np.asarray(masses, dtype=float))
        return self.reduced_potential_gradient(points) + np.einsum(
            "k,kmd->md", moments, self.interaction_features_gradient(points))

    def interaction_kernel(self, points: np.ndarray, other: np.ndarray, cosine_nodes: int = 64
                           ) -> np.ndarray:
        """``u(x_i, x'_j) = a a' E_c E[σ(n X) σ(n' Y)]`` with correlation ``γ = ρρ' + ϱϱ'c``, by
        Gauss–Jacobi quadrature over c of ``activation.bivariate_expectation`` (independent of the
        Hermite series; slow — a reference and a dense fall-back for small problems)."""
        a1, s1, r1 = self._split(points)
        a2, s2, r2 = self._split(other)
        n1, p1, q1 = self._geometry(s1, r1)
        n2, p2, q2 = self._geometry(s2, r2)
        c_nodes, c_weights = self.truncation.cosine_rule(cosine_nodes)
        out = np.zeros((a1.size, a2.size))
        for i in range(a1.size):
            for j in range(a2.size):
                gammas = np.clip(p1[i] * p2[j] + q1[i] * q2[j] * c_nodes, -1.0, 1.0)
                out[i, j] = a1[i] * a2[j] * sum(
                    w * self.activation.bivariate_expectation(float(n1[i]), float(n2[j]), float(g))
                    for g, w in zip(gammas, c_weights))
        return out

    def hermite_structure(self) -> HermiteStructure:
        """φ̂_k of the target, ``α_k(n)`` of σ (n = 1 on the sphere, n = |w| >= 0 in the ball) and the
        coordinates ``a`` (or the fixed ``second_layer``), ``s`` and ``r`` (none on the sphere)."""
        return HermiteStructure(
            target=TargetSpectrum.of_single_index(self.target),
            activation=ActivationSpectrum(self.activation.hermite_coefficients, 1.0 if self.sphere else None),
            coordinate_names=tuple(self.coordinate_names), alignment_coordinates=("s",),
            orthogonal_coordinate=None if self.sphere else "r",
            second_layer_coordinate="a" if self.train_second_layer else None,
            second_layer=None if self.train_second_layer else self.second_layer)

    def finite_width(self) -> Any:
        """Finite-width runs (``reduced-pde chaos``; :class:`~reduced_pde.analysis.finite_width.SphereFiniteWidth`)
        where the m-neuron kernel is exact: neurons on the sphere, a fixed second layer a and a polynomial σ
        (``σ = Σ_k α_k h_k``), so that ``U(w, w') = κ(⟨w, w'⟩)``, ``κ_k = a²α_k²``, and ``V(w) = v(⟨w, θ*⟩)``,
        ``v_k = −a φ̂_k α_k`` (finite d)."""
        from reduced_pde.analysis.finite_width import SINGLE_INDEX, SphereFiniteWidth, SphereHermiteModel

        if not self.sphere:
            raise ValueError("finite-width runs need neurons on the sphere: data.model = 'single_index_sphere' "
                             "(this problem's neurons live in the ball)")
        if self.train_second_layer:
            raise ValueError("network.train_second_layer = true: finite-width runs need a fixed second layer "
                             "(network.train_second_layer = false)")
        degree = getattr(self.activation, "polynomial_degree", None)
        if degree is None:
            raise ValueError(f"activation {self.activation.config()!r} must be a polynomial (he<k> or "
                             "he_coefficients): the Gram-block kernel is exact only for polynomial σ")
        if math.isinf(self.dimension):
            raise ValueError("data.dimension = inf is not allowed for finite-width runs (an integer >= 3 is)")
        a = float(self.second_layer)
        alpha = np.asarray(self.activation.hermite_coefficients(np.array(1.0), degree), dtype=float)
        alpha[np.abs(alpha) < 1e-12 * np.max(np.abs(alpha))] = 0.0  # quadrature round-off of exact zeros
        phi_hat = np.asarray(self.target.coefficients(degree), dtype=float)
        return SphereFiniteWidth(self, SphereHermiteModel(int(self.dimension), a * a * alpha ** 2, -a * phi_hat * alpha,
                                                          float(self.target_second_moment), SINGLE_INDEX))

    # ---- finite networks ---------------------------------------------------------------------
    #: k, the number of target directions (the rows of ``theta_star``); 1 here.
    index_dimension: int = 1

    def sample_labels(self, projections: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Labels ``y = φ(z) + noise`` for the projections ``z = Θ* x``, shape (B, k) (k = 1) or (B,)."""
        z = np.asarray(projections, dtype=float)
        return self.target.sample_labels(z[:, 0] if z.ndim == 2 else z, rng)

    def reduced_coordinates(self, a: np.ndarray, weights: np.ndarray, theta_star: np.ndarray) -> np.ndarray:
        """Invariants of full-dimensional neurons ``(a_i, w_i)``, shape (N, dim)."""
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        theta = np.asarray(theta_star, dtype=float)
        s = w @ theta
        cols = {"a": np.broadcast_to(np.asarray(a, dtype=float), s.shape), "s": s,
                "r": np.linalg.norm(w - np.outer(s, theta), axis=1)}
        return np.stack([cols[name] for name in self.coordinate_names], axis=1)

    def network_potential(self, a: np.ndarray, weights: np.ndarray, theta_star: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
        """(V) and its truncation bound at full-dimensional neurons ``(a_i, w_i)`` with their actual a_i
        (also when the second layer is not a coordinate), shape (N,) each."""
        theta = self._check_theta_star(theta_star)
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        s = w @ theta
        n, rho, _ = self._geometry(s, np.linalg.norm(w - np.outer(s, theta), axis=1))
        self.truncation.check_scale(n)
        a = np.broadcast_to(np.asarray(a, dtype=float), s.shape)
        degree = self.potential_degree()
        alpha = self.activation.hermite_coefficients(n, degree)
        potential = -a * np.einsum("k,km,km->m", self.target.coefficients(degree), alpha, self._powers(rho, degree))
        return potential, self.truncation.potential_bound(a, n, rho, alpha)

    def _check_theta_star(self, theta_star: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta_star, dtype=float)
        if not math.isclose(float(np.linalg.norm(theta)), 1.0, rel_tol=1e-10):
            raise ValueError(f"theta_star must be a unit vector, |theta_star| = {np.linalg.norm(theta)}")
        return theta

    def network_risk(self, a: np.ndarray | float, weights: np.ndarray, theta_star: np.ndarray,
                     tolerance: float = 1e-12) -> tuple[float, float]:
        """Exact population risk ``E[(y − (1/N) Σ_i a_i σ(⟨w_i, x⟩))²]`` and a bound on its series
        truncation error (:func:`~reduced_pde.models.finite_network.index_network_risk`: Mehler series
        over the actual cosines, v from (V) with its bound)."""
        return index_network_risk(self, a, weights, theta_star,
                                  lambda n: gaussian_second_moment(self.activation, n),
                                  getattr(self.activation, "polynomial_degree", None), tolerance)

    def initial_law(self) -> SingleIndexInitialLaw:  # type: ignore[override]
        return self._initial_law

    def config(self) -> dict[str, Any]:
        degree, binomial = self.series_degrees()
        return {
            "problem": "single_index_sphere" if self.sphere else "single_index",
            "reduction.coordinates": list(self.coordinate_names),
            "data.dimension": self.dimension,
            **{f"target.{k}": v for k, v in self.target.config().items()},
            **{f"activation.{k}": v for k, v in self.activation.config().items()},
            "network.train_second_layer": self.train_second_layer,
            "initial.second_layer": self.second_layer,
            "initial.second_layer_std": self.second_layer_std,
            "initial.weight_scale": self.weight_scale,
            "initial.alignment": self.initial_alignment,
            "reduction.truncation_tolerance": self.truncation.truncation_tolerance,
            "reduction.max_degree": self.truncation.max_degree,
            "reduction.hermite_degree": degree,
            "reduction.binomial_degree": binomial,
        }


class SingleIndexNetwork(IndexNetwork):
    """The full-dimensional network of a :class:`SingleIndexProblem` (ball or sphere, trained or fixed
    second layer): :class:`~reduced_pde.models.finite_network.IndexNetwork` with θ* = e_1 given to the
    problem as a (d,) vector."""

    def __init__(self, problem: SingleIndexProblem) -> None:
        super().__init__(problem, on_sphere=problem.sphere)

    @property
    def frame(self) -> np.ndarray:
        return self.theta_star[0]


# ---- the model plug-ins ----------------------------------------------------------------------------
def _activation_table(field: str, value: Any) -> dict[str, Any]:
    """The ``[activation]`` table (``name = "he4"``, ``"relu"``, ``{name = "polynomial",
    he_coefficients = [...]}``, ...): built once to check it."""
    if not isinstance(value, dict):
        raise ValueError(f"[{field}] must be a table such as {{name = \"relu\"}}, got {value!r}")
    table = {"name": "mmn18", **value}
    make_activation(activation_spec(table), polynomial=True)
    return table


def activation_spec(table: dict[str, Any]) -> Any:
    """The activation specification of a checked ``[activation]`` table (a bare name when it has no
    parameters, so that ``"he4"``-style names resolve)."""
    return table["name"] if set(table) == {"name"} else dict(table)


def _target(field: str, value: Any) -> Any:
    if value is None:
        return None
    make_target(value)
    return value


def _hermite_degree(field: str, value: Any) -> int | None:
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > _PROBE_DEGREE:
        raise ValueError(f"{field} = {value!r} must be \"auto\" or an integer in [0, {_PROBE_DEGREE}] (the largest "
                         "degree whose truncation bound is computed)")
    return int(value)


from reduced_pde.models import register  # noqa: E402  (the registry imports this module lazily)
from reduced_pde.models.base import (  # noqa: E402
    Inputs,
    Key,
    Model,
    Table,
    boolean,
    dimension_value,
    finite,
    non_negative,
    positive,
)

_TARGET_DOC = "target φ: {he = [c0, c1, ...]}, {hermite = [...]}, {name = \"he\", degree = k}, an activation name"
_REDUCTION = {"hermite_degree": Key("auto", _hermite_degree, "Hermite truncation degree, or \"auto\""),
              "truncation_tolerance": Key(1e-6, positive, "bound on the interaction series truncation error")}
_DATA = {"dimension": Key(320, dimension_value(3), "d (integer >= 3) or \"inf\""),
         "target": Key(None, _target, _TARGET_DOC),
         "second_layer": Key(1.0, finite, "a (fixed), or the mean a0 of a at t = 0")}
_ACTIVATION = Table({"name": "mmn18"}, _activation_table, "σ: relu, he<k>, tanh, erf, polynomial, ...")
_NETWORK_RATE = Key(1.0, positive, "velocity factor of the second layer a (per-layer learning rate 1/ε)")


class _IndexModel(Model):
    """Shared by the single-index models: the problem, checks and per-layer rates."""

    #: neurons on the sphere |w| = 1 (else in the ball, with the initial scale κ and alignment s0)
    sphere: bool = False

    def build_problem(self, inputs: Inputs) -> SingleIndexProblem:
        initial, reduction = inputs["initial"], inputs["reduction"]
        ball = {} if self.sphere else {"weight_scale": initial["kappa"], "initial_alignment": initial["alignment"]}
        return SingleIndexProblem(inputs["data"]["target"], activation_spec(inputs["activation"]),
                                  inputs["data"]["dimension"], sphere=self.sphere,
                                  train_second_layer=inputs["network"]["train_second_layer"],
                                  second_layer=inputs["data"]["second_layer"],
                                  second_layer_std=initial["second_layer_std"],
                                  truncation_tolerance=reduction["truncation_tolerance"],
                                  hermite_degree=reduction["hermite_degree"], **ball)

    def check(self, inputs: Inputs) -> None:
        if inputs["data"]["target"] is None:
            raise ValueError(f"data.target is required for data.model = {self.name!r} "
                             "(e.g. {name = \"he\", degree = 2} or {he = [0, 0, 1]})")
        network = inputs["network"]
        if not network["train_second_layer"] and network["second_layer_rate"] != 1.0:
            raise ValueError(f"network.second_layer_rate = {network['second_layer_rate']!r} needs "
                             "network.train_second_layer = true (the second layer is fixed)")

    def rates(self, inputs: Inputs) -> dict[str, float]:
        network = inputs["network"]
        return {"a": network["second_layer_rate"]} if network["train_second_layer"] else {}

    def network(self, inputs: Inputs, dimension: int) -> Any:
        from reduced_pde.models.single_index import SingleIndexNetwork

        data = {**inputs["data"], "dimension": dimension}
        return SingleIndexNetwork(self.build_problem({**inputs, "data": data}))

    def describe(self, inputs: Inputs) -> str:
        return f"{self.name}, d = {inputs['data']['dimension']:g}, σ = {inputs['activation']['name']}"


@register
class SingleIndexModel(_IndexModel):
    """Gaussian single-index data y = φ(⟨θ*, x⟩), neurons a σ(⟨w, x⟩) in the ball: (a, s, r) or (s, r)."""

    name = "single_index"
    summary = "x ~ N(0, I_d), y = φ(⟨θ*, x⟩), neurons a σ(⟨w, x⟩); coordinates (a, s, r) or (s, r)"
    schema = {
        "data": _DATA, "activation": _ACTIVATION,
        "initial": {"kappa": Key(0.4, positive, "w = s0 θ* + N(0, κ²/d I_d)"),
                    "second_layer_std": Key(0.0, non_negative, "a ~ N(a0, σ_a²) at t = 0"),
                    "alignment": Key(0.0, finite, "s0: initial overlap with θ*")},
        "network": {"train_second_layer": Key(True, boolean, "train a (coordinate a)"),
                    "second_layer_rate": _NETWORK_RATE},
        "reduction": _REDUCTION,
    }


@register
class SingleIndexSphereModel(_IndexModel):
    """Single-index data with neurons on the sphere |w| = 1 (projected flow): (a, s) or (s,)."""

    name = "single_index_sphere"
    sphere = True
    summary = "y = φ(⟨θ*, x⟩), neurons a σ(⟨w, x⟩) with |w| = 1 (projected); coordinates (a, s) or (s,)"
    chaos = ("m-neuron gradient flows on the sphere (Gram blocks) and the 1/m prediction; needs a polynomial σ "
             "and network.train_second_layer = false")
    schema = {
        "data": _DATA, "activation": _ACTIVATION,
        "initial": {"second_layer_std": Key(0.0, non_negative, "a ~ N(a0, σ_a²) at t = 0 (w uniform on S^{d−1})")},
        "network": {"train_second_layer": Key(False, boolean, "train a (coordinate a)"),
                    "second_layer_rate": _NETWORK_RATE},
        "reduction": _REDUCTION,
    }

    def default_grid(self, problem: ReducedProblem, inputs: Inputs, cells: int) -> dict[str, dict[str, Any]]:
        """s ∈ [−1, 1] clustered towards s = ±1 (``spacing = "clustered"``: edges ``sin(πu/2)``, u uniform),
        where the mobility 1 − s² vanishes and aligned mass piles up: a uniform axis converges at first
        order there, the clustered one at second order (README, Performance).  a (if trained) as in
        :meth:`Model.default_grid`.  The Scharfetter–Gummel route and the Gibbs fixed point, which need
        equal cells, lay this default out uniform (:func:`reduced_pde.running.pipeline.uniform_line`)."""
        axes = super().default_grid(problem, inputs, cells)
        axes["s"] = {**axes["s"], "spacing": "clustered"}
        return axes
