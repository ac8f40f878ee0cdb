"""Runner: parity with Hugging Face, positional inputs on the real partial checkpoint,
editing hooks, batching, bfloat16, lazy reading and input errors."""

from __future__ import annotations

import pytest
import torch

from poslens.errors import InvalidInputError, MissingTensorError, PoslensError, UnknownHookError
from poslens.models import Runner, load_weights
from poslens.models.config import SUPPORTED_ACTIVATIONS
from poslens.testing import gpt2_small_config, random_checkpoint, small_config

TOL = 1e-4

PARITY_SHAPES = {
    # gpt2-small's exact shape (12 layers, 12 heads, d_model 768, vocab 50257, n_ctx 1024)
    "gpt2-small": gpt2_small_config(),
    "small": small_config(),
    "wide-heads": small_config(n_layers=3, n_heads=2, d_model=96, n_ctx=64, d_vocab=300),
    "stanford-crfm": small_config(n_layers=3, scale_attn_by_inverse_layer_idx=True),
    "n_inner": small_config(d_mlp=80, n_heads=8),
}


def _hf(path):
    transformers = pytest.importorskip("transformers")
    return transformers.GPT2LMHeadModel.from_pretrained(path, attn_implementation="eager").eval()


@pytest.mark.parametrize("shape", list(PARITY_SHAPES))
def test_parity_with_huggingface(tmp_path, shape):
    cfg = PARITY_SHAPES[shape]
    path = random_checkpoint(tmp_path / shape, cfg, seed=3)
    hf = _hf(path)
    tokens = torch.randint(0, cfg.d_vocab, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = hf(tokens, output_hidden_states=True, output_attentions=True)
    L = cfg.n_layers
    # HF's hidden_states: [embed + pos, after block 0, ..., after block L-2, ln_f(after block L-1)]
    ours = {"blocks.0.hook_resid_pre": 0, "ln_final.hook_normalized": L}
    ours.update({f"blocks.{l}.hook_resid_post": l + 1 for l in range(L - 1)})
    patterns = [f"blocks.{l}.attn.hook_pattern" for l in range(L)]
    acts = Runner(load_weights(str(path))).run(tokens, hooks=[*ours, *patterns], logits=True)
    for name, i in ours.items():
        diff = (acts[name] - out.hidden_states[i]).abs().max().item()
        assert diff <= TOL, f"{shape}: {name} vs hidden_states[{i}] differ by {diff}"
    assert (acts["logits"] - out.logits).abs().max().item() <= TOL
    for l, name in enumerate(patterns):
        assert (acts[name] - out.attentions[l]).abs().max().item() <= TOL, name
    if cfg.scale_attn_by_inverse_layer_idx:
        # Same seed and shape without the flag: the weights are identical, so layer l's scores
        # must be exactly (l + 1) times larger; HF agreeing above proves it divides too.
        plain = random_checkpoint(tmp_path / "plain", small_config(n_layers=3), seed=3)
        resid = torch.randn(2, 16, cfg.d_model, generator=torch.Generator().manual_seed(1))
        causal = torch.ones(16, 16, dtype=torch.bool).tril()
        for l in range(L):
            name = f"blocks.{l}.attn.hook_attn_scores"
            scaled = Runner(load_weights(str(path))).run(resid=resid, start_at_layer=l, hooks=[name])[name]
            unscaled = Runner(load_weights(str(plain))).run(resid=resid, start_at_layer=l, hooks=[name])[name]
            assert torch.allclose(scaled[..., causal] * (l + 1), unscaled[..., causal], atol=1e-5)


def test_resid_post_of_last_layer_feeds_ln_final(small_ckpt, small_cfg):
    r = Runner(load_weights(str(small_ckpt)))
    tokens = torch.arange(12)[None]
    acts = r.run(tokens, hooks=["blocks.1.hook_resid_post", "ln_final.hook_normalized"])
    w = r.weights
    ref = torch.nn.functional.layer_norm(acts["blocks.1.hook_resid_post"], (small_cfg.d_model,),
                                         w.get("ln_final.w"), w.get("ln_final.b"), small_cfg.eps)
    assert torch.allclose(ref, acts["ln_final.hook_normalized"], atol=1e-5)


# ---- the real partial checkpoint, positional inputs alone --------------------------------------
def test_partial_checkpoint_positional_attention(partial_ckpt):
    w = load_weights(str(partial_ckpt))
    P = 64
    acts = Runner(w).run(embed=torch.zeros(1, P, w.cfg.d_model), hooks=["blocks.0.attn.hook_pattern"])
    pat = acts["blocks.0.attn.hook_pattern"]
    assert pat.shape == (1, 12, P, P)
    assert torch.allclose(pat.sum(-1), torch.ones(1, 12, P), atol=1e-5)
    assert pat.triu(1).abs().max().item() == 0.0  # causal: no weight on later keys
    assert pat.std().item() > 1e-3  # real weights, not a uniform pattern
    assert "wte.weight" not in w.source.reads
    assert not any(".mlp." in n for n in w.source.reads)


def test_partial_checkpoint_past_layer0_names_missing_mlp(partial_ckpt):
    w = load_weights(str(partial_ckpt))
    with pytest.raises(MissingTensorError) as e:
        Runner(w).run(embed=torch.zeros(1, 8, 768), hooks=["blocks.1.attn.hook_pattern"])
    assert e.value.tensor == "h.0.mlp.c_fc.weight"
    assert "h.0.mlp.c_fc.weight" in str(e.value) and "MLP in layer 0" in str(e.value)


# ---- lazy reading --------------------------------------------------------------------------------
def test_layer0_pattern_reads_only_layer0_attention(small_ckpt, small_cfg):
    w = load_weights(str(small_ckpt))
    Runner(w).run(embed=torch.zeros(2, 10, small_cfg.d_model), hooks=["blocks.0.attn.hook_pattern"])
    assert sorted(w.source.reads) == sorted(
        ["wpe.weight", "h.0.ln_1.weight", "h.0.ln_1.bias", "h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias"]
    )


def test_resid_post_reads_no_later_layer_and_no_unembedding(tmp_path):
    cfg = small_config(n_layers=4)
    w = load_weights(str(random_checkpoint(tmp_path / "m", cfg)))
    Runner(w).run(torch.arange(10)[None], hooks=["blocks.1.hook_resid_post"])
    reads = w.source.reads
    assert reads.count("wte.weight") == 1  # as the embedding only
    assert all(not n.startswith(("h.2.", "h.3.", "ln_f.")) for n in reads), reads
    assert {n for n in reads if n.startswith("h.")} == {
        f"h.{l}.{p}.{k}" for l in (0, 1) for p in ("ln_1", "ln_2", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
        for k in ("weight", "bias")
    }


# ---- editing hooks -------------------------------------------------------------------------------
def test_zeroing_head_z_removes_exactly_its_result(small_ckpt):
    r = Runner(load_weights(str(small_ckpt)))
    tokens = torch.randint(0, 512, (2, 12), generator=torch.Generator().manual_seed(1))
    head = 2
    base = r.run(tokens, hooks=["blocks.1.attn.hook_result", "blocks.1.hook_attn_out"], logits=True)

    def zero_head(z, hook):
        assert hook.name == "blocks.1.attn.hook_z" and hook.layer == 1
        z[:, :, head] = 0  # in place, return None

    edited = r.run(tokens, hooks=["blocks.1.hook_attn_out"], edits={"blocks.1.attn.hook_z": zero_head}, logits=True)
    removed = base["blocks.1.hook_attn_out"] - edited["blocks.1.hook_attn_out"]
    assert torch.allclose(removed, base["blocks.1.attn.hook_result"][:, :, head], atol=1e-5)
    assert (edited.logits - base.logits).abs().max().item() > 1e-4
    # The same edit written as a returned replacement gives the same output.
    mask = torch.ones(r.cfg.n_heads, 1)
    mask[head] = 0
    replaced = r.run(tokens, edits={"blocks.1.attn.hook_z": lambda z, hook: z * mask}, logits=True)
    assert torch.allclose(replaced.logits, edited.logits, atol=1e-5)


def test_edit_with_wrong_shape_raises(small_ckpt):
    r = Runner(load_weights(str(small_ckpt)))
    with pytest.raises(InvalidInputError, match="returned shape"):
        r.run(torch.arange(8)[None], edits={"blocks.0.hook_resid_mid": lambda x, hook: x[:, :1]}, logits=True)


def test_edit_before_the_last_hook_only_changes_downstream(small_ckpt):
    r = Runner(load_weights(str(small_ckpt)))
    tokens = torch.arange(8)[None]
    hooks = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    base = r.run(tokens, hooks=hooks)
    edited = r.run(tokens, hooks=hooks, edits={"blocks.0.hook_attn_out": lambda x, hook: torch.zeros_like(x)})
    assert torch.equal(base["blocks.0.hook_resid_pre"], edited["blocks.0.hook_resid_pre"])
    assert not torch.allclose(base["blocks.1.hook_resid_pre"], edited["blocks.1.hook_resid_pre"])


def test_an_in_place_edit_changes_only_what_flows_on(small_ckpt):
    # what passes a hook can be shared: hook_pos_embed is a view of W_pos, hook_resid_pre the tensor
    # kept for the last hook_resid_post, the first hook the caller's embed= or resid=
    w = load_weights(str(small_ckpt))
    r = Runner(w)
    tokens = torch.arange(16).view(2, 8)
    W_pos = w.W_pos.clone()

    def zero(x, hook):
        x[:, 0] = 0

    base = r.run(tokens, hooks=["hook_pos_embed", "blocks.0.hook_resid_post"])
    out = r.run(tokens, hooks=["hook_pos_embed"], edits={"hook_pos_embed": zero})
    assert (out["hook_pos_embed"][:, 0] == 0).all() and torch.equal(out["hook_pos_embed"][:, 1:], base["hook_pos_embed"][:, 1:])
    assert torch.equal(w.W_pos, W_pos) and torch.equal(r.run(tokens, hooks=["hook_pos_embed"])["hook_pos_embed"],
                                                       base["hook_pos_embed"])
    out = r.run(tokens, hooks=["blocks.0.hook_resid_post"], edits={"blocks.1.hook_resid_pre": zero})
    assert torch.equal(out["blocks.0.hook_resid_post"], base["blocks.0.hook_resid_post"])
    embed, resid = torch.ones(1, 4, r.cfg.d_model), torch.ones(1, 4, r.cfg.d_model)
    r.run(embed=embed, hooks=["blocks.0.hook_resid_pre"], edits={"hook_embed": zero})
    r.run(resid=resid, start_at_layer=1, hooks=["blocks.1.hook_resid_post"], edits={"blocks.1.hook_resid_pre": zero})
    assert (embed == 1).all() and (resid == 1).all()


@pytest.mark.parametrize("name", SUPPORTED_ACTIVATIONS)
def test_every_activation_in_place_computes_the_same_function(name):
    from poslens.models.block import act_fn

    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    out = act_fn(name)(x.clone())
    y = x.clone()
    assert torch.equal(act_fn(name, in_place=True)(y), out)
    assert not torch.equal(out, x)


def test_activation_in_place_never_touches_a_kept_or_edited_pre_activation(small_ckpt):
    # The MLP overwrites its pre-activation when nothing needs it; a kept hook_pre (the same
    # storage on a float32 CPU run) or a tensor an edit returns must come back untouched.
    r = Runner(load_weights(str(small_ckpt)))
    tokens = torch.arange(8)[None]
    pre, post = "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post"
    both = r.run(tokens, hooks=[pre, post])
    assert torch.allclose(both[post], torch.nn.functional.gelu(both[pre], approximate="tanh"), atol=1e-6)
    assert not torch.allclose(both[pre], both[post])
    assert torch.equal(r.run(tokens, hooks=[post])[post], both[post])
    mine = torch.ones(1, 8, r.cfg.d_mlp)
    r.run(tokens, hooks=[post], edits={pre: lambda x, hook: mine})
    assert torch.equal(mine, torch.ones_like(mine))


# ---- batching and dtype --------------------------------------------------------------------------
def test_batched_run_equals_unbatched(small_ckpt):
    r = Runner(load_weights(str(small_ckpt)))
    tokens = torch.randint(0, 512, (5, 20), generator=torch.Generator().manual_seed(2))
    hooks = ["blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post"]
    whole = r.run(tokens, hooks=hooks, logits=True)
    batched = r.run(tokens, hooks=hooks, logits=True, batch_size=2, progress=False)
    for n in whole:
        assert batched[n].shape == whole[n].shape
        assert torch.allclose(batched[n], whole[n], atol=1e-5), n


# bfloat16 keeps 8 mantissa bits (relative precision 2^-8 = 0.4%). Stated tolerance: over two
# layers and the unembedding, the max abs error stays within 2% of the largest |activation|
# and the RMS error within 1% of the RMS activation (measured: ~0.6% and ~0.6%).
BF16_MAX_REL = 0.02
BF16_RMS_REL = 0.01


def test_bfloat16_close_to_float32(small_ckpt):
    w = load_weights(str(small_ckpt))
    tokens = torch.randint(0, 512, (2, 32), generator=torch.Generator().manual_seed(3))
    f32 = Runner(w).run(tokens, hooks=["blocks.1.hook_resid_post"], logits=True)
    bf16 = Runner(w, dtype="bfloat16").run(tokens, hooks=["blocks.1.hook_resid_post"], logits=True)
    for n in f32:
        assert bf16[n].dtype == torch.float32  # activations come back as float32
        err = bf16[n] - f32[n]
        assert err.abs().max() <= BF16_MAX_REL * f32[n].abs().max(), n
        assert err.pow(2).mean().sqrt() <= BF16_RMS_REL * f32[n].pow(2).mean().sqrt(), n
        assert err.abs().max() > 0  # it really ran in bfloat16


# ---- input errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(tokens=torch.tensor([[1, 2, 512]]), hooks=["logits"]), InvalidInputError, "token id 512"),
        (dict(tokens=torch.zeros(1, 129, dtype=torch.long), hooks=["logits"]), InvalidInputError, "n_ctx=128"),
        (dict(tokens=torch.tensor([[1, 2]]), hooks=["blocks.2.hook_resid_post"]), InvalidInputError, "layers 0..1"),
        (dict(tokens=torch.tensor([[1, 2]]), hooks=["blocks.0.attn.hook_patern"]), UnknownHookError,
         "blocks.0.attn.hook_pattern"),
        (dict(tokens=torch.tensor([[1, 2]]), hooks=[]), InvalidInputError, "nothing to compute"),
        (dict(tokens=torch.tensor([[1.0, 2.0]]), hooks=["logits"]), InvalidInputError, "integer ids"),
        (dict(embed=torch.zeros(1, 4, 7), hooks=["logits"]), InvalidInputError, "[batch, pos, 64]"),
        (dict(embed=torch.zeros(1, 0, 64), hooks=["logits"]), InvalidInputError, "embed is empty"),
        (dict(embed=torch.zeros(1, 4, 64, dtype=torch.complex64), hooks=["logits"]), InvalidInputError, "real"),
        (dict(tokens=torch.tensor([[True, False]]), hooks=["logits"]), InvalidInputError, "integer ids"),
        (dict(tokens=[[1, 2, 3], [1, 2]], hooks=["logits"]), InvalidInputError, "equal length"),
        (dict(tokens="hello", hooks=["logits"]), InvalidInputError, "tokens must be a tensor"),
        (dict(resid=torch.zeros(1, 4, 64), start_at_layer=1, hooks=["blocks.0.hook_resid_post"]), InvalidInputError,
         "before start_at_layer=1"),
        (dict(tokens=torch.tensor([[1, 2]]), edits={"blocks.0.attn.hook_z": 0}), InvalidInputError, "not a function"),
        (dict(tokens=torch.tensor([[1, 2]]), edits={"blocks.0.attn.hook_z": lambda z, hook: 0}, logits=True),
         InvalidInputError, "returned a int"),
        (dict(tokens=torch.tensor([[1, 2]]), hooks=["logits"], batch_size=-1), InvalidInputError, "batch_size"),
        (dict(tokens=torch.tensor([[1, 2]]), hooks=["logits"], batch_size=1.5), InvalidInputError, "batch_size"),
        (dict(tokens=torch.tensor([[1, 2]]), hooks=["logits"], batch_size=0), InvalidInputError, "batch_size"),
        (dict(resid=torch.zeros(1, 4, 64), start_at_layer=1.0, hooks=["logits"]), InvalidInputError, "got 1.0"),
        (dict(resid=torch.zeros(1, 4, 64), start_at_layer=True, hooks=["logits"]), InvalidInputError, "got True"),
        (dict(tokens=torch.tensor([[1, 2]]), hooks=["logits"], prefix=[1, 2]), InvalidInputError, "takes a Prefix"),
    ],
)
def test_bad_input_raises_clear_error(small_ckpt, kwargs, error, words):
    r = Runner(load_weights(str(small_ckpt)))
    with pytest.raises(error) as e:
        r.run(**kwargs)
    assert isinstance(e.value, PoslensError)
    assert words in str(e.value)


