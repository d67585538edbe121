"""Prepare the shipped priors' training and held-out arrays (.npy) and record them in ``data_manifests/``.

``python -m medrecon.training.prepare --out DIR [--manifests data_manifests]`` writes
``DIR/{mri,ct}_{train,heldout}.npy`` (float16, ``(N, 128, 128)``; MRI magnitude, CT in the [0, 1] HU window) and
``prior_{mri,ct}_train.json`` manifests (package versions, slice selection, shapes, sha256 of each array).
"""
from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from ..files import atomic_path, sha256_file
from .datasets import ct_heldout_slices, ct_training_set, mni152_heldout_slices, mri_training_set

__all__ = ["main", "prepare"]

CT_RANDOM_PHANTOMS = 600


def _versions(names: list[str]) -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "not installed"
    return out


def _save(path: Path, arr: np.ndarray) -> dict:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr.astype(np.float16))
    return {"file": path.name, "shape": list(arr.shape), "dtype": "float16", "sha256": sha256_file(path)}


def prepare(out_dir: str | Path, manifest_dir: str | Path = "data_manifests") -> dict[str, dict]:
    """Write the four arrays to ``out_dir`` and the two manifests to ``manifest_dir``; return the manifests."""
    out_dir, manifest_dir = Path(out_dir), Path(manifest_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = {}
    mri, mri_rec = mri_training_set()
    manifests["mri"] = {
        "name": "prior_mri_train", "modality": "mri", "image_size": 128, "licence": "MNI152 template: see nilearn "
        "(ICBM 2009 licence, free for research with attribution); phantominator: GPL-3.0",
        "train": _save(out_dir / "mri_train.npy", mri), "heldout": _save(out_dir / "mri_heldout.npy",
                                                                         mni152_heldout_slices()),
        "versions": _versions(["nilearn", "phantominator", "scikit-image", "numpy", "medrecon"]), "selection": mri_rec,
    }
    ct, ct_rec = ct_training_set(CT_RANDOM_PHANTOMS)
    manifests["ct"] = {
        "name": "prior_ct_train", "modality": "ct", "image_size": 128, "licence": "synthetic (generated)",
        "train": _save(out_dir / "ct_train.npy", ct), "heldout": _save(out_dir / "ct_heldout.npy",
                                                                       ct_heldout_slices()),
        "versions": _versions(["phantominator", "scikit-image", "scipy", "numpy", "medrecon"]), "selection": ct_rec,
    }
    manifest_dir.mkdir(parents=True, exist_ok=True)
    for key, m in manifests.items():
        with atomic_path(manifest_dir / f"prior_{key}_train.json") as tmp:
            tmp.write_text(json.dumps(m, indent=1) + "\n")
    return manifests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medrecon.training.prepare", description=__doc__)
    p.add_argument("--out", required=True, help="directory for the .npy arrays")
    p.add_argument("--manifests", default="data_manifests", help="directory for the manifests")
    a = p.parse_args(argv)
    for key, m in prepare(a.out, a.manifests).items():
        print(f"{key}: train {m['train']['shape']} {m['train']['sha256']}; heldout {m['heldout']['shape']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
