"""Published claims of the post "Emergent positional embeddings" (GPT-2 small, residual stream
after layer 3 = residual point 4): a probe reads the word index well above what position
explains, and does worse for later words. The post gives no accuracy (its figures are read
off the key plot), so the rows compare our measured findings with its statements.

>>> rows = word_index_rows(result.findings, weights.cfg, weights.label)   # doctest: +SKIP
"""

from __future__ import annotations

from . import Claim
from .rows import ClaimRow, is_gpt2_small, row

STUDY = "Emergent positional embeddings"

ABOVE_POSITION = Claim("word_index.above_position", STUDY, "the key plot", "GPT-2 small, layer 3 (point 4): the probe "
                       "is well above the position-only baseline", "findings.0.holds", 1, applies_to="gpt2-small")
LATER_WORSE = Claim("word_index.later_worse", STUDY, "the key plot", "GPT-2 small, layer 3 (point 4): the probe is "
                    "worse for later words", "findings.1.holds", 1, applies_to="gpt2-small")
CLAIMS = (ABOVE_POSITION, LATER_WORSE)
PUBLISHED = {ABOVE_POSITION.id: "well above the position-only baseline (read off the key plot; no accuracy given)",
             LATER_WORSE.id: "much worse for later words, still well above chance"}
NOTE = "the post probed the last token at layer 3 with sklearn defaults on unstandardised features"


def word_index_rows(findings: list, cfg, label: str = "") -> list[ClaimRow]:
    """Rows for the word scheme's two findings (:class:`~poslens.analyses.word_index.measure.Finding`), only
    on GPT-2 small (the post's model)."""
    words = [f for f in findings if f.scheme == "word"]
    if not is_gpt2_small(cfg, label) or not words:
        return []
    return [row(c, f.ours, f.holds, NOTE, what=f.what.replace("word: ", "GPT-2 small, layer 3 (point 4): "),
                published=PUBLISHED[c.id]) for c, f in zip(CLAIMS, words)]
