"""MR images of the ITK examples (``medrecon.training.itk_mr``): the MetaImage reader, the framed slices, the
``--real-itk`` training option of ``training.mri_synth`` and the ``itk`` set of ``bench mri_prior``. Tiny files
written here stand in for the Debian package's data; one test reads the real files where they are installed."""
import functools
import json

import numpy as np
import pytest

from medrecon.errors import InputError
from medrecon.files import sha256_file
from medrecon.training import itk_mr, mri_synth
from medrecon.training.itk_mr import ITK_DATA, ItkSource, itk_mr_slices, read_metaimage
from tests.head_template_support import ellipsoid_template


def _header(fields: dict) -> bytes:
    return "".join(f"{k} = {v}\n" for k, v in fields.items()).encode()


def _mha(path, fields: dict, data: bytes, raw: str | None = None):
    """A MetaImage header ``path`` (``ElementDataFile`` last) with ``data`` after it, or in ``raw`` beside it."""
    fields = dict(fields, ElementDataFile=raw or "LOCAL")
    path.write_bytes(_header(fields) + (b"" if raw else data))
    if raw:
        (path.parent / raw).write_bytes(data)
    return path


UCHAR = {"ObjectType": "Image", "NDims": 3, "BinaryData": "True", "BinaryDataByteOrderMSB": "False",
         "CompressedData": "False", "ElementSpacing": "1 1 1", "DimSize": "4 3 2", "ElementType": "MET_UCHAR"}
ZYX = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10  # as stored: x varies fastest


def _complex_fields(dims=(3, 2)):
    return {"NDims": 2, "DimSize": f"{dims[0]} {dims[1]}", "ElementNumberOfChannels": 2, "ElementType": "MET_FLOAT",
            "ElementSpacing": "1 1", "BinaryDataByteOrderMSB": "False"}


def _write_png(path, img):
    from skimage.io import imsave

    imsave(path, img, check_contrast=False)
    return path


