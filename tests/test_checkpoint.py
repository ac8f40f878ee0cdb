"""Checkpoint: lazy reads of single tensors, both name styles, every file format, partial
checkpoints, and clear errors for missing tensors and damaged files."""

from __future__ import annotations

import json

import pytest
import torch

from poslens.errors import CorruptCheckpointError, MissingTensorError, UnknownModelError, UnsupportedArchitectureError
from poslens.models import Checkpoint, load_weights, open_checkpoint
from poslens.models.checkpoint import expected_names
from poslens.testing import random_state_dict, small_config, write_checkpoint


@pytest.fixture(scope="module")
def sd_cfg():
    cfg = small_config()
    return random_state_dict(cfg, seed=1), cfg


@pytest.mark.parametrize("fmt, prefix", [("safetensors", False), ("safetensors", True), ("bin", False), ("bin", True)])
def test_formats_and_name_styles_read_the_same(tmp_path, sd_cfg, fmt, prefix):
    sd, cfg = sd_cfg
    ckpt = Checkpoint.from_dir(write_checkpoint(tmp_path / "m", cfg, sd, fmt=fmt, prefix=prefix))
    assert ckpt.names() == sorted(expected_names(cfg))
    assert ckpt.missing() == []
    assert torch.equal(ckpt.get("wpe.weight"), sd["wpe.weight"])
    assert torch.equal(ckpt.get("h.1.mlp.c_fc.weight"), sd["h.1.mlp.c_fc.weight"])
    assert ckpt.shape("h.0.attn.c_attn.weight") == (cfg.d_model, 3 * cfg.d_model)
    assert ckpt.reads == ["wpe.weight", "h.1.mlp.c_fc.weight"]


def test_w_pos_read_touches_no_other_tensor(tmp_path, sd_cfg):
    sd, cfg = sd_cfg
    w = load_weights(str(write_checkpoint(tmp_path / "m", cfg, sd)))
    assert w.W_pos.shape == (cfg.n_ctx, cfg.d_model)
    assert w.source.reads == ["wpe.weight"]


def test_sharded_safetensors(tmp_path, sd_cfg):
    from safetensors.torch import save_file

    sd, cfg = sd_cfg
    d = tmp_path / "sharded"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg.to_hf_dict()))
    names = sorted(sd)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for fn, keys in shards.items():
        save_file({f"transformer.{k}": sd[k].contiguous() for k in keys}, str(d / fn))
        weight_map.update({f"transformer.{k}": fn for k in keys})
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    ckpt = Checkpoint.from_dir(d)
    assert ckpt.missing() == []
    for k in (names[0], names[-1]):
        assert torch.equal(ckpt.get(k), sd[k])


def test_lm_head_and_attention_buffers_are_not_parameters(tmp_path, sd_cfg):
    sd, cfg = sd_cfg
    extra = dict(sd, **{"lm_head.weight": sd["wte.weight"].clone(), "h.0.attn.bias": torch.ones(1, 1, 8, 8),
                        "h.0.attn.masked_bias": torch.tensor(-1e4)})
    ckpt = Checkpoint.from_dir(write_checkpoint(tmp_path / "m", cfg, extra, prefix=True))
    assert ckpt.names() == sorted(expected_names(cfg))


def test_partial_checkpoint_loads_and_names_what_is_missing(tmp_path, sd_cfg):
    sd, cfg = sd_cfg
    drop = ("wte.weight",) + tuple(k for k in sd if ".mlp." in k)
    ckpt = Checkpoint.from_dir(write_checkpoint(tmp_path / "m", cfg, sd, drop=drop))
    assert set(ckpt.missing()) == set(drop)
    with pytest.raises(MissingTensorError) as e:
        ckpt.get("h.0.mlp.c_fc.weight", needed_for="the PVO of neuron 3")
    assert e.value.tensor == "h.0.mlp.c_fc.weight"
    assert "h.0.mlp.c_fc.weight" in str(e.value) and "the PVO of neuron 3" in str(e.value)
    assert ckpt.reads == []


