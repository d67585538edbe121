"""fastMRI HDF5: schema round trip on tiny synthetic files, slice-wise reads, and every bad input."""
import h5py
import numpy as np
import pytest
import torch

from medrecon.errors import InputError
from medrecon.io.fastmri import center_crop, read_info, read_slice, write_fastmri


def _kspace(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.fixture
def multicoil(tmp_path):
    ksp = _kspace((3, 4, 12, 10))
    rec = np.abs(np.random.default_rng(1).standard_normal((3, 8, 8))).astype(np.float32)
    path = write_fastmri(tmp_path / "mc.h5", ksp, rec, acquisition="AXT1", recon_size=(8, 8))
    return path, ksp, rec


def test_multicoil_round_trip(multicoil):
    path, ksp, rec = multicoil
    info = read_info(path)
    assert info.multicoil and info.num_slices == 3 and info.coils == 4
    assert info.kspace_shape == (12, 10) and info.recon_size == (8, 8) and info.encoded_size == (12, 10, 1)
    assert info.reconstructions == ("reconstruction_rss",) and not info.has_mask
    assert info.attrs["acquisition"] == "AXT1"
    assert info.attrs["max"] == pytest.approx(rec.max()) and info.attrs["norm"] == pytest.approx(np.linalg.norm(rec))
    s = read_slice(path, 2)
    assert s.kspace.dtype == torch.complex64 and s.kspace.shape == (4, 12, 10)
    np.testing.assert_array_equal(s.kspace.numpy(), ksp[2])
    np.testing.assert_array_equal(s.target.numpy(), rec[2])
    assert s.mask is None


def test_schema_matches_fastmri_layout(multicoil):
    path, _, _ = multicoil
    with h5py.File(path, "r") as hf:
        assert set(hf.keys()) == {"kspace", "reconstruction_rss", "ismrmrd_header"}
        header = hf["ismrmrd_header"][()]
        assert isinstance(header, bytes) and b"reconSpace" in header
        assert set(hf.attrs.keys()) == {"acquisition", "max", "norm"}


def test_single_coil_test_file_with_mask(tmp_path):
    ksp = _kspace((2, 8, 6))
    mask = np.array([0, 1, 1, 1, 0, 1], dtype=bool)
    path = write_fastmri(tmp_path / "sc.h5", ksp * mask, mask=mask, acquisition="CORPD_FBK")
    info = read_info(path)
    assert not info.multicoil and info.coils == 1 and info.has_mask and info.reconstructions == ()
    s = read_slice(path, 1)
    assert s.kspace.shape == (1, 8, 6) and s.target is None
    np.testing.assert_array_equal(s.mask.numpy(), mask)


def test_center_crop_follows_fastmri():
    x = torch.arange(7 * 6).reshape(7, 6)
    assert torch.equal(center_crop(x, (3, 4)), x[2:5, 1:5])
    assert center_crop(x, (10, 10)).shape == (7, 6)


def _edit(path, fn):
    with h5py.File(path, "a") as hf:
        fn(hf)
    return path


@pytest.mark.parametrize(
    "edit,field",
    [
        (lambda hf: hf.__delitem__("kspace"), "kspace"),
        (lambda hf: (hf.__delitem__("kspace"), hf.create_dataset("kspace", data=_kspace((12, 10)))), "kspace"),
        (lambda hf: (hf.__delitem__("kspace"), hf.create_dataset("kspace", data=np.ones((3, 4, 12, 10)))), "kspace"),
        (lambda hf: (hf.__delitem__("reconstruction_rss"),
                     hf.create_dataset("reconstruction_rss", data=np.ones((2, 8, 8)))), "reconstruction_rss"),
        (lambda hf: (hf.__delitem__("ismrmrd_header"), hf.create_dataset("ismrmrd_header", data=b"<not xml")),
         "ismrmrd_header"),
        (lambda hf: hf.create_dataset("mask", data=np.ones(7)), "mask"),
        (lambda hf: (n := hf["reconstruction_rss"].shape[0], hf.__delitem__("reconstruction_rss"),
                     hf.create_dataset("reconstruction_rss", data=np.ones((n, 5, 5)))), "reconstruction_rss"),
    ],
    ids=["no-kspace", "kspace-2d", "kspace-real", "recon-slices", "bad-header", "mask-length", "recon-size"],
)
def test_bad_structure_names_file_and_field(multicoil, edit, field):
    path = _edit(multicoil[0], edit)
    with pytest.raises(InputError) as err:
        read_slice(path, 0)
    assert err.value.field == field and err.value.path == str(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_kspace_is_reported_with_slice(tmp_path, bad):
    ksp = _kspace((2, 2, 6, 6))
    path = write_fastmri(tmp_path / "ok.h5", ksp)
    _edit(path, lambda hf: hf["kspace"].__setitem__((1, 0, 0, 0), bad))
    read_slice(path, 0)
    with pytest.raises(InputError, match="NaN or Inf") as err:
        read_slice(path, 1)
    assert err.value.field == "kspace[1]"


def test_non_finite_kspace_is_refused_on_write(tmp_path):
    ksp = _kspace((1, 2, 4, 4))
    ksp[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        write_fastmri(tmp_path / "nan.h5", ksp)
    assert not (tmp_path / "nan.h5").exists()


def test_truncated_file(multicoil, tmp_path):
    data = multicoil[0].read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated") as err:
        read_slice(cut, 0)
    assert err.value.path == str(cut)


def test_not_hdf5_and_missing_file(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not an HDF5 file")
    with pytest.raises(InputError, match="HDF5"):
        read_info(text)
    with pytest.raises(InputError, match="not found"):
        read_info(tmp_path / "absent.h5")


def test_mismatched_coil_count_and_slice_range(multicoil):
    path = multicoil[0]
    with pytest.raises(InputError, match="4 coils but 8 expected"):
        read_slice(path, 0, expected_coils=8)
    with pytest.raises(InputError, match="out of range"):
        read_slice(path, 3)


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(InputError, match="mask"):
        write_fastmri(tmp_path / "bad.h5", _kspace((1, 2, 4, 6)), mask=np.ones(5))
    assert list(tmp_path.iterdir()) == []


def test_round_mantissa_error_bound():
    from medrecon.io.make_sample import round_mantissa

    values = _kspace((64,))
    rounded = round_mantissa(values, 9)
    assert rounded.dtype == np.complex64
    parts, exact = rounded.view(np.float32), values.view(np.float32)
    assert np.all(np.abs(parts - exact) <= np.abs(exact) * 2.0**-9)
    np.testing.assert_array_equal(round_mantissa(values, 23), values)


def test_shipped_sample_matches_manifest_and_schema():
    import json
    from pathlib import Path

    from medrecon.files import sha256_file as sha256
    from medrecon.io.make_sample import MANIFEST_PATH, SAMPLE_PATH
    from operators.mri import ifft2c

    entry = json.loads(Path(MANIFEST_PATH).read_text())
    assert SAMPLE_PATH.stat().st_size == entry["bytes"] < 2_000_000
    assert sha256(SAMPLE_PATH) == entry["sha256"]
    info = read_info(SAMPLE_PATH)
    assert (info.multicoil, info.num_slices, info.coils, info.kspace_shape, info.recon_size) == (
        True, 4, 8, (128, 128), (128, 128))
    assert info.attrs["acquisition"] == "AXT1"
    s = read_slice(SAMPLE_PATH, 3)
    rss = ifft2c(s.kspace).abs().square().sum(0).sqrt()
    torch.testing.assert_close(rss, s.target, rtol=1e-5, atol=1e-6)


def test_header_less_file_reads_with_fallbacks(multicoil, tmp_path):
    """Only ``kspace`` is required: without a header the crop is the stored reconstruction's size (else none)."""
    path, ksp, rec = multicoil

    def strip(hf):
        del hf["ismrmrd_header"]
        for name in ("acquisition", "max", "norm"):
            del hf.attrs[name]

    info = read_info(_edit(path, strip))
    assert not info.has_header and info.padding is None and info.attrs == {}
    assert info.kspace_shape == (12, 10) and info.encoded_size == (12, 10, 1) and info.recon_size == (8, 8)
    np.testing.assert_array_equal(read_slice(path, 1).target.numpy(), rec[1])
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as hf:
        hf.create_dataset("kspace", data=ksp)
    info = read_info(bare)
    assert info.recon_size == info.kspace_shape == (12, 10) and info.reconstructions == ()
    assert read_slice(bare, 0).target is None


def _knee_like(slices=2, coils=3, grid=(64, 40), acquired=(3, 37)):
    """fastMRI knee layout in miniature: readout oversampled x2 (object in the middle half of the rows),
    phase-encode columns outside ``acquired`` zero-padded, as in 640x368 raw knee k-space."""
    from medrecon.io.simulate import birdcage_maps
    from operators.mri import fft2c

    h, w = grid
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    images = torch.stack([((2 * yy) ** 2 + (xx / (0.7 + 0.05 * s)) ** 2 < 0.8).float() * (1 + xx) for s in
                          range(slices)]).to(torch.complex64)
    kspace = fft2c(images[:, None] * birdcage_maps(coils, grid))
    outside = torch.ones(w, dtype=torch.bool)
    outside[acquired[0] : acquired[1]] = False
    return torch.where(outside, torch.zeros((), dtype=torch.complex64), kspace)


def test_native_knee_grid_reads_and_crops_like_fastmri(tmp_path):
    """64x40 k-space with recon size 32x32 and encoding limits (a 640x368 -> 320x320 knee file in miniature)."""
    from medrecon.io.fastmri import rss_reference
    from operators.mri import ifft2c

    kspace = _knee_like()
    reference = rss_reference(kspace, (32, 32))
    assert reference.shape == (2, 32, 32)
    # the convention spelled out: ifft2c per coil at the full grid, crop rows 16:48 and columns 4:36, RSS
    manual = ifft2c(kspace)[..., 16:48, 4:36].abs().square().sum(1).sqrt()
    torch.testing.assert_close(reference, manual)
    # limits (center, maximum) = (17, 33): fastMRI's padding_left = 40 // 2 - 17 = 3, padding_right = 3 + 33 + 1
    path = write_fastmri(tmp_path / "knee.h5", kspace, reference, acquisition="CORPD_FBK", recon_size=(32, 32),
                         limits=(17, 33))
    info = read_info(path)
    assert info.kspace_shape == (64, 40) and info.encoded_size == (64, 40, 1) and info.recon_size == (32, 32)
    assert info.padding == (3, 37) and info.has_header
    s = read_slice(path, 1)
    assert s.kspace.shape == (3, 64, 40) and s.target.shape == (32, 32)
    torch.testing.assert_close(read_slice(path, 1, reconstruction="rss").target, s.target)


def test_header_in_the_published_form_reads(tmp_path):
    """A header shaped like the public knee files' (more fields, knee sizes, namespace or none)."""
    body = (
        "<version>1</version><encoding><trajectory>cartesian</trajectory>"
        "<encodedSpace><matrixSize><x>640</x><y>368</y><z>1</z></matrixSize>"
        "<fieldOfView_mm><x>280</x><y>140</y><z>4.5</z></fieldOfView_mm></encodedSpace>"
        "<reconSpace><matrixSize><x>320</x><y>320</y><z>1</z></matrixSize></reconSpace>"
        "<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>335</maximum><center>167</center>"
        "</kspace_encoding_step_1><slice><minimum>0</minimum><maximum>0</maximum><center>0</center></slice>"
        "</encodingLimits></encoding>"
    )
    for i, opening in enumerate(['<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">', "<ismrmrdHeader>"]):
        path = write_fastmri(tmp_path / f"k{i}.h5", _kspace((1, 2, 8, 8)))
        header = f'<?xml version="1.0" encoding="utf-8"?>\n{opening}{body}</ismrmrdHeader>'.encode()
        _edit(path, lambda hf, header=header: (hf.__delitem__("ismrmrd_header"),
                                              hf.create_dataset("ismrmrd_header", data=np.bytes_(header))))
        info = read_info(path)
        assert info.encoded_size == (640, 368, 1) and info.recon_size == (320, 320)
        assert info.padding == (368 // 2 - 167, 368 // 2 - 167 + 336)
