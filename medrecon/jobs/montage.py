"""The three orthogonal planes of a reconstructed CT volume (axial, coronal, sagittal through its centre) in a
stated HU window with a colorbar, each plane drawn with its physical aspect ratio."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_path

__all__ = ["save_volume_montage"]


def save_volume_montage(
    path: str | Path,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    window: tuple[float, float],
    title: str = "",
    reference: np.ndarray | None = None,
) -> None:
    """Write one PNG with the axial, coronal and sagittal planes through the volume's centre.

    Args:
        path: the PNG (written atomically).
        hu: the volume in HU, ``(slices, rows, cols)``.
        spacing: ``(dz, dy, dx)`` in mm (slice step, row and column spacing).
        window: the displayed HU range ``(lo, hi)``.
        title: figure title.
        reference: the same planes of a reference volume in a second row, if given.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    dz, dy, dx = (float(s) for s in spacing)
    volumes = [("reconstruction", hu)] + ([("reference", reference)] if reference is not None else [])
    fig, axes = plt.subplots(len(volumes), 3, figsize=(9.0, 3.2 * len(volumes)), squeeze=False)
    handle = None
    for row, (name, vol) in enumerate(volumes):
        s, h, w = vol.shape
        planes = [
            ("axial", vol[s // 2], dy / dx, "column", "row"),
            ("coronal", vol[:, h // 2, :], dz / dx, "column", "slice"),
            ("sagittal", vol[:, :, w // 2], dz / dy, "row", "slice"),
        ]
        for col, (plane, image, aspect, xlabel, ylabel) in enumerate(planes):
            ax = axes[row, col]
            handle = ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect,
                               interpolation="nearest", origin="upper" if plane == "axial" else "lower")
            ax.set_title(f"{name}: {plane}", fontsize=8)
            ax.set_xlabel(xlabel, fontsize=7)
            ax.set_ylabel(ylabel, fontsize=7)
            ax.tick_params(labelsize=6)
    fig.subplots_adjust(wspace=0.4)
    bar = fig.colorbar(handle, ax=list(axes.flat), fraction=0.02, pad=0.02)
    bar.set_label(f"HU (window {window[0]:g}..{window[1]:g})", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight")
    plt.close(fig)
