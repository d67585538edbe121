"""Training and held-out images for the shipped priors (all generated offline from installed packages).

MRI (magnitude, later given a random smooth phase at training time):
  * nilearn's MNI152 T1 template at 1 mm (197x233x189) and 2 mm (99x117x95), AXIAL slices only (array axis 2).
  * Preprocessing of a slice ``v[:, :, z]``: transpose and flip rows so anterior is up (rows = y, columns = x),
    zero-pad to a centred square, resize to 128x128 (bilinear, anti-aliased), divide by the 99.5th percentile of
    the whole raw volume (all voxels), so tissue lies in about [0, 1.1].
  * Held-out (fixed): 1 mm slices with z in [100, 112). Training excludes 1 mm slices with z in [95, 117) and the
    2 mm slices whose 2 mm slab overlaps the same physical band (world z in [22.5, 44.5] mm, i.e. z2 in [47, 58]).
    Slices with less than 10% of the field inside the head are dropped.
  * MR phantoms: phantominator's 3D MR Shepp-Logan (M0, T1, T2) rendered as spin-echo images
    ``M0 (1 - exp(-TR/T1)) exp(-TE/T2)`` at several (TR, TE) and z positions, normalised the same way.

CT (HU window [-1000, 1000] mapped linearly to [0, 1] and clipped; air = 0, water = 0.5, +1000 HU = 1):
  * random "anatomy" phantoms from ellipses (body with fat rim, lungs with vessels, spine/ribs or a skull with
    brain and ventricles, organs, lesions), smooth Gaussian-random-field texture (5-20 HU) and, for a third of
    them, white noise (0-5 HU); rendered at 2x and area-downsampled to 128x128.
  * scikit-image's and phantominator's Shepp-Logan phantoms with their intensities mapped to plausible HU.
  * Held-out (fixed): the random phantoms with seeds ``CT_HELDOUT_SEEDS``; training uses seeds ``0..n-1``.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "CT_HELDOUT_SEEDS",
    "CT_HU_WINDOW",
    "IMAGE_SIZE",
    "MRI_EXCLUDED_Z_1MM",
    "MRI_HELDOUT_Z",
    "ct_heldout_slices",
    "ct_training_set",
    "hu_to_unit",
    "mni152_heldout_slices",
    "mni152_training_slices",
    "mni152_volume",
    "mr_phantom_slices",
    "mri_training_set",
    "preprocess_axial_slice",
    "random_ct_phantom",
    "shepp_logan_ct_slices",
]

IMAGE_SIZE = 128
MRI_HELDOUT_Z = (100, 112)
MRI_EXCLUDED_Z_1MM = (95, 117)
MIN_HEAD_FRACTION = 0.10
CT_HU_WINDOW = (-1000.0, 1000.0)
CT_HELDOUT_SEEDS = tuple(range(1_000_000, 1_000_016))


def preprocess_axial_slice(
    plane: np.ndarray, scale: float, size: int = IMAGE_SIZE, resample: bool = True
) -> np.ndarray:
    """One axial plane ``(X, Y)`` of a RAS volume -> ``(size, size)`` float32, anterior up, divided by ``scale``.

    With ``resample`` the plane is zero-padded to a centred square and resized to ``size`` (bilinear); without,
    it keeps its voxel size and is zero-padded (or centre-cropped) to ``size`` (e.g. 1 mm MNI152 at 320x320)."""
    from skimage.transform import resize

    img = np.asarray(plane, dtype=np.float64).T[::-1]
    h, w = img.shape
    n = max(h, w, 0 if resample else size)
    out = np.zeros((n, n))
    out[(n - h) // 2:(n - h) // 2 + h, (n - w) // 2:(n - w) // 2 + w] = img
    if resample:
        out = resize(out, (size, size), order=1, anti_aliasing=n > size, preserve_range=True)
    else:
        out = out[(n - size) // 2:(n - size) // 2 + size, (n - size) // 2:(n - size) // 2 + size]
    return (np.clip(out, 0.0, None) / scale).astype(np.float32)


def mni152_volume(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 template at ``resolution`` mm (1 or 2) as ``(volume float32, affine 4x4)``."""
    from nilearn.datasets import load_mni152_template

    img = load_mni152_template(resolution=resolution)
    return np.asarray(img.get_fdata(), dtype=np.float32), np.asarray(img.affine, dtype=np.float64)


def _volume_scale(vol: np.ndarray) -> float:
    return float(np.percentile(vol, 99.5))


def _head_fraction(plane: np.ndarray) -> float:
    return float((plane > 0.05 * plane.max()).mean()) if plane.max() > 0 else 0.0


def mni152_heldout_slices(size: int = IMAGE_SIZE, resample: bool = True) -> np.ndarray:
    """Held-out MRI images: 1 mm template axial slices z in [100, 112) -> ``(12, size, size)`` float32 magnitude
    (``resample=False``: at the template's 1 mm voxels, zero-padded to ``size``)."""
    vol, _ = mni152_volume(1)
    scale = _volume_scale(vol)
    return np.stack([preprocess_axial_slice(vol[:, :, z], scale, size, resample) for z in range(*MRI_HELDOUT_Z)])


