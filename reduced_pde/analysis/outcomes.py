"""Outcome of a training run read from its risk curve R(t): the time it reaches a risk level, its
late logarithmic slope, and whether it stalled — the quantities of a phase diagram.

Conventions: t is PDE time (t = kε, design note), R the risk without ½.  Between two outputs the risk
is interpolated linearly in (ln t, ln R) (power law between outputs), so a crossing time is exact
for a power-law segment and otherwise carries the interpolation error of the output spacing.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

__all__ = ["time_to_level", "final_slope", "classify_outcome", "OUTCOMES"]

#: outcome labels, in the integer code order of :func:`classify_outcome`
OUTCOMES = ("reached", "stalled", "decreasing")


def _curve(time: np.ndarray, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    time, risk = np.asarray(time, dtype=float), np.asarray(risk, dtype=float)
    if time.ndim != 1 or time.shape != risk.shape:
        raise ValueError(f"time {time.shape} and risk {risk.shape} must be 1-D arrays of one length")
    keep = np.isfinite(time) & np.isfinite(risk)
    return time[keep], risk[keep]


def time_to_level(time: np.ndarray, risk: np.ndarray, level: float) -> float:
    """The first time t with R(t) ≤ ``level`` (0 if R(0) ≤ level; NaN if never reached on the curve),
    interpolating ln R linearly in ln t between the two outputs around the crossing (linearly in t
    on the first interval when it starts at t = 0)."""
    if not (isinstance(level, (int, float)) and math.isfinite(level) and level > 0):
        raise ValueError(f"level = {level!r} must be a finite risk > 0")
    time, risk = _curve(time, risk)
    below = np.flatnonzero(risk <= level)
    if below.size == 0:
        return math.nan
    i = int(below[0])
    if i == 0:
        return float(time[0])
    t0, t1, r0, r1 = time[i - 1], time[i], risk[i - 1], risk[i]
    if t0 <= 0 or r1 <= 0:
        return float(t0 + (t1 - t0) * (r0 - level) / (r0 - r1))
    fraction = math.log(r0 / level) / math.log(r0 / r1)
    return float(math.exp(math.log(t0) + fraction * math.log(t1 / t0)))


def final_slope(time: np.ndarray, risk: np.ndarray, decades: float = 0.5) -> float:
    """d ln R / d ln t over the last ``decades`` decades of the curve (between the last output and the
    first output at or after t_final·10^(−decades)); NaN when the curve is shorter than that."""
    time, risk = _curve(time, risk)
    positive = time > 0
    time, risk = time[positive], risk[positive]
    if time.size < 2 or risk[-1] <= 0:
        return math.nan
    start = int(np.searchsorted(time, time[-1] * 10.0 ** (-decades)))
    if start >= time.size - 1 or risk[start] <= 0:
        return math.nan
    return float(math.log(risk[-1] / risk[start]) / math.log(time[-1] / time[start]))


def classify_outcome(time: np.ndarray, risk: np.ndarray, level: float, *, flat: float = 0.05,
                     decades: float = 0.5) -> Literal[0, 1, 2]:
    """0 "reached": R ≤ ``level`` by the end of the curve; 1 "stalled": not reached and the risk is flat
    at the end (|d ln R/d ln t| < ``flat`` over the last ``decades`` decades); 2 "decreasing": not
    reached and still falling.  A stall is a statement about the horizon of the curve: a plateau longer
    than it (MMN18 at small κ) is a stall here."""
    if not math.isnan(time_to_level(time, risk, level)):
        return 0
    slope = final_slope(time, risk, decades)
    return 1 if math.isfinite(slope) and abs(slope) < flat else 2
