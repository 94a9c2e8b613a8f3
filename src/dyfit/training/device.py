"""Where training runs: the torch device and the number of CPU threads.

Torch gets as many threads as there are free cores: oversubscribed threads ran
30–200× slower in training.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from dyfit.errors import InputError

__all__ = ["free_cores", "torch_threads", "resolve_device"]


def free_cores() -> int:
    """Cores this process may use minus the current load (1-minute average), at least 1."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, n - int(os.getloadavg()[0]))


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``threads`` torch CPU threads (None: :func:`free_cores`); yields
    the count and restores the previous one afterwards."""
    before = torch.get_num_threads()
    threads = threads or free_cores()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str) -> torch.device:
    """The torch device for ``device``: "cpu", "cuda", or "auto" (CUDA when torch sees a GPU)."""
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but torch sees no CUDA GPU; use 'cpu' or 'auto'")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)
