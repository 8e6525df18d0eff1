"""Noisy projected online SGD on the sphere for the single-index model with a fixed second layer.

Network ``f(x; W) = (a/N) Σ_i σ(⟨w_i, x⟩)``, ``|w_i| = 1``, a fixed (``problem.second_layer``);
data ``x ~ N(0, I_d)``, ``y = φ(⟨θ*, x⟩) + τ ε`` (θ* = e_1: the law of the reduced coordinate
``s = ⟨w, θ*⟩`` does not depend on the frame).  One step with a fresh minibatch ``(x_b, y_b)_{b<B}``::

    Z = X Wᵀ (B × N),   f_b = (a/N) Σ_i σ(Z_bi),
    g_i = (2 s_k a / B) Σ_b (y_b − f_b) σ'(Z_bi) x_b,                      s_k = ε ξ(kε),
    w_i ← normalise( w_i + P⊥_i g_i + sqrt(4 s_k/β) P⊥_i ξ_i ),  P⊥_i = I − w_i w_iᵀ,  ξ_i ~ N(0, I_d).

The mean of g_i is ``−2 s_k ∇_w Ψ(w_i; ρ̂_N)`` (the convention of :mod:`solvers.sgd`), and the
renormalisation turns the tangent noise into Brownian motion on S^{d−1}: per unit time the drift
of s is ``−2ξβ⁻¹(d−1)s`` (from ``|w + δ|⁻¹ ≈ 1 − |δ|²/2``, ``E|P⊥ξ|² = d − 1``) and its
variance ``4ξβ⁻¹(1 − s²)``, i.e. the generator ``2ξβ⁻¹Δ_{S^{d−1}}``.  With the projected gradient,
the law of s follows the sphere Fokker–Planck equation of :mod:`solvers.fokker_planck`
(``∂_t p = 2ξ ∂_s[(1 − s²)(p ∂_sψ + β⁻¹ J ∂_s(p/J))]``, J = (1 − s²)^{(d−3)/2}) up to O(1/N)
and O(ε) (minibatch-gradient noise adds ``4 s_k² Cov(g)/B`` per step: a relative temperature
increase ≈ ``εξβ E[(y − f)² σ'² |P⊥x|²] / (B (d − 1))``).

Implementation: weights stored transposed (d, N), C-contiguous; per step two BLAS products
(``X @ WT`` and ``Xᵀ G``) and O(dN) vector work into preallocated buffers.  Data and noise are
drawn in blocks of steps from four streams spawned from ``SeedSequence(seed)`` (initial weights,
x, label noise, Langevin noise): the run does not depend on how it is split into ``advance``
calls, and :meth:`SphereSGDSimulation.state` / :meth:`set_state` resume bitwise.

Observables (for :func:`solvers.controller.run_simulation`): ``risk`` = the reduced risk
``R(p̂)`` of the empirical law of s (``problem.risk``, orientation-averaged kernel incl. the
diagonal), ``mean_s``/``std_s`` = mean and standard deviation of s,
``s`` (N,) the values, ``time`` the actual kε.
"""

from __future__ import annotations

import math
import time as _time
from typing import Any, Sequence

import numpy as np

from reduced_pde.schedules import LearningRateSchedule

from solvers.results import Trajectory
from solvers.sgd import ParticleCheckpoint, _check_int

__all__ = ["SphereSGDSimulation", "run_sphere_sgd"]

_BLOCK_ENTRIES = 2 * 1024 * 1024


