"""Joseph's ray-driven system matrix: line integrals through a bilinearly interpolated pixel grid.

Each ray steps through the pixel rows or columns it crosses most steeply; at every step the image is linearly
interpolated between the two nearest pixel centres (pixels outside the grid are zero) and weighted by the path
length per step, ``pixel_size / |cos|``. The matrix is built once per geometry with numpy and stored in CSR form
together with its exact transpose, so the back-projector is the transpose of the projector entry for entry.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["joseph_matrix"]

_CHUNK_ELEMENTS = 1 << 20  # ray x step entries per chunk: about 70 MB of temporaries


def _entries(points: np.ndarray, dirs: np.ndarray, h: int, w: int, pixel: float, along_cols: bool):
    """Row offsets (within the chunk), pixel indices and weights for rays stepping over columns or rows."""
    n = points.shape[0]
    if along_cols:  # step over columns, interpolate between rows
        steps = (np.arange(w) - (w - 1) / 2) * pixel
        t = (steps[None, :] - points[:, :1]) / dirs[:, :1]
        across = ((h - 1) / 2) - (points[:, 1:2] + t * dirs[:, 1:2]) / pixel
        scale = pixel / np.abs(dirs[:, 0])
        limit, stride_step, stride_across = h, 1, w
    else:  # step over rows, interpolate between columns
        steps = ((h - 1) / 2 - np.arange(h)) * pixel
        t = (steps[None, :] - points[:, 1:2]) / dirs[:, 1:2]
        across = (points[:, :1] + t * dirs[:, :1]) / pixel + (w - 1) / 2
        scale = pixel / np.abs(dirs[:, 1])
        limit, stride_step, stride_across = w, w, 1
    lo = np.floor(across)
    frac = across - lo
    lo = lo.astype(np.int64)
    step_idx = np.arange(across.shape[1])[None, :] * stride_step
    idx = np.stack([lo, lo + 1], -1)  # (n, steps, 2)
    wts = np.stack([1.0 - frac, frac], -1) * scale[:, None, None]
    valid = (idx >= 0) & (idx < limit) & (wts != 0)
    pix = idx * stride_across + step_idx[..., None]
    ray = np.broadcast_to(np.arange(n)[:, None, None], idx.shape)
    return ray[valid], pix[valid], wts[valid]


def joseph_matrix(
    points: np.ndarray, dirs: np.ndarray, image_size: tuple[int, int], pixel_size: float,
    dtype: type = np.float64,
) -> sp.csr_matrix:
    """System matrix ``(n_rays, H * W)`` (CSR with sorted indices, values of ``dtype``, int32 indices when they
    fit) for rays through ``points`` along ``dirs``.

    Built chunk by chunk of rays: each chunk's entries become CSR rows at once (values cast to ``dtype``), so the
    peak memory stays near the stored matrix instead of the float64/int64 triplets of every entry.

    Args:
        points: a point on each ray in mm, ``(n_rays, 2)`` as ``(x, y)`` in the image frame of ``ct_geometry``.
        dirs: unit direction of each ray, ``(n_rays, 2)``.
        image_size: ``(H, W)``.
        pixel_size: pixel width in mm.
        dtype: value type of the matrix (``np.float32`` halves the memory of ``np.float64``).
    """
    h, w = image_size
    n_rays = points.shape[0]
    along_cols = np.abs(dirs[:, 0]) >= np.abs(dirs[:, 1])
    chunk = max(1, _CHUNK_ELEMENTS // max(h, w))
    counts, cols, vals = [np.zeros(1, np.int64)], [], []
    for start in range(0, n_rays, chunk):
        stop = min(start + chunk, n_rays)
        rows_c, cols_c, vals_c = [], [], []
        for mode in (True, False):
            sel = np.nonzero(along_cols[start:stop] == mode)[0]
            if sel.size == 0:
                continue
            r, c, v = _entries(points[start:stop][sel], dirs[start:stop][sel], h, w, pixel_size, mode)
            rows_c.append(sel[r])
            cols_c.append(c)
            vals_c.append(v)
        part = sp.csr_matrix((np.concatenate(vals_c).astype(dtype),
                              (np.concatenate(rows_c), np.concatenate(cols_c))), shape=(stop - start, h * w))
        part.sum_duplicates()  # sorts the indices of every row
        counts.append(np.diff(part.indptr).astype(np.int64))
        cols.append(part.indices.astype(np.int32 if h * w < 2**31 else np.int64))
        vals.append(part.data)
        del part, rows_c, cols_c, vals_c
    indptr = np.cumsum(np.concatenate(counts))
    index_type = np.int32 if indptr[-1] < 2**31 and h * w < 2**31 else np.int64
    indices = np.concatenate(cols).astype(index_type, copy=False) if cols else np.zeros(0, index_type)
    del cols
    data = np.concatenate(vals) if vals else np.zeros(0, dtype)
    del vals
    mat = sp.csr_matrix((data, indices, indptr.astype(index_type)), shape=(n_rays, h * w), copy=False)
    mat.has_sorted_indices = True
    return mat
