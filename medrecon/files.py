"""File helpers shared by every package: atomic output (write to a temporary sibling, then rename, so a killed
process never leaves a file that looks complete) and sha256 checksums against recorded values.

Imports only the standard library and ``medrecon.errors``, so ``io``, ``priors``, ``training`` and ``jobs`` can all
use it without importing each other.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ChecksumError, InputError

__all__ = [
    "atomic_path",
    "ensure_writable_dir",
    "load_tensors",
    "read_json_object",
    "sha256_file",
    "verify_sha256",
    "write_json_atomic",
]


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it is renamed over ``target``, on error removed.

    ``suffix`` defaults to the target's suffix so writers that infer formats from extensions keep working.
    """
    target = Path(target)
    ensure_writable_dir(target.parent)
    suffix = suffix if suffix is not None else "".join(target.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # mkstemp creates 0600; give the file the permissions a plain open() would
            os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(target: str | Path, payload: object) -> None:
    """Write ``payload`` as indented JSON to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json_object(path: str | Path, what: str) -> dict:
    """The JSON object in ``path``; ``InputError`` naming ``what`` (e.g. "checkpoint sidecar") when the file is
    missing, unreadable or not an object."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, f"{what} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(path, f"not a readable JSON {what} ({err})") from None
    if not isinstance(value, dict):
        raise InputError(path, f"{what} must be a JSON object")
    return value


def ensure_writable_dir(directory: str | Path) -> Path:
    """Create ``directory`` if needed and check it is writable; raise ``InputError`` naming it otherwise."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(directory, f"cannot create output directory ({err.strerror})") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(directory, "output directory is not writable")
    return directory


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str | None) -> str:
    """The file's sha256; ``ChecksumError`` naming the file when ``expected`` is given and differs."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    actual = sha256_file(path)
    if expected is not None and actual != expected.lower():
        raise ChecksumError(path, f"sha256 mismatch: expected {expected.lower()}, got {actual}", field="sha256")
    return actual


def load_tensors(path: str | Path):
    """``torch.load(path, weights_only=True)``; anything that fails (a pickle with code in it, a truncated or
    foreign file) is an ``InputError`` naming the file, never unpickled."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except Exception as err:  # noqa: BLE001 - whatever the file holds, the user gets one line
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err) or "Unsupported global" in str(err) or "Unpickler" in str(err):
            reason = "it holds pickled objects, not only tensors (refused by weights-only loading)"
        raise InputError(
            path, f"not a medrecon tensor file: {reason}; remove it (or rerun without --resume)"
        ) from None
