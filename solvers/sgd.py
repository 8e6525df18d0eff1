"""Online minibatch SGD in full dimension d: one engine for every model's network (the reference the
reduced PDEs are validated against).

The engine is driven by a :class:`~reduced_pde.models.base.NetworkModel` (data, initial neurons,
invariants, exact network risk, σ, whether a is trained, ball or sphere) and reads the reduced
problem only through the :class:`~reduced_pde.problem.ReducedProblem` contract (``risk``,
``coordinate_names``, ``check_noise``).  It never looks at the model's type or name.

Network ``f(x) = (1/N) Σ_i a_i σ(⟨w_i, x⟩)``.  One step with a fresh minibatch ``(x_b, y_b)_{b<B}``
(design note §2, minibatch *average*, per-neuron step without 1/N), from the old state::

    Z = X Wᵀ (B × N),   f_b = (1/N) Σ_i a_i σ(Z_bi),   e_b = y_b − f_b,   s_k = ε ξ(kε),   t = kε,
    G_w = (2 s_k / B) Σ_b e_b a_i σ'(Z_bi) x_b                      (the w_i increment),
    G_a = (2 s_k c_a / B) Σ_b e_b σ(Z_bi)                          (if a is trained),
    w_i ← (1 − 2 s_k λ) w_i + G_w + sqrt(4 s_k / β) g_i,          g_i ~ N(0, I_d),
    a_i ← (1 − 2 s_k c_a λ) a_i + G_a + sqrt(4 s_k c_a / β) g'_i,  g'_i ~ N(0, 1).

Since ``∇_{θ_i} R_N = −(2/N) E[(y − f) ∇_θ σ*(x; θ_i)]``, the mean increment is ``−s_k N ∇_{θ_i} R_N``
(times c_a on a), i.e. ``−2 s_k ∇Ψ(θ_i; ρ̂_N)``: the velocity of ``∂_t ρ = 2ξ[∇·(ρ C ∇Ψ_λ) + β⁻¹ ∇·(C∇ρ)]``
with C = diag(c_a, 1, …) (per-layer rates; the reduced equation multiplies ∂_a ψ by the same c_a).
β = inf and λ = 0 (default) is plain SGD.

On the sphere (``network.on_sphere``: |w_i| = 1, projected gradient flow, Glasgow–Wu–Bruna / BMZ23)
the w increment including the noise is projected on the tangent space, ``P⊥_i = I − w_i w_iᵀ``, and
w_i is renormalised (retraction): ``w_i ← normalise(w_i + P⊥_i (G_w + sqrt(4 s_k/β) g_i))``.  The
renormalisation turns the tangent noise into Brownian motion on S^{d−1} (generator 2ξβ⁻¹Δ_S); weight
decay is refused there by ``problem.check_noise`` (it only rescales |w|).

Implementation:

* weights are stored transposed, ``_wt`` of shape (d, N), C-contiguous, so every inner loop runs over
  neurons (contiguous, SIMD-vectorisable without re-association: results are bitwise reproducible);
* ``backend="numba"`` (piecewise-linear σ, chosen by the *activation's* type: MMN18, ReLU; ball only):
  a compiled loop runs a whole block of steps (forward pass, residual, update fused per step);
  fastest for small batches;
* ``backend="numpy"`` (any σ, ball or sphere): per step two BLAS calls (``Z = X Wᵀ`` and, in the ball,
  ``W ← (1 − 2 s_k λ) W + Gᵀ X`` as one GEMM accumulating in place, ``beta`` = the decay); between them
  one compiled pass (:func:`_residual_and_gradient`: σ, σ', residual, G and the a-increment) for
  piecewise-linear and polynomial σ, numpy otherwise.  On the sphere without noise (compiled pass) the
  tangent projection and retraction are folded into the second GEMM: the normalisation is deferred,
  ``w_i = ν_i · (stored column i)``, and since ``c_i = ⟨w_i, u_i⟩ = Σ_b g_bi z_bi`` comes from Z and G,
  ``w_i (1 − c_i) + u_i = ν_i (1 − c_i) (stored w_i + Xᵀ G'_i)`` with ``G'_bi = g_bi / (ν_i (1 − c_i))``:
  the step is ``W += Xᵀ G'`` in place, then one read pass for the new ``ν_i = 1/|stored w_i|``
  (:func:`_between_gemms`, :func:`_sphere_norms`); ν is applied to the stored weights every
  ``_FOLD_EVERY`` = 256 steps and at the end of every :meth:`SGDSimulation.step` call (so the state
  between calls is normalised; the iterates equal the explicit route's to round-off, and depend at
  round-off level on where a run is split into step/advance calls — the controller splits at the
  output times, so resuming a checkpoint stays bitwise).  With noise, or when some ``1 − c_i ≤ 1/2``,
  the explicit route: ``Xᵀ G`` into a buffer, then projection and retraction
  (:func:`_project_and_retract`);
  ``precision = "float32"`` stores W and runs both GEMMs (and G, Z) in float32 (residuals, the a
  update and every sum over neurons stay float64; about twice the GEMM throughput, rounding far below
  the seed-to-seed spread: tests/test_sgd_precision.py);
* ``threads``: BLAS threads during stepping (threadpoolctl), None = leave the process default;
* ``allow_large``: weights or pre-activations beyond 4 GiB (:data:`solvers.common.MEMORY_LIMIT`) are
  refused without it (beyond 80% of the available memory always), as ``--allow-large`` does;
* ``backend="auto"``: numba for piecewise-linear σ in the ball with B < 8, numpy otherwise.

Seeds batched as one simulation (:class:`SGDSeedBatch`, ``run_sgd_seeds(batched=True)``): the seeds'
weights on a leading seed axis (W (S, d, N)), each seed's minibatches from its own streams, per step
each seed's two GEMMs and one compiled pass over all seeds between them and one after them; every seed
goes through the same calls as alone, so its iterates are bitwise those of its separate run.

Data are drawn in blocks of steps (at most ~16 MB) from streams spawned from ``SeedSequence(seed)``:
initial neurons, x, labels, Langevin noise (``network.sample(n, x_rng, label_rng)`` fills each
stream sequentially; the noise stream gives, step after step, the (d, N) entries of the w-noise and,
if a is trained, the N of the a-noise).  So the data seen at
step k do not depend on how the run is split into blocks or :meth:`SGDSimulation.advance` calls, and
:meth:`SGDSimulation.state` / :meth:`SGDSimulation.set_state` resume bitwise.

Observables (result contract, design note §5: like with like): ``risk`` = the N = ∞ risk
``problem.risk(invariants, 1/N)`` of the empirical law of the neurons' invariants; ``network_risk`` and
``risk_bound`` = the exact population risk of the N-network and its truncation bound (when recorded:
``record_network_risk``, default ``network.records_network_risk``); ``mean_<c>``, ``std_<c>``; field
``points`` (N, D) the invariants.  Divergence (NaN/overflow) raises
:class:`~solvers.common.SolverError` naming the step, the time and the neuron.
"""

from __future__ import annotations

import contextlib
import math
import time as _time
from typing import Any, Sequence

import numpy as np
from numba import njit
from numpy.polynomial import hermite_e
from scipy.linalg import blas as _blas

from reduced_pde.activations import PiecewiseLinearActivation, PolynomialActivation
from reduced_pde.free_energy import check_noise_parameters
from reduced_pde.models.base import NetworkModel
from reduced_pde.problem import ReducedProblem
from reduced_pde.schedules import LearningRateSchedule

