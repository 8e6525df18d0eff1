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
             "R": ROOT / "configs/relu_single_index.toml", "tmp": tmp, "small": small}
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
