"""Do positional "spheres" around token embeddings overlap? ("Dissecting the Frog", backup slides.)

Adding a positional vector P to a token embedding T moves it somewhere on a sphere of
radius |P| around T. For random tokens T_i (each at its own position, P_i), a pair
overlaps when ``|P_i| + |P_j| > |T_i - T_j|``; for overlapping pairs the slides measure
the shared volume of two equal balls (radius r, centres d apart) in R^D as a fraction of
one ball, ``I_{1 - (d / 2r)^2}((D + 1) / 2, 1 / 2)`` (``scipy.special.betainc``), with r the
mean of the two radii (the slides' formula assumes equal radii). Repeated over trials.

The norms of the token and positional embeddings (the slides' other printout) come with
it; the positional part needs only W_pos, so a checkpoint without ``wte`` still gets it,
and the overlap part says why it was skipped. The slides' printouts are compared in
:mod:`poslens.claims.dissecting_the_frog.geometry`; this module measures only.

>>> from poslens.models import load_weights
>>> r = sphere_overlap(load_weights("tiny"), n_tokens=500, n_trials=5)   # doctest: +SKIP
>>> r.mean_share, r.mean_volume_fraction                                  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from ...models.weights import Weights, as_weights, require
from ...options import resolve
from ...results import ClaimRow, Result
from ..norms import NormStats
from .options import SphereOptions

GRID = 2**16  # intervals of the tabulated overlap curve: linear interpolation within ~1e-6 up to dim 4096


@lru_cache(maxsize=8)
def _overlap_curve(dim: int) -> np.ndarray:
    from scipy.special import betainc

    u = np.linspace(0.0, 1.0, GRID + 1)
    return np.concatenate([betainc((dim + 1) / 2.0, 0.5, 1.0 - u**2), [0.0, 0.0]])


def overlap_volume_fraction(d: np.ndarray, r: np.ndarray, dim: int) -> np.ndarray:
    """Intersection volume of two radius-r balls with centres d apart in R^dim, over one ball's volume.

    The fraction depends only on ``u = d / 2r``: it is tabulated once per ``dim`` with
    ``betainc`` on 65,537 points of [0, 1] and read by linear interpolation (the millions of
    pairs of a run cost one ``betainc`` each otherwise, seconds of a report).

    >>> float(overlap_volume_fraction(np.array([0.0]), np.array([1.0]), 3)[0])
    1.0
    >>> float(overlap_volume_fraction(np.array([2.0]), np.array([1.0]), 3)[0])
    0.0
    """
    d, r = np.broadcast_arrays(np.asarray(d, dtype=np.float64), np.asarray(r, dtype=np.float64))
    x = np.divide(d, 2.0 * r, out=np.full(d.shape, 2.0), where=r > 0) * GRID
    x = np.minimum(x, GRID + 1.0)  # past u = 1 the balls do not meet: the curve's padded zero
    i = x.astype(np.int64)  # a uniform grid: the interval is found by flooring, not searching
    curve = _overlap_curve(int(dim))
    return curve[i] + (x - i) * (curve[i + 1] - curve[i])


@dataclass(frozen=True)
class OverlapTrial:
    share: float  # of token pairs whose spheres overlap
    mean_volume_fraction: float  # of a sphere's volume shared, over all pairs
    mean_volume_fraction_overlapping: float  # the same over overlapping pairs only


@dataclass(frozen=True)
class Histogram:
    edges: list[float]
    counts: list[int]
    trials: int  # pooled over this many trials


@dataclass(frozen=True)
class SphereOverlapResult(Result):
    """``trials`` (share of overlapping pairs, mean volume fraction), their mean/std, the
    token and positional norm statistics, and a histogram of ``r_i + r_j - d_ij``."""

    kind = "sphere_overlap"
    positional_norms: NormStats | None = None
    token_norms: NormStats | None = None  # None without a token embedding
    trials: list[OverlapTrial] = field(default_factory=list)
    mean_share: float | None = None
    std_share: float | None = None
    mean_volume_fraction: float | None = None
    std_volume_fraction: float | None = None
    margin_histogram: Histogram | None = None  # of r_i + r_j - d_ij (> 0: the spheres overlap)
    missing: list[str] = field(default_factory=list)
    checks: list[ClaimRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sphere_overlap(weights: Weights, options: SphereOptions | None = None, **overrides) -> SphereOverlapResult:
    """Share of random token pairs whose positional spheres overlap, and their overlap volume.

    ``positions="sequence"``: the i-th sampled token sits at position ``i mod n_ctx`` (the
    slides' 1000 tokens as one sequence); ``"random"``: positions drawn uniformly.

    >>> r = sphere_overlap(load_weights("tiny"), n_tokens=200, n_trials=2)   # doctest: +SKIP
    """
    o = resolve(SphereOptions, options, overrides, "sphere_overlap")
    weights = as_weights(weights, "sphere_overlap")
    cfg = weights.cfg
    require(weights, ["pos_embed.W_pos"], "positional sphere overlap")
    W_pos = weights.get("pos_embed.W_pos", needed_for="positional norms").double()
    pos_norms = W_pos.norm(dim=-1)
    options = dict(n_tokens=o.n_tokens, n_trials=o.n_trials, positions=o.positions, seed=o.seed,
                   radius="mean of the two positional norms", volume="betainc((D+1)/2, 1/2, 1-(d/2r)^2)")
    pstats = NormStats.of(W_pos.numpy())
    if not weights.has("embed.W_E"):
        return SphereOverlapResult(
            model=weights.label, processing=weights.processing, options=options, positional_norms=pstats,
            missing=["wte.weight (token embeddings): the overlap of token spheres cannot be measured"],
            notes=["positional norms only: the checkpoint has no token embedding wte"])
    W_E = weights.get("embed.W_E", needed_for="positional sphere overlap").double()
    tstats = NormStats.of(W_E.numpy())
    n = min(o.n_tokens, cfg.d_vocab)
    rng = np.random.default_rng(o.seed)
    iu = np.triu_indices(n, 1)
    trials = []
    margins_all = []
    for _ in range(o.n_trials):
        tok = torch.as_tensor(rng.choice(cfg.d_vocab, size=n, replace=False))
        pos = (torch.arange(n) % cfg.n_ctx if o.positions == "sequence"
               else torch.as_tensor(rng.integers(0, cfg.n_ctx, n)))
        T = W_E[tok]
        r = pos_norms[pos].numpy()
        d = torch.cdist(T, T).numpy()[iu]
        ri, rj = r[iu[0]], r[iu[1]]
        margin = ri + rj - d
        frac = overlap_volume_fraction(d, (ri + rj) / 2, cfg.d_model)
        trials.append(OverlapTrial(float((margin > 0).mean()), float(frac.mean()),
                                   float(frac[margin > 0].mean()) if (margin > 0).any() else 0.0))
        margins_all.append(margin)
    shares = np.array([t.share for t in trials])
    fracs = np.array([t.mean_volume_fraction for t in trials])
    margins = np.concatenate(margins_all)
    counts, edges = np.histogram(margins, bins=o.bins)
    hist = Histogram(edges.tolist(), counts.tolist(), o.n_trials)
    notes = []
    if n < o.n_tokens:
        notes.append(f"n_tokens capped at the vocabulary size {cfg.d_vocab}")
    return SphereOverlapResult(
        model=weights.label, processing=weights.processing, options=options, positional_norms=pstats,
        token_norms=tstats, trials=trials, mean_share=float(shares.mean()), std_share=float(shares.std()),
        mean_volume_fraction=float(fracs.mean()), std_volume_fraction=float(fracs.std()),
        margin_histogram=hist, notes=notes)


def summarize(result: SphereOverlapResult) -> list[str]:
    p = result.positional_norms
    lines = [f"positional norms: mean {p.mean:.4f}, std {p.std:.4f}, max {p.max:.4f} (position "
             f"{p.argmax}), min {p.min:.4f} (position {p.argmin})"]
    if result.token_norms:
        t = result.token_norms
        lines.append(f"token norms: mean {t.mean:.4f}, std {t.std:.4f}, max {t.max:.4f}, min {t.min:.4f}")
    if result.mean_share is not None:
        lines.append(f"overlapping pairs: {100 * result.mean_share:.2f}% ± {100 * result.std_share:.2f} over "
                     f"{len(result.trials)} trials; mean overlap volume fraction {result.mean_volume_fraction:.3g} "
                     f"± {result.std_volume_fraction:.2g}")
    for c in result.checks:
        lines.append(f"{c.what}: published {c.published}, ours {c.ours:.5g} "
                     f"({'reproduced' if c.reproduced else 'NOT reproduced'})")
    lines += [f"missing: {m}" for m in result.missing]
    lines += result.notes
    return lines
