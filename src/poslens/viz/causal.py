"""Figures for the causal checks: patching heat-maps, effects against their random baselines.

Each function takes a result and an output directory and returns the paths it wrote
(PNG through matplotlib, interactive HTML through plotly).

>>> from poslens.viz.causal import figures, patch_heatmap   # doctest: +SKIP
>>> patch_heatmap(result, Path("out"))        # a PatchResult            # doctest: +SKIP
>>> figures(result, Path("out"))              # any causal result, by its type   # doctest: +SKIP
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from .common import head_grid, plt, png_wanted, save_plotly, save_png, set_wrapped_title


def patch_heatmap(result, out: Path, stem: str = "patching") -> list[Path]:
    """The field's standard figure: normalised patching effect per (layer, position) or (layer, head).

    Blue = towards the clean metric (1), red = away from it; cells that could not affect
    the metric (not run) are grey.
    """
    out = Path(out)
    z = np.array(result.normalized, dtype=float)
    raw = np.array(result.raw, dtype=float)
    skipped = np.array(result.skipped, dtype=bool) if result.skipped else np.zeros_like(z, dtype=bool)
    if not np.isfinite(z).any():  # clean == corrupted: show the raw metric instead
        z, label = raw - result.corrupted_metric, "patched - corrupted (raw)"
    else:
        label = "normalised"
    finite = np.abs(z[np.isfinite(z)])
    lim = float(max(1.0, finite.max())) if finite.size else 1.0
    shown = np.where(skipped, np.nan, z)
    ylab = [f"L{l}" for l in result.layers]
    xlab = result.column_labels or [str(c) for c in result.columns]
    what = "position" if result.sweep == "resid" else "head"
    title = (f"{result.mode} patching of {result.hook} — metric: {result.metric.name if result.metric else ''} "
             f"(clean {result.clean_metric:.3g}, corrupted {result.corrupted_metric:.3g}; normalised 0 = corrupted, "
             "1 = clean)")
    nx, ny = len(xlab), len(ylab)
    paths = []
    if png_wanted():
        fig, ax = plt.subplots(figsize=(min(22, 2.5 + 0.28 * nx), 1.8 + 0.35 * ny))
        cmap = plt.get_cmap("RdBu").with_extremes(bad="#dddddd")
        im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto",
                       interpolation="nearest")
        ax.set_yticks(range(ny), ylab)
        step = max(1, nx // 48)
        ax.set_xticks(range(0, nx, step), [xlab[i] for i in range(0, nx, step)], rotation=90, fontsize=7)
        ax.set(xlabel=what, ylabel="layer")
        set_wrapped_title(ax, title)
        fig.colorbar(im, ax=ax, label=label, fraction=0.03)
        paths.append(save_png(fig, out / f"{stem}.png"))
    text = [[f"L{result.layers[i]} {xlab[j]}<br>normalised {z[i, j]:.4g}<br>raw {raw[i, j]:.4g}"
             + ("<br>(cannot affect the metric: not run)" if skipped[i, j] else "") for j in range(nx)] for i in range(ny)]
    hf = go.Figure(go.Heatmap(z=shown, x=xlab, y=ylab, zmin=-lim, zmax=lim, colorscale="RdBu", text=text,
                              hoverinfo="text", colorbar={"title": "effect"}))
    hf.update_layout(title=title, xaxis_title=what, yaxis_title="layer", yaxis_autorange="reversed")
    paths.append(save_plotly(hf, out / f"{stem}.html"))
    return paths


def effect_strip(rows: list[tuple[str, float, list[float]]], title: str, xlabel: str, out: Path, stem: str) -> list[Path]:
    """One row per comparison: the baseline draws as grey dots, their mean ± std, the effect as a red diamond."""
    out = Path(out)
    paths = []
    if png_wanted():
        fig, ax = plt.subplots(figsize=(8, 1.2 + 0.55 * len(rows)))
        for i, (name, effect, draws) in enumerate(rows):
            d = np.asarray(draws, dtype=float)
            if d.size:
                ax.scatter(d, np.full(d.size, i) + np.linspace(-0.12, 0.12, d.size), s=12, color="0.6", zorder=2,
                           label="random baseline draws" if i == 0 else None)
                ax.errorbar([d.mean()], [i], xerr=[d.std(ddof=1) if d.size > 1 else 0], fmt="|", color="0.3",
                            capsize=4, zorder=3)
            ax.scatter([effect], [i], marker="D", s=45, color="#c0392b", zorder=4, label="effect" if i == 0 else None)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.set_xlabel(xlabel)
        ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=9)
        ax.legend(fontsize=7, loc="best")
        paths.append(save_png(fig, out / f"{stem}.png"))
    pf = go.Figure()
    for name, effect, draws in rows:
        d = np.asarray(draws, dtype=float)
        if d.size:
            pf.add_trace(go.Scatter(x=d, y=[name] * d.size, mode="markers", marker={"color": "grey", "size": 6},
                                    name=f"{name}: random", showlegend=False))
        pf.add_trace(go.Scatter(x=[effect], y=[name], mode="markers", marker={"color": "#c0392b", "size": 11,
                                "symbol": "diamond"}, name=f"{name}: effect", showlegend=False))
    pf.update_layout(title=title, xaxis_title=xlabel)
    paths.append(save_plotly(pf, out / f"{stem}.html"))
    return paths


def ablation_figures(result, out: Path) -> list[Path]:
    """Effect of the ablation on each metric (component) against its random-target baseline."""
    from ..analyses.causal.baselines import Comparison

    rows = []
    for name, e in result.effects.items():
        for lab, x in ([("", e)] if isinstance(e, Comparison) else e.items()):
            rows.append((f"{name} {lab}".strip(), x.effect, x.baseline.draws))
    title = "; ".join(iv.name for iv in result.interventions)[:120]
    return effect_strip(rows, title, "ablated - clean", out, "ablation_effects")


def helix_figures(result, out: Path) -> list[Path]:
    paths = []
    rows = []
    for what, block in (("loss", result.loss), ("prev-token attention", result.prev_attention)):
        if not block:
            continue
        for ctl in ("random", "matched"):
            rows.append((f"{what}: helix vs {'variance-matched ' if ctl == 'matched' else ''}random",
                         block.helix.effect, getattr(block, ctl).baseline.draws))
    if rows:
        paths += effect_strip(rows, f"removing W_pos's top-{result.k} PCA subspace at hook_pos_embed", "ablated - clean",
                              out, "helix_ablation")
    if result.per_head:
        clean, layers = head_grid({n: v.clean for n, v in result.per_head.items()})
        helix, _ = head_grid({n: v.helix for n, v in result.per_head.items()})
        grid, H = np.stack([clean, helix]), clean.shape[1]
        if png_wanted():
            fig, axes = plt.subplots(1, 2, figsize=(2 + 0.9 * H, 1.5 + 0.45 * len(layers)))
            for ax, g, t, cm in zip(axes, grid, ("clean previous-token attention", "change with the helix removed"),
                                    ("viridis", "RdBu")):
                lim = np.nanmax(np.abs(g)) or 1.0
                im = ax.imshow(g, cmap=cm, vmin=0 if cm == "viridis" else -lim, vmax=lim, aspect="auto")
                ax.set_yticks(range(len(layers)), [f"L{l}" for l in layers])
                ax.set_xticks(range(H))
                ax.set(xlabel="head", ylabel="layer")
                ax.set_title(t, fontsize=9)
                fig.colorbar(im, ax=ax, fraction=0.05)
            paths.append(save_png(fig, out / "helix_prev_attention.png"))
        hf = go.Figure(go.Heatmap(z=grid[1], x=list(range(H)), y=[f"L{l}" for l in layers], colorscale="RdBu",
                                  zmid=0, colorbar={"title": "Δ prev attn"}))
        hf.update_layout(title="change in previous-token attention with the helix removed", xaxis_title="head",
                         yaxis_title="layer", yaxis_autorange="reversed")
        paths.append(save_plotly(hf, out / "helix_prev_attention.html"))
    return paths


def duplicate_figures(result, out: Path) -> list[Path]:
    paths = []
    rows = []
    for g, e in result.effects.items():
        who = "duplicate heads" if g == "duplicate" else "other heads"
        x = e["gap"]
        rows.append((f"{who} vs random heads", x.effect, x.vs_random_heads.baseline.draws))
        rows.append((f"{who} vs random neurons", x.effect, x.vs_random_neurons.baseline.draws))
    if rows:
        paths += effect_strip(rows, "change in the size of the neurons' repeated - non-repeated gap when heads are "
                                    "ablated", "|gap| change (mean over neurons)", out, "dup_ablation_effects")
    if result.neurons:
        ns = list(result.neurons)
        keys = [("gap", "clean")] + [(f"{g}_gap_change", f"change: {g} heads ablated") for g in result.effects]
        values = [(lab, [getattr(result.neurons[n], k) for n in ns]) for k, lab in keys]
        if png_wanted():
            x = np.arange(len(ns))
            fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(ns) + 2), 3.2))
            wdt = 0.8 / len(keys)
            for i, (lab, v) in enumerate(values):
                ax.bar(x + i * wdt, v, wdt, label=lab)
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xticks(x + 0.4 - wdt / 2, ns, rotation=90)
            ax.set(xlabel=f"neuron of layer {result.neuron_layer}", ylabel="repeated - non-repeated activation")
            ax.legend(fontsize=7)
            paths.append(save_png(fig, out / "dup_neurons_gap.png"))
        pf = go.Figure()
        for lab, v in values:
            pf.add_trace(go.Bar(x=ns, y=v, name=lab))
        pf.update_layout(barmode="group", title="repeated - non-repeated activation per neuron",
                         xaxis_title=f"neuron of layer {result.neuron_layer}", xaxis_type="category",
                         yaxis_title="repeated - non-repeated activation")
        paths.append(save_plotly(pf, out / "dup_neurons_gap.html"))
    return paths


def word_index_figures(result, out: Path) -> list[Path]:

    out = Path(out)
    paths = []
    a = result.ablation
    if a:
        rows = [(f"point {p} probe accuracy", x.effect, x.baseline.draws) for p, x in a.accuracy.items()]
        rows.append(("loss on the words", a.loss.effect, a.loss.baseline.draws))
        paths += effect_strip(rows, f"{result.options.get('kind')}-ablating the point-{result.layer} word-index probe "
                                    f"subspace (rank {result.subspace_rank}) vs random subspaces", "ablated - clean",
                              out, "word_index_ablation")
    p = result.patching
    if p is not None:
        paths += patch_heatmap(p.sweep, out, "word_index_patching")
        s = p.subspace
        paths += effect_strip([("probe-subspace patch: logit diff change", s.vs_random.effect,
                                s.vs_random.baseline.draws)],
                              f"patching the point-{result.layer} probe subspace from A into B at position "
                              f"{p.pairs.position}", "change in the later probe's logit difference (A - B)",
                              out, "word_index_subspace_patch")
    return paths


def figures(result, out) -> list[Path]:
    """The figures of any causal result (ablation, patching, or one of the seeds' questions), by its type."""
    from ..analyses.causal.ablate import AblationResult
    from ..analyses.causal.patching import PatchResult
    from ..analyses.causal.question_duplicate import DupNeuronAblationResult
    from ..analyses.causal.question_helix import HelixAblationResult
    from ..analyses.causal.question_word_index import WordIndexCausalResult

    out = Path(out)
    by_type = {AblationResult: ablation_figures, DupNeuronAblationResult: duplicate_figures,
               HelixAblationResult: helix_figures, WordIndexCausalResult: word_index_figures,
               PatchResult: lambda r, o: patch_heatmap(r, o, f"patching_{r.sweep}")}
    return by_type[type(result)](result, out)
