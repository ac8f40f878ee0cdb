"""Ablate what the user names, or patch between two prompts the user writes: what `poslens ablate
run` and `poslens patch` compute, callable from Python with the same options.

>>> from poslens.models import load_weights
>>> w = load_weights("tiny")                                                            # doctest: +SKIP
>>> r = ablate_named(w, heads=[(0, 1)], metrics=["loss"], kind="mean", n_baseline=5)    # doctest: +SKIP
>>> r.effects["loss"].effect, r.effects["loss"].z                                       # doctest: +SKIP
>>> p = patch_prompts(w, "The cat sat", "The dog sat", "logit-diff: on| in", sweep="heads")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import InvalidInputError, PoslensError
from ...models import Runner
from ...models.tokenizer import Tokenizer, as_tokenizer
from ...models.weights import Weights, as_weights
from ...options import resolve
from .ablate import AblationResult, ablation_effect
from .inputs import make_inputs
from .intervention import ablate_direction, ablate_head, ablate_neuron
from .metrics import metric_from_spec
from .options import AblationOptions, PatchOptions
from .patching import PatchResult, head_sweep, patch_sweep


def _tokenizer(w: Weights, required: bool):
    try:
        return Tokenizer.for_checkpoint(w.source)
    except PoslensError:
        if required:
            raise
        return None


def _by_layer(pairs: Sequence[tuple[int, int] | str], what: str) -> dict[int, list[int]]:
    """(layer, index) pairs or the ``"L.I"`` names results use (``duplicate_heads(...).ranking``), by layer."""
    out: dict[int, list[int]] = {}
    for p in [pairs] if isinstance(pairs, str) else pairs:
        try:
            layer, i = (int(x) for x in (p.split(".") if isinstance(p, str) else p))
        except (TypeError, ValueError):
            raise InvalidInputError(f"{what}= takes (layer, index) pairs or 'L.I' names, as [(0, 1)] or "
                                    f"['0.1']; got {p!r}") from None
        out.setdefault(layer, []).append(i)
    return out


def ablate_named(
    weights: Weights,
    options: AblationOptions | None = None,
    *,
    heads: Sequence[tuple[int, int] | str] = (),
    neurons: Sequence[tuple[int, int] | str] = (),
    direction: np.ndarray | str | None = None,
    hook: str | None = None,
    pos_pcs: int | None = None,
    metrics: Sequence[str] = ("loss",),
    device: str = "cpu",
    dtype: str = "float32",
    tokenizer=None,
    **overrides,
) -> AblationResult:
    """Ablate ``heads`` ((layer, head) pairs, or ``"L.H"`` as results name them), ``neurons``
    ((layer, neuron) pairs or ``"L.N"``), a ``direction`` (array or .npy path, [d_model] or
    [k, d_model]) at ``hook`` and W_pos's top ``pos_pcs`` principal components, all at once, and measure ``metrics`` (specs as
    :func:`~poslens.analyses.causal.metrics.metric_from_spec` reads them) against
    ``n_baseline`` random ablations of the same size. ``options``:
    :class:`~poslens.analyses.causal.options.AblationOptions` (keywords replace its fields).
    ``tokenizer``: the model's own, where its checkpoint has none (default: the checkpoint's).
    """
    o = resolve(AblationOptions, options, overrides, "ablate_named")
    weights = as_weights(weights, "ablate_named")
    tok = as_tokenizer(tokenizer, "ablate_named", weights) or _tokenizer(weights, required=False)
    bos = tok.bos_token_id if (o.prepend_bos and tok is not None) else None
    common = dict(positions=o.positions, reference="input" if o.reference == "input" else "ref", mean_over=o.mean_over,
                  seed=o.seed)
    ivs = [ablate_head(l, hs, o.kind, **common) for l, hs in _by_layer(heads, "heads").items()]
    ivs += [ablate_neuron(l, ns, o.kind, **common) for l, ns in _by_layer(neurons, "neurons").items()]
    if direction is not None:
        if not hook:
            raise InvalidInputError("a direction needs a hook (where to ablate it, e.g. blocks.2.hook_resid_post)")
        source = str(direction) if isinstance(direction, str) else "given array"
        if isinstance(direction, str):
            try:
                direction = np.load(direction)
            except (OSError, ValueError) as exc:
                raise InvalidInputError(f"cannot read {source} ({exc}); give a .npy file") from None
        ivs.append(ablate_direction(hook, direction, o.kind, source=source, **common))
    if pos_pcs and (o.kind == "resample" or (o.kind == "mean" and o.mean_over == "sequences")):
        # hook_pos_embed is the same W_pos row in every sequence at a position: nothing to average or resample over
        raise InvalidInputError(f"a {o.kind} ablation of W_pos's PCs changes nothing: every sequence has the same "
                                "positional embedding at a position; use --kind zero, or --kind mean --mean-over all")
    if pos_pcs:
        from ..helix import pca

        fit = pca(weights.W_pos[1:].double().numpy(), n_components=pos_pcs)
        ivs.append(ablate_direction("hook_pos_embed", fit.components, o.kind,
                                    source=f"W_pos[1:] top-{pos_pcs} PCA (poslens.analyses.helix.pca)", **common))
    if not ivs:
        raise InvalidInputError("nothing to ablate: name heads, neurons, a direction or W_pos PCs "
                                "(--head, --neuron, --direction, --pos-pcs; in Python heads=, neurons=, direction=, pos_pcs=)")
    P = min(o.seq_len, weights.cfg.n_ctx)
    V = weights.cfg.d_vocab
    tokens = make_inputs(o.data, d_vocab=V, tokenizer=tok, n_seq=o.n_seq, seq_len=P, seed=o.seed, bos=bos)
    refs, info = {}, {"input": f"{o.data}: {tokens.shape[0]} x {tokens.shape[1]} tokens"}
    if o.reference != "input":
        refs["ref"] = make_inputs(o.reference, d_vocab=V, tokenizer=tok, n_seq=o.n_seq, seq_len=P, seed=o.seed + 1, bos=bos)
        info["ref"] = f"{o.reference}: {refs['ref'].shape[0]} x {refs['ref'].shape[1]} tokens"
    ms = [metric_from_spec(s, weights, tokenizer=tok, tokens=tokens, position=o.position) for s in (metrics or ("loss",))]
    r = ablation_effect(Runner(weights, device=device, dtype=dtype), tokens, ivs, ms, references=refs,
                        reference_info=info, n_baseline=o.n_baseline, seed=o.seed, batch_size=o.batch_size)
    if tokens.shape[0] < o.n_seq or tokens.shape[1] < o.seq_len:
        r.notes.append(f"measured on {tokens.shape[0]} x {tokens.shape[1]} tokens of {o.data}, not the {o.n_seq} x "
                       f"{o.seq_len} asked for: the model's context is {weights.cfg.n_ctx} tokens, and a text holds "
                       "only so many windows")
    # an attention-only model stores zero MLP matrices: its neurons' effects are exactly 0, which needs saying
    silent = sorted(l for l in _by_layer(neurons, "neurons") if not weights.get(f"blocks.{l}.mlp.W_out").any())
    if silent:
        r.notes.append(f"the MLP of layer{'s' if len(silent) > 1 else ''} {', '.join(map(str, silent))} writes nothing "
                       "(W_out is all zeros, as in an attention-only model): ablating its neurons changes nothing")
    return r


def patch_prompts(
    weights: Weights,
    clean: str,
    corrupted: str,
    metric: str,
    options: PatchOptions | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    tokenizer=None,
    **overrides,
) -> PatchResult:
    """Tokenise ``clean`` and ``corrupted`` (same token count), read ``metric`` (a spec such as
    ``"logit-diff: Mary| John"``) and patch activations between them, swept over layers x
    positions (``sweep="resid"``) or heads. ``options``:
    :class:`~poslens.analyses.causal.options.PatchOptions` (keywords replace its fields).
    ``tokenizer``: the model's own, where its checkpoint has none (default: the checkpoint's).
    """
    import torch

    o = resolve(PatchOptions, options, overrides, "patch_prompts")
    weights = as_weights(weights, "patch_prompts")
    for what, text in (("clean", clean), ("corrupted", corrupted)):
        if not text.strip():
            raise InvalidInputError(f"the {what} prompt is empty; give its text (or @file)")
    if clean == corrupted:  # every patched cell would equal both runs: nothing to measure
        raise InvalidInputError("the clean and corrupted prompts are the same text; change the corrupted one where "
                                "the clean one carries what the metric reads")
    tok = as_tokenizer(tokenizer, "patch_prompts", weights) or _tokenizer(weights, required=True)
    c, x = (torch.tensor([tok.encode(s, prepend_bos=o.prepend_bos)]) for s in (clean, corrupted))
    if c.shape[1] > weights.cfg.n_ctx:
        raise InvalidInputError(f"the prompts have {c.shape[1]} tokens but the model's context is "
                                f"{weights.cfg.n_ctx}; shorten them")
    m = metric_from_spec(metric, weights, tokenizer=tok, tokens=c, position=o.position)
    runner = Runner(weights, device=device, dtype=dtype)
    if o.sweep == "resid":
        return patch_sweep(runner, c, x, m, hook=o.hook or "resid_pre", layers=o.layers, positions=o.positions,
                           mode=o.mode, method=o.method, batch_size=o.batch_size, tokenizer=tok)
    return head_sweep(runner, c, x, m, hook=o.hook or "z", layers=o.layers, positions=o.positions, mode=o.mode,
                      batch_size=o.batch_size, tokenizer=tok)
