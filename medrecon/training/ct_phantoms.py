"""Analytic CT phantoms as extra training slices for the CT head prior: the FORBILD head phantom (through odl) and
xdesign's test phantoms, in HU and in the [0, 1] HU window of ``datasets.hu_to_unit``.

FORBILD (``odl.core.phantom.transmission.forbild``, odl >= 1.0, MPL-2.0): the 2D head phantom of Lauritsch and
Bruder / Yu et al. (2012). odl returns its "density" values: air 0, CSF 1.045, low-contrast spheres 1.0475 and
1.0525, brain 1.050, blood 1.055, eyes 1.060, bone 1.800 (air cavities of the ear 0). They are read as attenuation
relative to water, the usual reading of this phantom, so the nominal map is ``HU = 1000 (rho - 1)``: brain
+50 HU, CSF +45, blood +55, eyes +60, bone +800. Per slice the map is jittered (piecewise linear in rho through
``0 -> -1000``, ``1 -> w``, ``1.1 -> w + 100 g``, ``1.8 -> B`` with water point ``w`` in -10..5 HU, soft-tissue
gain ``g`` in 0.7..1.1 and bone ``B`` in 700..1300 HU; the nominal map is ``w = 0, g = 1, B = 800``), so brain
lies at 25-60 HU. The right "ear" (temporal bone with air cells) is present in 70% of the slices; the
sub-millimetre resolution pattern is left out.

xdesign (``xdesign`` 0.5.5, BSD-3): one of seven of its phantoms per slice, cycling with the seed:
  * ``foam``: ``Foam`` (a disc riddled with circular pores), 100-220 mm across in air; either trabecular bone
    (solid 300-1300 HU, pores of marrow/fat -120..60 HU) or lung-like tissue (solid 0-80 HU, air pores).
  * ``soil``: ``Soil`` (grains and pores in a matrix disc), 100-220 mm in air; pores -1000..-300 HU, matrix
    50-400 HU, grains 500-1500 HU.
  * ``doga_circles``, ``siemens_star``, ``hyperbolic_concentric``, ``slanted_squares``: the resolution and
    detectability patterns as the insert of a water cylinder (140-240 mm, -10..40 HU, 60% with a 2-6 mm wall of
    100-250 HU), the way a CT QA phantom holds its modules; the insert is bone-like (200-1300 HU), low contrast
    (5-60 HU above or below the fill), air (-1000..-800) or fat (-130..-60).
  * ``dynamic_range``: ``DynamicRange``'s 4-12 circles as sensitometry inserts of the same cylinder, their
    levels spread evenly from -1000..-100 HU to 200..1300 HU.
xdesign draws its random layouts from numpy's global generator: it is seeded from the slice's seed for the
construction and restored afterwards.

Geometry (both sources): any in-plane rotation, anisotropic zoom 0.85-1.15, shift +-12 mm, a field of view of
220-300 mm across the grid (or, with ``spacing_mm = (lo, hi)``, a pixel spacing log-uniform in [lo, hi] as for
``head_ct.random_head_ct``); the phantom is drawn on a canvas finer than the output, resampled onto a 2x grid and
area-downsampled. No noise is added. Everything is deterministic in the seed; training slices use seeds
``0..n-1`` of each source's own random stream.
"""
from __future__ import annotations

import functools
import logging
import sys
import types
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np

from .datasets import IMAGE_SIZE, hu_to_unit

__all__ = [
    "FORBILD_STREAM",
    "XDESIGN_KINDS",
    "XDESIGN_STREAM",
    "forbild_density",
    "forbild_hu",
    "forbild_slices",
    "import_xdesign",
    "package_record",
    "random_forbild_hu",
    "random_xdesign_hu",
    "xdesign_slices",
]

AIR_HU = -1000.0
FORBILD_STREAM = 4401  # the second entry of each source's seed sequence (``head_ct`` uses 152 and 153)
XDESIGN_STREAM = 4402
FORBILD_HALF_WIDTH_MM = 135.0  # the phantom spans x in [-96, 133] mm (with the ear), y in [-120, 120] mm
XDESIGN_KINDS = ("foam", "soil", "doga_circles", "dynamic_range", "siemens_star", "hyperbolic_concentric",
                 "slanted_squares")
SOURCE_PACKAGES = {"forbild": "odl", "xdesign": "xdesign"}


# ----------------------------------------------------------------------------------------------- geometry