def _excluded_world_band(affine_1mm: np.ndarray) -> tuple[float, float]:
    lo, hi = MRI_EXCLUDED_Z_1MM
    z_lo = float((affine_1mm @ [0, 0, lo, 1])[2]) - 0.5
    z_hi = float((affine_1mm @ [0, 0, hi - 1, 1])[2]) + 0.5
    return z_lo, z_hi


def mni152_training_slices() -> tuple[np.ndarray, list[dict]]:
    """Training MRI slices from the 1 mm and 2 mm templates (axial, outside the held-out band).

    Returns ``(images (N, 128, 128) float32, records)`` with one ``{"resolution_mm", "z"}`` record per image.
    """
    _, aff1 = mni152_volume(1)
    band = _excluded_world_band(aff1)
    images, records = [], []
    for res in (1, 2):
        vol, aff = mni152_volume(res)
        scale = _volume_scale(vol)
        half = abs(aff[2, 2]) / 2
        for z in range(vol.shape[2]):
            wz = float((aff @ [0, 0, z, 1])[2])
            if wz + half > band[0] and wz - half < band[1]:
                continue
            if _head_fraction(vol[:, :, z]) < MIN_HEAD_FRACTION:
                continue
            images.append(preprocess_axial_slice(vol[:, :, z], scale))
            records.append({"resolution_mm": res, "z": z})
    return np.stack(images), records


def mr_phantom_slices(size: int = IMAGE_SIZE) -> tuple[np.ndarray, list[dict]]:
    """Spin-echo renderings of phantominator's 3D MR Shepp-Logan at 4 z positions and 6 (TR, TE) pairs."""
    from phantominator import mr_shepp_logan

    m0, t1, t2 = mr_shepp_logan((size, size, 4), zlims=(-0.4, 0.4))
    inside = m0 > 0
    t1 = np.where(inside, t1, 1.0)
    t2 = np.where(inside, t2, 1.0)
    images, records = [], []
    for tr, te in [(0.5, 0.01), (0.8, 0.02), (2.0, 0.03), (3.0, 0.08), (4.0, 0.1), (1.2, 0.015)]:
        sig = np.where(inside, m0 * (1 - np.exp(-tr / t1)) * np.exp(-te / t2), 0.0)
        sig = sig / np.percentile(sig, 99.5)
        for k in range(sig.shape[2]):
            images.append(np.ascontiguousarray(np.rot90(sig[:, :, k])).astype(np.float32))
            records.append({"phantom": "mr_shepp_logan", "TR_s": tr, "TE_s": te, "z_index": k})
    return np.stack(images), records


def mri_training_set() -> tuple[np.ndarray, dict]:
    """The MRI training array ``(N, 128, 128)`` float32 magnitude and its provenance record."""
    brain, brain_rec = mni152_training_slices()
    phantom, phantom_rec = mr_phantom_slices()
    return np.concatenate([brain, phantom]), {
        "sources": ["nilearn MNI152 T1 template (1 mm, 2 mm), axial", "phantominator mr_shepp_logan"],
        "preprocessing": "transpose+flip (anterior up), zero-pad to square, resize to 128 (bilinear, "
                         "anti-aliased), divide by the volume's 99.5th percentile",
        "heldout": {"resolution_mm": 1, "z": list(MRI_HELDOUT_Z)},
        "excluded_1mm_z": list(MRI_EXCLUDED_Z_1MM),
        "excluded_world_z_mm": list(_excluded_world_band(mni152_volume(1)[1])),
        "slices": brain_rec + phantom_rec,
    }


