"""Sentry cells and the linear gates that isolate them, for the twisted-pair construction.

Each sentry's gate must be positive on the sample points of its cell (the points whose
nearest sentry it is) and negative on every other point, with a margin. A linear gate
exists exactly when the cell's points are linearly separable from the rest; the widest
margin comes from a small linear program (scipy's HiGHS), solved on a growing subset of
the outside points so a long curve costs a few small LPs rather than one big one.

>>> import numpy as np
>>> t = np.linspace(0, 1, 41)
>>> arc = np.c_[np.cos(2 * np.pi * 0.7 * t), np.sin(2 * np.pi * 0.7 * t)]
>>> w, b, delta = fit_gate(arc, np.abs(t - 0.5) < 0.1)
>>> bool(delta > 0)
True
"""

from __future__ import annotations

import numpy as np

from ...errors import InvalidInputError


def sentry_layout(n: int, M: int, variant: str = "plain", period: float | None = None):
    """Sentry locations, each point's cell (nearest sentry) and its effective sentry location.

    Plain: M + 1 sentries s_m = m / M; point i belongs to the nearest (ties to the lower m).
    Helix: M sentries s_m = m T / M on one period T of f'; point i belongs to the sentry
    nearest in phase, and its effective sentry is s_m + (a whole number of periods).
    Returns (t_sentries [n_s], cell [n + 1], s_eff [n + 1], spacing).
    """
    t = np.arange(n + 1) / n
    if variant == "plain":
        cell = np.floor(t * M + 0.5 - 1e-12).astype(int)
        s = np.arange(M + 1) / M
        return s, cell, s[cell], 1.0 / M
    T = float(period)
    u = t / T * M  # position in units of the sentry spacing
    r = np.floor(u + 0.5 - 1e-12)
    cell = (r % M).astype(int)
    return np.arange(M) * T / M, cell, r * T / M, T / M


def _gate_lp(Z: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Max-margin separation of Z[inside] from Z[~inside]: (w, b, delta) with |w|_inf <= 1."""
    from scipy.optimize import linprog

    n, d = Z.shape
    sgn = np.where(inside, -1.0, 1.0)[:, None]
    # inside: -(w.z + b) + delta <= 0 ; outside: (w.z + b) + delta <= 0
    A = np.c_[sgn * Z, sgn, np.ones((n, 1))]
    res = linprog(np.r_[np.zeros(d + 1), -1.0], A_ub=A, b_ub=np.zeros(n),
                  bounds=[(-1, 1)] * d + [(None, None), (None, 1.0)], method="highs")
    if res.status != 0:  # pragma: no cover - the LP is always feasible (w = 0, b = 0, delta = 0)
        raise InvalidInputError(f"the gate linear program failed ({res.message})")
    return res.x[:d], float(res.x[d]), float(res.x[d + 1])


def _gate_lp_cuts(Z: np.ndarray, inside: np.ndarray, start: int = 64, add: int = 64) -> tuple[np.ndarray, float, float]:
    """:func:`_gate_lp` solved on a growing subset of the outside points (cutting planes).

    Starts from the cell and its ``start`` nearest outside points, then adds the most
    violated outside points until none is violated. The subset's optimum is then optimal
    for all points (its feasible set contains the full problem's), at a fraction of the cost.
    """
    from scipy.spatial import cKDTree

    out_idx = np.flatnonzero(~inside)
    if len(out_idx) <= start + add:
        return _gate_lp(Z, inside)
    cell = Z[inside]
    d, _ = cKDTree(cell).query(Z[out_idx])
    active = set(out_idx[np.argsort(d)[:start]].tolist())
    in_idx = np.flatnonzero(inside)
    while True:
        sub = np.r_[in_idx, np.fromiter(active, int)]
        w, b, delta = _gate_lp(Z[sub], inside[sub])
        viol = Z[out_idx] @ w + b + delta
        over = viol > 1e-12 * max(1.0, abs(delta))
        bad = [i for i in out_idx[over][np.argsort(-viol[over])] if i not in active][:add]
        if not bad:
            return w, b, delta
        active.update(bad)


def fit_gate(points: np.ndarray, inside: np.ndarray, method: str = "fit", direction: np.ndarray | None = None):
    """A linear gate g(x) = w . x + b with g >= delta on ``points[inside]`` and <= -delta elsewhere.

    Returns (w, b, delta) in the points' own coordinates; delta <= 0 means no such gate.
    ``method="dot"`` keeps the direction fixed (the post's f(s_m)) and tunes only b.
    """
    P = np.asarray(points, dtype=np.float64)
    if inside.all():
        return np.zeros(P.shape[1]), 1.0, 1.0
    if not inside.any():
        return np.zeros(P.shape[1]), -1.0, 1.0
    if method == "dot":
        w = np.asarray(direction, dtype=np.float64)
        proj = P @ w
        lo, hi = proj[inside].min(), proj[~inside].max()
        return w, -0.5 * (lo + hi), 0.5 * (lo - hi)
    mu = P.mean(0)
    sd = float(np.sqrt(((P - mu) ** 2).sum(1).mean())) or 1.0
    w, b, delta = _gate_lp_cuts((P - mu) / sd, inside)
    return w / sd, b - float(w @ mu) / sd, delta
