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


def _cpuinfo() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); True where unknown."""
    info = _cpuinfo()
    return info is None or bool(set(info.split()) & {"avx512_bf16", "amx_bf16"})


def cpu_model() -> str:
    """The CPU's name, vector width and bfloat16 support: a roofline share or a speed ratio is
    comparable only within one CPU class (AVX2 and AVX-512/AMX machines differ twofold)."""
    import platform

    info = _cpuinfo()
    if info is None:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    flags = set(info.split())
    width = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({width}, bfloat16 {'native' if native_bf16() else 'emulated'})"


def environment() -> str:
    import platform

    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_model()}, "
            f"python {platform.python_version()}")
