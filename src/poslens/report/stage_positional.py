"""Report stages: attention sinks, the absolute-position probe and rotary frequency usage.

Each stage's options are its analysis's ``Options`` at the report's size (``full`` is the
studies' own size); the page shows the study's claims beside our figures.

>>> from poslens.report.stage_positional import STAGES
>>> [s.name for s in STAGES]
['sinks', 'position_probe', 'rotary']
"""

from __future__ import annotations

import dataclasses
import importlib

from .orchestrate import Stage, lazy

CODE = ("poslens.analyses.sinks.measure", "poslens.analyses.sinks.harvest", "poslens.analyses.position_probe.measure",
        "poslens.analyses.position_probe.harvest", "poslens.analyses.rotary.measure", "poslens.analyses.rotary.harvest",
        "poslens.analyses.rotary.chunks", "poslens.analyses.reach", "poslens.viz.positional", "poslens.claims")


# The model config behind each result label, for the claims' model classes (set when a stage runs).
_CFG: dict = {}


def _stage(name: str, title: str, run: str, claims: str, n_seq: tuple[int, ...], seq_len: tuple[int, ...],
           about: str, supports=None, needs: tuple[str, ...] = ("inputs",)) -> Stage:
    """The stage of ``poslens.analyses.<name>``: ``<name>.<run>(runner, Options(**opts), tokenizer=...)`` on
    ``ctx.pick(*n_seq)`` sequences of ``ctx.pick(*seq_len)`` tokens (capped at n_ctx), its summary followed
    by the study's claims (``poslens.claims.<claims>``, published vs ours)."""

    def options(ctx) -> dict:
        Options = importlib.import_module(f"poslens.analyses.{name}.measure").Options
        return dataclasses.asdict(Options(n_seq=ctx.pick(*n_seq), seq_len=min(ctx.pick(*seq_len), ctx.cfg.n_ctx),
                                          seed=ctx.seed))

    def validate(**opts) -> None:
        importlib.import_module(f"poslens.analyses.{name}.measure").Options(**opts)

    def call(ctx, opts):
        analysis = importlib.import_module(f"poslens.analyses.{name}")
        _CFG[ctx.label] = ctx.cfg
        tok = None if ctx.missing(("tokenizer",)) else ctx.tokenizer
        return getattr(analysis, run)(ctx.runner, analysis.Options(**opts), tokenizer=tok)

    def summarize(result):
        from .. import claims as C

        lines = importlib.import_module(f"poslens.analyses.{name}").summarize(result)
        cfg = _CFG.get(result.model)
        if cfg is None:
            return lines
        study = importlib.import_module(f"poslens.claims.{claims}").CLAIMS
        return lines + C.lines(C.check(study, result, C.model_kind(cfg, result.model)))

    return Stage(name, title, call, needs=needs, options=options, figures=lazy("positional", "figures", "viz"),
                 summarize=summarize, supports=supports, code=CODE, about=about, validates=validate)


def _rotary_supports(ctx) -> str | None:
    from ..analyses.rotary.chunks import not_rotary_reason

    why = not_rotary_reason(ctx.cfg, ctx.label)
    return f"not applicable: {why}" if why else ctx.missing(("inputs",))


STAGES = [
    _stage(
        "sinks", "Attention sinks: how much attention the first position absorbs", "attention_sinks", "sinks_gu2024",
        n_seq=(10, 25, 100), seq_len=(64, 64), needs=("inputs", "attn0"),
        about=(
            "Gu et al. (2024) score the first position of each head by the mean attention it receives from every query, "
            "alpha(0), and call it a sink when alpha(0) exceeds epsilon (0.3); the sink share is the share of (sequence, "
            "layer, head) triples that are sinks. A head attending uniformly over 64 tokens gives alpha(0) = 0.074. We "
            "measure it on random tokens, one token repeated, text, and positional inputs alone (the token embedding "
            "replaced by zeros, which is all a checkpoint without W_E such as the partial GPT-2 small allows; there only "
            "the layers before the first missing MLP can run). Beside it, per head, the first key's norm against the "
            "others' and the query-key cosine towards the first key against the others: the study finds the sink comes "
            "from the angle (a key bias), not from a large first key."
        ),
    ),
    _stage(
        "position_probe", "Absolute position in the residual stream: a probe per layer", "position_probe",
        "position_probe_haviv2022", n_seq=(16, 32, 64), seq_len=(64, 128),
        about=(
            "Haviv et al. (2022) show that language models, even without positional encodings, carry absolute position "
            "through the network. A ridge regression (closed form, standardised features, strength chosen on held-out "
            "training sequences) reads each token's position from each residual point (0 = the embeddings, n_layers = "
            "after the last block); its mean absolute error on test sequences it never saw is set against predicting "
            "the mean position, which carries no information. On text the windows start at random offsets, so a "
            "token's identity does not give its position away."
        ),
    ),
    _stage(
        "rotary", "Rotary frequency usage: positional and semantic channels", "rotary_usage", "rotary_barbero2024",
        n_seq=(4, 8, 16), seq_len=(128, 128), supports=_rotary_supports, needs=(),
        about=(
            "Barbero et al. (2024) find that rotary models build positional heads (diagonal, previous-token) on the "
            "highest frequencies and use the lowest ones, which barely turn over a context, as semantic channels. For "
            "every layer, head and rotary pair we take the mean norm of the query's and the key's 2-D chunk on text "
            "(rotation keeps each chunk's norm); their product bounds what the pair can add to a score, and its share "
            "over the pairs says where the head's dot products live. Learned-position models have no rotary pairs."
        ),
    ),
]
