"""Duplicate-token heads and the neurons that read their positional signal (issue 5, seed 002).

One import path for both halves: :mod:`~poslens.analyses.duplicate_heads` (which heads
attend to earlier copies of the current token, how that attention decays with distance,
which tokens a head lumps together, how far layer-0 heads look on positional inputs) and
:mod:`~poslens.analyses.duplicate_neurons` (PVO of a duplicate head into the MLP, the
per-head decomposition of one neuron, top activating examples).

>>> from poslens.analyses.duplicate import duplicate_heads, duplicate_neurons
>>> from poslens.models import load_weights
>>> w = load_weights("tiny")                                            # doctest: +SKIP
>>> heads = duplicate_heads(w, layers=[0])                              # doctest: +SKIP
>>> neurons = duplicate_neurons(w, head=(0, int(heads.ranking[0][2:])))  # doctest: +SKIP
"""

from .duplicate_heads import (
    DupHeadsResult,
    decay_profile,
    duplicate_heads,
    duplicate_mask,
    pattern_spread,
    pattern_stats,
    positional_attention,
    token_classes,
)
from .duplicate_heads import figures as head_figures
from .duplicate_heads import summarize as summarize_heads
from .duplicate_neurons import (
    DupNeuronsResult,
    combined_positional,
    decompose_neuron,
    duplicate_neurons,
    grid_shape,
    layernorm_scale_study,
    linear_fit,
    pvo_matrix,
    top_activating_examples,
)
from .duplicate_neurons import figures as neuron_figures
from .duplicate_neurons import summarize as summarize_neurons

__all__ = [
    "DupHeadsResult", "DupNeuronsResult", "combined_positional", "decay_profile", "decompose_neuron",
    "duplicate_heads", "duplicate_mask", "duplicate_neurons", "grid_shape", "head_figures", "layernorm_scale_study",
    "linear_fit", "neuron_figures", "pattern_spread", "pattern_stats", "positional_attention", "pvo_matrix",
    "summarize_heads", "summarize_neurons", "token_classes", "top_activating_examples",
]
