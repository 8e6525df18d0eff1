"""Regenerate the committed figures (figures/*.png) from the current code: one command per figure.

    python benchmarks/regenerate_figures.py --list               # figure -> command, data stored or not
    python benchmarks/regenerate_figures.py                      # redraw every figure whose data is stored
    python benchmarks/regenerate_figures.py --recompute NAME ... # rerun the computation, store its data, redraw
    python benchmarks/regenerate_figures.py --check              # redraw into a temporary directory and
                                                                 # compare pixel by pixel with figures/

Two kinds of entries:

* experiments (``reduced-pde experiment CONFIG``): the HDF5 result files the figures are drawn from are
  stored in ``figures/data/<name>/`` (the PDE file without its full grid density when it holds the
  marginals, which is all the figures read), so redrawing takes seconds and needs no SGD run;
  ``--recompute`` reruns the experiment (its cost is listed) in ``results/regenerate/<name>/`` (kept,
  so an interrupted recompute resumes its SGD seeds from their checkpoints) and replaces the stored files;
* benchmark scripts: the script's own command; ``benchmarks/escape_time_sweep.py --redraw`` redraws
  from ``figures/data/escape_time_scaling/``; the others recompute (their cost is listed).

``--check`` (and ``tests/test_figures.py``) compares a redrawn figure with the committed one: the PNG
records the matplotlib version that drew it; with the same version Agg rendering is deterministic, so
the pixels must be identical; with another version text antialiasing may move glyph edges, and at most
1% of the pixels may differ by more than 0.1 (a changed legend or title changes fewer pixels than
that, so only the same version is a real check — the report says which one was made).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIGURES = ROOT / "figures"
DATA = FIGURES / "data"


@dataclass(frozen=True)
class Experiment:
    """Figures drawn by ``reduced-pde experiment configs/<config>.toml`` (risk.png, law.png)."""

    name: str
    config: str
    cost: str

    @property
    def outputs(self) -> dict[str, str]:
        return {"risk.png": f"{self.name}_risk.png", "law.png": f"{self.name}_law.png"}

    @property
    def data(self) -> Path:
        return DATA / self.name

    def command(self) -> str:
        return (f"python benchmarks/regenerate_figures.py --recompute {self.name}   "
                f"(= reduced-pde experiment configs/{self.config}.toml, files stored slim)")

    def stored(self) -> bool:
        return self.data.is_dir() and any(self.data.glob("*_pde.h5"))

    def redraw(self, outdir: Path) -> list[Path]:
        from reduced_pde.running.pipeline import experiment_figures
        from reduced_pde.running.storage import read_trajectory

        trajectories = [read_trajectory(path) for path in sorted(self.data.glob("*.h5"))]
        with tempfile.TemporaryDirectory() as scratch:
            drawn = experiment_figures(trajectories, scratch)
            out = []
            for path in drawn:
                target = Path(outdir) / self.outputs[path.name]
                shutil.copyfile(path, target)
                out.append(target)
        return out

    def recompute(self) -> None:
        from reduced_pde.running.config import load_config
        from reduced_pde.running.pipeline import run_experiment

        # a kept working directory: an interrupted recompute resumes its SGD seeds from their checkpoints
        work = ROOT / "results" / "regenerate" / self.name
        run_experiment(load_config(ROOT / "configs" / f"{self.config}.toml"), work, processes=2)
        if self.data.exists():
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True)
        for path in sorted(work.glob("*.h5")):
            slim_copy(path, self.data / path.name)


@dataclass(frozen=True)
class Script:
    """Figures drawn by a benchmark script; ``redraw`` is its command that draws from stored data."""

    name: str
    outputs: tuple[str, ...]
    compute: str
    cost: str
    redraw_command: str | None = None
    data: Path | None = None

    def command(self) -> str:
        return self.compute

    def stored(self) -> bool:
        return self.redraw_command is not None and self.data is not None and self.data.is_dir()

    def redraw(self, outdir: Path) -> list[Path]:
        assert self.redraw_command is not None
        target = Path(outdir) / self.outputs[0]
        subprocess.run([sys.executable, *self.redraw_command.split()[1:], "--figure", str(target)], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
        return [target]

    def recompute(self) -> None:
        subprocess.run([sys.executable, *self.compute.split()[1:]], cwd=ROOT, check=True)


@dataclass(frozen=True)
class Command:
    """Figures drawn by a ``reduced-pde`` command from committed datasets (``redraw_args``, with
    ``{out}`` the figure path); ``compute`` is the command sequence that recomputes the datasets."""

    name: str
    outputs: tuple[str, ...]
    compute: str
    cost: str
    redraw_args: tuple[str, ...]
    data: tuple[Path, ...] = ()

    def command(self) -> str:
        return self.compute

    def stored(self) -> bool:
        return bool(self.data) and all(path.exists() for path in self.data)

    def redraw(self, outdir: Path) -> list[Path]:
        target = Path(outdir) / self.outputs[0]
        subprocess.run([sys.executable, "-m", "reduced_pde.cli",
                        *(arg.format(out=target) for arg in self.redraw_args)],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return [target]

    def recompute(self) -> None:
        for line in self.compute.split(" && "):
            subprocess.run([sys.executable, "-m", "reduced_pde.cli", *line.split()[1:]], cwd=ROOT, check=True)


ENTRIES: tuple[Experiment | Script | Command, ...] = (
    Experiment("relu_single_index", "relu_single_index", "~15 s (2 cores), ~90 s loaded"),
    Experiment("multi_index", "multi_index", "~15 s"),
    Experiment("sphere_he4", "sphere_he4", "~30 s"),
    Experiment("anisotropic_mixture", "anisotropic_mixture", "~6 min"),
    Experiment("relu_single_index_inf", "relu_single_index_inf", "~4 min"),
    Experiment("mmn18", "mmn18_figure", "~20 min (6 SGD runs)"),
    Script("escape_time_scaling", ("escape_time_scaling.png",), "python benchmarks/escape_time_sweep.py",
           "~4 min", "python benchmarks/escape_time_sweep.py --redraw", DATA / "escape_time_scaling"),
    Script("epsilon_sweep", ("epsilon_sweep.png",), "python benchmarks/epsilon_sweep.py", "~10 min"),
    Script("noise_gibbs", ("noise_gibbs.png",), "python benchmarks/noise_gibbs_figure.py", "~2 min"),
    Script("sphere_gibbs", ("sphere_gibbs.png",), "python benchmarks/sphere_gibbs_figure.py", "~15 s"),
    Script("plateau_sgd", ("bmz_sgd_plateaus.png", "sphere_escape_he3_plateaus.png"),
           "python benchmarks/plateau_sgd_validation.py", "~25 min"),
    Command("mmn18_phase_diagram", ("mmn18_phase_diagram.png",),
            "reduced-pde sweep configs/sweeps/mmn18_phase.toml --outdir results/mmn18_phase && "
            "reduced-pde sweep configs/sweeps/mmn18_phase_sgd.toml --outdir results/mmn18_phase_sgd",
            "~14 min reduced + ~12 min SGD (then copy the two sweep.nc files to figures/data/)",
            ("phase-diagram", "figures/data/mmn18_phase.nc", "--sgd", "figures/data/mmn18_phase_sgd.nc",
             "--level", "2", "-o", "{out}"),
            (DATA / "mmn18_phase.nc", DATA / "mmn18_phase_sgd.nc")),
    Command("bmz_plateau_times", ("bmz_plateau_times.png",),
            "reduced-pde sweep configs/sweeps/bmz_plateau_times.toml --outdir results/bmz_plateau_times && "
            "reduced-pde sweep configs/sweeps/bmz_plateau_times_sgd.toml --outdir results/bmz_plateau_times_sgd",
            "~50 min reduced + ~12 min SGD (then copy the two sweep.nc files to figures/data/)",
            ("phase-diagram", "figures/data/bmz_plateau_times.nc", "--sgd", "figures/data/bmz_plateau_times_sgd.nc",
             "-o", "{out}"),
            (DATA / "bmz_plateau_times.nc", DATA / "bmz_plateau_times_sgd.nc")),
    Command("chaos_sphere_he4", ("chaos_sphere_he4.png",),
            "reduced-pde chaos configs/chaos_sphere_he4.toml -o results/chaos_sphere_he4.h5 "
            "--figure figures/chaos_sphere_he4.png", "~17 min", ()),
    Command("chaos_sphere_circle", ("chaos_sphere_circle.png",),
            "reduced-pde chaos configs/chaos_sphere_circle.toml -o results/chaos_sphere_circle.h5 "
            "--figure figures/chaos_sphere_circle.png", "~18 min", ()),
    Command("chaos_mmn18", ("chaos_mmn18.png",),
            "reduced-pde chaos configs/chaos_mmn18.toml -o results/chaos_mmn18.h5 "
            "--figure figures/chaos_mmn18.png", "~8 min at load ~11", ()),
)


def slim_copy(source: Path, target: Path) -> None:
    """Copy a result file, leaving out ``fields/density`` when the file also holds the marginals
    ``fields/marginal_*`` (a 3-D density is tens of MB; the figures read the marginals only)."""
    import h5py

    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for name in src:
            fields = src[name]
            if name != "fields" or "density" not in fields or not any(k.startswith("marginal_") for k in fields):
                src.copy(fields, dst, name=name)
                continue
            group = dst.create_group(name)
            for key, value in fields.attrs.items():
                group.attrs[key] = value
            for key in fields:
                if key != "density":
                    src.copy(fields[key], group, name=key)


def compare_png(drawn: Path, committed: Path) -> tuple[bool, str]:
    """(equal, report): identical pixels when the committed PNG was drawn by this matplotlib version,
    else at most 1% of the pixels off by more than 0.1 (see the module docstring)."""
    import matplotlib
    import numpy as np
    from matplotlib import image
    from PIL import Image

    if not committed.exists():
        return False, f"{committed.name}: not committed"
    a, b = image.imread(drawn), image.imread(committed)
    if a.shape != b.shape:
        return False, f"{committed.name}: size {a.shape[:2]} drawn, {b.shape[:2]} committed"
    with Image.open(committed) as png:
        software = png.info.get("Software", "")
    off = float(np.mean(np.max(np.abs(a.astype(float) - b.astype(float)), axis=-1) > 0.1))
    if f"Matplotlib version{matplotlib.__version__}" in software:
        equal = bool(np.array_equal(a, b))
        return equal, f"{committed.name}: {'identical' if equal else f'differs ({off:.3%} of pixels)'} (same matplotlib)"
    return off <= 0.01, (f"{committed.name}: {off:.3%} of pixels differ (committed by '{software}', "
                         f"drawn by {matplotlib.__version__}: tolerance 1%)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list figure -> command and stop")
    parser.add_argument("--recompute", nargs="+", metavar="NAME", help="rerun these computations, then redraw")
    parser.add_argument("--check", action="store_true", help="redraw into a temporary directory and compare")
    parser.add_argument("names", nargs="*", help="entries to redraw/check (default: all with stored data)")
    args = parser.parse_args()
    by_name = {entry.name: entry for entry in ENTRIES}
    unknown = [n for n in (args.names or []) + (args.recompute or []) if n not in by_name]
    if unknown:
        parser.error(f"unknown figure entries {unknown}; allowed: {sorted(by_name)}")
    if args.list:
        for entry in ENTRIES:
            status = "data stored: redraw" if entry.stored() else "no stored data: recompute"
            outputs = entry.outputs.values() if isinstance(entry, Experiment) else entry.outputs
            print(f"{entry.name}: {', '.join(outputs)}\n    {entry.command()}   ({entry.cost}; {status})")
        return 0
    for name in args.recompute or []:
        print(f"recomputing {name}: {by_name[name].command()}")
        by_name[name].recompute()
    chosen = [by_name[n] for n in (args.names or args.recompute or [])] or [e for e in ENTRIES if e.stored()]
    failures = 0
    with tempfile.TemporaryDirectory() as scratch:
        for entry in chosen:
            if not entry.stored():
                print(f"{entry.name}: no stored data (recompute: {entry.command()})")
                failures += args.check
                continue
            drawn = entry.redraw(Path(scratch) if args.check else FIGURES)
            for path in drawn:
                if args.check:
                    equal, report = compare_png(path, FIGURES / path.name)
                    failures += not equal
                    print(("ok    " if equal else "FAIL  ") + report)
                else:
                    print(f"wrote {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
