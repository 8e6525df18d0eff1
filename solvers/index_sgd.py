"""Online SGD in full dimension d for single- and multi-index models (validates the (a, s, r) reductions).

Data (design note §3b): ``x ~ N(0, I_d)``, projections ``z = Θ* x ∈ R^k`` with Θ* the first k basis
vectors (the laws of the invariants do not depend on the frame), ``y = φ(z) + noise``
(``problem.sample_labels``).  Network ``f(x) = (1/N) Σ_i a_i σ(⟨w_i, x⟩)``; ``a_i`` is trained
(``problem.train_second_layer``) or fixed at ``problem.second_layer``.

One step with a fresh minibatch ``(x_b, y_b)_{b<B}`` (per-neuron step without 1/N, design note §2)::

    Z = X Wᵀ (B × N),   f_b = (1/N) Σ_i a_i σ(Z_bi),   e_b = y_b − f_b,
    a_i ← a_i + 2 s_k c_a (1/B) Σ_b e_b σ(Z_bi),
    w_i ← w_i + 2 s_k (1/B) Σ_b e_b a_i σ'(Z_bi) x_b,            s_k = ε ξ(kε),  t = kε,

both from the same (old) state.  ``c_a`` = ``second_layer_rate`` (per-layer learning rates: the
second layer moves c_a times faster; the reduced equation multiplies ∂_a ψ by the same factor).
The mean increment is ``−s_k N ∇_{θ_i} R_N`` (R_N the exact population risk of the N-neuron
network), so as N → ∞, ε → 0 the empirical law of the invariants follows
``∂_t p = 2ξ ∇·(p C ∇ψ)``.  On the sphere (``problem.sphere``) the w-increment is projected on
the tangent space ``P⊥_i = I − w_i w_iᵀ`` and w_i is renormalised (projected gradient flow: the
velocity of s is ``−2ξ (1 − s²) ∂_s ψ`` for k = 1).

Implementation: weights transposed (d, N), per step two BLAS products (``X Wᵀ``, ``Xᵀ G``) into
preallocated buffers; data drawn in blocks from streams spawned from ``SeedSequence(seed)`` (initial
weights, x, labels): the run does not depend on how it is split into :meth:`advance` calls, and
:meth:`state`/:meth:`set_state` resume bitwise.

Observables (design note §5, like with like): ``risk`` = the N = ∞ risk of the empirical law of
the invariants ``problem.risk(points, 1/N)``; ``network_risk`` = the exact risk R_N of the network
(optional: ``record_network_risk``, O(N²)); ``points`` (N, dim) the invariants; ``mean_<x>``,
``std_<x>`` for every coordinate.
"""

from __future__ import annotations

import math
import time as _time
from typing import Any, Sequence

import numpy as np

from reduced_pde.schedules import LearningRateSchedule

from solvers.results import Trajectory
from solvers.sgd import ParticleCheckpoint, _check_int

__all__ = ["IndexSGDSimulation", "IndexSGDError", "run_index_sgd"]

_BLOCK_ENTRIES = 2 * 1024 * 1024


class IndexSGDError(RuntimeError):
    """SGD produced non-finite outputs or weights."""


