"""A trainable GPT-2 whose parameter names and layouts are Hugging Face's, so its state
dict saves straight to a checkpoint that poslens and ``transformers`` both load.

The forward pass here is the training one (dropout-free, fused attention); analyses use
:class:`poslens.models.Runner`, and a test checks the two agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models.config import ModelConfig
from ..models.runner import act_fn


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight stored as [in, out]."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class _Attn(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.cfg, self.layer = cfg, layer
        self.c_attn = Conv1D(cfg.d_model, 3 * cfg.d_model)
        self.c_proj = Conv1D(cfg.d_model, cfg.d_model)

    def forward(self, x):
        B, P, _ = x.shape
        q, k, v = self.c_attn(x).view(B, P, 3, self.cfg.n_heads, self.cfg.d_head).permute(2, 0, 3, 1, 4)
        scale = (1 / math.sqrt(self.cfg.d_head) if self.cfg.scale_attn_weights else 1.0) / (
            (self.layer + 1) if self.cfg.scale_attn_by_inverse_layer_idx else 1)
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
        return self.c_proj(z.transpose(1, 2).reshape(B, P, -1))


class _MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = Conv1D(cfg.d_model, cfg.d_mlp)
        self.c_proj = Conv1D(cfg.d_mlp, cfg.d_model)
        self.act = act_fn(cfg.act_fn)

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class _Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=cfg.eps)
        self.attn = _Attn(cfg, layer)
        self.ln_2 = nn.LayerNorm(cfg.d_model, eps=cfg.eps)
        self.mlp = _MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TrainableGPT2(nn.Module):
    def __init__(self, cfg: ModelConfig, wpe_init_scale: float = 1.0, wpe_init: str = "normal"):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.d_vocab, cfg.d_model)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.h = nn.ModuleList([_Block(cfg, l) for l in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.eps)
        self.wpe_init_scale = wpe_init_scale
        self.wpe_init = wpe_init

    def init_weights(self, generator: torch.Generator) -> None:
        """GPT-2's initialisation (N(0, 0.02); residual projections / sqrt(2 n_layers)); W_pos
        normal or sinusoidal, at ``wpe_init_scale`` times that std."""
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
                    p.normal_(0, std / math.sqrt(2 * self.cfg.n_layers), generator=generator)
                else:
                    p.normal_(0, std, generator=generator)

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
