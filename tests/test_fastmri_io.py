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
        (lambda hf: hf.__delitem__("ismrmrd_header"), "ismrmrd_header"),
        (lambda hf: hf.attrs.__delitem__("acquisition"), "acquisition"),
        (lambda hf: hf.attrs.__delitem__("max"), "max"),
        (lambda hf: hf.attrs.__delitem__("norm"), "norm"),
        (lambda hf: (hf.__delitem__("kspace"), hf.create_dataset("kspace", data=_kspace((12, 10)))), "kspace"),
        (lambda hf: (hf.__delitem__("kspace"), hf.create_dataset("kspace", data=np.ones((3, 4, 12, 10)))), "kspace"),
        (lambda hf: (hf.__delitem__("reconstruction_rss"),
                     hf.create_dataset("reconstruction_rss", data=np.ones((2, 8, 8)))), "reconstruction_rss"),
        (lambda hf: (hf.__delitem__("ismrmrd_header"), hf.create_dataset("ismrmrd_header", data=b"<not xml")),
         "ismrmrd_header"),
        (lambda hf: hf.create_dataset("mask", data=np.ones(7)), "mask"),
    ],
    ids=["no-kspace", "no-header", "no-acquisition", "no-max", "no-norm", "kspace-2d", "kspace-real",
         "recon-slices", "bad-header", "mask-length"],
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
