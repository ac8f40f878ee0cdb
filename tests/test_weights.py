"""Weights under TransformerLens names and shapes, and each processing step as a pure,
output-preserving function."""

from __future__ import annotations

import pytest
import torch

from poslens.errors import InvalidInputError
from poslens.models import Runner, Weights, load_weights
from poslens.models import processing as P
from poslens.testing import random_state_dict, small_config, write_checkpoint

TOL = 1e-4


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    cfg = small_config(n_layers=2, n_heads=4, d_model=64, d_vocab=300)
    sd = random_state_dict(cfg, seed=5, std=0.05, ln_noise=0.3)
    path = write_checkpoint(tmp_path_factory.mktemp("w") / "m", cfg, sd)
    return path, cfg, sd


@pytest.fixture(scope="module")
def tokens(model):
    cfg = model[1]
    return torch.randint(0, cfg.d_vocab, (3, 20), generator=torch.Generator().manual_seed(2))


def logits(w: Weights, tokens) -> torch.Tensor:
    return Runner(w, dtype="float64").run(tokens, logits=True).logits


def test_transformerlens_names_and_shapes(model):
    path, cfg, sd = model
    w = load_weights(str(path))
    L, H, d, dh, m, V, n = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_mlp, cfg.d_vocab, cfg.n_ctx
    assert w.W_E.shape == (V, d) and w.W_pos.shape == (n, d) and w.W_U.shape == (d, V)
    assert w.W_Q.shape == w.W_K.shape == w.W_V.shape == (L, H, d, dh)
    assert w.W_O.shape == (L, H, dh, d) and w.b_Q.shape == (L, H, dh) and w.b_O.shape == (L, d)
    assert w.W_in.shape == (L, d, m) and w.W_out.shape == (L, m, d) and w.b_in.shape == (L, m)
    # head h of W_Q is columns h*dh:(h+1)*dh of the first third of c_attn
    c_attn = sd["h.1.attn.c_attn.weight"]
    assert torch.equal(w.get("blocks.1.attn.W_Q")[2], c_attn[:, 2 * dh:3 * dh])
    assert torch.equal(w.get("blocks.1.attn.W_V")[3], c_attn[:, 2 * d + 3 * dh:2 * d + 4 * dh])
    assert torch.equal(w.get("blocks.1.attn.W_O")[1], sd["h.1.attn.c_proj.weight"][dh:2 * dh])
    assert torch.equal(w.W_U, sd["wte.weight"].T) and torch.count_nonzero(w.b_U) == 0


def test_round_trip_to_hf_names(model):
    path, cfg, sd = model
    back = load_weights(str(path)).to_hf_state_dict()
    assert set(back) == set(sd)
    for k in sd:
        assert torch.equal(back[k], sd[k]), k


def test_lazy_loading_and_bad_names(model):
    path, cfg, _ = model
    w = load_weights(str(path))
    w.get("blocks.1.attn.W_K")
    assert w.source.reads == ["h.1.attn.c_attn.weight"]
    w.get("blocks.1.attn.W_Q")  # same HF tensor: not read again
    assert w.source.reads == ["h.1.attn.c_attn.weight"]
    with pytest.raises(InvalidInputError, match="layer 7 is out of range"):
        w.get("blocks.7.attn.W_Q")
    with pytest.raises(InvalidInputError, match="did you mean 'blocks.0.attn.W_Q'"):
        w.get("blocks.0.attn.W_q")
    with pytest.raises(InvalidInputError, match="named by a string"):  # had been a TypeError from re.match
        w.get(3)


def test_from_hf_model_and_state_dict_match_the_checkpoint(model, tokens):
    transformers = pytest.importorskip("transformers")
    path, cfg, sd = model
    hf = transformers.GPT2LMHeadModel.from_pretrained(path, attn_implementation="eager").eval()
    ref = logits(load_weights(str(path)), tokens)
    assert (logits(Weights.from_hf_model(hf), tokens) - ref).abs().max() <= TOL
    tl_sd = load_weights(str(path)).state_dict()  # TransformerLens names
    assert (logits(Weights.from_state_dict(tl_sd, cfg), tokens) - ref).abs().max() <= TOL
    for not_a_model in ("gpt2", str(path), None):  # each had been an AttributeError: no attribute 'config'
        with pytest.raises(InvalidInputError, match="takes a loaded transformers model .* use load_weights"):
            Weights.from_hf_model(not_a_model)


