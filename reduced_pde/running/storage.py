"""HDF5 files for trajectories and checkpoints.

Layout of a result file::

    /time, /risk                           (T,) PDE time units; risk = N = ∞ risk of the law
    /network_risk                          (T,) finite network's risk (SGD runs only)
    /mean, /std                            (T, D) per reduced coordinate (attribute ``coordinates``)
    /fields/<name>                         solver-specific arrays (density, positions, points, ...)
    attrs: kind, package_version, created, coordinates, config.<key> (the user's inputs, from which
           the run is rebuilt), derived.<key> (values derived from them), diagnostics.<key>

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

__all__ = ["write_config_attributes", "write_trajectory", "read_trajectory", "write_checkpoint", "read_checkpoint", "atomic_h5", "atomic_write",
           "CheckpointFile"]


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
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
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
