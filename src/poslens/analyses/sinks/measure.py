"""Attention sinks, measured from attention patterns, queries and keys.

Gu et al. 2024 ("When Attention Sink Emerges in Language Models: An Empirical View") score
key position k of head h in layer l by the mean attention it receives from the queries
that can see it, alpha(k) = sum_{i>=k} A[i, k] / (T - k), and call the first position a
sink when alpha(0) > epsilon (0.3) for that head on that sequence; their Sink metric is the
share of (sequence, layer, head) triples that are sinks. Beside it: the first position's
key norm against the other positions', and the query-key cosine towards the first key
against the cosine towards the others, per head (their "key bias" reading: the sink comes
from the angle, not the norm).

>>> stats = [reduce_layer(acts[f"blocks.{l}.attn.hook_pattern"], acts[f"blocks.{l}.attn.hook_q"],
...                       acts[f"blocks.{l}.attn.hook_k"]) for l in layers]                  # doctest: +SKIP
>>> summarize_inputs("random_tokens", "100 x 64 random tokens", layers, stats, Options()).sink_share  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ...errors import InvalidInputError, suggest
from ...results import Result
from .options import INPUT_HELP, INPUT_KINDS, Options


@dataclass(frozen=True)
class HeadSink:
    head: str  # "L.H"
    first_attention: float  # alpha(0), mean over sequences
    sink_rate: float  # share of sequences with alpha(0) > epsilon
    first_key_norm: float
    other_key_norm: float  # mean norm of keys at positions 1..T-1
    key_norm_ratio: float | None  # first / other (None when the other keys are zero)
    qk_cos_first: float  # mean cos(q_i, k_0) over queries i >= 1
    qk_cos_other: float  # mean cos(q_i, k_j) over 1 <= j <= i


@dataclass(frozen=True)
class InputSinks:
    inputs: str  # one of INPUT_KINDS
    description: str
    n_seq: int
    seq_len: int
    layers: tuple[int, ...]
    sink_share: float  # the study's metric: share of (sequence, layer, head) with alpha(0) > epsilon
    head_share: float  # share of heads whose mean alpha(0) over sequences exceeds epsilon
    sink_heads: tuple[str, ...]  # those heads, strongest first
    per_layer: tuple[float, ...]  # sink_share within each measured layer
    key_profile: tuple[float, ...]  # alpha(k) by key position, mean over layers, heads and sequences
    first_key_norm_ratio: float | None  # median over heads of first / other key norm
    qk_cos_first: float  # mean over heads
    qk_cos_other: float
    qk_cos_gap: float  # qk_cos_first - qk_cos_other: > 0 when queries point at the first key more than at the others
    heads: tuple[HeadSink, ...]


@dataclass(frozen=True)
class SinkResult(Result):
    epsilon: float = 0.3
    n_layers: int = 0
    n_heads: int = 0
    runs: tuple[InputSinks, ...] = ()
    skipped_inputs: tuple[str, ...] = ()  # "kind: why"
    limits: str = ""  # why some layers were not measured

    kind = "sinks"

    def run(self, inputs: str) -> InputSinks:
        """The figures on input kind ``inputs``; one clear error, naming the kinds measured, if it was not one.

        >>> attention_sinks("tiny", inputs="positional").run("positional").sink_share   # doctest: +SKIP
        """
        found = next((r for r in self.runs if r.inputs == inputs), None)
        if found is not None:
            return found
        measured = ", ".join(r.inputs for r in self.runs) or "none"
        why = {s.split(":")[0]: s.split(":", 1)[1].strip() for s in self.skipped_inputs}
        if inputs in why:
            reason = f"skipped: {why[inputs]}"
        elif inputs in INPUT_KINDS:
            asked = self.options.get("inputs", "auto")
            reason = f"not asked for (inputs={asked!r}); run attention_sinks with inputs={inputs!r}"
        else:
            reason = f"not an input kind{suggest(inputs, INPUT_KINDS)}"
        raise InvalidInputError(f"no sink figures on {inputs!r} inputs ({reason}); this result measured: {measured}")


@dataclass(frozen=True)
class LayerStats:
    """Per-sequence statistics of one layer (tensors [batch, head] unless noted)."""

    first_attention: torch.Tensor
    first_key_norm: torch.Tensor
    other_key_norm: torch.Tensor
    qk_cos_first: torch.Tensor
    qk_cos_other: torch.Tensor
    key_alpha: torch.Tensor  # [batch, head, key]

    @staticmethod
    def cat(parts: Sequence[LayerStats]) -> LayerStats:
        return LayerStats(*(torch.cat([getattr(p, f) for p in parts], 0) for f in LayerStats.__dataclass_fields__))


def reduce_layer(pattern: torch.Tensor, q: torch.Tensor, k: torch.Tensor, window: int | None = None) -> LayerStats:
    """One layer's statistics from ``pattern [batch, head, query, key]`` and (post-rotation)
    ``q``, ``k [batch, pos, head, d_head]``; ``window``: the layer's local / sliding attention window
    (a query at i sees keys i - window < j <= i), whose averages count only the queries that see a key."""
    pattern, q, k = pattern.float(), q.float(), k.float()
    B, H, P, _ = pattern.shape
    if k.shape[2] != H:  # grouped-query attention: each key head serves H / n_kv query heads
        k = k.repeat_interleave(H // k.shape[2], dim=2)
    if P < 2:
        raise InvalidInputError("sink statistics need at least two positions")
    w = P if window is None else min(window, P)
    # queries that can see key k: P - k, or at most the window (the others cannot attend to it at all,
    # and counting them would cap alpha(0) at window / P however strong the sink)
    seen_by = torch.arange(P, 0, -1, dtype=torch.float32).clamp(max=w)
    alpha = pattern.sum(-2) / seen_by  # [B, H, P]
    kn = k.norm(dim=-1)  # [B, P, H]
    qh = torch.nn.functional.normalize(q, dim=-1)
    kh = torch.nn.functional.normalize(k, dim=-1)
    cos = torch.einsum("bqhd,bkhd->bhqk", qh, kh)  # [B, H, P, P]
    cos_first = cos[:, :, 1:w, 0].mean(-1) if w > 1 else torch.zeros(B, H)
    i, j = torch.arange(P)[:, None], torch.arange(P)[None, :]
    other = (j <= i) & (i - j < w) & (j > 0)  # keys 1.. each query sees (the first query sees no other key)
    cos_other = (cos * other).sum((-1, -2)) / other.sum()
    return LayerStats(alpha[..., 0], kn[:, 0], kn[:, 1:].mean(1), cos_first, cos_other, alpha)


def summarize_inputs(
    inputs: str, description: str, layers: Sequence[int], stats: Sequence[LayerStats], opts: Options
) -> InputSinks:
    """The sink figures of one input kind from per-layer statistics (``stats[i]`` is layer ``layers[i]``)."""
    if not layers:
        raise InvalidInputError("no layer to measure sinks in")
    eps = opts.epsilon
    first = torch.stack([s.first_attention for s in stats], 1)  # [B, L, H]
    B, L, H = first.shape
    is_sink = first > eps
    heads: list[HeadSink] = []
    for i, l in enumerate(layers):
        s = stats[i]
        for h in range(H):
            fk = float(s.first_key_norm[:, h].mean())
            ok = float(s.other_key_norm[:, h].mean())
            heads.append(HeadSink(
                head=f"{l}.{h}", first_attention=float(first[:, i, h].mean()), sink_rate=float(is_sink[:, i, h].double().mean()),
                first_key_norm=fk, other_key_norm=ok, key_norm_ratio=fk / ok if ok > 0 else None,
                qk_cos_first=float(s.qk_cos_first[:, h].mean()), qk_cos_other=float(s.qk_cos_other[:, h].mean()),
            ))
    mean_first = first.mean(0)  # [L, H]
    sink_heads = sorted((hs for hs in heads if hs.first_attention > eps), key=lambda hs: -hs.first_attention)
    ratios = [hs.key_norm_ratio for hs in heads if hs.key_norm_ratio is not None]
    profile = torch.stack([s.key_alpha.mean((0, 1)) for s in stats]).mean(0)
    cf = float(torch.stack([s.qk_cos_first.mean(0) for s in stats]).mean())
    co = float(torch.stack([s.qk_cos_other.mean(0) for s in stats]).mean())
    return InputSinks(
        inputs=inputs, description=description, n_seq=B, seq_len=int(stats[0].key_alpha.shape[-1]), layers=tuple(layers),
        sink_share=float(is_sink.double().mean()), head_share=float((mean_first > eps).double().mean()),
        sink_heads=tuple(hs.head for hs in sink_heads),
        per_layer=tuple(float(x) for x in is_sink.double().mean((0, 2))),
        key_profile=tuple(float(x) for x in profile),
        first_key_norm_ratio=float(torch.tensor(ratios).median()) if ratios else None,
        qk_cos_first=cf, qk_cos_other=co, qk_cos_gap=cf - co, heads=tuple(heads),
    )


def measure(
    acts: Mapping[str, torch.Tensor], layers: Sequence[int], opts: Options = Options(),
    inputs: str = "positional", description: str = "", rotate=None,
) -> InputSinks:
    """Sink figures straight from activations holding ``blocks.{l}.attn.hook_pattern``, ``hook_q`` and ``hook_k``
    for every layer in ``layers``. ``rotate(x)`` turns pre-rotation q/k into what the scores use (rotary models).

    >>> acts = runner.run(tokens, hooks=[f"blocks.0.attn.{h}" for h in ("hook_pattern", "hook_q", "hook_k")])  # doctest: +SKIP
    >>> measure(acts, [0]).sink_share                                                                         # doctest: +SKIP
    """
    rot = rotate or (lambda x: x)
    stats = [reduce_layer(acts[f"blocks.{l}.attn.hook_pattern"], rot(acts[f"blocks.{l}.attn.hook_q"]),
                          rot(acts[f"blocks.{l}.attn.hook_k"])) for l in layers]
    return summarize_inputs(inputs, description or INPUT_HELP.get(inputs, inputs), layers, stats, opts)