def _write_nifti(path, data, zooms=(2.0, 2.0, 3.0)):
    """Stored axes (L, S, A) like ``KmeansTest_T1UCharRaw.nii.gz``: x towards the left, y up, z forwards."""
    import nibabel as nib

    affine = np.array([[-zooms[0], 0, 0, 0], [0, 0, zooms[2], 0], [0, zooms[1], 0, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def _nifti_volume() -> np.ndarray:
    """(x, y, z) = (6, 5, 4) int16: slice 0 empty, slice 3 one voxel (head fraction 1/30), 1 and 2 filled."""
    vol = np.zeros((6, 5, 4), np.int16)
    vol[..., 1] = np.arange(30).reshape(6, 5) + 1
    vol[..., 2] = 200 - np.arange(30).reshape(6, 5)
    vol[2, 2, 3] = 50
    return vol


@pytest.fixture()
def itk_dir(tmp_path):
    """Tiny stand-ins for every file of ``itk_mr.SOURCES``."""
    d = tmp_path / "Data"
    d.mkdir()
    _write_nifti(d / "KmeansTest_T1UCharRaw.nii.gz", _nifti_volume())
    _mha(d / "BrainProtonDensity3Slices.mha", dict(UCHAR, DimSize="4 3 3"),
         np.arange(36, dtype=np.uint8).tobytes(), raw="BrainProtonDensity3Slices.raw")
    pairs = np.array([[3, 4], [0, 1], [6, 8], [5, 12], [1, 0], [0, 0]], "<f4")
    _mha(d / "itkBrainSliceComplex.mha", _complex_fields(), pairs.tobytes())
    rng = np.random.default_rng(0)
    for name, shape in [("BrainT1Slice.png", (7, 5)), ("BrainProtonDensitySlice.png", (7, 5)),
                        ("BrainMidSagittalSlice.png", (5, 7)), ("FatMRISlice.png", (8, 8))]:
        _write_png(d / name, rng.integers(1, 255, shape, dtype=np.uint8))
    return d


def _centre(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    n = frame.shape[0]
    r, c = (n - shape[0]) // 2, (n - shape[1]) // 2
    assert not frame[:r].any() and not frame[r + shape[0]:].any()
    assert not frame[:, :c].any() and not frame[:, c + shape[1]:].any()
    return frame[r:r + shape[0], c:c + shape[1]]


# --- MetaImage reader ---------------------------------------------------------------------------------------------

def test_local_and_separate_uchar_data_are_read_in_dimsize_order(tmp_path):
    local, spacing = read_metaimage(_mha(tmp_path / "a.mha", dict(UCHAR, ElementSpacing="0.5 0.75 3"), ZYX.tobytes()))
    assert local.shape == (4, 3, 2) and local.dtype == np.uint8 and spacing == (0.5, 0.75, 3.0)
    np.testing.assert_array_equal(local, ZYX.transpose())
    assert local[1, 2, 1] == ZYX[1, 2, 1] == 10 * (12 + 8 + 1)
    separate, spacing = read_metaimage(_mha(tmp_path / "b.mhd", UCHAR, ZYX.tobytes(), raw="b.raw"))
    np.testing.assert_array_equal(separate, local)
    assert spacing == (1.0, 1.0, 1.0)
    assert itk_mr.itk_mr_files(tmp_path, [ItkSource("b.mhd", "test", None, None)]) == [tmp_path / "b.mhd",
                                                                                        tmp_path / "b.raw"]


def test_big_endian_short_and_default_spacing(tmp_path):
    values = np.array([[-300, 0, 1], [2, 32767, -32768]], ">i2")
    fields = {"NDims": 2, "DimSize": "3 2", "ElementType": "MET_SHORT", "ElementByteOrderMSB": "True"}
    arr, spacing = read_metaimage(_mha(tmp_path / "s.mha", fields, values.tobytes()))
    assert arr.dtype == np.int16 and arr.dtype.isnative and spacing == (1.0, 1.0)
    np.testing.assert_array_equal(arr, values.astype(np.int16).T)


def test_two_channels_are_complex(tmp_path):
    pairs = np.array([[3, 4], [0, -1], [6, 8], [5, 12], [1.5, 0], [0, 0]], "<f4")
    arr, spacing = read_metaimage(_mha(tmp_path / "c.mha", _complex_fields(), pairs.tobytes()))
    assert arr.shape == (3, 2) and arr.dtype == np.complex64 and spacing == (1.0, 1.0)
    expected = (pairs[:, 0] + 1j * pairs[:, 1]).reshape(2, 3).T
    np.testing.assert_array_equal(arr, expected)
    doubles = np.array([[1, 2], [3, 4]], ">f8")
    fields = dict(_complex_fields((2, 1)), ElementType="MET_DOUBLE", BinaryDataByteOrderMSB="True")
    arr, _ = read_metaimage(_mha(tmp_path / "d.mha", fields, doubles.tobytes()))
    assert arr.dtype == np.complex128
    np.testing.assert_array_equal(arr, [[1 + 2j], [3 + 4j]])


@pytest.mark.parametrize("change, data, field, words", [
    ({"CompressedData": "True"}, ZYX.tobytes(), "CompressedData", "compressed"),
    ({"DimSize": None}, ZYX.tobytes(), "DimSize", "missing"),
    ({"DimSize": "4 3"}, ZYX.tobytes(), "DimSize", "expected 3"),
    ({"DimSize": "4 x 2"}, ZYX.tobytes(), "DimSize", "expected 3"),
    ({"ElementType": "MET_LONG_LONG_ARRAY"}, ZYX.tobytes(), "ElementType", "MET_UCHAR"),
    ({"ElementNumberOfChannels": 3}, ZYX.tobytes(), "ElementNumberOfChannels", "1 or 2"),
    ({"BinaryDataByteOrderMSB": "maybe"}, ZYX.tobytes(), "BinaryDataByteOrderMSB", "True or False"),
    ({}, ZYX.tobytes()[:-5], "ElementDataFile", "truncated data"),
    ({}, ZYX.tobytes() + b"xx", "ElementDataFile", "more data"),
])
def test_refusals_name_the_file_and_the_field(tmp_path, change, data, field, words):
    fields = {k: v for k, v in dict(UCHAR, **change).items() if v is not None}
    path = _mha(tmp_path / "bad.mha", fields, data)
    with pytest.raises(InputError) as err:
        read_metaimage(path)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and str(path) in message and f"[{field}]" in message and words in message
    assert err.value.field == field


def test_separate_data_file_refusals(tmp_path):
    path = tmp_path / "h.mhd"
    path.write_bytes(_header(dict(UCHAR, ElementDataFile="absent.raw")))
    with pytest.raises(InputError, match=r"\[ElementDataFile\].*absent.raw not found"):
        read_metaimage(path)
    path.write_bytes(_header(dict(UCHAR, ElementDataFile="../elsewhere/x.raw")))
    with pytest.raises(InputError, match="beside the header"):
        read_metaimage(path)
    _mha(path, UCHAR, ZYX.tobytes()[:10], raw="short.raw")
    with pytest.raises(InputError, match="truncated data: short.raw holds 10 bytes.*expected 24"):
        read_metaimage(path)
    path.write_bytes(_header({"NDims": 2, "DimSize": "2 2"}))
    with pytest.raises(InputError, match=r"\[ElementDataFile\]: missing ElementDataFile"):
        read_metaimage(path)


# --- framed slices ---------------------------------------------------------------------------------------------

def test_slices_are_framed_at_their_own_size_and_scaled_per_volume(itk_dir):
    images, records = itk_mr_slices(16, itk_dir)
    assert images.shape == (len(records), 16, 16) and images.dtype == np.float32
    assert [(r["file"], r["slice"]) for r in records] == [
        ("KmeansTest_T1UCharRaw.nii.gz", 1), ("KmeansTest_T1UCharRaw.nii.gz", 2),  # slices 0 and 3: no head
        ("BrainProtonDensity3Slices.mha", 0), ("BrainProtonDensity3Slices.mha", 1),
        ("BrainProtonDensity3Slices.mha", 2), ("itkBrainSliceComplex.mha", 0), ("BrainT1Slice.png", 0),
        ("BrainProtonDensitySlice.png", 0), ("BrainMidSagittalSlice.png", 0), ("FatMRISlice.png", 0)]
    assert [r["pixel_mm"] for r in records] == [2.0] * 2 + [1.0] * 4 + [None] * 4
    # NIfTI: stored (L, S, A); the coronal plane shows superior up and the patient's right on the right
    vol = _nifti_volume().astype(np.float64)
    scale = np.percentile(vol, 99.5)
    for k, z in enumerate((1, 2)):
        expected = vol[::-1, ::-1, z].T  # rows: S from the top, columns: x from the right (R)
        np.testing.assert_array_equal(_centre(images[k], (5, 6)), (expected / scale).astype(np.float32))
    assert _centre(images[1], (5, 6))[0, 0] == np.float32(vol[5, 4, 2] / scale)  # top left: superior, right side
    # MetaImage: as displayed (row y, column x), one scale for the three slices
    zyx = np.arange(36, dtype=np.float64).reshape(3, 3, 4)
    for k in range(3):
        np.testing.assert_array_equal(_centre(images[2 + k], (3, 4)),
                                      (zyx[k] / np.percentile(zyx, 99.5)).astype(np.float32))
    magnitude = np.array([5, 1, 10, 13, 1, 0], np.float64).reshape(2, 3)
    np.testing.assert_allclose(_centre(images[5], (2, 3)), magnitude / np.percentile(magnitude, 99.5), rtol=1e-6)
    # PNG: as displayed
    from skimage.io import imread

    for k, name in enumerate(["BrainT1Slice.png", "BrainProtonDensitySlice.png", "BrainMidSagittalSlice.png",
                              "FatMRISlice.png"]):
        png = imread(itk_dir / name).astype(np.float64)
        np.testing.assert_array_equal(_centre(images[6 + k], png.shape),
                                      (png / np.percentile(png, 99.5)).astype(np.float32))


def test_grey_rgb_png_is_read_and_colour_is_refused(tmp_path):
    grey = np.arange(1, 13, dtype=np.uint8).reshape(3, 4) * 20
    _write_png(tmp_path / "rgb.png", np.repeat(grey[..., None], 3, axis=2))
    images, _ = itk_mr_slices(6, tmp_path, [ItkSource("rgb.png", "test", (0,), None)])
    np.testing.assert_array_equal(_centre(images[0], (3, 4)),
                                  (grey / np.percentile(grey.astype(np.float64), 99.5)).astype(np.float32))
    colour = np.zeros((3, 4, 3), np.uint8)
    colour[..., 0] = 200
    _write_png(tmp_path / "colour.png", colour)
    with pytest.raises(InputError, match="colour"):
        itk_mr_slices(6, tmp_path, [ItkSource("colour.png", "test", (0,), None)])


def test_missing_data_pixel_size_and_frame_errors(tmp_path, itk_dir):
    with pytest.raises(FileNotFoundError, match="apt-get install insighttoolkit5-examples"):
        itk_mr_slices(16, tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        itk_mr_slices(16, itk_dir, [ItkSource("nothing.png", "test", (0,), None)])
    with pytest.raises(InputError, match="pixel size"):
        itk_mr_slices(16, itk_dir, [ItkSource("KmeansTest_T1UCharRaw.nii.gz", "test", None, 1.0)])
    with pytest.raises(InputError, match="no slice 3"):
        itk_mr_slices(16, itk_dir, [ItkSource("BrainProtonDensity3Slices.mha", "test", (3,), 1.0)])
    with pytest.raises(ValueError, match="does not fit"):
        itk_mr_slices(7, itk_dir)


# --- training option ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _ellipsoid_template():
    return ellipsoid_template((150, 180, 60), (75, 90, 15), (50, 62, 45), (75, 90, 18), (8, 25, 10), 0.78, (5, 45))


def _run(tmp_path, monkeypatch, name: str, extra: list[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    monkeypatch.setattr(mri_synth, "head_template", _ellipsoid_template)
    manifests = tmp_path / f"manifests_{name}"
    monkeypatch.setattr(mri_synth, "MANIFEST_PATH", manifests / "prior_mri_synth_train.json")
    out = tmp_path / name
    assert mri_synth.main(["--out", str(out), "--count", "2", "--size", "16", "16"] + extra) == 0
    manifest = json.loads((manifests / "prior_mri_synth_train.json").read_text())
    return np.load(out / "train.npy"), np.load(out / "heldout.npy"), manifest


def test_real_itk_option_appends_augmented_copies_and_records_the_files(tmp_path, monkeypatch, itk_dir):
    plain, plain_held, plain_m = _run(tmp_path, monkeypatch, "plain", [])
    train, held, m = _run(tmp_path, monkeypatch, "itk", ["--real-itk", "2", "--itk-data", str(itk_dir)])
    n = len(itk_mr_slices(16, itk_dir)[1])
    assert n == 10 and train.shape == (2 + 2 * n, 16, 16) and train.dtype == np.float16
    assert np.array_equal(train[:2], plain) and np.array_equal(held, plain_held)  # the synthetic part unchanged
    assert "itk" not in plain_m["selection"] and plain_m["selection"]["real_images"] == "none"
    assert plain_m["counts"] == {"train": 2, "synthetic": 2, "heldout": 32} and "ITK" not in plain_m["licence"]
    frames, records = itk_mr_slices(itk_mr.FRAME, itk_dir)
    for c, i in [(0, 0), (0, 7), (1, 3)]:
        expected = mri_synth.augment_real_slice(frames[i], c * n + i, (16, 16), records[i]["pixel_mm"])
        np.testing.assert_allclose(train[2 + c * n + i], expected, atol=2e-3)
    real = train[2:].astype(np.float32)
    assert np.isfinite(real).all() and real.min() >= 0
    assert not np.allclose(real[:n], real[n:])  # the copies differ
    assert m["counts"] == {"train": 2 + 2 * n, "synthetic": 2, "heldout": 32, "itk": 2 * n}
    assert f"--real-itk 2 --itk-data {itk_dir}" in m["generator"]
    assert "Apache-2.0" in m["licence"] and "insighttoolkit5-examples" in m["licence"]
    itk = m["selection"]["itk"]
    assert itk["copies"] == 2 and itk["count"] == n and itk["seeds"] == [0, 2 * n]
    assert "Apache-2.0" in itk["license"] and "insighttoolkit5-examples" in itk["license"]
    expected_files = [s.file for s in itk_mr.SOURCES]
    expected_files.insert(2, "BrainProtonDensity3Slices.raw")
    assert list(itk["files"]) == expected_files
    assert all(itk["files"][f] == sha256_file(itk_dir / f) for f in expected_files)
    assert itk["slices"]["KmeansTest_T1UCharRaw.nii.gz"] == [1, 2] and itk["pixel_mm"]["FatMRISlice.png"] is None
    assert "ITK" in m["selection"]["real_images"]


def test_augmented_real_slice_is_deterministic_and_normalised():
    image = np.zeros((64, 64), np.float32)
    image[16:48, 20:44] = np.linspace(0.2, 1.0, 24)[None]
    a = mri_synth.augment_real_slice(image, 3, (24, 20), pixel_mm=2.0)
    assert a.shape == (24, 20) and a.dtype == np.float32 and a.min() >= 0
    np.testing.assert_array_equal(a, mri_synth.augment_real_slice(image, 3, (24, 20), pixel_mm=2.0))
    assert not np.allclose(a, mri_synth.augment_real_slice(image, 4, (24, 20), pixel_mm=2.0))
    assert np.percentile(a, 99.5) == pytest.approx(1.0, rel=1e-3)
    image = np.zeros((64, 64), np.float32)
    image[24:40, 26:38] = np.linspace(0.2, 1.0, 12)[None]  # 16 x 12 pixels
    small = mri_synth.augment_real_slice(image, 3, (96, 96), pixel_mm=1.0, spacing_mm=(2.0, 2.0))
    large = mri_synth.augment_real_slice(image, 3, (96, 96), pixel_mm=1.0, spacing_mm=(0.5, 0.5))
    assert 10 < (large > 0.1).sum() / (small > 0.1).sum() < 22  # 4x the pixel size: a 16th of the area
    half = image[::2, ::2]  # the same object at 2 mm
    as_2mm = mri_synth.augment_real_slice(half, 3, (96, 96), pixel_mm=2.0, spacing_mm=(2.0, 2.0))
    assert (as_2mm > 0.1).sum() == pytest.approx((small > 0.1).sum(), rel=0.25)


def test_negative_real_itk_count_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        mri_synth.main(["--out", str(tmp_path), "--real-itk", "-1"])


def test_the_prior_bench_has_an_itk_set(monkeypatch, itk_dir):
    pytest.importorskip("torch")
    from medrecon.bench import mri_prior

    real = itk_mr.itk_mr_slices
    monkeypatch.setattr(itk_mr, "itk_mr_slices", lambda size=itk_mr.FRAME: real(size, itk_dir))
    (title, arr), = mri_prior.sets(("itk",), count=2).items()
    assert "ITK" in title and arr.shape == (2, 256, 256) and np.iscomplexobj(arr)
    np.testing.assert_allclose(np.abs(arr), real(256, itk_dir)[0][:2], atol=1e-5)


# --- the installed files ---------------------------------------------------------------------------------------------

@pytest.mark.skipif(not ITK_DATA.exists(), reason="apt-get install insighttoolkit5-examples")
def test_the_installed_itk_examples():
    images, records = itk_mr_slices()
    assert images.shape == (64, 256, 256) and images.dtype == np.float32 and images.min() >= 0
    counts = {}
    for r in records:
        counts[r["file"]] = counts.get(r["file"], 0) + 1
    assert counts == {"KmeansTest_T1UCharRaw.nii.gz": 56, "BrainProtonDensity3Slices.mha": 3,
                      "itkBrainSliceComplex.mha": 1, "BrainT1Slice.png": 1, "BrainProtonDensitySlice.png": 1,
                      "BrainMidSagittalSlice.png": 1, "FatMRISlice.png": 1}
    t1 = [r["slice"] for r in records if r["file"].startswith("Kmeans")]
    assert t1 == list(range(1, 57))
    rows = np.nonzero(images[28].any(axis=1))[0]
    assert rows.max() - rows.min() + 1 <= 128  # 2 mm slices kept at their size in the frame
    from skimage.io import imread

    arr, spacing = read_metaimage(ITK_DATA / "itkBrainSliceComplex.mha")
    assert arr.shape == (181, 217) and arr.dtype == np.complex64 and spacing == (1.0, 1.0)
    np.testing.assert_array_equal(arr.real.T, imread(ITK_DATA / "BrainProtonDensitySlice.png")[..., 0])
    np.testing.assert_array_equal(arr.imag.T, imread(ITK_DATA / "BrainT1Slice.png")[..., 0])
    with pytest.raises(InputError, match="CompressedData"):
        read_metaimage(ITK_DATA / "BrainProtonDensitySliceBorder20DirectionPlus30.mhd")
