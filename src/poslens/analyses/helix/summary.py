"""What a helix result means, in a few lines, and its figures (one model, several, or a sweep).

>>> print("\\n".join(summarize(helix("tiny"))))   # doctest: +SKIP
"""

from __future__ import annotations

from .family import HelixFamilyResult, HelixSweepResult, family_summary


def summarize(result) -> list[str]:
    """A few lines saying what the numbers mean (for the CLI and the report page)."""
    if isinstance(result, (HelixFamilyResult, HelixSweepResult)):
        return family_summary(result)
    r = result
    p0, p1 = r.positions[0], r.positions[-1]
    k3 = min(3, len(r.cumulative))
    lines = [
        f"PCA of W_pos, positions {p0}-{p1} ({'centred' if r.centred else 'raw'}): top-{k3} components hold "
        f"{r.cumulative[k3 - 1]:.1%} of the variance ({', '.join(f'{v:.3f}' for v in r.variance_explained[:3])}); "
        f"{r.components_for_90} component{' reaches' if r.components_for_90 == 1 else 's reach'} 90%",
    ]
    for name, label in (("late", "from position {lo}"), ("early", "positions {lo}-{hi}")):
        t = r.truncations.get(name)
        if t:
            lo, hi = t.range
            kk = min(3, len(t.cumulative))
            lines.append(f"  {label.format(lo=lo, hi=hi - 1)}: {t.cumulative[kk - 1]:.1%} in {kk} components")
    if r.helix:
        h = r.helix
        lines.append(f"helix fit on the top {len(h.cos)} components: period {h.period:.1f} positions "
                     f"({h.turns:.2f} turns), radius {h.radius:.3g}, pitch {h.pitch:.3g}, R² {h.r2:.3f}"
                     + ("; less than one turn, so the curve is an arc and its period an extrapolation"
                        if h.turns < 1 else ""))
    if r.ode:
        sm = r.ode_smoothed
        lines.append(f"f'(t) ≈ A f(t) + c on the top {len(r.ode.A)} components: "
                     f"R² {r.ode.r2:.3f} (central differences)"
                     + (f", {sm.r2:.3f} (Savitzky-Golay, window {sm.window})" if sm else "")
                     + (f"; implied period {r.ode.periods[0]:.1f}" if r.ode.periods else ""))
    c = r.cosine
    lines.append(f"cosine between rows: adjacent {c.adjacent_mean:.3f}; by offset dips to {c.min_value:.2f} at "
                 f"{c.min_offset} and rises again at {c.period}" if c.period is not None else
                 f"cosine between rows: adjacent {c.adjacent_mean:.3f}; no periodic rise by offset")
    if r.short_period:
        lines.append(f"{r.short_period.share:.2%} of the variance lies at periods of at most "
                     f"{r.short_period.period:g} positions (what separates neighbours; GPT-2 small measures 0.15% "
                     "here, a reference of ours, not a published figure)")
    n = r.norms.W_pos
    lines.append(f"W_pos row norms: mean {n.mean:.4f}, std {n.std:.4f}, min {n.min:.4f} (position {n.argmin}), "
                 f"max {n.max:.4f} (position {n.argmax})")
    if r.norms.W_E is not None:
        e = r.norms.W_E
        lines.append(f"W_E row norms: mean {e.mean:.4f}, std {e.std:.4f}, min {e.min:.4f}, max {e.max:.4f}")
    fl = r.outliers.flagged
    if fl:
        # "isolated positions: 0 (12x)" read as a count of zero; name them as positions.
        lines.append(f"isolated position{'s' if len(fl) > 1 else ''} (nearest other row at least "
                     f"{r.outliers.threshold:g}x the median nearest distance): "
                     + ", ".join(f"position {o.position} ({o.isolation:.0f}x)" for o in fl[:6]))
    if r.fray and r.fray.fray_end:
        lines.append(f"early positions leave the late top-3 subspace until about position {r.fray.fray_end}")
    if r.token_position:
        tp = r.token_position
        lines.append(f"W_E: {tp.subspace_share:.4f} of its variance in W_pos's top-{tp.k} subspace "
                     f"(chance {tp.chance:.4f}); "
                     f"mean cos(token, position) {tp.mean_cosine:.4f}, mean |cos| {tp.mean_abs_cosine:.4f}")
    if r.sinusoidal:
        s = r.sinusoidal
        lines.append(f"sinusoidal encoding of the same shape: {s.cumulative[k3 - 1]:.1%} in {k3} components, "
                     f"{s.components_for_90} components for 90%, row norm {s.norms.mean:.4f}")
    bad = [c for c in r.checks if not c.reproduced]
    if r.checks:
        lines.append(f"published figures: {len(r.checks) - len(bad)} of {len(r.checks)} reproduced"
                     + ("; not: " + "; ".join(f"{c.what} (published {c.published}, ours {c.ours})"
                                               for c in bad) if bad else ""))
    return lines + [x for x in r.notes if not x.startswith("position 0")]
