"""Figure axes, read from the figures themselves (plotly layout, matplotlib Axes) on small
hand-made results and on the tiny-attn report's figures: every plotly axis is titled (heat
maps' in the PNG too), every layer grid has layer 0 on top in the PNG and in the HTML, log axes
label no crowding ticks, twins share their colour maps, and scatter labels do not overlap."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace as NS

import matplotlib.colors
import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.colors import sample_colorscale

from poslens.viz import causal, common, duplicate, helix, logit_lens, positional, profile, spectra, subspaces
from poslens.viz import twisted_pair, word_index
from poslens.viz.common import plt

# common too: its save_3d_png saves through its own save_png
MODULES = (causal, common, duplicate, helix, logit_lens, positional, profile, spectra, subspaces, twisted_pair, word_index)
VIZ = Path(common.__file__).parent
L, H = 3, 4  # layers and heads of the made-up model


@pytest.fixture
def figs(monkeypatch):
    """Every figure the viz functions save, by file name, kept open instead of written."""
    kept: dict[str, object] = {}

    def keep(fig, path, *a, **k):
        kept[Path(path).name] = fig
        return Path(path)

    monkeypatch.setitem(plt.rcParams, "figure.max_open_warning", 0)  # kept open on purpose, closed below
    for m in MODULES:
        for name in ("save_png", "save_plotly"):
            if hasattr(m, name):
                monkeypatch.setattr(m, name, keep)
    yield kept
    plt.close("all")


def _grid_values(seed=0):
    rng = np.random.default_rng(seed)
    return {f"{l}.{h}": float(rng.uniform(0.05, 0.95)) for l in range(L) for h in range(H)}


def _head(l, h, v, **extra):
    return NS(layer=l, head=h, **extra, **{k: v for k in ("score_repeated", "score_text", "prev_token_score",
                                                           "induction_score", "shifted_induction_score",
                                                           "first_position_score")})


def _spectrum(seed):
    sv = np.sort(np.random.default_rng(seed).uniform(0.1, 3, 8))[::-1]
    return NS(effective_rank=5.0, shape=(8, 8), condition=float(sv[0] / sv[-1]), log_volume=float(np.log(sv).sum()),
              singular_values=list(sv))


def _sinks(key_profile):
    runs = [NS(inputs=kind, layers=list(range(L)), sink_share=0.5, key_profile=list(key_profile),
               heads=[NS(head=f"{l}.{h}", first_attention=v, key_norm_ratio=1.0, qk_cos_first=0.1, qk_cos_other=0.2)
                      for (l, h), v in zip([(l, h) for l in range(L) for h in range(H)], _grid_values(i).values())])
            for i, kind in enumerate(("random_tokens", "text"))]
    return NS(runs=runs, n_heads=H, epsilon=0.3, model="m")


def _dup_heads(span50=(2, 2, 4, 28)):
    heads = {n: _head(*map(int, n.split(".")), v) for n, v in _grid_values().items()}
    pos = {f"0.{h}": NS(span50=s, entropy_ratio=0.1 * (h + 1), kind="local") for h, s in enumerate(span50)}
    return NS(heads=heads, profiles={}, token_classes=None, positional=NS(heads=pos, local_window=30))


def _patch():
    z = np.random.default_rng(1).uniform(-1, 1, (L, H))
    return NS(normalized=z.tolist(), raw=z.tolist(), skipped=None, corrupted_metric=0.0, clean_metric=1.0,
              layers=list(range(L)), column_labels=None, columns=list(range(H)), sweep="heads", mode="activation",
              hook="z", metric=NS(name="logit diff"))


def _lens():
    P, N = L + 1, 5
    E = np.random.default_rng(2).uniform(0, 5, (P, N))
    return NS(entropy=E.tolist(), str_tokens=[f"t{j}" for j in range(N)], points=["embed"] + [f"block {l}" for l in range(L)],
              top1=[["x"] * N for _ in range(P)], model="m", last_entropy=list(E[:, -1]), mean_entropy=list(E.mean(1)),
              top_k=[[] for _ in range(P)], prompt="p")


def _subspaces():
    pts = ["embed", "block 0", "block 1 +ln_f"]
    g = NS(points=pts, eigenvalues=None, mp=[NS(k=2)] * 3, gap=[NS(k=1)] * 3, n_tokens=10,
           consecutive=[NS(pair=(a, b), sum_deg=10.0) for a, b in zip(pts, pts[1:])],
           participation_ratio=[1.0, 2.0, 3.0], effective_rank=[1.0, 2.0, 3.0],
           overlap_matrix=np.eye(3).tolist(), mds=[[0, 0], [1, 0], [1, 1]], mds_points=pts)
    return NS(prompts={"short": g, "long": g}, model="m", options={"threshold": 0.9})


def _helix_cosine():
    pos = list(range(8))
    c = {"matrix": np.eye(8).tolist(), "matrix_positions": pos, "by_offset": [1.0] * 8, "period": None}
    return {"model": "m", "cosine": c, "sinusoidal": {"cosine": c}}


def _rotary():
    return NS(layer_profile=np.random.default_rng(3).uniform(0, 1, (L, 6)).tolist(), model="m",
              heads=[NS(head=f"{l}.{h}", high_share=0.1 * h, usage=[0.1] * 6) for l in range(L) for h in range(H)])


# name -> (draw every figure, the layer grids among its files, their other heat maps)
DRAW = {
    "profile": (lambda out: profile.profile_figures(NS(model="m", heads={n: _head(*map(int, n.split(".")), v)
                                                                          for n, v in _grid_values().items()},
                                                       thresholds={r[2]: 0.5 for r in profile._ROLES}), out),
                ["profile_roles.png", "profile_roles.html"], []),
    "dup_heads": (lambda out: duplicate.dup_heads_figures(_dup_heads(), out),
                  [f"dup_{k}.{ext}" for k, _ in duplicate._HEAD_SCORES for ext in ("png", "html")], []),
    "spectra": (lambda out: spectra.spectra_figures(NS(model="m", layers=list(range(L)),
                                                       matrices={m: {str(l): _spectrum(l) for l in range(L)}
                                                                 for m in ("W_Q", "W_K")},
                                                       qk={n: NS(symmetry=v, identity_scaled=v, identity=v)
                                                           for n, v in _grid_values().items()}), out),
                ["spectra_heatmap.png", "spectra_heatmap.html", "qk_distances.png", "qk_distances.html"], []),
    "causal_helix": (lambda out: causal.helix_figures(NS(loss=None, prev_attention=None, k=3,
                                                         per_head={n: NS(clean=v, helix=v - 0.5)
                                                                   for n, v in _grid_values().items()}), out),
                     ["helix_prev_attention.png", "helix_prev_attention.html"], []),
    "patching": (lambda out: causal.patch_heatmap(_patch(), out), ["patching.png", "patching.html"], []),
    "sinks": (lambda out: positional.sink_figures(_sinks(np.linspace(0.2, 0.02, 16)), out),
              ["sinks_first_attention.png", "sinks_first_attention.html"], []),
    "rotary": (lambda out: positional.rotary_figures(_rotary(), out), ["rotary_usage.png"], []),
    "tp_gpt2": (lambda out: twisted_pair._gpt2(NS(gpt2=NS(ideal_cos=0.9, heads=[NS(layer=l, index=h, mean_cos=v)
                                                                                for (l, h), v in zip(
                                                                                    [(l, h) for l in range(L) for h in range(H)],
                                                                                    _grid_values().values())])), out),
                ["tp_gpt2_heads.png", "tp_gpt2_heads.html"], []),
    "lens": (lambda out: logit_lens.lens_figures(_lens(), out), ["lens_entropy.png", "lens_entropy.html"], []),
    "cosine": (lambda out: helix.cosine_plot(_helix_cosine(), out), [], ["cosine.png", "cosine.html"]),
    "subspaces": (lambda out: subspaces.subspace_figures(_subspaces(), out), [],
                  ["subspace_overlap.png", "subspace_overlap.html"]),
    "pvo": (lambda out: duplicate.neuron_figures(NS(grid=np.arange(12.0).reshape(3, 4).tolist(), head="0.1", curves=None,
                                                    decomposition=None, combined_positional=None, ln_scale=None,
                                                    top_examples=None), out), [], ["pvo_norm_grid.png", "pvo_norm_grid.html"]),
}


def _plotly_heatmaps(fig):
    """(trace, its x axis, its y axis) for every heat map of a plotly figure."""
    for t in fig.data:
        if t.type == "heatmap":
            x, y = (t.xaxis or "x")[1:], (t.yaxis or "y")[1:]
            yield t, fig.layout[f"xaxis{x}"], fig.layout[f"yaxis{y}"]


def _mpl_heatmaps(fig):
    return [ax for ax in fig.axes if ax.images]


@pytest.mark.parametrize("name", DRAW)
def test_every_heat_map_axis_has_a_title(name, figs, tmp_path):
    draw, grids, others = DRAW[name]
    draw(tmp_path)
    wanted = grids + others
    assert set(wanted) <= set(figs), f"{name}: not drawn: {set(wanted) - set(figs)}"
    for file in wanted:
        fig = figs[file]
        if file.endswith(".html"):
            maps = list(_plotly_heatmaps(fig))
            assert maps, file
            for t, xa, ya in maps:
                assert xa.title.text and ya.title.text, f"{file}: a heat map's axis has no title ({t.xaxis}, {t.yaxis})"
        else:
            axes = _mpl_heatmaps(fig)
            assert axes, file
            for ax in axes:
                assert ax.get_xlabel() and ax.get_ylabel(), f"{file}: {ax.get_title()!r} has an unlabelled axis"


@pytest.mark.parametrize("name", [n for n, (_, grids, _) in DRAW.items() if grids])
def test_layer_grids_read_down_from_layer_0(name, figs, tmp_path):
    """Layer 0 (or the embeddings) is the top row of every layer grid, PNG and HTML alike."""
    draw, grids, _ = DRAW[name]
    draw(tmp_path)
    for file in grids:
        fig = figs[file]
        if file.endswith(".html"):
            for t, _, ya in _plotly_heatmaps(fig):
                assert ya.autorange == "reversed", f"{file}: layer 0 drawn at the bottom"
                assert str(t.y[0]) in ("0", "L0", "embed"), f"{file}: first row is {t.y[0]!r}"
        else:
            for ax in _mpl_heatmaps(fig):
                assert ax.yaxis_inverted(), f"{file}: layer 0 drawn at the bottom"
                first = min(ax.get_yticks(), key=abs)
                label = {tk.get_position()[1]: tk.get_text() for tk in ax.get_yticklabels()}.get(first)
                if label is not None and not ax.get_ylabel() == "head":  # rotary's right panel: heads by share
                    assert label in ("0", "L0", "embed"), f"{file}: top row is {label!r}"


def _drawn_tick_labels(fig, axis):
    """(value, text, extent) of every non-empty tick label of a matplotlib axis, as drawn."""
    fig.canvas.draw()
    out = []
    for ticks in (axis.get_major_ticks(), axis.get_minor_ticks()):
        for tk in ticks:
            lab = tk.label1
            if lab.get_visible() and lab.get_text() and tk.get_visible():
                v = tk.get_loc()
                lo, hi = sorted(axis.get_view_interval())
                if lo <= v <= hi:
                    out.append((v, lab.get_text(), lab.get_window_extent()))
    return out


def _coefficient(v):
    return round(v / 10.0 ** np.floor(np.log10(v) + 1e-9))


# figure, its file, which matplotlib axis, which plotly axis: ranges within about a decade,
# where matplotlib labelled 2, 3, 4 and 6 times the power of ten and plotly every digit
LOG_AXES = {
    "dup_positional": (lambda out: duplicate.dup_heads_figures(_dup_heads((2, 2, 4, 28)), out), "dup_positional",
                       lambda fig: fig.axes[0].xaxis, "xaxis"),
    "sinks_keys": (lambda out: positional.sink_figures(_sinks(np.geomspace(0.2, 0.018, 16)), out), "sinks_keys",
                   lambda fig: fig.axes[0].yaxis, "yaxis"),
    "norms": (lambda out: helix.norms_plot({"model": "m", "norms": {"by_position": list(np.geomspace(1.7, 0.18, 40)),
                                                                    "W_pos": {"mean": 0.4, "std": 0.2},
                                                                    "W_E": {"mean": 1.3}},
                                            "outliers": {"flagged": []}, "fray": None,
                                            "sinusoidal": {"norms": {"mean": 6.9}}}, out), "norms",
              lambda fig: fig.axes[0].yaxis, "yaxis"),
}


@pytest.mark.parametrize("name", LOG_AXES)
def test_short_log_axes_label_few_ticks_that_do_not_overlap(name, figs, tmp_path):
    draw, stem, mpl_axis, plotly_axis = LOG_AXES[name]
    draw(tmp_path)
    fig = figs[f"{stem}.png"]
    labels = _drawn_tick_labels(fig, mpl_axis(fig))
    assert len(labels) >= 2, f"{stem}.png: {[t for _, t, _ in labels]}"
    assert {_coefficient(v) for v, _, _ in labels} <= {1, 2, 5}, f"{stem}.png: {[t for _, t, _ in labels]}"
    boxes = sorted((e for _, _, e in labels), key=lambda e: (e.x0, e.y0))
    for a, b in zip(boxes, boxes[1:]):
        assert not a.overlaps(b), f"{stem}.png: tick labels overlap: {[t for _, t, _ in labels]}"
    ax = figs[f"{stem}.html"].layout[plotly_axis]
    assert ax.type == "log" and ax.tickvals, f"{stem}.html: plotly's own ticks (a bare digit for each of 2-9)"
    assert {_coefficient(v) for v in ax.tickvals} <= {1, 2, 5}
    assert all(float(t) == pytest.approx(v) for t, v in zip(ax.ticktext, ax.tickvals)), ax.ticktext


def test_long_log_axes_label_powers_of_ten_only():
    # plotly's own ticks there label 2 and 5 of each decade as bare digits: "5 2 1 5 2" in a narrow panel
    assert common.log_ticks([0.01, 30.0]) == {"dtick": 1, "exponentformat": "power"}
    assert common.log_ticks([1e-15, 10.0]) == {"dtick": 2, "exponentformat": "power"}  # 16 decades: every other
    assert common.log_ticks([0.0, float("nan")]) == {}
    assert common.log_ticks([2, 30])["ticktext"] == ["1", "2", "5", "10", "20", "50", "100"]
    fig, ax = plt.subplots()
    ax.semilogy([1, 2], [1e-6, 1e3])
    common.sparse_log_labels(ax.yaxis)
    labels = _drawn_tick_labels(fig, ax.yaxis)
    assert labels and all(_coefficient(v) == 1 for v, _, _ in labels)  # many decades: the powers of ten only
    plt.close(fig)


# ---------------------------------------------------------------------------- every plotly axis titled


def _plotly_axes(fig):
    """(name, axis) for every axis a plotly figure draws: each 2-D axis its layout holds and does
    not hide (make_subplots makes a pair per cell, drawn even with nothing in it) or a trace uses,
    and the three axes of each 3-D scene (plotly writes x, y and z on those when left untitled)."""
    names = {k for k in fig.layout.to_plotly_json() if re.fullmatch(r"[xy]axis\d*|scene\d*", k)}
    for t in fig.data:
        if "scene" in t:
            names.add(t.scene or "scene")
        elif "xaxis" in t:
            names |= {f"xaxis{(t.xaxis or 'x')[1:]}", f"yaxis{(t.yaxis or 'y')[1:]}"}
    for n in sorted(names):
        for a, ax in ([(f"{n}.{a}axis", fig.layout[n][f"{a}axis"]) for a in "xyz"] if n.startswith("scene")
                      else [(n, fig.layout[n])]):
            if ax.visible is not False:
                yield a, ax


EFFECT_STRIPS = {"ablation_effects", "helix_ablation", "dup_ablation_effects", "word_index_ablation",
                 "word_index_subspace_patch"}


def _untitled_ok(fig, file: str, name: str, ax) -> str | None:
    """Why an axis may go untitled, or None: the allowed exceptions, each with its reason."""
    if ax.matches and ax.showticklabels is False and fig.layout[f"{ax.matches[0]}axis{ax.matches[1:]}"].title.text:
        return "subplots' shared axis: titled once, on the panel it matches (the bottom one, or the first)"
    if Path(file).stem in EFFECT_STRIPS and name == "yaxis":
        return "an effect strip's rows: each tick label names its comparison in full (the PNG has no title either)"
    if file == "sweep_page.html" and name.startswith("yaxis"):
        return "the sweep page: each panel plots the one metric its subplot title names"
    return None


def _plotly_figures_in(folder: Path) -> dict:
    """Every plotly figure under ``folder``, by file name, read back from the HTML as the page shows it."""
    dec, out = json.JSONDecoder(), {}
    for f in sorted(folder.rglob("*.html")):
        text = f.read_text(encoding="utf-8")
        m = re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*', text)
        if m:
            data, end = dec.raw_decode(text, m.end())
            layout, _ = dec.raw_decode(text, re.compile(r"\s*,\s*").match(text, end).end())
            out[f.name] = go.Figure({"data": data, "layout": layout})
    return out


@pytest.fixture(scope="module")
def report_figures(tmp_path_factory):
    """The tiny-attn report's figures (quick size): most of the package's, on real results."""
    from report_builds import tiny_attn_report

    page, _ = tiny_attn_report(tmp_path_factory)
    return _plotly_figures_in(page.parent / "figures")


def _cmp(effect=0.3, seed=0):
    return NS(effect=effect, baseline=NS(draws=list(np.random.default_rng(seed).normal(0, 0.1, 6))))


def _helix_dict(model, n=20, lo=0):
    c = np.random.default_rng(len(model)).normal(size=(n, 3))
    late = {"coords": c[5:].tolist(), "range": [lo + 5, lo + n], "cumulative": [0.6, 0.8, 0.9]}
    return {"model": model, "coords": c.tolist(), "positions": list(range(lo, lo + n)), "cumulative": [0.5, 0.7, 0.8],
            "truncations": {"late": late}}


def _near_rows():
    return [NS(gap=0.1, crossing_margin=0.012, other_margin_min=0.0046, noise_input_units=0.0009, failure_positions=[],
               t1=0.17, t2=0.83),
            NS(gap=1e-4, crossing_margin=3e-5, other_margin_min=0.0043, noise_input_units=0.0009,
               failure_positions=[0.02, 0.03, 0.04, 0.96, 0.97], t1=0.17, t2=0.83)]


# figures the tiny-attn report does not draw (no MLP, no sweeps, a single scheme), from made-up results
OTHER_PLOTLY = {
    "patching": lambda out: (causal.patch_heatmap(_patch(), out),
                             causal.patch_heatmap(_patch(), out, "patching_heads")),
    "ablation": lambda out: causal.ablation_figures(NS(effects={"loss": {"mean": _cmp(), "last": _cmp(0.1, 1)}},
                                                       interventions=[NS(name="zero 0.1")]), out),
    "dup_ablation": lambda out: causal.duplicate_figures(NS(
        effects={g: {"gap": NS(effect=0.2, vs_random_heads=_cmp(), vs_random_neurons=_cmp(0.2, 1))}
                 for g in ("duplicate", "other")},
        neurons={str(n): NS(gap=0.3, duplicate_gap_change=-0.1, other_gap_change=0.01) for n in (5, 9)},
        neuron_layer=0), out),
    "word_index_causal": lambda out: causal.word_index_figures(NS(
        ablation=NS(accuracy={1: _cmp(), 2: _cmp(0.1)}, loss=_cmp(0.5)), options={"kind": "mean"}, layer=1,
        subspace_rank=2, patching=NS(sweep=_patch(), subspace=NS(vs_random=_cmp()), pairs=NS(position=3))), out),
    "neurons": lambda out: duplicate.neuron_figures(NS(
        grid=np.arange(12.0).reshape(3, 4).tolist(), head="0.1", neuron=5, curves={5: [0.1, 0.3, 0.2]},
        decomposition=NS(components={"W_E": [0.1, 0.2], "W_pos": [0.3, 0.1]}, positional={"W_pos": [0.3, 0.1]},
                         measured=[0.4, 0.3], approximations=NS(total_positional=None),
                         extra_vs_distance=NS(mean_distance=[1, 5, 9], measured=[0.3, 0.2, 0.1],
                                              predicted=[0.3, 0.25, 0.1])),
        combined_positional=None, ln_scale=None, top_examples=None), out),
    "helix_grids": lambda out: helix.family_figures({"results": [_helix_dict(f"m{i}") for i in range(4)]}, out),
    "helix_sweep": lambda out: helix.sweep_figures({
        "model": "m", "table": [{"step": s, "spec": f"m@{s}", "share_3": 0.5} for s in (0, 10, 100)],
        "coords": [_helix_dict("m")["coords"]] * 3, "ranges": [[0, 20]] * 3}, out),
    "tp_sweeps": lambda out: twisted_pair._sweeps(NS(sweeps={k: [NS(**{k: v}, max_error=1e-3 * v, max_bound=0.1 * v,
                                                                   within_bound=True) for v in (2, 4, 8)]
                                                             for k in ("M", "n")}), out),
    "tp_near": lambda out: twisted_pair._near(NS(near_intersection=NS(rows=_near_rows())), out),
    "tp_curve": lambda out: twisted_pair._curve(NS(construction=NS(curve=NS(name="helix"), samples=NS(
        i=list(range(65)), x=[[np.cos(t), np.sin(t), t / 6] for t in np.linspace(0, 4 * np.pi, 65)],
        cell=[i // 8 for i in range(65)]))), out),
    "word_index_schemes": lambda out: word_index.schemes_compared(NS(model="m", layers=[0, 1, 2], schemes={
        s: NS(labels={"last": NS(gain=[0.0, 0.1, 0.2], probes=[NS(balanced_accuracy=a) for a in (0.3, 0.4, 0.5)],
                                 balanced=NS(chance=0.2))}) for s in ("word", "sentence")}), out),
}


def _sweep_page_figure():
    from poslens.sweep.page import _model_figure

    rows = [{"model": "m", "value": 0.1 * s, "tokens": None, "step": s, "revision": f"step{s}", "flags": []}
            for s in (0, 10, 100, 1000)]
    return _model_figure({"metrics": {"helix_r2": {"rows": rows}, "share_3": {"rows": rows}}}, "m")


@pytest.fixture
def every_plotly(report_figures, figs, tmp_path):
    """The report's plotly figures and those of every other figure function, by file name."""
    for draw in OTHER_PLOTLY.values():
        draw(tmp_path)
    return {**report_figures, **{k: v for k, v in figs.items() if k.endswith(".html")},
            "sweep_page.html": _sweep_page_figure()}


