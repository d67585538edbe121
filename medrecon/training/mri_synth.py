"""Synthetic-contrast axial MR magnitude slices from nilearn's MNI152 template and its tissue probability maps.

The MRI counterpart of ``head_ct``: the same template planes (``head_ct.head_template``: the MNI152 2009a GM, WM
and CSF probabilities and the 3D distances outside the brain, 1 mm voxels, from the installed nilearn package),
rendered with random tissue intensities in the style of SynthSeg's contrast augmentation, so a prior trained on them
sees T1-like, T2-like, FLAIR/PD-like and arbitrary contrasts rather than one template's.

Per slice (all random, deterministic in the seed):
  * anatomy: an axial position from the skull base to the vertex (linearly interpolated between template slices);
    seven classes ``MR_SYNTH_CLASSES``: background air, CSF, GM, WM (partial volume from the probability maps),
    skull bone (inner and outer tables with fatty diploic marrow between them), scalp soft tissue (galea, muscle,
    skin) and a subcutaneous fat layer; shells of the brain (or, near the skull base, of its convex hull) by 3D
    distance, their thicknesses varying smoothly around the head (CSF gap 0.5-3.5 mm, bone 3.5-9 mm, scalp 3-10
    mm); below the brain's hull a random partition into bone, soft tissue, fat and air spaces (sinuses).
  * contrast: one intensity per class, drawn independently from a T1-like (WM > GM > CSF, bright fat), T2-like
    (CSF > GM > WM), FLAIR-like (dark CSF, GM > WM), PD-like (GM > WM, bright CSF) or uniformly random ordering;
    bone and air stay dark; each class has a faint smooth texture.
  * geometry: random in-plane rotation (mostly near upright, sometimes any angle), anisotropic zoom 0.9-1.1,
    shift, field of view 225-285 mm across the shorter image side (square pixels), a smooth elastic deformation;
    the class probabilities are resampled onto a grid of at most 1 mm and area-downsampled (anti-aliased, partial
    volume at every edge), so any ``(H, W)`` works.
  * acquisition: a smooth multiplicative bias field in [0.6, 1.4], an optional Gaussian blur (resolution variety),
    an optional gamma, Rician noise (the magnitude of complex Gaussian noise, sigma 0.3-4% of the image's 99.5th
    percentile, absent for a tenth of the slices).
Intensity convention of the MRI training slices (``datasets.preprocess_axial_slice``): non-negative magnitude,
anterior up, divided by the 99.5th percentile of the image, so the head lies in about [0, 1.2] and air near 0.

The held-out slices use seeds ``MR_SYNTH_HELDOUT_SEEDS`` (training seeds are ``0..n-1``).

``python -m medrecon.training.mri_synth --out DIR --count N [--size H W]`` writes ``DIR/train.npy`` (seeds
``0..N-1``) and ``DIR/heldout.npy`` (float16, ``(N, H, W)`` and ``(32, H, W)``) and the manifest
``data_manifests/prior_mri_synth_train.json``. Only the nilearn MNI152 template and tissue maps are read; no
reserved image (Colin27, InVesalius Cranium, pydicom-data CT/MR) is.

``--real-itk K`` appends ``K`` augmented copies (``augment_real_slice``: the same rotation, zoom, shift, elastic
warp and field of view, a left-right flip, a bias field) of each of the 64 real and simulated MR slices of the ITK
examples (``itk_mr``, Debian package insighttoolkit5-examples, Apache-2.0) to ``train.npy``, recording the files'
sha256 and licence in the manifest; the held-out array is unchanged.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Literal, overload

import numpy as np

from .datasets import IMAGE_SIZE, MRI_EXCLUDED_Z_1MM
from .head_ct import PAD_MM, HeadTemplate, _convex_shell, _plane, _smooth, head_template

__all__ = [
    "MANIFEST_PATH",
    "MR_SYNTH_CLASSES",
    "MR_SYNTH_CONTRASTS",
    "MR_SYNTH_HELDOUT_SEEDS",
    "augment_real_slice",
    "main",
    "mr_synth_heldout_slices",
    "mr_synth_slices",
    "mr_synth_training_set",
    "random_mr_slice",
    "real_itk_training_slices",
]

MR_SYNTH_HELDOUT_SEEDS = tuple(range(3_000_000, 3_000_032))
MR_SYNTH_CLASSES = ("background", "csf", "gm", "wm", "bone", "soft_tissue", "fat")
MR_SYNTH_CONTRASTS = ("t1", "t2", "flair", "pd", "random")
MANIFEST_PATH = Path(__file__).resolve().parents[2] / "data_manifests" / "prior_mri_synth_train.json"
_CONTRAST_P = (0.25, 0.25, 0.15, 0.1, 0.25)
# Per contrast, the (low, high) intensity of CSF, GM, WM, bone, soft tissue, fat before the bias field and noise.
_RANGES = {
    "t1": ((0.05, 0.25), (0.4, 0.6), (0.65, 0.9), (0.0, 0.08), (0.3, 0.55), (0.8, 1.0)),
    "t2": ((0.8, 1.0), (0.45, 0.65), (0.3, 0.45), (0.0, 0.06), (0.25, 0.45), (0.5, 0.9)),
    "flair": ((0.0, 0.12), (0.55, 0.8), (0.38, 0.52), (0.0, 0.06), (0.3, 0.6), (0.4, 0.9)),
    "pd": ((0.6, 0.95), (0.68, 0.85), (0.5, 0.63), (0.0, 0.08), (0.35, 0.6), (0.6, 1.0)),
    "random": ((0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (0.0, 0.15), (0.0, 1.0), (0.0, 1.0)),
}
CSF, GM, WM, BONE, SOFT, FAT = range(1, 7)  # class indices (0 = background)


def _tissue_planes(rng: np.random.Generator, tpl: HeadTemplate, z: float) -> np.ndarray:
    """Probabilities of the six non-background classes on the template's 1 mm canvas: ``(6, Y, X)`` float32,
    anterior up, summing to at most 1 (the rest is air)."""
    gm, wm, csf, dist, hull_dist = (_plane(v, z) for v in (tpl.gm, tpl.wm, tpl.csf, tpl.dist, tpl.hull_dist))
    shape = dist.shape
    p = np.zeros((6,) + shape, dtype=np.float32)
    inside = dist <= 0
    p[CSF - 1], p[GM - 1], p[WM - 1] = np.where(inside, csf, 0), np.where(inside, gm, 0), np.where(inside, wm, 0)
    if rng.random() < 0.8 and (hull_dist <= 0).any():  # skull base: wrap the skull round the section's convex hull
        hull_dist = _convex_shell(hull_dist <= 0, hull_dist)
    d = hull_dist
    vary = _smooth(rng, shape, rng.uniform(15, 40))
    gap = np.clip(rng.uniform(0.5, 3.5) * (1 + 0.3 * _smooth(rng, shape, 25)), 0.3, None)
    bone_t = np.clip(rng.uniform(3.5, 9.0) * (1 + rng.uniform(0.1, 0.35) * vary), 2.0, None)
    scalp_t = np.clip(rng.uniform(3.0, 10.0) * (1 + 0.3 * _smooth(rng, shape, 30)), 1.5, None)
    gap_m = (d > 0) & (d <= gap)
    bone_m = (d > gap) & (d <= gap + bone_t)
    scalp_m = (d > gap + bone_t) & (d <= gap + bone_t + scalp_t)
    p[CSF - 1][gap_m] = 1
    depth = np.clip((d - gap) / bone_t, 0, 1)  # 0 at the inner table, 1 at the outer table
    table = rng.uniform(0.18, 0.35)
    mid = 1 - np.clip(np.minimum(depth, 1 - depth) / table - 0.5, 0, 1)  # 1 on the tables, 0 mid-diploe
    marrow = np.where(bone_t > 4.0, (1 - mid) * rng.uniform(0.3, 0.9), 0.0)  # fatty diploic marrow
    p[BONE - 1][bone_m] = (1 - marrow)[bone_m]
    p[FAT - 1][bone_m] = marrow[bone_m]
    s = (d - gap - bone_t) / scalp_t  # 0 at the outer table, 1 at the skin surface
    if rng.random() < 0.85:  # galea / muscle, subcutaneous fat, skin
        inner, skin = rng.uniform(0.15, 0.45), np.clip(rng.uniform(0.8, 2.0) / scalp_t, 0.05, 0.4)
        fat_m = scalp_m & (s > inner) & (s <= 1 - skin)
    else:
        fat_m = np.zeros(shape, dtype=bool)
    p[FAT - 1][fat_m] = 1
    p[SOFT - 1][scalp_m & ~fat_m] = 1
    base = (hull_dist <= 0) & ~inside  # within the hull, outside the brain: CSF near it, then a random partition
    near = base & (dist <= rng.uniform(1, 4))
    p[CSF - 1][near] = 1
    rest = base & ~near
    part = _smooth(rng, shape, rng.uniform(2, 6))
    t_air, t_fat, t_soft = np.sort(rng.uniform(-1.5, 1.0, size=3))
    p[BONE - 1][rest & (part > t_soft)] = 1
    p[SOFT - 1][rest & (part <= t_soft) & (part > t_fat)] = 1
    p[FAT - 1][rest & (part <= t_fat) & (part > t_air)] = 1
    if rng.random() < 0.4:  # no air spaces in this section: soft tissue instead
        p[SOFT - 1][rest & (part <= t_air)] = 1
    return p


def _axial_position(rng: np.random.Generator, tpl: HeadTemplate) -> float:
    """A fractional axial index of the padded template, uniform over its usable range outside the band whose
    template slices are the MRI held-out images (``datasets.MRI_EXCLUDED_Z_1MM``, widened by one slice for the
    linear interpolation)."""
    lo, hi = tpl.z_range
    band_lo, band_hi = (z + PAD_MM for z in MRI_EXCLUDED_Z_1MM)
    below, above = max(0.0, min(hi, band_lo - 1) - lo), max(0.0, hi - max(lo, band_hi))
    t = rng.uniform(0, below + above)
    return lo + t if t < below else max(lo, band_hi) + (t - below)


def _warp_coords(rng: np.random.Generator, head: np.ndarray, shape: tuple[int, int], spacing: float,
                 upright: bool, canvas_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Canvas (row, column) coordinates of each pixel of a ``shape`` grid of ``spacing`` canvas pixels (of
    ``canvas_mm`` mm): rotation, anisotropic zoom, shift around the head's centre and a smooth elastic
    displacement."""
    ys, xs = np.nonzero(head) if head.any() else (np.array([head.shape[0] / 2]), np.array([head.shape[1] / 2]))
    cy, cx = ys.mean() + rng.uniform(-10, 10) / canvas_mm, xs.mean() + rng.uniform(-10, 10) / canvas_mm
    theta = rng.normal(0, np.radians(10)) if upright else rng.uniform(-np.pi, np.pi)
    sy, sx = rng.uniform(0.9, 1.1, size=2)
    v = (np.arange(shape[0]) - (shape[0] - 1) / 2)[:, None] * spacing
    u = (np.arange(shape[1]) - (shape[1] - 1) / 2)[None, :] * spacing
    c, s = np.cos(theta), np.sin(theta)
    y = (c * v - s * u) / sy
    x = (s * v + c * u) / sx
    amp = rng.uniform(0, 4) / canvas_mm  # 0-4 mm
    width = rng.uniform(15, 45) / (spacing * canvas_mm)  # output pixels
    y = y + amp * _smooth(rng, shape, width)
    x = x + amp * _smooth(rng, shape, width)
    return y + cy, x + cx


