"""Figures for the positional-geometry analysis: PNG (matplotlib) and rotatable offline HTML (plotly).

Every function takes a result (or its ``to_dict()``) and an output folder, and returns the
paths it wrote. Points are coloured by position from blue (first) to red (last), as in
the helix post's plots.

>>> from poslens.viz.helix import helix_figures      # doctest: +SKIP
>>> helix_figures(result, Path("out"))                # doctest: +SKIP
[PosixPath('out/helix_3d.html'), PosixPath('out/helix_3d.png'), ...]
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .common import (SCENE_CAMERA, log_ticks, pad3, plt, png_wanted, save_3d_png, save_plotly, save_png,
                     sparse_log_labels)

CMAP = "jet"  # blue -> red along the positions, like the seed's figures
PLOTLY_SCALE = "Jet"


def _prepare(result, out) -> tuple[dict, Path]:
    """The result as a dict, and the output folder, made."""
    Path(out).mkdir(parents=True, exist_ok=True)
    return (result if isinstance(result, dict) else result.to_dict()), Path(out)


def _short(label: str) -> str:
    """A model's label fit for a panel title: a directory's last part (two if the last is generic)."""
    parts = Path(str(label)).parts
    if len(parts) <= 1:
        return str(label)
    return "/".join(parts[-2:]) if parts[-1] in ("model", "checkpoint", "export") else parts[-1]


def _panels(d: dict) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(title, coords [n, 3], positions) for the main PCA and each truncation present."""
    out = [(f"positions {d['positions'][0]}-{d['positions'][-1]}", np.asarray(d["coords"]), np.asarray(d["positions"]))]
    for name, label in (("late", "from {lo}"), ("early", "{lo}-{hi_}")):
        t = (d.get("truncations") or {}).get(name)
        if t:
            lo, hi = t["range"]
            out.append((f"positions {label.format(lo=lo, hi_=hi - 1)}", np.asarray(t["coords"]), np.arange(lo, hi)))
    return out


def _share(coords_block: dict | None, k: int = 3) -> str:
    if not coords_block:
        return ""
    cum = coords_block.get("cumulative") or []
    return f"{cum[min(k, len(cum)) - 1]:.1%} in {min(k, len(cum))} PCs" if cum else ""


def _position_range(panels) -> tuple[float, float]:
    """One colour range for every panel of a figure, so a colour means the same position in each
    (a truncation's panel coloured by its own range would disagree with the one colour bar)."""
    ps = np.concatenate([np.asarray(p) for *_, p in panels])
    return float(ps.min()), float(ps.max())


def _scatter3d_mpl(ax, coords: np.ndarray, positions: np.ndarray, title: str, size: float = 4,
                   crange: tuple[float, float] | None = None) -> None:
    from matplotlib.ticker import MaxNLocator

    c = pad3(coords)
    lo, hi = crange or (None, None)
    ax.scatter(c[:, 0], c[:, 1], c[:, 2], c=positions, cmap=CMAP, s=size, depthshade=False, vmin=lo, vmax=hi)
    ax.plot(c[:, 0], c[:, 1], c[:, 2], color="0.6", lw=0.4)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("PC1", fontsize=7)
    ax.set_ylabel("PC2", fontsize=7)
    ax.set_zlabel("PC3", fontsize=7)
    ax.tick_params(labelsize=5, pad=0)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(4))


def _scatter3d_plotly(coords: np.ndarray, positions: np.ndarray, name: str, showscale: bool = True,
                      crange: tuple[float, float] | None = None):
    c = pad3(coords)
    lo, hi = crange or (None, None)
    return go.Scatter3d(
        x=c[:, 0], y=c[:, 1], z=c[:, 2], mode="markers+lines", name=name,
        marker=dict(size=2.5, color=positions, colorscale=PLOTLY_SCALE, showscale=showscale, cmin=lo, cmax=hi,
                    colorbar=dict(title="position") if showscale else None),
        line=dict(color="rgba(120,120,120,0.35)", width=1),
        text=[f"position {int(p)}" for p in positions], hovertemplate="%{text}<extra></extra>",
    )


