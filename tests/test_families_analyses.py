"""Every analysis on every family: one small random checkpoint each of GPT-Neo (local
attention), OPT (position offset, project_in/out), GPT-NeoX (partial rotary, parallel blocks,
untied unembedding) and Llama (grouped-query attention, SwiGLU, RMSNorm), built once per
session from transformers configs. Each analysis runs where its premise holds and says
"not applicable", with the reason, where it does not (a W_pos analysis on a rotary model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from poslens.errors import MissingTensorError, NotApplicableError
from poslens.models import Runner, load_weights

pytest.importorskip("transformers")

FAMILIES = ("gpt_neo", "opt", "gpt_neox", "llama")
LEARNED = ("gpt_neo", "opt")


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory):
    from poslens.testing.families import family_checkpoint

    root = tmp_path_factory.mktemp("families")
    return {f: family_checkpoint(root / f, f) for f in FAMILIES}


@pytest.fixture(params=FAMILIES)
def fam(request, family_dirs):
    return request.param, load_weights(str(family_dirs[request.param]))


def _tok(w):
    from poslens.models.tokenizer import Tokenizer

    return Tokenizer.for_checkpoint(w.source)


def test_premises_are_read_from_the_config(fam):
    name, w = fam
    cfg = w.cfg
    assert (cfg.positional == "learned") == (name in LEARNED)
    assert w.has("pos_embed.W_pos") == (name in LEARNED)
    if name == "gpt_neo":
        assert cfg.window_at(1) == 8 and cfg.window_at(0) is None
    if name == "gpt_neox":
        assert cfg.rotary_dim == 2 and cfg.parallel_attn_mlp and not cfg.tied_embeddings
    if name == "llama":
        assert cfg.n_key_value_heads == 2 and cfg.gated_mlp and cfg.normalization == "RMS"


def test_helix_on_learned_tables_not_applicable_on_rotary(fam):
    from poslens.analyses.helix import helix

    name, w = fam
    if name in LEARNED:
        r = helix(w, tokens=False, sinusoidal=False, truncations=False)
        assert len(r.variance_explained) == 10 and abs(sum(r.variance_explained) - r.cumulative[-1]) < 1e-9
        if name == "opt":  # row p of W_pos is stored row p + 2: the analysis reads the offset table
            stored = w.source.get("model.decoder.embed_positions.weight")
            assert torch.equal(w.W_pos, stored[2:])
    else:
        with pytest.raises(NotApplicableError, match="rotary positions, no learned W_pos"):
            helix(w)



def test_sphere_overlap_on_learned_tables_not_applicable_on_rotary(fam):
    from poslens.analyses.geometry.spheres import sphere_overlap

    name, w = fam
    if name in LEARNED:
        assert 0 <= sphere_overlap(w, n_tokens=50, n_trials=1).mean_share <= 1
    else:  # it said the checkpoint lacked wpe.weight and to use a complete one, which no rotary model has
        with pytest.raises(NotApplicableError, match="positional sphere overlap does not apply: .* rotary positions"):
            sphere_overlap(w)

def test_dup_heads_on_every_family(fam):
    from poslens.analyses.heads import duplicate_heads

    name, w = fam
    r = duplicate_heads(w, n_seq=2, seq_len=24, n_text_seq=2, tokenizer=_tok(w))
    assert len(r.heads) == w.cfg.n_layers * w.cfg.n_heads
    assert json.dumps(r.to_dict())
    # positional inputs alone are W_pos alone: on a rotary model all zeros, so not measured
    # (its heads had been reported "nearly uniform" on them)
    assert (r.positional is None) == (name not in LEARNED)
    if name not in LEARNED:
        with pytest.raises(NotApplicableError, match="positional inputs alone do not apply.*rotary"):
            duplicate_heads(w, positional_only=True)


def test_dup_heads_say_when_a_local_layer_cannot_see_the_copies(family_dirs):
    from poslens.analyses.heads import duplicate_heads

    w = load_weights(str(family_dirs["gpt_neo"]))  # layer 1 local, window 8; BOS first
    far = duplicate_heads(w, n_seq=2, seq_len=32, positional=False)
    assert all(far.heads[f"1.{h}"].score_repeated == 0 for h in range(w.cfg.n_heads))
    assert any("layer 1 attends within a window of 8" in n and "lies 16 back" in n and "--seq-len 15" in n
               for n in far.notes), far.notes
    near = duplicate_heads(w, n_seq=2, seq_len=15, positional=False)
    assert not any("window" in n for n in near.notes) and any(near.heads[f"1.{h}"].score_repeated > 0 for h in range(4))


def test_dup_neurons_decomposition_exact_or_not_applicable(fam):
    from poslens.analyses.neurons import decompose_neuron, duplicate_neurons, not_applicable_reason
    from poslens.models import processing as P

    name, w = fam
    if name not in LEARNED:
        assert "no learned position table" in not_applicable_reason(w.cfg, w.label)
        with pytest.raises(NotApplicableError, match="does not apply.*no learned position table"):
            duplicate_neurons(w, head=(0, 1), n_seq=2, seq_len=16, k_examples=2)
        return
    r = duplicate_neurons(w, head=(0, 1), n_seq=2, seq_len=24, k_examples=2, tokenizer=_tok(w), n_scale_tokens=256)
    assert r.decomposition.reconstruction_error < 1e-6
    # ReLU (OPT) and GELU (GPT-Neo) MLPs: the per-head parts add up to the measured pre-activation
    toks = torch.tensor(_tok(w).encode("And the king said unto the king, the king is here"))
    d = decompose_neuron(P.center_writing_weights(P.fold_layer_norm(w)), (0, 2), 5, toks)
    assert d.reconstruction_error < 1e-8


def test_dup_neurons_refuses_clearly_where_no_exact_decomposition_exists(family_dirs):
    import dataclasses

    from poslens.analyses.neurons import not_applicable_reason

    cfg = load_weights(str(family_dirs["opt"])).cfg
    assert "post-LayerNorm" in not_applicable_reason(dataclasses.replace(cfg, pre_norm=False, final_norm=False))
    neox = load_weights(str(family_dirs["gpt_neox"])).cfg
    assert "rotary" in not_applicable_reason(neox)


@pytest.fixture(scope="module")
def post_ln_opt(tmp_path_factory):
    """OPT-350m's layout: post-LayerNorm blocks, no final norm."""
    from poslens.testing.families import family_checkpoint

    w = load_weights(str(family_checkpoint(tmp_path_factory.mktemp("opt350") / "opt350", "opt_post_ln")))
    assert not w.cfg.pre_norm and not w.cfg.final_norm
    return w


