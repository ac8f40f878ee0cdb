"""Positional analyses: attention sinks, the absolute-position probe, rotary frequency usage.

Planted truth (synthetic checkpoints from ``poslens.testing.positional``), invariances of the
rotary geometry, and the real partial GPT-2 small (positional inputs alone).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from poslens import claims as C
from poslens.analyses import position_probe as PP
from poslens.analyses import rotary as R
from poslens.analyses import sinks as S
from poslens.cli import cli
from poslens.errors import InvalidInputError
from poslens.models import Runner, load_weights
from poslens.testing.positional import (
    planted_log_position_checkpoint,
    planted_rotary_checkpoint,
    planted_sink_checkpoint,
)


@pytest.fixture(scope="module")
def planted_sinks(tmp_path_factory):
    return planted_sink_checkpoint(tmp_path_factory.mktemp("sinks") / "m")


@pytest.fixture(scope="module")
def planted_log(tmp_path_factory):
    return planted_log_position_checkpoint(tmp_path_factory.mktemp("logpos") / "m", layer=1, n_layers=3)


# ---- attention sinks -------------------------------------------------------------------


def test_planted_sink_share_is_exactly_the_planted_share(planted_sinks):
    r = S.attention_sinks(Runner(load_weights(str(planted_sinks.path))), S.Options(n_seq=12))
    assert {run.inputs for run in r.runs} == {"random_tokens", "repeated_token", "positional"}
    assert any(s.startswith("text:") and "tokenizer" in s for s in r.skipped_inputs)
    for run in r.runs:
        assert run.sink_share == planted_sinks.share == 3 / 8
        assert run.head_share == 3 / 8
        assert set(run.sink_heads) == set(planted_sinks.names)
        for h in run.heads:
            if h.head in planted_sinks.names:
                assert h.first_attention > 0.99 and h.sink_rate == 1.0
                assert h.key_norm_ratio > 5 and h.qk_cos_first > 0.99  # the planted key bias: the first key
            else:  # zero queries: uniform attention, alpha(0) = H_T / T
                T = run.seq_len
                assert h.first_attention == pytest.approx(sum(1 / (i + 1) for i in range(T)) / T, abs=1e-5)


def test_asking_for_an_input_kind_that_was_not_run_names_the_ones_that_were():
    r = S.attention_sinks("tiny", n_seq=2, seq_len=8, inputs="positional")
    with pytest.raises(InvalidInputError, match=r"no sink figures on 'text' inputs \(not asked for "
                                                r"\(inputs='positional'\); run attention_sinks with inputs='text'\); "
                                                r"this result measured: positional$"):
        r.run("text")
    with pytest.raises(InvalidInputError, match=r"'txt' inputs \(not an input kind \(did you mean 'text'\?\)\)"):
        r.run("txt")


def test_sink_threshold_moves_the_share_only_past_the_planted_values(planted_sinks):
    runner = Runner(load_weights(str(planted_sinks.path)))
    low = S.attention_sinks(runner, S.Options(n_seq=4, epsilon=0.05, inputs="positional"))
    assert low.run("positional").sink_share == 1.0  # uniform heads (0.074) pass 0.05 too
    with pytest.raises(Exception, match="epsilon"):
        S.Options(epsilon=1.5)
    with pytest.raises(Exception, match="unknown input kind"):
        S.Options(inputs="random")


def test_reduce_layer_on_handmade_pattern():
    B, H, P, d = 2, 1, 4, 3
    pattern = torch.tril(torch.ones(P, P))
    pattern = (pattern / pattern.sum(-1, keepdim=True)).expand(B, H, P, P)
    k = torch.ones(B, P, H, d)
    k[:, 0] *= 0.5
    q = torch.ones(B, P, H, d)
    st = S.reduce_layer(pattern, q, k)
    assert torch.allclose(st.first_attention, torch.full((B, H), (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4))
    assert torch.allclose(st.first_key_norm, torch.full((B, H), 0.5 * math.sqrt(3)))
    assert torch.allclose(st.qk_cos_first, torch.ones(B, H)) and torch.allclose(st.qk_cos_other, torch.ones(B, H))
    # alpha(k): each key's mean attention over the queries that see it; the last key is seen by one query
    assert torch.allclose(st.key_alpha[0, 0, -1], torch.tensor(0.25))


def test_a_sliding_window_s_sink_is_averaged_over_the_queries_that_see_it():
    # every query that can see the first key (i < window) puts all its attention there; the others cannot reach it
    P, w = 8, 3
    i, j = torch.arange(P)[:, None], torch.arange(P)[None, :]
    visible = (j <= i) & (i - j < w)
    pattern = torch.where(i < w, (j == 0).float(), visible.float() / visible.sum(-1, keepdim=True))
    q = k = torch.randn(1, P, 1, 4)
    assert S.reduce_layer(pattern[None, None], q, k, window=w).first_attention.item() == pytest.approx(1.0)
    assert S.reduce_layer(pattern[None, None], q, k).first_attention.item() == pytest.approx(w / P)  # the old dilution


def test_sinks_on_tiny_every_input_kind():
    w = load_weights("tiny")
    r = S.attention_sinks(Runner(w), S.Options(n_seq=3))
    assert [run.inputs for run in r.runs] == ["random_tokens", "repeated_token", "text", "positional"]
    for run in r.runs:
        assert run.layers == tuple(range(w.cfg.n_layers)) and 0.0 <= run.sink_share <= 1.0
        assert len(run.heads) == w.cfg.n_layers * w.cfg.n_heads and len(run.key_profile) == 64
    assert r.skipped_inputs == () and r.limits == ""
    assert S.summarize(r)


def test_sinks_on_partial_gpt2_small_use_positional_inputs_alone(partial_ckpt):
    r = S.attention_sinks(Runner(load_weights(str(partial_ckpt))), S.Options())
    assert [run.inputs for run in r.runs] == ["positional"]
    run = r.run("positional")
    assert run.layers == (0,) and run.n_seq == 1
    with pytest.raises(InvalidInputError, match=r"no sink figures on 'text' inputs \(skipped: no layer's attention can run on "
                                                r"token inputs: tensor 'wte.weight' .*\); "
                                                r"this result measured: positional$"):
        r.run("text")  # had been None, and the caller's .sink_share an AttributeError
    assert {s.split(":")[0] for s in r.skipped_inputs} == {"random_tokens", "repeated_token", "text"}
    assert all("wte.weight" in s for s in r.skipped_inputs)
    assert "mlp.c_fc.weight" in r.limits
    # real weights: layer 0 of GPT-2 small on W_pos alone; one head (0.5) keeps a sink
    assert run.sink_heads == ("0.5",) and run.sink_share == pytest.approx(1 / 12)
    kinds = C.model_kind(load_weights(str(partial_ckpt)).cfg, str(partial_ckpt))
    assert "gpt2-small" in kinds
    checks = C.check(__import__("poslens.claims.sinks_gu2024", fromlist=["CLAIMS"]).CLAIMS, r, kinds)
    assert checks and all(c.holds is None for c in checks)  # no token inputs: nothing the study measured


# ---- absolute-position probe -----------------------------------------------------------


def test_probe_error_falls_where_log_position_is_planted(planted_log):
    runner = Runner(load_weights(str(planted_log.path)))
    base = dict(inputs="random_tokens", prepend_bos=True, seq_len=planted_log.n_ctx, n_seq=24)
    r = PP.position_probe(runner, PP.Options(target="log_position", **base))
    by = {p.point: p for p in r.points}
    assert sorted(by) == [0, 1, 2, 3]
    for p in range(planted_log.point):
        assert by[p].relative > 0.9  # only the BOS marker: no position
    for p in range(planted_log.point, 4):
        assert by[p].mae < 0.05  # log(p + 1) read back exactly
    assert r.emerges_at == planted_log.point
    lin = PP.position_probe(runner, PP.Options(target="position", **base))
    assert lin.points[planted_log.point].relative < 0.5 < lin.points[planted_log.point - 1].relative


def test_probe_measure_exact_channel_and_noise():
    g = torch.Generator().manual_seed(0)
    B, P, d = 12, 32, 8
    noise = torch.randn(2, B, P, d, generator=g)
    noise[1, :, :, 0] = torch.arange(P, dtype=torch.float32)
    r = PP.measure(noise, [0, 1], PP.Options(n_bins=4))
    assert r.points[0].relative > 0.9 and r.points[1].mae < 1e-3 and r.best_point == 1
    assert r.points[0].baseline_mae == pytest.approx(sum(abs(p - (P - 1) / 2) for p in range(P)) / P)
    with pytest.raises(Exception, match="3 sequences"):
        PP.measure(noise[:, :2], [0, 1])
    many = PP.measure(noise, [0, 1], PP.Options(n_bins=1000))  # more bins than positions: one per position
    assert many.bin_edges == tuple(range(P + 1))
    assert all(math.isfinite(e) for pp in many.points for e in pp.mae_by_position)


def test_ridge_moments_and_cholesky_refit_match_direct_computation():
    from poslens.analyses.position_probe.measure import _Moments, _ridge_all, _ridge_one

    g = torch.Generator().manual_seed(1)
    X = torch.randn(300, 20, generator=g, dtype=torch.float64) * 3 + 50  # a large mean: the centring must hold
    y = torch.randn(300, generator=g, dtype=torch.float64)
    X[:, 19] = X[:, 18]  # rank-deficient: alpha 0 falls back to the eigen route
    mu, sd, my, G, b = (_Moments.of(X[:100], y[:100]) + _Moments.of(X[100:], y[100:])).standardised()
    Z = (X - X.mean(0)) / X.std(0)
    torch.testing.assert_close(mu, X.mean(0)) and torch.testing.assert_close(sd, X.std(0))
    torch.testing.assert_close(G, Z.T @ Z, rtol=1e-9, atol=1e-8)
    torch.testing.assert_close(b, Z.T @ (y - y.mean()), rtol=1e-9, atol=1e-9)
    for a in (0.0, 1e-3, 10.0):
        one, ref = _ridge_one(G, b, 300, a), _ridge_all(G, b, 300, [a])
        if a > 0:
            torch.testing.assert_close(one, ref, rtol=1e-8, atol=1e-10)
            direct = torch.linalg.solve(Z.T @ Z + a * 300 * torch.eye(20, dtype=torch.float64), Z.T @ (y - y.mean()))
            torch.testing.assert_close(one[0], direct, rtol=1e-7, atol=1e-9)


def test_probe_on_tiny_text_and_partial_gpt2(partial_ckpt):
    w = load_weights("tiny")
    r = PP.position_probe(Runner(w), PP.Options(n_seq=12, seq_len=64))
    assert r.inputs == "text" and [p.point for p in r.points] == list(range(w.cfg.n_layers + 1))
    assert r.best_relative < 0.5  # tiny's learned W_pos makes position readable
    p = PP.position_probe(Runner(load_weights(str(partial_ckpt))), PP.Options(n_seq=4, seq_len=64))
    assert p.inputs == "positional" and [q.point for q in p.points] == [0] and "mlp.c_fc.weight" in p.limits


# ---- rotary ------------------------------------------------------------------------------


def test_rotation_keeps_chunk_norms_and_scores_depend_on_offset_only():
    spec = R.RotarySpec(rotary_dim=8, base=10000.0)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 1, 12, generator=g).expand(1, 20, 1, 12).contiguous()
    k = torch.randn(1, 1, 1, 12, generator=g).expand(1, 20, 1, 12).contiguous()
    qr, kr = R.apply_rotary(q, spec), R.apply_rotary(k, spec)
    assert torch.allclose(R.chunk_norms(qr, spec), R.chunk_norms(q, spec), atol=1e-5)
    assert torch.equal(qr[..., 8:], q[..., 8:])  # partial rotary: the rest is not turned
    s = torch.einsum("bqhd,bkhd->qk", qr, kr)
    assert torch.allclose(s[5, 2], s[15, 12], atol=1e-4) and torch.allclose(s[7, 7], s[0, 0], atol=1e-4)


def test_rotary_measure_on_planted_activations():
    spec = R.RotarySpec(rotary_dim=16, base=10000.0)
    B, P, H, dh = 2, 10, 3, 16
    q = torch.zeros(B, P, H, dh)
    k = torch.zeros(B, P, H, dh)
    q[..., 0, 0], k[..., 0, 8] = 3.0, 2.0  # head 0: pair 0 only (dims 0 and 8), the highest frequency
    q[..., 1, 7], k[..., 1, 15] = 1.0, 1.0  # head 1: pair 7 only, the lowest
    q[..., 2, :], k[..., 2, :] = 1.0, 1.0  # head 2: every pair alike
    acts = {"blocks.0.attn.hook_q": q, "blocks.0.attn.hook_k": k}
    r = R.measure(acts, [0], spec, R.Options(high_frac=0.125, low_frac=0.25))
    assert r.high_pairs == (0,) and r.low_pairs == (6, 7)
    assert r.positional_ranking[0] == "0.0" and r.semantic_ranking[0] == "0.1"
    assert r.positional_heads == ("0.0",) and r.semantic_heads == ("0.1",)
    heads = {h.head: h for h in r.heads}
    assert heads["0.0"].q_norm[0] == pytest.approx(3.0) and heads["0.0"].k_norm[0] == pytest.approx(2.0)
    assert heads["0.2"].usage == pytest.approx((1 / 8,) * 8) and heads["0.0"].peak_pair == 0
    assert r.frequencies[0] == 1.0 and r.wavelengths[0] == pytest.approx(2 * math.pi)
    # low pairs carry 1 (head 1) + 1/4 (head 2) + 0 (head 0) of 3 heads' usage, against a uniform 2/8
    assert r.low_preference == pytest.approx((1 + 0.25) / 3 / 0.25)
    from poslens.claims import rotary_barbero2024

    (check,) = C.check(rotary_barbero2024.CLAIMS, r, ("any", "rotary"))
    assert check.ours == pytest.approx(r.low_preference) and check.holds


def test_low_pair_edits_zero_both_dims_of_each_pair():
    spec = R.RotarySpec(rotary_dim=8, base=10000.0)
    edits = R.low_pair_edits(spec, (2, 3), n_layers=1)
    assert set(edits) == {"blocks.0.attn.hook_q", "blocks.0.attn.hook_k"}
    x = torch.ones(1, 2, 1, 10)
    y = edits["blocks.0.attn.hook_q"](x, None)
    assert y[0, 0, 0].tolist() == [1, 1, 0, 0, 1, 1, 0, 0, 1, 1]


@pytest.fixture(scope="module")
def planted_rotary(tmp_path_factory):
    pytest.importorskip("transformers")
    return planted_rotary_checkpoint(tmp_path_factory.mktemp("rotary") / "m", head=2)


def test_head_on_highest_frequency_ranks_first_and_attends_diagonally(planted_rotary):
    runner = Runner(load_weights(str(planted_rotary.path)))
    assert runner.cfg.positional == "rotary"
    tokens = torch.randint(0, runner.cfg.d_vocab, (3, 40), generator=torch.Generator().manual_seed(0))
    pattern = runner.run(tokens, hooks=["blocks.0.attn.hook_pattern"])["blocks.0.attn.hook_pattern"]
    diag = pattern.diagonal(dim1=-2, dim2=-1).mean((0, 2))
    assert diag[planted_rotary.head] > 0.99 and max(d for h, d in enumerate(diag) if h != planted_rotary.head) < 0.5
    r = R.rotary_usage(runner, R.Options(n_seq=3, seq_len=40, ablate=True))
    assert r.positional_ranking[0] == planted_rotary.name and r.positional_heads == (planted_rotary.name,)
    top = next(h for h in r.heads if h.head == planted_rotary.name)
    assert top.high_share > 0.999 and top.peak_pair == 0
    assert r.ablation.pairs_removed == (6, 7) and math.isfinite(r.ablation.delta)
    # the planted head never reads the lowest pairs, so removing them cannot move its pattern
    edits = R.low_pair_edits(R.rotary_spec(runner.cfg), (6, 7), runner.cfg.n_layers)
    ablated = runner.run(tokens, hooks=["blocks.0.attn.hook_pattern"], edits=edits)["blocks.0.attn.hook_pattern"]
    assert torch.allclose(ablated[:, planted_rotary.head], pattern[:, planted_rotary.head], atol=1e-5)


@pytest.mark.parametrize("family", ["gpt_neox", "llama"])
def test_apply_rotary_matches_the_runners_scores(tmp_path, family):
    """Our rotation of pre-rotation hook_q / hook_k reproduces the Runner's attention scores (partial rotary too)."""
    transformers = pytest.importorskip("transformers")
    if family == "gpt_neox":
        cfg = transformers.GPTNeoXConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                         max_position_embeddings=32, vocab_size=50, rotary_pct=0.25, rotary_emb_base=500)
    else:
        cfg = transformers.LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                       intermediate_size=32, max_position_embeddings=32, vocab_size=50)
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / family)
    runner = Runner(load_weights(str(tmp_path / family)))
    spec = R.rotary_spec(runner.cfg)
    assert spec.rotary_dim == (4 if family == "gpt_neox" else 8)
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(0))
    acts = runner.run(tokens, hooks=["blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_attn_scores"])
    q, k = R.apply_rotary(acts["blocks.0.attn.hook_q"], spec), R.apply_rotary(acts["blocks.0.attn.hook_k"], spec)
    if k.shape[2] != q.shape[2]:
        k = k.repeat_interleave(q.shape[2] // k.shape[2], dim=2)
    ours = torch.einsum("bqhd,bkhd->bhqk", q, k) * runner.cfg.attention_scale(0)
    theirs = acts["blocks.0.attn.hook_attn_scores"]
    mask = torch.isfinite(theirs)
    assert torch.allclose(ours[mask], theirs[mask], atol=1e-4)


FAMILY_CONFIGS = {
    "gpt_neo": ("GPTNeoConfig", dict(hidden_size=32, num_layers=2, num_heads=4, max_position_embeddings=32, vocab_size=60,
                                     attention_types=[[["global", "local"], 1]], window_size=4)),
    "opt": ("OPTConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64,
                              max_position_embeddings=32, vocab_size=60, word_embed_proj_dim=32)),
    "gpt_neox": ("GPTNeoXConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                       max_position_embeddings=32, vocab_size=60, rotary_pct=0.25)),
    "mistral": ("MistralConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      intermediate_size=48, max_position_embeddings=32, vocab_size=60, sliding_window=5)),
}


@pytest.mark.parametrize("family", list(FAMILY_CONFIGS))
def test_sinks_and_probe_run_on_every_family(tmp_path, family):
    transformers = pytest.importorskip("transformers")
    cls, kw = FAMILY_CONFIGS[family]
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(getattr(transformers, cls)(**kw)).save_pretrained(tmp_path / family)
    runner = Runner(load_weights(str(tmp_path / family)))
    r = S.attention_sinks(runner, S.Options(n_seq=3, seq_len=16))
    learned = runner.cfg.positional == "learned"
    assert [x.inputs for x in r.runs] == ["random_tokens", "repeated_token"] + (["positional"] if learned else [])
    for run in r.runs:
        assert run.layers == (0, 1) and len(run.heads) == 8 and 0 <= run.sink_share <= 1
    p = PP.position_probe(runner, PP.Options(inputs="random_tokens", n_seq=6, seq_len=16))
    assert [x.point for x in p.points] == [0, 1, 2] and all(math.isfinite(x.mae) for x in p.points)
    if learned:  # positional inputs alone: W_pos's rows, read back by the probe
        pos = PP.position_probe(runner, PP.Options(inputs="positional", n_seq=4, seq_len=16))
        assert pos.points[0].mae < 0.5
        with pytest.raises(R.NotApplicableError):
            R.rotary_usage(runner)
    else:
        assert len(R.rotary_usage(runner, R.Options(n_seq=2, seq_len=16)).heads) == 8


def test_sinks_on_a_rotary_model_skip_positional_inputs(planted_rotary):
    r = S.attention_sinks(Runner(load_weights(str(planted_rotary.path))), S.Options(n_seq=4))
    assert [run.inputs for run in r.runs] == ["random_tokens", "repeated_token"]
    assert any(s.startswith("positional:") and "no W_pos" in s for s in r.skipped_inputs)


def test_rotary_is_not_applicable_to_learned_positions():
    w = load_weights("tiny")
    assert "learned positional embeddings" in R.not_rotary_reason(w.cfg, w.label)
    with pytest.raises(R.NotApplicableError, match="does not apply"):
        R.rotary_usage(Runner(w))


# ---- claims, CLI, report ----------------------------------------------------------------


def test_claim_fields_read_the_result():
    r = S.attention_sinks(Runner(load_weights("tiny")), S.Options(n_seq=4, inputs="text,random_tokens"))
    from poslens.claims import sinks_gu2024

    kinds = C.model_kind(load_weights("tiny").cfg, "tiny")
    assert kinds == ("any", "gpt2")
    checks = {c.claim.id: c for c in C.check(sinks_gu2024.CLAIMS, r, kinds)}
    assert checks["sink_exists_text"].ours == r.run("text").sink_share
    assert checks["sink_exists_repeated_token"].holds is None  # not run
    assert checks["first_key_angle"].ours == pytest.approx(r.run("text").qk_cos_gap)
    assert len(C.lines(checks.values())) == len(checks)


def test_cli_commands(tmp_path, planted_sinks):
    res = CliRunner().invoke(cli, ["sinks", "-m", str(planted_sinks.path), "-o", str(tmp_path / "s"), "--n-seq", "4"])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "s" / "result.json").read_text())
    assert out["kind"] == "sinks" and out["runs"][0]["sink_share"] == 0.375
    assert (tmp_path / "s" / "sinks_first_attention.png").is_file()
    res = CliRunner().invoke(cli, ["rotary", "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and "does not apply" in res.output and not (tmp_path / "r" / "result.json").exists()
    res = CliRunner().invoke(cli, ["position-probe", "--target", "nonsense", "-o", str(tmp_path / "p")])
    assert res.exit_code == 2 and "'nonsense' is not one of 'position', 'log_position'" in res.output


def test_report_stages_on_tiny_and_partial(tmp_path, partial_ckpt):
    from poslens.report.orchestrate import run_model
    from poslens.report.stage_positional import STAGES

    rep = run_model("tiny", tmp_path / "tiny", STAGES, size="quick", progress=False, fail_fast=True)
    st = {o.name: o for o in rep.outcomes}
    assert st["sinks"].status == "done" and st["position_probe"].status == "done"
    assert st["rotary"].status == "skipped" and "not applicable" in st["rotary"].reason
    assert any("Gu et al." in line for line in st["sinks"].summary) and st["sinks"].figures
    sinks_only = [s for s in STAGES if s.name == "sinks"]
    rep = run_model(str(partial_ckpt), tmp_path / "gpt2", sinks_only, size="quick", progress=False, fail_fast=True)
    out = rep.outcomes[0]
    assert out.status == "done" and out.result["runs"][0]["inputs"] == "positional"
    assert any("not measured: random_tokens" in line for line in out.summary)


def test_positional_analyses_take_keyword_options_and_weights_like_the_others():
    from poslens.errors import InvalidInputError

    w = load_weights("tiny")
    a = S.attention_sinks(Runner(w), S.Options(n_seq=3, seq_len=16, epsilon=0.5))
    assert S.attention_sinks(w, n_seq=3, seq_len=16, epsilon=0.5).to_json() == a.to_json()
    assert S.attention_sinks(Runner(w), S.Options(n_seq=9), n_seq=3, seq_len=16, epsilon=0.5).to_json() == a.to_json()
    p = PP.position_probe(Runner(w), PP.Options(n_seq=6, seq_len=16, inputs="random_tokens"))
    assert PP.position_probe(w, n_seq=6, seq_len=16, inputs="random_tokens").to_json() == p.to_json()
    with pytest.raises(InvalidInputError, match="attention_sinks has no option 'eps'"):
        S.attention_sinks(w, eps=0.5)
    with pytest.raises(InvalidInputError, match="position_probe's options must be"):
        PP.position_probe(w, {"n_seq": 4})
    for n in (0, -1, 2):  # 0 and -1 had failed in torch.cat / torch.randint, after a forward pass
        with pytest.raises(InvalidInputError, match=rf"^n_seq must lie in \[3, inf\); got {n}$"):
            PP.position_probe(w, n_seq=n)
    with pytest.raises(InvalidInputError, match="rotary_usage has no option 'n_seqs'"):
        R.rotary_usage(w, n_seqs=2)
    with pytest.raises(InvalidInputError, match="takes a Runner, the model's Weights, a model name"):
        S.attention_sinks(42)


def test_with_published_refuses_a_result_it_has_no_study_for_in_words():
    from poslens.claims.attach import with_published
    from poslens.errors import InvalidInputError

    w = load_weights("tiny")
    with pytest.raises(InvalidInputError, match="no source study for a SinkResult.*poslens.claims.check"):
        with_published(S.attention_sinks(w, n_seq=2, seq_len=8), w)  # had been a bare ValueError


def test_a_sequence_length_past_the_context_is_recorded_as_the_length_run():
    w = load_weights("tiny")  # n_ctx 256
    r = S.attention_sinks(Runner(w), S.Options(inputs="positional", seq_len=300))
    assert r.options["seq_len"] == 256 and r.runs[0].seq_len == 256
    p = PP.position_probe(Runner(w), PP.Options(inputs="positional", seq_len=300, n_seq=4))
    assert p.options["seq_len"] == 256
