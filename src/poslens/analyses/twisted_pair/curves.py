"""Smooth curves f: [0, 1] -> R^d for the twisted-pair construction, and the checks it relies on.

The construction of the twisted-pair post needs f to be C^2 (its error bound uses L, the Lipschitz
constant of f'), to have a non-vanishing derivative (the readout divides by |f'(s_m)|^2)
and to be injective (a sentry gate reads "how close is x_i to f(s_m)", which is ambiguous
where the curve meets itself). :func:`curve_stats` measures all three numerically and
raises :class:`~poslens.errors.InvalidInputError` saying where a check fails.

Built-in curves (``make_curve(name, **params)``):

* ``helix``: (r cos 2 pi w t, r sin 2 pi w t, drift t), ``turns`` w; f' is periodic (period 1/w).
* ``circle-drift``: one turn of a circle of radius r plus a linear drift t * drift (3-D).
* ``random``: a random smooth curve in ``dim`` dimensions (a few Fourier modes with
  amplitudes falling as 1/k^2, plus a linear trend), seeded.
* ``loop``: the nodal cubic (u^2 - 1, u (u^2 - 1), gap u, lift (u^2 - 1)^2), u = 3t - 1.5,
  which crosses itself at u = +-1 (t = 1/6 and 5/6) when ``gap`` = 0 and passes within
  2 gap of itself otherwise.

Any callable ``t [N] -> [N, d]`` is accepted too (``make_curve(fn)``, or
``"module:function"`` / ``"path/file.py:function"`` from the command line).

>>> c = make_curve("helix", turns=1.0)
>>> s = curve_stats(c, n=256)
>>> round(s.L, 2), s.dim                    # |f''| = r (2 pi)^2 for a unit helix of one turn
(39.48, 3)
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import InvalidInputError, suggest

CURVES = ("helix", "circle-drift", "random", "loop")


@dataclass(frozen=True)
class Curve:
    """A named curve ``fn(t [N]) -> [N, d]`` with the parameters it was made with.

    ``period`` is the period of f' in t when it is known exactly (the helix), else None.
    """

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    params: dict[str, float] = field(default_factory=dict)
    period: float | None = None

    def __call__(self, t) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        try:
            out = self.fn(t)
        except Exception as exc:  # a user's function: report what it did, not a traceback
            raise InvalidInputError(
                f"curve '{self.name}' raised {type(exc).__name__} ({exc}) when called on an array of {len(t)} "
                "values of t; it must accept a 1-D numpy array t and return an array of shape [len(t), d]"
            ) from exc
        out = np.asarray(out, dtype=np.float64) if not isinstance(out, np.ndarray) else out.astype(np.float64)
        if out.ndim != 2 or out.shape[0] != len(t) or out.shape[1] < 1:
            raise InvalidInputError(
                f"curve '{self.name}' returned shape {tuple(out.shape)} for {len(t)} values of t; "
                f"it must return shape [{len(t)}, d] (one row f(t) per value of t)"
            )
        if not np.isfinite(out).all():
            bad = float(t[np.flatnonzero(~np.isfinite(out).all(1))[0]])
            raise InvalidInputError(f"curve '{self.name}' is not finite at t={bad:.4g}; it must be defined on all of [0, 1]")
        return out

    def describe(self, stats: CurveStats) -> CurveInfo:
        """The curve's name and parameters with its sampled statistics ``stats``, for a result."""
        return CurveInfo(name=self.name, params=dict(self.params), period_of_derivative=self.period, L=stats.L,
                         L_at=stats.L_at, speed_min=stats.speed_min, speed_max=stats.speed_max,
                         closest_approach=stats.closest_approach, dim=stats.dim)


# ----------------------------------------------------------------------------- built-in curves


