"""A trainable GPT-2 whose parameter names and layouts are Hugging Face's, so its state
dict saves straight to a checkpoint that poslens and ``transformers`` both load.

Each layer runs :func:`poslens.models.block.block_forward`, the forward block the Runner
uses, on the module's own parameters (GPT-2's Conv1D layout is the block's layout), so
training and analysis compute the same function; a test checks them against each other.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models.block import block_forward
from ..models.config import ModelConfig


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight stored as [in, out] (what the block reads)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))


class _Attn(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_attn = Conv1D(cfg.d_model, 3 * cfg.d_model)
        self.c_proj = Conv1D(cfg.d_model, cfg.d_model)


class _MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = Conv1D(cfg.d_model, cfg.d_mlp)
        self.c_proj = Conv1D(cfg.d_mlp, cfg.d_model)


class _Block(nn.Module):
    """One layer's parameters under Hugging Face names, viewed by the block under its own."""

    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.cfg, self.layer = cfg, layer
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=cfg.eps)
        self.attn = _Attn(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, eps=cfg.eps)
        self.mlp = _MLP(cfg)
        self.n_kv = cfg.n_heads

    ln1_w = property(lambda self: self.ln_1.weight)
    ln1_b = property(lambda self: self.ln_1.bias)
    W_qkv = property(lambda self: self.attn.c_attn.weight)
    b_qkv = property(lambda self: self.attn.c_attn.bias)
    W_O = property(lambda self: self.attn.c_proj.weight)
    b_O = property(lambda self: self.attn.c_proj.bias)
    ln2_w = property(lambda self: self.ln_2.weight)
    ln2_b = property(lambda self: self.ln_2.bias)
    W_in = property(lambda self: self.mlp.c_fc.weight)
    b_in = property(lambda self: self.mlp.c_fc.bias)
    W_out = property(lambda self: self.mlp.c_proj.weight)
    b_out = property(lambda self: self.mlp.c_proj.bias)

    def forward(self, x):
        return block_forward(self.cfg, self.layer, self, x)[0]


class TrainableGPT2(nn.Module):
    def __init__(self, cfg: ModelConfig, wpe_init_scale: float = 1.0, wpe_init: str = "normal",
                 init_std: float = 0.02):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.d_vocab, cfg.d_model)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.h = nn.ModuleList([_Block(cfg, l) for l in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.eps)
        self.wpe_init_scale = wpe_init_scale
        self.wpe_init = wpe_init
        self.init_std = init_std

    def init_weights(self, generator: torch.Generator) -> None:
        """GPT-2's initialisation: embeddings N(0, 0.02); the attention and MLP matrices N(0,
        ``init_std``) (GPT-2: 0.02), residual projections / sqrt(2 n_layers); W_pos normal or
        sinusoidal, at ``wpe_init_scale`` times 0.02."""
        std = 0.02
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                    p.fill_(1.0)
                elif name.endswith(".bias"):
                    p.zero_()
                elif name == "wpe.weight" and self.wpe_init == "sinusoidal":
                    from ..analyses.sinusoidal import sinusoidal_encoding

                    pe = torch.from_numpy(sinusoidal_encoding(self.cfg.n_ctx, self.cfg.d_model)).to(p.dtype)
                    p.copy_(pe / pe.std() * std * self.wpe_init_scale)
                elif name == "wpe.weight":
                    p.normal_(0, std * self.wpe_init_scale, generator=generator)
                elif name.endswith("c_proj.weight"):
                    p.normal_(0, self.init_std / math.sqrt(2 * self.cfg.n_layers), generator=generator)
                elif name.startswith("h."):
                    p.normal_(0, self.init_std, generator=generator)
                else:
                    p.normal_(0, std, generator=generator)

    def zero_mlps(self) -> None:
        """Hold every MLP at zero (an attention-only model): zero weights and biases, no gradient."""
        for block in self.h:
            for p in block.mlp.parameters():
                p.requires_grad_(False)
                p.data.zero_()
            for p in block.ln_2.parameters():  # reads only into the zeroed MLP
                p.requires_grad_(False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        P = tokens.shape[1]
        x = self.wte(tokens) + self.wpe.weight[:P]
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.T  # tied unembedding

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self(batch[:, :-1])
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone().contiguous() for k, v in self.state_dict().items()}
