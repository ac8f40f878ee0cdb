"""Checkpoints with planted positional structure: attention sinks and a log-position channel.

``planted_sink_checkpoint``: chosen heads get a key bias toward position 0 (position 0's
embedding alone carries a marker direction their keys read, and their query bias points
at it), so they put nearly all their attention on the first position; every other head has
a zero query, so it attends uniformly and its first-position attention, averaged over the
queries, is H_T / T (0.074 at T = 64), far under the 0.3 threshold. The sink share is the
planted share exactly.

``planted_log_position_checkpoint``: a model without positional embeddings (W_pos = 0, no
normalisation) in which one layer writes log(p + 1) onto a residual channel: a head with
zero queries attends uniformly and reads a BOS marker, giving 1/(p + 1); that layer's ReLU
MLP maps 1/(p + 1) to log(p + 1) exactly at every position (piecewise-linear interpolation
with a knot at each 1/(p + 1)) and removes the 1/(p + 1) channel again. Before that layer
the residual stream holds no position but the BOS marker at position 0.

>>> planted = planted_sink_checkpoint(tmp_path / "sinks", sink_heads=((0, 1), (1, 2)))   # doctest: +SKIP
>>> planted.share                                                                        # doctest: +SKIP
0.25
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.config import ModelConfig
from .checkpoints import plant_qkv, random_state_dict, small_config, write_checkpoint


@dataclass(frozen=True)
class PlantedSinks:
    path: Path
    sink_heads: tuple[tuple[int, int], ...]
    n_layers: int
    n_heads: int

    @property
    def share(self) -> float:
        return len(self.sink_heads) / (self.n_layers * self.n_heads)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{l}.{h}" for l, h in self.sink_heads)


def planted_sink_checkpoint(path: str | Path, sink_heads=((0, 1), (1, 2), (1, 3)), n_layers: int = 2, n_heads: int = 4,
                            d_model: int = 64, n_ctx: int = 128, d_vocab: int = 512, marker: float = 10.0,
                            strength: float = 5.0, seed: int = 0) -> PlantedSinks:
    """Write the planted-sink model; ``strength`` sets both the query bias and the key read-out of the marker."""
    cfg = small_config(n_layers=n_layers, n_heads=n_heads, d_model=d_model, n_ctx=n_ctx, d_vocab=d_vocab)
    sd = random_state_dict(cfg, seed=seed)
    d, dh = d_model, cfg.d_head
    g = torch.Generator().manual_seed(seed + 1)
    M = torch.randn(d, d, generator=g, dtype=torch.float64)
    M[:, 0] = 1.0
    Q, _ = torch.linalg.qr(M)
    m = Q[:, 1]  # orthogonal to the all-ones direction: LayerNorm's centring keeps it
    P = torch.eye(d, dtype=torch.float64) - torch.outer(m, m)
    sd["wte.weight"] = (sd["wte.weight"].double() @ P).float()
    wpe = sd["wpe.weight"].double() @ P
    wpe[0] += marker * m
    sd["wpe.weight"] = wpe.float()
    planted = {(int(l), int(h)) for l, h in sink_heads}
    for l in range(n_layers):
        proj = sd[f"h.{l}.attn.c_proj.weight"].clone()
        for h in range(n_heads):
            plant_qkv(sd, l, h, dh, W_Q=0.0, b_Q=0.0)
            if (l, h) in planted:
                b_Q, W_K = torch.zeros(dh), torch.zeros(d, dh)
                b_Q[0] = strength  # the query bias points along key dimension 0 ...
                W_K[:, 0] = strength * m  # ... which reads the first position's marker
                plant_qkv(sd, l, h, dh, b_Q=b_Q, W_K=W_K, b_K=0.0)
                proj[h * dh : (h + 1) * dh] = 0.0  # no output: the marker does not leak into later positions
        sd[f"h.{l}.attn.c_proj.weight"] = proj
    path = write_checkpoint(path, cfg, sd)
    return PlantedSinks(Path(path), tuple(sorted(planted)), n_layers, n_heads)


@dataclass(frozen=True)
class PlantedLogPosition:
    path: Path
    layer: int  # the block that writes log(p + 1)
    point: int  # the first residual point holding it (layer + 1)
    channel: int
    n_ctx: int
    bos: int


def planted_log_position_checkpoint(path: str | Path, layer: int = 1, n_layers: int = 3, n_ctx: int = 64,
                                    d_model: int = 64, d_vocab: int = 256, seed: int = 0) -> PlantedLogPosition:
    """Write the planted log-position model (BOS is token 0; sequences must start with it)."""
    if not 0 <= layer < n_layers:
        raise ValueError("layer must be one of the model's layers")
    cfg = ModelConfig(n_layers=n_layers, n_heads=2, d_model=d_model, n_ctx=n_ctx, d_vocab=d_vocab,
                      d_mlp=max(4 * d_model, n_ctx + 1), act_fn="relu", normalization="none", bos_token_id=0)
    sd = random_state_dict(cfg, seed=seed)
    d, T = d_model, n_ctx
    A, A2, B = 0, 1, 2  # BOS marker, 1/(p+1), log(p+1)
    g = torch.Generator().manual_seed(seed + 1)
    wte = torch.randn(d_vocab, d, generator=g)
    wte[:, :3] = 0.0
    wte[0] = 0.0
    wte[0, A] = 1.0
    sd["wte.weight"] = wte
    sd["wpe.weight"] = torch.zeros(n_ctx, d)
    for l in range(n_layers):
        sd[f"h.{l}.attn.c_proj.weight"] = torch.zeros(d, d)
        sd[f"h.{l}.attn.c_proj.bias"] = torch.zeros(d)
        sd[f"h.{l}.mlp.c_proj.weight"] = torch.zeros(cfg.d_mlp, d)
        sd[f"h.{l}.mlp.c_proj.bias"] = torch.zeros(d)
    p = f"h.{layer}."
    w, b = torch.zeros(d, 3 * d), torch.zeros(3 * d)  # all-zero q, k, v: every head attends uniformly
    w[A, 2 * d] = 1.0  # head 0's value dimension 0 reads the BOS marker ...
    proj = torch.zeros(d, d)
    proj[0, A2] = 1.0  # ... and writes the average, 1/(p+1), onto channel A2
    sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"] = w, b
    sd[p + "attn.c_proj.weight"] = proj
    # ReLU interpolation of -log(x) through the knots x_j = 1/(T - j), ascending.
    x = torch.tensor([1.0 / (T - j) for j in range(T)], dtype=torch.float64)
    y = -torch.log(x)
    s = (y[1:] - y[:-1]) / (x[1:] - x[:-1])  # slope on [x_j, x_{j+1}]
    W_in = torch.zeros(d, cfg.d_mlp, dtype=torch.float64)
    b_in = torch.zeros(cfg.d_mlp, dtype=torch.float64)
    W_out = torch.zeros(cfg.d_mlp, d, dtype=torch.float64)
    b_out = torch.zeros(d, dtype=torch.float64)
    for j in range(T - 1):
        W_in[A2, j] = 1.0
        b_in[j] = -x[j]
        W_out[j, B] = s[j] - (s[j - 1] if j else 0.0)
    b_out[B] = y[0]
    W_in[A2, T - 1] = 1.0  # relu(x) = x: take 1/(p+1) back off the residual stream
    W_out[T - 1, A2] = -1.0
    sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"] = W_in.float(), b_in.float()
    sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"] = W_out.float(), b_out.float()
    path = write_checkpoint(path, cfg, sd)
    return PlantedLogPosition(Path(path), layer, layer + 1, B, n_ctx, 0)


@dataclass(frozen=True)
class PlantedRotaryHead:
    path: Path
    layer: int
    head: int
    scale: float  # the head's score at zero offset (after 1/sqrt(d_head))

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.head}"


def planted_rotary_checkpoint(path: str | Path, head: int = 2, d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                              n_ctx: int = 64, d_vocab: int = 101, scale: float = 1000.0, seed: int = 0) -> PlantedRotaryHead:
    """A Llama-style model (written by ``transformers``) whose layer-0 head ``head`` is built on the highest
    rotary frequency pair alone.

    Every token embedding shares one large direction, so after RMSNorm the residual is nearly
    the same vector everywhere; the head's query and key read it into dimension 0, the first
    half of rotary pair 0 (one radian per position). Its score between positions i and j is
    then ``scale * cos(i - j)``: largest on the diagonal, and with ``scale`` 1000 the next best
    offsets under 45 positions (6, 19, 25: cos 0.960, 0.989, 0.991) get a factor e^-9 or less.
    """
    import transformers

    cfg = transformers.LlamaConfig(hidden_size=d_model, num_hidden_layers=n_layers, num_attention_heads=n_heads,
                                   num_key_value_heads=n_heads, intermediate_size=2 * d_model,
                                   max_position_embeddings=n_ctx, vocab_size=d_vocab, bos_token_id=None,
                                   eos_token_id=None, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    dh = d_model // n_heads
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb.normal_(0, 0.01)
        emb[:, 0] += 1.0  # the shared direction e_0: RMSNorm maps every token near sqrt(d_model) e_0
        attn = model.model.layers[0].self_attn
        model.model.layers[0].input_layernorm.weight.fill_(1.0)
        a = math.sqrt(scale * math.sqrt(dh)) / math.sqrt(d_model)  # q0 = k0 = a * sqrt(d): score = a^2 d / sqrt(dh)
        for proj in (attn.q_proj, attn.k_proj):
            proj.weight[head * dh : (head + 1) * dh] = 0.0
            proj.weight[head * dh, 0] = a
    model.save_pretrained(path)
    return PlantedRotaryHead(Path(path), 0, head, scale)
