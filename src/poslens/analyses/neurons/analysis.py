"""The duplicate-neuron analysis end to end: choose the head, PVO of it onto the same layer's MLP
(grid, selected neurons, curves, fits), the exact decomposition of one neuron over a text with
the seed's approximations, the seed's combined curve and the top activating examples."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ...errors import InvalidInputError, NotApplicableError, PoslensError
from ...models import processing as proc
from ...models.runner import Runner
from ...models.weights import Weights, as_weights, require
from ...options import resolve
from ..heads import check_heads, pattern_stats
from .decompose import decompose_neuron
from .examples import top_activating_examples
from .layernorm import layernorm_scale_study, ln1_multiplier_curve
from .options import Options
from .premise import check_neuron, first_layers, layer_names, not_applicable_reason, token_path_names, zero_mlp_reason
from .pvo import combined_positional, grid_shape, linear_fit, pvo_matrix
from .result import CombinedPositional, DupNeuronsResult, NeuronFit


def _default_head(weights: Weights, seq_len: int, seed: int) -> tuple[tuple[int, int], str]:
    """Layer 0's head with the highest duplicate score on repeated random tokens."""
    from ...data.sequences import repeated_tokens

    require(weights, ["embed.W_E"], "choosing the duplicate head (pass --head to name one)")
    w0 = first_layers(weights, 1)
    P = min(seq_len, weights.cfg.n_ctx)
    st = pattern_stats(Runner(w0), repeated_tokens(16, P, weights.cfg.d_vocab, seed=seed), [0])
    scores = st.pooled()[0]
    h = int(np.argmax(scores))
    return (0, h), f"0.{h}: highest duplicate-token score in layer 0 on 16 repeated random-token sequences ({scores[h]:.3f})"


