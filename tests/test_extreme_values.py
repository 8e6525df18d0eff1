"""Every numeric configuration key of every registered model, through every command that takes a
configuration, set to extreme and ill-typed values (issue 12).

The keys are enumerated from the schemas (:func:`reduced_pde.running.config.schema_of` of each model in
the registry, and the keys of the ``[activation]`` table of the model's base configuration), so a new
key or a new model is covered without editing this file (a new model needs a base configuration in
``BASES``, which the first test checks).  A key is *numeric* when its own check accepts a number (or
a list of numbers).  Each value runs ``reduced-pde COMMAND BASE --check --set table.key=VALUE`` in this
process (several hundred cases: a subprocess each would take minutes) and must give either

* exit status 2, one or two lines on stderr naming the key, no traceback, no Python warning, no file; or
* exit status 0 (``--check`` passed) for a value that is genuinely valid — never for 1e300, -1e300,
  1e-300 or nan (outside the parameter range 0 or 1e-50 <= |x| <= 1e50 of every real key), nor inf
  except where the key documents "inf" (a dimension, β), and only if the key's own check accepts it.

A short sample runs as real subprocesses (the console entry, interpreter warnings included).
"""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import tomllib
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from reduced_pde.cli import main
from reduced_pde.models import BUILTIN, get_model, model_names
from reduced_pde.models.base import Table
from reduced_pde.running.config import schema_of

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

#: per model: (command, base configuration) pairs; together they cover pde (finite volumes and
#: characteristics), sgd, gibbs, chaos and experiment
BASES = {
    "isotropic_gaussian_mixture": [("pde", "mmn18_pde"), ("pde", "mmn18_quick"), ("sgd", "mmn18_quick"),
                                   ("gibbs", "mmn18_noise"), ("experiment", "mmn18_quick"), ("chaos", "chaos_mmn18")],
    "single_index": [("pde", "relu_single_index"), ("sgd", "relu_single_index")],
    "single_index_sphere": [("pde", "bmz_plateaus"), ("sgd", "sphere_he2_noise"), ("chaos", "chaos_sphere_he4")],
    "multi_index": [("pde", "multi_index"), ("sgd", "multi_index")],
    "anisotropic_gaussian_mixture": [("pde", "anisotropic_mixture"), ("sgd", "anisotropic_mixture")],
    "circle_sphere": [("pde", "chaos_sphere_circle"), ("chaos", "chaos_sphere_circle")],
}
#: the values: TOML text of --set
VALUES = ["1e300", "-1e300", "1e-300", "0", "-1", str(2**63), "nan", "inf", '"x"', "true", "[1]", "{}"]
#: never valid for a real key (outside 0 or [1e-50, 1e50]), nor for an integer one
NEVER = {"1e300", "-1e300", "1e-300", "nan"}
#: tables of one command only
ONLY = {"sgd": {"sgd"}, "chaos": {"chaos"}}


def _numeric(field: str, check) -> bool:
    for probe in (1.0, 1, [1.0], [1]):
        try:
            check(field, probe)
            return True
        except (ValueError, TypeError):
            continue
    return False


def numeric_keys(model_name: str, base: dict) -> list[tuple[str, object]]:
    """(field, check or None) of every numeric key of the model's schema (and of the base's tables
    checked as a whole: their number-valued keys)."""
    out = []
    for table, keys in schema_of(get_model(model_name)).items():
        if isinstance(keys, Table):
            given = {**keys.default, **base.get(table, {})}
            out += [(f"{table}.{name}", None) for name, value in given.items()
                    if (isinstance(value, (int, float)) and not isinstance(value, bool))
                    or (isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value))]
            continue
        out += [(f"{table}.{name}", key.check) for name, key in keys.items() if _numeric(f"{table}.{name}", key.check)]
    return out


def _cases(command: str, model_name: str, base_name: str) -> list[tuple[str, object]]:
    base = tomllib.loads((CONFIGS / f"{base_name}.toml").read_text())
    keys = numeric_keys(model_name, base)
    return [(field, check) for field, check in keys
            if field.split(".")[0] not in {t for c, tables in ONLY.items() if c != command for t in tables}]


def _run(argv: list[str]) -> tuple[int, str, list[str]]:
    err, out = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught, redirect_stderr(err), redirect_stdout(out):
        warnings.simplefilter("always")
        try:
            status = main(argv)
        except SystemExit as stop:
            status = int(stop.code) if isinstance(stop.code, int) else 1
    return status, err.getvalue(), [str(w.message) for w in caught]


