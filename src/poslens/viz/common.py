"""Saving figures the same way everywhere: PNG through matplotlib, interactive HTML through plotly.

Interactive figures are written with ``include_plotlyjs="directory"`` (one ``plotly.min.js``
beside them, no CDN), so they open offline; the report page inlines plotly once and embeds
their divs. Figures are made from results, never inside a computation.

>>> import matplotlib.pyplot as plt
>>> fig, ax = plt.subplots()
>>> save_png(fig, tmp_path / "x.png")                  # doctest: +SKIP
>>> save_plotly(go.Figure(), tmp_path / "x.html")      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_png(fig, path: str | Path, dpi: int = 110, tight: bool = True) -> Path:
    """Write a matplotlib figure as PNG and close it; ``tight=False`` skips ``tight_layout``,
    which costs seconds on 3-D axes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def save_plotly(fig, path: str | Path) -> Path:
    """Write a plotly figure as an offline HTML file (plotly.min.js beside it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs="directory")
    return path
