"""The shared pipeline rules: the prior's intensity normalisation, the noise level of a job, image sets, and
``medrecon bench quality`` built through the job registry."""
from __future__ import annotations

import argparse
import gzip
import io
import plistlib
import tarfile

import numpy as np
import pytest
import torch

from medrecon.errors import ConfigError, InputError
from medrecon.io.invesalius import read_inv3
from medrecon.jobs.noise import kspace_corner_std, kspace_noise_std, readout_edge_std, resolve_sigma_y
from medrecon.jobs.problem import Volume, VolumeProblem
from medrecon.jobs.run import estimate_scale
from medrecon.priors.meta import normalisation, sigma_data, sigma_range
from operators.mri import fft2c, ifft2c, multicoil_mri


class _Prior:
    def __init__(self, meta):
        self.meta = meta


def _mri_problem(images: torch.Tensor, smaps: torch.Tensor, mask: torch.Tensor) -> VolumeProblem:
    y = multicoil_mri(smaps, mask)(images)
    return VolumeProblem(y, lambda sl: multicoil_mri(smaps[sl], mask), tuple(images.shape[-2:]),
                         torch.complex64, tuple(images.shape[-2:]), mask=mask)


def test_sidecar_facts_and_fallbacks():
    meta = {"noise_schedule": {"sigma_min": 0.01, "sigma_max": 20}, "preconditioning": {"sigma_data": 0.3},
            "normalisation": {"rule": "fixed", "scale": 0.0384}}
    assert sigma_range(meta) == (0.01, 20.0) and sigma_data(meta) == 0.3
    assert normalisation(meta).describe() == {"rule": "fixed", "scale": 0.0384}
    assert sigma_range({}) == (0.002, 80.0) and sigma_data({}) is None
    fallback = normalisation({"data_range": [0, 1.2]})
    assert (fallback.rule, fallback.percentile, fallback.value) == ("percentile", 99.5, 1.2)
    with pytest.raises(ValueError, match="rule"):
        normalisation({"normalisation": {"rule": "max"}})


def test_percentile_scale_recovers_the_intensity_of_fully_sampled_data():
    gen = torch.Generator().manual_seed(0)
    images = 3.0 * torch.rand(2, 16, 16, generator=gen).to(torch.complex64)
    smaps = torch.ones(2, 1, 16, 16, dtype=torch.complex64)
    problem = _mri_problem(images, smaps, torch.ones(16, dtype=torch.bool))
    prior = _Prior({"normalisation": {"rule": "percentile", "percentile": 99.5, "value": 1.0}})
    info = estimate_scale(problem, prior, torch.device("cpu"))
    want = float(np.percentile(images.abs().numpy(), 99.5))
    assert info["scale"] == pytest.approx(want, rel=1e-4)
    fixed = estimate_scale(problem, _Prior({"normalisation": {"rule": "fixed", "scale": 0.5}}), torch.device("cpu"))
    assert fixed["scale"] == 0.5


def test_kspace_noise_estimate_and_auto_sigma():
    gen = torch.Generator().manual_seed(1)
    noise = 0.05 * torch.view_as_complex(torch.randn(2, 4, 64, 64, 2, generator=gen))
    smooth = fft2c(torch.ones(2, 4, 64, 64, dtype=torch.complex64))  # all energy at the centre
    assert kspace_noise_std(smooth + noise) == pytest.approx(0.05, rel=0.05)
    mask = torch.zeros(64, dtype=torch.bool)
    mask[::2] = True
    assert kspace_noise_std(torch.where(mask, smooth + noise, 0), mask) == pytest.approx(0.05, rel=0.05)
    problem = VolumeProblem(smooth + noise, lambda sl: None, (64, 64), torch.complex64, (64, 64), mask=None)
    assert resolve_sigma_y(0.2, Volume("mri"), problem)[0] == 0.2
    assert resolve_sigma_y("auto", Volume("mri", attrs={"noise_std": 0.01}), problem)[0] == 0.01
    assert resolve_sigma_y("auto", Volume("mri"), problem)[1]["source"].startswith("k-space")
    ct = VolumeProblem(torch.zeros(1, 4, 4), lambda sl: None, (4, 4), torch.float32, (4, 4))
    with pytest.raises(ConfigError, match="sigma_y"):
        resolve_sigma_y("auto", Volume("ct"), ct)


