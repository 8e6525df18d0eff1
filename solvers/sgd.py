"""Online minibatch SGD in full dimension d for the MMN18 problem (the reference the PDEs are validated against).

Network ``f(x; W) = (1/N) Σ_i σ(⟨w_i, x⟩)`` (first layer only, as in MMN18), data
``y = ±1`` (prob. ½), ``x | y ~ N(0, (1 + yΔ)² I_d)`` (:class:`~reduced_pde.models.isotropic_mixture.IsotropicGaussianMixture`).
One step with a fresh minibatch ``(x_b, y_b)_{b<B}`` (design note §2, minibatch *average*)::

    Z = X W^T  (B × N),   f_b = (1/N) Σ_i σ(Z_bi),
    W ← W + (2 s_k / B) ((y − f)[:, None] * σ'(Z))^T X,      s_k = ε ξ(kε),   t = kε.

Since ``∇_{w_i} R_N = −(2/N) E[(y − f) σ'(⟨w_i,x⟩) x]``, the mean step is ``E ΔW = −N s_k ∇_W R_N(W)``,
i.e. ``E Δw_i = −2 s_k ∇_w Ψ(w_i; ρ̂_N)`` with the exact (actual-cosine) kernel: the PDE velocity
of the design note.

Implementation (measured on the 2-core reference machine, N = 800, d = 320; see the report and
``benchmarks/``):

* weights are stored transposed, ``WT`` of shape (d, N), C-contiguous, so every inner loop runs over
  neurons (contiguous, SIMD-vectorisable without re-association: results are bitwise reproducible);
* ``backend="numba"`` (piecewise-linear activations only: MMN18, ReLU): a compiled loop runs a whole
  block of steps (forward pass, residual, update fused per step), no Python per step.  Fastest for
  small batches (single thread: ~15k steps/s at B = 1, ~15-17k samples/s at any B);
* ``backend="numpy"`` (any activation): per step two BLAS calls (``X @ WT`` and ``X^T G``) into
  preallocated buffers (OpenBLAS uses both cores); ~5k steps/s at B = 1, ~2.8k at B = 10, ~350 at
  B = 100 (35k samples/s);
* ``backend="auto"`` picks numba for piecewise-linear activations with B < 8, numpy otherwise.
  When running several seeds, :func:`run_sgd_seeds` with ``processes=2`` runs them in parallel
  (workers are spawned with ``OPENBLAS_NUM_THREADS=1``).

Data are drawn in blocks of steps (``x`` block of shape (steps, B, d), at most ~16 MB) from two
streams, one for the Gaussian part of x and one for the labels (spawned from ``SeedSequence(seed)``,
together with a third stream for the initial weights).  numpy's generators fill arrays
sequentially, so the data seen at step k do not depend on how the run is split into blocks or
``advance`` calls: a run checkpointed with :meth:`SGDSimulation.state` and resumed with
:meth:`SGDSimulation.set_state` is bitwise identical to an uninterrupted one.
Note the labels/x are drawn directly here (same law as ``IsotropicGaussianMixture.sample``, but
split into two streams for this block invariance).

Noisy SGD (design note §2): with weight decay λ (``weight_decay``) and inverse temperature β
(``beta``; default ``inf`` and λ = 0: the plain SGD above, bitwise unchanged)::

    w_i ← (1 − 2 s_k λ) w_i + (2 s_k / B) Σ_b (y_b − f_b) σ'(⟨w_i, x_b⟩) x_b + sqrt(4 s_k / β) g_i,

g_i ~ N(0, I_d) independent over neurons and steps, drawn from a fourth stream of
``SeedSequence(seed)`` (the first three are unchanged) in blocks of steps, so that blocking and
checkpoint/resume stay bitwise invariant.  Its mean-field limit is
``∂_t ρ = 2ξ[∇·(ρ∇Ψ_λ) + β⁻¹Δρ]`` (:mod:`solvers.fokker_planck` solves its radial reduction).
"""

from __future__ import annotations

import math
import time as _time
from typing import Any, Sequence

import numpy as np
from numba import njit

from reduced_pde.activations import PiecewiseLinearActivation
from reduced_pde.models.isotropic_mixture import IsotropicMixtureRadialProblem
from reduced_pde.schedules import LearningRateSchedule

from solvers.results import Trajectory

