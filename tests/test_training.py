"""``medrecon train-prior`` on tiny configs: config validation, kill-and-resume equality, one-command retrain."""
from pathlib import Path

import numpy as np
import pytest
import torch

from medrecon.cli import main as cli_main
from medrecon.errors import ConfigError
from medrecon.priors.checkpoint import load_prior
from medrecon.priors.meta import normalisation
from medrecon.training import config as train_config
from medrecon.training import data as train_data
from medrecon.training import train as train_mod

pytest.importorskip("monai")


def _write_config(tmp: Path, modality: str = "mri", heldout: bool = False, **train_overrides) -> Path:
    rng = np.random.default_rng(0)
    imgs = np.abs(np.cumsum(np.cumsum(rng.standard_normal((6, 16, 16)), 1), 2)).astype(np.float32)
    np.save(tmp / "train.npy", imgs / imgs.max())
    np.save(tmp / "held.npy", imgs[:2] / imgs.max())
    train = {"batch_size": 3, "max_steps": 4, "warmup_steps": 2, "checkpoint_every": 2, "validate_every": 0,
             "log_every": 1, "sample_steps": 2, "n_samples": 0, "val_sigmas": [0.1, 1.0], **train_overrides}
    lines = ['name = "tiny"', f'modality = "{modality}"', "[data]", 'source = "npy"',
             f'path = "{tmp / "train.npy"}"', f'heldout = "{tmp / "held.npy"}"' if heldout else "",
             "image_size = 16",
             "[model]", "channels = [8, 8]", "num_res_blocks = 1", "attention_levels = [false, false]",
             "num_head_channels = 8", "norm_num_groups = 4", "[train]"]
    lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in train.items()]
    cfg = tmp / "tiny.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def _run(cfg: Path, out: Path, **kw) -> dict:
    conf = train_config.load_config(cfg)
    conf["train"].update(kw)
    return train_mod.train(train_mod.Run(cfg=conf, out=out, device=torch.device("cpu"), progress=False,
                                         command="test"))


