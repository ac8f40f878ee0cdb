"""PCA of a matrix's rows and least-squares linear ODEs along a sampled curve.

The building blocks of the helix analysis that other analyses import too (through
:mod:`poslens.analyses.helix`, which re-exports them): :func:`pca` and its
:class:`PCAFit`, :func:`variance_spectrum`, :func:`components_for`, and
:func:`fit_linear_ode` (f' = A f + c by finite differences, with the discretisation bias
of the scheme removed from A's eigenvalues).

>>> fit = pca(np.random.default_rng(0).normal(size=(50, 8)), n_components=3)
>>> fit.components.shape, fit.projected.shape
((3, 8), (50, 3))
>>> t = np.arange(200.0)
>>> X = np.c_[np.cos(2 * np.pi * t / 40), np.sin(2 * np.pi * t / 40), 0.01 * t]
>>> ode = fit_linear_ode(X)
>>> round(ode.r2, 6), round(ode.periods[0], 3)
(1.0, 40.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.linalg

from ...errors import InvalidInputError


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
    if n <= d:
        # G = Xc Xc^T = U S^2 U^T, so the components are Xc^T U / S.
        safe = np.where(sv > 0, sv, 1.0)
        comps = (top_vecs.T @ Xc) / safe[:, None]
    else:
        comps = top_vecs.T
    flip = np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])
    comps = comps * np.where(flip == 0, 1.0, flip)[:, None]
    return PCAFit(components=comps, mean=mean, variance_ratio=top_vals / total, projected=Xc @ comps.T,
                  singular_values=sv, total_variance=total, center=bool(center), gram=G)


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


@dataclass(frozen=True)
class OdeFit:
    """A least-squares fit of f' ~ A f + c along a sampled curve: see :func:`fit_linear_ode`.
    Eigenvalues are [re, im] pairs; ``range`` ([start, stop) positions) is set where the
    curve was a slice of a longer one."""

    scheme: str
    dt: float
    window: int | None  # the Savitzky-Golay window; None for finite differences
    n_samples: int
    A: list[list[float]]
    c: list[float]
    r2: float
    r2_per_dim: list[float]
    eigenvalues: list[list[float]]
    A_continuous: list[list[float]] | None
    eigenvalues_continuous: list[list[float]]
    frequencies: list[float]  # radians per unit time, largest first
    periods: list[float]  # 2 pi / frequency
    range: list[int] | None = None


def fit_linear_ode(X: np.ndarray, dt: float = 1.0, scheme: str = "central", window: int = 51) -> OdeFit:
    """Least-squares fit of dX/dt ~ X A^T + c along a sampled curve ``X [n, k]`` (rows = time steps).

    ``scheme``: "central" differences (x[t+1] - x[t-1]) / 2dt at t = 1..n-2 (default),
    "forward" (x[t+1] - x[t]) / dt, or "savgol": a Savitzky-Golay derivative (cubic, odd
    ``window``) of the curve and the smoothed curve as regressor, for noisy curves such as
    a trained W_pos whose position-to-position jitter swamps raw differences.

    The :class:`OdeFit` holds ``A`` (k x k), ``c`` (k), ``r2`` (share of the derivative's variance the fit
    explains, pooled over dimensions), ``r2_per_dim``, ``eigenvalues`` of A as [re, im]
    pairs, ``A_continuous`` and ``eigenvalues_continuous`` (A with the scheme's
    discretisation bias removed; equal to A for savgol), ``frequencies`` (radians per unit
    time, one per rotating pair, largest first) and the implied ``periods`` = 2 pi / frequency.

    >>> t = np.arange(300.0)
    >>> round(fit_linear_ode(np.c_[np.cos(t / 10), np.sin(t / 10)], scheme="forward").periods[0], 4)
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
    return OdeFit(
        scheme=scheme, dt=float(dt), window=window if scheme == "savgol" else None, n_samples=int(len(F)),
        A=A.tolist(), c=c.tolist(), r2=r2, r2_per_dim=r2_dim, eigenvalues=[[float(z.real), float(z.imag)] for z in lam],
        A_continuous=None if M is None else M.tolist(),
        eigenvalues_continuous=[[float(z.real), float(z.imag)] for z in mu],
        frequencies=freqs, periods=[float(2 * np.pi / w) for w in freqs],
    )

