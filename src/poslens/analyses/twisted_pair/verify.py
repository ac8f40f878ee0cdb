"""Run a twisted-pair construction through the project's Runner and check it against the post's bound.

Every pair (i, j) with |i - j| <= k is fed as the token sequence ``[j, i]``; the estimate
of j - i is ``blocks.0.hook_mlp_out[:, 1, v]``. Each estimate is compared with the truth,
with the construction's value in exact arithmetic (so rounding in the runner is measured
separately from the mathematics) and with the post's bound (see
:meth:`~poslens.analyses.twisted_pair.build.Construction.bound`). Sweeps rebuild the
construction over M, n or k; the grid runs every (curve, n, k, M) combination.

>>> from poslens.analyses.twisted_pair.curves import make_curve
>>> from poslens.analyses.twisted_pair.build import build
>>> v = verify(build(make_curve("helix"), n=128, M=8, k=4))
>>> v.within_bound, v.n_pairs
(True, 1141)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...models.runner import Runner
from .build import Construction, build
from .curves import curve_stats, make_curve

READOUT = "blocks.0.hook_mlp_out"


@dataclass(frozen=True)
class DistanceError:
    """Error and bound over the pairs ``|i - j| = distance`` (positions)."""

    distance: int
    max_error: float
    mean_error: float
    max_bound: float
    min_bound: float


@dataclass(frozen=True)
class PositionProfile:
    """Per position i (0..n): the largest error and bound over its partners j."""

    max_error: list[float]
    max_bound: list[float]


@dataclass(frozen=True)
class PairSample:
    """A random sample of pairs (plus the worst ones), for plots."""

    i: list[int]
    j: list[int]
    estimate: list[float]
    bound: list[float]


@dataclass(frozen=True)
class PairError:
    """One pair: its estimate of ``j - i``, error and bound, and ``t = i / n``."""

    i: int
    j: int
    t: float
    estimate: float
    error: float
    bound: float


@dataclass(frozen=True)
class Verification:
    """Every pair with ``|i - j| <= k`` through the Runner, against the truth and the post's bound.

    ``within_bound``: every pair's error is at most its bound + ``atol``; ``runner_vs_exact`` the
    Runner against the construction in exact arithmetic (rounding only); ``exact_max_error`` the
    mathematics' own error; ``rounds_correctly`` the share of estimates that round to ``j - i``.
    The profiles, the sample and the worst / outside pairs are there with ``detail=True``.
    """

    n_pairs: int
    k: int
    dtype: str
    atol: float
    assumptions_hold: bool
    gates_failed: int
    within_bound: bool
    n_outside_bound: int
    max_error: float
    mean_error: float
    max_bound: float
    mean_bound: float
    worst_ratio: float
    runner_vs_exact: float
    exact_max_error: float
    rounds_correctly: float
    per_distance: list[DistanceError] | None = None
    per_position: PositionProfile | None = None
    sample: PairSample | None = None
    worst: list[PairError] | None = None
    outside: list[PairError] | None = None


def run_estimates(con: Construction, tokens: torch.Tensor, *, runner: Runner | None = None, dtype: str = "float64",
                  device: str = "cpu", edits: dict[str, Callable] | None = None, hooks: Sequence[str] = (),
                  batch_size: int = 8192) -> tuple[np.ndarray, dict]:
    """The construction's estimates of j - i for token sequences ``[j, i]``, and any extra hooks asked for."""
    runner = runner or Runner(con.weights, device=device, dtype=dtype)
    acts = runner.run(tokens, hooks=[READOUT, *hooks], edits=edits, batch_size=batch_size)
    est = acts[READOUT][:, 1, con.layout["v"][0]].double().numpy()
    return est, acts


def verify(con: Construction, *, k: int | None = None, dtype: str = "float64", device: str = "cpu",
           atol: float = 1e-3, n_sample: int = 1500, seed: int = 0, detail: bool = True) -> Verification:
    """Estimates for every pair with |i - j| <= k against the truth and the bound.

    ``atol`` (positions) absorbs rounding: a pair is inside the bound when
    |estimate - (j - i)| <= bound + atol. ``detail`` adds per-distance and per-position
    profiles, a sample of pairs for plots and the worst pairs.
    """
    tokens, i, j = con.pair_tokens(k)
    est, _ = run_estimates(con, tokens, dtype=dtype, device=device)
    truth = (j - i).astype(np.float64)
    err = np.abs(est - truth)
    bnd = con.bound(i, j)
    exact = con.ideal(i, j)
    inside = err <= bnd + atol
    moving = j != i
    ratio = np.where(moving, err / np.where(bnd > 0, bnd, np.inf), 0.0)
    scalars = dict(
        n_pairs=int(len(i)), k=int(con.k if k is None else k), dtype=dtype, atol=atol,
        assumptions_hold=bool(con.feasible), gates_failed=int((~con.gate_ok).sum()),
        within_bound=bool(inside.all()), n_outside_bound=int((~inside).sum()),
        max_error=float(err.max()), mean_error=float(err.mean()), max_bound=float(bnd.max()),
        mean_bound=float(bnd.mean()), worst_ratio=float(ratio.max()),
        runner_vs_exact=float(np.abs(est - exact).max()),
        exact_max_error=float(np.abs(exact - truth).max()),
        rounds_correctly=float(np.mean(np.rint(est) == truth)),
    )
    if not detail:
        return Verification(**scalars)
    ds = np.abs(j - i)
    per_distance = [
        DistanceError(distance=int(dd), max_error=float(err[ds == dd].max()), mean_error=float(err[ds == dd].mean()),
                      max_bound=float(bnd[ds == dd].max()), min_bound=float(bnd[ds == dd].min()))
        for dd in np.unique(ds)
    ]
    n1 = con.n + 1
    pos_err, pos_bnd = np.zeros(n1), np.zeros(n1)
    np.maximum.at(pos_err, i, err)
    np.maximum.at(pos_bnd, i, bnd)
    rng = np.random.default_rng(seed)
    order = np.argsort(-np.where(moving, ratio, -1))
    worst = order[:10]
    pick = rng.choice(len(i), size=min(n_sample, len(i)), replace=False)
    pick = np.unique(np.r_[pick, worst])

    def pair(p: int) -> PairError:
        return PairError(i=int(i[p]), j=int(j[p]), t=float(i[p] / con.n), estimate=float(est[p]), error=float(err[p]),
                         bound=float(bnd[p]))

    bad = np.flatnonzero(~inside)
    return Verification(
        **scalars, per_distance=per_distance,
        per_position=PositionProfile(max_error=pos_err.tolist(), max_bound=pos_bnd.tolist()),
        sample=PairSample(i=i[pick].tolist(), j=j[pick].tolist(), estimate=est[pick].tolist(), bound=bnd[pick].tolist()),
        worst=[pair(p) for p in worst], outside=[pair(p) for p in bad[np.argsort(-err[bad])][:20]],
    )


