"""Helpers shared by the benchmark scripts: timing, a matmul roofline, temp checkpoints."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_flops(dtype=torch.float32, m: int = 1024, k: int = 768, n: int = 3072, repeat: int = 10) -> float:
    """Dense matmul FLOP/s on this machine for a GPT-2-small-sized product (the roofline)."""
    a = torch.randn(m, k, dtype=dtype)
    b = torch.randn(k, n, dtype=dtype)
    t = timeit(lambda: a @ b, repeat=repeat, warmup=3)
    return 2 * m * k * n / t


def environment() -> str:
    import platform

    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
            f"python {platform.python_version()}")
