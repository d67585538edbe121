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
import torch.nn.functional as F

from ..errors import ConfigError, InputError
from .adapters import EDMDenoiser, VPDenoiser, linear_alphas_cumprod, vp_sigmas
from .checkpoint import atomic_write, file_sha256, save_checkpoint
from .network import UNET_KEYS, build_unet, count_parameters
from .sampling import denoising_psnr

__all__ = ["SCHEMA", "load_config", "add_arguments", "main", "train"]

# section -> key -> (type(s), default); a default of ... marks a required key.
SCHEMA: dict[str, dict[str, tuple[Any, Any]]] = {
    "": {"name": (str, ...), "modality": (str, ...)},
    "data": {
        "source": (str, "npy"), "path": (str, ""), "sha256": (str, ""), "manifest": (str, ""),
        "augment": (bool, True), "image_size": (int, 128), "heldout": (str, ""), "slice_axis": (int, 2),
    },
    "model": {k: ((int, list), None) for k in UNET_KEYS if k not in ("in_channels", "out_channels")},
    "train": {
        "objective": (str, "edm"), "batch_size": (int, 32), "lr": (float, 2e-4), "weight_decay": (float, 0.0),
        "ema_decay": (float, 0.999), "warmup_steps": (int, 200), "max_steps": (int, 100_000),
        "max_minutes": (float, 0.0), "seed": (int, 0), "precision": (str, "bf16"), "grad_clip": (float, 1.0),
        "p_mean": (float, -1.2), "p_std": (float, 1.4), "sigma_data": ((float, str), "auto"),
        "sigma_min": (float, 0.002), "sigma_max": (float, 20.0), "c_noise_scale": (float, 1000.0),
        "num_timesteps": (int, 1000), "log_every": (int, 50), "validate_every": (int, 1000),
        "sample_every": (int, 0), "checkpoint_every": (int, 500), "val_sigmas": (list, [0.02, 0.05, 0.1, 0.2, 0.5, 1.0]),
        "sample_steps": (int, 18), "n_samples": (int, 16),
    },
    "output": {"dir": (str, "runs/prior")},
}
CHOICES = {
    ("", "modality"): ("mri", "ct"),
    ("data", "source"): ("npy", "mni152", "ct_phantoms", "nifti", "fastmri"),
    ("train", "objective"): ("edm", "ddpm"),
    ("train", "precision"): ("bf16", "fp32"),
}


