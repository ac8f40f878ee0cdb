"""poslens report: orchestration, caching, resumability, the page, bad input.

The orchestration is tested with small fake stages (so these tests do not depend on the
analyses), and the real stage registry on a synthetic checkpoint and the real partial
GPT-2 small checkpoint.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from poslens.cli import cli
from poslens.errors import InvalidInputError
from poslens.report import Harvest, Stage, build_report, default_stages
from poslens.report.page import plotly_fragment
from poslens.results import Result
from poslens.testing import random_state_dict, small_config, write_checkpoint

PARTIAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2-small-partial"


@dataclass(frozen=True)
class FakeResult(Result):
    kind = "fake"
    value: float = 0.0
    top: list = field(default_factory=list)
    checks: list = field(default_factory=list)


CALLS: list[str] = []


def _pca_run(ctx, opts):
    CALLS.append("pca")
    W = ctx.weights.W_pos[opts["skip_first"]:128]  # a slice keeps the SVD cheap on a busy machine
    W = W - W.mean(0)
    s = torch.linalg.svdvals(W) ** 2
    frac = (s / s.sum())[: opts["k"]]
    return FakeResult(model=ctx.label, options=opts, value=float(frac.sum()), top=frac.tolist(),
                      checks=[{"what": "top-k variance", "published": 0.9, "ours": float(frac.sum()),
                               "reproduced": bool(frac.sum() > 0.9), "note": "fake"}])


def _pca_figures(result, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    t = torch.linspace(0, 6, 50)
    fig = go.Figure(go.Scatter3d(x=torch.cos(t).tolist(), y=torch.sin(t).tolist(), z=t.tolist(), mode="lines+markers"))
    from poslens.viz.common import save_plotly

    html = save_plotly(fig, Path(out_dir) / "helix_3d.html")
    f, ax = plt.subplots(figsize=(3, 2))
    ax.plot(result.top)
    png = Path(out_dir) / "variance.png"
    f.savefig(png)
    plt.close(f)
    return [html, png]


def _pattern_harvest(ctx, opts):
    P = opts["positions"]
    return [Harvest(f"zeros:{P}", lambda c: {"embed": torch.zeros(2, P, c.cfg.d_model)}, (opts["hook"],))]


def _pattern_run(name):
    def run(ctx, opts):
        CALLS.append(name)
        acts = ctx.activations(f"zeros:{opts['positions']}")
        return FakeResult(model=ctx.label, options=opts, value=float(acts[opts["hook"]].mean()))
    return run


def _boom(ctx, opts):
    CALLS.append("boom")
    raise RuntimeError("planted failure")


def fake_stages(boom=False):
    st = [
        Stage("pca", "W_pos PCA", _pca_run, needs=("W_pos",),
              options=lambda ctx: {"k": ctx.pick(2, 3), "skip_first": 0},
              figures=_pca_figures, summarize=lambda r: [f"top components explain {r.value:.0%}"],
              about="Principal components of the positional embedding."),
        Stage("embed", "Token embedding norm", lambda ctx, o: (CALLS.append("embed"),
              FakeResult(model=ctx.label, value=float(ctx.weights.W_E.norm())))[1], needs=("W_E",)),
        Stage("pattern", "Layer-0 patterns", _pattern_run("pattern"), needs=("attn0",),
              options=lambda ctx: {"positions": 16, "hook": "blocks.0.attn.hook_pattern"}, harvests=_pattern_harvest,
              summarize=lambda r: [f"mean attention {r.value:.3f}"]),
        Stage("scores", "Layer-0 scores", _pattern_run("scores"), needs=("attn0",),
              options=lambda ctx: {"positions": 16, "hook": "blocks.0.attn.hook_attn_scores"}, harvests=_pattern_harvest),
        Stage("mlp", "MLP neurons", _pattern_run("mlp"), needs=("mlp",),
              options=lambda ctx: {"positions": 16, "hook": "blocks.0.mlp.hook_post"}, harvests=_pattern_harvest),
    ]
    if boom:
        st.append(Stage("boom", "Broken analysis", _boom))
    return st


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    cfg = small_config(n_layers=2, d_model=32, n_heads=4, n_ctx=64, d_vocab=300)
    sd = random_state_dict(cfg, seed=1)
    full = write_checkpoint(root / "full", cfg, sd)
    mlp = [k for k in sd if ".mlp." in k]
    partial = write_checkpoint(root / "partial", cfg, sd, drop=("wte.weight", *mlp))
    return {"full": full, "partial": partial, "cfg": cfg}


def run(model, out, **kw):
    kw.setdefault("stages", fake_stages())
    kw.setdefault("progress", False)
    return build_report([str(model)], out, **kw)


def test_page_bundle_and_shared_forward_pass(ckpts, tmp_path):
    CALLS.clear()
    page, (rep,) = run(ckpts["full"], tmp_path / "r", size="quick")
    assert page == tmp_path / "r" / "report.html"
    status = {o.name: o.status for o in rep.outcomes}
    assert status == {"pca": "done", "embed": "done", "pattern": "done", "scores": "done", "mlp": "done"}
    # three stages read one input set: one forward pass with the union of their hooks
    assert [p["dataset"] for p in rep.passes] == ["zeros:16"] and rep.passes[0]["hooks"] == 3
    # weight-only stages run before stages that need activations
    assert CALLS.index("pca") < CALLS.index("pattern") and CALLS.index("embed") < CALLS.index("pattern")
    html = page.read_text()
    assert html.count("window.PlotlyConfig") == 1  # plotly inlined exactly once
    assert "<script src=" not in html and "cdn" not in html.lower().split("</head>")[1]
    assert html.count("Plotly.newPlot") == 1  # the 3D figure, embedded
    assert "data:image/png;base64," in html  # the PNG had no interactive twin
    # the stand-alone figure files share one plotly bundle instead of a copy per stage
    out = tmp_path / "r"
    assert [p.relative_to(out).as_posix() for p in out.rglob("plotly.min.js")] == ["figures/plotly.min.js"]
    (fig_html,) = out.glob("figures/pca-*/helix_3d.html")
    assert 'src="../plotly.min.js"' in fig_html.read_text()
    assert html.index("Summary of findings") < html.index('id="pca"')
    assert "top components explain" in html and "not reproduced" in html or "reproduced" in html
    bundle = json.loads((tmp_path / "r" / "report.json").read_text())
    assert bundle["stages"]["pca"]["result"]["kind"] == "fake"
    assert bundle["stages"]["pca"]["options"] == {"k": 2, "skip_first": 0}


def test_resume_uses_cache_and_changed_option_recomputes_only_its_stage(ckpts, tmp_path):
    out = tmp_path / "r"
    run(ckpts["full"], out)
    CALLS.clear()
    _, (rep,) = run(ckpts["full"], out)
    assert CALLS == [] and {o.status for o in rep.outcomes} == {"cached"}
    assert rep.passes == []  # nothing recomputed, so no forward pass either
    CALLS.clear()
    _, (rep,) = run(ckpts["full"], out, sets=["pca.k=5"])
    assert CALLS == ["pca"]
    assert {o.name: o.status for o in rep.outcomes}["pca"] == "done"
    assert rep.outcomes[0].options["k"] == 5
    # a different size changes pca's options (k) but not the others'
    CALLS.clear()
    run(ckpts["full"], out, size="quick")
    assert CALLS == ["pca"]


def test_a_cached_section_shows_the_seconds_it_took_to_compute(ckpts, tmp_path):
    # what a section costs is the point of its seconds; a rerun from the cache must not show its own ~0 s
    import time

    def slow(ctx, opts):
        time.sleep(0.3)
        return FakeResult(model=ctx.label, options=opts, value=1.0)

    stages = [Stage("slow", "A slow analysis", slow)]
    out = tmp_path / "r"
    run(ckpts["full"], out, stages=stages)
    computed = json.loads((out / "report.json").read_text())["stages"]["slow"]
    page, (rep,) = run(ckpts["full"], out, stages=stages)
    (o,) = rep.outcomes
    assert computed["status"] == "done" and o.status == "cached"
    assert o.seconds == pytest.approx(computed["seconds"], abs=1e-3) and o.seconds >= 0.3
    again = json.loads((out / "report.json").read_text())["stages"]["slow"]
    assert again["status"] == "cached" and again["seconds"] == pytest.approx(computed["seconds"], abs=1e-3)
    html = page.read_text()
    assert "from cache" in html and f"{o.seconds:.1f} s · cache key" in html


def test_corrupted_cache_entry_is_recomputed_not_trusted(ckpts, tmp_path, capsys):
    out = tmp_path / "r"
    _, (rep,) = run(ckpts["full"], out, only=["pca", "embed"])
    pca = next(out.glob("cache/pca-*.json"))
    # a still-valid JSON file with a tampered number must not be trusted
    pca.write_text(re.sub(r'"value": ?[0-9.e-]+', '"value": 123.0', pca.read_text()))
    emb = next(out.glob("cache/embed-*.json"))
    emb.write_text(emb.read_text()[:40])  # truncated
    CALLS.clear()
    _, (rep2,) = run(ckpts["full"], out, only=["pca", "embed"])
    assert sorted(CALLS) == ["embed", "pca"]
    assert rep2.outcomes[0].result["value"] == rep.outcomes[0].result["value"] != 123.0
    err = capsys.readouterr().err
    assert "corrupt" in err and "checksum" in err and "recomputing pca" in err
    # a deleted figure file is drawn again from the cached result; the stage is not recomputed
    (png,) = out.glob("figures/pca-*/variance.png")
    png.unlink()
    CALLS.clear()
    _, (rep3,) = run(ckpts["full"], out, only=["pca", "embed"])
    assert CALLS == [] and png.is_file() and rep3.outcomes[0].status == "cached"


def test_a_log_file_gets_a_line_per_stage_not_redrawn_bars(ckpts, tmp_path, capsys):
    """stderr that is not a terminal (a log file, a batch job) reads one line as each stage
    starts and one as it ends; no carriage returns from redrawn bars."""
    run(ckpts["full"], tmp_path / "r", only=["pca", "embed"], progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert re.search(r"^pca +\(1/2\) \.\.\.$", err, re.M) and re.search(r"^embed +done in \d+\.\d+s$", err, re.M), err


def test_no_progress_silences_the_analyses_own_bars(ckpts, tmp_path, capsys):
    """progress=False (--no-progress) reaches the bars an analysis opens itself (a long forward pass)."""
    from poslens.progress import bar

    def busy(ctx, opts):
        assert sum(bar(range(3), desc="inner work", disable=False)) == 3
        return FakeResult(model=ctx.label, value=1.0)

    stage = Stage("busy", "A stage with a bar of its own", busy, needs=("W_pos",))
    run(ckpts["full"], tmp_path / "quiet", stages=[stage], progress=False)
    assert "inner work" not in capsys.readouterr().err
    run(ckpts["full"], tmp_path / "loud", stages=[stage], progress=True)
    assert "inner work" in capsys.readouterr().err


def test_a_transient_bar_shows_on_a_terminal_only(capsys):
    """leave=False bars (a terminal erases them) write nothing into a log file; kept bars do."""
    import io

    from poslens.progress import bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert sum(bar(range(3), desc="transient", leave=False)) == 3
    assert sum(bar(range(3), desc="kept")) == 3
    err = capsys.readouterr().err
    assert "transient" not in err and "kept" in err
    term = Terminal()
    assert sum(bar(range(3), desc="transient", leave=False, file=term)) == 3
    assert "transient" in term.getvalue()


def test_interrupted_run_resumes_and_leaves_no_page(ckpts, tmp_path):
    out = tmp_path / "r"
    stages = fake_stages()

    def interrupt(ctx, opts):
        raise KeyboardInterrupt

    broken = [stages[0], Stage("pattern", "Layer-0 patterns", interrupt, needs=("attn0",))]
    with pytest.raises(KeyboardInterrupt):
        run(ckpts["full"], out, stages=broken)
    assert not (out / "report.html").exists() and not (out / "report.json").exists()
    CALLS.clear()
    _, (rep,) = run(ckpts["full"], out, stages=[stages[0], stages[2]])
    assert CALLS == ["pattern"]  # pca came from the cache
    assert [o.status for o in rep.outcomes] == ["cached", "done"]


def test_missing_tensors_are_skipped_with_reasons(ckpts, tmp_path):
    page, (rep,) = run(ckpts["partial"], tmp_path / "r")
    st = {o.name: o for o in rep.outcomes}
    assert st["embed"].status == "skipped" and "wte.weight" in st["embed"].reason
    assert st["mlp"].status == "skipped" and "mlp.c_fc" in st["mlp"].reason
    assert st["pca"].status == "done" and st["pattern"].status == "done"
    html = page.read_text()
    assert "Not in this report" in html and "wte.weight" in html


def test_failed_stage_is_reported_not_fatal(ckpts, tmp_path, capsys):
    _, (rep,) = run(ckpts["full"], tmp_path / "r", stages=fake_stages(boom=True), only=["pca", "boom"])
    assert [o.status for o in rep.outcomes] == ["done", "failed"]
    assert "planted failure" in rep.outcomes[1].reason
    assert "planted failure" in (tmp_path / "r" / "report.html").read_text()
    with pytest.raises(RuntimeError):
        run(ckpts["full"], tmp_path / "r2", stages=fake_stages(boom=True), only=["boom"], fail_fast=True)


def test_model_supporting_nothing_is_a_clear_error(ckpts, tmp_path):
    with pytest.raises(InvalidInputError, match="supports none of the report's analyses.*wte.weight"):
        run(ckpts["partial"], tmp_path / "r", only=["embed"])
    assert not (tmp_path / "r" / "report.html").exists()


def test_bad_options(ckpts, tmp_path):
    with pytest.raises(InvalidInputError, match="no report stage named 'pcaa'.*did you mean 'pca'"):
        run(ckpts["full"], tmp_path / "r", only=["pcaa"])
    with pytest.raises(InvalidInputError, match="no option 'kk'"):
        run(ckpts["full"], tmp_path / "r", sets=["pca.kk=1"])
    with pytest.raises(InvalidInputError, match="STAGE.OPTION=VALUE"):
        run(ckpts["full"], tmp_path / "r", sets=["pca"])
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InvalidInputError, match="cannot write the report to"):
        run(ckpts["full"], blocker / "out")


def test_set_values_are_checked_against_the_option(tmp_path, monkeypatch):
    from poslens.report.orchestrate import check_option, parse_overrides

    monkeypatch.chdir(tmp_path)
    Path("2024").write_text("a corpus named like a year\n")  # a corpus given must exist
    ov = parse_overrides(["pca.head=0.10", "pca.k=Infinity", "pca.corpus=2024"], fake_stages())["pca"]
    assert check_option("dup_neurons", "head", "profile", ov["head"]) == "0.10"  # head 10, not 0.1
    with pytest.raises(InvalidInputError, match="finite"):
        check_option("verdicts", "helix_r2", 0.8, ov["k"])
    with pytest.raises(InvalidInputError, match=r"must lie in \[0, 1\]"):
        check_option("verdicts", "helix_r2", 0.8, 1.5)
    # an option unset by default (None) takes only its kind of value, not whatever JSON gives
    assert check_option("dup_heads", "corpus", None, ov["corpus"]) == "2024"
    assert check_option("dup_heads", "corpus", None, None) is None
    # a list as the commands' own flags take it, comma-separated, or as JSON; its items are checked
    assert check_option("geometry_spectra", "layers", None, "0,1") == [0, 1] == check_option(
        "geometry_spectra", "layers", None, [0, 1])
    assert check_option("word_index", "schemes", ["word"], "word,sentence") == ["word", "sentence"]
    assert check_option("causal_dup_neurons", "heads", ["0.1"], "0.10,1.2") == ["0.10", "1.2"]  # head 10 stays 10
    with pytest.raises(InvalidInputError, match="expected an integer.*the default is null"):
        check_option("geometry_spectra", "layers", None, "0,x")
    with pytest.raises(InvalidInputError, match="expected a list.*the default is null"):
        check_option("geometry_spectra", "layers", None, 3)
    with pytest.raises(InvalidInputError, match="JSON object"):
        check_option("geometry_subspaces", "lengths", {"short": 15}, 5)


@pytest.mark.parametrize("stage", ["dup_heads", "sinks"])
def test_a_bad_corpus_is_refused_before_any_section_runs(stage, tmp_path):
    # dup_heads' corpus is read by the model profile in the skip checks, sinks' only when sinks runs:
    # both must be the same up-front error, not an exit in one case and a failed section in the other
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    for bad, why in [(tmp_path / "missing.txt", "does not exist"), (tmp_path, "is a directory"), (empty, "is empty")]:
        out = tmp_path / "r"
        r = CliRunner().invoke(cli, ["report", "-m", "tiny", "--quick", "--no-progress", "-o", str(out),
                                     "--set", f"{stage}.corpus={bad}"])
        assert r.exit_code == 2, r.output
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"poslens: error: --set {stage}.corpus={bad}: corpus ") and why in line, line
        assert not out.exists()


def test_run_model_checks_every_option_before_the_skip_checks_compute(tmp_path):
    from poslens.report import run_model
    from poslens.report.orchestrate import Context

    ctx = Context("tiny", size="quick")
    with pytest.raises(InvalidInputError, match="sinks.corpus"):
        run_model("tiny", tmp_path / "r", default_stages(), overrides={"sinks": {"corpus": str(tmp_path / "no.txt")}},
                  ctx=ctx, progress=False)
    assert ctx._memo == {}  # the model profile, which a skip check before sinks' computes, was not


def test_a_null_model_beside_its_model_finds_nothing_learned(tmp_path):
    """``random:SPEC``: the same architecture with every tensor redrawn. tiny-attn's heads are trained; its
    null's are not, and its pages, fingerprint and cache are its own."""
    from poslens.report import build_report

    page, reps = build_report(["tiny-attn", "random:tiny-attn", "random=0:tiny-attn"], tmp_path / "r", size="quick",
                              progress=False, only=["profile", "verdicts"])
    model, null = reps  # random=0: is random: (seed 0), reported once
    assert null.model == "tiny-attn (random weights, seed 0)" and null.out.name == "random-tiny-attn"
    assert null.fingerprint != model.fingerprint
    rows = [{r["mechanism"]: r["verdict"] for o in rep.outcomes if o.name == "verdicts" for r in o.result["rows"]}
            for rep in reps]
    assert rows[0]["induction"] == "present" and rows[1]["induction"] == "absent"
    assert "tiny-attn (random weights, seed 0)" in page.read_text()


