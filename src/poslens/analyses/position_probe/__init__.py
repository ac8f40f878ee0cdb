"""Absolute-position probe (Haviv et al. 2022, "Transformer Language Models without Positional Encodings
Still Learn Positional Information"): per residual point, the error of a ridge probe for a token's position.

>>> from poslens.analyses.position_probe import Options, position_probe   # doctest: +SKIP
>>> position_probe(Runner(load_weights("tiny")), Options()).emerges_at    # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import exports

if TYPE_CHECKING:
    from .harvest import position_probe, resid_hook
    from .measure import PointProbe, ProbeResult, measure
    from .options import INPUT_KINDS, TARGETS, Options
    from .summary import summarize

__getattr__ = exports(__name__, {
    ".harvest": ("position_probe", "resid_hook"),
    ".measure": ("PointProbe", "ProbeResult", "measure"),
    ".options": ("INPUT_KINDS", "TARGETS", "Options"),
    ".summary": ("summarize",),
})

__all__ = ["INPUT_KINDS", "TARGETS", "Options", "PointProbe", "ProbeResult", "measure", "position_probe", "resid_hook",
           "summarize"]
