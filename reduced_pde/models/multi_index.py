"""Multi-index reduction to the invariants (a, s_1, …, s_k, r) (design note §3b, §4).

Data and network
----------------
``x ~ N(0, I_d)``, ``y = φ(z) + ε``, ``z = Θ* x ∈ R^k`` with ``Θ*`` a (k, d) matrix with orthonormal
rows (``Θ* Θ*ᵀ = I_k``, ``1 <= k <= d − 1``; k = 1 is the single-index model of
:mod:`reduced_pde.models.single_index`, which this module reproduces to round-off).  Neurons
``σ*(x; θ) = a σ(⟨w, x⟩)``, θ = (a, w).  Invariants under the rotations that fix the rows of Θ*::

    s = Θ* w ∈ R^k,   r = |w − Θ*ᵀ s| >= 0,   n = |w| = sqrt(|s|² + r²),   ρ = s/n ∈ R^k,  ϱ = r/n,

and ``⟨w, x⟩ = s·z + r g`` with z ~ N(0, I_k), g ~ N(0, 1) independent.  Multi-indices
``i = (i_1, …, i_k)``, ``|i| = Σ i_l``, ``i! = Π i_l!``, ``ρ^i = Π ρ_l^{i_l}``,
``h_i(z) = Π_l h_{i_l}(z_l)`` (orthonormal Hermite tensor basis of L²(N(0, I_k))), and
``φ̂_i = E[φ(z) h_i(z)]`` (:class:`MultiIndexTarget`).  ``α_K(n) = E[σ(nG) h_K(G)]`` are the
normalized Hermite coefficients of σ (:mod:`reduced_pde.activations`).

Potential (multivariate Mehler).  With ``X = ⟨w,x⟩/n = ρ·z + ϱ g`` (a standard normal since
``|ρ|² + ϱ² = 1``), the multinomial expansion of Hermite polynomials of a unit-norm linear combination,
``He_K(ρ·z + ϱg) = Σ_{|i|+j=K} K!/(i! j!) ρ^i ϱ^j He_i(z) He_j(g)``, gives
``E[He_K(X) He_i(z)] = K! ρ^i`` for |i| = K (0 otherwise), hence
``E[σ(nX) h_i(z)] = α_{|i|}(n) sqrt(|i|!/i!) ρ^i`` and::

    v(a, s, r) = −E[y a σ(⟨w,x⟩)] = −a Σ_i φ̂_i α_{|i|}(n) sqrt(|i|!/i!) ρ^i.                      (V)

Interaction.  For two neurons ``γ = ⟨w,w'⟩/(n n') = ρ·ρ' + ϱϱ'c`` with c the cosine between the
orthogonal parts, uniform directions of the (d − k)-dimensional complement of the rows of Θ*:
``E[c^j] = m_j`` = ``cosine_moments(d − k, ·)`` (odd moments 0; c = ±1 at d = k + 1; c = 0 at
d = ∞).  ``U = a a' Σ_K α_K(n) α_K(n') γ^K``; expanding ``γ^K`` multinomially and averaging over c::

    u(x, x') = Σ_K Σ_{j even} Σ_{|i| = K − j} m_j g_Kij(x) g_Kij(x'),
    g_Kij(a, s, r) = a α_K(n) sqrt(K!/(i! j!)) ρ^i ϱ^j.                                          (U)

The weights ``m_j >= 0``, so (U) is a sum of rank-one PSD kernels.  For k = 1 this is the single-index
(U) (``sqrt(K!/(i! j!)) = sqrt(C(K, j))``).  The rank for degrees ``K <= K_max`` and ``j <= J`` is
``Σ_K Σ_{j even <= min(K,J)} C(K − j + k − 1, k − 1)``: at d = ∞ only j = 0, ``C(K_max + k, k)``; for
k = 2 about ``(J/2 + 1) K_max²/2`` when J << K_max and K_max³/12 when J = K_max (polynomial σ).  The
multinomial factorisation is not redundant: at fixed (K, j) the i-sum is ``(ρ·ρ')^{K−j}``, whose rank
is the dimension ``C(K − j + k − 1, k − 1)`` of the homogeneous polynomials of degree K − j in k
variables.

Truncation bound (proof).  The dropped set D (all K > K_max; K <= K_max with j > J) enters with
weights ``m_j >= 0``, so by Cauchy–Schwarz ``|u − u_{K,J}|(x, x') <= b(x) b(x')`` with
``b(x)² = Σ_D m_j g_Kij(x)²``.  Summing first over the multi-indices with |i| = K − j (multinomial
theorem) ``Σ_{|i|=K−j} K!/(i! j!) ρ^{2i} ϱ^{2j} = C(K, j) |ρ|^{2(K−j)} ϱ^{2j}``: the dropped diagonal,
hence the bound, the choice of (K_max, J) and the skipped identically-zero degrees (odd K >= 3 for
ReLU), are *exactly* those of the single-index problem with ρ replaced by |ρ| and the orthogonal
dimension d − 1 replaced by d − k.  They are therefore computed by the single-index
:class:`~reduced_pde.models.single_index.SeriesTruncation` with m = d − k, evaluated at ``(a, |ρ|, ϱ)``
(``truncation``; its proof is in the single-index module docstring).  For polynomial σ
the series terminates (bound 0).  The truncation's target has the degree-block norms
``‖φ̂_K‖ = (Σ_{|i|=K} φ̂_i²)^{1/2}`` as coefficients: by Cauchy–Schwarz in each block,
``|Σ_{|i|=K} φ̂_i sqrt(K!/i!) ρ^i| <= ‖φ̂_K‖ |ρ|^K``, so the potential truncated at degree P obeys
``|v − v_P| <= |a| |ρ|^{P+1} sqrt(T^φ_P T_P(n))`` (``T^φ_P = Σ_{|i|>P} φ̂_i²``,
``T_P(n) = E σ(nG)² − Σ_{K<=P} α_K(n)²``) and P is chosen as in the single-index problem
(:meth:`MultiIndexProblem.potential_degree`, :meth:`MultiIndexProblem.potential_truncation_bound`),
capped at the projection degree of a callable target.

Gradients.  With ``f = C α_K(n) ρ^i ϱ^j`` (C = sqrt(K!/(i! j!))), ``∂n/∂s_l = ρ_l``, ``∂n/∂r = ϱ``::

    ∂f/∂s_l = C [α_K'(n) ρ_l ρ^i ϱ^j + (α_K(n)/n) (i_l ρ^{i−e_l} ϱ^j − K ρ_l ρ^i ϱ^j)],
    ∂f/∂r   = C [α_K'(n) ϱ ρ^i ϱ^j   + (α_K(n)/n) (j ρ^i ϱ^{j−1}   − K ϱ ρ^i ϱ^j)].

At n = 0 the coordinates are evaluated in the limit s = 0, r → 0+ (ρ = 0, ϱ = 1,
``α_K(n)/n → α_K'(0)``), as in the single-index module.  ``∂_a`` of ``a f`` is f.

Conventions for solvers (as :class:`~reduced_pde.models.single_index.SingleIndexProblem`)
------------------------------------------------------------------------------------
Coordinates, in this order: ``("a", "s1", …, "sk", "r")`` (trained second layer) or
``("s1", …, "sk", "r")`` (a fixed to ``second_layer``).  ``points`` (M, dim); ``reduced_potential``
→ (M,), ``reduced_potential_gradient`` → (M, dim), ``interaction_low_rank`` → weights (R,), features
(R, M), ``interaction_features_gradient`` → (R, M, dim).  The reduced density p (w.r.t. Lebesgue
measure ``da ds_1 … ds_k dr``) evolves by ``∂_t p = 2ξ ∇·(p ∇ψ)`` without Jacobian factors
(``∇_w Ψ = Θ*ᵀ ∇_s ψ + ∂_r ψ e_⊥``); mobility ones; zero flux at r = 0.  ``theta_star`` is always a
(k, d) array.  Only the ball is implemented: neurons on the sphere |w| = 1 with s ∈ R^k (k >= 2) have
the non-diagonal mobility ``I_k − s sᵀ`` for the projected gradient flow, which the diagonal-mobility
solvers cannot represent (``sphere=True`` is refused).

Initial law: :class:`MultiIndexInitialLaw` — product law ``a ~ N(a0, σ_a²)`` (or the point a0),
``s_l ~ N(s0_l, κ²/d)`` iid, ``r = κ sqrt(χ²_{d−k}/d)`` (point mass (s0, κ) at d = ∞), i.e. the
invariants of ``w = Θ*ᵀ s0 + N(0, κ²/d I_d)``.

Finite networks: :class:`MultiIndexNetwork` (Θ* = the first k basis vectors) and
:meth:`MultiIndexProblem.network_risk`, ``R_N = E y² + (2/N) Σ_i v(θ_i) + E f²`` where
``E f² = E[((1/N) Σ_i a_i σ(⟨w_i, x⟩))²]`` depends on the weights only — both shared with the
single-index model (:mod:`reduced_pde.models.finite_network`).

Feature evaluation is one compiled (numba) pass over rows × points with per-point power tables.
"""

