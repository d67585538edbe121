"""fastMRI files at their native grid through the job layer (reconstruct at the full k-space grid, crop to the
recon size), ESPIRiT maps from fastMRI's few centre lines, and priors refusing grids their sidecar does not serve."""

from __future__ import annotations

import contextlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from medrecon.cli import main
from medrecon.errors import ConfigError, InputError
from medrecon.io.fastmri import rss_reference, write_fastmri
from medrecon.jobs.compat import check_prior_serves, data_pixel_spacing
from medrecon.jobs.problem import Volume
from medrecon.priors.meta import served_shapes
from medrecon.jobs.components import fastmri_data, multicoil_mri_operator
from medrecon.jobs.registry import REGISTRY
from medrecon.jobs.run import magnitude
from tests.test_jobs_support import mri_job_text, phantom_images, smooth_coil_maps, stand_in_prior

GRID, RECON = (64, 40), (32, 32)


def _knee_file(path: Path, header: bool = True, reference: bool = True, recon: tuple[int, int] = RECON,
               fov_mm: tuple[float, float] | None = None) -> tuple[Path, torch.Tensor]:
    """A fully sampled 2-slice, 4-coil file with 64x40 k-space and recon size 32x32 (640x368 -> 320x320 in
    miniature): the object sits in the middle half of the (oversampled) readout rows."""
    from operators.mri import fft2c

    h, w = GRID
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    image = torch.stack([((2 * yy) ** 2 + (xx / r) ** 2 < 0.8) * (1.0 + 0.5 * xx) for r in (0.7, 0.8)])
    image = image.to(torch.complex64)
    kspace = fft2c(image[:, None] * smooth_coil_maps(4, h)[..., (h - w) // 2 : (h + w) // 2])
    ref = rss_reference(kspace, recon) if reference else None
    write_fastmri(path, kspace, ref, acquisition="CORPD_FBK", recon_size=recon, fov_mm=fov_mm)
    if not header:
        with h5py.File(path, "a") as hf:
            del hf["ismrmrd_header"]
    return path, image


def test_native_grid_problem_crops_to_recon_size(tmp_path):
    """The sampler's grid is the full k-space grid, or with ``readout_crop`` (the default) the recon size's rows
    (640x368 -> 320x368 in miniature); either way the written images are cropped to the recon size like fastMRI's
    reference, and CG-SENSE gives the same image on both grids."""
    from medrecon.baselines.mri import cg_sense
    from medrecon.metrics import psnr

    path, image = _knee_file(tmp_path / "knee.h5")
    volume = fastmri_data(path=str(path))
    assert volume.kspace.shape == (2, 4, *GRID) and volume.reference.shape == (2, *RECON)
    recons = []
    for readout_crop, shape in ((False, GRID), (True, (RECON[0], GRID[1]))):
        problem = multicoil_mri_operator(volume, torch.Generator().manual_seed(0), center_fraction=0.125,
                                         readout_crop=readout_crop)
        assert problem.image_shape == shape and problem.crop == RECON and problem.info["kspace_grid"] == list(GRID)
        assert problem.y.shape == (2, 4, *shape)
        recons.append(magnitude(cg_sense(problem.y, problem.operator_for(slice(0, 2))), problem.crop))
    # the written reconstruction is |x| cropped like fastMRI's reference: exact for the true image (unit maps)
    np.testing.assert_allclose(magnitude(image, problem.crop), volume.reference.numpy(), rtol=1e-4, atol=1e-5)
    assert psnr(recons[0], recons[1], float(recons[0].max())) > 40


def test_header_less_file_crops_to_the_stored_reference_or_not_at_all(tmp_path):
    path, _ = _knee_file(tmp_path / "a.h5", header=False)
    problem = multicoil_mri_operator(fastmri_data(path=str(path)), torch.Generator().manual_seed(0),
                                     center_fraction=0.125)
    assert problem.crop == RECON
    path, _ = _knee_file(tmp_path / "b.h5", header=False, reference=False)
    volume = fastmri_data(path=str(path))
    assert volume.reference is None
    problem = multicoil_mri_operator(volume, torch.Generator().manual_seed(0), center_fraction=0.125)
    assert problem.crop == GRID


@pytest.mark.parametrize("fraction,lines", [(0.08, 10), (0.04, 5)])
def test_espirit_job_option_at_fastmri_centre_lines(tmp_path, fraction, lines):
    """``coil_maps = "espirit"`` at fastMRI's 4x / 8x centre fractions of 128 columns."""
    from tests.test_jobs_support import write_tiny_fastmri

    path = write_tiny_fastmri(tmp_path / "v.h5", coils=4, slices=1, size=128)
    volume = fastmri_data(path=str(path))
    problem = multicoil_mri_operator(volume, torch.Generator().manual_seed(0), mask="equispaced_fraction",
                                     acceleration=4 if lines == 10 else 8, center_fraction=fraction,
                                     coil_maps="espirit")
    assert problem.info["center_lines"] == problem.info["calib_width"] == lines
    smaps = problem.operator_for(slice(0, 1)).coils.smaps
    support = phantom_images(1, 128)[0] > 0
    align = (smaps.conj() * smooth_coil_maps(4, 128)).sum(dim=-3).abs()[..., support]
    assert align.mean() > 0.99
    narrower = multicoil_mri_operator(volume, torch.Generator().manual_seed(0), mask="equispaced_fraction",
                                      acceleration=4, center_fraction=fraction, coil_maps="espirit",
                                      calib_width=4, espirit_kernel=4)
    assert narrower.info["calib_width"] == 4
    with pytest.raises(ConfigError, match=f"calib_width = 40: the data has {lines} fully sampled centre lines"):
        multicoil_mri_operator(volume, torch.Generator().manual_seed(0), mask="equispaced_fraction",
                               acceleration=4, center_fraction=fraction, calib_width=40)


def test_served_shapes_fallback_and_serves_field():
    assert served_shapes({"data_range": [0, 1]}) is None
    exact = served_shapes({"image_size": [128, 128]})
    assert (128, 128) in exact and (128, 120) not in exact and str(exact) == "exactly 128x128"
    wide = served_shapes({"image_size": [128, 128],
                          "serves": {"min_size": [64, 64], "max_size": [640, 384], "multiple_of": 8}})
    assert (640, 368) in wide and (320, 320) in wide and (640, 372) not in wide and (32, 64) not in wide
    assert str(wide) == ">= 64x64, <= 640x384, multiples of 8" and wide.network_grid((320, 372)) == (320, 372)
    padded = served_shapes({"serves": {"min_size": 32, "max_size": 640, "multiple_of": 8, "pad": True,
                                       "pixel_spacing_mm": [1.5, 2], "intensity_range": [0, 1.2]}})
    assert (320, 372) in padded and (31, 64) not in padded and (641, 64) not in padded
    assert padded.network_grid((320, 372)) == (320, 376) and padded.network_grid((30, 41)) == (32, 48)
    assert str(padded) == ">= 32x32, <= 640x640, any side (padded to multiples of 8)"
    assert padded.pixel_spacing_mm == (1.5, 2.0) and padded.intensity_range == (0.0, 1.2)
    check_prior_serves({}, (7, 9), "any.h5")
    check_prior_serves({"image_size": [32, 32]}, (32, 32), "ok.h5")
    with pytest.raises(InputError, match=r"\[serves\]: unknown keys \['size'\]"):
        served_shapes({"serves": {"size": 3}})
    with pytest.raises(InputError, match=r"\[serves.multiple_of\]"):
        served_shapes({"serves": {"multiple_of": [8]}})
    with pytest.raises(InputError, match=r"\[serves.pad\]"):
        served_shapes({"serves": {"pad": "yes"}})
    with pytest.raises(InputError, match=r"\[serves.pixel_spacing_mm\]: expected \[low, high\] with 0 < low"):
        served_shapes({"serves": {"pixel_spacing_mm": [0, 1]}})
    with pytest.raises(InputError, match=r"\[serves.intensity_range\]"):
        served_shapes({"serves": {"intensity_range": [1, 0]}})


def test_pad_to_multiple_runs_the_network_on_the_next_multiple():
    from medrecon.priors.adapters import PadToMultiple

    seen = []

    def net(x, sigma):
        seen.append(tuple(x.shape[-2:]))
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0
        return 2 * x

    x = torch.randn(2, 2, 30, 41)
    out = PadToMultiple(net, (8, 8))(x, 0.5)
    assert seen == [(32, 48)] and out.shape == x.shape
    torch.testing.assert_close(out, 2 * x)  # the padding is cropped away exactly
    PadToMultiple(net, (8, 8))(torch.randn(1, 2, 4, 3), 0.5)  # smaller than the pad: replicated
    assert seen[-1] == (8, 8)


def test_shipped_priors_state_what_they_serve_and_run_off_their_training_grid():
    """The shipped MRI and CT sidecars state grids, spacing (MRI) and intensity range; the loaded prior runs on a
    non-square grid that is no multiple of its downsampling factor and keeps the image's shape."""
    pytest.importorskip("monai")
    from medrecon.priors.checkpoint import load_prior

    for name in ("mri", "ct"):
        prior = load_prior(name)
        served = served_shapes(prior.meta)
        assert served.pad and served.multiple_of == (8, 8) and (320, 368) in served and (512, 512) in served
        assert served.intensity_range == tuple(prior.meta["data_range"])
        x = torch.rand(1, 36, 44, dtype=torch.complex64 if prior.meta["complex"] else torch.float32)
        with torch.no_grad():
            out = prior(x, torch.tensor([0.3]))
        assert out.shape == x.shape and out.dtype == x.dtype and bool(torch.isfinite(out).all())
    assert served_shapes(load_prior("mri").meta).pixel_spacing_mm == (1.65, 2.04)


def test_pixel_spacing_and_intensity_refusals_name_file_and_field(tmp_path):
    meta = {"weights": "p.safetensors", "modality": "ct", "normalisation": {"rule": "fixed", "scale": 0.0384},
            "serves": {"pixel_spacing_mm": [0.5, 1.0], "intensity_range": [0.0, 1.0]}}
    water = torch.full((1, 16, 16), 0.0192)
    ok = Volume("ct", Path("head.nii.gz"), image=water, affine=np.diag([0.8, 0.8, 2.0, 1.0]))
    assert data_pixel_spacing(ok) == ((0.8, 0.8), "affine")
    check_prior_serves(meta, (16, 16), "head.nii.gz", ok)
    coarse = Volume("ct", Path("head.nii.gz"), image=water, affine=np.diag([1.5, 1.5, 2.0, 1.0]))
    with pytest.raises(InputError, match=r"^head.nii.gz \[affine\]: the data's pixels are 1.5x1.5 mm but the "
                                         r"prior p.safetensors serves 0.5-1 mm pixels \(its sidecar's "
                                         r"serves.pixel_spacing_mm\)"):
        check_prior_serves(meta, (16, 16), "head.nii.gz", coarse)
    hu_as_mu = Volume("ct", Path("head.nii.gz"), image=torch.full((1, 16, 16), 40.0))  # HU read as 1/mm
    with pytest.raises(InputError, match=r"^head.nii.gz \[image\]: the image's 1st-99th percentiles are 1042 to "
                                         r"1042 prior units but the prior p.safetensors serves \[0, 1\]"):
        check_prior_serves(meta, (16, 16), "head.nii.gz", hu_as_mu)
    bone = water.clone()
    bone[:, :2] = 0.0192 * 3.5  # skull at +2500 HU (one span above the window) is still served
    check_prior_serves(meta, (16, 16), "head.nii.gz", Volume("ct", Path("head.nii.gz"), image=bone))
    simulated = Volume("mri", None, kspace=torch.zeros(1, 1, 4, 4, dtype=torch.complex64))
    assert data_pixel_spacing(simulated) is None


def test_prior_refuses_a_grid_it_does_not_serve():
    meta = {"weights": "mri.safetensors", "modality": "mri", "image_size": [128, 128]}
    with pytest.raises(InputError) as err:
        check_prior_serves(meta, (640, 320), "/data/file_brain.h5")
    text = str(err.value)
    assert len(text.splitlines()) == 1
    assert text.startswith("/data/file_brain.h5 [kspace]: the data's image grid is 640x320")
    assert "mri.safetensors serves exactly 128x128" in text and "image_size" in text


def _sized_prior(volume, *, size: int = 32):
    """A stand-in prior whose sidecar says it serves exactly ``size`` x ``size`` images."""
    prior = stand_in_prior(volume)
    prior.meta = {**prior.meta, "weights": "sized.safetensors", "modality": "mri", "image_size": [size, size]}
    return prior


@contextlib.contextmanager
def _registered():
    REGISTRY.add("prior", "gaussian_test", stand_in_prior)
    REGISTRY.add("prior", "gaussian_sized", _sized_prior)
    try:
        yield
    finally:
        REGISTRY.remove("prior", "gaussian_test")
        REGISTRY.remove("prior", "gaussian_sized")


def _job(tmp_path, data: Path, prior: str) -> tuple[Path, Path]:
    out = tmp_path / "out"
    job = tmp_path / "job.toml"
    job.write_text(mri_job_text(data, out).replace('kind = "gaussian_test"', f'kind = "{prior}"'))
    return job, out


@pytest.mark.parametrize("command", ["check", "run"])
def test_cli_fails_in_one_line_when_the_prior_does_not_serve_the_grid(tmp_path, capsys, command):
    data, _ = _knee_file(tmp_path / "knee.h5")
    job, out = _job(tmp_path, data, "gaussian_sized")
    with _registered():
        code = main([command, str(job)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"medrecon {command}: error: {data} [kspace]: the data's image grid is 32x40")
    assert "serves exactly 32x32" in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["check", "run"])
def test_cli_default_prior_refuses_pixels_it_was_not_trained_for(tmp_path, capsys, command):
    """A knee-like field of view (0.44 mm pixels) is refused by the shipped MRI prior (trained at 1.65-2.04 mm
    pixels) in one line naming the file and the header, before anything is written."""
    pytest.importorskip("monai")
    data, _ = _knee_file(tmp_path / "knee.h5", fov_mm=(14.0, 14.0))
    job, out = _job(tmp_path, data, "default")
    assert main([command, str(job)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"medrecon {command}: error: {data} [ismrmrd_header]: the data's pixels are 0.438x0.438 mm")
    assert "mri.safetensors serves 1.65-2.04 mm pixels" in err and not out.exists()


def test_cli_runs_the_default_prior_on_the_data_grid(tmp_path):
    """No resizing: a 34x40 sampler grid (readout cropped to a 34-row recon size) runs the shipped prior, padded
    to 40x40 inside the denoiser, and writes the 34x34 recon size."""
    pytest.importorskip("monai")
    data, _ = _knee_file(tmp_path / "knee.h5", recon=(34, 34))
    job, out = _job(tmp_path, data, "default")
    assert main(["run", str(job), "--quiet", "--set", "sampler.steps=2"]) == 0
    with h5py.File(out / "reconstructions" / "knee.h5") as hf:
        assert hf["reconstruction"].shape == (2, 34, 34)
        assert np.isfinite(hf["reconstruction"][()]).all()


def test_cli_run_on_native_grid_writes_recon_size(tmp_path, capsys):
    data, _ = _knee_file(tmp_path / "knee.h5")
    job, out = _job(tmp_path, data, "gaussian_test")
    with _registered():
        assert main(["run", str(job), "--quiet", "--set", 'operator.coil_maps="espirit"']) == 0
    with h5py.File(out / "reconstructions" / "knee.h5") as hf:
        assert hf["reconstruction"].shape == (2, *RECON)
