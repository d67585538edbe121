"""``medrecon bench ultrasound``: dehazing on simulated frames with known tissue (joint two-prior sampling vs the
hazy input, a Wiener filter and non-local means), scan-line completion at 2x and 4x (DDS vs linear
interpolation of the missing lines) and the RF simulation's speed against PyMUST's ``simus``.

Test frames come from seeds the shipped priors never saw (``TEST_SEED``). Metrics on the envelope: PSNR against
the clean tissue's envelope (peak = its maximum) and gCNR between the cysts and the background ring around them.
``--search`` instead sweeps the ultrasound DDS settings on validation frames (``VALIDATION_SEED``, disjoint from
the test and training seeds): where ``medrecon.defaults.DDS_BY_MODALITY["ultrasound"]`` was chosen.
``--real-figure PNG`` draws a qualitative panel of real B-mode frames (pydicom-data's ultrasound cine
``REAL_FRAMES``, display only: no RF, no metrics) beside simulated B-mode on the same dB scale.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from .ct import _table

TEST_SEED = 2_000_000
VALIDATION_SEED = 3_000_000
SEARCH_ETA = (0.5, 0.85, 1.0)
SEARCH_CLIP = (True, False)
REAL_FRAMES = "examples_ybr_color.dcm"  # pydicom-data: a 30-frame cardiac cine (US modality, 240x320)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=4, help="test frames per table")
    parser.add_argument("--steps", type=int, default=40, help="sampler steps")
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.3, 0.6], help="haze levels gamma")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument("--search", action="store_true",
                        help="sweep the DDS settings of scan-line completion on validation frames instead")
    parser.add_argument("--real-figure", default=None, metavar="PNG",
                        help="write the qualitative panel of real B-mode frames (pydicom-data) instead")


def _envelope(rf: torch.Tensor) -> torch.Tensor:
    from operators.ultrasound import envelope

    return envelope(rf.double())


def _frames(n: int, samples: int, lines: int, kind: str, offset: int, seed: int = TEST_SEED):
    from ..training.ultrasound_sim import SIM_PROBE, simulate_frames
    from operators.ultrasound import Probe

    probe = Probe(fc=SIM_PROBE.fc, fs=SIM_PROBE.fs, n_elements=lines, pitch=SIM_PROBE.pitch, focus=SIM_PROBE.focus)
    return simulate_frames(n, samples, lines, torch.Generator().manual_seed(seed + offset), kind, probe)


def _priors(device: torch.device):
    from ..jobs.ultrasound import shipped_ultrasound_prior

    return shipped_ultrasound_prior("tissue", device), shipped_ultrasound_prior("haze", device)


def dehazing_rows(n: int, samples: int, lines: int, gammas: list[float], steps: int, seed: int,
                  device: torch.device) -> list[list[str]]:
    """One row per (haze level, method): envelope PSNR and gCNR, mean over ``n`` cyst frames."""
    import scipy.signal
    from skimage.restoration import denoise_nl_means, estimate_sigma

    from ..priors.stacked import StackedDenoiser
    from ..samplers import InverseProblem, joint_dehazing, run
    from operators.ultrasound import haze_mixture, mu_law_expand

    tissue, phantoms = _frames(n, samples, lines, "cysts", 0)
    haze, _ = _frames(n, samples, lines, "haze", 1)
    prior = StackedDenoiser(list(_priors(device)))
    rows = []
    for gamma in gammas:
        y = tissue + gamma * haze
        scale = y.abs().amax((1, 2), keepdim=True)
        y, clean = y / scale, tissue / scale
        t0 = time.perf_counter()
        problem = InverseProblem(haze_mixture(gamma).to(device), y.to(device), 0.0)
        out = run(joint_dehazing(steps=steps), problem, prior, torch.Generator(device=device).manual_seed(seed),
                  progress=False).x.cpu()
        seconds = (time.perf_counter() - t0) / n
        wiener = torch.from_numpy(np.stack([scipy.signal.wiener(f.numpy(), (5, 3)) for f in y]))
        log_env = np.log(_envelope(y).numpy() + 1e-6)  # speckle is multiplicative: despeckle the log envelope
        nlm = np.exp(np.stack([denoise_nl_means(b, h=0.8 * estimate_sigma(b), sigma=estimate_sigma(b), patch_size=5,
                                                patch_distance=6, fast_mode=True) for b in log_env]))
        methods = {"hazy input": _envelope(y), "Wiener (5x3, RF)": _envelope(wiener),
                   "non-local means (log envelope)": torch.from_numpy(nlm),
                   "joint diffusion (tissue + haze priors)": _envelope(mu_law_expand(out[:, 0].double()))}
        for name, env_est in methods.items():
            p, g = _scores_env(env_est, clean, phantoms)
            rows.append([f"{gamma:g}", name, f"{p:.2f}", f"{g:.3f}",
                         f"{seconds:.1f}" if name.startswith("joint") else "-"])
    return rows


def _scores_env(env: torch.Tensor, clean_rf: torch.Tensor, phantoms) -> tuple[float, float]:
    from ..metrics import gcnr, psnr

    ref = _envelope(clean_rf)
    env = env.double()
    p = [psnr(r[None], e[None], float(r.max())) for r, e in zip(ref, env)]
    g = [gcnr(e, ph.inside, ph.outside) for e, ph in zip(env, phantoms) if ph.inside is not None]
    return float(np.mean(p)), float(np.mean(g)) if g else float("nan")


def _completion(rf: torch.Tensor, factor: int, steps: int, seed: int, device: torch.device, eta: float,
                clip: bool) -> tuple[dict[str, torch.Tensor], float]:
    """Linear interpolation and DDS (tissue prior, ``gamma`` of the ultrasound defaults) of every ``factor``-th
    line of ``rf`` ``(n, samples, lines)``: the RF estimates and DDS seconds per frame."""
    from .. import defaults as D
    from ..baselines.ultrasound import interpolate_lines
    from ..priors.meta import sigma_data, sigma_range
    from ..samplers import InverseProblem, dds, karras, run
    from operators.ultrasound import ScanLines, equispaced_lines, mu_law_compress, mu_law_expand

    lines = rf.shape[-1]
    tissue = _priors(device)[0]
    lo, hi = sigma_range(tissue.meta)
    chosen = D.dds_for("ultrasound")
    op = ScanLines(equispaced_lines(lines, factor), lines)
    linear = interpolate_lines(op(rf), op.indices, lines)
    t0 = time.perf_counter()
    problem = InverseProblem(op.to(device), mu_law_compress(op(rf)).to(device), 0.0)
    sampler = dds(steps, eta=eta, cg_iters=chosen.cg_iters, gamma=chosen.gamma, sigma_data=sigma_data(tissue.meta),
                  sigmas=karras(steps, lo, hi), clip=(-1.0, 1.0) if clip else None)
    out = run(sampler, problem, tissue, torch.Generator(device=device).manual_seed(seed), progress=False).x
    seconds = (time.perf_counter() - t0) / rf.shape[0]
    return {"linear interpolation (RF)": linear, "DDS (tissue prior)": mu_law_expand(out.cpu().double())}, seconds


def _rf_psnr(rf: torch.Tensor, x: torch.Tensor) -> float:
    from ..metrics import psnr

    return float(np.mean([psnr(r[None], e[None], float(r.abs().max())) for r, e in zip(rf.double(), x)]))


def completion_rows(n: int, samples: int, lines: int, steps: int, seed: int, device: torch.device
                    ) -> list[list[str]]:
    """Scan-line completion at 2x and 4x: envelope PSNR and RF PSNR (peak max|rf|) of DDS (the ultrasound
    defaults) and linear interpolation of the missing lines, mean over ``n`` mixed frames."""
    from .. import defaults as D

    rf, _ = _frames(n, samples, lines, "mixed", 2)
    chosen = D.dds_for("ultrasound")
    rows = []
    for factor in (2, 4):
        est, seconds = _completion(rf, factor, steps, seed, device, chosen.eta, chosen.clip)
        for name, x in est.items():
            env_p, _ = _scores_env(_envelope(x), rf, [])
            rows.append([f"{factor}x ({lines // factor}/{lines})", name, f"{env_p:.2f}", f"{_rf_psnr(rf, x):.2f}",
                         f"{seconds:.1f}" if name.startswith("DDS") else "-"])
    return rows


def search_rows(n: int, samples: int, lines: int, steps: int, seed: int, device: torch.device
                ) -> list[list[str]]:
    """DDS scan-line completion at 2x and 4x on ``n`` validation frames (``VALIDATION_SEED``) for every ``eta``
    in ``SEARCH_ETA`` and clipping choice: envelope and RF PSNR, mean over both factors."""
    rf, _ = _frames(n, samples, lines, "any", 0, VALIDATION_SEED)
    rows = []
    for eta in SEARCH_ETA:
        for clip in SEARCH_CLIP:
            env_p, rf_p = [], []
            for factor in (2, 4):
                x = _completion(rf, factor, steps, seed, device, eta, clip)[0]["DDS (tissue prior)"]
                env_p.append(_scores_env(_envelope(x), rf, [])[0])
                rf_p.append(_rf_psnr(rf, x))
            rows.append([f"{eta:g}", "yes" if clip else "no", f"{np.mean(env_p):.2f}", f"{np.mean(rf_p):.2f}"])
    return rows


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed_rows(sizes: list[tuple[int, int]], repeats: int) -> list[list[str]]:
    """RF simulation time of the convolution model (one scatterer per grid cell, beamformed RF directly) vs
    PyMUST ``simus`` (the same scatterers, plane-wave channel data of the same element count; no beamforming)."""
    from ..training.ultrasound_sim import SIM_PROBE
    from operators.ultrasound import PulseEcho, pulse_echo_psf

    rows = []
    for samples, lines in sizes:
        op = PulseEcho(*[t.float() for t in pulse_echo_psf(SIM_PROBE, samples)])
        refl = torch.randn(1, samples, lines, generator=torch.Generator().manual_seed(0))
        ours = _median_seconds(lambda op=op, refl=refl: op(refl), repeats)
        try:
            import pymust

            p = pymust.getparam("L11-5v")
            p.fc, p.fs, p.Nelements, p.pitch, p.bandwidth = SIM_PROBE.fc, SIM_PROBE.fs, lines, SIM_PROBE.pitch, 60
            p.width = 0.9 * p.pitch
            zz, xx = np.meshgrid(5e-3 + np.arange(samples) * SIM_PROBE.dz,
                                 (np.arange(lines) - (lines - 1) / 2) * SIM_PROBE.pitch, indexing="ij")
            rc = refl[0].numpy().astype(np.float64)
            delays = np.zeros((1, lines))
            theirs = _median_seconds(lambda: pymust.simus(xx.ravel(), zz.ravel(), rc.ravel(), delays, p),
                                     max(1, repeats // 3))
            them = f"{theirs * 1e3:.0f}"
            ratio = f"{theirs / ours:.0f}x"
        except ImportError:
            them, ratio = "pymust not installed", "-"
        rows.append([f"{samples}x{lines}", str(samples * lines), f"{ours * 1e3:.2f}", them, ratio])
    return rows


def main(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    n, steps, samples, lines = args.frames, args.steps, 128, 64
    sizes, repeats = [(64, 32), (128, 64), (256, 128)], 9
    if args.quick:
        n, steps, samples, lines, sizes, repeats = 1, 4, 64, 32, [(64, 32)], 3
    if args.real_figure:
        real_figure(args.real_figure)
        print(f"wrote {args.real_figure}")
        return 0
    if args.search:
        parts = [
            f"DDS settings of scan-line completion on {n} simulated validation frames {samples}x{lines} (seed "
            f"{VALIDATION_SEED}, every tissue kind), {steps} steps, gamma 0, mean over 2x and 4x; device {device}.",
            "",
            _table(["eta", "clip", "envelope PSNR (dB)", "RF PSNR (dB)"],
                   search_rows(n, samples, lines, steps, args.seed, device)),
        ]
        return _emit("\n".join(parts), args.out)
    parts = [
        f"Simulated frames {samples}x{lines} (3 MHz, 12 MHz sampling, 0.3 mm lines), {n} per row, test seed "
        f"{TEST_SEED}; {steps} sampler steps; device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads.",
        "",
        "Dehazing (y = tissue + gamma haze, each frame at unit peak): envelope PSNR vs the clean tissue, gCNR of "
        "the cysts",
        "",
        _table(["gamma", "method", "envelope PSNR (dB)", "gCNR", "s / frame"],
               dehazing_rows(n, samples, lines, args.gammas, steps, args.seed, device)),
        "",
        "Scan-line completion (equispaced lines kept)",
        "",
        _table(["lines kept", "method", "envelope PSNR (dB)", "RF PSNR (dB)", "s / frame"],
               completion_rows(n, samples, lines, steps, args.seed, device)),
        "",
        "RF simulation speed (median ms; ours: beamformed RF by the axially varying convolution model on CPU; "
        "PyMUST: simus channel data for the same scatterers and element count)",
        "",
        _table(["grid", "scatterers", "medrecon PulseEcho ms", "PyMUST simus ms", "speed-up"],
               speed_rows(sizes, repeats)),
    ]
    return _emit("\n".join(parts), args.out)


def real_bmode_db(name: str = REAL_FRAMES, dynamic_range_db: float = 50.0) -> np.ndarray:
    """The cine frames of the pydicom-data ultrasound file ``name`` as display dB ``(frames, rows, cols)``: the
    stored luminance mapped linearly onto ``[-dynamic_range_db, 0]`` (the scanner's own compression is not
    recorded, so this is for display only)."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file(name))
    if ds.Modality != "US":
        raise ValueError(f"{name} is {ds.Modality}, not an ultrasound file")
    frames = ds.pixel_array.astype(np.float64)  # RGB after pydicom's YBR conversion
    gray = frames.mean(-1) if frames.shape[-1] == 3 else frames
    gray = gray if gray.ndim == 3 else gray[None]
    return (gray / 255.0 - 1.0) * dynamic_range_db


