"""The report page: one self-contained HTML file per model, plus an index for several.

Plotly's JavaScript is inlined once in the page head; each analysis's interactive figures
(the HTML files its ``figures()`` wrote) are embedded as plotly divs, each drawn when it is
scrolled near (the page opens at once), and PNGs without an interactive twin as base64 ``<img>``; so the page works offline and can be mailed as one
file. Figure files stay beside it in ``figures/`` for anyone who wants them separately.

>>> html = render_model_page(report)          # a ModelReport from run_model  # doctest: +SKIP
>>> write_pages([report], "poslens-out/report")  # report.html + report.json  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime as _dt
import html as _html
import json
import re
from collections.abc import Sequence
from pathlib import Path

from ..io import atomic_write_text
from ..results import to_jsonable

SUMMARY_LINES = 3  # per analysis in the page's summary of findings

_STATUS = {
    "done": ("computed", "#1a7f37"),
    "cached": ("from cache", "#0969da"),
    "skipped": ("skipped", "#6e7781"),
    "failed": ("failed", "#cf222e"),
}

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 4px} h2{font-size:21px;margin:36px 0 8px;padding-top:8px;border-top:1px solid #d0d7de}
h3{font-size:16px;margin:18px 0 6px} .meta{color:#57606a;font-size:13px}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;color:#fff;vertical-align:middle;margin-left:6px}
.summary{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:10px 18px;margin:14px 0}
.summary li{margin:3px 0} .skip{color:#57606a} .err{color:#cf222e;white-space:pre-wrap}
table{border-collapse:collapse;margin:8px 0;font-size:13px} td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{font-variant-numeric:tabular-nums;text-align:right}
.yes{color:#1a7f37;font-weight:600} .no{color:#cf222e;font-weight:600}
.figs{display:flex;flex-wrap:wrap;gap:14px} .fig{flex:1 1 440px;min-width:0;max-width:100%;box-sizing:border-box;border:1px solid #d0d7de;border-radius:6px;padding:6px;overflow:hidden}
.fig.wide{flex-basis:100%} .fig .plot{height:480px;width:100%} .fig img{max-width:100%;height:auto} .fig .cap{font-size:12px;color:#57606a}
table.verdicts{font-size:14px;width:100%} table.verdicts td{vertical-align:middle} .v{font-weight:600;white-space:nowrap}
.v-present{color:#1a7f37} .v-weak{color:#9a6700} .v-absent{color:#cf222e} .v-untestable{color:#6e7781}
.premise{color:#57606a;border-left:3px solid #d0d7de;padding:2px 10px}
details{margin:8px 0} summary{cursor:pointer;color:#0969da}
nav a{margin-right:12px} .about{color:#424a53} .side{display:flex;gap:14px;flex-wrap:wrap}
.side>div{flex:1 1 420px} .pub{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 12px}
"""


def esc(x) -> str:
    return _html.escape(str(x), quote=True)


def fmt(v) -> str:
    if v is None:  # an option left unset, a figure not published: not Python's "None" on the page
        return "—"
    if isinstance(v, bool):
        return esc(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list) and len(v) <= 8 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    s = json.dumps(v) if not isinstance(v, str) else v
    if len(s) <= 160:
        return esc(s)
    return f'<span title="{esc(s)}">{esc(s[:157])}…</span>'  # the whole text on hover


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "model"


# ---- figures ---------------------------------------------------------------------------

_DIV = re.compile(r'<div id="([^"]+)" class="plotly-graph-div"([^>]*)></div>', re.S)
_HEIGHT = re.compile(r"height:\s*(\d+(?:\.\d+)?)px")
_NATURAL = re.compile(r'"poslens_natural_width":\s*(\d+)')
_META_HEIGHT = re.compile(r'"poslens_height":\s*(\d+)')
WIDE = 640  # figures drawn wider than this get a card the full width of the page
_SCRIPT = re.compile(r"<script[^>]*>(.*?)</script>", re.S)


def plotly_fragment(path: Path) -> str | None:
    """The plotly div and its ``Plotly.newPlot`` script from a figure HTML file, without
    the ``<script src=plotly.min.js>`` (the page inlines plotly once); None if not plotly."""
    frag = _plotly_parts(path)
    return frag[0] if frag else None


