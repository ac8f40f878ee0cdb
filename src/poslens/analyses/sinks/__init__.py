"""Attention sinks (Gu et al. 2024, "When Attention Sink Emerges in Language Models: An Empirical View").

>>> from poslens.analyses.sinks import Options, attention_sinks   # doctest: +SKIP
>>> r = attention_sinks(Runner(load_weights("tiny")), Options())  # doctest: +SKIP
>>> r.run("random_tokens").sink_share, r.run("positional").sink_heads   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import exports

if TYPE_CHECKING:
    from .harvest import attention_sinks
    from .measure import HeadSink, InputSinks, LayerStats, SinkResult, measure, reduce_layer, summarize_inputs
    from .options import INPUT_KINDS, Options
    from .summary import summarize

__getattr__ = exports(__name__, {
    ".harvest": ("attention_sinks",),
    ".measure": ("HeadSink", "InputSinks", "LayerStats", "SinkResult", "measure", "reduce_layer", "summarize_inputs"),
    ".options": ("INPUT_KINDS", "Options"),
    ".summary": ("summarize",),
})

__all__ = ["INPUT_KINDS", "HeadSink", "InputSinks", "LayerStats", "Options", "SinkResult", "attention_sinks", "measure",
           "reduce_layer", "summarize", "summarize_inputs"]