__all__ = ["SGDSimulation", "SGDError", "run_sgd", "run_sgd_seeds", "seed_statistics",
           "radial_noise_drift"]

#: float64 entries of one x block (16 MB)
_BLOCK_ENTRIES = 2 * 1024 * 1024
#: batch size from which BLAS (numpy backend) beats the fused numba loop
_NUMBA_MAX_BATCH = 8


class SGDError(RuntimeError):
    """SGD produced non-finite weights or outputs."""


# ------------------------------------------------------------------------------------------------
# compiled kernel (piecewise-linear activations)
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def _sgd_block_pl(wt, x, y, step_sizes, intercept, slope, knots, jumps, z, g, noisy, decay,
                  noise, noise_scale):
    """Run ``len(step_sizes)`` SGD steps in place on ``wt`` (d, N); x (S, B, d) already scaled by
    (1 + yΔ); y (S, B).  If ``noisy``: ``wt ← decay[k] wt + update + noise_scale[k] noise[k]``
    (noise (S, d, N)).  Returns the index of the first step whose network output is non-finite
    (then ``wt`` holds the weights after that step), or -1."""
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
        # residual and g[b, i] = (2 s_k / B)(y_b − f_b) σ'(z_bi)
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
                total += value
                g[b, i] = deriv
            residual = y[k, b] - total * inv_n
            if not math.isfinite(residual):
                bad = True
            coef = 2.0 * step_sizes[k] * residual / batch
            for i in range(n_neurons):
                g[b, i] *= coef
        if noisy:  # weight decay, on the weights the gradient was evaluated at
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
        if noisy:
            sk = noise_scale[k]
            for j in range(dim):
                for i in range(n_neurons):
                    wt[j, i] += sk * noise[k, j, i]
        if bad:
            return k
    return -1


# ------------------------------------------------------------------------------------------------
def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} = {value!r} must be an integer >= {minimum}")
    return int(value)


class ParticleCheckpoint:
    """Checkpoint state shared by the SGD simulations: the weights (kept transposed, ``_wt`` (d, N)),
    the step counter and the three random streams (data x, labels y, noise), so that a resumed run
    is bitwise identical to an uninterrupted one; ``resume_keys`` lists the parameters a checkpoint
    must share with the run that loads it."""

    resume_keys: tuple[str, ...] = ("sgd.step_size", "sgd.batch_size", "sgd.n_neurons", "noise.beta")

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        return tuple(self.problem.coordinate_names)

    @property
    def time(self) -> float:
        """PDE time t = kε."""
        return self.steps * self.step_size

    @property
    def weights(self) -> np.ndarray:
        """Current weights, shape (N, d) (a copy)."""
        return self._wt.T.copy()

    def state(self) -> dict[str, Any]:
        """Everything needed to resume bitwise."""
        return {"weights": self.weights, "steps": int(self.steps),
                "x_rng": self._x_rng.bit_generator.state, "y_rng": self._y_rng.bit_generator.state,
                "noise_rng": self._noise_rng.bit_generator.state, "config": self.config()}

    def set_state(self, state: dict[str, Any]) -> None:
        weights = np.asarray(state["weights"], dtype=float)
        if weights.shape != (self.n_neurons, self.dimension):
            raise ValueError(f"state weights have shape {weights.shape}, expected "
                             f"{(self.n_neurons, self.dimension)} (sgd.n_neurons, data.dimension)")
        saved = state.get("config", {})
        for key in self.resume_keys:
            if key in saved and saved[key] != self.config()[key]:
                raise ValueError(f"state was saved with {key} = {saved[key]}, this run has "
                                 f"{self.config()[key]}")
        self._wt = np.ascontiguousarray(weights.T)
        self.steps = _check_int("state.steps", state["steps"], 0)
        self._x_rng.bit_generator.state = state["x_rng"]
        self._y_rng.bit_generator.state = state["y_rng"]
        if "noise_rng" in state:  # checkpoints written before noise existed
            self._noise_rng.bit_generator.state = state["noise_rng"]


