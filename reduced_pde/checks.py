"""Input checks shared by the core modules and the solvers (imports nothing of the package).

Each returns the parsed value or raises ``ValueError`` whose one-line message names the field, the
value and what is allowed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["finite_number"]


def finite_number(field: str, value: Any) -> float:
    """``float(value)`` for a finite real number (not a bool; numpy scalars allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{field} = {value!r} must be a finite number")
    return float(value)
