"""The geometry of learned positional embeddings: PCA of ``W_pos``, its helix, and f' = A f + c.

Seeds: 001 ("GPT-2's positional embedding matrix is a helix"), the positional slides of 004
("Dissecting the Frog") and the GPT-2 claim of 000 (a helix lets f' = W f + c, so an
attention head can compute the tangent of the position curve linearly).

Shared building blocks other analyses import:

>>> fit = pca(np.random.default_rng(0).normal(size=(50, 8)), n_components=3)
>>> fit.components.shape, fit.projected.shape
((3, 8), (50, 3))
>>> t = np.arange(200.0)
>>> X = np.c_[np.cos(2 * np.pi * t / 40), np.sin(2 * np.pi * t / 40), 0.01 * t]
>>> ode = fit_linear_ode(X)
>>> round(ode["r2"], 6), round(ode["periods"][0], 3)
(1.0, 40.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.linalg

from ..errors import InvalidInputError, MissingTensorError
from ..results import Result

# ----------------------------------------------------------------------------- PCA


@dataclass(frozen=True)
class PCAFit:
    """A principal component analysis of the rows of a matrix.

    ``components [k, d]`` are unit rows (sign fixed so each one's largest loading is
    positive); ``projected [n, k]`` the rows' coordinates on them (after subtracting
    ``mean``); ``variance_ratio [k]`` each component's share of the total variance;
    ``spectrum`` the share of *every* component (computed on first use, so
    ``components_for`` can look past ``k``).
    """

    components: np.ndarray
    mean: np.ndarray
    variance_ratio: np.ndarray
    projected: np.ndarray
    singular_values: np.ndarray
    total_variance: float
    center: bool
    gram: np.ndarray = field(repr=False, compare=False, default=None)  # the centred Gram matrix decomposed

    @property
    def cumulative(self) -> np.ndarray:
        return np.cumsum(self.variance_ratio)

    @cached_property
    def spectrum(self) -> np.ndarray:
        # All eigenvalues cost a second decomposition; most callers need only the top k.
        return np.clip(scipy.linalg.eigvalsh(self.gram)[::-1], 0.0, None) / self.total_variance

    def components_for(self, fraction: float = 0.9) -> int:
        """The fewest components whose variance shares add up to at least ``fraction``."""
        if self.cumulative[-1] >= fraction - 1e-12:
            return components_for(self.variance_ratio, fraction)
        return components_for(self.spectrum, fraction)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Coordinates of other rows (same ``d``) on these components."""
        return (np.asarray(X, dtype=np.float64) - self.mean) @ self.components.T