def test_only_a_section_with_a_changed_option_keeps_the_verdicts_on_the_page(tmp_path):
    # the verdicts read the helix section; recomputed with another option, it left the page with no verdict table
    from poslens.report import build_report

    out = tmp_path / "r"
    build_report(["tiny"], out, size="quick", progress=False, only=["profile", "helix", "verdicts"])
    _, (rep,) = build_report(["tiny"], out, size="quick", progress=False, only=["helix"],
                             sets=["helix.n_components=5"])
    assert {o.name: o.status for o in rep.outcomes} == {"profile": "cached", "helix": "done", "verdicts": "done"}
    _, (rep,) = build_report(["tiny"], out, size="quick", progress=False, skip=["verdicts"],
                             only=["helix"], sets=["helix.n_components=6"])
    assert "verdicts" not in {o.name for o in rep.outcomes}  # told to leave it out, it is not recomputed
    _, (rep,) = build_report(["tiny"], tmp_path / "fresh", size="quick", progress=False, only=["helix"])
    assert [o.name for o in rep.outcomes] == ["helix"]  # a page that had none does not grow one


def test_several_models_get_an_index(ckpts, tmp_path):
    page, reps = build_report([str(ckpts["full"]), str(ckpts["partial"])], tmp_path / "r",
                              stages=fake_stages(), progress=False, only=["pca", "embed"])
    assert page.name == "index.html" and len(reps) == 2
    html = page.read_text()
    assert html.count("report.html") >= 2 and "skipped" in html and "top components explain" in html
    for r in reps:
        assert (r.out / "report.html").is_file() and "all models" in (r.out / "report.html").read_text()
    assert len(json.loads((tmp_path / "r" / "report.json").read_text())["models"]) == 2
    # one model into the same directory: the index of the earlier run would show stale results, so it goes;
    # a page of the user's own by that name stays
    page, _ = build_report([str(ckpts["full"])], tmp_path / "r", stages=fake_stages(), progress=False, only=["pca"])
    assert page == tmp_path / "r" / "report.html" and not (tmp_path / "r" / "index.html").exists()
    build_report([str(ckpts["full"]), str(ckpts["partial"])], tmp_path / "r", stages=fake_stages(), progress=False,
                 only=["pca"])
    assert (tmp_path / "r" / "index.html").is_file() and not (tmp_path / "r" / "report.html").exists()
    (tmp_path / "r" / "index.html").write_text("<html><title>my notes</title></html>")
    build_report([str(ckpts["full"])], tmp_path / "r", stages=fake_stages(), progress=False, only=["pca"])
    assert (tmp_path / "r" / "index.html").read_text().startswith("<html><title>my notes")


