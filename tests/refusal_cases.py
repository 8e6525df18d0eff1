"""A table of hand-written malformed inputs for the ``reduced-pde`` command line (issue 12), shared by
``tests/test_fuzz_inputs.py`` (in-process) and ``benchmarks/refusal_table.py`` (one subprocess per
case, with a time limit, against any checkout: the before/after count).

Each :class:`Case` is a command line with placeholders (``{P}``, ``{Q}``, ``{R}``: the repository's
configurations ``mmn18_pde``, ``mmn18_quick``, ``relu_single_index``; ``{tmp}``: a fresh folder;
``{small}``: a small fast configuration written there), an optional ``setup(tmp)`` that prepares
files (damaged checkpoints, read-only folders, a held lock), the words the message must contain
(the field it names), and the exit status expected.  A case is *refused cleanly* when the command
exits with that status, prints no traceback, prints at most two lines on stderr that contain every
expected word, and leaves no new file in ``{tmp}``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: a small configuration that runs in about a second (characteristics, 40 particles; SGD N = 40, d = 20)
SMALL = """
[data]
delta = 0.5
dimension = 20
[initial]
kappa = 0.4
[output]
t_final = 1.0
n_outputs = 5
t_first = 0.1
[pde]
solver = "lagrangian"
n_particles = 40
[sgd]
n_neurons = 40
step_size = 1e-3
batch_size = 4
seeds = [0]
"""


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    expect: tuple[str, ...]
    status: int = 2
    setup: Callable[[Path], None] | None = field(default=None, compare=False)


def _write_small(tmp: Path, extra: str = "") -> Path:
    path = tmp / "small.toml"
    path.write_text(SMALL + extra)
    return path


def _make_checkpoint(tmp: Path, command: str, overrides: tuple[str, ...] = (), seed: int = 0) -> Path:
    """Run the small configuration with a checkpoint kept (the pipeline saves one after the last
    output), as the interrupted run it stands for; returns the checkpoint's path."""
    from reduced_pde.running.config import load_config
    from reduced_pde.running.pipeline import checkpoint_path, run_pde, run_sgd_seed

    config = load_config(_write_small(tmp), list(overrides))
    path = checkpoint_path(tmp / "out.h5")
    if command == "pde":
        run_pde(config, checkpoint=path, progress=False)
    else:
        run_sgd_seed(config, seed, checkpoint=path, progress=False)
    return path


def _flip_bytes(path: Path, where: str) -> None:
    """Flip bytes of ``path``: ``header`` (the HDF5 signature), ``tail`` (raw data near the end) or
    ``state`` (inside the stored weights / positions: the largest dataset of /state)."""
    import h5py

    data = bytearray(path.read_bytes())
    if where == "header":
        for i in range(0, 8):
            data[i] ^= 0xFF
    elif where == "state":
        with h5py.File(path, "r") as file:
            name = max(file["state"], key=lambda k: file["state"][k].size)
            offset = file["state"][name].id.get_offset()
            size = file["state"][name].id.get_storage_size()
        assert offset is not None, "the state dataset is not contiguous"
        i = offset + size // 2
        data[i] ^= 0x40
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_next_output(path: Path, value: int) -> None:
    import h5py

    with h5py.File(path, "r+") as file:
        file.attrs["next_output"] = value


def _checkpoint_setup(command: str, damage: Callable[[Path], None] | None = None,
                      overrides: tuple[str, ...] = ()) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = _make_checkpoint(tmp, command, overrides)
        if damage is not None:
            damage(path)

    return setup


def _a_directory(tmp: Path) -> None:
    (tmp / "out.h5").mkdir()


def _a_file(tmp: Path, name: str = "afile") -> None:
    (tmp / name).write_text("not a folder\n")


def _garbage_h5(tmp: Path) -> None:
    (tmp / "garbage.h5").write_bytes(os.urandom(2048))


def _latin1_config(tmp: Path) -> None:
    (tmp / "latin1.toml").write_bytes("[data]\ndelta = 0.5 # \xe9\n".encode("latin-1"))


def _small_only(tmp: Path) -> None:
    _write_small(tmp)


