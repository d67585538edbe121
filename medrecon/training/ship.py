"""Install a trained prior among the shipped ones, with its manifest.

``python -m medrecon.training.ship SIDECAR --name NAME --recipe data_manifests/RECIPE.toml [--pixel-spacing LO HI]``
writes ``medrecon/priors/default/NAME.{safetensors,json}`` (fp16) and ``data_manifests/prior_NAME_default.json``:
the weights' and sidecar's sha256, size, parameter count, training data manifest and checksum, recipe, the
training record (steps, batch, crop, device, time, versions, the prior it started from) and any blend record.
``--pixel-spacing`` states the pixel sizes the prior serves (``serves.pixel_spacing_mm``; a blend keeps its
base's wording otherwise). The name must be in ``medrecon.priors.checkpoint.SHIPPED`` for jobs to select it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import atomic_path, sha256_file

__all__ = ["main", "ship_prior"]

LICENCE = "BSD-3-Clause (weights); training data: see the training data manifest"
TRAINED_KEYS = ("steps", "batch_size", "crop", "precision", "device", "elapsed_s", "command", "versions")


def _repo_relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _manifest(name: str, meta: dict[str, Any], weights: Path, sidecar: Path, recipe: Path, root: Path,
              parameters: int, note: str | None) -> dict[str, Any]:
    training = meta.get("training") or {}
    data_manifest = training.get("data_manifest")
    trained = {k: training[k] for k in TRAINED_KEYS if k in training}
    record: dict[str, Any] = {
        "name": f"prior_{name}_default", "kind": "checkpoint", "format": meta["format"],
        "weights": _repo_relative(weights, root), "sidecar": _repo_relative(sidecar, root),
        "sha256": meta["weights_sha256"], "sidecar_sha256": sha256_file(sidecar), "bytes": weights.stat().st_size,
        "dtype": "float16", "parameters": parameters, "modality": meta["modality"],
        "image_size": meta.get("image_size"), "complex": meta.get("complex"),
        "parameterization": meta["parameterization"], "serves": meta.get("serves"),
        "training_data_manifest": data_manifest, "training_data_sha256": training.get("data_sha256"),
        "training_recipe": _repo_relative(recipe, root), "trained": trained,
    }
    if training.get("init_from"):
        start = str(training["init_from"])
        start_manifest = root / "data_manifests" / f"prior_{start}_default.json"
        record["init_from"] = {"prior": start, "manifest": _repo_relative(start_manifest, root),
                               "sha256": json.loads(start_manifest.read_text())["sha256"]
                               if start_manifest.exists() else None}
    if "blend" in meta:
        record["blend"] = meta["blend"]
    if note:
        record["note"] = note
    record["licence"] = LICENCE
    return record


def ship_prior(source: str | Path, name: str, recipe: str | Path, *,
               pixel_spacing_mm: tuple[float, float] | None = None, window: int | None = None,
               note: str | None = None, root: str | Path | None = None) -> Path:
    """Copy the prior ``source`` (sidecar, weights or folder) to the shipped priors as ``name`` and write its
    manifest; returns the manifest's path. ``window``: the side (pixels) of the windows larger grids are denoised
    in (``serves.window``; 0 removes it). ``ConfigError`` for an unknown recipe, a bad spacing interval or
    window."""
    from ..priors import checkpoint as ckpt
    from ..priors.meta import served_shapes

    root = Path(root) if root is not None else ckpt.MANIFEST_DIR.parent
    recipe = Path(recipe)
    if not recipe.exists():
        raise ConfigError(f"--recipe {recipe}: no such file")
    _, meta, state, _ = ckpt.read_prior_weights(source)
    meta = {k: v for k, v in meta.items() if k not in ("format", "weights", "weights_sha256")}
    if pixel_spacing_mm is not None:
        lo, hi = (float(v) for v in pixel_spacing_mm)
        if not 0 < lo <= hi:
            raise ConfigError(f"--pixel-spacing {lo:g} {hi:g}: need 0 < LO <= HI (mm)")
        meta["serves"] = {**(meta.get("serves") or {}), "pixel_spacing_mm": [lo, hi]}
    if window is not None:
        if window < 0 or 0 < window < 8:
            raise ConfigError(f"--window {window}: windows need sides >= 8 pixels (0: no window)")
        serves = {k: v for k, v in (meta.get("serves") or {}).items() if k != "window"}
        meta["serves"] = {**serves, **({"window": [int(window)] * 2} if window else {})}
    if pixel_spacing_mm is not None or window is not None:
        served_shapes(meta)  # validates the new serves fields
    target = root / "medrecon" / "priors" / "default" / name
    sidecar = ckpt.save_checkpoint(target, state, meta)
    shipped = ckpt.read_sidecar(sidecar)
    weights = sidecar.with_suffix(".safetensors")
    parameters = sum(int(t.numel()) for t in state.values() if t.is_floating_point())
    manifest = root / "data_manifests" / f"prior_{name}_default.json"
    with atomic_path(manifest) as tmp:
        tmp.write_text(json.dumps(_manifest(name, shipped, weights, sidecar, recipe, root, parameters, note),
                                  indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medrecon.training.ship", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="the trained prior (sidecar, weights or folder)")
    p.add_argument("--name", required=True, help="shipped name (NAME.safetensors, prior_NAME_default.json)")
    p.add_argument("--recipe", required=True, help="the training recipe in data_manifests/")
    p.add_argument("--pixel-spacing", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="pixel sizes served, mm (serves.pixel_spacing_mm)")
    p.add_argument("--window", type=int, default=None,
                   help="side (pixels) of the windows larger grids are denoised in (serves.window; 0: none)")
    p.add_argument("--note", default=None, help="a sentence recorded in the manifest (e.g. how it was chosen)")
    a = p.parse_args(argv)
    print(ship_prior(a.source, a.name, a.recipe, pixel_spacing_mm=a.pixel_spacing, window=a.window,
                     note=a.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
