"""Report stages: the source studies' causal questions, at report sizes.

Two of the three questions run in the report: removing W_pos's top-3 PCA subspace (the
helix study) and ablating the duplicate-token heads while watching the duplicate neurons
(the duplicate-neuron study). The heads ablated are the model profile's duplicate-token
heads; without one the second stage is skipped with that reason. Both run every variant (clean, ablated, random baselines) as copies of the
input in one batched pass of their own; they read reductions (losses, attention to the
previous token, masked neuron means) through read-only edits, not shared harvests.

>>> from poslens.report.stage_causal import STAGES
>>> [s.name for s in STAGES]
['causal_helix', 'causal_dup_neurons']
"""

from __future__ import annotations

import dataclasses

from .orchestrate import Stage, lazy

CODE = ("poslens.analyses.causal.intervention", "poslens.analyses.causal.run", "poslens.analyses.causal.metrics",
        "poslens.analyses.causal.baselines", "poslens.analyses.causal.inputs", "poslens.claims.attach", "poslens.viz.causal",
        "poslens.viz.common")


def _helix_options(ctx) -> dict:
    from ..analyses.causal.options import HelixAblationOptions  # the defaults, declared once

    positional = ctx.missing(("tokens", "W_U", "tokenizer")) is not None
    opts = dataclasses.asdict(HelixAblationOptions(seed=ctx.seed, positional_only=positional))
    return {**opts, "n_seq": ctx.pick(4, 8, 32), "n_random": ctx.pick(4, 8, 20),
            # W_pos alone (no W_E): one sequence, so it can be long
            "seq_len": min(ctx.pick(256, 512, 1024) if positional else ctx.pick(64, 128, 256), ctx.cfg.n_ctx)}


def _run_helix(ctx, opts):
    from ..analyses.causal.question_helix import helix_ablation

    return helix_ablation(ctx.weights, device=ctx.device, dtype=ctx.dtype, runner=ctx.runner,
                          tokenizer=None if opts["positional_only"] else ctx.tokenizer, **opts)


def _dup_options(ctx) -> dict:
    from ..analyses.causal.options import DupNeuronAblationOptions  # the defaults, declared once
    from .stage_profile import describe

    opts = dataclasses.asdict(DupNeuronAblationOptions(seed=ctx.seed))
    del opts["threshold"], opts["prepend_bos"]  # the profile decides the heads; BOS follows the tokenizer
    return {**opts, "heads": "profile",  # or "L.H,L.H": ablate these heads instead of the profile's duplicate-token heads
            "profile": describe(ctx), "n_seq": ctx.pick(8, 16, 64), "seq_len": min(ctx.pick(64, 128, 256), ctx.cfg.n_ctx),
            "n_random": ctx.pick(5, 8, 20)}


def _dup_heads(ctx, opts) -> list[int]:
    from .stage_profile import profile_for

    if opts["heads"] != "profile":
        return [int(x.split(".")[-1]) for x in str(opts["heads"]).split(",") if x.strip()]
    p = profile_for(ctx)
    return [p.heads[k].head for k in p.duplicate_token_heads if p.heads[k].layer == opts["layer"]]


def _dup_premise(ctx) -> str | None:
    from .stage_duplicate import premise

    # this section's own heads decide, not dup_neurons': --set dup_neurons.head=0.1 left it without a premise
    return premise(ctx, "causal_dup_neurons", "heads")


def _run_dup(ctx, opts):
    from ..analyses.causal.question_duplicate import duplicate_neuron_ablation
    from ..claims.attach import with_published

    given = {k: v for k, v in opts.items() if k not in ("heads", "profile")}
    if given.get("neurons") is not None:
        given["neurons"] = tuple(given["neurons"])
    no_tokenizer = ctx.missing(("tokenizer",))
    r = duplicate_neuron_ablation(ctx.weights, heads=tuple(_dup_heads(ctx, opts)), prepend_bos=not no_tokenizer,
                                  tokenizer=None if no_tokenizer else ctx.tokenizer, device=ctx.device,
                                  dtype=ctx.dtype, runner=ctx.runner, **given)
    return with_published(r, ctx.weights)


STAGES = [
    Stage(
        name="causal_helix",
        title="Causal check: projecting W_pos's top-3 PCA subspace out of the embedding",
        run=_run_helix,
        needs=("W_pos", "attn0"),
        options=_helix_options,
        validates=lazy("causal.options", "HelixAblationOptions"),
        figures=lazy("causal", "figures", "viz"),
        summarize=lazy("causal.question_helix", "summarize"),
        code=CODE + ("poslens.analyses.causal.question_helix", "poslens.analyses.helix", "poslens.analyses.helix.pca"),
        about=(
            "The top 3 principal components of W_pos (positions 1.., centred; the helix of “GPT-2's positional embedding matrix is a helix”) are projected out of "
            "the positional embedding at hook_pos_embed, and the model is run again. 'effect' is ablated minus clean: "
            "the change in next-token loss on text, and the change in attention to the previous token of the heads "
            "that attend there most (clean attention >= 0.3, else the top 3). Two controls, each several draws: "
            "uniformly random 3-d subspaces projected out the same way (they remove little of W_pos's variance), and "
            "the same random subspaces with the removal scaled so the perturbation has the same total variance as "
            "the helix removal ('variance-matched'); z is the helix effect in standard deviations of a control. "
            "Checkpoints without W_E or MLPs (the partial GPT-2 small) run W_pos alone through layer 0 (token "
            "embedding zero) and report attention only."
        ),
        seed="helix",
    ),
    Stage(
        name="causal_dup_neurons",
        title="Causal check: do the duplicate-token heads drive the duplicate-token neurons?",
        run=_run_dup,
        needs=("W_pos", "W_E", "attn0", "mlp0"),
        options=_dup_options,
        supports=_dup_premise,
        figures=lazy("causal", "figures", "viz"),
        summarize=lazy("causal.question_duplicate", "summarize"),
        code=CODE + ("poslens.analyses.causal.question_duplicate", "poslens.analyses.heads",
                     "poslens.analyses.neurons", "poslens.analyses.profile"),
        about=(
            "Layer 0's duplicate-token heads, as the model profile lists them (duplicate score at or above its "
            "threshold on repeated random tokens), are mean-ablated: each head's output is replaced, per position, by its mean over sequences of distinct "
            "tokens (what it writes when there is no copy to find). Separately, the layer's other heads are ablated "
            "the same way. The neurons watched are the 8 of layer 0's MLP with the largest PVO norm for the "
            "strongest duplicate head (the duplicate-neuron analysis's ranking). A neuron's gap is its mean activation "
            "on repeated tokens minus non-repeated ones at the same positions (second halves of repeated vs "
            "distinct-token sequences); '|gap|' is its size averaged over the neurons, 'effect' the change of that "
            "size under the ablation (negative: the neurons tell repeated from new tokens less) and 'relative' that "
            "change over the clean |gap|. Baselines: the same ablation on random head sets of the same "
            "size, and the duplicate-head ablation read on random neuron sets; z is the effect in their standard "
            "deviations."
        ),
        seed="duplicate",
    ),
]
