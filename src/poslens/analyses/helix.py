"""The geometry of learned positional embeddings: PCA of ``W_pos``, its helix, and f' = A f + c.

Seeds: 001 ("GPT-2's positional embedding matrix is a helix"), the positional slides of 004
("Dissecting the Frog") and the GPT-2 claim of 000 (a helix lets f' = W f + c, so an
attention head can compute the tangent of the position curve linearly).

This module holds the single-model analysis (:func:`helix`, :class:`HelixResult`), the
seeds' published figures it is checked against, and its summary and figures. Its pieces
live beside it and are re-exported here, so ``from poslens.analyses.helix import pca``
keeps working: :mod:`~poslens.analyses.helix_pca` (PCA, linear ODE fits),
:mod:`~poslens.analyses.helix_fit` (sinusoid and helix fits, dominant periods),
:mod:`~poslens.analyses.helix_structure` (cosines, outliers, fraying, norms, tokens) and
:mod:`~poslens.analyses.helix_family` (several models, training sweeps).

>>> r = helix("../shared/data/gpt2-small-partial")                  # doctest: +SKIP
>>> r.cumulative[2], r.components_for_90, r.helix["period"] > 0      # doctest: +SKIP
(0.9106, 3, True)
>>> from poslens.analyses.helix import pca   # re-exported from helix_pca
>>> pca(np.eye(4), 2).variance_ratio.round(3).tolist()
[0.333, 0.333]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, MissingTensorError
from ..results import Result
from .helix_family import (HelixFamilyResult, HelixSweepResult, family_summary, helix_models, helix_sweep,
                           summary_row, sweep_specs)
from .helix_fit import dominant_periods, fit_helix, fit_sinusoid, short_period_share
from .helix_pca import ODE_SCHEMES, PCAFit, components_for, fit_linear_ode, pca, variance_spectrum
from .helix_structure import cosine_structure, fray, norm_stats, outlier_positions, token_position

__all__ = [
    # this module
    "HelixResult", "NOT_LEARNED", "SLIDES_LEARNED_COMPONENTS_90", "SLIDES_POS_NORMS", "SLIDES_SINUSOIDAL_COMPONENTS_90",
    "SLIDES_TOKEN_NORMS", "check_options", "default_options", "figures", "geometry", "helix", "helix_with_fit",
    "ode_fits", "pca_summary", "summarize",
    # re-exported from helix_pca, helix_fit, helix_structure, helix_family
    "ODE_SCHEMES", "PCAFit", "components_for", "fit_linear_ode", "pca", "variance_spectrum",
    "dominant_periods", "fit_helix", "fit_sinusoid", "short_period_share",
    "cosine_structure", "fray", "norm_stats", "outlier_positions", "token_position",
    "HelixFamilyResult", "HelixSweepResult", "family_summary", "helix_models", "helix_sweep", "summary_row",
    "sweep_specs",
]


# ----------------------------------------------------------------------------- one matrix


def _rounded(x, decimals: int = 6) -> list:
    return np.round(np.asarray(x, dtype=np.float64), decimals).tolist()


def pca_summary(fit: PCAFit, positions: np.ndarray, n_coords: int = 3) -> dict:
    """The JSON view of a PCA: variance shares, cumulative, components for 50/90/95/99%, top coordinates."""
    return {
        "range": [int(positions[0]), int(positions[-1]) + 1],
        "n_positions": int(len(positions)),
        "variance_explained": fit.variance_ratio.tolist(),
        "cumulative": fit.cumulative.tolist(),
        "components_for_90": fit.components_for(0.9),
        "components_for": {str(q): fit.components_for(q / 100) for q in (50, 90, 95)},
        "coords": _rounded(fit.projected[:, :n_coords]),
    }


def _ode_window(n: int, want: int) -> int:
    w = min(int(want), max(5, n // 3))
    return w if w % 2 else w - 1


def ode_fits(coords: np.ndarray, t: np.ndarray, k: int, n_components: int, window: int = 51,
             skip: tuple[int, int] = (0, 0)) -> dict:
    """Linear-ODE fits of a curve's top components: ``ode`` (central differences on the top
    ``k``), ``ode_smoothed`` (Savitzky-Golay, ``window`` shrunk for short curves) and
    ``ode_by_k`` (both R² for 2, 3, 4, 6 and 10 components). ``skip`` leaves out rows at
    the start and end; each fit records the positions it used in ``range``."""
    lo, hi = skip[0], len(t) - skip[1]
    C, t = np.asarray(coords)[lo:hi], np.asarray(t)[lo:hi]
    rng = [int(t[0]), int(t[-1]) + 1]
    win = _ode_window(len(t), window)

    def one(kk: int, scheme: str) -> dict | None:
        if scheme == "savgol" and len(t) < win + kk + 1:
            return None
        return {**fit_linear_ode(C[:, :kk], scheme=scheme, window=win), "range": rng}

    by_k = []
    for kk in (2, 3, 4, 6, 10):
        if kk > min(n_components, C.shape[1]) or len(t) < 2 * kk + 4:
            continue
        c, sm = one(kk, "central"), one(kk, "savgol")
        by_k.append({"k": kk, "r2_central": c["r2"], "r2_savgol": sm["r2"] if sm else None,
                     "periods_central": c["periods"][:2], "periods_savgol": sm["periods"][:2] if sm else None})
    return {"ode": one(k, "central"), "ode_smoothed": one(k, "savgol"), "ode_by_k": by_k}


def geometry(
    W: np.ndarray,
    positions: np.ndarray,
    *,
    center: bool = True,
    n_components: int = 10,
    fit_components: int = 3,
    ode_window: int = 51,
    n_traces: int = 6,
    cosine_size: int = 64,
    ode_skip: tuple[int, int] = (0, 0),
    gram: np.ndarray | None = None,
) -> tuple[dict, PCAFit]:
    """Every single-matrix metric of the positional rows ``W [n, d]`` (one per entry of ``positions``).

    PCA (variance shares, components for 90%, top-3 coordinates), the helix fit and the
    linear-ODE fits on the top ``fit_components`` components (leaving out ``ode_skip``
    rows at the start and end: outlying end positions make one huge finite difference),
    dominant periods, the per-dimension traces of the ``n_traces`` highest-variance
    dimensions, and the cosine structure. ``gram`` (W @ W.T) is computed once here if not
    given and shared by the PCA and the cosines. Returns (the JSON-ready dict, the PCA fit).
    """
    W = np.asarray(W, dtype=np.float64)
    t = np.asarray(positions, dtype=np.float64)
    if gram is None:
        gram = W @ W.T
    fit = pca(W, n_components, center, gram=gram)
    Y = fit.projected[:, :fit_components]
    out = pca_summary(fit, np.asarray(positions), n_coords=min(3, n_components))
    out["helix"] = fit_helix(Y, t) if fit_components >= 2 else None
    out["periods"] = dominant_periods(fit.projected[:, :min(n_components, 6)], t)
    out["short_period"] = short_period_share(W)
    out.update(ode_fits(fit.projected, t, fit_components, n_components, ode_window, ode_skip))
    var = W.var(0)
    dims = np.argsort(-var)[:n_traces]
    out["traces"] = {
        "dims": dims.tolist(),
        "std": np.sqrt(var[dims]).tolist(),
        "values": _rounded(W[:, dims].T, 5),
        "periods": [fit_sinusoid(W[:, j], t)["period"] for j in dims] if len(t) >= 6 else [],
    }
    out["cosine"] = cosine_structure(W, positions, cosine_size, gram=gram)
    return out, fit


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class HelixResult(Result):
    """The geometry of one model's ``W_pos``.

    ``positions`` are the positions the main PCA ran on (``[start, stop)``; position 0 left
    out by default, seed 001's reading); ``variance_explained`` the first
    ``n_components`` variance shares (``centred`` says whether the mean row was removed);
    ``components_for_90`` how many components reach 90%; ``coords`` the positions' top-3
    coordinates; ``truncations`` the same PCA on positions >= ``truncate_at`` ("late") and
    below it ("early"); ``helix``, ``ode`` (central differences), ``ode_smoothed``
    (Savitzky-Golay) and ``ode_by_k`` the fits of the top components; ``periods``,
    ``short_period`` (the share of variance at periods of at most 4 positions),
    ``traces``, ``cosine``, ``outliers``, ``fray``; ``norms`` of W_pos (and W_E);
    ``token_position`` the W_E / W_pos comparison; ``sinusoidal`` the same metrics for the
    sinusoidal encoding of the same shape; ``checks`` the seeds' published figures against ours.
    """

    kind = "helix"
    n_ctx: int = 0
    d_model: int = 0
    positions: list = field(default_factory=list)
    centred: bool = True
    variance_explained: list = field(default_factory=list)
    cumulative: list = field(default_factory=list)
    components_for_90: int = 0
    components_for: dict = field(default_factory=dict)
    coords: list = field(default_factory=list)
    truncations: dict = field(default_factory=dict)
    helix: dict | None = None
    ode: dict | None = None
    ode_smoothed: dict | None = None
    ode_by_k: list = field(default_factory=list)
    periods: dict = field(default_factory=dict)
    short_period: dict = field(default_factory=dict)
    traces: dict = field(default_factory=dict)
    cosine: dict = field(default_factory=dict)
    outliers: dict = field(default_factory=dict)
    fray: dict | None = None
    norms: dict = field(default_factory=dict)
    token_position: dict | None = None
    sinusoidal: dict | None = None
    checks: list = field(default_factory=list)
    notes: list = field(default_factory=list)


# ----------------------------------------------------------------------------- the analysis

NOT_LEARNED = ("the helix analysis of learned positional embeddings; models with rotary or fixed sinusoidal "
               "positions have no learned W_pos to analyse")


def _as_weights(weights):
    from ..models.weights import Weights, load_weights

    if isinstance(weights, Weights):
        return weights
    if isinstance(weights, (str, Path)):
        return load_weights(str(weights))
    raise InvalidInputError(f"expected Weights or a model name/directory, got {type(weights).__name__}")


def _check_learned(W: np.ndarray, label: str, allow_fixed: bool) -> None:
    """Refuse a W_pos that carries no learned position: constant rows, or the fixed sinusoidal table."""
    from .sinusoidal import sinusoidal_encoding

    if np.ptp(W, axis=0).max() == 0:
        raise InvalidInputError(
            f"W_pos of {label} is the same vector at every position (all zeros?): the model has no learned "
            "positional embedding to analyse"
        )
    n, d = W.shape
    if allow_fixed or d % 2:
        return
    scale = np.abs(W).max()
    head = min(n, 16)  # a learned W_pos differs from the table within its first rows; only a match is checked in full
    for layout in ("interleaved", "halves"):
        if np.abs(W[:head] - sinusoidal_encoding(head, d, layout=layout)).max() > 1e-4 * max(scale, 1.0):
            continue
        if np.abs(W - sinusoidal_encoding(n, d, layout=layout)).max() <= 1e-4 * max(scale, 1.0):
            raise InvalidInputError(
                f"W_pos of {label} is the fixed sinusoidal encoding ({layout} layout), not a learned one; "
                "the helix analysis compares learned embeddings against it "
                "(pass allow_fixed=True / --allow-fixed to analyse it anyway)"
            )


def _end_skip(pos: np.ndarray, flagged: set) -> tuple[int, int]:
    """How many flagged positions sit at each end of ``pos`` (kept to leave at least 8 rows)."""
    a = 0
    while a < len(pos) and int(pos[a]) in flagged:
        a += 1
    b = 0
    while b < len(pos) - a and int(pos[len(pos) - 1 - b]) in flagged:
        b += 1
    return (a, b) if len(pos) - a - b >= 8 else (0, 0)


def _positions(n_ctx: int, start: int | None, stop: int | None, keep_first: bool) -> np.ndarray:
    start = (0 if keep_first else 1) if start is None else int(start)
    stop = n_ctx if stop is None else int(stop)
    if start < 0 or stop > n_ctx:
        raise InvalidInputError(
            f"positions {start}:{stop} are outside the model's context: positions run 0..{n_ctx - 1} (n_ctx {n_ctx})"
        )
    if start >= stop:
        raise InvalidInputError(f"the position range {start}:{stop} is empty; give START < STOP (e.g. 1:{n_ctx})")
    return np.arange(start, stop)


def helix(
    weights,
    *,
    start: int | None = None,
    stop: int | None = None,
    keep_first: bool = False,
    center: bool = True,
    n_components: int = 10,
    fit_components: int = 3,
    truncations: bool = True,
    truncate_at: int = 100,
    ode_window: int = 51,
    n_traces: int = 6,
    cosine_size: int = 64,
    outlier_threshold: float = 10.0,
    sinusoidal: bool = True,
    sinusoidal_base: float = 10000.0,
    tokens: bool | None = None,
    token_sample: int = 1024,
    allow_fixed: bool = False,
    seed: int = 0,
) -> HelixResult:
    """The geometry of a model's learned positional embedding ``W_pos``: PCA, helix, ODE, norms, comparisons.

    Reads ``wpe.weight`` and, for the token/position comparisons, ``wte.weight`` (only when
    present, or when ``tokens=True``; ``tokens=False`` never reads it). The main PCA runs
    on positions ``[start, stop)`` (default ``[1, n_ctx)``: position 0, the BOS slot, is
    left out as in seed 001; ``keep_first=True`` starts at 0), centred over those
    positions unless ``center=False``. ``truncations`` adds seed 001's two cuts (positions
    >= ``truncate_at`` and below it) in the same call. The helix and linear-ODE fits use
    the top ``fit_components`` components; ``ode_window`` is the Savitzky-Golay window of
    the smoothed ODE fit. ``sinusoidal`` computes the same metrics for the sinusoidal
    encoding of the same shape (``sinusoidal_base``).

    >>> r = helix("../shared/data/gpt2-small-partial")                  # doctest: +SKIP
    >>> r.cumulative[2], r.components_for_90, r.norms["W_pos"]["mean"]   # doctest: +SKIP
    (0.9106, 3, 3.3901)
    """
    options = dict(locals())
    del options["weights"]
    return _helix(weights, **options)[0]


def default_options() -> dict:
    """Every option of :func:`helix` with its default value.

    >>> default_options()["truncate_at"]
    100
    """
    import inspect

    return {k: p.default for k, p in inspect.signature(helix).parameters.items() if k != "weights"}


def check_options(options: dict) -> None:
    """Raise :class:`~poslens.errors.InvalidInputError` for the first key of ``options`` that :func:`helix` does not take.

    >>> check_options({"n_components": 5})
    >>> check_options({"n_component": 5})   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    poslens.errors.InvalidInputError: helix has no option 'n_component'...
    """
    from ..errors import suggest

    known = default_options()
    for k in options:
        if k not in known:
            raise InvalidInputError(f"helix has no option '{k}'{suggest(k, known)}; its options are: {', '.join(known)}")


def helix_with_fit(weights, **options) -> tuple[HelixResult, PCAFit]:
    """:func:`helix` (same options and defaults), also returning the main PCA fit; sweeps compare its components.

    >>> r, fit = helix_with_fit("../shared/data/gpt2-small-partial", tokens=False)   # doctest: +SKIP
    >>> fit.components.shape                                                     # doctest: +SKIP
    (10, 768)
    """
    check_options(options)
    return _helix(weights, **{**default_options(), **options})


def _helix(
    weights,
    *,
    start,
    stop,
    keep_first,
    center,
    n_components,
    fit_components,
    truncations,
    truncate_at,
    ode_window,
    n_traces,
    cosine_size,
    outlier_threshold,
    sinusoidal,
    sinusoidal_base,
    tokens,
    token_sample,
    allow_fixed,
    seed,
) -> tuple[HelixResult, PCAFit]:
    """:func:`helix` with every option given, also returning the main PCA fit."""
    w = _as_weights(weights)
    label = w.label
    if not w.has("pos_embed.W_pos"):
        raise MissingTensorError("wpe.weight", NOT_LEARNED, label)
    n_components, fit_components = int(n_components), int(fit_components)
    if n_components < 1:
        raise InvalidInputError(f"n_components must be at least 1 (got {n_components})")
    if not 2 <= fit_components <= n_components:
        raise InvalidInputError(
            f"fit_components must be between 2 and n_components ({n_components}); got {fit_components}"
        )
    if truncate_at < 1:
        raise InvalidInputError(f"truncate_at must be a positive position (got {truncate_at})")
    if tokens and not w.has("embed.W_E"):
        raise MissingTensorError("wte.weight", "the token/position comparisons (pass tokens=False to skip them)", label)
    W_full = w.W_pos.detach().double().cpu().numpy()
    n_ctx, d_model = W_full.shape
    _check_learned(W_full, label, allow_fixed)
    pos = _positions(n_ctx, start, stop, keep_first)
    if len(pos) < n_components:
        raise InvalidInputError(
            f"positions {pos[0]}:{pos[-1] + 1} are {len(pos)} rows, fewer than the {n_components} components asked for; "
            "widen the range or ask for fewer components"
        )
    if n_components > d_model:
        raise InvalidInputError(f"{n_components} components exceed d_model ({d_model}); ask for at most {d_model}")
    if len(pos) < 8:
        raise InvalidInputError(f"positions {pos[0]}:{pos[-1] + 1} are {len(pos)} rows; the fits need at least 8")
    use_tokens = w.has("embed.W_E") if tokens is None else bool(tokens)
    options = dict(
        start=int(pos[0]), stop=int(pos[-1]) + 1, keep_first=bool(keep_first), center=bool(center),
        centring="mean row over the analysed positions subtracted" if center else "none (raw rows)",
        n_components=n_components, fit_components=fit_components, truncations=bool(truncations),
        truncate_at=int(truncate_at),
        ode_scheme="central differences (x[t+1]-x[t-1])/2; smoothed: Savitzky-Golay cubic derivative; "
                   "isolated end positions left out",
        ode_window=int(ode_window), n_traces=int(n_traces), cosine_size=int(cosine_size),
        outlier_threshold=float(outlier_threshold), sinusoidal=bool(sinusoidal), sinusoidal_base=float(sinusoidal_base),
        tokens=use_tokens, token_sample=int(token_sample), allow_fixed=bool(allow_fixed), seed=int(seed),
    )
    notes: list[str] = []
    if pos[0] == 1:
        notes.append("position 0 (the BOS slot) is left out of the PCA, as in seed 001; keep_first=True keeps it")
    G_full = W_full @ W_full.T  # every Gram matrix below (outliers, cosines, PCAs) is a block of this one
    outl = outlier_positions(W_full, outlier_threshold, gram=G_full)
    flagged = {o["position"] for o in outl["flagged"]}
    skip = _end_skip(pos, flagged)
    if any(skip):
        left = sorted(set(pos[:skip[0]].tolist()) | set(pos[len(pos) - skip[1]:].tolist()))
        notes.append(f"isolated end positions {left} are left out of the ODE fits (a finite difference across them "
                     "is one jump that would swamp the fit)")
    main, fit = geometry(W_full[pos], pos, center=center, n_components=n_components, fit_components=fit_components,
                         ode_window=ode_window, n_traces=n_traces, cosine_size=cosine_size, ode_skip=skip,
                         gram=G_full[np.ix_(pos, pos)])
    truncs: dict = {}
    late_fit = None
    if truncations:
        cut = int(truncate_at)
        first, end = int(pos[0]), int(pos[-1]) + 1
        for name, lo, hi in (("late", max(first, cut), end), ("early", first, min(cut, end))):
            p = np.arange(lo, hi)
            k = min(n_components, len(p))
            if len(p) < max(fit_components, 8):
                notes.append(
                    f"the {name} truncation (positions {lo}:{hi}) has {len(p)} positions, too few for a PCA; skipped"
                    if len(p) else f"the {name} truncation is empty: positions {first}:{end} "
                    f"{'do not reach' if name == 'late' else 'start after'} position {cut}; skipped")
                continue
            f = pca(W_full[p], k, center, gram=G_full[np.ix_(p, p)])
            odes = ode_fits(f.projected, p, min(fit_components, k), 0, ode_window, _end_skip(p, flagged))
            truncs[name] = {**pca_summary(f, p), "helix": fit_helix(f.projected[:, :fit_components], p.astype(float)),
                            "ode": odes["ode"], "ode_smoothed": odes["ode_smoothed"]}
            if name == "late":
                late_fit = f
    fr = fray(W_full, late_fit, min(3, late_fit.components.shape[0]), int(truncate_at)) if late_fit is not None else None
    norms = _norms(W_full, int(truncate_at))
    tp = None
    if use_tokens:
        e_norms, tp = token_position(w.W_E.detach().cpu(), W_full[pos], fit, k=min(3, n_components),
                                     sample=token_sample, seed=seed)
        norms["W_E_centred"] = e_norms.pop("centred")
        norms["W_E"] = e_norms
        norms["token_to_position_mean_ratio"] = norms["W_E"]["mean"] / norms["W_pos"]["mean"]
    else:
        notes.append("W_E not read: token/position comparisons skipped" + ("" if w.has("embed.W_E") else
                                                                          f" ({label} has no wte.weight)"))
    sin = None
    if sinusoidal:
        sin = _sinusoidal(n_ctx, d_model, pos, sinusoidal_base, center, n_components, fit_components, ode_window,
                          n_traces, cosine_size, notes)
    result_kw = dict(
        model=label, processing=tuple(w.processing), options=options, n_ctx=n_ctx, d_model=d_model,
        positions=pos.tolist(), centred=bool(center), variance_explained=main["variance_explained"],
        cumulative=main["cumulative"], components_for_90=main["components_for_90"],
        components_for=main["components_for"], coords=main["coords"], truncations=truncs, helix=main["helix"],
        ode=main["ode"], ode_smoothed=main["ode_smoothed"], ode_by_k=main["ode_by_k"], periods=main["periods"],
        short_period=main["short_period"],
        traces=main["traces"], cosine=main["cosine"], outliers=outl, fray=fr, norms=norms, token_position=tp,
        sinusoidal=sin, notes=notes,
    )
    result_kw["checks"] = _checks(result_kw, w, sinusoidal_base)
    return HelixResult(**result_kw), fit


def _norms(W: np.ndarray, cut: int) -> dict:
    """Row-norm statistics of W_pos over every position, as the slides compute them, plus the late mean."""
    centred = W - W.mean(0)
    above = W[cut + 1:] if cut + 1 < len(W) else W[:0]
    out = {
        "W_pos": norm_stats(W),
        "W_pos_centred": norm_stats(centred),
        "by_position": _rounded(np.linalg.norm(W, axis=1), 5),
        "centring": "W_pos_centred subtracts the mean row over all positions; "
                    "above.mean_centred_d_model subtracts each row's mean over d_model (what LayerNorm removes)",
    }
    if len(above):
        out["above"] = {
            "positions": f">{cut}",
            "mean": float(np.linalg.norm(above, axis=1).mean()),
            "mean_centred": float(np.linalg.norm(centred[cut + 1:], axis=1).mean()),
            "mean_centred_d_model": float(np.linalg.norm(above - above.mean(1, keepdims=True), axis=1).mean()),
        }
    return out


def _sinusoidal(n_ctx, d_model, pos, base, center, n_components, fit_components, ode_window, n_traces, cosine_size,
                notes) -> dict | None:
    from . import sinusoidal as S

    if d_model % 2:
        notes.append(f"sinusoidal comparison skipped: d_model {d_model} is odd")
        return None
    pe = S.sinusoidal_encoding(n_ctx, d_model, base)
    g, _ = geometry(pe[pos], pos, center=center, n_components=n_components, fit_components=fit_components,
                    ode_window=ode_window, n_traces=n_traces, cosine_size=cosine_size)
    g.pop("traces")
    return {"encoding": S.describe(n_ctx, d_model, base), **g, "norms": norm_stats(pe)}


# ----------------------------------------------------------------------------- published figures

# Seed 004's slides ("Dissecting the Frog"), GPT-2 small: row norms of W_pos and W_E.
SLIDES_POS_NORMS = {"mean": 3.3901, "std": 0.2620, "max": 9.8756, "min": 0.1179}
SLIDES_TOKEN_NORMS = {"mean": 3.9585, "std": 0.4337, "max": 6.3155, "min": 2.4537}
SLIDES_SINUSOIDAL_COMPONENTS_90 = 153
SLIDES_LEARNED_COMPONENTS_90 = 3


def _is_openai_gpt2_small(w) -> bool:
    """GPT-2 small's shape and not a Stanford CRFM run (those scale attention by 1/(layer+1))."""
    from ..models.registry import _BY_NAME

    cfg = w.cfg
    if (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.n_ctx) != (12, 12, 768, 1024):
        return False
    info = _BY_NAME.get(str(w.label).split("@")[0].lower())
    return not cfg.scale_attn_by_inverse_layer_idx and not (info is not None and info.family.startswith("stanford"))


