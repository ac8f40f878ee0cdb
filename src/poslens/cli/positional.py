"""`poslens sinks`, `poslens position-probe`, `poslens rotary`: positional analyses beyond the W_pos table.

    poslens sinks -m ../shared/data/gpt2-small-partial        # positional inputs alone (no W_E)
    poslens position-probe -m tiny --corpus kjv.txt
    poslens rotary -m EleutherAI/pythia-70m --ablate
"""

from __future__ import annotations

import importlib

import click

from ..analyses.position_probe.options import Options as ProbeOptions
from ..analyses.rotary.options import Options as RotaryOptions
from ..analyses.sinks.options import Options as SinkOptions
from .common import common, finish
from .options import build_options, options_flags


def _analyse(command: str, analysis: str, run: str, claims: str, model, out, device, dtype, as_json, **kw) -> None:
    """``poslens.analyses.<analysis>.<run>`` on a Runner of ``model``; figures, result.json and the summary with
    the study's claims (``poslens.claims.<claims>``, published vs ours)."""
    from .. import claims as C
    from ..models import Runner, load_weights
    from ..viz.positional import figures

    A = importlib.import_module(f"poslens.analyses.{analysis}")
    opts = build_options(A.Options, kw)
    runner = Runner(load_weights(model), device=device, dtype=dtype)
    r = getattr(A, run)(runner, opts)
    checks = C.check(importlib.import_module(f"poslens.claims.{claims}").CLAIMS, r, C.model_kind(runner.cfg, r.model))
    finish(r, out, command, as_json, A.summarize(r) + C.lines(checks), figures)


@click.command("sinks")
@common
@options_flags(SinkOptions)
def sinks_cmd(**kw):
    """Attention sinks: the share of heads whose mean attention to the first position exceeds epsilon
    (random tokens, one token repeated, text, positional inputs alone); first-key norms and query-key cosines."""
    _analyse("sinks", "sinks", "attention_sinks", "sinks_gu2024", **kw)


@click.command("position-probe")
@common
@options_flags(ProbeOptions)
def position_probe_cmd(**kw):
    """Absolute-position probe: per residual point, the held-out error (in positions) of a ridge probe
    for each token's position, against predicting the mean position."""
    _analyse("position-probe", "position_probe", "position_probe", "position_probe_haviv2022", **kw)


@click.command("rotary")
@common
@options_flags(RotaryOptions)
def rotary_cmd(**kw):
    """Rotary frequency usage: per layer, head and rotary pair, query and key chunk norms on text; positional
    (highest-frequency) and semantic (lowest-frequency) heads; optional low-frequency ablation. Rotary models only."""
    _analyse("rotary", "rotary", "rotary_usage", "rotary_barbero2024", **kw)
