"""``medrecon bench volume``: head-CT volumes from the 2D prior: DDS with the slices coupled along z (``dds_3d``),
DiffusionMBIR, slice-by-slice DDS, FBP, slice-wise 2D TV and 3D TV, PSNR / SSIM on axial, coronal and sagittal
planes.

* Data: 16 contiguous slices of the InVesalius "Cranium" head CT (HU window [-1000, 1000] -> [0, 1], resized to
  128 x 128 in-plane as ``medrecon.jobs.image_sets`` does; slices 54-107 are reserved and never read). Split
  ``validation`` (slices 24-39: where the defaults are chosen; it holds slices 32-39 on which ``tv`` was first
  chosen) and ``test`` (slices 8-23: reported, never used to choose anything).
* Problem: parallel beam, 8 / 16 / 32 views over 180 degrees, Gaussian sinogram noise ``--noise`` times the
  largest sinogram value (the noise level is given to the samplers, as ``sigma_y = "auto"`` does), in the prior's
  units (a job's ``y / scale``).
* Metrics, computed on the volume with the reference volume's maximum as data range: the volume PSNR (all
  voxels), and PSNR / SSIM (7 x 7, fastMRI constants) per plane, mean +- std over the 16 axial slices, over the
  coronal and over the sagittal planes through the head (planes whose reference holds a voxel above 10 % of the
  maximum; the others are air).
* Time: sampler wall time per slice and per network evaluation of a slice (``s/eval``) and the network's part
  of it.
* ``--dds3d`` / ``--mbir`` / ``--tv3d``: settings to compare, ``;``-separated, each ``key=value,...`` (empty:
  ``medrecon.defaults``), e.g. ``--dds3d "tv=2;tv=4,admm_iters=2"``.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import defaults as D

__all__ = ["SPLITS", "Row", "add_arguments", "load_volume", "main", "plane_metrics", "render", "targets"]

SPLITS = {"validation": tuple(range(24, 40)), "test": tuple(range(8, 24))}
PLANES = ("axial", "coronal", "sagittal")
METHODS = ("fbp", "tv", "tv_3d", "dds", "dds_3d", "diffusion_mbir")
LABELS = {"fbp": "FBP", "tv": "TV (slice by slice)", "tv_3d": "3D TV", "dds": "DDS (slice by slice)",
          "dds_3d": "DDS-3D", "diffusion_mbir": "DiffusionMBIR"}


@dataclass
class Row:
    split: str
    views: int
    method: str
    settings: str
    volume_psnr: float
    psnr: dict[str, tuple[float, float]]  # plane -> (mean, std)
    ssim: dict[str, tuple[float, float]]
    seconds: float = 0.0
    evals: int = 0  # network evaluations per slice
    s_per_eval: float = 0.0  # sampler wall time per slice and evaluation
    net_per_eval: float = 0.0  # the network's part
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return LABELS[self.method] + (f" ({self.settings})" if self.settings else "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", choices=("validation", "test", "both"), default="test")
    parser.add_argument("--views", default="8,16,32", help="comma-separated view counts")
    parser.add_argument("--methods", default="fbp,tv,tv_3d,dds,dds_3d",
                        help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--steps", type=int, default=30, help="steps of dds and dds_3d")
    parser.add_argument("--mbir-steps", type=int, default=50, help="noise levels of diffusion_mbir")
    parser.add_argument("--dds3d", default="", help="dds_3d settings to compare (module docstring)")
    parser.add_argument("--mbir", default="", help="diffusion_mbir settings to compare")
    parser.add_argument("--tv3d", default="", help="tv_3d settings to compare")
    parser.add_argument("--noise", type=float, default=0.005, help="sinogram noise std relative to its max")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _settings(text: str) -> list[dict[str, Any]]:
    """``"a=1,b=2;c=3"`` -> ``[{"a": 1, "b": 2}, {"c": 3}]`` (numbers parsed; ``""``: one empty setting)."""
    out = []
    for part in text.split(";"):
        entry: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in part.split(","))):
            key, value = item.split("=", 1)
            entry[key.strip()] = _number(value.strip())
        out.append(entry)
    return out


def _number(value: str) -> Any:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def load_volume(split: str, size: int = 128) -> np.ndarray:
    """The split's 16 Cranium slices ``(16, size, size)`` float32 in [0, 1]."""
    from ..jobs.image_sets import ct_validation_slices

    return ct_validation_slices(size=size, slices=SPLITS[split])