def test_every_plotly_axis_is_titled(every_plotly):
    untitled = [f"{file}: {name}" for file, fig in sorted(every_plotly.items()) for name, ax in _plotly_axes(fig)
                if not ax.title.text and not _untitled_ok(fig, file, name, ax)]
    assert not untitled, "axes without a title:\n" + "\n".join(untitled)


def test_every_plotly_log_axis_sets_its_ticks(every_plotly):
    """Left to plotly, a log axis over a decade or two labels every digit 2-9 as a bare digit
    (viz.common.log_ticks sets 1-2-5 written out, or powers of ten on a long axis)."""
    log_axes = [(file, name, ax) for file, fig in sorted(every_plotly.items()) for name, ax in _plotly_axes(fig)
                if ax.type == "log"]
    assert {"tp_sweeps.html", "tp_noise.html", "tp_near_intersection.html"} <= {f for f, _, _ in log_axes}
    bare = [f"{file}: {name}" for file, name, ax in log_axes if ax.tickvals is None and ax.dtick is None]
    assert not bare, "log axes on plotly's own ticks:\n" + "\n".join(bare)


def test_every_3d_scene_is_seen_from_the_camera_that_keeps_its_labels_inside(every_plotly):
    """From plotly's default eye the z axis's labels and title fall outside a scene narrower than it is tall."""
    scenes = [(file, k, fig.layout[k]) for file, fig in sorted(every_plotly.items())
              for k in fig.layout.to_plotly_json() if k.startswith("scene")]
    assert {"helix_3d.html", "tp_curve.html"} <= {file for file, _, _ in scenes}
    for file, k, sc in scenes:
        cam = sc.camera.to_plotly_json()
        assert cam == common.SCENE_CAMERA, (file, k, cam)


