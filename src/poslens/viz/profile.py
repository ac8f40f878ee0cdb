"""The model profile's figure: every head's role scores, one grid per role, one shared colour scale.

>>> from poslens.viz.profile import profile_figures   # doctest: +SKIP
>>> profile_figures(profile, Path("out"))             # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import head_grid, save_plotly

_ROLES = (("prev_token_score", "previous-token", "previous_token"),
          ("score_repeated", "duplicate-token", "duplicate_token"),
          ("induction_score", "induction", "induction"),
          ("first_position_score", "first position (BOS)", "sink"))


def profile_figures(p, out: Path) -> list[Path]:
    """One heat map per measured role (layer x head, share of attention, 0..1); heads at or
    above the role's threshold are marked with their score."""
    out = Path(out)
    heads = p.heads
    roles = [r for r in _ROLES if any(getattr(h, r[0]) is not None for h in heads.values())]
    if not roles:
        return []
    cols = min(2, len(roles))
    rows = -(-len(roles) // cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.1, vertical_spacing=0.22 if rows > 1 else 0.1,
                        subplot_titles=[f"{label} (≥ {p.thresholds[role]})" for _, label, role in roles])
    for i, (field, label, role) in enumerate(roles):
        grid, layers = head_grid({f"{h.layer}.{h.head}": getattr(h, field) for h in heads.values()})
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
    return [save_plotly(fig, out / "profile_roles.html")]
