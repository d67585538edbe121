"""Recipe for the shipped sample ``medrecon/data/fastmri_sample.h5`` (run ``python -m medrecon.io.make_sample``).

Four held-out axial slices of nilearn's 1 mm MNI152 template (``medrecon.training.datasets.mni152_heldout_slices``,
preprocessed like the prior's training data, never trained on) get a smooth random phase and 8 birdcage coils
(:func:`medrecon.io.simulate.simulate_multicoil`); the fully sampled 128x128 k-space is written in the fastMRI
multi-coil schema with ``reconstruction_rss`` computed from the stored k-space. To keep the file under 2 MB the
k-space is rounded to ``mantissa_bits`` significant bits before gzip compression (relative error about
``2^-(bits+1)``, i.e. a noise floor near 60 dB below the signal); the reference is computed after rounding, so data
and reference agree exactly.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..files import sha256_file, write_json_atomic
from .fastmri import write_fastmri
from .simulate import fft_rss, simulate_multicoil

__all__ = ["HELDOUT_INDICES", "MANIFEST_PATH", "SAMPLE_PATH", "main", "make_sample", "manifest", "round_mantissa"]

SAMPLE_PATH = Path(__file__).resolve().parents[1] / "data" / "fastmri_sample.h5"
MANIFEST_PATH = Path(__file__).resolve().parents[2] / "data_manifests" / "fastmri_sample.json"
HELDOUT_INDICES = (0, 4, 7, 11)
COILS = 8
SEED = 0
MANTISSA_BITS = 9


def round_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 (or complex64) values to ``bits`` significant mantissa bits (round half up in magnitude)."""
    if not 1 <= bits <= 23:
        raise ValueError(f"bits must lie in [1, 23], got {bits}")
    dtype = values.dtype
    raw = np.ascontiguousarray(values).view(np.float32).view(np.uint32)
    drop = 23 - bits
    if drop == 0:
        return values.copy()
    rounded = (raw + np.uint32(1 << (drop - 1))) & ~np.uint32((1 << drop) - 1)
    return rounded.view(np.float32).view(dtype)


def make_sample(
    out: str | Path = SAMPLE_PATH,
    indices: tuple[int, ...] = HELDOUT_INDICES,
    coils: int = COILS,
    seed: int = SEED,
    mantissa_bits: int = MANTISSA_BITS,
) -> Path:
    """Write the sample file (deterministic for fixed arguments); returns its path."""
    from ..training.datasets import mni152_heldout_slices

    images = torch.from_numpy(np.asarray(mni152_heldout_slices())[list(indices)].astype(np.float32))
    sim = simulate_multicoil(images, coils=coils, generator=torch.Generator().manual_seed(seed))
    kspace = round_mantissa(sim.kspace.numpy(), mantissa_bits)
    rss = fft_rss(torch.from_numpy(kspace)).numpy().astype(np.float32)
    return write_fastmri(out, kspace, rss, acquisition="AXT1", recon_size=tuple(rss.shape[-2:]), compress=True)


def manifest(path: str | Path = SAMPLE_PATH, indices: tuple[int, ...] = HELDOUT_INDICES, coils: int = COILS,
             seed: int = SEED, mantissa_bits: int = MANTISSA_BITS) -> dict:
    """The manifest entry of a sample file written by :func:`make_sample` with these arguments."""
    import h5py
    import nilearn

    path = Path(path)
    with h5py.File(path, "r") as hf:
        datasets = {name: {"shape": list(hf[name].shape), "dtype": str(hf[name].dtype)}
                    for name in ("kspace", "reconstruction_rss")}
        attrs = {k: (v.decode() if isinstance(v, bytes) else float(v) if isinstance(v, np.floating) else v)
                 for k, v in hf.attrs.items()}
    return {
        "name": "fastmri_sample",
        "file": "medrecon/data/fastmri_sample.h5",
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "format": "fastMRI multi-coil HDF5 (kspace, reconstruction_rss, ismrmrd_header; attrs max, norm, acquisition)",
        "datasets": datasets,
        "attrs": attrs,
        "recon_size": [128, 128],
        "split": "held-out (never used to train the shipped priors)",
        "source": (
            "nilearn MNI152 T1 template, 1 mm (mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz, ICBM152 2009a), "
            f"held-out axial slices {list(indices)} of medrecon.training.datasets.mni152_heldout_slices() "
            f"(nilearn {nilearn.__version__})"
        ),
        "simulation": (
            f"smooth random phase (seed {seed}), {coils} sigpy birdcage coils normalised to sum |S|^2 = 1, centred "
            f"orthonormal FFT, noiseless; k-space rounded to {mantissa_bits} significant mantissa bits; "
            "reconstruction_rss = RSS of ifft2c(stored k-space)"
        ),
        "recipe": "python -m medrecon.io.make_sample",
        "licence": (
            "ICBM 2009 template (Fonov et al. 2009/2011; McConnell Brain Imaging Centre, MNI, McGill University): "
            "distributed under the MNI copyright notice that allows use, copying and distribution with "
            "attribution and without warranty; nilearn's dataset description lists the licence as 'unknown', so "
            "check http://www.bic.mni.mcgill.ca/ServicesAtlases/ICBM152NLin2009 before redistributing"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medrecon.io.make_sample", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(SAMPLE_PATH), help="where to write the sample file")
    parser.add_argument("--manifest", default=str(MANIFEST_PATH), help="where to write its manifest ('' to skip)")
    args = parser.parse_args(argv)
    path = make_sample(args.out)
    entry = manifest(path)
    if args.manifest:
        write_json_atomic(args.manifest, entry)
    print(f"{path}: {entry['bytes']} bytes, sha256 {entry['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