def _output_spacing(rng: np.random.Generator, shape: tuple[int, int],
                    spacing_mm: tuple[float, float] | None) -> float:
    """The mm per output pixel: a field of view of 225-285 mm across the shorter side, or with ``spacing_mm =
    (lo, hi)`` log-uniform in ``[lo, hi]``."""
    if spacing_mm is None:
        return rng.uniform(225, 285) / min(shape)
    lo, hi = (float(v) for v in spacing_mm)
    if not 0 < lo <= hi:
        raise ValueError(f"spacing_mm must satisfy 0 < lo <= hi, got {spacing_mm}")
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _render(rng: np.random.Generator, planes: np.ndarray, head: np.ndarray, shape: tuple[int, int],
            spacing: float, upper: float | None, canvas_mm: float = 1.0) -> np.ndarray:
    """``planes (C, Y, X)`` of a canvas (pixels of ``canvas_mm`` mm) warped by ``_warp_coords`` onto a ``shape``
    grid of ``spacing`` canvas pixels: rendered at <= 1 canvas pixel (at most 4x finer), clipped to
    ``[0, upper]`` and area-downsampled -> ``(C, H, W)`` float64."""
    from scipy.ndimage import map_coordinates

    h, w = shape
    f = int(np.clip(np.ceil(spacing), 1, 4))
    yc, xc = _warp_coords(rng, head, (f * h, f * w), spacing / f, rng.random() < 0.75, canvas_mm)
    out = np.stack([map_coordinates(pl, [yc, xc], order=1, mode="constant", cval=0.0) for pl in planes])
    return np.clip(out, 0, upper).reshape(len(planes), h, f, w, f).mean(axis=(2, 4))


