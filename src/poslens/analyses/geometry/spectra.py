"""Weight spectra and QK structure ("Dissecting the Frog", part 1).

For every layer's W_Q, W_K, W_V, W_O (whole d_model x d_model, and per head), W_in and
W_out (and a gated MLP's W_gate): the singular values and the slides' anisotropy metrics,

* condition number ``sigma_max / sigma_min`` (the slide's formula is written upside down;
  its printed 34819.75 is max/min),
* log-volume ``sum(log sigma)`` (the volume itself overflows: the slide prints ``inf``),
* spectral entropy ``H = -sum(p log p)`` with ``p = sigma / sum(sigma)`` (the slide prints
  ``sum(p log p) = -H``, hence its negative "entropy"),
* effective rank ``exp(H)`` (Roy & Vetterli 2007),
* numerical rank (singular values above ``sigma_max * max(shape) * eps(float32)``: the
  weights are stored in float32, so smaller values are rounding noise).

Singular values are computed in float64 (a float32 SVD moves GPT-2's smallest singular
values, hence the condition number, in the fourth digit). The whole matrices are the
Hugging Face blocks (``c_attn``'s Q/K/V thirds, ``c_proj``), raw by default: the convention
the slides' layer-5 figures reproduce with; they are compared in
:mod:`poslens.claims.dissecting_the_frog.geometry`, and this module measures only.

QK structure, per head: ``M_h = W_Q^h W_K^hT`` (d_model x d_model) and the slides'
distance ``d(A, B) = |A-B| / (|A| + |B| + |A-B|)`` (Frobenius) between M_h and M_h^T
(0 = symmetric, 0.5 = antisymmetric) and between M_h and the identity. Every norm is
computed from d_head x d_head products, so M_h is never formed.

>>> from poslens.models import load_weights
>>> r = weight_spectra(load_weights("../shared/data/gpt2-small-partial"), layers=[5])  # doctest: +SKIP
>>> round(r.matrices["W_Q"]["5"].effective_rank, 2), r.missing[:1]                 # doctest: +SKIP
(535.52, ['W_in of layer 5 (mlp.c_fc.weight is not in the checkpoint)'])
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from ...errors import InvalidInputError, MissingTensorError
from ...models.weights import Weights, as_weights
from ...options import resolve
from ...results import ClaimRow, Result
from ..heads.options import check_layers
from .options import GATED, MATRICES, SpectraOptions
from .spectrum import QKDistance, Spectrum, qk_distances, spectrum_metrics, svdvals
from .spheres import SphereOverlapResult

# A gated MLP (SwiGLU) reads the residual stream twice: W_gate beside W_in. Its spectrum is
# added wherever W_in's is asked for; "W_gate" may also be named alone.
HEAD_MATRICES = ("W_Q", "W_K", "W_V", "W_O")
TENSOR = {"W_Q": "attn.W_Q", "W_K": "attn.W_K", "W_V": "attn.W_V", "W_O": "attn.W_O",
          "W_in": "mlp.W_in", "W_out": "mlp.W_out", "W_gate": "mlp.W_gate"}
BIAS = {"W_Q": "attn.b_Q", "W_K": "attn.b_K", "W_V": "attn.b_V", "W_O": "attn.b_O",
        "W_in": "mlp.b_in", "W_out": "mlp.b_out", "W_gate": "mlp.b_gate"}


# ----------------------------------------------------------------------------- metrics and matrices


def whole_matrix(w: Weights, matrix: str, layer: int, include_bias: bool = False) -> torch.Tensor:
    """The layer's full matrix in Hugging Face orientation ([in, out]); with ``include_bias``
    the bias is appended as a last input row (the affine map in homogeneous coordinates).

    >>> whole_matrix(w, "W_Q", 5).shape          # doctest: +SKIP
    torch.Size([768, 768])
    """
    p = f"blocks.{layer}."
    W = w.get(p + TENSOR[matrix], needed_for=f"the {matrix} spectrum")
    kv = _kv_heads(w, matrix)
    W = W[kv] if kv is not None else W
    if matrix in ("W_Q", "W_K", "W_V"):
        W = W.permute(1, 0, 2).reshape(W.shape[1], -1)  # [d_model, n_heads * d_head]
    elif matrix == "W_O":
        W = W.reshape(-1, W.shape[-1])  # [n_heads * d_head, d_model]
    if include_bias:
        b = w.get(p + BIAS[matrix], needed_for=f"the {matrix} spectrum with bias")
        b = (b[kv] if kv is not None else b).reshape(1, -1)
        W = torch.cat([W, b], 0)
    return W


def _kv_heads(w: Weights, matrix: str) -> torch.Tensor | None:
    """Grouped-query models store one key/value head per group of query heads; Weights expands
    them over the query heads, so the stored matrix is every group's first copy (None: no grouping)."""
    cfg = w.cfg
    if matrix not in ("W_K", "W_V") or cfg.n_key_value_heads == cfg.n_heads:
        return None
    return torch.arange(0, cfg.n_heads, cfg.n_heads // cfg.n_key_value_heads)


def head_matrices(w: Weights, matrix: str, layer: int, include_bias: bool = False) -> torch.Tensor:
    """``[n_heads, rows, cols]``: each head's block of W_Q/W_K/W_V ([d_model(+1), d_head]) or
    W_O ([d_head, d_model]; b_O belongs to no head, so it is never appended)."""
    p = f"blocks.{layer}."
    W = w.get(p + TENSOR[matrix], needed_for=f"per-head {matrix} spectra")
    if include_bias and matrix != "W_O":
        b = w.get(p + BIAS[matrix], needed_for=f"per-head {matrix} spectra with bias")  # [H, dh]
        W = torch.cat([W, b[:, None, :]], 1)
    return W


def tensors_for(matrix: str, layer: int, include_bias: bool, fold_ln: bool) -> list[str]:
    p = f"blocks.{layer}."
    names = [p + TENSOR[matrix]]
    if include_bias:
        names.append(p + BIAS[matrix])
    if fold_ln and matrix in ("W_Q", "W_K", "W_V", "W_in", GATED):
        ln = "ln1" if matrix not in ("W_in", GATED) else "ln2"
        names += [p + f"{ln}.w", p + f"{ln}.b"]
    return names


@dataclass(frozen=True)
class SpectraResult(Result):
    """Weight spectra (``matrices[matrix][layer]``), per-head metrics (``heads[matrix]["L.H"]``)
    and QK distances (``qk["L.H"]``); ``missing`` says what the checkpoint lacked. ``checks`` is
    empty here: :func:`poslens.claims.dissecting_the_frog.geometry.with_claims` adds the published rows."""

    kind = "spectra"
    layers: list[int] = field(default_factory=list)
    matrices: dict[str, dict[str, Spectrum]] = field(default_factory=dict)  # matrix -> layer ("5") -> metrics
    heads: dict[str, dict[str, Spectrum]] = field(default_factory=dict)  # matrix -> head ("5.1") -> metrics
    qk: dict[str, QKDistance] = field(default_factory=dict)  # head ("5.1") -> distances
    missing: list[str] = field(default_factory=list)
    conventions: dict[str, str] = field(default_factory=dict)
    sphere_overlap: SphereOverlapResult | None = None  # filled by `poslens spectra`
    checks: list[ClaimRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def weight_spectra(weights: Weights, options: SpectraOptions | None = None, *, device: str = "cpu",
                   **overrides) -> SpectraResult:
    """Singular-value metrics of every weight matrix, per head and whole, and QK distances.

    ``options`` (:class:`SpectraOptions`; keywords replace its fields).
    ``fold_ln`` scales the reading matrices by their LayerNorm weight first (no centring,
    which would make them singular); ``include_bias`` appends each bias as an input row.
    Only the tensors needed are read; matrices the checkpoint lacks are listed in
    ``missing`` (MissingTensorError when none is available).

    >>> r = weight_spectra(load_weights("tiny"), per_head=False)   # doctest: +SKIP
    >>> r.matrices["W_in"]["0"].condition                       # doctest: +SKIP
    """
    from ...models.processing import fold_layer_norm
    from ...models.runner import check_device

    o = resolve(SpectraOptions, options, overrides, "weight_spectra")
    weights = as_weights(weights, "weight_spectra")
    check_device(device)  # torch says it only at the first tensor moved, as an AssertionError
    matrices = tuple(o.matrices)
    cfg = weights.cfg
    layers = check_layers(weights, o.layers)
    if GATED in matrices and not cfg.gated_mlp:
        raise InvalidInputError(f"{weights.label} has no gated MLP, so no {GATED}; choose from {', '.join(MATRICES)}")
    if cfg.gated_mlp and "W_in" in matrices and GATED not in matrices:
        i = list(matrices).index("W_in")
        matrices = (*matrices[:i + 1], GATED, *matrices[i + 1:])
    # Which (matrix, layer) pairs the checkpoint supports.
    avail: dict[str, list[int]] = {}
    missing: list[str] = []
    for m in matrices:
        gone = {l: [n for n in tensors_for(m, l, o.include_bias, o.fold_ln) if not weights.has(n)] for l in layers}
        lacking = {l: g[0] for l, g in gone.items() if g}
        if len(lacking) < len(layers):
            avail[m] = [l for l in layers if l not in lacking]
        if lacking:
            hf = sorted({re.sub(r"^h\.\d+\.", "", weights.stored_name(n) or n) for n in lacking.values()})
            missing.append(f"{m} of layer{'s' if len(lacking) > 1 else ''} {_span(sorted(lacking))} "
                           f"({', '.join(hf)} {'is' if len(hf) == 1 else 'are'} not in the checkpoint)")
    if not avail:
        first = next(iter(tensors_for(matrices[0], layers[0], o.include_bias, o.fold_ln)))
        raise MissingTensorError(weights.stored_name(first) or first, "weight spectra", weights.label)
    w = fold_layer_norm(weights, center_reading=False) if o.fold_ln else weights

    out_m: dict[str, dict[str, Spectrum]] = {}
    for m, ls in avail.items():
        mats = [whole_matrix(w, m, l, o.include_bias) for l in ls]
        svs = svdvals(torch.stack(mats), device)
        out_m[m] = {}
        for l, W, sv in zip(ls, mats, svs):
            d = spectrum_metrics(sv, tuple(W.shape))
            # 7 significant digits: float32 resolution, a third of the JSON.
            out_m[m][str(l)] = replace(d, singular_values=[float(f"{x:.7g}") for x in sv]) if o.keep_spectra else d

    out_h: dict[str, dict[str, Spectrum]] = {}
    if o.per_head:
        for m in [x for x in HEAD_MATRICES if x in avail]:
            ls = avail[m]
            stack = torch.cat([head_matrices(w, m, l, o.include_bias) for l in ls])  # [L*H, r, c]
            out_h[m] = {f"{ls[i // cfg.n_heads]}.{i % cfg.n_heads}": spectrum_metrics(sv, tuple(stack.shape[1:]))
                        for i, sv in enumerate(svdvals(stack, device))}

    out_qk: dict[str, QKDistance] = {}
    if o.qk and "W_Q" in avail and "W_K" in avail:
        for l in sorted(set(avail["W_Q"]) & set(avail["W_K"])):
            Q, K = w.get(f"blocks.{l}.attn.W_Q"), w.get(f"blocks.{l}.attn.W_K")
            for h in range(cfg.n_heads):
                out_qk[f"{l}.{h}"] = qk_distances(Q[h], K[h])

    notes = []
    if o.fold_ln:  # fold_layer_norm leaves RMSNorm and post-LayerNorm models as stored, and says why
        step = w.processing[-1] if w.processing else ""
        why = step[len("fold_layer_norm["):-1] if step.startswith("fold_layer_norm[") else ""
        notes.append(f"LayerNorm weights not folded ({why}): those matrices are as stored." if why else
                     "LayerNorm weights folded into W_Q/W_K/W_V/W_in (scaled, not centred).")
    conventions = {
        "whole": "W_Q/W_K/W_V: [d_model, n_heads*d_head] (c_attn thirds); W_O: [n_heads*d_head, d_model] (c_proj); "
                 "W_in/W_out: mlp.c_fc/c_proj",
        "per_head": "W_Q^h/W_K^h/W_V^h: [d_model, d_head]; W_O^h: [d_head, d_model]",
        **({"grouped_query": f"{cfg.n_key_value_heads} key/value heads for {cfg.n_heads} query heads: whole W_K/W_V are "
                             f"the stored [d_model, {cfg.n_key_value_heads}*d_head] matrices; per-head W_K^h/W_V^h "
                             "are the key/value head query head h reads (shared within a group)"}
           if cfg.n_key_value_heads != cfg.n_heads else {}),
        **({"gated_mlp": "W_gate: [d_model, d_mlp], the gate of act(x W_gate) * (x W_in)"} if cfg.gated_mlp else {}),
        "condition": "sigma_max / sigma_min",
        "log_volume": "sum(log sigma)",
        "entropy": "-sum(p log p), p = sigma / sum(sigma), natural log (the slides print sum(p log p) = -entropy)",
        "effective_rank": "exp(entropy) (Roy & Vetterli)",
        "qk": "d(A,B) = |A-B|_F / (|A|_F + |B|_F + |A-B|_F); symmetry: d(M, M^T) (0 symmetric, 0.5 "
              "antisymmetric, 0.414 when tr(M M) = 0); identity: d(M, I_d_model); identity_scaled: d(M * |I|/|M|, I) "
              "(0.414 when tr(M) = 0)",
        "svd": "float64; large matrices via eigvalsh of the smaller Gram matrix, redone with a full SVD (gesdd) "
               "when sigma_min/sigma_max < 1e-4, so every singular value is accurate to better than 1e-5 relative",
    }
    options = {**asdict(o), "layers": layers, "matrices": list(matrices)}
    return SpectraResult(model=weights.label, processing=w.processing, options=options, layers=layers,
                         matrices=out_m, heads=out_h, qk=out_qk, missing=missing, conventions=conventions,
                         notes=notes)


def _span(ls: list[int]) -> str:
    if len(ls) > 2 and ls == list(range(ls[0], ls[-1] + 1)):
        return f"{ls[0]}-{ls[-1]}"
    return ",".join(map(str, ls))


# ----------------------------------------------------------------------------- summary


def summarize(result: SpectraResult) -> list[str]:
    """Short lines for the CLI and the report."""
    lines = []
    for m, by_layer in result.matrices.items():
        zero = [k for k, v in by_layer.items() if v.sigma_max == 0]
        if zero:
            lines.append(f"{m}: all zero in layer{'s' if len(zero) > 1 else ''} {_span([int(k) for k in zero])} "
                         "(no spectrum: an attention-only model's MLP, or a pruned matrix)")
        by_layer = {k: v for k, v in by_layer.items() if k not in zero}
        if not by_layer:
            continue
        er = [v.effective_rank for v in by_layer.values()]
        full = min(next(iter(by_layer.values())).shape)
        cond = [v.condition for v in by_layer.values()]
        rng = (lambda xs, f: f"{min(xs):{f}}" if len(xs) == 1 else f"{min(xs):{f}}-{max(xs):{f}}")  # noqa: E731
        lines.append(f"{m}: effective rank {rng(er, '.1f')} of {full}; condition number {rng(cond, '.3g')}; "
                     f"layer{'s' if len(er) > 1 else ''} {_span([int(k) for k in by_layer])}")
    if result.qk:
        sym = np.array([v.symmetry for v in result.qk.values()])
        ids = np.array([v.identity_scaled for v in result.qk.values()])
        most = min(result.qk, key=lambda k: result.qk[k].symmetry)
        lines.append(f"QK: d(M_h, M_h^T) {sym.min():.3f}-{sym.max():.3f} (most symmetric {most}); "
                     f"d(M_h scaled, I) {ids.min():.3f}-{ids.max():.3f} (a matrix with no symmetric part "
                     f"or no identity part sits at sqrt(2)/(2+sqrt(2)) = 0.414)")
    for c in result.checks:
        mark = "reproduced" if c.reproduced else "NOT reproduced"
        ours = c.ours if isinstance(c.ours, str) else f"{c.ours:.8g}" if c.ours is not None else "n/a"
        lines.append(f"{c.what}: published {c.published}, ours {ours} ({mark})")
    lines += [f"missing: {m}" for m in result.missing]
    lines += result.notes
    return lines
