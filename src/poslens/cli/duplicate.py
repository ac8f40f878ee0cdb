"""`poslens dup-heads` and `poslens dup-neurons`: duplicate-token heads and the neurons that read them.

    poslens dup-heads -m tiny --corpus ../shared/data/corpora/kjv.txt
    poslens dup-heads -m ../shared/data/gpt2-small-partial --positional-only
    poslens dup-neurons -m gpt2 --head 0.5 --neuron 1168 --corpus kjv.txt
"""

from __future__ import annotations

import click

from ..analyses.heads.options import Options as HeadsOptions
from ..analyses.neurons.options import Options as NeuronOptions
from ..claims.attach import with_published
from ..errors import InvalidInputError
from .common import common, finish, parse_heads, text_arg
from .options import build_options, options_flags


def _one_head(spec: str | None):
    hs = parse_heads(spec)
    if hs is None:
        return None
    if len(hs) != 1:
        raise InvalidInputError(f"--head takes one head (e.g. 0.5); got {spec}")
    return hs[0]


@click.command("dup-heads")
@common
@click.option("--corpus", type=click.Path(dir_okay=False), default=None,
              help="Text file for natural-text scores and token classes.")
@click.option("--text", default=None, help="Natural text (or @file) scored instead of a corpus, in consecutive windows.")
@click.option("--profile-heads", default=None, help="Heads for decay profiles, e.g. 0.1,0.5 (default: the duplicate heads).")
@click.option("--no-bos", is_flag=True, help="Do not prepend BOS to sequences.")
@options_flags(HeadsOptions, skip=("corpus", "text", "profile_heads", "prepend_bos"))
def dup_heads_cmd(model, out, device, dtype, as_json, corpus, text, profile_heads, no_bos, **kw):
    """Score heads for attention to earlier copies of the current token; decay profiles of the duplicate heads."""
    from ..analyses import heads as D
    from ..models import load_weights
    from ..viz.duplicate import dup_heads_figures

    opts = build_options(HeadsOptions, {
        **kw, "corpus": corpus, "text": text_arg(text, "--text"), "profile_heads": parse_heads(profile_heads),
        "prepend_bos": not no_bos})
    w = load_weights(model)
    r = with_published(D.duplicate_heads(w, opts, device=device, dtype=dtype), w)
    finish(r, out, "dup-heads", as_json, D.summarize(r), dup_heads_figures)


@click.command("dup-neurons")
@common
@click.option("--head", default=None,
              help="Head whose positional signal to follow, e.g. 0.5 (default: best layer-0 duplicate head).")
@click.option("--text", default=None,
              help="Text (or @file) for the per-head decomposition (default: a window of --corpus, else a built-in passage).")
@click.option("--corpus", type=click.Path(dir_okay=False), default=None, help="Text file for top activating examples.")
@click.option("--uniform-heads", default=None,
              help="Heads approximated by the mean over earlier positions, e.g. 0.1,0.3 (default: detected on the text).")
@click.option("--no-bos", is_flag=True, help="Do not prepend BOS to the text and corpus windows.")
@options_flags(NeuronOptions, skip=("head", "text", "corpus", "uniform_heads", "prepend_bos"))
def dup_neurons_cmd(model, out, device, dtype, as_json, head, text, corpus, uniform_heads, no_bos, **kw):
    """PVO analysis of a duplicate head, per-head decomposition of one neuron, top activating examples."""
    from ..analyses import neurons as N
    from ..models import load_weights
    from ..viz.duplicate import neuron_figures

    opts = build_options(NeuronOptions, {
        **kw, "head": _one_head(head), "text": text_arg(text, "--text"), "corpus": corpus,
        "uniform_heads": parse_heads(uniform_heads), "prepend_bos": not no_bos})
    w = load_weights(model)
    r = with_published(N.duplicate_neurons(w, opts, device=device, dtype=dtype), w)
    finish(r, out, "dup-neurons", as_json, N.summarize(r), neuron_figures)
