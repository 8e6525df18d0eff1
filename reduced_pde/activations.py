"""Activation functions σ and the Gaussian expectations the reductions need.

For a scale ``n >= 0`` and ``G ~ N(0, 1)`` every activation provides

* ``hermite_coefficients(n, K)``: ``α_k(n) = E[σ(nG) h_k(G)]``, ``k = 0..K`` (h_k orthonormal Hermite,
  see :mod:`reduced_pde.hermite`), so that ``σ(nG) = Σ_k α_k(n) h_k(G)`` in L²(N(0,1)).
  ``α_0(n) = E[σ(nG)]`` is the Gaussian mean ``q(n)`` of the design note.
* ``hermite_coefficients_derivative(n, K)``: ``dα_k/dn = E[G σ'(nG) h_k(G)]``.
* ``bivariate_expectation(n1, n2, c)``: ``E[σ(n1 X) σ(n2 Y)]`` for a standard bivariate normal
  pair with correlation c, computed directly (not through the Hermite series); it is the
  independent reference for the series (Mehler's formula ``Σ_k α_k(n1) α_k(n2) c^k``).
* ``second_moment(n) = E[σ(nG)²] = Σ_k α_k(n)²``, which bounds the series' truncation error.

Piecewise-linear activations ``σ(t) = c0 + s0 t + Σ_j a_j (t - t_j)_+`` (ReLU, the MMN18
activation) have exact closed forms: with ``τ = t_j / n``, Stein's identity gives

    E[σ(nG) He_0] = c0 + Σ_j a_j (n φ(τ) - t_j Φ(-τ)),
    E[σ(nG) He_1] = n (s0 + Σ_j a_j Φ(-τ)),
    E[σ(nG) He_k] = n Σ_j a_j He_{k-2}(τ) φ(τ)                     (k >= 2).

Smooth activations (tanh, erf, sigmoid, a user callable) use Gauss–Hermite quadrature, which
converges spectrally for them; a user callable with kinks converges only algebraically.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy.special import erf as _erf, expit, ndtr

from numpy.polynomial import hermite_e

from reduced_pde.checks import finite_number
from reduced_pde.hermite import finite_coefficients, gauss_hermite_rule, normalized_hermite

__all__ = [
    "Activation",
    "PiecewiseLinearActivation",
    "SmoothActivation",
    "make_activation",
    "ACTIVATION_NAMES",
]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TAIL = 38.0  # |τ| beyond which φ(τ) h_k(τ) underflows to 0 for the degrees used here


def _gauss(x: np.ndarray) -> np.ndarray:
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


class Activation(ABC):
    """A scalar activation σ: R → R with derivative σ' and Gaussian expectations (module doc)."""

    name: str

    @abstractmethod
    def __call__(self, t: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def derivative(self, t: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def hermite_coefficients(self, scale: np.ndarray, degree: int) -> np.ndarray:
        """``α_k(n)`` for ``k = 0..degree``; shape ``(degree + 1,) + scale.shape``."""

    @abstractmethod
    def hermite_coefficients_derivative(self, scale: np.ndarray, degree: int) -> np.ndarray:
        """``dα_k/dn`` for ``k = 0..degree``; shape ``(degree + 1,) + scale.shape``."""

    @abstractmethod
    def bivariate_expectation(self, scale1: float, scale2: float, correlation: float) -> float:
        """``E[σ(n1 X) σ(n2 Y)]``, (X, Y) standard bivariate normal with correlation c."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Parameters that reconstruct this activation (stored as HDF5 attributes)."""

    def gaussian_mean(self, scale: np.ndarray) -> np.ndarray:
        """``q(n) = E[σ(nG)]``."""
        return self.hermite_coefficients(scale, 0)[0]

    def gaussian_mean_derivative(self, scale: np.ndarray) -> np.ndarray:
        """``q'(n) = E[G σ'(nG)]``."""
        return self.hermite_coefficients_derivative(scale, 0)[0]

    def second_moment(self, scale: np.ndarray) -> np.ndarray:
        """``E[σ(nG)²]``."""
        scale = np.asarray(scale, dtype=float)
        return np.vectorize(lambda n: self.bivariate_expectation(n, n, 1.0))(scale)


def _check_scale(scale: np.ndarray) -> np.ndarray:
    scale = np.asarray(scale, dtype=float)
    if np.any(scale < 0) or not np.all(np.isfinite(scale)):
        raise ValueError(f"activation scale n must be finite and >= 0, got min {scale.min()}")
    return scale


# --------------------------------------------------------------------------------------------
# Piecewise-linear activations: exact closed forms
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PiecewiseLinearActivation(Activation):
    """``σ(t) = intercept + slope t + Σ_j jumps[j] (t - knots[j])_+`` (continuous, piecewise linear)."""

    intercept: float
    slope: float
    knots: tuple[float, ...]
    jumps: tuple[float, ...]
    name: str = "piecewise_linear"
    parameters: dict[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.knots) != len(self.jumps):
            raise ValueError("piecewise-linear activation: knots and jumps must have equal length")

    # -- values --------------------------------------------------------------------------------
    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        out = self.intercept + self.slope * t
        for knot, jump in zip(self.knots, self.jumps):
            out = out + jump * np.maximum(t - knot, 0.0)
        return out

    def derivative(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        out = np.full_like(t, self.slope)
        for knot, jump in zip(self.knots, self.jumps):
            out = out + jump * (t > knot)
        return out

    # -- Hermite coefficients ----------------------------------------------------------------------
    @staticmethod
    def _standardized_knot(knot: float, scale: np.ndarray) -> np.ndarray:
        """``τ = knot / n`` with the n → 0 limits (±inf, or 0 when the knot is at 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = knot / scale
        limit = math.copysign(math.inf, knot) if knot != 0.0 else 0.0
        return np.where(scale > 0, tau, limit)

    @staticmethod
    def _hermite_times_density(tau: np.ndarray, degree: int) -> np.ndarray:
        """``h_k(τ) φ(τ)`` for k = 0..degree, set to 0 where |τ| is so large that it underflows."""
        inside = np.abs(tau) < _TAIL
        safe = np.where(inside, tau, 0.0)
        values = normalized_hermite(safe, degree) * _gauss(safe)
        return np.where(inside, values, 0.0)

    def hermite_coefficients(self, scale: np.ndarray, degree: int) -> np.ndarray:
        scale = _check_scale(scale)
        alpha = np.zeros((degree + 1,) + scale.shape)
        alpha[0] = self.intercept
        if degree >= 1:
            alpha[1] = self.slope * scale
        k = np.arange(2, degree + 1, dtype=float).reshape((-1,) + (1,) * scale.ndim)
        for knot, jump in zip(self.knots, self.jumps):
            tau = self._standardized_knot(knot, scale)
            upper_tail = ndtr(-tau)
            phi = np.where(np.abs(tau) < _TAIL, _gauss(np.where(np.isfinite(tau), tau, 0.0)), 0.0)
            # E[(nG - t)_+] = n φ(τ) - t Φ(-τ)
            alpha[0] += jump * (scale * phi - knot * upper_tail)
            if degree >= 1:
                alpha[1] += jump * scale * upper_tail
            if degree >= 2:
                h_phi = self._hermite_times_density(tau, degree - 2)
                # He_{k-2}(τ)/sqrt(k!) = h_{k-2}(τ)/sqrt(k (k-1))
                alpha[2:] += jump * scale * h_phi / np.sqrt(k * (k - 1.0))
        return alpha

    def hermite_coefficients_derivative(self, scale: np.ndarray, degree: int) -> np.ndarray:
        # dα_k/dn = (D_{k+1} + k D_{k-1}) / sqrt(k!),  D_m = E[σ'(nG) He_m(G)],
        # D_0 = s0 + Σ a_j Φ(-τ_j),  D_m = Σ a_j He_{m-1}(τ_j) φ(τ_j)  (m >= 1).
        scale = _check_scale(scale)
        d_alpha = np.zeros((degree + 1,) + scale.shape)
        d_alpha[0] = 0.0
        if degree >= 1:
            d_alpha[1] = self.slope
        k = np.arange(2, degree + 1, dtype=float).reshape((-1,) + (1,) * scale.ndim)
        for knot, jump in zip(self.knots, self.jumps):
            tau = self._standardized_knot(knot, scale)
            h_phi = self._hermite_times_density(tau, degree)  # h_m(τ) φ(τ), m = 0..degree
            # D_{k+1}/sqrt(k!) = h_k(τ) φ(τ)
            d_alpha += jump * h_phi
            if degree >= 1:
                d_alpha[1] += jump * ndtr(-tau)  # k = 1: 1 * D_0 / 1
            if degree >= 2:
                # k D_{k-1}/sqrt(k!) = sqrt(k/(k-1)) h_{k-2}(τ) φ(τ)
                d_alpha[2:] += jump * np.sqrt(k / (k - 1.0)) * h_phi[: degree - 1]
        return d_alpha

    # -- direct Gaussian expectations -------------------------------------------------------------
    def second_moment(self, scale: np.ndarray) -> np.ndarray:
        """``E[σ(nG)²]`` in closed form.  With ``σ(nG) = c0 + s0 n G + n Σ_j a_j (G − τ_j)_+`` and
        ``Φ̄ = 1 − Φ``: ``E(G−τ)_+ = φ(τ) − τΦ̄(τ)``, ``E[G (G−τ)_+] = Φ̄(τ)``, and for
        ``m = max(τ, τ')``: ``E[(G−τ)_+(G−τ')_+] = mφ(m) + Φ̄(m) − (τ+τ')φ(m) + ττ'Φ̄(m)``."""
        scale = _check_scale(scale)
        n = np.where(scale > 0, scale, 1.0)
        taus = [np.clip(knot / n, -1e6, 1e6) for knot in self.knots]
        c0, s0 = self.intercept, self.slope
        total = c0 * c0 + (s0 * n) ** 2
        for a, tau in zip(self.jumps, taus):
            total = total + 2.0 * c0 * a * n * (_gauss(tau) - tau * ndtr(-tau))
            total = total + 2.0 * s0 * a * n * n * ndtr(-tau)
            for b, tau2 in zip(self.jumps, taus):
                m = np.maximum(tau, tau2)
                tail, dens = ndtr(-m), _gauss(m)
                total = total + a * b * n * n * (m * dens + tail - (tau + tau2) * dens + tau * tau2 * tail)
        at_zero = float(self(np.array(0.0))) ** 2
        return np.where(scale > 0, total, at_zero)

    def _smoothed(self, mean: np.ndarray, std: float) -> np.ndarray:
        """``E[σ(mean + std Z)]``, Z ~ N(0,1), in closed form."""
        out = self.intercept + self.slope * mean
        for knot, jump in zip(self.knots, self.jumps):
            mu = mean - knot
            if std > 0.0:
                out = out + jump * (mu * ndtr(mu / std) + std * _gauss(mu / std))
            else:
                out = out + jump * np.maximum(mu, 0.0)
        return out

    def bivariate_expectation(self, scale1: float, scale2: float, correlation: float) -> float:
        # E[σ(n1 X) S(X)], S(x) = E[σ(n2 (c x + sqrt(1-c²) Z))] in closed form; the outer integrand
        # is smooth between the kinks x = t_j / n1, so composite Gauss–Legendre is exact to round-off.
        c = float(np.clip(correlation, -1.0, 1.0))
        breaks = [-12.0, 12.0]
        if scale1 > 0:
            breaks += [knot / scale1 for knot in self.knots if abs(knot / scale1) < 12.0]
        if scale2 > 0 and abs(c) == 1.0:
            breaks += [c * knot / scale2 for knot in self.knots if abs(knot / scale2) < 12.0]
        x, w = _composite_gauss_legendre(sorted(set(breaks)))
        inner = self._smoothed(scale2 * c * x, scale2 * math.sqrt(max(0.0, 1.0 - c * c)))
        return float(np.sum(w * _gauss(x) * self(scale1 * x) * inner))

    def config(self) -> dict[str, Any]:
        base = {"name": self.name}
        base.update(self.parameters)
        if not self.parameters:
            base.update(intercept=self.intercept, slope=self.slope,
                        knots=list(self.knots), jumps=list(self.jumps))
        return base


def _composite_gauss_legendre(breaks: list[float], max_length: float = 1.0, order: int = 16
                              ) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(order)
    xs, ws = [], []
    for left, right in zip(breaks[:-1], breaks[1:]):
        pieces = max(1, int(math.ceil((right - left) / max_length)))
        edges = np.linspace(left, right, pieces + 1)
        for a, b in zip(edges[:-1], edges[1:]):
            xs.append(0.5 * (b - a) * nodes + 0.5 * (a + b))
            ws.append(0.5 * (b - a) * weights)
    return np.concatenate(xs), np.concatenate(ws)


# --------------------------------------------------------------------------------------------
# Smooth activations: Gauss–Hermite quadrature
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmoothActivation(Activation):
    """A smooth activation given by vectorised callables for σ and σ'."""

    function: Callable[[np.ndarray], np.ndarray]
    function_derivative: Callable[[np.ndarray], np.ndarray]
    name: str = "callable"
    quadrature_order: int = 160

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return np.asarray(self.function(np.asarray(t, dtype=float)), dtype=float)

    def derivative(self, t: np.ndarray) -> np.ndarray:
        return np.asarray(self.function_derivative(np.asarray(t, dtype=float)), dtype=float)

    def _rule(self, degree: int) -> tuple[np.ndarray, np.ndarray]:
        return gauss_hermite_rule(max(self.quadrature_order, 2 * degree + 40))

    def hermite_coefficients(self, scale: np.ndarray, degree: int) -> np.ndarray:
        scale = _check_scale(scale)
        nodes, weights = self._rule(degree)
        basis = normalized_hermite(nodes, degree) * weights  # (K+1, Q)
        values = self(np.multiply.outer(scale, nodes))  # (..., Q)
        return np.moveaxis(values @ basis.T, -1, 0)

    def hermite_coefficients_derivative(self, scale: np.ndarray, degree: int) -> np.ndarray:
        scale = _check_scale(scale)
        nodes, weights = self._rule(degree)
        basis = normalized_hermite(nodes, degree) * (weights * nodes)
        values = self.derivative(np.multiply.outer(scale, nodes))
        return np.moveaxis(values @ basis.T, -1, 0)

    def bivariate_expectation(self, scale1: float, scale2: float, correlation: float) -> float:
        c = float(np.clip(correlation, -1.0, 1.0))
        nodes, weights = gauss_hermite_rule(self.quadrature_order)
        x = nodes[:, None]
        y = c * nodes[:, None] + math.sqrt(max(0.0, 1.0 - c * c)) * nodes[None, :]
        integrand = self(scale1 * x) * self(scale2 * y)
        return float(weights @ integrand @ weights)

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def mmn18_activation(t1: float = 0.5, t2: float = 1.5, s1: float = -2.5, s2: float = 7.5
                     ) -> PiecewiseLinearActivation:
    """MMN18's activation: ``s1`` for t <= t1, ``s2`` for t >= t2, linear in between."""
    if not t2 > t1:
        raise ValueError(f"activation.t2 must exceed activation.t1, got t1={t1}, t2={t2}")
    slope = (s2 - s1) / (t2 - t1)
    return PiecewiseLinearActivation(
        intercept=s1, slope=0.0, knots=(t1, t2), jumps=(slope, -slope), name="mmn18",
        parameters={"t1": t1, "t2": t2, "s1": s1, "s2": s2})


def relu_activation() -> PiecewiseLinearActivation:
    return PiecewiseLinearActivation(0.0, 0.0, (0.0,), (1.0,), name="relu",
                                     parameters={})


def _tanh_derivative(t: np.ndarray) -> np.ndarray:
    return 1.0 - np.tanh(t) ** 2


def _erf_derivative(t: np.ndarray) -> np.ndarray:
    return 2.0 / math.sqrt(math.pi) * np.exp(-t * t)


def _sigmoid_derivative(t: np.ndarray) -> np.ndarray:
    s = expit(t)
    return s * (1.0 - s)


@dataclass(frozen=True)
class PolynomialActivation(Activation):
    """``σ(t) = Σ_m c_m He_m(t)`` (probabilists' Hermite basis; ``PolynomialActivation.hermite(k)``
    is ``He_k``, ``from_monomials`` converts from ``Σ p_m t^m``).

    All Gaussian expectations are exact: ``σ(nG)`` is a polynomial of degree p in G, so
    ``α_k(n) = 0`` for k > p and Gauss–Hermite rules with ``⌈(p + k + 1)/2⌉`` nodes integrate
    ``σ(nG) h_k(G)`` and ``G σ'(nG) h_k(G)`` exactly; ``bivariate_expectation`` uses a tensor
    Gauss–Hermite rule exact for the degree-2p integrand (independent of Mehler's series).
    """

    he_coefficients: tuple[float, ...]
    name: str = "polynomial"

    def __post_init__(self) -> None:
        c = finite_coefficients("activation.he_coefficients", self.he_coefficients)
        while len(c) > 1 and c[-1] == 0.0:
            c = c[:-1]
        object.__setattr__(self, "he_coefficients", c)

    @classmethod
    def hermite(cls, degree: int) -> "PolynomialActivation":
        return cls(tuple([0.0] * degree + [1.0]), name=f"he{degree}")

    @classmethod
    def from_monomials(cls, coefficients: list[float], name: str = "polynomial") -> "PolynomialActivation":
        return cls(tuple(hermite_e.poly2herme(np.asarray(coefficients, dtype=float))), name=name)

    @property
    def polynomial_degree(self) -> int:
        return len(self.he_coefficients) - 1

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return hermite_e.hermeval(np.asarray(t, dtype=float), self.he_coefficients)

    def derivative(self, t: np.ndarray) -> np.ndarray:
        return hermite_e.hermeval(np.asarray(t, dtype=float),
                                  hermite_e.hermeder(np.asarray(self.he_coefficients)))

    def _project(self, values_fn, scale: np.ndarray, degree: int, extra: int) -> np.ndarray:
        scale = np.asarray(scale, dtype=float)
        if np.any(scale < 0) or not np.all(np.isfinite(scale)):
            raise ValueError("activation scale n must be finite and >= 0")
        p = self.polynomial_degree
        top = min(degree, p)
        nodes, weights = gauss_hermite_rule(max(2, (p + top + extra) // 2 + 2))
        basis = normalized_hermite(nodes, top) * weights
        out = np.zeros((degree + 1,) + scale.shape)
        out[: top + 1] = np.moveaxis(values_fn(np.multiply.outer(scale, nodes), nodes) @ basis.T, -1, 0)
        return out

    def hermite_coefficients(self, scale: np.ndarray, degree: int) -> np.ndarray:
        return self._project(lambda t, g: self(t), scale, degree, 1)

    def hermite_coefficients_derivative(self, scale: np.ndarray, degree: int) -> np.ndarray:
        return self._project(lambda t, g: g * self.derivative(t), scale, degree, 2)

    def bivariate_expectation(self, scale1: float, scale2: float, correlation: float) -> float:
        c = float(np.clip(correlation, -1.0, 1.0))
        nodes, weights = gauss_hermite_rule(self.polynomial_degree + 2)
        x = nodes[:, None]
        y = c * x + math.sqrt(max(0.0, 1.0 - c * c)) * nodes[None, :]
        return float(weights @ (self(scale1 * x) * self(scale2 * y)) @ weights)

    def second_moment(self, scale: np.ndarray) -> np.ndarray:
        scale = np.asarray(scale, dtype=float)
        nodes, weights = gauss_hermite_rule(self.polynomial_degree + 2)
        return self(np.multiply.outer(scale, nodes)) ** 2 @ weights

    def config(self) -> dict[str, Any]:
        return {"name": "polynomial", "he_coefficients": list(self.he_coefficients)}


_SMOOTH = {
    "tanh": (np.tanh, _tanh_derivative),
    "erf": (_erf, _erf_derivative),
    "sigmoid": (expit, _sigmoid_derivative),
}

ACTIVATION_NAMES = ("mmn18", "relu", "tanh", "erf", "sigmoid", "piecewise_linear")


def _listed(field: str, value: Any) -> Any:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{field} = {value!r} must be a list of finite numbers")
    return value


def make_activation(spec: str | dict[str, Any] | Activation, *, polynomial: bool = False) -> Activation:
    """Build an activation from a name or a configuration table.

    ``{"name": "mmn18", "t1": .5, "t2": 1.5, "s1": -2.5, "s2": 7.5}``, ``"relu"``, ``"tanh"``,
    ``"erf"``, ``"sigmoid"``, ``{"name": "piecewise_linear", "intercept": .., "slope": ..,
    "knots": [..], "jumps": [..]}``; an :class:`Activation` instance is returned unchanged.
    A user-supplied σ with its derivative: ``SmoothActivation(f, df, name="mine")``.
    With ``polynomial=True`` (the reductions whose kernels take finite Hermite expansions), also
    ``"he<k>"`` (σ = He_k) and ``{"name": "polynomial", "he_coefficients": [c_0, c_1, ...]}``.
    """
    if isinstance(spec, Activation):
        return spec
    if not isinstance(spec, (str, dict)):
        raise TypeError(f"activation = {spec!r} must be a name, a table or an Activation")
    params: dict[str, Any] = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = params.pop("name", None)
    if not isinstance(name, str):
        raise ValueError(f"activation.name = {name!r} must be a name: one of {', '.join(ACTIVATION_NAMES)}")
    if polynomial and name.startswith("he") and name[2:].isdigit() and not params:
        return PolynomialActivation.hermite(int(name[2:]))
    if polynomial and name == "polynomial":
        _reject_unknown(params, {"he_coefficients"}, name)
        coefficients = params.get("he_coefficients", ())
        if not isinstance(coefficients, (list, tuple)):
            raise ValueError(f"activation.he_coefficients = {coefficients!r} must be a list of numbers "
                             "[c_0, c_1, ...] (σ = Σ c_k He_k)")
        return PolynomialActivation(tuple(finite_number("activation.he_coefficients", c) for c in coefficients))
    if name == "mmn18":
        allowed = {"t1", "t2", "s1", "s2"}
        _reject_unknown(params, allowed, name)
        return mmn18_activation(**{k: finite_number(f"activation.{k}", v) for k, v in params.items()})
    if name == "relu":
        _reject_unknown(params, set(), name)
        return relu_activation()
    if name in _SMOOTH:
        _reject_unknown(params, set(), name)
        f, df = _SMOOTH[name]
        return SmoothActivation(f, df, name=name)
    if name == "piecewise_linear":
        _reject_unknown(params, {"intercept", "slope", "knots", "jumps"}, name)
        return PiecewiseLinearActivation(
            finite_number("activation.intercept", params.get("intercept", 0.0)),
            finite_number("activation.slope", params.get("slope", 0.0)),
            tuple(finite_number("activation.knots", k) for k in _listed("activation.knots", params.get("knots", ()))),
            tuple(finite_number("activation.jumps", a) for a in _listed("activation.jumps", params.get("jumps", ()))))
    allowed = ", ".join(ACTIVATION_NAMES + (("he<k>", "polynomial") if polynomial else ()))
    raise ValueError(f"activation.name = {name!r} is not known; allowed: {allowed} "
                     "(or pass an Activation instance, e.g. SmoothActivation(f, df))")


def _reject_unknown(params: dict[str, Any], allowed: set[str], name: str) -> None:
    unknown = set(params) - allowed
    if unknown:
        fields = ", ".join(f"activation.{key}" for key in sorted(unknown))
        raise ValueError(f"{fields}: unknown parameter(s) of activation {name!r}; "
                         f"allowed: {sorted(allowed) or 'none'}")
