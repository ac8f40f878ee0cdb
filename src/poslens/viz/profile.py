"""The model profile's figure: every head's role scores, one grid per role, one shared colour scale.

>>> from poslens.viz.profile import profile_figures   # doctest: +SKIP
>>> profile_figures(profile, Path("out"))             # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import head_grid, heatmap_png, plt, png_wanted, save_plotly, save_png, set_wrapped_title

_ROLES = (("prev_token_score", "previous-token", "previous_token"),
          ("score_repeated", "duplicate-token", "duplicate_token"),
          ("induction_score", "induction", "induction"),
          ("first_position_score", "first position (BOS)", "sink"))


def profile_figures(p, out: Path) -> list[Path]:
    """One heat map per measured role (layer x head, share of attention, 0..1); heads at or
    above the role's threshold are marked with their score. With PNGs wanted, the same grids
    as ``profile_roles.png`` beside ``profile_roles.html``."""
    out = Path(out)
    heads = p.heads
    roles = [r for r in _ROLES if any(getattr(h, r[0]) is not None for h in heads.values())]
    if not roles:
        return []
    cols = min(2, len(roles))
    rows = -(-len(roles) // cols)
    grids = [head_grid({f"{h.layer}.{h.head}": getattr(h, field) for h in heads.values()}) for field, _, _ in roles]
    paths = [_png(p, roles, grids, rows, cols, out)] if png_wanted() else []
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.1, vertical_spacing=0.22 if rows > 1 else 0.1,
                        subplot_titles=[f"{label} (≥ {p.thresholds[role]})" for _, label, role in roles])
    for i, ((field, label, role), (grid, layers)) in enumerate(zip(roles, grids)):
        text = np.where(grid >= p.thresholds[role], np.vectorize(lambda v: f"{v:.2f}")(np.nan_to_num(grid)), "")
        fig.add_trace(go.Heatmap(z=grid, x=list(range(grid.shape[1])), y=[str(l) for l in layers],
                                 coloraxis="coloraxis", text=text, texttemplate="%{text}", name=label,
                                 hovertemplate=f"{label}: head %{{y}}.%{{x}} %{{z:.3f}}<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
        fig.update_xaxes(title_text="head", row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(title_text="layer", autorange="reversed", row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(title=f"{p.model}: share of each head's attention, by role", height=260 * rows + 120,
                      coloraxis=dict(colorscale="Viridis", cmin=0, cmax=1,
                                     colorbar=dict(title="share", thickness=12, len=0.6)),
                      margin=dict(t=90, l=60, r=20, b=50))
    return [*paths, save_plotly(fig, out / "profile_roles.html")]


def _png(p, roles, grids, rows: int, cols: int, out: Path) -> Path:
    H, L = grids[0][0].shape[1], len(grids[0][1])
    cell_w, cell_h = (0.5, 0.45) if H <= 16 else (0.25, 0.22)  # GPT-2 small's 12 x 12 fits a page column at 0.5
    # past ~36 inches a side (4000 px) the cells shrink: a 128-head or 126-layer model stays a PNG one can open
    cell_w, cell_h = min(cell_w, (36 / cols - 1.6) / H), min(cell_h, (36 / rows - 1.2) / L)
    size = (cols * (1.6 + cell_w * H), rows * (1.2 + cell_h * L))
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=size)
    for ax, (_, label, role), (grid, layers) in zip(axes.flat, roles, grids):
        heatmap_png(ax, grid, layers, vmin=0, vmax=1, cmap="viridis")
        set_wrapped_title(ax, f"{label} (≥ {p.thresholds[role]})")
        if cell_h < 0.16:  # rows lower than a tick label: every few layers
            step = math.ceil(0.16 / cell_h)
            ax.set_yticks(range(0, L, step), [str(l) for l in layers[::step]])
        if H > 16:  # cells too small for a tick label each, or for their scores
            step = 4 * math.ceil(0.25 / cell_w)
            ax.set_xticks(range(0, H, step), [str(h) for h in range(0, H, step)])
        else:
            for (r, c), v in np.ndenumerate(grid):
                if v >= p.thresholds[role]:  # NaN compares False: unmeasured heads stay unmarked
                    ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="black" if v > 0.6 else "white")
    for ax in axes.flat[len(roles):]:
        ax.set_visible(False)
    return save_png(fig, out / "profile_roles.png")
