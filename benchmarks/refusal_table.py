"""Run the hand-written malformed inputs of ``tests/refusal_cases.py`` against the ``reduced-pde``
command line of a checkout, one subprocess per case with a time limit, and print the count of each
outcome (clean refusal, unclear message, traceback, ran, hung, left files).

    python benchmarks/refusal_table.py [--root CHECKOUT] [--timeout SECONDS] [--only SUBSTRING]

``--root`` selects the code under test (default: this checkout), so the same table measures a
branch before and after a change.  The table itself always comes from this checkout.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(HERE))
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    root = Path(args.root).resolve()
    sys.path.insert(0, str(root))           # setups (checkpoints) use the code under test
    sys.path.insert(1, str(HERE / "tests"))
    import refusal_cases as table

    env = {**os.environ, "PYTHONPATH": str(root), "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    counts: collections.Counter[str] = collections.Counter()
    began = time.perf_counter()
    for case in table.CASES:
        if args.only and args.only not in case.name:
            continue
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            try:
                if case.setup is not None:
                    case.setup(tmp)
            except Exception as error:  # the checkout lacks what the setup needs (e.g. an output lock)
                outcome, detail = "ran", f"setup failed: {type(error).__name__}: {error}"
                counts[outcome] += 1
                print(f"{outcome:>10}  {case.name}: {detail}")
                continue
            argv = table.expand(case, tmp)
            before = table.files_under(tmp)
            try:
                proc = subprocess.run([sys.executable, "-m", "reduced_pde.cli", *argv], cwd=root, env=env,
                                      capture_output=True, text=True, timeout=args.timeout)
                status, stderr = proc.returncode, proc.stderr
            except subprocess.TimeoutExpired as expired:
                status = None
                stderr = expired.stderr.decode() if isinstance(expired.stderr, bytes) else (expired.stderr or "")
            finally:
                table.release_held_locks()
            for path in tmp.rglob("*"):  # let TemporaryDirectory clean read-only folders
                if path.is_dir():
                    path.chmod(0o755)
            outcome = table.judge(case, status, stderr, before, table.files_under(tmp))
            counts[outcome] += 1
            last = (stderr.strip().splitlines() or [""])[-1][:160]
            print(f"{outcome:>10}  {case.name}: [{status}] {last}", flush=True)
    total = sum(counts.values())
    print(f"\n{total} cases in {time.perf_counter() - began:.0f} s against {root}: "
          + ", ".join(f"{k} {v}" for k, v in counts.most_common()))


if __name__ == "__main__":
    main()
