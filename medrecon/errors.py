"""Errors that reach the user as one clear line (the CLI prints them and exits non-zero)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["ChecksumError", "ConfigError", "InputError", "MedreconError"]


class MedreconError(Exception):
    """Base class: a problem with the user's input, configuration or environment (not a bug).

    Its text is always one line (line breaks inside, e.g. from a YAML parser's message, become spaces).
    """

    def __str__(self) -> str:
        text = super().__str__()
        lines = text.splitlines()
        return text if len(lines) <= 1 else " ".join(line.strip() for line in lines if line.strip())


class InputError(MedreconError):
    """A data or checkpoint file is missing, unreadable or wrong; names the file and the field."""

    def __init__(self, path: str | Path, message: str, field: str | None = None):
        self.path = str(path)
        self.field = field
        where = f"{self.path}" + (f" [{field}]" if field else "")
        super().__init__(f"{where}: {message}")


class ConfigError(MedreconError):
    """A job or training configuration is invalid (unknown key, wrong type, bad value)."""


class ChecksumError(InputError):
    """A file's sha256 differs from the one recorded in its manifest."""
