"""Freed memory is kept for reuse: a second large buffer faults no pages in (glibc only)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from poslens.models import allocator

PROBE = textwrap.dedent("""
    import ctypes, resource, sys
    from poslens.models.allocator import keep_freed_memory
    on = keep_freed_memory() if sys.argv[1] == "keep" else False
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = (ctypes.c_void_p,)
    def touched():
        n = 128 << 20  # above glibc's largest dynamic mmap threshold (32 MB); plain malloc, so no huge pages
        p = libc.malloc(n)
        ctypes.memset(p, 1, n)
        libc.free(p)
    touched()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    touched()
    print(on, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode: str, env=None) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env).stdout
    on, faults = out.split()
    return on, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's; elsewhere the call is a no-op")
def test_second_buffer_reuses_the_first_ones_pages():
    on, kept = _faults("keep")
    _, default = _faults("default")
    assert on == "True"
    assert default > 20_000  # 128 MB of 4 KB pages faulted in again: the test can tell
    assert kept < default / 20


def test_opt_out_and_idempotent(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv("POSLENS_KEEP_FREED_MEMORY", "0")
    assert allocator.keep_freed_memory() is False
    monkeypatch.setenv("POSLENS_KEEP_FREED_MEMORY", "1")
    assert allocator.keep_freed_memory() is False  # decided once per process