def helix(radius: float = 1.0, turns: float = 1.0, drift: float = 1.0) -> Curve:
    """A helix around the third axis; ``turns`` full turns over t in [0, 1]."""
    w = 2 * np.pi * turns

    def f(t):
        return np.c_[radius * np.cos(w * t), radius * np.sin(w * t), drift * t]

    return Curve("helix", f, {"radius": radius, "turns": turns, "drift": drift}, 1.0 / turns if turns else None)


def circle_drift(radius: float = 1.0, drift: tuple[float, float, float] = (0.3, 0.0, 0.5)) -> Curve:
    """One turn of a circle in the first two axes, plus the linear drift ``t * drift``."""
    dv = np.asarray(drift, dtype=np.float64)
    if dv.shape != (3,):
        raise InvalidInputError(f"circle-drift takes a 3-vector drift; got {tuple(np.shape(drift))}")

    def f(t):
        return np.c_[radius * np.cos(2 * np.pi * t), radius * np.sin(2 * np.pi * t), np.zeros_like(t)] + t[:, None] * dv

    return Curve("circle-drift", f, {"radius": radius, "drift": dv.tolist()}, 1.0)


def random_curve(dim: int = 6, modes: int = 4, seed: int = 0, trend: float = 1.0) -> Curve:
    """A random smooth curve: Fourier modes k = 1..modes with N(0, 1)/k^2 amplitudes, plus ``trend`` * t * u."""
    if dim < 2 or modes < 1:
        raise InvalidInputError(f"a random curve needs dim >= 2 and modes >= 1 (got dim={dim}, modes={modes})")
    rng = np.random.default_rng(seed)
    k = np.arange(1, modes + 1, dtype=np.float64)
    a = rng.normal(size=(modes, dim)) / k[:, None] ** 2
    b = rng.normal(size=(modes, dim)) / k[:, None] ** 2
    u = rng.normal(size=dim)
    u *= trend / np.linalg.norm(u)

    def f(t):
        ph = 2 * np.pi * t[:, None] * k[None, :]
        return np.cos(ph) @ a + np.sin(ph) @ b + t[:, None] * u

    return Curve("random", f, {"dim": dim, "modes": modes, "seed": seed, "trend": trend})


def loop(gap: float = 0.0, lift: float = 1.0) -> Curve:
    """The nodal cubic (u^2 - 1, u^3 - u), u = 3t - 1.5, lifted into 4-D; it crosses itself at
    t = 1/6 and 5/6 unless ``gap`` (the third coordinate, gap * u) moves the branches apart.

    The fourth coordinate ``lift`` (u^2 - 1)^2 puts every stretch of the curve on the
    outside of its convex hull except at the crossing, so the gates' margins are set by
    the gap there and by the sampling elsewhere: the near-intersection is the only weak spot.
    """

    def f(t):
        u = 3 * t - 1.5
        x = u * u - 1
        return np.c_[x, u * x, gap * u, lift * x * x]

    return Curve("loop", f, {"gap": gap, "lift": lift})


_BUILDERS = {"helix": helix, "circle-drift": circle_drift, "random": random_curve, "loop": loop}


def _load_callable(spec: str) -> Callable:
    mod_name, _, fn_name = spec.rpartition(":")
    if not mod_name or not fn_name:
        raise InvalidInputError(
            f"unknown curve '{spec}'{suggest(spec, CURVES)}; use one of {', '.join(CURVES)}, "
            "or 'module:function' / 'file.py:function'"
        )
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise InvalidInputError(f"curve file {path} does not exist")
            s = importlib.util.spec_from_file_location(f"_poslens_curve_{path.stem}", path)
            module = importlib.util.module_from_spec(s)
            s.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(f"cannot import curve module '{mod_name}' ({type(exc).__name__}: {exc})") from exc
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise InvalidInputError(f"'{mod_name}' has no function '{fn_name}' to use as a curve")
    return fn


