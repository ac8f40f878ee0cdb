"""Duplicate-token heads: planted truth, pooled scoring, read-only patterns,
token classes, positional spread on the real partial GPT-2 small, bad input, the CLI
and the report stages.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from poslens.analyses.heads import (
    check_layers,
    decay_profile,
    duplicate_heads,
    duplicate_mask,
    induction_mask,
    pattern_spread,
    pattern_stats,
    positional_attention,
    text_windows,
)
from poslens.claims.attach import with_published
from poslens.cli import cli
from poslens.errors import CorpusError, InvalidInputError, MissingTensorError
from poslens.models import load_weights
from poslens.models.runner import Runner
from poslens.testing.duplicate import planted_duplicate_checkpoint


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_duplicate_checkpoint(tmp_path_factory.mktemp("dup") / "decay", rate=0.12, head=1)


@pytest.fixture(scope="module")
def planted_slow_decay(tmp_path_factory):
    # A different head and rate, so neither is a constant the analysis could get right by accident.
    return planted_duplicate_checkpoint(tmp_path_factory.mktemp("dup") / "slow", rate=0.04, head=0, seed=3)


@pytest.fixture(scope="module")
def planted_groups(tmp_path_factory):
    return planted_duplicate_checkpoint(tmp_path_factory.mktemp("dup") / "groups", rate=0.0, self_penalty=0.0,
                                        groups=((1, 2, 3),), head=1, seed=5)


class SpyRunner(Runner):
    """A Runner that checks every edit it is given only reads what passes through its hook."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen: list[str] = []

    def run(self, *a, edits=None, **kw):
        def wrap(fn):
            def inner(act, hook):
                before = act.clone()
                out = fn(act, hook)
                assert out is None, f"edit of {hook.name} returned a replacement"
                assert torch.equal(act, before), f"edit of {hook.name} changed the activation in place"
                self.seen.append(hook.name)
            return inner

        return super().run(*a, edits={k: wrap(f) for k, f in (edits or {}).items()}, **kw)


# ---------------------------------------------------------------------------- planted truth


@pytest.mark.parametrize("fixture", ["planted", "planted_slow_decay"])
def test_planted_head_ranks_first_and_its_decay_rate_is_recovered(fixture, request):
    pl = request.getfixturevalue(fixture)
    r = duplicate_heads(load_weights(str(pl.path)), n_seq=16, seq_len=64)
    name = f"{pl.layer}.{pl.head}"
    assert r.ranking[0] == name
    assert r.heads[name].score > 0.9 and r.duplicate_heads == [name]
    prof = r.profiles[name]
    assert abs(prof.rate - pl.rate) / pl.rate < 0.05
    assert prof.verdict == "decaying"
    assert prof.within_query.r2 > 0.99
    assert prof.half_distance == pytest.approx(math.log(2) / prof.rate)


def test_model_profile_names_the_planted_head_and_survives_its_json(planted):
    """The profile built on a duplicate-heads result names the planted head; read back from its JSON
    (a cached report section) it is the same typed profile."""
    import json

    from poslens.analyses.profile import HeadRoles, ModelProfile, model_profile

    r = duplicate_heads(load_weights(str(planted.path)), n_seq=16, seq_len=64)
    p = model_profile(r)
    name = f"{planted.layer}.{planted.head}"
    assert p.duplicate_token_heads[0] == name and p.best["duplicate_token"].head == name
    assert isinstance(p.heads[name], HeadRoles) and p.heads[name].score("duplicate_token") > 0.9
    assert p.duplicate_head == (name if planted.layer == 0 else None)
    back = ModelProfile.from_dict(json.loads(p.to_json()))
    assert back == p
    assert model_profile(json.loads(r.to_json())) == p


@pytest.mark.parametrize("given", ["tiny", 3, {"model": "tiny"}])
def test_model_profile_of_anything_but_a_duplicate_heads_result_says_what_it_reads(given):
    from poslens.analyses.profile import model_profile

    # a model name failed deep in dict() (ValueError, TypeError); a dict without heads gave an empty profile
    with pytest.raises(InvalidInputError, match=r"reads a duplicate_heads result .*model_profile\(duplicate_heads\(model\)\)"):
        model_profile(given)


