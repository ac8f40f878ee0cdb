"""Published claims of the twisted-pair post (a hand-built transformer that reads the distance
between two positions): its error bound, noise cancellation, where it fails, helix reuse,
and its claims about GPT-2 (W_pos near a helix so f'(t) = A f(t) + c, a head computing f',
neuron pairs in layer 0).

:func:`twisted_pair_rows` gives a twisted-pair result's published-vs-ours rows; the
thresholds that turn a number into "reproduced" are fixed here, before looking at any
model, and written into each row's note. :func:`helix_rows` gives the linear-ODE row a
helix result of GPT-2 small carries.

>>> rows = twisted_pair_rows(result)        # doctest: +SKIP
>>> rows = helix_rows(helix_result_dict)    # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from . import Claim
from .rows import ClaimRow, row

STUDY = "the twisted-pair post"

LINEAR_ODE = Claim("twisted_pair.linear_ode", STUDY, "the GPT-2 remark", "f'(t) = A f(t) + c on the top-3 components "
                   "of W_pos, up to approximation", "ode_smoothed.r2", 0.8, relation="above", applies_to="gpt2-small")
CLAIMS = (LINEAR_ODE,)


def _row(what, published, ours, reproduced, note="") -> ClaimRow:
    return ClaimRow(what=what, published=published, ours=ours, reproduced=bool(reproduced), note=note, study=STUDY)


ODE_R2_MIN = 0.9  # "W_pos lies near a helix, so f' ~ W f + c": the fit must explain 90% and beat chance
HEAD_COS_MIN = 0.5  # a head "computes f'" when its OV output points along f'(i) with mean cosine >= 0.5


def _bound_row(r) -> ClaimRow:
    v, c = r.verification, r.construction
    held = [g for g in r.grid if g.assumptions_hold and g.within_bound is not None]
    ok_grid = all(g.within_bound for g in held)
    failed = [g for g in r.grid if g.within_bound is not None and not g.assumptions_hold]
    ours = (f"{c.curve.name} n={c.n} M={c.M} k={c.k}: max error {v.max_error:.3g} vs bound up to "
            f"{v.max_bound:.3g} (worst error/bound {v.worst_ratio:.2f}), {v.n_outside_bound} of "
            f"{v.n_pairs} pairs outside")
    if r.grid:
        ours += f"; grid: {sum(g.within_bound for g in held)} of {len(held)} (curve, n, k, M) inside"
    note = (f"runner vs exact arithmetic {v.runner_vs_exact:.1e} positions (float64), float32 max error "
            f"{r.float32.max_error if r.float32 else float('nan'):.3g}")
    if failed:
        note += f"; {len(failed)} grid combinations could not gate every sentry (assumptions fail) and are not counted"
    return _row("estimate of j - i within n L (1/(2M) + |i-j|/n) |i-j|/n / |f'(s)|",
                  "holds for every pair with |i - j| <= k when f is C^2 and the sentries can be gated",
                  ours, v.within_bound and v.assumptions_hold and ok_grid, note)


def _noise_checks(r) -> list[ClaimRow]:
    rows = r.noise.rows if r.noise else []
    quiet = [x for x in rows if x.sigma > 0 and x.gate_flips == 0]
    out = []
    if quiet:
        x = quiet[-1]
        ok = x.pair_rms <= 1e-6 * max(1, r.construction.k) and x.single_rms >= 100 * max(x.pair_rms, 1e-9)
        out.append(_row(
            "common-mode noise on the gate term cancels in N+ - N-",
            "the f(s_m).x_i term can be noisy; the common noise cancels, as in twisted-pair cabling",
            f"noise sigma {x.sigma} x median gate margin, no gate flipped: pair error rms {x.pair_rms:.1e}, "
            f"single-neuron readout {x.single_rms:.3g}, same power as independent noise {x.differential_rms:.3g} "
            "positions", ok,
            "single readout = C_m/b_m3 (N+ - N+ at j = i, noise-free); the independent-noise control shows the "
            "cancellation is specific to common-mode noise"))
    flips = [x for x in rows if x.gate_flips > 0]
    if flips:
        x = flips[0]
        out.append(_row(
            "noise at the transitions between sentries still breaks the estimate",
            "there can still be issues caused by noise at the transitions between sentries",
            f"from sigma {x.sigma}: {100 * x.gate_flips:.2g}% of pairs flip a gate, pair error rms "
            f"{x.pair_rms:.3g} (max {x.pair_max:.3g}) positions", x.pair_rms > 1e-6,
            "a flipped gate switches a whole pair on or off, which no pairing cancels"))
    return out


def _near_row(r) -> ClaimRow | None:
    rows = r.near_intersection.rows if r.near_intersection else []
    if len(rows) < 2:
        return None
    big, small = rows[0], rows[-1]
    margins = [x.crossing_margin for x in rows]
    mono = all(a >= b for a, b in zip(margins, margins[1:]))
    near = small.failures_near_crossing
    ok = mono and small.crossing_margin < small.other_margin_min and (near or 0) >= 0.9
    return _row(
        "the construction is not robust to f (nearly) intersecting itself",
        "setting up the sentries relies on f not coming close to intersecting itself",
        f"loop with gap {big.gap:g} -> {small.gap:g}: gate margin at the crossing {big.crossing_margin:.2g} -> "
        f"{small.crossing_margin:.2g} (elsewhere >= {small.other_margin_min:.2g}); under fixed gate noise "
        f"{100 * small.noisy_outside_bound:.2g}% of pairs leave the bound, "
        f"{100 * (near or 0):.0f}% of them within 2/M of the crossing t = {small.t1:.3f}, {small.t2:.3f}",
        ok, "exact arithmetic still works at any gap > 0; gap 0 is rejected as not injective")


def _reuse_row(r) -> ClaimRow | None:
    rows = r.helix_reuse.rows if r.helix_reuse else []
    if len(rows) < 2:
        return None
    P = r.helix_reuse.period_points
    plain = [x.plain.needed.M if x.plain.needed else None for x in rows]
    helix = [x.helix.needed.M if x.helix.needed else None for x in rows if x.n >= P]
    grows = plain[-1] is None or (plain[0] is not None and plain[-1] > plain[0])
    steady = bool(helix) and None not in helix and len(set(helix)) == 1
    show = ", ".join(f"n={x.n}: {p if p is not None else 'none'}" for x, p in zip(rows, plain))
    return _row(
        "plain sentries must grow with n; the helix variant reuses them",
        "the number of sentries grows with n; on a helix f' is periodic, so sentries are reused across distant positions",
        f"helix of period {P} positions, error < {r.helix_reuse.tol}: plain M needed {show}; helix variant "
        f"M = {helix[0] if helix else 'none'} per period at every n >= {P}", grows and steady,
        "plain 'none' = no M tried can gate every cell: from two turns on, a middle turn's points lie between their "
        "neighbours one turn up and down, so no linear gate isolates them")


def _scheme(o) -> str:
    """How f' was estimated, in the helix section's words, so the two sections' fits can be told apart."""
    return f"Savitzky-Golay, window {o.window}" if o.scheme == "savgol" else f"{o.scheme} differences"


