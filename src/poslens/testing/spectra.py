"""Planted truth for weight spectra, QK structure and hidden-state subspaces.

* :func:`low_rank` / :func:`planted_spectra_state_dict`: weights of exactly known rank
  (equal singular values, so the effective rank is the rank) plus optional noise.
* :func:`rotated_bases`: k-dimensional subspaces of R^D whose principal angles to each
  other are known exactly; :func:`planted_states` puts a k-dimensional signal with noise
  in them, the hidden states a layer would have.

>>> B = rotated_bases(16, 2, [0.0, 30.0], seed=0)
>>> X = planted_states(B, n_tokens=100, signal_std=10.0, noise_std=1.0, seed=0)
>>> [x.shape for x in X]
[(100, 16), (100, 16)]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..models.config import ModelConfig
from .checkpoints import random_state_dict


def low_rank(rows: int, cols: int, k: int, scale: float = 1.0, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """``scale * U V^T`` with U, V orthonormal ``[rows, k]``/``[cols, k]`` (k singular values equal
    to ``scale``), plus Gaussian noise of std ``noise``.

    >>> torch.linalg.matrix_rank(low_rank(8, 6, 3)).item()
    3
    """
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(rows, k, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(cols, k, generator=g, dtype=torch.float64))
    W = scale * U @ V.T + noise * torch.randn(rows, cols, generator=g, dtype=torch.float64)
    return W.float()


def planted_spectra_state_dict(
    cfg: ModelConfig,
    ranks: dict[str, int],
    seed: int = 0,
    noise: float = 0.0,
    symmetric_heads: Sequence[tuple[int, int]] = (),
) -> dict[str, torch.Tensor]:
    """A random GPT-2 state dict (HF names) whose matrices named in ``ranks`` (``W_Q``,
    ``W_K``, ``W_V``, ``W_O``, ``W_in``, ``W_out``) have exactly that rank in every layer.

    ``symmetric_heads``: heads ``(layer, head)`` whose W_K^h is set equal to W_Q^h, so
    ``M_h = W_Q^h W_Q^hT`` is symmetric (positive semi-definite).
    """
    sd = random_state_dict(cfg, seed=seed)
    d, m = cfg.d_model, cfg.d_mlp
    for l in range(cfg.n_layers):
        p = f"h.{l}."
        qkv = sd[p + "attn.c_attn.weight"].clone()  # [d, 3d]
        for i, name in enumerate(("W_Q", "W_K", "W_V")):
            if name in ranks:
                qkv[:, i * d:(i + 1) * d] = low_rank(d, d, ranks[name], noise=noise, seed=seed * 1000 + l * 10 + i)
        for L, h in symmetric_heads:
            if L == l:
                cols = slice(h * cfg.d_head, (h + 1) * cfg.d_head)
                qkv[:, d:2 * d][:, cols] = qkv[:, :d][:, cols]
        sd[p + "attn.c_attn.weight"] = qkv
        if "W_O" in ranks:
            sd[p + "attn.c_proj.weight"] = low_rank(d, d, ranks["W_O"], noise=noise, seed=seed * 1000 + l * 10 + 3)
        if "W_in" in ranks:
            sd[p + "mlp.c_fc.weight"] = low_rank(d, m, ranks["W_in"], noise=noise, seed=seed * 1000 + l * 10 + 4)
        if "W_out" in ranks:
            sd[p + "mlp.c_proj.weight"] = low_rank(m, d, ranks["W_out"], noise=noise, seed=seed * 1000 + l * 10 + 5)
    return sd


def rotated_bases(d_model: int, k: int, angles_deg: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Orthonormal ``[d_model, k]`` bases ``cos(phi) A + sin(phi) C`` for each phi in
    ``angles_deg`` (A, C orthonormal and orthogonal to each other): between the bases of
    phi_i and phi_j every one of the k principal angles is ``|phi_i - phi_j|``."""
    if 2 * k > d_model:
        raise ValueError("need 2k <= d_model")
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d_model, 2 * k)))
    A, C = Q[:, :k], Q[:, k:]
    return [np.cos(np.radians(a)) * A + np.sin(np.radians(a)) * C for a in angles_deg]


def planted_states(
    bases: Sequence[np.ndarray],
    n_tokens: int,
    signal_std: float | Sequence[float] = 10.0,
    noise_std: float = 1.0,
    seed: int = 0,
) -> list[np.ndarray]:
    """Hidden states ``[n_tokens, d_model]`` per basis: Gaussian coefficients (std
    ``signal_std``, one value or one per direction) on the basis, plus isotropic noise."""
    rng = np.random.default_rng(seed)
    out = []
    for B in bases:
        k = B.shape[1]
        amps = np.broadcast_to(np.asarray(signal_std, dtype=float), (k,))
        Z = rng.normal(size=(n_tokens, k)) * amps
        out.append(Z @ B.T + noise_std * rng.normal(size=(n_tokens, B.shape[0])))
    return out
