"""Weight-space interpolation of two priors of one architecture (fine-tuned weights blended with their start).

``python -m medrecon.training.blend BASE TUNED --alpha A --out STEM`` writes ``STEM.safetensors`` (fp16) and
``STEM.json``: ``(1 - A) * base + A * tuned`` per tensor, computed in float64, with TUNED's sidecar (its
architecture, preconditioning, schedule and intensity rule must equal BASE's; BASE's wording of the intensity
rule and served sizes is kept) plus a ``blend`` record. Interpolating a
fine-tuned network with its initial weights keeps most of the gain on the new data while limiting the loss on
the original data (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["MUST_MATCH", "blend_priors", "blend_state", "main"]

MUST_MATCH = ("architecture", "parameterization", "preconditioning", "noise_schedule", "data_range", "channels",
              "complex")


def _load(source: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Path]:
    from ..priors.checkpoint import read_prior_weights

    _, meta, state, weights = read_prior_weights(source)
    return meta, state, weights


def blend_state(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor],
                alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) base + alpha tuned`` for every floating tensor (float64 arithmetic, float32 result)."""
    if base.keys() != tuned.keys():
        raise ConfigError(f"the priors hold different tensors: {sorted(set(base) ^ set(tuned))[:5]}")
    out = {}
    for k, b in base.items():
        t = tuned[k]
        if b.shape != t.shape:
            raise ConfigError(f"tensor {k!r}: shapes {tuple(b.shape)} and {tuple(t.shape)} differ")
        out[k] = ((1 - alpha) * b.double() + alpha * t.double()).float() if b.is_floating_point() else t
    return out


def blend_priors(base: str | Path, tuned: str | Path, alpha: float, out: str | Path) -> Path:
    """Write the blend of two priors (``"ct"``-style names, sidecars, weights or folders) to ``out`` (a stem);
    returns the new sidecar. ``ConfigError`` when their architecture or intensity conventions differ."""
    from ..priors.checkpoint import save_checkpoint

    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha = {alpha}: must lie in [0, 1]")
    meta_b, state_b, weights_b = _load(base)
    meta_t, state_t, weights_t = _load(tuned)
    for key in MUST_MATCH:
        if meta_b.get(key) != meta_t.get(key):
            raise ConfigError(f"the priors differ in {key!r}: {meta_b.get(key)!r} vs {meta_t.get(key)!r}")
    norm_b, norm_t = meta_b.get("normalisation") or {}, meta_t.get("normalisation") or {}
    if {k: v for k, v in norm_b.items() if k != "units"} != {k: v for k, v in norm_t.items() if k != "units"}:
        raise ConfigError(f"the priors differ in their intensity rule: {norm_b!r} vs {norm_t!r}")
    meta = {k: v for k, v in meta_t.items() if k not in ("format", "weights", "weights_sha256")}
    for key in ("normalisation", "serves", "intensity"):  # the base's wording of the shared conventions
        if key in meta_b:
            meta[key] = meta_b[key]
    meta["blend"] = {"alpha": alpha, "rule": "(1 - alpha) * base + alpha * tuned",
                     "base": {"file": weights_b.name, "sha256": meta_b["weights_sha256"]},
                     "tuned": {"file": weights_t.name, "sha256": meta_t["weights_sha256"]}}
    stem = Path(out)
    if stem.suffix not in (".json", ".safetensors"):  # a stem like "ct_a0.5" keeps its dot
        stem = stem.with_name(stem.name + ".json")
    return save_checkpoint(stem, blend_state(state_b, state_t, alpha), meta)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medrecon.training.blend", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", help="the starting prior (name, sidecar, weights or folder)")
    p.add_argument("tuned", help="the fine-tuned prior")
    p.add_argument("--alpha", type=float, required=True, help="weight of the fine-tuned prior, in [0, 1]")
    p.add_argument("--out", required=True, help="output stem (writes STEM.safetensors and STEM.json)")
    a = p.parse_args(argv)
    print(blend_priors(a.base, a.tuned, a.alpha, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
