"""Top activating examples of one neuron over token windows, with whether each token has an
earlier copy in its context."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ...models.runner import Runner
from ...models.tokenizer import as_tokenizer
from ..heads import duplicate_mask
from ..reach import as_runner
from .premise import check_neuron


@dataclass(frozen=True)
class TopExample:
    """One peak: where (``sequence``, ``position``), its ``activation`` and ``token``; the context's
    ``tokens`` and ``activations`` (the peak at index ``center``); the peak token's earlier copies
    in its window (count, mean and nearest distance; None without one)."""

    sequence: int
    position: int
    activation: float
    token: str
    tokens: list[str]
    activations: list[float]
    center: int
    n_earlier_copies: int
    mean_copy_distance: float | None
    nearest_copy_distance: int | None


@dataclass(frozen=True)
class ExamplesSummary:
    """The ``k`` peaks against all ``n_positions``: the largest and mean activation, the share of peaks
    (and of all positions) whose token has an earlier copy, the peaks' mean copy distance; ``source``
    names the windows searched."""

    k: int
    n_positions: int
    max_activation: float | None
    mean_activation: float | None
    share_with_earlier_copy: float | None
    base_share_with_earlier_copy: float
    mean_copy_distance: float | None
    source: str = ""


def top_activating_examples(
    runner: Runner,
    tokens: torch.Tensor,
    layer: int,
    neuron: int,
    tokenizer=None,
    k: int = 20,
    before: int = 24,
    after: int = 4,
    ignore: tuple[int, ...] = (),
    batch_size: int = 8,
) -> tuple[list[TopExample], ExamplesSummary]:
    """The ``k`` positions of ``tokens [n_seq, seq_len]`` where the neuron's activation
    (``blocks.{layer}.mlp.hook_post``) is highest, each with its context (``before`` /
    ``after`` tokens) and per-token activations; peaks in one sequence are at least
    ``before`` tokens apart. Each example also says whether its token has an earlier copy
    in the context and how far back; the summary compares that with all positions.

    >>> ex, summary = top_activating_examples(Runner(w), windows, 0, 1168, tok, k=10)  # doctest: +SKIP
    """
    runner = as_runner(runner, "top_activating_examples")
    tokenizer = as_tokenizer(tokenizer, "top_activating_examples", runner.weights)
    check_neuron(runner.weights, neuron)
    tokens = torch.atleast_2d(torch.as_tensor(tokens, dtype=torch.long))
    B, P = tokens.shape
    acts = torch.zeros(B, P, dtype=torch.float64)

    def reader(post, hook):
        acts[hook.batch] = post[..., neuron].double().cpu()

    runner.run(tokens, edits={f"blocks.{layer}.mlp.hook_post": reader}, batch_size=batch_size)
    bad = torch.isin(tokens, torch.as_tensor(list(ignore) or [-1], dtype=tokens.dtype))
    score = acts.masked_fill(bad, -math.inf)
    order = torch.argsort(score.reshape(-1), descending=True).tolist()
    chosen: list[tuple[int, int]] = []
    for flat in order:
        if len(chosen) == k:
            break
        b, p = divmod(flat, P)
        if bad[b, p]:
            break
        if any(cb == b and abs(cp - p) < before for cb, cp in chosen):
            continue
        chosen.append((b, p))

    def copy_stats(b: int, p: int) -> tuple[int, float | None, int | None]:
        prev = (tokens[b, :p] == tokens[b, p]).nonzero().reshape(-1)
        if len(prev) == 0:
            return 0, None, None
        d = (p - prev).double()
        return len(prev), float(d.mean()), int(d.min())

    examples = []
    for b, p in chosen:
        lo, hi = max(0, p - before), min(P, p + after + 1)
        ids = tokens[b, lo:hi].tolist()
        n, md, nearest = copy_stats(b, p)
        examples.append(TopExample(
            sequence=b, position=p, activation=float(acts[b, p]),
            token=tokenizer.decode([ids[p - lo]]) if tokenizer is not None else str(ids[p - lo]),
            tokens=tokenizer.to_str_tokens(ids) if tokenizer is not None else [str(i) for i in ids],
            activations=acts[b, lo:hi].tolist(), center=p - lo,
            n_earlier_copies=n, mean_copy_distance=md, nearest_copy_distance=nearest,
        ))
    # Base rate: how often any (non-ignored) position has an earlier copy.
    has = duplicate_mask(tokens).any(-1) & ~bad
    with_copy = [e for e in examples if e.n_earlier_copies]
    summary = ExamplesSummary(
        k=len(examples), n_positions=int((~bad).sum()),
        max_activation=float(score.max()) if (~bad).any() else None,
        mean_activation=float(acts[~bad].mean()) if (~bad).any() else None,
        share_with_earlier_copy=len(with_copy) / len(examples) if examples else None,
        base_share_with_earlier_copy=float(has.sum() / max(1, int((~bad).sum()))),
        mean_copy_distance=float(np.mean([e.mean_copy_distance for e in with_copy])) if with_copy else None,
    )
    return examples, summary
