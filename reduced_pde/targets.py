"""Single-index targets ``y = φ(z) + ε``, ``z = ⟨θ*, x⟩``, ``x ~ N(0, I_d)``, ``|θ*| = 1``.

A target provides, with ``h_k`` the orthonormal Hermite polynomials (:mod:`reduced_pde.hermite`,
``h_k = He_k / sqrt(k!)``):

* ``coefficients(K)``: ``φ̂_k = E[φ(z) h_k(z)]``, ``k = 0..K``, so ``φ = Σ_k φ̂_k h_k`` in L²(N(0,1));
* ``second_moment``: ``E[φ(z)²] = Σ_k φ̂_k²`` (Parseval);
* ``tail(K) = E[φ²] − Σ_{k<=K} φ̂_k² >= 0``, which bounds the truncation error of every series
  in which φ enters (Cauchy–Schwarz);
* ``noise_variance`` τ² of the label noise ε (independent of x, mean zero), so that
  ``E[y²] = E[φ²] + τ²`` (``label_second_moment``);
* ``exact_degree``: P if φ is a polynomial of degree P (every series then terminates), else None.

Three kinds of target:

* :class:`HermiteTarget` — a finite expansion, given by normalized coefficients φ̂_k
  (``{"hermite": [...]}``) or by coefficients ``c_k`` in the probabilists' basis
  ``φ = Σ c_k He_k`` (``{"he": [...]}``; φ̂_k = c_k sqrt(k!)), or ``{"name": "he", "degree": k}``
  for ``φ = He_k`` (``φ̂_k = sqrt(k!)``, ``E φ² = k!``).
* :class:`ActivationTarget` — ``φ = σ`` for an :class:`~reduced_pde.activations.Activation`
  (``{"name": "relu"}``, ``"tanh"``, ...): φ̂_k = α_k(1) and E φ² = E σ(G)² in the activation's
  exact closed forms / spectrally accurate quadrature.
* :class:`CallableTarget` — a vectorised callable, by Gauss–Hermite quadrature (spectral for
  smooth φ; algebraic for kinks, so prefer an ActivationTarget for piecewise-linear φ).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from reduced_pde.activations import ACTIVATION_NAMES, Activation, make_activation
from reduced_pde.hermite import finite_coefficients, gauss_hermite_rule, normalized_hermite

__all__ = ["SingleIndexTarget", "HermiteTarget", "ActivationTarget", "CallableTarget",
           "make_target", "TARGET_KINDS"]

TARGET_KINDS = ("hermite", "he", "name = 'he' with degree", *(f"name = {n!r}" for n in ACTIVATION_NAMES),
                "a callable", "a SingleIndexTarget")


def _check_noise(noise_variance: float) -> float:
    value = float(noise_variance)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"target.noise_variance = {noise_variance!r} must be finite and >= 0")
    return value


class SingleIndexTarget(ABC):
    """``y = φ(z) + ε`` (module docstring)."""

    name: str
    noise_variance: float

    @abstractmethod
    def __call__(self, z: np.ndarray) -> np.ndarray:
        """``φ(z)``."""

    @abstractmethod
    def coefficients(self, degree: int) -> np.ndarray:
        """``φ̂_k = E[φ(z) h_k(z)]`` for ``k = 0..degree``."""

    @property
    @abstractmethod
    def second_moment(self) -> float:
        """``E[φ(z)²]``."""

    @property
    def exact_degree(self) -> int | None:
        return None

    @abstractmethod
    def config(self) -> dict[str, Any]: ...

    @property
    def label_second_moment(self) -> float:
        """``E[y²] = E[φ²] + τ²``."""
        return self.second_moment + self.noise_variance

    def tail(self, degree: int) -> float:
        """``Σ_{k > degree} φ̂_k² = E φ² − Σ_{k <= degree} φ̂_k²`` (clipped at 0 against round-off)."""
        if self.exact_degree is not None and degree >= self.exact_degree:
            return 0.0
        return max(self.second_moment - float(np.sum(self.coefficients(degree) ** 2)), 0.0)

    def sample_labels(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``y = φ(z) + ε`` with Gaussian ε of variance τ²."""
        y = self(z)
        if self.noise_variance > 0:
            y = y + math.sqrt(self.noise_variance) * rng.standard_normal(np.shape(z))
        return y


@dataclass(frozen=True)
class HermiteTarget(SingleIndexTarget):
    """``φ = Σ_k φ̂_k h_k`` with finitely many normalized coefficients φ̂_k."""

    normalized_coefficients: tuple[float, ...]
    noise_variance: float = 0.0
    name: str = "hermite"

    def __post_init__(self) -> None:
        coeffs = finite_coefficients("target.hermite", self.normalized_coefficients)
        object.__setattr__(self, "normalized_coefficients", coeffs)
        object.__setattr__(self, "noise_variance", _check_noise(self.noise_variance))

    @classmethod
    def from_he(cls, he_coefficients: list[float], noise_variance: float = 0.0) -> "HermiteTarget":
        """``φ = Σ c_k He_k`` (probabilists' basis): ``φ̂_k = c_k sqrt(k!)``."""
        c = [float(x) for x in he_coefficients]
        return cls(tuple(ck * math.sqrt(math.factorial(k)) for k, ck in enumerate(c)), noise_variance,
                   name="he")

    @classmethod
    def he(cls, degree: int, noise_variance: float = 0.0) -> "HermiteTarget":
        """``φ = He_degree``."""
        if not (isinstance(degree, (int, np.integer)) and degree >= 0):
            raise ValueError(f"target.degree = {degree!r} must be an integer >= 0")
        return cls.from_he([0.0] * degree + [1.0], noise_variance)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=float)
        basis = normalized_hermite(z, len(self.normalized_coefficients) - 1)
        return np.tensordot(np.array(self.normalized_coefficients), basis, axes=1)

    def coefficients(self, degree: int) -> np.ndarray:
        out = np.zeros(degree + 1)
        m = min(degree + 1, len(self.normalized_coefficients))
        out[:m] = self.normalized_coefficients[:m]
        return out

    @property
    def second_moment(self) -> float:
        return float(np.sum(np.square(self.normalized_coefficients)))

    @property
    def exact_degree(self) -> int:
        nonzero = [k for k, c in enumerate(self.normalized_coefficients) if c != 0.0]
        return nonzero[-1] if nonzero else 0

    def config(self) -> dict[str, Any]:
        return {"kind": "hermite", "hermite": list(self.normalized_coefficients),
                "noise_variance": self.noise_variance}


