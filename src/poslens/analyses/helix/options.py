"""The helix analysis's options, each default declared once (the CLI's flags and the report's
``--set helix.*`` come from here).

>>> Options().truncate_at
100
>>> Options(fit_components=1)
Traceback (most recent call last):
poslens.errors.InvalidInputError: fit_components must be between 2 and n_components (10); got 1
"""

from __future__ import annotations

from dataclasses import field

from ...errors import InvalidInputError
from ...options import options_class


@options_class
class Options:
    start: int | None = field(default=None, metadata={
        "help": "first position of the PCA (default 1; 0 with keep_first)"})
    stop: int | None = field(default=None, metadata={"help": "position after the last one (default n_ctx)"})
    keep_first: bool = field(default=False, metadata={"help": "keep position 0 (the BOS slot) in the PCA"})
    center: bool = field(default=True, metadata={"help": "subtract the mean row before the PCA"})
    n_components: int = field(default=10, metadata={"help": "components whose variance shares are reported"})
    fit_components: int = field(default=3, metadata={"help": "top components the helix and ODE fits use "
                                                              "(at most n_components)", "range": "[2, inf)"})
    truncations: bool = field(default=True, metadata={
        "help": "also the PCAs of positions >= truncate_at and below it"})
    truncate_at: int = field(default=100, metadata={"help": "where the helix post's two truncations cut",
                                                    "range": "[1, inf)"})
    ode_window: int = field(default=51, metadata={"help": "Savitzky-Golay window of the smoothed ODE fit (odd; "
                                                          "an even one is taken one smaller)", "range": "[5, inf)"})
    n_traces: int = field(default=6, metadata={"help": "highest-variance dimensions to trace", "range": "[0, inf)"})
    cosine_size: int = field(default=64, metadata={"help": "rows of the stored (subsampled) cosine matrix",
                                                   "range": "[1, inf)"})
    outlier_threshold: float = field(default=10.0, metadata={
        "help": "flag positions whose nearest-neighbour distance exceeds this many times the median"})
    sinusoidal: bool = field(default=True, metadata={"help": "compare with the sinusoidal encoding of the same shape"})
    sinusoidal_base: float = field(default=10000.0, metadata={"help": "base of the sinusoidal encoding",
                                                              "range": "(1, inf)"})
    tokens: bool | None = field(default=None, metadata={
        "help": "compare with W_E (default: when the checkpoint has it)"})
    token_sample: int = field(default=1024, metadata={"help": "W_E rows sampled for the token/position comparison",
                                                      "range": "[1, inf)"})
    allow_fixed: bool = field(default=False, metadata={
        "help": "analyse a W_pos that is the fixed sinusoidal table anyway"})
    seed: int = field(default=0, metadata={"help": "seed of the W_E sample"})

    def __post_init__(self) -> None:
        if self.n_components < 1:
            raise InvalidInputError(f"n_components must be at least 1 (got {self.n_components})")
        if not 2 <= self.fit_components <= self.n_components:
            raise InvalidInputError(f"fit_components must be between 2 and n_components ({self.n_components}); "
                                    f"got {self.fit_components}")
        if self.truncate_at < 1:
            raise InvalidInputError(f"truncate_at must be a positive position (got {self.truncate_at})")