def test_helix_ablation_runs_tokens_through_post_layernorm_opt(post_ln_opt):
    """A full token forward pass (it had asked the checkpoint for a final norm the family never has)."""
    from poslens.analyses.causal.question_helix import helix_ablation

    w = post_ln_opt
    r = helix_ablation(w, n_seq=2, seq_len=24, n_random=2, tokenizer=_tok(w))
    assert "token embedding zero" not in r.input.kind and not r.notes, (r.input, r.notes)


def test_spectra_fold_ln_on_post_layernorm_opt_says_nothing_was_folded(post_ln_opt):
    from poslens.analyses.geometry.spectra import weight_spectra

    r = weight_spectra(post_ln_opt, matrices=("W_Q",), per_head=False, qk=False, fold_ln=True)
    assert "not folded (skipped: post-LayerNorm blocks)" in " ".join(r.notes), r.notes
    stored = post_ln_opt.source.get("model.decoder.layers.0.self_attn.q_proj.weight").double()
    assert np.allclose(r.matrices["W_Q"]["0"].singular_values, torch.linalg.svdvals(stored).numpy(), rtol=1e-5)


def test_dup_neuron_ablation_on_post_layernorm_opt_chooses_neurons_without_pvo(post_ln_opt):
    """PVO reads folded LayerNorms, which post-LayerNorm blocks cannot give: the PVO choice is
    not applicable (it had ranked the raw matrices and called them folded); by activation runs."""
    from poslens.analyses.causal.question_duplicate import duplicate_neuron_ablation

    w = post_ln_opt
    with pytest.raises(NotApplicableError, match="choice of neurons by PVO does not apply: .*post-LayerNorm"):
        duplicate_neuron_ablation(w, n_seq=2, seq_len=16, n_random=2)
    r = duplicate_neuron_ablation(w, select="activation", n_neurons=2, n_seq=2, seq_len=16, n_random=2)
    assert len(r.selected) == 2 and "PVO" not in r.selection