def _plotly_parts(path: Path) -> tuple[str, int | None, int | None] | None:
    """(fragment, height in px, natural width in px) of a plotly figure file, or None.

    Figures are embedded at the card's width (``autosize``, ``responsive``) and the height
    they were drawn for; one drawn wider than :data:`WIDE` gets a full-width card.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    parts, height, natural = [], None, None
    for m in _DIV.finditer(text):
        div_id = m.group(1)
        script = next((s for s in _SCRIPT.findall(text[m.end():]) if "Plotly.newPlot" in s and div_id in s), None)
        if script is None:
            continue
        hm = _META_HEIGHT.search(script) or _HEIGHT.search(m.group(2))
        height = int(float(hm.group(1))) if hm else height
        nm = _NATURAL.search(script)
        natural = int(nm.group(1)) if nm else natural
        parts.append(f'<div id="{div_id}" class="plotly-graph-div" style="height:100%;width:100%"></div>'
                     f'<script type="text/javascript">poslensFigure("{div_id}", function () {{{script}}});</script>')
    return ("\n".join(parts), height, natural) if parts else None


def _caption(rel: str) -> str:
    return Path(rel).stem.replace("_", " ").replace("-", " ")


def figures_html(out: Path, rels: Sequence[str]) -> str:
    """Interactive figures embedded; PNGs embedded only when no interactive twin exists."""
    htmls = {Path(r).with_suffix("").as_posix() for r in rels if r.endswith(".html")}
    blocks, links = [], []
    for r in rels:
        p = out / r
        if r.endswith(".html"):
            parts = _plotly_parts(p)
            if parts:
                frag, height, natural = parts
                wide = " wide" if (natural or 0) > WIDE else ""
                style = f' style="height:{height}px"' if height else ""
                blocks.append(f'<div class="fig{wide}"><div class="plot"{style}>{frag}</div>'
                              f'<div class="cap">{esc(_caption(r))} · <a href="{esc(r)}">open alone</a></div></div>')
            else:
                links.append(r)
        elif r.lower().endswith((".png", ".jpg", ".jpeg", ".svg")):
            if Path(r).with_suffix("").as_posix() in htmls:
                links.append(r)
                continue
            mime = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "svg": "image/svg+xml"}[r.rsplit(".", 1)[1].lower()]
            data = base64.b64encode(p.read_bytes()).decode()
            blocks.append(f'<div class="fig"><img alt="{esc(_caption(r))}" src="data:{mime};base64,{data}">'
                          f'<div class="cap">{esc(_caption(r))}</div></div>')
        else:
            links.append(r)
    s = f'<div class="figs">{"".join(blocks)}</div>' if blocks else ""
    if links:
        s += '<p class="meta">Files: ' + " · ".join(f'<a href="{esc(r)}">{esc(Path(r).name)}</a>' for r in links) + "</p>"
    return s


# ---- tables ----------------------------------------------------------------------------

_SKIP_KEYS = {"kind", "model", "processing", "options", "checks"}


def key_numbers(result: dict | None) -> list[tuple[str, object]]:
    """Scalar fields of a result (and short numeric lists): the numbers worth a table."""
    return [(k, v) for k, v in (result or {}).items() if k not in _SKIP_KEYS and (
        isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 80)
        or (isinstance(v, list) and 0 < len(v) <= 8 and all(isinstance(x, (int, float)) for x in v)))]


def checks_table(checks: list) -> str:
    if not checks:
        return ""
    rows = []
    for c in checks:
        if not isinstance(c, dict):
            continue
        rep = c.get("reproduced")
        mark = ('<span class="yes">reproduced</span>' if rep is True else
                '<span class="no">not reproduced</span>' if rep is False else esc(rep))
        rows.append(f"<tr><td>{esc(c.get('what', ''))}</td><td>{fmt(c.get('published'))}</td>"
                    f"<td>{fmt(c.get('ours'))}</td><td>{mark}</td><td>{esc(c.get('note', '') or '')}</td></tr>")
    return ("<table><tr><th>claim</th><th>published</th><th>ours</th><th>verdict</th><th>note</th></tr>"
            + "".join(rows) + "</table>")


def _table(rows, head=("", "")) -> str:
    if not rows:
        return ""
    return (f"<table><tr><th>{esc(head[0])}</th><th>{esc(head[1])}</th></tr>"
            + "".join(f"<tr><td>{esc(k)}</td><td class='num'>{fmt(v)}</td></tr>" for k, v in rows) + "</table>")


def shape_of(config: dict) -> dict:
    """Layers, heads, width, context and vocabulary of a report's config.json, any family.

    Only GPT-2 writes ``n_layer``/``n_head``/``n_embd``; Llama, NeoX, OPT and the rest name
    them their own way, so the family adapter reads them (a config it cannot read shows dashes).
    """
    from ..models.config import ModelConfig

    try:
        c = ModelConfig.from_hf_dict(config)
    except Exception:  # an index row or a page header must not fail on an odd config
        return {"family": config.get("model_type"), "n_layer": config.get("n_layer"), "n_head": config.get("n_head"),
                "n_embd": config.get("n_embd"), "n_positions": config.get("n_positions"),
                "vocab_size": config.get("vocab_size")}
    return {"family": c.family, "n_layer": c.n_layers, "n_head": c.n_heads, "n_embd": c.d_model,
            "n_positions": c.n_ctx, "vocab_size": c.d_vocab}


def is_seed_model(config: dict) -> bool:
    """GPT-2 small's shape: the model the seeds measured (gpt2 and the partial checkpoint)."""
    return (config.get("n_layer"), config.get("n_embd"), config.get("n_positions"), config.get("vocab_size")) == (12, 768, 1024, 50257)


