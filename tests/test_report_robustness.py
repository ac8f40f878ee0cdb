"""The report survives what users do: a model that fails among several, --only into an
existing report, a failed run, code that changed under the cache."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from poslens.cli import cli
from poslens.report import build_report, default_stages, model_folder
from poslens.report import orchestrate as O
from poslens.testing import random_checkpoint, small_config


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    a = random_checkpoint(root / "data" / "model-a", small_config(), seed=1)
    b = random_checkpoint(root / "other" / "model-b", small_config(), seed=2)
    return a, b


def test_one_failing_model_does_not_lose_the_others(two_models, tmp_path):
    a, _ = two_models
    out = tmp_path / "rep"
    r = CliRunner().invoke(cli, ["report", "-m", str(a), "-m", "nosuchmodel", "--quick", "--only",
                                 "geometry_sphere", "--no-progress", "-o", str(out)])
    assert r.exit_code == 1, r.output
    assert "nosuchmodel: not analysed" in r.output and "could not be analysed: nosuchmodel" in r.stderr
    index = (out / "index.html").read_text()
    assert "nosuchmodel" in index and "not analysed" in index and "unknown model" in index
    assert (out / "model-a" / "report.html").is_file()
    bundle = json.loads((out / "report.json").read_text())
    errors = [m.get("error") for m in bundle["models"]]
    assert errors[0] is None and "unknown model" in errors[1]
    assert not (out / "nosuchmodel").exists()


def test_model_folders_are_visible_safe_and_unique(two_models, tmp_path):
    a, b = two_models
    assert model_folder(str(a), set()) == "model-a"
    assert model_folder("../shared/data/gpt2-small-partial", set()) == "gpt2-small-partial"
    assert model_folder("battlestar@1000", set()) == "battlestar-1000"
    assert model_folder("openai-community/gpt2", set()) == "openai-community--gpt2"
    taken: set[str] = set()
    assert [model_folder(s, taken) for s in ("tiny", "tiny@x", "./tiny")] == ["tiny", "tiny-x", "tiny-2"]
    page, _ = build_report([str(a), str(b)], tmp_path / "two", only=["geometry_sphere"], size="quick",
                           progress=False)
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.is_dir()) == ["model-a", "model-b"]


def test_only_into_an_existing_report_keeps_its_sections(two_models, tmp_path):
    a, _ = two_models
    out = tmp_path / "rep"
    args = ["report", "-m", str(a), "--quick", "--no-progress", "-o", str(out)]
    # a cheap weight-only section (the sphere overlap) stands for any section here
    assert CliRunner().invoke(cli, args + ["--only", "geometry_sphere"]).exit_code == 0
    r = CliRunner().invoke(cli, args + ["--only", "dup_heads"])
    assert r.exit_code == 0, r.output
    assert "recomputed: dup_heads; kept from the cache: geometry_sphere" in r.output
    stages = json.loads((out / "report.json").read_text())["stages"]
    assert stages["geometry_sphere"]["status"] == "cached" and stages["dup_heads"]["status"] == "done"
    # a changed option is not the same section: it is left out rather than shown stale
    r = CliRunner().invoke(cli, args + ["--only", "dup_heads", "--set", "geometry_sphere.n_trials=2"])
    assert set(json.loads((out / "report.json").read_text())["stages"]) == {"dup_heads"}


def test_a_failed_report_leaves_nothing_behind(tmp_path):
    # a checkpoint with W_pos only: no stage but the weight-only ones can run; ask for one that needs tokens
    from safetensors.torch import load_file, save_file

    path = random_checkpoint(tmp_path / "m", small_config(), seed=0)
    sd = load_file(path / "model.safetensors")
    save_file({"wpe.weight": sd["wpe.weight"]}, path / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "rep"
    r = CliRunner().invoke(cli, ["report", "-m", str(path), "--only", "dup_heads", "--no-progress", "-o", str(out)])
    assert r.exit_code == 2 and "supports none" in r.stderr
    assert not out.exists()


def test_set_values_are_typed_before_any_work(two_models, tmp_path):
    a, _ = two_models
    for bad, words in [("helix.n_components=abc", "expected an integer"), ("helix.n_components=-1", "must lie in [1, inf)"),
                       ("dup_heads.threshold=1.5", "[0, 1]"), ("helix.keep_first=3", "true or false"),
                       # what only the analysis's Options refuse: the report ran, and these stages failed in it
                       ("helix.fit_components=1", "--set helix: fit_components must be between 2"),
                       ("causal_helix.n_random=1", "--set causal_helix: n_random must be at least 2"),
                       ("geometry_spectra.matrices=foo", "unknown matrix 'foo'"),
                       ("geometry_sphere.n_tokens=1", "n_tokens must be at least 2"),
                       ("geometry_subspaces.noise=xx", "noise must be 'iterative'"),
                       # a range the Options declare (helix --help states it): refused as --sinusoidal-base 1 is
                       ("helix.sinusoidal_base=1", "--set helix: sinusoidal_base must lie in (1, inf); got 1.0"),
                       ("helix.ode_window=2", "ode_window must lie in [5, inf); got 2")]:
        with pytest.raises(O.InvalidInputError, match=re.escape(words)):
            build_report([str(a)], tmp_path / "x", sets=[bad], progress=False)
        assert not (tmp_path / "x").exists()


def test_set_takes_zero_where_the_command_flag_does():
    """helix --traces 0, lens --generate 0 and twisted-pair --first-position 0 run; --set refused them (>= 1)."""
    ctx = O.Context("tiny", size="quick")
    stages = {st.name: st for st in default_stages()}
    for stage, key in (("helix", "n_traces"), ("geometry_lens", "n_generate"), ("twisted_pair", "first_position")):
        assert stages[stage].options_for(ctx, {key: 0})[key] == 0
    with pytest.raises(O.InvalidInputError, match=r"must lie in \[1, inf\)"):
        stages["helix"].options_for(ctx, {"cosine_size": 0})


def test_cache_key_covers_every_module_a_stage_imports_and_the_version(monkeypatch):
    from poslens import code_version as CV

    for st in default_stages():
        closure = CV.source_closure((*st.code, st.run.__module__))
        assert {"poslens.models.runner", "poslens.models.weights", "poslens.results"} <= set(closure), st.name
        assert all(CV.module_file(m) is not None for m in closure)
    st = default_stages()[0]
    key = O.code_fingerprint((st.run.__module__,))
    import poslens

    monkeypatch.setattr(poslens, "__version__", "999.0")
    CV.code_version.cache_clear()
    assert O.code_fingerprint((st.run.__module__,)) != key
    CV.code_version.cache_clear()


def test_a_head_given_to_one_duplicate_section_leaves_the_other_its_premise():
    # --set dup_neurons.head=0.1 on a model without a duplicate-token head also lifted causal_dup_neurons'
    # premise check, and that section then failed (ValueError: max() arg is an empty sequence)
    ctx = O.Context("tiny", size="quick")
    stages = {st.name: st for st in default_stages()}
    ctx.overrides = {"dup_neurons": {"head": "0.1"}}
    assert stages["dup_neurons"].supports(ctx) is None
    assert stages["causal_dup_neurons"].supports(ctx).startswith("premise absent")
    assert "(the strongest, head " in stages["causal_dup_neurons"].supports(ctx)  # "the strongest, 2.3" read as a score
    ctx.overrides = {"causal_dup_neurons": {"heads": "0.1"}}
    assert stages["causal_dup_neurons"].supports(ctx) is None
    assert stages["dup_neurons"].supports(ctx).startswith("premise absent")