def _intensities(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A contrast name and one intensity per class (background first, 0)."""
    name = MR_SYNTH_CONTRASTS[int(rng.choice(len(MR_SYNTH_CONTRASTS), p=_CONTRAST_P))]
    return name, np.array([0.0] + [rng.uniform(lo, hi) for lo, hi in _RANGES[name]])


def _bias_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Smooth multiplicative field ``1 + a f`` with ``|f| <= 1`` (a smooth random field plus a linear ramp) and
    ``a`` in [0, 0.4], so the gain lies in [0.6, 1.4]."""
    yy = np.linspace(-1, 1, shape[0])[:, None]
    xx = np.linspace(-1, 1, shape[1])[None, :]
    f = _smooth(rng, shape, max(shape) * rng.uniform(0.25, 0.6)) + rng.normal(0, 1) * yy + rng.normal(0, 1) * xx
    f = f / (np.abs(f).max() + 1e-12)
    return 1 + rng.uniform(0, 0.4) * f


def _normalise(img: np.ndarray) -> np.ndarray:
    scale = float(np.percentile(img, 99.5))
    return img / (scale if scale > 0 else float(img.max()) or 1.0)


@overload
def random_mr_slice(seed: int, shape: tuple[int, int] = ..., return_labels: Literal[False] = ...,
                    spacing_mm: tuple[float, float] | None = ...) -> np.ndarray:
    ...


@overload
def random_mr_slice(seed: int, shape: tuple[int, int] = ..., *, return_labels: Literal[True],
                    spacing_mm: tuple[float, float] | None = ...) -> tuple[np.ndarray, np.ndarray]:
    ...


def random_mr_slice(seed: int, shape: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE),
                    return_labels: bool = False,
                    spacing_mm: tuple[float, float] | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """One synthetic axial MR magnitude slice ``shape = (H, W)``, float32, non-negative, divided by its 99.5th
    percentile (deterministic in ``seed``). With ``return_labels`` also the dominant class per pixel, ``(H, W)``
    uint8 indices into ``MR_SYNTH_CLASSES``.

    ``spacing_mm = (lo, hi)``: native fields of view. The pixel spacing is drawn log-uniformly in ``[lo, hi]`` mm
    whatever the grid, so the head may fill a fraction of the frame (empty air around it) or overflow it, as in
    scanner reconstructions; without it the field of view is 225-285 mm across the shorter side (a filled frame).
    """
    from scipy.ndimage import gaussian_filter

    h, w = (int(n) for n in shape)
    if h < 1 or w < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    tpl = head_template()
    rng = np.random.default_rng([seed, 1520])
    z = _axial_position(rng, tpl)
    planes = _tissue_planes(rng, tpl, z)
    spacing = _output_spacing(rng, (h, w), spacing_mm)
    probs = _render(rng, planes, planes.sum(axis=0) > 0.5, (h, w), spacing, 1.0)
    probs = np.concatenate([np.clip(1 - probs.sum(axis=0), 0, 1)[None], probs])  # background first
    _, mean = _intensities(rng)
    img = np.zeros((h, w))
    for k in range(1, 7):
        texture = 1 + rng.uniform(0, 0.08) * _smooth(rng, (h, w), rng.uniform(1, 4))
        img += probs[k] * mean[k] * texture
    img = np.clip(img, 0, None)
    if rng.random() < 0.35:  # lower or anisotropic resolution
        img = gaussian_filter(img, rng.uniform(0.3, 1.3, size=2))
    img = _normalise(img * _bias_field(rng, (h, w)))
    if rng.random() < 0.5:
        img = img ** np.exp(rng.uniform(-0.3, 0.3))
    if rng.random() < 0.9:  # Rician: the magnitude of the image plus complex Gaussian noise
        sigma = rng.uniform(0.003, 0.04)
        img = np.hypot(img + sigma * rng.standard_normal((h, w)), sigma * rng.standard_normal((h, w)))
    out = _normalise(img).astype(np.float32)
    if return_labels:
        return out, np.argmax(probs, axis=0).astype(np.uint8)
    return out


def mr_synth_slices(seeds: range | list[int] | tuple[int, ...], shape: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE),
                    spacing_mm: tuple[float, float] | None = None) -> np.ndarray:
    """``random_mr_slice`` for each seed -> ``(len(seeds), H, W)`` float32 magnitude."""
    if not len(seeds):
        return np.zeros((0, *shape), np.float32)
    return np.stack([random_mr_slice(int(s), shape, spacing_mm=spacing_mm) for s in seeds])