def _check(what, published, ours, reproduced, note="") -> dict:
    return {"what": what, "published": published, "ours": ours, "reproduced": bool(reproduced), "note": note}


def _checks(r: dict, w, base: float) -> list[dict]:
    """Seeds 001 and 004's GPT-2 small figures against ours (only for a GPT-2-small-shaped OpenAI model).

    Each figure is recomputed under the seed's own reading (positions, centring), whatever
    options the caller chose, so the check means the same thing every time.
    """
    if not _is_openai_gpt2_small(w):
        return []
    from .sinusoidal import sinusoidal_encoding

    W = w.W_pos.detach().double().cpu().numpy()
    n = len(W)
    o = r["options"]
    default_main = o["start"] == 1 and o["stop"] == n and o["center"] and len(r["cumulative"]) >= 3

    def share3(lo: int) -> float:
        if default_main and lo == 1:
            return float(r["cumulative"][2])
        if default_main and lo == o["truncate_at"] and "late" in r["truncations"]:
            return float(r["truncations"]["late"]["cumulative"][2])
        return float(variance_spectrum(W[lo:])[:3].sum())

    out = []
    s1 = share3(1)
    out.append(_check(
        "share of W_pos variance in 3 principal components, positions 1-1023, centred (001)",
        "about 0.90-0.91 ('90%'; 'the 9% ... that isn't in one of those three dimensions')", round(s1, 4),
        0.895 <= s1 < 0.915))
    s100 = share3(100)
    out.append(_check(
        "dropping the first 100 positions raises the 3-component share substantially (001)",
        "substantially higher for the OpenAI models", f"{s1:.4f} -> {s100:.4f} (positions 100-1023)", s100 - s1 >= 0.02))
    flagged = {f["position"] for f in r["outliers"]["flagged"]}
    iso = r["outliers"]["isolation"]
    out.append(_check(
        "position 0 and the last position stand apart from the rest (001)", "positions 0 and 1023 are outliers",
        f"flagged {sorted(flagged)} (isolation of 0: {iso[0]:.1f}, of {n - 1}: {iso[-1]:.1f}; "
        f"threshold {o['outlier_threshold']:g})",
        {0, n - 1} <= flagged))
    k90 = components_for(variance_spectrum(W))
    out.append(_check("components retaining 90% of W_pos's variance, all 1024 positions, centred (004)",
                      SLIDES_LEARNED_COMPONENTS_90, k90, k90 == SLIDES_LEARNED_COMPONENTS_90))
    pe = sinusoidal_encoding(n, W.shape[1], base)
    s90 = components_for(variance_spectrum(pe))
    s90_raw = components_for(variance_spectrum(pe, center=False))
    s90_1000 = components_for(variance_spectrum(sinusoidal_encoding(n, W.shape[1], 1000.0)))
    out.append(_check(
        f"components retaining 90% of the sinusoidal encoding's variance (1024 x 768, base {base:g}, centred) (004)",
        SLIDES_SINUSOIDAL_COMPONENTS_90, s90, s90 == SLIDES_SINUSOIDAL_COMPONENTS_90,
        "" if s90 == SLIDES_SINUSOIDAL_COMPONENTS_90 else
        f"uncentred the same PCA needs {s90_raw}; the slides write the base as L without giving its value, and "
        f"L = 1000 gives {s90_1000}, so we think the slides used L = 1000 rather than the paper's 10000",
    ))
    st = r["norms"]["W_pos"]
    for key, pub in SLIDES_POS_NORMS.items():
        out.append(_check(f"W_pos row norms, {key} over all 1024 positions, raw weights (004)", pub, round(st[key], 4),
                          abs(st[key] - pub) <= 6e-5))
    if "W_E" in r["norms"]:
        et = r["norms"]["W_E"]
        for key, pub in SLIDES_TOKEN_NORMS.items():
            out.append(_check(f"W_E row norms, {key} over the vocabulary, raw weights (004)", pub, round(et[key], 4),
                              abs(et[key] - pub) <= 6e-5))
    if r["token_position"] is not None:
        tp = r["token_position"]
        out.append(_check(
            "token embeddings lie mostly outside W_pos's top-3 subspace (001 comments: 'concentrated away')",
            "concentrated away", f"{tp['subspace_share']:.4f} of W_E's variance inside (chance {tp['chance']:.4f})",
            tp["subspace_share"] < tp["chance"]))
    od, sm = r["ode"], r["ode_smoothed"]
    late = (r["truncations"].get("late") or {}).get("ode")
    if sm is not None:
        whole = fit_linear_ode(np.asarray(r["coords"]))["r2"]  # every position, the outlying ends included
        out.append(_check(
            "f'(t) = A f(t) + c on the top-3 components, up to approximation (000)", "holds approximately",
            f"R² {sm['r2']:.3f} with Savitzky-Golay derivatives (window {sm['window']}), {od['r2']:.3f} with central "
            f"differences, positions {od['range'][0]}-{od['range'][1] - 1}"
            + (f"; {late['r2']:.3f} (central) on positions {late['range'][0]}-{late['range'][1] - 1}" if late else ""),
            sm["r2"] >= 0.8,
            "the isolated end positions are left out: with them the central-difference R² on positions "
            f"{r['positions'][0]}-{r['positions'][-1]} is {whole:.3f}, the jump into the last position swamping the fit; "
            "the early, fraying positions lower it too",
        ))
    sn = r["sinusoidal"]
    if sn is not None:
        out.append(_check("sinusoidal row norm sqrt(d_model / 2) = sqrt(384) (004)", 19.6,
                          round(sn["norms"]["mean"], 4), abs(sn["norms"]["mean"] - np.sqrt(384)) < 1e-6))
    return out


