"""import-checkpoint: tiny random instances with the original names round-trip through the converter; refused inputs
(pickled code, non-tensors, wrong names/shapes, unknown architecture or parameterisation, a wrong sha256) are one
line and write nothing; the adapters' Tweedie estimates with Gaussian stand-ins equal the closed form."""
import copy
import json
import math
import os
from pathlib import Path

import pytest
import torch

from medrecon.cli import main as cli
from medrecon.errors import ChecksumError, ConfigError, InputError
from medrecon.files import sha256_file
from medrecon.priors import load_prior
from medrecon.priors.adapters import LearnedSigmaSplit, VEDenoiser, VPDenoiser
from medrecon.priors.architectures import adm, ncsnpp
from medrecon.priors.checkpoint import wrap_network
from medrecon.priors.importing import import_checkpoint, sidecar_meta
from medrecon.priors.public import import_config, public_checkpoints

TINY_ADM = {"image_size": 16, "model_channels": 32, "channel_mult": [1, 2], "attention_resolutions": [8],
            "num_head_channels": 16}
TINY_NCSN = {"image_size": 16, "nf": 16, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [8]}


def _tiny(name: str, **arch) -> dict:
    """A registry entry shrunk to 16 px (the same keys, parameterisation, data conventions and source format)."""
    entry = copy.deepcopy(public_checkpoints()[name])
    entry["name"] = f"tiny-{name}"
    entry["architecture"]["config"].update({**(TINY_ADM if entry["architecture"]["name"] == "adm" else TINY_NCSN),
                                            **arch})
    entry["data"]["image_size"] = [16, 16]
    return entry


def _random(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


def _network(prior: torch.nn.Module, kind: type) -> torch.nn.Module:
    return next(m for m in prior.modules() if isinstance(m, kind))


def _write(tmp: Path, entry: dict) -> Path:
    path = tmp / f"{entry['name']}.json"
    path.write_text(json.dumps(entry))
    return path


def test_adm_state_dict_round_trips_through_the_cli(tmp_path, capsys):
    entry = _tiny("dds-fastmri-knee-320-complex")
    net = _random(adm.build(entry["architecture"]["config"]), 0)
    src = tmp_path / "fastmri_knee_320_complex_1m.pt"
    torch.save(net.state_dict(), src)
    code = cli(["import-checkpoint", str(src), "--arch", "adm", "--config", str(_write(tmp_path, entry)),
                "--out", str(tmp_path / "out" / "knee")])
    assert code == 0 and "knee.json" in capsys.readouterr().out
    prior = load_prior(tmp_path / "out" / "knee.json")
    meta = prior.meta
    assert meta["architecture"]["name"] == "guided_diffusion.UNetModel" and meta["learned_variance"] is True
    assert meta["source"]["sha256"] == sha256_file(src) and meta["source"]["file"] == src.name
    assert meta["complex"] is True and meta["complex_mode"] == "channels" and meta["licence"] == entry["licence"]
    assert meta["parameterization"] == "vp-eps" and len(meta["noise_schedule"]["alphas_cumprod"]) == 1000
    assert math.isclose(meta["noise_schedule"]["sigma_min"], math.sqrt(1e-4 / (1 - 1e-4)), rel_tol=1e-9)
    loaded = _network(prior, adm.UNetModel).state_dict()
    for k, v in net.state_dict().items():
        assert torch.equal(loaded[k], v), k
    from medrecon.priors.adapters import ComplexAsChannels
    from medrecon.schedules import vp_alpha_bar

    want = ComplexAsChannels(VPDenoiser(LearnedSigmaSplit(net), vp_alpha_bar()))
    z = torch.randn(2, 16, 16, dtype=torch.complex64, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.05, 4.0])
    with torch.no_grad():
        torch.testing.assert_close(prior(z, sigma), want(z, sigma), rtol=1e-5, atol=1e-5)


