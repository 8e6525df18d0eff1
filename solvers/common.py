"""What every solver shares: the one error class and the input checks.

* :class:`SolverError` — raised by every simulation (grid solvers, characteristics, SGD) when its
  time stepping stops (non-finite or negative density, step budget, dt underflow, integrator failure).
  Input errors are not solver errors: bad input raises ``ValueError``/``TypeError`` before anything runs.
* :func:`validate_output_times` — output times: 1-D, non-empty, finite, strictly increasing, >= start.
* :func:`check_number` — a real number in an interval (open or closed at the lower end).
* :func:`check_integer` — an integer (not a bool) >= a minimum.
* :func:`check_instance` — an argument of the expected class (a problem, a schedule, a network).
* :func:`check_memory` — an allocation of a known size against the memory this machine has.

Every message names the field, its value and what is allowed, on one line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SolverError", "MEMORY_LIMIT", "available_memory", "check_instance", "check_integer", "check_memory", "check_number", "require_increasing",
           "validate_output_times"]


class SolverError(RuntimeError):
    """A simulation stopped while stepping (non-finite or negative density, step budget, dt underflow,
    integrator failure); the message names the time and where it happened."""


def check_number(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    """``float(value)`` if it lies in ``[low, high]`` (``(low, high]`` with ``low_open``), else
    ``ValueError`` naming ``name``, the value and the interval (NaN is refused; ``high`` may be ∞)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    if isinstance(value, bool):
        raise ValueError(f"{name} = {value!r} must be a number in {interval}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} = {value!r} must be a number in {interval}") from None
    ok = (x > low if low_open else x >= low) and x <= high and not math.isnan(x)
    if not ok:
        raise ValueError(f"{name} = {value!r} must lie in {interval}")
    return x


def check_integer(name: str, value: Any, minimum: int) -> int:
    """``int(value)`` for an integer (Python or numpy, not bool) ``>= minimum``, else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} = {value!r} must be an integer >= {minimum}")
    return int(value)


def check_instance(name: str, value: Any, expected: type | tuple[type, ...], *, optional: bool = False) -> Any:
    """``value`` if it is an instance of ``expected`` (or None with ``optional``), else ``TypeError``
    naming ``name``, the value's type and the class expected."""
    if (optional and value is None) or isinstance(value, expected):
        return value
    names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
    raise TypeError(f"{name} = {value!r} ({type(value).__name__}) must be a {names}{' or None' if optional else ''}")


def available_memory() -> int:
    """MemAvailable of /proc/meminfo in bytes (2^63 where it cannot be read)."""
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**63


#: memory a run may take without ``allow_large`` (bytes; ``--allow-large`` on the command line)
MEMORY_LIMIT = 4 * 2**30


def check_memory(name: str, n_bytes: float, what: str, *, allow_large: bool = True) -> None:
    """``ValueError`` naming ``name`` when allocating ``n_bytes`` for ``what`` would exceed 80% of the
    memory this machine has available (MemAvailable), or, unless ``allow_large``, :data:`MEMORY_LIMIT`
    (the soft limit of the command line's ``--allow-large``), before the allocation is attempted."""
    available = available_memory()
    text = f"{name} implies {n_bytes / 2**30:.3g} GiB for {what}"
    if n_bytes > 0.8 * available:
        raise ValueError(f"{text}; this machine has {available / 2**30:.3g} GiB available: reduce it")
    if n_bytes > MEMORY_LIMIT and not allow_large:
        raise ValueError(f"{text}, more than {MEMORY_LIMIT / 2**30:.3g} GiB; reduce it or pass --allow-large "
                         "(allow_large=True)")


def validate_output_times(output_times: Sequence[float], start: float = 0.0) -> np.ndarray:
    """Output times as a float array: 1-D, non-empty, finite, strictly increasing, >= ``start``."""
    times = np.asarray(output_times, dtype=float)
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"output_times must be a non-empty 1-D sequence, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError(f"output_times = {times} must be finite")
    if times[0] < start:
        raise ValueError(f"output_times[0] = {times[0]:g} must be >= {start:g} (the current time)")
    require_increasing(times, "output_times", "output_times")
    return times


def require_increasing(values: np.ndarray, what: str, name: str, digits: str = "g") -> None:
    """Refuse a 1-D array that is not strictly increasing, naming the first offending pair:
    ``"<what> must be strictly increasing: <name>[k+1] = … <= <name>[k] = …"``."""
    steps = np.diff(values)
    if np.any(steps <= 0):
        k = int(np.argmax(steps <= 0))
        raise ValueError(f"{what} must be strictly increasing: {name}[{k + 1}] = {values[k + 1]:{digits}} <= "
                         f"{name}[{k}] = {values[k]:{digits}}")