def real_figure(path: str, dynamic_range_db: float = 50.0, picks: tuple[int, ...] = (0, 10, 20)) -> None:
    """A PNG of real cine frames (``real_bmode_db``) beside simulated B-mode (a mixed phantom, and with haze
    ``gamma = 0.6``) on one dB scale with a dB colorbar: a qualitative look at speckle and haze, no metrics."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from ..files import atomic_path
    from operators.ultrasound import bmode

    real = real_bmode_db(REAL_FRAMES, dynamic_range_db)
    tissue, _ = _frames(1, 256, 64, "mixed", 0, VALIDATION_SEED)
    haze, _ = _frames(1, 256, 64, "haze", 1, VALIDATION_SEED)
    panels = {f"real frame {k} of {len(real)} (pydicom-data)": real[k, 15:225, 50:270]  # the sector, no overlay
              for k in picks if k < len(real)}
    panels["simulated tissue"] = bmode(tissue[0].double(), dynamic_range_db).numpy()
    panels["simulated, haze gamma = 0.6"] = bmode((tissue[0] + 0.6 * haze[0]).double(), dynamic_range_db).numpy()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.9 * len(panels) + 0.8, 3.2), squeeze=False,
                             gridspec_kw={"width_ratios": [1.0] * (len(panels) - 2) + [0.55, 0.55]})
    handle = None
    for ax, (name, img) in zip(axes[0], panels.items()):
        handle = ax.imshow(img, cmap="gray", vmin=-dynamic_range_db, vmax=0.0, aspect="auto")
        ax.set_title(name, fontsize=7)
        ax.set_axis_off()
    bar = fig.colorbar(handle, ax=list(axes[0]), fraction=0.02, pad=0.01)
    bar.set_label("dB (real frames: stored gray levels mapped linearly, display only)", fontsize=6)
    fig.suptitle("Qualitative only: real B-mode display frames (no RF) beside simulated B-mode", fontsize=8)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)


def _emit(table: str, out: str | None) -> int:
    print(table)
    if out:
        from ..files import atomic_path

        with atomic_path(out) as tmp:
            tmp.write_text(table + "\n")
    return 0