def test_unknown_keys_and_bad_values_are_refused(tmp_path):
    cfg = _write_config(tmp_path)
    text = cfg.read_text()
    (tmp_path / "a.toml").write_text(text.replace("[train]", "[train]\nlearning_rate = 1e-3"))
    with pytest.raises(ConfigError, match=r"train\.learning_rate.*allowed keys.*'lr'"):
        train_config.load_config(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text("colour = 1\n" + text)
    with pytest.raises(ConfigError, match=r"unknown key 'colour'.*modality"):
        train_config.load_config(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text(text + "[optim]\nlr = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section \[optim\]"):
        train_config.load_config(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text(text.replace('modality = "mri"', 'modality = "pet"'))
    with pytest.raises(ConfigError, match=r"modality = 'pet' is not one of"):
        train_config.load_config(tmp_path / "d.toml")
    (tmp_path / "e.toml").write_text(text.replace("batch_size = 3", 'batch_size = "3"'))
    with pytest.raises(ConfigError, match=r"train\.batch_size: expected int"):
        train_config.load_config(tmp_path / "e.toml")


def test_training_resumes_after_a_kill_to_the_same_state(tmp_path, monkeypatch):
    cfg = _write_config(tmp_path)
    _run(cfg, tmp_path / "straight")
    calls = {"n": 0}
    real_update = train_mod._ema_update

    def dying_update(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # killed during step 3, after the step-2 state was saved
            raise KeyboardInterrupt
        real_update(*a, **k)

    monkeypatch.setattr(train_mod, "_ema_update", dying_update)
    with pytest.raises(KeyboardInterrupt):
        _run(cfg, tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "tiny.safetensors").exists()
    monkeypatch.setattr(train_mod, "_ema_update", real_update)
    summary = _run(cfg, tmp_path / "resumed")
    assert summary["steps"] == 4
    a = torch.load(tmp_path / "straight" / "train_state.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "train_state.pt", weights_only=True)
    for key in ("model", "ema"):
        for name in a[key]:
            torch.testing.assert_close(b[key][name], a[key][name], rtol=0, atol=0, msg=f"{key}.{name}")
    assert torch.equal(a["generator"], b["generator"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        torch.testing.assert_close(sb["exp_avg_sq"], sa["exp_avg_sq"], rtol=0, atol=0)
    assert (tmp_path / "straight" / "tiny.safetensors").read_bytes() == \
        (tmp_path / "resumed" / "tiny.safetensors").read_bytes()


def test_resume_refuses_a_different_config(tmp_path):
    cfg = _write_config(tmp_path)
    _run(cfg, tmp_path / "out", max_steps=1)
    with pytest.raises(ConfigError, match="different config"):
        _run(cfg, tmp_path / "out", lr=1e-3)


def test_one_command_retrain_of_a_tiny_prior(tmp_path, capsys):
    cfg = _write_config(tmp_path, "ct", heldout=True, validate_every=2, max_steps=2, n_samples=2)
    out = tmp_path / "run"
    assert cli_main(["train-prior", str(cfg), "--out", str(out), "--no-progress"]) == 0
    for f in ("tiny.safetensors", "tiny.json", "samples.png", "validation.jsonl", "log.jsonl", "train_state.pt"):
        assert (out / f).exists(), f
    prior = load_prior(out)
    assert prior.meta["training"]["steps"] == 2 and prior.meta["modality"] == "ct"
    assert normalisation(prior.meta).describe() == {"rule": "fixed", "scale": 0.0384}
    assert set(prior.meta["training"]["heldout_psnr_db"]) == {"0.1", "1.0"}
    x = torch.rand(2, 16, 16)
    y = prior(x, torch.tensor([0.1, 0.5]))
    assert y.shape == x.shape and y.dtype == torch.float32 and torch.isfinite(y).all()


def test_ddpm_objective_writes_a_vp_eps_prior(tmp_path):
    cfg = _write_config(tmp_path, "mri", objective='"ddpm"', num_timesteps=50, max_steps=1)
    _run(cfg, tmp_path / "out")
    prior = load_prior(tmp_path / "out" / "tiny.json")
    assert prior.meta["parameterization"] == "vp-eps" and len(prior.meta["noise_schedule"]["alphas_cumprod"]) == 50
    z = torch.randn(1, 16, 16, dtype=torch.complex64)
    assert prior(z, 0.3).shape == z.shape


def test_cli_reports_a_missing_config_as_one_error_line(tmp_path, capsys):
    assert cli_main(["train-prior", str(tmp_path / "none.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_missing_training_array_says_how_to_make_it(tmp_path, capsys):
    cfg = _write_config(tmp_path)
    missing = tmp_path / "prepared" / "mri_train.npy"
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "train.npy"), str(missing)) + "")
    text = cfg.read_text().replace("[data]", '[data]\nsha256 = "' + "0" * 64 + '"')
    cfg.write_text(text)
    assert cli_main(["train-prior", str(cfg), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{missing} [path]: training array not found" in err and "sha256" not in err
    assert f"python -m medrecon.training.prepare --out {missing.parent}" in err
    assert not (tmp_path / "out").exists()


def test_augment_shapes_and_ranges():
    g = torch.Generator().manual_seed(0)
    mag = torch.rand(4, 16, 16)
    mri = train_data.augment(mag, "mri", g)
    assert mri.shape == (4, 2, 16, 16)
    ct = train_data.augment(mag, "ct", g)
    assert ct.shape == (4, 1, 16, 16) and ct.min() >= 0 and ct.max() <= 1
    phase_only = train_data.augment(mag, "mri", g, enabled=False)
    torch.testing.assert_close(phase_only.pow(2).sum(1).sqrt(), mag, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_tiny_training_on_cuda_in_bf16(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cfg = _write_config(tmp_path, "mri", heldout=True, max_steps=3, validate_every=3)
    conf = train_config.load_config(cfg)
    summary = train_mod.train(train_mod.Run(cfg=conf, out=tmp_path / "gpu", device=torch.device("cuda"),
                                            progress=False, command="test"))
    prior = load_prior(tmp_path / "gpu", device="cuda")
    assert summary["steps"] == 3 and prior.meta["training"]["precision"] == "bf16"
    z = torch.randn(2, 16, 16, dtype=torch.complex64, device="cuda")
    assert prior(z, 0.5).shape == z.shape
