"""Checkpoints of a sampler run: the full ``State`` and the generator, as tensors plus a JSON record.

Files in the checkpoint folder: ``state.pt`` (a flat dict of tensors written with ``torch.save``, read back with
``weights_only=True``) and ``state.json`` (step, sampler name, number of steps). Both are replaced atomically,
``state.pt`` first; it holds the step too, so a run killed between the two replacements resumes from the
tensors' own step, not the record's older one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from medrecon.errors import InputError
from medrecon.files import load_tensors

from .state import State

__all__ = ["load_checkpoint", "save_checkpoint"]

_FIXED = ("x", "x0", "log_weights")


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(folder: str | Path, state: State, generator: torch.Generator, meta: dict) -> None:
    """Write ``state`` and ``generator``'s state to ``folder`` (created if missing); ``meta`` goes to JSON."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: getattr(state, k).detach().cpu() for k in _FIXED}
    tensors.update({f"aux.{k}": v.detach().cpu() for k, v in state.aux.items()})
    tensors["generator"] = generator.get_state()
    tensors["step"] = torch.tensor(state.step, dtype=torch.int64)
    _atomic(folder / "state.pt", lambda p: torch.save(tensors, p))
    record = {"step": state.step, **meta}
    _atomic(folder / "state.json", lambda p: Path(p).write_text(json.dumps(record, indent=1)))


def load_checkpoint(
    folder: str | Path, generator: torch.Generator, device: torch.device | str, expect: dict
) -> State | None:
    """The saved ``State`` (on ``device``) with ``generator`` restored, or None when ``folder`` has none.

    Raises ``InputError`` when the record disagrees with ``expect`` (e.g. another sampler or step count).
    """
    folder = Path(folder)
    record_path = folder / "state.json"
    if not record_path.exists():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(str(record_path), f"unreadable checkpoint record ({err})", "step") from None
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        raise InputError(str(record_path), "expected a JSON object with an integer step", "step")
    for key, value in expect.items():
        if record.get(key) != value:
            raise InputError(str(record_path), f"checkpoint has {key}={record.get(key)!r}, run has {value!r}", key)
    state_path = folder / "state.pt"
    tensors = load_tensors(state_path)
    if (
        not isinstance(tensors, dict)
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items())
        or any(k not in tensors for k in (*_FIXED, "generator"))
    ):
        raise InputError(state_path, f"expected a dict of tensors with {', '.join((*_FIXED, 'generator'))}")
    try:
        generator.set_state(tensors.pop("generator"))
    except (RuntimeError, TypeError, ValueError) as err:
        raise InputError(state_path, f"invalid generator state ({err})", "generator") from None
    step = int(tensors.pop("step")) if "step" in tensors else int(record["step"])  # older files: the record's
    fixed = {k: tensors.pop(k).to(device) for k in _FIXED}
    aux = {k[len("aux."):]: v.to(device) for k, v in tensors.items()}
    return State(step=step, aux=aux, **fixed)