def test_word_index_probe_on_every_family(fam):
    from poslens.analyses.word_index import word_index

    name, w = fam
    r = word_index(w, n_units=3, n_train=120, n_val_prompts=6, dictionary_size=400, layers=[0, 2], lengths=(1, 2),
                   label_tokens=("last",), tokenizer=_tok(w), progress=False)
    assert json.dumps(r.to_dict())


def test_spectra_read_each_familys_matrices(fam):
    from poslens.analyses.geometry.spectra import weight_spectra

    name, w = fam
    r = weight_spectra(w)
    d, dh, G = w.cfg.d_model, w.cfg.d_head, w.cfg.n_key_value_heads
    assert len(r.matrices["W_K"]["0"].singular_values) == min(d, G * dh)
    assert ("W_gate" in r.matrices) == (name == "llama")
    # fold_ln says what it did: Llama's RMSNorm weights are left as stored (it had said "folded")
    folded = weight_spectra(w, matrices=("W_Q",), per_head=False, qk=False, fold_ln=True)
    assert ("not folded (no LayerNorm)" in " ".join(folded.notes)) == (name == "llama"), folded.notes
    if name == "llama":  # the stored grouped key matrix, not its expansion over query heads
        k_proj = w.source.get("model.layers.0.self_attn.k_proj.weight").double()
        want = torch.linalg.svdvals(k_proj).numpy()
        assert np.allclose(r.matrices["W_K"]["0"].singular_values, want, rtol=1e-5)
        gate = torch.linalg.svdvals(w.source.get("model.layers.1.mlp.gate_proj.weight").double()).numpy()
        assert np.allclose(r.matrices["W_gate"]["1"].singular_values, gate, rtol=1e-5)


def test_subspaces_and_lens_on_every_family(fam):
    from poslens.analyses.geometry.logit_lens import lens_logits, logit_lens
    from poslens.analyses.geometry.subspaces import hidden_subspaces

    name, w = fam
    tok = _tok(w)
    prompt = "And God said, Let there be light: and there was light"
    s = hidden_subspaces(w, text=prompt, tokenizer=tok, lengths={"short": 6, "long": 12})
    assert json.dumps(s.to_dict())
    r = logit_lens(w, prompt, tok, n_generate=2)
    assert r.final_rank[-1] == 0 and r.kl_to_final[-1] == 0
    # the lens at the last point is the model's own output: its final norm (RMSNorm for Llama)
    # and its unembedding (untied for GPT-NeoX and Llama)
    ids = torch.tensor([tok.encode(prompt)])
    L = w.cfg.n_layers
    acts = Runner(w).run(ids, hooks=[f"blocks.{L - 1}.hook_resid_post"], logits=True)
    ours = lens_logits(w, acts[f"blocks.{L - 1}.hook_resid_post"][0])
    assert torch.allclose(ours, acts.logits[0], atol=1e-4)


def test_ablate_and_patch_on_every_family(fam):
    from poslens.analyses.causal import logit_diff, patch_sweep

    name, w = fam
    runner = Runner(w, dtype="float64")
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(1, w.cfg.d_vocab, (2, 14), generator=g)  # longer than GPT-Neo's window of 8
    corrupted = clean.clone()
    corrupted[:, 3] = (corrupted[:, 3] + 7) % w.cfg.d_vocab
    m = logit_diff(w, good=3, bad=7)
    for hook in ("resid_pre", "attn_out"):  # suffix patching (rotary, windows crossing the cut) = full runs
        a = patch_sweep(runner, clean, corrupted, m, hook=hook, method="suffix", positions=[3, 13], layers=[1])
        b = patch_sweep(runner, clean, corrupted, m, hook=hook, method="full", positions=[3, 13], layers=[1])
        assert np.allclose(a.raw, b.raw, atol=1e-9), hook
    # the clean run's residual at the changed position, patched in, gives the clean metric back
    r = patch_sweep(runner, clean, corrupted, m, hook="resid_pre", positions=[3], layers=[0])
    assert np.allclose(np.asarray(r.normalized)[0, 0], 1.0, atol=1e-6)


