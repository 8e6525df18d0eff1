"""First-run (empty numba cache) and cached-run wall times of the documented commands, in one run:

    python benchmarks/first_run_times.py [--keep]

Copies the source tree (without any ``__pycache__``, so every ``@njit(cache=True)`` kernel compiles) to
a temporary directory and runs each command there twice: the first run compiles and writes numba's
cache, the second must load everything from it.  numba reports each kernel compiled (not loaded) in
a run when ``NUMBA_DEBUG_CACHE=1``; the second run's count of "index saved" lines is printed
(0: nothing recompiled).  Threads: OPENBLAS_NUM_THREADS = NUMBA_NUM_THREADS = 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = [
    ("reduced-pde pde configs/mmn18_pde.toml (finite volumes, 1600 cells, t <= 100)",
     ["pde", "configs/mmn18_pde.toml", "-o", "{out}/mmn18_pde.h5"]),
    ("reduced-pde pde configs/mmn18_quick.toml (characteristics, 800 particles, t <= 10)",
     ["pde", "configs/mmn18_quick.toml", "-o", "{out}/mmn18_quick.h5"]),
    ("reduced-pde pde configs/sphere_he4.toml (finite volumes, 400 cells)",
     ["pde", "configs/sphere_he4.toml", "-o", "{out}/sphere_he4.h5"]),
    ("reduced-pde sgd configs/sphere_he4.toml --seed 0 (N = 1000, 30000 steps)",
     ["sgd", "configs/sphere_he4.toml", "-o", "{out}/sphere_he4_sgd.h5", "--seed", "0"]),
]


def run(tree: Path, arguments: list[str], out: Path) -> tuple[float, int, int]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "NUMBA_DEBUG_CACHE": "1",
           "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "reduced_pde.cli"] + [a.format(out=out) for a in arguments] + ["--quiet"]
    began = time.perf_counter()
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    saved = result.stdout.count("index saved") + result.stderr.count("index saved")
    return wall, saved, result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary tree")
    args = parser.parse_args()
    tree = Path(tempfile.mkdtemp(prefix="reduced_pde_first_run_"))
    for part in ("reduced_pde", "solvers", "configs"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
    out = tree / "results"
    out.mkdir()
    print(f"{'command':<86} {'first [s]':>9} {'cached [s]':>10} {'kernels compiled on 2nd run':>27}")
    try:
        for label, arguments in COMMANDS:
            first, _, status = run(tree, arguments, out)
            second, saved, status2 = run(tree, arguments, out)
            flag = "" if status == status2 == 0 else f"  (exit status {status}, {status2})"
            print(f"{label:<86} {first:9.1f} {second:10.1f} {saved:27d}{flag}")
    finally:
        if not args.keep:
            shutil.rmtree(tree)


if __name__ == "__main__":
    main()