def test_the_axis_check_sees_every_plotly_figure_the_package_writes(every_plotly):
    """Each figure file named in the viz sources (save_plotly(fig, out / "name.html"), or a stem handed to
    effect_strip, patch_heatmap or helix._grid; an f-string's fields match anything) was read above."""
    stems = set()
    for src in VIZ.glob("*.py"):
        text = src.read_text(encoding="utf-8")
        stems |= set(re.findall(r'save_plotly\(\w+, out / f?"([^"]+)\.html"\)', text))
        stems |= set(re.findall(r'\b(?:out|o), f?"([\w{}.]+)"\)', text))  # effect_strip(..., out, "name") and the like
    drawn = {Path(f).stem for f in every_plotly}
    missed = [s for s in sorted(stems) if not any(re.fullmatch(re.sub(r"\{[^}]*\}", ".*", s), d) for d in drawn)]
    assert len(stems) > 30 and not missed, f"figures the axis check never drew: {missed}"


# ---------------------------------------------------------------------------- twins share their colours


def _plotly_colours(fig, t, at):
    """RGB (0-1) of heat map ``t``'s colour scale at ``at`` (its colour axis's, or the template's default)."""
    src = fig.layout[t.coloraxis] if t.coloraxis else t
    scale = src.colorscale or fig.layout.template.data.heatmap[0].colorscale
    at = [1 - a for a in at] if src.reversescale else at
    return np.array(sample_colorscale([list(p) for p in scale], at, colortype="tuple"))