def mr_synth_heldout_slices(shape: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE),
                            spacing_mm: tuple[float, float] | None = None) -> np.ndarray:
    """Held-out synthetic MR slices: seeds ``MR_SYNTH_HELDOUT_SEEDS`` -> ``(32, H, W)`` float32."""
    return mr_synth_slices(MR_SYNTH_HELDOUT_SEEDS, shape, spacing_mm)


def mr_synth_training_set(n: int, shape: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE),
                          spacing_mm: tuple[float, float] | None = None) -> tuple[np.ndarray, dict]:
    """The training array ``(n, H, W)`` float32 (seeds ``0..n-1``) and its provenance record."""
    if n > MR_SYNTH_HELDOUT_SEEDS[0]:
        raise ValueError("the training seeds would overlap the held-out seeds")
    fov = ("field of view 225-285 mm across the shorter side" if spacing_mm is None else
           f"native fields of view: pixel spacing log-uniform in [{spacing_mm[0]}, {spacing_mm[1]}] mm")
    return mr_synth_slices(range(n), shape, spacing_mm), {
        "sources": [("synthetic-contrast MR slices from the nilearn MNI152 (2009a) T1 template and its GM/WM "
                     "probability maps (medrecon.training.mri_synth.random_mr_slice, anatomy from "
                     "medrecon.training.head_ct.head_template)")],
        "classes": list(MR_SYNTH_CLASSES),
        "contrasts": dict(zip(MR_SYNTH_CONTRASTS, _CONTRAST_P)),
        "augmentation": "random axial position (outside the MRI held-out band, template slices 95-116), rotation, "
                        f"anisotropic zoom, shift, elastic warp, {fov}; per-class random intensities; bias field "
                        "in [0.6, 1.4]; optional blur and gamma; Rician noise",
        "pixel_spacing_mm": None if spacing_mm is None else [float(spacing_mm[0]), float(spacing_mm[1])],
        "intensity": "non-negative magnitude, anterior up, divided by the image's 99.5th percentile",
        "image_shape": [int(shape[0]), int(shape[1])],
        "seeds": [0, n],
        "heldout_seeds": [MR_SYNTH_HELDOUT_SEEDS[0], MR_SYNTH_HELDOUT_SEEDS[-1] + 1],
        "real_images": "none",
        "reserved_images": "never read: Colin27, InVesalius Cranium, pydicom-data CT and MR",
    }