from solvers.common import (
    SolverError,
    check_instance,
    check_integer,
    check_memory,
    check_number,
    validate_output_times,
)
from solvers.results import Trajectory

__all__ = ["PRECISIONS", "SGDSimulation", "SGDSeedBatch", "run_sgd", "run_sgd_seeds", "seed_statistics", "radial_noise_drift"]

#: float64 entries of one x (or noise) block (16 MB)
_BLOCK_ENTRIES = 2 * 1024 * 1024
#: batch size from which BLAS (numpy backend) beats the fused numba loop
_NUMBA_MAX_BATCH = 8
_NO_NOISE = np.zeros((0, 0))
#: on the sphere (no noise) the deferred normalisation is applied every this many steps (and at the end
#: of every :meth:`SGDSimulation.step`), which bounds the drift of the stored columns' norms
_FOLD_EVERY = 256
#: ``sgd.precision``: the floating type of W and of the two matrix products of a step
PRECISIONS = ("float64", "float32")
#: the parameters a checkpoint must share with the run that loads it
_RESUME_KEYS = ("sgd.step_size", "sgd.batch_size", "sgd.n_neurons", "noise.beta", "noise.weight_decay",
                "network.second_layer_rate", "sgd.precision")


def _blas_threads(threads: int | None):
    """Context limiting BLAS to ``threads`` threads (threadpoolctl); no-op for None."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as error:  # an optional dependency: pip install "reduced-pde[perf]"
        raise ImportError(f"sgd.threads = {threads} needs the threadpoolctl package "
                          "(pip install 'reduced-pde[perf]' or threadpoolctl)") from error

    return threadpool_limits(limits=threads, user_api="blas")


# ------------------------------------------------------------------------------------------------
# compiled kernel (piecewise-linear activations, ball)
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def _sgd_block_piecewise_linear(wt, a, x, y, step_sizes, intercept, slope, knots, jumps, z, g, h,
                                train_a, rate, decay, a_decay, noise, noise_scale, a_noise, a_noise_scale):
    """Run ``len(step_sizes)`` SGD steps (module docstring) in place on ``wt`` (d, N) and ``a`` (N,);
    x (S, B, d), y (S, B).  ``decay`` / ``a_decay`` (S,) multiply w / a before the update (empty: none);
    ``noise`` (S, d, N) times ``noise_scale`` (S,) and ``a_noise`` (S, N) times ``a_noise_scale`` are
    added (empty: none).  Returns the index of the first step whose network output is non-finite
    (the state then holds the weights after that step), or -1."""
    n_steps, batch, dim = x.shape
    n_neurons = wt.shape[1]
    n_knots = knots.shape[0]
    inv_n = 1.0 / n_neurons
    for k in range(n_steps):
        # forward: z[b, i] = Σ_j x[b, j] wt[j, i]
        for b in range(batch):
            for i in range(n_neurons):
                z[b, i] = 0.0
            for j in range(dim):
                xbj = x[k, b, j]
                for i in range(n_neurons):
                    z[b, i] += xbj * wt[j, i]
        # residual; g[b, i] = (2 s_k / B) e_b a_i σ'(z_bi), h[b, i] = (2 s_k / B) e_b σ(z_bi)
        bad = False
        for b in range(batch):
            total = 0.0
            for i in range(n_neurons):
                zi = z[b, i]
                value = intercept + slope * zi
                deriv = slope
                for m in range(n_knots):
                    if zi > knots[m]:
                        value += jumps[m] * (zi - knots[m])
                        deriv += jumps[m]
                total += a[i] * value
                g[b, i] = deriv * a[i]
                h[b, i] = value
            residual = y[k, b] - total * inv_n
            if not math.isfinite(residual):
                bad = True
            coef = 2.0 * step_sizes[k] * residual / batch
            for i in range(n_neurons):
                g[b, i] *= coef
                h[b, i] *= coef
        if decay.shape[0] > 0:  # weight decay, on the weights the gradient was evaluated at
            dk = decay[k]
            for j in range(dim):
                for i in range(n_neurons):
                    wt[j, i] *= dk
        # update: wt[j, i] += Σ_b x[b, j] g[b, i]
        for j in range(dim):
            for b in range(batch):
                xbj = x[k, b, j]
                for i in range(n_neurons):
                    wt[j, i] += xbj * g[b, i]
        if noise.shape[0] > 0:
            sk = noise_scale[k]
            for j in range(dim):
                for i in range(n_neurons):
                    wt[j, i] += sk * noise[k, j, i]
        if train_a:
            if a_decay.shape[0] > 0:
                for i in range(n_neurons):
                    a[i] *= a_decay[k]
            for b in range(batch):
                for i in range(n_neurons):
                    a[i] += rate * h[b, i]
            if a_noise.shape[0] > 0:
                for i in range(n_neurons):
                    a[i] += a_noise_scale[k] * a_noise[k, i]
        if bad:
            return k
    return -1


@njit(cache=True)
def _hermite_series(t, coefficients, out, work):
    """``out[i] = Σ_m coefficients[m] He_m(t[i])`` by Clenshaw's recurrence
    ``b_m = c_m + t b_{m+1} − (m + 1) b_{m+2}``, ``out = b_0`` (as numpy's ``hermeval``); neurons
    innermost; ``work``: a row like ``out``."""
    out[:] = 0.0
    work[:] = 0.0
    for m in range(coefficients.shape[0] - 1, -1, -1):
        c = coefficients[m]
        for i in range(t.shape[0]):
            b = c + t[i] * out[i] - (m + 1) * work[i]
            work[i] = out[i]
            out[i] = b


@njit(cache=True, fastmath={"reassoc", "contract"})
def _residual_and_gradient(z, a, y, scale, inv_n, intercept, slope, knots, jumps, he, he_derivative, g, a_step,
                           work):
    """:func:`_residual_gradient_tangent` without the sphere's rescaling and tangent sums."""
    empty = np.zeros(0)
    return _residual_gradient_tangent(z, a, y, scale, inv_n, intercept, slope, knots, jumps, he, he_derivative, g,
                                      a_step, work, empty, empty)


@njit(cache=True, fastmath={"reassoc", "contract"})
def _residual_gradient_tangent(z, a, y, scale, inv_n, intercept, slope, knots, jumps, he, he_derivative, g,
                               a_step, work, weight_scale, tangent):
    """One pass between the two GEMMs of a step: for each sample b, ``e_b = y_b − inv_n Σ_i a_i σ(z_bi)``
    (sum in float64), ``g[b, i] = scale e_b a_i σ'(z_bi)`` (in g's precision) and, if ``a_step`` is
    non-empty, ``a_step[i] = Σ_b scale e_b σ(z_bi)``; ``scale`` = 2 s_k / B.

    σ is piecewise linear (``intercept + slope t + Σ_m jumps[m] (t − knots[m])_+``) when ``he`` is
    empty, else the polynomial ``Σ_m he[m] He_m(t)`` with ``σ' = Σ_m he_derivative[m] He_m`` (Clenshaw's
    recurrence ``b_m = c_m + t b_{m+1} − (m + 1) b_{m+2}``, σ = b_0, as numpy's ``hermeval``).
    ``work``: (4, N) float64 rows.  Loops run over neurons innermost, branch-free (SIMD); the neuron
    sum is re-associated (deterministic for a given N).  Returns False if a residual is not finite.

    On the sphere's deferred route (:func:`_between_gemms`; both empty otherwise): each row of z is
    first multiplied by ``weight_scale`` (N,) in place, and ``tangent[i] = Σ_b g_bi z_bi`` is summed."""
    batch, n_neurons = z.shape
    n_knots = knots.shape[0]
    polynomial = he.shape[0] > 0
    train_a = a_step.shape[0] > 0
    rescaled, tangents = weight_scale.shape[0] > 0, tangent.shape[0] > 0
    value, deriv, value_next, deriv_next = work[0], work[1], work[2], work[3]
    if train_a:
        a_step[:] = 0.0
    if tangents:
        tangent[:] = 0.0
    finite = True
    for b in range(batch):
        if rescaled:
            for i in range(n_neurons):
                z[b, i] *= weight_scale[i]
        if polynomial:
            _hermite_series(z[b], he, value, value_next)
            _hermite_series(z[b], he_derivative, deriv, deriv_next)
        else:
            for i in range(n_neurons):
                value[i] = intercept + slope * z[b, i]
                deriv[i] = slope
            for m in range(n_knots):
                knot, jump = knots[m], jumps[m]
                for i in range(n_neurons):
                    excess = z[b, i] - knot
                    value[i] += jump * max(excess, 0.0)
                    deriv[i] += jump if excess > 0.0 else 0.0
        total = 0.0
        for i in range(n_neurons):
            total += a[i] * value[i]
        residual = y[b] - total * inv_n
        if not math.isfinite(residual):
            finite = False
        coef = scale * residual
        for i in range(n_neurons):
            g[b, i] = coef * a[i] * deriv[i]
        if tangents:
            for i in range(n_neurons):
                tangent[i] += g[b, i] * z[b, i]
        if train_a:
            for i in range(n_neurons):
                a_step[i] += coef * value[i]
    return finite


@njit(cache=True, fastmath={"reassoc", "contract"})
def _project_and_retract(wt, update, noise, noise_scale, work):
    """Sphere step on ``wt`` (d, N) in place: ``u = update + noise_scale · noise`` (noise empty: none),
    ``w_i ← normalise(w_i + u_i − w_i ⟨w_i, u_i⟩)`` (tangent projection P⊥_i, then retraction).

    Two passes over (d, N), neurons innermost: the first accumulates (float64) ``|w_i|²``, ``c_i = ⟨w_i,
    u_i⟩`` and ``|u_i|²``, which give the new norm exactly, ``|w_i (1 − c_i) + u_i|² = (1 − c_i)² |w_i|² +
    2 (1 − c_i) c_i + |u_i|²``; the second writes ``(w_i (1 − c_i) + u_i) / norm``.  ``work``: (3, N) float64."""
    dim, n_neurons = wt.shape
    noisy = noise.shape[0] > 0
    norm_w, dot, norm_u = work[0], work[1], work[2]
    norm_w[:] = 0.0
    dot[:] = 0.0
    norm_u[:] = 0.0
    for j in range(dim):
        for i in range(n_neurons):
            u = update[j, i] + noise_scale * noise[j, i] if noisy else update[j, i]
            w = wt[j, i]
            norm_w[i] += w * w
            dot[i] += w * u
            norm_u[i] += u * u
    for i in range(n_neurons):
        keep = 1.0 - dot[i]
        norm_u[i] = 1.0 / math.sqrt(keep * keep * norm_w[i] + 2.0 * keep * dot[i] + norm_u[i])
        dot[i] = keep
    for j in range(dim):
        for i in range(n_neurons):
            u = update[j, i] + noise_scale * noise[j, i] if noisy else update[j, i]
            wt[j, i] = (wt[j, i] * dot[i] + u) * norm_u[i]


# ---- one step of S seeds (numpy backend): the compiled passes between and after the two GEMMs -----
@njit(cache=True, fastmath={"reassoc", "contract"})
def _between_gemms(slots, z, a, y, scale, inv_n, intercept, slope, knots, jumps, he, he_derivative, g, a_step,
                   work, deferred, gram_route, x, weight_scale, tangent, explicit):
    """The pass between the two GEMMs of one step, for the seeds ``slots`` (position p, slot s = slots[p]):
    :func:`_residual_and_gradient` on ``z[s]``, ``a[s]``, ``y[p]`` (into ``g[s]``, ``a_step[s]``).

    ``deferred`` (sphere, no noise): the weights are held as ``w_i = ν_i · wt[s][:, i]`` (``wt`` = the
    stored columns, ``ν`` = ``weight_scale[s]``, their normalisation deferred).  Then ``z[s]`` (= X ·
    stored W) is first scaled to ``X W`` by ν; after σ, σ' and G: ``c_i = ⟨w_i, u_i⟩ = Σ_b g_bi z_bi``
    (u_i = Σ_b g_bi x_b, the w increment; ``tangent[s]``) and, if every ``1 − c_i > 1/2``, ``g[s]`` is
    replaced by ``G'_bi = g_bi / (ν_i (1 − c_i))``, so that the tangent step and retraction
    ``w_i ← normalise(w_i (1 − c_i) + u_i)`` become ``wt[s] += Xᵀ G'`` (one in-place GEMM) with the new
    ``ν_i = 1 / |wt[s][:, i]|``: ``w_i (1 − c_i) + u_i = ν_i (1 − c_i) (stored w_i + Xᵀ G'_i)``.  The
    new ν comes from a read pass after the GEMM (:func:`_sphere_norms`), or with ``gram_route`` here,
    from ``|w_i (1 − c_i) + u_i|² = 1 − c_i² + |u_i|²`` (|w_i| = 1) with ``|u_i|² = g_iᵀ (X Xᵀ) g_i`` (the
    B × B Gram matrix of ``x[p]`` (B, d): B²(N + d/2) multiply-adds instead of a pass over W).
    Otherwise (a step of the order of |w|) ``explicit[p]`` is set and g is left as it is (the caller
    takes the explicit route for that seed).  Returns the position of the first seed with a
    non-finite residual, or -1."""
    batch, n_neurons = z.shape[1], z.shape[2]
    empty = np.zeros(0)
    for p in range(slots.shape[0]):
        s = slots[p]
        if not _residual_gradient_tangent(z[s], a[s], y[p], scale, inv_n, intercept, slope, knots, jumps, he,
                                          he_derivative, g[s], a_step[s], work,
                                          weight_scale[s] if deferred else empty, tangent[s] if deferred else empty):
            return p
        if deferred:
            c = tangent[s]
            usable = True
            for i in range(n_neurons):
                if not 1.0 - c[i] > 0.5:
                    usable = False
            explicit[p] = not usable
            if not usable:
                continue
            factor, step_norm, row = work[0], work[1], work[2]
            if gram_route:
                step_norm[:] = 0.0
                for b in range(batch):
                    row[:] = 0.0
                    for b2 in range(batch):
                        gram = 0.0
                        for j in range(x.shape[2]):
                            gram += float(x[p, b, j]) * float(x[p, b2, j])
                        for i in range(n_neurons):
                            row[i] += gram * g[s, b2, i]
                    for i in range(n_neurons):
                        step_norm[i] += g[s, b, i] * row[i]
            for i in range(n_neurons):
                factor[i] = 1.0 / (weight_scale[s, i] * (1.0 - c[i]))
                if gram_route:
                    weight_scale[s, i] *= (1.0 - c[i]) / math.sqrt(1.0 - c[i] * c[i] + step_norm[i])
            for b in range(batch):
                for i in range(n_neurons):
                    g[s, b, i] *= factor[i]
    return -1


@njit(cache=True, fastmath={"reassoc", "contract"})
def _sphere_norms(slots, wt, weight_scale, explicit, work):
    """After ``wt[s] += Xᵀ G'`` (:func:`_between_gemms`): ``weight_scale[s, i] = 1 / |wt[s][:, i]|`` (sums in
    float64, one read pass over the stored weights).  Seeds with ``explicit[p]`` took the explicit route
    (already normalised) and are skipped."""
    for p in range(slots.shape[0]):
        if not explicit[p]:
            _column_norms(wt[slots[p]], weight_scale[slots[p]], work[0])


@njit(cache=True, fastmath={"reassoc", "contract"})
def _column_norms(wt, inverse_norm, norm):
    """``inverse_norm[i] = 1 / |wt[:, i]|`` (float64 sums; ``norm``: a work row)."""
    dim, n_neurons = wt.shape
    norm[:] = 0.0
    for j in range(dim):
        for i in range(n_neurons):
            w = wt[j, i]
            norm[i] += w * w
    for i in range(n_neurons):
        inverse_norm[i] = 1.0 / math.sqrt(norm[i])


@njit(cache=True, fastmath={"reassoc", "contract"})
def _fold(wt, weight_scale, norm):
    """The deferred normalisation applied: ``wt[:, i] /= |wt[:, i]|`` (norms recomputed: exact unit
    columns to rounding), then ``weight_scale = 1``."""
    _column_norms(wt, weight_scale, norm)
    dim, n_neurons = wt.shape
    for j in range(dim):
        for i in range(n_neurons):
            wt[j, i] = wt[j, i] * weight_scale[i]
    weight_scale[:] = 1.0


@njit(cache=True)
def _after_gemms(slots, wt, a, a_step, noise, k, noise_scale, in_ball, train_a, rate, a_decay, a_noise_scale):
    """The rest of a step for the seeds ``slots`` (position p, slot s): in the ball (``in_ball``)
    ``wt[s] += noise_scale · noise[p, k, :d]`` (noise (P, steps, d [+ 1], N); empty: none); if a is
    trained ``a[s] ← a_decay a[s] + rate a_step[s] + a_noise_scale noise[p, k, d]`` (a_decay = 1: no
    decay, exactly), in that order of roundings."""
    dim, n_neurons = wt.shape[1], wt.shape[2]
    noisy = noise.shape[0] > 0
    a_noisy = noisy and noise.shape[2] > dim
    for p in range(slots.shape[0]):
        s = slots[p]
        if noisy and in_ball:
            for j in range(dim):
                for i in range(n_neurons):
                    wt[s, j, i] += noise_scale * noise[p, k, j, i]
        if train_a:
            for i in range(n_neurons):
                a[s, i] *= a_decay
                a[s, i] += rate * a_step[s, i]
                if a_noisy:
                    a[s, i] += a_noise_scale * noise[p, k, dim, i]


class _Stack:
    """The state of S seeds of one configuration with a leading seed axis (the arrays every step works
    on): stored weights ``wt`` (S, d, N) in the run's precision, ``a`` (S, N), pre-activations ``z`` and
    gradient coefficients ``g`` (S, B, N), the a-increments (S, N or 0), and on the sphere the deferred
    normalisation ``weight_scale`` (S, N) with ``tangent`` (S, N) and one (d, N) buffer for the explicit
    route.  A :class:`SGDSimulation` owns a stack of one; :class:`SGDSeedBatch` binds its seeds to slots
    of one stack."""

    def __init__(self, seeds: int, dimension: int, n_neurons: int, batch: int, dtype: np.dtype,
                 train_second_layer: bool, on_sphere: bool) -> None:
        self.wt = np.zeros((seeds, dimension, n_neurons), dtype=dtype)
        self.a = np.zeros((seeds, n_neurons))
        self.z = np.empty((seeds, batch, n_neurons), dtype=dtype)
        self.g = np.empty((seeds, batch, n_neurons), dtype=dtype)
        self.h = np.empty((seeds, batch, n_neurons))
        self.a_step = np.zeros((seeds, n_neurons if train_second_layer else 0))
        self.weight_scale = np.ones((seeds, n_neurons))
        self.tangent = np.zeros((seeds, n_neurons))
        self.work = np.empty((4, n_neurons))
        self.update = np.empty((dimension, n_neurons), dtype=dtype) if on_sphere else None


# ------------------------------------------------------------------------------------------------
class SGDSimulation:
    """Stateful online SGD of ``network`` (module docstring).

    ``time`` = kε (k = ``steps``), ``weights`` (N, d) and ``second_layer`` (N,) (copies),
    :meth:`invariants`, :meth:`step`, :meth:`advance`, :meth:`observables`, :meth:`diagnostics`,
    :meth:`state` / :meth:`set_state` for bitwise checkpoint/resume.
    """

    def __init__(self, network: NetworkModel, problem: ReducedProblem, *, n_neurons: int, step_size: float,
                 batch_size: int = 1, schedule: LearningRateSchedule | None = None, seed: int = 0,
                 beta: float = math.inf, weight_decay: float = 0.0, second_layer_rate: float = 1.0,
                 backend: str = "auto", record_network_risk: bool | None = None, precision: str = "float64",
                 threads: int | None = None, allow_large: bool = False) -> None:
        check_instance("network", network, NetworkModel)
        check_instance("problem", problem, ReducedProblem)
        check_instance("schedule", schedule, LearningRateSchedule, optional=True)
        self.n_neurons = check_integer("sgd.n_neurons", n_neurons, 1)
        self.batch_size = check_integer("sgd.batch_size", batch_size, 1)
        d = check_integer("network.dimension", network.dimension, 1)
        check_memory(f"sgd.n_neurons = {self.n_neurons} with dimension d = {d}", 8.0 * 4 * self.n_neurons * d,
                     "the SGD weights (N x d, 4 copies)", allow_large=allow_large)
        check_memory(f"sgd.batch_size = {self.batch_size} with sgd.n_neurons = {self.n_neurons}",
                     8.0 * 3 * self.batch_size * self.n_neurons, "the SGD pre-activations (B x N, 3 arrays)",
                     allow_large=allow_large)
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float, np.floating)) \
                or not (math.isfinite(step_size) and step_size > 0):
            raise ValueError(f"sgd.step_size = {step_size!r} must be a finite number > 0 (it is ε, the PDE "
                             "time per SGD step)")
        self.step_size = float(step_size)
        self.second_layer_rate = check_number("network.second_layer_rate", second_layer_rate, 0.0, math.inf)
        if not math.isfinite(self.second_layer_rate):
            raise ValueError(f"network.second_layer_rate = {second_layer_rate!r} must be finite")
        self.seed = check_integer("sgd.seed", seed, 0)
        self.network = network
        self.problem = problem
        self.dimension = int(network.dimension)
        self.beta, self.weight_decay = check_noise_parameters(beta, weight_decay, self.dimension)
        problem.check_noise(self.beta, self.weight_decay)
        self.schedule = schedule if schedule is not None else LearningRateSchedule()
        self.activation = network.activation
        self.train_second_layer = bool(network.trains_second_layer)
        self.on_sphere = bool(network.on_sphere)
        self.record_network_risk = (bool(network.records_network_risk) if record_network_risk is None
                                    else bool(record_network_risk))
        if backend not in ("auto", "numba", "numpy"):
            raise ValueError(f"sgd.backend = {backend!r} is not known; allowed: auto, numba, numpy")
        compiled = isinstance(self.activation, PiecewiseLinearActivation) and not self.on_sphere
        if backend == "numba" and not compiled:
            raise ValueError(f"sgd.backend = 'numba' needs a piecewise-linear activation and neurons in the "
                             f"ball, got {self.activation.config()} (on_sphere = {self.on_sphere}); "
                             "use backend = 'numpy'")
        if precision not in PRECISIONS:
            raise ValueError(f"sgd.precision = {precision!r} is not known; allowed: {', '.join(PRECISIONS)}")
        self.precision = precision
        if precision != "float64" and backend == "numba":
            raise ValueError(f"sgd.precision = {precision!r} applies to the two BLAS products of "
                             "backend = 'numpy' (or 'auto'); the compiled kernel of backend = 'numba' is float64")
        self.threads = None if threads is None else check_integer("sgd.threads", threads, 1)
        if backend == "auto":
            backend = "numba" if compiled and self.batch_size < _NUMBA_MAX_BATCH and precision == "float64" \
                else "numpy"
        self.backend = backend
        self._dtype = np.dtype(precision) if backend == "numpy" else np.dtype(float)
        empty = np.zeros(0)
        if isinstance(self.activation, PiecewiseLinearActivation):
            self._piecewise = (float(self.activation.intercept), float(self.activation.slope),
                               np.asarray(self.activation.knots, dtype=float),
                               np.asarray(self.activation.jumps, dtype=float))
            self._fused = (*self._piecewise, empty, empty)
        elif isinstance(self.activation, PolynomialActivation):
            he = np.asarray(self.activation.he_coefficients, dtype=float)
            self._fused = (0.0, 0.0, empty, empty, he, hermite_e.hermeder(he) if he.size > 1 else np.zeros(1))
        else:
            self._fused = None

        # sphere without noise, compiled pass: the tangent step and retraction folded into the second GEMM
        self._deferred = (self.on_sphere and backend == "numpy" and self._fused is not None
                          and not math.isfinite(self.beta))
        init_seq, x_seq, y_seq, noise_seq = np.random.SeedSequence(self.seed).spawn(4)
        self._x_rng = np.random.Generator(np.random.PCG64(x_seq))
        self._y_rng = np.random.Generator(np.random.PCG64(y_seq))
        self._noise_rng = np.random.Generator(np.random.PCG64(noise_seq))
        a, w = network.initial_neurons(self.n_neurons, np.random.Generator(np.random.PCG64(init_seq)))
        a, w = np.array(a, dtype=float).reshape(self.n_neurons), np.asarray(w, dtype=float)
        if w.shape != (self.n_neurons, self.dimension):
            raise ValueError(f"network.initial_neurons gave weights of shape {w.shape}, expected "
                             f"{(self.n_neurons, self.dimension)}")
        self._stack = _Stack(1, self.dimension, self.n_neurons, self.batch_size, self._dtype,
                             self.train_second_layer, self.on_sphere)
        self._slot = 0
        self._a[:] = a
        self._wt[:] = w.T  # (d, N)
        n_invariants = self.invariants().reshape(self.n_neurons, -1).shape[1]
        if n_invariants != len(self.coordinate_names):
            raise ValueError(f"the network's invariants have {n_invariants} coordinates, the problem's are "
                             f"{self.coordinate_names}: network and problem of different models")
        self.steps = 0
        self.stepping_seconds = 0.0
        d, n, b = self.dimension, self.n_neurons, self.batch_size
        self.block_steps = max(1, _BLOCK_ENTRIES // (b * d))
        if math.isfinite(self.beta):  # the (steps, d [+ 1], N) noise block stays below ~16 MB too
            self.block_steps = min(self.block_steps, max(1, _BLOCK_ENTRIES // ((d + 1) * n)))

    # ---- state ------------------------------------------------------------------------------------
    @property
    def _wt(self) -> np.ndarray:
        """The stored weights (d, N) (a view of this seed's slot of its stack)."""
        return self._stack.wt[self._slot]

    @property
    def _a(self) -> np.ndarray:
        return self._stack.a[self._slot]

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        return tuple(self.problem.coordinate_names)

    @property
    def time(self) -> float:
        """PDE time t = kε."""
        return self.steps * self.step_size

    @property
    def weights(self) -> np.ndarray:
        """Current first-layer weights w_i, shape (N, d) (a float64 copy)."""
        return self._wt.T.astype(float)

    @property
    def second_layer(self) -> np.ndarray:
        """Current a_i, shape (N,) (a copy)."""
        return self._a.copy()

    def invariants(self) -> np.ndarray:
        """The reduced coordinates of the neurons (``network.invariants``): (N, D), or (N,) for D = 1."""
        return self.network.invariants(self._a, self._wt.T.astype(float, copy=False))

    def config(self) -> dict[str, Any]:
        return {"sgd.n_neurons": self.n_neurons, "sgd.step_size": self.step_size,
                "sgd.batch_size": self.batch_size, "sgd.seed": self.seed, "sgd.backend": self.backend,
                "sgd.precision": self.precision, "sgd.threads": 0 if self.threads is None else self.threads,
                "noise.beta": self.beta, "noise.weight_decay": self.weight_decay,
                "network.second_layer_rate": self.second_layer_rate,
                **{f"schedule.{k}": v for k, v in self.schedule.config().items()}}

    def state(self) -> dict[str, Any]:
        """Everything needed to resume bitwise: neurons, step counter, the three data/noise streams."""
        return {"weights": self.weights, "second_layer": self.second_layer, "steps": int(self.steps),
                "x_rng": self._x_rng.bit_generator.state, "y_rng": self._y_rng.bit_generator.state,
                "noise_rng": self._noise_rng.bit_generator.state, "config": self.config()}

    def set_state(self, state: dict[str, Any]) -> None:
        weights = np.asarray(state["weights"], dtype=float)
        if weights.shape != (self.n_neurons, self.dimension):
            raise ValueError(f"state weights have shape {weights.shape}, expected "
                             f"{(self.n_neurons, self.dimension)} (sgd.n_neurons, data.dimension)")
        saved, mine = state.get("config", {}), self.config()
        for key in _RESUME_KEYS:
            if key in saved and saved[key] != mine[key]:
                raise ValueError(f"state was saved with {key} = {saved[key]}, this run has {mine[key]}")
        if "second_layer" in state:  # checkpoints of first-layer-only runs may lack it (a = 1)
            a = np.asarray(state["second_layer"], dtype=float)
            if a.shape != (self.n_neurons,):
                raise ValueError(f"state second_layer has shape {a.shape}, expected ({self.n_neurons},)")
            self._a[:] = a
        self._wt[:] = weights.T
        self._stack.weight_scale[self._slot] = 1.0
        self.steps = check_integer("state.steps", state["steps"], 0)
        self._x_rng.bit_generator.state = state["x_rng"]
        self._y_rng.bit_generator.state = state["y_rng"]
        if "noise_rng" in state:  # checkpoints written before noise existed
            self._noise_rng.bit_generator.state = state["noise_rng"]

    # ---- stepping ---------------------------------------------------------------------------------
    def step(self, n_steps: int) -> None:
        """Take ``n_steps`` SGD steps."""
        _step_together([self], check_integer("n_steps", n_steps, 0), self.block_steps)

    def advance(self, t_target: float) -> None:
        """Advance to the step nearest ``t_target`` (``round(t_target/ε)`` steps from t = 0)."""
        t_target = float(t_target)
        if not math.isfinite(t_target):
            raise ValueError(f"t_target = {t_target} must be finite")
        target = int(round(t_target / self.step_size))
        if target < self.steps:
            raise ValueError(f"t_target = {t_target:g} lies before the current time {self.time:g}")
        self.step(target - self.steps)

    def diagnostics(self) -> dict[str, float]:
        """Steps taken and the stepping rate (observables excluded)."""
        rate = self.steps / self.stepping_seconds if self.stepping_seconds > 0 else math.nan
        return {"steps": float(self.steps), "steps_per_second": rate,
                "neuron_updates_per_second": rate * self.n_neurons}

    def _seed_label(self) -> str:
        """``" of seed k"`` when this seed is stepped with others (:class:`SGDSeedBatch`), else empty."""
        return f" of seed {self.seed}" if self._stack.wt.shape[0] > 1 else ""

    def _offending_neuron(self) -> int:
        """The first neuron with a non-finite parameter, else the one with the largest |a_i| |w_i|."""
        finite = np.all(np.isfinite(self._wt), axis=0) & np.isfinite(self._a)
        if not np.all(finite):
            return int(np.argmin(finite))
        with np.errstate(over="ignore"):
            return int(np.argmax(np.abs(self._a) * np.sqrt(np.einsum("ji,ji->i", self._wt, self._wt))))

    # ---- observables ------------------------------------------------------------------------------
    def observables(self) -> dict[str, Any]:
        """``risk`` (N = ∞ risk of the empirical law of the invariants), ``mean_<c>``/``std_<c>``,
        ``points`` (N, D), and (if recorded) ``network_risk`` with its truncation bound ``risk_bound``."""
        invariants = self.invariants()
        points = invariants.reshape(self.n_neurons, -1)
        masses = np.full(self.n_neurons, 1.0 / self.n_neurons)
        out: dict[str, Any] = {"time": self.time, "risk": self.problem.risk(invariants, masses), "points": points}
        for i, name in enumerate(self.coordinate_names):
            out[f"mean_{name}"] = float(points[:, i].mean())
            out[f"std_{name}"] = float(points[:, i].std())
        if self.record_network_risk:
            out["network_risk"], out["risk_bound"] = self.network.network_risk(self._a, self._wt.T.astype(float, copy=False))
        return out


# ------------------------------------------------------------------------------------------------
class SGDSeedBatch:
    """Several seeds of one SGD configuration advanced as one simulation: their weights on a leading
    seed axis (:class:`_Stack`: W (S, d, N), minibatches (S, B, d)), per step the two GEMMs of each seed
    and one compiled pass over all seeds between them and one after them (backend "numpy"; the
    compiled per-block kernel of backend "numba" runs seed after seed).

    Each seed keeps its own streams (:class:`SGDSimulation` of that seed: initial neurons, x, labels,
    noise), and every seed goes through the same BLAS calls and compiled functions as when it runs
    alone, so each seed's iterates are *bitwise* those of its separate run (tests/test_sgd_batch.py).
    What batching saves is the per-step Python and dispatch overhead, paid once per step for all S
    seeds instead of S times (README "Performance").  ``members``: the seeds' simulations (each has
    ``state``/``set_state``/``observables`` as a separate run; stepping one alone is allowed and gives
    the same iterates).  A divergence of one seed stops the batch (the SolverError names the seed)."""

    def __init__(self, network: NetworkModel, problem: ReducedProblem, *, seeds: Sequence[int], n_neurons: int,
                 step_size: float, allow_large: bool = False, **options: Any) -> None:
        seeds = [check_integer("sgd.seed", s, 0) for s in seeds]
        if not seeds:
            raise ValueError("sgd.seeds = [] must be a non-empty sequence of integers")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"sgd.seeds = {seeds} repeats a seed; batched seeds must differ")
        members = [SGDSimulation(network, problem, n_neurons=n_neurons, step_size=step_size, seed=seeds[0],
                                 allow_large=allow_large, **options)]
        lead = members[0]
        check_memory(f"{len(seeds)} batched seeds with sgd.n_neurons = {lead.n_neurons}, dimension "
                     f"d = {lead.dimension}", 8.0 * 4 * len(seeds) * lead.n_neurons * lead.dimension,
                     "the weights of all batched seeds (S x N x d, 4 copies)", allow_large=allow_large)
        members += [SGDSimulation(network, problem, n_neurons=n_neurons, step_size=step_size, seed=s,
                                  allow_large=allow_large, **options) for s in seeds[1:]]
        stack = _Stack(len(seeds), lead.dimension, lead.n_neurons, lead.batch_size, lead._stack.wt.dtype,
                       lead.train_second_layer, lead.on_sphere)
        for slot, sim in enumerate(members):
            stack.wt[slot], stack.a[slot] = sim._wt, sim._a
            sim._stack, sim._slot = stack, slot
        self.members = members
        self.seeds = seeds
        #: steps per block of the batch: the x (and noise) blocks of all seeds together stay ~16 MB each
        self.block_steps = max(1, lead.block_steps // len(seeds))

    @property
    def steps(self) -> list[int]:
        return [sim.steps for sim in self.members]

    def _chosen(self, members: Sequence[int] | None) -> list[int]:
        if members is None:
            return list(range(len(self.members)))
        chosen = sorted({check_integer("members", m, 0) for m in members})
        if chosen and chosen[-1] >= len(self.members):
            raise ValueError(f"members = {list(members)}: this batch has members 0 to {len(self.members) - 1}")
        return chosen

    def step(self, n_steps: int, members: Sequence[int] | None = None) -> None:
        """Take ``n_steps`` steps of the chosen members (indices into :attr:`members`; default all),
        which must be at the same step."""
        n_steps = check_integer("n_steps", n_steps, 0)
        sims = [self.members[m] for m in self._chosen(members)]
        if len({sim.steps for sim in sims}) > 1:
            raise ValueError(f"batched members at different steps {[sim.steps for sim in sims]}: "
                             "step them to a common step first (advance does)")
        if sims:
            _step_together(sims, n_steps, self.block_steps)

    def advance(self, t_target: float, members: Sequence[int] | None = None) -> None:
        """Advance the chosen members (default all) to the step nearest ``t_target``; members at different
        steps (e.g. resumed from checkpoints of different outputs) are brought together first."""
        t_target = float(t_target)
        if not math.isfinite(t_target):
            raise ValueError(f"t_target = {t_target} must be finite")
        chosen = self._chosen(members)
        target = int(round(t_target / self.members[0].step_size))
        for m in chosen:
            if self.members[m].steps > target:
                raise ValueError(f"t_target = {t_target:g} lies before the time {self.members[m].time:g} of "
                                 f"seed {self.members[m].seed}")
        while True:
            behind = [m for m in chosen if self.members[m].steps < target]
            if not behind:
                return
            low = min(self.members[m].steps for m in behind)
            stop = min([target] + [self.members[m].steps for m in behind if self.members[m].steps > low])
            self.step(stop - low, [m for m in behind if self.members[m].steps == low])


# ------------------------------------------------------------------------------------------------
# stepping: one seed, or several seeds of one configuration together (a leading seed axis)
# ------------------------------------------------------------------------------------------------
def _step_together(sims: Sequence[SGDSimulation], n_steps: int, block_steps: int) -> None:
    """Take ``n_steps`` steps of every simulation of ``sims`` (all at the same step, one configuration,
    bound to slots of one :class:`_Stack`), in blocks of at most ``block_steps``.  On the sphere the
    deferred normalisation is applied at the end when steps were taken (so that the state between calls
    is normalised)."""
    lead = sims[0]
    began = _time.perf_counter()
    stepping = n_steps > 0
    try:
        with _blas_threads(lead.threads):
            while n_steps > 0:
                block = min(n_steps, block_steps)
                _advance_block(sims, block)
                n_steps -= block
    finally:
        if lead._deferred and stepping:
            for sim in sims:
                _fold(sim._wt, sim._stack.weight_scale[sim._slot], sim._stack.work[0])
        elapsed = _time.perf_counter() - began
        for sim in sims:
            sim.stepping_seconds += elapsed


def _advance_block(sims: Sequence[SGDSimulation], block: int) -> None:
    """``block`` steps of every simulation of ``sims``: each seed draws its minibatches (and noise) from
    its own streams exactly as a run of that seed alone, then the steps run on the seed axis."""
    lead = sims[0]
    d, n, b = lead.dimension, lead.n_neurons, lead.batch_size
    xs = np.empty((len(sims), block, b, d), dtype=lead._stack.wt.dtype)
    y = np.empty((len(sims), block, b))
    for p, sim in enumerate(sims):
        x_p, y_p = sim.network.sample(block * b, sim._x_rng, sim._y_rng)
        xs[p] = x_p.reshape(block, b, d)
        y[p] = y_p.reshape(block, b)
    sizes = lead.step_size * np.asarray(
        lead.schedule(np.arange(lead.steps, lead.steps + block) * lead.step_size), dtype=float)
    rate = lead.second_layer_rate
    decay = 1.0 - 2.0 * lead.weight_decay * sizes if lead.weight_decay > 0 else None
    a_decay = 1.0 - 2.0 * rate * lead.weight_decay * sizes if lead.weight_decay > 0 else None
    noise = noise_scale = a_noise_scale = None
    if math.isfinite(lead.beta):  # per step: d·N entries for w, then N for a (if trained)
        noise = np.empty((len(sims), block, d + 1 if lead.train_second_layer else d, n))
        for p, sim in enumerate(sims):
            sim._noise_rng.standard_normal(out=noise[p])
        noise_scale = np.sqrt(4.0 * sizes / lead.beta)
        a_noise_scale = np.sqrt(4.0 * rate * sizes / lead.beta)
    if lead.backend == "numba":
        empty = np.zeros(0)
        bad, where = -1, 0
        for p, sim in enumerate(sims):
            bad = _sgd_block_piecewise_linear(
                sim._wt, sim._a, xs[p], y[p], sizes, *lead._piecewise, sim._stack.z[sim._slot],
                sim._stack.g[sim._slot], sim._stack.h[sim._slot], lead.train_second_layer, rate,
                empty if decay is None else decay, empty if a_decay is None else a_decay,
                noise[p, :, :d, :] if noise is not None else np.zeros((0, 0, 0)),
                noise_scale if noise is not None else empty,
                noise[p, :, d, :] if noise is not None and lead.train_second_layer else np.zeros((0, 0)),
                a_noise_scale if noise is not None and lead.train_second_layer else empty)
            if bad >= 0:
                where = p
                break
    else:
        bad, where = _numpy_steps(sims, xs, y, sizes, decay, a_decay, noise, noise_scale, a_noise_scale)
    if bad >= 0:
        sim = sims[where]
        for other in sims:
            other.steps += bad + 1
        raise SolverError(f"SGD diverged: non-finite network output at step {sim.steps} "
                          f"(t = {sim.time:.6g}), neuron {sim._offending_neuron()}{sim._seed_label()}; "
                          f"reduce sgd.step_size = {sim.step_size:g}")
    for sim in sims:
        sim.steps += block
    for sim in sims:
        if not (np.all(np.isfinite(sim._wt)) and np.all(np.isfinite(sim._a))):
            raise SolverError(f"SGD produced non-finite weights by step {sim.steps} (t = {sim.time:.6g}), "
                              f"neuron {sim._offending_neuron()}{sim._seed_label()}; "
                              f"reduce sgd.step_size = {sim.step_size:g}")


def _numpy_steps(sims: Sequence[SGDSimulation], xs: np.ndarray, y: np.ndarray, sizes: np.ndarray,
                 decay: np.ndarray | None, a_decay: np.ndarray | None, noise: np.ndarray | None,
                 noise_scale: np.ndarray | None, a_noise_scale: np.ndarray | None) -> tuple[int, int]:
    """The BLAS backend's steps for the seeds ``sims`` (module docstring): per step and seed the two GEMMs
    (``Z = X W``; in the ball ``W ← decay W + Gᵀ X`` in place, on the sphere ``W += Xᵀ G'`` in place or
    the explicit route), between them one compiled pass over all seeds (:func:`_between_gemms`), after
    them one more (:func:`_sphere_norms` on the sphere, :func:`_after_gemms`).  Every seed goes through
    the same calls whatever the number of seeds, so a seed's iterates are bitwise those of its run
    alone.  Returns (step, seed position) of the first non-finite residual, or (-1, 0)."""
    lead = sims[0]
    stack = lead._stack
    slots = np.array([sim._slot for sim in sims], dtype=np.int64)
    wt, z, g, a = stack.wt, stack.z, stack.g, stack.a
    dtype = stack.wt.dtype
    gemm = _blas.sgemm if dtype == np.float32 else _blas.dgemm
    act, inv_n, scale = lead.activation, 1.0 / lead.n_neurons, 2.0 / lead.batch_size
    fused, sphere, deferred = lead._fused, lead.on_sphere, lead._deferred and noise is None
    explicit = np.zeros(len(sims), dtype=np.bool_)
    d, n, b = lead.dimension, lead.n_neurons, lead.batch_size
    gram_route = deferred and b * b * (n + d) <= d * n  # |u_i|² from X Xᵀ rather than a pass over W
    no_noise = np.zeros((0, 0, 0, 0))
    first = lead.steps
    # per seed, the views the GEMMs take (made once per block: the per-step Python is what batching saves)
    views = [(xs[p], wt[s], z[s], g[s], wt[s].T, g[s].T) for p, s in enumerate(slots)]
    betas = [float(beta) for beta in decay] if decay is not None else [1.0] * y.shape[1]
    coefficient_scales = scale * sizes
    for k in range(y.shape[1]):
        for x_p, w_s, z_s, _, _, _ in views:
            np.dot(x_p[k], w_s, out=z_s)                                        # (B, N) = X W (BLAS)
        coefficient_scale = coefficient_scales[k]
        if fused is not None:                                                   # σ, σ', e, G, a-increment
            bad = _between_gemms(slots, z, a, y[:, k], coefficient_scale, inv_n, *fused, g, stack.a_step,
                                 stack.work, deferred, gram_route, xs[:, k], stack.weight_scale, stack.tangent,
                                 explicit)
            if bad >= 0:
                return k, bad
        else:
            for p, s in enumerate(slots):
                features = act(z[s])
                residual = y[p, k] - inv_n * (features @ a[s])                 # (B,)
                if not np.all(np.isfinite(residual)):
                    return k, p
                coefficient = coefficient_scale * residual
                np.multiply(act.derivative(z[s]), coefficient[:, None], out=g[s])
                g[s] *= a[s]
                if lead.train_second_layer:
                    stack.a_step[s] = coefficient @ features
        if sphere:
            for p, s in enumerate(slots):
                x_p, _, _, _, w_t, g_t = views[p]
                if deferred and not explicit[p]:                                # W += Xᵀ G' in place
                    gemm(1.0, g_t, x_p[k].T, beta=1.0, c=w_t, trans_b=1, overwrite_c=1)
                else:                                                           # Xᵀ G, P⊥, retraction
                    if deferred:
                        _fold(wt[s], stack.weight_scale[s], stack.work[0])
                    np.dot(xs[p][k].T, g[s], out=stack.update)
                    _project_and_retract(wt[s], stack.update, noise[p, k, :d] if noise is not None else _NO_NOISE,
                                         noise_scale[k] if noise is not None else 0.0, stack.work)
            if deferred and (first + k + 1) % _FOLD_EVERY == 0:
                for p, s in enumerate(slots):
                    if not explicit[p]:
                        _fold(wt[s], stack.weight_scale[s], stack.work[0])
            elif deferred and not gram_route:
                _sphere_norms(slots, wt, stack.weight_scale, explicit, stack.work)
        else:                                                                   # W ← decay W + Gᵀ X, in place
            beta = betas[k]
            for x_p, _, _, _, w_t, g_t in views:
                gemm(1.0, g_t, x_p[k].T, beta=beta, c=w_t, trans_b=1, overwrite_c=1)
        if lead.train_second_layer or (noise is not None and not sphere):
            _after_gemms(slots, wt, a, stack.a_step, noise if noise is not None else no_noise, k,
                         noise_scale[k] if noise is not None else 0.0, not sphere, lead.train_second_layer,
                         lead.second_layer_rate, a_decay[k] if a_decay is not None else 1.0,
                         a_noise_scale[k] if noise is not None else 0.0)
    return -1, 0


# ------------------------------------------------------------------------------------------------
def run_sgd(network: NetworkModel, problem: ReducedProblem, output_times: Sequence[float], *,
            n_neurons: int, step_size: float, progress: bool = False, checkpoint=None,
            checkpoint_every: float = 60.0, resume: bool = False, **options: Any) -> Trajectory:
    """SGD observables at ``output_times`` (each rounded to the nearest step; the recorded ``time`` is
    the actual kε) through :func:`solvers.controller.run_simulation`; ``options``: the keyword
    arguments of :class:`SGDSimulation`.  Trajectory kind ``"sgd"``: ``risk`` (law of the invariants),
    ``network_risk`` (if recorded), fields ``points`` (T, N, D) (and ``risk_bound``); diagnostics
    ``steps``, ``wall_time``, ``steps_per_second`` (stepping only)."""
    from solvers.controller import run_simulation

    times = validate_output_times(output_times)
    simulation = SGDSimulation(network, problem, n_neurons=n_neurons, step_size=step_size, **options)
    return run_simulation(simulation, times, kind="sgd", config={**problem.config(), **simulation.config()},
                          progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                          resume=resume)


def _run_one(job: tuple) -> Trajectory:
    network, problem, output_times, seed, kwargs = job
    return run_sgd(network, problem, output_times, seed=seed, **kwargs)


def run_sgd_seeds(network: NetworkModel, problem: ReducedProblem, output_times: Sequence[float], *,
                  seeds: Sequence[int], processes: int = 1, batched: bool = False, checkpoints=None,
                  resume: bool | Sequence[bool] = False, progress: bool = False, checkpoint_every: float = 60.0,
                  **kwargs: Any) -> list[Trajectory]:
    """:func:`run_sgd` for each seed, in seed order.  ``processes > 1`` runs seeds in parallel worker
    processes (spawned, one BLAS thread each: :func:`solvers.controller.map_in_processes`); results
    are identical to the sequential ones.  ``batched``: all seeds as one :class:`SGDSeedBatch` in this
    process (one checkpoint store per seed in ``checkpoints``, ``resume`` one flag or one per seed);
    each seed's trajectory is bitwise the one of its separate run.  Combine with :func:`seed_statistics`."""
    from solvers.controller import map_in_processes, run_simulation_group

    seeds = [check_integer("sgd.seed", s, 0) for s in seeds]
    if not seeds:
        raise ValueError("sgd.seeds = [] must be a non-empty sequence of integers")
    processes = check_integer("processes", processes, 1)
    if batched:
        if processes > 1:
            raise ValueError(f"processes = {processes} with batched = True: a batch runs in this process "
                             "(use processes = 1, or batched = False for parallel processes)")
        times = validate_output_times(output_times)
        batch = SGDSeedBatch(network, problem, seeds=seeds, **kwargs)
        configs = [{**problem.config(), **sim.config()} for sim in batch.members]
        return run_simulation_group(batch.advance, batch.members, times, kind="sgd", configs=configs,
                                    checkpoints=checkpoints, checkpoint_every=checkpoint_every, resume=resume,
                                    progress=progress)
    if checkpoints is not None or resume:
        raise ValueError("run_sgd_seeds: checkpoints and resume go with batched = True (else use run_sgd per seed)")
    jobs = [(network, problem, list(output_times), s, {**kwargs, "progress": progress, "checkpoint_every": checkpoint_every})
            for s in seeds]
    return map_in_processes(_run_one, jobs, processes)


def seed_statistics(trajectories: Sequence[Trajectory], name: str = "risk"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time, mean, standard deviation over seeds (ddof=1; 0 for one seed)) of a recorded series
    (:meth:`~solvers.results.Trajectory.series`: ``risk``, ``network_risk``, ``mean_r``, a field)."""
    values = np.array([t.series(name) for t in trajectories], dtype=float)
    time = trajectories[0].time
    if any(t.time.shape != time.shape or not np.allclose(t.time, time) for t in trajectories):
        raise ValueError("trajectories have different output times")
    spread = values.std(axis=0, ddof=1) if len(trajectories) > 1 else np.zeros_like(time)
    return time, values.mean(axis=0), spread


def radial_noise_drift(sim: SGDSimulation, n_samples: int = 20000, seed: int = 12345
                       ) -> dict[str, np.ndarray]:
    """Monte-Carlo estimate, at the current neurons (ball), of SGD's noise-induced drift of r_i = |w_i|
    per unit time (Itô term) versus the mean (PDE-like) radial velocity, per neuron.

    A step ``Δw_i = (2 s/B) Σ_b c_bi x_b`` with ``c = (y − f) a_i σ'(⟨w_i, x⟩)`` changes ``r_i`` on
    average by ``⟨ŵ_i, EΔw_i⟩ + E|P⊥Δw_i|²/(2 r_i)``; the second (noise) term is
    ``(2 s²/(B r_i)) E[c² |P⊥x|²]`` to leading order, so per unit time (1/ε steps)
    ``noise_drift_i = 2 ε ξ² E[c² |P⊥ x|²] / (B r_i)``, against ``velocity_i = 2ξ E[c ⟨ŵ_i, x⟩]``.
    Returns both (N,) at ξ = ξ(t), and r."""
    rng = np.random.default_rng(seed)
    w, a = sim.weights, sim.second_layer
    r = np.linalg.norm(w, axis=1)
    unit = w / np.where(r > 0, r, 1.0)[:, None]
    xi = float(sim.schedule(sim.time))
    sum_parallel = np.zeros(sim.n_neurons)
    sum_noise = np.zeros(sim.n_neurons)
    done = 0
    while done < n_samples:
        m = min(2000, n_samples - done)
        x, y = sim.network.sample(m, rng)
        z = x @ w.T
        c = (y - sim.activation(z) @ a / sim.n_neurons)[:, None] * a * sim.activation.derivative(z)
        parallel = x @ unit.T  # ⟨ŵ_i, x⟩
        perp_sq = (x * x).sum(axis=1)[:, None] - parallel**2
        sum_parallel += (c * parallel).sum(axis=0)
        sum_noise += (c * c * perp_sq).sum(axis=0)
        done += m
    velocity = 2.0 * xi * sum_parallel / n_samples
    noise = 2.0 * sim.step_size * xi**2 * sum_noise / n_samples / (sim.batch_size * np.maximum(r, 1e-300))
    return {"velocity": velocity, "noise_drift": noise, "r": r}
