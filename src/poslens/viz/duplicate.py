"""Figures for duplicate-token heads and neurons: PNG (matplotlib) and offline HTML (plotly).

Made from results (:class:`~poslens.analyses.heads.DupHeadsResult`,
:class:`~poslens.analyses.neurons.DupNeuronsResult`), never inside a computation.

>>> from poslens.viz.duplicate import dup_heads_figures, neuron_figures   # doctest: +SKIP
>>> dup_heads_figures(result, Path("out"))                                # doctest: +SKIP
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from .common import (head_grid, heatmap_png, log_ticks, plt, png_wanted, save_plotly, save_png, set_wrapped_title,
                     sparse_log_labels)

_HEAD_SCORES = (("score_repeated", "repeated random tokens"), ("score_text", "natural text"),
                ("prev_token_score", "previous-token attention"),
                ("induction_score", "attention to the token after the earlier copy"),
                ("shifted_induction_score", "attention two past the earlier copy"))
_ONLY_WHEN_STRONG = {"shifted_induction_score": 0.3}  # a variant most models lack: its grid only where a head shows it


def _head_labels(x, y, names, xlim, ylim, size, font_px, vline=None) -> list[tuple[int, str, float, float, str]]:
    """Where to write head names on the positional scatter (log x, linear y) so that no label runs
    into another, a point or the vertical line at ``vline``: (index of the head it is written by,
    text, dx, dy, horizontal alignment), offsets in pixels (up positive) on a plot area ``size`` =
    (width, height) pixels with text ``font_px`` high. Heads closer than a short name share one
    label ("0.1, 0.4", past three names "+n more"), written right of, left of, above or below
    them, wherever it first fits; a label that fits nowhere is left out (the HTML names every
    head on hover).

    >>> _head_labels([2, 2, 2, 30], [0.5, 0.51, 0.1, 0.9], ["0.1", "0.2", "0.3", "0.4"],
    ...              (1, 100), (0, 1), (400, 300), 12)
    [(0, '0.1, 0.2', 7, 0, 'left'), (2, '0.3', 7, 0, 'left'), (3, '0.4', 7, 0, 'left')]
    """
    W, H = size
    lo, hi = np.log10(xlim)
    px = (np.log10(np.asarray(x, dtype=float)) - lo) / (hi - lo) * W
    py = (np.asarray(y, dtype=float) - ylim[0]) / (ylim[1] - ylim[0]) * H
    cw, lh, r = 0.6 * font_px, font_px, 5  # a character's width, a line's height, a marker's radius
    root = list(range(len(names)))

    def find(i):
        while root[i] != i:
            i = root[i]
        return i

    for i in range(len(names)):
        for j in range(i):
            if abs(px[i] - px[j]) < 3 * cw and abs(py[i] - py[j]) < lh:
                root[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(names)):
        groups.setdefault(find(i), []).append(i)
    taken = [(a - r, b - r, a + r, b + r) for a, b in zip(px, py)]
    if vline is not None:
        v = (np.log10(vline) - lo) / (hi - lo) * W
        taken.append((v - 1, 0, v + 1, H))
    out = []
    for m in sorted(groups.values(), key=len, reverse=True):
        shown = [names[i] for i in m]
        text = ", ".join(shown) if len(shown) <= 3 else f"{', '.join(shown[:2])} +{len(shown) - 2} more"
        w = cw * len(text)
        right, left = max(m, key=lambda i: px[i]), min(m, key=lambda i: px[i])
        top, bottom = max(m, key=lambda i: py[i]), min(m, key=lambda i: py[i])
        for i, dx, dy, ha in ((right, r + 2, 0, "left"), (left, -r - 2, 0, "right"),
                              (top, 0, r + 1 + lh / 2, "center"), (bottom, 0, -r - 1 - lh / 2, "center")):
            x0 = px[i] + dx - {"left": 0, "right": w, "center": w / 2}[ha]
            box = (x0, py[i] + dy - lh / 2, x0 + w, py[i] + dy + lh / 2)
            inside = box[0] >= 0 and box[2] <= W and box[1] >= 0 and box[3] <= H
            if inside and not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
                taken.append(box)
                out.append((int(i), text, dx, dy, ha))
                break
    return out


def dup_heads_figures(result, out: Path) -> list[Path]:
    """Score grids (layer x head), decay profiles, token-class matrices, positional spread."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if result.heads:
        for key, label in _HEAD_SCORES:
            grid, layers = head_grid({f"{v.layer}.{v.head}": getattr(v, key) for v in result.heads.values()})
            H = grid.shape[1]
            if np.isnan(grid).all() or np.nanmax(grid) < _ONLY_WHEN_STRONG.get(key, -1.0):
                continue
            if png_wanted():
                fig, ax = plt.subplots(figsize=(1 + 0.5 * H, 1 + 0.45 * len(layers)))
                heatmap_png(ax, grid, layers, vmin=0, vmax=1, cmap="viridis")
                set_wrapped_title(ax, f"{key.replace('_', ' ')} ({label})")
                paths.append(save_png(fig, out / f"dup_{key}.png"))
            hf = go.Figure(go.Heatmap(z=grid, x=list(range(H)), y=[str(l) for l in layers], zmin=0, zmax=1,
                                      colorscale="Viridis", hovertemplate="head %{y}.%{x}: %{z:.3f}<extra></extra>"))
            hf.update_layout(title=f"{key} ({label})", xaxis_title="head", yaxis_title="layer",
                             yaxis_autorange="reversed")
            paths.append(save_plotly(hf, out / f"dup_{key}.html"))
    profiles = {k: p for k, p in (result.profiles or {}).items() if p.distances}
    if profiles:
        curves = []  # (label, distances, mean attention, fitted curve or None, its legend name)
        for k, p in profiles.items():
            d, m = np.array(p.distances, dtype=float), np.array(p.mean_attention, dtype=float)
            mf = p.mean_fit
            # The curve is fitted to these means, which mix the decay with how many copies compete;
            # the summary's rate is the within-query fit. Both rates are named so they are not confused.
            fit_name = (f"{k} fit to these means (rate {mf.rate:.4f}/token"
                        + (f"; within queries {p.within_query.rate:.4f})" if p.within_query.rate is not None else ")")
                        if mf.rate is not None else None)
            fit = mf.amplitude * np.exp(-mf.rate * d) if mf.rate is not None else None
            curves.append((f"{k} ({p.verdict})", d, m, fit, fit_name))
        if png_wanted():
            fig, ax = plt.subplots(figsize=(6, 4))
            for lab, d, m, fit, fit_name in curves:
                ax.plot(d, m, ".", label=lab)
                if fit is not None:
                    ax.plot(d, fit, "-", lw=1, label=fit_name)
            ax.set_xlabel("distance to the earlier copy (tokens)")
            ax.set_ylabel("mean attention to that copy")
            ax.set_title("duplicate attention vs distance")
            ax.legend()
            paths.append(save_png(fig, out / "dup_decay.png"))
        pf = go.Figure()
        for lab, d, m, fit, fit_name in curves:
            pf.add_scatter(x=d, y=m, mode="markers", name=lab)
            if fit is not None:
                pf.add_scatter(x=d, y=fit, mode="lines", name=fit_name)
        pf.update_layout(title="attention to an earlier copy of the current token, by distance",
                         xaxis_title="distance to the earlier copy (tokens)", yaxis_title="mean attention to the copy",
                         legend=dict(orientation="h", y=-0.25, x=0))
        paths.append(save_plotly(pf, out / "dup_decay.html"))
    tc = result.token_classes
    for k, v in (tc.heads if tc else {}).items():
        m = np.array(v.matrix, dtype=float)
        if m.size == 0 or np.isnan(m).all():
            continue
        names = [repr(t) for t in tc.tokens]
        fig, ax = plt.subplots(figsize=(6, 5))
        heatmap_png(ax, m, names, names, xlabel="earlier token b", ylabel="current token a", aspect="equal",
                    cmap="magma")
        ax.tick_params(axis="x", labelrotation=90)
        ax.set_title(f"head {k}: attention from a to earlier b")
        paths.append(save_png(fig, out / f"dup_token_classes_{k}.png"))
    if result.positional:
        pos = result.positional.heads
        names = list(pos)
        x = [pos[k].span50 for k in names]
        y = [pos[k].entropy_ratio for k in names]
        window = result.positional.local_window
        xlim = (min(x + [window]) / 1.5, max(x + [window]) * 1.5)  # both twins: the label layout assumes them
        ylim = (0.0, 1.05)
        xlabel, ylabel = "span holding half the attention (positions, log)", "entropy / uniform entropy"
        kinds = {"local": ("tab:blue", "#1f77b4"), "uniform": ("tab:red", "#d62728"), "mixed": ("tab:gray", "#7f7f7f")}
        heads_of = {kind: [i for i, k in enumerate(names) if pos[k].kind == kind] for kind in kinds}
        kinds_drawn = [(kind, colours, heads_of[kind]) for kind, colours in kinds.items() if heads_of[kind]]
        # laid out once for the HTML's plot area (the smaller, its text the larger), so the PNG gets the same labels
        labels = _head_labels(x, y, names, xlim, ylim, (480, 270), 13, vline=window)
        if png_wanted():
            fig, ax = plt.subplots(figsize=(6, 4))
            for kind, (colour, _), these in kinds_drawn:
                ax.scatter([x[i] for i in these], [y[i] for i in these], c=colour, label=kind)
            for i, text, dx, dy, ha in labels:
                ax.annotate(text, (x[i], y[i]), xytext=(dx, dy), textcoords="offset pixels", ha=ha, va="center",
                            fontsize=8)
            ax.set_xscale("log")
            sparse_log_labels(ax.xaxis)
            ax.axvline(window, color="k", lw=0.5, ls="--")
            ax.set(xlabel=xlabel, ylabel=ylabel, xlim=xlim, ylim=ylim)
            ax.set_title("attention on positional inputs alone (dashed: local window)")
            ax.legend(fontsize=8, title="kind", title_fontsize=8)
            paths.append(save_png(fig, out / "dup_positional.png"))
        pf = go.Figure()
        for kind, (_, colour), these in kinds_drawn:
            pf.add_scatter(x=[x[i] for i in these], y=[y[i] for i in these], mode="markers", name=kind,
                           marker=dict(color=colour, size=8), text=[names[i] for i in these],
                           hovertemplate="head %{text}<br>span50 %{x}<br>entropy ratio %{y:.3f}")
        # every head's name on hover; on the plot only where it does not run into another (the PNG's labels)
        for i, text, dx, dy, ha in labels:
            pf.add_annotation(x=np.log10(x[i]), y=y[i], text=text, showarrow=False, xshift=dx, yshift=dy,
                              xanchor=ha, font=dict(size=11))
        pf.add_vline(x=window, line=dict(color="black", width=0.8, dash="dash"))
        pf.update_layout(xaxis_type="log", xaxis_title=xlabel, yaxis_title=ylabel, legend_title_text="kind",
                         showlegend=True, title="attention on positional inputs alone (dashed: local window)")
        # a wide x axis: room for 1, 2 and 5 across n_ctx
        pf.update_xaxes(range=np.log10(xlim).tolist(), **log_ticks(x, max_decades=4))
        pf.update_yaxes(range=list(ylim))
        paths.append(save_plotly(pf, out / "dup_positional.html"))
    return paths


