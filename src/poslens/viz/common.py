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

import math
import textwrap
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation  # noqa: E402


_DEFERRED: list | None = None
_SKIP_TWINS = False  # inside deferred_png(keep_twins=False): PNGs with an HTML twin will not be drawn


def png_wanted() -> bool:
    """False inside :func:`deferred_png` without ``keep_twins``, where a PNG that gets an HTML
    twin would be closed undrawn; True elsewhere (CLI commands, ``report --png``).

    >>> png_wanted()
    True
    """
    # Why: a report built ~25 twinned figures a model (3-4 s on tiny) only for deferred_png to close them.
    return not _SKIP_TWINS


def save_png(fig, path: str | Path, dpi: int = 110, tight: bool = True, bbox: str | None = None) -> Path:
    """Write a matplotlib figure as PNG and close it; ``tight=False`` skips ``tight_layout``,
    which costs seconds on 3-D axes; ``bbox="tight"`` crops to the drawn content instead.
    Inside :func:`deferred_png` it is only queued."""
    path = Path(path)
    if _DEFERRED is not None:
        _DEFERRED.append((fig, path, dpi, tight, bbox))
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches=bbox)
    plt.close(fig)
    return path


def save_3d_png(fig, path: Path, dpi: int = 100) -> Path:
    """Save a figure of 3-D axes without tight_layout, which costs seconds per 3-D panel.

    >>> save_3d_png(fig, out / "helix_3d.png")            # doctest: +SKIP
    """
    # fixed margins in inches (the figure's title over two-line panel titles; the PC1 label under the cube),
    # not shares of a figure whose height grows with its rows: 14% of one 3.4-inch row put the title on them
    h = fig.get_figheight()
    fig.subplots_adjust(left=0.0, right=0.97, bottom=0.3 / h, top=1 - 0.75 / h, wspace=0.05, hspace=0.15)
    return save_png(fig, path, dpi=dpi, tight=False)


@contextmanager
def deferred_png(keep_twins: bool = False):
    """Queue the PNGs drawn in this block; on leaving it, draw only those without an
    interactive twin (``name.html`` among the HTML files written in the block) unless
    ``keep_twins``. Drawing a PNG is most of a report's time (about 0.5 s each, 60 a
    model), and the page shows the interactive twin and only links the PNG. Figure functions
    ask :func:`png_wanted` (False here unless ``keep_twins``) and skip building a PNG that
    will get a twin; the twin check on leaving stays as a safety net for any that do not.

    >>> with deferred_png() as skipped:                    # doctest: +SKIP
    ...     paths = figures(result, out)                   # PNG + HTML pairs
    >>> skipped                                            # doctest: +SKIP
    """
    global _DEFERRED, _SKIP_TWINS
    previous, _DEFERRED = _DEFERRED, []
    previous_skip, _SKIP_TWINS = _SKIP_TWINS, not keep_twins
    queued, skipped = _DEFERRED, []
    try:
        yield skipped
    finally:
        _DEFERRED, _SKIP_TWINS = previous, previous_skip
    for fig, path, dpi, tight, bbox in queued:
        if not keep_twins and path.with_suffix(".html").is_file():
            plt.close(fig)
            skipped.append(path)
        else:
            save_png(fig, path, dpi=dpi, tight=tight, bbox=bbox)


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


DEFAULT_HEIGHT = 450


# Characters of a 17 px plotly title that fit one line of the narrowest report card a figure gets
# (half the page at 1280 px; the full width for one drawn wider than 640 px): a title naming a
# long model ("tiny-attn (random weights, seed 0)", a checkpoint path) ran off the card's edge.
TITLE_CHARS, TITLE_CHARS_WIDE = 56, 110


