"""PNG figures of a reconstruction: each method beside the reference, error maps with their scale, the sampling
pattern or the sinogram, and for the SMC ensembles the posterior std beside the error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_path

__all__ = ["save_bmode_figure", "save_comparison_figure"]


def save_comparison_figure(
    path: str | Path,
    images: dict[str, np.ndarray],
    reference: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    metrics: dict[str, dict[str, float]] | None = None,
    title: str = "",
    std: tuple[str, np.ndarray] | None = None,
    hu_window: tuple[tuple[float, float], float] | None = None,
    sinogram: np.ndarray | None = None,
) -> None:
    """Write one PNG: a row of images (reference first), a row of |error| maps (one shared scale, with a
    colorbar), and the mask or sinogram.

    Args:
        path: the PNG to write (atomically).
        images: method name -> magnitude image ``(h, w)`` of one slice.
        reference: the reference magnitude ``(h, w)``, if known (adds error maps).
        mask: the sampling mask, ``(W,)`` columns or ``(H, W)``, shown in its own panel.
        metrics: method name -> {"psnr": ..., "ssim": ...} printed under each image.
        title: figure title.
        std: ``(method, std map (h, w))``: the posterior std of that method, shown beside its error on the error
            scale, with ``|error| / std`` below.
        hu_window: ``((lo, hi), mu_water)``: CT images are attenuation in 1/mm, shown in HU within ``lo..hi``.
        sinogram: the measured sinogram ``(views, detectors)`` of the slice, shown in its own panel.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    def shown(img: np.ndarray) -> np.ndarray:
        if hu_window is None:
            return img
        return 1000.0 * (np.asarray(img) / hu_window[1] - 1.0)

    columns = ([("reference", reference)] if reference is not None else []) + list(images.items())
    extra = [p for p in (("std", std), ("mask", mask), ("sinogram", sinogram)) if p[1] is not None]
    ncols = len(columns) + len(extra)
    nrows = 2 if reference is not None or std is not None else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.7 * ncols, 3.1 * nrows), squeeze=False)
    base = reference if reference is not None else next(iter(images.values()))
    if hu_window is None:
        vmin, vmax, unit = 0.0, float(np.percentile(base, 99.5)), "intensity"
    else:
        (vmin, vmax), unit = hu_window[0], "HU"
    err_max = 0.2 * float(np.percentile(base, 99.5))
    image_handle = err_handle = None
    for col, (name, img) in enumerate(columns):
        ax = axes[0, col]
        image_handle = ax.imshow(shown(img), cmap="gray", vmin=vmin, vmax=vmax)
        label = name
        if metrics and name in metrics:
            label += "\n" + ", ".join(
                f"{k.upper()} {v:.3f}" if k == "ssim" else f"{k.upper()} {v:.2f}"
                for k, v in metrics[name].items()
                if k in ("psnr", "ssim")
            )
        ax.set_title(label, fontsize=8)
        if nrows == 2:
            err = axes[1, col]
            if name == "reference" or reference is None:
                err.axis("off")
            else:
                err_handle = err.imshow(np.abs(img - reference), cmap="magma", vmin=0.0, vmax=err_max)
                err.set_xlabel(f"|error| {name}", fontsize=8)
    col = len(columns)
    for kind, item in extra:
        ax = axes[0, col]
        if kind == "std":
            method, smap = item
            err_handle = ax.imshow(smap, cmap="magma", vmin=0.0, vmax=err_max)
            ax.set_title(f"posterior std ({method})", fontsize=8)
            if reference is not None:
                ratio = np.abs(images[method] - reference) / np.maximum(smap, 1e-12)
                handle = axes[1, col].imshow(ratio, cmap="viridis", vmin=0.0, vmax=3.0)
                axes[1, col].set_xlabel("|error| / std", fontsize=8)
                fig.colorbar(handle, ax=axes[1, col], fraction=0.046, pad=0.02)
            elif nrows == 2:
                axes[1, col].axis("off")
        elif kind == "mask":
            shown_mask = np.broadcast_to(item, (item.shape[-1], item.shape[-1])) if item.ndim == 1 else item
            ax.imshow(np.asarray(shown_mask, dtype=float), cmap="gray", vmin=0, vmax=1, aspect="auto")
            ax.set_title(f"mask ({100 * float(np.mean(shown_mask)):.0f}% sampled)", fontsize=8)
            if nrows == 2:
                axes[1, col].axis("off")
        else:
            ax.imshow(item, cmap="gray", aspect="auto")
            ax.set_title(f"sinogram ({item.shape[0]} views)", fontsize=8)
            ax.set_xlabel("detector", fontsize=7)
            ax.set_ylabel("view", fontsize=7)
            if nrows == 2:
                axes[1, col].axis("off")
        col += 1
    if image_handle is not None:
        bar = fig.colorbar(image_handle, ax=list(axes[0, : len(columns)]), fraction=0.02, pad=0.01)
        bar.set_label(unit if hu_window is None else f"HU (window {vmin:g}..{vmax:g})", fontsize=7)
    if err_handle is not None and nrows == 2:
        bar = fig.colorbar(err_handle, ax=list(axes[1, : len(columns)]), fraction=0.02, pad=0.01)
        bar.set_label("|error|, std (image units)" if hu_window is None else "|error|, std (1/mm)", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)


def save_bmode_figure(path: str | Path, images: dict[str, np.ndarray], probe, dynamic_range_db: float,
                      title: str = "") -> None:
    """One PNG of B-mode frames ``(samples, lines)`` in dB (``operators.ultrasound.bmode``), side by side on one
    ``[-dynamic_range_db, 0]`` scale with a dB colorbar, axes in mm from the probe (``pitch``, ``dz``)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = len(images)
    samples, lines = next(iter(images.values())).shape
    extent = (-lines / 2 * probe.pitch * 1e3, lines / 2 * probe.pitch * 1e3, samples * probe.dz * 1e3, 0.0)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 0.8, 3.4), squeeze=False)
    handle = None
    for ax, (name, img) in zip(axes[0], images.items()):
        handle = ax.imshow(img, cmap="gray", vmin=-dynamic_range_db, vmax=0.0, extent=extent, aspect="equal")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("lateral (mm)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].set_ylabel("depth (mm)", fontsize=7)
    bar = fig.colorbar(handle, ax=list(axes[0]), fraction=0.03, pad=0.02)
    bar.set_label("dB", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)
