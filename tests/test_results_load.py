"""Saved results read back typed (Result.from_dict, poslens.load_result), and the report's figures
redrawn from its cache instead of recomputing: ``--png`` on an existing report, a lost figure."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from poslens import load_result
from poslens.cli import cli
from poslens.errors import InvalidInputError
from poslens.report import default_stages
from poslens.report.orchestrate import _draw
from poslens.results import Result, canonical, from_jsonable

# what a default report on the organisms produces (the verdicts are a plain dict; dup_neurons,
# causal_dup_neurons and rotary do not apply to them)
KINDS = {"model_profile", "helix", "dup_heads", "word_index", "spectra", "sphere_overlap", "subspaces", "logit_lens",
         "twisted_pair", "causal_helix", "sinks", "position_probe"}


@pytest.fixture(scope="module", params=["tiny", "tiny-attn"])
def report(request, tmp_path_factory):
    import report_builds

    page, _ = getattr(report_builds, f"{request.param.replace('-', '_')}_report")(tmp_path_factory)
    bodies = [json.loads(f.read_text())["body"] for f in sorted((page.parent / "cache").glob("*.json"))]
    return page.parent, [b for b in bodies if b["stage"] != "verdicts"]


def test_every_report_result_reads_back_as_its_class(report):
    _, bodies = report
    assert {b["result"]["kind"] for b in bodies} == KINDS
    for b in bodies:
        r = load_result(b["result"])
        assert r.kind == b["result"]["kind"] and type(r) is Result.of_kind(r.kind)
        assert canonical(r.to_dict()) == canonical(b["result"]), r.kind
        assert canonical(type(r).from_dict(r.to_dict()).to_dict()) == canonical(b["result"])
    # README: a report's sections are its report.json stages' "result" (the verdicts' is a plain table)
    out, _ = report
    stages = json.loads((out / "report.json").read_text())["stages"]
    kinds = {name: load_result(s["result"]).kind for name, s in stages.items()
             if s["status"] in ("done", "cached") and name != "verdicts"}
    assert set(kinds.values()) == KINDS, kinds
    with pytest.raises(InvalidInputError, match="verdict table is plain JSON"):
        load_result(stages["verdicts"]["result"])


def _plotly(path: Path):
    """A plotly HTML file's figure (data, layout), without the div id that differs per drawing."""
    text, dec = path.read_text(encoding="utf-8"), json.JSONDecoder()
    m = re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*', text)
    data, end = dec.raw_decode(text, m.end())
    return data, dec.raw_decode(text, re.compile(r"\s*,\s*").match(text, end).end())[0]


def test_figures_of_a_reloaded_result_are_the_originals(report, tmp_path):
    out, bodies = report
    stages = {st.name: st for st in default_stages()}
    n = 0
    for b in bodies:
        figs = _draw(stages[b["stage"]], load_result(b["result"]), tmp_path, b["key"], png=False)
        assert [f["path"] for f in figs] == [f["path"] for f in b["figures"]]
        for f in figs:
            old, new = out / f["path"], tmp_path / f["path"]
            if new.suffix == ".html":
                assert _plotly(new) == _plotly(old), f["path"]
            else:
                assert new.read_bytes() == old.read_bytes(), f["path"]
            n += 1
    assert n >= 30


@dataclass(frozen=True)
class ArrayResult(Result):
    kind = "test_arrays"
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0))
    where: Path | None = None
    parts: dict[int, tuple[float, ...]] = field(default_factory=dict)
    inner: list[Result] = field(default_factory=list)


def test_load_result_from_a_file_and_what_it_restores(tmp_path):
    nan = float("nan")
    r = ArrayResult(model="m", processing=("fold",), grid=np.array([[1.0, nan], [np.inf, 3.0]]), where=Path("x/y"),
                    parts={3: (0.5, nan)}, inner=[ArrayResult(grid=np.arange(3))])
    back = load_result(r.save(tmp_path / "r.json"))
    assert type(back) is ArrayResult and back.processing == ("fold",) and back.where == Path("x/y")
    assert back.grid.shape == (2, 2) and back.grid.dtype == np.float64 and np.isnan(back.grid[0]).tolist() == [False, True]
    assert list(back.parts) == [3] and back.parts[3][0] == 0.5 and np.isnan(back.parts[3][1])
    assert type(back.inner[0]) is ArrayResult and back.inner[0].grid.dtype.kind == "i"
    assert back.to_json() == r.to_json()
    assert from_jsonable(float | list[float], [1.0]) == [1.0] and from_jsonable(int | None, None) is None
    assert torch.equal(from_jsonable(torch.Tensor, [1.0, None]).isnan(), torch.tensor([False, True]))


