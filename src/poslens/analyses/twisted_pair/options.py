"""The twisted-pair analysis's options, each default declared once (the CLI's flags and the
report's ``--set twisted_pair.*`` come from here); light to import.

>>> Options().M, Options().grid_n
(32, (128, 512))
>>> Options(scheme="spline")
Traceback (most recent call last):
poslens.errors.InvalidInputError: scheme must be one of savgol, central; got 'spline'
"""

from __future__ import annotations

from dataclasses import field

from ...errors import InvalidInputError
from ...options import check_choices, options_class

GATES = ("fit", "dot")
SCHEMES = ("savgol", "central")
DTYPES = ("float64", "float32")
VARIANTS = ("plain", "helix")


@options_class
class Options:
    curve: str = field(default="helix", metadata={
        "help": "helix, circle-drift, random, loop, or MODULE:FUNCTION / FILE.py:FUNCTION (t [N] -> [N, d])"})
    curve_params: dict[str, float] | None = field(default=None, metadata={
        "help": "the curve's parameters (turns, gap, drift ...)"})
    n: int = field(default=512, metadata={"help": "points x_i = f(i/n), i = 0..n"})
    M: int = field(default=32, metadata={"help": "sentry gaps: M + 1 sentries (per period in the helix variant: M)"})
    k: int = field(default=8, metadata={"help": "largest |i - j| estimated"})
    variant: str = field(default="plain", metadata={"help": "gates on x_i (plain) or on y_i = A x_i + c ~ f'(i/n) with sentries reused every period (helix)",
                                                    "choices": VARIANTS})
    gate: str = field(default="fit", metadata={
        "help": "gate direction: tuned by a max-margin LP (fit) or the post's literal f(s_m) (dot)", "choices": GATES})
    signal_fraction: float = field(default=0.5, metadata={
        "help": "largest signal term, as a fraction of the gate margin"})
    period: float | None = field(default=None, metadata={
        "help": "period of f' in t for the helix variant (default: the curve's own)"})
    sweep_M: tuple[int, ...] = field(default=(4, 8, 16, 32, 64), metadata={"help": "M values to sweep (empty: skip)"})
    sweep_n: tuple[int, ...] = field(default=(128, 256, 512, 1024), metadata={"help": "n values to sweep (empty: skip)"})
    sweep_k: tuple[int, ...] = field(default=(1, 2, 4, 8, 16), metadata={"help": "k values to sweep (empty: skip)"})
    grid: bool = field(default=True, metadata={"help": "verify every (curve, n, k, M) of the grid"})
    grid_n: tuple[int, ...] = field(default=(128, 512), metadata={"help": "n values of the grid"})
    grid_k: tuple[int, ...] = field(default=(2, 8), metadata={"help": "k values of the grid"})
    grid_M: tuple[int, ...] = field(default=(8, 32), metadata={"help": "M values of the grid"})
    claims: bool = field(default=True, metadata={
        "help": "test the post's claims (noise cancellation, near-intersections, helix reuse)"})
    noise_sigmas: tuple[float, ...] = field(default=(0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6), metadata={
        "help": "common-mode noise levels, in units of the median gate margin"})
    gaps: tuple[float, ...] = field(default=(0.1, 1e-2, 1e-3, 1e-4, 1e-5), metadata={
        "help": "half-distances between the loop curve's branches at its crossing"})
    reuse_ns: tuple[int, ...] = field(default=(64, 128, 192, 256, 512, 1024), metadata={
        "help": "n values for the sentry-reuse experiment (helix of period 128 positions; empty: skip)"})
    reuse_Ms: tuple[int, ...] = field(default=(4, 8, 16, 32, 64, 128, 256), metadata={
        "help": "plain-variant M values the helix-reuse experiment searches"})
    layers: tuple[int, ...] | None = field(default=None, metadata={
        "help": "layers whose heads the model part ranks (default: all)"})
    first_position: int = field(default=1, metadata={"help": "first W_pos row of the model's curve"})
    n_components: int = field(default=6, metadata={"help": "principal components of W_pos for the f' = W f + c fit"})
    scheme: str = field(default="savgol", metadata={"help": "derivative of W_pos: Savitzky-Golay (savgol) or raw central differences (central)",
                                                    "choices": SCHEMES})
    window: int = field(default=51, metadata={"help": "Savitzky-Golay window (odd)"})
    atol: float = field(default=1e-3, metadata={"help": "rounding slack (positions) when checking the bound"})
    dtype: str = field(default="float64", metadata={
        "help": "the construction's dtype (float64 keeps rounding far below the bound; float32 is also checked)",
        "choices": DTYPES})
    seed: int = field(default=0, metadata={"help": "random seed"})

    def __post_init__(self) -> None:
        check_choices(self)
        if self.grid and not (self.grid_n and self.grid_k and self.grid_M):
            raise InvalidInputError("the grid needs n, k and M values (--grid-n, --grid-k, --grid-M) or --no-grid")