def _prepare(W: np.ndarray, center: bool, gram: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centred rows, mean, the smaller Gram matrix) after validating W.

    ``gram`` (W @ W.T, already computed by the caller) is double-centred instead of
    recomputed when the rows are the smaller side.
    """
    X = np.asarray(W, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise InvalidInputError(f"PCA needs a non-empty 2-D matrix (rows x features); got shape {X.shape}")
    if not np.isfinite(X).all():
        raise InvalidInputError("the matrix holds NaN or infinite values; PCA is undefined")
    mean = X.mean(0) if center else np.zeros(X.shape[1])
    Xc = X - mean
    n, d = X.shape
    if n <= d and gram is not None:
        G = np.asarray(gram, dtype=np.float64)
        if center:  # (X - 1m)(X - 1m)^T from X X^T
            r = G.mean(0)
            G = G - r[:, None] - r[None, :] + r.mean()
        return Xc, mean, G
    return Xc, mean, (Xc @ Xc.T if n <= d else Xc.T @ Xc)


def variance_spectrum(W: np.ndarray, center: bool = True) -> np.ndarray:
    """Every principal component's share of the variance of W's rows, largest first (no components).

    >>> s = variance_spectrum(np.eye(4))
    >>> s.round(3).tolist()
    [0.333, 0.333, 0.333, 0.0]
    """
    _, _, G = _prepare(W, center)
    evals = np.clip(scipy.linalg.eigvalsh(G)[::-1], 0.0, None)
    total = evals.sum()
    if total <= 0:
        raise InvalidInputError("the rows are all identical (zero variance); PCA is undefined")
    return evals / total


def components_for(spectrum: np.ndarray, fraction: float = 0.9) -> int:
    """The fewest leading components whose variance shares (``spectrum``, largest first) reach ``fraction``."""
    cum = np.cumsum(spectrum)
    # a hair of slack so 0.9 of an exactly 90% spectrum is not lost to rounding
    return int(min(np.searchsorted(cum, fraction - 1e-12) + 1, len(cum)))


def pca(W: np.ndarray, n_components: int = 10, center: bool = True, gram: np.ndarray | None = None) -> PCAFit:
    """PCA of the rows of ``W [n, d]``: the top ``n_components`` directions and their variance shares.

    Works on the smaller of the two Gram matrices (``n x n`` or ``d x d``), in float64:
    the top-k eigenvectors, and the trace for the total variance (every eigenvalue only
    when ``spectrum`` is asked for), which is several times faster than an SVD for a
    gpt2-xl ``W_pos`` (1024 x 1600) and exact to float64 rounding for the leading
    components. ``center`` subtracts the mean row first (the usual PCA; without it the
    first component is mostly the mean direction). ``gram``: ``W @ W.T`` if the caller
    has it already (it is reused, not recomputed).

    >>> W = np.random.default_rng(0).normal(size=(100, 16))
    >>> f = pca(W, 4)
    >>> bool(np.allclose(f.projected @ f.components + f.mean, W, atol=10)), f.components_for(1.0) <= 16
    (True, True)
    """
    shape = np.shape(W)
    k = int(n_components)
    if k < 1:
        raise InvalidInputError(f"n_components must be at least 1 (got {n_components})")
    if len(shape) == 2 and k > min(shape):
        raise InvalidInputError(
            f"{k} components need at least {k} rows and {k} columns, but the matrix is {shape[0]} x {shape[1]}; "
            "use more positions or fewer components"
        )
    Xc, mean, G = _prepare(W, center, gram)
    n, d = Xc.shape
    small_is_rows = n <= d
    m = G.shape[0]
    total = float(np.trace(G))
    # identical rows leave only rounding after centring: relative to the rows' own size
    if total <= 1e-20 * max(n * float(mean @ mean), 1e-280):
        raise InvalidInputError(
            "the rows are all identical (zero variance" + (" after centring" if center else "") + "); PCA is undefined"
        )
    top_vals, top_vecs = scipy.linalg.eigh(G, subset_by_index=[m - k, m - 1])
    top_vals, top_vecs = np.clip(top_vals[::-1], 0.0, None), top_vecs[:, ::-1]
    sv = np.sqrt(top_vals)
    if small_is_rows:
        # G = Xc Xc^T = U S^2 U^T, so the components are Xc^T U / S.
        safe = np.where(sv > 0, sv, 1.0)
        comps = (top_vecs.T @ Xc) / safe[:, None]
    else:
        comps = top_vecs.T
    flip = np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])
    comps = comps * np.where(flip == 0, 1.0, flip)[:, None]
    return PCAFit(
        components=comps,
        mean=mean,
        variance_ratio=top_vals / total,
        projected=Xc @ comps.T,
        singular_values=sv,
        total_variance=total,
        center=bool(center),
        gram=G,
    )


# ----------------------------------------------------------------------------- linear ODE

ODE_SCHEMES = ("central", "forward", "savgol")


def _finite_difference(X: np.ndarray, dt: float, scheme: str, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(f at the sample points used, df/dt there) for ``scheme``."""
    if scheme == "central":
        return X[1:-1], (X[2:] - X[:-2]) / (2 * dt)
    if scheme == "forward":
        return X[:-1], (X[1:] - X[:-1]) / dt
    from scipy.signal import savgol_filter

    f = savgol_filter(X, window, 3, axis=0)
    df = savgol_filter(X, window, 3, deriv=1, delta=dt, axis=0)
    h = window // 2  # the ends are polynomial extrapolations; leave them out
    return f[h:len(X) - h], df[h:len(X) - h]


def _continuous_generator(A: np.ndarray, dt: float, scheme: str) -> tuple[np.ndarray | None, np.ndarray]:
    """The generator of the flow that ``A`` (a finite-difference fit) was sampled from.

    For samples of an exact solution of f' = M f + c, central differences give
    ``A = sinh(M dt) / dt`` and forward differences ``A = (exp(M dt) - I) / dt``; inverting
    these removes the discretisation bias (a rotation of period T shows up as frequency
    ``sin(2 pi dt / T) / dt`` in a central-difference fit). Returns (M or None when A is not
    diagonalisable, the eigenvalues of M).
    """
    lam, V = np.linalg.eig(A)
    if scheme == "central":
        mu = np.arcsinh(lam.astype(complex) * dt) / dt
    elif scheme == "forward":
        mu = np.log(1 + lam.astype(complex) * dt) / dt
    else:
        mu = lam.astype(complex)
    try:
        if np.linalg.cond(V) > 1e8:
            return None, mu
        M = (V * mu) @ np.linalg.inv(V)
    except np.linalg.LinAlgError:
        return None, mu
    return np.real_if_close(M, tol=1e6).real, mu


