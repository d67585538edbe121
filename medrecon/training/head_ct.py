"""Synthetic axial head-CT slices in HU from nilearn's MNI152 template and its tissue probability maps.

Anatomy (all at the template's 1 mm voxels, generated offline from the installed nilearn package):
  * brain: the skull-stripped MNI152 (2009a symmetric) T1 template gives the brain mask; its GM and WM probability
    maps give grey and white matter, CSF is the rest of the brain mask (ventricles, sulci) plus a thin
    subarachnoid layer outside it; each class gets a random HU per slice (GM 35-45, WM 25-32, CSF 0-15) mixed by
    the probabilities (partial volume).
  * skull and scalp: shells of the brain mask by 3D distance (so slices near the vertex cut the skull cap
    obliquely): CSF gap 0.5-3 mm, bone 3.5-10 mm (inner and outer cortical tables 700-1500 HU, a lower-density
    textured diploe 200-650 HU between them), scalp 3-9 mm at 20-60 HU (sometimes with a fat layer); all
    thicknesses vary smoothly around the head.
  * optional small structures: air cells / sinuses in the bone and scalp, calcifications (choroid plexus, pineal)
    in CSF-rich brain, a patient-support cradle behind the head.
  * geometry: a random axial position from the skull base to the vertex (linearly interpolated between template
    slices), random in-plane rotation (any angle), anisotropic zoom, shift, field of view 220-300 mm, a smooth
    elastic deformation; smooth soft-tissue texture and (correlated) white noise.
Rendered at 2x the output grid and area-downsampled, so ``(size, size)`` images are anti-aliased.

The held-out slices use seeds ``HEAD_CT_HELDOUT_SEEDS`` (training seeds are ``0..n-1``).

``python -m medrecon.training.head_ct --out DIR`` writes the CT head prior's training array (head slices mixed
with the ellipse phantoms of ``datasets.random_ct_phantom``, in the [0, 1] HU window) and its held-out array, and
the manifest ``data_manifests/prior_ct_head_train.json``. ``--n-forbild K`` / ``--n-xdesign K`` (default 0)
append K slices of the FORBILD head phantom (odl) / of xdesign's phantoms (``ct_phantoms``) and record their
packages, licences and counts in the manifest.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .datasets import CT_HELDOUT_SEEDS, CT_HU_WINDOW, IMAGE_SIZE, hu_to_unit, random_ct_phantom

__all__ = [
    "HEAD_CT_HELDOUT_SEEDS",
    "HEAD_CT_PHANTOM_SEED_OFFSET",
    "HeadTemplate",
    "ct_head_training_set",
    "head_ct_heldout_slices",
    "head_ct_slices",
    "head_template",
    "main",
    "random_head_ct",
]

HEAD_CT_HELDOUT_SEEDS = tuple(range(2_000_000, 2_000_032))
HEAD_CT_PHANTOM_SEED_OFFSET = 0  # ellipse phantoms of the mix use seeds offset + 0..n-1 (never the held-out ones)
PAD_MM = 24  # room around the brain for the CSF gap, skull and scalp
HULL_MM = 20.0  # radius of the closing that wraps the skull around the whole brain
AIR_HU = -1000.0
SOURCE_LABELS = {"forbild": "FORBILD phantom", "xdesign": "xdesign phantoms"}  # the optional phantom sources


@dataclass(frozen=True)
class HeadTemplate:
    """The template volumes on a common padded 1 mm grid ``(X, Y, Z)``: GM, WM and CSF probabilities in [0, 1]
    (zero outside the brain), the distances (mm) from the brain mask and from its closed hull (0 inside) and the
    usable axial range."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    dist: np.ndarray
    hull_dist: np.ndarray
    z_range: tuple[int, int]


