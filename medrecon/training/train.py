"""``medrecon train-prior CONFIG``: train a 2D diffusion prior (MONAI ``DiffusionModelUNet``) from a TOML config.

Objective: EDM (default; Karras et al. 2022): log-normal sigma sampling, preconditioning and loss weighting; the
network is saved as ``parameterization = "edm"`` and used directly in the VE sigma variable the samplers work in.
``objective = "ddpm"`` trains a VP eps-predictor on a linear beta schedule (saved as ``vp-eps``).

Runs are resumable: ``<out>/train_state.pt`` (model, EMA, optimizer, step, RNG state; tensors only, loaded with
``weights_only=True``) is written atomically every ``checkpoint_every`` steps and at the end; rerunning the same
command continues from it. At the end (``max_steps`` or the wall-clock budget ``max_minutes``) the EMA weights are
written as fp16 ``<out>/<name>.safetensors`` + ``<out>/<name>.json``. See docs/priors.md for every config key.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..files import atomic_path
from ..priors.adapters import AddChannel, ComplexAsChannels, EDMDenoiser, VPDenoiser
from ..priors.checkpoint import save_checkpoint
from ..priors.network import build_unet, count_parameters
from ..schedules import vp_alpha_bar, vp_alpha_bar_to_sigma
from .config import load_config
from .data import augment, load_heldout, load_training_array, to_network_images
from .evaluate import denoising_psnr, heun_sample, save_image_grid

__all__ = ["Run", "add_arguments", "init_weights", "load_config", "main", "random_crop", "train"]

# ---------------------------------------------------------------------------------------------------- training


@dataclass
class Run:
    cfg: dict[str, Any]
    out: Path
    device: torch.device
    progress: bool
    command: str


# The intensity rules of the training data (``medrecon.priors.meta``): MRI volumes at their 99.5th percentile = 1;
# CT attenuation / (2 mu_water), i.e. the HU window [-1000, 1000] on [0, 1].
MRI_NORMALISATION = {"rule": "percentile", "percentile": 99.5, "value": 1.0}
CT_NORMALISATION = {"rule": "fixed", "scale": 0.0384, "units": "attenuation (1/mm) per prior unit"}
# Ultrasound: each RF frame divided by its largest |rf| and mu-law companded (mu = 255) before it reaches the prior.
US_NORMALISATION = {"rule": "fixed", "scale": 1.0, "units": "companded RF, C(rf / max|rf|) with mu = 255"}
IMAGE_META = {  # modality -> (data_range, intensity, normalisation)
    "mri": ([0.0, 1.2], "magnitude normalised so the volume's 99.5th percentile is 1", MRI_NORMALISATION),
    "ct": ([0.0, 1.0], "HU window [-1000, 1000] mapped linearly to [0, 1]", CT_NORMALISATION),
    "ultrasound": ([-1.0, 1.0], "RF frame / max|rf|, mu-law companded (mu = 255)", US_NORMALISATION),
}


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)


# Keys added after the first recipes: left out of the digest at their defaults, so earlier runs still resume.
LATER_KEYS = {("data", "crop"): 0, ("data", "pixel_spacing_mm"): [], ("train", "init_from"): ""}


def _config_digest(cfg: dict[str, Any]) -> str:
    keep = {s: {k: v for k, v in cfg[s].items() if k not in ("max_steps", "max_minutes")
                and LATER_KEYS.get((s, k), object()) != v} for s in cfg if s != "output"}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}
    for pkg in ("medrecon", "monai"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            import importlib

            out[pkg] = getattr(importlib.import_module(pkg), "__version__", "unknown")
    return out


def edm_loss(edm: EDMDenoiser, x0: torch.Tensor, gen: torch.Generator, p_mean: float, p_std: float) -> torch.Tensor:
    """EDM loss for a batch ``x0 (B, C, H, W)``: ``log sigma ~ N(p_mean, p_std^2)``, the network output ``F`` regressed
    on ``(x0 - c_skip x) / c_out`` (EDM's weighting ``lambda(sigma) c_out^2 = 1``)."""
    sigma = torch.exp(p_mean + p_std * torch.randn(x0.shape[0], generator=gen, device=x0.device))
    xn = x0 + sigma[:, None, None, None] * torch.randn(x0.shape, generator=gen, device=x0.device)
    c_skip, c_out, _, _ = edm.coefficients(sigma)
    target = (x0 - c_skip[:, None, None, None] * xn) / c_out[:, None, None, None]
    return (edm.raw(xn, sigma).float() - target).pow(2).mean()


def ddpm_loss(net: torch.nn.Module, x0: torch.Tensor, gen: torch.Generator,
              alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """DDPM eps-prediction loss with a uniform timestep ``t`` and ``x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps``."""
    t = torch.randint(alphas_cumprod.shape[0], (x0.shape[0],), generator=gen, device=x0.device)
    noise = torch.randn(x0.shape, generator=gen, device=x0.device)
    ab = alphas_cumprod[t][:, None, None, None]
    return (net(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t.float()).float() - noise).pow(2).mean()


def init_weights(net: torch.nn.Module, source: str, objective: str) -> dict[str, Any]:
    """Load a prior's weights (``"ct"``, ``"mri"``, a sidecar, its .safetensors or a folder; sha256 verified) into
    ``net`` to fine-tune it; the architecture and parameterisation must match. Returns the prior's sidecar."""
    from ..priors.checkpoint import read_prior_weights

    _, meta, state, _ = read_prior_weights(source)
    config = meta["architecture"].get("config", {}) if isinstance(meta["architecture"], dict) else {}
    if {k: config.get(k) for k in net.config} != net.config:
        raise ConfigError(f"train.init_from = {source!r}: its architecture {config} differs from the model "
                          f"section {net.config}")
    wanted = "edm" if objective == "edm" else "vp-eps"
    if meta["parameterization"] != wanted:
        raise ConfigError(f"train.init_from = {source!r} is {meta['parameterization']!r}; objective "
                          f"{objective!r} needs {wanted!r}")
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return meta


def random_crop(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One random ``size x size`` window of a batch ``(B, C, H, W)`` (the same for the whole batch)."""
    h, w = x.shape[-2:]
    i = int(torch.randint(h - size + 1, (1,), generator=gen, device=x.device))
    j = int(torch.randint(w - size + 1, (1,), generator=gen, device=x.device))
    return x[..., i:i + size, j:j + size]


def train(run: Run) -> dict[str, Any]:
    """Train (or resume) the prior described by ``run.cfg``; returns a summary (steps, final losses, PSNR)."""
    from tqdm import tqdm

    cfg, dev = run.cfg, run.device
    name, modality = cfg[""]["name"], cfg[""]["modality"]
    tr, data = cfg["train"], cfg["data"]
    arr, data_sha = load_training_array(data, modality)  # a missing or wrong array fails before --out exists
    heldout = load_heldout(data, modality)
    run.out.mkdir(parents=True, exist_ok=True)
    channels = 2 if modality == "mri" else 1
    images = torch.from_numpy(arr).to(dev)
    if tr["sigma_data"] == "auto":
        sigma_data = float(np.sqrt(np.mean(np.abs(arr.astype(np.complex64 if channels == 2 else np.float32)) ** 2)
                                   / channels))
    else:
        sigma_data = float(tr["sigma_data"])
    torch.manual_seed(tr["seed"])  # parameter initialisation only; every draw below uses `gen`
    net = build_unet({**cfg["model"], "in_channels": channels, "out_channels": channels}).to(dev)
    if tr["init_from"]:
        init_meta = init_weights(net, tr["init_from"], tr["objective"])
        pre = init_meta.get("preconditioning", {})
        if tr["objective"] == "edm" and tr["sigma_data"] == "auto":  # keep the prior's preconditioning
            sigma_data = float(pre["sigma_data"])
        if tr["objective"] == "edm" and float(pre.get("c_noise_scale", 1.0)) != float(tr["c_noise_scale"]):
            raise ConfigError(f"train.init_from: c_noise_scale {pre.get('c_noise_scale')} differs from "
                              f"train.c_noise_scale {tr['c_noise_scale']}")
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=tr["lr"], weight_decay=tr["weight_decay"], betas=(0.9, 0.999))
    gen = torch.Generator(device=dev).manual_seed(tr["seed"])
    alphas_cumprod = vp_alpha_bar(train_steps=tr["num_timesteps"])
    ab_dev = alphas_cumprod.to(dev, torch.float32)

    state_path = run.out / "train_state.pt"
    digest = _config_digest(cfg)
    step, elapsed_before = 0, 0.0
    if state_path.exists():
        try:
            st = torch.load(state_path, map_location=dev, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable state is reported as an input problem
            raise InputError(state_path, f"unreadable training state ({err}); delete it to start over") from None
        if st["config_sha256"] != digest:
            raise ConfigError(f"{state_path} belongs to a run with a different config; use another output dir "
                              "or delete the state to start over")
        net.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["optimizer"])
        gen.set_state(st["generator"].cpu())
        step, elapsed_before = int(st["step"]), float(st["elapsed_s"])
        sigma_data = float(st["sigma_data"])

    edm_train = EDMDenoiser(net, sigma_data, tr["c_noise_scale"])
    ema_denoiser = (EDMDenoiser(ema, sigma_data, tr["c_noise_scale"]) if tr["objective"] == "edm"
                    else VPDenoiser(ema, alphas_cumprod, "eps"))
    use_bf16 = tr["precision"] == "bf16" and dev.type == "cuda"
    budget_s = tr["max_minutes"] * 60 if tr["max_minutes"] > 0 else math.inf
    log_path, val_path = run.out / "log.jsonl", run.out / "validation.jsonl"
    t0 = time.monotonic()
    n_params = count_parameters(net)

    def save_state() -> None:
        payload = {"model": net.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                   "generator": gen.get_state(), "step": step, "elapsed_s": elapsed_before + time.monotonic() - t0,
                   "sigma_data": sigma_data, "config_sha256": digest}
        with atomic_path(state_path) as tmp:
            torch.save(payload, tmp)

    def validate() -> dict[float, float] | None:
        if heldout is None:
            return None
        x = to_network_images(heldout, modality, seed=1234, device=dev)
        wrapped = _image_denoiser(ema_denoiser, modality)
        g = torch.Generator(device=dev).manual_seed(4321)
        ema.eval()
        psnr = denoising_psnr(wrapped, x, [float(s) for s in tr["val_sigmas"]], g)
        with open(val_path, "a") as f:
            f.write(json.dumps({"step": step, "psnr_db": psnr}) + "\n")
        return psnr

    def sample_grid(path: Path) -> None:
        g = torch.Generator(device=dev).manual_seed(777)
        wrapped = _image_denoiser(ema_denoiser, modality)
        dtype = torch.complex64 if modality == "mri" else torch.float32
        size = data["image_size"]
        x = heun_sample(wrapped, (tr["n_samples"], size, size), g, steps=tr["sample_steps"],
                        sigma_min=tr["sigma_min"], sigma_max=tr["sigma_max"], dtype=dtype, device=dev)
        try:
            with atomic_path(path) as tmp:
                save_image_grid(x, str(tmp), vmax=1.2 if modality == "mri" else 1.0, title=f"{name}: step {step}")
        except ImportError:  # matplotlib is optional on training machines: keep the samples as an array
            with atomic_path(path.with_suffix(".npy")) as tmp, open(tmp, "wb") as f:
                np.save(f, x.cpu().numpy())

    bar = tqdm(total=tr["max_steps"], initial=step, disable=not run.progress, desc=f"train {name}",
               dynamic_ncols=True)
    last_loss = float("nan")
    psnr = None
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    stopped_by = "max_steps"
    net.train()
    while step < tr["max_steps"]:
        if time.monotonic() - t0 > budget_s:
            stopped_by = "max_minutes"
            break
        for group in opt.param_groups:
            group["lr"] = tr["lr"] * min(1.0, (step + 1) / max(tr["warmup_steps"], 1))
        idx = torch.randint(images.shape[0], (tr["batch_size"],), generator=gen, device=dev)
        x0 = augment(images[idx], modality, gen, data["augment"])
        if data["crop"]:
            x0 = random_crop(x0, data["crop"], gen)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            if tr["objective"] == "edm":
                loss = edm_loss(edm_train, x0, gen, tr["p_mean"], tr["p_std"])
            else:
                loss = ddpm_loss(net, x0, gen, ab_dev)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tr["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), tr["grad_clip"])
        opt.step()
        step += 1
        _ema_update(ema, net, min(tr["ema_decay"], (1 + step) / (10 + step)))
        last_loss = float(loss.detach())
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.4f}")
        if tr["log_every"] and step % tr["log_every"] == 0:
            with open(log_path, "a") as f:
                f.write(json.dumps({"step": step, "loss": last_loss, "lr": opt.param_groups[0]["lr"],
                                    "elapsed_s": elapsed_before + time.monotonic() - t0}) + "\n")
        if tr["checkpoint_every"] and step % tr["checkpoint_every"] == 0:
            save_state()
        if tr["validate_every"] and step % tr["validate_every"] == 0:
            psnr = validate()
            if psnr is not None:
                bar.write(f"step {step}: held-out denoising PSNR " +
                          ", ".join(f"s={s:g}: {v:.2f} dB" for s, v in psnr.items()))
        if tr["sample_every"] and tr["n_samples"] > 0 and step % tr["sample_every"] == 0:
            sample_grid(run.out / f"samples_step{step:07d}.png")
    bar.close()
    save_state()
    if psnr is None or not (tr["validate_every"] and step % tr["validate_every"] == 0):
        psnr = validate()
    if tr["n_samples"] > 0:
        sample_grid(run.out / "samples.png")
    versions = _versions()
    meta = {
        "architecture": {"name": "monai.DiffusionModelUNet", "config": ema.config, "parameters": n_params},
        "parameterization": "edm" if tr["objective"] == "edm" else "vp-eps",
        "preconditioning": {"sigma_data": sigma_data, "c_noise_scale": tr["c_noise_scale"]},
        "noise_schedule": ({"sigma_min": tr["sigma_min"], "sigma_max": tr["sigma_max"]} if tr["objective"] == "edm"
                           else {"sigma_min": float(vp_alpha_bar_to_sigma(alphas_cumprod)[0]),
                                 "sigma_max": float(vp_alpha_bar_to_sigma(alphas_cumprod)[-1]),
                                 "alphas_cumprod": alphas_cumprod.tolist()}),
        "data_range": IMAGE_META[modality][0],
        "channels": channels, "complex": modality == "mri", "image_size": [data["image_size"]] * 2,
        "modality": modality,
        "intensity": IMAGE_META[modality][1],
        "normalisation": IMAGE_META[modality][2],
        "training": {
            "objective": tr["objective"], "steps": step, "batch_size": tr["batch_size"], "lr": tr["lr"],
            "ema_decay": tr["ema_decay"], "precision": "bf16" if use_bf16 else "fp32", "device": str(dev),
            "data_source": data["source"], "data_path": data["path"], "data_manifest": data["manifest"],
            "data_sha256": data_sha, "n_images": int(arr.shape[0]), "augment": data["augment"],
            "crop": data["crop"], "init_from": tr["init_from"],
            "final_loss": last_loss, "heldout_psnr_db": psnr, "command": run.command,
            "medrecon_version": versions["medrecon"], "versions": versions,
            "elapsed_s": elapsed_before + time.monotonic() - t0, "stopped_by": stopped_by,
        },
    }
    multiple = 2 ** (len(ema.config["channels"]) - 1)
    if modality == "ultrasound":  # fully convolutional (no attention): frames of any size the U-Net divides
        meta["serves"] = {"min_size": [data["image_size"]] * 2, "multiple_of": multiple}
    else:  # any grid padded to the U-Net's multiple (attention at the lowest level is size-agnostic)
        meta["serves"] = {"min_size": [4 * multiple] * 2, "max_size": [640, 640], "multiple_of": multiple,
                          "pad": True, "intensity_range": list(IMAGE_META[modality][0])}
    if data["pixel_spacing_mm"]:  # the pixel sizes of the training images, which the sidecar then promises
        meta["serves"]["pixel_spacing_mm"] = [float(v) for v in data["pixel_spacing_mm"]]
    save_checkpoint(run.out / name, ema.state_dict(), meta)
    return {"steps": step, "loss": last_loss, "heldout_psnr_db": psnr, "stopped_by": stopped_by,
            "checkpoint": str(run.out / f"{name}.json")}


def _image_denoiser(channel_denoiser: torch.nn.Module, modality: str) -> torch.nn.Module:
    return ComplexAsChannels(channel_denoiser) if modality == "mri" else AddChannel(channel_denoiser)


# ---------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training TOML (see docs/priors.md and data_manifests/train_prior_*.toml)")
    parser.add_argument("--out", default=None, help="output directory (overrides output.dir)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    parser.add_argument("--max-minutes", type=float, default=None, help="override train.max_minutes (wall clock)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.max_steps is not None:
        cfg["train"]["max_steps"] = args.max_steps
    if args.max_minutes is not None:
        cfg["train"]["max_minutes"] = args.max_minutes
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise ConfigError(f"--device {args.device!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but CUDA is not available")
    out = Path(args.out or cfg["output"]["dir"])
    run = Run(cfg=cfg, out=out, device=device, progress=not args.no_progress,
              command="medrecon train-prior " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else [str(args.config)]))
    summary = train(run)
    print(json.dumps(summary, indent=2))
    return 0