def test_real_partial_checkpoint(partial_ckpt):
    ckpt = open_checkpoint(str(partial_ckpt))
    assert (ckpt.config.n_layers, ckpt.config.d_model, ckpt.config.n_ctx) == (12, 768, 1024)
    missing = set(ckpt.missing())
    assert "wte.weight" in missing and "h.11.mlp.c_proj.weight" in missing
    assert "wpe.weight" not in missing and "h.5.attn.c_attn.weight" not in missing
    W_pos = ckpt.get("wpe.weight")
    assert W_pos.shape == (1024, 768) and ckpt.reads == ["wpe.weight"]
    # GPT-2 small's W_pos: row 0 is the well-known outlier with the largest norm
    norms = W_pos.norm(dim=1)
    assert int(norms.argmax()) == 0


def test_corrupt_and_truncated_safetensors(tmp_path, sd_cfg):
    sd, cfg = sd_cfg
    good = write_checkpoint(tmp_path / "good", cfg, sd)
    bad = tmp_path / "garbage"
    bad.mkdir()
    (bad / "config.json").write_text((good / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(CorruptCheckpointError, match="not a readable safetensors file"):
        Checkpoint.from_dir(bad)
    cut = tmp_path / "truncated"
    cut.mkdir()
    (cut / "config.json").write_text((good / "config.json").read_text())
    data = (good / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match="truncated|not a readable"):
        Checkpoint.from_dir(cut).get("h.1.mlp.c_proj.weight")


def test_bad_directories(tmp_path, sd_cfg):
    sd, cfg = sd_cfg
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UnknownModelError, match="no config.json"):
        Checkpoint.from_dir(empty)
    nowt = tmp_path / "noweights"
    nowt.mkdir()
    (nowt / "config.json").write_text(json.dumps(cfg.to_hf_dict()))
    with pytest.raises(CorruptCheckpointError, match="no weights"):
        Checkpoint.from_dir(nowt)
    (nowt / "config.json").write_text("{not json")
    with pytest.raises(CorruptCheckpointError, match="not valid JSON"):
        Checkpoint.from_dir(nowt)


@pytest.mark.parametrize("model_type, arch", [("bloom", "BloomForCausalLM"), ("t5", "T5ForConditionalGeneration")])
def test_unsupported_family_names_the_supported_ones(tmp_path, model_type, arch):
    d = tmp_path / model_type
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": [arch]}))
    with pytest.raises(UnsupportedArchitectureError, match=f"'{model_type}' model .*gpt2.*gpt_neo.*opt.*gpt_neox.*llama"):
        Checkpoint.from_dir(d)


@pytest.mark.parametrize("model_type", ["llama", "gpt_neox"])
def test_supported_family_with_missing_fields_says_which(tmp_path, model_type):
    d = tmp_path / model_type
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": model_type}))
    with pytest.raises(CorruptCheckpointError, match="lacks the .* field 'hidden_size'"):
        Checkpoint.from_dir(d)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("tensor, shape", [("wpe.weight", (100, 64)), ("h.1.attn.c_attn.weight", (64, 96))])
def test_wrong_tensor_shape_is_one_clear_error_before_any_work(tmp_path, sd_cfg, tensor, shape, fmt):
    from click.testing import CliRunner

    from poslens.cli import cli

    sd, cfg = sd_cfg
    bad = dict(sd, **{tensor: torch.zeros(shape)})
    path = write_checkpoint(tmp_path / "m", cfg, bad, fmt=fmt)
    with pytest.raises(CorruptCheckpointError) as exc:
        open_checkpoint(str(path))
    msg = str(exc.value)
    assert f"'{tensor}' has shape {list(shape)}" in msg
    expected = {"wpe.weight": [128, 64], "h.1.attn.c_attn.weight": [64, 192]}[tensor]
    assert f"implies {expected}" in msg
    r = CliRunner().invoke(cli, ["helix", "-m", str(path), "-o", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    err = r.output.strip()
    assert err.startswith("poslens: error:") and f"'{tensor}' has shape" in err and "\n" not in err
    assert "mat1 and mat2" not in err and not (tmp_path / "out").exists()
