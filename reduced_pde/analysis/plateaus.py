"""Loss plateaus: detection on any risk curve, Hermite theory levels, and Hermite order parameters.

Conventions (design note §1–§2): the risk is ``R = E[(y − f(x))²]`` (no ½); time is the PDE time
of ``∂_t ρ = 2ξ ∇·(ρ ∇Ψ)`` (SGD step k ↔ t = k ε), but nothing here depends on the time unit —
plateaus are found on a logarithmic time axis, so a change of unit only shifts them.

1. Detection (:func:`detect_plateaus`, :func:`risk_slope`)
----------------------------------------------------------
Let ``x = log10 t`` and ``y = ln R``.  The curve is first averaged in bins of width
``Δ = smoothing / bins_per_smoothing`` decades (arithmetic mean of R in each bin, then the log, so
that zero-mean noise on R — SGD risk estimates — is averaged before the non-linear log), then a
Gaussian-weighted local linear regression of y on x, kernel standard deviation ``smoothing``
decades, one weight per non-empty bin, gives at every bin centre the smoothed log-risk ``ȳ`` and the
log-log slope

    S(t) = d ln R / d ln t       (smoothed).

Because every non-empty bin has the same weight whatever its number of samples, the estimator does
not depend on how the time grid is spaced (uniform, logarithmic, or an SGD log with millions of
points): on a dense grid it is the Gaussian convolution of the exact slope,
``S_σ = S ∗ φ_σ`` with ``σ = smoothing · ln 10`` in ln t (integrate ``∫ φ_σ(u) u y(x+u) du`` by
parts), and ``ȳ = y ∗ φ_σ``.  ``smoothing`` is the noise parameter: on data with relative noise η
per sample and c samples per bin, the standard error of S is about
``η / (sqrt(c · n_bins) · σ)`` with n_bins ≈ 2.5 ``bins_per_smoothing`` bins under the kernel; it
is estimated from the scatter inside the bins (``slope_standard_error``) and a warning is issued
when it exceeds ``threshold / 4`` at a plateau boundary (then raise ``smoothing``).  A larger ``smoothing`` delays and blurs the detected
entry and exit by about ``smoothing`` decades: keep it below the shortest plateau.

**Definition.**  A *plateau* is a maximal time interval on which ``|S| < threshold`` and whose
length is at least ``min_duration`` decades (``log10(exit/entry) >= min_duration``).  Its entry and
exit times are where ``|S|`` crosses ``threshold`` (linear interpolation between bin centres); a
plateau that reaches the first (last) analysed time has that time as entry (exit).  Its *height*
is the median of the smoothed risk ``exp(ȳ)`` over the plateau's bin centres (a median over log
time).  The *drop* that ends it is the stretch up to the entry of the next flat interval (of any
length) or the end of the data: ``drop_time`` is where S is most negative there (parabolic
refinement between bin centres), ``risk_after`` the smoothed risk at the next flat entry, or the
last smoothed value.  A plateau that runs to the end of the data has ``drop_time = risk_after =
None``.  Times before ``ignore_before`` (the initial transient) and ``t <= 0`` are not analysed.
Risks below ``risk_floor`` (default ``1e−12 max R``, round-off) are clipped to it and a plateau at
the floor (height <= 10 risk_floor) is not reported.

2. Theory levels (:func:`hermite_plateau_heights`, :func:`match_plateaus`)
------------------------------------------------------------------------
With ``φ = Σ_k c_k He_k = Σ_k φ̂_k h_k`` (``h_k = He_k / sqrt(k!)``, ``φ̂_k = c_k sqrt(k!)``,
:mod:`reduced_pde.targets`) and label noise of variance τ², a predictor that has fitted exactly the
components of degree ``<= ℓ`` (and nothing else) has risk

    R_ℓ = τ² + Σ_{k>ℓ} φ̂_k² = τ² + Σ_{k>ℓ} k! c_k²,        R_{−1} = E[y²] = τ² + E φ².

For a multi-index target the same holds with the energy of the total degree ``|i| = k`` block.

Components the network cannot represent.  A neuron's Hermite coefficient of degree k along θ* is
``a α_k(n) ρ^k`` (§3), so a degree whose activation coefficient ``α_k(n)`` vanishes at every scale n
(odd σ: every even k, tanh cannot fit He_0 or He_2; ReLU: odd k >= 3; a polynomial σ of degree p:
k > p) is never learnt, whatever the dynamics: its energy stays in every level (multi-index: the
degree-|i| block, whose neuron coefficients are ``a α_|i|(n) Π ρ_j^{i_j}``).  Given the
activation (a problem's structure carries one), the levels run over the learnable degrees only,

    R_ℓ = τ² + Σ_{k>ℓ, k learnable} φ̂_k² + Σ_{k unlearnable} φ̂_k²,

and the unlearnable degrees are reported (:func:`unlearnable_degrees`).

3. Order parameters (:func:`hermite_order_parameters`)
------------------------------------------------------
The network ``f(x) = ∫ a σ(⟨w, x⟩) dρ`` has, along θ*, the Hermite coefficients
``m_k = E[f(x) He_k(z)] / k!`` (so that ``m_k = c_k`` when the degree-k component is learnt).
Derivation: with ``n = |w|``, ``G = ⟨w,x⟩/n`` and ``z = ⟨θ*,x⟩`` are standard normals with
correlation ``ρ = s/n``; write ``σ(nG) = Σ_j α_j(n) h_j(G)``; Mehler's formula
``E[h_j(G) h_k(z)] = δ_jk ρ^k`` gives ``E[σ(⟨w,x⟩) h_k(z)] = α_k(n) ρ^k``, hence

    m_k = (1/sqrt(k!)) ∫ a α_k(n) (s/n)^k dρ(a, s, r),      m̂_k = sqrt(k!) m_k = ∫ a α_k(n) ρ^k dρ,

(n = 1, ρ = s on the sphere; n = 0 contributes ``a σ(0) δ_k0``).  The potential is
``v = −Σ_k φ̂_k a α_k(n) ρ^k``, so ``∫ v dρ = −Σ_k φ̂_k m̂_k`` and, by Bessel's inequality,
``R >= τ² + Σ_k (φ̂_k − m̂_k)²``: the component residuals
``(φ̂_k − m̂_k)² = k! (c_k − m_k)²`` (:func:`hermite_component_residuals`) say which component is
learnt at each drop.

Input.  §2 and §3 read a problem only through its declared Hermite/index structure,
:class:`~reduced_pde.hermite_structure.HermiteStructure` (``problem.hermite_structure()``: the target's
block energies, tails, noise and exact degree, the activation's ``α_k(n)`` at the scales the neurons
take, and which coordinates are a, s, r); a problem without one (None, e.g. MMN18's mixture) is refused
with a ValueError.  ``HermiteStructure.from_specs(target=..., activation=...)`` gives the levels of a
target, or the unlearnable degrees of an activation, without a problem.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reduced_pde.hermite_structure import HermiteStructure

__all__ = [
    "Plateau",
    "PlateauComparison",
    "PlateauMatch",
    "RiskSlope",
    "TheoryLevel",
    "compare_plateaus",
    "comparison_table",
    "detect_plateaus",
    "hermite_block_energies",
    "hermite_component_residuals",
    "hermite_order_parameters",
    "hermite_plateau_heights",
    "match_plateaus",
    "merge_repeated_times",
    "risk_slope",
    "unlearnable_degrees",
]

_LN10 = math.log(10.0)
_EDGE_OFFSET = (math.sqrt(5.0) - 1.0) / 2.0


# --------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plateau:
    """One plateau of a risk curve (module docstring §1).  Times in the curve's unit."""

    index: int
    height: float
    entry_time: float
    exit_time: float
    drop_time: float | None
    risk_after: float | None

    @property
    def duration_decades(self) -> float:
        """``log10(exit_time / entry_time)``."""
        return math.log10(self.exit_time / self.entry_time)


