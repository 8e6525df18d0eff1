"""The time-stepping controller shared by all stateful simulations (grid solvers, characteristics, SGD).

A simulation object provides ``time``, ``coordinate_names``, ``advance(t)``, ``observables() -> dict``
(``risk`` = the N = ∞ risk of the law it carries, ``mean_<c>``/``std_<c>`` for every coordinate c,
optionally ``network_risk`` and the actual ``time`` reached; every other entry becomes a field of the
:class:`~solvers.results.Trajectory`), ``state() -> dict``, ``set_state(dict)`` and optionally
``diagnostics() -> dict``.  The controller
advances it through the output times, records observables, shows a progress bar, and every
``checkpoint_every`` seconds writes an atomic checkpoint from which ``resume=True`` continues
(the result is then identical to an uninterrupted run).

Resuming is refused (ValueError) when the checkpoint's recorded configuration differs from this
run's (the keys that differ are named), when its next output index disagrees with the outputs it
holds or with this run's output times, or when the restored state's time is not the last recorded
one.  A record whose risk, mean or std is not finite stops the run with a
:class:`~solvers.common.SolverError` naming the time (the simulations name the cell, particle or
neuron when they detect it while stepping).

Checkpoints go through a :class:`CheckpointStore` given by the caller
(:class:`reduced_pde.running.storage.CheckpointFile` writes atomic HDF5 files), so the controller
knows nothing of file formats.
"""

from __future__ import annotations

import contextlib
import logging
import time as wallclock
import warnings
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from solvers.common import SolverError
from solvers.results import Trajectory

__all__ = ["Simulation", "CheckpointStore", "run_simulation", "run_simulation_group", "map_in_processes", "local_dask_client", "ONE_THREAD_ENV"]

class CheckpointStore(Protocol):
    """Where a run's checkpoints go: ``save`` replaces the previous one atomically."""

    def exists(self) -> bool: ...

    def load(self) -> tuple[Trajectory, dict[str, Any], int]: ...

    def save(self, partial: Trajectory, state: dict[str, Any], next_output: int) -> None: ...


class Simulation(Protocol):
    time: float
    coordinate_names: tuple[str, ...]

    def advance(self, t_target: float) -> None: ...

    def observables(self) -> dict[str, Any]: ...

    def state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> None: ...


