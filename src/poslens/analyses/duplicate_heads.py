"""Duplicate-token heads: which heads attend to earlier copies of the current token, and how.

Scores are pooled: a head's duplicate score is the attention it pays to earlier copies of
the current token, summed over every query position that *has* an earlier copy in every
sequence, divided by the number of such positions. (The mean of per-sequence means is
kept too, as ``score_seqmean``; the two differ when sequences have different numbers of
duplicate positions.) Patterns are read through a non-editing hook on
``blocks.{l}.attn.hook_pattern``: nothing is stored and nothing is written back, and the
forward pass stops after the last layer asked for.

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

from ..errors import InvalidInputError, MissingTensorError
from ..models.runner import Runner
from ..models.weights import Weights
from ..results import Result

# ----------------------------------------------------------------------------- masks


def duplicate_mask(tokens: torch.Tensor, ignore: tuple[int, ...] = ()) -> torch.Tensor:
    """``[batch, query, key]`` bool: key < query holds the same token as the query (ignored ids never count)."""
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
    cfg = weights.cfg
    for l, h in heads or []:
        if not (0 <= l < cfg.n_layers and 0 <= h < cfg.n_heads):
            raise InvalidInputError(
                f"head {l}.{h} does not exist: {weights.label} has layers 0..{cfg.n_layers - 1} "
                f"and heads 0..{cfg.n_heads - 1} per layer"
            )


def check_layers(weights: Weights, layers: list[int] | None) -> list[int]:
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


def pattern_stats(
    runner: Runner,
    tokens: torch.Tensor,
    layers: list[int],
    batch_size: int = 8,
    ignore: tuple[int, ...] = (),
) -> PatternStats:
    """Duplicate and previous-token attention sums for every head in ``layers``, without storing patterns."""
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    if tokens.dim() == 1:
        tokens = tokens[None]
    B, P = tokens.shape
    H = runner.cfg.n_heads
    mask = duplicate_mask(tokens, ignore)
    has = mask.any(-1)  # [B, Q]
    dup_sum = np.zeros((B, len(layers), H))
    prev_sum = np.zeros((B, len(layers), H))
    row = {l: i for i, l in enumerate(layers)}

    def reader(pattern: torch.Tensor, hook) -> None:
        # Read-only: the pattern flows on unchanged.
        m = mask[hook.batch].to(pattern.device, pattern.dtype)  # [b, Q, K]
        to_dup = torch.einsum("bhqk,bqk->bhq", pattern, m)
        s = (to_dup * has[hook.batch, None, :].to(pattern.dtype)).sum(-1)
        dup_sum[hook.batch, row[hook.layer]] = s.double().cpu().numpy()
        prev = pattern.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1)
        prev_sum[hook.batch, row[hook.layer]] = prev.double().cpu().numpy()
        return None

    edits = {f"blocks.{l}.attn.hook_pattern": reader for l in layers}
    runner.run(tokens, edits=edits, batch_size=batch_size)
    return PatternStats(
        layers=list(layers),
        dup_sum=dup_sum,
        dup_count=has.sum(-1).numpy().astype(float),
        prev_sum=prev_sum,
        prev_count=np.full(B, P - 1, dtype=float),
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
            popt, _ = optimize.curve_fit(lambda d, a, r: a * np.exp(-r * d), x, y, p0=(float(np.exp(lr.intercept)), float(-lr.slope)), maxfev=5000)
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
    """
    from scipy.sparse.csgraph import connected_components

    t = torch.as_tensor(tokens)
    vals, counts = torch.unique(t, return_counts=True)
    keep = ~torch.isin(vals, torch.as_tensor(list(ignore) or [-1]))
    vals, counts = vals[keep], counts[keep]
    top = vals[counts.argsort(descending=True)[:n_frequent]]
    K = len(top)
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


# ----------------------------------------------------------------------------- positional inputs alone


