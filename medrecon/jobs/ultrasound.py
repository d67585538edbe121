"""The ultrasound job kinds: RF frames in (HDF5/npy with geometry, or simulated), scan-line completion in the
companded domain of the shipped tissue prior, or joint tissue/haze dehazing (``operator.kind = "ultrasound_haze"``
with ``sampler.kind = "joint_dehazing"``), RF/IQ HDF5 and a B-mode figure with a dB colorbar out.

Each frame is divided by its largest ``|rf|`` and mu-law companded (``C``, mu = 255) before sampling; companding
acts sample by sample, so selecting scan lines commutes with it and the measurement stays linear:
``C(y) = ScanLines(C(x))``. Dehazing measures the normalised RF ``y = C^-1(x) + gamma C^-1(h)`` of the two
companded sources. Outputs are expanded back, ``rf = scale C^-1(x)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from operators.ultrasound import (
    Demodulate,
    Probe,
    ScanLines,
    bmode,
    equispaced_lines,
    haze_mixture,
    mu_law_compress,
    mu_law_expand,
)

from .. import defaults as D
from ..errors import ConfigError, InputError
from ..files import verify_sha256
from .problem import Volume, VolumeProblem
from .registry import Range, value_ranges

if TYPE_CHECKING:
    from .run import JobResult, PreparedJob

__all__ = ["shipped_ultrasound_prior", "ultrasound_haze_operator", "ultrasound_prior", "ultrasound_metrics",
           "ultrasound_phantom_data", "ultrasound_rf_data", "ultrasound_scanlines_operator",
           "write_ultrasound_outputs"]

MU = 255.0
DYNAMIC_RANGE_DB = 50.0


def _volume(rf: torch.Tensor, probe: Probe, path: Path | None, attrs: dict[str, Any], sha256: str | None = None,
            reference: torch.Tensor | Literal["frames", "none"] = "frames") -> Volume:
    """Companded frames at unit peak; the reference is the frames themselves, none, or other RF frames (the clean
    tissue of hazy frames) companded at the frames' scale."""
    scale = rf.abs().amax((1, 2)).clamp_min(1e-30)
    image = mu_law_compress(rf / scale[:, None, None], MU).float()
    if isinstance(reference, torch.Tensor):
        ref = mu_law_compress(reference / scale[:, None, None], MU).float()
    else:
        ref = image if reference == "frames" else None
    attrs = {**attrs, "probe": probe, "frame_scale": scale.double(), "mu": MU, "max": 1.0}
    return Volume("ultrasound", path, image=image, reference=ref, attrs=attrs, sha256=sha256)


def ultrasound_rf_data(*, path: str, sha256: str | None = None, fs: float | None = None, fc: float | None = None,
                       elements: int | None = None, pitch: float | None = None,
                       frames: list[int] | None = None, reference: str = "rf") -> Volume:
    """Beamformed RF frames ``(frames, samples, lines)`` from HDF5 (with ``fs``, ``fc``, ``n_elements``, ``pitch``
    attributes) or .npy (geometry given here); the stated probe must agree with the file.

    Args:
        path: the ``.h5`` or ``.npy`` file.
        sha256: expected checksum of the file.
        fs, fc: sampling and centre frequency in Hz (required for .npy; checked against HDF5 attributes).
        elements: element count = scan lines (checked against the file).
        pitch: element pitch in metres (required for .npy).
        frames: frame indices (default all).
        reference: what the metrics score against: ``rf`` (the frames themselves: scan-line completion of fully
            sampled frames), ``none`` (no metrics: real hazy frames), or the name of an HDF5 dataset shaped like
            ``rf`` (the clean tissue RF of hazy frames, for dehazing).
    """
    from ..io.ultrasound import read_rf
    from .components import _select_slices

    digest = verify_sha256(path, sha256)
    named = None if reference in ("rf", "none") else reference
    data = read_rf(path, fs=fs, fc=fc, n_elements=elements, pitch=pitch, reference=named)
    chosen = _select_slices(data.rf.shape[0], frames, path)
    ref: Any = {"rf": "frames", "none": "none"}.get(reference)
    if data.reference is not None:
        ref = torch.from_numpy(data.reference[chosen]).double()
    return _volume(torch.from_numpy(data.rf[chosen]).double(), data.probe, Path(path),
                   {"frames": chosen, "reference": reference}, digest, ref)


