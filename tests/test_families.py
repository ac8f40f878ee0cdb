"""Every family against Hugging Face transformers (eager attention, float32): hidden states,
attention patterns and logits of randomly initialised models, saved as local HF directories."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from poslens.errors import PoslensError
from poslens.models import Runner, Weights, load_weights

transformers = pytest.importorskip("transformers")

TOL = 1e-4
SEQ = 12

# family, shape -> (config class, kwargs); tiny shapes, each family twice, covering grouped-query
# attention, partial rotary, local / sliding windows, post-LayerNorm, project_in/out, biases.
SHAPES = {
    ("gpt_neo", "global-local"): ("GPTNeoConfig", dict(
        hidden_size=32, num_layers=2, num_heads=4, max_position_embeddings=64, vocab_size=101,
        attention_types=[[["global", "local"], 1]], window_size=4)),
    ("gpt_neo", "local-first-wide-mlp"): ("GPTNeoConfig", dict(
        hidden_size=48, num_layers=3, num_heads=2, max_position_embeddings=32, vocab_size=77, intermediate_size=80,
        attention_types=[[["local", "global", "local"], 1]], window_size=5, tie_word_embeddings=False)),
    ("gpt2", "untied"): ("GPT2Config", dict(
        n_embd=32, n_layer=2, n_head=4, n_positions=40, vocab_size=90, tie_word_embeddings=False)),
    ("opt", "pre-ln"): ("OPTConfig", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64, max_position_embeddings=64,
        vocab_size=101, word_embed_proj_dim=32)),
    ("opt", "post-ln-projected"): ("OPTConfig", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=48, max_position_embeddings=40,
        vocab_size=90, word_embed_proj_dim=16, do_layer_norm_before=False)),
    ("gpt_neox", "partial-rotary-parallel"): ("GPTNeoXConfig", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, vocab_size=101, rotary_pct=0.25)),
    ("gpt_neox", "half-rotary-sequential"): ("GPTNeoXConfig", dict(
        hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
        max_position_embeddings=64, vocab_size=80, rotary_pct=0.5, rotary_emb_base=500,
        use_parallel_residual=False)),
    ("llama", "gqa"): ("LlamaConfig", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
        max_position_embeddings=64, vocab_size=101)),
    ("llama", "smollm-tied-one-kv-head"): ("LlamaConfig", dict(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=1, intermediate_size=64,
        max_position_embeddings=64, vocab_size=90, tie_word_embeddings=True, rope_theta=100.0)),
    ("mistral", "sliding-window"): ("MistralConfig", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
        max_position_embeddings=64, vocab_size=101, sliding_window=5)),
    ("qwen2", "qkv-bias-sliding-upper-layer"): ("Qwen2Config", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
        max_position_embeddings=64, vocab_size=101, use_sliding_window=True, sliding_window=4, max_window_layers=1)),
}


def build(tmp_path, key, seed=0):
    cls_name, kw = SHAPES[key]
    cfg = getattr(transformers, cls_name)(**kw)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
    with torch.no_grad():  # move every parameter off its init (LayerNorm 1/0, zero biases)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path / "-".join(key)
    model.save_pretrained(path)
    return model, path


def max_errors(model, path) -> dict[str, float]:
    """Largest |poslens - transformers| over hidden states, patterns and logits."""
    cfg_hf = model.config
    tokens = torch.randint(0, cfg_hf.vocab_size, (2, SEQ), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(tokens, output_hidden_states=True, output_attentions=True)
    w = load_weights(str(path))
    L = w.cfg.n_layers
    hooks = [f"blocks.{l}.hook_resid_pre" for l in range(L)] + [f"blocks.{l}.attn.hook_pattern" for l in range(L)]
    final = "ln_final.hook_normalized" if w.cfg.final_norm else f"blocks.{L - 1}.hook_resid_post"
    acts = Runner(w).run(tokens, hooks=[*hooks, final], logits=True)
    err = {"hidden": 0.0, "pattern": 0.0}
    for l in range(L):
        err["hidden"] = max(err["hidden"], (acts[f"blocks.{l}.hook_resid_pre"] - out.hidden_states[l]).abs().max().item())
        err["pattern"] = max(err["pattern"], (acts[f"blocks.{l}.attn.hook_pattern"] - out.attentions[l]).abs().max().item())
    if out.hidden_states[L].shape[-1] == w.cfg.d_model:  # OPT with project_out: the last is projected
        err["hidden"] = max(err["hidden"], (acts[final] - out.hidden_states[L]).abs().max().item())
    err["logits"] = (acts["logits"] - out.logits).abs().max().item()
    return err


@pytest.mark.parametrize("key", list(SHAPES), ids=["/".join(k) for k in SHAPES])
def test_parity_with_transformers(tmp_path, key):
    model, path = build(tmp_path, key)
    err = max_errors(model, path)
    assert max(err.values()) <= TOL, f"{key}: {err}"
    assert load_weights(str(path)).cfg.n_params == model.num_parameters(), key  # what `poslens inspect` says


@pytest.mark.parametrize("key", list(SHAPES), ids=["/".join(k) for k in SHAPES])
def test_an_in_memory_model_reads_as_its_saved_checkpoint(tmp_path, key):
    # an in-memory model's state dict may name a tensor otherwise than its saved file (transformers 5 keeps
    # GPT-NeoX's untied unembedding as lm_head and saves it as embed_out)
    model, path = build(tmp_path, key)
    tokens = torch.randint(0, model.config.vocab_size, (2, SEQ), generator=torch.Generator().manual_seed(2))
    saved, live = (Runner(w).run(tokens, logits=True).logits for w in (load_weights(str(path)), Weights.from_hf_model(model)))
    assert (live - saved).abs().max() <= TOL, key


def test_an_untied_gpt2_saves_its_own_unembedding(tmp_path):
    from poslens.models.save import save_weights

    model, path = build(tmp_path, ("gpt2", "untied"))
    for prefix in (False, True):
        out = save_weights(load_weights(str(path)), tmp_path / f"copy-{prefix}", prefix=prefix)
        again = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
        tokens = torch.arange(SEQ)[None]
        with torch.no_grad():
            assert (again(tokens).logits - model(tokens).logits).abs().max() <= TOL, prefix


@pytest.mark.parametrize("fmt", ["sharded", "bin", "base-model-names"])
def test_storage_formats_read_the_same(tmp_path, fmt):
    """A sharded safetensors index, a pytorch_model.bin, and names without the causal-LM prefix."""
    model, path = build(tmp_path, ("llama", "gqa"))
    if fmt == "sharded":
        (path / "model.safetensors").unlink()
        model.save_pretrained(path, max_shard_size="20KB")
        assert (path / "model.safetensors.index.json").is_file() and not (path / "model.safetensors").exists()
    else:
        (path / "model.safetensors").unlink()
        sd = model.state_dict()
        if fmt == "base-model-names":  # as LlamaModel saves them: "layers.0..." not "model.layers.0..."
            sd = {k.removeprefix("model."): v for k, v in sd.items()}
        torch.save(sd, path / "pytorch_model.bin")
    assert max(max_errors(model, path).values()) <= TOL


PREFIX_HOOKS = ("hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern", "attn.hook_z",
                "hook_resid_mid", "mlp.hook_post", "hook_resid_post")


@pytest.mark.parametrize("key", [("mistral", "sliding-window"), ("gpt_neox", "partial-rotary-parallel"),
                                 ("gpt_neo", "global-local"), ("opt", "post-ln-projected")],
                         ids=lambda k: "/".join(k))
def test_cached_prefix_gives_the_full_run_on_suffix_positions(tmp_path, key):
    model, path = build(tmp_path, key)
    runner = Runner(load_weights(str(path)))
    cfg = runner.cfg
    g = torch.Generator().manual_seed(4)
    P0, S = 7, 6  # the prefix is longer than the windows, so the window crosses the boundary
    prefix_ids = torch.randint(0, cfg.d_vocab, (P0,), generator=g)
    suffixes = torch.randint(0, cfg.d_vocab, (3, S), generator=g)
    hooks = [f"blocks.{l}.{h}" for l in range(cfg.n_layers) for h in PREFIX_HOOKS]
    if cfg.positional == "rotary":
        hooks += [f"blocks.{l}.attn.hook_rot_k" for l in range(cfg.n_layers)]
    full = runner.run(torch.cat([prefix_ids.expand(3, P0), suffixes], 1), hooks=hooks, logits=True)
    prefix = runner.prefix(prefix_ids)
    part = runner.run(suffixes, prefix=prefix, hooks=hooks, logits=True, batch_size=2)
    for name in [*hooks, "logits"]:
        want = full[name][:, :, P0:] if name.endswith("hook_pattern") else full[name][:, P0:]
        assert part[name].shape == want.shape, name
        assert (part[name] - want).abs().max().item() <= 1e-5, name


def test_grouped_keys_are_expanded_per_query_head_in_hooks_and_weights(tmp_path):
    model, path = build(tmp_path, ("llama", "gqa"))
    w = load_weights(str(path))
    H, G, dh = w.cfg.n_heads, w.cfg.n_key_value_heads, w.cfg.d_head
    assert (H, G) == (4, 2) and w.W_K.shape == (2, H, w.cfg.d_model, dh)
    k_proj = model.model.layers[1].self_attn.k_proj.weight.detach()
    for h in range(H):  # query head h reads key head h // (H / G)
        assert torch.equal(w.get("blocks.1.attn.W_K")[h], k_proj[(h // 2) * dh:(h // 2 + 1) * dh].T)
    tokens = torch.randint(0, w.cfg.d_vocab, (1, 5))
    acts = Runner(w).run(tokens, hooks=["blocks.0.attn.hook_k", "blocks.0.attn.hook_rot_q", "blocks.0.attn.hook_q"])
    assert acts["blocks.0.attn.hook_k"].shape == (1, 5, H, dh)
    assert torch.equal(acts["blocks.0.attn.hook_k"][:, :, 0], acts["blocks.0.attn.hook_k"][:, :, 1])
    # rotary leaves position 0 alone and turns the rest
    q, rq = acts["blocks.0.attn.hook_q"], acts["blocks.0.attn.hook_rot_q"]
    assert torch.allclose(q[:, 0], rq[:, 0]) and not torch.allclose(q[:, 3], rq[:, 3])
    names = Runner(w).hook_names()
    assert "hook_pos_embed" not in names and "blocks.0.mlp.hook_pre_linear" in names


def test_opt_position_rows_are_read_without_the_offset(tmp_path):
    model, path = build(tmp_path, ("opt", "pre-ln"))
    w = load_weights(str(path))
    table = model.model.decoder.embed_positions.weight.detach()
    assert w.W_pos.shape == (w.cfg.n_ctx, w.cfg.d_model) and torch.equal(w.W_pos[5], table[5 + 2])
    acts = Runner(w).run(torch.zeros(1, 4, dtype=torch.long), hooks=["hook_pos_embed"])
    assert torch.equal(acts["hook_pos_embed"][0], table[2:6])


@pytest.mark.parametrize("key", [("mistral", "sliding-window"), ("gpt_neox", "partial-rotary-parallel"),
                                 ("opt", "post-ln-projected")], ids=lambda k: "/".join(k))
def test_suffix_patching_equals_full_runs(tmp_path, key):
    from poslens.analyses.causal import logit_diff, patch_sweep

    model, path = build(tmp_path, key)
    w = load_weights(str(path))
    runner = Runner(w, dtype="float64")
    toks = torch.randint(0, w.cfg.d_vocab, (2, 10), generator=torch.Generator().manual_seed(6))
    for hook in ("resid_pre", "resid_mid", "mlp_out"):
        a = patch_sweep(runner, toks, toks.flip(0), logit_diff(w, good=3, bad=7), hook=hook, method="suffix",
                        positions=[0, 3, 8, 9])
        b = patch_sweep(runner, toks, toks.flip(0), logit_diff(w, good=3, bad=7), hook=hook, method="full",
                        positions=[0, 3, 8, 9])
        assert np.allclose(a.raw, b.raw, atol=1e-9), (hook, a.raw, b.raw)


def _config_dir(tmp_path, key, **edit):
    model, path = build(tmp_path, key)
    cfg = json.loads((path / "config.json").read_text())
    for k, v in edit.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (path / "config.json").write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("key, edit, words", [
    (("gpt_neox", "partial-rotary-parallel"), dict(rotary_pct=0.25, partial_rotary_factor=0.5),
     "rotary fraction inconsistently \\(rotary_pct=0.25, partial_rotary_factor=0.5"),
    (("gpt_neox", "partial-rotary-parallel"), dict(rotary_emb_base=500, rope_theta=10000),
     "rotary base inconsistently"),
    (("gpt_neox", "partial-rotary-parallel"),
     dict(rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.1}),
     "leaves 0 rotary dimensions of a 8-dimension head"),
    (("mistral", "sliding-window"), dict(sliding_window=100), "attention window 100 is larger than the context n_ctx=64"),
    (("gpt_neo", "global-local"), dict(window_size=65), "attention window 65 is larger than the context"),
    (("llama", "gqa"), dict(rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0}), "rotary scaling 'llama3'"),
    (("llama", "gqa"), dict(rope_parameters=None, rope_scaling={"type": "linear", "factor": 2.0}),
     "rotary scaling 'linear' is not supported"),  # the older spelling, as the README names it
    (("llama", "gqa"), dict(model_type="falcon"), "'falcon' model .* gpt2, gpt_neo, opt, gpt_neox, llama"),
])
def test_bad_configs_are_one_line_exit_2(tmp_path, key, edit, words):
    from click.testing import CliRunner

    from poslens.cli import cli

    path = _config_dir(tmp_path, key, **edit)
    with pytest.raises(PoslensError, match=words):
        load_weights(str(path))
    r = CliRunner().invoke(cli, ["inspect", str(path)])
    err = r.output.strip()
    assert r.exit_code == 2 and err.startswith("poslens: error:") and "\n" not in err, r.output


def test_both_config_spellings_read_the_same(tmp_path):
    old = _config_dir(tmp_path / "old", ("gpt_neox", "half-rotary-sequential"), rope_parameters=None,
                      rotary_pct=0.5, rotary_emb_base=500)
    new = _config_dir(tmp_path / "new", ("gpt_neox", "half-rotary-sequential"))
    a, b = load_weights(str(old)).cfg, load_weights(str(new)).cfg
    assert (a.rotary_dim, a.rotary_base) == (b.rotary_dim, b.rotary_base) == (6, 500.0)
    assert a.positional == "rotary" and a.window is None and a.parallel_attn_mlp is False


@pytest.mark.parametrize("key", [("gpt_neox", "partial-rotary-parallel"), ("opt", "post-ln-projected"),
                                 ("llama", "gqa"), ("gpt_neo", "global-local")], ids=lambda k: "/".join(k))
def test_processing_leaves_every_family_s_outputs_unchanged(tmp_path, key):
    from poslens.models import processing as P

    model, path = build(tmp_path, key)
    w = load_weights(str(path))
    tokens = torch.randint(0, w.cfg.d_vocab, (2, SEQ), generator=torch.Generator().manual_seed(3))
    before = Runner(w, dtype="float64").run(tokens, logits=True).logits
    processed = P.process(w)
    after = Runner(processed, dtype="float64").run(tokens, logits=True).logits
    shift = (after - before) - (after - before).mean(-1, keepdim=True)  # center_unembed shifts by a constant
    assert shift.abs().max().item() <= 1e-5, processed.processing  # float32 weights, processed in float32


def test_a_rotary_model_has_no_position_table_and_says_so(tmp_path):
    from poslens.errors import MissingTensorError, NotApplicableError

    model, path = build(tmp_path, ("gpt_neox", "partial-rotary-parallel"))
    w = load_weights(str(path))
    assert not w.has("pos_embed.W_pos") and not w.has("blocks.0.mlp.W_gate") and "pos_embed.W_pos" not in w.names()
    # not "use a complete checkpoint": no gpt_neox checkpoint has one; still a MissingTensorError
    # for callers that skip a part without it, and a NotApplicableError for the CLI and report
    with pytest.raises(MissingTensorError, match=r"^helix does not apply: .* \(a gpt_neox model\) has rotary "
                       r"positions, no learned position table \('pos_embed.W_pos'\)$") as e:
        w.get("pos_embed.W_pos", needed_for="helix")
    assert isinstance(e.value, NotApplicableError)
    # the llama adapter reads Mistral too: a message names the architecture, not the adapter ("a llama model")
    mistral = load_weights(str(build(tmp_path / "m", ("mistral", "sliding-window"))[1]))
    with pytest.raises(MissingTensorError, match=r"\(a mistral model\) has rotary positions"):
        mistral.get("pos_embed.W_pos", needed_for="helix")


def test_the_tokenizer_prepends_the_family_s_own_bos(tmp_path):
    from tokenizers import Tokenizer as TK
    from tokenizers import models, pre_tokenizers

    from poslens.models import open_checkpoint
    from poslens.models.tokenizer import Tokenizer

    path = _config_dir(tmp_path, ("llama", "gqa"), bos_token_id=5)
    vocab = {w: i for i, w in enumerate(["<unk>", "the", "a", "word", "is", "<s>"])}
    tk = TK(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.save(str(path / "tokenizer.json"))
    tok = Tokenizer.for_checkpoint(open_checkpoint(str(path)))
    assert tok.encode("the word", prepend_bos=True) == [5, 1, 3]  # config.json's bos ("<s>"), not GPT-2's


def test_an_in_memory_model_without_its_tokenizer_is_told_to_pass_one(tmp_path):
    from poslens.models.tokenizer import Tokenizer

    model, path = build(tmp_path, ("llama", "gqa"))  # vocab 101: GPT-2's tokenizer does not fit
    with pytest.raises(PoslensError, match=r"pass the model's own tokenizer \(tokenizer="):
        Tokenizer.for_checkpoint(Weights.from_hf_model(model).source)
    with pytest.raises(PoslensError, match="beside its config.json"):
        Tokenizer.for_checkpoint(load_weights(str(path)).source)
