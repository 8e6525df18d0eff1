"""PyTorch backend of the m-neuron coupled runs (optional: ``pip install ".[gpu]"``).

The O(m² d) part of :func:`~reduced_pde.analysis.finite_width.coupled_runs` — the velocity of the
m-neuron gradient flow on the sphere and the kernel mean of its risk, through the Gram blocks
``G = W Wᵀ`` of the S seeds (a leading seed axis, batched matrix products)::

    dw_i/dt = −2ξ(t) P_{w_i} [∇V(w_i) + (1/m) Σ_j κ'(G_ij) w_j],     (1/m²) Σ_ij κ(G_ij),

``P_w = I − w wᵀ``, ``κ(γ) = Σ_k κ_k γ^k`` (the model's exact kernel), time t = kε and risk without ½
(design note §§1–2) — on any PyTorch device in float64 or float32.  Everything else (the
mean-field flow and the twins, cost independent of m; the per-output measures from the neurons
copied back to NumPy float64) is the NumPy code of :mod:`reduced_pde.analysis.finite_width`, so the
recorded quantities mean the same in every backend.  ``∇V`` (O(S m d) per stage) is the model
geometry's own NumPy expression evaluated on a float64 host copy of W (a copy of 8 S m d bytes per
RK4 stage to and from the device; the Gram products move 8 S m² d): one definition of the potential.

Memory: the Gram blocks are formed in row tiles (:func:`~reduced_pde.analysis.finite_width.gram_row_tiles`),
``b = max(1, ⌊E / (S m)⌋)`` rows at a time with ``E`` = :data:`TILE_ENTRIES` (2^22 entries on the CPU, as
NumPy; 2^26 on CUDA, 256 MiB per tile in float32, few enough tiles that kernel launches stay a small
share), so a run holds O(E + S m d) numbers, not S m² (m = 2^16: 4.3·10^9 per seed).

Precision: float32 runs with TF32 disabled — ``torch.backends.cuda.matmul.allow_tf32 = False``,
``torch.backends.cudnn.allow_tf32 = False`` and ``torch.set_float32_matmul_precision("highest")`` are
set (process-wide) when a backend is made — so every product is a true float32 product (unit
round-off 2^-24 ≈ 6·10^-8); the kernel mean is accumulated in float64.  ``tests/test_finite_width_torch.py``
checks float64 against NumPy to round-off and float32 against float64 within the float32 bound.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from reduced_pde.analysis.finite_width import GRAM_TILE_ENTRIES, GRAM_TILE_ENTRIES_CUDA, SphereHermiteModel, \
    gram_row_tiles

__all__ = ["TorchNetwork", "load_torch", "check_device_name", "device_memory", "TILE_ENTRIES", "PRECISIONS"]

#: entries of one Gram tile per device type (module doc)
TILE_ENTRIES = {"cpu": GRAM_TILE_ENTRIES, "cuda": GRAM_TILE_ENTRIES_CUDA}
PRECISIONS = ("float64", "float32")
_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+)$")
_INSTALL = 'pip install ".[gpu]"'


def check_device_name(device: Any, field: str = "chaos.device") -> str:
    """``chaos.device``: "cpu", "cuda" or "cuda:<index>" (whether it exists is :func:`load_torch`'s check)."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ValueError(f"{field} = {device!r} is not allowed; allowed: 'cpu', 'cuda', 'cuda:<index>'")
    return device


def load_torch(device: str = "cpu") -> Any:
    """The ``torch`` module, once ``device`` is known to exist; a one-line ValueError naming the key and
    the install command otherwise.  Disables TF32 (module doc)."""
    check_device_name(device)
    try:
        import torch
    except ImportError:
        raise ValueError(f"chaos.backend = 'torch' needs PyTorch, which is not installed: {_INSTALL} "
                         "(or chaos.backend = 'numpy')") from None
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= count:
            raise ValueError(f"chaos.device = {device!r} is not available: PyTorch {torch.__version__} sees "
                             f"{count} CUDA device(s); use chaos.device = 'cpu' or install a CUDA build of "
                             f"PyTorch ({_INSTALL}) on a machine with a GPU")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return torch


def device_memory(device: str) -> int:
    """Total memory (bytes) of the CUDA device ``device`` ("cuda" or "cuda:<index>"), after :func:`load_torch`'s
    checks."""
    return int(load_torch(device).cuda.get_device_properties(device).total_memory)


class TorchNetwork:
    """The O(m² d) part of the coupled runs in PyTorch (module doc), with the interface of
    :class:`~reduced_pde.analysis.finite_width._NumpyNetwork`: W lives on ``device`` as a (S, m, d) tensor."""

    name = "torch"

    def __init__(self, model: SphereHermiteModel, device: str = "cpu", precision: str = "float64",
                 tile_entries: int | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"chaos.precision = {precision!r} is not allowed; allowed: {list(PRECISIONS)}")
        torch = load_torch(device)
        self.torch = torch
        self.model = model
        self.device, self.precision = device, precision
        self._device = torch.device(device)
        self.dtype = torch.float64 if precision == "float64" else torch.float32
        self.tile_entries = int(tile_entries or TILE_ENTRIES[self._device.type])
        self.kernel = [float(c) for c in model.kernel]
        self.kernel_derivative = [float(c) for c in np.polynomial.polynomial.polyder(model.kernel)]

    # -- transfers ---------------------------------------------------------------------------------
    def array(self, w: np.ndarray) -> Any:
        return self.torch.as_tensor(np.ascontiguousarray(w), dtype=self.dtype, device=self._device)

    def host(self, w: Any) -> np.ndarray:
        return w.detach().to(device="cpu", dtype=self.torch.float64).numpy()

    # -- the flow ----------------------------------------------------------------------------------
    @staticmethod
    def _horner(x: Any, coefficients: list[float]) -> Any:
        """``Σ_k c_k x^k`` in place on a fresh tensor (Horner, the order of the NumPy ``_horner``; adding
        an exact zero is skipped, which changes no bit)."""
        top = len(coefficients) - 1
        while top > 0 and coefficients[top] == 0.0:
            top -= 1
        value = x * coefficients[top] if top > 0 else x.new_full(x.shape, coefficients[0])
        if top > 0:
            if coefficients[top - 1] != 0.0:
                value.add_(coefficients[top - 1])
            for k in range(top - 2, -1, -1):
                value.mul_(x)
                if coefficients[k] != 0.0:
                    value.add_(coefficients[k])
        return value

    def velocity(self, xi: float, w: Any) -> Any:
        """``−2ξ P_w [∇V(w_i) + (1/m) Σ_j κ'(G_ij) w_j]`` for W (S, m, d) (module doc)."""
        seeds, m = w.shape[:2]
        # ∇V first, on a host copy of W: the copy waits only for W itself, and the Gram products queued
        # after it run on a GPU while the caller goes on (the mean-field flow and twins of coupled_runs)
        host = self.host(w)
        potential = np.zeros_like(host)
        self.model.geometry.add_potential_gradient(self.model, host, potential)
        w_transposed = w.transpose(1, 2)
        grad = self.torch.empty_like(w)
        for rows in gram_row_tiles(seeds, m, self.tile_entries):
            gram = self.torch.matmul(w[:, rows], w_transposed)
            grad[:, rows] = self.torch.matmul(self._horner(gram, self.kernel_derivative), w)
            del gram
        grad /= m
        grad += self.torch.as_tensor(potential, dtype=self.dtype, device=self._device)
        radial = (grad * w).sum(dim=-1, keepdim=True)
        return (grad - radial * w) * (-2.0 * xi)

    def normalise(self, w: Any) -> Any:
        return w / self.torch.linalg.vector_norm(w, dim=-1, keepdim=True)

    def kernel_mean(self, w: Any) -> np.ndarray:
        """``(1/m²) Σ_ij κ(G_ij)`` per seed, (S,) float64 (tiles summed in float64)."""
        seeds, m = w.shape[:2]
        w_transposed = w.transpose(1, 2)
        total = self.torch.zeros(seeds, dtype=self.torch.float64, device=self._device)
        for rows in gram_row_tiles(seeds, m, self.tile_entries):
            total += self._horner(self.torch.matmul(w[:, rows], w_transposed), self.kernel).sum(
                dim=(1, 2), dtype=self.torch.float64)
        return total.cpu().numpy() / m ** 2

    def synchronize(self) -> None:
        """Wait for the device (timings)."""
        if self._device.type == "cuda":
            self.torch.cuda.synchronize(self._device)
