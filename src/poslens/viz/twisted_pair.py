"""Figures of a twisted-pair result: PNG (matplotlib) and offline HTML (plotly), made from the result alone.

>>> from poslens.viz.twisted_pair import twisted_pair_figures     # doctest: +SKIP
>>> twisted_pair_figures(result, Path("out"))                     # doctest: +SKIP
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import SCENE_CAMERA, heatmap_png, log_ticks, pad3, plt, png_wanted, save_3d_png, save_plotly, save_png

_FLOOR = 1e-16  # log axes: exact zeros are drawn at this floor


def _power_of_ten(v: float) -> str:
    """``v`` as matplotlib labels a log axis: a power of ten as 10^k (mathtext), anything else plainly.

    >>> _power_of_ten(0.0001), _power_of_ten(0.003)
    ('$10^{-4}$', '0.003')
    """
    e = math.log10(v) if v > 0 else 0.5
    return f"$10^{{{round(e)}}}$" if abs(e - round(e)) < 1e-9 else f"{v:g}"


def _estimate(r, out: Path) -> list[Path]:
    s = r.verification.sample
    i, j, est, bnd = (np.asarray(v, float) for v in (s.i, s.j, s.estimate, s.bound))
    truth = j - i
    ratio = np.abs(est - truth) / np.where(bnd > 0, bnd, np.inf)
    lim = [truth.min() - 0.5, truth.max() + 0.5]
    paths = []
    if png_wanted():
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        sc = ax.scatter(truth + np.random.default_rng(0).uniform(-0.15, 0.15, len(truth)), est, c=ratio, s=6,
                        cmap="viridis", vmin=0, vmax=max(1.0, float(ratio.max())))
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set(xlabel="true j - i (jittered)", ylabel="estimate (Runner, hook_mlp_out . v)")
        c = r.construction
        ax.set_title(f"{c.curve.name} ({c.variant}), n={c.n}, M={c.M}, k={c.k}")
        fig.colorbar(sc, ax=ax, label="|error| / bound")
        paths.append(save_png(fig, out / "tp_estimate.png"))
    g = go.Figure(go.Scattergl(x=truth, y=est, mode="markers", marker={"color": ratio, "size": 4, "colorscale": "Viridis",
                                                                         "colorbar": {"title": "err/bound"}},
                               text=[f"i={a:.0f} j={b:.0f}" for a, b in zip(i, j)]))
    g.add_trace(go.Scatter(x=lim, y=lim, mode="lines", line={"dash": "dash", "color": "black"}, name="y = x"))
    g.update_layout(xaxis_title="true j - i", yaxis_title="estimate", title="Twisted-pair estimate vs truth",
                    showlegend=False)
    paths.append(save_plotly(g, out / "tp_estimate.html"))
    return paths


def _error_bound(r, out: Path) -> list[Path]:
    pd = r.verification.per_distance
    d = np.array([x.distance for x in pd])
    paths = []
    if png_wanted():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for key, style, label in (("max_error", "o-", "max |error|"), ("mean_error", ".-", "mean |error|"),
                                  ("max_bound", "k--", "bound (max over i)"),
                                  ("min_bound", "k:", "bound (min over i)")):
            a1.semilogy(d, np.maximum([getattr(x, key) for x in pd], _FLOOR), style, label=label)
        a1.set(xlabel="|i - j|", ylabel="positions")
        a1.legend(fontsize=8)
        a1.set_title("error and the post's bound by distance")
        pp = r.verification.per_position
        n = len(pp.max_error) - 1
        t = np.arange(n + 1) / n
        a2.semilogy(t, np.maximum(pp.max_error, _FLOOR), lw=0.8, label="max |error| over j")
        a2.semilogy(t, np.maximum(pp.max_bound, _FLOOR), "k", lw=0.8, alpha=0.6, label="bound")
        for s in r.construction.t_sentries:
            if 0 <= s <= 1:
                a2.axvline(s, color="tab:red", lw=0.3, alpha=0.5)
        a2.set_xlabel("t = i / n (red: sentries)")
        a2.legend(fontsize=8)
        a2.set_title("along the curve")
        paths.append(save_png(fig, out / "tp_error_bound.png"))
    g = go.Figure()
    shown = []
    for key, name in (("max_error", "max |error|"), ("max_bound", "max bound"), ("min_bound", "min bound")):
        shown += [max(getattr(x, key), _FLOOR) for x in pd]
        g.add_trace(go.Scatter(x=d, y=shown[-len(pd):], mode="lines+markers", name=name))
    g.update_layout(yaxis_type="log", xaxis_title="|i - j|", yaxis_title="positions", title="Error vs bound")
    g.update_yaxes(**log_ticks(shown))
    paths.append(save_plotly(g, out / "tp_error_bound.html"))
    return paths


def _sweeps(r, out: Path) -> list[Path]:
    names = [k for k in ("M", "n", "k") if r.sweeps.get(k)]
    if not names:
        return []
    fields = (("max_error", "o-"), ("max_bound", "k--"))
    ylabel = "max |error|, bound (positions)"
    sweeps = {}  # per swept parameter: its rows with a result, their values, each field's values floored
    for key in names:
        rows = [x for x in r.sweeps[key] if x.max_error is not None]
        sweeps[key] = (rows, [getattr(row, key) for row in rows],
                       {f: [max(getattr(row, f), _FLOOR) for row in rows] for f, _ in fields})
    paths = []
    if png_wanted():
        fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), squeeze=False)
        for ax, key in zip(axes[0], names):
            rows, x, ys = sweeps[key]
            for field, style in fields:
                ax.loglog(x, ys[field], style, label=field.replace("_", " "))
            bad = [getattr(row, key) for row in rows if not row.within_bound]
            if bad:
                ax.plot(bad, [1] * len(bad), "rx", label="outside bound")
            ax.set_xticks(x, [str(v) for v in x])
            ax.minorticks_off()
            ax.set(xlabel=key, ylabel=ylabel)
            ax.legend(fontsize=8)
        paths.append(save_png(fig, out / "tp_sweeps.png"))
    g = make_subplots(rows=1, cols=len(names), subplot_titles=[f"sweep over {k}" for k in names])
    for col, key in enumerate(names, 1):
        x, ys = sweeps[key][1:]
        for field, _ in fields:
            g.add_trace(go.Scatter(x=x, y=ys[field], name=f"{key}: {field}", mode="lines+markers"), row=1, col=col)
        g.update_xaxes(type="log", title_text=key, **log_ticks(x), row=1, col=col)
        g.update_yaxes(type="log", title_text=ylabel, **log_ticks(list(ys.values())), row=1, col=col)
    g.update_layout(title="Error and bound as M, n and k vary", width=max(700, 300 * len(names)))  # panels and a legend: a full-width card
    paths.append(save_plotly(g, out / "tp_sweeps.html"))
    return paths


def _noise(r, out: Path) -> list[Path]:
    rows = [x for x in (r.noise.rows if r.noise else []) if x.sigma > 0]
    if not rows:
        return []
    s = [x.sigma for x in rows]
    curves = [(label, [max(getattr(x, key), _FLOOR) for x in rows]) for key, label in (
        ("pair_rms", "pair N+ - N- (common-mode noise)"), ("single_rms", "single neuron N+"),
        ("differential_rms", "pair, independent noise"))]
    paths = []
    if png_wanted():
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for label, y in curves:
            ax.loglog(s, y, "o-", label=label)
        flips = [x.sigma for x in rows if x.gate_flips > 0]
        if flips:
            ax.axvline(flips[0], color="grey", ls=":", label="gates start to flip")
        ax.set(xlabel=f"noise sigma ({r.noise.sigma_unit})", ylabel="rms excess error (positions)")
        ax.legend(fontsize=8)
        ax.set_title("common-mode noise cancels in the pair")
        paths.append(save_png(fig, out / "tp_noise.png"))
    g = go.Figure()
    for label, y in curves:
        g.add_trace(go.Scatter(x=s, y=y, name=label, mode="lines+markers"))
    g.update_layout(title="Common-mode noise cancels in the pair", xaxis_type="log", yaxis_type="log",
                    xaxis_title="sigma", yaxis_title="rms excess error")
    g.update_xaxes(**log_ticks(s))
    g.update_yaxes(**log_ticks([v for _, y in curves for v in y]))
    paths.append(save_plotly(g, out / "tp_noise.html"))
    return paths


def _near(r, out: Path) -> list[Path]:
    rows = r.near_intersection.rows if r.near_intersection else []
    if not rows:
        return []
    gap = [x.gap for x in rows]
    margins = (("crossing_margin", "gate margin at the crossing", "o-", "circle", "solid"),
               ("other_margin_min", "smallest margin elsewhere", "s--", "square", "dash"))
    xlabel = "t = i / n of pairs outside the bound under noise (lines: crossing)"
    band = [int(b) for b in np.argsort(np.argsort(gap, kind="stable"))]  # each row's band, smallest gap lowest
    paths = []
    if png_wanted():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for key, label, style, _, _ in margins:
            a1.loglog(gap, [getattr(x, key) for x in rows], style, label=label)
        a1.axhline(rows[0].noise_input_units, color="grey", ls=":", label="noise sigma")
        a1.set(xlabel="gap (the branches pass 2 gap apart)", ylabel="margin (input units)")
        a1.legend(fontsize=8)
        a1.set_title("loop curve: margins")
        for y, x in zip(band, rows):
            a2.plot(x.failure_positions, [y] * len(x.failure_positions), "r|", ms=10)
            if not len(x.failure_positions):
                a2.text(0.5, y, "none outside the bound", ha="center", va="center", color="grey", fontsize=8)
        a2.axvline(rows[-1].t1, color="k", lw=0.6)
        a2.axvline(rows[-1].t2, color="k", lw=0.6)
        # a band per gap, written as the left panel's log axis writes it (10^-4, not 0.0001); matplotlib's
        # own limits put the end rows on the frame, or a row without marks outside the axes
        a2.set_yticks(range(len(rows)), [_power_of_ten(g) for g in sorted(gap)])
        a2.set_ylim(-0.5, len(rows) - 0.5)
        a2.set_xlim(0, 1)
        a2.set(xlabel=xlabel, ylabel="gap")
        a2.set_title("pairs outside the bound under noise")
        paths.append(save_png(fig, out / "tp_near_intersection.png"))
    g = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                      subplot_titles=["loop curve: margins", "pairs outside the bound under noise"])
    for key, label, _, symbol, dash in margins:
        g.add_trace(go.Scatter(x=gap, y=[getattr(x, key) for x in rows], mode="lines+markers", name=label,
                               marker={"symbol": symbol}, line={"dash": dash}), row=1, col=1)
    noise = rows[0].noise_input_units
    g.add_trace(go.Scatter(x=[min(gap), max(gap)], y=[noise, noise], mode="lines", name="noise sigma",
                           line={"color": "grey", "dash": "dot"}), row=1, col=1)
    fx = [t for x in rows for t in x.failure_positions]
    fy = [y for y, x in zip(band, rows) for _ in x.failure_positions]
    g.add_trace(go.Scatter(x=fx, y=fy, mode="markers", name="outside the bound",
                           marker={"symbol": "line-ns-open", "size": 12, "color": "red", "line": {"width": 1.5}},
                           showlegend=False, hovertemplate="t=%{x:.3f}<extra></extra>"), row=1, col=2)
    for t in (rows[-1].t1, rows[-1].t2):
        g.add_vline(x=t, line={"color": "black", "width": 1}, row=1, col=2)
    for y, x in zip(band, rows):
        if not len(x.failure_positions):
            g.add_annotation(x=0.5, y=y, text="none outside the bound", showarrow=False, font={"color": "grey"},
                             row=1, col=2)
    g.update_xaxes(type="log", title_text="gap (the branches pass 2 gap apart)", **log_ticks(gap), row=1, col=1)
    g.update_yaxes(type="log", title_text="margin (input units)", row=1, col=1,
                   **log_ticks([getattr(x, k) for x in rows for k, *_ in margins] + [noise]))
    g.update_xaxes(range=[0, 1], title_text=xlabel, row=1, col=2)
    g.update_yaxes(tickvals=list(range(len(rows))), ticktext=[f"{v:g}" for v in sorted(gap)],
                   range=[-0.5, len(rows) - 0.5], title_text="gap", row=1, col=2)
    g.update_layout(title="Near an intersection", width=1000,
                    legend={"orientation": "h", "x": 0, "y": -0.25, "yanchor": "top"}, margin={"b": 120})
    paths.append(save_plotly(g, out / "tp_near_intersection.html"))
    return paths


def _reuse(r, out: Path) -> list[Path]:
    rows = r.helix_reuse.rows if r.helix_reuse else []
    if not rows:
        return []
    ns = [x.n for x in rows]
    variants = (("plain", "plain (sentries on [0, 1])", "o-", "circle"), ("helix", "helix variant (per period)", "s-",
                                                                          "square"))
    xlabel = f"n (helix of period {r.helix_reuse.period_points} positions)"
    ylabel = f"sentries needed for |error| < {r.helix_reuse.tol}"
    series = [(key, label, mk, sym, [getattr(x, key).needed.n_sentries if getattr(x, key).needed else np.nan for x in rows],
               [n for n, x in zip(ns, rows) if not getattr(x, key).needed]) for key, label, mk, sym in variants]
    paths = []
    if png_wanted():
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for key, label, mk, _, y, none in series:
            ax.plot(ns, y, mk, label=label)
            if none:
                ax.plot(none, [1] * len(none), "rx", label=f"{key}: no M works")
        ax.set_xscale("log", base=2)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.legend(fontsize=8)
        paths.append(save_png(fig, out / "tp_helix_reuse.png"))
    g = go.Figure()
    for key, label, _, sym, y, none in series:
        g.add_trace(go.Scatter(x=ns, y=[None if np.isnan(v) else v for v in y], mode="lines+markers", name=label,
                               marker={"symbol": sym}))
        if none:
            g.add_trace(go.Scatter(x=none, y=[1] * len(none), mode="markers", name=f"{key}: no M works",
                                   marker={"symbol": "x", "color": "red", "size": 9}))
    g.update_xaxes(type="log", tickvals=ns, ticktext=[str(n) for n in ns], title_text=xlabel)
    g.update_layout(yaxis_title=ylabel, title="Sentries needed: plain curve vs helix variant")
    paths.append(save_plotly(g, out / "tp_helix_reuse.html"))
    return paths


def _curve(r, out: Path) -> list[Path]:
    s = r.construction.samples if r.construction else None
    if not s:
        return []
    X = pad3(s.x)
    g = go.Figure(go.Scatter3d(x=X[:, 0], y=X[:, 1], z=X[:, 2], mode="markers",
                               marker={"size": 3, "color": s.cell, "colorscale": "Turbo", "colorbar": {"title": "cell"}},
                               text=[f"i={i}" for i in s.i]))
    title = f"{r.construction.curve.name}: points coloured by active sentry (first 3 coordinates)"
    g.update_layout(title=title)
    g.update_scenes(camera=SCENE_CAMERA, xaxis_title_text="x[0]", yaxis_title_text="x[1]",
                    zaxis_title_text="x[2]")  # not plotly's x, y, z
    paths = [save_plotly(g, out / "tp_curve.html")]
    if png_wanted():
        f = plt.figure(figsize=(5.2, 4.6))
        ax = f.add_subplot(projection="3d")
        sc = ax.scatter(X[:, 0], X[:, 1], X[:, 2], c=s.cell, cmap="turbo", s=6, depthshade=False)
        ax.set(xlabel="x[0]", ylabel="x[1]", zlabel="x[2]")
        ax.tick_params(labelsize=6, pad=0)
        f.colorbar(sc, ax=ax, shrink=0.6, pad=0.1, label="cell")
        head, _, tail = title.partition(": ")  # a FILE.py:FUNCTION curve's path is wider than the figure
        f.suptitle(textwrap.fill(head + ":", 56) + "\n" + tail, fontsize=9)
        paths.append(save_3d_png(f, out / "tp_curve.png"))
    return paths


def _gpt2(r, out: Path) -> list[Path]:
    heads = r.gpt2.heads if r.gpt2 else None
    if not heads:
        return []
    L = max(h.layer for h in heads) + 1
    H = max(h.index for h in heads) + 1
    grid = np.full((L, H), np.nan)
    for h in heads:
        grid[h.layer, h.index] = h.mean_cos
    paths = []
    if png_wanted():
        fig, ax = plt.subplots(figsize=(1.5 + 0.45 * H, 1.2 + 0.35 * L))
        heatmap_png(ax, grid, range(L), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"mean cos(OV LN(x_i), f'(i))\nthe fitted map: {r.gpt2.ideal_cos:.2f}", fontsize=9)
        paths.append(save_png(fig, out / "tp_gpt2_heads.png"))
    g = go.Figure(go.Heatmap(z=grid, x=list(range(H)), y=[str(l) for l in range(L)], zmin=-1, zmax=1,
                             colorscale="RdBu", reversescale=True))
    # categorical axes: one layer or a few heads would otherwise get fractional ticks (-0.4 .. 0.4)
    g.update_layout(title="OV image of x_i vs the derivative direction (mean cosine)", xaxis_title="head",
                    yaxis_title="layer", xaxis_type="category", yaxis_type="category", yaxis_autorange="reversed")
    paths.append(save_plotly(g, out / "tp_gpt2_heads.html"))
    return paths


def twisted_pair_figures(result, out: Path) -> list[Path]:
    """Every figure the result has data for; returns the written paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if result.verification is not None and result.verification.sample is not None:
        paths += _estimate(result, out) + _error_bound(result, out)
    for fn in (_sweeps, _noise, _near, _reuse, _curve, _gpt2):
        paths += fn(result, out)
    return paths