@functools.lru_cache(maxsize=1)
def head_template() -> HeadTemplate:
    """The MNI152 tissue maps (nilearn, 1 mm) padded by ``PAD_MM`` with the 3D distance outside the brain."""
    from nilearn.datasets import load_mni152_gm_template, load_mni152_template, load_mni152_wm_template
    from scipy.ndimage import binary_closing, binary_fill_holes, distance_transform_edt

    t1 = np.asarray(load_mni152_template(resolution=1).get_fdata(), dtype=np.float32)
    gm = np.asarray(load_mni152_gm_template(resolution=1).get_fdata(), dtype=np.float32)
    wm = np.asarray(load_mni152_wm_template(resolution=1).get_fdata(), dtype=np.float32)
    pad = [(PAD_MM, PAD_MM)] * 3
    brain = np.pad((t1 > 0.05) | (gm + wm > 0.2), pad)
    brain = binary_fill_holes(binary_closing(brain, np.ones((3, 3, 3)), iterations=2))
    gm, wm = np.pad(gm, pad) * brain, np.pad(wm, pad) * brain
    total = gm + wm
    over = total > 1
    gm[over] /= total[over]
    wm[over] /= total[over]
    csf = np.where(brain, 1 - gm - wm, 0).astype(np.float32)
    dist = distance_transform_edt(~brain).astype(np.float32)
    hull = distance_transform_edt(dist <= HULL_MM) > HULL_MM  # closing by a ball: bridges the skull base
    hull_dist = distance_transform_edt(~hull).astype(np.float32)
    brain_area = brain.sum(axis=(0, 1))
    head_area = (hull_dist <= 4).sum(axis=(0, 1))  # 4 mm: the thinnest CSF gap + bone + scalp
    z_lo = int(np.argmax(brain_area > 2500))  # skull base: where the brain section is 25 cm^2 or more
    z_hi = int(len(head_area) - np.argmax(head_area[::-1] > 2500))  # vertex: the skull cap's last 25 cm^2
    return HeadTemplate(gm.astype(np.float32), wm.astype(np.float32), csf, dist, hull_dist, (z_lo, z_hi))


def _plane(vol: np.ndarray, z: float) -> np.ndarray:
    """Axial plane at fractional ``z`` (linear), as ``(Y, X)`` with anterior up (row 0)."""
    k = int(np.floor(z))
    f = z - k
    p = (1 - f) * vol[:, :, k] + f * vol[:, :, min(k + 1, vol.shape[2] - 1)]
    return np.ascontiguousarray(p.T[::-1])


