"""The shipped priors at scanner pixel sizes (``mri_native``, ``ct_head_native``): each matches its manifest,
states the pixel spacings it serves, and ``prior.name = "auto"`` picks the one that serves the data's spacing."""
import json

import numpy as np
import pytest
import torch

from medrecon.errors import ConfigError
from medrecon.jobs.components import default_prior as job_prior
from medrecon.jobs.components import shipped_for_spacing
from medrecon.jobs.problem import Volume
from medrecon.priors import checkpoint as ckpt

pytest.importorskip("monai")


def _mri(spacing=None) -> Volume:
    attrs = {} if spacing is None else {"pixel_spacing_mm": list(spacing)}
    return Volume("mri", None, kspace=torch.zeros(1, 1, 32, 32, dtype=torch.complex64),
                  reference=torch.zeros(1, 32, 32), attrs=attrs)


@pytest.mark.parametrize("name", sorted(ckpt.SHIPPED))
def test_every_shipped_prior_matches_its_manifest(name):
    manifest = json.loads((ckpt.MANIFEST_DIR / f"prior_{name}_default.json").read_text())
    meta = ckpt.read_sidecar(ckpt.DEFAULT_DIR / f"{name}.json")
    assert manifest["sha256"] == meta["weights_sha256"]
    assert manifest["modality"] == meta["modality"] == ckpt.SHIPPED[name]
    assert (ckpt.DEFAULT_DIR / f"{name}.safetensors").stat().st_size < 20e6
    for key in ("training_data_manifest", "training_recipe"):
        assert (ckpt.MANIFEST_DIR.parent / manifest[key]).exists(), manifest[key]


@pytest.mark.parametrize(("name", "spacing"), [("mri_native", [0.6, 2.04]), ("ct_head_native", [0.45, 1.2])])
def test_native_priors_state_their_pixel_spacings_and_run(name, spacing):
    prior = ckpt.load_prior(name)
    assert prior.meta["serves"]["pixel_spacing_mm"] == spacing
    default = ckpt.read_sidecar(ckpt.DEFAULT_DIR / f"{ckpt.SHIPPED[name]}.json")
    for key in ("architecture", "parameterization", "preconditioning", "noise_schedule"):
        assert prior.meta[key] == default[key]
    rule = {k: v for k, v in prior.meta["normalisation"].items() if k != "units"}  # same rule, any wording
    assert rule == {k: v for k, v in default["normalisation"].items() if k != "units"}
    x = torch.rand(2, 40, 24)
    x = x.to(torch.complex64) if prior.meta["complex"] else x
    with torch.no_grad():
        y = prior(x, 0.2)
    finite = torch.view_as_real(y) if y.is_complex() else y
    assert y.shape == x.shape and torch.isfinite(finite).all()


def test_auto_picks_the_shipped_prior_that_serves_the_data_spacing():
    assert shipped_for_spacing(_mri()) == "mri"              # no field of view: the default
    assert shipped_for_spacing(_mri((1.8, 1.8))) == "mri"    # inside mri's 1.65-2.04 mm
    assert shipped_for_spacing(_mri((0.7, 0.7))) == "mri_native"   # fastMRI brain pixels
    assert shipped_for_spacing(_mri((0.3, 0.3))) == "mri"    # nothing serves it: the spacing check names it
    assert job_prior(_mri((0.7, 0.7))).meta["weights"] == "mri_native.safetensors"
    assert job_prior(_mri((0.7, 0.7)), name="mri").meta["weights"] == "mri.safetensors"
    image = torch.zeros(1, 32, 32)
    ct = Volume("ct", None, image=image, reference=image, affine=np.diag([0.7, 0.7, 1.0, 1.0]))
    assert shipped_for_spacing(ct) == "ct"                   # simulated CT: no path, no stated spacing
    with pytest.raises(ConfigError, match="mri_native"):
        job_prior(ct, name="mri_native")


def test_ship_writes_the_prior_and_a_manifest_that_loads(tmp_path):
    from medrecon.training.ship import ship_prior

    root = tmp_path / "repo"
    (root / "data_manifests").mkdir(parents=True)
    recipe = root / "data_manifests" / "recipe.toml"
    recipe.write_text("# recipe\n")
    manifest = ship_prior("ct_head", "ct_copy", recipe, pixel_spacing_mm=(0.5, 1.0), note="a copy", root=root)
    record = json.loads(manifest.read_text())
    sidecar = root / record["sidecar"]
    meta = ckpt.read_sidecar(sidecar)
    assert record["sha256"] == meta["weights_sha256"] and record["serves"]["pixel_spacing_mm"] == [0.5, 1.0]
    assert record["training_recipe"] == "data_manifests/recipe.toml" and record["note"] == "a copy"
    assert record["parameters"] == 4327905 and record["modality"] == "ct"
    copy, original = ckpt.load_prior(sidecar), ckpt.load_prior("ct_head")
    x = torch.rand(1, 32, 32)
    with torch.no_grad():
        assert torch.equal(copy(x, 0.3), original(x, 0.3))  # fp16 weights copied exactly
    with pytest.raises(ConfigError, match="pixel-spacing"):
        ship_prior("ct_head", "ct_bad", recipe, pixel_spacing_mm=(2.0, 1.0), root=root)
    with pytest.raises(ConfigError, match="no such file"):
        ship_prior("ct_head", "ct_bad", root / "missing.toml", root=root)
    with pytest.raises(ConfigError, match="--window 4"):
        ship_prior("ct_head", "ct_bad", recipe, window=4, root=root)


def test_ship_states_the_window_and_zero_removes_it(tmp_path):
    from medrecon.training.ship import ship_prior

    root = tmp_path / "repo"
    (root / "data_manifests").mkdir(parents=True)
    recipe = root / "data_manifests" / "recipe.toml"
    recipe.write_text("# recipe\n")
    record = json.loads(ship_prior("ct_head", "ct_windowed", recipe, window=64, root=root).read_text())
    assert record["serves"]["window"] == [64, 64]
    windowed = ckpt.load_prior(root / record["sidecar"])
    assert windowed.meta["serves"]["window"] == [64, 64]
    x = torch.rand(1, 128, 128)
    with torch.no_grad():
        one_pass = ckpt.load_prior("ct_head", window=0)(x, 0.3)
        assert not torch.allclose(windowed(x, 0.3), one_pass)  # a 128 grid runs in 64 windows
    record = json.loads(ship_prior(root / record["sidecar"], "ct_plain", recipe, window=0, root=root).read_text())
    assert "window" not in record["serves"]


def test_check_names_the_prior_auto_picked_and_the_data_pixel_size():
    from medrecon.jobs.check_command import describe_prior

    volume = _mri((0.7, 0.7))
    line = describe_prior("default", job_prior(volume), volume)
    assert line == ("mri_native.safetensors (default); serves 0.6-2.04 mm pixels; larger grids denoised in "
                    "192x192 windows; the data's pixels 0.7x0.7 mm (ismrmrd_header)")
    assert describe_prior("default", job_prior(_mri()), _mri()).endswith("the data states no pixel spacing")
