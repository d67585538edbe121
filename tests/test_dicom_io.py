"""DICOM series: round trips on pydicom's CT_small.dcm and synthetic series, and clear errors for bad input."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from medrecon.errors import InputError
from medrecon.io.dicom import read_dicom_series, write_dicom_series

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file


@pytest.fixture()
def ct_small(tmp_path: Path) -> Path:
    folder = tmp_path / "ct_small"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "CT_small.dcm")
    (folder / "notes.txt").write_text("not DICOM")
    return folder


def _synthetic(folder: Path, depth: int = 5, orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), seed: int = 0):
    rng = np.random.default_rng(seed)
    vol = rng.integers(-1000, 2000, size=(depth, 12, 10)).astype(np.float32)
    files = write_dicom_series(folder, vol, spacing=(2.5, 0.7, 0.7), origin=(-10.0, 5.0, 30.0),
                               orientation=orientation)
    return vol, files


def test_ct_small_reads_hu_and_geometry(ct_small):
    series = read_dicom_series(ct_small)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert series.hu.shape == (1, 128, 128) and series.hu.dtype == np.float32
    np.testing.assert_array_equal(series.hu[0], expected.astype(np.float32))
    assert series.spacing == (5.0, pytest.approx(0.661468), pytest.approx(0.661468))
    np.testing.assert_allclose(series.affine[:3, 3], [float(v) for v in ds.ImagePositionPatient])


def test_ct_small_round_trip_as_new_series(ct_small, tmp_path):
    src = read_dicom_series(ct_small)
    recon = src.hu + 0.3  # rounded to 1 HU on writing
    out = tmp_path / "recon"
    files = write_dicom_series(out, recon, source=src)
    back = read_dicom_series(out)
    np.testing.assert_allclose(back.hu, np.rint(recon), atol=0)
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-5)
    ds = pydicom.dcmread(files[0])
    orig = src.headers[0]
    assert ds.SeriesInstanceUID != orig.SeriesInstanceUID and ds.SOPInstanceUID != orig.SOPInstanceUID
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.StudyInstanceUID == orig.StudyInstanceUID and ds.PatientID == orig.PatientID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temporary folder renamed away


def test_synthetic_series_is_ordered_by_position_not_file_name(tmp_path):
    folder = tmp_path / "series"
    vol, files = _synthetic(folder)
    # shuffle file names so that name order disagrees with the slice order
    for i, f in enumerate(files):
        f.rename(folder / f"tmp_{i}")
    for i, j in enumerate([3, 0, 4, 1, 2]):
        (folder / f"tmp_{i}").rename(folder / f"img_{j}.dcm")
    series = read_dicom_series(folder)
    np.testing.assert_array_equal(series.hu, vol)
    assert series.spacing == pytest.approx((2.5, 0.7, 0.7))
    np.testing.assert_allclose(series.affine @ [0, 0, 4, 1], [-10.0, 5.0, 40.0, 1.0])


def test_oblique_series_sorted_along_the_normal(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    orientation = (1.0, 0.0, 0.0, 0.0, c, s)  # tilted gantry: normal (0, -s, c)
    vol, _ = _synthetic(tmp_path / "oblique", depth=4, orientation=orientation, seed=1)
    series = read_dicom_series(tmp_path / "oblique")
    np.testing.assert_array_equal(series.hu, vol)
    assert series.spacing[0] == pytest.approx(2.5)
    np.testing.assert_allclose(series.affine[:3, 2], 2.5 * np.array([0.0, -s, c]), atol=1e-5)  # 6 decimals in the tags


def test_writer_without_spacing_or_with_nan_fails(tmp_path):
    with pytest.raises(InputError, match="spacing"):
        write_dicom_series(tmp_path / "a", np.zeros((2, 4, 4)))
    with pytest.raises(InputError, match="NaN"):
        write_dicom_series(tmp_path / "b", np.full((2, 4, 4), np.nan), spacing=(1, 1, 1))
    assert not (tmp_path / "b").exists()


def test_writer_refuses_non_empty_folder(tmp_path):
    _synthetic(tmp_path / "s")
    with pytest.raises(InputError, match="not empty"):
        _synthetic(tmp_path / "s")


def test_mixed_series_are_rejected_unless_one_is_chosen(tmp_path):
    _synthetic(tmp_path / "a", depth=2)
    _synthetic(tmp_path / "b", depth=3)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in (tmp_path / "a").iterdir():
        shutil.copy(f, mixed / f"a_{f.name}")
    for f in (tmp_path / "b").iterdir():
        shutil.copy(f, mixed / f"b_{f.name}")
    with pytest.raises(InputError, match="mixed series") as info:
        read_dicom_series(mixed)
    assert info.value.field == "SeriesInstanceUID" and str(mixed) in str(info.value)
    uid = read_dicom_series(tmp_path / "b").series_uid
    assert read_dicom_series(mixed, series_uid=uid).hu.shape[0] == 3


def test_missing_slice_is_reported(tmp_path):
    _, files = _synthetic(tmp_path / "s", depth=5)
    files[2].unlink()
    with pytest.raises(InputError, match="missing slices or inconsistent spacing") as info:
        read_dicom_series(tmp_path / "s")
    assert info.value.field == "ImagePositionPatient"


def _edit(path: Path, edit) -> None:
    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(path)


@pytest.mark.parametrize("tag", ["RescaleSlope", "RescaleIntercept", "ImagePositionPatient", "PixelSpacing"])
def test_missing_tag_is_named(tmp_path, tag):
    _, files = _synthetic(tmp_path / "s", depth=3)
    _edit(files[1], lambda ds: delattr(ds, tag))
    with pytest.raises(InputError) as info:
        read_dicom_series(tmp_path / "s")
    assert info.value.field == tag and files[1].name in str(info.value)


def test_missing_pixel_data(tmp_path):
    _, files = _synthetic(tmp_path / "s", depth=3)
    _edit(files[0], lambda ds: delattr(ds, "PixelData"))
    with pytest.raises(InputError, match="missing pixel data") as info:
        read_dicom_series(tmp_path / "s")
    assert info.value.field == "PixelData"


def test_truncated_file(tmp_path):
    _, files = _synthetic(tmp_path / "s", depth=3)
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError) as info:
        read_dicom_series(tmp_path / "s")
    assert files[2].name in str(info.value)


def test_non_square_pixels_rejected_on_request(tmp_path):
    vol = np.zeros((2, 6, 6), np.float32)
    write_dicom_series(tmp_path / "s", vol, spacing=(1.0, 0.5, 0.8))
    assert read_dicom_series(tmp_path / "s").spacing == pytest.approx((1.0, 0.5, 0.8))
    with pytest.raises(InputError, match="non-square") as info:
        read_dicom_series(tmp_path / "s", require_square_pixels=True)
    assert info.value.field == "PixelSpacing"


def test_values_beyond_int16_keep_their_range(tmp_path):
    vol = np.linspace(-50000, 80000, 2 * 4 * 4).reshape(2, 4, 4)
    write_dicom_series(tmp_path / "s", vol, spacing=(1, 1, 1))
    back = read_dicom_series(tmp_path / "s").hu
    np.testing.assert_allclose(back, vol, atol=2.0)


def test_compressed_syntax_without_decoder_names_the_extra(tmp_path):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed")
    folder = tmp_path / "jls"
    folder.mkdir()
    target = folder / "mr.dcm"
    shutil.copy(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"), target)
    _edit(target, lambda ds: (setattr(ds, "RescaleSlope", 1), setattr(ds, "RescaleIntercept", 0)))
    with pytest.raises(InputError, match="dicom-codecs") as info:
        read_dicom_series(folder)
    assert info.value.field == "TransferSyntaxUID"


def test_not_a_folder_or_no_dicom(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        read_dicom_series(tmp_path / "absent")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="no DICOM files"):
        read_dicom_series(tmp_path)


def test_hu_and_attenuation_round_trip():
    import torch

    from medrecon.io.hu import MU_WATER_PER_MM, hu_to_mu, mu_to_hu

    hu = torch.tensor([-1000.0, 0.0, 1000.0, 40.0])
    mu = hu_to_mu(hu)
    torch.testing.assert_close(mu[:3], torch.tensor([0.0, MU_WATER_PER_MM, 2 * MU_WATER_PER_MM]))
    torch.testing.assert_close(mu_to_hu(mu), hu, rtol=0, atol=1e-3)
    assert float(hu_to_mu(torch.tensor(-1200.0))) == 0.0


def test_simulated_sinogram_of_a_water_disc_and_poisson_noise():
    import torch

    from medrecon.io.hu import MU_WATER_PER_MM, add_poisson_noise, simulate_sinogram
    from operators import parallel_beam

    n, pixel = 64, 0.5
    op = parallel_beam(n, [0.0, 90.0], pixel_size=pixel, det_spacing=pixel, dtype=torch.float64)
    coords = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * pixel
    inside = coords[None, :] ** 2 + coords[:, None] ** 2 <= 12.0**2
    hu = torch.where(inside, 0.0, -1000.0).double()[None]
    sino = simulate_sinogram(hu, op)
    centre = sino[0, :, op.sino_shape[1] // 2]
    torch.testing.assert_close(centre, torch.full((2,), 24.0 * MU_WATER_PER_MM, dtype=torch.float64), rtol=0.02,
                               atol=0)
    gen = torch.Generator().manual_seed(0)
    noisy = add_poisson_noise(sino.expand(200, -1, -1), 1e4, gen)
    assert float((noisy.mean(0) - sino[0]).abs().max()) < 0.01
    assert torch.equal(add_poisson_noise(sino, 1e4, torch.Generator().manual_seed(5)),
                       add_poisson_noise(sino, 1e4, torch.Generator().manual_seed(5)))
