"""CPU threads of the command line: OpenMP's wait policy and the size of torch's intra-op pool.

Measured on a 2-core machine with the shipped MRI prior (one denoiser call, 4 slices of 128x128): idle, 2 threads
take 0.40 s and 1 thread 0.68 s; beside one other busy process, 2 spinning threads take 1.1 s, 2 threads with
the passive wait policy 0.67 s and 1 thread 0.71 s; beside another 2-thread torch process, 1.9 s, 1.1 s and
1.3 s. OpenMP's default lets idle worker threads spin, and a spinning thread on a shared core slows every
parallel region; with ``OMP_WAIT_POLICY=PASSIVE`` the full pool is the fastest choice in each case.
"""
from __future__ import annotations

import os

__all__ = ["configure_threads", "prefer_passive_wait"]

WAIT_POLICY = "OMP_WAIT_POLICY"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def prefer_passive_wait() -> None:
    """Let OpenMP worker threads sleep instead of spin between parallel regions, unless ``OMP_WAIT_POLICY`` is
    set. Takes effect only when called before torch is imported (OpenMP reads it once)."""
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")


def configure_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads to ``requested`` when given; otherwise keep what torch chose (the
    ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` the user set, else the number of physical cores). Returns the
    thread count in use."""
    import torch

    if requested is not None:
        torch.set_num_threads(max(1, int(requested)))
    return torch.get_num_threads()
