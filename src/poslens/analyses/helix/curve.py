"""One positional matrix's geometry: the JSON view of its PCA, its linear-ODE fits, and
:func:`geometry`, every single-matrix metric at once (what :func:`~.measure.helix` reports).

>>> out, fit = geometry(W_pos[1:], np.arange(1, 1024))   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .fits import dominant_periods, fit_helix, fit_sinusoid, short_period_share
from .pca import OdeFit, PCAFit, fit_linear_ode, pca
from .structure import cosine_structure


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

    def one(kk: int, scheme: str) -> OdeFit | None:
        if scheme == "savgol" and len(t) < win + kk + 1:
            return None
        return replace(fit_linear_ode(C[:, :kk], scheme=scheme, window=win), range=rng)

    by_k = []
    for kk in (2, 3, 4, 6, 10):
        if kk > min(n_components, C.shape[1]) or len(t) < 2 * kk + 4:
            continue
        c, sm = one(kk, "central"), one(kk, "savgol")
        by_k.append({"k": kk, "r2_central": c.r2, "r2_savgol": sm.r2 if sm else None,
                     "periods_central": c.periods[:2], "periods_savgol": sm.periods[:2] if sm else None})
    return {"ode": one(k, "central"), "ode_smoothed": one(k, "savgol"), "ode_by_k": by_k}


def geometry(W: np.ndarray, positions: np.ndarray, *, center: bool = True, n_components: int = 10,
             fit_components: int = 3, ode_window: int = 51, n_traces: int = 6, cosine_size: int = 64,
             ode_skip: tuple[int, int] = (0, 0), gram: np.ndarray | None = None) -> tuple[dict, PCAFit]:
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
        "periods": [fit_sinusoid(W[:, j], t).period for j in dims] if len(t) >= 6 else [],
    }
    out["cosine"] = cosine_structure(W, positions, cosine_size, gram=gram)
    return out, fit
