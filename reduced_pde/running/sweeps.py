"""Sweeps: families of runs (reduced solves, SGD seeds, plateau reports) executed on Dask.

A sweep file (TOML) names a base configuration and the axes to vary::

    [sweep]
    base = "../mmn18_quick.toml"     # the base configuration, relative to the sweep file
    task = "pde"                     # pde | sgd | plateaus
    set = ["pde.n_particles=200"]    # overrides of the base (optional, as --set)
    seeds = [0, 1]                   # task = "sgd": one task per seed (default: the base's sgd.seeds)

    [axes]                           # the Cartesian product of the axes: one task per point
    "initial.kappa" = [0.1, 0.2, 0.4]                                  # a list of values
    "data.delta" = {start = 0.2, stop = 0.8, num = 4}                  # a grid (spacing "linear")
    "network.second_layer_rate" = {start = 1e1, stop = 1e4, num = 4, spacing = "log"}

    [plateaus]                       # task = "plateaus": options of plateau_report (optional)
    threshold = 0.1

Every point is validated by :func:`~reduced_pde.running.config.parse_config` before any work (an
invalid point refuses the whole sweep, naming the key).  A task is identified by the SHA-256 of its
effective configuration (every key, defaults filled in), its kind, seed, options and the package
version; its result is
``OUTDIR/tasks/<hash>.h5`` (the run's trajectory file, written atomically, with the attributes
``task.*``).  A task whose file exists is not run again, so a killed sweep resumes where it stopped,
and an SGD task resumes from its checkpoint ``<hash>.h5.checkpoint``.  A task that raises is
reported (``OUTDIR/tasks/<hash>.failed.txt`` holds the traceback) and the others go on; it is run
again by the next invocation.

Execution: :func:`dask_client` — a :class:`dask.distributed.LocalCluster` of ``workers`` processes with
one thread and one BLAS thread each, or an existing scheduler (an address ``tcp://host:8786`` or a
scheduler file).  The workers write the task files, so OUTDIR must be on a file system they share
with the caller.

Result: :func:`gather_sweep` reads the task files into one :class:`xarray.Dataset` whose dimensions
are the axes (coordinates = the swept values), ``seed`` for SGD, and ``time`` (or ``output``, with a
``time`` variable, when the points have different output times), written to ``OUTDIR/sweep.nc``
(netCDF-4/HDF5 through h5netcdf, atomically) with the sweep file and the base configuration as
attributes.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import math
import os
import socket
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reduced_pde.running.config import apply_overrides, flatten, output_times, parse_config

__all__ = ["TASK_KINDS", "SweepSpec", "Task", "SweepReport", "load_sweep", "sweep_tasks", "task_hash",
           "execute_task", "dask_client", "run_tasks", "run_sweep", "check_sweep_resources", "gather_sweep",
           "write_dataset"]

TASK_KINDS = ("pde", "sgd", "plateaus")
#: options of :func:`~reduced_pde.running.pipeline.plateau_report` a sweep file may set
PLATEAU_OPTIONS = {"threshold": 0.1, "smoothing": 0.1, "min_duration": 0.3, "ignore_before": None,
                   "max_degree": None}
_MAX_POINTS = 100_000


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file: the base configuration (raw TOML tables with the overrides applied), the
    task kind, the axes (key -> list of values, in file order), the seeds and the plateau options."""

    name: str
    kind: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    seeds: list[int] | None = None
    plateau_options: dict[str, Any] = field(default_factory=dict)
    source: str = ""          # the sweep file's text (stored with the dataset)
    base_path: str = ""


@dataclass(frozen=True)
class Task:
    """One point of a sweep: its coordinates (axis key -> value, and ``seed`` for SGD), its validated
    configuration, and where its result goes."""

    kind: str
    coordinates: dict[str, Any]
    config: dict[str, Any]
    seed: int | None
    options: dict[str, Any]
    hash: str
    path: str


