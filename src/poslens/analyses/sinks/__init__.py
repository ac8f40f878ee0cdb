"""Attention sinks (Gu et al. 2024, "When Attention Sink Emerges in Language Models: An Empirical View").

>>> from poslens.analyses.sinks import Options, attention_sinks   # doctest: +SKIP
>>> r = attention_sinks(Runner(load_weights("tiny")), Options())  # doctest: +SKIP
>>> r.run("random_tokens").sink_share, r.run("positional").sink_heads   # doctest: +SKIP
"""

from .harvest import attention_sinks
from .measure import (
    INPUT_KINDS,
    HeadSink,
    InputSinks,
    LayerStats,
    Options,
    SinkResult,
    measure,
    reduce_layer,
    summarize_inputs,
)
from .summary import summarize

__all__ = ["INPUT_KINDS", "HeadSink", "InputSinks", "LayerStats", "Options", "SinkResult", "attention_sinks", "measure",
           "reduce_layer", "summarize", "summarize_inputs"]