from __future__ import annotations

import math
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit
from scipy import stats
from scipy.special import gammaln

from reduced_pde.activations import make_activation
from reduced_pde.hermite import cosine_moments, gauss_hermite_rule, normalized_hermite
from reduced_pde.hermite_structure import ActivationSpectrum, HermiteStructure, TargetSpectrum
from reduced_pde.models.finite_network import IndexNetwork, index_network_risk
from reduced_pde.problem import LowRankKernel, ReducedProblem
from reduced_pde.models.single_index import (
    SeriesTruncation,
    SingleIndexInitialLaw,
    _Marginal,
    ball_geometry,
    check_network_parameters,
    gaussian_second_moment,
)
from reduced_pde.targets import SingleIndexTarget

__all__ = [
    "MultiIndexCallableTarget",
    "MultiIndexHermiteTarget",
    "MultiIndexInitialLaw",
    "MultiIndexNetwork",
    "MultiIndexProblem",
    "MultiIndexTarget",
    "make_multi_index_target",
]

#: largest tensor Gauss–Hermite rule (points) used to project a callable target
MAX_QUADRATURE_POINTS = 4_000_000
_DEFAULT_MAX_DEGREE = 96
_ORTHONORMAL_TOLERANCE = 1e-10


def _compositions(total: int, parts: int) -> list[tuple[int, ...]]:
    """All ``i ∈ N^parts`` with ``|i| = total``, ordered by decreasing i_1, then i_2, …
    (for parts = 1 the single index (total,))."""
    if parts == 1:
        return [(total,)]
    return [(first,) + rest for first in range(total, -1, -1) for rest in _compositions(total - first, parts - 1)]


def _log_multinomial(order: np.ndarray, multi: np.ndarray, binomial: np.ndarray) -> np.ndarray:
    """``log(K!/(i! j!))`` for rows (K, i, j)."""
    return (gammaln(order + 1.0) - np.sum(gammaln(multi + 1.0), axis=1) - gammaln(binomial + 1.0))


# --------------------------------------------------------------------------------------------
# Targets y = φ(Θ* x) + ε
# --------------------------------------------------------------------------------------------


def _check_noise(noise_variance: Any) -> float:
    try:
        value = float(noise_variance)
    except (TypeError, ValueError):
        value = float("nan")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"target.noise_variance = {noise_variance!r} must be finite and >= 0")
    return value


def _check_index_dimension(index_dimension: Any) -> int:
    if isinstance(index_dimension, bool) or not isinstance(index_dimension, (int, np.integer)) \
            or index_dimension < 1:
        raise ValueError(f"data.index_dimension = {index_dimension!r} must be an integer >= 1 "
                         "(the number k of target directions)")
    return int(index_dimension)