@dataclass
class SweepReport:
    """What :func:`run_sweep` did: hashes of the tasks run now, of those already finished (skipped), and
    the failures (hash -> one-line error)."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    dataset_path: Path | None = None
    wall_time: float = 0.0


# ---- the sweep file -----------------------------------------------------------------------------------
def _axis_values(key: str, given: Any) -> list[Any]:
    """A list of values, or a grid table {start, stop, num, spacing = "linear" | "log"}."""
    if isinstance(given, list):
        if not given:
            raise ValueError(f"axes.{key} = [] must be a non-empty list or a grid table {{start, stop, num}}")
        return list(given)
    if isinstance(given, Mapping):
        unknown = sorted(set(given) - {"start", "stop", "num", "spacing"})
        missing = sorted({"start", "stop", "num"} - set(given))
        if unknown or missing:
            raise ValueError(f"axes.{key} = {dict(given)!r}: a grid table has keys start, stop, num and optionally "
                             f"spacing (unknown {unknown}, missing {missing})")
        num, spacing = given["num"], given.get("spacing", "linear")
        if not isinstance(num, int) or isinstance(num, bool) or num < 1:
            raise ValueError(f"axes.{key}.num = {num!r} must be an integer >= 1")
        if spacing not in ("linear", "log"):
            raise ValueError(f"axes.{key}.spacing = {spacing!r} must be 'linear' or 'log'")
        start, stop = given["start"], given["stop"]
        for name, value in (("start", start), ("stop", stop)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or (spacing == "log" and value <= 0):
                raise ValueError(f"axes.{key}.{name} = {value!r} must be a finite number"
                                 + (" > 0 (log spacing)" if spacing == "log" else ""))
        values = np.geomspace(start, stop, num) if spacing == "log" else np.linspace(start, stop, num)
        # 12 significant digits: the values (and so the task hashes) do not depend on rounding noise
        return [float(f"{v:.12g}") for v in values]
    raise ValueError(f"axes.{key} = {given!r} must be a non-empty list or a grid table {{start, stop, num}}")


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (see the module docstring); ValueError names the offending field."""
    path = Path(path)
    try:
        text = path.read_text()
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ValueError(f"sweep file {str(path)!r} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"sweep file {str(path)!r} is not valid TOML: {error}") from None
    unknown = sorted(set(raw) - {"sweep", "axes", "plateaus"})
    if unknown:
        raise ValueError(f"unknown table(s) {unknown} in sweep file {str(path)!r}; allowed: axes, plateaus, sweep")
    head = raw.get("sweep", {})
    extra = sorted(set(head) - {"base", "task", "set", "seeds", "name"})
    if extra:
        raise ValueError(f"unknown key(s) {extra} in [sweep]; allowed: base, name, seeds, set, task")
    if "base" not in head or not isinstance(head["base"], str):
        raise ValueError(f"sweep.base = {head.get('base')!r} must name the base configuration file")
    kind = head.get("task", "pde")
    if kind not in TASK_KINDS:
        raise ValueError(f"sweep.task = {kind!r} must be one of {list(TASK_KINDS)}")
    overrides = head.get("set", [])
    if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides):
        raise ValueError(f"sweep.set = {overrides!r} must be a list of 'table.key=value' strings")
    base_path = (path.parent / head["base"]).resolve()
    try:
        with open(base_path, "rb") as file:
            base = tomllib.load(file)
    except FileNotFoundError:
        raise ValueError(f"sweep.base = {head['base']!r}: {str(base_path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"sweep.base = {head['base']!r} is not valid TOML: {error}") from None
    base.pop("sweep", None)  # the experiment's [sweep] table: the axes of this file replace it
    base = apply_overrides(base, overrides)
    seeds = head.get("seeds")
    if seeds is not None and (kind != "sgd" or not isinstance(seeds, list) or not seeds
                              or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ValueError(f"sweep.seeds = {seeds!r} must be a non-empty list of integers >= 0, with task = 'sgd'")
    axes_raw = raw.get("axes", {})
    axes = {key: _axis_values(key, value) for key, value in axes_raw.items()}
    for key in axes:
        if key.count(".") < 1 or key.startswith(".") or key.endswith("."):
            raise ValueError(f"axes key {key!r} must be 'table.key' (a key of the base configuration)")
        if key.startswith("sgd.seeds"):
            raise ValueError("axes: give SGD seeds as sweep.seeds, not as an axis")
    options = dict(raw.get("plateaus", {}))
    if options and kind != "plateaus":
        raise ValueError("[plateaus] applies to sweep.task = 'plateaus'")
    unknown = sorted(set(options) - set(PLATEAU_OPTIONS))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [plateaus]; allowed: {sorted(PLATEAU_OPTIONS)}")
    points = math.prod(len(v) for v in axes.values()) * (len(seeds) if seeds else 1)
    if points > _MAX_POINTS:
        raise ValueError(f"the axes make {points} points; at most {_MAX_POINTS} per sweep")
    return SweepSpec(name=head.get("name", path.stem), kind=kind, base=base, axes=axes, seeds=seeds,
                     plateau_options={**PLATEAU_OPTIONS, **options} if kind == "plateaus" else {},
                     source=text, base_path=str(base_path))


# ---- tasks ---------------------------------------------------------------------------------------------
def _with_value(raw: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``raw`` with ``table.key`` (or ``table.sub.key``) set to ``value``."""
    parts = key.split(".")
    target = raw
    for part in parts[:-1]:
        inner = target.setdefault(part, {})
        if not isinstance(inner, dict):
            raise ValueError(f"axes key {key!r}: {part} is not a table in the base configuration")
        target = inner
    target[parts[-1]] = value
    return raw


def task_hash(kind: str, config: Mapping[str, Any], seed: int | None, options: Mapping[str, Any]) -> str:
    """SHA-256 (first 20 hex digits) of the task's kind, effective configuration (every key, defaults
    filled in), seed, options and the package version: equal configurations written differently share
    one hash, and a task finished by another version of the package is run again (its numbers may
    differ), not mixed into the new sweep."""
    from reduced_pde import __version__

    text = json.dumps({"kind": kind, "config": flatten(config), "seed": seed, "options": dict(options),
                       "package_version": __version__}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def sweep_tasks(spec: SweepSpec, outdir: str | Path) -> list[Task]:
    """One validated :class:`Task` per point of the axes (and seed), in axis order (row-major)."""
    task_dir = Path(outdir) / "tasks"
    keys = list(spec.axes)
    tasks = []
    for values in itertools.product(*(spec.axes[key] for key in keys)):
        raw = copy.deepcopy(spec.base)
        for key, value in zip(keys, values):
            _with_value(raw, key, value)
        try:
            config = parse_config(raw)
        except ValueError as error:
            point = ", ".join(f"{k} = {v!r}" for k, v in zip(keys, values))
            raise ValueError(f"sweep point ({point}): {error}") from None
        seeds = (spec.seeds or config["sgd"]["seeds"]) if spec.kind == "sgd" else [None]
        for seed in seeds:
            coordinates = dict(zip(keys, values))
            if seed is not None:
                coordinates["seed"] = seed
            digest = task_hash(spec.kind, config, seed, spec.plateau_options)
            tasks.append(Task(spec.kind, coordinates, config, seed, dict(spec.plateau_options), digest,
                              str(task_dir / f"{digest}.h5")))
    return tasks


def _finished(task: Task) -> bool:
    """The task's file exists, is readable and carries its hash."""
    import h5py

    try:
        with h5py.File(task.path, "r") as file:
            return file.attrs.get("task.hash") == task.hash
    except (OSError, KeyError):
        return False


def execute_task(task: Task, allow_large: bool = False) -> dict[str, Any]:
    """Run one task (on a worker) and write its file atomically: the trajectory and, for a plateau task,
    the plateaus of its risk curve (group ``plateaus``: height, entry_time, exit_time, drop_time).
    ``allow_large``: the run's resource check admits jobs beyond the soft limits (as ``--allow-large``).
    Returns ``{"hash", "wall_time", "final_risk"}``."""
    import h5py

    from reduced_pde.running.pipeline import checkpoint_path, plateau_report, run_pde, run_sgd_seed
    from reduced_pde.running.storage import atomic_write, write_trajectory

    began = time.perf_counter()
    path = Path(task.path)
    checkpoint = checkpoint_path(path)
    if task.kind == "sgd":
        trajectory = run_sgd_seed(task.config, int(task.seed), checkpoint=checkpoint, resume=checkpoint.exists(),
                                  progress=False, allow_large=allow_large)
    else:
        trajectory = run_pde(task.config, checkpoint=checkpoint, resume=checkpoint.exists(), progress=False,
                             allow_large=allow_large)
    def write(temporary: str) -> None:
        write_trajectory(temporary, trajectory)
        with h5py.File(temporary, "a") as file:
            if task.kind == "plateaus":
                plateaus = plateau_report(trajectory, **task.options)["plateaus"]
                group = file.create_group("plateaus")
                for name in ("height", "entry_time", "exit_time", "drop_time"):
                    group.create_dataset(name, data=np.array(
                        [math.nan if getattr(p, name) is None else getattr(p, name) for p in plateaus], dtype=float))
            file.attrs["task.hash"] = task.hash
            file.attrs["task.kind"] = task.kind
            file.attrs["task.coordinates"] = json.dumps(task.coordinates, default=repr)
            file.attrs["task.options"] = json.dumps(task.options, default=repr)
            file.attrs["task.host"] = socket.gethostname()
            file.attrs["task.pid"] = os.getpid()

    atomic_write(path, write)
    checkpoint.unlink(missing_ok=True)
    return {"hash": task.hash, "wall_time": time.perf_counter() - began, "final_risk": float(trajectory.risk[-1])}


# ---- execution -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None, *,
                processes: bool = True) -> Iterator[Any]:
    """A :class:`dask.distributed.Client`: connected to ``scheduler`` (an address such as
    ``tcp://host:8786``, or the path of a scheduler file written by ``dask scheduler --scheduler-file``),
    else to a new LocalCluster of ``workers`` (default: the CPU count) single-threaded workers with one
    BLAS thread each (``processes=False``: threads of this process, for tests)."""
    try:
        from dask.distributed import Client
    except ImportError:  # pragma: no cover - depends on the installation
        raise ValueError("sweeps need dask.distributed: pip install 'reduced-pde[sweeps]'") from None
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers = {workers!r} must be an integer >= 1")
    if scheduler:
        if Path(scheduler).is_file():
            client = Client(scheduler_file=str(scheduler), timeout="30s")
        else:
            try:
                client = Client(scheduler, timeout="30s")
            except (OSError, TimeoutError) as error:
                raise ValueError(f"--scheduler = {scheduler!r}: cannot connect ({error})") from None
        try:
            yield client
        finally:
            client.close()
        return
    from solvers.controller import local_dask_client

    with local_dask_client(workers or os.cpu_count() or 1, processes=processes) as client:
        yield client


def _record_failure(task: Task, error: BaseException, tb: Any) -> str:
    text = "".join(traceback.format_exception(type(error), error, tb)) if tb is not None else repr(error)
    coordinates = ", ".join(f"{k} = {v!r}" for k, v in task.coordinates.items())
    failure = Path(task.path).with_suffix(".failed.txt")
    failure.write_text(f"task {task.hash} ({task.kind}; {coordinates})\n{text}")
    return f"{type(error).__name__}: {error}".splitlines()[0]


def run_tasks(client: Any, tasks: Sequence[Task], *, progress: bool = True,
              log: Callable[[str], None] = print, allow_large: bool = False) -> SweepReport:
    """Submit the unfinished ``tasks`` to ``client`` and wait for all of them; a failure is recorded
    (``<hash>.failed.txt``) and reported, the other tasks go on."""
    from dask.distributed import as_completed

    report = SweepReport()
    todo_tasks: list[Task] = []
    for task in tasks:
        Path(task.path).parent.mkdir(parents=True, exist_ok=True)
        if _finished(task):
            report.skipped.append(task.hash)
        else:
            todo_tasks.append(task)
    log(f"{len(tasks)} task(s): {len(report.skipped)} finished before, {len(todo_tasks)} to run")
    if not todo_tasks:
        return report
    by_key = {}
    futures = []
    for task in todo_tasks:
        Path(task.path).with_suffix(".failed.txt").unlink(missing_ok=True)
        future = client.submit(execute_task, task, allow_large, key=f"{task.kind}-{task.hash}", pure=False)
        by_key[future.key] = task
        futures.append(future)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(futures), desc="sweep", unit="task")
    try:
        for future in as_completed(futures):
            task = by_key[future.key]
            if future.status == "finished":
                report.ran.append(task.hash)
            else:
                error = future.exception()
                report.failed[task.hash] = _record_failure(task, error, future.traceback())
                coordinates = ", ".join(f"{k} = {v!r}" for k, v in task.coordinates.items())
                message = f"task {task.hash} ({coordinates}) failed: {report.failed[task.hash]}"
                (bar.write if bar is not None else log)(message)
            if bar is not None:
                bar.set_postfix_str(f"failed {len(report.failed)}")
                bar.update(1)
            future.release()
    finally:
        if bar is not None:
            bar.close()
    return report


