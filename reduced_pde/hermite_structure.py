"""The Hermite/index structure of a reduced problem: what the plateau and time-scale analysis reads.

A Gaussian index model (design note §3b–c) has data ``x ~ N(0, I_d)``, labels ``y = φ(Θ* x) + ε``
(``Θ*`` with k orthonormal rows, label noise of variance τ²) and neurons ``a σ(⟨w, x⟩)``.  Its risk
levels, learnable degrees and Hermite order parameters (:mod:`reduced_pde.analysis.plateaus`) depend
on the problem only through

* the target's spectrum (:class:`TargetSpectrum`): the energies ``E_K = Σ_{|i|=K} φ̂_i²`` of the
  total-degree blocks in the orthonormal basis ``h_i = Π_l He_{i_l}/sqrt(i_l!)`` (single-index:
  ``E_k = φ̂_k² = k! c_k²``), the tails ``Σ_{|i|>P} φ̂_i²``, ``E φ²``, τ², the exact degree of a
  polynomial φ, k, and for k = 1 the signed coefficients ``φ̂_k``;
* the activation's normalized Hermite coefficients ``α_K(n) = E[σ(nG) h_K(G)]``
  (:class:`ActivationSpectrum`) at the scales ``n = |w|`` the neurons can take: every n >= 0 in the
  ball, the single value n = 1 on the sphere |w| = 1;
* which reduced coordinates are the second layer a (or its fixed value), the alignments
  ``s = Θ* w`` (k of them) and the orthogonal norm ``r = |w − Θ*ᵀ s|`` (absent on the sphere).

:class:`HermiteStructure` gathers them.  A problem declares it through
:meth:`~reduced_pde.problem.ReducedProblem.hermite_structure` (None for problems without it, e.g. the
isotropic mixture of MMN18); :meth:`HermiteStructure.from_specs` builds a partial one (target only,
activation only) from specifications, for the theory levels of a target without a problem.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from reduced_pde.activations import make_activation

__all__ = ["ActivationSpectrum", "HermiteStructure", "TargetSpectrum"]


@dataclass(frozen=True)
class TargetSpectrum:
    """Hermite spectrum of a target ``y = φ(z) + ε``, ``z ∈ R^k`` (module docstring).

    ``block_energies(P)`` → ``E_K = Σ_{|i|=K} φ̂_i²`` for K = 0..P, shape (P + 1,);
    ``tail(P)`` → ``Σ_{|i|>P} φ̂_i²`` (>= 0); ``coefficients(P)`` → the signed ``φ̂_k``, k = 0..P
    (single-index targets only, None for k >= 2, whose degree blocks hold several coefficients)."""

    index_dimension: int
    #: τ², the variance of the label noise ε
    noise_variance: float
    #: ``E φ(z)²``
    second_moment: float
    #: the total degree of φ when it is a polynomial (every series terminates), else None
    exact_degree: int | None
    block_energies: Callable[[int], np.ndarray]
    tail: Callable[[int], float]
    coefficients: Callable[[int], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index_dimension, bool) or not isinstance(self.index_dimension, (int, np.integer)) \
                or self.index_dimension < 1:
            raise ValueError(f"index_dimension = {self.index_dimension!r} must be an integer >= 1")
        for name, value in (("noise_variance", self.noise_variance), ("second_moment", self.second_moment)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} = {value!r} must be finite and >= 0")
        if self.exact_degree is not None and not (isinstance(self.exact_degree, (int, np.integer))
                                                  and self.exact_degree >= 0):
            raise ValueError(f"exact_degree = {self.exact_degree!r} must be None or an integer >= 0")
        if self.coefficients is not None and self.index_dimension != 1:
            raise ValueError(f"coefficients is for single-index targets; index_dimension = {self.index_dimension}")

    @property
    def label_second_moment(self) -> float:
        """``E y² = E φ² + τ²``."""
        return self.second_moment + self.noise_variance

    @classmethod
    def of_single_index(cls, target: Any) -> TargetSpectrum:
        """The spectrum of a :class:`~reduced_pde.targets.SingleIndexTarget` (``E_k = φ̂_k²``)."""
        def energies(degree: int) -> np.ndarray:
            return np.asarray(target.coefficients(degree), dtype=float) ** 2

        return cls(index_dimension=1, noise_variance=float(target.noise_variance),
                   second_moment=float(target.second_moment), exact_degree=target.exact_degree,
                   block_energies=energies, tail=target.tail, coefficients=target.coefficients)


@dataclass(frozen=True)
class ActivationSpectrum:
    """``α_K(n) = E[σ(nG) h_K(G)]``: ``coefficients(n, P)`` → shape ``(P + 1,) + n.shape``.

    ``fixed_scale``: the norm n = |w| every neuron has (1 on the sphere), or None when n ranges over
    [0, ∞) (the ball)."""

    coefficients: Callable[[np.ndarray, int], np.ndarray]
    fixed_scale: float | None = None

    def __post_init__(self) -> None:
        if self.fixed_scale is not None and not (math.isfinite(self.fixed_scale) and self.fixed_scale > 0):
            raise ValueError(f"fixed_scale = {self.fixed_scale!r} must be None or a finite number > 0")


@dataclass(frozen=True)
class HermiteStructure:
    """What the Hermite analysis reads from a problem (module docstring).

    ``coordinate_names``: the problem's coordinates, in order; among them ``alignment_coordinates``
    (s, or s1..sk), ``orthogonal_coordinate`` (r; None when the activation has a fixed scale, i.e. on
    the sphere) and ``second_layer_coordinate`` (a, when trained; else the constant ``second_layer``).
    ``target`` or ``activation`` is None in a partial structure built from specifications; the
    analysis functions name the part they miss."""

    target: TargetSpectrum | None
    activation: ActivationSpectrum | None
    coordinate_names: tuple[str, ...] = ()
    alignment_coordinates: tuple[str, ...] = ()
    orthogonal_coordinate: str | None = None
    second_layer_coordinate: str | None = None
    second_layer: float | None = None

    def __post_init__(self) -> None:
        names = tuple(self.coordinate_names)
        roles = list(self.alignment_coordinates) + [c for c in (self.orthogonal_coordinate,
                                                                 self.second_layer_coordinate) if c is not None]
        missing = [c for c in roles if c not in names]
        if missing:
            raise ValueError(f"coordinates {missing} are not among coordinate_names = {names}")
        if not names:
            return
        if not self.alignment_coordinates:
            raise ValueError(f"alignment_coordinates is empty for coordinate_names = {names}")
        if self.target is not None and len(self.alignment_coordinates) != self.target.index_dimension:
            raise ValueError(f"alignment_coordinates = {self.alignment_coordinates} must have index_dimension = "
                             f"{self.target.index_dimension} entries")
        if self.second_layer_coordinate is None and (self.second_layer is None
                                                     or not math.isfinite(self.second_layer)):
            raise ValueError(f"second_layer = {self.second_layer!r}: a finite value is needed when no coordinate "
                             "is the second layer")
        fixed = self.activation is not None and self.activation.fixed_scale is not None
        if not fixed and self.orthogonal_coordinate is None:
            raise ValueError(f"orthogonal_coordinate = None needs an activation with a fixed_scale (neurons on "
                             f"the sphere); coordinate_names = {names}")

    @classmethod
    def from_specs(cls, target: Any = None, activation: Any = None, *, sphere: bool = False) -> HermiteStructure:
        """A partial structure (no coordinates) from a single-index target specification
        (:func:`~reduced_pde.targets.make_target`: ``{"he": [c_0, ...]}``, ``{"name": "relu"}``, a target
        object, ...) and/or an activation specification (``"tanh"``, ``"he3"``, ``{"name": "polynomial",
        "he_coefficients": [...]}``, an activation object); ``sphere``: the neurons have n = |w| = 1."""
        from reduced_pde.targets import make_target

        if target is None and activation is None:
            raise ValueError("HermiteStructure.from_specs: give a target, an activation, or both")
        spectrum = None
        if target is not None:
            try:
                spectrum = TargetSpectrum.of_single_index(make_target(target))
            except ValueError as error:
                raise ValueError(f"target: {error}") from None
        coefficients = None
        if activation is not None:
            try:
                sigma = make_activation(activation, polynomial=True)
            except ValueError as error:
                raise ValueError(f"activation: {error}") from None
            coefficients = ActivationSpectrum(sigma.hermite_coefficients, 1.0 if sphere else None)
        return cls(target=spectrum, activation=coefficients)