def test_cli_commands_on_every_family(fam, tmp_path):
    from click.testing import CliRunner

    from poslens.cli import cli

    name, w = fam
    m = str(w.source.path)
    # The analyses themselves are run through the API above; here the CLI's premise checks,
    # and the commands that only the CLI composes (twisted-pair's model part, the causal questions).
    cases = [
        ["helix", "--no-figures", "--no-truncations", "--no-sinusoidal"],
        ["twisted-pair", "--no-grid", "--no-claims", "--sweep-M", "", "--sweep-n", "", "--sweep-k", "",
         "--window", "11", "--n", "64", "--M", "4", "--k", "2"],
        ["ablate", "helix"],
        ["ablate", "dup-neurons"],
    ]
    for args in cases:
        if name in LEARNED and args[:2] in (["ablate", "helix"], ["ablate", "dup-neurons"]):
            continue  # slow on a learned model; run by the causal questions' own tests
        r = CliRunner().invoke(cli, [*args, "-m", m, "-o", str(tmp_path / "-".join(args[:2]))])
        if name not in LEARNED and args[0] in ("helix", "twisted-pair") or args[:2] in (["ablate", "helix"],
                                                                                      ["ablate", "dup-neurons"]):
            assert r.exit_code == 2 and "rotary positions" in r.output and "\n" not in r.output.strip(), r.output
            assert "complete checkpoint" not in r.output, r.output  # true of no checkpoint of this family
            assert args[0] != "twisted-pair" or "--no-model" in r.output, r.output  # what does run there
        else:
            assert r.exit_code == 0, (args, r.output, r.exception)


W_POS_STAGES = ("helix", "geometry_sphere", "causal_helix", "dup_neurons", "causal_dup_neurons", "twisted_pair")


def test_report_plans_every_stage_by_its_premise(fam):
    """Every stage of `poslens report --quick`: a W_pos stage is not applicable on a rotary
    model (with the reason), the rotary stage on a learned one, everything else runs."""
    from poslens.report import default_stages
    from poslens.report.orchestrate import Context

    name, w = fam
    ctx = Context(str(w.source.path), size="quick")
    why = {st.name: ctx.missing(st.needs) or (st.supports(ctx) if st.supports else None) for st in default_stages()}
    for stage, reason in why.items():
        if stage in W_POS_STAGES and name not in LEARNED:
            assert reason.startswith("not applicable") and "rotary positions" in reason, (stage, reason)
        elif stage == "rotary" and name in LEARNED:
            assert reason.startswith("not applicable") and "learned positional embeddings" in reason
        elif stage in ("dup_neurons", "causal_dup_neurons") and reason:  # random weights: no duplicate head
            assert reason.startswith("premise absent: the model profile finds no duplicate-token head"), reason
        else:
            assert reason is None, (stage, reason)


@pytest.mark.parametrize("name", ["llama", "opt"])
def test_report_quick_runs_and_skips_with_reasons(family_dirs, tmp_path, name):
    """A quick report on a rotary and a learned family: the profile (no W_pos needed) runs, the
    W_pos stages run or are skipped as not applicable, and nothing fails. (The whole quick
    report on every family: see the helper's measured run in the README's family table.)"""
    from poslens.report import build_report

    only = ("profile", "helix", "dup_neurons", "geometry_lens", "verdicts")
    _, reports = build_report([str(family_dirs[name])], tmp_path / "rep", only=only, size="quick", progress=False)
    outcomes = {o.name: o for o in reports[0].outcomes}
    assert not [o for o in outcomes.values() if o.status == "failed"], {k: o.reason for k, o in outcomes.items()}
    assert outcomes["profile"].status == outcomes["geometry_lens"].status == "done"
    if name in LEARNED:
        assert outcomes["helix"].status == "done"
    else:
        assert outcomes["helix"].status == outcomes["dup_neurons"].status == "skipped"
        assert "no learned position table" in outcomes["helix"].reason
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "not applicable" in page or name in LEARNED
    # the header reads the family's own config names, not GPT-2's n_layer/n_head/n_embd
    assert f"{name} · 2 layers × 4 heads, d_model 32, n_ctx 128, vocab 4096" in page, page[page.find("<h1>"):][:400]


