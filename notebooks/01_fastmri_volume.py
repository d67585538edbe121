# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Reconstructing a fastMRI multi-coil volume with DDS
#
# This notebook walks through what `medrecon run medrecon/configs/fastmri_dds_4x.toml` does, step by step:
#
# 1. read a fastMRI multi-coil HDF5 volume slice by slice,
# 2. choose a fastMRI sampling mask and undersample the k-space,
# 3. estimate coil sensitivity maps from the calibration lines of the *undersampled* data,
# 4. build the SENSE operator `A = Subsample(mask) @ FFT2c @ Coils(smaps)` and check its adjoint,
# 5. reconstruct every slice with DDS (50 network calls) and the shipped MRI prior,
# 6. compare with zero-filled, CG-SENSE and L1-wavelet reconstructions (PSNR/SSIM, figures).
#
# By default it uses the 4-slice 8-coil 128x128 sample shipped with medrecon. Set `DATA` to a real fastMRI
# multi-coil file (e.g. `file_brain_AXT2_200_2000019.h5`) to reconstruct that instead. With the environment
# variable `MEDRECON_SMOKE=1` it runs a tiny version (one slice, a few steps) used by the test suite.
#
# It makes the job's choices at every step (calibration lines, ESPIRiT kernel, noise level, chunk seeds, metric
# data range), so it prints the numbers `medrecon run fastmri_dds_4x.toml` prints for the same settings
# (`tests/test_notebook.py` checks this in smoke mode). Run it with `make notebook`.

# %% tags=["parameters"]
import os
from pathlib import Path

import medrecon

DATA = Path(medrecon.__file__).parent / "data" / "fastmri_sample.h5"  # or a real fastMRI multi-coil .h5
SMOKE = os.environ.get("MEDRECON_SMOKE") == "1"
MASK = "equispaced"  # fastMRI EquiSpacedMaskFunc; "random" for RandomMaskFunc
ACCELERATION = 4
CENTER_FRACTION = 0.08  # fastMRI: 0.08 at 4x, 0.04 at 8x
COIL_MAPS = "espirit"  # "espirit" (rectangular calibration region) or "lowres" (fast low-resolution maps)
STEPS = 3 if SMOKE else 50  # DDS steps = network calls
SLICES = [0] if SMOKE else None  # None: every slice
SIGMA_Y = "auto"  # k-space noise std per real component in the file's units; "auto": estimated, as jobs do
BATCH_SIZE = 4  # slices per sampler run (the job's run.batch_size)
SEED = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from medrecon.io.fastmri import center_crop, read_info, read_slice

info = read_info(DATA)
slices = list(range(info.num_slices)) if SLICES is None else list(SLICES)
read = [read_slice(DATA, s) for s in slices]
kspace = torch.stack([r.kspace for r in read])  # (S, C, H, W) complex64, fully sampled
print(f"{DATA.name}: {info.num_slices} slices, {info.coils} coils, k-space {info.kspace_shape}, "
      f"reconstruction size {info.recon_size}; using slices {slices}")

# %% [markdown]
# The reference is the file's `reconstruction_rss` when it has one (fastMRI train/val files), otherwise the
# root-sum-of-squares of the fully sampled coil images, centre-cropped to the reconstruction size.

# %%
from operators.mri import ifft2c

if all(r.target is not None for r in read):
    reference = torch.stack([r.target for r in read])
else:
    reference = center_crop(ifft2c(kspace).abs().square().sum(1).sqrt(), info.recon_size)
crop = tuple(reference.shape[-2:])

# %% [markdown]
# ## Sampling mask
# Every function that draws randomness takes a `torch.Generator`, so the mask is reproducible from `SEED`.

# %%
from operators import masks

