"""HDF5 files for trajectories and checkpoints.

Layout of a result file::

    /time, /risk                           (T,) PDE time units; risk = N = ∞ risk of the law
    /network_risk                          (T,) finite network's risk (SGD runs only)
    /mean, /std                            (T, D) per reduced coordinate (attribute ``coordinates``)
    /fields/<name>                         solver-specific arrays (density, positions, points, ...)
    attrs: kind, package_version, created, coordinates, config.<key> (the user's inputs, from which
           the run is rebuilt), derived.<key> (values derived from them), diagnostics.<key>

Every write goes to a temporary file in the same folder (``.NAME.pid<PID>.XXXX.tmp``), is flushed and
then renamed over the target (``os.replace``, atomic on POSIX), so a crash never leaves a half-written
file; the temporary file is removed on every exit path that Python sees (errors, Ctrl-C, SIGTERM
through the CLI, ``SystemExit``).  A kill -9 (or a power loss) runs no code, so only the next run can
clean up: the next run that takes a lock in that folder (:class:`OutputLock`) removes the temporary
files of dead pids and says so.

A checkpoint (``OUTPUT.checkpoint``) additionally records the package version and a SHA-256 digest
of everything it holds (every dataset's bytes, every attribute); :func:`read_checkpoint` refuses a
file that cannot be read, that was written by another package version, or whose digest differs
(damaged or edited), with a ``ValueError`` that names the file.  Before a checkpoint is written the
free space of its folder is checked against its size, so a full disk ends in a clean ``OSError``
(errno ENOSPC) with the previous checkpoint intact.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from solvers.results import Trajectory

__all__ = ["write_config_attributes", "write_trajectory", "read_trajectory", "write_checkpoint", "read_checkpoint",
           "atomic_h5", "atomic_write", "remove_stale_temporaries", "CheckpointFile", "OutputLock", "check_output_path", "check_input_file",
           "file_digest"]


_JSON_PREFIX = "json:"


def _attr_value(value: Any) -> Any:
    if value is None:  # JSON null: reads back as None (a "none" string would not)
        return _JSON_PREFIX + "null"
    if isinstance(value, dict):  # e.g. a target specification table
        return _JSON_PREFIX + json.dumps(value)
    if isinstance(value, (list, tuple)) and any(not isinstance(v, (int, float, bool, np.number)) for v in value):
        return _JSON_PREFIX + json.dumps(list(value))  # e.g. coordinate names (h5py cannot store <U arrays)
    if isinstance(value, (list, tuple)):
        return np.asarray(value) if len(value) else np.zeros(0)
    if isinstance(value, float) and np.isinf(value):
        return value
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value.startswith(_JSON_PREFIX):
        return json.loads(value[len(_JSON_PREFIX):])
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def atomic_h5(path: str | Path, write: Callable[[h5py.File], None]) -> Path:
    """Run ``write(file)`` on a temporary HDF5 file and atomically move it to ``path``."""

    def write_file(temporary: str) -> None:
        with h5py.File(temporary, "w") as file:
            write(file)
            file.flush()

    return atomic_write(path, write_file)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Run ``write(temporary_path)`` (any format), fsync the file and atomically rename it to ``path``
    (a temporary file in the same folder; removed if ``write`` raises)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = None
    try:
        # the writer's pid is in the name: a later run removes the file once that process is dead
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp",
                                             dir=path.parent)
        os.close(handle)
        write(temporary)
        with open(temporary, "rb") as raw:
            os.fsync(raw.fileno())
        os.replace(temporary, path)
    except BaseException:  # errors, KeyboardInterrupt (SIGINT), SystemExit (SIGTERM through the CLI)
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0; a process of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | Path, output: str | Path | None = None) -> list[Path]:
    """Remove the temporary files in ``folder`` that a dead process left (``.NAME.pid<PID>.*.tmp``
    whose PID no longer runs: a kill -9 during a write), and any ``.NAME.*.tmp`` of ``output`` without
    a pid (an older writer); returns the removed paths.  Files of live processes are kept."""
    removed = []
    folder = Path(folder)
    for candidate in folder.glob(".*.tmp"):
        marker = re.search(r"\.pid(\d+)\.[^.]*\.tmp$", candidate.name)
        ours = output is not None and candidate.name.startswith(f".{Path(output).name}.")
        if (marker and not _alive(int(marker.group(1)))) or (marker is None and ours):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def write_config_attributes(group: h5py.Group, config: dict[str, Any]) -> None:
    """Store a flat configuration as attributes ``config.<key>`` (lists as arrays, tables as JSON)."""
    for key, value in config.items():
        group.attrs[f"config.{key}"] = _attr_value(value)


def _write_trajectory_into(group: h5py.Group, trajectory: Trajectory) -> None:
    from reduced_pde import __version__

    for name in ("time", "risk", "mean", "std"):
        group.create_dataset(name, data=getattr(trajectory, name))
    if trajectory.network_risk is not None:
        group.create_dataset("network_risk", data=trajectory.network_risk)
    group.attrs["coordinates"] = _attr_value(list(trajectory.coordinates))
    fields = group.create_group("fields")
    for name, array in trajectory.fields.items():
        fields.create_dataset(name, data=np.asarray(array), compression="gzip" if np.size(array) > 4096 else None)
    group.attrs["kind"] = trajectory.kind
    group.attrs["package_version"] = __version__
    group.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_config_attributes(group, trajectory.config)
    for key, value in trajectory.derived.items():
        group.attrs[f"derived.{key}"] = _attr_value(value)
    for key, value in trajectory.diagnostics.items():
        group.attrs[f"diagnostics.{key}"] = _attr_value(value)


def _read_trajectory_from(group: h5py.Group) -> Trajectory:
    config, derived, diagnostics = {}, {}, {}
    for key, value in group.attrs.items():
        if key.startswith("config."):
            config[key[len("config."):]] = _decode(value)
        elif key.startswith("derived."):
            derived[key[len("derived."):]] = _decode(value)
        elif key.startswith("diagnostics."):
            diagnostics[key[len("diagnostics."):]] = _decode(value)
    fields = {name: group["fields"][name][()] for name in group["fields"]}
    network = group["network_risk"][()] if "network_risk" in group else None
    return Trajectory(kind=_decode(group.attrs["kind"]), time=group["time"][()], risk=group["risk"][()],
                      coordinates=tuple(_decode(group.attrs["coordinates"])), mean=group["mean"][()],
                      std=group["std"][()], network_risk=network, fields=fields, config=config,
                      derived=derived, diagnostics=diagnostics)


def write_trajectory(path: str | Path, trajectory: Trajectory) -> Path:
    """Write ``trajectory`` to ``path`` atomically."""
    return atomic_h5(path, lambda file: _write_trajectory_into(file, trajectory))


def read_trajectory(path: str | Path) -> Trajectory:
    """The trajectory stored in ``path``; ValueError naming the file when it is missing, not HDF5, or
    not a result file of this package."""
    check_input_file(path, "result file")
    try:
        with h5py.File(path, "r") as file:
            return _read_trajectory_from(file)
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise ValueError(f"result file {str(path)!r} is not a readable result file of reduced-pde "
                         f"({_reason(error)})") from None


def _reason(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]


def check_input_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path if it is an existing regular file, else ValueError naming it."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{what} {str(path)!r} is not readable")
    return path


def check_output_path(path: str | Path, what: str = "output", *, directory: bool = False) -> Path:
    """Check before a run that ``path`` (a file, or a folder with ``directory``) can be written: it is
    not a directory (a file) / not a file (a folder), its nearest existing ancestor is a folder, and a
    probe file can be created there (which also catches read-only file systems, even for root).
    Creates nothing that stays; ValueError naming ``what`` and the path otherwise."""
    text = os.fspath(path)
    path = Path(path)
    if directory:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{what} {text!r} exists and is not a directory")
    elif path.is_dir():
        raise ValueError(f"{what} {text!r} is a directory; give a file name")
    elif text.endswith(("/", os.sep)):
        raise ValueError(f"{what} {text!r} ends with a separator, so it names a folder; give a file name")
    elif path.exists() and not path.is_file():
        # results are written to a temporary file renamed over the output: that would replace a device
        # (/dev/null), a pipe or a socket by a regular file
        raise ValueError(f"{what} {text!r} exists and is not a regular file (a device, pipe or socket); "
                         "give a file name")
    ancestor = path if directory and path.is_dir() else path.parent
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise ValueError(f"{what} {str(path)!r} cannot be created: {str(ancestor)!r} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".reduced-pde-probe.", dir=ancestor)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise ValueError(f"{what} {str(path)!r} cannot be written: {str(ancestor)!r} refuses new files "
                         f"({error.strerror or error})") from None
    return path


class OutputLock:
    """An exclusive lock on an output (``.NAME.lock`` next to it, ``fcntl.flock``): a second run on the
    same output is refused while the first holds it.  The lock file records the holder's pid.  The
    kernel releases the lock when its process dies (even by kill -9), so a stale lock file never
    blocks a later run.  :meth:`acquire` also removes the temporary files that a killed run left in
    the output's folder (:func:`remove_stale_temporaries`: those of dead pids) and says so (a
    ``UserWarning``, one line on the command line)."""

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        self.path = self.output.with_name(f".{self.output.name}.lock")
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        import fcntl

        self.output.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            if created:  # cannot happen (the holder created it), but never leave a file of ours
                self.path.unlink(missing_ok=True)
            raise ValueError(f"output {str(self.output)!r}: another run is writing it (lock {str(self.path)!r}, "
                             f"pid {holder or '?'}); wait for it to finish or choose another output") from None
        previous = os.pread(fd, 64, 0).decode(errors="replace").strip()  # a killed holder's pid
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        removed = remove_stale_temporaries(self.output.parent, self.output)
        if removed:
            killed = f" (the lock names pid {previous}, no longer running)" if previous else ""
            warnings.warn(f"output {str(self.output)!r}: removed {len(removed)} temporary file(s) a killed run left"
                          f"{killed}: {', '.join(p.name for p in removed)}", stacklevel=2)
        return self

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


_DIGEST = "sha256"


def file_digest(file: h5py.File) -> str:
    """SHA-256 of every dataset (path, dtype, shape, bytes) and every attribute (path, key, value) of
    an open HDF5 file, in sorted order; the root attribute ``sha256`` itself is left out."""
    digest = hashlib.sha256()

    def attributes(name: str, obj: Any) -> None:
        for key in sorted(obj.attrs):
            if name == "/" and key == _DIGEST:
                continue
            value = obj.attrs[key]
            digest.update(f"{name}@{key}=".encode())
            digest.update(np.asarray(value).tobytes() if not isinstance(value, (str, bytes)) else
                          (value.encode() if isinstance(value, str) else value))

    def visit(name: str, obj: Any) -> None:
        attributes(name, obj)
        if isinstance(obj, h5py.Dataset):
            data = obj[()]
            digest.update(f"{name}:{obj.dtype.str}:{obj.shape}".encode())
            digest.update(np.asarray(data).tobytes() if not isinstance(data, bytes) else data)

    attributes("/", file)
    names: list[str] = []
    file.visit(names.append)
    for name in sorted(names):
        visit(name, file[name])
    return digest.hexdigest()


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (list, tuple)):
        return int(np.asarray(value).nbytes) if all(isinstance(v, (int, float)) for v in value) else 1024
    return 256


def _check_free_space(folder: Path, needed: int) -> None:
    """OSError(ENOSPC) before writing ``needed`` bytes into ``folder`` if the disk cannot hold them."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"no space left on device: writing {needed / 2**20:.1f} MiB into "
                                    f"{str(folder)!r}, {free / 2**20:.1f} MiB free")


