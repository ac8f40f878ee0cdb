"""Inputs, the query/key harvest and the low-frequency ablation of the rotary analysis.

>>> r = rotary_usage(Runner(load_weights("EleutherAI/pythia-70m")), Options(ablate=True))   # doctest: +SKIP
>>> r.positional_ranking[:3], r.ablation.delta                                              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from ...data.sequences import SAMPLE_TEXT, corpus_sequences, sampled_tokens
from ...errors import NotApplicableError
from ...models.tokenizer import as_tokenizer
from ...options import resolve
from ..reach import as_runner, own_tokenizer
from .chunks import RotarySpec, not_rotary_reason, rotary_spec
from .measure import Ablation, Options, RotaryResult, measure, n_of


def _inputs(runner, opts: Options, tokenizer) -> tuple[torch.Tensor, str]:
    cfg = runner.cfg
    seq_len = min(opts.seq_len, cfg.n_ctx)
    if tokenizer is not None:
        if opts.corpus:
            t = corpus_sequences(opts.corpus, tokenizer, seq_len, opts.n_seq, seed=opts.seed)
            return t, f"{len(t)} windows of {seq_len} tokens from {opts.corpus}"
        ids = tokenizer.encode(SAMPLE_TEXT)
        if len(ids) > seq_len:
            g = torch.Generator().manual_seed(opts.seed)
            starts = torch.randint(0, len(ids) - seq_len + 1, (opts.n_seq,), generator=g).tolist()
            return (torch.tensor([ids[s : s + seq_len] for s in starts]),
                    f"{opts.n_seq} windows of {seq_len} tokens of poslens's sample passage")
    t = sampled_tokens(opts.n_seq, seq_len, cfg.d_vocab, seed=opts.seed, exclude=[cfg.bos_token_id])
    return t, f"{opts.n_seq} x {seq_len} random tokens (no tokenizer, or the passage is shorter than seq_len)"


def low_pair_edits(spec: RotarySpec, pairs, n_layers: int) -> dict:
    """Edits zeroing rotary ``pairs`` (dims i and i + r/2) of every layer's pre-rotation q and k."""
    half = spec.n_pairs
    dims = torch.tensor([d for i in pairs for d in (i, i + half)])

    def zero(x, hook):
        return x.index_fill(-1, dims.to(x.device), 0.0)

    return {f"blocks.{l}.attn.hook_{x}": zero for l in range(n_layers) for x in ("q", "k")}


def loss(runner, tokens: torch.Tensor, edits=None, batch_size: int = 8) -> tuple[float, int]:
    """Mean next-token cross-entropy (nats) over ``tokens`` and the number of predicted tokens."""
    total, n = 0.0, 0
    for i in range(0, len(tokens), batch_size):
        t = tokens[i : i + batch_size]
        logits = runner.run(t, edits=edits, logits=True).logits
        total += float(F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), t[:, 1:].reshape(-1),
                                       reduction="sum"))
        n += t[:, 1:].numel()
    return total / n, n


def rotary_usage(runner, opts: Options | None = None, tokenizer=None, **overrides) -> RotaryResult:
    """Frequency usage of every head on text; with ``opts.ablate`` the loss change when the lowest pairs go.

    Options (:class:`Options`) come as ``opts`` or as keywords (``rotary_usage(runner, n_seq=8)``); keywords
    override ``opts``. ``runner`` may also be the model's Weights (run in float32 on the CPU).

    Raises :class:`NotApplicableError` (saying why) on a learned-position model.
    """
    runner = as_runner(runner, "rotary_usage")
    tokenizer = as_tokenizer(tokenizer, "rotary_usage", runner.weights)
    opts = resolve(Options, opts, overrides, "rotary_usage")
    cfg, w = runner.cfg, runner.weights
    why = not_rotary_reason(cfg, w.label)
    if why:
        raise NotApplicableError(f"rotary frequency usage does not apply: {why}")
    spec = rotary_spec(cfg)
    if tokenizer is None:
        tokenizer = own_tokenizer(w)
    x, desc = _inputs(runner, opts, tokenizer)
    layers = list(range(cfg.n_layers))
    hooks = [f"blocks.{l}.attn.hook_{h}" for l in layers for h in ("q", "k")]
    acts = runner.run(x, hooks=hooks, batch_size=opts.batch_size)
    ablation = None
    if opts.ablate:
        n = spec.n_pairs
        pairs = tuple(range(n - n_of(opts.ablate_frac, n), n))
        clean, n_tok = loss(runner, x, batch_size=opts.batch_size)
        ablated, _ = loss(runner, x, low_pair_edits(spec, pairs, cfg.n_layers), batch_size=opts.batch_size)
        ablation = Ablation(pairs, opts.ablate_frac, clean, ablated, ablated - clean, n_tok)
    r = measure(acts, layers, spec, opts, inputs=desc, ablation=ablation)
    used = dataclasses.replace(opts, seq_len=min(opts.seq_len, runner.cfg.n_ctx))  # the length run: capped at n_ctx
    return dataclasses.replace(r, model=w.label, processing=tuple(w.processing), options=dataclasses.asdict(used))