# ----------------------------------------------------------------------------- summary and figures


def summarize(result) -> list[str]:
    """A few lines saying what the numbers mean (for the CLI and the report page)."""
    if isinstance(result, (HelixFamilyResult, HelixSweepResult)):
        return family_summary(result)
    r = result
    p0, p1 = r.positions[0], r.positions[-1]
    k3 = min(3, len(r.cumulative))
    lines = [
        f"PCA of W_pos, positions {p0}-{p1} ({'centred' if r.centred else 'raw'}): top-{k3} components hold "
        f"{r.cumulative[k3 - 1]:.1%} of the variance ({', '.join(f'{v:.3f}' for v in r.variance_explained[:3])}); "
        f"{r.components_for_90} components reach 90%",
    ]
    for name, label in (("late", "from position {lo}"), ("early", "positions {lo}-{hi}")):
        t = r.truncations.get(name)
        if t:
            lo, hi = t["range"]
            kk = min(3, len(t["cumulative"]))
            lines.append(f"  {label.format(lo=lo, hi=hi - 1)}: {t['cumulative'][kk - 1]:.1%} in {kk} components")
    if r.helix:
        h = r.helix
        lines.append(f"helix fit on the top {len(h['cos'])} components: period {h['period']:.1f} positions "
                     f"({h['turns']:.2f} turns), radius {h['radius']:.3g}, pitch {h['pitch']:.3g}, R² {h['r2']:.3f}"
                     + ("; less than one turn, so the curve is an arc and its period an extrapolation"
                        if h["turns"] < 1 else ""))
    if r.ode:
        sm = r.ode_smoothed
        lines.append(f"f'(t) ≈ A f(t) + c on the top {len(r.ode['A'])} components: "
                     f"R² {r.ode['r2']:.3f} (central differences)"
                     + (f", {sm['r2']:.3f} (Savitzky-Golay, window {sm['window']})" if sm else "")
                     + (f"; implied period {r.ode['periods'][0]:.1f}" if r.ode["periods"] else ""))
    c = r.cosine
    lines.append(f"cosine between rows: adjacent {c['adjacent_mean']:.3f}; by offset dips to {c['min_value']:.2f} at "
                 f"{c['min_offset']} and rises again at {c['period']}" if c.get("period") is not None else
                 f"cosine between rows: adjacent {c['adjacent_mean']:.3f}; no periodic rise by offset")
    if r.short_period:
        lines.append(f"{r.short_period['share']:.1%} of the variance lies at periods of at most "
                     f"{r.short_period['period']:g} positions (what separates neighbours; GPT-2 small: 0.15%)")
    n = r.norms["W_pos"]
    lines.append(f"W_pos row norms: mean {n['mean']:.4f}, std {n['std']:.4f}, min {n['min']:.4f} (position {n['argmin']}), "
                 f"max {n['max']:.4f} (position {n['argmax']})")
    if "W_E" in r.norms:
        e = r.norms["W_E"]
        lines.append(f"W_E row norms: mean {e['mean']:.4f}, std {e['std']:.4f}, min {e['min']:.4f}, max {e['max']:.4f}")
    fl = r.outliers.get("flagged") or []
    if fl:
        lines.append("isolated positions: " + ", ".join(f"{o['position']} ({o['isolation']:.0f}x)" for o in fl[:6]))
    if r.fray and r.fray.get("fray_end"):
        lines.append(f"early positions leave the late top-3 subspace until about position {r.fray['fray_end']}")
    if r.token_position:
        tp = r.token_position
        lines.append(f"W_E: {tp['subspace_share']:.4f} of its variance in W_pos's top-{tp['k']} subspace "
                     f"(chance {tp['chance']:.4f}); "
                     f"mean cos(token, position) {tp['mean_cosine']:.4f}, mean |cos| {tp['mean_abs_cosine']:.4f}")
    if r.sinusoidal:
        s = r.sinusoidal
        lines.append(f"sinusoidal encoding of the same shape: {s['cumulative'][k3 - 1]:.1%} in {k3} components, "
                     f"{s['components_for_90']} components for 90%, row norm {s['norms']['mean']:.4f}")
    bad = [c for c in r.checks if not c["reproduced"]]
    if r.checks:
        lines.append(f"published figures: {len(r.checks) - len(bad)} of {len(r.checks)} reproduced"
                     + ("; not: " + "; ".join(f"{c['what']} (published {c['published']}, ours {c['ours']})"
                                               for c in bad) if bad else ""))
    return lines + [x for x in r.notes if not x.startswith("position 0")]


def figures(result, out_dir: str | Path) -> list[Path]:
    """The figures of any helix result (one model, several models, or a sweep)."""
    from ..viz import helix as V

    if isinstance(result, HelixFamilyResult):
        return V.family_figures(result, Path(out_dir))
    if isinstance(result, HelixSweepResult):
        return V.sweep_figures(result, Path(out_dir))
    return V.helix_figures(result, Path(out_dir))
