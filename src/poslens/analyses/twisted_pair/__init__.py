"""The twisted-pair distance mechanism (after the post that hand-builds it): built as real weights, verified, and sought in GPT-2.

**The derivation.** Points x_i = f(i/n) lie on a C^2 curve f: [0, 1] -> R^d; given x_i and
x_j with |i - j| <= k << n, estimate j - i. With M + 1 sentries s_m = m / M and s the
sentry nearest to i/n (|i/n - s| <= 1/(2M)),

    x_j - x_i = (j - i)/n f'(s) + int_{i/n}^{j/n} (f'(t) - f'(s)) dt,
    |int ...| <= L (1/(2M) + |i - j|/n) |i - j|/n,        L = Lipschitz constant of f',

so n (x_j - x_i) . f'(s) / |f'(s)|^2 estimates j - i with error at most
n L (1/(2M) + |i - j|/n) |i - j|/n / |f'(s)| (positions). A one-layer transformer computes it:
two heads put x_j - x_i in a subspace orthogonal to x_i; per sentry a pair of ReLU
neurons N+-_m = ReLU(gate_m(x_i) +- b3_m (x_j - x_i) . f'(s_m)) whose gate is positive only
on the sentry's cell; the pair's difference N+ - N- = 2 b3_m (x_j - x_i) . f'(s_m) carries
the signal while anything common to both (the gate and its noise) cancels, like twisted
pair cabling. Output weights C_m / (2 b3_m) with C_m = n / |f'(s_m)|^2 give the estimate.
The helix variant gates on y_i = A x_i + c ~ f'(i/n) instead: f' of a helix is periodic,
so one period's sentries serve every turn. See :mod:`.build` for the weights.

**Readings of an ambiguous text** (recorded in every result as ``readings``): see
:data:`READINGS`.

The package: :mod:`.curves` (curves and their checks), :mod:`.gates` (sentry cells and
their gates), :mod:`.build` (the weights), :mod:`.verify` (runner vs bound, sweeps, grid),
:mod:`.experiments` (noise cancellation, near self-intersection, helix reuse), :mod:`.gpt2`
(the GPT-2 part), :mod:`.report` (findings, summary) and :mod:`.measure`, which runs them
together into one :class:`TwistedPairResult`. The post's published claims are checked in
:mod:`poslens.claims.twisted_pair_post`.

>>> from poslens.analyses.twisted_pair import twisted_pair
>>> r = twisted_pair(n=128, M=8, k=4, sweep_M=(), sweep_n=(), sweep_k=(), grid=False, claims=False)
>>> r.verification.within_bound, r.construction.n_neurons
(True, 18)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import exports

if TYPE_CHECKING:
    from .build import build, check_sizes
    from .curves import curve_stats, make_curve
    from .measure import READINGS, TwistedPairResult, twisted_pair
    from .options import Options
    from .report import summarize
    from .verify import verify

__getattr__ = exports(__name__, {
    ".build": ("build", "check_sizes"),
    ".curves": ("curve_stats", "make_curve"),
    ".measure": ("READINGS", "TwistedPairResult", "twisted_pair"),
    ".options": ("Options",),
    ".report": ("summarize",),
    ".verify": ("verify",),
})

__all__ = ["Options", "READINGS", "TwistedPairResult", "build", "check_sizes", "curve_stats", "make_curve",
           "summarize", "twisted_pair", "verify"]
