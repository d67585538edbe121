"""Prior checkpoints: save/load round trip, sha256 checks, pickles refused, the shipped default priors."""
import json

import pytest
import torch

from medrecon.errors import ChecksumError, InputError
from medrecon.files import sha256_file
from medrecon.priors import checkpoint as ckpt
from medrecon.priors.checkpoint import default_prior, load_prior, save_checkpoint

pytest.importorskip("monai")
from medrecon.priors.network import build_unet

TINY = {"in_channels": 2, "out_channels": 2, "channels": [8, 8], "num_res_blocks": 1,
        "attention_levels": [False, False], "num_head_channels": 8, "norm_num_groups": 4}


def _meta(**kw):
    meta = {"architecture": {"name": "monai.DiffusionModelUNet", "config": TINY}, "parameterization": "edm",
            "preconditioning": {"sigma_data": 0.4, "c_noise_scale": 1000.0},
            "noise_schedule": {"sigma_min": 0.002, "sigma_max": 20.0}, "data_range": [0, 1], "channels": 2,
            "complex": True, "image_size": [16, 16], "modality": "mri", "training": {"objective": "edm"}}
    meta.update(kw)
    return meta


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    net = build_unet(TINY)
    for p in net.parameters():  # non-trivial weights everywhere (MONAI zero-initialises some output layers)
        torch.nn.init.normal_(p, std=0.05)
    return net, save_checkpoint(tmp_path / "tiny", net.state_dict(), _meta(), dtype=torch.float32)


def test_round_trip_gives_identical_outputs(saved):
    from medrecon.priors.adapters import ComplexAsChannels, EDMDenoiser

    net, sidecar = saved
    prior = load_prior(sidecar)
    want = ComplexAsChannels(EDMDenoiser(net.eval(), 0.4, 1000.0))
    z = torch.randn(2, 16, 16, dtype=torch.complex64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(prior(z, torch.tensor([0.1, 2.0])), want(z, torch.tensor([0.1, 2.0])),
                                   rtol=1e-5, atol=1e-6)  # same weights; only summation order may differ
    for k, v in net.state_dict().items():
        torch.testing.assert_close(prior.denoiser.net.state_dict()[k], v, rtol=0, atol=0)
    assert prior.meta["weights_sha256"] == sha256_file(sidecar.with_suffix(".safetensors"))
    for form in (sidecar.with_suffix(".safetensors"), sidecar.parent):
        assert load_prior(form).meta == prior.meta


def test_fp16_weights_load_as_the_rounded_network(tmp_path, saved):
    net, _ = saved
    side = save_checkpoint(tmp_path / "half", net.state_dict(), _meta())
    prior = load_prior(side)
    rounded = {k: v.half().float() for k, v in net.state_dict().items()}
    loaded = prior.denoiser.net.state_dict()
    for k, v in rounded.items():
        torch.testing.assert_close(loaded[k], v, rtol=0, atol=0)


def test_tampered_weights_raise_checksum_error(saved):
    _, sidecar = saved
    weights = sidecar.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="sha256"):
        load_prior(sidecar)


def test_pickled_checkpoints_are_refused_without_unpickling(tmp_path, saved):
    net, sidecar = saved
    pt = tmp_path / "model.pt"
    torch.save(net.state_dict(), pt)
    with pytest.raises(InputError, match="pickled checkpoints are never loaded"):
        load_prior(pt)
    # a pickle renamed to .safetensors, with its sha256 in the sidecar: still refused, never unpickled
    weights = sidecar.with_suffix(".safetensors")
    weights.write_bytes(pt.read_bytes())
    meta = json.loads(sidecar.read_text())
    meta["weights_sha256"] = sha256_file(weights)
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="not a valid safetensors file"):
        load_prior(sidecar)


def test_bad_sidecars_name_the_field(saved):
    _, sidecar = saved
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "parameterization": "flow"}))
    with pytest.raises(InputError, match=r"\[parameterization\]"):
        load_prior(sidecar)
    del meta["channels"]
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"\[channels\]: missing field"):
        load_prior(sidecar)
    with pytest.raises(InputError, match="not found"):
        load_prior(sidecar.parent / "other.json")


def test_default_prior_is_checked_against_its_manifest(tmp_path, monkeypatch, saved):
    _, sidecar = saved
    (tmp_path / "pkg").mkdir()
    for f in (sidecar, sidecar.with_suffix(".safetensors")):
        (tmp_path / "pkg" / f.name.replace("tiny", "mri")).write_bytes(f.read_bytes())
    meta = json.loads((tmp_path / "pkg" / "mri.json").read_text())
    meta["weights"] = "mri.safetensors"
    (tmp_path / "pkg" / "mri.json").write_text(json.dumps(meta))
    (tmp_path / "manifests").mkdir()
    monkeypatch.setattr(ckpt, "DEFAULT_DIR", tmp_path / "pkg")
    monkeypatch.setattr(ckpt, "MANIFEST_DIR", tmp_path / "manifests")
    manifest = tmp_path / "manifests" / "prior_mri_default.json"
    manifest.write_text(json.dumps({"sha256": meta["weights_sha256"]}))
    assert default_prior("mri").meta["modality"] == "mri"
    manifest.write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(ChecksumError, match="data_manifests|manifests"):
        default_prior("mri")


@pytest.mark.parametrize("modality", ["mri", "ct"])
def test_shipped_priors_load_and_match_their_manifests(modality):
    prior = default_prior(modality)
    manifest = json.loads((ckpt.MANIFEST_DIR / f"prior_{modality}_default.json").read_text())
    assert manifest["sha256"] == prior.meta["weights_sha256"]
    assert (ckpt.DEFAULT_DIR / f"{modality}.safetensors").stat().st_size < 20e6
    assert prior.meta["image_size"] == [128, 128] and prior.meta["complex"] == (modality == "mri")
    x = torch.rand(1, 32, 32)
    x = x.to(torch.complex64) if modality == "mri" else x
    with torch.no_grad():
        y = prior(x, 0.2)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(torch.view_as_real(y) if y.is_complex()
                                                                         else y).all()
