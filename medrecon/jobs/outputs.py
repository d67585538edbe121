"""Writing a job's outputs, each atomically: fastMRI-style HDF5, NIfTI, DICOM series, PNG figure.

Files (inside the output folder):

- ``reconstructions/<input name>.h5``: dataset ``reconstruction`` ``(slices, h, w)`` float32, the layout of
  fastMRI leaderboard submissions (``reconstruction.h5`` for simulated inputs), and for the SMC ensembles the
  datasets ``std``, ``lower``, ``upper`` beside it (pixel-wise posterior std and credible interval of the shown
  image, same units); ``baselines.h5``: one dataset per baseline.
- ``reconstruction.nii.gz``: the volume with the input's affine (``nifti``; unit voxels for inputs without
  geometry, such as fastMRI files); SMC ensembles add ``std.nii.gz``,
  ``lower.nii.gz`` and ``upper.nii.gz`` (HU for CT: the std as an HU difference).
- ``dicom/``: one CT image series, Hounsfield units (``dicom``).
- ``figure.png``: the middle slice of every method beside the reference, error maps, the mask (``png``).
- ``montage.png``: a CT volume's axial, coronal and sagittal planes in the soft-tissue HU window (``png``, 3+
  slices).
- ``phantom.nii.gz``: the simulated input of ``data.kind = "ct_phantom"``.
- Ultrasound jobs write ``reconstructions/rf.h5`` (RF, IQ, geometry) and a B-mode ``figure.png`` instead
  (``medrecon.jobs.ultrasound.write_ultrasound_outputs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files import atomic_path

if TYPE_CHECKING:
    from .run import JobResult, PreparedJob

__all__ = ["CT_WINDOW_HU", "write_outputs", "write_reconstruction_h5"]

CT_WINDOW_HU = (-160.0, 240.0)  # figures of CT: the soft-tissue window (level 40, width 400)


def write_reconstruction_h5(
    path: Path, datasets: dict[str, np.ndarray], attrs: dict[str, str] | None = None
) -> Path:
    """An HDF5 file with one float32 dataset per entry (``{"reconstruction": (S, h, w)}`` for submissions)."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as hf:
        for name, data in datasets.items():
            hf.create_dataset(name, data=np.asarray(data, dtype=np.float32))
        for key, value in (attrs or {}).items():
            hf.attrs[key] = value
    return path


def _volume_xyz(stack: np.ndarray) -> np.ndarray:
    """``(S, H, W)`` slices -> ``(H, W, S)``: axial slices along the last axis, as read from NIfTI."""
    return np.ascontiguousarray(np.moveaxis(stack, 0, -1))


def _std_to_hu(stack: np.ndarray) -> np.ndarray:
    """A spread in 1/mm -> the same spread in HU (``1000 / mu_water`` per 1/mm)."""
    from ..io.hu import MU_WATER_PER_MM

    return (np.asarray(stack, dtype=np.float32) * (1000.0 / MU_WATER_PER_MM)).astype(np.float32)


def _to_hu(stack: np.ndarray) -> np.ndarray:
    """Attenuation in 1/mm -> HU (``medrecon.io.hu.mu_to_hu``)."""
    import torch

    from ..io.hu import mu_to_hu

    return mu_to_hu(torch.as_tensor(np.asarray(stack, dtype=np.float32))).numpy().astype(np.float32)


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """``(dz, dy, dx)`` in mm of ``(slices, rows, cols)`` stacks of NIfTI ``(i=row, j=col, k=slice)`` data."""
    norms = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    return float(norms[2]), float(norms[0]), float(norms[1])


def _write_dicom(folder: Path, hu: np.ndarray, affine: np.ndarray, source=None) -> Path:
    """A new DICOM series in ``folder``, replacing an earlier one only once the new series is complete; with a
    ``source`` series (DICOM input) its geometry and patient/study tags are copied."""
    import os
    import shutil

    from ..io import dicom

    fresh = folder.with_name(f".{folder.name}.new-{os.getpid()}")
    shutil.rmtree(fresh, ignore_errors=True)
    if source is not None:
        dicom.write_dicom_series(fresh, hu, source=source)
    else:
        dicom.write_dicom_series(fresh, hu, spacing=_spacing(affine))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(fresh, folder)
    return folder


