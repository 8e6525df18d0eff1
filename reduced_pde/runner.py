"""The time-stepping controller shared by all stateful simulations (PDE grid solver, SGD).

A simulation object provides ``time``, ``advance(t)``, ``observables() -> dict`` (with at least
``risk``, ``mean_r``, ``std_r``, and optionally the actual ``time`` reached), ``state() -> dict``,
``set_state(dict)`` and optionally ``diagnostics() -> dict``.  The controller
advances it through the output times, records observables, shows a progress bar, and every
``checkpoint_every`` seconds writes an atomic checkpoint from which ``resume=True`` continues
(the result is then identical to an uninterrupted run).
"""

from __future__ import annotations

import time as wallclock
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from solvers.results import Trajectory

from .storage import read_checkpoint, write_checkpoint

__all__ = ["Simulation", "run_simulation", "map_in_processes"]

_CORE = ("risk", "mean_r", "std_r")


class Simulation(Protocol):
    time: float

    def advance(self, t_target: float) -> None: ...

    def observables(self) -> dict[str, Any]: ...

    def state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> None: ...


def _record(simulation: Simulation) -> dict[str, Any]:
    record = dict(simulation.observables())
    density = getattr(simulation, "density", None)
    if density is not None:
        record.setdefault("density", np.array(density, copy=True))
    return record


def _assemble(kind: str, times: list[float], records: list[dict[str, Any]], static: dict[str, Any],
              config: dict[str, Any], diagnostics: dict[str, Any]) -> Trajectory:
    fields = dict(static)
    if records:
        for key in records[0]:
            if key not in _CORE:
                fields[key] = np.stack([np.asarray(rec[key], dtype=float) for rec in records])
    return Trajectory(kind=kind, time=np.asarray(times),
                      risk=[rec["risk"] for rec in records], mean_r=[rec["mean_r"] for rec in records],
                      std_r=[rec["std_r"] for rec in records], fields=fields, config=config,
                      diagnostics=diagnostics)


def run_simulation(simulation: Simulation, output_times: np.ndarray, *, kind: str,
                   config: dict[str, Any], static_fields: dict[str, Any] | None = None,
                   checkpoint: str | Path | None = None, checkpoint_every: float = 60.0,
                   resume: bool = False, progress: bool = False) -> Trajectory:
    """Advance ``simulation`` through ``output_times`` and return the recorded :class:`Trajectory`."""
    output_times = np.asarray(output_times, dtype=float)
    if output_times.ndim != 1 or output_times.size == 0 or np.any(np.diff(output_times) <= 0):
        raise ValueError("output times must be a non-empty, strictly increasing 1-D array")
    static_fields = static_fields or {}
    times: list[float] = []
    records: list[dict[str, Any]] = []
    start = 0
    if resume:
        if checkpoint is None or not Path(checkpoint).exists():
            raise ValueError(f"--resume: no checkpoint file at {checkpoint}")
        partial, state, start = read_checkpoint(checkpoint)
        simulation.set_state(state)
        times = list(partial.time)
        for i in range(len(times)):
            rec = {"risk": partial.risk[i], "mean_r": partial.mean_r[i], "std_r": partial.std_r[i]}
            rec.update({k: v[i] for k, v in partial.fields.items() if k not in static_fields})
            records.append(rec)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(output_times), initial=start, desc=kind, unit="output",
                   bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {postfix}")
    began = wallclock.perf_counter()
    last_checkpoint = began
    try:
        for index in range(start, len(output_times)):
            simulation.advance(float(output_times[index]))
            record = _record(simulation)
            # a simulation may land near, not on, an output time (SGD: the nearest step kε)
            times.append(float(record.pop("time", output_times[index])))
            records.append(record)
            if bar is not None:
                bar.set_postfix_str(f"t={output_times[index]:.3g} risk={record['risk']:.4g}")
                bar.update(1)
            now = wallclock.perf_counter()
            if checkpoint is not None and (now - last_checkpoint > checkpoint_every
                                           or index == len(output_times) - 1):
                partial = _assemble(kind, times, records, static_fields, config, {})
                write_checkpoint(checkpoint, partial, simulation.state(), index + 1)
                last_checkpoint = now
    finally:
        if bar is not None:
            bar.close()
    diagnostics = {"wall_time": wallclock.perf_counter() - began}
    extra = getattr(simulation, "diagnostics", None)
    if callable(extra):
        diagnostics.update(extra())
    return _assemble(kind, times, records, static_fields, config, diagnostics)


def map_in_processes(function, jobs: list, processes: int, progress: str | None = None) -> list:
    """``[function(job) for job in jobs]``, in ``processes`` spawned worker processes with one BLAS
    thread each (so that 2 workers use 2 cores); sequential when ``processes == 1``.  ``function``
    must be importable (a module-level function) and jobs picklable.  Results keep job order.
    ``progress``: a label for a progress bar over finished jobs (None: no bar)."""
    bar = None
    if progress is not None:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=progress, unit="run")
    try:
        if processes <= 1 or len(jobs) <= 1:
            results = []
            for job in jobs:
                results.append(function(job))
                if bar is not None:
                    bar.update(1)
            return results
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawned workers read the environment when they import numpy: one BLAS thread each
        saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        os.environ.update({k: "1" for k in saved})
        try:
            with ProcessPoolExecutor(max_workers=min(processes, len(jobs)),
                                     mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(function, job): index for index, job in enumerate(jobs)}
                results = [None] * len(jobs)
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    if bar is not None:
                        bar.update(1)
                return results
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        if bar is not None:
            bar.close()
