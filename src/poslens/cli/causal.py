"""`poslens ablate` (run, dup-neurons, helix, word-index) and `poslens patch`."""

from __future__ import annotations

import click

from ..analyses.causal.options import (AblationOptions, DupNeuronAblationOptions, HelixAblationOptions, PatchOptions,
                                       WordIndexAblationOptions)
from ..claims.attach import with_published
from ..errors import InvalidInputError
from .common import common, finish, parse_heads, text_arg
from .options import build_options, options_flags


def _neurons(spec: str | None) -> list[tuple[int, int]]:
    """'0.1168,1.7' -> [(0, 1168), (1, 7)]."""
    try:
        return parse_heads(spec) or []
    except InvalidInputError:
        raise InvalidInputError(f"--neuron '{spec}' is not a list of LAYER.NEURON (e.g. 0.1168,1.7)") from None


def _finish(r, module, out, command, as_json):
    from ..viz.causal import figures

    finish(r, out, command, as_json, module.summarize(r), figures)


@click.group("ablate")
def ablate_cmd():
    """Ablate heads, neurons or residual directions and measure what changes, against random baselines.

    `run` ablates what you name; `dup-neurons`, `helix` and `word-index` answer the source studies'
    causal questions.
    """


@ablate_cmd.command("run")
@common
@click.option("--head", "heads", default=None, help="Heads to ablate, e.g. 0.1,0.5 (hook_z slices).")
@click.option("--neuron", "neurons", default=None, help="MLP neurons to ablate, e.g. 0.1168,1.7 (hook_post columns).")
@click.option("--direction", type=click.Path(dir_okay=False), default=None,
              help="A .npy file with a direction [d_model] or subspace [k, d_model] to ablate at --hook.")
@click.option("--hook", default=None, help="Hook for --direction (any hook with d_model last, e.g. blocks.3.hook_resid_post).")
@click.option("--pos-pcs", default=None, type=int, help="Ablate W_pos's top-K PCA subspace at hook_pos_embed.")
@click.option("--metric", "metrics", multiple=True,
              help="loss, neuron:L.N, logit-diff:GOOD|BAD, readout:HOOK:FILE.npy, prev-attention:L.H (repeatable; default loss).")
@options_flags(AblationOptions, aliases={"prepend_bos": " /--no-bos"})
def ablate_run_cmd(model, out, device, dtype, as_json, heads, neurons, direction, hook, pos_pcs, metrics, **kw):
    """Ablate the named heads / neurons / direction together and measure the metrics, with a random baseline."""
    from ..analyses.causal import ablate as A
    from ..analyses.causal.named import ablate_named
    from ..models import load_weights

    opts = build_options(AblationOptions, kw)
    r = ablate_named(load_weights(model), opts, heads=parse_heads(heads) or (), neurons=_neurons(neurons),
                     direction=direction, hook=hook, pos_pcs=pos_pcs, metrics=metrics, device=device, dtype=dtype)
    _finish(r, A, out, "ablate", as_json)


@ablate_cmd.command("dup-neurons")
@common
@options_flags(DupNeuronAblationOptions, aliases={"prepend_bos": " /--no-bos"})
def ablate_dup_cmd(model, out, device, dtype, as_json, **kw):
    """Ablate the duplicate-token heads (and separately the other heads); watch the duplicate neurons (the duplicate-token post)."""
    from ..analyses.causal import question_duplicate as Q
    from ..models import load_weights

    opts = build_options(DupNeuronAblationOptions, kw)
    w = load_weights(model)
    r = with_published(Q.duplicate_neuron_ablation(w, opts, device=device, dtype=dtype), w)
    _finish(r, Q, out, "ablate-dup-neurons", as_json)


@ablate_cmd.command("helix")
@common
@options_flags(HelixAblationOptions, skip=("seed",),
               aliases={"skip_first": " /--keep-first", "prepend_bos": " /--no-bos"})
@click.option("--seed", default=0, show_default=True)
def ablate_helix_cmd(model, out, device, dtype, as_json, seed, **kw):
    """Project W_pos's top-k PCA subspace out at the embedding: loss and previous-token attention vs random subspaces."""
    from ..analyses.causal import question_helix as Q
    from ..models import load_weights

    opts = build_options(HelixAblationOptions, kw, seed=seed)
    w = load_weights(model)
    r = Q.helix_ablation(w, opts, device=device, dtype=dtype)
    _finish(r, Q, out, "ablate-helix", as_json)


@ablate_cmd.command("word-index")
@common
@options_flags(WordIndexAblationOptions, aliases={"prepend_bos": " /--no-bos"})
def ablate_word_index_cmd(model, out, device, dtype, as_json, **kw):
    """Resample-ablate the word-index probe subspace; patch the signal between 3|1 and 1|2|1 prompts (the emergent-positional-embeddings post)."""
    from ..analyses.causal import question_word_index as Q
    from ..models import load_weights

    opts = build_options(WordIndexAblationOptions, kw)
    r = Q.word_index_ablation(load_weights(model), opts, device=device, dtype=dtype)
    _finish(r, Q, out, "ablate-word-index", as_json)


@click.command("patch")
@common
@click.option("--clean", required=True, help="Clean prompt text (or @file).")
@click.option("--corrupted", required=True, help="Corrupted prompt text (or @file); must have as many tokens.")
@click.option("--metric", required=True,
              help="logit-diff:GOOD|BAD (e.g. 'logit-diff: Mary| John'), neuron:L.N, readout:HOOK:FILE.npy, prev-attention:L.H.")
@options_flags(PatchOptions, aliases={"prepend_bos": " /--no-bos"})
def patch_cmd(model, out, device, dtype, as_json, clean, corrupted, metric, **kw):
    """Activation patching between a clean and a corrupted prompt, swept over layers x positions or heads."""
    from ..analyses.causal import patching as Pm
    from ..analyses.causal.named import patch_prompts
    from ..models import load_weights

    opts = build_options(PatchOptions, kw)
    r = patch_prompts(load_weights(model), text_arg(clean, "--clean"), text_arg(corrupted, "--corrupted"), metric, opts,
                      device=device, dtype=dtype)
    _finish(r, Pm, out, "patch", as_json)
