"""Exact per-head decomposition of one neuron's pre-activation over a text, and the error of the
seed's approximations against it (see :func:`decompose_neuron`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import InvalidInputError, NotApplicableError
from ...models.runner import Runner
from ...models.weights import Weights, as_weights
from ..heads import check_heads, duplicate_mask, pattern_spread
from ..heads.measure import HeadSpread
from .layernorm import pos_norm_const, rel_error
from .premise import check_neuron, neuron_read, not_applicable_reason
from .pvo import linear_fit, neuron_ov


@dataclass(frozen=True)
class ApproxError:
    """An approximation against the exact values: rms, largest and mean error, the exact values' std
    and the rms relative to it (None when the exact values are constant)."""

    rms: float
    max_abs: float
    mean: float
    exact_std: float
    relative_rms: float | None


@dataclass(frozen=True)
class RelativeError:
    """``approx / exact - 1`` over the text: mean absolute, rms, largest and signed mean."""

    mean_abs: float
    rms: float
    max_abs: float
    mean: float


@dataclass(frozen=True)
class MLPScale:
    """The MLP LayerNorm's scale (``ln2.hook_scale``) over the decomposed text: the value the
    decomposition ``used`` (and its ``source``), its mean, std, range and value by position, and
    the error of holding it constant."""

    used: float
    source: str
    mean: float
    std: float
    min: float
    max: float
    by_position: list[float]
    constant_scale_error: ApproxError


@dataclass(frozen=True)
class Ln1OnText:
    """The seed's attention-LayerNorm multiplier (|W_pos| held at its mean beyond ``pos_norm_from``)
    against the exact one on the text."""

    pos_norm_const: float
    pos_norm_from: int
    seed_vs_exact: RelativeError


@dataclass(frozen=True)
class HeadApproximation:
    """One head's role in the seed's rules (duplicate, uniform or current), its attention spread on the
    text, and the error of its positional contribution by the attention rule alone (exact LayerNorm
    scales) and by the seed's rules and scales."""

    role: str
    spread: HeadSpread
    error_attention_rule: ApproxError
    error_seed: ApproxError


@dataclass(frozen=True)
class TotalPositional:
    exact: list[float]
    attention_rule: list[float]
    seed: list[float]
    error_attention_rule: ApproxError
    error_seed: ApproxError


@dataclass(frozen=True)
class Approximations:
    uniform_heads: list[str]
    per_head: dict[str, HeadApproximation]  # head ("0.5") -> its approximation
    total_positional: TotalPositional


@dataclass(frozen=True)
class ExtraVsDistance:
    """The duplicate head's extra contribution at repeated tokens against the mean distance to their
    earlier copies: ``measured`` (exact) and ``predicted`` (the seed's rule), per repeated token, with
    line fits and their values at distance 100; ``n`` 0 with a ``reason`` when nothing repeats."""

    n: int
    reason: str | None = None
    positions: list[int] = field(default_factory=list)
    n_copies: list[int] = field(default_factory=list)
    mean_distance: list[float] = field(default_factory=list)
    measured: list[float] = field(default_factory=list)
    predicted: list[float] = field(default_factory=list)
    rms_error: float | None = None
    correlation: float | None = None
    fit_measured: dict[str, float | None] | None = None  # pvo.linear_fit: slope, intercept, r2, zero_crossing, n
    fit_predicted: dict[str, float | None] | None = None
    measured_at_100: float | None = None
    predicted_at_100: float | None = None


@dataclass(frozen=True)
class Decomposition:
    """One neuron's pre-activation over a text, split exactly by source (``components``: each head,
    the attention bias, the direct W_pos and token paths, the neuron bias; they add up to
    ``measured`` within ``reconstruction_error``), the heads' positional / non-positional / value-bias
    parts, and the seed's approximations against them. Maps are keyed "head L.H" and by path name."""

    layer: int
    head: str
    neuron: int
    n_tokens: int
    tokens: list[int]
    measured: list[float]
    sum: list[float]
    reconstruction_error: float
    components: dict[str, list[float]]
    positional: dict[str, list[float]]
    non_positional: dict[str, list[float]]
    value_bias: dict[str, list[float]]
    mlp_scale: MLPScale
    ln1_scale_on_text: Ln1OnText
    approximations: Approximations
    extra_vs_distance: ExtraVsDistance
    text_source: str = ""
    token_strings: list[str] = field(default_factory=list)