@value_ranges(frames=Range(1), samples=Range(8), lines=Range(8), haze=Range(0))
def ultrasound_phantom_data(*, phantom: Literal["speckle", "cysts", "points", "layers", "mixed"] = "mixed",
                            frames: int = 2, samples: int = 128, lines: int = 64, seed: int = 1234,
                            haze: float = 0.0) -> Volume:
    """Simulated RF frames (``medrecon.training.ultrasound_sim``, 3 MHz probe, one line per element), no input file.

    Args:
        phantom: echogenicity model.
        frames: number of frames.
        samples, lines: frame size (axial samples at 12 MHz, lines 0.3 mm apart).
        seed: the simulation's generator seed (distinct from the priors' training seeds).
        haze: weight ``gamma`` of simulated multipath haze added to every frame (tissue and haze each at unit
            peak; 0: clean frames); the clean tissue stays the reference.
    """
    from ..training.ultrasound_sim import SIM_PROBE, simulate_frames

    probe = Probe(fc=SIM_PROBE.fc, fs=SIM_PROBE.fs, n_elements=lines, pitch=SIM_PROBE.pitch,
                  bandwidth=SIM_PROBE.bandwidth, focus=SIM_PROBE.focus)
    generator = torch.Generator().manual_seed(seed)
    rf, phantoms = simulate_frames(frames, samples, lines, generator, phantom, probe)
    attrs = {"phantom": phantom, "seed": seed, "haze": haze, "points": [p.points for p in phantoms],
             "cysts": [None if p.inside is None else (p.inside, p.outside) for p in phantoms]}
    if haze == 0:
        return _volume(rf.double(), probe, None, attrs)
    clutter, _ = simulate_frames(frames, samples, lines, generator, "haze", probe)
    return _volume((rf + haze * clutter).double(), probe, None, attrs, reference=rf.double())


def _planned_lines(path: str, frames: int, total: int) -> torch.Tensor:
    """A planned line mask (``medrecon plan-mask``) ``(1, L)`` or ``(frames, L)``, the same count per frame."""
    from .components import read_planned_mask

    planned = read_planned_mask(path, frames, total, "the RF")
    counts = planned.sum(-1)
    if int(counts.min()) != int(counts.max()):
        raise InputError(path, f"every frame needs the same number of scan lines, got {counts.tolist()}",
                         field="mask")
    return planned


@value_ranges(factor=Range(1), noise=Range(0))
def ultrasound_scanlines_operator(volume: Volume, generator: torch.Generator, *, factor: int = 2,
                                  mask: list[int] | None = None, mask_file: str | None = None,
                                  noise: float = 0.0) -> VolumeProblem:
    """Scan-line subsampling of the companded frames: every ``factor``-th line (centred), the lines of
    ``mask`` (one 0/1 entry per line), or a planned mask file.

    Args:
        factor: keep one line in ``factor``.
        mask: explicit line mask, as wide as the frames.
        mask_file: a line mask from ``medrecon plan-mask`` (bool ``.npy`` ``(L,)``/``(1, L)`` for every frame or
            ``(frames, L)`` per frame, the same count in each); replaces ``factor``.
        noise: Gaussian noise std on the measured (companded) lines.
    """
    if volume.modality != "ultrasound" or volume.image is None:
        raise ConfigError('operator.kind = "ultrasound_scanlines" needs RF frames (data kind ultrasound_rf or '
                          "ultrasound_phantom)")
    frames, total = int(volume.image.shape[0]), int(volume.image.shape[-1])
    where = volume.path or "data"
    if mask is not None and mask_file is not None:
        raise ConfigError("operator.mask and operator.mask_file are both set; keep one")
    if mask is not None:
        if len(mask) != total:
            raise InputError(where, f"the scan-line mask has {len(mask)} entries but the frames have {total} lines",
                             "mask")
        if not any(mask):
            raise InputError(where, "the scan-line mask selects no line", "mask")
        lines = ScanLines.from_mask(torch.tensor([bool(m) for m in mask])).indices[None]
    elif mask_file is not None:
        planned = _planned_lines(mask_file, frames, total)
        lines = torch.nonzero(planned)[:, 1].reshape(planned.shape[0], -1)
    else:
        lines = equispaced_lines(total, factor)[None]
    if lines.shape[0] == 1:
        shared = ScanLines(lines[0], total)
        operator_for = lambda sl: shared  # noqa: E731
        shown = shared.mask
    else:  # one planned mask per frame
        def operator_for(sl: slice) -> ScanLines:
            return ScanLines(lines[sl], total)

        shown = torch.zeros(frames, total, dtype=torch.bool).scatter_(1, lines, True)
    with torch.no_grad():
        y = operator_for(slice(0, frames))(volume.image)
    if noise > 0:
        y = y + noise * torch.randn(y.shape, generator=generator, dtype=y.dtype)
    h, w = volume.image.shape[-2:]
    k = int(lines.shape[1])
    info = {"modality": "ultrasound", "slices": frames, "matrix": [h, w], "lines": k, "lines_total": total,
            "factor": round(total / k, 3), "noise_std": noise,
            "domain": f"mu-law companded RF (mu = {MU:g}), frames / max|rf|"}
    if mask_file is not None:
        info.update(mask="planned", mask_file=str(mask_file))
    return VolumeProblem(y, operator_for, (h, w), torch.float32, (h, w), mask=shown, info=info)