def fit_linear_ode(X: np.ndarray, dt: float = 1.0, scheme: str = "central", window: int = 51) -> dict:
    """Least-squares fit of dX/dt ~ X A^T + c along a sampled curve ``X [n, k]`` (rows = time steps).

    ``scheme``: "central" differences (x[t+1] - x[t-1]) / 2dt at t = 1..n-2 (default),
    "forward" (x[t+1] - x[t]) / dt, or "savgol": a Savitzky-Golay derivative (cubic, odd
    ``window``) of the curve and the smoothed curve as regressor, for noisy curves such as
    a trained W_pos whose position-to-position jitter swamps raw differences.

    Returns ``A`` (k x k), ``c`` (k), ``r2`` (share of the derivative's variance the fit
    explains, pooled over dimensions), ``r2_per_dim``, ``eigenvalues`` of A as [re, im]
    pairs, ``A_continuous`` and ``eigenvalues_continuous`` (A with the scheme's
    discretisation bias removed; equal to A for savgol), ``frequencies`` (radians per unit
    time, one per rotating pair, largest first) and the implied ``periods`` = 2 pi / frequency.

    >>> t = np.arange(300.0)
    >>> round(fit_linear_ode(np.c_[np.cos(t / 10), np.sin(t / 10)], scheme="forward")["periods"][0], 4)
    62.8319
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise InvalidInputError(f"fit_linear_ode needs a [time, dims] array; got shape {X.shape}")
    if scheme not in ODE_SCHEMES:
        raise InvalidInputError(f"unknown finite-difference scheme '{scheme}'; use one of {', '.join(ODE_SCHEMES)}")
    if not dt > 0:
        raise InvalidInputError(f"dt must be positive (got {dt})")
    n, k = X.shape
    if scheme == "savgol":
        window = int(window)
        if window < 5 or window % 2 == 0:
            raise InvalidInputError(f"the Savitzky-Golay window must be odd and at least 5 (got {window})")
    need = {"central": 3, "forward": 2, "savgol": window}[scheme] + k + 1
    if n < need:
        raise InvalidInputError(
            f"a linear ODE in {k} dimensions needs at least {need} samples with the {scheme} scheme; got {n}"
        )
    F, D = _finite_difference(X, float(dt), scheme, window)
    design = np.c_[F, np.ones(len(F))]
    coef, *_ = np.linalg.lstsq(design, D, rcond=None)
    A, c = coef[:k].T, coef[k]
    resid = D - design @ coef
    ss_tot = ((D - D.mean(0)) ** 2).sum(0)
    ss_res = (resid**2).sum(0)
    r2 = float(1 - ss_res.sum() / ss_tot.sum()) if ss_tot.sum() > 0 else float("nan")
    r2_dim = [float(1 - r) if t > 0 else float("nan") for r, t in zip(ss_res / np.where(ss_tot > 0, ss_tot, 1), ss_tot)]
    lam = np.linalg.eigvals(A)
    M, mu = _continuous_generator(A, float(dt), scheme)
    freqs = sorted({round(abs(float(z.imag)), 12) for z in mu if abs(z.imag) > 1e-12}, reverse=True)
    return {
        "scheme": scheme,
        "dt": float(dt),
        "window": window if scheme == "savgol" else None,
        "n_samples": int(len(F)),
        "A": A.tolist(),
        "c": c.tolist(),
        "r2": r2,
        "r2_per_dim": r2_dim,
        "eigenvalues": [[float(z.real), float(z.imag)] for z in lam],
        "A_continuous": None if M is None else M.tolist(),
        "eigenvalues_continuous": [[float(z.real), float(z.imag)] for z in mu],
        "frequencies": freqs,
        "periods": [float(2 * np.pi / w) for w in freqs],
    }


# ----------------------------------------------------------------------------- periods and the helix fit


def _detrend(Y: np.ndarray, t: np.ndarray) -> np.ndarray:
    design = np.c_[np.ones_like(t), t - t.mean()]
    coef, *_ = np.linalg.lstsq(design, Y, rcond=None)
    return Y - design @ coef


def _periodogram(Y: np.ndarray, t: np.ndarray, pad: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(angular frequency per position, power pooled over columns) of the linearly detrended columns."""
    Z = _detrend(Y, t)
    n = len(t)
    m = max(n * pad, 2)
    power = (np.abs(np.fft.rfft(Z, n=m, axis=0)) ** 2).sum(1)
    omega = 2 * np.pi * np.fft.rfftfreq(m)
    return omega[1:], power[1:]


def _sinusoid_design(t: np.ndarray, omega: float, t0: float) -> np.ndarray:
    return np.c_[np.ones_like(t), t - t0, np.cos(omega * t), np.sin(omega * t)]


def _sinusoid_residual(omega: float, Y: np.ndarray, t: np.ndarray, t0: float) -> float:
    design = _sinusoid_design(t, omega, t0)
    coef, *_ = np.linalg.lstsq(design, Y, rcond=None)
    return float(((Y - design @ coef) ** 2).sum())