def _fit_cubes(fig) -> None:
    """Every scene seen from :data:`~poslens.viz.common.SCENE_CAMERA`, its axes named PC1-PC3 as in
    the PNG (plotly would write x, y and z)."""
    fig.update_scenes(camera=SCENE_CAMERA, xaxis_title_text="PC1", yaxis_title_text="PC2", zaxis_title_text="PC3")


# ----------------------------------------------------------------------------- one model


def helix_3d(d: dict, out: Path) -> list[Path]:
    """The top-3 principal components coloured by position: rotatable HTML (one scene per
    PCA: all positions and the two truncations) and a PNG with the same panels."""
    panels = _panels(d)
    blocks = [d, *(d.get("truncations") or {}).values()]
    fig = make_subplots(rows=1, cols=len(panels), specs=[[{"type": "scene"}] * len(panels)],
                        subplot_titles=[f"{t} ({_share(b)})" for (t, _, _), b in zip(panels, blocks)])
    crange = _position_range(panels)
    for i, (title, c, p) in enumerate(panels):
        fig.add_trace(_scatter3d_plotly(c, p, title, showscale=i == 0, crange=crange), row=1, col=i + 1)
    fig.update_layout(title=f"W_pos of {_short(d['model'])}: top-3 principal components", height=520,
                      width=max(560, 480 * len(panels)), showlegend=False, margin=dict(l=0, r=0, t=60, b=0))
    _fit_cubes(fig)
    paths = [save_plotly(fig, out / "helix_3d.html")]
    if png_wanted():
        f = plt.figure(figsize=(4.2 * len(panels), 4))
        for i, ((title, c, p), b) in enumerate(zip(panels, blocks)):
            ax = f.add_subplot(1, len(panels), i + 1, projection="3d")
            _scatter3d_mpl(ax, c, p, f"{title}\n{_share(b)}", crange=crange)
        f.suptitle(f"W_pos of {_short(d['model'])}", fontsize=10)
        paths.append(save_3d_png(f, out / "helix_3d.png"))
    return paths


def variance_plot(d: dict, out: Path) -> list[Path]:
    """Variance share per component and cumulative, W_pos against the sinusoidal encoding."""
    ve = np.asarray(d["variance_explained"])
    k = np.arange(1, len(ve) + 1)
    sin = d.get("sinusoidal")
    sv = np.asarray(sin["variance_explained"]) if sin else None
    title = (f"{_short(d['model'])}: PCA of W_pos, positions {d['positions'][0]}-{d['positions'][-1]}"
             + (" (centred)" if d.get("centred") else " (raw)"))
    paths = []
    if png_wanted():
        f, ax = plt.subplots(figsize=(6.5, 3.6))
        width = 0.4 if sin else 0.8
        ax.bar(k - (width / 2 if sin else 0), ve, width=width, label=f"W_pos ({d['components_for_90']} PCs for 90%)")
        ax.plot(k, np.cumsum(ve), "o-", ms=3, label="W_pos cumulative")
        if sin:
            ax.bar(k[:len(sv)] + width / 2, sv, width=width, color="tab:gray",
                   label=f"sinusoidal ({sin['components_for_90']} PCs for 90%)")
            ax.plot(k[:len(sv)], np.cumsum(sv), "s--", ms=3, color="tab:gray", label="sinusoidal cumulative")
        ax.axhline(0.9, color="k", lw=0.6, ls=":")
        ax.set(xlabel="principal component", ylabel="share of variance")
        ax.set_xticks(k)
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
        paths.append(save_png(f, out / "variance.png"))
    fig = go.Figure()
    fig.add_bar(x=k, y=ve, name=f"W_pos ({d['components_for_90']} PCs for 90%)", marker_color="#1f77b4")
    if sin:
        fig.add_bar(x=k[:len(sv)], y=sv, name=f"sinusoidal ({sin['components_for_90']} PCs for 90%)",
                    marker_color="#7f7f7f")
    fig.add_scatter(x=k, y=np.cumsum(ve), mode="lines+markers", name="W_pos cumulative", marker=dict(size=5),
                    line=dict(color="#ff7f0e"))
    if sin:
        fig.add_scatter(x=k[:len(sv)], y=np.cumsum(sv), mode="lines+markers", name="sinusoidal cumulative",
                        marker=dict(size=5, symbol="square"), line=dict(color="#7f7f7f", dash="dash"))
    fig.add_hline(y=0.9, line=dict(color="black", width=0.8, dash="dot"))
    fig.update_xaxes(title_text="principal component", tickmode="array", tickvals=k)
    fig.update_yaxes(title_text="share of variance", range=[0, 1.02])
    fig.update_layout(title=title, barmode="group", height=420, width=720)
    paths.append(save_plotly(fig, out / "variance.html"))
    return paths