@pytest.mark.parametrize("name", [n for n, (_, g, o) in DRAW.items()
                                  if any(f.endswith(".png") and f[:-4] + ".html" in g + o for f in g + o)])
def test_heat_map_twins_share_a_colour_map(name, figs, tmp_path):
    """Each heat map of an HTML figure is coloured as one of its PNG twin's (plotly's default
    colour scale is not matplotlib's viridis; a reversed or mirrored scale shows up too)."""
    draw, grids, others = DRAW[name]
    draw(tmp_path)
    at = np.linspace(0, 1, 9)
    for file in [f for f in grids + others if f.endswith(".html")]:
        cmaps = [im.get_cmap() for ax in _mpl_heatmaps(figs[file[:-5] + ".png"]) for im in ax.images]
        for t, _, _ in _plotly_heatmaps(figs[file]):
            got = _plotly_colours(figs[file], t, at)
            gaps = [np.abs(got - np.array([c(a)[:3] for a in at])).max() for c in cmaps]
            assert min(gaps) < 0.05, f"{file}: the HTML's colours are none of the PNG's ({[c.name for c in cmaps]})"


def _ramp_spectra(out):
    g = NS(points=["embed", "block 0", "block 1"], eigenvalues=[np.geomspace(10, 1e-6 * (i + 1), 12) for i in range(3)],
           mp=[NS(k=2, edge=0.5)] * 3, gap=[NS(k=1)] * 3, n_tokens=12,
           consecutive=[NS(pair=("embed", "block 0"), sum_deg=10.0), NS(pair=("block 0", "block 1"), sum_deg=5.0)],
           participation_ratio=[1.0, 2.0, 3.0], effective_rank=[1.0, 2.0, 3.0], overlap_matrix=np.eye(3).tolist(),
           mds=[[0, 0], [1, 0], [1, 1]], mds_points=["embed", "block 0", "block 1"])
    subspaces.subspace_figures(NS(prompts={"short": g}, model="m", options={"threshold": 0.9}), out)
    DRAW["spectra"][0](out)