def test_uniform_planted_head_is_called_uniform(planted_groups):
    r = duplicate_heads(load_weights(str(planted_groups.path)), n_seq=8, seq_len=64, layers=[0])
    prof = r.profiles["0.1"]
    assert abs(prof.rate) < 1e-3 and prof.verdict == "uniform"


def test_decay_profile_fits_known_rates():
    rng = np.random.default_rng(0)
    qid = np.repeat(np.arange(200), 4)
    dist = rng.integers(1, 60, size=800).astype(float)
    att = np.exp(-0.07 * dist) * 0.2
    p = decay_profile(qid, dist, att, min_pairs=1)
    assert p.within_query.rate == pytest.approx(0.07, rel=1e-9)
    assert p.verdict == "decaying"
    flat = decay_profile(qid, dist, np.full(800, 0.25), min_pairs=1)
    assert flat.verdict == "uniform"
    none = decay_profile(np.array([]), np.array([]), np.array([]))
    assert none.verdict == "no duplicates" and none.reason
    grow = decay_profile(qid, dist, np.exp(0.05 * dist) * 0.01, min_pairs=1)  # favours the earliest copy
    assert grow.verdict == "growing" and grow.rate == pytest.approx(-0.05, rel=1e-9)


# ---------------------------------------------------------------------------- pooled scoring


def _hand_scores(runner, tokens, layer, ignore):
    pats = runner.run(tokens, hooks=[f"blocks.{layer}.attn.hook_pattern"])[f"blocks.{layer}.attn.hook_pattern"]
    num = np.zeros(runner.cfg.n_heads)
    den = 0
    per_seq = []
    for b in range(tokens.shape[0]):
        n_b, s_b = 0, np.zeros(runner.cfg.n_heads)
        for q in range(tokens.shape[1]):
            if int(tokens[b, q]) in ignore:
                continue
            ks = [k for k in range(q) if tokens[b, k] == tokens[b, q]]
            if ks:
                n_b += 1
                s_b += pats[b, :, q, ks].sum(-1).double().numpy()
        num += s_b
        den += n_b
        if n_b:
            per_seq.append(s_b / n_b)
    return num / den, np.mean(per_seq, 0)


def test_pooled_scores_match_a_hand_computation_with_the_options_applied_to_every_sequence(small_ckpt):
    w = load_weights(str(small_ckpt))
    runner = Runner(w)
    g = torch.Generator().manual_seed(0)
    # Sequences with very different numbers of repeated positions; token 7 is frequent and ignored.
    tokens = torch.stack([torch.randint(0, k, (24,), generator=g) for k in (4, 12, 400, 30, 8)])
    tokens[:, ::5] = 7
    ignore = (7,)
    pooled, seqmean = _hand_scores(runner, tokens, 1, ignore)
    st = pattern_stats(runner, tokens, [1], batch_size=2, ignore=ignore)
    np.testing.assert_allclose(st.pooled()[0], pooled, rtol=1e-5)
    np.testing.assert_allclose(st.seqmean()[0], seqmean, rtol=1e-5)
    assert np.abs(st.pooled() - st.seqmean()).max() > 1e-3  # the two averages really differ here
    # one batched call == its sequences scored one by one with the same options, then pooled
    singles = [pattern_stats(runner, tokens[b : b + 1], [1], ignore=ignore) for b in range(len(tokens))]
    np.testing.assert_allclose(sum(s.dup_sum.sum(0) for s in singles) / sum(s.dup_count.sum() for s in singles),
                               st.pooled(), rtol=1e-6)
    # the option matters: without it token 7's queries count
    assert not np.allclose(pattern_stats(runner, tokens, [1]).pooled(), st.pooled())


def test_duplicate_mask_by_hand():
    m = duplicate_mask(torch.tensor([[3, 4, 3, 3, 9]]), ignore=(9,))
    assert m[0].nonzero().tolist() == [[2, 0], [3, 0], [3, 2]]


def test_induction_mask_by_hand():
    # 3 at 2 has a copy at 0 -> looks at 1; 3 at 3 has copies at 0 and 2 -> looks at 1 (3 is itself: excluded)
    m = induction_mask(duplicate_mask(torch.tensor([[3, 4, 3, 3, 9]]), ignore=(9,)))
    assert m[0].nonzero().tolist() == [[2, 1], [3, 1]]
    # two after the copy: 3 at 3 looks at 2 (from the copy at 0); 3 at 2 has nothing two after 0 before it
    m = induction_mask(duplicate_mask(torch.tensor([[3, 4, 3, 3, 9]]), ignore=(9,)), offset=2)
    assert m[0].nonzero().tolist() == [[3, 2]]


