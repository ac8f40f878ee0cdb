"""A checkpoint whose W_pos is an exact helix of known radius, pitch and period.

Positions t = 0..n_ctx-1 sit on

    W_pos[t] = offset + radius cos(2 pi t / period) q1 + radius sin(2 pi t / period) q2
               + (pitch / period) (t - t_mid) q3

with q1, q2, q3 orthonormal random directions (``basis``), so the helix advances
``pitch`` along its axis per turn and every principal component beyond the third is zero
(``noise`` adds isotropic Gaussian jitter). Optionally W_E is planted too: token rows whose
centred variance has exactly ``token_share`` inside span(q1, q2, q3), plus a common
``token_mean`` orthogonal to it, so the token/position comparisons have a known answer.

>>> planted = planted_helix_checkpoint(tmp_path / "helix", radius=2.0, pitch=1.5, period=96.0)   # doctest: +SKIP
>>> from poslens.analyses.helix import helix                                                     # doctest: +SKIP
>>> round(helix(planted.path).helix.radius, 4)                                                # doctest: +SKIP
2.0
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoints import random_state_dict, small_config, write_checkpoint


@dataclass(frozen=True)
class PlantedHelix:
    """What was planted, for tests to compare against."""

    path: Path
    radius: float
    pitch: float
    period: float
    n_ctx: int
    d_model: int
    basis: np.ndarray  # [3, d_model]: cosine, sine and axis directions
    offset: np.ndarray  # [d_model]
    token_share: float | None  # share of W_E's centred variance inside span(basis)
    token_share_uncentred: float | None  # the same for W_E's squared norms

    @property
    def omega(self) -> float:
        return 2 * np.pi / self.period


def helix_matrix(
    n_ctx: int, d_model: int, radius: float, pitch: float, period: float, seed: int = 0, offset_norm: float = 1.0,
    phase: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W_pos [n_ctx, d_model] float64, basis [3, d_model], offset [d_model]) of an exact helix."""
    if d_model < 4:
        raise ValueError("a planted helix needs d_model >= 4 (three helix directions plus an offset)")
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d_model, 4)))
    basis, off_dir = Q[:, :3].T, Q[:, 3]
    t = np.arange(n_ctx, dtype=np.float64)
    ang = 2 * np.pi * t / period + phase
    coords = np.c_[radius * np.cos(ang), radius * np.sin(ang), (pitch / period) * (t - (n_ctx - 1) / 2)]
    offset = offset_norm * off_dir
    return offset + coords @ basis, basis, offset


def planted_tokens(
    d_vocab: int, basis: np.ndarray, share: float, mean_norm: float = 0.0, scale: float = 1.0, seed: int = 0,
) -> tuple[np.ndarray, float]:
    """(W_E [d_vocab, d_model], its uncentred share) with exactly ``share`` of its centred variance in span(basis)."""
    if not 0 <= share < 1:
        raise ValueError(f"token_share must be in [0, 1); got {share}")
    rng = np.random.default_rng(seed + 1)
    d = basis.shape[1]
    P = basis.T @ basis  # projector onto the helix subspace
    X = rng.normal(size=(d_vocab, d))
    X -= X.mean(0)
    inside, outside = X @ P, X @ (np.eye(d) - P)
    ss_in, ss_out = (inside**2).sum(), (outside**2).sum()
    inside *= np.sqrt(share / (1 - share) * ss_out / ss_in) if share > 0 else 0.0
    E = (inside + outside) * scale
    # A common mean orthogonal to the helix subspace: it adds to the uncentred norms only.
    m = (np.eye(d) - P) @ rng.normal(size=d)
    m *= mean_norm / np.linalg.norm(m)
    E += m
    ss_in_s = (inside**2).sum() * scale**2
    total = ss_in_s + (outside**2).sum() * scale**2 + d_vocab * mean_norm**2
    return E, float(ss_in_s / total)


def planted_helix_checkpoint(
    path: str | Path,
    *,
    radius: float = 2.0,
    pitch: float = 1.5,
    period: float = 96.0,
    n_ctx: int = 512,
    d_model: int = 64,
    noise: float = 0.0,
    offset_norm: float = 1.0,
    phase: float = 0.3,
    token_share: float | None = 0.01,
    token_mean: float = 0.5,
    drop_wte: bool = False,
    step: int | None = None,
    seed: int = 0,
    **config,
) -> PlantedHelix:
    """Write a small GPT-2 checkpoint (random blocks) whose ``wpe.weight`` is an exact planted helix.

    ``token_share=None`` keeps a random W_E; ``drop_wte`` leaves W_E out (a partial
    checkpoint); ``step`` writes a ``training_log.json`` saying which training step this
    checkpoint stands for (sweeps order by it). ``config`` overrides :func:`small_config` fields.
    """
    cfg = small_config(n_ctx=n_ctx, d_model=d_model, **{"n_layers": 1, "n_heads": 4, "d_vocab": 256, **config})
    sd = random_state_dict(cfg, seed=seed)
    W, basis, offset = helix_matrix(n_ctx, d_model, radius, pitch, period, seed, offset_norm, phase)
    if noise:
        W = W + np.random.default_rng(seed + 2).normal(scale=noise, size=W.shape)
    sd["wpe.weight"] = torch.tensor(W, dtype=torch.float32)
    share = share_unc = None
    if token_share is not None and not drop_wte:
        E, share_unc = planted_tokens(cfg.d_vocab, basis, token_share, token_mean, seed=seed)
        sd["wte.weight"] = torch.tensor(E, dtype=torch.float32)
        share = float(token_share)
    path = write_checkpoint(path, cfg, sd, drop=("wte.weight",) if drop_wte else ())
    if step is not None:
        (path / "training_log.json").write_text(json.dumps({"step": int(step)}))
    return PlantedHelix(path=path, radius=float(radius), pitch=float(pitch), period=float(period), n_ctx=n_ctx,
                        d_model=d_model, basis=basis, offset=offset, token_share=share, token_share_uncentred=share_unc)
