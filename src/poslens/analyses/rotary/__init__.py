"""Rotary frequency usage (Barbero et al. 2024, "Round and Round We Go! What makes Rotary Positional
Encodings useful?"): per layer, head and rotary pair, the query and key chunk norms on text.

>>> from poslens.analyses.rotary import Options, rotary_usage          # doctest: +SKIP
>>> rotary_usage(Runner(load_weights("EleutherAI/pythia-70m")), Options()).positional_ranking[:3]   # doctest: +SKIP
"""

from .chunks import RotarySpec, apply_rotary, chunk_norms, not_rotary_reason, rotary_spec
from .harvest import NotApplicableError, loss, low_pair_edits, rotary_usage
from .measure import Ablation, HeadFrequencies, Options, RotaryResult, head_frequencies, measure
from .summary import summarize

__all__ = ["Ablation", "HeadFrequencies", "NotApplicableError", "Options", "RotaryResult", "RotarySpec", "apply_rotary",
           "chunk_norms", "head_frequencies", "loss", "low_pair_edits", "measure", "not_rotary_reason", "rotary_spec",
           "rotary_usage", "summarize"]
