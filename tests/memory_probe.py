"""Measure the peak memory of one run and print it next to the estimate of
:mod:`reduced_pde.running.resources` (used by ``tests/test_memory_estimates.py`` in a subprocess).

    python tests/memory_probe.py COMMAND CONFIG.json WARMUP.json

COMMAND is ``pde``, ``sgd`` or ``chaos``; CONFIG the raw configuration (tables) of the measured run,
WARMUP a small run of the same kind, executed first so that compiled kernels, caches and lazily
imported modules are loaded before the measurement.  Printed (one JSON line): ``estimate`` (the
memory demands of the run, bytes), ``traced`` (tracemalloc's peak during the run: every numpy and
Python allocation) and ``resident`` (the growth of the resident set, ``ru_maxrss`` after the run
minus the resident size before it: also what compiled code allocates).
"""

from __future__ import annotations

import json
import resource
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reduced_pde.running.config import parse_config  # noqa: E402
from reduced_pde.running.pipeline import run_pde, run_sgd_seed  # noqa: E402
from reduced_pde.running.resources import demands  # noqa: E402


def _resident() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * resource.getpagesize()


def _run(command: str, config: dict) -> None:
    if command == "pde":
        run_pde(config, progress=False)
    elif command == "sgd":
        run_sgd_seed(config, config["sgd"]["seeds"][0], progress=False)
    else:
        from reduced_pde.running.chaos import run_chaos

        run_chaos(config)


def main() -> None:
    command, measured, warmup = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    _run(command, parse_config(json.loads(warmup.read_text())))
    config = parse_config(json.loads(measured.read_text()))
    estimate = sum(d.amount for d in demands(config, command) if d.kind == "memory")
    before = _resident()
    tracemalloc.start()
    _run(command, config)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    print(json.dumps({"estimate": estimate, "traced": traced, "resident": resident}))


if __name__ == "__main__":
    main()