def _planes(volume: np.ndarray, plane: str) -> np.ndarray:
    """The volume ``(Z, H, W)`` as a stack of ``plane`` images: axial ``(Z, H, W)``, coronal ``(H, Z, W)``,
    sagittal ``(W, Z, H)``."""
    return {"axial": volume, "coronal": volume.transpose(1, 0, 2),
            "sagittal": volume.transpose(2, 0, 1)}[plane]


def plane_metrics(reference: np.ndarray, recon: np.ndarray) -> tuple[float, dict, dict]:
    """Volume PSNR and per-plane ``(mean, std)`` PSNR and SSIM of ``recon`` vs ``reference`` ``(Z, H, W)`` (module
    docstring: data range the reference's maximum; coronal and sagittal planes through the head)."""
    from ..metrics import psnr, ssim

    peak = float(reference.max())
    psnrs, ssims = {}, {}
    for plane in PLANES:
        refs, recs = _planes(reference, plane), _planes(recon, plane)
        keep = [i for i in range(len(refs)) if refs[i].max() > 0.1 * peak]
        ps = [psnr(refs[i][None], recs[i][None], peak) for i in keep]
        ss = [ssim(refs[i][None], recs[i][None], peak) for i in keep]
        psnrs[plane] = (float(np.mean(ps)), float(np.std(ps)))
        ssims[plane] = (float(np.mean(ss)), float(np.std(ss)))
    return float(psnr(reference, recon, peak)), psnrs, ssims


class _CountingDenoiser:
    """Counts the slices the wrapped denoiser sees (network evaluations of one slice)."""

    def __init__(self, denoiser):
        self.denoiser, self.slices = denoiser, 0

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        self.slices += int(x.shape[0])
        return self.denoiser(x, sigma)


def _sampler_component(method: str, meta: dict, steps: int, mbir_steps: int, options: dict):
    from ..jobs import sampling

    if method == "dds":
        return sampling.dds(meta, steps=steps)
    if method == "dds_3d":
        return sampling.dds_3d(meta, steps=steps, **options)
    return sampling.diffusion_mbir(meta, steps=mbir_steps, **options)


SHOWN = {"tv_3d": ("lam_rel", "z_weight"), "dds_3d": ("rho", "tv", "tv_xy", "admm_iters", "cg_iters"),
         "diffusion_mbir": ("rho", "tv", "tv_xy", "admm_iters", "cg_iters")}  # settings named in a row's label


def _describe(method: str, settings: dict) -> str:
    return ", ".join(f"{k} {settings[k]:g}" for k in SHOWN.get(method, ()) if k in settings)