class IndexSGDSimulation(ParticleCheckpoint):
    """Stateful online SGD for single-/multi-index problems (module docstring)."""

    resume_keys = ParticleCheckpoint.resume_keys + ("network.second_layer_rate",)

    def __init__(self, problem: Any, n_neurons: int, step_size: float, batch_size: int = 1,
                 schedule: LearningRateSchedule | None = None, seed: int = 0,
                 second_layer_rate: float = 1.0, record_network_risk: bool = False) -> None:
        for attribute in ("index_dimension", "sample_labels", "reduced_coordinates", "activation"):
            if not hasattr(problem, attribute):
                raise ValueError(f"problem {type(problem).__name__} is not a single-/multi-index problem "
                                 f"(it has no {attribute!r})")
        self.n_neurons = _check_int("sgd.n_neurons", n_neurons, 1)
        self.batch_size = _check_int("sgd.batch_size", batch_size, 1)
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float, np.floating)) \
                or not (math.isfinite(step_size) and step_size > 0):
            raise ValueError(f"sgd.step_size = {step_size!r} must be a finite number > 0 (ε, the PDE "
                             "time per SGD step)")
        self.step_size = float(step_size)
        if isinstance(second_layer_rate, bool) or not (isinstance(second_layer_rate, (int, float))
                                                       and math.isfinite(second_layer_rate)
                                                       and second_layer_rate >= 0):
            raise ValueError(f"network.second_layer_rate = {second_layer_rate!r} must be a finite number >= 0")
        self.second_layer_rate = float(second_layer_rate)
        self.seed = _check_int("sgd.seed", seed, 0)
        dimension = float(problem.dimension)
        if not (math.isfinite(dimension) and dimension >= 2):
            raise ValueError(f"data.dimension = {problem.dimension} cannot be simulated by SGD; it needs a "
                             "finite integer d >= 2")
        self.dimension = int(dimension)
        self.problem = problem
        self.index_dimension = int(problem.index_dimension)
        self.sphere = bool(getattr(problem, "sphere", False))
        self.train_second_layer = bool(problem.train_second_layer)
        self.activation = problem.activation
        self.schedule = schedule if schedule is not None else LearningRateSchedule()
        self.record_network_risk = bool(record_network_risk)
        init_seq, x_seq, y_seq, noise_seq = np.random.SeedSequence(self.seed).spawn(4)
        init_rng = np.random.Generator(np.random.PCG64(init_seq))
        self._x_rng = np.random.Generator(np.random.PCG64(x_seq))
        self._y_rng = np.random.Generator(np.random.PCG64(y_seq))
        self._noise_rng = np.random.Generator(np.random.PCG64(noise_seq))  # unused (no Langevin noise)
        self.theta_star = np.eye(self.index_dimension, self.dimension)
        frame = self.theta_star[0] if self.index_dimension == 1 else self.theta_star
        a, w = problem.initial_law().sample_network(self.n_neurons, init_rng, frame)
        self._a = np.array(a, dtype=float)
        self._wt = np.ascontiguousarray(np.asarray(w, dtype=float).T)  # (d, N)
        self.steps = 0
        self.stepping_seconds = 0.0
        self.block_steps = max(1, _BLOCK_ENTRIES // (self.dimension * self.batch_size))
        b, n, d = self.batch_size, self.n_neurons, self.dimension
        self._z = np.empty((b, n))
        self._g = np.empty((b, n))
        self._update = np.empty((d, n))

    # ---- state ----------------------------------------------------------------------------------
    @property
    def second_layer(self) -> np.ndarray:
        """Current a_i, shape (N,) (a copy)."""
        return self._a.copy()

    def state(self) -> dict[str, Any]:
        return {**super().state(), "second_layer": self.second_layer}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        a = np.asarray(state["second_layer"], dtype=float)
        if a.shape != (self.n_neurons,):
            raise ValueError(f"state second_layer has shape {a.shape}, expected ({self.n_neurons},)")
        self._a = a.copy()

    def config(self) -> dict[str, Any]:
        return {"sgd.name": "index_projected" if self.sphere else "index", "sgd.n_neurons": self.n_neurons,
                "sgd.step_size": self.step_size, "sgd.batch_size": self.batch_size, "sgd.seed": self.seed,
                "noise.beta": math.inf, "network.second_layer_rate": self.second_layer_rate,
                "network.train_second_layer": self.train_second_layer,
                **{f"schedule.{k}": v for k, v in self.schedule.config().items()}}

    def points(self) -> np.ndarray:
        """The invariants of the neurons, shape (N, dim) (``problem.reduced_coordinates``)."""
        frame = self.theta_star[0] if self.index_dimension == 1 else self.theta_star
        return self.problem.reduced_coordinates(self._a, self._wt.T, frame)

    # ---- stepping -------------------------------------------------------------------------------
    def step(self, n_steps: int) -> None:
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
        b, d, k_index = self.batch_size, self.dimension, self.index_dimension
        x = self._x_rng.standard_normal((block, b, d))
        y = self.problem.sample_labels(x[:, :, :k_index].reshape(block * b, k_index),
                                       self._y_rng).reshape(block, b)
        sizes = self.step_size * np.asarray(
            self.schedule(np.arange(self.steps, self.steps + block) * self.step_size), dtype=float)
        wt, a, z, g, update = self._wt, self._a, self._z, self._g, self._update
        inv_n = 1.0 / self.n_neurons
        for k in range(block):
            xk = x[k]
            np.matmul(xk, wt, out=z)                                    # (B, N)
            features = self.activation(z)
            residual = y[k] - inv_n * (features @ a)                    # (B,)
            if not np.all(np.isfinite(residual)):
                step = self.steps + k
                raise IndexSGDError(f"network output became non-finite at step {step} "
                                    f"(t = {step * self.step_size:.6g})")
            scale = 2.0 * sizes[k] / b
            np.multiply(self.activation.derivative(z), (scale * residual)[:, None], out=g)
            g *= a[None, :]
            np.matmul(xk.T, g, out=update)                              # (d, N) = Xᵀ G
            if self.train_second_layer:
                a += (self.second_layer_rate * scale) * (residual @ features)
            if self.sphere:
                update -= wt * np.einsum("ji,ji->i", wt, update)
                wt += update
                wt /= np.sqrt(np.einsum("ji,ji->i", wt, wt))
            else:
                wt += update
        self.steps += block
        if not (np.all(np.isfinite(wt)) and np.all(np.isfinite(a))):
            bad = int(np.argmax(~np.all(np.isfinite(wt), axis=0) | ~np.isfinite(a)))
            raise IndexSGDError(f"neuron {bad} became non-finite by step {self.steps} (t = {self.time:.6g})")

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
        return {"steps": float(self.steps), "steps_per_second": rate,
                "neuron_updates_per_second": rate * self.n_neurons}

    def observables(self) -> dict[str, Any]:
        points = self.points()
        masses = np.full(self.n_neurons, 1.0 / self.n_neurons)
        out: dict[str, Any] = {"time": self.time, "risk": self.problem.risk(points, masses), "points": points}
        names = tuple(self.problem.coordinate_names)
        for i, name in enumerate(names):
            out[f"mean_{name}"] = float(points[:, i].mean())
            out[f"std_{name}"] = float(points[:, i].std())
        if self.record_network_risk:
            frame = self.theta_star[0] if self.index_dimension == 1 else self.theta_star
            out["network_risk"] = float(self.problem.network_risk(self._a, self._wt.T, frame)[0])
        return out


def run_index_sgd(problem: Any, output_times: Sequence[float], *, n_neurons: int, step_size: float,
                  batch_size: int = 1, schedule: LearningRateSchedule | None = None, seed: int = 0,
                  second_layer_rate: float = 1.0, record_network_risk: bool = False,
                  progress: bool = False, **run_options: Any) -> Trajectory:
    """Observables at ``output_times`` (nearest steps) through :func:`solvers.controller.run_simulation`
    (``run_options``: checkpoint, checkpoint_every, resume).  Trajectory kind ``"sgd"``; fields
    ``points`` (T, N, dim), ``mean_<x>``, ``std_<x>`` (T,)."""
    from solvers.controller import run_simulation

    from solvers.finite_volume import validate_output_times

    times = validate_output_times(output_times)
    simulation = IndexSGDSimulation(problem, n_neurons, step_size, batch_size, schedule, seed,
                                    second_layer_rate, record_network_risk)
    return run_simulation(simulation, times, kind="sgd", config={**problem.config(), **simulation.config()},
                          progress=progress, **run_options)
