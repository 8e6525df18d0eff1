"""Learning-rate profile ξ(t) of the design note (step size s_k = ε ξ(kε), time t = kε).

``ξ(t) = xi0 · (1 + t / t0)^(−alpha)``: constant for ``alpha = 0``; behaves like ``t^(−alpha)`` for
``t ≫ t0`` while staying finite at t = 0.  The same three numbers drive the compiled PDE loop
and SGD, so both see the same ξ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LearningRateSchedule"]


@dataclass(frozen=True)
class LearningRateSchedule:
    xi0: float = 1.0
    alpha: float = 0.0
    t0: float = 1.0

    def __post_init__(self) -> None:
        if not self.xi0 > 0:
            raise ValueError(f"schedule.xi0 = {self.xi0} must be > 0")
        if not self.alpha >= 0:
            raise ValueError(f"schedule.alpha = {self.alpha} must be >= 0")
        if not self.t0 > 0:
            raise ValueError(f"schedule.t0 = {self.t0} must be > 0")

    def __call__(self, t: np.ndarray | float) -> np.ndarray | float:
        return self.xi0 * (1.0 + np.asarray(t, dtype=float) / self.t0) ** (-self.alpha)

    def as_tuple(self) -> tuple[float, float, float]:
        """(xi0, alpha, t0), the form the compiled loops take."""
        return (self.xi0, self.alpha, self.t0)

    def config(self) -> dict[str, Any]:
        return {"xi0": self.xi0, "alpha": self.alpha, "t0": self.t0}
