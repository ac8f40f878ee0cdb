"""Figures of the positional analyses: attention sinks, the absolute-position probe, rotary frequency usage.

Made from results, registered by result type (:data:`FIGURES`); the analyses never import this.

>>> figures(result, Path("out"))     # any of SinkResult, ProbeResult, RotaryResult   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..analyses.position_probe.measure import ProbeResult  # noqa: E402
from ..analyses.rotary.measure import RotaryResult  # noqa: E402
from ..analyses.sinks.measure import SinkResult  # noqa: E402
from .common import save_png  # noqa: E402


def _grid(heads, layers, n_heads, key):
    g = np.full((len(layers), n_heads), np.nan)
    row = {l: i for i, l in enumerate(layers)}
    for h in heads:
        l, k = (int(x) for x in h.head.split("."))
        v = getattr(h, key)
        g[row[l], k] = np.nan if v is None else v
    return g


def sink_figures(r: SinkResult, out: Path) -> list[Path]:
    """Per input kind: alpha(0) per layer x head (sinks outlined), and alpha by key position."""
    out = Path(out)
    paths = []
    n = len(r.runs)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 1, 0.35 * max(len(x.layers) for x in r.runs) + 2.2), squeeze=False)
    for ax, run in zip(axes[0], r.runs):
        g = _grid(run.heads, run.layers, r.n_heads, "first_attention")
        im = ax.imshow(g, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                if g[i, j] > r.epsilon:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.2))
        ax.set_yticks(range(len(run.layers)), [str(l) for l in run.layers])
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(f"{run.inputs}\nsink share {run.sink_share:.1%}", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label="mean attention to the first position, alpha(0)")
    fig.suptitle(f"Attention sinks (red: alpha(0) > {r.epsilon:g}) — {r.model}", fontsize=10, y=0.99)
    fig.subplots_adjust(top=0.78, bottom=0.16)
    paths.append(save_png(fig, out / "sinks_first_attention.png", tight=False))

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in r.runs:
        ax[0].plot(range(len(run.key_profile)), run.key_profile, label=run.inputs)
        ratios = [h.key_norm_ratio for h in run.heads if h.key_norm_ratio is not None]
        firsts = [h.qk_cos_first for h in run.heads]
        others = [h.qk_cos_other for h in run.heads]
        ax[1].scatter(others, firsts, s=12, label=f"{run.inputs} (median key-norm ratio "
                      f"{np.median(ratios) if ratios else float('nan'):.2f})")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("key position k")
    ax[0].set_ylabel("alpha(k), mean over layers and heads")
    ax[0].legend(fontsize=7)
    lim = [-1, 1]
    ax[1].plot(lim, lim, color="grey", lw=0.8)
    ax[1].set_xlabel("cos(q, k_j), j >= 1")
    ax[1].set_ylabel("cos(q, k_0)")
    ax[1].set_title("per head: query-key cosine, first key vs others", fontsize=9)
    ax[1].legend(fontsize=7)
    paths.append(save_png(fig, out / "sinks_keys.png"))
    return paths


def probe_figures(r: ProbeResult, out: Path) -> list[Path]:
    out = Path(out)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    pts = [p.point for p in r.points]
    ax[0].plot(pts, [p.mae for p in r.points], "o-", label="ridge probe")
    ax[0].plot(pts, [p.baseline_mae for p in r.points], "--", color="grey", label="predict the mean position")
    ax[0].set_xticks(pts)
    ax[0].set_xlabel("residual point (0 = embeddings)")
    ax[0].set_ylabel("mean absolute error (positions)")
    ax[0].set_title(f"absolute position from the residual stream ({r.inputs})", fontsize=9)
    ax[0].legend(fontsize=8)
    centres = [(a + b) / 2 for a, b in zip(r.bin_edges[:-1], r.bin_edges[1:])]
    for p in r.points:
        ax[1].plot(centres, p.mae_by_position, marker=".", label=f"point {p.point}")
    ax[1].set_xlabel("true position")
    ax[1].set_ylabel("test error (positions)")
    ax[1].legend(fontsize=7, ncol=2)
    fig.suptitle(r.model, fontsize=9)
    return [save_png(fig, out / "position_probe.png")]


def rotary_figures(r: RotaryResult, out: Path) -> list[Path]:
    out = Path(out)
    paths = []
    prof = np.array(r.layer_profile)
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    im = ax[0].imshow(prof, aspect="auto", cmap="magma")
    ax[0].set_xlabel("rotary pair (0 = highest frequency)")
    ax[0].set_ylabel("layer")
    ax[0].set_title("mean usage share |q_i||k_i| over heads", fontsize=9)
    fig.colorbar(im, ax=ax[0])
    heads = sorted(r.heads, key=lambda h: -h.high_share)
    U = np.array([h.usage for h in heads])
    im = ax[1].imshow(U, aspect="auto", cmap="magma")
    ax[1].set_yticks(range(len(heads)), [h.head for h in heads], fontsize=5 if len(heads) > 40 else 7)
    ax[1].set_xlabel("rotary pair")
    ax[1].set_title("every head, most positional first", fontsize=9)
    fig.colorbar(im, ax=ax[1])
    fig.suptitle(f"Rotary frequency usage — {r.model}", fontsize=10)
    paths.append(save_png(fig, out / "rotary_usage.png"))
    return paths


FIGURES = {SinkResult: sink_figures, ProbeResult: probe_figures, RotaryResult: rotary_figures}


def figures(result, out: str | Path) -> list[Path]:
    """The figures registered for ``type(result)``, written into ``out``."""
    Path(out).mkdir(parents=True, exist_ok=True)
    return FIGURES[type(result)](result, Path(out))