def _wrap_title(fig, chars: int) -> None:
    """Break a one-line title longer than ``chars`` at spaces, growing the top margin to hold it."""
    text = fig.layout.title.text
    if not text or "<br>" in text or len(text) <= chars:
        return
    lines = textwrap.wrap(text, chars, break_long_words=False, break_on_hyphens=False)
    fig.layout.title.text = "<br>".join(lines)
    # set just above the plot area (and above the top row's subplot titles, where a figure has them),
    # whatever position the figure gave its one line: plotly places a title's first line and hangs
    # the others below it, so a top-anchored one ran off the figure's top edge
    tops = [a.text or "" for a in fig.layout.annotations if a.yref == "paper" and (a.y or 0) >= 0.999]
    over = max((6 + 20 * (a.count("<br>") + 1) for a in tops), default=0)
    need = 34 + over + 22 * len(lines)
    if (fig.layout.margin.t if fig.layout.margin.t is not None else 100) < need:
        fig.update_layout(margin=dict(t=need))
    t = fig.layout.margin.t if fig.layout.margin.t is not None else 100
    bottom = t - over - 10 - 22 * (len(lines) - 1)  # the first line's, in px from the figure's top
    fig.update_layout(title=dict(y=1 - bottom / int(fig.layout.height or DEFAULT_HEIGHT), yanchor="bottom",
                                 yref="container"))


def save_plotly(fig, path: str | Path) -> Path:
    """Write a plotly figure as an offline HTML file (plotly.min.js beside it, or the shared one).

    The figure is made responsive: it takes the width of whatever holds it (a report card,
    a browser window) and keeps the height it was drawn with. The width it was drawn for is
    kept as ``layout.meta.poslens_natural_width`` (and its height as ``poslens_height``), so
    the report can give a wide figure a wide card of the right height.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _whole_ticks(fig)
    natural = fig.layout.width or 0
    _wrap_title(fig, TITLE_CHARS_WIDE if natural > 640 else TITLE_CHARS)
    height = int(fig.layout.height or DEFAULT_HEIGHT)
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    fig.update_layout(width=None, autosize=True, height=height, meta={**meta, "poslens_natural_width": int(natural),
                                                                 "poslens_height": height})
    fig.write_html(str(path), include_plotlyjs=_SHARED_PLOTLY or "directory", config={"responsive": True},
                   default_width="100%", default_height=f"{height}px")
    return path


# From plotly's default eye a cube overfills a scene narrower than it is tall (three side by side in
# a report card): its corners, the z axis's tick labels and its title fall outside the scene and are
# cut. Stepped back and looking a little off-centre, every label stays inside at 1280 and 1920 px.
SCENE_CAMERA = {"eye": {"x": 2.3, "y": 2.3, "z": 1.6}, "center": {"x": 0.15, "y": -0.15, "z": 0.0}}


def pad3(coords) -> np.ndarray:
    """Coordinates with zero columns added up to three, so fewer than 3 still draw in 3-D.

    >>> pad3([[1.0], [2.0]]).shape
    (2, 3)
    """
    c = np.asarray(coords)
    return c if c.shape[1] >= 3 else np.c_[c, np.zeros((len(c), 3 - c.shape[1]))]


def _whole_ticks(fig, most: int = 40) -> None:
    """A heat map over whole numbers (layers, heads, indices) ticks at whole numbers: on a grid of a
    few cells plotly's own ticks fall between them (-0.5, 0.5, 1.5). An axis given ticks is left."""
    for tr in fig.data:
        if tr.type != "heatmap" or tr.z is None or not len(tr.z):
            continue
        for axis, coords, n in (("x", tr.x, len(tr.z[0])), ("y", tr.y, len(tr.z))):
            whole = coords is None or all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in coords)
            # the span, not the count: 32 sampled positions of 1,024 ticked one by one are 1,024 labels
            span = n if not whole or coords is None or not len(coords) else int(max(coords)) - int(min(coords)) + 1
            ref = getattr(tr, f"{axis}axis") or axis  # "x2" lives in layout.xaxis2
            ax = fig.layout[f"{axis}axis{ref[1:]}"]
            if whole and span <= most and ax.dtick is None and ax.tickvals is None and ax.tickmode is None:
                ax.dtick = 1