def cosine_plot(d: dict, out: Path) -> list[Path]:
    """Cosine similarity between W_pos rows (heatmap; sinusoidal beside it) and its mean by offset."""
    mats = [("W_pos", d["cosine"])]
    if d.get("sinusoidal"):
        mats.append(("sinusoidal", d["sinusoidal"]["cosine"]))
    paths = []
    if png_wanted():
        # constrained layout keeps the shared colour bar off the panels (margins set after it moved them under it)
        f, axes = plt.subplots(1, len(mats) + 1, figsize=(4.2 * (len(mats) + 1), 3.8), layout="constrained")
        for ax, (name, c) in zip(axes, mats):
            pos = np.asarray(c["matrix_positions"])
            ext = [pos[0], pos[-1], pos[-1], pos[0]]
            im = ax.imshow(np.asarray(c["matrix"]), cmap="RdBu_r", vmin=-1, vmax=1, extent=ext)
            ax.set_title(f"{name}: cos(P_i, P_j)", fontsize=9)
            ax.set(xlabel="position j", ylabel="position i")
        f.colorbar(im, ax=axes[:len(mats)].tolist(), shrink=0.8)
        ax = axes[-1]
        for name, c in mats:
            ax.plot(c["by_offset"], label=name + (f" (period {c['period']})" if c.get("period") else ""))
        ax.axhline(0, color="k", lw=0.5)
        ax.set(xlabel="offset k", ylabel="mean cos(P_i, P_i+k)")
        ax.set_title("by offset", fontsize=9)
        ax.legend(fontsize=7)
        f.suptitle(_short(d["model"]), fontsize=10)
        paths.append(save_png(f, out / "cosine.png", tight=False, bbox="tight"))
    fig = make_subplots(rows=1, cols=len(mats), subplot_titles=[f"{n}: cos(P_i, P_j)" for n, _ in mats])
    for i, (name, c) in enumerate(mats):
        pos = c["matrix_positions"]
        fig.add_trace(go.Heatmap(z=c["matrix"], x=pos, y=pos, zmin=-1, zmax=1, colorscale="RdBu_r",
                                 showscale=i == 0), row=1, col=i + 1)
        fig.update_xaxes(title_text="position j", row=1, col=i + 1)
        fig.update_yaxes(title_text="position i", autorange="reversed", row=1, col=i + 1)
    fig.update_layout(title=f"{_short(d['model'])}: cosine similarity of positional embeddings", height=480,
                      width=460 * len(mats))
    paths.append(save_plotly(fig, out / "cosine.html"))
    return paths