def _score_sde_file(tmp: Path, net: torch.nn.Module, ema_seed: int, config: dict) -> tuple[Path, dict]:
    """A score_sde training state as the original writes it: DataParallel names, the ``sigmas`` buffer, EMA shadow
    parameters (trainable ones, in order), an Adam state and the step."""
    model = {"module.sigmas": torch.exp(torch.linspace(math.log(config["sigma_max"]), math.log(config["sigma_min"]),
                                                       config["num_scales"]))}
    model.update({f"module.{k}": v for k, v in net.state_dict().items()})
    g = torch.Generator().manual_seed(ema_seed)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    shadow = [torch.randn(dict(net.named_parameters())[n].shape, generator=g) * 0.1 for n in trainable]
    opt = torch.optim.Adam(net.parameters())
    obj = {"model": model, "ema": {"decay": 0.999, "num_updates": 3, "shadow_params": shadow},
           "optimizer": opt.state_dict(), "step": 95}
    path = tmp / "checkpoint_95.pth"
    torch.save(obj, path)
    ema = dict(zip(trainable, shadow))
    return path, {k: ema.get(k, v) for k, v in net.state_dict().items()}


def test_score_sde_state_imports_its_ema_weights(tmp_path):
    entry = _tiny("score-mri-fastmri-knee-320")
    cfg = {**ncsnpp.DEFAULTS, **entry["architecture"]["config"]}
    net = _random(ncsnpp.build(cfg), 2)
    src, ema_state = _score_sde_file(tmp_path, net, 3, cfg)
    sidecar = import_checkpoint(src, entry, tmp_path / "smri")
    prior = load_prior(sidecar)
    assert prior.meta["complex_mode"] == "parts" and prior.meta["channels"] == 1
    assert prior.meta["noise_schedule"]["sigma_min"] == 0.01 and prior.meta["noise_schedule"]["sigma_max"] == 378.0
    loaded = _network(prior, ncsnpp.NCSNpp).state_dict()
    for k, v in ema_state.items():
        assert torch.equal(loaded[k], v), k
    assert torch.equal(loaded["all_modules.0.W"], net.state_dict()["all_modules.0.W"])  # not in the EMA list
    raw = import_checkpoint(src, {**entry, "source": {**entry["source"], "weights": "model"}}, tmp_path / "raw")
    assert torch.equal(_network(load_prior(raw), ncsnpp.NCSNpp).state_dict()["all_modules.3.weight"],
                       net.state_dict()["all_modules.3.weight"])
    net.load_state_dict(ema_state)
    x = torch.randn(2, 16, 16, dtype=torch.complex64, generator=torch.Generator().manual_seed(4)) * 0.3 + 0.4
    s = torch.tensor([0.02, 30.0])
    with torch.no_grad():  # score-MRI: D = x + sigma^2 s_theta(x, sigma) on the real and the imaginary part
        parts = [p[:, None] + s[:, None, None, None] ** 2 * net(p[:, None], s) for p in (x.real, x.imag)]
        torch.testing.assert_close(prior(x, s), torch.complex(parts[0][:, 0], parts[1][:, 0]), rtol=1e-5, atol=1e-5)


class _Payload:
    def __reduce__(self):
        return (os.makedirs, (os.environ["MEDRECON_TEST_MARKER"],))


def _refused(tmp_path, src, entry, match, error=InputError, **kw):
    out = tmp_path / "out"
    with pytest.raises(error, match=match) as info:
        import_checkpoint(src, entry, out / "p", **kw)
    assert "\n" not in str(info.value)
    assert not out.exists()
    return str(info.value)


def test_a_pickle_with_a_payload_is_refused_without_running(tmp_path, monkeypatch):
    marker = tmp_path / "payload_ran"
    monkeypatch.setenv("MEDRECON_TEST_MARKER", str(marker))
    entry = _tiny("dds-aapm-256")
    src = tmp_path / "evil.pt"
    state = adm.build(entry["architecture"]["config"]).state_dict()
    torch.save({**state, "extra": _Payload()}, src)
    assert not marker.exists()
    _refused(tmp_path, src, entry, "refused: the file holds pickled objects")
    assert not marker.exists()