@dataclass(frozen=True)
class Unbounded(Result):
    kind = "test_unbounded"
    x: float = 0.0
    maybe: float | None = None
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0))
    t: torch.Tensor | None = None
    parts: tuple[float, ...] = ()


def test_infinities_and_nan_read_back_exactly_from_strict_json(tmp_path):
    inf, nan = float("inf"), float("nan")
    r = Unbounded(options={"max_distance": inf}, x=-inf, maybe=inf, grid=np.array([[inf, nan], [-inf, 1.0]]),
                  t=torch.tensor([inf, 2.0]), parts=(nan, inf, 0.5))
    path = r.save(tmp_path / "r.json")
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    back = load_result(path)
    assert back.options == {"max_distance": inf} and back.x == -inf and back.maybe == inf
    assert back.grid.dtype == np.float64 and np.array_equal(back.grid, r.grid, equal_nan=True)
    assert torch.equal(back.t, r.t) and back.parts[1:] == (inf, 0.5) and np.isnan(back.parts[0])
    assert load_result({"kind": "test_unbounded", "grid": ["Infinity", "-Infinity"]}).grid.tolist() == [inf, -inf]
    assert from_jsonable(np.ndarray, ["1", "Infinity"]).tolist() == ["1", "Infinity"]  # text stays text


def test_an_infinite_half_distance_reads_back_infinite():
    from poslens.analyses.heads import duplicate_heads

    r = duplicate_heads("tiny-attn", layers=[1])
    assert r.profiles["1.1"].half_distance == float("inf")  # its duplicate-token head favours the earliest copy
    assert load_result(json.loads(r.to_json())).profiles["1.1"].half_distance == float("inf")


@pytest.mark.parametrize("edit, says", [
    (lambda d: {**d, "kind": "helix_v0"}, "a 'helix_v0' result, not one poslens knows"),
    (lambda d: {**d, "period_of_everything": 3}, "has no field period_of_everything"),
    (lambda d: {**d, "checks": [{"what": "x"}]}, "checks: "),
    (lambda d: [d], "expected Result"),
])
def test_a_result_this_version_cannot_read_is_one_clear_error(tmp_path, edit, says):
    from poslens.analyses.helix import HelixResult

    f = tmp_path / "r.json"
    f.write_text(json.dumps(edit(HelixResult(model="m").to_dict())))
    with pytest.raises(InvalidInputError, match=re.escape(says)) as err:
        load_result(f)
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidInputError, match="cannot read a result from"):
        load_result(tmp_path / "absent.json")


def test_saving_where_no_file_can_be_and_loading_what_is_no_result_are_one_clear_error(tmp_path):
    # each had been a bare OSError or TypeError
    r = Result(model="m")
    (tmp_path / "f").write_text("")
    for where, says in ((tmp_path, "it is a folder; give a file name in it"), (tmp_path / "f" / "r.json", "is a file, not a folder")):
        with pytest.raises(InvalidInputError, match=f"^cannot write the result to .*{says}$"):
            r.save(where)
    for what in ([r.to_dict()], 3, None):
        with pytest.raises(InvalidInputError, match="reads a result's JSON file .* or its dict"):
            load_result(what)


def test_a_report_or_sweep_json_is_named_as_not_one_result(tmp_path):
    f = tmp_path / "report.json"
    f.write_text(json.dumps({"models": [{"verdicts": {}, "stages": {}}]}))
    with pytest.raises(InvalidInputError, match=r"no 'kind'.*load a command's result.json"):
        load_result(f)


def test_a_report_cache_entry_or_sweep_cell_says_what_it_is_and_how_to_read_it(tmp_path):
    from poslens.report.orchestrate import write_cache
    from poslens.sweep.store import Store

    result = Result(model="tiny").to_dict()
    write_cache(tmp_path / "helix-0123.json", {"stage": "helix", "key": "0123", "result": result})
    with pytest.raises(InvalidInputError, match=r"helix-0123.json is a report cache entry \(stage 'helix'\).*"
                                                r"\[\"body\"\]\[\"result\"\], which load_result reads"):
        load_result(tmp_path / "helix-0123.json")
    assert load_result(json.loads((tmp_path / "helix-0123.json").read_text())["body"]["result"]).model == "tiny"
    store, material = Store(tmp_path / "store"), {"model": "tiny", "revision": "step-000001", "analysis": "heads"}
    store.put(store.key(material), material, {"status": "ok", "metrics": {"best_induction_score": 0.5}})
    with pytest.raises(InvalidInputError, match=r"is a sweep store cell \(tiny step-000001, heads\): a few metrics"):
        load_result(store.path(store.key(material)))