def traces_plot(d: dict, out: Path) -> list[Path]:
    """The strongest dimensions of W_pos against position (the helix post: 'they look like sine waves')."""
    tr = d.get("traces") or {}
    if not tr.get("dims"):
        return []
    pos = np.asarray(d["positions"])
    title = f"{_short(d['model'])}: the {len(tr['dims'])} highest-variance dimensions of W_pos"
    labels = [f"dim {dim} (period ~{per:.0f})" if per < 4 * len(pos) else f"dim {dim}"
              for dim, per in zip(tr["dims"], tr["periods"])]
    paths = []
    if png_wanted():
        f, ax = plt.subplots(figsize=(7, 3.6))
        for vals, label in zip(tr["values"], labels):
            ax.plot(pos, vals, lw=0.9, label=label)
        ax.set(xlabel="position", ylabel="W_pos[position, dim]")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, ncol=2)
        paths.append(save_png(f, out / "traces.png"))
    fig = go.Figure()
    for vals, label in zip(tr["values"], labels):
        fig.add_scatter(x=pos, y=vals, mode="lines", line=dict(width=1.2), name=label)
    fig.update_layout(title=title, xaxis_title="position", yaxis_title="W_pos[position, dim]", height=420, width=760)
    paths.append(save_plotly(fig, out / "traces.html"))
    return paths


def _hline_trace(x0: float, x1: float, y: float, name: str, color: str, dash: str, showlegend: bool = True):
    """A horizontal (or, with x0 == x1 and y a pair, vertical) line as a trace, so it gets a legend entry."""
    ys = list(y) if isinstance(y, (list, tuple)) else [y, y]
    return go.Scatter(x=[x0, x1], y=ys, mode="lines", name=name, showlegend=showlegend, hoverinfo="name",
                      line=dict(color=color, dash=dash, width=1.2))