def _same_up_to_position_constant(a: torch.Tensor, b: torch.Tensor) -> float:
    d = a - b
    return float((d - d.mean(-1, keepdim=True)).abs().max())


def test_fold_layer_norm(model, tokens):
    w = load_weights(str(model[0]))
    f = P.fold_layer_norm(w)
    assert f.processing == ("fold_layer_norm",) and w.processing == ()  # pure: the input is unchanged
    for l in range(w.cfg.n_layers):
        for ln in ("ln1", "ln2"):
            assert torch.equal(f.get(f"blocks.{l}.{ln}.w"), torch.ones(w.cfg.d_model))
            assert torch.count_nonzero(f.get(f"blocks.{l}.{ln}.b")) == 0
    assert (logits(f, tokens) - logits(w, tokens)).abs().max() <= TOL
    # reading weights are centred over d_model: a constant residual direction reads nothing
    assert f.get("blocks.0.attn.W_Q").sum(1).abs().max() <= 1e-5


def test_center_writing_weights(model, tokens):
    w = P.fold_layer_norm(load_weights(str(model[0])))
    c = P.center_writing_weights(w)
    assert c.processing[-1] == "center_writing_weights"
    for n in ("embed.W_E", "pos_embed.W_pos", "blocks.1.attn.W_O", "blocks.1.mlp.W_out", "blocks.0.attn.b_O"):
        assert c.get(n).mean(-1).abs().max() <= 1e-6, n
    assert (logits(c, tokens) - logits(w, tokens)).abs().max() <= TOL


def test_center_unembed_shifts_logits_by_a_constant_per_position(model, tokens):
    w = load_weights(str(model[0]))
    c = P.center_unembed(w)
    assert c.get("unembed.W_U").mean(-1).abs().max() <= 1e-6
    a, b = logits(c, tokens), logits(w, tokens)
    assert (a - b).abs().max() > 1e-3  # it did change the logits ...
    assert _same_up_to_position_constant(a, b) <= TOL  # ... by a constant per position only


def test_fold_value_biases(model, tokens):
    w = load_weights(str(model[0]))
    f = P.fold_value_biases(w)
    assert torch.count_nonzero(f.b_V) == 0 and not torch.equal(f.b_O, w.b_O)
    assert (logits(f, tokens) - logits(w, tokens)).abs().max() <= TOL


def test_full_processing_is_invariant(model, tokens):
    w = load_weights(str(model[0]))
    p = P.process(w)
    assert p.processing == ("fold_layer_norm", "center_writing_weights", "center_unembed", "fold_value_biases")
    assert _same_up_to_position_constant(logits(p, tokens), logits(w, tokens)) <= TOL


def test_processing_reads_and_computes_only_what_is_asked_for(model, tokens):
    w = load_weights(str(model[0]))
    p = P.process(w)
    assert w._raw == {}  # processing a whole model read nothing yet
    W_in = p.get("blocks.0.mlp.W_in")
    assert set(w._raw) and all(".0." in name for name in w._raw), sorted(w._raw)  # layer 0's tensors only
    assert p.get("blocks.0.mlp.W_in") is W_in  # computed once
    whole = P.process(load_weights(str(model[0])))
    assert torch.equal(W_in, whole.get("blocks.0.mlp.W_in"))
    assert _same_up_to_position_constant(logits(p, tokens), logits(w, tokens)) <= TOL