def _check_type(where: str, value: Any, types: Any) -> None:
    types = types if isinstance(types, tuple) else (types,)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return
    if bool not in types and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {'/'.join(t.__name__ for t in types)}, got a boolean")
    if not isinstance(value, types):
        raise ConfigError(f"{where}: expected {'/'.join(t.__name__ for t in types)}, got {type(value).__name__}")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a training TOML file into ``{"": top-level, "data": ..., "model": ..., ...}``.

    Unknown sections or keys, wrong types and bad choices raise ``ConfigError`` naming the key and what is allowed.
    """
    import tomllib

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "config file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError(path, f"not a readable TOML file ({err})") from None
    return validate_config(raw, str(path))


def validate_config(raw: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """Validate a parsed config dict (see ``load_config``)."""
    sections = [s for s in SCHEMA if s]
    cfg: dict[str, dict[str, Any]] = {s: {} for s in SCHEMA}
    for key, value in raw.items():
        if isinstance(value, dict):
            if key not in sections:
                raise ConfigError(f"{where}: unknown section [{key}]; allowed sections: {sections}")
            for k, v in value.items():
                if k not in SCHEMA[key]:
                    raise ConfigError(f"{where}: unknown key '{key}.{k}'; allowed keys in [{key}]: "
                                      f"{sorted(SCHEMA[key])}")
                _check_type(f"{where}: {key}.{k}", v, SCHEMA[key][k][0])
                cfg[key][k] = v
        else:
            if key not in SCHEMA[""]:
                raise ConfigError(f"{where}: unknown key '{key}'; allowed top-level keys: "
                                  f"{sorted(SCHEMA[''])} and sections {sections}")
            _check_type(f"{where}: {key}", value, SCHEMA[""][key][0])
            cfg[""][key] = value
    for section, keys in SCHEMA.items():
        for k, (_, default) in keys.items():
            if k not in cfg[section]:
                if default is ...:
                    raise ConfigError(f"{where}: missing required key '{(section + '.') if section else ''}{k}'")
                if default is not None:
                    cfg[section][k] = copy.deepcopy(default)
    for (section, k), allowed in CHOICES.items():
        if cfg[section][k] not in allowed:
            name = f"{section}.{k}" if section else k
            raise ConfigError(f"{where}: {name} = {cfg[section][k]!r} is not one of {list(allowed)}")
    sd = cfg["train"]["sigma_data"]
    if isinstance(sd, str) and sd != "auto":
        raise ConfigError(f"{where}: train.sigma_data must be a number or 'auto', got {sd!r}")
    if cfg["train"]["batch_size"] < 1 or cfg["train"]["max_steps"] < 0:
        raise ConfigError(f"{where}: train.batch_size must be >= 1 and train.max_steps >= 0")
    if cfg["data"]["source"] in ("npy", "nifti", "fastmri") and not cfg["data"]["path"]:
        raise ConfigError(f"{where}: data.path is required for data.source = {cfg['data']['source']!r}")
    return cfg


# ---------------------------------------------------------------------------------------------------- data


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[-2:] == (size, size):
        return images
    t = torch.from_numpy(np.ascontiguousarray(images))
    parts = torch.view_as_real(t).movedim(-1, 1) if t.is_complex() else t[:, None]
    out = F.interpolate(parts.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    out = torch.view_as_complex(out.movedim(1, -1).contiguous()) if t.is_complex() else out[:, 0]
    return out.numpy()


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(path, "training array not found") from None
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a readable .npy array ({err})") from None
    if arr.ndim != 3 or not (np.issubdtype(arr.dtype, np.floating) or np.iscomplexobj(arr)):
        raise InputError(path, f"expected a float or complex (N, H, W) array, got {arr.dtype} {arr.shape}")
    return arr


def _read_nifti(path: Path, axis: int, size: int) -> np.ndarray:
    import nibabel as nib

    from .datasets import preprocess_axial_slice

    try:
        vol = np.asarray(nib.load(str(path)).get_fdata(), dtype=np.float32)
    except (FileNotFoundError, nib.filebasedimages.ImageFileError, OSError) as err:
        raise InputError(path, f"not a readable NIfTI volume ({err})") from None
    if vol.ndim != 3:
        raise InputError(path, f"expected a 3D volume, got shape {vol.shape}")
    vol = np.moveaxis(vol, axis, 2)
    scale = float(np.percentile(vol, 99.5)) or 1.0
    return np.stack([preprocess_axial_slice(vol[:, :, z], scale, size) for z in range(vol.shape[2])
                     if vol[:, :, z].max() > 0])


def _read_fastmri(path: Path, size: int) -> np.ndarray:
    """Complex coil-combined images from fastMRI HDF5 file(s): centred orthonormal inverse FFT per coil, combined as
    ``rss * exp(i angle(sum_c x_c))``, centre-cropped to a square, resized, normalised per volume (99.5th pct)."""
    import h5py

    files = sorted(path.glob("*.h5")) if path.is_dir() else [path]
    if not files:
        raise InputError(path, "no .h5 files found")
    out = []
    for f in files:
        try:
            with h5py.File(f, "r") as h:
                if "kspace" not in h:
                    raise InputError(f, "missing dataset", "kspace")
                k = torch.from_numpy(np.asarray(h["kspace"]))
        except OSError as err:
            raise InputError(f, f"not a readable HDF5 file ({err})") from None
        if k.ndim == 3:
            k = k[:, None]
        if k.ndim != 4 or not k.is_complex():
            raise InputError(f, f"expected complex (slices, coils, H, W) k-space, got {tuple(k.shape)}", "kspace")
        coils = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))
        img = coils.abs().pow(2).sum(1).sqrt() * torch.exp(1j * coils.sum(1).angle())
        h_, w_ = img.shape[-2:]
        n = min(h_, w_)
        img = img[..., (h_ - n) // 2:(h_ - n) // 2 + n, (w_ - n) // 2:(w_ - n) // 2 + n].numpy()
        img = _resize(img.astype(np.complex64), size)
        out.append(img / (np.percentile(np.abs(img), 99.5) or 1.0))
    return np.concatenate(out).astype(np.complex64)


def load_training_array(data: dict[str, Any], modality: str) -> tuple[np.ndarray, str | None]:
    """The training images ``(N, S, S)`` (float32 magnitude/real or complex64) and the sha256 of their file."""
    size = data["image_size"]
    source = data["source"]
    path = Path(data["path"]) if data["path"] else None
    digest = None
    if source == "npy":
        digest = file_sha256(path) if path.exists() else None
        if data["sha256"] and digest != data["sha256"]:
            from ..errors import ChecksumError

            raise ChecksumError(path, f"sha256 {digest} does not match data.sha256 {data['sha256']}", "sha256")
        arr = _read_npy(path)
    elif source == "nifti":
        arr = _read_nifti(path, data["slice_axis"], size)
    elif source == "fastmri":
        arr = _read_fastmri(path, size)
    elif source == "mni152":
        from .datasets import mri_training_set

        arr = mri_training_set()[0]
    else:
        from .datasets import ct_training_set

        arr = ct_training_set()[0]
    arr = _resize(arr, size)
    if modality == "ct" and np.iscomplexobj(arr):
        raise InputError(path or source, "CT priors are real; the training array is complex")
    return (arr.astype(np.complex64) if np.iscomplexobj(arr) else arr.astype(np.float32)), digest


def load_heldout(data: dict[str, Any], modality: str) -> np.ndarray | None:
    """Held-out images for validation (``data.heldout``: ``"mni152"``, ``"ct"``, a .npy path or empty)."""
    h = data["heldout"]
    if not h:
        return None
    if h == "mni152":
        from .datasets import mni152_heldout_slices

        arr = mni152_heldout_slices()
    elif h == "ct":
        from .datasets import ct_heldout_slices

        arr = ct_heldout_slices()
    else:
        arr = _read_npy(Path(h))
    return _resize(arr, data["image_size"])


def smooth_phase(shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Random smooth phase maps ``(B, H, W)``: constant + linear ramps (up to pi across the field) + a bicubically
    upsampled 4x4 random field (up to pi/2)."""
    b, h, w = shape
    u = lambda *s: torch.rand(*s, generator=generator, device=device)  # noqa: E731
    yy = torch.linspace(-1, 1, h, device=device)[:, None]
    xx = torch.linspace(-1, 1, w, device=device)[None, :]
    c0 = (u(b, 1, 1) * 2 - 1) * math.pi
    ramp = (u(b, 1, 1) - 0.5) * math.pi * xx + (u(b, 1, 1) - 0.5) * math.pi * yy
    coarse = torch.randn(b, 1, 4, 4, generator=generator, device=device)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[:, 0] * u(b, 1, 1) * math.pi / 4
    return c0 + ramp + field


