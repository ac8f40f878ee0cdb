"""Report stages: duplicate-token heads and the neurons that read them (after the post on duplicate
token heads and neurons in GPT-2 small's first layer).

The head the neuron stage studies comes from the model profile (``stage_profile``); where
the profile finds no duplicate-token head in layer 0, the neuron stage is skipped with that
reason instead of studying a head that does not do the job.

Both analyses reduce attention patterns and MLP activations on the fly (read-only edits
of the runner), so they run their own passes rather than harvesting full patterns
([batch, head, query, key] for every layer) into a shared one.

>>> from poslens.report.stage_duplicate import STAGES
>>> [s.name for s in STAGES]
['dup_heads', 'dup_neurons']
"""

from __future__ import annotations

from .orchestrate import Stage, lazy
from .stage_profile import describe, dup_heads_result, heads_options, profile_for

SEED = "duplicate"
CODE = ("poslens.analyses.heads", "poslens.analyses.neurons", "poslens.data.sequences", "poslens.claims.attach",
        "poslens.viz.duplicate", "poslens.viz.common", "poslens.analyses.profile")


def _run_heads(ctx, opts):
    return dup_heads_result(ctx, opts)  # shared with the model profile


def _neurons_options(ctx) -> dict:
    from ..analyses.neurons.options import Options as NeuronOptions  # the defaults, declared once

    return {
        "head": "profile",  # or "L.H": study this head instead of the profile's duplicate-token head
        "profile": describe(ctx),
        "threshold": NeuronOptions.threshold,
        "top_k": NeuronOptions.top_k,
        "ln_scale": NeuronOptions.ln_scale,
        "corpus": None,  # None: top examples and the decomposition on the built-in sample passage
        "n_seq": ctx.pick(8, 32, 64),
        "seq_len": min(ctx.pick(128, 256, 1024), ctx.cfg.n_ctx),
        "k_examples": ctx.pick(10, 20, 20),
        "n_scale_tokens": ctx.pick(256, 1024, 4096),
        "seed": ctx.seed,
    }


def chosen_head(ctx, head) -> tuple[int, int] | None:
    """``head`` ("L.H"), or the profile's layer-0 duplicate-token head for "profile" (None if it has none)."""

    if head in (None, "profile"):
        head = profile_for(ctx).duplicate_head
        if head is None:
            return None
    layer, _, h = str(head).partition(".")
    return int(layer), int(h)


def premise(ctx, stage: str = "dup_neurons", key: str = "head") -> str | None:
    """Why a duplicate-head section cannot run on this model (the profile has no such head), or None:
    None too where ``--set STAGE.KEY`` names the head(s) that section reads instead of the profile's."""

    if (getattr(ctx, "overrides", None) or {}).get(stage, {}).get(key, "profile") != "profile":
        return None
    p = profile_for(ctx)
    if p.duplicate_head is not None or p.duplicate_token_heads:
        from ..analyses.neurons.premise import zero_mlp_reason

        why = zero_mlp_reason(ctx.weights, 0)  # an attention-only model: no neuron reads any head
        if why:
            return f"not applicable: {why}"
        if p.duplicate_head is not None:
            return None
    best = p.best.get("duplicate_token")
    th = p.thresholds.get("duplicate_token")
    if best is None:
        return "premise absent: the model profile could not measure duplicate-token attention here"
    if p.duplicate_token_heads:
        return (f"premise absent: the model profile's duplicate-token heads ({', '.join(p.duplicate_token_heads)}) "
                "are not in layer 0, whose MLP this section reads")
    return (f"premise absent: the model profile finds no duplicate-token head (the strongest, head {best.head}, "
            f"puts {best.score:.3f} of its attention on earlier copies; threshold {th}); see the model profile "
            "for what was measured")


def _run_neurons(ctx, opts):
    from ..analyses.neurons import duplicate_neurons
    from ..claims.attach import with_published

    given = {k: v for k, v in opts.items() if k not in ("head", "profile")}  # "profile" only keys the cache
    return with_published(duplicate_neurons(
        ctx.weights, head=chosen_head(ctx, opts["head"]), device=ctx.device, dtype=ctx.dtype,
        tokenizer=None if ctx.missing(("tokenizer",)) else ctx.tokenizer, **given,
    ), ctx.weights)


STAGES = [
    Stage(
        name="dup_heads",
        title="Duplicate-token heads: attention to earlier copies of the current token",
        run=_run_heads,
        needs=("inputs", "attn0"),
        options=heads_options,
        figures=lazy("duplicate", "dup_heads_figures", "viz"),
        summarize=lazy("heads", "summarize"),
        code=CODE,
        about=(
            "A head's duplicate score is the share of its attention that goes to earlier copies of the current token, "
            "pooled over every query that has an earlier copy in every sequence: on repeated random-token sequences "
            "(each token of the second half has one copy, half a sequence back) and on natural text (a corpus, or "
            "poslens's sample passage). Heads at or above the threshold are duplicate-token heads; for each, the decay "
            "profile gives attention to a copy against its distance on sequences with many copies, with the decay "
            "rate fitted within queries (softmax normalisation cancels, so the fitted slope of log attention is the "
            "rate) and the half-distance that decides 'decaying' against 'uniform' ('growing' when a head favours "
            "the earliest copy). Token classes show which frequent "
            "tokens a head treats as copies of each other. Positional inputs alone (token embedding zero) show how "
            "far back each layer-0 head looks: span50 is the window of last positions holding half its attention; "
            "'local' heads keep half within 30 positions, 'uniform' ones spread with near-maximal entropy. Checkpoints "
            "without W_E (the partial GPT-2 small) run only this positional part."
        ),
        seed=SEED,
    ),
    Stage(
        name="dup_neurons",
        title="Duplicate-token neurons: the positional signal of a duplicate head in the MLP (PVO)",
        run=_run_neurons,
        needs=("W_pos", "W_E", "attn0", "mlp0"),
        options=_neurons_options,
        supports=premise,
        figures=lazy("duplicate", "neuron_figures", "viz"),
        summarize=lazy("neurons", "summarize"),
        code=CODE,
        about=(
            "The head is the model profile's duplicate-token head: layer 0's strongest at or above the profile's "
            "threshold. Its PVO contribution W_pos·W_V·W_O·W_in (LayerNorm "
            "folded, W_E and W_pos centred) says how each MLP neuron reads the positions the head attends to; the grid "
            "shows every neuron's norm over positions, and neurons above the threshold get a PVO curve (with the "
            "study's LayerNorm multiplier, over the measured MLP LayerNorm scale) and a linear fit: a decreasing curve "
            "means a token whose copies lie far back gets a higher activation than a fresh one at the same position. "
            "The top neuron's pre-activation is decomposed exactly over a text into each head, the direct path and "
            "the biases; the study's approximations (other heads read their current position, a uniform head the mean "
            "of earlier positions, the duplicate head the mean over copies, one constant MLP LayerNorm scale) are "
            "compared with that exact split. The extra activation of repeated tokens is plotted against the mean "
            "distance to their copies, predicted and measured, and the top activating positions are listed with "
            "whether their token appeared earlier."
        ),
        seed=SEED,
    ),
]
