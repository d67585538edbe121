"""What a job acquires, in one line and in the run record: the sampled k-space lines (MRI) or views (CT).

A random mask keeps each line independently, so its acceleration depends on ``run.seed`` (7 to 27 of 128 lines at
8x, centre fraction 0.04); the drawn value is what the metrics belong to, so ``check``, ``run``, the demo and
``record.json`` all state it.
"""
from __future__ import annotations

from typing import Any

__all__ = ["acquisition_summary", "describe_acquisition"]

DRIFT = 0.1  # a drawn acceleration this far (relative) from the nominal one gets a hint


def acquisition_summary(info: dict[str, Any]) -> dict[str, Any]:
    """The record's ``acquisition`` entry from a problem's ``info``: lines kept of the total, effective and
    nominal acceleration, centre lines (MRI); views and arc (CT)."""
    if info.get("modality") == "mri":
        lines, total = int(info["lines"]), int(info["lines_total"])
        return {
            "mask": info["mask"],
            "lines": lines,
            "lines_total": total,
            "center_lines": info["center_lines"],
            "acceleration": total / lines,
            "acceleration_nominal": info["acceleration_nominal"],
        }
    keys = ("geometry", "views", "arc_deg")
    return {k: info[k] for k in keys if k in info}


def describe_acquisition(info: dict[str, Any]) -> str:
    """One line: ``random mask: 14 of 128 lines (10 centre), effective acceleration 9.14x (nominal 8x)``, plus a
    hint when a random mask drew far from its nominal acceleration."""
    a = acquisition_summary(info)
    if "lines" not in a:
        return f"{a.get('geometry', 'CT')} beam: {a.get('views')} views over {a.get('arc_deg')} degrees"
    text = (
        f"{a['mask']} mask: {a['lines']} of {a['lines_total']} lines ({a['center_lines']} centre), effective "
        f"acceleration {a['acceleration']:.2f}x"
    )
    if a["mask"] == "file":
        return text + " (the file's own mask)"
    if a["mask"] == "planned":
        return text + " (a planned mask; lines counted in its fullest slice)"
    nominal = float(a["acceleration_nominal"])
    text += f" (nominal {nominal:g}x)"
    if a["mask"] == "random" and abs(a["acceleration"] - nominal) > DRIFT * nominal:
        text += (
            f"; random masks vary with run.seed, operator.mask = \"random_fixed\" keeps exactly "
            f"{round(a['lines_total'] / nominal)} lines"
        )
    return text
