"""Planted-truth checkpoints for the twisted-pair analyses.

:func:`planted_twisted_pair_checkpoint` writes a random one-layer GPT-2 (LayerNorms and
all) with three things planted, for the model part of :mod:`poslens.analyses.twisted_pair`
to recover:

* ``W_pos`` is an exact helix (radius ``radius``, period ``period`` positions, a slow drift)
  in three directions h1, h2, h3 orthogonal to the all-ones vector (so LayerNorm only rescales it);
* head ``deriv_head`` is a derivative head: its OV circuit rotates the helix plane by 90
  degrees (h1 -> h2, h2 -> -h1), so its output at position i points along f'(i);
* head ``copy_head`` copies the helix into three other directions u1, u2, u3, as the
  construction's heads copy x_j - x_i into U; and ``n_pairs`` neuron pairs at random
  indices have the construction's form: input weights g_m +- eps d_m with g_m a direction
  in the helix plane and d_m the matching tangent written into U, output weights +-o_m.

>>> p = planted_twisted_pair_checkpoint(tmp_path / "tp")          # doctest: +SKIP
>>> p.pairs                                                        # doctest: +SKIP
[(37, 110), ...]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.config import ModelConfig
from .checkpoints import plant_qkv, random_state_dict, write_checkpoint


@dataclass(frozen=True)
class PlantedTwistedPair:
    """What was planted, for tests to compare against."""

    path: Path
    deriv_head: int
    copy_head: int
    pairs: list[tuple[int, int]]
    period: float


def planted_twisted_pair_checkpoint(
    path: str | Path,
    *,
    d_model: int = 64,
    n_heads: int = 4,
    n_ctx: int = 128,
    d_mlp: int = 128,
    n_pairs: int = 4,
    period: float = 40.0,
    radius: float = 4.0,
    drift: float = 1.0,
    eps: float = 0.3,
    deriv_head: int = 0,
    copy_head: int = 1,
    seed: int = 0,
) -> PlantedTwistedPair:
    """Write the planted model and return what was planted (see the module docstring)."""
    cfg = ModelConfig(n_layers=1, n_heads=n_heads, d_model=d_model, n_ctx=n_ctx, d_vocab=32, d_mlp=d_mlp)
    dh = cfg.d_head
    sd = random_state_dict(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    B = torch.randn(d_model, d_model, generator=g, dtype=torch.float64)
    B[:, 0] = 1.0
    Q, _ = torch.linalg.qr(B)
    h1, h2, h3 = Q[:, 1], Q[:, 2], Q[:, 3]
    U = Q[:, 4:7]
    p = torch.arange(n_ctx, dtype=torch.float64)
    th = 2 * math.pi * p / period
    W_pos = radius * (torch.cos(th)[:, None] * h1 + torch.sin(th)[:, None] * h2) + drift * (p / n_ctx)[:, None] * h3
    sd["wpe.weight"] = W_pos.float()
    sd["h.0.ln_1.weight"] = torch.ones(d_model)
    sd["h.0.ln_1.bias"] = torch.zeros(d_model)

    c_proj = sd["h.0.attn.c_proj.weight"].double()
    for head, reads, writes in ((deriv_head, (h1, h2), (h2, -h1)), (copy_head, (h1, h2, h3), tuple(U.T))):
        W_V = torch.zeros(d_model, dh, dtype=torch.float64)
        c_proj[head * dh:(head + 1) * dh] = 0.0
        for a, (r, w) in enumerate(zip(reads, writes)):
            W_V[:, a] = r
            c_proj[head * dh + a] = w
        plant_qkv(sd, 0, head, dh, W_V=W_V, b_V=0.0)
    sd["h.0.attn.c_proj.weight"] = c_proj.float()

    idx = torch.randperm(d_mlp, generator=g)[: 2 * n_pairs].tolist()
    pairs = [(min(idx[2 * m], idx[2 * m + 1]), max(idx[2 * m], idx[2 * m + 1])) for m in range(n_pairs)]
    c_fc, c_out = sd["h.0.mlp.c_fc.weight"].double(), sd["h.0.mlp.c_proj.weight"].double()
    for m, (a, b) in enumerate(pairs):
        phi = 2 * math.pi * m / n_pairs
        gate = math.cos(phi) * h1 + math.sin(phi) * h2
        tangent = -math.sin(phi) * U[:, 0] + math.cos(phi) * U[:, 1]
        o = torch.randn(d_model, generator=g, dtype=torch.float64)
        o = 0.5 * o / o.norm()
        c_fc[:, a], c_fc[:, b] = gate + eps * tangent, gate - eps * tangent
        c_out[a], c_out[b] = o, -o
    sd["h.0.mlp.c_fc.weight"], sd["h.0.mlp.c_proj.weight"] = c_fc.float(), c_out.float()
    path = write_checkpoint(path, cfg, sd)
    return PlantedTwistedPair(Path(path), deriv_head, copy_head, pairs, period)