def _a_pipe(tmp: Path) -> None:
    """A named pipe as the output (stands for /dev/null, which a test must not risk replacing)."""
    _write_small(tmp)
    os.mkfifo(tmp / "pipe")


HELD_LOCKS: list[int] = []


def _held_lock(tmp: Path) -> None:
    """Another run holds the lock of ``tmp/out.h5`` (this process keeps the descriptor open)."""
    from reduced_pde.running.storage import OutputLock

    _write_small(tmp)
    lock = OutputLock(tmp / "out.h5")
    lock.acquire()
    HELD_LOCKS.append(lock)  # type: ignore[arg-type]


def release_held_locks() -> None:
    while HELD_LOCKS:
        HELD_LOCKS.pop().release()  # type: ignore[attr-defined]


def _c(name: str, argv: str, *expect: str, status: int = 2, setup: Callable[[Path], None] | None = None) -> Case:
    return Case(name, tuple(argv.split()), tuple(expect), status, setup)


O = "-o {tmp}/out.h5"
CASES: list[Case] = [
    # ran and wrote a wrong file
    _c("sgd step larger than the output interval", f"sgd {{Q}} {O} --set sgd.step_size=1e6", "sgd.step_size"),
    _c("grid upper 1e300", f"pde {{P}} {O} --set grid.r.upper=1e300", "grid.r"),
    _c("mistyped --set key", f"pde {{P}} {O} --set output.t_finale=3", "t_finale"),
    _c("mistyped --set table", f"pde {{P}} {O} --set outptu.t_final=3", "outptu"),
    # hung
    _c("sgd step 1e-300", f"sgd {{Q}} {O} --set sgd.step_size=1e-300", "sgd.step_size"),
    _c("pde t_final 1e300", f"pde {{P}} {O} --set output.t_final=1e300", "output.t_final"),
    _c("sgd t_final 1e300", f"sgd {{Q}} {O} --set output.t_final=1e300", "output.t_final"),
    _c("lagrangian t_final 1e300", f"pde {{Q}} {O} --set output.t_final=1e300", "output.t_final"),
    _c("xi0 1e12", f"pde {{P}} {O} --set schedule.xi0=1e12", "schedule.xi0"),
    _c("n_outputs 1e7", f"pde {{P}} {O} --set output.n_outputs=10000000", "output.n_outputs"),
    # tracebacks: lists where a name is expected
    _c("scheme list", f"pde {{P}} {O} --set pde.scheme=[\"muscl\"]", "pde.scheme"),
    _c("solver list", f"pde {{P}} {O} --set pde.solver=[\"lagrangian\"]", "pde.solver"),
    _c("kernel list", f"pde {{P}} {O} --set pde.kernel=[\"dense\"]", "pde.kernel"),
    _c("time_stepping list", f"pde {{P}} {O} --set pde.time_stepping=[\"auto\"]", "pde.time_stepping"),
    _c("spacing list", f"pde {{P}} {O} --set output.spacing=[\"log\"]", "output.spacing"),
    _c("model list", f"pde {{P}} {O} --set data.model=[\"single_index\"]", "data.model"),
    _c("activation name list", f"pde {{P}} {O} --set activation.name=[\"relu\"]", "activation"),
    _c("dimension 1e300", f"pde {{P}} {O} --set data.dimension=1e300", "data.dimension"),
    _c("xi0 inf", f"pde {{P}} {O} --set schedule.xi0=inf", "schedule.xi0"),
    _c("cfl 1e-300", f"pde {{P}} {O} --set pde.cfl=1e-300", "pde.cfl"),
    _c("second layer rate inf", f"pde {{R}} {O} --set network.second_layer_rate=inf", "network.second_layer_rate"),
    # huge sizes
    _c("cells 1e11", f"pde {{P}} {O} --set grid.r.cells=100000000000", "grid"),
    _c("hermite degree 1e8", f"pde {{P}} {O} --set reduction.hermite_degree=100000000", "reduction.hermite_degree"),
    _c("dense kernel 200000 cells", f"pde {{P}} {O} --set pde.kernel=\"dense\" --set grid.r.cells=200000",
       "pde.kernel"),
    _c("particles 1e10", f"pde {{Q}} {O} --set pde.n_particles=10000000000", "pde.n_particles"),
    _c("neurons 1e10", f"sgd {{Q}} {O} --set sgd.n_neurons=10000000000", "sgd.n_neurons"),
    _c("batch 1e10", f"sgd {{Q}} {O} --set sgd.batch_size=10000000000", "sgd.batch_size"),
    _c("sgd dimension 1e10", f"sgd {{Q}} {O} --set data.dimension=10000000000", "data.dimension"),
    _c("3-D grid 1e12 cells", f"pde {{R}} {O} --set grid.a.cells=10000 --set grid.s.cells=10000 "
       "--set grid.r.cells=10000", "grid"),
    _c("sgd 7.5 GiB weights", f"sgd {{Q}} {O} --set sgd.n_neurons=1000000 --set data.dimension=1000", "sgd"),
    # output paths
    # (root writes into a 0o555 folder, so the read-only case is a folder of a read-only file system)
    _c("read-only output folder", "pde {small} -o /proc/reduced-pde-test/out.h5", "output", setup=_small_only),
    _c("output is a directory", f"pde {{small}} {O}", "output", setup=_a_directory),
    _c("file as output parent", "pde {small} -o {tmp}/afile/out.h5", "output", setup=_a_file),
    _c("sgd file as output parent", "sgd {small} -o {tmp}/afile/out.h5", "output", setup=_a_file),
    _c("gibbs file as output parent", "gibbs {P} -o {tmp}/afile/out.h5 --betas 10", "output", setup=_a_file),
    _c("config is a directory", f"pde {{tmp}} {O}", "configuration"),
    _c("config missing", f"pde {{tmp}}/nothere.toml {O}", "nothere.toml"),
    _c("config not utf-8", f"pde {{tmp}}/latin1.toml {O}", "latin1.toml", setup=_latin1_config),
    _c("experiment outdir is a file", "experiment {small} --outdir {tmp}/afile", "outdir", setup=_a_file),
    _c("plot missing file", "plot {tmp}/missing.h5 -o {tmp}/risk.png", "missing.h5"),
    _c("plot garbage file", "plot {tmp}/garbage.h5 -o {tmp}/risk.png", "garbage.h5", setup=_garbage_h5),
    _c("plot a TOML file", "plot {P} -o {tmp}/risk.png", "mmn18_pde.toml"),
    _c("law missing file", "law {tmp}/missing.h5 --times 0 -o {tmp}/law.png", "missing.h5"),
    _c("law garbage file", "law {tmp}/garbage.h5 --times 0 -o {tmp}/law.png", "garbage.h5", setup=_garbage_h5),
    _c("plateaus a TOML file", "plateaus {P} -o {tmp}/p.png", "mmn18_pde.toml"),
    _c("plateaus garbage", "plateaus {tmp}/garbage.h5 -o {tmp}/p.png", "garbage.h5", setup=_garbage_h5),
    _c("plot output in a file", "plot {P} -o {tmp}/afile/risk.png", "afile", setup=_a_file),
    # unclear messages
    _c("xi0 'half'", f"pde {{P}} {O} --set schedule.xi0=half", "schedule.xi0"),
    _c("grid upper inf", f"pde {{P}} {O} --set grid.r.upper=inf", "grid.r.upper"),
    # checkpoints
    _c("truncated checkpoint", f"pde {{small}} {O} --resume", "checkpoint", setup=_checkpoint_setup("pde", _truncate)),
    _c("flipped checkpoint header", f"pde {{small}} {O} --resume", "checkpoint",
       setup=_checkpoint_setup("pde", lambda p: _flip_bytes(p, "header"))),
    _c("flipped lagrangian state", f"pde {{small}} {O} --resume", "checkpoint",
       setup=_checkpoint_setup("pde", lambda p: _flip_bytes(p, "state"))),
    _c("flipped sgd state", f"sgd {{small}} {O} --resume", "checkpoint",
       setup=_checkpoint_setup("sgd", lambda p: _flip_bytes(p, "state"))),
    _c("edited next_output (fewer)", f"pde {{small}} {O} --resume", "checkpoint",
       setup=_checkpoint_setup("pde", lambda p: _edit_next_output(p, 2))),
    _c("edited next_output (more)", f"sgd {{small}} {O} --resume", "checkpoint",
       setup=_checkpoint_setup("sgd", lambda p: _edit_next_output(p, 9))),
    _c("resume with changed delta", f"pde {{small}} {O} --resume --set data.delta=0.3", "data.delta",
       setup=_checkpoint_setup("pde")),
    _c("resume with changed kappa", f"sgd {{small}} {O} --resume --set initial.kappa=0.3", "initial.kappa",
       setup=_checkpoint_setup("sgd")),
    _c("resume with changed seed", f"sgd {{small}} {O} --resume --seed 5", "sgd.seeds",
       setup=_checkpoint_setup("sgd")),
    _c("resume without checkpoint", f"pde {{small}} {O} --resume", "checkpoint", setup=_small_only),
    _c("second run on a locked output", f"pde {{small}} {O}", "another run", setup=_held_lock),
    # more values a user can type
    _c("n_outputs 0", f"pde {{P}} {O} --set output.n_outputs=0", "output.n_outputs"),
    _c("n_outputs float", f"pde {{P}} {O} --set output.n_outputs=10.5", "output.n_outputs"),
    _c("t_first after t_final", f"pde {{P}} {O} --set output.t_first=200.0", "output.t_first"),
    _c("delta 1", f"pde {{P}} {O} --set data.delta=1.0", "data.delta"),
    _c("delta nan", f"pde {{P}} {O} --set data.delta=nan", "data.delta"),
    _c("kappa inf", f"pde {{P}} {O} --set initial.kappa=inf", "initial.kappa"),
    _c("kappa bool", f"pde {{P}} {O} --set initial.kappa=true", "initial.kappa"),
    _c("unknown activation", f"pde {{P}} {O} --set activation.name=\"swish\"", "activation"),
    _c("seeds negative", f"sgd {{Q}} {O} --set sgd.seeds=[-1]", "sgd.seeds"),
    _c("--seed negative", f"sgd {{small}} {O} --seed -3", "seed"),
    _c("--seed past 64 bits", f"sgd {{small}} {O} --seed 99999999999999999999", "seed", setup=_small_only),
    _c("output a named pipe (like /dev/null)", "pde {small} -o {tmp}/pipe", "output", "regular file",
       setup=_a_pipe),
    _c("phase-diagram on a configuration file", "phase-diagram {P} -o {tmp}/pd.png", "sweep dataset", "netCDF"),
    _c("output ending with a separator", "pde {small} -o {tmp}/newdir/", "output", "separator",
       setup=_small_only),
    _c("batch 0", f"sgd {{Q}} {O} --set sgd.batch_size=0", "sgd.batch_size"),
    _c("rtol tiny", f"pde {{Q}} {O} --set pde.rtol=1e-20", "pde.rtol"),
    _c("--checkpoint-every nan", f"pde {{small}} {O} --checkpoint-every nan", "checkpoint-every"),
    _c("--checkpoint-every negative", f"pde {{small}} {O} --checkpoint-every -5", "checkpoint-every"),
    _c("experiment processes 0", "experiment {small} --outdir {tmp}/exp --processes 0", "processes"),
    _c("law times nan", "law {tmp}/missing.h5 --times nan -o {tmp}/law.png", "times"),
    _c("plateaus threshold nan", "plateaus {tmp}/missing.h5 --threshold nan", "threshold"),
    _c("gibbs on a particle configuration", "gibbs {small} -o {tmp}/g.h5", "pde.solver", setup=_small_only),
    _c("gibbs without noise", "gibbs {P} -o {tmp}/g.h5", "beta"),
    _c("gibbs betas negative", "gibbs {small} -o {tmp}/g.h5 --betas -1", "beta", setup=_small_only),
    _c("sweep key unknown", f"pde {{P}} {O} --set sweep.\"initial.kapa\"=[0.1]", "initial.kapa"),
    _c("set without value", f"pde {{P}} {O} --set output.t_final", "output.t_final"),
    _c("grid axis not a table", f"pde {{P}} {O} --set grid.r=3", "grid.r"),
    _c("grid lower > upper", f"pde {{P}} {O} --set grid.r.lower=5.0", "grid.r"),
    _c("noise at d = inf", f"pde {{P}} {O} --set data.dimension=\"inf\" --set noise.beta=10.0", "noise"),
    _c("t_final nan", f"pde {{P}} {O} --set output.t_final=nan", "output.t_final"),
    _c("escape-times level 2", "escape-times -k 3 -d 10 --level 2 -o {tmp}/e.h5", "level"),
    _c("escape-times huge d", "escape-times -k 3 -d 100000000000000000000 -o {tmp}/e.h5", "dimensions"),
]