_CHARMAP: set[int] | None = None


def glyph_safe(text: str) -> str:
    """``text`` with every character matplotlib's font cannot draw written as an escape
    (emoji in a prompt would otherwise print a missing-glyph warning per character and
    draw an empty box). A private-use character is in no font:

    >>> glyph_safe("ok \\ue000")
    'ok \\\\ue000'
    """
    global _CHARMAP
    if _CHARMAP is None:
        from matplotlib import font_manager
        from matplotlib.ft2font import FT2Font

        font = font_manager.findfont(font_manager.FontProperties(family=matplotlib.rcParams["font.family"]))
        _CHARMAP = set(FT2Font(font).get_charmap())
    return "".join(c if ord(c) in _CHARMAP or c in "\n\t" else c.encode("unicode_escape").decode("ascii") for c in text)


def head_grid(values: dict) -> tuple[np.ndarray, list[int]]:
    """A layer x head grid of ``values`` keyed ``"layer.head"`` (NaN where a head has none or
    is missing) and the layers its rows stand for.

    >>> head_grid({"0.1": 0.5, "2.0": None})
    (array([[nan, 0.5], [nan, nan]]), [0, 2])
    """
    cells = [(*map(int, name.split(".")), v) for name, v in values.items()]
    layers = sorted({l for l, _, _ in cells})
    grid = np.full((len(layers), max(h for _, h, _ in cells) + 1), np.nan)
    for l, h, v in cells:
        if v is not None:
            grid[layers.index(l), h] = v
    return grid, layers


def set_wrapped_title(ax, text: str, fontsize: float = 9) -> None:
    """Title ``ax`` with ``text`` wrapped to its figure's width: a heat map of a few heads is two
    inches wide, and a one-line title longer than that is cut off at the PNG's edges.

    >>> fig, ax = plt.subplots(figsize=(2, 2))
    >>> set_wrapped_title(ax, "induction score (attention to the token after the earlier copy)")
    >>> len(ax.get_title().splitlines()) > 1
    True
    """
    chars = max(16, int(ax.figure.get_figwidth() * 0.9 * 72 / (0.6 * fontsize)))  # a character is ~0.6 em wide
    ax.set_title("\n".join(textwrap.fill(line, chars) for line in text.split("\n")), fontsize=fontsize)


def heatmap_png(ax, grid, rows, cols=None, xlabel: str = "head", ylabel: str = "layer", aspect: str = "auto", **imshow):
    """Draw ``grid`` on the matplotlib ``ax`` (``imshow`` gives its colour map and limits) with its colour
    bar and a tick on every cell, rows labelled ``rows`` and columns ``cols`` (default: their index);
    matplotlib's own ticks on a grid of a few cells fall between them (-0.5, 0.5). Returns the image.

    >>> fig, ax = plt.subplots()
    >>> heatmap_png(ax, np.eye(2), [3, 4], cmap="magma").get_cmap().name
    'magma'
    """
    im = ax.imshow(grid, aspect=aspect, **imshow)
    ax.set_xticks(range(np.shape(grid)[1]), cols)
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.figure.colorbar(im, ax=ax)
    return im


def subplot_colorbar(fig, row: int, col: int, title: str | None = None) -> dict:
    """A colour bar just right of subplot (row, col), as tall as it: give each panel of a
    ``make_subplots`` figure its own bar without covering its neighbour or its title
    (leave ``horizontal_spacing`` of about 0.1 for the bar and its tick labels).

    >>> fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12)            # doctest: +SKIP
    >>> fig.add_trace(go.Heatmap(z=z, colorbar=subplot_colorbar(fig, 1, 1)), row=1, col=1)   # doctest: +SKIP
    """
    sub = fig.get_subplot(row, col)
    (_, x1), (y0, y1) = sub.xaxis.domain, sub.yaxis.domain
    bar = dict(x=x1 + 0.005, xanchor="left", xref="paper", y=(y0 + y1) / 2, yanchor="middle", yref="paper",
               len=(y1 - y0), lenmode="fraction", thickness=10, outlinewidth=0)
    if title:
        bar["title"] = dict(text=title, side="right")
    return bar


