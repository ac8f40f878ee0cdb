"""Real reports shared by the page tests: tiny and the partial GPT-2 small, at the quick size.

Both are built into the session's base temporary directory, so the second test module
that asks for one reuses the first one's cache (a report reruns from cache in seconds).
``POSLENS_TEST_REPORTS=DIR`` keeps them in DIR instead, so a later session reuses them too
(every section is cached by model, options and code, so a change recomputes what it touches).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

GPT2_PARTIAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2-small-partial"


def build(tmp_path_factory, spec: str, name: str) -> tuple[Path, object]:
    from poslens.report import build_report

    out = Path(os.environ.get("POSLENS_TEST_REPORTS") or tmp_path_factory.getbasetemp()) / f"report-{name}"
    page, (rep,) = build_report([spec], out, size="quick", progress=False)
    return page, rep


def tiny_report(tmp_path_factory):
    return build(tmp_path_factory, "tiny", "tiny")


def gpt2_partial_report(tmp_path_factory):
    if not (GPT2_PARTIAL / "config.json").is_file():
        pytest.skip(f"the partial GPT-2 small checkpoint is not at {GPT2_PARTIAL.resolve()}")
    return build(tmp_path_factory, str(GPT2_PARTIAL.resolve()), "gpt2-partial")