@pytest.mark.parametrize("stem", ["spectra_singular_values", "subspace_spectra"])
def test_lines_along_a_colour_ramp_match_their_twin(stem, figs, tmp_path):
    """Layers (residual points) drawn along viridis in the PNG get the same colours in the HTML, not plotly's cycle."""
    _ramp_spectra(tmp_path)
    png = {matplotlib.colors.to_hex(ln.get_color()) for ax in figs[f"{stem}.png"].axes for ln in ax.get_lines()}
    html = {t.line.color for t in figs[f"{stem}.html"].data}
    assert len(html) > 1 and html <= png, (html, png)


def test_wide_log_axes_in_narrow_panels_label_powers_of_ten(figs, tmp_path):
    _ramp_spectra(tmp_path)
    fig = figs["subspace_spectra.html"]  # eigenvalues over 7 decades
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == 1 and fig.layout.yaxis.exponentformat == "power"
    for f in ("spectra_singular_values.html",):  # within 3 decades: 1, 2 and 5 written out
        ax = figs[f].layout.yaxis
        assert ax.type == "log" and ax.tickvals and {_coefficient(v) for v in ax.tickvals} <= {1, 2, 5}


# ---------------------------------------------------------------------------- labels that do not collide


def _crowded_positional():
    spans = [13, 13, 14, 14, 14, 16, 16, 20, 21, 2, 2, 1, 280, 440]
    ratios = [0.67, 0.68, 0.67, 0.69, 0.7, 0.7, 0.71, 0.75, 0.73, 0.28, 0.25, 0.21, 0.97, 0.88]
    kinds = ["mixed"] * 9 + ["local"] * 3 + ["uniform"] * 2
    pos = {f"0.{h}": NS(span50=s, entropy_ratio=r, kind=k) for h, (s, r, k) in enumerate(zip(spans, ratios, kinds))}
    return NS(heads={}, profiles={}, token_classes=None, positional=NS(heads=pos, local_window=30))


