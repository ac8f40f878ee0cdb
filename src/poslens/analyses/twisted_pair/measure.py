"""The twisted-pair analysis run end to end: :func:`twisted_pair` and :class:`TwistedPairResult`.

>>> r = twisted_pair(n=128, M=8, k=4, sweep_M=(), sweep_n=(), sweep_k=(), grid=False, claims=False)
>>> r.verification.within_bound, r.construction.n_neurons
(True, 18)
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from ...models.weights import Weights
from ...options import resolve
from ...results import ClaimRow, Result
from .build import ConstructionSummary, build, check_sizes
from .gpt2 import ModelPart
from .experiments import HelixReuse, NearIntersection, NoiseCancellation, helix_reuse, near_intersection, noise_cancellation
from .options import Options
from .curves import curve_stats, make_curve
from .report import result_findings, summary_lines
from .verify import DEFAULT_GRID_CURVES, BoundRow, Verification, grid, sweep, verify

READINGS = [
    "Sentries: M + 1 points s_m = m/M (the text's list {0, 1/(M+1), ..., 1} has M + 2 points and contradicts "
    "'M + 1 sentries' and '2M + 2 neurons'); the bound's 1/(2M) is then half the spacing, and the second form's "
    "1/(2M + 2) is read as the same 1/(2M).",
    "Bound in positions: the post bounds |(x_j - x_i).f'(s)/|f'(s)|^2 - (j - i)/n| by L(1/(2M) + |i-j|/n)|i-j|/n / "
    "|f'(s)|; multiplied by n it bounds the estimate of j - i. L = sup |f''| on a fine grid.",
    "Readout weight C_m / (2 b_m3) per neuron (+ for N+, - for N-), so a pair outputs C_m (x_j - x_i).f'(s_m) as the "
    "text states; its 'C_m b_m3 (N+ - N-)' would scale the output by 2 b_m3^2.",
    "Gates: the text's b_m1 f(s_m).x_i + b_m2 can only isolate a cell where f(s_m).f(t) peaks at t = s_m (|f| "
    "constant, e.g. a circle); gate='fit' (default) also tunes the direction (the text's otherwise unused W_m) by a "
    "max-margin linear program on the samples; gate='dot' keeps f(s_m). Inactive gates are held <= -1 and active "
    ">= +1 with the signal term < signal_fraction (0.5): the text's 'gate < 0 otherwise' would let the signal switch "
    "an inactive neuron on.",
    "Helix variant: the text's second neuron repeats '+ b_m3'; read as '- b_m3' (otherwise nothing cancels). M "
    "sentries on one period of f', reused on every turn; y_i = A x_i + c from helix.fit_linear_ode on the samples, "
    "written by a third head. Its bound uses the spacing T/M and adds |f'(s_eff) - f'(s_m)| |i-j|/n for an f' that is "
    "not exactly periodic.",
    "Input: the sequence [x_j, x_i] (token ids = curve indices, W_E = the samples, W_pos = two slot flags); the "
    "estimate is signed, j - i, read at x_i's position; |i - j| is its absolute value.",
    "Noise 'on the f(s_m).x_i term': Gaussian noise on the subspace the gates read, at the readout position; the "
    "single-neuron readout subtracts the neuron's noise-free activation at j = i (the best a one-neuron reader can do).",
    "GPT-2: W_pos from position 1 (row 0 is an outlier), top 6 principal components, Savitzky-Golay derivatives "
    "(window 51): raw central differences are dominated by row-to-row jitter (their R^2 is reported too).",
]


@dataclass(frozen=True)
class TwistedPairResult(Result):
    """The construction, its verification, the post's claims tested, and the model part."""

    kind = "twisted_pair"
    construction: ConstructionSummary | None = None
    verification: Verification | None = None
    float32: Verification | None = None  # the same construction run in float32 (no profiles)
    sweeps: dict[str, list[BoundRow]] = field(default_factory=dict)  # "M" / "n" / "k" -> one row per value
    grid: list[BoundRow] = field(default_factory=list)
    noise: NoiseCancellation | None = None
    near_intersection: NearIntersection | None = None
    helix_reuse: HelixReuse | None = None
    gpt2: ModelPart | None = None  # the model part (any learned-position model, GPT-2 small first)
    checks: list[ClaimRow] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    readings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def twisted_pair(weights: Weights | None = None, options: Options | None = None, *, device: str = "cpu",
                 model_dtype: str = "float32", **overrides) -> TwistedPairResult:
    """Build, verify and test the construction; look for the mechanism in ``weights`` (if given).

    ``options`` (:class:`~poslens.analyses.twisted_pair.options.Options`; keywords replace its
    fields): ``grid`` runs the grid ``grid_n x grid_k x grid_M`` over the built-in curves;
    empty sweep tuples skip those sweeps; ``claims=False`` skips the three claim experiments.
    ``dtype`` is the Runner's dtype for the construction (float64, so rounding stays far
    below the bound; the main construction is also checked in float32); ``model_dtype`` the
    one ``weights`` run in.

    >>> r = twisted_pair(curve="circle-drift", n=64, M=4, k=2, sweep_M=(), sweep_n=(), sweep_k=(), grid=False,
    ...                  claims=False)
    >>> r.construction.curve.name, r.verification.assumptions_hold
    ('circle-drift', True)
    """
    o = resolve(Options, options, overrides, "twisted_pair")
    curve, curve_params, n, M, k, variant = o.curve, o.curve_params, o.n, o.M, o.k, o.variant
    gate, signal_fraction, period, claims, atol, dtype = o.gate, o.signal_fraction, o.period, o.claims, o.atol, o.dtype
    sweep_M, sweep_n, sweep_k, seed = o.sweep_M, o.sweep_n, o.sweep_k, o.seed
    noise_sigmas, gaps, reuse_ns, reuse_Ms = o.noise_sigmas, o.gaps, o.reuse_ns, o.reuse_Ms
    grid_spec = {"ns": list(o.grid_n), "ks": list(o.grid_k), "Ms": list(o.grid_M)} if o.grid else None
    gpt2_options = {"layers": None if o.layers is None else list(o.layers), "first_position": o.first_position,
                    "n_components": o.n_components, "scheme": o.scheme, "window": o.window, "device": device,
                    "dtype": model_dtype}
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    check_sizes(n, M, k, variant)
    cv = make_curve(curve, **(curve_params or {}))
    stats = curve_stats(cv, n)
    con = build(cv, n, M, k, variant=variant, gate=gate, signal_fraction=signal_fraction, period=period, stats=stats)
    ver = verify(con, dtype=dtype, device=device, atol=atol, seed=seed)
    v32 = verify(con, dtype="float32", device=device, atol=atol, detail=False)
    secs["construction"] = time.perf_counter() - t0
    opts = {"curve": cv.name, "curve_params": dict(cv.params), "n": n, "M": M, "k": k, "variant": variant,
            "gate": gate, "signal_fraction": signal_fraction, "period": period, "sweep_M": list(sweep_M),
            "sweep_n": list(sweep_n), "sweep_k": list(sweep_k), "grid": grid_spec, "claims": claims,
            "noise_sigmas": list(noise_sigmas), "gaps": list(gaps), "reuse_ns": list(reuse_ns), "reuse_Ms": list(reuse_Ms),
            "gpt2_options": gpt2_options, "atol": atol, "dtype": dtype, "seed": seed}

    t0 = time.perf_counter()
    sweeps = {}
    for name, vals in (("M", sweep_M), ("n", sweep_n), ("k", sweep_k)):
        if vals:
            sweeps[name] = sweep(cv, n=n, M=M, k=k, over=name, values=vals, variant=variant, gate=gate,
                                 dtype=dtype, device=device, atol=atol, signal_fraction=signal_fraction, period=period)
    secs["sweeps"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = grid(DEFAULT_GRID_CURVES, gate=gate, dtype=dtype, device=device, atol=atol, **grid_spec) if grid_spec else []
    secs["grid"] = time.perf_counter() - t0

    noise = near = reuse = None
    if claims:
        t0 = time.perf_counter()
        noise = noise_cancellation(con, noise_sigmas, seed=seed, dtype=dtype, device=device)
        secs["noise"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        near = near_intersection(gaps, n=n, M=M, k=k, seed=seed, dtype=dtype, device=device) if gaps else None
        secs["near_intersection"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        reuse = helix_reuse(reuse_ns, k=k, Ms_plain=reuse_Ms, dtype=dtype, device=device) if reuse_ns else None
        secs["helix_reuse"] = time.perf_counter() - t0

    g = None
    if weights is not None:
        from .gpt2 import gpt2_part

        t0 = time.perf_counter()
        g = gpt2_part(weights, seed=seed, **gpt2_options)
        secs["model"] = time.perf_counter() - t0

    res = TwistedPairResult(
        model=weights.label if weights is not None else "", processing=tuple(weights.processing) if weights else (),
        options=opts, construction=con.summary(), verification=ver, float32=v32, sweeps=sweeps, grid=rows,
        noise=noise, near_intersection=near, helix_reuse=reuse, gpt2=g, readings=list(READINGS),
        seconds={key: round(v, 3) for key, v in secs.items()},
    )
    return dataclasses.replace(res, findings=result_findings(res))
def summarize(result: TwistedPairResult) -> list[str]:
    """A few lines for the terminal and the report page."""
    return summary_lines(result)
