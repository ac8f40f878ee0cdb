"""Duplicate-token heads: which heads attend to earlier copies of the current token, and how.

Scores are pooled: a head's duplicate score is the attention it pays to earlier copies of
the current token, summed over every query position that *has* an earlier copy in every
sequence, divided by the number of such positions. (The mean of per-sequence means is
kept too, as ``score_*_seqmean``; the two differ when sequences have different numbers of
duplicate positions.) Patterns are read through a non-editing hook on
``blocks.{l}.attn.hook_pattern``: nothing is stored and nothing is written back, and the
forward pass stops after the last layer asked for.

Two pitfalls of TransformerLens's ``head_detector`` are avoided on purpose (and tested):
given several sequences it scored each one separately and in some versions forgot the
caller's options on the way, and with ``exclude_bos``/``exclude_current_token`` it
zeroed entries of the cached pattern in place. Here every sequence is scored in one
batched pass with the same options, and the pattern is only read. TransformerLens also
divides by all the attention of every query, so queries without an earlier copy dilute
the score; here they are left out of numerator and denominator alike.

The package: :mod:`.options` (:class:`Options`, head and layer checks), :mod:`.measure`
(masks, decay profiles, token classes, attention spread: pure), :mod:`.harvest` (what is
read off a Runner's patterns), :mod:`.analysis` (:func:`duplicate_heads`), :mod:`.result` (with
its summary lines). The post's GPT-2 small figures are in
:mod:`poslens.claims.duplicate_heads_post`; figures in :mod:`poslens.viz.duplicate`.

>>> from poslens.models import load_weights
>>> from poslens.analyses.heads import duplicate_heads
>>> w = load_weights("tiny")                                          # doctest: +SKIP
>>> r = duplicate_heads(w, layers=[0], n_seq=32, seq_len=128)         # doctest: +SKIP
>>> r.ranking[:3], r.heads[r.ranking[0]].score                  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import exports

if TYPE_CHECKING:
    from .analysis import duplicate_heads
    from .harvest import PatternStats, copy_pairs, pattern_stats, positional_attention, text_windows, token_classes
    from .measure import (DecayFit, DecayProfile, HeadSpread, PositionalSpread, class_groups, decay_profile,
                          duplicate_mask, induction_mask, pattern_spread)
    from .options import Options, check_heads, check_layers
    from .result import DupHeadsResult, HeadScores, summarize

__getattr__ = exports(__name__, {
    ".analysis": ("duplicate_heads",),
    ".harvest": ("PatternStats", "copy_pairs", "pattern_stats", "positional_attention", "text_windows", "token_classes"),
    ".measure": ("DecayFit", "DecayProfile", "HeadSpread", "PositionalSpread", "class_groups", "decay_profile",
                 "duplicate_mask", "induction_mask", "pattern_spread"),
    ".options": ("Options", "check_heads", "check_layers"),
    ".result": ("DupHeadsResult", "HeadScores", "summarize"),
})

__all__ = [
    "DupHeadsResult", "HeadScores", "Options", "PatternStats", "check_heads", "check_layers", "class_groups", "copy_pairs",
    "DecayFit", "DecayProfile", "HeadSpread", "PositionalSpread", "decay_profile", "duplicate_heads", "duplicate_mask",
    "induction_mask", "pattern_spread", "pattern_stats",
    "positional_attention", "summarize", "text_windows", "token_classes",
]