# ---- pages -----------------------------------------------------------------------------


def _head(title: str, plotly: bool) -> str:
    js = ""
    if plotly:
        from plotly.offline import get_plotlyjs

        js = ("<script type=\"text/javascript\">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
              f'<script type="text/javascript">{get_plotlyjs()}</script>\n{_LAZY_JS}')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,"><style>{_CSS}</style>{js}</head><body><main>')


def _badge(status: str) -> str:
    label, color = _STATUS.get(status, (status, "#6e7781"))
    return f'<span class="badge" style="background:{color}">{esc(label)}</span>'


_VCLASS = {"present": "v-present", "weak": "v-weak", "absent": "v-absent", "not testable here": "v-untestable"}


def verdicts_of(rep) -> dict | None:
    """The verdict stage's result of a report (rows and the thresholds used), or None."""
    o = next((o for o in rep.outcomes if o.name == "verdicts" and o.status in ("done", "cached")), None)
    return o.result if o else None


def verdict_table(v: dict, sections: set[str]) -> str:
    """The verdict table: mechanism, verdict, deciding number, threshold, reason, a link to its section."""
    rows = []
    for r in v["rows"]:
        val = r.get("value")
        num = (f"{esc(r['number'])} <b>{val:.3g}</b>" + (f" (head {esc(r['head'])})" if r.get("head") else "")
               if isinstance(val, (int, float)) else "—")
        link = (f'<a href="#{esc(r["section"])}">{esc(r["name"])}</a>' if r["section"] in sections
                else esc(r["name"]))
        rows.append(f"<tr><td>{link}</td><td class='v {_VCLASS.get(r['verdict'], '')}'>{esc(r['verdict'])}</td>"
                    f"<td>{num}</td><td class='num'>{fmt(r['threshold']) if r.get('threshold') is not None else '—'}</td>"
                    f"<td>{esc(r['reason'])}</td></tr>")
    o = v.get("options") or {}
    th = ", ".join(f"{k} {fmt(x)}" for k, x in o.items() if k != "inputs")
    return ('<table class="verdicts"><tr><th>mechanism</th><th>verdict</th><th>deciding number</th><th>threshold</th>'
            "<th>why</th></tr>" + "".join(rows) + "</table>"
            f"<p class='meta'>present: the deciding number reaches its threshold (and its row's other conditions "
            f"hold); weak: it reaches weak_fraction × the threshold, or a condition its why names is unmet; absent: below that; not testable here: the checkpoint lacks what the measurement needs. "
            f"Thresholds are options (<code>--set verdicts.NAME=VALUE</code>; the head-role thresholds are the model "
            f"profile's, <code>--set profile.NAME=VALUE</code>): {esc(th)}. What the architecture gives without "
            f"learning: the same report on the model's null, <code>-m random:MODEL</code> (every tensor redrawn at its "
            f"own mean and spread).</p>")


def introduction(seed_model: bool) -> str:
    """What the five source studies claimed, in plain words, and how this page checks them."""
    from .studies import STUDIES

    items = "".join(f"<li><b>“{esc(s.title)}”</b> ({esc(s.kind)}): {esc(s.claim)}</li>" for s in STUDIES.values())
    whose = ("This model has GPT-2 small's shape, so each section compares its numbers with the published ones."
             if seed_model else "This model is not GPT-2 small, so the published numbers are shown for reference, "
             "and differences are expected.")
    return ("<details class='intro'><summary>What this report checks, and where the ideas come from</summary>"
            "<p>poslens measures how a transformer knows where each token is. The sections test the claims of five "
            f"studies of GPT-2 small, on this model; {esc(whose)}</p><ul>{items}</ul></details>")


