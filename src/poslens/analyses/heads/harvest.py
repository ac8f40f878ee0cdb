"""Reading attention patterns off a Runner without storing them: duplicate, previous-token and
induction sums, (query, copy) pairs for decay profiles, token-class sums, and the layer-0
patterns on positional inputs alone. Every edit only reads the pattern and passes it on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...data.sequences import text_windows  # noqa: F401  (re-exported: poslens.analyses.heads.text_windows)
from ...errors import InvalidInputError, NotApplicableError
from ...models.runner import Runner
from .measure import HeadSpread, PositionalSpread, TokenClasses, class_groups, duplicate_mask, induction_mask, pattern_spread


@dataclass
class PatternStats:
    """Sums over many sequences, per layer (rows follow ``layers``) and head."""

    layers: list[int]
    dup_sum: np.ndarray  # [seq, layer, head] attention to earlier copies, summed over dup queries
    dup_count: np.ndarray  # [seq] number of queries with an earlier copy
    prev_sum: np.ndarray  # [seq, layer, head] attention to the previous position, summed over queries >= 1
    prev_count: np.ndarray  # [seq]
    ind_sum: np.ndarray  # [seq, layer, head] attention to the token after an earlier copy, over queries with one
    ind_count: np.ndarray  # [seq]
    shift_sum: np.ndarray  # [seq, layer, head] attention to two after an earlier copy, over queries with one
    shift_count: np.ndarray  # [seq]
    first_sum: np.ndarray  # [seq, layer, head] attention to position 0, summed over queries >= 1 (prev_count)

    def pooled(self) -> np.ndarray:
        return _per_query(self.dup_sum, self.dup_count)

    def seqmean(self) -> np.ndarray:
        ok = self.dup_count > 0
        if not ok.any():
            return np.full(self.dup_sum.shape[1:], np.nan)
        return (self.dup_sum[ok] / self.dup_count[ok, None, None]).mean(0)

    def prev(self) -> np.ndarray:
        return self.prev_sum.sum(0) / max(1, self.prev_count.sum())

    def induction(self) -> np.ndarray:
        return _per_query(self.ind_sum, self.ind_count)

    def shifted(self) -> np.ndarray:
        return _per_query(self.shift_sum, self.shift_count)

    def first(self) -> np.ndarray:
        return self.first_sum.sum(0) / max(1, self.prev_count.sum())


def _per_query(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``sums`` pooled over sequences, per counted query (nan when none was counted)."""
    n = counts.sum()
    return sums.sum(0) / n if n else np.full(sums.shape[1:], np.nan)


def _by_layer(heads: list[tuple[int, int]]) -> dict[int, list[int]]:
    """The heads' indices grouped by layer."""
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(l, []).append(h)
    return by_layer