def test_poslens_models_lists_the_families():
    from click.testing import CliRunner

    from poslens.cli import cli

    r = CliRunner().invoke(cli, ["models"])
    assert r.exit_code == 0
    arch = next(line for line in r.output.splitlines() if line.startswith("Architectures:"))
    for fam in ("GPT-2:", "GPT-Neo:", "OPT:", "GPT-NeoX / Pythia:", "Llama-style"):
        assert fam in arch, arch
    assert "pythia-70m" in r.output and "opt-125m" in r.output and "gpt-neo-125m" in r.output


def test_missing_tensor_names_the_family_not_a_gpt2_tensor(family_dirs):
    from poslens.models.weights import require

    w = load_weights(str(family_dirs["llama"]))
    with pytest.raises(MissingTensorError, match="rotary positions"):
        require(w, ["pos_embed.W_pos"], "a test")


def test_sinks_on_a_local_attention_layer_say_what_its_window_does(family_dirs):
    from poslens.analyses import sinks as S

    w = load_weights(str(family_dirs["gpt_neo"]))  # layers global, local (window 8)
    r = S.attention_sinks(Runner(w), S.Options(inputs="random_tokens", n_seq=2, seq_len=32))
    assert "layer 1 attends within a window of 8 < 32" in r.limits and "uniform attention gives alpha(0) = 0.34" in r.limits


@pytest.mark.parametrize("name, drop", [("opt", "model.decoder.embed_positions.weight"), ("llama", "lm_head.weight")])
def test_report_skips_what_a_partial_checkpoint_cannot_run_and_names_its_tensors(family_dirs, tmp_path, name, drop):
    """Without a learned position table no token can enter the model: every stage that runs the model
    is skipped with that reason (none left to fail), and the reasons name this family's tensors."""
    import shutil

    from safetensors.torch import load_file, save_file

    from poslens.report import default_stages
    from poslens.report.orchestrate import Context

    path = tmp_path / f"{name}-partial"
    shutil.copytree(family_dirs[name], path)
    sd = load_file(path / "model.safetensors")
    del sd[drop]
    save_file(sd, path / "model.safetensors", metadata={"format": "pt"})
    ctx = Context(str(path), size="quick")
    why = {st.name: ctx.missing(st.needs) or (st.supports(ctx) if st.supports else None) for st in default_stages()}
    for stage, reason in why.items():
        assert reason is None or not any(g in reason for g in ("wpe", "wte", "c_fc", "LayerNorm")), (stage, reason)
    if name == "opt":
        for stage in ("profile", "dup_heads", "sinks", "position_probe"):
            assert why[stage] and drop in why[stage], (stage, why[stage])
        assert why["rotary"].startswith("not applicable")
    else:
        assert drop in why["geometry_lens"] and why["profile"] is None and why["sinks"] is None


def test_lens_on_a_llama_without_lm_head_says_what_it_lacks(family_dirs, tmp_path):
    import shutil

    from click.testing import CliRunner
    from safetensors.torch import load_file, save_file

    from poslens.cli import cli

    path = tmp_path / "llama-no-head"
    shutil.copytree(family_dirs["llama"], path)
    sd = load_file(path / "model.safetensors")
    del sd["lm_head.weight"]
    save_file(sd, path / "model.safetensors", metadata={"format": "pt"})
    r = CliRunner().invoke(cli, ["lens", "-m", str(path), "-o", str(tmp_path / "out")])
    assert r.exit_code == 2 and "lm_head.weight" in r.output and "logit lens" in r.output, r.output
    why = r.output.split("needed for")[1]
    assert "wte" not in why and "tied" not in why, r.output


def test_report_skips_word_index_where_its_prompts_do_not_fit(tmp_path):
    import transformers

    from poslens.report import build_report
    from poslens.testing.families import VOCAB, _tiny_tokenizer

    path = tmp_path / "short"
    cfg = transformers.GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=64, vocab_size=VOCAB)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path)
    _tiny_tokenizer().save(path)
    _, reports = build_report([str(path)], tmp_path / "rep", only=("word_index",), size="quick", progress=False)
    o = reports[0].outcomes[0]
    assert o.status == "skipped" and o.reason.startswith("not applicable") and "n_ctx=64" in o.reason, o