def test_noise_estimate_is_not_biased_by_signal_in_the_corners():
    """A sharp-edged object in the central half of the readout field of view puts signal in the k-space corners:
    the corner estimate rises with it, the readout-edge estimate (air there) does not, and the job's estimate
    takes the smaller: near 0 for noiseless data, the true std for noisy data."""
    image = torch.zeros(2, 4, 64, 48, dtype=torch.complex64)
    image[..., 20:44, 10:38] = 1.0  # a box: its spectrum decays slowly, reaching the corners
    image[..., 28:36, 18:30] = 2.0
    kspace = fft2c(image * torch.linspace(0.5, 1.5, 4)[:, None, None])
    mask = torch.zeros(48, dtype=torch.bool)
    mask[::3] = True
    noiseless = torch.where(mask, kspace, 0)
    assert kspace_corner_std(noiseless, mask) > 0.004
    assert kspace_noise_std(noiseless, mask) < 1e-6 * float(kspace.abs().max())
    noise = 0.002 * torch.view_as_complex(torch.randn(2, 4, 64, 48, 2, generator=torch.Generator().manual_seed(3)))
    noisy = torch.where(mask, kspace + noise, 0)
    assert kspace_corner_std(noisy, mask) > 1.5 * 0.002
    assert readout_edge_std(noisy, mask) == pytest.approx(0.002, rel=0.06)
    assert kspace_noise_std(noisy, mask) == pytest.approx(0.002, rel=0.06)
    rows = torch.ones(64)
    rows[:4], rows[-4:] = 0.3, 0.3  # a readout filter damping the outermost sixteenth of the field of view
    damp = lambda k: fft2c(ifft2c(k) * rows[:, None])  # noqa: E731 (image-domain weight along the readout)
    filtered = torch.where(mask, kspace + damp(noise), 0)
    assert readout_edge_std(filtered, mask) == pytest.approx(0.002, rel=0.08)
    noiseless_problem = VolumeProblem(noiseless, lambda sl: None, (64, 48), torch.complex64, (64, 48), mask=mask)
    sigma, record = resolve_sigma_y("auto", Volume("mri"), noiseless_problem)
    assert sigma == 0.0 and "taken as noiseless" in record["source"]
    noisy_problem = VolumeProblem(noisy, lambda sl: None, (64, 48), torch.complex64, (64, 48), mask=mask)
    assert resolve_sigma_y("auto", Volume("mri"), noisy_problem)[0] == pytest.approx(0.002, rel=0.06)


