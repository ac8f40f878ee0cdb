"""The report on the real partial GPT-2 small (quick size): its verdicts agree with its sections.

A file of its own so that pytest-xdist hands it out early, to a different worker than the
browser checks: both read the same report build, and the one that asks second reuses it
instead of waiting on the first one's lock (tests/report_builds.py).
"""

from __future__ import annotations

import pytest
from report_builds import GPT2_PARTIAL
from test_report import _verdicts_agree


@pytest.mark.skipif(not GPT2_PARTIAL.is_dir(), reason="needs ../shared/data/gpt2-small-partial")
def test_verdicts_agree_with_sections_on_gpt2_partial(tmp_path_factory):
    from report_builds import gpt2_partial_report

    _, rep = gpt2_partial_report(tmp_path_factory)
    rows = _verdicts_agree(rep)
    assert rows["helix"]["verdict"] == "present" and rows["helix"]["value"] > 0.9
    for role in ("previous_token", "duplicate_token", "induction", "word_index", "positional_neurons"):
        assert rows[role]["verdict"] == "not testable here", rows[role]