def norms_plot(d: dict, out: Path) -> list[Path]:
    """Row norms by position (outliers marked), W_E's mean norm, and the early positions' fraying."""
    n = d["norms"]
    fr = d.get("fray")
    by = np.asarray(n["by_position"])
    flagged = d["outliers"]["flagged"][:8]
    sin_mean = d["sinusoidal"]["norms"]["mean"] if d.get("sinusoidal") else None
    titles = [f"{_short(d['model'])}: norms (isolated positions in red)"]
    if fr:
        titles.append(f"fraying: positions < {fr['cut']} leave the late subspace")
    paths = []
    if png_wanted():
        f, axes = plt.subplots(1, 2 if fr else 1, figsize=(11 if fr else 6, 3.6), squeeze=False)
        ax = axes[0, 0]
        ax.plot(by, lw=0.9, label=f"W_pos (mean {n['W_pos']['mean']:.3f}, std {n['W_pos']['std']:.3f})")
        for o in flagged:
            ax.plot(o["position"], o["norm"], "o", color="tab:red", ms=4)
            ax.annotate(str(o["position"]), (o["position"], o["norm"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if n.get("W_E"):
            ax.axhline(n["W_E"]["mean"], color="tab:green", ls="--", lw=0.8, label=f"W_E mean {n['W_E']['mean']:.3f}")
        if sin_mean is not None:
            ax.axhline(sin_mean, color="tab:gray", ls=":", lw=0.8, label=f"sinusoidal {sin_mean:.2f}")
            ax.set_yscale("log")
            sparse_log_labels(ax.yaxis)
        ax.set(xlabel="position", ylabel="row norm")
        ax.set_title(titles[0], fontsize=9)
        ax.legend(fontsize=7)
        if fr:
            ax = axes[0, 1]
            ax.plot(fr["residual"], lw=0.8)
            ax.axhline(fr["threshold"], color="k", ls=":", lw=0.7, label="threshold")
            if fr["fray_end"] is not None:
                ax.axvline(fr["fray_end"], color="tab:red", lw=0.8, label=f"fray ends ~{fr['fray_end']}")
            ax.set(xlabel="position", ylabel=f"share outside the late top-{fr['k']} subspace")
            ax.set_title(titles[1], fontsize=9)
            ax.legend(fontsize=7)
        paths.append(save_png(f, out / "norms.png"))
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles)
    x1 = max(len(by) - 1, 0)
    fig.add_scatter(x=np.arange(len(by)), y=by, mode="lines", line=dict(width=1.2, color="#1f77b4"),
                    name=f"W_pos (mean {n['W_pos']['mean']:.3f}, std {n['W_pos']['std']:.3f})", row=1, col=1)
    if flagged:
        fig.add_scatter(x=[o["position"] for o in flagged], y=[o["norm"] for o in flagged], mode="markers+text",
                        text=[str(o["position"]) for o in flagged], textposition="top right",
                        textfont=dict(size=10), marker=dict(color="#d62728", size=7), name="isolated positions",
                        row=1, col=1)
    if n.get("W_E"):
        fig.add_trace(_hline_trace(0, x1, n["W_E"]["mean"], f"W_E mean {n['W_E']['mean']:.3f}", "#2ca02c", "dash"),
                      row=1, col=1)
    if sin_mean is not None:
        fig.add_trace(_hline_trace(0, x1, sin_mean, f"sinusoidal {sin_mean:.2f}", "#7f7f7f", "dot"), row=1, col=1)
        shown = [*by, sin_mean] + ([n["W_E"]["mean"]] if n.get("W_E") else [])
        fig.update_yaxes(type="log", **log_ticks(shown), row=1, col=1)
    fig.update_xaxes(title_text="position")
    fig.update_yaxes(title_text="row norm", row=1, col=1)
    if fr:
        res = np.asarray(fr["residual"], dtype=float)
        fig.add_scatter(x=np.arange(len(res)), y=res, mode="lines", line=dict(width=1.2, color="#9467bd"),
                        name="share outside (fraying)", row=1, col=2)
        fig.add_trace(_hline_trace(0, max(len(res) - 1, 0), fr["threshold"], "threshold", "black", "dot"), row=1, col=2)
        if fr["fray_end"] is not None:
            finite = res[np.isfinite(res)]
            lo = float(min(finite.min(), fr["threshold"])) if finite.size else 0.0
            hi = float(max(finite.max(), fr["threshold"])) if finite.size else 1.0
            fig.add_trace(_hline_trace(fr["fray_end"], fr["fray_end"], [lo, hi], f"fray ends ~{fr['fray_end']}",
                                       "#d62728", "solid"), row=1, col=2)
        fig.update_yaxes(title_text=f"share outside the late top-{fr['k']} subspace", row=1, col=2)
    fig.update_annotations(font_size=13)
    fig.update_layout(title=f"{_short(d['model'])}: row norms of W_pos", height=450, width=1100 if fr else 720)
    paths.append(save_plotly(fig, out / "norms.html"))
    return paths


def helix_fit_plot(d: dict, out: Path) -> list[Path]:
    """Top components against position with the fitted helix, and the ODE's predicted derivative."""
    h = d.get("helix")
    if not h:
        return []
    pos = np.asarray(d["positions"], dtype=float)
    C = np.asarray(d["coords"])
    k = min(C.shape[1], len(h["cos"]))
    w, t0 = h["omega"], h["t0"]
    fit = (np.asarray(h["offset"])[None, :k] + np.outer(pos - t0, h["slope"][:k])
           + np.outer(np.cos(w * pos), h["cos"][:k]) + np.outer(np.sin(w * pos), h["sin"][:k]))
    ode = d.get("ode")
    show_ode = ode is not None and len(ode["A"]) == k
    if show_ode:
        D = (C[2:] - C[:-2]) / 2  # central differences
        pred = C[1:-1] @ np.asarray(ode["A"]).T + np.asarray(ode["c"])
    sm = d.get("ode_smoothed")
    titles = [f"helix fit: period {h['period']:.1f}, radius {h['radius']:.3g}, pitch {h['pitch']:.3g}, R² {h['r2']:.3f}"]
    if show_ode:
        titles.append(f"f' ≈ A f + c: R² {ode['r2']:.3f} (central)" + (f", {sm['r2']:.3f} (smoothed)" if sm else ""))
    paths = []
    if png_wanted():
        f, axes = plt.subplots(1, 2 if show_ode else 1, figsize=(11 if show_ode else 6, 3.6), squeeze=False)
        ax = axes[0, 0]
        for j in range(k):
            ax.plot(pos, C[:, j], lw=0.8, label=f"PC{j + 1}")
            ax.plot(pos, fit[:, j], "k--", lw=0.6)
        ax.set(xlabel="position", ylabel="coordinate")
        ax.set_title(titles[0], fontsize=9)
        ax.legend(fontsize=7)
        if show_ode:
            ax = axes[0, 1]
            for j in range(k):
                ax.plot(pos[1:-1], D[:, j], lw=0.5, alpha=0.6, label=f"dPC{j + 1}/dt (central)")
                ax.plot(pos[1:-1], pred[:, j], "k--", lw=0.7)
            ax.set_title(titles[1], fontsize=9)
            ax.set(xlabel="position", ylabel="derivative (coordinate per position)")
            ax.legend(fontsize=6)
        paths.append(save_png(f, out / "helix_fit.png"))
    palette = qualitative.D3  # matplotlib's default cycle, so the HTML matches the PNG
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles)
    for j in range(k):
        col = palette[j % len(palette)]
        fig.add_scatter(x=pos, y=C[:, j], mode="lines", line=dict(width=1.2, color=col), name=f"PC{j + 1}",
                        legendgroup=f"PC{j + 1}", row=1, col=1)
        fig.add_scatter(x=pos, y=fit[:, j], mode="lines", line=dict(width=1, color="black", dash="dash"),
                        name=f"PC{j + 1} helix fit", legendgroup=f"PC{j + 1}", showlegend=False, row=1, col=1)
    fig.update_yaxes(title_text="coordinate", row=1, col=1)
    if show_ode:
        for j in range(k):
            col = palette[j % len(palette)]
            fig.add_scatter(x=pos[1:-1], y=D[:, j], mode="lines", opacity=0.6, line=dict(width=1, color=col),
                            name=f"dPC{j + 1}/dt (central)", legendgroup=f"dPC{j + 1}", row=1, col=2)
            fig.add_scatter(x=pos[1:-1], y=pred[:, j], mode="lines", line=dict(width=1, color="black", dash="dash"),
                            name=f"dPC{j + 1}/dt (A f + c)", legendgroup=f"dPC{j + 1}", showlegend=False, row=1, col=2)
        fig.update_yaxes(title_text="derivative (coordinate per position)", row=1, col=2)
    fig.update_xaxes(title_text="position")
    fig.update_annotations(font_size=13)
    fig.update_layout(title=f"{_short(d['model'])}: helix fit of the top principal components (dashed: fit)",
                      height=450, width=1100 if show_ode else 720)
    paths.append(save_plotly(fig, out / "helix_fit.html"))
    return paths


def helix_figures(result, out: str | Path) -> list[Path]:
    """Every figure of one :class:`~poslens.analyses.helix.HelixResult`."""
    d, out = _prepare(result, out)
    paths: list[Path] = []
    for fn in (helix_3d, variance_plot, cosine_plot, traces_plot, norms_plot, helix_fit_plot):
        paths += fn(d, out)
    return paths


# ----------------------------------------------------------------------------- several models, sweeps


def _grid(items: list[tuple[str, np.ndarray, np.ndarray]], title: str, out: Path, stem: str) -> list[Path]:
    """A grid of 3-D helices (PNG) and the same grid as rotatable scenes (HTML)."""
    n = len(items)
    cols = min(3, n) if n <= 9 else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    paths = []
    crange = _position_range(items)
    if png_wanted():
        f = plt.figure(figsize=(3.6 * cols, 3.4 * rows))
        for i, (name, c, p) in enumerate(items):
            ax = f.add_subplot(rows, cols, i + 1, projection="3d")
            _scatter3d_mpl(ax, c, p, name, size=2, crange=crange)
        f.suptitle(title, fontsize=10)
        paths.append(save_3d_png(f, out / f"{stem}.png"))
    # no scene in the last row's empty cells: plotly would draw an empty cube there
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[n for n, _, _ in items],
                        specs=[[{"type": "scene"} if r * cols + c < n else None for c in range(cols)]
                               for r in range(rows)])
    for i, (name, c, p) in enumerate(items):
        fig.add_trace(_scatter3d_plotly(c, p, name, showscale=i == 0, crange=crange), row=i // cols + 1,
                      col=i % cols + 1)
    fig.update_layout(title=title, height=380 * rows, width=420 * cols, showlegend=False,
                      margin=dict(l=0, r=0, t=60, b=0))
    _fit_cubes(fig)
    paths.append(save_plotly(fig, out / f"{stem}.html"))
    return paths


