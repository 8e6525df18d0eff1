"""Sweeps on Dask (reduced_pde.running.sweeps, ``reduced-pde sweep``): a real LocalCluster, resume after
an interruption, an isolated failure, and a scheduler with two workers started as separate processes.

The tasks are MMN18 reduced solves at d = ∞ (one particle carries the point-mass law: ~0.1 s each
once compiled), so the cost is Dask's start-up, not the runs.  Every value checked is compared with
the same run made directly in this process: the solver is deterministic, so the sweep must return
it to the last bit (equality, not a tolerance)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("dask.distributed")
xr = pytest.importorskip("xarray")

from reduced_pde.cli import main  # noqa: E402
from reduced_pde.running.config import load_config  # noqa: E402
from reduced_pde.running.pipeline import run_pde  # noqa: E402
from reduced_pde.running.sweeps import (  # noqa: E402
    dask_client,
    gather_sweep,
    load_sweep,
    open_dataset,
    run_sweep,
    run_tasks,
    sweep_tasks,
)

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ['data.dimension="inf"', "pde.n_particles=1", "output.n_outputs=6", "output.t_final=1.0",
             "output.law_times=[]", "pde.rtol=1e-6"]
SWEEP = f"""
[sweep]
base = "{ROOT / 'configs' / 'mmn18_quick.toml'}"
task = "pde"
set = {json.dumps(OVERRIDES)}

