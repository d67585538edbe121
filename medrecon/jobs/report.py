"""Plain-text tables for the terminal: metrics per method, planned work."""

from __future__ import annotations

from typing import Any

__all__ = ["format_metrics_table"]


def format_metrics_table(metrics: dict[str, dict[str, float]], timings: dict[str, Any] | None = None) -> str:
    """A fixed-width table ``method | PSNR (dB) | SSIM | NMSE | time (s)`` (rows in the given order)."""
    seconds: dict[str, float] = {}
    if timings:
        seconds.update(timings.get("baselines_s", {}))
        if "sampling_s" in timings:
            seconds[next(iter(metrics))] = timings["sampling_s"]
    width = max(len("method"), *(len(m) for m in metrics))
    lines = [f"{'method':<{width}}  PSNR (dB)   SSIM     NMSE     time (s)"]
    lines.append("-" * len(lines[0]))
    for name, m in metrics.items():
        t = seconds.get(name)
        lines.append(
            f"{name:<{width}}  {m['psnr']:9.2f}  {m['ssim']:6.4f}  {m['nmse']:7.4f}  "
            + (f"{t:8.1f}" if t is not None else f"{'':>8}")
        )
    return "\n".join(lines)
