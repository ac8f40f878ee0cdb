"""`poslens ablate` (run, dup-neurons, helix, word-index) and `poslens patch`."""

from __future__ import annotations

from pathlib import Path

import click

from ..analyses.causal.options import HelixAblationOptions
from ..errors import InvalidInputError
from .common import common, emit, out_dir, parse_heads, parse_ints
from .options import build_options, options_flags


def _ints(spec: str | None, what: str) -> list[int] | None:
    return parse_ints(spec, what, example="0,5,-1")  # positions may count from the end


def _text(value: str, what: str) -> str:
    if value.startswith("@"):
        p = Path(value[1:])
        if not p.is_file():
            raise InvalidInputError(f"{what} file {p} does not exist")
        return p.read_text(encoding="utf-8", errors="replace")
    return value


def _tokenizer(w, required: bool):
    from ..errors import PoslensError
    from ..models.tokenizer import Tokenizer

    try:
        return Tokenizer.for_checkpoint(w.source)
    except PoslensError:
        if required:
            raise
        return None


def _neurons(spec: str | None) -> list[tuple[int, int]]:
    """'0.1168,1.7' -> [(0, 1168), (1, 7)]."""
    try:
        return parse_heads(spec) or []
    except InvalidInputError:
        raise InvalidInputError(f"--neuron '{spec}' is not a list of LAYER.NEURON (e.g. 0.1168,1.7)") from None


def _finish(r, module, out, command, as_json):
    d = out_dir(out, command)
    from ..viz.causal import figures

    figs = figures(r, d)
    emit(r, d, as_json, "\n".join(module.summarize(r)), figs)


