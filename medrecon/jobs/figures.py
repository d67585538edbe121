"""PNG figures of a reconstruction: each method beside the reference, error maps and the sampling pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_path

__all__ = ["save_comparison_figure"]


def save_comparison_figure(
    path: str | Path,
    images: dict[str, np.ndarray],
    reference: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    metrics: dict[str, dict[str, float]] | None = None,
    title: str = "",
) -> None:
    """Write one PNG: a row of magnitude images (reference first), a row of |error| maps, and the mask.

    Args:
        path: the PNG to write (atomically).
        images: method name -> magnitude image ``(h, w)`` of one slice.
        reference: the reference magnitude ``(h, w)``, if known (adds error maps).
        mask: the sampling mask, ``(W,)`` columns or ``(H, W)``, shown in its own panel.
        metrics: method name -> {"psnr": ..., "ssim": ...} printed under each image.
        title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    columns = ([("reference", reference)] if reference is not None else []) + list(images.items())
    ncols = len(columns) + (1 if mask is not None else 0)
    nrows = 2 if reference is not None else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 3.0 * nrows), squeeze=False)
    vmax = float(np.percentile(reference if reference is not None else next(iter(images.values())), 99.5))
    for col, (name, img) in enumerate(columns):
        ax = axes[0, col]
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=vmax)
        label = name
        if metrics and name in metrics:
            label += "\n" + ", ".join(
                f"{k.upper()} {v:.3f}" if k == "ssim" else f"{k.upper()} {v:.2f}"
                for k, v in metrics[name].items()
                if k in ("psnr", "ssim")
            )
        ax.set_title(label, fontsize=8)
        if reference is not None:
            err = axes[1, col]
            if name == "reference":
                err.axis("off")
            else:
                err.imshow(np.abs(img - reference), cmap="magma", vmin=0.0, vmax=0.2 * vmax)
                err.set_xlabel(f"|error| {name}", fontsize=8)
    if mask is not None:
        ax = axes[0, ncols - 1]
        shown = np.broadcast_to(mask, (mask.shape[-1], mask.shape[-1])) if mask.ndim == 1 else mask
        ax.imshow(np.asarray(shown, dtype=float), cmap="gray", vmin=0, vmax=1, aspect="auto")
        ax.set_title(f"mask ({100 * float(np.mean(shown)):.0f}% sampled)", fontsize=8)
        if nrows == 2:
            axes[1, ncols - 1].axis("off")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