def fit_sinusoid(Y: np.ndarray, t: np.ndarray | None = None) -> dict:
    """Fit ``Y(t) ~ offset + slope (t - t0) + u cos(w t) + v sin(w t)`` (one frequency shared by every column).

    The frequency starts at the peak of the zero-padded periodogram of the linearly
    detrended columns and is refined by a bounded 1-D least-squares search (the model is
    linear in everything else), so a period is recovered to far better than one FFT bin.
    Returns ``omega``, ``period``, ``t0``, ``offset``, ``slope``, ``cos``, ``sin`` (one value
    per column) and ``r2`` (share of Y's variance explained).

    >>> t = np.arange(1.0, 500.0)
    >>> round(fit_sinusoid(np.sin(2 * np.pi * t / 37.3) + 0.01 * t, t)["period"], 6)
    37.3
    """
    from scipy.optimize import minimize_scalar

    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    t = np.arange(len(Y), dtype=np.float64) if t is None else np.asarray(t, dtype=np.float64)
    n = len(t)
    if n < 6:
        raise InvalidInputError(f"fitting a sinusoid needs at least 6 positions; got {n}")
    t0 = float(t.mean())
    omega, power = _periodogram(Y, t, pad=8)
    w0 = float(omega[int(np.argmax(power))])
    step = 2 * np.pi / n  # one bin of the unpadded transform
    lo, hi = max(w0 - step, 1e-6 * step), min(w0 + step, np.pi)
    best = minimize_scalar(_sinusoid_residual, bounds=(lo, hi), args=(Y, t, t0), method="bounded",
                           options={"xatol": 1e-12 * max(w0, 1e-3)})
    w = float(best.x)
    design = _sinusoid_design(t, w, t0)
    coef, *_ = np.linalg.lstsq(design, Y, rcond=None)
    ss_tot = float(((Y - Y.mean(0)) ** 2).sum())
    ss_res = float(((Y - design @ coef) ** 2).sum())
    return {
        "omega": w,
        "period": float(2 * np.pi / w),
        "t0": t0,
        "offset": coef[0].tolist(),
        "slope": coef[1].tolist(),
        "cos": coef[2].tolist(),
        "sin": coef[3].tolist(),
        "r2": 1 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
    }


def fit_helix(Y: np.ndarray, t: np.ndarray | None = None) -> dict:
    """Fit a helix ``c + a (t - t0) + u cos(w t) + v sin(w t)`` to a curve ``Y [n, k]`` (k >= 2).

    Geometry from the fit: ``period`` (positions per turn), ``radius`` (RMS of the two
    semi-axes of the ellipse spanned by u and v; the radius for a circular helix),
    ``semi_axes``, ``ellipticity`` (minor / major), ``rise_per_position`` (|a| orthogonal to
    the circle's plane), ``pitch`` (rise per turn = rise per position x period),
    ``in_plane_drift`` (the part of a inside the plane, 0 for a true helix),
    ``axis_tilt_deg``, ``turns`` over the span of t, and ``r2`` (share of the curve's
    variance the helix explains).

    >>> t = np.arange(1.0, 1000.0); w = 2 * np.pi / 250
    >>> h = fit_helix(np.c_[3 * np.cos(w * t), 3 * np.sin(w * t), 0.004 * t], t)
    >>> round(h["radius"], 6), round(h["period"], 6), round(h["pitch"], 6)
    (3.0, 250.0, 1.0)
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[1] < 2:
        raise InvalidInputError(f"a helix fit needs a curve with at least 2 coordinates; got shape {Y.shape}")
    t = np.arange(len(Y), dtype=np.float64) if t is None else np.asarray(t, dtype=np.float64)
    s = fit_sinusoid(Y, t)
    a, u, v = np.array(s["slope"]), np.array(s["cos"]), np.array(s["sin"])
    plane = np.c_[u, v]
    U, sv, _ = np.linalg.svd(plane, full_matrices=False)
    basis = U[:, sv > 1e-12 * max(sv.max(), 1e-300)]
    a_par = basis @ (basis.T @ a)
    a_perp = a - a_par
    rise = float(np.linalg.norm(a_perp))
    speed = float(np.linalg.norm(a))
    span = float(t.max() - t.min())
    return {
        **s,
        "radius": float(np.sqrt((sv**2).sum() / 2)),
        "semi_axes": sv.tolist(),
        "ellipticity": float(sv[1] / sv[0]) if sv[0] > 0 else float("nan"),
        "rise_per_position": rise,
        "pitch": rise * s["period"],
        "in_plane_drift": float(np.linalg.norm(a_par)),
        "axis_tilt_deg": float(np.degrees(np.arccos(min(1.0, rise / speed)))) if speed > 0 else float("nan"),
        "axis": (a_perp / rise).tolist() if rise > 0 else None,
        "turns": span / s["period"],
    }


def dominant_periods(Y: np.ndarray, t: np.ndarray, n_peaks: int = 3) -> dict:
    """Periods (in positions) of a curve's strongest oscillations.

    ``pooled``: the ``n_peaks`` highest local maxima of the periodogram pooled over the
    columns (each with its ``share`` of the detrended power); ``by_column``: each column's
    own best single-sinusoid period, refined by least squares, with its ``r2``.
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    omega, power = _periodogram(Y, t)
    total = float(power.sum())
    is_peak = np.r_[power[0] > power[1] if len(power) > 1 else True,
                    (power[1:-1] > power[:-2]) & (power[1:-1] >= power[2:]),
                    power[-1] > power[-2] if len(power) > 1 else False]
    idx = np.flatnonzero(is_peak)
    idx = idx[np.argsort(power[idx])[::-1]][:n_peaks]
    pooled = [{"period": float(2 * np.pi / omega[i]), "share": float(power[i] / total) if total > 0 else float("nan")}
              for i in idx]
    by_col = []
    for j in range(Y.shape[1]):
        f = fit_sinusoid(Y[:, j], t)
        span = float(t.max() - t.min())
        # a period longer than the range is an extrapolation from less than one cycle
        by_col.append({"column": j, "period": f["period"], "cycles": span / f["period"], "r2": f["r2"]})
    return {"pooled": pooled, "by_column": by_col}


