"""Report stage: the model profile, computed first; later sections read their heads from it.

The profile is built from the duplicate-heads measurement with the ``dup_heads`` stage's
options (the two stages share one computation through ``ctx.memo``), plus the attention
to the first position on the same repeated sequences. :func:`profile_for` gives any
stage the profile of its model: from this run, or recomputed when this stage is cached
(its cached result is read through ``ctx.finished``) or not selected.

>>> from poslens.report.stage_profile import STAGES
>>> [s.name for s in STAGES]
['profile']
"""

from __future__ import annotations

import json
import sys

from .orchestrate import Stage, lazy

CODE = ("poslens.analyses.profile", "poslens.analyses.heads", "poslens.data.sequences", "poslens.claims.attach",
        "poslens.viz.profile", "poslens.viz.common")


def _overrides(ctx, stage: str) -> dict:
    return dict((getattr(ctx, "overrides", None) or {}).get(stage) or {})


def heads_options(ctx) -> dict:
    """The ``dup_heads`` stage's defaults; the profile owns them, as it shares that measurement."""
    return {
        "n_seq": ctx.pick(8, 32, 64),
        "seq_len": min(ctx.pick(64, 128, 256), ctx.cfg.n_ctx),
        "n_text_seq": ctx.pick(4, 16, 32),
        "corpus": None,  # None: the built-in sample passage (--set dup_heads.corpus=PATH for a corpus)
        "threshold": 0.2,
        "n_frequent": 12,
        "seed": ctx.seed,
    }


def run_dup_heads(ctx, opts):
    from ..analyses.heads import duplicate_heads
    from ..claims.attach import with_published
    from ..data.sequences import SAMPLE_TEXT

    positional_only = ctx.missing(("tokens",)) is not None
    text = None
    if opts["corpus"] is None and not positional_only and not ctx.missing(("tokenizer",)):
        text = SAMPLE_TEXT
    return with_published(duplicate_heads(
        ctx.weights, text=text, positional_only=positional_only, device=ctx.device, dtype=ctx.dtype,
        tokenizer=None if ctx.missing(("tokenizer",)) else ctx.tokenizer, runner=ctx.runner, **opts,
    ), ctx.weights)


def dup_heads_options(ctx) -> dict:
    """The ``dup_heads`` stage's options for this model, with the user's ``--set`` overrides."""
    return Stage("dup_heads", "", run_dup_heads, options=heads_options).options_for(ctx, _overrides(ctx, "dup_heads"))


def dup_heads_result(ctx, opts: dict | None = None):
    """The duplicate-heads measurement for ``opts`` (default: the stage's), computed once per run."""
    opts = dup_heads_options(ctx) if opts is None else opts
    return ctx.memo(("dup_heads", json.dumps(opts, sort_keys=True, default=str)), lambda: run_dup_heads(ctx, opts))


def _options(ctx) -> dict:
    from ..analyses.profile import THRESHOLDS

    m = dup_heads_options(ctx)
    return {**{f"{k}_threshold": v for k, v in THRESHOLDS.items()},
            "n_seq": m["n_seq"], "seq_len": m["seq_len"], "seed": m["seed"]}


def describe(ctx) -> str:
    """The profile's options in words: part of the options (and cache key) of every stage that reads it."""
    o = _default_options(ctx)
    return (f"duplicate >= {o['duplicate_token_threshold']}, previous-token >= {o['previous_token_threshold']}, "
            f"induction >= {o['induction_threshold']}, sink >= {o['sink_threshold']}; "
            f"{o['n_seq']} x {o['seq_len']} repeated tokens, seed {o['seed']}")


def _run(ctx, opts):
    from ..analyses.profile import THRESHOLDS, model_profile

    m = {**dup_heads_options(ctx), **{k: opts[k] for k in ("n_seq", "seq_len", "seed")}}
    dup = dup_heads_result(ctx, m)  # its pass also measured each head's attention to position 0
    th = {k: opts[f"{k}_threshold"] for k in THRESHOLDS}
    return model_profile(dup, thresholds=th)


def _default_options(ctx) -> dict:
    return {**_options(ctx), **_overrides(ctx, "profile")}


def _computed(ctx, opts: dict | None = None):
    """This run's ModelProfile, computed once whichever stage asks first."""
    opts = _default_options(ctx) if opts is None else opts
    if opts != _default_options(ctx):
        return _run(ctx, opts)

    def compute():
        if getattr(ctx, "progress", False):
            from tqdm.auto import tqdm

            tqdm.write("profile        measuring every head's role (later sections read it) ...", file=sys.stderr)
        return _run(ctx, opts)

    return ctx.memo("model-profile", compute, stage="profile")


def profile_for(ctx):
    """The model profile (a :class:`~poslens.analyses.profile.ModelProfile`) for any stage: this
    run's, the cached one, or computed now."""
    from ..analyses.profile import ModelProfile

    done = (getattr(ctx, "finished", None) or {}).get("profile")
    return ModelProfile.from_dict(done) if done is not None else _computed(ctx)


STAGES = [
    Stage(
        name="profile",
        title="Model profile: the heads every section reads",
        run=_computed,
        needs=("inputs", "attn0"),
        options=_options,
        figures=lazy("profile", "profile_figures", "viz"),
        summarize=lazy("profile", "summarize"),
        code=CODE,
        about=(
            "Every head's role scores, measured once: on repeated random-token sequences (each token of the second "
            "half has one earlier copy, half a sequence back) the share of a head's attention on the position just "
            "before (previous-token), on earlier copies of the current token (duplicate-token), on the token just "
            "after an earlier copy (induction) and on the first position (attention sink); and for layer 0, where "
            "its attention falls on positional inputs alone (local: half within the last 30 positions; uniform: "
            "near-maximal entropy). A head with a score at or above the role's threshold has that role. Later "
            "sections (duplicate-token neurons, the causal checks, the verdict table) read these heads instead "
            "of choosing their own; a section whose premise is absent says so."
        ),
    )
]