@value_ranges(gamma=Range(0, lo_open=True))
def ultrasound_haze_operator(volume: Volume, generator: torch.Generator, *,
                             gamma: float = D.JOINT_DEHAZING.gamma) -> VolumeProblem:
    """The additive haze model of dehazing: the normalised RF frames are ``y = C^-1(x) + gamma C^-1(h)`` of the
    companded tissue ``x`` and haze ``h`` (two stacked sources; ``sampler.kind = "joint_dehazing"``).

    Args:
        gamma: the model's haze weight.
    """
    if volume.modality != "ultrasound" or volume.image is None:
        raise ConfigError('operator.kind = "ultrasound_haze" needs RF frames (data kind ultrasound_rf or '
                          "ultrasound_phantom)")
    op = haze_mixture(gamma)
    y = mu_law_expand(volume.image.double(), MU).float()
    h, w = volume.image.shape[-2:]
    info = {"modality": "ultrasound", "slices": int(volume.image.shape[0]), "matrix": [h, w],
            "sources": ["tissue", "haze"], "gamma": gamma, "noise_std": 0.0,
            "domain": f"frames / max|rf| = C^-1(x) + gamma C^-1(h), sources mu-law companded (mu = {MU:g})"}
    return VolumeProblem(y, lambda sl: op, (h, w), torch.float32, (h, w), info=info)


def _rf(companded: np.ndarray, volume: Volume) -> np.ndarray:
    scale = volume.attrs["frame_scale"].numpy()[:, None, None]
    return (mu_law_expand(torch.from_numpy(np.asarray(companded, dtype=np.float64)), MU).numpy() * scale)


def ultrasound_metrics(recon: np.ndarray, reference: np.ndarray, volume: Volume) -> dict[str, float]:
    """Envelope PSNR (dB) of the expanded RF against the reference frames, and on simulated cysts the gCNR of the
    envelope (cysts against the background ring around them), each averaged over frames."""
    from operators.ultrasound import envelope

    from ..metrics.ultrasound import envelope_psnr, gcnr

    est, ref = _rf(recon, volume), _rf(reference, volume)
    out = {"envelope_psnr": float(np.mean([envelope_psnr(r, e) for r, e in zip(ref, est)]))}
    cysts = [(k, c) for k, c in enumerate(volume.attrs.get("cysts", [])) if c is not None]
    if cysts:
        env = envelope(torch.from_numpy(est))
        out["gcnr"] = float(np.mean([gcnr(env[k], inside, outside) for k, (inside, outside) in cysts]))
    return out


