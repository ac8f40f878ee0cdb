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
(535.52, ['mlp.W_in of layer 5 (mlp.c_fc.weight is not in the checkpoint)'])
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ...errors import InvalidInputError, MissingTensorError
from ...models.weights import Weights
from ...options import resolve
from ...results import ClaimRow, Result
from .options import GATED, MATRICES, SpectraOptions
from .spheres import SphereOverlapResult

# A gated MLP (SwiGLU) reads the residual stream twice: W_gate beside W_in. Its spectrum is
# added wherever W_in's is asked for; "W_gate" may also be named alone.
HEAD_MATRICES = ("W_Q", "W_K", "W_V", "W_O")
TENSOR = {"W_Q": "attn.W_Q", "W_K": "attn.W_K", "W_V": "attn.W_V", "W_O": "attn.W_O",
          "W_in": "mlp.W_in", "W_out": "mlp.W_out", "W_gate": "mlp.W_gate"}
BIAS = {"W_Q": "attn.b_Q", "W_K": "attn.b_K", "W_V": "attn.b_V", "W_O": "attn.b_O",
        "W_in": "mlp.b_in", "W_out": "mlp.b_out", "W_gate": "mlp.b_gate"}
_F32_EPS = float(np.finfo(np.float32).eps)


# ----------------------------------------------------------------------------- metrics and matrices


@dataclass(frozen=True)
class Spectrum:
    """One matrix's anisotropy metrics (the slides'), from its singular values; see
    :attr:`SpectraResult.conventions` for each definition."""

    shape: tuple[int, ...]
    sigma_max: float
    sigma_min: float
    condition: float  # sigma_max / sigma_min (inf when singular, nan for a zero matrix)
    log_volume: float  # sum of log sigma
    entropy: float  # of sigma / sum(sigma), nats
    effective_rank: float  # exp(entropy)
    numerical_rank: int
    frobenius: float
    singular_values: list[float] | None = None  # with keep_spectra


@dataclass(frozen=True)
class QKDistance:
    """``M = W_Q^h W_K^hT`` against its transpose and the identity (the slides' distance, in [0, 1])."""

    norm: float  # |M|_F
    trace: float
    symmetry: float  # d(M, M^T)
    identity: float  # d(M, I)
    identity_scaled: float  # d(M scaled to |I|, I)
    cos_identity: float  # tr(M) / (|M| |I|)


def spectrum_metrics(sv: np.ndarray, shape: tuple[int, ...]) -> Spectrum:
    """The slides' anisotropy metrics of one matrix from its singular values.

    A matrix of zeros (an attention-only model's MLP) has rank 0 and no condition number.

    >>> m = spectrum_metrics(np.array([2.0, 2.0, 0.0]), (3, 3))
    >>> m.effective_rank, m.numerical_rank, m.condition
    (2.0, 2, inf)
    >>> m = spectrum_metrics(np.zeros(3), (3, 3))
    >>> m.effective_rank, m.numerical_rank, m.condition
    (0.0, 0, nan)
    """
    sv = np.sort(np.asarray(sv, dtype=np.float64))[::-1]
    smax = float(sv[0]) if sv.size else 0.0
    smin = float(sv[-1]) if sv.size else 0.0
    total = float(sv.sum())
    p = sv / total if total > 0 else sv
    nz = p[p > 0]
    H = float(-(nz * np.log(nz)).sum())
    with np.errstate(divide="ignore"):
        logs = np.log(sv)
    zero = smax == 0.0
    return Spectrum(
        shape=tuple(shape), sigma_max=smax, sigma_min=smin,
        condition=math.nan if zero else smax / smin if smin > 0 else math.inf,
        log_volume=float(logs.sum()), entropy=H, effective_rank=0.0 if zero else math.exp(H),
        numerical_rank=0 if zero else int((sv > smax * max(shape) * _F32_EPS).sum()),
        frobenius=float(np.sqrt((sv**2).sum())),
    )


def frobenius_distance(A: torch.Tensor, B: torch.Tensor) -> float:
    """The slides' metric ``|A-B| / (|A| + |B| + |A-B|)`` (Frobenius norms), in [0, 1].

    >>> frobenius_distance(torch.eye(3), torch.eye(3))
    0.0
    """
    a, b, ab = (float(torch.linalg.matrix_norm(x.double())) for x in (A, B, A - B))
    den = a + b + ab
    return ab / den if den > 0 else 0.0