def _output_spacing(seed: int, stream: int, rng: np.random.Generator, size: int,
                    spacing_mm: tuple[float, float] | None) -> float:
    """mm per output pixel: a field of view of 220-300 mm, or log-uniform in ``spacing_mm`` (own stream)."""
    fov = rng.uniform(220, 300)
    if spacing_mm is None:
        return fov / size
    lo, hi = (float(v) for v in spacing_mm)
    if not 0 < lo <= hi:
        raise ValueError(f"spacing_mm must satisfy 0 < lo <= hi, got {spacing_mm}")
    return float(np.exp(np.random.default_rng([seed, stream, 1]).uniform(np.log(lo), np.log(hi))))


def _canvas_pixel(fine_mm: float) -> float:
    """The canvas pixel (mm): the largest 0.1 * 2^k mm not above the fine grid's spacing, within 0.1-1.6 mm."""
    k = int(np.floor(np.log2(max(fine_mm, 0.1) / 0.1) + 1e-9))
    return 0.1 * 2 ** min(max(k, 0), 4)


def _resample(rng: np.random.Generator, canvas: np.ndarray, pixel_mm: float, size: int, spacing: float) -> np.ndarray:
    """Rotate (any angle), zoom (0.85-1.15 per axis) and shift (+-12 mm) ``canvas`` (HU, centred on the
    origin, ``pixel_mm`` pixels) onto a ``(2 size)^2`` grid of ``spacing / 2`` mm; area-downsample to ``size``."""
    from scipy.ndimage import map_coordinates

    theta = rng.uniform(-np.pi, np.pi)
    sy, sx = rng.uniform(0.85, 1.15, size=2)
    dy, dx = rng.uniform(-12, 12, size=2)
    n = 2 * size
    g = (np.arange(n) - (n - 1) / 2) * (spacing / 2)
    v, u = np.meshgrid(g, g, indexing="ij")
    c, s = np.cos(theta), np.sin(theta)
    y = ((c * v - s * u) - dy) / sy
    x = ((s * v + c * u) - dx) / sx
    rows = y / pixel_mm + (canvas.shape[0] - 1) / 2
    cols = x / pixel_mm + (canvas.shape[1] - 1) / 2
    out = map_coordinates(canvas, [rows, cols], order=1, mode="constant", cval=AIR_HU)
    return out.reshape(size, 2, size, 2).mean(axis=(1, 3)).astype(np.float32)


def _stack(fn: Callable[..., np.ndarray], seeds: Sequence[int], size: int,
           spacing_mm: tuple[float, float] | None) -> np.ndarray:
    if not len(seeds):
        return np.zeros((0, size, size), np.float32)
    return hu_to_unit(np.stack([fn(int(s), size, spacing_mm) for s in seeds])).astype(np.float32)


# ----------------------------------------------------------------------------------------------- FORBILD


@functools.lru_cache(maxsize=8)
def forbild_density(pixel_mm: float, ear: bool = True) -> np.ndarray:
    """odl's FORBILD phantom ("density", see the module docstring) sampled at pixel centres of a square canvas of
    ``pixel_mm`` pixels spanning +-135 mm about the phantom's centre; rows from anterior (+y) down, columns +x.
    Read-only (cached)."""
    import odl
    from odl.core.phantom.transmission import forbild

    m = int(round(2 * FORBILD_HALF_WIDTH_MM / pixel_mm))
    half_cm = m * pixel_mm / 20
    space = odl.uniform_discr([-half_cm, -half_cm], [half_cm, half_cm], [m, m])
    rho = np.asarray(forbild(space, resolution=False, ear=ear, value_type="density", scale="cm").asarray())
    img = np.ascontiguousarray(rho.T[::-1], dtype=np.float64)  # odl's axes are (x, y): rows = -y, columns = x
    img.flags.writeable = False
    return img


def forbild_hu(rho: np.ndarray, water_hu: float = 0.0, gain: float = 1.0, bone_hu: float = 800.0) -> np.ndarray:
    """FORBILD density -> HU, piecewise linear through ``0 -> -1000``, ``1 -> water_hu``, ``1.1 -> water_hu +
    100 gain``, ``1.8 -> bone_hu``; the defaults give ``1000 (rho - 1)``."""
    return np.interp(rho, [0.0, 1.0, 1.1, 1.8], [AIR_HU, water_hu, water_hu + 100 * gain, bone_hu])


def random_forbild_hu(seed: int, size: int = IMAGE_SIZE, spacing_mm: tuple[float, float] | None = None) -> np.ndarray:
    """One FORBILD head slice in HU, ``(size, size)`` float32, deterministic in ``seed`` (module docstring)."""
    rng = np.random.default_rng([seed, FORBILD_STREAM])
    spacing = _output_spacing(seed, FORBILD_STREAM, rng, size, spacing_mm)
    ear = bool(rng.random() < 0.7)
    hu = forbild_hu(forbild_density(_canvas_pixel(spacing / 2), ear),
                    rng.uniform(-10, 5), rng.uniform(0.7, 1.1), rng.uniform(700, 1300))
    return _resample(rng, hu, _canvas_pixel(spacing / 2), size, spacing)


