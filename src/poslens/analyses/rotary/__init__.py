"""Rotary frequency usage (Barbero et al. 2024, "Round and Round We Go! What makes Rotary Positional
Encodings useful?"): per layer, head and rotary pair, the query and key chunk norms on text.

>>> from poslens.analyses.rotary import Options, rotary_usage          # doctest: +SKIP
>>> rotary_usage(Runner(load_weights("EleutherAI/pythia-70m")), Options()).positional_ranking[:3]   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import exports

if TYPE_CHECKING:
    from .chunks import RotarySpec, apply_rotary, chunk_norms, not_rotary_reason, rotary_spec
    from .harvest import NotApplicableError, loss, low_pair_edits, rotary_usage
    from .measure import Ablation, HeadFrequencies, RotaryResult, head_frequencies, measure
    from .options import Options
    from .summary import summarize

__getattr__ = exports(__name__, {
    ".chunks": ("RotarySpec", "apply_rotary", "chunk_norms", "not_rotary_reason", "rotary_spec"),
    ".harvest": ("NotApplicableError", "loss", "low_pair_edits", "rotary_usage"),
    ".measure": ("Ablation", "HeadFrequencies", "RotaryResult", "head_frequencies", "measure"),
    ".options": ("Options",),
    ".summary": ("summarize",),
})

__all__ = ["Ablation", "HeadFrequencies", "NotApplicableError", "Options", "RotaryResult", "RotarySpec", "apply_rotary",
           "chunk_norms", "head_frequencies", "loss", "low_pair_edits", "measure", "not_rotary_reason", "rotary_spec",
           "rotary_usage", "summarize"]