def augment(x: torch.Tensor, modality: str, generator: torch.Generator, enabled: bool = True) -> torch.Tensor:
    """Training batch ``(B, H, W)`` -> network channels ``(B, C, H, W)``.

    With ``enabled``: left-right flips (p = 0.5), rotations within +-10 degrees and scaling in [0.9, 1.1]
    (bilinear), intensity changes (MRI: gain in [0.85, 1.15] and gamma in [0.8, 1.25] on the magnitude; CT:
    contrast in [0.95, 1.05] about water and offset within +-0.01, clipped to [0, 1]). MRI magnitude images get
    a random smooth phase (always); complex inputs keep theirs.
    """
    dev = x.device
    b, h, w = x.shape
    u = lambda *s: torch.rand(*s, generator=generator, device=dev)  # noqa: E731
    ch = torch.view_as_real(x).movedim(-1, 1) if x.is_complex() else x[:, None]
    if enabled:
        flip = u(b) < 0.5
        ch = torch.where(flip[:, None, None, None], ch.flip(-1), ch)
        ang = (u(b) * 2 - 1) * math.radians(10)
        scale = 0.9 + 0.2 * u(b)
        cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
        theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], -1),
                             torch.stack([sin, cos, torch.zeros_like(cos)], -1)], 1)
        grid = F.affine_grid(theta, list(ch.shape), align_corners=False)
        ch = F.grid_sample(ch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if modality == "ct":
            ch = (0.5 + (ch - 0.5) * (0.95 + 0.1 * u(b, 1, 1, 1)) + (u(b, 1, 1, 1) * 2 - 1) * 0.01).clamp(0, 1)
        elif not x.is_complex():
            gamma = torch.exp((u(b, 1, 1, 1) * 2 - 1) * math.log(1.25))
            ch = ch.clamp_min(0).pow(gamma) * (0.85 + 0.3 * u(b, 1, 1, 1))
        else:
            ch = ch * (0.85 + 0.3 * u(b, 1, 1, 1))
    if modality == "mri" and not x.is_complex():
        phase = smooth_phase((b, h, w), generator, dev)
        ch = torch.stack([ch[:, 0] * torch.cos(phase), ch[:, 0] * torch.sin(phase)], 1)
    return ch.contiguous()


def to_network_images(arr: np.ndarray, modality: str, seed: int, device: torch.device) -> torch.Tensor:
    """Held-out images as the prior's image tensors ``(N, H, W)``: complex64 (fixed smooth phase from ``seed``
    for magnitude MRI images) or float32."""
    x = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
    if modality == "mri" and not x.is_complex():
        g = torch.Generator(device=device).manual_seed(seed)
        x = x.float() * torch.exp(1j * smooth_phase(tuple(x.shape), g, device))
    return x.to(torch.complex64) if x.is_complex() else x.float()


# ---------------------------------------------------------------------------------------------------- training


@dataclass
class Run:
    cfg: dict[str, Any]
    out: Path
    device: torch.device
    progress: bool
    command: str


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)