def test_induction_score_matches_a_hand_computation(small_ckpt):
    w = load_weights(str(small_ckpt))
    runner = Runner(w)
    g = torch.Generator().manual_seed(1)
    tokens = torch.stack([torch.randint(0, k, (24,), generator=g) for k in (5, 50, 400)])
    pats = runner.run(tokens, hooks=["blocks.1.attn.hook_pattern"])["blocks.1.attn.hook_pattern"]

    def by_hand(offset):
        """Mean attention of each head to the positions ``offset`` after an earlier copy (before the query)."""
        num, den = np.zeros(w.cfg.n_heads), 0
        for b in range(len(tokens)):
            for q in range(len(tokens[b])):
                ks = sorted({k + offset for k in range(q) if tokens[b, k] == tokens[b, q] and k + offset < q})
                if ks:
                    den += 1
                    num += pats[b, :, q, ks].sum(-1).double().numpy()
        return num / den, den

    st = pattern_stats(runner, tokens, [1], batch_size=2)
    want, den = by_hand(1)
    np.testing.assert_allclose(st.induction()[0], want, rtol=1e-5)
    assert st.ind_count.sum() == den > 0
    want, den = by_hand(2)  # the shifted copying score: two after an earlier copy
    np.testing.assert_allclose(st.shifted()[0], want, rtol=1e-5)
    assert st.shift_count.sum() == den > 0
    # the same pass measures attention to position 0 from every later query (the profile's sink score)
    first = pats[:, :, 1:, 0].double().mean((0, 2)).numpy()
    np.testing.assert_allclose(st.first()[0], first, rtol=1e-5)
    r = duplicate_heads(w, layers=[1], n_seq=3, seq_len=24, positional=False, prepend_bos=False)
    assert all(0.0 <= h.first_position_score <= 1.0 for h in r.heads.values())


def test_scoring_reads_patterns_without_editing_them(planted_groups, tmp_path):
    w = load_weights(str(planted_groups.path))
    spy = SpyRunner(w)
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(" ".join(f"w{i}" for i in np.random.default_rng(s).integers(1, 9, 40)) for s in range(6)))
    r = duplicate_heads(w, n_seq=4, seq_len=32, corpus=corpus, n_text_seq=4, runner=spy, profile_heads=[(0, 1)])
    assert {"blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"} <= set(spy.seen)
    assert r.token_classes and r.profiles  # every pattern reader ran through the spy
    # and the patterns a later hook sees are the model's own
    toks = torch.randint(1, 9, (2, 20))
    assert torch.equal(spy.run(toks, hooks=["blocks.0.attn.hook_pattern"], edits={
        "blocks.0.attn.hook_pattern": lambda a, h: None})["blocks.0.attn.hook_pattern"],
        Runner(w).run(toks, hooks=["blocks.0.attn.hook_pattern"])["blocks.0.attn.hook_pattern"])


def test_token_classes_find_the_planted_group(planted_groups):
    rng = np.random.default_rng(1)
    words = rng.choice([1, 2, 3, 4, 5, 6, 7], p=[0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1], size=400)
    text = " ".join(f"w{i}" for i in words)
    r = duplicate_heads(load_weights(str(planted_groups.path)), layers=[0], n_seq=4, seq_len=64, text=text,
                        n_text_seq=6, profile_heads=[(0, 1)], n_frequent=7)
    groups = r.token_classes.heads["0.1"].groups
    assert [sorted(g) for g in groups] == [["w1", "w2", "w3"]]
    assert r.heads["0.1"].score_text is not None and r.data.text.n_seq == 6
    assert not [n for n in r.notes if "asked for" in n]
    more = duplicate_heads(load_weights(str(planted_groups.path)), layers=[0], n_seq=2, seq_len=64, text=text,
                           n_text_seq=9, n_frequent=7)
    assert more.data.text.n_seq == 6 and more.notes[-1].startswith("the text holds 6 window(s) of 64 tokens, not the 9 asked")