def hu_to_unit(hu: np.ndarray) -> np.ndarray:
    """HU -> [0, 1] through the window ``CT_HU_WINDOW`` (clipped)."""
    lo, hi = CT_HU_WINDOW
    return np.clip((np.asarray(hu, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _ellipse(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, a: float, b: float, theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _smooth_field(rng: np.random.Generator, n: int, width: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal((n, n)), width)
    return f / (f.std() + 1e-12)


def random_ct_phantom(seed: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """A random body or head CT phantom in HU, ``(size, size)`` float32 (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    n = 2 * size
    grid = (np.arange(n) + 0.5) / n * 2 - 1
    xx, yy = np.meshgrid(grid, grid)
    hu = np.full((n, n), -1000.0)
    U = rng.uniform
    tilt = U(-0.15, 0.15)
    cx, cy = U(-0.08, 0.08), U(-0.08, 0.08)
    if rng.random() < 0.35:  # head: skull ring, brain, ventricles
        a, b = U(0.6, 0.8), U(0.7, 0.9)
        skull = _ellipse(xx, yy, cx, cy, a, b, tilt)
        hu[skull] = U(700, 1000)
        brain = _ellipse(xx, yy, cx, cy, a - U(0.04, 0.08), b - U(0.04, 0.08), tilt)
        hu[brain] = U(25, 45)
        for _ in range(rng.integers(1, 4)):
            hu[_ellipse(xx, yy, cx + U(-0.15, 0.15), cy + U(-0.2, 0.2), U(0.03, 0.1), U(0.08, 0.25),
                        tilt + U(-0.4, 0.4)) & brain] = U(0, 15)
        body = brain
    else:  # trunk: fat rim, soft tissue, lungs, spine, ribs
        a, b = U(0.7, 0.95), U(0.5, 0.75)
        outer = _ellipse(xx, yy, cx, cy, a, b, tilt)
        hu[outer] = U(-120, -80)
        body = _ellipse(xx, yy, cx, cy, a - U(0.03, 0.1), b - U(0.03, 0.1), tilt)
        hu[body] = U(30, 60)
        if rng.random() < 0.6:
            for side in (-1, 1):
                lung = _ellipse(xx, yy, cx + side * U(0.3, 0.45), cy - U(0.0, 0.1), U(0.18, 0.3), U(0.25, 0.4),
                                U(-0.3, 0.3)) & body
                hu[lung] = U(-900, -750)
                for _ in range(rng.integers(3, 10)):
                    hu[_ellipse(xx, yy, cx + side * U(0.2, 0.55), cy + U(-0.4, 0.3), U(0.005, 0.02),
                                U(0.005, 0.03), U(0, np.pi)) & lung] = U(-100, 50)
        for _ in range(rng.integers(2, 7)):  # organs
            hu[_ellipse(xx, yy, cx + U(-0.5, 0.5), cy + U(-0.35, 0.35), U(0.05, 0.25), U(0.05, 0.2),
                        U(0, np.pi)) & body] = U(-40, 90)
        spine_y = cy + b * U(0.55, 0.7)
        hu[_ellipse(xx, yy, cx, spine_y, U(0.07, 0.11), U(0.06, 0.09), 0) & body] = U(500, 900)
        hu[_ellipse(xx, yy, cx, spine_y, U(0.03, 0.05), U(0.03, 0.05), 0) & body] = U(150, 300)
        for _ in range(rng.integers(0, 8)):  # ribs near the rim
            t = U(0, 2 * np.pi)
            r = U(0.8, 0.92)
            hu[_ellipse(xx, yy, cx + r * a * np.cos(t), cy + r * b * np.sin(t), U(0.015, 0.03), U(0.015, 0.03),
                        0) & body] = U(400, 900)
    for _ in range(rng.integers(0, 4)):  # lesions
        hu[_ellipse(xx, yy, cx + U(-0.4, 0.4), cy + U(-0.3, 0.3), U(0.01, 0.05), U(0.01, 0.05),
                    U(0, np.pi)) & body] += U(-40, 40)
    soft = (hu > -200) & (hu < 200)
    hu = hu + soft * U(5, 20) * _smooth_field(rng, n, U(2, 8))
    hu = hu.reshape(size, 2, size, 2).mean(axis=(1, 3))
    if rng.random() < 1 / 3:
        hu = hu + U(0, 5) * rng.standard_normal(hu.shape)
    return hu.astype(np.float32)


def shepp_logan_ct_slices(size: int = IMAGE_SIZE) -> np.ndarray:
    """Shepp-Logan phantoms (scikit-image, phantominator) with intensities mapped to HU, ``(8, size, size)``."""
    from phantominator import ct_shepp_logan
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    base = [resize(shepp_logan_phantom(), (size, size), order=1, anti_aliasing=True),
            np.asarray(ct_shepp_logan(size, modified=True))]
    out = []
    for v in base:
        outside = resize(v > 1e-3, (size, size), order=0) == 0
        hu = np.interp(v, [0, 0.1, 0.2, 0.3, 0.4, 1.0], [0, 20, 40, 60, 80, 1000])
        hu[outside & (v <= 1e-3)] = -1000
        for k in range(4):
            out.append(np.rot90(hu, k).astype(np.float32))
    return np.stack(out)


def ct_heldout_slices() -> np.ndarray:
    """Held-out CT images in [0, 1]: the random phantoms with seeds ``CT_HELDOUT_SEEDS`` -> ``(16, 128, 128)``."""
    return np.stack([hu_to_unit(random_ct_phantom(s)) for s in CT_HELDOUT_SEEDS])


def ct_training_set(n_random: int = 800) -> tuple[np.ndarray, dict]:
    """The CT training array ``(n_random + 8, 128, 128)`` float32 in [0, 1] and its provenance record."""
    if n_random > CT_HELDOUT_SEEDS[0]:
        raise ValueError("n_random would overlap the held-out seeds")
    images = [hu_to_unit(random_ct_phantom(s)) for s in range(n_random)]
    images += list(hu_to_unit(shepp_logan_ct_slices()))
    return np.stack(images), {
        "sources": ["random ellipse anatomy phantoms (medrecon.training.datasets.random_ct_phantom)",
                    "scikit-image shepp_logan_phantom", "phantominator ct_shepp_logan (modified)"],
        "hu_window": list(CT_HU_WINDOW),
        "mapping": "unit = clip((HU + 1000) / 2000, 0, 1)",
        "random_seeds": [0, n_random],
        "heldout_seeds": list(CT_HELDOUT_SEEDS),
    }
