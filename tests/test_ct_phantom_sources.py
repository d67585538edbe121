"""FORBILD (odl) and xdesign phantoms as extra CT head training slices (``medrecon.training.ct_phantoms``) and
their command-line options in ``medrecon.training.head_ct``."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from packaging.version import Version

from medrecon.training import ct_phantoms as cp
from medrecon.training import head_ct
from tests.head_template_support import ellipsoid_template

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def small_template(monkeypatch):
    """An ellipsoid "brain" in place of the MNI152 maps (as in test_head_ct.py)."""
    tpl = ellipsoid_template((96, 112, 40), (48, 56, 10), (30, 36, 25), (48, 56, 12), (5, 14, 8), 0.85, (2, 30))
    monkeypatch.setattr(head_ct, "head_template", lambda: tpl)
    return tpl


@pytest.fixture()
def odl():
    return pytest.importorskip("odl")


@pytest.fixture()
def xdesign():
    from importlib.util import find_spec

    if find_spec("xdesign") is None:
        pytest.skip("xdesign is not installed")
    return cp.import_xdesign()


def test_the_package_imports_without_odl_or_xdesign():
    code = ("import sys; import medrecon.training.head_ct, medrecon.training.ct_phantoms; "
            "assert not {'odl', 'xdesign'} & set(sys.modules), sorted({'odl', 'xdesign'} & set(sys.modules))")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_forbild_slices_have_the_shape_range_and_are_deterministic(odl):
    a = cp.forbild_slices([0, 1, 2], size=32)
    assert a.shape == (3, 32, 32) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1 and a.min() == 0  # air outside the head
    assert np.array_equal(a, cp.forbild_slices([0, 1, 2], size=32))
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    np.testing.assert_array_equal(a[2], head_ct.hu_to_unit(cp.random_forbild_hu(2, 32)))
    assert cp.forbild_slices([], size=8).shape == (0, 8, 8)
    with pytest.raises(ValueError, match="spacing_mm"):
        cp.random_forbild_hu(0, 16, (1.0, 0.5))


def test_the_nominal_forbild_map_puts_brain_near_water_and_bone_in_a_ring(odl):
    rho = cp.forbild_density(1.6, True)
    hu = cp.forbild_hu(rho)
    np.testing.assert_allclose(hu, 1000 * (rho - 1), atol=1e-9)  # the nominal map
    n = hu.shape[0]
    c = (n - 1) / 2
    assert hu[0, 0] == -1000 and 40 <= hu[int(c), int(c)] <= 60  # air at the corner, brain (+50 HU) in the middle
    for angle in np.linspace(0, 2 * np.pi, 24, endpoint=False):  # every ray from the centre leaves through bone
        t = np.arange(0, c)
        ray = hu[np.round(c - t * np.sin(angle)).astype(int), np.round(c + t * np.cos(angle)).astype(int)]
        last = np.flatnonzero(ray > -500)[-1]
        assert ray[last] > 700 and ray[last + 1:].max() == -1000
    assert (hu > 500).mean() > 0.03 and (np.abs(hu - 50) <= 5).mean() > 0.3  # skull and brain


def test_forbild_slices_keep_their_structure_under_the_jitter(odl):
    for seed in range(4):
        hu = cp.random_forbild_hu(seed, size=64)
        soft = hu[(hu > -100) & (hu < 200)]
        assert soft.size > 0.2 * hu.size and 20 <= np.median(soft) <= 65  # brain near water
        assert np.percentile(hu, 99) > 500 and hu.max() <= 1300  # a bright skull
        assert np.median(hu[[0, -1], :]) == -1000  # air at the field's edge
        assert np.percentile(hu[hu > 500], 50) > np.median(soft) + 400


def test_forbild_pixel_spacing_sets_the_head_size(odl):
    area = {s: (cp.random_forbild_hu(3, 64, (s, s)) > -500).sum() for s in (3.0, 6.0)}
    assert 3.2 < area[3.0] / area[6.0] < 4.8


def test_xdesign_slices_have_the_shape_range_and_are_deterministic(xdesign):
    state = np.random.get_state()
    a = cp.xdesign_slices([0, 2, 7], size=32)  # foam, doga circles, foam again
    assert np.array_equal(np.random.get_state()[1], state[1])  # numpy's global generator is left as it was
    assert a.shape == (3, 32, 32) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert np.array_equal(a, cp.xdesign_slices([0, 2, 7], size=32))
    assert not np.array_equal(a[0], a[2])  # same kind, other seed
    np.testing.assert_array_equal(a[1], head_ct.hu_to_unit(cp.random_xdesign_hu(2, 32)))


@pytest.mark.parametrize("kind", cp.XDESIGN_KINDS)
def test_every_xdesign_kind_is_an_object_in_air(xdesign, kind):
    hu = cp.random_xdesign_hu(11, size=32, kind=kind)
    assert hu.shape == (32, 32) and hu.dtype == np.float32 and np.isfinite(hu).all()
    assert -1000 <= hu.min() and hu.max() <= 1500
    assert (hu[[0, 0, -1, -1], [0, -1, 0, -1]] == -1000).all()  # air in the corners
    assert (hu > -500).mean() > 0.1 and np.ptp(hu[hu > -500]) > 5  # an object with inner contrast


def test_xdesign_imports_without_side_effects(xdesign):
    """No root-logger handler (xdesign calls ``logging.basicConfig()``) and no stand-in ``pkg_resources`` left."""
    code = ("import logging, sys; from medrecon.training.ct_phantoms import import_xdesign; "
            "before = list(logging.getLogger().handlers); xd = import_xdesign(); "
            "assert logging.getLogger().handlers == before, logging.getLogger().handlers; "
            "assert 'pkg_resources' not in sys.modules or hasattr(sys.modules['pkg_resources'], '__file__'); "
            "assert import_xdesign() is xd and callable(xd.discrete_phantom)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_package_records_read_the_licences_from_the_metadata(odl, xdesign):
    assert cp.package_record("forbild") == {"package": "odl", "version": odl.__version__, "licence": "MPL-2.0"}
    rec = cp.package_record("xdesign")
    assert rec["package"] == "xdesign" and rec["licence"] == "BSD-3" and Version(rec["version"]) >= Version("0.5.5")


def test_cli_appends_the_phantom_slices_and_records_them(small_template, odl, xdesign, tmp_path):
    assert head_ct.main(["--out", str(tmp_path), "--manifests", str(tmp_path), "--n-head", "1", "--n-phantom",
                         "1", "--n-forbild", "2", "--n-xdesign", "3", "--size", "16"]) == 0
    arr = np.load(tmp_path / "ct_head_train.npy")
    assert arr.shape == (7, 16, 16)
    np.testing.assert_allclose(arr[2:4], cp.forbild_slices(range(2), 16), atol=1e-3)
    np.testing.assert_allclose(arr[4:], cp.xdesign_slices(range(3), 16), atol=1e-3)
    m = json.loads((tmp_path / "prior_ct_head_train.json").read_text())
    assert m["counts"] == {"head": 1, "phantom": 1, "forbild": 2, "xdesign": 3}
    assert "--n-forbild 2 --n-xdesign 3 --size 16" in m["generator"]
    src = m["phantom_sources"]
    assert src["forbild"]["package"] == "odl" and src["forbild"]["licence"] == "MPL-2.0"
    assert src["xdesign"]["package"] == "xdesign" and src["xdesign"]["licence"] == "BSD-3"
    assert src["forbild"]["count"] == 2 and src["xdesign"]["seeds"] == [0, 3]
    assert m["versions"]["odl"] == src["forbild"]["version"] and m["versions"]["xdesign"] == src["xdesign"]["version"]
    assert "MPL-2.0" in m["licence"] and "BSD-3" in m["licence"]
    sel = m["selection"]
    assert sel["forbild_seeds"] == [0, 2] and sel["xdesign_seeds"] == [0, 3] and len(sel["sources"]) == 4
    assert sel["order"] == "head slices, then phantoms, then forbild slices, then xdesign slices"


def test_cli_passes_the_native_spacing_to_the_phantom_sources(small_template, odl, tmp_path):
    assert head_ct.main(["--out", str(tmp_path), "--manifests", str(tmp_path), "--n-head", "0", "--n-phantom",
                         "0", "--n-forbild", "1", "--size", "16", "--spacing", "4", "5"]) == 0
    arr = np.load(tmp_path / "ct_head_native_train.npy")
    np.testing.assert_allclose(arr[0], head_ct.hu_to_unit(cp.random_forbild_hu(0, 16, (4, 5))), atol=1e-3)
    m = json.loads((tmp_path / "prior_ct_head_native_train.json").read_text())
    assert m["counts"] == {"head": 0, "phantom": 0, "forbild": 1} and "xdesign" not in m["phantom_sources"]
    with pytest.raises(SystemExit):
        head_ct.main(["--out", str(tmp_path), "--n-forbild", "-1"])


def test_the_default_output_is_unchanged(small_template, tmp_path):
    """Without the new options the array is the head slices then the ellipse phantoms, as before, and the
    manifest has exactly the keys, counts, versions and command it had."""
    arr, record = head_ct.ct_head_training_set(2, 1, size=16)
    old = np.concatenate([head_ct.hu_to_unit(head_ct.head_ct_slices(range(2), 16)),
                          head_ct.hu_to_unit(head_ct.random_ct_phantom(0, 16))[None]]).astype(np.float32)
    assert arr.dtype == np.float32 and np.array_equal(arr, old)
    same, same_record = head_ct.ct_head_training_set(2, 1, 16, None, 0, 0)
    assert np.array_equal(arr, same) and record == same_record
    assert set(record) == {"sources", "hu_window", "mapping", "head_seeds", "phantom_seeds", "order",
                           "heldout_head_seeds", "heldout_phantom_seeds", "pixel_spacing_mm", "real_images"}
    assert record["order"] == "head slices first, then phantoms" and len(record["sources"]) == 2
    assert head_ct.main(["--out", str(tmp_path), "--manifests", str(tmp_path), "--n-head", "2", "--n-phantom",
                         "1", "--size", "16"]) == 0
    m = json.loads((tmp_path / "prior_ct_head_train.json").read_text())
    assert set(m) == {"name", "modality", "image_size", "licence", "generator", "counts", "train", "heldout",
                      "versions", "selection"}
    assert m["counts"] == {"head": 2, "phantom": 1} and set(m["versions"]) == {"python", "nilearn", "scipy",
                                                                                "numpy", "medrecon"}
    assert m["generator"].endswith("--n-head 2 --n-phantom 1 --size 16)") and m["selection"] == json.loads(
        json.dumps(record))
    np.testing.assert_allclose(np.load(tmp_path / "ct_head_train.npy"), old, atol=1e-3)
    with pytest.raises(ValueError, match="n_forbild"):
        head_ct.ct_head_training_set(0, 0, 16, None, head_ct.HEAD_CT_HELDOUT_SEEDS[0] + 1)
