"""MLP neurons that read the positional signal of a duplicate-token head (seed 002).

A duplicate-token head at position q averages the residual stream over the earlier copies
of the current token, so besides the token it carries the *positions* of those copies.
The seed follows that positional signal into layer 0's MLP, step by step; every step is
an option here, recorded in the result:

1. **Processing** (``fold_ln``, ``center``): fold the LayerNorms into the matrices that
   read from them, and centre W_E and W_pos over d_model (exact under LayerNorm; the
   reading under which the seed's scale formula holds).
2. **LayerNorm scale** of layer 0 for token t at position i: exact ``sqrt(d_model) /
   |c(W_E[t] + W_pos[i])|`` against the seed's ``sqrt(d_model) / sqrt(|W_E[t]|² +
   |W_pos[i]|²)`` (cross term dropped) and against the same with |W_pos[i]| replaced by
   its mean beyond position ``pos_norm_from`` (the seed's 3.35), with measured errors.
3. **PVO** of head h: ``W_pos · W_V^h · W_O^h · W_in`` ``[n_ctx, d_mlp]``; each neuron's
   norm over positions (the seed's 48x64 grid for 3072 neurons), the neurons above
   ``threshold``, and per neuron the PVO curve (times the LayerNorm multiplier chosen
   by ``ln_scale``, over the MLP LayerNorm scale) with a linear fit against position
   (slope, zero crossing, R²).
4. **Decomposition** of one neuron's pre-activation over a text, exact: each head's
   contribution (split into its positional part, the rest of its input, and its value
   bias), the attention bias, the direct path (W_pos and W_E) and the neuron's bias,
   with the MLP LayerNorm divided out at its measured per-position scale. Then the
   seed's approximations against it: heads other than the duplicate and uniform heads
   ≈ their PVO at the current position; a uniform head ≈ the mean PVO over earlier
   positions; the duplicate head ≈ the mean PVO over the copies of the current token;
   the MLP LayerNorm ≈ one constant scale; the layer-0 LayerNorm ≈ the seed's formula.
   Finally the predicted extra activation of a repeated token as a function of the mean
   distance to its earlier copies, against the measured one.
5. **Top activating examples** of the neuron over a corpus, as an HTML page.

>>> from poslens.models import load_weights
>>> from poslens.analyses.duplicate_neurons import duplicate_neurons
>>> r = duplicate_neurons(load_weights("gpt2"), head=(0, 5), neuron=1168)    # doctest: +SKIP
>>> r.fits["1168"]["zero_crossing"], r.decomposition["extra_vs_distance"]["fit_measured"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError, NotApplicableError, PoslensError
from ..models import processing as proc
from ..models.checkpoint import StateDictCheckpoint
from ..models.runner import Runner
from ..models.weights import Weights, require
from ..results import Result
from .duplicate_heads import check_heads, pattern_spread, pattern_stats

LN_SCALES = ("approx", "approx-const", "exact-mean", "none")


# ----------------------------------------------------------------------------- helpers


def grid_shape(n: int, aspect: float = 0.75) -> tuple[int, int]:
    """Rows x columns for showing ``n`` neurons as a grid: rows the largest divisor of ``n``
    not above ``sqrt(n * aspect)`` (3072 -> 48 x 64, the seed's figure).

    >>> grid_shape(3072), grid_shape(512), grid_shape(7)
    ((48, 64), (16, 32), (1, 7))
    """
    if n < 1:
        raise InvalidInputError(f"cannot lay out {n} neurons as a grid")
    target = math.sqrt(n * aspect)
    rows = max(d for d in range(1, int(target) + 1) if n % d == 0)
    return rows, n // rows


def linear_fit(y, x=None) -> dict[str, Any]:
    """Least-squares line through ``y`` against ``x`` (default 0, 1, ...): slope, intercept,
    R² and the x where the line crosses zero (None for a flat line).

    >>> f = linear_fit([2.0, 1.0, 0.0, -1.0])
    >>> f["slope"], f["zero_crossing"], f["r2"]
    (-1.0, 2.0, 1.0)
    """
    from scipy import stats

    y = np.asarray(y, dtype=float)
    x = np.arange(len(y), dtype=float) if x is None else np.asarray(x, dtype=float)
    if len(y) < 2 or np.ptp(x) == 0:
        return {"slope": None, "intercept": None, "r2": None, "zero_crossing": None, "n": int(len(y))}
    lr = stats.linregress(x, y)
    slope, icept = float(lr.slope), float(lr.intercept)
    r2 = float(lr.rvalue) ** 2 if np.ptp(y) > 0 else 1.0
    return {"slope": slope, "intercept": icept, "r2": r2,
            "zero_crossing": -icept / slope if slope != 0 else None, "n": int(len(y))}


def first_layers(weights: Weights, n_layers: int) -> Weights:
    """The model's first ``n_layers`` layers (plus embeddings and final LayerNorm) as a Weights
    of their own, so processing and forward passes touch nothing deeper.

    >>> w0 = first_layers(load_weights("gpt2"), 1)     # doctest: +SKIP
    >>> w0.cfg.n_layers                                 # doctest: +SKIP
    1
    """
    if n_layers >= weights.cfg.n_layers:
        return weights
    cfg = dataclasses.replace(weights.cfg, n_layers=n_layers)
    keep = [n for n in weights.names() if not (m := re.match(r"blocks\.(\d+)\.", n)) or int(m.group(1)) < n_layers]
    # In memory, under TransformerLens names; tensors stay the (lazy, memory-mapped) originals.
    return Weights(StateDictCheckpoint.from_state_dict({}, cfg, weights.label),
                   overrides={n: weights.get(n) for n in keep if weights.has(n)}, processing=weights.processing)


def _layer_names(layer: int, parts: tuple[str, ...]) -> list[str]:
    return [f"blocks.{layer}.{p}" for p in parts]


_ATTN = ("ln1.w", "ln1.b", "attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "attn.b_Q", "attn.b_K", "attn.b_V", "attn.b_O")
_MLP = ("ln2.w", "ln2.b", "mlp.W_in", "mlp.b_in", "mlp.W_out", "mlp.b_out")


def _token_path_names(layer: int) -> list[str]:
    """Tensors a forward pass on tokens needs up to layer ``layer``'s MLP pre-activation."""
    names = ["embed.W_E", "pos_embed.W_pos"]
    for l in range(layer):
        names += _layer_names(l, _ATTN + _MLP)
    return names + _layer_names(layer, _ATTN + ("ln2.w", "ln2.b", "mlp.W_in", "mlp.b_in"))


# ----------------------------------------------------------------------------- LayerNorm scale


def _token_sample(d_vocab: int, n_tokens: int, seed: int) -> torch.Tensor:
    if n_tokens >= d_vocab:
        return torch.arange(d_vocab)
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(d_vocab, generator=g)[:n_tokens].sort().values


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


def _rel_error(approx: torch.Tensor, exact: torch.Tensor) -> dict[str, float]:
    r = approx / exact - 1
    return {"mean_abs": float(r.abs().mean()), "rms": float(r.pow(2).mean().sqrt()), "max_abs": float(r.abs().max()),
            "mean": float(r.mean())}


def layernorm_scale_study(weights: Weights, n_tokens: int = 2048, pos_norm_from: int = 100, seed: int = 0) -> dict[str, Any]:
    """How good the seed's LayerNorm-scale approximations are on ``weights`` (layer 0, no attention output).

    Over a sample of ``n_tokens`` tokens (seeded) and every position: the exact multiplier
    ``1 / sqrt(var(W_E[t] + W_pos[i]) + eps)``, the seed's ``sqrt(d) / sqrt(|W_E[t]|² +
    |W_pos[i]|²)`` and its constant-norm variant (|W_pos[i]| -> mean beyond
    ``pos_norm_from``), their relative errors, and the cosine between W_E[t] and W_pos[i].
    Without W_E only the positional norms are reported (with a note).

    >>> s = layernorm_scale_study(load_weights("../shared/data/gpt2-small-partial"))   # doctest: +SKIP
    >>> round(s["pos_norm_mean"], 2)                                                    # doctest: +SKIP
    3.37
    """
    cfg = weights.cfg
    pn = weights.W_pos.double().norm(dim=-1)
    frm = min(int(pos_norm_from), cfg.n_ctx // 2)
    c = float(pn[frm:].mean())
    out: dict[str, Any] = {
        "pos_norm_from": frm, "pos_norm_mean": c, "pos_norm_std": float(pn[frm:].std()),
        "pos_norm_first": float(pn[0]), "pos_norms": pn.tolist(),
    }
    if not weights.has("embed.W_E"):
        out["note"] = "the checkpoint has no token embedding (wte.weight): exact and approximate scales were not compared"
        return out
    toks = _token_sample(cfg.d_vocab, n_tokens, seed)
    m = _multipliers(weights, toks, c)
    out.update(
        n_tokens=int(len(toks)),
        token_norm_mean=float(weights.W_E[toks].double().norm(dim=-1).mean()),
        cos_mean=float(m["cos"].mean()), cos_abs_mean=float(m["cos"].abs().mean()),
        exact_mean=float(m["exact"].mean()), exact_std=float(m["exact"].std()),
        approx_error=_rel_error(m["approx"], m["exact"]),
        approx_const_error=_rel_error(m["approx-const"], m["exact"]),
        approx_const_error_from=_rel_error(m["approx-const"][:, frm:], m["exact"][:, frm:]),
        exact_by_position=m["exact"].mean(0).tolist(),
        approx_by_position=m["approx"].mean(0).tolist(),
    )
    return out


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
    pn = weights.W_pos.double().norm(dim=-1)
    c = float(pn[min(int(pos_norm_from), cfg.n_ctx // 2):].mean())
    m = _multipliers(weights, _token_sample(cfg.d_vocab, n_tokens, seed), c)
    return m["exact" if mode == "exact-mean" else mode].mean(0)


# ----------------------------------------------------------------------------- PVO


def _ov_read(weights: Weights, layer: int, head: int, w_in: torch.Tensor) -> torch.Tensor:
    """``W_V^h · W_O^h · w_in``: what head ``h`` reads from its (normalised) input, per output column of ``w_in``."""
    p = f"blocks.{layer}.attn."
    W_V = weights.get(p + "W_V")[head].double()
    W_O = weights.get(p + "W_O")[head].double()
    return W_V @ (W_O @ w_in.double())


def pvo_matrix(weights: Weights, layer: int, head: int) -> torch.Tensor:
    """The PVO contribution ``W_pos · W_V^h · W_O^h · W_in`` of head ``layer.head`` to the
    MLP of the same layer, ``[n_ctx, d_mlp]`` in float64, on the weights as given.

    >>> pvo_matrix(w, 0, 5).norm(dim=0).shape      # doctest: +SKIP
    torch.Size([3072])
    """
    need = ["pos_embed.W_pos", f"blocks.{layer}.attn.W_V", f"blocks.{layer}.attn.W_O", f"blocks.{layer}.mlp.W_in"]
    require(weights, need, f"the PVO contribution of head {layer}.{head}")
    W_in = weights.get(f"blocks.{layer}.mlp.W_in")
    return weights.W_pos.double() @ _ov_read(weights, layer, head, W_in)


# ----------------------------------------------------------------------------- decomposition


def _copies(tokens: torch.Tensor, ignore: tuple[int, ...]) -> torch.Tensor:
    """``[q, k]`` bool: k <= q holds the same token as q (q itself included); ignored tokens only match themselves."""
    t = tokens
    P = len(t)
    same = (t[:, None] == t[None, :]) & torch.ones(P, P, dtype=torch.bool).tril()
    if ignore:
        bad = torch.isin(t, torch.as_tensor(list(ignore), dtype=t.dtype))
        same &= ~bad[:, None] | torch.eye(P, dtype=torch.bool)
    return same


def _rule(v: torch.Tensor, rule: str, copies: torch.Tensor) -> torch.Tensor:
    """Apply a seed approximation to per-key values ``v [P]``: the value each query gets."""
    if rule == "current":
        return v
    if rule == "uniform":
        return v.cumsum(0) / torch.arange(1, len(v) + 1, dtype=v.dtype)
    m = copies.to(v.dtype)
    return (m @ v) / m.sum(1)


def _err(approx: torch.Tensor, exact: torch.Tensor) -> dict[str, float]:
    e = approx - exact
    sd = float(exact.std()) if len(exact) > 1 else 0.0
    rms = float(e.pow(2).mean().sqrt())
    return {"rms": rms, "max_abs": float(e.abs().max()), "mean": float(e.mean()), "exact_std": sd,
            "relative_rms": rms / sd if sd > 0 else None}


def not_applicable_reason(cfg, label: str = "this model") -> str | None:
    """Why the duplicate-neuron analysis does not apply to a model of ``cfg``'s family, or None.

    PVO (``W_pos · W_V · W_O · W_in``) and the decomposition's positional part read a learned
    position table. The exact per-head decomposition also rests on LayerNorm folding, which
    is exact only before the sublayers that read it (pre-LayerNorm), and on the MLP reading
    the attention's output (sequential blocks): in a parallel block (GPT-NeoX) the MLP reads
    the block's input, so the same layer's heads contribute nothing to its neurons.
    """
    if cfg.positional != "learned":
        return (f"{label} has {cfg.positional} positions, no learned position table W_pos: the PVO path "
                "W_pos·W_V·W_O·W_in and the positional part of a neuron's input do not exist")
    if cfg.normalization != "LN":
        return (f"{label} uses {cfg.normalization} normalization; the exact decomposition folds LayerNorm "
                "weights into the matrices that read them, written for LayerNorm")
    if not cfg.pre_norm:
        return (f"{label} has post-LayerNorm blocks: the LayerNorm after attention rescales the residual stream "
                "itself, so it cannot be folded into the MLP's input weights and no exact per-head "
                "decomposition of a neuron exists")
    if cfg.parallel_attn_mlp:
        return (f"{label} runs attention and MLP in parallel: the MLP reads the block's input, so the same "
                "layer's duplicate head cannot drive its neurons")
    return None


def _neuron_read(weights: Weights, layer: int, neuron: int) -> tuple[torch.Tensor, float]:
    """The input weights and bias of the pre-activation ``mlp.hook_pre`` reports: the gate's
    (``W_gate``) in a gated MLP, whose non-linearity decides whether the neuron fires, else W_in's."""
    m = "gate" if weights.cfg.gated_mlp else "in"
    return (weights.get(f"blocks.{layer}.mlp.W_{m}")[:, neuron].double(),
            float(weights.get(f"blocks.{layer}.mlp.b_{m}")[neuron]))


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
) -> dict[str, Any]:
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
    >>> d["reconstruction_error"] < 1e-6                                  # doctest: +SKIP
    True
    """
    cfg = weights.cfg
    why = not_applicable_reason(cfg, weights.label)
    if why:
        raise NotApplicableError(f"the exact per-head decomposition of a neuron does not apply: {why}")
    L, hd = head
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
    w_in, b_in = _neuron_read(weights, L, neuron)
    b_O = weights.get(pre + "attn.b_O").double()
    W_V, W_O = weights.get(pre + "attn.W_V").double(), weights.get(pre + "attn.W_O").double()
    b_V = weights.get(pre + "attn.b_V").double()
    ov = torch.einsum("hdk,hkm,m->hd", W_V, W_O, w_in)  # [H, d]: what each head reads for this neuron
    vb = torch.einsum("hk,hkm,m->h", b_V, W_O, w_in)  # [H]
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
        uniform_heads = [h for h in range(cfg.n_heads) if h != hd and spread[str(h)]["kind"] == "uniform"]
    roles = {h: "duplicate" if h == hd else ("uniform" if h in uniform_heads else "current") for h in range(cfg.n_heads)}
    copies = _copies(tokens, ignore)
    frm = min(int(pos_norm_from), cfg.n_ctx // 2)
    c = float(weights.W_pos.double().norm(dim=-1)[frm:].mean())
    m1_exact = 1.0 / s1
    m1_seed = math.sqrt(cfg.d_model) / torch.sqrt(((x - pos) ** 2).sum(-1) + c * c)
    seed_pos = (pos @ ov.T).T * m1_seed  # [H, k]: PVO with the seed's LayerNorm multiplier
    per_head: dict[str, Any] = {}
    attn_only_total = direct_pos.clone()
    seed_total = (pos @ w_in) / s_bar
    for h in range(cfg.n_heads):
        rule = {"duplicate": "copies", "uniform": "uniform", "current": "current"}[roles[h]]
        a_only = _rule(key_pos[h], rule, copies) / s2
        a_seed = _rule(seed_pos[h], rule, copies) / s_bar
        attn_only_total += a_only
        seed_total += a_seed
        per_head[names[h]] = {"role": roles[h], "spread": spread[str(h)],
                              "error_attention_rule": _err(a_only, head_pos[h]), "error_seed": _err(a_seed, head_pos[h])}
    exact_total = head_pos.sum(0) + direct_pos
    const_pre = (measured - b_in) * s2 / s_bar + b_in

    return {
        "layer": L, "head": f"{L}.{hd}", "neuron": neuron, "n_tokens": P, "tokens": tokens.tolist(),
        "measured": measured.tolist(), "sum": total.tolist(),
        "reconstruction_error": float((total - measured).abs().max()),
        "components": {**{f"head {n}": (head_pos[i] + head_rest[i] + head_bias[i]).tolist() for i, n in enumerate(names)},
                       "attention bias b_O": attn_bias.tolist(), "direct W_pos": direct_pos.tolist(),
                       f"direct {rest_name}": direct_rest.tolist(), "neuron bias b_in": [b_in] * P},
        "positional": {**{f"head {n}": head_pos[i].tolist() for i, n in enumerate(names)},
                       "direct W_pos": direct_pos.tolist()},
        "non_positional": {f"head {n}": head_rest[i].tolist() for i, n in enumerate(names)},
        "value_bias": {f"head {n}": head_bias[i].tolist() for i, n in enumerate(names)},
        "mlp_scale": {"used": s_bar, "source": "given" if mlp_scale is not None else "mean over the text",
                      "mean": float(s2.mean()), "std": float(s2.std()), "min": float(s2.min()), "max": float(s2.max()),
                      "by_position": s2.tolist(),
                      "constant_scale_error": _err(const_pre, measured)},
        "ln1_scale_on_text": {"pos_norm_const": c, "pos_norm_from": frm,
                              "seed_vs_exact": _rel_error(m1_seed, m1_exact)},
        "approximations": {
            "uniform_heads": [names[h] for h in uniform_heads], "per_head": per_head,
            "total_positional": {"exact": exact_total.tolist(), "attention_rule": attn_only_total.tolist(),
                                 "seed": seed_total.tolist(),
                                 "error_attention_rule": _err(attn_only_total, exact_total),
                                 "error_seed": _err(seed_total, exact_total)},
        },
        "extra_vs_distance": _extra_vs_distance(tokens, copies, ignore, head_pos[hd], key_pos[hd] / s2,
                                                seed_pos[hd] / s_bar),
    }


def _extra_vs_distance(tokens, copies, ignore, dup_exact, dup_self, dup_seed) -> dict[str, Any]:
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
        return {"n": 0, "reason": "no token in the text has an earlier copy, so there is no duplicate to measure"}
    dist = (q_idx[:, None] - q_idx[None, :]).double() * earlier
    mean_d = dist.sum(1) / n_earlier.clamp(min=1)
    measured = dup_exact - dup_self
    predicted = _rule(dup_seed, "copies", copies) - dup_seed
    md, ms, pr = mean_d[ok].numpy(), measured[ok].numpy(), predicted[ok].numpy()
    fm, fp = linear_fit(ms, md), linear_fit(pr, md)

    def at(f, d):
        return None if f["slope"] is None else f["intercept"] + f["slope"] * d

    return {
        "n": int(ok.sum()), "positions": q_idx[ok].tolist(), "n_copies": (n_earlier[ok] + 1).tolist(),
        "mean_distance": md.tolist(), "measured": ms.tolist(), "predicted": pr.tolist(),
        "rms_error": float(np.sqrt(np.mean((pr - ms) ** 2))),
        "correlation": float(np.corrcoef(pr, ms)[0, 1]) if len(ms) > 2 and np.std(pr) > 0 and np.std(ms) > 0 else None,
        "fit_measured": fm, "fit_predicted": fp,
        "measured_at_100": at(fm, 100.0), "predicted_at_100": at(fp, 100.0),
    }


def combined_positional(weights: Weights, head: tuple[int, int], neuron: int, uniform_heads: list[int],
                        m1: torch.Tensor, mlp_scale: float) -> torch.Tensor:
    """The seed's "combined PVO contribution from all the components" ``[n_ctx]``: what a
    token that has no earlier copy gets from position alone, by the seed's rules.

    Every head but the uniform ones contributes its PVO at the current position (the
    duplicate head attends to the token itself), a uniform head the mean PVO over earlier
    positions, plus the direct path W_pos·w; ``m1`` is the layer-0 LayerNorm multiplier
    per position and ``mlp_scale`` the MLP LayerNorm scale.

    >>> combined_positional(w, (0, 5), 1168, [11], m1, 1.2)[200:].mean()   # doctest: +SKIP
    """
    L = head[0]
    w_in = weights.get(f"blocks.{L}.mlp.W_in")[:, neuron].double()
    pos = weights.W_pos.double()
    ov = torch.einsum("hdk,hkm,m->hd", weights.get(f"blocks.{L}.attn.W_V").double(),
                      weights.get(f"blocks.{L}.attn.W_O").double(), w_in)
    per_head = (pos @ ov.T) * m1[:, None]  # [n_ctx, H]
    n = torch.arange(1, len(pos) + 1, dtype=torch.float64)[:, None]
    uni = torch.zeros(per_head.shape[1], dtype=torch.bool)
    uni[list(uniform_heads)] = True
    heads = torch.where(uni[None, :], per_head.cumsum(0) / n, per_head)
    return (heads.sum(1) + pos @ w_in) / mlp_scale


# ----------------------------------------------------------------------------- top activating examples


def top_activating_examples(
    runner: Runner,
    tokens: torch.Tensor,
    layer: int,
    neuron: int,
    tokenizer=None,
    k: int = 20,
    before: int = 24,
    after: int = 4,
    ignore: tuple[int, ...] = (),
    batch_size: int = 8,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``k`` positions of ``tokens [n_seq, seq_len]`` where the neuron's activation
    (``blocks.{layer}.mlp.hook_post``) is highest, each with its context (``before`` /
    ``after`` tokens) and per-token activations; peaks in one sequence are at least
    ``before`` tokens apart. Each example also says whether its token has an earlier copy
    in the context and how far back; the summary compares that with all positions.

    >>> ex, summary = top_activating_examples(Runner(w), windows, 0, 1168, tok, k=10)  # doctest: +SKIP
    """
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    if tokens.dim() == 1:
        tokens = tokens[None]
    B, P = tokens.shape
    acts = torch.zeros(B, P, dtype=torch.float64)

    def reader(post, hook):
        acts[hook.batch] = post[..., neuron].double().cpu()

    runner.run(tokens, edits={f"blocks.{layer}.mlp.hook_post": reader}, batch_size=batch_size)
    bad = torch.isin(tokens, torch.as_tensor(list(ignore) or [-1], dtype=tokens.dtype))
    score = acts.masked_fill(bad, -math.inf)
    order = torch.argsort(score.reshape(-1), descending=True).tolist()
    chosen: list[tuple[int, int]] = []
    for flat in order:
        if len(chosen) == k:
            break
        b, p = divmod(flat, P)
        if bad[b, p]:
            break
        if any(cb == b and abs(cp - p) < before for cb, cp in chosen):
            continue
        chosen.append((b, p))

    def copy_stats(b: int, p: int) -> tuple[int, float | None, int | None]:
        prev = (tokens[b, :p] == tokens[b, p]).nonzero().reshape(-1)
        if len(prev) == 0:
            return 0, None, None
        d = (p - prev).double()
        return len(prev), float(d.mean()), int(d.min())

    examples = []
    for b, p in chosen:
        lo, hi = max(0, p - before), min(P, p + after + 1)
        ids = tokens[b, lo:hi].tolist()
        n, md, nearest = copy_stats(b, p)
        examples.append({
            "sequence": b, "position": p, "activation": float(acts[b, p]),
            "token": tokenizer.decode([ids[p - lo]]) if tokenizer is not None else str(ids[p - lo]),
            "tokens": tokenizer.to_str_tokens(ids) if tokenizer is not None else [str(i) for i in ids],
            "activations": acts[b, lo:hi].tolist(), "center": p - lo,
            "n_earlier_copies": n, "mean_copy_distance": md, "nearest_copy_distance": nearest,
        })
    # Base rate: how often any (non-ignored) position has an earlier copy.
    same = (tokens[:, :, None] == tokens[:, None, :]) & torch.ones(P, P, dtype=torch.bool).tril(-1)
    has = same.any(-1) & ~bad
    with_copy = [e for e in examples if e["n_earlier_copies"]]
    summary = {
        "k": len(examples), "n_positions": int((~bad).sum()),
        "max_activation": float(acts.masked_fill(bad, -math.inf).max()) if (~bad).any() else None,
        "mean_activation": float(acts[~bad].mean()) if (~bad).any() else None,
        "share_with_earlier_copy": len(with_copy) / len(examples) if examples else None,
        "base_share_with_earlier_copy": float(has.sum() / max(1, int((~bad).sum()))),
        "mean_copy_distance": float(np.mean([e["mean_copy_distance"] for e in with_copy])) if with_copy else None,
    }
    return examples, summary


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True)
class DupNeuronsResult(Result):
    """PVO analysis of one head, per-head decomposition of one neuron, top activating examples.

    Neuron-keyed maps (``fits``, ``curves``) use the neuron index as a string.
    """

    kind = "dup_neurons"
    head: str = ""
    layer: int = 0
    neuron: int | None = None
    d_mlp: int = 0
    head_choice: str = ""
    ln_scale: dict[str, Any] = field(default_factory=dict)
    pvo_norms: list[float] = field(default_factory=list)
    grid: list[list[float]] = field(default_factory=list)
    grid_shape: list[int] = field(default_factory=list)
    selected: list[int] = field(default_factory=list)
    selection: str = ""
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    ln1_multiplier: list[float] = field(default_factory=list)
    mlp_scale: dict[str, Any] = field(default_factory=dict)
    decomposition: dict[str, Any] = field(default_factory=dict)
    combined_positional: dict[str, Any] = field(default_factory=dict)
    top_examples: list[dict[str, Any]] = field(default_factory=list)
    top_examples_summary: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)


def _default_head(weights: Weights, seq_len: int, seed: int) -> tuple[tuple[int, int], str]:
    """Layer 0's head with the highest duplicate score on repeated random tokens."""
    from ..data.sequences import repeated_tokens

    require(weights, ["embed.W_E"], "choosing the duplicate head (pass --head to name one)")
    w0 = first_layers(weights, 1)
    P = min(seq_len, weights.cfg.n_ctx)
    st = pattern_stats(Runner(w0), repeated_tokens(16, P, weights.cfg.d_vocab, seed=seed), [0])
    scores = st.pooled()[0]
    h = int(np.argmax(scores))
    return (0, h), f"0.{h}: highest duplicate-token score in layer 0 on 16 repeated random-token sequences ({scores[h]:.3f})"


def duplicate_neurons(
    weights: Weights,
    head: tuple[int, int] | None = None,
    neuron: int | None = None,
    threshold: float = 30.0,
    top_k: int = 8,
    ln_scale: str = "approx",
    mlp_scale: float | None = None,
    fold_ln: bool = True,
    center: bool = True,
    text: str | None = None,
    corpus: str | Path | None = None,
    n_seq: int = 32,
    seq_len: int = 256,
    k_examples: int = 20,
    uniform_heads: list[tuple[int, int]] | None = None,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    tokenizer=None,
    pos_norm_from: int = 100,
    n_scale_tokens: int = 2048,
    fit_from: int = 1,
    combined_from: int = 200,
    max_curves: int = 16,
    context_before: int = 24,
    context_after: int = 4,
    prepend_bos: bool = True,
    batch_size: int = 8,
) -> DupNeuronsResult:
    """The seed's duplicate-neuron pipeline for ``head`` (default: layer 0's strongest duplicate head).

    PVO of the head onto the same layer's MLP: norms (grid), neurons above ``threshold``
    (else the ``top_k`` largest), curves and linear fits; then for ``neuron`` (default
    the largest selected) the decomposition over ``text`` (default: the first window of
    ``corpus``, else :data:`~poslens.data.sequences.SAMPLE_TEXT`) and the top
    ``k_examples`` activating positions over ``n_seq`` windows of ``corpus`` (else over
    the text). ``mlp_scale`` (default: measured on the text) divides the PVO curves.
    """
    from ..data.sequences import SAMPLE_TEXT, corpus_sequences, sampled_tokens, text_tokens
    from ..models.tokenizer import Tokenizer

    cfg = weights.cfg
    if ln_scale not in LN_SCALES:
        raise InvalidInputError(f"unknown --ln-scale '{ln_scale}'; use one of {', '.join(LN_SCALES)}")
    if threshold < 0 or top_k < 1 or k_examples < 0 or max_curves < 0:
        raise InvalidInputError("threshold must be >= 0, top_k >= 1, k_examples and max_curves >= 0")
    if mlp_scale is not None and not mlp_scale > 0:
        raise InvalidInputError(f"--mlp-scale must be positive; got {mlp_scale}")
    if head is not None:
        check_heads(weights, [tuple(head)])
        head = (int(head[0]), int(head[1]))
    if uniform_heads is not None:
        check_heads(weights, uniform_heads)
    if neuron is not None and not 0 <= int(neuron) < cfg.d_mlp:
        raise InvalidInputError(f"neuron {neuron} does not exist: the MLP of {weights.label} has neurons 0..{cfg.d_mlp - 1}")
    L = head[0] if head is not None else 0
    if uniform_heads is not None and any(l != L for l, _ in uniform_heads):
        raise InvalidInputError(f"--uniform-heads must be heads of layer {L}, the layer of the duplicate head")
    why = not_applicable_reason(cfg, weights.label)
    if why:
        raise NotApplicableError(f"the duplicate-neuron analysis does not apply: {why}")
    # Check everything the pipeline reads before the first expensive step.
    require(weights, ["pos_embed.W_pos", *_layer_names(L, ("ln1.w", "ln1.b", "attn.W_V", "attn.W_O", "ln2.w", "ln2.b",
                                                            "mlp.W_in"))],
            f"the PVO analysis of layer {L} (W_pos · W_V · W_O · W_in)")
    require(weights, _token_path_names(L), f"the per-head decomposition and top examples (token inputs through layer {L})")
    notes: list[str] = []
    head_choice = "given"
    if head is None:
        head, head_choice = _default_head(weights, seq_len, seed)
    L, hd = head
    if L > 0:
        notes.append(f"head {L}.{hd} is not in layer 0: PVO, its curves and the seed's LayerNorm formulas read W_pos "
                     "directly and ignore the layers before; the decomposition stays exact")

    wt = first_layers(weights, L + 1)
    wp = proc.fold_layer_norm(wt) if fold_ln else wt
    wp = proc.center_writing_weights(wp) if center else wp
    # The decomposition must add up to the model's pre-activation, so it always uses
    # folded LayerNorms (exact) and centred writers (exact), whatever the PVO options.
    wd = wp if (fold_ln and center) else proc.center_writing_weights(proc.fold_layer_norm(wt))

    study = layernorm_scale_study(wp, n_scale_tokens, pos_norm_from, seed)
    raw = pvo_matrix(wp, L, hd)  # [n_ctx, d_mlp]
    norms = raw.norm(dim=0)
    rows, cols = grid_shape(cfg.d_mlp)
    above = [int(i) for i in torch.argsort(norms, descending=True) if norms[i] > threshold]
    if above:
        selected, selection = above, f"|PVO| > {threshold}"
    else:
        selected = [int(i) for i in torch.argsort(norms, descending=True)[:top_k]]
        selection = f"top {top_k} by |PVO| (none above {threshold}; max {float(norms.max()):.3g})"
        notes.append(f"no neuron has |PVO| > {threshold}; took the {top_k} largest")
    if neuron is None:
        neuron = selected[0]
    neuron = int(neuron)

    # The text to decompose.
    tok = tokenizer
    if tok is None:
        try:
            tok = Tokenizer.for_checkpoint(weights.source)
        except PoslensError as exc:
            if text is not None or corpus is not None:
                raise
            notes.append(f"no tokenizer ({exc}); decomposed a random-token sequence instead of text")
    bos = tok.bos_token_id if (tok is not None and prepend_bos) else None
    ignore = (bos,) if bos is not None else ()
    P = min(seq_len, cfg.n_ctx)
    if text is not None:
        seq, text_source = text_tokens(text, tok, prepend_bos=bos is not None, max_len=cfg.n_ctx)[0], "given text"
    elif corpus is not None:
        seq = corpus_sequences(corpus, tok, P, 1, seed=seed, prepend_bos=bos is not None)[0]
        text_source = f"first window of {corpus}"
    elif tok is not None:
        seq = text_tokens(SAMPLE_TEXT, tok, prepend_bos=bos is not None, max_len=cfg.n_ctx)[0]
        text_source = "poslens sample text"
    else:
        seq = sampled_tokens(1, P, cfg.d_vocab, seed=seed, n_distinct=max(2, P // 4))[0]
        text_source = f"random tokens ({max(2, P // 4)} distinct)"
    if len(seq) > cfg.n_ctx:
        seq = seq[: cfg.n_ctx]
    uni = [h for _, h in uniform_heads] if uniform_heads is not None else None
    dec = decompose_neuron(wd, head, neuron, seq, uni, mlp_scale, pos_norm_from, ignore)
    dec["text_source"] = text_source
    dec["token_strings"] = tok.to_str_tokens(seq.tolist()) if tok is not None else [str(i) for i in seq.tolist()]
    s_mlp = dec["mlp_scale"]["used"]
    if dec["reconstruction_error"] > 1e-6 * max(1.0, float(np.abs(dec["measured"]).max())):
        notes.append(f"the decomposition misses the measured pre-activation by {dec['reconstruction_error']:.2e}")
    if dec["extra_vs_distance"].get("n", 0) == 0:
        notes.append(dec["extra_vs_distance"]["reason"])

    # PVO curves and fits.
    m1 = ln1_multiplier_curve(wp, ln_scale, n_scale_tokens, pos_norm_from, seed)
    curves_all = raw * m1[:, None] / s_mlp
    pos_idx = np.arange(cfg.n_ctx)
    ff = min(int(fit_from), cfg.n_ctx - 2)
    fit_neurons = list(dict.fromkeys([*selected, neuron]))
    fits = {str(n): {**linear_fit(curves_all[ff:, n].numpy(), pos_idx[ff:]), "norm": float(norms[n])} for n in fit_neurons}
    curves = {str(n): curves_all[:, n].tolist() for n in list(dict.fromkeys([neuron, *selected]))[:max_curves]}

    # The seed's combined positional curve for the decomposed neuron (weights only).
    m1d = ln1_multiplier_curve(wd, ln_scale, n_scale_tokens, pos_norm_from, seed)
    uni_heads = [int(n.split(".")[1]) for n in dec["approximations"]["uniform_heads"]]
    comb = combined_positional(wd, head, neuron, uni_heads, m1d, s_mlp)
    cf = min(int(combined_from), cfg.n_ctx // 2)
    combined = {"curve": comb.tolist(), "from_position": cf, "mean_from": float(comb[cf:].mean()),
                "uniform_heads": dec["approximations"]["uniform_heads"], "ln_scale": ln_scale, "mlp_scale": s_mlp}

    # Top activating examples.
    examples, ex_summary = [], {}
    if k_examples:
        runner = Runner(wt, device=device, dtype=dtype)
        if corpus is not None:
            windows = corpus_sequences(corpus, tok, P, n_seq, seed=seed, prepend_bos=bos is not None)
            source = f"{len(windows)} windows of {P} tokens from {corpus}"
        else:
            windows = seq[None]
            source = f"the decomposed text ({text_source}; pass --corpus to search a corpus)"
        examples, ex_summary = top_activating_examples(runner, windows, L, neuron, tok, k_examples, context_before,
                                                       context_after, ignore, batch_size)
        ex_summary["source"] = source

    options = dict(
        head=f"{L}.{hd}", neuron=neuron, threshold=threshold, top_k=top_k, ln_scale=ln_scale, mlp_scale=mlp_scale,
        fold_ln=fold_ln, center=center, center_axis="d_model (each row's mean removed; exact under LayerNorm)",
        text=text_source, corpus=str(corpus) if corpus else None, n_seq=n_seq, seq_len=P, k_examples=k_examples,
        uniform_heads=dec["approximations"]["uniform_heads"], uniform_heads_source="given" if uniform_heads else "detected",
        seed=seed, pos_norm_from=pos_norm_from, n_scale_tokens=n_scale_tokens, fit_from=ff,
        combined_from=cf, max_curves=max_curves, context_before=context_before, context_after=context_after,
        prepend_bos=bos is not None, dtype=dtype, decomposition_weights=list(wd.processing),
        decomposition_dtype="float64", pvo_norm="L2 over all positions of the raw W_pos·W_V·W_O·W_in",
    )
    res = DupNeuronsResult(
        model=weights.label, processing=wp.processing, options=options, head=f"{L}.{hd}", layer=L, neuron=neuron,
        d_mlp=cfg.d_mlp, head_choice=head_choice, ln_scale=study, pvo_norms=norms.tolist(),
        grid=norms.reshape(rows, cols).tolist(), grid_shape=[rows, cols], selected=selected, selection=selection,
        fits=fits, curves=curves, ln1_multiplier=m1.tolist(),
        mlp_scale={k: v for k, v in dec["mlp_scale"].items()}, decomposition=dec, combined_positional=combined,
        top_examples=examples, top_examples_summary=ex_summary, notes=notes,
    )
    return dataclasses.replace(res, checks=_checks(weights, res))


def _checks(weights: Weights, r: DupNeuronsResult) -> list[dict[str, Any]]:
    """The seed's GPT-2 small numbers, where the model has GPT-2 small's shape and the head is 0.5."""
    cfg = weights.cfg
    if (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_mlp, cfg.n_ctx) != (12, 12, 768, 3072, 1024):
        return []
    out = []
    st = r.ln_scale
    out.append(dict(what="|W_pos[i]| for i > 100", published=3.35, ours=st["pos_norm_mean"],
                    reproduced=abs(st["pos_norm_mean"] - 3.35) / 3.35 < 0.03,
                    note=f"mean over positions {st['pos_norm_from']}..{cfg.n_ctx - 1} (std {st['pos_norm_std']:.3f}); "
                         "within 3% counts as reproduced"))
    if "cos_abs_mean" in st:
        out.append(dict(what="cosine similarity of W_E[tok] and W_pos[i], on average", published=0.05,
                        ours=st["cos_abs_mean"], reproduced=st["cos_abs_mean"] < 0.1,
                        note=f"mean |cos| over {st['n_tokens']} sampled tokens x every position (signed mean "
                             f"{st['cos_mean']:.3f}); below 0.1 counts as reproduced"))
    ms = r.mlp_scale
    out.append(dict(what="MLP LayerNorm scale is stable around 1.2", published=1.2, ours=ms["mean"],
                    reproduced=abs(ms["mean"] - 1.2) / 1.2 < 0.15 and ms["std"] / ms["mean"] < 0.15,
                    note=f"ln2.hook_scale (the divisor, as TransformerLens caches it) on {r.decomposition.get('text_source')}; "
                         f"std {ms['std']:.3f}; within 15% and a coefficient of variation below 0.15 count as reproduced"))
    if r.head != "0.5":
        return out
    sel = [r.fits[str(n)] for n in r.selected if r.fits.get(str(n), {}).get("zero_crossing") is not None]
    if sel and r.selection.startswith("|PVO| >"):
        zc = float(np.median([f["zero_crossing"] for f in sel]))
        r2 = float(np.median([f["r2"] for f in sel]))
        out.append(dict(what="neurons with |PVO| > 30 have linear PVO crossing zero near position 500",
                        published="linear, zero at ~500", ours=f"{len(sel)} neurons; median zero crossing {zc:.0f}, "
                        f"median R² {r2:.2f}", reproduced=abs(zc - 500) <= 100 and r2 >= 0.9,
                        note=f"curves with --ln-scale {r.options.get('ln_scale')}; zero crossing within 100 positions "
                             "of 500 and R² >= 0.9 count as reproduced"))
    out.append(dict(what="neuron 1168 reads head 0.5's PVO (|PVO| > 30)", published=True,
                    ours=1168 in r.selected and r.selection.startswith("|PVO| >"),
                    reproduced=1168 in r.selected and r.selection.startswith("|PVO| >"),
                    note=f"|PVO| of 1168: {r.pvo_norms[1168]:.1f}"))
    if r.neuron == 1168:
        cp = r.combined_positional
        out.append(dict(what="combined PVO contribution to 1168 after position 200", published=-0.2,
                        ours=cp["mean_from"], reproduced=abs(cp["mean_from"] + 0.2) <= 0.1,
                        note="within 0.1 counts as reproduced"))
        ex = r.decomposition.get("extra_vs_distance", {})
        if ex.get("measured_at_100") is not None:
            out.append(dict(what="extra activation of 1168 when copies are on average 100 tokens back", published=1.0,
                            ours=ex["measured_at_100"], reproduced=0.5 <= ex["measured_at_100"] <= 1.5,
                            note=f"linear fit of the measured extra against mean distance on "
                                 f"{r.decomposition.get('text_source')} ({ex['n']} repeated tokens); the seed's "
                                 f"prediction by its own rule: {ex['predicted_at_100']:.2f}; 0.5-1.5 counts as reproduced"))
    return out


# ----------------------------------------------------------------------------- summary


def _f(x, fmt=".3g"):
    return "n/a" if x is None else format(x, fmt)


def summarize(r: DupNeuronsResult) -> list[str]:
    """Short lines for the terminal and the report."""
    lines = [f"head {r.head} ({r.head_choice}) into layer {r.layer}'s MLP: {len(r.selected)} neuron(s) selected by "
             f"{r.selection}: {', '.join(map(str, r.selected[:10]))}{' ...' if len(r.selected) > 10 else ''}"]
    f = r.fits.get(str(r.neuron), {})
    lines.append(f"neuron {r.neuron}: |PVO| {_f(f.get('norm'))}, PVO slope {_f(f.get('slope'))}/position, "
                 f"zero at {_f(f.get('zero_crossing'), '.0f')}, R² {_f(f.get('r2'), '.3f')}")
    st = r.ln_scale
    if "approx_error" in st:
        lines.append(f"LayerNorm scale: seed's approximation off by {st['approx_error']['mean_abs']:.2%} on average "
                     f"(max {st['approx_error']['max_abs']:.2%}); with |W_pos| = {st['pos_norm_mean']:.3f} "
                     f"{st['approx_const_error']['mean_abs']:.2%}; mean |cos(W_E, W_pos)| {st['cos_abs_mean']:.3f}")
    d = r.decomposition
    if d:
        ms = d["mlp_scale"]
        lines.append(f"decomposition over {d['n_tokens']} tokens ({d.get('text_source')}): exact to "
                     f"{d['reconstruction_error']:.1e}; MLP LayerNorm scale {ms['mean']:.3f} ± {ms['std']:.3f} "
                     f"(constant-scale error rms {ms['constant_scale_error']['rms']:.3g})")
        ap = d["approximations"]
        tp = ap["total_positional"]
        lines.append(f"seed's rules for the positional part (uniform heads: {', '.join(ap['uniform_heads']) or 'none'}): "
                     f"rms error {tp['error_attention_rule']['rms']:.3g} with exact LayerNorm scales, "
                     f"{tp['error_seed']['rms']:.3g} with the seed's scales (exact positional part varies by "
                     f"{tp['error_seed']['exact_std']:.3g})")
        ex = d["extra_vs_distance"]
        if ex.get("n"):
            lines.append(f"{ex['n']} repeated tokens: extra from the duplicate head {_f(ex['fit_measured']['slope'])}/token "
                         f"of mean copy distance measured, {_f(ex['fit_predicted']['slope'])} predicted; at 100 tokens "
                         f"{_f(ex['measured_at_100'])} measured vs {_f(ex['predicted_at_100'])} predicted "
                         f"(rms {ex['rms_error']:.3g})")
    cp = r.combined_positional
    if cp:
        lines.append(f"combined positional contribution by the seed's rules, mean after position {cp['from_position']}: "
                     f"{cp['mean_from']:.3g}")
    s = r.top_examples_summary
    if s.get("k"):
        lines.append(f"top {s['k']} activations (max {s['max_activation']:.3g}) over {s['source']}: "
                     f"{s['share_with_earlier_copy']:.0%} on tokens with an earlier copy "
                     f"(all positions: {s['base_share_with_earlier_copy']:.0%})")
    for c in r.checks:
        lines.append(f"seed: {c['what']}: {'reproduced' if c['reproduced'] else 'NOT reproduced'} (published "
                     f"{c['published']}, ours {c['ours'] if not isinstance(c['ours'], float) else format(c['ours'], '.3g')})")
    return lines + list(r.notes)


def figures(result: DupNeuronsResult, out_dir: str | Path) -> list[Path]:
    """PVO grid and curves, decomposition, approximations, extra vs distance, top-examples page into ``out_dir``."""
    from ..viz.duplicate import neuron_figures

    return neuron_figures(result, Path(out_dir))
