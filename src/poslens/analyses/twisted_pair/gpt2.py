"""Looking for the twisted-pair mechanism in a trained GPT-2-family model.

The twisted-pair post claims that GPT-2's positional embeddings lie near a helix, so that their
derivative is (nearly) linear in them, f' = W f + c, and an attention head can compute
y_i = W x_i + c; and that layer-0 MLP neurons come in pairs whose common input (the gate)
cancels. Three measurements, each on whatever the checkpoint holds:

1. :func:`fit_curve`: PCA of the curve (``W_pos`` rows from ``first_position``; or ``W_E``
   rows for a hand-built construction), a linear ODE fit in the top components
   (:func:`poslens.analyses.helix.fit_linear_ode`; Savitzky-Golay derivatives by default,
   since a trained W_pos jitters from row to row), and the same fit on phase-randomised
   surrogates (each component's power spectrum kept, the coupling between components
   destroyed) as the chance level of R^2 for a curve this smooth.
2. :func:`derivative_heads`: for every head, the OV image of LN(x_i) (the head's output
   if it attended to position i itself) against the derivative direction f'(i): the mean
   cosine over positions (centred), a control with the positions shuffled, and the R^2 of
   reading f' linearly from the head's output in any basis. For layer 0 the real outputs
   (with the head's own attention, positional inputs only) come from the Runner.
3. :func:`neuron_pairs` (only where the MLP weights exist): neuron pairs with near-identical
   input weights (LayerNorm folded), opposite output weights, and an input difference that
   lies in the "x_j - x_i" subspace: the span of the position-derivatives of the heads'
   outputs, i.e. what a head writes when the position it attends to moves.

>>> from poslens.models import load_weights
>>> r = gpt2_part(load_weights("../shared/data/gpt2-small-partial"))   # doctest: +SKIP
>>> r.ode.r2, r.heads[0].head, r.neurons_skipped                         # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InvalidInputError, MissingTensorError
from ...models.weights import Weights, require
from ...options import one_of
from ..heads.options import check_layers
from ..helix.pca import OdeFit, PCAFit, fit_linear_ode, pca
from .options import SCHEMES

CURVE_SOURCES = ("W_pos", "W_E")


@dataclass(frozen=True)
class CurveOde:
    """The linear ODE f' ~ A f + c in the curve's top components: ``r2`` with the chosen derivative
    ``scheme``, ``r2_central`` with raw central differences, and phase-randomised ``surrogate_r2``
    (the chance level for a curve this smooth); ``eigenvalues`` of A as [re, im] pairs."""

    source: str
    first_position: int
    n_positions: int
    n_components: int
    variance_explained: float
    variance_ratio: list[float]
    scheme: str
    window: int | None
    r2: float
    r2_central: float
    r2_per_dim: list[float]
    periods: list[float]
    eigenvalues: list[list[float]]
    surrogate_r2: list[float]
    surrogate_r2_max: float | None


@dataclass(frozen=True)
class DerivativeHead:
    """One head's OV image of LN(x_i) against f'(i): mean cosine over positions (centred), with the
    positions shuffled, and the R^2 of reading f' linearly from the output in any basis."""

    head: str
    layer: int
    index: int
    mean_cos: float
    mean_abs_cos: float
    shuffled_cos: float
    readout_r2: float
    output_norm: float


@dataclass(frozen=True)
class HeadCosine:
    head: str
    mean_cos: float


@dataclass(frozen=True)
class DerivativeHeads:
    heads: list[DerivativeHead]  # strongest |mean_cos| first
    ideal_cos: float  # the fitted map A x + c itself
    layer0_actual: list[HeadCosine]  # layer 0 through the Runner, with its own attention
    trim: int


@dataclass(frozen=True)
class NeuronPair:
    neurons: list[int]
    cos_in: float
    cos_out: float
    frac_diff: float  # share of |w_in_a - w_in_b|^2 in the x_j - x_i subspace
    frac_diff_vs_chance: float
    frac_common_in_curve: float
    frac_common_vs_chance: float
    prescore_percentile: float  # of cos_in * -cos_out among random pairs
    score: float
    twisted: bool