def write_checkpoint(path: str | Path, partial: Trajectory, state: dict[str, Any],
                     next_output: int) -> Path:
    """Checkpoint: the trajectory recorded so far, the solver state and the next output index, with
    the package version and a SHA-256 digest of the whole content (module docstring)."""
    from reduced_pde import __version__

    path = Path(path)
    size = sum(_nbytes(v) for v in state.values()) + sum(_nbytes(v) for v in partial.fields.values()) \
        + 8 * (partial.time.size * (2 + 2 * len(partial.coordinates))) + 2**20
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_free_space(path.parent, 2 * size)  # the new file is written before the old one goes

    def write(file: h5py.File) -> None:
        _write_trajectory_into(file.create_group("trajectory"), partial)
        group = file.create_group("state")
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                group.create_dataset(key, data=value)
            else:  # scalars; dicts (e.g. RNG states with 128-bit integers) as JSON
                group.attrs[key] = _attr_value(value)
        file.attrs["next_output"] = next_output
        file.attrs["package_version"] = __version__
        file.flush()
        file.attrs[_DIGEST] = file_digest(file)

    return atomic_h5(path, write)


def read_checkpoint(path: str | Path) -> tuple[Trajectory, dict[str, Any], int]:
    """(partial trajectory, solver state, next output index) of a checkpoint; ValueError naming the
    file when it cannot be read, comes from another package version, or fails its digest."""
    from reduced_pde import __version__

    path = check_input_file(path, "checkpoint")
    advice = "delete it to start the run afresh"
    try:
        with h5py.File(path, "r") as file:
            stored = file.attrs.get(_DIGEST)
            if stored is None:
                raise ValueError(f"checkpoint {str(path)!r} has no digest (written by an older version or not a "
                                 f"checkpoint); {advice}")
            if _decode(stored) != file_digest(file):
                raise ValueError(f"checkpoint {str(path)!r} fails its SHA-256 digest: it was damaged or edited; "
                                 f"{advice}")
            version = _decode(file.attrs.get("package_version", ""))
            if version != __version__:
                raise ValueError(f"checkpoint {str(path)!r} was written by reduced-pde {version}, this is "
                                 f"{__version__}; {advice}")
            partial = _read_trajectory_from(file["trajectory"])
            state: dict[str, Any] = {key: file["state"][key][()] for key in file["state"]}
            state.update({key: _decode(value) for key, value in file["state"].attrs.items()})
            return partial, state, int(file.attrs["next_output"])
    except ValueError as error:
        if str(error).startswith(f"checkpoint {str(path)!r}"):
            raise
        raise ValueError(f"checkpoint {str(path)!r} is damaged ({_reason(error)}); {advice}") from None
    except (OSError, KeyError, TypeError) as error:
        raise ValueError(f"checkpoint {str(path)!r} is damaged or not a checkpoint ({_reason(error)}); "
                         f"{advice}") from None


