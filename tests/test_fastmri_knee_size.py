"""A fastMRI knee-sized multi-coil file (640x368 k-space, readout oversampled x2, phase encodes padded with zero
columns as in the public data, recon size 320x320, a field of view in the header): read, crop convention, ESPIRiT
from fastMRI's own calibration lines and CG-SENSE through the job's operator, with sigpy's ESPIRiT as reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medrecon.io.fastmri import read_info, rss_reference, write_fastmri
from medrecon.io.simulate import simulate_multicoil
from medrecon.jobs.components import fastmri_data, multicoil_mri_operator
from medrecon.jobs.run import magnitude

GRID, RECON, COILS, FOV_MM = (640, 368), (320, 320), 4, (140.0, 140.0)
ACQUIRED = (17, 351)  # columns [17, 351) hold data, the rest is zero padding (fastMRI knee files)


@pytest.fixture(scope="module")
def knee(tmp_path_factory):
    """Two 640x368 slices of a knee-like object (two condyles and a joint line inside the 320-row recon field of
    view) seen by 4 birdcage coils, fully sampled, written with fastMRI's header fields."""
    h, w = GRID
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    slices = []
    for shift in (0.0, 0.05):
        body = ((2.4 * yy) ** 2 + ((xx - shift) / 0.75) ** 2 < 0.8).float()
        bone = ((2.4 * (yy - 0.12)) ** 2 + ((xx + 0.3 - shift) / 0.25) ** 2 < 0.5).float()
        bone = bone + ((2.4 * (yy - 0.12)) ** 2 + ((xx - 0.3 - shift) / 0.25) ** 2 < 0.5).float()
        slices.append(body * (0.5 + 0.2 * xx) + 0.4 * bone)
    sim = simulate_multicoil(torch.stack(slices), coils=COILS, generator=torch.Generator().manual_seed(4))
    kspace = sim.kspace.clone()
    kspace[..., : ACQUIRED[0]] = 0
    kspace[..., ACQUIRED[1] :] = 0
    left = ACQUIRED[0]
    limits = (w // 2 - left, ACQUIRED[1] - left - 1)  # kspace_encoding_step_1 (center, maximum)
    path = tmp_path_factory.mktemp("knee") / "file_knee.h5"
    write_fastmri(path, kspace, rss_reference(kspace, RECON), acquisition="CORPD_FBK", recon_size=RECON,
                  limits=limits, fov_mm=FOV_MM)
    return path, sim.smaps, sim.images


def test_header_gives_grid_crop_padding_and_pixel_spacing(knee):
    path, _, _ = knee
    info = read_info(path)
    assert info.kspace_shape == GRID and info.recon_size == RECON and info.coils == COILS
    assert info.padding == ACQUIRED
    assert info.pixel_spacing == pytest.approx((FOV_MM[0] / RECON[0], FOV_MM[1] / RECON[1]))
    volume = fastmri_data(path=str(path), slices=[1])
    assert volume.attrs["pixel_spacing_mm"] == pytest.approx([0.4375, 0.4375])
    assert volume.reference.shape == (1, *RECON)


@pytest.mark.parametrize("accel,fraction,calib,lines", [(4, 0.08, None, 29), (4, 0.08, 10, 10), (8, 0.04, 5, 5)])
def test_espirit_from_fastmri_calibration_and_cg_sense_at_recon_size(knee, accel, fraction, calib, lines):
    """fastMRI's 4x / 8x masks at 368 columns keep 29 / 15 centre lines; calibrating on 10 or 5 of them (fastMRI's
    counts at 128 columns) still gives maps equal to the truth up to a pixel-wise phase, and CG-SENSE on the
    320x368 readout-cropped grid matches the reference at 320x320."""
    from medrecon.baselines.mri import cg_sense
    from medrecon.metrics import psnr

    path, smaps, images = knee
    volume = fastmri_data(path=str(path), slices=[0])
    problem = multicoil_mri_operator(volume, torch.Generator().manual_seed(0), mask="equispaced_fraction",
                                     acceleration=accel, center_fraction=fraction, coil_maps="espirit",
                                     calib_width=calib, espirit_kernel=6, calib_height=48)
    assert problem.info["calib_width"] == lines and problem.info["calib_height"] == 48
    assert problem.image_shape == (RECON[0], GRID[1]) and problem.crop == RECON
    op = problem.operator_for(slice(0, 1))
    top = (GRID[0] - RECON[0]) // 2
    truth_maps = smaps[..., top : top + RECON[0], :]
    support = images[0, top : top + RECON[0]].abs() > 0.05
    align = (op.coils.smaps[0].conj() * truth_maps).sum(dim=-3).abs()[support]
    assert align.mean() > 0.995 and (align > 0.98).float().mean() > 0.99
    recon = magnitude(cg_sense(problem.y, op, iters=30), problem.crop)
    reference = volume.reference.numpy()
    assert psnr(reference, recon) > {4: 30, 8: 22}[accel]


def test_espirit_matches_sigpy_at_native_size(knee):
    """With a square 24x24 calibration region, ESPIRiT on the full 640x368 grid reproduces sigpy's."""
    sigpy_app = pytest.importorskip("sigpy.mri.app")
    from operators.coil_maps import espirit_maps

    path, _, _ = knee
    ksp = fastmri_data(path=str(path), slices=[0]).kspace[0]
    theirs = sigpy_app.EspiritCalib(ksp.numpy(), calib_width=24, kernel_width=6, show_pbar=False).run()
    ours = espirit_maps(ksp, calib_width=24, calib_height=24, kernel_width=6)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=5e-5)


def test_bench_native_writes_its_table(tmp_path):
    """``medrecon bench native`` in miniature: the shipped job on a generated file, one row per method."""
    pytest.importorskip("monai")
    from medrecon.bench.cli import suite_parser

    out = tmp_path / "native.md"
    args = suite_parser("native").parse_args(["--size", "64", "--coils", "4", "--slices", "1", "--steps", "2", "--no-fov",
                                              "--out", str(out)])
    assert args._suite_main(args) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| DDS", "| zero-filled", "| CG-SENSE",
                                                 "| L1-wavelet"]
    assert rows[0].split(" | ")[1] == "2"