def _gpt2_checks(r) -> list[ClaimRow]:
    g = r.gpt2
    if not g:
        return []
    o = g.ode
    out = [_row(
        "W_pos lies near a helix, so f' ~ W f + c",
        "GPT-2's positional embeddings lie on a helix (up to approximation), which gives f' = W f + c",
        f"{r.model}: R² {o.r2:.3f} ({_scheme(o)}, top {o.n_components} PCs, {100 * o.variance_explained:.1f}% "
        f"of variance; raw central differences {o.r2_central:.3f}); phase-randomised surrogates up to "
        f"{o.surrogate_r2_max:.3f}", o.r2 >= ODE_R2_MIN and o.r2 > (o.surrogate_r2_max or 0),
        f"reproduced = R² >= {ODE_R2_MIN} and above every surrogate (same power spectrum per component, coupling destroyed)")]
    if g.heads:
        best = g.heads[0]
        l0 = [h for h in g.heads if h.layer == 0]
        enc = np.mean([h.readout_r2 >= 0.9 for h in g.heads])
        out.append(_row(
            "an attention head computes f'(i) = W x_i + c",
            "f'(i/n) = W x_i + c can be computed by an attention head applying a linear transformation",
            f"best head {best.head}: mean cos(OV x_i, f'(i)) {best.mean_cos:.2f} (shuffled {best.shuffled_cos:.2f})"
            + (f", best in layer 0 {l0[0].head} {l0[0].mean_cos:.2f}" if l0 else "")
            + f"; the fitted map itself reaches {g.ideal_cos:.2f}",
            abs(best.mean_cos) >= HEAD_COS_MIN,
            f"reproduced = some head's OV output points along f' with |mean cos| >= {HEAD_COS_MIN}. In any basis f' can "
            f"be read linearly from {100 * enc:.0f}% of heads' outputs (R² >= 0.9), so the weights alone do not single "
            "out a derivative head"))
    n = g.neurons
    if n is not None:
        best = n.candidates[0] if n.candidates else None
        desc = "none scanned" if best is None else (
            f"best pair {best.neurons}: cos(in) {best.cos_in:.2f}, cos(out) {best.cos_out:.2f}, input "
            f"difference {best.frac_diff_vs_chance:.1f}x chance in the x_j - x_i subspace")
        out.append(_row(
            "layer-0 neurons form twisted pairs", "GPT-2 seems to use a similar mechanism (neuron pairs in the MLP)",
            f"{n.n_twisted} of {n.n_candidates_scanned} top pairs pass all three thresholds; {desc}",
            n.n_twisted > 0, "thresholds: " + ", ".join(f"{k} {v:.3g}" for k, v in n.thresholds.items())))
    return out


def twisted_pair_rows(r) -> list[ClaimRow]:
    """A twisted-pair result's rows: the bound, the noise, near self-intersection, helix reuse, GPT-2."""
    rows = [_bound_row(r), *_noise_checks(r)]
    rows += [c for c in (_near_row(r), _reuse_row(r)) if c]
    return rows + _gpt2_checks(r)


def helix_rows(r: dict) -> list[ClaimRow]:
    """The linear-ODE row for a helix result ``r`` of GPT-2 small (the caller decided it is)."""
    from ..analyses.helix.pca import fit_linear_ode

    od, sm = r["ode"], r["ode_smoothed"]
    if sm is None:
        return []
    late = (r["truncations"].get("late") or {}).get("ode")
    whole = fit_linear_ode(np.asarray(r["coords"])).r2  # every position, the outlying ends included
    return [row(
        LINEAR_ODE,
        f"R² {sm['r2']:.3f} with Savitzky-Golay derivatives (window {sm['window']}), {od['r2']:.3f} with central "
        f"differences, positions {od['range'][0]}-{od['range'][1] - 1}"
        + (f"; {late['r2']:.3f} (central) on positions {late['range'][0]}-{late['range'][1] - 1}" if late else ""),
        sm["r2"] >= LINEAR_ODE.published,
        "the isolated end positions are left out: with them the central-difference R² on positions "
        f"{r['positions'][0]}-{r['positions'][-1]} is {whole:.3f}, the jump into the last position swamping the fit; "
        "the early, fraying positions lower it too",
        published="holds approximately",
    )]