def run_views(split: str, volume: np.ndarray, views: int, args: argparse.Namespace, prior, device: str) -> list[Row]:
    """Every method's row on one split and view count."""
    from operators import parallel_beam, sparse_view_angles

    from ..baselines import ct
    from ..jobs import baselines
    from ..priors.meta import meta_of
    from ..samplers import InverseProblem, run

    ref = torch.from_numpy(volume).to(device)
    op = parallel_beam(volume.shape[-2:], sparse_view_angles(views, 180.0)).to(device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    with torch.no_grad():
        clean = op(ref)
        noise_std = args.noise * float(clean.abs().max())
        y = clean + noise_std * torch.randn(clean.shape, generator=gen, device=device, dtype=clean.dtype)
    problem = InverseProblem(op, y, noise_std)
    rows = []
    methods = args.methods.split(",")
    options = {"tv_3d": _settings(args.tv3d), "dds_3d": _settings(args.dds3d), "diffusion_mbir": _settings(args.mbir)}
    for method in (m for m in METHODS if m in methods):
        for opts in options.get(method, [{}]):
            counter = _CountingDenoiser(prior)
            settings: dict[str, Any] = {}
            t0 = time.perf_counter()
            extra: dict[str, Any] = {}
            with torch.no_grad():
                if method == "fbp":
                    x = ct.fbp(y, op)
                elif method == "tv":
                    x = baselines.tv(y, op)
                elif method == "tv_3d":
                    x = baselines.tv_3d(y, op, **opts)
                    settings = {"lam_rel": D.TV_3D.lam_rel, "z_weight": D.TV_3D.z_weight, **opts}
                else:
                    component = _sampler_component(method, meta_of(prior), args.steps, args.mbir_steps, opts)
                    result = run(component.sampler, problem, counter, torch.Generator(device=device).manual_seed(
                        args.seed + 1), progress=False)
                    x = result.x
                    extra = {"network_s": result.network_seconds}
                    settings = component.settings or {}
            seconds = time.perf_counter() - t0
            vol_psnr, ps, ss = plane_metrics(volume, x.detach().cpu().float().numpy())
            z = volume.shape[0]
            evals = counter.slices // z
            row = Row(split, views, method, _describe(method, settings), vol_psnr, ps, ss, seconds, evals)
            if evals:
                row.s_per_eval = seconds / (z * evals)
                row.net_per_eval = extra["network_s"] / (z * evals)
            print(_line(row), flush=True)
            rows.append(row)
    return rows


def _line(r: Row) -> str:
    planes = " | ".join(f"{r.psnr[p][0]:.2f} +- {r.psnr[p][1]:.2f}" for p in PLANES)
    ssims = " / ".join(f"{r.ssim[p][0]:.3f}" for p in PLANES)
    cost = f"{r.s_per_eval:.4f} ({r.net_per_eval:.4f})" if r.evals else "-"
    evals = str(r.evals) if r.evals else "-"
    return (f"| {r.split} | {r.views} | {r.label} | {evals} | {r.volume_psnr:.2f} | {planes} | {ssims} | "
            f"{r.seconds / 16:.2f} | {cost} |")


def targets(rows: list[Row]) -> list[str]:
    """Per split and view count: the best DDS-3D setting vs slice-by-slice DDS (>= +1 dB on coronal and sagittal
    planes, >= +0.5 dB volume PSNR) and vs 3D TV (volume PSNR above it)."""
    lines = []
    for split, views in dict.fromkeys((r.split, r.views) for r in rows):
        rs = [r for r in rows if r.split == split and r.views == views]
        coupled = [r for r in rs if r.method == "dds_3d"]
        plain = next((r for r in rs if r.method == "dds"), None)
        tv3 = [r for r in rs if r.method == "tv_3d"]
        if not coupled or plain is None:
            continue
        best = max(coupled, key=lambda r: r.volume_psnr)
        d = {p: best.psnr[p][0] - plain.psnr[p][0] for p in PLANES}
        overall = best.volume_psnr - plain.volume_psnr
        ok = d["coronal"] >= 1 and d["sagittal"] >= 1 and overall >= 0.5
        line = (f"{split}, {views} views, {best.label} vs DDS: volume {overall:+.2f} dB, axial {d['axial']:+.2f}, "
                f"coronal {d['coronal']:+.2f}, sagittal {d['sagittal']:+.2f} (target >= +0.5 volume, >= +1 "
                f"coronal and sagittal) {'PASS' if ok else 'FAIL'}")
        if tv3:
            top = max(tv3, key=lambda r: r.volume_psnr)
            gain = best.volume_psnr - top.volume_psnr
            line += f"; vs {top.label}: {gain:+.2f} dB {'PASS' if gain > 0 else 'FAIL'}"
        lines.append(line)
    return lines


def render(rows: list[Row], header: str) -> str:
    """The markdown table of ``rows`` and the target checks."""
    columns = ("| split | views | method | evals / slice | volume PSNR dB | axial PSNR | coronal PSNR | sagittal PSNR "
               "| SSIM ax / cor / sag | s / slice | s / slice-eval (network) |")
    lines = [header, "", columns, "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_line(r) for r in rows]
    lines += ["", "Targets:", ""] + [f"- {t}" for t in targets(rows)]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from ..jobs.run import source_commit
    from ..priors import default_prior

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    prior = default_prior("ct", device)
    splits = ("validation", "test") if args.split == "both" else (args.split,)
    views = [int(v) for v in args.views.split(",")]
    if args.quick:
        views, args.steps, args.mbir_steps = views[:1], 3, 3
    header = (f"Cranium head CT, 16 slices a volume at 128x128 (validation slices {SPLITS['validation'][0]}-"
              f"{SPLITS['validation'][-1]}, test {SPLITS['test'][0]}-{SPLITS['test'][-1]}); parallel beam over "
              f"180 degrees, noise {args.noise:g} x max sinogram; DDS {args.steps} steps, DiffusionMBIR "
              f"{args.mbir_steps} levels; seed {args.seed}; commit {source_commit()}; device {device}; torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads; {time.strftime('%Y-%m-%d')}. PSNR mean +- "
              "std over planes; data range the volume's maximum.")
    rows: list[Row] = []
    for split in splits:
        volume = load_volume(split)
        for v in views:
            rows += run_views(split, volume, v, args, prior, device)
            if args.out:  # partial results survive an interrupted run
                Path(args.out).write_text(render(rows, header) + "\n")
    print(render(rows, header))
    return 0
