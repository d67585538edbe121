"""CT acquisition geometries (2D parallel and fan beam) and the rays they define, in millimetres.

Image frame: the image ``x[row, col]`` of shape ``(H, W)`` is centred on the isocentre; pixel ``(row, col)`` sits at
``x = (col - (W - 1) / 2) * pixel_size`` (rightwards) and ``y = ((H - 1) / 2 - row) * pixel_size`` (upwards).
A view at angle ``theta`` has detector axis ``u = (cos theta, sin theta)`` and ray direction
``e = (-sin theta, cos theta)``, so a parallel-beam ray at detector coordinate ``s`` is ``{x . u = s}``: the
convention of scikit-image's ``radon`` (``theta = 0`` integrates along the columns). Fan-beam sources sit at
``-source_distance * e`` and the detector centre at ``(detector_distance - source_distance) * e``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "FanBeamGeometry",
    "Geometry",
    "ParallelBeamGeometry",
    "default_n_det",
    "limited_angle_angles",
    "sparse_view_angles",
]


def _size2(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    h, w = (int(v) for v in image_size)
    return h, w


@dataclass(frozen=True)
class ParallelBeamGeometry:
    """2D parallel beam.

    Attributes:
        image_size: ``(H, W)`` pixels.
        angles_deg: view angles in degrees (any list: full, sparse, limited).
        n_det: detector cells.
        det_spacing: detector cell width in mm.
        pixel_size: square pixel width in mm.
        det_offset: shift of the detector centre along ``u`` in mm.
    """

    image_size: tuple[int, int]
    angles_deg: tuple[float, ...]
    n_det: int
    det_spacing: float = 1.0
    pixel_size: float = 1.0
    det_offset: float = 0.0

    @property
    def n_views(self) -> int:
        return len(self.angles_deg)

    def det_coords(self) -> np.ndarray:
        """Detector cell centres along ``u`` in mm, shape ``(n_det,)``."""
        return (np.arange(self.n_det) - (self.n_det - 1) / 2) * self.det_spacing + self.det_offset

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Points on each ray and unit directions, each ``(n_views * n_det, 2)`` (view-major, float64, mm)."""
        th = np.deg2rad(np.asarray(self.angles_deg, dtype=np.float64))[:, None]
        s = self.det_coords()[None, :]
        u = np.stack(np.broadcast_arrays(np.cos(th), np.sin(th)), -1)
        e = np.stack(np.broadcast_arrays(-np.sin(th), np.cos(th)), -1)
        points = s[..., None] * u
        dirs = np.broadcast_to(e, points.shape)
        return points.reshape(-1, 2), np.ascontiguousarray(dirs).reshape(-1, 2)


@dataclass(frozen=True)
class FanBeamGeometry:
    """2D fan beam with an equiangular (curved, centred on the source) or flat detector.

    Attributes:
        image_size: ``(H, W)`` pixels.
        angles_deg: source angles in degrees (full scan: 360 degrees).
        n_det: detector cells.
        source_distance: source to isocentre in mm.
        detector_distance: source to detector (centre) in mm.
        detector: ``"equiangular"`` or ``"flat"``.
        det_spacing: detector cell width in mm at the detector (arc length for the equiangular detector).
        pixel_size: square pixel width in mm.
        det_offset: shift of the detector centre in mm (arc length for the equiangular detector).
    """

    image_size: tuple[int, int]
    angles_deg: tuple[float, ...]
    n_det: int
    source_distance: float
    detector_distance: float
    detector: Literal["equiangular", "flat"] = "equiangular"
    det_spacing: float = 1.0
    pixel_size: float = 1.0
    det_offset: float = 0.0

    def __post_init__(self) -> None:
        if self.detector not in ("equiangular", "flat"):
            raise ValueError(f"detector must be 'equiangular' or 'flat', got {self.detector!r}")
        if not 0 < self.source_distance < self.detector_distance:
            raise ValueError("need 0 < source_distance < detector_distance")
        radius = 0.5 * math.hypot(*self.image_size) * self.pixel_size
        if radius >= self.source_distance:
            raise ValueError(f"the source (at {self.source_distance} mm) must lie outside the image (radius "
                             f"{radius:.1f} mm)")

    @property
    def n_views(self) -> int:
        return len(self.angles_deg)

    def det_coords(self) -> np.ndarray:
        """Detector cell centres in mm along the detector (arc length when equiangular), shape ``(n_det,)``."""
        return (np.arange(self.n_det) - (self.n_det - 1) / 2) * self.det_spacing + self.det_offset

    def fan_angles(self) -> np.ndarray:
        """Angle of each cell's ray to the central ray in radians, shape ``(n_det,)``."""
        c = self.det_coords()
        if self.detector == "equiangular":
            return c / self.detector_distance
        return np.arctan2(c, self.detector_distance)

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Source position of each ray and unit directions, each ``(n_views * n_det, 2)`` (view-major, mm)."""
        th = np.deg2rad(np.asarray(self.angles_deg, dtype=np.float64))[:, None]
        gamma = self.fan_angles()[None, :]
        src = -self.source_distance * np.stack([-np.sin(th), np.cos(th)], -1)
        src = np.broadcast_to(src, (th.shape[0], gamma.shape[1], 2))
        # central direction e = (-sin th, cos th) rotated by the fan angle towards +u
        ang = th - gamma
        dirs = np.stack([-np.sin(ang), np.cos(ang)], -1)
        return np.ascontiguousarray(src).reshape(-1, 2), dirs.reshape(-1, 2)


Geometry = ParallelBeamGeometry | FanBeamGeometry


def default_n_det(image_size: int | Sequence[int], det_spacing: float = 1.0, pixel_size: float = 1.0,
                  source_distance: float | None = None, detector_distance: float | None = None,
                  detector: str = "equiangular") -> int:
    """Detector cells that cover the image's circumscribed circle (``ceil(sqrt(2) N)`` for a square parallel case)."""
    h, w = _size2(image_size)
    radius = 0.5 * math.hypot(h, w) * pixel_size
    if source_distance is None:
        return math.ceil(2 * radius / det_spacing - 1e-9)
    assert detector_distance is not None
    half_fan = math.asin(min(radius / source_distance, 1.0))
    if detector == "equiangular":
        extent = 2 * half_fan * detector_distance
    else:
        extent = 2 * detector_distance * math.tan(half_fan)
    return math.ceil(extent / det_spacing - 1e-9) + 1


def sparse_view_angles(n_views: int, arc_deg: float = 180.0) -> tuple[float, ...]:
    """``n_views`` angles evenly spaced over ``[0, arc_deg)`` in degrees (360 for fan beam full scans)."""
    if n_views < 1:
        raise ValueError("n_views must be >= 1")
    return tuple(float(a) for a in np.arange(n_views) * (arc_deg / n_views))


def limited_angle_angles(start_deg: float, stop_deg: float, step_deg: float = 1.0) -> tuple[float, ...]:
    """Angles ``start, start + step, ...`` below ``stop`` in degrees; ``limited_angle_angles(0, 120)`` is 0..119."""
    if step_deg <= 0 or stop_deg <= start_deg:
        raise ValueError("need step_deg > 0 and stop_deg > start_deg")
    n = math.ceil((stop_deg - start_deg) / step_deg - 1e-9)
    return tuple(float(start_deg + i * step_deg) for i in range(n))
