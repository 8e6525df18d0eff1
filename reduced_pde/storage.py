"""HDF5 files for trajectories and checkpoints.

Layout of a result file::

    /time, /risk, /mean_r, /std_r          (T,) PDE time units
    /fields/<name>                         solver-specific arrays (density, norms, ...)
    attrs: kind, package_version, created, config.<key> (the full flat configuration),
           diagnostics.<key>

Every write goes to a temporary file in the same folder, is flushed and then renamed over the
target (``os.replace``, atomic on POSIX), so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from solvers.results import Trajectory

__all__ = ["write_config_attributes", "write_trajectory", "read_trajectory", "write_checkpoint", "read_checkpoint", "atomic_h5"]


_JSON_PREFIX = "json:"


def _attr_value(value: Any) -> Any:
    if value is None:
        return "none"
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        with h5py.File(temporary, "w") as file:
            write(file)
            file.flush()
        with open(temporary, "rb") as raw:
            os.fsync(raw.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def write_config_attributes(group: h5py.Group, config: dict[str, Any]) -> None:
    """Store a flat configuration as attributes ``config.<key>`` (lists as arrays, tables as JSON)."""
    for key, value in config.items():
        group.attrs[f"config.{key}"] = _attr_value(value)


def _write_trajectory_into(group: h5py.Group, trajectory: Trajectory) -> None:
    from . import __version__

    for name in ("time", "risk", "mean_r", "std_r"):
        group.create_dataset(name, data=getattr(trajectory, name))
    fields = group.create_group("fields")
    for name, array in trajectory.fields.items():
        fields.create_dataset(name, data=np.asarray(array), compression="gzip" if np.size(array) > 4096 else None)
    group.attrs["kind"] = trajectory.kind
    group.attrs["package_version"] = __version__
    group.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_config_attributes(group, trajectory.config)
    for key, value in trajectory.diagnostics.items():
        group.attrs[f"diagnostics.{key}"] = _attr_value(value)


def _read_trajectory_from(group: h5py.Group) -> Trajectory:
    config, diagnostics = {}, {}
    for key, value in group.attrs.items():
        if key.startswith("config."):
            config[key[len("config."):]] = _decode(value)
        elif key.startswith("diagnostics."):
            diagnostics[key[len("diagnostics."):]] = _decode(value)
    fields = {name: group["fields"][name][()] for name in group["fields"]}
    return Trajectory(kind=_decode(group.attrs["kind"]), time=group["time"][()], risk=group["risk"][()],
                      mean_r=group["mean_r"][()], std_r=group["std_r"][()], fields=fields,
                      config=config, diagnostics=diagnostics)


def write_trajectory(path: str | Path, trajectory: Trajectory) -> Path:
    """Write ``trajectory`` to ``path`` atomically."""
    return atomic_h5(path, lambda file: _write_trajectory_into(file, trajectory))


def read_trajectory(path: str | Path) -> Trajectory:
    with h5py.File(path, "r") as file:
        return _read_trajectory_from(file)


def write_checkpoint(path: str | Path, partial: Trajectory, state: dict[str, Any],
                     next_output: int) -> Path:
    """Checkpoint: the trajectory recorded so far, the solver state and the next output index."""

    def write(file: h5py.File) -> None:
        _write_trajectory_into(file.create_group("trajectory"), partial)
        group = file.create_group("state")
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                group.create_dataset(key, data=value)
            else:  # scalars; dicts (e.g. RNG states with 128-bit integers) as JSON
                group.attrs[key] = _attr_value(value)
        file.attrs["next_output"] = next_output

    return atomic_h5(path, write)


def read_checkpoint(path: str | Path) -> tuple[Trajectory, dict[str, Any], int]:
    with h5py.File(path, "r") as file:
        partial = _read_trajectory_from(file["trajectory"])
        state: dict[str, Any] = {key: file["state"][key][()] for key in file["state"]}
        state.update({key: _decode(value) for key, value in file["state"].attrs.items()})
        return partial, state, int(file.attrs["next_output"])