class SphereSGDSimulation(ParticleCheckpoint):
    """Stateful noisy projected SGD on S^{d−1} (module docstring): ``time``, :meth:`advance`,
    :meth:`observables`, :meth:`state`, :meth:`set_state`, :meth:`diagnostics`, :meth:`config`."""

    def __init__(self, problem: Any, n_neurons: int, step_size: float, batch_size: int = 1,
                 schedule: LearningRateSchedule | None = None, seed: int = 0,
                 beta: float = math.inf, weight_decay: float = 0.0) -> None:
        if not (getattr(problem, "sphere", False) and tuple(getattr(problem, "coordinate_names", ())) == ("s",)):
            raise ValueError("problem must be a SingleIndexProblem with sphere=True and "
                             "train_second_layer=False (coordinates ('s',)), got coordinates "
                             f"{getattr(problem, 'coordinate_names', None)}")
        self.n_neurons = _check_int("sgd.n_neurons", n_neurons, 1)
        self.batch_size = _check_int("sgd.batch_size", batch_size, 1)
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float, np.floating)) \
                or not (math.isfinite(step_size) and step_size > 0):
            raise ValueError(f"sgd.step_size = {step_size!r} must be a finite number > 0 (it is ε, "
                             "the PDE time per SGD step)")
        self.step_size = float(step_size)
        self.seed = _check_int("sgd.seed", seed, 0)
        dimension = problem.dimension
        if not (math.isfinite(dimension) and dimension >= 2):
            raise ValueError(f"data.dimension = {dimension} cannot be simulated by SGD; "
                             "it needs a finite integer dimension d >= 2")
        self.dimension = int(dimension)
        from reduced_pde.free_energy import check_noise_parameters

        self.beta, self.weight_decay = check_noise_parameters(beta, weight_decay, dimension)
        problem.check_noise(self.beta, self.weight_decay)  # no weight decay on the sphere
        self.problem = problem
        self.schedule = schedule if schedule is not None else LearningRateSchedule()
        self.activation = problem.activation
        self.target = problem.target
        self.second_layer = float(problem.second_layer)
        self.label_noise = math.sqrt(float(problem.target.noise_variance))
        init_seq, x_seq, y_seq, noise_seq = np.random.SeedSequence(self.seed).spawn(4)
        init_rng = np.random.Generator(np.random.PCG64(init_seq))
        self._x_rng = np.random.Generator(np.random.PCG64(x_seq))
        self._y_rng = np.random.Generator(np.random.PCG64(y_seq))
        self._noise_rng = np.random.Generator(np.random.PCG64(noise_seq))
        _, w = problem.initial_law().sample_network(self.n_neurons, init_rng)
        self._wt = np.ascontiguousarray(np.asarray(w, dtype=float).T)  # (d, N), unit columns
        self.theta_star = np.zeros(self.dimension)
        self.theta_star[0] = 1.0
        self.steps = 0
        self.stepping_seconds = 0.0
        entries = self.dimension * max(self.batch_size, self.n_neurons if math.isfinite(self.beta) else 1)
        self.block_steps = max(1, _BLOCK_ENTRIES // entries)
        b, n, d = self.batch_size, self.n_neurons, self.dimension
        self._z = np.empty((b, n))
        self._g = np.empty((b, n))
        self._update = np.empty((d, n))
        self._dots = np.empty(n)

    # ---- state (time, weights (rows of norm 1), state(), set_state() from ParticleCheckpoint) -----
    @property
    def s(self) -> np.ndarray:
        """Reduced coordinates ``s_i = ⟨w_i, θ*⟩`` (θ* = e_1)."""
        return self._wt[0].copy()

    def config(self) -> dict[str, Any]:
        return {"sgd.name": "sphere_projected", "sgd.n_neurons": self.n_neurons,
                "sgd.step_size": self.step_size, "sgd.batch_size": self.batch_size,
                "sgd.seed": self.seed, "noise.beta": self.beta, "noise.weight_decay": self.weight_decay,
                **{f"schedule.{k}": v for k, v in self.schedule.config().items()}}

    # ---- stepping ------------------------------------------------------------------------------
    def step(self, n_steps: int) -> None:
        """Take ``n_steps`` projected SGD steps."""
        n_steps = _check_int("n_steps", n_steps, 0)
        began = _time.perf_counter()
        try:
            while n_steps > 0:
                block = min(n_steps, self.block_steps)
                self._block(block)
                n_steps -= block
        finally:
            self.stepping_seconds += _time.perf_counter() - began

    def _block(self, block: int) -> None:
        x = self._x_rng.standard_normal((block, self.batch_size, self.dimension))
        y = self.target(x[:, :, 0])
        if self.label_noise > 0:
            y = y + self.label_noise * self._y_rng.standard_normal(y.shape)
        sizes = self.step_size * np.asarray(
            self.schedule(np.arange(self.steps, self.steps + block) * self.step_size), dtype=float)
        noisy = math.isfinite(self.beta)
        noise = (self._noise_rng.standard_normal((block, self.dimension, self.n_neurons))
                 if noisy else None)
        noise_scale = np.sqrt(4.0 * sizes / self.beta)
        wt, z, g, update, dots = self._wt, self._z, self._g, self._update, self._dots
        a, inv_n = self.second_layer, 1.0 / self.n_neurons
        for k in range(block):
            xk = x[k]
            np.matmul(xk, wt, out=z)                                   # (B, N)
            f = a * inv_n * self.activation(z).sum(axis=1)             # (B,)
            residual = y[k] - f
            if not np.all(np.isfinite(residual)):
                raise SGDSphereError(f"network output became non-finite at step {self.steps + k} "
                                     f"(t = {(self.steps + k) * self.step_size:.6g})")
            np.multiply(self.activation.derivative(z), ((2.0 * sizes[k] * a / self.batch_size)
                                                        * residual)[:, None], out=g)
            np.matmul(xk.T, g, out=update)                             # (d, N) = Xᵀ G
            if noisy:
                update += noise_scale[k] * noise[k]
            np.einsum("ji,ji->i", wt, update, out=dots)                # P⊥: remove ⟨w_i, ·⟩ w_i
            update -= wt * dots
            wt += update
            wt /= np.sqrt(np.einsum("ji,ji->i", wt, wt))
        self.steps += block

    def advance(self, t_target: float) -> None:
        """Step to the step count nearest to ``t_target / ε``."""
        t_target = float(t_target)
        if not math.isfinite(t_target):
            raise ValueError(f"t_target = {t_target} must be finite")
        target_steps = int(round(t_target / self.step_size))
        if target_steps < self.steps:
            raise ValueError(f"t_target = {t_target} is before the current time {self.time}")
        self.step(target_steps - self.steps)

    def diagnostics(self) -> dict[str, float]:
        rate = self.steps / self.stepping_seconds if self.stepping_seconds > 0 else math.nan
        return {"steps": float(self.steps), "steps_per_second": rate}

    def observables(self) -> dict[str, Any]:
        s = self.s
        masses = np.full(self.n_neurons, 1.0 / self.n_neurons)
        mean, std = float(s.mean()), float(s.std())
        return {"time": self.time, "risk": self.problem.risk(s, masses), "mean_s": mean, "std_s": std, "s": s}


class SGDSphereError(RuntimeError):
    """Projected SGD produced non-finite outputs."""


def run_sphere_sgd(problem: Any, output_times: Sequence[float], *, n_neurons: int, step_size: float,
                   batch_size: int = 1, schedule: LearningRateSchedule | None = None, seed: int = 0,
                   beta: float = math.inf, progress: bool = False, **run_options: Any) -> Trajectory:
    """Observables at ``output_times`` (nearest steps) via :func:`solvers.controller.run_simulation`
    (``run_options``: checkpoint, checkpoint_every, resume).  Trajectory kind ``"sphere_sgd"``;
    fields ``s`` (T, N), ``mean_s``, ``std_s`` (T,)."""
    from solvers.controller import run_simulation

    from solvers.finite_volume import validate_output_times

    times = validate_output_times(output_times)
    sim = SphereSGDSimulation(problem, n_neurons, step_size, batch_size, schedule, seed, beta=beta)
    return run_simulation(sim, times, kind="sphere_sgd", config={**problem.config(), **sim.config()},
                          progress=progress, **run_options)
