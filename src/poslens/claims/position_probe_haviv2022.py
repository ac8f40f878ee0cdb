"""Published anchors of "Transformer Language Models without Positional Encodings Still Learn Positional
Information" (Haviv et al. 2022).

The study's probes read absolute position from every layer of language models with and
without positional encodings, well above a no-information baseline. Directional claim:
somewhere in the network a linear probe's error falls under half the baseline's. (Its
per-layer figures are for its own 1.3B models and probe, so no number transfers.)
"""

from __future__ import annotations

from . import Claim

STUDY = "Transformer LMs without Positional Encodings Still Learn Positional Information (Haviv et al. 2022)"

CLAIMS: tuple[Claim, ...] = (
    Claim("position_readable", STUDY, "Section 5, probing", "a probe reads absolute position far better than chance",
          "best_relative", 0.5, "below", applies_to="any"),
)