def _smooth(rng: np.random.Generator, shape: tuple[int, int], width: float) -> np.ndarray:
    """Unit-std Gaussian random field of correlation ``width`` pixels (computed at low resolution)."""
    from scipy.ndimage import gaussian_filter, zoom

    step = max(1, int(width // 3))
    small = gaussian_filter(rng.standard_normal((shape[0] // step + 2, shape[1] // step + 2)), width / step)
    f = zoom(small, step, order=1)[:shape[0], :shape[1]]
    return f / (f.std() + 1e-12)


def _ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float, theta: float) -> np.ndarray:
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    c, s = np.cos(theta), np.sin(theta)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def _random_point(rng: np.random.Generator, mask: np.ndarray) -> tuple[int, int] | None:
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    k = int(idx[rng.integers(idx.size)])
    return k // mask.shape[1], k % mask.shape[1]


def _brain_hu(rng: np.random.Generator, gm: np.ndarray, wm: np.ndarray, csf: np.ndarray) -> np.ndarray:
    """Partial-volume mix of GM / WM / CSF at random class HU, with a faint smooth texture."""
    hu = gm * rng.uniform(35, 45) + wm * rng.uniform(25, 32) + csf * rng.uniform(0, 15)
    return hu + (gm + wm) * rng.uniform(0.5, 3) * _smooth(rng, gm.shape, rng.uniform(2, 6))


def _skull_and_scalp(rng: np.random.Generator, dist: np.ndarray, hu: np.ndarray) -> dict[str, np.ndarray]:
    """Fill the CSF gap, bone (tables + diploe) and scalp shells of ``dist`` into ``hu`` (in place); the masks."""
    shape = dist.shape
    vary = _smooth(rng, shape, rng.uniform(15, 40))
    gap = rng.uniform(0.5, 3.0)
    bone_t = np.clip(rng.uniform(3.5, 10.0) * (1 + rng.uniform(0.1, 0.35) * vary), 2.0, None)
    scalp_t = np.clip(rng.uniform(3.0, 9.0) * (1 + 0.3 * _smooth(rng, shape, 30)), 1.5, None)
    outside = dist > 0
    gap_m = outside & (dist <= gap)
    bone_m = (dist > gap) & (dist <= gap + bone_t)
    scalp_m = (dist > gap + bone_t) & (dist <= gap + bone_t + scalp_t)
    hu[gap_m] = rng.uniform(0, 15)
    depth = np.clip((dist - gap) / bone_t, 0, 1)  # 0 at the inner table, 1 at the outer table
    table = rng.uniform(0.18, 0.35)
    cortical = rng.uniform(700, 1500) + rng.uniform(20, 80) * _smooth(rng, shape, 2)
    diploe = rng.uniform(200, 650) + rng.uniform(60, 180) * _smooth(rng, shape, rng.uniform(0.7, 1.5))
    mid = 1 - np.clip(np.minimum(depth, 1 - depth) / table - 0.5, 0, 1)  # 1 on the tables, 0 mid-diploe
    bone = np.where(bone_t > 4.0, mid * cortical + (1 - mid) * diploe, cortical)
    hu[bone_m] = bone[bone_m]
    scalp = rng.uniform(20, 60) + rng.uniform(2, 8) * _smooth(rng, shape, 3)
    hu[scalp_m] = scalp[scalp_m]
    if rng.random() < 0.3:  # subcutaneous fat in the outer part of the scalp
        fat = scalp_m & (dist > gap + bone_t + scalp_t * rng.uniform(0.4, 0.7))
        hu[fat] = rng.uniform(-120, -60)
    return {"gap": gap_m, "bone": bone_m, "scalp": scalp_m, "head": dist <= gap + bone_t + scalp_t}


def _skull_base(rng: np.random.Generator, dist: np.ndarray, inner: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """Fill the part of the hull outside the brain (skull base, deep fissures): CSF within 1-4 mm of the brain,
    beyond it a random partition into textured bone (300-1300 HU), soft tissue (20-60 HU) and air spaces;
    returns the bone mask."""
    near = inner & (dist <= rng.uniform(1, 4))
    hu[near] = rng.uniform(0, 15)
    rest = inner & ~near
    part = _smooth(rng, dist.shape, rng.uniform(2, 6))
    lo, hi = np.sort(rng.uniform(-1.5, 0.5, size=2))
    bone_m = rest & (part > hi)
    bone = rng.uniform(300, 1300) + rng.uniform(80, 250) * _smooth(rng, dist.shape, rng.uniform(0.8, 2))
    hu[bone_m] = bone[bone_m]
    soft = rest & (part <= hi) & (part > lo)
    hu[soft] = rng.uniform(20, 60)
    air = rest & (part <= lo)
    hu[air] = rng.uniform(-1000, -900) if rng.random() < 0.6 else rng.uniform(20, 60)
    return bone_m


def _convex_shell(core: np.ndarray, hull_dist: np.ndarray) -> np.ndarray:
    """Distance (mm) outside the 2D convex hull of ``core`` (no farther than ``hull_dist``), 0 inside it."""
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import convex_hull_image

    conv = convex_hull_image(core)
    return np.where(conv, 0.0, np.minimum(hull_dist, distance_transform_edt(~conv)))


def _air_cells(rng: np.random.Generator, hu: np.ndarray, masks: dict[str, np.ndarray]) -> None:
    """Sinus / mastoid air cells: small air ellipses in the bone and scalp, each with a thin bone rim."""
    from scipy.ndimage import binary_dilation

    where = masks["bone"] | masks["scalp"] | masks["base"]
    for _ in range(rng.integers(1, 6)):
        p = _random_point(rng, where)
        if p is None:
            return
        r = rng.uniform(2, 10)
        cell = _ellipse(hu.shape, p[0], p[1], r * rng.uniform(0.5, 1), r, rng.uniform(0, np.pi))
        rim = binary_dilation(cell, iterations=int(rng.integers(1, 3))) & ~cell
        hu[rim & where] = rng.uniform(500, 1200)
        hu[cell & where] = rng.uniform(-1000, -850)


def _calcifications(rng: np.random.Generator, hu: np.ndarray, csf: np.ndarray) -> None:
    """1-3 small dense dots (choroid plexus, pineal) in CSF-rich brain."""
    for _ in range(rng.integers(1, 4)):
        p = _random_point(rng, csf > 0.6)
        if p is None:
            return
        r = rng.uniform(1.0, 2.5)
        hu[_ellipse(hu.shape, p[0], p[1], r, r * rng.uniform(0.6, 1.4), rng.uniform(0, np.pi))] = rng.uniform(
            100, 500)


def _support(rng: np.random.Generator, hu: np.ndarray, head: np.ndarray) -> None:
    """A curved patient-support cradle behind the head (posterior = bottom rows): a thin arc of plastic."""
    if not head.any():
        return
    ys, xs = np.nonzero(head)
    cy, cx = ys.mean(), xs.mean()
    radius = 0.5 * (ys.max() - ys.min()) + rng.uniform(4, 25)
    yy, xx = np.ogrid[:hu.shape[0], :hu.shape[1]]
    r = np.hypot(yy - cy, xx - cx)
    ang = np.arctan2(yy - cy, xx - cx)  # +pi/2 points to the bottom rows
    half = np.radians(rng.uniform(30, 80))
    arc = (np.abs(r - radius) <= rng.uniform(1.0, 2.5)) & (np.abs(ang - np.pi / 2) <= half) & ~head
    hu[arc] = rng.uniform(-300, 300)


def _warp(rng: np.random.Generator, hu: np.ndarray, head: np.ndarray, n: int,
          spacing: float | None = None) -> np.ndarray:
    """Resample the 1 mm canvas onto an ``(n, n)`` grid of ``spacing`` mm (default: a random FOV of 220-300 mm):
    rotation, anisotropic zoom, shift and a smooth elastic displacement; air outside."""
    from scipy.ndimage import map_coordinates

    ys, xs = np.nonzero(head) if head.any() else (np.array([head.shape[0] / 2]), np.array([head.shape[1] / 2]))
    cy, cx = ys.mean() + rng.uniform(-12, 12), xs.mean() + rng.uniform(-12, 12)
    fov_spacing = rng.uniform(220, 300) / n  # mm per output pixel
    spacing = fov_spacing if spacing is None else spacing
    theta = rng.uniform(-np.pi, np.pi)
    sy, sx = rng.uniform(0.85, 1.15, size=2)
    g = (np.arange(n) - (n - 1) / 2) * spacing
    v, u = np.meshgrid(g, g, indexing="ij")
    c, s = np.cos(theta), np.sin(theta)
    y = (c * v - s * u) / sy
    x = (s * v + c * u) / sx
    amp = rng.uniform(0, 5)  # mm
    width = n * rng.uniform(0.08, 0.2)
    y = y + amp * _smooth(rng, (n, n), width)
    x = x + amp * _smooth(rng, (n, n), width)
    return map_coordinates(hu, [y + cy, x + cx], order=1, mode="constant", cval=AIR_HU)


def random_head_ct(seed: int, size: int = IMAGE_SIZE, spacing_mm: tuple[float, float] | None = None) -> np.ndarray:
    """One synthetic axial head-CT slice in HU, ``(size, size)`` float32 (deterministic in ``seed``).

    ``spacing_mm = (lo, hi)``: the pixel spacing is drawn log-uniformly in ``[lo, hi]`` mm whatever the grid (a
    512x512 scanner slice has about 0.45 mm pixels); without it the field of view is 220-300 mm across the grid.
    """
    from scipy.ndimage import gaussian_filter

    tpl = head_template()
    rng = np.random.default_rng([seed, 152])
    spacing = None
    if spacing_mm is not None:
        lo, hi = (float(v) for v in spacing_mm)
        if not 0 < lo <= hi:
            raise ValueError(f"spacing_mm must satisfy 0 < lo <= hi, got {spacing_mm}")
        spacing = float(np.exp(np.random.default_rng([seed, 153]).uniform(np.log(lo), np.log(hi)))) / 2
    z = rng.uniform(*tpl.z_range)
    gm, wm, csf, dist, hull_dist = (_plane(v, z) for v in (tpl.gm, tpl.wm, tpl.csf, tpl.dist, tpl.hull_dist))
    hu = np.full(dist.shape, AIR_HU, dtype=np.float64)
    inside = dist <= 0
    hu[inside] = _brain_hu(rng, gm, wm, csf)[inside]
    if rng.random() < 0.8 and (hull_dist <= 0).any():  # skull base: wrap the skull round the convex hull of the section
        hull_dist = _convex_shell(hull_dist <= 0, hull_dist)
    masks = _skull_and_scalp(rng, hull_dist, hu)
    masks["base"] = _skull_base(rng, dist, (hull_dist <= 0) & ~inside, hu)
    if rng.random() < 0.5:
        _air_cells(rng, hu, masks)
    if rng.random() < 0.3:
        _calcifications(rng, hu, np.where(inside, csf, 0))
    if rng.random() < 0.4:
        _support(rng, hu, masks["head"])
    out = _warp(rng, hu, masks["head"], 2 * size, spacing).reshape(size, 2, size, 2).mean(axis=(1, 3))
    if rng.random() < 0.8:
        noise = rng.standard_normal(out.shape)
        if rng.random() < 0.5:
            noise = gaussian_filter(noise, rng.uniform(0.5, 1.0))
            noise /= noise.std() + 1e-12
        out = out + rng.uniform(1, 8) * noise
    return out.astype(np.float32)


def head_ct_slices(seeds: range | list[int] | tuple[int, ...], size: int = IMAGE_SIZE,
                   spacing_mm: tuple[float, float] | None = None) -> np.ndarray:
    """``random_head_ct`` for each seed -> ``(len(seeds), size, size)`` float32 HU."""
    if not len(seeds):
        return np.zeros((0, size, size), np.float32)
    return np.stack([random_head_ct(int(s), size, spacing_mm) for s in seeds])


def head_ct_heldout_slices(size: int = IMAGE_SIZE, spacing_mm: tuple[float, float] | None = None) -> np.ndarray:
    """Held-out synthetic head CT in [0, 1] (HU window): seeds ``HEAD_CT_HELDOUT_SEEDS`` -> ``(32, size, size)``."""
    return hu_to_unit(head_ct_slices(HEAD_CT_HELDOUT_SEEDS, size, spacing_mm))


def ct_head_training_set(n_head: int, n_phantom: int, size: int = IMAGE_SIZE,
                         spacing_mm: tuple[float, float] | None = None, n_forbild: int = 0,
                         n_xdesign: int = 0) -> tuple[np.ndarray, dict]:
    """The CT head prior's training array ``(n_head + n_phantom + n_forbild + n_xdesign, size, size)`` float32 in
    [0, 1]: synthetic head slices (seeds ``0..n_head-1``), ellipse phantoms (seeds ``0..n_phantom-1``), then
    FORBILD and xdesign phantom slices (``ct_phantoms``, seeds ``0..n-1`` of their own random streams; none by
    default), and its provenance record."""
    if n_head > HEAD_CT_HELDOUT_SEEDS[0] or n_phantom > CT_HELDOUT_SEEDS[0]:
        raise ValueError("the training seeds would overlap the held-out seeds")
    if min(n_forbild, n_xdesign) < 0 or max(n_forbild, n_xdesign) > HEAD_CT_HELDOUT_SEEDS[0]:
        raise ValueError(f"n_forbild and n_xdesign must lie in 0..{HEAD_CT_HELDOUT_SEEDS[0]}")
    head = hu_to_unit(head_ct_slices(range(n_head), size, spacing_mm))
    phantoms = [hu_to_unit(random_ct_phantom(HEAD_CT_PHANTOM_SEED_OFFSET + s, size)) for s in range(n_phantom)]
    arr = np.concatenate([head, np.stack(phantoms) if phantoms else np.zeros((0, size, size), np.float32)])
    extra = _phantom_source_slices(n_forbild, n_xdesign, size, spacing_mm)
    if extra:
        arr = np.concatenate([arr.astype(np.float32)] + [a for a, _ in extra.values()])
    record = {
        "sources": [("synthetic head CT from the nilearn MNI152 template and GM/WM maps "
                     "(medrecon.training.head_ct.random_head_ct)"),
                    "random ellipse anatomy phantoms (medrecon.training.datasets.random_ct_phantom)"],
        "hu_window": list(CT_HU_WINDOW),
        "mapping": "unit = clip((HU + 1000) / 2000, 0, 1)",
        "head_seeds": [0, n_head],
        "phantom_seeds": [HEAD_CT_PHANTOM_SEED_OFFSET, HEAD_CT_PHANTOM_SEED_OFFSET + n_phantom],
        "order": "head slices first, then phantoms",
        "heldout_head_seeds": [HEAD_CT_HELDOUT_SEEDS[0], HEAD_CT_HELDOUT_SEEDS[-1] + 1],
        "heldout_phantom_seeds": [CT_HELDOUT_SEEDS[0], CT_HELDOUT_SEEDS[-1] + 1],
        "pixel_spacing_mm": (None if spacing_mm is None else [float(spacing_mm[0]), float(spacing_mm[1])]),
        "real_images": "none",
    }
    for name, (slices, description) in extra.items():  # keys only when asked for: the default record is unchanged
        record["sources"].append(description)
        record[f"{name}_seeds"] = [0, len(slices)]
    if extra:
        record["order"] = "head slices, then phantoms" + "".join(f", then {name} slices" for name in extra)
    return arr.astype(np.float32), record


def _phantom_source_slices(n_forbild: int, n_xdesign: int, size: int,
                           spacing_mm: tuple[float, float] | None) -> dict[str, tuple[np.ndarray, str]]:
    """``{source: (slices in [0, 1], description)}`` for the FORBILD / xdesign sources asked for (count > 0)."""
    from . import ct_phantoms

    out = {}
    if n_forbild > 0:
        out["forbild"] = (ct_phantoms.forbild_slices(range(n_forbild), size, spacing_mm),
                          "FORBILD head phantom (odl), density read as attenuation relative to water, HU = "
                          "1000 (rho - 1) jittered per slice (medrecon.training.ct_phantoms.random_forbild_hu)")
    if n_xdesign > 0:
        out["xdesign"] = (ct_phantoms.xdesign_slices(range(n_xdesign), size, spacing_mm),
                          "xdesign phantoms (" + ", ".join(ct_phantoms.XDESIGN_KINDS) + "; cycling with the "
                          "seed) mapped to HU (medrecon.training.ct_phantoms.random_xdesign_hu)")
    return out


def _phantom_sources_manifest(counts: dict[str, int]) -> dict[str, dict]:
    """Package, version, licence (read from the package metadata), count and seeds of each extra source used."""
    from . import ct_phantoms

    return {name: {**ct_phantoms.package_record(name), "count": n, "seeds": [0, n],
                   "function": f"medrecon.training.ct_phantoms.random_{name}_hu"}
            for name, n in counts.items() if n > 0}


def main(argv: list[str] | None = None) -> int:
    """Write ``ct_head_train.npy`` / ``ct_head_heldout.npy`` (float16) and ``prior_ct_head_train.json``."""
    from ..files import atomic_path
    from .prepare import _save, _versions

    p = argparse.ArgumentParser(prog="python -m medrecon.training.head_ct", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory for the .npy arrays")
    p.add_argument("--manifests", default="data_manifests", help="directory for the manifest")
    p.add_argument("--n-head", type=int, default=2100, help="synthetic head slices")
    p.add_argument("--n-phantom", type=int, default=900, help="ellipse phantoms")
    p.add_argument("--size", type=int, default=IMAGE_SIZE, help="image side in pixels")
    p.add_argument("--spacing", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="pixel spacing range in mm (writes ct_head_native_*.npy and prior_ct_head_native_train.json)")
    p.add_argument("--n-forbild", type=int, default=0,
                   help="FORBILD head phantom slices (odl; appended after the ellipse phantoms)")
    p.add_argument("--n-xdesign", type=int, default=0, help="xdesign phantom slices (appended last)")
    a = p.parse_args(argv)
    if a.spacing is not None and not 0 < a.spacing[0] <= a.spacing[1]:
        p.error("--spacing needs 0 < LO <= HI")
    if a.n_forbild < 0 or a.n_xdesign < 0:
        p.error("--n-forbild and --n-xdesign must be >= 0")
    spacing = None if a.spacing is None else (a.spacing[0], a.spacing[1])
    stem = "ct_head" if spacing is None else "ct_head_native"
    extra_counts = {"forbild": a.n_forbild, "xdesign": a.n_xdesign}
    flags = "".join(f" --n-{name} {n}" for name, n in extra_counts.items() if n > 0) + (
        "" if a.size == IMAGE_SIZE else f" --size {a.size}") + (
        "" if spacing is None else f" --spacing {spacing[0]:g} {spacing[1]:g}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    arr, record = ct_head_training_set(a.n_head, a.n_phantom, a.size, spacing, a.n_forbild, a.n_xdesign)
    sources = _phantom_sources_manifest(extra_counts)  # empty by default: the manifest is then as before
    manifest = {
        "name": f"prior_{stem}_train", "modality": "ct", "image_size": a.size,
        "licence": "synthetic (generated); MNI152 template: see nilearn (ICBM 2009 licence, free for research with "
                   "attribution)" + "".join(f"; {SOURCE_LABELS[name]}: {rec['package']} {rec['version']} "
                                            f"({rec['licence']})" for name, rec in sources.items()),
        "generator": "medrecon.training.head_ct (python -m medrecon.training.head_ct --out DIR "
                     f"--n-head {a.n_head} --n-phantom {a.n_phantom}{flags})",
        "counts": {"head": a.n_head, "phantom": a.n_phantom, **{name: rec["count"] for name, rec in sources.items()}},
        "train": _save(out / f"{stem}_train.npy", arr),
        "heldout": _save(out / f"{stem}_heldout.npy", head_ct_heldout_slices(a.size, spacing)),
        "versions": _versions(["nilearn", "scipy", "numpy", "medrecon", *(rec["package"] for rec in sources.values())]),
        "selection": record,
    }
    if sources:
        manifest["phantom_sources"] = sources
    Path(a.manifests).mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(a.manifests) / f"prior_{stem}_train.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"train {manifest['train']['shape']} {manifest['train']['sha256']}; heldout {manifest['heldout']['shape']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