@dataclass(frozen=True)
class TheoryLevel:
    """``R_ℓ`` (module docstring §2): the risk once the degrees ``<= fitted_degree`` are fitted
    (``fitted_degree = −1``: nothing fitted, ``R = E y²``); ``next_degree`` is the next degree with a
    non-zero coefficient (learnt at the drop out of this level), None for the last level."""

    fitted_degree: int
    height: float
    next_degree: int | None


@dataclass(frozen=True)
class PlateauMatch:
    """A detected plateau assigned to the theory level nearest in ``ln R``."""

    plateau: Plateau
    level: TheoryLevel
    #: ``ln(height / level.height)``
    log_error: float
    #: the level nearest to ``plateau.risk_after`` (None for an open plateau)
    level_after: TheoryLevel | None
    #: non-zero degrees between ``level`` and ``level_after`` (the components learnt at the drop)
    degrees_learnt: tuple[int, ...]

    @property
    def relative_error(self) -> float:
        """``height / level.height − 1``."""
        return math.expm1(self.log_error)


@dataclass(frozen=True)
class RiskSlope:
    """Smoothed log-log description of a risk curve at the bin centres (module docstring §1)."""

    time: np.ndarray  # (B,) bin centres 10^{mean log10 t}
    risk: np.ndarray  # (B,) smoothed risk exp(ȳ)
    slope: np.ndarray  # (B,) S = d ln R / d ln t (smoothed)
    slope_standard_error: np.ndarray  # (B,) noise estimate of S from the residuals
    bin_risk: np.ndarray  # (B,) bin-averaged risk
    counts: np.ndarray  # (B,) samples per bin
    risk_floor: float
    first_time: float  # first analysed time
    last_time: float  # last analysed time


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _positive_finite(name: str, value: Any, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} = {value!r} must be a finite number {'>=' if allow_zero else '>'} 0")
    return v


