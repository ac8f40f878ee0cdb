"""`poslens sinks`, `poslens position-probe`, `poslens rotary`: positional analyses beyond the W_pos table.

    poslens sinks -m ../shared/data/gpt2-small-partial        # positional inputs alone (no W_E)
    poslens position-probe -m tiny --corpus kjv.txt
    poslens rotary -m EleutherAI/pythia-70m --ablate
"""

from __future__ import annotations

import click

from ..analyses.position_probe.options import Options as ProbeOptions
from ..analyses.rotary.options import Options as RotaryOptions
from ..analyses.sinks.options import Options as SinkOptions
from .common import common, emit, out_dir
from .options import build_options, options_flags


def _finish(result, cfg, summary: list[str], claims, out, command: str, as_json: bool) -> None:
    """Figures, result.json and the summary with the study's claims (published vs ours)."""
    from .. import claims as C
    from ..viz.positional import figures

    checks = C.check(claims, result, C.model_kind(cfg, result.model))
    d = out_dir(out, command)
    figs = figures(result, d)
    emit(result, d, as_json, "\n".join(summary + C.lines(checks)), figs)


def _runner(model, device, dtype):
    from ..models import Runner, load_weights

    return Runner(load_weights(model), device=device, dtype=dtype)


@click.command("sinks")
@common
@options_flags(SinkOptions)
def sinks_cmd(model, out, device, dtype, as_json, **kw):
    """Attention sinks: the share of heads whose mean attention to the first position exceeds epsilon
    (random tokens, one token repeated, text, positional inputs alone); first-key norms and query-key cosines."""
    from ..analyses import sinks
    from ..claims import sinks_gu2024

    opts = build_options(SinkOptions, kw)
    runner = _runner(model, device, dtype)
    r = sinks.attention_sinks(runner, opts)
    _finish(r, runner.cfg, sinks.summarize(r), sinks_gu2024.CLAIMS, out, "sinks", as_json)


@click.command("position-probe")
@common
@options_flags(ProbeOptions)
def position_probe_cmd(model, out, device, dtype, as_json, **kw):
    """Absolute-position probe: per residual point, the held-out error (in positions) of a ridge probe
    for each token's position, against predicting the mean position."""
    from ..analyses import position_probe as pp
    from ..claims import position_probe_haviv2022

    opts = build_options(ProbeOptions, kw)
    runner = _runner(model, device, dtype)
    r = pp.position_probe(runner, opts)
    _finish(r, runner.cfg, pp.summarize(r), position_probe_haviv2022.CLAIMS, out, "position-probe", as_json)


@click.command("rotary")
@common
@options_flags(RotaryOptions)
def rotary_cmd(model, out, device, dtype, as_json, **kw):
    """Rotary frequency usage: per layer, head and rotary pair, query and key chunk norms on text; positional
    (highest-frequency) and semantic (lowest-frequency) heads; optional low-frequency ablation. Rotary models only."""
    from ..analyses import rotary
    from ..claims import rotary_barbero2024

    opts = build_options(RotaryOptions, kw)
    runner = _runner(model, device, dtype)
    r = rotary.rotary_usage(runner, opts)
    _finish(r, runner.cfg, rotary.summarize(r), rotary_barbero2024.CLAIMS, out, "rotary", as_json)