class SGDSimulation(ParticleCheckpoint):
    """Stateful online SGD (module docstring).

    ``time`` = kε (k = ``steps``), ``weights`` (N, d) (a copy), :meth:`advance`, :meth:`observables`,
    :meth:`state` / :meth:`set_state` for bitwise checkpoint/resume.
    """

    resume_keys = ParticleCheckpoint.resume_keys + ("noise.weight_decay",)

    def __init__(self, problem: IsotropicMixtureRadialProblem, n_neurons: int, step_size: float,
                 batch_size: int = 1, schedule: LearningRateSchedule | None = None, seed: int = 0,
                 backend: str = "auto", beta: float = math.inf, weight_decay: float = 0.0) -> None:
        self.n_neurons = _check_int("sgd.n_neurons", n_neurons, 1)
        self.batch_size = _check_int("sgd.batch_size", batch_size, 1)
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float, np.floating)) \
                or not (math.isfinite(step_size) and step_size > 0):
            raise ValueError(f"sgd.step_size = {step_size!r} must be a finite number > 0 (it is ε, "
                             "the PDE time per SGD step)")
        self.step_size = float(step_size)
        self.seed = _check_int("sgd.seed", seed, 0)
        dimension = problem.dimension
        if not math.isfinite(dimension):
            raise ValueError(f"data.dimension = {dimension} cannot be simulated by SGD; "
                             "it needs a finite integer dimension d >= 2")
        self.dimension = int(dimension)
        from reduced_pde.free_energy import check_noise_parameters

        self.beta, self.weight_decay = check_noise_parameters(beta, weight_decay, dimension)
        self.noisy = math.isfinite(self.beta) or self.weight_decay > 0.0
        self.problem = problem
        self.schedule = schedule if schedule is not None else LearningRateSchedule()
        self.delta = float(problem.data.delta)
        activation = problem.activation
        if backend not in ("auto", "numba", "numpy"):
            raise ValueError(f"sgd.backend = {backend!r} is not known; allowed: auto, numba, numpy")
        piecewise = isinstance(activation, PiecewiseLinearActivation)
        if backend == "numba" and not piecewise:
            raise ValueError(f"sgd.backend = 'numba' needs a piecewise-linear activation, got "
                             f"{activation.config()}; use backend='numpy'")
        if backend == "auto":
            backend = "numba" if piecewise and self.batch_size < _NUMBA_MAX_BATCH else "numpy"
        self.backend = backend
        self.activation = activation
        if piecewise:
            self._pl = (float(activation.intercept), float(activation.slope),
                        np.asarray(activation.knots, dtype=float), np.asarray(activation.jumps, dtype=float))

        # spawn(4): the first three children are those of spawn(3) (noiseless runs unchanged)
        init_seq, x_seq, y_seq, noise_seq = np.random.SeedSequence(self.seed).spawn(4)
        init_rng = np.random.Generator(np.random.PCG64(init_seq))
        self._x_rng = np.random.Generator(np.random.PCG64(x_seq))
        self._y_rng = np.random.Generator(np.random.PCG64(y_seq))
        self._noise_rng = np.random.Generator(np.random.PCG64(noise_seq))
        weights = problem.initial_law().sample_weights(self.n_neurons, self.dimension, init_rng)
        self._wt = np.ascontiguousarray(np.asarray(weights, dtype=float).T)  # (d, N)
        self.steps = 0
        self.stepping_seconds = 0.0
        self.block_steps = max(1, _BLOCK_ENTRIES // (self.batch_size * self.dimension))
        if self.noisy:  # the (steps, d, N) noise block stays below ~16 MB too
            self.block_steps = min(self.block_steps, max(1, _BLOCK_ENTRIES // (self.dimension * self.n_neurons)))
        b, n = self.batch_size, self.n_neurons
        self._z = np.empty((b, n))
        self._g = np.empty((b, n))
        self._update = np.empty((self.dimension, n))

    # ---- state (time, weights, state(), set_state() from ParticleCheckpoint) --------------------
    @property
    def norms(self) -> np.ndarray:
        return np.sqrt(np.einsum("ji,ji->i", self._wt, self._wt))

    def config(self) -> dict[str, Any]:
        return {"sgd.n_neurons": self.n_neurons, "sgd.step_size": self.step_size,
                "sgd.batch_size": self.batch_size, "sgd.seed": self.seed,
                "noise.beta": self.beta, "noise.weight_decay": self.weight_decay,
                **{f"schedule.{k}": v for k, v in self.schedule.config().items()}}

    # ---- stepping ------------------------------------------------------------------------------
    def _draw(self, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        x = self._x_rng.standard_normal((n_steps, self.batch_size, self.dimension))
        y = np.where(self._y_rng.random((n_steps, self.batch_size)) < 0.5, 1.0, -1.0)
        x *= (1.0 + self.delta * y)[:, :, None]
        return x, y

    def step(self, n_steps: int) -> None:
        """Take ``n_steps`` SGD steps."""
        n_steps = _check_int("n_steps", n_steps, 0)
        began = _time.perf_counter()
        try:
            self._take_steps(n_steps)
        finally:
            self.stepping_seconds += _time.perf_counter() - began

    def diagnostics(self) -> dict[str, float]:
        """Steps taken and the stepping rate (observables excluded)."""
        rate = self.steps / self.stepping_seconds if self.stepping_seconds > 0 else math.nan
        return {"steps": float(self.steps), "steps_per_second": rate}

    def _take_steps(self, n_steps: int) -> None:
        while n_steps > 0:
            block = min(n_steps, self.block_steps)
            x, y = self._draw(block)
            sizes = self.step_size * np.asarray(
                self.schedule(np.arange(self.steps, self.steps + block) * self.step_size), dtype=float)
            if self.noisy:
                decay = 1.0 - 2.0 * self.weight_decay * sizes
                noise_scale = np.sqrt(4.0 * sizes / self.beta)  # 0 at β = inf
                noise = (self._noise_rng.standard_normal((block, self.dimension, self.n_neurons))
                         if math.isfinite(self.beta) else np.zeros((block, self.dimension, self.n_neurons)))
            else:
                decay = noise_scale = np.zeros(0)
                noise = np.zeros((0, 0, 0))
            if self.backend == "numba":
                bad = _sgd_block_pl(self._wt, x, y, sizes, *self._pl, self._z, self._g, self.noisy,
                                    decay, noise, noise_scale)
            else:
                bad = self._block_numpy(x, y, sizes, decay, noise, noise_scale)
            if bad >= 0:
                step = self.steps + bad + 1
                self.steps = step
                raise SGDError(f"SGD diverged: non-finite network output at step {step} "
                               f"(t = {step * self.step_size:.6g}); reduce sgd.step_size = "
                               f"{self.step_size:g}")
            self.steps += block
            n_steps -= block
        if not np.all(np.isfinite(self._wt)):
            raise SGDError(f"SGD produced non-finite weights by step {self.steps} "
                           f"(t = {self.time:.6g}); reduce sgd.step_size = {self.step_size:g}")

    def _block_numpy(self, x: np.ndarray, y: np.ndarray, sizes: np.ndarray, decay: np.ndarray,
                     noise: np.ndarray, noise_scale: np.ndarray) -> int:
        wt, z, update = self._wt, self._z, self._update
        act = self.activation
        scale = 2.0 / self.batch_size
        for k in range(x.shape[0]):
            xk = x[k]
            np.dot(xk, wt, out=z)
            residual = y[k] - act(z).mean(axis=1)
            if not math.isfinite(float(residual.sum())):
                return k
            g = act.derivative(z)
            g *= (scale * sizes[k] * residual)[:, None]
            np.dot(xk.T, g, out=update)
            if self.noisy:
                wt *= decay[k]
                wt += update
                wt += noise_scale[k] * noise[k]
            else:
                wt += update
        return -1

    def advance(self, t_target: float) -> None:
        """Advance to the step nearest ``t_target`` (``round(t_target/ε)`` steps from t = 0)."""
        target = int(round(float(t_target) / self.step_size))
        if target < self.steps:
            raise ValueError(f"t_target = {t_target:g} lies before the current time {self.time:g}")
        self.step(target - self.steps)

    # ---- observables -----------------------------------------------------------------------------
    def observables(self) -> dict[str, Any]:
        """``risk`` (N = ∞ risk of the empirical law of |w|), ``network_risk`` (exact population risk of
        the N-network), ``risk_bound`` (its series truncation bound), ``mean_r``, ``std_r``, ``norms``."""
        norms = self.norms
        risk, bound = self.problem.network_risk(self.weights)
        masses = np.full(self.n_neurons, 1.0 / self.n_neurons)
        return {"time": self.time, "network_risk": risk, "risk_bound": bound,
                "risk": self.problem.risk(norms, masses),
                "mean_r": float(norms.mean()), "std_r": float(norms.std()), "norms": norms}


# ------------------------------------------------------------------------------------------------
def run_sgd(problem: IsotropicMixtureRadialProblem, output_times: Sequence[float], *, n_neurons: int,
            step_size: float, batch_size: int = 1, schedule: LearningRateSchedule | None = None,
            seed: int = 0, progress: bool = False, backend: str = "auto", beta: float = math.inf,
            weight_decay: float = 0.0) -> Trajectory:
    """SGD observables at ``output_times`` (each rounded to the nearest step; the recorded ``time``
    is the actual kε).  Trajectory kind ``"sgd"``: ``risk`` = N = ∞ risk of the empirical law of |w|,
    ``network_risk`` = exact network risk; fields ``risk_bound`` (T,), ``norms`` (T, N); diagnostics ``steps``, ``wall_time``,
    ``steps_per_second`` (stepping only, observables excluded)."""
    from solvers.controller import run_simulation

    from solvers.finite_volume import validate_output_times

    times = validate_output_times(output_times)
    sim = SGDSimulation(problem, n_neurons, step_size, batch_size, schedule, seed, backend,
                        beta=beta, weight_decay=weight_decay)
    config = {**problem.config(), **sim.config(), "sgd.backend": sim.backend}
    return run_simulation(sim, times, kind="sgd", config=config, progress=progress)


def _run_one(args: tuple) -> Trajectory:
    problem, output_times, seed, kwargs = args
    return run_sgd(problem, output_times, seed=seed, **kwargs)


def run_sgd_seeds(problem: IsotropicMixtureRadialProblem, output_times: Sequence[float], *,
                  seeds: Sequence[int], processes: int = 1, progress: bool = False,
                  **kwargs: Any) -> list[Trajectory]:
    """:func:`run_sgd` for each seed, in seed order.  ``processes > 1`` runs seeds in parallel worker
    processes (spawned, one BLAS thread each); results are identical to the sequential ones.
    Combine with :func:`seed_statistics` for mean ± spread over seeds."""
    seeds = [_check_int("sgd.seed", s, 0) for s in seeds]
    if not seeds:
        raise ValueError("seeds must be a non-empty sequence of integers")
    processes = _check_int("processes", processes, 1)
    if processes == 1 or len(seeds) == 1:
        return [run_sgd(problem, output_times, seed=s, progress=progress, **kwargs) for s in seeds]
    from solvers.controller import map_in_processes

    jobs = [(problem, list(output_times), s, kwargs) for s in seeds]
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
    """Monte-Carlo estimate, at the current weights, of SGD's noise-induced radial drift per unit
    time (Itô term) versus the mean (PDE-like) radial velocity, per neuron.

    A step ``Δw_i = (2 s/B) Σ_b a_bi x_b`` with ``a = (y − f) σ'(⟨w_i, x⟩)`` changes ``r_i = |w_i|`` on
    average by ``⟨ŵ_i, EΔw_i⟩ + E|P⊥Δw_i|²/(2 r_i)``; the second (noise) term is
    ``(2 s²/(B r_i)) E[a² |P⊥x|²]`` to leading order, so per unit time (1/ε steps)
    ``noise_drift_i = 2 ε ξ² E[a² |P⊥ x|²] / (B r_i)``, against ``velocity_i = 2ξ E[a ⟨ŵ_i, x⟩]``.
    Returns both (N,) at ξ = ξ(t)."""
    rng = np.random.default_rng(seed)
    w = sim.weights
    r = np.linalg.norm(w, axis=1)
    unit = w / np.where(r > 0, r, 1.0)[:, None]
    xi = float(sim.schedule(sim.time))
    sum_a_par = np.zeros(sim.n_neurons)
    sum_noise = np.zeros(sim.n_neurons)
    done = 0
    while done < n_samples:
        m = min(2000, n_samples - done)
        x, y = sim.problem.data.sample(m, rng)
        z = x @ w.T
        a = (y - sim.activation(z).mean(axis=1))[:, None] * sim.activation.derivative(z)
        par = x @ unit.T  # ⟨ŵ_i, x⟩
        perp_sq = (x * x).sum(axis=1)[:, None] - par**2
        sum_a_par += (a * par).sum(axis=0)
        sum_noise += (a * a * perp_sq).sum(axis=0)
        done += m
    velocity = 2.0 * xi * sum_a_par / n_samples
    noise = 2.0 * sim.step_size * xi**2 * sum_noise / n_samples / (sim.batch_size * np.maximum(r, 1e-300))
    return {"velocity": velocity, "noise_drift": noise, "r": r}
