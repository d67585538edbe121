"""Validation of an MRI prior against another before shipping: held-out denoising PSNR per sigma on the shipped
prior's own grid and on native scanner grids.

``python -m medrecon.bench.mri_prior --priors mri,runs/prior_mri_native/mri_native.json --out FILE.json``

``D(x0 + sigma n, sigma)`` against ``x0`` per image (peak = the image's maximum magnitude), complex noise, both
priors on the same noise realisations, each image with a fixed smooth phase (``training.data.to_network_images``).
The sets (``SET_NAMES``):

* ``validation128``: the MNI152 validation slices of ``jobs.image_sets`` (template slices 95, 97, 99, 112, 114,
  116 of the excluded band), 128x128 as the shipped prior saw its training data (1.82 mm pixels);
* ``heldout128``: the MNI152 held-out band (slices 100-111, what ``medrecon bench quality`` reports), 128x128;
* ``native320``: the validation slices at the template's 1 mm voxels, zero-padded to 320x320 (the head fills a
  fifth of the frame, as in ``medrecon bench native``);
* ``bundled``: real MR slices that dipy and nibabel bundle (``training.bundled_mr``: a T1 slice, b=0 and
  diffusion-weighted images, EPI; 21 slices at 1-2 mm in 256x256 frames), which no shipped prior trains on;
* ``itk``: the MR images of the ITK examples (``training.itk_mr``, Debian package insighttoolkit5-examples:
  56 coronal slices of a scanner T1 at 2 mm, 6 BrainWeb-simulated axial slices at 1 mm, a mid-sagittal slice and
  an abdominal slice; 64 slices in 256x256 frames), which no shipped prior trains on;
* ``synthetic``: the held-out seeds of ``training.mri_synth`` at native fields of view (``--synthetic`` path to
  the ``heldout.npy`` written by ``python -m medrecon.training.mri_synth ... --spacing``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

__all__ = ["SET_NAMES", "main", "sets"]

SET_NAMES = {"validation128": "MNI152 validation slices, 128x128",
             "heldout128": "MNI152 held-out band, 128x128",
             "native320": "MNI152 validation slices at 1 mm, 320x320",
             "bundled": "real MR bundled with dipy and nibabel, native pixel sizes, 256x256",
             "itk": "MR of the ITK examples, native pixel sizes, 256x256",
             "synthetic": "synthetic MR, native fields of view (held-out seeds)"}


def sets(which: tuple[str, ...], synthetic: str | None = None, count: int = 0) -> dict[str, np.ndarray]:
    """``title -> (N, H, W)`` complex64 images (magnitudes with a fixed smooth phase) of the named sets."""
    import torch

    from ..jobs.image_sets import mri_validation_slices
    from ..training.data import to_network_images
    from ..training.bundled_mr import bundled_mr_slices
    from ..training.datasets import mni152_heldout_slices
    from ..training.itk_mr import itk_mr_slices

    load = {"validation128": mri_validation_slices, "heldout128": mni152_heldout_slices,
            "native320": lambda: mri_validation_slices(320, resample=False),
            "bundled": lambda: bundled_mr_slices()[0], "itk": lambda: itk_mr_slices()[0]}
    out = {}
    for k in which:
        if k == "synthetic":
            if not synthetic:
                raise SystemExit("the synthetic set needs --synthetic PATH (a heldout.npy of training.mri_synth)")
            arr = np.load(synthetic).astype(np.float32)
        else:
            arr = load[k]()
        arr = arr[:count] if count else arr
        out[SET_NAMES[k]] = to_network_images(arr, "mri", 7, torch.device("cpu")).numpy()
    return out


def main(argv: list[str] | None = None) -> int:
    from ..priors.checkpoint import load_prior
    from .ct_head import SIGMAS, denoising_table, render

    p = argparse.ArgumentParser(prog="python -m medrecon.bench.mri_prior", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--priors", default="mri",
                   help="comma-separated priors, the old one first (names or sidecars); with two, a difference column")
    p.add_argument("--sets", default="validation128,native320", help=f"comma-separated subset of {','.join(SET_NAMES)}")
    p.add_argument("--synthetic", default=None, help="heldout.npy of the native synthetic set")
    p.add_argument("--count", type=int, default=0, help="images per set (0: all)")
    p.add_argument("--sigmas", default=",".join(f"{s:g}" for s in SIGMAS))
    p.add_argument("--out", default=None, help="JSON file for the numbers")
    a = p.parse_args(argv)
    names = a.priors.split(",")
    priors = {n: load_prior(n) for n in names}
    table = denoising_table(priors, sets(tuple(a.sets.split(",")), a.synthetic, a.count),
                            tuple(float(s) for s in a.sigmas.split(",")))
    print(render(table, None))
    if a.out:
        Path(a.out).write_text(json.dumps({"priors": names, "denoising_psnr_db": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