@click.group("ablate")
def ablate_cmd():
    """Ablate heads, neurons or residual directions and measure what changes, against random baselines.

    `run` ablates what you name; `dup-neurons`, `helix` and `word-index` answer the seeds'
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
@click.option("--kind", type=click.Choice(["zero", "mean", "resample"]), default="zero", show_default=True)
@click.option("--positions", default=None, help="Positions to ablate, e.g. -1 or 0,5 (default: all).")
@click.option("--mean-over", type=click.Choice(["sequences", "all"]), default="sequences", show_default=True,
              help="Mean per position over the reference sequences, or over positions too.")
@click.option("--data", default="sample", show_default=True,
              help="Sequences to measure: sample, repeated, distinct, corpus:PATH or text:TEXT.")
@click.option("--reference", default="input", show_default=True,
              help="Reference for mean/resample: input (the data itself) or another --data spec.")
@click.option("--metric", "metrics", multiple=True,
              help="loss, neuron:L.N, logit-diff:GOOD|BAD, readout:HOOK:FILE.npy, prev-attention:L.H (repeatable; default loss).")
@click.option("--position", default=-1, show_default=True, help="Position the neuron/logit/readout metrics read.")
@click.option("--n-seq", default=16, show_default=True)
@click.option("--seq-len", default=128, show_default=True)
@click.option("--n-baseline", default=10, show_default=True, help="Random ablations of the same size.")
@click.option("--no-bos", is_flag=True, help="Do not prepend BOS.")
@click.option("--batch-size", default=None, type=int)
@click.option("--seed", default=0, show_default=True)
def ablate_run_cmd(model, out, device, dtype, as_json, heads, neurons, direction, hook, pos_pcs, kind, positions, mean_over,
                   data, reference, metrics, position, n_seq, seq_len, n_baseline, no_bos, batch_size, seed):
    """Ablate the named heads / neurons / direction together and measure the metrics, with a random baseline."""
    import numpy as np

    from ..analyses.causal import ablate as A
    from ..analyses.causal.inputs import make_inputs
    from ..analyses.causal.intervention import ablate_direction, ablate_head, ablate_neuron
    from ..analyses.causal.metrics import metric_from_spec
    from ..models import Runner, load_weights

    w = load_weights(model)
    tok = _tokenizer(w, required=False)
    bos = None if (no_bos or tok is None) else tok.bos_token_id
    pos = _ints(positions, "--positions")
    common_kw = dict(positions=pos, reference="ref" if reference != "input" else "input", mean_over=mean_over, seed=seed)
    ivs = []
    by_layer: dict[int, list[int]] = {}
    for l, h in parse_heads(heads) or []:
        by_layer.setdefault(l, []).append(h)
    ivs += [ablate_head(l, hs, kind, **common_kw) for l, hs in by_layer.items()]
    nl: dict[int, list[int]] = {}
    for l, n in _neurons(neurons):
        nl.setdefault(l, []).append(n)
    ivs += [ablate_neuron(l, ns, kind, **common_kw) for l, ns in nl.items()]
    if direction:
        if not hook:
            raise InvalidInputError("--direction needs --hook (where to ablate it, e.g. blocks.2.hook_resid_post)")
        try:
            v = np.load(direction)
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"cannot read {direction} ({exc}); give a .npy file") from None
        ivs.append(ablate_direction(hook, v, kind, source=str(direction), **common_kw))
    if pos_pcs:
        from ..analyses.helix import pca

        fit = pca(w.W_pos[1:].double().numpy(), n_components=pos_pcs)
        ivs.append(ablate_direction("hook_pos_embed", fit.components, kind,
                                    source=f"W_pos[1:] top-{pos_pcs} PCA (poslens.analyses.helix.pca)", **common_kw))
    if not ivs:
        raise InvalidInputError("nothing to ablate: give --head, --neuron, --direction or --pos-pcs")
    P = min(seq_len, w.cfg.n_ctx)
    tokens = make_inputs(data, d_vocab=w.cfg.d_vocab, tokenizer=tok, n_seq=n_seq, seq_len=P, seed=seed, bos=bos)
    refs, info = {}, {"input": f"{data}: {tokens.shape[0]} x {tokens.shape[1]} tokens"}
    if reference != "input":
        refs["ref"] = make_inputs(reference, d_vocab=w.cfg.d_vocab, tokenizer=tok, n_seq=n_seq, seq_len=P, seed=seed + 1,
                                  bos=bos)
        info["ref"] = f"{reference}: {refs['ref'].shape[0]} x {refs['ref'].shape[1]} tokens"
    ms = [metric_from_spec(s, w, tokenizer=tok, tokens=tokens, position=position) for s in (metrics or ("loss",))]
    r = A.ablation_effect(Runner(w, device=device, dtype=dtype), tokens, ivs, ms, references=refs, reference_info=info,
                          n_baseline=n_baseline, seed=seed, batch_size=batch_size)
    _finish(r, A, out, "ablate", as_json)


@ablate_cmd.command("dup-neurons")
@common
@click.option("--layer", default=0, show_default=True, help="Layer of the heads (and of the MLP whose neurons are read).")
@click.option("--heads", default=None, help="Duplicate heads of --layer, e.g. 1,5 (default: detected).")
@click.option("--threshold", default=0.2, show_default=True, help="Duplicate score at or above which a head counts.")
@click.option("--neurons", default=None, help="Neurons to watch, e.g. 1168,3 (default: chosen by --select).")
@click.option("--select", type=click.Choice(["pvo", "activation"]), default="pvo", show_default=True,
              help="pvo: the duplicate-neuron analysis's |PVO| ranking; activation: largest repeated - non-repeated gap.")
@click.option("--n-neurons", default=8, show_default=True)
@click.option("--kind", type=click.Choice(["zero", "mean", "resample"]), default="mean", show_default=True)
@click.option("--reference", type=click.Choice(["distinct", "input"]), default="distinct", show_default=True,
              help="Mean/resample over distinct-token sequences (no copies) or over the measured sequences.")
@click.option("--n-seq", default=32, show_default=True, help="Repeated (and as many distinct) sequences.")
@click.option("--seq-len", default=128, show_default=True)
@click.option("--n-random", default=10, show_default=True, help="Random head sets and random neuron sets.")
@click.option("--no-bos", is_flag=True)
@click.option("--batch-size", default=None, type=int)
@click.option("--seed", default=0, show_default=True)
def ablate_dup_cmd(model, out, device, dtype, as_json, layer, heads, threshold, neurons, select, n_neurons, kind, reference,
                   n_seq, seq_len, n_random, no_bos, batch_size, seed):
    """Ablate the duplicate-token heads (and separately the other heads); watch the duplicate neurons (the duplicate-token post)."""
    from ..analyses.causal import question_duplicate as Q
    from ..models import load_weights

    w = load_weights(model)
    r = Q.duplicate_neuron_ablation(
        w, layer=layer, heads=_ints(heads, "--heads"), threshold=threshold, neurons=_ints(neurons, "--neurons"),
        select=select, n_neurons=n_neurons, kind=kind, reference=reference, n_seq=n_seq, seq_len=seq_len,
        n_random=n_random, prepend_bos=not no_bos, seed=seed, batch_size=batch_size, device=device, dtype=dtype)
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
@click.option("--layer", default=None, type=int, help="Residual point of the ablated probe (default: a third of the way).")
@click.option("--later", default=None, help="Later points whose probes are read, e.g. 2,3,4 (default: all later).")
@click.option("--patch-point", default=None, type=int, help="Later point whose probe is the patching metric (default: next).")
@click.option("--kind", type=click.Choice(["resample", "mean"]), default="resample", show_default=True)
@click.option("--n-train", default=3000, show_default=True, help="Training points (last tokens) for the probes.")
@click.option("--n-val-prompts", default=300, show_default=True)
@click.option("--n-units", default=7, show_default=True, help="Words per prompt.")
@click.option("--lengths-a", default="3,1", show_default=True, help="Word token lengths of prompt A.")
@click.option("--lengths-b", default="1,2,1", show_default=True, help="Word token lengths of prompt B (same total).")
@click.option("--n-pairs", default=64, show_default=True)
@click.option("--n-random", default=10, show_default=True)
@click.option("--C", "C", default="auto", show_default=True, help="Probe inverse regularisation, or auto.")
@click.option("--no-bos", is_flag=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--seed", default=0, show_default=True)
def ablate_word_index_cmd(model, out, device, dtype, as_json, layer, later, patch_point, kind, n_train, n_val_prompts, n_units,
                          lengths_a, lengths_b, n_pairs, n_random, C, no_bos, batch_size, seed):
    """Resample-ablate the word-index probe subspace; patch the signal between 3|1 and 1|2|1 prompts (the emergent-positional-embeddings post)."""
    from ..analyses.causal import question_word_index as Q
    from ..models import load_weights

    if C != "auto":
        try:
            C = float(C)
        except ValueError:
            raise InvalidInputError(f"--C must be a positive number or auto; got '{C}'") from None
    w = load_weights(model)
    r = Q.word_index_ablation(
        w, layer=layer, later=_ints(later, "--later"), patch_point=patch_point, kind=kind, n_train=n_train,
        n_val_prompts=n_val_prompts, n_units=n_units, lengths_a=_ints(lengths_a, "--lengths-a"),
        lengths_b=_ints(lengths_b, "--lengths-b"), n_pairs=n_pairs, n_random=n_random, C=C, prepend_bos=not no_bos,
        seed=seed, batch_size=batch_size, device=device, dtype=dtype)
    _finish(r, Q, out, "ablate-word-index", as_json)


@click.command("patch")
@common
@click.option("--clean", required=True, help="Clean prompt text (or @file).")
@click.option("--corrupted", required=True, help="Corrupted prompt text (or @file); must have as many tokens.")
@click.option("--metric", required=True,
              help="logit-diff:GOOD|BAD (e.g. 'logit-diff: Mary| John'), neuron:L.N, readout:HOOK:FILE.npy, prev-attention:L.H.")
@click.option("--position", default=-1, show_default=True, help="Position the metric reads.")
@click.option("--sweep", type=click.Choice(["resid", "heads"]), default="resid", show_default=True)
@click.option("--hook", default=None, help="resid: resid_pre|resid_mid|resid_post|attn_out|mlp_out (default resid_pre); "
                                            "heads: z|q|k|v|result (default z).")
@click.option("--layers", default=None, help="Layers to sweep, e.g. 0,1,2 (default: all).")
@click.option("--positions", default=None, help="resid: positions to sweep (default all); heads: positions patched (default all).")
@click.option("--mode", type=click.Choice(["denoise", "noise"]), default="denoise", show_default=True,
              help="denoise: clean activations into the corrupted run; noise: the reverse.")
@click.option("--method", type=click.Choice(["auto", "suffix", "full"]), default="auto", show_default=True)
@click.option("--no-bos", is_flag=True, help="Do not prepend BOS to the prompts.")
@click.option("--batch-size", default=None, type=int)
def patch_cmd(model, out, device, dtype, as_json, clean, corrupted, metric, position, sweep, hook, layers, positions, mode,
              method, no_bos, batch_size):
    """Activation patching between a clean and a corrupted prompt, swept over layers x positions or heads."""
    import torch

    from ..analyses.causal import patching as Pm
    from ..analyses.causal.metrics import metric_from_spec
    from ..models import Runner, load_weights

    w = load_weights(model)
    tok = _tokenizer(w, required=True)
    enc = lambda s: torch.tensor([tok.encode(_text(s, "prompt"), prepend_bos=not no_bos)])  # noqa: E731
    c, x = enc(clean), enc(corrupted)
    if c.shape[1] > w.cfg.n_ctx:
        raise InvalidInputError(f"the prompts have {c.shape[1]} tokens but the model's context is {w.cfg.n_ctx}; shorten them")
    m = metric_from_spec(metric, w, tokenizer=tok, tokens=c, position=position)
    runner = Runner(w, device=device, dtype=dtype)
    if sweep == "resid":
        r = Pm.patch_sweep(runner, c, x, m, hook=hook or "resid_pre", layers=_ints(layers, "--layers"),
                           positions=_ints(positions, "--positions"), mode=mode, method=method, batch_size=batch_size,
                           tokenizer=tok)
    else:
        r = Pm.head_sweep(runner, c, x, m, hook=hook or "z", layers=_ints(layers, "--layers"),
                          positions=_ints(positions, "--positions"), mode=mode, batch_size=batch_size, tokenizer=tok)
    _finish(r, Pm, out, "patch", as_json)
