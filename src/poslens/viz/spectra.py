"""Figures for weight spectra and QK structure: PNG (matplotlib) and offline HTML (plotly).

>>> from poslens.viz.spectra import spectra_figures      # doctest: +SKIP
>>> spectra_figures(result, Path("out"))                 # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import head_grid, heatmap_png, log_ticks, plt, png_wanted, ramp, save_plotly, save_png, subplot_colorbar

# (metric, title, transform of a matrix's metrics dict to the plotted value)
_PANELS = (
    ("effective_rank", "effective rank / full rank", lambda d: d.effective_rank / min(d.shape)),
    ("condition", "log10 condition number", lambda d: math.log10(d.condition) if d.condition and math.isfinite(d.condition) else np.nan),
    ("log_volume", "log-volume / full rank (mean log sigma)", lambda d: d.log_volume / min(d.shape) if d.log_volume is not None and math.isfinite(d.log_volume) else np.nan),
)


def _grid(result, fn) -> tuple[np.ndarray, list[str], list[int]]:
    mats = list(result.matrices)
    layers = sorted({int(l) for v in result.matrices.values() for l in v})
    g = np.full((len(layers), len(mats)), np.nan)
    for j, m in enumerate(mats):
        for l, d in result.matrices[m].items():
            g[layers.index(int(l)), j] = fn(d)
    return g, mats, layers


def spectra_figures(result, out: Path) -> list[Path]:
    """Heat-maps over layers x matrices, singular-value spectra, QK distances per head."""
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if result.matrices:
        grids = [(title, *_grid(result, fn)) for _, title, fn in _PANELS]  # (title, grid, matrices, layers)
        if png_wanted():
            fig, axes = plt.subplots(1, len(_PANELS), figsize=(4.2 * len(_PANELS), 1.5 + 0.32 * len(result.layers)))
            for ax, (title, g, mats, layers) in zip(np.atleast_1d(axes), grids):
                heatmap_png(ax, g, layers, mats, xlabel="matrix", cmap="viridis")
                ax.set_title(title, fontsize=9)
            fig.suptitle(f"{result.model}: weight anisotropy")
            paths.append(save_png(fig, out / "spectra_heatmap.png"))
        pf = make_subplots(rows=1, cols=len(_PANELS), subplot_titles=[t for _, t, _ in _PANELS],
                           horizontal_spacing=0.1)
        for i, (title, g, mats, layers) in enumerate(grids):
            pf.add_trace(go.Heatmap(z=g, x=mats, y=[str(l) for l in layers], colorscale="Viridis",
                                    colorbar=subplot_colorbar(pf, 1, i + 1), name=title),
                         row=1, col=i + 1)
        # layer 0 on top, as in the PNG (imshow) and every layer grid of the report
        pf.update_xaxes(title_text="matrix")
        pf.update_yaxes(title_text="layer", autorange="reversed")
        pf.update_layout(title=f"{result.model}: weight anisotropy over layers and matrices",
                         width=300 * len(_PANELS), margin=dict(r=50))
        paths.append(save_plotly(pf, out / "spectra_heatmap.html"))

        # per matrix with any: (position in the layer colour ramp, layer, singular values), empty spectra left out
        spectra: dict[str, list] = {}
        for m, by_layer in result.matrices.items():
            ordered = sorted(by_layer.items(), key=lambda kv: int(kv[0]))
            L = max(1, len(ordered) - 1)
            curves = [(i / L, l, np.asarray(d.singular_values, dtype=float))
                      for i, (l, d) in enumerate(ordered) if d.singular_values]
            if curves:
                spectra[m] = curves
        if spectra:
            n = len(spectra)
            # one y axis for all panels: a title and tick labels once, not crowded into each 260 px panel
            # (a matrix of zeros, an attention-only model's MLP, has nothing to draw on a log axis)
            titles = [m if any((sv > 0).any() for _, _, sv in c) else f"{m} (all zero)" for m, c in spectra.items()]
            if png_wanted():
                fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.2), squeeze=False, sharey=True)
                cmap = plt.get_cmap("viridis")
                for j, ((m, curves), title) in enumerate(zip(spectra.items(), titles)):
                    ax = axes[0, j]
                    for t, l, sv in curves:
                        # log10 on a linear axis: six log-scaled axes cost seconds of tick layout
                        with np.errstate(divide="ignore"):
                            ax.plot(np.where(sv > 0, np.log10(sv), np.nan), color=cmap(t), lw=1, label=f"layer {l}")
                    ax.set(title=title, xlabel="index", xlim=(0, max(1, max(sv.size for _, _, sv in curves) - 1)))
                    if j == 0:
                        ax.set_ylabel("log10 singular value")
                axes[0, -1].legend(fontsize=6, ncol=2)
                paths.append(save_png(fig, out / "spectra_singular_values.png"))
            pf = make_subplots(rows=1, cols=n, subplot_titles=titles, shared_yaxes=True)
            for j, (m, curves) in enumerate(spectra.items()):
                for t, l, sv in curves:
                    pf.add_scatter(y=sv, mode="lines", name=f"{m} layer {l}", legendgroup=m, row=1, col=j + 1,
                                   line=dict(width=1, color=ramp(t)))
            # over many decades only the powers of ten
            pf.update_yaxes(type="log", **log_ticks(np.concatenate([sv for c in spectra.values() for _, _, sv in c])))
            pf.update_yaxes(title_text="singular value", row=1, col=1)
            pf.update_xaxes(title_text="index")
            pf.update_layout(title=f"{result.model}: singular values (hover for the layer)", width=max(700, 260 * n),
                             showlegend=False)
            paths.append(save_plotly(pf, out / "spectra_singular_values.html"))

    if result.qk:
        panels = (("symmetry", "d(M_h, M_h^T)"), ("identity_scaled", "d(M_h scaled to |I|, I)"), ("identity", "d(M_h, I)"))
        grids = [head_grid({k: getattr(v, key) for k, v in result.qk.items()})[0] for key, _ in panels]
        layers = sorted({int(k.split(".")[0]) for k in result.qk})
        H = grids[0].shape[1]
        if png_wanted():
            fig, axes = plt.subplots(1, 3, figsize=(4 + 0.9 * H, 1.5 + 0.32 * len(layers)))
            for ax, (key, title), g in zip(axes, panels, grids):
                heatmap_png(ax, g, layers, cmap="magma")
                ax.set_title(title, fontsize=9)
            fig.suptitle(f"{result.model}: QK structure M_h = W_Q^h W_K^hT")
            paths.append(save_png(fig, out / "qk_distances.png"))
        pf = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in panels], horizontal_spacing=0.1)
        for i, g in enumerate(grids):
            pf.add_trace(go.Heatmap(z=g, x=list(range(H)), y=[str(l) for l in layers], colorscale="Magma",
                                    colorbar=subplot_colorbar(pf, 1, i + 1)), row=1, col=i + 1)
        pf.update_xaxes(title_text="head")
        pf.update_yaxes(title_text="layer", autorange="reversed")
        pf.update_layout(title=f"{result.model}: QK distances per head", width=1000, margin=dict(r=50))
        paths.append(save_plotly(pf, out / "qk_distances.html"))
    return paths


def sphere_figures(result, out: Path) -> list[Path]:
    """Histogram of ``r_i + r_j - d_ij`` (overlap when positive) and the positional norms summary."""
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    h = result.margin_histogram
    if h and h.counts:
        edges = np.asarray(h.edges, dtype=float)
        counts = np.asarray(h.counts, dtype=float)
        mids = (edges[:-1] + edges[1:]) / 2
        if png_wanted():
            fig, ax = plt.subplots(figsize=(6, 3.8))
            ax.bar(mids, counts, width=np.diff(edges), color=np.where(mids > 0, "tab:orange", "tab:blue"))
            ax.axvline(0, color="k", lw=0.8)
            ax.set_xlabel("sum of positional radii - distance between token embeddings")
            ax.set_ylabel(f"pairs ({h.trials} trials)")
            ax.set_title(f"{result.model}: {100 * result.mean_share:.2f}% of pairs overlap")
            paths.append(save_png(fig, out / "sphere_overlap.png"))
        pf = go.Figure(go.Bar(x=mids, y=counts, marker_color=["orange" if m > 0 else "steelblue" for m in mids]))
        pf.update_layout(title=f"{result.model}: r_i + r_j - d_ij (overlap when > 0)", xaxis_title="margin",
                         yaxis_title="pairs")
        paths.append(save_plotly(pf, out / "sphere_overlap.html"))
    return paths
