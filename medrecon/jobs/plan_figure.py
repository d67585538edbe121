"""The report figure of ``medrecon plan-mask``: the planned masks beside the fixed one, the score trace of the
acquisition rounds, and the middle slice reconstructed with each, with error maps on one scale."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["save_plan_figure"]


def save_plan_figure(
    path: str | Path,
    mask: np.ndarray,
    fixed: np.ndarray,
    kind: str,
    rounds: list[list[dict]],
    recon: dict[str, np.ndarray],
    reference: np.ndarray | None,
    metrics: dict[str, dict[str, float]],
) -> None:
    """Write the PNG at ``path``.

    Args:
        mask: planned ``(S, L)`` or shared ``(1, L)`` bool.
        fixed: the job's own ``(L,)`` mask or views.
        kind: ``lines`` or ``views`` (axis labels).
        rounds: per planned chunk, its rounds (``step``, ``score_max``, ``score_mean``).
        recon: ``planned`` and ``fixed`` magnitudes ``(S, h, w)`` (may be empty).
        reference: ``(S, h, w)`` or None.
        metrics: per name, ``psnr`` and ``ssim`` of the whole volume.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ncols = max(3, 1 + len(recon))
    nrows = 1 + (1 if recon else 0) + (1 if recon and reference is not None else 0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 3.0 * nrows), squeeze=False)
    rows = np.concatenate([mask.astype(float), np.full((1, mask.shape[1]), 0.5), fixed[None].astype(float)])
    ax = axes[0, 0]
    ax.imshow(rows, cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_title(f"planned ({int(mask[0].sum())} {kind}) / fixed ({int(fixed.sum())})", fontsize=8)
    ax.set_xlabel("candidate", fontsize=7)
    ax.set_ylabel("slice (last row: fixed)", fontsize=7)
    ax = axes[0, 1]
    for k, chunk in enumerate(rounds):
        steps = [r["step"] for r in chunk]
        ax.plot(steps, [r["score_max"] for r in chunk], "-o", ms=2, label="best" if k == 0 else None, color="C0")
        ax.plot(steps, [r["score_mean"] for r in chunk], "--", label="mean" if k == 0 else None, color="C1")
    ax.set_xlabel("sampler step", fontsize=7)
    ax.set_ylabel("score (nats)", fontsize=7)
    ax.set_title("acquisition scores per round", fontsize=8)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=6)
    for ax in axes[0, 2:]:
        ax.axis("off")
    if recon:
        mid = next(iter(recon.values())).shape[0] // 2
        columns = ([("reference", reference[mid])] if reference is not None else [])
        columns += [(name, img[mid]) for name, img in recon.items()]
        top = float(np.percentile(columns[0][1], 99.5)) or 1.0
        handle = None
        for col, (name, img) in enumerate(columns):
            handle = axes[1, col].imshow(img, cmap="gray", vmin=0, vmax=top)
            m = metrics.get(name, {})
            label = f"{name}" + (f"\n{m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}" if m else "")
            axes[1, col].set_title(label, fontsize=8)
        fig.colorbar(handle, ax=list(axes[1, : len(columns)]), fraction=0.02, pad=0.01).set_label("intensity",
                                                                                                     fontsize=7)
        for ax in axes[1, len(columns):]:
            ax.axis("off")
        if reference is not None:
            errors = [(name, np.abs(img[mid] - reference[mid])) for name, img in recon.items()]
            vmax = max(float(np.percentile(e, 99.5)) for _, e in errors) or 1.0
            axes[2, 0].axis("off")
            for col, (name, err) in enumerate(errors, start=1):
                handle = axes[2, col].imshow(err, cmap="inferno", vmin=0, vmax=vmax)
                axes[2, col].set_title(f"|error| {name}", fontsize=8)
            fig.colorbar(handle, ax=list(axes[2, 1: 1 + len(errors)]), fraction=0.02, pad=0.01).set_label(
                "|error| (image units)", fontsize=7)
            for ax in axes[2, 1 + len(errors):]:
                ax.axis("off")
        for ax in axes[1:].flat:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.subplots_adjust(hspace=0.5)
    fig.savefig(path, dpi=100, format="png", bbox_inches="tight")
    plt.close(fig)