def pattern_stats(
    runner: Runner,
    tokens: torch.Tensor,
    layers: list[int],
    batch_size: int = 8,
    ignore: tuple[int, ...] = (),
) -> PatternStats:
    """Duplicate, previous-token, induction (and shifted: two after the copy) and first-position
    attention sums for every head in ``layers``, without storing patterns.

    ``ignore``: token ids whose queries never count as duplicates (BOS). The same options
    apply to every sequence of the batch.

    >>> st = pattern_stats(Runner(w), repeated_tokens(16, 64, w.cfg.d_vocab), [0])  # doctest: +SKIP
    >>> st.pooled()[0]          # [head] pooled duplicate score of layer 0            # doctest: +SKIP
    """
    tokens = torch.atleast_2d(torch.as_tensor(tokens, dtype=torch.long))
    B, P = tokens.shape
    H = runner.cfg.n_heads
    mask = duplicate_mask(tokens, ignore)
    has = mask.any(-1)  # [B, Q]
    imask = induction_mask(mask)
    smask = induction_mask(mask, offset=2)
    sums = {k: np.zeros((B, len(layers), H)) for k in ("dup", "prev", "ind", "shift", "first")}
    row = {l: i for i, l in enumerate(layers)}

    def reader(pattern: torch.Tensor, hook) -> None:
        # Read-only: the pattern flows on unchanged.
        def to(m: torch.Tensor, out: str) -> torch.Tensor:  # attention to the keys m marks
            return torch.einsum(f"bhqk,bqk->{out}", pattern, m[hook.batch].to(pattern.device, pattern.dtype))

        got = {"dup": (to(mask, "bhq") * has[hook.batch, None, :].to(pattern.dtype)).sum(-1),
               "prev": pattern.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1),
               "ind": to(imask, "bhq").sum(-1), "shift": to(smask, "bh"), "first": pattern[:, :, 1:, 0].sum(-1)}
        for k, t in got.items():
            sums[k][hook.batch, row[hook.layer]] = t.double().cpu().numpy()

    edits = {f"blocks.{l}.attn.hook_pattern": reader for l in layers}
    runner.run(tokens, edits=edits, batch_size=batch_size)
    return PatternStats(
        layers=list(layers), **{f"{k}_sum": v for k, v in sums.items()},
        dup_count=has.sum(-1).numpy().astype(float), prev_count=np.full(B, P - 1, dtype=float),
        ind_count=imask.any(-1).sum(-1).numpy().astype(float), shift_count=smask.any(-1).sum(-1).numpy().astype(float),
    )


# ----------------------------------------------------------------------------- decay profile


def copy_pairs(runner: Runner, tokens: torch.Tensor, heads: list[tuple[int, int]], batch_size: int):
    """For each head: arrays (query_id, distance, attention) over every (query, earlier copy) pair."""
    mask = duplicate_mask(tokens)
    b_idx, q_idx, k_idx = mask.nonzero(as_tuple=True)
    out = {hk: np.zeros(len(b_idx)) for hk in heads}
    by_layer = _by_layer(heads)

    def reader(pattern, hook):
        lo, hi = hook.batch.start, hook.batch.stop
        sel = (b_idx >= lo) & (b_idx < hi)
        for h in by_layer[hook.layer]:
            vals = pattern[b_idx[sel] - lo, h, q_idx[sel], k_idx[sel]]
            out[(hook.layer, h)][sel.numpy()] = vals.double().cpu().numpy()

    runner.run(tokens, edits={f"blocks.{l}.attn.hook_pattern": reader for l in by_layer}, batch_size=batch_size)
    P = tokens.shape[1]
    qid = (b_idx * P + q_idx).numpy()
    dist = (q_idx - k_idx).numpy()
    return qid, dist, out


