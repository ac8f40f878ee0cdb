"""Write real checkpoint directories (config.json + model.safetensors) for tests.

>>> cfg = small_config()
>>> sd = random_state_dict(cfg, seed=0)
>>> path = write_checkpoint(tmp_path / "m", cfg, sd)        # doctest: +SKIP
>>> Checkpoint.from_dir(path).config.n_layers               # doctest: +SKIP
2
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..models.config import ModelConfig
from ..models.save import save_checkpoint


def small_config(**kw) -> ModelConfig:
    """A small GPT-2 shape for fast tests (override any field)."""
    return ModelConfig(**{"n_layers": 2, "n_heads": 4, "d_model": 64, "n_ctx": 128, "d_vocab": 512, **kw})


def gpt2_small_config(**kw) -> ModelConfig:
    return ModelConfig(**{"n_layers": 12, "n_heads": 12, "d_model": 768, "n_ctx": 1024, "d_vocab": 50257, **kw})


def random_state_dict(cfg: ModelConfig, seed: int = 0, std: float = 0.02, ln_noise: float = 0.1) -> dict[str, torch.Tensor]:
    """Random GPT-2 weights in Hugging Face names. LayerNorm weights and all biases are
    perturbed away from 1/0 so folding and centring are exercised for real."""
    g = torch.Generator().manual_seed(seed)
    d, m = cfg.d_model, cfg.d_mlp

    def n(*shape, s=std):
        return torch.randn(*shape, generator=g) * s

    sd = {"wte.weight": n(cfg.d_vocab, d), "wpe.weight": n(cfg.n_ctx, d, s=std / 2)}
    for l in range(cfg.n_layers):
        p = f"h.{l}."
        sd.update({
            p + "ln_1.weight": 1 + n(d, s=ln_noise), p + "ln_1.bias": n(d, s=ln_noise),
            p + "attn.c_attn.weight": n(d, 3 * d), p + "attn.c_attn.bias": n(3 * d),
            p + "attn.c_proj.weight": n(d, d), p + "attn.c_proj.bias": n(d),
            p + "ln_2.weight": 1 + n(d, s=ln_noise), p + "ln_2.bias": n(d, s=ln_noise),
            p + "mlp.c_fc.weight": n(d, m), p + "mlp.c_fc.bias": n(m),
            p + "mlp.c_proj.weight": n(m, d), p + "mlp.c_proj.bias": n(d),
        })
    sd["ln_f.weight"] = 1 + n(d, s=ln_noise)
    sd["ln_f.bias"] = n(d, s=ln_noise)
    return sd


def plant_qkv(sd: dict[str, torch.Tensor], layer: int, head: int, d_head: int, **parts) -> None:
    """Overwrite head ``head``'s columns of GPT-2's fused ``c_attn`` in layer ``layer`` (Conv1D
    layout [d_model, 3 * d_model]: Q, K, V thirds, heads contiguous within each), in place.

    ``parts`` are ``W_Q``/``W_K``/``W_V`` ([d_model, d_head]) and ``b_Q``/``b_K``/``b_V``
    ([d_head]), tensors or scalars; a part not given keeps its stored value.

    >>> sd = random_state_dict(small_config())
    >>> plant_qkv(sd, 0, 1, 16, W_Q=0.0, b_Q=0.0)
    >>> float(sd["h.0.attn.c_attn.weight"][:, 16:32].abs().sum())
    0.0
    """
    p = f"h.{layer}.attn.c_attn."
    w, b = sd[p + "weight"].clone(), sd[p + "bias"].clone()
    d = w.shape[0]
    for part, value in parts.items():
        start = "QKV".index(part[-1]) * d + head * d_head
        cols = slice(start, start + d_head)
        if part.startswith("W_"):
            w[:, cols] = value
        else:
            b[cols] = value
    sd[p + "weight"], sd[p + "bias"] = w, b


# the test builders' name for the package's one checkpoint writer
write_checkpoint = save_checkpoint


def random_checkpoint(path: str | Path, cfg: ModelConfig | None = None, seed: int = 0, **kw) -> Path:
    cfg = cfg or small_config()
    return write_checkpoint(path, cfg, random_state_dict(cfg, seed), **kw)