class CheckpointFile:
    """A :class:`solvers.controller.CheckpointStore` in one HDF5 file (atomic replace on save)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"CheckpointFile({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> tuple[Trajectory, dict[str, Any], int]:
        return read_checkpoint(self.path)

    def save(self, partial: Trajectory, state: dict[str, Any], next_output: int) -> None:
        write_checkpoint(self.path, partial, state, next_output)


def _write_header(file: h5py.File, kind: str, config: dict[str, Any], derived: dict[str, Any]) -> None:
    from reduced_pde import __version__

    file.attrs["kind"] = kind
    file.attrs["package_version"] = __version__
    file.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_config_attributes(file, config)
    for key, value in derived.items():
        file.attrs[f"derived.{key}"] = _attr_value(value)


def write_gibbs_study(path: str | Path, study: dict[str, Any]) -> Path:
    """The Gibbs states of :func:`reduced_pde.running.pipeline.gibbs_study`, atomically: datasets
    ``centers``, ``edges``, ``beta``, ``density`` (B, M), ``risk``, ``free_energy``, ``second_moment``,
    ``entropy``, ``mean``, ``residual``; the noiseless optimum (when computed) as attributes
    ``noiseless_optimum.*`` and dataset ``noiseless_optimum_masses``."""
    points = study["points"]

    def write(file: h5py.File) -> None:
        _write_header(file, "gibbs_fixed_point", study["config"], study["derived"])
        file.attrs["coordinate"] = study["coordinate"]
        file.create_dataset("centers", data=study["centers"])
        file.create_dataset("edges", data=study["edges"])
        file.create_dataset("beta", data=np.array(study["betas"]))
        file.create_dataset("density", data=np.array([p.density for p in points]))
        for key in ("risk", "free_energy", "second_moment", "entropy"):
            file.create_dataset(key, data=np.array([p.terms[key] for p in points]))
        file.create_dataset("mean", data=np.array([p.mean_r() for p in points]))
        file.create_dataset("residual", data=np.array([p.residual for p in points]))
        best = study["noiseless_optimum"]
        if best is not None:
            for key in ("risk", "objective", "gap", "mean_r"):
                file.attrs[f"noiseless_optimum.{key}"] = best[key]
            file.create_dataset("noiseless_optimum_masses", data=best["masses"])

    return atomic_h5(path, write)


def write_escape_time_sweep(path: str | Path, sweep: Any, fit: Any = None, *, rtol: float) -> Path:
    """An :class:`~reduced_pde.analysis.timescales.EscapeTimeSweep` (and its power-law fit), atomically."""
    settings = {"degree": sweep.k, "level": sweep.level, "n_particles": sweep.n_particles, "rtol": rtol,
                "solver": "lagrangian", "model": "single_index_sphere", "activation": f"he{sweep.k}",
                "target": f"he{sweep.k}", "second_layer": 1.0}

    def write(file: h5py.File) -> None:
        _write_header(file, "escape_time_sweep", settings, {})
        for name in ("dimensions", "escape_times", "predicted", "wall_times"):
            file.create_dataset(name, data=getattr(sweep, name))
        if sweep.check_escape_times is not None:
            file.create_dataset("check_escape_times", data=sweep.check_escape_times)
        if fit is not None:
            for name in ("exponent", "exponent_stderr", "prefactor"):
                file.attrs[f"fit.{name}"] = getattr(fit, name)

    return atomic_h5(path, write)
