"""Figures for duplicate-token heads and neurons: PNG (matplotlib) and offline HTML (plotly).

>>> from poslens.viz.duplicate import dup_heads_figures   # doctest: +SKIP
>>> dup_heads_figures(result, Path("out"))                 # doctest: +SKIP
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


from .common import save_plotly as _plotly  # noqa: E402


def dup_heads_figures(result, out: Path) -> list[Path]:
    import plotly.graph_objects as go

    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if result.heads:
        layers = sorted({v["layer"] for v in result.heads.values()})
        H = max(v["head"] for v in result.heads.values()) + 1
        for key, label in (("score_repeated", "repeated random tokens"), ("score_text", "natural text"),
                           ("prev_token_score", "previous-token attention")):
            grid = np.full((len(layers), H), np.nan)
            for v in result.heads.values():
                if v.get(key) is not None:
                    grid[layers.index(v["layer"]), v["head"]] = v[key]
            if np.isnan(grid).all():
                continue
            fig, ax = plt.subplots(figsize=(1 + 0.5 * H, 1 + 0.45 * len(layers)))
            im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            ax.set_xticks(range(H))
            ax.set_yticks(range(len(layers)), [str(l) for l in layers])
            ax.set_xlabel("head")
            ax.set_ylabel("layer")
            ax.set_title(f"{key.replace('_', ' ')} ({label})")
            fig.colorbar(im, ax=ax)
            fig.tight_layout()
            p = out / f"dup_{key}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            paths.append(p)
            hf = go.Figure(go.Heatmap(z=grid, x=list(range(H)), y=[str(l) for l in layers], zmin=0, zmax=1))
            hf.update_layout(title=f"{key} ({label})", xaxis_title="head", yaxis_title="layer")
            paths.append(_plotly(hf, out / f"dup_{key}.html"))
    if result.profiles:
        fig, ax = plt.subplots(figsize=(6, 4))
        pf = go.Figure()
        for k, p in result.profiles.items():
            if not p.get("distances"):
                continue
            d, m = np.array(p["distances"]), np.array(p["mean_attention"])
            ax.plot(d, m, ".", label=f"{k} ({p['verdict']})")
            pf.add_scatter(x=d, y=m, mode="markers", name=k)
            mf = p.get("mean_fit") or {}
            if "rate" in mf:
                ax.plot(d, mf["amplitude"] * np.exp(-mf["rate"] * d), "-", lw=1)
        ax.set_xlabel("distance to the earlier copy (tokens)")
        ax.set_ylabel("mean attention to that copy")
        ax.set_title("duplicate attention vs distance")
        ax.legend()
        fig.tight_layout()
        paths.append(out / "dup_decay.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
        pf.update_layout(xaxis_title="distance", yaxis_title="mean attention to the copy")
        paths.append(_plotly(pf, out / "dup_decay.html"))
    tc = result.token_classes or {}
    for k, v in (tc.get("heads") or {}).items():
        m = np.array(v["matrix"], dtype=float)
        fig, ax = plt.subplots(figsize=(6, 5))
        im = ax.imshow(m, cmap="magma")
        names = [repr(t) for t in tc["tokens"]]
        ax.set_xticks(range(len(names)), names, rotation=90)
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("earlier token b")
        ax.set_ylabel("current token a")
        ax.set_title(f"head {k}: attention from a to earlier b")
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        paths.append(out / f"dup_token_classes_{k}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    if result.positional:
        pos = result.positional["heads"]
        names = list(pos)
        fig, ax = plt.subplots(figsize=(6, 4))
        x = [pos[k]["mean_distance"] for k in names]
        y = [pos[k]["entropy_ratio"] for k in names]
        ax.scatter(x, y)
        for k, a, b in zip(names, x, y):
            ax.annotate(k, (a, b), fontsize=8)
        ax.set_xlabel("mean attended distance (positional inputs only)")
        ax.set_ylabel("entropy / uniform entropy")
        fig.tight_layout()
        paths.append(out / "dup_positional.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def neuron_figures(result, out: Path) -> list[Path]:
    import plotly.graph_objects as go

    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if result.grid:
        g = np.array(result.grid, dtype=float)
        fig, ax = plt.subplots(figsize=(8, 6))
        im = ax.imshow(g, cmap="viridis")
        ax.set_title(f"|PVO| per neuron, head {result.head} ({g.shape[0]}x{g.shape[1]} grid, row-major)")
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        paths.append(out / "pvo_norm_grid.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
        paths.append(_plotly(go.Figure(go.Heatmap(z=g)), out / "pvo_norm_grid.html"))
    if result.curves:
        fig, ax = plt.subplots(figsize=(7, 4))
        pf = go.Figure()
        for n, c in result.curves.items():
            ax.plot(c, lw=1, label=f"neuron {n}")
            pf.add_scatter(y=c, mode="lines", name=f"neuron {n}")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("position")
        ax.set_ylabel("PVO contribution")
        if len(result.curves) <= 10:
            ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / "pvo_curves.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
        paths.append(_plotly(pf, out / "pvo_curves.html"))
    dec = result.decomposition or {}
    if dec.get("components"):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        pf = go.Figure()
        for k, v in dec["components"].items():
            ax.plot(v, lw=1, label=k)
            pf.add_scatter(y=v, mode="lines", name=k)
        ax.set_xlabel("position in text")
        ax.set_ylabel(f"contribution to neuron {result.neuron} pre-activation")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        paths.append(out / "neuron_decomposition.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
        paths.append(_plotly(pf, out / "neuron_decomposition.html"))
    ex = dec.get("extra_vs_distance") or {}
    if ex.get("mean_distance"):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(ex["mean_distance"], ex["measured"], s=8, label="measured (exact)")
        ax.scatter(ex["mean_distance"], ex["predicted"], s=8, label="predicted (PVO, w_j = 1/n)")
        ax.set_xlabel("mean distance to the copies of the current token")
        ax.set_ylabel("extra activation from the duplicate head")
        ax.legend()
        fig.tight_layout()
        paths.append(out / "neuron_extra_vs_distance.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    if result.top_examples:
        paths.append(top_examples_html(result, out / "top_examples.html"))
    return paths


def top_examples_html(result, path: Path) -> Path:
    """A self-contained page: each example is a line of tokens shaded by the neuron's activation."""
    from ..io import atomic_write_text

    ex = result.top_examples
    amax = max((max(e["activations"]) for e in ex), default=1.0) or 1.0
    rows = []
    for i, e in enumerate(ex):
        spans = []
        for j, (t, a) in enumerate(zip(e["tokens"], e["activations"])):
            alpha = max(0.0, min(1.0, a / amax))
            border = "border-bottom:2px solid #000;" if j == e["center"] else ""
            spans.append(f'<span title="{a:.3f}" style="background:rgba(255,80,0,{alpha:.3f});{border}">'
                         f"{html.escape(t).replace(chr(10), '⏎')}</span>")
        rows.append(f"<tr><td>{i + 1}</td><td>{e['activation']:.3f}</td><td class=t>{''.join(spans)}</td></tr>")
    title = html.escape(f"{result.model}: neuron {result.layer}.{result.neuron}, top activations")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif}} td.t{{font-family:monospace;white-space:pre-wrap}} td{{padding:2px 6px;vertical-align:top}}</style>
</head><body><h2>{title}</h2><p>Shading: activation / max activation ({amax:.3f}); the underlined token is the maximum.</p>
<table><tr><th>#</th><th>act</th><th>context</th></tr>{''.join(rows)}</table></body></html>"""
    atomic_write_text(path, page)
    return path