class _LogLabels(LogFormatterSciNotation):
    """Matplotlib's log-axis labels, of which those between powers of ten only at 2 and 5 times one;
    written out ("0.5", "2", "200") on an axis whose view lies within 0.001..10^5, as powers beyond."""

    def __init__(self):
        # (1, inf): above one power of ten in view only the powers are labelled, as by default; at or
        # below it every tick is a candidate (matplotlib's own middle setting labels 2, 3, 4 and 6).
        super().__init__(labelOnlyBase=False, minor_thresholds=(1, math.inf))

    def __call__(self, x, pos=None):
        if x > 0 and round(x / 10.0 ** math.floor(math.log10(x) + 1e-9)) not in (1, 2, 5):
            return ""
        label = super().__call__(x, pos)
        lo, hi = sorted(self.axis.get_view_interval()) if self.axis is not None else (0.0, math.inf)
        # "2×10⁰" beside "10¹" reads worse than "2" beside "10" where every number is short
        return f"{x:g}" if label and lo >= 1e-3 and hi <= 1e5 else label


def sparse_log_labels(*axes) -> None:
    """Label the minor ticks of these matplotlib log axes (``ax.xaxis``, ``ax.yaxis``) at most at
    2 and 5 times a power of ten, written out where the view lies within 0.001..10^5. When the
    view holds at most one power of ten matplotlib labels 2, 3, 4 and 6 times it, and 3 and 4
    lie an eighth of a decade apart: their labels run into each other on an x axis or a short y
    axis; and it writes them as 2×10⁰.

    >>> fig, ax = plt.subplots(); ax.set_xscale("log"); ax.set_xlim(2, 30)   # doctest: +SKIP
    >>> sparse_log_labels(ax.xaxis)                                           # doctest: +SKIP
    """
    for axis in axes:
        axis.set_major_formatter(_LogLabels())
        axis.set_minor_formatter(_LogLabels())


def log_ticks(values, max_decades: float = 3.0, max_labels: int = 8) -> dict:
    """Tick settings for a plotly log axis over ``values`` (non-positive and NaN ignored): within
    ``max_decades``, ticks at 1, 2 and 5 times each power of ten, written out in full; wider,
    only powers of ten (every ``dtick``-th where more than ``max_labels`` would show), written
    as powers; ``{}`` (plotly's own ticks) when none is positive. On a short log axis plotly
    labels every digit 2-9 of a decade as a bare digit, crowded and easy to misread; on a long
    one 2 and 5 of each decade, which crowd a narrow panel ("5 2 1 5 2").

    >>> log_ticks([0.03, 0.4])["ticktext"]
    ['0.01', '0.02', '0.05', '0.1', '0.2', '0.5', '1']
    >>> log_ticks([1e-6, 30])
    {'dtick': 1, 'exponentformat': 'power'}
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return {}
    lo, hi = math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))
    if math.log10(v.max() / v.min()) > max_decades:
        return {"dtick": max(1, math.ceil((hi - lo) / max_labels)), "exponentformat": "power"}
    vals = [float(f"{s * 10.0 ** e:.1g}") for e in range(lo, hi + 1) for s in (1, 2, 5) if e < hi or s == 1]
    return {"tickvals": vals, "ticktext": [f"{t:g}" for t in vals]}


def ramp(t: float, cmap: str = "viridis") -> str:
    """The colour at ``t`` (0..1) of a matplotlib colour map, as hex for plotly: lines coloured
    along a ramp (layers, residual points) get the same colours in the HTML as in the PNG.

    >>> ramp(0.0)
    '#440154'
    """
    return matplotlib.colors.to_hex(plt.get_cmap(cmap)(float(t)))