def test_text_windows_are_consecutive(planted_groups):
    from poslens.models.tokenizer import Tokenizer
    from poslens.models.registry import open_checkpoint

    tok = Tokenizer.for_checkpoint(open_checkpoint(str(planted_groups.path)))
    t = text_windows("w1 w2 w3 w4 w5 w6 w7", tok, 4, 10, bos=0)
    assert t.tolist() == [[0, 1, 2, 3], [0, 4, 5, 6]]
    assert text_windows("w1 w2", tok, 8, 3, short="one").tolist() == [[1, 2]]
    with pytest.raises(InvalidInputError, match="fewer than one window of 8"):
        text_windows("w1 w2", tok, 8, 3)


# ---------------------------------------------------------------------------- positional spread


def test_pattern_spread_by_hand():
    P = 64
    local = torch.zeros(1, P, P)
    for q in range(P):
        local[0, q, max(0, q - 3): q + 1] = 1
    uni = torch.tril(torch.ones(1, P, P))
    s = pattern_spread(torch.cat([local, uni]) / torch.cat([local, uni]).sum(-1, keepdim=True), min_query=32,
                       local_window=8)
    assert s["0"].kind == "local" and s["0"].span50 == 2 and s["0"].span90 == 4
    assert s["0"].share_last_window == pytest.approx(1.0)
    assert s["1"].kind == "uniform" and s["1"].entropy_ratio == pytest.approx(1.0)
    assert s["1"].mean_distance == pytest.approx(np.mean([q / 2 for q in range(32, P)]))


def test_partial_gpt2_positional_inputs(partial_ckpt):
    w = load_weights(str(partial_ckpt))
    pos = positional_attention(Runner(w), [0])
    # Real GPT-2 small weights: 0.5 and 0.11 spread over the whole context, the others keep half
    # their attention within the last 30 positions, as the seed says of text.
    assert set(pos.uniform) == {"0.5", "0.11"}
    assert len(pos.local) == 10 and not pos.mixed
    assert all(pos.heads[k].span50 <= 30 for k in pos.local)
    assert pos.heads["0.11"].entropy_ratio > 0.85 and pos.heads["0.5"].attention_to_first > 0.1
    with pytest.raises(MissingTensorError, match="wte.weight"):
        duplicate_heads(w)
    r = duplicate_heads(w, positional_only=True)
    assert not r.heads and r.positional.uniform == pos.uniform and r.checks == []
    checks = {c.what: c for c in with_published(r, w).checks}
    assert all(c.reproduced for c in checks.values()) and len(checks) == 2
    assert all(c.note for c in checks.values())


def _gpt2_cache_dir() -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for repo in ("openai-community/gpt2", "gpt2"):
        paths = [try_to_load_from_cache(repo, f) for f in ("config.json", "model.safetensors")]
        if all(isinstance(p, str) for p in paths):
            return Path(paths[0]).parent
    return None


@pytest.mark.skipif(_gpt2_cache_dir() is None, reason="gpt2 is not in the Hugging Face cache (no hub on this machine)")
def test_real_gpt2_names_heads_0_1_0_5_and_0_10():
    w = load_weights(str(_gpt2_cache_dir()))
    r = duplicate_heads(w, layers=[0], n_seq=16, seq_len=64)
    assert {"0.1", "0.5", "0.10"} <= set(r.duplicate_heads)


# ---------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors(planted, tmp_path):
    w = load_weights(str(planted.path))
    with pytest.raises(InvalidInputError, match="head 0.7 does not exist"):
        duplicate_heads(w, profile_heads=[(0, 7)])
    with pytest.raises(InvalidInputError, match="layer 5 does not exist"):
        duplicate_heads(w, layers=[5])
    # 0 had been read as "the default" (256 tokens, seq_len // 8 distinct ids), where 1 and 2 were refused
    with pytest.raises(InvalidInputError, match="seq_len >= 3; got 3, 0"):
        duplicate_heads(w, seq_len=0, n_seq=3)
    with pytest.raises(InvalidInputError, match="n_distinct must be >= 1"):
        duplicate_heads(w, profile_heads=[(0, 1)], profile_distinct=0, n_seq=3, seq_len=24)
    with pytest.raises(InvalidInputError, match="needs natural text"):
        duplicate_heads(w, rank_by="text")
    with pytest.raises(InvalidInputError, match="the text has 1 token"):
        duplicate_heads(w, text="w1")
    with pytest.raises(CorpusError, match="does not exist"):
        duplicate_heads(w, corpus=tmp_path / "nope.txt")
    flat = tmp_path / "distinct.txt"
    flat.write_text(" ".join(f"w{i}" for i in range(1, 41)))
    r = duplicate_heads(w, corpus=flat, seq_len=16, n_seq=4)
    assert r.heads["0.1"].score_text is None and "earlier copy" in r.data.text.empty_reason
    assert any("earlier copy" in n for n in r.notes)
    with pytest.raises(CorpusError, match="nothing to rank"):
        duplicate_heads(w, corpus=flat, seq_len=16, n_seq=4, rank_by="text")


