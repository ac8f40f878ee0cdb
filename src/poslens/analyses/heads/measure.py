"""Pure measurements on attention: duplicate and induction masks, decay profiles against distance,
token classes from accumulated attention, and how far back a head looks.

Nothing here runs a model; :mod:`.harvest` feeds these from a Runner's patterns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch


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


def induction_mask(dup: torch.Tensor, offset: int = 1) -> torch.Tensor:
    """``[batch, query, key]`` bool: key is the position just after an earlier copy of the
    query's token (where an induction head looks), and before the query; ``offset=2``: two
    after it (where a shifted copying head looks, reading what a previous-token head wrote there).

    >>> induction_mask(duplicate_mask(torch.tensor([[5, 6, 7, 5]])))[0, 3].tolist()
    [False, True, False, False]
    >>> induction_mask(duplicate_mask(torch.tensor([[5, 6, 7, 5]])), offset=2)[0, 3].tolist()
    [False, False, True, False]
    """
    m = torch.zeros_like(dup)
    m[:, :, offset:] = dup[:, :, :-offset]
    P = dup.shape[1]
    return m & torch.ones(P, P, dtype=torch.bool).tril(-1)


@dataclass(frozen=True)
class DecayFit:
    """An exponential decay of attention with distance: ``rate`` per token, ``half_distance`` = ln 2 / rate
    (inf when attention does not fall), ``r2`` of the fit; ``amplitude`` for the mean-profile fit only;
    ``error`` where the fit did not converge."""

    rate: float | None = None
    half_distance: float | None = None
    r2: float | None = None
    amplitude: float | None = None
    n_queries: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class DecayProfile:
    """A head's attention to earlier copies of the current token against their distance.

    ``distances`` / ``mean_attention`` / ``n_at_distance``: the mean profile (distances with
    enough pairs); ``within_query`` and ``mean_fit``: the two fits (:func:`decay_profile`);
    ``rate`` and ``half_distance``: the within-query fit's where it exists, else the mean fit's.
    """

    n_pairs: int
    verdict: str
    reason: str | None = None
    distances: list[float] = field(default_factory=list)
    mean_attention: list[float] = field(default_factory=list)
    n_at_distance: list[int] = field(default_factory=list)
    within_query: DecayFit = field(default_factory=DecayFit)
    mean_fit: DecayFit = field(default_factory=DecayFit)
    half_distance: float | None = None
    rate: float | None = None


def decay_profile(qid: np.ndarray, dist: np.ndarray, att: np.ndarray, max_distance: int | None = None,
                  uniform_half_distance: float = 200.0, min_pairs: int = 5) -> DecayProfile:
    """Attention to a duplicate against its distance, with two exponential fits.

    * ``within_query``: log attention to each earlier copy regressed on distance after
      removing each query's own mean (queries with >= 2 copies). Softmax normalisation is
      a per-query constant, so this slope is exactly minus the head's decay rate per token.
    * ``mean_fit``: ``a * exp(-rate * d)`` fitted (scipy ``curve_fit``) to the mean
      attention a copy at distance d receives; what the seed's plots show, but it mixes
      the decay with how many competitors a query has.

    Verdict: ``decaying`` when the half-distance is below ``uniform_half_distance``
    tokens, ``growing`` when attention instead doubles within that many tokens (the head
    favours the earliest copy), else ``uniform``.

    >>> qid = np.repeat(np.arange(50), 3); dist = np.tile([1, 5, 9], 50).astype(float)
    >>> att = np.exp(-0.1 * dist) / 3
    >>> round(decay_profile(qid, dist, att, min_pairs=1).rate, 6)
    0.1
    """
    from scipy import optimize, stats

    keep = att > 0
    if max_distance:
        keep &= dist <= max_distance
    qid, dist, att = qid[keep], dist[keep], att[keep]
    if len(att) == 0:
        return DecayProfile(n_pairs=0, verdict="no duplicates", reason="no query had an earlier copy of its token")
    d_vals, inv, counts = np.unique(dist, return_inverse=True, return_counts=True)
    means = np.bincount(inv, weights=att) / counts
    ok = counts >= min_pairs
    # within-query fit
    uq, qinv, qcount = np.unique(qid, return_inverse=True, return_counts=True)
    multi = qcount[qinv] >= 2
    wq = DecayFit(n_queries=int((qcount >= 2).sum()))
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
            wq = DecayFit(rate=rate, r2=1 - float((resid**2).sum()) / tot if tot > 0 else 1.0,
                          half_distance=math.log(2) / rate if rate > 0 else math.inf, n_queries=wq.n_queries)
    # mean-profile fit
    mf = DecayFit()
    x, y = d_vals[ok].astype(float), means[ok]
    if len(x) >= 3 and (y > 0).all():
        lr = stats.linregress(x, np.log(y))
        try:
            p0 = (float(np.exp(lr.intercept)), float(-lr.slope))
            popt, _ = optimize.curve_fit(lambda d, a, r: a * np.exp(-r * d), x, y, p0=p0, maxfev=5000)
            pred = popt[0] * np.exp(-popt[1] * x)
            ss = float(((y - y.mean()) ** 2).sum())
            mf = DecayFit(amplitude=float(popt[0]), rate=float(popt[1]),
                          half_distance=math.log(2) / popt[1] if popt[1] > 0 else math.inf,
                          r2=1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else 1.0)
        except RuntimeError as exc:
            mf = DecayFit(error=f"curve_fit did not converge: {exc}")
    hd = wq.half_distance if wq.half_distance is not None else mf.half_distance
    return DecayProfile(
        n_pairs=int(len(att)), distances=d_vals[ok].tolist(), mean_attention=means[ok].tolist(),
        n_at_distance=counts[ok].tolist(), within_query=wq, mean_fit=mf, half_distance=hd,
        rate=wq.rate if wq.rate is not None else mf.rate,
        verdict=_decay_verdict(hd, wq.rate if wq.rate is not None else mf.rate, uniform_half_distance))


def _decay_verdict(half_distance: float | None, rate: float | None, uniform_half_distance: float) -> str:
    """decaying (halves within ``uniform_half_distance`` tokens), growing (doubles within it: the
    earliest copy is favoured), else uniform."""
    if half_distance is None:
        return "unknown"
    if half_distance < uniform_half_distance:
        return "decaying"
    if rate is not None and rate < 0 and math.log(2) / -rate < uniform_half_distance:
        return "growing"
    return "uniform"


@dataclass(frozen=True)
class HeadSpread:
    """How far back one head looks (:func:`pattern_spread`): ``kind`` is local / uniform / mixed."""

    span50: float
    span90: float
    share_last_window: float
    mean_distance: float
    attention_to_first: float
    entropy_ratio: float
    kind: str


@dataclass(frozen=True)
class PositionalSpread:
    """Layer-0 (or chosen layers') attention on positional inputs alone (token embedding zero):
    each head's :class:`HeadSpread` over queries ``min_query .. seq_len - 1``, the heads of each
    kind, and ``uniform_mean_distance``, what exactly uniform attention would show."""

    seq_len: int
    local_window: int
    min_query: int
    uniform_entropy: float
    exclude_first: bool
    heads: dict[str, HeadSpread]
    uniform_mean_distance: float
    local: list[str]
    uniform: list[str]
    mixed: list[str]


def pattern_spread(
    pattern: torch.Tensor,
    min_query: int = 100,
    local_window: int = 30,
    uniform_entropy: float = 0.85,
    exclude_first: bool = True,
) -> dict[str, HeadSpread]:
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
    >>> pattern_spread(p, min_query=100)["0"].kind
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
    out: dict[str, HeadSpread] = {}
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
        out[str(h)] = HeadSpread(**d, kind="local" if d["span50"] <= local_window else ("uniform" if uniform else "mixed"))
    return out


@dataclass(frozen=True)
class HeadClasses:
    """One head's token classes: ``matrix[a][b]`` the mean attention from token a to earlier
    occurrences of b (nan where none), ``affinity`` each row over its diagonal, ``groups`` the
    tokens it treats as one."""

    matrix: list[list[float]]
    affinity: list[list[float]]
    groups: list[list[str]]


@dataclass(frozen=True)
class TokenClasses:
    """The frequent tokens (``tokens``, ``token_ids``) and each profiled head's classes over them;
    ``reason`` says why there are none."""

    tokens: list[str]
    token_ids: list[int]
    heads: dict[str, HeadClasses]
    reason: str | None = None


def class_groups(sums: torch.Tensor, counts: torch.Tensor, names: list[str], group_threshold: float) -> HeadClasses:
    """One head's token classes from ``sums[a, b]`` (attention from queries holding token a to
    earlier b, summed) and ``counts[a, b]`` (such queries): ``matrix`` (the mean), ``affinity``
    (each row over its diagonal) and ``groups``, the connected components of tokens whose
    affinity exceeds ``group_threshold`` both ways.

    >>> class_groups(torch.tensor([[2.0, 2.0], [2.0, 2.0]]), torch.ones(2, 2) * 4, ["a", "b"], 0.3).groups
    [['a', 'b']]
    """
    from scipy.sparse.csgraph import connected_components

    m = (sums / counts.clamp(min=1)).numpy()
    m[counts.numpy() == 0] = np.nan
    diag = np.diag(m).copy()
    aff = m / np.where(diag > 0, diag, np.nan)[:, None]
    adj = np.nan_to_num(np.minimum(aff, aff.T), nan=0.0) > group_threshold
    np.fill_diagonal(adj, False)
    n_comp, lab = connected_components(adj, directed=False)
    groups = [[names[i] for i in np.flatnonzero(lab == c)] for c in range(n_comp) if (lab == c).sum() > 1]
    return HeadClasses(m.tolist(), aff.tolist(), groups)
