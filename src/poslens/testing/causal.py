"""A checkpoint with one planted causal path, for testing ablation and patching against exact predictions.

Token and position embeddings are ``s * (e_{2i} - e_{2i+1})`` for distinct pairs of
coordinates (entries exactly +-s with s = 4, mean exactly zero, mutually orthogonal), so
every residual ``E[t] + W_pos[i]`` has ``|x|^2 = 4 s^2`` and layer 0's LayerNorm is
exactly a division by ``sqrt(4 s^2 / d_model + eps)``.

The planted head (``layer`` 0, ``head``) has W_Q = 0, so it attends uniformly to positions
``0..q``; its value reads a per-token number ``values[t]`` and W_O writes it along the
readout direction ``u`` (another coordinate pair). Every other write into the residual
stream (other heads, both MLPs, layer 1, all biases) has exactly zero component along
``u``, and no embedding has any. So at any position q

    resid_post[-1] . readout = gain * mean_{k <= q} values[tokens[k]],   gain = 2 s / sqrt(4 s^2 / d_model + eps)

and patching, ablating or resampling anything can be predicted by hand: only the planted
head (and the residual stream at the token positions it reads) moves the readout.

>>> pp = planted_path_checkpoint(tmp_path / "pp")                  # doctest: +SKIP
>>> pp.metric_value(tokens)                                        # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..models.config import ModelConfig
from .checkpoints import plant_qkv, random_state_dict, write_checkpoint


@dataclass(frozen=True)
class PlantedPath:
    """What was planted, for tests to compare against."""

    path: Path
    layer: int
    head: int
    readout: tuple[float, ...]  # unit-free readout vector: u / 2
    values: tuple[float, ...]  # per-token value the head averages
    gain: float
    hook: str  # where the readout is taken (the last layer's resid_post)
    n_layers: int
    n_heads: int

    def metric_value(self, tokens, position: int = -1) -> np.ndarray:
        """The readout at ``position`` for each row of ``tokens``, computed by hand."""
        t = np.atleast_2d(tokens)
        q = position % t.shape[1]
        return self.gain * np.asarray(self.values)[t[:, : q + 1]].mean(1)

    def head_output(self, tokens) -> np.ndarray:
        """The planted head's readout contribution at every position ``[batch, pos]``."""
        t = np.atleast_2d(tokens)
        v = np.asarray(self.values)[t]
        return self.gain * np.cumsum(v, 1) / np.arange(1, t.shape[1] + 1)


def _pair(d: int, i: int) -> torch.Tensor:
    v = torch.zeros(d)
    v[2 * i], v[2 * i + 1] = 1.0, -1.0
    return v


def _remove_pair(t: torch.Tensor, j: int, dim: int = -1) -> torch.Tensor:
    """Zero the component along e_{2j} - e_{2j+1} exactly: set both coordinates to their mean."""
    t = t.clone()
    a, b = t.select(dim, 2 * j), t.select(dim, 2 * j + 1)
    m = (a + b) / 2
    a.copy_(m)
    b.copy_(m)
    return t


def planted_path_checkpoint(
    path: str | Path,
    d_model: int = 128,
    n_heads: int = 4,
    n_layers: int = 2,
    n_ctx: int = 32,
    d_vocab: int = 24,
    head: int = 2,
    seed: int = 0,
) -> PlantedPath:
    """Write the planted model and return what was planted (layer-0 head ``head`` carries the path)."""
    if d_model % 2 or d_vocab + n_ctx + 1 > d_model // 2:
        raise ValueError("the planted path needs d_vocab + n_ctx + 1 <= d_model / 2 (one coordinate pair each)")
    cfg = ModelConfig(n_layers=n_layers, n_heads=n_heads, d_model=d_model, n_ctx=n_ctx, d_vocab=d_vocab,
                      d_mlp=4 * d_model)
    d, dh = d_model, d_model // n_heads
    sd = random_state_dict(cfg, seed=seed)
    s = 4.0  # exact in float32, so the LayerNorm scale is known exactly
    E = torch.stack([_pair(d, t) for t in range(d_vocab)]) * s
    P = torch.stack([_pair(d, d_vocab + i) for i in range(n_ctx)]) * s
    uj = d_vocab + n_ctx  # the readout pair
    u = _pair(d, uj)
    sd["wte.weight"], sd["wpe.weight"] = E, P
    sd["h.0.ln_1.weight"], sd["h.0.ln_1.bias"] = torch.ones(d), torch.zeros(d)
    g = np.random.default_rng(seed)
    values = (g.integers(-8, 9, d_vocab) / 8.0).astype(np.float32)  # exact in float32
    # Planted head: zero query (uniform attention), value dim 0 reads values[token], W_O writes it on u.
    W_V = torch.zeros(d, dh)
    W_V[:, 0] = (torch.from_numpy(values)[:, None] * E / s).sum(0)  # x_n . W_V[:, 0] = 2 s values[t] / ln_scale
    plant_qkv(sd, 0, head, dh, W_Q=0.0, b_Q=0.0, W_V=W_V, b_V=0.0)
    for l in range(n_layers):
        p = f"h.{l}."
        c_proj = _remove_pair(sd[p + "attn.c_proj.weight"], uj)  # rows: concatenated heads' d_head
        if l == 0:
            c_proj[head * dh:(head + 1) * dh] = 0.0
            c_proj[head * dh] = u
        sd[p + "attn.c_proj.weight"] = c_proj
        sd[p + "attn.c_proj.bias"] = _remove_pair(sd[p + "attn.c_proj.bias"], uj)
        sd[p + "mlp.c_proj.weight"] = _remove_pair(sd[p + "mlp.c_proj.weight"], uj)
        sd[p + "mlp.c_proj.bias"] = _remove_pair(sd[p + "mlp.c_proj.bias"], uj)
    path = write_checkpoint(path, cfg, sd)
    gain = 2 * s / math.sqrt(4 * s * s / d + cfg.eps)
    return PlantedPath(Path(path), 0, head, tuple((u / 2).tolist()), tuple(float(x) for x in values), gain,
                       f"blocks.{n_layers - 1}.hook_resid_post", n_layers, n_heads)
