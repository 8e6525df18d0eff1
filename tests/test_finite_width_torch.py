"""The PyTorch backend of the coupled runs (reduced_pde.analysis.finite_width_torch), on the CPU and, where
PyTorch sees one, on a CUDA device (the ``cuda`` cases are skipped elsewhere): float64 against the NumPy
backend to round-off, float32 against float64 within float32 round-off, TF32 off (and, on CUDA, float32
products measured to be true float32 products).  Skipped where PyTorch is not installed (CI's default
install has no PyTorch: ``pip install ".[gpu]"``)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reduced_pde.analysis import finite_width_torch  # noqa: E402
from reduced_pde.analysis.finite_width import SphereHermiteModel, _initial_neurons, _kernel_mean, \
    _network_velocity, coupled_runs  # noqa: E402
from reduced_pde.analysis.finite_width_torch import TorchNetwork  # noqa: E402
from reduced_pde.models.circle_sphere import CircleSphereProblem  # noqa: E402
from reduced_pde.models.single_index import SingleIndexProblem  # noqa: E402

#: the devices of the parametrised tests: the CPU always, a CUDA device where PyTorch sees one
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                reason="PyTorch sees no CUDA device"))]

RECORDED = ("function_gap_squared", "network_risk", "twin_fluctuation", "coupling_mean", "coupling_rms",
            "coupling_quantiles", "mean_field_risk")
#: recorded arrays built from the risk's terms (E y², 2V, κ), and those built from distances of unit vectors
RISK_LIKE = ("function_gap_squared", "network_risk", "twin_fluctuation", "mean_field_risk")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread (the tests' arrays are tiny; threads only contend on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def problem_of(geometry: str, d: int):
    if geometry == "single_index":
        return SingleIndexProblem({"name": "he", "degree": 4}, "he4", d, sphere=True, train_second_layer=False,
                                  second_layer=1.0)
    return CircleSphereProblem({"name": "he", "degree": 4}, "he4", d)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("geometry", ["single_index", "circle"])
def test_torch_float64_velocity_and_kernel_mean_equal_numpy(geometry, device):
    # the same Horner order and products in another BLAS: round-off of sums of m = 40 terms <= 96, < 1e-13
    model = SphereHermiteModel.from_problem(problem_of(geometry, 9))
    w = _initial_neurons(9, 40, [0, 1])
    network = TorchNetwork(model, device, "float64", tile_entries=50)  # one row per tile
    expected = _network_velocity(model, 0.6, w)
    got = network.host(network.velocity(0.6, network.array(w)))
    assert np.allclose(got, expected, rtol=0, atol=1e-13 * np.abs(expected).max())
    assert np.allclose(network.kernel_mean(network.array(w)), _kernel_mean(model, w), rtol=1e-13, atol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("geometry", ["single_index", "circle"])
def test_torch_float64_coupled_runs_equal_numpy_to_round_off(geometry, device, monkeypatch):
    # every recorded array, relative to its largest entry: the two backends differ only in the summation
    # order of the Gram products (~1e-16 per step, 15 RK4 steps, measured 2e-15); bound 1e-10.  Small
    # tiles (3 rows) so that the tiled path is the one compared.
    monkeypatch.setitem(finite_width_torch.TILE_ENTRIES, device, 3 * 2 * 24)
    problem = problem_of(geometry, 8)
    times = np.linspace(0.0, 0.03, 4)
    reference = coupled_runs(problem, [24], [0, 1], times, dt=2e-3, nodes=48)
    torch_run = coupled_runs(problem, [24], [0, 1], times, dt=2e-3, nodes=48, backend="torch", device=device,
                             precision="float64")
    assert torch_run.config["backend"] == "torch" and torch_run.config["precision"] == "float64"
    assert torch_run.config["device"] == device
    for name in RECORDED:
        expected, got = getattr(reference, name), getattr(torch_run, name)
        assert np.max(np.abs(got - expected)) <= 1e-10 * np.max(np.abs(expected)), name


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("geometry", ["single_index", "circle"])
def test_torch_float32_stays_within_float32_round_off_of_float64(geometry, device):
    # Bound, per recorded array X: |X₃₂ − X₆₄| <= (N + 1) u S_X, u = 2^-24 the float32 unit round-off, N the RK4
    # steps (the initial cast rounds W once, then each step rounds the O(1) update once; the velocity's
    # own round-off enters multiplied by h|v| <= 0.1), S_X the condition: the size of the terms X is made of
    # (E y² + 2Σ|v_k| + Σκ_k = 96 for the risk-like arrays, 1 for distances of unit vectors) — the flow's
    # amplification over t <= 0.06 is O(1) here.  Measured: ratios 0.001-0.09 of the bound (d = 16,
    # m = 64, 3 seeds, N = 30).  And the float32 run must differ from float64 (it really ran in float32).
    problem = problem_of(geometry, 16)
    model = SphereHermiteModel.from_problem(problem)
    times, dt = np.linspace(0.0, 0.06, 4), 2e-3
    steps = 30
    runs = {precision: coupled_runs(problem, [64], [0, 1, 2], times, dt=dt, nodes=64, backend="torch",
                                    device=device, precision=precision) for precision in ("float64", "float32")}
    u = 2.0 ** -24
    size = model.label_second_moment + 2 * np.abs(model.potential).sum() + model.kernel.sum()
    for name in RECORDED:
        error = np.max(np.abs(getattr(runs["float32"], name) - getattr(runs["float64"], name)))
        bound = (steps + 1) * u * (size if name in RISK_LIKE else 1.0)
        assert error <= bound, (name, error, bound)
    assert np.max(np.abs(runs["float32"].network_risk - runs["float64"].network_risk)) > 1e-3 * (steps + 1) * u
    assert np.array_equal(runs["float32"].mean_field_risk, runs["float64"].mean_field_risk)  # NumPy in both


@pytest.mark.parametrize("device", DEVICES)
def test_float32_products_are_not_tf32(device):
    network = TorchNetwork(SphereHermiteModel.from_problem(problem_of("single_index", 6)), device, "float32")
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is False
    assert torch.get_float32_matmul_precision() == "highest"
    # measured, not only the flags: a float32 Gram product of unit vectors (sums of d = 1024 terms of size
    # <= 1) against float64.  True float32 (unit round-off 2^-24 ≈ 6e-8): error <= ~d u |x||y| in the worst
    # case, typically ~sqrt(d) u ≈ 2e-6; TF32 rounds the operands to 10 mantissa bits (2^-11 ≈ 5e-4), an
    # error ~sqrt(d) 2^-11 ≈ 1.5e-2.  Bound 1e-4: between the two by more than an order of magnitude each.
    generator = np.random.default_rng(7)
    w = generator.standard_normal((1, 512, 1024))
    w /= np.linalg.norm(w, axis=-1, keepdims=True)
    x = network.array(w)
    gram = network.host(torch.matmul(x, x.transpose(1, 2)))
    error = np.max(np.abs(gram - w @ np.swapaxes(w, 1, 2)))
    assert 0.0 < error <= 1e-4, error


def test_torch_refuses_bad_precision_and_device():
    model = SphereHermiteModel.from_problem(problem_of("single_index", 6))
    with pytest.raises(ValueError, match="chaos.precision = 'float16'"):
        TorchNetwork(model, "cpu", "float16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"chaos.device = 'cuda'.*pip install"):
            TorchNetwork(model, "cuda", "float32")


@pytest.mark.parametrize("device", DEVICES)
def test_cli_torch_backend_writes_the_numpy_numbers(tmp_path, device):
    # [chaos] backend/device/precision reach the run and the file: the same arrays as the NumPy run (<= 1e-10)
    import h5py

    from reduced_pde.cli import main

    small = ["--set", "data.dimension=8", "--set", "chaos.widths=[4, 8]", "--set", "chaos.seeds=[0, 1]",
             "--set", "chaos.nodes=32", "--set", "chaos.predict=false", "--set", "output.t_final=0.01",
             "--set", "output.n_outputs=2"]
    files = {}
    for backend in ("numpy", "torch"):
        files[backend] = tmp_path / f"{backend}.h5"
        assert main(["chaos", "configs/chaos_sphere_he4.toml", "-o", str(files[backend]), "--quiet", *small,
                     "--set", f'chaos.backend="{backend}"',
                     *(["--set", f'chaos.device="{device}"'] if backend == "torch" else [])]) == 0
    with h5py.File(files["numpy"], "r") as reference, h5py.File(files["torch"], "r") as file:
        assert list(file["width"][()]) == [4, 8] and file["network_risk"].shape == (2, 2, 3)
        assert file.attrs["config.chaos.backend"] == "torch" and file.attrs["derived.backend"] == "torch"
        assert file.attrs["config.chaos.precision"] == "float64" and file.attrs["config.chaos.device"] == device
        for name in RECORDED:
            expected = reference[name][()]
            assert np.max(np.abs(file[name][()] - expected)) <= 1e-10 * np.max(np.abs(expected)), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="PyTorch sees no CUDA device")
def test_cuda_run_larger_than_the_device_is_refused_by_check(capsys):
    # 64 networks of m = 2^22 at d = 32 in float32: the RK4 stages alone are 12 S m d 4 bytes = 384 GiB,
    # more than any single GPU holds; --check refuses in one line naming the device and its size
    from reduced_pde.cli import main

    seeds = "[" + ", ".join(str(s) for s in range(64)) + "]"
    code = main(["chaos", "configs/chaos_sphere_he4.toml", "--check", "--set", "data.dimension=32",
                 "--set", "chaos.widths=[4194304]", "--set", f"chaos.seeds={seeds}", "--set", 'chaos.backend="torch"',
                 "--set", 'chaos.device="cuda"', "--set", 'chaos.precision="float32"'])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert "GiB on chaos.device = 'cuda'" in err
