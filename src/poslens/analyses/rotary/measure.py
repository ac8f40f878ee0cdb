"""Which rotary frequencies each head's queries and keys use (Barbero et al. 2024, "Round and Round We Go!
What makes Rotary Positional Encodings useful?").

For every layer, head and rotary pair i (dims i and i + r/2; pair 0 turns fastest) the mean
norm of the query's and of the key's 2-D chunk over text tokens. A pair can move a score by
at most |q_i| |k_i|, so ``usage = mean|q_i| * mean|k_i|`` normalised over the pairs says where a
head's dot products live: heads concentrated on the highest frequencies build positional
patterns (diagonal, previous-token); mass on the lowest frequencies, which barely turn over
a context, behaves like a position-free semantic channel. Rotation keeps each chunk's norm,
so pre-rotation queries and keys suffice.

>>> m = measure({"blocks.0.attn.hook_q": q, "blocks.0.attn.hook_k": k}, [0], RotarySpec(8, 1e4))   # doctest: +SKIP
>>> m.positional_ranking[0]                                                                        # doctest: +SKIP
'0.3'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ...errors import InvalidInputError
from ...results import Result
from .chunks import RotarySpec, chunk_norms
from .options import Options


def n_of(frac: float, n_pairs: int) -> int:
    return max(1, min(n_pairs, round(frac * n_pairs)))


@dataclass(frozen=True)
class HeadFrequencies:
    head: str  # "L.H"
    q_norm: tuple[float, ...]  # mean chunk norm per pair, pair 0 (highest frequency) first
    k_norm: tuple[float, ...]
    usage: tuple[float, ...]  # q_norm * k_norm, normalised to sum 1
    high_share: float  # usage on the highest-frequency pairs
    low_share: float  # usage on the lowest-frequency pairs
    peak_pair: int  # pair of largest usage
    unrotated_share: float  # share of |q|^2 + |k|^2 outside the rotary dimensions (partial rotary)


@dataclass(frozen=True)
class Ablation:
    pairs_removed: tuple[int, ...]
    fraction: float
    clean_loss: float
    ablated_loss: float
    delta: float  # ablated - clean (nats per token)
    n_tokens: int


@dataclass(frozen=True)
class RotaryResult(Result):
    rotary_dim: int = 0
    base: float = 10000.0
    frequencies: tuple[float, ...] = ()  # radians per position, pair 0 first
    wavelengths: tuple[float, ...] = ()
    high_pairs: tuple[int, ...] = ()
    low_pairs: tuple[int, ...] = ()
    inputs: str = ""
    heads: tuple[HeadFrequencies, ...] = ()
    positional_ranking: tuple[str, ...] = ()  # heads by high_share, largest first
    semantic_ranking: tuple[str, ...] = ()  # heads by low_share, largest first
    positional_heads: tuple[str, ...] = ()  # high_share >= head_threshold
    semantic_heads: tuple[str, ...] = ()
    layer_profile: tuple[tuple[float, ...], ...] = ()  # [layer][pair] mean usage over heads
    mean_low_share: float = 0.0  # over heads; uniform usage gives low_frac
    mean_high_share: float = 0.0
    low_preference: float = 0.0  # mean_low_share over the uniform share len(low_pairs) / n_pairs (> 1: low pairs preferred)
    ablation: Ablation | None = None

    kind = "rotary"


def head_frequencies(q: torch.Tensor, k: torch.Tensor, spec: RotarySpec, high: Sequence[int], low: Sequence[int],
                     layer: int) -> list[HeadFrequencies]:
    """Per head of one layer from pre-rotation ``q``, ``k [batch, pos, head, d_head]`` (GQA keys are shared)."""
    q, k = q.double(), k.double()
    H = q.shape[2]
    if k.shape[2] != H:
        k = k.repeat_interleave(H // k.shape[2], dim=2)
    r = spec.rotary_dim
    qn = chunk_norms(q, spec).mean((0, 1))  # [H, pairs]
    kn = chunk_norms(k, spec).mean((0, 1))
    use = qn * kn
    use = use / use.sum(-1, keepdim=True).clamp_min(1e-300)
    tot = q.pow(2).sum(-1).mean((0, 1)) + k.pow(2).sum(-1).mean((0, 1))
    out_r = q[..., r:].pow(2).sum(-1).mean((0, 1)) + k[..., r:].pow(2).sum(-1).mean((0, 1))
    return [HeadFrequencies(
        head=f"{layer}.{h}", q_norm=tuple(float(x) for x in qn[h]), k_norm=tuple(float(x) for x in kn[h]),
        usage=tuple(float(x) for x in use[h]), high_share=float(use[h, list(high)].sum()),
        low_share=float(use[h, list(low)].sum()), peak_pair=int(use[h].argmax()),
        unrotated_share=float(out_r[h] / tot[h]) if tot[h] > 0 else 0.0,
    ) for h in range(H)]


def measure(acts: Mapping[str, torch.Tensor], layers: Sequence[int], spec: RotarySpec, opts: Options = Options(),
            inputs: str = "", ablation: Ablation | None = None) -> RotaryResult:
    """Frequency usage of every head from ``blocks.{l}.attn.hook_q`` / ``hook_k`` (pre-rotation) in ``acts``."""
    n = spec.n_pairs
    if n < 1:
        raise InvalidInputError("the model rotates no dimensions")
    high = tuple(range(n_of(opts.high_frac, n)))
    low = tuple(range(n - n_of(opts.low_frac, n), n))
    heads: list[HeadFrequencies] = []
    profile = []
    for l in layers:
        hs = head_frequencies(acts[f"blocks.{l}.attn.hook_q"], acts[f"blocks.{l}.attn.hook_k"], spec, high, low, l)
        heads += hs
        profile.append(tuple(float(x) for x in torch.tensor([h.usage for h in hs]).mean(0)))
    by_high = sorted(heads, key=lambda h: -h.high_share)
    by_low = sorted(heads, key=lambda h: -h.low_share)
    th = opts.head_threshold
    return RotaryResult(
        rotary_dim=spec.rotary_dim, base=spec.base, frequencies=tuple(spec.frequencies()),
        wavelengths=tuple(spec.wavelengths()), high_pairs=high, low_pairs=low, inputs=inputs, heads=tuple(heads),
        positional_ranking=tuple(h.head for h in by_high), semantic_ranking=tuple(h.head for h in by_low),
        positional_heads=tuple(h.head for h in by_high if h.high_share >= th),
        semantic_heads=tuple(h.head for h in by_low if h.low_share >= th),
        layer_profile=tuple(profile), mean_low_share=float(sum(h.low_share for h in heads) / len(heads)),
        mean_high_share=float(sum(h.high_share for h in heads) / len(heads)),
        low_preference=float(sum(h.low_share for h in heads) / len(heads) / (len(low) / n)), ablation=ablation,
    )