def render_model_page(rep, index_href: str | None = None) -> str:
    """The whole page for one :class:`~poslens.report.orchestrate.ModelReport`."""
    import poslens

    out = Path(rep.out)
    cfg = rep.config
    ran = [o for o in rep.outcomes if o.status in ("done", "cached")]
    seed_model = is_seed_model(cfg)
    sh = {k: fmt(v) for k, v in shape_of(cfg).items()}
    shape = (("" if sh["family"] in ("gpt2", "—") else f"{sh['family']} · ")
             + f"{sh['n_layer']} layers × {sh['n_head']} heads, d_model {sh['n_embd']}, "
             f"n_ctx {sh['n_positions']}, vocab {sh['vocab_size']}")
    h = [_head(f"poslens report: {rep.model}", plotly=True)]
    if index_href:
        h.append(f'<p class="meta"><a href="{esc(index_href)}">← all models</a></p>')
    h.append(f"<h1>Positional mechanisms in {esc(rep.model)}</h1>")
    h.append(f'<p class="meta">{shape} · size <b>{esc(rep.size)}</b> · model fingerprint {esc(rep.fingerprint)} · '
             f"{len(ran)} of {len(rep.outcomes)} analyses · report took {rep.seconds:.1f} s · poslens "
             f"{esc(getattr(poslens, '__version__', ''))} · {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>")
    v = verdicts_of(rep)
    ran = [o for o in ran if o.name != "verdicts"]
    premise = [o for o in rep.outcomes if o.status == "skipped" and o.reason.startswith("premise absent")]
    sections = {o.name for o in ran} | {o.name for o in premise}
    if v:
        h.append('<h2 id="verdicts" style="border:0;margin-top:14px">What this model has</h2>' + verdict_table(v, sections))
    h.append(introduction(seed_model))
    h.append("<nav>" + "".join(f'<a href="#{esc(o.name)}">{esc(o.title)}</a>' for o in ran) + "</nav>")

    h.append('<h2 id="summary">Summary of findings</h2><div class="summary"><ul>')
    for o in rep.outcomes:
        if o.status in ("done", "cached") and o.name != "verdicts":
            lines = o.summary or ["(no summary lines)"]
            checks = [c for c in (o.result or {}).get("checks", []) or [] if isinstance(c, dict)]
            n_ok = sum(1 for c in checks if c.get("reproduced") is True)
            verdict = f" <span class='meta'>· {n_ok}/{len(checks)} published claims reproduced</span>" if checks else ""
            # The headline lines only (each stage puts its most telling first); the section has them all.
            more = (f"<li class='meta'><a href='#{esc(o.name)}'>{len(lines) - SUMMARY_LINES} more in the section</a></li>"
                    if len(lines) > SUMMARY_LINES else "")
            h.append(f'<li><a href="#{esc(o.name)}"><b>{esc(o.title)}</b></a>{verdict}<ul>'
                     + "".join(f"<li>{esc(s)}</li>" for s in lines[:SUMMARY_LINES]) + more + "</ul></li>")
    h.append("</ul>")
    not_run = [o for o in rep.outcomes if o.status in ("skipped", "failed") and o not in premise]
    if not_run:
        h.append('<p><b>Not in this report:</b></p><ul>')
        for o in not_run:
            cls = "err" if o.status == "failed" else "skip"
            h.append(f'<li class="{cls}"><b>{esc(o.title)}</b> {_badge(o.status)}: {esc(o.reason)}</li>')
        h.append("</ul>")
    h.append("</div>")

    for o in [o for o in rep.outcomes if o in ran or o in premise]:
        if o in premise:
            reason = o.reason.replace("; see the model profile for what was measured", "")
            # the profile's section exists only when it ran; failed, it is listed under "Not in this report"
            where = ('<a href="#profile">The model profile</a> shows what was measured instead.'
                     if "profile" in sections else "The model profile did not finish (see the summary).")
            h.append(f'<h2 id="{esc(o.name)}">{esc(o.title)} {_badge(o.status)}</h2>'
                     f'<p class="premise">{esc(reason[0].upper() + reason[1:])}. {where}</p>')
            continue
        res = o.result or {}
        h.append(f'<h2 id="{esc(o.name)}">{esc(o.title)} {_badge(o.status)}</h2>')
        if o.about:
            h.append(f'<p class="about">{esc(o.about)}</p>')
        if o.summary:
            h.append("<ul>" + "".join(f"<li>{esc(s)}</li>" for s in o.summary) + "</ul>")
        checks = res.get("checks") or []
        if checks:
            from .studies import titles

            who = ("the published figures for GPT-2 small" if seed_model else
                   "the published GPT-2 small values (this model is not GPT-2 small, so differences are expected)")
            h.append(f"<h3>Published vs ours</h3><p class='meta'>Compared with {esc(who)}"
                     f"{(' in ' + esc(titles(o.seed))) if o.seed else ''}.</p>{checks_table(checks)}")
        h.append(figures_html(out, o.figures))
        h.append('<div class="side">')
        h.append(f"<div><h3>Key numbers</h3>{_table(key_numbers(res), ('field', 'value')) or '<p class=meta>none</p>'}</div>")
        h.append(f"<div><h3>Options used</h3>{_table(sorted(o.options.items()), ('option', 'value')) or '<p class=meta>none</p>'}"
                 f"<p class='meta'>weight processing: {esc(', '.join(res.get('processing') or []) or 'none')} · "
                 f"{o.seconds:.1f} s · cache key {esc(o.key)}</p></div>")
        h.append("</div>")
    h.append('<p class="meta">All results: <a href="report.json">report.json</a>. '
             "Re-run the same command to reuse finished sections from <code>cache/</code>.</p>")
    h.append(_FIT_JS)
    h.append("</main></body></html>\n")
    return "\n".join(h)


