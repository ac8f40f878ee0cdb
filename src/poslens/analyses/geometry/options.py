"""The options of the weight-geometry analyses, each default declared once (the CLI's flags
and the report's ``--set`` come from here); light to import.

>>> SphereOptions().n_trials
20
>>> SphereOptions(positions="everywhere")
Traceback (most recent call last):
poslens.errors.InvalidInputError: positions must be one of sequence, random; got 'everywhere'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import InvalidInputError

MATRICES = ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out")
GATED = "W_gate"  # the gate of a gated (SwiGLU) MLP, decomposed beside W_in
POSITIONS = ("sequence", "random")


@dataclass(frozen=True)
class SpectraOptions:
    layers: list[int] | None = field(default=None, metadata={"help": "layers to decompose (default: all)"})
    matrices: tuple[str, ...] = field(default=MATRICES, metadata={
        "help": "matrices to decompose: " + ", ".join((*MATRICES, GATED))})
    per_head: bool = field(default=True, metadata={"help": "also the per-head blocks of W_Q/W_K/W_V/W_O"})
    qk: bool = field(default=True, metadata={"help": "QK distances of M_h = W_Q^h W_K^hT"})
    include_bias: bool = field(default=False, metadata={"help": "append each bias as an input row"})
    fold_ln: bool = field(default=False, metadata={"help": "scale reading matrices by their LayerNorm weight first"})
    keep_spectra: bool = field(default=True, metadata={"help": "keep the singular values, not only their metrics"})

    def __post_init__(self) -> None:
        for m in self.matrices:
            if m not in (*MATRICES, GATED):
                raise InvalidInputError(f"unknown matrix '{m}'; choose from {', '.join((*MATRICES, GATED))}")


@dataclass(frozen=True)
class SphereOptions:
    n_tokens: int = field(default=1000, metadata={"help": "random tokens per sphere-overlap trial"})
    n_trials: int = field(default=20, metadata={"help": "sphere-overlap trials"})
    positions: str = field(default="sequence", metadata={
        "help": "token i at position i mod n_ctx (sequence), or at a random position"})
    seed: int = field(default=0, metadata={"help": "random seed of the tokens"})
    bins: int = field(default=60, metadata={"help": "bins of the overlap-margin histogram"})

    def __post_init__(self) -> None:
        if self.n_tokens < 2:
            raise InvalidInputError(f"n_tokens must be at least 2; got {self.n_tokens}")
        if self.n_trials < 1:
            raise InvalidInputError(f"n_trials must be at least 1; got {self.n_trials}")
        if self.positions not in POSITIONS:
            raise InvalidInputError(f"positions must be one of {', '.join(POSITIONS)}; got '{self.positions}'")