def _judge(field: str, check, value: str, status: int, stderr: str, caught: list[str]) -> str | None:
    """None when the outcome is clean (module docstring), else what is wrong."""
    if "Traceback" in stderr or "Warning" in stderr or caught:
        return f"traceback or warning: {stderr!r} {caught}"
    if status == 2:
        lines = stderr.strip().splitlines()
        if not 1 <= len(lines) <= 2 or field not in stderr:
            return f"refused without naming {field} in one or two lines: {stderr!r}"
        return None
    if status != 0:
        return f"status {status}: {stderr!r}"
    if value in NEVER:
        return "accepted a value outside every key's range"
    parsed = tomllib.loads(f"v = {value}")["v"]
    if check is not None:
        try:
            accepted = check(field, parsed)
        except (ValueError, TypeError) as error:
            return f"--check passed a value the key's own check refuses ({error})"
        if isinstance(accepted, float) and math.isinf(accepted) and "inf" not in str(check.__doc__ or "") \
                and value == "inf" and "dimension" not in field and "beta" not in field:
            return "accepted inf"
    elif value == "inf":
        return "accepted inf in a table checked as a whole"
    return None


def test_every_model_has_a_base_configuration() -> None:
    # the package's models, not those a test module registers when it is collected (test_model_registry)
    builtin = sorted(name for name in model_names() if type(get_model(name)).__module__ in BUILTIN)
    assert sorted(BASES) == builtin, "add the new model's base configurations to BASES"


def _walk(model_name: str, pairs: list[tuple[str, str]], tmp_path: Path, tables: set[str] | None) -> None:
    """Every numeric key (of ``tables`` only, or all) of ``model_name`` through each (command, base)."""
    failures, counts = [], {"refused": 0, "valid": 0}
    for command, base_name in pairs:
        cases = [(field, check) for field, check in _cases(command, model_name, base_name)
                 if tables is None or (field.split(".")[0] in RUN_TABLES) == ("run" in tables)]
        assert cases, (command, base_name)
        out = tmp_path / ("exp" if command == "experiment" else "out.h5")
        target = ["--outdir", str(out)] if command == "experiment" else ["-o", str(out)]
        for field, check in cases:
            for value in VALUES:
                argv = [command, str(CONFIGS / f"{base_name}.toml"), *target, "--check", "--quiet",
                        "--set", f"{field}={value}"]
                status, stderr, caught = _run(argv)
                problem = _judge(field, check, value, status, stderr, caught)
                if list(tmp_path.iterdir()):
                    problem = (problem or "") + f" left files {sorted(p.name for p in tmp_path.iterdir())}"
                if problem:
                    failures.append(f"{command} {base_name} {field}={value}: {problem}")
                counts["refused" if status == 2 else "valid"] += 1
    assert not failures, "\n".join(failures[:40]) + f"\n({len(failures)} failures)"
    assert counts["refused"] >= 3 * counts["valid"], counts  # the walk reached the checks (one key: 9 of 12)


#: the tables every model shares (config.RUN_SCHEMA): walked once per command, on the cheapest base
RUN_TABLES = {"schedule", "output", "pde", "noise", "sgd", "chaos"}
#: per command, the base whose run tables are walked (default suite)
RUN_BASES = [("isotropic_gaussian_mixture", "pde", "mmn18_pde"), ("isotropic_gaussian_mixture", "pde", "mmn18_quick"),
             ("isotropic_gaussian_mixture", "sgd", "mmn18_quick"), ("isotropic_gaussian_mixture", "gibbs", "mmn18_noise"),
             ("isotropic_gaussian_mixture", "experiment", "mmn18_quick"),
             ("single_index_sphere", "chaos", "chaos_sphere_he4")]


@pytest.mark.parametrize("model_name", sorted(BASES))
def test_extreme_values_of_every_model_key_are_refused_cleanly(model_name: str, tmp_path: Path) -> None:
    """The model's own keys ([data], [activation], [initial], [network], [reduction]) through its first
    base (a pde run)."""
    _walk(model_name, BASES[model_name][:1], tmp_path, {"model"})


@pytest.mark.parametrize("model_name, command, base", RUN_BASES, ids=[f"{c}-{b}" for _, c, b in RUN_BASES])
def test_extreme_values_of_every_run_key_are_refused_cleanly(model_name: str, command: str, base: str,
                                                             tmp_path: Path) -> None:
    """The shared run tables through every command that takes a configuration."""
    _walk(model_name, [(command, base)], tmp_path, {"run"})


@pytest.mark.slow
@pytest.mark.parametrize("model_name", sorted(BASES))
def test_extreme_values_every_key_every_base(model_name: str, tmp_path: Path) -> None:
    """The full product: every numeric key of the model through every (command, base) of ``BASES``."""
    _walk(model_name, BASES[model_name], tmp_path, None)


SAMPLE = [("pde", "mmn18_pde", "initial.kappa=1e300"), ("sgd", "relu_single_index", "data.second_layer=1e300")]


@pytest.mark.parametrize("command, base, setting", SAMPLE)
def test_sample_as_subprocess(command: str, base: str, setting: str, tmp_path: Path) -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "reduced_pde.cli", command, str(CONFIGS / f"{base}.toml"),
                           "-o", str(tmp_path / "out.h5"), "--set", setting, "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    field = setting.split("=")[0]
    assert proc.returncode == 2, proc.stderr
    assert field in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