def _check_curve(time: Any, risk: Any) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, values in (("time", time), ("risk", risk)):
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a 1-D array of numbers, got {type(values).__name__}") from None
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"{name}[{bad[0]}] = {arr[bad[0]]} is not finite ({bad.size} non-finite "
                             "value(s)); NaN/inf are not allowed")
        arrays.append(arr)
    t, r = arrays
    if t.shape != r.shape:
        raise ValueError(f"time has shape {t.shape} but risk has shape {r.shape}; they must match")
    if t.size < 3:
        raise ValueError(f"time has {t.size} point(s); at least 3 are needed")
    return merge_repeated_times(t, r)


def merge_repeated_times(time: np.ndarray, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check that ``time`` is non-decreasing and >= 0 and merge runs of equal times into one sample
    (mean risk): an SGD file whose output times are finer than its step records the nearest step
    ``kε`` several times.  Decreasing times raise a ValueError naming the index."""
    t = np.asarray(time, dtype=float)
    r = np.asarray(risk, dtype=float)
    steps = np.diff(t)
    bad = np.flatnonzero(steps < 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"time must be non-decreasing: time[{i}] = {t[i]} > time[{i + 1}] = {t[i + 1]}")
    if t.size and t[0] < 0:
        raise ValueError(f"time[0] = {t[0]} must be >= 0")
    if np.all(steps > 0):
        return t, r
    unique, start = np.unique(t, return_index=True)
    counts = np.diff(np.append(start, t.size))
    return unique, np.add.reduceat(r, start) / counts


# --------------------------------------------------------------------------------------------
# Smoothed log-log slope
# --------------------------------------------------------------------------------------------


def risk_slope(time: Any, risk: Any, *, smoothing: float = 0.1, bins_per_smoothing: int = 5,
               ignore_before: float | None = None, risk_floor: float | None = None) -> RiskSlope:
    """Smoothed risk and log-log slope ``S = d ln R / d ln t`` of a risk curve (module docstring §1).

    ``smoothing``: standard deviation of the Gaussian kernel, in decades of t.  ``bins_per_smoothing``:
    bins of width ``smoothing / bins_per_smoothing`` decades.  ``ignore_before``: analyse only
    ``t >= ignore_before`` (and always only t > 0).  ``risk_floor``: smaller risks (round-off) are
    clipped to it; default ``1e−12 max R``; a risk below ``−risk_floor`` is an error.
    """
    t, r = _check_curve(time, risk)
    sigma = _positive_finite("smoothing", smoothing)
    if not (isinstance(bins_per_smoothing, (int, np.integer)) and bins_per_smoothing >= 2):
        raise ValueError(f"bins_per_smoothing = {bins_per_smoothing!r} must be an integer >= 2")
    scale = float(np.max(np.abs(r)))
    if scale == 0.0:
        raise ValueError("risk is identically 0: there is no curve to analyse")
    floor = 1e-12 * scale if risk_floor is None else _positive_finite("risk_floor", risk_floor)
    negative = np.flatnonzero(r < -floor)
    if negative.size:
        i = int(negative[0])
        raise ValueError(f"risk[{i}] = {r[i]} at time {t[i]} is negative (below −risk_floor = {-floor}); "
                         "a risk is >= 0")
    start = 0.0 if ignore_before is None else _positive_finite("ignore_before", ignore_before, allow_zero=True)
    keep = (t > 0) & (t >= start)
    if np.count_nonzero(keep) < 3:
        raise ValueError(f"fewer than 3 times with t > 0 and t >= ignore_before = {start}; nothing to analyse")
    x = np.log10(t[keep])
    values = np.maximum(r[keep], floor)
    width = sigma / bins_per_smoothing
    # bin edges at x[0] − 0.618 width + j width: the golden-ratio offset keeps the samples of any
    # grid with a rational number of points per bin off the edges (no round-off dependent binning)
    index = np.floor((x - x[0]) / width + _EDGE_OFFSET).astype(np.int64)
    counts_all = np.bincount(index)
    nonempty = counts_all > 0
    counts = counts_all[nonempty].astype(float)
    if counts.size < 3:
        raise ValueError(f"the analysed times span {counts.size} bin(s) of {width:g} decades; at least 3 "
                         "are needed (lower smoothing or give a longer curve)")
    xb = np.bincount(index, weights=x)[nonempty] / counts
    bin_risk = np.bincount(index, weights=values)[nonempty] / counts
    yb = np.log(bin_risk)

    diff = xb[None, :] - xb[:, None]  # (eval e, bin b)
    weights = np.exp(-0.5 * (diff / sigma) ** 2)
    total = weights.sum(axis=1)
    mean_x = weights @ xb / total
    mean_y = weights @ yb / total
    centred = xb[None, :] - mean_x[:, None]
    sxx = np.einsum("eb,eb->e", weights, centred**2)
    sxy = np.einsum("eb,eb,eb->e", weights, centred, yb[None, :] - mean_y[:, None])
    slope10 = sxy / sxx  # d ln R / d log10 t
    smooth_y = mean_y + slope10 * (xb - mean_x)

    unit = _relative_noise(index, nonempty, x, values, counts, xb, bin_risk, yb - smooth_y)
    variance = np.einsum("eb,eb,b->e", weights**2, centred**2, 1.0 / counts) * unit**2
    standard_error = np.sqrt(variance) / sxx / _LN10
    return RiskSlope(time=10.0**xb, risk=np.exp(smooth_y), slope=slope10 / _LN10,
                     slope_standard_error=standard_error, bin_risk=bin_risk, counts=counts,
                     risk_floor=floor, first_time=float(10.0 ** x[0]), last_time=float(10.0 ** x[-1]))


def _relative_noise(index: np.ndarray, nonempty: np.ndarray, x: np.ndarray, values: np.ndarray,
                    counts: np.ndarray, xb: np.ndarray, bin_risk: np.ndarray, residual: np.ndarray) -> float:
    """Per-sample relative noise η of R (so that ln of a bin mean has variance η²/count).

    From the scatter inside bins with >= 3 samples, about a linear trend in log t fitted inside
    each bin (so the decay of R across a bin is not counted as noise): the median over bins of
    ``RSS_b / ((c_b − 2) R̄_b²)``.  Without such bins, from the bins' residuals about the smoothed
    curve (median absolute deviation, scaled by sqrt(count)); this also counts the smoothing bias
    in drops, so it is an upper estimate.
    """
    rich = counts >= 3
    if np.any(rich):
        sums = {name: np.bincount(index, weights=w)[nonempty]
                for name, w in (("x", x), ("v", values), ("xx", x * x), ("xv", x * values), ("vv", values**2))}
        sxx = sums["xx"] - sums["x"] ** 2 / counts
        sxv = sums["xv"] - sums["x"] * sums["v"] / counts
        svv = sums["vv"] - sums["v"] ** 2 / counts
        rss = np.maximum(svv - np.where(sxx > 0, sxv**2 / np.where(sxx > 0, sxx, 1.0), 0.0), 0.0)
        eta_sq = rss[rich] / ((counts[rich] - 2.0) * bin_risk[rich] ** 2)
        return float(np.sqrt(np.median(eta_sq)))
    scaled = residual * np.sqrt(counts)
    return 1.4826 * float(np.median(np.abs(scaled - np.median(scaled))))


def _crossing(x: np.ndarray, s: np.ndarray, i: int, j: int, threshold: float) -> float:
    """x where |S| crosses ``threshold`` between bins i and j (linear interpolation of |S|)."""
    a, b = abs(s[i]), abs(s[j])
    if a == b:
        return 0.5 * (x[i] + x[j])
    weight = (threshold - a) / (b - a)
    return float(x[i] + min(max(weight, 0.0), 1.0) * (x[j] - x[i]))


def _log_time_median(x: np.ndarray, values: np.ndarray, i0: int, i1: int, x_in: float, x_out: float) -> float:
    """Median over log time of ``values`` on bins i0..i1: each bin centre stands for the part of
    [x_in, x_out] nearer to it than to its neighbours (so sparse early bins of a uniform grid are not
    under-weighted)."""
    centres = x[i0:i1 + 1]
    bounds = np.concatenate([[x_in], 0.5 * (centres[1:] + centres[:-1]), [x_out]])
    lengths = np.maximum(np.diff(bounds), 0.0)
    if not np.any(lengths > 0):
        return float(np.median(values[i0:i1 + 1]))
    order = np.argsort(values[i0:i1 + 1])
    cumulative = np.cumsum(lengths[order])
    k = int(np.searchsorted(cumulative, 0.5 * cumulative[-1]))
    return float(values[i0:i1 + 1][order][k])


def _steepest(x: np.ndarray, s: np.ndarray, lo: int, hi: int) -> float:
    """x of the most negative S on bins lo..hi (parabolic refinement through the neighbours)."""
    k = lo + int(np.argmin(s[lo:hi + 1]))
    if 0 < k < x.size - 1:
        x0, x1, x2 = x[k - 1], x[k], x[k + 1]
        s0, s1, s2 = s[k - 1], s[k], s[k + 1]
        denominator = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (s1 - s0) + x1 * (s0 - s2) + x0 * (s2 - s1)) / denominator
        b = (x2**2 * (s0 - s1) + x1**2 * (s2 - s0) + x0**2 * (s1 - s2)) / denominator
        if a > 0:
            vertex = -b / (2 * a)
            if x0 <= vertex <= x2:
                return float(vertex)
    return float(x[k])


def detect_plateaus(time: Any, risk: Any, *, threshold: float = 0.1, smoothing: float = 0.1,
                    min_duration: float = 0.3, ignore_before: float | None = None,
                    risk_floor: float | None = None, bins_per_smoothing: int = 5) -> list[Plateau]:
    """Plateaus of a risk curve (definition in the module docstring §1).

    ``time`` (strictly increasing, >= 0) and ``risk`` (>= 0) are 1-D arrays of equal length, from a
    PDE trajectory or an SGD run, on any grid.  ``threshold``: largest ``|d ln R / d ln t|`` on a
    plateau.  ``smoothing``: Gaussian kernel width in decades (the noise parameter).
    ``min_duration``: shortest plateau, in decades.  ``ignore_before``: the initial transient to
    skip.  ``risk_floor``: round-off level (see :func:`risk_slope`).
    """
    thr = _positive_finite("threshold", threshold)
    shortest = _positive_finite("min_duration", min_duration, allow_zero=True)
    curve = risk_slope(time, risk, smoothing=smoothing, bins_per_smoothing=bins_per_smoothing,
                       ignore_before=ignore_before, risk_floor=risk_floor)
    x = np.log10(curve.time)
    s = curve.slope
    typical = float(np.median(curve.slope_standard_error))
    if typical > thr / 4:
        warnings.warn(f"the estimated noise of the log-log slope (median {typical:.3g}) exceeds threshold/4 = "
                      f"{thr / 4:.3g}: plateaus may be missed or split; increase smoothing", RuntimeWarning,
                      stacklevel=2)
    flat = np.abs(s) < thr
    # maximal runs of flat bins
    edges = np.diff(np.concatenate([[0], flat.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    runs = []
    for i0, i1 in zip(starts, ends):
        x_in = math.log10(curve.first_time) if i0 == 0 else _crossing(x, s, i0 - 1, i0, thr)
        x_out = math.log10(curve.last_time) if i1 == x.size - 1 else _crossing(x, s, i1, i1 + 1, thr)
        runs.append((int(i0), int(i1), x_in, x_out))
        boundary = [i for i in (i0 - 1, i0, i1, i1 + 1) if 0 < i < x.size - 1]
        noise = max((float(curve.slope_standard_error[i]) for i in boundary), default=0.0)
        if noise > thr / 4 and x_out - x_in >= shortest:
            warnings.warn(f"near the flat interval [{10.0**x_in:.4g}, {10.0**x_out:.4g}] the estimated noise of the "
                          f"log-log slope ({noise:.3g}) exceeds threshold/4 = {thr / 4:.3g}: its entry/exit may be "
                          "spurious; increase smoothing", RuntimeWarning, stacklevel=2)
    plateaus: list[Plateau] = []
    log_risk = np.log(curve.risk)
    for number, (i0, i1, x_in, x_out) in enumerate(runs):
        if x_out - x_in < shortest:
            continue
        height = float(np.exp(_log_time_median(x, log_risk, i0, i1, x_in, x_out)))
        if height <= 10.0 * curve.risk_floor:
            continue
        if i1 == x.size - 1:
            drop_time = risk_after = None
        else:
            if number + 1 < len(runs):
                nxt = runs[number + 1]
                last, x_after = nxt[0] - 1, nxt[2]
            else:
                last, x_after = x.size - 1, x[-1]
            drop_time = float(10.0 ** _steepest(x, s, i1 + 1, last))
            risk_after = float(np.exp(np.interp(x_after, x, log_risk)))
        plateaus.append(Plateau(index=len(plateaus), height=height, entry_time=float(10.0**x_in),
                                exit_time=float(10.0**x_out), drop_time=drop_time, risk_after=risk_after))
    return plateaus


# --------------------------------------------------------------------------------------------
# Theory levels
# --------------------------------------------------------------------------------------------


def _require(structure: Any, function: str, *, target: bool = False, activation: bool = False) -> HermiteStructure:
    """``structure`` if it is a :class:`HermiteStructure` with the parts ``function`` needs, else a
    ValueError (None: a problem without Hermite structure; a missing part) or TypeError naming them."""
    if structure is None:
        raise ValueError(f"{function}: structure = None; the problem has no Hermite/index structure "
                         "(ReducedProblem.hermite_structure() returned None, e.g. the isotropic mixture of MMN18): "
                         "theory levels and Hermite order parameters need a Gaussian index model y = φ(Θ* x) + ε")
    if not isinstance(structure, HermiteStructure):
        raise TypeError(f"{function}: structure = {type(structure).__name__} must be a HermiteStructure "
                        "(problem.hermite_structure(), or HermiteStructure.from_specs(target=..., activation=...))")
    if target and structure.target is None:
        raise ValueError(f"{function}: structure.target is None; it needs the target's Hermite spectrum "
                         "(HermiteStructure.from_specs(target=...) or a problem's hermite_structure())")
    if activation and structure.activation is None:
        raise ValueError(f"{function}: structure.activation is None; it needs the activation's Hermite "
                         "coefficients (HermiteStructure.from_specs(activation=...) or a problem's hermite_structure())")
    return structure


def _check_max_degree(max_degree: Any) -> int:
    if isinstance(max_degree, bool) or not (isinstance(max_degree, (int, np.integer)) and max_degree >= 0):
        raise ValueError(f"max_degree = {max_degree!r} must be an integer >= 0")
    return int(max_degree)


def hermite_block_energies(structure: HermiteStructure, degree: int) -> np.ndarray:
    """``E_k = Σ_{|i|=k} φ̂_i²`` for k = 0..degree (single-index: ``φ̂_k²``) of ``structure.target``."""
    spectrum = _require(structure, "hermite_block_energies", target=True).target
    return np.asarray(spectrum.block_energies(_check_max_degree(degree)), dtype=float)


#: scales n at which α_k(n) is probed: a degree is unlearnable when α_k vanishes at all of them
_PROBE_SCALES = np.array([0.37, 1.0, 2.3])


def unlearnable_degrees(structure: HermiteStructure, max_degree: int) -> tuple[int, ...]:
    """Degrees ``k <= max_degree`` whose activation Hermite coefficient ``α_k(n)`` vanishes (relative
    to ``sqrt(E σ(nG)²)``, below 1e-10: the quadrature round-off of smooth σ is ~1e-16) at every probed
    scale n (module docstring §2): a network ``∫ a σ(⟨w, x⟩) dρ`` has no degree-k component along θ*.

    ``structure``: a :class:`~reduced_pde.hermite_structure.HermiteStructure` with an activation
    (``problem.hermite_structure()``, or ``HermiteStructure.from_specs(activation="tanh")``).  When the
    neurons have a fixed norm (``structure.activation.fixed_scale``: n = 1 on the sphere) only that scale
    is probed (σ = He_3 on the sphere has α_1(1) = 0, although α_1(n) = 3n(n² − 1) ≠ 0 in the ball)."""
    spectrum = _require(structure, "unlearnable_degrees", activation=True).activation
    top = _check_max_degree(max_degree)
    scales = _PROBE_SCALES if spectrum.fixed_scale is None else np.array([spectrum.fixed_scale])
    alpha = np.abs(np.asarray(spectrum.coefficients(scales, top), dtype=float))
    size = np.sqrt(np.maximum(np.sum(alpha**2, axis=0), 1e-300))
    return tuple(int(k) for k in np.flatnonzero(np.all(alpha <= 1e-10 * size[None, :], axis=1)))


def hermite_plateau_heights(structure: HermiteStructure, max_degree: int | None = None) -> list[TheoryLevel]:
    """Theory levels ``R_ℓ = τ² + Σ_{k>ℓ} φ̂_k²`` (module docstring §2), in the package's risk
    convention ``R = E[(y − f)²]`` (no ½), for ``ℓ = −1`` and every degree ℓ with ``φ̂_ℓ ≠ 0``.

    ``structure``: a :class:`~reduced_pde.hermite_structure.HermiteStructure` with a target spectrum —
    ``problem.hermite_structure()``, or ``HermiteStructure.from_specs(target={"he": [c_0, c_1, ...]})``
    (any :func:`~reduced_pde.targets.make_target` specification).  When it has an activation, the
    degrees the activation cannot represent (:func:`unlearnable_degrees`) are not levels and their
    energy is added to every level.  A multi-index target uses total degrees.  ``max_degree``: the last
    degree considered (default: the target's exact degree; required for non-polynomial targets, whose
    last level is then the tail ``τ² + Σ_{k > max_degree} φ̂_k²``).
    """
    structure = _require(structure, "hermite_plateau_heights", target=True)
    spectrum = structure.target
    exact = spectrum.exact_degree
    if max_degree is None:
        if exact is None:
            raise ValueError("max_degree = None is only allowed for a polynomial target; this target "
                             "(non-polynomial) needs an integer max_degree >= 0")
        top = int(exact)
    else:
        top = _check_max_degree(max_degree)
    energies = hermite_block_energies(structure, top)
    noise = float(spectrum.noise_variance)
    if exact is not None and top >= exact:
        # exact: sum the energies above ℓ (no cancellation)
        tails = np.concatenate([np.cumsum(energies[::-1])[::-1][1:], [0.0]])
    else:
        tails = np.array([spectrum.tail(k) for k in range(top + 1)])
    blocked = set(unlearnable_degrees(structure, top)) if structure.activation is not None else set()
    floor = float(sum(energies[k] for k in blocked))
    learnt_above = np.array([float(tails[k]) - float(sum(energies[j] for j in blocked if j > k))
                             for k in range(top + 1)])
    degrees = [k for k in range(top + 1) if energies[k] > 0.0 and k not in blocked]
    levels = [TheoryLevel(-1, float(spectrum.second_moment) + noise, degrees[0] if degrees else None)]
    for position, k in enumerate(degrees):
        nxt = degrees[position + 1] if position + 1 < len(degrees) else None
        levels.append(TheoryLevel(k, float(learnt_above[k]) + floor + noise, nxt))
    return levels


def match_plateaus(detected: Sequence[Plateau], theory: Sequence[TheoryLevel],
                   zero_level: float | None = None) -> list[PlateauMatch]:
    """Assign each plateau to the theory level nearest in ``ln R``, and its ``risk_after`` to the
    level reached by the drop; the degrees learnt at the drop are the non-zero degrees in between.

    A level of height 0 (noiseless target, everything fitted) cannot host a plateau; for
    ``risk_after`` it stands at ``zero_level`` (default: ``10⁻³ ×`` the smallest positive level).
    """
    levels = list(theory)
    if not levels:
        raise ValueError("theory is empty: pass the levels of hermite_plateau_heights")
    heights = np.array([level.height for level in levels])
    if np.any(~np.isfinite(heights)) or np.any(heights < 0):
        raise ValueError(f"theory heights {heights.tolist()} must be finite and >= 0")
    positive = heights > 0
    if not np.any(positive):
        raise ValueError("theory has no positive level; no plateau can be matched")
    floor = 1e-3 * float(heights[positive].min()) if zero_level is None else _positive_finite("zero_level", zero_level)
    log_levels = np.log(np.where(positive, heights, floor))
    out: list[PlateauMatch] = []
    for plateau in detected:
        if not (plateau.height > 0):
            raise ValueError(f"plateau {plateau.index} has height {plateau.height}; heights must be > 0")
        distance = np.where(positive, np.abs(math.log(plateau.height) - log_levels), np.inf)
        k = int(np.argmin(distance))
        after = None
        learnt: tuple[int, ...] = ()
        if plateau.risk_after is not None:
            j = int(np.argmin(np.abs(math.log(max(plateau.risk_after, 1e-300)) - log_levels)))
            after = levels[j]
            learnt = tuple(level.fitted_degree for level in levels
                           if levels[k].fitted_degree < level.fitted_degree <= after.fitted_degree)
        out.append(PlateauMatch(plateau=plateau, level=levels[k],
                                log_error=math.log(plateau.height / heights[k]),
                                level_after=after, degrees_learnt=learnt))
    return out


# --------------------------------------------------------------------------------------------
# Order parameters
# --------------------------------------------------------------------------------------------


def _neuron_geometry(structure: HermiteStructure, points: Any, masses: Any
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(a, n, ρ, masses)`` from reduced points of a single-index structure."""
    names = structure.coordinate_names
    if len(structure.alignment_coordinates) != 1:
        raise ValueError(f"structure has alignment coordinates {structure.alignment_coordinates} (coordinates "
                         f"{names}): Hermite order parameters along θ* need exactly one, s (a single-index problem)")
    x = np.asarray(points, dtype=float)
    if x.ndim == 1 and len(names) == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"points have shape {np.shape(points)}; expected (M, {len(names)}) for coordinates {names}")
    if not np.all(np.isfinite(x)):
        raise ValueError("points contain non-finite values")
    m = np.asarray(masses, dtype=float)
    if m.shape != (x.shape[0],):
        raise ValueError(f"masses have shape {m.shape}; expected ({x.shape[0]},) like points")
    bad = np.flatnonzero(~np.isfinite(m) | (m < 0))
    if bad.size:
        raise ValueError(f"masses[{bad[0]}] = {m[bad[0]]} must be finite and >= 0")
    cols = dict(zip(names, x.T))
    if structure.second_layer_coordinate is None:
        a = np.full(x.shape[0], float(structure.second_layer))
    else:
        a = cols[structure.second_layer_coordinate]
    s = cols[structure.alignment_coordinates[0]]
    scale = structure.activation.fixed_scale
    if scale is not None:  # every neuron has |w| = scale (the sphere: 1)
        if np.any(np.abs(s) > scale * (1.0 + 1e-12)):
            raise ValueError(f"points: coordinate s must lie in [-{scale:g}, {scale:g}] (|w| = {scale:g}), got "
                             f"max |s| = {np.max(np.abs(s))}")
        return a, np.full_like(s, scale), np.clip(s / scale, -1.0, 1.0), m
    r = cols[structure.orthogonal_coordinate]
    if np.any(r < 0):
        raise ValueError(f"points: coordinate r must be >= 0, got min {r.min()}")
    n = np.hypot(s, r)
    rho = np.where(n > 0, s / np.where(n > 0, n, 1.0), 0.0)
    return a, n, rho, m