def test_inputs_a_notebook_passes_run_as_meant(small_ckpt):
    """Numpy ids, other integer dtypes, a single hook name as a string, embed as an array."""
    r = Runner(load_weights(str(small_ckpt)))
    ids = torch.tensor([[3, 200, 7, 255]])
    name = "blocks.0.hook_resid_post"
    want = r.run(ids, hooks=[name])[name]
    for same in (ids.numpy(), ids.to(torch.uint8), ids.to(torch.int32)):  # uint8 had indexed as a mask
        assert torch.equal(r.run(same, hooks=[name])[name], want)
    assert list(r.run(ids, hooks=name)) == [name]  # one name, not its characters
    assert list(r.run(ids, hooks=None, logits=True)) == ["logits"]
    emb = torch.randn(1, 4, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(r.run(embed=emb.numpy(), hooks=name)[name], r.run(embed=emb, hooks=name)[name])


@pytest.mark.parametrize("kwargs, words", [
    (dict(device="nope"), "not a torch device"),
    (dict(device="cuda:99"), "cuda:99"),
    (dict(dtype=torch.int32), "float dtype"),
])
def test_bad_runner_settings_are_refused_when_built(small_ckpt, kwargs, words):
    w = load_weights(str(small_ckpt))
    with pytest.raises(InvalidInputError, match=words):
        Runner(w, **kwargs)
    with pytest.raises(InvalidInputError, match="needs the model's Weights"):
        Runner(str(small_ckpt))
    with pytest.raises(InvalidInputError, match="layer 5 is out of range"):
        Runner(w).layer(5)


def test_bad_input_reads_nothing(small_ckpt):
    w = load_weights(str(small_ckpt))
    with pytest.raises(InvalidInputError):
        Runner(w).run(torch.zeros(1, 500, dtype=torch.long), hooks=["blocks.0.hook_resid_post"])
    assert w.source.reads == []


def test_float64_runs_stay_float64(small_ckpt):
    """A float64 run is a reference computation: its softmax must not round through float32."""
    w = load_weights(str(small_ckpt))
    tokens = torch.randint(0, 512, (1, 24), generator=torch.Generator().manual_seed(5))
    name = "blocks.1.attn.hook_pattern"
    pat = Runner(w, dtype="float64").run(tokens, hooks=[name])[name]
    assert pat.dtype == torch.float64
    assert (pat.sum(-1) - 1).abs().max() < 1e-13


def test_in_memory_weights_read_no_tokenizer_from_the_working_directory(small_ckpt, tmp_path, monkeypatch):
    from poslens.models import Weights

    (tmp_path / "vocab.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    w = Weights.from_state_dict(load_weights(str(small_ckpt)).to_hf_state_dict(), load_weights(str(small_ckpt)).cfg)
    assert w.source.tokenizer_files() == {}


def test_cached_prefix_matches_the_full_run_and_accepts_edits(small_ckpt, small_cfg):
    runner = Runner(load_weights(str(small_ckpt)))
    g = torch.Generator().manual_seed(5)
    prefix_ids = torch.randint(0, small_cfg.d_vocab, (2, 9), generator=g)  # one prefix row per suffix row
    suffixes = torch.randint(0, small_cfg.d_vocab, (2, 5), generator=g)
    hooks = ["hook_pos_embed", "blocks.0.attn.hook_pattern", "blocks.1.attn.hook_result", "blocks.1.hook_resid_post"]
    zero = {"blocks.0.attn.hook_z": lambda z, hook: z.index_fill(2, torch.tensor([1]), 0)}
    full = runner.run(torch.cat([prefix_ids, suffixes], 1), hooks=hooks, logits=True)
    prefix = runner.prefix(prefix_ids)
    part = runner.run(suffixes, prefix=prefix, hooks=hooks, logits=True)
    for name in [*hooks, "logits"]:
        want = full[name][:, :, 9:] if name.endswith("pattern") else full[name][:, 9:]
        assert (part[name] - want).abs().max().item() <= 1e-5, name
    # an edit on the suffix positions only changes what follows them
    edited = runner.run(suffixes, prefix=prefix, hooks=["logits"], edits=zero)
    assert not torch.allclose(edited["logits"], part["logits"])
    with pytest.raises(InvalidInputError, match="another Runner"):
        Runner(load_weights(str(small_ckpt))).run(suffixes, prefix=prefix, logits=True)
    with pytest.raises(InvalidInputError, match="prefix has 2 rows and the suffix 3"):
        runner.run(torch.zeros(3, 2, dtype=torch.long), prefix=prefix, logits=True)
    with pytest.raises(InvalidInputError, match="9 prefix \\+ 120 positions is longer"):
        runner.run(torch.zeros(2, 120, dtype=torch.long), prefix=prefix, logits=True)


def test_a_prefix_extended_token_by_token_is_the_prefix_of_the_whole(small_ckpt, small_cfg):
    runner = Runner(load_weights(str(small_ckpt)))
    ids = torch.randint(0, small_cfg.d_vocab, (2, 12), generator=torch.Generator().manual_seed(7))
    whole = runner.prefix(ids)
    grown = runner.prefix(ids[:, :5], logits=True)
    for t in range(5, 12):
        grown = runner.prefix(ids[:, t:t + 1], after=grown, logits=True)
    assert torch.equal(grown.tokens, whole.tokens)
    for (k, v), (k2, v2) in zip(grown.kv, whole.kv):
        assert (k - k2).abs().max().item() <= 1e-5 and (v - v2).abs().max().item() <= 1e-5
    full = runner.run(ids, logits=True)["logits"][:, -1]
    assert (grown.logits - full).abs().max().item() <= 1e-4
    with pytest.raises(InvalidInputError, match="another Runner"):
        Runner(load_weights(str(small_ckpt))).prefix(ids[:, :1], after=grown)
    with pytest.raises(InvalidInputError, match="12 prefix \\+ 128 positions is longer"):
        runner.prefix(torch.zeros(2, small_cfg.n_ctx, dtype=torch.long), after=grown)


def test_trainer_and_runner_compute_the_same_function():
    from poslens.models import Weights
    from poslens.train.model import TrainableGPT2

    cfg = small_config(n_layers=3, scale_attn_by_inverse_layer_idx=True)
    model = TrainableGPT2(cfg)
    model.init_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():  # LayerNorms and biases off their init, so every parameter matters
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    tokens = torch.randint(0, cfg.d_vocab, (2, 24), generator=torch.Generator().manual_seed(1))
    ours = Runner(Weights.from_state_dict(model.hf_state_dict(), cfg)).run(tokens, logits=True).logits
    trained = model(tokens)
    assert (trained.detach() - ours).abs().max().item() <= 1e-5
    trained.sum().backward()  # the shared block is differentiable through the module's parameters
    assert model.h[0].attn.c_attn.weight.grad is not None and model.wpe.weight.grad.abs().sum() > 0