def family_figures(result, out: str | Path) -> list[Path]:
    """The helix post's grid: every model's helix in one figure, for all positions and each truncation."""
    d, out = _prepare(result, out)
    rs = d["results"]
    paths: list[Path] = []
    for key, suffix, label in ((None, "", "main range"), ("late", "_late", "late positions"),
                               ("early", "_early", "early positions")):
        items = []
        for r in rs:
            if key is None:
                items.append((f"{_short(r['model'])}\n{_share(r)}", np.asarray(r["coords"]), np.asarray(r["positions"])))
            elif (r.get("truncations") or {}).get(key):
                t = r["truncations"][key]
                items.append((f"{_short(r['model'])}\n{_share(t)}", np.asarray(t["coords"]), np.arange(*t["range"])))
        if items:
            paths += _grid(items, f"W_pos top-3 principal components ({label})", out, f"helix_grid{suffix}")
    return paths


def sweep_figures(result, out: str | Path) -> list[Path]:
    """Helix metrics against training step, and the helix at each checkpoint."""
    d, out = _prepare(result, out)
    rows = d["table"]
    steps = [r["step"] for r in rows]
    known = all(s is not None for s in steps)
    x = np.asarray(steps if known else range(len(rows)), dtype=float)
    metrics = [("share_3", "variance in 3 PCs"), ("late_share_3", "variance in 3 PCs (late)"),
               ("components_for_90", "PCs for 90%"), ("helix_r2", "helix fit R²"),
               ("ode_r2_smoothed", "ODE R² (smoothed)"), ("overlap_final", "overlap with final top-3"),
               ("norm_mean", "mean row norm"), ("helix_period", "helix period")]
    f, axes = plt.subplots(2, 4, figsize=(13, 5.5))
    for ax, (key, label) in zip(axes.ravel(), metrics):
        y = np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)
        ax.plot(x, y, "o-", ms=3)
        ax.set_title(label, fontsize=9)
        if known and x.min() >= 0 and x.max() > 100 * max(1, np.sort(x)[1] if len(x) > 1 else 1):
            ax.set_xscale("symlog", linthresh=max(1.0, float(np.sort(x)[1]) if len(x) > 1 else 1.0))
        ax.set_xlabel("training step" if known else "checkpoint")
        ax.tick_params(labelsize=7)
    f.suptitle(f"helix across checkpoints of {_short(d['model'])}", fontsize=10)
    paths = [save_png(f, out / "sweep.png")]
    items = []
    for r, c, (lo, hi) in zip(rows, d["coords"], d["ranges"]):
        name = f"step {r['step']}" if r["step"] is not None else _short(r["spec"])
        share = f"{r['share_3']:.1%} in 3 PCs" if r.get("share_3") is not None else ""
        items.append((f"{name}\n{share}", np.asarray(c), np.arange(lo, hi)))
    paths += _grid(items, f"W_pos of {_short(d['model'])} during training", out, "sweep_grid")
    return paths


def figures(result, out_dir: str | Path) -> list[Path]:
    """The figures of any helix result (one model, several models, or a sweep)."""
    from ..analyses.helix import HelixFamilyResult, HelixSweepResult

    if isinstance(result, HelixFamilyResult):
        return family_figures(result, Path(out_dir))
    if isinstance(result, HelixSweepResult):
        return sweep_figures(result, Path(out_dir))
    return helix_figures(result, Path(out_dir))