def check_sweep_resources(tasks: Sequence[Task], *, allow_large: bool = False) -> list[Any]:
    """The resource check of every task (:func:`~reduced_pde.running.resources.check_resources` for its
    command: ``pde`` for pde and plateaus tasks, ``sgd`` for SGD seeds), before anything runs: a point
    beyond the machine (or, unless ``allow_large``, beyond the soft limits) refuses the whole sweep with
    a ValueError naming the point.  Returns the demands of all tasks."""
    from reduced_pde.running.resources import check_resources

    demands: list[Any] = []
    for task in tasks:
        try:
            demands += check_resources(task.config, ("sgd",) if task.kind == "sgd" else ("pde",),
                                       allow_large=allow_large)
        except ValueError as error:
            point = ", ".join(f"{k} = {v!r}" for k, v in task.coordinates.items())
            raise ValueError(f"sweep point ({point}): {error}") from None
    return demands


def run_sweep(path: str | Path, outdir: str | Path | None = None, *, scheduler: str | None = None,
              workers: int | None = None, processes: bool = True, progress: bool = True,
              log: Callable[[str], None] = print, allow_large: bool = False) -> SweepReport:
    """Run the sweep file ``path`` (default OUTDIR: ``results/sweeps/<name>``) on Dask and gather
    its dataset into ``OUTDIR/sweep.nc``; see the module docstring.  Every point's resources are
    checked first (:func:`check_sweep_resources`; ``allow_large`` as ``--allow-large``)."""
    spec = load_sweep(path)
    outdir = Path(outdir) if outdir is not None else Path("results") / "sweeps" / spec.name
    tasks = sweep_tasks(spec, outdir)
    check_sweep_resources(tasks, allow_large=allow_large)
    began = time.perf_counter()
    with dask_client(scheduler, workers, processes=processes) as client:
        report = run_tasks(client, tasks, progress=progress, log=log, allow_large=allow_large)
    report.wall_time = time.perf_counter() - began
    report.dataset_path = write_dataset(gather_sweep(spec, tasks), outdir / "sweep.nc")
    log(f"ran {len(report.ran)}, skipped {len(report.skipped)} finished, {len(report.failed)} failed "
        f"({report.wall_time:.1f} s); wrote {report.dataset_path}")
    for digest, message in report.failed.items():
        log(f"  failed {digest}: {message}  (traceback: {outdir / 'tasks' / (digest + '.failed.txt')})")
    return report