def neuron_figures(result, out: Path) -> list[Path]:
    """PVO norm grid, PVO curves, decomposition, approximations, extra vs distance, top examples page."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if result.grid:
        g = np.array(result.grid, dtype=float)
        rows, cols = g.shape
        if png_wanted():
            fig, ax = plt.subplots(figsize=(8, 1.5 + 6 * rows / cols))
            im = ax.imshow(g, cmap="viridis", aspect="auto")
            ax.set_title(f"|W_pos·VO {result.head}·W_in| per neuron ({rows}x{cols}, neuron = row*{cols} + column)")
            ax.set(xlabel="column", ylabel="row")
            fig.colorbar(im, ax=ax)
            paths.append(save_png(fig, out / "pvo_norm_grid.png"))
        idx = np.arange(rows * cols).reshape(rows, cols)
        hf = go.Figure(go.Heatmap(z=g, customdata=idx, colorscale="Viridis",
                                  hovertemplate="neuron %{customdata}: %{z:.2f}<extra></extra>"))
        hf.update_layout(title=f"PVO norm per neuron, head {result.head}", xaxis_title="column",
                         yaxis_title=f"row (neuron = row*{cols} + column)", yaxis_autorange="reversed")
        paths.append(save_plotly(hf, out / "pvo_norm_grid.html"))
    if result.curves:
        if png_wanted():
            fig, ax = plt.subplots(figsize=(7, 4))
            for n, c in result.curves.items():
                ax.plot(c, lw=1, label=f"neuron {n}")
            ax.axhline(0, color="k", lw=0.5)
            ax.set(xlabel="position", ylabel=f"PVO contribution of head {result.head}")
            if len(result.curves) <= 10:
                ax.legend(fontsize=7)
            paths.append(save_png(fig, out / "pvo_curves.png"))
        pf = go.Figure()
        for n, c in result.curves.items():
            pf.add_scatter(y=c, mode="lines", name=f"neuron {n}")
        pf.update_layout(xaxis_title="position", yaxis_title="PVO contribution")
        paths.append(save_plotly(pf, out / "pvo_curves.html"))
    dec = result.decomposition
    for key, title, fname in (("components", "contribution to the pre-activation", "neuron_decomposition"),
                              ("positional", "positional contribution (exact)", "neuron_positional")):
        comps = getattr(dec, key) if dec is not None else {}
        if not comps:
            continue
        if png_wanted():
            fig, ax = plt.subplots(figsize=(8, 4.5))
            for k, v in comps.items():
                ax.plot(v, lw=1, label=k)
            if key == "components":
                ax.plot(dec.measured, "k--", lw=1, label="measured pre-activation")
            ax.set(xlabel="position in text", ylabel=f"neuron {result.neuron}: {title}")
            ax.legend(fontsize=6, ncol=2)
            paths.append(save_png(fig, out / f"{fname}.png"))
        pf = go.Figure()
        for k, v in comps.items():
            pf.add_scatter(y=v, mode="lines", name=k)
        if key == "components":
            pf.add_scatter(y=dec.measured, mode="lines", name="measured pre-activation", line={"dash": "dash"})
        pf.update_layout(xaxis_title="position in text", yaxis_title=title)
        paths.append(save_plotly(pf, out / f"{fname}.html"))
    tp = dec.approximations.total_positional if dec is not None else None
    if tp:
        fig, ax = plt.subplots(figsize=(8, 4))
        for k, style, label in (("exact", "k-", "exact"), ("attention_rule", "b-", "the study's rules, exact scales"),
                                ("seed", "r-", "the study's rules and scales")):
            ax.plot(getattr(tp, k), style, lw=1, label=label)
        ax.set(xlabel="position in text", ylabel="total positional contribution")
        ax.legend(fontsize=8)
        paths.append(save_png(fig, out / "neuron_approximations.png"))
    cp = result.combined_positional
    if cp is not None and cp.curve:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(cp.curve, lw=1)
        ax.axhline(cp.mean_from, color="r", lw=0.8, ls="--", label=f"mean after {cp.from_position}: {cp.mean_from:.3g}")
        ax.set(xlabel="position", ylabel="combined positional contribution")
        ax.legend(fontsize=8)
        paths.append(save_png(fig, out / "neuron_combined_positional.png"))
    ex = dec.extra_vs_distance if dec is not None else None
    if ex is not None and ex.mean_distance:
        if png_wanted():
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.scatter(ex.mean_distance, ex.measured, s=8, label="measured (exact)")
            ax.scatter(ex.mean_distance, ex.predicted, s=8, label="predicted (the study: w_j = 1/n)")
            ax.set_xlabel("mean distance to the earlier copies of the current token")
            ax.set_ylabel("extra from the duplicate head")
            ax.legend()
            paths.append(save_png(fig, out / "neuron_extra_vs_distance.png"))
        pf = go.Figure()
        pf.add_scatter(x=ex.mean_distance, y=ex.measured, mode="markers", name="measured")
        pf.add_scatter(x=ex.mean_distance, y=ex.predicted, mode="markers", name="predicted")
        pf.update_layout(xaxis_title="mean distance to earlier copies", yaxis_title="extra from the duplicate head")
        paths.append(save_plotly(pf, out / "neuron_extra_vs_distance.html"))
    st = result.ln_scale
    if st is not None and st.exact_by_position:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(st.exact_by_position, lw=1, label="exact (mean over tokens)")
        ax.plot(st.approx_by_position, lw=1, label="the study's approximation")
        ax.set(xlabel="position", ylabel="layer-0 LayerNorm multiplier")
        ax.legend(fontsize=8)
        paths.append(save_png(fig, out / "ln_scale.png"))
    if result.top_examples:
        paths.append(top_examples_html(result, out / "top_examples.html"))
    return paths


def top_examples_html(result, path: Path) -> Path:
    """A self-contained page: each example is a line of tokens shaded by the neuron's activation."""
    from ..io import atomic_write_text

    ex = result.top_examples
    amax = max((max(e.activations) for e in ex), default=1.0)
    amin = min((min(e.activations) for e in ex), default=0.0)
    if amax > 0:  # the usual reading: share of the largest activation, negatives unshaded
        lo, span, how = 0.0, amax, f"activation / max activation ({amax:.3f})"
    else:  # every activation shown is <= 0 (the "top" ones are the least negative): shade within their range
        lo, span = amin, (amax - amin) or 1.0
        how = f"position between the lowest ({amin:.3f}) and highest ({amax:.3f}) activation shown (all are <= 0)"
    rows = []
    for i, e in enumerate(ex):
        spans = []
        for j, (t, a) in enumerate(zip(e.tokens, e.activations)):
            alpha = max(0.0, min(1.0, (a - lo) / span))
            border = "border-bottom:2px solid #000;" if j == e.center else ""
            spans.append(f'<span title="{a:.3f}" style="background:rgba(255,80,0,{alpha:.3f});{border}">'
                         f"{html.escape(t).replace(chr(10), '⏎')}</span>")
        copy = f"{e.n_earlier_copies} earlier, mean {e.mean_copy_distance:.0f} back" if e.n_earlier_copies else "none"
        rows.append(f"<tr><td>{i + 1}</td><td>{e.activation:.3f}</td><td>{html.escape(copy)}</td>"
                    f"<td class=t>{''.join(spans)}</td></tr>")
    title = html.escape(f"{result.model}: neuron {result.layer}.{result.neuron}, top activations")
    s = result.top_examples_summary
    src = html.escape(s.source if s is not None else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif}} td.t{{font-family:monospace;white-space:pre-wrap}} td{{padding:2px 6px;vertical-align:top}}</style>
</head><body><h2>{title}</h2><p>Over {src}. Shading: {html.escape(how)}; the underlined
token is the peak. "copies": earlier copies of the peak token within the model's context.</p>
<table><tr><th>#</th><th>act</th><th>copies</th><th>context</th></tr>{''.join(rows)}</table></body></html>"""
    atomic_write_text(path, page)
    return path