def token_classes(
    runner: Runner,
    tokens: torch.Tensor,
    heads: list[tuple[int, int]],
    tokenizer,
    n_frequent: int = 12,
    group_threshold: float = 0.3,
    batch_size: int = 8,
    ignore: tuple[int, ...] = (),
) -> TokenClasses:
    """How much each head attends from token a to earlier occurrences of token b, for frequent a, b.

    ``matrix[a][b]``: mean over queries holding token a (with b somewhere earlier) of the
    attention to all earlier occurrences of b. ``affinity[a][b] = matrix[a][b] / matrix[a][a]``;
    tokens are grouped (connected components) where both directions exceed ``group_threshold``.

    >>> windows = text_windows(text, tokenizer, 128, 32)                   # doctest: +SKIP
    >>> tc = token_classes(Runner(w), windows, [(0, 5)], tokenizer)        # doctest: +SKIP
    >>> tc.heads["0.5"].groups                                             # doctest: +SKIP
    [['.', ',', ' and']]
    """
    t = torch.as_tensor(tokens)
    vals, counts = torch.unique(t, return_counts=True)
    keep = ~torch.isin(vals, torch.as_tensor(list(ignore) or [-1]))
    vals, counts = vals[keep], counts[keep]
    top = vals[counts.argsort(descending=True)[:n_frequent]]
    K = len(top)
    if K < 2:
        return TokenClasses([], [], {}, f"the text has {K} distinct token(s) besides the ignored ones; token classes need two")
    onehot = (t[..., None] == top).float()  # [B, P, K]
    P = t.shape[1]
    by_layer = _by_layer(heads)
    sums = {hk: torch.zeros(K, K, dtype=torch.float64) for hk in heads}
    ns = torch.zeros(K, K, dtype=torch.float64)
    tri = torch.ones(P, P).tril(-1)
    prior = torch.einsum("qk,bkt->bqt", tri, onehot) > 0  # [B, Q, K] b seen earlier
    ns += torch.einsum("bqa,bqt->at", onehot, prior.float()).double()

    def reader(pattern, hook):
        oh = onehot[hook.batch].to(pattern.dtype)
        pr = prior[hook.batch].to(pattern.dtype)
        pat = pattern * tri.to(pattern.dtype)  # strictly earlier keys only
        for h in by_layer[hook.layer]:
            to_tok = torch.einsum("bqk,bkt->bqt", pat[:, h], oh)  # attention to each frequent token
            sums[(hook.layer, h)] += torch.einsum("bqa,bqt->at", oh, to_tok * pr).double()

    runner.run(t, edits={f"blocks.{l}.attn.hook_pattern": reader for l in by_layer}, batch_size=batch_size)
    names = tokenizer.to_str_tokens(top.tolist()) if tokenizer is not None else [str(int(i)) for i in top]
    return TokenClasses(names, top.tolist(),
                        {f"{l}.{h}": class_groups(s, ns, names, group_threshold) for (l, h), s in sums.items()})


def positional_attention(
    runner: Runner,
    layers: list[int] | tuple[int, ...] = (0,),
    seq_len: int | None = None,
    local_window: int = 30,
    min_query: int = 100,
    uniform_entropy: float = 0.85,
    exclude_first: bool = True,
) -> PositionalSpread:
    """Attention of each head when the input is the positional embeddings alone (token embedding zero).

    Needs only W_pos and the attention and LayerNorm-1 weights of ``layers`` (deeper
    layers also need the MLPs before them), so it runs on checkpoints without W_E. Per
    head the numbers of :func:`pattern_spread` over ``seq_len`` (default n_ctx) positions.

    >>> r = positional_attention(Runner(load_weights("../shared/data/gpt2-small-partial")))  # doctest: +SKIP
    >>> r.local, r.uniform                                                                  # doctest: +SKIP
    """
    cfg = runner.cfg
    if cfg.positional != "learned":  # zero inputs with nothing added: no positional signal to read
        raise NotApplicableError(f"positional attention does not apply: the model has {cfg.positional} positions, "
                                 "no W_pos table, so positional inputs alone would be all zeros")
    P = min(seq_len or cfg.n_ctx, cfg.n_ctx)
    if P < 2:
        raise InvalidInputError(f"positional attention needs at least 2 positions; got {P}")
    mq = min(min_query, P // 2)
    layers = list(layers)
    pats = runner.run(embed=torch.zeros(1, P, cfg.d_model), hooks=[f"blocks.{l}.attn.hook_pattern" for l in layers])
    heads: dict[str, HeadSpread] = {}
    for l in layers:
        spread = pattern_spread(pats[f"blocks.{l}.attn.hook_pattern"][0], mq, local_window, uniform_entropy, exclude_first)
        heads.update({f"{l}.{h}": v for h, v in spread.items()})
    return PositionalSpread(
        seq_len=P, local_window=local_window, min_query=mq, uniform_entropy=uniform_entropy,
        exclude_first=exclude_first, heads=heads,
        uniform_mean_distance=float(torch.arange(mq, P).double().mul(0.5).mean()),
        **{kind: [k for k, v in heads.items() if v.kind == kind] for kind in ("local", "uniform", "mixed")},
    )
