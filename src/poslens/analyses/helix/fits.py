"""Sinusoid and helix fits to a curve, and the periods of its strongest oscillations.

:func:`fit_sinusoid` fits one frequency shared by every column (periodogram peak, then a
bounded least-squares refinement); :func:`fit_helix` reads a helix's radius, pitch, tilt
and turns from that fit; :func:`dominant_periods` lists the strongest periods, pooled and
per column; :func:`short_period_share` how much variance lies at the shortest periods."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InvalidInputError


@dataclass(frozen=True)
class SinusoidFit:
    """``Y(t) ~ offset + slope (t - t0) + cos cos(omega t) + sin sin(omega t)``, one value per column
    of Y in ``offset`` .. ``sin``; ``r2`` is the share of Y's variance explained."""

    omega: float
    period: float  # positions per cycle, 2 pi / omega
    t0: float
    offset: list[float]
    slope: list[float]
    cos: list[float]
    sin: list[float]
    r2: float


@dataclass(frozen=True)
class HelixFit(SinusoidFit):
    """A sinusoid fit read as a helix: see :func:`fit_helix` for each field."""

    radius: float
    semi_axes: list[float]
    ellipticity: float
    rise_per_position: float
    pitch: float
    in_plane_drift: float
    axis_tilt_deg: float
    axis: list[float] | None  # unit vector along the rise; None for a flat curve
    turns: float


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


def fit_sinusoid(Y: np.ndarray, t: np.ndarray | None = None) -> SinusoidFit:
    """Fit ``Y(t) ~ offset + slope (t - t0) + u cos(w t) + v sin(w t)`` (one frequency shared by every column).

    The frequency starts at the peak of the zero-padded periodogram of the linearly
    detrended columns and is refined by a bounded 1-D least-squares search (the model is
    linear in everything else), so a period is recovered to far better than one FFT bin.

    >>> t = np.arange(1.0, 500.0)
    >>> round(fit_sinusoid(np.sin(2 * np.pi * t / 37.3) + 0.01 * t, t).period, 6)
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
    return SinusoidFit(omega=w, period=float(2 * np.pi / w), t0=t0, offset=coef[0].tolist(),
                       slope=coef[1].tolist(), cos=coef[2].tolist(), sin=coef[3].tolist(),
                       r2=1 - ss_res / ss_tot if ss_tot > 0 else float("nan"))


def fit_helix(Y: np.ndarray, t: np.ndarray | None = None) -> HelixFit:
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
    >>> round(h.radius, 6), round(h.period, 6), round(h.pitch, 6)
    (3.0, 250.0, 1.0)
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[1] < 2:
        raise InvalidInputError(f"a helix fit needs a curve with at least 2 coordinates; got shape {Y.shape}")
    t = np.arange(len(Y), dtype=np.float64) if t is None else np.asarray(t, dtype=np.float64)
    s = fit_sinusoid(Y, t)
    a, u, v = np.array(s.slope), np.array(s.cos), np.array(s.sin)
    plane = np.c_[u, v]
    U, sv, _ = np.linalg.svd(plane, full_matrices=False)
    basis = U[:, sv > 1e-12 * max(sv.max(), 1e-300)]
    a_par = basis @ (basis.T @ a)
    a_perp = a - a_par
    rise = float(np.linalg.norm(a_perp))
    speed = float(np.linalg.norm(a))
    span = float(t.max() - t.min())
    nan = float("nan")
    return HelixFit(
        **vars(s), radius=float(np.sqrt((sv**2).sum() / 2)), semi_axes=sv.tolist(),
        ellipticity=float(sv[1] / sv[0]) if sv[0] > 0 else nan, rise_per_position=rise, pitch=rise * s.period,
        in_plane_drift=float(np.linalg.norm(a_par)),
        axis_tilt_deg=float(np.degrees(np.arccos(min(1.0, rise / speed)))) if speed > 0 else nan,
        axis=(a_perp / rise).tolist() if rise > 0 else None, turns=span / s.period,
    )


def short_period_share(W: np.ndarray, short: float = 4.0) -> dict:
    """Share of the variance of the rows ``W [n, d]`` (consecutive positions) that lies at
    periods of at most ``short`` positions: what lets attention tell neighbours apart. A
    smooth helix has almost none (GPT-2 small's W_pos: 0.15%).

    >>> t = np.arange(256)[:, None]
    >>> W = np.hstack([2 * np.cos(2 * np.pi * t / 128), np.cos(np.pi * t)])  # variances 2 and 1
    >>> round(short_period_share(W)["share"], 2)
    0.33
    """
    W = np.asarray(W, dtype=np.float64)
    W = W - W.mean(0)
    n = len(W)
    # the spectrum of the linearly detrended rows: a trend (a helix's pitch) is a long period,
    # and left in it would leak into every bin through the jump between the last row and the first
    Z = _detrend(W, np.arange(n, dtype=np.float64))
    power = np.abs(np.fft.rfft(Z, axis=0)) ** 2
    k = np.arange(power.shape[0])
    # one-sided spectrum: every bin but DC and (for even n) Nyquist stands for two frequencies
    power[(k > 0) & (2 * k != n)] *= 2
    total = n * float((W ** 2).sum())  # Parseval: the variance of the rows themselves, trend included
    short_bins = (k > 0) & (n <= short * k)
    return {"period": float(short), "share": float(power[short_bins].sum() / total) if total > 0 else float("nan")}


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
    span = float(t.max() - t.min())
    fits = [fit_sinusoid(Y[:, j], t) for j in range(Y.shape[1])]
    # a period longer than the range is an extrapolation from less than one cycle
    by_col = [{"column": j, "period": f.period, "cycles": span / f.period, "r2": f.r2} for j, f in enumerate(fits)]
    return {"pooled": pooled, "by_column": by_col}