def write_outputs(result: JobResult, job: PreparedJob) -> list[Path]:
    """Write every format in ``job.spec.run.outputs`` into ``result.out``; returns the written paths."""
    if job.volume.modality == "ultrasound":
        from .ultrasound import write_ultrasound_outputs

        return write_ultrasound_outputs(result, job)
    out = result.out
    formats = job.spec.run.outputs
    volume = job.volume
    files: list[Path] = []
    attrs = {"spec_hash": job.spec.hash, "sampler": job.spec.sampler.kind}
    if volume.path is None and volume.image is not None:
        from ..io import nifti

        files.append(
            nifti.write_nifti(
                out / "phantom.nii.gz", _volume_xyz(_to_hu(volume.image.numpy())), volume.affine
            )
        )
    if "hdf5" in formats:
        name = (
            volume.path.name
            if volume.path is not None and volume.path.suffix == ".h5"
            else "reconstruction.h5"
        )
        target = out / "reconstructions" / name
        files.append(write_reconstruction_h5(target, {"reconstruction": result.reconstruction, **result.maps},
                                             attrs))
        if result.baselines:
            files.append(write_reconstruction_h5(out / "baselines.h5", result.baselines, attrs))
    ct_hu = volume.modality == "ct" and bool(volume.attrs.get("hu", False))
    if "nifti" in formats:
        from ..io import nifti

        affine = volume.affine if volume.affine is not None else np.eye(4)  # fastMRI files carry no geometry
        data = _to_hu(result.reconstruction) if ct_hu else result.reconstruction
        files.append(nifti.write_nifti(out / "reconstruction.nii.gz", _volume_xyz(data), affine))
        for name, stack in result.maps.items():
            shown = (_std_to_hu(stack) if name == "std" else _to_hu(stack)) if ct_hu else stack
            files.append(nifti.write_nifti(out / f"{name}.nii.gz", _volume_xyz(shown), affine))
    if "dicom" in formats:
        files.append(_write_dicom(out / "dicom", _to_hu(result.reconstruction), volume.affine,
                                  volume.attrs.get("dicom_source")))
    if "png" in formats:
        from .figures import save_comparison_figure

        mid = result.reconstruction.shape[0] // 2
        images = {job.spec.sampler.kind: result.reconstruction[mid]}
        images.update({name: img[mid] for name, img in result.baselines.items()})
        reference = None if result.reference is None else result.reference[mid]
        mask = None if job.problem.mask is None else job.problem.mask.cpu().numpy()
        slice_metrics = None
        if reference is not None:
            from ..metrics import psnr, ssim

            maxval = float(result.reference.max())
            slice_metrics = {
                n: {
                    "psnr": psnr(reference[None], im[None], maxval),
                    "ssim": ssim(reference[None], im[None], maxval),
                }
                for n, im in images.items()
            }
        title = f"{job.spec.sampler.kind} on slice {mid}" + (f" of {volume.path.name}" if volume.path else "")
        title += " (panel numbers: this slice; record.json: the whole volume)"
        std = result.maps["std"][mid] if "std" in result.maps else None
        window = None
        if volume.modality == "ct":
            from ..io.hu import MU_WATER_PER_MM

            window = CT_WINDOW_HU, MU_WATER_PER_MM
        sinogram = None
        if volume.modality == "ct" and job.problem.y.ndim == 3:
            sinogram = job.problem.y[mid].detach().cpu().numpy()
        save_comparison_figure(out / "figure.png", images, reference, mask, slice_metrics, title,
                               std=(job.spec.sampler.kind, std) if std is not None else None,
                               hu_window=window, sinogram=sinogram)
        files.append(out / "figure.png")
        if ct_hu and result.reconstruction.shape[0] >= 3:  # a volume: its three planes
            from .montage import save_volume_montage

            affine = volume.affine if volume.affine is not None else np.eye(4)
            reference_hu = None if result.reference is None else _to_hu(result.reference)
            save_volume_montage(out / "montage.png", _to_hu(result.reconstruction), _spacing(affine), CT_WINDOW_HU,
                                f"{job.spec.sampler.kind}: axial, coronal and sagittal planes through the centre",
                                reference_hu)
            files.append(out / "montage.png")
    return files