def _inv3(path, data: np.ndarray, matrix_name: str = "matrix.dat"):
    main = {"matrix": {"dtype": str(data.dtype), "filename": matrix_name, "shape": list(data.shape)},
            "spacing": [0.5, 0.5, 1.5], "modality": "CT", "name": "test"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, payload in (("proj/main.plist", plistlib.dumps(main)), ("proj/matrix.dat", data.tobytes())):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    path.write_bytes(gzip.compress(buf.getvalue()))


def test_invesalius_reader(tmp_path):
    data = (np.arange(2 * 3 * 4, dtype=np.int16) - 1000).reshape(2, 3, 4)
    _inv3(tmp_path / "a.inv3", data)
    vol = read_inv3(tmp_path / "a.inv3")
    np.testing.assert_array_equal(vol.data, data[:, ::-1])  # InVesalius stores the DICOM rows bottom first
    assert vol.spacing == (0.5, 0.5, 1.5) and vol.modality == "CT"
    np.testing.assert_array_equal(read_inv3(tmp_path / "a.inv3", (1,)).data, data[1:2, ::-1])
    with pytest.raises(InputError, match="slices \\[2\\] out of range"):
        read_inv3(tmp_path / "a.inv3", (2,))
    _inv3(tmp_path / "b.inv3", data, matrix_name="other.dat")
    with pytest.raises(InputError, match="the project has no other.dat"):
        read_inv3(tmp_path / "b.inv3")
    (tmp_path / "c.inv3").write_bytes(b"not a project")
    with pytest.raises(InputError, match="not a readable InVesalius project"):
        read_inv3(tmp_path / "c.inv3")


def test_invesalius_planes_come_back_in_dicom_row_order(tmp_path):
    """A DICOM image whose top rows hold the face, stored as InVesalius's importer stores it (rows reversed),
    reads back with the face on top, as a DICOM viewer shows the image."""
    image = np.full((8, 6), -1000, np.int16)
    image[1, 2:4] = 1000  # anterior (top) bone
    image[6, :] = 50  # posterior (bottom) cradle
    _inv3(tmp_path / "head.inv3", np.ascontiguousarray(image[None, ::-1]))
    np.testing.assert_array_equal(read_inv3(tmp_path / "head.inv3").data[0], image)


def test_reserved_cranium_slices_are_never_read():
    """The validation/test sets only ask the reader for slices below 54, and the reader reads nothing else."""
    from medrecon.bench import ct_head, volume
    from medrecon.jobs import image_sets

    used = (image_sets.CT_VALIDATION_SLICES + image_sets.CRANIUM_TEST_SLICES + volume.SPLITS["validation"]
            + volume.SPLITS["test"] + ct_head.CRANIUM_CHECK_SLICES + ct_head.CRANIUM_RECON_SLICES)
    assert max(used) < image_sets.CRANIUM_RESERVED_FROM == 54
    with pytest.raises(ValueError, match="reserved"):
        image_sets.ct_validation_slices(slices=(10, 60))


def test_the_reader_never_reads_past_its_stop(tmp_path):
    data = np.arange(6 * 2 * 3, dtype=np.int16).reshape(6, 2, 3)
    path = tmp_path / "p.inv3"
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in (("main.plist", plistlib.dumps({"matrix": {"dtype": "int16", "filename": "matrix.dat",
                                                                          "shape": [6, 2, 3]}})),
                              ("matrix.dat", data.tobytes())):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    np.testing.assert_array_equal(read_inv3(path, stop=4).data, data[:4, ::-1])
    np.testing.assert_array_equal(read_inv3(path, (3, 1), stop=4).data, data[[3, 1], ::-1])
    with pytest.raises(InputError, match=r"slices \[4\] are reserved"):
        read_inv3(path, (2, 4), stop=4)


def test_the_reader_never_decompresses_slices_past_its_stop(tmp_path, monkeypatch):
    """In a compressed project the reader stops consuming the file at the last slice it needs: the bytes of the
    slices at or above ``stop`` (incompressible here, 128 KiB each) are never even decompressed."""
    import medrecon.io.invesalius as inv

    data = np.random.default_rng(0).integers(-32768, 32767, size=(8, 256, 256), dtype=np.int16, endpoint=True)
    path = tmp_path / "big.inv3"
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in (("p/main.plist", plistlib.dumps({"matrix": {"dtype": "int16", "filename": "matrix.dat",
                                                                            "shape": [8, 256, 256]}})),
                              ("p/matrix.dat", data.tobytes()), ("p/after.plist", b"x" * 100)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    consumed = []
    real_open = tarfile.open

    def counting_open(name, mode="r", **kwargs):
        handle = open(name, "rb")
        original_read = handle.read
        handle.read = lambda *a: (lambda b: (consumed.append(handle.tell()), b)[1])(original_read(*a))
        return real_open(fileobj=handle, mode=mode, **kwargs)

    monkeypatch.setattr(inv.tarfile, "open", counting_open)
    np.testing.assert_array_equal(read_inv3(path, (0, 1), stop=2).data, data[:2, ::-1])
    slice_bytes = 256 * 256 * 2
    assert path.stat().st_size > 8 * slice_bytes
    assert max(consumed) < 4 * slice_bytes  # two slices needed, plus the decompressor's read-ahead


def test_bench_quality_runs_through_the_job_registry(capsys):
    """Two held-out MRI slices through ``run_job``: baselines at the shared defaults, DDS and its oracle twin."""
    pytest.importorskip("nilearn")
    from medrecon.bench import quality

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    parser.add_argument("--quick", action="store_true")
    quality.add_arguments(parser)
    args = parser.parse_args(["--quick", "--modalities", "mri", "--tasks", "4x random", "--samplers", "dds",
                              "--images", "1", "--oracle"])
    rows = []
    for name, data, op in quality.task_specs(args):
        rows += quality.run_task(name, data, op, quality.method_specs(args), "cpu", 0, oracle=True)
    methods = [r.method for r in rows]
    assert methods[:4] == ["DDS 3 NFE", "zero-filled", "CG-SENSE", "L1-wavelet"]
    assert "DDS 5 NFE (oracle maps, scale, noise)" in methods
    assert all(np.isfinite(r.psnr) and r.psnr > 15 for r in rows)
    text = quality.render(rows, "header")
    assert "oracle minus job path" in text and "| MRI 4x random | DDS 5 NFE | 5 |" in text