def expand(case: Case, tmp: Path) -> list[str]:
    """The command line of ``case`` with its placeholders filled (the small configuration written)."""
    small = _write_small(tmp) if any("{small}" in a for a in case.argv) else tmp / "small.toml"
    names = {"P": ROOT / "configs/mmn18_pde.toml", "Q": ROOT / "configs/mmn18_quick.toml",
             "R": ROOT / "configs/relu_single_index.toml", "C": ROOT / "configs/chaos_sphere_he4.toml",
             "tmp": tmp, "small": small}
    return [a.format(**{k: str(v) for k, v in names.items()}) for a in case.argv]


def files_under(tmp: Path) -> set[str]:
    return {str(p.relative_to(tmp)) for p in tmp.rglob("*")}


def judge(case: Case, status: int | None, stderr: str, before: set[str], after: set[str]) -> str:
    """``clean``, ``unclear`` (right status, no traceback, but the message misses the field or is long),
    ``traceback``, ``ran`` (exit 0 or a wrong status), ``hung`` (status None) or ``left files``."""
    if status is None:
        return "hung"
    if "Traceback" in stderr:
        return "traceback"
    if status == 0:
        return "ran"
    if after - before:
        return "left files"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    usage = lines and lines[0].startswith("usage:")  # argparse: usage line + one error line
    if status != case.status or len(lines) > (3 if usage else 2) or not all(
            word.lower() in stderr.lower() for word in case.expect):
        return "unclear"
    return "clean"


