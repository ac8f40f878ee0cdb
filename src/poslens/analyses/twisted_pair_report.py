"""Published-vs-ours checks, plain-language findings and summary lines of a twisted-pair result.

Each check compares one claim of seed 000 with what the measurements say; the thresholds
that turn a number into "reproduced" are fixed here, before looking at any model, and
written into the check's note.

>>> from poslens.analyses.twisted_pair import twisted_pair
>>> r = twisted_pair(n=64, M=4, k=2, sweep_M=(), sweep_n=(), sweep_k=(), claims=False)
>>> [c["reproduced"] for c in r.checks]
[True]
"""

from __future__ import annotations

import numpy as np

ODE_R2_MIN = 0.9  # "W_pos lies near a helix, so f' ~ W f + c": the fit must explain 90% and beat chance
HEAD_COS_MIN = 0.5  # a head "computes f'" when its OV output points along f'(i) with mean cosine >= 0.5


def _check(what, published, ours, reproduced, note=""):
    return {"what": what, "published": published, "ours": ours, "reproduced": bool(reproduced), "note": note}


def _bound_check(r) -> dict:
    v, c = r.verification, r.construction
    held = [g for g in r.grid if g.get("assumptions_hold") and "within_bound" in g]
    ok_grid = all(g["within_bound"] for g in held)
    failed = [g for g in r.grid if "within_bound" in g and not g.get("assumptions_hold")]
    ours = (f"{c['curve']['name']} n={c['n']} M={c['M']} k={c['k']}: max error {v['max_error']:.3g} vs bound up to "
            f"{v['max_bound']:.3g} (worst error/bound {v['worst_ratio']:.2f}), {v['n_outside_bound']} of "
            f"{v['n_pairs']} pairs outside")
    if r.grid:
        ours += f"; grid: {sum(g['within_bound'] for g in held)} of {len(held)} (curve, n, k, M) inside"
    note = (f"runner vs exact arithmetic {v['runner_vs_exact']:.1e} positions (float64), float32 max error "
            f"{r.float32.get('max_error', float('nan')):.3g}")
    if failed:
        note += f"; {len(failed)} grid combinations could not gate every sentry (assumptions fail) and are not counted"
    return _check("estimate of j - i within n L (1/(2M) + |i-j|/n) |i-j|/n / |f'(s)|",
                  "holds for every pair with |i - j| <= k when f is C^2 and the sentries can be gated",
                  ours, v["within_bound"] and v["assumptions_hold"] and ok_grid, note)


def _noise_checks(r) -> list[dict]:
    rows = r.noise.get("rows", [])
    quiet = [x for x in rows if x["sigma"] > 0 and x["gate_flips"] == 0]
    out = []
    if quiet:
        x = quiet[-1]
        ok = x["pair_rms"] <= 1e-6 * max(1, r.construction["k"]) and x["single_rms"] >= 100 * max(x["pair_rms"], 1e-9)
        out.append(_check(
            "common-mode noise on the gate term cancels in N+ - N-",
            "the f(s_m).x_i term can be noisy; the common noise cancels, as in twisted-pair cabling",
            f"noise sigma {x['sigma']} x median gate margin, no gate flipped: pair error rms {x['pair_rms']:.1e}, "
            f"single-neuron readout {x['single_rms']:.3g}, same power as independent noise {x['differential_rms']:.3g} "
            "positions", ok,
            "single readout = C_m/b_m3 (N+ - N+ at j = i, noise-free); the independent-noise control shows the "
            "cancellation is specific to common-mode noise"))
    flips = [x for x in rows if x["gate_flips"] > 0]
    if flips:
        x = flips[0]
        out.append(_check(
            "noise at the transitions between sentries still breaks the estimate",
            "there can still be issues caused by noise at the transitions between sentries",
            f"from sigma {x['sigma']}: {100 * x['gate_flips']:.2g}% of pairs flip a gate, pair error rms "
            f"{x['pair_rms']:.3g} (max {x['pair_max']:.3g}) positions", x["pair_rms"] > 1e-6,
            "a flipped gate switches a whole pair on or off, which no pairing cancels"))
    return out


def _near_check(r) -> dict | None:
    rows = r.near_intersection.get("rows", [])
    if len(rows) < 2:
        return None
    big, small = rows[0], rows[-1]
    margins = [x["crossing_margin"] for x in rows]
    mono = all(a >= b for a, b in zip(margins, margins[1:]))
    near = small.get("failures_near_crossing")
    ok = mono and small["crossing_margin"] < small["other_margin_min"] and (near or 0) >= 0.9
    return _check(
        "the construction is not robust to f (nearly) intersecting itself",
        "setting up the sentries relies on f not coming close to intersecting itself",
        f"loop with gap {big['gap']:g} -> {small['gap']:g}: gate margin at the crossing {big['crossing_margin']:.2g} -> "
        f"{small['crossing_margin']:.2g} (elsewhere >= {small['other_margin_min']:.2g}); under fixed gate noise "
        f"{100 * small['noisy_outside_bound']:.2g}% of pairs leave the bound, "
        f"{100 * (near or 0):.0f}% of them within 2/M of the crossing t = {small['t1']:.3f}, {small['t2']:.3f}",
        ok, "exact arithmetic still works at any gap > 0; gap 0 is rejected as not injective")


