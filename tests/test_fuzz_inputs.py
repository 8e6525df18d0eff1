"""Malformed inputs against the command line and the Python API (issue 12).

* the hand-written table ``tests/refusal_cases.py`` (every example of the issue and more): each case
  must be refused cleanly — the expected exit status, no traceback, at most two lines on stderr
  naming the field, and no file left behind (the default suite runs the cases that need no run of
  their own; the checkpoint cases, which each write a checkpoint first, are marked slow);
* property-based fuzzing (hypothesis) of ``--set`` values that no schema allows, run through
  ``reduced-pde pde|sgd --check`` (so that nothing is computed even if a value were wrongly
  accepted): exit status 2, one line, the field named, nothing written;
* checkpoints: digest, version, changed configuration, lock, temporary files, a full disk;
* a run that goes bad stops with the time (status 3), and the API constructors refuse bad arguments.
"""

from __future__ import annotations

import errno
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import refusal_cases as table
from reduced_pde.cli import main

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

#: a case that has not finished after this long is a hang (the slowest refusal takes < 5 s)
CASE_SECONDS = 60


class _Hang(Exception):
    pass


def _alarm(signum, frame):  # pragma: no cover - only on a hang
    raise _Hang()


def run_cli(argv: list[str], capsys) -> tuple[int | None, str]:
    """Exit status and stderr of ``reduced-pde argv`` in this process (None: did not finish in time)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse refusals
        status = int(stop.code) if isinstance(stop.code, int) else 1
    except _Hang:
        status = None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return status, capsys.readouterr().err


def _run_case(case: table.Case, tmp_path: Path, capsys) -> str:
    if case.setup is not None:
        case.setup(tmp_path)
    argv = table.expand(case, tmp_path)
    before = table.files_under(tmp_path)
    try:
        status, stderr = run_cli(argv, capsys)
    finally:
        table.release_held_locks()
    outcome = table.judge(case, status, stderr, before, table.files_under(tmp_path))
    assert outcome == "clean", f"{case.name}: {outcome}, status {status}, stderr {stderr!r}"
    return outcome


_SLOW = {case.name for case in table.CASES if case.setup is not None and "checkpoint" in getattr(
    case.setup, "__qualname__", "")}


@pytest.mark.parametrize("case", [c for c in table.CASES if c.name not in _SLOW], ids=lambda c: c.name)
def test_table_case_is_refused_cleanly(case: table.Case, tmp_path: Path, capsys) -> None:
    _run_case(case, tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in table.CASES if c.name in _SLOW], ids=lambda c: c.name)
def test_table_checkpoint_case_is_refused_cleanly(case: table.Case, tmp_path: Path, capsys) -> None:
    _run_case(case, tmp_path, capsys)


def test_damaged_and_changed_checkpoints_are_refused(tmp_path: Path, capsys) -> None:
    """One checkpoint, damaged or resumed with another configuration in every way the issue lists."""
    import shutil

    intact = table._make_checkpoint(tmp_path, "sgd")
    keep = tmp_path / "intact.copy"
    shutil.copy(intact, keep)
    damages = {"truncated": table._truncate, "header": lambda p: table._flip_bytes(p, "header"),
               "state": lambda p: table._flip_bytes(p, "state"),
               "next_output": lambda p: table._edit_next_output(p, 2)}
    small = tmp_path / "small.toml"
    argv = ["sgd", str(small), "-o", str(tmp_path / "out.h5"), "--resume", "--quiet"]
    for name, damage in damages.items():
        shutil.copy(keep, intact)
        damage(intact)
        status, stderr = run_cli(argv, capsys)
        assert status == 2 and "checkpoint" in stderr and "Traceback" not in stderr, (name, stderr)
        assert len(stderr.strip().splitlines()) == 1, (name, stderr)
    for override, field in (("data.delta=0.3", "data.delta"), ("initial.kappa=0.5", "initial.kappa"),
                            ("sgd.n_neurons=41", "sgd.n_neurons")):
        shutil.copy(keep, intact)
        status, stderr = run_cli(argv + ["--set", override], capsys)
        assert status == 2 and field in stderr and "another configuration" in stderr, stderr
    shutil.copy(keep, intact)
    status, stderr = run_cli(argv + ["--seed", "4"], capsys)
    assert status == 2 and "sgd.seeds" in stderr, stderr
    # the intact checkpoint resumes (it holds every output: the file is written from it)
    shutil.copy(keep, intact)
    status, stderr = run_cli(argv, capsys)
    assert status == 0, stderr
    assert (tmp_path / "out.h5").exists() and not intact.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ---- property-based: values that no schema allows --------------------------------------------------
_text = st.text(alphabet=st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=8).filter(
    lambda s: s.lower() not in {"inf", "infinity", "auto", "data", "nan"})
_non_numbers = st.one_of(_text.map(lambda s: f'"{s}"'), st.just("[1, 2]"), st.just('["a"]'), st.just("{x = 1}"),
                         st.booleans().map(lambda b: "true" if b else "false"))
_non_finite = st.sampled_from(["nan", "inf", "-inf"])
_non_positive = st.one_of(st.floats(max_value=0.0, allow_nan=False, allow_infinity=False).map(repr),
                          st.integers(max_value=0).map(str))
_non_integer = st.floats(min_value=1.5, max_value=1e6).filter(lambda x: not float(x).is_integer()).map(repr)
_huge_count = st.integers(min_value=10**13, max_value=10**18).map(str)  # > 8 TB as float64 on any machine

#: (command, field, strategy of values its check refuses)
_POSITIVE = ["schedule.xi0", "schedule.t0", "output.t_final", "output.t_first", "sgd.step_size"]
_COUNTS = ["output.n_outputs", "sgd.n_neurons", "sgd.batch_size"]
_NAMES = ["pde.solver", "pde.scheme", "pde.kernel", "pde.time_stepping", "output.spacing", "activation.name",
          "data.model"]
_FIELDS = st.one_of(
    st.tuples(st.sampled_from(_POSITIVE), st.one_of(_non_numbers, _non_finite, _non_positive)),
    st.tuples(st.sampled_from(_COUNTS), st.one_of(_non_numbers, _non_finite, _non_positive, _non_integer,
                                                  _huge_count)),
    st.tuples(st.sampled_from(_NAMES), st.one_of(_text.map(lambda s: f'"{s}"'), st.just('["muscl"]'),
                                                 st.just("3"), st.just("true"))),
    st.tuples(st.just("data.delta"), st.one_of(_non_numbers, _non_finite,
                                               st.floats(min_value=1.0, max_value=1e300).map(repr),
                                               st.floats(max_value=-1e-9, min_value=-1e300).map(repr))),
    st.tuples(st.just("data.dimension"), st.one_of(_non_numbers.filter(lambda v: v != '"inf"'), _non_positive,
                                                   _non_integer, st.just("1e300"))),
    st.tuples(st.just("initial.kappa"), st.one_of(_non_numbers, _non_finite, _non_positive)),
    st.tuples(st.just("pde.cfl"), st.one_of(_non_numbers, _non_finite, _non_positive, st.just("0.75"),
                                            st.just("1e-300"))),
)


def _fuzz_once(field: str, value: str, tmp_path: Path, capsys) -> None:
    command = "sgd" if field.startswith("sgd.") else "pde"
    for stale in tmp_path.iterdir():
        stale.unlink()
    config = table._write_small(tmp_path)
    if field.startswith("pde.") and field not in ("pde.solver",) and field in ("pde.scheme", "pde.kernel",
                                                                             "pde.time_stepping", "pde.cfl"):
        config.write_text(config.read_text().replace('solver = "lagrangian"\nn_particles = 40',
                                                     'solver = "finite_volume"'))
    before = table.files_under(tmp_path)
    status, stderr = run_cli([command, str(config), "-o", str(tmp_path / "out.h5"), "--check",
                              "--set", f"{field}={value}"], capsys)
    lines = stderr.strip().splitlines()
    assert status == 2, (field, value, status, stderr)
    assert len(lines) == 1 and "Traceback" not in stderr, (field, value, stderr)
    assert field in stderr or field.split(".")[1] in stderr, (field, value, stderr)
    assert table.files_under(tmp_path) == before, (field, value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_FIELDS)
def test_fuzzed_values_are_refused_cleanly(tmp_path: Path, capsys, pair: tuple[str, str]) -> None:
    _fuzz_once(*pair, tmp_path, capsys)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_FIELDS)
def test_fuzzed_values_are_refused_cleanly_long(tmp_path: Path, capsys, pair: tuple[str, str]) -> None:
    _fuzz_once(*pair, tmp_path, capsys)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=600))
def test_random_bytes_as_result_or_config_file(tmp_path: Path, capsys, data: bytes) -> None:
    """Arbitrary bytes as a result file (plot, law, plateaus) or a configuration: refused, one line."""
    path = tmp_path / "input.h5"
    path.write_bytes(data)
    for argv in (["plot", str(path), "-o", str(tmp_path / "r.png")],
                 ["law", str(path), "--times", "0", "-o", str(tmp_path / "l.png")],
                 ["plateaus", str(path), "-o", ""],
                 ["pde", str(path), "-o", str(tmp_path / "o.h5"), "--check"]):
        status, stderr = run_cli(argv, capsys)
        if status == 0:  # only a configuration can be valid: empty bytes are an empty TOML = all defaults
            assert argv[0] == "pde" and data.strip() == b"", (argv, data)
            continue
        assert status == 2 and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, (argv, stderr)
        assert str(path) in stderr or "input.h5" in stderr, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.h5"]


# ---- files: lock, temporary files, full disk -----------------------------------------------------
def test_lock_refuses_second_run_and_removes_stale_temporary_files(tmp_path: Path) -> None:
    from reduced_pde.running.storage import OutputLock

    output = tmp_path / "out.h5"
    stale = tmp_path / ".out.h5.checkpoint.abc123.tmp"  # what a kill -9 during a write leaves
    stale.write_bytes(b"partial")
    with pytest.warns(UserWarning, match="removed 1 temporary file"), OutputLock(output):
        assert not stale.exists()
        with pytest.raises(ValueError, match="another run is writing it"):
            OutputLock(output).acquire()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # released: no lock file left
    with OutputLock(output):  # and the output can be locked again
        pass


def test_interrupted_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    from reduced_pde.running.storage import atomic_h5

    def interrupted(file) -> None:
        file.create_dataset("x", data=np.zeros(10))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_h5(tmp_path / "out.h5", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_full_disk_keeps_previous_checkpoint(tmp_path: Path, monkeypatch, capsys) -> None:
    """ENOSPC on the second checkpoint write (injected into the HDF5 writer): a clean OSError, no
    temporary file, and the first checkpoint intact and resumable; the CLI reports one line (status 1)."""
    import reduced_pde.running.storage as storage
    from reduced_pde.running.config import load_config
    from reduced_pde.running.pipeline import checkpoint_path, run_pde

    config = load_config(table._write_small(tmp_path))
    real = storage._write_trajectory_into
    calls = {"n": 0}

    def failing(group, trajectory):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(group, trajectory)

    monkeypatch.setattr(storage, "_write_trajectory_into", failing)
    path = checkpoint_path(tmp_path / "out.h5")
    with pytest.raises(OSError) as error:
        run_pde(config, checkpoint=path, checkpoint_every=0.0, progress=False)
    assert error.value.errno == errno.ENOSPC
    partial, _, next_output = storage.read_checkpoint(path)  # digest verified: intact
    assert next_output == 1 and partial.time.size == 1
    assert not list(tmp_path.glob(".*.tmp"))
    status, stderr = run_cli(["pde", str(tmp_path / "small.toml"), "-o", str(tmp_path / "out.h5"), "--resume",
                              "--quiet", "--checkpoint-every", "0"], capsys)
    assert status == 1 and "No space left on device" in stderr and len(stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "out.h5").exists()
    monkeypatch.setattr(storage, "_write_trajectory_into", real)
    # a disk that reports too little free space is refused before anything is written
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda p: type("U", (), {"free": 10})())
    with pytest.raises(OSError, match="no space left"):
        storage.write_checkpoint(tmp_path / "other.checkpoint", partial, {"x": np.zeros(4)}, 1)
    assert not (tmp_path / "other.checkpoint").exists()


# ---- runs that go bad ----------------------------------------------------------------------------
class _Blowing:
    """A simulation whose risk overflows at t = 0.5 (the controller must stop it, naming the time)."""

    coordinate_names = ("r",)

    def __init__(self) -> None:
        self.time = 0.0

    def advance(self, t: float) -> None:
        self.time = t

    def observables(self) -> dict:
        risk = math.inf if self.time >= 0.5 else 1.0
        return {"risk": risk, "mean_r": 1.0, "std_r": 0.0}

    def state(self) -> dict:
        return {"time": self.time}

    def set_state(self, state: dict) -> None:
        self.time = state["time"]


def test_non_finite_record_stops_with_time() -> None:
    from solvers.common import SolverError
    from solvers.controller import run_simulation

    with pytest.raises(SolverError, match=r"risk = inf is not finite at t = 0\.5"):
        run_simulation(_Blowing(), np.array([0.0, 0.25, 0.5, 1.0]), kind="test", config={})


def test_solver_error_exits_3_with_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    import reduced_pde.cli as cli
    from solvers.common import SolverError

    def diverging(*args, **kwargs):
        raise SolverError("density became non-finite (nan) in cell 17 at t = 0.25")

    monkeypatch.setattr(cli, "run_pde", diverging)
    small = table._write_small(tmp_path)
    status, stderr = run_cli(["pde", str(small), "-o", str(tmp_path / "out.h5"), "--quiet"], capsys)
    assert status == 3 and "cell 17 at t = 0.25" in stderr and len(stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.toml"]


# ---- the Python API ------------------------------------------------------------------------------
def test_api_constructors_refuse_bad_arguments() -> None:
    from reduced_pde import IsotropicGaussianMixture, IsotropicMixtureRadialProblem, SingleIndexProblem
    from reduced_pde.models.isotropic_mixture import IsotropicMixtureNetwork
    from solvers.finite_volume import FiniteVolumeSolver
    from solvers.grid import UniformGrid1D
    from solvers.lagrangian import LagrangianSolver
    from solvers.sgd import SGDSimulation

    data = IsotropicGaussianMixture(0.5, 20)
    problem = IsotropicMixtureRadialProblem(data, "mmn18", kappa=0.4)
    network = IsotropicMixtureNetwork(problem)
    with pytest.raises(TypeError, match="problem = None"):
        LagrangianSolver(None)
    with pytest.raises(TypeError, match="schedule = 3"):
        LagrangianSolver(problem, schedule=3)
    with pytest.raises(TypeError, match="problem = None"):
        FiniteVolumeSolver(None, UniformGrid1D(0.0, 4.0, 40))
    with pytest.raises(TypeError, match="problem = None"):
        SGDSimulation(network, None, n_neurons=10, step_size=1e-3)
    with pytest.raises(TypeError, match="schedule = 3"):
        SGDSimulation(network, problem, n_neurons=10, step_size=1e-3, schedule=3)
    single = SingleIndexProblem({"he": [0.0, 1.0]}, "relu", 20)
    with pytest.raises(ValueError, match="different models"):
        SGDSimulation(network, single, n_neurons=10, step_size=1e-3)
    with pytest.raises(ValueError, match="sgd.n_neurons = 10000000000"):
        SGDSimulation(network, problem, n_neurons=10**10, step_size=1e-3)
    with pytest.raises(ValueError, match="data.dimension = 'x'"):
        IsotropicGaussianMixture(0.5, "x")
    assert math.isinf(IsotropicGaussianMixture(0.5, "inf").dimension)
    with pytest.raises(ValueError, match="initial.kappa = inf"):
        IsotropicMixtureRadialProblem(data, "mmn18", kappa=math.inf)
    with pytest.raises(TypeError, match="data = None"):
        IsotropicMixtureRadialProblem(None, "mmn18")
    with pytest.raises(ValueError, match="activation.name"):
        IsotropicMixtureRadialProblem(data, {"name": ["relu"]})


def test_check_prints_estimate_and_writes_nothing(tmp_path: Path, capsys) -> None:
    small = table._write_small(tmp_path)
    status = main(["sgd", str(small), "-o", str(tmp_path / "sub" / "out.h5"), "--check"])
    out = capsys.readouterr().out
    assert status == 0 and "valid for sgd" in out and "estimated memory" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.toml"]
    assert os.environ.get("REDUCED_PDE_DEBUG") is None