def _named(text: str) -> int:
    """How many heads a label stands for: '0.1, 0.2' two, '0.1, 0.2 +5 more' seven."""
    more = re.search(r"\+(\d+) more$", text)
    return len(re.sub(r" \+\d+ more$", "", text).split(", ")) + (int(more.group(1)) if more else 0)


def test_positional_head_labels_do_not_overlap(figs, tmp_path):
    result = _crowded_positional()
    duplicate.dup_heads_figures(result, tmp_path)
    fig = figs["dup_positional.png"]
    fig.canvas.draw()
    ax = fig.axes[0]
    boxes = [(t.get_text(), t.get_window_extent()) for t in ax.texts]
    assert len(boxes) >= 4, [t for t, _ in boxes]
    for i, (a, ea) in enumerate(boxes):
        assert ax.get_window_extent().contains(ea.x0, ea.y0) and ax.get_window_extent().contains(ea.x1, ea.y1), a
        for b, eb in boxes[:i]:
            assert not ea.overlaps(eb), f"dup_positional.png: {a!r} runs into {b!r}"
    assert sum(_named(t) for t, _ in boxes) <= len(result.positional.heads)
    html = figs["dup_positional.html"]
    assert [a.text for a in html.layout.annotations] == [t for t, _ in boxes]  # the same labels in both twins
    hover = [n for t in html.data for n in t.text]
    assert sorted(hover) == sorted(result.positional.heads), "every head is named on hover"
    assert {t.name for t in html.data} == {"local", "mixed", "uniform"}  # coloured by kind, as in the PNG


