"""The ultrasound job kind: RF frames in (HDF5/npy with geometry, or simulated), scan-line completion in the
companded domain of the shipped tissue prior, RF/IQ HDF5 and a B-mode figure with a dB colorbar out.

Each frame is divided by its largest ``|rf|`` and mu-law companded (``C``, mu = 255) before sampling; companding
acts sample by sample, so selecting scan lines commutes with it and the measurement stays linear:
``C(y) = ScanLines(C(x))``. Outputs are expanded back, ``rf = scale C^-1(x)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from operators.ultrasound import Demodulate, Probe, ScanLines, bmode, equispaced_lines, mu_law_compress, mu_law_expand

from ..errors import ConfigError, InputError
from ..files import verify_sha256
from .problem import Volume, VolumeProblem
from .registry import Range, value_ranges

if TYPE_CHECKING:
    from .run import JobResult, PreparedJob

__all__ = ["shipped_ultrasound_prior", "ultrasound_prior", "ultrasound_metrics", "ultrasound_phantom_data", "ultrasound_rf_data",
           "ultrasound_scanlines_operator", "write_ultrasound_outputs"]

MU = 255.0
DYNAMIC_RANGE_DB = 50.0


def _volume(rf: torch.Tensor, probe: Probe, path: Path | None, attrs: dict[str, Any], sha256: str | None = None
            ) -> Volume:
    scale = rf.abs().amax((1, 2)).clamp_min(1e-30)
    image = mu_law_compress(rf / scale[:, None, None], MU).float()
    attrs = {**attrs, "probe": probe, "frame_scale": scale.double(), "mu": MU, "max": 1.0}
    return Volume("ultrasound", path, image=image, reference=image, attrs=attrs, sha256=sha256)


def ultrasound_rf_data(*, path: str, sha256: str | None = None, fs: float | None = None, fc: float | None = None,
                       elements: int | None = None, pitch: float | None = None,
                       frames: list[int] | None = None) -> Volume:
    """Beamformed RF frames ``(frames, samples, lines)`` from HDF5 (with ``fs``, ``fc``, ``n_elements``, ``pitch``
    attributes) or .npy (geometry given here); the stated probe must agree with the file.

    Args:
        path: the ``.h5`` or ``.npy`` file.
        sha256: expected checksum of the file.
        fs, fc: sampling and centre frequency in Hz (required for .npy; checked against HDF5 attributes).
        elements: element count = scan lines (checked against the file).
        pitch: element pitch in metres (required for .npy).
        frames: frame indices (default all).
    """
    from ..io.ultrasound import read_rf
    from .components import _select_slices

    digest = verify_sha256(path, sha256)
    data = read_rf(path, fs=fs, fc=fc, n_elements=elements, pitch=pitch)
    chosen = _select_slices(data.rf.shape[0], frames, path)
    return _volume(torch.from_numpy(data.rf[chosen]).double(), data.probe, Path(path), {"frames": chosen}, digest)


@value_ranges(frames=Range(1), samples=Range(8), lines=Range(8))
def ultrasound_phantom_data(*, phantom: Literal["speckle", "cysts", "points", "layers", "mixed"] = "mixed",
                            frames: int = 2, samples: int = 128, lines: int = 64, seed: int = 1234) -> Volume:
    """Simulated RF frames (``medrecon.training.ultrasound_sim``, 3 MHz probe, one line per element), no input file.

    Args:
        phantom: echogenicity model.
        frames: number of frames.
        samples, lines: frame size (axial samples at 12 MHz, lines 0.3 mm apart).
        seed: the simulation's generator seed (distinct from the priors' training seeds).
    """
    from ..training.ultrasound_sim import SIM_PROBE, simulate_frames

    probe = Probe(fc=SIM_PROBE.fc, fs=SIM_PROBE.fs, n_elements=lines, pitch=SIM_PROBE.pitch,
                  bandwidth=SIM_PROBE.bandwidth, focus=SIM_PROBE.focus)
    rf, phantoms = simulate_frames(frames, samples, lines, torch.Generator().manual_seed(seed), phantom, probe)
    return _volume(rf.double(), probe, None, {"phantom": phantom, "seed": seed,
                                               "points": [p.points for p in phantoms]})


@value_ranges(factor=Range(1), noise=Range(0))
def ultrasound_scanlines_operator(volume: Volume, generator: torch.Generator, *, factor: int = 2,
                                  mask: list[int] | None = None, noise: float = 0.0) -> VolumeProblem:
    """Scan-line subsampling of the companded frames: every ``factor``-th line (centred), or the lines of
    ``mask`` (one 0/1 entry per line).

    Args:
        factor: keep one line in ``factor``.
        mask: explicit line mask, as wide as the frames.
        noise: Gaussian noise std on the measured (companded) lines.
    """
    if volume.modality != "ultrasound" or volume.image is None:
        raise ConfigError('operator.kind = "ultrasound_scanlines" needs RF frames (data kind ultrasound_rf or '
                          "ultrasound_phantom)")
    total = int(volume.image.shape[-1])
    where = volume.path or "data"
    if mask is not None:
        if len(mask) != total:
            raise InputError(where, f"the scan-line mask has {len(mask)} entries but the frames have {total} lines",
                             "mask")
        if not any(mask):
            raise InputError(where, "the scan-line mask selects no line", "mask")
        op = ScanLines.from_mask(torch.tensor([bool(m) for m in mask]))
    else:
        op = ScanLines(equispaced_lines(total, factor), total)
    with torch.no_grad():
        y = op(volume.image)
    if noise > 0:
        y = y + noise * torch.randn(y.shape, generator=generator, dtype=y.dtype)
    h, w = volume.image.shape[-2:]
    info = {"modality": "ultrasound", "slices": int(volume.image.shape[0]), "matrix": [h, w],
            "lines": int(op.indices.numel()), "lines_total": total, "factor": round(total / op.indices.numel(), 3),
            "noise_std": noise, "domain": f"mu-law companded RF (mu = {MU:g}), frames / max|rf|"}
    return VolumeProblem(y, lambda sl: op, (h, w), torch.float32, (h, w), mask=op.mask, info=info)


def _rf(companded: np.ndarray, volume: Volume) -> np.ndarray:
    scale = volume.attrs["frame_scale"].numpy()[:, None, None]
    return (mu_law_expand(torch.from_numpy(np.asarray(companded, dtype=np.float64)), MU).numpy() * scale)


def ultrasound_metrics(recon: np.ndarray, reference: np.ndarray, volume: Volume) -> dict[str, float]:
    """Envelope PSNR (dB) of the expanded RF against the reference frames, averaged over frames."""
    from ..metrics.ultrasound import envelope_psnr

    est, ref = _rf(recon, volume), _rf(reference, volume)
    return {"envelope_psnr": float(np.mean([envelope_psnr(r, e) for r, e in zip(ref, est)]))}


def write_ultrasound_outputs(result: JobResult, job: PreparedJob) -> list[Path]:
    """``reconstructions/rf.h5`` (RF, IQ, the measured-line mask, reference and baselines as RF) with ``hdf5``,
    and ``figure.png``, the middle frame's B-mode of every method on one dB scale, with ``png``."""
    from ..io.ultrasound import write_rf_h5

    volume, formats, out = job.volume, job.spec.run.outputs, result.out
    probe: Probe = volume.attrs["probe"]
    rf = {job.spec.sampler.kind: _rf(result.reconstruction, volume)}
    rf.update({name: _rf(img, volume) for name, img in result.baselines.items()})
    if result.reference is not None:
        rf = {"reference": _rf(result.reference, volume), **rf}
    files = []
    main = rf[job.spec.sampler.kind]
    if "hdf5" in formats:
        demod = Demodulate(probe.fc, probe.fs, main.shape[1], decimation=2)
        iq = demod(torch.from_numpy(main)).numpy()
        extra = {f"{k}_rf": v for k, v in rf.items() if k != job.spec.sampler.kind}
        extra["measured_lines"] = job.problem.mask.cpu().numpy().astype(np.float32)
        files.append(write_rf_h5(out / "reconstructions" / "rf.h5", main, probe, iq, extra))
    if "png" in formats:
        from .figures import save_bmode_figure

        mid = main.shape[0] // 2
        measured = np.where(job.problem.mask.cpu().numpy()[None], rf.get("reference", main)[mid], 0.0)
        panels = {"measured lines": measured, **{k: v[mid] for k, v in rf.items()}}
        title = f"{job.spec.sampler.kind}: frame {mid}, {job.problem.info['lines']} of " \
                f"{job.problem.info['lines_total']} scan lines"
        shown = {k: bmode(torch.from_numpy(np.ascontiguousarray(v)), DYNAMIC_RANGE_DB,
                          float(np.abs(rf.get("reference", main)[mid]).max())).numpy() for k, v in panels.items()}
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