def test_randomize_keeps_shapes_and_scales_and_nothing_learned(model, tokens):
    w = load_weights(str(model[0]))
    r = P.randomize(w, seed=3)
    assert r.processing == ("randomize[seed=3]",) and w._raw == {}  # lazy: nothing drawn yet
    W_Q = r.get("blocks.1.attn.W_Q")
    assert set(w._raw) and all(".1." in name for name in w._raw), sorted(w._raw)  # layer 1's tensors only
    for name in ("blocks.1.attn.W_Q", "pos_embed.W_pos", "blocks.0.mlp.W_in", "unembed.b_U"):
        a, b = w.get(name), r.get(name)
        assert a.shape == b.shape
        assert abs(float(b.mean() - a.mean())) <= 5 * float(a.std()) / a.numel() ** 0.5 + 1e-7, name
        assert float(b.std()) == pytest.approx(float(a.std()), rel=0.1, abs=1e-7), name
    assert not torch.equal(W_Q, w.get("blocks.1.attn.W_Q"))
    # each tensor has its own generator: the draw depends on the seed, not on what was read first
    again = P.randomize(load_weights(str(model[0])), seed=3)
    assert torch.equal(again.get("pos_embed.W_pos"), r.get("pos_embed.W_pos")) and torch.equal(again.get("blocks.1.attn.W_Q"), W_Q)
    assert not torch.equal(P.randomize(w, seed=4).get("blocks.1.attn.W_Q"), W_Q)
    spec = load_weights(f"random=3:{model[0]}")  # the spec form every command and the report take
    assert spec.label == f"{model[0]} (random weights, seed 3)" and torch.equal(spec.get("blocks.1.attn.W_Q"), W_Q)
    assert torch.isfinite(logits(r, tokens)).all()  # a model that runs, with nothing learned
    for seed in (-1, 1.5, "a"):  # -1 ran, 1.5 ran as seed 1, "a" was a ValueError from int()
        with pytest.raises(InvalidInputError, match=f"seed is a whole number >= 0; got {seed!r}"):
            P.randomize(w, seed=seed)
    assert not torch.allclose(logits(r, tokens), logits(w, tokens), atol=1e-2)


def test_processing_a_partial_checkpoint_records_what_was_kept(partial_ckpt):
    w = P.fold_layer_norm(load_weights(str(partial_ckpt)))
    step = w.processing[0]
    assert step.startswith("fold_layer_norm[") and "ln2 of layer 0 kept" in step and "ln_final kept" in step
    assert torch.equal(w.get("blocks.0.ln1.w"), torch.ones(768))  # ln1 folded: attention weights are there
    assert "wte.weight" not in w.source.reads


def test_save_writes_a_checkpoint_that_loads_back_identically(model, tmp_path):
    from poslens.models.save import save_checkpoint, save_weights

    path, cfg, sd = model
    w = load_weights(str(path))
    out = save_weights(w, tmp_path / "copy")
    back = load_weights(str(out)).to_hf_state_dict()
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    half = save_checkpoint(tmp_path / "half", cfg, sd, fmt="bin", dtype=torch.float16, drop=("wte.weight",))
    w16 = load_weights(str(half))
    assert not w16.has("embed.W_E") and torch.equal(w16.W_pos, sd["wpe.weight"].half().float())
    assert not list(tmp_path.glob("*/*.tmp"))  # nothing half-written left beside the files
    with pytest.raises(InvalidInputError, match="unknown checkpoint format"):
        save_checkpoint(tmp_path / "x", cfg, sd, fmt="npz")


@pytest.mark.parametrize("step", [P.fold_layer_norm, P.center_writing_weights, P.center_unembed, P.fold_value_biases,
                                  P.randomize, P.process])
def test_processing_takes_what_the_analyses_take(step):
    assert step("tiny").processing == step(load_weights("tiny")).processing
    # a Runner, or anything else, failed on a missing attribute (AttributeError)
    with pytest.raises(InvalidInputError, match=f"{step.__name__} takes the model's Weights, a model name or a "
                                                "checkpoint directory; got Runner"):
        step(Runner(load_weights("tiny")))


def test_load_weights_refuses_what_is_not_a_name_or_path(tmp_path):
    w = load_weights("tiny")
    # a Weights was called an unknown model named 'Weights(...)'
    with pytest.raises(InvalidInputError, match=r"got Weights \(Weights are loaded already"):
        load_weights(w)
    with pytest.raises(InvalidInputError, match="takes a model name, hub id or checkpoint directory; got int"):
        load_weights(3)
    assert load_weights(w.source.path).cfg == w.cfg  # a path is a checkpoint directory
