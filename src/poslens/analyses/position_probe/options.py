"""The options of the position probe, each default declared once (the CLI's flags and the report's
``--set`` come from here); light to import.
"""

from __future__ import annotations

from dataclasses import field

from ...errors import InvalidInputError
from ...options import check_choices, options_class

INPUT_KINDS = ("text", "random_tokens", "positional")
TARGETS = ("position", "log_position")


@options_class
class Options:
    n_seq: int = field(default=64, metadata={"help": "sequences (split into training and test sequences)",
                                             "range": "[3, inf)"})  # one each to train, validate and test
    seq_len: int = field(default=128, metadata={"help": "tokens per sequence (capped at n_ctx)"})
    inputs: str = field(default="auto", metadata={
        "help": "text, random_tokens or positional; auto: text where the model has a tokenizer, else random tokens, "
                "else positional inputs alone", "choices": ("auto", *INPUT_KINDS)})
    corpus: str = field(default="", metadata={"help": "text file for text inputs (default: the built-in passage)"})
    target: str = field(default="position", metadata={
        "help": "what the probe regresses: position p, or log(p + 1) (mapped back to positions for the error)",
        "choices": TARGETS})
    test_frac: float = field(default=0.25, metadata={"help": "share of sequences held out for the test", "range": "(0, 1)"})
    val_frac: float = field(default=0.2, metadata={"help": "share of training sequences used to pick the ridge strength",
                                                      "range": "(0, 1)"})
    alphas: str = field(default="1e-4,1e-3,1e-2,1e-1,1,10,100", metadata={
        "help": "ridge strengths tried, per training token (comma list)"})
    prepend_bos: bool = field(default=False, metadata={"help": "put BOS at the first position of token inputs"})
    n_bins: int = field(default=8, metadata={"help": "position bins of the error profile"})
    batch_size: int = field(default=16, metadata={"help": "sequences per forward pass"})
    seed: int = field(default=0, metadata={"help": "random seed (inputs and the train/test split)"})

    def __post_init__(self) -> None:
        check_choices(self)
        if not (0 < self.test_frac < 1 and 0 < self.val_frac < 1):
            raise InvalidInputError(f"test_frac and val_frac must lie in (0, 1); got {self.test_frac}, {self.val_frac}")
        if self.seq_len < 2 or self.n_bins < 1 or self.batch_size < 1:
            raise InvalidInputError("need seq_len >= 2, n_bins >= 1, batch_size >= 1")
        self.alpha_grid()

    def alpha_grid(self) -> list[float]:
        try:
            a = [float(x) for x in str(self.alphas).split(",") if x.strip()]
        except ValueError:
            raise InvalidInputError(f"alphas '{self.alphas}' is not a comma list of numbers (e.g. 0.01,1,100)") from None
        if not a or min(a) < 0:
            raise InvalidInputError(f"alphas '{self.alphas}' must be non-negative numbers")
        return a
