"""sha256 of files, and verification against the value recorded in a manifest or job spec."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import ChecksumError, InputError

__all__ = ["sha256_file", "verify_sha256"]


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
