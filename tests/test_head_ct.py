"""Synthetic head CT (``medrecon.training.head_ct``) and fine-tuning from a prior (``train.init_from``, ``data.crop``)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from medrecon.errors import ConfigError
from medrecon.training import config as train_config
from medrecon.training import head_ct
from medrecon.training import train as train_mod
from tests.head_template_support import ellipsoid_template

pytest.importorskip("nilearn")


@pytest.fixture()
def small_template(monkeypatch):
    """A 96 x 112 x 40 mm ellipsoid "brain" (GM rim, WM core, CSF ventricles) in place of the MNI152 maps."""
    tpl = ellipsoid_template((96, 112, 40), (48, 56, 10), (30, 36, 25), (48, 56, 12), (5, 14, 8), 0.85, (2, 30))
    monkeypatch.setattr(head_ct, "head_template", lambda: tpl)
    return tpl


def test_slices_have_the_shape_and_are_deterministic(small_template):
    a = head_ct.head_ct_slices([3, 4], size=32)
    b = head_ct.head_ct_slices([3, 4], size=32)
    assert a.shape == (2, 32, 32) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])
    np.testing.assert_array_equal(a[1], head_ct.random_head_ct(4, size=32))


def test_air_outside_brain_and_skull_present(small_template):
    for seed in range(6):
        hu = head_ct.random_head_ct(seed, size=64)
        assert np.median(hu[[0, -1], :]) < -950  # air at the field's edge
        soft = (hu > -50) & (hu < 100)
        assert soft.mean() > 0.03  # brain and scalp
        assert (hu > 500).sum() >= 10  # bone


def test_scanner_pixel_spacing_sets_the_head_size(small_template):
    """``spacing_mm`` fixes the mm per pixel whatever the grid; without it the frame holds a 220-300 mm field."""
    area = {s: (head_ct.random_head_ct(2, 96, (s, s)) > -500).sum() for s in (1.5, 3.0)}
    assert 3.2 < area[1.5] / area[3.0] < 4.8
    np.testing.assert_array_equal(head_ct.random_head_ct(2, 32), head_ct.head_ct_slices([2], 32)[0])
    with pytest.raises(ValueError, match="spacing_mm"):
        head_ct.random_head_ct(0, 16, (1.0, 0.5))


def test_cli_writes_native_spacing_arrays_under_their_own_name(small_template, tmp_path):
    import json

    assert head_ct.main(["--out", str(tmp_path), "--manifests", str(tmp_path), "--n-head", "2", "--n-phantom",
                         "1", "--size", "32", "--spacing", "2", "3"]) == 0
    arr = np.load(tmp_path / "ct_head_native_train.npy")
    assert arr.shape == (3, 32, 32)
    np.testing.assert_allclose(arr[1], head_ct.hu_to_unit(head_ct.random_head_ct(1, 32, (2, 3))), atol=1e-3)
    m = json.loads((tmp_path / "prior_ct_head_native_train.json").read_text())
    assert m["name"] == "prior_ct_head_native_train" and m["image_size"] == 32
    assert m["selection"]["pixel_spacing_mm"] == [2.0, 3.0] and "--size 32 --spacing 2 3" in m["generator"]
    assert not (tmp_path / "ct_head_train.npy").exists()


@pytest.mark.slow
def test_the_mni152_template_loads_offline_and_gives_head_slices():
    tpl = head_ct.head_template()
    assert tpl.gm.shape == tpl.dist.shape == (197 + 2 * head_ct.PAD_MM, 233 + 2 * head_ct.PAD_MM,
                                              189 + 2 * head_ct.PAD_MM)
    assert 0 < tpl.z_range[0] < tpl.z_range[1] < tpl.gm.shape[2]
    assert tpl.csf.max() <= 1 and (tpl.gm + tpl.wm + tpl.csf).max() <= 1 + 1e-5
    hu = head_ct.random_head_ct(0, size=32)
    assert hu.shape == (32, 32) and hu.min() < -900 and hu.max() > 500


def _disc_dist(n: int = 96, r: float = 25.0) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return np.clip(np.hypot(yy - n / 2, xx - n / 2) - r, 0, None)


def test_class_hu_ranges():
    rng = np.random.default_rng(0)
    n = 96
    one, zero = np.ones((n, n)), np.zeros((n, n))
    for _ in range(5):
        assert 34 <= np.median(head_ct._brain_hu(rng, one, zero, zero)) <= 46
        assert 24 <= np.median(head_ct._brain_hu(rng, zero, one, zero)) <= 33
        assert 0 <= np.median(head_ct._brain_hu(rng, zero, zero, one)) <= 15
        dist = _disc_dist(n)
        hu = np.full((n, n), head_ct.AIR_HU)
        masks = head_ct._skull_and_scalp(rng, dist, hu)
        assert masks["bone"].any() and masks["scalp"].any() and masks["gap"].any()
        bone = hu[masks["bone"]]
        assert 650 <= bone.max() <= 1800 and bone.min() >= 0  # cortical tables and a lower-density diploe
        scalp = hu[masks["scalp"]]
        assert np.median(scalp) >= -130 and np.percentile(scalp, 90) <= 80
        assert (hu[dist > 40] == head_ct.AIR_HU).all()


def test_training_set_mixes_head_slices_and_phantoms_in_the_window(small_template):
    arr, record = head_ct.ct_head_training_set(3, 2, size=32)
    assert arr.shape == (5, 32, 32) and arr.dtype == np.float32
    assert arr.min() >= 0 and arr.max() <= 1
    np.testing.assert_array_equal(arr[:3], head_ct.hu_to_unit(head_ct.head_ct_slices(range(3), 32)))
    assert record["head_seeds"] == [0, 3] and record["phantom_seeds"] == [0, 2]
    assert not set(range(3)) & set(head_ct.HEAD_CT_HELDOUT_SEEDS)


# ------------------------------------------------------------------------------ fine-tuning (init_from, crop)

TINY_MODEL = ["[model]", "channels = [8, 8]", "num_res_blocks = 1", "attention_levels = [false, false]",
              "num_head_channels = 8", "norm_num_groups = 4"]


def _config(tmp: Path, name: str, extra_data: tuple[str, ...] = (), extra_train: tuple[str, ...] = (),
            channels: str = "[8, 8]", steps: int = 2) -> Path:
    if not (tmp / "train.npy").exists():
        np.save(tmp / "train.npy", np.random.default_rng(0).random((6, 16, 16)).astype(np.float32))
    model = [line if not line.startswith("channels") else f"channels = {channels}" for line in TINY_MODEL]
    lines = [f'name = "{name}"', 'modality = "ct"', "[data]", 'source = "npy"', f'path = "{tmp / "train.npy"}"',
             "image_size = 16", *extra_data, *model, "[train]", "batch_size = 2", f"max_steps = {steps}",
             "warmup_steps = 1", "validate_every = 0", "n_samples = 0", 'precision = "fp32"', *extra_train]
    path = tmp / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _train(cfg_path: Path, out: Path) -> dict:
    cfg = train_config.load_config(cfg_path)
    return train_mod.train(train_mod.Run(cfg=cfg, out=out, device=torch.device("cpu"), progress=False,
                                         command="test"))


def test_init_from_starts_at_the_given_weights_and_keeps_its_preconditioning(tmp_path):
    from safetensors.torch import load_file

    base = _train(_config(tmp_path, "base", extra_train=("sigma_data = 0.21",)), tmp_path / "base")
    tuned = _train(_config(tmp_path, "tuned", extra_train=(f'init_from = "{base["checkpoint"]}"',), steps=0),
                   tmp_path / "tuned")
    a = load_file(str(tmp_path / "base" / "base.safetensors"))
    b = load_file(str(tmp_path / "tuned" / "tuned.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    meta = train_mod.json.loads(Path(tuned["checkpoint"]).read_text())
    assert meta["preconditioning"]["sigma_data"] == pytest.approx(0.21)
    assert meta["training"]["init_from"] == base["checkpoint"]


def test_init_from_refuses_another_architecture(tmp_path):
    base = _train(_config(tmp_path, "base"), tmp_path / "base")
    other = _config(tmp_path, "other", channels="[8, 16]", extra_train=(f'init_from = "{base["checkpoint"]}"',))
    with pytest.raises(ConfigError, match="architecture"):
        _train(other, tmp_path / "other")


def test_crop_trains_on_windows_and_is_validated(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    win = train_mod.random_crop(x, 8, gen)
    assert win.shape == (2, 1, 8, 8)
    i, j = divmod(int(win[0, 0, 0, 0]), 16)
    assert torch.equal(win, x[..., i:i + 8, j:j + 8])
    summary = _train(_config(tmp_path, "crop", extra_data=("crop = 8",)), tmp_path / "crop")
    assert summary["steps"] == 2 and np.isfinite(summary["loss"])
    with pytest.raises(ConfigError, match="data.crop"):
        train_config.load_config(_config(tmp_path, "bad", extra_data=("crop = 32",)))


def test_the_training_pixel_spacing_becomes_the_sidecars_promise(tmp_path):
    import json

    _train(_config(tmp_path, "spaced", extra_data=("pixel_spacing_mm = [0.45, 1.2]",), steps=1), tmp_path / "s")
    serves = json.loads((tmp_path / "s" / "spaced.json").read_text())["serves"]
    assert serves["pixel_spacing_mm"] == [0.45, 1.2] and serves["pad"] is True
    _train(_config(tmp_path, "plain", steps=1), tmp_path / "p")
    assert "pixel_spacing_mm" not in json.loads((tmp_path / "p" / "plain.json").read_text())["serves"]
    for bad in ("[1.2, 0.45]", "[0.5]", "[0, 1]"):
        with pytest.raises(ConfigError, match="pixel_spacing_mm"):
            train_config.load_config(_config(tmp_path, "bad", extra_data=(f"pixel_spacing_mm = {bad}",)))


def test_blend_interpolates_weights_and_refuses_other_conventions(tmp_path):
    from safetensors.torch import load_file

    from medrecon.training.blend import blend_priors

    a = _train(_config(tmp_path, "a", extra_train=("sigma_data = 0.3",)), tmp_path / "a")["checkpoint"]
    b = _train(_config(tmp_path, "b", extra_train=(f'init_from = "{a}"', "seed = 1"), steps=3),
               tmp_path / "b")["checkpoint"]
    wa, wb = (load_file(str(Path(p).with_suffix(".safetensors"))) for p in (a, b))
    for alpha in (0.0, 0.5, 1.0):
        out = blend_priors(a, b, alpha, tmp_path / f"mix{alpha}")
        assert out.name == f"mix{alpha}.json"
        w = load_file(str(out.with_suffix(".safetensors")))
        for k in wa:
            want = ((1 - alpha) * wa[k].double() + alpha * wb[k].double()).half()
            assert torch.allclose(w[k].float(), want.float(), atol=1e-3, rtol=1e-3)
        meta = train_mod.json.loads(out.read_text())
        assert meta["blend"]["alpha"] == alpha and meta["preconditioning"]["sigma_data"] == pytest.approx(0.3)
    other = _train(_config(tmp_path, "other", extra_train=("sigma_data = 0.5",)), tmp_path / "other")["checkpoint"]
    with pytest.raises(ConfigError, match="preconditioning"):
        blend_priors(a, other, 0.5, tmp_path / "bad")
    with pytest.raises(ConfigError, match="alpha"):
        blend_priors(a, b, 1.5, tmp_path / "bad")


def test_the_ct_head_prior_is_shipped_and_selected_by_name_only():
    import json

    from medrecon.jobs.components import default_prior as job_prior
    from medrecon.jobs.problem import Volume
    from medrecon.priors import checkpoint as ckpt

    image = torch.zeros(1, 32, 32)
    ct = Volume("ct", None, image=image, reference=image, affine=np.eye(4))
    mri = Volume("mri", None, kspace=torch.zeros(1, 1, 32, 32, dtype=torch.complex64), reference=image)
    head = job_prior(ct, name="ct_head")
    manifest = json.loads((ckpt.MANIFEST_DIR / "prior_ct_head_default.json").read_text())
    assert head.meta["weights"] == "ct_head.safetensors" and head.meta["weights_sha256"] == manifest["sha256"]
    assert job_prior(ct).meta["weights"] == "ct.safetensors"  # the default CT prior is unchanged
    default_meta = ckpt.read_sidecar(ckpt.DEFAULT_DIR / "ct.json")
    for key in ("architecture", "parameterization", "preconditioning", "noise_schedule", "normalisation", "serves",
                "data_range"):
        assert head.meta[key] == default_meta[key]
    with torch.no_grad():
        y = head(torch.rand(2, 32, 32), 0.2)
    assert y.shape == (2, 32, 32) and torch.isfinite(y).all()
    with pytest.raises(ConfigError, match="ct_head"):
        job_prior(mri, name="ct_head")
    with pytest.raises(ValueError, match="no shipped mri prior"):
        ckpt.default_prior("mri", name="ct_head")
