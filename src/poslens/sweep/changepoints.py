"""Where a metric jumps across training, and which checkpoints stand out of their series.

**Jumps** (change points). The series, in training order, is segmented by PELT
(``ruptures``) with the ``linear`` cost: least squares of a straight line in checkpoint
index per segment, so a smooth trend costs little and bends are allowed; segments are at
least ``min_size`` checkpoints. The penalty is ``beta * sigma^2 * log(n)`` (BIC-like),
``sigma`` the noise level: ``1.4826 * MAD(second differences) / sqrt(6)`` (the robust
standard deviation of i.i.d. noise seen through second differences), floored at
``floor`` times the series' range so a noise-free curve is not cut at every bend. A
breakpoint is reported as a **jump** only when the series is discontinuous there: the two
segments' fitted lines, extrapolated to the boundary, differ by more than ``kappa``
standard errors of that difference (from sigma and each line's fit) and by more than
``min_jump`` of the range, and the data themselves step that way across the boundary by
at least half as much (extrapolating two lines across a bend can open a gap of the wrong
sign). A rise spread over one short segment (at most ``min_size`` checkpoints) counts as
one jump, placed at its largest single step. A bend of a smooth curve is not a jump. A
change in the last ``2 .. min_size - 1`` checkpoints, too late for a segment of its own, is an
**open** jump (``"open": True``; its size is how far the last checkpoint lies off the line
through the ``2 * min_size`` before): a mechanism still forming as the history ends.

**Spikes**. A checkpoint that departs from both neighbours in the same direction by more
than ``spike_kappa`` sigma and ``min_jump`` of the range: a single odd checkpoint (a bad
save, a mislabelled branch) rather than a change.

>>> import numpy as np
>>> x = np.r_[np.linspace(0, 0.2, 12), np.linspace(0.9, 1.0, 12)]
>>> [j["index"] for j in jumps(x)["jumps"]]
[12]
>>> jumps(np.log1p(np.arange(24.0)))["jumps"]
[]
"""

from __future__ import annotations

import math

import numpy as np

DEFAULTS = dict(beta=3.0, floor=0.01, kappa=5.0, min_jump=0.1, min_size=3, spike_kappa=6.0, min_abs=0.0)


def describe(params: dict | None = None) -> dict:
    """The detector's statistic, penalty and thresholds, as written into every result."""
    p = {**DEFAULTS, **(params or {})}
    tail = "2" if p["min_size"] <= 3 else f"2 to {p['min_size'] - 1}"
    return {
        "method": "ruptures PELT, cost 'linear' (least-squares line in checkpoint index per segment), "
                  f"min_size {p['min_size']}",
        "penalty": f"beta * sigma^2 * log(n), beta = {p['beta']}",
        "sigma": f"1.4826 * MAD(second differences) / sqrt(6), at least {p['floor']} x the series' range",
        "jump": f"the fitted segments differ at the boundary by > {p['kappa']} standard errors (from sigma) "
                f"and > {p['min_jump']} x range"
                + (f" (and, for a share of attention, by at least {p['min_abs']})" if p.get("min_abs") else ""),
        "open_jump": f"the last {tail} checkpoints each off the line through the {2 * p['min_size']} before "
                     f"by > {p['kappa']} standard errors, the last by > {p['min_jump']} x range, entered by a step over 3x any "
                     "of that line's",
        "spike": f"off both neighbours the same way by > {p['spike_kappa']} sigma and > {p['min_jump']} x range",
        **p,
    }


def _sigma(x: np.ndarray, floor: float) -> float:
    d2 = np.diff(x, 2)
    s = 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / math.sqrt(6) if len(d2) else 0.0
    return max(s, floor * float(np.ptp(x)), 1e-12)


def _line(t: np.ndarray, x: np.ndarray):
    """Least-squares line through (t, x) and the variance factor of its value at any t0
    (the prediction's variance is sigma^2 times ``var(t0)``)."""
    tm = float(t.mean())
    sxx = float(((t - tm) ** 2).sum())
    slope = float(((t - tm) * (x - x.mean())).sum() / sxx) if sxx > 0 else 0.0
    icpt = float(x.mean()) - slope * tm
    m = len(t)
    return (lambda t0: slope * t0 + icpt), (lambda t0: 1.0 / m + ((t0 - tm) ** 2 / sxx if sxx > 0 else 0.0))