def qk_distances(W_Q: torch.Tensor, W_K: torch.Tensor) -> QKDistance:
    """Distances of ``M = W_Q W_K^T`` ([d_model, d_head] each) to M^T and to the identity.

    Uses ``|M|^2 = tr(Wk'Wk Wq'Wq)``, ``tr(MM) = tr((Wk'Wq)^2)``, ``tr(M) = tr(Wk'Wq)``, all
    d_head x d_head. ``identity_scaled`` compares M rescaled to the identity's norm, so it
    measures shape only (``1 - cos`` between M and I enters it, not M's size).

    >>> q = torch.randn(8, 8); qk_distances(q, q).symmetry < 1e-12
    True
    """
    q, k = W_Q.double(), W_K.double()
    d = q.shape[0]
    kq = k.T @ q  # [dh, dh]
    m2 = float(torch.trace((k.T @ k) @ (q.T @ q)))
    m = math.sqrt(max(m2, 0.0))
    trmm = float(torch.trace(kq @ kq))
    tr = float(torch.trace(kq))

    def dist(a: float, b: float, ab2: float) -> float:
        ab = math.sqrt(max(ab2, 0.0))
        den = a + b + ab
        return ab / den if den > 0 else 0.0

    sym = dist(m, m, 2 * m2 - 2 * trmm)
    ident = dist(m, math.sqrt(d), m2 - 2 * tr + d)
    s = math.sqrt(d) / m if m > 0 else 0.0  # rescale M to |I|
    scaled = dist(math.sqrt(d), math.sqrt(d), s * s * m2 - 2 * s * tr + d)
    return QKDistance(norm=m, trace=tr, symmetry=sym, identity=ident, identity_scaled=scaled,
                      cos_identity=tr / (m * math.sqrt(d)) if m > 0 else 0.0)


# Below this sigma_min / sigma_max the Gram route loses digits of sigma_min; use a full SVD.
_GRAM_MIN_RATIO = 1e-4


def svdvals(batch: torch.Tensor, device: str | torch.device) -> np.ndarray:
    """Singular values of ``[batch, m, n]`` in float64, descending.

    Small matrices (per-head blocks) go through one batched call: elongated ones (768 x 64)
    through the eigenvalues of their small Gram matrices (5x faster than a batched SVD), with
    the same guard as below, square ones through ``torch.linalg.svdvals``.
    On the CPU, large near-square ones go straight to LAPACK's SVD (trained GPT-2 Q/K/V/O have
    sigma_min / sigma_max ~ 1e-5, which the Gram route below would redo anyway); large
    rectangular ones (768 x 3072) through the eigenvalues of the smaller Gram matrix
    (``scipy.linalg.eigvalsh`` of ``A A^T``, 2-4x faster than an SVD), whose relative error on
    sigma_i is about ``eps * n * (sigma_max / sigma_i)^2``: whenever ``sigma_min / sigma_max <
    _GRAM_MIN_RATIO`` the matrix is redone with LAPACK's SVD, keeping every singular value to
    better than 1e-5 relative.
    """
    if torch.device(device).type == "cpu" and min(batch.shape[-2:]) > 256:
        from concurrent.futures import ThreadPoolExecutor

        from scipy.linalg import eigvalsh, svdvals as full_svd
        from threadpoolctl import threadpool_limits

        def one(a: np.ndarray) -> np.ndarray:
            b = a if a.shape[0] <= a.shape[1] else a.T
            sv = np.sqrt(np.clip(eigvalsh(b @ b.T, check_finite=False)[::-1], 0.0, None)) \
                if b.shape[1] >= 2 * b.shape[0] else None
            return sv if sv is not None and sv[-1] >= _GRAM_MIN_RATIO * sv[0] else full_svd(a, check_finite=False)

        mats = list(batch.detach().to(torch.float64).numpy())
        workers = min(len(mats), torch.get_num_threads())
        if workers < 2:
            return np.stack([one(a) for a in mats])
        # LAPACK's SVD of a 768 x 768 matrix uses a second core poorly: one matrix per core is faster
        with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
            return np.stack(list(pool.map(one, mats)))
    b = batch.to(device, torch.float64)
    if b.shape[-2] > b.shape[-1]:
        b = b.transpose(-2, -1)
    if b.shape[-1] < 2 * b.shape[-2]:
        return torch.linalg.svdvals(b).cpu().numpy()
    sv = torch.linalg.eigvalsh(b @ b.transpose(-2, -1)).flip(-1).clamp_min(0.0).sqrt()
    redo = sv[..., -1] < _GRAM_MIN_RATIO * sv[..., 0]
    if bool(redo.any()):
        sv[redo] = torch.linalg.svdvals(b[redo])
    return sv.cpu().numpy()


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


