"""Figures for the logit lens: entropy per layer and position (top-1 token on hover or in
the cells), and last-token / mean entropy per layer.

>>> from poslens.viz.logit_lens import lens_figures   # doctest: +SKIP
>>> lens_figures(result, Path("out"))                # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from .common import glyph_safe, plt, png_wanted, save_plotly, save_png


def lens_figures(result, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if not result.entropy:
        return paths
    E = np.asarray(result.entropy, dtype=float)  # [points, positions]
    P, N = E.shape
    toks = [repr(t)[1:-1] for t in result.str_tokens]
    show = N <= 40
    if png_wanted():
        fig, ax = plt.subplots(figsize=(min(18, 2 + 0.55 * N) if show else 10, 1.2 + 0.42 * P))
        im = ax.imshow(E, aspect="auto", cmap="magma_r")
        ax.set_yticks(range(P), result.points, fontsize=7)
        ax.set_ylabel("residual point")
        if show:
            ax.set_xticks(range(N), toks, rotation=60, ha="right", fontsize=7)
            ax.set_xlabel("position: token")
            for i in range(P):
                for j in range(N):
                    ax.text(j, i, glyph_safe(repr(result.top1[i][j])[1:-1][:8]), ha="center", va="center",
                            fontsize=5, color="w" if E[i, j] > np.nanmean(E) else "k")
        else:
            ax.set_xlabel("position")
        ax.set_title(f"{result.model}: logit-lens entropy (nats); cells: top-1 next token")
        fig.colorbar(im, ax=ax)
        paths.append(save_png(fig, out / "lens_entropy.png"))
    hover = [[f"next: {result.top1[i][j]!r}<br>entropy {E[i, j]:.3f}" for j in range(N)] for i in range(P)]
    pf = go.Figure(go.Heatmap(z=E, x=[f"{j}:{t}" for j, t in enumerate(toks)], y=result.points, text=hover,
                              hoverinfo="text", colorscale="Magma", reversescale=True))
    # embeddings on top, as in the PNG and the report's other layer grids
    pf.update_layout(title=f"{result.model}: logit-lens entropy per layer and position", xaxis_title="position: token",
                     yaxis_title="residual point", yaxis_autorange="reversed")
    paths.append(save_plotly(pf, out / "lens_entropy.html"))

    if png_wanted():
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        x = np.arange(P)
        ax.plot(x, result.last_entropy, "-o", ms=3, label="last token")
        ax.plot(x, result.mean_entropy, "-s", ms=3, label="mean over tokens")
        for i, tk in enumerate(result.top_k):
            if tk:
                ax.annotate(glyph_safe(repr(tk[0].token)[1:-1][:10]), (i, result.last_entropy[i]), fontsize=6,
                            rotation=30, xytext=(2, 4), textcoords="offset points")
        ax.set_xticks(x, result.points, rotation=45, ha="right", fontsize=7)
        ax.set(xlabel="residual point", ylabel="entropy (nats)")
        ax.set_title(f"{result.prompt[:60]!r}", fontsize=9)
        ax.legend()
        paths.append(save_png(fig, out / "lens_entropy_by_layer.png"))
    pf = go.Figure()
    pf.add_scatter(x=result.points, y=result.last_entropy, name="last token",
                   text=[tk[0].token if tk else "" for tk in result.top_k])
    pf.add_scatter(x=result.points, y=result.mean_entropy, name="mean over tokens")
    pf.update_layout(title="logit-lens entropy by layer", xaxis_title="residual point", yaxis_title="entropy (nats)")
    paths.append(save_plotly(pf, out / "lens_entropy_by_layer.html"))
    return paths
