"""Beamformed RF frames with their geometry, from HDF5 or .npy, and written back with IQ.

HDF5 layout (``write_rf_h5`` writes it, ``read_rf`` reads it)::

    rf          (frames, samples, lines) float   beamformed RF, one scan line per element
    iq          (frames, samples / d, lines, 2)  IQ baseband (real, imaginary) (written, optional on input)
    <name>      (frames, samples, lines) float   optional: e.g. the clean tissue RF of hazy frames
    attrs       fs, fc (Hz), n_elements, pitch (m), c (m/s)

A ``.npy`` file holds the ``rf`` array only; its geometry comes from the job. Every disagreement between the file
and the stated probe, and every NaN or Inf sample, is an ``InputError`` naming the file and the field.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from operators.ultrasound import Probe

from ..errors import InputError
from ..files import atomic_path

__all__ = ["RFData", "read_rf", "write_rf_h5"]

GEOMETRY = ("fs", "fc", "n_elements", "pitch")


@dataclass
class RFData:
    """RF frames ``(frames, samples, lines)`` float32, the probe they were acquired with and, if asked for, a
    reference dataset of the same shape (the clean tissue of hazy frames, say)."""

    rf: np.ndarray
    probe: Probe
    reference: np.ndarray | None = None


def _check(path: Path, rf: np.ndarray, probe: Probe, stated: dict[str, float | None]) -> None:
    if rf.ndim == 2:
        raise InputError(path, f"expected (frames, samples, lines) RF, got one frame {rf.shape}; add a frame axis",
                         "rf")
    if rf.ndim != 3 or not np.issubdtype(rf.dtype, np.floating):
        raise InputError(path, f"expected real (frames, samples, lines) RF, got {rf.dtype} {rf.shape}", "rf")
    bad = ~np.isfinite(rf)
    if bad.any():
        frame = int(np.argwhere(bad)[0][0])
        raise InputError(path, f"{int(bad.sum())} NaN or Inf samples (first in frame {frame})", "rf")
    if rf.shape[-1] != probe.n_elements:
        raise InputError(path, f"{rf.shape[-1]} scan lines but the probe has {probe.n_elements} elements",
                         "n_elements")
    for name, want in stated.items():
        have = getattr(probe, name)
        if want is not None and not np.isclose(float(have), float(want), rtol=1e-6):
            raise InputError(path, f"the file says {name} = {have:g} but the job states {want:g}", name)
    if probe.fs < 2 * probe.fc:
        raise InputError(path, f"fs = {probe.fs:g} Hz is below twice fc = {probe.fc:g} Hz (aliased RF)", "fs")


def _reference(path: Path, hf, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in hf:
        raise InputError(path, f"no dataset named {name!r} (datasets: {', '.join(hf)})", name)
    ref = np.asarray(hf[name])
    if ref.shape != shape or not np.issubdtype(ref.dtype, np.floating):
        raise InputError(path, f"{name} is {ref.dtype} {ref.shape} but rf is float {shape}", name)
    if not np.isfinite(ref).all():
        raise InputError(path, f"{int((~np.isfinite(ref)).sum())} NaN or Inf samples", name)
    return ref.astype(np.float32)


def read_rf(path: str | Path, fs: float | None = None, fc: float | None = None, n_elements: int | None = None,
            pitch: float | None = None, c: float = 1540.0, reference: str | None = None) -> RFData:
    """RF frames and probe from ``path`` (``.h5``/``.hdf5`` with geometry attributes, or ``.npy`` with the
    geometry given here), plus the HDF5 dataset ``reference`` (as ``rf``: same shape, finite) if named. Stated
    values must agree with the file's (``InputError`` naming the field)."""
    path = Path(path)
    stated = {"fs": fs, "fc": fc, "n_elements": n_elements, "pitch": pitch}
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.suffix == ".npy":
        try:
            rf = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(path, f"not a readable .npy array ({err})") from None
        if reference is not None:
            raise InputError(path, f"a .npy file holds one array: no reference dataset {reference!r} (use HDF5)",
                             "reference")
        missing = [k for k in ("fs", "fc", "pitch") if stated[k] is None]
        if missing:
            raise InputError(path, f"a .npy file carries no geometry: set data.{missing[0]}", missing[0])
        probe = Probe(fc=float(fc), fs=float(fs), n_elements=int(n_elements or rf.shape[-1]), pitch=float(pitch), c=c)
        _check(path, rf, probe, {"n_elements": n_elements})
        return RFData(rf.astype(np.float32), probe)
    import h5py

    try:
        with h5py.File(path, "r") as hf:
            if "rf" not in hf:
                raise InputError(path, "no dataset named 'rf'", "rf")
            rf = np.asarray(hf["rf"])
            attrs = dict(hf.attrs)
            ref = None if reference is None else _reference(path, hf, reference, rf.shape)
    except OSError as err:
        raise InputError(path, f"not a readable HDF5 file ({err})") from None
    for key in GEOMETRY:
        if key not in attrs:
            raise InputError(path, "missing geometry attribute (fs, fc, n_elements, pitch are required)", key)
    probe = Probe(fc=float(attrs["fc"]), fs=float(attrs["fs"]), n_elements=int(attrs["n_elements"]),
                  pitch=float(attrs["pitch"]), c=float(attrs.get("c", c)))
    _check(path, rf, probe, stated)
    return RFData(rf.astype(np.float32), probe, ref)


def write_rf_h5(path: Path, rf: np.ndarray, probe: Probe, iq: np.ndarray | None = None,
                extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write RF ``(frames, samples, lines)`` (+ complex IQ as a trailing real/imaginary axis, + further float
    datasets) with the probe geometry as attributes, atomically."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as hf:
        hf.create_dataset("rf", data=np.asarray(rf, dtype=np.float32))
        if iq is not None:
            hf.create_dataset("iq", data=np.stack([iq.real, iq.imag], -1).astype(np.float32))
        for name, data in (extra or {}).items():
            hf.create_dataset(name, data=np.asarray(data, dtype=np.float32))
        for key in (*GEOMETRY, "c"):
            hf.attrs[key] = getattr(probe, key)
    return path