def jumps(values, params: dict | None = None) -> dict:
    """Jumps in ``values`` (a series in training order; None/NaN entries are skipped).

    Returns ``{"jumps": [{"index", "size", "z"}], "breakpoints": [...], "sigma"}``; ``index``
    is the position in ``values`` of the first checkpoint after the jump, ``size`` the
    jump (after minus before), ``z`` its size over its standard error (both segments'
    extrapolation errors at the boundary, from sigma). Fewer than ``2 * min_size + 1``
    finite values: no jump can be told apart from noise.
    """
    import ruptures as rpt

    p = {**DEFAULTS, **(params or {})}
    raw = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    idx = np.flatnonzero(np.isfinite(raw))
    x = raw[idx]
    n, ms = len(x), int(p["min_size"])
    out = {"jumps": [], "breakpoints": [], "sigma": None, "n": n}
    if n < 2 * ms + 1 or np.ptp(x) == 0:
        return out
    sigma = _sigma(x, p["floor"])
    t = np.arange(n, dtype=float)
    signal = np.c_[x, t, np.ones(n)]  # ruptures' linear cost regresses column 0 on the others
    bkps = rpt.Pelt(model="linear", min_size=ms, jump=1).fit(signal).predict(pen=p["beta"] * sigma ** 2 * math.log(n))
    edges = [0] + list(bkps)
    segs = [(a, b, *_line(t[a:b], x[a:b])) for a, b in zip(edges[:-1], edges[1:])]
    rng = float(np.ptp(x))

    def gap(left, right, at):
        g = right[2](at) - left[2](at)
        return g, g / (sigma * math.sqrt(left[3](at) + right[3](at)))

    found, last = [], -1  # ``last``: the latest jump's position in x
    i = 0
    while i < len(segs) - 1:
        left, right = segs[i], segs[i + 1]
        g, z = gap(left, right, left[1] - 0.5)
        where, nxt = left[1], i + 1
        # a rise confined to one short middle segment is one jump across it
        if right[1] - right[0] <= ms and i + 2 < len(segs):
            mid = (right[0] + right[1] - 1) / 2
            g2, z2 = gap(left, segs[i + 2], mid)
            if abs(z2) > abs(z):
                g, z, where, nxt = g2, z2, int(math.ceil(mid)), i + 2
        # the data must step the same way: extrapolating two lines across a curve can open a gap of
        # the wrong sign where the series only bends
        span = (left[1] if nxt == i + 2 else segs[nxt][0]) - 1, segs[nxt][0]
        step = x[span[1]] - x[span[0]]
        if (abs(z) > p["kappa"] and abs(g) > p["min_jump"] * rng and abs(g) >= p["min_abs"] and step * g > 0
                and abs(step) >= 0.5 * abs(g)):
            d = np.diff(x[span[0]:span[1] + 1]) * np.sign(g)
            where = span[0] + 1 + int(np.argmax(d))  # the largest single step in the jump's direction
            found.append({"index": int(idx[where]), "size": float(g), "z": float(z)})
            last = where
            i = nxt
        else:
            i += 1
    end = _open_end(x, sigma, rng, p, last_found=last)
    if end:
        found.append({**end, "index": int(idx[end["index"]])})
    out.update(jumps=found, breakpoints=[int(idx[b]) for b in bkps[:-1]], sigma=sigma)
    return out


def _open_end(x: np.ndarray, sigma: float, rng: float, p: dict, last_found: int) -> dict | None:
    """A change in the last checkpoints, too close to the end for a segment of its own (PELT needs
    ``min_size`` after it): the last ``k`` (2 .. min_size - 1) each depart the same way from the line
    through the ``2 * min_size`` before them by more than ``kappa`` prediction standard errors, the
    last by more than ``min_jump`` of the range, and the step into them is at least three times any
    step of that line's window (an accelerating smooth curve steps up gradually, a formation at once)."""
    n, ms = len(x), int(p["min_size"])
    w = 2 * ms
    for k in range(2, ms):
        a = n - k - w
        if a < 0 or last_found >= a:
            continue
        t = np.arange(n, dtype=float)
        pred, var = _line(t[a:n - k], x[a:n - k])
        res = np.array([x[i] - pred(t[i]) for i in range(n - k, n)])
        z = res / (sigma * np.sqrt([1.0 + var(t[i]) for i in range(n - k, n)]))
        sign = np.sign(res[-1])
        first_step = (x[n - k] - x[n - k - 1]) * sign
        base_steps = np.abs(np.diff(x[a:n - k]))
        if (np.all(np.sign(res) == sign) and np.all(np.abs(z) > p["kappa"]) and abs(res[-1]) > p["min_jump"] * rng
                and abs(res[-1]) >= p["min_abs"] and first_step >= 0.5 * abs(res[0])
                and first_step > 3 * float(base_steps.max(initial=0.0))):
            d = np.diff(x[n - k - 1:]) * sign
            return {"index": n - k + int(np.argmax(d)), "size": float(res[-1]), "z": float(z[-1]), "open": True}
    return None


def spikes(values, params: dict | None = None) -> list[dict]:
    """Single checkpoints that stand out of both neighbours in the same direction, by more
    than ``spike_kappa`` sigma and ``min_jump`` of the range (a jump departs from one side
    only; a smooth curve from neither). The first and last checkpoints are never spikes.

    >>> [s["index"] for s in spikes([0, 0.1, 0.2, 0.3, 2.0, 0.5, 0.6, 0.7, 0.8])]
    [4]
    """
    p = {**DEFAULTS, **(params or {})}
    raw = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    idx = np.flatnonzero(np.isfinite(raw))
    x = raw[idx]
    n = len(x)
    if n < 5 or np.ptp(x) == 0:
        return []
    sigma, rng = _sigma(x, p["floor"]), float(np.ptp(x))
    out = []
    for i in range(1, n - 1):
        a, b = x[i] - x[i - 1], x[i] - x[i + 1]
        dev = math.copysign(min(abs(a), abs(b)), a)
        if a * b > 0 and abs(dev) > p["spike_kappa"] * sigma and abs(dev) > p["min_jump"] * rng and abs(dev) >= p["min_abs"]:
            out.append({"index": int(idx[i]), "deviation": float(dev), "z": float(dev / sigma)})
    return out
