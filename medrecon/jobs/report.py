"""Plain-text tables for the terminal."""

from __future__ import annotations

from typing import Any

__all__ = ["format_metrics_table"]


def format_metrics_table(
    metrics: dict[str, dict[str, float]], timings: dict[str, Any] | None = None, sampler: str | None = None
) -> str:
    """A fixed-width table ``method | PSNR (dB) | SSIM | NMSE | time (s)``.

    ``sampler`` names the row timed by ``timings["sampling_s"]`` and listed first; baselines are timed by
    ``timings["baselines_s"]`` and follow in the given order.
    """
    seconds: dict[str, float] = dict((timings or {}).get("baselines_s", {}))
    if sampler is not None and timings and "sampling_s" in timings:
        seconds[sampler] = timings["sampling_s"]
    order = ([sampler] if sampler in metrics else []) + [name for name in metrics if name != sampler]
    width = max(len("method"), *(len(m) for m in order))
    lines = [f"{'method':<{width}}  PSNR (dB)   SSIM     NMSE     time (s)"]
    lines.append("-" * len(lines[0]))
    for name in order:
        m, t = metrics[name], seconds.get(name)
        timing = f"{t:8.1f}" if t is not None else f"{'':>8}"
        lines.append(f"{name:<{width}}  {m['psnr']:9.2f}  {m['ssim']:6.4f}  {m['nmse']:7.4f}  {timing}")
    return "\n".join(lines)