def _check_degrees(degrees: Iterable[int]) -> np.ndarray:
    values = list(degrees)
    if not values or not all(isinstance(k, (int, np.integer)) and k >= 0 for k in values):
        raise ValueError(f"degrees = {values!r} must be a non-empty list of integers >= 0")
    return np.array(values, dtype=int)


def hermite_order_parameters(structure: HermiteStructure, points: Any, masses: Any, degrees: Iterable[int],
                             normalized: bool = False) -> np.ndarray:
    """Hermite coefficients of the network along θ* (module docstring §3):

        m_k = E[f(x) He_k(⟨θ*, x⟩)] / k! = (1/sqrt(k!)) Σ_i masses_i a_i α_k(n_i) ρ_i^k,

    ``n = |w| = sqrt(s² + r²)``, ``ρ = s/n`` (n = 1, ρ = s on the sphere: ``structure.activation.
    fixed_scale``), a the second layer (``structure.second_layer`` when it is not a coordinate).
    ``structure``: ``problem.hermite_structure()`` of a single-index problem.  ``normalized=True``
    returns ``m̂_k = sqrt(k!) m_k`` (the coefficient on ``h_k``, comparable with
    ``structure.target.coefficients``).  ``points`` (M, dim) in ``structure.coordinate_names`` (the
    problem's), ``masses`` (M,) >= 0 (a law: cell masses or 1/N per particle; they are not
    renormalised).  Returns an array of shape ``(len(degrees),)``.
    """
    structure = _require(structure, "hermite_order_parameters", activation=True)
    ks = _check_degrees(degrees)
    a, n, rho, m = _neuron_geometry(structure, points, masses)
    alpha = np.asarray(structure.activation.coefficients(n, int(ks.max())), dtype=float)[ks]
    powers = rho[None, :] ** ks[:, None]
    normalized_values = (alpha * powers) @ (m * a)
    if normalized:
        return normalized_values
    factor = np.array([math.sqrt(math.factorial(int(k))) for k in ks])
    return normalized_values / factor


