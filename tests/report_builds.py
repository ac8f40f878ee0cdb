"""Real reports shared by the page tests: the two organisms and the partial GPT-2 small, at the quick size.

Each is built into a directory the whole session shares (under pytest-xdist, every
worker's base temporary directory has the same parent), one build at a time under a file
lock, so the second test module or worker that asks for one reuses the first one's cache
(a report reruns from cache in seconds).
``POSLENS_TEST_REPORTS=DIR`` keeps them in DIR instead, so a later session reuses them too
(every section is cached by model, options and code, so a change recomputes what it touches).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

GPT2_PARTIAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2-small-partial"


def build(tmp_path_factory, spec: str, name: str) -> tuple[Path, object]:
    from poslens.report import build_report

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out = Path(os.environ.get("POSLENS_TEST_REPORTS") or shared) / f"report-{name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out.parent / f".report-{name}.lock"):
        page, (rep,) = build_report([spec], out, size="quick", progress=False)
    return page, rep


@contextlib.contextmanager
def _locked(path: Path):
    try:
        import fcntl
    except ImportError:  # Windows: no xdist sharing there, nothing to lock against
        yield
        return
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tiny_report(tmp_path_factory):
    return build(tmp_path_factory, "tiny", "tiny")


def tiny_attn_report(tmp_path_factory):
    return build(tmp_path_factory, "tiny-attn", "tiny-attn")


def gpt2_partial_report(tmp_path_factory):
    if not (GPT2_PARTIAL / "config.json").is_file():
        pytest.skip(f"the partial GPT-2 small checkpoint is not at {GPT2_PARTIAL.resolve()}")
    return build(tmp_path_factory, str(GPT2_PARTIAL.resolve()), "gpt2-partial")