def _config_digest(cfg: dict[str, Any]) -> str:
    keep = {s: {k: v for k, v in cfg[s].items() if k not in ("max_steps", "max_minutes")} for s in cfg
            if s != "output"}
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


def train(run: Run) -> dict[str, Any]:
    """Train (or resume) the prior described by ``run.cfg``; returns a summary (steps, final losses, PSNR)."""
    from tqdm import tqdm

    cfg, dev = run.cfg, run.device
    run.out.mkdir(parents=True, exist_ok=True)
    name, modality = cfg[""]["name"], cfg[""]["modality"]
    tr, data = cfg["train"], cfg["data"]
    arr, data_sha = load_training_array(data, modality)
    heldout = load_heldout(data, modality)
    channels = 2 if modality == "mri" else 1
    images = torch.from_numpy(arr).to(dev)
    if tr["sigma_data"] == "auto":
        sigma_data = float(np.sqrt(np.mean(np.abs(arr.astype(np.complex64 if channels == 2 else np.float32)) ** 2)
                                   / channels))
    else:
        sigma_data = float(tr["sigma_data"])
    torch.manual_seed(tr["seed"])  # parameter initialisation only; every draw below uses `gen`
    net = build_unet({**cfg["model"], "in_channels": channels, "out_channels": channels}).to(dev)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=tr["lr"], weight_decay=tr["weight_decay"], betas=(0.9, 0.999))
    gen = torch.Generator(device=dev).manual_seed(tr["seed"])
    alphas_cumprod = linear_alphas_cumprod(tr["num_timesteps"])
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
        with atomic_write(state_path) as tmp:
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
        from .sampling import heun_sample, save_image_grid

        g = torch.Generator(device=dev).manual_seed(777)
        wrapped = _image_denoiser(ema_denoiser, modality)
        dtype = torch.complex64 if modality == "mri" else torch.float32
        size = data["image_size"]
        x = heun_sample(wrapped, (tr["n_samples"], size, size), g, steps=tr["sample_steps"],
                        sigma_min=tr["sigma_min"], sigma_max=tr["sigma_max"], dtype=dtype, device=dev)
        try:
            with atomic_write(path) as tmp:
                save_image_grid(x, str(tmp), vmax=1.2 if modality == "mri" else 1.0, title=f"{name}: step {step}")
        except ImportError:  # matplotlib is optional on training machines: keep the samples as an array
            with atomic_write(path.with_suffix(".npy")) as tmp, open(tmp, "wb") as f:
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
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            if tr["objective"] == "edm":
                z = torch.randn(x0.shape[0], generator=gen, device=dev)
                sigma = torch.exp(tr["p_mean"] + tr["p_std"] * z)
                noise = torch.randn(x0.shape, generator=gen, device=dev)
                xn = x0 + sigma[:, None, None, None] * noise
                c_skip, c_out, _, _ = edm_train.coefficients(sigma)
                target = (x0 - c_skip[:, None, None, None] * xn) / c_out[:, None, None, None]
                pred = edm_train.raw(xn, sigma)
            else:
                t = torch.randint(tr["num_timesteps"], (x0.shape[0],), generator=gen, device=dev)
                noise = torch.randn(x0.shape, generator=gen, device=dev)
                ab = ab_dev[t][:, None, None, None]
                pred = net(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t.float())
                target = noise
            loss = (pred.float() - target).pow(2).mean()
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
                           else {"sigma_min": float(vp_sigmas(alphas_cumprod)[0]),
                                 "sigma_max": float(vp_sigmas(alphas_cumprod)[-1]),
                                 "alphas_cumprod": alphas_cumprod.tolist()}),
        "data_range": [0.0, 1.2] if modality == "mri" else [0.0, 1.0],
        "channels": channels, "complex": modality == "mri", "image_size": [data["image_size"]] * 2,
        "modality": modality,
        "intensity": ("magnitude normalised so the volume's 99.5th percentile is 1" if modality == "mri"
                      else "HU window [-1000, 1000] mapped linearly to [0, 1]"),
        "training": {
            "objective": tr["objective"], "steps": step, "batch_size": tr["batch_size"], "lr": tr["lr"],
            "ema_decay": tr["ema_decay"], "precision": "bf16" if use_bf16 else "fp32", "device": str(dev),
            "data_source": data["source"], "data_path": data["path"], "data_manifest": data["manifest"],
            "data_sha256": data_sha, "n_images": int(arr.shape[0]), "augment": data["augment"],
            "final_loss": last_loss, "heldout_psnr_db": psnr, "command": run.command,
            "medrecon_version": versions["medrecon"], "versions": versions,
            "elapsed_s": elapsed_before + time.monotonic() - t0, "stopped_by": stopped_by,
        },
    }
    save_checkpoint(run.out / name, ema.state_dict(), meta)
    return {"steps": step, "loss": last_loss, "heldout_psnr_db": psnr, "stopped_by": stopped_by,
            "checkpoint": str(run.out / f"{name}.json")}


def _image_denoiser(channel_denoiser: torch.nn.Module, modality: str) -> torch.nn.Module:
    from .adapters import AddChannel, ComplexAsChannels

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
    out.mkdir(parents=True, exist_ok=True)
    run = Run(cfg=cfg, out=out, device=device, progress=not args.no_progress,
              command="medrecon train-prior " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else [str(args.config)]))
    summary = train(run)
    print(json.dumps(summary, indent=2))
    return 0
