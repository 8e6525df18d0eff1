"""The installed package holds every package of the source tree (the tests import the tree itself,
so a sub-package missing from pyproject.toml would only show after `pip install .`)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_installed() -> None:
    with open(ROOT / "pyproject.toml", "rb") as file:
        patterns = tomllib.load(file)["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {".".join(path.parent.relative_to(ROOT).parts)
                for top in ("reduced_pde", "solvers") for path in (ROOT / top).rglob("__init__.py")}
    assert {"reduced_pde.models", "reduced_pde.running", "reduced_pde.analysis"} <= packages
    missing = sorted(p for p in packages if not any(fnmatch.fnmatchcase(p, pattern) for pattern in patterns))
    assert not missing, f"packages not installed by pyproject.toml: {missing}"
