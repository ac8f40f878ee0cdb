"""The inputs the sink measurement runs on, and the passes that collect its statistics.

Token inputs (random tokens, one token repeated, text) need the token embedding; positional
inputs (zeros in place of the token embedding, so each layer sees W_pos alone) run on any
checkpoint with W_pos, the partial GPT-2 small included. Each pass is reduced to per-layer
statistics batch by batch, so memory stays at one batch of patterns whatever ``n_seq`` is.

>>> r = attention_sinks(Runner(load_weights("tiny")), Options(n_seq=20))   # doctest: +SKIP
>>> r.run("random_tokens").sink_share                                     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import torch

from ...data.sequences import SAMPLE_TEXT, corpus_sequences, sampled_tokens, text_windows, token_pool
from ...errors import InvalidInputError
from ...models.tokenizer import as_tokenizer
from ...options import resolve
from ...progress import bar
from ..reach import as_runner, own_tokenizer, reach
from ..rotary.chunks import apply_rotary, rotary_spec
from .measure import INPUT_HELP, InputSinks, LayerStats, Options, SinkResult, reduce_layer, summarize_inputs


def _token_inputs(kind: str, runner, opts: Options, seq_len: int, tokenizer) -> tuple[torch.Tensor, str]:
    cfg = runner.cfg
    bos = cfg.bos_token_id if opts.prepend_bos else None
    if opts.prepend_bos and bos is None:
        raise InvalidInputError("prepend_bos was asked for but the model's config names no bos_token_id")
    if kind == "random_tokens":
        t = sampled_tokens(opts.n_seq, seq_len, cfg.d_vocab, seed=opts.seed, exclude=[cfg.bos_token_id], bos=bos)
        return t, f"{opts.n_seq} x {seq_len} {INPUT_HELP[kind]}"
    if kind == "repeated_token":
        pool = token_pool(cfg.d_vocab, [cfg.bos_token_id])
        g = torch.Generator().manual_seed(opts.seed + 1)
        ids = pool[torch.randint(0, pool.numel(), (opts.n_seq,), generator=g)]
        t = ids[:, None].expand(opts.n_seq, seq_len - (bos is not None)).clone()
        if bos is not None:
            t = torch.cat([torch.full((opts.n_seq, 1), bos), t], 1)
        return t, f"{opts.n_seq} x {seq_len}: {INPUT_HELP[kind]}"
    # text
    if tokenizer is None:
        raise InvalidInputError("text inputs need the model's tokenizer")
    if opts.corpus:
        t = corpus_sequences(opts.corpus, tokenizer, seq_len, opts.n_seq, seed=opts.seed, prepend_bos=opts.prepend_bos)
        return t, f"{len(t)} windows of {seq_len} tokens from {opts.corpus}"
    t = text_windows(SAMPLE_TEXT, tokenizer, seq_len, opts.n_seq, bos)
    return t, f"{len(t)} consecutive windows of {seq_len} tokens of poslens's sample passage"


def _short(stopped: str) -> str:
    """The missing-tensor message without its generic advice."""
    return stopped.split("; use a complete checkpoint")[0]


def kind_label(kind: str, x: torch.Tensor) -> str:
    return f"{len(x)} x {x.shape[1]} {'positional' if kind == 'embed' else 'token'} inputs"


def _collect(runner, x: torch.Tensor, kind: str, layers, batch_size: int, rotate) -> list[LayerStats]:
    hooks = [f"blocks.{l}.attn.{h}" for l in layers for h in ("hook_pattern", "hook_q", "hook_k")]
    parts: list[list[LayerStats]] = [[] for _ in layers]
    starts = range(0, len(x), batch_size)
    for i in bar(starts, desc=f"sinks: {kind_label(kind, x)}", unit="batch", leave=False, disable=len(starts) <= 4):
        acts = runner.run(**{kind: x[i : i + batch_size]}, hooks=hooks)
        for j, l in enumerate(layers):
            parts[j].append(reduce_layer(acts[f"blocks.{l}.attn.hook_pattern"], rotate(acts[f"blocks.{l}.attn.hook_q"]),
                                         rotate(acts[f"blocks.{l}.attn.hook_k"]), window=runner.cfg.window_at(l)))
    return [LayerStats.cat(p) for p in parts]


def attention_sinks(runner, opts: Options | None = None, tokenizer=None, **overrides) -> SinkResult:
    """Sink figures on every input kind of ``opts.inputs`` the checkpoint allows, over every layer it can run.

    Options (:class:`Options`) come as ``opts`` or as keywords (``attention_sinks(runner, n_seq=8)``); keywords
    override ``opts``. ``runner`` may also be the model's Weights (run in float32 on the CPU).

    Input kinds the checkpoint cannot serve are listed in ``skipped_inputs`` with the reason
    (with ``inputs="auto"``); asked for explicitly, they raise.
    """
    runner = as_runner(runner, "attention_sinks")
    tokenizer = as_tokenizer(tokenizer, "attention_sinks", runner.weights)
    opts = resolve(Options, opts, overrides, "attention_sinks")
    cfg, w = runner.cfg, runner.weights
    seq_len = min(opts.seq_len, cfg.n_ctx)
    spec = rotary_spec(cfg)
    rotate = (lambda x: apply_rotary(x, spec)) if spec is not None else (lambda x: x)
    explicit = opts.inputs.strip() != "auto"
    reached = {"tokens": reach(runner, "tokens"), "embed": reach(runner, "embed")}
    if tokenizer is None:
        tokenizer = own_tokenizer(w)
    runs: list[InputSinks] = []
    skipped: list[str] = []
    limits: list[str] = []
    for kind in opts.input_kinds():
        mode = "embed" if kind == "positional" else "tokens"
        r = reached[mode]
        why = None
        if kind == "positional" and getattr(cfg, "positional", "learned") != "learned":
            why = f"the model has {cfg.positional} positions and no W_pos table: positional inputs alone would be all zeros"
        elif not r.attention_layers:
            why = f"no layer's attention can run on {'positional' if mode == 'embed' else 'token'} inputs: " + _short(r.stopped)
        elif kind == "text" and tokenizer is None:
            why = "the checkpoint has no usable tokenizer"
        if why:
            if explicit:
                raise InvalidInputError(f"cannot measure sinks on {kind} inputs: {why}")
            skipped.append(f"{kind}: {why}")
            continue
        if r.stopped and r.attention_layers[-1] < cfg.n_layers - 1:
            limits.append(f"layers {r.attention_layers[-1] + 1}..{cfg.n_layers - 1} not measured on {mode} inputs: "
                          + _short(r.stopped))
        if kind == "positional":
            x = torch.zeros(1, seq_len, cfg.d_model)
            desc = f"1 x {seq_len}: {INPUT_HELP[kind]}"
        else:
            x, desc = _token_inputs(kind, runner, opts, seq_len, tokenizer)
        stats = _collect(runner, x, mode, r.attention_layers, opts.batch_size, rotate)
        runs.append(summarize_inputs(kind, desc, r.attention_layers, stats, opts))
    if not runs:
        raise InvalidInputError(f"{w.label} supports none of the sink inputs ({'; '.join(skipped)})")
    windowed = [l for l in range(cfg.n_layers) if (cfg.window_at(l) or seq_len) < seq_len]
    if windowed:
        # a query at i < window spreading its attention evenly gives key 0 a share of 1 / (i + 1)
        uniform = sum(1 / (i + 1) for i in range(cfg.window)) / cfg.window
        several = len(windowed) > 1
        limits.append(f"layer{'s' * several} {', '.join(map(str, windowed))} attend{'' if several else 's'} within a "
                      f"window of {cfg.window} < {seq_len} "
                      f"positions: alpha(0) there averages the {cfg.window} queries that see position 0, as in a "
                      f"context of {cfg.window} tokens, where even uniform attention gives alpha(0) = {uniform:.2f}")
    used = dataclasses.replace(opts, seq_len=seq_len)  # the length run: capped at n_ctx
    return SinkResult(
        model=w.label, processing=tuple(w.processing), options=dataclasses.asdict(used), epsilon=opts.epsilon,
        n_layers=cfg.n_layers, n_heads=cfg.n_heads, runs=tuple(runs), skipped_inputs=tuple(skipped),
        limits="; ".join(dict.fromkeys(limits)),
    )