# A report holds 30-40 figures, and drawing them all at load took 8-11 s in headless Chromium:
# each is drawn when its card comes within a screen of the viewport (all of them before
# printing, or on ``poslensDrawAll()``).
_LAZY_JS = """<script type="text/javascript">(function () {
  var pending = {};
  function draw(id) {
    var f = pending[id];
    if (!f) return;
    delete pending[id];
    if (observer) observer.unobserve(document.getElementById(id));
    f();
  }
  var observer = window.IntersectionObserver ? new IntersectionObserver(function (entries) {
    entries.forEach(function (e) { if (e.isIntersecting) draw(e.target.id); });
  }, {rootMargin: '100% 0px'}) : null;
  window.poslensFigure = function (id, f) {
    pending[id] = f;
    var el = document.getElementById(id);
    if (observer && el) observer.observe(el); else draw(id);
  };
  window.poslensDrawAll = function () {
    Object.keys(pending).forEach(draw);
    return new Promise(function (r) { requestAnimationFrame(function () { r(true); }); });
  };
  window.addEventListener('beforeprint', function () { window.poslensDrawAll(); });
})();</script>"""


# A figure may be drawn before every card is laid out (when its card is still alone on its row);
# re-fit every figure whenever its card changes size (the next card arrives, the window resizes).
_FIT_JS = """<script type="text/javascript">(function () {
  function fit(gd) { if (gd && gd._fullLayout && window.Plotly) { window.Plotly.Plots.resize(gd); } }
  var plots = document.querySelectorAll('.fig .plot');
  if (window.ResizeObserver) {
    var ro = new ResizeObserver(function (entries) {
      entries.forEach(function (e) { fit(e.target.querySelector('.plotly-graph-div')); });
    });
    plots.forEach(function (p) { ro.observe(p); });
  }
  window.addEventListener('load', function () { plots.forEach(function (p) { fit(p.querySelector('.plotly-graph-div')); }); });
})();</script>"""