def _split_record(record: dict[str, Any], names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(core, fields) of one observables record: core = risk, network_risk, mean (D,), std (D,)."""
    missing = [key for key in ("risk", *(f"{m}_{c}" for c in names for m in ("mean", "std"))) if key not in record]
    if missing:
        raise ValueError(f"observables() lack {missing} (coordinates {names})")
    core = {"risk": float(record["risk"]),
            "mean": np.array([record[f"mean_{c}"] for c in names], dtype=float),
            "std": np.array([record[f"std_{c}"] for c in names], dtype=float)}
    if "network_risk" in record:
        core["network_risk"] = float(record["network_risk"])
    skip = {"risk", "network_risk", *(f"{m}_{c}" for c in names for m in ("mean", "std"))}
    return core, {k: v for k, v in record.items() if k not in skip}


def _assemble(kind: str, names: tuple[str, ...], times: list[float], records: list[dict[str, Any]],
              static: dict[str, Any], config: dict[str, Any], diagnostics: dict[str, Any],
              derived: dict[str, Any] | None = None) -> Trajectory:
    """The :class:`Trajectory` of the records so far (``records``: observables dicts)."""
    cores, fields = [], dict(static)
    per_field: dict[str, list[Any]] = {}
    for record in records:
        core, extra = _split_record(record, names)
        cores.append(core)
        for key, value in extra.items():
            per_field.setdefault(key, []).append(value)
    for key, values in per_field.items():
        fields[key] = np.stack([np.asarray(v, dtype=float) for v in values])
    network = ([c["network_risk"] for c in cores] if cores and "network_risk" in cores[0] else None)
    return Trajectory(kind=kind, time=np.asarray(times), risk=[c["risk"] for c in cores], coordinates=names,
                      mean=np.array([c["mean"] for c in cores]).reshape(len(cores), len(names)),
                      std=np.array([c["std"] for c in cores]).reshape(len(cores), len(names)),
                      network_risk=network, fields=fields, config=config, derived=dict(derived or {}),
                      diagnostics=diagnostics)


def _records_of(partial: Trajectory, static: dict[str, Any]) -> list[dict[str, Any]]:
    """Observables records back from a partial trajectory (checkpoint resume)."""
    records = []
    for i in range(partial.time.size):
        record: dict[str, Any] = {"risk": partial.risk[i]}
        if partial.network_risk is not None:
            record["network_risk"] = partial.network_risk[i]
        for d, c in enumerate(partial.coordinates):
            record[f"mean_{c}"], record[f"std_{c}"] = partial.mean[i, d], partial.std[i, d]
        record.update({k: v[i] for k, v in partial.fields.items() if k not in static})
        records.append(record)
    return records


def _plain(value: Any) -> Any:
    """A configuration value in plain Python form (what it reads back as from a file), for comparison."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _check_resume(partial: Trajectory, start: int, config: dict[str, Any], kind: str,
                  output_times: np.ndarray, checkpoint: Any) -> None:
    """Refuse a checkpoint of another run: other configuration, kind, or inconsistent output index."""
    where = f"--resume: the checkpoint {checkpoint}"
    if partial.kind != kind:
        raise ValueError(f"{where} holds a {partial.kind!r} run, this run is {kind!r}")
    mine, theirs = {k: _plain(v) for k, v in config.items()}, {k: _plain(v) for k, v in partial.config.items()}
    # the output times may change (e.g. a longer run) as long as the recorded ones are a prefix (below)
    changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k, "<absent>") != theirs.get(k, "<absent>")
                     and not k.startswith("output."))
    if changed:
        shown = "; ".join(f"{k} = {theirs.get(k, '<absent>')!r} there, {mine.get(k, '<absent>')!r} here"
                          for k in changed[:3])
        raise ValueError(f"{where} was written with another configuration ({shown}{'; ...' if len(changed) > 3 else ''}); "
                         "resume with the same configuration and seed, or run without --resume to start afresh")
    n = partial.time.size
    if not (isinstance(start, (int, np.integer)) and 1 <= start <= output_times.size and start == n):
        raise ValueError(f"{where} is inconsistent: next output {start} with {n} recorded outputs of "
                         f"{output_times.size}; delete it to start the run afresh")
    # each recorded time must be nearest to this run's output time of the same index (SGD lands on kε)
    gaps = np.diff(output_times)
    half = 0.5 * np.minimum(np.concatenate([[np.inf], gaps]), np.concatenate([gaps, [np.inf]]))[:n]
    off = np.abs(np.asarray(partial.time, dtype=float) - output_times[:n]) >= half
    if np.any(off):
        i = int(np.argmax(off))
        raise ValueError(f"{where} recorded output {i} at t = {partial.time[i]:.6g}, where this run's output "
                         f"times have t = {output_times[i]:.6g} (output.* changed); resume with the same "
                         "output times (a longer t_final with the same earlier times is fine)")


def _check_finite(record: dict[str, Any], names: tuple[str, ...], t: float, kind: str) -> None:
    """SolverError when the risk, a mean or a std of a record is not finite (overflow reached the output)."""
    for key in ("risk", "network_risk", *(f"{m}_{c}" for c in names for m in ("mean", "std"))):
        if key in record and not np.all(np.isfinite(np.asarray(record[key], dtype=float))):
            if key == "network_risk" and np.all(np.isnan(record[key])):
                continue  # no closed form for this network: nan by convention
            raise SolverError(f"{kind}: {key} = {record[key]} is not finite at t = {t:.6g} (overflow or NaN in "
                              "the state); refine the grid or the step, or shorten the run")


def _resume(simulation: Simulation, checkpoint: CheckpointStore | None, config: dict[str, Any], kind: str,
            output_times: np.ndarray, static_fields: dict[str, Any]) -> tuple[list[float], list[dict[str, Any]], int]:
    """Restore ``simulation`` from ``checkpoint`` after the checks of :func:`_check_resume`; returns the
    recorded (times, observables records, next output index)."""
    if checkpoint is None or not checkpoint.exists():
        raise ValueError(f"--resume: no checkpoint at {checkpoint}")
    partial, state, start = checkpoint.load()
    names = tuple(simulation.coordinate_names)
    if partial.coordinates != names:
        raise ValueError(f"--resume: the checkpoint {checkpoint} holds coordinates {partial.coordinates}, "
                         f"this run {names}")
    _check_resume(partial, start, config, kind, output_times, checkpoint)
    simulation.set_state(state)
    if not abs(float(simulation.time) - float(partial.time[-1])) <= 1e-12 * max(1.0, abs(float(partial.time[-1]))):
        raise ValueError(f"--resume: the checkpoint {checkpoint} is inconsistent: its state is at t = "
                         f"{simulation.time:.17g}, its last output at t = {partial.time[-1]:.17g}")
    return list(partial.time), _records_of(partial, static_fields), start