generator = torch.Generator().manual_seed(SEED)
make = {"equispaced": masks.equispaced_mask, "random": masks.random_mask}[MASK]
mask = make(kspace.shape[-1], ACCELERATION, generator, center_fraction=CENTER_FRACTION)
y = torch.where(mask.mask, kspace, torch.zeros((), dtype=kspace.dtype))  # unsampled entries are exactly +0
print(f"{MASK} mask: acceleration {mask.acceleration:.2f}, {mask.center_lines} centre lines")

fig, ax = plt.subplots(figsize=(6, 1))
ax.imshow(mask.mask[None].float().numpy(), cmap="gray", aspect="auto")
ax.set_yticks([])
ax.set_title("sampled phase-encode columns")
plt.show()

# %% [markdown]
# ## Coil sensitivities from the calibration region
# Only the fully sampled centre lines of the *undersampled* k-space are used (no fully sampled data leaks in):
# every column of the centred block that is sampled, as in jobs (a random mask's lines next to the centre
# block widen it beyond `mask.center_lines`).

# %%
from medrecon import defaults
from operators import coil_maps

calib_width = coil_maps.center_columns(y)
if COIL_MAPS == "espirit":
    smaps = coil_maps.espirit_maps(y, calib_width=calib_width, kernel_width=defaults.COIL_MAPS.espirit_kernel)
else:
    smaps = coil_maps.lowres_maps(y, calib_width=calib_width)
print(f"{COIL_MAPS} coil maps from {calib_width} calibration columns")

