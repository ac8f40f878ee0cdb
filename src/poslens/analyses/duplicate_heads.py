"""Duplicate-token heads: which heads attend to earlier copies of the current token, and how.

Scores are pooled: a head's duplicate score is the attention it pays to earlier copies of
the current token, summed over every query position that *has* an earlier copy in every
sequence, divided by the number of such positions. (The mean of per-sequence means is
kept too, as ``score_*_seqmean``; the two differ when sequences have different numbers of
duplicate positions.) Patterns are read through a non-editing hook on
``blocks.{l}.attn.hook_pattern``: nothing is stored and nothing is written back, and the
forward pass stops after the last layer asked for.

Two pitfalls of TransformerLens's ``head_detector`` are avoided on purpose (and tested):
given several sequences it scored each one separately and in some versions forgot the
caller's options on the way, and with ``exclude_bos``/``exclude_current_token`` it
zeroed entries of the cached pattern in place. Here every sequence is scored in one
batched pass with the same options, and the pattern is only read. TransformerLens also
divides by all the attention of every query, so queries without an earlier copy dilute
the score; here they are left out of numerator and denominator alike.

>>> from poslens.models import load_weights
>>> from poslens.analyses.duplicate_heads import duplicate_heads
>>> w = load_weights("tiny")                                          # doctest: +SKIP
>>> r = duplicate_heads(w, layers=[0], n_seq=32, seq_len=128)         # doctest: +SKIP
>>> r.ranking[:3], r.heads[r.ranking[0]]["score"]                     # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CorpusError, InvalidInputError, MissingTensorError, PoslensError
from ..models.runner import Runner
from ..models.weights import Weights
from ..results import Result

# ----------------------------------------------------------------------------- masks


def duplicate_mask(tokens: torch.Tensor, ignore: tuple[int, ...] = ()) -> torch.Tensor:
    """``[batch, query, key]`` bool: key < query holds the same token as the query (ignored ids never count).

    >>> duplicate_mask(torch.tensor([[5, 6, 5]]))[0, 2].tolist()
    [True, False, False]
    """
    t = torch.as_tensor(tokens)
    same = t[:, :, None] == t[:, None, :]
    P = t.shape[1]
    earlier = torch.ones(P, P, dtype=torch.bool).tril(-1)
    m = same & earlier
    if ignore:
        bad = torch.isin(t, torch.as_tensor(list(ignore), dtype=t.dtype))
        m &= ~bad[:, :, None]
    return m


def check_heads(weights: Weights, heads: list[tuple[int, int]] | None) -> None:
    """Raise InvalidInputError for a (layer, head) the model does not have.

    >>> check_heads(load_weights("tiny"), [(0, 99)])   # doctest: +SKIP
    Traceback (most recent call last):
    poslens.errors.InvalidInputError: head 0.99 does not exist: ...
    """
    cfg = weights.cfg
    for l, h in heads or []:
        if not (0 <= l < cfg.n_layers and 0 <= h < cfg.n_heads):
            raise InvalidInputError(
                f"head {l}.{h} does not exist: {weights.label} has layers 0..{cfg.n_layers - 1} "
                f"and heads 0..{cfg.n_heads - 1} per layer"
            )


def check_layers(weights: Weights, layers: list[int] | None) -> list[int]:
    """The sorted layers asked for (all when None); InvalidInputError for one out of range."""
    n = weights.cfg.n_layers
    layers = list(range(n)) if not layers else sorted(set(int(l) for l in layers))
    for l in layers:
        if not 0 <= l < n:
            raise InvalidInputError(f"layer {l} does not exist: {weights.label} has layers 0..{n - 1}")
    return layers


# ----------------------------------------------------------------------------- scoring


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

    def pooled(self) -> np.ndarray:
        n = self.dup_count.sum()
        return self.dup_sum.sum(0) / n if n else np.full(self.dup_sum.shape[1:], np.nan)

    def seqmean(self) -> np.ndarray:
        ok = self.dup_count > 0
        if not ok.any():
            return np.full(self.dup_sum.shape[1:], np.nan)
        return (self.dup_sum[ok] / self.dup_count[ok, None, None]).mean(0)

    def prev(self) -> np.ndarray:
        return self.prev_sum.sum(0) / max(1, self.prev_count.sum())

    def induction(self) -> np.ndarray:
        n = self.ind_count.sum()
        return self.ind_sum.sum(0) / n if n else np.full(self.ind_sum.shape[1:], np.nan)


def induction_mask(dup: torch.Tensor) -> torch.Tensor:
    """``[batch, query, key]`` bool: key is the position just after an earlier copy of the
    query's token (where an induction head looks), and before the query.

    >>> induction_mask(duplicate_mask(torch.tensor([[5, 6, 7, 5]])))[0, 3].tolist()
    [False, True, False, False]
    """
    m = torch.zeros_like(dup)
    m[:, :, 1:] = dup[:, :, :-1]
    P = dup.shape[1]
    return m & torch.ones(P, P, dtype=torch.bool).tril(-1)


def pattern_stats(
    runner: Runner,
    tokens: torch.Tensor,
    layers: list[int],
    batch_size: int = 8,
    ignore: tuple[int, ...] = (),
) -> PatternStats:
    """Duplicate, previous-token and induction attention sums for every head in ``layers``,
    without storing patterns.

    ``ignore``: token ids whose queries never count as duplicates (BOS). The same options
    apply to every sequence of the batch.

    >>> st = pattern_stats(Runner(w), repeated_tokens(16, 64, w.cfg.d_vocab), [0])  # doctest: +SKIP
    >>> st.pooled()[0]          # [head] pooled duplicate score of layer 0            # doctest: +SKIP
    """
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    if tokens.dim() == 1:
        tokens = tokens[None]
    B, P = tokens.shape
    H = runner.cfg.n_heads
    mask = duplicate_mask(tokens, ignore)
    has = mask.any(-1)  # [B, Q]
    imask = induction_mask(mask)
    ihas = imask.any(-1)
    dup_sum = np.zeros((B, len(layers), H))
    prev_sum = np.zeros((B, len(layers), H))
    ind_sum = np.zeros((B, len(layers), H))
    row = {l: i for i, l in enumerate(layers)}

    def reader(pattern: torch.Tensor, hook) -> None:
        # Read-only: the pattern flows on unchanged.
        m = mask[hook.batch].to(pattern.device, pattern.dtype)  # [b, Q, K]
        to_dup = torch.einsum("bhqk,bqk->bhq", pattern, m)
        s = (to_dup * has[hook.batch, None, :].to(pattern.dtype)).sum(-1)
        dup_sum[hook.batch, row[hook.layer]] = s.double().cpu().numpy()
        prev = pattern.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1)
        prev_sum[hook.batch, row[hook.layer]] = prev.double().cpu().numpy()
        im = imask[hook.batch].to(pattern.device, pattern.dtype)
        to_ind = torch.einsum("bhqk,bqk->bhq", pattern, im)
        ind_sum[hook.batch, row[hook.layer]] = to_ind.sum(-1).double().cpu().numpy()
        return None

    edits = {f"blocks.{l}.attn.hook_pattern": reader for l in layers}
    runner.run(tokens, edits=edits, batch_size=batch_size)
    return PatternStats(
        layers=list(layers),
        dup_sum=dup_sum,
        dup_count=has.sum(-1).numpy().astype(float),
        prev_sum=prev_sum,
        prev_count=np.full(B, P - 1, dtype=float),
        ind_sum=ind_sum,
        ind_count=ihas.sum(-1).numpy().astype(float),
    )


# ----------------------------------------------------------------------------- decay profile


def _pairs(runner: Runner, tokens: torch.Tensor, heads: list[tuple[int, int]], batch_size: int):
    """For each head: arrays (query_id, distance, attention) over every (query, earlier copy) pair."""
    mask = duplicate_mask(tokens)
    b_idx, q_idx, k_idx = mask.nonzero(as_tuple=True)
    out = {hk: np.zeros(len(b_idx)) for hk in heads}
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(l, []).append(h)

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


def decay_profile(qid: np.ndarray, dist: np.ndarray, att: np.ndarray, max_distance: int | None = None,
                  uniform_half_distance: float = 200.0, min_pairs: int = 5) -> dict[str, Any]:
    """Attention to a duplicate against its distance, with two exponential fits.

    * ``within_query``: log attention to each earlier copy regressed on distance after
      removing each query's own mean (queries with >= 2 copies). Softmax normalisation is
      a per-query constant, so this slope is exactly minus the head's decay rate per token.
    * ``mean_fit``: ``a * exp(-rate * d)`` fitted (scipy ``curve_fit``) to the mean
      attention a copy at distance d receives; what the seed's plots show, but it mixes
      the decay with how many competitors a query has.

    Verdict: ``decaying`` when the within-query half-distance is below
    ``uniform_half_distance`` tokens, else ``uniform``.

    >>> qid = np.repeat(np.arange(50), 3); dist = np.tile([1, 5, 9], 50).astype(float)
    >>> att = np.exp(-0.1 * dist) / 3
    >>> round(decay_profile(qid, dist, att, min_pairs=1)["rate"], 6)
    0.1
    """
    from scipy import optimize, stats

    keep = att > 0
    if max_distance:
        keep &= dist <= max_distance
    qid, dist, att = qid[keep], dist[keep], att[keep]
    res: dict[str, Any] = {"n_pairs": int(len(att))}
    if len(att) == 0:
        res.update(verdict="no duplicates", reason="no query had an earlier copy of its token")
        return res
    d_vals, inv, counts = np.unique(dist, return_inverse=True, return_counts=True)
    means = np.bincount(inv, weights=att) / counts
    ok = counts >= min_pairs
    res["distances"] = d_vals[ok].tolist()
    res["mean_attention"] = means[ok].tolist()
    res["n_at_distance"] = counts[ok].tolist()
    # within-query fit
    uq, qinv, qcount = np.unique(qid, return_inverse=True, return_counts=True)
    multi = qcount[qinv] >= 2
    wq: dict[str, Any] = {"n_queries": int((qcount >= 2).sum())}
    if multi.sum() >= 3:
        la = np.log(att[multi])
        dd = dist[multi].astype(float)
        qi = qinv[multi]
        n = np.bincount(qi)
        la_c = la - (np.bincount(qi, weights=la) / np.maximum(n, 1))[qi]
        dd_c = dd - (np.bincount(qi, weights=dd) / np.maximum(n, 1))[qi]
        denom = float((dd_c**2).sum())
        if denom > 0:
            slope = float((dd_c * la_c).sum() / denom)
            resid = la_c - slope * dd_c
            tot = float((la_c**2).sum())
            rate = -slope
            wq.update(rate=rate, r2=1 - float((resid**2).sum()) / tot if tot > 0 else 1.0,
                      half_distance=math.log(2) / rate if rate > 0 else math.inf)
    res["within_query"] = wq
    # mean-profile fit
    mf: dict[str, Any] = {}
    x, y = d_vals[ok].astype(float), means[ok]
    if len(x) >= 3 and (y > 0).all():
        lr = stats.linregress(x, np.log(y))
        try:
            p0 = (float(np.exp(lr.intercept)), float(-lr.slope))
            popt, _ = optimize.curve_fit(lambda d, a, r: a * np.exp(-r * d), x, y, p0=p0, maxfev=5000)
            pred = popt[0] * np.exp(-popt[1] * x)
            ss = float(((y - y.mean()) ** 2).sum())
            mf = dict(amplitude=float(popt[0]), rate=float(popt[1]),
                      half_distance=math.log(2) / popt[1] if popt[1] > 0 else math.inf,
                      r2=1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else 1.0)
        except RuntimeError as exc:
            mf = {"error": f"curve_fit did not converge: {exc}"}
    res["mean_fit"] = mf
    hd = wq.get("half_distance", mf.get("half_distance"))
    res["half_distance"] = hd
    res["rate"] = wq.get("rate", mf.get("rate"))
    res["verdict"] = "unknown" if hd is None else ("decaying" if hd < uniform_half_distance else "uniform")
    return res


# ----------------------------------------------------------------------------- token classes


def token_classes(
    runner: Runner,
    tokens: torch.Tensor,
    heads: list[tuple[int, int]],
    tokenizer,
    n_frequent: int = 12,
    group_threshold: float = 0.3,
    batch_size: int = 8,
    ignore: tuple[int, ...] = (),
) -> dict[str, Any]:
    """How much each head attends from token a to earlier occurrences of token b, for frequent a, b.

    ``matrix[a][b]``: mean over queries holding token a (with b somewhere earlier) of the
    attention to all earlier occurrences of b. ``affinity[a][b] = matrix[a][b] / matrix[a][a]``;
    tokens are grouped (connected components) where both directions exceed ``group_threshold``.

    >>> tc = token_classes(Runner(w), text_windows, [(0, 5)], tokenizer)   # doctest: +SKIP
    >>> tc["heads"]["0.5"]["groups"]                                       # doctest: +SKIP
    [["'.'", "','", "' and'"]]
    """
    from scipy.sparse.csgraph import connected_components

    t = torch.as_tensor(tokens)
    vals, counts = torch.unique(t, return_counts=True)
    keep = ~torch.isin(vals, torch.as_tensor(list(ignore) or [-1]))
    vals, counts = vals[keep], counts[keep]
    top = vals[counts.argsort(descending=True)[:n_frequent]]
    K = len(top)
    if K < 2:
        return {"tokens": [], "token_ids": [], "heads": {},
                "reason": f"the text has {K} distinct token(s) besides the ignored ones; token classes need two"}
    onehot = (t[..., None] == top).float()  # [B, P, K]
    P = t.shape[1]
    # earlier[b, q, k_tok] occurrence count of token k earlier than q
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(l, []).append(h)
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
    out: dict[str, Any] = {"tokens": names, "token_ids": top.tolist(), "heads": {}}
    for (l, h), s in sums.items():
        m = (s / ns.clamp(min=1)).numpy()
        m[ns.numpy() == 0] = np.nan
        diag = np.diag(m).copy()
        aff = m / np.where(diag > 0, diag, np.nan)[:, None]
        both = np.minimum(aff, aff.T)
        adj = np.nan_to_num(both, nan=0.0) > group_threshold
        np.fill_diagonal(adj, False)
        n_comp, lab = connected_components(adj, directed=False)
        groups = [[names[i] for i in np.flatnonzero(lab == c)] for c in range(n_comp) if (lab == c).sum() > 1]
        out["heads"][f"{l}.{h}"] = {"matrix": m, "affinity": aff, "groups": groups}
    return out


# ----------------------------------------------------------------------------- attention spread


def pattern_spread(
    pattern: torch.Tensor,
    min_query: int = 100,
    local_window: int = 30,
    uniform_entropy: float = 0.85,
    exclude_first: bool = True,
) -> dict[str, dict[str, Any]]:
    """How far back each head looks: ``pattern`` is ``[head, query, key]`` of one sequence.

    Per head, averaged over queries ``q >= min_query``:

    * ``span50`` / ``span90``: the median (over queries) of the smallest window of the
      last positions (the query included) that holds 50% / 90% of the attention;
    * ``share_last_window``: attention within the last ``local_window`` positions;
    * ``mean_distance``: attention-weighted distance ``q - k``;
    * ``attention_to_first``: attention on position 0, which many heads use as a sink;
    * ``entropy_ratio``: entropy of the pattern over uniform entropy; with
      ``exclude_first`` over keys ``1..q`` after renormalising, so a sink on position 0
      does not hide an otherwise uniform spread.

    Kind: ``local`` when half the attention lies within the last ``local_window``
    positions (``span50 <= local_window``); else ``uniform`` when ``entropy_ratio >=
    uniform_entropy``; else ``mixed``.

    >>> p = torch.tril(torch.ones(1, 200, 200)); p = p / p.sum(-1, keepdim=True)
    >>> pattern_spread(p, min_query=100)["0"]["kind"]
    'uniform'
    """
    pat = torch.as_tensor(pattern)
    H, Q, K = pat.shape
    mq = min(min_query, Q - 1)
    q = torch.arange(mq, Q)
    dist = (q[:, None] - torch.arange(K)[None, :]).double()  # [q, k]
    valid = dist >= 0
    local = valid & (dist < local_window)
    # Row j of `back` is the key j positions behind the query (masked where j > q).
    back_idx = (q[:, None] - torch.arange(K)[None, :]).clamp(min=0)
    n_keys = (q if exclude_first else q + 1).double()
    out: dict[str, dict[str, Any]] = {}
    for h in range(H):  # one head at a time keeps memory at [q, k] for n_ctx 1024
        p = pat[h, mq:].double()
        cum = (torch.gather(p, 1, back_idx) * valid).cumsum(-1)
        keys = p[:, 1:] if exclude_first else p
        keys = keys / keys.sum(-1, keepdim=True).clamp(min=1e-300)
        ent = -(keys * keys.clamp(min=1e-300).log()).sum(-1)
        ratio = torch.where(n_keys > 1, ent / n_keys.clamp(min=2).log(), torch.ones_like(ent))
        d = dict(
            span50=float(((cum < 0.5).sum(-1) + 1).double().median()),
            span90=float(((cum < 0.9).sum(-1) + 1).double().median()),
            share_last_window=float((p * local).sum(-1).mean()),
            mean_distance=float((p * dist.clamp(min=0)).sum(-1).mean()),
            attention_to_first=float(p[:, 0].mean()),
            entropy_ratio=float(ratio.mean()),
        )
        uniform = d["entropy_ratio"] >= uniform_entropy
        d["kind"] = "local" if d["span50"] <= local_window else ("uniform" if uniform else "mixed")
        out[str(h)] = d
    return out


def positional_attention(
    runner: Runner,
    layers: list[int] | tuple[int, ...] = (0,),
    seq_len: int | None = None,
    local_window: int = 30,
    min_query: int = 100,
    uniform_entropy: float = 0.85,
    exclude_first: bool = True,
) -> dict[str, Any]:
    """Attention of each head when the input is the positional embeddings alone (token embedding zero).

    Needs only W_pos and the attention and LayerNorm-1 weights of ``layers`` (deeper
    layers also need the MLPs before them), so it runs on checkpoints without W_E. Per
    head the numbers of :func:`pattern_spread` over ``seq_len`` (default n_ctx) positions.

    >>> r = positional_attention(Runner(load_weights("../shared/data/gpt2-small-partial")))  # doctest: +SKIP
    >>> r["local"], r["uniform"]                                                            # doctest: +SKIP
    """
    cfg = runner.cfg
    P = min(seq_len or cfg.n_ctx, cfg.n_ctx)
    if P < 2:
        raise InvalidInputError(f"positional attention needs at least 2 positions; got {P}")
    mq = min(min_query, P // 2)
    layers = list(layers)
    pats = runner.run(embed=torch.zeros(1, P, cfg.d_model), hooks=[f"blocks.{l}.attn.hook_pattern" for l in layers])
    heads: dict[str, Any] = {}
    for l in layers:
        spread = pattern_spread(pats[f"blocks.{l}.attn.hook_pattern"][0], mq, local_window, uniform_entropy, exclude_first)
        heads.update({f"{l}.{h}": v for h, v in spread.items()})
    return {
        "seq_len": P, "local_window": local_window, "min_query": mq, "uniform_entropy": uniform_entropy,
        "exclude_first": exclude_first, "heads": heads,
        # What a perfectly uniform head would show, to read mean_distance against.
        "uniform_mean_distance": float(torch.arange(mq, P).double().mul(0.5).mean()),
        "local": [k for k, v in heads.items() if v["kind"] == "local"],
        "uniform": [k for k, v in heads.items() if v["kind"] == "uniform"],
        "mixed": [k for k, v in heads.items() if v["kind"] == "mixed"],
    }


# ----------------------------------------------------------------------------- result


def text_windows(text: str, tokenizer, seq_len: int, n_max: int, bos: int | None = None) -> torch.Tensor:
    """Consecutive windows of ``seq_len`` tokens (BOS first when ``bos`` is given) of one text,
    at most ``n_max``; a text shorter than a window gives one window of its own length.

    >>> text_windows("a b a b a b", word_tok, 3, 4).tolist()    # doctest: +SKIP
    [[1, 2, 1], [2, 1, 2]]
    """
    from ..data.sequences import text_tokens

    ids = text_tokens(text, tokenizer)[0].tolist()  # raises for a text under two tokens
    body = seq_len - (bos is not None)
    chunks = [ids[i:i + body] for i in range(0, len(ids) - body + 1, body)][:n_max] or [ids[:body]]
    return torch.tensor([([bos] if bos is not None else []) + c for c in chunks], dtype=torch.long)



@dataclass(frozen=True)
class DupHeadsResult(Result):
    """Duplicate-token head scores, decay profiles, token classes and positional spread.

    ``heads`` maps ``"L.H"`` to that head's numbers, in rank order (by ``rank_by``).
    """

    kind = "dup_heads"
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    ranking: list[str] = field(default_factory=list)
    duplicate_heads: list[str] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_classes: dict[str, Any] = field(default_factory=dict)
    positional: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)


def duplicate_heads(
    weights: Weights,
    layers: list[int] | None = None,
    n_seq: int = 64,
    seq_len: int | None = None,
    seed: int = 0,
    threshold: float = 0.2,
    corpus: str | Path | None = None,
    n_text_seq: int = 32,
    text: str | None = None,
    rank_by: str = "repeated",
    profile_heads: list[tuple[int, int]] | None = None,
    profile_distinct: int | None = None,
    uniform_half_distance: float = 200.0,
    n_frequent: int = 12,
    group_threshold: float = 0.3,
    positional: bool = True,
    positional_only: bool = False,
    prepend_bos: bool = True,
    batch_size: int = 8,
    device: str = "cpu",
    dtype: str = "float32",
    tokenizer=None,
    runner: Runner | None = None,
) -> DupHeadsResult:
    """Score every head in ``layers`` for duplicate-token attention and describe the duplicate heads.

    Sequences: ``n_seq`` repeated random-token sequences (``repeated_tokens``), ``n_text_seq``
    windows of ``corpus`` (if given; else consecutive windows of ``text``, if given), and
    for the decay profiles sampled-token sequences
    with ``profile_distinct`` distinct ids (default ``seq_len // 8``) so copies occur at many
    distances. ``threshold`` marks duplicate-token heads by their ``rank_by`` score
    (``repeated`` or ``text``). ``runner`` (default: a new one on ``weights``) lets a caller
    share one runner's prepared weights.
    """
    from ..claims.duplicate_heads_post import duplicate_heads_rows  # the post's figures: claims package
    from ..data.sequences import corpus_sequences, repeated_tokens, sampled_tokens
    from ..models.tokenizer import Tokenizer

    cfg = weights.cfg
    layers = check_layers(weights, layers)
    check_heads(weights, profile_heads)
    if rank_by not in ("repeated", "text"):
        raise InvalidInputError(f"rank_by must be 'repeated' or 'text'; got {rank_by!r}")
    if rank_by == "text" and corpus is None and text is None:
        raise InvalidInputError("rank_by='text' needs natural text: a corpus file (--corpus) or a text")
    if n_seq < 1 or n_text_seq < 1 or batch_size < 1:
        raise InvalidInputError(f"n_seq, n_text_seq and batch_size must be >= 1; got {n_seq}, {n_text_seq}, {batch_size}")
    if not 0 < threshold <= 1:
        raise InvalidInputError(f"threshold is a share of attention in (0, 1]; got {threshold}")
    P = min(seq_len or 256, cfg.n_ctx)
    options = dict(layers=layers, n_seq=n_seq, seq_len=P, seed=seed, threshold=threshold,
                   corpus=str(corpus) if corpus else None,
                   text=None if text is None else ("given" if corpus is None else "ignored: corpus given"),
                   n_text_seq=n_text_seq, rank_by=rank_by, profile_distinct=profile_distinct or max(2, P // 8),
                   uniform_half_distance=uniform_half_distance, n_frequent=n_frequent, group_threshold=group_threshold,
                   prepend_bos=prepend_bos, average="pooled over query positions with an earlier copy",
                   batch_size=batch_size, dtype=dtype, positional_only=positional_only)
    if not positional_only and not weights.has("embed.W_E"):
        raise MissingTensorError("wte.weight", "duplicate-token head scores on token sequences; "
                                 "pass --positional-only to run just the positional-attention part", weights.label)
    runner = runner if runner is not None else Runner(weights, device=device, dtype=dtype)
    notes: list[str] = []
    pos = positional_attention(runner, [0]) if (positional or positional_only) else {}
    if positional_only:
        return DupHeadsResult(model=weights.label, processing=weights.processing, options=options, positional=pos,
                              notes=["positional inputs only: token scores were not computed"],
                              checks=duplicate_heads_rows(weights.cfg, weights.label, {}, {}, pos))
    if tokenizer is None and (corpus is not None or text is not None):
        tokenizer = Tokenizer.for_checkpoint(weights.source)
    elif tokenizer is None and prepend_bos:
        # Random-token scores need no tokenizer; only its BOS id. A model without usable
        # tokenizer files (a bare synthetic checkpoint) is scored without BOS.
        try:
            tokenizer = Tokenizer.for_checkpoint(weights.source)
        except PoslensError as exc:
            notes.append(f"no tokenizer ({exc}); sequences start without BOS")
    bos = tokenizer.bos_token_id if (prepend_bos and tokenizer is not None) else None
    if prepend_bos and tokenizer is not None and bos is None:
        notes.append("the tokenizer has no BOS token; sequences start without one")
    options["bos_token_id"] = bos
    ignore = tuple(x for x in (bos,) if x is not None)
    # Text first: a bad corpus or text fails before any forward pass.
    text_tokens = None
    if corpus is not None:
        text_tokens = corpus_sequences(corpus, tokenizer, P, n_text_seq, seed=seed, prepend_bos=bos is not None)
    elif text is not None:
        text_tokens = text_windows(text, tokenizer, P, n_text_seq, bos)
    rep = repeated_tokens(n_seq, P, cfg.d_vocab, seed=seed, exclude=ignore, bos=bos)
    st = pattern_stats(runner, rep, layers, batch_size, ignore)
    rep_score, rep_seq, prev, ind = st.pooled(), st.seqmean(), st.prev(), st.induction()
    text_score = text_seq = None
    data: dict[str, Any] = {"repeated": {"n_seq": n_seq, "seq_len": P, "n_dup_queries": int(st.dup_count.sum())}}
    if text_tokens is not None:
        tst = pattern_stats(runner, text_tokens, layers, batch_size, ignore)
        data["text"] = {"n_seq": int(text_tokens.shape[0]), "seq_len": int(text_tokens.shape[1]),
                        "n_dup_queries": int(tst.dup_count.sum())}
        if tst.dup_count.sum() == 0:
            where = f"corpus window(s) of {corpus}" if corpus is not None else "window(s) of the text"
            why = f"no token in the {data['text']['n_seq']} {where} has an earlier copy"
            if rank_by == "text":
                raise CorpusError(f"{why}, so there is nothing to rank heads by; use a longer or more natural text, "
                                  "or --rank-by repeated")
            data["text"]["empty_reason"] = why + "; text scores are undefined"
            notes.append(data["text"]["empty_reason"])
        else:
            text_score, text_seq = tst.pooled(), tst.seqmean()
    heads: dict[str, dict[str, Any]] = {}
    for i, l in enumerate(layers):
        for h in range(cfg.n_heads):
            heads[f"{l}.{h}"] = {
                "layer": l, "head": h,
                "score": float(rep_score[i, h]) if rank_by == "repeated" else (
                    None if text_score is None else float(text_score[i, h])),
                "score_repeated": float(rep_score[i, h]), "score_repeated_seqmean": float(rep_seq[i, h]),
                "score_text": None if text_score is None else float(text_score[i, h]),
                "score_text_seqmean": None if text_seq is None else float(text_seq[i, h]),
                "prev_token_score": float(prev[i, h]),
                "induction_score": float(ind[i, h]),
            }
    key = (lambda k: -(heads[k]["score"] if heads[k]["score"] is not None and not math.isnan(heads[k]["score"]) else -1))
    ranking = sorted(heads, key=key)
    for r, k in enumerate(ranking):
        heads[k]["rank"] = r + 1
        s = heads[k]["score"]
        heads[k]["is_duplicate"] = bool(s is not None and s >= threshold)
    heads = {k: heads[k] for k in ranking}
    dups = [k for k in ranking if heads[k]["is_duplicate"]]
    if not dups:
        notes.append(f"no head scored >= {threshold} ({rank_by}); best is {ranking[0]} at {heads[ranking[0]]['score']:.3f}")
    if profile_heads is None and not dups:
        notes.append("no decay profiles: no duplicate-token head (pass --profile-heads to profile chosen heads)")
    # decay profiles
    phs = profile_heads or [(heads[k]["layer"], heads[k]["head"]) for k in dups]
    profiles: dict[str, Any] = {}
    if phs:
        smp = sampled_tokens(n_seq, P, cfg.d_vocab, seed=seed + 1, exclude=ignore, bos=bos,
                             n_distinct=options["profile_distinct"])
        qid, dist, att = _pairs(runner, smp, phs, batch_size)
        for hk in phs:
            profiles[f"{hk[0]}.{hk[1]}"] = decay_profile(qid, dist, att[hk], uniform_half_distance=uniform_half_distance)
    tc: dict[str, Any] = {}
    if phs and text_tokens is not None:
        tc = token_classes(runner, text_tokens, phs, tokenizer, n_frequent, group_threshold, batch_size, ignore)
        if tc.get("reason"):
            notes.append(f"no token classes: {tc['reason']}")
    return DupHeadsResult(
        model=weights.label, processing=weights.processing, options=options, heads=heads, ranking=ranking,
        duplicate_heads=dups, profiles=profiles, token_classes=tc, positional=pos, data=data, notes=notes,
        checks=duplicate_heads_rows(weights.cfg, weights.label, heads, profiles, pos),
    )


# ----------------------------------------------------------------------------- summary


def summarize(result: DupHeadsResult) -> list[str]:
    """Short lines for the terminal and the report page."""
    lines = []
    if result.ranking:
        top = result.ranking[:3]
        lines.append("top duplicate-token scores (repeated random tokens): " + ", ".join(
            f"{k} {result.heads[k]['score_repeated']:.3f}" for k in top))
        if result.duplicate_heads:
            lines.append(f"{len(result.duplicate_heads)} head(s) at or above {result.options.get('threshold')}: "
                         + ", ".join(result.duplicate_heads))
        tx = [k for k in result.ranking if result.heads[k].get("score_text") is not None]
        if tx:
            best = max(tx, key=lambda k: result.heads[k]["score_text"])
            lines.append(f"on natural text the strongest is {best} ({result.heads[best]['score_text']:.3f} of attention "
                         "at repeated tokens)")
        pv = max(result.heads, key=lambda k: result.heads[k]["prev_token_score"])
        lines.append(f"strongest previous-token head {pv} ({result.heads[pv]['prev_token_score']:.3f})")
        iv = max(result.heads, key=lambda k: result.heads[k].get("induction_score") or 0.0)
        if result.heads[iv].get("induction_score") is not None:
            lines.append(f"strongest induction head {iv} ({result.heads[iv]['induction_score']:.3f} of attention to "
                         "the token after the earlier copy)")
    for k, p in result.profiles.items():
        hd = p.get("half_distance")
        if hd is not None:
            lines.append(f"{k}: {p['verdict']}, attention among copies halves every {hd:.1f} tokens "
                         f"(rate {p['rate']:.4f}/token, within-query R² {p['within_query'].get('r2', float('nan')):.2f})")
    for k, v in (result.token_classes.get("heads") or {}).items():
        if v["groups"]:
            lines.append(f"{k} treats as one group: " + "; ".join(" ".join(repr(t) for t in g) for g in v["groups"]))
    if result.positional:
        p = result.positional
        lines.append(f"positional inputs alone ({p['seq_len']} positions): half the attention within the last "
                     f"{p['local_window']} positions for {', '.join(p['local']) or 'none'}; nearly uniform "
                     f"{', '.join(p['uniform']) or 'none'}; mixed {', '.join(p['mixed']) or 'none'}")
    for c in result.checks:
        lines.append(f"seed: {c['what']}: {'reproduced' if c['reproduced'] else 'NOT reproduced'} (ours: {c['ours']})")
    lines += result.notes
    return lines


def figures(result: DupHeadsResult, out_dir: str | Path) -> list[Path]:
    """Score grids, decay profiles, token classes and positional spread (PNG + HTML) into ``out_dir``."""
    from ..viz.duplicate import dup_heads_figures

    return dup_heads_figures(result, Path(out_dir))
