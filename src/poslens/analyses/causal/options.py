"""Options of the causal questions, each default declared once (the CLI's flags and the report's
``--set causal_*.*`` come from here); light to import.

>>> HelixAblationOptions().k
3
>>> HelixAblationOptions(kind="noise")
Traceback (most recent call last):
poslens.errors.InvalidInputError: kind must be 'zero' (project out) or 'mean' (keep the mean); got 'noise'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import InvalidInputError


@dataclass(frozen=True)
class HelixAblationOptions:
    k: int = field(default=3, metadata={"help": "top principal components of W_pos to remove"})
    skip_first: bool = field(default=True, metadata={
        "help": "leave position 0 out of the PCA (as the helix post does)"})
    center: bool = field(default=True, metadata={"help": "centre W_pos's rows before the PCA"})
    kind: str = field(default="zero", metadata={
        "help": "zero: project the subspace out; mean: replace it by its mean over positions"})
    corpus: str | None = field(default=None, metadata={"help": "text file for the loss (default: the sample passage)"})
    n_seq: int = field(default=16, metadata={"help": "text windows"})
    seq_len: int = field(default=128, metadata={"help": "tokens per window (capped at n_ctx)"})
    n_random: int = field(default=10, metadata={"help": "random subspaces of the same size (the baseline)"})
    prev_threshold: float = field(default=0.3, metadata={
        "help": "clean previous-token attention of the heads followed"})
    positional_only: bool | None = field(default=None, metadata={
        "help": "input = W_pos alone, layer 0's attention only (default: when the model lacks W_E or W_U)"})
    prepend_bos: bool = field(default=True, metadata={"help": "prepend BOS"})
    batch_size: int | None = field(default=None, metadata={"help": "sequences per forward pass (default: all)"})
    seed: int = field(default=0, metadata={"help": "random seed"})

    def __post_init__(self) -> None:
        if self.kind not in ("zero", "mean"):
            raise InvalidInputError(f"kind must be 'zero' (project out) or 'mean' (keep the mean); got '{self.kind}'")
        if self.k < 1:
            raise InvalidInputError(f"k must be at least 1; got {self.k}")
        if self.n_random < 2:
            raise InvalidInputError(f"n_random must be at least 2 (a baseline needs a spread); got {self.n_random}")