# ---- issue 12, second round: inputs of the independent checker's kind (not in the table above) ----------
def _file(name: str, content: str | bytes) -> Callable[[Path], None]:
    """A setup writing ``content`` to ``tmp/name`` (and the small configuration)."""

    def setup(tmp: Path) -> None:
        _write_small(tmp)
        path = tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")

    return setup


def _huge_config(tmp: Path) -> None:
    """A 3 MB configuration: 100000 unknown keys in [data]."""
    _write_small(tmp)
    (tmp / "huge.toml").write_text("[data]\n" + "".join(f"key{i} = {i}\n" for i in range(100_000)))


def _netcdf(tmp: Path) -> None:
    """A netCDF file (HDF5 underneath, but not a result file of this package)."""
    import numpy as np
    import xarray as xr

    _write_small(tmp)
    xr.Dataset({"risk": ("time", np.zeros(3))}).to_netcdf(tmp / "data.nc", engine="h5netcdf")


def _result(tmp: Path) -> None:
    """A real (small) result file, for commands that expect another kind of file."""
    from reduced_pde.running.config import load_config
    from reduced_pde.running.pipeline import run_pde
    from reduced_pde.running.storage import write_trajectory

    write_trajectory(tmp / "result.h5", run_pde(load_config(_write_small(tmp)), progress=False))


