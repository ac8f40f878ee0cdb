"""Duplicate-token neurons: PVO planted truth, LayerNorm-scale approximations,
the exact per-head decomposition and the error of the seed's approximations, top
examples, the partial checkpoint, bad input, the CLI, the report stages and `tiny`.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from poslens.analyses.neurons import (
    decompose_neuron,
    duplicate_neurons,
    first_layers,
    grid_shape,
    layernorm_scale_study,
    linear_fit,
    ln1_multiplier_curve,
    pvo_matrix,
    top_activating_examples,
)
from poslens.cli import cli
from poslens.errors import InvalidInputError, MissingTensorError
from poslens.models import load_weights
from poslens.models import processing as P
from poslens.models.runner import Runner
from poslens.testing.duplicate import planted_duplicate_checkpoint

SLOPE = -0.05


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    # The seed's model of head 0.5: uniform over the current token and its earlier copies.
    return planted_duplicate_checkpoint(tmp_path_factory.mktemp("dupn") / "uniform", rate=0.0, self_penalty=0.0,
                                        head=1, neuron=11, pvo_slope=SLOPE)


@pytest.fixture(scope="module")
def words():
    rng = np.random.default_rng(0)
    return " ".join(f"w{i}" for i in rng.integers(1, 25, size=62))


@pytest.fixture(scope="module")
def result(planted, words):
    return duplicate_neurons(load_weights(str(planted.path)), head=(0, 1), threshold=1.0, text=words, k_examples=5)


# ---------------------------------------------------------------------------- PVO


def test_planted_neuron_is_the_only_one_with_its_slope(planted, words):
    r = duplicate_neurons(load_weights(str(planted.path)), head=(0, 1), threshold=1.0, mlp_scale=1.0, text=words,
                          k_examples=0)
    assert r.selected == [planted.neuron] and r.neuron == planted.neuron
    norms = np.array(r.pvo_norms)
    assert np.delete(norms, planted.neuron).max() < 1e-4 * norms[planted.neuron]
    f = r.fits[str(planted.neuron)]
    assert f.slope == pytest.approx(SLOPE, rel=1e-3) and f.r2 > 0.9999 and abs(f.zero_crossing) < 0.5
    # |PVO| is the norm over every position of the raw product: |slope| * sqrt(sum i^2) (times sqrt(1 + eps))
    n_ctx = load_weights(str(planted.path)).cfg.n_ctx
    assert norms[planted.neuron] == pytest.approx(abs(SLOPE) * math.sqrt(sum(i * i for i in range(n_ctx))), rel=1e-4)
    assert r.options["ln_scale"] == "approx" and r.processing[:2] == ("fold_layer_norm", "center_writing_weights")
    # the default averaging start adapts to this short context; a start given in the second half is kept
    assert r.combined_positional.from_position == n_ctx // 2
    given = duplicate_neurons(load_weights(str(planted.path)), head=(0, 1), threshold=1.0, mlp_scale=1.0, text=words,
                              k_examples=0, combined_from=n_ctx - 10)
    assert given.combined_positional.from_position == n_ctx - 10
    assert given.combined_positional.mean_from == pytest.approx(float(np.mean(given.combined_positional.curve[n_ctx - 10:])))


def test_grid_layout():
    assert grid_shape(3072) == (48, 64) and grid_shape(512) == (16, 32) and grid_shape(13) == (1, 13)
    with pytest.raises(InvalidInputError):
        grid_shape(0)


def test_grid_is_row_major_over_all_neurons(result):
    rows, cols = result.grid_shape
    assert rows * cols == result.d_mlp == len(result.pvo_norms)
    for i in (0, 7, result.d_mlp - 1):
        assert result.grid[i // cols][i % cols] == result.pvo_norms[i]


def test_pvo_matrix_by_hand(small_ckpt):
    w = load_weights(str(small_ckpt))
    got = pvo_matrix(w, 1, 2)
    want = w.W_pos.double() @ w.get("blocks.1.attn.W_V")[2].double() @ w.get("blocks.1.attn.W_O")[2].double() \
        @ w.get("blocks.1.mlp.W_in").double()
    torch.testing.assert_close(got, want)


def test_linear_fit():
    f = linear_fit(3.0 - 0.5 * np.arange(10.0))
    assert f["slope"] == pytest.approx(-0.5) and f["zero_crossing"] == pytest.approx(6.0) and f["r2"] == pytest.approx(1)
    assert linear_fit([1.0])["slope"] is None


# ---------------------------------------------------------------------------- LayerNorm scale


def test_exact_layernorm_multiplier_matches_the_model(small_ckpt):
    w = load_weights(str(small_ckpt))
    cfg = w.cfg
    # every token at every position: token t fills row t
    toks = torch.arange(cfg.d_vocab)[:, None].expand(-1, cfg.n_ctx)
    scale = Runner(w).run(toks, hooks=["blocks.0.ln1.hook_scale"])["blocks.0.ln1.hook_scale"][..., 0].double()
    curve = ln1_multiplier_curve(w, "exact-mean", n_tokens=cfg.d_vocab)
    torch.testing.assert_close(curve, (1 / scale).mean(0), rtol=1e-5, atol=0)
    # the seed's approximation, by hand over the same (token, position) grid
    study = layernorm_scale_study(w, n_tokens=cfg.d_vocab)
    E, Pm = w.W_E.double(), w.W_pos.double()
    approx = math.sqrt(cfg.d_model) / torch.sqrt((E**2).sum(-1)[:, None] + (Pm**2).sum(-1)[None, :])
    rel = approx * scale - 1
    assert study.approx_error["mean_abs"] == pytest.approx(float(rel.abs().mean()), rel=1e-4)
    assert study.approx_error["max_abs"] == pytest.approx(float(rel.abs().max()), rel=1e-4)
    c = float(Pm.norm(dim=-1)[cfg.n_ctx // 2:].mean())  # pos_norm_from 100 is clipped to n_ctx // 2
    assert study.pos_norm_mean == pytest.approx(c) and study.pos_norm_from == cfg.n_ctx // 2
    cos = (E @ Pm.T) / (E.norm(dim=-1)[:, None] * Pm.norm(dim=-1)[None, :])
    assert study.cos_abs_mean == pytest.approx(float(cos.abs().mean()), rel=1e-6)
    assert torch.equal(ln1_multiplier_curve(w, "none"), torch.ones(cfg.n_ctx, dtype=torch.float64))


def test_partial_gpt2_positional_norm_and_missing_tensors(partial_ckpt):
    w = load_weights(str(partial_ckpt))
    study = layernorm_scale_study(w)
    # The seed: "for i > 100, |W_pos[i]| is about 3.35"
    assert study.pos_norm_from == 100 and abs(study.pos_norm_mean - 3.35) / 3.35 < 0.03
    assert "wte.weight" in study.note and study.approx_error is None
    with pytest.raises(MissingTensorError, match=r"h\.0\.mlp\.c_fc\.weight"):
        duplicate_neurons(w, head=(0, 5))
    with pytest.raises(MissingTensorError, match="wte.weight"):
        ln1_multiplier_curve(w, "approx")


# ---------------------------------------------------------------------------- decomposition


@pytest.mark.parametrize("layer", [0, 1])
def test_decomposition_adds_up_to_the_model(small_ckpt, layer):
    w = load_weights(str(small_ckpt))
    toks = torch.randint(0, w.cfg.d_vocab, (40,), generator=torch.Generator().manual_seed(layer))
    toks[20:30] = toks[2:12]  # some repeats
    wd = P.center_writing_weights(P.fold_layer_norm(first_layers(w, layer + 1)))
    d = decompose_neuron(wd, (layer, 2), 17, toks)
    assert d.reconstruction_error < 1e-9
    plain = Runner(w).run(toks[None], hooks=[f"blocks.{layer}.mlp.hook_pre"])[f"blocks.{layer}.mlp.hook_pre"][0, :, 17]
    np.testing.assert_allclose(d.sum, plain.numpy(), atol=1e-4)  # unprocessed float32 model
    total = np.sum([v for v in d.components.values()], axis=0)
    np.testing.assert_allclose(total, d.measured, atol=1e-9)
    for name in (f"head {layer}.0", f"head {layer}.3"):
        np.testing.assert_allclose(d.positional[name] + np.array(d.non_positional[name]) + d.value_bias[name],
                                   d.components[name], atol=1e-12)
    assert ("direct W_E" in d.components) == (layer == 0)


def test_seed_approximations_and_their_errors(planted, result):
    d = result.decomposition
    eps = load_weights(str(planted.path)).cfg.eps
    ap = d.approximations
    dup = ap.per_head["0.1"]
    assert dup.role == "duplicate"
    # The planted head attends exactly uniformly over the copies: the seed's rule is exact
    # up to the e^-14 attention that leaks to other tokens.
    assert dup.error_attention_rule.rms < 1e-4 * dup.error_attention_rule.exact_std
    # error fields are what they say: recompute the total's from the curves the result carries
    tp = ap.total_positional
    e = np.array(tp.seed) - np.array(tp.exact)
    assert tp.error_seed.rms == pytest.approx(float(np.sqrt(np.mean(e**2))))
    assert tp.error_seed.max_abs == pytest.approx(float(np.abs(e).max()))
    # constant MLP LayerNorm scale, by hand from the per-position scales
    ms = d.mlp_scale
    s2, meas, b = np.array(ms.by_position), np.array(d.measured), d.components["neuron bias b_in"][0]
    const = (meas - b) * s2 / ms.used + b
    assert ms.constant_scale_error.rms == pytest.approx(float(np.sqrt(np.mean((const - meas) ** 2))))
    assert ms.used == pytest.approx(float(np.mean(s2[1:])))  # BOS left out of the mean
    # predicted extra = slope * (mean copy position - q) / s_bar, for every repeated token
    ex = d.extra_vs_distance
    toks = d.tokens
    for q, pred in zip(ex.positions, ex.predicted):
        cps = [k for k in range(q + 1) if toks[k] == toks[q]]
        want = SLOPE * math.sqrt(1 + eps) * (np.mean(cps) - q) / ms.used
        assert pred == pytest.approx(want, rel=1e-5, abs=1e-9)  # float32 weights
    assert ex.n > 10 and ex.correlation > 0.999
    assert ex.rms_error < 0.05 * np.std(ex.measured)
    assert ex.fit_measured["slope"] > 0  # decreasing PVO: copies far back raise the neuron


def test_no_repeats_gives_an_empty_extra_with_a_reason(planted):
    r = duplicate_neurons(load_weights(str(planted.path)), head=(0, 1), threshold=1.0, text="w1 w2 w3 w4 w5",
                          k_examples=0)
    assert r.decomposition.extra_vs_distance.n == 0
    assert "earlier copy" in r.decomposition.extra_vs_distance.reason


# ---------------------------------------------------------------------------- top examples


def test_top_examples_are_the_largest_activations(planted, tmp_path):
    w = load_weights(str(planted.path))
    rng = np.random.default_rng(2)
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(" ".join(f"w{i}" for i in rng.integers(1, 30, 70)) for _ in range(8)))
    r = duplicate_neurons(w, head=(0, 1), threshold=1.0, corpus=corpus, n_seq=6, seq_len=48, k_examples=6)
    ex = r.top_examples
    assert len(ex) == 6 and r.top_examples_summary.k == 6
    acts = [e.activation for e in ex]
    assert acts == sorted(acts, reverse=True)
    from poslens.data.sequences import corpus_sequences
    from poslens.models.tokenizer import Tokenizer

    tok = Tokenizer.for_checkpoint(w.source)
    windows = corpus_sequences(corpus, tok, 48, 6, seed=0, prepend_bos=True)
    post = Runner(w).run(windows, hooks=["blocks.0.mlp.hook_post"])["blocks.0.mlp.hook_post"][..., planted.neuron]
    for e in ex:
        assert e.activation == pytest.approx(float(post[e.sequence, e.position]), abs=1e-5)
        assert e.activations[e.center] == e.activation
    best = post[:, 1:].max()  # position 0 is BOS, left out
    assert acts[0] == pytest.approx(float(best), abs=1e-5)
    for a in ex:
        for b in ex:
            if a is not b and a.sequence == b.sequence:
                assert abs(a.position - b.position) >= 24
    page = (tmp_path / "figs")
    from poslens.viz.duplicate import neuron_figures

    paths = neuron_figures(r, page)
    html = (page / "top_examples.html").read_text()
    assert ex[0].token in html and "<table>" in html
    # the strongest activation is fully shaded, whether or not the neuron's top activations are positive
    assert "rgba(255,80,0,1.000)" in html
    assert ("all are &lt;= 0" in html) == (max(acts) <= 0)
    assert {p.name for p in paths} >= {"pvo_norm_grid.png", "pvo_curves.png", "neuron_decomposition.png",
                                       "neuron_extra_vs_distance.png", "top_examples.html"}


def test_top_activating_examples_skip_ignored_tokens(small_ckpt):
    w = load_weights(str(small_ckpt))
    toks = torch.randint(1, 100, (3, 30), generator=torch.Generator().manual_seed(0))
    toks[:, 0] = 0
    ex, summary = top_activating_examples(Runner(w), toks, 0, 5, k=50, before=4, ignore=(0,))
    assert all(e.position > 0 for e in ex) and summary.n_positions == 87
    assert 0 < len(ex) <= 50


# ---------------------------------------------------------------------------- bad input


def test_bad_input(planted, partial_ckpt):
    w = load_weights(str(planted.path))
    d_mlp = w.cfg.d_mlp
    with pytest.raises(InvalidInputError, match=f"neuron {d_mlp} does not exist"):
        duplicate_neurons(w, head=(0, 1), neuron=d_mlp)
    with pytest.raises(InvalidInputError, match="head 0.4 does not exist"):
        duplicate_neurons(w, head=(0, 4))
    with pytest.raises(InvalidInputError, match="at least two"):
        duplicate_neurons(w, head=(0, 1), text="w3")
    with pytest.raises(InvalidInputError, match="ln_scale must be one of approx, approx-const, exact-mean, none; got 'exact'"):
        duplicate_neurons(w, head=(0, 1), ln_scale="exact")
    with pytest.raises(InvalidInputError, match="layer 0"):
        duplicate_neurons(w, head=(0, 1), uniform_heads=[(1, 0)])



def test_the_neuron_functions_refuse_what_the_model_lacks_in_one_line(planted):
    # each failed deep in an index (IndexError) or on a missing attribute; duplicate_neurons checked, they did not
    w = load_weights(str(planted.path))
    toks = torch.tensor([[1, 2, 3, 1, 2, 3]])
    d_mlp, H = w.cfg.d_mlp, w.cfg.n_heads
    for call, message in [
        (lambda: decompose_neuron(w, (0, 1), d_mlp, toks), f"neuron {d_mlp} does not exist"),
        (lambda: decompose_neuron(w, (0, H), 0, toks), f"head 0.{H} does not exist"),
        (lambda: decompose_neuron(w, (0, 1), 0, toks, uniform_heads=[H]), f"head 0.{H} does not exist"),
        (lambda: top_activating_examples(Runner(w), toks, 0, d_mlp), f"neuron {d_mlp} does not exist"),
        (lambda: pvo_matrix(w, 0, H), f"head 0.{H} does not exist"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            call()
    assert decompose_neuron(str(planted.path), (0, 1), 0, toks).neuron == 0  # a directory, as the analyses take
    assert len(top_activating_examples(str(planted.path), toks, 0, 0, k=1)[0]) == 1


def test_an_attention_only_model_has_no_neuron_to_read_the_head(planted):
    """All-zero MLPs (poslens train --attn-only): the analysis says it does not apply instead of fitting zeros."""
    from safetensors.torch import load_file

    from poslens.errors import NotApplicableError
    from poslens.models.weights import Weights

    w = load_weights(str(planted.path))
    sd = {k: (torch.zeros_like(v) if ".mlp." in k else v) for k, v in load_file(str(planted.path / "model.safetensors")).items()}
    zero = Weights.from_state_dict(sd, w.cfg, label="attn-only")
    with pytest.raises(NotApplicableError, match="layer 0's MLP of attn-only is all zero"):
        duplicate_neurons(zero, head=(0, 1))


@pytest.mark.parametrize("args, message", [
    (["--neuron", "99999"], "neuron 99999 does not exist"),
    (["--head", "0.9"], "head 0.9 does not exist"),
    (["--head", "0.1,0.0"], "one head"),
    (["--text", "w3"], "at least two"),
    (["--mlp-scale", "0"], "positive"),
])
def test_cli_bad_input_exits_2(args, message, planted, tmp_path):
    out = tmp_path / "o"
    res = CliRunner().invoke(cli, ["dup-neurons", "-m", str(planted.path), "-o", str(out), *args])
    assert res.exit_code == 2, res.output
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output and not out.exists()


def test_cli_missing_mlp_names_the_tensor(partial_ckpt, tmp_path):
    res = CliRunner().invoke(cli, ["dup-neurons", "-m", str(partial_ckpt), "--head", "0.5", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "h.0.mlp.c_fc.weight" in res.stderr and not (tmp_path / "o").exists()


def test_cli_json(planted, words, tmp_path):
    out = tmp_path / "o"
    res = CliRunner().invoke(cli, ["dup-neurons", "-m", str(planted.path), "-o", str(out), "--head", "0.1",
                                   "--threshold", "1", "--text", words, "--k-examples", "3", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["kind"] == "dup_neurons" and d["head"] == "0.1" and d["neuron"] == 11 and d["selected"] == [11]
    assert (out / "result.json").is_file() and (out / "pvo_norm_grid.html").is_file()


# ---------------------------------------------------------------------------- report and tiny


def test_report_stages(planted, partial_ckpt, tmp_path):
    from poslens.report import build_report
    from poslens.report.stage_duplicate import STAGES

    _, (rep,) = build_report([str(planted.path)], tmp_path / "r", stages=STAGES, size="quick", progress=False)
    st = {o.name: o for o in rep.outcomes}
    assert st["dup_heads"].status == "done" and st["dup_neurons"].status == "done"
    assert st["dup_heads"].result["ranking"][0] == "0.1" and st["dup_neurons"].result["head"] == "0.1"
    assert st["dup_neurons"].figures and st["dup_heads"].summary
    # the source study is "the study" to a reader; "seed" reads as the random seed
    assert not [s for s in st["dup_neurons"].summary if "seed" in s], st["dup_neurons"].summary
    _, (rep,) = build_report([str(partial_ckpt)], tmp_path / "p", stages=STAGES, size="quick", progress=False)
    st = {o.name: o for o in rep.outcomes}
    assert st["dup_heads"].status == "done" and st["dup_heads"].result["positional"]["uniform"] == ["0.5", "0.11"]
    assert not [s for s in st["dup_heads"].summary if "seed" in s], st["dup_heads"].summary
    assert st["dup_neurons"].status == "skipped" and "wte.weight" in st["dup_neurons"].reason


def test_pipeline_runs_end_to_end_on_tiny(tmp_path):
    from poslens.models.registry import EMBEDDED_DIR

    src = EMBEDDED_DIR / "tiny"
    if not (src / "config.json").is_file():
        pytest.skip("no snapshot of the embedded model tiny is installed yet")
    snap = shutil.copytree(src, tmp_path / "tiny")  # the lead replaces snapshots while we run
    w = load_weights(str(snap))
    from poslens.analyses.heads import duplicate_heads
    from poslens.viz.duplicate import dup_heads_figures as head_figures
    from poslens.viz.duplicate import neuron_figures

    h = duplicate_heads(w, n_seq=4, seq_len=64, n_text_seq=2, text=None)
    assert len(h.heads) == w.cfg.n_layers * w.cfg.n_heads and h.positional.heads
    n = duplicate_neurons(w, n_seq=2, seq_len=64, k_examples=4, n_scale_tokens=256)
    assert n.decomposition.reconstruction_error < 1e-6 and n.grid_shape[0] * n.grid_shape[1] == w.cfg.d_mlp
    assert n.top_examples and n.decomposition.text_source == "poslens sample text"
    assert head_figures(h, tmp_path / "h") and neuron_figures(n, tmp_path / "n")
    json.loads(n.to_json())


def test_top_examples_page_shades_a_neuron_whose_top_activations_are_negative(tmp_path):
    """A neuron that never fires positive still has a strongest activation; the page shades within the
    shown range (the old 'activation / max' left every token blank) and says so."""
    from types import SimpleNamespace

    from poslens.analyses.neurons.examples import TopExample
    from poslens.viz.duplicate import top_examples_html

    ex = [TopExample(sequence=0, position=5, activation=-0.02, token=" a", tokens=[" x", " a", " y"],
                     activations=[-0.30, -0.02, -0.16], center=1, n_earlier_copies=0, mean_copy_distance=None,
                     nearest_copy_distance=None)]
    r = SimpleNamespace(top_examples=ex, top_examples_summary=None, model="m", layer=0, neuron=3)
    page = top_examples_html(r, tmp_path / "p.html").read_text()
    assert "rgba(255,80,0,1.000)" in page and "rgba(255,80,0,0.000)" in page and "rgba(255,80,0,0.500)" in page
    assert "all are &lt;= 0" in page