def run_simulation(simulation: Simulation, output_times: np.ndarray, *, kind: str,
                   config: dict[str, Any], static_fields: dict[str, Any] | None = None,
                   checkpoint: CheckpointStore | None = None, checkpoint_every: float = 60.0,
                   resume: bool = False, progress: bool = False,
                   derived: dict[str, Any] | None = None) -> Trajectory:
    """Advance ``simulation`` through ``output_times`` and return the recorded :class:`Trajectory`
    (``config``: the inputs that rebuild the run; ``derived``: values derived from them).  With
    ``checkpoint``, the partial trajectory and ``simulation.state()`` are saved at most every
    ``checkpoint_every`` seconds and after the last output; ``resume`` continues from the saved one."""
    output_times = np.asarray(output_times, dtype=float)
    if output_times.ndim != 1 or output_times.size == 0 or np.any(np.diff(output_times) <= 0):
        raise ValueError("output times must be a non-empty, strictly increasing 1-D array")
    static_fields = static_fields or {}
    names = tuple(simulation.coordinate_names)
    times: list[float] = []
    records: list[dict[str, Any]] = []
    start = 0
    if resume:
        times, records, start = _resume(simulation, checkpoint, config, kind, output_times, static_fields)
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
            record = dict(simulation.observables())
            # a simulation may land near, not on, an output time (SGD: the nearest step kε)
            times.append(float(record.pop("time", output_times[index])))
            _check_finite(record, names, times[-1], kind)
            records.append(record)
            if bar is not None:
                bar.set_postfix_str(f"t={output_times[index]:.3g} risk={record['risk']:.4g}")
                bar.update(1)
            now = wallclock.perf_counter()
            if checkpoint is not None and (now - last_checkpoint > checkpoint_every
                                           or index == len(output_times) - 1):
                partial = _assemble(kind, names, times, records, static_fields, config, {}, derived)
                checkpoint.save(partial, simulation.state(), index + 1)
                last_checkpoint = now
    finally:
        if bar is not None:
            bar.close()
    diagnostics = {"wall_time": wallclock.perf_counter() - began}
    extra = getattr(simulation, "diagnostics", None)
    if callable(extra):
        diagnostics.update(extra())
    return _assemble(kind, names, times, records, static_fields, config, diagnostics, derived)