def hermite_component_residuals(structure: HermiteStructure, points: Any, masses: Any,
                                degrees: Iterable[int]) -> np.ndarray:
    """``(φ̂_k − m̂_k)² = k! (c_k − m_k)²`` for the requested degrees: the part of the risk carried by
    the unfitted degree-k component (``R >= τ² + Σ_k (φ̂_k − m̂_k)²``, module docstring §3).
    ``structure``: ``problem.hermite_structure()`` of a single-index problem."""
    structure = _require(structure, "hermite_component_residuals", target=True, activation=True)
    ks = _check_degrees(degrees)
    if structure.target.coefficients is None:
        raise ValueError(f"hermite_component_residuals: the target has index_dimension = "
                         f"{structure.target.index_dimension}; per-degree coefficients φ̂_k need a single-index target")
    phi_hat = np.asarray(structure.target.coefficients(int(ks.max())), dtype=float)[ks]
    return (phi_hat - hermite_order_parameters(structure, points, masses, ks, normalized=True)) ** 2


# --------------------------------------------------------------------------------------------
# Comparison of a prediction with independent runs (SGD seeds)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlateauComparison:
    """One predicted plateau against the plateaus of independent runs nearest to it in ``ln`` height.

    ``observed`` holds, per run, the matched :class:`Plateau` or None (no plateau within a factor
    ``max_ratio`` in height).  Means and standard errors are over the runs that have a match."""

    predicted: Plateau
    observed: tuple[Plateau | None, ...]

    def _values(self, name: str) -> np.ndarray:
        values = [getattr(p, name) for p in self.observed if p is not None and getattr(p, name) is not None]
        return np.asarray(values, dtype=float)

    def mean_and_error(self, name: str) -> tuple[float, float, int]:
        """(mean, standard error of the mean, count) of ``height``/``entry_time``/``exit_time``/
        ``drop_time``/``risk_after`` over the matched runs (s.e. NaN for fewer than 2)."""
        values = self._values(name)
        if values.size == 0:
            return math.nan, math.nan, 0
        error = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
        return float(values.mean()), error, int(values.size)


