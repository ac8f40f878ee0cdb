"""png_wanted: a PNG with an interactive twin is not even built inside deferred_png(keep_twins=False)."""

from types import SimpleNamespace

from poslens.analyses.geometry.spheres import Histogram
from poslens.viz.common import deferred_png, plt, png_wanted
from poslens.viz.spectra import sphere_figures


def _sphere():
    return SimpleNamespace(model="m", mean_share=0.25,
                           margin_histogram=Histogram([-1.0, 0.0, 1.0], [3, 1], 4))


def test_png_wanted_follows_deferred_png():
    assert png_wanted()
    with deferred_png():
        assert not png_wanted()
        with deferred_png(keep_twins=True):
            assert png_wanted()
        assert not png_wanted()
    assert png_wanted()
    with deferred_png(keep_twins=True):
        assert png_wanted()


def test_twin_png_not_built_in_report_mode(tmp_path, monkeypatch):
    plt.close("all")
    made = []
    subplots = plt.subplots
    monkeypatch.setattr(plt, "subplots", lambda *a, **k: made.append(1) or subplots(*a, **k))
    with deferred_png() as skipped:
        paths = sphere_figures(_sphere(), tmp_path / "a")
    assert [p.name for p in paths] == ["sphere_overlap.html"] and not made and not skipped
    assert not (tmp_path / "a" / "sphere_overlap.png").exists() and not plt.get_fignums()

    with deferred_png(keep_twins=True):  # report --png
        paths = sphere_figures(_sphere(), tmp_path / "b")
    assert [p.name for p in paths] == ["sphere_overlap.png", "sphere_overlap.html"]
    assert all(p.is_file() for p in paths)

    paths = sphere_figures(_sphere(), tmp_path / "c")  # CLI: no deferred_png
    assert [p.name for p in paths] == ["sphere_overlap.png", "sphere_overlap.html"]
    assert all(p.is_file() for p in paths) and not plt.get_fignums()


def test_helix_twins_png_only_when_wanted(tmp_path):
    """variance, traces, norms and helix_fit: an HTML twin always, the PNG only outside report mode."""
    from poslens.analyses import helix as H
    from poslens.models import Weights, open_checkpoint
    from poslens.testing.helix import planted_helix_checkpoint
    from poslens.viz import helix as V

    ck = planted_helix_checkpoint(tmp_path / "ck", radius=2.0, pitch=1.5, period=48.0, n_ctx=128, d_model=32)
    d = H.helix(Weights.from_checkpoint(open_checkpoint(str(ck.path)))).to_dict()
    fns = {"variance": V.variance_plot, "traces": V.traces_plot, "norms": V.norms_plot, "helix_fit": V.helix_fit_plot}
    plt.close("all")
    with deferred_png() as skipped:
        for stem, fn in fns.items():
            assert [p.name for p in fn(d, tmp_path / "a")] == [f"{stem}.html"]
    assert not skipped and not plt.get_fignums() and not list((tmp_path / "a").glob("*.png"))
    for stem, fn in fns.items():
        paths = fn(d, tmp_path / "b")
        assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.html"] and all(p.is_file() for p in paths)
    assert not plt.get_fignums()