[axes]
"initial.kappa" = [0.1, 0.4]
"data.delta" = {{start = 0.3, stop = 0.6, num = 2}}
"""


def _sweep_file(tmp_path: Path, text: str = SWEEP) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def _direct(kappa: float, delta: float):
    return run_pde(load_config(ROOT / "configs" / "mmn18_quick.toml",
                               OVERRIDES + [f"initial.kappa={kappa}", f"data.delta={delta}"]), progress=False)


def test_local_cluster_sweep_resume_and_isolated_failure(tmp_path, monkeypatch):
    sweep, outdir = _sweep_file(tmp_path), tmp_path / "out"
    spec = load_sweep(sweep)
    tasks = sweep_tasks(spec, outdir)
    assert len(tasks) == 4 and len({t.hash for t in tasks}) == 4
    import reduced_pde.running.pipeline as pipeline

    real_run_pde = pipeline.run_pde

    def failing(config, **kwargs):  # the κ = 0.4 points fail on the worker
        if config["initial"]["kappa"] == 0.4:
            raise FloatingPointError("injected failure")
        return real_run_pde(config, **kwargs)

    # threads of this process (processes=False): the patched solver is the one the workers call
    monkeypatch.setattr(pipeline, "run_pde", failing)
    with dask_client(workers=2, processes=False) as client:
        report = run_tasks(client, tasks, progress=False, log=lambda line: None)
    failed = {t.hash for t in tasks if t.coordinates["initial.kappa"] == 0.4}
    assert set(report.failed) == failed and len(report.ran) == 2 and not report.skipped
    assert all("FloatingPointError: injected failure" in message for message in report.failed.values())
    for digest in failed:
        assert "injected failure" in (outdir / "tasks" / f"{digest}.failed.txt").read_text()
    partial = gather_sweep(spec, tasks)
    assert partial.status.sel({"initial.kappa": 0.4}).values.tolist() == [0, 0]
    assert np.isnan(partial.risk.sel({"initial.kappa": 0.4}).values).all()
    monkeypatch.setattr(pipeline, "run_pde", real_run_pde)

    # the next invocation runs exactly the failed tasks, then nothing
    stamps = {t.hash: os.stat(t.path).st_mtime_ns for t in tasks if t.hash not in failed}
    report = run_sweep(sweep, outdir, workers=2, processes=False, progress=False, log=lambda line: None)
    assert set(report.ran) == failed and len(report.skipped) == 2 and not report.failed
    assert all(os.stat(t.path).st_mtime_ns == stamps[t.hash] for t in tasks if t.hash not in failed)
    assert not list((outdir / "tasks").glob("*.failed.txt"))
    report = run_sweep(sweep, outdir, workers=2, processes=False, progress=False, log=lambda line: None)
    assert not report.ran and len(report.skipped) == 4

    # interrupted halfway (two results lost, a temporary file left behind): those two run again
    for task in tasks[1:3]:
        os.remove(task.path)
    (outdir / "tasks" / f".{tasks[1].hash}.h5.123.tmp").write_bytes(b"half-written")
    report = run_sweep(sweep, outdir, workers=2, processes=False, progress=False, log=lambda line: None)
    assert sorted(report.ran) == sorted(t.hash for t in tasks[1:3]) and len(report.skipped) == 2

    dataset = open_dataset(outdir / "sweep.nc")
    assert dataset.risk.dims == ("initial.kappa", "data.delta", "time")
    assert dataset["initial.kappa"].values.tolist() == [0.1, 0.4]
    assert dataset["data.delta"].values.tolist() == [0.3, 0.6]
    assert dataset.status.values.tolist() == [[1, 1], [1, 1]]
    assert dataset.attrs["sweep.task"] == "pde" and dataset.attrs["config.data.dimension"] == "inf"
    for kappa in (0.1, 0.4):
        for delta in (0.3, 0.6):
            direct = _direct(kappa, delta)
            point = dataset.sel({"initial.kappa": kappa, "data.delta": delta})
            np.testing.assert_array_equal(point.time.values, direct.time)
            np.testing.assert_array_equal(point.risk.values, direct.risk)  # deterministic: bit-identical
            np.testing.assert_array_equal(point.mean_r.values, direct.mean_of("r"))
            assert point.final_risk.item() == direct.risk[-1]


def test_equal_configurations_share_a_hash_and_bad_sweeps_are_refused(tmp_path, capsys):
    spec = load_sweep(_sweep_file(tmp_path))
    written_differently = load_sweep(_sweep_file(tmp_path, SWEEP.replace(
        '"data.delta" = {start = 0.3, stop = 0.6, num = 2}', '"data.delta" = [0.3, 0.6000000000000001]')))
    # 0.6000000000000001 is the float linspace gives; the grid is rounded to 12 digits, the list is not
    assert [t.hash for t in sweep_tasks(spec, tmp_path)][0] == sweep_tasks(written_differently, tmp_path)[0].hash
    assert sweep_tasks(spec, tmp_path)[1].hash != sweep_tasks(written_differently, tmp_path)[1].hash
    # a task finished by another version of the package is not taken as finished by this one
    import reduced_pde

    released = reduced_pde.__version__
    try:
        reduced_pde.__version__ = released + ".post1"
        other_version = [t.hash for t in sweep_tasks(spec, tmp_path)]
    finally:
        reduced_pde.__version__ = released
    assert not set(other_version) & {t.hash for t in sweep_tasks(spec, tmp_path)}
    cases = {'"data.delta" = [0.3, 1.5]': "data.delta",
             '"data.delta" = {start = 0.3, stop = 0.6}': "missing ['num']",
             'task = "pde"': "sweep.task = 'fit'",
             '"initial.kappa" = [0.1, 0.4]': "axes.initial.kappa = []"}
    replacements = {'"data.delta" = [0.3, 1.5]': ('"data.delta" = {start = 0.3, stop = 0.6, num = 2}',
                                                 '"data.delta" = [0.3, 1.5]'),
                    '"data.delta" = {start = 0.3, stop = 0.6}': ('"data.delta" = {start = 0.3, stop = 0.6, num = 2}',
                                                                '"data.delta" = {start = 0.3, stop = 0.6}'),
                    'task = "pde"': ('task = "pde"', 'task = "fit"'),
                    '"initial.kappa" = [0.1, 0.4]': ('"initial.kappa" = [0.1, 0.4]', '"initial.kappa" = []')}
    for name, expected in cases.items():
        old, new = replacements[name]
        path = _sweep_file(tmp_path, SWEEP.replace(old, new))
        assert main(["sweep", str(path), "--outdir", str(tmp_path / "bad"), "--quiet"]) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and expected in error, error


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {seconds} s")
        time.sleep(0.2)


def test_sweep_through_a_scheduler_and_two_worker_processes(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on localhost, as a cluster would run them;
    the sweep connects through the scheduler file and the tasks run in the workers' processes."""
    dask = str(Path(sys.executable).with_name("dask"))
    if not Path(dask).exists():
        pytest.skip("the dask command is not installed next to this Python")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    scheduler_file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], env=env, cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for(scheduler_file.exists, 60, "dask scheduler")
        for _ in range(2):  # --no-nanny: the worker computes in the process we started (its pid is known)
            processes.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(scheduler_file),
                                               "--nthreads", "1", "--no-nanny", "--no-dashboard"], env=env,
                                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
        sweep, outdir = _sweep_file(tmp_path), tmp_path / "out"
        assert main(["sweep", str(sweep), "--scheduler", str(scheduler_file), "--outdir", str(outdir),
                     "--quiet"]) == 0
        workers = {p.pid for p in processes[1:]}
        tasks = sweep_tasks(load_sweep(sweep), outdir)
        for task in tasks:
            with h5py.File(task.path, "r") as file:
                assert int(file.attrs["task.pid"]) in workers
        dataset = open_dataset(outdir / "sweep.nc")
        assert dataset.status.values.tolist() == [[1, 1], [1, 1]]
        direct = _direct(0.4, 0.6)
        np.testing.assert_array_equal(dataset.risk.sel({"initial.kappa": 0.4, "data.delta": 0.6}).values,
                                      direct.risk)
    finally:
        for process in processes:  # the processes this test started (SIGKILL: no graceful shutdown to wait for)
            process.kill()
            process.wait()


