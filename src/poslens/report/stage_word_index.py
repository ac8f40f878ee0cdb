"""Report stage: word-index probes (after the post “Emergent positional embeddings”).

The prompts are generated with the model's own tokenizer and read at the labelled tokens
only, so the stage runs its own grouped-by-length pass instead of sharing a padded one.

>>> from poslens.report.stage_word_index import STAGES
"""

from __future__ import annotations

import dataclasses

from .orchestrate import Stage, lazy


def _options(ctx) -> dict:
    from ..analyses.word_index.options import Options  # the defaults (the post's), declared once

    opts = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(Options(seed=ctx.seed)).items()}
    return {**opts, "layers": list(range(ctx.cfg.n_layers + 1)),
            "schemes": ctx.pick(["word"], ["word"], ["word", "sentence", "list", "code"]),
            "n_train": ctx.pick(700, 2100, 10000), "n_val_prompts": ctx.pick(100, 300, 2560),
            "label_tokens": ctx.pick(["last"], ["last"], ["last", "first"]), "combined": ctx.pick(False, False, True),
            "Cs": ctx.pick([0.1, 1.0, 10.0], [0.01, 0.1, 1.0, 10.0], list(Options.Cs))}


def _validate(**opts) -> None:
    from ..analyses.word_index.options import Options

    Options(**opts)


def _supports(ctx) -> str | None:
    if ctx.cfg.n_ctx < 32:
        return f"the model's context (n_ctx={ctx.cfg.n_ctx}) is too short for the prompts' prefix and seven words"
    return None


def _run(ctx, opts):
    from ..analyses.word_index import word_index
    from ..claims.attach import with_published
    from ..data.word_prompts import PromptTooLong
    from ..errors import NotApplicableError

    try:
        result = word_index(ctx.weights, tokenizer=ctx.tokenizer, runner=ctx.runner,
                            progress=getattr(ctx, "progress", False), device=ctx.device, dtype=ctx.dtype, **opts)
    except PromptTooLong as exc:  # whether the prompts fit depends on the tokenizer, known only here
        raise NotApplicableError(f"no scheme's prompts fit the model's context: {exc}") from exc
    return with_published(result, ctx.weights)


STAGES = [
    Stage(
        name="word_index",
        title="Emergent positional embeddings: which word is this token in?",
        run=_run,
        needs=("tokens", "tokenizer"),
        options=_options,
        figures=lazy("word_index", "word_index_figures", "viz"),
        summarize=lazy("word_index", "summarize"),
        supports=_supports,
        validates=_validate,
        code=tuple(f"poslens.analyses.word_index{s}" for s in ("", ".options", ".measure", ".harvest", ".probes", ".logistic", ".evaluate"))
        + ("poslens.claims.attach",)
        + ("poslens.claims.emergent_positional_embeddings", "poslens.data.word_prompts", "poslens.viz.word_index",
           "poslens.viz.common"),
        about=(
            "Prompts are a fixed prefix and then seven random common English words of 1-3 tokens (under the model's "
            "own tokenizer). A logistic-regression probe reads the residual stream at the last token of each word, at "
            "every residual point (0 = embeddings, L = entering block L), and predicts the word's index; it is scored "
            "on prompts built from held-out words. Baselines are probes that see only the token's absolute position, "
            "only whether it begins with a space, or both: the probe's gain over the best of them is information about "
            "word index that position does not explain. The position-balanced accuracy is measured where every index "
            "present at a position is equally frequent, so a position-only reader scores the stated chance level. The "
            "key plot shows, for each true index (row) and absolute position (x), the distribution of predicted "
            "indices. The verdict grades the word scheme only: the sentence, list and code schemes end each unit in one "
            "repeated delimiter, whose count a running average of the context carries even in a model with random "
            "weights, so a probe reads their index without any learned mechanism. The post's model (full GPT-2 small) needs its token embedding, which the partial checkpoint "
            "lacks, so the published figure is checked only where a complete GPT-2 small is given."
        ),
        seed="word_index",
    )
]
