"""Keep freed memory in the process, so forward passes stop paying page faults for it.

glibc's malloc hands blocks over 32 MB back to the kernel on ``free`` (each is its own
``mmap``) and trims the heap's free top. A forward pass allocates and frees the same
activation buffers batch after batch, so every batch faults its buffers in again: the
report on a gpt2-small-shaped model took 3.2-3.6 million minor page faults and 16-19 s of
kernel time, 0.7 million and 4-7 s with freed memory kept (``benchmarks/bench_report.py``),
though its wall time on a warmed-up machine moved only within noise. On a virtual machine
whose host reclaims idle memory, each such fault costs more. Intel's guidance for
PyTorch on CPUs swaps in jemalloc or tcmalloc for the same reason; ``mallopt`` gets most of
that without a preload. The cost: the process keeps its peak memory until it exits.

>>> keep_freed_memory() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap and are reused
_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest one

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks for reuse instead of returning them to the kernel.

    Process-wide and idempotent; the ``poslens`` commands and ``build_report`` call it. True
    when it took effect; False off glibc (macOS, Windows, musl) or with
    ``POSLENS_KEEP_FREED_MEMORY=0`` in the environment, and nothing changes then.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux") or os.environ.get("POSLENS_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this Python runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # musl's mallopt is a stub that returns 0: nothing was changed, so say so
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _applied
