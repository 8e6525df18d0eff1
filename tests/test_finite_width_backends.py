"""Backends of the m-neuron coupled runs (reduced_pde.analysis.finite_width): the Gram row tiles give the
untiled numbers, and a backend that cannot run here (PyTorch missing, no such device, NumPy asked for
float32 or a GPU) is refused in one line naming the key.  Runs without PyTorch (the default suite);
the PyTorch backend's own checks are tests/test_finite_width_torch.py."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from reduced_pde.analysis import finite_width
from reduced_pde.analysis.finite_width import SphereHermiteModel, _initial_neurons, _kernel_mean, _network_velocity, \
    check_backend, gram_row_tiles
from reduced_pde.cli import main
from reduced_pde.models.circle_sphere import CircleSphereProblem
from reduced_pde.models.single_index import SingleIndexProblem

CONFIG = "configs/chaos_sphere_he4.toml"


def test_row_tiles_cover_every_row_once_within_the_size_rule():
    for seeds, width, entries in [(1, 1, 10), (3, 37, 100), (2, 64, 2**22), (5, 1000, 4999), (1, 2**16, 2**26)]:
        tiles = gram_row_tiles(seeds, width, entries)
        rows = np.concatenate([np.arange(width)[t] for t in tiles])
        assert np.array_equal(rows, np.arange(width))
        assert max(seeds * (t.stop - t.start) * width for t in tiles) <= max(entries, seeds * width)
    assert len(gram_row_tiles(1, 2**16, 2**26)) == 64  # m = 2^16 on CUDA: 1024 rows per tile


@pytest.mark.parametrize("geometry", ["single_index", "circle"])
def test_tiled_gram_products_equal_the_full_gram_matrix(geometry, monkeypatch):
    # one row per tile (E = 100 < S m) against the untiled formula: the same products in another blocking,
    # so equal up to the round-off of sums of m = 37 terms of size <= κ'(1) = 96: < 1e-13 relative
    problem = SingleIndexProblem({"name": "he", "degree": 4}, "he4", 7, sphere=True, train_second_layer=False,
                                 second_layer=1.0) if geometry == "single_index" else CircleSphereProblem(
        {"name": "he", "degree": 4}, "he4", 7)
    model = SphereHermiteModel.from_problem(problem)
    w = _initial_neurons(7, 37, [0, 1, 2])
    gram = w @ np.swapaxes(w, 1, 2)
    grad = model.kappa_prime(gram) @ w / 37
    model.geometry.add_potential_gradient(model, w, grad)
    full = -2.0 * 0.3 * (grad - np.einsum("smd,smd->sm", grad, w)[..., None] * w)
    full_mean = model.kappa(gram).sum(axis=(1, 2)) / 37 ** 2
    monkeypatch.setattr(finite_width, "GRAM_TILE_ENTRIES", 100)
    assert len(gram_row_tiles(3, 37)) == 37
    assert np.allclose(_network_velocity(model, 0.3, w), full, rtol=0, atol=1e-13 * np.abs(full).max())
    assert np.allclose(_kernel_mean(model, w), full_mean, rtol=1e-13, atol=0)


def _one_line_refusal(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_torch_backend_without_torch_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError, as without PyTorch
    err = _one_line_refusal(["chaos", CONFIG, "-o", str(tmp_path / "c.h5"), "--check",
                             "--set", 'chaos.backend="torch"'], capsys)
    assert "chaos.backend = 'torch'" in err and 'pip install ".[gpu]"' in err
    with pytest.raises(ValueError, match=r'chaos.backend.*pip install "\.\[gpu\]"'):
        check_backend("torch", "cpu", "float32")
    assert not list(tmp_path.iterdir())


def test_missing_device_and_numpy_limits_are_refused_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "c.h5")
    # a CUDA device this machine lacks (or PyTorch itself missing): the key and the install command
    err = _one_line_refusal(["chaos", CONFIG, "-o", out, "--check", "--set", 'chaos.backend="torch"',
                             "--set", 'chaos.device="cuda:7"'], capsys)
    assert ("chaos.device = 'cuda:7'" in err or "chaos.backend = 'torch'" in err) and 'pip install ".[gpu]"' in err
    err = _one_line_refusal(["chaos", CONFIG, "-o", out, "--check", "--set", 'chaos.device="gpu"'], capsys)
    assert "chaos.device = 'gpu'" in err and "'cuda:<index>'" in err
    err = _one_line_refusal(["chaos", CONFIG, "-o", out, "--check", "--set", 'chaos.precision="float32"'], capsys)
    assert "chaos.precision = 'float32'" in err and "chaos.backend = 'torch'" in err
    err = _one_line_refusal(["chaos", CONFIG, "-o", out, "--check", "--set", 'chaos.backend="cupy"'], capsys)
    assert "chaos.backend = 'cupy'" in err and "'torch'" in err
    assert not list(tmp_path.iterdir())