def duplicate_neurons(
    weights: Weights,
    opts: Options | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    tokenizer=None,
    **kw,
) -> DupNeuronsResult:
    """The seed's duplicate-neuron pipeline for ``head`` (default: layer 0's strongest duplicate head).

    Options (:class:`Options`) come as ``opts`` or as keywords (``duplicate_neurons(w, head=(0, 5))``);
    keywords override ``opts``. PVO of the head onto the same layer's MLP: norms (grid),
    neurons above ``threshold`` (else the ``top_k`` largest), curves and linear fits; then
    for ``neuron`` (default the largest selected) the decomposition over ``text`` (default:
    the first window of ``corpus``, else :data:`~poslens.data.sequences.SAMPLE_TEXT`) and the
    top ``k_examples`` activating positions over ``n_seq`` windows of ``corpus`` (else over
    the text). ``mlp_scale`` (default: measured on the text) divides the PVO curves.
    """
    from ...data.sequences import SAMPLE_TEXT, corpus_sequences, sampled_tokens, text_tokens
    from ...models.tokenizer import Tokenizer, as_tokenizer

    o = resolve(Options, opts, kw, "duplicate_neurons")  # validates the values
    weights = as_weights(weights, "duplicate_neurons")
    tokenizer = as_tokenizer(tokenizer, "duplicate_neurons", weights)
    cfg = weights.cfg
    head, neuron, uniform_heads = o.head, o.neuron, o.uniform_heads
    if head is not None:
        check_heads(weights, [tuple(head)])
        head = (int(head[0]), int(head[1]))
    check_heads(weights, uniform_heads)
    if neuron is not None:
        check_neuron(weights, neuron)
    # Clamped, these would print a fit through the last two positions (R² 1) or a mean from a position
    # not asked for; the default combined_from alone adapts to a short context.
    if o.fit_from > cfg.n_ctx - 3:
        raise InvalidInputError(f"--fit-from {o.fit_from} leaves fewer than 3 positions to fit: {weights.label}'s "
                                f"positions run 0..{cfg.n_ctx - 1}; give at most {cfg.n_ctx - 3}")
    if o.combined_from >= cfg.n_ctx and o.combined_from != Options.combined_from:
        raise InvalidInputError(f"--combined-from {o.combined_from} is past {weights.label}'s last position "
                                f"({cfg.n_ctx - 1}); give a smaller position")
    L = head[0] if head is not None else 0
    if uniform_heads is not None and any(l != L for l, _ in uniform_heads):
        raise InvalidInputError(f"--uniform-heads must be heads of layer {L}, the layer of the duplicate head")
    why = not_applicable_reason(cfg, weights.label)
    if why:
        raise NotApplicableError(f"the duplicate-neuron analysis does not apply: {why}")
    # Check everything the pipeline reads before the first expensive step.
    require(weights, ["pos_embed.W_pos", *layer_names(L, ("ln1.w", "ln1.b", "attn.W_V", "attn.W_O", "ln2.w", "ln2.b",
                                                           "mlp.W_in"))],
            f"the PVO analysis of layer {L} (W_pos · W_V · W_O · W_in)")
    require(weights, token_path_names(L), f"the per-head decomposition and top examples (token inputs through layer {L})")
    notes: list[str] = []
    head_choice = "given"
    if head is None:
        head, head_choice = _default_head(weights, o.seq_len, o.seed)
    L, hd = head
    why = zero_mlp_reason(weights, L)
    if why:
        raise NotApplicableError(f"the duplicate-neuron analysis does not apply: {why}")
    if L > 0:
        notes.append(f"head {L}.{hd} is not in layer 0: PVO, its curves and the study's LayerNorm formulas read W_pos "
                     "directly and ignore the layers before; the decomposition stays exact")

    wt = first_layers(weights, L + 1)
    wp = proc.fold_layer_norm(wt) if o.fold_ln else wt
    wp = proc.center_writing_weights(wp) if o.center else wp
    # The decomposition must add up to the model's pre-activation, so it always uses
    # folded LayerNorms (exact) and centred writers (exact), whatever the PVO options.
    wd = wp if (o.fold_ln and o.center) else proc.center_writing_weights(proc.fold_layer_norm(wt))

    study = layernorm_scale_study(wp, o.n_scale_tokens, o.pos_norm_from, o.seed)
    raw = pvo_matrix(wp, L, hd)  # [n_ctx, d_mlp]
    norms = raw.norm(dim=0)
    rows, cols = grid_shape(cfg.d_mlp)
    above = [int(i) for i in torch.argsort(norms, descending=True) if norms[i] > o.threshold]
    if above:
        selected, selection = above, f"|PVO| > {o.threshold}"
    else:
        selected = [int(i) for i in torch.argsort(norms, descending=True)[:o.top_k]]
        selection = f"top {o.top_k} by |PVO| (none above {o.threshold}; max {float(norms.max()):.3g})"
        notes.append(f"no neuron has |PVO| > {o.threshold}; took the {o.top_k} largest")
    neuron = int(selected[0] if neuron is None else neuron)

    # The text to decompose.
    tok = tokenizer
    if tok is None:
        try:
            tok = Tokenizer.for_checkpoint(weights.source)
        except PoslensError as exc:
            if o.text is not None or o.corpus is not None:
                raise
            notes.append(f"no tokenizer ({exc}); decomposed a random-token sequence instead of text")
    bos = tok.bos_token_id if (tok is not None and o.prepend_bos) else None
    ignore = (bos,) if bos is not None else ()
    P = min(o.seq_len, cfg.n_ctx)
    if o.text is not None:
        seq, text_source = text_tokens(o.text, tok, prepend_bos=bos is not None, max_len=cfg.n_ctx)[0], "given text"
    elif o.corpus is not None:
        seq = corpus_sequences(o.corpus, tok, P, 1, seed=o.seed, prepend_bos=bos is not None)[0]
        text_source = f"first window of {o.corpus}"
    elif tok is not None:
        seq = text_tokens(SAMPLE_TEXT, tok, prepend_bos=bos is not None, max_len=cfg.n_ctx)[0]
        text_source = "poslens sample text"
    else:
        seq = sampled_tokens(1, P, cfg.d_vocab, seed=o.seed, n_distinct=max(2, P // 4))[0]
        text_source = f"random tokens ({max(2, P // 4)} distinct)"
    seq = seq[: cfg.n_ctx]
    uni = [h for _, h in uniform_heads] if uniform_heads is not None else None
    dec = dataclasses.replace(
        decompose_neuron(wd, head, neuron, seq, uni, o.mlp_scale, o.pos_norm_from, ignore), text_source=text_source,
        token_strings=tok.to_str_tokens(seq.tolist()) if tok is not None else [str(i) for i in seq.tolist()])
    s_mlp = dec.mlp_scale.used
    if dec.reconstruction_error > 1e-6 * max(1.0, float(np.abs(dec.measured).max())):
        notes.append(f"the decomposition misses the measured pre-activation by {dec.reconstruction_error:.2e}")
    if dec.extra_vs_distance.n == 0:
        notes.append(dec.extra_vs_distance.reason)

    # PVO curves and fits.
    m1 = ln1_multiplier_curve(wp, o.ln_scale, o.n_scale_tokens, o.pos_norm_from, o.seed)
    curves_all = raw * m1[:, None] / s_mlp
    pos_idx = np.arange(cfg.n_ctx)
    ff = min(int(o.fit_from), cfg.n_ctx - 2)
    fit_neurons = list(dict.fromkeys([*selected, neuron]))
    fits = {str(n): NeuronFit(**linear_fit(curves_all[ff:, n].numpy(), pos_idx[ff:]), norm=float(norms[n]))
            for n in fit_neurons}
    curves = {str(n): curves_all[:, n].tolist() for n in list(dict.fromkeys([neuron, *selected]))[:o.max_curves]}

    # The seed's combined positional curve for the decomposed neuron (weights only).
    m1d = ln1_multiplier_curve(wd, o.ln_scale, o.n_scale_tokens, o.pos_norm_from, o.seed)
    uni_heads = [int(n.split(".")[1]) for n in dec.approximations.uniform_heads]
    comb = combined_positional(wd, head, neuron, uni_heads, m1d, s_mlp)
    # only the default adapts to a short context; a position the user gave is used as given (checked above)
    cf = min(int(o.combined_from), cfg.n_ctx // 2) if o.combined_from == Options.combined_from else int(o.combined_from)
    combined = CombinedPositional(curve=comb.tolist(), from_position=cf, mean_from=float(comb[cf:].mean()),
                                  uniform_heads=dec.approximations.uniform_heads, ln_scale=o.ln_scale,
                                  mlp_scale=s_mlp)

    # Top activating examples.
    examples, ex_summary = [], None
    if o.k_examples:
        runner = Runner(wt, device=device, dtype=dtype)
        if o.corpus is not None:
            windows = corpus_sequences(o.corpus, tok, P, o.n_seq, seed=o.seed, prepend_bos=bos is not None)
            source = f"{len(windows)} windows of {P} tokens from {o.corpus}"
        else:
            windows = seq[None]
            source = f"the decomposed text ({text_source}; pass --corpus to search a corpus)"
        examples, ex_summary = top_activating_examples(runner, windows, L, neuron, tok, o.k_examples, o.context_before,
                                                       o.context_after, ignore, o.batch_size)
        ex_summary = dataclasses.replace(ex_summary, source=source)

    options = {
        **dataclasses.asdict(o), "head": f"{L}.{hd}", "neuron": neuron, "text": text_source, "seq_len": P,
        "center_axis": "d_model (each row's mean removed; exact under LayerNorm)", "fit_from": ff, "combined_from": cf,
        "corpus": str(o.corpus) if o.corpus else None, "uniform_heads": dec.approximations.uniform_heads,
        "uniform_heads_source": "given" if uniform_heads else "detected", "prepend_bos": bos is not None, "dtype": dtype,
        "decomposition_weights": list(wd.processing), "decomposition_dtype": "float64",
        "pvo_norm": "L2 over all positions of the raw W_pos·W_V·W_O·W_in",
    }
    return DupNeuronsResult(
        model=weights.label, processing=wp.processing, options=options, head=f"{L}.{hd}", layer=L, neuron=neuron,
        d_mlp=cfg.d_mlp, head_choice=head_choice, ln_scale=study, pvo_norms=norms.tolist(),
        grid=norms.reshape(rows, cols).tolist(), grid_shape=[rows, cols], selected=selected, selection=selection,
        fits=fits, curves=curves, ln1_multiplier=m1.tolist(),
        mlp_scale=dec.mlp_scale, decomposition=dec, combined_positional=combined,
        top_examples=examples, top_examples_summary=ex_summary, notes=notes,
    )
