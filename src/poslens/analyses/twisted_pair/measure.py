"""The twisted-pair analysis run end to end: :func:`twisted_pair` and :class:`TwistedPairResult`."""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field

from ...errors import NotApplicableError
from ...models.weights import Weights, as_weights
from ...options import resolve
from ...results import ClaimRow, Result
from .build import ConstructionSummary, build, check_sizes
from .gpt2 import ModelPart
from .experiments import HelixReuse, NearIntersection, NoiseCancellation, helix_reuse, near_intersection, noise_cancellation
from .options import Options
from .curves import curve_stats, make_curve
from .report import result_findings
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
    "(window 51): raw central differences are dominated by row-to-row jitter (their R² is reported too).",
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
    seconds: dict[str, float] = field(default_factory=dict)  # per part; a part reused from an earlier model keeps its time


@functools.lru_cache(maxsize=2)
def _model_free(o: Options, device: str) -> tuple:
    """Everything but the model part (the construction, its checks, sweeps, grid and the claim
    experiments): the same for every model, so a report on several models computes it once.
    Returns its pieces and the seconds each took."""
    run_kw = {"dtype": o.dtype, "device": device}
    grid_spec = {"ns": list(o.grid_n), "ks": list(o.grid_k), "Ms": list(o.grid_M)} if o.grid else None
    secs: dict[str, float] = {}

    def timed(key, fn, *args, **kw):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        secs[key] = time.perf_counter() - t0
        return out

    def construct():
        check_sizes(o.n, o.M, o.k, o.variant)
        cv = make_curve(o.curve, **(o.curve_params or {}))
        con = build(cv, o.n, o.M, o.k, variant=o.variant, gate=o.gate, signal_fraction=o.signal_fraction,
                    period=o.period, stats=curve_stats(cv, o.n))
        ver = verify(con, atol=o.atol, seed=o.seed, **run_kw)
        return cv, con, ver, verify(con, dtype="float32", device=device, atol=o.atol, detail=False)

    cv, con, ver, v32 = timed("construction", construct)
    swept = timed("sweeps", lambda: {
        name: sweep(cv, n=o.n, M=o.M, k=o.k, over=name, values=vals, variant=o.variant, gate=o.gate, atol=o.atol,
                    signal_fraction=o.signal_fraction, period=o.period, **run_kw)
        for name, vals in (("M", o.sweep_M), ("n", o.sweep_n), ("k", o.sweep_k)) if vals})
    rows = timed("grid", lambda: grid(DEFAULT_GRID_CURVES, gate=o.gate, atol=o.atol, **run_kw, **grid_spec)
                 if grid_spec else [])
    noise = near = reuse = None
    if o.claims:
        noise = timed("noise", noise_cancellation, con, o.noise_sigmas, seed=o.seed, **run_kw)
        near = timed("near_intersection", lambda: near_intersection(o.gaps, n=o.n, M=o.M, k=o.k, seed=o.seed,
                                                                    **run_kw) if o.gaps else None)
        reuse = timed("helix_reuse", lambda: helix_reuse(o.reuse_ns, k=o.k, Ms_plain=o.reuse_Ms, **run_kw)
                      if o.reuse_ns else None)
    return cv, con, ver, v32, swept, rows, noise, near, reuse, secs


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
    weights = None if weights is None else as_weights(weights, "twisted_pair")
    if weights is not None and weights.cfg.positional != "learned":  # before the construction's seconds of work
        raise NotApplicableError(f"the twisted-pair analysis of the model's curve reads W_pos, and {weights.label} has "
                                 f"{weights.cfg.positional} positions (no W_pos table); run the construction alone "
                                 "(--no-model; weights=None in Python)")
    grid_spec = {"ns": list(o.grid_n), "ks": list(o.grid_k), "Ms": list(o.grid_M)} if o.grid else None
    gpt2_options = {"layers": None if o.layers is None else list(o.layers), "first_position": o.first_position,
                    "n_components": o.n_components, "scheme": o.scheme, "window": o.window, "device": device,
                    "dtype": model_dtype}
    try:
        hash(o)
        model_free = _model_free
    except TypeError:  # unhashable options (a curve_params dict): computed afresh
        model_free = _model_free.__wrapped__
    cv, con, ver, v32, swept, rows, noise, near, reuse, secs = model_free(o, device)
    secs = dict(secs)
    opts = {"curve": cv.name, "curve_params": dict(cv.params), "n": o.n, "M": o.M, "k": o.k, "variant": o.variant,
            "gate": o.gate, "signal_fraction": o.signal_fraction, "period": o.period, "sweep_M": list(o.sweep_M),
            "sweep_n": list(o.sweep_n), "sweep_k": list(o.sweep_k), "grid": grid_spec, "claims": o.claims,
            "noise_sigmas": list(o.noise_sigmas), "gaps": list(o.gaps), "reuse_ns": list(o.reuse_ns),
            "reuse_Ms": list(o.reuse_Ms), "gpt2_options": gpt2_options, "atol": o.atol, "dtype": o.dtype,
            "seed": o.seed}
    g = None
    if weights is not None:
        from .gpt2 import gpt2_part

        t0 = time.perf_counter()
        g = gpt2_part(weights, seed=o.seed, **gpt2_options)
        secs["model"] = time.perf_counter() - t0

    res = TwistedPairResult(
        model=weights.label if weights is not None else "", processing=tuple(weights.processing) if weights else (),
        options=opts, construction=con.summary(), verification=ver, float32=v32, sweeps=swept, grid=rows,
        noise=noise, near_intersection=near, helix_reuse=reuse, gpt2=g, readings=list(READINGS),
        seconds={key: round(v, 3) for key, v in secs.items()},
    )
    return dataclasses.replace(res, findings=result_findings(res))
