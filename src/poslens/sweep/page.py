"""The sweep page: each metric against training step, one row per model, flagged revisions marked.

One self-contained HTML file (plotly inlined once, the report's style); PNGs of each
metric (one line per model) go to ``OUT/figures`` for papers and slides.

>>> write_page(merged, Path("poslens-out/sweep"))     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from ..io import atomic_write_text
from ..report.page import _head, esc, fmt


def _x(rows: list[dict]) -> tuple[list, str, bool]:
    """x values (tokens seen where every row knows them, else step), the axis title, and whether to use a log axis."""
    if rows and all(r["tokens"] is not None for r in rows):
        xs, title = [r["tokens"] for r in rows], "tokens seen"
    elif rows and all(r["step"] is not None for r in rows):
        xs, title = [r["step"] for r in rows], "training step"
    else:
        return list(range(len(rows))), "checkpoint (training step unknown)", False
    pos = [x for x in xs if x > 0]
    log = len(pos) >= 3 and max(pos) / min(pos) >= 20
    if log:  # a log axis cannot show 0: step 0 sits half a decade left of the first positive step
        zero = min(pos) / math.sqrt(10)
        xs = [x if x > 0 else zero for x in xs]
        title += " (log; step 0 drawn left of the first step)"
    return xs, title, log


def _model_figure(merged: dict, model: str):
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    from ..viz.common import log_ticks

    names = [n for n, m in merged["metrics"].items() if any(r["model"] == model and r["value"] is not None
                                                             for r in m["rows"])]
    if not names:
        return None
    cols = 3
    rows_n = math.ceil(len(names) / cols)
    # no axes in the last row's empty cells: plotly would draw an empty panel there
    fig = make_subplots(rows=rows_n, cols=cols, subplot_titles=names, horizontal_spacing=0.07,
                        vertical_spacing=0.32 / max(rows_n, 1) + 0.04,
                        specs=[[{} if r * cols + c < len(names) else None for c in range(cols)] for r in range(rows_n)])
    for i, name in enumerate(names):
        rows = [r for r in merged["metrics"][name]["rows"] if r["model"] == model]
        xs, title, log = _x(rows)
        ys = [r["value"] for r in rows]
        hover = [f"{r['revision']}<br>step {r['step']}<br>{name} = {fmt(r['value'])}"
                 + ("<br>" + "<br>".join(esc(f) for f in r["flags"]) if r["flags"] else "") for r in rows]
        rr, cc = i // cols + 1, i % cols + 1
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, showlegend=False, hovertext=hover,
                                 hoverinfo="text", line=dict(color="#0969da"), marker=dict(size=5)), row=rr, col=cc)
        for kind, color, symbol in (("jump", "#cf222e", "triangle-up"), ("spike", "#bf8700", "x"),
                                    ("identical", "#6e7781", "square-open")):
            sel = [j for j, r in enumerate(rows) if any(f.startswith(kind) or kind in f for f in r["flags"])
                   and ys[j] is not None]
            if sel:
                fig.add_trace(go.Scatter(x=[xs[j] for j in sel], y=[ys[j] for j in sel], mode="markers",
                                         name=kind, showlegend=False, hovertext=[hover[j] for j in sel],
                                         hoverinfo="text", marker=dict(color=color, size=12, symbol=symbol)),
                              row=rr, col=cc)
        fig.update_xaxes(type="log" if log else "linear", title_text=title, title_font_size=10, row=rr, col=cc,
                         **(log_ticks(xs) if log else {}))
    fig.update_layout(height=290 * rows_n + 40, margin=dict(l=40, r=20, t=40, b=40), template="plotly_white")
    return fig


def _pngs(merged: dict, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    from ..viz.common import save_png

    paths = []
    for name, m in merged["metrics"].items():
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        drawn = False
        for model in merged["models"]:
            rows = [r for r in m["rows"] if r["model"] == model and r["value"] is not None]
            if not rows:
                continue
            xs, title, log = _x(rows)
            ax.plot(xs, [r["value"] for r in rows], marker="o", ms=3, label=model)
            for j, r in enumerate(rows):
                if any(f.startswith("jump") for f in r["flags"]):
                    ax.axvline(xs[j], color="#cf222e", lw=0.8, ls="--")
            if log:
                ax.set_xscale("log")
            ax.set_xlabel(title)
            drawn = True
        if not drawn:
            plt.close(fig)
            continue
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7)
        paths.append(save_png(fig, out / "figures" / f"{name}.png"))
    return paths


def render(merged: dict) -> str:
    import poslens

    cp = merged["change_points"]
    parts = [_head("poslens sweep", plotly=True),
             f"<h1>Training sweep</h1><p class='meta'>poslens {esc(poslens.__version__)} · "
             f"{len(merged['models'])} model(s) · {sum(len(v) for v in merged['revisions'].values())} checkpoints · "
             f"analyses {esc(', '.join(merged['analyses']))}</p>",
             "<div class='summary'><b>Jumps</b> are marked ▲ (red), single odd checkpoints ✕ (amber), revisions whose "
             "tensors are bit-identical to an earlier one ▢ (grey). "
             f"Change points: {esc(cp['method'])}; penalty {esc(cp['penalty'])}; sigma {esc(cp['sigma'])}; a jump when "
             f"{esc(cp['jump'])}" + (f"; an open jump (still changing as the history ends) when {esc(cp['open_jump'])}"
                                    if cp.get("open_jump") else "") + f". Spikes: {esc(cp['spike'])}."
             + (f" And {esc(cp['share_min_jump'])}." if cp.get("share_min_jump") else "") + "</div>"]
    for model in merged["models"]:
        parts.append(f"<h2>{esc(model)}</h2>")
        revs = merged["revisions"][model]
        steps = [r["step"] for r in revs if r["step"] is not None]
        parts.append(f"<p class='meta'>{len(revs)} checkpoints"
                     + (f", steps {steps[0]}–{steps[-1]}" if steps else "") + "</p>")
        fig = _model_figure(merged, model)
        if fig is not None:
            parts.append("<div class='fig'>" + fig.to_html(full_html=False, include_plotlyjs=False,
                                                           div_id="sweep-" + hashlib.sha1(model.encode()).hexdigest()[:10]) + "</div>")
        flagged = [f"<tr><td>{esc(r['revision'])}</td><td class='num'>{fmt(r['step'])}</td><td>{esc(name)}</td>"
                   f"<td class='num'>{fmt(r['value'])}</td><td>{esc('; '.join(r['flags']))}</td></tr>"
                   for name, m in merged["metrics"].items() for r in m["rows"] if r["model"] == model and r["flags"]]
        if flagged:
            parts.append("<h3>Flagged revisions</h3><table><tr><th>revision</th><th>step</th><th>metric</th>"
                         "<th>value</th><th>why</th></tr>" + "".join(flagged) + "</table>")
        else:
            parts.append("<p class='meta'>No revision flagged.</p>")
        na = {}
        for c in merged["cells"]:
            if c["model"] == model and c["status"] != "ok":
                na.setdefault((c["analysis"], c["status"], c["reason"]), []).append(c["revision"])
        for (a, status, reason), rs in na.items():
            parts.append(f"<p class='skip'>{esc(a)}: {esc(status.replace('_', ' '))} for {len(rs)} checkpoint(s) — "
                         f"{esc(reason)}</p>")
    parts.append("<h2>Metrics</h2><table><tr><th>metric</th><th>analysis</th><th>meaning</th></tr>"
                 + "".join(f"<tr><td>{esc(n)}</td><td>{esc(m['analysis'])}</td><td>{esc(m['meaning'])}</td></tr>"
                           for n, m in merged["metrics"].items()) + "</table>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_page(merged: dict, out: Path) -> list[Path]:
    """``OUT/sweep.html`` and ``OUT/figures/METRIC.png``."""
    page = out / "sweep.html"
    atomic_write_text(page, render(merged))
    return [page] + _pngs(merged, out)
