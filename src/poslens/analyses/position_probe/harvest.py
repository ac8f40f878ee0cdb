"""Inputs and the residual-stream harvest of the absolute-position probe.

>>> r = position_probe(Runner(load_weights("tiny")), Options(n_seq=32))   # doctest: +SKIP
>>> [(p.point, round(p.mae, 1)) for p in r.points]                      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import torch

from ...data.sequences import SAMPLE_TEXT, corpus_sequences, sampled_tokens
from ...errors import InvalidInputError
from ...models.runner import resid_hook
from ...models.tokenizer import as_tokenizer
from ...options import resolve
from ...progress import bar
from ..reach import as_runner, own_tokenizer, reach
from .measure import Options, ProbeResult, measure


def _text(tokenizer, opts: Options, seq_len: int) -> tuple[torch.Tensor, str]:
    if opts.corpus:
        t = corpus_sequences(opts.corpus, tokenizer, seq_len, opts.n_seq, seed=opts.seed, prepend_bos=opts.prepend_bos)
        return t, f"{len(t)} windows of {seq_len} tokens from {opts.corpus}"
    ids = tokenizer.encode(SAMPLE_TEXT)
    body = seq_len - int(opts.prepend_bos)
    if len(ids) < body + 1:
        raise InvalidInputError(f"the sample passage has {len(ids)} tokens, fewer than seq_len {seq_len}; give a corpus")
    # Overlapping windows at random offsets: a token's position differs from window to window,
    # so the probe cannot learn position from token identity.
    g = torch.Generator().manual_seed(opts.seed)
    starts = torch.randint(0, len(ids) - body + 1, (opts.n_seq,), generator=g).tolist()
    rows = [([tokenizer.bos_token_id] if opts.prepend_bos else []) + ids[s : s + body] for s in starts]
    return torch.tensor(rows, dtype=torch.long), f"{opts.n_seq} windows of {seq_len} tokens at random offsets of the sample passage"


def position_probe(runner, opts: Options | None = None, tokenizer=None, **overrides) -> ProbeResult:
    """Probe every residual point the checkpoint can reach on ``opts.inputs``.

    Options (:class:`Options`) come as ``opts`` or as keywords (``position_probe(runner, n_seq=8)``); keywords
    override ``opts``. ``runner`` may also be the model's Weights (run in float32 on the CPU).
    """
    runner = as_runner(runner, "position_probe")
    tokenizer = as_tokenizer(tokenizer, "position_probe", runner.weights)
    opts = resolve(Options, opts, overrides, "position_probe")
    cfg, w = runner.cfg, runner.weights
    seq_len = min(opts.seq_len, cfg.n_ctx)
    r_tok = reach(runner, "tokens")
    if tokenizer is None and r_tok.resid_points:
        tokenizer = own_tokenizer(w)
    kind = opts.inputs
    learned = getattr(cfg, "positional", "learned") == "learned"
    if kind == "auto":
        kind = "text" if (r_tok.resid_points and tokenizer is not None) else ("random_tokens" if r_tok.resid_points else "positional")
    if kind == "positional" and not learned:
        raise InvalidInputError(f"{w.label} has {cfg.positional} positions and no W_pos table: positional inputs alone "
                                "are all zeros; use text or random_tokens inputs")
    if kind in ("text", "random_tokens") and not r_tok.resid_points:
        raise InvalidInputError(f"{kind} inputs need the token embedding: {r_tok.stopped}")
    if kind == "text" and tokenizer is None:
        raise InvalidInputError("text inputs need the model's tokenizer; use inputs random_tokens")
    r = r_tok if kind != "positional" else reach(runner, "embed")
    if not r.resid_points:
        raise InvalidInputError(f"no residual point of {w.label} can be computed: {r.stopped}")
    bos = cfg.bos_token_id if opts.prepend_bos else None
    if kind == "text":
        x, desc = _text(tokenizer, opts, seq_len)
    elif kind == "random_tokens":
        x = sampled_tokens(opts.n_seq, seq_len, cfg.d_vocab, seed=opts.seed, exclude=[cfg.bos_token_id], bos=bos)
        desc = f"{opts.n_seq} x {seq_len} tokens drawn uniformly from the vocabulary"
    else:
        x = torch.zeros(opts.n_seq, seq_len, cfg.d_model)
        desc = (f"positional inputs alone ({opts.n_seq} identical sequences of {seq_len} positions, token embedding "
                "zero): the probe reads position from W_pos and what the layers make of it")
    points = r.resid_points
    hooks = [resid_hook(p, n_layers=cfg.n_layers) for p in points]
    mode = "embed" if kind == "positional" else "tokens"
    parts = []
    starts = range(0, len(x), opts.batch_size)
    for i in bar(starts, desc="position probe: residual stream", unit="batch", leave=False, disable=len(starts) <= 4):
        acts = runner.run(**{mode: x[i : i + opts.batch_size]}, hooks=hooks)
        parts.append(torch.stack([acts[h] for h in hooks]))
    resid = torch.cat(parts, 1)
    limits = ""
    if r.stopped:
        limits = f"residual points after {points[-1]} not reached ({r.stopped})"
    res = measure(resid, points, opts, inputs=kind, description=desc, limits=limits)
    used = dataclasses.replace(opts, seq_len=seq_len)  # the length run: capped at n_ctx
    return dataclasses.replace(res, model=w.label, processing=tuple(w.processing), options=dataclasses.asdict(used))