def positional_attention(
    runner: Runner,
    layers: list[int] = (0,),
    seq_len: int | None = None,
    local_window: int = 30,
    min_query: int = 100,
    local_share: float = 0.8,
    uniform_entropy: float = 0.9,
) -> dict[str, Any]:
    """Attention of each head when the input is positional embeddings alone (token embedding zero).

    Per head, over queries ``q >= min_query``: share of attention within the last
    ``local_window`` positions (including q), mean attended distance, and the entropy of
    the pattern divided by that of uniform attention over q+1 keys. Kind: ``local`` (share
    >= ``local_share``), ``uniform`` (entropy ratio >= ``uniform_entropy``), else ``mixed``.
    Needs only W_pos, layer-0 LayerNorm and attention weights (deeper layers need the MLPs).
    """
    cfg = runner.cfg
    P = min(seq_len or cfg.n_ctx, cfg.n_ctx)
    mq = min(min_query, P // 2)
    out: dict[str, Any] = {}
    pats = runner.run(embed=torch.zeros(1, P, cfg.d_model), hooks=[f"blocks.{l}.attn.hook_pattern" for l in layers])
    q = torch.arange(P)
    dist = (q[:, None] - q[None, :]).clamp(min=0).float()
    local = ((q[:, None] - q[None, :]) < local_window) & ((q[:, None] - q[None, :]) >= 0)
    for l in layers:
        pat = pats[f"blocks.{l}.attn.hook_pattern"][0].double()  # [H, Q, K]
        for h in range(cfg.n_heads):
            p = pat[h, mq:]
            share = float((p * local[mq:]).sum(-1).mean())
            md = float((p * dist[mq:]).sum(-1).mean())
            ent = -(p.clamp(min=1e-30).log() * p).sum(-1)
            ratio = float((ent / torch.log(q[mq:].double() + 1)).mean())
            kind = "local" if share >= local_share else ("uniform" if ratio >= uniform_entropy else "mixed")
            out[f"{l}.{h}"] = {"share_last_window": share, "mean_distance": md, "entropy_ratio": ratio, "kind": kind}
    return {
        "seq_len": P, "local_window": local_window, "min_query": mq, "heads": out,
        "local": [k for k, v in out.items() if v["kind"] == "local"],
        "uniform": [k for k, v in out.items() if v["kind"] == "uniform"],
        "mixed": [k for k, v in out.items() if v["kind"] == "mixed"],
    }


# ----------------------------------------------------------------------------- result


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
) -> DupHeadsResult:
    """Score every head in ``layers`` for duplicate-token attention and describe the duplicate heads.

    Sequences: ``n_seq`` repeated random-token sequences (``repeated_tokens``), ``n_text_seq``
    windows of ``corpus`` (if given), and for the decay profiles sampled-token sequences
    with ``profile_distinct`` distinct ids (default ``seq_len // 8``) so copies occur at many
    distances. ``threshold`` marks duplicate-token heads by their ``rank_by`` score
    (``repeated`` or ``text``).
    """
    from ..data.sequences import corpus_sequences, repeated_tokens, sampled_tokens
    from ..models.tokenizer import Tokenizer

    cfg = weights.cfg
    layers = check_layers(weights, layers)
    check_heads(weights, profile_heads)
    if rank_by not in ("repeated", "text"):
        raise InvalidInputError(f"rank_by must be 'repeated' or 'text'; got {rank_by!r}")
    if rank_by == "text" and corpus is None:
        raise InvalidInputError("rank_by='text' needs a corpus file (--corpus)")
    P = min(seq_len or 256, cfg.n_ctx)
    options = dict(layers=layers, n_seq=n_seq, seq_len=P, seed=seed, threshold=threshold, corpus=str(corpus) if corpus else None,
                   n_text_seq=n_text_seq, rank_by=rank_by, profile_distinct=profile_distinct or max(2, P // 8),
                   uniform_half_distance=uniform_half_distance, n_frequent=n_frequent, group_threshold=group_threshold,
                   prepend_bos=prepend_bos, average="pooled over query positions with an earlier copy",
                   batch_size=batch_size, dtype=dtype, positional_only=positional_only)
    runner = Runner(weights, device=device, dtype=dtype)
    notes: list[str] = []
    pos = positional_attention(runner, [0]) if (positional or positional_only) else {}
    if positional_only:
        return DupHeadsResult(model=weights.label, processing=weights.processing, options=options, positional=pos,
                              notes=["positional inputs only: token scores were not computed"])
    if not weights.has("embed.W_E"):
        raise MissingTensorError("wte.weight", "duplicate-token head scores on token sequences; "
                                 "pass --positional-only to run just the positional-attention part", weights.label)
    if tokenizer is None and (corpus is not None or prepend_bos):
        tokenizer = Tokenizer.for_checkpoint(weights.source)
    bos = tokenizer.bos_token_id if (prepend_bos and tokenizer is not None) else None
    if prepend_bos and bos is None:
        notes.append("the tokenizer has no BOS token; sequences start without one")
    ignore = tuple(x for x in (bos,) if x is not None)
    rep = repeated_tokens(n_seq, P, cfg.d_vocab, seed=seed, exclude=ignore, bos=bos)
    st = pattern_stats(runner, rep, layers, batch_size, ignore)
    rep_score, rep_seq, prev = st.pooled(), st.seqmean(), st.prev()
    text_score = text_seq = None
    text_tokens = None
    data: dict[str, Any] = {"repeated": {"n_seq": n_seq, "seq_len": P, "n_dup_queries": int(st.dup_count.sum())}}
    if corpus is not None:
        text_tokens = corpus_sequences(corpus, tokenizer, P, n_text_seq, seed=seed, prepend_bos=bos is not None)
        tst = pattern_stats(runner, text_tokens, layers, batch_size, ignore)
        data["text"] = {"n_seq": int(text_tokens.shape[0]), "seq_len": int(text_tokens.shape[1]),
                        "n_dup_queries": int(tst.dup_count.sum())}
        if tst.dup_count.sum() == 0:
            data["text"]["empty_reason"] = "no token in the corpus sequences has an earlier copy; text scores are undefined"
            notes.append(data["text"]["empty_reason"])
        else:
            text_score, text_seq = tst.pooled(), tst.seqmean()
    heads: dict[str, dict[str, Any]] = {}
    for i, l in enumerate(layers):
        for h in range(cfg.n_heads):
            heads[f"{l}.{h}"] = {
                "layer": l, "head": h,
                "score": float(rep_score[i, h]) if rank_by == "repeated" else (None if text_score is None else float(text_score[i, h])),
                "score_repeated": float(rep_score[i, h]), "score_repeated_seqmean": float(rep_seq[i, h]),
                "score_text": None if text_score is None else float(text_score[i, h]),
                "score_text_seqmean": None if text_seq is None else float(text_seq[i, h]),
                "prev_token_score": float(prev[i, h]),
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
    # decay profiles
    phs = profile_heads or [(heads[k]["layer"], heads[k]["head"]) for k in dups]
    profiles: dict[str, Any] = {}
    if phs:
        smp = sampled_tokens(n_seq, P, cfg.d_vocab, seed=seed + 1, exclude=ignore, bos=bos, n_distinct=options["profile_distinct"])
        qid, dist, att = _pairs(runner, smp, phs, batch_size)
        for hk in phs:
            profiles[f"{hk[0]}.{hk[1]}"] = decay_profile(qid, dist, att[hk], uniform_half_distance=uniform_half_distance)
    tc: dict[str, Any] = {}
    if phs and text_tokens is not None:
        tc = token_classes(runner, text_tokens, phs, tokenizer, n_frequent, group_threshold, batch_size, ignore)
    return DupHeadsResult(
        model=weights.label, processing=weights.processing, options=options, heads=heads, ranking=ranking,
        duplicate_heads=dups, profiles=profiles, token_classes=tc, positional=pos, data=data, notes=notes,
        checks=_checks(weights, heads, profiles, pos),
    )


def _checks(weights: Weights, heads, profiles, pos) -> list[dict[str, Any]]:
    """The seed's GPT-2 small claims, compared where the model is GPT-2 small shaped."""
    cfg = weights.cfg
    if (cfg.n_layers, cfg.n_heads, cfg.d_model) != (12, 12, 768):
        return []
    out = []
    if pos:
        kinds = {k: v["kind"] for k, v in pos["heads"].items()}
        out.append(dict(what="layer-0 heads on positional inputs: 0.11 nearly uniform", published="uniform",
                        ours=kinds.get("0.11"), reproduced=kinds.get("0.11") == "uniform"))
        n_local = sum(v == "local" for v in kinds.values())
        out.append(dict(what="most layer-0 heads attend within the previous ~30 positions", published=">6 of 12",
                        ours=f"{n_local} of 12", reproduced=n_local > 6))
    if heads:
        for name, want in (("0.1", "decaying"), ("0.10", "decaying"), ("0.5", "uniform")):
            if name in heads:
                out.append(dict(what=f"{name} is a duplicate-token head", published=True,
                                ours=heads[name]["is_duplicate"], reproduced=heads[name]["is_duplicate"]))
            if name in profiles:
                v = profiles[name].get("verdict")
                out.append(dict(what=f"{name} decay", published=want, ours=v, reproduced=v == want))
    return out


# ----------------------------------------------------------------------------- summary


def summarize(result: DupHeadsResult) -> list[str]:
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
            lines.append(f"on natural text the strongest is {best} ({result.heads[best]['score_text']:.3f} of attention at repeated tokens)")
        pv = max(result.heads, key=lambda k: result.heads[k]["prev_token_score"])
        lines.append(f"strongest previous-token head {pv} ({result.heads[pv]['prev_token_score']:.3f})")
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
        lines.append(f"positional inputs alone ({p['seq_len']} positions): local (last {p['local_window']}) "
                     f"{', '.join(p['local']) or 'none'}; uniform {', '.join(p['uniform']) or 'none'}; mixed {', '.join(p['mixed']) or 'none'}")
    lines += result.notes
    return lines


def figures(result: DupHeadsResult, out_dir: str | Path) -> list[Path]:
    from ..viz.duplicate import dup_heads_figures

    return dup_heads_figures(result, Path(out_dir))
