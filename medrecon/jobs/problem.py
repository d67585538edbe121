"""What a data component loads (``Volume``) and what an operator component builds from it
(``VolumeProblem``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from operators import LinearOperator

__all__ = ["Volume", "VolumeProblem"]


@dataclass
class Volume:
    """A loaded input volume.

    Attributes:
        modality: ``"mri"`` or ``"ct"``.
        path: the file it came from (``None`` when simulated).
        kspace: MRI multi-coil k-space ``(S, C, H, W)`` complex64 (fully sampled, or undersampled: ``mask``).
        image: CT ground-truth slices ``(S, H, W)`` float32, attenuation in 1/mm (measurements are simulated).
        sinogram: measured CT sinograms ``(S, views, det)`` float32, line integrals (``medrecon.io.sinogram``).
        reference: magnitude reference ``(S, h, w)`` for metrics (fastMRI ``reconstruction_rss``), if known.
        mask: the sampling mask stored with undersampled (test-set) k-space, if any.
        affine: 4x4 voxel-to-world matrix (NIfTI/DICOM geometry), if known.
        attrs: extra metadata (fastMRI ``max``, acquisition, ...).
        sha256: the input file's checksum (recorded in the run record).
    """

    modality: Literal["mri", "ct"]
    path: Path | None = None
    kspace: torch.Tensor | None = None
    image: torch.Tensor | None = None
    sinogram: torch.Tensor | None = None
    reference: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    affine: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None

    @property
    def num_slices(self) -> int:
        source = next((t for t in (self.kspace, self.image, self.sinogram) if t is not None), None)
        assert source is not None
        return int(source.shape[0])


@dataclass
class VolumeProblem:
    """Measurements of every slice plus the operator of any chunk of slices.

    Attributes:
        y: measurements ``(S, *range)`` (k-space ``(S, C, H, W)`` or sinograms ``(S, views, det)``).
        operator_for: ``indices -> A`` for the slices ``indices`` (a Python ``slice``); ``A`` maps images
            ``(len, H, W)`` to ``y[indices]``.
        image_shape: ``(H, W)`` of the reconstructed image.
        dtype: image dtype (complex64 for MRI, float32 for CT).
        crop: ``(h, w)`` centre crop of the written magnitude images (fastMRI's reconstruction size).
        mask: the sampling pattern for figures (``(W,)``/``(H, W)`` MRI mask, or view angles), if any.
        info: facts for ``check`` and the record (coil count, acceleration, views, ...).
    """

    y: torch.Tensor
    operator_for: Callable[[slice], LinearOperator]
    image_shape: tuple[int, int]
    dtype: torch.dtype
    crop: tuple[int, int]
    mask: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_slices(self) -> int:
        return int(self.y.shape[0])

    @property
    def domain_shape(self) -> tuple[int, ...]:
        """The operator's domain per slice: ``image_shape``, or ``(K, H, W)`` for ``K`` stacked sources
        (``info["sources"]``, dehazing's tissue and haze)."""
        sources = self.info.get("sources")
        return tuple(self.image_shape) if not sources else (len(sources), *self.image_shape)


