"""The single-model helix analysis: :func:`helix` and :class:`HelixResult`, its options."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ...errors import InvalidInputError, MissingTensorError, NotApplicableError
from ...options import resolve
from ...results import ClaimRow, Result
from ..norms import norm_stats
from .curve import _rounded, geometry, ode_fits, pca_summary
from .fits import HelixFit, fit_helix
from .options import Options
from .parts import (Cosine, Fray, Norms, OdeByK, Outliers, Periods, ShortPeriod, SinusoidalGeometry, TokenPosition,
                    Traces, Truncation)
from .pca import OdeFit, PCAFit, pca
from .structure import fray, outlier_positions, token_position


@dataclass(frozen=True)
class HelixResult(Result):
    """The geometry of one model's ``W_pos``.

    ``positions`` are the positions the main PCA ran on (``[start, stop)``; position 0 left
    out by default, the helix post's reading); ``variance_explained`` the first
    ``n_components`` variance shares (``centred`` says whether the mean row was removed);
    ``components_for_90`` how many components reach 90%; ``coords`` the positions' top-3
    coordinates; ``truncations`` the same PCA on positions >= ``truncate_at`` ("late") and
    below it ("early"); ``helix``, ``ode`` (central differences), ``ode_smoothed``
    (Savitzky-Golay) and ``ode_by_k`` the fits of the top components; ``periods``,
    ``short_period`` (the share of variance at periods of at most 4 positions),
    ``traces``, ``cosine``, ``outliers``, ``fray``; ``norms`` of W_pos (and W_E);
    ``token_position`` the W_E / W_pos comparison; ``sinusoidal`` the same metrics for the
    sinusoidal encoding of the same shape; ``checks`` the studies' published figures against ours (from poslens.claims).
    """

    kind = "helix"
    n_ctx: int = 0
    d_model: int = 0
    positions: list[int] = field(default_factory=list)
    centred: bool = True
    variance_explained: list[float] = field(default_factory=list)
    cumulative: list[float] = field(default_factory=list)
    components_for_90: int = 0
    components_for: dict[str, int] = field(default_factory=dict)  # "50" / "90" / "95" (% of variance) -> components
    coords: list[list[float]] = field(default_factory=list)
    truncations: dict[str, Truncation] = field(default_factory=dict)  # "late" / "early"
    helix: HelixFit | None = None
    ode: OdeFit | None = None  # central differences
    ode_smoothed: OdeFit | None = None  # Savitzky-Golay
    ode_by_k: list[OdeByK] = field(default_factory=list)
    periods: Periods | None = None
    short_period: ShortPeriod | None = None
    traces: Traces | None = None
    cosine: Cosine | None = None
    outliers: Outliers | None = None
    fray: Fray | None = None
    norms: Norms | None = None
    token_position: TokenPosition | None = None
    sinusoidal: SinusoidalGeometry | None = None
    checks: list[ClaimRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


NOT_LEARNED = ("the helix analysis of learned positional embeddings; models with rotary or fixed sinusoidal "
               "positions have no learned W_pos to analyse")


def _check_learned(W: np.ndarray, label: str, allow_fixed: bool) -> None:
    """Refuse a W_pos that carries no learned position: constant rows, or the fixed sinusoidal table."""
    from ..sinusoidal import sinusoidal_encoding

    if np.ptp(W, axis=0).max() == 0:
        raise InvalidInputError(
            f"W_pos of {label} is the same vector at every position (all zeros?): the model has no learned "
            "positional embedding to analyse"
        )
    n, d = W.shape
    if allow_fixed or d % 2:
        return
    tol = 1e-4 * max(np.abs(W).max(), 1.0)
    head = min(n, 16)  # a learned W_pos differs from the table within its first rows; only a match is checked in full
    for layout in ("interleaved", "halves"):
        if np.abs(W[:head] - sinusoidal_encoding(head, d, layout=layout)).max() > tol:
            continue
        if np.abs(W - sinusoidal_encoding(n, d, layout=layout)).max() <= tol:
            raise InvalidInputError(
                f"W_pos of {label} is the fixed sinusoidal encoding ({layout} layout), not a learned one; "
                "the helix analysis compares learned embeddings against it "
                "(pass allow_fixed=True / --allow-fixed to analyse it anyway)"
            )


def _end_skip(pos: np.ndarray, flagged: set) -> tuple[int, int]:
    """How many flagged positions sit at each end of ``pos`` (kept to leave at least 8 rows)."""
    kept = [int(p) not in flagged for p in pos]
    a = next((i for i, k in enumerate(kept) if k), len(pos))  # flagged positions at the start
    b = next((i for i, k in enumerate(reversed(kept[a:])) if k), 0)  # and at the end
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


def helix(weights, options: Options | None = None, **overrides) -> HelixResult:
    """The geometry of a model's learned positional embedding ``W_pos``: PCA, helix, ODE, norms, comparisons.

    ``options`` (:class:`~poslens.analyses.helix.options.Options`; keywords replace its
    fields). Reads ``wpe.weight`` and, for the token/position comparisons, ``wte.weight`` (only when
    present, or when ``tokens=True``; ``tokens=False`` never reads it). The main PCA runs
    on positions ``[start, stop)`` (default ``[1, n_ctx)``: position 0, the BOS slot, is
    left out as in the helix post; ``keep_first=True`` starts at 0), centred over those
    positions unless ``center=False``. ``truncations`` adds the helix post's two cuts (positions
    >= ``truncate_at`` and below it) in the same call. The helix and linear-ODE fits use
    the top ``fit_components`` components; ``ode_window`` is the Savitzky-Golay window of
    the smoothed ODE fit. ``sinusoidal`` computes the same metrics for the sinusoidal
    encoding of the same shape (``sinusoidal_base``).

    >>> r = helix("../shared/data/gpt2-small-partial")                  # doctest: +SKIP
    >>> round(r.cumulative[2], 4), r.components_for_90, round(r.norms.W_pos.mean, 4)   # doctest: +SKIP
    (0.9106, 3, 3.3901)
    """
    return _helix(weights, resolve(Options, options, overrides, "helix"))[0]


def default_options() -> dict:
    """Every option of :func:`helix` with its default value.

    >>> default_options()["truncate_at"]
    100
    """
    return dataclasses.asdict(Options())


def check_options(options: dict) -> None:
    """Raise :class:`~poslens.errors.InvalidInputError` for the first key of ``options`` that :func:`helix` does not take.

    >>> check_options({"n_components": 5})
    >>> check_options({"n_component": 5})   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    poslens.errors.InvalidInputError: helix has no option 'n_component'...
    """
    resolve(Options, None, dict(options), "helix")


def helix_with_fit(weights, **options) -> tuple[HelixResult, PCAFit]:
    """:func:`helix` (same options and defaults), also returning the main PCA fit; sweeps compare its components.

    >>> r, fit = helix_with_fit("../shared/data/gpt2-small-partial", tokens=False)   # doctest: +SKIP
    >>> fit.components.shape                                                     # doctest: +SKIP
    (10, 768)
    """
    return _helix(weights, resolve(Options, None, options, "helix"))


def _helix(weights, o: Options) -> tuple[HelixResult, PCAFit]:
    """:func:`helix` with its options resolved, also returning the main PCA fit."""
    from ...models.weights import as_weights  # torch loads only when a model does

    w = as_weights(weights, "helix")
    label = w.label
    if w.cfg.positional != "learned":
        raise NotApplicableError(f"{label} has {w.cfg.positional} positions, no learned W_pos: {NOT_LEARNED}")
    if not w.has("pos_embed.W_pos"):
        raise MissingTensorError("wpe.weight", NOT_LEARNED, label)
    if o.tokens and not w.has("embed.W_E"):
        raise MissingTensorError("wte.weight", "the token/position comparisons (pass tokens=False to skip them)", label)
    W_full = w.W_pos.detach().double().cpu().numpy()
    n_ctx, d_model = W_full.shape
    _check_learned(W_full, label, o.allow_fixed)
    pos = _positions(n_ctx, o.start, o.stop, o.keep_first)
    if len(pos) < o.n_components:
        raise InvalidInputError(
            f"positions {pos[0]}:{pos[-1] + 1} are {len(pos)} rows, fewer than the {o.n_components} components "
            "asked for; widen the range or ask for fewer components"
        )
    if o.n_components > d_model:
        raise InvalidInputError(f"{o.n_components} components exceed d_model ({d_model}); ask for at most {d_model}")
    if len(pos) < 8:
        raise InvalidInputError(f"positions {pos[0]}:{pos[-1] + 1} are {len(pos)} rows; the fits need at least 8")
    use_tokens = w.has("embed.W_E") if o.tokens is None else bool(o.tokens)
    options = dict(
        start=int(pos[0]), stop=int(pos[-1]) + 1, keep_first=bool(o.keep_first), center=bool(o.center),
        centring="mean row over the analysed positions subtracted" if o.center else "none (raw rows)",
        n_components=o.n_components, fit_components=o.fit_components, truncations=bool(o.truncations),
        truncate_at=int(o.truncate_at),
        ode_scheme="central differences (x[t+1]-x[t-1])/2; smoothed: Savitzky-Golay cubic derivative; "
                   "isolated end positions left out",
        ode_window=int(o.ode_window), n_traces=int(o.n_traces), cosine_size=int(o.cosine_size),
        outlier_threshold=float(o.outlier_threshold), sinusoidal=bool(o.sinusoidal),
        sinusoidal_base=float(o.sinusoidal_base),
        tokens=use_tokens, token_sample=int(o.token_sample), allow_fixed=bool(o.allow_fixed), seed=int(o.seed),
    )
    notes: list[str] = []
    if pos[0] == 1:
        notes.append("position 0 (the BOS slot) is left out of the PCA, as in the helix post; keep_first=True keeps it")
    G_full = W_full @ W_full.T  # every Gram matrix below (outliers, cosines, PCAs) is a block of this one
    outl = outlier_positions(W_full, o.outlier_threshold, gram=G_full)
    flagged = {x["position"] for x in outl["flagged"]}
    skip = _end_skip(pos, flagged)
    if any(skip):
        left = sorted(set(pos[:skip[0]].tolist()) | set(pos[len(pos) - skip[1]:].tolist()))
        notes.append(f"isolated end positions {left} are left out of the ODE fits (a finite difference across them "
                     "is one jump that would swamp the fit)")
    main, fit = geometry(W_full[pos], pos, **_geometry_options(o), ode_skip=skip, gram=G_full[np.ix_(pos, pos)])
    truncs: dict = {}
    late_fit = None
    if o.truncations:
        cut = int(o.truncate_at)
        first, end = int(pos[0]), int(pos[-1]) + 1
        for name, lo, hi in (("late", max(first, cut), end), ("early", first, min(cut, end))):
            p = np.arange(lo, hi)
            k = min(o.n_components, len(p))
            if len(p) < max(o.fit_components, 8):
                notes.append(
                    f"the {name} truncation (positions {lo}:{hi}) has {len(p)} positions, too few for a PCA; skipped"
                    if len(p) else f"the {name} truncation is empty: positions {first}:{end} "
                    f"{'do not reach' if name == 'late' else 'start after'} position {cut}; skipped")
                continue
            f = pca(W_full[p], k, o.center, gram=G_full[np.ix_(p, p)])
            odes = ode_fits(f.projected, p, min(o.fit_components, k), 0, o.ode_window, _end_skip(p, flagged))
            hx = fit_helix(f.projected[:, :o.fit_components], p.astype(float))
            truncs[name] = {**pca_summary(f, p), "helix": hx, "ode": odes["ode"], "ode_smoothed": odes["ode_smoothed"]}
            if name == "late":
                late_fit = f
    fr = None if late_fit is None else fray(W_full, late_fit, min(3, late_fit.components.shape[0]), int(o.truncate_at))
    norms = _norms(W_full, int(o.truncate_at))
    tp = None
    if use_tokens:
        e_norms, tp = token_position(w.W_E.detach().cpu(), W_full[pos], fit, k=min(3, o.n_components),
                                     sample=o.token_sample, seed=o.seed)
        norms["W_E_centred"] = e_norms.pop("centred")
        norms["W_E"] = e_norms
        norms["token_to_position_mean_ratio"] = norms["W_E"]["mean"] / norms["W_pos"]["mean"]
    else:
        notes.append("W_E not read: token/position comparisons skipped" + ("" if w.has("embed.W_E") else
                                                                          f" ({label} has no wte.weight)"))
    sin = _sinusoidal(n_ctx, d_model, pos, o, notes) if o.sinusoidal else None
    plain = ("variance_explained", "cumulative", "components_for_90", "components_for", "coords", "helix", "ode",
             "ode_smoothed")
    return HelixResult(
        model=label, processing=tuple(w.processing), options=options, n_ctx=n_ctx, d_model=d_model,
        positions=pos.tolist(), centred=bool(o.center), **{k: main[k] for k in plain},
        truncations={k: Truncation.of(v) for k, v in truncs.items()}, ode_by_k=[OdeByK.of(x) for x in main["ode_by_k"]],
        periods=Periods.of(main["periods"]), short_period=ShortPeriod.of(main["short_period"]),
        traces=Traces.of(main["traces"]), cosine=Cosine.of(main["cosine"]), outliers=Outliers.of(outl),
        fray=Fray.of(fr), norms=Norms.of(norms), token_position=TokenPosition.of(tp),
        sinusoidal=SinusoidalGeometry.of(sin), notes=notes,
    ), fit


def _norms(W: np.ndarray, cut: int) -> dict:
    """Row-norm statistics of W_pos over every position, as the slides compute them, plus the late mean."""
    centred = W - W.mean(0)
    above = W[cut + 1:]
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


def _geometry_options(o: Options) -> dict:
    return dict(center=o.center, n_components=o.n_components, fit_components=o.fit_components,
                ode_window=o.ode_window, n_traces=o.n_traces, cosine_size=o.cosine_size)


def _sinusoidal(n_ctx, d_model, pos, o: Options, notes) -> dict | None:
    from .. import sinusoidal as S

    if d_model % 2:
        notes.append(f"sinusoidal comparison skipped: d_model {d_model} is odd")
        return None
    pe = S.sinusoidal_encoding(n_ctx, d_model, o.sinusoidal_base)
    g, _ = geometry(pe[pos], pos, **_geometry_options(o))
    g.pop("traces")
    return {"encoding": S.describe(n_ctx, d_model, o.sinusoidal_base), **g, "norms": norm_stats(pe)}