def render_index(reports: Sequence, pages: Sequence[str]) -> str:
    """An index of several models' pages with side-by-side tables of their findings."""
    h = [_head("poslens report: " + ", ".join(r.model for r in reports), plotly=False)]
    h.append(f"<h1>Positional mechanisms in {len(reports)} models</h1>")
    h.append("<table><tr><th>model</th><th>shape</th><th>analyses</th><th>time</th></tr>")
    for r, p in zip(reports, pages):
        if r.error is not None:
            h.append(f"<tr><td>{esc(r.model)}</td><td colspan='3'><span class='skip'>not analysed: "
                     f"{esc(r.error)}</span></td></tr>")
            continue
        c = {k: fmt(v) for k, v in shape_of(r.config).items()}
        n = sum(o.status in ("done", "cached") for o in r.outcomes)
        h.append(f"<tr><td><a href='{esc(p)}'>{esc(r.model)}</a></td><td>{c.get('n_layer')}L × {c.get('n_head')}H, "
                 f"d {c.get('n_embd')}</td><td class='num'>{n}/{len(r.outcomes)}</td><td class='num'>{r.seconds:.1f} s</td></tr>")
    h.append("</table>")
    reports = [r for r in reports if r.error is None]
    verdicts = [verdicts_of(r) for r in reports]
    if any(verdicts):
        rows = next(v for v in verdicts if v)["rows"]
        h.append("<h2>What each model has</h2><table class='verdicts'><tr><th>mechanism</th>"
                 + "".join(f"<th>{esc(r.model)}</th>" for r in reports) + "</tr>")
        for i, row in enumerate(rows):
            cells = []
            for v in verdicts:
                x = v["rows"][i] if v and i < len(v["rows"]) else None
                if x is None:
                    cells.append("<td class='skip'>not run</td>")
                    continue
                num = f" ({x['value']:.3g})" if isinstance(x.get("value"), (int, float)) else ""
                cells.append(f"<td title='{esc(x['reason'])}'><span class='v {_VCLASS.get(x['verdict'], '')}'>"
                             f"{esc(x['verdict'])}</span>{esc(num)}</td>")
            h.append(f"<tr><td>{esc(row['name'])}</td>{''.join(cells)}</tr>")
        h.append("</table>")
    names = list(dict.fromkeys(o.name for r in reports for o in r.outcomes if o.name != "verdicts"))
    for name in names:
        outs = [next((o for o in r.outcomes if o.name == name), None) for r in reports]
        title = next(o.title for o in outs if o)
        h.append(f"<h2>{esc(title)}</h2><table><tr><th></th>" + "".join(f"<th>{esc(r.model)}</th>" for r in reports) + "</tr>")
        h.append("<tr><td>findings</td>" + "".join(
            "<td>" + ("<br>".join(esc(s) for s in o.summary) if o and o.status in ("done", "cached")
                      else f"<span class='skip'>{esc(o.status + ': ' + o.reason) if o else 'not run'}</span>") + "</td>"
            for o in outs) + "</tr>")
        keys = list(dict.fromkeys(k for o in outs if o for k, _ in key_numbers(o.result)))
        for k in keys:
            vals = [dict(key_numbers(o.result)).get(k, "") if o else "" for o in outs]
            h.append(f"<tr><td>{esc(k)}</td>" + "".join(f"<td class='num'>{fmt(v)}</td>" for v in vals) + "</tr>")
        h.append("</table>")
    h.append("</main></body></html>\n")
    return "\n".join(h)


def report_dict(rep) -> dict:
    """``report.json`` of one model: the verdict table first, then everything else."""
    return {"verdicts": verdicts_of(rep), **to_jsonable(rep.to_dict())}


def _drop_own_page(path: Path) -> None:
    """Remove ``path`` if it is a page poslens wrote (its title says so); anything else stays."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:300]
    except OSError:
        return
    if "<title>poslens report" in head:
        path.unlink()


def write_pages(reports: Sequence, out: str | Path) -> Path:
    """Write each model's ``report.html`` + ``report.json`` (atomically) and, for several
    models, ``index.html`` + ``report.json`` in ``out``. Returns the page to open."""
    out = Path(out)
    # the other layout's page, left from an earlier run into this directory, would show stale results
    _drop_own_page(out / ("index.html" if len(reports) == 1 else "report.html"))
    if len(reports) == 1:
        r = reports[0]
        atomic_write_text(r.out / "report.json", json.dumps(report_dict(r), indent=1) + "\n")
        atomic_write_text(r.out / "report.html", render_model_page(r))
        return r.out / "report.html"
    pages = []
    for r in reports:
        if r.error is not None:  # listed on the index with the reason; no page of its own
            pages.append("")
            continue
        rel = Path(r.out).resolve().relative_to(out.resolve())
        atomic_write_text(r.out / "report.json", json.dumps(report_dict(r), indent=1) + "\n")
        back = "/".join([".."] * len(rel.parts)) + "/index.html"
        atomic_write_text(r.out / "report.html", render_model_page(r, index_href=back))
        pages.append((rel / "report.html").as_posix())
    bundle = {"models": [report_dict(r) for r in reports]}
    atomic_write_text(out / "report.json", json.dumps(bundle, indent=1) + "\n")
    atomic_write_text(out / "index.html", render_index(reports, pages))
    return out / "index.html"