def test_plotly_fragment_extracts_div_and_script(tmp_path):
    import plotly.graph_objects as go

    p = tmp_path / "f.html"
    go.Figure(go.Scatter(y=[1, 2])).write_html(p, include_plotlyjs="directory")
    frag = plotly_fragment(p)
    assert "Plotly.newPlot" in frag and "plotly.min.js" not in frag and 'class="plotly-graph-div"' in frag
    (tmp_path / "g.html").write_text("<html><body>no plot</body></html>")
    assert plotly_fragment(tmp_path / "g.html") is None


def test_cli(ckpts, tmp_path, monkeypatch):
    import poslens.report.stages as stages_mod

    monkeypatch.setattr(stages_mod, "STAGES", fake_stages())
    r = CliRunner().invoke(cli, ["report", "-m", str(ckpts["partial"]), "-o", str(tmp_path / "r"), "--quick",
                                 "--skip", "mlp", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "skipped embed" in r.output and "wrote" in r.output and (tmp_path / "r" / "report.html").is_file()
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = CliRunner().invoke(cli, ["report", "-m", str(ckpts["full"]), "-o", str(blocker / "x")])
    assert r.exit_code == 2 and "cannot write the report" in r.output
    r = CliRunner().invoke(cli, ["report", "-m", str(ckpts["partial"]), "-o", str(tmp_path / "n"), "--only", "embed"])
    assert r.exit_code == 2 and "supports none" in r.output
    r = CliRunner().invoke(cli, ["report", "--list"])
    assert r.exit_code == 0 and "pca" in r.output
    # one column for the titles, however long a stage's name
    lines = r.output.splitlines()
    assert len({len(l) - len(l.split("  ", 1)[1].lstrip()) for l in lines}) == 1, lines
    # no --model: every shipped organism, an index and a page each
    from poslens.models.registry import ORGANISMS

    r = CliRunner().invoke(cli, ["report", "-o", str(tmp_path / "orgs"), "--quick", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert ORGANISMS == ("tiny", "tiny-attn") and all(f"{m}: " in r.output for m in ORGANISMS), r.output
    assert (tmp_path / "orgs" / "index.html").is_file() and (tmp_path / "orgs" / "tiny-attn" / "report.html").is_file()


@pytest.mark.skipif(not PARTIAL.is_dir(), reason="needs ../shared/data/gpt2-small-partial")
def test_partial_gpt2_checkpoint_skips_what_it_lacks(tmp_path):
    """The real partial checkpoint: no wte, no MLP -> those stages skipped with reasons, the rest run."""
    page, (rep,) = build_report([str(PARTIAL)], tmp_path / "r", stages=fake_stages(), size="quick", progress=False, skip=["pattern", "scores"])
    st = {o.name: o for o in rep.outcomes}
    assert st["embed"].status == "skipped" and "wte.weight" in st["embed"].reason
    assert st["mlp"].status == "skipped"
    assert st["pca"].status == "done" and st["pca"].result["top"][0] > 0
    assert "Published vs ours" in page.read_text() and "published figures for GPT-2 small" in page.read_text()


def test_default_registry_names_are_unique():
    names = [s.name for s in default_stages()]
    assert len(names) == len(set(names))


# ----------------------------------------------------------------------------- the page a researcher reads


def _grade(value, threshold, weak_fraction):
    return "present" if value >= threshold else "weak" if value >= weak_fraction * threshold else "absent"


def _verdicts_agree(rep) -> dict:
    """Every verdict row's number is the number in its section, and its verdict follows from its threshold."""
    res = {o.name: o.result for o in rep.outcomes if o.status in ("done", "cached")}
    st = {o.name: o for o in rep.outcomes}
    v = res["verdicts"]
    rows = {r["mechanism"]: r for r in v["rows"]}
    assert list(rows) == ["helix", "previous_token", "duplicate_token", "induction", "positional_neurons",
                          "twisted_pair", "word_index", "sink"]
    wf = v["options"]["weak_fraction"]
    for r in rows.values():
        assert r["verdict"] in ("present", "weak", "absent", "not testable here") and r["reason"], r
        if r["verdict"] != "not testable here" and r["mechanism"] not in ("helix", "twisted_pair"):
            capped = "at most weak" in r["reason"] and r["verdict"] == "weak"  # a sink on positional inputs alone
            assert capped or r["verdict"] == _grade(r["value"], r["threshold"], wf), r
    h, fit = rows["helix"], res["helix"]["helix"]
    assert h["value"] == fit["r2"] and h["threshold"] == v["options"]["helix_r2"]
    if h["verdict"] != "not testable here":  # the fit's grade, held to weak by too little variance or too few turns
        grade = _grade(fit["r2"], v["options"]["helix_r2"], wf)
        short = (sum(res["helix"]["variance_explained"][:3]) < v["options"]["helix_top3"]
                 or fit["turns"] < v["options"]["helix_turns"])
        assert h["verdict"] == ("weak" if grade == "present" and short else grade), h
    prof, dup = res["profile"], res.get("dup_heads") or {}
    for role, attr in (("previous_token", "prev_token_score"), ("duplicate_token", "score_repeated"),
                        ("induction", "induction_score")):
        r = rows[role]
        assert r["threshold"] == prof["thresholds"][role]
        if not dup.get("heads"):  # no token inputs: nothing to read
            assert r["verdict"] == "not testable here" and r["value"] is None
            continue
        # the profile and the duplicate-head section are one measurement: the same best head and score
        best = max(dup["heads"], key=lambda k: dup["heads"][k][attr])
        assert (r["head"], r["value"]) == (best, dup["heads"][best][attr]) == (
            best, prof["heads"][best][attr])
    tp = res["twisted_pair"]["gpt2"]["ode"]
    assert rows["twisted_pair"]["value"] == tp["r2"]
    # a checkpoint without layer 0's MLP (GPT-2 small's partial copy) cannot be searched for neuron pairs
    assert (rows["twisted_pair"]["verdict"] == "not testable here") == bool(res["twisted_pair"]["gpt2"]["neurons_skipped"])
    sink = rows["sink"]
    if "sinks" in res:  # the attention-sink section's strongest head on its most natural inputs
        heads = [h for run in res["sinks"]["runs"] for h in run["heads"] if run["inputs"] == sink["reason"].split(":")[0][3:].replace(" ", "_")]
        assert sink["value"] == max(h["first_attention"] for h in heads) and sink["threshold"] == res["sinks"]["epsilon"]
    elif prof.get("best", {}).get("sink"):
        assert sink["value"] == prof["best"]["sink"]["score"]
    if "word_index" in res:
        wi = res["word_index"]
        gains = [g for lt in wi["schemes"]["word"]["labels"].values() for g in lt["gain"]]
        assert rows["word_index"]["value"] == max(gains)
    else:
        assert rows["word_index"]["verdict"] == "not testable here"
        assert rows["word_index"]["reason"] == st["word_index"].reason
    return rows


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    from report_builds import tiny_report

    return tiny_report(tmp_path_factory)


def test_verdicts_agree_with_sections_on_tiny(tiny_report):
    page, rep = tiny_report
    rows = _verdicts_agree(rep)
    # What tiny's model card says it has and lacks: a smooth W_pos arc (0.12 turns: a helix fit's R² is
    # high, but an arc is not yet a helix), no heads (tiny-attn has those).
    assert rows["helix"]["verdict"] == "weak" and rows["helix"]["value"] > 0.95
    assert "a smooth arc, not yet a helix" in rows["helix"]["reason"]
    for role in ("previous_token", "duplicate_token", "induction"):
        assert rows[role]["verdict"] == "absent", rows[role]
    # No duplicate-token head: the sections built on one say so instead of studying noise.
    st = {o.name: o for o in rep.outcomes}
    for name in ("dup_neurons", "causal_dup_neurons"):
        assert st[name].status == "skipped" and st[name].reason.startswith("premise absent"), st[name].reason
    assert rows["positional_neurons"]["verdict"] == "not testable here"
    assert "premise absent" in rows["positional_neurons"]["reason"]
    data = json.loads((page.parent / "report.json").read_text())
    assert next(iter(data)) == "verdicts" and data["verdicts"]["rows"][0]["mechanism"] == "helix"


def test_page_reads_as_one_story(tiny_report):
    page, rep = tiny_report
    html = page.read_text()
    text = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    # the verdict table comes first, with its thresholds stated
    assert text.index('class="verdicts"') < text.index('id="summary"') < text.index('id="helix"')
    assert "weak_fraction" in text and "helix_r2" in text
    # the studies by title, never by file name or number
    from poslens.report.studies import STUDIES

    for s in STUDIES.values():
        assert s.title in _html_unescape(text)
    assert not re.search(r"seed 00\d|\b00\d_[0-9a-f]{16}\.txt|frog_", text), re.findall(r".{40}seed 00\d.{40}", text)
    # a premise-absent section is one line, not figures
    sec = text[text.index('id="dup_neurons"'):]
    sec = sec[: sec.index("</p>")]
    assert "premise absent" in _html_unescape(sec).lower() and "<div class=\"fig" not in sec
    # no z against a baseline without spread
    assert not re.search(r"z -?(inf|nan)\b", text)
    # an unset option (corpus, batch_size) is a dash in the options table, not Python's None
    assert not re.search(r">\s*None\s*<", text), re.findall(r".{60}>\s*None\s*<", text)[:3]


def _html_unescape(s: str) -> str:
    import html

    return html.unescape(s)


def test_report_help_gives_a_valid_only_example():
    r = CliRunner().invoke(cli, ["report", "--help"])
    m = re.search(r"--only ([\w,]+)", r.output)
    names = {s.name for s in default_stages()}
    assert m and set(m.group(1).split(",")) <= names, r.output


def test_work_a_stage_owns_is_booked_to_it_whoever_asks_first():
    # the model profile is computed by whichever stage (or skip check) asks first; its seconds
    # belong to the profile stage, not to the asker or to nobody
    import time

    from poslens.report.orchestrate import Context

    ctx = Context("tiny", size="quick")
    ctx.running = "word_index"
    assert ctx.memo("k", lambda: time.sleep(0.05) or 1, stage="profile") == 1
    assert ctx.memo("k", lambda: 2, stage="profile") == 1  # computed once
    ctx.running = "profile"
    ctx.memo("j", lambda: time.sleep(0.05), stage="profile")  # inside its own run: already timed there
    assert 0.05 <= ctx.booked.pop("profile") < 0.1 and not ctx.booked


def test_word_index_verdict_grades_the_word_scheme_only():
    """A delimited scheme's index is a count of one repeated token, which a running average of the
    context carries even in a random-weight model: its gain is named, never graded."""
    from poslens.report.stage_verdicts import _word_index_row

    def scheme(gain):
        probe = {"accuracy": 0.5}
        return {"labels": {"last": {"gain": [gain, gain], "probes": [probe, probe]}}}

    o, wf = {"word_index_gain": 0.05}, 0.5
    wi = {"layers": [0, 1], "schemes": {"word": scheme(-0.1), "sentence": scheme(0.25)}}
    row = _word_index_row(wi, o, wf)
    assert row["verdict"] == "absent" and row["value"] == -0.1
    assert "not graded: the sentence scheme's gain +0.250" in row["reason"]
    row = _word_index_row({"layers": [0, 1], "schemes": {"list": scheme(0.3)}}, o, wf)
    assert row["verdict"] == "not testable here" and row["value"] is None and "list scheme's gain +0.300" in row["reason"]
    assert _word_index_row({"layers": [0, 1], "schemes": {"word": scheme(0.06)}}, o, wf)["verdict"] == "present"


def test_induction_verdict_names_a_shifted_copying_head():
    """A model whose copying head attends two past the earlier copy (reading a previous-token head's
    output there) has no induction head by the score; the verdict says what it has instead."""
    from poslens.report.stage_verdicts import verdict_rows

    class Ctx:
        def missing(self, needs):
            return "not run in this test"

    best = {"previous_token": {"head": "0.0", "score": 0.96}, "duplicate_token": {"head": "0.2", "score": 0.97},
            "induction": {"head": "1.2", "score": 0.02}}
    profile = {"best": best, "thresholds": {"previous_token": 0.4, "duplicate_token": 0.2, "induction": 0.3},
               "previous_token_heads": ["0.0"], "duplicate_token_heads": ["0.2"], "induction_heads": [],
               "heads": {"1.2": {"shifted_induction_score": 0.89}, "1.0": {"shifted_induction_score": 0.04}}}
    rows = {r["mechanism"]: r for r in verdict_rows(Ctx(), {"profile": profile}, {"weak_fraction": 0.5})}
    ind = rows["induction"]
    assert ind["verdict"] == "absent" and "head 1.2 attends two past the earlier copy (0.89)" in ind["reason"]
    profile["heads"]["1.2"]["shifted_induction_score"] = 0.1  # below the threshold: nothing to name
    rows = {r["mechanism"]: r for r in verdict_rows(Ctx(), {"profile": profile}, {"weak_fraction": 0.5})}
    assert "two past" not in rows["induction"]["reason"]


def test_twisted_pair_verdict_says_why_it_is_not_graded_by_its_number():
    """The legend grades a row by its deciding number; the twisted-pair row also needs a neuron
    pair, so a fit above the threshold without one is weak, and the reason must say so."""
    from poslens.report.stage_verdicts import verdict_rows

    class Ctx:
        def missing(self, needs):
            return "not run in this test"

    tp = {"gpt2": {"ode": {"r2": 0.962, "surrogate_r2_max": 0.895}, "neurons": {"n_twisted": 0}}}
    o = {"weak_fraction": 0.5, "ode_r2": 0.8}
    row = next(r for r in verdict_rows(Ctx(), {"twisted_pair": tp}, o) if r["mechanism"] == "twisted_pair")
    assert row["verdict"] == "weak" and row["value"] >= row["threshold"]
    assert "weak, not present by R² alone" in row["reason"] and "a twisted pair" in row["reason"]
    tp["gpt2"]["neurons"]["n_twisted"] = 2  # both parts: graded as the number says, nothing to explain
    row = next(r for r in verdict_rows(Ctx(), {"twisted_pair": tp}, o) if r["mechanism"] == "twisted_pair")
    assert row["verdict"] == "present" and "by R² alone" not in row["reason"]


def test_a_long_cell_is_cut_with_the_whole_text_on_hover():
    from poslens.report.page import fmt

    long = "ours: " + "x" * 200 + " <b>"
    cell = fmt(long)
    assert cell.startswith('<span title="ours: ' + "x" * 200 + ' &lt;b&gt;">') and cell.endswith("…</span>")
    assert fmt("short <b>") == "short &lt;b&gt;" and fmt(None) == "—"


def test_one_model_under_two_spellings_is_reported_once(tmp_path, monkeypatch):
    from poslens.report import _same_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    assert _same_model("m") == _same_model(str(tmp_path / "m")) == _same_model("./m/")
    assert _same_model("random:m") == _same_model(f"random=0:{tmp_path / 'm'}") != _same_model("random=1:m")
    assert _same_model("m@2") != _same_model("m")


def test_one_model_or_stage_given_as_a_string_is_one_name(tmp_path):
    from poslens.errors import UnknownModelError
    from poslens.report.orchestrate import select_stages

    # a string was read as its letters: "no model could be opened: n: unknown model 'n'; o: ..."
    with pytest.raises(UnknownModelError, match="unknown model 'nomodel'"):
        build_report("nomodel", tmp_path / "out")
    assert [s.name for s in select_stages(default_stages(), only="helix")] == ["helix"]  # "no report stage named 'h'"


def test_a_premise_section_links_to_the_profile_only_when_the_profile_has_a_section(tmp_path):
    from poslens.report.orchestrate import ModelReport, Outcome
    from poslens.report.page import render_model_page

    premise = Outcome(name="dup_neurons", title="Positional neurons", status="skipped",
                      reason="premise absent: the model profile finds no duplicate-token head")
    for profile_status, linked in (("done", True), ("failed", False)):
        profile = Outcome(name="profile", title="Model profile", status=profile_status, result={}, reason="boom")
        rep = ModelReport(model="m", spec="m", fingerprint="f", config={}, size="quick", outcomes=[profile, premise],
                          seconds=1.0, passes=[], out=tmp_path)
        page = render_model_page(rep)
        # a failed profile has no section: its link led nowhere
        assert ('href="#profile"' in page) is linked and ('id="profile"' in page) is linked, profile_status


def test_the_index_escapes_a_config_it_shows():
    from types import SimpleNamespace

    from poslens.report.page import render_index

    # a checkpoint's config.json is anyone's text: its fields reach the page only escaped
    bad = SimpleNamespace(model="m", error=None, outcomes=[], seconds=1.0, verdicts=None,
                          config={"model_type": "x", "n_layer": "<script>alert(1)</script>", "n_head": 2, "n_embd": 8})
    page = render_index([bad], ["m/report.html"])
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