@dataclass(frozen=True)
class ActivationTarget(SingleIndexTarget):
    """``φ = σ`` for an activation σ: ``φ̂_k = α_k(1)``, ``E φ² = E σ(G)²``."""

    activation: Activation
    noise_variance: float = 0.0
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_variance", _check_noise(self.noise_variance))

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.activation.name

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self.activation(np.asarray(z, dtype=float))

    def coefficients(self, degree: int) -> np.ndarray:
        return np.asarray(self.activation.hermite_coefficients(np.array(1.0), degree), dtype=float)

    @property
    def second_moment(self) -> float:
        if "m2" not in self._cache:
            self._cache["m2"] = float(self.activation.second_moment(np.array(1.0)))
        return self._cache["m2"]

    @property
    def exact_degree(self) -> int | None:
        return getattr(self.activation, "polynomial_degree", None)

    def config(self) -> dict[str, Any]:
        return {"kind": "activation", **self.activation.config(), "noise_variance": self.noise_variance}


@dataclass(frozen=True)
class CallableTarget(SingleIndexTarget):
    """``φ`` given by a vectorised callable; coefficients and ``E φ²`` by Gauss–Hermite quadrature of
    order ``max(quadrature_order, 2K + 40)`` (so that the discrete projections up to degree K are
    not aliased)."""

    function: Callable[[np.ndarray], np.ndarray]
    noise_variance: float = 0.0
    name: str = "callable"
    quadrature_order: int = 200

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise ValueError(f"target.function = {self.function!r} is not callable")
        object.__setattr__(self, "noise_variance", _check_noise(self.noise_variance))

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.function(np.asarray(z, dtype=float)), dtype=float)

    def coefficients(self, degree: int) -> np.ndarray:
        nodes, weights = gauss_hermite_rule(max(self.quadrature_order, 2 * degree + 40))
        return normalized_hermite(nodes, degree) @ (weights * self(nodes))

    @property
    def second_moment(self) -> float:
        nodes, weights = gauss_hermite_rule(max(self.quadrature_order, 440))
        return float(weights @ self(nodes) ** 2)

    def tail(self, degree: int) -> float:
        if degree > 200:  # beyond the reliable range of the quadrature: no information
            degree = 200
        return super().tail(degree)

    def config(self) -> dict[str, Any]:
        return {"kind": "callable", "name": self.name, "noise_variance": self.noise_variance}


def make_target(spec: Any, noise_variance: float | None = None) -> SingleIndexTarget:
    """Build a target from a specification.

    ``{"hermite": [φ̂_0, φ̂_1, ...]}`` (normalized basis), ``{"he": [c_0, c_1, ...]}``
    (probabilists' basis), ``{"name": "he", "degree": 4}``, ``{"name": "relu"}`` / ``"tanh"`` / any
    activation name (φ = σ), a callable, an :class:`Activation`, or a :class:`SingleIndexTarget`
    (returned unchanged).  Every dict may carry ``noise_variance`` (default 0); the argument
    ``noise_variance`` overrides it.
    """
    if isinstance(spec, SingleIndexTarget):
        if noise_variance is not None and float(noise_variance) != spec.noise_variance:
            raise ValueError("target: pass noise_variance when building the target, not with an instance")
        return spec
    if isinstance(spec, Activation):
        return ActivationTarget(spec, 0.0 if noise_variance is None else noise_variance)
    if callable(spec):
        return CallableTarget(spec, 0.0 if noise_variance is None else noise_variance)
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise ValueError(f"target = {spec!r} is not a known target specification; allowed: "
                         + ", ".join(TARGET_KINDS))
    params = dict(spec)
    noise = params.pop("noise_variance", 0.0)
    if noise_variance is not None:
        noise = noise_variance
    if "hermite" in params or "he" in params:
        key = "hermite" if "hermite" in params else "he"
        unknown = set(params) - {key}
        if unknown:
            raise ValueError(f"target: unknown field(s) {sorted(unknown)} next to {key!r}")
        values = params[key]
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise ValueError(f"target.{key} = {values!r} must be a list of numbers")
        return (HermiteTarget(tuple(values), noise) if key == "hermite"
                else HermiteTarget.from_he(list(values), noise))
    name = params.pop("name", None)
    if name == "he":
        unknown = set(params) - {"degree"}
        if unknown or "degree" not in params:
            raise ValueError(f"target.name = 'he' needs exactly the field 'degree'; got {sorted(params)}")
        return HermiteTarget.he(params["degree"], noise)
    if name in ACTIVATION_NAMES:
        try:
            activation = make_activation({"name": name, **params})
        except ValueError as error:
            raise ValueError(f"target: {error}") from None
        return ActivationTarget(activation, noise)
    raise ValueError(f"target.name = {name!r} is not known; allowed: " + ", ".join(TARGET_KINDS))