def test_near_intersection_rows_are_bands_labelled_like_the_gap_axis(figs, tmp_path):
    """The right panel: one band per gap, smallest at the bottom, written as the left panel's log axis
    writes the same gaps (10^-4, not 0.0001), and a row with no pair outside the bound says so."""
    twisted_pair._near(NS(near_intersection=NS(rows=_near_rows())), tmp_path)
    fig = figs["tp_near_intersection.png"]
    fig.canvas.draw()
    right = fig.axes[1]
    assert right.get_ylim() == (-0.5, 1.5)
    labels = [t.get_text() for t in right.get_yticklabels()]
    assert labels == ["$10^{-4}$", "$10^{-1}$"], labels
    left = {re.sub(r"\\mathdefault\{(.*)\}", r"\1", t.get_text()) for t in fig.axes[0].get_xticklabels()}
    assert set(labels) <= left, (labels, left)
    assert [t.get_text() for t in right.texts] == ["none outside the bound"] and right.texts[0].get_position()[1] == 1
    html = figs["tp_near_intersection.html"]
    assert list(html.layout.yaxis2.ticktext) == ["0.0001", "0.1"] and list(html.layout.yaxis2.tickvals) == [0, 1]


def test_heat_maps_over_whole_numbers_tick_at_whole_numbers(tmp_path):
    """Plotly's own ticks on a 4-head grid fall at -0.5, 0.5, 1.5; saved grids tick at 0, 1, 2, 3."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3)
    fig.add_heatmap(z=np.zeros((L, H)), row=1, col=1)  # layers x heads, no coordinates given
    fig.add_heatmap(z=np.zeros((2, 2)), x=["a", "b"], y=[0.5, 1.5], row=1, col=2)  # categories and fractions
    fig.add_heatmap(z=np.zeros((2, 50)), x=list(range(50)), y=[3, 7], row=1, col=3)  # too many columns to tick each
    fig.add_heatmap(z=np.zeros((3, 3)), x=[0, 512, 1023], y=[1, 2, 3], row=1, col=3)  # 3 samples spanning 1,024
    fig.update_yaxes(tickvals=[0, 2], row=1, col=1)  # ticks the figure chose are kept
    common.save_plotly(fig, tmp_path / "grid.html")
    lay = fig.layout
    assert lay.xaxis.dtick == 1 and lay.yaxis.dtick is None and list(lay.yaxis.tickvals) == [0, 2]
    assert lay.xaxis2.dtick is None and lay.yaxis2.dtick is None
    assert lay.xaxis3.dtick is None and lay.yaxis3.dtick == 1


# ---------------------------------------------------------------------------- matplotlib layout


def _overlap(a, b, tol=2.0) -> bool:
    """Whether two display-space boxes share more than ``tol`` pixels each way."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol and min(a.y1, b.y1) - max(a.y0, b.y0) > tol


