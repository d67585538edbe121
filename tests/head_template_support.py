"""An ellipsoid stand-in for the MNI152 head template (``medrecon.training.head_ct.HeadTemplate``), so the
synthetic head-CT and MR generators can be tested without loading nilearn's maps."""
from __future__ import annotations

import numpy as np

from medrecon.training import head_ct


def ellipsoid_template(grid: tuple[int, int, int], centre: tuple[float, float, float],
                       radii: tuple[float, float, float], ventricle_centre: tuple[float, float, float],
                       ventricle_radii: tuple[float, float, float], rim: float,
                       z_range: tuple[int, int]) -> head_ct.HeadTemplate:
    """A 1 mm ``grid`` with an ellipsoid "brain" (``centre``, ``radii`` in voxels): GM where the normalised radius
    exceeds ``rim``, WM inside it, CSF in an ellipsoid ventricle; the distance map outside the brain for both
    the brain and hull distances; ``z_range`` the slices a generator may cut."""
    from scipy.ndimage import distance_transform_edt

    x, y, z = np.meshgrid(*(np.arange(n) for n in grid), indexing="ij")

    def radius(c, r):
        return np.sqrt(((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2)

    r = radius(centre, radii)
    brain = r <= 1
    vent = radius(ventricle_centre, ventricle_radii) <= 1
    gm = (brain & (r > rim)).astype(np.float32)
    wm = (brain & (r <= rim) & ~vent).astype(np.float32)
    csf = (brain & vent).astype(np.float32)
    dist = distance_transform_edt(~brain).astype(np.float32)
    return head_ct.HeadTemplate(gm, wm, csf, dist, dist, z_range)
