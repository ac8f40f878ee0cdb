"""Absolute-position probe (Haviv et al. 2022, "Transformer Language Models without Positional Encodings
Still Learn Positional Information"): per residual point, the error of a ridge probe for a token's position.

>>> from poslens.analyses.position_probe import Options, position_probe   # doctest: +SKIP
>>> position_probe(Runner(load_weights("tiny")), Options()).emerges_at    # doctest: +SKIP
"""

from .harvest import position_probe, resid_hook
from .measure import INPUT_KINDS, TARGETS, Options, PointProbe, ProbeResult, measure
from .summary import summarize

__all__ = ["INPUT_KINDS", "TARGETS", "Options", "PointProbe", "ProbeResult", "measure", "position_probe", "resid_hook",
           "summarize"]