def _with_template(arr: np.ndarray, record: dict, shape: tuple[int, int], copies: int) -> tuple[np.ndarray, dict]:
    """Append ``copies`` copies of ``datasets.mri_training_set`` resized (bilinear) to ``shape``."""
    from skimage.transform import resize

    from .datasets import mri_training_set

    tpl, tpl_record = mri_training_set()
    tpl = np.stack([resize(im, shape, order=1, preserve_range=True) for im in tpl]).astype(np.float32)
    record = dict(record, template={"copies": copies, "count": int(len(tpl)), "resized_to": list(shape),
                                    "sources": tpl_record["sources"],
                                    "excluded_1mm_z": tpl_record["excluded_1mm_z"]})
    return np.concatenate([arr] + [tpl] * copies), record


def augment_real_slice(image: np.ndarray, seed: int, shape: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE),
                       pixel_mm: float | None = None,
                       spacing_mm: tuple[float, float] | None = None) -> np.ndarray:
    """One augmented copy of a real magnitude slice ``image (Y, X)`` (anterior or superior up, pixels of
    ``pixel_mm`` mm; None: taken as 1 mm) on a ``shape = (H, W)`` grid, float32, divided by its 99.5th percentile,
    deterministic in ``seed``: the synthetic slices' geometry (rotation, anisotropic zoom 0.9-1.1, shift, elastic
    warp; field of view 225-285 mm or pixel spacing from ``spacing_mm``), a left-right flip (half the copies) and
    a bias field in [0.6, 1.4]. The image keeps its own noise and contrast."""
    h, w = (int(n) for n in shape)
    image = np.asarray(image, dtype=np.float64)
    rng = np.random.default_rng([seed, 1521])
    canvas_mm = 1.0 if pixel_mm is None else float(pixel_mm)
    spacing = _output_spacing(rng, (h, w), spacing_mm) / canvas_mm
    head = image > 0.05 * image.max() if image.max() > 0 else np.ones(image.shape, bool)
    img = _render(rng, image[None], head, (h, w), spacing, None, canvas_mm)[0]
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return _normalise(img * _bias_field(rng, (h, w))).astype(np.float32)


