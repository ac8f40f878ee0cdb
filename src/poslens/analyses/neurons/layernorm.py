"""The layer-0 LayerNorm scale of token t at position i: exact, and the seed's two
approximations (cross term dropped; |W_pos[i]| replaced by its mean beyond a position)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...errors import InvalidInputError
from ...models.weights import Weights, require
from .options import LN_SCALES


def _token_sample(d_vocab: int, n_tokens: int, seed: int) -> torch.Tensor:
    if n_tokens >= d_vocab:
        return torch.arange(d_vocab)
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(d_vocab, generator=g)[:n_tokens].sort().values


def pos_norm_const(weights: Weights, pos_norm_from: int) -> tuple[int, float, torch.Tensor]:
    """The seed's constant |W_pos[i]|: ``(from, mean norm beyond from, every norm)``; ``from`` is
    capped at n_ctx / 2 so a short context still has positions to average."""
    pn = weights.W_pos.double().norm(dim=-1)
    frm = min(int(pos_norm_from), weights.cfg.n_ctx // 2)
    return frm, float(pn[frm:].mean()), pn


def _multipliers(weights: Weights, tokens: torch.Tensor, c: float) -> dict[str, torch.Tensor]:
    """Layer-0 LayerNorm multipliers ``[n_tok, n_ctx]`` for every (token, position): exact and the seed's two."""
    cfg = weights.cfg
    d = cfg.d_model
    E = weights.get("embed.W_E", needed_for="the LayerNorm-scale approximation")[tokens].double()
    Pm = weights.W_pos.double()
    en2 = (E**2).sum(-1)
    pn2 = (Pm**2).sum(-1)
    cross = E @ Pm.T
    # LayerNorm centres its input: |c(x)|² = |x|² - (sum x)² / d.
    s = E.sum(-1)[:, None] + Pm.sum(-1)[None, :]
    var = (en2[:, None] + pn2[None, :] + 2 * cross - s**2 / d) / d
    return {
        "exact": 1.0 / torch.sqrt(var + cfg.eps),
        "approx": math.sqrt(d) / torch.sqrt(en2[:, None] + pn2[None, :]),
        "approx-const": (math.sqrt(d) / torch.sqrt(en2 + c * c))[:, None].expand(-1, Pm.shape[0]),
        "cos": cross / (en2.sqrt()[:, None] * pn2.sqrt()[None, :]).clamp(min=1e-30),
    }


@dataclass(frozen=True)
class LayerNormStudy:
    """The seed's LayerNorm-scale approximations against the exact layer-0 multiplier.

    Positional norms always (``pos_norm_mean`` beyond ``pos_norm_from``, its std, position 0's,
    every position's); the comparison only with a token embedding (else None, and ``note`` says
    why): ``n_tokens`` sampled tokens, their mean norm, the mean (and mean absolute) cosine of
    W_E[t] and W_pos[i], the exact multiplier's mean and std, the relative errors
    (:func:`rel_error`) of the approximation, of its constant-norm variant (also beyond
    ``pos_norm_from``), and both multipliers by position (mean over tokens)."""

    pos_norm_from: int
    pos_norm_mean: float
    pos_norm_std: float
    pos_norm_first: float
    pos_norms: list[float]
    note: str | None = None
    n_tokens: int | None = None
    token_norm_mean: float | None = None
    cos_mean: float | None = None
    cos_abs_mean: float | None = None
    exact_mean: float | None = None
    exact_std: float | None = None
    approx_error: dict[str, float] | None = None
    approx_const_error: dict[str, float] | None = None
    approx_const_error_from: dict[str, float] | None = None
    exact_by_position: list[float] | None = None
    approx_by_position: list[float] | None = None


def rel_error(approx: torch.Tensor, exact: torch.Tensor) -> dict[str, float]:
    """Relative error of ``approx`` against ``exact``: mean absolute, rms, largest, signed mean."""
    r = approx / exact - 1
    return {"mean_abs": float(r.abs().mean()), "rms": float(r.pow(2).mean().sqrt()), "max_abs": float(r.abs().max()),
            "mean": float(r.mean())}


def layernorm_scale_study(weights: Weights, n_tokens: int = 2048, pos_norm_from: int = 100, seed: int = 0) -> LayerNormStudy:
    """How good the seed's LayerNorm-scale approximations are on ``weights`` (layer 0, no attention output).

    Over a sample of ``n_tokens`` tokens (seeded) and every position: the exact multiplier
    ``1 / sqrt(var(W_E[t] + W_pos[i]) + eps)``, the seed's ``sqrt(d) / sqrt(|W_E[t]|² +
    |W_pos[i]|²)`` and its constant-norm variant (|W_pos[i]| -> mean beyond
    ``pos_norm_from``), their relative errors, and the cosine between W_E[t] and W_pos[i].
    Without W_E only the positional norms are reported (with a note).

    >>> s = layernorm_scale_study(load_weights("../shared/data/gpt2-small-partial"))   # doctest: +SKIP
    >>> round(s.pos_norm_mean, 2)                                                       # doctest: +SKIP
    3.37
    """
    cfg = weights.cfg
    frm, c, pn = pos_norm_const(weights, pos_norm_from)
    norms = dict(pos_norm_from=frm, pos_norm_mean=c, pos_norm_std=float(pn[frm:].std()), pos_norm_first=float(pn[0]),
                 pos_norms=pn.tolist())
    if not weights.has("embed.W_E"):
        return LayerNormStudy(**norms, note="the checkpoint has no token embedding (wte.weight): exact and approximate "
                                            "scales were not compared")
    toks = _token_sample(cfg.d_vocab, n_tokens, seed)
    m = _multipliers(weights, toks, c)
    return LayerNormStudy(
        **norms,
        n_tokens=int(len(toks)),
        token_norm_mean=float(weights.W_E[toks].double().norm(dim=-1).mean()),
        cos_mean=float(m["cos"].mean()), cos_abs_mean=float(m["cos"].abs().mean()),
        exact_mean=float(m["exact"].mean()), exact_std=float(m["exact"].std()),
        approx_error=rel_error(m["approx"], m["exact"]),
        approx_const_error=rel_error(m["approx-const"], m["exact"]),
        approx_const_error_from=rel_error(m["approx-const"][:, frm:], m["exact"][:, frm:]),
        exact_by_position=m["exact"].mean(0).tolist(),
        approx_by_position=m["approx"].mean(0).tolist(),
    )


def ln1_multiplier_curve(weights: Weights, mode: str, n_tokens: int = 2048, pos_norm_from: int = 100,
                         seed: int = 0) -> torch.Tensor:
    """``[n_ctx]`` layer-0 LayerNorm multiplier per position, averaged over a token sample.

    ``mode``: ``approx`` (the seed's formula), ``approx-const`` (with the mean positional
    norm), ``exact-mean`` (the true multiplier), ``none`` (ones: the raw PVO).

    >>> ln1_multiplier_curve(w, "none").unique().tolist()   # doctest: +SKIP
    [1.0]
    """
    if mode not in LN_SCALES:
        raise InvalidInputError(f"unknown LayerNorm scale '{mode}'; use one of {', '.join(LN_SCALES)}")
    cfg = weights.cfg
    if mode == "none":
        return torch.ones(cfg.n_ctx, dtype=torch.float64)
    require(weights, ["embed.W_E"], f"the LayerNorm-scale approximation (--ln-scale {mode}; use none to skip it)")
    c = pos_norm_const(weights, pos_norm_from)[1]
    m = _multipliers(weights, _token_sample(cfg.d_vocab, n_tokens, seed), c)
    return m["exact" if mode == "exact-mean" else mode].mean(0)