def _copies(tokens: torch.Tensor, ignore: tuple[int, ...]) -> torch.Tensor:
    """``[q, k]`` bool: k <= q holds the same token as q (q itself included); ignored tokens only match themselves."""
    return duplicate_mask(tokens[None], ignore)[0] | torch.eye(len(tokens), dtype=torch.bool)


def _rule(v: torch.Tensor, role: str, copies: torch.Tensor) -> torch.Tensor:
    """The seed's approximation for a head of ``role`` on per-key values ``v [P]``: the value each query
    gets (current: its own position's; uniform: the mean over earlier positions; duplicate: over the copies)."""
    if role == "current":
        return v
    if role == "uniform":
        return v.cumsum(0) / torch.arange(1, len(v) + 1, dtype=v.dtype)
    m = copies.to(v.dtype)
    return (m @ v) / m.sum(1)


def _err(approx: torch.Tensor, exact: torch.Tensor) -> ApproxError:
    e = approx - exact
    sd = float(exact.std()) if len(exact) > 1 else 0.0
    rms = float(e.pow(2).mean().sqrt())
    return ApproxError(rms=rms, max_abs=float(e.abs().max()), mean=float(e.mean()), exact_std=sd,
                       relative_rms=rms / sd if sd > 0 else None)


def decompose_neuron(
    weights: Weights,
    head: tuple[int, int],
    neuron: int,
    tokens: torch.Tensor,
    uniform_heads: list[int] | None = None,
    mlp_scale: float | None = None,
    pos_norm_from: int = 100,
    ignore: tuple[int, ...] = (),
    uniform_entropy: float = 0.85,
    local_window: int = 30,
) -> Decomposition:
    """Exact per-head decomposition of ``neuron``'s pre-activation over one text, and the seed's approximations.

    ``weights`` must have folded LayerNorms (``fold_layer_norm``): then, at every position q,

        pre[q] = (Σ_h head_h[q] + b_O·w + x[q]·w) / s2[q] + b_in

    exactly, where ``x`` is the residual stream entering the layer (W_E[t] + W_pos[q] in
    layer 0), ``w`` the neuron's input weights and ``s2[q]`` the MLP LayerNorm scale
    measured at q. Each head's part splits into positional (its values' W_pos share),
    the rest of its values, and its value bias. ``uniform_heads`` (default: heads whose
    attention on this text is nearly uniform, see :func:`pattern_spread`) get the
    seed's mean-over-earlier-positions rule; the duplicate ``head`` the mean over the
    copies of the current token; every other head its PVO at the current position.

    >>> d = decompose_neuron(fold_layer_norm(w), (0, 5), 1168, tokens)   # doctest: +SKIP
    >>> d.reconstruction_error < 1e-6                                     # doctest: +SKIP
    True
    """
    weights = as_weights(weights, "decompose_neuron")
    cfg = weights.cfg
    why = not_applicable_reason(cfg, weights.label)
    if why:
        raise NotApplicableError(f"the exact per-head decomposition of a neuron does not apply: {why}")
    L, hd = head
    check_heads(weights, [(L, hd), *((L, h) for h in uniform_heads or ())])
    check_neuron(weights, neuron)
    tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    P = len(tokens)
    if P < 2:
        raise InvalidInputError(f"the text has {P} token(s); the decomposition needs at least two")
    pre = f"blocks.{L}."
    hooks = [pre + "hook_resid_pre", pre + "ln1.hook_scale", pre + "attn.hook_pattern", pre + "ln2.hook_scale",
             pre + "mlp.hook_pre"]
    # float64: the decomposition is checked against the model to ~1e-10, not float32 noise.
    acts = Runner(weights, dtype="float64").run(tokens[None], hooks=hooks)
    x = acts[pre + "hook_resid_pre"][0].double()
    s1 = acts[pre + "ln1.hook_scale"][0, :, 0].double()
    A = acts[pre + "attn.hook_pattern"][0].double()  # [H, q, k]
    s2 = acts[pre + "ln2.hook_scale"][0, :, 0].double()
    measured = acts[pre + "mlp.hook_pre"][0, :, neuron].double()

    pos = weights.W_pos[:P].double()
    w_in, b_in = neuron_read(weights, L, neuron)
    b_O = weights.get(pre + "attn.b_O").double()
    b_V = weights.get(pre + "attn.b_V").double()
    ov = neuron_ov(weights, L, w_in)  # [H, d]: what each head reads for this neuron
    vb = torch.einsum("hk,hkm,m->h", b_V, weights.get(pre + "attn.W_O").double(), w_in)  # [H]
    key_pos = (pos @ ov.T).T / s1  # [H, k]: PVO at each key, with the key's exact LayerNorm scale
    key_rest = ((x - pos) @ ov.T).T / s1
    head_pos = torch.einsum("hqk,hk->hq", A, key_pos) / s2
    head_rest = torch.einsum("hqk,hk->hq", A, key_rest) / s2
    head_bias = vb[:, None] * A.sum(-1) / s2
    attn_bias = (b_O @ w_in) / s2
    direct_pos = (pos @ w_in) / s2
    direct_rest = ((x - pos) @ w_in) / s2
    total = (head_pos + head_rest + head_bias).sum(0) + attn_bias + direct_pos + direct_rest + b_in
    names = [f"{L}.{h}" for h in range(cfg.n_heads)]
    rest_name = "W_E" if L == 0 else "W_E + earlier layers"

    # The seed's approximations.
    keep = ~torch.isin(tokens, torch.as_tensor(list(ignore) or [-1], dtype=tokens.dtype))
    s_bar = float(mlp_scale) if mlp_scale is not None else float(s2[keep].mean() if keep.any() else s2.mean())
    spread = pattern_spread(A, min_query=max(1, P // 4), local_window=local_window, uniform_entropy=uniform_entropy)
    if uniform_heads is None:
        uniform_heads = [h for h in range(cfg.n_heads) if h != hd and spread[str(h)].kind == "uniform"]
    roles = {h: "duplicate" if h == hd else ("uniform" if h in uniform_heads else "current") for h in range(cfg.n_heads)}
    copies = _copies(tokens, ignore)
    frm, c, _ = pos_norm_const(weights, pos_norm_from)
    m1_exact = 1.0 / s1
    m1_seed = math.sqrt(cfg.d_model) / torch.sqrt(((x - pos) ** 2).sum(-1) + c * c)
    seed_pos = (pos @ ov.T).T * m1_seed  # [H, k]: PVO with the seed's LayerNorm multiplier
    per_head: dict[str, HeadApproximation] = {}
    attn_only_total = direct_pos.clone()
    seed_total = (pos @ w_in) / s_bar
    for h in range(cfg.n_heads):
        a_only = _rule(key_pos[h], roles[h], copies) / s2
        a_seed = _rule(seed_pos[h], roles[h], copies) / s_bar
        attn_only_total += a_only
        seed_total += a_seed
        per_head[names[h]] = HeadApproximation(role=roles[h], spread=spread[str(h)],
                                               error_attention_rule=_err(a_only, head_pos[h]),
                                               error_seed=_err(a_seed, head_pos[h]))
    exact_total = head_pos.sum(0) + direct_pos
    const_pre = (measured - b_in) * s2 / s_bar + b_in

    return Decomposition(
        layer=L, head=f"{L}.{hd}", neuron=neuron, n_tokens=P, tokens=tokens.tolist(),
        measured=measured.tolist(), sum=total.tolist(), reconstruction_error=float((total - measured).abs().max()),
        components={**{f"head {n}": (head_pos[i] + head_rest[i] + head_bias[i]).tolist() for i, n in enumerate(names)},
                    "attention bias b_O": attn_bias.tolist(), "direct W_pos": direct_pos.tolist(),
                    f"direct {rest_name}": direct_rest.tolist(), "neuron bias b_in": [b_in] * P},
        positional={**{f"head {n}": head_pos[i].tolist() for i, n in enumerate(names)}, "direct W_pos": direct_pos.tolist()},
        non_positional={f"head {n}": head_rest[i].tolist() for i, n in enumerate(names)},
        value_bias={f"head {n}": head_bias[i].tolist() for i, n in enumerate(names)},
        mlp_scale=MLPScale(used=s_bar, source="given" if mlp_scale is not None else "mean over the text",
                           mean=float(s2.mean()), std=float(s2.std()), min=float(s2.min()), max=float(s2.max()),
                           by_position=s2.tolist(), constant_scale_error=_err(const_pre, measured)),
        ln1_scale_on_text=Ln1OnText(pos_norm_const=c, pos_norm_from=frm,
                                    seed_vs_exact=RelativeError(**rel_error(m1_seed, m1_exact))),
        approximations=Approximations(
            uniform_heads=[names[h] for h in uniform_heads], per_head=per_head,
            total_positional=TotalPositional(exact=exact_total.tolist(), attention_rule=attn_only_total.tolist(),
                                             seed=seed_total.tolist(),
                                             error_attention_rule=_err(attn_only_total, exact_total),
                                             error_seed=_err(seed_total, exact_total)),
        ),
        extra_vs_distance=_extra_vs_distance(tokens, copies, head_pos[hd], key_pos[hd] / s2, seed_pos[hd] / s_bar),
    )


def _extra_vs_distance(tokens, copies, dup_exact, dup_self, dup_seed) -> ExtraVsDistance:
    """Extra contribution of the duplicate head at repeated tokens against the mean distance to their copies.

    measured: the head's exact positional contribution minus what it would give attending
    to the current position alone; predicted: the seed's ``mean_j PVO[i_j] - PVO[i_n]``
    (w_j = 1/n over the copies, the current one included) with its LayerNorm approximations.
    """
    P = len(tokens)
    q_idx = torch.arange(P)
    earlier = copies & ~torch.eye(P, dtype=torch.bool)
    n_earlier = earlier.sum(1)
    ok = n_earlier > 0
    if not ok.any():
        return ExtraVsDistance(n=0, reason="no token in the text has an earlier copy, so there is no duplicate to measure")
    dist = (q_idx[:, None] - q_idx[None, :]).double() * earlier
    mean_d = dist.sum(1) / n_earlier.clamp(min=1)
    measured = dup_exact - dup_self
    predicted = _rule(dup_seed, "duplicate", copies) - dup_seed
    md, ms, pr = mean_d[ok].numpy(), measured[ok].numpy(), predicted[ok].numpy()
    fm, fp = linear_fit(ms, md), linear_fit(pr, md)

    def at(f, d):
        return None if f["slope"] is None else f["intercept"] + f["slope"] * d

    return ExtraVsDistance(
        n=int(ok.sum()), positions=q_idx[ok].tolist(), n_copies=(n_earlier[ok] + 1).tolist(),
        mean_distance=md.tolist(), measured=ms.tolist(), predicted=pr.tolist(),
        rms_error=float(np.sqrt(np.mean((pr - ms) ** 2))),
        correlation=float(np.corrcoef(pr, ms)[0, 1]) if len(ms) > 2 and np.std(pr) > 0 and np.std(ms) > 0 else None,
        fit_measured=fm, fit_predicted=fp, measured_at_100=at(fm, 100.0), predicted_at_100=at(fp, 100.0),
    )