# ----------------------------------------------------------------------------- cosines, outliers, norms


def _unit_rows(M: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(M, axis=1, keepdims=True)
    return M / np.where(n > 0, n, 1.0)


def cosine_structure(W: np.ndarray, positions: np.ndarray, size: int = 64, gram: np.ndarray | None = None) -> dict:
    """Cosine similarity between the rows of ``W [n, d]`` (one row per entry of ``positions``).

    ``by_offset[k]``: the mean cosine between positions k apart (the periodic pattern of
    a helix shows as a dip and a rise); ``adjacent``: cos(P_i, P_i+1) for each i;
    ``matrix``: the full matrix subsampled every ``stride`` positions to at most ``size``
    rows (for the heatmap); ``min_offset``/``min_value``: the first clear dip of
    ``by_offset`` (prominence 0.05); ``period``: the offset of the first clear rise after
    it (None when it never rises again).
    """
    G = np.asarray(W, dtype=np.float64) @ np.asarray(W, dtype=np.float64).T if gram is None else gram
    nrm = np.sqrt(np.clip(np.diagonal(G), 0, None))
    nrm = np.where(nrm > 0, nrm, 1.0)
    C = G / nrm[:, None] / nrm[None, :]
    n = len(C)
    by_offset = np.array([np.diagonal(C, k).mean() for k in range(n)])
    # The first clear dip, then the first clear rise after it; only where enough pairs
    # remain to average (k <= 3n/4).
    from scipy.signal import find_peaks

    lim = max(3, (3 * n) // 4)
    curve = by_offset[:lim]
    dips, _ = find_peaks(-curve, prominence=0.05)
    k_min = int(dips[0]) if len(dips) else int(np.argmin(curve))
    rises, _ = find_peaks(curve, prominence=0.05)
    rises = rises[rises > k_min]
    period = int(rises[0]) if len(dips) and len(rises) else None
    stride = max(1, -(-n // max(1, size)))
    adj = np.diagonal(C, 1)
    return {
        "by_offset": np.round(by_offset, 6).tolist(),
        "adjacent": np.round(adj, 6).tolist(),
        "adjacent_mean": float(adj.mean()) if len(adj) else float("nan"),
        "adjacent_std": float(adj.std()) if len(adj) else float("nan"),
        "min_offset": k_min,
        "min_value": float(by_offset[k_min]),
        "period": period,
        "stride": stride,
        "matrix_positions": np.asarray(positions)[::stride].tolist(),
        "matrix": np.round(C[::stride, ::stride], 4).tolist(),
    }


def outlier_positions(W: np.ndarray, threshold: float = 10.0, gram: np.ndarray | None = None) -> dict:
    """Positions whose embedding stands apart from every other one.

    A position's ``isolation`` is its distance to the nearest other row of ``W`` divided by
    the median of that nearest-neighbour distance over all rows; rows above ``threshold``
    are ``flagged`` (in order of isolation). On GPT-2 small, position 0 (the BOS slot) and
    the last position stand out, as seed 001 sees. ``gram``: ``W @ W.T`` if already computed.
    """
    X = np.asarray(W, dtype=np.float64)
    G = X @ X.T if gram is None else gram
    sq = np.diagonal(G).copy()
    D2 = sq[:, None] + sq[None, :] - 2 * G
    np.fill_diagonal(D2, np.inf)
    nn = np.sqrt(np.clip(D2.min(1), 0, None))
    med = float(np.median(nn))
    iso = nn / med if med > 0 else np.full_like(nn, np.inf)
    norms = np.sqrt(sq)
    order = np.argsort(-iso)
    flagged = [{"position": int(i), "isolation": float(iso[i]), "nearest_distance": float(nn[i]), "norm": float(norms[i])}
               for i in order if iso[i] > threshold]
    return {
        "threshold": float(threshold),
        "median_nearest_distance": med,
        "flagged": flagged,
        "isolation": np.round(iso, 4).tolist(),
    }


def fray(W: np.ndarray, late: PCAFit, k: int, cut: int, window: int = 11) -> dict:
    """How far the early positions leave the subspace the later ones live in (seed 001's "fraying").

    ``residual[i]``: the share of row i's deviation from the late positions' mean that lies
    outside their top-``k`` principal subspace. ``baseline`` is its median over positions
    >= ``cut``; ``fray_end`` the first position from which the running median (``window``)
    stays below ``threshold`` = max(2 x baseline, 0.02) for the next ``cut`` positions (None
    if never; the floor keeps float32 rounding of an exact planted helix from counting).
    """
    from scipy.ndimage import median_filter

    X = np.asarray(W, dtype=np.float64) - late.mean
    total = (X**2).sum(1)
    inside = ((X @ late.components[:k].T) ** 2).sum(1)
    res = np.where(total > 0, 1 - inside / np.where(total > 0, total, 1), 0.0)
    base = float(np.median(res[cut:])) if cut < len(res) else float("nan")
    smooth = median_filter(res, size=window, mode="nearest")
    threshold = max(2 * base, 0.02) if np.isfinite(base) else 0.02
    ok = smooth <= threshold
    end = None
    for p in range(len(res)):
        if ok[p:p + cut].all():
            end = p
            break
    return {
        "k": k,
        "cut": cut,
        "residual": np.round(res, 5).tolist(),
        "baseline": base,
        "threshold": threshold,
        "mean_before_cut": float(res[:cut].mean()),
        "mean_after_cut": float(res[cut:].mean()) if cut < len(res) else float("nan"),
        "fray_end": end,
    }


def _stats(n: np.ndarray) -> dict:
    return {"mean": float(n.mean()), "std": float(n.std()), "min": float(n.min()), "max": float(n.max()),
            "argmin": int(n.argmin()), "argmax": int(n.argmax())}


def norm_stats(M: np.ndarray) -> dict:
    """Mean, std (population), min, max, argmin and argmax of the row norms of ``M`` (as the slides report them)."""
    return _stats(np.linalg.norm(np.asarray(M, dtype=np.float64), axis=1))


def token_position(W_E, W_pos: np.ndarray, fit: PCAFit, k: int = 3, sample: int = 1024, seed: int = 0) -> tuple[dict, dict]:
    """How token embeddings sit relative to positional ones (the seed comments' "direct sum" question).

    Returns (W_E's norm statistics, the comparison). The comparison: ``mean_cosine``, the
    mean of cos(e, p) over every token-position pair (exact, from the means of the unit
    rows); ``mean_abs_cosine``, the mean |cos| over ``sample`` random tokens x every
    position; ``subspace_share``, the share of W_E's variance (centred over tokens) inside
    the top-``k`` principal subspace of W_pos; ``subspace_share_uncentred``, the same for
    W_E's squared norms (the "magnitude" the comment asks about); ``chance``, k / d_model,
    what an isotropic W_E would put there. W_E (50k x d for GPT-2) stays float32 and is
    read in a few matrix-vector passes; nothing of its size is copied.
    """
    import torch

    E = torch.as_tensor(W_E).float()
    N, d = E.shape
    P = _unit_rows(np.asarray(W_pos, dtype=np.float64))
    e_norm = torch.linalg.vector_norm(E, dim=1).double().numpy()
    mu = (torch.ones(N) @ E).double() / N  # a BLAS matvec: a dtype-converting mean is ~20x slower
    e_dot_mu = (E @ mu.float()).double().numpy()
    centred = np.sqrt(np.clip(e_norm**2 - 2 * e_dot_mu + float(mu @ mu), 0, None))
    # mean over all pairs of cos(e_i, p_j) = (mean of unit e) . (mean of unit p)
    inv = torch.from_numpy(np.where(e_norm > 0, 1 / np.where(e_norm > 0, e_norm, 1), 0.0)).float()
    mean_unit_e = (E.T @ inv).double().numpy() / N
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(N, size=min(sample, N), replace=False))
    sample_rows = torch.from_numpy(_unit_rows(E[torch.from_numpy(idx)].double().numpy())).float()
    abs_cos = float((sample_rows @ torch.from_numpy(P.T).float()).abs().mean())
    V = fit.components[:k]
    inside_unc = float(((E @ torch.from_numpy(V.T).float()).double().numpy() ** 2).sum())
    mu_proj = mu.numpy() @ V.T
    ss_unc = float((e_norm**2).sum())
    ss_cen = ss_unc - N * float(mu @ mu)
    inside_cen = inside_unc - N * float(mu_proj @ mu_proj)
    norms = {**_stats(e_norm), "centred": _stats(centred)}
    return norms, {
        "k": k,
        "mean_cosine": float(mean_unit_e @ P.mean(0)),
        "mean_abs_cosine": abs_cos,
        "abs_cosine_tokens": int(len(idx)),
        "subspace_share": inside_cen / ss_cen if ss_cen > 0 else float("nan"),
        "subspace_share_uncentred": inside_unc / ss_unc if ss_unc > 0 else float("nan"),
        "chance": k / d,
    }


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


def _defaults() -> dict:
    import inspect

    return {k: p.default for k, p in inspect.signature(helix).parameters.items() if k != "weights"}


def _check_options(options: dict) -> None:
    from ..errors import suggest

    known = _defaults()
    for k in options:
        if k not in known:
            raise InvalidInputError(f"helix has no option '{k}'{suggest(k, known)}; its options are: {', '.join(known)}")


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
    """:func:`helix`, also returning the main PCA fit (for sweeps)."""
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


# ----------------------------------------------------------------------------- several models, sweeps


def summary_row(r) -> dict:
    """The headline numbers of one :class:`HelixResult` (or its dict), for tables across models or checkpoints."""
    d = r if isinstance(r, dict) else r.to_dict()
    h, od, sm = d.get("helix") or {}, d.get("ode") or {}, d.get("ode_smoothed") or {}
    late = (d.get("truncations") or {}).get("late") or {}
    cum = d.get("cumulative") or []
    return {
        "model": d.get("model"),
        "n_ctx": d.get("n_ctx"),
        "d_model": d.get("d_model"),
        "share_3": cum[2] if len(cum) > 2 else None,
        "components_for_90": d.get("components_for_90"),
        "late_share_3": late["cumulative"][2] if len(late.get("cumulative", [])) > 2 else None,
        "helix_period": h.get("period"),
        "helix_radius": h.get("radius"),
        "helix_turns": h.get("turns"),
        "helix_r2": h.get("r2"),
        "ode_r2": od.get("r2"),
        "ode_r2_smoothed": sm.get("r2"),
        "norm_mean": d["norms"]["W_pos"]["mean"],
        "norm_std": d["norms"]["W_pos"]["std"],
        "adjacent_cosine": (d.get("cosine") or {}).get("adjacent_mean"),
        "cosine_period": (d.get("cosine") or {}).get("period"),
    }


@dataclass(frozen=True)
class HelixFamilyResult(Result):
    """:class:`HelixResult` s of several models (``results``, in the order given) and a
    ``table`` of their headline numbers (:func:`summary_row`)."""

    kind = "helix_family"
    results: list = field(default_factory=list)
    table: list = field(default_factory=list)


@dataclass(frozen=True)
class HelixSweepResult(Result):
    """The helix metrics across a run's checkpoints, in training order.

    ``table`` has one row per checkpoint (``step`` when known) with :func:`summary_row`'s
    numbers plus ``overlap_final`` / ``overlap_previous``: the mean squared cosine of the
    principal angles between this checkpoint's top-3 subspace and the final (previous)
    one's (1 = the same subspace). ``coords`` holds each checkpoint's top-3 coordinates
    for the small-multiples figure; ``positions`` the positions they are for.
    """

    kind = "helix_sweep"
    table: list = field(default_factory=list)
    coords: list = field(default_factory=list)
    ranges: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def _open(spec):
    """(Weights, checkpoint or None) for a spec, a directory or ready Weights."""
    from ..models.registry import open_checkpoint
    from ..models.weights import Weights

    if isinstance(spec, Weights):
        return spec, getattr(spec, "source", None)
    ckpt = open_checkpoint(str(spec))
    return Weights.from_checkpoint(ckpt), ckpt


def helix_models(specs, *, progress: bool = False, **options) -> HelixFamilyResult:
    """:func:`helix` on each of several models (names, ``NAME@REV``, directories or Weights); reads W_pos from each.

    Token comparisons are off unless ``tokens=True`` is passed, so only ``wpe.weight`` is read.

    >>> fam = helix_models(["gpt2", "gpt2-medium"])              # doctest: +SKIP
    >>> [row["share_3"] for row in fam.table]                    # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    specs = list(specs)
    if not specs:
        raise InvalidInputError("no model given; pass one or more --model values or --family")
    _check_options(options)
    options.setdefault("tokens", False)
    results = []
    for spec in tqdm(specs, desc="helix", disable=not progress, leave=False):
        w, _ = _open(spec)
        results.append(helix(w, **options))
    opts = {**results[0].options, "models": [r.model for r in results]}
    return HelixFamilyResult(model=", ".join(r.model for r in results), processing=results[0].processing, options=opts,
                             results=results, table=[summary_row(r) for r in results])


def _step_of(ckpt) -> int | None:
    """The training step a checkpoint was saved at: its revision, its training_log.json, or its directory name."""
    import json
    import re

    if ckpt is None:
        return None
    rev = getattr(ckpt, "revision", None)
    if rev:
        m = re.search(r"(\d+)$", str(rev))
        if m:
            return int(m.group(1))
    path = Path(getattr(ckpt, "path", "."))
    log = path / "training_log.json"
    if log.is_file():
        try:
            step = json.loads(log.read_text()).get("step")
            if isinstance(step, int):
                return step
        except (OSError, ValueError, AttributeError):
            pass
    m = re.search(r"(?:checkpoint|step|ckpt)[-_]?(\d+)$", path.name)
    return int(m.group(1)) if m else None


def sweep_specs(model: str, steps=None, every: int | None = None) -> list[str]:
    """``NAME@STEP`` specs for a run with published checkpoints (the Stanford CRFM runs).

    ``steps``: explicit steps; ``every``: every N-th published checkpoint (always ending
    with the last). Each step is checked against the published list.

    >>> sweep_specs("alias", [0, 1000])
    ['alias@0', 'alias@1000']
    >>> len(sweep_specs("alias", every=100))
    8
    """
    from ..models.registry import resolve

    name, _, _ = str(model).partition("@")
    info = resolve(name).info
    if info is None or not info.checkpoints:
        raise InvalidInputError(
            f"{name} has no published training checkpoints to sweep (the Stanford CRFM runs do: alias, battlestar ...); "
            "for your own checkpoints pass each directory with --model and add --sweep"
        )
    if steps is None and every is None:
        raise InvalidInputError("give the steps to sweep (e.g. 0,1000,10000) or every=N")
    if every is not None:
        if every < 1:
            raise InvalidInputError(f"every must be a positive number of checkpoints (got {every})")
        chosen = list(info.checkpoints[::every])
        if chosen[-1] != info.checkpoints[-1]:
            chosen.append(info.checkpoints[-1])
    else:
        chosen = [int(s) for s in steps]
    specs = [f"{info.name}@{s}" for s in chosen]
    for s in specs:
        resolve(s)  # a step that was never published raises, naming the nearest one
    return specs


def _overlap(A: np.ndarray, B: np.ndarray) -> float:
    """Mean squared cosine of the principal angles between the row spaces of orthonormal A and B."""
    return float(((A @ B.T) ** 2).sum() / min(len(A), len(B)))


def _run_name(labels: list[str]) -> str:
    """What the checkpoints of a sweep have in common: ``alias`` for ``alias@...``, else their common folder."""
    import os

    names = {str(x).split("@")[0] for x in labels}
    if len(names) == 1:
        return names.pop()
    try:
        return os.path.commonpath([str(x) for x in labels]) or ", ".join(labels)
    except ValueError:
        return ", ".join(labels)


def helix_sweep(specs, *, progress: bool = False, **options) -> HelixSweepResult:
    """The helix metrics across a training run's checkpoints, to watch the helix form.

    ``specs``: the checkpoints (``NAME@STEP``, directories, or Weights), in any order;
    they are sorted by training step when every step is known (revision, the directory's
    ``training_log.json``, or a ``checkpoint-N`` name), else kept in the order given. Only
    ``wpe.weight`` is read from each. ``options`` go to :func:`helix` (truncations on,
    sinusoidal comparison and tokens off, small cosine matrices, unless overridden).

    >>> sw = helix_sweep(sweep_specs("alias", [0, 10000, 400000]))   # doctest: +SKIP
    >>> [(r["step"], round(r["share_3"], 3)) for r in sw.table]        # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    specs = list(specs)
    if len(specs) < 2:
        raise InvalidInputError("a sweep needs at least two checkpoints; pass several --model values or --steps")
    _check_options(options)
    opts = {**_defaults(), "tokens": False, "sinusoidal": False, "cosine_size": 16, "n_traces": 0, **options}
    rows, fits = [], []
    for spec in tqdm(specs, desc="helix sweep", disable=not progress, leave=False):
        w, ckpt = _open(spec)
        r, fit = _helix(w, **opts)
        fits.append((r, fit.components[:3], _step_of(ckpt), str(spec)))
    notes = []
    if all(f[2] is not None for f in fits):
        fits.sort(key=lambda f: f[2])
    else:
        notes.append("training steps unknown for some checkpoints; kept in the order given")
    final = fits[-1][1]
    for i, (r, comps, step, spec) in enumerate(fits):
        same = comps.shape == final.shape
        prev = fits[i - 1][1] if i else None
        rows.append({
            "spec": spec, "step": step, **summary_row(r),
            "overlap_final": _overlap(comps, final) if same else None,
            "overlap_previous": _overlap(comps, prev) if prev is not None and prev.shape == comps.shape else None,
        })
    first = fits[0][0]
    return HelixSweepResult(
        model=_run_name([f[0].model for f in fits]), processing=first.processing,
        options={**first.options, "checkpoints": [f[3] for f in fits]},
        table=rows, coords=[f[0].coords for f in fits], ranges=[[f[0].positions[0], f[0].positions[-1] + 1] for f in fits],
        notes=notes,
    )


# ----------------------------------------------------------------------------- summary and figures


def _fmt_period(p) -> str:
    return "none" if p is None else f"{p:.1f}"


def summarize(result) -> list[str]:
    """A few lines saying what the numbers mean (for the CLI and the report page)."""
    if isinstance(result, (HelixFamilyResult, HelixSweepResult)):
        sweep = isinstance(result, HelixSweepResult)
        lines = [f"{len(result.table)} checkpoints of {result.model}:" if sweep else f"{len(result.table)} models:"]
        for row in result.table:
            share = "n/a" if row["share_3"] is None else f"{row['share_3']:.3f}"
            name = (row["step"] if row["step"] is not None else row["spec"]) if sweep else row["model"]
            ov = row.get("overlap_final")
            lines.append(f"  {name}: {share} of the variance in 3 PCs, {row['components_for_90']} PCs for 90%, "
                         f"helix period {_fmt_period(row['helix_period'])} (R² {row['helix_r2']:.3f})"
                         + (f", overlap with the final top-3 {ov:.3f}" if ov is not None else ""))
        return lines + list(getattr(result, "notes", []))
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