def _layout_clashes(fig, cropped: bool = False) -> list[str]:
    """Where a drawn matplotlib figure puts one thing on another: two panels (colour bars included),
    a panel's title or axis label on another panel, the figure's title on a panel or a panel's title;
    and, unless the PNG is ``cropped`` to its content, a title or axis label cut off at the figure's edge."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    page = fig.bbox
    axes = [ax for ax in fig.axes if ax.get_visible()]
    boxes = {ax: ax.get_window_extent(r) for ax in axes}
    name = lambda ax: ax.get_title() or ax.get_label() or f"axes {axes.index(ax)}"  # noqa: E731
    clashes = [f"panels '{name(a)}' and '{name(b)}'" for i, a in enumerate(axes) for b in axes[i + 1:]
               if _overlap(boxes[a], boxes[b])]
    for a in axes:
        texts = [t for t in (a.title, a.xaxis.label, a.yaxis.label) if t.get_text() and t.get_visible()]
        clashes += [f"'{t.get_text()}' of '{name(a)}' on panel '{name(b)}'" for t in texts for b in axes
                    if b is not a and _overlap(t.get_window_extent(r), boxes[b])]
        if not cropped:
            clashes += [f"'{t.get_text()}' of '{name(a)}' cut off" for t in texts
                        if not page.contains(*t.get_window_extent(r).min) or not page.contains(*t.get_window_extent(r).max)]
    sup = fig._suptitle
    if sup is not None and sup.get_text():
        box = sup.get_window_extent(r)
        clashes += [f"the figure's title on '{name(a)}'" for a in axes
                    if _overlap(box, boxes[a]) or (a.title.get_text() and _overlap(box, a.title.get_window_extent(r)))]
        if not cropped and not (page.contains(*box.min) and page.contains(*box.max)):
            clashes.append("the figure's title cut off")
    return clashes


@pytest.mark.parametrize("name", [*DRAW, *OTHER_PLOTLY])
def test_matplotlib_figures_put_nothing_on_anything_else(name, figs, tmp_path, monkeypatch):
    pngs: dict[str, object] = {}

    def laid_out(fig, path, dpi=110, tight=True, bbox=None):  # save_png's layout step, without the file
        if tight:
            fig.tight_layout()
        pngs[Path(path).name] = (fig, bbox == "tight")
        return Path(path)

    for m in MODULES:
        if hasattr(m, "save_png"):
            monkeypatch.setattr(m, "save_png", laid_out)
        if hasattr(m, "png_wanted"):
            monkeypatch.setattr(m, "png_wanted", lambda: True)
    (DRAW[name][0] if name in DRAW else OTHER_PLOTLY[name])(tmp_path)
    assert pngs
    clashes = [f"{f}: {c}" for f, (fig, cropped) in sorted(pngs.items()) for c in _layout_clashes(fig, cropped)]
    assert not clashes, clashes


def _laid_out_pngs(monkeypatch) -> dict:
    """Every PNG a figure function saves, laid out as save_png lays it out, by file name (no file written)."""
    pngs: dict[str, object] = {}

    def laid_out(fig, path, dpi=110, tight=True, bbox=None):
        if tight:
            fig.tight_layout()
        pngs[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(common, "save_png", laid_out)
    monkeypatch.setattr(profile, "save_png", laid_out)
    return pngs


def test_a_curve_named_by_a_long_path_keeps_its_title_on_the_png(monkeypatch, tmp_path):
    pngs = _laid_out_pngs(monkeypatch)
    name = "experiments/curves_of_the_second_kind/with_a_long_module_name.py:drifting_circle"
    twisted_pair._curve(NS(construction=NS(curve=NS(name=name), samples=NS(
        i=[0, 1, 2], x=[[0.0, 1.0], [1.0, 0.0], [0.0, -1.0]], cell=[0, 1, 1]))), tmp_path)
    assert not _layout_clashes(pngs["tp_curve.png"])  # it ran off both edges


@pytest.mark.parametrize("layers, heads", [(48, 64), (126, 128), (2, 200), (1, 1)])
def test_the_profile_png_of_any_model_is_a_sane_size(layers, heads, monkeypatch, tmp_path):
    """GPT-2 small to Llama-405B's 126 x 128: at most ~4000 px a side at the PNG's 110 dpi, labels apart."""
    pngs = _laid_out_pngs(monkeypatch)
    heads_ = {f"{l}.{h}": _head(l, h, (l + h) % 7 / 6) for l in range(layers) for h in range(heads)}
    profile.profile_figures(NS(model="m", heads=heads_, thresholds={r[2]: 0.5 for r in profile._ROLES}), tmp_path)
    fig = pngs["profile_roles.png"]
    assert max(fig.get_size_inches()) * 110 <= 4000, fig.get_size_inches()
    assert not _layout_clashes(fig)
    for ax in fig.axes[::2][:1]:
        labels = [t for t in ax.get_yticklabels() if t.get_text()]
        fig.canvas.draw()
        boxes = [t.get_window_extent() for t in labels]
        assert not any(_overlap(a, b, tol=0.5) for a, b in zip(boxes, boxes[1:])), (layers, heads)


@pytest.mark.parametrize("model", ["tiny-attn (random weights, seed 0)", "/data/checkpoints/run-17/step-40000"])
def test_a_long_model_name_wraps_its_title_inside_the_figure(model, tmp_path):
    """A title naming a long model ran off a half-width report card (plotly clips, never wraps):
    saved, it is broken into lines that fit the card, in a top margin tall enough to hold them,
    and set above the top row's subplot titles where the figure has them, wherever the figure put its one line."""
    from plotly.subplots import make_subplots

    r = _lens()
    r.model = model
    logit_lens.lens_figures(r, tmp_path)
    sub = make_subplots(rows=1, cols=2, subplot_titles=["a", "b"])
    sub.add_heatmap(z=[[1, 2]], row=1, col=1).add_heatmap(z=[[1, 2]], row=1, col=2)
    # placed at the top by its figure, as the sink figures do: plotly hung the extra lines above the edge
    sub.update_layout(title=dict(text=f"{model}: share of each head's attention, by role", y=0.97, yanchor="top",
                                 yref="container"), margin=dict(t=60))
    common.save_plotly(sub, tmp_path / "sub.html")
    for f in ("lens_entropy.html", "sub.html"):
        fig = json.loads(re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{\"responsive",
                                   (tmp_path / f).read_text(), re.S).group(2))
        lines = fig["title"]["text"].split("<br>")
        assert len(lines) > 1 and all(len(s) <= common.TITLE_CHARS for s in lines), (f, lines)
        t, h, y = fig.get("margin", {}).get("t", 100), fig["height"], fig["title"]["y"]  # plotly: 100 unset
        first = (1 - y) * h  # plotly anchors the first line there and hangs the rest below
        assert fig["title"]["yanchor"] == "bottom", fig["title"]
        assert first - 20 >= 0 and first + 22 * (len(lines) - 1) <= t - (26 if f == "sub.html" else 0), (f, t, y)