def forbild_slices(seeds: Sequence[int], size: int = IMAGE_SIZE,
                   spacing_mm: tuple[float, float] | None = None) -> np.ndarray:
    """``random_forbild_hu`` for each seed in the [0, 1] HU window -> ``(len(seeds), size, size)`` float32."""
    return _stack(random_forbild_hu, seeds, size, spacing_mm)


# ----------------------------------------------------------------------------------------------- xdesign


def import_xdesign() -> types.ModuleType:
    """Import xdesign 0.5.5, which reads its own version through ``pkg_resources`` (no longer shipped by
    setuptools >= 81) and calls ``logging.basicConfig()`` on import: a stand-in ``pkg_resources`` is provided
    only while it imports (when the real one is missing), and any root-logger handler it adds is removed."""
    if "xdesign" in sys.modules:
        return sys.modules["xdesign"]
    root = logging.getLogger()
    handlers = list(root.handlers)
    stub = None
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        stub = types.ModuleType("pkg_resources")

        class DistributionNotFound(Exception):
            pass

        def get_distribution(name):
            raise DistributionNotFound(name)

        stub.DistributionNotFound = DistributionNotFound
        stub.get_distribution = get_distribution
        sys.modules["pkg_resources"] = stub
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import xdesign
    finally:
        if stub is not None and sys.modules.get("pkg_resources") is stub:
            del sys.modules["pkg_resources"]
        for h in root.handlers[:]:
            if h not in handlers:
                root.removeHandler(h)
    return xdesign


