"""The post's three claims about the construction, each tested on real weights through the Runner.

1. :func:`noise_cancellation` - noise on the gate term f(s_m) . x_i is common to both
   neurons of a pair, so it cancels in N+ - N-. Gaussian noise is added to the residual
   subspace the gates read (S, or Y in the helix variant) at the readout position, with
   an edit on ``blocks.0.hook_resid_mid``; the same run gives the pair readout and a
   single-neuron readout (N+ minus its noise-free value at j = i, the best a reader of one
   neuron can subtract). A control adds the same per-neuron noise power independently
   to each neuron (``blocks.0.mlp.hook_pre``): differential noise, which pairs cannot cancel.
2. :func:`near_intersection` - the nodal-cubic loop with its branches lifted ``gap``
   apart: the gate margins at the crossing shrink with the gap, and a fixed amount of
   gate noise breaks the estimate exactly there (the positions are returned).
3. :func:`helix_reuse` - a helix of fixed period grows with n (more turns): the plain
   construction needs more sentries and eventually cannot gate at all (a middle turn lies
   between its neighbours), while the helix variant (gates on f' = A f + c, which is
   periodic) reuses one period's sentries at every n.

>>> from poslens.analyses.twisted_pair.curves import make_curve
>>> from poslens.analyses.twisted_pair.build import build
>>> r = noise_cancellation(build(make_curve("helix"), n=128, M=8, k=4), sigmas=(0.2,))
>>> r.rows[0].pair_rms < 1e-3 < r.rows[0].single_rms
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import InvalidInputError
from ...models.runner import Runner
from .build import Construction, build
from .curves import curve_stats, make_curve
from .verify import run_estimates, verify


@dataclass(frozen=True)
class NoiseRow:
    """One noise level: excess error (estimate minus the noise-free estimate, positions) of the pair
    readout, a single-neuron readout and the pair under independent (differential) noise of the same
    power; ``gate_flips`` the share of pairs where some gate switched."""

    sigma: float
    sigma_input_units: float
    pair_rms: float
    pair_max: float
    single_rms: float
    single_max: float
    differential_rms: float
    pair_error_vs_truth_max: float
    gate_flips: float


@dataclass(frozen=True)
class NoiseCancellation:
    """Common-mode noise on the gate inputs, ``sigma`` in units of ``sigma_unit``."""

    sigma_unit: str
    median_gate_margin: float
    n_pairs: int
    noise_subspace: str
    rows: list[NoiseRow]


@dataclass(frozen=True)
class CrossingRow:
    """The loop curve with its branches ``gap`` apart: the gate margins at the crossing against the
    others, and where a fixed gate noise pushes estimates outside the bound (``failure_positions``,
    t = i / n; ``failures_near_crossing`` the share within two sentry spacings of t1 or t2)."""

    gap: float
    closest_distance: float
    t1: float
    t2: float
    min_gate_margin: float
    min_margin_at: float
    median_gate_margin: float
    assumptions_hold: bool
    crossing_sentries: list[int]
    crossing_margin: float
    other_margin_median: float
    other_margin_min: float
    clean_within_bound: bool
    clean_max_error: float
    noise_input_units: float
    noisy_outside_bound: float
    failure_positions: list[float]
    failures_near_crossing: float | None


@dataclass(frozen=True)
class NearIntersection:
    curve: str
    n: int
    M: int
    k: int
    noise_fraction_of_reference_margin: float
    rows: list[CrossingRow]


@dataclass(frozen=True)
class SentryNeed:
    """The fewest sentries that gate every cell and keep every error under the tolerance."""

    M: int
    n_sentries: int
    n_neurons: int
    max_error: float
    max_bound: float


@dataclass(frozen=True)
class VariantNeed:
    needed: SentryNeed | None  # None: no M tried was enough
    any_feasible: bool


@dataclass(frozen=True)
class FixedHelix:
    """The helix variant at its fixed per-period ``M``."""

    M: int
    feasible: bool
    max_error: float
    max_bound: float
    within_bound: bool


@dataclass(frozen=True)
class ReuseRow:
    n: int
    turns: float
    plain: VariantNeed
    helix: VariantNeed
    helix_fixed: FixedHelix


@dataclass(frozen=True)
class HelixReuse:
    """Sentries needed as a helix of ``period_points`` positions per turn grows with n."""

    period_points: int
    pitch: float
    k: int
    tol: float
    M_helix: int
    rows: list[ReuseRow]


def _gate_dims(con: Construction) -> list[int]:
    return con.layout["S"] if con.variant == "plain" else con.layout["Y"]


def _pair_subset(con: Construction, max_pairs: int, seed: int):
    tokens, i, j = con.pair_tokens()
    if len(i) > max_pairs:
        pick = np.sort(np.random.default_rng(seed).choice(len(i), max_pairs, replace=False))
        tokens, i, j = tokens[pick], i[pick], j[pick]
    return tokens, i, j


def _gate_noise_edit(con: Construction, noise: torch.Tensor):
    dims = torch.as_tensor(_gate_dims(con))

    def edit(resid, hook):
        resid[:, 1, dims] += noise[hook.batch].to(resid.dtype)
        return resid

    return {"blocks.0.hook_resid_mid": edit}


def noise_cancellation(con: Construction, sigmas: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6), *,
                       max_pairs: int = 4000, seed: int = 0, dtype: str = "float64", device: str = "cpu") -> NoiseCancellation:
    """Pair readout vs single-neuron readout under the same common-mode noise on the gate inputs.

    ``sigmas`` are noise standard deviations in units of the median gate margin (the
    distance a gate input may move before its gate can flip); 1 means typical noise of
    that size. Errors are "excess" errors: estimate minus the noise-free estimate.
    """
    runner = Runner(con.weights, device=device, dtype=dtype)
    tokens, i, j = _pair_subset(con, max_pairs, seed)
    n_s = con.n_sentries
    clean, acts = run_estimates(con, tokens, runner=runner, hooks=["blocks.0.mlp.hook_post"])
    active_clean = acts["blocks.0.mlp.hook_post"][:, 1] > 0
    # the single neuron's reference: N+ with no signal (j = i) and no noise
    ref_tokens = torch.stack([tokens[:, 1], tokens[:, 1]], 1)
    _, ref = run_estimates(con, ref_tokens, runner=runner, hooks=["blocks.0.mlp.hook_post"])
    ref_plus = ref["blocks.0.mlp.hook_post"][:, 1, 0::2].double().numpy()
    w_plus = con.C / con.b3  # single readout: C_m / b3_m (N+ - N+_ref)
    scale = float(np.median(con.gate_margin[np.isfinite(con.gate_margin)]))
    W_in = con.weights.get("blocks.0.mlp.W_in")[_gate_dims(con)].double()  # [d, 2 n_s]
    per_neuron = W_in.norm(dim=0).numpy()  # std of the common-mode noise each neuron sees, per unit sigma
    rng = np.random.default_rng(seed + 1)
    rows = []
    truth = (j - i).astype(np.float64)
    for s in sigmas:
        sd = float(s) * scale
        xi = torch.as_tensor(rng.normal(size=(len(i), len(_gate_dims(con)))) * sd)
        est, a = run_estimates(con, tokens, runner=runner, edits=_gate_noise_edit(con, xi),
                               hooks=["blocks.0.mlp.hook_post"])
        post = a["blocks.0.mlp.hook_post"][:, 1].double().numpy()
        single = (post[:, 0::2] - ref_plus) @ w_plus
        flips = (torch.as_tensor(post) > 0) != active_clean
        eta = torch.as_tensor(rng.normal(size=(len(i), 2 * n_s)) * sd * per_neuron)

        def diff_edit(pre, hook, eta=eta):
            pre[:, 1] += eta[hook.batch].to(pre.dtype)
            return pre

        diff, _ = run_estimates(con, tokens, runner=runner, edits={"blocks.0.mlp.hook_pre": diff_edit})
        rows.append(NoiseRow(
            sigma=float(s), sigma_input_units=sd,
            pair_rms=float(np.sqrt(np.mean((est - clean) ** 2))), pair_max=float(np.abs(est - clean).max()),
            single_rms=float(np.sqrt(np.mean((single - clean) ** 2))), single_max=float(np.abs(single - clean).max()),
            differential_rms=float(np.sqrt(np.mean((diff - clean) ** 2))),
            pair_error_vs_truth_max=float(np.abs(est - truth).max()), gate_flips=float(flips.any(1).double().mean()),
        ))
    return NoiseCancellation(sigma_unit="median gate margin", median_gate_margin=scale, n_pairs=int(len(i)),
                             noise_subspace="S" if con.variant == "plain" else "Y", rows=rows)


def near_intersection(gaps: Sequence[float] = (0.1, 1e-2, 1e-3, 1e-4, 1e-5), *, n: int = 512, M: int = 32,
                      k: int = 8, noise: float = 0.1, max_pairs: int = 6000, seed: int = 0, dtype: str = "float64",
                      device: str = "cpu") -> NearIntersection:
    """The loop curve with its crossing lifted ``gap`` apart: margins, errors and where they happen.

    ``noise`` is a gate-input noise level (input units) fixed across gaps, given as a fraction
    of the median gate margin of the widest gap; pairs whose estimate leaves the bound under
    it are located (their t = i / n) and compared with the crossing parameters t1, t2.
    """
    rows, ref_margin = [], None
    rng = np.random.default_rng(seed)
    for g in sorted(gaps, reverse=True):
        con = build(make_curve("loop", gap=float(g)), n, M, k, strict=False)
        v = verify(con, dtype=dtype, device=device, detail=False)
        if ref_margin is None:
            ref_margin = float(np.median(con.gate_margin))
        sd = noise * ref_margin
        tokens, i, j = _pair_subset(con, max_pairs, seed)
        xi = torch.as_tensor(rng.normal(size=(len(i), len(_gate_dims(con)))) * sd)
        est, _ = run_estimates(con, tokens, dtype=dtype, device=device, edits=_gate_noise_edit(con, xi))
        bad = np.abs(est - (j - i)) > con.bound(i, j) + 1e-3
        ca = con.stats.closest_approach
        m_lo = int(np.argmin(con.gate_margin))
        at_cross = sorted({int(con.cell[int(round(ca.t1 * n))]), int(con.cell[int(round(ca.t2 * n))])})
        others = np.delete(con.gate_margin, at_cross)
        t_bad = np.unique(i[bad]) / n
        near = [t for t in t_bad if min(abs(t - ca.t1), abs(t - ca.t2)) <= 2.0 / M]
        rows.append(CrossingRow(
            gap=float(g), closest_distance=float(ca.distance), t1=float(ca.t1), t2=float(ca.t2),
            min_gate_margin=float(con.gate_margin.min()), min_margin_at=float(con.t_sentries[m_lo]),
            median_gate_margin=float(np.median(con.gate_margin)), assumptions_hold=bool(con.feasible),
            crossing_sentries=at_cross, crossing_margin=float(con.gate_margin[at_cross].min()),
            other_margin_median=float(np.median(others)), other_margin_min=float(others.min()),
            clean_within_bound=v.within_bound, clean_max_error=v.max_error,
            noise_input_units=sd, noisy_outside_bound=float(bad.mean()),
            failure_positions=[float(t) for t in t_bad[:200]],
            failures_near_crossing=float(len(near) / len(t_bad)) if len(t_bad) else None,
        ))
    return NearIntersection(curve="loop", n=n, M=M, k=k, noise_fraction_of_reference_margin=noise, rows=rows)


def helix_reuse(ns: Sequence[int] = (64, 128, 192, 256, 512, 1024), *, period_points: int = 128, pitch: float = 1.0,
                k: int = 8, M_helix: int = 8, Ms_plain: Sequence[int] = (4, 8, 16, 32, 64, 128, 256),
                tol: float = 0.5, dtype: str = "float64", device: str = "cpu") -> HelixReuse:
    """Sentries needed for |error| < ``tol`` as a helix of fixed period (in positions) grows with n.

    The curve is x_i = (cos 2 pi i / P, sin 2 pi i / P, pitch i / P): in t = i / n it is a helix
    with n / P turns. For each n: the fewest plain sentries (from ``Ms_plain``) that gate
    every cell and keep every error under ``tol``, and the same for the helix variant,
    whose M counts sentries on one period of f' (reused on every turn).
    """
    rows = []
    for n in ns:
        turns = n / period_points
        curve = make_curve("helix", radius=1.0, turns=turns, drift=pitch * turns)
        stats = curve_stats(curve, n)
        need_by: dict[str, VariantNeed] = {}
        for variant, Ms in (("plain", [m for m in Ms_plain if m + 1 < n]),
                            ("helix", [m for m in sorted({*Ms_plain, M_helix}) if m <= period_points])):
            need, any_ok = None, False
            for M in Ms:
                try:  # strict: an infeasible build stops at its first ungateable sentry
                    con = build(curve, n, M, k, variant=variant, stats=stats)
                except InvalidInputError:
                    continue
                any_ok = True
                v = verify(con, dtype=dtype, device=device, detail=False)
                if v.max_error < tol:
                    need = SentryNeed(M=M, n_sentries=con.n_sentries, n_neurons=int(con.cfg.d_mlp),
                                      max_error=v.max_error, max_bound=v.max_bound)
                    break
            need_by[variant] = VariantNeed(needed=need, any_feasible=any_ok)
        con = build(curve, n, M_helix, k, variant="helix", strict=False, stats=stats)
        v = verify(con, dtype=dtype, device=device, detail=False)
        fixed = FixedHelix(M=M_helix, feasible=bool(con.feasible), max_error=v.max_error, max_bound=v.max_bound,
                           within_bound=v.within_bound)
        rows.append(ReuseRow(n=int(n), turns=float(turns), plain=need_by["plain"], helix=need_by["helix"],
                             helix_fixed=fixed))
    return HelixReuse(period_points=period_points, pitch=pitch, k=k, tol=tol, M_helix=M_helix, rows=rows)