def test_non_tensors_wrong_names_and_shapes_are_refused_with_the_first_differences(tmp_path):
    entry = _tiny("dds-aapm-256")
    state = adm.build(entry["architecture"]["config"]).state_dict()
    src = tmp_path / "m.pt"
    torch.save({**state, "time_embed.0.weight": [1.0, 2.0]}, src)
    _refused(tmp_path, src, entry, "'time_embed.0.weight' is list, not a plain dense tensor")
    torch.save(state["out.2.weight"], src)
    _refused(tmp_path, src, entry, "expected a non-empty state dict")
    bad = dict(state)
    bad["input_blocks.0.0.kernel"] = bad.pop("input_blocks.0.0.weight")
    bad["out.2.bias"] = torch.zeros(7)
    torch.save(bad, src)
    text = _refused(tmp_path, src, entry, "names or shapes do not match guided_diffusion.UNetModel")
    assert "missing input_blocks.0.0.weight" in text and "unexpected input_blocks.0.0.kernel" in text
    assert "out.2.bias has shape (7,), expected (2,)" in text
    wrong = _tiny("dds-aapm-256", model_channels=64)  # every conv of the wrong width: only the first few listed
    torch.save(state, src)
    assert "more)" in _refused(tmp_path, src, wrong, "names or shapes do not match")
    _refused(tmp_path, src, entry, "--arch ncsnpp but the config", arch="ncsnpp")


def test_a_sigma_table_that_disagrees_with_the_config_is_refused(tmp_path):
    entry = _tiny("diffusionmbir-aapm-256")
    cfg = {**ncsnpp.DEFAULTS, **entry["architecture"]["config"]}
    src, _ = _score_sde_file(tmp_path, ncsnpp.build(cfg), 0, {**cfg, "sigma_max": 50.0})
    _refused(tmp_path, src, entry, "runs from 50 to 0.01, but the config says sigma_max=378")


def test_a_sha256_that_disagrees_with_the_registry_is_refused(tmp_path):
    entry = _tiny("dds-aapm-256")
    src = tmp_path / "AAPM256_1M.pt"
    torch.save(adm.build(entry["architecture"]["config"]).state_dict(), src)
    entry["source"]["sha256"] = "0" * 64
    _refused(tmp_path, src, entry, f"sha256 {sha256_file(src)} does not match 0000", ChecksumError)
    entry["source"]["sha256"] = sha256_file(src)
    assert import_checkpoint(src, entry, tmp_path / "ok").exists()