@pytest.mark.slow  # ~8 s of process start-up; the default suite checks the same LocalCluster path with threads
def test_map_in_processes_runs_on_a_local_cluster_in_job_order():
    """The experiment's SGD seeds go through solvers.controller.map_in_processes: a LocalCluster of 2
    worker processes; results come back in job order whatever order they finish in."""
    import math

    from solvers.controller import map_in_processes

    assert map_in_processes(math.factorial, [7, 3, 5, 1, 4], 2) == [5040, 6, 120, 1, 24]


@pytest.mark.slow  # a real interruption: ~1 minute of process start-up and solves
def test_sweep_killed_halfway_resumes_without_rerunning_finished_tasks(tmp_path):
    """``reduced-pde sweep`` in its own process, killed (SIGKILL, no clean-up) once some task files
    exist; the next invocation skips exactly the finished tasks and completes the dataset."""
    text = SWEEP.replace('"initial.kappa" = [0.1, 0.4]', '"initial.kappa" = [0.1, 0.2, 0.3, 0.4]').replace(
        "pde.rtol=1e-6", "pde.rtol=1e-9").replace("output.t_final=1.0", "output.t_final=10.0")
    sweep, outdir = _sweep_file(tmp_path, text), tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "reduced_pde.cli", "sweep", str(sweep), "--outdir",
                                str(outdir), "--workers", "1", "--quiet"], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: len(list((outdir / "tasks").glob("*.h5"))) >= 2, 300, "two finished tasks")
    finally:
        process.kill()  # the driver; its LocalCluster's worker process dies with it or is left idle
        process.wait()
    finished = {path.stem for path in (outdir / "tasks").glob("*.h5")}
    tasks = sweep_tasks(load_sweep(sweep), outdir)
    assert 2 <= len(finished) < len(tasks) == 8
    report = run_sweep(sweep, outdir, workers=2, processes=False, progress=False, log=lambda line: None)
    assert set(report.skipped) == finished and set(report.ran) == {t.hash for t in tasks} - finished
    assert open_dataset(outdir / "sweep.nc").status.values.all()


def test_resources_of_every_point_are_checked_before_the_sweep_runs(tmp_path, capsys):
    """A point beyond the soft limits (here 1e7 particles at d = ∞: ~4.9 GiB, more than the 4 GiB limit and
    less than this machine's memory) refuses the whole sweep before Dask starts, naming the point and
    --allow-large; with --allow-large, --check admits it; --check runs nothing."""
    path = _sweep_file(tmp_path, SWEEP.replace('"data.delta" = {start = 0.3, stop = 0.6, num = 2}',
                                               '"pde.n_particles" = [1, 10000000]'))
    outdir = tmp_path / "out"
    began = time.perf_counter()
    assert main(["sweep", str(path), "--outdir", str(outdir), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "pde.n_particles = 10000000" in error and "--allow-large" in error, error
    assert not outdir.exists() and time.perf_counter() - began < 30  # refused before any task or cluster
    assert main(["sweep", str(path), "--outdir", str(outdir), "--check"]) == 2
    assert "pde.n_particles = 10000000" in capsys.readouterr().err
    assert main(["sweep", str(path), "--outdir", str(outdir), "--check", "--allow-large"]) == 0
    out = capsys.readouterr().out
    assert "valid; 4 task(s) (pde)" in out and not outdir.exists(), out