def _reuse_check(r) -> dict | None:
    rows = r.helix_reuse.get("rows", [])
    if len(rows) < 2:
        return None
    P = r.helix_reuse["period_points"]
    plain = [x["plain"]["needed"]["M"] if x["plain"]["needed"] else None for x in rows]
    helix = [x["helix"]["needed"]["M"] if x["helix"]["needed"] else None for x in rows if x["n"] >= P]
    grows = plain[-1] is None or (plain[0] is not None and plain[-1] > plain[0])
    steady = bool(helix) and None not in helix and len(set(helix)) == 1
    show = ", ".join(f"n={x['n']}: {p if p is not None else 'none'}" for x, p in zip(rows, plain))
    return _check(
        "plain sentries must grow with n; the helix variant reuses them",
        "the number of sentries grows with n; on a helix f' is periodic, so sentries are reused across distant positions",
        f"helix of period {P} positions, error < {r.helix_reuse['tol']}: plain M needed {show}; helix variant "
        f"M = {helix[0] if helix else 'none'} per period at every n >= {P}", grows and steady,
        "plain 'none' = no M tried can gate every cell: from two turns on, a middle turn's points lie between their "
        "neighbours one turn up and down, so no linear gate isolates them")


def _gpt2_checks(r) -> list[dict]:
    g = r.gpt2
    if not g:
        return []
    o = g["ode"]
    out = [_check(
        "W_pos lies near a helix, so f' ~ W f + c",
        "GPT-2's positional embeddings lie on a helix (up to approximation), which gives f' = W f + c",
        f"{r.model}: R^2 {o['r2']:.3f} ({o['scheme']}, top {o['n_components']} PCs, {100 * o['variance_explained']:.1f}% "
        f"of variance; raw central differences {o['r2_central']:.3f}); phase-randomised surrogates up to "
        f"{o['surrogate_r2_max']:.3f}", o["r2"] >= ODE_R2_MIN and o["r2"] > (o["surrogate_r2_max"] or 0),
        f"reproduced = R^2 >= {ODE_R2_MIN} and above every surrogate (same power spectrum per component, coupling destroyed)")]
    if g.get("heads"):
        best = g["heads"][0]
        l0 = [h for h in g["heads"] if h["layer"] == 0]
        enc = np.mean([h["readout_r2"] >= 0.9 for h in g["heads"]])
        out.append(_check(
            "an attention head computes f'(i) = W x_i + c",
            "f'(i/n) = W x_i + c can be computed by an attention head applying a linear transformation",
            f"best head {best['head']}: mean cos(OV x_i, f'(i)) {best['mean_cos']:.2f} (shuffled {best['shuffled_cos']:.2f})"
            + (f", best in layer 0 {l0[0]['head']} {l0[0]['mean_cos']:.2f}" if l0 else "")
            + f"; the fitted map itself reaches {g['ideal_cos']:.2f}",
            abs(best["mean_cos"]) >= HEAD_COS_MIN,
            f"reproduced = some head's OV output points along f' with |mean cos| >= {HEAD_COS_MIN}. In any basis f' can "
            f"be read linearly from {100 * enc:.0f}% of heads' outputs (R^2 >= 0.9), so the weights alone do not single "
            "out a derivative head"))
    n = g.get("neurons", {})
    if "candidates" in n:
        best = n["candidates"][0] if n["candidates"] else None
        desc = "none scanned" if best is None else (
            f"best pair {best['neurons']}: cos(in) {best['cos_in']:.2f}, cos(out) {best['cos_out']:.2f}, input "
            f"difference {best['frac_diff_vs_chance']:.1f}x chance in the x_j - x_i subspace")
        out.append(_check(
            "layer-0 neurons form twisted pairs", "GPT-2 seems to use a similar mechanism (neuron pairs in the MLP)",
            f"{n['n_twisted']} of {n['n_candidates_scanned']} top pairs pass all three thresholds; {desc}",
            n["n_twisted"] > 0, f"thresholds {n['thresholds']}"))
    return out


def checks_and_findings(r) -> tuple[list[dict], list[str]]:
    """The result's ``checks`` (published vs ours) and ``findings`` (sentences, negatives included)."""
    checks = [_bound_check(r), *_noise_checks(r)]
    for c in (_near_check(r), _reuse_check(r)):
        if c:
            checks.append(c)
    checks += _gpt2_checks(r)
    findings = []
    c = r.construction
    findings.append(
        f"The post's literal gate direction f(s_m) isolates {c['dot_gate_ok']} of {c['n_sentries']} sentry cells on "
        f"this {c['curve']['name']}; the tuned gates isolate {c['n_sentries'] - c['n_gates_failed']}.")
    g = r.gpt2
    if g:
        n = g.get("neurons", {})
        if "skipped" in n:
            findings.append(f"Neuron-pair search not run on {r.model}: {n['skipped']}")
        elif n.get("n_twisted") == 0:
            findings.append(f"No twisted pair in layer {n['layer']} of {r.model} (negative result): no pair has "
                            "near-identical inputs, opposite outputs and an input difference along x_j - x_i.")
    return checks, findings


def summary_lines(r) -> list[str]:
    v, c = r.verification, r.construction
    lines = [
        f"construction ({c['variant']}, {c['curve']['name']}, n={c['n']}, M={c['M']}, k={c['k']}): {c['n_neurons']} "
        f"neurons, d_model {c['d_model']}; {v['n_pairs']} pairs, max |error| {v['max_error']:.3g} positions vs bound "
        f"{v['max_bound']:.3g}; {'all inside the bound' if v['within_bound'] else str(v['n_outside_bound']) + ' outside'}",
    ]
    for ch in r.checks:
        lines.append(f"[{'reproduced' if ch['reproduced'] else 'NOT reproduced'}] {ch['what']}: {ch['ours']}")
    lines += r.findings
    return lines
