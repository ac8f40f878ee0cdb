"""A checkpoint with a planted duplicate-token head whose attention decays exponentially with distance.

Token and position embeddings are scaled orthonormal vectors, all orthogonal to the
all-ones direction, so layer 0's LayerNorm is an exact constant rescaling. The planted
head's QK circuit then realises, exactly,

    score(q, k) = match * [tok_q == tok_k] - self_penalty * [q == k] + rate * k

which inside the causal softmax is the same as ``match - rate * (q - k)`` for an earlier
copy: attention among the copies of the current token falls by ``exp(-rate)`` per token
of distance. With ``rate=0`` and ``self_penalty=0`` the head attends uniformly to the
current position and all its earlier copies, the seed's model of head 0.5. ``groups``
makes tokens of one group match each other in the QK circuit (a head that treats '.',
',' and ' and' alike). Its OV circuit writes ``value_scale`` times the attended position
index onto a direction ``u`` that only neuron ``neuron`` of layer 0's MLP reads, so that
neuron's PVO (with the LayerNorm multiplier, MLP scale 1) is ``pvo_slope * position``
and every other neuron's PVO for the head is zero.

>>> planted = planted_duplicate_checkpoint(tmp_path / "dup", rate=0.12)   # doctest: +SKIP
>>> from poslens.analyses.heads import duplicate_heads                # doctest: +SKIP
>>> duplicate_heads(load_weights(planted.path)).ranking[0]                # doctest: +SKIP
'0.1'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.config import ModelConfig
from ..models.tokenizer import BOS, Tokenizer
from .checkpoints import plant_qkv, random_state_dict, write_checkpoint


@dataclass(frozen=True)
class PlantedDuplicate:
    """What was planted, for tests to compare against."""

    path: Path
    layer: int
    head: int
    rate: float
    neuron: int
    pvo_slope: float
    n_tokens: int  # real word tokens, ids 1..n_tokens (0 is BOS)
    groups: tuple[tuple[int, ...], ...] = ()
    self_penalty: float = 0.0
    value_scale: float = 1.0


def word_tokenizer(n_words: int) -> Tokenizer:
    """A whitespace word-level tokenizer: ``<|endoftext|>`` is id 0, ``w1``..``wN`` are ids 1..N."""
    from tokenizers import Tokenizer as TK
    from tokenizers import models, pre_tokenizers

    vocab = {BOS: 0, **{f"w{i}": i for i in range(1, n_words + 1)}}
    tk = TK(models.WordLevel(vocab, unk_token=BOS))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return Tokenizer(tk, f"word-level ({n_words} words)")


def planted_duplicate_checkpoint(
    path: str | Path,
    rate: float = 0.12,
    match: float = 14.0,
    self_penalty: float = 14.0,
    head: int = 1,
    neuron: int = 7,
    pvo_slope: float = -0.05,
    n_ctx: int = 64,
    n_words: int = 55,
    seed: int = 0,
    groups: tuple[tuple[int, ...], ...] = (),
    value_scale: float = 0.05,
    n_layers: int = 2,
) -> PlantedDuplicate:
    """Write the planted model (``n_layers`` layers, 2 heads of d_head 128, d_model 256) and return what was planted.

    ``value_scale`` keeps the head's output small next to the embeddings, so layer 0's
    MLP LayerNorm scale stays near 1 (the seed's "stable around 1.2").
    """
    n_heads, d_model = 2, 256
    d_head = d_model // n_heads
    d_vocab = n_words + 1
    if d_vocab + n_ctx + 1 > d_head:
        raise ValueError("the planted QK circuit needs d_vocab + n_ctx + 1 <= d_head")
    cfg = ModelConfig(n_layers=n_layers, n_heads=n_heads, d_model=d_model, n_ctx=n_ctx, d_vocab=d_vocab,
                      d_mlp=4 * d_model, bos_token_id=0)
    sd = random_state_dict(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    # Orthonormal basis whose first vector is the all-ones direction; the rest carry tokens and positions.
    M = torch.randn(d_model, d_model, generator=g, dtype=torch.float64)
    M[:, 0] = 1.0
    Q, _ = torch.linalg.qr(M)
    E = Q[:, 1 : 1 + d_vocab].T  # [d_vocab, d_model]
    P = Q[:, 1 + d_vocab : 1 + d_vocab + n_ctx].T  # [n_ctx, d_model]
    a = math.sqrt(d_model / 2)  # |x|^2 = d_model, so LayerNorm divides by exactly sqrt(1 + eps)
    sd["wte.weight"] = (a * E).float()
    sd["wpe.weight"] = (a * P).float()
    sd["h.0.ln_1.weight"] = torch.ones(d_model)
    sd["h.0.ln_1.bias"] = torch.zeros(d_model)

    scale = math.sqrt(d_head)  # the runner divides scores by sqrt(d_head)
    ln = math.sqrt(1 + cfg.eps)
    x_unit = a / ln  # a normalised residual is x_unit * (E_t + P_i)
    W_Q = torch.zeros(d_model, d_head, dtype=torch.float64)
    W_K = torch.zeros(d_model, d_head, dtype=torch.float64)
    b_Q = torch.zeros(d_head, dtype=torch.float64)
    c_tok = math.sqrt(match * scale) / x_unit
    # Token t's QK direction is that of its group's first member: group members match.
    group_of = torch.arange(d_vocab)
    for g_ in groups:
        for t in g_:
            group_of[int(t)] = int(g_[0])
    G = torch.nn.functional.one_hot(group_of, d_vocab).to(torch.float64)  # [d_vocab, d_vocab]
    W_Q[:, :d_vocab] = E.T @ G * c_tok
    W_K[:, :d_vocab] = E.T @ G * c_tok
    c_pos = math.sqrt(self_penalty * scale) / x_unit
    W_Q[:, d_vocab : d_vocab + n_ctx] = P.T * c_pos
    W_K[:, d_vocab : d_vocab + n_ctx] = -P.T * c_pos
    r = d_vocab + n_ctx  # the rate dimension: constant query (a bias) times key linear in position
    b_Q[r] = 1.0
    W_K[:, r] = (P.T * torch.arange(n_ctx, dtype=torch.float64)).sum(1) * rate * scale / x_unit

    # OV: value dim 0 reads the position index (linear), W_O writes it onto direction u; neuron reads u.
    W_V = torch.zeros(d_model, d_head, dtype=torch.float64)
    W_V[:, 0] = (P.T * torch.arange(n_ctx, dtype=torch.float64)).sum(1) / x_unit * value_scale
    plant_qkv(sd, 0, head, d_head, W_Q=W_Q, W_K=W_K, W_V=W_V, b_Q=b_Q, b_K=0.0, b_V=0.0)
    u = Q[:, -1]  # orthogonal to every token and position vector and to the all-ones direction
    c_proj = sd["h.0.attn.c_proj.weight"].clone()  # [d_model(in, heads concat), d_model(out)]
    c_proj[head * d_head : (head + 1) * d_head] = 0.0
    c_proj[head * d_head] = u.float()
    sd["h.0.attn.c_proj.weight"] = c_proj
    sd["h.0.ln_2.weight"] = torch.ones(d_model)
    sd["h.0.ln_2.bias"] = torch.zeros(d_model)
    c_fc = sd["h.0.mlp.c_fc.weight"].clone().double()
    c_fc -= u[:, None] * (u @ c_fc)[None, :]  # no other neuron reads u
    c_fc[:, neuron] = u * pvo_slope / value_scale
    c_fc = c_fc.float()
    sd["h.0.mlp.c_fc.weight"] = c_fc
    path = write_checkpoint(path, cfg, sd, tokenizer=word_tokenizer(n_words))
    return PlantedDuplicate(Path(path), 0, head, rate, neuron, pvo_slope, n_words,
                            tuple(tuple(int(t) for t in g_) for g_ in groups), self_penalty, value_scale)
