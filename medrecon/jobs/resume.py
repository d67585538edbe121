"""Per-slice results and sampler checkpoints of an unfinished volume job, kept in ``<out>/.partial/``.

Every finished chunk of slices is saved at once (one file per slice), and the sampler checkpoints its state
and generator every ``run.checkpoint_every`` steps, so ``--resume`` continues from the last finished slice and
the last checkpointed step. The folder records the spec hash: resuming with a different spec is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ..errors import ConfigError, InputError
from ..files import atomic_path, load_tensors, write_json_atomic

__all__ = ["PartialRun"]



class PartialRun:
    """The ``.partial`` folder of one output directory."""

    def __init__(self, out: Path):
        self.root = Path(out) / ".partial"

    def start(self, spec_hash: str, resume: bool) -> bool:
        """Prepare the folder; returns whether earlier results are reused.

        Without ``resume`` any earlier partial results are discarded. With ``resume`` they are kept when the
        spec hash matches, and a ``ConfigError`` is raised when it does not.
        """
        marker = self.root / "spec_hash.json"
        if resume and marker.is_file():
            try:
                recorded = json.loads(marker.read_text())["spec_hash"]
                if not isinstance(recorded, str):
                    raise TypeError(type(recorded).__name__)
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
                raise InputError(marker, f"unreadable resume record ({type(err).__name__}: {err})",
                                 field="spec_hash") from None
            if recorded != spec_hash:
                raise ConfigError(
                    f"{self.root.parent} holds an unfinished run of a different job (spec hash "
                    f"{recorded[:12]}, this job {spec_hash[:12]}); rerun without --resume or choose another "
                    "--out"
                )
            return True
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        write_json_atomic(marker, {"spec_hash": spec_hash})
        return False

    def slice_path(self, index: int) -> Path:
        return self.root / f"slice_{index:05d}.pt"

    def checkpoint_path(self, chunk: int) -> Path:
        """The folder where the sampler checkpoints chunk ``chunk`` (state and generator)."""
        return self.root / f"chunk_{chunk:05d}.state"

    def has_slices(self, indices: range) -> bool:
        return all(self.slice_path(i).is_file() for i in indices)

    def save_slices(self, start: int, images: torch.Tensor) -> None:
        """Save ``images[k]`` as slice ``start + k`` (atomically, one file each)."""
        for k in range(images.shape[0]):
            with atomic_path(self.slice_path(start + k)) as tmp:
                torch.save(images[k].detach().cpu().clone(), tmp)

    def load_slices(self, indices: range, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """Stack the saved slices ``indices`` (weights-only loading; nothing is unpickled).

        A file that is not a saved tensor (a planted pickle, a truncated write) or has another ``shape`` than
        the job's images is an ``InputError`` naming it.
        """
        slices = []
        for i in indices:
            path = self.slice_path(i)
            t = load_tensors(path)
            if not isinstance(t, torch.Tensor):
                raise InputError(path, f"expected a saved image tensor, found {type(t).__name__}")
            if shape is not None and tuple(t.shape) != tuple(shape):
                raise InputError(path, f"saved slice has shape {tuple(t.shape)}, the job's images {tuple(shape)}")
            slices.append(t)
        return torch.stack(slices)

    def finish(self) -> None:
        """Remove the folder once the final outputs are written."""
        shutil.rmtree(self.root, ignore_errors=True)
