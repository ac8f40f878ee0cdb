"""The options of the weight-geometry analyses, each default declared once (the CLI's flags
and the report's ``--set`` come from here); light to import.

>>> SphereOptions().n_trials
20
>>> SphereOptions(positions="everywhere")
Traceback (most recent call last):
poslens.errors.InvalidInputError: positions must be one of sequence, random; got 'everywhere'
"""

from __future__ import annotations

import math
from dataclasses import field

from ...errors import InvalidInputError
from ...options import check_choices, one_of, options_class

MATRICES = ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out")
GATED = "W_gate"  # the gate of a gated (SwiGLU) MLP, decomposed beside W_in
POSITIONS = ("sequence", "random")
SUBSPACES = ("mp", "gap")
SPACES = ("features", "tokens")
DEFAULT_LENGTHS = {"short": 15, "medium": 150, "long": 500}


@options_class
class SpectraOptions:
    layers: tuple[int, ...] | None = field(default=None, metadata={"help": "layers to decompose, e.g. 0,5 (default: all)"})
    matrices: tuple[str, ...] = field(default=MATRICES, metadata={
        "help": "matrices to decompose: " + ", ".join((*MATRICES, GATED))})
    per_head: bool = field(default=True, metadata={"help": "also the per-head blocks of W_Q/W_K/W_V/W_O"})
    qk: bool = field(default=True, metadata={"help": "QK distances of M_h = W_Q^h W_K^hT"})
    include_bias: bool = field(default=False, metadata={"help": "append each bias as an input row"})
    fold_ln: bool = field(default=False, metadata={"help": "scale reading matrices by their LayerNorm weight first"})
    keep_spectra: bool = field(default=True, metadata={"help": "keep the singular values, not only their metrics"})

    def __post_init__(self) -> None:
        if not self.matrices:
            raise InvalidInputError(f"matrices is empty; choose from {', '.join((*MATRICES, GATED))}")
        for m in self.matrices:
            if m not in (*MATRICES, GATED):
                raise InvalidInputError(f"unknown matrix '{m}'; choose from {', '.join((*MATRICES, GATED))}")


@options_class
class SphereOptions:
    n_tokens: int = field(default=1000, metadata={"help": "random tokens per sphere-overlap trial"})
    n_trials: int = field(default=20, metadata={"help": "sphere-overlap trials"})
    positions: str = field(default="sequence", metadata={
        "help": "token i at position i mod n_ctx (sequence), or at a random position", "choices": POSITIONS})
    seed: int = field(default=0, metadata={"help": "random seed of the tokens"})
    bins: int = field(default=60, metadata={"help": "bins of the overlap-margin histogram", "range": "[1, inf)"})

    def __post_init__(self) -> None:
        if self.n_tokens < 2:
            raise InvalidInputError(f"n_tokens must be at least 2; got {self.n_tokens}")
        if self.n_trials < 1:
            raise InvalidInputError(f"n_trials must be at least 1; got {self.n_trials}")
        check_choices(self)


def check_threshold(threshold: float) -> None:
    """The overlap threshold is a cosine strictly between 0 and 1."""
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise InvalidInputError(f"threshold must be a number in (0, 1); got {threshold!r}") from None
    if not 0.0 < t < 1.0 or math.isnan(t):
        raise InvalidInputError(f"threshold must be strictly between 0 and 1 (a cosine); got {threshold}")


def check_options(subspace: str, space: str, threshold: float) -> None:
    """InvalidInputError for an unknown subspace rule or space, or a threshold outside (0, 1)."""
    check_threshold(threshold)
    one_of("subspace", subspace, SUBSPACES)
    one_of("space", space, SPACES)


@options_class
class SubspacesOptions:
    lengths: dict[str, int] | None = field(default=None, metadata={
        "help": "prompt lengths in tokens, NAME -> N (default short 15, medium 150, long 500)"})
    whole: bool = field(default=False, metadata={"help": "use the whole text as one prompt (at most n_ctx tokens)"})
    prepend_bos: bool = field(default=False, metadata={"help": "prepend the BOS token"})
    final_ln: bool = field(default=True, metadata={"help": "last point through ln_f, like HF hidden_states"})
    subspace: str = field(default="mp", metadata={
        "help": "signal subspace by the Marchenko-Pastur edge (mp) or the largest spectral-gap ratio (gap)",
        "choices": SUBSPACES})
    space: str = field(default="features", metadata={
        "help": "subspaces in R^d_model (features: right singular vectors) or R^N (tokens: Gram eigenvectors)",
        "choices": SPACES})
    threshold: float = field(default=0.9, metadata={
        "help": "overlap: a principal angle is shared when its cosine exceeds this (0 < t < 1)"})
    noise: str | float = field(default="iterative", metadata={
        "help": "Marchenko-Pastur noise variance: iterative, total, or a number"})
    seed: int = field(default=0, metadata={"help": "seed of the MDS refinement"})

    def __post_init__(self) -> None:
        check_options(self.subspace, self.space, self.threshold)
        if isinstance(self.noise, str) and self.noise not in ("iterative", "total"):
            raise InvalidInputError(f"noise must be 'iterative', 'total' or a number (the noise variance); "
                                    f"got '{self.noise}'")


@options_class
class LensOptions:
    top_k: int = field(default=10, metadata={"help": "tokens listed per layer and per generation step"})
    n_generate: int = field(default=10, metadata={"help": "greedy tokens to generate (0: none)"})
    prepend_bos: bool = field(default=False, metadata={"help": "prepend the BOS token"})
    final_ln: bool = field(default=True, metadata={"help": "read every point through ln_f (off: raw residual)"})

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise InvalidInputError(f"top_k must be at least 1; got {self.top_k}")
        if self.n_generate < 0:
            raise InvalidInputError(f"n_generate must be 0 or more; got {self.n_generate}")