@dataclass(frozen=True)
class NeuronPairs:
    layer: int
    d_mlp: int
    diff_rank: int
    chance_frac_diff: float
    chance_frac_common: float
    thresholds: dict[str, float]
    n_candidates_scanned: int
    n_twisted: int
    candidates: list[NeuronPair]
    null_prescore_p99: float
    null_cos_in_p99: float
    processing: list[str]


@dataclass(frozen=True)
class ModelPart:
    """The three measurements on one model; a part the checkpoint cannot support is None with the
    reason in ``*_skipped``."""

    model: str
    ode: CurveOde
    heads: list[DerivativeHead] = field(default_factory=list)
    ideal_cos: float | None = None
    layer0_actual: list[HeadCosine] = field(default_factory=list)
    trim: int | None = None
    heads_skipped: str | None = None
    neurons: NeuronPairs | None = None
    neurons_skipped: str | None = None


@dataclass
class CurveFit:
    """A model's positional curve, its principal components and derivative."""

    source: str
    positions: np.ndarray  # row indices used
    X: np.ndarray  # [P, d_model] the rows
    fit: PCAFit
    D: np.ndarray  # [P, d_model] derivative along positions, inside the top components
    ode: OdeFit
    scheme: str
    window: int


def _window(P: int, window: int) -> int:
    w = min(int(window), (P - 1) // 3)
    w -= 1 - w % 2
    return max(w, 5)


def _deriv(Z: np.ndarray, scheme: str, window: int) -> np.ndarray:
    if scheme == "savgol":
        from scipy.signal import savgol_filter

        return savgol_filter(Z, window, 3, deriv=1, axis=0)
    return np.gradient(Z, axis=0)


def _curve_rows(weights: Weights, source: str, first_position: int) -> np.ndarray:
    if source not in CURVE_SOURCES:
        raise InvalidInputError(f"unknown curve source '{source}'; use one of {', '.join(CURVE_SOURCES)}")
    name = "pos_embed.W_pos" if source == "W_pos" else "embed.W_E"
    require(weights, [name], "the twisted-pair analysis of the model's curve")
    X = weights.get(name).double().numpy()
    if not 0 <= first_position < len(X) - 8:
        raise InvalidInputError(f"first_position={first_position} leaves fewer than 8 rows of {source} ({len(X)} rows)")
    return X[first_position:]


def fit_curve(weights: Weights, *, source: str = "W_pos", first_position: int = 1, n_components: int = 6,
              scheme: str = "savgol", window: int = 51, n_surrogates: int = 5, seed: int = 0) -> tuple[CurveFit, CurveOde]:
    """PCA + linear-ODE fit of the model's curve, with phase-randomised surrogates as a control."""
    one_of("scheme", scheme, SCHEMES)
    X = _curve_rows(weights, source, first_position)
    P = len(X)
    k = min(int(n_components), X.shape[1], P - 1)
    fit = pca(X, k)
    win = _window(P, window)
    ode = fit_linear_ode(fit.projected, 1.0, scheme=scheme, window=win)
    central = ode if scheme == "central" else fit_linear_ode(fit.projected, 1.0, scheme="central")
    D = _deriv(fit.projected, scheme, win) @ fit.components
    rng = np.random.default_rng(seed)
    sur = []
    Fz = np.fft.rfft(fit.projected, axis=0)
    for _ in range(int(n_surrogates)):
        phase = 2 * np.pi * rng.random(Fz.shape)  # independent per component: the coupling goes
        phase[0] = np.angle(Fz[0])  # keep the mean
        Z = np.fft.irfft(np.abs(Fz) * np.exp(1j * phase), n=P, axis=0)
        sur.append(fit_linear_ode(Z, 1.0, scheme=scheme, window=win).r2)
    summary = CurveOde(
        source=source, first_position=first_position, n_positions=P, n_components=k,
        variance_explained=float(fit.cumulative[-1]), variance_ratio=fit.variance_ratio.tolist(),
        scheme=scheme, window=win if scheme == "savgol" else None,
        r2=ode.r2, r2_central=central.r2, r2_per_dim=list(ode.r2_per_dim),
        periods=list(ode.periods), eigenvalues=[list(e) for e in ode.eigenvalues],
        surrogate_r2=sur, surrogate_r2_max=float(max(sur)) if sur else None,
    )
    return CurveFit(source, np.arange(first_position, first_position + P), X, fit, D, ode, scheme, win), summary


def _cos_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1)
    return (A * B).sum(1) / np.maximum(na * nb, 1e-300)


