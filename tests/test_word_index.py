"""Word-index probes (after the post "Emergent positional embeddings"): the prompt generator's
invariants, the harvest, the batched probes against scikit-learn, the probe and its baselines
against a planted word counter, the CLI, the report stage, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from poslens.analyses import word_index as WI
from poslens.cli import cli
from poslens.data import word_prompts as wp
from poslens.errors import InvalidInputError, MissingTensorError
from poslens.models import Runner, load_weights
from poslens.models.tokenizer import Tokenizer
from poslens.testing.word_index import expected_count_output, planted_word_index_checkpoint

SMALL = dict(n_train=1400, n_val_prompts=200)


@pytest.fixture(scope="module")
def gpt2_tok():
    return Tokenizer.gpt2()


@pytest.fixture(scope="module")
def gpt2_dataset(gpt2_tok):
    return wp.make_dataset(gpt2_tok, n_train=700, n_val_prompts=150, dictionary_size=5000, seed=3)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_word_index_checkpoint(tmp_path_factory.mktemp("wi") / "planted")


@pytest.fixture(scope="module")
def planted_result(planted):
    w = load_weights(str(planted.path))
    r = WI.word_index(w, layers=[0, 1], combined=True, **SMALL)
    return r, w


# ----------------------------------------------------------------------------- generator


def test_word_prompts_invariants(gpt2_tok, gpt2_dataset):
    train, val, d = gpt2_dataset
    prefix_ids = gpt2_tok.encode(wp.POST_PREFIX, prepend_bos=True)
    assert len(train) == 100 and len(val) == 150 and train.n_units == val.n_units == 7
    by_word = {s: {w: k for k, ws in d.words(s).items() for w in ws} for s in ("train", "val")}
    length_counts = np.zeros(4)
    for ps, split in ((train, "train"), (val, "val")):
        for ids, spans, units, text in zip(ps.tokens, ps.spans, ps.units, ps.texts):
            assert ids[: len(prefix_ids)] == prefix_ids and gpt2_tok.encode(text, prepend_bos=True) == ids
            assert spans[0][0] == len(prefix_ids) and spans[-1][1] == len(ids) - 1
            for u, ((a, b), text) in enumerate(zip(spans, units)):
                if u:
                    assert a == spans[u - 1][1] + 1  # words follow each other with nothing between
                n = b - a + 1
                assert gpt2_tok.decode(ids[a : b + 1]) == text and text.startswith(" ")
                assert by_word[split][text[1:]] == n  # drawn from this split's bucket of exactly n tokens
                pieces = gpt2_tok.to_str_tokens(ids[a : b + 1])
                assert pieces[0].startswith(" ") and not any(p.startswith(" ") for p in pieces[1:])
                length_counts[n] += 1
    share = length_counts[1:] / length_counts.sum()
    assert np.all(np.abs(share - 1 / 3) < 0.05), share  # length drawn uniformly first
    for lt, col in (("last", 1), ("first", 0)):
        pts = val.points(lt)
        assert len(pts["label"]) == 150 * 7
        assert (pts["label"] == np.tile(np.arange(7), 150)).all()
        spans = np.array([s for sp in val.spans for s in sp])
        assert (pts["pos"] == spans[:, col]).all()
        assert (pts["token"] == [val.tokens[i][p] for i, p in zip(pts["prompt"], pts["pos"])]).all()


def test_dictionary_split_is_disjoint_and_seeded(gpt2_tok):
    d = wp.word_dictionary(gpt2_tok, size=5000, seed=1)
    train = {w for ws in d.train.values() for w in ws}
    val = {w for ws in d.val.values() for w in ws}
    assert train and val and not train & val
    for k in (1, 2, 3):
        assert all(len(gpt2_tok.encode(" " + w)) == k for w in d.train[k][:50] + d.val[k][:50])
        n = len(d.train[k]) + len(d.val[k])
        assert abs(len(d.train[k]) - 0.8 * n) <= 1
    assert "s" not in val | train and "t" not in val | train  # contraction fragments are not words
    assert wp.word_dictionary(gpt2_tok, size=5000, seed=1) == d
    assert wp.word_dictionary(gpt2_tok, size=5000, seed=2).train != d.train
    # a user list with repeats can never put one word in both splits
    words = ["apple", "Apple ", "table", "chair", "river", "house", "water", "green", "music", "light"] * 3
    d2 = wp.word_dictionary(gpt2_tok, lengths=(1,), words=words, min_words=1)
    t2 = {w for ws in d2.train.values() for w in ws}
    v2 = {w for ws in d2.val.values() for w in ws}
    assert not t2 & v2 and "apple" in t2 | v2


def test_validation_prompts_use_only_validation_words(gpt2_dataset):
    train, val, d = gpt2_dataset
    tw = {w for ws in d.train.values() for w in ws}
    vw = {w for ws in d.val.values() for w in ws}
    assert all(u[1:] in tw for units in train.units for u in units)
    assert all(u[1:] in vw and u[1:] not in tw for units in val.units for u in units)


def test_the_models_own_tokenizer_defines_word_length(tmp_path):
    """A 1,000-token BPE splits words differently from GPT-2's; lengths and spans follow it."""
    from tokenizers import Tokenizer as TK
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from poslens.models.tokenizer import BOS

    tk = TK(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    corpus = wp.common_words(3000)
    tk.train_from_iterator([" ".join(corpus[i : i + 20]) for i in range(0, 3000, 20)],
                           trainers.BpeTrainer(vocab_size=1000, special_tokens=[BOS], show_progress=False,
                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = Tokenizer(tk, "test-bpe-1000")
    d = wp.word_dictionary(tok, size=3000, lengths=(1, 2, 3))
    gpt2 = Tokenizer.gpt2()
    assert any(len(gpt2.encode(" " + w)) != 2 for w in d.train[2])
    train = wp.make_prompts(tok, d, "word", n_prompts=30)
    for ids, spans in zip(train.tokens, train.spans):
        assert all(len(tok.encode(tok.decode(ids[a : b + 1]))) == b - a + 1 <= 3 for a, b in spans)


@pytest.mark.parametrize("scheme,between,ends", [("list", ",", None), ("sentence", None, "."), ("code", "\n", None)])
def test_other_schemes(gpt2_tok, scheme, between, ends):
    d = wp.word_dictionary(gpt2_tok, size=5000)
    ps = wp.make_prompts(gpt2_tok, d, scheme, split="val", n_prompts=20, n_units=5, seed=1)
    assert ps.n_units == 5 and ps.texts[0].startswith(wp.DEFAULT_PREFIXES[scheme])
    for ids, spans, units in zip(ps.tokens, ps.spans, ps.units):
        assert spans[-1][1] == len(ids) - 1
        for u, ((a, b), text) in enumerate(zip(spans, units)):
            assert gpt2_tok.decode(ids[a : b + 1]) == text
            if u and between is not None:
                assert gpt2_tok.decode(ids[spans[u - 1][1] + 1 : a]) == between
            if ends is not None:
                assert text.endswith(ends) and text[1].isupper()


# ----------------------------------------------------------------------------- pieces


def test_position_balanced_subset():
    pos = np.array([5] * 30 + [6] * 12 + [7] * 9)
    y = np.array([0] * 20 + [1] * 10 + [1] * 6 + [2] * 6 + [3] * 9)
    idx, info = WI.position_balanced(pos, y, min_per_cell=5, seed=0)
    # position 5: labels 0 and 1, 10 each; position 6: 1 and 2, 6 each; position 7: one label only (dropped)
    assert info["positions"] == [5, 6] and info["n_points"] == 32
    assert info["chance"] == pytest.approx(0.5)
    for p in (5, 6):
        _, counts = np.unique(y[idx][pos[idx] == p], return_counts=True)
        assert len(set(counts)) == 1


def test_evaluate_counts():
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    pos = np.array([3, 4, 4, 5, 5])
    m = WI.evaluate(pred, y, pos, 3, [3, 4, 5], np.array([1, 2]), confusion=True)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["per_index"] == [0.5, 1.0, 0.0]
    assert m["per_position"] == [1.0, 0.5, 0.5]
    assert m["balanced_accuracy"] == 0.5
    c = np.array(m["confusion"])
    assert c.sum() == 5 and c[0, 1, 1] == 1 and c[2, 2, 0] == 1


def test_position_baseline_is_the_majority_rule(gpt2_tok, gpt2_dataset):
    """A probe on one-hot position learns the most frequent index at each training position."""
    train, val, _ = gpt2_dataset
    tr, va = train.points("last"), val.points("last")
    p = WI.fit_probe(WI.one_hot([tr["pos"]], [tr["pos"]]), tr["label"], tr["prompt"], C=10.0)
    pred = p.predict(WI.one_hot([va["pos"]], [tr["pos"]]))
    majority = {q: np.bincount(tr["label"][tr["pos"] == q]).argmax() for q in np.unique(tr["pos"])}
    seen = np.isin(va["pos"], list(majority))
    rule = np.array([majority[q] for q in va["pos"][seen]])
    assert np.mean(pred[seen] == rule) > 0.97  # ties may break either way


def test_harvest_matches_full_forward_and_stops_at_deepest_point(planted):
    w = load_weights(str(planted.path))
    tok = Tokenizer.for_checkpoint(w.source)
    d = wp.word_dictionary(tok, size=20000)
    ps = wp.make_prompts(tok, d, "word", n_prompts=12, seed=5)
    pts = ps.points("last")
    X = WI.harvest(Runner(w), ps.tokens, pts["prompt"], pts["pos"], [0, 1], batch_size=5)
    assert not any(r.startswith("h.1.") for r in w.source.reads)  # block 1 never ran
    full = Runner(w)
    for i in (0, 7):
        acts = full.run(torch.tensor([ps.tokens[i]]), hooks=["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"])
        rows = np.flatnonzero(pts["prompt"] == i)
        for j, hook in enumerate(("blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre")):
            np.testing.assert_allclose(X[j, rows], acts[hook][0, pts["pos"][rows]].numpy(), atol=1e-5)


def test_a_scheme_whose_prompts_outgrow_the_context_is_left_out_with_a_note():
    """tiny-attn's context is 128 tokens: seven sentences do not fit, seven words do. Asked for both,
    the probe runs the words and says why the sentences are missing; asked for sentences alone, it fails."""
    w = load_weights("tiny-attn")
    kw = dict(n_train=140, n_val_prompts=20, Cs=(1.0,), layers=[0, 1])
    r = WI.word_index(w, schemes=("word", "sentence"), **kw)
    assert list(r.schemes) == ["word"] == r.options["schemes"]
    assert r.notes == [f"scheme 'sentence' left out: a sentence prompt has {r.notes[0].split(' has ')[1].split()[0]} "
                       "tokens but the model's context is n_ctx=128; shorten the prefix or use fewer units"]
    with pytest.raises(InvalidInputError, match="model's context is n_ctx=128"):
        WI.word_index(w, schemes=("sentence",), **kw)


def test_a_delimited_schemes_finding_says_random_weights_carry_its_count():
    r = WI.word_index(load_weights("tiny"), schemes=("word", "list"), n_train=140, n_val_prompts=20, Cs=(1.0,),
                      layers=[0, 1], label_tokens=("last",))
    above = {f.scheme: f.ours for f in r.findings if "well above" in f.what}
    assert above["list"].endswith("random weights carry its delimiter count too")
    assert "random weights" not in above["word"]


def test_a_converged_warm_start_is_returned_after_one_exact_gradient_test():
    """A warm start meeting the stopping rule comes back unchanged with 0 iterations; the test is
    the objective's own gradient (autograd) against tol, so a tighter tol makes it iterate."""
    from poslens.analyses.word_index.logistic import _converged_at, fit_softmax

    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 300, 6, generator=g, dtype=torch.float64)
    y = (X[0, :, 0] + 0.5 * torch.randn(300, generator=g, dtype=torch.float64) > 0).long() + (X[0, :, 1] > 1).long()
    C = torch.tensor([[0.1, 3.0], [1.0, 10.0]], dtype=torch.float64)
    fit = fit_softmax(X, y, 3, C)
    assert fit.converged.all()
    again = fit_softmax(X, y, 3, C, W0=fit.W)
    assert again.n_iter.eq(0).all() and torch.equal(again.W, fit.W) and again.converged.all()
    W = fit.W.clone().requires_grad_(True)
    X1 = torch.cat([X, X.new_ones(2, 300, 1)], -1)
    logp = torch.log_softmax(X1[:, None] @ W, -1)
    obj = -logp.gather(-1, y.view(1, 1, -1, 1).expand(2, 2, -1, 1)).mean((-2, -1)) \
        + (W[..., :-1, :] ** 2).sum((-2, -1)) / (2 * C * 300)
    (grad,) = torch.autograd.grad(obj.sum(), W)
    worst = grad.abs().amax((-2, -1))
    for tol in (float(worst.max()) * 1.01, float(worst.min()) * 0.99):
        assert torch.equal(_converged_at(X, y, 3, C, fit.W, tol, torch.float64), worst <= tol)
    tighter = fit_softmax(X, y, 3, C, W0=fit.W, tol=float(worst.min()) * 0.5)
    assert tighter.n_iter.gt(0).any()


def test_batched_probes_match_scikit_learn(planted):
    """Every point and C fitted in one torch batch gives scikit-learn's accuracy (to 0.005) at the same C."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    w = load_weights(str(planted.path))
    tok = Tokenizer.for_checkpoint(w.source)
    train, val, _ = wp.make_dataset(tok, n_train=700, n_val_prompts=100, n_ctx=w.cfg.n_ctx, seed=2)
    tp, vp = train.points("last"), val.points("last")
    runner = Runner(w)
    Xt = WI.harvest(runner, train.tokens, tp["prompt"], tp["pos"], [0, 1])
    Xv = WI.harvest(runner, val.tokens, vp["prompt"], vp["pos"], [0, 1])
    for C in (0.05, 1.0):
        ours = WI.fit_probes(Xt, tp["label"], tp["prompt"], C=C)
        for i, p in enumerate(ours):
            sc = StandardScaler().fit(Xt[i])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                ref = LogisticRegression(C=C, max_iter=1000).fit(sc.transform(Xt[i]), tp["label"])
            a = (p.predict(Xv[i]) == vp["label"]).mean()
            b = (ref.predict(sc.transform(Xv[i])) == vp["label"]).mean()
            assert p.converged and abs(a - b) <= 0.005, (C, i, a, b)
            np.testing.assert_allclose(p.scaler.scale_, sc.scale_, rtol=1e-5)
            # the same optimum: decision values agree up to the intercepts' common shift
            ours_dec = sc.transform(Xv[i]) @ p.model.coef_.T + p.model.intercept_
            ref_dec = ref.decision_function(sc.transform(Xv[i]))
            diff = (ours_dec - ours_dec.mean(1, keepdims=True)) - (ref_dec - ref_dec.mean(1, keepdims=True))
            assert np.abs(diff).max() < 0.05 * np.abs(ref_dec).max(), (C, i, np.abs(diff).max())
    # C chosen on held-out prompts: the best one tried, and the same set of probes as one at a time
    auto = WI.fit_probes(Xt, tp["label"], tp["prompt"], Cs=(0.01, 1.0))
    single = WI.fit_probe(Xt[1], tp["label"], tp["prompt"], Cs=(0.01, 1.0))
    assert auto[1].C == single.C and auto[1].selection == single.selection
    assert auto[1].selection[f"{auto[1].C:g}"] == max(auto[1].selection.values())
    # C is chosen on float32 fits; the probe is then refitted in float64 from the chosen one, to
    # the same optimum a float64 fit from zero reaches
    for i, p in enumerate(auto):
        fixed = WI.fit_probes(Xt, tp["label"], tp["prompt"], C=p.C)[i]
        assert p.converged and (p.predict(Xv[i]) == fixed.predict(Xv[i])).mean() >= 0.995, (i, p.C)


def test_harvest_through_the_shared_prefix_matches_full_forward(planted, monkeypatch):
    """When every block runs, the prompts' common prefix runs once (key/value prefix) with the same activations."""
    w = load_weights(str(planted.path))
    tok = Tokenizer.for_checkpoint(w.source)
    ps = wp.make_prompts(tok, wp.word_dictionary(tok, size=20000), "word", n_prompts=10, seed=6)
    pts = ps.points("first")
    runner, calls = Runner(w), []
    real = runner.prefix
    monkeypatch.setattr(runner, "prefix", lambda t: calls.append(len(t)) or real(t))
    points = [0, 1, 2]
    X = WI.harvest(runner, ps.tokens, pts["prompt"], pts["pos"], points, batch_size=3)
    assert calls == [len(tok.encode(wp.POST_PREFIX, prepend_bos=True))]  # once, the whole shared prefix
    hooks = [WI.resid_hook(p, n_layers=2) for p in points]
    for i in (0, 9):
        acts = Runner(w).run(torch.tensor([ps.tokens[i]]), hooks=hooks)
        rows = np.flatnonzero(pts["prompt"] == i)
        for j, hook in enumerate(hooks):
            np.testing.assert_allclose(X[j, rows], acts[hook][0, pts["pos"][rows]].numpy(), atol=1e-4)


# ----------------------------------------------------------------------------- planted truth


def test_planted_head_counts_space_tokens(planted):
    w = load_weights(str(planted.path))
    tok = Tokenizer.for_checkpoint(w.source)
    ids = tok.encode(wp.POST_PREFIX + " token izer help apple dram atisation", prepend_bos=True)
    out = Runner(w).run(torch.tensor([ids]), hooks=["blocks.0.hook_attn_out"])["blocks.0.hook_attn_out"][0]
    along = out.double() @ torch.tensor(planted.direction, dtype=torch.float64)
    c = torch.tensor(np.cumsum([tok.decode([i]).startswith(" ") for i in ids]), dtype=torch.float64)
    torch.testing.assert_close(along, expected_count_output(c, planted), atol=1e-4, rtol=1e-4)


def test_planted_word_index_is_recovered_where_planted(planted_result):
    r, w = planted_result
    assert r.layers == [0, 1] and r.hooks == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    assert not any(n.startswith("h.1.") for n in w.source.reads)
    for lt in ("last", "first"):
        rep = r.schemes["word"].labels[lt]
        base = rep.baselines
        emb, counted = rep.probes
        assert counted.accuracy > 0.97, (lt, counted.accuracy)
        assert counted.balanced_accuracy > 0.95
        assert base["position"].accuracy < 0.8 and base["both"].accuracy < 0.8
        assert rep.balanced.chance < 0.6
        # point 0 holds only the token and its position: no better than the baselines
        assert emb.accuracy < base["both"].accuracy + 0.05
        assert emb.balanced_accuracy < counted.balanced_accuracy - 0.3
        assert rep.gain[1] > 0.25
        # beside the baselines' own features, the embeddings add nothing and the counted stream nearly everything
        assert abs(rep.combined_gain[0]) < 0.05 and rep.combined_gain[1] > 0.25
        tried = [float(c) for c in counted.selection]
        assert counted.C in tried and tried == sorted(r.options["Cs"])[: len(tried)]
        assert counted.selection[f"{counted.C:g}"] == max(counted.selection.values())
        conf = np.array(counted.confusion)
        assert conf.sum() == 200 * 7 and conf.shape == (7, len(rep.positions), 7)
    # the checkpoint's own tokenizer, named without this machine's directories
    assert r.options["tokenizer"].startswith("tokenizer.json, sha256 ") and "/" not in r.options["tokenizer"]
    assert r.checks == []  # published figures are compared only on GPT-2 small's shape
    d = json.loads(r.to_json())
    assert d["kind"] == "word_index" and d["schemes"]["word"]["dataset"]["n_val_points"] == 1400


def test_no_position_balanced_points_is_said_in_words_not_nan(planted):
    r = WI.word_index(load_weights(str(planted.path)), layers=[1], balance_min=10**6, label_tokens=("last",),
                      n_train=300, n_val_prompts=40)
    assert r.schemes["word"].labels["last"].balanced.n_points == 0
    text = "\n".join(WI.summarize(r))
    assert "no position-balanced points" in text and "nan" not in text, text


# ----------------------------------------------------------------------------- bad input


def test_bad_input_library(planted, gpt2_tok, partial_ckpt):
    w = load_weights(str(planted.path))
    d = wp.word_dictionary(gpt2_tok, size=5000)
    few_long = [x for k in (1, 2) for x in d.train[k][:40]] + list(d.train[3][:6])
    with pytest.raises(InvalidInputError, match="only 6 words of 3 tokens"):
        wp.word_dictionary(gpt2_tok, words=few_long)
    with pytest.raises(InvalidInputError, match="N=1"):
        WI.word_index(w, n_units=1, **SMALL)
    with pytest.raises(InvalidInputError, match="layer 3 is out of range.*0..2"):
        WI.word_index(w, layers=[1, 3], **SMALL)
    with pytest.raises(InvalidInputError, match="can reach 132 tokens.*n_ctx=128"):
        WI.word_index(w, prefix=" ".join(["the"] * 110), **SMALL)  # 111 tokens + 7 words of up to 3
    with pytest.raises(InvalidInputError, match="prefix is 201 tokens with BOS.*n_ctx=128"):
        WI.word_index(w, prefix=" ".join(["the"] * 200), **SMALL)
    with pytest.raises(InvalidInputError, match="unknown scheme"):
        WI.word_index(w, schemes=["poem"], **SMALL)
    with pytest.raises(MissingTensorError, match="wte.weight"):
        WI.word_index(load_weights(str(partial_ckpt)), **SMALL)


@pytest.mark.parametrize("args,message", [
    (["--n-units", "1"], "N=1"),
    (["--layers", "0,5"], "layer 5 is out of range"),
    (["--prefix", "word " * 200], "n_ctx=128"),
    (["--dictionary-size", "2000"], "only 14 words of 3 tokens"),
    (["--layers", "a,b"], "comma-separated list of integers"),
    (["--C", "strong"], "C must be"),
    (["--Cs", "0.1,-1"], "candidate Cs must be positive"),
    (["--lengths", ","], "no token lengths"),
])
def test_bad_input_cli(planted, tmp_path, args, message):
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["probe", "-m", str(planted.path), "-o", str(out), *args])
    assert r.exit_code == 2, r.output
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert not out.exists()


# ----------------------------------------------------------------------------- CLI and report


def test_options_declared_once_reach_cli_and_report(planted, tmp_path):
    import dataclasses

    from poslens.analyses.word_index.options import Options
    from poslens.cli.probe import probe_cmd

    params = {p.name: p for p in probe_cmd.params}
    for f in dataclasses.fields(Options):
        assert f.name in params or f.name == "label_tokens", f.name  # --label-token last|first|both
        if f.name in params and f.name not in ("schemes", "prefix"):
            want = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
            assert params[f.name].default == want, f.name
    with pytest.raises(InvalidInputError, match="did you mean 'n_train'"):
        WI.word_index(load_weights(str(planted.path)), n_trian=5)
    out = tmp_path / "o"
    r = CliRunner().invoke(cli, ["probe", "-m", str(planted.path), "-o", str(out), "--layers", "1", "-n", "5",
                                 "--no-bos", "--lengths", "1,2", "--Cs", "0.5,5", "--n-train", "200",
                                 "--n-val-prompts", "20", "--dictionary-size", "3000", "--label-token", "first",
                                 "--json"])
    assert r.exit_code == 0, r.output
    o = json.loads(r.stdout[r.stdout.index("{"):])["options"]
    assert (o["n_units"], o["prepend_bos"], o["lengths"], o["Cs"], o["label_tokens"]) == (
        5, False, [1, 2], [0.5, 5.0], ["first"])


def test_cli_writes_result_and_figures(planted, tmp_path):
    out = tmp_path / "probe"
    r = CliRunner().invoke(cli, ["probe", "-m", str(planted.path), "-o", str(out), "--layers", "0,1",
                                 "--n-train", "700", "--n-val-prompts", "100", "--label-token", "last",
                                 "--schemes", "word,list", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert set(d["schemes"]) == {"word", "list"} and d["options"]["label_tokens"] == ["last"]
    assert d["schemes"]["list"]["labels"]["last"]["probes"][1]["accuracy"] > 0.9
    assert json.loads((out / "result.json").read_text())["kind"] == "word_index"
    for name in ("word_index_key_word_last_L1.png", "word_index_key_word_last_L1.html", "word_index_accuracy_word.png",
                 "word_index_accuracy_list.html", "word_index_per_index_word_last.png", "word_index_schemes.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name


def test_report_stage(planted, tmp_path):
    from poslens.report import build_report
    from poslens.report.stage_word_index import STAGES

    page, (rep,) = build_report([str(planted.path)], tmp_path / "r", stages=STAGES, size="quick", progress=False)
    (o,) = rep.outcomes
    assert o.status == "done", o.reason
    assert o.result["layers"] == [0, 1, 2] and o.figures and page.is_file()
    assert any("baselines position" in s for s in o.summary)
