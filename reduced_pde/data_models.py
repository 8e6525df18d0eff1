"""Data distributions.

:class:`IsotropicGaussianMixture` is the MMN18 classification problem:
``y = ±1`` with probability ½ each and ``x | y ~ N(0, (1 + yΔ)² I_d)``.
Its law is invariant under every rotation of x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["IsotropicGaussianMixture"]


@dataclass(frozen=True)
class IsotropicGaussianMixture:
    """``y = ±1`` (prob. ½), ``x | y ~ N(0, (1 + yΔ)² I_d)``; ``d = inf`` allowed for reductions."""

    delta: float
    dimension: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.delta < 1.0):
            raise ValueError(f"data.delta = {self.delta} must lie in [0, 1)")
        if not (self.dimension >= 2):
            raise ValueError(f"data.dimension = {self.dimension} must be >= 2 (or inf)")
        if not math.isinf(self.dimension) and self.dimension != int(self.dimension):
            raise ValueError(f"data.dimension = {self.dimension} must be an integer or inf")

    #: labels and their probabilities
    labels: tuple[float, float] = (1.0, -1.0)
    label_probabilities: tuple[float, float] = (0.5, 0.5)

    @property
    def class_scales(self) -> tuple[float, float]:
        """Standard deviation ``1 + yΔ`` of each coordinate of x for y = +1, −1."""
        return (1.0 + self.delta, 1.0 - self.delta)

    @property
    def target_second_moment(self) -> float:
        return 1.0

    def sample(self, n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n_samples`` iid pairs (x, y); x has shape (n_samples, d)."""
        if math.isinf(self.dimension):
            raise ValueError("cannot sample x in dimension d = inf")
        y = np.where(rng.random(n_samples) < 0.5, 1.0, -1.0)
        x = rng.standard_normal((n_samples, int(self.dimension)))
        x *= (1.0 + self.delta * y)[:, None]
        return x, y

    def config(self) -> dict[str, Any]:
        return {"model": "isotropic_gaussian_mixture", "delta": self.delta, "dimension": self.dimension}
