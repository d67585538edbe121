"""Validation of a CT prior against another before shipping: held-out denoising PSNR per sigma and a small
sparse-view reconstruction check.

``python -m medrecon.bench.ct_head --priors ct,runs/prior_ct_head_cpu/ct_head.json --out FILE.json``

* Denoising (as ``medrecon bench prior``): ``D(x0 + sigma n, sigma)`` against ``x0`` per image (peak = the image's
  maximum), both priors on the same noise realisations, on three sets in the [0, 1] HU window at 128x128:
  (a) held-out synthetic head CT (``head_ct.HEAD_CT_HELDOUT_SEEDS``), (b) the held-out ellipse phantoms of the
  shipped CT prior (``datasets.CT_HELDOUT_SEEDS``), (c) real head CT: InVesalius "Cranium" slices 8-23
  (validation only; resized to 128 as ``jobs.image_sets`` does).
* Reconstruction (``--steps`` > 0): parallel-beam CT, ``--views`` views over 180 degrees (one table per count),
  sinogram noise 0.005 x max, on Cranium slices (``--recon-slices``: ``CRANIUM_RECON_SLICES`` or the
  validation or test slices of ``jobs.image_sets``) at ``--size`` (the stored 256x256 grid of 0.957 mm pixels
  resized bilinearly; 512 is an upsampled grid of 0.479 mm) through the job runner (``run_job``): DDS with each
  prior and the TV baseline (``--tv-lams``: also at these weights, so TV can be tuned at each grid), PSNR and
  SSIM per image with the image's maximum as data range (as ``medrecon bench quality``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["CRANIUM_CHECK_SLICES", "CRANIUM_RECON_SLICES", "SET_NAMES", "denoising_table", "main", "recon_check",
           "render", "sets"]

SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
CRANIUM_CHECK_SLICES = tuple(range(8, 24))
CRANIUM_RECON_SLICES = (8, 11, 17, 20)
CRANIUM_GRID, CRANIUM_PIXEL_MM = 256, 0.957  # the stored Cranium slices: 256x256 of 0.957 mm


def _recon_sets() -> dict[str, tuple[int, ...]]:
    from ..jobs.image_sets import CRANIUM_TEST_SLICES, CT_VALIDATION_SLICES

    return {"check": CRANIUM_RECON_SLICES, "validation": CT_VALIDATION_SLICES, "test": CRANIUM_TEST_SLICES}


RECON_SETS = _recon_sets()


SET_NAMES = {"head": "synthetic head CT (held-out seeds)", "phantoms": "ellipse phantoms (CT held-out set)",
             "cranium": "Cranium slices 8-23 (real head CT)"}


def sets(count: int = 0, which: tuple[str, ...] = tuple(SET_NAMES)) -> dict[str, np.ndarray]:
    """The held-out sets ``which`` (keys of ``SET_NAMES``) as ``title -> (N, 128, 128)`` float32 in [0, 1]
    (``count`` > 0: the first ``count`` of each)."""
    from ..jobs.image_sets import ct_validation_slices
    from ..training.datasets import ct_heldout_slices
    from ..training.head_ct import head_ct_heldout_slices

    load = {"head": head_ct_heldout_slices, "phantoms": ct_heldout_slices,
            "cranium": lambda: ct_validation_slices(slices=CRANIUM_CHECK_SLICES)}
    out = {SET_NAMES[k]: load[k]() for k in which}
    return {k: v[:count] if count else v for k, v in out.items()}


def denoising_table(priors: dict[str, torch.nn.Module], images: dict[str, np.ndarray],
                    sigmas: tuple[float, ...] = SIGMAS, seed: int = 4321) -> dict[str, dict[str, dict[float, float]]]:
    """``set -> prior -> sigma -> mean PSNR (dB)`` of each prior's denoiser (same noise for every prior; complex
    images get complex noise)."""
    from ..training.evaluate import denoising_psnr

    table: dict[str, dict[str, dict[float, float]]] = {}
    for set_name, arr in images.items():
        x = torch.from_numpy(np.ascontiguousarray(arr))
        x = x.to(torch.complex64) if x.is_complex() else x.float()
        table[set_name] = {}
        for name, prior in priors.items():
            g = torch.Generator().manual_seed(seed)
            table[set_name][name] = denoising_psnr(prior, x, list(sigmas), g, batch=4)
        table[set_name]["noisy input"] = denoising_psnr(lambda y, s: y, x, list(sigmas),
                                                        torch.Generator().manual_seed(seed), batch=4)
    return table


def _cranium_data(*, slices: list[int], size: int = 128):
    """Job data component: the given Cranium slices (< 54) in attenuation at ``size x size`` (stored at 256x256,
    0.957 mm pixels; resized bilinearly), as ``jobs.image_sets.ct_slices``, with the resized pixel spacing in the
    affine."""
    from ..io.hu import hu_to_mu
    from ..jobs.image_sets import ct_validation_slices
    from ..jobs.problem import Volume

    unit = torch.from_numpy(ct_validation_slices(size, slices=tuple(slices)))
    image = hu_to_mu(unit * 2000.0 - 1000.0)
    spacing = CRANIUM_PIXEL_MM * CRANIUM_GRID / size
    return Volume("ct", None, image=image, reference=image, affine=np.diag([spacing, spacing, 1.5, 1.0]),
                  attrs={"hu": True, "max": float(image.max()), "image_set": f"cranium {slices} at {size}"})


def recon_check(priors: dict[str, dict], slices: tuple[int, ...] = CRANIUM_RECON_SLICES, views: int = 16,
                steps: int = 30, seed: int = 0, size: int = 128,
                tv_lams: tuple[float, ...] | None = None,
                dds: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
    """``method -> {"psnr", "psnr_std", "ssim", "ssim_std", "seconds"}``: DDS (``steps``, sampler options
    ``dds`` over the CT defaults) with each prior (``name -> prior section``) and TV (the default weight, or each
    ``lam_rel`` of ``tv_lams``), on parallel-beam CT of ``views`` views of the given Cranium slices at
    ``size x size``."""
    from ..jobs.registry import REGISTRY
    from ..jobs.run import run_job
    from ..jobs.spec import parse_spec
    from ..metrics import psnr, ssim

    kind = "cranium_check_slices"
    if kind not in REGISTRY.names("data"):
        REGISTRY.add("data", kind, _cranium_data)
    rows: dict[str, dict[str, float]] = {}

    def score(ref: np.ndarray, rec: np.ndarray, seconds: float) -> dict[str, float]:
        ps = [float(psnr(r[None], x[None], float(r.max()))) for r, x in zip(ref, rec)]
        ss = [float(ssim(r[None], x[None], float(r.max()))) for r, x in zip(ref, rec)]
        return {"psnr": float(np.mean(ps)), "psnr_std": float(np.std(ps)), "ssim": float(np.mean(ss)),
                "ssim_std": float(np.std(ss)), "seconds": seconds}

    def job(prior: dict, baselines: list[str], tv: dict, dds_steps: int = steps):
        return parse_spec({
            "data": {"kind": kind, "slices": list(slices), "size": size},
            "operator": {"kind": "parallel_beam_ct", "views": views, "arc_deg": 180.0, "noise": 0.005},
            "prior": prior, "sampler": {"kind": "dds", "steps": dds_steps, **(dds or {})},
            "run": {"seed": seed, "device": "cpu", "batch_size": 64, "sigma_y": "auto", "checkpoint_every": 0,
                    "baselines": baselines, "outputs": []},
            **({"baseline": {"tv": tv}} if tv else {}),
        })

    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, prior) in enumerate(priors.items()):
            result = run_job(job(prior, ["tv"] if k == 0 else [], {}), out=Path(tmp) / str(k), progress=False)
            timings = result.record["timings"]
            options = "".join(f", {k} {v}" for k, v in (dds or {}).items())
            rows[f"DDS {steps} steps{options}, {name}"] = score(result.reference, result.reconstruction,
                                                       timings["sampling_s"])
            if k == 0:
                rows["TV"] = score(result.reference, result.baselines["tv"], timings["baselines_s"]["tv"])
        for lam in tv_lams or ():
            spec = job(next(iter(priors.values())), ["tv"], {"lam_rel": lam}, dds_steps=1)  # the TV row only
            result = run_job(spec, out=Path(tmp) / f"tv{lam:g}", progress=False)
            rows[f"TV, lam_rel {lam:g}"] = score(result.reference, result.baselines["tv"],
                                                  result.record["timings"]["baselines_s"]["tv"])
    return rows


def _prior_section(name: str) -> dict:
    if name in ("ct", "ct_head", "ct_head_native"):
        return {"kind": "default"} if name == "ct" else {"kind": "default", "name": name}
    return {"kind": "checkpoint", "path": name}


def render(table: dict, recon: dict | None) -> str:
    """Markdown tables of ``denoising_table`` (one per set, with the new-minus-old difference) and ``recon_check``."""
    lines = []
    for set_name, per_prior in table.items():
        names = [n for n in per_prior if n != "noisy input"]
        lines += [f"**{set_name}**", "", "| sigma | noisy input (dB) | " + " | ".join(f"{n} (dB)" for n in names)
                  + (" | difference (dB) |" if len(names) == 2 else " |"),
                  "|---" * (2 + len(names) + (len(names) == 2)) + "|"]
        for s in next(iter(per_prior.values())):
            vals = [per_prior[n][s] for n in names]
            row = f"| {s:g} | {per_prior['noisy input'][s]:.2f} | " + " | ".join(f"{v:.2f}" for v in vals)
            lines.append(row + (f" | {vals[1] - vals[0]:+.2f} |" if len(names) == 2 else " |"))
        lines.append("")
    if recon:
        lines += ["| method | PSNR (dB) | SSIM | sampling time (s) |", "|---|---|---|---|"]
        for m, r in recon.items():
            lines.append(f"| {m} | {r['psnr']:.2f} +- {r['psnr_std']:.2f} | {r['ssim']:.3f} +- {r['ssim_std']:.3f} "
                         f"| {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from ..priors.checkpoint import load_prior

    p = argparse.ArgumentParser(prog="python -m medrecon.bench.ct_head", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--priors", default="ct,ct_head",
                   help="comma-separated priors, the old one first (names or sidecars); with two, a difference column")
    p.add_argument("--count", type=int, default=0, help="images per set (0: all)")
    p.add_argument("--sets", default=",".join(SET_NAMES), help=f"comma-separated subset of {','.join(SET_NAMES)}")
    p.add_argument("--sigmas", default=",".join(f"{s:g}" for s in SIGMAS))
    p.add_argument("--views", default="16", help="comma-separated view counts of the reconstruction check")
    p.add_argument("--steps", type=int, default=30, help="DDS steps of the reconstruction check (0: skip it)")
    p.add_argument("--size", type=int, default=128, help="grid of the reconstruction check (Cranium is 256x256)")
    p.add_argument("--recon-slices", choices=tuple(RECON_SETS), default="check",
                   help="Cranium slices of the reconstruction check: check (8, 11, 17, 20), the validation or test "
                        "slices of jobs.image_sets")
    p.add_argument("--tv-lams", default="", help="comma-separated TV weights (lam_rel) to run beside the default")
    p.add_argument("--dds", default="", help="DDS options over the CT defaults, e.g. eta=0.5,cg_iters=10,lam=1")
    p.add_argument("--out", default=None, help="JSON file for the numbers")
    a = p.parse_args(argv)
    dds = {k: json.loads(v) for k, v in (item.split("=", 1) for item in a.dds.split(",") if item)}
    names = a.priors.split(",")
    priors = {n: load_prior(n) for n in names}
    table = denoising_table(priors, sets(a.count, tuple(k for k in a.sets.split(",") if k)),
                            tuple(float(s) for s in a.sigmas.split(",")))
    text = render(table, None)
    print(text, flush=True)
    recon = {}
    slices = RECON_SETS[a.recon_slices]
    lams = tuple(float(v) for v in a.tv_lams.split(",") if v)
    for views in (int(v) for v in a.views.split(",")) if a.steps else ():
        recon[views] = recon_check({n: _prior_section(n) for n in names}, slices=slices, views=views,
                                   steps=a.steps, size=a.size, tv_lams=lams, dds=dds)
        block = f"**{views} views, {a.size}x{a.size}, Cranium slices {list(slices)}**\n\n" + render({}, recon[views])
        print(block, flush=True)
        text += "\n" + block
    if a.out:
        Path(a.out).write_text(json.dumps({"priors": names, "denoising_psnr_db": table, "recon": recon,
                                           "recon_slices": list(slices), "size": a.size}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