def _sweep_file(axes: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        _write_small(tmp)
        (tmp / "sweep.toml").write_text(f'[sweep]\nbase = "small.toml"\ntask = "pde"\n\n[axes]\n{axes}\n')

    return setup


def _other_command_checkpoint(tmp: Path) -> None:
    """A checkpoint written by ``sgd`` where ``pde --resume`` looks for its own."""
    _make_checkpoint(tmp, "sgd")


S = "pde {small} -o {tmp}/out.h5 --check"
NEW_CASES: list[Case] = [
    # configuration files: TOML types, structure, encodings, size
    _c("duplicate table", "pde {tmp}/dup.toml -o {tmp}/out.h5", "dup.toml",
       setup=_file("dup.toml", "[data]\ndelta = 0.5\n[data]\ndimension = 20\n")),
    _c("duplicate key", "pde {tmp}/dupkey.toml -o {tmp}/out.h5", "dupkey.toml",
       setup=_file("dupkey.toml", "[data]\ndelta = 0.5\ndelta = 0.4\n")),
    _c("byte-order mark", "pde {tmp}/bom.toml -o {tmp}/out.h5", "bom.toml",
       setup=_file("bom.toml", "\ufeff[data]\ndelta = 0.5\n".encode("utf-8"))),
    _c("unicode key", "pde {tmp}/uni.toml -o {tmp}/out.h5", "délta",
       setup=_file("uni.toml", '[data]\n"délta" = 0.5\n')),
    _c("unicode activation name", "pde {tmp}/uni2.toml -o {tmp}/out.h5", "activation",
       setup=_file("uni2.toml", '[activation]\nname = "rélu"\n')),
    _c("string for a number", "pde {tmp}/s.toml -o {tmp}/out.h5", "data.delta",
       setup=_file("s.toml", '[data]\ndelta = "0.5"\n')),
    _c("inline table for a number", "pde {tmp}/t.toml -o {tmp}/out.h5", "data.delta",
       setup=_file("t.toml", "[data]\ndelta = {x = 1}\n")),
    _c("array of tables", "pde {tmp}/a.toml -o {tmp}/out.h5", "data",
       setup=_file("a.toml", "[[data]]\ndelta = 0.5\n")),
    _c("top-level key", "pde {tmp}/top.toml -o {tmp}/out.h5", "delta",
       setup=_file("top.toml", "delta = 0.5\n")),
    _c("date for a time", "pde {tmp}/date.toml -o {tmp}/out.h5", "output.t_final",
       setup=_file("date.toml", "[output]\nt_final = 1979-05-27\n")),
    _c("sub-table for a key", "pde {tmp}/sub.toml -o {tmp}/out.h5", "output",
       setup=_file("sub.toml", "[output.t_final]\nx = 1\n")),
    _c("NUL byte in the file", "pde {tmp}/nul.toml -o {tmp}/out.h5", "nul.toml",
       setup=_file("nul.toml", b"[data]\ndelta = 0.5\x00\n")),
    _c("huge configuration", "pde {tmp}/huge.toml -o {tmp}/out.h5", "unknown key", setup=_huge_config),
    _c("integer beyond 64 bits", f"{S} --set output.n_outputs=99999999999999999999999", "output.n_outputs"),
    _c("law_times negative", f"{S} --set output.law_times=[-1.0]", "output.law_times"),
    _c("law_times a number", f"{S} --set output.law_times=3", "output.law_times"),
    _c("sweep axis empty", f"{S} --set sweep.\"initial.kappa\"=[]", "initial.kappa"),
    _c("sweep value invalid", "experiment {small} --outdir {tmp}/exp --check --set sweep.\"initial.kappa\"=[0.1,-1]",
       "initial.kappa"),
    _c("sweep not a list", f"{S} --set sweep.\"initial.kappa\"=0.3", "initial.kappa"),
    # values of single keys
    _c("edges not increasing", "pde {P} -o {tmp}/out.h5 --check --set grid.r={{spacing=\"edges\",edges=[0.0,2.0,1.0]}}",
       "grid.r"),
    _c("zero cells", "pde {P} -o {tmp}/out.h5 --check --set grid.r.cells=0", "grid"),
    _c("grid of an unknown coordinate", "pde {P} -o {tmp}/out.h5 --check --set grid.q={{lower=0.0,upper=1.0,cells=9}}",
       "grid"),
    _c("particles [0]", f"{S} --set pde.n_particles=[0]", "pde.n_particles"),
    _c("sampling unknown", f"{S} --set pde.sampling=\"random\"", "pde.sampling"),
    _c("ode method unknown", f"{S} --set pde.ode_method=\"euler\"", "pde.ode_method"),
    _c("rtol 0.5", f"{S} --set pde.rtol=0.5", "pde.rtol"),
    _c("beta negative", "pde {P} -o {tmp}/out.h5 --check --set noise.beta=-1.0", "noise.beta"),
    _c("beta a word", "pde {P} -o {tmp}/out.h5 --check --set noise.beta=\"hot\"", "noise.beta"),
    _c("alpha negative", f"{S} --set schedule.alpha=-1.0", "schedule.alpha"),
    _c("t0 without decay", f"{S} --set schedule.t0=5.0", "schedule.t0"),
    _c("spacing unknown", f"{S} --set output.spacing=\"cubic\"", "output.spacing"),
    _c("t_first 0", f"{S} --set output.t_first=0.0", "output.t_first"),
    _c("sgd dimension 1", "sgd {small} -o {tmp}/out.h5 --check --set sgd.dimension=1", "sgd.dimension"),
    _c("sgd dimension a word", "sgd {small} -o {tmp}/out.h5 --check --set sgd.dimension=\"full\"", "sgd.dimension"),
    _c("precision float16", "sgd {small} -o {tmp}/out.h5 --check --set sgd.precision=\"float16\"", "sgd.precision"),
    _c("threads 100000", "sgd {small} -o {tmp}/out.h5 --check --set sgd.threads=100000", "sgd.threads"),
    _c("batch_seeds with the one-seed sgd command", "sgd {small} -o {tmp}/out.h5 --check --set sgd.batch_seeds=true",
       "sgd.batch_seeds"),
    _c("kappa 1e300", "pde {P} -o {tmp}/out.h5 --set initial.kappa=1e300", "initial.kappa"),
    _c("second layer 1e300", "sgd {R} -o {tmp}/out.h5 --set data.second_layer=1e300", "data.second_layer"),
    _c("second layer rate 1e18 (explicit)", "pde {R} -o {tmp}/out.h5 --set network.second_layer_rate=1e18",
       "network.second_layer_rate"),
    _c("activation slope on mmn18", "pde {P} -o {tmp}/out.h5 --set activation.slope=2.0", "activation.slope"),
    _c("he_coefficients a number", "pde {R} -o {tmp}/out.h5 --set activation.name=\"polynomial\" "
       "--set activation.he_coefficients=3", "activation.he_coefficients"),
    # chaos
    _c("chaos widths [0]", "chaos {C} -o {tmp}/c.h5 --check --set chaos.widths=[0]", "chaos.widths"),
    _c("chaos widths 1e9", "chaos {C} -o {tmp}/c.h5 --check --set chaos.widths=[1000000000]", "chaos.widths"),
    _c("chaos --widths 0", "chaos {C} -o {tmp}/c.h5 --check --widths 0", "widths"),
    _c("chaos without finite-width runs", "chaos {small} -o {tmp}/c.h5 --check --set "
       "data.model=anisotropic_gaussian_mixture", "data.model", "isotropic_gaussian_mixture"),
    _c("chaos key of another model", "chaos {small} -o {tmp}/c.h5 --check --set chaos.s_nodes=8", "chaos.s_nodes"),
    _c("chaos with noise", "chaos {small} -o {tmp}/c.h5 --check --set noise.beta=10.0", "noise.beta"),
    _c("chaos dt 1e-300", "chaos {C} -o {tmp}/c.h5 --set chaos.dt=1e-300", "chaos.dt"),
    _c("chaos dt tiny (steps)", "chaos {C} -o {tmp}/c.h5 --set chaos.dt=1e-40", "chaos.dt"),
    _c("chaos epsilon 0.5", "chaos {C} -o {tmp}/c.h5 --check --set chaos.epsilon=0.5", "chaos.epsilon"),
    _c("chaos figure in a file", "chaos {C} -o {tmp}/c.h5 --figure {tmp}/afile/f.png", "figure", setup=_a_file),
    _c("chaos device cuda:7 missing", "chaos {C} -o {tmp}/c.h5 --set chaos.backend=\"torch\" --set chaos.device=\"cuda:7\"",
       "chaos.", '.[gpu]'),
    _c("chaos numpy in float32", "chaos {C} -o {tmp}/c.h5 --set chaos.precision=\"float32\"", "chaos.precision"),
    # command lines
    _c("-o is the configuration", "pde {small} -o {small}", "configuration"),
    _c("sgd -o is the configuration", "sgd {small} -o {small}", "configuration"),
    _c("-o without a value", "pde {small} -o", "-o"),
    _c("no configuration", "pde", "config"),
    _c("unknown command", "solve {small}", "solve"),
    _c("--set without a key", "pde {small} -o {tmp}/out.h5 --set =3", "--set"),
    _c("--set with an empty key", "pde {small} -o {tmp}/out.h5 --set data.=3", "--set"),
    _c("--set value with '='", f"{S} --set data.delta=0.5=3", "data.delta"),
    _c("--seed a word", "sgd {small} -o {tmp}/out.h5 --seed one", "seed"),
    _c("--checkpoint-every -inf", "pde {small} -o {tmp}/out.h5 --checkpoint-every -inf", "checkpoint-every"),
    _c("experiment --outdir is the configuration", "experiment {small} --outdir {small}", "outdir"),
    _c("experiment processes negative", "experiment {small} --outdir {tmp}/exp --processes -1", "processes"),
    _c("checkpoint of another command", "pde {small} -o {tmp}/out.h5 --resume", "checkpoint",
       setup=_other_command_checkpoint),
    _c("netCDF as a result file", "plot {tmp}/data.nc -o {tmp}/r.png", "data.nc", setup=_netcdf),
    _c("netCDF to plateaus", "plateaus {tmp}/data.nc -o {tmp}/p.png", "data.nc", setup=_netcdf),
    _c("result file as a configuration", "pde {tmp}/result.h5 -o {tmp}/out.h5", "result.h5", setup=_result),
    _c("result file as a sweep dataset", "phase-diagram {tmp}/result.h5 -o {tmp}/ph.png", "result.h5", setup=_result),
    _c("phase-diagram missing dataset", "phase-diagram {tmp}/none.nc -o {tmp}/ph.png", "none.nc"),
    _c("empty result file", "plot {tmp}/empty.h5 -o {tmp}/r.png", "empty.h5", setup=_file("empty.h5", b"")),
    _c("plot -o a directory", "plot {tmp}/result.h5 -o {tmp}", "output", setup=_result),
    _c("law times negative", "law {tmp}/result.h5 --times -1 -o {tmp}/l.png", "times", setup=_result),
    _c("law without a PDE file", "law {tmp}/result.h5 {tmp}/result.h5 --times 0 -o {tmp}/l.png", "PDE",
       setup=_result),
    _c("plateaus max degree negative", "plateaus {tmp}/result.h5 --max-degree -1", "max-degree", setup=_result),
    _c("plateaus smoothing negative", "plateaus {tmp}/result.h5 --smoothing -1", "smoothing", setup=_result),
    _c("plateaus --compare with one file", "plateaus --compare {tmp}/result.h5 -o {tmp}/p.png", "compare",
       setup=_result),
    _c("gibbs betas nan", "gibbs {P} -o {tmp}/g.h5 --betas nan", "betas"),
    _c("gibbs betas inf", "gibbs {P} -o {tmp}/g.h5 --betas inf", "betas"),
    _c("escape-times k 1", "escape-times -k 1 -d 10 -o {tmp}/e.h5", "degree"),
    _c("escape-times d 2", "escape-times -k 3 -d 2 -o {tmp}/e.h5", "dimensions"),
    _c("escape-times particles 5", "escape-times -k 3 -d 10 --particles 5 -o {tmp}/e.h5", "particles"),
    _c("escape-times rtol 0", "escape-times -k 3 -d 10 --rtol 0 -o {tmp}/e.h5", "rtol"),
    _c("escape-times level nan", "escape-times -k 3 -d 10 --level nan -o {tmp}/e.h5", "level"),
    # sweep files
    _c("sweep axis over an unknown key", "sweep {tmp}/sweep.toml --outdir {tmp}/sw", "initial.kapa",
       setup=_sweep_file('"initial.kapa" = [0.1, 0.2]')),
    _c("sweep empty axis", "sweep {tmp}/sweep.toml --outdir {tmp}/sw", "initial.kappa",
       setup=_sweep_file('"initial.kappa" = []')),
    _c("sweep file missing", "sweep {tmp}/none.toml --outdir {tmp}/sw", "none.toml"),
    _c("sweep workers 0", "sweep {tmp}/sweep.toml --outdir {tmp}/sw --workers 0", "workers",
       setup=_sweep_file('"initial.kappa" = [0.1, 0.2]')),
]
CASES += NEW_CASES
