"""Published figures beside a measured result: what a caller adds after an analysis ran.

Analyses return measurements only. :func:`with_published` returns ``result`` with ``checks``
filled from the source study that speaks about it — the rows are empty where no published figure
applies (the GPT-2 small studies on any other model) — so the CLI, the report and a Python user
compare with the literature by one call, and no analysis imports this package.

>>> from poslens.analyses.helix import helix                 # doctest: +SKIP
>>> hx = with_published(helix(w), w)                         # doctest: +SKIP
>>> [(c.what, c.reproduced) for c in hx.checks]              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

from ..errors import InvalidInputError


def published_rows(result, weights) -> list:
    """The published-vs-ours rows for ``result`` of ``weights`` (a list of claim rows; may be empty).
    ``weights`` may be None only for a twisted-pair result run without a model."""
    kind = type(result).__name__
    if kind == "TwistedPairResult":  # the construction's claims hold for any model, or for none given
        from .twisted_pair_post import twisted_pair_rows

        return twisted_pair_rows(result)
    cfg, label = weights.cfg, weights.label
    if kind == "HelixResult":
        from .helix_post import helix_rows

        return helix_rows(result.to_dict(), weights, float(result.options.get("sinusoidal_base", 10000.0)))
    if kind == "DupHeadsResult":
        from .duplicate_heads_post import duplicate_heads_rows

        return duplicate_heads_rows(cfg, label, result.heads, result.profiles, result.positional)
    if kind == "DupNeuronsResult":
        from .duplicate_heads_post import duplicate_neurons_rows

        return duplicate_neurons_rows(cfg, label, result)
    if kind == "DupNeuronAblationResult":
        from .duplicate_heads_post import duplicate_ablation_rows

        return duplicate_ablation_rows(cfg, label, result)
    if kind == "WordIndexResult":
        from .emergent_positional_embeddings import word_index_rows

        return word_index_rows(result.findings, cfg, label)
    raise InvalidInputError(
        f"with_published has no source study for a {kind}; it takes a TwistedPairResult, HelixResult, DupHeadsResult, "
        "DupNeuronsResult, DupNeuronAblationResult or WordIndexResult (the sinks, position-probe and rotary results "
        "are compared by poslens.claims.check(<study>.CLAIMS, result, kinds))")


def with_published(result, weights):
    """``result`` with its ``checks`` set to :func:`published_rows` (a new frozen result)."""
    return dataclasses.replace(result, checks=published_rows(result, weights))