def _ln(weights: Weights, layer: int, X: torch.Tensor) -> torch.Tensor:
    cfg = weights.cfg
    if cfg.normalization != "LN":
        return X
    w, b = weights.get(f"blocks.{layer}.ln1.w").double(), weights.get(f"blocks.{layer}.ln1.b").double()
    return F.layer_norm(X, (cfg.d_model,), w, b, cfg.eps)


def head_values(weights: Weights, layer: int, X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Each head's value vectors of LN(x) for the rows x of ``X`` ([heads, P, d_head], float64) and
    its W_O ([heads, d_head, d_model]): the head's OV image of x is ``z @ W_O``, which the callers
    never build ([heads, P, d_model] is d_model / d_head times larger than what they read)."""
    p = f"blocks.{layer}.attn."
    require(weights, [p + n for n in ("W_V", "b_V", "W_O")], "the heads' OV circuits")
    xn = _ln(weights, layer, torch.as_tensor(X))
    W_V, b_V, W_O = (weights.get(p + n).double() for n in ("W_V", "b_V", "W_O"))
    return torch.einsum("pd,hdk->hpk", xn, W_V) + b_V[:, None], W_O


def _linear_r2(out: np.ndarray, target: np.ndarray, k: int) -> float:
    """R^2 of the best linear read-out of ``target`` from the top-k principal directions of ``out``
    (pass the head's value vectors: W_O maps them linearly, so the read-out is the same and cheaper)."""
    oc = out - out.mean(0)
    V = np.linalg.eigh(oc.T @ oc)[1][:, ::-1]  # the top principal directions; the read-out only needs their span
    Z = np.c_[oc @ V[:, :k], np.ones(len(oc))]
    coef, *_ = np.linalg.lstsq(Z, target, rcond=None)
    res = target - Z @ coef
    tot = ((target - target.mean(0)) ** 2).sum()
    return float(1 - (res**2).sum() / tot) if tot > 0 else float("nan")


def derivative_heads(weights: Weights, cf: CurveFit, *, layers: list[int] | None = None, trim: int = 25,
                     runner_layer0: bool = True, device: str = "cpu", dtype: str = "float32",
                     seed: int = 0) -> DerivativeHeads:
    """How close each head's OV image of x_i comes to the derivative direction f'(i)."""
    cfg = weights.cfg
    layers = list(range(cfg.n_layers)) if layers is None else [int(l) for l in layers]
    check_layers(weights, layers)  # only validates: the heads keep the order given
    P = len(cf.X)
    sl = slice(trim, P - trim) if P > 4 * trim else slice(None)
    Dc = cf.D - cf.D.mean(0)
    perm = np.random.default_rng(seed).permutation(P)
    k = cf.fit.components.shape[0]
    Dt = torch.as_tensor(Dc)
    d_norm = Dt.norm(dim=1)
    rows = []
    for l in layers:
        z, W_O = head_values(weights, l, cf.X)
        # With zc the centred values, the centred output is zc W_O: its dot with f' is zc . (f' W_O^T)
        # and its squared norm zc (W_O W_O^T) zc^T, all in the head's d_head dimensions.
        zc = z - z.mean(1, keepdim=True)
        o_norm = ((zc @ (W_O @ W_O.mT)) * zc).sum(-1).clamp_min(0).sqrt()  # [H, P]
        proj = torch.einsum("pd,hkd->hpk", Dt, W_O)
        cos = ((zc * proj).sum(-1) / (o_norm * d_norm).clamp_min(1e-300))[:, sl].numpy()
        shuffled = ((zc * proj[:, perm]).sum(-1) / (o_norm * d_norm[perm]).clamp_min(1e-300))[:, sl].numpy()
        for h in range(cfg.n_heads):
            rows.append(DerivativeHead(
                head=f"{l}.{h}", layer=l, index=h, mean_cos=float(cos[h].mean()),
                mean_abs_cos=float(np.abs(cos[h]).mean()), shuffled_cos=float(shuffled[h].mean()),
                readout_r2=_linear_r2(z[h].numpy()[sl], cf.D[sl] @ cf.fit.components.T, k),
                output_norm=float(o_norm[h].mean()),
            ))
    rows.sort(key=lambda r: -abs(r.mean_cos))
    A, c = np.asarray(cf.ode.A), np.asarray(cf.ode.c)
    Y = (cf.fit.projected @ A.T + c) @ cf.fit.components
    ideal = float(_cos_rows((Y - Y.mean(0))[sl], Dc[sl]).mean())
    actual = []
    if runner_layer0 and cf.source == "W_pos" and 0 in layers:
        from ...models.runner import Runner

        n_pos = int(cf.positions[-1]) + 1
        acts = Runner(weights, device, dtype).run(embed=torch.zeros(1, n_pos, cfg.d_model),
                                                  hooks=["blocks.0.attn.hook_result"])
        res = acts["blocks.0.attn.hook_result"][0, cf.positions].double().numpy()  # [P, H, d]
        for h in range(cfg.n_heads):
            oc = res[:, h] - res[:, h].mean(0)
            actual.append(HeadCosine(head=f"0.{h}", mean_cos=float(_cos_rows(oc[sl], Dc[sl]).mean())))
        actual.sort(key=lambda r: -abs(r.mean_cos))
    return DerivativeHeads(heads=rows, ideal_cos=ideal, layer0_actual=actual, trim=trim)


def neuron_pairs(weights: Weights, cf: CurveFit, *, layer: int = 0, diff_rank: int = 8, n_candidates: int = 300,
                 top: int = 10, n_null: int = 20000, seed: int = 0, min_cos_in: float = 0.5,
                 max_cos_out: float = -0.5, min_diff_ratio: float = 5.0) -> NeuronPairs:
    """Search layer ``layer``'s MLP for twisted pairs; raises MissingTensorError without MLP weights.

    A pair (a, b) is scored by cos(w_in_a, w_in_b) * -cos(w_out_a, w_out_b) * frac_diff, where
    frac_diff is the share of |w_in_a - w_in_b|^2 inside the x_j - x_i subspace (rank
    ``diff_rank``; chance level diff_rank / d_model). A pair "looks twisted" when all three
    pass the thresholds (cos_in >= 0.5, cos_out <= -0.5, frac_diff >= 5x chance or >= 0.9). The
    subspace is as wide as 99% of the moves' energy needs, at most ``diff_rank``.
    """
    from ...models.processing import fold_layer_norm

    cfg = weights.cfg
    check_layers(weights, [layer])
    p = f"blocks.{layer}.mlp."
    require(weights, [p + "W_in", p + "W_out"], "the twisted-pair neuron search")
    w = fold_layer_norm(weights) if cfg.normalization == "LN" else weights
    W_in = w.get(p + "W_in").double().T  # [m, d]
    W_out = w.get(p + "W_out").double()  # [m, d]
    # The x_j - x_i subspace: how each earlier head's output moves as its attended position moves.
    moves = []
    for l in range(layer + 1):
        z, W_O = head_values(weights, l, cf.X)
        # the derivative along positions is linear, so it is taken in d_head dimensions, then mapped out
        moves += [_deriv(zh.numpy(), cf.scheme, cf.window) @ W.numpy() for zh, W in zip(z, W_O)]
    Md = np.concatenate(moves)
    r = min(int(diff_rank), Md.shape[1], Md.shape[0])
    mp = pca(Md, r, center=False)
    r = min(r, mp.components_for(0.99))  # no wider than the moves need (a hand-built model's span exactly)
    Ud = torch.as_tensor(mp.components[:r])  # [r, d]
    Uc = torch.as_tensor(cf.fit.components)
    chance_d, chance_c = r / cfg.d_model, Uc.shape[0] / cfg.d_model
    frac_min = min(0.9, min_diff_ratio * chance_d)  # 5x chance, or 90% where 5x chance is out of reach

    def unit(A):
        return A / A.norm(dim=1, keepdim=True).clamp_min(1e-300)

    cin = unit(W_in) @ unit(W_in).T
    cout = unit(W_out) @ unit(W_out).T
    pre = (cin.clamp_min(0) * (-cout).clamp_min(0)).triu(1)  # same inputs, opposite outputs
    m = cin.shape[0]
    n_c = min(int(n_candidates), m * (m - 1) // 2)
    flat = torch.topk(pre.flatten(), n_c).indices
    A_, B_ = flat // m, flat % m
    diff, comm = W_in[A_] - W_in[B_], W_in[A_] + W_in[B_]
    frac_d = ((diff @ Ud.T) ** 2).sum(1) / (diff**2).sum(1).clamp_min(1e-300)
    frac_c = ((comm @ Uc.T) ** 2).sum(1) / (comm**2).sum(1).clamp_min(1e-300)
    score = pre[A_, B_] * frac_d
    twisted = (cin[A_, B_] >= min_cos_in) & (cout[A_, B_] <= max_cos_out) & (frac_d >= frac_min)
    order = torch.argsort(-score)
    rng = np.random.default_rng(seed)
    na, nb = rng.integers(0, m, n_null), rng.integers(0, m, n_null)
    keep = na != nb
    null_pre = (cin[na[keep], nb[keep]].clamp_min(0) * (-cout[na[keep], nb[keep]]).clamp_min(0)).numpy()
    cands = []
    for q in order[:top].tolist():
        a, b = int(A_[q]), int(B_[q])
        ci, co, fd = float(cin[a, b]), float(cout[a, b]), float(frac_d[q])
        cands.append(NeuronPair(
            neurons=[a, b], cos_in=ci, cos_out=co, frac_diff=fd, frac_diff_vs_chance=fd / chance_d,
            frac_common_in_curve=float(frac_c[q]), frac_common_vs_chance=float(frac_c[q]) / chance_c,
            prescore_percentile=float((null_pre < max(ci, 0) * max(-co, 0)).mean() * 100), score=float(score[q]),
            twisted=bool(twisted[q]),
        ))
    return NeuronPairs(
        layer=layer, d_mlp=m, diff_rank=r, chance_frac_diff=chance_d, chance_frac_common=chance_c,
        thresholds={"cos_in": min_cos_in, "cos_out": max_cos_out, "frac_diff": frac_min},
        n_candidates_scanned=n_c, n_twisted=int(twisted.sum()), candidates=cands,
        null_prescore_p99=float(np.percentile(null_pre, 99)),
        null_cos_in_p99=float(np.percentile(cin[na[keep], nb[keep]].numpy(), 99)), processing=list(w.processing),
    )


def gpt2_part(weights: Weights, *, source: str = "W_pos", first_position: int = 1, n_components: int = 6,
              scheme: str = "savgol", window: int = 51, layers: list[int] | None = None, neuron_layer: int = 0,
              diff_rank: int = 8, top: int = 10, n_surrogates: int = 5, device: str = "cpu", dtype: str = "float32",
              seed: int = 0) -> ModelPart:
    """All three measurements on one model; parts the checkpoint cannot support say why.

    >>> from poslens.models import load_weights
    >>> g = gpt2_part(load_weights("tiny"), n_components=4)          # doctest: +SKIP
    >>> g.ode.r2 > g.ode.surrogate_r2_max                              # doctest: +SKIP
    """
    cf, ode = fit_curve(weights, source=source, first_position=first_position, n_components=n_components,
                        scheme=scheme, window=window, n_surrogates=n_surrogates, seed=seed)
    out: dict = {"model": weights.label, "ode": ode}
    try:
        dh = derivative_heads(weights, cf, layers=layers, device=device, dtype=dtype, seed=seed)
        out.update(heads=dh.heads, ideal_cos=dh.ideal_cos, layer0_actual=dh.layer0_actual, trim=dh.trim)
    except MissingTensorError as exc:
        out["heads_skipped"] = str(exc)
    try:
        out["neurons"] = neuron_pairs(weights, cf, layer=neuron_layer, diff_rank=diff_rank, top=top, seed=seed)
    except MissingTensorError as exc:
        out["neurons_skipped"] = str(exc)
    return ModelPart(**out)
