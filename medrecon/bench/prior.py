"""``medrecon bench prior``: denoising PSNR of the shipped priors against a Fourier-domain Wiener denoiser.

For each prior (MRI, CT): the Wiener denoiser (mean + power spectrum) is fitted to ``--n-fit`` augmented training
images drawn exactly as in training; both denoisers see the same noise realisations of the held-out images
(MRI: 1 mm MNI152 axial slices z in [100, 112) with a fixed smooth phase; CT: the held-out random phantoms) at each
sigma. Also writes an unconditional sample grid (EDM Heun sampler) per prior to ``--grid-dir``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--priors", default="mri,ct", help="comma-separated: mri, ct, or sidecar paths")
    parser.add_argument("--n-fit", type=int, default=4096, help="augmented training images for the Wiener fit")
    parser.add_argument("--samples", type=int, default=16, help="images in each sample grid (0: none)")
    parser.add_argument("--sample-steps", type=int, default=18, help="Heun steps of the sample grid")
    parser.add_argument("--grid-dir", default="outputs/bench_prior", help="where the sample grid PNGs go")
    parser.add_argument("--seed", type=int, default=0)


def _data(modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(training array (N, H, W) magnitude/real, held-out images as prior inputs (M, H, W))."""
    from medrecon.training import datasets
    from medrecon.training.data import to_network_images

    if modality == "mri":
        train, _ = datasets.mri_training_set()
        held = to_network_images(datasets.mni152_heldout_slices(), "mri", seed=1234, device=torch.device("cpu"))
    else:
        from medrecon.training.prepare import CT_RANDOM_PHANTOMS

        train, _ = datasets.ct_training_set(CT_RANDOM_PHANTOMS)
        held = to_network_images(datasets.ct_heldout_slices(), "ct", seed=1234, device=torch.device("cpu"))
    return torch.from_numpy(train), held


def _fit_wiener(train: torch.Tensor, modality: str, n_fit: int, seed: int):
    from medrecon.baselines.wiener import FourierWienerDenoiser
    from medrecon.priors.adapters import channels_to_complex
    from medrecon.training.data import augment

    g = torch.Generator().manual_seed(seed)
    draws = []
    for i in range(0, n_fit, 256):
        idx = torch.randint(train.shape[0], (min(256, n_fit - i),), generator=g)
        ch = augment(train[idx].float(), modality, g, enabled=True)
        draws.append(channels_to_complex(ch) if modality == "mri" else ch[:, 0])
    return FourierWienerDenoiser.fit(torch.cat(draws).to(torch.complex128 if modality == "mri" else torch.float64))


def main(args: argparse.Namespace) -> int:
    from medrecon.priors.checkpoint import load_prior
    from medrecon.training.evaluate import denoising_psnr, heun_sample, save_image_grid

    dev = torch.device(args.device)
    sigmas = list(SIGMAS[1::2] if args.quick else SIGMAS)
    n_fit = 512 if args.quick else args.n_fit
    rows = ["| prior | sigma | noisy input PSNR (dB) | diffusion prior PSNR (dB) | Wiener PSNR (dB) | gain (dB) |",
            "|---|---|---|---|---|---|"]
    timings = []
    for name in args.priors.split(","):
        prior = load_prior(name, dev)
        modality = prior.meta.get("modality", name)
        train, held = _data(modality)
        if args.quick:
            held = held[:4]
        wiener = _fit_wiener(train, modality, n_fit, args.seed).to(dev)
        held = held.to(dev)
        t0 = time.perf_counter()
        ours = denoising_psnr(prior, held, sigmas, torch.Generator(device=dev).manual_seed(4321), batch=4)
        t_prior = (time.perf_counter() - t0) / (len(sigmas) * held.shape[0])
        noisy = denoising_psnr(lambda x, s: x, held, sigmas, torch.Generator(device=dev).manual_seed(4321), batch=4)
        base = denoising_psnr(wiener, held, sigmas, torch.Generator(device=dev).manual_seed(4321), batch=4)
        for s in sigmas:
            gain = ours[s] - base[s]
            rows.append(f"| {name} | {s:g} | {noisy[s]:.2f} | {ours[s]:.2f} | {base[s]:.2f} | {gain:+.2f} |")
        timings.append(f"{name}: {t_prior:.3f} s per image per denoiser call on {dev}")
        if args.samples > 0:
            size = int(prior.meta["image_size"][0])
            g = torch.Generator(device=dev).manual_seed(args.seed)
            n = 4 if args.quick else args.samples
            x = heun_sample(prior, (n, size, size), g, steps=4 if args.quick else args.sample_steps,
                            sigma_min=prior.meta["noise_schedule"].get("sigma_min", 0.002),
                            sigma_max=prior.meta["noise_schedule"].get("sigma_max", 20.0),
                            dtype=torch.complex64 if prior.meta["complex"] else torch.float32, device=dev)
            Path(args.grid_dir).mkdir(parents=True, exist_ok=True)
            save_image_grid(x, str(Path(args.grid_dir) / f"samples_{Path(name).stem}.png"),
                            vmax=1.2 if prior.meta["complex"] else 1.0, title=f"{name}: unconditional samples")
    table = "\n".join(rows)
    text = (f"{table}\n\nHeld-out images: {'4 (quick)' if args.quick else 'all'}; Wiener fitted to {n_fit} augmented "
            "training images.\n" + "\n".join(timings) + "\n")
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0
