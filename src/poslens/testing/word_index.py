"""A checkpoint whose residual stream counts the words so far: planted truth for word-index probes.

How a real GPT-2 can count words (the seed's guessed circuit, made exact): one layer-0
head attends to BOS with a high score ``sink`` and to every token that begins with a
space with a slightly lower score ``sink - gap``, and to nothing else (score 0, which is
``exp(-sink)`` below them); its value reads only the "begins with a space" feature and
its output writes onto a single direction ``u``. At a query with ``c`` space-initial
tokens at or before it, with ``eps = exp(-gap)``,

    head output = gamma * c * eps / (1 + c * eps) * u,

strictly increasing in ``c`` and close to linear while ``c * eps`` is small. After a fixed
prefix holding ``c0`` space-initial tokens, the last (and the first) token of word ``i``
has ``c = c0 + i + 1``: word index is one coordinate of ``blocks.0.hook_resid_post``.

To make that exact rather than approximate, the embeddings are built so that layer 0's
LayerNorm is a known constant rescaling: every token embedding has norm ``a`` and lives
in a token subspace, every positional embedding norm ``b`` in an orthogonal position
subspace, all orthogonal to the all-ones direction; "begins with a space" and "is BOS"
are two more orthogonal directions inside each token's embedding. Layer 0's other heads
and its MLP write nothing, so residual point 1 is exactly embeddings + count; layer 1 is
left random. Residual point 0 (embeddings alone) knows only the token and its position,
so a probe there does no better than the position/space baselines.

>>> planted = planted_word_index_checkpoint(tmp_path / "wi")       # doctest: +SKIP
>>> r = word_index(load_weights(str(planted.path)), layers=[0, 1])  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.config import ModelConfig
from ..models.tokenizer import Tokenizer, as_tokenizer
from .checkpoints import plant_qkv, random_state_dict, write_checkpoint


@dataclass(frozen=True)
class PlantedWordIndex:
    """What was planted, for tests to compare against."""

    path: Path
    layer: int  # the residual point where the count first appears
    head: int
    sink: float
    gap: float
    gamma: float
    direction: tuple[float, ...]  # u, the direction the count is written on


def planted_word_index_checkpoint(
    path: str | Path,
    tokenizer=None,
    d_model: int = 64,
    n_heads: int = 4,
    n_ctx: int = 128,
    head: int = 0,
    sink: float = 20.0,
    gap: float = 4.0,
    gamma: float = 100.0,
    pos_dims: int = 16,
    seed: int = 0,
) -> PlantedWordIndex:
    """Write the planted 2-layer model (GPT-2's tokenizer unless ``tokenizer``) and return what was planted."""
    tokenizer = as_tokenizer(tokenizer, "planted_word_index_checkpoint") or Tokenizer.gpt2()
    if tokenizer.bos_token_id is None:
        raise ValueError("the planted counter needs a BOS token as its attention sink")
    d_vocab = tokenizer.vocab_size
    n_layers = 2
    d_head = d_model // n_heads
    if 4 + pos_dims >= d_model - 4:
        raise ValueError("d_model must leave room for the feature, position and token subspaces")
    cfg = ModelConfig(n_layers=n_layers, n_heads=n_heads, d_model=d_model, n_ctx=n_ctx, d_vocab=d_vocab,
                      d_mlp=4 * d_model, bos_token_id=tokenizer.bos_token_id)
    sd = random_state_dict(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    M = torch.randn(d_model, d_model, generator=g, dtype=torch.float64)
    M[:, 0] = 1.0
    Q, _ = torch.linalg.qr(M)  # column 0 is the all-ones direction; the rest are orthogonal to it
    f_space, f_bos, u = Q[:, 1], Q[:, 2], Q[:, 3]
    P_basis = Q[:, 4 : 4 + pos_dims]
    T_basis = Q[:, 4 + pos_dims :]

    def unit_rows(n: int, basis: torch.Tensor) -> torch.Tensor:
        r = torch.randn(n, basis.shape[1], generator=g, dtype=torch.float64)
        return (r / r.norm(dim=1, keepdim=True)) @ basis.T

    a = b = math.sqrt(d_model / 2)  # |x|^2 = d_model: LayerNorm divides by exactly sqrt(1 + eps)
    flag_share = 0.6  # the share of a flagged token's embedding on its flag direction
    is_space = torch.tensor([tokenizer.decode([i]).startswith(" ") for i in range(d_vocab)], dtype=torch.float64)
    is_bos = torch.zeros(d_vocab, dtype=torch.float64)
    is_bos[tokenizer.bos_token_id] = 1.0
    flagged = ((is_space + is_bos) > 0).double()
    rest = torch.sqrt(1 - flag_share**2 * flagged)[:, None] * unit_rows(d_vocab, T_basis)
    W_E = a * (flag_share * (is_space[:, None] * f_space + is_bos[:, None] * f_bos) + rest)
    W_pos = b * unit_rows(n_ctx, P_basis)
    sd["wte.weight"] = W_E.float()
    sd["wpe.weight"] = W_pos.float()
    sd["h.0.ln_1.weight"] = torch.ones(d_model)
    sd["h.0.ln_1.bias"] = torch.zeros(d_model)

    x_unit = 1 / math.sqrt(1 + cfg.eps)  # LayerNorm's output is x_unit * (E_t + P_i)
    flag_read = flag_share * a * x_unit  # a flag's coordinate after LayerNorm
    scale = math.sqrt(d_head)  # the runner divides scores by sqrt(d_head)
    # Query-independent scores: the query is a constant (a bias) on head dim 0, the key's
    # dim 0 reads the two flags.
    W_K = torch.zeros(d_model, d_head, dtype=torch.float64)
    W_K[:, 0] = (f_space * (sink - gap) + f_bos * sink) * scale / flag_read
    b_Q = torch.zeros(d_head, dtype=torch.float64)
    b_Q[0] = 1.0
    W_V = torch.zeros(d_model, d_head, dtype=torch.float64)
    W_V[:, 0] = f_space * gamma / flag_read
    plant_qkv(sd, 0, head, d_head, W_Q=0.0, b_Q=b_Q, W_K=W_K, b_K=0.0, W_V=W_V, b_V=0.0)
    c_proj = torch.zeros(d_model, d_model)  # only the planted head writes, and only onto u
    c_proj[head * d_head] = u.float()
    sd["h.0.attn.c_proj.weight"] = c_proj
    sd["h.0.attn.c_proj.bias"] = torch.zeros(d_model)
    sd["h.0.mlp.c_proj.weight"] = torch.zeros_like(sd["h.0.mlp.c_proj.weight"])
    sd["h.0.mlp.c_proj.bias"] = torch.zeros(d_model)
    path = write_checkpoint(path, cfg, sd, tokenizer=tokenizer)
    return PlantedWordIndex(Path(path), 1, head, sink, gap, gamma, tuple(u.float().tolist()))


def expected_count_output(c: torch.Tensor | float, planted: PlantedWordIndex) -> torch.Tensor:
    """The planted head's output along ``u`` at a query with ``c`` space-initial tokens before it (BOS first)."""
    c = torch.as_tensor(c, dtype=torch.float64)
    eps = math.exp(-planted.gap)
    return planted.gamma * c * eps / (1 + c * eps)