def _round_sv(sv: np.ndarray) -> list[float]:
    # 7 significant digits: float32 resolution, a third of the JSON.
    return [float(f"{x:.7g}") for x in sv]


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

    o = resolve(SpectraOptions, options, overrides, "weight_spectra")
    matrices, per_head, qk, include_bias, fold_ln, keep_spectra = (
        tuple(o.matrices), o.per_head, o.qk, o.include_bias, o.fold_ln, o.keep_spectra)
    cfg = weights.cfg
    layers = _check_layers(weights, o.layers)
    if GATED in matrices and not cfg.gated_mlp:
        raise InvalidInputError(f"{weights.label} has no gated MLP, so no {GATED}; choose from {', '.join(MATRICES)}")
    if cfg.gated_mlp and "W_in" in matrices and GATED not in matrices:
        i = list(matrices).index("W_in")
        matrices = (*matrices[:i + 1], GATED, *matrices[i + 1:])
    # Which (matrix, layer) pairs the checkpoint supports.
    avail: dict[str, list[int]] = {}
    missing: list[str] = []
    for m in matrices:
        ok, lacking = [], {}
        for l in layers:
            gone = [n for n in tensors_for(m, l, include_bias, fold_ln) if not weights.has(n)]
            if gone:
                lacking[l] = gone[0]
            else:
                ok.append(l)
        if ok:
            avail[m] = ok
        if lacking:
            hf = sorted({re.sub(r"^h\.\d+\.", "", weights._hf_source(n) or n) for n in lacking.values()})
            missing.append(f"{m} of layer{'s' if len(lacking) > 1 else ''} {_span(sorted(lacking))} "
                           f"({', '.join(hf)} {'is' if len(hf) == 1 else 'are'} not in the checkpoint)")
    if not avail:
        first = next(iter(tensors_for(matrices[0], layers[0], include_bias, fold_ln)))
        raise MissingTensorError(weights._hf_source(first) or first, "weight spectra", weights.label)
    w = fold_layer_norm(weights, center_reading=False) if fold_ln else weights

    out_m: dict[str, dict[str, Spectrum]] = {}
    for m, ls in avail.items():
        mats = [whole_matrix(w, m, l, include_bias) for l in ls]
        svs = svdvals(torch.stack(mats), device)
        out_m[m] = {}
        for l, W, sv in zip(ls, mats, svs):
            d = spectrum_metrics(sv, tuple(W.shape))
            out_m[m][str(l)] = replace(d, singular_values=_round_sv(sv)) if keep_spectra else d

    out_h: dict[str, dict[str, Spectrum]] = {}
    if per_head:
        for m in [x for x in HEAD_MATRICES if x in avail]:
            ls = avail[m]
            stack = torch.cat([head_matrices(w, m, l, include_bias) for l in ls])  # [L*H, r, c]
            svs = svdvals(stack, device)
            out_h[m] = {}
            for i, sv in enumerate(svs):
                l, h = ls[i // cfg.n_heads], i % cfg.n_heads
                out_h[m][f"{l}.{h}"] = spectrum_metrics(sv, tuple(stack.shape[1:]))

    out_qk: dict[str, QKDistance] = {}
    if qk and "W_Q" in avail and "W_K" in avail:
        for l in sorted(set(avail["W_Q"]) & set(avail["W_K"])):
            Q = w.get(f"blocks.{l}.attn.W_Q")
            K = w.get(f"blocks.{l}.attn.W_K")
            for h in range(cfg.n_heads):
                out_qk[f"{l}.{h}"] = qk_distances(Q[h], K[h])

    notes = []
    if fold_ln:
        notes.append("LayerNorm weights folded into W_Q/W_K/W_V/W_in (scaled, not centred).")
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
    options = dict(layers=layers, matrices=list(matrices), per_head=per_head, qk=qk, include_bias=include_bias,
                   fold_ln=fold_ln, keep_spectra=keep_spectra)
    return SpectraResult(model=weights.label, processing=w.processing, options=options, layers=layers,
                         matrices=out_m, heads=out_h, qk=out_qk, missing=missing, conventions=conventions,
                         notes=notes)


def _check_layers(weights: Weights, layers) -> list[int]:
    n = weights.cfg.n_layers
    if layers is None or len(layers) == 0:
        return list(range(n))
    out = sorted({int(l) for l in layers})
    for l in out:
        if not 0 <= l < n:
            raise InvalidInputError(f"layer {l} does not exist: {weights.label} has layers 0..{n - 1}")
    return out


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