def test_unknown_architecture_or_parameterisation_is_one_line_and_the_cli_exits_2(tmp_path, capsys):
    entry = _tiny("dds-aapm-256")
    src = tmp_path / "m.pt"
    torch.save(adm.build(entry["architecture"]["config"]).state_dict(), src)
    for change, match in ((("architecture", "name", "unet"), "unknown architecture 'unet'"),
                          (("parameterization", None, "ve-score"), "unknown parameterization 've-score' for adm"),
                          (("data", "complex", "magnitude"), "data.complex 'magnitude'")):
        bad = copy.deepcopy(entry)
        key, sub, value = change
        if sub is None:
            bad[key] = value
        else:
            bad[key][sub] = value
        path = _write(tmp_path, bad)
        with pytest.raises(ConfigError, match=match):
            import_config(path)
        assert cli(["import-checkpoint", str(src), "--arch", "adm", "--config", str(path),
                    "--out", str(tmp_path / "out" / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and match in err
        assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="not a registry entry"):
        import_config("dds-knee")


# ---- adapters with Gaussian stand-ins: x0 ~ N(m, s^2 I) in the prior's units -------------------------------------

M, S = 0.3, 0.2


def _posterior_mean(x, sigma):
    s2 = sigma.reshape(-1, *([1] * (x.ndim - 1))) ** 2
    return M + S**2 / (S**2 + s2) * (x - M)


class _ExactEps(torch.nn.Module):
    """E[eps | x_vp] of u0 ~ N(mu, v) (network units) at table timestep t, plus a junk variance half."""

    def __init__(self, ab, mu, v):
        super().__init__()
        self.ab, self.mu, self.v = ab, mu, v

    def forward(self, x_vp, t):
        ab = self.ab[t.round().long()].to(x_vp.dtype).reshape(-1, 1, 1, 1)
        eps = (1 - ab).sqrt() * (x_vp - ab.sqrt() * self.mu) / (ab * self.v + 1 - ab)
        return torch.cat([eps, torch.full_like(eps, 7.0)], dim=1)


class _ExactScore(torch.nn.Module):
    """The VE score of u0 ~ N(mu, v) at noise std sigma (network units)."""

    def __init__(self, mu, v):
        super().__init__()
        self.mu, self.v = mu, v

    def forward(self, x, sigma):
        return -(x - self.mu) / (self.v + sigma.reshape(-1, 1, 1, 1) ** 2)


def _meta(name, units=None):
    entry = _tiny(name)
    if units is not None:
        entry["data"]["network_units"] = units
    cfg = {**(adm.DEFAULTS if entry["architecture"]["name"] == "adm" else ncsnpp.DEFAULTS),
           **entry["architecture"]["config"]}
    return sidecar_meta(entry, cfg, Path("x.pt"), "0" * 64, 0)


@pytest.mark.parametrize("name, layout", [("dds-aapm-256", "none"), ("dds-fastmri-knee-320-complex", "channels")])
def test_vp_learned_variance_on_minus_one_one_gives_the_gaussian_posterior_mean(name, layout):
    meta = _meta(name, {"scale": 2.0, "offset": -1.0})  # a network trained on [-1, 1] serving data in [0, 1]
    ab = torch.tensor(meta["noise_schedule"]["alphas_cumprod"], dtype=torch.float64)
    prior = wrap_network(meta, LearnedSigmaSplit(_ExactEps(ab, 2 * M - 1, 4 * S**2))).double()
    sig_net = ((1 - ab) / ab).sqrt()[[10, 400, 900]]
    sigma = sig_net / 2  # prior-unit noise: the network's halves
    g = torch.Generator().manual_seed(5)
    shape = (3, 8, 8)
    if layout == "channels":
        x = torch.complex(torch.randn(shape, generator=g, dtype=torch.float64),
                          torch.randn(shape, generator=g, dtype=torch.float64))
        want = torch.complex(_posterior_mean(x.real, sigma), _posterior_mean(x.imag, sigma))
    else:
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        want = _posterior_mean(x, sigma)
    with torch.no_grad():
        torch.testing.assert_close(prior(x, sigma), want, rtol=1e-9, atol=1e-9)


def test_ve_score_on_parts_gives_the_gaussian_posterior_mean_per_part():
    meta = _meta("score-mri-fastmri-knee-320")
    assert meta["complex"] is True and meta["complex_mode"] == "parts"
    prior = wrap_network(meta, _ExactScore(M, S**2)).double()
    assert isinstance(prior.denoiser.denoiser, VEDenoiser)
    g = torch.Generator().manual_seed(6)
    x = torch.complex(torch.randn(2, 8, 8, generator=g, dtype=torch.float64),
                      torch.randn(2, 8, 8, generator=g, dtype=torch.float64))
    sigma = torch.tensor([0.01, 378.0], dtype=torch.float64)  # the original sigma_min and sigma_max
    with torch.no_grad():
        got = prior(x, sigma)
    torch.testing.assert_close(got, torch.complex(_posterior_mean(x.real, sigma), _posterior_mean(x.imag, sigma)),
                               rtol=1e-9, atol=1e-9)


def test_the_registry_names_every_public_checkpoint_with_its_conventions():
    entries = public_checkpoints()
    assert set(entries) == {"dds-aapm-256", "dds-fastmri-knee-320-complex", "diffusionmbir-aapm-256",
                            "score-mri-fastmri-knee-320"}
    for entry in entries.values():
        assert entry["source"]["url"].startswith("https://") and entry["licence"]
        assert entry["source"]["sha256"] is None or len(entry["source"]["sha256"]) == 64
    assert entries["dds-fastmri-knee-320-complex"]["data"]["complex"] == "channels"
    assert entries["score-mri-fastmri-knee-320"]["data"]["complex"] == "parts"
    assert entries["diffusionmbir-aapm-256"]["source"]["format"] == "score_sde"
