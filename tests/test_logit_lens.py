"""Logit lens: the last point is the model's output, a model whose blocks write nothing has
the same lens at every layer, greedy generation follows argmax, checkpoints without wte say
why they cannot run it, bad prompts, the CLI on tiny and the report stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from poslens.analyses.geometry import logit_lens as LL
from poslens.cli import cli
from poslens.errors import InvalidInputError, MissingTensorError
from poslens.models import Runner, load_weights
from poslens.testing import random_state_dict, small_config, write_checkpoint


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("lens")
    cfg = small_config(n_layers=2, n_heads=4, d_model=32, n_ctx=24, d_vocab=300)
    sd = random_state_dict(cfg, seed=5, std=0.2)
    full = write_checkpoint(root / "full", cfg, sd)
    # blocks that write nothing: every point holds the same residual stream
    quiet = dict(sd)
    for l in range(cfg.n_layers):
        for k in ("attn.c_proj.weight", "attn.c_proj.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"):
            quiet[f"h.{l}.{k}"] = torch.zeros_like(sd[f"h.{l}.{k}"])
    quiet_p = write_checkpoint(root / "quiet", cfg, quiet)
    nowte = write_checkpoint(root / "nowte", cfg, sd, drop=("wte.weight",))
    return {"full": full, "quiet": quiet_p, "nowte": nowte, "cfg": cfg}


def test_last_point_is_the_model_output(ckpts):
    w = load_weights(ckpts["full"])
    ids = [5, 17, 200, 3, 99, 42, 7]
    r = LL.logit_lens(w, ids, top_k=4, n_generate=0)
    logits = Runner(w).run(torch.tensor([ids]), logits=True)["logits"][0]
    lp = torch.log_softmax(logits, -1)
    ent = -(lp.exp() * lp).sum(-1)
    assert r.entropy[-1] == pytest.approx(ent.tolist(), abs=1e-4)
    assert r.last_entropy[-1] == pytest.approx(float(ent[-1]), abs=1e-4)
    assert r.mean_entropy[-1] == pytest.approx(float(ent.mean()), abs=1e-4)
    assert r.kl_to_final[-1] == pytest.approx(0.0, abs=1e-6) and r.final_rank[-1] == 0
    assert [t.id for t in r.top_k[-1]] == logits[-1].topk(4).indices.tolist()
    assert len(r.points) == 3 and r.points[0] == "embed"
    # entropies are bounded by log(vocab)
    assert max(max(e) for e in r.entropy) <= np.log(300) + 1e-6


def test_blocks_that_write_nothing_give_one_lens(ckpts):
    r = LL.logit_lens(load_weights(ckpts["quiet"]), [1, 2, 3, 4, 5], n_generate=0)
    for e in r.entropy[1:]:
        assert e == pytest.approx(r.entropy[0], abs=1e-5)
    assert r.kl_to_final == pytest.approx([0.0] * 3, abs=1e-6)


def test_greedy_generation_follows_argmax(ckpts):
    w = load_weights(ckpts["full"])
    ids = [10, 11, 12]
    r = LL.logit_lens(w, ids, top_k=3, n_generate=4)
    seq = list(ids)
    runner = Runner(w)
    for step in r.generation.steps:
        logits = runner.run(torch.tensor([seq]), logits=True)["logits"][0, -1]
        assert step.chosen.id == int(logits.argmax())
        assert [c.id for c in step.top_k] == logits.topk(3).indices.tolist()
        assert step.top_k[0].prob >= step.top_k[1].prob
        seq.append(step.chosen.id)
    assert r.generation.ids == seq[3:]
    # the first generated token is the lens's last-layer top-1
    assert r.generation.ids[0] == r.top_k[-1][0].id


def test_bad_input(ckpts):
    w = load_weights(ckpts["full"])
    n_ctx = ckpts["cfg"].n_ctx
    with pytest.raises(InvalidInputError, match="longer than the model's context"):
        LL.logit_lens(w, list(range(n_ctx + 1)), n_generate=0)
    with pytest.raises(InvalidInputError, match="exceeds the model's context"):
        LL.logit_lens(w, list(range(n_ctx - 2)), n_generate=5)
    with pytest.raises(InvalidInputError, match="empty"):
        LL.logit_lens(w, [], n_generate=0)
    with pytest.raises(InvalidInputError, match="top_k"):
        LL.logit_lens(w, [1, 2], top_k=0)
    # float ids were truncated (1.5 read as 1), and two rows read as one prompt
    for ids in ([1.5, 2.0], torch.tensor([[1, 2], [3, 4]]), [True, False]):
        with pytest.raises(InvalidInputError, match="a prompt's token ids are integers, one sequence"):
            LL.logit_lens(w, ids, n_generate=0)
    with pytest.raises(InvalidInputError, match="one sequence"):
        from poslens.analyses.geometry.subspaces import hidden_subspaces

        hidden_subspaces(w, tokens=torch.randint(0, 300, (2, 12)))
    assert LL.logit_lens(w, torch.tensor([[1, 2, 3]]), n_generate=0).top1 == LL.logit_lens(w, [1, 2, 3], n_generate=0).top1


def test_without_wte_it_says_why(ckpts, partial_ckpt):
    with pytest.raises(MissingTensorError, match=r"wte.weight.*logit lens \(unembedding W_U, tied to the token embedding"):
        LL.logit_lens(load_weights(ckpts["nowte"]), [1, 2, 3])
    with pytest.raises(MissingTensorError, match="wte.weight"):
        LL.logit_lens(load_weights(partial_ckpt), LL.SLIDE_PROMPT)


def test_slides_entropies_are_claims_not_measurements(ckpts):
    from dataclasses import replace

    from poslens.claims.dissecting_the_frog.geometry import lens_rows, with_claims

    w = load_weights(ckpts["full"])
    r = LL.logit_lens(w, [1, 2, 3], n_generate=0)
    assert r.checks == [] and with_claims(r, w).checks == []  # not GPT-2 small: nothing is compared
    at = replace(r, last_entropy=r.last_entropy[:-1] + [2.5861], mean_entropy=r.mean_entropy[:-1] + [5.38894])
    assert [c.reproduced for c in lens_rows(at)] == [True, True]  # to four significant digits
    off = replace(at, last_entropy=r.last_entropy[:-1] + [2.5867])
    assert [c.reproduced for c in lens_rows(off)] == [False, True]


def test_cli_lens_on_tiny(tmp_path):
    out = tmp_path / "o"
    res = run("lens", "-o", out, "--top-k", 3, "--generate", 3, "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    tiny = load_weights("tiny").cfg
    assert d["kind"] == "logit_lens" and d["prompt"] == LL.SLIDE_PROMPT
    assert len(d["points"]) == tiny.n_layers + 1 and len(d["top_k"][-1]) == 3
    assert all(isinstance(t["token"], str) for t in d["top_k"][-1])
    assert len(d["generation"]["steps"]) == 3 and d["generation"]["text"]
    assert all(0 <= e <= np.log(tiny.d_vocab) + 1e-6 for e in d["last_entropy"])
    for f in ("result.json", "lens_entropy.png", "lens_entropy.html", "lens_entropy_by_layer.png"):
        assert (out / f).is_file(), f
    res = run("lens", "-o", tmp_path / "z", "--generate", 0, "--n-generate", 0, "--bos", "--json")
    assert res.exit_code == 0, res.output  # 0 tokens to generate is allowed under either spelling
    d = json.loads(res.output)
    assert d["options"]["n_generate"] == 0 and d["options"]["prepend_bos"] is True


@pytest.mark.parametrize("args, words", [
    (("--prompt", ""), "prompt is empty"),
    (("--prompt", "word " * 300), "longer than the model's context"),
    (("--prompt", "@/no/such/file.txt"), "does not exist"),
])
def test_cli_lens_bad_input(tmp_path, args, words):
    res = run("lens", "-o", tmp_path / "never", *args)
    assert res.exit_code == 2, res.output
    err = res.output.strip()
    assert err.startswith("poslens: error:") and words in err and "\n" not in err
    assert not (tmp_path / "never").exists()


def test_cli_lens_partial_checkpoint(partial_ckpt, tmp_path):
    res = run("lens", "-m", partial_ckpt, "-o", tmp_path / "never")
    assert res.exit_code == 2 and "wte.weight" in res.output and "logit lens" in res.output
    assert not (tmp_path / "never").exists()


def test_report_stage_on_tiny(tmp_path):
    from poslens.report import build_report
    from poslens.report.stage_geometry import STAGES

    stages = [s for s in STAGES if s.name == "geometry_lens"]
    page, (rep,) = build_report(["tiny"], tmp_path / "r", stages=stages, size="quick", progress=False)
    o = rep.outcomes[0]
    assert o.status == "done", o.reason
    assert o.result["kind"] == "logit_lens" and len(o.result["generation"]["steps"]) == o.options["n_generate"]
    assert any("greedy continuation" in s for s in o.summary)


def test_a_text_prompt_without_a_tokenizer_uses_the_models_own():
    """As the docstrings call them: logit_lens(w) and hidden_subspaces(w, lengths=...) read
    their default text with the model's tokenizer (they had asked for one)."""
    from poslens.analyses.geometry.subspaces import hidden_subspaces
    from poslens.models.tokenizer import Tokenizer

    w = load_weights("tiny")
    tok = Tokenizer.for_checkpoint(w.source)
    assert LL.logit_lens(w, n_generate=2).to_json() == LL.logit_lens(w, tokenizer=tok, n_generate=2).to_json()
    r = hidden_subspaces(w, lengths={"short": 15})
    assert r.to_json() == hidden_subspaces(w, tokenizer=tok, lengths={"short": 15}).to_json()
    with pytest.raises(InvalidInputError, match="has 1024 tokens but tiny-attn has d_vocab=512"):
        LL.logit_lens(load_weights("tiny-attn"), "The lamp", tok)
