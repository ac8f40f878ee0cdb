"""Random baselines, so an ablation's effect size means something.

An effect is compared with the same ablation applied to random targets of the same size:
random heads of the same layer (never the ablated ones), random neurons of the same
layer, random subspaces of the same dimension (uniform on the Grassmannian: QR of a
Gaussian matrix). :func:`compare` reports the baseline's mean, spread and draws, the
z-score of the effect against it, and the share of draws at least as large.

>>> compare(-2.0, [0.1, -0.2, 0.05]).z < -5
True
>>> sets = random_head_sets(8, 2, exclude=[1, 5], n_draws=3, seed=0)
>>> len(sets), any(1 in s or 5 in s for s in sets)
(3, False)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import InvalidInputError


@dataclass(frozen=True)
class Spread:
    """Baseline draws: their number, mean, sample standard deviation, extremes and the draws themselves."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    draws: list[float]


@dataclass(frozen=True)
class Comparison:
    """An effect against baseline draws: ``z = (effect - mean) / std`` (NaN when the draws have no
    spread), ``ratio = effect / |mean|``, ``share_as_large`` = fraction of draws with ``|draw| >= |effect|``."""

    effect: float
    baseline: Spread
    z: float
    ratio: float
    share_as_large: float


@dataclass(frozen=True)
class ArmComparison(Comparison):
    """A :class:`Comparison` of ablated - clean that keeps both arms' values."""

    clean: float
    ablated: float


def spread(values: Iterable[float]) -> Spread:
    """Mean, sample standard deviation, extremes and the draws themselves."""
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        nan = float("nan")
        return Spread(0, nan, nan, nan, nan, [])
    # Equal draws can still give a std of ~1e-16 from rounding in the mean, and a z against that
    # is a 16-digit number that means nothing.
    std = float(v.std(ddof=1)) if v.size > 1 and v.max() > v.min() else 0.0
    return Spread(int(v.size), float(v.mean()), std, float(v.min()), float(v.max()), v.tolist())


def compare(effect: float, draws: Iterable[float]) -> Comparison:
    """``effect`` against the baseline ``draws`` (a :class:`Comparison`)."""
    b = spread(draws)
    effect = float(effect)
    # No spread (one draw, or all draws equal): the words say "no z", and so does the number,
    # rather than an infinite z that report.json would write as null anyway.
    z = (effect - b.mean) / b.std if b.n > 1 and b.std > 0 else float("nan")
    ratio = effect / abs(b.mean) if b.n and b.mean != 0 else float("nan")
    share = float(np.mean(np.abs(b.draws) >= abs(effect))) if b.n else float("nan")
    return Comparison(effect, b, z, ratio, share)


def compare_arms(clean: float, ablated: float, draws: Iterable[float]) -> ArmComparison:
    """``ablated - clean`` against ``draws`` (each a random ablation's ablated - clean), both arms kept."""
    c = compare(float(ablated) - float(clean), draws)
    return ArmComparison(c.effect, c.baseline, c.z, c.ratio, c.share_as_large, float(clean), float(ablated))


def against(b: Spread, z: float, what: str = "baseline") -> str:
    """A baseline ``b`` and an effect's ``z`` against it in words: the baseline's n, mean and
    spread, then z, or the plain fact that the baseline has no spread (a z against zero spread
    means nothing).

    >>> c = compare(-2.0, [0.1, -0.2, 0.05])
    >>> against(c.baseline, c.z, "random heads")
    'random heads -0.017 ± 0.161 (n 3; z -12.3)'
    >>> c = compare(-2.0, [0.0, 0.0])
    >>> against(c.baseline, c.z, "random heads")
    'random heads +0.000 (n 2, all draws equal: no spread, so no z)'
    """
    if not b.n:
        return f"{what}: no draws"
    if b.n < 2 or not b.std > 0:
        return f"{what} {b.mean:+.3f} (n {b.n}, " + ("all draws equal: no spread, so no z)" if b.n > 1
                                                     else "one draw: no spread, so no z)")
    return f"{what} {b.mean:+.3f} ± {b.std:.3f} (n {b.n}; z {z:.1f})"


def _draw_subsets(pool: Sequence[int], size: int, n_draws: int, rng: np.random.Generator) -> list[list[int]]:
    """Distinct ``size``-subsets of ``pool`` (all of them if there are at most ``n_draws``)."""
    pool = list(pool)
    if size > len(pool):
        raise InvalidInputError(f"cannot draw {size} random targets from only {len(pool)} candidates")
    n_all = math.comb(len(pool), size)
    if n_all <= max(n_draws, 1) * 4 and n_all <= 100_000:
        combos = list(itertools.combinations(pool, size))
        pick = rng.permutation(len(combos))[: min(n_draws, n_all)]
        return [sorted(combos[i]) for i in pick]
    seen: set[tuple[int, ...]] = set()
    out = []
    while len(out) < n_draws:
        s = tuple(sorted(rng.choice(pool, size, replace=False).tolist()))
        if s not in seen:
            seen.add(s)
            out.append(list(s))
    return out


def random_head_sets(n_heads: int, size: int, exclude: Iterable[int] = (), n_draws: int = 10, seed: int = 0) -> list[list[int]]:
    """Random sets of ``size`` heads from one layer, never containing an excluded head.

    When too few heads are left outside ``exclude``, draws come from the whole layer (the
    caller records this in the result as the baseline's pool).
    """
    return _draw_subsets(head_pool(n_heads, size, exclude), size, n_draws, np.random.default_rng(seed))


def head_pool(n_heads: int, size: int, exclude: Iterable[int]) -> list[int]:
    ex = set(int(e) for e in exclude)
    pool = [h for h in range(n_heads) if h not in ex]
    return pool if len(pool) >= size else list(range(n_heads))


def random_neurons(d_mlp: int, size: int, exclude: Iterable[int] = (), n_draws: int = 10, seed: int = 0) -> list[list[int]]:
    """Random sets of ``size`` neurons of one layer, none of them excluded."""
    ex = set(int(e) for e in exclude)
    return _draw_subsets([n for n in range(d_mlp) if n not in ex], size, n_draws, np.random.default_rng(seed))


def random_subspace(d: int, k: int, seed: int) -> torch.Tensor:
    """An orthonormal basis ``[k, d]`` of a uniformly random k-dimensional subspace (QR of a Gaussian)."""
    if not 1 <= k <= d:
        raise InvalidInputError(f"a random subspace needs 1 <= k <= d; got k={k}, d={d}")
    g = torch.Generator().manual_seed(int(seed))
    q, r = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))
    return (q * torch.sign(r.diagonal())).T.contiguous()