def make_curve(spec: str | Curve | Callable, **params) -> Curve:
    """A :class:`Curve` from a built-in name (with ``params``), a Curve, a callable, or 'module:function'.

    >>> make_curve("loop", gap=0.1).params
    {'gap': 0.1, 'lift': 1.0}
    >>> make_curve(lambda t: np.c_[t, t ** 2]).name
    '<lambda>'
    """
    if isinstance(spec, Curve):
        return spec
    if callable(spec):
        return Curve(getattr(spec, "__name__", "callable"), spec, dict(params))
    spec = str(spec)
    if spec in _BUILDERS:
        try:
            return _BUILDERS[spec](**params)
        except TypeError as exc:
            raise InvalidInputError(f"bad parameter for curve '{spec}' ({exc})") from exc
    fn = _load_callable(spec)
    return Curve(spec, fn, dict(params))


# ----------------------------------------------------------------------------- numerical checks


def derivative(curve: Curve, t: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """f'(t) by second-order finite differences that stay inside [0, 1] (one-sided at the ends)."""
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    out = np.empty((len(t), curve(np.array([0.5])).shape[1]))
    lo, hi, mid = t - h < 0, t + h > 1, (t - h >= 0) & (t + h <= 1)
    if mid.any():
        out[mid] = (curve(t[mid] + h) - curve(t[mid] - h)) / (2 * h)
    if lo.any():
        out[lo] = (-3 * curve(t[lo]) + 4 * curve(t[lo] + h) - curve(t[lo] + 2 * h)) / (2 * h)
    if hi.any():
        out[hi] = (3 * curve(t[hi]) - 4 * curve(t[hi] - h) + curve(t[hi] - 2 * h)) / (2 * h)
    return out


def _lipschitz_of_derivative(curve: Curve, n_grid: int) -> tuple[float, float]:
    """(max |f'(a) - f'(b)| / |a - b| over neighbouring grid points, where it is attained)."""
    t = np.linspace(0.0, 1.0, n_grid + 1)
    d1 = np.gradient(curve(t), t, axis=0, edge_order=2)
    slopes = np.linalg.norm(np.diff(d1, axis=0), axis=1) / np.diff(t)
    a = int(slopes.argmax())
    return float(slopes[a]), float(0.5 * (t[a] + t[a + 1]))


@dataclass(frozen=True)
class CurveStats:
    """What the construction needs to know about a curve sampled at x_i = f(i/n), i = 0..n."""

    X: np.ndarray  # [n + 1, d]
    L: float  # Lipschitz constant of f' (sup |f''|), numerically
    L_at: float  # where |f''| is largest
    speed_min: float
    speed_max: float
    closest_approach: Approach  # the curve's nearest return to itself
    dim: int


@dataclass(frozen=True)
class Approach:
    """Where a curve comes closest to itself: f(t1) and f(t2), ``distance`` apart, at a chord-to-arc
    ``ratio``; all None for a curve too short to return."""

    t1: float | None
    t2: float | None
    distance: float | None
    ratio: float | None


@dataclass(frozen=True)
class CurveInfo:
    """A curve as a result records it: name, parameters, the period of f' when known, the
    Lipschitz constant of f' (``L``, largest at ``L_at``), the speed's range, the closest
    approach and the dimension."""

    name: str
    params: dict[str, float | list[float]]  # circle-drift's drift is a 3-vector
    period_of_derivative: float | None
    L: float
    L_at: float
    speed_min: float
    speed_max: float
    closest_approach: Approach
    dim: int


def closest_approach(curve: Curve, min_separation: float = 0.1, n_grid: int = 512) -> Approach:
    """Where the curve comes back closest to itself: the pair f(t1), f(t2) (|t1 - t2| >=
    ``min_separation``) with the smallest chord-to-arc ratio |f(t1) - f(t2)| / arc(t1, t2),
    then refined locally to the smallest distance.

    ``ratio`` near 0 means the curve (nearly) meets itself there; for a curve that never
    comes back (a short arc) the ratio is close to 1.
    """
    from scipy.optimize import minimize
    from scipy.spatial.distance import cdist

    t = np.linspace(0.0, 1.0, n_grid + 1)
    X = curve(t)
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(X, axis=0), axis=1))]
    far = np.abs(t[:, None] - t[None, :]) >= min_separation
    if not far.any():
        return Approach(None, None, None, None)
    D = cdist(X, X)
    R = np.where(far, D / np.maximum(np.abs(arc[:, None] - arc[None, :]), 1e-300), np.inf)
    a, b = sorted(np.unravel_index(int(R.argmin()), R.shape))
    step = 3.0 / n_grid

    def dist(z):
        return float(np.sum((curve(z[:1]) - curve(z[1:])) ** 2))

    box = [(max(0.0, t[a] - step), min(1.0, t[a] + step)), (max(0.0, t[b] - step), min(1.0, t[b] + step))]
    opt = minimize(dist, np.array([t[a], t[b]]), method="Nelder-Mead", bounds=box,
                   options={"xatol": 1e-10, "fatol": 1e-20, "maxiter": 600})
    if opt.fun < D[a, b] ** 2:  # the refinement came closer than the grid pair
        return Approach(*(float(v) for v in opt.x), float(np.sqrt(opt.fun)), float(R[a, b]))
    return Approach(float(t[a]), float(t[b]), float(D[a, b]), float(R[a, b]))