@dataclass(frozen=True)
class BoundRow:
    """One (n, M, k) of a sweep, or one (curve, n, k, M) of the grid: built and verified, or not built
    (``assumptions_hold`` False with the ``reason``, and no verification numbers)."""

    n: int
    M: int
    k: int
    assumptions_hold: bool
    curve: str | None = None  # grid rows: which curve, its parameters and the variant
    params: dict[str, float | list[float]] | None = None
    variant: str | None = None
    reason: str | None = None
    gates_failed: int | None = None
    n_neurons: int | None = None
    min_gate_margin: float | None = None
    within_bound: bool | None = None  # None: not verified
    n_outside_bound: int | None = None
    max_error: float | None = None
    max_bound: float | None = None
    worst_ratio: float | None = None
    runner_vs_exact: float | None = None
    rounds_correctly: float | None = None
    n_pairs: int | None = None


def _row(con: Construction, v: Verification, **keys) -> BoundRow:
    return BoundRow(**keys, assumptions_hold=bool(con.feasible), gates_failed=int((~con.gate_ok).sum()),
                    n_neurons=int(con.cfg.d_mlp), min_gate_margin=float(con.gate_margin.min()),
                    **{k: getattr(v, k) for k in ("within_bound", "n_outside_bound", "max_error", "max_bound",
                                                  "worst_ratio", "runner_vs_exact", "rounds_correctly", "n_pairs")})


def sweep(curve, *, n: int, M: int, k: int, over: str, values: Sequence[int], variant: str = "plain",
          gate: str = "fit", dtype: str = "float64", device: str = "cpu", atol: float = 1e-3,
          **build_kw) -> list[BoundRow]:
    """Rebuild and verify with one of M, n, k varied over ``values`` (the others fixed)."""
    rows = []
    stats = functools.cache(lambda n: curve_stats(curve, n))
    for val in values:
        p = {"n": n, "M": M, "k": k, over: int(val)}
        if p["k"] >= p["n"] or (variant == "plain" and p["M"] + 1 >= p["n"]):
            rows.append(BoundRow(**p, assumptions_hold=False, reason="sizes break k < n or M + 1 < n"))
            continue
        con = build(curve, p["n"], p["M"], p["k"], variant=variant, gate=gate, strict=False, stats=stats(p["n"]),
                    **build_kw)
        v = verify(con, dtype=dtype, device=device, atol=atol, detail=False)
        rows.append(_row(con, v, **p))
    return rows


DEFAULT_GRID_CURVES = (
    ("helix", {"turns": 1.0}, "plain"),
    ("circle-drift", {}, "plain"),
    ("random", {"dim": 6, "seed": 0}, "plain"),
    ("loop", {"gap": 0.3}, "plain"),
    ("helix", {"turns": 4.0, "drift": 4.0}, "helix"),
)


def grid(curves=DEFAULT_GRID_CURVES, ns: Sequence[int] = (128, 512), ks: Sequence[int] = (2, 8),
         Ms: Sequence[int] = (8, 32), *, gate: str = "fit", dtype: str = "float64", device: str = "cpu",
         atol: float = 1e-3) -> list[BoundRow]:
    """Every (curve, n, k, M): does the construction stay inside the bound where its assumptions hold?

    ``curves``: (name or Curve, params, variant) triples. For the helix variant M counts
    sentries per period of f' (it is capped so every sentry has points).
    """
    rows = []
    for spec, params, variant in curves:
        curve = make_curve(spec, **params)
        for n in ns:
            stats = curve_stats(curve, n)
            for k in ks:
                for M in Ms:
                    key = {"curve": curve.name, "params": dict(curve.params), "variant": variant, "n": n, "k": k, "M": M}
                    if k >= n or (variant == "plain" and M + 1 >= n):
                        rows.append(BoundRow(**key, assumptions_hold=False, reason="sizes break k < n or M + 1 < n"))
                        continue
                    if variant == "helix" and (curve.period or 1.0) * n / M < 1:
                        rows.append(BoundRow(**key, assumptions_hold=False, reason="more sentries than points per period"))
                        continue
                    con = build(curve, n, M, k, variant=variant, gate=gate, strict=False, stats=stats)
                    rows.append(_row(con, verify(con, dtype=dtype, device=device, atol=atol, detail=False), **key))
    return rows