def run_simulation_group(advance, simulations: list[Simulation], output_times: np.ndarray, *, kind: str,
                         configs: list[dict[str, Any]], checkpoints: list[CheckpointStore | None] | None = None,
                         checkpoint_every: float = 60.0, resume: bool | list[bool] = False, progress: bool = False,
                         derived: list[dict[str, Any] | None] | None = None) -> list[Trajectory]:
    """:func:`run_simulation` for several simulations advanced together: ``advance(t, members)`` brings
    the simulations with the indices ``members`` to ``t`` (e.g. :meth:`solvers.sgd.SGDSeedBatch.advance`).
    Each simulation has its own configuration, checkpoint and trajectory, recorded and checkpointed
    exactly as :func:`run_simulation` does for it alone (the checks on resuming too); a member resumed
    from a checkpoint of a later output than another waits until the others reach it.  ``resume``: one
    flag for all, or one per simulation."""
    output_times = np.asarray(output_times, dtype=float)
    if output_times.ndim != 1 or output_times.size == 0 or np.any(np.diff(output_times) <= 0):
        raise ValueError("output times must be a non-empty, strictly increasing 1-D array")
    count = len(simulations)
    checkpoints = list(checkpoints) if checkpoints is not None else [None] * count
    resumes = [bool(resume)] * count if isinstance(resume, bool) else [bool(r) for r in resume]
    derived = list(derived) if derived is not None else [None] * count
    if not (len(configs) == len(checkpoints) == len(resumes) == len(derived) == count):
        raise ValueError(f"run_simulation_group: {count} simulations need as many configs, checkpoints, "
                         "resume flags and derived tables")
    names = [tuple(sim.coordinate_names) for sim in simulations]
    times: list[list[float]] = [[] for _ in range(count)]
    records: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    starts = [0] * count
    for m, sim in enumerate(simulations):
        if resumes[m]:
            times[m], records[m], starts[m] = _resume(sim, checkpoints[m], configs[m], kind, output_times, {})
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(output_times), initial=min(starts), desc=f"{kind} x {count}", unit="output")
    began = wallclock.perf_counter()
    last_checkpoint = began
    try:
        for index in range(min(starts), len(output_times)):
            active = [m for m in range(count) if starts[m] <= index]
            advance(float(output_times[index]), active)
            for m in active:
                record = dict(simulations[m].observables())
                times[m].append(float(record.pop("time", output_times[index])))
                _check_finite(record, names[m], times[m][-1], kind)
                records[m].append(record)
            if bar is not None:
                bar.update(1)
            now = wallclock.perf_counter()
            if now - last_checkpoint > checkpoint_every or index == len(output_times) - 1:
                for m in active:
                    if checkpoints[m] is not None:
                        partial = _assemble(kind, names[m], times[m], records[m], {}, configs[m], {}, derived[m])
                        checkpoints[m].save(partial, simulations[m].state(), index + 1)
                last_checkpoint = now
    finally:
        if bar is not None:
            bar.close()
    wall = wallclock.perf_counter() - began
    out = []
    for m, sim in enumerate(simulations):
        diagnostics = {"wall_time": wall}
        extra = getattr(sim, "diagnostics", None)
        if callable(extra):
            diagnostics.update(extra())
        out.append(_assemble(kind, names[m], times[m], records[m], {}, configs[m], diagnostics, derived[m]))
    return out


#: the environment of every local Dask worker: one BLAS / OpenMP / numba thread (workers are the parallelism)
ONE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                  "NUMBA_NUM_THREADS": "1"}


@contextlib.contextmanager
def local_dask_client(workers: int, *, processes: bool = True) -> Iterator[Any]:
    """A :class:`dask.distributed.Client` on a new LocalCluster of ``workers`` single-threaded workers:
    processes with one BLAS thread each (:data:`ONE_THREAD_ENV`), or threads of this process
    (``processes=False``).  Closed on exit."""
    from dask.distributed import Client, LocalCluster

    # the scheduler's HTTP server (dashboard, health) starts even with dashboard_address=None in this
    # distributed version: a free port, so that two clusters on one machine do not collide on 8787
    options: dict[str, Any] = {"n_workers": workers, "threads_per_worker": 1, "processes": processes,
                               "dashboard_address": ":0",
                               # errors only: the nanny's shutdown warnings ("still alive ... killing") are noise
                               "silence_logs": logging.ERROR}
    if processes:
        options["env"] = dict(ONE_THREAD_ENV)
    with LocalCluster(**options) as cluster, Client(cluster) as client:
        yield client


def map_in_processes(function, jobs: list, processes: int, progress: str | None = None) -> list:
    """``[function(job) for job in jobs]`` in job order: on a Dask LocalCluster of ``processes``
    single-threaded worker processes (:func:`local_dask_client`), in this process when
    ``processes == 1`` or one job, and sequentially with a warning when dask.distributed is not
    installed (``pip install "reduced-pde[sweeps]"``).  ``function`` must be importable (a module-level
    function) and jobs picklable.  ``progress``: a label for a progress bar over finished jobs."""
    bar = None
    if progress is not None:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=progress, unit="run")
    try:
        parallel = processes > 1 and len(jobs) > 1
        if parallel:
            try:
                from dask.distributed import as_completed
            except ImportError:
                warnings.warn("dask.distributed is not installed (pip install 'reduced-pde[sweeps]'): "
                              "running the jobs sequentially", stacklevel=2)
                parallel = False
        if not parallel:
            results = []
            for job in jobs:
                results.append(function(job))
                if bar is not None:
                    bar.update(1)
            return results
        with local_dask_client(min(processes, len(jobs))) as client:
            futures = client.map(function, list(jobs), pure=False)
            order = {future.key: i for i, future in enumerate(futures)}
            results = [None] * len(jobs)
            for future in as_completed(futures):
                results[order[future.key]] = future.result()
                if bar is not None:
                    bar.update(1)
            return results
    finally:
        if bar is not None:
            bar.close()