def test_options_are_validated_once_and_keywords_override_them(planted):
    from poslens.analyses.heads import Options
    from poslens.analyses.neurons import Options as NeuronOptions

    with pytest.raises(InvalidInputError, match="share of attention"):
        Options(threshold=0.0)
    with pytest.raises(InvalidInputError, match="ln_scale must be one of approx, approx-const, exact-mean, none; got 'exact'"):
        NeuronOptions(ln_scale="exact")
    w = load_weights(str(planted.path))
    opts = Options(layers=[0], n_seq=3, seq_len=24, positional=False, threshold=0.9)
    a = duplicate_heads(w, opts, threshold=0.5)
    b = duplicate_heads(w, layers=[0], n_seq=3, seq_len=24, positional=False, threshold=0.5)
    assert a.options == b.options and a.options["threshold"] == 0.5 and a.heads == b.heads


def test_a_mistyped_option_or_options_of_the_wrong_kind_is_one_clear_error(planted):
    from poslens.analyses.neurons import duplicate_neurons

    w = load_weights(str(planted.path))
    with pytest.raises(InvalidInputError, match="duplicate_heads has no option 'n_seqs' \\(did you mean 'n_seq'"):
        duplicate_heads(w, n_seqs=4)
    with pytest.raises(InvalidInputError, match="duplicate_neurons has no option 'neurons'"):
        duplicate_neurons(w, neurons=3)
    with pytest.raises(InvalidInputError, match="options must be a poslens.analyses.heads.options.Options, not dict"):
        duplicate_heads(w, {"n_seq": 4})


def test_layers_given_as_one_int_is_that_layer(planted):
    w = load_weights(str(planted.path))
    assert check_layers(w, 0) == [0] and check_layers(w, 1) == [1]
    assert duplicate_heads(w, layers=0, n_seq=2, seq_len=16, positional=False).options["layers"] == [0]


def _cli(args):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    return res


@pytest.mark.parametrize("args, message", [
    (["dup-heads", "--layers", "7"], "layer 7 does not exist"),
    (["dup-heads", "--profile-heads", "0.9"], "head 0.9 does not exist"),
    (["dup-heads", "--profile-heads", "zero"], "not LAYER.HEAD"),
    (["dup-heads", "--corpus", "missing.txt"], "does not exist"),
    (["dup-heads", "--text", "w3"], "at least two"),
    (["dup-heads", "--text", "@missing.txt"], "does not exist"),
])
def test_cli_bad_input_exits_2_with_one_line(args, message, planted, tmp_path):
    out = tmp_path / "out"
    res = _cli([*args, "-m", str(planted.path), "-o", str(out)])
    assert res.exit_code == 2
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output and not out.exists()