def test_a_twisted_pair_result_with_a_vector_curve_parameter_reads_back():
    # circle-drift's drift is a 3-vector, in the construction's curve and in the CLI's default grid
    from poslens.analyses.twisted_pair import twisted_pair

    r = twisted_pair(curve="circle-drift", n=64, M=4, k=2, sweep_M=(), sweep_n=(), sweep_k=(), grid=True,
                     grid_n=(64,), grid_k=(2,), grid_M=(4,), claims=False)
    assert any(isinstance(row.params.get("drift"), list) for row in r.grid)
    assert canonical(load_result(r.to_dict()).to_dict()) == canonical(r.to_dict())


def test_png_on_an_existing_report_and_a_lost_figure_redraw_from_the_cache(tmp_path, monkeypatch):
    out = tmp_path / "r"
    args = ["report", "-m", "tiny", "-o", str(out), "--quick", "--only", "helix,verdicts", "--no-progress"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    html = sorted(out.glob("figures/helix-*/*.html"))
    assert html and not list(out.glob("figures/helix-*/*.png"))

    import poslens.analyses.helix as H

    def recomputed(*a, **k):
        raise AssertionError("the helix stage was recomputed")

    monkeypatch.setattr(H, "helix", recomputed)
    r = CliRunner().invoke(cli, [*args, "--png"])
    assert r.exit_code == 0, r.output
    assert "recomputed: none; kept from the cache: helix, verdicts" in r.output
    assert all(h.with_suffix(".png").is_file() for h in html)
    (entry,) = out.glob("cache/helix-*.json")
    body = json.loads(entry.read_text())["body"]
    assert body["png"] and {f["path"] for f in body["figures"]} >= {h.with_suffix(".png").relative_to(out).as_posix()
                                                                     for h in html}
    # a lost figure and a damaged one are drawn again, and the entry records the new files
    html[0].unlink()
    html[1].write_text("damaged")
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0 and "recomputed: none" in r.output, r.output
    assert html[0].is_file() and "Plotly.newPlot" in html[1].read_text()
    from poslens.report.orchestrate import _figures_stale

    assert not _figures_stale(json.loads(entry.read_text())["body"], out, png=True)
    # the page links each HTML figure, which loads the report's one plotly.min.js: lost, it is written again
    (out / "figures" / "plotly.min.js").unlink()
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0 and "recomputed: none" in r.output, r.output
    assert (out / "figures" / "plotly.min.js").is_file()
    assert json.loads((out / "report.json").read_text())["stages"]["helix"]["status"] == "cached"


def test_an_entry_that_cannot_be_redrawn_is_recomputed_or_said_to_be_left_out(tmp_path):
    """A cached result this version cannot read, with a figure to draw again: recomputed where the
    stage is selected; outside --only it is not, and the warning said 'recomputing' anyway."""
    from poslens.report.orchestrate import write_cache

    out = tmp_path / "r"
    args = ["report", "-m", "tiny", "-o", str(out), "--quick", "--only", "helix,verdicts", "--no-progress"]
    assert CliRunner().invoke(cli, args).exit_code == 0

    def damage():
        (entry,) = out.glob("cache/helix-*.json")
        body = json.loads(entry.read_text())["body"]
        write_cache(entry, {**body, "result": {**body["result"], "kind": "helix_v0"}})  # a valid checksum
        (out / body["figures"][0]["path"]).unlink()

    damage()
    r = CliRunner().invoke(cli, [*args[:-2], "verdicts", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "helix is left out of this report (--only helix computes it again)" in r.stderr and "recomputing" not in r.stderr
    assert "helix" not in json.loads((out / "report.json").read_text())["stages"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0 and "recomputed: helix" in r.output, r.output
    damage()
    r = CliRunner().invoke(cli, args)
    assert "recomputing helix" in r.stderr and "recomputed: helix" in r.output, r.output
