"""Input checks shared by the core modules and the solvers (imports nothing of the package).

Each returns the parsed value or raises ``ValueError`` whose one-line message names the field, the
value and what is allowed.

**The range of a real parameter.**  Every real configuration value (a model parameter, a scale, a
time, a rate) must be 0 or have a magnitude in ``[1e-50, 1e50]`` (:data:`PARAMETER_LIMIT`).  The
quantities a run computes are products and quotients of a few of them (a risk is of degree 4 to 6:
``a² σ(κ s r)²``, ``ξ ε / κ²`` ...), and with every factor inside ``1e±50`` a product of six stays
inside the double-precision range ``1e±308``; a value outside it (``1e300``, ``1e-300``) would
overflow to inf or underflow to 0 inside the run instead of being refused before it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["finite_number", "check_magnitude", "PARAMETER_LIMIT"]

#: the largest magnitude (and the inverse of the smallest non-zero one) of a real parameter
PARAMETER_LIMIT = 1e50


def check_magnitude(field: str, x: float, value: Any = None) -> float:
    """``x`` if it is 0 or ``1e-50 <= |x| <= 1e50`` (module docstring), else ValueError naming the field."""
    if x != 0.0 and not (1.0 / PARAMETER_LIMIT <= abs(x) <= PARAMETER_LIMIT):
        shown = value if value is not None else x
        raise ValueError(f"{field} = {shown!r} is outside the range of a parameter: 0 or 1e-50 <= |value| <= 1e50 "
                         "(products of a few parameters must stay inside double precision, 1e±308)")
    return x


def finite_number(field: str, value: Any) -> float:
    """``float(value)`` for a finite real number (not a bool; numpy scalars allowed) in the range of
    :func:`check_magnitude`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{field} = {value!r} must be a finite number")
    try:
        x = float(value)
    except OverflowError:  # an integer beyond the float range (10**400)
        x = math.inf
    if not math.isfinite(x):
        raise ValueError(f"{field} = {value!r} must be a finite number")
    return check_magnitude(field, x, value)
