"""`poslens dup-heads` and `poslens dup-neurons`."""

from __future__ import annotations

import click

from ..errors import InvalidInputError
from .common import common, emit, out_dir, parse_heads


def _layers(spec: str | None) -> list[int] | None:
    if not spec:
        return None
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise InvalidInputError(f"--layers '{spec}' is not a comma-separated list of integers (e.g. 0,1)") from None


def _one_head(spec: str | None):
    hs = parse_heads(spec)
    if hs is None:
        return None
    if len(hs) != 1:
        raise InvalidInputError(f"--head takes one head (e.g. 0.5); got {spec}")
    return hs[0]


@click.command("dup-heads")
@common
@click.option("--layers", default=None, help="Comma-separated layers to score (default: all).")
@click.option("--n-seq", default=64, show_default=True, help="Repeated random-token sequences.")
@click.option("--seq-len", default=256, show_default=True, help="Tokens per sequence (capped at n_ctx).")
@click.option("--corpus", type=click.Path(dir_okay=False), default=None, help="Text file for natural-text scores and token classes.")
@click.option("--n-text-seq", default=32, show_default=True, help="Windows drawn from --corpus.")
@click.option("--threshold", default=0.2, show_default=True, help="Score at or above which a head is a duplicate-token head.")
@click.option("--rank-by", type=click.Choice(["repeated", "text"]), default="repeated", show_default=True)
@click.option("--profile-heads", default=None, help="Heads for decay profiles, e.g. 0.1,0.5 (default: the duplicate heads).")
@click.option("--profile-distinct", default=None, type=int, help="Distinct tokens per profile sequence (default seq_len/8).")
@click.option("--uniform-half-distance", default=200.0, show_default=True, help="Half-distance above which a head is 'uniform'.")
@click.option("--no-bos", is_flag=True, help="Do not prepend BOS to sequences.")
@click.option("--positional-only", is_flag=True, help="Only layer-0 attention on positional inputs (works without W_E).")
@click.option("--batch-size", default=8, show_default=True)
@click.option("--seed", default=0, show_default=True)
def dup_heads_cmd(model, out, device, dtype, as_json, layers, n_seq, seq_len, corpus, n_text_seq, threshold, rank_by,
                  profile_heads, profile_distinct, uniform_half_distance, no_bos, positional_only, batch_size, seed):
    """Score heads for attention to earlier copies of the current token; decay profiles of the duplicate heads."""
    from ..analyses import duplicate_heads as D
    from ..models import load_weights

    w = load_weights(model)
    r = D.duplicate_heads(
        w, layers=_layers(layers), n_seq=n_seq, seq_len=seq_len, seed=seed, threshold=threshold, corpus=corpus,
        n_text_seq=n_text_seq, rank_by=rank_by, profile_heads=parse_heads(profile_heads), profile_distinct=profile_distinct,
        uniform_half_distance=uniform_half_distance, prepend_bos=not no_bos, positional_only=positional_only,
        batch_size=batch_size, device=device, dtype=dtype,
    )
    d = out_dir(out, "dup-heads")
    figs = D.figures(r, d)
    emit(r, d, as_json, "\n".join(D.summarize(r)), figs)


@click.command("dup-neurons")
@common
@click.option("--head", default=None, help="Head whose positional signal to follow, e.g. 0.5 (default: best layer-0 duplicate head).")
@click.option("--neuron", default=None, type=int, help="Neuron of the next MLP to decompose (default: the top selected neuron).")
@click.option("--threshold", default=30.0, show_default=True, help="|PVO| norm above which a neuron is selected.")
@click.option("--top-k", default=8, show_default=True, help="Neurons to take when none passes --threshold.")
@click.option("--ln-scale", type=click.Choice(["approx", "exact-mean", "none"]), default="approx", show_default=True,
              help="LayerNorm scale applied to W_pos in PVO curves.")
@click.option("--mlp-scale", default=None, type=float, help="MLP LayerNorm scale divisor (default: measured on the text).")
@click.option("--no-fold-ln", is_flag=True)
@click.option("--no-center", is_flag=True)
@click.option("--text", default=None, help="Text (or @file) for the per-head decomposition (default: a window of --corpus).")
@click.option("--corpus", type=click.Path(dir_okay=False), default=None, help="Text file for top activating examples.")
@click.option("--n-seq", default=32, show_default=True, help="Corpus windows searched for top examples.")
@click.option("--seq-len", default=256, show_default=True)
@click.option("--k-examples", default=20, show_default=True)
@click.option("--uniform-heads", default=None, help="Heads the seed approximates by the mean over earlier positions (default: detected).")
@click.option("--seed", default=0, show_default=True)
def dup_neurons_cmd(model, out, device, dtype, as_json, head, neuron, threshold, top_k, ln_scale, mlp_scale, no_fold_ln,
                    no_center, text, corpus, n_seq, seq_len, k_examples, uniform_heads, seed):
    """PVO analysis of a duplicate head, per-head decomposition of one neuron, top activating examples."""
    from pathlib import Path

    from ..analyses import duplicate_neurons as N
    from ..models import load_weights

    if text and text.startswith("@"):
        p = Path(text[1:])
        if not p.is_file():
            raise InvalidInputError(f"text file {p} does not exist")
        text = p.read_text(encoding="utf-8", errors="replace")
    w = load_weights(model)
    r = N.duplicate_neurons(
        w, head=_one_head(head), neuron=neuron, threshold=threshold, top_k=top_k, ln_scale=ln_scale, mlp_scale=mlp_scale,
        fold_ln=not no_fold_ln, center=not no_center, text=text, corpus=corpus, n_seq=n_seq, seq_len=seq_len,
        k_examples=k_examples, uniform_heads=parse_heads(uniform_heads), seed=seed, device=device, dtype=dtype,
    )
    d = out_dir(out, "dup-neurons")
    figs = N.figures(r, d)
    emit(r, d, as_json, "\n".join(N.summarize(r)), figs)
