"""Published anchors of "Round and Round We Go! What makes Rotary Positional Encodings useful?" (Barbero et al. 2024).

Gemma 7B "greatly prefers" the lowest rotary frequencies: the mean query and key chunk
norms grow towards the low-frequency end. Directional claim: the mean usage share of the
lowest pairs is above their uniform share (``low_preference`` > 1, whatever ``low_frac``). The study's 25% low-
frequency truncation (p-RoPE, p = 0.75) is a training-time change, not an ablation of a
trained model, so the ablation's loss change is reported without a published figure.
"""

from __future__ import annotations

from . import Claim

STUDY = "Round and Round We Go! (Barbero et al. 2024)"

CLAIMS: tuple[Claim, ...] = (
    Claim("prefers_low_frequencies", STUDY, "Section 4, Figure 3",
          "heads put more than a uniform share of their query-key norm on the lowest frequencies",
          "low_preference", 1.0, "above", applies_to="rotary"),
)