class MultiIndexTarget(ABC):
    """``y = φ(z) + ε``, z ∈ R^k, in the orthonormal tensor Hermite basis ``h_i(z) = Π_l h_{i_l}(z_l)``.

    Provides ``indices`` (P, k) and ``values`` (P,) with ``φ̂_i = E[φ(z) h_i(z)]`` (the non-zero
    resolved coefficients), ``second_moment = E φ²``, ``tail(P) = Σ_{|i|>P} φ̂_i²`` (>= 0; it bounds
    every truncated series in which φ enters), ``block_norms(P)`` = ``‖φ̂_K‖`` for K = 0..P,
    ``exact_degree`` (the total degree if φ is a polynomial, else None), ``resolved_degree`` (highest
    |i| whose coefficients are known) and the label noise variance τ² (``E y² = E φ² + τ²``)."""

    name: str
    noise_variance: float
    index_dimension: int

    @abstractmethod
    def __call__(self, z: np.ndarray) -> np.ndarray:
        """``φ(z)`` for z of shape (B, k) → (B,)."""

    @property
    @abstractmethod
    def indices(self) -> np.ndarray:
        """Multi-indices (P, k) of the known coefficients."""

    @property
    @abstractmethod
    def values(self) -> np.ndarray:
        """``φ̂_i`` (P,) for :attr:`indices`."""

    @property
    @abstractmethod
    def second_moment(self) -> float:
        """``E[φ(z)²]``."""

    @property
    @abstractmethod
    def resolved_degree(self) -> int:
        """Highest total degree |i| up to which all coefficients are known."""

    @abstractmethod
    def config(self) -> dict[str, Any]: ...

    @property
    def exact_degree(self) -> int | None:
        return None

    @property
    def label_second_moment(self) -> float:
        """``E[y²] = E[φ²] + τ²``."""
        return self.second_moment + self.noise_variance

    def block_norms(self, degree: int) -> np.ndarray:
        """``‖φ̂_K‖ = (Σ_{|i|=K} φ̂_i²)^{1/2}`` for K = 0..degree (0 beyond the resolved degree)."""
        out = np.zeros(degree + 1)
        orders = self.indices.sum(axis=1)
        keep = orders <= degree
        np.add.at(out, orders[keep], self.values[keep] ** 2)
        return np.sqrt(out)

    def tail(self, degree: int) -> float:
        """``Σ_{|i| > degree} φ̂_i² = E φ² − Σ_{|i| <= degree} φ̂_i²`` (clipped at 0 against round-off)."""
        if self.exact_degree is not None and degree >= self.exact_degree:
            return 0.0
        kept = self.values[self.indices.sum(axis=1) <= degree]
        return max(self.second_moment - float(np.sum(kept**2)), 0.0)

    def _check_points(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=float)
        if z.ndim != 2 or z.shape[1] != self.index_dimension:
            raise ValueError(f"target: projections z have shape {np.shape(z)}; expected (B, "
                             f"{self.index_dimension}) (z = x Θ*ᵀ)")
        return z

    def sample_labels(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``y = φ(z) + ε`` with Gaussian ε of variance τ², shape (B,)."""
        z = self._check_points(z)
        y = self(z)
        if self.noise_variance > 0:
            y = y + math.sqrt(self.noise_variance) * rng.standard_normal(z.shape[0])
        return y


@dataclass(frozen=True)
class MultiIndexHermiteTarget(MultiIndexTarget):
    """``φ = Σ_i φ̂_i h_i`` with finitely many normalized coefficients (exact: every series terminates)."""

    coefficients: tuple[tuple[tuple[int, ...], float], ...]
    index_dimension: int
    noise_variance: float = 0.0
    name: str = field(default="hermite", compare=False)

    def __post_init__(self) -> None:
        k = _check_index_dimension(self.index_dimension)
        object.__setattr__(self, "noise_variance", _check_noise(self.noise_variance))
        merged = {}
        for index, value in self.coefficients:
            index = tuple(int(i) for i in index)
            if len(index) != k or min(index) < 0:
                raise ValueError(f"target.hermite: index {index} must have {k} entries >= 0")
            if index in merged:
                raise ValueError(f"target.hermite: index {index} appears twice")
            if not math.isfinite(float(value)):
                raise ValueError(f"target.hermite[{index}] = {value!r} must be finite")
            merged[index] = float(value)
        kept = tuple((i, c) for i, c in sorted(merged.items(), key=lambda item: (sum(item[0]), item[0]))
                     if c != 0.0)
        object.__setattr__(self, "coefficients", kept)

    @classmethod
    def from_he(cls, coefficients: dict[tuple[int, ...], float], index_dimension: int,
                noise_variance: float = 0.0) -> MultiIndexHermiteTarget:
        """``φ = Σ_i c_i Π_l He_{i_l}(z_l)`` (probabilists' basis): ``φ̂_i = c_i sqrt(i!)``."""
        pairs = tuple((tuple(i), float(c) * math.sqrt(math.prod(math.factorial(int(m)) for m in i)))
                      for i, c in coefficients.items())
        return cls(pairs, index_dimension, noise_variance, name="he")

    @property
    def indices(self) -> np.ndarray:
        return np.array([i for i, _ in self.coefficients], dtype=np.int64).reshape(-1, self.index_dimension)

    @property
    def values(self) -> np.ndarray:
        return np.array([c for _, c in self.coefficients], dtype=float)

    @property
    def second_moment(self) -> float:
        return float(np.sum(self.values**2))

    @property
    def exact_degree(self) -> int:
        return int(self.indices.sum(axis=1).max()) if self.coefficients else 0

    @property
    def resolved_degree(self) -> int:
        return self.exact_degree

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = self._check_points(z)
        out = np.zeros(z.shape[0])
        if not self.coefficients:
            return out
        top = self.indices.max(axis=0)
        bases = [normalized_hermite(z[:, l], int(top[l])) for l in range(self.index_dimension)]
        for index, value in self.coefficients:
            term = np.full(z.shape[0], value)
            for l, i in enumerate(index):
                term *= bases[l][i]
            out += term
        return out

    def config(self) -> dict[str, Any]:
        return {"kind": "hermite", "hermite": [[list(i), c] for i, c in self.coefficients],
                "index_dimension": self.index_dimension, "noise_variance": self.noise_variance}


@dataclass(frozen=True)
class MultiIndexCallableTarget(MultiIndexTarget):
    """``φ`` given by a vectorised callable ``φ(z)``, z (B, k) → (B,), projected on ``h_i``, |i| <= degree,
    by the tensor Gauss–Hermite rule with ``quadrature_order`` nodes per axis (default
    ``2·degree + 20``; exact for polynomial φ of degree <= 2·order − 1 − degree per axis).

    ``E φ²`` uses the same rule, so the reported ``projection_tail = E φ² − Σ_{|i|<=degree} φ̂_i²``
    is >= 0 exactly (discrete Bessel inequality: the h_i with |i| <= degree < order are orthonormal for
    the rule); it is the part of φ the expansion leaves out, and enters every truncation bound through
    :meth:`tail`.  Accurate for smooth φ (spectral convergence in the order); kinks converge
    algebraically."""

    function: Callable[[np.ndarray], np.ndarray]
    index_dimension: int
    degree: int = 16
    quadrature_order: int | None = None
    noise_variance: float = 0.0
    name: str = "callable"
    _projection: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise ValueError(f"target.function = {self.function!r} is not callable")  # noqa: TRY004
        k = _check_index_dimension(self.index_dimension)
        object.__setattr__(self, "noise_variance", _check_noise(self.noise_variance))
        if isinstance(self.degree, bool) or not isinstance(self.degree, (int, np.integer)) or self.degree < 0:
            raise ValueError(f"target.degree = {self.degree!r} must be an integer >= 0 (the projection degree)")
        order = 2 * int(self.degree) + 20 if self.quadrature_order is None else self.quadrature_order
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order <= self.degree:
            raise ValueError(f"target.quadrature_order = {self.quadrature_order!r} must be an integer > "
                             f"target.degree = {self.degree}")
        if float(order) ** k > MAX_QUADRATURE_POINTS:
            raise ValueError(f"target.quadrature_order = {order} in k = {k} dimensions needs {order}^{k} "
                             f"points, more than {MAX_QUADRATURE_POINTS:.0e}; lower target.degree or "
                             "target.quadrature_order")
        object.__setattr__(self, "quadrature_order", int(order))
        self._project()

    def _project(self) -> None:
        k, order, degree = self.index_dimension, int(self.quadrature_order), int(self.degree)
        nodes, weights = gauss_hermite_rule(order)
        grid = np.stack(np.meshgrid(*([nodes] * k), indexing="ij"), axis=-1).reshape(-1, k)
        values = np.asarray(self.function(grid), dtype=float)
        if values.shape != (grid.shape[0],) or not np.all(np.isfinite(values)):
            raise ValueError(f"target.function returned shape {values.shape} (finite: "
                             f"{bool(np.all(np.isfinite(values)))}) for z of shape {grid.shape}; expected "
                             f"finite values of shape ({grid.shape[0]},)")
        mass = weights
        for _ in range(k - 1):
            mass = np.multiply.outer(mass, weights)
        weighted = values.reshape((order,) * k) * mass
        basis = normalized_hermite(nodes, degree)  # (P+1, order)
        coefficient_tensor = weighted
        for _ in range(k):  # contract axis 0 with the basis; the new axis goes last
            coefficient_tensor = np.tensordot(coefficient_tensor, basis, axes=([0], [1]))
        indices = np.array([i for total in range(degree + 1) for i in _compositions(total, k)],
                           dtype=np.int64).reshape(-1, k)
        coefficients = coefficient_tensor[tuple(indices.T)]
        second = float(np.sum(mass * values.reshape((order,) * k) ** 2))
        self._projection.update(indices=indices, values=coefficients, second_moment=second,
                                projection_tail=max(second - float(np.sum(coefficients**2)), 0.0))

    @property
    def indices(self) -> np.ndarray:
        return self._projection["indices"]

    @property
    def values(self) -> np.ndarray:
        return self._projection["values"]

    @property
    def second_moment(self) -> float:
        return self._projection["second_moment"]

    @property
    def projection_tail(self) -> float:
        """``E φ² − Σ_{|i| <= degree} φ̂_i²`` under the tensor rule (module docstring of the class)."""
        return self._projection["projection_tail"]

    @property
    def resolved_degree(self) -> int:
        return int(self.degree)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = self._check_points(z)
        return np.asarray(self.function(z), dtype=float)

    def config(self) -> dict[str, Any]:
        return {"kind": "callable", "name": self.name, "index_dimension": self.index_dimension,
                "degree": int(self.degree), "quadrature_order": int(self.quadrature_order),
                "projection_tail": self.projection_tail, "noise_variance": self.noise_variance}


_TARGET_FORMS = ("{'hermite': {(i1, ..., ik): coefficient}} (normalized basis h_i)",
                 "{'he': {...}} (probabilists' basis Π He_{i_l})",
                 "keys as tuples, lists or strings '1,1', or a list of [index, coefficient] pairs",
                 "{'function': f, 'degree': P, 'quadrature_order': q}", "a callable f(z) with z (B, k)",
                 "a MultiIndexTarget")


def _parse_index(raw: Any, field_name: str) -> tuple[int, ...]:
    if isinstance(raw, str):
        parts = [p for p in re.split(r"[,\s]+", raw.strip().strip("()[]")) if p]
        if not parts or not all(re.fullmatch(r"\d+", p) for p in parts):
            raise ValueError(f"target.{field_name}: index {raw!r} must be integers >= 0 like '1,1'")
        return tuple(int(p) for p in parts)
    if isinstance(raw, (int, np.integer)) and not isinstance(raw, bool):
        raw = (raw,)
    if not isinstance(raw, (tuple, list)) or not raw or not all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in raw):
        raise ValueError(f"target.{field_name}: index {raw!r} must be a tuple of integers >= 0")
    return tuple(int(i) for i in raw)


def _parse_coefficients(values: Any, field_name: str, index_dimension: int | None
                        ) -> tuple[list[tuple[tuple[int, ...], float]], int]:
    """``{index: c}`` or ``[[index, c], ...]`` → list of (index tuple, float) and k."""
    if isinstance(values, dict):
        items = list(values.items())
    elif isinstance(values, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in values):
        items = [tuple(p) for p in values]
    else:
        raise ValueError(f"target.{field_name} = {values!r} must be a dict {{(i1, ..., ik): coefficient}} or "
                         "a list of [index, coefficient] pairs")
    if not items:
        raise ValueError(f"target.{field_name} = {values!r} must have at least one coefficient")
    pairs = []
    for raw, coefficient in items:
        index = _parse_index(raw, field_name)
        try:
            value = float(coefficient)
        except (TypeError, ValueError):
            value = float("nan")
        if not math.isfinite(value):
            raise ValueError(f"target.{field_name}[{raw!r}] = {coefficient!r} must be a finite number")
        if any(index == known for known, _ in pairs):
            raise ValueError(f"target.{field_name}: index {index} appears twice")
        pairs.append((index, value))
    lengths = {len(i) for i, _ in pairs}
    k = index_dimension if index_dimension is not None else (lengths.pop() if len(lengths) == 1 else None)
    if k is None or any(len(i) != k for i, _ in pairs):
        raise ValueError(f"target.{field_name}: indices {[i for i, _ in pairs]} must all have "
                         f"{'the same number of' if index_dimension is None else index_dimension} entries "
                         "(one per target direction)")
    return pairs, k


def make_multi_index_target(spec: Any, index_dimension: int | None = None,
                            noise_variance: float | None = None) -> MultiIndexTarget:
    """Build a multi-index target (forms: :data:`_TARGET_FORMS`).  ``index_dimension`` k is inferred
    from the indices when not given (it is required for callables).  Every dict may carry
    ``noise_variance`` (default 0); the argument ``noise_variance`` overrides it."""
    if index_dimension is not None:
        index_dimension = _check_index_dimension(index_dimension)
    if isinstance(spec, MultiIndexTarget):
        if index_dimension is not None and spec.index_dimension != index_dimension:
            raise ValueError(f"target has index_dimension = {spec.index_dimension}, but data.index_dimension "
                             f"= {index_dimension}")
        if noise_variance is not None and float(noise_variance) != spec.noise_variance:
            raise ValueError("target: pass noise_variance when building the target, not with an instance")
        return spec
    noise = 0.0 if noise_variance is None else noise_variance
    if callable(spec):
        if index_dimension is None:
            raise ValueError("target: a callable target needs index_dimension (k, the number of columns of z)")
        return MultiIndexCallableTarget(spec, index_dimension, noise_variance=noise)
    if not isinstance(spec, dict):
        raise ValueError(f"target = {spec!r} is not a multi-index target specification; allowed: "  # noqa: TRY004
                         + "; ".join(_TARGET_FORMS))
    params = dict(spec)
    noise = params.pop("noise_variance", 0.0)
    if noise_variance is not None:
        noise = noise_variance
    kind = params.pop("kind", None)
    declared = params.pop("index_dimension", None)
    if declared is not None:
        declared = _check_index_dimension(declared)
        if index_dimension is not None and declared != index_dimension:
            raise ValueError(f"target.index_dimension = {declared} differs from data.index_dimension = "
                             f"{index_dimension}")
        index_dimension = declared
    if "function" in params:
        unknown = set(params) - {"function", "degree", "quadrature_order", "name", "projection_tail"}
        if unknown or kind not in (None, "callable"):
            raise ValueError(f"target: unknown field(s) {sorted(unknown)} (kind = {kind!r}) next to 'function'; "
                             "allowed: degree, quadrature_order, name, noise_variance, index_dimension")
        if index_dimension is None:
            raise ValueError("target: a callable target needs index_dimension (k, the number of columns of z)")
        return MultiIndexCallableTarget(params["function"], index_dimension, params.get("degree", 16),
                                        params.get("quadrature_order"), noise, params.get("name", "callable"))
    keys = [key for key in ("hermite", "he") if key in params]
    if len(keys) != 1:
        raise ValueError(f"target: fields {sorted(spec)} must contain exactly one of 'hermite', 'he' or "
                         "'function'; allowed forms: " + "; ".join(_TARGET_FORMS))
    key = keys[0]
    unknown = set(params) - {key}
    if unknown or kind not in (None, key):
        raise ValueError(f"target: unknown field(s) {sorted(unknown)} (kind = {kind!r}) next to {key!r}; "
                         "allowed: noise_variance, index_dimension")
    pairs, k = _parse_coefficients(params[key], key, index_dimension)
    if key == "he":
        return MultiIndexHermiteTarget.from_he(dict(pairs), k, _check_noise(noise))
    return MultiIndexHermiteTarget(tuple(pairs), k, noise)


class _BlockNormTarget(SingleIndexTarget):
    """The truncation's target: coefficients ``‖φ̂_K‖`` (module docstring).  Only its coefficients,
    second moment, tails and exact degree are used (degree selection and bounds); never evaluated."""

    name = "block_norms"
    noise_variance = 0.0

    def __init__(self, target: MultiIndexTarget) -> None:
        self.target = target

    def __call__(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError("the block-norm target of the truncation is not a function of z")

    def coefficients(self, degree: int) -> np.ndarray:
        return self.target.block_norms(degree)

    @property
    def second_moment(self) -> float:
        return self.target.second_moment

    @property
    def exact_degree(self) -> int | None:
        return self.target.exact_degree

    def tail(self, degree: int) -> float:
        return self.target.tail(degree)

    def config(self) -> dict[str, Any]:
        return {"kind": "block_norms"}


# --------------------------------------------------------------------------------------------
# Initial law
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiIndexInitialLaw(SingleIndexInitialLaw):
    """Product law of the invariants at t = 0 for ``w = Θ*ᵀ s0 + g``, ``g ~ N(0, κ²/d I_d)``:

    * ``a ~ N(a0, σ_a²)`` (point mass at a0 if σ_a = 0); absent when the second layer is fixed;
    * ``s_l ~ N(s0_l, κ²/d)`` iid, l = 1..k;
    * ``r = |P⊥ g| = κ sqrt(χ²_{d−k}/d)``, independent of s;
    * at d = ∞ the point mass (s, r) = (s0, κ).

    ``cell_masses(edges)`` (one edge array per coordinate), ``quantile(u)`` and ``sample_reduced`` are
    those of :class:`~reduced_pde.models.single_index.SingleIndexInitialLaw`; ``sample_network`` draws the
    full-dimensional (a, W)."""

    index_dimension: int = 2
    alignment: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        d, k = self.dimension, self.index_dimension
        finite = not math.isinf(d)
        alignment = tuple(self.alignment) if self.alignment else (0.0,) * k
        object.__setattr__(self, "alignment", alignment)
        out = []
        for name in self.coordinate_names:
            if name == "a":
                out.append(_Marginal("a", stats.norm(self.second_layer, self.second_layer_std))
                           if self.second_layer_std > 0 else _Marginal("a", None, self.second_layer))
            elif name == "r":
                out.append(_Marginal("r", stats.chi(d - k, scale=self.weight_scale / math.sqrt(d)))
                           if finite else _Marginal("r", None, self.weight_scale))
            else:
                s0 = alignment[int(name[1:]) - 1]
                out.append(_Marginal(name, stats.norm(s0, self.weight_scale / math.sqrt(d))) if finite
                           else _Marginal(name, None, s0))
        object.__setattr__(self, "marginals", tuple(out))

    def mean_weight(self, theta_star: np.ndarray | None, d: int) -> np.ndarray:
        """``E[w] = Θ*ᵀ s0`` (Θ* of shape (k, d)); zero when s0 = 0 (Θ* then only fixes the frame).
        ``sample_network`` (inherited) draws ``w = E[w] + N(0, κ²/d I_d)`` and a."""
        if theta_star is not None and np.shape(theta_star) != (self.index_dimension, d):
            raise ValueError(f"theta_star has shape {np.shape(theta_star)}, expected ({self.index_dimension}, {d})")
        if all(s == 0.0 for s in self.alignment):
            return np.zeros(d)
        if theta_star is None:
            raise ValueError("initial law: initial_alignment != 0 needs theta_star (k, d) to place the weights")
        return np.asarray(self.alignment) @ np.asarray(theta_star, dtype=float)

    def config(self) -> dict[str, Any]:
        return {"law": "multi_index_product", "dimension": self.dimension,
                "index_dimension": self.index_dimension, "weight_scale": self.weight_scale,
                "second_layer": self.second_layer, "second_layer_std": self.second_layer_std,
                "alignment": list(self.alignment)}


# --------------------------------------------------------------------------------------------
# Compiled feature kernels
# --------------------------------------------------------------------------------------------

_TABLE_POINTS = 256


@njit(cache=True)
def _fill_powers(rho: np.ndarray, vrho: np.ndarray, start: int, width: int, table: np.ndarray) -> None:
    """``table[l, e, m] = ρ_l^e`` (l < k) and ``table[k, e, m] = ϱ^e`` for points start..start+width."""
    k = rho.shape[1]
    top = table.shape[1] - 1
    for l in range(k + 1):
        for m in range(width):
            table[l, 0, m] = 1.0
        for e in range(1, top + 1):
            for m in range(width):
                x = rho[start + m, l] if l < k else vrho[start + m]
                table[l, e, m] = table[l, e - 1, m] * x


@njit(cache=True)
def _monomial(row: int, width: int, table: np.ndarray, multi: np.ndarray, skip: int, product: np.ndarray
              ) -> None:
    """``product[m] = Π_{l != skip} ρ_l^{i_l}`` (skip = −1: all l) for one row over a chunk."""
    for m in range(width):
        product[m] = 1.0
    for l in range(multi.shape[1]):
        if l != skip:
            exponent = multi[row, l]
            for m in range(width):
                product[m] *= table[l, exponent, m]


@njit(cache=True)
def _features_kernel(alpha: np.ndarray, rho: np.ndarray, vrho: np.ndarray, scale: np.ndarray,
                     orders: np.ndarray, multi: np.ndarray, binomial: np.ndarray, coefficient: np.ndarray,
                     out: np.ndarray, offset: int) -> None:
    """``out[row, offset + m] = scale_m C α_K(n_m) ρ_m^i ϱ_m^j`` for rows (K, i, j, C)."""
    n_points, k = rho.shape
    top = alpha.shape[0] - 1
    table = np.empty((k + 1, top + 1, _TABLE_POINTS))
    product = np.empty(_TABLE_POINTS)
    for start in range(0, n_points, _TABLE_POINTS):
        width = min(_TABLE_POINTS, n_points - start)
        _fill_powers(rho, vrho, start, width, table)
        for row in range(orders.shape[0]):
            _monomial(row, width, table, multi, -1, product)
            order, j, c = orders[row], binomial[row], coefficient[row]
            for m in range(width):
                out[row, offset + start + m] = (scale[start + m] * c * alpha[order, start + m]
                                                * table[k, j, m] * product[m])


@njit(cache=True)
def _row_gradient(row: int, start: int, width: int, table: np.ndarray, rho: np.ndarray, vrho: np.ndarray,
                  alpha: np.ndarray, d_alpha: np.ndarray, ratio: np.ndarray, scale: np.ndarray,
                  with_scale: bool, orders: np.ndarray, multi: np.ndarray, binomial: np.ndarray,
                  coefficient: np.ndarray, product: np.ndarray, work: np.ndarray, result: np.ndarray) -> None:
    """``result[:, m] = (f [if with_scale], a ∂f/∂s_1, …, a ∂f/∂s_k, a ∂f/∂r)`` of one row over a chunk
    of points (formulas of the module docstring); ``product``, ``work``: work arrays (width,)."""
    k = rho.shape[1]
    order, j, c = orders[row], binomial[row], coefficient[row]
    _monomial(row, width, table, multi, -1, product)  # ρ^i
    column = 1 if with_scale else 0
    if with_scale:
        for m in range(width):
            result[0, m] = c * alpha[order, start + m] * product[m] * table[k, j, m]
    for l in range(k + 1):
        exponent = multi[row, l] if l < k else j
        if exponent > 0:  # ρ^{i − e_l} ϱ^j  or  ρ^i ϱ^{j − 1}
            if l < k:
                _monomial(row, width, table, multi, l, work)
                for m in range(width):
                    work[m] *= table[l, exponent - 1, m] * table[k, j, m]
            else:
                for m in range(width):
                    work[m] = product[m] * table[k, j - 1, m]
        for m in range(width):
            point = start + m
            mono = product[m] * table[k, j, m]
            direction = rho[point, l] if l < k else vrho[point]
            lowered = exponent * work[m] if exponent > 0 else 0.0
            result[column + l, m] = scale[point] * c * (
                d_alpha[order, point] * direction * mono + ratio[order, point] * (lowered - order * direction * mono))


@njit(cache=True)
def _gradient_work_arrays(k: int, top: int, columns: int
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Work arrays of the gradient kernels for one chunk of points: the power table (k+1, top+1, P),
    ``product`` and ``work`` (P,), ``result`` (columns, P), P = _TABLE_POINTS."""
    return (np.empty((k + 1, top + 1, _TABLE_POINTS)), np.empty(_TABLE_POINTS), np.empty(_TABLE_POINTS),
            np.empty((columns, _TABLE_POINTS)))


@njit(cache=True)
def _gradient_kernel(alpha: np.ndarray, d_alpha: np.ndarray, ratio: np.ndarray, rho: np.ndarray,
                     vrho: np.ndarray, scale: np.ndarray, with_scale: bool, orders: np.ndarray,
                     multi: np.ndarray, binomial: np.ndarray, coefficient: np.ndarray, out: np.ndarray,
                     offset: int) -> None:
    """``out[row, offset + m, :]`` = the gradient of row at point m (see :func:`_row_gradient`)."""
    n_points, k = rho.shape
    table, product, work, result = _gradient_work_arrays(k, alpha.shape[0] - 1, out.shape[2])
    for start in range(0, n_points, _TABLE_POINTS):
        width = min(_TABLE_POINTS, n_points - start)
        _fill_powers(rho, vrho, start, width, table)
        for row in range(orders.shape[0]):
            _row_gradient(row, start, width, table, rho, vrho, alpha, d_alpha, ratio, scale, with_scale,
                          orders, multi, binomial, coefficient, product, work, result)
            for m in range(width):
                for col in range(result.shape[0]):
                    out[row, offset + start + m, col] = result[col, m]


@njit(cache=True)
def _contracted_gradient_kernel(alpha: np.ndarray, d_alpha: np.ndarray, ratio: np.ndarray, rho: np.ndarray,
                                vrho: np.ndarray, scale: np.ndarray, with_scale: bool, orders: np.ndarray,
                                multi: np.ndarray, binomial: np.ndarray, coefficient: np.ndarray,
                                row_weights: np.ndarray, out: np.ndarray, offset: int) -> None:
    """``out[offset + m, :] += Σ_row row_weights[row] ∇(row)(x_m)`` without storing (R, M, dim)."""
    n_points, k = rho.shape
    table, product, work, result = _gradient_work_arrays(k, alpha.shape[0] - 1, out.shape[1])
    total = np.empty((out.shape[1], _TABLE_POINTS))
    for start in range(0, n_points, _TABLE_POINTS):
        width = min(_TABLE_POINTS, n_points - start)
        _fill_powers(rho, vrho, start, width, table)
        total[:, :] = 0.0
        for row in range(orders.shape[0]):
            weight = row_weights[row]
            if weight == 0.0:
                continue
            _row_gradient(row, start, width, table, rho, vrho, alpha, d_alpha, ratio, scale, with_scale,
                          orders, multi, binomial, coefficient, product, work, result)
            for col in range(result.shape[0]):
                for m in range(width):
                    total[col, m] += weight * result[col, m]
        for m in range(width):
            for col in range(total.shape[0]):
                out[offset + start + m, col] += total[col, m]


@dataclass(frozen=True)
class _Rows:
    """Rows (K, i, j) of a feature family with ``C = sqrt(K!/(i! j!))``."""

    orders: np.ndarray  # (R,) int64
    multi: np.ndarray  # (R, k) int64
    binomial: np.ndarray  # (R,) int64
    coefficient: np.ndarray  # (R,)

    @classmethod
    def build(cls, orders: np.ndarray, multi: np.ndarray, binomial: np.ndarray) -> _Rows:
        orders = np.ascontiguousarray(orders, dtype=np.int64)
        multi = np.ascontiguousarray(multi, dtype=np.int64)
        binomial = np.ascontiguousarray(binomial, dtype=np.int64)
        coefficient = np.exp(0.5 * _log_multinomial(orders.astype(float), multi.astype(float),
                                                    binomial.astype(float)))
        return cls(orders, multi, binomial, np.ascontiguousarray(coefficient))

    @property
    def size(self) -> int:
        return int(self.orders.size)

    @property
    def top(self) -> int:
        return int(self.orders.max()) if self.orders.size else 0


# --------------------------------------------------------------------------------------------
# The reduction
# --------------------------------------------------------------------------------------------


def _check_dimension(dimension: Any, index_dimension: int) -> float:
    try:
        d = float(dimension)
    except (TypeError, ValueError):
        d = float("nan")
    if not (math.isinf(d) and d > 0) and not (math.isfinite(d) and d == int(d) and d >= index_dimension + 1):
        raise ValueError(f"data.dimension = {dimension!r} must be an integer >= index_dimension + 1 = "
                         f"{index_dimension + 1} (the complement of the k = {index_dimension} target "
                         "directions must be non-trivial) or inf")
    return d


class MultiIndexProblem(ReducedProblem):
    """The multi-index reduction (module docstring) at finite d or d = ∞, in the ball, with a trained
    (coordinate a) or fixed (``second_layer``) second layer.

    Parameters as :class:`~reduced_pde.models.single_index.SingleIndexProblem` (checked by the same code), plus
    ``index_dimension`` k (inferred from a Hermite target when None) and ``initial_alignment`` s0
    (a scalar, broadcast to all k components, or a length-k sequence)."""

    def __init__(self, target: Any, activation: Any, dimension: Any, *, index_dimension: int | None = None,
                 train_second_layer: bool = True, second_layer: float = 1.0, second_layer_std: float = 0.0,
                 weight_scale: float = 1.0, initial_alignment: Any = 0.0, truncation_tolerance: float = 1e-6,
                 scale_bound: float | None = None, max_degree: int = _DEFAULT_MAX_DEGREE,
                 hermite_degree: int | None = None, binomial_degree: int | None = None,
                 noise_variance: float | None = None, sphere: bool = False) -> None:
        if sphere:
            raise ValueError("sphere = True is not available for the multi-index model: on |w| = 1 with "
                             "s ∈ R^k (k >= 2) the projected gradient flow has the non-diagonal mobility "
                             "I_k − s sᵀ; use the ball (sphere = False)")
        self.target = make_multi_index_target(target, index_dimension, noise_variance)
        self.index_dimension = self.target.index_dimension
        k = self.index_dimension
        self.dimension = _check_dimension(dimension, k)
        self.activation = make_activation(activation, polynomial=True)
        alignment = np.broadcast_to(np.asarray(initial_alignment, dtype=float), (k,)) \
            if np.ndim(initial_alignment) == 0 else np.asarray(initial_alignment, dtype=float)
        if alignment.shape != (k,) or not np.all(np.isfinite(alignment)):
            raise ValueError(f"initial.alignment = {initial_alignment!r} must be a finite number or a list of "
                             f"k = {k} finite numbers (s0 = Θ* E[w] at t = 0)")
        self.initial_alignment = tuple(float(s) for s in alignment)
        self.train_second_layer = bool(train_second_layer)
        self.second_layer, self.second_layer_std, self.weight_scale = check_network_parameters(
            self.train_second_layer, second_layer, second_layer_std, weight_scale)
        # degrees and bounds: the single-index ones with ρ → |ρ| and m = d − k (module docstring)
        self.truncation = SeriesTruncation(self.activation, _BlockNormTarget(self.target), self.dimension - k,
                                           sphere=False, weight_scale=self.weight_scale, scale_bound=scale_bound,
                                           truncation_tolerance=truncation_tolerance, max_degree=max_degree,
                                           hermite_degree=hermite_degree, binomial_degree=binomial_degree)
        self.coordinate_names = ((("a",) if self.train_second_layer else ())
                                 + tuple(f"s{l + 1}" for l in range(k)) + ("r",))
        self.linear_coordinate = "a" if self.train_second_layer else None
        self._rows_cache: dict[Any, _Rows] = {}
        self._initial_law = MultiIndexInitialLaw(self.dimension, self.coordinate_names, self.weight_scale,
                                                 self.second_layer, self.second_layer_std,
                                                 index_dimension=k, alignment=self.initial_alignment)

    # ---- truncation (degrees and bounds: SeriesTruncation) ------------------------------------------
    def _prepare(self, n: np.ndarray) -> None:
        """Grow the probe range of the degree selection when points exceed it (degrees re-chosen for
        twice the largest scale n, as in the single-index problem)."""
        self.truncation.check_scale(n)

    @property
    def scale_bound(self) -> float:
        """Largest scale n = |w| the degrees were chosen for (grows when larger n are met)."""
        return self.truncation.scale_bound

    @property
    def orthogonal_dimension(self) -> float:
        """m = d − k, the dimension of the complement of the rows of Θ*."""
        return self.dimension - self.index_dimension

    @property
    def relative_truncation_error(self) -> float:
        """Achieved ``sup b² / sup E σ(nG)²`` of the interaction bound."""
        self.series_degrees()
        return self.truncation.relative_truncation_error

    def series_degrees(self) -> tuple[int, int]:
        """``(K, J)``: Hermite degree and largest binomial index j of the interaction."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            degrees = self.truncation.series_degrees()
        for warning in caught:
            warnings.warn(f"multi-index reduction (k = {self.index_dimension}; degrees chosen as for a single "
                          f"index with m = d − k): {warning.message}", stacklevel=2)
        return degrees

    def potential_degree(self) -> int:
        """Truncation degree P of (V) (chosen from the block norms), capped at the target's resolved degree."""
        return min(self.truncation.potential_degree(), self.target.resolved_degree)

    def _interaction_rows(self) -> _Rows:
        self.series_degrees()
        orders_j = self.truncation.index_pairs()  # (K, j) pairs kept by the truncation
        key = (orders_j[0].tobytes(), orders_j[1].tobytes())
        if key not in self._rows_cache:
            rows = [(order, index, j) for order, j in zip(*orders_j)
                    for index in _compositions(int(order - j), self.index_dimension)]
            k = self.index_dimension
            self._rows_cache[key] = _Rows.build(np.array([r[0] for r in rows], dtype=np.int64),
                                                np.array([r[1] for r in rows], dtype=np.int64).reshape(-1, k),
                                                np.array([r[2] for r in rows], dtype=np.int64))
        return self._rows_cache[key]

    def _potential_rows(self) -> tuple[_Rows, np.ndarray]:
        """Rows (|i|, i, 0) for the non-zero φ̂_i with |i| <= P, and the φ̂_i."""
        degree = self.potential_degree()
        indices, values = self.target.indices, self.target.values
        keep = (indices.sum(axis=1) <= degree) & (values != 0.0)
        indices, values = indices[keep], values[keep]
        return _Rows.build(indices.sum(axis=1), indices, np.zeros(indices.shape[0], dtype=np.int64)), values

    def rank(self) -> int:
        """Number of interaction features R."""
        return self._interaction_rows().size

    # ---- coordinates -----------------------------------------------------------------------------
    @property
    def target_second_moment(self) -> float:
        return self.target.label_second_moment

    def _split(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``a`` (M,), ``s`` (M, k), ``r`` (M,) from points (M, dim)."""
        x = np.asarray(points, dtype=float)
        dim = len(self.coordinate_names)
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(f"points have shape {np.shape(points)}; expected (M, {dim}) for coordinates "
                             f"{self.coordinate_names}")
        offset = 1 if self.train_second_layer else 0
        a = x[:, 0] if self.train_second_layer else np.full(x.shape[0], self.second_layer)
        s = x[:, offset:offset + self.index_dimension]
        r = x[:, -1]
        if not np.all(np.isfinite(x)):
            bad = int(np.nonzero(~np.all(np.isfinite(x), axis=1))[0][0])
            raise ValueError(f"points must be finite; point {bad} is {x[bad].tolist()} (coordinates "
                             f"{self.coordinate_names})")
        if np.any(r < 0):
            raise ValueError(f"coordinate r = |w − Θ*ᵀ s| must be >= 0, got min {r.min()}")
        return np.ascontiguousarray(a), np.ascontiguousarray(s), np.ascontiguousarray(r)

    @staticmethod
    def _geometry(s: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(n, ρ (M, k), ϱ)`` with the n = 0 convention ρ = 0, ϱ = 1."""
        n = np.sqrt(np.sum(s * s, axis=1) + r * r)
        positive = n > 0
        safe = np.where(positive, n, 1.0)
        rho = np.where(positive[:, None], s / safe[:, None], 0.0)
        vrho = np.where(positive, r / safe, 1.0)
        return n, np.ascontiguousarray(rho), np.ascontiguousarray(vrho)

    def _parts(self, points: np.ndarray):
        a, s, r = self._split(points)
        n, rho, vrho = self._geometry(s, r)
        self._prepare(n)
        return a, s, r, n, rho, vrho

    @staticmethod
    def _blocks(size: int, rows: int) -> list[slice]:
        """Point blocks of about 2·10^6 / rows points (bounded α temporaries)."""
        step = max(256, int(2_000_000 // max(rows, 1)))
        return [slice(i, min(i + step, size)) for i in range(0, size, step)]

    def _coefficients(self, n: np.ndarray, top: int, derivatives: bool):
        alpha = np.ascontiguousarray(self.activation.hermite_coefficients(n, top))
        if not derivatives:
            return alpha, alpha, alpha
        d_alpha = np.ascontiguousarray(self.activation.hermite_coefficients_derivative(n, top))
        safe = np.where(n > 0, n, 1.0)
        ratio = np.ascontiguousarray(np.where(n > 0, alpha / safe, d_alpha))  # α/n → α'(0) (α_K(0) = 0, K >= 1)
        return alpha, d_alpha, ratio

    def _evaluate(self, rows: _Rows, scale: np.ndarray, n: np.ndarray, rho: np.ndarray, vrho: np.ndarray
                  ) -> np.ndarray:
        """``scale_m C α_K ρ^i ϱ^j`` for every row, (R, M) (every entry is written by the kernel)."""
        out = np.empty((rows.size, n.size))
        if rows.size == 0:
            return out
        for block in self._blocks(n.size, rows.top + 1):
            alpha, _, _ = self._coefficients(n[block], rows.top, derivatives=False)
            _features_kernel(alpha, rho[block], vrho[block], scale[block], rows.orders, rows.multi,
                             rows.binomial, rows.coefficient, out, block.start)
        return out

    def _gradient(self, rows: _Rows, scale: np.ndarray, n: np.ndarray, rho: np.ndarray, vrho: np.ndarray,
                  row_weights: np.ndarray | None) -> np.ndarray:
        """Row gradients (R, M, dim), or their contraction with ``row_weights`` (M, dim)."""
        dim = len(self.coordinate_names)
        out = np.zeros((n.size, dim) if row_weights is not None else (rows.size, n.size, dim))
        if rows.size == 0:
            return out
        for block in self._blocks(n.size, 3 * (rows.top + 1)):
            alpha, d_alpha, ratio = self._coefficients(n[block], rows.top, derivatives=True)
            arguments = (alpha, d_alpha, ratio, rho[block], vrho[block], scale[block], self.train_second_layer,
                         rows.orders, rows.multi, rows.binomial, rows.coefficient)
            if row_weights is None:
                _gradient_kernel(*arguments, out, block.start)
            else:
                _contracted_gradient_kernel(*arguments, np.ascontiguousarray(row_weights, dtype=float), out,
                                            block.start)
        return out

    # ---- potential -------------------------------------------------------------------------------
    def reduced_potential(self, points: np.ndarray) -> np.ndarray:
        """(V): ``v = −a Σ_{|i|<=P} φ̂_i α_{|i|}(n) sqrt(|i|!/i!) ρ^i``, shape (M,)."""
        a, _, _, n, rho, vrho = self._parts(points)
        rows, values = self._potential_rows()
        return -(values @ self._evaluate(rows, a, n, rho, vrho))

    def reduced_potential_gradient(self, points: np.ndarray) -> np.ndarray:
        """``∇v`` in the problem's coordinates, shape (M, dim) (module docstring)."""
        a, _, _, n, rho, vrho = self._parts(points)
        rows, values = self._potential_rows()
        return self._gradient(rows, a, n, rho, vrho, row_weights=-values)

    def potential_truncation_bound(self, points: np.ndarray) -> np.ndarray:
        """``|a| |ρ|^{P+1} sqrt(T^φ_P T_P(n))`` >= |v − v_P| (zero if the series terminates)."""
        a, _, _, n, rho, _ = self._parts(points)
        return self._potential_bound(a, n, rho)

    def _potential_bound(self, a: np.ndarray, n: np.ndarray, rho: np.ndarray) -> np.ndarray:
        return self.truncation.potential_bound(a, n, np.sqrt(np.sum(rho * rho, axis=1)),
                                               degree=self.potential_degree())

    # ---- interaction -----------------------------------------------------------------------------
    def interaction_low_rank(self, points: np.ndarray) -> LowRankKernel:
        """(U) truncated at (K, J): weights ``m_j`` (R,), features ``g_Kij`` (R, M), and the
        rigorous bound vector b (M,) with ``|u − u_{K,J}| <= b_i b_j``."""
        a, _, _, n, rho, vrho = self._parts(points)
        rows = self._interaction_rows()
        features = self._evaluate(rows, a, n, rho, vrho)
        bound = self.interaction_truncation_bound(points)
        weights = cosine_moments(self.orthogonal_dimension, rows.top)[rows.binomial]
        return LowRankKernel(weights, features, truncation_bound=bound)

    def interaction_truncation_bound(self, points: np.ndarray) -> np.ndarray:
        """b(x): the single-index bound at (a, |s|, r) with orthogonal dimension d − k (module doc)."""
        a, s, r, _, _, _ = self._parts(points)
        self.series_degrees()
        n, abs_rho, vrho = ball_geometry(np.sqrt(np.sum(s * s, axis=1)), r)  # k = 1: the single-index numbers
        return np.sqrt(np.maximum(self.truncation.bound_squared(n, abs_rho, vrho, a), 0.0))

    def interaction_features_gradient(self, points: np.ndarray) -> np.ndarray:
        """``∇g_Kij`` in the problem's coordinates, shape (R, M, dim)."""
        a, _, _, n, rho, vrho = self._parts(points)
        return self._gradient(self._interaction_rows(), a, n, rho, vrho, row_weights=None)

    def potential_gradient(self, points: np.ndarray, masses: np.ndarray) -> np.ndarray:
        """``∇ψ(x_i; p) = ∇v(x_i) + Σ_row m_j (Σ_l g_row(x_l) masses_l) ∇g_row(x_i)``, shape (M, dim)
        (contracted in the compiled kernel; the (R, M, dim) array is never formed)."""
        a, _, _, n, rho, vrho = self._parts(points)
        rows = self._interaction_rows()
        weights = cosine_moments(self.orthogonal_dimension, rows.top)[rows.binomial]
        moments = weights * (self._evaluate(rows, a, n, rho, vrho) @ np.asarray(masses, dtype=float))
        return (self.reduced_potential_gradient(points)
                + self._gradient(rows, a, n, rho, vrho, row_weights=moments))

    def interaction_kernel(self, points: np.ndarray, other: np.ndarray, cosine_nodes: int = 64) -> np.ndarray:
        """``u(x_i, x'_j) = a a' E_c E[σ(n X) σ(n' Y)]`` with correlation ``γ = ρ·ρ' + ϱϱ'c``, by
        Gauss–Jacobi quadrature over c (law of the cosine in R^{d−k}) of
        ``activation.bivariate_expectation`` (independent of the Hermite series; slow — a reference and
        a dense fall-back for small problems)."""
        a1, s1, r1 = self._split(points)
        a2, s2, r2 = self._split(other)
        _, p1, q1 = self._geometry(s1, r1)
        _, p2, q2 = self._geometry(s2, r2)
        n1, n2 = np.sqrt(np.sum(s1 * s1, 1) + r1 * r1), np.sqrt(np.sum(s2 * s2, 1) + r2 * r2)
        c_nodes, c_weights = self.truncation.cosine_rule(cosine_nodes)
        out = np.zeros((a1.size, a2.size))
        for i in range(a1.size):
            for j in range(a2.size):
                gammas = np.clip(p1[i] @ p2[j] + q1[i] * q2[j] * c_nodes, -1.0, 1.0)
                out[i, j] = a1[i] * a2[j] * sum(
                    w * self.activation.bivariate_expectation(float(n1[i]), float(n2[j]), float(g))
                    for g, w in zip(gammas, c_weights))
        return out

    def hermite_structure(self) -> HermiteStructure:
        """Block energies ``E_K = ‖φ̂_K‖²`` and tails of the target (total degree), ``α_K(n)`` of σ
        (n = |w| >= 0, the ball) and the coordinates ``a`` (or the fixed ``second_layer``), ``s1..sk``, ``r``."""
        target = self.target

        def energies(degree: int) -> np.ndarray:
            return target.block_norms(degree) ** 2

        spectrum = TargetSpectrum(index_dimension=self.index_dimension, noise_variance=float(target.noise_variance),
                                  second_moment=float(target.second_moment), exact_degree=target.exact_degree,
                                  block_energies=energies, tail=target.tail)
        names = tuple(self.coordinate_names)
        return HermiteStructure(
            target=spectrum, activation=ActivationSpectrum(self.activation.hermite_coefficients),
            coordinate_names=names, alignment_coordinates=tuple(f"s{l + 1}" for l in range(self.index_dimension)),
            orthogonal_coordinate="r", second_layer_coordinate="a" if self.train_second_layer else None,
            second_layer=None if self.train_second_layer else self.second_layer)

    # ---- finite networks ---------------------------------------------------------------------
    def canonical_theta_star(self) -> np.ndarray:
        """``Θ* = (e_1, …, e_k)`` as a (k, d) array (any orthonormal rows give the same laws)."""
        if math.isinf(self.dimension):
            raise ValueError("theta_star needs a finite data.dimension")
        return np.eye(int(self.dimension))[: self.index_dimension].copy()

    def _check_theta_star(self, theta_star: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta_star, dtype=float)
        k = self.index_dimension
        if math.isinf(self.dimension):
            raise ValueError("theta_star: a full-dimensional network needs a finite data.dimension")
        d = int(self.dimension)
        if theta.shape != (k, d):
            raise ValueError(f"theta_star has shape {theta.shape}; expected (k, d) = ({k}, {d})")
        defect = float(np.max(np.abs(theta @ theta.T - np.eye(k))))
        if not defect <= _ORTHONORMAL_TOLERANCE:
            raise ValueError(f"theta_star must have orthonormal rows (Θ* Θ*ᵀ = I_k); max |Θ*Θ*ᵀ − I| = "
                             f"{defect:.3e} > {_ORTHONORMAL_TOLERANCE:g}")
        return theta

    def sample_labels(self, projections: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Labels ``y = φ(z) + noise`` for the projections ``z = x Θ*ᵀ``, shape (B, k) → (B,)."""
        return self.target.sample_labels(projections, rng)

    def reduced_coordinates(self, a: np.ndarray | float, weights: np.ndarray, theta_star: np.ndarray
                            ) -> np.ndarray:
        """Invariants of full-dimensional neurons ``(a_i, w_i)``: ``s = Θ* w``, ``r = |w − Θ*ᵀ s|``,
        shape (N, dim) in coordinate order."""
        theta = self._check_theta_star(theta_star)
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        if w.shape[1] != theta.shape[1]:
            raise ValueError(f"weights have shape {w.shape}; expected (N, {theta.shape[1]})")
        s = w @ theta.T
        r = np.linalg.norm(w - s @ theta, axis=1)
        columns = [s, r[:, None]]
        if self.train_second_layer:
            columns.insert(0, np.broadcast_to(np.asarray(a, dtype=float), r.shape)[:, None])
        return np.concatenate(columns, axis=1)

    def network_potential(self, a: np.ndarray, weights: np.ndarray, theta_star: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
        """(V) and its truncation bound at full-dimensional neurons ``(a_i, w_i)`` with their actual a_i
        (also when the second layer is not a coordinate), shape (N,) each."""
        theta = self._check_theta_star(theta_star)
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        if w.shape[1] != theta.shape[1]:
            raise ValueError(f"weights have shape {w.shape}; expected (N, {theta.shape[1]})")
        s = w @ theta.T
        n, rho, vrho = self._geometry(s, np.linalg.norm(w - s @ theta, axis=1))
        self._prepare(n)
        a = np.broadcast_to(np.asarray(a, dtype=float), n.shape).copy()
        rows, values = self._potential_rows()
        return -(values @ self._evaluate(rows, a, n, rho, vrho)), self._potential_bound(a, n, rho)

    def network_risk(self, a: np.ndarray | float, weights: np.ndarray, theta_star: np.ndarray,
                     tolerance: float = 1e-12) -> tuple[float, float]:
        """Exact population risk ``E[(y − (1/N) Σ_i a_i σ(⟨w_i, x⟩))²]`` and a bound on its series
        truncation error (:func:`~reduced_pde.models.finite_network.index_network_risk`, shared with the
        single-index model: ``E f²`` depends on the weights only, v from (V) with the actual a_i)."""
        return index_network_risk(self, a, weights, theta_star,
                                  lambda n: gaussian_second_moment(self.activation, n),
                                  getattr(self.activation, "polynomial_degree", None), tolerance)

    def domain(self) -> tuple[tuple[float, float], ...]:
        """a, s_1 … s_k ∈ R; r = |P⊥w| ∈ [0, ∞)."""
        return tuple((0.0, math.inf) if name == "r" else (-math.inf, math.inf) for name in self.coordinate_names)

    def initial_law(self) -> MultiIndexInitialLaw:  # type: ignore[override]
        return self._initial_law

    def config(self) -> dict[str, Any]:
        degree, binomial = self.series_degrees()
        return {
            "problem": "multi_index",
            "reduction.coordinates": list(self.coordinate_names),
            "data.dimension": self.dimension,
            "data.index_dimension": self.index_dimension,
            **{f"target.{k}": v for k, v in self.target.config().items()},
            **{f"activation.{k}": v for k, v in self.activation.config().items()},
            "network.train_second_layer": self.train_second_layer,
            "initial.second_layer": self.second_layer,
            "initial.second_layer_std": self.second_layer_std,
            "initial.weight_scale": self.weight_scale,
            "initial.alignment": list(self.initial_alignment),
            "reduction.truncation_tolerance": self.truncation.truncation_tolerance,
            "reduction.max_degree": self.truncation.max_degree,
            "reduction.hermite_degree": degree,
            "reduction.binomial_degree": binomial,
            "reduction.potential_degree": self.potential_degree(),
            "reduction.rank": self.rank(),
        }


class MultiIndexNetwork(IndexNetwork):
    """The full-dimensional network of a :class:`MultiIndexProblem` (ball, trained or fixed second
    layer): :class:`~reduced_pde.models.finite_network.IndexNetwork` with Θ* a (k, d) array."""


# ---- the model plug-in ------------------------------------------------------------------------------
def _target(field: str, value: Any) -> Any:
    return value  # checked with data.index_dimension in MultiIndexModel.check


from reduced_pde.models import register  # noqa: E402  (the registry imports this module lazily)
from reduced_pde.models.base import Inputs, Key, dimension_value, finite, integer_at_least  # noqa: E402
from reduced_pde.models.single_index import SingleIndexModel, activation_spec  # noqa: E402


#: the most indices a configuration may declare: the multinomial kernel has C(K + k, k) terms at degree K
MAX_INDEX_DIMENSION = 64


def _index_dimension_key(field: str, value: Any) -> int:
    k = integer_at_least(1)(field, value)
    if k > MAX_INDEX_DIMENSION:
        raise ValueError(f"{field} = {value!r} must be an integer in [1, {MAX_INDEX_DIMENSION}] (the multinomial "
                         "interaction kernel has C(K + k, k) terms at degree K; and k + 1 < data.dimension)")
    return k


@register
class MultiIndexModel(SingleIndexModel):
    """Gaussian multi-index data y = φ(Θ* x), Θ* ∈ R^{k×d}, neurons a σ(⟨w, x⟩): (a, s_1 … s_k, r)."""

    name = "multi_index"
    summary = "x ~ N(0, I_d), y = φ(Θ* x) (k indices), neurons a σ(⟨w, x⟩); coordinates (a, s1..sk, r)"
    schema = {**SingleIndexModel.schema,
              "data": {"dimension": Key(320, dimension_value(3), "d (integer > k + 1) or \"inf\""),
                       "target": Key(None, _target, "φ(z), z ∈ R^k: {he = {\"2,0\" = 1.0, ...}} or a callable"),
                       "second_layer": Key(1.0, finite, "a (fixed), or the mean a0 of a at t = 0"),
                       "index_dimension": Key(2, _index_dimension_key, "k: number of indices (1 to 64)")},
              "initial": {**SingleIndexModel.schema["initial"],
                          "alignment": Key(0.0, lambda field, value: np.asarray(
                              [finite(field, v) for v in np.atleast_1d(value)]).tolist() if isinstance(value, list)
                              else finite(field, value), "s0: a number, or k numbers")}}

    def check(self, inputs: Inputs) -> None:
        super().check(inputs)
        try:
            make_multi_index_target(inputs["data"]["target"], inputs["data"]["index_dimension"])
        except (ValueError, TypeError) as error:
            text = str(error)
            raise ValueError(text if text.startswith("data.target") else f"data.target: {text}") from None

    def build_problem(self, inputs: Inputs) -> MultiIndexProblem:
        initial, reduction = inputs["initial"], inputs["reduction"]
        return MultiIndexProblem(inputs["data"]["target"], activation_spec(inputs["activation"]),
                                 inputs["data"]["dimension"], index_dimension=inputs["data"]["index_dimension"],
                                 train_second_layer=inputs["network"]["train_second_layer"],
                                 second_layer=inputs["data"]["second_layer"],
                                 second_layer_std=initial["second_layer_std"], weight_scale=initial["kappa"],
                                 initial_alignment=initial["alignment"],
                                 truncation_tolerance=reduction["truncation_tolerance"],
                                 hermite_degree=reduction["hermite_degree"])

    def network(self, inputs: Inputs, dimension: int) -> Any:
        from reduced_pde.models.multi_index import MultiIndexNetwork

        data = {**inputs["data"], "dimension": dimension}
        return MultiIndexNetwork(self.build_problem({**inputs, "data": data}))