def real_itk_training_slices(copies: int, shape: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE),
                             spacing_mm: tuple[float, float] | None = None,
                             data_dir: str | Path | None = None) -> tuple[np.ndarray, dict]:
    """``copies`` augmented copies (``augment_real_slice``, seeds ``c N + i`` for copy ``c`` of slice ``i``) of the
    ``N`` ITK example slices (``itk_mr.itk_mr_slices``) -> ``(copies N, H, W)`` float32 and their provenance
    record (files with sha256, slices, licence)."""
    from ..files import sha256_file
    from .itk_mr import FRAME, ITK_DATA, LICENSE, itk_mr_files, itk_mr_slices

    data_dir = ITK_DATA if data_dir is None else Path(data_dir)
    images, records = itk_mr_slices(FRAME, data_dir)
    n = len(images)
    out = [augment_real_slice(images[i], c * n + i, shape, records[i]["pixel_mm"], spacing_mm)
           for c in range(copies) for i in range(n)]
    files = list(dict.fromkeys(r["file"] for r in records))
    return (np.stack(out) if out else np.zeros((0, *shape), np.float32)), {
        "copies": copies, "count": n, "seeds": [0, copies * n], "directory": str(data_dir),
        "license": LICENSE,
        "files": {f.name: sha256_file(f) for f in itk_mr_files(data_dir)},
        "slices": {f: [r["slice"] for r in records if r["file"] == f] for f in files},
        "pixel_mm": {f: next(r["pixel_mm"] for r in records if r["file"] == f) for f in files},
        "augmentation": "rotation (mostly near upright), anisotropic zoom 0.9-1.1, shift, elastic warp, field of "
                        "view as the synthetic slices (pixels of unstated size taken as 1 mm), left-right flip "
                        "(half), bias field in [0.6, 1.4]; each copy divided by its 99.5th percentile",
    }