def test_cli_text_file_path_expands_home(planted, tmp_path, monkeypatch):
    # every command's @FILE reads through one helper: ~ is the user's home in each (dup-heads once did not expand it)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "one-word.txt").write_text("w3")
    res = _cli(["dup-heads", "--text", "@~/one-word.txt", "-m", str(planted.path), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2 and "at least two" in res.stderr


def test_cli_missing_tensor_names_it(partial_ckpt, tmp_path):
    res = _cli(["dup-heads", "-m", str(partial_ckpt), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "wte.weight" in res.stderr and "--positional-only" in res.stderr
    assert not (tmp_path / "o").exists()


def test_cli_json_keys_heads_by_name_and_writes_files(planted, tmp_path):
    out = tmp_path / "o"
    res = _cli(["dup-heads", "-m", str(planted.path), "-o", str(out), "--n-seq", "8", "--seq-len", "48", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["kind"] == "dup_heads" and d["ranking"][0] == "0.1" and set(d["heads"]) >= {"0.0", "0.1", "1.0", "1.1"}
    assert d["options"]["n_seq"] == 8 and d["profiles"]["0.1"]["verdict"] == "decaying"
    assert json.loads((out / "result.json").read_text()) == d
    assert (out / "dup_score_repeated.png").is_file() and (out / "dup_decay.html").is_file()


def test_heads_and_neurons_packages_plot_nothing_and_build_no_test_models():
    # Analyses return measurements: figures are poslens.viz's, planted models poslens.testing's.
    from poslens.analyses import heads, neurons
    from poslens.code_version import source_closure

    assert heads.duplicate_heads is duplicate_heads
    assert callable(neurons.duplicate_neurons) and callable(neurons.decompose_neuron)
    closure = source_closure(("poslens.analyses.heads", "poslens.analyses.neurons"))
    assert "poslens.analyses.neurons.decompose" in closure
    assert not [m for m in closure if m.startswith(("poslens.viz", "poslens.testing", "poslens.claims"))]


def test_shifted_copying_grid_is_drawn_only_where_a_head_shows_it(tmp_path):
    from types import SimpleNamespace

    from poslens.analyses.heads.result import HeadScores
    from poslens.viz.duplicate import dup_heads_figures

    def result(shifted):
        heads = {f"1.{h}": HeadScores(layer=1, head=h, score=0.0, score_repeated=0.0, score_repeated_seqmean=0.0,
                                      score_text=None, score_text_seqmean=None, prev_token_score=0.1,
                                      induction_score=0.02, first_position_score=0.1,
                                      shifted_induction_score=shifted if h == 2 else 0.01) for h in range(4)}
        return SimpleNamespace(heads=heads, profiles={}, token_classes=None, positional=None)

    names = {p.name for p in dup_heads_figures(result(0.86), tmp_path / "a")}
    assert "dup_shifted_induction_score.html" in names and "dup_induction_score.html" in names
    names = {p.name for p in dup_heads_figures(result(0.1), tmp_path / "b")}
    assert "dup_shifted_induction_score.html" not in names and "dup_induction_score.html" in names


def test_decay_figure_and_summary_name_which_fit_each_rate_is(planted, tmp_path):
    """The summary quotes the within-query rate, the figure draws a fit to the mean profile (they
    can differ many-fold): the legend and the summary line say which is which."""
    from poslens.analyses.heads.result import summarize
    from poslens.viz.duplicate import dup_heads_figures

    r = duplicate_heads(load_weights(str(planted.path)), n_seq=8, seq_len=48)
    p = r.profiles["0.1"]
    line = next(x for x in summarize(r) if x.startswith("0.1: "))
    assert f"rate {p.rate:.4f}/token within queries" in line
    assert f"the figure's fit to the mean attention by distance: {p.mean_fit.rate:.4f}/token" in line
    assert "nan" not in line
    page = (tmp_path / "dup_decay.html")
    assert page in dup_heads_figures(r, tmp_path)
    assert f"0.1 fit to these means (rate {p.mean_fit.rate:.4f}/token; within queries {p.rate:.4f})" in page.read_text().replace(
        "\\u002f", "/")  # plotly's JSON escapes the slash


def test_a_runner_of_another_model_is_refused():
    from poslens.analyses.word_index import word_index
    from poslens.models import processing

    w = load_weights("tiny")
    null = Runner(processing.randomize(load_weights("tiny"), seed=0))  # same shapes: it measured the null as "tiny"
    for analysis in (duplicate_heads, word_index):
        with pytest.raises(InvalidInputError, match=r"runner= runs tiny \(random weights, seed 0\).*, not tiny; give Runner"):
            analysis(w, runner=null)
    with pytest.raises(InvalidInputError, match="runner= takes a Runner of the model; got Weights"):
        duplicate_heads(w, runner=w)
    # the same model, loaded twice, is the same model
    assert duplicate_heads("tiny", n_seq=2, seq_len=16, positional=False, runner=Runner(w)).model == "tiny"
