"""Figures of the positional analyses: attention sinks, the absolute-position probe, rotary frequency usage.

Made from results, registered by result type (:data:`FIGURES`); the analyses never import this.

>>> figures(result, Path("out"))     # any of SinkResult, ProbeResult, RotaryResult   # doctest: +SKIP
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..analyses.position_probe.measure import ProbeResult
from ..analyses.rotary.measure import RotaryResult
from ..analyses.sinks.measure import SinkResult
from .common import head_grid, log_ticks, plt, png_wanted, save_plotly, save_png, sparse_log_labels


_COLORS = qualitative.D3  # matplotlib's default cycle, so the HTML matches the PNG


def sink_figures(r: SinkResult, out: Path) -> list[Path]:
    """Per input kind: alpha(0) per layer x head (sinks outlined), and alpha by key position."""
    out = Path(out)
    paths = []
    n, n_layers = len(r.runs), max(len(x.layers) for x in r.runs)
    # every head of each measured layer: the grid's rows are run.layers
    grids = [head_grid({h.head: h.first_attention for h in run.heads})[0] for run in r.runs]
    if png_wanted():
        # constrained layout leaves room for the shared colour bar, the panels' labels and the titles
        fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 1, 0.35 * n_layers + 2.2), squeeze=False, layout="constrained")
        for ax, run, g in zip(axes[0], r.runs, grids):
            im = ax.imshow(g, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            for i, j in np.argwhere(g > r.epsilon):
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.2))
            ax.set_yticks(range(len(run.layers)), [str(l) for l in run.layers])
            ax.set(xlabel="head", ylabel="layer")
            ax.set_title(f"{run.inputs}\nsink share {run.sink_share:.1%}", fontsize=9)
        # the colour bar is as tall as three layers' panels: a short label, its meaning in the title
        fig.colorbar(im, ax=axes[0].tolist(), label="alpha(0)")
        title = f"Attention sinks: alpha(0), the mean attention to the first position (red: > {r.epsilon:g}) — {r.model}"
        fig.suptitle(textwrap.fill(title, int(fig.get_figwidth() * 11)), fontsize=10)  # ~11 characters an inch
        paths.append(save_png(fig, out / "sinks_first_attention.png", tight=False))
    pf = make_subplots(rows=1, cols=n, horizontal_spacing=0.08 if n > 1 else 0.02,
                       subplot_titles=[f"{run.inputs}<br>sink share {run.sink_share:.1%}" for run in r.runs])
    for c, (run, g) in enumerate(zip(r.runs, grids), 1):
        pf.add_trace(go.Heatmap(z=g, x=list(range(g.shape[1])), y=[str(l) for l in run.layers], coloraxis="coloraxis",
                                name=run.inputs, hovertemplate="layer %{y}, head %{x}<br>alpha(0) %{z:.3f}<extra></extra>"),
                     row=1, col=c)
        for i, j in np.argwhere(g > r.epsilon):
            pf.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, line=dict(color="red", width=1.5),
                         row=1, col=c)
        pf.update_xaxes(title_text="head", row=1, col=c)
        pf.update_yaxes(title_text="layer", autorange="reversed", type="category", row=1, col=c)
    pf.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0, cmax=1,
                                    colorbar=dict(title=dict(text="mean attention to the<br>first position, alpha(0)",
                                                             side="right"), thickness=12, outlinewidth=0)),
                     title=dict(text=f"Attention sinks (red: alpha(0) > {r.epsilon:g}) — {r.model}", y=0.97,
                                yanchor="top", yref="container"),
                     width=max(520, 300 * n + 160), height=max(380, 22 * n_layers + 220), margin=dict(t=110))
    paths.append(save_plotly(pf, out / "sinks_first_attention.html"))

    ratios = {}
    for run in r.runs:
        rs = [h.key_norm_ratio for h in run.heads if h.key_norm_ratio is not None]
        ratios[run.inputs] = np.median(rs) if rs else float("nan")
    if png_wanted():
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
        for run in r.runs:
            ax[0].plot(range(len(run.key_profile)), run.key_profile, label=run.inputs)
            ax[1].scatter([h.qk_cos_other for h in run.heads], [h.qk_cos_first for h in run.heads], s=12,
                          label=f"{run.inputs} (median key-norm ratio {ratios[run.inputs]:.2f})")
        ax[0].set(yscale="log", xlabel="key position k", ylabel="alpha(k), mean over layers and heads")
        sparse_log_labels(ax[0].yaxis)
        ax[0].legend(fontsize=7)
        lim = [-1, 1]
        ax[1].plot(lim, lim, color="grey", lw=0.8)
        ax[1].set(xlabel="cos(q, k_j), j >= 1", ylabel="cos(q, k_0)")
        ax[1].set_title("per head: query-key cosine, first key vs others", fontsize=9)
        ax[1].legend(fontsize=7)
        paths.append(save_png(fig, out / "sinks_keys.png"))
    pf = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                       subplot_titles=["attention by key position", "per head: query-key cosine, first key vs others"])
    for c, run in enumerate(r.runs):
        color = _COLORS[c % len(_COLORS)]
        pf.add_scatter(x=list(range(len(run.key_profile))), y=list(run.key_profile), mode="lines", name=run.inputs,
                       line=dict(color=color), row=1, col=1)
        pf.add_scatter(x=[h.qk_cos_other for h in run.heads], y=[h.qk_cos_first for h in run.heads], mode="markers",
                       marker=dict(color=color, size=6), text=[h.head for h in run.heads],
                       name=f"{run.inputs} (median key-norm ratio {ratios[run.inputs]:.2f})", row=1, col=2)
    pf.add_scatter(x=[-1, 1], y=[-1, 1], mode="lines", line=dict(color="grey", width=1), name="y = x",
                   showlegend=False, hoverinfo="skip", row=1, col=2)
    pf.update_xaxes(title_text="key position k", row=1, col=1)
    pf.update_yaxes(title_text="alpha(k), mean over layers and heads", type="log",
                    **log_ticks([a for run in r.runs for a in run.key_profile]), row=1, col=1)
    pf.update_xaxes(title_text="cos(q, k_j), j >= 1", row=1, col=2)
    pf.update_yaxes(title_text="cos(q, k_0)", row=1, col=2)
    pf.update_layout(title=dict(text=f"Attention sinks: keys — {r.model}", y=0.97, yanchor="top", yref="container"),
                     legend=dict(orientation="h", x=0, y=-0.25, yanchor="top", font=dict(size=10)),
                     width=1000, height=480, margin=dict(t=90, b=130))
    paths.append(save_plotly(pf, out / "sinks_keys.html"))
    return paths


def probe_figures(r: ProbeResult, out: Path) -> list[Path]:
    out = Path(out)
    paths = []
    pts = [p.point for p in r.points]
    centres = [(a + b) / 2 for a, b in zip(r.bin_edges[:-1], r.bin_edges[1:])]
    left = f"absolute position from the residual stream ({r.inputs})"
    if png_wanted():
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
        ax[0].plot(pts, [p.mae for p in r.points], "o-", label="ridge probe")
        ax[0].plot(pts, [p.baseline_mae for p in r.points], "--", color="grey", label="predict the mean position")
        ax[0].set_xticks(pts)
        ax[0].set(xlabel="residual point (0 = embeddings)", ylabel="mean absolute error (positions)")
        ax[0].set_title(left, fontsize=9)
        ax[0].legend(fontsize=8)
        for p in r.points:
            ax[1].plot(centres, p.mae_by_position, marker=".", label=f"point {p.point}")
        ax[1].set(xlabel="true position", ylabel="test error (positions)")
        ax[1].legend(fontsize=7, ncol=2)
        fig.suptitle(r.model, fontsize=9)
        paths.append(save_png(fig, out / "position_probe.png"))
    pf = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=[left, "test error by true position"])
    pf.add_scatter(x=pts, y=[p.mae for p in r.points], mode="lines+markers", name="ridge probe",
                   line=dict(color=_COLORS[0]), legendgroup="probe", row=1, col=1)
    pf.add_scatter(x=pts, y=[p.baseline_mae for p in r.points], mode="lines", name="predict the mean position",
                   line=dict(color="grey", dash="dash"), legendgroup="probe", row=1, col=1)
    for c, p in enumerate(r.points):
        pf.add_scatter(x=centres, y=list(p.mae_by_position), mode="lines+markers", name=f"point {p.point}",
                       marker=dict(size=4), line=dict(color=_COLORS[c % len(_COLORS)]), legendgroup="points",
                       row=1, col=2)
    pf.update_xaxes(title_text="residual point (0 = embeddings)", tickvals=pts, row=1, col=1)
    pf.update_yaxes(title_text="mean absolute error (positions)", row=1, col=1)
    pf.update_xaxes(title_text="true position", row=1, col=2)
    pf.update_yaxes(title_text="test error (positions)", row=1, col=2)
    pf.update_layout(title=dict(text=r.model, y=0.97, yanchor="top", yref="container"), width=1000, height=450,
                     margin=dict(t=90))
    paths.append(save_plotly(pf, out / "position_probe.html"))
    return paths


def rotary_figures(r: RotaryResult, out: Path) -> list[Path]:
    out = Path(out)
    prof = np.array(r.layer_profile)
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    im = ax[0].imshow(prof, aspect="auto", cmap="magma")
    ax[0].set(xlabel="rotary pair (0 = highest frequency)", ylabel="layer")
    ax[0].set_yticks(range(len(prof)))  # whole layers: a few rows would otherwise get ticks at 0.5
    ax[0].set_title("mean usage share |q_i||k_i| over heads", fontsize=9)
    fig.colorbar(im, ax=ax[0])
    heads = sorted(r.heads, key=lambda h: -h.high_share)
    U = np.array([h.usage for h in heads])
    im = ax[1].imshow(U, aspect="auto", cmap="magma")
    ax[1].set_yticks(range(len(heads)), [h.head for h in heads], fontsize=5 if len(heads) > 40 else 7)
    ax[1].set(xlabel="rotary pair", ylabel="head")
    ax[1].set_title("every head, most positional first", fontsize=9)
    fig.colorbar(im, ax=ax[1])
    fig.suptitle(f"Rotary frequency usage — {r.model}", fontsize=10)
    return [save_png(fig, out / "rotary_usage.png")]


FIGURES = {SinkResult: sink_figures, ProbeResult: probe_figures, RotaryResult: rotary_figures}


def figures(result, out: str | Path) -> list[Path]:
    """The figures registered for ``type(result)``, written into ``out``."""
    Path(out).mkdir(parents=True, exist_ok=True)
    return FIGURES[type(result)](result, Path(out))