def compare_plateaus(predicted: Sequence[Plateau], observed: Sequence[Sequence[Plateau]], *,
                     max_ratio: float = 1.25) -> list[PlateauComparison]:
    """Match each predicted plateau with, in every independent run, the plateau nearest in ``ln``
    height among those not yet matched and within a factor ``max_ratio``, scanning the predicted
    plateaus in time order and the observed ones in time order too (a plateau cannot be matched
    before one already matched in the same run)."""
    ratio = _positive_finite("max_ratio", max_ratio)
    if ratio <= 1.0:
        raise ValueError(f"max_ratio = {max_ratio!r} must be > 1")
    out: list[PlateauComparison] = []
    next_index = [0] * len(observed)
    for plateau in predicted:
        matched: list[Plateau | None] = []
        for run, candidates in enumerate(observed):
            best, best_distance = None, math.log(ratio)
            for position in range(next_index[run], len(candidates)):
                distance = abs(math.log(candidates[position].height / plateau.height))
                if distance <= best_distance:
                    best, best_distance = position, distance
            if best is None:
                matched.append(None)
            else:
                matched.append(candidates[best])
                next_index[run] = best + 1
        out.append(PlateauComparison(predicted=plateau, observed=tuple(matched)))
    return out


def comparison_table(comparisons: Sequence[PlateauComparison]) -> list[str]:
    """Text rows of a prediction-vs-runs comparison: for each plateau and each of height, entry, exit,
    drop time and risk after the drop, the predicted value, the runs' mean, its standard error, the
    number of runs with a matched plateau, the relative difference and the difference in s.e."""
    rows = [(f"{'#':>2} {'quantity':>10} {'predicted':>11} {'runs mean':>11} {'s.e.':>9} {'n':>2} "
             f"{'rel. diff':>9} {'diff/s.e.':>9}")]
    for index, comparison in enumerate(comparisons):
        for quantity in ("height", "entry_time", "exit_time", "drop_time", "risk_after"):
            value = getattr(comparison.predicted, quantity)
            if value is None:
                continue
            mean, error, count = comparison.mean_and_error(quantity)
            ratio = (value - mean) / error if count > 1 and error > 0 else math.nan
            rows.append(f"{index:>2} {quantity:>10} {value:11.4g} {mean:11.4g} {error:9.2g} {count:2d} "
                        f"{mean / value - 1:+9.2%} {ratio:+9.2f}")
    return rows
