"""Training images of ``medrecon train-prior``: readers (.npy, NIfTI, fastMRI HDF5, built-in generators) and the
on-the-fly augmentation that turns a batch of images into network channels."""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from operators.mri import ifft2c

from ..errors import ChecksumError, InputError
from ..files import sha256_file

__all__ = ["augment", "load_heldout", "load_training_array", "smooth_phase", "to_network_images"]


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[-2:] == (size, size):
        return images
    t = torch.from_numpy(np.ascontiguousarray(images))
    parts = torch.view_as_real(t).movedim(-1, 1) if t.is_complex() else t[:, None]
    out = F.interpolate(parts.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    out = torch.view_as_complex(out.movedim(1, -1).contiguous()) if t.is_complex() else out[:, 0]
    return out.numpy()


PREPARED_ARRAYS = ("mri_train.npy", "mri_heldout.npy", "ct_train.npy", "ct_heldout.npy")


def missing_array_hint(path: Path) -> str:
    """How to create a missing training array: ``medrecon.training.prepare`` writes the shipped priors' arrays;
    any other name has to be made by the user (or a built-in ``data.source`` used instead)."""
    if path.name in PREPARED_ARRAYS:
        return (
            f"create it with `python -m medrecon.training.prepare --out {path.parent}` (relative paths "
            "are taken from the working directory; needs `pip install 'medrecon[data]'`)"
        )
    return (
        'point it at a float or complex (N, H, W) .npy array, or use data.source = "mni152" or "ct_phantoms" '
        "(generated on the fly)"
    )


def _read_npy(path: Path, field: str = "path") -> np.ndarray:
    if not path.is_file():
        raise InputError(path, f"training array not found; {missing_array_hint(path)}", field=field)
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(path, f"training array not found; {missing_array_hint(path)}", field=field) from None
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
        coils = ifft2c(k)
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
        assert path is not None  # validate_config requires data.path for npy
        if not path.is_file():
            raise InputError(path, f"training array not found; {missing_array_hint(path)}", field="path")
        digest = sha256_file(path)
        if data["sha256"] and digest != data["sha256"]:
            raise ChecksumError(path, f"sha256 {digest} does not match data.sha256 {data['sha256']}", "sha256")
        arr = _read_npy(path)
    elif source == "nifti":
        arr = _read_nifti(path, data["slice_axis"], size)
    elif source == "fastmri":
        arr = _read_fastmri(path, size)
    elif source == "mni152":
        from .datasets import mri_training_set

        arr = mri_training_set()[0]
    elif source in ("us_tissue", "us_haze"):
        from .us_datasets import us_training_set

        arr = us_training_set(source, size)
    else:
        from .datasets import ct_training_set

        arr = ct_training_set()[0]
    arr = _resize(arr, size)
    if modality in ("ct", "ultrasound") and np.iscomplexobj(arr):
        raise InputError(path or source, f"{modality} priors are real; the training array is complex")
    return (arr.astype(np.complex64) if np.iscomplexobj(arr) else arr.astype(np.float32)), digest


def load_heldout(data: dict[str, Any], modality: str) -> np.ndarray | None:
    """Held-out images for validation (``data.heldout``: ``"mni152"``, ``"ct"``, ``"us_tissue"``, ``"us_haze"``, a
    .npy path or empty)."""
    h = data["heldout"]
    if not h:
        return None
    if h == "mni152":
        from .datasets import mni152_heldout_slices

        arr = mni152_heldout_slices()
    elif h == "ct":
        from .datasets import ct_heldout_slices

        arr = ct_heldout_slices()
    elif h in ("us_tissue", "us_haze"):
        from .us_datasets import us_heldout

        arr = us_heldout(h, data["image_size"])
    else:
        arr = _read_npy(Path(h), field="heldout")
    return _resize(arr, data["image_size"])


def smooth_phase(shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Random smooth phase maps ``(B, H, W)``: constant + linear ramps (up to pi across the field) + a bicubically
    upsampled 4x4 random field (up to pi/2)."""
    b, h, w = shape
    u = functools.partial(torch.rand, generator=generator, device=device)
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
    a random smooth phase (always); complex inputs keep theirs. Ultrasound (companded RF, whose fast-time
    oscillation a rotation would destroy): lateral flips and sign flips only.
    """
    dev = x.device
    b, h, w = x.shape
    u = functools.partial(torch.rand, generator=generator, device=dev)
    ch = torch.view_as_real(x).movedim(-1, 1) if x.is_complex() else x[:, None]
    if enabled and modality == "ultrasound":
        ch = torch.where((u(b) < 0.5)[:, None, None, None], ch.flip(-1), ch)
        return (ch * torch.where(u(b, 1, 1, 1) < 0.5, -1.0, 1.0)).contiguous()
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
