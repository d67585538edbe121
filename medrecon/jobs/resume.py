"""Per-slice results and sampler checkpoints of an unfinished volume job, kept in ``<out>/.partial/``.

Every finished chunk of slices is saved at once (one file per slice), and the sampler checkpoints its state
and generator every ``run.checkpoint_every`` steps, so ``--resume`` continues from the last finished slice and
the last checkpointed step. The folder records the spec hash: resuming with a different spec is refused.

``--resume`` says what it continues from (``progress``, also written to ``record.json`` as ``resumed_from``). On a
folder that holds a *finished* run of the same job (``record.json``, no ``.partial``) there is nothing left to do:
``finished_run`` finds it and ``medrecon run --resume`` says so and exits 0 without recomputing; a finished run of
a different job is refused (exit 2) rather than overwritten.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ..errors import ConfigError, InputError
from ..files import atomic_path, load_tensors, write_json_atomic

__all__ = ["PartialRun", "describe_progress", "finished_run"]


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

    def extras_path(self, index: int) -> Path:
        return self.root / f"slice_{index:05d}.extras.pt"

    def save_extras(self, start: int, extras: dict[str, torch.Tensor]) -> None:
        """Save each slice's further sampler outputs (``extras[name][k]`` for slice ``start + k``) atomically."""
        if not extras:
            return
        for k in range(next(iter(extras.values())).shape[0]):
            with atomic_path(self.extras_path(start + k)) as tmp:
                torch.save({name: v[k].detach().cpu().clone() for name, v in extras.items()}, tmp)

    def load_extras(self, indices: range) -> dict[str, torch.Tensor]:
        """The saved further outputs of slices ``indices``, stacked (empty when none were saved); a file that is
        not a dict of tensors is an ``InputError`` naming it."""
        if not all(self.extras_path(i).is_file() for i in indices):
            return {}
        parts = []
        for i in indices:
            path = self.extras_path(i)
            t = load_tensors(path)
            if not isinstance(t, dict) or not all(isinstance(v, torch.Tensor) for v in t.values()):
                raise InputError(path, f"expected a dict of saved tensors, found {type(t).__name__}")
            parts.append(t)
        return {name: torch.stack([p[name] for p in parts]) for name in parts[0]}

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

    def _checkpoint_step(self, chunk: int) -> tuple[int, int] | None:
        """``(step, num_steps)`` of the sampler checkpoint of ``chunk`` (the least over its memory sub-chunks),
        or None without one; unreadable records count as none (``load_checkpoint`` reports them by name)."""
        steps = []
        for record in sorted(self.checkpoint_path(chunk).glob("*/state.json")):
            try:
                data = json.loads(record.read_text())
                steps.append((int(data["step"]), int(data["num_steps"])))
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
                return None
        return min(steps) if steps else None

    def progress(self, chunks: list[range], unfinished: bool = True) -> dict:
        """What a resumed run starts from: the folder, finished slices and chunks, and the first unfinished
        chunk's checkpointed sampler step (``None`` values when there is none). ``unfinished``: whether
        ``start`` kept an earlier run (False: everything starts from the beginning)."""
        marker = unfinished and (self.root / "spec_hash.json").is_file()
        done = [k for k, idx in enumerate(chunks) if marker and self.has_slices(idx)]
        pending = [k for k in range(len(chunks)) if k not in done]
        step = self._checkpoint_step(pending[0]) if marker and pending else None
        return {
            "folder": str(self.root.parent),
            "unfinished_run": marker,
            "slices_done": sum(len(chunks[k]) for k in done),
            "slices_total": sum(len(c) for c in chunks),
            "chunks_done": len(done),
            "chunks_total": len(chunks),
            "next_chunk": pending[0] if pending else None,
            "next_chunk_step": None if step is None else step[0],
            "num_steps": None if step is None else step[1],
        }

    def finish(self) -> None:
        """Remove the folder once the final outputs are written."""
        shutil.rmtree(self.root, ignore_errors=True)


def describe_progress(info: dict) -> str:
    """One line for ``progress``: ``resuming OUT: 8 of 16 slices done (2 of 4 chunks); chunk 2 from step 30 of
    50``, or that there was nothing unfinished to resume."""
    if not info["unfinished_run"]:
        return f"resume: {info['folder']} holds no unfinished run of this job; starting from the first slice"
    text = (
        f"resuming {info['folder']}: {info['slices_done']} of {info['slices_total']} slices done "
        f"({info['chunks_done']} of {info['chunks_total']} chunks)"
    )
    if info["next_chunk"] is not None:
        step = info["next_chunk_step"]
        text += f"; chunk {info['next_chunk']} " + (
            "from its first step" if step is None else f"from step {step} of {info['num_steps']}"
        )
    return text


def finished_run(out: Path, spec_hash: str) -> dict | None:
    """The ``record.json`` of a finished run in ``out`` (no ``.partial`` left), or None.

    Raises ``ConfigError`` when that finished run came from a different job (``--resume`` would overwrite it).
    """
    out = Path(out)
    record_path = out / "record.json"
    if (out / ".partial").exists() or not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        recorded = record["spec_hash"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise InputError(record_path, f"unreadable run record ({type(err).__name__}: {err})",
                         field="spec_hash") from None
    if recorded != spec_hash:
        raise ConfigError(
            f"{out} holds a finished run of a different job (spec hash {str(recorded)[:12]}, this job "
            f"{spec_hash[:12]}); --resume would overwrite it: choose another --out or rerun without --resume"
        )
    return record