@contextmanager
def _global_numpy_seed(seed: int):
    """Seed numpy's global generator (xdesign draws from it) for the block; restore its state after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Reached termination criteria of 500 attempts" and the like
            yield
    finally:
        np.random.set_state(state)


def _disc(n: int, pixel_mm: float, radius_mm: float) -> np.ndarray:
    g = (np.arange(n) - (n - 1) / 2) * pixel_mm
    return np.hypot(g[:, None], g[None, :]) <= radius_mm


def _paste(canvas: np.ndarray, patch: np.ndarray) -> None:
    """Add ``patch`` to the centre of ``canvas`` (in place)."""
    r0, c0 = (canvas.shape[0] - patch.shape[0]) // 2, (canvas.shape[1] - patch.shape[1]) // 2
    canvas[r0:r0 + patch.shape[0], c0:c0 + patch.shape[1]] += patch


def _raster(xd: types.ModuleType, phantom, width_mm: float, pixel_mm: float) -> np.ndarray:
    """``xdesign.discrete_phantom`` of ``phantom`` (its unit square scaled to ``width_mm``) at ``pixel_mm``."""
    return np.asarray(xd.discrete_phantom(phantom, max(2, int(round(width_mm / pixel_mm))), ratio=1), np.float64)


def _insert_hu(rng: np.random.Generator, fill: float) -> float:
    kind = rng.choice(["bone", "low", "air", "fat"], p=[0.35, 0.35, 0.15, 0.15])
    if kind == "bone":
        return rng.uniform(200, 1300)
    if kind == "low":
        return fill + rng.choice([-1, 1]) * rng.uniform(5, 60)
    return rng.uniform(-1000, -800) if kind == "air" else rng.uniform(-130, -60)


def _xdesign_canvas(kind: str, rng: np.random.Generator, pixel_mm: float) -> np.ndarray:
    """The HU canvas of one xdesign phantom of ``kind`` (module docstring), centred, air around."""
    xd = import_xdesign()
    np_seed = int(rng.integers(2**32))
    if kind in ("foam", "soil"):
        diameter = rng.uniform(100, 220)
        n = int(np.ceil((diameter + 20) / pixel_mm))
        canvas = np.full((n, n), AIR_HU)
        with _global_numpy_seed(np_seed):
            if kind == "foam":
                big = rng.uniform(0.04, 0.1)
                p = xd.Foam(size_range=[big, rng.uniform(0.01, big / 2)], gap=rng.uniform(0, 0.01),
                            porosity=rng.uniform(0.2, 0.5))
            else:
                p = xd.Soil(porosity=rng.uniform(0.3, 0.5))
        if kind == "foam":  # solid disc with pores: set the disc to solid - air, each pore to pore - solid
            solid, pore = ((rng.uniform(300, 1300), rng.uniform(-120, 60)) if rng.random() < 0.5
                           else (rng.uniform(0, 80), rng.uniform(-1000, -850)))
            p.material = xd.SimpleMaterial(solid - AIR_HU)
            for child in p.children:
                child.material = xd.SimpleMaterial(pore - solid)
            _paste(canvas, _raster(xd, p, diameter, pixel_mm))
        else:  # xdesign's levels: pores 0.25, matrix 0.5, eroded grains 0.75, grains 1 (outside 0)
            pore, matrix, grain = rng.uniform(-1000, -300), rng.uniform(50, 400), rng.uniform(500, 1500)
            level = _raster(xd, p, diameter, pixel_mm)
            _paste(canvas, np.interp(level, [0, 0.25, 0.5, 0.75, 1.0],
                                     [AIR_HU, pore, matrix, (matrix + grain) / 2, grain]) - AIR_HU)
        return canvas
    # a water cylinder holding the pattern as its insert
    diameter = rng.uniform(140, 240)
    wall = rng.uniform(2, 6) if rng.random() < 0.6 else 0.0
    n = int(np.ceil((diameter + 2 * wall + 20) / pixel_mm))
    fill = rng.uniform(-10, 40)
    canvas = np.full((n, n), AIR_HU)
    canvas[_disc(n, pixel_mm, diameter / 2 + wall)] = rng.uniform(100, 250)
    canvas[_disc(n, pixel_mm, diameter / 2)] = fill
    with _global_numpy_seed(np_seed):
        if kind == "doga_circles":
            p = xd.DogaCircles(n_sizes=int(rng.integers(3, 7)), size_ratio=rng.uniform(0.45, 0.8),
                               n_shuffles=int(rng.integers(0, 7)))
        elif kind == "siemens_star":
            p = xd.SiemensStar(n_sectors=2 * int(rng.integers(4, 17)))
        elif kind == "hyperbolic_concentric":
            p = xd.HyperbolicConcentric(min_width=rng.uniform(0.05, 0.12), exponent=rng.uniform(0.45, 0.7))
        elif kind == "slanted_squares":
            p = xd.SlantedSquares(count=int(rng.integers(4, 21)), angle=rng.uniform(0, 0.35),
                                  gap=rng.uniform(0, 0.03))
        elif kind == "dynamic_range":
            steps = int(rng.integers(4, 13))
            p = xd.DynamicRange(steps=steps, jitter=True)
        else:
            raise ValueError(f"unknown xdesign phantom kind {kind!r}")
    if kind == "dynamic_range":  # level 2^k -> an evenly spaced HU ramp over k
        levels = np.linspace(rng.uniform(-1000, -100), rng.uniform(200, 1300), steps)
        for child in p.children:
            k = int(round(np.log2(child.material.mass_attenuation(0))))
            child.material = xd.SimpleMaterial(levels[k] - fill)
        _paste(canvas, _raster(xd, p, diameter * rng.uniform(0.5, 0.65), pixel_mm))
    else:  # binary patterns (0 or 1, 1 = the pattern)
        _paste(canvas, (_insert_hu(rng, fill) - fill) * _raster(xd, p, diameter * rng.uniform(0.55, 0.8), pixel_mm))
    return canvas


def random_xdesign_hu(seed: int, size: int = IMAGE_SIZE, spacing_mm: tuple[float, float] | None = None,
                      kind: str | None = None) -> np.ndarray:
    """One xdesign phantom slice in HU, ``(size, size)`` float32, deterministic in ``seed``; ``kind`` defaults to
    ``XDESIGN_KINDS[seed % 7]`` (module docstring)."""
    kind = XDESIGN_KINDS[seed % len(XDESIGN_KINDS)] if kind is None else kind
    rng = np.random.default_rng([seed, XDESIGN_STREAM])
    spacing = _output_spacing(seed, XDESIGN_STREAM, rng, size, spacing_mm)
    pixel = _canvas_pixel(spacing / 2)
    return _resample(rng, _xdesign_canvas(kind, rng, pixel), pixel, size, spacing)


def xdesign_slices(seeds: Sequence[int], size: int = IMAGE_SIZE,
                   spacing_mm: tuple[float, float] | None = None) -> np.ndarray:
    """``random_xdesign_hu`` for each seed in the [0, 1] HU window -> ``(len(seeds), size, size)`` float32."""
    return _stack(random_xdesign_hu, seeds, size, spacing_mm)


# ----------------------------------------------------------------------------------------------- provenance


def package_record(source: str) -> dict:
    """``{"package", "version", "licence"}`` of a source's package, the licence read from its metadata."""
    from importlib.metadata import PackageNotFoundError, metadata

    name = SOURCE_PACKAGES[source]
    try:
        meta = metadata(name)
    except PackageNotFoundError:
        return {"package": name, "version": "not installed", "licence": "unknown"}
    licence = meta.get("License-Expression") or meta.get("License")
    if not licence:
        licence = "; ".join(c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License"))
    return {"package": name, "version": meta["Version"], "licence": licence or "unknown"}