# ---- the dataset ------------------------------------------------------------------------------------------
def _coordinate(values: list[Any]) -> np.ndarray:
    """Numbers as float/int arrays; anything else (strings, "inf" next to integers) as strings."""
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=float)
    return np.array([str(v) for v in values], dtype=object)


def _attr(value: Any) -> Any:
    """A netCDF attribute: numbers and strings as they are, anything else as JSON text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)) and not (isinstance(value, float) and not math.isfinite(value)):
        return value
    return "json:" + json.dumps(value, default=repr)


def gather_sweep(spec: SweepSpec, tasks: Sequence[Task]) -> Any:
    """The :class:`xarray.Dataset` of the finished task files: per point ``risk`` (and ``network_risk``
    for SGD), ``mean_<c>``/``std_<c>`` over time, ``final_risk``, ``wall_time``, ``status`` (1 finished,
    0 failed or not run: its values are NaN) and ``task_hash``; plateau tasks add ``plateau_height``,
    ``plateau_entry``, ``plateau_exit``, ``plateau_drop`` over a ``plateau`` dimension (NaN-padded)."""
    import h5py
    import xarray as xr

    from reduced_pde.running.storage import read_trajectory

    dims = list(spec.axes) + (["seed"] if spec.kind == "sgd" else [])
    coords: dict[str, Any] = {key: _coordinate(values) for key, values in spec.axes.items()}
    if spec.kind == "sgd":
        coords["seed"] = np.array(sorted({t.seed for t in tasks}), dtype=np.int64)
    shape = tuple(len(coords[d]) for d in dims)
    index = {d: {str(v) if coords[d].dtype == object else v: i for i, v in enumerate(coords[d].tolist())}
             for d in dims}

    def position(task: Task) -> tuple[int, ...]:
        return tuple(index[d][str(task.coordinates[d]) if coords[d].dtype == object else task.coordinates[d]]
                     for d in dims)

    nominal = [output_times(t.config) for t in tasks]
    same_times = all(n.shape == nominal[0].shape and np.array_equal(n, nominal[0]) for n in nominal)
    n_out = max(n.size for n in nominal)
    series: dict[str, np.ndarray] = {}
    scalars = {name: np.full(shape, math.nan) for name in ("final_risk", "wall_time")}
    status = np.zeros(shape, dtype=np.int8)
    hashes = np.empty(shape, dtype=object)
    times = np.full(shape + (n_out,), math.nan)
    plateaus: dict[str, list[tuple[tuple[int, ...], np.ndarray]]] = {}
    coordinate_names: tuple[str, ...] = ()
    for task in tasks:
        at = position(task)
        hashes[at] = task.hash
        if not _finished(task):
            continue
        trajectory = read_trajectory(task.path)
        status[at] = 1
        k = trajectory.time.size
        times[at + (slice(0, k),)] = trajectory.time
        columns = {"risk": trajectory.risk}
        if trajectory.network_risk is not None:
            columns["network_risk"] = trajectory.network_risk
        coordinate_names = trajectory.coordinates
        for c in trajectory.coordinates:
            columns[f"mean_{c}"], columns[f"std_{c}"] = trajectory.mean_of(c), trajectory.std_of(c)
        for name, column in columns.items():
            array = series.setdefault(name, np.full(shape + (n_out,), math.nan))
            array[at + (slice(0, k),)] = column
        scalars["final_risk"][at] = trajectory.risk[-1]
        scalars["wall_time"][at] = trajectory.diagnostics.get("wall_time", math.nan)
        if task.kind == "plateaus":
            with h5py.File(task.path, "r") as file:
                for name in ("height", "entry_time", "exit_time", "drop_time"):
                    plateaus.setdefault(name, []).append((at, file["plateaus"][name][()]))
    time_dim = "time" if same_times else "output"
    variables: dict[str, Any] = {
        name: (dims + [time_dim], array) for name, array in series.items()}
    variables.update({name: (dims, array) for name, array in scalars.items()})
    variables["status"] = (dims, status)
    variables["task_hash"] = (dims, hashes.astype(str))
    if same_times:
        coords["time"] = nominal[0]
        # SGD records the step k·ε nearest each output time: its actual times differ by < ε
        if spec.kind == "sgd":
            variables["actual_time"] = (dims + ["time"], times)
    else:
        variables["time"] = (dims + ["output"], times)
    if plateaus:
        most = max(values.size for values in (v for _, v in plateaus["height"]))
        for name, entries in plateaus.items():
            array = np.full(shape + (max(most, 1),), math.nan)
            for at, values in entries:
                array[at + (slice(0, values.size),)] = values
            short = {"entry_time": "entry", "exit_time": "exit", "drop_time": "drop"}.get(name, name)
            variables[f"plateau_{short}"] = (dims + ["plateau"], array)
    dataset = xr.Dataset(variables, coords=coords)
    from reduced_pde import __version__

    base = parse_config(copy.deepcopy(spec.base)) if not spec.axes else tasks[0].config
    attrs = {"sweep.name": spec.name, "sweep.task": spec.kind, "sweep.file": spec.source,
             "sweep.base_path": spec.base_path, "sweep.axes": json.dumps(list(spec.axes)),
             "sweep.coordinates": json.dumps(list(coordinate_names)),
             "package_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    attrs.update({f"config.{key}": _attr(value) for key, value in flatten(base).items() if key not in spec.axes})
    attrs.update({f"plateaus.{key}": _attr(value) for key, value in spec.plateau_options.items()})
    dataset.attrs.update(attrs)
    return dataset


def write_dataset(dataset: Any, path: str | Path) -> Path:
    """Write ``dataset`` as netCDF-4/HDF5 (h5netcdf engine) to a temporary file, then rename it."""
    from reduced_pde.running.storage import atomic_write

    return atomic_write(path, lambda temporary: dataset.to_netcdf(temporary, engine="h5netcdf"))


def open_dataset(path: str | Path) -> Any:
    """A sweep dataset written by :func:`write_dataset`, loaded into memory."""
    import xarray as xr

    import h5py

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep dataset {str(path)!r} does not exist")
    if not h5py.is_hdf5(path):
        raise ValueError(f"sweep dataset {str(path)!r} is not a netCDF-4/HDF5 file (the sweep.nc that "
                         "`reduced-pde sweep` writes)")
    with xr.open_dataset(path, engine="h5netcdf", phony_dims="sort") as dataset:
        return dataset.load()
