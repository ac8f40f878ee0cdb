"""Figures for hidden-state subspaces: Gram spectra with the Marchenko-Pastur edge,
principal angles and signal dimensions per layer, overlap matrices and the MDS map.

>>> from poslens.viz.subspaces import subspace_figures   # doctest: +SKIP
>>> subspace_figures(result, Path("out"))                # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .common import heatmap_png, log_ticks, plt, png_wanted, ramp, save_plotly, save_png


def _short(label: str) -> str:
    return "E" if label == "embed" else label.replace("block ", "").replace(" +ln_f", "f")


def subspace_figures(result, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    prompts = result.prompts
    names = list(prompts)
    if not names:
        return paths
    n = len(names)

    # 1. Gram spectra with the MP edge, one panel per prompt.
    if all(prompts[k].eigenvalues is not None for k in names):
        arrays = {k: [np.asarray(ev, dtype=float) for ev in prompts[k].eigenvalues] for k in names}
        positive = {k: [ev[ev > 0] for ev in evs] for k, evs in arrays.items()}
        if png_wanted():
            cmap = plt.get_cmap("viridis")
            fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
            for j, k in enumerate(names):
                g = prompts[k]
                ax = axes[0, j]
                P = len(g.points)
                for i, (lab, ev, mp) in enumerate(zip(g.points, positive[k], g.mp)):
                    c = cmap(i / max(1, P - 1))
                    ax.semilogy(np.arange(1, ev.size + 1), ev, color=c, lw=1, label=lab)
                    ax.axhline(mp.edge, color=c, lw=0.6, ls="--")
                ax.set_title(f"{k}: {g.n_tokens} tokens (dashed: MP edge)", fontsize=9)
                ax.set_xlabel("eigenvalue index")
                if j == 0:
                    ax.set_ylabel("Gram eigenvalue / (N-1)")
            axes[0, -1].legend(fontsize=6)
            paths.append(save_png(fig, out / "subspace_spectra.png"))
        # room between panels for each one's y title and its 10^-n tick labels (panels differ in range)
        pf = make_subplots(rows=1, cols=n, subplot_titles=[f"{k} ({prompts[k].n_tokens} tokens)" for k in names],
                           horizontal_spacing=0.3 / n)
        for j, k in enumerate(names):
            P = len(prompts[k].points)
            for i, (lab, ev) in enumerate(zip(prompts[k].points, positive[k])):
                # one legend entry per point (its colour in every panel); prompts are the panels
                pf.add_scatter(x=np.arange(1, ev.size + 1), y=ev, mode="lines", name=lab, legendgroup=lab,
                               showlegend=j == 0, line=dict(width=1, color=ramp(i / max(1, P - 1))), row=1, col=j + 1)
            shown = [ev for ev in positive[k] if ev.size]
            pf.update_yaxes(type="log", **log_ticks(np.concatenate(shown) if shown else []), row=1, col=j + 1)
        pf.update_xaxes(title_text="eigenvalue index")
        pf.update_yaxes(title_text="Gram eigenvalue / (N-1)")
        # a panel per prompt plus a legend: drawn wide, so the report gives it a full-width card
        pf.update_layout(title=f"{result.model}: Gram spectra of centred hidden states", width=max(700, 320 * n),
                         legend=dict(tracegroupgap=0))  # a group per point: no gap between them, so 13+ fit
        paths.append(save_plotly(pf, out / "subspace_spectra.html"))

    # 2. Signal dimension and effective dimensionality per point; principal-angle sums between consecutive points.
    xlabel = "point (E = embeddings, i = after block i)"
    labels = ((xlabel, "dimensions"), (xlabel, "dimensions"), ("consecutive points", "sum of principal angles (deg)"))
    series = []  # per prompt: (name, points, MP dims, gap dims, consecutive pairs, their angle sums)
    for k in names:
        g = prompts[k]
        series.append((k, [_short(p) for p in g.points], [m.k for m in g.mp], [q.k for q in g.gap],
                       [f"{_short(c_.pair[0])}-{_short(c_.pair[1])}" for c_ in g.consecutive],
                       [c_.sum_deg if c_.sum_deg is not None else np.nan for c_ in g.consecutive]))
    if png_wanted():
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        for j, (k, x, mp_dims, gap_dims, xs, ys) in enumerate(series):
            g = prompts[k]
            c = f"C{j}"
            axes[0].plot(x, mp_dims, "-o", color=c, ms=3, label=f"{k} MP")
            axes[0].plot(x, gap_dims, ":", color=c, label=f"{k} gap")
            axes[1].plot(x, g.participation_ratio, "-o", color=c, ms=3, label=f"{k} participation ratio")
            axes[1].plot(x, g.effective_rank, ":", color=c, label=f"{k} effective rank")
            axes[2].plot(xs, ys, "-o", color=c, ms=3, label=k)
        for ax, (x_title, y_title) in zip(axes, labels):
            ax.set_xlabel(x_title, fontsize=8)
            ax.set_ylabel(y_title)
            ax.legend(fontsize=6)
            ax.tick_params(axis="x", labelsize=7, rotation=45)
        paths.append(save_png(fig, out / "subspace_dims_angles.png"))
    pf = make_subplots(rows=1, cols=3, subplot_titles=["signal dimensions (MP / gap)", "effective dimensionality",
                                                       "principal-angle sum, consecutive points (deg)"],
                       horizontal_spacing=0.09)  # room for each panel's y title
    for j, (k, x, mp_dims, gap_dims, xs, ys) in enumerate(series):
        c = qualitative.D3[j % len(qualitative.D3)]  # one colour per prompt, matplotlib's C0, C1 ... as in the PNG
        pf.add_scatter(x=x, y=mp_dims, name=f"{k} MP dims", line=dict(color=c), row=1, col=1)
        pf.add_scatter(x=x, y=gap_dims, name=f"{k} gap dims", line=dict(color=c, dash="dot"), row=1, col=1)
        pf.add_scatter(x=x, y=prompts[k].participation_ratio, name=f"{k} participation ratio", line=dict(color=c),
                       row=1, col=2)
        pf.add_scatter(x=x, y=prompts[k].effective_rank, name=f"{k} effective rank", line=dict(color=c, dash="dot"),
                       row=1, col=2)
        pf.add_scatter(x=xs, y=ys, name=f"{k} PA sum", line=dict(color=c), row=1, col=3)
    for c, (x_title, y_title) in enumerate(labels, 1):
        pf.update_xaxes(title_text=x_title, row=1, col=c)
        pf.update_yaxes(title_text=y_title, row=1, col=c)
    pf.update_layout(title=f"{result.model}: signal subspaces across layers", width=1000)
    paths.append(save_plotly(pf, out / "subspace_dims_angles.html"))

    # 3. Overlap matrices.
    overlaps = [(k, np.asarray(prompts[k].overlap_matrix, dtype=float), [_short(p) for p in prompts[k].points])
                for k in names]
    if png_wanted():
        fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.4), squeeze=False)
        for ax, (k, m, lab) in zip(axes[0], overlaps):
            heatmap_png(ax, m, lab, lab, xlabel="point", ylabel="point", aspect="equal", vmin=0, vmax=1, cmap="viridis")
            ax.tick_params(labelsize=7)
            ax.set_title(f"{k}: overlap (cos > {result.options.get('threshold')})", fontsize=9)
        paths.append(save_png(fig, out / "subspace_overlap.png"))
    pf = make_subplots(rows=1, cols=n, subplot_titles=names)
    for j, (k, m, lab) in enumerate(overlaps):
        pf.add_trace(go.Heatmap(z=m, x=lab, y=lab, zmin=0, zmax=1, colorscale="Viridis", showscale=j == n - 1),
                     row=1, col=j + 1)
        pf.update_xaxes(title_text="point", row=1, col=j + 1)
        pf.update_yaxes(title_text="point", autorange="reversed", row=1, col=j + 1)  # first point on top, as in the PNG
    pf.update_layout(title=f"{result.model}: share of shared signal directions between points", width=max(700, 300 * n))
    paths.append(save_plotly(pf, out / "subspace_overlap.html"))

    # 4. MDS of the subspaces by Grassmann distance.
    mds_axes = ("MDS 1 (Grassmann distance, rad)", "MDS 2 (rad)")
    maps = [(k, np.asarray(prompts[k].mds, dtype=float).reshape(-1, 2), [_short(p) for p in prompts[k].mds_points])
            for k in names]
    if png_wanted():
        fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.6), squeeze=False)
        for j, (k, Y, lab) in enumerate(maps):
            ax = axes[0, j]
            if len(Y):
                ax.plot(Y[:, 0], Y[:, 1], "-", color="0.7", lw=0.8)
                ax.scatter(Y[:, 0], Y[:, 1], c=np.arange(len(Y)), cmap="viridis", zorder=3)
                for (a, b), t in zip(Y, lab):
                    ax.annotate(t, (a, b), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_title(f"{k}: MDS by Grassmann distance", fontsize=9)
            ax.set(xlabel=mds_axes[0], ylabel=mds_axes[1])
            ax.set_aspect("equal", adjustable="datalim")
        paths.append(save_png(fig, out / "subspace_mds.png"))
    pf = make_subplots(rows=1, cols=n, subplot_titles=names)
    for j, (k, Y, lab) in enumerate(maps):
        if len(Y):
            pf.add_scatter(x=Y[:, 0], y=Y[:, 1], mode="lines+markers+text", text=lab, name=k, textposition="top right",
                           line=dict(color="#b3b3b3", width=1),
                           marker=dict(color=[ramp(i / max(1, len(Y) - 1)) for i in range(len(Y))], size=8),
                           row=1, col=j + 1)
        pf.update_xaxes(title_text=mds_axes[0], row=1, col=j + 1)
        pf.update_yaxes(title_text=mds_axes[1], row=1, col=j + 1)
    # the panels' titles name the prompts: no legend
    pf.update_layout(title=f"{result.model}: layers' signal subspaces, MDS by Grassmann distance",
                     width=max(700, 300 * n), showlegend=False)
    paths.append(save_plotly(pf, out / "subspace_mds.html"))
    return paths
