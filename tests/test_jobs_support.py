"""Tiny inputs and a stand-in prior shared by the job and CLI tests (and checks of the inputs themselves)."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from medrecon.jobs.registry import REGISTRY

SIZE = 32
COILS = 4
SLICES = 3


def phantom_images(slices: int = SLICES, size: int = SIZE) -> torch.Tensor:
    """Smooth real test images ``(S, size, size)`` in [0, 1]: off-centre discs of varying radius."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    out = []
    for s in range(slices):
        r = 0.55 + 0.1 * s
        disc = ((xx - 0.1) ** 2 + (yy + 0.05) ** 2 < r**2).float()
        inner = ((xx + 0.2) ** 2 + (yy - 0.1) ** 2 < (0.2 + 0.03 * s) ** 2).float()
        out.append(0.6 * disc + 0.4 * inner)
    return torch.stack(out)


def smooth_coil_maps(coils: int = COILS, size: int = SIZE) -> torch.Tensor:
    """Smooth complex coil maps ``(coils, size, size)`` around the image, normalised to ``sum |S|^2 = 1``."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    maps = []
    for c in range(coils):
        angle = 2 * np.pi * c / coils
        cx, cy = 1.2 * np.cos(angle), 1.2 * np.sin(angle)
        weight = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 2.0)
        maps.append(weight * torch.exp(1j * (0.5 * xx * np.cos(angle) + 0.3 * yy)))
    maps = torch.stack(maps).to(torch.complex64)
    return maps / maps.abs().square().sum(0, keepdim=True).sqrt()


def write_tiny_fastmri(path: Path, coils: int = COILS, slices: int = SLICES, size: int = SIZE) -> Path:
    """A fully sampled multi-coil fastMRI file of ``phantom_images`` seen by ``smooth_coil_maps``, with the
    RSS reference ``reconstruction_rss``."""
    from medrecon.io.fastmri import write_fastmri
    from operators.mri import fft2c, ifft2c

    kspace = fft2c(phantom_images(slices, size).to(torch.complex64)[:, None] * smooth_coil_maps(coils, size))
    rss = ifft2c(kspace).abs().square().sum(1).sqrt()
    return write_fastmri(path, kspace, rss, acquisition="AXT2")


def stand_in_prior(volume, *, variance: float = 0.1) -> torch.nn.Module:
    """Exact denoiser of an i.i.d. Gaussian prior ``N(0.3, variance)`` per real component (a test stand-in).

    Args:
        variance: prior variance per real component.
    """
    return _IidGaussian(variance)


class _IidGaussian(torch.nn.Module):
    def __init__(self, variance: float):
        super().__init__()
        self.variance = variance
        self.meta = {"data_range": [0.0, 1.0]}

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=x.real.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        mean = 0.3
        return mean + (x - mean) * (self.variance / (self.variance + s**2))


@contextlib.contextmanager
def stand_in_registered() -> Iterator[None]:
    """Register ``stand_in_prior`` as ``prior.kind = "gaussian_test"`` for the duration of a test."""
    REGISTRY.add("prior", "gaussian_test", stand_in_prior)
    try:
        yield
    finally:
        REGISTRY.remove("prior", "gaussian_test")


def mri_job_text(data: Path, out: Path, extra: str = "") -> str:
    """A tiny multi-coil MRI DDS job on ``data`` with the stand-in prior."""
    return (
        textwrap.dedent(f"""\
        [data]
        kind = "fastmri"
        path = "{data}"

        [operator]
        kind = "multicoil_mri"
        mask = "equispaced"
        acceleration = 4
        center_fraction = 0.125

        [prior]
        kind = "gaussian_test"

        [sampler]
        kind = "dds"
        steps = 6
        cg_iters = 3

        [run]
        seed = 7
        batch_size = 2
        checkpoint_every = 2
        outputs = ["hdf5"]
        out = "{out}"
        """)
        + extra
    )


def test_tiny_fastmri_file_reads_back(tmp_path):
    from medrecon.io.fastmri import read_info, read_slice

    path = write_tiny_fastmri(tmp_path / "vol.h5")
    info = read_info(path)
    assert (info.num_slices, info.coils, info.kspace_shape) == (SLICES, COILS, (SIZE, SIZE))
    sl = read_slice(path, 1)
    np.testing.assert_allclose(sl.target.numpy(), phantom_images()[1].numpy(), atol=1e-5)


def test_stand_in_prior_is_the_exact_gaussian_denoiser():
    prior = stand_in_prior(None, variance=0.5)
    x = torch.full((2, 4, 4), 1.3)
    out = prior(x, 1.0)
    torch.testing.assert_close(out, torch.full((2, 4, 4), 0.3 + 1.0 * 0.5 / 1.5))