def curve_stats(curve: Curve, n: int, *, n_grid: int | None = None, min_separation: float = 0.1,
                injective_tol: float = 1e-6) -> CurveStats:
    """Sample ``curve`` at i/n and check the construction's assumptions; raise where they fail.

    * smoothness: L (sup |f''|) is estimated on grids of N and N/2 intervals; if it grows
      by more than 1.5x when the grid is refined, f' has a kink or a jump there (not C^2).
    * speed: |f'| must stay away from 0 (the readout divides by |f'(s_m)|^2).
    * injectivity: the curve must not return to within ``injective_tol`` (relative to its
      length) of itself at parameters ``min_separation`` or more apart.
    """
    if n < 2:
        raise InvalidInputError(f"n must be at least 2 (got {n})")
    X = curve(np.arange(n + 1) / n)
    N = int(n_grid or max(8192, 8 * n))
    L, L_at = _lipschitz_of_derivative(curve, N)
    L_half, _ = _lipschitz_of_derivative(curve, N // 2)
    scale = float(np.ptp(X, axis=0).max()) or 1.0
    if L > 1.5 * L_half and L > 1e-6 * scale:
        raise InvalidInputError(
            f"curve '{curve.name}' is not smooth enough: the Lipschitz constant of f' grows from {L_half:.4g} to "
            f"{L:.4g} when the grid is refined, so f' has a kink or jump near t={L_at:.4f}; the construction's "
            "bound needs a twice-differentiable curve"
        )
    tt = np.linspace(0.0, 1.0, 2049)
    speed = np.linalg.norm(derivative(curve, tt), axis=1)
    length = float(np.trapezoid(speed, tt)) if hasattr(np, "trapezoid") else float(np.trapz(speed, tt))
    if speed.min() <= 1e-9 * max(length, 1e-300):
        raise InvalidInputError(
            f"curve '{curve.name}' stops (f'(t) = 0) near t={tt[int(speed.argmin())]:.4f}; the distance readout "
            "divides by |f'(s_m)|^2, so f' must not vanish"
        )
    ca = closest_approach(curve, min_separation)
    if ca.distance is not None and ca.distance <= injective_tol * length:
        raise InvalidInputError(
            f"curve '{curve.name}' is not injective: f({ca.t1:.4f}) = f({ca.t2:.4f}) (distance {ca.distance:.2g}); "
            "a sentry gate cannot tell these two stretches apart, so make the curve pass by itself at a distance"
        )
    return CurveStats(X=X, L=L, L_at=L_at, speed_min=float(speed.min()), speed_max=float(speed.max()),
                      closest_approach=ca, dim=int(X.shape[1]))
