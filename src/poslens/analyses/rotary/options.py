"""The options of the rotary analysis, each default declared once (the CLI's flags and the report's
``--set`` come from here); light to import.
"""

from __future__ import annotations

from dataclasses import field

from ...errors import InvalidInputError
from ...options import options_class


@options_class
class Options:
    n_seq: int = field(default=16, metadata={"help": "text windows (or random-token sequences)"})
    seq_len: int = field(default=128, metadata={"help": "tokens per sequence (capped at n_ctx)"})
    corpus: str = field(default="", metadata={"help": "text file (default: the built-in passage)"})
    high_frac: float = field(default=0.125, metadata={
        "help": "share of pairs counted as the highest frequencies (at least one pair)"})
    low_frac: float = field(default=0.25, metadata={"help": "share of pairs counted as the lowest frequencies"})
    head_threshold: float = field(default=0.5, metadata={
        "help": "usage share on the highest (lowest) pairs from which a head is positional (semantic)"})
    ablate: bool = field(default=False, metadata={"help": "also remove the lowest pairs from q and k and report the loss"})
    ablate_frac: float = field(default=0.25, metadata={"help": "share of the lowest-frequency pairs the ablation removes"})
    batch_size: int = field(default=8, metadata={"help": "sequences per forward pass"})
    seed: int = field(default=0, metadata={"help": "random seed of the inputs"})

    def __post_init__(self) -> None:
        for name in ("high_frac", "low_frac", "head_threshold", "ablate_frac"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise InvalidInputError(f"{name} must lie in (0, 1]; got {v}")
        if self.n_seq < 1 or self.seq_len < 2 or self.batch_size < 1:
            raise InvalidInputError("need n_seq >= 1, seq_len >= 2, batch_size >= 1")