fig, axes = plt.subplots(1, min(8, smaps.shape[1]), figsize=(12, 1.8))
for c, ax in enumerate(np.atleast_1d(axes)):
    ax.imshow(smaps[0, c].abs().numpy(), cmap="gray")
    ax.set_title(f"|S_{c}|", fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## The forward operator
# `multicoil_mri` composes the mask, the centred orthonormal FFT and the coil maps; the dot test checks
# `<A x, y> = <x, A^H y>` to single precision.

# %%
from operators.mri import multicoil_mri
from operators.testing import check_adjoint

A = multicoil_mri(smaps, mask.mask)
print(A)
print(f"adjoint test relative error: {check_adjoint(A, tuple(y.shape[:1]) + tuple(y.shape[-2:])):.1e}")

# %% [markdown]
# ## Prior and intensity scale
# The prior's sidecar states how its training images were normalised (`normalisation`: here the volume's
# 99.5th percentile at 1). `estimate_scale` applies that rule to a 5-iteration CG image of the data, as every
# job does; the sampler sees `y / scale` and `sigma_y / scale`, and results are multiplied back.

# %%
from medrecon.jobs.problem import VolumeProblem
from medrecon.jobs.run import estimate_scale
from medrecon.priors.checkpoint import default_prior

prior = default_prior("mri")
volume_problem = VolumeProblem(y, lambda sl: multicoil_mri(smaps[sl], mask.mask), tuple(y.shape[-2:]),
                               torch.complex64, crop)
scale = estimate_scale(volume_problem, prior, torch.device("cpu"))["scale"]
zero_filled = A.adjoint(y)
print(f"prior normalisation {prior.meta['normalisation']}, scale {scale:.4g}")

# %% [markdown]
# The measurement noise: `"auto"` estimates it from the k-space corners and readout edges (`medrecon.jobs.noise`), as jobs do.

# %%
from medrecon.jobs.noise import kspace_noise_std

sigma_y = kspace_noise_std(y, mask.mask) if SIGMA_Y == "auto" else float(SIGMA_Y)
print(f"sigma_y {sigma_y:.3g} per real component")

# %% [markdown]
# ## DDS over every slice
# One network call per step; each step's Tweedie estimate is pulled towards the data by CG iterations on
# `(A^H A + rho I) x = A^H y + rho x0_hat`, where `rho = lam sigma_y^2 / Var[x0 | x_t]` follows the measurement
# noise and the current noise level (noiseless data: the normal equations). The sampler is the job's `dds`
# component with the defaults of `medrecon.defaults.DDS`; the driver times every step and can checkpoint. Like
# a job, slices run in chunks of `BATCH_SIZE`, each with its own seed `chunk_seed(SEED, k)`. Outside the coil maps'
# support no coil measures anything: `coil_support` marks those pixels and the sampler holds them at zero, as
# SENSE's minimum-norm solution does.

# %%
import time

from medrecon import samplers
from medrecon.jobs.run import chunk_seed
from medrecon.jobs.sampling import coil_support, dds

sampler = dds(prior.meta, steps=STEPS).sampler
start, parts, network_seconds = time.perf_counter(), [], 0.0
for k, first in enumerate(range(0, len(slices), BATCH_SIZE)):
    sl = slice(first, first + BATCH_SIZE)
    op = multicoil_mri(smaps[sl], mask.mask)
    problem = samplers.InverseProblem(op, y[sl] / scale, sigma_y / scale, coil_support(op))
    result = samplers.run(sampler, problem, prior, torch.Generator().manual_seed(chunk_seed(SEED, k)),
                          progress=False)
    parts.append(result.x * scale)
    network_seconds += result.network_seconds
x_dds = torch.cat(parts)
print(f"DDS: {result.nfe} network calls per chunk, {time.perf_counter() - start:.1f} s "
      f"({network_seconds:.1f} s in the network)")

# %% [markdown]
# ## Baselines

# %%
from medrecon.jobs.baselines import cg_sense, l1_wavelet

start = time.perf_counter()
options = {"iters": 5} if SMOKE else {}  # otherwise the defaults of medrecon.defaults
recons = {"zero-filled": zero_filled, "CG-SENSE": scale * cg_sense(y / scale, A, **options)}
recons["L1-wavelet"] = scale * l1_wavelet(y / scale, A, **options)
recons["DDS"] = x_dds
print(f"baselines: {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## Metrics (fastMRI definitions: per volume, data range = the file's `max` attribute, else the reference's max)

# %%
from medrecon.metrics import nmse, psnr, ssim

magnitudes = {name: center_crop(x, crop).abs() for name, x in recons.items()}
maxval = float(info.attrs.get("max", reference.max()))
print(f"{'method':<12} {'PSNR':>7} {'SSIM':>7} {'NMSE':>8}")
for name, mag in magnitudes.items():
    print(f"{name:<12} {psnr(reference, mag, maxval):7.2f} {ssim(reference, mag, maxval):7.4f} "
          f"{nmse(reference, mag):8.4f}")

# %% [markdown]
# ## Figures: each method on the middle slice, and its error map

# %%
mid = len(slices) // 2
fig, axes = plt.subplots(2, len(magnitudes) + 1, figsize=(3 * (len(magnitudes) + 1), 6))
vmax = float(reference[mid].max())
axes[0, 0].imshow(reference[mid].numpy(), cmap="gray", vmin=0, vmax=vmax)
axes[0, 0].set_title("reference")
axes[1, 0].axis("off")
for col, (name, mag) in enumerate(magnitudes.items(), start=1):
    axes[0, col].imshow(mag[mid].numpy(), cmap="gray", vmin=0, vmax=vmax)
    axes[0, col].set_title(f"{name}\n{psnr(reference[mid:mid + 1], mag[mid:mid + 1], maxval):.2f} dB")
    axes[1, col].imshow((mag[mid] - reference[mid]).abs().numpy(), cmap="magma", vmin=0, vmax=0.2 * vmax)
    axes[1, col].set_title(f"|error| {name}")
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The same as a job
# Everything above is one job file; `medrecon run` adds chunked slices, resumable checkpoints, atomic outputs
# (a fastMRI-style `reconstruction` HDF5, figures) and a `record.json` with versions, seeds, scale and
# timings:
#
# ```bash
# medrecon check fastmri_dds_4x.toml
# medrecon run fastmri_dds_4x.toml --out runs/brain \
#     --set data.path="/data/file_brain_AXT2_200_2000019.h5"
# ```
