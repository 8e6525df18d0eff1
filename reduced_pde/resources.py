"""Where the package's shipped files and the user's result files are, from any working directory.

* :func:`configs_dir` — the example configurations (``configs/*.toml`` of the repository).  They are
  package data: ``reduced_pde/configs`` is a link to the repository's ``configs/`` and a normal
  install (``pip install .``, editable or not) copies them into the installed package, so notebooks
  and scripts find them without a clone.
* :func:`config_path` — one configuration by name (``"mmn18_quick"`` or ``"mmn18_quick.toml"``).
* :func:`find_results` — the first directory holding result files (``*.h5``) among the places the
  documented commands write them: ``$REDUCED_PDE_RESULTS``, then ``results/<name>`` under the
  working directory and its parents (a notebook started in ``notebooks/`` finds ``../results``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["configs_dir", "config_path", "find_results"]

_PACKAGE = Path(__file__).resolve().parent


def configs_dir() -> Path:
    """The directory of the shipped example configurations (``*.toml``)."""
    for candidate in (Path(__file__).parent / "configs", _PACKAGE.parent / "configs"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    raise FileNotFoundError(f"no configs/ directory next to the package {_PACKAGE} (is the install complete?)")


def config_path(name: str) -> Path:
    """The shipped configuration ``name`` (with or without ``.toml``); ValueError naming the
    available ones if there is none of that name."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"config_path: name must be a non-empty string, got {name!r}")
    directory = configs_dir()
    path = directory / (name if name.endswith(".toml") else f"{name}.toml")
    if not path.is_file():
        available = sorted(p.stem for p in directory.glob("*.toml"))
        raise ValueError(f"config_path: name = {name!r} is not a shipped configuration; allowed: {available}")
    return path


def find_results(names: Sequence[str], start: str | Path | None = None) -> Path | None:
    """The first directory with ``*.h5`` files among ``$REDUCED_PDE_RESULTS`` (itself, or
    ``$REDUCED_PDE_RESULTS/<name>``) and ``results/<name>`` in ``start`` (default: the working
    directory) and each of its parents, for each ``name`` in order (e.g. ``("figure", "quick")``:
    the full MMN18 figure run first, then the Quickstart's).  None if there is none."""
    if isinstance(names, str):
        raise TypeError(f"find_results: names must be a sequence of directory names, got the string {names!r}")
    candidates: list[Path] = []
    environment = os.environ.get("REDUCED_PDE_RESULTS")
    if environment:
        root = Path(environment).expanduser()
        candidates += [root / name for name in names] + [root]
    here = Path(start if start is not None else Path.cwd()).resolve()
    for name in names:
        candidates += [directory / "results" / name for directory in (here, *here.parents)]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.h5")):
            return candidate
    return None