def main(argv: list[str] | None = None) -> int:
    """Write ``train.npy`` / ``heldout.npy`` (float16) to ``--out`` and the manifest ``MANIFEST_PATH``."""
    from ..files import atomic_path
    from .prepare import _save, _versions

    p = argparse.ArgumentParser(prog="python -m medrecon.training.mri_synth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory for the .npy arrays")
    p.add_argument("--count", type=int, default=2000, help="training slices (seeds 0..count-1)")
    p.add_argument("--size", type=int, nargs=2, default=[IMAGE_SIZE, IMAGE_SIZE], metavar=("H", "W"),
                   help="image rows and columns")
    p.add_argument("--spacing", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="native fields of view: pixel spacing range in mm (manifest prior_mri_native_train.json)")
    p.add_argument("--template-copies", type=int, default=0, metavar="K",
                   help="append K copies of the shipped mri prior's training set (MNI152 slices and phantoms, "
                        "datasets.mri_training_set) resized to the grid")
    p.add_argument("--real-itk", type=int, default=0, metavar="K",
                   help="append K augmented copies of every real MR slice of the ITK examples (training.itk_mr; "
                        "apt-get install insighttoolkit5-examples)")
    p.add_argument("--itk-data", default=None, metavar="DIR",
                   help="directory of the ITK example data (default: the Debian package's)")
    a = p.parse_args(argv)
    if a.count < 0 or min(a.size) < 1 or a.template_copies < 0 or a.real_itk < 0:
        p.error("--count, --template-copies and --real-itk must be >= 0 and --size positive")
    if a.spacing is not None and not 0 < a.spacing[0] <= a.spacing[1]:
        p.error("--spacing needs 0 < LO <= HI")
    shape = (a.size[0], a.size[1])
    spacing = None if a.spacing is None else (a.spacing[0], a.spacing[1])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    arr, record = mr_synth_training_set(a.count, shape, spacing)
    name = "prior_mri_synth_train" if spacing is None else "prior_mri_native_train"
    flags = "" if spacing is None else f" --spacing {spacing[0]:g} {spacing[1]:g}"
    if a.template_copies:
        arr, record = _with_template(arr, record, shape, a.template_copies)
        flags += f" --template-copies {a.template_copies}"
    licence = ("synthetic (generated); MNI152 template: see nilearn (ICBM 2009 licence, free for research with "
               "attribution)")
    counts = {"train": 0, "synthetic": a.count, "heldout": len(MR_SYNTH_HELDOUT_SEEDS)}
    if a.real_itk:
        real, itk_record = real_itk_training_slices(a.real_itk, shape, spacing, a.itk_data)
        arr = np.concatenate([arr, real])
        record = dict(record, itk=itk_record, real_images=(
            f"{a.real_itk} augmented copies of the {itk_record['count']} MR slices of the ITK examples (see itk)"))
        licence += f"; ITK example MR images: {itk_record['license']}"
        counts["itk"] = len(real)
        flags += f" --real-itk {a.real_itk}" + ("" if a.itk_data is None else f" --itk-data {a.itk_data}")
    counts["train"] = int(len(arr))
    manifest = {
        "name": name, "modality": "mri", "image_size": list(shape),
        "licence": licence,
        "generator": "medrecon.training.mri_synth (python -m medrecon.training.mri_synth --out DIR "
                     f"--count {a.count} --size {shape[0]} {shape[1]}{flags})",
        "counts": counts,
        "train": _save(out / "train.npy", arr),
        "heldout": _save(out / "heldout.npy", mr_synth_heldout_slices(shape, spacing)),
        "versions": _versions(["nilearn", "scipy", "scikit-image", "numpy", "medrecon"]
                              + (["nibabel"] if a.real_itk else [])),
        "selection": record,
    }
    path = MANIFEST_PATH.with_name(f"{name}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"train {manifest['train']['shape']} {manifest['train']['sha256']}; heldout {manifest['heldout']['shape']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
