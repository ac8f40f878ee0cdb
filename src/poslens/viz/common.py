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

from contextlib import contextmanager
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


_SHARED_PLOTLY: str | None = None


@contextmanager
def shared_plotly(js_file: str | Path, src: str):
    """Within this block, figures load one shared ``plotly.min.js`` (written to ``js_file`` if
    absent) through the relative ``src``, instead of each directory getting its own 4.6 MB copy.

    >>> with shared_plotly(out / "figures" / "plotly.min.js", "../plotly.min.js"):   # doctest: +SKIP
    ...     save_plotly(fig, out / "figures" / "helix" / "helix_3d.html")
    """
    global _SHARED_PLOTLY
    js_file = Path(js_file)
    if not js_file.is_file():
        from plotly.offline import get_plotlyjs

        from ..io import atomic_write_text

        atomic_write_text(js_file, get_plotlyjs())
    previous, _SHARED_PLOTLY = _SHARED_PLOTLY, src
    try:
        yield
    finally:
        _SHARED_PLOTLY = previous


def save_plotly(fig, path: str | Path) -> Path:
    """Write a plotly figure as an offline HTML file (plotly.min.js beside it, or the shared one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=_SHARED_PLOTLY or "directory")
    return path


_CHARMAP: set[int] | None = None


def glyph_safe(text: str) -> str:
    """``text`` with every character matplotlib's font cannot draw written as ``\\U0001f600``
    (emoji in a prompt would otherwise print a missing-glyph warning per character and
    draw an empty box).

    >>> glyph_safe("ok \\U0001f600")
    'ok \\\\U0001f600'
    """
    global _CHARMAP
    if _CHARMAP is None:
        from matplotlib import font_manager
        from matplotlib.ft2font import FT2Font

        font = font_manager.findfont(font_manager.FontProperties(family=matplotlib.rcParams["font.family"]))
        _CHARMAP = set(FT2Font(font).get_charmap())
    return "".join(c if ord(c) in _CHARMAP or c in "\n\t" else c.encode("unicode_escape").decode("ascii") for c in text)