def write_ultrasound_outputs(result: JobResult, job: PreparedJob) -> list[Path]:
    """``reconstructions/rf.h5`` (RF, IQ, reference and baselines as RF; the measured-line mask of scan-line
    jobs, the hazy input and the haze estimate of dehazing jobs) with ``hdf5``, and ``figure.png``, the middle
    frame's B-mode of every method on one dB scale, with ``png``."""
    from ..io.ultrasound import write_rf_h5

    volume, formats, out, info = job.volume, job.spec.run.outputs, result.out, job.problem.info
    probe: Probe = volume.attrs["probe"]
    kind = job.spec.sampler.kind
    dehazing = "sources" in info
    rf = {kind: _rf(result.reconstruction, volume)}
    rf.update({name: _rf(img, volume) for name, img in result.baselines.items()})
    if result.reference is not None:
        rf = {"reference": _rf(result.reference, volume), **rf}
    main = rf[kind]
    inputs = {"hazy_rf": _rf(volume.image.numpy(), volume)} if dehazing else {}
    files = []
    if "hdf5" in formats:
        demod = Demodulate(probe.fc, probe.fs, main.shape[1], decimation=2)
        iq = demod(torch.from_numpy(main)).numpy()
        extra = {f"{k}_rf": v for k, v in rf.items() if k != kind}
        if dehazing:
            extra.update(inputs)
            extra["haze_rf"] = _rf(result.maps["haze"], volume)  # y = rf + gamma haze_rf
        else:
            extra["measured_lines"] = job.problem.mask.cpu().numpy().astype(np.float32)
        files.append(write_rf_h5(out / "reconstructions" / "rf.h5", main, probe, iq, extra))
    if "png" in formats:
        from .figures import save_bmode_figure

        mid = main.shape[0] // 2
        if dehazing:
            panels = {"hazy input": inputs["hazy_rf"][mid], f"{kind} (tissue)": main[mid],
                      **{("clean tissue" if k == "reference" else k): v[mid] for k, v in rf.items()
                         if k not in (kind, "hazy_input")}}  # the hazy_input baseline is the input itself
            title = f"{kind}: frame {mid}, haze model y = x + {info['gamma']:g} h"
        else:
            rows = job.problem.mask.cpu().numpy().reshape(-1, info["lines_total"])  # one mask, or one per frame
            measured = np.where(rows[min(mid, len(rows) - 1)][None], rf.get("reference", main)[mid], 0.0)
            panels = {"measured lines": measured, **{k: v[mid] for k, v in rf.items()}}
            title = f"{kind}: frame {mid}, {info['lines']} of {info['lines_total']} scan lines"
        peak = float(np.abs(rf.get("reference", inputs.get("hazy_rf", main))[mid]).max())
        shown = {k: bmode(torch.from_numpy(np.ascontiguousarray(v)), DYNAMIC_RANGE_DB, peak).numpy()
                 for k, v in panels.items()}
        save_bmode_figure(out / "figure.png", shown, probe, DYNAMIC_RANGE_DB, title)
        files.append(out / "figure.png")
    return files


def ultrasound_prior(volume: Volume, *, source: Literal["tissue", "haze"] = "tissue") -> Any:
    """A shipped ultrasound prior on companded RF (``medrecon/priors/default/us_<source>.json``, its weights'
    sha256 checked against the sidecar and ``data_manifests/prior_us_<source>_default.json``).

    Args:
        source: ``tissue`` (clean speckle, cysts, points, layers) or ``haze`` (multipath clutter).
    """
    return shipped_ultrasound_prior(source)


def shipped_ultrasound_prior(source: str, device: str | torch.device = "cpu") -> Any:
    """Load ``us_<source>`` from the shipped priors, verifying the manifest's sha256 too."""
    import json

    from ..errors import ChecksumError
    from ..files import sha256_file
    from ..priors.checkpoint import DEFAULT_DIR, MANIFEST_DIR, load_prior

    sidecar = DEFAULT_DIR / f"us_{source}.json"
    if not sidecar.exists():
        raise InputError(sidecar, f"the shipped ultrasound {source} prior is not installed")
    manifest = MANIFEST_DIR / f"prior_us_{source}_default.json"
    if manifest.exists():
        want = json.loads(manifest.read_text())["sha256"]
        weights = sidecar.with_suffix(".safetensors")
        if sha256_file(weights) != want:
            raise ChecksumError(weights, f"sha256 does not match {want} recorded in {manifest}", "weights_sha256")
    return load_prior(sidecar, device)
