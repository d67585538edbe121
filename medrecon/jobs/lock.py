"""One job at a time per output folder: ``<out>/.medrecon.lock``, created atomically (``O_EXCL``), holds the pid.

A second ``medrecon run`` on a folder whose lock belongs to a live process fails with one line naming the lock
and the pid; a lock left by a process that no longer exists (killed, crashed machine) is taken over. The lock
is removed when the job ends, whether it succeeded or failed.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from ..errors import InputError

__all__ = ["LOCK_NAME", "OutputLock"]

LOCK_NAME = ".medrecon.lock"
FRESH_S = 10.0  # a lock file younger than this with no pid yet is being written by its owner: treat it as held


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return False
    return True


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class OutputLock:
    """The lock of one output folder; use as a context manager (``with OutputLock(out): ...``)."""

    def __init__(self, out: str | Path):
        self.path = Path(out) / LOCK_NAME
        self.held = False

    def _busy(self, pid: int | None) -> InputError:
        who = f"pid {pid}" if pid is not None else "a process starting up"
        return InputError(
            self.path,
            f"the output folder is in use by another medrecon run ({who}); wait for it to finish or choose "
            "another --out",
            field="pid",
        )

    def check(self) -> None:
        """Raise the ``acquire`` error now if a live process holds the lock; creates nothing (``medrecon check``
        and the start of ``run_job``, before any compute)."""
        if not self.path.is_file():
            return
        pid = _read_pid(self.path)
        if pid is None:
            try:
                fresh = time.time() - self.path.stat().st_mtime < FRESH_S
            except FileNotFoundError:
                return
            if fresh:
                raise self._busy(None)
        elif _alive(pid):
            raise self._busy(pid)

    def acquire(self) -> OutputLock:
        """Take the lock; ``InputError`` if a live process holds it. A stale lock (dead pid) is taken over."""
        for _attempt in range(5):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid = _read_pid(self.path)
                if pid is None:
                    try:
                        age = time.time() - self.path.stat().st_mtime
                    except FileNotFoundError:
                        continue  # released meanwhile: try again
                    if age < FRESH_S:
                        raise self._busy(None) from None
                elif _alive(pid):
                    raise self._busy(pid) from None
                self._take_over(pid)
                continue
            except OSError as err:
                raise InputError(self.path, f"cannot create the output folder's lock ({err.strerror or err})") from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return self
        raise InputError(self.path, "could not take the output folder's lock (other runs keep taking it)")

    def _take_over(self, stale: int | None) -> None:
        """Move the stale lock aside atomically; if what was moved is not the stale lock, put it back."""
        aside = self.path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        moved = _read_pid(aside)
        if moved != stale and moved is not None and _alive(moved):
            with contextlib.suppress(OSError):
                os.link(aside, self.path)  # a live run took the lock meanwhile: give it back (never clobbers)
        with contextlib.suppress(OSError):
            os.unlink(aside)

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if self.held:
            self.held = False
            if _read_pid(self.path) == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)

    def __enter__(self):  # returns the lock itself
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
