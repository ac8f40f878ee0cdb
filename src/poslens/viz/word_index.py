"""Figures for word-index probes: the key plot, accuracy by layer against baselines, schemes compared.

The key plot follows the seed's: one row per true word index, x the absolute position of
the labelled token, and at each (index, position) cell a stacked bar of the probe's
predicted indices on the validation set (colours in numeric order, unlike the post's).

>>> from poslens.viz.word_index import word_index_figures   # doctest: +SKIP
>>> word_index_figures(result, Path("out"))                   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors
import matplotlib.ticker
import numpy as np
import plotly.graph_objects as go
from matplotlib.collections import PolyCollection
from matplotlib.patches import Patch
from plotly.subplots import make_subplots

from .common import heatmap_png, plt, png_wanted, save_plotly, save_png

_BASE_STYLE = {"position": ("tab:gray", "--"), "space": ("tab:brown", ":"), "both": ("black", "-.")}


def key_plot(result, scheme: str, label_token: str, layer: int, out: Path, min_count: int = 1) -> list[Path]:
    """Stacked bars of predicted indices for each (true index, position) cell at ``layer``."""
    r = result.schemes[scheme].labels[label_token]
    i = result.layers.index(layer)
    conf = np.asarray(r.probes[i].confusion, dtype=float)  # [true, pos, pred]
    positions = np.asarray(r.positions)
    n = conf.shape[0]
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    cols = [cmap(i % cmap.N) for i in range(n)]
    unit = result.schemes[scheme].dataset.unit
    tot = conf.sum(-1)
    frac = np.where(tot[..., None] > 0, conf / np.maximum(tot[..., None], 1), 0.0)
    shown = tot >= min_count
    what = f"{result.model}: {scheme}, {label_token} token, residual point {layer}"
    shows = f"predicted {unit} index (accuracy {r.probes[i].accuracy:.3f})"
    stem = f"word_index_key_{scheme}_{label_token}_L{layer}"
    paths = []
    if png_wanted():
        fig, axes = plt.subplots(n, 1, figsize=(max(6.0, 0.28 * len(positions) + 2), 1.1 * n + 1), sharex=True,
                                 squeeze=False)
        # One collection of rectangles per row: n * n calls to ax.bar made ~1,500 patches and took seconds.
        x0 = np.broadcast_to(positions[:, None] - 0.425, (len(positions), n))
        for u in range(n):
            ax = axes[u, 0]
            h = np.where(shown[u][:, None], frac[u], 0.0)  # [position, predicted]
            top = np.cumsum(h, axis=1)
            keep = h > 0
            corners = np.stack([np.stack([x0, top - h], -1), np.stack([x0, top], -1),
                                np.stack([x0 + 0.85, top], -1), np.stack([x0 + 0.85, top - h], -1)], -2)
            ax.add_collection(PolyCollection(corners[keep], facecolors=np.asarray(cols)[np.nonzero(keep)[1]],
                                             linewidths=0))
            if len(positions):
                ax.set_xlim(positions.min() - 0.6, positions.max() + 0.6)
            ax.set_ylim(0, 1)
            ax.set_yticks([])
            ax.set_ylabel(f"{u}", rotation=0, labelpad=10, va="center")
        axes[0, 0].legend(handles=[Patch(color=cols[k], label=str(k)) for k in range(n)], title="predicted", ncol=n,
                          fontsize=7, title_fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.02), frameon=False)
        axes[-1, 0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axes[-1, 0].set_xlabel("absolute position of the labelled token")
        fig.supylabel(f"true {unit} index")
        fig.suptitle(f"{what} — {shows}", fontsize=9)
        paths.append(save_png(fig, out / f"{stem}.png"))

    pf = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.01)
    for u in range(n):
        for k in range(n):
            pf.add_bar(x=positions, y=np.where(shown[u], frac[u, :, k], 0), name=f"predicted {k}",
                       marker_color=matplotlib.colors.to_hex(cols[k]), legendgroup=str(k), showlegend=u == 0,
                       row=u + 1, col=1, customdata=tot[u],
                       hovertemplate="position %{x}<br>share %{y:.2f}<br>n=%{customdata:.0f}")
        # each row named on its y axis, as in the PNG (each is a stack of shares 0..1, ticks hidden)
        pf.update_yaxes(range=[0, 1], showticklabels=False, title_text=f"true {u}", row=u + 1, col=1)
    pf.update_layout(barmode="stack", height=110 * n + 160, bargap=0.1, width=900,
                     title=dict(text=f"{what}<br>{shows}", y=0.97, yanchor="top", yref="container"),
                     legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom", font=dict(size=10)),
                     margin=dict(t=120))
    pf.update_xaxes(title_text="absolute position", row=n, col=1)
    paths.append(save_plotly(pf, out / f"{stem}.html"))
    return paths


def accuracy_by_layer(result, scheme: str, out: Path) -> list[Path]:
    """Probe accuracy per residual point (both label tokens), position-balanced accuracy, baselines."""
    rep = result.schemes[scheme]
    x = result.layers
    # per label token: (token, its report, accuracy, balanced accuracy, combined-probe accuracy or None, baselines shown)
    series = [(lt, r, [m.accuracy for m in r.probes], [m.balanced_accuracy for m in r.probes],
               [m.accuracy for m in r.combined] if r.combined is not None else None,
               lt == "last" or len(rep.labels) == 1) for lt, r in rep.labels.items()]
    paths = []
    if png_wanted():
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for lt, r, acc, bal, comb, base in series:
            style = "-" if lt == "last" else (0, (4, 2))
            ax.plot(x, acc, "o", ls=style, color="tab:blue", label=f"probe, {lt} token")
            ax.plot(x, bal, "s", ls=style, color="tab:orange", ms=4, label=f"probe, position-balanced ({lt})")
            if comb is not None:
                ax.plot(x, comb, "^", ls=style, color="tab:green", ms=4, label=f"residual + position + space ({lt})")
            if base:
                for name, b in r.baselines.items():
                    c, ls = _BASE_STYLE[name]
                    ax.axhline(b.accuracy, color=c, ls=ls, lw=1,
                               label=f"baseline: {name} only" if name != "both" else "baseline: position + space")
                ax.axhline(r.balanced.chance, color="tab:orange", lw=0.8, ls=":", label="balanced chance")
                ax.axhline(1 / rep.dataset.n_units, color="tab:red", lw=0.8, ls=":", label="uniform chance")
        ax.set_xticks(x)
        ax.set(xlabel="residual point (0 = embeddings; L = entering block L)", ylabel="validation accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{result.model}: which {rep.dataset.unit} is this token in? ({scheme})", fontsize=10)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        paths.append(save_png(fig, out / f"word_index_accuracy_{scheme}.png"))
    pf = go.Figure()
    for lt, r, acc, bal, comb, base in series:
        pf.add_scatter(x=x, y=acc, mode="lines+markers", name=f"probe, {lt} token")
        pf.add_scatter(x=x, y=bal, mode="lines+markers", name=f"position-balanced, {lt} token")
        if comb is not None:
            pf.add_scatter(x=x, y=comb, mode="lines+markers", name=f"residual + position + space, {lt} token")
        if base:
            for name, b in r.baselines.items():
                pf.add_hline(y=b.accuracy, line_dash="dash", annotation_text=f"{name} baseline ({lt})")
    pf.update_layout(xaxis_title="residual point", yaxis_title="validation accuracy", yaxis_range=[0, 1.02],
                     title=f"{result.model}: {scheme}")
    pf.update_xaxes(tickvals=x)  # residual points are integers
    paths.append(save_plotly(pf, out / f"word_index_accuracy_{scheme}.html"))
    return paths


def per_index(result, scheme: str, label_token: str, out: Path) -> list[Path]:
    """Accuracy per true index (columns) and residual point (rows), with the position baseline's row."""
    r = result.schemes[scheme].labels[label_token]
    rows = [m.per_index for m in r.probes] + [r.baselines["position"].per_index]
    names = [str(l) for l in result.layers] + ["pos. baseline"]
    g = np.asarray(rows, dtype=float)
    xlabel = f"true {result.schemes[scheme].dataset.unit} index"
    title = f"accuracy per index ({scheme}, {label_token} token)"
    stem = f"word_index_per_index_{scheme}_{label_token}"
    paths = []
    if png_wanted():
        fig, ax = plt.subplots(figsize=(1.2 + 0.6 * g.shape[1], 1 + 0.4 * g.shape[0]))
        heatmap_png(ax, g, names, xlabel=xlabel, ylabel="residual point", vmin=0, vmax=1, cmap="viridis")
        for (a, b), v in np.ndenumerate(g):
            ax.text(b, a, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
        ax.set_title(title, fontsize=9)
        paths.append(save_png(fig, out / f"{stem}.png"))
    pf = go.Figure(go.Heatmap(z=g, x=list(range(g.shape[1])), y=names, zmin=0, zmax=1, colorscale="Viridis",
                              texttemplate="%{z:.2f}", textfont=dict(size=10),
                              colorbar=dict(title=dict(text="accuracy", side="right"), thickness=12, outlinewidth=0),
                              hovertemplate="point %{y}, index %{x}<br>accuracy %{z:.3f}<extra></extra>"))
    pf.update_xaxes(title_text=xlabel, tickvals=list(range(g.shape[1])))
    pf.update_yaxes(title_text="residual point", type="category", autorange="reversed")
    pf.update_layout(title=f"{result.model}: {title}", width=max(500, 60 * g.shape[1] + 300),
                     height=max(350, 28 * g.shape[0] + 180))
    paths.append(save_plotly(pf, out / f"{stem}.html"))
    return paths


def schemes_compared(result, out: Path) -> list[Path]:
    """Gain of each scheme's probe over its best baseline, and balanced accuracy above chance, per point."""
    series = []  # per scheme: (scheme, gain over the best baseline, balanced accuracy minus chance)
    for s, rep in result.schemes.items():
        lt = "last" if "last" in rep.labels else next(iter(rep.labels))
        r = rep.labels[lt]
        series.append((s, r.gain, [m.balanced_accuracy - r.balanced.chance for m in r.probes]))
    paths = []
    if png_wanted():
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for s, gain, above in series:
            axes[0].plot(result.layers, gain, "o-", label=s)
            axes[1].plot(result.layers, above, "o-", label=s)
        for ax, t in zip(axes, ("probe minus best baseline", "position-balanced accuracy minus chance")):
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xticks(result.layers)
            ax.set_xlabel("residual point")
            ax.set_title(t, fontsize=9)
            ax.legend(fontsize=8)
        fig.suptitle(f"{result.model}: reference schemes compared", fontsize=10)
        paths.append(save_png(fig, out / "word_index_schemes.png"))
    pf = go.Figure()
    for s, gain, above in series:
        pf.add_scatter(x=result.layers, y=gain, mode="lines+markers", name=f"{s}: gain over best baseline")
        pf.add_scatter(x=result.layers, y=above, mode="lines+markers", name=f"{s}: balanced minus chance")
    pf.update_layout(xaxis_title="residual point", yaxis_title="accuracy difference")
    pf.update_xaxes(tickvals=result.layers)
    paths.append(save_plotly(pf, out / "word_index_schemes.html"))
    return paths


def word_index_figures(result, out: Path, layer: int | None = None) -> list[Path]:
    """Every figure of a word-index result; the key plot at ``layer`` (default the result's key layer)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layer = result.key_layer if layer is None else layer
    paths: list[Path] = []
    for s, rep in result.schemes.items():
        paths += accuracy_by_layer(result, s, out)
        for lt in rep.labels:
            paths += key_plot(result, s, lt, layer, out)
        lt = "last" if "last" in rep.labels else next(iter(rep.labels))
        paths += per_index(result, s, lt, out)
    if len(result.schemes) > 1:
        paths += schemes_compared(result, out)
    return paths
